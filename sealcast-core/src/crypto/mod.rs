//! Data keys, the segment cipher and the envelope format (sans-IO).
//!
//! - [`DataKey`]: the 16-byte AES-128 key a segment is encrypted under. Plaintext
//!   only in memory, zeroized on drop, never printed.
//! - [`WrappedKey`]: the ciphertext form of a data key, as a KMS returns it; the only
//!   form that is stored or sent (base64url in the key URI's `edk=`).
//! - [`EncryptionContext`]: the authenticated `{stream, key_id}` map a wrapped key is
//!   bound to, so a wrapped key copied to another stream or key id does not unwrap.
//! - [`SegmentEncryptor`]: streaming AES-128-CBC with PKCS#7 padding, in place, as
//!   RFC 8216 section 5.2 (`METHOD=AES-128`) requires; [`segment_iv`] derives the
//!   explicit per-segment IV.
//! - [`seal_data_key`] / [`open_data_key`]: the local KMS's envelope, AES-256-GCM.
//!
//! Nothing here touches files, sockets or the clock; randomness comes in as a
//! `&dyn ring::rand::SecureRandom`.

mod envelope;
mod keys;
mod segment;

pub use envelope::{WRAPPED_KEY_LEN, open_data_key, seal_data_key, wrapped_master_version};
pub use keys::{DataKey, EncryptionContext, KeyId, MasterKey, WrappedKey};
pub use segment::{BLOCK_BYTES, SegmentEncryptor, decrypt_segment, encrypt_segment, segment_iv};

/// Errors of the crypto core. None of them carries key material.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum Error {
    /// The random number generator failed to produce bytes.
    #[error("random number generator failed")]
    Random,
    /// A key id is empty, longer than 64 characters, or has a character outside
    /// `[A-Za-z0-9_-]`.
    #[error("invalid key id: expected 1 to 64 characters from [A-Za-z0-9_-]")]
    InvalidKeyId,
    /// The text form of a wrapped key is not unpadded base64url.
    #[error("wrapped key is not unpadded base64url")]
    WrappedKeyEncoding,
    /// A wrapped key is empty or longer than [`WrappedKey::MAX_LEN`] bytes.
    #[error("wrapped key length {0} is outside 1..=1024 bytes")]
    WrappedKeyLength(usize),
    /// A wrapped key does not have the length its format byte calls for.
    #[error("wrapped key has {0} bytes, the local envelope format has 49")]
    EnvelopeLength(usize),
    /// A wrapped key starts with a format byte this version does not know.
    #[error("unsupported wrapped key format {0:#04x}")]
    EnvelopeFormat(u8),
    /// The wrapped key, its encryption context or the master key does not match:
    /// the AES-GCM tag did not verify.
    #[error("wrapped key does not authenticate under this master key and context")]
    Unauthentic,
    /// AES-GCM sealing failed (only possible for inputs far longer than a key).
    #[error("sealing the data key failed")]
    Seal,
    /// A master key is not 32 bytes long.
    #[error("master key has {0} bytes, expected 32")]
    MasterKeyLength(usize),
    /// A segment ciphertext is empty or not a multiple of the 16-byte AES block.
    #[error("segment ciphertext length {0} is not a positive multiple of 16")]
    SegmentLength(usize),
    /// The decrypted segment does not end in valid PKCS#7 padding.
    #[error("segment padding is invalid")]
    Padding,
}
