use super::*;

const SECRET: &[u8] = b"sealcast-test-secret-0123456789abcdef";
const EXP: u64 = 1_700_000_000;

/// Built by hand from RFC 7515 section 7.1 / RFC 7519 section 7.1 (with
/// Python's stdlib `hmac` and `base64`, no JWT library):
/// header `{"alg":"HS256","typ":"JWT"}`, payload
/// `{"exp":1700000000,"stream":"live/demo","sub":"viewer-42","jti":"n-1"}`.
const VECTOR: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.\
        eyJleHAiOjE3MDAwMDAwMDAsInN0cmVhbSI6ImxpdmUvZGVtbyIsInN1YiI6InZpZXdlci00MiIsImp0aSI6Im4tMSJ9.\
        3aq43nt6cCeyyTtwwFHSdTw56GqU9WPDnX98LuNwYJ8";

/// Same method; header `{"typ":"JWT","alg":"HS256","kid":"k1"}`, payload
/// `{"stream": "live/*", "exp": 1700000000, "iat": 1699990000, "aud": ["cdn"], "sub": null}`
/// (other member order, spaces, extra claims: what other libraries emit).
const VECTOR_EXTRA_CLAIMS: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiIsImtpZCI6ImsxIn0.\
        eyJzdHJlYW0iOiAibGl2ZS8qIiwgImV4cCI6IDE3MDAwMDAwMDAsICJpYXQiOiAxNjk5OTkwMDAwLCAiYXVkIjogWyJjZG4iXSwgInN1YiI6IG51bGx9.\
        pAAeHZo0Vn5m8dX0aLnPRlIul4LLpvWUCNMbddFPVk8";

fn secret() -> Secret {
    Secret::new(SECRET.to_vec())
}

fn claims() -> Claims {
    Claims {
        exp: EXP,
        stream: "live/demo".into(),
        sub: Some("viewer-42".into()),
        jti: Some("n-1".into()),
        recording: None,
    }
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

#[test]
fn header_constant_is_the_documented_json() {
    assert_eq!(HEADER_B64, b64(br#"{"alg":"HS256","typ":"JWT"}"#));
}

#[test]
fn mint_matches_hand_built_vector() {
    assert_eq!(mint(&secret(), &claims()), VECTOR);
}

#[test]
fn verify_accepts_hand_built_vectors() {
    assert_eq!(verify(&secret(), VECTOR, "live/demo", EXP - 1), Ok(claims()));
    let c = verify(&secret(), VECTOR_EXTRA_CLAIMS, "live/other", EXP - 1).unwrap();
    assert_eq!(
        c,
        Claims {
            exp: EXP,
            stream: "live/*".into(),
            sub: None,
            jti: None,
            recording: None,
        }
    );
}

/// RFC 7515 Appendix A.1: an external HS256 vector (CRLFs in the JSON,
/// `typ` before `alg`). The signature layer must accept it; the claims
/// layer refuses it because it has no `stream`.
#[test]
fn rfc7515_a1_signature_verifies() {
    let key = URL_SAFE_NO_PAD
        .decode("AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow")
        .unwrap();
    let token = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.\
            eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.\
            dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let secret = Secret::new(key);
    assert_eq!(
        TokenKey::new(&secret).verified_payload(token).unwrap(),
        b"{\"iss\":\"joe\",\r\n \"exp\":1300819380,\r\n \"http://example.com/is_root\":true}"
    );
    assert_eq!(verify(&secret, token, "live/demo", 0), Err(TokenError::Malformed));
}

/// The jwt.io sample token, secret `your-256-bit-secret`.
#[test]
fn jwt_io_sample_signature_verifies() {
    let token = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.\
            eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.\
            SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";
    let secret = Secret::new(b"your-256-bit-secret".to_vec());
    assert_eq!(
        TokenKey::new(&secret).verified_payload(token).unwrap(),
        br#"{"sub":"1234567890","name":"John Doe","iat":1516239022}"#
    );
    let wrong = Secret::new(b"your-256-bit-secreT".to_vec());
    assert_eq!(
        TokenKey::new(&wrong).verified_payload(token),
        Err(TokenError::BadSignature)
    );
}

#[test]
fn round_trip_without_optional_claims() {
    let c = Claims {
        exp: 42,
        stream: "*".into(),
        sub: None,
        jti: None,
        recording: None,
    };
    let token = mint(&secret(), &c);
    let payload = token.split('.').nth(1).unwrap();
    assert_eq!(URL_SAFE_NO_PAD.decode(payload).unwrap(), br#"{"exp":42,"stream":"*"}"#);
    assert_eq!(verify(&secret(), &token, "app/x", 41), Ok(c));
}

#[test]
fn expiry_is_exclusive() {
    let cases = [
        (0, Ok(())),
        (EXP - 1, Ok(())),
        (EXP, Err(TokenError::Expired)),
        (EXP + 1, Err(TokenError::Expired)),
        (u64::MAX, Err(TokenError::Expired)),
    ];
    for (now, want) in cases {
        let got = verify(&secret(), VECTOR, "live/demo", now).map(|_| ());
        assert_eq!(got, want, "now = {now}");
    }
}

#[test]
fn wrong_stream_and_wrong_secret() {
    for stream in ["live/demo2", "live/dem", "other/demo", "", "live/demo/x"] {
        assert_eq!(
            verify(&secret(), VECTOR, stream, 0),
            Err(TokenError::WrongStream),
            "{stream}"
        );
    }
    let other = Secret::new(b"sealcast-test-secret-0123456789abcdeF".to_vec());
    assert_eq!(verify(&other, VECTOR, "live/demo", 0), Err(TokenError::BadSignature));
}

fn parts(token: &str) -> (String, String, String) {
    let v: Vec<&str> = token.split('.').collect();
    (v[0].into(), v[1].into(), v[2].into())
}

#[test]
fn tampering_is_detected() {
    let (h, p, s) = parts(VECTOR);
    // A payload that claims every stream and a far expiry, old signature.
    let forged_payload = b64(br#"{"exp":9999999999,"stream":"*"}"#);
    // A header with an extra member: still HS256, but signed bytes differ.
    let forged_header = b64(br#"{"alg":"HS256","typ":"JWT","kid":"x"}"#);
    let mut flipped_sig = s.clone().into_bytes();
    flipped_sig[0] = if flipped_sig[0] == b'A' { b'B' } else { b'A' };
    let flipped_sig = String::from_utf8(flipped_sig).unwrap();
    let mut flipped_payload = p.clone().into_bytes();
    flipped_payload[5] ^= 0x01; // 'A'..'z' stay in the alphabet
    let flipped_payload = String::from_utf8(flipped_payload).unwrap();

    let cases = [
        (format!("{h}.{forged_payload}.{s}"), TokenError::BadSignature),
        (format!("{h}.{flipped_payload}.{s}"), TokenError::BadSignature),
        (format!("{forged_header}.{p}.{s}"), TokenError::BadSignature),
        (format!("{h}.{p}.{flipped_sig}"), TokenError::BadSignature),
        // Truncated signature: still base64url, wrong length.
        (format!("{h}.{p}.{}", &s[..40]), TokenError::BadSignature),
        (format!("{h}.{p}."), TokenError::BadSignature),
    ];
    for (token, want) in cases {
        assert_eq!(verify(&secret(), &token, "live/demo", 0), Err(want), "{token}");
    }
}

/// The last base64url char of a 32-byte signature carries 4 data bits and
/// 2 padding bits; a different padding-bit value is the same bytes under a
/// lenient decoder. Strict decoding refuses it, so a token has one form.
#[test]
fn non_canonical_signature_encoding_is_refused() {
    let (h, p, s) = parts(VECTOR);
    assert!(s.ends_with('8'));
    let alt = format!("{h}.{p}.{}9", &s[..s.len() - 1]);
    assert_eq!(verify(&secret(), &alt, "live/demo", 0), Err(TokenError::Malformed));
    let padded = format!("{VECTOR}=");
    assert_eq!(verify(&secret(), &padded, "live/demo", 0), Err(TokenError::Malformed));
}

#[test]
fn other_algorithms_are_refused_first() {
    let (_, p, s) = parts(VECTOR);
    let hs512 = "eyJhbGciOiJIUzUxMiIsInR5cCI6IkpXVCJ9.\
            eyJleHAiOjE3MDAwMDAwMDAsInN0cmVhbSI6ImxpdmUvZGVtbyJ9.\
            7hNcFt4po0d6chiRuR8mncKbtw2Y_nnBwmkVznXT4woMRnKrLu8BtBBMgpPhJLSFzfd6AT4BlgHMl_p-_WdWqg";
    let none = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.\
            eyJleHAiOjE3MDAwMDAwMDAsInN0cmVhbSI6ImxpdmUvZGVtbyJ9.";
    let cases = [
        hs512.to_string(),
        none.to_string(),
        // `none` with garbage elsewhere: alg is still what is reported.
        format!("{}.!!!.", b64(br#"{"alg":"none"}"#)),
        format!("{}.{p}.{s}", b64(br#"{"alg":"None"}"#)),
        format!("{}.{p}.{s}", b64(br#"{"alg":"hs256"}"#)),
        format!("{}.{p}.{s}", b64(br#"{"alg":"RS256","typ":"JWT"}"#)),
        format!("{}.{p}.{s}", b64(br#"{"alg":""}"#)),
    ];
    for token in cases {
        assert_eq!(
            verify(&secret(), &token, "live/demo", 0),
            Err(TokenError::UnsupportedAlg),
            "{token}"
        );
    }
}

#[test]
fn malformed_tokens() {
    let (h, p, s) = parts(VECTOR);
    let sign = |header: &str, payload: &str| {
        let input = format!("{header}.{payload}");
        let key = hmac::Key::new(hmac::HMAC_SHA256, SECRET);
        let tag = hmac::sign(&key, input.as_bytes());
        format!("{input}.{}", b64(tag.as_ref()))
    };
    let huge = mint(
        &secret(),
        &Claims {
            exp: EXP,
            stream: "live/demo".into(),
            sub: Some("x".repeat(MAX_TOKEN_BYTES)),
            jti: None,
            recording: None,
        },
    );
    let cases: Vec<(&str, String)> = vec![
        ("empty", String::new()),
        ("one segment", h.clone()),
        ("two segments", format!("{h}.{p}")),
        ("four segments", format!("{h}.{p}.{s}.{s}")),
        ("bad base64 header", format!("{h}*.{p}.{s}")),
        ("bad base64 signature", format!("{h}.{p}.{s}*")),
        ("header not JSON", format!("{}.{p}.{s}", b64(b"alg=HS256"))),
        ("header JSON array", format!("{}.{p}.{s}", b64(b"[\"HS256\"]"))),
        ("header without alg", format!("{}.{p}.{s}", b64(b"{\"typ\":\"JWT\"}"))),
        ("alg not a string", format!("{}.{p}.{s}", b64(b"{\"alg\":256}"))),
        (
            "duplicate alg",
            format!("{}.{p}.{s}", b64(br#"{"alg":"HS256","alg":"none"}"#)),
        ),
        (
            "crit header",
            sign(&b64(br#"{"alg":"HS256","crit":["b64"],"b64":false}"#), &p),
        ),
        ("signed non-JSON payload", sign(&h, &b64(b"hello"))),
        ("signed payload without exp", sign(&h, &b64(br#"{"stream":"*"}"#))),
        (
            "signed payload without stream",
            sign(&h, &b64(br#"{"exp":9999999999}"#)),
        ),
        (
            "signed string exp",
            sign(&h, &b64(br#"{"exp":"9999999999","stream":"*"}"#)),
        ),
        ("signed null exp", sign(&h, &b64(br#"{"exp":null,"stream":"*"}"#))),
        (
            "signed negative float exp",
            sign(&h, &b64(br#"{"exp":-0.5,"stream":"*"}"#)),
        ),
        ("signed negative exp", sign(&h, &b64(br#"{"exp":-1,"stream":"*"}"#))),
        ("signed payload JSON array", sign(&h, &b64(br#"[9999999999,"*"]"#))),
        (
            "signed duplicate stream",
            sign(&h, &b64(br#"{"exp":9999999999,"stream":"x","stream":"*"}"#)),
        ),
        ("signed bad base64 payload", sign(&h, "e30*")),
        ("huge but well formed", huge),
        ("huge garbage", "a".repeat(MAX_TOKEN_BYTES + 1)),
    ];
    for (what, token) in cases {
        assert_eq!(
            verify(&secret(), &token, "live/demo", 0),
            Err(TokenError::Malformed),
            "{what}"
        );
    }
}

/// `recording` is read with the other claims: a string scopes the token
/// to that recording, anything else to nothing, null or absent not at all.
#[test]
fn the_recording_claim() {
    let key = hmac::Key::new(hmac::HMAC_SHA256, SECRET);
    let sign = |payload: &str| {
        let input = format!("{HEADER_B64}.{}", b64(payload.as_bytes()));
        format!("{input}.{}", b64(hmac::sign(&key, input.as_bytes()).as_ref()))
    };
    let base = r#""exp":2000,"stream":"live/demo""#;
    for (extra, scope) in [
        (r#","recording":"aaaa0001""#, Some("aaaa0001")),
        (r#","recording":7"#, Some("")),
        (r#","recording":{"id":"aaaa0001"}"#, Some("")),
        (r#","recording":null"#, None),
        ("", None),
    ] {
        let token = sign(&format!("{{{base}{extra}}}"));
        let claims = verify(&secret(), &token, "live/demo", 1000).unwrap();
        assert_eq!(claims.recording.as_deref(), scope, "{extra}");
    }
}

/// `nbf` and `aud`, signed by hand so the claims are exactly what other
/// libraries emit.
#[test]
fn not_before_and_audience() {
    let h = HEADER_B64;
    let sign = |payload: &str| {
        let input = format!("{h}.{}", b64(payload.as_bytes()));
        let key = hmac::Key::new(hmac::HMAC_SHA256, SECRET);
        let tag = hmac::sign(&key, input.as_bytes());
        format!("{input}.{}", b64(tag.as_ref()))
    };
    let base = r#""exp":2000,"stream":"live/demo""#;
    let none: Option<&str> = None;
    type Case<'a> = (&'a str, Option<&'a str>, u64, Result<(), TokenError>);
    let cases: &[Case<'_>] = &[
        ("", none, 1000, Ok(())),
        (r#","nbf":1000"#, none, 1000, Ok(())),
        (r#","nbf":1000"#, none, 999, Err(TokenError::NotYetValid)),
        (
            r#","nbf":1001,"aud":"x""#,
            Some("x"),
            1000,
            Err(TokenError::NotYetValid),
        ),
        // Non-integer NumericDates: nbf rounds up (valid from 1001).
        (r#","nbf":1000.5"#, none, 1000, Err(TokenError::NotYetValid)),
        (r#","nbf":1000.5"#, none, 1001, Ok(())),
        (r#","nbf":"1000""#, none, 1000, Err(TokenError::Malformed)),
        (r#","nbf":-1"#, none, 1000, Err(TokenError::Malformed)),
        (r#","nbf":null"#, none, 1000, Ok(())),
        // Without an expected audience, aud is not looked at.
        (r#","aud":"other""#, none, 1000, Ok(())),
        (r#","aud":"sealcast""#, Some("sealcast"), 1000, Ok(())),
        (r#","aud":["cdn","sealcast"]"#, Some("sealcast"), 1000, Ok(())),
        ("", Some("sealcast"), 1000, Err(TokenError::WrongAudience)),
        (
            r#","aud":"sealcast2""#,
            Some("sealcast"),
            1000,
            Err(TokenError::WrongAudience),
        ),
        (
            r#","aud":["cdn"]"#,
            Some("sealcast"),
            1000,
            Err(TokenError::WrongAudience),
        ),
        (r#","aud":[]"#, Some("sealcast"), 1000, Err(TokenError::WrongAudience)),
        (r#","aud":7"#, Some("sealcast"), 1000, Err(TokenError::Malformed)),
        // Expiry is checked first.
        (r#","nbf":5000"#, none, 2000, Err(TokenError::Expired)),
    ];
    for (extra, audience, now, want) in cases {
        let token = sign(&format!("{{{base}{extra}}}"));
        let expect = Expect {
            stream: "live/demo",
            audience: *audience,
        };
        let got = verify_with(&secret(), &token, &expect, *now).map(|_| ());
        assert_eq!(got, *want, "{extra} audience={audience:?} now={now}");
    }
}

/// PyJWT passes `time.time() + 3600` through as a float; exp rounds down.
#[test]
fn non_integer_exp() {
    let sign = |payload: &str| {
        let input = format!("{HEADER_B64}.{}", b64(payload.as_bytes()));
        let key = hmac::Key::new(hmac::HMAC_SHA256, SECRET);
        let tag = hmac::sign(&key, input.as_bytes());
        format!("{input}.{}", b64(tag.as_ref()))
    };
    let cases = [
        (r#"{"exp":2000.9,"stream":"*"}"#, 1999, Ok(2000)),
        (r#"{"exp":2000.9,"stream":"*"}"#, 2000, Err(TokenError::Expired)),
        (r#"{"exp":2e3,"stream":"*"}"#, 1999, Ok(2000)),
        // Beyond u64: refused, not clamped to a token that never expires.
        (r#"{"exp":1e30,"stream":"*"}"#, 1999, Err(TokenError::Malformed)),
        (
            r#"{"exp":18446744073709551616,"stream":"*"}"#,
            1999,
            Err(TokenError::Malformed),
        ),
        (r#"{"exp":18446744073709551615,"stream":"*"}"#, 1999, Ok(u64::MAX)),
        (
            r#"{"exp":1.8446744073709552e19,"stream":"*"}"#,
            1999,
            Err(TokenError::Malformed),
        ),
        (r#"{"exp":0.0,"stream":"*"}"#, 0, Err(TokenError::Expired)),
    ];
    for (payload, now, want) in cases {
        let got = verify(&secret(), &sign(payload), "live/demo", now).map(|c| c.exp);
        assert_eq!(got, want, "{payload} at {now}");
    }
}

#[test]
fn minted_audience_round_trips() {
    let c = Claims {
        exp: 42,
        stream: "live/demo".into(),
        sub: None,
        jti: None,
        recording: None,
    };
    let token = mint_with_audience(&secret(), &c, Some("sealcast"));
    let payload = token.split('.').nth(1).unwrap();
    assert_eq!(
        URL_SAFE_NO_PAD.decode(payload).unwrap(),
        br#"{"exp":42,"stream":"live/demo","aud":"sealcast"}"#
    );
    let expect = |audience| Expect {
        stream: "live/demo",
        audience,
    };
    assert_eq!(
        verify_with(&secret(), &token, &expect(Some("sealcast")), 41),
        Ok(c.clone())
    );
    assert_eq!(
        verify_with(&secret(), &token, &expect(Some("other")), 41),
        Err(TokenError::WrongAudience)
    );
    assert_eq!(mint_with_audience(&secret(), &c, None), mint(&secret(), &c));
}

/// Per path segment: `*`, `app/*` and exact names only (finding 8 of
/// issue 18: `live*` once matched `livestream/cam`).
#[test]
fn pattern_table() {
    // (pattern, stream, matches, valid to mint)
    let cases = [
        ("live/demo", "live/demo", true, true),
        ("live/demo", "live/demo2", false, true),
        ("live/demo", "live/dem", false, true),
        ("live/demo", "Live/demo", false, true),
        ("*", "live/demo", true, true),
        ("*", "a/b", true, true),
        ("live/*", "live/demo", true, true),
        ("live/*", "live/x", true, true),
        ("live/*", "livex/demo", false, true),
        ("live/*", "livestream/cam", false, true),
        ("live/*", "other/demo", false, true),
        ("live/*", "live", false, true),
        ("live*", "livestream/cam", false, false),
        ("live*", "live/demo", false, false),
        ("live/demo*", "live/demo2", false, false),
        ("live/demo*", "live/demo", false, false),
        ("live/d*", "live/demo", false, false),
        ("*/demo", "live/demo", false, false),
        ("live/*/x", "live/a/x", false, false),
        ("li*/*", "live/demo", false, false),
        ("/*", "/x", false, false),
        ("**", "live/demo", false, false),
        ("", "live/demo", false, false),
        ("live", "live", true, false),
        ("live/de mo", "live/de mo", true, false),
    ];
    for (pattern, stream, matches, valid) in cases {
        assert_eq!(stream_matches(pattern, stream), matches, "{pattern} vs {stream}");
        assert_eq!(valid_stream_pattern(pattern), valid, "{pattern} to mint");
    }
}

#[test]
fn bearer_header_table() {
    let cases = [
        ("Bearer abc.def.ghi", Some("abc.def.ghi")),
        ("bearer abc", Some("abc")),
        ("BEARER  abc ", Some("abc")),
        ("Bearer ", None),
        ("Bearer", None),
        ("Basic dXNlcjpwYXNz", None),
        ("Bearerabc", None),
        ("", None),
    ];
    for (value, want) in cases {
        assert_eq!(bearer_token(value), want, "{value:?}");
    }
}

#[test]
fn error_messages_are_terse() {
    let cases = [
        (TokenError::Malformed, "malformed token"),
        (TokenError::BadSignature, "bad token signature"),
        (TokenError::Expired, "token expired"),
        (TokenError::WrongStream, "token not valid for this stream"),
        (TokenError::UnsupportedAlg, "unsupported token algorithm"),
        (TokenError::NotYetValid, "token not valid yet"),
        (TokenError::WrongAudience, "token not meant for this audience"),
    ];
    for (err, text) in cases {
        assert_eq!(err.to_string(), text);
    }
}
