//! A minimal metric registry: labelled gauges and counters, rendered in the Prometheus text
//! exposition format 0.0.4. Enough for the agent's dozen series; no histograms.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, PoisonError};

/// The `Content-Type` of [`Registry::render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A metric or label name that Prometheus would reject, or a name registered twice.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetricsError {
    #[error("invalid metric name {0:?} (must match [a-zA-Z_:][a-zA-Z0-9_:]*)")]
    MetricName(String),
    #[error(
        "metric {metric}: invalid label name {label:?} (must match [a-zA-Z_][a-zA-Z0-9_]*, not __*)"
    )]
    LabelName { metric: String, label: String },
    #[error("metric {0} registered twice")]
    Duplicate(String),
}

/// Prometheus' two simple metric types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A value that goes up and down (set).
    Gauge,
    /// A value that only goes up (incremented), reset only by a restart.
    Counter,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
        }
    }
}

struct Family {
    name: String,
    help: String,
    kind: Kind,
    labels: Vec<String>,
    /// Label values (in `labels` order) → value; sorted so output is stable.
    samples: BTreeMap<Vec<String>, f64>,
}

type Collector = Box<dyn Fn() + Send + Sync>;

#[derive(Default)]
struct Inner {
    families: Vec<Family>,
}

/// The set of metric families the agent exposes. Cloning shares it.
#[derive(Clone, Default)]
pub struct Registry {
    inner: Arc<Mutex<Inner>>,
    /// Run before each render, to pull values kept elsewhere (the snapshot, scan statistics).
    collectors: Arc<Mutex<Vec<Collector>>>,
}

fn valid_metric_name(n: &str) -> bool {
    let mut b = n.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_' || c == b':')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b':')
}

fn valid_label_name(n: &str) -> bool {
    let mut b = n.bytes();
    !n.starts_with("__")
        && matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn register(
        &self,
        name: &str,
        help: &str,
        kind: Kind,
        labels: &[&str],
    ) -> Result<usize, MetricsError> {
        if !valid_metric_name(name) {
            return Err(MetricsError::MetricName(name.into()));
        }
        if let Some(l) = labels.iter().find(|l| !valid_label_name(l)) {
            return Err(MetricsError::LabelName {
                metric: name.into(),
                label: (*l).into(),
            });
        }
        let mut inner = self.lock();
        if inner.families.iter().any(|f| f.name == name) {
            return Err(MetricsError::Duplicate(name.into()));
        }
        inner.families.push(Family {
            name: name.into(),
            help: help.into(),
            kind,
            labels: labels.iter().map(|s| s.to_string()).collect(),
            samples: BTreeMap::new(),
        });
        Ok(inner.families.len() - 1)
    }

    /// Registers a gauge family with these label names (empty for a single series).
    pub fn gauge(&self, name: &str, help: &str, labels: &[&str]) -> Result<Gauge, MetricsError> {
        let idx = self.register(name, help, Kind::Gauge, labels)?;
        Ok(Gauge(Handle {
            families: self.inner.clone(),
            idx,
        }))
    }

    /// Registers a counter family; by convention `name` ends in `_total`.
    pub fn counter(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
    ) -> Result<Counter, MetricsError> {
        let idx = self.register(name, help, Kind::Counter, labels)?;
        Ok(Counter(Handle {
            families: self.inner.clone(),
            idx,
        }))
    }

    /// Adds a function run at the start of every [`Registry::render`], to copy values that live
    /// elsewhere into gauges just in time. It must not call `render` or `add_collector`, and
    /// should capture metric handles, not the registry (which would keep itself alive).
    pub fn add_collector(&self, f: impl Fn() + Send + Sync + 'static) {
        self.collectors
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Box::new(f));
    }

    /// Every family in registration order as Prometheus text format 0.0.4: `# HELP`, `# TYPE`,
    /// then one line per series. Families without series still get their HELP/TYPE lines.
    pub fn render(&self) -> String {
        for c in self
            .collectors
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            c();
        }
        let inner = self.lock();
        let mut out = String::new();
        for f in &inner.families {
            let _ = writeln!(out, "# HELP {} {}", f.name, escape_help(&f.help));
            let _ = writeln!(out, "# TYPE {} {}", f.name, f.kind.as_str());
            for (values, v) in &f.samples {
                out.push_str(&f.name);
                if !values.is_empty() {
                    out.push('{');
                    for (i, (l, val)) in f.labels.iter().zip(values).enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        let _ = write!(out, "{l}=\"{}\"", escape_label(val));
                    }
                    out.push('}');
                }
                let _ = writeln!(out, " {}", format_value(*v));
            }
        }
        out
    }
}

/// `\` and newline escaped, as HELP text requires.
fn escape_help(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\n', "\\n")
}

/// `\`, `"` and newline escaped, as label values require.
fn escape_label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Go's float syntax as Prometheus parses it: `NaN`, `+Inf`, `-Inf`, else the shortest decimal.
fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

/// A family's place in its registry. Holds the families only (not the collectors), so a
/// collector that captures handles does not keep itself alive.
#[derive(Clone)]
struct Handle {
    families: Arc<Mutex<Inner>>,
    idx: usize,
}

impl Handle {
    /// Runs `f` on the sample for `values` (created at 0). A wrong number of label values is a
    /// programming error; it is logged and the update dropped rather than panicking the agent.
    fn with(&self, values: &[&str], f: impl FnOnce(&mut f64)) {
        let mut inner = self.lock();
        let Some(fam) = inner.families.get_mut(self.idx) else {
            return;
        };
        if values.len() != fam.labels.len() {
            tracing::error!(
                metric = %fam.name,
                expected = fam.labels.len(),
                got = values.len(),
                "metric update with the wrong number of label values dropped"
            );
            return;
        }
        let key: Vec<String> = values.iter().map(|s| s.to_string()).collect();
        f(fam.samples.entry(key).or_insert(0.0));
    }

    fn retain(&self, mut keep: impl FnMut(&[String]) -> bool) {
        if let Some(fam) = self.lock().families.get_mut(self.idx) {
            fam.samples.retain(|k, _| keep(k));
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.families.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn get(&self, values: &[&str]) -> Option<f64> {
        let inner = self.lock();
        let fam = inner.families.get(self.idx)?;
        fam.samples
            .iter()
            .find(|(k, _)| k.iter().map(String::as_str).eq(values.iter().copied()))
            .map(|(_, v)| *v)
    }
}

/// A gauge family. Cloning shares it.
#[derive(Clone)]
pub struct Gauge(Handle);

impl Gauge {
    /// Sets the series with these label values (in registration order).
    pub fn set(&self, values: &[&str], v: f64) {
        self.0.with(values, |s| *s = v);
    }

    /// Removes every series for which `keep` is false (e.g. pools that no longer exist).
    pub fn retain(&self, keep: impl FnMut(&[String]) -> bool) {
        self.0.retain(keep);
    }

    /// The current value of one series, if it exists.
    pub fn get(&self, values: &[&str]) -> Option<f64> {
        self.0.get(values)
    }
}

/// A counter family. Cloning shares it.
#[derive(Clone)]
pub struct Counter(Handle);

impl Counter {
    /// Adds one to the series with these label values.
    pub fn inc(&self, values: &[&str]) {
        self.inc_by(values, 1.0);
    }

    /// Adds `by` (ignored unless positive and finite: counters never go down).
    pub fn inc_by(&self, values: &[&str], by: f64) {
        if by.is_finite() && by > 0.0 {
            self.0.with(values, |s| *s += by);
        }
    }

    /// Creates the series at 0 if missing, so a scrape shows "zero so far" instead of nothing.
    pub fn touch(&self, values: &[&str]) {
        self.0.with(values, |_| {});
    }

    /// The current value of one series, if it exists.
    pub fn get(&self, values: &[&str]) -> Option<f64> {
        self.0.get(values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_text_format_with_escaping() {
        let r = Registry::new();
        let g = r
            .gauge("t_gauge", "A gauge.\nWith \\ newline", &["a", "b"])
            .unwrap();
        let c = r.counter("t_total", "Things.", &[]).unwrap();
        r.gauge("t_empty", "No series yet.", &["x"]).unwrap();
        g.set(&["z", "q\"uote\\d\nx"], 1.5);
        g.set(&["a", "b"], 3.0);
        g.set(&["a"], 9.0); // wrong arity: dropped
        c.inc(&[]);
        c.inc_by(&[], 2.0);
        c.inc_by(&[], -5.0);
        let text = r.render();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                "# HELP t_gauge A gauge.\\nWith \\\\ newline",
                "# TYPE t_gauge gauge",
                "t_gauge{a=\"a\",b=\"b\"} 3",
                "t_gauge{a=\"z\",b=\"q\\\"uote\\\\d\\nx\"} 1.5",
                "# HELP t_total Things.",
                "# TYPE t_total counter",
                "t_total 3",
                "# HELP t_empty No series yet.",
                "# TYPE t_empty gauge",
            ]
        );
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn rejects_bad_and_duplicate_names() {
        let r = Registry::new();
        assert!(matches!(
            r.gauge("1bad", "", &[]),
            Err(MetricsError::MetricName(_))
        ));
        assert!(matches!(
            r.gauge("ok", "", &["__reserved"]),
            Err(MetricsError::LabelName { .. })
        ));
        assert!(matches!(
            r.gauge("ok", "", &["a-b"]),
            Err(MetricsError::LabelName { .. })
        ));
        r.gauge("ok", "", &[]).unwrap();
        assert_eq!(
            r.counter("ok", "", &[]).err(),
            Some(MetricsError::Duplicate("ok".into()))
        );
    }

    #[test]
    fn special_values_and_collectors() {
        let r = Registry::new();
        let g = r.gauge("v", "", &["k"]).unwrap();
        g.set(&["nan"], f64::NAN);
        g.set(&["inf"], f64::INFINITY);
        g.set(&["ninf"], f64::NEG_INFINITY);
        g.set(&["small"], 0.000125);
        let g2 = g.clone();
        r.add_collector(move || g2.set(&["collected"], 7.0));
        let text = r.render();
        for want in [
            "v{k=\"nan\"} NaN",
            "v{k=\"inf\"} +Inf",
            "v{k=\"ninf\"} -Inf",
            "v{k=\"small\"} 0.000125",
            "v{k=\"collected\"} 7",
        ] {
            assert!(text.lines().any(|l| l == want), "{want} missing in\n{text}");
        }
        g.retain(|k| k[0] != "nan");
        assert_eq!(g.get(&["nan"]), None);
        assert_eq!(g.get(&["collected"]), Some(7.0));
    }
}
