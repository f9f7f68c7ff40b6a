//! The bounds on argon2 work: a login's password check costs ~19 MiB and ~20 ms of a core,
//! and anyone who reaches the port may ask for one (a wrong password needs no password).
//!
//! - At most `password_checks` argon2 runs (checks and new hashes) at once, on blocking
//!   threads; the others wait in arrival order. One `PasswordChecks` serves every `Master` of
//!   a process (`Master::reader` shares it), so the bound is the process's.
//! - A source (the caller's `Origin`: its IP, carried across forwarding) has one check at a
//!   time, and a failed check holds the source's turn for `password_failure_delay_ms` before
//!   its answer: one source guesses at most once per delay, however many connections it
//!   opens. Once a check has started, it and its delay run to the end even if the caller goes
//!   away, so neither a dropped connection shortens the delay nor frees a slot of the pool
//!   while argon2 still runs.
//! - `verdict` runs argon2 whatever the user name, so an unknown user costs what a wrong
//!   password costs and no user name shows by the time its answer takes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;

use crate::Origin;
use crate::error::Error;

/// The argon2 pool and the failure delays of one process.
pub(crate) struct PasswordChecks {
    /// One permit per argon2 run allowed at once.
    running: Arc<Semaphore>,
    failure_delay: Duration,
    /// The turn of each source with a check waiting, running or in its failure delay; a turn
    /// nobody holds is dropped at the next check.
    sources: Mutex<HashMap<Origin, Arc<tokio::sync::Mutex<()>>>>,
}

impl PasswordChecks {
    /// At most `concurrency` (at least one) argon2 runs at once; `failure_delay` after a
    /// failed check.
    pub fn new(concurrency: usize, failure_delay: Duration) -> PasswordChecks {
        PasswordChecks {
            running: Arc::new(Semaphore::new(concurrency.max(1))),
            failure_delay,
            sources: Mutex::default(),
        }
    }

    /// Runs `check` (an argon2 verification, such as `verdict`) for a caller from `origin`,
    /// in the source's turn and within the pool; returns its result, after the failure delay
    /// when it is `false`.
    pub async fn check(
        &self,
        origin: Origin,
        check: impl FnOnce() -> bool + Send + 'static,
    ) -> Result<bool, Error> {
        let turn = self.turn_of(origin).lock_owned().await;
        let permit = self.permit().await;
        let delay = self.failure_delay;
        let checked = tokio::spawn(async move {
            let matches = run_blocking(permit, check).await;
            if !matches!(matches, Ok(true)) {
                tokio::time::sleep(delay).await;
            }
            drop(turn);
            matches
        });
        checked.await.map_err(Error::PasswordThread)?
    }

    /// Runs `work` (an argon2 hash) within the pool, without a turn or a delay.
    pub async fn hash<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Error> {
        let permit = self.permit().await;
        run_blocking(permit, work).await
    }

    async fn permit(&self) -> tokio::sync::OwnedSemaphorePermit {
        Arc::clone(&self.running)
            .acquire_owned()
            .await
            .expect("the password check semaphore is never closed")
    }

    /// The turn of `origin`, shared with its other checks.
    fn turn_of(&self, origin: Origin) -> Arc<tokio::sync::Mutex<()>> {
        let mut sources = self
            .sources
            .lock()
            .expect("no panic under the password sources lock");
        sources.retain(|_, turn| Arc::strong_count(turn) > 1);
        Arc::clone(sources.entry(origin).or_default())
    }
}

/// Runs `work` on a blocking thread that holds `permit` until `work` ends.
async fn run_blocking<T: Send + 'static>(
    permit: tokio::sync::OwnedSemaphorePermit,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        work()
    })
    .await
    .map_err(Error::PasswordThread)
}

/// Whether `uname` and `password` are root's, `hash` being root's stored hash (none: nobody
/// logs in). `matches` (argon2) runs whatever the user name: an unknown user costs what a
/// wrong password costs.
pub(crate) fn verdict(
    uname: &str,
    password: &str,
    hash: Option<&str>,
    matches: impl FnOnce(&str, &str) -> bool,
) -> bool {
    let Some(hash) = hash else {
        return false;
    };
    let is_root_password = matches(password, hash);
    uname == "root" && is_root_password
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn from(last: u8) -> Origin {
        Origin::Network {
            peer: Some(std::net::IpAddr::from([10, 0, 0, last])),
        }
    }

    /// An unknown user name goes through the same argon2 check as root's wrong password, and
    /// only root's right password passes.
    #[test]
    fn every_user_name_costs_one_argon2_check() {
        let checks = AtomicUsize::new(0);
        let matches = |password: &str, hash: &str| {
            checks.fetch_add(1, Ordering::SeqCst);
            password == "secret" && hash == "root's hash"
        };
        let hash = Some("root's hash");
        assert!(!verdict("admin", "secret", hash, matches));
        assert!(!verdict("admin", "wrong", hash, matches));
        assert!(!verdict("root", "wrong", hash, matches));
        assert!(verdict("root", "secret", hash, matches));
        assert_eq!(checks.load(Ordering::SeqCst), 4);
        assert!(!verdict("root", "secret", None, matches));
    }

    /// However many checks are asked for at once, no more than the pool's size run together.
    #[tokio::test]
    async fn no_more_checks_run_at_once_than_the_pool_allows() {
        let checks = Arc::new(PasswordChecks::new(2, Duration::ZERO));
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let asked: Vec<_> = (0..12)
            .map(|i| {
                let (checks, running, most) = (checks.clone(), running.clone(), most.clone());
                tokio::spawn(async move {
                    checks
                        .check(from(i), move || {
                            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                            most.fetch_max(now, Ordering::SeqCst);
                            // Long enough for the other blocking threads to start meanwhile.
                            std::thread::sleep(Duration::from_millis(20));
                            running.fetch_sub(1, Ordering::SeqCst);
                            false
                        })
                        .await
                })
            })
            .collect();
        for check in asked {
            assert!(!check.await.expect("no panic").expect("checked"));
        }
        assert_eq!(most.load(Ordering::SeqCst), 2);
    }

    /// A failed check answers after the failure delay and holds its source's next check that
    /// long; another source is not held, and a right password answers at once.
    #[tokio::test(start_paused = true)]
    async fn a_failure_holds_its_source_for_the_delay() {
        let delay = Duration::from_secs(2);
        let checks = Arc::new(PasswordChecks::new(4, delay));
        let start = tokio::time::Instant::now();
        let (first, second) = tokio::join!(
            checks.check(from(1), || false),
            checks.check(from(1), || true),
        );
        assert_eq!(
            (first.expect("checked"), second.expect("checked")),
            (false, true)
        );
        assert!(start.elapsed() >= delay, "{:?}", start.elapsed());

        let start = tokio::time::Instant::now();
        let (held, has_run) = failing_check(&checks, from(2));
        has_run.await.expect("the check ran");
        assert!(checks.check(from(3), || true).await.expect("checked"));
        assert!(start.elapsed() < delay);
        assert!(!held.await.expect("no panic").expect("checked"));
        assert!(start.elapsed() >= delay);
    }

    /// A failing check from `origin` in a task of its own, and the news that argon2 (here a
    /// stand-in) has run.
    fn failing_check(
        checks: &Arc<PasswordChecks>,
        origin: Origin,
    ) -> (
        tokio::task::JoinHandle<Result<bool, Error>>,
        tokio::sync::oneshot::Receiver<()>,
    ) {
        let (ran, has_run) = tokio::sync::oneshot::channel();
        let checks = Arc::clone(checks);
        let check = tokio::spawn(async move {
            checks
                .check(origin, move || {
                    let _ = ran.send(());
                    false
                })
                .await
        });
        (check, has_run)
    }

    /// A caller that goes away during a failed check does not shorten its source's delay.
    #[tokio::test(start_paused = true)]
    async fn a_caller_gone_does_not_shorten_the_delay() {
        let delay = Duration::from_secs(2);
        let checks = Arc::new(PasswordChecks::new(4, delay));
        let start = tokio::time::Instant::now();
        let (gone, has_run) = failing_check(&checks, from(1));
        has_run.await.expect("the check ran");
        gone.abort();
        assert!(checks.check(from(1), || true).await.expect("checked"));
        assert!(start.elapsed() >= delay, "{:?}", start.elapsed());
    }
}
