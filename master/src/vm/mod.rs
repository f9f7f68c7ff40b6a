//! VMs and their devices: what the VM handlers (`crate::handlers::vm`, `vbd`, `vif`) and
//! reconciliation share.
//!
//! `operations/` decides which operations a VM, VBD or VIF allows (xapi's tables) and keeps
//! `allowed_operations` / `current_operations` exact on every Txn. `power_state.rs` reads and
//! writes a VM's `power_state` and the rows that show its domain. `vm_spec.rs` reads the
//! `VmSpec` an agent runs a VM from, and `spec_push.rs` sends a running VM's agent the new spec
//! after a write. `placement.rs` chooses a host and `memory.rs` counts what a VM needs and a host
//! has free. `device_slots.rs` names the device slots a VM may still use.
//! `agent_failures.rs` turns an action's failure on a host into the XenAPI error a client gets.

pub(crate) mod agent_failures;
pub(crate) mod device_slots;
pub(crate) mod memory;
pub(crate) mod operations;
pub(crate) mod placement;
pub(crate) mod power_state;
pub(crate) mod spec_push;
pub(crate) mod vm_spec;
