//! Guests that power off, reboot or crash by themselves (through the simulator): the agent
//! honours the VM's `actions_after_*` and reports the change unasked.

mod support;

use agent::AgentConfig;
use agent::backend::simulator::GuestAction;
use agent::testing::vm_spec;
use host_api::{
    AfterCrash, AfterShutdown, AgentReport, DomainState, GuestEvent, HostAction, PowerState,
    VmAction,
};
use support::{TestAgent, bad_power_state, failure};

/// What the agent should leave after a guest event.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Outcome {
    Destroyed,
    Restarted,
    Preserved,
}

/// Starts a VM with the given after-actions, makes its guest act, and checks the report and
/// the domain against `outcome`.
async fn check(
    agent: &mut TestAgent,
    action: GuestAction,
    on_shutdown: AfterShutdown,
    on_reboot: AfterShutdown,
    on_crash: AfterCrash,
    outcome: Outcome,
) {
    let mut spec = vm_spec("guest", 1, 1);
    spec.on_shutdown = on_shutdown;
    spec.on_reboot = on_reboot;
    spec.on_crash = on_crash;
    let before = agent.start_vm(&spec).await;
    agent
        .simulator()
        .guest(&spec.uuid, action)
        .await
        .expect("the guest acts");
    let report = agent.next_report().await;
    let AgentReport::GuestChanged { vm, event, now } = report else {
        panic!("a guest change, got {report:?}");
    };
    let case = format!("{action:?} with {on_shutdown:?}/{on_reboot:?}/{on_crash:?}");
    assert_eq!(vm, spec.uuid, "{case}");
    let expected_event = match action {
        GuestAction::PowerOff => GuestEvent::PoweredOff,
        GuestAction::Reboot => GuestEvent::Rebooted,
        GuestAction::Crash => GuestEvent::Crashed,
        GuestAction::Hang => panic!("a hang is no guest event"),
    };
    assert_eq!(event, expected_event, "{case}");
    let domain = agent.domain(&spec.uuid).await;
    assert_eq!(
        now, domain,
        "the report says what the domain now is: {case}"
    );
    match outcome {
        Outcome::Destroyed => assert_eq!(domain, None, "{case}"),
        Outcome::Restarted => {
            let domain = domain.expect(&case);
            assert_eq!(domain.state, DomainState::Running, "{case}");
            assert!(domain.domid > before.domid, "a new domid: {case}");
            assert_eq!(domain.vbds, before.vbds, "{case}");
            assert_eq!(domain.vifs, before.vifs, "{case}");
        }
        Outcome::Preserved => {
            let domain = domain.expect(&case);
            assert_eq!(domain.state, DomainState::Paused, "{case}");
            assert_eq!(domain.domid, before.domid, "{case}");
        }
    }
}

/// A guest power-off follows `actions_after_shutdown`, a guest reboot
/// `actions_after_reboot`.
#[tokio::test]
async fn power_off_and_reboot_follow_their_after_actions() {
    use AfterShutdown::{Destroy, Restart};
    let mut agent = TestAgent::start(AgentConfig::default()).await;
    let cases = [
        (GuestAction::PowerOff, Destroy, Restart, Outcome::Destroyed),
        (GuestAction::PowerOff, Restart, Destroy, Outcome::Restarted),
        (GuestAction::Reboot, Destroy, Restart, Outcome::Restarted),
        (GuestAction::Reboot, Restart, Destroy, Outcome::Destroyed),
    ];
    for (action, on_shutdown, on_reboot, outcome) in cases {
        check(
            &mut agent,
            action,
            on_shutdown,
            on_reboot,
            AfterCrash::Destroy,
            outcome,
        )
        .await;
    }
}

/// A guest crash follows each `actions_after_crash`: the coredump variants act as their plain
/// forms, `rename_restart` as `restart`, `preserve` keeps the domain, paused.
#[tokio::test]
async fn crash_follows_every_after_crash_action() {
    let mut agent = TestAgent::start(AgentConfig::default()).await;
    let cases = [
        (AfterCrash::Destroy, Outcome::Destroyed),
        (AfterCrash::CoredumpAndDestroy, Outcome::Destroyed),
        (AfterCrash::Restart, Outcome::Restarted),
        (AfterCrash::CoredumpAndRestart, Outcome::Restarted),
        (AfterCrash::RenameRestart, Outcome::Restarted),
        (AfterCrash::Preserve, Outcome::Preserved),
    ];
    for (on_crash, outcome) in cases {
        check(
            &mut agent,
            GuestAction::Crash,
            AfterShutdown::Destroy,
            AfterShutdown::Destroy,
            on_crash,
            outcome,
        )
        .await;
    }
}

/// A clean shutdown asked by the master is no guest event: the agent reports nothing unasked.
#[tokio::test]
async fn a_requested_shutdown_is_not_reported_as_a_guest_event() {
    let mut agent = TestAgent::start(AgentConfig::default()).await;
    let mut spec = vm_spec("asked", 0, 0);
    spec.on_shutdown = AfterShutdown::Restart;
    agent.start_vm(&spec).await;
    let shutdown = HostAction::Vm(VmAction::Shutdown {
        vm: spec.uuid.clone(),
        clean: true,
    });
    assert!(agent.run(shutdown).await.is_ok());
    // The guest event of that shutdown is checked on the VM's queue after the shutdown; a
    // second VM's crash is queued after it and its report must be the next one.
    let witness = vm_spec("witness", 0, 0);
    agent.start_vm(&witness).await;
    agent
        .simulator()
        .guest(&witness.uuid, GuestAction::Crash)
        .await
        .expect("the witness crashes");
    let AgentReport::GuestChanged { vm, .. } = agent.next_report().await else {
        panic!("a guest change");
    };
    assert_eq!(vm, witness.uuid);
    assert_eq!(agent.domain(&spec.uuid).await, None, "not restarted");
}

/// A new spec for a running domain (`UpdateSpec`) changes what a later crash does, leaves the
/// domain as it is, and is refused for a VM without a domain.
#[tokio::test]
async fn an_updated_spec_decides_what_a_crash_does() {
    let mut agent = TestAgent::start(AgentConfig::default()).await;
    let mut spec = vm_spec("updated", 1, 1);
    spec.on_crash = AfterCrash::Destroy;
    let before = agent.start_vm(&spec).await;
    spec.on_crash = AfterCrash::Preserve;
    spec.pv_args = "quiet".to_owned();
    let update = HostAction::Vm(VmAction::UpdateSpec { vm: spec.clone() });
    let after = agent.domain_after(update).await;
    assert_eq!(after, before, "the domain itself is unchanged");
    agent
        .simulator()
        .guest(&spec.uuid, GuestAction::Crash)
        .await
        .expect("the guest crashes");
    let AgentReport::GuestChanged { now, .. } = agent.next_report().await else {
        panic!("a guest change");
    };
    let now = now.expect("preserved, as the new spec says");
    assert_eq!(now.state, DomainState::Paused);
    assert_eq!(now.domid, before.domid);
    let unknown = vm_spec("nowhere", 0, 0);
    let refused = agent
        .run(HostAction::Vm(VmAction::UpdateSpec {
            vm: unknown.clone(),
        }))
        .await;
    assert_eq!(
        failure(refused),
        bad_power_state(&unknown.uuid, PowerState::Running, PowerState::Halted)
    );
}
