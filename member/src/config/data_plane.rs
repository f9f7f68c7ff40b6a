//! `DataPlaneSettings`: how long a bulk transfer between two hosts may make no progress.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ConfigError, check_range};

/// How long a bulk transfer between two hosts (`member::data_plane`) may make no progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataPlaneSettings {
    /// A transfer that moves no byte for this long fails at both ends, and so does a receiver
    /// that gives no answer this long after the last byte, in milliseconds, 100..=3600000.
    /// Default 30000.
    pub stall_timeout_ms: u64,
}

impl Default for DataPlaneSettings {
    fn default() -> Self {
        DataPlaneSettings {
            stall_timeout_ms: 30_000,
        }
    }
}

impl DataPlaneSettings {
    /// Checks every field against its documented range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_range(
            "data_plane.stall_timeout_ms",
            self.stall_timeout_ms,
            100,
            3_600_000,
        )
    }

    pub fn stall_timeout(&self) -> Duration {
        Duration::from_millis(self.stall_timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    /// A data plane section sets its stall timeout; one below its range is refused by name.
    #[test]
    fn data_plane_section_parses_and_its_range_is_checked() {
        let config: Config =
            serde_json::from_str(r#"{"data_plane": {"stall_timeout_ms": 500}}"#).expect("parses");
        assert_eq!(
            config.data_plane.stall_timeout(),
            Duration::from_millis(500)
        );
        assert!(config.validate().is_ok());

        let config: Config =
            serde_json::from_str(r#"{"data_plane": {"stall_timeout_ms": 5}}"#).expect("parses");
        let err = config.validate().expect_err("below the range");
        assert!(
            err.to_string().starts_with("data_plane.stall_timeout_ms: "),
            "{err}"
        );
    }
}
