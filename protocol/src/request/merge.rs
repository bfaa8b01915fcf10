//! Merging the repeated keys of a record's sets and maps (the last value of a
//! map key wins, the first of a set's), with the scratch a decode keeps across
//! records so that this costs no allocation per feature; and the hasher of the
//! tables keyed by feature id. Used by [`super::batch`]'s decode.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};

/// A hasher for feature ids: one folded multiply (ids are already hashes,
/// and SipHash would cost more than the decoding around it).
#[derive(Default)]
pub(crate) struct IdHash(u64);

impl Hasher for IdHash {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(self.0 ^ u64::from(b));
        }
    }
    fn write_u64(&mut self, x: u64) {
        let m = u128::from(x ^ self.0) * 0x9E37_79B9_7F4A_7C15;
        self.0 = (m as u64) ^ ((m >> 64) as u64);
    }
    fn write_i64(&mut self, x: i64) {
        self.write_u64(x as u64)
    }
}

pub(crate) type IdMap<V> = HashMap<i64, V, BuildHasherDefault<IdHash>>;

/// Maps up to this many entries look for repeats by scanning.
const SMALL: usize = 16;

/// Merges repeated keys of `v[start..]` in place: the first place of a key
/// keeps it, with the last value when `last_wins` (a map) or the first (a set).
/// `first` is scratch for maps of more than [`SMALL`] entries, reused so that
/// records of many features cost no allocation each.
pub(super) fn merge_repeats<T: Copy, K: Eq + Hash>(
    v: &mut Vec<T>,
    start: usize,
    key: impl Fn(&T) -> K,
    last_wins: bool,
    first: &mut HashMap<K, usize, BuildHasherDefault<IdHash>>,
) {
    let n = v.len() - start;
    if n < 2 {
        return;
    }
    let mut w = start;
    if n <= SMALL {
        for r in start..v.len() {
            let k = key(&v[r]);
            match (start..w).find(|&p| key(&v[p]) == k) {
                Some(p) if last_wins => v[p] = v[r],
                Some(_) => {}
                None => {
                    v[w] = v[r];
                    w += 1;
                }
            }
        }
    } else {
        first.clear();
        first.reserve(n);
        for r in start..v.len() {
            match first.entry(key(&v[r])) {
                std::collections::hash_map::Entry::Occupied(e) => {
                    if last_wins {
                        v[*e.get()] = v[r];
                    }
                }
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(w);
                    v[w] = v[r];
                    w += 1;
                }
            }
        }
    }
    first.clear();
    v.truncate(w);
}

/// Scratch of a DataRecord-handle decode, kept across its records.
#[derive(Default)]
pub(crate) struct Scratch {
    /// For merging the repeats of maps of more than [`SMALL`] entries.
    pub(super) seen: IdMap<usize>,
    /// Per kind of i64-keyed map (binary, continuous, discrete, string): the
    /// keys of the last such map of more than [`SMALL`] entries that had no
    /// repeats. Clients build records alike, so the next map usually has
    /// the same keys in the same order: no repeats then, found by one
    /// comparison per key instead of a table.
    pub(super) unique: [Vec<i64>; 4],
    /// The open-addressing table of [`merge_strings`], kept across sets and
    /// maps: a fresh hash map per sparse feature of a record was an
    /// allocation each, and hashed its strings a byte at a time (issue 35).
    pub(super) strings: Vec<u32>,
}

/// Sets and maps of up to this many strings look for repeats by scanning.
const FEW_STRINGS: usize = 4;

/// A hash of a string for [`merge_strings`]'s table: eight bytes at a time,
/// the last (partial) word read overlapping the one before it.
#[inline]
fn string_hash(b: &[u8]) -> u64 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let n = b.len();
    let word = |i: usize| {
        let mut a = [0u8; 8];
        a.copy_from_slice(&b[i..i + 8]);
        u64::from_le_bytes(a)
    };
    let mut h = (n as u64).wrapping_mul(K);
    if n >= 8 {
        let mut i = 0;
        while i + 8 < n {
            h = (h ^ word(i)).wrapping_mul(K).rotate_left(29);
            i += 8;
        }
        h = (h ^ word(n - 8)).wrapping_mul(K);
    } else {
        let x = b
            .iter()
            .enumerate()
            .fold(0u64, |x, (i, &c)| x | u64::from(c) << (8 * i));
        h = (h ^ x).wrapping_mul(K);
    }
    h ^ (h >> 32)
}

/// [`merge_repeats`] for sets and maps keyed by string (`bytes` of an
/// element): the same result, repeats found through `table`, an
/// open-addressing table of (place - start + 1), 0 for empty.
pub(super) fn merge_strings<'m, T: Copy>(
    v: &mut Vec<T>,
    start: usize,
    bytes: impl Fn(&T) -> &'m [u8],
    last_wins: bool,
    table: &mut Vec<u32>,
) {
    let n = v.len() - start;
    if n <= FEW_STRINGS {
        return merge_repeats(v, start, bytes, last_wins, &mut HashMap::default());
    }
    let size = (2 * n).next_power_of_two();
    table.clear();
    table.resize(size, 0);
    let mask = size - 1;
    let mut w = start;
    for r in start..v.len() {
        let key = bytes(&v[r]);
        let mut slot = string_hash(key) as usize & mask;
        loop {
            let at = table[slot] as usize;
            if at == 0 {
                // Places are below n, and a message's set is shorter than 2**32.
                table[slot] = (w - start + 1) as u32;
                v[w] = v[r];
                w += 1;
                break;
            }
            let p = start + at - 1;
            if bytes(&v[p]) == key {
                if last_wins {
                    v[p] = v[r];
                }
                break;
            }
            slot = (slot + 1) & mask;
        }
    }
    v.truncate(w);
}

/// [`merge_repeats`] for maps keyed by feature id, skipping maps whose keys
/// are those of the last map found without repeats (`unique`).
pub(super) fn merge_ids<T: Copy>(
    v: &mut Vec<T>,
    start: usize,
    key: impl Fn(&T) -> i64,
    last_wins: bool,
    seen: &mut IdMap<usize>,
    unique: &mut Vec<i64>,
) {
    let n = v.len() - start;
    if n <= SMALL {
        return merge_repeats(v, start, key, last_wins, seen);
    }
    if n == unique.len() && v[start..].iter().map(&key).eq(unique.iter().copied()) {
        return;
    }
    merge_repeats(v, start, &key, last_wins, seen);
    if v.len() - start == n {
        unique.clear();
        unique.extend(v[start..].iter().map(&key));
    }
}
