//! `PoolSettings`: how the hosts of a pool answer for each other (forwarding, heartbeats,
//! liveness, fencing).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ConfigError, check_range, invalid};

/// How the hosts of a pool answer for each other.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PoolSettings {
    /// On a host that is not the master, forward every call to the master (`true`), or answer
    /// xapi's `HOST_IS_SLAVE [master address]` (`false`), for clients that expect it.
    pub forward_calls: bool,
    /// How long a call on a host that knows no master waits for one before failing, in
    /// milliseconds, 0..=60000.
    pub leader_wait_ms: u64,
    /// Time between two heartbeats of this host's agent to the master, in milliseconds,
    /// 50..=60000.
    pub heartbeat_interval_ms: u64,
    /// A host the master has not heard from for this long is not live, and its VMs are halted
    /// in the DB, in seconds, 2..=3600; more than `fence_after_secs`.
    pub dead_after_secs: u64,
    /// An agent without contact with a master for this long hard-stops its domains, so that
    /// the master may halt them in the DB, in seconds, 1..=3600.
    pub fence_after_secs: u64,
    /// How long a start waits for the master to take this host's first inventory before the
    /// host says it is ready anyway, in seconds, 1..=3600.
    pub first_inventory_wait_secs: u64,
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings {
            forward_calls: true,
            leader_wait_ms: 5000,
            heartbeat_interval_ms: 1000,
            dead_after_secs: 10,
            fence_after_secs: 5,
            first_inventory_wait_secs: 10,
        }
    }
}

impl PoolSettings {
    /// Checks every field against its documented range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_range("pool.leader_wait_ms", self.leader_wait_ms, 0, 60_000)?;
        check_range(
            "pool.heartbeat_interval_ms",
            self.heartbeat_interval_ms,
            50,
            60_000,
        )?;
        check_range("pool.dead_after_secs", self.dead_after_secs, 2, 3600)?;
        check_range("pool.fence_after_secs", self.fence_after_secs, 1, 3600)?;
        check_range(
            "pool.first_inventory_wait_secs",
            self.first_inventory_wait_secs,
            1,
            3600,
        )?;
        if self.fence_after_secs >= self.dead_after_secs {
            return invalid(
                "pool.fence_after_secs",
                "must be less than pool.dead_after_secs",
            );
        }
        Ok(())
    }

    pub fn leader_wait(&self) -> Duration {
        Duration::from_millis(self.leader_wait_ms)
    }

    pub fn heartbeat_interval(&self) -> Duration {
        Duration::from_millis(self.heartbeat_interval_ms)
    }

    pub fn dead_after(&self) -> Duration {
        Duration::from_secs(self.dead_after_secs)
    }

    pub fn fence_after(&self) -> Duration {
        Duration::from_secs(self.fence_after_secs)
    }

    pub fn first_inventory_wait(&self) -> Duration {
        Duration::from_secs(self.first_inventory_wait_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    /// A pool section sets its fields, keeps the others' defaults, and a fence time not below
    /// the dead time is refused by name.
    #[test]
    fn pool_section_parses_and_fence_must_come_before_death() {
        let config: Config =
            serde_json::from_str(r#"{"pool": {"forward_calls": false, "dead_after_secs": 4}}"#)
                .expect("parses");
        assert!(!config.pool.forward_calls);
        assert_eq!(config.pool.dead_after(), Duration::from_secs(4));
        assert_eq!(config.pool.fence_after(), Duration::from_secs(5));
        let err = config.validate().expect_err("fence after death");
        assert!(
            err.to_string().starts_with("pool.fence_after_secs: "),
            "{err}"
        );
        assert!(Config::default().validate().is_ok());
    }
}
