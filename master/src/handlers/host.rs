//! The custom messages of `host`.

use api_spec::Value;

use crate::ctx::{Args, Ctx};
use crate::error::Error;
use crate::memory;
use crate::operations::Overlay;
use crate::record::row;

/// The memory the host has free for VMs, in bytes, computed from the DB as xapi does
/// (`memory.rs`): its total, less its own overhead, less what its resident and scheduled VMs
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestPool;

    const GIB: i64 = 1 << 30;

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
            Err(crate::error::xenapi::handle_invalid("host", "OpaqueRef:x"))
        );
    }
}
