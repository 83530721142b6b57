//! A 64-bit fingerprint of a cache key, so the per-op caches (pipelines, op sites) look a key
//! up without building it: no allocation and one short hash per recorded op. Equal keys have
//! equal fingerprints; the caches compare the full key on a match, so a collision costs a
//! miss, never a wrong pipeline or bind group.

/// FNV-1a over what is written, a 64-bit word at a time.
#[derive(Clone, Copy)]
pub(crate) struct Fingerprint(u64);

const PRIME: u64 = 0x0000_0100_0000_01b3;

impl Fingerprint {
    pub fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }

    pub fn str(mut self, s: &str) -> Self {
        // Eight bytes at a time (override names and shader files are short).
        for chunk in s.as_bytes().chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self = self.word(u64::from_le_bytes(word));
        }
        // The length ends it, so ("ab", "c") and ("a", "bc") differ.
        self.word(s.len() as u64)
    }

    pub fn word(mut self, w: u64) -> Self {
        self.0 = (self.0 ^ w).wrapping_mul(PRIME);
        self
    }

    pub fn finish(self) -> u64 {
        self.0
    }
}
