//! `xe`'s generic commands against a real `oxapi`: `<class>-list` and `-param-*`, derived from
//! api-spec for every class, in xe's output format (snapshots with the uuids masked), with
//! `--minimal`, `--json`, `params=` and filters; and `xe help`.

mod support;

use api_spec::Value;
use oxapi_tests::{Host, Protocol, logged_in};
use support::{Xe, mask_uuids};

/// The default templates, listed as xe lists them: sorted records, xe's alignment, two blank
/// lines after each.
const TEMPLATE_LIST: &str = "\
uuid ( RO)                : <uuid>
          name-label ( RW): Debian Bookworm 12
    name-description ( RW): Clones of this template will automatically provision their storage when first booted and then reconfigure themselves with the optimal settings


uuid ( RO)                : <uuid>
          name-label ( RW): Generic Linux UEFI
    name-description ( RW): Template for Linux distributions that boot with UEFI firmware


uuid ( RO)                : <uuid>
          name-label ( RW): Other install media
    name-description ( RW): Template which allows VM installation from install media


uuid ( RO)                : <uuid>
          name-label ( RW): Ubuntu Noble Numbat 24.04
    name-description ( RW): Clones of this template will automatically provision their storage when first booted and then reconfigure themselves with the optimal settings


";

/// `template-list` prints the templates in xe's record layout.
#[test]
fn template_list_prints_xe_records() {
    let host = Host::start();
    let xe = Xe::new(&host);
    assert_eq!(mask_uuids(&xe.ok(&["template-list"])), TEMPLATE_LIST);
}

/// `vm-list` shows VMs (the control domain here) but not templates, with xe's columns.
#[test]
fn vm_list_hides_templates_and_shows_power_state() {
    let host = Host::start();
    let xe = Xe::new(&host);
    let out = mask_uuids(&xe.ok(&["vm-list"]));
    assert!(
        out.starts_with(
            "uuid ( RO)           : <uuid>\n     name-label ( RW): Control domain on host: "
        ),
        "{out}"
    );
    assert!(
        out.ends_with("\n    power-state ( RO): running\n\n\n"),
        "{out}"
    );
    assert_eq!(out.matches("uuid ( RO)").count(), 1, "{out}");
    let templates = xe.minimal(&["vm-list", "is-a-template=true", "params=name-label"]);
    assert_eq!(
        templates,
        "Debian Bookworm 12,Generic Linux UEFI,Other install media,Ubuntu Noble Numbat 24.04"
    );
}

/// A message's `-param-list` shows every field with its marker, enums in lower case and
/// references as uuids.
#[tokio::test]
async fn message_param_list_shows_every_field_with_its_marker() {
    let host = Host::start();
    let xe = Xe::new(&host);
    let client = logged_in(&host, Protocol::JsonRpc).await;
    let pool = xe.minimal(&["pool-list"]);
    client
        .ok(
            "message.create",
            vec![
                Value::str("TEST_ALERT"),
                Value::Int(3),
                Value::str("Pool"),
                Value::str(pool.as_str()),
                Value::str("disk on fire"),
            ],
        )
        .await;
    let uuid = xe.minimal(&["message-list"]);
    let time = xe.ok(&[
        "message-param-get",
        &format!("uuid={uuid}"),
        "param-name=timestamp",
    ]);
    let out = xe.ok(&["message-param-list", &format!("uuid={uuid}")]);
    let out = mask_uuids(&out.replace(time.trim(), "<time>"));
    assert_eq!(
        out,
        "\
uuid ( RO)         : <uuid>
         name ( RO): TEST_ALERT
     priority ( RO): 3
          cls ( RO): pool
     obj-uuid ( RO): <uuid>
    timestamp ( RO): <time>
         body ( RO): disk on fire


"
    );
    let obj = xe.ok(&[
        "message-param-get",
        &format!("uuid={uuid}"),
        "param-name=obj-uuid",
    ]);
    assert_eq!(obj.trim(), pool);
}

/// A template's `-param-list` aligns every field of VM and marks sets, maps and setters.
#[test]
fn template_param_list_marks_sets_maps_and_writable_fields() {
    let host = Host::start();
    let xe = Xe::new(&host);
    let uuid = xe.minimal(&["template-list", "name-label=Other install media"]);
    let out = xe.ok(&["template-param-list", &format!("uuid={uuid}")]);
    for line in [
        format!("uuid ( RO)                             : {uuid}\n"),
        "                       name-label ( RW): Other install media\n".to_owned(),
        "                      power-state ( RO): halted\n".to_owned(),
        "                    is-a-template ( RW): true\n".to_owned(),
        "                        VCPUs-max ( RW): 1\n".to_owned(),
        "                      resident-on ( RO): <not in database>\n".to_owned(),
        "                             tags (SRW): \n".to_owned(),
        "                   other-config (MRW): ".to_owned(),
        "               allowed-operations (SRO): ".to_owned(),
    ] {
        assert!(out.contains(&line), "missing {line:?} in:\n{out}");
    }
    assert!(out.ends_with("\n\n\n"), "{out}");
}

/// `--minimal`, `params=`, filters and `--json` choose and shape what is printed.
#[test]
fn minimal_params_filters_and_json_shape_the_output() {
    let host = Host::start();
    let xe = Xe::new(&host);
    let other = xe.minimal(&["template-list", "name-label=Other install media"]);
    assert_eq!(other.len(), 36, "{other}");
    let names = xe.minimal(&["template-list", "params=name-label", "VCPUs-max=2"]);
    assert_eq!(names, "Generic Linux UEFI,Ubuntu Noble Numbat 24.04");
    let json = xe.ok(&[
        "template-list",
        "params=name-label,VCPUs-max,tags,other-config",
        "name-label=Other install media",
        "--json",
    ]);
    let json: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    let template = &json[0];
    assert_eq!(template["name-label"], "Other install media");
    assert!(template["VCPUs-max"].is_i64(), "{template}");
    assert!(template["tags"].is_array(), "{template}");
    assert!(template["other-config"].is_object(), "{template}");
    assert!(template.get("uuid").is_none(), "{template}");
    let err = xe.fails(&["vm-list", "params=colour"]);
    assert!(err.contains("no parameter 'colour'"), "{err}");
    let err = xe.fails(&["vm-list", "colour=red"]);
    assert!(err.contains("unknown parameter: colour"), "{err}");
}

/// `-param-set`, `-param-get`, `-param-add`, `-param-remove` and `-param-clear` change and
/// read fields, map entries and set members; read-only fields are refused.
#[test]
fn param_commands_change_fields_maps_and_sets() {
    let host = Host::start();
    let xe = Xe::new(&host);
    let vm = xe.install("params");
    let uuid = format!("uuid={vm}");
    let get = |name: &str| {
        let out = xe.ok(&["vm-param-get", &uuid, &format!("param-name={name}")]);
        out.trim_end_matches('\n').to_owned()
    };
    xe.ok(&[
        "vm-param-set",
        &uuid,
        "name-description=a test VM",
        "other-config:owner=alice",
        "VCPUs-max=2",
    ]);
    assert_eq!(get("name-description"), "a test VM");
    assert_eq!(get("VCPUs-max"), "2");
    let owner = xe.ok(&[
        "vm-param-get",
        &uuid,
        "param-name=other-config",
        "param-key=owner",
    ]);
    assert_eq!(owner, "alice\n");
    xe.ok(&["vm-param-set", &uuid, "other-config:owner=bob"]);
    assert!(get("other-config").contains("owner: bob"));
    xe.ok(&["vm-param-add", &uuid, "param-name=tags", "param-key=web"]);
    xe.ok(&["vm-param-add", &uuid, "param-name=tags", "param-key=db"]);
    assert_eq!(get("tags"), "web; db");
    xe.ok(&["vm-param-remove", &uuid, "param-name=tags", "param-key=web"]);
    assert_eq!(get("tags"), "db");
    xe.ok(&[
        "vm-param-add",
        &uuid,
        "param-name=other-config",
        "k1=v1",
        "k2=v2",
    ]);
    assert!(get("other-config").contains("k1: v1; k2: v2"));
    xe.ok(&[
        "vm-param-remove",
        &uuid,
        "param-name=other-config",
        "param-key=k1",
    ]);
    assert!(!get("other-config").contains("k1"));
    xe.ok(&["vm-param-clear", &uuid, "param-name=other-config"]);
    assert_eq!(get("other-config"), "");
    xe.ok(&["vm-param-set", &uuid, "actions-after-shutdown=Restart"]);
    assert_eq!(get("actions-after-shutdown"), "restart");
    let err = xe.fails(&["vm-param-set", &uuid, "power-state=running"]);
    assert!(err.contains("power-state of vm cannot be changed"), "{err}");
    let err = xe.fails(&["vm-param-set", &uuid, "VCPUs-max=many"]);
    assert!(err.contains("invalid value for VCPUs-max"), "{err}");
    let err = xe.fails(&["vm-param-set", &uuid, "actions-after-crash=explode"]);
    assert!(
        err.contains("is not one of destroy, coredump_and_destroy"),
        "{err}"
    );
    let err = xe.fails(&["vm-param-get", &uuid]);
    assert!(err.contains("missing parameter: param-name"), "{err}");
}

/// A reference is set by the uuid of its object; a wrong uuid is the server's UUID_INVALID,
/// printed with its parameters named.
#[test]
fn references_are_set_by_uuid_and_bad_ones_are_the_servers_error() {
    let host = Host::start();
    let xe = Xe::new(&host);
    let vm = xe.install("affine");
    let uuid = format!("uuid={vm}");
    let host_uuid = xe.minimal(&["host-list"]);
    xe.ok(&["vm-param-set", &uuid, &format!("affinity={host_uuid}")]);
    let got = xe.ok(&["vm-param-get", &uuid, "param-name=affinity"]);
    assert_eq!(got.trim(), host_uuid);
    let err = xe.fails(&["vm-param-set", &uuid, &format!("affinity={vm}")]);
    assert!(
        err.starts_with("error: the server refused host.get_by_uuid: UUID_INVALID\n"),
        "{err}"
    );
    assert!(err.contains(&format!("  uuid: {vm}\n")), "{err}");
}

/// `xe help` lists the operation commands, `help --all --minimal` every command, and
/// `help <command>` its parameters; an unknown command is named.
#[test]
fn help_lists_and_describes_commands() {
    let host = Host::start();
    let xe = Xe::new(&host);
    let out = xe.ok(&["help"]);
    assert!(out.starts_with("Usage: xe <command>"), "{out}");
    assert!(
        out.contains("vm-start") && !out.contains("vm-param-list "),
        "{out}"
    );
    let all = xe.ok(&["help", "--all", "--minimal"]);
    let names: Vec<&str> = all.trim().split(',').collect();
    for name in ["vm-param-list", "host-cpu-list", "event-wait", "pool-join"] {
        assert!(names.contains(&name), "{name} missing from {all}");
    }
    let out = xe.ok(&["help", "vm-install"]);
    assert!(
        out.contains("reqd params     : template, new-name-label"),
        "{out}"
    );
    let err = xe.fails(&["help", "vm-explode"]);
    assert!(err.contains("unknown command 'vm-explode'"), "{err}");
    let err = xe.fails(&["vm-explode"]);
    assert!(err.contains("unknown command 'vm-explode'"), "{err}");
}
