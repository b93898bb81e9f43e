//! Tokens scoped to one recording: a playback token whose `recording`
//! claim names a recording id unlocks that recording's playlist and the
//! keys of its segments, and nothing else of its `stream` (not the live
//! playlist, not another recording).
//!
//! Key endpoints stay stateless: a recorded publish's data keys have ids
//! `{recording_id}_{publish_id}-{n}` (publish ids never contain `_`), so a
//! key server checks the claim against the key id alone.

use super::{Claims, Secret};

/// Whether a token with `recording` claim `claim` may have key `key_id`.
pub fn allows_key(claim: Option<&str>, key_id: &str) -> bool {
    match claim {
        None => true,
        Some(id) => !id.is_empty() && key_id.strip_prefix(id).is_some_and(|rest| rest.starts_with('_')),
    }
}

/// Whether a token with `recording` claim `claim` may have the playlist of
/// recording `recording_id` (`None`: the live playlist).
pub fn allows_playlist(claim: Option<&str>, recording_id: Option<&str>) -> bool {
    match (claim, recording_id) {
        (None, _) => true,
        (Some(claim), Some(id)) => claim == id,
        (Some(_), None) => false,
    }
}

/// Mints a token for `claims` limited to recording `recording_id`, with
/// `aud` when `audience` is set.
pub fn mint_for_recording(secret: &Secret, claims: &Claims, recording_id: &str, audience: Option<&str>) -> String {
    let scoped = Claims {
        recording: Some(recording_id.to_owned()),
        ..claims.clone()
    };
    super::mint_with_audience(secret, &scoped, audience)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recording_token_opens_its_recording_only() {
        let secret = Secret::new(b"0123456789abcdef0123456789abcdef".to_vec());
        let claims = Claims {
            exp: 4_000_000_000,
            stream: "live/cam".into(),
            sub: None,
            jti: None,
            recording: None,
        };
        let scoped = mint_for_recording(&secret, &claims, "aaaa0001", None);
        let verified = super::super::verify(&secret, &scoped, "live/cam", 1).unwrap();
        assert_eq!(verified.recording.as_deref(), Some("aaaa0001"));
        assert_eq!(
            Claims {
                recording: None,
                ..verified.clone()
            },
            claims
        );
        let plain = super::super::mint(&secret, &claims);
        assert_eq!(
            super::super::verify(&secret, &plain, "live/cam", 1).unwrap().recording,
            None
        );
        // (claim, key id, allowed)
        for (claim, key_id, allowed) in [
            (None, "aaaa0001-3", true),
            (Some("aaaa0001"), "aaaa0001_bbbb0002-0", true),
            (Some("aaaa0001"), "aaaa0001_aaaa0001-7", true),
            (Some("aaaa0001"), "aaaa0001-3", false),
            (Some("aaaa0001"), "cccc0003_cccc0003-0", false),
            (Some("aaaa"), "aaaa0001_aaaa0001-0", false),
            (Some(""), "_x-0", false),
        ] {
            assert_eq!(allows_key(claim, key_id), allowed, "{claim:?} {key_id}");
        }
        assert!(allows_playlist(verified.recording.as_deref(), Some("aaaa0001")));
        assert!(!allows_playlist(verified.recording.as_deref(), Some("cccc0003")));
        assert!(!allows_playlist(verified.recording.as_deref(), None));
        assert!(allows_playlist(None, None));
    }
}
