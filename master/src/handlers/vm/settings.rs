//! The custom setters of VM fields that clients cannot set generically (StaticRO fields xapi
//! gives a message of their own): `set_actions_after_crash`, with xapi's checks, and the
//! start and shutdown ordering fields.

use api_spec::{Value, errors};

use crate::call::ctx::{Args, Ctx, void};
use crate::error::Error;
use crate::vm::vm_spec;

/// Sets one field of a live VM.
async fn set_field(ctx: &Ctx, vm: &str, field: &str, value: Value) -> Result<Value, Error> {
    ctx.set_field("VM", vm, field, value).await?;
    Ok(void())
}

/// `VM.set_actions_after_crash`: `rename_restart` would leak a domain, and an HVM guest cannot
/// be dumped; xapi refuses both with `VALUE_NOT_SUPPORTED`.
pub(in crate::handlers) async fn set_actions_after_crash(
    ctx: Ctx,
    args: Args,
) -> Result<Value, Error> {
    let (vm, value) = (args.str("self")?, args.str("value")?);
    let field = "VM.actions_after_crash";
    let domain_type = {
        let db = ctx.db();
        crate::db::record::row(&db, "VM", vm)?;
        vm_spec::domain_type(&crate::vm::operations::Overlay::new(&db), vm)
    };
    match value {
        "rename_restart" => {
            let reason = "option would leak a domain; VMs and not domains are managed by this API";
            return Err(errors::value_not_supported(field, value, reason).into());
        }
        "coredump_and_destroy" | "coredump_and_restart" if domain_type != "pv" => {
            let reason = "cannot invoke a coredump of an HVM or PV-in-PVH domain";
            return Err(errors::value_not_supported(field, value, reason).into());
        }
        _ => {}
    }
    set_field(&ctx, vm, "actions_after_crash", Value::str(value)).await
}

/// `VM.set_shutdown_delay`: seconds; also the limit of `VM.shutdown`'s clean phase.
pub(in crate::handlers) async fn set_shutdown_delay(ctx: Ctx, args: Args) -> Result<Value, Error> {
    let (vm, value) = (args.str("self")?, args.int("value")?);
    set_field(&ctx, vm, "shutdown_delay", Value::Int(value)).await
}

/// `VM.set_start_delay`: seconds.
pub(in crate::handlers) async fn set_start_delay(ctx: Ctx, args: Args) -> Result<Value, Error> {
    let (vm, value) = (args.str("self")?, args.int("value")?);
    set_field(&ctx, vm, "start_delay", Value::Int(value)).await
}

/// `VM.set_order`: the VM's place in a pool-wide start or shutdown.
pub(in crate::handlers) async fn set_order(ctx: Ctx, args: Args) -> Result<Value, Error> {
    let (vm, value) = (args.str("self")?, args.int("value")?);
    set_field(&ctx, vm, "order", Value::Int(value)).await
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::testing::{TestPool, s};

    /// `set_actions_after_crash` takes what xapi takes and refuses what it refuses.
    #[tokio::test]
    async fn actions_after_crash_are_checked_as_xapi_does() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let vm = pool.new_vm(&session, "web").await;
        let set = |value: &str| {
            pool.call_as(
                &session,
                "VM.set_actions_after_crash",
                vec![s(&vm), s(value)],
            )
        };
        assert_eq!(set("preserve").await, Ok(s("")));
        assert_eq!(pool.text("VM", &vm, "actions_after_crash"), "preserve");
        let reply = set("rename_restart").await.map_err(|e| e.code);
        assert_eq!(reply, Err("VALUE_NOT_SUPPORTED".to_owned()));
        let reply = set("coredump_and_restart").await.map_err(|e| e.code);
        assert_eq!(reply, Err("VALUE_NOT_SUPPORTED".to_owned()));
        assert_eq!(pool.text("VM", &vm, "actions_after_crash"), "preserve");
    }

    /// The ordering setters write their field.
    #[tokio::test]
    async fn ordering_setters_write_their_field() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let vm = pool.new_vm(&session, "web").await;
        for (method, field) in [
            ("VM.set_shutdown_delay", "shutdown_delay"),
            ("VM.set_start_delay", "start_delay"),
            ("VM.set_order", "order"),
        ] {
            let reply = pool
                .call_as(&session, method, vec![s(&vm), Value::Int(7)])
                .await;
            assert_eq!(reply, Ok(s("")), "{method}");
            assert_eq!(pool.field("VM", &vm, field), Some(Value::Int(7)));
        }
    }
}
