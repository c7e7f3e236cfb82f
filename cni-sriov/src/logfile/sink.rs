//! The `tracing` subscriber behind `logFile`: events of this plugin and of `sriov-hw` at or
//! above the level, each formatted into one line and appended with one `write(2)` on a file
//! opened `O_APPEND` (created 0600), so lines of concurrent CNI processes never interleave.
//! Spans are not used here and are ignored; other crates' events (tonic, h2) are disabled at
//! their call sites, so they cost nothing after the first hit.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::SystemTime;

use tracing::level_filters::LevelFilter;
use tracing::subscriber::Interest;
use tracing::{Event, Metadata, Subscriber, span};

use super::line::{self, Fields};

/// The crates whose events go to the file.
const TARGETS: &[&str] = &["cni_sriov", "sriov_hw"];

/// Appends events to the log file, opened on the first event (a call that logs nothing at its
/// level creates no file).
pub struct FileSink {
    pub path: PathBuf,
    pub max: LevelFilter,
    /// `<VERB> container=… ifname=… netns=… pid=…`, the same on every line of this call.
    pub context: String,
    file: OnceLock<Option<File>>,
}

impl FileSink {
    /// A sink for `path` at `max`, each line carrying `context`.
    pub fn new(path: PathBuf, max: LevelFilter, context: String) -> Self {
        FileSink {
            path,
            max,
            context,
            file: OnceLock::new(),
        }
    }

    fn wants(&self, meta: &Metadata<'_>) -> bool {
        *meta.level() <= self.max && TARGETS.iter().any(|t| meta.target().starts_with(t))
    }

    /// The open file; `None` (after one note on stderr) when it cannot be opened: logging is
    /// off for this call, which goes on as if no `logFile` were set.
    fn file(&self) -> Option<&File> {
        self.file
            .get_or_init(|| {
                OpenOptions::new()
                    .append(true)
                    .create(true)
                    .mode(0o600)
                    .open(&self.path)
                    .inspect_err(|e| {
                        eprintln!(
                            "sriov: cannot open logFile {}: {e}; not logging this call",
                            self.path.display()
                        )
                    })
                    .ok()
            })
            .as_ref()
    }
}

impl Subscriber for FileSink {
    fn register_callsite(&self, meta: &'static Metadata<'static>) -> Interest {
        if self.wants(meta) {
            Interest::always()
        } else {
            Interest::never()
        }
    }

    fn enabled(&self, meta: &Metadata<'_>) -> bool {
        self.wants(meta)
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(self.max)
    }

    fn new_span(&self, _: &span::Attributes<'_>) -> span::Id {
        span::Id::from_u64(1)
    }

    fn record(&self, _: &span::Id, _: &span::Record<'_>) {}

    fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}

    fn event(&self, event: &Event<'_>) {
        let Some(mut file) = self.file() else {
            return;
        };
        let mut fields = Fields::default();
        event.record(&mut fields);
        let meta = event.metadata();
        let mut out = line::rfc3339(SystemTime::now());
        out.push_str(" [");
        out.push_str(line::level_word(meta.level()));
        out.push_str("] ");
        out.push_str(&self.context);
        if let Some(vf) = super::vf() {
            line::push_field(&mut out, "vf", vf);
        }
        out.push_str(": ");
        out.push_str(&fields.message);
        out.push_str(&fields.rest);
        if !meta.target().starts_with(TARGETS[0]) {
            line::push_field(&mut out, "from", meta.target());
        }
        line::cap(&mut out);
        out.push('\n');
        // One write: O_APPEND makes it land whole at the end, whoever else is appending.
        let _ = file.write(out.as_bytes());
    }

    fn enter(&self, _: &span::Id) {}

    fn exit(&self, _: &span::Id) {}
}
