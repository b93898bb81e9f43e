//! The publish leases in Redis: acquire, renew, release, each one atomic
//! Lua script (`EVALSHA`, loaded on first use), and the keeper task that
//! renews a holder's lease and stops its publish when the lease is gone.
//! The timings are [`super::lease::Policy`]'s.

use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::Script;
use tracing::{info, warn};

use super::lease::{Holder, Policy, Value, parse_value};
use super::redis::{Redis, RedisError};
use crate::live::{PublishControl, Stop};

/// Takes the lease when it is free, or when its holder has sent no media
/// for `ARGV[3]` ms (negative: never); the stored last-media time is Redis's
/// clock now. Returns `{1, previous value or ""}` or `{0, current value}`.
const ACQUIRE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cur = redis.call('GET', KEYS[1])
if cur then
  local idle = tonumber(ARGV[3])
  local last = tonumber(string.match(cur, ' (%d+)$'))
  if idle < 0 or not last or now - last < idle then
    return {0, cur}
  end
end
redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. string.format('%d', now), 'PX', ARGV[2])
return {1, cur or ''}
";

/// Compare-and-renew: when the value is still this holder's, resets its TTL
/// and its last-media time (`now - ARGV[3]` ms). 1 renewed, 0 lost.
const RENEW: &str = r"
local cur = redis.call('GET', KEYS[1])
if not cur or string.sub(cur, 1, #ARGV[1] + 1) ~= ARGV[1] .. ' ' then
  return 0
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. string.format('%d', now - tonumber(ARGV[3])), 'PX', ARGV[2])
return 1
";

/// Compare-and-delete: 1 released, 0 not this holder's (any more).
const RELEASE: &str = r"
local cur = redis.call('GET', KEYS[1])
if cur and string.sub(cur, 1, #ARGV[1] + 1) == ARGV[1] .. ' ' then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// What an acquisition found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acquired {
    /// The lease is ours; `previous` is the quiet holder taken over, if any.
    Granted { previous: Option<Value>, sent_at: Instant },
    /// Someone else holds it (the raw value, for logs).
    Held(String),
}

/// The lease client of one node.
pub struct Leases {
    redis: Redis,
    node_id: String,
    key_prefix: String,
    policy: Policy,
    acquire: Script,
    renew: Script,
    release: Script,
}

impl Leases {
    pub fn new(redis: Redis, node_id: String, key_prefix: String, policy: Policy) -> Self {
        Self {
            redis,
            node_id,
            key_prefix,
            policy,
            acquire: Script::new(ACQUIRE),
            renew: Script::new(RENEW),
            release: Script::new(RELEASE),
        }
    }

    pub fn policy(&self) -> Policy {
        self.policy
    }

    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    fn key(&self, stream: &str) -> String {
        format!("{}{stream}", self.key_prefix)
    }

    pub fn holder(&self, publish_id: &str) -> Holder {
        Holder {
            node_id: self.node_id.clone(),
            publish_id: publish_id.to_owned(),
        }
    }

    /// Takes `stream`'s lease for `holder`; with `allow_takeover`, also from
    /// a holder quiet for the policy's takeover threshold.
    pub async fn acquire(&self, stream: &str, holder: &Holder, allow_takeover: bool) -> Result<Acquired, RedisError> {
        let key = self.key(stream);
        let tag = holder.tag();
        let (key, tag) = (key.as_str(), tag.as_str());
        let ttl_ms = self.policy.ttl.as_millis() as u64;
        let idle: i64 = match (allow_takeover, self.policy.takeover_idle_ms()) {
            (true, ms) if ms != u64::MAX => i64::try_from(ms).unwrap_or(i64::MAX),
            _ => -1,
        };
        let sent_at = Instant::now();
        let script = &self.acquire;
        let (granted, value): (i64, String) = self
            .redis
            .run(|mut c| async move {
                script
                    .key(key)
                    .arg(tag)
                    .arg(ttl_ms)
                    .arg(idle)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        // A retried request (the first reply lost) finds its own value.
        let ours = value.strip_prefix(tag).is_some_and(|rest| rest.starts_with(' '));
        Ok(if granted == 1 || ours {
            Acquired::Granted {
                previous: if ours { None } else { parse_value(&value) },
                sent_at,
            }
        } else {
            Acquired::Held(value)
        })
    }

    /// Renews `holder`'s lease, recording media `media_age_ms` old: `true`
    /// renewed, `false` the lease is someone else's or gone.
    pub async fn renew(&self, stream: &str, holder: &Holder, media_age_ms: u64) -> Result<bool, RedisError> {
        let key = self.key(stream);
        let tag = holder.tag();
        let (key, tag) = (key.as_str(), tag.as_str());
        let ttl_ms = self.policy.ttl.as_millis() as u64;
        let script = &self.renew;
        let renewed: i64 = self
            .redis
            .run(|mut c| async move {
                script
                    .key(key)
                    .arg(tag)
                    .arg(ttl_ms)
                    .arg(media_age_ms)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        Ok(renewed == 1)
    }

    /// Gives `holder`'s lease up, if it still holds it.
    pub async fn release(&self, stream: &str, holder: &Holder) -> Result<bool, RedisError> {
        let key = self.key(stream);
        let tag = holder.tag();
        let (key, tag) = (key.as_str(), tag.as_str());
        let script = &self.release;
        let released: i64 = self
            .redis
            .run(|mut c| async move { script.key(key).arg(tag).invoke_async(&mut c).await })
            .await?;
        Ok(released == 1)
    }

    /// Keeps `holder`'s lease (acquired at `sent_at`): renews every
    /// [`Policy::renew_interval`], a failed renewal retried sooner. Returns
    /// when the lease turns out to be someone else's, or when no renewal
    /// succeeded before the write deadline; the publish behind `control` is
    /// then stopped with [`Stop::LeaseLost`] and writes nothing more. The
    /// registry aborts this task when the publish ends, then releases.
    pub async fn keep(self: Arc<Self>, stream: String, holder: Holder, sent_at: Instant, control: Arc<PublishControl>) {
        let policy = self.policy;
        let mut deadline = policy.write_deadline(sent_at);
        control.set_write_deadline(deadline);
        let mut next = sent_at + policy.renew_interval();
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(deadline.into()) => {
                    warn!(stream = %stream, "publish lease not renewed in time: stopping before it can expire");
                    control.stop(Stop::LeaseLost);
                    return;
                }
                () = tokio::time::sleep_until(next.into()) => {
                    let sent = Instant::now();
                    let age_ms = u64::try_from(control.quiet_for(sent).as_millis()).unwrap_or(u64::MAX);
                    match self.renew(&stream, &holder, age_ms).await {
                        Ok(true) => {
                            deadline = policy.write_deadline(sent);
                            control.set_write_deadline(deadline);
                            next = sent + policy.renew_interval();
                        }
                        Ok(false) => {
                            control.set_write_deadline(Instant::now());
                            control.stop(Stop::LeaseLost);
                            info!(stream = %stream, "publish lease taken by another publisher: this publish stops");
                            return;
                        }
                        Err(error) => {
                            warn!(stream = %stream, %error, "renewing the publish lease failed; retrying");
                            next = Instant::now() + policy.renew_interval().min(Duration::from_millis(500));
                        }
                    }
                }
            }
        }
    }
}
