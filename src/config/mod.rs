//! The configuration file: one TOML document, every section optional.
//!
//! `sealcast serve` with no file runs [`Config::default`]: RTMP on
//! 127.0.0.1:1935, HTTP on 127.0.0.1:8080, data under `./sealcast-data`, the
//! local KMS, and one stream `live/demo` whose publish key is generated on
//! first start. `sealcast.example.toml` in the repository root documents every
//! key.
//!
//! Loading takes two steps. Parsing (`schema.rs`) reads the file as written and
//! rejects syntax errors, unknown keys and wrong types, naming the key and its
//! position (`toml_errors.rs`). Validation (`validate.rs`) then lists every
//! remaining problem at once, each naming its TOML key, and builds a [`Config`]
//! whose types cannot hold what validation refused: a KMS provider carries only
//! its own keys (an AWS provider always has a key id), the replay store is
//! memory or Redis with a parsed [`RedisUrl`], and counts are `NonZero`.
//!
//! Secrets are read only by [`Config::resolve_token_secret`],
//! [`Config::resolve_streams`] and their siblings in `secrets.rs`, at startup.
//! Relative paths are relative to the working directory.

use std::fmt;
use std::fs;
use std::num::{NonZeroU32, NonZeroU64, NonZeroUsize};
use std::path::{Path, PathBuf};

use crate::auth::Secret;

mod cluster;
mod http_limits;
mod metrics;
mod publish_hook;
mod record;
mod redis_url;
mod schema;
mod secrets;
mod storage;
#[cfg(test)]
mod tests;
mod toml_errors;
mod validate;
mod webhooks;

pub use cluster::ClusterConfig;
pub use http_limits::HttpLimits;
pub use metrics::MetricsConfig;
pub use publish_hook::PublishHookConfig;
pub use record::RecordConfig;
pub use redis_url::{RedisUrl, SentinelUrl};
pub use schema::{HlsConfig, HttpConfig, LogConfig, Protection, StorageConfig};
pub use secrets::{KeyOrigin, ResolvedStream};
pub use storage::{S3Config, StorageBackend};
pub use webhooks::WebhooksConfig;

/// Shortest accepted token secret, in bytes: HS256 wants a key at least as
/// long as its 256-bit output (RFC 7518 section 3.2).
pub const MIN_TOKEN_SECRET_BYTES: usize = 32;

/// The one default lifetime of playback tokens sealcast mints: `sealcast
/// token`, `POST /api/v1/playback` without `ttl_secs`, the operator page's
/// watch links (1 hour).
pub const DEFAULT_TOKEN_TTL_SECS: u64 = 3600;

/// Shortest accepted admin API token, in bytes.
pub const MIN_ADMIN_TOKEN_BYTES: usize = 16;

/// The hls.js the watch page loads unless `http.hlsjs_url` says otherwise: the
/// pinned release embedded in the binary and served by sealcast itself, so the
/// page plays without internet access (`src/http/web/vendor/hls.js/`).
pub const DEFAULT_HLSJS_URL: &str = "/static/hls.js@1.7.4/hls.min.js";

/// The same release on a public CDN, for `http.hlsjs_url` where a CDN is
/// preferred (`tests/browser/package.json` pins the same version).
pub const CDN_HLSJS_URL: &str = "https://cdn.jsdelivr.net/npm/hls.js@1.7.4/dist/hls.min.js";

/// Subresource Integrity (W3C SRI) hash of [`DEFAULT_HLSJS_URL`]'s and
/// [`CDN_HLSJS_URL`]'s file, so a compromised CDN cannot run other code on the
/// watch page.
pub const DEFAULT_HLSJS_INTEGRITY: &str = "sha384-p9vgU/7IYJWd3I4STrtqxqR/2cAQlhIX7D/HrTnIMEjjcUox165b7se7sxmm3zDg";

/// The validated configuration. Each field's meaning, range and default are
/// documented on the key it comes from, in `src/config/schema.rs` and
/// `sealcast.example.toml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `[rtmp]`: the ingest listener.
    pub rtmp: RtmpConfig,
    /// `[http]`: playlists, segments and the key endpoint.
    pub http: HttpConfig,
    /// `[storage]`: where segments, playlists and generated secrets live.
    pub storage: StorageConfig,
    /// `[hls]`: segmenting and playlist shape.
    pub hls: HlsConfig,
    /// `[encryption]`: data key rotation.
    pub encryption: EncryptionConfig,
    /// `[kms]`: the key management service that issues and unwraps data keys.
    pub kms: KmsConfig,
    /// `[auth]`: tokens, tickets, the key cache, the replay store, the admin API.
    pub auth: AuthConfig,
    /// `[[streams]]`: streams that may be published. Empty: the one default
    /// stream `live/demo` with a publish key generated on first start.
    pub streams: Vec<StreamConfig>,
    /// `[log]`: the log filter (reloaded on SIGHUP).
    pub log: LogConfig,
    /// `[metrics]`: the Prometheus endpoint.
    pub metrics: MetricsConfig,
    /// `[webhooks]`: events POSTed to the broadcaster's backend.
    pub webhooks: WebhooksConfig,
    /// `[cluster]`: publish leases in a shared Redis; `None`: one node.
    pub cluster: Option<ClusterConfig>,
    /// `[record]`: publishes kept as recordings.
    pub record: RecordConfig,
}

/// A `[[streams]]` entry, validated: a stream encoders may publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamConfig {
    /// `app`: the first URL segment (`live` in `/live/demo/index.m3u8`).
    pub app: String,
    /// `name`: the second URL segment (`demo`).
    pub name: String,
    /// Where the publish key is: exactly one of `key`, `key_env`, `key_file`.
    pub publish_key: PublishKeySource,
    /// `protection`: how the stream's keys reach players.
    pub protection: Protection,
    /// `record`: whether its publishes are recorded; `None`: `[record] enabled`.
    pub record: Option<bool>,
}

/// Where a stream's publish key is written. The key itself is read by
/// [`Config::resolve_streams`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishKeySource {
    /// `key`: inline in the file (prefer the other two).
    Inline(Secret),
    /// `key_env`: the name of an environment variable holding it.
    Env(String),
    /// `key_file`: a file holding it (trailing newlines ignored).
    File(PathBuf),
}

/// `[rtmp]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtmpConfig {
    /// `listen`: the ingest address.
    pub listen: std::net::SocketAddr,
    /// `max_connections`: RTMP connections open at once.
    pub max_connections: NonZeroU32,
    /// `max_connections_per_ip`: RTMP connections open at once from one IP.
    pub max_connections_per_ip: NonZeroU32,
    /// `handshake_timeout_secs`: from accept until the publish has started.
    pub handshake_timeout_secs: NonZeroU64,
    /// `idle_timeout_secs`: silence after which a connection is closed.
    pub idle_timeout_secs: NonZeroU64,
    /// `takeover_idle_secs`: a publisher quiet this long may be taken over
    /// by a new publish of its stream; 0: never.
    pub takeover_idle_secs: u64,
    /// `max_message_bytes`: largest RTMP message, 65536 to 16777215.
    pub max_message_bytes: u32,
    /// `max_chunk_size_bytes`: largest chunk size a client may set, 128 to
    /// 2147483647.
    pub max_chunk_size_bytes: u32,
    /// `tls_listen`: the RTMPS listener, if any.
    pub tls_listen: Option<std::net::SocketAddr>,
    /// The RTMPS certificate and key: `[rtmp]`'s `tls_cert_file` and
    /// `tls_key_file`, else `[http]`'s; `Some` whenever `tls_listen` is.
    pub tls: Option<TlsFiles>,
}

/// A PEM certificate chain and its private key, and the keys that named them
/// (for messages: `rtmp.tls_cert_file`, or `http.tls_cert_file` when
/// `[rtmp]` took `[http]`'s).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert_file: std::path::PathBuf,
    /// The private key.
    pub key_file: std::path::PathBuf,
    /// The TOML key that named `cert_file`.
    pub cert_setting: &'static str,
    /// The TOML key that named `key_file`.
    pub key_setting: &'static str,
}

/// `[encryption]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptionConfig {
    /// `segments_per_key`: segments encrypted under one data key.
    pub segments_per_key: NonZeroU32,
}

/// `[kms]`, validated: the provider with the keys that apply to it and no
/// others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KmsConfig {
    /// `provider = "local"`: master keys in a local keyring file.
    Local {
        /// The keyring file: `kms.keyring`, else
        /// `<storage.data_dir>/keyring.json`.
        keyring: PathBuf,
    },
    /// `provider = "aws"`: AWS KMS or a service with its API.
    Aws(AwsKmsConfig),
}

/// `[kms]` with `provider = "aws"`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsKmsConfig {
    /// `key_id`: key id, key ARN, `alias/NAME` or alias ARN (always set).
    pub key_id: String,
    /// `region`; `None`: `AWS_REGION`, else `AWS_DEFAULT_REGION`.
    pub region: Option<String>,
    /// `endpoint`; `None`: `https://kms.<region>.amazonaws.com`.
    pub endpoint: Option<String>,
    /// `profile` of the shared files; `None`: the standard AWS credential chain.
    pub profile: Option<String>,
    /// `request_timeout_ms`: limit for each KMS call, 100 to 60000.
    pub request_timeout_ms: u64,
}

/// `[auth]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthConfig {
    /// `token_secret_env`: environment variable holding the token secret.
    pub token_secret_env: Option<String>,
    /// `token_secret_file`: file holding the token secret. At most one of
    /// this and `token_secret_env`; neither: a generated secret.
    pub token_secret_file: Option<PathBuf>,
    /// `audience`: the `aud` claim tokens must carry; `None`: not checked.
    pub audience: Option<String>,
    /// `one_time_key_tickets`: playlists carry one-time tickets in key URIs.
    pub one_time_key_tickets: bool,
    /// `ticket_ttl_secs`: how long a ticket stays valid, 1 to 3600.
    pub ticket_ttl_secs: u64,
    /// `offline_ttl_secs`: life of an offline license, up to 30 days; 0:
    /// no offline licenses.
    pub offline_ttl_secs: u64,
    /// `admin_token_env`: environment variable holding the admin API token.
    pub admin_token_env: Option<String>,
    /// `admin_token_file`: file holding the admin API token. Neither this
    /// nor `admin_token_env`: no admin API.
    pub admin_token_file: Option<PathBuf>,
    /// `[auth.key_cache]`.
    pub key_cache: KeyCacheConfig,
    /// `[auth.replay]`.
    pub replay: ReplayConfig,
    /// `publish_hook_*`: the backend that decides every publish; `None`:
    /// `[[streams]]` keys decide.
    pub publish_hook: Option<PublishHookConfig>,
}

/// `[auth.key_cache]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyCacheConfig {
    /// `max_entries`: most unwrapped keys held.
    pub max_entries: NonZeroUsize,
    /// `ttl_secs`: how long a key stays cached, 1 to 86400.
    pub ttl_secs: u64,
}

/// `[auth.replay]`, validated: the backend with the keys that apply to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplayConfig {
    /// `backend = "memory"`: used tickets remembered in this process.
    Memory {
        /// `max_entries`: most unexpired tickets remembered.
        max_entries: NonZeroUsize,
    },
    /// `backend = "redis"`: a Redis server shared by several key servers.
    Redis(RedisReplayConfig),
}

/// `[auth.replay]` with `backend = "redis"`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisReplayConfig {
    /// `url`, parsed (always set).
    pub url: RedisUrl,
    /// `key_prefix`: prefix of the keys written (never empty).
    pub key_prefix: String,
    /// `timeout_ms`: bound on one request, 1 to 60000.
    pub timeout_ms: u64,
    /// `pool_size`: accepted for compatibility (one multiplexed connection).
    pub pool_size: NonZeroU32,
    /// `username`: ACL user name.
    pub username: Option<String>,
    /// `tls_ca_file`: CA trusted for `rediss://`.
    pub tls_ca_file: Option<PathBuf>,
    /// `password_env`: environment variable holding the password.
    pub password_env: Option<String>,
    /// `password_file`: file holding the password (at most one of the two).
    pub password_file: Option<PathBuf>,
}

/// Every problem found in a configuration, each naming its key; `Display`
/// puts each on its own line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// One human-readable problem per entry.
    pub problems: Vec<String>,
}

impl ConfigError {
    pub(crate) fn one(problem: String) -> Self {
        ConfigError {
            problems: vec![problem],
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            f.write_str(problem)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

impl Default for Config {
    /// The embedded default: what an empty file gives.
    fn default() -> Self {
        // The schema's defaults are valid; `tests::defaults_are_valid` checks it.
        validate::validate(schema::Document::default()).expect("the default configuration is valid")
    }
}

impl Config {
    /// Parses and validates a TOML document. The error lists every problem
    /// at once, each with its key (and line, for problems found while
    /// parsing): unknown keys and wrong types are each reported, their entry
    /// set aside, and parsing goes on; what parses is then validated. Only a
    /// syntax error (or a missing field of an `[[array]]` element) stops
    /// parsing where it is.
    pub fn from_toml_str(text: &str) -> Result<Config, ConfigError> {
        /// More than this many parse problems in one file is not a config.
        const MAX_PARSE_PROBLEMS: usize = 100;
        let mut work = text.to_owned();
        // (where in the file, the problem): listed in the file's order.
        let mut found: Vec<(usize, String)> = Vec::new();
        let in_file_order = |mut found: Vec<(usize, String)>| {
            found.sort_by_key(|(at, _)| *at);
            found.into_iter().map(|(_, p)| p).collect::<Vec<_>>()
        };
        for _ in 0..MAX_PARSE_PROBLEMS {
            match toml::from_str::<schema::Document>(&work) {
                Ok(document) => {
                    let mut problems = in_file_order(found);
                    return match validate::validate(document) {
                        Ok(config) if problems.is_empty() => Ok(config),
                        Ok(_) => Err(ConfigError { problems }),
                        Err(e) => {
                            problems.extend(e.problems);
                            Err(ConfigError { problems })
                        }
                    };
                }
                Err(e) => {
                    let at = e.span().map_or(usize::MAX, |span| span.start);
                    found.push((at, toml_errors::describe(&work, &e)));
                    match e.span().and_then(|span| toml_errors::entry_lines_at(&work, span.start)) {
                        Some(lines) => toml_errors::blank(&mut work, lines),
                        None => break,
                    }
                }
            }
        }
        Err(ConfigError {
            problems: in_file_order(found),
        })
    }

    /// Reads, parses and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text =
            fs::read_to_string(path).map_err(|e| ConfigError::one(format!("cannot read {}: {e}", path.display())))?;
        Config::from_toml_str(&text)
    }

    /// Where a generated token secret is kept.
    pub fn generated_token_secret_path(&self) -> PathBuf {
        self.storage.data_dir.join("token_secret")
    }

    /// Where the generated publish key of the default stream `app/name` is
    /// kept: `<data_dir>/publish_keys/<app>.<name>.key` (names cannot contain
    /// `.`, so distinct streams never share a file).
    pub fn generated_publish_key_path(&self, app: &str, name: &str) -> PathBuf {
        self.storage
            .data_dir
            .join("publish_keys")
            .join(format!("{app}.{name}.key"))
    }
}
