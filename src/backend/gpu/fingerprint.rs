//! A 64-bit fingerprint of a cache key, so the per-op caches (pipelines, op sites) look a key
//! up without building it: no allocation and one short hash per recorded op. Equal keys have
//! equal fingerprints; the caches compare the full key on a match, so a collision costs a
//! miss, never a wrong pipeline or bind group. The caches hash their keys with the same
//! function ([`KeyMap`]): the keys are fingerprints already, or a few sizes.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// FNV-1a over what is written, a 64-bit word at a time.
#[derive(Clone, Copy)]
pub(crate) struct Fingerprint(u64);

const PRIME: u64 = 0x0000_0100_0000_01b3;

impl Fingerprint {
    pub fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }

    pub fn str(self, s: &str) -> Self {
        // The length ends it, so ("ab", "c") and ("a", "bc") differ.
        self.bytes(s.as_bytes()).word(s.len() as u64)
    }

    /// Eight bytes at a time, the last word padded with zeros (override names and shader
    /// files are short).
    fn bytes(mut self, bytes: &[u8]) -> Self {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self = self.word(u64::from_le_bytes(word));
        }
        self
    }

    pub fn word(mut self, w: u64) -> Self {
        self.0 = (self.0 ^ w).wrapping_mul(PRIME);
        self
    }

    pub fn finish(self) -> u64 {
        self.0
    }
}

/// A map keyed by fingerprints or sizes, hashed by FNV-1a instead of the standard SipHash: its
/// protection against chosen keys buys nothing for keys the crate computes, and hashing each
/// recorded op's keys with it was a measurable share of a small step's host time.
pub(crate) type KeyMap<K, V> = HashMap<K, V, BuildHasherDefault<KeyHasher>>;

/// FNV-1a as [`Fingerprint`] computes it, as a [`Hasher`].
pub(crate) struct KeyHasher(Fingerprint);

impl Default for KeyHasher {
    fn default() -> Self {
        Self(Fingerprint::new())
    }
}

impl Hasher for KeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0 = self.0.bytes(bytes);
    }

    fn write_u64(&mut self, w: u64) {
        self.0 = self.0.word(w);
    }

    fn write_usize(&mut self, w: usize) {
        self.write_u64(w as u64);
    }

    fn finish(&self) -> u64 {
        self.0.finish()
    }
}

#[cfg(test)]
mod tests {
    use std::hash::{BuildHasher, Hasher};

    use super::{Fingerprint, KeyHasher, KeyMap};

    #[test]
    fn the_key_hasher_is_the_fingerprints_function() {
        let mut hasher = KeyHasher::default();
        hasher.write_u64(42);
        hasher.write_usize(7);
        let expected = Fingerprint::new().word(42).word(7).finish();
        assert_eq!(hasher.finish(), expected);
        // Bytes go in eight at a time, the last word padded with zeros.
        let mut bytes = KeyHasher::default();
        bytes.write(&[1, 0, 0, 0, 0, 0, 0, 0, 2]);
        assert_eq!(bytes.finish(), Fingerprint::new().word(1).word(2).finish());
    }

    #[test]
    fn a_key_map_finds_every_shape_it_holds() {
        let mut map: KeyMap<(usize, usize, usize), usize> = KeyMap::default();
        let key = |i: usize| (i, i * 7 % 13, 500 - i);
        for i in 0..500 {
            map.insert(key(i), i);
        }
        assert_eq!(map.len(), 500);
        assert!((0..500).all(|i| map.get(&key(i)) == Some(&i)));
        // Permuted sizes are other keys, and hash apart.
        let build = map.hasher();
        assert_ne!(build.hash_one((1, 2, 3)), build.hash_one((3, 2, 1)));
    }
}
