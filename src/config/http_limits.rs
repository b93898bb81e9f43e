//! `[http.limits]`: what one slow or greedy HTTP client may hold. Its own
//! file, so the section's schema, defaults and checks read in one place; the
//! struct is both the schema and the validated configuration.

use serde::Deserialize;

/// `[http.limits]`: timeouts and connection caps of the playback listener,
/// apart from RTMP's, so viewers can never take the descriptors ingest needs.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpLimits {
    /// Seconds a connection may take to send a request's headers, 1 to 3600.
    /// The same timer runs while a kept-alive connection waits for its next
    /// request, so it is also the idle keep-alive timeout: a client that
    /// opens connections and sends nothing (or trickles bytes) is closed
    /// after this long.
    #[serde(default = "default_header_timeout_secs")]
    pub header_timeout_secs: u64,
    /// Most HTTP connections open at once; further ones wait in the listen
    /// backlog. Never more than half the open-file limit (logged at start),
    /// so the rest stays for RTMP and segment files.
    #[serde(default = "default_max_connections")]
    pub max_connections: u32,
    /// Most HTTP connections open at once from one IP address; further ones
    /// from it are closed at once.
    #[serde(default = "default_max_connections_per_ip")]
    pub max_connections_per_ip: u32,
    /// MiB of segment ciphertext this node keeps in memory for viewers, all
    /// streams together: the few segments of each stream that viewers asked
    /// for lately (segments on disk), or the recent window (object storage).
    /// A segment that does not fit is served from disk or storage instead.
    /// 0: none kept.
    #[serde(default = "default_segment_memory_mb")]
    pub segment_memory_mb: u64,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            header_timeout_secs: default_header_timeout_secs(),
            max_connections: default_max_connections(),
            max_connections_per_ip: default_max_connections_per_ip(),
            segment_memory_mb: default_segment_memory_mb(),
        }
    }
}

fn default_header_timeout_secs() -> u64 {
    10
}

fn default_max_connections() -> u32 {
    10_000
}

/// Players use a few connections each; 128 leaves room for a household or
/// an office behind one address.
fn default_max_connections_per_ip() -> u32 {
    128
}

/// About 3 MB per viewed 2.7 Mb/s stream on disk: room for some 300, or
/// 130 in object storage (where the whole recent window is kept).
fn default_segment_memory_mb() -> u64 {
    1024
}

impl HttpLimits {
    pub fn segment_memory_bytes(&self) -> u64 {
        self.segment_memory_mb.saturating_mul(1024 * 1024)
    }
}

/// Problems with `[http.limits]`, each naming its key.
pub(super) fn validate(limits: &HttpLimits, problems: &mut Vec<String>) {
    if !(1..=3600).contains(&limits.header_timeout_secs) {
        problems.push(format!(
            "http.limits.header_timeout_secs must be 1 to 3600 (got {})",
            limits.header_timeout_secs
        ));
    }
    if limits.max_connections == 0 {
        problems.push("http.limits.max_connections must be at least 1".to_owned());
    }
    if limits.max_connections_per_ip == 0 {
        problems.push("http.limits.max_connections_per_ip must be at least 1".to_owned());
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn the_example_file_sets_every_key() {
        let config = Config::from_toml_str(include_str!("../../sealcast.example.toml")).unwrap();
        let limits = &config.http.limits;
        assert_eq!(
            (
                limits.header_timeout_secs,
                limits.max_connections,
                limits.max_connections_per_ip,
                limits.segment_memory_mb
            ),
            (15, 20_000, 64, 2048)
        );
    }

    #[test]
    fn defaults_and_every_problem_named() {
        let config = Config::from_toml_str("").unwrap();
        assert_eq!(config.http.limits.header_timeout_secs, 10);
        assert_eq!(config.http.limits.max_connections, 10_000);
        assert_eq!(config.http.limits.max_connections_per_ip, 128);
        assert_eq!(config.http.limits.segment_memory_bytes(), 1 << 30);
        let text = "[http.limits]\nheader_timeout_secs = 0\nmax_connections = 0\nmax_connections_per_ip = 0\n";
        assert_eq!(
            Config::from_toml_str(text).unwrap_err().problems,
            [
                "http.limits.header_timeout_secs must be 1 to 3600 (got 0)",
                "http.limits.max_connections must be at least 1",
                "http.limits.max_connections_per_ip must be at least 1",
            ]
        );
        let unknown = Config::from_toml_str("[http.limits]\nheader_timeout = 3\n")
            .unwrap_err()
            .problems;
        assert_eq!(unknown.len(), 1);
        assert!(
            unknown[0].starts_with("http.limits.header_timeout: unknown field"),
            "{unknown:?}"
        );
    }
}
