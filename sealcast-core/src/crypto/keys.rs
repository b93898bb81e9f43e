//! Key types: data keys, master keys, wrapped keys, key ids and the encryption
//! context that binds a wrapped key to its stream.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::aead;
use ring::rand::SecureRandom;
use zeroize::Zeroize;

use super::Error;

/// A 16-byte AES-128 data key: the key one or more segments are encrypted under.
///
/// The bytes live in their own heap allocation, so moving a `DataKey` moves a
/// pointer and leaves no copy of the key behind; they are zeroized on drop (every
/// clone too). `Debug` prints `DataKey(..)`; there is no `Display` and no `Serialize`,
/// so a data key cannot end up in a log line or on disk by accident.
pub struct DataKey(Box<[u8; 16]>);

impl DataKey {
    /// Length of an AES-128 key in bytes.
    pub const LEN: usize = 16;

    /// Wraps known key bytes (from a KMS response or a test vector).
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        let mut bytes = bytes;
        let key = Self(Box::new(bytes));
        // `bytes` is a copy on this stack frame; don't leave it behind.
        bytes.zeroize();
        key
    }

    /// Draws a fresh key from `rng`.
    pub fn generate(rng: &dyn SecureRandom) -> Result<Self, Error> {
        let mut key = Self::zeroed();
        rng.fill(&mut key.0[..]).map_err(|_| Error::Random)?;
        Ok(key)
    }

    /// The raw key bytes, for the cipher and for a key endpoint's response body.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// An all-zero key to be filled in place, so key bytes are written once, straight
    /// into their final home.
    pub(super) fn zeroed() -> Self {
        Self(Box::new([0; 16]))
    }

    pub(super) fn as_mut_bytes(&mut self) -> &mut [u8; 16] {
        &mut self.0
    }
}

impl Clone for DataKey {
    fn clone(&self) -> Self {
        let mut key = Self::zeroed();
        key.0.copy_from_slice(&self.0[..]);
        key
    }
}

impl Drop for DataKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(..)")
    }
}

/// A 32-byte AES-256 master key of the local KMS, which wraps data keys.
///
/// The raw bytes are zeroized on drop. The expanded AES-GCM key schedule is kept
/// next to them so each wrap or unwrap does not expand the key again (and leave
/// another schedule on the stack); *ring* does not zeroize that schedule, which is
/// the one copy of key-derived material this type cannot scrub.
pub struct MasterKey {
    bytes: Box<[u8; 32]>,
    aead: aead::LessSafeKey,
}

impl MasterKey {
    /// Length of an AES-256 key in bytes.
    pub const LEN: usize = 32;

    /// Wraps known key bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        let mut bytes = bytes;
        let key = Self::from_boxed(Box::new(bytes));
        bytes.zeroize();
        key
    }

    /// Copies key bytes from a slice (such as a decoded keyring entry) straight into
    /// the key's own allocation.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, Error> {
        let mut boxed = Box::new([0u8; 32]);
        if bytes.len() != boxed.len() {
            return Err(Error::MasterKeyLength(bytes.len()));
        }
        boxed.copy_from_slice(bytes);
        Ok(Self::from_boxed(boxed))
    }

    /// Draws a fresh master key from `rng`.
    pub fn generate(rng: &dyn SecureRandom) -> Result<Self, Error> {
        let mut boxed = Box::new([0u8; 32]);
        if rng.fill(&mut boxed[..]).is_err() {
            boxed.zeroize();
            return Err(Error::Random);
        }
        Ok(Self::from_boxed(boxed))
    }

    /// The raw key bytes, for writing the keyring.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.bytes
    }

    pub(super) fn aead(&self) -> &aead::LessSafeKey {
        &self.aead
    }

    fn from_boxed(bytes: Box<[u8; 32]>) -> Self {
        // UnboundKey::new fails only when the key length differs from the
        // algorithm's; AES-256-GCM takes 32 bytes and `bytes` is a [u8; 32].
        #[allow(clippy::expect_used)]
        let unbound =
            aead::UnboundKey::new(&aead::AES_256_GCM, &bytes[..]).expect("AES-256-GCM key length is 32 bytes");
        Self {
            bytes,
            aead: aead::LessSafeKey::new(unbound),
        }
    }
}

impl Drop for MasterKey {
    fn drop(&mut self) {
        self.bytes.zeroize();
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

/// The ciphertext form of a data key: opaque bytes from a KMS. This is the only
/// form of a data key that is stored or sent; its text form (in the key URI's
/// `edk=` parameter) is unpadded base64url (RFC 4648 section 5).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct WrappedKey(Vec<u8>);

impl WrappedKey {
    /// Longest wrapped key accepted from text, in bytes. Cloud KMS ciphertext blobs
    /// are a few hundred bytes; the local envelope is 49.
    pub const MAX_LEN: usize = 1024;

    /// Longest text form of a [`Self::MAX_LEN`]-byte key: ceil(1024 * 4 / 3).
    const MAX_TEXT_LEN: usize = (Self::MAX_LEN * 4).div_ceil(3);

    /// Wraps bytes a KMS returned.
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// The ciphertext bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The text form: unpadded base64url.
    pub fn to_base64url(&self) -> String {
        URL_SAFE_NO_PAD.encode(&self.0)
    }

    /// Parses the text form. Rejects padding, characters outside the base64url
    /// alphabet, non-canonical trailing bits, an empty key and keys over
    /// [`Self::MAX_LEN`] bytes (checked before decoding, so a huge query string costs
    /// nothing).
    pub fn from_base64url(text: &str) -> Result<Self, Error> {
        if text.len() > Self::MAX_TEXT_LEN {
            // Unpadded base64 of n characters decodes to floor(n * 3 / 4) bytes.
            return Err(Error::WrappedKeyLength(text.len() * 3 / 4));
        }
        let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| Error::WrappedKeyEncoding)?;
        if bytes.is_empty() || bytes.len() > Self::MAX_LEN {
            return Err(Error::WrappedKeyLength(bytes.len()));
        }
        Ok(Self(bytes))
    }
}

impl fmt::Debug for WrappedKey {
    /// Ciphertext is not secret; printing it helps match log lines to key URIs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WrappedKey({})", self.to_base64url())
    }
}

/// Identifies a data key within a stream; appears in key URIs
/// (`/keys/{app}/{stream}/{key_id}`), so it is restricted to 1..=64 characters
/// of `[A-Za-z0-9_-]`, which need no escaping in a URL path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyId(String);

impl KeyId {
    /// Longest key id, in characters.
    pub const MAX_LEN: usize = 64;

    /// Validates `id`.
    pub fn new(id: &str) -> Result<Self, Error> {
        let valid_char = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'-';
        if id.is_empty() || id.len() > Self::MAX_LEN || !id.bytes().all(valid_char) {
            return Err(Error::InvalidKeyId);
        }
        Ok(Self(id.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for KeyId {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        Self::new(s)
    }
}

impl AsRef<str> for KeyId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// The authenticated context a data key is wrapped under: a small sorted map with at
/// least `stream` (`app/name`) and `key_id`. It is not secret; it is bound to the
/// wrapped key (AES-GCM AAD locally, the `EncryptionContext` of AWS KMS), so the
/// wrapped key of one stream or key id does not unwrap for another.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EncryptionContext(BTreeMap<String, String>);

impl EncryptionContext {
    /// Context key naming the stream, `app/name`.
    pub const STREAM: &'static str = "stream";
    /// Context key naming the key id.
    pub const KEY_ID: &'static str = "key_id";

    /// The context of data key `key_id` of `stream` (`app/name`).
    pub fn new(stream: &str, key_id: &KeyId) -> Self {
        let mut map = BTreeMap::new();
        map.insert(Self::STREAM.to_owned(), stream.to_owned());
        map.insert(Self::KEY_ID.to_owned(), key_id.as_str().to_owned());
        Self(map)
    }

    /// The value under `key`, if any.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// The pairs in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Canonical byte encoding, used as AEAD associated data: for each pair in key
    /// order, `len(key) u64 BE || key || len(value) u64 BE || value`. Length prefixes
    /// make it unambiguous (`{"ab": "c"}` and `{"a": "bc"}` differ), and the map's
    /// order makes it independent of insertion order.
    pub fn to_aad(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.aad_len());
        self.extend_aad(&mut out);
        out
    }

    /// Length of [`EncryptionContext::to_aad`].
    pub fn aad_len(&self) -> usize {
        self.0.iter().map(|(k, v)| 16 + k.len() + v.len()).sum()
    }

    /// Appends [`EncryptionContext::to_aad`] to `out`, for callers that
    /// build a larger byte string around it.
    pub fn extend_aad(&self, out: &mut Vec<u8>) {
        for (k, v) in &self.0 {
            for part in [k, v] {
                out.extend_from_slice(&(part.len() as u64).to_be_bytes());
                out.extend_from_slice(part.as_bytes());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;

    #[test]
    fn key_id_validation() {
        let long_ok = "a".repeat(64);
        let too_long = "a".repeat(65);
        let cases: &[(&str, bool)] = &[
            ("k1", true),
            ("a", true),
            ("AZaz09_-", true),
            ("20260101T000000-3f2a", true),
            (&long_ok, true),
            ("", false),
            (&too_long, false),
            ("a b", false),
            ("a/b", false),
            ("a.b", false),
            ("a?b", false),
            ("%41", false),
            ("é", false),
            ("a\0", false),
            ("a\n", false),
        ];
        for (input, ok) in cases {
            let got = KeyId::new(input);
            assert_eq!(got.is_ok(), *ok, "KeyId::new({input:?}) = {got:?}");
            if *ok {
                let id = got.unwrap();
                assert_eq!(id.as_str(), *input);
                assert_eq!(id.to_string(), *input);
                assert_eq!(input.parse::<KeyId>().unwrap(), id);
            } else {
                assert_eq!(got, Err(Error::InvalidKeyId));
            }
        }
    }

    #[test]
    fn base64url_round_trip() {
        let cases: &[(&[u8], &str)] = &[
            (&[0x00], "AA"),
            (&[0xfb, 0xff], "-_8"),
            (&[0xfb, 0xff, 0xbf], "-_-_"),
            (b"sealcast", "c2VhbGNhc3Q"),
        ];
        for (bytes, text) in cases {
            let w = WrappedKey::from_bytes(bytes.to_vec());
            assert_eq!(w.to_base64url(), *text);
            let back = WrappedKey::from_base64url(text).unwrap();
            assert_eq!(back.as_bytes(), *bytes);
            assert_eq!(back, w);
        }
        let max = WrappedKey::from_bytes(vec![0xa5; WrappedKey::MAX_LEN]);
        let text = max.to_base64url();
        assert_eq!(text.len(), 1366);
        assert_eq!(WrappedKey::from_base64url(&text).unwrap(), max);
    }

    #[test]
    fn base64url_rejects_bad_input() {
        let too_long = WrappedKey::from_bytes(vec![0; WrappedKey::MAX_LEN + 1]).to_base64url();
        let way_too_long = "A".repeat(100_000);
        let cases: &[(&str, Error)] = &[
            ("", Error::WrappedKeyLength(0)),
            ("AA==", Error::WrappedKeyEncoding),
            ("AA=", Error::WrappedKeyEncoding),
            ("+/8", Error::WrappedKeyEncoding),
            ("A", Error::WrappedKeyEncoding),
            // Non-canonical: the last character carries set bits past the last byte.
            ("AB", Error::WrappedKeyEncoding),
            ("c2Vh bGNh", Error::WrappedKeyEncoding),
            ("c2Vh\nbGNh", Error::WrappedKeyEncoding),
            ("c2Vh%62", Error::WrappedKeyEncoding),
            (&too_long, Error::WrappedKeyLength(1025)),
            (&way_too_long, Error::WrappedKeyLength(75_000)),
        ];
        for (text, want) in cases {
            assert_eq!(
                WrappedKey::from_base64url(text).as_ref().map(|_| ()),
                Err(want),
                "{:?}",
                &text[..text.len().min(40)]
            );
        }
    }

    #[test]
    fn secrets_do_not_leak_through_debug() {
        let data = DataKey::from_bytes([0xab; 16]);
        assert_eq!(format!("{data:?}"), "DataKey(..)");
        assert_eq!(format!("{data:#?}"), "DataKey(..)");
        let master = MasterKey::from_bytes([0xcd; 32]);
        assert_eq!(format!("{master:?}"), "MasterKey(..)");
        let generated = DataKey::generate(&SystemRandom::new()).unwrap();
        assert_eq!(format!("{:?}", Some(generated)), "Some(DataKey(..))");
    }

    #[test]
    fn data_key_accessors_and_clone() {
        let key = DataKey::from_bytes(*b"0123456789abcdef");
        let copy = key.clone();
        drop(key);
        assert_eq!(copy.as_bytes(), b"0123456789abcdef");

        let rng = SystemRandom::new();
        let a = DataKey::generate(&rng).unwrap();
        let b = DataKey::generate(&rng).unwrap();
        assert_ne!(a.as_bytes(), b.as_bytes());
        assert_ne!(a.as_bytes(), &[0; 16]);
    }

    #[test]
    fn master_key_from_slice() {
        let key = MasterKey::from_slice(&[7; 32]).unwrap();
        assert_eq!(key.as_bytes(), &[7; 32]);
        assert_eq!(
            MasterKey::from_slice(&[7; 31]).map(|_| ()),
            Err(Error::MasterKeyLength(31))
        );
        assert_eq!(MasterKey::from_slice(&[]).map(|_| ()), Err(Error::MasterKeyLength(0)));
        let a = MasterKey::generate(&SystemRandom::new()).unwrap();
        assert_ne!(a.as_bytes(), &[0; 32]);
    }

    #[test]
    fn context_aad_is_canonical() {
        let id = KeyId::new("k1").unwrap();
        let ctx = EncryptionContext::new("live/cam", &id);
        assert_eq!(ctx.get("stream"), Some("live/cam"));
        assert_eq!(ctx.get("key_id"), Some("k1"));
        assert_eq!(ctx.get("other"), None);
        assert_eq!(
            ctx.iter().collect::<Vec<_>>(),
            [("key_id", "k1"), ("stream", "live/cam")]
        );
        let mut want = Vec::new();
        want.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 6]);
        want.extend_from_slice(b"key_id");
        want.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 2]);
        want.extend_from_slice(b"k1");
        want.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 6]);
        want.extend_from_slice(b"stream");
        want.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 8]);
        want.extend_from_slice(b"live/cam");
        assert_eq!(ctx.to_aad(), want);

        // Moving a character across the pair boundary changes the encoding.
        let a = EncryptionContext::new("live/ab", &KeyId::new("c").unwrap());
        let b = EncryptionContext::new("live/a", &KeyId::new("bc").unwrap());
        assert_ne!(a.to_aad(), b.to_aad());
    }
}
