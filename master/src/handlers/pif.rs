//! The custom messages of `PIF`: `plug` and `unplug`, which have the PIF's host set up or
//! remove the bridge of the PIF's network (`NetworkAction::{Attach, Detach}`), with xapi's
//! checks, then record the PIF's `currently_attached`; and `db_introduce`, the record of a
//! PIF given in full (detached until plugged), as a joining host's PIFs are made.

use api_spec::{Value, errors};

use crate::call::ctx::{Args, Ctx, void};
use crate::error::Error;
use crate::vm::operations::{Draft, Overlay};
use crate::vm::power_state::power_state;
use host_api::{ActionResult, HostAction, NetworkAction};

/// The MTU of a bridge whose PIF and network give none that fits: Ethernet's.
const ETHERNET_MTU: u32 = 1500;

/// The parameters of `PIF.db_introduce`, each the PIF field of the same name.
const INTRODUCED_FIELDS: [&str; 23] = [
    "device",
    "network",
    "host",
    "MAC",
    "MTU",
    "VLAN",
    "physical",
    "ip_configuration_mode",
    "IP",
    "netmask",
    "gateway",
    "DNS",
    "bond_slave_of",
    "VLAN_master_of",
    "management",
    "other_config",
    "disallow_unplug",
    "ipv6_configuration_mode",
    "IPv6",
    "ipv6_gateway",
    "primary_address_type",
    "managed",
    "properties",
];

/// `PIF.db_introduce`: a PIF row with the fields given, on a host and a network that exist
/// (`HANDLE_INVALID` otherwise); it is detached until `PIF.plug`. Only the DB changes, as in
/// xapi.
pub(super) async fn db_introduce(ctx: Ctx, args: Args) -> Result<Value, Error> {
    let mut fields = Vec::with_capacity(INTRODUCED_FIELDS.len() + 1);
    for name in INTRODUCED_FIELDS {
        fields.push((name, args.get(name)?.clone()));
    }
    fields.push(("currently_attached", Value::Bool(false)));
    let (host, network) = (args.str("host")?, args.str("network")?);
    let (pif, _) = ctx
        .master
        .decide(|db| {
            let mut draft = Draft::new(db);
            for (class, r) in [("host", host), ("network", network)] {
                if !draft.view().exists(class, r) {
                    return Err(errors::handle_invalid(class, r).into());
                }
            }
            let pif = draft.create("PIF", fields.clone());
            Ok((draft.into_txn(), pif))
        })
        .await?;
    tracing::info!(pif = %pif, host = %host, "PIF introduced");
    Ok(Value::String(pif))
}

/// What a PIF's host is to do, and which host.
type Target = (String, NetworkAction);

/// `PIF.plug`: brings the PIF's network up on its host; plugging an attached PIF does nothing,
/// as in xapi.
pub(super) async fn plug(ctx: Ctx, args: Args) -> Result<Value, Error> {
    let pif = args.str("self")?;
    let target = target(&ctx, pif, |view, network| {
        if view.bool("PIF", pif, "currently_attached") {
            return Ok(None);
        }
        Ok(Some(NetworkAction::Attach {
            bridge: view.str("network", network, "bridge").to_owned(),
            mtu: mtu(view, pif, network),
        }))
    })?;
    set_attached(&ctx, pif, target, true).await
}

/// `PIF.unplug`: brings the PIF's network down on its host. xapi's checks, in its order: not
/// the management interface, unplug allowed, no VIF of a VM running on the host plugged into
/// the network; then unplugging a detached PIF does nothing.
pub(super) async fn unplug(ctx: Ctx, args: Args) -> Result<Value, Error> {
    let pif = args.str("self")?;
    let target = target(&ctx, pif, |view, network| {
        if view.bool("PIF", pif, "management") {
            return Err(errors::pif_is_management_interface(pif).into());
        }
        if view.bool("PIF", pif, "disallow_unplug") {
            return Err(errors::pif_does_not_allow_unplug(pif).into());
        }
        if let Some(vif) = vif_in_use(view, view.str("PIF", pif, "host"), network) {
            return Err(errors::vif_in_use(network, &vif).into());
        }
        if !view.bool("PIF", pif, "currently_attached") {
            return Ok(None);
        }
        Ok(Some(NetworkAction::Detach {
            bridge: view.str("network", network, "bridge").to_owned(),
        }))
    })?;
    set_attached(&ctx, pif, target, false).await
}

/// The action `decide` picks for `pif` (given its network), with the PIF's host; `None` when
/// there is nothing to do; `HANDLE_INVALID` when `pif` names no PIF.
fn target(
    ctx: &Ctx,
    pif: &str,
    decide: impl FnOnce(&Overlay, &str) -> Result<Option<NetworkAction>, Error>,
) -> Result<Option<Target>, Error> {
    let db = ctx.db();
    let view = Overlay::new(&db);
    if !view.exists("PIF", pif) {
        return Err(errors::handle_invalid("PIF", pif).into());
    }
    let action = decide(&view, view.str("PIF", pif, "network"))?;
    Ok(action.map(|action| (view.str("PIF", pif, "host").to_owned(), action)))
}

/// A VIF on `network` plugged into a VM whose domain runs on `host`, if there is one.
fn vif_in_use(view: &Overlay, host: &str, network: &str) -> Option<String> {
    view.children("VIF", "network", network)
        .into_iter()
        .find(|vif| {
            let vm = view.str("VIF", vif, "VM");
            view.bool("VIF", vif, "currently_attached")
                && power_state(view, vm).has_domain()
                && view.str("VM", vm, "resident_on") == host
        })
}

/// The MTU of the PIF's bridge: the PIF's, else its network's, else Ethernet's.
fn mtu(view: &Overlay, pif: &str, network: &str) -> u32 {
    [
        view.int("PIF", pif, "MTU"),
        view.int("network", network, "MTU"),
    ]
    .into_iter()
    .find_map(|mtu| u32::try_from(mtu).ok().filter(|mtu| *mtu > 0))
    .unwrap_or(ETHERNET_MTU)
}

/// Runs the target's action on its host's agent and, once it is done, records
/// `currently_attached` on `pif` (unless the PIF was forgotten meanwhile); with no target,
/// answers at once.
async fn set_attached(
    ctx: &Ctx,
    pif: &str,
    target: Option<Target>,
    attached: bool,
) -> Result<Value, Error> {
    let Some((host, action)) = target else {
        return Ok(void());
    };
    tracing::debug!(pif = %pif, host = %host, attached, "network action sent");
    let answer = ctx.run_on_host(&host, HostAction::Network(action)).await?;
    if answer != ActionResult::Done {
        let message =
            format!("the host agent answered another action's result for PIF {pif}; this is a bug");
        return Err(errors::internal_error(message).into());
    }
    super::record_attached(ctx, "PIF", pif, attached).await?;
    tracing::info!(pif = %pif, host = %host, attached, "PIF plugged state changed");
    Ok(void())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use db_schema::{Op, Txn};

    use super::*;
    use crate::db::record::{new_ref, new_row, new_uuid};
    use crate::host_link::LinkFailure;
    use crate::testing::{ActionKind, TestPool, s};

    /// A row of `class` with `fields` and a fresh uuid, as a Create op; its ref beside it.
    fn create(class: &str, fields: &[(&str, Value)]) -> (String, Op) {
        let mut given: BTreeMap<String, Value> = fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        given.insert("uuid".to_owned(), Value::String(new_uuid()));
        let class = api_spec::api().class(class).expect("a declared class");
        let r = new_ref();
        let op = Op::Create {
            class: class.name.to_owned(),
            r#ref: r.clone(),
            fields: new_row(class, given),
        };
        (r, op)
    }

    /// Gives the pool's host a second, detached PIF `eth1` (MTU 9000) on a new network with
    /// the bridge `xenbr1`; returns the network and the PIF.
    fn second_pif(pool: &TestPool) -> (String, String) {
        let (network, network_op) = create(
            "network",
            &[("name_label", s("storage")), ("bridge", s("xenbr1"))],
        );
        let (pif, pif_op) = create(
            "PIF",
            &[
                ("device", s("eth1")),
                ("network", s(&network)),
                ("host", s(&pool.host)),
                ("MAC", s("02:00:00:00:00:e1")),
                ("MTU", Value::Int(9000)),
                ("VLAN", Value::Int(-1)),
                ("physical", Value::Bool(true)),
                ("currently_attached", Value::Bool(false)),
            ],
        );
        let txn = Txn {
            preconditions: Vec::new(),
            ops: vec![network_op, pif_op],
        };
        pool.db.apply(&txn).expect("a new network and PIF apply");
        (network, pif)
    }

    /// The PIF's `currently_attached`.
    fn is_attached(pool: &TestPool, pif: &str) -> bool {
        pool.field("PIF", pif, "currently_attached") == Some(Value::Bool(true))
    }

    /// The pool's management PIF.
    fn management_pif(pool: &TestPool) -> String {
        pool.refs("PIF")
            .into_iter()
            .find(|pif| pool.field("PIF", pif, "management") == Some(Value::Bool(true)))
            .expect("the host has a management PIF")
    }

    /// `PIF.plug` has the PIF's host set up its network's bridge with the PIF's MTU and records
    /// the PIF attached; plugging it again sends nothing.
    #[tokio::test]
    async fn plug_attaches_the_bridge_on_the_pifs_host_and_records_it() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let (_, pif) = second_pif(&pool);
        let plug = || pool.call_as(&session, "PIF.plug", vec![s(&pif)]);
        assert_eq!(plug().await, Ok(s("")));
        let sent = pool.agent.received().pop().expect("an action");
        assert_eq!(sent.host, pool.host);
        let attach = NetworkAction::Attach {
            bridge: "xenbr1".to_owned(),
            mtu: 9000,
        };
        assert_eq!(sent.action, HostAction::Network(attach));
        assert!(pool.agent.bridges().contains("xenbr1"));
        assert!(is_attached(&pool, &pif));
        assert_eq!(plug().await, Ok(s("")));
        assert_eq!(pool.agent.kinds(), [ActionKind::AttachNetwork]);
    }

    /// `PIF.unplug` has the host remove the bridge and records the PIF detached; unplugging it
    /// again sends nothing.
    #[tokio::test]
    async fn unplug_detaches_the_bridge_and_records_it() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let (_, pif) = second_pif(&pool);
        let call = |method: &'static str| pool.call_as(&session, method, vec![s(&pif)]);
        call("PIF.plug").await.expect("plugged");
        assert_eq!(call("PIF.unplug").await, Ok(s("")));
        assert!(!pool.agent.bridges().contains("xenbr1"));
        assert!(!is_attached(&pool, &pif));
        assert_eq!(call("PIF.unplug").await, Ok(s("")));
        assert_eq!(
            pool.agent.kinds(),
            [ActionKind::AttachNetwork, ActionKind::DetachNetwork]
        );
    }

    /// The management PIF is refused before anything else is checked (even when it also
    /// disallows unplug) and before any action is sent.
    #[tokio::test]
    async fn unplug_of_the_management_pif_is_refused_before_any_action() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let pif = management_pif(&pool);
        pool.write("PIF", &pif, &[("disallow_unplug", Value::Bool(true))]);
        assert_eq!(
            pool.call_as(&session, "PIF.unplug", vec![s(&pif)]).await,
            Err(errors::pif_is_management_interface(&pif))
        );
        assert_eq!(pool.agent.kinds(), []);
        assert!(is_attached(&pool, &pif));
    }

    /// A PIF with `disallow_unplug` set is refused with `PIF_DOES_NOT_ALLOW_UNPLUG`.
    #[tokio::test]
    async fn unplug_of_a_pif_that_disallows_it_is_refused() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let (_, pif) = second_pif(&pool);
        pool.write(
            "PIF",
            &pif,
            &[
                ("currently_attached", Value::Bool(true)),
                ("disallow_unplug", Value::Bool(true)),
            ],
        );
        assert_eq!(
            pool.call_as(&session, "PIF.unplug", vec![s(&pif)]).await,
            Err(errors::pif_does_not_allow_unplug(&pif))
        );
        assert_eq!(pool.agent.kinds(), []);
    }

    /// While a running VM on the host has a VIF plugged into the PIF's network, unplug is
    /// refused with `VIF_IN_USE [network; VIF]`; once the VIF is unplugged it goes through.
    #[tokio::test]
    async fn unplug_is_refused_while_a_running_vms_vif_uses_the_network() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let (network, pif) = second_pif(&pool);
        let call = |method: &'static str, r: &str| pool.call_as(&session, method, vec![s(r)]);
        call("PIF.plug", &pif).await.expect("plugged");
        let vm = pool.running_vm(&session, "web").await;
        let vif = pool.add_nic_on(&session, &vm, "0", &network).await;
        call("VIF.plug", &vif).await.expect("the VIF is plugged");
        assert_eq!(
            call("PIF.unplug", &pif).await,
            Err(errors::vif_in_use(&network, &vif))
        );
        assert!(!pool.agent.kinds().contains(&ActionKind::DetachNetwork));
        call("VIF.unplug", &vif)
            .await
            .expect("the VIF is unplugged");
        assert_eq!(call("PIF.unplug", &pif).await, Ok(s("")));
    }

    /// A host whose agent cannot be reached answers `HOST_OFFLINE [host]`, and the PIF keeps
    /// its state.
    #[tokio::test]
    async fn plug_on_an_offline_host_fails_with_host_offline() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let (_, pif) = second_pif(&pool);
        pool.agent
            .fail_next(ActionKind::AttachNetwork, LinkFailure::HostOffline);
        assert_eq!(
            pool.call_as(&session, "PIF.plug", vec![s(&pif)]).await,
            Err(errors::host_offline(&pool.host))
        );
        assert!(!is_attached(&pool, &pif));
    }

    /// A ref that names no PIF is `HANDLE_INVALID` for both messages.
    #[tokio::test]
    async fn a_ref_that_names_no_pif_is_handle_invalid() {
        let pool = TestPool::new();
        let session = pool.login().await;
        for method in ["PIF.plug", "PIF.unplug"] {
            assert_eq!(
                pool.call_as(&session, method, vec![s("OpaqueRef:nope")])
                    .await,
                Err(errors::handle_invalid("PIF", "OpaqueRef:nope"))
            );
        }
    }

    /// `PIF.db_introduce` makes a detached PIF with the fields given, on a host and a network
    /// that exist; an unknown host or network is `HANDLE_INVALID`, with no row made.
    #[tokio::test]
    async fn db_introduce_records_a_detached_pif() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let network = pool.refs("network").remove(0);
        let params = |host: &str, network: &str| {
            let mut params = vec![s("eth3"), s(network), s(host), s("02:00:00:00:00:03")];
            params.extend([Value::Int(1500), Value::Int(-1), Value::Bool(true)]);
            params.extend(["None", "", "", "", ""].map(s));
            params.extend([s("OpaqueRef:NULL"), s("OpaqueRef:NULL"), Value::Bool(false)]);
            params.push(Value::Struct(BTreeMap::new()));
            params
        };
        let before = pool.refs("PIF").len();
        for (host, network) in [
            ("OpaqueRef:nohost", network.as_str()),
            (&pool.host, "OpaqueRef:nonet"),
        ] {
            let class = if host == pool.host { "network" } else { "host" };
            let r = if host == pool.host { network } else { host };
            assert_eq!(
                pool.call_as(&session, "PIF.db_introduce", params(host, network))
                    .await,
                Err(errors::handle_invalid(class, r))
            );
        }
        assert_eq!(pool.refs("PIF").len(), before);
        let pif = pool
            .call_as(&session, "PIF.db_introduce", params(&pool.host, &network))
            .await
            .expect("introduced");
        let pif = pif.as_str().expect("a ref");
        assert_eq!(pool.text("PIF", pif, "device"), "eth3");
        assert_eq!(pool.text("PIF", pif, "network"), network);
        assert_eq!(
            pool.field("PIF", pif, "currently_attached"),
            Some(Value::Bool(false))
        );
        assert!(
            pool.ref_list("host", &pool.host, "PIFs")
                .contains(&pif.to_owned())
        );
    }
}
