//! Agents refuse actions stamped with a stale Raft term. The test plays a master that was
//! deposed without knowing it: with the identity and pool credentials of a killed master, it
//! opens a peer stream to another host and asks that host's agent to stop a VM, stamped with the
//! killed master's last term; the agent refuses, and the VM runs on. The same action stamped
//! with the current term is obeyed, so the refusal is the term's doing.

use std::path::Path;
use std::time::{Duration, Instant};

use host_api::{HostAction, VmAction};
use member::links::LinkFrame;
use member::peer::Membership;
use member::peer::frame::{self, Bytes, Frame};
use oxapi_tests::Protocol;
use oxapi_tests::cluster::history::leaderships;
use oxapi_tests::cluster::{Cluster, ClusterOptions, vm};
use tokio::io::AsyncWriteExt;

/// How long the host may take to show what the test waits for.
const WAIT: Duration = Duration::from_secs(20);

/// A peer stream to the host at `address` (certificate `cert_pem`), dialed as `node` of the
/// pool `membership` describes; the `Hello` frame is sent.
async fn peer_stream(
    address: &str,
    cert_pem: &[u8],
    membership: &Membership,
    node: u64,
) -> reqwest::Upgraded {
    let mut tls = oxapi_tests::client::pinned_tls(cert_pem);
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    let client = reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .http1_only()
        .build()
        .expect("an HTTPS client");
    let response = client
        .get(format!("https://{address}/peer"))
        .header("connection", "upgrade")
        .header("upgrade", "oxapi-peer")
        .header("x-oxapi-pool-secret", &membership.pool_secret)
        .header("x-oxapi-node-id", node.to_string())
        .header("x-oxapi-pool-epoch", &membership.pool_epoch)
        .send()
        .await
        .expect("the host answers");
    assert_eq!(response.status(), 101, "the peer upgrade is accepted");
    let mut stream = response.upgrade().await.expect("an upgraded stream");
    frame::write(&mut stream, &Frame::Hello { node })
        .await
        .expect("hello sent");
    stream
}

/// Sends a hard shutdown of the VM `uuid`, for `host`, stamped with `term`.
async fn send_hard_shutdown(
    stream: &mut reqwest::Upgraded,
    id: u64,
    host: &str,
    term: u64,
    uuid: &str,
) {
    let action = LinkFrame::Action {
        id,
        host: host.to_owned(),
        term,
        action: HostAction::Vm(VmAction::Shutdown {
            vm: uuid.to_owned(),
            clean: false,
        }),
    };
    frame::write(stream, &Frame::Link(Bytes(action.encode())))
        .await
        .expect("action sent");
    stream.flush().await.expect("action flushed");
}

/// Waits until `done` holds, failing with `what` after `WAIT`.
async fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The newest term host `node` led, by its log.
fn last_term_led(cluster: &Cluster, node: usize) -> u64 {
    leaderships(cluster)
        .into_iter()
        .filter(|(_, _, host)| *host == node)
        .map(|(_, term, _)| term)
        .max()
        .expect("the host led")
}

/// See the module header.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_deposed_masters_action_is_refused_by_the_agent() {
    // The target must not fence its VM while the survivors elect, however slowly.
    let options = ClusterOptions {
        fence_after_secs: 20,
        dead_after_secs: 30,
        ..ClusterOptions::hosts(3)
    };
    let mut cluster = Cluster::start(options).await;
    let old = cluster.settle(&[0, 1, 2]).await;
    let target = (old + 1) % 3;
    let target_ref = cluster.nodes[target].host_ref();
    let admin = cluster.nodes[old].login(Protocol::JsonRpc).await;
    let guest = vm::running_on(&admin, "kept running", &target_ref).await;
    let uuid = vm::field(&admin, &guest, "uuid").await;
    let state = cluster.nodes[target].simulator_state();
    assert!(vm::has_domain(&state, &uuid));

    let stale_term = last_term_led(&cluster, old);
    // The pool's secret and epoch, as a joiner keeps them (the first host has no such file).
    let membership = cluster
        .nodes
        .iter()
        .find_map(|node| Membership::load(Path::new(&node.data_dir())).expect("readable"))
        .expect("a joiner keeps the pool's membership");
    let old_node = cluster.nodes[old].node_id();
    cluster.nodes[old].kill();
    let survivors: Vec<usize> = (0..3).filter(|&i| i != old).collect();
    let new = cluster.wait_for_master(&survivors).await;
    let term = last_term_led(&cluster, new);
    assert!(term > stale_term);
    let newer = format!("a newer raft term term={term}");
    wait_until("the target's agent never saw the new term", || {
        cluster.nodes[target].logs().contains(&newer)
    })
    .await;

    let node = &cluster.nodes[target];
    let mut stream = peer_stream(&node.address(), &node.cert_pem(), &membership, old_node).await;
    send_hard_shutdown(&mut stream, 1, &target_ref, stale_term, &uuid).await;
    wait_until("the agent never refused the stale action", || {
        cluster.nodes[target]
            .logs()
            .contains("refused an action stamped with a stale term")
    })
    .await;
    assert!(
        vm::has_domain(&state, &uuid),
        "the stale action stopped the VM"
    );

    send_hard_shutdown(&mut stream, 2, &target_ref, term, &uuid).await;
    wait_until("the current term's action was not obeyed", || {
        !vm::has_domain(&state, &uuid)
    })
    .await;
}
