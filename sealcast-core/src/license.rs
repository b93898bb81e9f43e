//! The license format of `protection = "web"` streams: a player's request
//! (an ephemeral P-256 public key and the wrapped keys it needs) and the
//! server's answer (each data key sealed to that player). Sans-IO: bytes and
//! randomness come in as arguments. The exact byte layout is specified in
//! docs/protection.md so another player (a mobile SDK) can implement it.
//!
//! Per license: the server makes its own ephemeral P-256 key (NIST SP 800-56A
//! ECDH; the shared secret is the x coordinate, as WebCrypto's `deriveBits`
//! gives it) and a random 32-byte salt. Per key: HKDF-SHA256 (RFC 5869) with
//! that salt and `info = binding`, 32 bytes, is an AES-256-GCM key that seals
//! the 16-byte data key with a random 96-bit IV and `AAD = binding`, where
//! `binding = "sealcast-license-v1" 0x00 stream 0x00 key_id 0x00 expiry(u64 BE)`.
//! Stream names and key ids never contain NUL, so the binding is unambiguous.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SecureRandom;
use ring::{aead, agreement, hkdf};
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::crypto::DataKey;

/// Most keys one license request may ask for (a playlist window with key
/// rotation every segment is well under it).
pub const MAX_KEYS: usize = 64;
/// Largest request body the parser accepts, bytes.
pub const MAX_REQUEST_BYTES: usize = 32 * 1024;
/// The label every binding starts with; a new format gets a new label.
pub const LABEL: &[u8] = b"sealcast-license-v1";
/// The label of an offline license (keys sealed to a persistent device key,
/// docs/protection.md): an online license can never pass for one.
pub const OFFLINE_LABEL: &[u8] = b"sealcast-offline-license-v1";
/// Salt length, bytes.
pub const SALT_LEN: usize = 32;
/// An uncompressed SEC1 P-256 point: 0x04, x, y.
pub const PUBLIC_KEY_LEN: usize = 65;

/// Why a license request was refused. Every variant is the client's fault
/// (HTTP 400) except [`LicenseError::Random`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LicenseError {
    /// Not JSON, or not the request's shape.
    #[error("malformed license request")]
    Malformed,
    /// No key asked for.
    #[error("no keys requested")]
    NoKeys,
    /// More than [`MAX_KEYS`] keys asked for.
    #[error("too many keys requested (at most {MAX_KEYS})")]
    TooManyKeys,
    /// A JWK of another key type or curve.
    #[error("public key is not an EC P-256 key")]
    WrongCurve,
    /// Not an uncompressed point, not on the curve, or the point at infinity.
    #[error("invalid public key")]
    BadPublicKey,
    /// The system's random generator failed.
    #[error("random generator failed")]
    Random,
}

/// One key the player needs: its id and wrapped key, as in the key URI.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRef {
    pub key_id: String,
    /// The wrapped key, base64url as in the key URI's `edk`.
    pub edk: String,
}

/// A parsed license request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The player's ephemeral public key, uncompressed (65 bytes); its
    /// place on the curve is checked by the ECDH in [`seal`].
    pub public_key: Vec<u8>,
    pub keys: Vec<KeyRef>,
    /// `"offline": true`: an offline license, sealed to a persistent device
    /// key and bound with [`OFFLINE_LABEL`].
    pub offline: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRequest {
    public_key: PublicKeyField,
    keys: Vec<KeyRef>,
    #[serde(default)]
    offline: bool,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum PublicKeyField {
    /// base64url of the 65-byte uncompressed point (WebCrypto `exportKey("raw")`).
    Raw(String),
    /// RFC 7517/7518 6.2.1 JWK (WebCrypto `exportKey("jwk")`); other members ignored.
    Jwk {
        kty: String,
        crv: String,
        x: String,
        y: String,
    },
}

/// Parses a request body (JSON, see docs/protection.md).
pub fn parse_request(body: &[u8]) -> Result<Request, LicenseError> {
    if body.len() > MAX_REQUEST_BYTES {
        return Err(LicenseError::TooManyKeys);
    }
    let raw: RawRequest = serde_json::from_slice(body).map_err(|_| LicenseError::Malformed)?;
    if raw.keys.is_empty() {
        return Err(LicenseError::NoKeys);
    }
    if raw.keys.len() > MAX_KEYS {
        return Err(LicenseError::TooManyKeys);
    }
    let public_key = match raw.public_key {
        PublicKeyField::Raw(text) => decode(&text)?,
        PublicKeyField::Jwk { kty, crv, x, y } => {
            if kty != "EC" || crv != "P-256" {
                return Err(LicenseError::WrongCurve);
            }
            let (x, y) = (decode(&x)?, decode(&y)?);
            if x.len() != 32 || y.len() != 32 {
                return Err(LicenseError::BadPublicKey);
            }
            [&[0x04][..], &x, &y].concat()
        }
    };
    if public_key.len() != PUBLIC_KEY_LEN || public_key[0] != 0x04 {
        return Err(LicenseError::BadPublicKey);
    }
    Ok(Request {
        public_key,
        keys: raw.keys,
        offline: raw.offline,
    })
}

fn decode(text: &str) -> Result<Vec<u8>, LicenseError> {
    URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .map_err(|_| LicenseError::BadPublicKey)
}

/// `"sealcast-license-v1" 0x00 stream 0x00 key_id 0x00 expiry (u64 BE)`:
/// the HKDF info and the AES-GCM AAD of one key.
pub fn binding(stream: &str, key_id: &str, expires_unix_secs: u64) -> Vec<u8> {
    labelled_binding(LABEL, stream, key_id, expires_unix_secs)
}

/// [`binding`] with another label ([`OFFLINE_LABEL`]).
pub fn labelled_binding(label: &[u8], stream: &str, key_id: &str, expires_unix_secs: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(label.len() + stream.len() + key_id.len() + 11);
    out.extend_from_slice(label);
    out.push(0);
    out.extend_from_slice(stream.as_bytes());
    out.push(0);
    out.extend_from_slice(key_id.as_bytes());
    out.push(0);
    out.extend_from_slice(&expires_unix_secs.to_be_bytes());
    out
}

/// One data key sealed to the player.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedKey {
    pub key_id: String,
    pub iv: [u8; 12],
    /// The 16 encrypted bytes followed by the 16-byte GCM tag.
    pub ciphertext: Vec<u8>,
}

/// A license: what the server answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct License {
    /// The server's ephemeral public key, uncompressed (65 bytes).
    pub server_public_key: Vec<u8>,
    pub salt: [u8; SALT_LEN],
    pub expires_unix_secs: u64,
    pub keys: Vec<SealedKey>,
    /// Bound with [`OFFLINE_LABEL`]; the JSON says `"offline": true`.
    pub offline: bool,
}

impl License {
    /// The answer's JSON (docs/protection.md): byte strings base64url
    /// without padding.
    pub fn to_json(&self) -> String {
        let keys: Vec<serde_json::Value> = (self.keys.iter())
            .map(|k| {
                serde_json::json!({
                    "key_id": k.key_id,
                    "iv": URL_SAFE_NO_PAD.encode(k.iv),
                    "ciphertext": URL_SAFE_NO_PAD.encode(&k.ciphertext),
                })
            })
            .collect();
        let mut json = serde_json::json!({
            "version": 1,
            "server_public_key": URL_SAFE_NO_PAD.encode(&self.server_public_key),
            "salt": URL_SAFE_NO_PAD.encode(self.salt),
            "expires_unix_secs": self.expires_unix_secs,
            "keys": keys,
        });
        if self.offline {
            json["offline"] = serde_json::Value::Bool(true);
        }
        json.to_string()
    }
}

/// Seals each `(key_id, data key)` for the holder of `peer_public_key`,
/// bound to `stream` and `expires_unix_secs`: [`Sealer::new`] then
/// [`Sealer::seal`].
pub fn seal(
    rng: &dyn SecureRandom,
    peer_public_key: &[u8],
    stream: &str,
    expires_unix_secs: u64,
    keys: &[(&str, &DataKey)],
) -> Result<License, LicenseError> {
    Sealer::new(rng, peer_public_key)?.seal(rng, stream, expires_unix_secs, keys)
}

/// The ECDH done, the HKDF extracted: ready to seal keys. Made before any
/// key is unwrapped, so a bad public key costs no KMS call.
pub struct Sealer {
    prk: hkdf::Prk,
    server_public_key: Vec<u8>,
    salt: [u8; SALT_LEN],
}

impl Sealer {
    /// A fresh server key pair and salt, agreed with `peer_public_key`. The
    /// server's private key lives only inside this call (ring's
    /// `EphemeralPrivateKey` cannot be used twice). ring does not zeroize its
    /// ECDH scalar, shared secret or HMAC state (its own comments say so);
    /// they guard only this license's copy of keys that the key cache holds
    /// in the same process anyway. Our own copies of data keys are zeroized.
    pub fn new(rng: &dyn SecureRandom, peer_public_key: &[u8]) -> Result<Self, LicenseError> {
        let private =
            agreement::EphemeralPrivateKey::generate(&agreement::ECDH_P256, rng).map_err(|_| LicenseError::Random)?;
        let server_public_key = (private.compute_public_key())
            .map_err(|_| LicenseError::Random)?
            .as_ref()
            .to_vec();
        let mut salt = [0u8; SALT_LEN];
        rng.fill(&mut salt).map_err(|_| LicenseError::Random)?;
        let peer = agreement::UnparsedPublicKey::new(&agreement::ECDH_P256, peer_public_key);
        // ring checks the point (on the curve, not infinity) before agreeing.
        let prk = agreement::agree_ephemeral(private, &peer, |shared| {
            hkdf::Salt::new(hkdf::HKDF_SHA256, &salt).extract(shared)
        })
        .map_err(|_| LicenseError::BadPublicKey)?;
        Ok(Self {
            prk,
            server_public_key,
            salt,
        })
    }

    /// Each data key sealed under its own HKDF key and a random IV.
    pub fn seal(
        self,
        rng: &dyn SecureRandom,
        stream: &str,
        expires_unix_secs: u64,
        keys: &[(&str, &DataKey)],
    ) -> Result<License, LicenseError> {
        self.seal_as(rng, false, stream, expires_unix_secs, keys)
    }

    /// [`Sealer::seal`] for an online license or, with `offline`, an
    /// offline one (bound with [`OFFLINE_LABEL`] instead of [`LABEL`]).
    pub fn seal_as(
        self,
        rng: &dyn SecureRandom,
        offline: bool,
        stream: &str,
        expires_unix_secs: u64,
        keys: &[(&str, &DataKey)],
    ) -> Result<License, LicenseError> {
        let label = if offline { OFFLINE_LABEL } else { LABEL };
        let mut sealed = Vec::with_capacity(keys.len());
        for (key_id, data_key) in keys {
            let mut iv = [0u8; 12];
            rng.fill(&mut iv).map_err(|_| LicenseError::Random)?;
            let info = labelled_binding(label, stream, key_id, expires_unix_secs);
            let aead_key = aead_key(&self.prk, &info)?;
            let mut buf = Zeroizing::new(Vec::with_capacity(16 + aead::AES_256_GCM.tag_len()));
            buf.extend_from_slice(data_key.as_bytes());
            aead_key
                .seal_in_place_append_tag(
                    aead::Nonce::assume_unique_for_key(iv),
                    aead::Aad::from(&info),
                    &mut *buf,
                )
                .map_err(|_| LicenseError::Random)?;
            sealed.push(SealedKey {
                key_id: (*key_id).to_owned(),
                iv,
                ciphertext: buf.to_vec(),
            });
        }
        Ok(License {
            server_public_key: self.server_public_key,
            salt: self.salt,
            expires_unix_secs,
            keys: sealed,
            offline,
        })
    }
}

/// HKDF-Expand(prk, info, 32) as an AES-256-GCM key (RFC 5869 2.3).
pub fn aead_key(prk: &hkdf::Prk, info: &[u8]) -> Result<aead::LessSafeKey, LicenseError> {
    let info = [info];
    let okm = prk
        .expand(&info, &aead::AES_256_GCM)
        .map_err(|_| LicenseError::Random)?;
    Ok(aead::LessSafeKey::new(aead::UnboundKey::from(okm)))
}

#[cfg(test)]
mod tests;
