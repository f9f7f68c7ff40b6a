//! The XenAPI error codes with their parameter names, and `ApiError`, the failure every call can
//! answer with (`ErrorDescription = [code, params…]`).

/// A declared error code and the names of its parameters, in wire order.
#[derive(Debug)]
pub struct ErrorDecl {
    pub code: &'static str,
    pub params: &'static [&'static str],
}

/// A XenAPI failure: the code and its parameters, as sent on the wire.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[error("{code} {params:?}")]
pub struct ApiError {
    pub code: String,
    pub params: Vec<String>,
}

impl ApiError {
    pub fn new<S: Into<String>>(code: &str, params: impl IntoIterator<Item = S>) -> ApiError {
        ApiError {
            code: code.to_owned(),
            params: params.into_iter().map(Into::into).collect(),
        }
    }

    /// `ErrorDescription` as sent on the wire: the code, then the parameters.
    pub fn description(&self) -> Vec<String> {
        std::iter::once(self.code.clone())
            .chain(self.params.iter().cloned())
            .collect()
    }
}

/// The declaration of `code`, if the API declares it.
pub fn decl(code: &str) -> Option<&'static ErrorDecl> {
    ERRORS.iter().find(|e| e.code == code)
}

const fn declare(code: &'static str, params: &'static [&'static str]) -> ErrorDecl {
    ErrorDecl { code, params }
}

/// Every declared error code, sorted by code. Parameters are those xapi sends, in wire order; where
/// xapi sends more than its datamodel declares (`SESSION_AUTHENTICATION_FAILED`,
/// `OTHER_OPERATION_IN_PROGRESS`), the table lists what is sent.
pub static ERRORS: &[ErrorDecl] = &[
    declare(BOOTLOADER_FAILED, &["vm", "msg"]),
    declare(CANNOT_CONTACT_HOST, &["host"]),
    declare(CANNOT_PLUG_BOND_SLAVE, &["PIF"]),
    declare(CANNOT_RESET_CONTROL_DOMAIN, &["vm"]),
    declare(CLUSTERING_ENABLED, &["cluster_host"]),
    declare(DATABASE_ENTRY_TOO_LARGE, &["size", "limit"]),
    declare(DATABASE_SPACE_LOW, &["host", "reason"]),
    declare(DEFAULT_SR_NOT_FOUND, &["sr"]),
    declare(DEVICE_ALREADY_ATTACHED, &["device"]),
    declare(DEVICE_ALREADY_DETACHED, &["device"]),
    declare(DEVICE_DETACH_REJECTED, &["type", "ref", "msg"]),
    declare(DOMAIN_EXISTS, &["vm", "domid"]),
    declare(EVENTS_LOST, &[]),
    declare(EVENT_FROM_TOKEN_PARSE_FAILURE, &["token"]),
    declare(EVENT_SUBSCRIPTION_PARSE_FAILURE, &["subscription"]),
    declare(FIELD_TYPE_ERROR, &["field"]),
    declare(HANDLE_INVALID, &["class", "handle"]),
    declare(HA_ABORT_NEW_MASTER, &["reason"]),
    declare(HA_CONSTRAINT_VIOLATION_NETWORK_NOT_SHARED, &["network"]),
    declare(HA_CONSTRAINT_VIOLATION_SR_NOT_SHARED, &["SR"]),
    declare(HA_HEARTBEAT_DAEMON_STARTUP_FAILED, &[]),
    declare(HA_HOST_CANNOT_ACCESS_STATEFILE, &[]),
    declare(HA_HOST_IS_ARMED, &["host"]),
    declare(HA_IS_ENABLED, &[]),
    declare(HA_LOST_STATEFILE, &[]),
    declare(HA_NOT_ENABLED, &[]),
    declare(HA_NOT_INSTALLED, &["host"]),
    declare(HA_NO_PLAN, &[]),
    declare(HA_OPERATION_WOULD_BREAK_FAILOVER_PLAN, &[]),
    declare(HA_POOL_IS_ENABLED_BUT_HOST_IS_DISABLED, &[]),
    declare(HA_SHOULD_BE_FENCED, &["host"]),
    declare(HA_TOO_FEW_HOSTS, &[]),
    declare(HOSTS_NOT_COMPATIBLE, &[]),
    declare(HOSTS_NOT_HOMOGENEOUS, &["reason"]),
    declare(HOST_CANNOT_ATTACH_NETWORK, &["host", "network"]),
    declare(HOST_CANNOT_DESTROY_SELF, &["host"]),
    declare(HOST_DISABLED, &["host"]),
    declare(HOST_EVACUATE_IN_PROGRESS, &["host"]),
    declare(HOST_HAS_NO_MANAGEMENT_IP, &[]),
    declare(HOST_HAS_RESIDENT_VMS, &["host"]),
    declare(HOST_IN_EMERGENCY_MODE, &[]),
    declare(HOST_IS_LIVE, &["host"]),
    declare(HOST_IS_SLAVE, &["Master IP address"]),
    declare(HOST_ITS_OWN_SLAVE, &[]),
    declare(HOST_MASTER_CANNOT_TALK_BACK, &["ip"]),
    declare(HOST_NAME_INVALID, &["reason"]),
    declare(HOST_NOT_DISABLED, &[]),
    declare(HOST_NOT_ENOUGH_FREE_MEMORY, &["needed", "available"]),
    declare(HOST_NOT_ENOUGH_PCPUS, &["vcpus", "pcpus"]),
    declare(HOST_NOT_LIVE, &[]),
    declare(HOST_OFFLINE, &["host"]),
    declare(HOST_STILL_BOOTING, &[]),
    declare(HOST_UNKNOWN_TO_MASTER, &["host"]),
    declare(HOST_XAPI_VERSION_HIGHER_THAN_COORDINATOR, &["version"]),
    declare(INTERNAL_ERROR, &["message"]),
    declare(INVALID_VALUE, &["field", "value"]),
    declare(JOINING_HOST_CANNOT_BE_MASTER_OF_OTHER_HOSTS, &[]),
    declare(JOINING_HOST_CANNOT_CONTAIN_SHARED_SRS, &[]),
    declare(JOINING_HOST_CANNOT_HAVE_RUNNING_VMS, &[]),
    declare(JOINING_HOST_CANNOT_HAVE_VMS_WITH_CURRENT_OPERATIONS, &[]),
    declare(JOINING_HOST_CONNECTION_FAILED, &[]),
    declare(JOINING_HOST_SERVICE_FAILED, &[]),
    declare(LICENCE_RESTRICTION, &["feature"]),
    declare(LICENSE_DOES_NOT_SUPPORT_POOLING, &[]),
    declare(LICENSE_HOST_POOL_MISMATCH, &[]),
    declare(LICENSE_PROCESSING_ERROR, &[]),
    declare(MAP_DUPLICATE_KEY, &["type", "param_name", "uuid", "key"]),
    declare(MEMORY_CONSTRAINT_VIOLATION, &["constraint"]),
    declare(MESSAGE_DEPRECATED, &[]),
    declare(MESSAGE_METHOD_UNKNOWN, &["method"]),
    declare(
        MESSAGE_PARAMETER_COUNT_MISMATCH,
        &["method", "expected", "received"],
    ),
    declare(MESSAGE_REMOVED, &[]),
    declare(NETWORK_CONTAINS_PIF, &["pifs"]),
    declare(NETWORK_CONTAINS_VIF, &["vifs"]),
    declare(
        NETWORK_INCOMPATIBLE_PURPOSES,
        &["new_purpose", "conflicting_purpose"],
    ),
    declare(NETWORK_SRIOV_INSUFFICIENT_CAPACITY, &["network"]),
    declare(NOT_IMPLEMENTED, &["function"]),
    declare(NOT_SUPPORTED_DURING_UPGRADE, &[]),
    declare(NO_HOSTS_AVAILABLE, &[]),
    declare(OBJECT_NOLONGER_EXISTS, &[]),
    declare(ONLY_PROVISION_TEMPLATE, &[]),
    declare(ONLY_REVERT_SNAPSHOT, &[]),
    declare(OPERATION_BLOCKED, &["ref", "code"]),
    declare(OPERATION_NOT_ALLOWED, &["reason"]),
    declare(
        OTHER_OPERATION_IN_PROGRESS,
        &["class", "object", "operation_type", "operation_ref"],
    ),
    declare(PERMISSION_DENIED, &["message"]),
    declare(PIF_DOES_NOT_ALLOW_UNPLUG, &["PIF"]),
    declare(PIF_HAS_FCOE_SR_IN_USE, &["PIF", "SR"]),
    declare(PIF_HAS_NO_NETWORK_CONFIGURATION, &["PIF"]),
    declare(PIF_HAS_NO_V6_NETWORK_CONFIGURATION, &["PIF"]),
    declare(PIF_INCOMPATIBLE_PRIMARY_ADDRESS_TYPE, &["PIF"]),
    declare(PIF_IS_MANAGEMENT_INTERFACE, &["PIF"]),
    declare(PIF_IS_PHYSICAL, &["PIF"]),
    declare(PIF_NOT_PRESENT, &["host", "network"]),
    declare(PIF_TUNNEL_STILL_EXISTS, &["PIF"]),
    declare(POOL_JOINING_EXTERNAL_AUTH_MISMATCH, &[]),
    declare(POOL_JOINING_HOST_HAS_BONDS, &[]),
    declare(POOL_JOINING_HOST_HAS_NON_MANAGEMENT_VLANS, &[]),
    declare(POOL_JOINING_HOST_HAS_TUNNELS, &[]),
    declare(
        POOL_JOINING_HOST_MANAGEMENT_VLAN_DOES_NOT_MATCH,
        &["local", "remote"],
    ),
    declare(POOL_JOINING_HOST_MUST_HAVE_PHYSICAL_MANAGEMENT_NIC, &[]),
    declare(
        POOL_JOINING_HOST_MUST_HAVE_SAME_API_VERSION,
        &["host_api_version", "master_api_version"],
    ),
    declare(
        POOL_JOINING_HOST_MUST_HAVE_SAME_DB_SCHEMA,
        &["host_db_schema", "master_db_schema"],
    ),
    declare(POOL_JOINING_HOST_MUST_HAVE_SAME_PRODUCT_VERSION, &[]),
    declare(POOL_JOINING_HOST_TLS_VERIFICATION_MISMATCH, &[]),
    declare(
        POOL_JOINING_SM_FEATURES_INCOMPATIBLE,
        &["pool_sm", "candidate_sm"],
    ),
    declare(RBAC_PERMISSION_DENIED, &["permission", "message"]),
    declare(SESSION_AUTHENTICATION_FAILED, &["uname", "msg"]),
    declare(SESSION_AUTHORIZATION_FAILED, &["username", "msg"]),
    declare(SESSION_INVALID, &["handle"]),
    declare(SESSION_NOT_REGISTERED, &["handle"]),
    declare(SLAVE_REQUIRES_MANAGEMENT_INTERFACE, &[]),
    declare(SR_BACKEND_FAILURE, &["status", "stdout", "stderr"]),
    declare(SR_FULL, &["requested", "maximum"]),
    declare(SR_HAS_NO_PBDS, &["sr"]),
    declare(SR_HAS_PBD, &["sr"]),
    declare(SR_NOT_ATTACHED, &["sr"]),
    declare(SR_OPERATION_NOT_SUPPORTED, &["sr"]),
    declare(SR_UNKNOWN_DRIVER, &["driver"]),
    declare(TASK_CANCELLED, &["task"]),
    declare(TOO_MANY_PENDING_TASKS, &[]),
    declare(TRANSPORT_PIF_NOT_CONFIGURED, &["PIF"]),
    declare(UNKNOWN_BOOTLOADER, &["vm", "bootloader"]),
    declare(USER_IS_NOT_LOCAL_SUPERUSER, &["msg"]),
    declare(UUID_INVALID, &["type", "uuid"]),
    declare(VALUE_NOT_SUPPORTED, &["field", "value", "reason"]),
    declare(VBD_CDS_MUST_BE_READONLY, &[]),
    declare(VBD_IS_EMPTY, &["vbd"]),
    declare(VBD_NOT_EMPTY, &["vbd"]),
    declare(VBD_NOT_REMOVABLE_MEDIA, &["vbd"]),
    declare(VBD_NOT_UNPLUGGABLE, &["vbd"]),
    declare(VDI_INCOMPATIBLE_TYPE, &["vdi", "type"]),
    declare(VDI_IN_USE, &["vdi", "operation"]),
    declare(VDI_IS_A_PHYSICAL_DEVICE, &["vdi"]),
    declare(VDI_MISSING, &["sr", "vdi"]),
    declare(VDI_NOT_SPARSE, &["vdi"]),
    declare(VDI_NO_CBT_METADATA, &["vdi"]),
    declare(VDI_ON_BOOT_MODE_INCOMPATIBLE_WITH_OPERATION, &[]),
    declare(VDI_READONLY, &["vdi"]),
    declare(VDI_TOO_SMALL, &["vdi", "minimum size"]),
    declare(VIF_IN_USE, &["network", "VIF"]),
    declare(VLAN_TAG_INVALID, &["VLAN"]),
    declare(VM_BAD_POWER_STATE, &["vm", "expected", "actual"]),
    declare(VM_BIOS_STRINGS_ALREADY_SET, &[]),
    declare(VM_CALL_PLUGIN_RATE_LIMIT, &["VM", "interval", "wait"]),
    declare(VM_CANNOT_DELETE_DEFAULT_TEMPLATE, &["vm"]),
    declare(VM_CHECKPOINT_RESUME_FAILED, &["vm"]),
    declare(VM_CHECKPOINT_SUSPEND_FAILED, &["vm"]),
    declare(VM_FAILED_SHUTDOWN_ACKNOWLEDGMENT, &["vm"]),
    declare(VM_HALTED, &["vm"]),
    declare(VM_HAS_PCI_ATTACHED, &["vm"]),
    declare(VM_HOST_INCOMPATIBLE_VERSION, &["host", "vm"]),
    declare(
        VM_HOST_INCOMPATIBLE_VIRTUAL_HARDWARE_PLATFORM_VERSION,
        &["host", "host_versions", "vm", "vm_version"],
    ),
    declare(VM_HVM_REQUIRED, &["vm"]),
    declare(VM_INCOMPATIBLE_WITH_THIS_HOST, &["vm", "host", "reason"]),
    declare(VM_IS_IMMOBILE, &["VM"]),
    declare(VM_IS_PART_OF_AN_APPLIANCE, &["vm", "appliance"]),
    declare(VM_IS_SNAPSHOT, &["vm", "operation"]),
    declare(VM_IS_TEMPLATE, &["vm"]),
    declare(VM_LACKS_FEATURE, &["vm"]),
    declare(VM_MEMORY_SIZE_TOO_LOW, &["vm"]),
    declare(VM_MIGRATE_FAILED, &["vm", "source", "destination", "msg"]),
    declare(VM_MISSING_PV_DRIVERS, &["vm"]),
    declare(VM_NOT_RESIDENT_HERE, &["vm", "host"]),
    declare(VM_NO_SUSPEND_SR, &["vm"]),
    declare(VM_REQUIRES_GPU, &["vm", "GPU_group"]),
    declare(VM_REQUIRES_IOMMU, &["host"]),
    declare(VM_REQUIRES_NETWORK, &["vm", "network"]),
    declare(VM_REQUIRES_SR, &["vm", "sr"]),
    declare(VM_REQUIRES_VGPU, &["vm", "GPU_group", "vGPU_type"]),
    declare(VM_REVERT_FAILED, &["vm", "snapshot"]),
    declare(VM_SHUTDOWN_TIMEOUT, &["vm", "timeout"]),
    declare(VM_SNAPSHOT_WITH_QUIESCE_FAILED, &["vm"]),
    declare(VM_SNAPSHOT_WITH_QUIESCE_NOT_SUPPORTED, &["vm", "error"]),
    declare(VM_SNAPSHOT_WITH_QUIESCE_PLUGIN_DEOS_NOT_RESPOND, &["vm"]),
    declare(VM_SNAPSHOT_WITH_QUIESCE_TIMEOUT, &["vm"]),
    declare(VM_TOO_MANY_VCPUS, &["vm"]),
    declare(
        XAPI_HOOK_FAILED,
        &["hook_name", "reason", "stdout", "exit_code"],
    ),
    declare(XENAPI_MISSING_PLUGIN, &["name"]),
    declare(XENAPI_PLUGIN_FAILURE, &["status", "stdout", "stderr"]),
];

// The codes, so callers name them without typos: `ApiError::new(errors::VM_IS_TEMPLATE, [vm])`.
pub const BOOTLOADER_FAILED: &str = "BOOTLOADER_FAILED";
pub const CANNOT_CONTACT_HOST: &str = "CANNOT_CONTACT_HOST";
pub const CANNOT_PLUG_BOND_SLAVE: &str = "CANNOT_PLUG_BOND_SLAVE";
pub const CANNOT_RESET_CONTROL_DOMAIN: &str = "CANNOT_RESET_CONTROL_DOMAIN";
pub const CLUSTERING_ENABLED: &str = "CLUSTERING_ENABLED";
/// An oxapi addition: the change a call would commit is larger than `raft.max_entry_bytes`.
pub const DATABASE_ENTRY_TOO_LARGE: &str = "DATABASE_ENTRY_TOO_LARGE";
/// An oxapi addition: a host of the pool is short of room for the pool database (below its
/// disk reserve or over its quota), so the pool refuses writes until it has room again.
pub const DATABASE_SPACE_LOW: &str = "DATABASE_SPACE_LOW";
pub const DEFAULT_SR_NOT_FOUND: &str = "DEFAULT_SR_NOT_FOUND";
pub const DEVICE_ALREADY_ATTACHED: &str = "DEVICE_ALREADY_ATTACHED";
pub const DEVICE_ALREADY_DETACHED: &str = "DEVICE_ALREADY_DETACHED";
pub const DEVICE_DETACH_REJECTED: &str = "DEVICE_DETACH_REJECTED";
pub const DOMAIN_EXISTS: &str = "DOMAIN_EXISTS";
pub const EVENTS_LOST: &str = "EVENTS_LOST";
pub const EVENT_FROM_TOKEN_PARSE_FAILURE: &str = "EVENT_FROM_TOKEN_PARSE_FAILURE";
pub const EVENT_SUBSCRIPTION_PARSE_FAILURE: &str = "EVENT_SUBSCRIPTION_PARSE_FAILURE";
pub const FIELD_TYPE_ERROR: &str = "FIELD_TYPE_ERROR";
pub const HANDLE_INVALID: &str = "HANDLE_INVALID";
pub const HA_ABORT_NEW_MASTER: &str = "HA_ABORT_NEW_MASTER";
pub const HA_CONSTRAINT_VIOLATION_NETWORK_NOT_SHARED: &str =
    "HA_CONSTRAINT_VIOLATION_NETWORK_NOT_SHARED";
pub const HA_CONSTRAINT_VIOLATION_SR_NOT_SHARED: &str = "HA_CONSTRAINT_VIOLATION_SR_NOT_SHARED";
pub const HA_HEARTBEAT_DAEMON_STARTUP_FAILED: &str = "HA_HEARTBEAT_DAEMON_STARTUP_FAILED";
pub const HA_HOST_CANNOT_ACCESS_STATEFILE: &str = "HA_HOST_CANNOT_ACCESS_STATEFILE";
pub const HA_HOST_IS_ARMED: &str = "HA_HOST_IS_ARMED";
pub const HA_IS_ENABLED: &str = "HA_IS_ENABLED";
pub const HA_LOST_STATEFILE: &str = "HA_LOST_STATEFILE";
pub const HA_NOT_ENABLED: &str = "HA_NOT_ENABLED";
pub const HA_NOT_INSTALLED: &str = "HA_NOT_INSTALLED";
pub const HA_NO_PLAN: &str = "HA_NO_PLAN";
pub const HA_OPERATION_WOULD_BREAK_FAILOVER_PLAN: &str = "HA_OPERATION_WOULD_BREAK_FAILOVER_PLAN";
pub const HA_POOL_IS_ENABLED_BUT_HOST_IS_DISABLED: &str = "HA_POOL_IS_ENABLED_BUT_HOST_IS_DISABLED";
pub const HA_SHOULD_BE_FENCED: &str = "HA_SHOULD_BE_FENCED";
pub const HA_TOO_FEW_HOSTS: &str = "HA_TOO_FEW_HOSTS";
pub const HOSTS_NOT_COMPATIBLE: &str = "HOSTS_NOT_COMPATIBLE";
pub const HOSTS_NOT_HOMOGENEOUS: &str = "HOSTS_NOT_HOMOGENEOUS";
pub const HOST_CANNOT_ATTACH_NETWORK: &str = "HOST_CANNOT_ATTACH_NETWORK";
pub const HOST_CANNOT_DESTROY_SELF: &str = "HOST_CANNOT_DESTROY_SELF";
pub const HOST_DISABLED: &str = "HOST_DISABLED";
pub const HOST_EVACUATE_IN_PROGRESS: &str = "HOST_EVACUATE_IN_PROGRESS";
pub const HOST_HAS_NO_MANAGEMENT_IP: &str = "HOST_HAS_NO_MANAGEMENT_IP";
pub const HOST_HAS_RESIDENT_VMS: &str = "HOST_HAS_RESIDENT_VMS";
pub const HOST_IN_EMERGENCY_MODE: &str = "HOST_IN_EMERGENCY_MODE";
pub const HOST_IS_LIVE: &str = "HOST_IS_LIVE";
pub const HOST_IS_SLAVE: &str = "HOST_IS_SLAVE";
pub const HOST_ITS_OWN_SLAVE: &str = "HOST_ITS_OWN_SLAVE";
pub const HOST_MASTER_CANNOT_TALK_BACK: &str = "HOST_MASTER_CANNOT_TALK_BACK";
pub const HOST_NAME_INVALID: &str = "HOST_NAME_INVALID";
pub const HOST_NOT_DISABLED: &str = "HOST_NOT_DISABLED";
pub const HOST_NOT_ENOUGH_FREE_MEMORY: &str = "HOST_NOT_ENOUGH_FREE_MEMORY";
pub const HOST_NOT_ENOUGH_PCPUS: &str = "HOST_NOT_ENOUGH_PCPUS";
pub const HOST_NOT_LIVE: &str = "HOST_NOT_LIVE";
pub const HOST_OFFLINE: &str = "HOST_OFFLINE";
pub const HOST_STILL_BOOTING: &str = "HOST_STILL_BOOTING";
pub const HOST_UNKNOWN_TO_MASTER: &str = "HOST_UNKNOWN_TO_MASTER";
pub const HOST_XAPI_VERSION_HIGHER_THAN_COORDINATOR: &str =
    "HOST_XAPI_VERSION_HIGHER_THAN_COORDINATOR";
pub const INTERNAL_ERROR: &str = "INTERNAL_ERROR";
pub const INVALID_VALUE: &str = "INVALID_VALUE";
pub const JOINING_HOST_CANNOT_BE_MASTER_OF_OTHER_HOSTS: &str =
    "JOINING_HOST_CANNOT_BE_MASTER_OF_OTHER_HOSTS";
pub const JOINING_HOST_CANNOT_CONTAIN_SHARED_SRS: &str = "JOINING_HOST_CANNOT_CONTAIN_SHARED_SRS";
pub const JOINING_HOST_CANNOT_HAVE_RUNNING_VMS: &str = "JOINING_HOST_CANNOT_HAVE_RUNNING_VMS";
pub const JOINING_HOST_CANNOT_HAVE_VMS_WITH_CURRENT_OPERATIONS: &str =
    "JOINING_HOST_CANNOT_HAVE_VMS_WITH_CURRENT_OPERATIONS";
pub const JOINING_HOST_CONNECTION_FAILED: &str = "JOINING_HOST_CONNECTION_FAILED";
pub const JOINING_HOST_SERVICE_FAILED: &str = "JOINING_HOST_SERVICE_FAILED";
pub const LICENCE_RESTRICTION: &str = "LICENCE_RESTRICTION";
pub const LICENSE_DOES_NOT_SUPPORT_POOLING: &str = "LICENSE_DOES_NOT_SUPPORT_POOLING";
pub const LICENSE_HOST_POOL_MISMATCH: &str = "LICENSE_HOST_POOL_MISMATCH";
pub const LICENSE_PROCESSING_ERROR: &str = "LICENSE_PROCESSING_ERROR";
pub const MAP_DUPLICATE_KEY: &str = "MAP_DUPLICATE_KEY";
pub const MEMORY_CONSTRAINT_VIOLATION: &str = "MEMORY_CONSTRAINT_VIOLATION";
pub const MESSAGE_DEPRECATED: &str = "MESSAGE_DEPRECATED";
pub const MESSAGE_METHOD_UNKNOWN: &str = "MESSAGE_METHOD_UNKNOWN";
pub const MESSAGE_PARAMETER_COUNT_MISMATCH: &str = "MESSAGE_PARAMETER_COUNT_MISMATCH";
pub const MESSAGE_REMOVED: &str = "MESSAGE_REMOVED";
pub const NETWORK_CONTAINS_PIF: &str = "NETWORK_CONTAINS_PIF";
pub const NETWORK_CONTAINS_VIF: &str = "NETWORK_CONTAINS_VIF";
pub const NETWORK_INCOMPATIBLE_PURPOSES: &str = "NETWORK_INCOMPATIBLE_PURPOSES";
pub const NETWORK_SRIOV_INSUFFICIENT_CAPACITY: &str = "NETWORK_SRIOV_INSUFFICIENT_CAPACITY";
pub const NOT_IMPLEMENTED: &str = "NOT_IMPLEMENTED";
pub const NOT_SUPPORTED_DURING_UPGRADE: &str = "NOT_SUPPORTED_DURING_UPGRADE";
pub const NO_HOSTS_AVAILABLE: &str = "NO_HOSTS_AVAILABLE";
pub const OBJECT_NOLONGER_EXISTS: &str = "OBJECT_NOLONGER_EXISTS";
pub const ONLY_PROVISION_TEMPLATE: &str = "ONLY_PROVISION_TEMPLATE";
pub const ONLY_REVERT_SNAPSHOT: &str = "ONLY_REVERT_SNAPSHOT";
pub const OPERATION_BLOCKED: &str = "OPERATION_BLOCKED";
pub const OPERATION_NOT_ALLOWED: &str = "OPERATION_NOT_ALLOWED";
pub const OTHER_OPERATION_IN_PROGRESS: &str = "OTHER_OPERATION_IN_PROGRESS";
pub const PERMISSION_DENIED: &str = "PERMISSION_DENIED";
pub const PIF_DOES_NOT_ALLOW_UNPLUG: &str = "PIF_DOES_NOT_ALLOW_UNPLUG";
pub const PIF_HAS_FCOE_SR_IN_USE: &str = "PIF_HAS_FCOE_SR_IN_USE";
pub const PIF_HAS_NO_NETWORK_CONFIGURATION: &str = "PIF_HAS_NO_NETWORK_CONFIGURATION";
pub const PIF_HAS_NO_V6_NETWORK_CONFIGURATION: &str = "PIF_HAS_NO_V6_NETWORK_CONFIGURATION";
pub const PIF_INCOMPATIBLE_PRIMARY_ADDRESS_TYPE: &str = "PIF_INCOMPATIBLE_PRIMARY_ADDRESS_TYPE";
pub const PIF_IS_MANAGEMENT_INTERFACE: &str = "PIF_IS_MANAGEMENT_INTERFACE";
pub const PIF_IS_PHYSICAL: &str = "PIF_IS_PHYSICAL";
pub const PIF_NOT_PRESENT: &str = "PIF_NOT_PRESENT";
pub const PIF_TUNNEL_STILL_EXISTS: &str = "PIF_TUNNEL_STILL_EXISTS";
pub const POOL_JOINING_EXTERNAL_AUTH_MISMATCH: &str = "POOL_JOINING_EXTERNAL_AUTH_MISMATCH";
pub const POOL_JOINING_HOST_HAS_BONDS: &str = "POOL_JOINING_HOST_HAS_BONDS";
pub const POOL_JOINING_HOST_HAS_NON_MANAGEMENT_VLANS: &str =
    "POOL_JOINING_HOST_HAS_NON_MANAGEMENT_VLANS";
pub const POOL_JOINING_HOST_HAS_TUNNELS: &str = "POOL_JOINING_HOST_HAS_TUNNELS";
pub const POOL_JOINING_HOST_MANAGEMENT_VLAN_DOES_NOT_MATCH: &str =
    "POOL_JOINING_HOST_MANAGEMENT_VLAN_DOES_NOT_MATCH";
pub const POOL_JOINING_HOST_MUST_HAVE_PHYSICAL_MANAGEMENT_NIC: &str =
    "POOL_JOINING_HOST_MUST_HAVE_PHYSICAL_MANAGEMENT_NIC";
pub const POOL_JOINING_HOST_MUST_HAVE_SAME_API_VERSION: &str =
    "POOL_JOINING_HOST_MUST_HAVE_SAME_API_VERSION";
pub const POOL_JOINING_HOST_MUST_HAVE_SAME_DB_SCHEMA: &str =
    "POOL_JOINING_HOST_MUST_HAVE_SAME_DB_SCHEMA";
pub const POOL_JOINING_HOST_MUST_HAVE_SAME_PRODUCT_VERSION: &str =
    "POOL_JOINING_HOST_MUST_HAVE_SAME_PRODUCT_VERSION";
pub const POOL_JOINING_HOST_TLS_VERIFICATION_MISMATCH: &str =
    "POOL_JOINING_HOST_TLS_VERIFICATION_MISMATCH";
pub const POOL_JOINING_SM_FEATURES_INCOMPATIBLE: &str = "POOL_JOINING_SM_FEATURES_INCOMPATIBLE";
pub const RBAC_PERMISSION_DENIED: &str = "RBAC_PERMISSION_DENIED";
pub const SESSION_AUTHENTICATION_FAILED: &str = "SESSION_AUTHENTICATION_FAILED";
pub const SESSION_AUTHORIZATION_FAILED: &str = "SESSION_AUTHORIZATION_FAILED";
pub const SESSION_INVALID: &str = "SESSION_INVALID";
pub const SESSION_NOT_REGISTERED: &str = "SESSION_NOT_REGISTERED";
pub const SLAVE_REQUIRES_MANAGEMENT_INTERFACE: &str = "SLAVE_REQUIRES_MANAGEMENT_INTERFACE";
pub const SR_BACKEND_FAILURE: &str = "SR_BACKEND_FAILURE";
pub const SR_FULL: &str = "SR_FULL";
pub const SR_HAS_NO_PBDS: &str = "SR_HAS_NO_PBDS";
pub const SR_HAS_PBD: &str = "SR_HAS_PBD";
pub const SR_NOT_ATTACHED: &str = "SR_NOT_ATTACHED";
pub const SR_OPERATION_NOT_SUPPORTED: &str = "SR_OPERATION_NOT_SUPPORTED";
pub const SR_UNKNOWN_DRIVER: &str = "SR_UNKNOWN_DRIVER";
pub const TASK_CANCELLED: &str = "TASK_CANCELLED";
pub const TOO_MANY_PENDING_TASKS: &str = "TOO_MANY_PENDING_TASKS";
pub const TRANSPORT_PIF_NOT_CONFIGURED: &str = "TRANSPORT_PIF_NOT_CONFIGURED";
pub const UNKNOWN_BOOTLOADER: &str = "UNKNOWN_BOOTLOADER";
pub const USER_IS_NOT_LOCAL_SUPERUSER: &str = "USER_IS_NOT_LOCAL_SUPERUSER";
pub const UUID_INVALID: &str = "UUID_INVALID";
pub const VALUE_NOT_SUPPORTED: &str = "VALUE_NOT_SUPPORTED";
pub const VBD_IS_EMPTY: &str = "VBD_IS_EMPTY";
pub const VBD_NOT_EMPTY: &str = "VBD_NOT_EMPTY";
pub const VBD_CDS_MUST_BE_READONLY: &str = "VBD_CDS_MUST_BE_READONLY";
pub const VBD_NOT_REMOVABLE_MEDIA: &str = "VBD_NOT_REMOVABLE_MEDIA";
pub const VBD_NOT_UNPLUGGABLE: &str = "VBD_NOT_UNPLUGGABLE";
pub const VDI_INCOMPATIBLE_TYPE: &str = "VDI_INCOMPATIBLE_TYPE";
pub const VDI_IN_USE: &str = "VDI_IN_USE";
pub const VDI_IS_A_PHYSICAL_DEVICE: &str = "VDI_IS_A_PHYSICAL_DEVICE";
pub const VDI_MISSING: &str = "VDI_MISSING";
pub const VDI_NOT_SPARSE: &str = "VDI_NOT_SPARSE";
pub const VDI_NO_CBT_METADATA: &str = "VDI_NO_CBT_METADATA";
pub const VDI_ON_BOOT_MODE_INCOMPATIBLE_WITH_OPERATION: &str =
    "VDI_ON_BOOT_MODE_INCOMPATIBLE_WITH_OPERATION";
pub const VDI_READONLY: &str = "VDI_READONLY";
pub const VDI_TOO_SMALL: &str = "VDI_TOO_SMALL";
pub const VIF_IN_USE: &str = "VIF_IN_USE";
pub const VLAN_TAG_INVALID: &str = "VLAN_TAG_INVALID";
pub const VM_BAD_POWER_STATE: &str = "VM_BAD_POWER_STATE";
pub const VM_BIOS_STRINGS_ALREADY_SET: &str = "VM_BIOS_STRINGS_ALREADY_SET";
pub const VM_CALL_PLUGIN_RATE_LIMIT: &str = "VM_CALL_PLUGIN_RATE_LIMIT";
pub const VM_CANNOT_DELETE_DEFAULT_TEMPLATE: &str = "VM_CANNOT_DELETE_DEFAULT_TEMPLATE";
pub const VM_CHECKPOINT_RESUME_FAILED: &str = "VM_CHECKPOINT_RESUME_FAILED";
pub const VM_CHECKPOINT_SUSPEND_FAILED: &str = "VM_CHECKPOINT_SUSPEND_FAILED";
pub const VM_FAILED_SHUTDOWN_ACKNOWLEDGMENT: &str = "VM_FAILED_SHUTDOWN_ACKNOWLEDGMENT";
pub const VM_HALTED: &str = "VM_HALTED";
pub const VM_HAS_PCI_ATTACHED: &str = "VM_HAS_PCI_ATTACHED";
pub const VM_HOST_INCOMPATIBLE_VERSION: &str = "VM_HOST_INCOMPATIBLE_VERSION";
pub const VM_HOST_INCOMPATIBLE_VIRTUAL_HARDWARE_PLATFORM_VERSION: &str =
    "VM_HOST_INCOMPATIBLE_VIRTUAL_HARDWARE_PLATFORM_VERSION";
pub const VM_HVM_REQUIRED: &str = "VM_HVM_REQUIRED";
pub const VM_INCOMPATIBLE_WITH_THIS_HOST: &str = "VM_INCOMPATIBLE_WITH_THIS_HOST";
pub const VM_IS_IMMOBILE: &str = "VM_IS_IMMOBILE";
pub const VM_IS_PART_OF_AN_APPLIANCE: &str = "VM_IS_PART_OF_AN_APPLIANCE";
pub const VM_IS_SNAPSHOT: &str = "VM_IS_SNAPSHOT";
pub const VM_IS_TEMPLATE: &str = "VM_IS_TEMPLATE";
pub const VM_LACKS_FEATURE: &str = "VM_LACKS_FEATURE";
pub const VM_MEMORY_SIZE_TOO_LOW: &str = "VM_MEMORY_SIZE_TOO_LOW";
pub const VM_MIGRATE_FAILED: &str = "VM_MIGRATE_FAILED";
pub const VM_MISSING_PV_DRIVERS: &str = "VM_MISSING_PV_DRIVERS";
pub const VM_NOT_RESIDENT_HERE: &str = "VM_NOT_RESIDENT_HERE";
pub const VM_NO_SUSPEND_SR: &str = "VM_NO_SUSPEND_SR";
pub const VM_REQUIRES_GPU: &str = "VM_REQUIRES_GPU";
pub const VM_REQUIRES_IOMMU: &str = "VM_REQUIRES_IOMMU";
pub const VM_REQUIRES_NETWORK: &str = "VM_REQUIRES_NETWORK";
pub const VM_REQUIRES_SR: &str = "VM_REQUIRES_SR";
pub const VM_REQUIRES_VGPU: &str = "VM_REQUIRES_VGPU";
pub const VM_REVERT_FAILED: &str = "VM_REVERT_FAILED";
pub const VM_SHUTDOWN_TIMEOUT: &str = "VM_SHUTDOWN_TIMEOUT";
pub const VM_SNAPSHOT_WITH_QUIESCE_FAILED: &str = "VM_SNAPSHOT_WITH_QUIESCE_FAILED";
pub const VM_SNAPSHOT_WITH_QUIESCE_NOT_SUPPORTED: &str = "VM_SNAPSHOT_WITH_QUIESCE_NOT_SUPPORTED";
pub const VM_SNAPSHOT_WITH_QUIESCE_PLUGIN_DEOS_NOT_RESPOND: &str =
    "VM_SNAPSHOT_WITH_QUIESCE_PLUGIN_DEOS_NOT_RESPOND";
pub const VM_SNAPSHOT_WITH_QUIESCE_TIMEOUT: &str = "VM_SNAPSHOT_WITH_QUIESCE_TIMEOUT";
pub const VM_TOO_MANY_VCPUS: &str = "VM_TOO_MANY_VCPUS";
pub const XAPI_HOOK_FAILED: &str = "XAPI_HOOK_FAILED";
pub const XENAPI_MISSING_PLUGIN: &str = "XENAPI_MISSING_PLUGIN";
pub const XENAPI_PLUGIN_FAILURE: &str = "XENAPI_PLUGIN_FAILURE";

#[cfg(test)]
mod tests {
    use super::*;

    /// The table is sorted by code and declares each code once.
    #[test]
    fn table_is_sorted_by_code_without_duplicates() {
        for pair in ERRORS.windows(2) {
            assert!(
                pair[0].code < pair[1].code,
                "{} then {}",
                pair[0].code,
                pair[1].code
            );
        }
    }

    /// A declared code is found with its parameters in wire order; an unknown one is not.
    #[test]
    fn decl_finds_codes_with_params_in_wire_order() {
        let found = decl(VM_BAD_POWER_STATE).expect("declared");
        assert_eq!(found.params, ["vm", "expected", "actual"]);
        assert!(decl("NO_SUCH_CODE").is_none());
    }

    /// The description on the wire is the code followed by the parameters.
    #[test]
    fn description_puts_the_code_first() {
        let error = ApiError::new(HANDLE_INVALID, ["VM", "OpaqueRef:x"]);
        assert_eq!(error.description(), ["HANDLE_INVALID", "VM", "OpaqueRef:x"]);
    }
}
