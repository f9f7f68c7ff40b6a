//! The joiner's side of `pool.join`: HTTPS to the master trusting its certificate on first use,
//! the login with the credentials the caller gave, then `POST /pool/join` with this host's
//! identity, address, certificate and facts. The master's certificate must be the one its
//! member entry in the answer names.

use std::net::SocketAddr;

use api_client::Trust;
use api_spec::Value;
use api_spec::api::{API_VERSION_MAJOR, API_VERSION_MINOR};
use master::pool::control::{Admission, JoinFailure, JoinRequest, JoinTarget, PoolMember};

use super::routes::{JOIN, JoinReply};
use super::{ThisHost, host_client};
use crate::error_chain::error_chain;
use crate::facts;

/// The originator of the joiner's session on the master.
const ORIGINATOR: &str = "oxapi-pool-join";

/// Asks the master at `target` to admit this host (`member`), reading no reply longer than
/// `max_reply_bytes`.
pub(super) async fn join(
    this: &ThisHost,
    member: PoolMember,
    target: JoinTarget,
    max_reply_bytes: usize,
) -> Result<Admission, JoinFailure> {
    let connection = |reason: String| JoinFailure::Connection { reason };
    let address = master_address(&target.master_address, this.address.port())
        .ok_or_else(|| connection(format!("{} is not an address", target.master_address)))?;
    let client = host_client(&address, Trust::first_use(), max_reply_bytes)
        .map_err(|e| connection(e.to_string()))?;
    let params = vec![
        Value::str(target.username.as_str()),
        Value::str(target.password.as_str()),
        Value::str(""),
        Value::str(ORIGINATOR),
    ];
    let session = match client.call("session.login_with_password", params).await {
        Ok(Ok(Value::String(session))) => session,
        Ok(Ok(other)) => return Err(connection(format!("login answered {other:?}"))),
        Ok(Err(refusal)) => return Err(JoinFailure::Refused(refusal)),
        Err(e) => return Err(connection(error_chain(&e))),
    };
    let master_cert = client
        .trust()
        .and_then(Trust::presented)
        .map(|fingerprint| fingerprint.to_hex())
        .ok_or_else(|| connection("the master showed no certificate".to_owned()))?;
    let facts = facts::read(&this.data_dir, this.listen_ip, this.presented_cpu.as_ref())
        .map_err(|e| connection(error_chain(&e)))?;
    let request = JoinRequest {
        session,
        force: target.force,
        member,
        host_uuid: this.identity.host_uuid.clone(),
        api_version_major: API_VERSION_MAJOR,
        api_version_minor: API_VERSION_MINOR,
        facts,
    };
    let reply: JoinReply = client
        .post_json(JOIN, &request, &[])
        .await
        .map_err(|e| connection(error_chain(&e)))?;
    let admission = match reply {
        JoinReply::Admitted(admission) => admission,
        JoinReply::Refused { code, params } => {
            return Err(JoinFailure::Refused(api_spec::ApiError::new(&code, params)));
        }
    };
    // Trust on first use holds only if the master vouches for the certificate it showed.
    if !admission
        .members
        .iter()
        .any(|m| m.cert_sha256 == master_cert)
    {
        return Err(connection(
            "the master's certificate is not one of the pool's".to_owned(),
        ));
    }
    Ok(admission)
}

/// `ip:port` for an address given as `ip`, `ip:port`, `[v6]:port`, `host` or `host:port`;
/// `default_port` when none is given.
fn master_address(given: &str, default_port: u16) -> Option<String> {
    let given = given.trim();
    if given.is_empty() {
        return None;
    }
    if given.parse::<SocketAddr>().is_ok() {
        return Some(given.to_owned());
    }
    if let Ok(ip) = given.parse::<std::net::IpAddr>() {
        return Some(SocketAddr::new(ip, default_port).to_string());
    }
    match given.rsplit_once(':') {
        Some((host, port)) if port.parse::<u16>().is_ok() && !host.contains(':') => {
            Some(given.to_owned())
        }
        Some(_) => None,
        None => Some(format!("{given}:{default_port}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A bare IP gets this host's port; an address with a port keeps it; IPv6 is bracketed.
    #[test]
    fn master_address_takes_the_default_port_when_none_is_given() {
        assert_eq!(
            master_address("127.0.0.2", 4443).as_deref(),
            Some("127.0.0.2:4443")
        );
        assert_eq!(
            master_address("127.0.0.2:443", 4443).as_deref(),
            Some("127.0.0.2:443")
        );
        assert_eq!(master_address("::1", 4443).as_deref(), Some("[::1]:4443"));
        assert_eq!(
            master_address("[::1]:8443", 4443).as_deref(),
            Some("[::1]:8443")
        );
        assert_eq!(
            master_address("master.lan", 4443).as_deref(),
            Some("master.lan:4443")
        );
        assert_eq!(
            master_address("master.lan:99", 4443).as_deref(),
            Some("master.lan:99")
        );
        assert_eq!(master_address(" ", 4443), None);
        assert_eq!(master_address("a:b:c", 4443), None);
    }
}
