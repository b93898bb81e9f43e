//! Ticket nonces, drawn from the operating system's generator in blocks.
//!
//! A playlist with tickets issues one per key URI on every refresh of every
//! viewer; one `getrandom` per ticket was about 5 % of that path's CPU.
//! A block serves [`NONCES_PER_BLOCK`] tickets. Nonces are not secret (each
//! ticket carries its own in the clear); what matters is that they do not
//! repeat, and bytes from the OS generator handed out once each do not.

use std::sync::Mutex;

use ring::rand::{SecureRandom, SystemRandom};

use crate::auth::ticket::{NONCE_LEN, TicketError};

/// Nonces per `getrandom` call.
const NONCES_PER_BLOCK: usize = 256;
const BLOCK_LEN: usize = NONCE_LEN * NONCES_PER_BLOCK;

pub(super) struct NoncePool {
    rng: SystemRandom,
    block: Mutex<Block>,
}

struct Block {
    bytes: [u8; BLOCK_LEN],
    /// Bytes already handed out; `BLOCK_LEN` when a refill is due.
    used: usize,
}

impl NoncePool {
    pub(super) fn new() -> Self {
        Self {
            rng: SystemRandom::new(),
            block: Mutex::new(Block {
                bytes: [0; BLOCK_LEN],
                used: BLOCK_LEN,
            }),
        }
    }

    /// A nonce no other call returns.
    pub(super) fn next(&self) -> Result<[u8; NONCE_LEN], TicketError> {
        // Plain bytes and a cursor: a panic elsewhere leaves nothing half-done.
        let mut block = self.block.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if block.used == BLOCK_LEN {
            self.rng.fill(&mut block.bytes).map_err(|_| TicketError::Random)?;
            block.used = 0;
        }
        let at = block.used;
        let mut nonce = [0; NONCE_LEN];
        nonce.copy_from_slice(&block.bytes[at..at + NONCE_LEN]);
        block.used += NONCE_LEN;
        Ok(nonce)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn nonces_do_not_repeat_across_refills() {
        let pool = NoncePool::new();
        let mut seen = HashSet::new();
        for _ in 0..3 * NONCES_PER_BLOCK + 7 {
            assert!(seen.insert(pool.next().unwrap()));
        }
    }
}
