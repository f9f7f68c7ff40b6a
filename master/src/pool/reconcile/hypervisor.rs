//! The host row's account of what runs its guests, from its agent's `Hypervisor` report:
//! `software_version:hypervisor` (`qemu-kvm`, `qemu-tcg`, `simulator`), `cpu_info:accel` and
//! `cpu_info:cpu_model`, and for QEMU the `capabilities` it offers (HVM guests, with its
//! accelerator). Written only when it changed, so a restart costs no Raft entry.

use host_api::HypervisorInfo;

use crate::Master;
use crate::error::Error;
use crate::pool::bootstrap::{string_set, strings};
use crate::vm::operations::Draft;

/// Records `info` on the row of `host`.
pub(super) async fn record(
    master: &Master,
    host: &str,
    info: &HypervisorInfo,
) -> Result<(), Error> {
    let (changed, _) = master
        .decide(|db| {
            let mut draft = Draft::new(db);
            let view = draft.view();
            if !view.exists("host", host) {
                return Ok((draft.into_txn(), false));
            }
            let name = info.name();
            let mut software = view.string_map("host", host, "software_version");
            let mut cpu_info = view.string_map("host", host, "cpu_info");
            let old = (software.clone(), cpu_info.clone());
            software.insert("hypervisor".to_owned(), name.clone());
            cpu_info.insert("accel".to_owned(), info.accel.clone());
            cpu_info.insert("cpu_model".to_owned(), info.cpu_model.clone());
            let changed = old != (software.clone(), cpu_info.clone());
            if changed {
                draft.update("host", host, "software_version", strings(software));
                draft.update("host", host, "cpu_info", strings(cpu_info));
                if info.kind == "qemu" {
                    let accelerated = format!("{name}-x86_64");
                    let capabilities = string_set(&["hvm-3.0-x86_64", &accelerated]);
                    draft.update("host", host, "capabilities", capabilities);
                }
            }
            Ok((draft.into_txn(), changed))
        })
        .await?;
    if changed {
        tracing::info!(host = %host, hypervisor = %info.describe(), "host hypervisor recorded");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use api_spec::Value;

    use super::*;
    use crate::testing::TestPool;

    /// A qemu host under KVM says so in its capabilities, software version and CPU info;
    /// the same report again changes nothing.
    #[tokio::test]
    async fn a_qemu_host_shows_its_accelerator() {
        let pool = TestPool::new();
        let info = HypervisorInfo {
            kind: "qemu".to_owned(),
            accel: "kvm".to_owned(),
            cpu_model: "host".to_owned(),
        };
        record(&pool.master, &pool.host, &info)
            .await
            .expect("recorded");
        let field = |name: &str| pool.field("host", &pool.host, name);
        assert_eq!(
            field("capabilities"),
            Some(string_set(&["hvm-3.0-x86_64", "qemu-kvm-x86_64"]))
        );
        let entry = |name: &str, key: &str| {
            let map = field(name).expect("a map");
            map.as_struct().and_then(|m| m.get(key)).cloned()
        };
        assert_eq!(
            entry("software_version", "hypervisor"),
            Some(Value::str("qemu-kvm"))
        );
        assert_eq!(entry("cpu_info", "accel"), Some(Value::str("kvm")));
        let applied = pool.read().applied_index();
        record(&pool.master, &pool.host, &info)
            .await
            .expect("recorded");
        assert_eq!(pool.read().applied_index(), applied, "no change, no entry");
    }
}
