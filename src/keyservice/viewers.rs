//! Who is watching: distinct authorized viewers per stream seen within a
//! sliding window (30 s), for `sealcast_viewers{stream}`.
//!
//! A viewer is identified as the key service knows it: with one-time tickets
//! on, by the ticket viewer tag (the token's `jti`, else the whole token),
//! which a ticket carries too, so a playlist request and the key requests
//! its tickets pay for count once; with tickets off, by the token's `sub`
//! when it has one (several tokens of one subscriber are one viewer), else
//! as with tickets. Only tags are kept (8 bytes of SHA-256), never tokens.
//!
//! Time is an argument: the caller passes its clock's reading, so tests move
//! a `ManualClock` instead of sleeping.

use std::collections::HashMap;
use std::sync::Mutex;

use ring::digest;

use crate::auth::Claims;
use crate::auth::ticket::VIEWER_LEN;

/// How long a viewer counts after its last authorized request, in seconds.
pub const VIEWER_WINDOW_SECS: u64 = 30;

/// Most viewers tracked per stream; past it, expired ones are dropped first
/// and then new viewers are not added (the gauge then reads this cap).
const MAX_VIEWERS_PER_STREAM: usize = 1_000_000;

/// A viewer's identity (see the module docs).
pub type ViewerId = [u8; VIEWER_LEN];

/// The identity of the holder of a verified token whose
/// [`crate::auth::ticket::viewer_tag`] is `tag`.
pub fn token_viewer(claims: &Claims, tag: ViewerId, tickets_on: bool) -> ViewerId {
    match (&claims.sub, tickets_on) {
        (Some(sub), false) => {
            let mut ctx = digest::Context::new(&digest::SHA256);
            ctx.update(b"sub:");
            ctx.update(sub.as_bytes());
            let mut id = [0u8; VIEWER_LEN];
            id.copy_from_slice(&ctx.finish().as_ref()[..VIEWER_LEN]);
            id
        }
        _ => tag,
    }
}

/// Last-seen times per stream and viewer.
#[derive(Default)]
pub struct Viewers {
    seen: Mutex<HashMap<String, HashMap<ViewerId, u64>>>,
}

impl Viewers {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, HashMap<ViewerId, u64>>> {
        // Plain data: a panic elsewhere leaves nothing half-done worth refusing.
        self.seen.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records an authorized request of `viewer` for `stream` at `now_unix_secs`.
    pub fn saw(&self, stream: &str, viewer: ViewerId, now_unix_secs: u64) {
        let mut seen = self.lock();
        let viewers = match seen.get_mut(stream) {
            Some(viewers) => viewers,
            None => seen.entry(stream.to_owned()).or_default(),
        };
        if viewers.len() >= MAX_VIEWERS_PER_STREAM && !viewers.contains_key(&viewer) {
            viewers.retain(|_, last| !expired(*last, now_unix_secs));
            if viewers.len() >= MAX_VIEWERS_PER_STREAM {
                return;
            }
        }
        viewers.insert(viewer, now_unix_secs);
    }

    /// Viewers per stream seen within the window before `now_unix_secs`,
    /// sorted by stream; forgets the others. A stream once seen stays listed
    /// (with 0), so its gauge drops to 0 rather than vanishing.
    pub fn counts(&self, now_unix_secs: u64) -> Vec<(String, usize)> {
        let mut seen = self.lock();
        let mut counts: Vec<(String, usize)> = seen
            .iter_mut()
            .map(|(stream, viewers)| {
                viewers.retain(|_, last| !expired(*last, now_unix_secs));
                (stream.clone(), viewers.len())
            })
            .collect();
        counts.sort();
        counts
    }
}

fn expired(last_unix_secs: u64, now_unix_secs: u64) -> bool {
    now_unix_secs.saturating_sub(last_unix_secs) >= VIEWER_WINDOW_SECS
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::ticket;

    fn viewer_of(claims: &Claims, token: &str, tickets_on: bool) -> ViewerId {
        token_viewer(claims, ticket::viewer_tag(claims, token), tickets_on)
    }

    fn claims(sub: Option<&str>, jti: Option<&str>) -> Claims {
        Claims {
            exp: 2_000_000_000,
            stream: "live/demo".to_owned(),
            sub: sub.map(str::to_owned),
            jti: jti.map(str::to_owned),
            recording: None,
        }
    }

    #[test]
    fn distinct_viewers_within_the_window() {
        let viewers = Viewers::default();
        let a = viewer_of(&claims(Some("alice"), None), "t1", false);
        let a_again = viewer_of(&claims(Some("alice"), None), "t2", false);
        let b = viewer_of(&claims(Some("bob"), None), "t3", false);
        assert_eq!(a, a_again, "one subscriber with two tokens is one viewer");
        viewers.saw("live/demo", a, 1000);
        viewers.saw("live/demo", a_again, 1010);
        viewers.saw("live/demo", b, 1005);
        viewers.saw("live/other", b, 1005);
        assert_eq!(
            viewers.counts(1010),
            [("live/demo".into(), 2), ("live/other".into(), 1)]
        );
        // b was last seen at 1005: gone at 1035; a (1010) stays until 1040.
        assert_eq!(
            viewers.counts(1034),
            [("live/demo".into(), 2), ("live/other".into(), 1)]
        );
        assert_eq!(
            viewers.counts(1035),
            [("live/demo".into(), 1), ("live/other".into(), 0)]
        );
        assert_eq!(
            viewers.counts(1040),
            [("live/demo".into(), 0), ("live/other".into(), 0)]
        );
    }

    #[test]
    fn identities() {
        let with_jti = claims(Some("alice"), Some("j1"));
        // Tickets on: the ticket's tag, whatever the sub says.
        assert_eq!(viewer_of(&with_jti, "t", true), ticket::viewer_tag(&with_jti, "t"));
        // Tickets off: the sub.
        assert_ne!(viewer_of(&with_jti, "t", false), ticket::viewer_tag(&with_jti, "t"));
        // No sub: the tag either way.
        let anonymous = claims(None, None);
        assert_eq!(viewer_of(&anonymous, "t", false), ticket::viewer_tag(&anonymous, "t"));
        assert_ne!(viewer_of(&anonymous, "t", false), viewer_of(&anonymous, "u", false));
    }
}
