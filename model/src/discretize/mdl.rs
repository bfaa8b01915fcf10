//! twml's `MDL`, `PercentileDiscretizer` and `PercentileDiscretizerBinIndices`
//! (`mdlInfer` in `lib/optim.cpp`): key k's boundaries are
//! `bin_vals[feature_offsets[k]..feature_offsets[k + 1]]` (the last key's run
//! to the end); a value becomes (the `bin_ids` entry, or the index, of the
//! boundary twml's search stops at, 1). Key -1 (a key the hashmap did not
//! find) passes its value through.
//!
//! twml leaves the output key of a -1 key uninitialised; here it is -1. Keys
//! outside the offsets, offsets outside the bins, empty runs and NaN
//! boundaries (where twml reads out of bounds or hangs) are errors.

use super::interpolate::{check_no_nan, search};
use super::{Error, Real, Result};

/// Which op: the names for messages and what the new key is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// `MDL`, `PercentileDiscretizer`: the `bin_ids` entry.
    BinIds,
    /// `PercentileDiscretizerBinIndices`: the boundary's index in its run.
    BinIndices,
}

/// The checked calibration of one call.
pub struct Table<'a, T> {
    bin_ids: &'a [i64],
    bin_vals: &'a [T],
    offsets: &'a [i64],
}

impl<'a, T: Real> Table<'a, T> {
    /// Checks what twml reads: `bin_ids` and `bin_vals` one length,
    /// offsets non-decreasing inside it with non-empty runs, no NaN boundary.
    pub fn new(
        op: &str,
        bin_ids: &'a [i64],
        bin_vals: &'a [T],
        offsets: &'a [i64],
    ) -> Result<Self> {
        if bin_ids.len() != bin_vals.len() {
            return Err(Error::new(format!(
                "{op}: bin_ids has {} elements and bin_vals {}; they must match",
                bin_ids.len(),
                bin_vals.len()
            )));
        }
        let total = bin_vals.len() as i64;
        for (k, &start) in offsets.iter().enumerate() {
            let end = offsets.get(k + 1).copied().unwrap_or(total);
            if start < 0 || start >= end || end > total {
                return Err(Error::new(format!(
                    "{op}: feature_offsets[{k}] = {start} starts a run of bins ending at {end}; \
                     runs must be non-empty and inside the {total} bins (offsets ascending from 0)"
                )));
            }
        }
        check_no_nan(bin_vals, |i| format!("{op}: bin_vals[{i}]"))?;
        Ok(Table {
            bin_ids,
            bin_vals,
            offsets,
        })
    }

    /// The `bin_ids` entry of the boundary twml's search stops at for `val`
    /// in feature `k`'s run (`k` < the number of offsets, checked by the caller).
    pub fn nearest_id(&self, k: usize, val: T) -> i64 {
        let start = self.offsets[k] as usize;
        let end = self
            .offsets
            .get(k + 1)
            .map_or(self.bin_vals.len(), |&e| e as usize);
        let (left, _) = search(&self.bin_vals[start..end], val, false);
        self.bin_ids[start + left]
    }

    /// Discretizes `keys`/`vals` into `out_keys`/`out_vals` (one length).
    pub fn discretize(
        &self,
        op: &str,
        output: Output,
        keys: &[i64],
        vals: &[T],
        out_keys: &mut [i64],
        out_vals: &mut [T],
    ) -> Result<()> {
        let total = self.bin_vals.len();
        for (i, (&key, &val)) in keys.iter().zip(vals).enumerate() {
            if key == -1 {
                out_keys[i] = -1;
                out_vals[i] = val;
                continue;
            }
            if key < 0 || key as usize >= self.offsets.len() {
                return Err(Error::new(format!(
                    "{op}: keys[{i}] = {key} is outside the {} calibrated features \
                     (keys are the hashmap's indices, -1 for a feature not calibrated)",
                    self.offsets.len()
                )));
            }
            let k = key as usize;
            let start = self.offsets[k] as usize;
            let end = self.offsets.get(k + 1).map_or(total, |&e| e as usize);
            let (left, _) = search(&self.bin_vals[start..end], val, false);
            out_keys[i] = match output {
                Output::BinIds => self.bin_ids[start + left],
                Output::BinIndices => left as i64,
            };
            out_vals[i] = T::ONE;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_boundary_below_and_pass_through() {
        let ids = [10, 11, 12, 20, 21];
        let vals = [0.0f32, 1.0, 2.0, -5.0, 5.0];
        let t = Table::new("MDL", &ids, &vals, &[0, 3]).unwrap();
        let keys = [0, 0, 0, 1, -1, 0, 0];
        let v = [0.5f32, 1.0, 9.0, 0.0, 3.5, f32::NAN, -9.0];
        let mut ok = [0; 7];
        let mut ov = [0.0f32; 7];
        t.discretize("MDL", Output::BinIds, &keys, &v, &mut ok, &mut ov)
            .unwrap();
        assert_eq!(ok, [10, 11, 12, 20, -1, 10, 10]);
        assert_eq!(ov, [1.0, 1.0, 1.0, 1.0, 3.5, 1.0, 1.0]);
        t.discretize("P", Output::BinIndices, &keys, &v, &mut ok, &mut ov)
            .unwrap();
        assert_eq!(ok, [0, 1, 2, 0, -1, 0, 0]);
    }

    #[test]
    fn bad_tables_and_keys_are_errors() {
        let v = [0.0f64, 1.0, 2.0];
        assert!(Table::new("MDL", &[1, 2], &v, &[0]).is_err());
        assert!(Table::new("MDL", &[1, 2, 3], &v, &[0, 3]).is_err()); // empty last run
        assert!(Table::new("MDL", &[1, 2, 3], &v, &[1, 0]).is_err());
        assert!(Table::new("MDL", &[1, 2, 3], &[0.0, f64::NAN, 1.0], &[0]).is_err());
        let t = Table::new("MDL", &[1, 2, 3], &v, &[0, 1]).unwrap();
        let (mut k, mut o) = ([0; 1], [0.0; 1]);
        let e = t
            .discretize("MDL", Output::BinIds, &[2], &[0.5], &mut k, &mut o)
            .unwrap_err();
        assert!(e.message().contains("keys[0] = 2 is outside the 2"), "{e}");
        assert!(t
            .discretize("MDL", Output::BinIds, &[-2], &[0.5], &mut k, &mut o)
            .is_err());
    }
}
