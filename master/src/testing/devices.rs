//! `TestPool` helpers that give VMs devices: NICs, CD drives and disks, made through the API.

use std::collections::BTreeMap;

use api_spec::Value;

use super::TestPool;

impl TestPool {
    /// A halted VM "orig" with a 1 GiB disk at 0, an empty CD drive at 3 and a NIC at 0;
    /// returns the VM and the disk.
    pub async fn vm_with_devices(&self, session: &str) -> (String, String) {
        let vm = self.new_vm(session, "orig").await;
        let (_, vdi) = self.add_disk(session, &vm, "0").await;
        self.add_cd(session, &vm, "3").await;
        self.add_nic(session, &vm, "0").await;
        (vm, vdi)
    }

    /// Gives `vm` a NIC (device `device`) on the management network; returns the VIF.
    pub async fn add_nic(&self, session: &str, vm: &str, device: &str) -> String {
        let network = self.refs("network").remove(0);
        self.add_nic_on(session, vm, device, &network).await
    }

    /// Gives `vm` a NIC (device `device`) on `network`; returns the VIF.
    pub async fn add_nic_on(&self, session: &str, vm: &str, device: &str, network: &str) -> String {
        let empty = Value::Struct(BTreeMap::new());
        let record: BTreeMap<String, Value> = [
            ("device", Value::str(device)),
            ("network", Value::str(network)),
            ("VM", Value::str(vm)),
            ("MAC", Value::String(format!("02:00:00:00:01:{device:0>2}"))),
            ("MTU", Value::Int(1500)),
            ("other_config", empty.clone()),
            ("qos_algorithm_type", Value::str("")),
            ("qos_algorithm_params", empty),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let vif = self
            .call_as(session, "VIF.create", vec![Value::Struct(record)])
            .await
            .expect("the VIF is created");
        vif.as_str().expect("a ref").to_owned()
    }

    /// Gives `vm` an empty CD drive at `device`; returns the VBD.
    pub async fn add_cd(&self, session: &str, vm: &str, device: &str) -> String {
        self.create_vbd(session, vm, device, None).await
    }

    /// A new 1 GiB user disk named `name` in the pool's SR; returns the VDI.
    pub async fn new_disk(&self, session: &str, name: &str) -> String {
        let sr = self.refs("SR").remove(0);
        self.new_disk_on(session, name, &sr).await
    }

    /// A new 1 GiB user disk named `name` in `sr`; returns the VDI.
    pub async fn new_disk_on(&self, session: &str, name: &str, sr: &str) -> String {
        let record = fields(&[
            ("name_label", Value::str(name)),
            ("SR", Value::str(sr)),
            ("virtual_size", Value::Int(1 << 30)),
            ("type", Value::str("user")),
            ("sharable", Value::Bool(false)),
            ("read_only", Value::Bool(false)),
            ("other_config", Value::Struct(BTreeMap::new())),
        ]);
        let vdi = self
            .call_as(session, "VDI.create", vec![record])
            .await
            .expect("the VDI is created");
        vdi.as_str().expect("a ref").to_owned()
    }

    /// A new file SR at `location` whose PBD is on `host` (attached); returns the SR.
    pub async fn new_file_sr(&self, session: &str, host: &str, location: &str) -> String {
        let args = sr_create_args(host, "file", location, false);
        let sr = self.call_as(session, "SR.create", args).await;
        sr.expect("the SR is created")
            .as_str()
            .expect("a ref")
            .to_owned()
    }

    /// Gives `vm` a new 1 GiB disk (`new_disk`) in a read-write VBD at `device`; returns the
    /// VBD and the VDI.
    pub async fn add_disk(&self, session: &str, vm: &str, device: &str) -> (String, String) {
        let sr = self.refs("SR").remove(0);
        self.add_disk_on(session, vm, device, &sr).await
    }

    /// Gives `vm` a new 1 GiB disk in `sr` in a read-write VBD at `device`; returns the VBD
    /// and the VDI.
    pub async fn add_disk_on(
        &self,
        session: &str,
        vm: &str,
        device: &str,
        sr: &str,
    ) -> (String, String) {
        let vdi = self
            .new_disk_on(session, &format!("disk {device}"), sr)
            .await;
        let vbd = self.create_vbd(session, vm, device, Some(&vdi)).await;
        (vbd, vdi)
    }

    /// `VBD.create` for `vm` at `device`: a read-write disk of `vdi` (bootable at device 0),
    /// or an empty read-only CD drive when `vdi` is `None`; returns the VBD.
    async fn create_vbd(&self, session: &str, vm: &str, device: &str, vdi: Option<&str>) -> String {
        let empty = Value::Struct(BTreeMap::new());
        let (mode, kind) = if vdi.is_some() {
            ("RW", "Disk")
        } else {
            ("RO", "CD")
        };
        let record = fields(&[
            ("VM", Value::str(vm)),
            ("VDI", Value::str(vdi.unwrap_or(api_spec::NULL_REF))),
            ("userdevice", Value::str(device)),
            ("bootable", Value::Bool(vdi.is_some() && device == "0")),
            ("mode", Value::str(mode)),
            ("type", Value::str(kind)),
            ("empty", Value::Bool(vdi.is_none())),
            ("other_config", empty.clone()),
            ("qos_algorithm_type", Value::str("")),
            ("qos_algorithm_params", empty),
        ]);
        let vbd = self
            .call_as(session, "VBD.create", vec![record])
            .await
            .expect("the VBD is created");
        vbd.as_str().expect("a ref").to_owned()
    }
}

/// A record (a struct value) of `pairs`.
fn fields(pairs: &[(&str, Value)]) -> Value {
    Value::Struct(
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect(),
    )
}

/// The arguments of `SR.create` for an SR of `sr_type` at `location` on `host`.
pub fn sr_create_args(host: &str, sr_type: &str, location: &str, shared: bool) -> Vec<Value> {
    let config = BTreeMap::from([("location".to_owned(), Value::str(location))]);
    vec![
        Value::str(host),
        Value::Struct(config),
        Value::Int(0),
        Value::str("library"),
        Value::str(""),
        Value::str(sr_type),
        Value::str("user"),
        Value::Bool(shared),
        Value::Struct(BTreeMap::new()),
    ]
}
