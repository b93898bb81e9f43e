//! A bounded, expiring, in-memory cache of unwrapped data keys, so N viewers
//! of one key cost one KMS decrypt per key server rather than N.
//!
//! Entries are keyed by the wrapped key and its encryption context (both
//! authenticated by the KMS, so a hit is exactly what the KMS would return).
//! Concurrent misses for one key share one decrypt (single flight): the first
//! request runs it, the others wait on the same `OnceCell`. Keys are
//! [`DataKey`]s, zeroized when evicted, and never leave memory.
//!
//! What bounds the KMS work anonymous or hostile requests can cause:
//! - a wrapped key the KMS refused is answered from memory for
//!   [`REFUSED_TTL_SECS`] (repeating one bad `edk` costs one decrypt); an
//!   outage (`Unavailable`) is not remembered, so recovery is immediate;
//! - at most [`MAX_CONCURRENT_DECRYPTS`] decrypts are in flight at once; a
//!   request that waits longer than [`DECRYPT_QUEUE_TIMEOUT`] for a turn
//!   gets `Unavailable` (503), so a flood queues neither without bound nor
//!   in front of the KMS quota ingest needs;
//! - the key service spends a per-token budget on every miss
//!   ([`KeyCache::would_call_kms`], [`super::budget`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use dashmap::DashMap;
use tokio::sync::{OnceCell, Semaphore};

use crate::crypto::{DataKey, EncryptionContext, WrappedKey};
use crate::kms::{Kms, KmsError};

/// How long a wrapped key the KMS refused is refused again without asking.
pub const REFUSED_TTL_SECS: u64 = 30;
/// KMS decrypts in flight at once, per key server.
pub const MAX_CONCURRENT_DECRYPTS: usize = 32;
/// How long a decrypt waits for one of the [`MAX_CONCURRENT_DECRYPTS`] turns.
pub const DECRYPT_QUEUE_TIMEOUT: Duration = Duration::from_secs(5);

/// The wrapped key (length-prefixed) and its context's canonical encoding
/// ([`EncryptionContext::to_aad`]) in one byte string: one allocation per
/// lookup, and cheap to hash and compare.
#[derive(Clone, PartialEq, Eq, Hash)]
struct CacheKey(Box<[u8]>);

impl CacheKey {
    fn new(wrapped: &WrappedKey, context: &EncryptionContext) -> Self {
        let wrapped = wrapped.as_bytes();
        let mut bytes = Vec::with_capacity(8 + wrapped.len() + context.aad_len());
        bytes.extend_from_slice(&(wrapped.len() as u64).to_be_bytes());
        bytes.extend_from_slice(wrapped);
        context.extend_aad(&mut bytes);
        Self(bytes.into_boxed_slice())
    }
}

struct Slot {
    created_unix_secs: u64,
    key: OnceCell<DataKey>,
}

/// Counters of a [`KeyCache`], read with relaxed ordering.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Requests served from a key already unwrapped.
    pub hits: u64,
    /// Requests that found no unwrapped key (absent, expired, or still being
    /// unwrapped by another request, which they then waited for).
    pub misses: u64,
    /// Decrypts actually sent to the KMS.
    pub kms_calls: u64,
    /// Requests refused from memory: a wrapped key the KMS refused recently.
    pub refused_hits: u64,
    /// Entries held now.
    pub entries: u64,
}

/// See the module docs.
pub struct KeyCache {
    map: DashMap<CacheKey, Arc<Slot>>,
    /// Wrapped keys the KMS refused, and until when that answer stands.
    refused: DashMap<CacheKey, u64>,
    decrypts: Semaphore,
    max_entries: usize,
    ttl_secs: u64,
    hits: AtomicU64,
    misses: AtomicU64,
    kms_calls: AtomicU64,
    refused_hits: AtomicU64,
}

impl KeyCache {
    /// A cache of at most `max_entries` keys (at least 1), each kept
    /// `ttl_secs` after it was unwrapped.
    pub fn new(max_entries: usize, ttl_secs: u64) -> Self {
        Self {
            map: DashMap::new(),
            refused: DashMap::new(),
            decrypts: Semaphore::new(MAX_CONCURRENT_DECRYPTS),
            max_entries: max_entries.max(1),
            ttl_secs,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            kms_calls: AtomicU64::new(0),
            refused_hits: AtomicU64::new(0),
        }
    }

    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            kms_calls: self.kms_calls.load(Ordering::Relaxed),
            refused_hits: self.refused_hits.load(Ordering::Relaxed),
            entries: self.map.len() as u64,
        }
    }

    /// The data key for `wrapped` under `context`: from the cache, or from
    /// `kms` (once, however many requests ask at the same time).
    pub async fn get_or_unwrap(
        &self,
        kms: &dyn Kms,
        wrapped: &WrappedKey,
        context: &EncryptionContext,
        now_unix_secs: u64,
    ) -> Result<DataKey, KmsError> {
        let cache_key = CacheKey::new(wrapped, context);
        if self.refused_recently(&cache_key, now_unix_secs) {
            self.refused_hits.fetch_add(1, Ordering::Relaxed);
            return Err(KmsError::InvalidCiphertext);
        }
        let slot = self.slot(&cache_key, now_unix_secs);
        if let Some(key) = slot.key.get() {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(key.clone());
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let result = slot
            .key
            .get_or_try_init(|| async {
                let _turn = tokio::time::timeout(DECRYPT_QUEUE_TIMEOUT, self.decrypts.acquire())
                    .await
                    .ok()
                    .and_then(Result::ok)
                    .ok_or_else(|| KmsError::Unavailable("too many KMS decrypts in flight".into()))?;
                self.kms_calls.fetch_add(1, Ordering::Relaxed);
                kms.decrypt(wrapped, context).await
            })
            .await;
        match result {
            Ok(key) => Ok(key.clone()),
            Err(error) => {
                // Failed keys take no room in the map; a refusal is noted for
                // a while, an outage not at all.
                self.map.remove_if(&cache_key, |_, current| Arc::ptr_eq(current, &slot));
                if matches!(error, KmsError::InvalidCiphertext) {
                    self.note_refused(cache_key, now_unix_secs);
                }
                Err(error)
            }
        }
    }

    /// Whether [`KeyCache::get_or_unwrap`] would ask the KMS now: the key is
    /// neither cached nor being unwrapped, nor refused recently.
    pub fn would_call_kms(&self, wrapped: &WrappedKey, context: &EncryptionContext, now_unix_secs: u64) -> bool {
        let cache_key = CacheKey::new(wrapped, context);
        let present = self
            .map
            .get(&cache_key)
            .is_some_and(|slot| !self.expired(&slot, now_unix_secs));
        !present && !self.refused_recently(&cache_key, now_unix_secs)
    }

    fn refused_recently(&self, cache_key: &CacheKey, now_unix_secs: u64) -> bool {
        self.refused.get(cache_key).is_some_and(|until| now_unix_secs < *until)
    }

    /// Remembers a refusal, within the same bound as the keys: expired
    /// refusals go first, and if that is not enough, all of them.
    fn note_refused(&self, cache_key: CacheKey, now_unix_secs: u64) {
        if self.refused.len() >= self.max_entries {
            self.refused.retain(|_, until| now_unix_secs < *until);
            if self.refused.len() >= self.max_entries {
                self.refused.clear();
            }
        }
        self.refused
            .insert(cache_key, now_unix_secs.saturating_add(REFUSED_TTL_SECS));
    }

    /// The slot for `cache_key`, a fresh one if absent or expired. The map's
    /// guard is dropped before returning, so no guard is held across an await.
    fn slot(&self, cache_key: &CacheKey, now_unix_secs: u64) -> Arc<Slot> {
        if let Some(slot) = self.map.get(cache_key)
            && !self.expired(&slot, now_unix_secs)
        {
            return Arc::clone(&slot);
        }
        if self.map.len() >= self.max_entries {
            self.evict(now_unix_secs);
        }
        let fresh = || {
            Arc::new(Slot {
                created_unix_secs: now_unix_secs,
                key: OnceCell::new(),
            })
        };
        let mut entry = self.map.entry(cache_key.clone()).or_insert_with(fresh);
        if self.expired(&entry, now_unix_secs) {
            *entry = fresh();
        }
        Arc::clone(&entry)
    }

    fn expired(&self, slot: &Slot, now_unix_secs: u64) -> bool {
        now_unix_secs >= slot.created_unix_secs.saturating_add(self.ttl_secs)
    }

    /// Makes room: drops expired entries, then, if still full, about an
    /// eighth of the entries (arbitrary ones), so a full cache of live keys
    /// pays this O(n) pass once per max_entries / 8 insertions.
    fn evict(&self, now_unix_secs: u64) {
        self.map.retain(|_, slot| !self.expired(slot, now_unix_secs));
        if self.map.len() < self.max_entries {
            return;
        }
        let target = self.max_entries - self.max_entries / 8 - 1;
        let surplus = self.map.len().saturating_sub(target);
        let victims: Vec<CacheKey> = self.map.iter().take(surplus).map(|e| e.key().clone()).collect();
        for victim in victims {
            self.map.remove(&victim);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::KeyId;
    use async_trait::async_trait;

    /// A KMS whose decrypts wait for a permit of `gate` (so a test decides
    /// when they finish, without sleeping), return the wrapped key's first
    /// byte repeated, and refuse wrapped keys starting with 0xff.
    struct GatedKms {
        calls: AtomicU64,
        gate: tokio::sync::Semaphore,
    }

    #[async_trait]
    impl Kms for GatedKms {
        async fn generate_data_key(&self, _: &EncryptionContext) -> Result<(DataKey, WrappedKey), KmsError> {
            Err(KmsError::Unavailable("not in this test".into()))
        }

        async fn decrypt(&self, wrapped: &WrappedKey, _: &EncryptionContext) -> Result<DataKey, KmsError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let _permit = self.gate.acquire().await;
            match wrapped.as_bytes()[0] {
                0xff => Err(KmsError::InvalidCiphertext),
                b => Ok(DataKey::from_bytes([b; 16])),
            }
        }
    }

    fn ctx(key_id: &str) -> EncryptionContext {
        EncryptionContext::new("live/demo", &KeyId::new(key_id).unwrap())
    }

    fn wrapped(b: u8) -> WrappedKey {
        WrappedKey::from_bytes(vec![b, 1, 2, 3])
    }

    fn kms() -> Arc<GatedKms> {
        gated_kms(tokio::sync::Semaphore::MAX_PERMITS)
    }

    fn gated_kms(permits: usize) -> Arc<GatedKms> {
        Arc::new(GatedKms {
            calls: AtomicU64::new(0),
            gate: tokio::sync::Semaphore::new(permits),
        })
    }

    #[tokio::test]
    async fn concurrent_misses_make_one_kms_call() {
        let cache = Arc::new(KeyCache::new(100, 60));
        let kms = gated_kms(0);
        let tasks: Vec<_> = (0..100)
            .map(|_| {
                let (cache, kms) = (Arc::clone(&cache), Arc::clone(&kms));
                tokio::spawn(async move { cache.get_or_unwrap(&*kms, &wrapped(7), &ctx("k"), 1000).await })
            })
            .collect();
        // Let all 100 reach the cache while the one decrypt is held back.
        while cache.stats().misses < 100 {
            tokio::task::yield_now().await;
        }
        kms.gate.add_permits(1);
        for task in tasks {
            assert_eq!(task.await.unwrap().unwrap().as_bytes(), &[7; 16]);
        }
        assert_eq!(kms.calls.load(Ordering::SeqCst), 1);
        let stats = cache.stats();
        assert_eq!(stats.kms_calls, 1);
        assert_eq!(stats.hits + stats.misses, 100);
        // Every task started before the one decrypt finished: all missed.
        assert_eq!(stats.misses, 100);
        assert_eq!(stats.entries, 1);
        cache.get_or_unwrap(&*kms, &wrapped(7), &ctx("k"), 1000).await.unwrap();
        assert_eq!(cache.stats().hits, 1);
    }

    #[tokio::test]
    async fn keys_are_per_wrapped_key_and_context() {
        let cache = KeyCache::new(100, 60);
        let kms = kms();
        let cases = [(1, "a"), (2, "a"), (1, "b"), (1, "a"), (2, "a")];
        for (b, key_id) in cases {
            let key = cache
                .get_or_unwrap(&*kms, &wrapped(b), &ctx(key_id), 1000)
                .await
                .unwrap();
            assert_eq!(key.as_bytes(), &[b; 16]);
        }
        assert_eq!(
            cache.stats(),
            CacheStats {
                hits: 2,
                misses: 3,
                kms_calls: 3,
                refused_hits: 0,
                entries: 3
            }
        );
    }

    #[tokio::test]
    async fn entries_expire() {
        let cache = KeyCache::new(100, 60);
        let kms = kms();
        for now in [1000, 1059, 1060, 1100, 1119, 1120] {
            cache.get_or_unwrap(&*kms, &wrapped(1), &ctx("a"), now).await.unwrap();
        }
        // Unwrapped at 1000, 1060 and 1120; 1059, 1100 and 1119 were hits.
        let stats = cache.stats();
        assert_eq!((stats.hits, stats.kms_calls, stats.entries), (3, 3, 1));
    }

    /// Issue 18, finding 3: twenty repeats of one bad wrapped key cost one
    /// decrypt, until the refusal expires; refusals take no key slot.
    #[tokio::test]
    async fn refusals_are_remembered_briefly() {
        let cache = KeyCache::new(100, 60);
        let kms = kms();
        for now in [1000, 1000, 1010, 1029] {
            assert!(!cache.would_call_kms(&wrapped(0xff), &ctx("a"), now) || now == 1000);
            let got = cache.get_or_unwrap(&*kms, &wrapped(0xff), &ctx("a"), now).await;
            assert!(matches!(got, Err(KmsError::InvalidCiphertext)));
        }
        let stats = cache.stats();
        assert_eq!((stats.kms_calls, stats.refused_hits, stats.entries), (1, 3, 0));
        // The same bytes under another context are another question.
        let other = cache.get_or_unwrap(&*kms, &wrapped(0xff), &ctx("b"), 1029).await;
        assert!(matches!(other, Err(KmsError::InvalidCiphertext)));
        assert_eq!(cache.stats().kms_calls, 2);
        // After REFUSED_TTL_SECS the KMS is asked again.
        assert!(cache.would_call_kms(&wrapped(0xff), &ctx("a"), 1030));
        let _ = cache.get_or_unwrap(&*kms, &wrapped(0xff), &ctx("a"), 1030).await;
        assert_eq!(cache.stats().kms_calls, 3);
    }

    /// A KMS outage is not remembered: the next request asks again.
    #[tokio::test]
    async fn outages_are_not_cached() {
        struct Down;
        #[async_trait]
        impl Kms for Down {
            async fn generate_data_key(&self, _: &EncryptionContext) -> Result<(DataKey, WrappedKey), KmsError> {
                Err(KmsError::Unavailable("down".into()))
            }
            async fn decrypt(&self, _: &WrappedKey, _: &EncryptionContext) -> Result<DataKey, KmsError> {
                Err(KmsError::Unavailable("down".into()))
            }
        }
        let cache = KeyCache::new(100, 60);
        for _ in 0..3 {
            let got = cache.get_or_unwrap(&Down, &wrapped(1), &ctx("a"), 1000).await;
            assert!(matches!(got, Err(KmsError::Unavailable(_))));
        }
        assert_eq!((cache.stats().kms_calls, cache.stats().entries), (3, 0));
    }

    /// At most MAX_CONCURRENT_DECRYPTS decrypts reach the KMS at once; one
    /// more waits for a turn, and gives up (Unavailable) after the timeout.
    #[tokio::test(start_paused = true)]
    async fn concurrent_decrypts_are_bounded() {
        let cache = Arc::new(KeyCache::new(1000, 60));
        let kms = gated_kms(0);
        let tasks: Vec<_> = (0..MAX_CONCURRENT_DECRYPTS + 1)
            .map(|i| {
                let (cache, kms) = (Arc::clone(&cache), Arc::clone(&kms));
                let key = wrapped(i as u8);
                tokio::spawn(async move { cache.get_or_unwrap(&*kms, &key, &ctx("a"), 1000).await })
            })
            .collect();
        while cache.stats().misses < MAX_CONCURRENT_DECRYPTS as u64 + 1 {
            tokio::task::yield_now().await;
        }
        tokio::time::sleep(DECRYPT_QUEUE_TIMEOUT + Duration::from_millis(1)).await;
        assert_eq!(kms.calls.load(Ordering::SeqCst), MAX_CONCURRENT_DECRYPTS as u64);
        kms.gate.add_permits(MAX_CONCURRENT_DECRYPTS);
        let mut unavailable = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(_) => {}
                Err(KmsError::Unavailable(_)) => unavailable += 1,
                Err(other) => panic!("{other}"),
            }
        }
        assert_eq!(unavailable, 1);
        assert_eq!(cache.stats().kms_calls, MAX_CONCURRENT_DECRYPTS as u64);
    }

    #[tokio::test]
    async fn bounded_in_entries() {
        let cache = KeyCache::new(16, 60);
        let kms = kms();
        for b in 0..100u8 {
            cache.get_or_unwrap(&*kms, &wrapped(b), &ctx("a"), 1000).await.unwrap();
            assert!(cache.stats().entries <= 16, "after {b}");
        }
        // Expired entries go first: after the TTL, one pass empties the cache.
        for b in 100..117u8 {
            cache.get_or_unwrap(&*kms, &wrapped(b), &ctx("a"), 2000).await.unwrap();
        }
        assert!(cache.stats().entries <= 16);
        assert_eq!(cache.stats().kms_calls, 117);
    }
}
