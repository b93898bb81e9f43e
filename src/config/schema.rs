//! The file as users write it: one `#[serde(deny_unknown_fields)]` struct per
//! TOML table, every key documented, defaults from named functions. Values are
//! kept as written (plain integers, a provider name beside every provider's
//! keys), so parsing fails only on syntax, unknown keys and wrong types;
//! [`super::validate`] then reports every other problem at once and builds the
//! typed [`super::Config`]. `sealcast.example.toml` shows every key.
//!
//! `[http]`, `[storage]` and `[hls]` need no conversion: their structs here
//! are also the validated configuration's.
//!
//! Structs whose Rust name differs from the validated type's keep the old
//! name in type errors (`expecting`), so `rtmp = 5` still says
//! `expected struct RtmpConfig`.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

use super::{CDN_HLSJS_URL, DEFAULT_HLSJS_INTEGRITY, DEFAULT_HLSJS_URL};
use crate::auth::Secret;

/// The whole file. Every section is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, expecting = "struct Config")]
pub struct Document {
    /// RTMP ingest (encoders connect here).
    #[serde(default)]
    pub rtmp: Rtmp,
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
    pub encryption: Encryption,
    /// The key management service that issues and unwraps data keys.
    #[serde(default)]
    pub kms: Kms,
    /// Playback token secret.
    #[serde(default)]
    pub auth: Auth,
    /// Streams that may be published. Empty: the one default stream
    /// `live/demo` with a publish key generated on first start.
    #[serde(default)]
    pub streams: Vec<Stream>,
    /// Prometheus metrics (`src/config/metrics.rs`).
    #[serde(default)]
    pub metrics: super::MetricsConfig,
    /// Webhooks (`src/config/webhooks.rs`).
    #[serde(default)]
    pub webhooks: super::WebhooksConfig,
    /// Logging.
    #[serde(default)]
    pub log: LogConfig,
    /// Cluster mode (`src/config/cluster.rs`); absent: one node.
    #[serde(default)]
    pub cluster: Option<super::ClusterConfig>,
    /// Recordings (`src/config/record.rs`).
    #[serde(default)]
    pub record: super::RecordConfig,
}

/// `[log]`: what is logged.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, expecting = "struct LogConfig")]
pub struct LogConfig {
    /// The log filter, in `RUST_LOG` syntax (`info`, `warn,sealcast::access=info`).
    /// `RUST_LOG`, when set, wins. Reloaded on SIGHUP. Absent: `info`.
    #[serde(default)]
    pub level: Option<String>,
}

/// `[rtmp]`: the ingest listener.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, expecting = "struct RtmpConfig")]
pub struct Rtmp {
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
    /// A new publish with a stream's key takes over from the publisher
    /// already live on it once that one has sent no media for this many
    /// seconds (a dead connection not yet timed out); 0: never, the new
    /// publish is refused while the old connection stays open.
    #[serde(default = "default_rtmp_takeover_idle_secs")]
    pub takeover_idle_secs: u64,
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
    /// A second ingest listener speaking RTMP over TLS (RTMPS, what OBS calls
    /// `rtmps://`), an IP and port (`0.0.0.0:1936`; 443 is common). Absent: no
    /// RTMPS. Needs a certificate: `tls_cert_file` and `tls_key_file` here or
    /// in `[http]`. Both listeners share the connection caps above.
    #[serde(default, deserialize_with = "de_opt_socket_addr")]
    pub tls_listen: Option<SocketAddr>,
    /// PEM certificate chain (leaf first) for `tls_listen`. Absent:
    /// `http.tls_cert_file`. Re-read on SIGHUP.
    #[serde(default)]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) for `tls_cert_file`. Absent:
    /// `http.tls_key_file`. Re-read on SIGHUP.
    #[serde(default)]
    pub tls_key_file: Option<PathBuf>,
}

/// `[http]`: the playback listener.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Address to listen on, an IP and port.
    #[serde(default = "default_http_listen", deserialize_with = "de_socket_addr")]
    pub listen: SocketAddr,
    /// Public base URL of this server as players see it (`https://video.example.com`,
    /// optionally with a path prefix): the base of playlist and page URLs the
    /// admin API and the operator page hand out, and of key URIs unless
    /// `key_base_url` is set. Absent: key URIs are root-relative (`/keys/...`),
    /// which suits players that load the playlist from this server directly,
    /// and the admin API uses the request's `Host`.
    #[serde(default)]
    pub public_url: Option<String>,
    /// Base URL of the key URIs in playlists, where `/keys/...` is answered
    /// (`https://keys.example.com`): set it when separate key servers
    /// (`sealcast keyserver`) deliver keys. Absent: `public_url`.
    #[serde(default)]
    pub key_base_url: Option<String>,
    /// Origins allowed to fetch playlists, segments and keys from a browser
    /// (CORS `Access-Control-Allow-Origin`): `"*"` or full origins such as
    /// `"https://player.example.com"`. Empty: no CORS headers. Keys still need
    /// a token whatever this says.
    #[serde(default = "default_http_cors_allowed_origins")]
    pub cors_allowed_origins: Vec<String>,
    /// Where the watch page (`/watch/{app}/{name}`) loads hls.js from. Default:
    /// `/static/hls.js@1.7.4/hls.min.js`, the pinned release embedded in
    /// sealcast and served by it, so the page works without internet access.
    /// Otherwise an `http(s)` URL of the script file, no query (such as the
    /// same release on jsDelivr,
    /// `https://cdn.jsdelivr.net/npm/hls.js@1.7.4/dist/hls.min.js`); the
    /// page's Content-Security-Policy allows exactly this URL.
    #[serde(default = "default_http_hlsjs_url")]
    pub hlsjs_url: String,
    /// Subresource Integrity hash the page requires of hls.js
    /// (`sha384-<base64>`). Absent: the pinned hash when `hlsjs_url` is the
    /// default or the same release on jsDelivr, none otherwise. `""` turns the
    /// check off.
    #[serde(default)]
    pub hlsjs_integrity: Option<String>,
    /// One log line per HTTP request (status, method, route without the
    /// query, stream, duration, bytes, peer), at info level under the
    /// `sealcast::access` target. Default: off.
    #[serde(default)]
    pub access_log: bool,
    /// `[http.limits]`: timeouts and connection caps (`src/config/http_limits.rs`).
    #[serde(default)]
    pub limits: super::HttpLimits,
    /// PEM certificate chain (leaf first). With `tls_key_file`, `listen`
    /// speaks HTTPS only (HTTP/1.1 and HTTP/2 by ALPN). Re-read on SIGHUP;
    /// also the RTMPS certificate unless `[rtmp]` names its own.
    #[serde(default)]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of `tls_cert_file`.
    #[serde(default)]
    pub tls_key_file: Option<PathBuf>,
}

/// `[storage]`: local files, and where segments and playlists go.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// Directory for segments and playlists (with the local backend), the
    /// keyring and generated secrets. Created on start if missing.
    #[serde(default = "default_storage_data_dir")]
    pub data_dir: PathBuf,
    /// `"local"` (files under `data_dir`, the default) or `"s3"`.
    #[serde(default)]
    pub backend: super::StorageBackend,
    /// The bucket, with `backend = "s3"`.
    #[serde(default)]
    pub s3: Option<super::S3Config>,
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
    /// Startover ("DVR"): the live playlist keeps this many seconds of
    /// segments listed (besides `playlist_window`), so a viewer can seek back
    /// that far; their segments and keys stay fetchable as long. 0 (the
    /// default) turns it off; at most 86400. Each listed key costs a key URI
    /// (and with one-time tickets a ticket) in every playlist a viewer fetches.
    #[serde(default)]
    pub dvr_window_secs: u32,
}

/// `[encryption]`: data key rotation.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, expecting = "struct EncryptionConfig")]
pub struct Encryption {
    /// Segments encrypted under one data key before the next key, at least 1.
    /// 1 gives every segment its own key: a leaked key exposes one segment.
    #[serde(default = "default_encryption_segments_per_key")]
    pub segments_per_key: u32,
}

/// `[kms]`: the key management service.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, expecting = "struct KmsConfig")]
pub struct Kms {
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
    /// Absent: `https://kms.<region>.amazonaws.com`.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// AWS provider: the shared profile to use, winning over the environment
    /// keys. Absent: the standard AWS credential chain (environment, profile
    /// `AWS_PROFILE` or `default`, web identity, container, instance metadata).
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
#[serde(deny_unknown_fields, expecting = "struct AuthConfig")]
pub struct Auth {
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
    /// Life of an offline license (`"offline": true` license requests for
    /// recordings of `protection = "web"` streams), 0 to 2592000 seconds;
    /// 0, the default: offline licenses are refused.
    #[serde(default)]
    pub offline_ttl_secs: u64,
    /// Name of an environment variable holding the admin API's bearer token
    /// (at least 16 bytes). Neither this nor `admin_token_file`: no admin API.
    #[serde(default)]
    pub admin_token_env: Option<String>,
    /// File holding the admin API's bearer token (trailing newlines ignored).
    #[serde(default)]
    pub admin_token_file: Option<PathBuf>,
    /// The cache of unwrapped data keys in the key endpoint.
    #[serde(default)]
    pub key_cache: KeyCache,
    /// Where used tickets are remembered.
    #[serde(default)]
    pub replay: Replay,
    /// The publish hook: an `https://` (or, on loopback or a private
    /// network, `http://`) URL every publish request is POSTed to; its answer
    /// decides the publish (and which stream it is). Absent: `[[streams]]`
    /// keys decide.
    #[serde(default)]
    pub publish_hook_url: Option<String>,
    /// PEM file of CA certificates trusted for an `https://` hook besides the
    /// Mozilla roots.
    #[serde(default)]
    pub publish_hook_tls_ca_file: Option<PathBuf>,
    /// How long the hook may take to answer, 1 to 60000 ms; no answer in
    /// time refuses the publish. Default: 3000.
    #[serde(default = "default_publish_hook_timeout_ms")]
    pub publish_hook_timeout_ms: u64,
    /// Environment variable holding the hook's signing secret (at least 16
    /// bytes). Exactly one of this and `publish_hook_secret_file` with a hook.
    #[serde(default)]
    pub publish_hook_secret_env: Option<String>,
    /// File holding the hook's signing secret (trailing newlines ignored).
    #[serde(default)]
    pub publish_hook_secret_file: Option<PathBuf>,
}

/// `[auth.key_cache]`: unwrapped data keys kept in memory (never on disk),
/// so many viewers of one key cost one KMS decrypt.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, expecting = "struct KeyCacheConfig")]
pub struct KeyCache {
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
#[serde(deny_unknown_fields, expecting = "struct ReplayConfig")]
pub struct Replay {
    /// `"memory"` (one key server) or `"redis"` (several sharing one Redis).
    #[serde(default = "default_replay_backend")]
    pub backend: ReplayBackend,
    /// Memory backend: most unexpired tickets remembered, at least 1; past it
    /// ticket requests get 503 rather than risk a replay.
    #[serde(default = "default_replay_max_entries")]
    pub max_entries: usize,
    /// Redis backend: `redis://host[:port][/db]`, or `rediss://...` for TLS.
    /// Required with it.
    #[serde(default)]
    pub url: Option<String>,
    /// Redis backend: prefix of the keys written (the ticket nonce in hex follows).
    #[serde(default = "default_replay_key_prefix")]
    pub key_prefix: String,
    /// Redis backend: bound on one request, 1 to 60000 ms; past it, 503.
    #[serde(default = "default_replay_timeout_ms")]
    pub timeout_ms: u64,
    /// Redis backend: accepted for compatibility, 1 to 64; the client keeps
    /// one multiplexed connection (requests pipelined on it).
    #[serde(default = "default_replay_pool_size")]
    pub pool_size: u32,
    /// Redis backend: ACL user name (`AUTH user password`); absent: the
    /// `default` user.
    #[serde(default)]
    pub username: Option<String>,
    /// Redis backend, `rediss://`: PEM CA certificate(s) to trust instead of
    /// the Mozilla roots (a private CA).
    #[serde(default)]
    pub tls_ca_file: Option<PathBuf>,
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

/// One `[[streams]]` entry: a stream encoders may publish.
///
/// Exactly one of `key`, `key_env`, `key_file` gives its publish key (what OBS
/// calls the "stream key"): 16 to 256 characters from `A-Z a-z 0-9 . _ ~ -`,
/// unique across streams, since the key identifies the stream at publish time.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, expecting = "struct StreamConfig")]
pub struct Stream {
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
    /// How keys reach players: `"standard"` (AES-128 key endpoint) or
    /// `"web"` (only through `POST /license/...`, see docs/protection.md).
    #[serde(default)]
    pub protection: Protection,
    /// Record this stream's publishes (overrides `[record] enabled`).
    #[serde(default)]
    pub record: Option<bool>,
}

/// `[[streams]] protection`: how a stream's data keys leave the server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protection {
    /// `GET /keys/...` hands the 16-byte key to any authorized player.
    #[default]
    Standard,
    /// `GET /keys/...` refuses; keys leave only wrapped to a player's
    /// ephemeral ECDH key by `POST /license/{app}/{name}`.
    Web,
}
fn default_rtmp_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 1935))
}

fn default_rtmp_max_connections() -> u32 {
    1000
}

fn default_rtmp_takeover_idle_secs() -> u64 {
    5
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

fn default_publish_hook_timeout_ms() -> u64 {
    3000
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

impl Default for Rtmp {
    fn default() -> Self {
        Rtmp {
            listen: default_rtmp_listen(),
            max_connections: default_rtmp_max_connections(),
            max_connections_per_ip: default_rtmp_max_connections_per_ip(),
            handshake_timeout_secs: default_rtmp_handshake_timeout_secs(),
            idle_timeout_secs: default_rtmp_idle_timeout_secs(),
            takeover_idle_secs: default_rtmp_takeover_idle_secs(),
            max_message_bytes: default_rtmp_max_message_bytes(),
            max_chunk_size_bytes: default_rtmp_max_chunk_size_bytes(),
            tls_listen: None,
            tls_cert_file: None,
            tls_key_file: None,
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: default_http_listen(),
            public_url: None,
            key_base_url: None,
            cors_allowed_origins: default_http_cors_allowed_origins(),
            hlsjs_url: default_http_hlsjs_url(),
            hlsjs_integrity: None,
            access_log: false,
            limits: super::HttpLimits::default(),
            tls_cert_file: None,
            tls_key_file: None,
        }
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            data_dir: default_storage_data_dir(),
            backend: super::StorageBackend::default(),
            s3: None,
        }
    }
}

impl Default for HlsConfig {
    fn default() -> Self {
        HlsConfig {
            segment_duration_secs: default_hls_segment_duration_secs(),
            playlist_window: default_hls_playlist_window(),
            reconnect_grace_secs: default_hls_reconnect_grace_secs(),
            dvr_window_secs: 0,
        }
    }
}

impl Default for Encryption {
    fn default() -> Self {
        Encryption {
            segments_per_key: default_encryption_segments_per_key(),
        }
    }
}

impl Default for Auth {
    fn default() -> Self {
        Auth {
            token_secret_env: None,
            token_secret_file: None,
            audience: None,
            one_time_key_tickets: false,
            ticket_ttl_secs: default_auth_ticket_ttl_secs(),
            offline_ttl_secs: 0,
            admin_token_env: None,
            admin_token_file: None,
            key_cache: KeyCache::default(),
            replay: Replay::default(),
            publish_hook_url: None,
            publish_hook_tls_ca_file: None,
            publish_hook_timeout_ms: default_publish_hook_timeout_ms(),
            publish_hook_secret_env: None,
            publish_hook_secret_file: None,
        }
    }
}

impl Default for KeyCache {
    fn default() -> Self {
        KeyCache {
            max_entries: default_key_cache_max_entries(),
            ttl_secs: default_key_cache_ttl_secs(),
        }
    }
}

impl Default for Replay {
    fn default() -> Self {
        Replay {
            backend: default_replay_backend(),
            max_entries: default_replay_max_entries(),
            url: None,
            key_prefix: default_replay_key_prefix(),
            timeout_ms: default_replay_timeout_ms(),
            pool_size: default_replay_pool_size(),
            username: None,
            tls_ca_file: None,
            password_env: None,
            password_file: None,
        }
    }
}

impl Default for Kms {
    fn default() -> Self {
        Kms {
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
pub(super) fn de_socket_addr<'de, D: serde::Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    let text = String::deserialize(d)?;
    text.parse().map_err(|_| {
        serde::de::Error::invalid_value(
            serde::de::Unexpected::Str(&text),
            &"an IP address and port such as 127.0.0.1:1935",
        )
    })
}

/// [`de_socket_addr`] for an optional key.
fn de_opt_socket_addr<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
    de_socket_addr(d).map(Some)
}

impl HttpConfig {
    /// `tls_cert_file` and `tls_key_file`, when both are set.
    pub fn tls_files(&self) -> Option<super::TlsFiles> {
        Some(super::TlsFiles {
            cert_file: self.tls_cert_file.clone()?,
            key_file: self.tls_key_file.clone()?,
            cert_setting: "http.tls_cert_file",
            key_setting: "http.tls_key_file",
        })
    }

    /// The prefix for absolute URLs in playlists: `public_url` without a
    /// trailing `/`, or `""` (root-relative URLs) when it is absent. A key URI
    /// is `format!("{}/keys/{app}/{name}/{key_id}?edk=...", http.public_base())`.
    pub fn public_base(&self) -> &str {
        self.public_url.as_deref().map_or("", |url| url.trim_end_matches('/'))
    }

    /// The prefix of key URIs in playlists: `key_base_url` without a trailing
    /// `/`, else [`HttpConfig::public_base`].
    pub fn key_base(&self) -> &str {
        match self.key_base_url.as_deref() {
            Some(url) => url.trim_end_matches('/'),
            None => self.public_base(),
        }
    }

    /// The Subresource Integrity hash the watch page puts on hls.js, if any:
    /// `hlsjs_integrity` when set (`""` means none), else the pinned hash when
    /// `hlsjs_url` is the embedded release or the same one on jsDelivr.
    pub fn hlsjs_integrity(&self) -> Option<&str> {
        match self.hlsjs_integrity.as_deref() {
            Some("") => None,
            Some(hash) => Some(hash),
            None => [DEFAULT_HLSJS_URL, CDN_HLSJS_URL]
                .contains(&self.hlsjs_url.as_str())
                .then_some(DEFAULT_HLSJS_INTEGRITY),
        }
    }
}
