//! Host liveness on the master: when it last heard from each host, `host_metrics.live` kept
//! to match (written only when it changes), and the VMs of a host gone silent halted.
//!
//! Halting the VMs of a silent host is safe only because its agent fences itself first: an
//! agent without contact with a master for `pool.fence_after_secs` hard-stops its domains,
//! and the master waits the longer `pool.dead_after_secs`. A host that speaks again is live
//! again and is asked what it runs, so a domain it still has is adopted.
//!
//! A host whose heartbeat says its store failed is heard (its agent is in contact, so it does
//! not fence and its VMs are not halted) but not live: placement leaves it out until a
//! heartbeat says its store works again. Its failure is raised as an alert once per failure.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use api_spec::Value;
use api_spec::classes::vm::VmPowerState;
use db_schema::Db;

use crate::Master;
use crate::error::{Error, to_api_error};
use crate::pool::reconcile::{clear_dead_operations, is_busy};
use crate::vm::operations::Draft;
use crate::vm::power_state::{power_state, set_stopped};
use host_api::HostHealth;

/// When the master last heard from each host, in seconds of its monotonic clock (a jump of the
/// wall clock must not make every host look silent). Lost when mastership moves: a new master
/// starts every host's count at its election.
#[derive(Default)]
pub(crate) struct Liveness {
    last_heard: Mutex<HashMap<String, i64>>,
    /// The hosts whose store is failed, as their last heartbeat said.
    store_failed: Mutex<HashSet<String>>,
}

impl Liveness {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, i64>> {
        self.last_heard
            .lock()
            .expect("no panic while holding the liveness lock")
    }

    /// Records that `host` spoke at `now`.
    pub fn heard(&self, host: &str, now: i64) {
        self.lock().insert(host.to_owned(), now);
    }

    /// Records whether `host`'s store is failed; whether that is news (a failure not known
    /// before, or a recovery).
    fn note_store(&self, host: &str, is_failed: bool) -> bool {
        let mut failed = self
            .store_failed
            .lock()
            .expect("no panic while holding the liveness lock");
        if is_failed {
            failed.insert(host.to_owned())
        } else {
            failed.remove(host)
        }
    }

    /// Gives every host in `hosts` a full grace period from `now`, as a new master does.
    pub fn restart(&self, hosts: &[String], now: i64) {
        let mut last_heard = self.lock();
        last_heard.clear();
        for host in hosts {
            last_heard.insert(host.clone(), now);
        }
    }

    /// The hosts of `hosts` not heard from for more than `dead_after_secs` at `now`. A host
    /// never heard from starts its count now.
    pub fn silent(&self, hosts: &[String], now: i64, dead_after_secs: i64) -> Vec<String> {
        let mut last_heard = self.lock();
        hosts
            .iter()
            .filter(|host| {
                let heard = *last_heard.entry((*host).clone()).or_insert(now);
                now - heard > dead_after_secs
            })
            .cloned()
            .collect()
    }
}

/// Takes a heartbeat of `host`, which says how it is (`health`): it is heard now; a healthy
/// host is live again if it was not, in which case its agent is asked what it runs (in the
/// background) so the DB adopts what still runs; a host whose store failed is made not live.
pub(crate) async fn heartbeat(master: &Arc<Master>, host: &str, health: &HostHealth) {
    master.liveness.heard(host, master.monotonic_secs());
    let was_live = {
        let db = master.db.read();
        if db.get("host", host).is_none() {
            tracing::debug!(host = %host, "heartbeat of a host the pool does not have");
            return;
        }
        is_live(&db, host)
    };
    if master.shortages.note(host, health.low_space.as_deref())
        && let Some(why) = &health.low_space
    {
        tracing::error!(host = %host, why = %why, "a host is short of room for the pool database: writes refused");
        if let Err(e) = master.space_low(host, why).await {
            tracing::warn!(host = %host, code = %to_api_error(e).code, "space alert not raised");
        }
    }
    let is_news = master
        .liveness
        .note_store(host, health.store_failure.is_some());
    if let Some(reason) = &health.store_failure {
        store_failed(master, host, reason, was_live, is_news).await;
        return;
    }
    if is_news {
        tracing::info!(host = %host, "the store of the host works again");
    }
    if was_live {
        return;
    }
    let outcome = master
        .decide(|db| {
            let mut draft = Draft::new(db);
            set_live(&mut draft, host, true);
            Ok((draft.into_txn(), ()))
        })
        .await;
    if let Err(e) = outcome {
        tracing::warn!(host = %host, code = %to_api_error(e).code, "host not marked live");
        return;
    }
    tracing::info!(host = %host, "host is live again");
    let master = Arc::clone(master);
    let host = host.to_owned();
    tokio::spawn(async move {
        if let Err(e) = crate::pool::reconcile::ask(&master, &host).await {
            let code = to_api_error(e).code;
            tracing::warn!(host = %host, code = %code, "inventory of a returning host failed");
        }
    });
}

/// A heartbeat of `host` says its store failed for `reason`: it is made not live (its VMs
/// stay where they run) and, when the failure `is_news`, an alert is raised.
async fn store_failed(master: &Master, host: &str, reason: &str, was_live: bool, is_news: bool) {
    if was_live {
        let outcome = master
            .decide(|db| {
                let mut draft = Draft::new(db);
                set_live(&mut draft, host, false);
                Ok((draft.into_txn(), ()))
            })
            .await;
        if let Err(e) = outcome {
            tracing::warn!(host = %host, code = %to_api_error(e).code, "host with a failed store not marked dead");
        }
    }
    if is_news {
        tracing::error!(host = %host, reason = %reason, "the store of a host failed: not live");
        if let Err(e) = master.store_failed(host, reason).await {
            // Noted as known all the same: the next heartbeat must not raise a second alert
            // while this one may still be committed by another attempt.
            tracing::warn!(host = %host, code = %to_api_error(e).code, "store failure alert not raised");
        }
    }
}

/// Marks every host other than the master's own that has been silent for more than
/// `dead_after_secs` not live, and halts its VMs; returns the hosts found silent.
pub(crate) async fn check(master: &Master, dead_after_secs: i64) -> Vec<String> {
    let now = master.now();
    let others: Vec<String> = master
        .db
        .read()
        .rows("host")
        .map(|(host, _)| host)
        .filter(|host| *host != master.this_host)
        .map(str::to_owned)
        .collect();
    let silent = master
        .liveness
        .silent(&others, master.monotonic_secs(), dead_after_secs);
    for host in &silent {
        // A silent host writes nothing: its room no longer matters.
        master.shortages.forget(host);
        if let Err(e) = declare_dead(master, host, now).await {
            let code = to_api_error(e).code;
            tracing::warn!(host = %host, code = %code, "silent host not marked dead");
        }
    }
    silent
}

/// Marks `host` not live and halts the VMs the DB has on it (or scheduled to it) that no
/// operation of this process is working on; their dead operations go, tasks failed. Writes
/// nothing when all of that is done already.
async fn declare_dead(master: &Master, host: &str, now: i64) -> Result<(), Error> {
    let (halted, _) = master
        .decide(|db| {
            let mut draft = Draft::new(db);
            let was_live = is_live(db, host);
            set_live(&mut draft, host, false);
            let mut halted = Vec::new();
            for vm in draft.view().refs("VM") {
                let view = draft.view();
                let is_there = view.str("VM", &vm, "resident_on") == host
                    || view.str("VM", &vm, "scheduled_to_be_resident_on") == host;
                if !is_there || view.bool("VM", &vm, "is_control_domain") {
                    continue;
                }
                for field in ["resident_on", "scheduled_to_be_resident_on", "power_state"] {
                    draft.require_unchanged("VM", &vm, field);
                }
                clear_dead_operations(master, &mut draft, &vm, now);
                if is_busy(master, draft.view(), &vm) {
                    continue;
                }
                if power_state(draft.view(), &vm) == VmPowerState::Suspended {
                    let null = Value::str(api_spec::NULL_REF);
                    draft.update("VM", &vm, "scheduled_to_be_resident_on", null);
                } else {
                    set_stopped(&mut draft, &vm, VmPowerState::Halted, now);
                    halted.push(draft.view().str("VM", &vm, "uuid").to_owned());
                }
            }
            if was_live {
                tracing::warn!(host = %host, "host silent too long: not live");
            }
            Ok((draft.into_txn(), halted))
        })
        .await?;
    for vm in &halted {
        tracing::warn!(vm = %vm, host = %host, "VM of a dead host halted");
    }
    Ok(())
}

fn is_live(db: &Db, host: &str) -> bool {
    let Some(metrics) = db
        .get("host", host)
        .map(|row| row.str("metrics").to_owned())
    else {
        return false;
    };
    db.get("host_metrics", &metrics)
        .and_then(|row| row.get("live"))
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// Sets `host_metrics.live` of `host` (a no-op when it already is `live`).
fn set_live(draft: &mut Draft, host: &str, live: bool) {
    let metrics = draft.view().str("host", host, "metrics").to_owned();
    if draft.view().exists("host_metrics", &metrics) {
        draft.update("host_metrics", &metrics, "live", Value::Bool(live));
    }
}

#[cfg(test)]
mod tests {
    use api_spec::NULL_REF;

    use super::*;
    use crate::testing::TestPool;

    const DEAD_AFTER_SECS: i64 = 10;

    fn live(pool: &TestPool, host: &str) -> bool {
        let metrics = pool.text("host", host, "metrics");
        pool.field("host_metrics", &metrics, "live") == Some(Value::Bool(true))
    }

    /// A pool with a second host running one VM (placed there directly), heard from now.
    async fn pool_with_busy_second_host() -> (TestPool, String, String) {
        let pool = TestPool::new();
        let session = pool.login().await;
        let vm = pool.running_vm(&session, "web").await;
        let other = pool.add_host("host2", 64 << 30);
        pool.write("VM", &vm, &[("resident_on", Value::str(other.as_str()))]);
        pool.master.heartbeat(&other, &HostHealth::default()).await;
        (pool, other, vm)
    }

    /// A host silent for longer than the dead time is not live and its VMs are halted, with
    /// nothing left scheduled or in progress; the master's own host is never declared dead;
    /// a second check writes nothing.
    #[tokio::test]
    async fn a_silent_host_is_not_live_and_its_vms_are_halted() {
        let (pool, other, vm) = pool_with_busy_second_host().await;
        pool.clock.advance(DEAD_AFTER_SECS);
        assert!(pool.master.check_liveness(DEAD_AFTER_SECS).await.is_empty());
        assert!(live(&pool, &other));
        pool.clock.advance(1);
        assert_eq!(
            pool.master.check_liveness(DEAD_AFTER_SECS).await,
            std::slice::from_ref(&other)
        );
        assert!(!live(&pool, &other));
        assert!(live(&pool, &pool.host));
        assert_eq!(pool.text("VM", &vm, "power_state"), "Halted");
        assert_eq!(pool.text("VM", &vm, "resident_on"), NULL_REF);
        assert!(pool.current("VM", &vm).is_empty());
        let applied = pool.read().applied_index();
        pool.clock.advance(1);
        assert_eq!(pool.master.check_liveness(DEAD_AFTER_SECS).await, [other]);
        assert_eq!(
            pool.read().applied_index(),
            applied,
            "nothing left to write"
        );
    }

    /// A heartbeat that says the host's store failed makes it not live, leaves its VM running
    /// there (also past the dead time, while heartbeats come) and raises one alert; a healthy
    /// heartbeat makes it live again.
    #[tokio::test]
    async fn a_host_whose_store_failed_is_not_live_but_keeps_its_vms() {
        let (pool, other, vm) = pool_with_busy_second_host().await;
        let failed = HostHealth {
            store_failure: Some("disk full".to_owned()),
            ..HostHealth::default()
        };
        let alerts = |pool: &TestPool| {
            pool.read()
                .rows("message")
                .filter(|(_, row)| row.str("name") == crate::pool::alerts::STORE_FAILED_MESSAGE)
                .map(|(_, row)| row.str("body").to_owned())
                .collect::<Vec<_>>()
        };
        for _ in 0..3 {
            pool.master.heartbeat(&other, &failed).await;
            pool.clock.advance(DEAD_AFTER_SECS);
            assert!(pool.master.check_liveness(DEAD_AFTER_SECS).await.is_empty());
        }
        assert!(!live(&pool, &other));
        assert_eq!(pool.text("VM", &vm, "power_state"), "Running");
        assert_eq!(pool.text("VM", &vm, "resident_on"), other);
        let bodies = alerts(&pool);
        assert_eq!(bodies.len(), 1, "{bodies:?}");
        assert!(bodies[0].contains("disk full"), "{bodies:?}");
        pool.master.heartbeat(&other, &HostHealth::default()).await;
        assert!(live(&pool, &other));
        assert_eq!(alerts(&pool).len(), 1);
    }

    /// A jump of the master's wall clock by two days, forward or back, makes no host silent.
    #[tokio::test]
    async fn a_jump_of_the_wall_clock_makes_no_host_silent() {
        let (pool, other, vm) = pool_with_busy_second_host().await;
        pool.clock.jump(2 * 24 * 3600);
        assert!(pool.master.check_liveness(DEAD_AFTER_SECS).await.is_empty());
        pool.clock.jump(-4 * 24 * 3600);
        pool.clock.advance(1);
        assert!(pool.master.check_liveness(DEAD_AFTER_SECS).await.is_empty());
        assert!(live(&pool, &other));
        assert_eq!(pool.text("VM", &vm, "power_state"), "Running");
    }

    /// A dead host that speaks again is live, and a domain its agent still runs is adopted.
    #[tokio::test]
    async fn a_returning_host_is_live_and_what_it_still_runs_is_adopted() {
        let (pool, other, vm) = pool_with_busy_second_host().await;
        pool.clock.advance(DEAD_AFTER_SECS + 1);
        pool.master.check_liveness(DEAD_AFTER_SECS).await;
        assert_eq!(pool.text("VM", &vm, "power_state"), "Halted");
        pool.master.heartbeat(&other, &HostHealth::default()).await;
        assert!(live(&pool, &other));
        pool.wait_until("the VM adopted", |db| {
            db.get("VM", &vm)
                .is_some_and(|row| row.str("resident_on") == other)
        })
        .await;
        assert_eq!(pool.text("VM", &vm, "power_state"), "Running");
    }

    /// Heartbeats of a live host write nothing, and a host never heard from gets a full dead
    /// time from the first check before it is declared dead.
    #[tokio::test]
    async fn heartbeats_of_live_hosts_write_nothing_and_new_hosts_get_a_grace_period() {
        let pool = TestPool::new();
        let other = pool.add_host("host2", 64 << 30);
        let applied = pool.read().applied_index();
        pool.master.heartbeat(&other, &HostHealth::default()).await;
        pool.master
            .heartbeat(&pool.host, &HostHealth::default())
            .await;
        assert_eq!(pool.read().applied_index(), applied);
        let newcomer = pool.add_host("host3", 64 << 30);
        pool.clock.advance(DEAD_AFTER_SECS + 1);
        assert_eq!(
            pool.master.check_liveness(DEAD_AFTER_SECS).await,
            std::slice::from_ref(&other)
        );
        assert!(live(&pool, &newcomer));
        pool.clock.advance(DEAD_AFTER_SECS + 1);
        let mut silent = pool.master.check_liveness(DEAD_AFTER_SECS).await;
        silent.sort();
        let mut expected = vec![other, newcomer];
        expected.sort();
        assert_eq!(silent, expected);
    }
}
