//! The model's invariants, checked by a unit test.
