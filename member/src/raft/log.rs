//! A slog `Drain` that forwards raft-rs's log records to `tracing` (target `raft`).

use std::fmt::{self, Write as _};

use slog::{Drain, KV, Level, OwnedKVList, Record};

/// Forwards every slog record to `tracing`, with its key-values in one `kv` field.
pub(crate) struct TracingDrain;

/// The slog logger raft-rs is given.
pub(crate) fn logger() -> slog::Logger {
    slog::Logger::root(TracingDrain, slog::o!())
}

impl Drain for TracingDrain {
    type Ok = ();
    type Err = slog::Never;

    fn log(&self, record: &Record<'_>, values: &OwnedKVList) -> Result<(), slog::Never> {
        let level = tracing_level(record.level());
        if !is_enabled(level) {
            return Ok(());
        }
        let mut kv = KeyValues::default();
        // A record that cannot be formatted keeps the pairs it got so far; logging goes on.
        let _ = record.kv().serialize(record, &mut kv);
        let _ = values.serialize(record, &mut kv);
        let message = record.msg();
        let kv = kv.0;
        match level {
            tracing::Level::ERROR => tracing::error!(target: "raft", kv, "{message}"),
            tracing::Level::WARN => tracing::warn!(target: "raft", kv, "{message}"),
            tracing::Level::INFO => tracing::info!(target: "raft", kv, "{message}"),
            tracing::Level::DEBUG => tracing::debug!(target: "raft", kv, "{message}"),
            tracing::Level::TRACE => tracing::trace!(target: "raft", kv, "{message}"),
        }
        Ok(())
    }
}

/// slog's six levels onto tracing's five: critical and error are both errors.
fn tracing_level(level: Level) -> tracing::Level {
    match level {
        Level::Critical | Level::Error => tracing::Level::ERROR,
        Level::Warning => tracing::Level::WARN,
        Level::Info => tracing::Level::INFO,
        Level::Debug => tracing::Level::DEBUG,
        Level::Trace => tracing::Level::TRACE,
    }
}

/// Whether a `raft` event at `level` would be recorded, so that a filtered-out record costs no
/// formatting.
fn is_enabled(level: tracing::Level) -> bool {
    match level {
        tracing::Level::ERROR => tracing::enabled!(target: "raft", tracing::Level::ERROR),
        tracing::Level::WARN => tracing::enabled!(target: "raft", tracing::Level::WARN),
        tracing::Level::INFO => tracing::enabled!(target: "raft", tracing::Level::INFO),
        tracing::Level::DEBUG => tracing::enabled!(target: "raft", tracing::Level::DEBUG),
        tracing::Level::TRACE => tracing::enabled!(target: "raft", tracing::Level::TRACE),
    }
}

/// The key-values of a record as `key=value` pairs separated by spaces.
#[derive(Default)]
struct KeyValues(String);

impl slog::Serializer for KeyValues {
    fn emit_arguments(&mut self, key: slog::Key, val: &fmt::Arguments<'_>) -> slog::Result {
        if !self.0.is_empty() {
            self.0.push(' ');
        }
        write!(self.0, "{key}={val}").map_err(|_| slog::Error::Other)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    /// Collects the formatted events a subscriber sees.
    #[derive(Clone, Default)]
    struct Seen(Arc<Mutex<Vec<String>>>);

    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Seen {
        fn on_event(
            &self,
            event: &tracing::Event<'_>,
            _ctx: tracing_subscriber::layer::Context<'_, S>,
        ) {
            struct Fields(String);
            impl tracing::field::Visit for Fields {
                fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn fmt::Debug) {
                    write!(self.0, "{}={:?};", field.name(), value).expect("writing to a String");
                }
            }
            let mut fields = Fields(format!(
                "{} {} ",
                event.metadata().level(),
                event.metadata().target()
            ));
            event.record(&mut fields);
            self.0.lock().expect("test lock").push(fields.0);
        }
    }

    /// A slog warning with key-values arrives in tracing as a `raft` warning carrying them.
    #[test]
    fn slog_record_arrives_as_tracing_event_with_its_key_values() {
        let seen = Seen::default();
        let subscriber = tracing_subscriber::registry().with(seen.clone());
        tracing::subscriber::with_default(subscriber, || {
            let logger = logger().new(slog::o!("raft_id" => 7));
            slog::warn!(logger, "term moved"; "term" => 3);
            slog::crit!(logger, "log corrupt");
        });
        let seen = seen.0.lock().expect("test lock").clone();
        assert_eq!(seen.len(), 2, "{seen:?}");
        assert!(seen[0].starts_with("WARN raft "), "{}", seen[0]);
        assert!(seen[0].contains("term moved"), "{}", seen[0]);
        assert!(seen[0].contains("term=3 raft_id=7"), "{}", seen[0]);
        assert!(seen[1].starts_with("ERROR raft "), "{}", seen[1]);
    }
}
