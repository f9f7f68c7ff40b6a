//! The static RBAC roles, from most to least privileged.

/// A static role. Roles are nested: each one holds every permission of the roles below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    PoolAdmin,
    PoolOperator,
    VmPowerAdmin,
    VmAdmin,
    VmOperator,
    ReadOnly,
}

impl Role {
    pub const ALL: [Role; 6] = [
        Role::PoolAdmin,
        Role::PoolOperator,
        Role::VmPowerAdmin,
        Role::VmAdmin,
        Role::VmOperator,
        Role::ReadOnly,
    ];

    /// The role's name as xapi spells it (`pool-admin`).
    pub fn name(self) -> &'static str {
        match self {
            Role::PoolAdmin => "pool-admin",
            Role::PoolOperator => "pool-operator",
            Role::VmPowerAdmin => "vm-power-admin",
            Role::VmAdmin => "vm-admin",
            Role::VmOperator => "vm-operator",
            Role::ReadOnly => "read-only",
        }
    }

    /// Whether a caller holding `self` may call something that requires `required`.
    pub fn includes(self, required: Role) -> bool {
        self <= required
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_admin_includes_every_role_and_read_only_only_itself() {
        assert!(Role::ALL.iter().all(|r| Role::PoolAdmin.includes(*r)));
        assert!(Role::ReadOnly.includes(Role::ReadOnly));
        assert!(!Role::ReadOnly.includes(Role::VmOperator));
    }
}
