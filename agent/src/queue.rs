//! Per-VM queues and the worker pool, as xenopsd has them: the jobs of one VM run one at a time
//! in the order they were submitted; at most `workers` jobs run at once across all VMs.
//!
//! A VM with queued jobs has one drain task that runs them in order, taking a worker permit for
//! each job (the semaphore is fair, so a busy VM does not starve the others). Each job runs in
//! a task of its own: a caller that stops waiting does not cut a job short, and a job that
//! panics takes nothing else down.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::BoxFuture;
use tokio::sync::Semaphore;

/// A unit of work on one VM.
pub type Job = BoxFuture<'static, ()>;

/// The queues of every VM and the worker pool they share.
pub struct Queues {
    workers: Arc<Semaphore>,
    /// The jobs waiting, by VM. A VM is here exactly while its drain task runs.
    waiting: Mutex<HashMap<String, VecDeque<Job>>>,
}

impl Queues {
    /// Queues that run at most `workers` jobs at once (at least one).
    pub fn new(workers: usize) -> Arc<Queues> {
        Arc::new(Queues {
            workers: Arc::new(Semaphore::new(workers.max(1))),
            waiting: Mutex::new(HashMap::new()),
        })
    }

    /// Queues `job` behind the jobs already submitted for `vm`. Must run inside the runtime.
    pub fn submit(self: &Arc<Self>, vm: &str, job: Job) {
        let mut waiting = self.lock();
        if let Some(queue) = waiting.get_mut(vm) {
            queue.push_back(job);
            return;
        }
        waiting.insert(vm.to_owned(), VecDeque::new());
        drop(waiting);
        tokio::spawn(Arc::clone(self).drain(vm.to_owned(), job));
    }

    /// How many VMs have jobs queued or running.
    pub fn busy_vms(&self) -> usize {
        self.lock().len()
    }

    async fn drain(self: Arc<Self>, vm: String, first: Job) {
        let mut job = first;
        loop {
            {
                let _permit = Arc::clone(&self.workers)
                    .acquire_owned()
                    .await
                    .expect("the worker semaphore is never closed");
                if let Err(err) = tokio::spawn(job).await {
                    tracing::error!(vm = %vm, error = %err, "a job on the vm's queue failed unexpectedly");
                }
            }
            let mut waiting = self.lock();
            let queue = waiting
                .get_mut(&vm)
                .expect("a vm stays in the map while its drain task runs");
            match queue.pop_front() {
                Some(next) => job = next,
                None => {
                    waiting.remove(&vm);
                    return;
                }
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, VecDeque<Job>>> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::sync::{mpsc, oneshot};

    use super::*;

    /// Jobs of one VM run in submission order, each after the previous one ended.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn jobs_of_one_vm_run_in_order_one_at_a_time() {
        let queues = Queues::new(8);
        let (log, mut read) = mpsc::unbounded_channel();
        let (release, gate) = oneshot::channel::<()>();
        let first_log = log.clone();
        queues.submit(
            "vm",
            Box::pin(async move {
                let _ = first_log.send("first begins");
                let _ = gate.await;
                let _ = first_log.send("first ends");
            }),
        );
        for name in ["second", "third"] {
            let log = log.clone();
            queues.submit(
                "vm",
                Box::pin(async move {
                    let _ = log.send(name);
                }),
            );
        }
        assert_eq!(read.recv().await, Some("first begins"));
        let _ = release.send(());
        let mut seen = Vec::new();
        for _ in 0..3 {
            seen.push(read.recv().await.expect("a job ran"));
        }
        assert_eq!(seen, ["first ends", "second", "third"]);
    }

    /// No more than `workers` jobs run at once, and jobs of other VMs run in parallel up to
    /// that bound.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_worker_bound_holds_across_vms() {
        let queues = Queues::new(3);
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let gate = Arc::new(Semaphore::new(0));
        let (done, mut finished) = mpsc::unbounded_channel();
        let (started, mut arrivals) = mpsc::unbounded_channel();
        for i in 0..10 {
            let (running, most, gate) =
                (Arc::clone(&running), Arc::clone(&most), Arc::clone(&gate));
            let (done, started) = (done.clone(), started.clone());
            queues.submit(
                &format!("vm-{i}"),
                Box::pin(async move {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    let _ = started.send(());
                    gate.acquire().await.expect("the gate stays open").forget();
                    running.fetch_sub(1, Ordering::SeqCst);
                    let _ = done.send(());
                }),
            );
        }
        for _ in 0..3 {
            arrivals.recv().await.expect("three jobs start");
        }
        assert_eq!(running.load(Ordering::SeqCst), 3);
        assert_eq!(queues.busy_vms(), 10);
        gate.add_permits(10);
        for _ in 0..10 {
            finished.recv().await.expect("a job ended");
        }
        assert_eq!(most.load(Ordering::SeqCst), 3);
    }

    /// A job that panics does not stop the VM's queue: the next job still runs, and the VM
    /// leaves the map once its queue is empty.
    #[tokio::test]
    async fn a_panicking_job_does_not_block_the_queue() {
        let queues = Queues::new(1);
        queues.submit(
            "vm",
            Box::pin(async { panic!("this job panics on purpose") }),
        );
        let (tx, rx) = oneshot::channel();
        queues.submit(
            "vm",
            Box::pin(async move {
                let _ = tx.send(());
            }),
        );
        rx.await.expect("the second job ran");
        while queues.busy_vms() != 0 {
            tokio::task::yield_now().await;
        }
    }
}
