//! The pool DB of a new one-host pool: the pool row and its membership keys, this host with its
//! metrics and CPUs, the default network and its PIF, a local SR and its PBD, the control
//! domain and a few templates; and the rows a joining host brings to an existing pool.

mod host;
mod templates;

use std::collections::BTreeMap;

use api_spec::{Value, api};
use db_schema::{Db, Op, Precondition, Txn};
use serde::{Deserialize, Serialize};

use crate::call::session::{ROOT_PASSWORD_HASH, hash_password};
use crate::db::record::{self, new_ref};
use crate::pool::control::{POOL_EPOCH, POOL_SECRET, PoolMember, put_member};

/// What `member` reads from the machine, so that the master can describe it. A joiner sends
/// its facts to the master.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostFacts {
    pub hostname: String,
    /// The management address (the IP the XenAPI listens on).
    pub address: String,
    pub memory_total_bytes: u64,
    pub cpus: Vec<CpuFacts>,
    /// The network interface the management address belongs to, e.g. `eth0` (or `lo`).
    pub management_device: String,
    /// The MAC address of that interface, `""` when unknown.
    pub management_mac: String,
    /// Where the local SR keeps its disks.
    pub local_sr_path: String,
    /// Bytes of space the local SR's filesystem holds, and bytes in use.
    pub local_sr_size_bytes: u64,
    pub local_sr_used_bytes: u64,
}

/// One logical CPU, from /proc/cpuinfo.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CpuFacts {
    pub number: u32,
    pub vendor: String,
    pub model_name: String,
    pub family: u32,
    pub model: u32,
    pub stepping: String,
    pub speed_mhz: u64,
    pub flags: String,
}

/// The refs a new pool's first host is known by, chosen by `member` and kept in its identity
/// file.
#[derive(Debug, Clone, PartialEq)]
pub struct FirstHost {
    pub host_ref: String,
    pub host_uuid: String,
}

/// The membership keys of a new pool: its secret and epoch, chosen by `member` from its random
/// source, and the first host's member entry.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolKeys {
    /// 64 lowercase hex characters.
    pub pool_secret: String,
    /// A uuid.
    pub pool_epoch: String,
    pub first_member: PoolMember,
}

/// The root password of a new pool: given by the operator, or kept (as its argon2 hash) from
/// the pool a host was ejected from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RootPassword<'a> {
    Plain(&'a str),
    Hash(&'a str),
}

/// The Txn that fills an empty DB with a new one-host pool. A plain root password is stored
/// only as an argon2 hash. Every row is created after the rows it points at; fields not given
/// here take the spec's defaults; `allowed_operations` are computed as on any other Txn.
pub fn new_pool(
    facts: &HostFacts,
    first: &FirstHost,
    keys: &PoolKeys,
    now_unix: i64,
    root_password: RootPassword<'_>,
) -> Txn {
    let mut pool = PoolTxn::default();
    let now = Value::DateTime(api_spec::datetime::format_unix(now_unix));
    let host = first.host_ref.as_str();
    let cpu_count = facts.cpus.len().max(1);

    let network = host::management_network(&mut pool, facts);
    let sr = host::host_rows(&mut pool, facts, host, &first.host_uuid, &network, now_unix);
    for template in templates::DEFAULT_TEMPLATES {
        let metrics = pool.create("VM_metrics", [("last_updated", now.clone())]);
        pool.create("VM", template.fields(metrics));
    }
    pool.create(
        "pool",
        [
            ("name_label", Value::str("")),
            ("master", Value::str(host)),
            ("default_SR", Value::str(sr.as_str())),
            ("suspend_image_SR", Value::str(sr.as_str())),
            ("crash_dump_SR", Value::str(sr.as_str())),
            (
                "cpu_info",
                strings([
                    ("cpu_count", cpu_count.to_string()),
                    ("vendor", first_cpu(facts, |c| c.vendor.clone())),
                ]),
            ),
        ],
    );
    let hash = match root_password {
        RootPassword::Plain(password) => hash_password(password)
            .expect("argon2 with its default parameters hashes any password shorter than 4 GiB"),
        RootPassword::Hash(hash) => hash.to_owned(),
    };
    pool.txn.ops.push(Op::PutInternal {
        key: ROOT_PASSWORD_HASH.to_owned(),
        value: Value::String(hash),
    });
    pool.txn.ops.extend([
        Op::PutInternal {
            key: POOL_SECRET.to_owned(),
            value: Value::str(keys.pool_secret.as_str()),
        },
        Op::PutInternal {
            key: POOL_EPOCH.to_owned(),
            value: Value::str(keys.pool_epoch.as_str()),
        },
        put_member(&keys.first_member),
    ]);
    crate::vm::operations::complete(&Db::new(), pool.txn)
}

/// The Txn that adds a joining host to the pool in `db`: its rows as a first host would have
/// them, its management PIF on the pool's management network, and its member entry. It fails
/// at apply time if the host ref is taken (a racing join of the same host).
pub fn joining_host(
    db: &Db,
    facts: &HostFacts,
    member: &PoolMember,
    host_uuid: &str,
    now_unix: i64,
) -> Txn {
    let mut pool = PoolTxn::default();
    pool.txn.preconditions.push(Precondition::Absent {
        class: "host".to_owned(),
        r#ref: member.host.clone(),
    });
    let network = match management_network_of(db) {
        Some(network) => network,
        None => host::management_network(&mut pool, facts),
    };
    host::host_rows(
        &mut pool,
        facts,
        &member.host,
        host_uuid,
        &network,
        now_unix,
    );
    pool.txn.ops.push(put_member(member));
    crate::vm::operations::complete(db, pool.txn)
}

/// The pool's root password hash, which an ejected host keeps for its new pool.
pub fn root_password_hash(db: &Db) -> Option<String> {
    db.internal(ROOT_PASSWORD_HASH)
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// The network of the pool master's management PIF.
fn management_network_of(db: &Db) -> Option<String> {
    let master = db.rows("pool").next()?.1.str("master").to_owned();
    db.rows("PIF")
        .find(|(_, pif)| {
            pif.str("host") == master && pif.get("management") == Some(&Value::Bool(true))
        })
        .map(|(_, pif)| pif.str("network").to_owned())
        .filter(|network| db.get("network", network).is_some())
}

/// The Txn being built, one created row at a time.
#[derive(Default)]
struct PoolTxn {
    txn: Txn,
}

impl PoolTxn {
    /// Creates a row with a fresh ref and uuid; returns the ref.
    fn create<'a>(
        &mut self,
        class: &str,
        fields: impl IntoIterator<Item = (&'a str, Value)>,
    ) -> String {
        let r = new_ref();
        self.create_as(class, &r, fields);
        r
    }

    /// Creates the row `r`, with a fresh uuid unless `fields` gives one.
    fn create_as<'a>(
        &mut self,
        class: &str,
        r: &str,
        fields: impl IntoIterator<Item = (&'a str, Value)>,
    ) {
        let mut given: BTreeMap<String, Value> = fields
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value))
            .collect();
        given
            .entry("uuid".to_owned())
            .or_insert_with(|| Value::String(record::new_uuid()));
        let fields = match api().class(class) {
            Some(declared) => record::new_row(declared, given),
            None => given,
        };
        self.txn.ops.push(Op::Create {
            class: class.to_owned(),
            r#ref: r.to_owned(),
            fields,
        });
    }
}

/// An int field from a count of bytes or a speed.
fn int(n: u64) -> Value {
    Value::Int(i64::try_from(n).unwrap_or(i64::MAX))
}

/// A `(string -> string) map`.
pub(crate) fn strings<K: Into<String>>(pairs: impl IntoIterator<Item = (K, String)>) -> Value {
    Value::Struct(
        pairs
            .into_iter()
            .map(|(k, v)| (k.into(), Value::String(v)))
            .collect(),
    )
}

/// A `string set`.
pub(crate) fn string_set(items: &[&str]) -> Value {
    Value::Array(items.iter().map(|s| Value::str(*s)).collect())
}

fn first_cpu(facts: &HostFacts, get: impl Fn(&CpuFacts) -> String) -> String {
    facts.cpus.first().map(get).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use api_spec::coerce::coerce;

    use super::*;
    use crate::call::session::password_matches;
    use crate::db::record::refs_in;
    use crate::testing::{TEST_ROOT_PASSWORD, TestPool, sample_first_host};

    /// Read through the generic handlers, every ref in every row of a new pool names a live
    /// row (or is null, or names a class without rows).
    #[tokio::test]
    async fn every_ref_of_a_new_pool_points_at_a_live_row() {
        let pool = TestPool::new();
        let session = pool.login().await;
        let mut checked = 0;
        for class in api().classes.iter().filter(|c| c.in_db && c.has_get_all) {
            let method = format!("{}.get_all_records", class.name);
            let records = pool
                .call_as(&session, &method, vec![])
                .await
                .expect(&method);
            for (r, record) in records.as_struct().expect("a map") {
                for field in class.fields {
                    let value = &record.as_struct().expect("a record")[field.name];
                    for (target, target_ref) in refs_in(&field.ty, value) {
                        let is_live = pool.read().get(target, &target_ref).is_some();
                        assert!(
                            is_live,
                            "{}.{} of {r} points at {target_ref}",
                            class.name, field.name
                        );
                        checked += 1;
                    }
                }
            }
        }
        assert!(checked > 20, "only {checked} refs checked");
    }

    /// Every field of every row holds a value of its declared type, in canonical form.
    #[tokio::test]
    async fn every_field_of_a_new_pool_has_its_declared_type() {
        let pool = TestPool::new();
        let db = pool.read();
        for class in api().classes.iter().filter(|c| c.in_db) {
            for (r, row) in db.rows(class.name) {
                for field in class.fields {
                    let value = row.get(field.name).cloned().expect(field.name);
                    assert_eq!(
                        coerce(&field.ty, value.clone()).as_ref(),
                        Ok(&value),
                        "{}.{} of {r}",
                        class.name,
                        field.name
                    );
                }
            }
        }
    }

    /// The new pool has what clients look for: one pool mastered by this host, its running
    /// control domain, an attached local SR as default, the management PIF, default
    /// templates, and the root password as an argon2 hash.
    #[tokio::test]
    async fn new_pool_has_host_control_domain_storage_network_and_templates() {
        let pool = TestPool::new();
        let host = sample_first_host().host_ref;
        let db = pool.read();
        let pools: Vec<_> = db.rows("pool").collect();
        assert_eq!(pools.len(), 1);
        let (_, pool_row) = pools[0];
        assert_eq!(pool_row.str("master"), host);
        let host_row = db.get("host", &host).expect("the host");
        assert_eq!(host_row.str("uuid"), sample_first_host().host_uuid);
        assert_eq!(host_row.str("name_label"), "host1");
        assert_eq!(
            host_row.get("API_version_major"),
            Some(&Value::Int(api_spec::api::API_VERSION_MAJOR))
        );
        let dom0 = db.get("VM", host_row.str("control_domain")).expect("dom0");
        assert_eq!(dom0.str("power_state"), "Running");
        assert_eq!(dom0.str("resident_on"), host);
        assert_eq!(dom0.get("is_control_domain"), Some(&Value::Bool(true)));
        assert_eq!(dom0.str("name_label"), "Control domain on host: host1");
        let sr = db
            .get("SR", pool_row.str("default_SR"))
            .expect("default SR");
        assert_eq!(sr.str("name_label"), "Local storage");
        let pbds = sr.get("PBDs").and_then(Value::as_array).expect("PBDs");
        assert_eq!(pbds.len(), 1);
        let pif = db
            .rows("PIF")
            .map(|(_, row)| row)
            .find(|row| row.get("management") == Some(&Value::Bool(true)))
            .expect("a management PIF");
        assert_eq!(pif.str("IP"), "127.0.0.1");
        assert_eq!(pif.str("host"), host);
        let network = db.get("network", pif.str("network")).expect("its network");
        assert_eq!(network.str("bridge"), "xenbr0");
        let templates = db
            .rows("VM")
            .filter(|(_, row)| row.get("is_default_template") == Some(&Value::Bool(true)))
            .count();
        assert_eq!(templates, templates::DEFAULT_TEMPLATES.len());
        assert_eq!(db.rows("host_cpu").count(), 2);
        let hash = db
            .internal(ROOT_PASSWORD_HASH)
            .and_then(Value::as_str)
            .expect("hash");
        assert!(password_matches(TEST_ROOT_PASSWORD, hash));
    }

    /// The new pool holds its secret, its epoch and its first host's member entry.
    #[tokio::test]
    async fn new_pool_holds_its_membership_keys() {
        let pool = TestPool::new();
        let keys = crate::testing::sample_keys();
        let admission = crate::pool::control::admission(&pool.read()).expect("membership keys");
        assert_eq!(admission.pool_secret, keys.pool_secret);
        assert_eq!(admission.pool_epoch, keys.pool_epoch);
        assert_eq!(admission.members, vec![keys.first_member]);
    }

    /// The new pool's VMs have their allowed operations: a default template may be cloned,
    /// copied, exported and provisioned; the control domain may change its memory.
    #[tokio::test]
    async fn new_pool_vms_have_their_allowed_operations() {
        let pool = TestPool::new();
        let template = pool.read().refs_by_name_label("VM", "Debian Bookworm 12")[0].to_owned();
        assert_eq!(
            pool.allowed("VM", &template),
            [
                "changing_dynamic_range",
                "changing_shadow_memory",
                "changing_static_range",
                "clone",
                "copy",
                "export",
                "provision"
            ]
        );
        let dom0 = pool.text("host", &pool.host, "control_domain");
        assert_eq!(
            pool.allowed("VM", &dom0),
            ["changing_dynamic_range", "changing_static_range"]
        );
    }
}
