//! The errors of host agents as xapi sends them: an agent knows VMs and devices by uuid only,
//! so its errors name them by uuid where xapi names them by ref; the master, which has the DB,
//! puts the refs back before a client sees them.

use api_spec::{ApiError, errors};
use db_schema::Db;

/// The classes the first parameter of an agent error may name, by error code.
static NAMED_FIRST: &[(&str, &[&str])] = &[
    (errors::VM_BAD_POWER_STATE, &["VM"]),
    (errors::VM_TOO_MANY_VCPUS, &["VM"]),
    (errors::VM_SHUTDOWN_TIMEOUT, &["VM"]),
    (errors::DEVICE_ALREADY_ATTACHED, &["VBD", "VIF"]),
    (errors::DEVICE_ALREADY_DETACHED, &["VBD", "VIF"]),
    (errors::VBD_IS_EMPTY, &["VBD"]),
    (errors::VBD_NOT_EMPTY, &["VBD"]),
    (errors::VBD_NOT_REMOVABLE_MEDIA, &["VBD"]),
];

/// `error` with the uuid it names first replaced by the ref of that row, when the error is one
/// that names an object and the uuid is one of a live row.
pub(crate) fn with_refs(db: &Db, mut error: ApiError) -> ApiError {
    let Some((_, classes)) = NAMED_FIRST.iter().find(|(code, _)| *code == error.code) else {
        return error;
    };
    let Some(first) = error.params.first_mut() else {
        return error;
    };
    if let Some(r) = classes
        .iter()
        .find_map(|class| db.ref_by_uuid(class, first))
    {
        *first = r.to_owned();
    }
    error
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestPool;

    /// A VM named by uuid gets its ref; an error that names no object, and a uuid no row has,
    /// are left as they are.
    #[test]
    fn uuids_of_live_rows_become_refs() {
        let pool = TestPool::new();
        let db = pool.read();
        let vm = db.refs_by_name_label("VM", "Other install media")[0].to_owned();
        let uuid = db.get("VM", &vm).expect("the VM").str("uuid").to_owned();
        let bad = ApiError::new(
            errors::VM_BAD_POWER_STATE,
            [uuid.as_str(), "running", "halted"],
        );
        assert_eq!(
            with_refs(&db, bad).params,
            [vm.as_str(), "running", "halted"]
        );
        let hook = ApiError::new(errors::XAPI_HOOK_FAILED, [uuid.as_str(), "", "", "1"]);
        assert_eq!(with_refs(&db, hook.clone()), hook);
        let unknown = ApiError::new(errors::DEVICE_ALREADY_ATTACHED, ["no-such-uuid"]);
        assert_eq!(with_refs(&db, unknown.clone()), unknown);
    }
}
