//! Where log lines go and how they look: human-readable text (the default)
//! or, with `--log-format json`, one JSON object per line for a log
//! pipeline (Loki, Elasticsearch, CloudWatch), with the same fields: the
//! event's own, and the fields of the span it happened in (`span`) and of
//! every enclosing span (`spans`), such as `peer` and `stream`.
//!
//! The level filter is `RUST_LOG` (default `info`) in both formats.

use tracing::Subscriber;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// `--log-format`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines, coloured on a terminal.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

fn filter_from_env() -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"))
}

/// Installs the process's logger, writing to stderr.
pub fn init(format: LogFormat) {
    match format {
        LogFormat::Text => tracing_subscriber::fmt()
            .with_env_filter(filter_from_env())
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        LogFormat::Json => tracing::subscriber::set_global_default(json(filter_from_env(), std::io::stderr))
            .unwrap_or_else(|_| tracing::warn!("a logger was already installed")),
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
