//! How results are written: xe's record layout, `--minimal` (comma-separated values) and
//! `--json` (oxapi's addition, for scripts).

use std::io::Write;

/// How the user asked for output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// xe's records: `label ( RO): value` lines.
    Records,
    /// The values of the first column only, comma-separated.
    Minimal,
    Json,
}

/// One record to print: `(label with marker, value)` lines, first the key field.
pub type Lines = Vec<(String, String)>;

/// A record as xapi's xe prints it: labels aligned on the colon (the first label padded on
/// the right, the others on the left, to four more than the longest), then two blank lines.
pub fn record(lines: &Lines) -> String {
    let width = 4 + lines.iter().map(|(l, _)| l.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (i, (label, value)) in lines.iter().enumerate() {
        if i == 0 {
            out.push_str(&format!("{label:<width$}: {value}\n"));
        } else {
            out.push_str(&format!("{label:>width$}: {value}\n"));
        }
    }
    out.push_str("\n\n");
    out
}

/// The `--minimal` form of some values: escaped (`\` → `\\`, `,` → `\,`) and comma-joined.
pub fn minimal(values: &[String]) -> String {
    let escaped: Vec<String> = values
        .iter()
        .map(|v| v.replace('\\', "\\\\").replace(',', "\\,"))
        .collect();
    format!("{}\n", escaped.join(","))
}

/// Pretty JSON with a final newline.
pub fn json(value: &serde_json::Value) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_else(|_| "null".to_owned());
    text.push('\n');
    text
}

/// Writes to stdout; a closed pipe (`xe vm-list | head`) is not an error worth reporting.
pub fn print(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first label is padded on the right and the others on the left, to the longest plus
    /// four, as in `xe vm-list`.
    #[test]
    fn record_aligns_like_xe() {
        let lines = vec![
            ("uuid ( RO)".to_owned(), "u".to_owned()),
            ("name-label ( RW)".to_owned(), "n".to_owned()),
            ("power-state ( RO)".to_owned(), "halted".to_owned()),
        ];
        assert_eq!(
            record(&lines),
            "uuid ( RO)           : u\n     name-label ( RW): n\n    power-state ( RO): halted\n\n\n"
        );
    }

    /// Minimal output escapes commas and backslashes inside values.
    #[test]
    fn minimal_escapes_commas() {
        assert_eq!(
            minimal(&["a,b".to_owned(), r"c\d".to_owned(), "e".to_owned()]),
            "a\\,b,c\\\\d,e\n"
        );
        assert_eq!(minimal(&[]), "\n");
    }
}
