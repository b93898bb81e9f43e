//! What the key endpoint parses from a request: the playback token
//! (`auth::verify`, `auth::bearer_token`), the key URI (`names::KeyUri::parse`)
//! and the wrapped key (`crypto::WrappedKey::from_base64url`). No input may
//! panic, and what is accepted must round-trip.
//!
//! The input text is tried as a token as is. Since a random token never gets
//! past the signature, text of the form `header\npayload` is also signed with
//! the fixed secret and verified, which drives the JOSE header and claims
//! parsing with arbitrary JSON.
#![no_main]

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use libfuzzer_sys::fuzz_target;
use ring::hmac;
use sealcast_core::auth::{self, Secret, TokenError};
use sealcast_core::crypto::WrappedKey;
use sealcast_core::names::KeyUri;

const SECRET: &[u8] = b"sealcast-fuzz-secret-0123456789abcdef";
const STREAM: &str = "live/demo";
const NOW_UNIX_SECS: u64 = 1_700_000_000;

fn check_verify(secret: &Secret, token: &str) -> Result<(), TokenError> {
    let claims = auth::verify(secret, token, STREAM, NOW_UNIX_SECS)?;
    assert!(claims.exp > NOW_UNIX_SECS);
    assert!(auth::stream_matches(&claims.stream, STREAM));
    // A wildcard only ever matches whole segments (issue 18, finding 8).
    if claims.stream.contains('*') {
        assert!(auth::valid_stream_pattern(&claims.stream), "{}", claims.stream);
    }
    // A verified token's claims, minted again, verify to the same claims
    // (unless they no longer fit the length cap).
    let minted = auth::mint(secret, &claims);
    match auth::verify(secret, &minted, STREAM, NOW_UNIX_SECS) {
        Ok(again) => assert_eq!(again, claims),
        Err(TokenError::Malformed) => assert!(minted.len() > auth::MAX_TOKEN_BYTES),
        Err(e) => panic!("re-minted token refused: {e}"),
    }
    Ok(())
}

fn sign(header: &[u8], payload: &[u8]) -> String {
    let mut token = URL_SAFE_NO_PAD.encode(header);
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(payload, &mut token);
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, SECRET), token.as_bytes());
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(tag.as_ref(), &mut token);
    token
}

fuzz_target!(|data: &[u8]| {
    let secret = Secret::new(SECRET.to_vec());
    let text = String::from_utf8_lossy(data);

    let _ = check_verify(&secret, &text);
    if let Some(newline) = data.iter().position(|&b| b == b'\n') {
        let (header, payload) = (&data[..newline], &data[newline + 1..]);
        let _ = check_verify(&secret, &sign(header, payload));
    }

    if let Some(token) = auth::bearer_token(&text) {
        assert!(!token.is_empty() && !token.starts_with(' ') && !token.ends_with(' '));
        let _ = check_verify(&secret, token);
    }

    if let Ok(uri) = KeyUri::parse(&text) {
        let rendered = KeyUri::render(&uri.stream, &uri.key_id, &uri.wrapped, "");
        assert_eq!(KeyUri::parse(&rendered).as_ref(), Ok(&uri), "{rendered}");
    }

    if let Ok(wrapped) = WrappedKey::from_base64url(&text) {
        // Strict base64url: one encoding per key, so the text comes back.
        assert_eq!(wrapped.to_base64url(), text);
        assert!(!wrapped.as_bytes().is_empty() && wrapped.as_bytes().len() <= WrappedKey::MAX_LEN);
    }
});
