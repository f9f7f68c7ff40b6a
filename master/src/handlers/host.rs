//! The custom messages of `host`: its memory, its clock, `enable` / `disable`, and its
//! evacuation (`evacuate`, `assert_can_evacuate`, `get_vms_which_prevent_evacuation`; the plan
//! is `pool/evacuation.rs`, each move a `VM.pool_migrate`).

use std::collections::BTreeMap;

use api_spec::{NULL_REF, Value, errors};

use super::vm::{Share, migrate};
use crate::call::ctx::{Args, Ctx, void};
use crate::db::record::row;
use crate::error::Error;
use crate::pool::evacuation;
use crate::vm::memory;
use crate::vm::operations::Overlay;

/// The memory the host has free for VMs, in bytes, computed from the DB as xapi does
/// (`vm/memory.rs`): its total, less its own overhead, less what its resident and scheduled VMs
/// use.
pub(super) async fn compute_free_memory(ctx: Ctx, args: Args) -> Result<Value, Error> {
    let host = args.str("host")?;
    let db = ctx.db();
    row(&db, "host", host)?;
    Ok(Value::Int(memory::host_free_bytes(
        &Overlay::new(&db),
        host,
        None,
    )))
}

/// The memory the host keeps for itself, in bytes (`host.memory_overhead`).
pub(super) async fn compute_memory_overhead(ctx: Ctx, args: Args) -> Result<Value, Error> {
    let db = ctx.db();
    let host = row(&db, "host", args.str("host")?)?;
    Ok(host
        .get("memory_overhead")
        .cloned()
        .unwrap_or(Value::Int(0)))
}

/// The host's current time, in UTC. Every host of a pool shares the master's clock here.
pub(super) async fn get_servertime(ctx: Ctx, args: Args) -> Result<Value, Error> {
    row(&ctx.db(), "host", args.str("host")?)?;
    Ok(Value::DateTime(api_spec::datetime::format_unix(ctx.now())))
}

/// The host's local time: the master keeps no time zone, so it is UTC as well.
pub(super) async fn get_server_localtime(ctx: Ctx, args: Args) -> Result<Value, Error> {
    get_servertime(ctx, args).await
}

/// Sets `host.enabled`: a disabled host gets no new VMs (placement skips it, `start_on` and
/// migrations to it are refused with `HOST_DISABLED`).
async fn set_enabled(ctx: &Ctx, host: &str, enabled: bool) -> Result<Value, Error> {
    ctx.set_field("host", host, "enabled", Value::Bool(enabled))
        .await?;
    tracing::info!(host = %host, enabled, "host enabled flag set");
    Ok(void())
}

/// `host.disable`: no new VMs on the host (before maintenance, or an evacuation).
pub(super) async fn disable(ctx: Ctx, args: Args) -> Result<Value, Error> {
    set_enabled(&ctx, args.str("host")?, false).await
}

/// `host.enable`: the host takes new VMs again.
pub(super) async fn enable(ctx: Ctx, args: Args) -> Result<Value, Error> {
    set_enabled(&ctx, args.str("host")?, true).await
}

/// The evacuation plan of the host `host`, checked to exist.
fn plan_of(ctx: &Ctx, host: &str) -> Result<evacuation::Plan, Error> {
    let db = ctx.db();
    row(&db, "host", host)?;
    Ok(evacuation::plan(&Overlay::new(&db), host))
}

/// `host.assert_can_evacuate`: xapi's older form, every refusal in one
/// `CANNOT_EVACUATE_HOST [errors]`.
pub(super) async fn assert_can_evacuate(ctx: Ctx, args: Args) -> Result<Value, Error> {
    let plan = plan_of(&ctx, args.str("host")?)?;
    match evacuation::cannot_evacuate(&plan) {
        Some(error) => Err(error.into()),
        None => Ok(void()),
    }
}

/// `host.get_vms_which_prevent_evacuation`: each VM that cannot move, with its error as code
/// then parameters.
pub(super) async fn get_vms_which_prevent_evacuation(ctx: Ctx, args: Args) -> Result<Value, Error> {
    let plan = plan_of(&ctx, args.str("self")?)?;
    let refused: BTreeMap<String, Value> = evacuation::refusals(&plan)
        .map(|(vm, error)| {
            let words = error.description().into_iter().map(Value::String).collect();
            (vm.to_owned(), Value::Array(words))
        })
        .collect();
    Ok(Value::Struct(refused))
}

/// `host.evacuate`: migrates every VM off the host, to where the plan puts it, one after the
/// other; refused up front with the first VM's error when any cannot move. As xapi: the host
/// need not be disabled (xapi's clients disable it first), a VM that halted meanwhile is
/// skipped, and a VM still resident at the end is `INTERNAL_ERROR`. `network` (the migration
/// network) is checked and otherwise unused; `evacuate_batch_size` is accepted, migrations run
/// one at a time.
pub(super) async fn evacuate(ctx: Ctx, args: Args) -> Result<Value, Error> {
    let (host, network) = (args.str("host")?, args.str("network")?);
    args.int("evacuate_batch_size")?;
    if network != NULL_REF {
        row(&ctx.db(), "network", network)?;
    }
    let plan = plan_of(&ctx, host)?;
    if let Some((_, error)) = evacuation::refusals(&plan).next() {
        return Err(error.clone().into());
    }
    let count = plan.len();
    for (index, (vm, target)) in plan.into_iter().enumerate() {
        let Ok(target) = target else {
            continue;
        };
        match migrate(&ctx, &vm, &target, Share::WHOLE.part(index, count)).await {
            Ok(()) => {}
            Err(Error::Api(e)) if e.code == errors::VM_BAD_POWER_STATE => {
                tracing::info!(vm = %vm, "VM no longer running; not migrated");
            }
            Err(e) => return Err(e),
        }
    }
    let left = evacuation::resident_vms(&Overlay::new(&ctx.db()), host).len();
    if left > 0 {
        let message = format!("evacuate: {left} VMs are still resident on {host}");
        return Err(errors::internal_error(message).into());
    }
    tracing::info!(host = %host, vms = count, "host evacuated");
    Ok(void())
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::error::xenapi;
    use crate::testing::{ActionKind, TestPool, s};
    use api_spec::classes::vm::VmPowerState;

    const GIB: i64 = 1 << 30;

    /// `host.evacuate` moves every running VM off the host, spread over the other hosts
    /// (breadth-first), and leaves the control domain; the VMs run on.
    #[tokio::test]
    async fn evacuate_moves_every_vm_to_the_other_hosts() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let second = pool.add_host("second", 8 * GIB);
        let third = pool.add_host("third", 8 * GIB);
        let vms = [
            pool.running_vm_on(&session, "a", &pool.host).await,
            pool.running_vm_on(&session, "b", &pool.host).await,
        ];
        let host = s(&pool.host);
        assert_eq!(
            pool.call_as(&session, "host.assert_can_evacuate", vec![host.clone()])
                .await,
            Ok(void())
        );
        let reply = pool
            .call_as(&session, "host.evacuate", vec![host.clone()])
            .await;
        assert_eq!(reply, Ok(void()));
        let mut hosts: Vec<String> = vms
            .iter()
            .map(|vm| {
                assert_eq!(pool.text("VM", vm, "power_state"), "Running");
                pool.text("VM", vm, "resident_on")
            })
            .collect();
        hosts.sort();
        let mut expected = vec![second, third];
        expected.sort();
        assert_eq!(hosts, expected);
        let left: Vec<String> = pool
            .ref_list("host", &pool.host, "resident_VMs")
            .into_iter()
            .filter(|vm| pool.field("VM", vm, "is_control_domain") != Some(Value::Bool(true)))
            .collect();
        assert!(left.is_empty(), "{left:?}");
        let moves = pool
            .agent
            .kinds()
            .into_iter()
            .filter(|k| *k == ActionKind::MigrateOut)
            .count();
        assert_eq!(moves, 2);
    }

    /// A VM that cannot go anywhere stops the evacuation before anything moves: `evacuate`
    /// answers its error, `assert_can_evacuate` xapi's `CANNOT_EVACUATE_HOST` encoding, and
    /// `get_vms_which_prevent_evacuation` names it.
    #[tokio::test]
    async fn evacuate_refuses_up_front_when_a_vm_cannot_move() {
        let pool = TestPool::new();
        let session = pool.login().await;
        pool.add_host("second", 64 * GIB);
        pool.running_vm_on(&session, "diskless", &pool.host).await;
        let with_disk = pool.new_vm(&session, "with disk").await;
        let (_, vdi) = pool.add_disk(&session, &with_disk, "0").await;
        pool.start_on(&session, &with_disk, &pool.host).await;
        let sr = pool.text("VDI", &vdi, "SR");
        let host = s(&pool.host);
        assert_eq!(
            pool.call_as(&session, "host.evacuate", vec![host.clone()])
                .await,
            Err(errors::vm_requires_sr(&with_disk, &sr))
        );
        assert!(!pool.agent.kinds().contains(&ActionKind::MigrateOut));
        assert_eq!(
            pool.call_as(&session, "host.assert_can_evacuate", vec![host.clone()])
                .await,
            Err(errors::cannot_evacuate_host(format!(
                "VM_REQUIRES_SR,{with_disk},{sr}"
            )))
        );
        let preventing = pool
            .call_as(
                &session,
                "host.get_vms_which_prevent_evacuation",
                vec![host],
            )
            .await;
        let expected = Value::Array(vec![s("VM_REQUIRES_SR"), s(&with_disk), s(&sr)]);
        assert_eq!(
            preventing,
            Ok(Value::Struct(BTreeMap::from([(
                with_disk.clone(),
                expected
            )])))
        );
    }

    /// With no other live, enabled host every VM is `NO_HOSTS_AVAILABLE`; with hosts too
    /// small, `HOST_NOT_ENOUGH_FREE_MEMORY`; a paused VM cannot be migrated.
    #[tokio::test]
    async fn evacuate_needs_room_on_live_enabled_hosts() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let vm = pool.running_vm_on(&session, "web", &pool.host).await;
        let evacuate = || pool.call_as(&session, "host.evacuate", vec![s(&pool.host)]);
        assert_eq!(evacuate().await, Err(errors::no_hosts_available()));
        let disabled = pool.add_host("disabled", 64 * GIB);
        pool.call_as(&session, "host.disable", vec![s(&disabled)])
            .await
            .expect("disabled");
        assert_eq!(
            pool.field("host", &disabled, "enabled"),
            Some(Value::Bool(false))
        );
        assert_eq!(evacuate().await, Err(errors::no_hosts_available()));
        pool.add_host("small", GIB / 2);
        assert_eq!(
            evacuate().await,
            Err(errors::host_not_enough_free_memory(GIB, GIB / 2))
        );
        pool.call_as(&session, "host.enable", vec![s(&disabled)])
            .await
            .expect("enabled");
        pool.call_as(&session, "VM.pause", vec![s(&vm)])
            .await
            .expect("paused");
        assert_eq!(
            evacuate().await,
            Err(xenapi::vm_bad_power_state(
                &vm,
                &[VmPowerState::Running],
                VmPowerState::Paused
            ))
        );
        assert_eq!(pool.text("VM", &vm, "resident_on"), pool.host);
    }

    /// Free memory is the host's total less the control domain and the VMs on it, and
    /// `compute_memory_overhead` is the host's own overhead.
    #[tokio::test]
    async fn free_memory_follows_the_vms_on_the_host() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let host = Value::str(pool.host.as_str());
        let free = || pool.call_as(&session, "host.compute_free_memory", vec![host.clone()]);
        assert_eq!(free().await, Ok(Value::Int(15 * GIB)));
        let vm = pool.new_vm(&session, "web").await;
        let args = vec![
            Value::str(vm.as_str()),
            Value::Bool(false),
            Value::Bool(false),
        ];
        pool.call_as(&session, "VM.start", args)
            .await
            .expect("started");
        assert_eq!(free().await, Ok(Value::Int(14 * GIB)));
        let overhead = pool
            .call_as(&session, "host.compute_memory_overhead", vec![host.clone()])
            .await;
        assert_eq!(overhead, Ok(Value::Int(0)));
        let reply = pool
            .call_as(
                &session,
                "host.compute_free_memory",
                vec![Value::str("OpaqueRef:x")],
            )
            .await;
        assert_eq!(
            reply,
            Err(api_spec::errors::handle_invalid("host", "OpaqueRef:x"))
        );
    }
}
