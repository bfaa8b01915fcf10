//! The sparse-normalisation ops: `SparseMaxNorm` (on a reference variable),
//! `SparseMaxNormInference`, `SparseMaxNormTraining` and `SparseBatchNorm`.
//! Each value `values[i]` belongs to feature `indices[i]`, whose running
//! statistic (maximum, or mean and variance) lives at that index.
//!
//! twml read every statistic at `indices[i]` unchecked (an index past the
//! variable read or wrote out of bounds) and read `values` for as many
//! entries as `indices` had; here every index and length is checked before
//! anything is written, so a bad batch leaves the variables as they were.

use super::{dims_text, Error, Result};

/// `std::max(a, b)` as C++ defines it, `(a < b) ? b : a`: with a NaN `b` it
/// keeps `a`, with a NaN `a` it keeps the NaN. twml's results on NaN (a NaN
/// maximum stays; a NaN value does not update it) follow from this.
#[inline(always)]
fn cpp_max(a: f32, b: f32) -> f32 {
    if a < b {
        b
    } else {
        a
    }
}

/// Checks that `indices` and `values` pair up and that every index is in
/// `[0, size)`; `size_text` says where the bound comes from.
fn check_indices(
    op: &str,
    indices: &[i64],
    values: &[f32],
    out_len: usize,
    size: usize,
    size_text: &str,
) -> Result<()> {
    check_lengths(op, indices, values, out_len)?;
    if let Some((i, &idx)) = indices
        .iter()
        .enumerate()
        .find(|&(_, &idx)| idx < 0 || idx as u64 >= size as u64)
    {
        return Err(out_of_bounds(op, i, idx, size, size_text));
    }
    Ok(())
}

/// The length checks of [`check_indices`].
fn check_lengths(op: &str, indices: &[i64], values: &[f32], out_len: usize) -> Result<()> {
    if indices.len() != values.len() {
        return Err(Error::new(format!(
            "{op}: indices has {} elements but values has {}; they must match (one feature index per value)",
            indices.len(),
            values.len()
        )));
    }
    if out_len != values.len() {
        return Err(Error::new(format!(
            "{op}: the output holds {out_len} elements for {} values (a bug in the caller)",
            values.len()
        )));
    }
    Ok(())
}

fn out_of_bounds(op: &str, i: usize, idx: i64, size: usize, size_text: &str) -> Error {
    Error::new(format!(
        "{op}: indices[{i}] = {idx} is out of bounds: feature indices must be in [0, {size}) ({size_text})"
    ))
}

fn normalize(value: f32, max_value: f32, epsilon: f32) -> f32 {
    value / cpp_max(max_value, epsilon)
}

/// `SparseMaxNormInference`: `out[i] = values[i] / max(max(max_values[idx],
/// |values[i]|), epsilon)` with `idx = indices[i]`; the maxima are not changed.
pub fn max_norm_inference(
    max_values: &[f32],
    indices: &[i64],
    values: &[f32],
    epsilon: f32,
    out: &mut [f32],
) -> Result<()> {
    const OP: &str = "SparseMaxNormInference";
    // The lengths first; the indices are checked in the loop itself (one
    // pass over them, not two): nothing but `out`, a fresh output that an
    // error discards, is written before a bad index is found.
    check_lengths(OP, indices, values, out.len())?;
    for (i, ((o, &idx), &value)) in out.iter_mut().zip(indices).zip(values).enumerate() {
        let Some(&stored) = usize::try_from(idx).ok().and_then(|k| max_values.get(k)) else {
            let size = max_values.len();
            let text = format!("max_values has {size} elements");
            return Err(out_of_bounds(OP, i, idx, size, &text));
        };
        *o = normalize(value, cpp_max(stored, value.abs()), epsilon);
    }
    Ok(())
}

/// `SparseMaxNormTraining`: `updated` starts as a copy of `max_values`; for
/// each i in order, `updated[idx] = max(updated[idx], |values[i]|)` and
/// `out[i] = values[i] / max(updated[idx], epsilon)` (a later value of the
/// same feature sees the maximum the earlier ones made).
pub fn max_norm_training(
    max_values: &[f32],
    indices: &[i64],
    values: &[f32],
    epsilon: f32,
    updated: &mut [f32],
    out: &mut [f32],
) -> Result<()> {
    if updated.len() != max_values.len() {
        return Err(Error::new(format!(
            "SparseMaxNormTraining: updated_max_values holds {} elements for {} maxima (a bug in the caller)",
            updated.len(),
            max_values.len()
        )));
    }
    check_indices(
        "SparseMaxNormTraining",
        indices,
        values,
        out.len(),
        max_values.len(),
        &format!("max_values has {} elements", max_values.len()),
    )?;
    updated.copy_from_slice(max_values);
    update_and_normalize(updated, indices, values, epsilon, true, out);
    Ok(())
}

fn update_and_normalize(
    max_values: &mut [f32],
    indices: &[i64],
    values: &[f32],
    epsilon: f32,
    update: bool,
    out: &mut [f32],
) {
    for ((o, &idx), &value) in out.iter_mut().zip(indices).zip(values) {
        let slot = &mut max_values[idx as usize];
        let max_value = cpp_max(*slot, value.abs());
        *o = normalize(value, max_value, epsilon);
        if update {
            *slot = max_value;
        }
    }
}

/// `SparseMaxNorm` (twml's op on a reference variable): as
/// [`max_norm_training`] with the maxima updated in place when `is_training`,
/// as [`max_norm_inference`] (a later value does not see an earlier one's
/// maximum) when not. `is_training` holds the `is_training` input's elements,
/// which must be exactly one.
pub fn max_norm_in_place(
    max_values: &mut [f32],
    indices: &[i64],
    values: &[f32],
    is_training: &[bool],
    is_training_dims: &[i64],
    epsilon: f32,
    out: &mut [f32],
) -> Result<()> {
    let is_training = scalar_flag("SparseMaxNorm", is_training, is_training_dims)?;
    let size = max_values.len();
    check_indices(
        "SparseMaxNorm",
        indices,
        values,
        out.len(),
        size,
        &format!("max_values has {size} elements"),
    )?;
    update_and_normalize(max_values, indices, values, epsilon, is_training, out);
    Ok(())
}

/// twml read `is_training` with `scalar<bool>()`, which aborts the process on
/// anything but one element.
fn scalar_flag(op: &str, flag: &[bool], dims: &[i64]) -> Result<bool> {
    match flag {
        [b] if dims.is_empty() => Ok(*b),
        _ => Err(Error::new(format!(
            "{op}: is_training must be a scalar bool, got shape {}",
            dims_text(dims)
        ))),
    }
}

/// `SparseBatchNorm`'s running counts and sums of squared differences, which
/// twml kept in the kernel, not in the variables: one per feature, sized by
/// the `input_size` attr, living as long as the kernel does.
#[derive(Clone, Debug)]
pub struct BatchNormState {
    counts: Vec<i64>,
    m2s: Vec<f32>,
}

impl BatchNormState {
    /// State for `input_size` features, all counts zero.
    pub fn new(input_size: i64) -> Result<Self> {
        let n = usize::try_from(input_size).map_err(|_| {
            Error::new(format!(
                "SparseBatchNorm: input_size must be non-negative, got {input_size}"
            ))
        })?;
        Ok(BatchNormState {
            counts: vec![0; n],
            m2s: vec![0.0; n],
        })
    }

    /// When `is_training`, updates each value's feature with Welford's online
    /// algorithm (twml's order: count, mean, sum of squares, then `variances
    /// = m2 / count`), value by value; then `out[i] = (values[i] - mean) /
    /// sqrt(variance + epsilon)` with the updated statistics.
    #[allow(clippy::too_many_arguments)]
    pub fn apply(
        &mut self,
        means: &mut [f32],
        variances: &mut [f32],
        indices: &[i64],
        values: &[f32],
        is_training: &[bool],
        is_training_dims: &[i64],
        epsilon: f32,
        out: &mut [f32],
    ) -> Result<()> {
        let is_training = scalar_flag("SparseBatchNorm", is_training, is_training_dims)?;
        let size = self.counts.len().min(means.len()).min(variances.len());
        check_indices(
            "SparseBatchNorm",
            indices,
            values,
            out.len(),
            size,
            &format!(
                "input_size is {}, means has {} elements, variances {}",
                self.counts.len(),
                means.len(),
                variances.len()
            ),
        )?;
        if is_training {
            for (&idx, &value) in indices.iter().zip(values) {
                let idx = idx as usize;
                let count = self.counts[idx] + 1;
                let old_mean = means[idx];
                let old_delta = value - old_mean;
                let new_mean = old_mean + old_delta / count as f32;
                let new_delta = value - new_mean;
                self.counts[idx] = count;
                self.m2s[idx] += new_delta * old_delta;
                means[idx] = new_mean;
                variances[idx] = self.m2s[idx] / count as f32;
            }
        }
        for ((o, &idx), &value) in out.iter_mut().zip(indices).zip(values) {
            let idx = idx as usize;
            let stdev = (variances[idx] + epsilon).sqrt();
            *o = (value - means[idx]) / stdev;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn training_sees_earlier_values_of_the_same_feature() {
        let mut updated = [0.0f32; 3];
        let mut out = [0.0f32; 3];
        max_norm_training(
            &[1.0, 0.0, 2.0],
            &[1, 1, 0],
            &[4.0, -2.0, 0.5],
            1e-5,
            &mut updated,
            &mut out,
        )
        .unwrap();
        assert_eq!(updated, [1.0, 4.0, 2.0]);
        assert_eq!(out, [1.0, -0.5, 0.5]);
        let mut out = [0.0f32; 3];
        max_norm_inference(
            &[1.0, 0.0, 2.0],
            &[1, 1, 0],
            &[4.0, -2.0, 0.5],
            1e-5,
            &mut out,
        )
        .unwrap();
        assert_eq!(out, [1.0, -1.0, 0.5]);
    }

    #[test]
    fn nan_follows_cpp_max() {
        let mut updated = [0.0f32; 2];
        let mut out = [0.0f32; 2];
        max_norm_training(
            &[f32::NAN, 3.0],
            &[0, 1],
            &[1.0, f32::NAN],
            1e-5,
            &mut updated,
            &mut out,
        )
        .unwrap();
        assert!(updated[0].is_nan(), "a NaN maximum stays");
        assert_eq!(updated[1], 3.0, "a NaN value does not update the maximum");
        assert!(out[0].is_nan() && out[1].is_nan());
    }

    #[test]
    fn inference_names_the_first_bad_index() {
        let max = [1.0f32, 2.0];
        let mut out = [0.0f32; 3];
        for (indices, want) in [
            ([0i64, 2, -1], "indices[1] = 2 is out of bounds: feature indices must be in [0, 2) (max_values has 2 elements)"),
            ([1, -1, 5], "indices[1] = -1 is out of bounds"),
        ] {
            let e = max_norm_inference(&max, &indices, &[1.0; 3], 1e-5, &mut out).unwrap_err();
            assert!(e.message().contains(want), "{e}");
        }
        max_norm_inference(&max, &[1, 0, 1], &[1.0, -4.0, 1.0], 1e-5, &mut out).unwrap();
        assert_eq!(out, [0.5, -1.0, 0.5]);
    }

    #[test]
    fn bad_indices_change_nothing() {
        let mut max = [1.0f32, 2.0];
        let mut out = [0.0f32; 2];
        let e = max_norm_in_place(&mut max, &[0, 2], &[5.0, 5.0], &[true], &[], 1e-5, &mut out)
            .unwrap_err();
        assert!(
            e.message().contains("indices[1] = 2 is out of bounds"),
            "{e}"
        );
        assert_eq!(max, [1.0, 2.0]);
        let e = max_norm_in_place(
            &mut max,
            &[0],
            &[5.0],
            &[true, false],
            &[2],
            1e-5,
            &mut out[..1],
        )
        .unwrap_err();
        assert!(
            e.message()
                .contains("is_training must be a scalar bool, got shape [2]"),
            "{e}"
        );
        let e = max_norm_inference(&max, &[0, 1], &[5.0], 1e-5, &mut out[..1]).unwrap_err();
        assert!(
            e.message()
                .contains("indices has 2 elements but values has 1"),
            "{e}"
        );
    }

    #[test]
    fn batch_norm_is_welford() {
        let mut state = BatchNormState::new(2).unwrap();
        let (mut means, mut vars) = ([0.0f32; 2], [0.0f32; 2]);
        let mut out = [0.0f32; 3];
        state
            .apply(
                &mut means,
                &mut vars,
                &[0, 0, 0],
                &[1.0, 2.0, 3.0],
                &[true],
                &[],
                0.0,
                &mut out,
            )
            .unwrap();
        assert_eq!(means[0], 2.0);
        assert!((vars[0] - 2.0 / 3.0).abs() < 1e-6);
        // The counts live in the state: a second batch continues them.
        state
            .apply(
                &mut means,
                &mut vars,
                &[0],
                &[6.0],
                &[true],
                &[],
                0.0,
                &mut out[..1],
            )
            .unwrap();
        assert_eq!(means[0], 3.0);
        assert!((vars[0] - 3.5).abs() < 1e-6);
        assert!(BatchNormState::new(-1).is_err());
        let e = state
            .apply(
                &mut means,
                &mut vars[..1],
                &[1],
                &[6.0],
                &[true],
                &[],
                0.0,
                &mut out[..1],
            )
            .unwrap_err();
        assert!(
            e.message()
                .contains("indices[0] = 1 is out of bounds: feature indices must be in [0, 1)"),
            "{e}"
        );
    }
}
