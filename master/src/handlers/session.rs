//! The custom messages of `session`: login and logout, and the root password.

use api_spec::{Value, errors};
use db_schema::{Op, Txn};

use crate::Origin;
use crate::call::ctx::{Args, Ctx, void};
use crate::call::session::{ROOT_PASSWORD_HASH, authenticate, hash_in_pool, new_session_fields};
use crate::db::record::{self, exists};
use crate::error::Error;

/// What xapi's PAM check says when a login is refused.
const AUTHENTICATION_FAILURE: &str = "Authentication failure";

/// Whether the caller of a login is root: over the local socket, which xapi trusts as root,
/// by the user name alone; over the network by the password too (`session::authenticate`:
/// bounded, delayed after a failure, as costly for any user name). A refusal is
/// `SESSION_AUTHENTICATION_FAILED [uname; msg]`.
async fn check_login(ctx: &Ctx, args: &Args) -> Result<(), Error> {
    let uname = args.str("uname")?;
    let is_root = if ctx.origin == Origin::LocalSocket {
        uname == "root"
    } else {
        authenticate(&ctx.master, ctx.origin, uname, args.str("pwd")?).await?
    };
    if !is_root {
        return Err(errors::session_authentication_failed(uname, AUTHENTICATION_FAILURE).into());
    }
    Ok(())
}

/// Logs in as the local superuser `root`, the only user (see `check_login`). `version` is
/// ignored; `originator` names the caller's bucket for session housekeeping.
pub(super) async fn login_with_password(ctx: Ctx, args: Args) -> Result<Value, Error> {
    check_login(&ctx, &args).await?;
    let originator = args.str("originator")?;
    let class = record::class("session")?;
    let r = record::new_ref();
    let txn = Txn {
        preconditions: Vec::new(),
        ops: vec![Op::Create {
            class: "session".to_owned(),
            r#ref: r.clone(),
            fields: record::new_row(class, new_session_fields(&ctx.master, originator)),
        }],
    };
    ctx.master.commit(txn).await?;
    tracing::debug!(originator, "session created");
    Ok(Value::String(r))
}

/// Ends the caller's session.
pub(super) async fn logout(ctx: Ctx, _args: Args) -> Result<Value, Error> {
    let session = ctx.session()?;
    let txn = Txn {
        preconditions: vec![exists("session", session)],
        ops: vec![Op::Destroy {
            class: "session".to_owned(),
            r#ref: session.to_owned(),
        }],
    };
    ctx.master.registrations.forget(session);
    match ctx.master.commit(txn).await {
        Ok(_) => Ok(void()),
        // A concurrent logout won: the session is gone either way.
        Err(Error::Propose(crate::db::ProposeError::Apply(_))) => {
            Err(errors::session_invalid(session).into())
        }
        Err(e) => Err(e),
    }
}

/// Logs in as `root` on this host alone, for when the pool has no master: the password is
/// checked against this host's replica and the session is kept in this process, not in the
/// pool DB (see `session::LocalSessions`).
pub(super) async fn slave_local_login_with_password(ctx: Ctx, args: Args) -> Result<Value, Error> {
    check_login(&ctx, &args).await?;
    tracing::info!("slave-local session created");
    Ok(Value::String(ctx.master.local_sessions.create()))
}

/// Ends a session made by `slave_local_login_with_password` (a pool session is logged out as
/// `logout` does).
pub(super) async fn local_logout(ctx: Ctx, args: Args) -> Result<Value, Error> {
    let session = ctx.session()?;
    if ctx.master.local_sessions.remove(session) {
        return Ok(void());
    }
    logout(ctx, args).await
}

/// Changes root's password: the old one must match (even over the local socket, as xapi's
/// PAM check asks for it).
pub(super) async fn change_password(ctx: Ctx, args: Args) -> Result<Value, Error> {
    let (old, new) = (args.str("old_pwd")?, args.str("new_pwd")?);
    if !authenticate(&ctx.master, ctx.origin, "root", old).await? {
        return Err(errors::session_authentication_failed("root", AUTHENTICATION_FAILURE).into());
    }
    let hash = hash_in_pool(&ctx.master, new).await?;
    let txn = Txn {
        preconditions: Vec::new(),
        ops: vec![Op::PutInternal {
            key: ROOT_PASSWORD_HASH.to_owned(),
            value: Value::String(hash),
        }],
    };
    ctx.master.commit(txn).await?;
    tracing::info!("root password changed");
    Ok(void())
}

/// The subject identifiers of sessions of external users: there are none, only root.
pub(super) async fn get_all_subject_identifiers(_ctx: Ctx, _args: Args) -> Result<Value, Error> {
    Ok(Value::Array(Vec::new()))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use api_spec::errors;

    use super::*;
    use crate::testing::{TEST_ROOT_PASSWORD, TestPool};

    fn login_params(uname: &str, pwd: &str) -> Vec<Value> {
        vec![Value::str(uname), Value::str(pwd)]
    }

    /// Root logs in over the network with the right password; the session is a DB row that
    /// records who and whence.
    #[tokio::test]
    async fn root_logs_in_with_the_password_into_a_session_row() {
        let pool = TestPool::new();
        let mut params = login_params("root", TEST_ROOT_PASSWORD);
        params.extend([Value::str("1.0"), Value::str("xo")]);
        let session = pool.call("session.login_with_password", params).await;
        let session = session
            .expect("logged in")
            .as_str()
            .expect("a ref")
            .to_owned();
        assert!(session.starts_with("OpaqueRef:"));
        let field = |name| pool.field("session", &session, name);
        assert_eq!(field("auth_user_name"), Some(Value::str("root")));
        assert_eq!(field("is_local_superuser"), Some(Value::Bool(true)));
        assert_eq!(field("this_host"), Some(Value::str(pool.host.as_str())));
        assert_eq!(field("originator"), Some(Value::str("xo")));
        assert_eq!(field("pool"), Some(Value::Bool(false)));
    }

    /// A wrong password or another user is `SESSION_AUTHENTICATION_FAILED [uname; msg]`,
    /// both answered after the failure delay.
    // Paused time: the failure delays pass without waiting.
    #[tokio::test(start_paused = true)]
    async fn wrong_passwords_and_other_users_are_refused() {
        let pool = TestPool::new();
        let delay = Duration::from_millis(pool.master.config.password_failure_delay_ms);
        for (uname, pwd) in [("root", "wrong"), ("admin", TEST_ROOT_PASSWORD)] {
            let start = tokio::time::Instant::now();
            let reply = pool
                .call("session.login_with_password", login_params(uname, pwd))
                .await;
            assert_eq!(
                reply,
                Err(errors::session_authentication_failed(
                    uname,
                    AUTHENTICATION_FAILURE
                ))
            );
            assert!(start.elapsed() >= delay, "{uname}: {:?}", start.elapsed());
        }
        assert!(pool.refs("session").is_empty());
    }

    /// Over the local socket root needs no password, as with xapi's local login.
    #[tokio::test]
    async fn local_socket_logins_skip_the_password() {
        let pool = TestPool::new();
        let session = pool.login().await;
        assert_eq!(pool.refs("session"), [session]);
    }

    /// After `logout` the session is gone and answers `SESSION_INVALID`.
    #[tokio::test]
    async fn logout_ends_the_session() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let reply = pool.call_as(&session, "session.logout", vec![]).await;
        assert_eq!(reply, Ok(Value::str("")));
        let reply = pool.call_as(&session, "VM.get_all", vec![]).await;
        assert_eq!(reply, Err(errors::session_invalid(&session)));
        let reply = pool.call_as(&session, "session.local_logout", vec![]).await;
        assert_eq!(reply, Err(errors::session_invalid(&session)));
    }

    /// A slave-local login checks the password, writes no session row, works for calls on
    /// this master and ends with `local_logout`.
    // Paused time: the failure delays pass without waiting.
    #[tokio::test(start_paused = true)]
    async fn slave_local_sessions_live_outside_the_db() {
        let pool = TestPool::new();
        let method = "session.slave_local_login_with_password";
        let refused = pool
            .call(method, vec![Value::str("root"), Value::str("wrong")])
            .await;
        assert_eq!(
            refused.map_err(|e| e.code),
            Err(errors::SESSION_AUTHENTICATION_FAILED.to_owned())
        );
        let session = pool
            .call(
                method,
                vec![Value::str("root"), Value::str(TEST_ROOT_PASSWORD)],
            )
            .await
            .expect("a local login");
        let session = session.as_str().expect("a session ref").to_owned();
        assert!(pool.master.has_local_session(&session));
        assert!(pool.refs("session").is_empty());
        let hosts = pool.call_as(&session, "host.get_all", vec![]).await;
        assert_eq!(
            hosts,
            Ok(Value::Array(vec![Value::str(pool.host.as_str())]))
        );
        let reply = pool.call_as(&session, "session.local_logout", vec![]).await;
        assert_eq!(reply, Ok(Value::str("")));
        let reply = pool.call_as(&session, "host.get_all", vec![]).await;
        assert_eq!(reply, Err(errors::session_invalid(&session)));
    }

    /// `change_password` needs the old password and makes the new one the only one.
    // Paused time: the failure delays pass without waiting.
    #[tokio::test(start_paused = true)]
    async fn change_password_needs_the_old_one() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let params = vec![Value::str("bad"), Value::str("new-secret")];
        let reply = pool
            .call_as(&session, "session.change_password", params)
            .await;
        assert_eq!(
            reply.map_err(|e| e.code),
            Err("SESSION_AUTHENTICATION_FAILED".to_owned())
        );
        let params = vec![Value::str(TEST_ROOT_PASSWORD), Value::str("new-secret")];
        let reply = pool
            .call_as(&session, "session.change_password", params)
            .await;
        assert_eq!(reply, Ok(Value::str("")));
        let old = pool.call(
            "session.login_with_password",
            login_params("root", TEST_ROOT_PASSWORD),
        );
        assert!(old.await.is_err());
        let new = pool.call(
            "session.login_with_password",
            login_params("root", "new-secret"),
        );
        assert!(new.await.is_ok());
    }
}
