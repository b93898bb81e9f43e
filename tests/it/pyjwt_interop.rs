//! Playback tokens minted by another language's standard JWT library
//! (Python's PyJWT, installed by scripts/test.sh) against the real key
//! endpoint: HS256 with `nbf`, `aud` (an audience is configured), extra
//! claims and headers is accepted; `alg: none`, RS256, HS384/HS512, a wrong
//! secret, audience or stream, expiry and a future `nbf` get 403. And the
//! other way round: PyJWT verifies a token sealcast minted.

use std::process::Command;

use crate::support::http;
use crate::support::playlist::until_ended;
use crate::support::server::{DEMO_KEY, TestServer};
use crate::support::{fixture, with_safety_net};
use sealcast::auth::Claims;
use sealcast::hls::parse_media_playlist;
use serde_json::{Value, json};

const AUDIENCE: &str = "sealcast-test";

/// Mints every case with PyJWT. Keys: "secret" (the server's), "other" (a
/// different HS256 secret), "rsa" (a fresh 2048-bit RSA key, via the
/// `cryptography` package), "none" (unsigned).
const MINT: &str = r#"
import json, sys, jwt
from cryptography.hazmat.primitives.asymmetric import rsa
spec = json.loads(sys.argv[1])
rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
keys = {"secret": spec["secret"], "other": spec["secret"] + "x", "rsa": rsa_key, "none": None}
out = {}
for case in spec["cases"]:
    out[case["name"]] = jwt.encode(case["payload"], keys[case["key"]], algorithm=case["alg"], headers=case.get("headers"))
print(json.dumps(out))
"#;

/// Decodes a token with PyJWT as a backend would, printing the claims.
const DECODE: &str = r#"
import json, sys, jwt
print(json.dumps(jwt.decode(sys.argv[1], sys.argv[2], algorithms=["HS256"], audience=sys.argv[3])))
"#;

fn python(script: &str, args: &[&str]) -> String {
    let out = Command::new("python3")
        .args(["-W", "ignore", "-c", script])
        .args(args)
        .output()
        .expect("python3 with PyJWT is required (scripts/test.sh installs it)");
    assert!(
        out.status.success(),
        "python3 failed (is PyJWT installed?): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyjwt_tokens_on_the_key_endpoint() {
    with_safety_net(async {
        let server = TestServer::start_with_config("[hls]\nsegment_duration_secs = 2\n", |c| {
            c.auth.audience = Some(AUDIENCE.to_owned());
        })
        .await;
        let secret = server.secret.expose_str().unwrap().to_owned();
        let now = now();
        let base = |extra: Value| {
            let mut payload = json!({"exp": now + 600, "stream": "live/demo", "aud": AUDIENCE});
            for (k, v) in extra.as_object().unwrap() {
                if v.is_null() {
                    payload.as_object_mut().unwrap().remove(k);
                } else {
                    payload[k] = v.clone();
                }
            }
            payload
        };
        // (name, payload, key, alg, extra headers, expected status)
        let cases: Vec<(&str, Value, &str, &str, Value, u16)> = vec![
            ("hs256", base(json!({})), "secret", "HS256", Value::Null, 200),
            (
                "hs256 with sub, jti, iat, iss and a kid header",
                base(json!({"sub": "viewer-42", "jti": "j-1", "iat": now, "iss": "backend"})),
                "secret",
                "HS256",
                json!({"kid": "k1"}),
                200,
            ),
            (
                "aud as a list",
                base(json!({"aud": ["cdn", AUDIENCE]})),
                "secret",
                "HS256",
                Value::Null,
                200,
            ),
            (
                "stream pattern",
                base(json!({"stream": "live/*"})),
                "secret",
                "HS256",
                Value::Null,
                200,
            ),
            (
                "nbf in the past",
                base(json!({"nbf": now - 10})),
                "secret",
                "HS256",
                Value::Null,
                200,
            ),
            (
                "float exp from time.time()",
                base(json!({"exp": now as f64 + 600.25})),
                "secret",
                "HS256",
                Value::Null,
                200,
            ),
            (
                "nbf in the future",
                base(json!({"nbf": now + 300})),
                "secret",
                "HS256",
                Value::Null,
                403,
            ),
            (
                "no aud",
                base(json!({"aud": null})),
                "secret",
                "HS256",
                Value::Null,
                403,
            ),
            (
                "wrong aud",
                base(json!({"aud": "someone-else"})),
                "secret",
                "HS256",
                Value::Null,
                403,
            ),
            (
                "expired",
                base(json!({"exp": now - 10})),
                "secret",
                "HS256",
                Value::Null,
                403,
            ),
            (
                "no exp",
                base(json!({"exp": null})),
                "secret",
                "HS256",
                Value::Null,
                403,
            ),
            (
                "wrong stream",
                base(json!({"stream": "live/other"})),
                "secret",
                "HS256",
                Value::Null,
                403,
            ),
            ("wrong secret", base(json!({})), "other", "HS256", Value::Null, 403),
            ("alg none", base(json!({})), "none", "none", Value::Null, 403),
            ("RS256", base(json!({})), "rsa", "RS256", Value::Null, 403),
            ("HS384", base(json!({})), "secret", "HS384", Value::Null, 403),
            ("HS512", base(json!({})), "secret", "HS512", Value::Null, 403),
        ];
        let spec = json!({
            "secret": secret,
            "cases": cases.iter().map(|(name, payload, key, alg, headers, _)| {
                let mut case = json!({"name": name, "payload": payload, "key": key, "alg": alg});
                if !headers.is_null() {
                    case["headers"] = headers.clone();
                }
                case
            }).collect::<Vec<_>>(),
        });
        let tokens: Value = serde_json::from_str(&python(MINT, &[&spec.to_string()])).unwrap();
        let token = |name: &str| tokens[name].as_str().unwrap().to_owned();
        assert!(token("alg none").ends_with('.'), "an unsigned token");
        assert!(token("RS256").starts_with("eyJhbGciOiJSUzI1NiIs"), "an RS256 header");

        // A stream with segments, so key URIs exist.
        let mut push = Command::new("ffmpeg");
        push.args(["-nostdin", "-v", "error", "-i"])
            .arg(fixture("high-bframes-aac48k.flv"))
            .args(["-c", "copy", "-f", "flv"])
            .arg(format!("rtmp://{}/live/{DEMO_KEY}", server.rtmp));
        let pushed = tokio::task::spawn_blocking(move || push.status()).await.unwrap();
        assert!(pushed.expect("ffmpeg is required").success());
        let good = token("hs256");
        let playlist = until_ended(server.http, &format!("/live/demo/index.m3u8?token={good}")).await;
        let parsed = parse_media_playlist(&playlist).unwrap();
        let key_uri = &parsed.segments[0].key.as_ref().unwrap().uri;
        let plain = key_uri.split("&token=").next().unwrap().to_owned();

        for (name, _, _, _, _, want) in &cases {
            let response = http::get(server.http, &format!("{plain}&token={}", token(name))).await;
            assert_eq!(response.status, *want, "{name}");
            if *want == 200 {
                assert_eq!(response.body.len(), 16, "{name}");
            } else {
                assert_eq!(response.text(), "forbidden\n", "{name}: no detail on why");
            }
            // The playlist endpoint applies the same checks.
            let playlist = http::get(server.http, &format!("/live/demo/index.m3u8?token={}", token(name))).await;
            assert_eq!(playlist.status, *want, "playlist, {name}");
        }

        // The other way round: a token sealcast mints, checked by PyJWT.
        let claims = Claims {
            exp: now + 600,
            stream: "live/demo".into(),
            sub: Some("viewer-7".into()),
            jti: Some("j-7".into()),
            recording: None,
        };
        let minted = server.keys.mint_token(&claims);
        let decoded: Value = serde_json::from_str(&python(DECODE, &[&minted, &secret, AUDIENCE])).unwrap();
        assert_eq!(
            decoded,
            json!({"exp": now + 600, "stream": "live/demo", "sub": "viewer-7", "jti": "j-7", "aud": AUDIENCE})
        );
        server.stop().await;
    })
    .await;
}
