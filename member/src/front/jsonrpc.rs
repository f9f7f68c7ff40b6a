//! JSON-RPC requests: decode v1 or v2, answer, reply in the request's version
//! (`application/json`).

use api_spec::codec::jsonrpc::{self, Version};
use api_spec::error::DecodeError;
use axum::http::StatusCode;
use axum::response::Response;
use master::{Call, Origin};

use crate::front::body::BodyError;
use crate::front::server::{Front, internal_error, reply};

/// Xen Orchestra checks this content type exactly: anything else makes it fall back to XML-RPC.
pub const CONTENT_TYPE: &str = "application/json";

/// Answers one JSON-RPC request whose body has been read (or refused).
pub async fn handle(front: &Front, origin: Origin, body: Result<Vec<u8>, BodyError>) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(err) => {
            tracing::debug!(error = ?err, "JSON-RPC request body refused");
            let (status, message) = err.refusal();
            return failure(status, &message, Version::V1, &serde_json::Value::Null);
        }
    };
    let request = match jsonrpc::decode_call(&body, front.limits()) {
        Ok(request) => request,
        Err(err) => {
            let (version, id) = version_and_id(&body);
            return refuse(&err, version, &id);
        }
    };
    let result = front
        .call(Call {
            method: request.call.method,
            params: request.call.params,
            origin,
        })
        .await;
    reply(
        StatusCode::OK,
        CONTENT_TYPE,
        jsonrpc::encode_response(request.version, &request.id, &result),
    )
}

/// The version and id of a request the codec refused, as far as they can be read: V1 and a null
/// id when they cannot. Nothing else of the body is kept, so that a body the codec refused for
/// its size in values costs no memory here either.
fn version_and_id(body: &[u8]) -> (Version, serde_json::Value) {
    /// The two members wanted; serde skips the others without building them.
    #[derive(serde::Deserialize)]
    struct Head {
        jsonrpc: Option<Scalar>,
        id: Option<Scalar>,
    }
    let Ok(head) = serde_json::from_slice::<Head>(body) else {
        return (Version::V1, serde_json::Value::Null);
    };
    let version = match head.jsonrpc {
        Some(Scalar::Text(v)) if v == "2.0" => Version::V2,
        _ => Version::V1,
    };
    let id = match head.id {
        Some(Scalar::Text(id)) => serde_json::Value::String(id),
        Some(Scalar::Integer(id)) => serde_json::Value::Number(id),
        Some(Scalar::Other) | None => serde_json::Value::Null,
    };
    (version, id)
}

/// A member that may be a string or an integer; anything else is skipped unread.
enum Scalar {
    Text(String),
    Integer(serde_json::Number),
    Other,
}

impl<'de> serde::Deserialize<'de> for Scalar {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Scalar, D::Error> {
        deserializer.deserialize_any(ScalarVisitor)
    }
}

struct ScalarVisitor;

impl<'de> serde::de::Visitor<'de> for ScalarVisitor {
    type Value = Scalar;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Scalar, E> {
        Ok(Scalar::Text(s.to_owned()))
    }

    fn visit_i64<E: serde::de::Error>(self, i: i64) -> Result<Scalar, E> {
        Ok(Scalar::Integer(i.into()))
    }

    fn visit_u64<E: serde::de::Error>(self, u: u64) -> Result<Scalar, E> {
        Ok(Scalar::Integer(u.into()))
    }

    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Scalar, E> {
        Ok(Scalar::Other)
    }

    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Scalar, E> {
        Ok(Scalar::Other)
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Scalar, E> {
        Ok(Scalar::Other)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Scalar, A::Error> {
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(Scalar::Other)
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Scalar, A::Error> {
        while map
            .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
            .is_some()
        {}
        Ok(Scalar::Other)
    }
}

/// A body that cannot be decoded: HTTP 500 as on xapi (413 over the size limit), with an error
/// reply the client can read.
fn refuse(err: &DecodeError, version: Version, id: &serde_json::Value) -> Response {
    tracing::debug!(error = %err, "malformed JSON-RPC request");
    let status = match err {
        DecodeError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    failure(status, &err.to_string(), version, id)
}

/// `INTERNAL_ERROR [message]` as a JSON-RPC reply with this status.
pub(super) fn failure(
    status: StatusCode,
    message: &str,
    version: Version,
    id: &serde_json::Value,
) -> Response {
    let body = jsonrpc::encode_response(version, id, &Err(internal_error(message)));
    reply(status, CONTENT_TYPE, body)
}

#[cfg(test)]
mod tests {
    use api_spec::Value;

    use super::*;
    use crate::front::testing::{
        assert_internal_error, json_body, json_result, post, serve_fake, small_limits,
    };

    /// The version and id of a refused request are kept when readable, else V1 and null.
    #[test]
    fn version_and_id_of_refused_requests() {
        let v2 = br#"{"jsonrpc":"2.0","method":7,"id":"a"}"#;
        assert_eq!(version_and_id(v2), (Version::V2, serde_json::json!("a")));
        let v1 = br#"{"method":"x","params":{},"id":12}"#;
        assert_eq!(version_and_id(v1), (Version::V1, serde_json::json!(12)));
        let float_id = br#"{"jsonrpc":"2.0","id":1.5}"#;
        assert_eq!(
            version_and_id(float_id),
            (Version::V2, serde_json::Value::Null)
        );
        assert_eq!(
            version_and_id(b"[1,2"),
            (Version::V1, serde_json::Value::Null)
        );
        assert_eq!(
            version_and_id(br#"{"jsonrpc":"3.0","id":"z"}"#),
            (Version::V1, serde_json::json!("z"))
        );
    }

    /// JSON-RPC v1 and v2 requests get replies in their own version, as `application/json`.
    #[tokio::test]
    async fn jsonrpc_replies_in_the_request_version() {
        let addr = serve_fake().await;
        for path in ["/jsonrpc", "/json"] {
            let v1 = post(addr, path, br#"{"method":"echo","params":[1,"a"],"id":7}"#).await;
            assert_eq!(v1.status, 200);
            assert_eq!(v1.header("content-type"), Some("application/json"));
            assert_eq!(v1.header("access-control-allow-origin"), Some("*"));
            let body = json_body(&v1);
            assert_eq!(body["id"], serde_json::json!(7));
            assert!(body.get("jsonrpc").is_none(), "{body}");
            assert_eq!(
                json_result(&v1),
                Ok(Value::Array(vec![Value::Int(1), Value::str("a")]))
            );

            let v2 = post(
                addr,
                path,
                br#"{"jsonrpc":"2.0","method":"VM.nonsense","params":[],"id":"x"}"#,
            )
            .await;
            assert_eq!(v2.status, 200);
            let body = json_body(&v2);
            assert_eq!(body["jsonrpc"], serde_json::json!("2.0"));
            assert_eq!(body["id"], serde_json::json!("x"));
            assert_eq!(
                body["error"]["message"],
                serde_json::json!("MESSAGE_METHOD_UNKNOWN")
            );
        }
    }

    /// Malformed JSON gets HTTP 500 with an error reply: V1 and a null id when they cannot be
    /// read, else the request's version and id.
    #[tokio::test]
    async fn malformed_json_gets_500_with_an_error_reply() {
        let addr = serve_fake().await;
        let reply = post(addr, "/jsonrpc", b"{not json").await;
        assert_eq!(reply.status, 500);
        assert_eq!(reply.header("content-type"), Some("application/json"));
        let body = json_body(&reply);
        assert_eq!(body["id"], serde_json::Value::Null);
        assert!(body.get("jsonrpc").is_none(), "{body}");
        assert_internal_error(json_result(&reply));

        let reply = post(
            addr,
            "/jsonrpc",
            br#"{"jsonrpc":"2.0","method":5,"id":"q"}"#,
        )
        .await;
        assert_eq!(reply.status, 500);
        let body = json_body(&reply);
        assert_eq!(body["jsonrpc"], serde_json::json!("2.0"));
        assert_eq!(body["id"], serde_json::json!("q"));
        assert_internal_error(json_result(&reply));
    }

    /// A JSON-RPC body over the limit gets HTTP 413 with a JSON error reply.
    #[tokio::test]
    async fn json_body_over_the_limit_gets_413() {
        let addr = serve_fake().await;
        let big = format!(
            r#"{{"method":"echo","params":["{}"],"id":1}}"#,
            "x".repeat(small_limits().max_body_bytes)
        );
        let reply = post(addr, "/jsonrpc", big.as_bytes()).await;
        assert_eq!(reply.status, 413);
        assert_eq!(reply.header("content-type"), Some("application/json"));
        assert_internal_error(json_result(&reply));
    }
}
