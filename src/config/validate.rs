//! From the file as written ([`schema::Document`]) to a [`Config`]: every
//! problem is collected, each naming its TOML key
//! (`hls.playlist_window must be at least 3 (got 2)`), in the order of the
//! file's sections; a [`Config`] is built only when there are none. Reads no
//! environment variables or files; it only looks whether the TLS certificate
//! and key files named exist (their contents are read by `crate::tls` at start).

use std::num::{NonZeroU32, NonZeroU64, NonZeroUsize};
use std::path::Path;

use base64::Engine as _;

use super::schema::{self, Document, KmsProvider, ReplayBackend};
use super::{
    AuthConfig, AwsKmsConfig, Config, ConfigError, EncryptionConfig, HttpConfig, KeyCacheConfig, KmsConfig,
    PublishKeySource, RedisReplayConfig, RedisUrl, ReplayConfig, RtmpConfig, StreamConfig, TlsFiles,
};

/// Publish keys (RTMP stream keys) are 16 to 256 of these characters, so they
/// survive RTMP publish names and URLs unescaped and are not guessable.
const PUBLISH_KEY_CHARS: &str = "A-Z a-z 0-9 . _ ~ -";
const MIN_PUBLISH_KEY_CHARS: usize = 16;
const MAX_PUBLISH_KEY_CHARS: usize = 256;

/// App and stream names are 1 to 64 of `A-Z a-z 0-9 _ -`: they are URL path
/// segments and file names.
const MAX_NAME_CHARS: usize = 64;

/// App names that would collide with sealcast's own HTTP routes.
const RESERVED_APPS: &[&str] = &["keys", "watch", "api", "license"];

/// The problems found so far.
#[derive(Default)]
struct Problems(Vec<String>);

impl Problems {
    fn push(&mut self, problem: impl Into<String>) {
        self.0.push(problem.into());
    }

    /// `value`, or `None` after recording `problem` when there is none.
    fn require<T>(&mut self, value: Option<T>, problem: impl FnOnce() -> String) -> Option<T> {
        if value.is_none() {
            self.0.push(problem());
        }
        value
    }
}

/// Checks every key of `doc` and builds the [`Config`], or lists every problem.
pub(super) fn validate(doc: Document) -> Result<Config, ConfigError> {
    let mut p = Problems::default();
    let rtmp = rtmp(&doc.rtmp, &doc.http, &mut p);
    if doc.rtmp.listen == doc.http.listen && doc.http.listen.port() != 0 {
        p.push(format!(
            "http.listen {} is the same address as rtmp.listen",
            doc.http.listen
        ));
    }
    http(&doc.http, &mut p);
    tls_pair(
        "http",
        doc.http.tls_cert_file.as_deref(),
        doc.http.tls_key_file.as_deref(),
        &mut p,
    );
    super::http_limits::validate(&doc.http.limits, &mut p.0);
    if doc.storage.data_dir.as_os_str().is_empty() {
        p.push("storage.data_dir must not be empty");
    }
    super::storage::validate(doc.storage.backend, doc.storage.s3.as_ref(), &mut p.0);
    hls(&doc.hls, &mut p);
    if let Some(level) = &doc.log.level
        && let Err(e) = tracing_subscriber::EnvFilter::try_new(level)
    {
        p.push(format!("log.level {level:?} is not a log filter: {e}"));
    }
    let encryption = p
        .require(NonZeroU32::new(doc.encryption.segments_per_key), || {
            "encryption.segments_per_key must be at least 1 (got 0)".to_string()
        })
        .map(|segments_per_key| EncryptionConfig { segments_per_key });
    let kms = kms(&doc.kms, &doc.storage.data_dir, &mut p);
    let auth = auth(doc.auth, &mut p);
    let streams: Vec<Option<StreamConfig>> = (doc.streams.iter().enumerate())
        .map(|(i, s)| validate_stream(i, s, &mut p))
        .collect();
    validate_stream_uniqueness(&doc.streams, &mut p);
    let streams: Option<Vec<StreamConfig>> = streams.into_iter().collect();
    let listeners = [("rtmp.listen", doc.rtmp.listen), ("http.listen", doc.http.listen)];
    if let Some(tls_listen) = doc.rtmp.tls_listen
        && tls_listen.port() != 0
        && let Some((other, _)) = listeners.iter().find(|(_, addr)| *addr == tls_listen)
    {
        p.push(format!("rtmp.tls_listen {tls_listen} is the same address as {other}"));
    }
    super::metrics::validate(&doc.metrics, &listeners, doc.http.tls_files().is_some(), &mut p.0);
    super::webhooks::validate(&doc.webhooks, &mut p.0);
    super::record::validate(&doc.record, &mut p.0);
    if let Some(cluster) = &doc.cluster {
        super::cluster::validate(cluster, &mut p.0);
    }

    match (rtmp, encryption, kms, auth, streams) {
        (Some(rtmp), Some(encryption), Some(kms), Some(auth), Some(streams)) if p.0.is_empty() => Ok(Config {
            rtmp,
            http: doc.http,
            storage: doc.storage,
            hls: doc.hls,
            encryption,
            kms,
            auth,
            streams,
            log: doc.log,
            metrics: doc.metrics,
            webhooks: doc.webhooks,
            cluster: doc.cluster,
            record: doc.record,
        }),
        _ => Err(ConfigError { problems: p.0 }),
    }
}

/// Longest `[auth] offline_ttl_secs`: 30 days.
const MAX_OFFLINE_TTL_SECS: u64 = 30 * 24 * 3600;

fn rtmp(rtmp: &schema::Rtmp, http: &HttpConfig, p: &mut Problems) -> Option<RtmpConfig> {
    tls_pair("rtmp", rtmp.tls_cert_file.as_deref(), rtmp.tls_key_file.as_deref(), p);
    let own = match (&rtmp.tls_cert_file, &rtmp.tls_key_file) {
        (Some(cert), Some(key)) => Some(TlsFiles {
            cert_file: cert.clone(),
            key_file: key.clone(),
            cert_setting: "rtmp.tls_cert_file",
            key_setting: "rtmp.tls_key_file",
        }),
        _ => None,
    };
    let tls = own.or_else(|| http.tls_files());
    if rtmp.tls_listen.is_some() && tls.is_none() {
        p.push(
            "rtmp.tls_listen needs a certificate: set rtmp.tls_cert_file and rtmp.tls_key_file, \
             or http.tls_cert_file and http.tls_key_file",
        );
    }
    let max_connections = p.require(NonZeroU32::new(rtmp.max_connections), || {
        "rtmp.max_connections must be at least 1".to_string()
    });
    let max_connections_per_ip = p.require(NonZeroU32::new(rtmp.max_connections_per_ip), || {
        "rtmp.max_connections_per_ip must be at least 1".to_string()
    });
    let handshake_timeout_secs = p.require(NonZeroU64::new(rtmp.handshake_timeout_secs), || {
        "rtmp.handshake_timeout_secs must be at least 1".to_string()
    });
    let idle_timeout_secs = p.require(NonZeroU64::new(rtmp.idle_timeout_secs), || {
        "rtmp.idle_timeout_secs must be at least 1".to_string()
    });
    let message = rtmp.max_message_bytes;
    if !(65536..=0xFF_FFFF).contains(&message) {
        p.push(format!(
            "rtmp.max_message_bytes must be between 65536 and 16777215 (got {message})"
        ));
    }
    let chunk = rtmp.max_chunk_size_bytes;
    if !(128..=0x7FFF_FFFF).contains(&chunk) {
        p.push(format!(
            "rtmp.max_chunk_size_bytes must be between 128 and 2147483647 (got {chunk})"
        ));
    }
    Some(RtmpConfig {
        listen: rtmp.listen,
        max_connections: max_connections?,
        max_connections_per_ip: max_connections_per_ip?,
        handshake_timeout_secs: handshake_timeout_secs?,
        idle_timeout_secs: idle_timeout_secs?,
        takeover_idle_secs: rtmp.takeover_idle_secs,
        max_message_bytes: message,
        max_chunk_size_bytes: chunk,
        tls: tls.filter(|_| rtmp.tls_listen.is_some()),
        tls_listen: rtmp.tls_listen,
    })
}

/// `{section}.tls_cert_file` and `{section}.tls_key_file`: both or neither,
/// and each an existing file.
fn tls_pair(section: &str, cert: Option<&Path>, key: Option<&Path>, p: &mut Problems) {
    match (cert, key) {
        (Some(_), None) => p.push(format!(
            "{section}.tls_cert_file is set but {section}.tls_key_file is not"
        )),
        (None, Some(_)) => p.push(format!(
            "{section}.tls_key_file is set but {section}.tls_cert_file is not"
        )),
        _ => {}
    }
    for (name, path) in [("tls_cert_file", cert), ("tls_key_file", key)] {
        if let Some(path) = path
            && !path.is_file()
        {
            let why = match std::fs::metadata(path) {
                Ok(_) => "is not a file".to_owned(),
                Err(e) => format!("cannot be read: {e}"),
            };
            p.push(format!("{section}.{name} {} {why}", path.display()));
        }
    }
}

fn http(http: &HttpConfig, p: &mut Problems) {
    if let Some(url) = &http.public_url
        && let Err(why) = check_public_url(url)
    {
        p.push(format!("http.public_url {url:?} {why}"));
    }
    if let Some(url) = &http.key_base_url
        && let Err(why) = check_public_url(url)
    {
        p.push(format!("http.key_base_url {url:?} {why}"));
    }
    for (i, origin) in http.cors_allowed_origins.iter().enumerate() {
        if origin != "*" && check_origin(origin).is_err() {
            p.push(format!(
                "http.cors_allowed_origins[{i}] {origin:?} must be \"*\" or an origin such as \"https://player.example.com\" (no path)"
            ));
        }
    }
    let hlsjs = &http.hlsjs_url;
    // The embedded release is the one path (not URL) accepted.
    if hlsjs != super::DEFAULT_HLSJS_URL
        && let Err(why) = check_script_url(hlsjs)
    {
        p.push(format!("http.hlsjs_url {hlsjs:?} {why}"));
    }
    if let Some(integrity) = &http.hlsjs_integrity
        && !integrity.is_empty()
        && !is_sri_hash(integrity)
    {
        p.push(format!(
            "http.hlsjs_integrity {integrity:?} must be \"sha256-\", \"sha384-\" or \"sha512-\" followed by base64, or \"\""
        ));
    }
}

fn hls(hls: &schema::HlsConfig, p: &mut Problems) {
    let seg = hls.segment_duration_secs;
    if !(1..=30).contains(&seg) {
        p.push(format!(
            "hls.segment_duration_secs must be between 1 and 30 (got {seg})"
        ));
    }
    let window = hls.playlist_window;
    if window < 3 {
        p.push(format!("hls.playlist_window must be at least 3 (got {window})"));
    }
    let grace = hls.reconnect_grace_secs;
    if grace > 3600 {
        p.push(format!("hls.reconnect_grace_secs must be at most 3600 (got {grace})"));
    }
    let dvr = hls.dvr_window_secs;
    if dvr > 86_400 {
        p.push(format!("hls.dvr_window_secs must be at most 86400 (got {dvr})"));
    }
}

/// `[kms]`: the provider's own keys, and no key of another provider.
fn kms(kms: &schema::Kms, data_dir: &Path, p: &mut Problems) -> Option<KmsConfig> {
    if let Some(keyring) = &kms.keyring
        && keyring.as_os_str().is_empty()
    {
        p.push("kms.keyring must not be empty (omit it for the default)");
    }
    let config = match kms.provider {
        KmsProvider::Local => {
            let aws_keys = [
                ("key_id", kms.key_id.is_some()),
                ("region", kms.region.is_some()),
                ("endpoint", kms.endpoint.is_some()),
                ("profile", kms.profile.is_some()),
            ];
            for (key, set) in aws_keys {
                if set {
                    p.push(format!("kms.{key} applies only to provider \"aws\""));
                }
            }
            let keyring = kms.keyring.clone().unwrap_or_else(|| data_dir.join("keyring.json"));
            Some(KmsConfig::Local { keyring })
        }
        KmsProvider::Aws => aws_kms(kms, p).map(KmsConfig::Aws),
    };
    let timeout = kms.request_timeout_ms;
    if !(100..=60_000).contains(&timeout) {
        p.push(format!(
            "kms.request_timeout_ms must be between 100 and 60000 (got {timeout})"
        ));
    }
    config
}

fn aws_kms(kms: &schema::Kms, p: &mut Problems) -> Option<AwsKmsConfig> {
    if kms.keyring.is_some() {
        p.push("kms.keyring applies only to provider \"local\"");
    }
    let key_id = match kms.key_id.as_deref() {
        None => {
            p.push("kms.key_id is required when kms.provider is \"aws\" (a key id, key ARN, alias/NAME or alias ARN)");
            None
        }
        Some(id) if id.is_empty() || id.len() > 2048 || id.contains(char::is_whitespace) => {
            p.push(format!(
                "kms.key_id {id:?} must be a key id, key ARN, alias/NAME or alias ARN"
            ));
            None
        }
        Some(id) => Some(id.to_owned()),
    };
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
        p.push("kms.profile must not be empty (omit it for the default)");
    }
    Some(AwsKmsConfig {
        key_id: key_id?,
        region: kms.region.clone(),
        endpoint: kms.endpoint.clone(),
        profile: kms.profile.clone(),
        request_timeout_ms: kms.request_timeout_ms,
    })
}

/// `[auth]` and its subtables.
fn auth(auth: schema::Auth, p: &mut Problems) -> Option<AuthConfig> {
    if auth.token_secret_env.is_some() && auth.token_secret_file.is_some() {
        p.push("auth.token_secret_env and auth.token_secret_file are both set; set at most one");
    }
    if let Some(var) = &auth.token_secret_env
        && let Err(why) = check_env_name(var)
    {
        p.push(format!("auth.token_secret_env {var:?} {why}"));
    }
    if let Some(file) = &auth.token_secret_file
        && file.as_os_str().is_empty()
    {
        p.push("auth.token_secret_file must not be empty");
    }
    if auth.audience.as_deref().is_some_and(str::is_empty) {
        p.push("auth.audience must not be empty (omit it to not check aud)");
    }
    let ttl = auth.ticket_ttl_secs;
    if !(1..=3600).contains(&ttl) {
        p.push(format!("auth.ticket_ttl_secs must be between 1 and 3600 (got {ttl})"));
    }
    if auth.offline_ttl_secs > MAX_OFFLINE_TTL_SECS {
        p.push(format!(
            "auth.offline_ttl_secs must be at most {MAX_OFFLINE_TTL_SECS} (30 days; got {})",
            auth.offline_ttl_secs
        ));
    }
    if auth.admin_token_env.is_some() && auth.admin_token_file.is_some() {
        p.push("auth.admin_token_env and auth.admin_token_file are both set; set at most one");
    }
    if let Some(var) = &auth.admin_token_env
        && let Err(why) = check_env_name(var)
    {
        p.push(format!("auth.admin_token_env {var:?} {why}"));
    }
    if let Some(file) = &auth.admin_token_file
        && file.as_os_str().is_empty()
    {
        p.push("auth.admin_token_file must not be empty");
    }
    let publish_hook = super::publish_hook::validate(&auth, &mut p.0);
    let key_cache = key_cache(&auth.key_cache, p);
    let replay = replay(auth.replay, p);
    Some(AuthConfig {
        token_secret_env: auth.token_secret_env,
        token_secret_file: auth.token_secret_file,
        audience: auth.audience,
        one_time_key_tickets: auth.one_time_key_tickets,
        ticket_ttl_secs: ttl,
        offline_ttl_secs: auth.offline_ttl_secs,
        admin_token_env: auth.admin_token_env,
        admin_token_file: auth.admin_token_file,
        key_cache: key_cache?,
        replay: replay?,
        publish_hook,
    })
}

fn key_cache(cache: &schema::KeyCache, p: &mut Problems) -> Option<KeyCacheConfig> {
    let max_entries = p.require(NonZeroUsize::new(cache.max_entries), || {
        "auth.key_cache.max_entries must be at least 1 (got 0)".to_string()
    });
    if !(1..=86_400).contains(&cache.ttl_secs) {
        p.push(format!(
            "auth.key_cache.ttl_secs must be between 1 and 86400 (got {})",
            cache.ttl_secs
        ));
    }
    Some(KeyCacheConfig {
        max_entries: max_entries?,
        ttl_secs: cache.ttl_secs,
    })
}

/// `[auth.replay]`: the backend's own keys; the Redis keys are checked
/// whichever backend is chosen, as they are in the file.
fn replay(replay: schema::Replay, p: &mut Problems) -> Option<ReplayConfig> {
    let max_entries = p.require(NonZeroUsize::new(replay.max_entries), || {
        "auth.replay.max_entries must be at least 1 (got 0)".to_string()
    });
    let url = replay_url(replay.backend, replay.url.as_deref(), p);
    if replay.key_prefix.is_empty() {
        p.push("auth.replay.key_prefix must not be empty");
    }
    if !(1..=60_000).contains(&replay.timeout_ms) {
        p.push(format!(
            "auth.replay.timeout_ms must be between 1 and 60000 (got {})",
            replay.timeout_ms
        ));
    }
    let pool_size = NonZeroU32::new(replay.pool_size).filter(|n| n.get() <= 64);
    let pool_size = p.require(pool_size, || {
        format!(
            "auth.replay.pool_size must be between 1 and 64 (got {})",
            replay.pool_size
        )
    });
    if replay.password_env.is_some() && replay.password_file.is_some() {
        p.push("auth.replay.password_env and auth.replay.password_file are both set; set at most one");
    }
    if let Some(var) = &replay.password_env
        && let Err(why) = check_env_name(var)
    {
        p.push(format!("auth.replay.password_env {var:?} {why}"));
    }
    if let Some(file) = &replay.password_file
        && file.as_os_str().is_empty()
    {
        p.push("auth.replay.password_file must not be empty");
    }
    match replay.backend {
        ReplayBackend::Memory => Some(ReplayConfig::Memory {
            max_entries: max_entries?,
        }),
        ReplayBackend::Redis => Some(ReplayConfig::Redis(RedisReplayConfig {
            url: url?,
            key_prefix: replay.key_prefix,
            timeout_ms: replay.timeout_ms,
            pool_size: pool_size?,
            username: replay.username,
            tls_ca_file: replay.tls_ca_file,
            password_env: replay.password_env,
            password_file: replay.password_file,
        })),
    }
}

/// `auth.replay.url`: required with Redis and parsed, refused without it.
fn replay_url(backend: ReplayBackend, url: Option<&str>, p: &mut Problems) -> Option<RedisUrl> {
    match (backend, url) {
        (ReplayBackend::Redis, None) => {
            p.push("auth.replay.url must be set when auth.replay.backend is \"redis\"");
            None
        }
        (ReplayBackend::Redis, Some(url)) => match RedisUrl::parse(url) {
            Ok(parsed) => Some(parsed),
            Err(why) => {
                p.push(format!("auth.replay.url {url:?} {why}"));
                None
            }
        },
        (ReplayBackend::Memory, Some(_)) => {
            p.push("auth.replay.url is only used with auth.replay.backend = \"redis\"");
            None
        }
        (ReplayBackend::Memory, None) => None,
    }
}

/// One `[[streams]]` entry: names, and exactly one well-formed key source.
fn validate_stream(i: usize, s: &schema::Stream, p: &mut Problems) -> Option<StreamConfig> {
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
    validate_key_source(i, s, p);
    let publish_key = match (&s.key, &s.key_env, &s.key_file) {
        (Some(key), None, None) => PublishKeySource::Inline(key.clone()),
        (None, Some(var), None) => PublishKeySource::Env(var.clone()),
        (None, None, Some(path)) => PublishKeySource::File(path.clone()),
        _ => return None,
    };
    Some(StreamConfig {
        app: s.app.clone(),
        name: s.name.clone(),
        publish_key,
        protection: s.protection,
        record: s.record,
    })
}

/// The key source's own form: a well-formed inline key, a variable name, a
/// file name.
fn validate_key_source(i: usize, s: &schema::Stream, p: &mut Problems) {
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
fn validate_stream_uniqueness(streams: &[schema::Stream], p: &mut Problems) {
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

pub(super) fn check_publish_key(key: &[u8]) -> Result<(), String> {
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

pub(super) fn check_env_name(name: &str) -> Result<(), &'static str> {
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
pub(super) fn is_sri_hash(value: &str) -> bool {
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

/// A KMS endpoint: `http(s)://host[:port]`, optionally with a trailing `/`.
pub(super) fn check_kms_endpoint(endpoint: &str) -> Result<(), ()> {
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
