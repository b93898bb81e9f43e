//! Credentials: the [`Secret`] wrapper and playback tokens.
//!
//! Playback tokens are JWTs signed with HS256 (RFC 7519, RFC 7515), so a
//! broadcaster's backend can mint them with any JWT library; see [`token`].
//! One-time key tickets, handed out in playlists in place of the token, are
//! in [`ticket`].
//! This module is sans-IO: secrets come in as values (the config module reads
//! them from env vars and files) and the clock is an argument.

pub mod recording;
pub mod ticket;
pub mod token;

pub use ticket::{TicketBinding, TicketError, TicketKey, VerifiedTicket};
pub use token::{
    Claims, Expect, MAX_TOKEN_BYTES, TokenError, TokenKey, bearer_token, mint, mint_with_audience, stream_matches,
    valid_stream_pattern, verify, verify_with,
};

use zeroize::Zeroizing;

/// Secret bytes (token secret, publish key): zeroized on drop, never printed.
///
/// `Debug` prints `Secret(..)`; equality is constant-time so comparing a
/// publish key an encoder sent against the configured one leaks no prefix.
#[derive(Clone)]
pub struct Secret(Zeroizing<Vec<u8>>);

impl Secret {
    /// Wraps bytes; they are zeroized when the `Secret` is dropped.
    pub fn new(bytes: Vec<u8>) -> Self {
        Secret(Zeroizing::new(bytes))
    }

    /// The secret bytes. Named so call sites that read them stand out.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// The secret as text, when it is UTF-8 (publish keys always are).
    pub fn expose_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True for a zero-length secret.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Constant-time comparison with `other` (only the lengths may leak).
    pub fn ct_eq(&self, other: &[u8]) -> bool {
        ct_eq(&self.0, other)
    }
}

/// Compares two byte strings without an early exit on the first difference.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    // black_box keeps the optimizer from turning the fold back into a
    // short-circuiting comparison.
    std::hint::black_box(diff) == 0
}

impl From<Vec<u8>> for Secret {
    fn from(bytes: Vec<u8>) -> Self {
        Secret::new(bytes)
    }
}

impl From<String> for Secret {
    fn from(text: String) -> Self {
        Secret::new(text.into_bytes())
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        ct_eq(&self.0, &other.0)
    }
}

impl Eq for Secret {}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// A secret written inline in a config file (a TOML string).
impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_bytes() {
        let s = Secret::from("sk_supersecretvalue".to_string());
        assert_eq!(format!("{s:?}"), "Secret(..)");
        assert_eq!(format!("{:?}", Some(&s)), "Some(Secret(..))");
    }

    #[test]
    fn equality_table() {
        let cases: &[(&[u8], &[u8], bool)] = &[
            (b"abc", b"abc", true),
            (b"abc", b"abd", false),
            (b"abc", b"ab", false),
            (b"", b"", true),
            (b"\x00", b"", false),
            (b"\xff\x00", b"\xff\x00", true),
        ];
        for &(a, b, want) in cases {
            assert_eq!(Secret::new(a.to_vec()).ct_eq(b), want, "{a:?} vs {b:?}");
            assert_eq!(Secret::new(a.to_vec()) == Secret::new(b.to_vec()), want);
        }
    }

    #[test]
    fn accessors() {
        let s = Secret::from("abc".to_string());
        assert_eq!(s.expose(), b"abc");
        assert_eq!(s.expose_str(), Some("abc"));
        assert_eq!(s.len(), 3);
        assert!(!s.is_empty());
        assert_eq!(Secret::new(vec![0xff]).expose_str(), None);
        assert!(Secret::new(Vec::new()).is_empty());
    }
}
