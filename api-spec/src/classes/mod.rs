//! One file per XenAPI class: its enums, fields, then explicit messages.

use crate::model::{Class, Relation};

/// Every declared class.
pub static ALL: &[&Class] = &[];

/// The one-to-many relations the pool DB keeps in step.
pub static RELATIONS: &[Relation] = &[];
