//! One-time key tickets: short-lived, single-use credentials that a playlist
//! hands out in its key URIs in place of the viewer's playback token, so a key
//! URL copied out of a player is worthless once used or after a minute.
//!
//! A ticket is 45 bytes, 60 characters of unpadded base64url:
//! ```text
//! version (1, = 1) | exp_unix_secs (8, u64 BE) | nonce (12) | viewer (8) | tag (16)
//! ```
//! `tag` is HMAC-SHA256 (truncated to 128 bits, as RFC 2104 section 5 allows)
//! under a key derived from the playback token secret with HKDF-SHA256 (RFC
//! 5869; domain separated, so no ticket is ever a valid JWT signature or the
//! reverse) over a domain string, the first 29 bytes, and the request the
//! ticket is for: the stream, the key id and the `edk` text of the key URI,
//! each length-prefixed. A ticket therefore unlocks exactly one key URI.
//! `viewer` names the token it was issued for (its `jti`, or a hash of the
//! whole token) for logs and audits; `nonce` is what a replay store records.
//!
//! Sans-IO: the clock and the random nonce are arguments.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::{digest, hkdf, hmac};

use super::{Claims, Secret, ct_eq};

/// Length of the random nonce that makes each ticket unique.
pub const NONCE_LEN: usize = 12;
/// Length of the viewer tag.
pub const VIEWER_LEN: usize = 8;
/// Length of a ticket's text form (unpadded base64url of 45 bytes).
pub const TICKET_TEXT_LEN: usize = 60;

const VERSION: u8 = 1;
const TAG_LEN: usize = 16;
const BODY_LEN: usize = 1 + 8 + NONCE_LEN + VIEWER_LEN;
const TICKET_LEN: usize = BODY_LEN + TAG_LEN;

/// HKDF salt and info for the ticket MAC key (RFC 5869 section 3.1, 3.2).
const HKDF_SALT: &[u8] = b"sealcast";
const HKDF_INFO: &[u8] = b"sealcast key ticket mac v1";
/// First bytes of every MAC input.
const MAC_DOMAIN: &[u8] = b"sealcast-ticket-v1\0";

/// The key tickets are signed with, derived from the playback token secret,
/// so every server that shares the token secret accepts the same tickets.
pub struct TicketKey(hmac::Key);

impl TicketKey {
    /// HKDF-SHA256 of the token secret (salt `"sealcast"`, info
    /// `"sealcast key ticket mac v1"`), 32 bytes.
    pub fn derive(token_secret: &Secret) -> Self {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, HKDF_SALT).extract(token_secret.expose());
        // expand fails only when asked for more than 255 hash lengths; an
        // HMAC-SHA256 key is one (32 bytes).
        #[allow(clippy::expect_used)]
        let okm = prk
            .expand(&[HKDF_INFO], hmac::HMAC_SHA256)
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        Self(hmac::Key::from(okm))
    }

    fn tag(&self, body: &[u8; BODY_LEN], binding: &TicketBinding<'_>) -> [u8; TAG_LEN] {
        let mut ctx = hmac::Context::with_key(&self.0);
        ctx.update(MAC_DOMAIN);
        ctx.update(body);
        for part in [binding.stream, binding.key_id, binding.edk] {
            ctx.update(&(part.len() as u64).to_be_bytes());
            ctx.update(part.as_bytes());
        }
        let full = ctx.sign();
        let mut tag = [0u8; TAG_LEN];
        // An HMAC-SHA256 tag is 32 bytes, longer than TAG_LEN.
        tag.copy_from_slice(&full.as_ref()[..TAG_LEN]);
        tag
    }
}

impl std::fmt::Debug for TicketKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TicketKey(..)")
    }
}

/// The key request a ticket is for, as text from the key URI
/// `/keys/{stream}/{key_id}?edk={edk}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TicketBinding<'a> {
    /// `app/name`.
    pub stream: &'a str,
    pub key_id: &'a str,
    /// The wrapped key, base64url as in the URI.
    pub edk: &'a str,
}

/// A ticket whose tag and expiry checked out. Whether it was used before is
/// for a replay store to say, by its nonce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedTicket {
    pub exp_unix_secs: u64,
    pub nonce: [u8; NONCE_LEN],
    pub viewer: [u8; VIEWER_LEN],
}

/// Why a ticket was refused; the HTTP layer answers 403 without details.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TicketError {
    /// Not 60 characters of canonical base64url.
    #[error("malformed ticket")]
    Malformed,
    /// The version byte is not one this server issues.
    #[error("unsupported ticket version")]
    UnsupportedVersion,
    /// The tag does not match: forged, altered, or for another key request.
    #[error("bad ticket tag")]
    BadTag,
    /// `exp` is at or before the current time.
    #[error("ticket expired")]
    Expired,
    /// The random number generator failed while issuing.
    #[error("random number generator failed")]
    Random,
}

/// Issues a ticket for `binding`, valid until `exp_unix_secs` (exclusive).
/// `nonce` must be fresh random bytes: the replay store knows a ticket by
/// it (the server draws them in blocks, `keyservice::nonces`).
pub fn issue(
    key: &TicketKey,
    binding: &TicketBinding<'_>,
    viewer: [u8; VIEWER_LEN],
    exp_unix_secs: u64,
    nonce: [u8; NONCE_LEN],
) -> String {
    let mut raw = [0u8; TICKET_LEN];
    let (body, tag) = raw.split_at_mut(BODY_LEN);
    body[0] = VERSION;
    body[1..9].copy_from_slice(&exp_unix_secs.to_be_bytes());
    body[9..9 + NONCE_LEN].copy_from_slice(&nonce);
    body[9 + NONCE_LEN..].copy_from_slice(&viewer);
    let mut body_array = [0u8; BODY_LEN];
    body_array.copy_from_slice(body);
    tag.copy_from_slice(&key.tag(&body_array, binding));
    let mut text = String::with_capacity(TICKET_TEXT_LEN);
    URL_SAFE_NO_PAD.encode_string(raw, &mut text);
    text
}

/// Checks a ticket's form, tag (in constant time) and expiry for `binding`
/// at `now_unix_secs`. Single use is not checked here: see the replay store.
pub fn verify(
    key: &TicketKey,
    ticket: &str,
    binding: &TicketBinding<'_>,
    now_unix_secs: u64,
) -> Result<VerifiedTicket, TicketError> {
    if ticket.len() != TICKET_TEXT_LEN {
        return Err(TicketError::Malformed);
    }
    let mut raw = [0u8; TICKET_LEN + 2];
    // Strict decoding: one ticket has one text form, so it cannot be
    // replayed re-encoded past a replay store keyed on its nonce anyway.
    let len = URL_SAFE_NO_PAD
        .decode_slice(ticket, &mut raw)
        .map_err(|_| TicketError::Malformed)?;
    if len != TICKET_LEN {
        return Err(TicketError::Malformed);
    }
    let mut body = [0u8; BODY_LEN];
    body.copy_from_slice(&raw[..BODY_LEN]);
    if body[0] != VERSION {
        return Err(TicketError::UnsupportedVersion);
    }
    if !ct_eq(&key.tag(&body, binding), &raw[BODY_LEN..TICKET_LEN]) {
        return Err(TicketError::BadTag);
    }
    let mut exp = [0u8; 8];
    exp.copy_from_slice(&body[1..9]);
    let exp_unix_secs = u64::from_be_bytes(exp);
    if exp_unix_secs <= now_unix_secs {
        return Err(TicketError::Expired);
    }
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&body[9..9 + NONCE_LEN]);
    let mut viewer = [0u8; VIEWER_LEN];
    viewer.copy_from_slice(&body[9 + NONCE_LEN..]);
    Ok(VerifiedTicket {
        exp_unix_secs,
        nonce,
        viewer,
    })
}

/// The viewer tag a ticket carries, read without checking its MAC: only for
/// a ticket [`verify`] already accepted (the access log names the viewer).
pub fn viewer_of(ticket: &str) -> Option<[u8; VIEWER_LEN]> {
    let mut raw = [0u8; TICKET_LEN + 3];
    let len = URL_SAFE_NO_PAD.decode_slice(ticket, &mut raw).ok()?;
    if len != TICKET_LEN {
        return None;
    }
    raw.get(BODY_LEN - VIEWER_LEN..BODY_LEN)?.try_into().ok()
}

/// The viewer tag of a token: the first 8 bytes of SHA-256 of `jti:<jti>`
/// when the token has a `jti`, else of `token:<the whole token>`.
pub fn viewer_tag(claims: &Claims, token: &str) -> [u8; VIEWER_LEN] {
    let mut ctx = digest::Context::new(&digest::SHA256);
    match &claims.jti {
        Some(jti) => {
            ctx.update(b"jti:");
            ctx.update(jti.as_bytes());
        }
        None => {
            ctx.update(b"token:");
            ctx.update(token.as_bytes());
        }
    }
    let mut tag = [0u8; VIEWER_LEN];
    tag.copy_from_slice(&ctx.finish().as_ref()[..VIEWER_LEN]);
    tag
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"test-secret-0123456789-0123456789-abcdef";
    const EXP: u64 = 1_700_000_060;

    fn key() -> TicketKey {
        TicketKey::derive(&Secret::new(SECRET.to_vec()))
    }

    fn binding() -> TicketBinding<'static> {
        TicketBinding {
            stream: "live/demo",
            key_id: "pub1-0",
            edk: "AQID",
        }
    }

    /// Computed independently with Python's hmac and hashlib (HKDF written
    /// out by hand from RFC 5869), for the fields below.
    const VECTOR: &str = "AQAAAABlU_E8AAECAwQFBgcICQoLEBESExQVFheBgr1RlQ2wzUoxSi6rXVs0";

    fn known() -> String {
        let nonce: [u8; NONCE_LEN] = std::array::from_fn(|i| i as u8);
        let viewer: [u8; VIEWER_LEN] = std::array::from_fn(|i| 0x10 + i as u8);
        issue(&key(), &binding(), viewer, EXP, nonce)
    }

    #[test]
    fn known_answer() {
        let ticket = known();
        assert_eq!(ticket.len(), TICKET_TEXT_LEN);
        assert_eq!(ticket, VECTOR);
        let verified = verify(&key(), VECTOR, &binding(), EXP - 1).unwrap();
        assert_eq!(verified.exp_unix_secs, EXP);
        assert_eq!(verified.nonce, std::array::from_fn(|i| i as u8));
        assert_eq!(verified.viewer, std::array::from_fn(|i| 0x10 + i as u8));
    }

    #[test]
    fn tickets_with_other_nonces_differ_and_verify() {
        let a = issue(&key(), &binding(), [7; 8], EXP, [1; NONCE_LEN]);
        let b = issue(&key(), &binding(), [7; 8], EXP, [2; NONCE_LEN]);
        assert_ne!(a, b);
        let (va, vb) = (
            verify(&key(), &a, &binding(), 0).unwrap(),
            verify(&key(), &b, &binding(), 0).unwrap(),
        );
        assert_ne!(va.nonce, vb.nonce);
        assert_eq!(va.viewer, [7; 8]);
    }

    #[test]
    fn binding_expiry_and_key_are_checked() {
        let ticket = known();
        let other_secret = TicketKey::derive(&Secret::new(b"test-secret-0123456789-0123456789-abcdeF".to_vec()));
        let b = binding();
        let cases: &[(&TicketKey, TicketBinding<'_>, u64, Result<(), TicketError>)] = &[
            (&key(), b, EXP - 1, Ok(())),
            (&key(), b, EXP, Err(TicketError::Expired)),
            (&key(), b, u64::MAX, Err(TicketError::Expired)),
            (
                &key(),
                TicketBinding { key_id: "pub1-1", ..b },
                0,
                Err(TicketError::BadTag),
            ),
            (
                &key(),
                TicketBinding {
                    stream: "live/other",
                    ..b
                },
                0,
                Err(TicketError::BadTag),
            ),
            (&key(), TicketBinding { edk: "AQIE", ..b }, 0, Err(TicketError::BadTag)),
            // Length prefixes: moving a character across fields changes the tag.
            (
                &key(),
                TicketBinding {
                    stream: "live/demop",
                    key_id: "ub1-0",
                    ..b
                },
                0,
                Err(TicketError::BadTag),
            ),
            (&other_secret, b, 0, Err(TicketError::BadTag)),
        ];
        for (key, binding, now, want) in cases {
            assert_eq!(
                verify(key, &ticket, binding, *now).map(|_| ()),
                *want,
                "{binding:?} now={now}"
            );
        }
    }

    #[test]
    fn malformed_tickets() {
        let ticket = known();
        let mut tampered_exp = URL_SAFE_NO_PAD.decode(&ticket).unwrap();
        tampered_exp[8] ^= 1;
        let mut tampered_tag = URL_SAFE_NO_PAD.decode(&ticket).unwrap();
        tampered_tag[44] ^= 0x80;
        let mut version2 = URL_SAFE_NO_PAD.decode(&ticket).unwrap();
        version2[0] = 2;
        let cases: Vec<(&str, String, TicketError)> = vec![
            ("empty", String::new(), TicketError::Malformed),
            ("short", ticket[..59].to_string(), TicketError::Malformed),
            ("long", format!("{ticket}A"), TicketError::Malformed),
            ("padding", format!("{}=", &ticket[..59]), TicketError::Malformed),
            ("bad char", format!("{}*", &ticket[..59]), TicketError::Malformed),
            ("standard alphabet", ticket.replace('_', "/"), TicketError::Malformed),
            (
                "exp changed",
                URL_SAFE_NO_PAD.encode(&tampered_exp),
                TicketError::BadTag,
            ),
            (
                "tag changed",
                URL_SAFE_NO_PAD.encode(&tampered_tag),
                TicketError::BadTag,
            ),
            (
                "version 2",
                URL_SAFE_NO_PAD.encode(&version2),
                TicketError::UnsupportedVersion,
            ),
            ("a JWT", "a".repeat(30) + "." + &"b".repeat(29), TicketError::Malformed),
        ];
        for (what, text, want) in cases {
            assert_eq!(verify(&key(), &text, &binding(), 0), Err(want), "{what}");
        }
    }

    #[test]
    fn viewer_of_reads_the_tag() {
        let nonce = [3u8; NONCE_LEN];
        let viewer: [u8; VIEWER_LEN] = std::array::from_fn(|i| 0x20 + i as u8);
        let text = issue(&key(), &binding(), viewer, EXP, nonce);
        assert_eq!(viewer_of(&text), Some(viewer));
        assert_eq!(viewer_of(&text[..TICKET_TEXT_LEN - 4]), None);
        assert_eq!(viewer_of("!"), None);
    }

    #[test]
    fn viewer_tags() {
        let claims = |jti: Option<&str>| Claims {
            exp: 1,
            stream: "*".into(),
            sub: None,
            jti: jti.map(str::to_owned),
            recording: None,
        };
        let sha = |text: &str| {
            let d = digest::digest(&digest::SHA256, text.as_bytes());
            let mut out = [0u8; 8];
            out.copy_from_slice(&d.as_ref()[..8]);
            out
        };
        assert_eq!(viewer_tag(&claims(Some("v-42")), "ignored"), sha("jti:v-42"));
        assert_eq!(viewer_tag(&claims(None), "a.b.c"), sha("token:a.b.c"));
        assert_ne!(viewer_tag(&claims(None), "a.b.c"), viewer_tag(&claims(None), "a.b.d"));
    }

    #[test]
    fn debug_hides_the_key() {
        assert_eq!(format!("{:?}", key()), "TicketKey(..)");
    }
}
