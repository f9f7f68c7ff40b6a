//! JSON-RPC 1.0 and 2.0 on the wire against a real `oxapi`: envelopes, ids, errors, hostile
//! bodies.

use oxapi_tests::client::RawReply;
use oxapi_tests::{Client, Host, Protocol};
use serde_json::{Value as Json, json};

async fn post(client: &Client, body: &Json) -> (RawReply, Json) {
    let reply = client
        .post_raw(
            "/jsonrpc",
            "application/json",
            body.to_string().into_bytes(),
        )
        .await;
    let json = serde_json::from_slice(&reply.body)
        .unwrap_or_else(|e| panic!("reply is not JSON ({e}): {}", reply.text()));
    (reply, json)
}

async fn login(client: &Client, host: &Host) -> String {
    let (_, reply) = post(
        client,
        &json!({"jsonrpc": "2.0", "method": "session.login_with_password",
                "params": ["root", host.password], "id": 1}),
    )
    .await;
    reply["result"]
        .as_str()
        .unwrap_or_else(|| panic!("login failed: {reply}"))
        .to_owned()
}

/// Version 2.0 replies echo the id and carry `jsonrpc`, with content type exactly application/json.
#[tokio::test]
async fn v2_reply_echoes_id_and_version() {
    let host = Host::start();
    let client = Client::new(&host, Protocol::JsonRpc);
    for id in [json!(7), json!("abc")] {
        let (raw, reply) = post(
            &client,
            &json!({"jsonrpc": "2.0", "method": "session.login_with_password",
                    "params": ["root", host.password], "id": id}),
        )
        .await;
        assert_eq!(raw.status, 200);
        assert_eq!(raw.content_type, "application/json");
        assert_eq!(raw.allow_origin.as_deref(), Some("*"));
        assert_eq!(reply["jsonrpc"], "2.0");
        assert_eq!(reply["id"], id);
        assert!(
            reply["result"]
                .as_str()
                .is_some_and(|s| s.starts_with("OpaqueRef:"))
        );
    }
}

/// Version 1.0 (no `jsonrpc` member) replies with `result`, `error` and `id`; errors are arrays.
#[tokio::test]
async fn v1_reply_has_result_error_and_id() {
    let host = Host::start();
    let client = Client::new(&host, Protocol::JsonRpc);
    let (_, ok) = post(
        &client,
        &json!({"method": "session.login_with_password", "params": ["root", host.password], "id": 3}),
    )
    .await;
    assert!(ok["result"].as_str().is_some());
    assert_eq!(ok["error"], Json::Null);
    assert_eq!(ok["id"], 3);
    let (_, bad) = post(
        &client,
        &json!({"method": "session.login_with_password", "params": ["root", "wrong"], "id": 4}),
    )
    .await;
    assert_eq!(bad["result"], Json::Null);
    assert_eq!(bad["error"][0], "SESSION_AUTHENTICATION_FAILED");
}

/// A 2.0 error is `{code: 1, message: CODE, data: [params]}`.
#[tokio::test]
async fn v2_error_has_code_one_message_and_data() {
    let host = Host::start();
    let client = Client::new(&host, Protocol::JsonRpc);
    let session = login(&client, &host).await;
    let (_, reply) = post(
        &client,
        &json!({"jsonrpc": "2.0", "method": "VM.get_record",
                "params": [session, "OpaqueRef:nothing"], "id": 1}),
    )
    .await;
    assert_eq!(reply["error"]["code"], 1);
    assert_eq!(reply["error"]["message"], "HANDLE_INVALID");
    assert_eq!(reply["error"]["data"], json!(["VM", "OpaqueRef:nothing"]));
}

/// int64 fields are JSON numbers, datetimes dash-less strings, records objects.
#[tokio::test]
async fn ints_are_numbers_and_datetimes_are_dashless_strings() {
    let host = Host::start();
    let client = Client::new(&host, Protocol::JsonRpc);
    let session = login(&client, &host).await;
    let (_, records) = post(
        &client,
        &json!({"jsonrpc": "2.0", "method": "host_metrics.get_all_records",
                "params": [session], "id": 1}),
    )
    .await;
    let metrics = records["result"]
        .as_object()
        .and_then(|m| m.values().next())
        .unwrap_or_else(|| panic!("no host_metrics: {records}"));
    assert!(
        metrics["memory_total"].as_i64().is_some_and(|m| m > 0),
        "{metrics}"
    );
    let stamp = metrics["last_updated"].as_str().expect("a datetime string");
    assert!(
        stamp.len() == 18 && stamp.ends_with('Z') && !stamp.contains('-'),
        "{stamp}"
    );
}

/// The legacy `/json` path answers JSON-RPC too, and 2.0 may leave `params` out.
#[tokio::test]
async fn legacy_path_and_missing_params_work() {
    let host = Host::start();
    let client = Client::new(&host, Protocol::JsonRpc);
    let reply = client
        .post_raw(
            "/json",
            "application/json",
            json!({"jsonrpc": "2.0", "method": "system.listMethods", "id": 1})
                .to_string()
                .into_bytes(),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let json: Json = serde_json::from_slice(&reply.body).expect("JSON");
    let methods = json["result"].as_array().expect("a list of methods");
    assert!(methods.iter().any(|m| m == "VM.get_record"));
}

/// Bad versions, ids and bodies get HTTP 500 with a JSON error, and the host keeps serving.
#[tokio::test]
async fn malformed_requests_get_an_error_and_the_host_survives() {
    let host = Host::start();
    let client = Client::new(&host, Protocol::JsonRpc);
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let bodies: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("not json", b"{nope".to_vec()),
        (
            "bad version",
            br#"{"jsonrpc":"3.0","method":"system.listMethods","params":[],"id":1}"#.to_vec(),
        ),
        (
            "null id",
            br#"{"jsonrpc":"2.0","method":"system.listMethods","params":[],"id":null}"#.to_vec(),
        ),
        (
            "missing id",
            br#"{"jsonrpc":"2.0","method":"system.listMethods","params":[]}"#.to_vec(),
        ),
        (
            "params a string",
            br#"{"jsonrpc":"2.0","method":"system.listMethods","params":"x","id":1}"#.to_vec(),
        ),
        (
            "bad utf-8",
            b"{\"method\":\"\xff\",\"params\":[],\"id\":1}".to_vec(),
        ),
        ("deep nesting", deep.into_bytes()),
    ];
    for (what, body) in bodies {
        let reply = client.post_raw("/jsonrpc", "application/json", body).await;
        assert_eq!(reply.status, 500, "{what}: {}", reply.text());
        let json: Json = serde_json::from_slice(&reply.body)
            .unwrap_or_else(|e| panic!("{what}: error reply is not JSON ({e}): {}", reply.text()));
        let code = json["error"]["message"]
            .as_str()
            .or_else(|| json["error"][0].as_str())
            .unwrap_or_else(|| panic!("{what}: no error in {json}"));
        assert_eq!(code, "INTERNAL_ERROR", "{what}");
    }
    let huge = vec![b' '; 17 * 1024 * 1024];
    let reply = client.post_raw("/jsonrpc", "application/json", huge).await;
    assert_eq!(reply.status, 413);
    assert!(login(&client, &host).await.starts_with("OpaqueRef:"));
}

/// Sessions made over JSON-RPC work over XML-RPC and the other way round.
#[tokio::test]
async fn sessions_work_across_protocols() {
    let host = Host::start();
    let json_client = Client::new(&host, Protocol::JsonRpc);
    let session = login(&json_client, &host).await;
    let mut xml_client = Client::new(&host, Protocol::XmlRpc);
    xml_client.session = Some(session);
    let pools = xml_client.ok("pool.get_all", vec![]).await;
    assert_eq!(pools.as_array().map(<[_]>::len), Some(1));
}

/// The code of the XenAPI error in a JSON-RPC reply, either version.
fn error_code(reply: &Json) -> &str {
    reply["error"]["message"]
        .as_str()
        .or_else(|| reply["error"][0].as_str())
        .unwrap_or_else(|| panic!("no error in {reply}"))
}

/// A request naming `method` twice is refused, not read with the last one winning (which would
/// log the session out), and the session still works.
#[tokio::test]
async fn a_request_naming_a_member_twice_is_refused() {
    let host = Host::start();
    let client = Client::new(&host, Protocol::JsonRpc);
    let session = login(&client, &host).await;
    let twice = format!(
        r#"{{"jsonrpc":"2.0","method":"VM.get_all","method":"session.logout","params":["{session}"],"id":5}}"#
    );
    let reply = client
        .post_raw("/jsonrpc", "application/json", twice.into_bytes())
        .await;
    assert_eq!(reply.status, 500, "{}", reply.text());
    let json: Json = serde_json::from_slice(&reply.body).expect("a JSON reply");
    assert_eq!(error_code(&json), "INTERNAL_ERROR");
    assert_eq!(json["id"], 5);
    let (_, vms) = post(
        &client,
        &json!({"jsonrpc": "2.0", "method": "VM.get_all", "params": [session], "id": 6}),
    )
    .await;
    assert!(vms["result"].is_array(), "the session still works: {vms}");
}

/// A string holding a NUL or another character XML 1.0 forbids (sent as a `\u` escape, since
/// JSON cannot carry it raw) is refused, and nothing is stored.
#[tokio::test]
async fn strings_with_characters_xml_forbids_are_refused() {
    let host = Host::start();
    let client = Client::new(&host, Protocol::JsonRpc);
    let session = login(&client, &host).await;
    let (_, pools) = post(
        &client,
        &json!({"jsonrpc": "2.0", "method": "pool.get_all", "params": [session], "id": 1}),
    )
    .await;
    let pool = pools["result"][0].as_str().expect("a pool ref").to_owned();
    for text in [r"a\u0000b", r"\u0001", r"\u001f", r"x\ufffe", r"\uffff"] {
        let body = format!(
            r#"{{"jsonrpc":"2.0","method":"pool.set_name_label","params":["{session}","{pool}","{text}"],"id":2}}"#
        );
        let reply = client
            .post_raw("/jsonrpc", "application/json", body.into_bytes())
            .await;
        assert_eq!(reply.status, 500, "{text}: {}", reply.text());
        let json: Json = serde_json::from_slice(&reply.body).expect("a JSON reply");
        assert_eq!(error_code(&json), "INTERNAL_ERROR", "{text}");
    }
    let (_, label) = post(
        &client,
        &json!({"jsonrpc": "2.0", "method": "pool.get_name_label",
                "params": [session, pool], "id": 3}),
    )
    .await;
    assert_eq!(label["result"], "", "nothing was stored");
}
