//! Replay stores: remember which one-time tickets were used, until they
//! expire anyway. In memory for one key server; in Redis (see
//! [`super::redis`]) when several key servers must refuse each other's used
//! tickets.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;

use crate::auth::ticket::NONCE_LEN;

/// Why a replay store could not answer. The key endpoint then answers 503:
/// it fails closed, never handing out a key it cannot account for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    /// The in-memory store holds `max_entries` unexpired tickets.
    #[error("replay store full ({0} unexpired tickets)")]
    Full(usize),
    /// The shared store is unreachable, timed out or answered an error; the
    /// text is for logs.
    #[error("replay store unavailable: {0}")]
    Unavailable(String),
}

/// Records ticket nonces, each until its ticket's expiry.
#[async_trait]
pub trait ReplayStore: Send + Sync + 'static {
    /// Records `nonce` as used until `expires_unix_secs`, atomically with the
    /// check: `Ok(true)` the first time a nonce is seen, `Ok(false)` after.
    async fn first_use(
        &self,
        nonce: &[u8; NONCE_LEN],
        expires_unix_secs: u64,
        now_unix_secs: u64,
    ) -> Result<bool, ReplayError>;

    /// Whether the store can answer now (for `/readyz`): a shared store
    /// opens and authenticates a connection. The in-process store always can.
    async fn check(&self) -> Result<(), ReplayError> {
        Ok(())
    }
}

/// The in-process store: a map of nonces and a min-heap of expiries, under
/// one short lock. Expired nonces are dropped as time passes (on each call).
pub struct MemoryReplayStore {
    inner: Mutex<Inner>,
    max_entries: usize,
}

#[derive(Default)]
struct Inner {
    expiry_by_nonce: HashMap<[u8; NONCE_LEN], u64>,
    by_expiry: BinaryHeap<Reverse<(u64, [u8; NONCE_LEN])>>,
}

impl MemoryReplayStore {
    /// A store that refuses (with [`ReplayError::Full`]) past `max_entries`
    /// unexpired tickets, rather than forget one and let it be replayed.
    pub fn new(max_entries: usize) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            max_entries,
        }
    }

    /// Unexpired tickets recorded.
    pub fn len(&self) -> usize {
        self.lock().expiry_by_nonce.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The critical sections leave the maps consistent at every step.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[async_trait]
impl ReplayStore for MemoryReplayStore {
    async fn first_use(
        &self,
        nonce: &[u8; NONCE_LEN],
        expires_unix_secs: u64,
        now_unix_secs: u64,
    ) -> Result<bool, ReplayError> {
        let mut inner = self.lock();
        while let Some(Reverse((exp, old))) = inner.by_expiry.peek().copied()
            && exp <= now_unix_secs
        {
            inner.by_expiry.pop();
            inner.expiry_by_nonce.remove(&old);
        }
        if inner.expiry_by_nonce.contains_key(nonce) {
            return Ok(false);
        }
        if inner.expiry_by_nonce.len() >= self.max_entries {
            return Err(ReplayError::Full(self.max_entries));
        }
        inner.expiry_by_nonce.insert(*nonce, expires_unix_secs);
        inner.by_expiry.push(Reverse((expires_unix_secs, *nonce)));
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nonce(b: u8) -> [u8; NONCE_LEN] {
        [b; NONCE_LEN]
    }

    #[tokio::test]
    async fn a_nonce_is_accepted_once_until_it_expires() {
        let store = MemoryReplayStore::new(10);
        // (nonce, expires, now, first use?)
        let steps = [
            (1, 160, 100, true),
            (1, 160, 100, false),
            (2, 170, 101, true),
            (1, 160, 159, false),
            (2, 170, 159, false),
            // At 160 ticket 1 has expired (a verifier refuses it anyway), so
            // the store no longer needs it.
            (3, 220, 160, true),
            (2, 170, 160, false),
        ];
        for (i, (n, exp, now, want)) in steps.into_iter().enumerate() {
            assert_eq!(store.first_use(&nonce(n), exp, now).await, Ok(want), "step {i}");
        }
        assert_eq!(store.len(), 2);
        store.first_use(&nonce(9), 1000, 500).await.unwrap();
        assert_eq!(store.len(), 1);
    }

    #[tokio::test]
    async fn full_store_fails_closed() {
        let store = MemoryReplayStore::new(3);
        for n in 0..3 {
            assert_eq!(store.first_use(&nonce(n), 200, 100).await, Ok(true));
        }
        assert_eq!(store.first_use(&nonce(7), 200, 100).await, Err(ReplayError::Full(3)));
        // A seen nonce is still reported as seen, full or not.
        assert_eq!(store.first_use(&nonce(0), 200, 100).await, Ok(false));
        // Once they expire there is room again.
        assert_eq!(store.first_use(&nonce(7), 300, 200).await, Ok(true));
        assert_eq!(store.len(), 1);
    }
}
