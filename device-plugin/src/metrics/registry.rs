//! The agent's metric registry: `prometheus-client`'s registry and its Prometheus text format
//! 0.0.4 encoder, behind one shared handle that the HTTP server renders.
//!
//! What this adds to the crate: sharing (the crate's registry needs `&mut` to register and is
//! not `Clone`), refusing a name registered twice or a counter named `…_total` (the crate adds
//! the suffix itself and only checks with debug assertions), and hooks that copy values kept
//! elsewhere into metrics just before each render.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Metric;

/// The `Content-Type` of [`Registry::render`]'s output.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// A metric the registry refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetricsError {
    /// A metric of this name is already registered (names must be unique in one exposition).
    #[error("metric {0} registered twice")]
    Duplicate(String),
    /// The encoder appends `_total` to counters; a name that has it would come out doubled.
    #[error("counter {0} must be registered without its _total suffix (the encoder adds it)")]
    CounterSuffix(String),
}

type Hook = Box<dyn Fn() + Send + Sync>;

#[derive(Default)]
struct Inner {
    registry: prometheus_client::registry::Registry,
    /// Names as registered (counters without `_total`), to refuse duplicates.
    names: Vec<String>,
    hooks: Vec<Hook>,
}

/// The set of metric families the agent exposes. Cloning shares it.
#[derive(Clone, Default)]
pub struct Registry {
    inner: Arc<Mutex<Inner>>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers `metric` (a handle; keep a clone to update it). Counters are named without
    /// `_total`: the encoder appends it, so `foo` is scraped as `foo_total`. `help` is one
    /// sentence; the encoder ends it with a full stop, so a trailing one is dropped here.
    pub fn register(
        &self,
        name: &str,
        help: &str,
        metric: impl Metric,
    ) -> Result<(), MetricsError> {
        if metric.metric_type() == MetricType::Counter && name.ends_with("_total") {
            return Err(MetricsError::CounterSuffix(name.into()));
        }
        let mut inner = self.lock();
        if inner.names.iter().any(|n| n == name) {
            return Err(MetricsError::Duplicate(name.into()));
        }
        inner.names.push(name.into());
        let help = help.strip_suffix('.').unwrap_or(help);
        inner.registry.register(name, help, metric);
        Ok(())
    }

    /// Adds a function run at the start of every [`Registry::render`], to copy values that live
    /// elsewhere into metrics just in time. It runs under the registry's lock, so it must not
    /// use the registry, and should capture metric handles only (capturing the registry would
    /// keep it alive forever).
    pub fn add_hook(&self, f: impl Fn() + Send + Sync + 'static) {
        self.lock().hooks.push(Box::new(f));
    }

    /// Runs the hooks, then encodes every family in registration order in the Prometheus text
    /// format 0.0.4 ([`CONTENT_TYPE`]). Renders are serialised, so a hook's updates and the
    /// encoding that shows them are one consistent step.
    pub fn render(&self) -> String {
        let inner = self.lock();
        for hook in &inner.hooks {
            hook();
        }
        let mut out = String::new();
        // Writing to a String cannot fail; an encoder error would leave a partial body that
        // the scraper rejects, which is logged rather than hidden.
        if let Err(e) = prometheus_text::encode(&mut out, &inner.registry) {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::gauge::Gauge;

    #[test]
    fn refuses_duplicates_and_suffixed_counters() {
        let r = Registry::new();
        r.register("t", "A gauge.", Gauge::<i64>::default())
            .unwrap();
        assert_eq!(
            r.register("t", "Again.", Counter::<u64>::default()),
            Err(MetricsError::Duplicate("t".into()))
        );
        assert_eq!(
            r.register("t_total", "Things.", Counter::<u64>::default()),
            Err(MetricsError::CounterSuffix("t_total".into()))
        );
        // A gauge may end in _total; only counters get the suffix appended.
        r.register("g_total", "A gauge.", Gauge::<i64>::default())
            .unwrap();
    }

    #[test]
    fn hooks_run_before_each_render_and_help_keeps_one_full_stop() {
        let r = Registry::new();
        let c = Counter::<u64>::default();
        r.register("t", "Things.", c.clone()).unwrap();
        let g = Gauge::<i64>::default();
        r.register("g", "Rendered", g.clone()).unwrap();
        let hooked = g.clone();
        r.add_hook(move || {
            hooked.inc();
        });
        c.inc();
        assert_eq!(
            r.render(),
            "# HELP t_total Things.\n# TYPE t_total counter\nt_total 1\n\
             # HELP g Rendered.\n# TYPE g gauge\ng 1\n"
        );
        assert!(r.render().contains("\ng 2\n"));
    }
}
