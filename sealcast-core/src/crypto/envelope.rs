//! The local KMS's envelope: a data key sealed under a master key with AES-256-GCM.
//!
//! Wrapped key layout (49 bytes, 66 characters of base64url):
//! ```text
//! [format 0x01][master version u32 BE][nonce 12][ciphertext 16][tag 16]
//! ```
//! The AAD is `header (format + version) || EncryptionContext::to_aad()`, so neither
//! the stream, the key id nor the master version can be swapped without the tag
//! failing. Nonces are random (96 bits); with one wrap per data key that stays far
//! below the 2^32 invocations NIST SP 800-38D section 8.3 allows per master key, and
//! rotating the master key resets the count.

use ring::aead::{Aad, Nonce};
use ring::rand::SecureRandom;
use zeroize::Zeroizing;

use super::{DataKey, EncryptionContext, Error, MasterKey, WrappedKey};

/// Format byte of the only envelope layout so far.
const FORMAT_V1: u8 = 0x01;
/// Format byte plus master version.
const HEADER_LEN: usize = 1 + 4;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
/// Length of a wrapped key in the local envelope format.
pub const WRAPPED_KEY_LEN: usize = HEADER_LEN + NONCE_LEN + DataKey::LEN + TAG_LEN;

/// Seals `key` under master key `master` (version `master_version`), bound to `ctx`.
pub fn seal_data_key(
    master: &MasterKey,
    master_version: u32,
    key: &DataKey,
    ctx: &EncryptionContext,
    rng: &dyn SecureRandom,
) -> Result<WrappedKey, Error> {
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill(&mut nonce).map_err(|_| Error::Random)?;

    let mut header = [0u8; HEADER_LEN];
    header[0] = FORMAT_V1;
    header[1..].copy_from_slice(&master_version.to_be_bytes());
    let aad = aad(&header, ctx);

    // Built at its final capacity so it never reallocates (which would leave a copy
    // of the plaintext key behind); zeroized unless sealing succeeds.
    let mut out = Zeroizing::new(Vec::with_capacity(WRAPPED_KEY_LEN));
    out.extend_from_slice(&header);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(key.as_bytes());
    let sealed = out
        .get_mut(HEADER_LEN + NONCE_LEN..)
        .ok_or(Error::EnvelopeLength(WRAPPED_KEY_LEN))?;
    let tag = master
        .aead()
        .seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::from(&aad[..]), sealed)
        .map_err(|_| Error::Seal)?;
    out.extend_from_slice(tag.as_ref());
    Ok(WrappedKey::from_bytes(std::mem::take(&mut *out)))
}

/// The master key version a wrapped key was sealed under, so a keyring can pick the
/// master key to open it with. Checks the format byte and the length; authenticity is
/// only established by [`open_data_key`].
pub fn wrapped_master_version(wrapped: &WrappedKey) -> Result<u32, Error> {
    let bytes = wrapped.as_bytes();
    let Some(&format) = bytes.first() else {
        return Err(Error::EnvelopeLength(0));
    };
    if format != FORMAT_V1 {
        return Err(Error::EnvelopeFormat(format));
    }
    if bytes.len() != WRAPPED_KEY_LEN {
        return Err(Error::EnvelopeLength(bytes.len()));
    }
    match bytes.split_first_chunk::<HEADER_LEN>() {
        Some(([_, v0, v1, v2, v3], _)) => Ok(u32::from_be_bytes([*v0, *v1, *v2, *v3])),
        None => Err(Error::EnvelopeLength(bytes.len())),
    }
}

/// Opens a wrapped key with `master` (the master key of the version the wrapped key
/// names), checking that it was sealed for `ctx`.
pub fn open_data_key(master: &MasterKey, wrapped: &WrappedKey, ctx: &EncryptionContext) -> Result<DataKey, Error> {
    wrapped_master_version(wrapped)?;
    let bytes = wrapped.as_bytes();
    let malformed = || Error::EnvelopeLength(bytes.len());
    let (header, rest) = bytes.split_first_chunk::<HEADER_LEN>().ok_or_else(malformed)?;
    let (nonce, sealed) = rest.split_first_chunk::<NONCE_LEN>().ok_or_else(malformed)?;

    let mut buf = Zeroizing::new([0u8; DataKey::LEN + TAG_LEN]);
    if sealed.len() != buf.len() {
        return Err(malformed());
    }
    buf.copy_from_slice(sealed);
    let plain = master
        .aead()
        .open_in_place(
            Nonce::assume_unique_for_key(*nonce),
            Aad::from(&aad(header, ctx)[..]),
            &mut buf[..],
        )
        .map_err(|_| Error::Unauthentic)?;
    let mut key = DataKey::zeroed();
    if plain.len() != DataKey::LEN {
        return Err(malformed());
    }
    key.as_mut_bytes().copy_from_slice(plain);
    Ok(key)
}

fn aad(header: &[u8; HEADER_LEN], ctx: &EncryptionContext) -> Vec<u8> {
    let mut aad = header.to_vec();
    aad.extend_from_slice(&ctx.to_aad());
    aad
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::KeyId;
    use ring::rand::SystemRandom;

    const DATA_KEY: [u8; 16] = [
        0x2b, 0x7e, 0x15, 0x16, 0x28, 0xae, 0xd2, 0xa6, 0xab, 0xf7, 0x15, 0x88, 0x09, 0xcf, 0x4f, 0x3c,
    ];

    fn master() -> MasterKey {
        let mut bytes = [0u8; 32];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = i as u8;
        }
        MasterKey::from_bytes(bytes)
    }

    fn ctx(stream: &str, key_id: &str) -> EncryptionContext {
        EncryptionContext::new(stream, &KeyId::new(key_id).unwrap())
    }

    /// Sealed by pyca/cryptography's AESGCM with master key 00..1f, nonce a0..ab,
    /// version 7, context {stream: live/cam, key_id: k1}: pins the wire format.
    const GOLDEN: &str = "AQAAAAegoaKjpKWmp6ipqqvNZmk7bWXQGcmSklsOtY_iBMCBmAJqaLybpS967IknMA";

    #[test]
    fn opens_golden_wrapped_key() {
        let wrapped = WrappedKey::from_base64url(GOLDEN).unwrap();
        assert_eq!(wrapped.as_bytes().len(), WRAPPED_KEY_LEN);
        assert_eq!(wrapped_master_version(&wrapped), Ok(7));
        let key = open_data_key(&master(), &wrapped, &ctx("live/cam", "k1")).unwrap();
        assert_eq!(key.as_bytes(), &DATA_KEY);
    }

    #[test]
    fn seal_open_round_trip() {
        let rng = SystemRandom::new();
        let key = DataKey::from_bytes(DATA_KEY);
        let c = ctx("live/cam", "k1");
        let a = seal_data_key(&master(), 3, &key, &c, &rng).unwrap();
        let b = seal_data_key(&master(), 3, &key, &c, &rng).unwrap();
        assert_eq!(a.as_bytes().len(), 49);
        assert_eq!(a.to_base64url().len(), 66);
        assert_eq!(&a.as_bytes()[..5], &[1, 0, 0, 0, 3]);
        // Random nonces: sealing twice gives different wrapped keys.
        assert_ne!(a, b);
        // The plaintext key does not appear in the wrapped key.
        assert!(!a.as_bytes().windows(16).any(|w| w == DATA_KEY));
        assert_eq!(wrapped_master_version(&a), Ok(3));
        for w in [&a, &b] {
            let opened = open_data_key(&master(), w, &c).unwrap();
            assert_eq!(opened.as_bytes(), &DATA_KEY);
        }
    }

    #[test]
    fn refuses_other_context_or_master() {
        let rng = SystemRandom::new();
        let key = DataKey::generate(&rng).unwrap();
        let c = ctx("live/cam", "k1");
        let wrapped = seal_data_key(&master(), 1, &key, &c, &rng).unwrap();
        let other_master = MasterKey::generate(&rng).unwrap();
        let cases: &[(&str, &MasterKey, EncryptionContext)] = &[
            ("other stream", &master(), ctx("live/cam2", "k1")),
            ("other app", &master(), ctx("other/cam", "k1")),
            ("other key id", &master(), ctx("live/cam", "k2")),
            ("other master", &other_master, c.clone()),
        ];
        for (name, m, context) in cases {
            assert_eq!(
                open_data_key(m, &wrapped, context).map(|_| ()),
                Err(Error::Unauthentic),
                "{name}"
            );
        }
        // Control: the right master and context still open it.
        assert!(open_data_key(&master(), &wrapped, &c).is_ok());
    }

    #[test]
    fn refuses_any_flipped_byte() {
        let rng = SystemRandom::new();
        let key = DataKey::generate(&rng).unwrap();
        let c = ctx("live/cam", "k1");
        let wrapped = seal_data_key(&master(), 1, &key, &c, &rng).unwrap();
        for i in 0..WRAPPED_KEY_LEN {
            for flip in [0x01u8, 0x80] {
                let mut bytes = wrapped.as_bytes().to_vec();
                bytes[i] ^= flip;
                let got = open_data_key(&master(), &WrappedKey::from_bytes(bytes), &c);
                let want = if i == 0 {
                    Error::EnvelopeFormat(1 ^ flip)
                } else {
                    Error::Unauthentic
                };
                assert_eq!(got.map(|_| ()), Err(want), "byte {i} ^ {flip:#x}");
            }
        }
    }

    #[test]
    fn refuses_malformed_wrapped_keys() {
        let golden = WrappedKey::from_base64url(GOLDEN).unwrap();
        let g = golden.as_bytes();
        let cases: Vec<(Vec<u8>, Error)> = vec![
            (vec![], Error::EnvelopeLength(0)),
            (vec![1], Error::EnvelopeLength(1)),
            (vec![2; 49], Error::EnvelopeFormat(2)),
            (vec![0; 49], Error::EnvelopeFormat(0)),
            (g[..48].to_vec(), Error::EnvelopeLength(48)),
            ([g, &[0]].concat(), Error::EnvelopeLength(50)),
            (g[..5].to_vec(), Error::EnvelopeLength(5)),
        ];
        let c = ctx("live/cam", "k1");
        for (bytes, want) in cases {
            let w = WrappedKey::from_bytes(bytes);
            assert_eq!(wrapped_master_version(&w), Err(want.clone()), "{w:?}");
            assert_eq!(open_data_key(&master(), &w, &c).map(|_| ()), Err(want));
        }
        // A version change is caught by the tag, not by the parser.
        let mut bytes = g.to_vec();
        bytes[4] = 8;
        let w = WrappedKey::from_bytes(bytes);
        assert_eq!(wrapped_master_version(&w), Ok(8));
        assert_eq!(open_data_key(&master(), &w, &c).map(|_| ()), Err(Error::Unauthentic));
    }
}
