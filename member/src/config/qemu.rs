//! `QemuSettings`: how the `qemu` backend runs guests (read only when it is the backend).

use std::path::PathBuf;
use std::time::Duration;

use agent::backend::qemu::{AccelChoice, QEMU_BINARY, QemuConfig};
use serde::{Deserialize, Serialize};

use super::{ConfigError, check_range};

/// How the `qemu` backend runs guests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QemuSettings {
    /// The emulator, a path or a name looked up in `PATH`; default `qemu-system-x86_64`.
    pub binary: PathBuf,
    /// `"auto"` (the default: KVM when a probe at start shows it works, TCG otherwise),
    /// `"kvm"` or `"tcg"`.
    pub accel: AccelChoice,
    /// QEMU's `-cpu` for every guest, instead of the one chosen at start (`host` under KVM,
    /// or `host,-arch-capabilities` where KVM refuses `host`; `max` under TCG).
    pub cpu_model: Option<String>,
    /// How long one QMP command may take, in seconds, 1..=600; default 10.
    pub qmp_timeout_secs: u64,
    /// How long a running guest has to release a disk or NIC being unplugged, in seconds,
    /// 1..=3600; default 10.
    pub unplug_timeout_secs: u64,
    /// How long writing or loading a suspend image may take, in seconds, 1..=86400;
    /// default 600.
    pub image_timeout_secs: u64,
    /// The UEFI firmware that guests with `HVM_boot_params:firmware=uefi` boot; default
    /// Debian's `/usr/share/OVMF/OVMF_CODE_4M.fd` (the `ovmf` package).
    pub ovmf_code: PathBuf,
    /// The empty EFI variable store each UEFI VM's own one is first copied from; default
    /// `/usr/share/OVMF/OVMF_VARS_4M.fd`.
    pub ovmf_vars: PathBuf,
}

impl Default for QemuSettings {
    fn default() -> Self {
        let config = QemuConfig::default();
        QemuSettings {
            binary: PathBuf::from(QEMU_BINARY),
            accel: config.accel,
            cpu_model: config.cpu_model,
            qmp_timeout_secs: config.qmp_timeout.as_secs(),
            unplug_timeout_secs: config.unplug_timeout.as_secs(),
            image_timeout_secs: config.image_timeout.as_secs(),
            ovmf_code: config.ovmf_code,
            ovmf_vars: config.ovmf_vars,
        }
    }
}

impl QemuSettings {
    /// Checks every field against its documented range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_range("qemu.qmp_timeout_secs", self.qmp_timeout_secs, 1, 600)?;
        check_range(
            "qemu.unplug_timeout_secs",
            self.unplug_timeout_secs,
            1,
            3600,
        )?;
        check_range(
            "qemu.image_timeout_secs",
            self.image_timeout_secs,
            1,
            86_400,
        )
    }

    /// The driver's settings.
    pub fn driver_config(&self) -> QemuConfig {
        QemuConfig {
            binary: self.binary.clone(),
            accel: self.accel,
            cpu_model: self.cpu_model.clone(),
            qmp_timeout: Duration::from_secs(self.qmp_timeout_secs),
            unplug_timeout: Duration::from_secs(self.unplug_timeout_secs),
            image_timeout: Duration::from_secs(self.image_timeout_secs),
            ovmf_code: self.ovmf_code.clone(),
            ovmf_vars: self.ovmf_vars.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    /// A qemu section sets the accelerator and CPU model; a QMP timeout out of range is refused
    /// by name.
    #[test]
    fn qemu_section_parses_and_its_ranges_are_checked() {
        let config: Config = serde_json::from_str(
            r#"{"qemu": {"accel": "tcg", "cpu_model": "qemu64", "qmp_timeout_secs": 3}}"#,
        )
        .expect("parses");
        let driver = config.qemu.driver_config();
        assert_eq!(driver.accel, AccelChoice::Tcg);
        assert_eq!(driver.cpu_model.as_deref(), Some("qemu64"));
        assert_eq!(driver.qmp_timeout, Duration::from_secs(3));
        assert!(config.validate().is_ok());

        let config: Config =
            serde_json::from_str(r#"{"qemu": {"qmp_timeout_secs": 0}}"#).expect("parses");
        let err = config.validate().expect_err("out of range");
        assert!(err.to_string().contains("qemu.qmp_timeout_secs"), "{err}");
    }
}
