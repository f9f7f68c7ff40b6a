//! The bounds on argon2 work: a login's password check costs ~19 MiB and ~20 ms of a core,
//! and anyone who reaches the port may ask for one (a wrong password needs no password).
//!
//! - At most `password_checks` argon2 runs (checks and new hashes) at once, on blocking
//!   threads; a caller waits for a free slot in arrival order. A run keeps its slot until it
//!   ends, even when its caller has gone away. One `PasswordChecks` serves every `Master` of a
//!   process (`Master::reader` shares it), so the bound is the process's. (That the memory of
//!   a run is given back when it ends is `member`'s doing: its `main` has large blocks mapped
//!   on their own.)
//! - A source (the caller's `Origin`: its IP, carried across forwarding) has one check at a
//!   time, and a check that does not succeed holds the source for `password_failure_delay_ms`
//!   from its start: the answer comes no sooner, and nor does the source's next check. The
//!   hold is set before the check runs, so a caller that goes away mid-check shortens
//!   nothing.
//! - `verdict` runs argon2 whatever the user name, so an unknown user costs what a wrong
//!   password costs and no user name shows by the time its answer takes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::Origin;
use crate::error::Error;

/// The argon2 slots and the failure delays of one process.
pub(crate) struct PasswordChecks {
    /// One permit per argon2 run allowed at once.
    running: Arc<Semaphore>,
    failure_delay: Duration,
    /// Each source's turn, and until when its last check that did not succeed holds it. A
    /// turn that nobody holds or waits for and that holds nothing any more is dropped at the
    /// next check.
    sources: Mutex<HashMap<Origin, Arc<tokio::sync::Mutex<Option<Instant>>>>>,
}

impl PasswordChecks {
    /// At most `concurrency` (at least one) argon2 runs at once; `failure_delay` after a
    /// check that does not succeed.
    pub fn new(concurrency: usize, failure_delay: Duration) -> PasswordChecks {
        PasswordChecks {
            running: Arc::new(Semaphore::new(concurrency.max(1))),
            failure_delay,
            sources: Mutex::default(),
        }
    }

    /// Runs `check` (an argon2 verification, such as `verdict`) for a caller from `origin`
    /// in the source's turn and a slot of the pool; returns its result, after the failure
    /// delay when it is `false`.
    pub async fn check(
        &self,
        origin: Origin,
        check: impl FnOnce() -> bool + Send + 'static,
    ) -> Result<bool, Error> {
        let turn = self.turn_of(origin);
        let mut held = turn.lock().await;
        if let Some(until) = *held {
            tokio::time::sleep_until(until).await;
        }
        let until = Instant::now() + self.failure_delay;
        *held = Some(until);
        let matches = self.run(check).await?;
        if matches {
            *held = None;
        } else {
            tokio::time::sleep_until(until).await;
        }
        Ok(matches)
    }

    /// Runs `work` (an argon2 hash) in a slot of the pool, on a blocking thread, without a
    /// turn or a delay.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Error> {
        let permit = Arc::clone(&self.running)
            .acquire_owned()
            .await
            .expect("the argon2 semaphore is never closed");
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work()
        })
        .await
        .map_err(Error::PasswordThread)
    }

    /// The turn of `origin`, shared with its other checks.
    fn turn_of(&self, origin: Origin) -> Arc<tokio::sync::Mutex<Option<Instant>>> {
        let now = Instant::now();
        let mut sources = self
            .sources
            .lock()
            .expect("no panic under the password sources lock");
        sources.retain(|_, turn| {
            Arc::strong_count(turn) > 1
                || turn
                    .try_lock()
                    .map_or(true, |held| held.is_some_and(|until| until > now))
        });
        Arc::clone(sources.entry(origin).or_default())
    }
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
                            // Stays until a second check runs beside it (a check left last
                            // alone gives up after a while), so that the pool fills up.
                            let until = std::time::Instant::now() + Duration::from_secs(1);
                            while running.load(Ordering::SeqCst) < 2
                                && std::time::Instant::now() < until
                            {
                                std::thread::yield_now();
                            }
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
    /// long.
    // Paused time: the delay passes without waiting (time only moves forward, so the lower
    // bounds below hold).
    #[tokio::test(start_paused = true)]
    async fn a_failure_holds_its_source_for_the_delay() {
        let delay = Duration::from_secs(2);
        let checks = Arc::new(PasswordChecks::new(4, delay));
        let start = Instant::now();
        let first = checks.check(from(1), || false).await;
        assert!(!first.expect("checked"));
        assert!(start.elapsed() >= delay, "{:?}", start.elapsed());
        let start = Instant::now();
        let (first, second) = tokio::join!(
            checks.check(from(1), || false),
            checks.check(from(1), || true),
        );
        assert_eq!(
            (first.expect("checked"), second.expect("checked")),
            (false, true)
        );
        assert!(start.elapsed() >= delay, "{:?}", start.elapsed());
    }

    /// A source held by a failure holds no other source, whose right password answers at once.
    #[tokio::test]
    async fn a_failure_holds_no_other_source() {
        let checks = Arc::new(PasswordChecks::new(4, Duration::from_secs(3600)));
        let (held, has_run) = failing_check(&checks, from(2));
        has_run.await.expect("the check ran");
        assert!(checks.check(from(3), || true).await.expect("checked"));
        assert!(!held.is_finished());
        held.abort();
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
        let start = Instant::now();
        let (gone, has_run) = failing_check(&checks, from(1));
        has_run.await.expect("the check ran");
        gone.abort();
        assert!(checks.check(from(1), || true).await.expect("checked"));
        assert!(start.elapsed() >= delay, "{:?}", start.elapsed());
    }
}
