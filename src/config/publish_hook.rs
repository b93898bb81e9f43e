//! `[auth] publish_hook_*`: the broadcaster's backend decides every publish.
//! The keys live in `[auth]` (DESIGN.md names `[auth] publish_hook_url`);
//! their checks and the validated form live here, beside `[webhooks]`'s.
//!
//! The hook has a signing secret of its own (`publish_hook_secret_env` or
//! `_file`) rather than borrowing `[webhooks]`'s: the two may go to different
//! receivers, and a publish hook must not depend on webhooks being on.

use std::path::PathBuf;
use std::time::Duration;

use super::ConfigError;
use super::schema;
use super::secrets::{EnvLookup, os_env, resolve_optional_secret};
use super::validate::check_env_name;
use super::webhooks::{MIN_WEBHOOK_SECRET_BYTES, is_hook_url};
use crate::auth::Secret;

/// The publish hook, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishHookConfig {
    /// `publish_hook_url`: an `https://` URL, or `http://` on loopback or a
    /// private network (the request carries the stream key).
    pub url: String,
    /// `publish_hook_tls_ca_file`: CA certificates trusted besides the
    /// Mozilla roots.
    pub tls_ca_file: Option<PathBuf>,
    /// `publish_hook_timeout_ms`: how long the hook may take to answer.
    pub timeout: Duration,
    /// `publish_hook_secret_env`.
    pub secret_env: Option<String>,
    /// `publish_hook_secret_file`. Exactly one of the two is set.
    pub secret_file: Option<PathBuf>,
}

/// Problems with the `publish_hook_*` keys of `[auth]`, each naming its key;
/// the hook's configuration when one is set.
pub(super) fn validate(auth: &schema::Auth, problems: &mut Vec<String>) -> Option<PublishHookConfig> {
    let ms = auth.publish_hook_timeout_ms;
    if !(1..=60_000).contains(&ms) {
        problems.push(format!("auth.publish_hook_timeout_ms must be 1 to 60000 (got {ms})"));
    }
    if let Some(var) = &auth.publish_hook_secret_env
        && let Err(why) = check_env_name(var)
    {
        problems.push(format!("auth.publish_hook_secret_env {var:?} {why}"));
    }
    let secrets = (&auth.publish_hook_secret_env, &auth.publish_hook_secret_file);
    let Some(url) = &auth.publish_hook_url else {
        if secrets.0.is_some() || secrets.1.is_some() {
            problems.push("auth.publish_hook_secret_env/_file is set without auth.publish_hook_url".to_owned());
        }
        return None;
    };
    if !is_hook_url(url) {
        problems.push(format!(
            "auth.publish_hook_url {url:?} must be an https:// or http:// URL"
        ));
    }
    if secrets.0.is_some() == secrets.1.is_some() {
        problems
            .push("auth: set exactly one of auth.publish_hook_secret_env and auth.publish_hook_secret_file".to_owned());
    }
    Some(PublishHookConfig {
        url: url.clone(),
        tls_ca_file: auth.publish_hook_tls_ca_file.clone(),
        timeout: Duration::from_millis(ms),
        secret_env: auth.publish_hook_secret_env.clone(),
        secret_file: auth.publish_hook_secret_file.clone(),
    })
}

impl PublishHookConfig {
    /// The signing secret (at least 16 bytes).
    pub fn resolve_secret(&self) -> Result<Secret, ConfigError> {
        self.resolve_secret_with(&os_env)
    }

    fn resolve_secret_with(&self, env: EnvLookup<'_>) -> Result<Secret, ConfigError> {
        resolve_optional_secret(
            "auth.publish_hook_secret",
            self.secret_env.as_deref(),
            self.secret_file.as_deref(),
            MIN_WEBHOOK_SECRET_BYTES,
            env,
        )?
        .ok_or_else(|| ConfigError::one("auth.publish_hook_url needs auth.publish_hook_secret_env or _file".to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::config::Config;

    #[test]
    fn off_by_default() {
        let config = Config::from_toml_str("").unwrap();
        assert_eq!(config.auth.publish_hook, None);
    }

    #[test]
    fn a_hook_with_its_timeout_and_secret() {
        let text = "[auth]\npublish_hook_url = \"http://10.0.0.9:8000/publish\"\n\
                    publish_hook_timeout_ms = 250\npublish_hook_secret_env = \"HOOK\"\n";
        let hook = Config::from_toml_str(text).unwrap().auth.publish_hook.unwrap();
        assert_eq!(hook.url, "http://10.0.0.9:8000/publish");
        assert_eq!(hook.timeout, Duration::from_millis(250));
        let short = hook.resolve_secret_with(&|_| Some("short".into()));
        assert_eq!(
            short.unwrap_err().problems,
            ["auth.publish_hook_secret_env: environment variable HOOK holds 5 bytes; at least 16 are needed"]
        );
        let good = hook.resolve_secret_with(&|_| Some("0123456789abcdef".into())).unwrap();
        assert_eq!(good.expose(), b"0123456789abcdef");
        // The default timeout: a few seconds.
        let text = "[auth]\npublish_hook_url = \"http://h/p\"\npublish_hook_secret_file = \"/s\"\n";
        let hook = Config::from_toml_str(text).unwrap().auth.publish_hook.unwrap();
        assert_eq!(hook.timeout, Duration::from_secs(3));
    }

    #[test]
    fn every_problem_is_named() {
        let table: [(&str, &[&str]); 4] = [
            (
                "publish_hook_url = \"ftp://x\"\npublish_hook_timeout_ms = 0\n",
                &[
                    "auth.publish_hook_timeout_ms must be 1 to 60000 (got 0)",
                    "auth.publish_hook_url \"ftp://x\" must be an https:// or http:// URL",
                    "auth: set exactly one of auth.publish_hook_secret_env and auth.publish_hook_secret_file",
                ],
            ),
            (
                "publish_hook_url = \"http://h/\"\npublish_hook_secret_env = \"A\"\npublish_hook_secret_file = \"/a\"\n",
                &["auth: set exactly one of auth.publish_hook_secret_env and auth.publish_hook_secret_file"],
            ),
            (
                "publish_hook_secret_env = \"A=B\"\npublish_hook_timeout_ms = 60001\n",
                &[
                    "auth.publish_hook_timeout_ms must be 1 to 60000 (got 60001)",
                    "auth.publish_hook_secret_env \"A=B\" is not a valid environment variable name",
                    "auth.publish_hook_secret_env/_file is set without auth.publish_hook_url",
                ],
            ),
            (
                "publish_hook_secret_file = \"/a\"\n",
                &["auth.publish_hook_secret_env/_file is set without auth.publish_hook_url"],
            ),
        ];
        for (keys, want) in table {
            let text = format!("[auth]\n{keys}");
            let got = Config::from_toml_str(&text).unwrap_err().problems;
            assert_eq!(got, want, "for {keys:?}");
        }
    }
}
