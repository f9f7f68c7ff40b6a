//! The operations this master is running now, by the key they hold in `current_operations`.
//! A key in the DB that is not here belongs to an operation that died with an earlier master
//! process; reconciliation removes it.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use tokio_util::sync::CancellationToken;

use super::ObjectOperation;

/// One running operation.
#[derive(Debug, Clone)]
struct Running {
    r#ref: String,
    op: ObjectOperation,
    cancel: CancellationToken,
}

/// The operations running in this process.
#[derive(Debug, Default)]
pub(crate) struct InFlight {
    running: Mutex<HashMap<String, Running>>,
}

impl InFlight {
    /// Records an operation under `key` until the guard is dropped. Register before the Txn
    /// that records the key in the DB is proposed, so that reconciliation never mistakes a
    /// starting operation for a dead one.
    pub fn register(
        &self,
        key: &str,
        r: &str,
        op: ObjectOperation,
        cancel: CancellationToken,
    ) -> InFlightGuard<'_> {
        let running = Running {
            r#ref: r.to_owned(),
            op,
            cancel,
        };
        self.lock().insert(key.to_owned(), running);
        InFlightGuard {
            in_flight: self,
            key: key.to_owned(),
        }
    }

    /// Whether an operation of this process holds `key`.
    pub fn contains(&self, key: &str) -> bool {
        self.lock().contains_key(key)
    }

    /// Whether an operation of this process runs on the row.
    pub fn is_busy(&self, class: &str, r: &str) -> bool {
        self.lock()
            .values()
            .any(|op| op.op.class() == class && op.r#ref == r)
    }

    /// Cancels the running operations of kinds `ops` on the row `r` of their class; returns
    /// how many.
    pub fn cancel<Op: Into<ObjectOperation> + Copy>(&self, r: &str, ops: &[Op]) -> usize {
        let ops: Vec<ObjectOperation> = ops.iter().map(|op| (*op).into()).collect();
        let running = self.lock();
        let doomed: Vec<&Running> = running
            .values()
            .filter(|op| op.r#ref == r && ops.contains(&op.op))
            .collect();
        for op in &doomed {
            op.cancel.cancel();
        }
        doomed.len()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Running>> {
        self.running
            .lock()
            .expect("no panic while holding the in-flight lock")
    }
}

/// Removes its operation from `InFlight` when dropped.
#[derive(Debug)]
pub(crate) struct InFlightGuard<'a> {
    in_flight: &'a InFlight,
    key: String,
}

impl InFlightGuard<'_> {
    pub fn key(&self) -> &str {
        &self.key
    }
}

impl Drop for InFlightGuard<'_> {
    fn drop(&mut self) {
        self.in_flight.lock().remove(&self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use api_spec::classes::vm::VmOperation;

    /// An operation is known while its guard lives; cancelling by kind reaches only the
    /// matching ones.
    #[test]
    fn operations_are_known_while_their_guard_lives() {
        let in_flight = InFlight::default();
        let (a, b) = (CancellationToken::new(), CancellationToken::new());
        let clean = VmOperation::CleanShutdown.into();
        let hard = VmOperation::HardShutdown.into();
        let first = in_flight.register("k1", "OpaqueRef:vm", clean, a.clone());
        let second = in_flight.register("k2", "OpaqueRef:vm", hard, b.clone());
        assert!(in_flight.contains("k1") && in_flight.is_busy("VM", "OpaqueRef:vm"));
        assert_eq!(
            in_flight.cancel("OpaqueRef:vm", &[VmOperation::CleanShutdown]),
            1
        );
        assert!(a.is_cancelled() && !b.is_cancelled());
        drop(first);
        assert!(!in_flight.contains("k1"));
        assert_eq!(second.key(), "k2");
        drop(second);
        assert!(!in_flight.is_busy("VM", "OpaqueRef:vm"));
    }
}
