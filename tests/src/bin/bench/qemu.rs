//! The QEMU figures, on a one-host pool with the qemu backend and guests of 128 MiB without an
//! OS (KVM where the host finds it usable): `VM.start` end to end beside a bare launch of the
//! same guest (`bare_qemu`), 10 starts at once beside 10 bare launches at once, and
//! `VM.suspend` / `VM.resume`; then the storage figures (`storage`). Oxapi's trials and the
//! bare ones alternate, so that the load of a shared machine falls on both alike.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use api_spec::Value;
use oxapi_tests::qemu::{guest_dir, guest_pid};
use oxapi_tests::vms::default_template;
use oxapi_tests::{Client, Host, HostOptions, Protocol, logged_in};
use tokio::task::JoinSet;

use crate::bare_qemu::{BareGuest, Launched, launch};
use crate::{clients_of, halted_vms, percentile, storage};

/// The memory of every guest.
const GUEST_BYTES: i64 = 128 << 20;
/// How many guests start at once in the concurrent figure.
const AT_ONCE: usize = 10;

/// Runs the QEMU figures with `trials` trials of each.
pub async fn run(protocol: Protocol, trials: usize) {
    let host = Host::start_with(HostOptions {
        root_password: Some(format!("pw-{}", std::process::id())),
        qemu: true,
        ..HostOptions::default()
    });
    let admin = logged_in(&host, protocol).await;
    let template = default_template(&admin).await;
    let vms = halted_vms(&admin, &template, "bench qemu", AT_ONCE, GUEST_BYTES).await;
    let (machine, whole) = bare_guests(&host, &admin, &vms[0]).await;
    let runs_on = host
        .startup_lines
        .iter()
        .find_map(|line| line.strip_prefix("guests run on: "))
        .unwrap_or("(oxapi did not say)");
    println!(
        "QEMU: one-host pool, guests of {} MiB without an OS on {}, {trials} trials; oxapi: guests run on {runs_on}",
        GUEST_BYTES >> 20,
        machine.accel()
    );
    println!(
        "  bare QEMU, same machine: {} {}",
        machine.binary,
        machine.shown_args()
    );
    let mut dirs = BareDirs::new();
    let bare = [&machine, &whole];

    let clients = clients_of(&host, protocol, AT_ONCE).await;
    rounds(&clients[..1], &vms[..1], bare, &mut dirs, trials)
        .await
        .print("VM.start, one VM", "one launch");
    rounds(&clients, &vms, bare, &mut dirs, trials).await.print(
        &format!("{AT_ONCE} VM.start at once, until all replied"),
        &format!("{AT_ONCE} launches at once, until all run"),
    );
    suspend_resume(&admin, &vms[0], trials).await;
    storage::run(&host, &admin, trials).await;
}

/// The bare launches of `vm`'s guest: its machine alone, and oxapi's whole command line; read
/// from the QEMU that oxapi runs for it (started, then stopped, here).
async fn bare_guests(host: &Host, admin: &Client, vm: &str) -> (BareGuest, BareGuest) {
    let uuid = admin.ok("VM.get_uuid", vec![Value::str(vm)]).await;
    let uuid = uuid.as_str().expect("a uuid").to_owned();
    admin.ok("VM.start", start_params(vm)).await;
    let pid = guest_pid(&host.data_dir(), &uuid).expect("a QEMU runs the started VM");
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).expect("QEMU's command line");
    let cmdline: Vec<String> = cmdline
        .split(|byte| *byte == 0)
        .filter(|arg| !arg.is_empty())
        .map(|arg| String::from_utf8_lossy(arg).into_owned())
        .collect();
    admin.ok("VM.hard_shutdown", vec![Value::str(vm)]).await;
    let dir = guest_dir(&host.data_dir(), &uuid);
    (
        BareGuest::machine_of(&cmdline),
        BareGuest::whole_command_line_of(&cmdline, &dir),
    )
}

/// `trials` rounds, after one untimed round (the binary, its libraries and firmware come into
/// the page cache): every VM of `vms` started at once through oxapi (one client of `clients`
/// each), then as many bare launches at once of each of `bare`.
async fn rounds(
    clients: &[Client],
    vms: &[String],
    bare: [&BareGuest; 2],
    dirs: &mut BareDirs,
    trials: usize,
) -> Timings {
    let mut timings = Timings::default();
    for trial in 0..=trials {
        let oxapi = start_all(clients, vms).await;
        let mut launches = [Duration::ZERO; 2];
        for (took, guest) in launches.iter_mut().zip(bare) {
            *took = launch_all(guest, dirs, vms.len()).await;
        }
        if trial > 0 {
            timings.push(oxapi, launches);
        }
    }
    timings
}

/// `VM.start(vm, start_paused = false, force = false)`.
fn start_params(vm: &str) -> Vec<Value> {
    vec![Value::str(vm), Value::Bool(false), Value::Bool(false)]
}

/// Times `VM.start` of every VM of `vms` at once, one per client, until all replied; then
/// stops them (untimed).
async fn start_all(clients: &[Client], vms: &[String]) -> Duration {
    let each = |method: &'static str, params: fn(&str) -> Vec<Value>| {
        let mut calls = JoinSet::new();
        for (client, vm) in clients.iter().zip(vms) {
            let (client, params) = (client.clone(), params(vm));
            calls.spawn(async move { client.ok(method, params).await });
        }
        calls.join_all()
    };
    let sent = Instant::now();
    each("VM.start", start_params).await;
    let took = sent.elapsed();
    each("VM.hard_shutdown", |vm| vec![Value::str(vm)]).await;
    took
}

/// Launches `guest` `count` times at once, each in a new directory of `dirs`; times them
/// until all run, then stops them (untimed).
async fn launch_all(guest: &BareGuest, dirs: &mut BareDirs, count: usize) -> Duration {
    let dirs: Vec<PathBuf> = (0..count).map(|_| dirs.next()).collect();
    let mut launches = JoinSet::new();
    let started = Instant::now();
    for dir in dirs {
        let guest = guest.clone();
        launches.spawn(async move { launch(&guest, dir).await.1 });
    }
    let launched: Vec<Launched> = launches.join_all().await;
    let took = started.elapsed();
    for qemu in launched {
        qemu.stop().await;
    }
    took
}

/// `VM.suspend` then `VM.resume` of `vm`, `trials` times each, timed end to end; a failure is
/// printed as the figure.
async fn suspend_resume(admin: &Client, vm: &str, trials: usize) {
    admin.ok("VM.start", start_params(vm)).await;
    let (mut suspends, mut resumes) = (Vec::new(), Vec::new());
    for _ in 0..trials {
        let sent = Instant::now();
        if let Err(e) = admin.call("VM.suspend", vec![Value::str(vm)]).await {
            println!("VM.suspend, one VM of 128 MiB: failed: {e}");
            break;
        }
        suspends.push(sent.elapsed());
        let sent = Instant::now();
        let resumed = admin.call("VM.resume", start_params(vm)).await;
        if let Err(e) = resumed {
            println!("VM.resume, one VM of 128 MiB: failed: {e}");
            break;
        }
        resumes.push(sent.elapsed());
    }
    for (what, times) in [("VM.suspend", &mut suspends), ("VM.resume", &mut resumes)] {
        if !times.is_empty() {
            println!("{what}, one VM of 128 MiB: {}", Spread::of(times));
        }
    }
    let power_state = admin.ok("VM.get_power_state", vec![Value::str(vm)]).await;
    if power_state.as_str() != Some("Halted") {
        admin.ok("VM.hard_shutdown", vec![Value::str(vm)]).await;
    }
}

/// A new directory for each bare QEMU, all in one temp dir that goes with it.
struct BareDirs {
    root: tempfile::TempDir,
    made: usize,
}

impl BareDirs {
    fn new() -> BareDirs {
        let root = tempfile::Builder::new()
            .prefix("oxapi-bench-qemu-")
            .tempdir()
            .expect("a temp dir for the bare QEMUs");
        BareDirs { root, made: 0 }
    }

    /// The path of a directory no launch has used (the launch makes it).
    fn next(&mut self) -> PathBuf {
        self.made += 1;
        self.root.path().join(format!("b{}", self.made))
    }
}

/// The times of oxapi and of both bare launches (same machine, whole command line), trial by
/// trial.
#[derive(Default)]
struct Timings {
    oxapi: Vec<Duration>,
    bare: Vec<Duration>,
    bare_whole: Vec<Duration>,
}

impl Timings {
    fn push(&mut self, oxapi: Duration, [bare, bare_whole]: [Duration; 2]) {
        self.oxapi.push(oxapi);
        self.bare.push(bare);
        self.bare_whole.push(bare_whole);
    }

    /// Prints the three spreads and the ratio of the medians, oxapi / bare.
    fn print(&mut self, oxapi: &str, bare: &str) {
        let oxapi_spread = Spread::of(&mut self.oxapi);
        let bare_spread = Spread::of(&mut self.bare);
        let whole_spread = Spread::of(&mut self.bare_whole);
        let ratio = oxapi_spread.p50.as_secs_f64() / bare_spread.p50.as_secs_f64();
        println!("{oxapi} (oxapi): {oxapi_spread}");
        println!("  bare QEMU, same machine, {bare}: {bare_spread}");
        println!("  bare QEMU, oxapi's whole command line, {bare}: {whole_spread}");
        println!("  ratio oxapi / bare (p50): {ratio:.2}");
    }
}

/// The median, shortest and longest of some times.
pub struct Spread {
    p50: Duration,
    min: Duration,
    max: Duration,
}

impl Spread {
    /// The spread of `times` (sorted in place; at least one).
    pub fn of(times: &mut [Duration]) -> Spread {
        times.sort();
        Spread {
            p50: percentile(times, 0.5),
            min: times[0],
            max: times[times.len() - 1],
        }
    }
}

impl std::fmt::Display for Spread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        write!(
            f,
            "p50 {:.1} ms, min {:.1} ms, max {:.1} ms",
            ms(self.p50),
            ms(self.min),
            ms(self.max)
        )
    }
}

/// Whether the QEMU part can run here; `Err` says why not.
pub fn available() -> Result<(), &'static str> {
    if oxapi_tests::qemu_available() {
        Ok(())
    } else {
        Err("qemu-system-x86_64 is not installed (tests/run installs it)")
    }
}
