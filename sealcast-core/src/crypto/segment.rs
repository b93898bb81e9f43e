//! The segment cipher: AES-128-CBC with PKCS#7 padding, restarted per segment, as
//! RFC 8216 section 5.2 defines `METHOD=AES-128`.

use aes::Aes128;
use aes::cipher::{Array, BlockCipherEncrypt, BlockModeDecrypt, BlockModeEncrypt, KeyInit, KeyIvInit};

use super::{DataKey, Error};

/// The AES block size: CBC works in whole blocks of this many bytes.
pub const BLOCK_BYTES: usize = 16;

type CbcEncryptor = cbc::Encryptor<Aes128>;
type CbcDecryptor = cbc::Decryptor<Aes128>;

/// The IV of segment `media_sequence`: `AES_key(media_sequence as a 128-bit
/// big-endian integer)`.
///
/// CBC needs IVs that are unpredictable to an adversary (NIST SP 800-38A section 5.3,
/// Appendix C); method 1 there is to encrypt a nonce under the same key. The media
/// sequence number is such a nonce: it never repeats within a stream, and AES is a
/// permutation, so distinct sequence numbers give distinct IVs under one key. The IV
/// is written in the playlist (`IV=0x...`) because hls.js only uses the low 32 bits
/// of the implicit one (RFC 8216 section 5.2).
pub fn segment_iv(key: &DataKey, media_sequence: u64) -> [u8; 16] {
    let cipher = Aes128::new(key.as_bytes().into());
    let mut block = Array::from(u128::from(media_sequence).to_be_bytes());
    cipher.encrypt_block(&mut block);
    block.into()
}

/// Streaming AES-128-CBC + PKCS#7 over a growing segment buffer, encrypting in place
/// so a segment is held in memory once.
///
/// The muxer appends TS packets to the segment buffer; after each append the
/// pipeline calls [`encrypt_available`](Self::encrypt_available), which encrypts
/// every complete 16-byte block not yet encrypted. A tail shorter than one block
/// stays plaintext until more bytes arrive or [`finish`](Self::finish) pads it.
///
/// The buffer must only ever grow: the bytes before
/// [`encrypted_len`](Self::encrypted_len) must be left as they are. Reserve 16 bytes
/// beyond the expected plaintext so `finish` does not reallocate.
pub struct SegmentEncryptor {
    cbc: CbcEncryptor,
    encrypted_len: usize,
}

impl SegmentEncryptor {
    /// Starts a segment under `key` with the explicit `iv`.
    pub fn new(key: &DataKey, iv: [u8; 16]) -> Self {
        Self {
            cbc: CbcEncryptor::new(key.as_bytes().into(), &iv.into()),
            encrypted_len: 0,
        }
    }

    /// Encrypts in place every complete 16-byte block of
    /// `buf[self.encrypted_len()..]`; the tail (< 16 bytes) stays plaintext.
    pub fn encrypt_available(&mut self, buf: &mut [u8]) {
        // A buffer shorter than what was already encrypted breaks the contract above;
        // there is nothing sensible left to encrypt, and panicking would take the
        // stream down for a caller bug that the output already makes visible.
        let Some(pending) = buf.get_mut(self.encrypted_len..) else {
            return;
        };
        let (blocks, _tail) = Array::slice_as_chunks_mut(pending);
        let newly_encrypted = blocks.len() * BLOCK_BYTES;
        self.cbc.encrypt_blocks(blocks);
        self.encrypted_len += newly_encrypted;
    }

    /// How many leading bytes of the buffer are ciphertext (a multiple of 16).
    pub fn encrypted_len(&self) -> usize {
        self.encrypted_len
    }

    /// The caller moved the first `bytes` of ciphertext out of the buffer (to
    /// a file, so a segment need not be held whole in memory); the buffer now
    /// starts at what was offset `bytes`. CBC chaining lives in the encryptor,
    /// so it continues across the cut. `bytes` beyond `encrypted_len` would
    /// mean plaintext left: it is clamped, and the caller's output shows it.
    pub fn consumed(&mut self, bytes: usize) {
        self.encrypted_len -= bytes.min(self.encrypted_len);
    }

    /// Appends PKCS#7 padding (1..=16 bytes, RFC 5652 section 6.3) and encrypts the
    /// rest, leaving `buf` (the whole segment buffer) all ciphertext.
    pub fn finish(mut self, buf: &mut Vec<u8>) {
        self.encrypt_available(buf);
        let tail = buf.len().saturating_sub(self.encrypted_len);
        // tail < BLOCK_BYTES after encrypt_available, so pad is 1..=16 and fits a u8.
        let pad = BLOCK_BYTES - tail % BLOCK_BYTES;
        buf.resize(buf.len() + pad, pad as u8);
        self.encrypt_available(buf);
    }
}

/// Encrypts a whole segment in one shot (for tests and tools): CBC with PKCS#7.
pub fn encrypt_segment(key: &DataKey, iv: [u8; 16], plaintext: &[u8]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(plaintext.len() + BLOCK_BYTES);
    buf.extend_from_slice(plaintext);
    SegmentEncryptor::new(key, iv).finish(&mut buf);
    buf
}

/// Decrypts a segment in place and strips its PKCS#7 padding.
///
/// Fails on a length that is not a positive multiple of 16 and on padding that is not
/// `n` bytes of value `n` with `n` in 1..=16. On error the contents of `buf` are
/// unspecified. (This is for tools and tests; the server never decrypts segments,
/// so there is no padding oracle to worry about.)
pub fn decrypt_segment(key: &DataKey, iv: [u8; 16], buf: &mut Vec<u8>) -> Result<(), Error> {
    let len = buf.len();
    if len == 0 || !len.is_multiple_of(BLOCK_BYTES) {
        return Err(Error::SegmentLength(len));
    }
    decrypt_blocks(key, iv, buf);
    let pad = buf.last().copied().ok_or(Error::SegmentLength(len))?;
    let pad_len = usize::from(pad);
    if !(1..=BLOCK_BYTES).contains(&pad_len) {
        return Err(Error::Padding);
    }
    let padding = buf.get(len - pad_len..).ok_or(Error::Padding)?;
    if padding.iter().any(|&b| b != pad) {
        return Err(Error::Padding);
    }
    buf.truncate(len - pad_len);
    Ok(())
}

/// CBC-decrypts every complete block of `buf` in place, without touching padding.
fn decrypt_blocks(key: &DataKey, iv: [u8; 16], buf: &mut [u8]) {
    let (blocks, _tail) = Array::slice_as_chunks_mut(buf);
    CbcDecryptor::new(key.as_bytes().into(), &iv.into()).decrypt_blocks(blocks);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// NIST SP 800-38A Appendix F.2.1/F.2.2 (CBC-AES128) key, IV and blocks.
    const NIST_KEY: [u8; 16] = [
        0x2b, 0x7e, 0x15, 0x16, 0x28, 0xae, 0xd2, 0xa6, 0xab, 0xf7, 0x15, 0x88, 0x09, 0xcf, 0x4f, 0x3c,
    ];
    const NIST_IV: [u8; 16] = [
        0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
    ];
    const NIST_PLAINTEXT: [u8; 64] = [
        0x6b, 0xc1, 0xbe, 0xe2, 0x2e, 0x40, 0x9f, 0x96, 0xe9, 0x3d, 0x7e, 0x11, 0x73, 0x93, 0x17, 0x2a, 0xae, 0x2d,
        0x8a, 0x57, 0x1e, 0x03, 0xac, 0x9c, 0x9e, 0xb7, 0x6f, 0xac, 0x45, 0xaf, 0x8e, 0x51, 0x30, 0xc8, 0x1c, 0x46,
        0xa3, 0x5c, 0xe4, 0x11, 0xe5, 0xfb, 0xc1, 0x19, 0x1a, 0x0a, 0x52, 0xef, 0xf6, 0x9f, 0x24, 0x45, 0xdf, 0x4f,
        0x9b, 0x17, 0xad, 0x2b, 0x41, 0x7b, 0xe6, 0x6c, 0x37, 0x10,
    ];
    const NIST_CIPHERTEXT: [u8; 64] = [
        0x76, 0x49, 0xab, 0xac, 0x81, 0x19, 0xb2, 0x46, 0xce, 0xe9, 0x8e, 0x9b, 0x12, 0xe9, 0x19, 0x7d, 0x50, 0x86,
        0xcb, 0x9b, 0x50, 0x72, 0x19, 0xee, 0x95, 0xdb, 0x11, 0x3a, 0x91, 0x76, 0x78, 0xb2, 0x73, 0xbe, 0xd6, 0xb8,
        0xe3, 0xc1, 0x74, 0x3b, 0x71, 0x16, 0xe6, 0x9e, 0x22, 0x22, 0x95, 0x16, 0x3f, 0xf1, 0xca, 0xa1, 0x68, 0x1f,
        0xac, 0x09, 0x12, 0x0e, 0xca, 0x30, 0x75, 0x86, 0xe1, 0xa7,
    ];
    /// The block PKCS#7 appends after the NIST plaintext (16 x 0x10), encrypted:
    /// AES_k(0x10.. XOR last NIST ciphertext block), computed with OpenSSL.
    const NIST_PADDING_BLOCK: [u8; 16] = [
        0x8c, 0xb8, 0x28, 0x07, 0x23, 0x0e, 0x13, 0x21, 0xd3, 0xfa, 0xe0, 0x0d, 0x18, 0xcc, 0x20, 0x12,
    ];

    fn hex16(s: &str) -> [u8; 16] {
        let mut out = [0; 16];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
        }
        out
    }

    fn nist_key() -> DataKey {
        DataKey::from_bytes(NIST_KEY)
    }

    #[test]
    fn nist_f21_cbc_aes128_encrypt() {
        let mut buf = NIST_PLAINTEXT.to_vec();
        let mut enc = SegmentEncryptor::new(&nist_key(), NIST_IV);
        enc.encrypt_available(&mut buf);
        assert_eq!(enc.encrypted_len(), 64);
        assert_eq!(buf, NIST_CIPHERTEXT);
    }

    #[test]
    fn nist_f22_cbc_aes128_decrypt() {
        let mut buf = NIST_CIPHERTEXT;
        decrypt_blocks(&nist_key(), NIST_IV, &mut buf);
        assert_eq!(buf, NIST_PLAINTEXT);
    }

    #[test]
    fn pkcs7_padding_known_answers() {
        let key = nist_key();
        let whole = encrypt_segment(&key, NIST_IV, &NIST_PLAINTEXT);
        assert_eq!(whole.len(), 80);
        assert_eq!(&whole[..64], &NIST_CIPHERTEXT[..]);
        assert_eq!(&whole[64..], &NIST_PADDING_BLOCK[..]);

        // Known answers from OpenSSL / pyca (AES-128-CBC, PKCS#7, NIST key and IV).
        let cases: &[(&[u8], &str)] = &[
            (b"", "c84af0b613435d5d9182801a9bd9320b"),
            (b"hello", "d8666ea8aad65cc08354b4bc43d4ff56"),
        ];
        for (plaintext, want) in cases {
            let ct = encrypt_segment(&key, NIST_IV, plaintext);
            assert_eq!(ct, hex16(want), "{plaintext:?}");
            let mut back = ct;
            decrypt_segment(&key, NIST_IV, &mut back).unwrap();
            assert_eq!(back, *plaintext);
        }

        // Decrypting the padded block by hand shows the padding bytes.
        let mut raw = encrypt_segment(&key, NIST_IV, b"hello");
        decrypt_blocks(&key, NIST_IV, &mut raw);
        assert_eq!(&raw[..5], b"hello");
        assert_eq!(&raw[5..], &[11; 11]);
    }

    /// Textbook CBC on the bare block cipher, independent of the `cbc` crate and of
    /// `SegmentEncryptor`: C_i = AES_k(P_i XOR C_{i-1}), C_0 = IV, PKCS#7 first.
    fn reference_encrypt(key: &[u8; 16], iv: [u8; 16], plaintext: &[u8]) -> Vec<u8> {
        let cipher = Aes128::new(key.into());
        let pad = 16 - plaintext.len() % 16;
        let mut padded = plaintext.to_vec();
        padded.extend(std::iter::repeat_n(pad as u8, pad));
        let mut prev = iv;
        let mut out = Vec::new();
        for chunk in padded.chunks(16) {
            let mut block = [0u8; 16];
            for i in 0..16 {
                block[i] = chunk[i] ^ prev[i];
            }
            let mut b = Array::from(block);
            cipher.encrypt_block(&mut b);
            prev = b.into();
            out.extend_from_slice(&prev);
        }
        out
    }

    fn test_plaintext(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 + i / 256) as u8).collect()
    }

    #[test]
    fn streaming_matches_one_shot_and_reference() {
        let key = DataKey::from_bytes(*b"sealcast-test-k1");
        let iv = segment_iv(&key, 42);
        let lengths = [0, 1, 15, 16, 17, 31, 32, 33, 188, 188 * 7, 188 * 100];
        let chunk_sizes = [1, 15, 16, 17, 188, 4096];
        for &len in &lengths {
            let plaintext = test_plaintext(len);
            let one_shot = encrypt_segment(&key, iv, &plaintext);
            assert_eq!(one_shot.len(), (len / 16 + 1) * 16, "len {len}");
            assert_eq!(one_shot, reference_encrypt(key.as_bytes(), iv, &plaintext), "len {len}");
            for &chunk in &chunk_sizes {
                let mut buf = Vec::new();
                let mut enc = SegmentEncryptor::new(&key, iv);
                for piece in plaintext.chunks(chunk) {
                    buf.extend_from_slice(piece);
                    enc.encrypt_available(&mut buf);
                    let done = enc.encrypted_len();
                    assert_eq!(done, buf.len() / 16 * 16, "len {len} chunk {chunk}");
                    // The tail stays plaintext until a block completes.
                    assert_eq!(&buf[done..], &plaintext[done..buf.len()]);
                    assert_eq!(&buf[..done], &one_shot[..done]);
                }
                enc.finish(&mut buf);
                assert_eq!(buf, one_shot, "len {len} chunk {chunk}");
            }
        }
    }

    #[test]
    fn decrypt_round_trip() {
        let key = DataKey::from_bytes(*b"sealcast-test-k2");
        for len in [0, 1, 15, 16, 17, 188, 188 * 100 + 3] {
            let plaintext = test_plaintext(len);
            let iv = segment_iv(&key, len as u64);
            let mut buf = encrypt_segment(&key, iv, &plaintext);
            if len > 0 {
                assert_ne!(&buf[..len.min(16)], &plaintext[..len.min(16)]);
            }
            decrypt_segment(&key, iv, &mut buf).unwrap();
            assert_eq!(buf, plaintext, "len {len}");
        }
    }

    #[test]
    fn decrypt_rejects_bad_length_and_padding() {
        let key = nist_key();
        // Raw CBC encryption of chosen last blocks, so the padding byte is controlled.
        let encrypt_raw = |plain: &[u8]| {
            let mut buf = plain.to_vec();
            let mut enc = SegmentEncryptor::new(&key, NIST_IV);
            enc.encrypt_available(&mut buf);
            buf
        };
        let mut bad_pad_zero = [0x41u8; 16];
        bad_pad_zero[15] = 0;
        let mut bad_pad_17 = [0x41u8; 16];
        bad_pad_17[15] = 17;
        let mut bad_pad_mixed = [0x41u8; 16];
        bad_pad_mixed[13..].copy_from_slice(&[2, 3, 3]);
        let mut bad_pad_all = [16u8; 16];
        bad_pad_all[0] = 15;

        let cases: Vec<(Vec<u8>, Error)> = vec![
            (vec![], Error::SegmentLength(0)),
            (vec![0; 15], Error::SegmentLength(15)),
            (vec![0; 17], Error::SegmentLength(17)),
            (vec![0; 188], Error::SegmentLength(188)),
            (encrypt_raw(&bad_pad_zero), Error::Padding),
            (encrypt_raw(&bad_pad_17), Error::Padding),
            (encrypt_raw(&bad_pad_mixed), Error::Padding),
            (encrypt_raw(&bad_pad_all), Error::Padding),
            (encrypt_raw(&[0xff; 32]), Error::Padding),
        ];
        for (mut buf, want) in cases {
            let len = buf.len();
            assert_eq!(decrypt_segment(&key, NIST_IV, &mut buf), Err(want), "len {len}");
        }

        // Valid edge cases of the same construction: 1 byte and 16 bytes of padding.
        let mut one = [0x41u8; 16];
        one[15] = 1;
        let mut buf = encrypt_raw(&one);
        decrypt_segment(&key, NIST_IV, &mut buf).unwrap();
        assert_eq!(buf, [0x41; 15]);
        let mut buf = encrypt_raw(&[16; 16]);
        decrypt_segment(&key, NIST_IV, &mut buf).unwrap();
        assert!(buf.is_empty());
    }

    #[test]
    fn segment_iv_known_answers() {
        // AES-128 (NIST key) of the sequence number as 128-bit big-endian, from pyca.
        let cases: &[(u64, &str)] = &[
            (0, "7df76b0c1ab899b33e42f047b91b546f"),
            (1, "57127d4034b1bebfaef466b9c7726fc6"),
            (0x0102_0304_0506_0708, "cdf695318a9c8887a124d0b9e408dd1d"),
            (u64::MAX, "ef8737b783c4fa88e687ee9467073f6e"),
        ];
        let key = nist_key();
        for &(seq, want) in cases {
            assert_eq!(segment_iv(&key, seq), hex16(want), "seq {seq}");
        }
    }

    #[test]
    fn segment_iv_distinct_per_sequence_and_key() {
        let key = nist_key();
        let ivs: std::collections::HashSet<[u8; 16]> = (0..1000).map(|seq| segment_iv(&key, seq)).collect();
        assert_eq!(ivs.len(), 1000);
        let other = DataKey::from_bytes([0; 16]);
        assert_ne!(segment_iv(&key, 5), segment_iv(&other, 5));
    }

    #[test]
    fn encryptor_survives_a_shrunk_buffer() {
        // Contract violation: no panic, and the encrypted length does not move.
        let key = nist_key();
        let mut enc = SegmentEncryptor::new(&key, NIST_IV);
        let mut buf = vec![0u8; 64];
        enc.encrypt_available(&mut buf);
        buf.truncate(10);
        enc.encrypt_available(&mut buf);
        assert_eq!(enc.encrypted_len(), 64);
        enc.finish(&mut buf);
        assert_eq!(buf.len(), 26);
    }

    #[test]
    fn encryptor_is_send() {
        fn assert_send<T: Send + Sync>() {}
        assert_send::<SegmentEncryptor>();
        assert_send::<DataKey>();
    }
}
