//! `[record]`: live publishes kept as encrypted recordings (VOD). Its own
//! file, like `[webhooks]`: the struct is both the schema and the validated
//! configuration.

use serde::Deserialize;

/// Longest retention accepted: 100 years, far past any use, and small
/// enough that its milliseconds never overflow.
pub const MAX_RETENTION_DAYS: u64 = 36_500;

/// `[record]`: whether publishes are recorded by default, and for how long
/// recordings are kept. `[[streams]] record = true|false` overrides `enabled`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordConfig {
    /// Record every stream that does not say otherwise. Default: false.
    #[serde(default)]
    pub enabled: bool,
    /// Days a completed recording is kept, counted from its end; then it is
    /// deleted (checked at start and hourly). 0: kept until deleted through
    /// the API. Default: 30.
    #[serde(default = "default_retention_days")]
    pub retention_days: u64,
}

impl Default for RecordConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            retention_days: default_retention_days(),
        }
    }
}

fn default_retention_days() -> u64 {
    30
}

/// Every problem of the section, each naming its key.
pub(super) fn validate(record: &RecordConfig, problems: &mut Vec<String>) {
    if record.retention_days > MAX_RETENTION_DAYS {
        problems.push(format!(
            "record.retention_days must be at most {MAX_RETENTION_DAYS} (got {})",
            record.retention_days
        ));
    }
}

impl super::Config {
    /// The `record` setting of stream `app/name` in `[[streams]]`, if any.
    pub fn record_override(&self, app: &str, name: &str) -> Option<bool> {
        self.streams
            .iter()
            .find(|s| s.app == app && s.name == name)
            .and_then(|s| s.record)
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn retention_past_a_century_is_refused_naming_the_key() {
        let error = Config::from_toml_str("[record]\nenabled = true\nretention_days = 36501\n").unwrap_err();
        assert_eq!(
            error.problems,
            ["record.retention_days must be at most 36500 (got 36501)"]
        );
        let error = Config::from_toml_str("[record]\nkeep = 1\n").unwrap_err();
        assert!(error.to_string().contains("keep"), "{error}");
        assert!(!Config::from_toml_str("").unwrap().record.enabled);
    }
}
