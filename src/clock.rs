//! The system clock, and everything of the cores' [`sealcast_core::clock`]
//! under the same path.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

pub use sealcast_core::clock::{Clock, ManualClock, UtcDateTime};

/// The operating system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_unix_ms(&self) -> u64 {
        // A clock before 1970 reads as the epoch.
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
    }
}

/// The system clock, shared.
pub fn system() -> Arc<dyn Clock> {
    Arc::new(SystemClock)
}

/// Seconds since the Unix epoch, now.
pub fn now_unix_secs() -> u64 {
    SystemClock.now_unix_secs()
}

/// Milliseconds since the Unix epoch, now.
pub fn now_unix_ms() -> u64 {
    SystemClock.now_unix_ms()
}
