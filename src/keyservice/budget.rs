//! Per-viewer budgets of the key service: how many one-time tickets one
//! viewer may redeem, and how many KMS decrypts one token may cause, per
//! minute, on one key server.
//!
//! Without them one viewer could fill the shared replay store (and every
//! viewer's ticket would get 503 until entries expired), or buy unlimited
//! KMS `Decrypt` calls with random wrapped keys (sharing the KMS quota that
//! ingest needs for `GenerateDataKey`). A viewer is a token's `jti`, or the
//! whole token when it has none (see [`crate::auth::ticket::viewer_tag`]):
//! give each viewer its own token, or all viewers of one token share its
//! budget.
//!
//! A fixed window per viewer, on the key service's clock (so tests move
//! time instead of sleeping).

use std::collections::HashMap;
use std::sync::Mutex;

use crate::auth::ticket::VIEWER_LEN;

/// Ticket redemptions one viewer may make per window. A player redeems
/// about one ticket per segment; this leaves room for many tabs and
/// restarts, and keeps one viewer to a small part of the default replay
/// store (1,000,000 entries, each kept for the ticket TTL).
pub const TICKET_REDEMPTIONS_PER_WINDOW: u32 = 600;
/// KMS decrypts (key cache misses) one token may cause per window. Keys are
/// cached, so viewers sharing a token cause one decrypt per key between
/// them; random wrapped keys are what runs into this.
pub const KMS_MISSES_PER_WINDOW: u32 = 600;
/// The window of both budgets.
pub const WINDOW_SECS: u64 = 60;
/// Viewers tracked at once; past this, windows that are over are dropped,
/// and if that frees nothing, everything (bounded memory; a flood of
/// distinct valid tokens is needed to get there).
const MAX_VIEWERS: usize = 100_000;

/// See the module docs.
#[derive(Debug)]
pub struct ViewerBudget {
    per_window: u32,
    viewers: Mutex<HashMap<[u8; VIEWER_LEN], Window>>,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    start_unix_secs: u64,
    used: u32,
}

impl ViewerBudget {
    /// A budget of `per_window` units per viewer per [`WINDOW_SECS`].
    pub fn new(per_window: u32) -> Self {
        Self {
            per_window,
            viewers: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one unit of `viewer`'s budget at `now_unix_secs`; `false` (and
    /// nothing taken) when this window's budget is spent.
    pub fn take(&self, viewer: &[u8; VIEWER_LEN], now_unix_secs: u64) -> bool {
        let over = |w: &Window| now_unix_secs >= w.start_unix_secs.saturating_add(WINDOW_SECS);
        // Nothing panics while the lock is held; a poisoned map is still whole.
        let mut viewers = self.viewers.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if viewers.len() >= MAX_VIEWERS && !viewers.contains_key(viewer) {
            viewers.retain(|_, w| !over(w));
            if viewers.len() >= MAX_VIEWERS {
                viewers.clear();
            }
        }
        let window = viewers.entry(*viewer).or_insert(Window {
            start_unix_secs: now_unix_secs,
            used: 0,
        });
        if over(window) {
            *window = Window {
                start_unix_secs: now_unix_secs,
                used: 0,
            };
        }
        if window.used >= self.per_window {
            return false;
        }
        window.used += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_viewer_spends_its_budget_and_gets_it_back_next_window() {
        let budget = ViewerBudget::new(3);
        let (a, b) = ([1; VIEWER_LEN], [2; VIEWER_LEN]);
        // (viewer, now, allowed)
        let steps = [
            (a, 100, true),
            (a, 100, true),
            (a, 130, true),
            (a, 159, false),
            (b, 159, true),
            (a, 160, true),
            (a, 160, true),
            (a, 161, true),
            (a, 219, false),
            (b, 200, true),
        ];
        for (i, (viewer, now, want)) in steps.into_iter().enumerate() {
            assert_eq!(budget.take(&viewer, now), want, "step {i}");
        }
    }

    #[test]
    fn memory_stays_bounded() {
        let budget = ViewerBudget::new(1);
        for i in 0..=MAX_VIEWERS as u64 {
            budget.take(&i.to_be_bytes(), 100);
        }
        assert!(budget.viewers.lock().unwrap().len() <= MAX_VIEWERS);
    }
}
