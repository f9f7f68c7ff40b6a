//! `ClientError`: why a request to a host got no usable answer.

/// Why a request got no usable answer. A XenAPI error is an answer, not a `ClientError`.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot build the http client")]
    Build(#[source] reqwest::Error),
    /// No answer: the host is down, refused the connection or its certificate, or timed out.
    #[error("request to {url} failed")]
    Request {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    /// An answer that is not what the request expects, and whose HTTP status says why.
    #[error("{url} answered status {status}")]
    Status { url: String, status: u16 },
    #[error("{url} answered more than {limit} bytes")]
    TooLarge { url: String, limit: usize },
    #[error("the reply of {url} to {method} cannot be decoded")]
    Undecodable {
        url: String,
        method: String,
        #[source]
        source: api_spec::error::DecodeError,
    },
    #[error("cannot encode the body for {url} as JSON")]
    EncodeJson {
        url: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{url} answered JSON that cannot be decoded")]
    DecodeJson {
        url: String,
        #[source]
        source: serde_json::Error,
    },
}
