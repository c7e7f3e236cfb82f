//! One log line: `<RFC3339 UTC time> [<level>] <call context>: <message> key=value…`, newline
//! terminated, with no newline or control character inside, so one event is exactly one line
//! however many processes append to the file.

use std::fmt::{self, Write as _};
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::Level;
use tracing::field::{Field, Visit};

/// A line longer than this is cut (an IPAM plugin's details can be long); the cut is marked.
pub const MAX_LINE: usize = 8192;

/// sriov-cni's word for a level.
pub fn level_word(l: &Level) -> &'static str {
    match *l {
        Level::ERROR => "error",
        Level::WARN => "warning",
        Level::INFO => "info",
        Level::DEBUG => "debug",
        Level::TRACE => "trace",
    }
}

/// `t` as RFC 3339 in UTC with microseconds, e.g. `2024-02-29T07:52:11.000123Z`.
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let (days, rem) = (d.as_secs() / 86_400, d.as_secs() % 86_400);
    let (y, m, day) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_micros()
    )
}

/// The proleptic Gregorian date `days` after 1970-01-01 (H. Hinnant's civil-from-days).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let (era, doe) = (z / 146_097, z % 146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, day)
}

/// Appends `s` with control characters (newlines included) escaped.
pub fn push_text(out: &mut String, s: &str) {
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
}

/// Appends ` key=value`, quoting the value when it is empty or holds spaces, quotes, `=` or
/// control characters.
pub fn push_field(out: &mut String, key: &str, value: &str) {
    out.push(' ');
    out.push_str(key);
    out.push('=');
    let plain = !value.is_empty()
        && !value
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '"' || c == '=');
    if plain {
        out.push_str(value);
    } else {
        let _ = write!(out, "{value:?}");
    }
}

/// Collects an event's message and its fields into the line.
#[derive(Default)]
pub struct Fields {
    pub message: String,
    pub rest: String,
}

impl Visit for Fields {
    fn record_str(&mut self, f: &Field, v: &str) {
        if f.name() == "message" {
            push_text(&mut self.message, v);
        } else {
            push_field(&mut self.rest, f.name(), v);
        }
    }

    fn record_debug(&mut self, f: &Field, v: &dyn fmt::Debug) {
        let text = format!("{v:?}");
        self.record_str(f, &text);
    }
}

/// Cuts `line` (without its newline) to [`MAX_LINE`] bytes on a character boundary.
pub fn cap(line: &mut String) {
    if line.len() > MAX_LINE {
        let mut end = MAX_LINE - "…(cut)".len();
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        line.truncate(end);
        line.push_str("…(cut)");
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn at(secs: u64, micros: u64) -> String {
        rfc3339(UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_micros(micros))
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(at(951_782_400, 0), "2000-02-29T00:00:00.000000Z");
        assert_eq!(at(1_709_164_800, 123), "2024-02-29T00:00:00.000123Z");
        assert_eq!(at(1_733_125_931, 0), "2024-12-02T07:52:11.000000Z");
        assert_eq!(at(4_102_444_799, 999_999), "2099-12-31T23:59:59.999999Z");
    }

    #[test]
    fn values_are_quoted_only_when_needed_and_never_break_the_line() {
        let mut s = String::new();
        push_field(&mut s, "vf", "0000:00:01.1");
        push_field(&mut s, "msg", "two words\nand a newline");
        push_field(&mut s, "empty", "");
        assert_eq!(
            s,
            r#" vf=0000:00:01.1 msg="two words\nand a newline" empty="""#
        );
        let mut m = String::new();
        push_text(&mut m, "a\nb\tc");
        assert_eq!(m, r"a\nb\tc");
    }

    #[test]
    fn long_lines_are_cut_on_a_char_boundary() {
        let mut s = "é".repeat(MAX_LINE);
        cap(&mut s);
        assert!(s.len() <= MAX_LINE && s.ends_with("…(cut)"));
    }
}
