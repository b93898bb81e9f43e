//! The publish lease's decisions, sans-IO: the value stored in Redis, when
//! the holder renews, and until when it may write. Time comes in as
//! arguments (`Instant`s, milliseconds); nothing here touches a socket or a
//! clock, so the rules are tested with plain numbers.
//!
//! The lease of stream `app/name` is the Redis string key
//! `{prefix}{app}/{name}` holding `"{node_id} {publish_id} {last_media_ms}"`,
//! with a TTL of `lease_ttl_secs` (`PX`). `last_media_ms` is Redis's own
//! clock (`TIME`) at the holder's last media message, so nodes with skewed
//! clocks still agree on how long a holder has been quiet.

use std::time::{Duration, Instant};

/// The lease timings, from `[cluster] lease_ttl_secs` and
/// `[rtmp] takeover_idle_secs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// The lease's time to live in Redis.
    pub ttl: Duration,
    /// A holder quiet (no media) this long may be taken over; `None`: never.
    pub takeover_idle: Option<Duration>,
}

impl Policy {
    /// How often the holder renews: a third of the TTL, so two renewals in a
    /// row may fail before the write deadline; and at most half the takeover
    /// threshold, so the last-media time in Redis is never so stale that a
    /// still-sending holder looks quiet.
    pub fn renew_interval(&self) -> Duration {
        let third = self.ttl / 3;
        match self.takeover_idle {
            Some(idle) => third.min(idle / 2).max(Duration::from_millis(100)),
            None => third,
        }
    }

    /// Safety margin between the holder's write deadline and the earliest
    /// moment its lease can expire in Redis: `max(2 s, ttl / 5)`. It covers
    /// one segment write started just before the deadline.
    pub fn margin(&self) -> Duration {
        (self.ttl / 5).max(Duration::from_secs(2))
    }

    /// Until when a holder may write, given when it sent its last renewal
    /// (or acquisition) that Redis confirmed. Redis set the TTL no earlier
    /// than the send, so the lease lives at least until `sent_at + ttl`; the
    /// holder stops `margin` before that.
    pub fn write_deadline(&self, confirmed_sent_at: Instant) -> Instant {
        confirmed_sent_at + self.ttl.saturating_sub(self.margin())
    }

    /// The takeover threshold in milliseconds for the acquire script
    /// (`u64::MAX`: a held lease is never taken).
    pub fn takeover_idle_ms(&self) -> u64 {
        self.takeover_idle
            .map_or(u64::MAX, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
}

/// Who holds a lease: the node and the publish on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub node_id: String,
    pub publish_id: String,
}

impl Holder {
    /// The value's prefix that identifies this holder (`"{node} {publish}"`),
    /// compared by the renew and release scripts.
    pub fn tag(&self) -> String {
        format!("{} {}", self.node_id, self.publish_id)
    }
}

/// A lease value read back from Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Value {
    pub holder: Holder,
    /// Redis time (ms since the epoch) of the holder's last media message.
    pub last_media_ms: u64,
}

/// Parses `"{node_id} {publish_id} {last_media_ms}"`; `None` for anything
/// else (the acquire script then treats the key as held, never as free).
pub fn parse_value(text: &str) -> Option<Value> {
    let mut parts = text.split(' ');
    let (node_id, publish_id, last) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || node_id.is_empty() || publish_id.is_empty() {
        return None;
    }
    Some(Value {
        holder: Holder {
            node_id: node_id.to_owned(),
            publish_id: publish_id.to_owned(),
        },
        last_media_ms: last.parse().ok()?,
    })
}

/// Whether `node_id` can be part of a lease value: 1 to 64 characters from
/// `A-Z a-z 0-9 . _ -` (no spaces, which separate the fields).
pub fn valid_node_id(node_id: &str) -> bool {
    (1..=64).contains(&node_id.len())
        && node_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(ttl: u64, idle: Option<u64>) -> Policy {
        Policy {
            ttl: Duration::from_secs(ttl),
            takeover_idle: idle.map(Duration::from_secs),
        }
    }

    #[test]
    fn timings() {
        // (ttl, takeover idle, renew every ms, margin ms)
        let table = [
            (10, Some(5), 2500, 2000),
            (10, None, 3333, 2000),
            (30, Some(5), 2500, 6000),
            (30, Some(60), 10_000, 6000),
            (5, Some(5), 1666, 2000),
        ];
        for (ttl, idle, renew_ms, margin_ms) in table {
            let p = policy(ttl, idle);
            assert_eq!(p.renew_interval().as_millis(), renew_ms, "{ttl} {idle:?}");
            assert_eq!(p.margin().as_millis(), margin_ms, "{ttl} {idle:?}");
            // The holder always stops before the lease can expire, and
            // tries at least one more renewal before it has to stop.
            let t0 = Instant::now();
            let deadline = p.write_deadline(t0);
            assert!(deadline < t0 + p.ttl);
            assert!(deadline > t0 + p.renew_interval(), "{ttl} {idle:?}");
        }
        assert_eq!(policy(10, None).takeover_idle_ms(), u64::MAX);
        assert_eq!(policy(10, Some(5)).takeover_idle_ms(), 5000);
    }

    #[test]
    fn values() {
        let holder = Holder {
            node_id: "node-a".into(),
            publish_id: "0a1b2c3d".into(),
        };
        assert_eq!(holder.tag(), "node-a 0a1b2c3d");
        assert_eq!(
            parse_value("node-a 0a1b2c3d 1700000000123"),
            Some(Value {
                holder,
                last_media_ms: 1_700_000_000_123
            })
        );
        for bad in ["", "a b", "a b c", "a b 1 2", " b 1", "a  1", "a b -1"] {
            assert_eq!(parse_value(bad), None, "{bad:?}");
        }
        for (id, ok) in [
            ("node-a", true),
            ("n.1_x", true),
            ("", false),
            ("a b", false),
            ("é", false),
        ] {
            assert_eq!(valid_node_id(id), ok, "{id:?}");
        }
        assert!(!valid_node_id(&"x".repeat(65)));
    }
}
