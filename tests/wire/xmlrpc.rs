//! XML-RPC on the wire against a real `oxapi`: xapi's envelope and quirks, its errors, and hostile
//! bodies.

use api_spec::Value;
use api_spec::codec::{Limits, xmlrpc};
use oxapi_tests::client::RawReply;
use oxapi_tests::{Client, Host, Protocol, logged_in};

fn call_body(method: &str, params: &[&str]) -> Vec<u8> {
    let params: String = params
        .iter()
        .map(|p| format!("<param>{p}</param>"))
        .collect();
    format!(
        "<?xml version=\"1.0\"?><methodCall><methodName>{method}</methodName><params>{params}</params></methodCall>"
    )
    .into_bytes()
}

/// POSTs the call `method(params…)` to `/`, each param written as given.
async fn post_call(client: &Client, method: &str, params: &[&str]) -> RawReply {
    client
        .post_raw("/", "text/xml", call_body(method, params))
        .await
}

fn string(s: &str) -> String {
    format!("<value><string>{s}</string></value>")
}

fn untyped(s: &str) -> String {
    format!("<value>{s}</value>")
}

fn error_of(reply: &oxapi_tests::client::RawReply) -> Vec<String> {
    match xmlrpc::decode_response(&reply.body, &Limits::default()) {
        Ok(Err(e)) => e.description(),
        other => panic!("expected a XenAPI failure, got {other:?}: {}", reply.text()),
    }
}

async fn first_ref(client: &Client, class: &str) -> String {
    let all = client.ok(&format!("{class}.get_all"), vec![]).await;
    all.as_array()
        .and_then(|a| a.first())
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no {class} in a new pool"))
        .to_owned()
}

/// A login with untyped strings gets xapi's Status/Value struct, as text/xml with CORS.
#[tokio::test]
async fn login_reply_is_xapis_envelope_with_an_untyped_ref() {
    let host = Host::start();
    let client = Client::new(&host, Protocol::XmlRpc);
    let reply = post_call(
        &client,
        "session.login_with_password",
        &[&untyped("root"), &untyped(&host.password)],
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.content_type, "text/xml");
    assert_eq!(reply.allow_origin.as_deref(), Some("*"));
    let text = reply.text();
    assert!(
        text.contains("<member><name>Status</name><value>Success</value></member>"),
        "{text}"
    );
    assert!(
        text.contains("<member><name>Value</name><value>OpaqueRef:"),
        "{text}"
    );
}

/// int64 values travel as untyped strings and datetimes without dashes, as xapi sends them.
#[tokio::test]
async fn int64_is_an_untyped_string_and_datetimes_have_no_dashes() {
    let host = Host::start();
    let client = logged_in(&host, Protocol::XmlRpc).await;
    let session = client.session.clone().expect("logged in");
    let metrics = first_ref(&client, "host_metrics").await;
    let reply = post_call(
        &client,
        "host_metrics.get_memory_total",
        &[&untyped(&session), &untyped(&metrics)],
    )
    .await;
    let text = reply.text();
    let value = text
        .split("<name>Value</name><value>")
        .nth(1)
        .and_then(|rest| rest.split("</value>").next())
        .unwrap_or_else(|| panic!("no Value in {text}"));
    assert!(
        !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()),
        "memory_total should be an untyped decimal string, got {value:?}"
    );
    let reply = post_call(
        &client,
        "session.get_last_active",
        &[&untyped(&session), &untyped(&session)],
    )
    .await;
    let text = reply.text();
    let stamp = text
        .split("<dateTime.iso8601>")
        .nth(1)
        .and_then(|rest| rest.split("</dateTime.iso8601>").next())
        .unwrap_or_else(|| panic!("no datetime in {text}"));
    assert_eq!(stamp.len(), 18, "{stamp}");
    assert!(stamp.ends_with('Z') && !stamp.contains('-'), "{stamp}");
}

/// Trailing parameters with defaults may be left out: login takes 2, 3 or 4 parameters.
#[tokio::test]
async fn login_accepts_two_three_or_four_parameters_and_no_other_count() {
    let host = Host::start();
    let client = Client::new(&host, Protocol::XmlRpc);
    let pw = host.password.clone();
    for params in [
        vec!["root", pw.as_str()],
        vec!["root", pw.as_str(), "1.0"],
        vec!["root", pw.as_str(), "1.0", "test-suite"],
    ] {
        let params = params.into_iter().map(Value::str).collect();
        let session = client
            .call_raw("session.login_with_password", params)
            .await
            .expect("login");
        assert!(
            session
                .as_str()
                .is_some_and(|s| s.starts_with("OpaqueRef:"))
        );
    }
    let err = client
        .call_raw("session.login_with_password", vec![Value::str("root")])
        .await
        .expect_err("one parameter is too few");
    assert_eq!(
        err.description(),
        [
            "MESSAGE_PARAMETER_COUNT_MISMATCH",
            "session.login_with_password",
            "2",
            "1"
        ]
    );
}

/// Arity, unknown methods, wrong types, unknown refs and uuids get xapi's error codes.
#[tokio::test]
async fn bad_calls_get_xapis_error_codes() {
    let host = Host::start();
    let client = logged_in(&host, Protocol::XmlRpc).await;
    let vm = first_ref(&client, "VM").await;

    let err = client
        .call("VM.get_record", vec![Value::str(&vm), Value::str("extra")])
        .await
        .expect_err("too many parameters");
    assert_eq!(
        err.description(),
        [
            "MESSAGE_PARAMETER_COUNT_MISMATCH",
            "VM.get_record",
            "1",
            "2"
        ]
    );

    let err = client
        .call("VM.no_such_message", vec![])
        .await
        .expect_err("unknown method");
    assert_eq!(
        err.description(),
        ["MESSAGE_METHOD_UNKNOWN", "VM.no_such_message"]
    );

    let err = client
        .call(
            "VM.set_name_label",
            vec![Value::str(&vm), Value::Array(vec![])],
        )
        .await
        .expect_err("an array is not a string");
    assert_eq!(err.code, "FIELD_TYPE_ERROR");

    let err = client
        .call("VM.get_record", vec![Value::str("OpaqueRef:no-such-vm")])
        .await
        .expect_err("unknown ref");
    assert_eq!(
        err.description(),
        ["HANDLE_INVALID", "VM", "OpaqueRef:no-such-vm"]
    );

    let err = client
        .call("VM.get_by_uuid", vec![Value::str("not-a-uuid")])
        .await
        .expect_err("unknown uuid");
    assert_eq!(err.description(), ["UUID_INVALID", "VM", "not-a-uuid"]);
}

/// A wrong password and a logged-out session get SESSION_AUTHENTICATION_FAILED and SESSION_INVALID.
#[tokio::test]
async fn wrong_password_and_logged_out_session_are_refused() {
    let host = Host::start();
    let client = Client::new(&host, Protocol::XmlRpc);
    let err = client
        .call_raw(
            "session.login_with_password",
            vec![Value::str("root"), Value::str("wrong")],
        )
        .await
        .expect_err("wrong password");
    assert_eq!(err.code, "SESSION_AUTHENTICATION_FAILED");

    let client = logged_in(&host, Protocol::XmlRpc).await;
    client.ok("session.logout", vec![]).await;
    let err = client
        .call("pool.get_all", vec![])
        .await
        .expect_err("logged out");
    assert_eq!(err.code, "SESSION_INVALID");
}

/// `system.listMethods` answers without the Status/Value envelope, as xapi does.
#[tokio::test]
async fn list_methods_is_sent_raw() {
    let host = Host::start();
    let client = Client::new(&host, Protocol::XmlRpc);
    let reply = post_call(&client, "system.listMethods", &[]).await;
    let text = reply.text();
    assert!(!text.contains("<name>Status</name>"), "{text}");
    let value = xmlrpc::decode_response(&reply.body, &Limits::default())
        .expect("decodes")
        .expect("a value");
    let names: Vec<&str> = value
        .as_array()
        .expect("an array")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for name in [
        "session.login_with_password",
        "VM.get_record",
        "VM.get_all_records_where",
        "event.from",
        "task.cancel",
        "pool.get_all_records",
    ] {
        assert!(names.contains(&name), "{name} missing from listMethods");
    }
}

/// Any POST path other than /jsonrpc speaks XML-RPC (xapi's / , /RPC2, XO's /xmlrpc).
#[tokio::test]
async fn every_other_post_path_speaks_xmlrpc() {
    let host = Host::start();
    let client = Client::new(&host, Protocol::XmlRpc);
    let body = call_body(
        "session.login_with_password",
        &[&string("root"), &string(&host.password)],
    );
    for path in ["/RPC2", "/xmlrpc", "/some/other/path"] {
        let reply = client.post_raw(path, "text/xml", body.clone()).await;
        assert_eq!(reply.status, 200, "{path}");
        let value = xmlrpc::decode_response(&reply.body, &Limits::default())
            .expect("decodes")
            .expect("logged in");
        assert!(value.as_str().is_some_and(|s| s.starts_with("OpaqueRef:")));
    }
}

/// Entity and character references in requests decode, and replies escape what they must.
#[tokio::test]
async fn entities_and_character_references_round_trip() {
    let host = Host::start();
    let client = logged_in(&host, Protocol::XmlRpc).await;
    let session = client.session.clone().expect("logged in");
    let pool = first_ref(&client, "pool").await;
    let reply = post_call(
        &client,
        "pool.set_name_label",
        &[
            &untyped(&session),
            &untyped(&pool),
            &untyped("a&lt;b&gt;c&amp;d&quot;e&apos;f&#233;&#x2603;"),
        ],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let label = client
        .ok("pool.get_name_label", vec![Value::str(&pool)])
        .await;
    assert_eq!(label.as_str(), Some("a<b>c&d\"e'f\u{e9}\u{2603}"));
    let reply = post_call(
        &client,
        "pool.get_name_label",
        &[&untyped(&session), &untyped(&pool)],
    )
    .await;
    assert!(
        reply.text().contains("a&lt;b&gt;c&amp;d"),
        "{}",
        reply.text()
    );
}

/// `Async.` calls return a task at once; the task ends with the XML-RPC text of the result.
#[tokio::test]
async fn async_call_returns_a_task_whose_result_is_xmlrpc_text() {
    let host = Host::start();
    let client = logged_in(&host, Protocol::XmlRpc).await;
    let template = oxapi_tests::vms::default_template(&client).await;
    let token = client
        .ok(
            "event.from",
            vec![
                Value::Array(vec![Value::str("task")]),
                Value::str(""),
                Value::Float(0.0),
            ],
        )
        .await;
    let mut token = token.as_struct().expect("a struct")["token"].clone();
    let task = client
        .ok(
            "Async.VM.clone",
            vec![Value::str(&template), Value::str("async clone")],
        )
        .await;
    let task = task.as_str().expect("a task ref").to_owned();
    assert!(task.starts_with("OpaqueRef:"));
    // Wait for the task to finish by watching its events, not by sleeping.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        assert!(std::time::Instant::now() < deadline, "task never finished");
        let status = client.ok("task.get_status", vec![Value::str(&task)]).await;
        if status.as_str() != Some("pending") {
            assert_eq!(status.as_str(), Some("success"));
            break;
        }
        let batch = client
            .ok(
                "event.from",
                vec![
                    Value::Array(vec![Value::str(format!("task/{task}"))]),
                    token.clone(),
                    Value::Float(5.0),
                ],
            )
            .await;
        token = batch.as_struct().expect("a struct")["token"].clone();
    }
    let result = client.ok("task.get_result", vec![Value::str(&task)]).await;
    let result = result.as_str().expect("result text");
    let clone = xmlrpc::decode_value(result, &Limits::default()).expect("XML-RPC value text");
    let clone = clone.as_str().expect("a VM ref");
    let name = client
        .ok("VM.get_name_label", vec![Value::str(clone)])
        .await;
    assert_eq!(name.as_str(), Some("async clone"));
}

/// Malformed bodies get HTTP 500 with a readable XenAPI failure, and the host keeps serving.
#[tokio::test]
async fn malformed_bodies_get_a_failure_and_the_host_survives() {
    let host = Host::start();
    let client = Client::new(&host, Protocol::XmlRpc);
    let deep = format!(
        "<?xml version=\"1.0\"?><methodCall><methodName>x</methodName><params><param>{}{}</param></params></methodCall>",
        "<value><array><data>".repeat(100_000),
        "</data></array></value>".repeat(100_000)
    );
    let bomb = "<?xml version=\"1.0\"?><!DOCTYPE m [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\">]><methodCall><methodName>&b;</methodName></methodCall>";
    let bodies: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("not xml", b"hello".to_vec()),
        (
            "unclosed",
            b"<methodCall><methodName>x</methodName>".to_vec(),
        ),
        (
            "no method name",
            b"<?xml version=\"1.0\"?><methodCall><params/></methodCall>".to_vec(),
        ),
        (
            "bad utf-8",
            b"<methodCall><methodName>\xff\xfe</methodName></methodCall>".to_vec(),
        ),
        ("deep nesting", deep.into_bytes()),
        ("entity bomb", bomb.as_bytes().to_vec()),
    ];
    for (what, body) in bodies {
        let reply = client.post_raw("/", "text/xml", body).await;
        assert_eq!(reply.status, 500, "{what}: {}", reply.text());
        let err = error_of(&reply);
        assert_eq!(err[0], "INTERNAL_ERROR", "{what}");
    }
    let huge = vec![b'a'; 17 * 1024 * 1024];
    let reply = client.post_raw("/", "text/xml", huge).await;
    assert_eq!(reply.status, 413);
    let login = client
        .call_raw(
            "session.login_with_password",
            vec![Value::str("root"), Value::str(&host.password)],
        )
        .await;
    assert!(login.is_ok(), "the host still serves after hostile bodies");
}

/// A struct naming a member twice is refused, not read with the last one winning, and nothing
/// is stored.
#[tokio::test]
async fn a_struct_naming_a_member_twice_is_refused() {
    let host = Host::start();
    let client = logged_in(&host, Protocol::XmlRpc).await;
    let session = client.session.clone().expect("logged in");
    let pool = first_ref(&client, "pool").await;
    let twice = "<value><struct><member><name>k</name><value>1</value></member>\
                 <member><name>k</name><value>2</value></member></struct></value>";
    let reply = post_call(
        &client,
        "pool.set_other_config",
        &[&untyped(&session), &untyped(&pool), twice],
    )
    .await;
    assert_eq!(reply.status, 500, "{}", reply.text());
    assert_eq!(error_of(&reply)[0], "INTERNAL_ERROR");
    let other_config = client
        .ok("pool.get_other_config", vec![Value::str(&pool)])
        .await;
    let other_config = other_config.as_struct().expect("a map");
    assert!(!other_config.contains_key("k"), "{other_config:?}");
}

/// A string holding a NUL or another character XML 1.0 forbids, raw or as a character
/// reference, is refused, and nothing is stored.
#[tokio::test]
async fn strings_with_characters_xml_forbids_are_refused() {
    let host = Host::start();
    let client = logged_in(&host, Protocol::XmlRpc).await;
    let session = client.session.clone().expect("logged in");
    let pool = first_ref(&client, "pool").await;
    for text in ["a\u{0}b", "&#1;", "\u{1b}[0m", "x\u{fffe}", "&#xFFFF;"] {
        let reply = post_call(
            &client,
            "pool.set_name_label",
            &[&untyped(&session), &untyped(&pool), &string(text)],
        )
        .await;
        assert_eq!(reply.status, 500, "{text:?}: {}", reply.text());
        assert_eq!(error_of(&reply)[0], "INTERNAL_ERROR", "{text:?}");
    }
    let label = client
        .ok("pool.get_name_label", vec![Value::str(&pool)])
        .await;
    assert_eq!(label.as_str(), Some(""), "nothing was stored");
}
