//! `VM`: a virtual machine, template or snapshot, and its lifecycle operations.

use super::{STRING_MAP, STRING_SET, host::UPDATE_GUIDANCES};
use crate::errors::{
    BOOTLOADER_FAILED, HA_OPERATION_WOULD_BREAK_FAILOVER_PLAN, HOST_CANNOT_ATTACH_NETWORK,
    HOST_DISABLED, HOST_NOT_ENOUGH_FREE_MEMORY, HOST_NOT_ENOUGH_PCPUS, HOST_NOT_LIVE,
    INVALID_VALUE, LICENCE_RESTRICTION, MEMORY_CONSTRAINT_VIOLATION,
    NETWORK_SRIOV_INSUFFICIENT_CAPACITY, NO_HOSTS_AVAILABLE, OPERATION_NOT_ALLOWED,
    OTHER_OPERATION_IN_PROGRESS, SR_FULL, UNKNOWN_BOOTLOADER, VALUE_NOT_SUPPORTED,
    VM_BAD_POWER_STATE, VM_BIOS_STRINGS_ALREADY_SET, VM_CHECKPOINT_RESUME_FAILED,
    VM_CHECKPOINT_SUSPEND_FAILED, VM_HOST_INCOMPATIBLE_VERSION,
    VM_HOST_INCOMPATIBLE_VIRTUAL_HARDWARE_PLATFORM_VERSION, VM_HVM_REQUIRED,
    VM_INCOMPATIBLE_WITH_THIS_HOST, VM_IS_PART_OF_AN_APPLIANCE, VM_IS_TEMPLATE, VM_REQUIRES_GPU,
    VM_REQUIRES_IOMMU, VM_REQUIRES_NETWORK, VM_REQUIRES_SR, VM_REQUIRES_VGPU, VM_REVERT_FAILED,
    VM_SNAPSHOT_WITH_QUIESCE_FAILED, VM_SNAPSHOT_WITH_QUIESCE_NOT_SUPPORTED,
    VM_SNAPSHOT_WITH_QUIESCE_PLUGIN_DEOS_NOT_RESPOND, VM_SNAPSHOT_WITH_QUIESCE_TIMEOUT,
};
use crate::model::{Class, Field, Lifecycle, Message, Param};
use crate::roles::Role;
use crate::types::{EnumDecl, Lit, NEVER, Ty};

const VM_REF: Ty = Ty::Ref("VM");

crate::wire_enum! {
    /// What a VM is doing or may do: the values of `current_operations` and
    /// `allowed_operations`.
    pub enum VmOperation in VM_OPERATIONS = "vm_operations" {
        Snapshot = "snapshot",
        Clone = "clone",
        Copy = "copy",
        CreateTemplate = "create_template",
        Revert = "revert",
        Checkpoint = "checkpoint",
        SnapshotWithQuiesce = "snapshot_with_quiesce",
        Provision = "provision",
        Start = "start",
        StartOn = "start_on",
        Pause = "pause",
        Unpause = "unpause",
        CleanShutdown = "clean_shutdown",
        CleanReboot = "clean_reboot",
        HardShutdown = "hard_shutdown",
        PowerStateReset = "power_state_reset",
        HardReboot = "hard_reboot",
        Suspend = "suspend",
        Csvm = "csvm",
        Resume = "resume",
        ResumeOn = "resume_on",
        PoolMigrate = "pool_migrate",
        MigrateSend = "migrate_send",
        GetBootRecord = "get_boot_record",
        SendSysrq = "send_sysrq",
        SendTrigger = "send_trigger",
        QueryServices = "query_services",
        Shutdown = "shutdown",
        CallPlugin = "call_plugin",
        ChangingMemoryLive = "changing_memory_live",
        AwaitingMemoryLive = "awaiting_memory_live",
        ChangingDynamicRange = "changing_dynamic_range",
        ChangingStaticRange = "changing_static_range",
        ChangingMemoryLimits = "changing_memory_limits",
        ChangingShadowMemory = "changing_shadow_memory",
        ChangingShadowMemoryLive = "changing_shadow_memory_live",
        ChangingVcpus = "changing_VCPUs",
        ChangingVcpusLive = "changing_VCPUs_live",
        ChangingNvram = "changing_NVRAM",
        AssertOperationValid = "assert_operation_valid",
        DataSourceOp = "data_source_op",
        UpdateAllowedOperations = "update_allowed_operations",
        MakeIntoTemplate = "make_into_template",
        Import = "import",
        Export = "export",
        MetadataExport = "metadata_export",
        Reverting = "reverting",
        Destroy = "destroy",
        CreateVtpm = "create_vtpm",
    }
}

crate::wire_enum! {
    /// A VM's `power_state`.
    pub enum VmPowerState in VM_POWER_STATE = "vm_power_state" {
        Halted = "Halted",
        Paused = "Paused",
        Running = "Running",
        Suspended = "Suspended",
    }
}

impl VmPowerState {
    /// Whether a VM in this state has a domain on a host: Running or Paused.
    pub fn has_domain(self) -> bool {
        matches!(self, VmPowerState::Running | VmPowerState::Paused)
    }
}

pub static ON_SOFTREBOOT_BEHAVIOR: EnumDecl = EnumDecl {
    name: "on_softreboot_behavior",
    values: &["soft_reboot", "destroy", "restart", "preserve"],
};

pub static ON_NORMAL_EXIT: EnumDecl = EnumDecl {
    name: "on_normal_exit",
    values: &["destroy", "restart"],
};

pub static ON_CRASH_BEHAVIOUR: EnumDecl = EnumDecl {
    name: "on_crash_behaviour",
    values: &[
        "destroy",
        "coredump_and_destroy",
        "restart",
        "coredump_and_restart",
        "preserve",
        "rename_restart",
    ],
};

pub static DOMAIN_TYPE: EnumDecl = EnumDecl {
    name: "domain_type",
    values: &["hvm", "pv", "pv_in_pvh", "pvh", "unspecified"],
};

pub static VM_FIELDS: &[Field] = &[
    Field::dynamic_ro("uuid", Ty::String),
    Field::dynamic_ro("allowed_operations", Ty::Set(&Ty::Enum(&VM_OPERATIONS)))
        .default(Lit::Set(&[])),
    Field::dynamic_ro(
        "current_operations",
        Ty::Map(&Ty::String, &Ty::Enum(&VM_OPERATIONS)),
    )
    .default(Lit::Map(&[])),
    Field::rw("name_label", Ty::String).default(Lit::Str("")),
    Field::rw("name_description", Ty::String).default(Lit::Str("")),
    Field::static_ro("power_state", Ty::Enum(&VM_POWER_STATE)).default(Lit::Enum("Halted")),
    Field::rw("user_version", Ty::Int),
    Field::rw("is_a_template", Ty::Bool),
    Field::dynamic_ro("is_default_template", Ty::Bool).default(Lit::Bool(false)),
    Field::static_ro("suspend_VDI", Ty::Ref("VDI")).default(Lit::NullRef),
    Field::dynamic_ro("resident_on", Ty::Ref("host")),
    Field::dynamic_ro("scheduled_to_be_resident_on", Ty::Ref("host")).default(Lit::NullRef),
    Field::rw("affinity", Ty::Ref("host")),
    Field::dynamic_ro("memory_overhead", Ty::Int).default(Lit::Int(0)),
    Field::static_ro("memory_target", Ty::Int)
        .default(Lit::Int(0))
        .lifecycle(Lifecycle::Deprecated),
    Field::static_ro("memory_static_max", Ty::Int),
    Field::static_ro("memory_dynamic_max", Ty::Int),
    Field::static_ro("memory_dynamic_min", Ty::Int),
    Field::static_ro("memory_static_min", Ty::Int),
    Field::rw("VCPUs_params", STRING_MAP),
    Field::static_ro("VCPUs_max", Ty::Int),
    Field::static_ro("VCPUs_at_startup", Ty::Int),
    Field::rw(
        "actions_after_softreboot",
        Ty::Enum(&ON_SOFTREBOOT_BEHAVIOR),
    )
    .default(Lit::Enum("soft_reboot"))
    .lifecycle(Lifecycle::Prototyped),
    Field::rw("actions_after_shutdown", Ty::Enum(&ON_NORMAL_EXIT)),
    Field::rw("actions_after_reboot", Ty::Enum(&ON_NORMAL_EXIT)),
    Field::static_ro("actions_after_crash", Ty::Enum(&ON_CRASH_BEHAVIOUR)),
    Field::dynamic_ro("consoles", Ty::Set(&Ty::Ref("console"))),
    Field::dynamic_ro("VIFs", Ty::Set(&Ty::Ref("VIF"))),
    Field::dynamic_ro("VBDs", Ty::Set(&Ty::Ref("VBD"))),
    Field::dynamic_ro("VUSBs", Ty::Set(&Ty::Ref("VUSB"))),
    Field::dynamic_ro("crash_dumps", Ty::Set(&Ty::Ref("crashdump"))),
    Field::dynamic_ro("VTPMs", Ty::Set(&Ty::Ref("VTPM"))),
    Field::rw("PV_bootloader", Ty::String),
    Field::rw("PV_kernel", Ty::String),
    Field::rw("PV_ramdisk", Ty::String),
    Field::rw("PV_args", Ty::String),
    Field::rw("PV_bootloader_args", Ty::String),
    Field::rw("PV_legacy_args", Ty::String),
    Field::static_ro("HVM_boot_policy", Ty::String).lifecycle(Lifecycle::Deprecated),
    Field::rw("HVM_boot_params", STRING_MAP),
    Field::static_ro("HVM_shadow_multiplier", Ty::Float).default(Lit::Float(1.0)),
    Field::rw("platform", STRING_MAP),
    Field::rw("PCI_bus", Ty::String).lifecycle(Lifecycle::Deprecated),
    Field::rw("other_config", STRING_MAP),
    Field::dynamic_ro("domid", Ty::Int),
    Field::dynamic_ro("domarch", Ty::String),
    Field::static_ro("last_boot_CPU_flags", STRING_MAP).default(Lit::Map(&[])),
    Field::dynamic_ro("is_control_domain", Ty::Bool),
    Field::dynamic_ro("metrics", Ty::Ref("VM_metrics")),
    Field::dynamic_ro("guest_metrics", Ty::Ref("VM_guest_metrics")),
    Field::static_ro("last_booted_record", Ty::String).default(Lit::Str("")),
    Field::rw("recommendations", Ty::String),
    Field::rw("xenstore_data", STRING_MAP).default(Lit::Map(&[])),
    Field::static_ro("ha_always_run", Ty::Bool)
        .default(Lit::Bool(false))
        .lifecycle(Lifecycle::Deprecated),
    Field::static_ro("ha_restart_priority", Ty::String).default(Lit::Str("")),
    Field::dynamic_ro("is_a_snapshot", Ty::Bool).default(Lit::Bool(false)),
    Field::dynamic_ro("snapshot_of", VM_REF).default(Lit::NullRef),
    Field::dynamic_ro("snapshots", Ty::Set(&VM_REF)),
    Field::dynamic_ro("snapshot_time", Ty::DateTime).default(Lit::DateTime(NEVER)),
    Field::dynamic_ro("transportable_snapshot_id", Ty::String).default(Lit::Str("")),
    Field::dynamic_ro("blobs", Ty::Map(&Ty::String, &Ty::Ref("blob"))).default(Lit::Map(&[])),
    Field::rw("tags", STRING_SET).default(Lit::Set(&[])),
    Field::rw(
        "blocked_operations",
        Ty::Map(&Ty::Enum(&VM_OPERATIONS), &Ty::String),
    )
    .default(Lit::Map(&[])),
    Field::dynamic_ro("snapshot_info", STRING_MAP).default(Lit::Map(&[])),
    Field::dynamic_ro("snapshot_metadata", Ty::String).default(Lit::Str("")),
    Field::dynamic_ro("parent", VM_REF).default(Lit::NullRef),
    Field::dynamic_ro("children", Ty::Set(&VM_REF)),
    Field::dynamic_ro("bios_strings", STRING_MAP).default(Lit::Map(&[])),
    Field::static_ro("protection_policy", Ty::Ref("VMPP"))
        .default(Lit::NullRef)
        .lifecycle(Lifecycle::Deprecated),
    Field::static_ro("snapshot_schedule", Ty::Ref("VMSS")).default(Lit::NullRef),
    Field::static_ro("is_vmss_snapshot", Ty::Bool).default(Lit::Bool(false)),
    Field::static_ro("appliance", Ty::Ref("VM_appliance")).default(Lit::NullRef),
    Field::static_ro("start_delay", Ty::Int).default(Lit::Int(0)),
    Field::static_ro("shutdown_delay", Ty::Int).default(Lit::Int(0)),
    Field::static_ro("order", Ty::Int).default(Lit::Int(0)),
    Field::dynamic_ro("VGPUs", Ty::Set(&Ty::Ref("VGPU"))),
    Field::dynamic_ro("attached_PCIs", Ty::Set(&Ty::Ref("PCI"))),
    Field::rw("suspend_SR", Ty::Ref("SR")).default(Lit::NullRef),
    Field::static_ro("version", Ty::Int).default(Lit::Int(0)),
    Field::static_ro("generation_id", Ty::String).default(Lit::Str("0:0")),
    Field::rw("hardware_platform_version", Ty::Int).default(Lit::Int(0)),
    Field::static_ro("has_vendor_device", Ty::Bool).default(Lit::Bool(false)),
    Field::dynamic_ro("requires_reboot", Ty::Bool).default(Lit::Bool(false)),
    Field::static_ro("reference_label", Ty::String).default(Lit::Str("")),
    Field::static_ro("domain_type", Ty::Enum(&DOMAIN_TYPE)).default(Lit::Enum("unspecified")),
    Field::static_ro("NVRAM", STRING_MAP).default(Lit::Map(&[])),
    Field::dynamic_ro("pending_guidances", Ty::Set(&Ty::Enum(&UPDATE_GUIDANCES)))
        .default(Lit::Set(&[])),
    Field::dynamic_ro(
        "pending_guidances_recommended",
        Ty::Set(&Ty::Enum(&UPDATE_GUIDANCES)),
    )
    .default(Lit::Set(&[]))
    .lifecycle(Lifecycle::Prototyped),
    Field::dynamic_ro(
        "pending_guidances_full",
        Ty::Set(&Ty::Enum(&UPDATE_GUIDANCES)),
    )
    .default(Lit::Set(&[]))
    .lifecycle(Lifecycle::Prototyped),
];

// Error lists several messages share, as xapi writes `errnames_of_call clone`.
const CLONE_ERRORS: &[&str] = &[
    VM_BAD_POWER_STATE,
    SR_FULL,
    OPERATION_NOT_ALLOWED,
    LICENCE_RESTRICTION,
];

const POWER_OPERATION_ERRORS: &[&str] = &[
    VM_BAD_POWER_STATE,
    OTHER_OPERATION_IN_PROGRESS,
    OPERATION_NOT_ALLOWED,
    VM_IS_TEMPLATE,
];

const RESUME_ERRORS: &[&str] = &[VM_BAD_POWER_STATE, OPERATION_NOT_ALLOWED, VM_IS_TEMPLATE];

const POOL_MIGRATE_ERRORS: &[&str] = &[
    VM_BAD_POWER_STATE,
    OTHER_OPERATION_IN_PROGRESS,
    VM_IS_TEMPLATE,
    OPERATION_NOT_ALLOWED,
];

pub static VM_MESSAGES: &[Message] = &[
    Message::new("snapshot", Role::VmPowerAdmin)
        .params(&[
            Param::new("vm", VM_REF),
            Param::new("new_name", Ty::String),
            Param::new("ignore_vdis", Ty::Set(&Ty::Ref("VDI"))).default(Lit::Set(&[])),
        ])
        .returns(VM_REF)
        .errors(&[VM_BAD_POWER_STATE, SR_FULL, OPERATION_NOT_ALLOWED]),
    Message::new("snapshot_with_quiesce", Role::VmPowerAdmin)
        .params(&[Param::new("vm", VM_REF), Param::new("new_name", Ty::String)])
        .returns(VM_REF)
        .errors(&[
            VM_BAD_POWER_STATE,
            SR_FULL,
            OPERATION_NOT_ALLOWED,
            VM_SNAPSHOT_WITH_QUIESCE_FAILED,
            VM_SNAPSHOT_WITH_QUIESCE_TIMEOUT,
            VM_SNAPSHOT_WITH_QUIESCE_PLUGIN_DEOS_NOT_RESPOND,
            VM_SNAPSHOT_WITH_QUIESCE_NOT_SUPPORTED,
        ])
        .lifecycle(Lifecycle::Removed),
    Message::new("clone", Role::VmAdmin)
        .params(&[Param::new("vm", VM_REF), Param::new("new_name", Ty::String)])
        .returns(VM_REF)
        .errors(CLONE_ERRORS),
    Message::new("copy", Role::VmAdmin)
        .params(&[
            Param::new("vm", VM_REF),
            Param::new("new_name", Ty::String),
            Param::new("sr", Ty::Ref("SR")),
        ])
        .returns(VM_REF)
        .errors(CLONE_ERRORS),
    Message::new("revert", Role::VmPowerAdmin)
        .params(&[Param::new("snapshot", VM_REF)])
        .errors(&[
            VM_BAD_POWER_STATE,
            OPERATION_NOT_ALLOWED,
            SR_FULL,
            VM_REVERT_FAILED,
        ]),
    Message::new("checkpoint", Role::VmPowerAdmin)
        .params(&[Param::new("vm", VM_REF), Param::new("new_name", Ty::String)])
        .returns(VM_REF)
        .errors(&[
            VM_BAD_POWER_STATE,
            SR_FULL,
            OPERATION_NOT_ALLOWED,
            VM_CHECKPOINT_SUSPEND_FAILED,
            VM_CHECKPOINT_RESUME_FAILED,
        ]),
    Message::new("provision", Role::VmAdmin)
        .params(&[Param::new("vm", VM_REF)])
        .errors(CLONE_ERRORS),
    Message::new("start", Role::VmOperator)
        .params(&[
            Param::new("vm", VM_REF),
            Param::new("start_paused", Ty::Bool),
            Param::new("force", Ty::Bool),
        ])
        .errors(&[
            VM_BAD_POWER_STATE,
            VM_HVM_REQUIRED,
            VM_IS_TEMPLATE,
            OTHER_OPERATION_IN_PROGRESS,
            OPERATION_NOT_ALLOWED,
            BOOTLOADER_FAILED,
            UNKNOWN_BOOTLOADER,
            NO_HOSTS_AVAILABLE,
            LICENCE_RESTRICTION,
        ]),
    Message::new("start_on", Role::VmPowerAdmin)
        .params(&[
            Param::new("vm", VM_REF),
            Param::new("host", Ty::Ref("host")),
            Param::new("start_paused", Ty::Bool),
            Param::new("force", Ty::Bool),
        ])
        .errors(&[
            VM_BAD_POWER_STATE,
            VM_IS_TEMPLATE,
            OTHER_OPERATION_IN_PROGRESS,
            OPERATION_NOT_ALLOWED,
            BOOTLOADER_FAILED,
            UNKNOWN_BOOTLOADER,
        ]),
    Message::new("pause", Role::VmOperator)
        .params(&[Param::new("vm", VM_REF)])
        .errors(POWER_OPERATION_ERRORS),
    Message::new("unpause", Role::VmOperator)
        .params(&[Param::new("vm", VM_REF)])
        .errors(RESUME_ERRORS),
    Message::new("clean_shutdown", Role::VmOperator)
        .params(&[Param::new("vm", VM_REF)])
        .errors(POWER_OPERATION_ERRORS),
    Message::new("shutdown", Role::VmOperator)
        .params(&[Param::new("vm", VM_REF)])
        .errors(POWER_OPERATION_ERRORS),
    Message::new("clean_reboot", Role::VmOperator)
        .params(&[Param::new("vm", VM_REF)])
        .errors(POWER_OPERATION_ERRORS),
    Message::new("hard_shutdown", Role::VmOperator)
        .params(&[Param::new("vm", VM_REF)])
        .errors(POWER_OPERATION_ERRORS),
    Message::new("power_state_reset", Role::PoolOperator).params(&[Param::new("vm", VM_REF)]),
    Message::new("hard_reboot", Role::VmOperator)
        .params(&[Param::new("vm", VM_REF)])
        .errors(POWER_OPERATION_ERRORS),
    Message::new("suspend", Role::VmOperator)
        .params(&[Param::new("vm", VM_REF)])
        .errors(POWER_OPERATION_ERRORS),
    Message::new("resume", Role::VmOperator)
        .params(&[
            Param::new("vm", VM_REF),
            Param::new("start_paused", Ty::Bool),
            Param::new("force", Ty::Bool),
        ])
        .errors(RESUME_ERRORS),
    Message::new("resume_on", Role::VmPowerAdmin)
        .params(&[
            Param::new("vm", VM_REF),
            Param::new("host", Ty::Ref("host")),
            Param::new("start_paused", Ty::Bool),
            Param::new("force", Ty::Bool),
        ])
        .errors(RESUME_ERRORS),
    Message::new("pool_migrate", Role::VmPowerAdmin)
        .params(&[
            Param::new("vm", VM_REF),
            Param::new("host", Ty::Ref("host")),
            Param::new("options", STRING_MAP),
        ])
        .errors(POOL_MIGRATE_ERRORS),
    Message::new("set_VCPUs_number_live", Role::VmAdmin)
        .params(&[Param::new("self", VM_REF), Param::new("nvcpu", Ty::Int)])
        .errors(&[OPERATION_NOT_ALLOWED, LICENCE_RESTRICTION]),
    Message::new("add_to_VCPUs_params_live", Role::VmAdmin).params(&[
        Param::new("self", VM_REF),
        Param::new("key", Ty::String),
        Param::new("value", Ty::String),
    ]),
    Message::new("set_NVRAM", Role::VmAdmin)
        .params(&[Param::new("self", VM_REF), Param::new("value", STRING_MAP)])
        .sync_only(),
    Message::new("add_to_NVRAM", Role::VmAdmin)
        .params(&[
            Param::new("self", VM_REF),
            Param::new("key", Ty::String),
            Param::new("value", Ty::String),
        ])
        .sync_only(),
    Message::new("remove_from_NVRAM", Role::VmAdmin)
        .params(&[Param::new("self", VM_REF), Param::new("key", Ty::String)])
        .sync_only(),
    Message::new("set_ha_restart_priority", Role::PoolOperator)
        .params(&[Param::new("self", VM_REF), Param::new("value", Ty::String)])
        .sync_only(),
    Message::new("set_ha_always_run", Role::PoolOperator)
        .params(&[Param::new("self", VM_REF), Param::new("value", Ty::Bool)])
        .sync_only()
        .lifecycle(Lifecycle::Deprecated),
    Message::new("compute_memory_overhead", Role::ReadOnly)
        .params(&[Param::new("vm", VM_REF)])
        .returns(Ty::Int),
    Message::new("set_memory_dynamic_max", Role::VmPowerAdmin)
        .params(&[Param::new("self", VM_REF), Param::new("value", Ty::Int)])
        .sync_only(),
    Message::new("set_memory_dynamic_min", Role::VmPowerAdmin)
        .params(&[Param::new("self", VM_REF), Param::new("value", Ty::Int)])
        .sync_only(),
    Message::new("set_memory_dynamic_range", Role::VmPowerAdmin).params(&[
        Param::new("self", VM_REF),
        Param::new("min", Ty::Int),
        Param::new("max", Ty::Int),
    ]),
    Message::new("set_memory_static_max", Role::VmPowerAdmin)
        .params(&[Param::new("self", VM_REF), Param::new("value", Ty::Int)])
        .errors(&[HA_OPERATION_WOULD_BREAK_FAILOVER_PLAN])
        .sync_only(),
    Message::new("set_memory_static_min", Role::VmPowerAdmin)
        .params(&[Param::new("self", VM_REF), Param::new("value", Ty::Int)])
        .sync_only(),
    Message::new("set_memory_static_range", Role::VmPowerAdmin).params(&[
        Param::new("self", VM_REF),
        Param::new("min", Ty::Int),
        Param::new("max", Ty::Int),
    ]),
    Message::new("set_memory_limits", Role::VmPowerAdmin).params(&[
        Param::new("self", VM_REF),
        Param::new("static_min", Ty::Int),
        Param::new("static_max", Ty::Int),
        Param::new("dynamic_min", Ty::Int),
        Param::new("dynamic_max", Ty::Int),
    ]),
    Message::new("set_memory", Role::VmPowerAdmin)
        .params(&[Param::new("self", VM_REF), Param::new("value", Ty::Int)]),
    Message::new("set_memory_target_live", Role::VmPowerAdmin)
        .params(&[Param::new("self", VM_REF), Param::new("target", Ty::Int)])
        .lifecycle(Lifecycle::Deprecated),
    Message::new("wait_memory_target_live", Role::ReadOnly)
        .params(&[Param::new("self", VM_REF)])
        .lifecycle(Lifecycle::Deprecated),
    Message::new("get_cooperative", Role::ReadOnly)
        .params(&[Param::new("self", VM_REF)])
        .returns(Ty::Bool)
        .lifecycle(Lifecycle::Deprecated),
    Message::new("set_HVM_shadow_multiplier", Role::VmPowerAdmin)
        .params(&[Param::new("self", VM_REF), Param::new("value", Ty::Float)])
        .sync_only(),
    Message::new("set_shadow_multiplier_live", Role::VmPowerAdmin).params(&[
        Param::new("self", VM_REF),
        Param::new("multiplier", Ty::Float),
    ]),
    Message::new("set_VCPUs_max", Role::VmAdmin)
        .params(&[Param::new("self", VM_REF), Param::new("value", Ty::Int)])
        .sync_only(),
    Message::new("set_VCPUs_at_startup", Role::VmAdmin)
        .params(&[Param::new("self", VM_REF), Param::new("value", Ty::Int)])
        .sync_only(),
    Message::new("send_sysrq", Role::PoolAdmin)
        .params(&[Param::new("vm", VM_REF), Param::new("key", Ty::String)])
        .errors(&[VM_BAD_POWER_STATE]),
    Message::new("send_trigger", Role::PoolAdmin)
        .params(&[Param::new("vm", VM_REF), Param::new("trigger", Ty::String)])
        .errors(&[VM_BAD_POWER_STATE]),
    Message::new("maximise_memory", Role::ReadOnly)
        .params(&[
            Param::new("self", VM_REF),
            Param::new("total", Ty::Int),
            Param::new("approximate", Ty::Bool),
        ])
        .returns(Ty::Int),
    Message::new("migrate_send", Role::VmPowerAdmin)
        .params(&[
            Param::new("vm", VM_REF),
            Param::new("dest", STRING_MAP),
            Param::new("live", Ty::Bool),
            Param::new("vdi_map", Ty::Map(&Ty::Ref("VDI"), &Ty::Ref("SR"))),
            Param::new("vif_map", Ty::Map(&Ty::Ref("VIF"), &Ty::Ref("network"))),
            Param::new("options", STRING_MAP),
            Param::new("vgpu_map", Ty::Map(&Ty::Ref("VGPU"), &Ty::Ref("GPU_group")))
                .default(Lit::Map(&[])),
        ])
        .returns(VM_REF)
        .errors(&[VM_BAD_POWER_STATE, LICENCE_RESTRICTION]),
    Message::new("assert_can_migrate", Role::VmPowerAdmin)
        .params(&[
            Param::new("vm", VM_REF),
            Param::new("dest", STRING_MAP),
            Param::new("live", Ty::Bool),
            Param::new("vdi_map", Ty::Map(&Ty::Ref("VDI"), &Ty::Ref("SR"))),
            Param::new("vif_map", Ty::Map(&Ty::Ref("VIF"), &Ty::Ref("network"))),
            Param::new("options", STRING_MAP),
            Param::new("vgpu_map", Ty::Map(&Ty::Ref("VGPU"), &Ty::Ref("GPU_group")))
                .default(Lit::Map(&[])),
        ])
        .errors(&[LICENCE_RESTRICTION]),
    Message::new("get_boot_record", Role::ReadOnly)
        .params(&[Param::new("self", VM_REF)])
        .returns(Ty::Record("VM"))
        .sync_only()
        .lifecycle(Lifecycle::Deprecated),
    Message::new("get_data_sources", Role::ReadOnly)
        .params(&[Param::new("self", VM_REF)])
        .returns(Ty::Set(&Ty::Record("data_source")))
        .sync_only(),
    Message::new("record_data_source", Role::VmAdmin)
        .params(&[
            Param::new("self", VM_REF),
            Param::new("data_source", Ty::String),
        ])
        .sync_only(),
    Message::new("query_data_source", Role::ReadOnly)
        .params(&[
            Param::new("self", VM_REF),
            Param::new("data_source", Ty::String),
        ])
        .returns(Ty::Float)
        .sync_only(),
    Message::new("forget_data_source_archives", Role::VmAdmin)
        .params(&[
            Param::new("self", VM_REF),
            Param::new("data_source", Ty::String),
        ])
        .sync_only(),
    Message::new("assert_operation_valid", Role::ReadOnly).params(&[
        Param::new("self", VM_REF),
        Param::new("op", Ty::Enum(&VM_OPERATIONS)),
    ]),
    Message::new("update_allowed_operations", Role::PoolAdmin)
        .params(&[Param::new("self", VM_REF)]),
    Message::new("get_allowed_VBD_devices", Role::ReadOnly)
        .params(&[Param::new("vm", VM_REF)])
        .returns(STRING_SET)
        .sync_only(),
    Message::new("get_allowed_VIF_devices", Role::ReadOnly)
        .params(&[Param::new("vm", VM_REF)])
        .returns(STRING_SET)
        .sync_only(),
    Message::new("get_possible_hosts", Role::ReadOnly)
        .params(&[Param::new("vm", VM_REF)])
        .returns(Ty::Set(&Ty::Ref("host"))),
    Message::new("assert_can_boot_here", Role::ReadOnly)
        .params(&[
            Param::new("self", VM_REF),
            Param::new("host", Ty::Ref("host")),
        ])
        .errors(&[
            HOST_NOT_ENOUGH_FREE_MEMORY,
            HOST_NOT_ENOUGH_PCPUS,
            NETWORK_SRIOV_INSUFFICIENT_CAPACITY,
            HOST_NOT_LIVE,
            HOST_DISABLED,
            HOST_CANNOT_ATTACH_NETWORK,
            VM_HVM_REQUIRED,
            VM_REQUIRES_GPU,
            VM_REQUIRES_IOMMU,
            VM_REQUIRES_NETWORK,
            VM_REQUIRES_SR,
            VM_REQUIRES_VGPU,
            VM_HOST_INCOMPATIBLE_VERSION,
            VM_HOST_INCOMPATIBLE_VIRTUAL_HARDWARE_PLATFORM_VERSION,
            INVALID_VALUE,
            MEMORY_CONSTRAINT_VIOLATION,
            OPERATION_NOT_ALLOWED,
            VALUE_NOT_SUPPORTED,
            VM_INCOMPATIBLE_WITH_THIS_HOST,
        ]),
    Message::new("create_new_blob", Role::VmPowerAdmin)
        .params(&[
            Param::new("vm", VM_REF),
            Param::new("name", Ty::String),
            Param::new("mime_type", Ty::String),
            Param::new("public", Ty::Bool).default(Lit::Bool(false)),
        ])
        .returns(Ty::Ref("blob")),
    Message::new("assert_agile", Role::ReadOnly).params(&[Param::new("self", VM_REF)]),
    Message::new("retrieve_wlb_recommendations", Role::ReadOnly)
        .params(&[Param::new("vm", VM_REF)])
        .returns(Ty::Map(&Ty::Ref("host"), &STRING_SET)),
    Message::new("set_bios_strings", Role::VmAdmin)
        .params(&[Param::new("self", VM_REF), Param::new("value", STRING_MAP)])
        .errors(&[VM_BIOS_STRINGS_ALREADY_SET, INVALID_VALUE]),
    Message::new("copy_bios_strings", Role::VmAdmin).params(&[
        Param::new("vm", VM_REF),
        Param::new("host", Ty::Ref("host")),
    ]),
    Message::new("set_protection_policy", Role::PoolOperator)
        .params(&[
            Param::new("self", VM_REF),
            Param::new("value", Ty::Ref("VMPP")),
        ])
        .sync_only()
        .lifecycle(Lifecycle::Removed),
    Message::new("set_snapshot_schedule", Role::PoolOperator)
        .params(&[
            Param::new("self", VM_REF),
            Param::new("value", Ty::Ref("VMSS")),
        ])
        .sync_only(),
    Message::new("set_start_delay", Role::PoolOperator)
        .params(&[Param::new("self", VM_REF), Param::new("value", Ty::Int)]),
    Message::new("set_shutdown_delay", Role::PoolOperator)
        .params(&[Param::new("self", VM_REF), Param::new("value", Ty::Int)]),
    Message::new("set_order", Role::PoolOperator)
        .params(&[Param::new("self", VM_REF), Param::new("value", Ty::Int)]),
    Message::new("set_suspend_VDI", Role::PoolOperator).params(&[
        Param::new("self", VM_REF),
        Param::new("value", Ty::Ref("VDI")),
    ]),
    Message::new("assert_can_be_recovered", Role::ReadOnly)
        .params(&[
            Param::new("self", VM_REF),
            Param::new("session_to", Ty::Ref("session")),
        ])
        .errors(&[VM_IS_PART_OF_AN_APPLIANCE, VM_REQUIRES_SR]),
    Message::new("get_SRs_required_for_recovery", Role::ReadOnly)
        .params(&[
            Param::new("self", VM_REF),
            Param::new("session_to", Ty::Ref("session")),
        ])
        .returns(Ty::Set(&Ty::Ref("SR"))),
    Message::new("recover", Role::ReadOnly).params(&[
        Param::new("self", VM_REF),
        Param::new("session_to", Ty::Ref("session")),
        Param::new("force", Ty::Bool),
    ]),
    Message::new("import_convert", Role::VmAdmin).params(&[
        Param::new("type", Ty::String),
        Param::new("username", Ty::String),
        Param::new("password", Ty::SecretString),
        Param::new("sr", Ty::Ref("SR")),
        Param::new("remote_config", STRING_MAP),
    ]),
    Message::new("set_appliance", Role::PoolOperator).params(&[
        Param::new("self", VM_REF),
        Param::new("value", Ty::Ref("VM_appliance")),
    ]),
    Message::new("query_services", Role::PoolAdmin)
        .params(&[Param::new("self", VM_REF)])
        .returns(STRING_MAP),
    Message::new("call_plugin", Role::VmOperator)
        .params(&[
            Param::new("vm", VM_REF),
            Param::new("plugin", Ty::String),
            Param::new("fn", Ty::String),
            Param::new("args", STRING_MAP),
        ])
        .returns(Ty::String),
    Message::new("set_has_vendor_device", Role::VmAdmin)
        .params(&[Param::new("self", VM_REF), Param::new("value", Ty::Bool)]),
    Message::new("import", Role::PoolOperator)
        .params(&[
            Param::new("url", Ty::String),
            Param::new("sr", Ty::Ref("SR")),
            Param::new("full_restore", Ty::Bool),
            Param::new("force", Ty::Bool),
        ])
        .returns(Ty::Set(&VM_REF)),
    Message::new("set_actions_after_crash", Role::VmAdmin).params(&[
        Param::new("self", VM_REF),
        Param::new("value", Ty::Enum(&ON_CRASH_BEHAVIOUR)),
    ]),
    Message::new("set_domain_type", Role::VmAdmin)
        .params(&[
            Param::new("self", VM_REF),
            Param::new("value", Ty::Enum(&DOMAIN_TYPE)),
        ])
        .sync_only(),
    Message::new("set_HVM_boot_policy", Role::VmAdmin)
        .params(&[Param::new("self", VM_REF), Param::new("value", Ty::String)])
        .sync_only()
        .lifecycle(Lifecycle::Deprecated),
    Message::new("restart_device_models", Role::VmPowerAdmin)
        .params(&[Param::new("self", VM_REF)])
        .errors(POOL_MIGRATE_ERRORS)
        .sync_only()
        .lifecycle(Lifecycle::Prototyped),
];

pub static VM: Class = Class {
    name: "VM",
    fields: VM_FIELDS,
    messages: VM_MESSAGES,
    enums: &[
        &VM_OPERATIONS,
        &VM_POWER_STATE,
        &ON_SOFTREBOOT_BEHAVIOR,
        &ON_NORMAL_EXIT,
        &ON_CRASH_BEHAVIOUR,
        &DOMAIN_TYPE,
    ],
    has_constructor: true,
    has_get_all: true,
    in_db: true,
    gen_events: true,
    writer_role: Role::VmAdmin,
};
