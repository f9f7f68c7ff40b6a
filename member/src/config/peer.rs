//! `PeerSettings`: how the streams between the hosts of a pool notice a silent peer and come
//! back.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ConfigError, check_range, invalid};

/// How the streams between the hosts of a pool notice a silent peer and come back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PeerSettings {
    /// A stream that has carried nothing for this long carries a ping, in both directions, in
    /// milliseconds, 10..=60000.
    pub ping_interval_ms: u64,
    /// A stream on which nothing arrived for this long is dead: it is closed and dialled
    /// again; so is a dial not answered within it. In milliseconds, 100..=600000, and more than
    /// twice `ping_interval_ms`.
    pub read_timeout_ms: u64,
    /// The pause before dialling a member again after a failed dial or a stream lost, doubled
    /// after each failure in a row, in milliseconds, 1..=60000.
    pub min_backoff_ms: u64,
    /// The longest such pause, in milliseconds, `min_backoff_ms`..=600000.
    pub max_backoff_ms: u64,
}

impl Default for PeerSettings {
    fn default() -> Self {
        PeerSettings {
            ping_interval_ms: 500,
            read_timeout_ms: 2000,
            min_backoff_ms: 20,
            max_backoff_ms: 500,
        }
    }
}

impl PeerSettings {
    /// Checks every field against its documented range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_range("peer.ping_interval_ms", self.ping_interval_ms, 10, 60_000)?;
        check_range("peer.read_timeout_ms", self.read_timeout_ms, 100, 600_000)?;
        check_range("peer.min_backoff_ms", self.min_backoff_ms, 1, 60_000)?;
        check_range(
            "peer.max_backoff_ms",
            self.max_backoff_ms,
            self.min_backoff_ms,
            600_000,
        )?;
        if self.read_timeout_ms <= 2 * self.ping_interval_ms {
            return invalid(
                "peer.read_timeout_ms",
                "must be more than twice peer.ping_interval_ms",
            );
        }
        Ok(())
    }

    pub fn ping_interval(&self) -> Duration {
        Duration::from_millis(self.ping_interval_ms)
    }

    pub fn read_timeout(&self) -> Duration {
        Duration::from_millis(self.read_timeout_ms)
    }

    pub fn min_backoff(&self) -> Duration {
        Duration::from_millis(self.min_backoff_ms)
    }

    pub fn max_backoff(&self) -> Duration {
        Duration::from_millis(self.max_backoff_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    /// A peer section sets its fields and keeps the others' defaults; a read timeout that two
    /// pings do not fit in, or a back-off cap below its start, is refused by name.
    #[test]
    fn peer_section_parses_and_its_timings_must_fit_together() {
        let config: Config =
            serde_json::from_str(r#"{"peer": {"ping_interval_ms": 100}}"#).expect("parses");
        assert_eq!(config.peer.ping_interval(), Duration::from_millis(100));
        assert_eq!(config.peer.read_timeout(), Duration::from_secs(2));
        assert!(config.validate().is_ok());

        let config: Config =
            serde_json::from_str(r#"{"peer": {"ping_interval_ms": 1000}}"#).expect("parses");
        let err = config.validate().expect_err("two pings do not fit");
        assert!(
            err.to_string().starts_with("peer.read_timeout_ms: "),
            "{err}"
        );

        let config: Config =
            serde_json::from_str(r#"{"peer": {"min_backoff_ms": 100, "max_backoff_ms": 50}}"#)
                .expect("parses");
        let err = config.validate().expect_err("cap below the start");
        assert!(
            err.to_string().starts_with("peer.max_backoff_ms: "),
            "{err}"
        );
    }
}
