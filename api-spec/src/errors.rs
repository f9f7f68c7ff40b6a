//! The XenAPI error codes with their parameter names, and `ApiError`, the failure every call can
//! answer with (`ErrorDescription = [code, params…]`).

/// A declared error code and the names of its parameters, in wire order.
#[derive(Debug)]
pub struct ErrorDecl {
    pub code: &'static str,
    pub params: &'static [&'static str],
}

/// A XenAPI failure: the code and its parameters, as sent on the wire.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code} {params:?}")]
pub struct ApiError {
    pub code: String,
    pub params: Vec<String>,
}

impl ApiError {
    pub fn new<S: Into<String>>(code: &str, params: impl IntoIterator<Item = S>) -> ApiError {
        ApiError {
            code: code.to_owned(),
            params: params.into_iter().map(Into::into).collect(),
        }
    }

    /// `ErrorDescription` as sent on the wire: the code, then the parameters.
    pub fn description(&self) -> Vec<String> {
        std::iter::once(self.code.clone())
            .chain(self.params.iter().cloned())
            .collect()
    }
}

/// The declaration of `code`, if the API declares it.
pub fn decl(code: &str) -> Option<&'static ErrorDecl> {
    ERRORS.iter().find(|e| e.code == code)
}

/// Every declared error code.
pub static ERRORS: &[ErrorDecl] = &[];
