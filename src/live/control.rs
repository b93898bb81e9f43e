//! What the world outside a publish task may ask of it: stop (taken over by
//! a new publisher, or its cluster lease lost), and what it tells back: when
//! it last took media, until when it may write, and that it is done.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::watch;

/// Why a publish is asked to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// A new publish of the same stream takes over from this quiet one: the
    /// accepted media is flushed and stored, then the publish ends.
    TakenOver,
    /// The cluster lease is gone (taken by another node) or could not be
    /// renewed before the write deadline: nothing more is written.
    LeaseLost,
}

/// Shared between a publish task, its connection-independent controllers
/// (a takeover, the lease keeper) and the registry.
pub struct PublishControl {
    base: Instant,
    /// Milliseconds after `base` of the last media message.
    last_media_ms: AtomicU64,
    /// Milliseconds after `base` past which nothing may be written
    /// (`u64::MAX`: no lease, no deadline).
    write_deadline_ms: AtomicU64,
    stop: watch::Sender<Option<Stop>>,
    done: watch::Sender<bool>,
}

impl PublishControl {
    pub fn new(now: Instant) -> Self {
        Self {
            base: now,
            last_media_ms: AtomicU64::new(0),
            write_deadline_ms: AtomicU64::new(u64::MAX),
            stop: watch::channel(None).0,
            done: watch::channel(false).0,
        }
    }

    fn ms(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.base).as_millis()).unwrap_or(u64::MAX)
    }

    /// Called for each media message.
    pub fn media_at(&self, now: Instant) {
        self.last_media_ms.store(self.ms(now), Ordering::Relaxed);
    }

    /// How long since the last media message (or the publish's start).
    pub fn quiet_for(&self, now: Instant) -> Duration {
        Duration::from_millis(self.ms(now).saturating_sub(self.last_media_ms.load(Ordering::Relaxed)))
    }

    pub fn set_write_deadline(&self, deadline: Instant) {
        self.write_deadline_ms.store(self.ms(deadline), Ordering::Release);
    }

    /// Whether the publish may still write a segment or its playlist.
    pub fn may_write(&self, now: Instant) -> bool {
        self.ms(now) < self.write_deadline_ms.load(Ordering::Acquire) && *self.stop.borrow() != Some(Stop::LeaseLost)
    }

    /// Asks the publish to stop; the first reason given wins.
    pub fn stop(&self, why: Stop) {
        self.stop.send_if_modified(|current| {
            if current.is_none() {
                *current = Some(why);
                true
            } else {
                false
            }
        });
    }

    pub fn stop_requested(&self) -> watch::Receiver<Option<Stop>> {
        self.stop.subscribe()
    }

    /// The publish task has ended (its last write is done).
    pub fn finish(&self) {
        self.done.send_replace(true);
    }

    /// Resolves once the publish task has ended.
    pub async fn finished(&self) {
        let mut done = self.done.subscribe();
        let _ = done.wait_for(|done| *done).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn quiet_deadline_and_stop() {
        let t0 = Instant::now();
        let control = PublishControl::new(t0);
        assert_eq!(control.quiet_for(t0 + Duration::from_secs(3)), Duration::from_secs(3));
        control.media_at(t0 + Duration::from_secs(2));
        assert_eq!(control.quiet_for(t0 + Duration::from_secs(3)), Duration::from_secs(1));
        assert!(control.may_write(t0 + Duration::from_secs(3600)));
        control.set_write_deadline(t0 + Duration::from_secs(8));
        assert!(control.may_write(t0 + Duration::from_millis(7999)));
        assert!(!control.may_write(t0 + Duration::from_secs(8)));
        let stop = control.stop_requested();
        control.stop(Stop::TakenOver);
        control.stop(Stop::LeaseLost);
        assert_eq!(*stop.borrow(), Some(Stop::TakenOver));
        control.finish();
        control.finished().await;
    }
}
