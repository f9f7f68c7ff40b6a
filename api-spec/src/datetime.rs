//! xapi's datetimes: `YYYYMMDDTHH:MM:SSZ` out, dashes or not and an optional zone in.

use std::fmt::Write;

/// Seconds since the Unix epoch as xapi writes them (UTC, dash-less, `Z`).
pub fn format_unix(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let mut out = String::with_capacity(18);
    let _ = write!(
        out,
        "{y:04}{m:02}{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    );
    out
}

/// Parses the forms clients send (`20240101T12:34:56Z`, `2024-01-01T12:34:56Z`, no zone for UTC,
/// `+hh:mm` or `-hh:mm` offsets, optional fractional seconds) into seconds since the epoch.
pub fn parse_unix(text: &str) -> Option<i64> {
    let text = text.trim();
    let (date, rest) = text.split_once('T')?;
    let date: String = date.chars().filter(|c| *c != '-').collect();
    if date.len() != 8 || !date.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let year: i64 = date[0..4].parse().ok()?;
    let month: u32 = date[4..6].parse().ok()?;
    let day: u32 = date[6..8].parse().ok()?;
    let (time, offset_secs) = split_zone(rest)?;
    let time = time.split('.').next()?;
    let mut parts = time.split(':');
    let hour: i64 = parts.next()?.parse().ok()?;
    let minute: i64 = parts.next()?.parse().ok()?;
    let second: i64 = parts.next()?.parse().ok()?;
    if parts.next().is_some()
        || !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some(days * 86_400 + hour * 3600 + minute * 60 + second - offset_secs)
}

/// Normalises any accepted datetime text to xapi's output form.
pub fn normalise(text: &str) -> Option<String> {
    parse_unix(text).map(format_unix)
}

fn split_zone(rest: &str) -> Option<(&str, i64)> {
    if let Some(time) = rest.strip_suffix('Z') {
        return Some((time, 0));
    }
    if let Some(pos) = rest.rfind(['+', '-']) {
        let (time, zone) = rest.split_at(pos);
        let sign = if zone.starts_with('-') { -1 } else { 1 };
        let zone = &zone[1..];
        let (h, m) = zone.split_once(':').unwrap_or((zone, "0"));
        let h: i64 = h.parse().ok()?;
        let m: i64 = m.parse().ok()?;
        if !(0..=23).contains(&h) || !(0..=59).contains(&m) {
            return None;
        }
        return Some((time, sign * (h * 3600 + m * 60)));
    }
    Some((rest, 0))
}

// Howard Hinnant's civil calendar algorithms (public-domain formulas).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_formats_as_xapis_never() {
        assert_eq!(format_unix(0), crate::NEVER);
    }

    #[test]
    fn dashed_zoned_and_bare_forms_parse_to_the_same_instant() {
        let want = parse_unix("20240229T12:34:56Z").expect("valid");
        assert_eq!(parse_unix("2024-02-29T12:34:56Z"), Some(want));
        assert_eq!(parse_unix("20240229T12:34:56"), Some(want));
        assert_eq!(parse_unix("20240229T14:34:56+02:00"), Some(want));
        assert_eq!(parse_unix("20240229T12:34:56.250Z"), Some(want));
        assert_eq!(format_unix(want), "20240229T12:34:56Z");
    }

    #[test]
    fn nonsense_is_rejected() {
        for bad in [
            "",
            "yesterday",
            "20241301T00:00:00Z",
            "2024T1",
            "20240101T25:00:00Z",
        ] {
            assert_eq!(parse_unix(bad), None, "{bad}");
        }
    }

    #[test]
    fn round_trip_over_a_range_of_instants() {
        for secs in (-10_000_000_000i64..10_000_000_000).step_by(7_777_777_777 / 97) {
            assert_eq!(parse_unix(&format_unix(secs)), Some(secs));
        }
    }
}
