//! Keeping the many ends of one-to-many relations in step with the one ends.
