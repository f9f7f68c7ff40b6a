//! The call path: from a decoded call to its answer, and the state a call carries with it.
//!
//! `dispatch.rs` finds the method in the api-spec table, checks arity and types, fills defaults,
//! refuses writes while the pool DB is short of room (`no_space.rs`), checks the session
//! (`session.rs`, with the bounds on password checks in `password_checks.rs`), runs `Async.`
//! calls as tasks (`tasks.rs`) and hands the call, with its context (`ctx.rs`), to a custom
//! handler (`crate::handlers`) or to the generic handler of implicit messages (`generic.rs`).
//! `events.rs` answers `event.from` and friends from the DB's generations; `aging.rs` ages
//! sessions and tasks on the monotonic clock for housekeeping.

pub(crate) mod aging;
pub(crate) mod ctx;
pub(crate) mod dispatch;
pub(crate) mod events;
pub(crate) mod generic;
pub(crate) mod no_space;
pub(crate) mod password_checks;
pub(crate) mod session;
pub(crate) mod tasks;
