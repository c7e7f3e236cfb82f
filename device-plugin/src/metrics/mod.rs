//! Prometheus metrics (DESIGN.md §5): `prometheus-client`'s registry rendered in the text
//! exposition format 0.0.4 ([`registry`]), the agent's series ([`AgentMetrics`]), and a scrape
//! endpoint on a loopback address by default ([`server`]).
//!
//! Wiring in `run`: `let registry = Registry::new(); let m = AgentMetrics::new(&registry)?;
//! m.follow(&watcher);` then spawn `server::serve(addr, allow_non_loopback, registry, shutdown)`
//! and call `m.registration(..)`, `m.config_reload(..)`, `m.set_attached(..)`… where things happen.

mod agent;
pub mod registry;
pub mod server;

pub use agent::{AgentMetrics, RESULT_ERROR, RESULT_OK};
pub use registry::{CONTENT_TYPE, MetricsError, Registry};
pub use server::{DEFAULT_ADDR, MetricsServer, ServeError, serve};
