//! A bounded, expiring, in-memory cache of unwrapped data keys, so N viewers
//! of one key cost one KMS decrypt per key server rather than N.
//!
//! Entries are keyed by the wrapped key and its encryption context (both
//! authenticated by the KMS, so a hit is exactly what the KMS would return).
//! Concurrent misses for one key share one decrypt (single flight): the first
//! request runs it, the others wait on the same `OnceCell`. A failed decrypt
//! is not cached. Keys are [`DataKey`]s, zeroized when evicted, and never
//! leave memory.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use dashmap::DashMap;
use tokio::sync::OnceCell;

use crate::crypto::{DataKey, EncryptionContext, WrappedKey};
use crate::kms::{Kms, KmsError};

#[derive(Clone, PartialEq, Eq, Hash)]
struct CacheKey {
    wrapped: WrappedKey,
    context: EncryptionContext,
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
    /// Entries held now.
    pub entries: u64,
}

/// See the module docs.
pub struct KeyCache {
    map: DashMap<CacheKey, Arc<Slot>>,
    max_entries: usize,
    ttl_secs: u64,
    hits: AtomicU64,
    misses: AtomicU64,
    kms_calls: AtomicU64,
}

impl KeyCache {
    /// A cache of at most `max_entries` keys (at least 1), each kept
    /// `ttl_secs` after it was unwrapped.
    pub fn new(max_entries: usize, ttl_secs: u64) -> Self {
        Self {
            map: DashMap::new(),
            max_entries: max_entries.max(1),
            ttl_secs,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            kms_calls: AtomicU64::new(0),
        }
    }

    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            kms_calls: self.kms_calls.load(Ordering::Relaxed),
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
        let cache_key = CacheKey {
            wrapped: wrapped.clone(),
            context: context.clone(),
        };
        let slot = self.slot(cache_key.clone(), now_unix_secs);
        if let Some(key) = slot.key.get() {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(key.clone());
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let result = slot
            .key
            .get_or_try_init(|| async {
                self.kms_calls.fetch_add(1, Ordering::Relaxed);
                kms.decrypt(wrapped, context).await
            })
            .await;
        match result {
            Ok(key) => Ok(key.clone()),
            Err(error) => {
                // Refused or failed keys take no room; a later request retries.
                self.map.remove_if(&cache_key, |_, current| Arc::ptr_eq(current, &slot));
                Err(error)
            }
        }
    }

    /// The slot for `cache_key`, a fresh one if absent or expired. The map's
    /// guard is dropped before returning, so no guard is held across an await.
    fn slot(&self, cache_key: CacheKey, now_unix_secs: u64) -> Arc<Slot> {
        if let Some(slot) = self.map.get(&cache_key)
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
        let mut entry = self.map.entry(cache_key).or_insert_with(fresh);
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

    #[tokio::test]
    async fn failures_are_not_cached() {
        let cache = KeyCache::new(100, 60);
        let kms = kms();
        for _ in 0..3 {
            let got = cache.get_or_unwrap(&*kms, &wrapped(0xff), &ctx("a"), 1000).await;
            assert!(matches!(got, Err(KmsError::InvalidCiphertext)));
        }
        let stats = cache.stats();
        assert_eq!((stats.kms_calls, stats.entries, stats.hits), (3, 0, 0));
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
