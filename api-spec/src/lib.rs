//! The XenAPI as data, and the codecs that carry it.
//!
//! This crate is oxapi's single source of truth for the API. It holds:
//! - the type system and wire values (`types`): `Ty`, `Qualifier`, `Value`;
//! - one declaration per class (`classes/*.rs`): fields, then explicit messages, in the shapes of
//!   `model`; the one-to-many relations the DB keeps in step;
//! - the implicit messages derived from those declarations (`implicit`) and the table of every
//!   wire method (`api`), which dispatch, `system.listMethods` and `xe` read;
//! - the error codes with their parameter names (`errors`) and the roles (`roles`);
//! - the conversion of wire values to declared types (`coerce`) and xapi's datetimes (`datetime`);
//! - the XML-RPC and JSON-RPC codecs (`codec`), shared by the server and every client;
//! - with the `tls-pin` feature, the clients' TLS that trusts hosts by certificate (`tls_pin`).
//!
//! It does no IO: bytes in, values out. Start with `classes/vm.rs` to see a declaration, then
//! `api.rs` for how a wire name finds it.

pub mod api;
pub mod check;
pub mod classes;
pub mod codec;
pub mod coerce;
pub mod datetime;
pub mod error;
pub mod errors;
pub mod implicit;
pub mod model;
pub mod roles;
#[cfg(feature = "tls-pin")]
pub mod tls_pin;
pub mod types;

pub use api::{Api, Method, MethodKind, MethodParam, api};
pub use errors::ApiError;
pub use types::{Lit, NEVER, NULL_REF, Qualifier, Ty, Value};
