//! What `POST /license/...` parses and computes from a request body:
//! `license::parse_request`, then the server's ECDH with the player's public
//! key (`license::Sealer::new`, where ring checks the point) and the sealing
//! of a fixed data key for every key id asked. No input may panic; what is
//! accepted is within the limits, and every sealed key is 16 bytes + tag.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ring::rand::SystemRandom;
use sealcast_core::crypto::DataKey;
use sealcast_core::license::{self, MAX_KEYS, PUBLIC_KEY_LEN};

fuzz_target!(|data: &[u8]| {
    let Ok(request) = license::parse_request(data) else {
        return;
    };
    assert!((1..=MAX_KEYS).contains(&request.keys.len()));
    assert_eq!(request.public_key.len(), PUBLIC_KEY_LEN);
    assert_eq!(request.public_key[0], 4);
    let rng = SystemRandom::new();
    let Ok(sealer) = license::Sealer::new(&rng, &request.public_key) else {
        return;
    };
    let key = DataKey::from_bytes([7; 16]);
    let keys: Vec<(&str, &DataKey)> = request.keys.iter().map(|k| (k.key_id.as_str(), &key)).collect();
    let sealed = sealer
        .seal_as(&rng, request.offline, "live/demo", 1_700_000_000, &keys)
        .expect("sealing cannot fail");
    assert_eq!(sealed.keys.len(), keys.len());
    assert_eq!(sealed.offline, request.offline);
    assert!(sealed.keys.iter().all(|k| k.ciphertext.len() == 32));
    let _ = sealed.to_json();
});
