//! Where log lines go and how they look: human-readable text (the default)
//! or, with `--log-format json`, one JSON object per line for a log
//! pipeline (Loki, Elasticsearch, CloudWatch), with the same fields: the
//! event's own, and the fields of the span it happened in (`span`) and of
//! every enclosing span (`spans`), such as `peer` and `stream`.
//!
//! The level filter is `RUST_LOG` when set, else `[log] level` (default
//! `info`), in both formats; SIGHUP reloads `[log] level`.

use std::sync::{Arc, Mutex};

use tracing::Subscriber;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Registry, reload};

/// `--log-format`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines, coloured on a terminal.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// The log filter of the running process: `RUST_LOG` when set (it always
/// wins), else the configuration's `[log] level`, else `info`; changed in
/// place on SIGHUP.
pub struct LogControl {
    handle: reload::Handle<EnvFilter, Registry>,
    from_env: bool,
    current: Mutex<String>,
}

impl LogControl {
    /// Installs the process's logger, writing to stderr in `format`; the
    /// filter can be changed later.
    pub fn init(format: LogFormat) -> Arc<Self> {
        let env = std::env::var("RUST_LOG").ok().filter(|v| !v.is_empty());
        let current = env.clone().unwrap_or_else(|| "info".to_owned());
        let filter = EnvFilter::try_new(&current).unwrap_or_else(|_| EnvFilter::new("info"));
        let (filter, handle) = reload::Layer::new(filter);
        let registry = tracing_subscriber::registry().with(filter);
        match format {
            LogFormat::Text => registry
                .with(
                    tracing_subscriber::fmt::layer()
                        .with_writer(std::io::stderr)
                        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())),
                )
                .init(),
            LogFormat::Json => registry
                .with(
                    tracing_subscriber::fmt::layer()
                        .json()
                        .with_writer(std::io::stderr)
                        .with_current_span(true)
                        .with_span_list(true),
                )
                .init(),
        }
        Arc::new(Self {
            handle,
            from_env: env.is_some(),
            current: Mutex::new(current),
        })
    }

    /// Applies `[log] level` (`None`: `info`) unless `RUST_LOG` is set;
    /// returns the change, for the log.
    pub fn apply(&self, level: Option<&str>) -> Result<Option<String>, String> {
        if self.from_env {
            return Ok(None);
        }
        let wanted = level.unwrap_or("info");
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if *current == wanted {
            return Ok(None);
        }
        let filter = EnvFilter::try_new(wanted).map_err(|e| format!("log.level {wanted:?}: {e}"))?;
        self.handle.reload(filter).map_err(|e| e.to_string())?;
        let change = format!("log level {wanted} (was {current})");
        *current = wanted.to_owned();
        Ok(Some(change))
    }

    /// The setter a [`crate::reload::Reloader`] calls on SIGHUP.
    pub fn setter(self: &Arc<Self>) -> crate::reload::LogLevelSetter {
        let control = Arc::clone(self);
        Arc::new(move |level| control.apply(level))
    }
}

/// The JSON logger: one object per line with `timestamp`, `level`,
/// `target`, `fields` (the event's, `message` among them), `span` (the
/// current span's name and fields) and `spans` (every enclosing span, outermost
/// first).
pub fn json<W>(filter: EnvFilter, writer: W) -> impl Subscriber + Send + Sync + 'static
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_current_span(true)
        .with_span_list(true)
        .finish()
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn json_lines_carry_the_event_and_span_fields() {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = json(EnvFilter::new("info"), move || writer.clone());
        tracing::subscriber::with_default(subscriber, || {
            let connection = tracing::info_span!("rtmp", peer = "192.0.2.7:50000");
            let _connection = connection.enter();
            let publish = tracing::info_span!("publish", stream = "live/demo");
            let _publish = publish.enter();
            tracing::info!(seq = 7, "segment \"published\"");
            tracing::debug!("filtered out at info");
        });
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1, "{text}");
        let line: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["fields"]["message"], "segment \"published\"");
        assert_eq!(line["fields"]["seq"], 7);
        assert_eq!(line["span"]["name"], "publish");
        assert_eq!(line["span"]["stream"], "live/demo");
        assert_eq!(line["spans"][0]["name"], "rtmp");
        assert_eq!(line["spans"][0]["peer"], "192.0.2.7:50000");
        assert_eq!(line["spans"][1]["stream"], "live/demo");
        assert!(line["timestamp"].is_string(), "{line}");
    }
}
