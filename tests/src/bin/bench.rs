//! The benchmark: starts a one-host pool and measures, over keep-alive HTTPS, read and write calls
//! per second with 1 and 16 concurrent clients, `VM.start` and `VM.clean_shutdown` throughput on
//! the zero-latency simulator with 1, 10 and 100 concurrent calls, and the delay from a write to
//! the wake-up of a blocked `event.from`; then on a 3-host pool (`cluster`), the replicated write
//! throughput and the failover time; then, where QEMU is installed, real guests on the qemu
//! backend beside bare QEMU (`qemu`, `bare_qemu`) and the storage figures (`storage`). Run it
//! with `tests/bench` (release build).

#[path = "bench/bare_qemu.rs"]
mod bare_qemu;
#[path = "bench/cluster.rs"]
mod cluster;
#[path = "bench/qemu.rs"]
mod qemu;
#[path = "bench/storage.rs"]
mod storage;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use api_spec::Value;
use oxapi_tests::vms::{default_template, halted_vm};
use oxapi_tests::{Client, Host, Protocol, logged_in};

const CONCURRENCY: [usize; 2] = [1, 16];
const WAKEUP_TRIALS: usize = 200;
/// Concurrent `VM.start` / `VM.clean_shutdown` calls measured on the zero-latency simulator.
const LIFECYCLE_CONCURRENCY: [usize; 3] = [1, 10, 100];
/// VMs started (then shut down) at each concurrency.
const LIFECYCLE_VMS: usize = 300;
/// Memory of each of those VMs, small so that all of them fit on one host.
const LIFECYCLE_VM_BYTES: i64 = 32 << 20;

struct Args {
    seconds: u64,
    protocol: Protocol,
    /// Trials of each timed event: failovers on the 3-host pool; starts, suspends and resumes
    /// on QEMU.
    trials: usize,
    /// Skip the 3-host pool's figures.
    is_one_host_only: bool,
    /// Which parts run: the simulator's and the pool's, the QEMU one, or all.
    parts: Parts,
}

/// The parts of the benchmark a run measures.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Parts {
    /// Every part; the QEMU one only where `qemu-system-x86_64` is installed.
    All,
    /// Only the QEMU part (`--qemu`).
    QemuOnly,
    /// Every part but the QEMU one (`--no-qemu`).
    NoQemu,
}

fn parse_args() -> Args {
    let mut args = Args {
        seconds: 5,
        protocol: Protocol::JsonRpc,
        trials: 10,
        is_one_host_only: false,
        parts: Parts::All,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--seconds" => {
                args.seconds = it
                    .next()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or_else(|| usage("--seconds takes a whole number"));
            }
            "--trials" => {
                args.trials = it
                    .next()
                    .and_then(|s| s.parse().ok())
                    .filter(|&n| n > 0)
                    .unwrap_or_else(|| usage("--trials takes a whole number above 0"));
            }
            "--one-host" => args.is_one_host_only = true,
            "--qemu" => args.parts = Parts::QemuOnly,
            "--no-qemu" => args.parts = Parts::NoQemu,
            "--xmlrpc" => args.protocol = Protocol::XmlRpc,
            "--help" | "-h" => usage(""),
            other => usage(&format!("unknown argument {other}")),
        }
    }
    args
}

fn usage(problem: &str) -> ! {
    if !problem.is_empty() {
        eprintln!("bench: {problem}");
    }
    eprintln!(
        "usage: bench [--seconds N] [--trials N] [--one-host] [--xmlrpc] [--qemu | --no-qemu]"
    );
    std::process::exit(2);
}

/// `count` clients of `host`, each logged in on its own connection.
async fn clients_of(host: &Host, protocol: Protocol, count: usize) -> Vec<Client> {
    let mut clients = Vec::with_capacity(count);
    for _ in 0..count {
        clients.push(logged_in(host, protocol).await);
    }
    clients
}

/// Runs `op` from every client of `clients` concurrently for `duration`; returns calls per
/// second.
/// The benchmark's write: `VM.set_name_label(vm, "n<i>")`.
async fn rename(client: Client, vm: String, i: u64) {
    client
        .ok(
            "VM.set_name_label",
            vec![Value::str(vm), Value::str(format!("n{i}"))],
        )
        .await;
}

async fn throughput<F, Fut>(clients: Vec<Client>, duration: Duration, op: F) -> f64
where
    F: Fn(Client, u64) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for client in clients {
        let (done, stop, op) = (done.clone(), stop.clone(), op.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                op(client.clone(), i).await;
                i += 1;
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let start = Instant::now();
    tokio::time::sleep(duration).await;
    let calls = done.load(Ordering::Relaxed);
    let elapsed = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.expect("bench client");
    }
    calls as f64 / elapsed.as_secs_f64()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// The delay from sending a write to the return of an `event.from` that was blocked waiting for it.
async fn wakeup_delays(host: &Host, protocol: Protocol, vm: &str) -> Vec<Duration> {
    let watcher = logged_in(host, protocol).await;
    let writer = logged_in(host, protocol).await;
    let subscription = Value::Array(vec![Value::str(format!("vm/{vm}"))]);
    let first = watcher
        .ok(
            "event.from",
            vec![subscription.clone(), Value::str(""), Value::Float(0.0)],
        )
        .await;
    let mut token = first.as_struct().expect("a struct")["token"].clone();
    let mut delays = Vec::with_capacity(WAKEUP_TRIALS);
    for i in 0..WAKEUP_TRIALS {
        let watch = {
            let watcher = watcher.clone();
            let (subscription, token) = (subscription.clone(), token.clone());
            tokio::spawn(async move {
                let batch = watcher
                    .ok("event.from", vec![subscription, token, Value::Float(30.0)])
                    .await;
                (Instant::now(), batch)
            })
        };
        // Give the watcher's request a head start so that it is blocked when the write lands; if it
        // is not, the measured delay only gets shorter by the part the write spent waiting.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let sent = Instant::now();
        writer
            .ok(
                "VM.set_name_label",
                vec![Value::str(vm), Value::str(format!("wake {i}"))],
            )
            .await;
        let (woke, batch) = watch.await.expect("watcher task");
        token = batch.as_struct().expect("a struct")["token"].clone();
        delays.push(woke.saturating_duration_since(sent));
    }
    delays.sort();
    delays
}

/// Runs `method` on every VM of `vms` from `clients` concurrent clients (each takes the next VM
/// until none is left); returns calls per second.
async fn over_all_vms(
    host: &Host,
    protocol: Protocol,
    clients: usize,
    vms: &Arc<Vec<String>>,
    method: &'static str,
    extra: fn() -> Vec<Value>,
) -> f64 {
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    let mut workers = Vec::new();
    for _ in 0..clients {
        workers.push(logged_in(host, protocol).await);
    }
    let start = Instant::now();
    for client in workers {
        let (next, vms) = (next.clone(), vms.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                let Some(vm) = vms.get(i) else { break };
                let mut params = vec![Value::str(vm)];
                params.extend(extra());
                client.ok(method, params).await;
            }
        }));
    }
    for task in tasks {
        task.await.expect("lifecycle client");
    }
    vms.len() as f64 / start.elapsed().as_secs_f64()
}

/// `count` halted VMs of `memory_bytes` each, cloned from `template`, named `<name> <i>`.
async fn halted_vms(
    admin: &Client,
    template: &str,
    name: &str,
    count: usize,
    memory_bytes: i64,
) -> Vec<String> {
    let mut vms = Vec::with_capacity(count);
    for i in 0..count {
        let name = format!("{name} {i}");
        vms.push(halted_vm(admin, template, &name, memory_bytes).await);
    }
    vms
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    if args.parts != Parts::QemuOnly {
        simulator_and_pool(&args).await;
    }
    match (args.parts, qemu::available()) {
        (Parts::NoQemu, _) => {}
        (_, Ok(())) => qemu::run(args.protocol, args.trials).await,
        (Parts::QemuOnly, Err(why)) => {
            eprintln!("bench: --qemu: {why}");
            std::process::exit(1);
        }
        (Parts::All, Err(why)) => println!("QEMU figures skipped: {why}"),
    }
}

/// The figures on the simulator's one-host pool, then the 3-host pool's.
async fn simulator_and_pool(args: &Args) {
    let duration = Duration::from_secs(args.seconds);
    let host = Host::start();
    let admin = logged_in(&host, args.protocol).await;
    let template = default_template(&admin).await;
    let vm = admin
        .ok(
            "VM.clone",
            vec![Value::str(&template), Value::str("bench vm")],
        )
        .await;
    let vm = vm.as_str().expect("a VM ref").to_owned();

    println!(
        "oxapi benchmark: one-host pool, {:?} over keep-alive HTTPS, {}s per figure",
        args.protocol, args.seconds
    );
    for clients in CONCURRENCY {
        let target = vm.clone();
        let pool = clients_of(&host, args.protocol, clients).await;
        let rate = throughput(pool, duration, move |c, _| {
            let vm = target.clone();
            async move {
                c.ok("VM.get_record", vec![Value::str(vm)]).await;
            }
        })
        .await;
        println!("read   VM.get_record       {clients:>2} clients: {rate:>9.0} calls/s");
    }
    for clients in CONCURRENCY {
        let target = vm.clone();
        let pool = clients_of(&host, args.protocol, clients).await;
        let rate = throughput(pool, duration, move |c, i| rename(c, target.clone(), i)).await;
        println!(
            "write  VM.set_name_label   {clients:>2} clients: {rate:>9.0} calls/s (each committed and fsynced)"
        );
    }
    let vms = halted_vms(
        &admin,
        &template,
        "lifecycle",
        LIFECYCLE_VMS,
        LIFECYCLE_VM_BYTES,
    )
    .await;
    let vms = Arc::new(vms);
    for clients in LIFECYCLE_CONCURRENCY {
        let no_extra: fn() -> Vec<Value> = Vec::new;
        let start_extra: fn() -> Vec<Value> = || vec![Value::Bool(false), Value::Bool(false)];
        let starts =
            over_all_vms(&host, args.protocol, clients, &vms, "VM.start", start_extra).await;
        let stops = over_all_vms(
            &host,
            args.protocol,
            clients,
            &vms,
            "VM.clean_shutdown",
            no_extra,
        )
        .await;
        println!(
            "VM.start           {clients:>3} concurrent: {starts:>7.0} calls/s; VM.clean_shutdown: {stops:>7.0} calls/s (simulator, zero latency, {LIFECYCLE_VMS} VMs)"
        );
    }
    let delays = wakeup_delays(&host, args.protocol, &vm).await;
    println!(
        "event.from wake-up after a write ({WAKEUP_TRIALS} trials): p50 {:.2} ms, p99 {:.2} ms",
        percentile(&delays, 0.50).as_secs_f64() * 1e3,
        percentile(&delays, 0.99).as_secs_f64() * 1e3
    );
    drop(host);
    if !args.is_one_host_only {
        cluster::run(args.protocol, duration, args.trials).await;
    }
}
