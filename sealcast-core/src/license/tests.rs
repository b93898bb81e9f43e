use ring::rand::SystemRandom;
use ring::{aead, agreement, hkdf};

use super::*;

const STREAM: &str = "live/demo";

/// A player written with ring: its key pair and the request it sends.
fn player(rng: &SystemRandom) -> (agreement::EphemeralPrivateKey, Vec<u8>) {
    let private = agreement::EphemeralPrivateKey::generate(&agreement::ECDH_P256, rng).unwrap();
    let public = private.compute_public_key().unwrap().as_ref().to_vec();
    (private, public)
}

/// What the player does with a license: ECDH, HKDF, AES-GCM open of each
/// key with the binding it expects.
fn open(
    private: agreement::EphemeralPrivateKey,
    license: &License,
    stream: &str,
    expires: u64,
) -> Vec<Result<[u8; 16], ()>> {
    open_labelled(LABEL, private, license, stream, expires)
}

/// [`open`] with the binding's label given (online or offline).
fn open_labelled(
    label: &[u8],
    private: agreement::EphemeralPrivateKey,
    license: &License,
    stream: &str,
    expires: u64,
) -> Vec<Result<[u8; 16], ()>> {
    let peer = agreement::UnparsedPublicKey::new(&agreement::ECDH_P256, &license.server_public_key);
    let prk = agreement::agree_ephemeral(private, &peer, |shared| {
        hkdf::Salt::new(hkdf::HKDF_SHA256, &license.salt).extract(shared)
    })
    .unwrap();
    (license.keys.iter())
        .map(|k| {
            let info = labelled_binding(label, stream, &k.key_id, expires);
            let key = aead_key(&prk, &info).unwrap();
            let mut buf = k.ciphertext.clone();
            let plain = key
                .open_in_place(
                    aead::Nonce::assume_unique_for_key(k.iv),
                    aead::Aad::from(&info),
                    &mut buf,
                )
                .map_err(|_| ())?;
            Ok(<[u8; 16]>::try_from(&plain[..]).unwrap())
        })
        .collect()
}

fn request_json(public: &[u8], keys: usize) -> String {
    let keys: Vec<String> = (0..keys)
        .map(|i| format!(r#"{{"key_id":"k{i}","edk":"AAAA"}}"#))
        .collect();
    format!(
        r#"{{"public_key":"{}","keys":[{}]}}"#,
        URL_SAFE_NO_PAD.encode(public),
        keys.join(",")
    )
}

#[test]
fn a_player_recovers_every_key_and_nothing_else() {
    let rng = SystemRandom::new();
    let (private, public) = player(&rng);
    let request = parse_request(request_json(&public, 2).as_bytes()).unwrap();
    assert_eq!(request.public_key, public);
    let (a, b) = (DataKey::from_bytes([7; 16]), DataKey::from_bytes([9; 16]));
    let license = seal(&rng, &request.public_key, STREAM, 1_000, &[("k0", &a), ("k1", &b)]).unwrap();
    assert_eq!(license.keys.len(), 2);
    assert!(license.keys.iter().all(|k| k.ciphertext.len() == 32));
    // The data key is not in the license in the clear.
    let json = license.to_json();
    assert!(!json.contains(&URL_SAFE_NO_PAD.encode([7u8; 16])), "{json}");
    assert_eq!(open(private, &license, STREAM, 1_000), vec![Ok([7; 16]), Ok([9; 16])]);
}

/// The binding is authenticated: a player that assumes another expiry, stream
/// or key id (or a license whose fields were edited) opens nothing.
#[test]
fn a_changed_binding_or_ciphertext_opens_nothing() {
    let rng = SystemRandom::new();
    let key = DataKey::from_bytes([3; 16]);
    // (case, stream the player binds, expiry it binds, edit to the license)
    type Edit = fn(&mut License);
    let cases: [(&str, &str, u64, Edit); 5] = [
        ("expiry", STREAM, 1_001, |_| {}),
        ("stream", "live/other", 1_000, |_| {}),
        ("key id", STREAM, 1_000, |l| l.keys[0].key_id = "k1".into()),
        ("ciphertext", STREAM, 1_000, |l| l.keys[0].ciphertext[0] ^= 1),
        ("salt", STREAM, 1_000, |l| l.salt[0] ^= 1),
    ];
    for (case, stream, expires, edit) in cases {
        let (private, public) = player(&rng);
        let mut license = seal(&rng, &public, STREAM, 1_000, &[("k0", &key)]).unwrap();
        edit(&mut license);
        assert_eq!(open(private, &license, stream, expires), vec![Err(())], "{case}");
    }
}

#[test]
fn hostile_requests_are_refused() {
    let rng = SystemRandom::new();
    let (_, public) = player(&rng);
    let jwk = |crv: &str| {
        format!(
            r#"{{"public_key":{{"kty":"EC","crv":"{crv}","x":"{}","y":"{}","ext":true}},"keys":[{{"key_id":"k","edk":"A"}}]}}"#,
            URL_SAFE_NO_PAD.encode(&public[1..33]),
            URL_SAFE_NO_PAD.encode(&public[33..])
        )
    };
    assert_eq!(parse_request(jwk("P-256").as_bytes()).unwrap().public_key, public);
    let mut compressed = public[..33].to_vec();
    compressed[0] = 2;
    let cases: Vec<(&str, String, LicenseError)> = vec![
        ("not json", "{".into(), LicenseError::Malformed),
        ("array", "[]".into(), LicenseError::Malformed),
        (
            "unknown field",
            request_json(&public, 1).replace("{\"public_key\"", "{\"x\":1,\"public_key\""),
            LicenseError::Malformed,
        ),
        ("no keys", request_json(&public, 0), LicenseError::NoKeys),
        (
            "too many",
            request_json(&public, MAX_KEYS + 1),
            LicenseError::TooManyKeys,
        ),
        ("P-384 JWK", jwk("P-384"), LicenseError::WrongCurve),
        (
            "compressed point",
            request_json(&compressed, 1),
            LicenseError::BadPublicKey,
        ),
        (
            "not base64",
            request_json(&public, 1).replace(&URL_SAFE_NO_PAD.encode(&public), "!!"),
            LicenseError::BadPublicKey,
        ),
        ("huge", "x".repeat(MAX_REQUEST_BYTES + 1), LicenseError::TooManyKeys),
    ];
    for (case, body, expected) in cases {
        assert_eq!(parse_request(body.as_bytes()).err(), Some(expected), "{case}");
    }
    assert!(parse_request(request_json(&public, MAX_KEYS).as_bytes()).is_ok());
    // Well-formed but off the curve, or the point at infinity's stand-in:
    // the ECDH refuses them.
    let key = DataKey::from_bytes([1; 16]);
    let mut off_curve = public.clone();
    off_curve[64] ^= 1;
    let mut zero = vec![0u8; PUBLIC_KEY_LEN];
    zero[0] = 4;
    for (case, point) in [("off the curve", off_curve), ("zero point", zero)] {
        let request = parse_request(request_json(&point, 1).as_bytes()).unwrap();
        let refused = seal(&rng, &request.public_key, STREAM, 1, &[("k0", &key)]).err();
        assert_eq!(refused, Some(LicenseError::BadPublicKey), "{case}");
    }
}

#[test]
fn binding_layout() {
    let b = binding("live/demo", "k1", 0x0102);
    assert_eq!(b, b"sealcast-license-v1\0live/demo\0k1\0\0\0\0\0\0\0\x01\x02".to_vec());
}

/// The worked example of docs/protection.md: fixed "random" bytes (the
/// server's private scalar, salt and IV all 0x11 bytes; the player's scalar
/// 0x22 bytes), so another implementation can check itself step by step.
#[test]
#[allow(deprecated)] // ring's fixed-output generator lives in its deprecated `test` module.
fn worked_example() {
    use ring::test::rand::FixedByteRandom;
    struct Len32;
    impl hkdf::KeyType for Len32 {
        fn len(&self) -> usize {
            32
        }
    }
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let server_rng = FixedByteRandom { byte: 0x11 };
    let player_private =
        agreement::EphemeralPrivateKey::generate(&agreement::ECDH_P256, &FixedByteRandom { byte: 0x22 }).unwrap();
    let player_public = player_private.compute_public_key().unwrap().as_ref().to_vec();
    let data_key = DataKey::from_bytes(*b"\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f");
    let license = seal(&server_rng, &player_public, STREAM, 1_700_000_000, &[("k1", &data_key)]).unwrap();
    let info = binding(STREAM, "k1", 1_700_000_000);
    let peer = agreement::UnparsedPublicKey::new(&agreement::ECDH_P256, license.server_public_key.clone());
    let (shared, okm) = agreement::agree_ephemeral(player_private, &peer, |shared| {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, &license.salt).extract(shared);
        let mut okm = [0u8; 32];
        prk.expand(&[&info], Len32).unwrap().fill(&mut okm).unwrap();
        (shared.to_vec(), okm)
    })
    .unwrap();
    let lines = [
        format!("player public key  {}", hex(&player_public)),
        format!("server public key  {}", hex(&license.server_public_key)),
        format!("ECDH shared secret {}", hex(&shared)),
        format!("info = AAD         {}", hex(&info)),
        format!("HKDF output (OKM)  {}", hex(&okm)),
        format!("ciphertext || tag  {}", hex(&license.keys[0].ciphertext)),
    ];
    let text = lines.join("\n");
    println!("{text}\n{}", license.to_json());
    assert_eq!(text, EXPECTED.trim(), "{text}");
}

const EXPECTED: &str = "
player public key  04d65a93977caa3d1b081852ff57a79e465f1660577304baead505dd3a48589cf350185e895372df6221ea3a137557e473fddb6755f05bd507c3c533fce9c91285
server public key  040217e617f0b6443928278f96999e69a23a4f2c152bdf6d6cdf66e5b80282d4ed194a7debcb97712d2dda3ca85aa8765a56f45fc758599652f2897c65306e5794
ECDH shared secret ccfc261f58193c98ca4ad4a53bbac6f0ee29bc4d48438090446908622ca79af6
info = AAD         7365616c636173742d6c6963656e73652d7631006c6976652f64656d6f006b3100000000006553f100
HKDF output (OKM)  7d08385c73261663bc54ee5df00d5e2ddef49daef86abbe08e1233206187d899
ciphertext || tag  03383a7078e53929eb7ac56848ac943edf2ebb0538af73c31ab0ceeb1049e1aa
";

/// An offline license opens only as one: a player that assumes the online
/// label (or an online license passed off as offline) opens nothing, nor
/// does one that assumes a later expiry (a license cannot be extended).
#[test]
fn an_offline_license_opens_only_as_offline_and_only_until_its_expiry() {
    let rng = SystemRandom::new();
    let key = DataKey::from_bytes([5; 16]);
    let (_, public) = player(&rng);
    let body = request_json(&public, 1).replace("\"keys\"", "\"offline\":true,\"keys\"");
    assert!(parse_request(body.as_bytes()).unwrap().offline);
    assert!(!parse_request(request_json(&public, 1).as_bytes()).unwrap().offline);
    let not_bool = request_json(&public, 1).replace("\"keys\"", "\"offline\":1,\"keys\"");
    assert_eq!(parse_request(not_bool.as_bytes()), Err(LicenseError::Malformed));
    // (case, sealed offline, label the player assumes, expiry it assumes, opens)
    let cases: [(&str, bool, &[u8], u64, bool); 5] = [
        ("offline as offline", true, OFFLINE_LABEL, 1_000, true),
        ("offline as online", true, LABEL, 1_000, false),
        ("online as offline", false, OFFLINE_LABEL, 1_000, false),
        ("offline, extended", true, OFFLINE_LABEL, 999_999, false),
        ("online as online", false, LABEL, 1_000, true),
    ];
    for (case, offline, label, expires, opens) in cases {
        let (private, public) = player(&rng);
        let license = Sealer::new(&rng, &public)
            .unwrap()
            .seal_as(&rng, offline, STREAM, 1_000, &[("k0", &key)])
            .unwrap();
        assert_eq!(license.to_json().contains("\"offline\":true"), offline, "{case}");
        let want = if opens { vec![Ok([5; 16])] } else { vec![Err(())] };
        assert_eq!(open_labelled(label, private, &license, STREAM, expires), want, "{case}");
    }
}
