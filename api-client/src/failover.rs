//! Failover across the members of a pool: the address named first, then the other members
//! known, each tried in turn until one connects.

use std::future::Future;

/// The addresses to try, in order: `server` first, then each of `members` not already listed.
pub fn candidates(server: &str, members: &[String]) -> Vec<String> {
    let mut out = vec![server.to_owned()];
    for member in members {
        if !out.contains(member) {
            out.push(member.clone());
        }
    }
    out
}

/// What one attempt gives: a connection, a host that cannot be reached (try the next one), or
/// an error that ends the attempts (a changed certificate, a refused login).
#[derive(Debug)]
pub enum Attempt<T, E> {
    Connected(T),
    Unreachable(E),
    Fatal(E),
}

/// Why `first_reachable` found no connection.
#[derive(Debug, PartialEq, Eq)]
pub enum Failover<E> {
    /// A fatal error, or the error of the only address there was.
    Failed(E),
    /// Every address was tried and none could be reached; the addresses, in order.
    NoneReachable { tried: Vec<String> },
}

/// Tries `addresses` in order with `attempt` until one connects or one fails fatally.
pub async fn first_reachable<T, E, F, Fut>(
    addresses: &[String],
    mut attempt: F,
) -> Result<T, Failover<E>>
where
    F: FnMut(String) -> Fut,
    Fut: Future<Output = Attempt<T, E>>,
{
    let mut first_error = None;
    for address in addresses {
        match attempt(address.clone()).await {
            Attempt::Connected(t) => return Ok(t),
            Attempt::Fatal(e) => return Err(Failover::Failed(e)),
            Attempt::Unreachable(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) if addresses.len() == 1 => Err(Failover::Failed(e)),
        _ => Err(Failover::NoneReachable {
            tried: addresses.to_vec(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run<T>(future: impl Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime")
            .block_on(future)
    }

    /// When the first address is down, the next member is tried and used.
    #[test]
    fn down_first_host_fails_over_to_the_next_member() {
        let addresses = candidates("a:443", &["b:443".to_owned(), "c:443".to_owned()]);
        let mut tried = Vec::new();
        let got: Result<String, Failover<String>> = run(first_reachable(&addresses, |address| {
            tried.push(address.clone());
            async move {
                if address == "a:443" {
                    Attempt::Unreachable(address)
                } else {
                    Attempt::Connected(address)
                }
            }
        }));
        assert_eq!(got.expect("b answers"), "b:443");
        assert_eq!(tried, ["a:443", "b:443"]);
    }

    /// A fatal error (a changed certificate, say) stops the failover at once.
    #[test]
    fn fatal_error_stops_the_failover() {
        let addresses = candidates("a:443", &["b:443".to_owned()]);
        let got: Result<(), _> = run(first_reachable(&addresses, |address| async move {
            Attempt::Fatal(address)
        }));
        assert_eq!(got, Err(Failover::Failed("a:443".to_owned())));
    }

    /// With every member down, the error lists what was tried; with one address, its own
    /// error comes back.
    #[test]
    fn every_member_down_lists_what_was_tried() {
        let addresses = candidates("a:443", &["a:443".to_owned(), "b:443".to_owned()]);
        assert_eq!(addresses, ["a:443", "b:443"]);
        let got: Result<(), _> = run(first_reachable(&addresses, |address| async move {
            Attempt::Unreachable(address)
        }));
        assert_eq!(
            got,
            Err(Failover::NoneReachable {
                tried: vec!["a:443".to_owned(), "b:443".to_owned()]
            })
        );
        let alone: Result<(), _> = run(first_reachable(&addresses[..1], |address| async move {
            Attempt::Unreachable(address)
        }));
        assert_eq!(alone, Err(Failover::Failed("a:443".to_owned())));
    }
}
