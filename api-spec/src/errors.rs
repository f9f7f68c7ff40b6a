//! The XenAPI error codes, each declared once with its parameter names and a constructor
//! (`errors::vm_is_template(vm)`), and `ApiError`, the failure every call can answer with
//! (`ErrorDescription = [code, params…]`).

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
    /// An error with any code, as decoded off the wire. A declared error is built by its
    /// constructor in this module instead, which checks its parameters at compile time.
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

/// The declaration of `code`, if the API declares it; a numbered storage backend failure
/// (`SR_BACKEND_FAILURE_79`) has the parameters of `SR_BACKEND_FAILURE`.
pub fn decl(code: &str) -> Option<&'static ErrorDecl> {
    let numbered = code
        .strip_prefix(SR_BACKEND_FAILURE)
        .and_then(|rest| rest.strip_prefix('_'))
        .is_some_and(|number| !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit()));
    let code = if numbered { SR_BACKEND_FAILURE } else { code };
    ERRORS.iter().find(|e| e.code == code)
}

/// The storage backend failures oxapi sends by number, as xapi's storage backends (SM) number
/// them: each goes on the wire as `SR_BACKEND_FAILURE_<number>` with the parameters of
/// `SR_BACKEND_FAILURE` (status, stdout, stderr).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendFailure {
    /// A scan of the SR failed.
    SrScan,
    /// The SR is not where its PBD says (a missing directory, one that cannot be made).
    SrUnavailable,
    /// A VDI could not be made reachable.
    VdiUnavailable,
    /// A VDI could not be removed.
    VdiRemove,
    /// A VDI could not be made.
    VdiCreate,
    /// A size is not one the VDI can take (a shrink, say).
    VdiSize,
    /// A clone of a VDI failed.
    VdiClone,
    /// A snapshot of a VDI failed.
    VdiSnapshot,
    /// A resize of a VDI failed.
    VdiResize,
}

impl BackendFailure {
    /// SM's number for the failure.
    pub fn number(self) -> u32 {
        match self {
            BackendFailure::SrScan => 40,
            BackendFailure::SrUnavailable => 47,
            BackendFailure::VdiUnavailable => 46,
            BackendFailure::VdiRemove => 64,
            BackendFailure::VdiCreate => 78,
            BackendFailure::VdiSize => 79,
            BackendFailure::VdiClone => 81,
            BackendFailure::VdiSnapshot => 82,
            BackendFailure::VdiResize => 110,
        }
    }

    /// What failed, in a few words: the start of the error's stdout.
    pub fn summary(self) -> &'static str {
        match self {
            BackendFailure::SrScan => "SR scan failed",
            BackendFailure::SrUnavailable => "The SR is not available",
            BackendFailure::VdiUnavailable => "VDI not available",
            BackendFailure::VdiRemove => "VDI removal failed",
            BackendFailure::VdiCreate => "VDI creation failed",
            BackendFailure::VdiSize => "VDI size invalid",
            BackendFailure::VdiClone => "VDI clone failed",
            BackendFailure::VdiSnapshot => "VDI snapshot failed",
            BackendFailure::VdiResize => "VDI resize failed",
        }
    }
}

/// `SR_BACKEND_FAILURE_<number>` for `failure`, as xapi relays an SM failure: an empty status,
/// the summary with `detail` as its `opterr` for stdout, and what the backend's tool printed
/// on stderr.
pub fn sr_backend_failure_numbered(
    failure: BackendFailure,
    detail: impl std::fmt::Display,
    stderr: impl ToString,
) -> ApiError {
    ApiError {
        code: format!("{SR_BACKEND_FAILURE}_{}", failure.number()),
        params: vec![
            String::new(),
            format!("{} [opterr={detail}]", failure.summary()),
            stderr.to_string(),
        ],
    }
}

/// The wire name of a parameter: its Rust name, unless the declaration spells it (`vm = "VM"`).
macro_rules! wire_name {
    ($param:ident) => {
        stringify!($param)
    };
    ($param:ident = $wire:literal) => {
        $wire
    };
}

/// Declares each error once: `CODE constructor(param, other = "wire name", …);` becomes the
/// const `CODE`, its row in `ERRORS` and `constructor`, which takes one argument per parameter
/// in wire order.
macro_rules! declare_errors {
    ($(
        $(#[$doc:meta])*
        $code:ident $constructor:ident($($param:ident $(= $wire:literal)?),* $(,)?);
    )*) => {
        /// Every declared error code, sorted by code. Parameters are those xapi sends, in wire
        /// order; where xapi sends more than its datamodel declares
        /// (`SESSION_AUTHENTICATION_FAILED`, `OTHER_OPERATION_IN_PROGRESS`), the table lists what
        /// is sent.
        pub static ERRORS: &[ErrorDecl] = &[$(
            ErrorDecl {
                code: $code,
                params: &[$(wire_name!($param $(= $wire)?)),*],
            },
        )*];

        $(
            $(#[$doc])*
            pub const $code: &str = stringify!($code);

            #[doc = concat!("`", stringify!($code), "`, parameters in wire order.")]
            pub fn $constructor($($param: impl ToString),*) -> ApiError {
                ApiError {
                    code: $code.to_owned(),
                    params: vec![$($param.to_string()),*],
                }
            }
        )*

        /// Each code with the name of its constructor.
        #[cfg(test)]
        const CONSTRUCTORS: &[(&str, &str)] = &[$((stringify!($code), stringify!($constructor))),*];
    };
}

declare_errors! {
    BOOTLOADER_FAILED bootloader_failed(vm, msg);
    CANNOT_CONTACT_HOST cannot_contact_host(host);
    /// `errors` lists, separated by `|`, each VM's error as its code and parameters separated by
    /// `,`.
    CANNOT_EVACUATE_HOST cannot_evacuate_host(errors);
    CANNOT_PLUG_BOND_SLAVE cannot_plug_bond_slave(pif = "PIF");
    CANNOT_RESET_CONTROL_DOMAIN cannot_reset_control_domain(vm);
    CLUSTERING_ENABLED clustering_enabled(cluster_host);
    /// An oxapi addition: the change a call would commit is larger than `raft.max_entry_bytes`.
    DATABASE_ENTRY_TOO_LARGE database_entry_too_large(size, limit);
    /// An oxapi addition: a host of the pool is short of room for the pool database (below its
    /// disk reserve or over its quota), so the pool refuses writes until it has room again.
    DATABASE_SPACE_LOW database_space_low(host, reason);
    DEFAULT_SR_NOT_FOUND default_sr_not_found(sr);
    DEVICE_ALREADY_ATTACHED device_already_attached(device);
    DEVICE_ALREADY_DETACHED device_already_detached(device);
    /// Another VBD (or VIF) of the VM has the device.
    DEVICE_ALREADY_EXISTS device_already_exists(device);
    DEVICE_DETACH_REJECTED device_detach_rejected(class = "type", object = "ref", msg);
    DOMAIN_EXISTS domain_exists(vm, domid);
    EVENTS_LOST events_lost();
    EVENT_FROM_TOKEN_PARSE_FAILURE event_from_token_parse_failure(token);
    EVENT_SUBSCRIPTION_PARSE_FAILURE event_subscription_parse_failure(subscription);
    FIELD_TYPE_ERROR field_type_error(field);
    HANDLE_INVALID handle_invalid(class, handle);
    HA_ABORT_NEW_MASTER ha_abort_new_master(reason);
    HA_CONSTRAINT_VIOLATION_NETWORK_NOT_SHARED ha_constraint_violation_network_not_shared(network);
    HA_CONSTRAINT_VIOLATION_SR_NOT_SHARED ha_constraint_violation_sr_not_shared(sr = "SR");
    HA_HEARTBEAT_DAEMON_STARTUP_FAILED ha_heartbeat_daemon_startup_failed();
    HA_HOST_CANNOT_ACCESS_STATEFILE ha_host_cannot_access_statefile();
    HA_HOST_IS_ARMED ha_host_is_armed(host);
    HA_IS_ENABLED ha_is_enabled();
    HA_LOST_STATEFILE ha_lost_statefile();
    HA_NOT_ENABLED ha_not_enabled();
    HA_NOT_INSTALLED ha_not_installed(host);
    HA_NO_PLAN ha_no_plan();
    HA_OPERATION_WOULD_BREAK_FAILOVER_PLAN ha_operation_would_break_failover_plan();
    HA_POOL_IS_ENABLED_BUT_HOST_IS_DISABLED ha_pool_is_enabled_but_host_is_disabled();
    HA_SHOULD_BE_FENCED ha_should_be_fenced(host);
    HA_TOO_FEW_HOSTS ha_too_few_hosts();
    HOSTS_NOT_COMPATIBLE hosts_not_compatible();
    HOSTS_NOT_HOMOGENEOUS hosts_not_homogeneous(reason);
    HOST_CANNOT_ATTACH_NETWORK host_cannot_attach_network(host, network);
    HOST_CANNOT_DESTROY_SELF host_cannot_destroy_self(host);
    HOST_DISABLED host_disabled(host);
    HOST_EVACUATE_IN_PROGRESS host_evacuate_in_progress(host);
    HOST_HAS_NO_MANAGEMENT_IP host_has_no_management_ip();
    HOST_HAS_RESIDENT_VMS host_has_resident_vms(host);
    HOST_IN_EMERGENCY_MODE host_in_emergency_mode();
    HOST_IS_LIVE host_is_live(host);
    HOST_IS_SLAVE host_is_slave(master_ip_address = "Master IP address");
    HOST_ITS_OWN_SLAVE host_its_own_slave();
    HOST_MASTER_CANNOT_TALK_BACK host_master_cannot_talk_back(ip);
    HOST_NAME_INVALID host_name_invalid(reason);
    HOST_NOT_DISABLED host_not_disabled();
    /// Amounts in bytes.
    HOST_NOT_ENOUGH_FREE_MEMORY host_not_enough_free_memory(needed, available);
    HOST_NOT_ENOUGH_PCPUS host_not_enough_pcpus(vcpus, pcpus);
    HOST_NOT_LIVE host_not_live();
    HOST_OFFLINE host_offline(host);
    HOST_STILL_BOOTING host_still_booting();
    HOST_UNKNOWN_TO_MASTER host_unknown_to_master(host);
    HOST_XAPI_VERSION_HIGHER_THAN_COORDINATOR host_xapi_version_higher_than_coordinator(version);
    INTERNAL_ERROR internal_error(message);
    /// A device name or number a VBD or VIF cannot have.
    INVALID_DEVICE invalid_device(device);
    INVALID_VALUE invalid_value(field, value);
    JOINING_HOST_CANNOT_BE_MASTER_OF_OTHER_HOSTS joining_host_cannot_be_master_of_other_hosts();
    JOINING_HOST_CANNOT_CONTAIN_SHARED_SRS joining_host_cannot_contain_shared_srs();
    JOINING_HOST_CANNOT_HAVE_RUNNING_VMS joining_host_cannot_have_running_vms();
    JOINING_HOST_CANNOT_HAVE_VMS_WITH_CURRENT_OPERATIONS
        joining_host_cannot_have_vms_with_current_operations();
    JOINING_HOST_CONNECTION_FAILED joining_host_connection_failed();
    JOINING_HOST_SERVICE_FAILED joining_host_service_failed();
    LICENCE_RESTRICTION licence_restriction(feature);
    LICENSE_DOES_NOT_SUPPORT_POOLING license_does_not_support_pooling();
    LICENSE_HOST_POOL_MISMATCH license_host_pool_mismatch();
    LICENSE_PROCESSING_ERROR license_processing_error();
    /// xapi's order: the class, the field, the object's uuid, the key.
    MAC_INVALID mac_invalid(mac = "MAC");
    MAP_DUPLICATE_KEY map_duplicate_key(class = "type", param_name, uuid, key);
    MEMORY_CONSTRAINT_VIOLATION memory_constraint_violation(constraint);
    MESSAGE_DEPRECATED message_deprecated();
    MESSAGE_METHOD_UNKNOWN message_method_unknown(method);
    /// Counts exclude the session.
    MESSAGE_PARAMETER_COUNT_MISMATCH message_parameter_count_mismatch(method, expected, received);
    MESSAGE_REMOVED message_removed();
    NETWORK_CONTAINS_PIF network_contains_pif(pifs);
    NETWORK_CONTAINS_VIF network_contains_vif(vifs);
    NETWORK_INCOMPATIBLE_PURPOSES network_incompatible_purposes(new_purpose, conflicting_purpose);
    NETWORK_SRIOV_INSUFFICIENT_CAPACITY network_sriov_insufficient_capacity(network);
    NOT_IMPLEMENTED not_implemented(function);
    NOT_SUPPORTED_DURING_UPGRADE not_supported_during_upgrade();
    NO_HOSTS_AVAILABLE no_hosts_available();
    OBJECT_NOLONGER_EXISTS object_nolonger_exists();
    ONLY_PROVISION_TEMPLATE only_provision_template();
    ONLY_REVERT_SNAPSHOT only_revert_snapshot();
    OPERATION_BLOCKED operation_blocked(object = "ref", code);
    OPERATION_NOT_ALLOWED operation_not_allowed(reason);
    /// `operation_ref` is the key of the operation in `current_operations` (its task).
    OTHER_OPERATION_IN_PROGRESS
        other_operation_in_progress(class, object, operation_type, operation_ref);
    PERMISSION_DENIED permission_denied(message);
    PIF_DOES_NOT_ALLOW_UNPLUG pif_does_not_allow_unplug(pif = "PIF");
    PIF_HAS_FCOE_SR_IN_USE pif_has_fcoe_sr_in_use(pif = "PIF", sr = "SR");
    PIF_HAS_NO_NETWORK_CONFIGURATION pif_has_no_network_configuration(pif = "PIF");
    PIF_HAS_NO_V6_NETWORK_CONFIGURATION pif_has_no_v6_network_configuration(pif = "PIF");
    PIF_INCOMPATIBLE_PRIMARY_ADDRESS_TYPE pif_incompatible_primary_address_type(pif = "PIF");
    PIF_IS_MANAGEMENT_INTERFACE pif_is_management_interface(pif = "PIF");
    PIF_IS_PHYSICAL pif_is_physical(pif = "PIF");
    PIF_NOT_PRESENT pif_not_present(host, network);
    PIF_TUNNEL_STILL_EXISTS pif_tunnel_still_exists(pif = "PIF");
    POOL_JOINING_EXTERNAL_AUTH_MISMATCH pool_joining_external_auth_mismatch();
    POOL_JOINING_HOST_HAS_BONDS pool_joining_host_has_bonds();
    POOL_JOINING_HOST_HAS_NON_MANAGEMENT_VLANS pool_joining_host_has_non_management_vlans();
    POOL_JOINING_HOST_HAS_TUNNELS pool_joining_host_has_tunnels();
    POOL_JOINING_HOST_MANAGEMENT_VLAN_DOES_NOT_MATCH
        pool_joining_host_management_vlan_does_not_match(local, remote);
    POOL_JOINING_HOST_MUST_HAVE_PHYSICAL_MANAGEMENT_NIC
        pool_joining_host_must_have_physical_management_nic();
    /// Versions as `major.minor`.
    POOL_JOINING_HOST_MUST_HAVE_SAME_API_VERSION
        pool_joining_host_must_have_same_api_version(host_api_version, master_api_version);
    POOL_JOINING_HOST_MUST_HAVE_SAME_DB_SCHEMA
        pool_joining_host_must_have_same_db_schema(host_db_schema, master_db_schema);
    POOL_JOINING_HOST_MUST_HAVE_SAME_PRODUCT_VERSION
        pool_joining_host_must_have_same_product_version();
    POOL_JOINING_HOST_TLS_VERIFICATION_MISMATCH pool_joining_host_tls_verification_mismatch();
    POOL_JOINING_SM_FEATURES_INCOMPATIBLE
        pool_joining_sm_features_incompatible(pool_sm, candidate_sm);
    RBAC_PERMISSION_DENIED rbac_permission_denied(permission, message);
    SESSION_AUTHENTICATION_FAILED session_authentication_failed(uname, msg);
    SESSION_AUTHORIZATION_FAILED session_authorization_failed(username, msg);
    SESSION_INVALID session_invalid(handle);
    SESSION_NOT_REGISTERED session_not_registered(handle);
    SLAVE_REQUIRES_MANAGEMENT_INTERFACE slave_requires_management_interface();
    SR_BACKEND_FAILURE sr_backend_failure(status, stdout, stderr);
    SR_FULL sr_full(requested, maximum);
    SR_HAS_NO_PBDS sr_has_no_pbds(sr);
    SR_HAS_PBD sr_has_pbd(sr);
    SR_NOT_ATTACHED sr_not_attached(sr);
    SR_NOT_EMPTY sr_not_empty();
    SR_OPERATION_NOT_SUPPORTED sr_operation_not_supported(sr);
    SR_UNKNOWN_DRIVER sr_unknown_driver(driver);
    TASK_CANCELLED task_cancelled(task);
    TOO_MANY_PENDING_TASKS too_many_pending_tasks();
    TRANSPORT_PIF_NOT_CONFIGURED transport_pif_not_configured(pif = "PIF");
    UNKNOWN_BOOTLOADER unknown_bootloader(vm, bootloader);
    USER_IS_NOT_LOCAL_SUPERUSER user_is_not_local_superuser(msg);
    UUID_INVALID uuid_invalid(class = "type", uuid);
    VALUE_NOT_SUPPORTED value_not_supported(field, value, reason);
    VBD_CDS_MUST_BE_READONLY vbd_cds_must_be_readonly();
    VBD_IS_EMPTY vbd_is_empty(vbd);
    VBD_NOT_EMPTY vbd_not_empty(vbd);
    VBD_NOT_REMOVABLE_MEDIA vbd_not_removable_media(vbd);
    VBD_NOT_UNPLUGGABLE vbd_not_unpluggable(vbd);
    VDI_INCOMPATIBLE_TYPE vdi_incompatible_type(vdi, vdi_type = "type");
    VDI_IN_USE vdi_in_use(vdi, operation);
    /// xapi's error for a VDI's data that cannot be read or written, as its import and export
    /// raise it (an image that is not what its format says, say).
    VDI_IO_ERROR vdi_io_error(reason);
    VDI_IS_A_PHYSICAL_DEVICE vdi_is_a_physical_device(vdi);
    VDI_MISSING vdi_missing(sr, vdi);
    VDI_NOT_SPARSE vdi_not_sparse(vdi);
    VDI_NO_CBT_METADATA vdi_no_cbt_metadata(vdi);
    VDI_ON_BOOT_MODE_INCOMPATIBLE_WITH_OPERATION vdi_on_boot_mode_incompatible_with_operation();
    VDI_READONLY vdi_readonly(vdi);
    /// `minimum size` in bytes.
    VDI_TOO_SMALL vdi_too_small(vdi, minimum_size = "minimum size");
    VIF_IN_USE vif_in_use(network, vif = "VIF");
    VLAN_TAG_INVALID vlan_tag_invalid(vlan = "VLAN");
    VM_BAD_POWER_STATE vm_bad_power_state(vm, expected, actual);
    VM_BIOS_STRINGS_ALREADY_SET vm_bios_strings_already_set();
    VM_CALL_PLUGIN_RATE_LIMIT vm_call_plugin_rate_limit(vm = "VM", interval, wait);
    VM_CANNOT_DELETE_DEFAULT_TEMPLATE vm_cannot_delete_default_template(vm);
    VM_CHECKPOINT_RESUME_FAILED vm_checkpoint_resume_failed(vm);
    VM_CHECKPOINT_SUSPEND_FAILED vm_checkpoint_suspend_failed(vm);
    VM_FAILED_SHUTDOWN_ACKNOWLEDGMENT vm_failed_shutdown_acknowledgment(vm);
    VM_HALTED vm_halted(vm);
    VM_HAS_PCI_ATTACHED vm_has_pci_attached(vm);
    VM_HOST_INCOMPATIBLE_VERSION vm_host_incompatible_version(host, vm);
    VM_HOST_INCOMPATIBLE_VIRTUAL_HARDWARE_PLATFORM_VERSION
        vm_host_incompatible_virtual_hardware_platform_version(host, host_versions, vm, vm_version);
    VM_HVM_REQUIRED vm_hvm_required(vm);
    VM_INCOMPATIBLE_WITH_THIS_HOST vm_incompatible_with_this_host(vm, host, reason);
    VM_IS_IMMOBILE vm_is_immobile(vm = "VM");
    VM_IS_PART_OF_AN_APPLIANCE vm_is_part_of_an_appliance(vm, appliance);
    VM_IS_SNAPSHOT vm_is_snapshot(vm, operation);
    VM_IS_TEMPLATE vm_is_template(vm);
    VM_LACKS_FEATURE vm_lacks_feature(vm);
    VM_MEMORY_SIZE_TOO_LOW vm_memory_size_too_low(vm);
    VM_MIGRATE_FAILED vm_migrate_failed(vm, source, destination, msg);
    VM_MISSING_PV_DRIVERS vm_missing_pv_drivers(vm);
    VM_NOT_RESIDENT_HERE vm_not_resident_here(vm, host);
    VM_NO_SUSPEND_SR vm_no_suspend_sr(vm);
    VM_REQUIRES_GPU vm_requires_gpu(vm, gpu_group = "GPU_group");
    VM_REQUIRES_IOMMU vm_requires_iommu(host);
    VM_REQUIRES_NETWORK vm_requires_network(vm, network);
    VM_REQUIRES_SR vm_requires_sr(vm, sr);
    VM_REQUIRES_VGPU vm_requires_vgpu(vm, gpu_group = "GPU_group", vgpu_type = "vGPU_type");
    VM_REVERT_FAILED vm_revert_failed(vm, snapshot);
    VM_SHUTDOWN_TIMEOUT vm_shutdown_timeout(vm, timeout);
    VM_SNAPSHOT_WITH_QUIESCE_FAILED vm_snapshot_with_quiesce_failed(vm);
    VM_SNAPSHOT_WITH_QUIESCE_NOT_SUPPORTED vm_snapshot_with_quiesce_not_supported(vm, error);
    VM_SNAPSHOT_WITH_QUIESCE_PLUGIN_DEOS_NOT_RESPOND
        vm_snapshot_with_quiesce_plugin_deos_not_respond(vm);
    VM_SNAPSHOT_WITH_QUIESCE_TIMEOUT vm_snapshot_with_quiesce_timeout(vm);
    VM_TOO_MANY_VCPUS vm_too_many_vcpus(vm);
    XAPI_HOOK_FAILED xapi_hook_failed(hook_name, reason, stdout, exit_code);
    XENAPI_MISSING_PLUGIN xenapi_missing_plugin(name);
    XENAPI_PLUGIN_FAILURE xenapi_plugin_failure(status, stdout, stderr);
}

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

    /// Each constructor is named as its code in lowercase.
    #[test]
    fn constructors_are_named_as_their_codes() {
        assert_eq!(CONSTRUCTORS.len(), ERRORS.len());
        for (code, constructor) in CONSTRUCTORS {
            assert_eq!(code.to_ascii_lowercase(), *constructor);
        }
    }

    /// A constructor sends its arguments in the declared order, under the declared code, and
    /// spells parameter names that are not Rust names as declared.
    #[test]
    fn constructor_follows_its_declaration() {
        let error = vm_bad_power_state("OpaqueRef:v", "halted", "running");
        assert_eq!(
            error.description(),
            ["VM_BAD_POWER_STATE", "OpaqueRef:v", "halted", "running"]
        );
        assert_eq!(
            database_entry_too_large(10_usize, 5_usize).params,
            ["10", "5"]
        );
        assert_eq!(
            decl(HOST_IS_SLAVE).map(|d| d.params),
            Some(&["Master IP address"][..])
        );
        assert_eq!(decl(VM_IS_IMMOBILE).map(|d| d.params), Some(&["VM"][..]));
    }

    /// A numbered backend failure is `SR_BACKEND_FAILURE_<number>` with the parameters of
    /// `SR_BACKEND_FAILURE`, which `decl` finds for it; a code that only starts alike is not.
    #[test]
    fn numbered_backend_failures_share_the_parameters_of_sr_backend_failure() {
        let error = sr_backend_failure_numbered(BackendFailure::VdiSize, "shrink", "");
        assert_eq!(
            error.description(),
            [
                "SR_BACKEND_FAILURE_79",
                "",
                "VDI size invalid [opterr=shrink]",
                ""
            ]
        );
        assert_eq!(
            decl(&error.code).map(|d| d.params),
            Some(&["status", "stdout", "stderr"][..])
        );
        assert!(decl("SR_BACKEND_FAILURE_").is_none());
        assert!(decl("SR_BACKEND_FAILURE_x").is_none());
    }

    /// The description on the wire is the code followed by the parameters.
    #[test]
    fn description_puts_the_code_first() {
        let error = handle_invalid("VM", "OpaqueRef:x");
        assert_eq!(error.description(), ["HANDLE_INVALID", "VM", "OpaqueRef:x"]);
    }
}
