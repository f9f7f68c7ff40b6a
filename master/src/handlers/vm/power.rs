//! The power operations on a domain that is there: `suspend` (to a suspend image on the VM's
//! suspend SR), `pause`, `unpause`, `clean_reboot`, `hard_reboot`.

use api_spec::classes::vm::{VmOperation, VmPowerState};
use api_spec::{Value, errors};

use super::{Expect, Operation, answer, mark_devices, unmark_devices};
use crate::call::ctx::{Args, Ctx};
use crate::error::Error;
use crate::storage::volumes;
use crate::vm::operations::{self, Draft, Overlay};
use crate::vm::placement;
use crate::vm::power_state::{drop_suspend_image, set_running, set_stopped};
use crate::vm::vm_spec;
use host_api::{ActionResult, HostAction, VdiInfo, VmAction};

/// A suspend image's size: the VM's memory at most, and room for its device state.
const SUSPEND_IMAGE_EXTRA_BYTES: i64 = 1 << 20;

/// The SR a VM's suspend image goes to, among those its host `host` reaches: the VM's
/// `suspend_SR`, else the pool's `suspend_image_SR`, else the host's `suspend_image_sr` (xapi's
/// `choose_suspend_sr`), else the pool's default SR, else the SR of one of its disks. When
/// every drive of the VM is on a shared SR, a shared SR of these after the VM's own
/// `suspend_SR` wins over a host's local one: the image goes where every host that reaches
/// the VM's disks reaches it too, so that the VM resumes on any of them.
fn suspend_sr(view: &Overlay, vm: &str, host: &str) -> Option<String> {
    let pool = view.refs("pool").into_iter().next().unwrap_or_default();
    let reached = placement::plugged_srs(view, host);
    let is_usable = |sr: &&str| view.exists("SR", sr) && reached.iter().any(|r| r == sr);
    let own = view.str("VM", vm, "suspend_SR");
    if is_usable(&own) {
        return Some(own.to_owned());
    }
    let drives = drive_srs(view, vm);
    let defaults: Vec<&str> = [
        view.str("pool", &pool, "suspend_image_SR"),
        view.str("host", host, "suspend_image_sr"),
        view.str("pool", &pool, "default_SR"),
    ]
    .into_iter()
    .chain(
        drives
            .iter()
            .filter(|(_, is_disk)| *is_disk)
            .map(|(sr, _)| sr.as_str()),
    )
    .filter(is_usable)
    .collect();
    let is_shared = |sr: &str| view.bool("SR", sr, "shared");
    let is_agile = drives.iter().all(|(sr, _)| is_shared(sr));
    let shared = defaults.iter().find(|sr| is_shared(sr));
    match shared {
        Some(sr) if is_agile => Some(sr),
        _ => defaults.first(),
    }
    .map(|sr| (*sr).to_owned())
}

/// The SR of each drive of `vm` that is not empty, and whether the drive is a disk (not a CD).
fn drive_srs(view: &Overlay, vm: &str) -> Vec<(String, bool)> {
    view.children("VBD", "VM", vm)
        .into_iter()
        .filter(|vbd| !view.bool("VBD", vbd, "empty"))
        .filter_map(|vbd| {
            let vdi = view.str("VBD", &vbd, "VDI");
            let is_disk = view.str("VBD", &vbd, "type") == "Disk";
            view.exists("VDI", vdi)
                .then(|| (view.str("VDI", vdi, "SR").to_owned(), is_disk))
        })
        .collect()
}

/// The size of `vm`'s suspend image, in bytes.
fn suspend_image_bytes(view: &Overlay, vm: &str) -> Result<u64, Error> {
    let size = view
        .int("VM", vm, "memory_static_max")
        .saturating_add(SUSPEND_IMAGE_EXTRA_BYTES);
    volumes::size_bytes("memory_static_max", size)
}

/// Creates the record of `vm`'s suspend image on `sr`, whose volume the SR's driver made
/// (`image`: the agent writes the image there); returns its ref.
fn create_suspend_image(draft: &mut Draft, vm: &str, sr: &str, image: &VdiInfo) -> String {
    let uuid = crate::db::record::new_uuid();
    let name = format!(
        "Suspend image of {}",
        draft.view().str("VM", vm, "name_label")
    );
    draft.create(
        "VDI",
        [
            ("uuid", Value::String(uuid.clone())),
            ("name_label", Value::String(name)),
            ("name_description", Value::str("Suspend image")),
            ("SR", Value::str(sr)),
            ("type", Value::str("suspend")),
            ("sharable", Value::Bool(false)),
            ("read_only", Value::Bool(false)),
            ("managed", Value::Bool(true)),
            ("other_config", Value::Struct(Default::default())),
        ]
        .into_iter()
        .chain(volumes::recorded_fields(image)),
    )
}

/// `VM.suspend`: saves a running VM to a new suspend image and destroys its domain. The
/// image's volume is made by its SR's driver first, and deleted again unless the VM ends
/// suspended.
pub(in crate::handlers) async fn suspend(ctx: Ctx, args: Args) -> Result<Value, Error> {
    let vm = args.str("vm")?;
    let (sr, size) = {
        let db = ctx.db();
        let view = Overlay::new(&db);
        // The checks the operation's begin makes, so that no volume is made for a suspend
        // refused at once.
        operations::check(&view, vm, VmOperation::Suspend)?;
        let host = view.str("VM", vm, "resident_on");
        let sr = suspend_sr(&view, vm, host).ok_or_else(|| errors::vm_no_suspend_sr(vm))?;
        (sr, suspend_image_bytes(&view, vm)?)
    };
    let made = volumes::create(&ctx, &sr, size).await?;
    let operation = Operation::new(&ctx, vm, VmOperation::Suspend);
    let begun = operation
        .begin(|draft| {
            let host = draft.view().str("VM", vm, "resident_on").to_owned();
            let image = create_suspend_image(draft, vm, &sr, &made.info);
            draft.set("VM", vm, "suspend_VDI", Value::str(image.as_str()));
            let action = HostAction::Vm(VmAction::Suspend {
                vm: draft.view().str("VM", vm, "uuid").to_owned(),
                image: vm_spec::disk(draft.view(), &image),
            });
            Ok((host, action))
        })
        .await;
    let (host, action) = match begun {
        Ok(begun) => begun,
        Err(error) => {
            volumes::forget(&ctx, &made.volume).await;
            return Err(error);
        }
    };
    let outcome = operation.run(&host, action).await;
    let now = ctx.now();
    let is_suspended = matches!(outcome, Ok(ActionResult::Domain(None)));
    operation
        .end(|draft| {
            match &outcome {
                Ok(ActionResult::Domain(None)) => {
                    set_stopped(draft, vm, VmPowerState::Suspended, now)
                }
                Ok(ActionResult::Domain(Some(info))) => {
                    set_running(draft, vm, &host, info, false, now);
                    drop_suspend_image(draft, vm);
                }
                _ => {
                    drop_suspend_image(draft, vm);
                }
            }
            // The image's volume is `made`'s: deleted below unless the VM is suspended.
            Ok(())
        })
        .await?;
    if !is_suspended {
        volumes::forget(&ctx, &made.volume).await;
    }
    answer(vm, outcome, Expect::Gone)
}

/// An operation on a live domain that leaves one: what to send and what to expect.
struct OnDomain {
    op: VmOperation,
    /// Whether the domain is created anew (a reboot): new start time and consoles.
    is_new_domain: bool,
    expect: Expect,
    action: fn(&Overlay, &str) -> HostAction,
}

/// Runs an `OnDomain` operation on the host `vm` is resident on.
async fn on_domain(ctx: &Ctx, vm: &str, how: OnDomain) -> Result<Value, Error> {
    let operation = Operation::new(ctx, vm, how.op);
    let key = operation.key().to_owned();
    let (host, action) = operation
        .begin(|draft| {
            if how.is_new_domain {
                mark_devices(draft, vm, &key)?;
            }
            let view = draft.view();
            let host = view.str("VM", vm, "resident_on").to_owned();
            Ok((host, (how.action)(view, vm)))
        })
        .await?;
    let booted = match &action {
        HostAction::Vm(VmAction::Reboot { vm: spec, .. }) => Some(spec.clone()),
        _ => None,
    };
    let outcome = operation.run(&host, action).await;
    let now = ctx.now();
    operation
        .end(|draft| {
            unmark_devices(draft, vm, &key);
            match &outcome {
                Ok(ActionResult::Domain(Some(info))) => {
                    set_running(draft, vm, &host, info, how.is_new_domain, now);
                }
                Ok(ActionResult::Domain(None)) => set_stopped(draft, vm, VmPowerState::Halted, now),
                _ => {}
            }
            Ok(())
        })
        .await?;
    if let (Some(spec), Ok(_)) = (&booted, &outcome) {
        crate::vm::spec_push::push_if_stale(&ctx.master, vm, spec).await;
    }
    answer(vm, outcome, how.expect)
}

fn uuid(view: &Overlay, vm: &str) -> String {
    view.str("VM", vm, "uuid").to_owned()
}

/// `VM.pause`.
pub(in crate::handlers) async fn pause(ctx: Ctx, args: Args) -> Result<Value, Error> {
    let how = OnDomain {
        op: VmOperation::Pause,
        is_new_domain: false,
        expect: Expect::Domain { paused: true },
        action: |view, vm| HostAction::Vm(VmAction::Pause { vm: uuid(view, vm) }),
    };
    on_domain(&ctx, args.str("vm")?, how).await
}

/// `VM.unpause`.
pub(in crate::handlers) async fn unpause(ctx: Ctx, args: Args) -> Result<Value, Error> {
    let how = OnDomain {
        op: VmOperation::Unpause,
        is_new_domain: false,
        expect: Expect::Domain { paused: false },
        action: |view, vm| HostAction::Vm(VmAction::Unpause { vm: uuid(view, vm) }),
    };
    on_domain(&ctx, args.str("vm")?, how).await
}

/// `VM.clean_reboot`: asks the guest to reboot; the domain is created anew.
pub(in crate::handlers) async fn clean_reboot(ctx: Ctx, args: Args) -> Result<Value, Error> {
    let how = OnDomain {
        op: VmOperation::CleanReboot,
        is_new_domain: true,
        expect: Expect::Domain { paused: false },
        action: |view, vm| {
            HostAction::Vm(VmAction::Reboot {
                vm: vm_spec::build(view, vm),
                clean: true,
            })
        },
    };
    on_domain(&ctx, args.str("vm")?, how).await
}

/// `VM.hard_reboot`: destroys the domain and starts it again.
pub(in crate::handlers) async fn hard_reboot(ctx: Ctx, args: Args) -> Result<Value, Error> {
    let how = OnDomain {
        op: VmOperation::HardReboot,
        is_new_domain: true,
        expect: Expect::Domain { paused: false },
        action: |view, vm| {
            HostAction::Vm(VmAction::Reboot {
                vm: vm_spec::build(view, vm),
                clean: false,
            })
        },
    };
    on_domain(&ctx, args.str("vm")?, how).await
}

#[cfg(test)]
mod tests {
    use api_spec::{NULL_REF, Value};

    use super::*;
    use crate::error::xenapi;
    use crate::testing::{ActionKind, RUNNING_OPERATIONS, TestPool, s};
    use api_spec::classes::vm::VmPowerState;

    /// Suspend saves the VM to a suspend image on the pool's suspend SR and leaves it
    /// Suspended without a host; resume boots it again and the image goes.
    #[tokio::test]
    async fn suspend_and_resume_go_through_a_suspend_image() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let vm = pool.running_vm(&session, "web").await;
        assert_eq!(
            pool.call_as(&session, "VM.suspend", vec![s(&vm)]).await,
            Ok(s(""))
        );
        assert_eq!(pool.text("VM", &vm, "power_state"), "Suspended");
        assert_eq!(pool.text("VM", &vm, "resident_on"), NULL_REF);
        assert_eq!(pool.field("VM", &vm, "domid"), Some(Value::Int(-1)));
        let image = pool.text("VM", &vm, "suspend_VDI");
        assert_eq!(pool.text("VDI", &image, "type"), "suspend");
        let sr = pool.refs("SR").remove(0);
        assert_eq!(pool.text("VDI", &image, "SR"), sr);
        assert_eq!(
            pool.allowed("VM", &vm),
            [
                "checkpoint",
                "destroy",
                "export",
                "hard_shutdown",
                "migrate_send",
                "resume",
                "resume_on",
                "snapshot"
            ]
        );
        let received = pool.agent.received();
        let suspend = received.iter().find_map(|sent| match &sent.action {
            HostAction::Vm(VmAction::Suspend { image, .. }) => Some(image.clone()),
            _ => None,
        });
        let Some(disk) = suspend else {
            panic!("a suspend");
        };
        assert_eq!(disk.vdi_uuid, pool.text("VDI", &image, "uuid"));
        let args = vec![s(&vm), Value::Bool(false), Value::Bool(false)];
        assert_eq!(pool.call_as(&session, "VM.resume", args).await, Ok(s("")));
        assert_eq!(pool.text("VM", &vm, "power_state"), "Running");
        assert_eq!(pool.text("VM", &vm, "suspend_VDI"), NULL_REF);
        assert!(pool.read().get("VDI", &image).is_none());
        // The image's volume is made before the suspend and deleted after the resume.
        assert_eq!(
            pool.agent.kinds(),
            [
                ActionKind::Start,
                ActionKind::CreateVdi,
                ActionKind::Suspend,
                ActionKind::Resume,
                ActionKind::DestroyVdi
            ]
        );
    }

    /// The suspend image goes to an SR the VM's host reaches: a VM whose disk is on a shared
    /// SR suspends there though the pool's `suspend_image_SR` is the host's local SR (so it
    /// can resume on any host that reaches its disk); a VM with a disk on the local SR
    /// suspends there, passing over a pool `suspend_image_SR` its host does not reach; the
    /// VM's own `suspend_SR` wins.
    #[tokio::test]
    async fn the_suspend_image_goes_where_the_host_reaches_shared_for_a_vm_on_shared_srs() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let local = pool.refs("SR").remove(0);
        let pool_ref = pool.refs("pool").remove(0);
        assert_eq!(pool.text("pool", &pool_ref, "suspend_image_SR"), local);
        let other = pool.add_host("other", 64 << 30);
        let args = crate::testing::sr_create_args(&pool.host, "file", "/srv/shared", true);
        let shared = pool.call_as(&session, "SR.create", args).await;
        let shared = shared.expect("an SR").as_str().expect("a ref").to_owned();
        let elsewhere = pool.new_file_sr(&session, &other, "/srv/other").await;
        // The SR the image of a new VM goes to, its disk on `disk_sr`, its `suspend_SR` `own`.
        let suspended_to = |name: &'static str, disk_sr: String, own: String| {
            let (pool, session) = (&pool, &session);
            async move {
                let vm = pool.new_vm(session, name).await;
                pool.add_disk_on(session, &vm, "0", &disk_sr).await;
                pool.write("VM", &vm, &[("suspend_SR", s(&own))]);
                pool.start_on(session, &vm, &pool.host).await;
                let suspended = pool.call_as(session, "VM.suspend", vec![s(&vm)]).await;
                assert_eq!(suspended, Ok(s("")), "{name}");
                let image = pool.text("VM", &vm, "suspend_VDI");
                pool.text("VDI", &image, "SR")
            }
        };
        let none = || NULL_REF.to_owned();
        assert_eq!(suspended_to("agile", shared.clone(), none()).await, shared);
        let own = suspended_to("own", shared.clone(), local.clone()).await;
        assert_eq!(own, local);
        pool.write("pool", &pool_ref, &[("suspend_image_SR", s(&elsewhere))]);
        assert_eq!(suspended_to("pinned", local.clone(), none()).await, local);
    }

    /// A suspend the agent fails keeps the VM running and removes the image it made.
    #[tokio::test]
    async fn a_failed_suspend_keeps_the_vm_running_without_an_image() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let vm = pool.running_vm(&session, "web").await;
        let error = host_api::AgentFailure::Internal {
            message: "no room for the image".to_owned(),
        };
        pool.agent.fail_next(ActionKind::Suspend, error);
        assert_eq!(
            pool.call_as(&session, "VM.suspend", vec![s(&vm)]).await,
            Err(errors::internal_error(
                "host agent: no room for the image".to_owned()
            ))
        );
        assert_eq!(pool.text("VM", &vm, "power_state"), "Running");
        assert_eq!(pool.text("VM", &vm, "suspend_VDI"), NULL_REF);
        assert_eq!(pool.refs("VDI").len(), 0);
        assert_eq!(pool.allowed("VM", &vm), RUNNING_OPERATIONS);
    }

    /// Pause and unpause keep the domain; unpausing a running VM is `VM_BAD_POWER_STATE`.
    #[tokio::test]
    async fn pause_and_unpause_keep_the_domain() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let vm = pool.running_vm(&session, "web").await;
        assert_eq!(
            pool.call_as(&session, "VM.unpause", vec![s(&vm)]).await,
            Err(xenapi::vm_bad_power_state(
                &vm,
                &[VmPowerState::Paused],
                VmPowerState::Running
            ))
        );
        let consoles = pool.field("VM", &vm, "consoles");
        assert_eq!(
            pool.call_as(&session, "VM.pause", vec![s(&vm)]).await,
            Ok(s(""))
        );
        assert_eq!(pool.text("VM", &vm, "power_state"), "Paused");
        assert_eq!(pool.field("VM", &vm, "consoles"), consoles);
        assert_eq!(
            pool.call_as(&session, "VM.unpause", vec![s(&vm)]).await,
            Ok(s(""))
        );
        assert_eq!(pool.text("VM", &vm, "power_state"), "Running");
        assert_eq!(pool.field("VM", &vm, "domid"), Some(Value::Int(1)));
    }

    /// A reboot gives the VM a new domain: new domid, start time and consoles.
    #[tokio::test]
    async fn reboots_give_a_new_domain() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let vm = pool.running_vm(&session, "web").await;
        let consoles = pool.field("VM", &vm, "consoles");
        let metrics = pool.text("VM", &vm, "metrics");
        pool.clock.advance(60);
        assert_eq!(
            pool.call_as(&session, "VM.clean_reboot", vec![s(&vm)])
                .await,
            Ok(s(""))
        );
        assert_eq!(pool.field("VM", &vm, "domid"), Some(Value::Int(2)));
        assert_ne!(pool.field("VM", &vm, "consoles"), consoles);
        let start_time = api_spec::datetime::format_unix(crate::testing::TEST_START_UNIX + 60);
        assert_eq!(
            pool.field("VM_metrics", &metrics, "start_time"),
            Some(Value::DateTime(start_time))
        );
        assert_eq!(
            pool.call_as(&session, "VM.hard_reboot", vec![s(&vm)]).await,
            Ok(s(""))
        );
        assert_eq!(pool.field("VM", &vm, "domid"), Some(Value::Int(3)));
        let received = pool.agent.received();
        assert!(matches!(
            received[1].action,
            HostAction::Vm(VmAction::Reboot { clean: true, .. })
        ));
        assert!(matches!(
            received[2].action,
            HostAction::Vm(VmAction::Reboot { clean: false, .. })
        ));
        assert_eq!(pool.allowed("VM", &vm), RUNNING_OPERATIONS);
    }

    /// Operations on a halted VM's domain are refused with the states they need.
    #[tokio::test]
    async fn domain_operations_on_a_halted_vm_are_refused() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let vm = pool.new_vm(&session, "web").await;
        for (method, states) in [
            ("VM.suspend", &[VmPowerState::Running][..]),
            ("VM.pause", &[VmPowerState::Running][..]),
            ("VM.clean_reboot", &[VmPowerState::Running][..]),
            (
                "VM.hard_reboot",
                &[VmPowerState::Paused, VmPowerState::Running][..],
            ),
        ] {
            assert_eq!(
                pool.call_as(&session, method, vec![s(&vm)]).await,
                Err(xenapi::vm_bad_power_state(
                    &vm,
                    states,
                    VmPowerState::Halted
                )),
                "{method}"
            );
        }
        assert!(pool.agent.received().is_empty());
    }
}
