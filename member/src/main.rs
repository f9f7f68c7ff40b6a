//! `oxapi`: flags, configuration, run.

fn main() {}
