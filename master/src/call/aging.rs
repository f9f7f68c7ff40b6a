//! How long rows have been idle on the master's monotonic clock, so that a jump of the wall
//! clock, or a new master whose clock runs ahead, destroys no session or task before its time.
//!
//! A row ages by one field whose value changes when the row is used (a session's
//! `last_active`, a task's `finished`). The master notes, per row, when it first saw the row's
//! current value, on its monotonic clock; the row's age is the time since. A new value starts
//! the count again. A master that has not seen a row before (it has just started, or has just
//! taken over) starts the count at its first look: a row lives at most one timeout longer
//! than on a master that saw it all along, never shorter. The field's wall-clock value still
//! dates the row and orders rows by recency.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// The rows of one table this master has looked at: by ref, the value of the field the row
/// ages by and when this master first saw that value.
#[derive(Default)]
pub(crate) struct Ages {
    seen: Mutex<HashMap<String, (String, Duration)>>,
}

impl Ages {
    /// The age at `now` (on the monotonic clock) of each of `rows`, given as (ref, value of
    /// the field it ages by), in order. Rows not among `rows` are forgotten: `rows` is the
    /// whole table.
    pub fn of(&self, rows: &[(&str, &str)], now: Duration) -> Vec<Duration> {
        let mut seen = self.seen.lock().expect("no panic under the ages lock");
        let mut next = HashMap::with_capacity(rows.len());
        let ages = rows
            .iter()
            .map(|&(r, value)| {
                let since = match seen.remove(r) {
                    Some((seen_value, since)) if seen_value == value => since,
                    _ => now,
                };
                next.insert(r.to_owned(), (value.to_owned(), since));
                now.saturating_sub(since)
            })
            .collect();
        *seen = next;
        ages
    }
}

/// `secs` seconds of a validated, non-negative policy number.
pub(crate) fn secs(secs: i64) -> Duration {
    Duration::from_secs(u64::try_from(secs).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A row ages from the first look at its value; a new value starts the count again; a
    /// forgotten row starts afresh.
    #[test]
    fn a_row_ages_from_the_first_look_at_its_value() {
        let ages = Ages::default();
        let at = Duration::from_secs;
        assert_eq!(ages.of(&[("a", "t1")], at(100)), [at(0)]);
        assert_eq!(
            ages.of(&[("a", "t1"), ("b", "t1")], at(160)),
            [at(60), at(0)]
        );
        assert_eq!(
            ages.of(&[("a", "t2"), ("b", "t1")], at(200)),
            [at(0), at(40)]
        );
        assert_eq!(ages.of(&[("a", "t2")], at(300)), [at(100)]);
        assert_eq!(ages.of(&[("b", "t1")], at(400)), [at(0)]);
    }
}
