//! How a failure is told on stderr: a XenAPI error by its code and its parameters under the
//! names api-spec declares for them (objects named by uuid and name-label), anything else as its
//! message and causes.

use std::error::Error;

use api_spec::{ApiError, NULL_REF, Value, api, errors};

use crate::client::Session;
use crate::error::XeError;

/// The text printed on stderr for `error`.
pub fn text(error: &XeError) -> String {
    match error {
        XeError::Api { method, error } => api_error(method, error),
        other => {
            let mut out = format!("error: {other}\n");
            let mut source = other.source();
            while let Some(cause) = source {
                out.push_str(&format!("  because: {cause}\n"));
                source = cause.source();
            }
            out
        }
    }
}

/// `error: the server refused VM.start: VM_BAD_POWER_STATE`, then one `name: value` line per
/// parameter.
fn api_error(method: &str, error: &ApiError) -> String {
    let names = errors::decl(&error.code).map_or(&[][..], |d| d.params);
    let mut out = format!("error: the server refused {method}: {}\n", error.code);
    for (i, value) in error.params.iter().enumerate() {
        let name = names
            .get(i)
            .map_or_else(|| format!("parameter {}", i + 1), |n| (*n).to_owned());
        out.push_str(&format!("  {name}: {value}\n"));
    }
    out
}

/// Replaces the refs among the error's parameters by `uuid (name)` where the parameter's
/// declared name is a class (`vm`, `host`, `sr`…); the others stay as they are.
pub async fn name_objects(session: &Session, error: &mut ApiError) {
    let names = errors::decl(&error.code).map_or(&[][..], |d| d.params);
    for (i, value) in error.params.iter_mut().enumerate() {
        let Some(class) = names.get(i).and_then(|n| api().class_ignoring_case(n)) else {
            continue;
        };
        if !value.starts_with("OpaqueRef:") || value == NULL_REF {
            continue;
        }
        let record = session
            .call(
                &format!("{}.get_record", class.name),
                vec![Value::str(value.as_str())],
            )
            .await;
        let Ok(Value::Struct(record)) = record else {
            continue;
        };
        let field = |name| record.get(name).and_then(Value::as_str);
        if let Some(uuid) = field("uuid") {
            *value = match field("name_label") {
                Some(name) => format!("{uuid} ({name})"),
                None => uuid.to_owned(),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A XenAPI error prints its code and each parameter under its declared name.
    #[test]
    fn api_error_names_its_parameters() {
        let error = ApiError::new(
            "VM_BAD_POWER_STATE",
            ["u (my vm)", "halted", "running", "x"],
        );
        assert_eq!(
            text(&XeError::api("VM.start", error)),
            "error: the server refused VM.start: VM_BAD_POWER_STATE\n  vm: u (my vm)\n  \
             expected: halted\n  actual: running\n  parameter 4: x\n"
        );
    }

    /// Other errors print their message and causes.
    #[test]
    fn other_errors_print_their_causes() {
        let error = XeError::Read {
            path: "/nowhere".into(),
            source: std::io::Error::other("disk on fire"),
        };
        assert_eq!(
            text(&error),
            "error: cannot read /nowhere\n  because: disk on fire\n"
        );
    }
}
