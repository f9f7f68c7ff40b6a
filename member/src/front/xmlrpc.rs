//! XML-RPC requests: decode the `methodCall`, answer it, encode xapi's envelope (`text/xml`).

use api_spec::codec::xmlrpc;
use api_spec::error::DecodeError;
use axum::http::StatusCode;
use axum::response::Response;
use master::{Call, Origin};

use crate::front::body::BodyError;
use crate::front::server::{Front, internal_error, reply};

/// XenAPI clients check this content type.
pub const CONTENT_TYPE: &str = "text/xml";

/// Answers one XML-RPC request whose body has been read (or refused).
pub async fn handle(front: &Front, origin: Origin, body: Result<Vec<u8>, BodyError>) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(err) => {
            tracing::debug!(error = ?err, "XML-RPC request body refused");
            let (status, message) = err.refusal();
            return failure(status, &message);
        }
    };
    let call = match xmlrpc::decode_call(&body, front.limits()) {
        Ok(call) => call,
        Err(err) => return refuse(&err),
    };
    // xapi sends the method list bare, without the Status/Value envelope.
    let is_list_methods = call.method == "system.listMethods";
    let result = front
        .call(Call {
            method: call.method,
            params: call.params,
            origin,
        })
        .await;
    let body = match &result {
        Ok(value) if is_list_methods => xmlrpc::encode_raw_response(value),
        _ => xmlrpc::encode_response(&result),
    };
    reply(StatusCode::OK, CONTENT_TYPE, body)
}

/// A body that cannot be decoded: HTTP 500 as on xapi (413 over the size limit), with a Failure
/// envelope the client can read.
fn refuse(err: &DecodeError) -> Response {
    tracing::debug!(error = %err, "malformed XML-RPC request");
    let status = match err {
        DecodeError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    failure(status, &err.to_string())
}

/// `INTERNAL_ERROR [message]` as an XML-RPC Failure with this status.
pub(super) fn failure(status: StatusCode, message: &str) -> Response {
    reply(
        status,
        CONTENT_TYPE,
        xmlrpc::encode_response(&Err(internal_error(message))),
    )
}

#[cfg(test)]
mod tests {
    use api_spec::Value;
    use api_spec::codec::Limits;

    use super::*;
    use crate::front::testing::{
        assert_internal_error, chunked, exchange, post, request, serve_fake, small_limits,
        xml_call, xml_result,
    };

    /// Every POST path but /jsonrpc and /json is XML-RPC, answered as exactly `text/xml` with
    /// `Access-Control-Allow-Origin: *`.
    #[tokio::test]
    async fn xmlrpc_is_served_on_any_other_post_path() {
        let addr = serve_fake().await;
        for path in ["/", "/RPC2", "/xmlrpc", "/some/other/path"] {
            let reply = post(addr, path, &xml_call("echo", vec![Value::str("a")])).await;
            assert_eq!(reply.status, 200, "{path}");
            assert_eq!(reply.header("content-type"), Some("text/xml"), "{path}");
            assert_eq!(reply.header("access-control-allow-origin"), Some("*"));
            assert_eq!(xml_result(&reply), Ok(Value::Array(vec![Value::str("a")])));
        }
    }

    /// An API error goes out as a Failure envelope with HTTP 200, as on xapi.
    #[tokio::test]
    async fn xmlrpc_api_error_is_a_failure_with_200() {
        let addr = serve_fake().await;
        let reply = post(addr, "/", &xml_call("VM.nonsense", vec![])).await;
        assert_eq!(reply.status, 200);
        assert_eq!(
            xml_result(&reply),
            Err(api_spec::errors::message_method_unknown("VM.nonsense"))
        );
    }

    /// `system.listMethods` over XML-RPC is sent bare, without the Status/Value envelope.
    #[tokio::test]
    async fn list_methods_over_xmlrpc_has_no_envelope() {
        let addr = serve_fake().await;
        let reply = post(addr, "/", &xml_call("system.listMethods", vec![])).await;
        assert_eq!(reply.status, 200);
        let text = String::from_utf8_lossy(&reply.body);
        assert!(!text.contains("Status"), "{text}");
        assert!(text.contains("VM.get_all_records"), "{text}");
        let value = xmlrpc::decode_response(&reply.body, &Limits::default()).expect("readable");
        assert_eq!(
            value,
            Ok(Value::Array(vec![
                Value::str("VM.get_all_records"),
                Value::str("VM.start")
            ]))
        );
    }

    /// Malformed XML gets HTTP 500 with a Failure envelope carrying INTERNAL_ERROR.
    #[tokio::test]
    async fn malformed_xml_gets_500_with_a_failure_envelope() {
        let addr = serve_fake().await;
        for body in [&b"<methodCall><methodName>x"[..], b"", b"\xff\xfe garbage"] {
            let reply = post(addr, "/", body).await;
            assert_eq!(reply.status, 500);
            assert_eq!(reply.header("content-type"), Some("text/xml"));
            assert_eq!(reply.header("access-control-allow-origin"), Some("*"));
            assert_internal_error(xml_result(&reply));
        }
    }

    /// An XML-RPC body over the limit gets HTTP 413 with a Failure envelope, whether its length
    /// is declared or it arrives chunked.
    #[tokio::test]
    async fn xml_body_over_the_limit_gets_413() {
        let addr = serve_fake().await;
        let big = xml_call(
            "echo",
            vec![Value::str("x".repeat(small_limits().max_body_bytes))],
        );
        let reply = post(addr, "/", &big).await;
        assert_eq!(reply.status, 413);
        assert_eq!(reply.header("content-type"), Some("text/xml"));
        assert_internal_error(xml_result(&reply));

        let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let raw = request(
            "POST",
            "/",
            &[("Transfer-Encoding", "chunked")],
            &chunked(&big, 1000),
        );
        let reply = exchange(stream, &raw).await;
        assert_eq!(reply.status, 413);
        assert_internal_error(xml_result(&reply));
    }

    /// A client that waits for `100 Continue` before sending an oversized body gets the 413 at
    /// once, without being asked for the body.
    #[tokio::test]
    async fn oversized_body_behind_expect_continue_is_refused_unread() {
        let addr = serve_fake().await;
        let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let length = (small_limits().max_body_bytes + 1).to_string();
        let mut raw = request(
            "POST",
            "/",
            &[("Expect", "100-continue"), ("Content-Length", &length)],
            b"",
        );
        // Drop the `Content-Length: 0` that `request` adds for the empty body.
        let text = String::from_utf8(raw).expect("ASCII request");
        raw = text.replace("Content-Length: 0\r\n", "").into_bytes();
        let reply = exchange(stream, &raw).await;
        assert_eq!(reply.status, 413);
        assert_internal_error(xml_result(&reply));
    }
}
