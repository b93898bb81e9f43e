//! The key service: what stands behind `GET /keys/...`, in `sealcast serve`
//! and in `sealcast keyserver` alike.
//!
//! It checks the credential (a playback token, or a one-time ticket a
//! playlist handed out), unwraps the data key through a [`KeyCache`] in front
//! of the KMS, and, for a ticket, records it in a [`ReplayStore`] so it works
//! once. It also writes tickets into playlists. It keeps no state that
//! another key server would need: tickets are verified with a key derived
//! from the token secret, the wrapped key rides in the URI, and the replay
//! store can be shared (Redis), so key servers scale out behind a load
//! balancer.
//!
//! Time comes from an injected [`Clock`], so tests move it without sleeping.

pub mod budget;
pub mod cache;
mod key_request;
pub mod license;
mod nonces;
pub mod redis;
pub mod replay;
pub mod server;
pub mod viewers;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ring::rand::SystemRandom;

pub use budget::ViewerBudget;
pub use cache::{CacheStats, KeyCache};
pub use replay::{MemoryReplayStore, ReplayError, ReplayStore};
pub use server::KeyServer;
pub use viewers::Viewers;

use crate::auth::ticket::{self, TicketBinding, TicketError, TicketKey};
use crate::auth::{self, Claims, Expect, Secret, TokenError, TokenKey};
use crate::config::{AuthConfig, ConfigError, ReplayConfig};
use crate::crypto::DataKey;
use crate::kms::Kms;
use crate::names::StreamName;
use viewers::ViewerId;

/// The clock the key service checks expiry with: the system's, or a test's.
pub type Clock = Arc<dyn crate::clock::Clock>;

/// What the key service is configured with.
#[derive(Debug, Clone)]
pub struct KeySettings {
    pub token_secret: Secret,
    /// When set, tokens must carry this `aud`.
    pub audience: Option<String>,
    /// `Some(ttl)`: playlists hand out one-time tickets valid this long
    /// instead of the token.
    pub ticket_ttl_secs: Option<u64>,
    /// Life of an offline license; 0: none issued.
    pub offline_ttl_secs: u64,
    pub cache_max_entries: usize,
    pub cache_ttl_secs: u64,
}

impl KeySettings {
    /// The `[auth]` settings with the token secret already read.
    pub fn from_config(auth: &AuthConfig, token_secret: Secret) -> Self {
        Self {
            token_secret,
            audience: auth.audience.clone(),
            ticket_ttl_secs: auth.one_time_key_tickets.then_some(auth.ticket_ttl_secs),
            offline_ttl_secs: auth.offline_ttl_secs,
            cache_max_entries: auth.key_cache.max_entries.get(),
            cache_ttl_secs: auth.key_cache.ttl_secs,
        }
    }
}

/// The replay store `[auth.replay]` names.
pub fn replay_store_from_config(auth: &AuthConfig) -> Result<Arc<dyn ReplayStore>, ConfigError> {
    Ok(match &auth.replay {
        ReplayConfig::Memory { max_entries } => Arc::new(MemoryReplayStore::new(max_entries.get())),
        ReplayConfig::Redis(redis) => Arc::new(redis::RedisReplayStore::new(
            crate::cluster::redis::RedisTarget {
                url: redis.url.clone(),
                username: redis.username.clone(),
                password: redis.resolve_password()?,
                tls_ca_file: redis.tls_ca_file.clone(),
                timeout: Duration::from_millis(redis.timeout_ms),
            },
            redis.key_prefix.clone(),
        )),
    })
}

/// What a key request presents.
#[derive(Debug, Clone, Copy)]
pub enum Credential<'a> {
    /// A one-time ticket from a playlist (`?ticket=`).
    Ticket(&'a str),
    /// A playback token (`?token=` or `Authorization: Bearer`).
    Token(&'a str),
}

/// Why a key request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// A bad, expired, replayed or foreign credential, or a wrapped key or
    /// key id that does not check out: HTTP 403.
    #[error("forbidden")]
    Forbidden,
    /// The KMS or the replay store cannot answer: HTTP 503.
    #[error("key service unavailable")]
    Unavailable,
    /// This viewer spent its budget of ticket redemptions or KMS decrypts
    /// for now ([`budget`]): HTTP 429.
    #[error("too many key requests")]
    TooMany,
}

/// Counters, for tests and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeyServiceStats {
    pub cache: CacheStats,
    /// Tickets written into playlists.
    pub tickets_issued: u64,
    /// Tickets that got a key (first use).
    pub tickets_accepted: u64,
    /// Tickets refused for form, tag, binding or expiry.
    pub tickets_refused: u64,
    /// Tickets refused because they had been used.
    pub tickets_replayed: u64,
    /// Key requests that presented a playback token rather than a ticket.
    pub token_key_requests: u64,
    /// Key requests refused because their viewer's budget was spent.
    pub over_budget: u64,
    /// Key requests by their answer.
    pub key_results: KeyResults,
}

/// Key requests by answer, for `sealcast_key_requests_total{result}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeyResults {
    /// 200: the key was delivered.
    pub ok: u64,
    /// 401: no credential was presented.
    pub unauthorized: u64,
    /// 403: a credential or wrapped key that does not check out.
    pub forbidden: u64,
    /// 503: the KMS or the replay store could not answer.
    pub unavailable: u64,
    /// 429: the viewer's budget was spent.
    pub too_many: u64,
}

#[derive(Default)]
struct Counters {
    tickets_issued: AtomicU64,
    tickets_accepted: AtomicU64,
    tickets_refused: AtomicU64,
    tickets_replayed: AtomicU64,
    token_key_requests: AtomicU64,
    over_budget: AtomicU64,
    /// Replay store failures, so only some of them are logged.
    replay_failures: AtomicU64,
    key_ok: AtomicU64,
    key_unauthorized: AtomicU64,
    key_forbidden: AtomicU64,
    key_unavailable: AtomicU64,
    key_too_many: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// See the module docs.
pub struct KeyService {
    kms: Arc<dyn Kms>,
    cache: KeyCache,
    token_secret: Secret,
    /// The token secret as an HMAC key, made once.
    token_key: TokenKey,
    audience: Option<String>,
    ticket_key: TicketKey,
    ticket_ttl_secs: Option<u64>,
    offline_ttl_secs: u64,
    replay: Arc<dyn ReplayStore>,
    clock: Clock,
    rng: SystemRandom,
    /// Ticket nonces.
    nonces: nonces::NoncePool,
    counters: Counters,
    /// Ticket redemptions per viewer tag.
    redemptions: ViewerBudget,
    /// KMS decrypts (cache misses) per token.
    kms_misses: ViewerBudget,
    /// Distinct viewers per stream, recently.
    viewers: Viewers,
    /// Streams with `protection = "web"`: no raw keys ([`license`]).
    protected: license::ProtectedStreams,
}

impl KeyService {
    pub fn new(settings: KeySettings, kms: Arc<dyn Kms>, replay: Arc<dyn ReplayStore>, clock: Clock) -> Self {
        Self {
            kms,
            cache: KeyCache::new(settings.cache_max_entries, settings.cache_ttl_secs),
            ticket_key: TicketKey::derive(&settings.token_secret),
            token_key: TokenKey::new(&settings.token_secret),
            token_secret: settings.token_secret,
            audience: settings.audience,
            ticket_ttl_secs: settings.ticket_ttl_secs,
            offline_ttl_secs: settings.offline_ttl_secs,
            replay,
            clock,
            rng: SystemRandom::new(),
            nonces: nonces::NoncePool::new(),
            counters: Counters::default(),
            redemptions: ViewerBudget::new(budget::TICKET_REDEMPTIONS_PER_WINDOW),
            kms_misses: ViewerBudget::new(budget::KMS_MISSES_PER_WINDOW),
            viewers: Viewers::default(),
            protected: license::ProtectedStreams::default(),
        }
    }

    /// The service's current time, Unix seconds.
    pub fn now(&self) -> u64 {
        self.clock.now_unix_secs()
    }

    pub fn token_secret(&self) -> &Secret {
        &self.token_secret
    }

    pub fn audience(&self) -> Option<&str> {
        self.audience.as_deref()
    }

    /// Whether playlists hand out one-time tickets.
    pub fn tickets_enabled(&self) -> bool {
        self.ticket_ttl_secs.is_some()
    }

    pub fn stats(&self) -> KeyServiceStats {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        KeyServiceStats {
            cache: self.cache.stats(),
            tickets_issued: get(&c.tickets_issued),
            tickets_accepted: get(&c.tickets_accepted),
            tickets_refused: get(&c.tickets_refused),
            tickets_replayed: get(&c.tickets_replayed),
            token_key_requests: get(&c.token_key_requests),
            over_budget: get(&c.over_budget),
            key_results: KeyResults {
                ok: get(&c.key_ok),
                unauthorized: get(&c.key_unauthorized),
                forbidden: get(&c.key_forbidden),
                unavailable: get(&c.key_unavailable),
                too_many: get(&c.key_too_many),
            },
        }
    }

    /// Counts a key request that presented no credential (answered 401
    /// before it reaches [`KeyService::key`]).
    pub fn note_unauthorized(&self) {
        bump(&self.counters.key_unauthorized);
    }

    /// Records that the holder of a verified token asked for `stream` now,
    /// and returns the token's [`ticket::viewer_tag`]: callers need it too,
    /// and it hashes the whole token when there is no `jti`.
    pub fn saw_viewer(&self, stream: &StreamName, claims: &Claims, token: &str) -> ViewerId {
        let tag = ticket::viewer_tag(claims, token);
        let viewer = viewers::token_viewer(claims, tag, self.tickets_enabled());
        self.viewers.saw(stream.as_str(), viewer, self.now());
        tag
    }

    /// Distinct viewers per stream within the last
    /// [`viewers::VIEWER_WINDOW_SECS`], by the service's clock.
    pub fn viewer_counts(&self) -> Vec<(String, usize)> {
        self.viewers.counts(self.now())
    }

    /// Checks a playback token for `stream` now (signature, `exp`, `nbf`,
    /// `aud` when an audience is configured, `stream`).
    pub fn verify_token(&self, token: &str, stream: &StreamName) -> Result<Claims, TokenError> {
        let expect = Expect {
            stream: stream.as_str(),
            audience: self.audience.as_deref(),
        };
        self.token_key.verify(token, &expect, self.now())
    }

    /// Mints a playback token this service accepts (with the configured `aud`).
    pub fn mint_token(&self, claims: &Claims) -> String {
        auth::mint_with_audience(&self.token_secret, claims, self.audience.as_deref())
    }

    /// Rewrites a rendered playlist so every key URI carries a fresh ticket
    /// (`&ticket=...`) for the viewer whose verified token is `claims`, with
    /// viewer tag `viewer` ([`ticket::viewer_tag`]). Repeats of one key URI get the same ticket, so a player
    /// fetches each key once per playlist. A ticket expires after the
    /// configured TTL, or with the token if that is sooner.
    pub fn ticket_playlist(&self, playlist: &str, claims: &Claims, viewer: ViewerId) -> Result<String, TicketError> {
        let ttl = self.ticket_ttl_secs.unwrap_or(0);
        let exp = self.now().saturating_add(ttl).min(claims.exp);
        // By URI: one ticket per key, however many key tags name it (a key
        // over several segments gets a tag per segment for its IV). A map, as
        // a DVR window lists thousands of keys.
        let mut issued: std::collections::HashMap<&str, String> = std::collections::HashMap::new();
        let mut out = String::with_capacity(playlist.len() + 16 * (ticket::TICKET_TEXT_LEN + 8));
        for line in playlist.split_inclusive('\n') {
            let Some((before, uri, after)) = key_tag_uri(line) else {
                out.push_str(line);
                continue;
            };
            let ticket = match issued.entry(uri) {
                std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
                std::collections::hash_map::Entry::Vacant(entry) => {
                    let Some(binding) = key_uri_binding(uri) else {
                        out.push_str(line);
                        continue;
                    };
                    let ticket = ticket::issue(&self.ticket_key, &binding, viewer, exp, self.nonces.next()?);
                    bump(&self.counters.tickets_issued);
                    entry.insert(ticket)
                }
            };
            out.push_str(before);
            out.push_str(uri);
            out.push_str("&ticket=");
            out.push_str(ticket);
            out.push_str(after);
        }
        Ok(out)
    }

    /// The data key for `/keys/{stream}/{key_id}?edk={edk}` if `credential`
    /// allows it. A ticket is spent only once the key is in hand, so a
    /// player retrying after a 503 can use the same ticket.
    ///
    /// Budgets ([`budget`]): a good ticket takes one redemption of its
    /// viewer's; a good token whose key would need the KMS takes one decrypt
    /// of the token's. A spent budget is [`KeyError::TooMany`], before the
    /// KMS or the replay store is asked.
    pub async fn key(
        &self,
        stream: &StreamName,
        key_id: &str,
        edk: &str,
        credential: Credential<'_>,
    ) -> Result<DataKey, KeyError> {
        let result = self.checked_key(stream, key_id, edk, credential).await;
        let c = &self.counters;
        bump(match &result {
            Ok(_) => &c.key_ok,
            Err(KeyError::Forbidden) => &c.key_forbidden,
            Err(KeyError::Unavailable) => &c.key_unavailable,
            Err(KeyError::TooMany) => &c.key_too_many,
        });
        result
    }
}

/// Splits an `#EXT-X-KEY` line into (up to and including `URI="`, the URI,
/// the rest from the closing quote).
/// `playlist` with `query` (e.g. `token=…`) appended to every key URI, for a
/// credential-free playlist read back from storage (an edge's). The URIs
/// sealcast writes always carry `?edk=`, so the query joins with `&`.
pub fn with_key_query(playlist: &str, query: &str) -> String {
    let mut out = String::with_capacity(playlist.len() + 8 * (query.len() + 1));
    for line in playlist.split_inclusive('\n') {
        match key_tag_uri(line) {
            Some((before, uri, after)) => {
                out.push_str(before);
                out.push_str(uri);
                out.push(if uri.contains('?') { '&' } else { '?' });
                out.push_str(query);
                out.push_str(after);
            }
            None => out.push_str(line),
        }
    }
    out
}

fn key_tag_uri(line: &str) -> Option<(&str, &str, &str)> {
    if !line.starts_with("#EXT-X-KEY:") {
        return None;
    }
    let start = line.find("URI=\"")? + "URI=\"".len();
    let len = line.get(start..)?.find('"')?;
    Some((
        line.get(..start)?,
        line.get(start..start + len)?,
        line.get(start + len..)?,
    ))
}

/// The binding of a key URI `.../keys/{app}/{name}/{key_id}?edk={edk}...` as
/// the key endpoint will see it.
fn key_uri_binding(uri: &str) -> Option<TicketBinding<'_>> {
    let at = uri.rfind("/keys/")? + "/keys/".len();
    let (path, query) = uri.get(at..)?.split_once('?')?;
    let (stream, key_id) = path.rsplit_once('/')?;
    let edk = query.split('&').find_map(|pair| pair.strip_prefix("edk="))?;
    Some(TicketBinding { stream, key_id, edk })
}

#[cfg(test)]
mod tests;
