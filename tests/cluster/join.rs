//! Joining and ejecting hosts with the XenAPI on real `oxapi` processes: the pool they form, and
//! the errors xapi gives for a join or an eject that cannot be done.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener};
use std::time::{Duration, Instant};

use api_spec::Value;
use oxapi_tests::cluster::{Cluster, ClusterOptions, vm};
use oxapi_tests::host::HTTPS_PORT;
use oxapi_tests::{Protocol, memory_bytes};
use serde_json::json;

/// How soon after saying it is ready a joiner answers calls.
const SERVE_LIMIT: Duration = Duration::from_secs(2);
/// Time between two looks at a joiner that must stay live.
const WATCH_POLL: Duration = Duration::from_millis(200);

/// The host refs of the pool's `class` records' `host` field, through `client`.
async fn hosts_of(client: &oxapi_tests::Client, class: &str) -> BTreeSet<String> {
    let records = client.ok(&format!("{class}.get_all_records"), vec![]).await;
    records
        .as_struct()
        .expect("a map of records")
        .values()
        .filter_map(|r| r.as_struct()?.get("host")?.as_str().map(str::to_owned))
        .collect()
}

/// Three one-host pools joined with `pool.join`: every host lists the three hosts and their
/// PIFs and local SRs' PBDs, every joiner restarted in place (same pid) and now takes the
/// pool's root password, not its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_hosts_joined_form_one_pool() {
    let mut cluster = Cluster::start(ClusterOptions::hosts(3).unjoined()).await;
    for i in 1..3 {
        cluster
            .join(i, 0)
            .await
            .unwrap_or_else(|e| panic!("host {i} cannot join: {e}"));
    }
    let master = cluster.settle(&[0, 1, 2]).await;
    assert_eq!(master, 0, "the first host stays master");

    let all: BTreeSet<String> = cluster.nodes.iter().map(|n| n.host_ref()).collect();
    for i in 0..3 {
        let seen: BTreeSet<String> = cluster.hosts_seen_by(i).await.into_iter().collect();
        assert_eq!(seen, all, "host {i} lists the pool's hosts");
        let client = cluster.nodes[i].login(Protocol::XmlRpc).await;
        assert_eq!(hosts_of(&client, "PIF").await, all, "every host has PIFs");
        assert_eq!(hosts_of(&client, "PBD").await, all, "every host has its SR");
    }
    for node in &cluster.nodes[1..] {
        let (client, own) = (node.client(Protocol::JsonRpc), &node.first_password);
        let err = client
            .call_raw(
                "session.login_with_password",
                vec![Value::str("root"), Value::str(own)],
            )
            .await
            .expect_err("a joiner's own password no longer works");
        assert_eq!(err.code, "SESSION_AUTHENTICATION_FAILED");
    }
}

/// A joiner answers a call (forwarded to the master) within 2 s of its ready line, and its
/// restart costs it nothing: for longer than the pool's dead time it keeps answering, is not
/// fenced and is not marked not live. The master's stream to it, refused while it restarted,
/// comes back as soon as it is up.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_joiner_serves_at_once_and_stays_live() {
    let mut cluster = Cluster::start(ClusterOptions::hosts(2).unjoined()).await;
    let session = cluster.nodes[0]
        .login(Protocol::JsonRpc)
        .await
        .session
        .expect("logged in");
    cluster.join(1, 0).await.expect("host 1 joins host 0");
    let ready_at = Instant::now();
    if let Err(failure) = cluster
        .answers_by(1, &session, ready_at + SERVE_LIMIT)
        .await
    {
        panic!(
            "the joiner did not answer within {SERVE_LIMIT:?} of its ready line: {failure}\n{}",
            cluster.log_tails(&[0, 1])
        );
    }
    let watch_until = ready_at + Duration::from_secs(cluster.options.dead_after_secs + 1);
    let joiner = cluster.nodes[1].host_ref();
    loop {
        let fenced = cluster.nodes[1].logs().contains("host fenced");
        let dead = cluster.nodes[0]
            .logs()
            .lines()
            .any(|l| l.contains("host silent too long") && l.contains(&joiner));
        assert!(
            !fenced && !dead,
            "the joiner was fenced ({fenced}) or marked not live ({dead})\n{}",
            cluster.log_tails(&[0, 1])
        );
        if Instant::now() >= watch_until {
            break;
        }
        let deadline = Instant::now() + SERVE_LIMIT;
        if let Err(failure) = cluster.answers_by(1, &session, deadline).await {
            panic!(
                "the joiner stopped answering: {failure}\n{}",
                cluster.log_tails(&[0, 1])
            );
        }
        tokio::time::sleep(WATCH_POLL).await;
    }
}

/// A join with a wrong password for the master is refused with `SESSION_AUTHENTICATION_FAILED`
/// and leaves the joiner its own pool.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn join_with_a_wrong_password_is_refused() {
    let mut cluster = Cluster::start(ClusterOptions::hosts(2).unjoined()).await;
    let address = cluster.nodes[0].address();
    let err = cluster
        .join_with(1, &address, "not the password")
        .await
        .expect_err("refused");
    assert_eq!(err.code, "SESSION_AUTHENTICATION_FAILED");
    assert_eq!(cluster.hosts_seen_by(1).await.len(), 1);
    assert_eq!(cluster.hosts_seen_by(0).await.len(), 1);
}

/// A join towards an address where no oxapi listens fails with `JOINING_HOST_CONNECTION_FAILED`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn join_to_an_unreachable_master_fails() {
    let mut cluster = Cluster::start(ClusterOptions::hosts(1).unjoined()).await;
    let nobody = format!("{}:4443", cluster.subnet.host(200));
    let password = cluster.password().to_owned();
    let err = cluster
        .join_with(0, &nobody, &password)
        .await
        .expect_err("nobody answers there");
    assert_eq!(err.code, "JOINING_HOST_CONNECTION_FAILED");
    assert_eq!(cluster.hosts_seen_by(0).await.len(), 1);
}

/// Whatever answers at a `pool.join` address may stream an endless reply to the login: the join
/// fails with `JOINING_HOST_CONNECTION_FAILED` within seconds, and the joiner's peak memory
/// grows by far less than what was streamed at it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn join_to_a_master_streaming_an_endless_reply_fails_in_bounded_memory() {
    let mut cluster = Cluster::start(ClusterOptions::hosts(1).unjoined()).await;
    let fake = EndlessMaster::start(cluster.subnet.host(201));
    let pid = cluster.nodes[0].pid().expect("the joiner runs");
    let before = memory_bytes(pid, "VmHWM").max(memory_bytes(pid, "VmRSS"));
    let password = cluster.password().to_owned();
    let started = Instant::now();
    let err = cluster
        .join_with(0, &fake.address, &password)
        .await
        .expect_err("the join fails");
    let took = started.elapsed();
    assert_eq!(err.code, "JOINING_HOST_CONNECTION_FAILED");
    assert!(took < Duration::from_secs(10), "the join took {took:?}");
    let peak = memory_bytes(pid, "VmHWM");
    assert!(
        peak < before + 64 * 1024 * 1024,
        "the joiner's peak grew from {before} to {peak} bytes"
    );
    assert_eq!(cluster.hosts_seen_by(0).await.len(), 1);
}

/// The master of a pool of two cannot join another pool
/// (`JOINING_HOST_CANNOT_BE_MASTER_OF_OTHER_HOSTS`); both pools are left as they were.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_master_of_other_hosts_cannot_join() {
    let mut cluster = Cluster::start(ClusterOptions::hosts(3).unjoined()).await;
    cluster.join(1, 0).await.expect("host 1 joins host 0");
    cluster.settle(&[0, 1]).await;
    let err = cluster.join(0, 2).await.expect_err("refused");
    assert_eq!(err.code, "JOINING_HOST_CANNOT_BE_MASTER_OF_OTHER_HOSTS");
    assert_eq!(cluster.hosts_seen_by(0).await.len(), 2);
    assert_eq!(cluster.hosts_seen_by(2).await.len(), 1);
}

/// A host with a running VM cannot join (`JOINING_HOST_CANNOT_HAVE_RUNNING_VMS`); once the VM is
/// shut down, it can.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_joiner_with_a_running_vm_is_refused() {
    let mut cluster = Cluster::start(ClusterOptions::hosts(2).unjoined()).await;
    let joiner = cluster.nodes[1].login(Protocol::JsonRpc).await;
    let guest = vm::new_vm(&joiner, "running on the joiner").await;
    vm::start(&joiner, &guest).await.expect("the VM starts");
    let err = cluster.join(1, 0).await.expect_err("refused");
    assert_eq!(err.code, "JOINING_HOST_CANNOT_HAVE_RUNNING_VMS");

    joiner
        .ok("VM.hard_shutdown", vec![Value::str(&guest)])
        .await;
    cluster.join(1, 0).await.expect("the join succeeds now");
    cluster.settle(&[0, 1]).await;
    assert_eq!(cluster.hosts_seen_by(1).await.len(), 2);
}

/// `pool.eject` of a host with a VM resident is refused and changes nothing; of a host without,
/// it leaves the pool (two hosts remain, still writable) and comes back as a one-host pool of
/// its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eject_is_refused_with_resident_vms_and_resets_the_host_without() {
    let mut cluster = Cluster::start(ClusterOptions::hosts(3)).await;
    let master = cluster.settle(&[0, 1, 2]).await;
    let doomed = (0..3).find(|&i| i != master).expect("a non-master");
    let doomed_ref = cluster.nodes[doomed].host_ref();
    let admin = cluster.nodes[master].login(Protocol::JsonRpc).await;
    let guest = vm::running_on(&admin, "resident", &doomed_ref).await;
    let err = admin
        .call("pool.eject", vec![Value::str(&doomed_ref)])
        .await
        .expect_err("a host with a resident VM cannot be ejected");
    assert!(!err.code.is_empty());
    assert_eq!(cluster.hosts_seen_by(master).await.len(), 3);

    admin.ok("VM.hard_shutdown", vec![Value::str(&guest)]).await;
    let ready = cluster.nodes[doomed].ready_count();
    admin.ok("pool.eject", vec![Value::str(&doomed_ref)]).await;
    cluster.nodes[doomed].wait_ready(ready + 1).await;
    let rest: Vec<usize> = (0..3).filter(|&i| i != doomed).collect();
    let master = cluster.wait_for_master(&rest).await;
    let hosts = cluster.hosts_seen_by(master).await;
    assert_eq!(hosts.len(), 2);
    assert!(!hosts.contains(&doomed_ref));
    let admin = cluster.nodes[master].login(Protocol::JsonRpc).await;
    admin
        .ok(
            "VM.set_name_label",
            vec![Value::str(&guest), Value::str("after eject")],
        )
        .await;

    // The ejected host is a fresh one-host pool: its own master, one host, none of the pool's VMs.
    // Its root password is the one of its first start (its environment's), or the pool's.
    let pool_password = cluster.password().to_owned();
    let node = &mut cluster.nodes[doomed];
    node.password = node.first_password.clone();
    if cluster.try_login(doomed).await.is_none() {
        cluster.nodes[doomed].password = pool_password;
    }
    let alone = cluster.nodes[doomed].login(Protocol::JsonRpc).await;
    let hosts = alone.ok("host.get_all", vec![]).await;
    assert_eq!(hosts.as_array().map(<[_]>::len), Some(1));
    let err = alone
        .call("VM.get_record", vec![Value::str(&guest)])
        .await
        .expect_err("the pool's VM is not in the fresh pool");
    assert_eq!(err.code, "HANDLE_INVALID");
}

/// A joiner whose CPUs are not the master's (another vendor and flags, as the simulator
/// presents them with `simulator.cpu`) is refused with `HOSTS_NOT_HOMOGENEOUS`;
/// `pool.join_force` skips that check and the joiner's CPUs are then the pool's record of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_joiner_with_other_cpus_needs_join_force() {
    let mut options = ClusterOptions::hosts(2).unjoined();
    let cpu = json!({ "vendor": "OxapiTestVendor", "flags": "fpu vme" });
    options
        .host_config
        .insert(1, json!({ "simulator": { "cpu": cpu } }));
    let mut cluster = Cluster::start(options).await;
    let err = cluster.join(1, 0).await.expect_err("refused");
    assert_eq!(err.code, "HOSTS_NOT_HOMOGENEOUS");
    assert_eq!(cluster.hosts_seen_by(0).await.len(), 1);
    assert_eq!(cluster.hosts_seen_by(1).await.len(), 1);

    cluster.join_force(1, 0).await.expect("a forced join");
    cluster.settle(&[0, 1]).await;
    assert_eq!(cluster.hosts_seen_by(0).await.len(), 2);
    let admin = cluster.nodes[0].login(Protocol::JsonRpc).await;
    let joiner = cluster.nodes[1].host_ref();
    let cpus = admin.ok("host_cpu.get_all_records", vec![]).await;
    let vendors: BTreeSet<String> = cpus
        .as_struct()
        .expect("a map of records")
        .values()
        .filter_map(Value::as_struct)
        .filter(|cpu| cpu.get("host").and_then(Value::as_str) == Some(joiner.as_str()))
        .filter_map(|cpu| cpu.get("vendor")?.as_str().map(str::to_owned))
        .collect();
    assert_eq!(vendors, BTreeSet::from(["OxapiTestVendor".to_owned()]));
}

/// The master refuses a joiner of another API version with
/// `POOL_JOINING_HOST_MUST_HAVE_SAME_API_VERSION` naming both versions, and adds nothing: the
/// joiner is played by the test, which sends the master's join route what an older oxapi would.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_joiner_of_another_api_version_is_refused() {
    let cluster = Cluster::start(ClusterOptions::hosts(1).unjoined()).await;
    let master = cluster.nodes[0].login(Protocol::JsonRpc).await;
    let host = Value::str(cluster.nodes[0].host_ref());
    let major = master
        .ok("host.get_API_version_major", vec![host.clone()])
        .await;
    let minor = master.ok("host.get_API_version_minor", vec![host]).await;
    let ours = format!(
        "{}.{}",
        major.as_int().expect("an int"),
        minor.as_int().expect("an int")
    );
    let cpu = json!({
        "number": 0, "vendor": "v", "model_name": "m", "family": 6, "model": 1,
        "stepping": "1", "speed_mhz": 1000, "flags": "fpu"
    });
    let request = json!({
        "session": master.session.clone().expect("logged in"),
        "force": false,
        "member": {
            "node_id": 4242,
            "host": "OpaqueRef:00000000-0000-4000-8000-00000000abcd",
            "address": format!("{}:4443", cluster.subnet.host(9)),
            "cert_sha256": "00".repeat(32),
        },
        "host_uuid": "00000000-0000-4000-8000-00000000abcd",
        "api_version_major": 1,
        "api_version_minor": 1,
        "facts": {
            "hostname": "older", "address": cluster.subnet.host(9).to_string(),
            "memory_total_bytes": 1u64 << 34, "cpus": [cpu],
            "management_device": "lo", "management_mac": "",
            "local_sr_path": "/nowhere", "local_sr_size_bytes": 0, "local_sr_used_bytes": 0,
        },
    });
    let reply = master
        .post_raw(
            "/pool/join",
            "application/json",
            serde_json::to_vec(&request).expect("JSON"),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let reply: serde_json::Value = serde_json::from_slice(&reply.body).expect("a JSON answer");
    assert_eq!(
        reply,
        json!({ "Refused": {
            "code": "POOL_JOINING_HOST_MUST_HAVE_SAME_API_VERSION",
            "params": ["1.1", ours],
        }})
    );
    assert_eq!(cluster.hosts_seen_by(0).await.len(), 1);
}

/// An HTTPS server that answers the first request it gets with 200 and a chunked body that
/// never ends (it stops at `ENDLESS_SAFETY_BYTES`, so that a joiner without a limit does not
/// take the test machine down with it).
struct EndlessMaster {
    address: String,
    _dir: tempfile::TempDir,
}

/// Where the endless body gives up.
const ENDLESS_SAFETY_BYTES: usize = 512 * 1024 * 1024;

impl EndlessMaster {
    fn start(ip: Ipv4Addr) -> EndlessMaster {
        let dir = tempfile::tempdir().expect("a temp dir");
        let cert = member::front::tls::load_or_create(dir.path(), "localhost", &[])
            .expect("a certificate");
        let config = member::front::tls::server_config(cert).expect("a TLS config");
        let listener = TcpListener::bind((ip, HTTPS_PORT)).expect("the fake master listens");
        std::thread::spawn(move || {
            let Ok((tcp, _)) = listener.accept() else {
                return;
            };
            let Ok(tls) = rustls::ServerConnection::new(config) else {
                return;
            };
            let mut stream = rustls::StreamOwned::new(tls, tcp);
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                        transfer-encoding: chunked\r\n\r\n";
            let chunk = format!("10000\r\n{}\r\n", " ".repeat(0x10000));
            if stream.write_all(head.as_bytes()).is_err() {
                return;
            }
            let mut sent = 0;
            while sent < ENDLESS_SAFETY_BYTES && stream.write_all(chunk.as_bytes()).is_ok() {
                sent += 0x10000;
            }
        });
        EndlessMaster {
            address: format!("{ip}:{HTTPS_PORT}"),
            _dir: dir,
        }
    }
}
