//! The configuration file: one TOML document, every section optional.
//!
//! `sealcast serve` with no file runs [`Config::default`]: RTMP on
//! 127.0.0.1:1935, HTTP on 127.0.0.1:8080, data under `./sealcast-data`, the
//! local KMS, and one stream `live/demo` whose publish key is generated on
//! first start. `sealcast.example.toml` in the repository root documents every
//! key.
//!
//! Parsing rejects unknown keys; [`Config::validate`] then lists every
//! remaining problem at once, each naming its TOML key. Secrets are read only
//! by [`Config::resolve_token_secret`] and [`Config::resolve_streams`], at
//! startup. Relative paths are relative to the working directory.

use std::ffi::OsString;
use std::fmt;
use std::fs;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::{SecureRandom as _, SystemRandom};
use serde::Deserialize;

use crate::auth::Secret;

mod redis_url;

pub use redis_url::RedisUrl;

/// Shortest accepted token secret, in bytes: HS256 wants a key at least as
/// long as its 256-bit output (RFC 7518 section 3.2).
pub const MIN_TOKEN_SECRET_BYTES: usize = 32;

/// Publish keys (RTMP stream keys) are 16 to 256 of these characters, so they
/// survive RTMP publish names and URLs unescaped and are not guessable.
const PUBLISH_KEY_CHARS: &str = "A-Z a-z 0-9 . _ ~ -";
const MIN_PUBLISH_KEY_CHARS: usize = 16;
const MAX_PUBLISH_KEY_CHARS: usize = 256;

/// App and stream names are 1 to 64 of `A-Z a-z 0-9 _ -`: they are URL path
/// segments and file names.
const MAX_NAME_CHARS: usize = 64;

/// App names that would collide with sealcast's own HTTP routes.
const RESERVED_APPS: &[&str] = &["keys", "watch", "api"];

/// The hls.js the watch page loads unless `http.hlsjs_url` says otherwise: a
/// pinned release on a public CDN. The browser test serves the same file from
/// the npm package (`tests/browser/package.json` pins the same version).
pub const DEFAULT_HLSJS_URL: &str = "https://cdn.jsdelivr.net/npm/hls.js@1.7.4/dist/hls.min.js";

/// Subresource Integrity (W3C SRI) hash of [`DEFAULT_HLSJS_URL`]'s file, so a
/// compromised CDN cannot run other code on the watch page.
pub const DEFAULT_HLSJS_INTEGRITY: &str = "sha384-p9vgU/7IYJWd3I4STrtqxqR/2cAQlhIX7D/HrTnIMEjjcUox165b7se7sxmm3zDg";

/// Fills a buffer with secure random bytes: the OS RNG, or a fixed one in tests.
type RandomFill<'a> = &'a dyn Fn(&mut [u8]) -> io::Result<()>;

/// Reads an environment variable: the process environment, or a table in tests.
type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<OsString>;

fn os_random(dest: &mut [u8]) -> io::Result<()> {
    SystemRandom::new()
        .fill(dest)
        .map_err(|_| io::Error::other("the system random number generator failed"))
}

fn os_env(name: &str) -> Option<OsString> {
    std::env::var_os(name)
}

/// The stream served when the file lists no `[[streams]]`.
const DEFAULT_APP: &str = "live";
const DEFAULT_STREAM: &str = "demo";

/// The whole configuration. Every section is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// RTMP ingest (encoders connect here).
    #[serde(default)]
    pub rtmp: RtmpConfig,
    /// HTTP: playlists, segments and the key endpoint.
    #[serde(default)]
    pub http: HttpConfig,
    /// Where segments, playlists and generated secrets live.
    #[serde(default)]
    pub storage: StorageConfig,
    /// Segmenting and playlist shape.
    #[serde(default)]
    pub hls: HlsConfig,
    /// Data key rotation.
    #[serde(default)]
    pub encryption: EncryptionConfig,
    /// The key management service that issues and unwraps data keys.
    #[serde(default)]
    pub kms: KmsConfig,
    /// Playback token secret.
    #[serde(default)]
    pub auth: AuthConfig,
    /// Streams that may be published. Empty: the one default stream
    /// `live/demo` with a publish key generated on first start.
    #[serde(default)]
    pub streams: Vec<StreamConfig>,
}

/// `[rtmp]`: the ingest listener.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RtmpConfig {
    /// Address to listen on, an IP and port (`0.0.0.0:1935` for all IPv4
    /// interfaces). Host names are not accepted.
    #[serde(default = "default_rtmp_listen", deserialize_with = "de_socket_addr")]
    pub listen: SocketAddr,
    /// Most RTMP connections open at once; further ones are refused, so a
    /// flood of idle sockets cannot exhaust memory or file descriptors.
    #[serde(default = "default_rtmp_max_connections")]
    pub max_connections: u32,
    /// Most RTMP connections open at once from one IP address; further ones
    /// from it are closed at once, so one host cannot take every slot.
    #[serde(default = "default_rtmp_max_connections_per_ip")]
    pub max_connections_per_ip: u32,
    /// Seconds from accepting a connection until its publish has started
    /// (RTMP handshake, connect, createStream, publish). Slower peers, such
    /// as a slow-loris client trickling one byte a second, are closed.
    #[serde(default = "default_rtmp_handshake_timeout_secs")]
    pub handshake_timeout_secs: u64,
    /// A connection that sends nothing for this long is closed (a stalled
    /// encoder or a half-open TCP connection), which ends its publish.
    #[serde(default = "default_rtmp_idle_timeout_secs")]
    pub idle_timeout_secs: u64,
    /// Largest RTMP message accepted from a publisher, in bytes (a video
    /// frame is one message), 65536 to 16777215 (the protocol's 24-bit
    /// length). Larger messages end the connection. Before a publish is
    /// authorized the limit is 64 KiB whatever this says.
    #[serde(default = "default_rtmp_max_message_bytes")]
    pub max_message_bytes: u32,
    /// Largest chunk size a client may set (RTMP Set Chunk Size), 128 to
    /// 2147483647. Encoders use 4096; memory use does not depend on it.
    #[serde(default = "default_rtmp_max_chunk_size_bytes")]
    pub max_chunk_size_bytes: u32,
}

/// `[http]`: the playback listener.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Address to listen on, an IP and port.
    #[serde(default = "default_http_listen", deserialize_with = "de_socket_addr")]
    pub listen: SocketAddr,
    /// Public base URL of this server as players see it (`https://video.example.com`,
    /// optionally with a path prefix), used for key URIs in playlists. Absent:
    /// key URIs are root-relative (`/keys/...`), which suits players that load
    /// the playlist from this server directly.
    #[serde(default)]
    pub public_url: Option<String>,
    /// Origins allowed to fetch playlists, segments and keys from a browser
    /// (CORS `Access-Control-Allow-Origin`): `"*"` or full origins such as
    /// `"https://player.example.com"`. Empty: no CORS headers. Keys still need
    /// a token whatever this says.
    #[serde(default = "default_http_cors_allowed_origins")]
    pub cors_allowed_origins: Vec<String>,
    /// Where the watch page (`/watch/{app}/{name}`) loads hls.js from: an
    /// `http(s)` URL of the script file, no query. sealcast does not ship
    /// hls.js; the page's Content-Security-Policy allows exactly this URL.
    #[serde(default = "default_http_hlsjs_url")]
    pub hlsjs_url: String,
    /// Subresource Integrity hash the page requires of hls.js
    /// (`sha384-<base64>`). Absent: the pinned hash when `hlsjs_url` is the
    /// default, none otherwise. `""` turns the check off.
    #[serde(default)]
    pub hlsjs_integrity: Option<String>,
}

/// `[storage]`: local files.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// Directory for segments, playlists, the keyring and generated secrets.
    /// Created on start if missing.
    #[serde(default = "default_storage_data_dir")]
    pub data_dir: PathBuf,
}

/// `[hls]`: segmenting and playlists (RFC 8216).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HlsConfig {
    /// Target segment duration, 1 to 30 seconds. Segments are cut at the first
    /// keyframe at or after it, so set the encoder's keyframe interval to this
    /// or a divisor of it.
    #[serde(default = "default_hls_segment_duration_secs")]
    pub segment_duration_secs: u32,
    /// Segments listed in the live playlist, at least 3 (RFC 8216 section
    /// 6.2.2: a live playlist stays at least three target durations long).
    #[serde(default = "default_hls_playlist_window")]
    pub playlist_window: u32,
    /// After a publisher drops, how long the playlist waits for it to come
    /// back before it ends with `#EXT-X-ENDLIST`, 0 to 3600 seconds. A publish
    /// within this time continues the playlist after an
    /// `#EXT-X-DISCONTINUITY`, so players keep playing through a reconnect.
    #[serde(default = "default_hls_reconnect_grace_secs")]
    pub reconnect_grace_secs: u64,
}

/// `[encryption]`: data key rotation.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncryptionConfig {
    /// Segments encrypted under one data key before the next key, at least 1.
    /// 1 gives every segment its own key: a leaked key exposes one segment.
    #[serde(default = "default_encryption_segments_per_key")]
    pub segments_per_key: u32,
}

/// `[kms]`: the key management service.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KmsConfig {
    /// Which KMS wraps and unwraps data keys.
    #[serde(default = "default_kms_provider")]
    pub provider: KmsProvider,
    /// Local provider: the keyring file (master keys), created with mode 0600
    /// on first start. Absent: `<storage.data_dir>/keyring.json`.
    #[serde(default)]
    pub keyring: Option<PathBuf>,
    /// AWS provider (required): the KMS key data keys are generated under, as
    /// a key id, key ARN, `alias/NAME` or alias ARN.
    #[serde(default)]
    pub key_id: Option<String>,
    /// AWS provider: the region. Absent: `AWS_REGION`, else `AWS_DEFAULT_REGION`.
    #[serde(default)]
    pub region: Option<String>,
    /// AWS provider: `http(s)://host[:port]` of a KMS-compatible service.
    /// Absent: `https://kms.<region>.amazonaws.com` (https needs the
    /// `aws-tls` build feature).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// AWS provider: the profile of the shared credentials file to use. Absent:
    /// `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, else profile `AWS_PROFILE`,
    /// else `default`.
    #[serde(default)]
    pub profile: Option<String>,
    /// Limit for each call to the KMS, connecting included, 100 to 60000.
    #[serde(default = "default_kms_request_timeout_ms")]
    pub request_timeout_ms: u64,
}

/// The KMS implementations sealcast can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KmsProvider {
    /// Master keys in a local keyring file, AES-256-GCM wrapping.
    Local,
    /// AWS KMS (or a service with its API): GenerateDataKey and Decrypt.
    Aws,
}

/// `[auth]`: playback tokens, one-time key tickets, the key cache, the
/// replay store and the admin API.
///
/// The token secret: at most one of `token_secret_env` and
/// `token_secret_file`; neither: a random secret is generated on first start
/// and kept in `<storage.data_dir>/token_secret` (mode 0600).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Name of an environment variable holding the secret (at least 32 bytes).
    #[serde(default)]
    pub token_secret_env: Option<String>,
    /// File holding the secret (at least 32 bytes; trailing newlines ignored).
    #[serde(default)]
    pub token_secret_file: Option<PathBuf>,
    /// When set, playback tokens must carry this `aud` claim (a string, or an
    /// array containing it). Absent: `aud` is not checked.
    #[serde(default)]
    pub audience: Option<String>,
    /// Playlists fetched with a valid token carry a fresh one-time ticket in
    /// every key URI instead of the token itself.
    #[serde(default)]
    pub one_time_key_tickets: bool,
    /// How long a ticket stays valid, 1 to 3600 seconds (never past the
    /// token's own `exp`).
    #[serde(default = "default_auth_ticket_ttl_secs")]
    pub ticket_ttl_secs: u64,
    /// Name of an environment variable holding the admin API's bearer token
    /// (at least 16 bytes). Neither this nor `admin_token_file`: no admin API.
    #[serde(default)]
    pub admin_token_env: Option<String>,
    /// File holding the admin API's bearer token (trailing newlines ignored).
    #[serde(default)]
    pub admin_token_file: Option<PathBuf>,
    /// The cache of unwrapped data keys in the key endpoint.
    #[serde(default)]
    pub key_cache: KeyCacheConfig,
    /// Where used tickets are remembered.
    #[serde(default)]
    pub replay: ReplayConfig,
}

/// `[auth.key_cache]`: unwrapped data keys kept in memory (never on disk),
/// so many viewers of one key cost one KMS decrypt.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyCacheConfig {
    /// Most keys held, at least 1. A key is 16 bytes plus about 200 bytes of
    /// bookkeeping.
    #[serde(default = "default_key_cache_max_entries")]
    pub max_entries: usize,
    /// How long a key stays cached after it was unwrapped, 1 to 86400 seconds.
    #[serde(default = "default_key_cache_ttl_secs")]
    pub ttl_secs: u64,
}

/// `[auth.replay]`: the store of used one-time tickets.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayConfig {
    /// `"memory"` (one key server) or `"redis"` (several sharing one Redis).
    #[serde(default = "default_replay_backend")]
    pub backend: ReplayBackend,
    /// Memory backend: most unexpired tickets remembered, at least 1; past it
    /// ticket requests get 503 rather than risk a replay.
    #[serde(default = "default_replay_max_entries")]
    pub max_entries: usize,
    /// Redis backend: `redis://host[:port][/db]`. Required with it.
    #[serde(default)]
    pub url: Option<String>,
    /// Redis backend: prefix of the keys written (the ticket nonce in hex follows).
    #[serde(default = "default_replay_key_prefix")]
    pub key_prefix: String,
    /// Redis backend: bound on one request, 1 to 60000 ms; past it, 503.
    #[serde(default = "default_replay_timeout_ms")]
    pub timeout_ms: u64,
    /// Redis backend: connections kept open, 1 to 64.
    #[serde(default = "default_replay_pool_size")]
    pub pool_size: u32,
    /// Redis backend: environment variable holding the password (`AUTH`).
    #[serde(default)]
    pub password_env: Option<String>,
    /// Redis backend: file holding the password.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
}

/// The replay store implementations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReplayBackend {
    /// In this process; bounded, entries expire with their ticket.
    Memory,
    /// A Redis server shared by several key servers (`SET NX PX`).
    Redis,
}

/// Shortest accepted admin API token, in bytes.
pub const MIN_ADMIN_TOKEN_BYTES: usize = 16;

/// One `[[streams]]` entry: a stream encoders may publish.
///
/// Exactly one of `key`, `key_env`, `key_file` gives its publish key (what OBS
/// calls the "stream key"): 16 to 256 characters from `A-Z a-z 0-9 . _ ~ -`,
/// unique across streams, since the key identifies the stream at publish time.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamConfig {
    /// Application name, the first URL segment (`live` in `/live/demo/index.m3u8`).
    pub app: String,
    /// Public stream name, the second URL segment (`demo`).
    pub name: String,
    /// The publish key written inline. Prefer `key_env` or `key_file`.
    #[serde(default)]
    pub key: Option<Secret>,
    /// Name of an environment variable holding the publish key.
    #[serde(default)]
    pub key_env: Option<String>,
    /// File holding the publish key (trailing newlines ignored).
    #[serde(default)]
    pub key_file: Option<PathBuf>,
}

fn default_rtmp_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 1935))
}

fn default_rtmp_max_connections() -> u32 {
    1000
}

fn default_rtmp_idle_timeout_secs() -> u64 {
    30
}

fn default_rtmp_max_connections_per_ip() -> u32 {
    32
}

fn default_rtmp_handshake_timeout_secs() -> u64 {
    10
}

fn default_rtmp_max_message_bytes() -> u32 {
    8 * 1024 * 1024
}

fn default_rtmp_max_chunk_size_bytes() -> u32 {
    65536
}

fn default_http_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

fn default_http_cors_allowed_origins() -> Vec<String> {
    vec!["*".to_string()]
}

fn default_http_hlsjs_url() -> String {
    DEFAULT_HLSJS_URL.to_string()
}

fn default_storage_data_dir() -> PathBuf {
    PathBuf::from("./sealcast-data")
}

fn default_hls_segment_duration_secs() -> u32 {
    4
}

fn default_hls_playlist_window() -> u32 {
    6
}

fn default_hls_reconnect_grace_secs() -> u64 {
    10
}

fn default_encryption_segments_per_key() -> u32 {
    1
}

fn default_kms_provider() -> KmsProvider {
    KmsProvider::Local
}

fn default_auth_ticket_ttl_secs() -> u64 {
    60
}

fn default_key_cache_max_entries() -> usize {
    10_000
}

fn default_key_cache_ttl_secs() -> u64 {
    600
}

fn default_replay_backend() -> ReplayBackend {
    ReplayBackend::Memory
}

fn default_replay_max_entries() -> usize {
    1_000_000
}

fn default_replay_key_prefix() -> String {
    "sealcast:ticket:".to_string()
}

fn default_replay_timeout_ms() -> u64 {
    500
}

fn default_replay_pool_size() -> u32 {
    4
}

fn default_kms_request_timeout_ms() -> u64 {
    2000
}

impl Default for RtmpConfig {
    fn default() -> Self {
        RtmpConfig {
            listen: default_rtmp_listen(),
            max_connections: default_rtmp_max_connections(),
            max_connections_per_ip: default_rtmp_max_connections_per_ip(),
            handshake_timeout_secs: default_rtmp_handshake_timeout_secs(),
            idle_timeout_secs: default_rtmp_idle_timeout_secs(),
            max_message_bytes: default_rtmp_max_message_bytes(),
            max_chunk_size_bytes: default_rtmp_max_chunk_size_bytes(),
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: default_http_listen(),
            public_url: None,
            cors_allowed_origins: default_http_cors_allowed_origins(),
            hlsjs_url: default_http_hlsjs_url(),
            hlsjs_integrity: None,
        }
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            data_dir: default_storage_data_dir(),
        }
    }
}

impl Default for HlsConfig {
    fn default() -> Self {
        HlsConfig {
            segment_duration_secs: default_hls_segment_duration_secs(),
            playlist_window: default_hls_playlist_window(),
            reconnect_grace_secs: default_hls_reconnect_grace_secs(),
        }
    }
}

impl Default for EncryptionConfig {
    fn default() -> Self {
        EncryptionConfig {
            segments_per_key: default_encryption_segments_per_key(),
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            token_secret_env: None,
            token_secret_file: None,
            audience: None,
            one_time_key_tickets: false,
            ticket_ttl_secs: default_auth_ticket_ttl_secs(),
            admin_token_env: None,
            admin_token_file: None,
            key_cache: KeyCacheConfig::default(),
            replay: ReplayConfig::default(),
        }
    }
}

impl Default for KeyCacheConfig {
    fn default() -> Self {
        KeyCacheConfig {
            max_entries: default_key_cache_max_entries(),
            ttl_secs: default_key_cache_ttl_secs(),
        }
    }
}

impl Default for ReplayConfig {
    fn default() -> Self {
        ReplayConfig {
            backend: default_replay_backend(),
            max_entries: default_replay_max_entries(),
            url: None,
            key_prefix: default_replay_key_prefix(),
            timeout_ms: default_replay_timeout_ms(),
            pool_size: default_replay_pool_size(),
            password_env: None,
            password_file: None,
        }
    }
}

impl Default for KmsConfig {
    fn default() -> Self {
        KmsConfig {
            provider: default_kms_provider(),
            keyring: None,
            key_id: None,
            region: None,
            endpoint: None,
            profile: None,
            request_timeout_ms: default_kms_request_timeout_ms(),
        }
    }
}

/// `SocketAddr` with an error that says what is expected.
fn de_socket_addr<'de, D: serde::Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    let text = String::deserialize(d)?;
    text.parse().map_err(|_| {
        serde::de::Error::invalid_value(
            serde::de::Unexpected::Str(&text),
            &"an IP address and port such as 127.0.0.1:1935",
        )
    })
}

/// Every problem found in a configuration, each naming its key; `Display`
/// puts each on its own line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// One human-readable problem per entry.
    pub problems: Vec<String>,
}

impl ConfigError {
    fn one(problem: String) -> Self {
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

/// Where a stream's publish key came from (for the startup log; never the key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyOrigin {
    /// Written inline in the config file.
    Inline,
    /// Read from this environment variable.
    Env(String),
    /// Read from this file.
    File(PathBuf),
    /// Generated by sealcast and kept in this file (the default stream).
    Generated(PathBuf),
}

/// A stream with its publish key read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedStream {
    /// Application name.
    pub app: String,
    /// Stream name.
    pub name: String,
    /// The key an encoder must present to publish this stream.
    pub publish_key: Secret,
    /// Where the key came from.
    pub key_origin: KeyOrigin,
}

impl ResolvedStream {
    /// `app/name`, the form token `stream` claims use.
    pub fn path(&self) -> String {
        format!("{}/{}", self.app, self.name)
    }
}

impl Config {
    /// Parses and validates a TOML document. The error lists every problem;
    /// a syntax error or unknown key is reported alone (parsing stops there).
    pub fn from_toml_str(text: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::one(describe_toml_error(text, &e)))?;
        let problems = config.validate();
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError { problems })
        }
    }

    /// Reads, parses and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text =
            fs::read_to_string(path).map_err(|e| ConfigError::one(format!("cannot read {}: {e}", path.display())))?;
        Config::from_toml_str(&text)
    }

    /// Every problem in an already-parsed config, each naming its key. Empty
    /// means valid. Does not read env vars or files.
    pub fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let p = &mut problems;

        if self.rtmp.max_connections == 0 {
            p.push("rtmp.max_connections must be at least 1".to_string());
        }
        if self.rtmp.max_connections_per_ip == 0 {
            p.push("rtmp.max_connections_per_ip must be at least 1".to_string());
        }
        if self.rtmp.handshake_timeout_secs == 0 {
            p.push("rtmp.handshake_timeout_secs must be at least 1".to_string());
        }
        if self.rtmp.idle_timeout_secs == 0 {
            p.push("rtmp.idle_timeout_secs must be at least 1".to_string());
        }
        let message = self.rtmp.max_message_bytes;
        if !(65536..=0xFF_FFFF).contains(&message) {
            p.push(format!(
                "rtmp.max_message_bytes must be between 65536 and 16777215 (got {message})"
            ));
        }
        let chunk = self.rtmp.max_chunk_size_bytes;
        if !(128..=0x7FFF_FFFF).contains(&chunk) {
            p.push(format!(
                "rtmp.max_chunk_size_bytes must be between 128 and 2147483647 (got {chunk})"
            ));
        }
        if self.rtmp.listen == self.http.listen && self.http.listen.port() != 0 {
            p.push(format!(
                "http.listen {} is the same address as rtmp.listen",
                self.http.listen
            ));
        }
        if let Some(url) = &self.http.public_url
            && let Err(why) = check_public_url(url)
        {
            p.push(format!("http.public_url {url:?} {why}"));
        }
        for (i, origin) in self.http.cors_allowed_origins.iter().enumerate() {
            if origin != "*" && check_origin(origin).is_err() {
                p.push(format!(
                    "http.cors_allowed_origins[{i}] {origin:?} must be \"*\" or an origin such as \"https://player.example.com\" (no path)"
                ));
            }
        }
        let hlsjs = &self.http.hlsjs_url;
        if let Err(why) = check_script_url(hlsjs) {
            p.push(format!("http.hlsjs_url {hlsjs:?} {why}"));
        }
        if let Some(integrity) = &self.http.hlsjs_integrity
            && !integrity.is_empty()
            && !is_sri_hash(integrity)
        {
            p.push(format!(
                "http.hlsjs_integrity {integrity:?} must be \"sha256-\", \"sha384-\" or \"sha512-\" followed by base64, or \"\""
            ));
        }

        if self.storage.data_dir.as_os_str().is_empty() {
            p.push("storage.data_dir must not be empty".to_string());
        }

        let seg = self.hls.segment_duration_secs;
        if !(1..=30).contains(&seg) {
            p.push(format!(
                "hls.segment_duration_secs must be between 1 and 30 (got {seg})"
            ));
        }
        let window = self.hls.playlist_window;
        if window < 3 {
            p.push(format!("hls.playlist_window must be at least 3 (got {window})"));
        }
        let grace = self.hls.reconnect_grace_secs;
        if grace > 3600 {
            p.push(format!("hls.reconnect_grace_secs must be at most 3600 (got {grace})"));
        }
        if self.encryption.segments_per_key == 0 {
            p.push("encryption.segments_per_key must be at least 1 (got 0)".to_string());
        }

        if let Some(keyring) = &self.kms.keyring
            && keyring.as_os_str().is_empty()
        {
            p.push("kms.keyring must not be empty (omit it for the default)".to_string());
        }
        validate_kms(&self.kms, p);

        let auth = &self.auth;
        if auth.token_secret_env.is_some() && auth.token_secret_file.is_some() {
            p.push("auth.token_secret_env and auth.token_secret_file are both set; set at most one".to_string());
        }
        if let Some(var) = &auth.token_secret_env
            && let Err(why) = check_env_name(var)
        {
            p.push(format!("auth.token_secret_env {var:?} {why}"));
        }
        if let Some(file) = &auth.token_secret_file
            && file.as_os_str().is_empty()
        {
            p.push("auth.token_secret_file must not be empty".to_string());
        }
        validate_auth(auth, p);

        for (i, s) in self.streams.iter().enumerate() {
            validate_stream(i, s, p);
        }
        validate_stream_uniqueness(&self.streams, p);
        problems
    }

    /// The local KMS keyring file: `kms.keyring`, else
    /// `<storage.data_dir>/keyring.json`.
    pub fn keyring_path(&self) -> PathBuf {
        match &self.kms.keyring {
            Some(path) => path.clone(),
            None => self.storage.data_dir.join("keyring.json"),
        }
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

    /// Reads the playback token secret: from `auth.token_secret_env` (set,
    /// at least 32 bytes), from `auth.token_secret_file` (trailing newlines
    /// removed, at least 32 bytes), or else from the generated
    /// `<data_dir>/token_secret`, created (mode 0600) on the first call and
    /// reused afterwards.
    pub fn resolve_token_secret(&self) -> Result<Secret, ConfigError> {
        self.resolve_token_secret_with(&os_env, &os_random)
    }

    /// [`Config::resolve_token_secret`] with the environment and RNG injected.
    fn resolve_token_secret_with(&self, env: EnvLookup<'_>, rng: RandomFill<'_>) -> Result<Secret, ConfigError> {
        let too_short = |what: String, len: usize| {
            ConfigError::one(format!(
                "{what} holds {len} bytes; a token secret needs at least {MIN_TOKEN_SECRET_BYTES}"
            ))
        };
        if let Some(var) = &self.auth.token_secret_env {
            let what = format!("auth.token_secret_env: environment variable {var}");
            let value = env(var)
                .filter(|v| !v.is_empty())
                .ok_or_else(|| ConfigError::one(format!("{what} is not set or empty")))?;
            let secret = Secret::new(value.into_encoded_bytes());
            if secret.len() < MIN_TOKEN_SECRET_BYTES {
                return Err(too_short(what, secret.len()));
            }
            return Ok(secret);
        }
        let (path, what) = match &self.auth.token_secret_file {
            Some(path) => (path.clone(), format!("auth.token_secret_file {}", path.display())),
            None => {
                let path = self.generated_token_secret_path();
                fs::create_dir_all(&self.storage.data_dir).map_err(|e| {
                    ConfigError::one(format!(
                        "storage.data_dir: cannot create {}: {e}",
                        self.storage.data_dir.display()
                    ))
                })?;
                let what = format!("generated token secret {}", path.display());
                let created = create_secret_file(&path, || generate_text(rng, ""))
                    .map_err(|e| ConfigError::one(format!("{what}: cannot create: {e}")))?;
                if created {
                    tracing::info!("generated a playback token secret in {}", path.display());
                }
                (path, what)
            }
        };
        let secret = read_secret_file(&path).map_err(|e| ConfigError::one(format!("{what}: cannot read: {e}")))?;
        if secret.len() < MIN_TOKEN_SECRET_BYTES {
            return Err(too_short(what, secret.len()));
        }
        Ok(secret)
    }

    /// Reads every stream's publish key. With no `[[streams]]`, returns the
    /// default stream `live/demo` whose key is generated on the first call
    /// (`<data_dir>/publish_keys/live.demo.key`, mode 0600) and reused
    /// afterwards. Lists every problem: unset variables, unreadable files,
    /// badly formed or duplicate keys.
    pub fn resolve_streams(&self) -> Result<Vec<ResolvedStream>, ConfigError> {
        self.resolve_streams_with(&os_env, &os_random)
    }

    /// [`Config::resolve_streams`] with the environment and RNG injected.
    fn resolve_streams_with(
        &self,
        env: EnvLookup<'_>,
        rng: RandomFill<'_>,
    ) -> Result<Vec<ResolvedStream>, ConfigError> {
        if self.streams.is_empty() {
            return self.resolve_default_stream(rng).map(|s| vec![s]);
        }
        let mut problems = Vec::new();
        let mut resolved = Vec::with_capacity(self.streams.len());
        for (i, s) in self.streams.iter().enumerate() {
            let got = match (&s.key, &s.key_env, &s.key_file) {
                (Some(key), None, None) => Ok((key.clone(), KeyOrigin::Inline, "key".to_string())),
                (None, Some(var), None) => {
                    let what = format!("key_env {var}");
                    match env(var).filter(|v| !v.is_empty()) {
                        Some(v) => Ok((Secret::new(v.into_encoded_bytes()), KeyOrigin::Env(var.clone()), what)),
                        None => Err(format!("streams[{i}].{what} is not set or empty")),
                    }
                }
                (None, None, Some(path)) => {
                    let what = format!("key_file {}", path.display());
                    match read_secret_file(path) {
                        Ok(key) => Ok((key, KeyOrigin::File(path.clone()), what)),
                        Err(e) => Err(format!("streams[{i}].{what}: cannot read: {e}")),
                    }
                }
                _ => Err(format!("streams[{i}] must set exactly one of key, key_env, key_file")),
            };
            match got {
                Ok((key, origin, what)) => {
                    if let Err(why) = check_publish_key(key.expose()) {
                        problems.push(format!("streams[{i}].{what}: the publish key {why}"));
                    }
                    resolved.push(ResolvedStream {
                        app: s.app.clone(),
                        name: s.name.clone(),
                        publish_key: key,
                        key_origin: origin,
                    });
                }
                Err(problem) => problems.push(problem),
            }
        }
        // Keys from different sources can still coincide once read.
        for (j, b) in resolved.iter().enumerate() {
            if let Some(a) = resolved[..j].iter().find(|a| a.publish_key == b.publish_key) {
                problems.push(format!(
                    "streams: {} and {} have the same publish key; publish keys must be unique",
                    a.path(),
                    b.path()
                ));
            }
        }
        if problems.is_empty() {
            Ok(resolved)
        } else {
            Err(ConfigError { problems })
        }
    }

    fn resolve_default_stream(&self, rng: RandomFill<'_>) -> Result<ResolvedStream, ConfigError> {
        let path = self.generated_publish_key_path(DEFAULT_APP, DEFAULT_STREAM);
        let what = format!("generated publish key {}", path.display());
        if let Some(dir) = path.parent() {
            create_private_dir(dir)
                .map_err(|e| ConfigError::one(format!("{what}: cannot create {}: {e}", dir.display())))?;
        }
        let created = create_secret_file(&path, || generate_text(rng, "sk_"))
            .map_err(|e| ConfigError::one(format!("{what}: cannot create: {e}")))?;
        if created {
            tracing::info!(
                stream = %format!("{DEFAULT_APP}/{DEFAULT_STREAM}"),
                "generated a publish key in {}",
                path.display()
            );
        }
        let key = read_secret_file(&path).map_err(|e| ConfigError::one(format!("{what}: cannot read: {e}")))?;
        if let Err(why) = check_publish_key(key.expose()) {
            return Err(ConfigError::one(format!(
                "{what}: the publish key {why}; delete the file to generate a new one"
            )));
        }
        Ok(ResolvedStream {
            app: DEFAULT_APP.to_string(),
            name: DEFAULT_STREAM.to_string(),
            publish_key: key,
            key_origin: KeyOrigin::Generated(path),
        })
    }
}

impl HttpConfig {
    /// The prefix for absolute URLs in playlists: `public_url` without a
    /// trailing `/`, or `""` (root-relative URLs) when it is absent. A key URI
    /// is `format!("{}/keys/{app}/{name}/{key_id}?edk=...", http.public_base())`.
    pub fn public_base(&self) -> &str {
        self.public_url.as_deref().map_or("", |url| url.trim_end_matches('/'))
    }

    /// The Subresource Integrity hash the watch page puts on hls.js, if any:
    /// `hlsjs_integrity` when set (`""` means none), else the pinned hash when
    /// `hlsjs_url` is the default.
    pub fn hlsjs_integrity(&self) -> Option<&str> {
        match self.hlsjs_integrity.as_deref() {
            Some("") => None,
            Some(hash) => Some(hash),
            None => (self.hlsjs_url == DEFAULT_HLSJS_URL).then_some(DEFAULT_HLSJS_INTEGRITY),
        }
    }
}

/// The `[auth]` keys beyond the token secret.
fn validate_auth(auth: &AuthConfig, p: &mut Vec<String>) {
    if auth.audience.as_deref().is_some_and(str::is_empty) {
        p.push("auth.audience must not be empty (omit it to not check aud)".to_string());
    }
    let ttl = auth.ticket_ttl_secs;
    if !(1..=3600).contains(&ttl) {
        p.push(format!("auth.ticket_ttl_secs must be between 1 and 3600 (got {ttl})"));
    }
    if auth.admin_token_env.is_some() && auth.admin_token_file.is_some() {
        p.push("auth.admin_token_env and auth.admin_token_file are both set; set at most one".to_string());
    }
    if let Some(var) = &auth.admin_token_env
        && let Err(why) = check_env_name(var)
    {
        p.push(format!("auth.admin_token_env {var:?} {why}"));
    }
    if let Some(file) = &auth.admin_token_file
        && file.as_os_str().is_empty()
    {
        p.push("auth.admin_token_file must not be empty".to_string());
    }
    let cache = &auth.key_cache;
    if cache.max_entries == 0 {
        p.push("auth.key_cache.max_entries must be at least 1 (got 0)".to_string());
    }
    if !(1..=86_400).contains(&cache.ttl_secs) {
        p.push(format!(
            "auth.key_cache.ttl_secs must be between 1 and 86400 (got {})",
            cache.ttl_secs
        ));
    }
    let replay = &auth.replay;
    if replay.max_entries == 0 {
        p.push("auth.replay.max_entries must be at least 1 (got 0)".to_string());
    }
    match (replay.backend, &replay.url) {
        (ReplayBackend::Redis, None) => {
            p.push("auth.replay.url must be set when auth.replay.backend is \"redis\"".to_string());
        }
        (ReplayBackend::Redis, Some(url)) => {
            if let Err(why) = RedisUrl::parse(url) {
                p.push(format!("auth.replay.url {url:?} {why}"));
            }
        }
        (ReplayBackend::Memory, Some(_)) => {
            p.push("auth.replay.url is only used with auth.replay.backend = \"redis\"".to_string());
        }
        (ReplayBackend::Memory, None) => {}
    }
    if replay.key_prefix.is_empty() {
        p.push("auth.replay.key_prefix must not be empty".to_string());
    }
    if !(1..=60_000).contains(&replay.timeout_ms) {
        p.push(format!(
            "auth.replay.timeout_ms must be between 1 and 60000 (got {})",
            replay.timeout_ms
        ));
    }
    if !(1..=64).contains(&replay.pool_size) {
        p.push(format!(
            "auth.replay.pool_size must be between 1 and 64 (got {})",
            replay.pool_size
        ));
    }
    if replay.password_env.is_some() && replay.password_file.is_some() {
        p.push("auth.replay.password_env and auth.replay.password_file are both set; set at most one".to_string());
    }
    if let Some(var) = &replay.password_env
        && let Err(why) = check_env_name(var)
    {
        p.push(format!("auth.replay.password_env {var:?} {why}"));
    }
    if let Some(file) = &replay.password_file
        && file.as_os_str().is_empty()
    {
        p.push("auth.replay.password_file must not be empty".to_string());
    }
}

/// Reads an optional secret named by an env var or a file (each `None` when
/// not configured); `what` is the key path without `_env`/`_file`.
fn resolve_optional_secret(
    what: &str,
    var: Option<&str>,
    file: Option<&Path>,
    min_bytes: usize,
    env: EnvLookup<'_>,
) -> Result<Option<Secret>, ConfigError> {
    let (secret, source) = match (var, file) {
        (Some(var), _) => {
            let source = format!("{what}_env: environment variable {var}");
            let value = env(var)
                .filter(|v| !v.is_empty())
                .ok_or_else(|| ConfigError::one(format!("{source} is not set or empty")))?;
            (Secret::new(value.into_encoded_bytes()), source)
        }
        (None, Some(path)) => {
            let source = format!("{what}_file {}", path.display());
            let secret = read_secret_file(path).map_err(|e| ConfigError::one(format!("{source}: cannot read: {e}")))?;
            (secret, source)
        }
        (None, None) => return Ok(None),
    };
    if secret.len() < min_bytes {
        return Err(ConfigError::one(format!(
            "{source} holds {} bytes; at least {min_bytes} are needed",
            secret.len()
        )));
    }
    Ok(Some(secret))
}

impl AuthConfig {
    /// The admin API's bearer token, `None` when neither `admin_token_env`
    /// nor `admin_token_file` is set (the admin API is then off).
    pub fn resolve_admin_token(&self) -> Result<Option<Secret>, ConfigError> {
        self.resolve_admin_token_with(&os_env)
    }

    fn resolve_admin_token_with(&self, env: EnvLookup<'_>) -> Result<Option<Secret>, ConfigError> {
        resolve_optional_secret(
            "auth.admin_token",
            self.admin_token_env.as_deref(),
            self.admin_token_file.as_deref(),
            MIN_ADMIN_TOKEN_BYTES,
            env,
        )
    }

    /// Whether the token secret is named explicitly (not generated into the
    /// data dir), as a key server that shares it with ingest servers needs.
    pub fn token_secret_is_configured(&self) -> bool {
        self.token_secret_env.is_some() || self.token_secret_file.is_some()
    }
}

impl ReplayConfig {
    /// The Redis password, if one is configured.
    pub fn resolve_password(&self) -> Result<Option<Secret>, ConfigError> {
        resolve_optional_secret(
            "auth.replay.password",
            self.password_env.as_deref(),
            self.password_file.as_deref(),
            1,
            &os_env,
        )
    }
}

fn validate_stream(i: usize, s: &StreamConfig, p: &mut Vec<String>) {
    for (field, value) in [("app", &s.app), ("name", &s.name)] {
        if value.is_empty() || value.chars().count() > MAX_NAME_CHARS {
            p.push(format!(
                "streams[{i}].{field} {value:?} must be 1 to {MAX_NAME_CHARS} characters long"
            ));
        } else if !value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            p.push(format!(
                "streams[{i}].{field} {value:?} may only contain A-Z a-z 0-9 _ -"
            ));
        }
    }
    if RESERVED_APPS.contains(&s.app.as_str()) {
        p.push(format!(
            "streams[{i}].app {:?} is reserved for sealcast's own URLs",
            s.app
        ));
    }

    let set: Vec<&str> = [
        ("key", s.key.is_some()),
        ("key_env", s.key_env.is_some()),
        ("key_file", s.key_file.is_some()),
    ]
    .into_iter()
    .filter_map(|(name, present)| present.then_some(name))
    .collect();
    match set.as_slice() {
        [] => p.push(format!(
            "streams[{i}] has no publish key: set one of key, key_env, key_file"
        )),
        [_] => {}
        many => p.push(format!(
            "streams[{i}] sets {}; set exactly one of key, key_env, key_file",
            many.join(" and ")
        )),
    }
    if let Some(key) = &s.key
        && let Err(why) = check_publish_key(key.expose())
    {
        // Never echo the key itself.
        p.push(format!("streams[{i}].key {why}"));
    }
    if let Some(var) = &s.key_env
        && let Err(why) = check_env_name(var)
    {
        p.push(format!("streams[{i}].key_env {var:?} {why}"));
    }
    if let Some(file) = &s.key_file
        && file.as_os_str().is_empty()
    {
        p.push(format!("streams[{i}].key_file must not be empty"));
    }
}

/// Duplicate `app/name` pairs and publish keys (same inline key, same env var
/// or same file) across `[[streams]]`.
fn validate_stream_uniqueness(streams: &[StreamConfig], p: &mut Vec<String>) {
    for (j, b) in streams.iter().enumerate() {
        let earlier = streams.get(..j).unwrap_or_default();
        if let Some(i) = earlier.iter().position(|a| a.app == b.app && a.name == b.name) {
            p.push(format!(
                "streams[{j}] duplicates stream {}/{} of streams[{i}]",
                b.app, b.name
            ));
        }
        let same_source = [
            ("key", earlier.iter().position(|a| a.key.is_some() && a.key == b.key)),
            (
                "key_env",
                earlier
                    .iter()
                    .position(|a| a.key_env.is_some() && a.key_env == b.key_env),
            ),
            (
                "key_file",
                earlier
                    .iter()
                    .position(|a| a.key_file.is_some() && a.key_file == b.key_file),
            ),
        ];
        for (field, found) in same_source {
            if let Some(i) = found {
                p.push(format!(
                    "streams[{j}].{field} is the same as streams[{i}].{field}; publish keys must be unique"
                ));
            }
        }
    }
}

fn check_publish_key(key: &[u8]) -> Result<(), String> {
    let ok_len = (MIN_PUBLISH_KEY_CHARS..=MAX_PUBLISH_KEY_CHARS).contains(&key.len());
    let ok_chars = key
        .iter()
        .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'~' | b'-'));
    if ok_len && ok_chars {
        Ok(())
    } else {
        Err(format!(
            "must be {MIN_PUBLISH_KEY_CHARS} to {MAX_PUBLISH_KEY_CHARS} characters from {PUBLISH_KEY_CHARS}"
        ))
    }
}

fn check_env_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() || name.contains(['=', '\0']) {
        Err("is not a valid environment variable name")
    } else {
        Ok(())
    }
}

/// `http(s)://host[:port][/path]`, no query or fragment.
fn check_public_url(url: &str) -> Result<(), &'static str> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or("must start with http:// or https://")?;
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty() {
        return Err("has no host");
    }
    if url.contains(['?', '#']) || url.contains(char::is_whitespace) {
        return Err("must not contain a query, fragment or spaces");
    }
    Ok(())
}

/// A script URL a Content-Security-Policy can name exactly: a public URL
/// without the characters that separate CSP sources and directives.
fn check_script_url(url: &str) -> Result<(), &'static str> {
    check_public_url(url)?;
    if url.contains([';', ',', '\'', '"', '<', '>']) || url.contains(|c: char| c.is_control() || !c.is_ascii()) {
        return Err("must not contain ; , quotes, angle brackets or non-ASCII characters");
    }
    Ok(())
}

/// `sha256-`, `sha384-` or `sha512-` and the digest in standard base64 of
/// the right length (W3C Subresource Integrity, section 3.5).
fn is_sri_hash(value: &str) -> bool {
    let Some((algorithm, digest)) = value.split_once('-') else {
        return false;
    };
    let digest_bytes = match algorithm {
        "sha256" => 32,
        "sha384" => 48,
        "sha512" => 64,
        _ => return false,
    };
    base64::engine::general_purpose::STANDARD
        .decode(digest)
        .is_ok_and(|d| d.len() == digest_bytes)
}

/// The `[kms]` keys that depend on the provider.
fn validate_kms(kms: &KmsConfig, p: &mut Vec<String>) {
    let aws_keys = [
        ("key_id", kms.key_id.is_some()),
        ("region", kms.region.is_some()),
        ("endpoint", kms.endpoint.is_some()),
        ("profile", kms.profile.is_some()),
    ];
    match kms.provider {
        KmsProvider::Local => {
            for (key, set) in aws_keys {
                if set {
                    p.push(format!("kms.{key} applies only to provider \"aws\""));
                }
            }
        }
        KmsProvider::Aws => {
            if kms.keyring.is_some() {
                p.push("kms.keyring applies only to provider \"local\"".to_string());
            }
            match kms.key_id.as_deref() {
                None => p.push(
                    "kms.key_id is required when kms.provider is \"aws\" (a key id, key ARN, alias/NAME or alias ARN)"
                        .to_string(),
                ),
                Some(id) if id.is_empty() || id.len() > 2048 || id.contains(char::is_whitespace) => p.push(format!(
                    "kms.key_id {id:?} must be a key id, key ARN, alias/NAME or alias ARN"
                )),
                Some(_) => {}
            }
            if let Some(region) = &kms.region {
                let ok = !region.is_empty()
                    && region.len() <= 32
                    && region
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
                if !ok {
                    p.push(format!(
                        "kms.region {region:?} must be a region name such as \"eu-west-1\""
                    ));
                }
            }
            if let Some(endpoint) = &kms.endpoint
                && check_kms_endpoint(endpoint).is_err()
            {
                p.push(format!(
                    "kms.endpoint {endpoint:?} must be http://host[:port] or https://host[:port] (no path or query)"
                ));
            }
            if kms.profile.as_deref().is_some_and(str::is_empty) {
                p.push("kms.profile must not be empty (omit it for the default)".to_string());
            }
        }
    }
    let timeout = kms.request_timeout_ms;
    if !(100..=60_000).contains(&timeout) {
        p.push(format!(
            "kms.request_timeout_ms must be between 100 and 60000 (got {timeout})"
        ));
    }
}

/// A KMS endpoint: `http(s)://host[:port]`, optionally with a trailing `/`.
fn check_kms_endpoint(endpoint: &str) -> Result<(), ()> {
    let rest = endpoint
        .strip_prefix("https://")
        .or_else(|| endpoint.strip_prefix("http://"))
        .ok_or(())?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let bad = rest.is_empty() || rest.contains(['/', '?', '#', '@']) || rest.contains(char::is_whitespace);
    if bad { Err(()) } else { Ok(()) }
}

/// A browser origin: `http(s)://host[:port]` with no path.
fn check_origin(origin: &str) -> Result<(), ()> {
    let rest = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
        .ok_or(())?;
    let bad = rest.is_empty() || rest.contains(['/', '?', '#', '*']) || rest.contains(char::is_whitespace);
    if bad { Err(()) } else { Ok(()) }
}

/// Turns a toml error into one line: the key path when the error points into
/// the document's keys, toml's own message (which names an unknown key), and
/// the position.
fn describe_toml_error(text: &str, err: &toml::de::Error) -> String {
    let message = err.message().trim_end();
    let Some(span) = err.span() else {
        return message.to_string();
    };
    let (line, column) = line_column(text, span.start);
    match key_path_at(text, span.start) {
        Some(path) => format!("{path}: {message} (line {line}, column {column})"),
        None => format!("TOML syntax error at line {line}, column {column}: {message}"),
    }
}

/// 1-based line and column (in characters) of byte offset `at`.
fn line_column(text: &str, at: usize) -> (usize, usize) {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    let before = text.get(..at).unwrap_or_default();
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
    (line, column)
}

/// The dotted key path (`hls.segment_duration`, `streams[1].name`) of the
/// innermost key or value whose source span contains byte offset `at`.
/// `None` when the document does not parse (a syntax error has no key).
fn key_path_at(text: &str, at: usize) -> Option<String> {
    let root = toml::de::DeTable::parse(text).ok()?;
    let mut path = String::new();
    find_in_table(root.get_ref(), at, &mut path).then_some(path)
}

fn find_in_table(table: &toml::de::DeTable<'_>, at: usize, path: &mut String) -> bool {
    for (key, value) in table {
        let len = path.len();
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(key.get_ref());
        if find_in_value(value, at, path) || key.span().contains(&at) {
            return true;
        }
        path.truncate(len);
    }
    false
}

fn find_in_value(value: &toml::Spanned<toml::de::DeValue<'_>>, at: usize, path: &mut String) -> bool {
    match value.get_ref() {
        toml::de::DeValue::Table(table) => find_in_table(table, at, path) || value.span().contains(&at),
        toml::de::DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                if find_in_value(item, at, path) {
                    return true;
                }
                path.truncate(len);
            }
            value.span().contains(&at)
        }
        _ => value.span().contains(&at),
    }
}

/// `prefix` + 32 random bytes in unpadded base64url (43 characters).
fn generate_text(rng: RandomFill<'_>, prefix: &str) -> io::Result<String> {
    let mut bytes = zeroize::Zeroizing::new([0u8; 32]);
    rng(bytes.as_mut())?;
    let mut text = String::with_capacity(prefix.len() + 44);
    text.push_str(prefix);
    URL_SAFE_NO_PAD.encode_string(bytes.as_ref(), &mut text);
    Ok(text)
}

/// Reads a secret file, dropping trailing `\n` / `\r`. Warns when the file
/// is readable by other users.
fn read_secret_file(path: &Path) -> io::Result<Secret> {
    let mut bytes = fs::read(path)?;
    while matches!(bytes.last(), Some(b'\n' | b'\r')) {
        bytes.pop();
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if let Ok(meta) = fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!("{} is accessible to other users; chmod 600 it", path.display());
        }
    }
    Ok(Secret::new(bytes))
}

/// Creates `path` holding `make()` plus a newline, mode 0600, unless it
/// exists. Returns whether it created the file.
///
/// The content is written to a staging file first and then hard-linked into
/// place; the link fails if `path` exists, so a crash never leaves a partial
/// secret and two concurrent starts agree on one secret.
fn create_secret_file(path: &Path, make: impl FnOnce() -> io::Result<String>) -> io::Result<bool> {
    match fs::symlink_metadata(path) {
        Ok(_) => return Ok(false),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let text = zeroize::Zeroizing::new(make()? + "\n");
    match crate::storage::write_private_atomic(path, text.as_bytes(), crate::storage::Place::New) {
        Ok(()) => Ok(true),
        // Another start created it first: theirs is the secret.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

/// Creates `dir` and its parents; the last component gets mode 0700.
fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder.create(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> Vec<String> {
        match Config::from_toml_str(text) {
            Ok(_) => Vec::new(),
            Err(e) => e.problems,
        }
    }

    #[test]
    fn empty_file_is_the_default() {
        assert_eq!(Config::from_toml_str(""), Ok(Config::default()));
        assert_eq!(Config::from_toml_str("# nothing\n\n"), Ok(Config::default()));
    }

    #[test]
    fn default_values() {
        let c = Config::default();
        assert_eq!(c.rtmp.listen.to_string(), "127.0.0.1:1935");
        assert_eq!(c.rtmp.max_connections, 1000);
        assert_eq!(c.rtmp.idle_timeout_secs, 30);
        assert_eq!(c.rtmp.max_connections_per_ip, 32);
        assert_eq!(c.rtmp.handshake_timeout_secs, 10);
        assert_eq!(c.rtmp.max_message_bytes, 8_388_608);
        assert_eq!(c.rtmp.max_chunk_size_bytes, 65536);
        assert_eq!(c.http.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.http.public_url, None);
        assert_eq!(c.http.public_base(), "");
        assert_eq!(c.http.cors_allowed_origins, vec!["*".to_string()]);
        assert_eq!(c.http.hlsjs_url, DEFAULT_HLSJS_URL);
        assert_eq!(c.http.hlsjs_integrity(), Some(DEFAULT_HLSJS_INTEGRITY));
        assert_eq!(c.storage.data_dir, PathBuf::from("./sealcast-data"));
        assert_eq!(c.hls.segment_duration_secs, 4);
        assert_eq!(c.hls.playlist_window, 6);
        assert_eq!(c.encryption.segments_per_key, 1);
        assert_eq!(c.kms.provider, KmsProvider::Local);
        assert_eq!(c.kms.keyring, None);
        assert_eq!(c.kms.key_id, None);
        assert_eq!(c.kms.request_timeout_ms, 2000);
        assert_eq!(c.auth, AuthConfig::default());
        assert_eq!(c.auth.audience, None);
        assert!(!c.auth.one_time_key_tickets);
        assert_eq!(c.auth.ticket_ttl_secs, 60);
        assert_eq!(
            (c.auth.admin_token_env.as_ref(), c.auth.admin_token_file.as_ref()),
            (None, None)
        );
        assert_eq!((c.auth.key_cache.max_entries, c.auth.key_cache.ttl_secs), (10_000, 600));
        let replay = &c.auth.replay;
        assert_eq!(replay.backend, ReplayBackend::Memory);
        assert_eq!(replay.max_entries, 1_000_000);
        assert_eq!(replay.url, None);
        assert_eq!(replay.key_prefix, "sealcast:ticket:");
        assert_eq!((replay.timeout_ms, replay.pool_size), (500, 4));
        assert!(c.streams.is_empty());
        assert_eq!(c.keyring_path(), PathBuf::from("./sealcast-data/keyring.json"));
        assert_eq!(
            c.generated_token_secret_path(),
            PathBuf::from("./sealcast-data/token_secret")
        );
        assert_eq!(
            c.generated_publish_key_path("live", "demo"),
            PathBuf::from("./sealcast-data/publish_keys/live.demo.key")
        );
        assert_eq!(c.validate(), Vec::<String>::new());
    }

    #[test]
    fn example_file_parses_and_validates() {
        let text = include_str!("../../sealcast.example.toml");
        let c = Config::from_toml_str(text).unwrap();
        // Every value differs from the default, so a key the parser silently
        // dropped would show up here.
        assert_eq!(c.rtmp.listen.to_string(), "0.0.0.0:1935");
        assert_eq!(c.rtmp.max_connections, 500);
        assert_eq!(c.rtmp.idle_timeout_secs, 20);
        assert_eq!(c.rtmp.max_connections_per_ip, 8);
        assert_eq!(c.rtmp.handshake_timeout_secs, 5);
        assert_eq!(c.rtmp.max_message_bytes, 4_194_304);
        assert_eq!(c.rtmp.max_chunk_size_bytes, 131_072);
        assert_eq!(c.http.listen.to_string(), "[::]:8080");
        assert_eq!(c.http.public_url.as_deref(), Some("https://video.example.com/"));
        assert_eq!(c.http.public_base(), "https://video.example.com");
        assert_eq!(
            c.http.cors_allowed_origins,
            vec!["https://player.example.com".to_string()]
        );
        assert_eq!(
            c.http.hlsjs_url,
            "https://video.example.com/assets/hls.js@1.7.4/hls.min.js"
        );
        assert_eq!(
            c.http.hlsjs_integrity(),
            Some("sha384-p9vgU/7IYJWd3I4STrtqxqR/2cAQlhIX7D/HrTnIMEjjcUox165b7se7sxmm3zDg")
        );
        assert_eq!(c.storage.data_dir, PathBuf::from("/var/lib/sealcast"));
        assert_eq!(c.hls.segment_duration_secs, 6);
        assert_eq!(c.hls.playlist_window, 5);
        assert_eq!(c.encryption.segments_per_key, 10);
        assert_eq!(c.kms.keyring, Some(PathBuf::from("/etc/sealcast/keyring.json")));
        assert_eq!(c.kms.request_timeout_ms, 3000);
        assert_eq!(c.keyring_path(), PathBuf::from("/etc/sealcast/keyring.json"));
        assert_eq!(c.auth.token_secret_env.as_deref(), Some("SEALCAST_TOKEN_SECRET"));
        assert_eq!(c.auth.token_secret_file, None);
        assert_eq!(c.auth.audience.as_deref(), Some("sealcast-viewers"));
        assert!(c.auth.one_time_key_tickets);
        assert_eq!(c.auth.ticket_ttl_secs, 30);
        assert_eq!(c.auth.admin_token_env.as_deref(), Some("SEALCAST_ADMIN_TOKEN"));
        assert_eq!(c.auth.admin_token_file, None);
        assert_eq!(
            c.auth.key_cache,
            KeyCacheConfig {
                max_entries: 50_000,
                ttl_secs: 300
            }
        );
        assert_eq!(
            c.auth.replay,
            ReplayConfig {
                backend: ReplayBackend::Redis,
                max_entries: 2_000_000,
                url: Some("redis://10.0.0.5:6379/1".into()),
                key_prefix: "video:ticket:".into(),
                timeout_ms: 250,
                pool_size: 8,
                password_env: Some("SEALCAST_REDIS_PASSWORD".into()),
                password_file: None,
            }
        );
        let streams: Vec<_> = c
            .streams
            .iter()
            .map(|s| {
                (
                    s.app.as_str(),
                    s.name.as_str(),
                    s.key.is_some(),
                    s.key_env.as_deref(),
                    s.key_file.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            streams,
            vec![
                ("live", "main", false, None, Some(Path::new("/etc/sealcast/main.key"))),
                ("live", "backup", false, Some("SEALCAST_BACKUP_KEY"), None),
            ]
        );
    }

    #[test]
    fn aws_kms_table() {
        let c = Config::from_toml_str(
            "[kms]\nprovider = \"aws\"\nkey_id = \"alias/sealcast\"\nregion = \"eu-west-1\"\n\
             endpoint = \"http://127.0.0.1:4566/\"\nprofile = \"ops\"\nrequest_timeout_ms = 1500\n",
        )
        .unwrap();
        assert_eq!(c.kms.provider, KmsProvider::Aws);
        assert_eq!(c.kms.key_id.as_deref(), Some("alias/sealcast"));
        assert_eq!(c.kms.region.as_deref(), Some("eu-west-1"));
        assert_eq!(c.kms.endpoint.as_deref(), Some("http://127.0.0.1:4566/"));
        assert_eq!(c.kms.profile.as_deref(), Some("ops"));
        assert_eq!(c.kms.request_timeout_ms, 1500);
        // Region, endpoint and profile are optional.
        let minimal =
            Config::from_toml_str("[kms]\nprovider = \"aws\"\nkey_id = \"1234abcd-12ab-34cd-56ef-1234567890ab\"\n");
        assert!(minimal.is_ok(), "{minimal:?}");
        for endpoint in ["https://kms.example.com", "http://[::1]:4566", "http://kms:80/"] {
            assert_eq!(check_kms_endpoint(endpoint), Ok(()), "{endpoint}");
        }
        for endpoint in ["kms.example.com", "http://", "http://a/b", "http://a?x", "http://u@a"] {
            assert_eq!(check_kms_endpoint(endpoint), Err(()), "{endpoint}");
        }
    }

    #[test]
    fn unknown_keys_name_the_key() {
        let cases = [
            (
                "[hls]\nsegment_duration = 4\n",
                "hls.segment_duration: unknown field `segment_duration`, expected one of `segment_duration_secs`, `playlist_window`, `reconnect_grace_secs` (line 2, column 1)",
            ),
            (
                "listen = \"127.0.0.1:1\"\n",
                "listen: unknown field `listen`, expected one of `rtmp`, `http`, `storage`, `hls`, `encryption`, `kms`, `auth`, `streams` (line 1, column 1)",
            ),
            (
                "[rtmpp]\n",
                "rtmpp: unknown field `rtmpp`, expected one of `rtmp`, `http`, `storage`, `hls`, `encryption`, `kms`, `auth`, `streams` (line 1, column 2)",
            ),
            (
                "hls.playlist = 3\n",
                "hls.playlist: unknown field `playlist`, expected one of `segment_duration_secs`, `playlist_window`, `reconnect_grace_secs` (line 1, column 5)",
            ),
            (
                "[[streams]]\napp = \"live\"\nname = \"a\"\nkey_env = \"A\"\n\n[[streams]]\napp = \"live\"\nnmae = \"b\"\n",
                "streams[1].nmae: unknown field `nmae`, expected one of `app`, `name`, `key`, `key_env`, `key_file` (line 8, column 1)",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(problems(text), vec![want.to_string()], "{text}");
        }
    }

    #[test]
    fn type_errors_name_the_key() {
        let cases = [
            (
                "[rtmp]\nlisten = \"localhost:1935\"\n",
                "rtmp.listen: invalid value: string \"localhost:1935\", expected an IP address and port such as 127.0.0.1:1935 (line 2, column 10)",
            ),
            (
                "[http]\nlisten = \"127.0.0.1\"\n",
                "http.listen: invalid value: string \"127.0.0.1\", expected an IP address and port such as 127.0.0.1:1935 (line 2, column 10)",
            ),
            (
                "[hls]\nplaylist_window = \"six\"\n",
                "hls.playlist_window: invalid type: string \"six\", expected u32 (line 2, column 19)",
            ),
            (
                "[encryption]\nsegments_per_key = -1\n",
                "encryption.segments_per_key: invalid value: integer `-1`, expected u32 (line 2, column 20)",
            ),
            (
                "[kms]\nprovider = \"vault\"\n",
                "kms.provider: unknown variant `vault`, expected `local` or `aws` (line 2, column 12)",
            ),
            (
                "[[streams]]\napp = \"live\"\n",
                "streams[0]: missing field `name` (line 1, column 1)",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(problems(text), vec![want.to_string()], "{text}");
        }
    }

    #[test]
    fn syntax_error_has_position() {
        assert_eq!(
            problems("[hls]\nplaylist_window = \n"),
            vec![
                "TOML syntax error at line 2, column 19: string values must be quoted, expected literal string"
                    .to_string()
            ]
        );
    }

    #[test]
    fn validation_messages() {
        let stream = |extra: &str| format!("[[streams]]\napp = \"live\"\nname = \"demo\"\n{extra}\n");
        let cases: Vec<(String, &str)> = vec![
            (
                "[hls]\nplaylist_window = 2\n".into(),
                "hls.playlist_window must be at least 3 (got 2)",
            ),
            (
                "[hls]\nsegment_duration_secs = 0\n".into(),
                "hls.segment_duration_secs must be between 1 and 30 (got 0)",
            ),
            (
                "[hls]\nsegment_duration_secs = 31\n".into(),
                "hls.segment_duration_secs must be between 1 and 30 (got 31)",
            ),
            (
                "[encryption]\nsegments_per_key = 0\n".into(),
                "encryption.segments_per_key must be at least 1 (got 0)",
            ),
            (
                "[rtmp]\nmax_connections = 0\n".into(),
                "rtmp.max_connections must be at least 1",
            ),
            (
                "[rtmp]\nidle_timeout_secs = 0\n".into(),
                "rtmp.idle_timeout_secs must be at least 1",
            ),
            (
                "[rtmp]\nmax_connections_per_ip = 0\n".into(),
                "rtmp.max_connections_per_ip must be at least 1",
            ),
            (
                "[rtmp]\nhandshake_timeout_secs = 0\n".into(),
                "rtmp.handshake_timeout_secs must be at least 1",
            ),
            (
                "[rtmp]\nmax_message_bytes = 1000\n".into(),
                "rtmp.max_message_bytes must be between 65536 and 16777215 (got 1000)",
            ),
            (
                "[rtmp]\nmax_message_bytes = 16777216\n".into(),
                "rtmp.max_message_bytes must be between 65536 and 16777215 (got 16777216)",
            ),
            (
                "[rtmp]\nmax_chunk_size_bytes = 0\n".into(),
                "rtmp.max_chunk_size_bytes must be between 128 and 2147483647 (got 0)",
            ),
            (
                "[rtmp]\nmax_chunk_size_bytes = 2147483648\n".into(),
                "rtmp.max_chunk_size_bytes must be between 128 and 2147483647 (got 2147483648)",
            ),
            (
                "[http]\nlisten = \"127.0.0.1:1935\"\n".into(),
                "http.listen 127.0.0.1:1935 is the same address as rtmp.listen",
            ),
            (
                "[http]\npublic_url = \"video.example.com\"\n".into(),
                "http.public_url \"video.example.com\" must start with http:// or https://",
            ),
            (
                "[http]\npublic_url = \"https://\"\n".into(),
                "http.public_url \"https://\" has no host",
            ),
            (
                "[http]\npublic_url = \"https://a.example/x?y=1\"\n".into(),
                "http.public_url \"https://a.example/x?y=1\" must not contain a query, fragment or spaces",
            ),
            (
                "[http]\ncors_allowed_origins = [\"*\", \"https://a.example/\"]\n".into(),
                "http.cors_allowed_origins[1] \"https://a.example/\" must be \"*\" or an origin such as \"https://player.example.com\" (no path)",
            ),
            (
                "[storage]\ndata_dir = \"\"\n".into(),
                "storage.data_dir must not be empty",
            ),
            (
                "[kms]\nkeyring = \"\"\n".into(),
                "kms.keyring must not be empty (omit it for the default)",
            ),
            (
                "[kms]\nregion = \"eu-west-1\"\n".into(),
                "kms.region applies only to provider \"aws\"",
            ),
            (
                "[kms]\nprovider = \"aws\"\n".into(),
                "kms.key_id is required when kms.provider is \"aws\" (a key id, key ARN, alias/NAME or alias ARN)",
            ),
            (
                "[kms]\nprovider = \"aws\"\nkey_id = \"alias/x\"\nkeyring = \"/k.json\"\n".into(),
                "kms.keyring applies only to provider \"local\"",
            ),
            (
                "[kms]\nprovider = \"aws\"\nkey_id = \"alias x\"\n".into(),
                "kms.key_id \"alias x\" must be a key id, key ARN, alias/NAME or alias ARN",
            ),
            (
                "[kms]\nprovider = \"aws\"\nkey_id = \"k\"\nregion = \"EU West\"\n".into(),
                "kms.region \"EU West\" must be a region name such as \"eu-west-1\"",
            ),
            (
                "[kms]\nprovider = \"aws\"\nkey_id = \"k\"\nendpoint = \"http://kms.local/v1\"\n".into(),
                "kms.endpoint \"http://kms.local/v1\" must be http://host[:port] or https://host[:port] (no path or query)",
            ),
            (
                "[kms]\nprovider = \"aws\"\nkey_id = \"k\"\nprofile = \"\"\n".into(),
                "kms.profile must not be empty (omit it for the default)",
            ),
            (
                "[kms]\nrequest_timeout_ms = 50\n".into(),
                "kms.request_timeout_ms must be between 100 and 60000 (got 50)",
            ),
            (
                "[auth]\ntoken_secret_env = \"S\"\ntoken_secret_file = \"/s\"\n".into(),
                "auth.token_secret_env and auth.token_secret_file are both set; set at most one",
            ),
            (
                "[auth]\ntoken_secret_env = \"A=B\"\n".into(),
                "auth.token_secret_env \"A=B\" is not a valid environment variable name",
            ),
            (
                "[[streams]]\napp = \"live\"\nname = \"a b\"\nkey_env = \"K\"\n".into(),
                "streams[0].name \"a b\" may only contain A-Z a-z 0-9 _ -",
            ),
            (
                "[[streams]]\napp = \"live/x\"\nname = \"a\"\nkey_env = \"K\"\n".into(),
                "streams[0].app \"live/x\" may only contain A-Z a-z 0-9 _ -",
            ),
            (
                "[[streams]]\napp = \"\"\nname = \"a\"\nkey_env = \"K\"\n".into(),
                "streams[0].app \"\" must be 1 to 64 characters long",
            ),
            (
                format!(
                    "[[streams]]\napp = \"live\"\nname = \"{}\"\nkey_env = \"K\"\n",
                    "n".repeat(65)
                ),
                "streams[0].name \"nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn\" must be 1 to 64 characters long",
            ),
            (
                "[[streams]]\napp = \"keys\"\nname = \"a\"\nkey_env = \"K\"\n".into(),
                "streams[0].app \"keys\" is reserved for sealcast's own URLs",
            ),
            (
                "[[streams]]\napp = \"watch\"\nname = \"a\"\nkey_env = \"K\"\n".into(),
                "streams[0].app \"watch\" is reserved for sealcast's own URLs",
            ),
            (
                "[http]\nhlsjs_url = \"//cdn.example/hls.js\"\n".into(),
                "http.hlsjs_url \"//cdn.example/hls.js\" must start with http:// or https://",
            ),
            (
                "[http]\nhlsjs_url = \"https://cdn.example/hls.js?v=1\"\n".into(),
                "http.hlsjs_url \"https://cdn.example/hls.js?v=1\" must not contain a query, fragment or spaces",
            ),
            (
                "[http]\nhlsjs_url = \"https://cdn.example/a;b.js\"\n".into(),
                "http.hlsjs_url \"https://cdn.example/a;b.js\" must not contain ; , quotes, angle brackets or non-ASCII characters",
            ),
            (
                "[http]\nhlsjs_integrity = \"sha384-abc\"\n".into(),
                "http.hlsjs_integrity \"sha384-abc\" must be \"sha256-\", \"sha384-\" or \"sha512-\" followed by base64, or \"\"",
            ),
            (
                "[http]\nhlsjs_integrity = \"md5-1B2M2Y8AsgTpgAmY7PhCfg==\"\n".into(),
                "http.hlsjs_integrity \"md5-1B2M2Y8AsgTpgAmY7PhCfg==\" must be \"sha256-\", \"sha384-\" or \"sha512-\" followed by base64, or \"\"",
            ),
            (
                stream(""),
                "streams[0] has no publish key: set one of key, key_env, key_file",
            ),
            (
                stream("key = \"sk_0123456789abcdef\"\nkey_env = \"K\""),
                "streams[0] sets key and key_env; set exactly one of key, key_env, key_file",
            ),
            (
                stream("key = \"sk_0123456789abcdef\"\nkey_env = \"K\"\nkey_file = \"/k\""),
                "streams[0] sets key and key_env and key_file; set exactly one of key, key_env, key_file",
            ),
            (
                stream("key = \"short\""),
                "streams[0].key must be 16 to 256 characters from A-Z a-z 0-9 . _ ~ -",
            ),
            (
                stream("key = \"sk_0123456789abcdef/\""),
                "streams[0].key must be 16 to 256 characters from A-Z a-z 0-9 . _ ~ -",
            ),
            (stream("key_file = \"\""), "streams[0].key_file must not be empty"),
        ];
        for (text, want) in &cases {
            assert_eq!(problems(text), vec![want.to_string()], "{text}");
        }
    }

    #[test]
    fn duplicates() {
        let text = "
            [[streams]]
            app = \"live\"
            name = \"a\"
            key = \"sk_0123456789abcdef\"
            [[streams]]
            app = \"live\"
            name = \"a\"
            key_env = \"KEY_A\"
            [[streams]]
            app = \"live\"
            name = \"b\"
            key = \"sk_0123456789abcdef\"
            [[streams]]
            app = \"other\"
            name = \"a\"
            key_env = \"KEY_A\"
            [[streams]]
            app = \"other\"
            name = \"b\"
            key_file = \"/k\"
            [[streams]]
            app = \"other\"
            name = \"c\"
            key_file = \"/k\"
        ";
        assert_eq!(
            problems(text),
            vec![
                "streams[1] duplicates stream live/a of streams[0]",
                "streams[2].key is the same as streams[0].key; publish keys must be unique",
                "streams[3].key_env is the same as streams[1].key_env; publish keys must be unique",
                "streams[5].key_file is the same as streams[4].key_file; publish keys must be unique",
            ]
        );
    }

    #[test]
    fn every_problem_is_listed_together() {
        let text = "
            [hls]
            segment_duration_secs = 40
            playlist_window = 1
            [encryption]
            segments_per_key = 0
            [auth]
            token_secret_env = \"S\"
            token_secret_file = \"/s\"
            [[streams]]
            app = \"live\"
            name = \"a b\"
        ";
        let err = Config::from_toml_str(text).unwrap_err();
        let want = [
            "hls.segment_duration_secs must be between 1 and 30 (got 40)",
            "hls.playlist_window must be at least 3 (got 1)",
            "encryption.segments_per_key must be at least 1 (got 0)",
            "auth.token_secret_env and auth.token_secret_file are both set; set at most one",
            "streams[0].name \"a b\" may only contain A-Z a-z 0-9 _ -",
            "streams[0] has no publish key: set one of key, key_env, key_file",
        ];
        assert_eq!(err.problems, want);
        assert_eq!(err.to_string(), want.join("\n"));
    }

    #[test]
    fn inline_key_is_never_printed() {
        let text = "[[streams]]\napp = \"live\"\nname = \"a\"\nkey = \"sk_do-not-print-me\"\n";
        let c = Config::from_toml_str(text).unwrap();
        assert!(!format!("{c:?}").contains("do-not-print"));
        let bad = "[[streams]]\napp = \"live\"\nname = \"a\"\nkey = \"bad key!\"\nkey_env = \"X\"\n";
        let err = Config::from_toml_str(bad).unwrap_err();
        assert_eq!(err.problems.len(), 2);
        assert!(!err.to_string().contains("bad key!"));
    }

    #[test]
    fn hlsjs_integrity_follows_the_url() {
        let own = "https://static.example/hls.min.js";
        let hash = "sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=";
        let cases = [
            (DEFAULT_HLSJS_URL, None, Some(DEFAULT_HLSJS_INTEGRITY)),
            (DEFAULT_HLSJS_URL, Some(""), None),
            (DEFAULT_HLSJS_URL, Some(hash), Some(hash)),
            (own, None, None),
            (own, Some(hash), Some(hash)),
        ];
        for (url, integrity, want) in cases {
            let http = HttpConfig {
                hlsjs_url: url.to_string(),
                hlsjs_integrity: integrity.map(str::to_string),
                ..HttpConfig::default()
            };
            assert_eq!(http.hlsjs_integrity(), want, "{url} {integrity:?}");
        }
        assert!(is_sri_hash(DEFAULT_HLSJS_INTEGRITY));
        assert!(is_sri_hash(hash));
        assert!(!is_sri_hash("sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU"));
        assert!(!is_sri_hash("sha384-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="));
    }

    #[test]
    fn public_base_trims_slashes() {
        let cases = [
            (None, ""),
            (Some("https://v.example"), "https://v.example"),
            (Some("https://v.example/"), "https://v.example"),
            (Some("https://v.example/tv/"), "https://v.example/tv"),
        ];
        for (url, want) in cases {
            let http = HttpConfig {
                public_url: url.map(str::to_string),
                ..HttpConfig::default()
            };
            assert_eq!(http.public_base(), want);
        }
    }

    #[test]
    fn load_reads_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sealcast.toml");
        fs::write(&path, "[hls]\nplaylist_window = 9\n").unwrap();
        assert_eq!(Config::load(&path).unwrap().hls.playlist_window, 9);
        let missing = dir.path().join("missing.toml");
        let err = Config::load(&missing).unwrap_err();
        assert_eq!(err.problems.len(), 1);
        assert!(
            err.problems[0].starts_with(&format!("cannot read {}: ", missing.display())),
            "{err}"
        );
    }

    // --- secrets -------------------------------------------------------

    /// A deterministic RNG for tests: 0, 1, 2, ...
    fn counting_rng(dest: &mut [u8]) -> io::Result<()> {
        for (b, i) in dest.iter_mut().zip(0u8..) {
            *b = i;
        }
        Ok(())
    }

    fn in_dir(dir: &Path, extra: &str) -> Config {
        let text = format!("[storage]\ndata_dir = {:?}\n{extra}", dir.display().to_string());
        Config::from_toml_str(&text).unwrap()
    }

    fn no_env(_: &str) -> Option<OsString> {
        None
    }

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt as _;
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn generated_token_secret_is_private_and_stable() {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("data");
        let c = in_dir(&data_dir, "");
        let first = c.resolve_token_secret().unwrap();
        let path = data_dir.join("token_secret");
        #[cfg(unix)]
        assert_eq!(mode(&path), 0o600);
        assert_eq!(first.len(), 43);
        let on_disk = fs::read(&path).unwrap();
        assert_eq!(on_disk, [first.expose(), b"\n"].concat());
        let second = c.resolve_token_secret().unwrap();
        assert_eq!(first, second);
        // Only the secret remains: no staging files.
        let names: Vec<_> = fs::read_dir(&data_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![OsString::from("token_secret")]);
    }

    #[test]
    fn generated_secret_uses_the_rng() {
        let dir = tempfile::tempdir().unwrap();
        let c = in_dir(dir.path(), "");
        let secret = c.resolve_token_secret_with(&no_env, &counting_rng).unwrap();
        let want: Vec<u8> = (0u8..32).collect();
        assert_eq!(secret.expose(), URL_SAFE_NO_PAD.encode(want).as_bytes());
    }

    #[test]
    fn token_secret_from_env() {
        let c = Config::from_toml_str("[auth]\ntoken_secret_env = \"TS\"\n").unwrap();
        let long = "x".repeat(32);
        let env = |name: &str| (name == "TS").then(|| OsString::from(&long));
        let secret = c.resolve_token_secret_with(&env, &os_random).unwrap();
        assert_eq!(secret.expose(), long.as_bytes());

        let cases = [
            (
                None,
                "auth.token_secret_env: environment variable TS is not set or empty",
            ),
            (
                Some(""),
                "auth.token_secret_env: environment variable TS is not set or empty",
            ),
            (
                Some("0123456789012345678901234567890"),
                "auth.token_secret_env: environment variable TS holds 31 bytes; a token secret needs at least 32",
            ),
        ];
        for (value, want) in cases {
            let env = |_: &str| value.map(OsString::from);
            let err = c.resolve_token_secret_with(&env, &os_random).unwrap_err();
            assert_eq!(err.problems, vec![want.to_string()], "{value:?}");
        }
    }

    #[test]
    fn token_secret_from_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ts");
        let c = in_dir(
            &dir.path().join("data"),
            &format!("[auth]\ntoken_secret_file = {:?}\n", path.display().to_string()),
        );
        fs::write(&path, "0123456789abcdef0123456789abcdef\r\n\n").unwrap();
        let secret = c.resolve_token_secret_with(&no_env, &os_random).unwrap();
        assert_eq!(secret.expose(), b"0123456789abcdef0123456789abcdef");
        // Nothing is generated when a file is named.
        assert!(!dir.path().join("data").exists());

        fs::write(&path, "short\n").unwrap();
        let err = c.resolve_token_secret_with(&no_env, &os_random).unwrap_err();
        assert_eq!(
            err.problems,
            vec![format!(
                "auth.token_secret_file {} holds 5 bytes; a token secret needs at least 32",
                path.display()
            )]
        );
        fs::remove_file(&path).unwrap();
        let err = c.resolve_token_secret_with(&no_env, &os_random).unwrap_err();
        assert!(
            err.problems[0].starts_with(&format!("auth.token_secret_file {}: cannot read: ", path.display())),
            "{err}"
        );
    }

    #[test]
    fn default_stream_key_is_generated_private_and_stable() {
        let dir = tempfile::tempdir().unwrap();
        let c = in_dir(dir.path(), "");
        let first = c.resolve_streams().unwrap();
        assert_eq!(first.len(), 1);
        let s = &first[0];
        let path = dir.path().join("publish_keys/live.demo.key");
        assert_eq!((s.app.as_str(), s.name.as_str()), ("live", "demo"));
        assert_eq!(s.path(), "live/demo");
        assert_eq!(s.key_origin, KeyOrigin::Generated(path.clone()));
        let key = s.publish_key.expose_str().unwrap();
        assert!(key.starts_with("sk_") && key.len() == 46, "{key}");
        assert_eq!(check_publish_key(key.as_bytes()), Ok(()));
        #[cfg(unix)]
        {
            assert_eq!(mode(&path), 0o600);
            assert_eq!(mode(&dir.path().join("publish_keys")), 0o700);
        }
        assert_eq!(c.resolve_streams().unwrap(), first);
    }

    #[test]
    fn configured_streams_resolve() {
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("b.key");
        fs::write(&key_file, "sk_from_file_0123456789\n").unwrap();
        let data_dir = dir.path().join("data");
        let text = format!(
            "[storage]\ndata_dir = {:?}\n\
             [[streams]]\napp = \"live\"\nname = \"a\"\nkey = \"sk_inline_0123456789\"\n\
             [[streams]]\napp = \"live\"\nname = \"b\"\nkey_file = {:?}\n\
             [[streams]]\napp = \"live\"\nname = \"c\"\nkey_env = \"KEY_C\"\n",
            data_dir.display().to_string(),
            key_file.display().to_string()
        );
        let c = Config::from_toml_str(&text).unwrap();
        let env = |name: &str| (name == "KEY_C").then(|| OsString::from("sk_from_env_0123456789"));
        let got = c.resolve_streams_with(&env, &os_random).unwrap();
        let summary: Vec<_> = got
            .iter()
            .map(|s| (s.path(), s.publish_key.expose_str().unwrap(), s.key_origin.clone()))
            .collect();
        assert_eq!(
            summary,
            vec![
                ("live/a".to_string(), "sk_inline_0123456789", KeyOrigin::Inline),
                (
                    "live/b".to_string(),
                    "sk_from_file_0123456789",
                    KeyOrigin::File(key_file.clone())
                ),
                (
                    "live/c".to_string(),
                    "sk_from_env_0123456789",
                    KeyOrigin::Env("KEY_C".into())
                ),
            ]
        );
        // Nothing is generated for configured streams.
        assert!(!data_dir.exists());

        // Problems across streams are all reported; values are never echoed.
        let same = |name: &str| match name {
            "KEY_C" => Some(OsString::from("sk_inline_0123456789")),
            _ => None,
        };
        let err = c.resolve_streams_with(&same, &os_random).unwrap_err();
        assert_eq!(
            err.problems,
            vec!["streams: live/a and live/c have the same publish key; publish keys must be unique"]
        );
        let bad = |_: &str| Some(OsString::from("has space 0123456789"));
        fs::remove_file(&key_file).unwrap();
        let err = c.resolve_streams_with(&bad, &os_random).unwrap_err();
        assert_eq!(err.problems.len(), 2, "{err}");
        assert!(err.problems[0].starts_with(&format!("streams[1].key_file {}: cannot read: ", key_file.display())));
        assert_eq!(
            err.problems[1],
            "streams[2].key_env KEY_C: the publish key must be 16 to 256 characters from A-Z a-z 0-9 . _ ~ -"
        );
        let err = c.resolve_streams_with(&no_env, &os_random).unwrap_err();
        assert!(
            err.problems
                .contains(&"streams[2].key_env KEY_C is not set or empty".to_string())
        );
    }

    #[test]
    fn concurrent_starts_agree_on_one_secret() {
        let dir = tempfile::tempdir().unwrap();
        let c = in_dir(dir.path(), "");
        let secrets: Vec<Secret> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|_| scope.spawn(|| c.resolve_token_secret().unwrap()))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(secrets.len(), 8);
        assert!(secrets.iter().all(|s| *s == secrets[0]));
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn damaged_generated_files_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let c = in_dir(dir.path(), "");
        fs::write(dir.path().join("token_secret"), "\n").unwrap();
        let err = c.resolve_token_secret().unwrap_err();
        assert_eq!(
            err.problems,
            vec![format!(
                "generated token secret {} holds 0 bytes; a token secret needs at least 32",
                dir.path().join("token_secret").display()
            )]
        );
        let key_path = dir.path().join("publish_keys/live.demo.key");
        fs::create_dir_all(key_path.parent().unwrap()).unwrap();
        fs::write(&key_path, "sk_short").unwrap();
        let err = c.resolve_streams().unwrap_err();
        assert_eq!(
            err.problems,
            vec![format!(
                "generated publish key {}: the publish key must be 16 to 256 characters \
                 from A-Z a-z 0-9 . _ ~ -; delete the file to generate a new one",
                key_path.display()
            )]
        );
    }

    #[test]
    fn auth_problems() {
        let cases: &[(&str, &[&str])] = &[
            (
                "[auth]\naudience = \"\"",
                &["auth.audience must not be empty (omit it to not check aud)"],
            ),
            (
                "[auth]\nticket_ttl_secs = 0",
                &["auth.ticket_ttl_secs must be between 1 and 3600 (got 0)"],
            ),
            (
                "[auth]\nticket_ttl_secs = 3601",
                &["auth.ticket_ttl_secs must be between 1 and 3600 (got 3601)"],
            ),
            (
                "[auth]\nadmin_token_env = \"A\"\nadmin_token_file = \"/a\"",
                &["auth.admin_token_env and auth.admin_token_file are both set; set at most one"],
            ),
            (
                "[auth]\nadmin_token_env = \"A=B\"",
                &["auth.admin_token_env \"A=B\" is not a valid environment variable name"],
            ),
            (
                "[auth]\nadmin_token_file = \"\"",
                &["auth.admin_token_file must not be empty"],
            ),
            (
                "[auth.key_cache]\nmax_entries = 0\nttl_secs = 0",
                &[
                    "auth.key_cache.max_entries must be at least 1 (got 0)",
                    "auth.key_cache.ttl_secs must be between 1 and 86400 (got 0)",
                ],
            ),
            (
                "[auth.replay]\nbackend = \"redis\"",
                &["auth.replay.url must be set when auth.replay.backend is \"redis\""],
            ),
            (
                "[auth.replay]\nbackend = \"redis\"\nurl = \"http://h:1\"",
                &["auth.replay.url \"http://h:1\" must start with redis://"],
            ),
            (
                "[auth.replay]\nurl = \"redis://h:1\"",
                &["auth.replay.url is only used with auth.replay.backend = \"redis\""],
            ),
            (
                "[auth.replay]\nmax_entries = 0\nkey_prefix = \"\"\ntimeout_ms = 0\npool_size = 65",
                &[
                    "auth.replay.max_entries must be at least 1 (got 0)",
                    "auth.replay.key_prefix must not be empty",
                    "auth.replay.timeout_ms must be between 1 and 60000 (got 0)",
                    "auth.replay.pool_size must be between 1 and 64 (got 65)",
                ],
            ),
            (
                "[auth.replay]\npassword_env = \"P\"\npassword_file = \"/p\"",
                &["auth.replay.password_env and auth.replay.password_file are both set; set at most one"],
            ),
            (
                "[[streams]]\napp = \"api\"\nname = \"v1\"\nkey = \"sk_0123456789abcdef\"",
                &["streams[0].app \"api\" is reserved for sealcast's own URLs"],
            ),
        ];
        for (text, want) in cases {
            assert_eq!(problems(text), *want, "{text}");
        }
        let ok = "[auth]\none_time_key_tickets = true\n[auth.replay]\nbackend = \"redis\"\nurl = \"redis://127.0.0.1:6390\"\n";
        assert_eq!(problems(ok), Vec::<String>::new());
        let unknown = Config::from_toml_str("[auth.replay]\nbackend = \"memcached\"\n").unwrap_err();
        assert!(unknown.problems[0].starts_with("auth.replay.backend: "), "{unknown}");
    }

    #[test]
    fn admin_token_resolution() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("admin");
        fs::write(&file, "admin-token-0123456789\n").unwrap();
        let from_file = Config::from_toml_str(&format!(
            "[auth]\nadmin_token_file = {:?}\n",
            file.display().to_string()
        ))
        .unwrap();
        let token = from_file.auth.resolve_admin_token_with(&no_env).unwrap().unwrap();
        assert_eq!(token.expose(), b"admin-token-0123456789");
        assert_eq!(Config::default().auth.resolve_admin_token_with(&no_env).unwrap(), None);

        let from_env = Config::from_toml_str("[auth]\nadmin_token_env = \"ADM\"\n").unwrap();
        let cases = [
            (Some("0123456789abcdef"), Ok(Some(b"0123456789abcdef".to_vec()))),
            (
                Some("short"),
                Err("auth.admin_token_env: environment variable ADM holds 5 bytes; at least 16 are needed".to_string()),
            ),
            (
                None,
                Err("auth.admin_token_env: environment variable ADM is not set or empty".to_string()),
            ),
        ];
        for (value, want) in cases {
            let env = |name: &str| (name == "ADM").then(|| value.map(OsString::from)).flatten();
            let got = from_env
                .auth
                .resolve_admin_token_with(&env)
                .map(|t| t.map(|t| t.expose().to_vec()))
                .map_err(|e| e.to_string());
            assert_eq!(got, want, "{value:?}");
        }
    }

    #[test]
    fn line_column_table() {
        let text = "ab\ncdé\nf";
        let cases = [
            (0, (1, 1)),
            (2, (1, 3)),
            (3, (2, 1)),
            (7, (2, 4)),
            (8, (3, 1)),
            (99, (3, 2)),
        ];
        for (at, want) in cases {
            assert_eq!(line_column(text, at), want, "{at}");
        }
    }
}
