//! The pool's NOSPACE alarm (etcd's, in xapi's words): the hosts short of room for the pool DB
//! (below their disk reserve, or their store over its quota) as their heartbeats say, and the
//! API writes refused with `DATABASE_SPACE_LOW` while any host is. A full disk then makes the
//! pool refuse writes cleanly instead of failing a host's store. Reads, logins and logouts,
//! events, cancels and the calls that free room (`destroy`, `pool.eject`) still run; so do the
//! master's own writes (liveness, tasks, alerts), which are small.

use std::collections::BTreeMap;
use std::sync::Mutex;

use api_spec::roles::Role;
use api_spec::{ApiError, Method, errors};

use crate::Master;

/// The `message` name raised when a host becomes short of room for the pool DB.
pub const SPACE_LOW_MESSAGE: &str = "DATABASE_SPACE_LOW";

/// The hosts short of room, by host ref, with why.
#[derive(Default)]
pub(crate) struct Shortages(Mutex<BTreeMap<String, String>>);

impl Shortages {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, String>> {
        self.0
            .lock()
            .expect("no panic while holding the shortages lock")
    }

    /// Records what `host`'s heartbeat says of its room; whether it is newly short.
    pub fn note(&self, host: &str, shortage: Option<&str>) -> bool {
        let mut shortages = self.lock();
        match shortage {
            Some(why) => shortages.insert(host.to_owned(), why.to_owned()).is_none(),
            None => {
                if shortages.remove(host).is_some() {
                    tracing::info!(host = %host, "the host has room for the pool database again");
                }
                false
            }
        }
    }

    /// Forgets `host` (gone silent, or out of the pool): it writes nothing any more.
    pub fn forget(&self, host: &str) {
        self.lock().remove(host);
    }

    /// A host short of room and why, if any is.
    pub fn first(&self) -> Option<(String, String)> {
        self.lock()
            .iter()
            .next()
            .map(|(host, why)| (host.clone(), why.clone()))
    }
}

/// Whether `method` may run while the alarm is on: it writes nothing (a read-only role's
/// message, a login), frees room, or only ends something.
fn runs_during_alarm(method: &Method) -> bool {
    method.role == Role::ReadOnly
        || !method.takes_session
        || method.class.name == "event"
        || matches!(method.name.as_str(), "destroy" | "logout" | "local_logout")
        || matches!(method.wire_name.as_str(), "task.cancel" | "pool.eject")
}

/// `DATABASE_SPACE_LOW [host, why]` when the alarm is on and `method` writes.
pub(crate) fn check(master: &Master, method: &Method) -> Result<(), ApiError> {
    if runs_during_alarm(method) {
        return Ok(());
    }
    let Some((host, why)) = master.shortages.first() else {
        return Ok(());
    };
    let db = master.db.read();
    let name = db
        .get("host", &host)
        .map(|row| row.str("name_label").to_owned())
        .unwrap_or(host);
    Err(errors::database_space_low(&name, &why))
}

#[cfg(test)]
mod tests {
    use api_spec::Value;

    use super::*;
    use crate::testing::TestPool;
    use host_api::HostHealth;

    /// While a host's heartbeats say it is short of room, writes are refused with
    /// `DATABASE_SPACE_LOW` naming it and why, reads and destroys still run, and one alert is
    /// raised; once it has room again, writes run.
    #[tokio::test]
    async fn writes_are_refused_while_a_host_is_short_of_room() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let vm = pool.read().refs_by_name_label("VM", "Other install media")[0].to_owned();
        let short = HostHealth {
            low_space: Some("1.0 MiB free".to_owned()),
            ..HostHealth::default()
        };
        pool.master.heartbeat(&pool.host, &short).await;
        pool.master.heartbeat(&pool.host, &short).await;
        let rename = vec![Value::str(&vm), Value::str("renamed")];
        let err = pool
            .call_as(&session, "VM.set_name_label", rename.clone())
            .await
            .expect_err("refused");
        assert_eq!(err.code, api_spec::errors::DATABASE_SPACE_LOW);
        assert!(err.params[1].contains("1.0 MiB free"), "{err:?}");
        pool.call_as(&session, "VM.get_record", vec![Value::str(&vm)])
            .await
            .expect("reads run");
        let alerts = pool
            .read()
            .rows("message")
            .filter(|(_, row)| row.str("name") == SPACE_LOW_MESSAGE)
            .count();
        assert_eq!(alerts, 1);
        pool.master
            .heartbeat(&pool.host, &HostHealth::default())
            .await;
        pool.call_as(&session, "VM.set_name_label", rename)
            .await
            .expect("writes run again");
    }
}
