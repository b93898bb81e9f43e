//! Playback tokens: compact-serialized JWTs (RFC 7519) signed with HS256
//! (RFC 7515, RFC 7518 section 3.2), checked by the key endpoint.
//!
//! Only HS256 is accepted, and the `alg` header is checked before anything
//! else, so `"none"` and algorithm-confusion tokens never reach the signature
//! or claims code. The clock is an argument.
//!
//! Registered claims checked when present: `nbf` (RFC 7519 section 4.1.5: refused
//! before that second) and, when the verifier names an audience, `aud` (section
//! 4.1.3: a string or an array that must contain it).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::hmac;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

use super::Secret;

/// Longest token [`verify`] will look at, in bytes. Real tokens are a few
/// hundred bytes; the cap bounds the work an anonymous request can cause.
pub const MAX_TOKEN_BYTES: usize = 4096;

/// `{"alg":"HS256","typ":"JWT"}` in base64url, the header every minted token has.
const HEADER_B64: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";

/// The claims sealcast reads. Other claims (`iat`, `iss`, ...) are allowed
/// and ignored, so tokens from any JWT library with extra fields still verify.
/// `nbf` and `aud` are checked by [`verify_with`] too.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Expiry, seconds since the Unix epoch (RFC 7519 section 4.1.4). Required.
    /// A non-integer NumericDate (PyJWT with `time.time() + 3600`) is
    /// rounded down: the token expires at most a second early, never late.
    #[serde(deserialize_with = "numeric_date_floor")]
    pub exp: u64,
    /// The stream this token unlocks: `app/name`, `app/*` (every stream of
    /// one app) or `*` (every stream); see [`stream_matches`].
    pub stream: String,
    /// Who the token was issued to (the viewer), for logs and auditing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// Token id, for one-time tickets and revocation lists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// The one recording the token is limited to ([`super::recording`]);
    /// `None`: not limited. A `recording` that is not a string limits it
    /// to nothing (`Some("")`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "recording_scope"
    )]
    pub recording: Option<String>,
}

/// Why a token was refused. Messages are terse on purpose: the HTTP layer
/// answers 403 without details.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not three base64url segments of JSON, missing claims, or too long.
    #[error("malformed token")]
    Malformed,
    /// The HMAC-SHA256 signature does not match the secret.
    #[error("bad token signature")]
    BadSignature,
    /// `exp` is at or before the current time.
    #[error("token expired")]
    Expired,
    /// The `stream` claim does not cover the requested stream.
    #[error("token not valid for this stream")]
    WrongStream,
    /// The header's `alg` is not `HS256` (this includes `none`).
    #[error("unsupported token algorithm")]
    UnsupportedAlg,
    /// `nbf` is after the current time: the token is not valid yet.
    #[error("token not valid yet")]
    NotYetValid,
    /// An audience is expected and `aud` is missing or does not name it.
    #[error("token not meant for this audience")]
    WrongAudience,
}

/// What [`verify_with`] expects of a token besides signature and time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expect<'a> {
    /// The stream requested, `app/name`; the `stream` claim must cover it.
    pub stream: &'a str,
    /// `Some`: the `aud` claim must be this string, or an array holding it.
    /// `None`: `aud` is not checked (tokens minted before an audience was
    /// configured keep working).
    pub audience: Option<&'a str>,
}

/// A claims set as [`verify_with`] reads it, in one parse: [`Claims`] and
/// the registered claims checked beyond them (RFC 7519 section 4.1).
#[derive(Deserialize)]
struct Payload {
    #[serde(deserialize_with = "numeric_date_floor")]
    exp: u64,
    stream: String,
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    jti: Option<String>,
    #[serde(default, deserialize_with = "recording_scope")]
    recording: Option<String>,
    /// Not before, seconds since the Unix epoch; a non-integer is rounded
    /// up, so a token is never valid early.
    #[serde(default, deserialize_with = "numeric_date_ceil")]
    nbf: Option<u64>,
    #[serde(default)]
    aud: Option<Audience>,
}

/// `recording`: a string, or anything else, which scopes to nothing.
fn recording_scope<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Option::<serde_json::Value>::deserialize(d)? {
        None => None,
        Some(serde_json::Value::String(id)) => Some(id),
        Some(_) => Some(String::new()),
    })
}

/// A NumericDate (RFC 7519 section 2): a non-negative JSON number of
/// seconds. Integers are taken as they are; others rounded by `round`.
fn numeric_date<'de, D: serde::Deserializer<'de>>(d: D, round: fn(f64) -> f64) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Number {
        Integer(u64),
        Float(f64),
    }
    match Option::<Number>::deserialize(d)? {
        None => Ok(None),
        Some(Number::Integer(n)) => Ok(Some(n)),
        // serde_json hands integers past u64::MAX over as floats. They are
        // refused rather than saturated: `as` would turn 1e30 into u64::MAX,
        // a token that never expires. JSON has no NaN.
        Some(Number::Float(f)) if f >= 0.0 && round(f) < U64_LIMIT => Ok(Some(round(f) as u64)),
        Some(Number::Float(_)) => Err(serde::de::Error::custom(
            "a NumericDate is a number of seconds from 0 to 2^64 - 1",
        )),
    }
}

/// 2^64 as an f64 (exact): the first value a u64 cannot hold.
const U64_LIMIT: f64 = 18_446_744_073_709_551_616.0;

fn numeric_date_floor<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    numeric_date(d, f64::floor)?.ok_or_else(|| serde::de::Error::custom("exp must be a number"))
}

fn numeric_date_ceil<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    numeric_date(d, f64::ceil)
}

/// `aud` is a string or an array of strings (RFC 7519 section 4.1.3).
#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    fn names(&self, audience: &str) -> bool {
        match self {
            Audience::One(one) => one == audience,
            Audience::Many(many) => many.iter().any(|a| a == audience),
        }
    }
}

/// Claims plus an `aud`, for [`mint_with_audience`].
#[derive(Serialize)]
struct WithAudience<'a> {
    #[serde(flatten)]
    claims: &'a Claims,
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<&'a str>,
}

/// The part of the JOSE header we read; other members are ignored.
#[derive(Deserialize)]
struct Header<'a> {
    /// Signature algorithm (RFC 7515 section 4.1.1).
    #[serde(borrow)]
    alg: Cow<'a, str>,
    /// Critical extensions (RFC 7515 section 4.1.11): we understand none, so
    /// a token that lists any must be rejected.
    #[serde(default)]
    crit: Option<serde::de::IgnoredAny>,
}

/// Mints a token for `claims`, header `{"alg":"HS256","typ":"JWT"}`.
///
/// The output is deterministic: the same secret and claims give the same
/// token. Huge claims can make a token longer than [`MAX_TOKEN_BYTES`], which
/// [`verify`] then refuses.
pub fn mint(secret: &Secret, claims: &Claims) -> String {
    mint_with_audience(secret, claims, None)
}

/// [`mint`] with an `aud` claim when `audience` is set, for servers that
/// expect one (see [`Expect::audience`]).
pub fn mint_with_audience(secret: &Secret, claims: &Claims, audience: Option<&str>) -> String {
    // Serializing a struct of strings and integers into memory cannot fail
    // (no maps with non-string keys, no IO), so this never panics.
    let payload = serde_json::to_vec(&WithAudience { claims, aud: audience }).expect("Claims always serialize to JSON");
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.expose());
    let mut token = String::with_capacity(HEADER_B64.len() + 2 + payload.len() * 4 / 3 + 48);
    token.push_str(HEADER_B64);
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(&payload, &mut token);
    let tag = hmac::sign(&key, token.as_bytes());
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(tag.as_ref(), &mut token);
    token
}

/// Verifies `token` for `stream` (`app/name`) at `now_unix_secs`.
///
/// Order: length cap, three segments, header `alg == "HS256"` (checked before
/// any other check, so `none` and other algorithms are refused outright),
/// HMAC-SHA256 in constant time (`ring::hmac::verify`), then the claims:
/// `exp > now_unix_secs` (a token is expired at the second `exp` names) and
/// `nbf <= now_unix_secs` when present, and `stream` matching via
/// [`stream_matches`]. `aud` is not checked; see [`verify_with`].
pub fn verify(secret: &Secret, token: &str, stream: &str, now_unix_secs: u64) -> Result<Claims, TokenError> {
    verify_with(secret, token, &Expect { stream, audience: None }, now_unix_secs)
}

/// [`verify`] with an expected audience: in order, form, algorithm,
/// signature, `exp`, `nbf`, `aud` (when `expect.audience` is set), `stream`.
pub fn verify_with(
    secret: &Secret,
    token: &str,
    expect: &Expect<'_>,
    now_unix_secs: u64,
) -> Result<Claims, TokenError> {
    TokenKey::new(secret).verify(token, expect, now_unix_secs)
}

/// A token secret as an HMAC key, made once: building one hashes the
/// secret's inner and outer pads, two SHA-256 blocks that a server checking
/// a token per key request would otherwise repeat every time. Like
/// [`super::TicketKey`], it holds *ring*'s hash states of those pads, which
/// *ring* does not zeroize on drop; it lives as long as its key service.
#[derive(Clone)]
pub struct TokenKey(hmac::Key);

impl TokenKey {
    pub fn new(secret: &Secret) -> Self {
        Self(hmac::Key::new(hmac::HMAC_SHA256, secret.expose()))
    }

    /// [`verify_with`] under this key.
    pub fn verify(&self, token: &str, expect: &Expect<'_>, now_unix_secs: u64) -> Result<Claims, TokenError> {
        let payload = self.verified_payload(token)?;
        let Payload {
            exp,
            stream,
            sub,
            jti,
            recording,
            nbf,
            aud,
        } = json_object(&payload)?;
        if exp <= now_unix_secs {
            return Err(TokenError::Expired);
        }
        if nbf.is_some_and(|nbf| nbf > now_unix_secs) {
            return Err(TokenError::NotYetValid);
        }
        if let Some(audience) = expect.audience
            && !aud.as_ref().is_some_and(|aud| aud.names(audience))
        {
            return Err(TokenError::WrongAudience);
        }
        if !stream_matches(&stream, expect.stream) {
            return Err(TokenError::WrongStream);
        }
        Ok(Claims {
            exp,
            stream,
            sub,
            jti,
            recording,
        })
    }

    /// Checks form, algorithm and signature; returns the decoded payload bytes.
    fn verified_payload(&self, token: &str) -> Result<Vec<u8>, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::Malformed);
        }
        let mut parts = token.split('.');
        let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };

        let header_json = decode_segment(header_b64)?;
        let header: Header<'_> = json_object(&header_json)?;
        if header.alg != "HS256" {
            return Err(TokenError::UnsupportedAlg);
        }
        if header.crit.is_some() {
            return Err(TokenError::Malformed);
        }

        // Strict base64url (no padding, zero trailing bits) so one signature has
        // exactly one encoding: a one-time token cannot be replayed re-encoded.
        let signature = decode_segment(signature_b64)?;
        // The signing input is the ASCII text `header.payload` (RFC 7515 5.2).
        let signing_input = &token.as_bytes()[..header_b64.len() + 1 + payload_b64.len()];
        hmac::verify(&self.0, signing_input, &signature).map_err(|_| TokenError::BadSignature)?;

        decode_segment(payload_b64)
    }
}

/// Parses a JSON object into `T`. serde's derived structs also accept a JSON
/// array of the fields in order, but JOSE headers and claims sets must be
/// objects (RFC 7515 section 4, RFC 7519 section 7.2 step 10), so check first.
fn json_object<'a, T: Deserialize<'a>>(json: &'a [u8]) -> Result<T, TokenError> {
    let first = json.iter().find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
    if first != Some(&b'{') {
        return Err(TokenError::Malformed);
    }
    serde_json::from_slice(json).map_err(|_| TokenError::Malformed)
}

fn decode_segment(segment: &str) -> Result<Vec<u8>, TokenError> {
    URL_SAFE_NO_PAD.decode(segment).map_err(|_| TokenError::Malformed)
}

/// Whether the `stream` claim `pattern` covers `stream` (`app/name`).
///
/// Matching is per path segment, never a string prefix: `"*"` matches every
/// stream, `"live/*"` every stream of app `live` (not `livestream/cam`), and
/// any other pattern only the stream it names exactly. Anything else with a
/// `*` in it (`"live*"`, `"live/demo*"`, `"*/demo"`) matches nothing, and
/// [`valid_stream_pattern`] refuses it when minting.
pub fn stream_matches(pattern: &str, stream: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    if pattern.contains('*') {
        return match pattern.strip_suffix("/*") {
            Some(app) if crate::names::is_valid_component(app) => stream.split_once('/').is_some_and(|(a, _)| a == app),
            _ => false,
        };
    }
    pattern == stream
}

/// Whether `pattern` is a `stream` claim worth minting: `*`, `app/*` or
/// `app/name`, each part a valid name component (see
/// [`crate::names::is_valid_component`]).
pub fn valid_stream_pattern(pattern: &str) -> bool {
    use crate::names::is_valid_component;
    if pattern == "*" {
        return true;
    }
    match pattern.split_once('/') {
        Some((app, "*")) => is_valid_component(app),
        Some((app, name)) => is_valid_component(app) && is_valid_component(name),
        None => false,
    }
}

/// The token in an `Authorization: Bearer <token>` header value (RFC 6750
/// section 2.1; the scheme is case-insensitive), or `None`.
pub fn bearer_token(authorization: &str) -> Option<&str> {
    let (scheme, rest) = authorization.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = rest.trim_matches(' ');
    (!token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests;
