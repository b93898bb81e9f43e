//! `[webhooks]`: events POSTed to the broadcaster's backend. Its own file, so
//! the section's schema, defaults and checks read in one place; the struct is
//! both the schema and the validated configuration.

use std::path::PathBuf;

use serde::Deserialize;

use super::ConfigError;
use super::secrets::{EnvLookup, os_env, resolve_optional_secret};
use crate::auth::Secret;

/// Shortest accepted webhook secret, in bytes.
pub const MIN_WEBHOOK_SECRET_BYTES: usize = 16;

/// `[webhooks]`: `stream.published`, `stream.unpublished`,
/// `segment.dropped` and `recording.completed` events, signed, delivered at least once, in order.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhooksConfig {
    /// Where events are POSTed: an `https://` URL, or `http://` for a
    /// receiver on loopback or a private network. Absent: no webhooks.
    #[serde(default)]
    pub url: Option<String>,
    /// PEM file of CA certificates trusted for an `https://` receiver besides
    /// the Mozilla roots (a private PKI). Absent: the Mozilla roots only.
    #[serde(default)]
    pub tls_ca_file: Option<PathBuf>,
    /// Environment variable holding the signing secret (at least 16 bytes).
    #[serde(default)]
    pub secret_env: Option<String>,
    /// File holding the signing secret (trailing newlines ignored).
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// Events kept while the receiver is down, 1 to 1000000; past it the
    /// oldest are dropped (counted and logged). Default: 10000.
    #[serde(default = "default_queue_capacity")]
    pub queue_capacity: usize,
    /// Seconds one delivery attempt may take, 1 to 300. Default: 10.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
    /// First retry delay in milliseconds, doubled after each failure up to
    /// `max_backoff_secs`. Default: 500.
    #[serde(default = "default_initial_backoff_ms")]
    pub initial_backoff_ms: u64,
    /// Longest retry delay, 1 to 3600 seconds. Default: 60.
    #[serde(default = "default_max_backoff_secs")]
    pub max_backoff_secs: u64,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        Self {
            url: None,
            tls_ca_file: None,
            secret_env: None,
            secret_file: None,
            queue_capacity: default_queue_capacity(),
            timeout_secs: default_timeout_secs(),
            initial_backoff_ms: default_initial_backoff_ms(),
            max_backoff_secs: default_max_backoff_secs(),
        }
    }
}

fn default_queue_capacity() -> usize {
    10_000
}

fn default_timeout_secs() -> u64 {
    10
}

fn default_initial_backoff_ms() -> u64 {
    500
}

fn default_max_backoff_secs() -> u64 {
    60
}

/// An `http://` or `https://` URL with a host (what the webhook and publish
/// hook clients speak).
pub(super) fn is_hook_url(url: &str) -> bool {
    url.strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/') && !rest.contains(char::is_whitespace))
        && url.parse::<hyper::Uri>().is_ok()
}

/// Problems with `[webhooks]`, each naming its key.
pub(super) fn validate(webhooks: &WebhooksConfig, problems: &mut Vec<String>) {
    if let Some(url) = &webhooks.url {
        if !is_hook_url(url) {
            problems.push(format!("webhooks.url {url:?} must be an https:// or http:// URL"));
        }
        if webhooks.secret_env.is_some() == webhooks.secret_file.is_some() {
            problems.push("webhooks: set exactly one of webhooks.secret_env and webhooks.secret_file".to_owned());
        }
    }
    if !(1..=1_000_000).contains(&webhooks.queue_capacity) {
        problems.push(format!(
            "webhooks.queue_capacity must be 1 to 1000000 (got {})",
            webhooks.queue_capacity
        ));
    }
    if !(1..=300).contains(&webhooks.timeout_secs) {
        problems.push(format!(
            "webhooks.timeout_secs must be 1 to 300 (got {})",
            webhooks.timeout_secs
        ));
    }
    if webhooks.initial_backoff_ms == 0 {
        problems.push("webhooks.initial_backoff_ms must be at least 1".to_owned());
    }
    if !(1..=3600).contains(&webhooks.max_backoff_secs) {
        problems.push(format!(
            "webhooks.max_backoff_secs must be 1 to 3600 (got {})",
            webhooks.max_backoff_secs
        ));
    }
}

impl WebhooksConfig {
    /// The signing secret, when webhooks are on.
    pub fn resolve_secret(&self) -> Result<Option<Secret>, ConfigError> {
        self.resolve_secret_with(&os_env)
    }

    fn resolve_secret_with(&self, env: EnvLookup<'_>) -> Result<Option<Secret>, ConfigError> {
        if self.url.is_none() {
            return Ok(None);
        }
        resolve_optional_secret(
            "webhooks.secret",
            self.secret_env.as_deref(),
            self.secret_file.as_deref(),
            MIN_WEBHOOK_SECRET_BYTES,
            env,
        )
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn the_example_file_sets_every_key() {
        let config = Config::from_toml_str(include_str!("../../sealcast.example.toml")).unwrap();
        let w = &config.webhooks;
        assert_eq!(w.url.as_deref(), Some("http://10.0.0.9:8000/sealcast-events"));
        assert_eq!(w.secret_env.as_deref(), Some("SEALCAST_WEBHOOK_SECRET"));
        assert_eq!(
            (
                w.queue_capacity,
                w.timeout_secs,
                w.initial_backoff_ms,
                w.max_backoff_secs
            ),
            (5000, 5, 250, 30)
        );
    }

    #[test]
    fn off_by_default_and_every_problem_named() {
        let config = Config::from_toml_str("").unwrap();
        assert_eq!(config.webhooks.url, None);
        assert_eq!(config.webhooks.resolve_secret().unwrap().map(|_| ()), None);
        let text = "[webhooks]\nurl = \"ftp://x\"\nqueue_capacity = 0\ntimeout_secs = 0\n\
                    initial_backoff_ms = 0\nmax_backoff_secs = 0\n";
        assert_eq!(
            Config::from_toml_str(text).unwrap_err().problems,
            [
                "webhooks.url \"ftp://x\" must be an https:// or http:// URL",
                "webhooks: set exactly one of webhooks.secret_env and webhooks.secret_file",
                "webhooks.queue_capacity must be 1 to 1000000 (got 0)",
                "webhooks.timeout_secs must be 1 to 300 (got 0)",
                "webhooks.initial_backoff_ms must be at least 1",
                "webhooks.max_backoff_secs must be 1 to 3600 (got 0)",
            ]
        );
    }

    #[test]
    fn the_secret_comes_from_the_environment_or_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secret");
        std::fs::write(&file, "whsec-0123456789abcdef\n").unwrap();
        std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        let text = format!(
            "[webhooks]\nurl = \"http://127.0.0.1:9/hook\"\nsecret_file = {:?}\n",
            file.display().to_string()
        );
        let config = Config::from_toml_str(&text).unwrap();
        let secret = config.webhooks.resolve_secret().unwrap().unwrap();
        assert_eq!(secret.expose(), b"whsec-0123456789abcdef");
        let env = Config::from_toml_str("[webhooks]\nurl = \"http://h/\"\nsecret_env = \"HOOK\"\n").unwrap();
        let short = env.webhooks.resolve_secret_with(&|_| Some("short".into()));
        assert!(short.is_err());
        let good = env
            .webhooks
            .resolve_secret_with(&|_| Some("0123456789abcdef".into()))
            .unwrap();
        assert_eq!(good.unwrap().expose(), b"0123456789abcdef");
    }
}
