//! twml's small tensor ops (`feature_mask`, `hashmap`, `compress_sample_ids`,
//! `fixed_length_tensor`, `var_length_reader`, `feature_extractor`,
//! `contrib/get_substrings`).
//!
//! Each op is a plan made from its attrs and input sizes, which validates
//! everything before an output exists (so a host allocates outputs of the
//! right size and nothing is half-written on error), then a fill over slices.
//! Results are twml's on every input twml handles; where twml aborts, reads
//! out of bounds or drops values silently, these return an [`Error`] that
//! names the op, the input and what was expected (README, "twml's model ops").

use std::sync::{Arc, Mutex};

use crate::idhash::{IdMap, IdSet};

pub use crate::error::{Error, Result};

/// `FeatureMask`: whether each element of `keep` is one of `list_keep`.
#[derive(Debug, Clone)]
pub struct FeatureMask {
    keep: IdSet,
}

impl FeatureMask {
    pub fn new(list_keep: &[i64]) -> Self {
        FeatureMask {
            keep: list_keep.iter().copied().collect(),
        }
    }

    /// `out[i] = values[i] in list_keep`; int8 inputs compare by value, as
    /// twml's widening to int64 does.
    pub fn apply<T: Copy + Into<i64>>(&self, values: &[T], out: &mut [bool]) {
        debug_assert_eq!(values.len(), out.len());
        for (o, &v) in out.iter_mut().zip(values) {
            *o = self.keep.contains(&v.into());
        }
    }
}

/// The table of one `Hashmap` call: `hash_keys[i] -> hash_values[i]`, the
/// later entry winning for a repeated key (as twml's khash insert does).
#[derive(Debug)]
pub struct HashTable {
    keys: Vec<i64>,
    values: Vec<i64>,
    map: IdMap<i64>,
}

impl HashTable {
    pub fn new(hash_keys: &[i64], hash_values: &[i64]) -> Result<Self> {
        if hash_keys.len() != hash_values.len() {
            // twml reads hash_values out of bounds when it is shorter and
            // ignores the rest when it is longer.
            return Err(Error::new(format!(
                "Hashmap: hash_keys and hash_values must have as many elements, got {} and {}",
                hash_keys.len(),
                hash_values.len()
            )));
        }
        let mut map = IdMap::with_capacity_and_hasher(hash_keys.len(), Default::default());
        for (&k, &v) in hash_keys.iter().zip(hash_values) {
            map.insert(k, v);
        }
        Ok(HashTable {
            keys: hash_keys.to_vec(),
            values: hash_values.to_vec(),
            map,
        })
    }

    fn same(&self, hash_keys: &[i64], hash_values: &[i64]) -> bool {
        self.keys == hash_keys && self.values == hash_values
    }

    /// twml's lookup: `values[i]` is the table's value of `keys[i]` and
    /// `mask[i]` 1, or `keys[i]` itself and 0 when the table lacks it.
    pub fn lookup(&self, keys: &[i64], values: &mut [i64], mask: &mut [i8]) {
        debug_assert!(keys.len() == values.len() && keys.len() == mask.len());
        for ((&k, v), m) in keys.iter().zip(values.iter_mut()).zip(mask.iter_mut()) {
            match self.map.get(&k) {
                Some(&found) => {
                    *v = found;
                    *m = 1;
                }
                None => {
                    *v = k;
                    *m = 0;
                }
            }
        }
    }
}

/// A kernel's `Hashmap` table, rebuilt only when a call's table differs from
/// the last one. twml built its table on the first call and kept it for every
/// later call, whatever table they passed; comparing the inputs (a memcmp of
/// the two arrays) costs less than rebuilding the hash map, and gives every
/// call its own table's answer.
#[derive(Debug, Default)]
pub struct HashTableCache {
    last: Mutex<Option<Arc<HashTable>>>,
}

impl HashTableCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// The table of `hash_keys -> hash_values`, from the cache when the last
    /// call had the same arrays.
    pub fn table(&self, hash_keys: &[i64], hash_values: &[i64]) -> Result<Arc<HashTable>> {
        {
            let last = self.last.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(t) = last.as_ref() {
                if t.same(hash_keys, hash_values) {
                    return Ok(Arc::clone(t));
                }
            }
        }
        // Built outside the lock: concurrent calls with other tables do not
        // wait on each other; the last to finish is kept.
        let table = Arc::new(HashTable::new(hash_keys, hash_values)?);
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(Arc::clone(&table));
        Ok(table)
    }
}

/// `CompressSampleIds`: the length of the output, `input[last] + 1` (0 when
/// empty), after checking that `input` is non-negative and non-decreasing.
pub fn compressed_len(input: &[i32]) -> Result<usize> {
    if let Some(&first) = input.first() {
        if first < 0 {
            return Err(Error::new(format!(
                "CompressSampleIds: sample ids must be non-negative and non-decreasing; input[0] = {first}"
            )));
        }
    }
    for (i, w) in input.windows(2).enumerate() {
        if w[0] > w[1] {
            return Err(Error::new(format!(
                "CompressSampleIds: sample ids must be non-negative and non-decreasing; input[{}] = {} \
                 follows input[{i}] = {}",
                i + 1,
                w[1],
                w[0]
            )));
        }
    }
    Ok(input.last().map_or(0, |&l| l as usize + 1))
}

/// `CompressSampleIds`: `out[s]` = how many times `s` occurs in `input`
/// (checked by [`compressed_len`], `out` of that length).
pub fn compress_sample_ids(input: &[i32], out: &mut [i32]) {
    out.fill(0);
    for &s in input {
        out[s as usize] += 1;
    }
}

/// `DecompressSampleIds`: the output length, the sum of the counts, after
/// checking that every count is non-negative. twml summed in a 32-bit int;
/// the sum here is 64-bit, so a total past 2^31 is an output of that size
/// (or the host's allocation error), not a negative shape.
pub fn decompressed_len(counts: &[i32]) -> Result<usize> {
    let mut total: u64 = 0;
    for (i, &c) in counts.iter().enumerate() {
        if c < 0 {
            return Err(Error::new(format!(
                "DecompressSampleIds: counts must be non-negative; input[{i}] = {c}"
            )));
        }
        total += c as u64;
    }
    usize::try_from(total)
        .map_err(|_| Error::new(format!("DecompressSampleIds: {total} samples is too many")))
}

/// `DecompressSampleIds`: sample `s` repeated `counts[s]` times, in order.
pub fn decompress_sample_ids(counts: &[i32], out: &mut [i32]) {
    let mut at = 0;
    for (s, &c) in counts.iter().enumerate() {
        let c = c as usize;
        out[at..at + c].fill(s as i32);
        at += c;
    }
}

/// `VarLengthReader`: the output's width, `input[0]`. twml read `input[0]`
/// of an empty input (whatever memory followed) and aborted on a negative one.
pub fn var_length_width(input: &[i32]) -> Result<usize> {
    match input.first() {
        None => Err(Error::new(
            "VarLengthReader: input1 must have at least one element (its first is the output's length), got none",
        )),
        Some(&n) if n < 0 => Err(Error::new(format!(
            "VarLengthReader: input1[0] is the output's length and must be non-negative, got {n}"
        ))),
        Some(&n) => Ok(n as usize),
    }
}

/// Which of `FixedLengthTensor` (batch size from the last segment id) and
/// `FixedLengthTensorV2` (batch size given).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FixedLengthOp {
    V1,
    V2,
}

impl FixedLengthOp {
    fn name(self) -> &'static str {
        match self {
            FixedLengthOp::V1 => "FixedLengthTensor",
            FixedLengthOp::V2 => "FixedLengthTensorV2",
        }
    }
}

/// The output of a `FixedLengthTensor(V2)` call: `[batch_size, max_length]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixedLength {
    pub batch_size: usize,
    pub max_length: usize,
}

impl FixedLength {
    /// Checks the inputs and sizes the output. `segment_ids` must be sorted
    /// (non-decreasing, as twml documents) and non-negative, `values` as long,
    /// and for V2 every id below `batch_size`: twml dropped the values of ids
    /// it never reached (unsorted, negative or past the batch) without a word.
    /// A negative `max_length` is the longest segment's length (0 for an empty
    /// batch, where twml made the shape `[0, -1]` and aborted).
    pub fn plan<I: Copy + Into<i64>>(
        op: FixedLengthOp,
        segment_ids: &[I],
        num_values: usize,
        max_length: i64,
        batch_size: Option<i64>,
    ) -> Result<Self> {
        let name = op.name();
        if num_values != segment_ids.len() {
            return Err(Error::new(format!(
                "{name}: values must have one element per segment id; segment_ids has {} elements, values {}",
                segment_ids.len(),
                num_values
            )));
        }
        let mut longest: i64 = 0;
        let mut run: i64 = 0;
        let mut previous: Option<i64> = None;
        for (i, &id) in segment_ids.iter().enumerate() {
            let id: i64 = id.into();
            match previous {
                None if id < 0 => {
                    return Err(Error::new(format!(
                        "{name}: segment_ids must be non-negative; segment_ids[0] = {id}"
                    )))
                }
                Some(p) if id < p => {
                    return Err(Error::new(format!(
                        "{name}: segment_ids must be sorted (non-decreasing); segment_ids[{i}] = {id} follows \
                         segment_ids[{}] = {p}",
                        i - 1
                    )))
                }
                Some(p) if id == p => run += 1,
                _ => run = 1,
            }
            longest = longest.max(run);
            previous = Some(id);
        }
        let batch = match (op, batch_size) {
            (FixedLengthOp::V1, _) => previous.map_or(0, |last| last + 1),
            (FixedLengthOp::V2, Some(b)) => {
                if b < 0 {
                    return Err(Error::new(format!(
                        "{name}: batch_size must be non-negative, got {b}"
                    )));
                }
                if let Some(last) = previous {
                    if last >= b {
                        return Err(Error::new(format!(
                            "{name}: segment_ids must be below batch_size {b}; the last is {last}"
                        )));
                    }
                }
                b
            }
            (FixedLengthOp::V2, None) => {
                return Err(Error::new(format!("{name}: no batch_size given")))
            }
        };
        let width = if max_length < 0 { longest } else { max_length };
        let too_large = || {
            Error::new(format!(
                "{name}: an output of [{batch}, {width}] elements is too large"
            ))
        };
        let batch_size = usize::try_from(batch).map_err(|_| too_large())?;
        let max_length = usize::try_from(width).map_err(|_| too_large())?;
        if batch_size
            .checked_mul(max_length)
            .is_none_or(|n| n > isize::MAX as usize / 8)
        {
            return Err(too_large());
        }
        Ok(FixedLength {
            batch_size,
            max_length,
        })
    }

    /// Calls `slot(k, Some(i))` when output element `k` (row-major) is
    /// `values[i]` and `slot(k, None)` when it is padding, for every `k` in
    /// order. Values past `max_length` in a segment are left out (twml's
    /// truncation, its documented use of `max_length`). `segment_ids` must be
    /// the ones [`plan`](Self::plan) checked. Walks the segments, not the
    /// rows: a batch of many empty rows of width 0 costs nothing.
    pub fn fill<I: Copy + Into<i64>>(
        &self,
        segment_ids: &[I],
        mut slot: impl FnMut(usize, Option<usize>),
    ) {
        let width = self.max_length;
        let mut k = 0;
        let mut n = 0;
        while n < segment_ids.len() {
            let start = n;
            let id: i64 = segment_ids[start].into();
            while n < segment_ids.len() && segment_ids[n].into() == id {
                n += 1;
            }
            let row_start = id as usize * width;
            while k < row_start {
                slot(k, None);
                k += 1;
            }
            for i in start..start + (n - start).min(width) {
                slot(k, Some(i));
                k += 1;
            }
            while k < row_start + width {
                slot(k, None);
                k += 1;
            }
        }
        while k < self.batch_size * width {
            slot(k, None);
            k += 1;
        }
    }

    /// [`fill`](Self::fill) for numbers: `out` has `batch_size * max_length` elements.
    pub fn fill_values<I: Copy + Into<i64>, T: Copy>(
        &self,
        segment_ids: &[I],
        values: &[T],
        pad: T,
        out: &mut [T],
    ) {
        // The walk of `fill` by whole runs: a segment is one copy and the
        // padding one fill, instead of a call and a branch per element.
        debug_assert_eq!(out.len(), self.batch_size * self.max_length);
        let width = self.max_length;
        let (mut k, mut n) = (0, 0);
        while n < segment_ids.len() {
            let start = n;
            let id: i64 = segment_ids[start].into();
            while n < segment_ids.len() && segment_ids[n].into() == id {
                n += 1;
            }
            let row_start = id as usize * width;
            let take = (n - start).min(width);
            out[k..row_start].fill(pad);
            out[row_start..row_start + take].copy_from_slice(&values[start..start + take]);
            out[row_start + take..row_start + width].fill(pad);
            k = row_start + width;
        }
        out[k..].fill(pad);
    }
}

/// `FeatureExtractor`: the number of kept rows, after checking that the six
/// inputs have as many elements (the names as twml registers them).
pub fn extracted_len(mask: &[bool], sizes: &[(&str, usize)]) -> Result<usize> {
    for &(name, len) in sizes {
        if len != mask.len() {
            let all: Vec<String> = std::iter::once(format!("mask_in {}", mask.len()))
                .chain(sizes.iter().map(|(n, l)| format!("{n} {l}")))
                .collect();
            return Err(Error::new(format!(
                "FeatureExtractor: all inputs must have as many elements as mask_in; {name} differs ({})",
                all.join(", ")
            )));
        }
    }
    Ok(mask.iter().filter(|&&m| m).count())
}

/// `FeatureExtractor`: the elements of `input` where `mask` is true, in order.
/// `out` has as many elements as `mask` has trues.
pub fn extract<T: Copy>(mask: &[bool], input: &[T], out: &mut [T]) {
    // Without a branch on the mask (a random mask mispredicts half the
    // time): every element is written to the next free slot, which advances
    // only for a kept one, so a dropped element is overwritten by the next
    // kept one. The loop ends when the last slot holds a kept element.
    let n = out.len();
    let mut j = 0;
    for (&m, &v) in mask.iter().zip(input) {
        if j == n {
            break;
        }
        out[j] = v;
        j += usize::from(m);
    }
}

/// `GetSubstrings`: a word's n-grams as twml's fastText-style code makes them.
#[derive(Debug, Clone, Copy)]
pub struct Substrings {
    min_n: usize,
    max_n: usize,
}

impl Substrings {
    /// twml took any ints: a negative one turned into a huge unsigned length
    /// whose result depends on wrap-around; here it is an error.
    pub fn new(min_n: i64, max_n: i64) -> Result<Self> {
        for (name, v) in [("min_n", min_n), ("max_n", max_n)] {
            if v < 0 {
                return Err(Error::new(format!(
                    "GetSubstrings: {name} is an n-gram length in bytes and must be non-negative, got {v}"
                )));
            }
        }
        Ok(Substrings {
            min_n: min_n as usize,
            max_n: max_n as usize,
        })
    }

    /// Writes into `out` the distinct strings among `word`, `<word>` and the
    /// substrings of `<word>` of `min_n..=max_n` bytes that start on a UTF-8
    /// character (a byte that is not 0b10xxxxxx), sorted bytewise and joined
    /// by `;`. Lengths are in bytes, as twml's: an n-gram may end inside a
    /// character, and a `min_n` of 0 adds the empty string (a leading `;`).
    pub fn of(&self, word: &[u8], out: &mut Vec<u8>) {
        let mut wrapped = Vec::with_capacity(word.len() + 2);
        wrapped.push(b'<');
        wrapped.extend_from_slice(word);
        wrapped.push(b'>');
        let mut grams: Vec<&[u8]> = vec![word, &wrapped];
        for i in 0..wrapped.len() {
            if wrapped[i] & 0xC0 == 0x80 {
                continue;
            }
            let longest = self.max_n.min(wrapped.len() - i);
            for n in self.min_n..=longest {
                grams.push(&wrapped[i..i + n]);
            }
        }
        grams.sort_unstable();
        grams.dedup();
        out.clear();
        for (k, g) in grams.iter().enumerate() {
            if k > 0 {
                out.push(b';');
            }
            out.extend_from_slice(g);
        }
    }
}

#[cfg(test)]
mod tests;
