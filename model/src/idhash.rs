//! A hasher for the int64 feature ids the model ops look up per value
//! (`HashingDiscretizer`'s calibration, `Hashmap`, `FeatureMask`).
//!
//! The standard library's SipHash defends against chosen-key flooding, which
//! costs about as much per lookup as the rest of these kernels together. Here
//! the tables are built from the model's own calibration, not from request
//! data: a request's ids only probe it, and a probe's cost depends on the
//! stored keys, not on the probed one. Two multiply-xorshift rounds spread
//! every input bit over the whole word, so ids that differ only in their
//! high bits (hashed ids, ids masked to `output_bits`) still land apart.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

/// Hashes one integer key; other input is folded word by word.
#[derive(Clone, Copy, Debug, Default)]
pub struct IdHasher(u64);

impl IdHasher {
    #[inline(always)]
    fn mix(x: u64) -> u64 {
        let mut h = x.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        h ^= h >> 32;
        h = h.wrapping_mul(0xD6E8_FEB8_6659_FD93);
        h ^ (h >> 32)
    }
}

impl Hasher for IdHasher {
    #[inline(always)]
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    #[inline(always)]
    fn write_u64(&mut self, x: u64) {
        self.0 = Self::mix(self.0 ^ x);
    }

    #[inline(always)]
    fn write_i64(&mut self, x: i64) {
        self.write_u64(x as u64);
    }

    #[inline(always)]
    fn write_usize(&mut self, x: usize) {
        self.write_u64(x as u64);
    }
}

pub type IdBuild = BuildHasherDefault<IdHasher>;
pub type IdMap<V> = HashMap<i64, V, IdBuild>;
pub type IdSet = HashSet<i64, IdBuild>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    fn hash(x: i64) -> u64 {
        IdBuild::default().hash_one(x)
    }

    #[test]
    fn ids_differing_in_high_bits_spread_over_low_bits() {
        // Multiples of 2^32 differ only in their high half: the buckets
        // (low bits) must still differ for most of them.
        let low: std::collections::HashSet<u64> =
            (0..1024i64).map(|i| hash(i << 32) & 1023).collect();
        assert!(low.len() > 600, "{} distinct buckets of 1024", low.len());
    }

    #[test]
    fn maps_find_what_they_hold() {
        let mut m = IdMap::default();
        for i in -500i64..500 {
            m.insert(i * 7919, i);
        }
        for i in -500i64..500 {
            assert_eq!(m.get(&(i * 7919)), Some(&i));
            assert_eq!(m.get(&(i * 7919 + 1)), None);
        }
    }
}
