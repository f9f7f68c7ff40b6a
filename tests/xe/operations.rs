//! `xe`'s operation commands against a real `oxapi`: the VM lifecycle, copies and uninstall,
//! selectors and `--multiple`, devices, pool, host and task commands, `event-wait`, and
//! XenAPI failures told in plain words.

mod support;

use std::collections::BTreeMap;

use api_spec::Value;
use oxapi_tests::{Client, Host, HostOptions, Protocol, logged_in, read_simulator_state};
use support::{Xe, reached};

fn power_state(xe: &Xe, vm: &str) -> String {
    let out = xe.ok(&[
        "vm-param-get",
        &format!("uuid={vm}"),
        "param-name=power-state",
    ]);
    out.trim().to_owned()
}

/// `vm-install` clones a template (named or by uuid) into a halted VM and prints its uuid; a
/// template that does not exist is named in the error.
#[test]
fn vm_install_makes_a_halted_vm_from_a_template() {
    let host = Host::start();
    let xe = Xe::new(&host);
    let vm = xe.install("web");
    assert_eq!(power_state(&xe, &vm), "halted");
    assert_eq!(xe.minimal(&["vm-list", "name-label=web"]), vm);
    let template = xe.minimal(&["template-list", "name-label=Other install media"]);
    let out = xe.ok(&[
        "vm-install",
        &format!("template={template}"),
        "new-name-label=other",
    ]);
    assert_eq!(xe.minimal(&["vm-list", "name-label=other"]), out.trim());
    let err = xe.fails(&["vm-install", "template=Windows 95", "new-name-label=x"]);
    assert!(err.contains("invalid value for template"), "{err}");
    let err = xe.fails(&["vm-install", "template=Windows 95"]);
    assert!(err.contains("missing parameter: new-name-label"), "{err}");
}

/// The power commands take a VM through its states, as `vm-list` and `event-wait` see them.
#[test]
fn vm_power_commands_change_the_power_state() {
    let host = Host::start();
    let xe = Xe::new(&host);
    let vm = xe.install("life");
    let sel = format!("uuid={vm}");
    let host_name = xe.minimal(&["host-list", "params=name-label"]);
    xe.ok(&["vm-start", "vm=life", &format!("on={host_name}")]);
    assert_eq!(power_state(&xe, &vm), "running");
    assert_eq!(
        xe.minimal(&["vm-list", "power-state=running", "name-label=life"]),
        vm
    );
    xe.ok(&[
        "event-wait",
        "class=vm",
        &sel,
        "power-state=running",
        "timeout=30",
    ]);
    xe.ok(&["vm-pause", &sel]);
    assert_eq!(power_state(&xe, &vm), "paused");
    xe.ok(&["vm-unpause", &sel]);
    assert_eq!(power_state(&xe, &vm), "running");
    xe.ok(&["vm-reboot", &sel]);
    xe.ok(&["vm-reboot", &sel, "--force"]);
    assert_eq!(power_state(&xe, &vm), "running");
    xe.ok(&["vm-suspend", &sel]);
    assert_eq!(power_state(&xe, &vm), "suspended");
    xe.ok(&["vm-resume", &sel]);
    assert_eq!(power_state(&xe, &vm), "running");
    xe.ok(&["vm-shutdown", &sel]);
    assert_eq!(power_state(&xe, &vm), "halted");
    xe.ok(&["vm-start", &sel, "paused=true"]);
    assert_eq!(power_state(&xe, &vm), "paused");
    xe.ok(&["vm-shutdown", &sel, "--force"]);
    assert_eq!(power_state(&xe, &vm), "halted");
    xe.ok(&["vm-reset-powerstate", &sel, "--force"]);
    assert_eq!(power_state(&xe, &vm), "halted");
    xe.ok(&["vm-start", &sel]);
    let err = xe.fails(&["vm-reset-powerstate", &sel]);
    assert!(err.contains("needs --force"), "{err}");
    // Whether a VM whose domain still runs may be reset is the server's decision.
    let run = xe.run(&["vm-reset-powerstate", &sel, "--force"]);
    assert!(reached(&run, "VM.power_state_reset"), "{}", run.stderr);
}

/// A long operation shows a progress bar, from its task's progress, when stderr is a terminal,
/// and writes nothing on stderr when it is not.
#[test]
fn long_operations_show_progress_only_on_a_terminal() {
    let host = Host::start_with(HostOptions {
        root_password: Some(format!("pw-{}", std::process::id())),
        config: Some(serde_json::json!({ "simulator": { "latency_ms": { "build": 1500 } } })),
        ..HostOptions::default()
    });
    let xe = Xe::new(&host);
    let vm = xe.install("slow");
    let sel = format!("uuid={vm}");
    let (ok, screen) = xe.run_on_terminal(&["vm-start", &sel]);
    assert!(ok, "{screen}");
    assert!(
        screen.contains("VM.start [") && screen.contains('%'),
        "no progress bar on the terminal: {screen:?}"
    );
    assert_eq!(power_state(&xe, &vm), "running");
    xe.ok(&["vm-shutdown", &sel, "--force"]);
    let run = xe.run(&["vm-start", &sel]);
    assert!(run.ok && run.stderr.is_empty(), "{:?}", run.stderr);
}

/// A XenAPI failure prints its code and its parameters under their names, the VM by uuid and
/// name, and xe exits non-zero.
#[test]
fn xenapi_failure_prints_code_and_named_parameters() {
    let host = Host::start();
    let xe = Xe::new(&host);
    let vm = xe.install("twice");
    xe.ok(&["vm-start", "vm=twice"]);
    let err = xe.fails(&["vm-start", "vm=twice"]);
    assert!(
        err.starts_with("error: the server refused VM.start: VM_BAD_POWER_STATE\n"),
        "{err}"
    );
    assert!(err.contains(&format!("  vm: {vm} (twice)\n")), "{err}");
    assert!(err.contains("  expected: halted\n"), "{err}");
    assert!(err.contains("  actual: running\n"), "{err}");
}

/// Without a selector an operation applies to every VM, which needs --multiple when there
/// are several; a selector that matches nothing is an error.
#[test]
fn selectors_need_multiple_when_several_vms_match() {
    let host = Host::start();
    let xe = Xe::new(&host);
    let a = xe.install("a");
    let b = xe.install("b");
    let err = xe.fails(&["vm-start"]);
    assert!(err.contains("2 objects of class vm match"), "{err}");
    assert!(err.contains("--multiple"), "{err}");
    assert_eq!(power_state(&xe, &a), "halted");
    xe.ok(&["vm-start", "--multiple"]);
    assert_eq!(power_state(&xe, &a), "running");
    assert_eq!(power_state(&xe, &b), "running");
    xe.ok(&[
        "vm-shutdown",
        "power-state=running",
        "--multiple",
        "--force",
    ]);
    assert_eq!(power_state(&xe, &b), "halted");
    let err = xe.fails(&["vm-start", "vm=nobody"]);
    assert!(err.contains("no vm matches"), "{err}");
}

/// `vm-clone`, `vm-copy` and `vm-snapshot` print the new uuids; `vm-uninstall` asks first,
/// then destroys; `vm-destroy` removes a VM.
#[test]
fn copies_snapshots_and_uninstall() {
    let host = Host::start();
    let xe = Xe::new(&host);
    let vm = xe.install("orig");
    let clone = xe.ok(&["vm-clone", "vm=orig", "new-name-label=clone"]);
    assert_eq!(xe.minimal(&["vm-list", "name-label=clone"]), clone.trim());
    let sr = xe.minimal(&["sr-list"]);
    let copy = xe.ok(&[
        "vm-copy",
        "vm=orig",
        "new-name-label=copy",
        &format!("sr-uuid={sr}"),
    ]);
    assert_eq!(xe.minimal(&["vm-list", "name-label=copy"]), copy.trim());
    let snap = xe.ok(&["vm-snapshot", "vm=orig", "new-name-label=snap"]);
    assert_eq!(xe.minimal(&["snapshot-list", "params=uuid"]), snap.trim());
    let refused = xe.run_with_input(&["vm-uninstall", "vm=clone"], "no\n");
    assert!(
        !refused.ok && refused.stderr.contains("not confirmed"),
        "{}",
        refused.stderr
    );
    assert!(
        refused
            .stderr
            .contains("The following items are about to be destroyed")
    );
    assert_eq!(xe.minimal(&["vm-list", "name-label=clone"]), clone.trim());
    let done = xe.run_with_input(&["vm-uninstall", "vm=clone"], "yes\n");
    assert!(done.ok, "{}", done.stderr);
    assert_eq!(xe.minimal(&["vm-list", "name-label=clone"]), "");
    xe.ok(&["vm-uninstall", "vm=copy", "--force"]);
    xe.ok(&["vm-destroy", &format!("uuid={vm}")]);
    assert_eq!(xe.minimal(&["vm-list", "name-label=orig"]), "");
}

/// The device commands list a VM's VIFs and VBDs and plug and unplug them (a VBD once it is
/// made unpluggable).
#[tokio::test]
async fn device_commands_list_plug_and_unplug() {
    let host = Host::start();
    let xe = Xe::new(&host);
    let client = logged_in(&host, Protocol::JsonRpc).await;
    let vm_uuid = xe.install("dev");
    let vm = client
        .ok("VM.get_by_uuid", vec![Value::str(vm_uuid.as_str())])
        .await;
    let network = client.ok("network.get_all", vec![]).await;
    let network = network.as_array().expect("networks")[0].clone();
    let record = |pairs: &[(&str, Value)]| {
        Value::Struct(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
        )
    };
    let vif = client
        .ok(
            "VIF.create",
            vec![record(&[
                ("device", Value::str("0")),
                ("network", network),
                ("VM", vm.clone()),
                ("MAC", Value::str("")),
                ("MTU", Value::Int(1500)),
                ("other_config", record(&[])),
                ("qos_algorithm_type", Value::str("")),
                ("qos_algorithm_params", record(&[])),
            ])],
        )
        .await;
    let vif_uuid = client.ok("VIF.get_uuid", vec![vif]).await;
    let vif_uuid = vif_uuid.as_str().expect("a uuid").to_owned();
    assert_eq!(xe.minimal(&["vm-vif-list", "vm=dev"]), vif_uuid);
    xe.ok(&["vm-start", "vm=dev"]);
    let sel = format!("uuid={vif_uuid}");
    xe.ok(&["vif-unplug", &sel]);
    let attached = xe.ok(&["vif-param-get", &sel, "param-name=currently-attached"]);
    assert_eq!(attached.trim(), "false");
    xe.ok(&["vif-plug", &sel]);
    let attached = xe.ok(&["vif-param-get", &sel, "param-name=currently-attached"]);
    assert_eq!(attached.trim(), "true");
    let vbds = xe.minimal(&["vm-vbd-list", "vm=dev"]);
    let vbd = vbds
        .split(',')
        .find(|v| !v.is_empty())
        .expect("the template's VM has a VBD");
    let sel = format!("uuid={vbd}");
    let err = xe.fails(&["vbd-unplug", &sel]);
    assert!(err.contains("VBD_NOT_UNPLUGGABLE"), "{err}");
    xe.ok(&["vbd-param-set", &sel, "unpluggable=true"]);
    xe.ok(&["vbd-unplug", &sel]);
    let attached = xe.ok(&["vbd-param-get", &sel, "param-name=currently-attached"]);
    assert_eq!(attached.trim(), "false");
    xe.ok(&["vbd-plug", &sel]);
    let attached = xe.ok(&["vbd-param-get", &sel, "param-name=currently-attached"]);
    assert_eq!(attached.trim(), "true");
}

/// PIF.unplug of the host's management PIF is refused with PIF_IS_MANAGEMENT_INTERFACE and
/// leaves it attached; PIF.plug of the attached PIF succeeds and changes nothing (xapi's
/// no-op). (xe has no pif commands yet: the calls go through the XenAPI.)
#[tokio::test]
async fn pif_plug_and_unplug_keep_the_management_interface_attached() {
    let host = Host::start();
    let xe = Xe::new(&host);
    let client = logged_in(&host, Protocol::JsonRpc).await;
    let pif_uuid = xe.minimal(&["pif-list", "management=true"]);
    let pif = client
        .ok("PIF.get_by_uuid", vec![Value::str(pif_uuid.as_str())])
        .await;
    let err = client
        .call("PIF.unplug", vec![pif.clone()])
        .await
        .expect_err("the management PIF is not unplugged");
    assert_eq!(err.code, "PIF_IS_MANAGEMENT_INTERFACE", "{err:?}");
    let sel = format!("uuid={pif_uuid}");
    let attached = xe.ok(&["pif-param-get", &sel, "param-name=currently-attached"]);
    assert_eq!(attached.trim(), "true");
    client.ok("PIF.plug", vec![pif]).await;
    let attached = xe.ok(&["pif-param-get", &sel, "param-name=currently-attached"]);
    assert_eq!(attached.trim(), "true");
}

async fn currently_attached(client: &Client, pif: &Value) -> bool {
    let attached = client
        .ok("PIF.get_currently_attached", vec![pif.clone()])
        .await;
    attached.as_bool().expect("a bool")
}

/// A PIF introduced on a new network is detached; PIF.plug has the host's network driver set
/// up its network's bridge (the simulator's state file shows it, with the PIF's MTU) and
/// PIF.unplug removes it, `currently_attached` following each.
#[tokio::test]
async fn pif_plug_and_unplug_set_up_and_remove_the_bridge_on_the_host() {
    let host = Host::start();
    let client = logged_in(&host, Protocol::JsonRpc).await;
    let network = client
        .ok(
            "network.create",
            vec![Value::Struct(BTreeMap::from([
                ("name_label".to_owned(), Value::str("storage net")),
                ("bridge".to_owned(), Value::str("xenbr7")),
                ("other_config".to_owned(), Value::Struct(BTreeMap::new())),
            ]))],
        )
        .await;
    let hosts = client.ok("host.get_all", vec![]).await;
    let this = hosts
        .as_array()
        .and_then(|h| h.first())
        .expect("a host")
        .clone();
    let s = Value::str;
    let pif = client
        .ok(
            "PIF.db_introduce",
            vec![
                s("eth7"),
                network,
                this,
                s("02:00:00:00:00:07"),
                Value::Int(9000),
                Value::Int(-1),
                Value::Bool(true),
                s("None"),
                s(""),
                s(""),
                s(""),
                s(""),
                s("OpaqueRef:NULL"),
                s("OpaqueRef:NULL"),
                Value::Bool(false),
                Value::Struct(BTreeMap::new()),
            ],
        )
        .await;
    // The simulator writes its state file at its first change.
    let bridge_mtu = || {
        let state = read_simulator_state(&host.simulator_state())?;
        state["network"]["bridges"]["xenbr7"].as_u64()
    };
    assert!(!currently_attached(&client, &pif).await);
    assert_eq!(bridge_mtu(), None);
    client.ok("PIF.plug", vec![pif.clone()]).await;
    assert!(currently_attached(&client, &pif).await);
    assert_eq!(bridge_mtu(), Some(9000));
    client.ok("PIF.unplug", vec![pif.clone()]).await;
    assert!(!currently_attached(&client, &pif).await);
    assert_eq!(bridge_mtu(), None);
}

/// `vm-migrate` calls VM.pool_migrate with the host named and the live option: on a one-host
/// pool the VM migrates to its own host (xapi's localhost migration) and runs on there; a host
/// that does not exist is refused by xe.
#[test]
fn vm_migrate_names_the_destination_host() {
    let host = Host::start();
    let xe = Xe::new(&host);
    let uuid = xe.install("mover");
    xe.ok(&["vm-start", "vm=mover"]);
    let target = xe.minimal(&["host-list"]);
    xe.ok(&[
        "vm-migrate",
        "vm=mover",
        &format!("host={target}"),
        "live=true",
    ]);
    let get = |param: &str| {
        let name = format!("param-name={param}");
        xe.ok(&["vm-param-get", &format!("uuid={uuid}"), &name])
    };
    assert_eq!(get("power-state").trim(), "running");
    assert_eq!(get("resident-on").trim(), target);
    let err = xe.fails(&["vm-migrate", "vm=mover", "host=nowhere"]);
    assert!(err.contains("invalid value for host"), "{err}");
}

/// The pool and host commands call their XenAPI messages with well-formed arguments.
#[test]
fn pool_and_host_commands_reach_their_messages() {
    let host = Host::start();
    let xe = Xe::new(&host);
    let master = xe.minimal(&["host-list"]);
    let host_uuid = format!("host-uuid={master}");
    for (args, method) in [
        (vec!["pool-sync-database"], "pool.sync_database"),
        (vec!["pool-recover-slaves"], "pool.recover_slaves"),
        (
            vec!["pool-designate-new-master", &host_uuid],
            "pool.designate_new_master",
        ),
        (vec!["pool-eject", &host_uuid, "--force"], "pool.eject"),
        (
            vec![
                "pool-join",
                "master-address=127.0.0.1",
                "master-username=root",
                "master-password=x",
            ],
            "pool.join",
        ),
        (vec!["host-disable"], "host.disable"),
        (vec!["host-enable"], "host.enable"),
        (vec!["host-evacuate"], "host.evacuate"),
    ] {
        let run = xe.run(&args);
        assert!(reached(&run, method), "{args:?}: {}", run.stderr);
    }
    // Through a slave-local login, as xe does it.
    let run = xe.run(&["pool-emergency-transition-to-master"]);
    assert!(
        reached(&run, "pool.emergency_transition_to_master"),
        "{}",
        run.stderr
    );
    let refused = xe.run_with_input(&["pool-eject", &host_uuid], "no\n");
    assert!(
        !refused.ok && refused.stderr.contains("not confirmed"),
        "{}",
        refused.stderr
    );
}

/// `task-list` shows tasks and `task-cancel` asks one to stop.
#[tokio::test]
async fn task_list_and_cancel() {
    let host = Host::start();
    let xe = Xe::new(&host);
    let client = logged_in(&host, Protocol::JsonRpc).await;
    let task = client
        .ok(
            "task.create",
            vec![Value::str("backup"), Value::str("nightly")],
        )
        .await;
    let uuid = client.ok("task.get_uuid", vec![task]).await;
    let uuid = uuid.as_str().expect("a uuid").to_owned();
    let out = xe.ok(&["task-list", "name-label=backup"]);
    assert!(
        out.contains(&format!("uuid ( RO)                : {uuid}\n")),
        "{out}"
    );
    // task.set_status and task.set_progress exist, so the fields are writable.
    assert!(out.contains("          status ( RW): pending\n"), "{out}");
    assert!(out.contains("        progress ( RW): 0.000\n"), "{out}");
    let run = xe.run(&["task-cancel", &format!("uuid={uuid}")]);
    assert!(reached(&run, "task.cancel"), "{}", run.stderr);
}

/// `event-wait` returns once an object has the values asked for, blocks until then, and
/// gives up after `timeout=`.
#[test]
fn event_wait_blocks_until_an_object_matches() {
    let host = Host::start();
    let xe = Xe::new(&host);
    let vm = xe.install("waiting");
    xe.ok(&[
        "event-wait",
        "class=vm",
        "name-label=waiting",
        "power-state=halted",
    ]);
    let err = xe.fails(&[
        "event-wait",
        "class=vm",
        "name-label=renamed",
        "timeout=0.5",
    ]);
    assert!(err.contains("timed out"), "{err}");
    let mut waiter = xe
        .command(&["event-wait", "class=vm", "name-label=renamed", "timeout=60"])
        .spawn()
        .expect("event-wait starts");
    xe.ok(&["vm-param-set", &format!("uuid={vm}"), "name-label=renamed"]);
    // The waiter gives up by itself after its timeout, so this wait is bounded.
    let status = waiter.wait().expect("event-wait ends");
    assert!(status.success(), "event-wait did not see the change");
    let err = xe.fails(&["event-wait", "class=spaceship"]);
    assert!(err.contains("invalid value for class"), "{err}");
}
