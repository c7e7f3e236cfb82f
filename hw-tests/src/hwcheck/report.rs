//! The machine-readable output of a hardware run: one `CHECK <name> ok|FAIL <detail>` line per
//! check and a final `SUMMARY {json}` line, on stdout (the guest's serial console), so the host
//! side can fail on any FAIL or on a missing SUMMARY without understanding the checks.

use serde_json::{Map, Value, json};

/// Collects check outcomes and measurements; prints each check as it happens.
#[derive(Default)]
pub struct Report {
    checks: usize,
    failures: Vec<String>,
    metrics: Map<String, Value>,
}

impl Report {
    /// Records and prints one check. Returns whether it passed, so callers can skip what
    /// depends on it.
    pub fn check(&mut self, name: &str, outcome: Result<(), String>) -> bool {
        self.checks += 1;
        match outcome {
            Ok(()) => {
                println!("CHECK {name} ok");
                true
            }
            Err(detail) => {
                // One line per check: the host side reads line by line.
                let detail = detail.replace('\n', " | ");
                println!("CHECK {name} FAIL {detail}");
                self.failures.push(name.to_string());
                false
            }
        }
    }

    /// `check` for a condition with a lazily built failure detail.
    pub fn expect(&mut self, name: &str, ok: bool, detail: impl FnOnce() -> String) -> bool {
        self.check(name, if ok { Ok(()) } else { Err(detail()) })
    }

    /// A measurement or fact for the SUMMARY line.
    pub fn metric(&mut self, key: &str, value: Value) {
        self.metrics.insert(key.to_string(), value);
    }

    /// Whether every check so far passed.
    pub fn all_ok(&self) -> bool {
        self.failures.is_empty()
    }

    /// The SUMMARY document.
    pub fn summary(&self) -> Value {
        let mut doc = json!({
            "checks": self.checks,
            "failed": self.failures.len(),
            "failures": self.failures,
        });
        if let Some(o) = doc.as_object_mut() {
            o.extend(self.metrics.clone());
        }
        doc
    }

    /// Prints the final `SUMMARY {json}` line.
    pub fn print_summary(&self) {
        println!("SUMMARY {}", self.summary());
    }
}

/// An informational line (not a check): context for a human reading the log.
pub fn info(msg: impl AsRef<str>) {
    println!("INFO {}", msg.as_ref().replace('\n', " | "));
}

/// The median of `samples` in milliseconds, rounded to 0.1 ms (None when empty).
pub fn median_ms(samples: &mut [f64]) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    samples.sort_by(|a, b| a.total_cmp(b));
    let n = samples.len();
    let m = if n % 2 == 1 {
        samples[n / 2]
    } else {
        (samples[n / 2 - 1] + samples[n / 2]) / 2.0
    };
    Some((m * 10.0).round() / 10.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_counts_failures_and_keeps_metrics() {
        let mut r = Report::default();
        assert!(r.check("a", Ok(())));
        assert!(!r.check("b", Err("two\nlines".into())));
        r.metric("add_ms_median", json!(12.5));
        let s = r.summary();
        assert_eq!(s["checks"], 2);
        assert_eq!(s["failed"], 1);
        assert_eq!(s["failures"], json!(["b"]));
        assert_eq!(s["add_ms_median"], 12.5);
        assert!(!r.all_ok());
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median_ms(&mut []), None);
        assert_eq!(median_ms(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median_ms(&mut [4.0, 1.0, 2.0, 3.0]), Some(2.5));
    }
}
