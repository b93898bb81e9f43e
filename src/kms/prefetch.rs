//! Keeps a stream's next data keys ready before the segments need them, so
//! KMS latency never sits on the segment path.
//!
//! One task per publish asks the KMS for keys `{prefix}-0`, `{prefix}-1`, …
//! and parks each in a bounded channel; it asks for the next only when a slot
//! is free, so at most `ahead` keys wait unused in memory. When the KMS fails
//! it retries with exponential backoff and jitter (never once per frame), and
//! resumes by itself when the KMS answers again.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use ring::rand::{SecureRandom as _, SystemRandom};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{Instrument as _, debug, error, info, warn};

use super::Kms;
use crate::crypto::{DataKey, EncryptionContext, KeyId, WrappedKey};

/// A data key fetched ahead of need: the key id it is bound to (in its
/// encryption context and its key URI), the plaintext and the wrapped form.
pub struct PrefetchedKey {
    pub id: KeyId,
    pub key: DataKey,
    pub wrapped: WrappedKey,
}

/// How a failing KMS is retried: waits double from `initial` up to `max`,
/// each drawn between half and all of its nominal value so many streams do
/// not retry in lockstep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    /// 250 ms doubling to 2 s: a KMS that comes back is noticed within 2 s,
    /// less than a segment, while a stream makes at most one call a second
    /// (on average) against a KMS that stays down.
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(250),
            max: Duration::from_secs(2),
        }
    }
}

/// What the fetch task reports besides keys.
#[derive(Debug, Default)]
struct Health {
    /// Failed KMS calls so far.
    failures: u64,
    /// The last error, while the KMS keeps failing; cleared by a success.
    last_error: Option<String>,
}

/// A publish's key supply. Dropping it stops the fetch task.
pub struct KeyPrefetcher {
    keys: mpsc::Receiver<PrefetchedKey>,
    health: Arc<Mutex<Health>>,
    task: JoinHandle<()>,
}

impl KeyPrefetcher {
    /// Starts fetching keys for `stream` (`app/name`) named `{key_id_prefix}-{n}`,
    /// keeping up to `ahead` (at least 1) of them ready. Must be called within
    /// a tokio runtime; the task runs in the caller's tracing span.
    pub fn spawn(kms: Arc<dyn Kms>, stream: String, key_id_prefix: String, ahead: usize, backoff: Backoff) -> Self {
        let (tx, keys) = mpsc::channel(ahead.max(1));
        let health = Arc::new(Mutex::new(Health::default()));
        let fetch = Fetch {
            kms,
            stream,
            prefix: key_id_prefix,
            tx,
            health: Arc::clone(&health),
            backoff,
            rng: SystemRandom::new(),
        };
        let task = tokio::spawn(fetch.run().instrument(tracing::Span::current()));
        Self { keys, health, task }
    }

    /// The next key, waiting for it if none is ready. `None` once the fetch
    /// task has ended (it only does so when a key id cannot be formed).
    /// Cancel-safe: usable in `tokio::select!`.
    pub async fn recv(&mut self) -> Option<PrefetchedKey> {
        self.keys.recv().await
    }

    /// A ready key, without waiting.
    pub fn try_recv(&mut self) -> Option<PrefetchedKey> {
        self.keys.try_recv().ok()
    }

    /// The KMS's last error while it keeps failing; `None` once a key came
    /// through after it (or before any failure).
    pub fn last_error(&self) -> Option<String> {
        lock(&self.health).last_error.clone()
    }

    /// Failed KMS calls since the start.
    pub fn failures(&self) -> u64 {
        lock(&self.health).failures
    }
}

impl Drop for KeyPrefetcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock(health: &Mutex<Health>) -> MutexGuard<'_, Health> {
    // Plain counters: a panic elsewhere cannot leave them inconsistent.
    health.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

struct Fetch {
    kms: Arc<dyn Kms>,
    stream: String,
    prefix: String,
    tx: mpsc::Sender<PrefetchedKey>,
    health: Arc<Mutex<Health>>,
    backoff: Backoff,
    rng: SystemRandom,
}

impl Fetch {
    async fn run(self) {
        let mut next = 0u64;
        let mut delay = self.backoff.initial;
        let mut streak = 0u64;
        loop {
            // Wait for room first, so a key is only made when it can be parked.
            let Ok(permit) = self.tx.reserve().await else {
                return;
            };
            let key_id = match KeyId::new(&format!("{}-{next}", self.prefix)) {
                Ok(id) => id,
                Err(error) => {
                    error!(stream = %self.stream, %error, "cannot form a key id; no more data keys for this publish");
                    return;
                }
            };
            let context = EncryptionContext::new(&self.stream, &key_id);
            match self.kms.generate_data_key(&context).await {
                Ok((key, wrapped)) => {
                    next += 1;
                    delay = self.backoff.initial;
                    lock(&self.health).last_error = None;
                    if streak > 0 {
                        info!(stream = %self.stream, failed_calls = streak, "KMS answers again: encryption resumes");
                        streak = 0;
                    }
                    debug!(key_id = %key_id, "data key ready");
                    permit.send(PrefetchedKey {
                        id: key_id,
                        key,
                        wrapped,
                    });
                }
                Err(error) => {
                    drop(permit);
                    streak += 1;
                    {
                        let mut health = lock(&self.health);
                        health.failures += 1;
                        health.last_error = Some(error.to_string());
                    }
                    let wait = self.jittered(delay);
                    // One error per outage, then a reminder every 20 retries.
                    if streak == 1 {
                        error!(
                            stream = %self.stream,
                            %error,
                            retry_in_ms = wait.as_millis() as u64,
                            "KMS gave no data key; retrying with backoff, segments without a key are dropped"
                        );
                    } else if streak.is_multiple_of(20) {
                        warn!(stream = %self.stream, %error, failed_calls = streak, "KMS still gives no data key");
                    }
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        () = self.tx.closed() => return,
                    }
                    delay = delay.saturating_mul(2).min(self.backoff.max);
                }
            }
        }
    }

    /// Between half and all of `delay`.
    fn jittered(&self, delay: Duration) -> Duration {
        let mut bytes = [0u8; 4];
        // Without randomness, waiting the full delay is still correct.
        if self.rng.fill(&mut bytes).is_err() {
            return delay;
        }
        let fraction = f64::from(u32::from_le_bytes(bytes)) / f64::from(u32::MAX);
        delay.mul_f64(0.5 + fraction / 2.0)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use async_trait::async_trait;

    use super::*;
    use crate::kms::KmsError;

    /// Fails while `down` is set; counts calls; wraps keys as the key id's bytes.
    #[derive(Default)]
    struct Flaky {
        down: std::sync::atomic::AtomicBool,
        calls: AtomicU64,
        contexts: Mutex<Vec<EncryptionContext>>,
    }

    #[async_trait]
    impl Kms for Flaky {
        async fn generate_data_key(&self, ctx: &EncryptionContext) -> Result<(DataKey, WrappedKey), KmsError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            if self.down.load(Ordering::SeqCst) {
                return Err(KmsError::Unavailable("test KMS is down".to_owned()));
            }
            self.contexts.lock().unwrap().push(ctx.clone());
            let id = ctx.get(EncryptionContext::KEY_ID).unwrap_or_default();
            Ok((
                DataKey::from_bytes([7; 16]),
                WrappedKey::from_bytes(id.as_bytes().to_vec()),
            ))
        }

        async fn decrypt(&self, _: &WrappedKey, _: &EncryptionContext) -> Result<DataKey, KmsError> {
            Err(KmsError::InvalidCiphertext)
        }
    }

    /// Lets the fetch task run until it waits on something.
    async fn settle() {
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn keeps_keys_ready_ahead_and_names_them_in_order() {
        let kms = Arc::new(Flaky::default());
        let mut keys = KeyPrefetcher::spawn(kms.clone(), "live/demo".into(), "p1".into(), 2, Backoff::default());
        settle().await;
        // Two parked, none more until one is taken.
        assert_eq!(kms.calls.load(Ordering::SeqCst), 2);
        let first = keys.try_recv().unwrap();
        assert_eq!(first.id.as_str(), "p1-0");
        assert_eq!(first.wrapped.as_bytes(), b"p1-0");
        settle().await;
        assert_eq!(kms.calls.load(Ordering::SeqCst), 3);
        let names: Vec<String> = [keys.recv().await.unwrap(), keys.recv().await.unwrap()]
            .iter()
            .map(|k| k.id.to_string())
            .collect();
        assert_eq!(names, ["p1-1", "p1-2"]);
        let contexts = kms.contexts.lock().unwrap().clone();
        assert_eq!(
            contexts[1],
            EncryptionContext::new("live/demo", &KeyId::new("p1-1").unwrap())
        );
        assert_eq!(keys.failures(), 0);
        assert_eq!(keys.last_error(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn retries_with_backoff_and_resumes() {
        let kms = Arc::new(Flaky::default());
        kms.down.store(true, Ordering::SeqCst);
        let backoff = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
        };
        let mut keys = KeyPrefetcher::spawn(kms.clone(), "live/demo".into(), "p".into(), 1, backoff);
        settle().await;
        assert_eq!(kms.calls.load(Ordering::SeqCst), 1);
        assert_eq!(
            keys.last_error().as_deref(),
            Some("key provider unavailable: test KMS is down")
        );

        // 10 s of outage: waits of at least 50, 100, 200, 400, then 500 ms
        // each (at most 100, 200, 400, 800, then 1000 ms), so 11 to 25 calls,
        // not one per frame.
        for _ in 0..100 {
            tokio::time::advance(Duration::from_millis(100)).await;
            settle().await;
        }
        let calls = kms.calls.load(Ordering::SeqCst);
        assert!((11..=25).contains(&calls), "{calls} calls in 10 s");
        assert_eq!(keys.failures(), calls);
        assert!(keys.try_recv().is_none());

        // Back up: within one maximal wait a key arrives, named p-0 (no key
        // was made under a failed attempt's id).
        kms.down.store(false, Ordering::SeqCst);
        let key = tokio::time::timeout(Duration::from_millis(1100), keys.recv())
            .await
            .expect("a key within the longest backoff")
            .unwrap();
        assert_eq!(key.id.as_str(), "p-0");
        assert_eq!(keys.last_error(), None);
        assert_eq!(keys.failures(), calls);
    }

    #[tokio::test(start_paused = true)]
    async fn dropping_the_prefetcher_stops_the_task() {
        let kms = Arc::new(Flaky::default());
        kms.down.store(true, Ordering::SeqCst);
        let keys = KeyPrefetcher::spawn(kms.clone(), "live/demo".into(), "p".into(), 1, Backoff::default());
        settle().await;
        drop(keys);
        let calls = kms.calls.load(Ordering::SeqCst);
        tokio::time::advance(Duration::from_secs(60)).await;
        settle().await;
        assert_eq!(kms.calls.load(Ordering::SeqCst), calls);
    }

    #[tokio::test]
    async fn an_invalid_prefix_ends_the_supply() {
        let kms = Arc::new(Flaky::default());
        let mut keys = KeyPrefetcher::spawn(
            kms.clone(),
            "live/demo".into(),
            "bad prefix".into(),
            1,
            Backoff::default(),
        );
        assert!(keys.recv().await.is_none());
        assert_eq!(kms.calls.load(Ordering::SeqCst), 0);
    }
}
