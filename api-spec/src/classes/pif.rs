//! `PIF`: a host's physical or VLAN network interface.

use super::{STRING_MAP, STRING_SET};
use crate::errors::{
    CLUSTERING_ENABLED, HA_OPERATION_WOULD_BREAK_FAILOVER_PLAN, OTHER_OPERATION_IN_PROGRESS,
    PIF_DOES_NOT_ALLOW_UNPLUG, PIF_HAS_FCOE_SR_IN_USE, PIF_IS_PHYSICAL, PIF_TUNNEL_STILL_EXISTS,
    TRANSPORT_PIF_NOT_CONFIGURED, VIF_IN_USE, VLAN_TAG_INVALID,
};
use crate::model::{Class, Field, Lifecycle, Message, Param};
use crate::roles::Role;
use crate::types::{EnumDecl, Lit, Ty};

const PIF_REF: Ty = Ty::Ref("PIF");

pub static IP_CONFIGURATION_MODE: EnumDecl = EnumDecl {
    name: "ip_configuration_mode",
    values: &["None", "DHCP", "Static"],
};

pub static IPV6_CONFIGURATION_MODE: EnumDecl = EnumDecl {
    name: "ipv6_configuration_mode",
    values: &["None", "DHCP", "Static", "Autoconf"],
};

pub static PRIMARY_ADDRESS_TYPE: EnumDecl = EnumDecl {
    name: "primary_address_type",
    values: &["IPv4", "IPv6"],
};

pub static PIF_IGMP_STATUS: EnumDecl = EnumDecl {
    name: "pif_igmp_status",
    values: &["enabled", "disabled", "unknown"],
};

pub static PIF_FIELDS: &[Field] = &[
    Field::dynamic_ro("uuid", Ty::String),
    Field::static_ro("device", Ty::String),
    Field::static_ro("network", Ty::Ref("network")),
    Field::static_ro("host", Ty::Ref("host")),
    Field::static_ro("MAC", Ty::String),
    Field::static_ro("MTU", Ty::Int),
    Field::static_ro("VLAN", Ty::Int),
    Field::dynamic_ro("metrics", Ty::Ref("PIF_metrics")),
    Field::dynamic_ro("physical", Ty::Bool).default(Lit::Bool(false)),
    Field::dynamic_ro("currently_attached", Ty::Bool).default(Lit::Bool(true)),
    Field::dynamic_ro("ip_configuration_mode", Ty::Enum(&IP_CONFIGURATION_MODE))
        .default(Lit::Enum("None")),
    Field::dynamic_ro("IP", Ty::String).default(Lit::Str("")),
    Field::dynamic_ro("netmask", Ty::String).default(Lit::Str("")),
    Field::dynamic_ro("gateway", Ty::String).default(Lit::Str("")),
    Field::dynamic_ro("DNS", Ty::String).default(Lit::Str("")),
    Field::dynamic_ro("bond_slave_of", Ty::Ref("Bond")).default(Lit::NullRef),
    Field::dynamic_ro("bond_master_of", Ty::Set(&Ty::Ref("Bond"))),
    Field::dynamic_ro("VLAN_master_of", Ty::Ref("VLAN")).default(Lit::NullRef),
    Field::dynamic_ro("VLAN_slave_of", Ty::Set(&Ty::Ref("VLAN"))),
    Field::dynamic_ro("management", Ty::Bool).default(Lit::Bool(false)),
    Field::rw("other_config", STRING_MAP).default(Lit::Map(&[])),
    Field::dynamic_ro("disallow_unplug", Ty::Bool).default(Lit::Bool(false)),
    Field::dynamic_ro("tunnel_access_PIF_of", Ty::Set(&Ty::Ref("tunnel"))),
    Field::dynamic_ro("tunnel_transport_PIF_of", Ty::Set(&Ty::Ref("tunnel"))),
    Field::dynamic_ro(
        "ipv6_configuration_mode",
        Ty::Enum(&IPV6_CONFIGURATION_MODE),
    )
    .default(Lit::Enum("None")),
    Field::dynamic_ro("IPv6", STRING_SET).default(Lit::Set(&[])),
    Field::dynamic_ro("ipv6_gateway", Ty::String).default(Lit::Str("")),
    Field::dynamic_ro("primary_address_type", Ty::Enum(&PRIMARY_ADDRESS_TYPE))
        .default(Lit::Enum("IPv4")),
    Field::static_ro("managed", Ty::Bool).default(Lit::Bool(true)),
    Field::dynamic_ro("properties", STRING_MAP).default(Lit::Map(&[])),
    Field::dynamic_ro("capabilities", STRING_SET).default(Lit::Set(&[])),
    Field::dynamic_ro("igmp_snooping_status", Ty::Enum(&PIF_IGMP_STATUS))
        .default(Lit::Enum("unknown")),
    Field::dynamic_ro("sriov_physical_PIF_of", Ty::Set(&Ty::Ref("network_sriov"))),
    Field::dynamic_ro("sriov_logical_PIF_of", Ty::Set(&Ty::Ref("network_sriov"))),
    Field::dynamic_ro("PCI", Ty::Ref("PCI")).default(Lit::NullRef),
];

pub static PIF_MESSAGES: &[Message] = &[
    Message::new("create_VLAN", Role::PoolOperator)
        .params(&[
            Param::new("device", Ty::String),
            Param::new("network", Ty::Ref("network")),
            Param::new("host", Ty::Ref("host")),
            Param::new("VLAN", Ty::Int),
        ])
        .returns(PIF_REF)
        .errors(&[VLAN_TAG_INVALID])
        .lifecycle(Lifecycle::Deprecated),
    Message::new("destroy", Role::PoolOperator)
        .params(&[Param::new("self", PIF_REF)])
        .errors(&[PIF_IS_PHYSICAL])
        .lifecycle(Lifecycle::Deprecated),
    Message::new("reconfigure_ip", Role::PoolOperator)
        .params(&[
            Param::new("self", PIF_REF),
            Param::new("mode", Ty::Enum(&IP_CONFIGURATION_MODE)),
            Param::new("IP", Ty::String),
            Param::new("netmask", Ty::String),
            Param::new("gateway", Ty::String),
            Param::new("DNS", Ty::String),
        ])
        .errors(&[CLUSTERING_ENABLED]),
    Message::new("reconfigure_ipv6", Role::PoolOperator)
        .params(&[
            Param::new("self", PIF_REF),
            Param::new("mode", Ty::Enum(&IPV6_CONFIGURATION_MODE)),
            Param::new("IPv6", Ty::String),
            Param::new("gateway", Ty::String),
            Param::new("DNS", Ty::String),
        ])
        .errors(&[CLUSTERING_ENABLED]),
    Message::new("set_primary_address_type", Role::PoolOperator).params(&[
        Param::new("self", PIF_REF),
        Param::new("primary_address_type", Ty::Enum(&PRIMARY_ADDRESS_TYPE)),
    ]),
    Message::new("scan", Role::PoolOperator).params(&[Param::new("host", Ty::Ref("host"))]),
    Message::new("introduce", Role::PoolOperator)
        .params(&[
            Param::new("host", Ty::Ref("host")),
            Param::new("MAC", Ty::String),
            Param::new("device", Ty::String),
            Param::new("managed", Ty::Bool).default(Lit::Bool(true)),
        ])
        .returns(PIF_REF),
    Message::new("forget", Role::PoolOperator)
        .params(&[Param::new("self", PIF_REF)])
        .errors(&[PIF_TUNNEL_STILL_EXISTS, CLUSTERING_ENABLED]),
    Message::new("unplug", Role::PoolOperator)
        .params(&[Param::new("self", PIF_REF)])
        .errors(&[
            HA_OPERATION_WOULD_BREAK_FAILOVER_PLAN,
            VIF_IN_USE,
            PIF_DOES_NOT_ALLOW_UNPLUG,
            PIF_HAS_FCOE_SR_IN_USE,
        ]),
    Message::new("set_disallow_unplug", Role::PoolOperator)
        .params(&[Param::new("self", PIF_REF), Param::new("value", Ty::Bool)])
        .errors(&[OTHER_OPERATION_IN_PROGRESS, CLUSTERING_ENABLED]),
    Message::new("plug", Role::PoolOperator)
        .params(&[Param::new("self", PIF_REF)])
        .errors(&[TRANSPORT_PIF_NOT_CONFIGURED]),
    Message::new("db_introduce", Role::PoolOperator)
        .params(&[
            Param::new("device", Ty::String),
            Param::new("network", Ty::Ref("network")),
            Param::new("host", Ty::Ref("host")),
            Param::new("MAC", Ty::String),
            Param::new("MTU", Ty::Int),
            Param::new("VLAN", Ty::Int),
            Param::new("physical", Ty::Bool),
            Param::new("ip_configuration_mode", Ty::Enum(&IP_CONFIGURATION_MODE)),
            Param::new("IP", Ty::String),
            Param::new("netmask", Ty::String),
            Param::new("gateway", Ty::String),
            Param::new("DNS", Ty::String),
            Param::new("bond_slave_of", Ty::Ref("Bond")),
            Param::new("VLAN_master_of", Ty::Ref("VLAN")),
            Param::new("management", Ty::Bool),
            Param::new("other_config", STRING_MAP),
            Param::new("disallow_unplug", Ty::Bool).default(Lit::Bool(false)),
            Param::new(
                "ipv6_configuration_mode",
                Ty::Enum(&IPV6_CONFIGURATION_MODE),
            )
            .default(Lit::Enum("None")),
            Param::new("IPv6", STRING_SET).default(Lit::Set(&[])),
            Param::new("ipv6_gateway", Ty::String).default(Lit::Str("")),
            Param::new("primary_address_type", Ty::Enum(&PRIMARY_ADDRESS_TYPE))
                .default(Lit::Enum("IPv4")),
            Param::new("managed", Ty::Bool).default(Lit::Bool(true)),
            Param::new("properties", STRING_MAP).default(Lit::Map(&[])),
        ])
        .returns(PIF_REF),
    Message::new("db_forget", Role::PoolOperator).params(&[Param::new("self", PIF_REF)]),
    Message::new("set_property", Role::PoolOperator).params(&[
        Param::new("self", PIF_REF),
        Param::new("name", Ty::String),
        Param::new("value", Ty::String),
    ]),
];

pub static PIF: Class = Class {
    name: "PIF",
    fields: PIF_FIELDS,
    messages: PIF_MESSAGES,
    enums: &[
        &IP_CONFIGURATION_MODE,
        &IPV6_CONFIGURATION_MODE,
        &PRIMARY_ADDRESS_TYPE,
        &PIF_IGMP_STATUS,
    ],
    has_constructor: false,
    has_get_all: true,
    in_db: true,
    gen_events: true,
    writer_role: Role::PoolOperator,
};
