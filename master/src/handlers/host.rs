//! The custom messages of `host`.

use api_spec::Value;

use crate::ctx::{Args, Ctx};
use crate::error::Error;
use crate::record::row;

/// The host's current time, in UTC. Every host of a pool shares the master's clock here.
pub(super) async fn get_servertime(ctx: Ctx, args: Args) -> Result<Value, Error> {
    row(&ctx.db(), "host", args.str("host")?)?;
    Ok(Value::DateTime(api_spec::datetime::format_unix(ctx.now())))
}

/// The host's local time: the master keeps no time zone, so it is UTC as well.
pub(super) async fn get_server_localtime(ctx: Ctx, args: Args) -> Result<Value, Error> {
    get_servertime(ctx, args).await
}
