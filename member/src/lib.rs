//! What every host of an oxapi pool runs.
