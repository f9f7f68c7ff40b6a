//! Helpers for the integration tests: start real `oxapi` processes and talk to them.
