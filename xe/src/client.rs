//! xe's use of api-client: JSON-RPC over HTTPS with the certificates of `trust.rs`, a login
//! with failover to the pool members seen before (`members.rs`), and calls in the session.

use std::path::PathBuf;
use std::time::Duration;

use api_client::{Attempt, Client, ClientError, Download, Failover, Reply};
use api_spec::{ApiError, Value};
use tokio::io::AsyncRead;

use crate::error::XeError;
use crate::members::PoolMembers;
use crate::settings::{self, Paths, Settings};
use crate::trust::{self, KnownHosts};

/// How long a connection attempt may take before the next member is tried.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// What xe tells the server it is, as the session's originator.
const ORIGINATOR: &str = "xe";

/// One HTTP(S) endpoint of the XenAPI.
pub struct Connection {
    client: Client,
    /// `host:port`.
    pub address: String,
    /// The fingerprint the known-hosts file remembers for `address`.
    known: Option<String>,
    known_hosts: Option<PathBuf>,
}

impl Connection {
    /// A client of `address`, checking its certificate against `known` (see `trust`).
    pub fn new(
        address: &str,
        settings: &Settings,
        known: &KnownHosts,
        known_hosts: Option<PathBuf>,
    ) -> Connection {
        let known = known.get(address).map(str::to_owned);
        let builder = if settings.use_tls {
            Client::https(
                address,
                trust::check_of(known.as_deref(), settings.no_verify),
            )
        } else {
            Client::http(address)
        };
        let client = builder
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent("xe (oxapi)")
            .build()
            .expect("invariant: an HTTP client with a preconfigured rustls config builds");
        Connection {
            client,
            address: address.to_owned(),
            known,
            known_hosts,
        }
    }

    /// Calls `method` with exactly `params`: the XenAPI's answer, or why none came.
    pub async fn rpc(
        &self,
        method: &str,
        params: Vec<Value>,
    ) -> Result<Result<Value, ApiError>, XeError> {
        let answer = self.client.call(method, params).await;
        answer.map_err(|e| self.error(method, e))
    }

    /// Calls `method` in `session` (the session ref goes first).
    async fn rpc_in(
        &self,
        session: &str,
        method: &str,
        params: Vec<Value>,
    ) -> Result<Result<Value, ApiError>, XeError> {
        let answer = self.client.call_in(session, method, params).await;
        answer.map_err(|e| self.error(method, e))
    }

    fn error(&self, method: &str, error: ClientError) -> XeError {
        match error {
            ClientError::Request { .. } => {
                let changed = match (self.client.trust(), &self.known_hosts) {
                    (Some(check), Some(file)) => {
                        trust::changed_error(&self.address, self.known.as_deref(), check, file)
                    }
                    _ => None,
                };
                changed.unwrap_or_else(|| XeError::Unreachable {
                    server: self.address.clone(),
                    source: error,
                })
            }
            ClientError::Undecodable { source, .. } => XeError::Decode {
                server: self.address.clone(),
                method: method.to_owned(),
                source,
            },
            other => XeError::BadReply {
                server: self.address.clone(),
                method: method.to_owned(),
                source: other,
            },
        }
    }
}

/// A logged-in session on one host of the pool.
pub struct Session {
    conn: Connection,
    session: String,
    /// Logged in with `slave_local_login_with_password`: valid on that host only.
    is_local: bool,
}

impl Session {
    /// Calls `method` in the session (the session ref goes first).
    pub async fn call(&self, method: &str, params: Vec<Value>) -> Result<Value, XeError> {
        self.conn
            .rpc_in(&self.session, method, params)
            .await?
            .map_err(|e| XeError::api(method, e))
    }

    /// Calls `method` and expects a string (a ref, a uuid).
    pub async fn call_str(&self, method: &str, params: Vec<Value>) -> Result<String, XeError> {
        let value = self.call(method, params).await?;
        as_string(value, "a string")
    }

    /// PUTs `length` bytes of `body` to the HTTP handler `path` of the host the session is on,
    /// with the session and `query` (`/import_raw_vdi`); the answer, whatever its status.
    pub async fn put_stream(
        &self,
        path: &str,
        query: &[(&str, &str)],
        body: impl AsyncRead + Send + 'static,
        length: u64,
    ) -> Result<Reply, XeError> {
        let query = self.with_session(query);
        let answer = self
            .conn
            .client
            .put_stream(path, &query, body, length)
            .await;
        answer.map_err(|e| self.conn.error(path, e))
    }

    /// GETs the HTTP handler `path` of the host the session is on, with the session and
    /// `query` (`/export_raw_vdi`); the answer, its body still to be read.
    pub async fn get_stream(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<Download, XeError> {
        let query = self.with_session(query);
        let answer = self.conn.client.get_stream(path, &query).await;
        answer.map_err(|e| self.conn.error(path, e))
    }

    /// `query` after the session, as xapi's HTTP handlers take it (`session_id=`).
    fn with_session<'a>(&'a self, query: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        let mut all = vec![("session_id", self.session.as_str())];
        all.extend_from_slice(query);
        all
    }

    /// A transfer's failure, as the call behind `method` would have failed.
    pub fn transfer_error(&self, method: &str, error: ClientError) -> XeError {
        self.conn.error(method, error)
    }

    /// Ends the session; a failure here changes nothing for the command, so it is ignored.
    pub async fn logout(self) {
        let method = if self.is_local {
            "session.local_logout"
        } else {
            "session.logout"
        };
        let _ = self.call(method, Vec::new()).await;
    }
}

/// A string value, or `UnexpectedReply`.
pub fn as_string(value: Value, expected: &'static str) -> Result<String, XeError> {
    match value {
        Value::String(s) => Ok(s),
        other => Err(XeError::UnexpectedReply {
            what: format!("{other:?}"),
            expected,
        }),
    }
}

/// How to log in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Login {
    /// `session.login_with_password`, through any host of the pool.
    Pool,
    /// `session.slave_local_login_with_password` on the host named, and no other.
    Local,
}

/// Logs in to the server of `settings`, or, when it is down, to the first pool member seen
/// behind it that answers (a local login tries the server only). Afterwards the certificate of
/// a first use and the current members are remembered.
pub async fn connect(
    settings: &Settings,
    paths: Option<&Paths>,
    how: Login,
) -> Result<Session, XeError> {
    let known_hosts_path = paths.map(|p| p.known_hosts.clone());
    let known = match &known_hosts_path {
        Some(path) => KnownHosts::load(path)?,
        None => KnownHosts::default(),
    };
    let mut pool_members = match paths {
        Some(p) => PoolMembers::load(&p.pool_members)?,
        None => PoolMembers::default(),
    };
    let server = settings.address();
    let remembered = match how {
        Login::Pool => pool_members.get(&server),
        Login::Local => &[],
    };
    let addresses = api_client::candidates(&server, remembered);
    let session = api_client::first_reachable(&addresses, |address| {
        let conn = Connection::new(&address, settings, &known, known_hosts_path.clone());
        login(conn, settings, &known, known_hosts_path.clone(), how)
    })
    .await
    .map_err(|failover| match failover {
        Failover::Failed(e) => e,
        Failover::NoneReachable { tried } => XeError::NoHostReachable {
            tried: tried.join(", "),
        },
    })?;
    if how == Login::Pool
        && let Some(paths) = paths
        && let Ok(seen) = member_addresses(&session, settings.port).await
        && pool_members.set(&server, seen)
    {
        pool_members.save(&paths.pool_members)?;
    }
    Ok(session)
}

async fn login(
    conn: Connection,
    settings: &Settings,
    known: &KnownHosts,
    known_hosts_path: Option<PathBuf>,
    how: Login,
) -> Attempt<Session, XeError> {
    let mut params = vec![
        Value::str(settings.username.as_str()),
        Value::str(settings.password.as_str()),
    ];
    let method = match how {
        Login::Pool => {
            params.extend([Value::str("1.0"), Value::str(ORIGINATOR)]);
            "session.login_with_password"
        }
        Login::Local => "session.slave_local_login_with_password",
    };
    let answer = match conn.rpc(method, params.clone()).await {
        Ok(answer) => answer,
        Err(e @ XeError::Unreachable { .. }) => return Attempt::Unreachable(e),
        Err(e) => return Attempt::Fatal(e),
    };
    let (conn, answer) = match answer {
        // A host that is not the master names it (xapi's slaves do; oxapi hosts forward
        // instead): log in there.
        Err(e) if how == Login::Pool && e.code == "HOST_IS_SLAVE" && !e.params.is_empty() => {
            let master = settings::address(&e.params[0], settings.port);
            let conn = Connection::new(&master, settings, known, known_hosts_path);
            match conn.rpc(method, params).await {
                Ok(answer) => (conn, answer),
                Err(e) => return Attempt::Fatal(e),
            }
        }
        answer => (conn, answer),
    };
    match answer {
        Ok(Value::String(session)) => {
            if let Some(check) = conn.client.trust()
                && let Err(e) =
                    trust::remember_first_use(&conn.address, check, conn.known_hosts.as_ref())
            {
                return Attempt::Fatal(e);
            }
            Attempt::Connected(Session {
                conn,
                session,
                is_local: how == Login::Local,
            })
        }
        Ok(other) => Attempt::Fatal(XeError::UnexpectedReply {
            what: format!("{other:?}"),
            expected: "a session reference",
        }),
        Err(e) => Attempt::Fatal(XeError::api(method, e)),
    }
}

/// The `host:port` of every host of the pool, from their `address` fields.
async fn member_addresses(session: &Session, port: u16) -> Result<Vec<String>, XeError> {
    let records = session.call("host.get_all_records", Vec::new()).await?;
    Ok(records
        .as_struct()
        .into_iter()
        .flat_map(|all| all.values())
        .filter_map(|host| host.as_struct()?.get("address")?.as_str())
        .filter(|a| !a.is_empty())
        .map(|a| settings::address(a, port))
        .collect())
}
