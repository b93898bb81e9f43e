//! Failed admin authentication, slowed down per address.
//!
//! Every wrong admin credential (a wrong `Authorization: Bearer` on `/` or
//! `/api/...`, a wrong `?admin=` or sign-in form, a forged session cookie)
//! waits out [`FAILED_AUTH_DELAY`] before it is answered, and the failures of
//! one address wait one after another: however many connections it opens, an
//! address tests at most one guess per delay. A right credential never waits,
//! and neither does a request that presents none.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::http::Extensions;

/// What one failed admin authentication costs its address.
pub const FAILED_AUTH_DELAY: Duration = Duration::from_millis(500);

/// Addresses kept while none of their failures is waiting are forgotten once
/// the map holds this many.
const MAX_IDLE_ADDRESSES: usize = 1024;

/// See the module docs. One per server, shared by the operator page and the
/// admin API.
#[derive(Debug, Default)]
pub struct FailedAuthGate {
    /// One queue per address (`None`: the peer address is unknown, as when
    /// the router is served without connect info).
    queues: Mutex<HashMap<Option<IpAddr>, Arc<tokio::sync::Mutex<()>>>>,
    failures: AtomicU64,
}

impl FailedAuthGate {
    /// Waits out one failed authentication from `peer`: [`FAILED_AUTH_DELAY`],
    /// after every earlier failure of the same address has waited out its own.
    pub async fn penalize(&self, peer: Option<IpAddr>) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        let queue = {
            let mut queues = self.lock();
            if queues.len() >= MAX_IDLE_ADDRESSES {
                queues.retain(|_, queue| Arc::strong_count(queue) > 1);
            }
            Arc::clone(queues.entry(peer).or_default())
        };
        {
            let _turn = queue.lock().await;
            tokio::time::sleep(FAILED_AUTH_DELAY).await;
        }
        drop(queue);
        let mut queues = self.lock();
        if queues.get(&peer).is_some_and(|queue| Arc::strong_count(queue) == 1) {
            queues.remove(&peer);
        }
    }

    /// Failed admin authentications so far (all addresses).
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Option<IpAddr>, Arc<tokio::sync::Mutex<()>>>> {
        // Nothing panics while holding it; if something did, the map is still usable.
        self.queues.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The peer's IP address, when the router is served with connect info.
pub fn peer_ip(extensions: &Extensions) -> Option<IpAddr> {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    use tokio::time::Instant;

    /// Failures of one address wait one after another; another address does
    /// not queue behind them. Virtual time: no wall-clock thresholds.
    #[tokio::test(start_paused = true)]
    async fn failures_of_one_address_are_serialized() {
        let gate = Arc::new(FailedAuthGate::default());
        let guesser: IpAddr = [192, 0, 2, 7].into();
        let other: IpAddr = [192, 0, 2, 8].into();
        let start = Instant::now();
        let mut guesses = Vec::new();
        for _ in 0..4 {
            let gate = Arc::clone(&gate);
            guesses.push(tokio::spawn(async move {
                gate.penalize(Some(guesser)).await;
                Instant::now()
            }));
        }
        let gate_other = Arc::clone(&gate);
        let other_done = tokio::spawn(async move {
            gate_other.penalize(Some(other)).await;
            Instant::now()
        });
        let mut done: Vec<Duration> = Vec::new();
        for guess in guesses {
            done.push(guess.await.unwrap() - start);
        }
        done.sort();
        assert_eq!(done, (1..=4).map(|n| FAILED_AUTH_DELAY * n).collect::<Vec<_>>());
        assert_eq!(other_done.await.unwrap() - start, FAILED_AUTH_DELAY);
        assert_eq!(gate.failures(), 5);
        assert!(gate.lock().is_empty(), "no idle address is kept");
    }
}
