//! twml's `PercentileDiscretizerV2` (`discretizerInfer` in
//! `lib/discretizer_impl.cpp`): a feature id found in the calibration's id ->
//! index map is discretized as `MDL` does its index (the `bin_ids` entry of
//! the boundary twml's search stops at, value 1); any other id keeps its value
//! and becomes `id % ((1 << output_bits) - total_bins) + total_bins` in twml's
//! unsigned 64-bit arithmetic.
//!
//! Kept as twml computes it, because trained models' ids depend on it: the
//! modulo is unsigned (a negative id wraps: -1 -> 435 at 10 bits and 3
//! bins) and `1 << output_bits` is a 32-bit `int` shift on x86 (the count
//! taken mod 32, 31 bits sign-extended). Made errors: a modulo by zero (twml
//! dies of SIGFPE when `1 << output_bits` equals the number of bins and an id
//! is uncalibrated), an index outside the offsets, offsets outside the bins
//! and NaN boundaries (twml reads out of bounds or hangs there).

use std::collections::HashMap;

use super::mdl::Table;
use super::{Error, Real, Result};

/// The calibration's id -> feature index map (twml's `ID_to_index`), built
/// once per kernel from the attrs or per change of the inputs.
#[derive(Clone, Debug)]
pub struct IdIndex {
    map: HashMap<i64, i64>,
    /// The smallest and largest index with the position of each in
    /// `feature_indices`, to check them against `feature_offsets` per call.
    lowest: Option<(i64, usize)>,
    highest: Option<(i64, usize)>,
}

impl IdIndex {
    /// `feature_ids[i]` -> `feature_indices[i]`; a repeated id keeps its last
    /// index, as twml's map assignment does.
    pub fn new(op: &str, feature_ids: &[i64], feature_indices: &[i64]) -> Result<Self> {
        if feature_ids.len() != feature_indices.len() {
            return Err(Error::new(format!(
                "{op}: feature_ids has {} elements and feature_indices {}; \
                 they must have one shape (index i of feature_ids[i])",
                feature_ids.len(),
                feature_indices.len()
            )));
        }
        let mut map = HashMap::with_capacity(feature_ids.len());
        for (&id, &index) in feature_ids.iter().zip(feature_indices) {
            map.insert(id, index);
        }
        let by_value = |a: &(usize, &i64), b: &(usize, &i64)| a.1.cmp(b.1);
        let lowest = feature_indices
            .iter()
            .enumerate()
            .min_by(by_value)
            .map(|(i, &v)| (v, i));
        let highest = feature_indices
            .iter()
            .enumerate()
            .max_by(by_value)
            .map(|(i, &v)| (v, i));
        Ok(IdIndex {
            map,
            lowest,
            highest,
        })
    }

    /// The index of `id`, if calibrated.
    pub fn get(&self, id: i64) -> Option<i64> {
        self.map.get(&id).copied()
    }

    /// Every index names a run of `features` offsets.
    fn check(&self, op: &str, features: usize) -> Result<()> {
        for (index, at) in [self.lowest, self.highest].into_iter().flatten() {
            if index < 0 || index as u64 >= features as u64 {
                return Err(Error::new(format!(
                    "{op}: feature_indices[{at}] = {index} is outside the {features} features \
                     of feature_offsets (indices run from 0 to len(feature_offsets) - 1)"
                )));
            }
        }
        Ok(())
    }
}

/// twml's `(uint64_t)(1 << output_bits)`: a 32-bit `int` shift whose count x86
/// takes mod 32, converted (sign-extended) to 64 bits.
pub fn output_size(output_bits: i64) -> u64 {
    i64::from(1i32.wrapping_shl((output_bits & 31) as u32)) as u64
}

/// The new id of an uncalibrated `id`, as twml computes it; None where twml
/// divides by zero (`output_size == total_bins`).
pub fn uncalibrated_key(id: i64, output_bits: i64, total_bins: usize) -> Option<i64> {
    let total = total_bins as u64;
    let modulus = output_size(output_bits).wrapping_sub(total);
    if modulus == 0 {
        None
    } else {
        Some(((id as u64) % modulus).wrapping_add(total) as i64)
    }
}

/// One call's checked inputs: after [`Discretizer::new`] nothing can fail,
/// so the work may be split over threads.
pub struct Discretizer<'a, T> {
    index: &'a IdIndex,
    table: Table<'a, T>,
    output_bits: i64,
    total_bins: usize,
}

impl<'a, T: Real> Discretizer<'a, T> {
    /// Checks the calibration (as [`Table::new`], and every index inside the
    /// offsets) and, where twml would divide by zero, that every id of
    /// `input_ids` is calibrated.
    pub fn new(
        op: &str,
        index: &'a IdIndex,
        bin_ids: &'a [i64],
        bin_vals: &'a [T],
        offsets: &'a [i64],
        output_bits: i64,
        input_ids: &[i64],
    ) -> Result<Self> {
        let table = Table::new(op, bin_ids, bin_vals, offsets)?;
        index.check(op, offsets.len())?;
        let total_bins = bin_ids.len();
        if uncalibrated_key(0, output_bits, total_bins).is_none() {
            if let Some((i, id)) = input_ids
                .iter()
                .enumerate()
                .find(|(_, &id)| index.get(id).is_none())
            {
                return Err(Error::new(format!(
                    "{op}: input_ids[{i}] = {id} is not calibrated, and its new id is taken \
                     modulo (1 << output_bits) - len(bin_ids) = {} - {total_bins} = 0 \
                     (twml dies of SIGFPE here); use output_bits with 1 << output_bits > {total_bins}",
                    output_size(output_bits)
                )));
            }
        }
        Ok(Discretizer {
            index,
            table,
            output_bits,
            total_bins,
        })
    }

    /// Discretizes `ids`/`vals` into `keys`/`out` (all one length).
    pub fn run(&self, ids: &[i64], vals: &[T], keys: &mut [i64], out: &mut [T]) {
        for (((&id, &val), key), o) in ids.iter().zip(vals).zip(keys).zip(out) {
            match self.index.get(id) {
                Some(k) => {
                    *key = self.table.nearest_id(k as usize, val);
                    *o = T::ONE;
                }
                None => {
                    // Checked in new: the modulus is not zero here.
                    *key = uncalibrated_key(id, self.output_bits, self.total_bins).unwrap_or(-1);
                    *o = val;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twmls_unsigned_modulo_and_32_bit_shift() {
        // -1 as u64 = 2^64 - 1; (2^64 - 1) % (1024 - 3) = 432; + 3 = 435.
        assert_eq!(uncalibrated_key(-1, 10, 3), Some(435));
        assert_eq!(uncalibrated_key(-1, 10, 8), Some(263));
        assert_eq!(uncalibrated_key(5, 10, 8), Some(13));
        assert_eq!(uncalibrated_key(1016, 10, 8), Some(8));
        // 1 << 10 == 1024 bins: twml's modulo by zero.
        assert_eq!(uncalibrated_key(5, 10, 1024), None);
        // Fewer output ids than bins: 1024 - 2000 wraps to 2^64 - 976.
        assert_eq!(uncalibrated_key(5, 10, 2000), Some(2005));
        // 31 bits: int 1 << 31 is INT_MIN, sign-extended.
        assert_eq!(output_size(31), 0xffff_ffff_8000_0000);
        // 32 bits: the count is taken mod 32 on x86.
        assert_eq!(output_size(32), 1);
        assert_eq!(output_size(40), 256);
    }

    #[test]
    fn calibrated_ids_take_the_bin_id_and_others_pass_through() {
        let index = IdIndex::new("P", &[100, 7], &[1, 0]).unwrap();
        let bin_ids = [1i64, 2, 3, 4, 5, 6];
        let bin_vals = [0.0f64, 1.0, 2.0, -1.0, 0.0, 1.0];
        let offsets = [0i64, 3];
        let ids = [7i64, 7, 100, 100, 100, 9, -1, 7];
        let vals = [0.5f64, 2.0, -5.0, 0.0, 0.5, 3.25, 1.5, f64::NAN];
        let d = Discretizer::new("P", &index, &bin_ids, &bin_vals, &offsets, 10, &ids).unwrap();
        let mut keys = [0i64; 8];
        let mut out = [0.0f64; 8];
        d.run(&ids, &vals, &mut keys, &mut out);
        // 0.5 in [0, 1] -> first boundary's id; 2.0 at the top -> last;
        // feature 100 (index 1) owns ids 4..=6; NaN stops at the first.
        assert_eq!(keys, [1, 3, 4, 5, 5, 15, 307, 1]);
        assert_eq!(out[..5], [1.0; 5]);
        assert_eq!(out[5], 3.25);
        assert_eq!(out[6], 1.5);
    }

    #[test]
    fn duplicate_ids_keep_the_last_index() {
        let index = IdIndex::new("P", &[3, 3], &[0, 1]).unwrap();
        assert_eq!(index.get(3), Some(1));
    }

    #[test]
    fn mistakes_are_errors() {
        let e = IdIndex::new("P", &[1, 2], &[0]).unwrap_err();
        assert!(e.message().contains("feature_ids has 2"), "{e}");
        let index = IdIndex::new("P", &[1, 2], &[0, 2]).unwrap();
        let e = Discretizer::new("P", &index, &[1, 2], &[0.0f32, 1.0], &[0, 1], 10, &[])
            .err()
            .unwrap();
        assert!(
            e.message()
                .contains("feature_indices[1] = 2 is outside the 2"),
            "{e}"
        );
        let index = IdIndex::new("P", &[1], &[-1]).unwrap();
        assert!(Discretizer::new("P", &index, &[1], &[0.0f32], &[0], 10, &[]).is_err());
        let index = IdIndex::new("P", &[1], &[0]).unwrap();
        assert!(Discretizer::new("P", &index, &[1], &[f32::NAN], &[0], 10, &[]).is_err());
        // 1 << 2 == 4 bins: fine while every id is calibrated.
        let bins = [0.0f32, 1.0, 2.0, 3.0];
        assert!(Discretizer::new("P", &index, &[1, 2, 3, 4], &bins, &[0], 2, &[1, 1]).is_ok());
        let e = Discretizer::new("P", &index, &[1, 2, 3, 4], &bins, &[0], 2, &[1, 5])
            .err()
            .unwrap();
        assert!(
            e.message().contains("input_ids[1] = 5 is not calibrated"),
            "{e}"
        );
    }
}
