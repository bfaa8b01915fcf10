//! `PartitionSparseTensorMod`: splits a batch's sparse features (`indices`
//! rows of [id, key], one value each) into `num_partitions` sparse tensors by
//! `key mod num_partitions`, with the key divided by `num_partitions` in its
//! partition (so partition p, key q stands for key `q * num_partitions + p`).
//!
//! twml's kernel took C++'s `%` of a signed key: a negative key gave a
//! negative partition and a write before its array (a segfault). Here the
//! partition is the Euclidean remainder and the new key the matching floor
//! division, which equal twml's for every key twml handled (non-negative ones)
//! and keep `key == q * num_partitions + p` for negative ones.

use super::{dims_text, Error, Result};

const OP: &str = "PartitionSparseTensorMod";

fn check(indices_dims: &[i64], values_dims: &[i64], num_partitions: i64) -> Result<usize> {
    if num_partitions <= 0 {
        return Err(Error::new(format!(
            "{OP}: num_partitions must be positive, got {num_partitions}"
        )));
    }
    if indices_dims.len() != 2 || indices_dims[1] != 2 {
        return Err(Error::new(format!(
            "{OP}: indices must be a matrix [n, 2] of (id, key) rows, got shape {}",
            dims_text(indices_dims)
        )));
    }
    if values_dims.len() != 1 || values_dims[0] != indices_dims[0] {
        return Err(Error::new(format!(
            "{OP}: values must be a vector with one value per row of indices, [{}], got shape {}",
            indices_dims[0],
            dims_text(values_dims)
        )));
    }
    Ok(usize::try_from(indices_dims[0]).expect("a dim is non-negative"))
}

/// How many entries go to each partition; checks the shapes and
/// `num_partitions` first.
pub fn partition_counts(
    indices: &[i64],
    indices_dims: &[i64],
    values_dims: &[i64],
    num_partitions: i64,
) -> Result<Vec<usize>> {
    let n = check(indices_dims, values_dims, num_partitions)?;
    if indices.len() != 2 * n {
        return Err(Error::new(format!(
            "{OP}: indices holds {} elements for shape {} (a bug in the caller)",
            indices.len(),
            dims_text(indices_dims)
        )));
    }
    let parts = usize::try_from(num_partitions).expect("checked positive");
    let mut counts = vec![0usize; parts];
    for row in indices.chunks_exact(2) {
        counts[row[1].rem_euclid(num_partitions) as usize] += 1;
    }
    Ok(counts)
}

/// One partition's outputs: indices [count, 2], values [count].
pub struct PartitionOutput<'a, T> {
    pub indices: &'a mut [i64],
    pub values: &'a mut [T],
}

/// Fills each partition with its entries, in input order: row (id, key)
/// becomes (id, key div num_partitions) in partition key mod num_partitions.
/// `outputs` must be sized by [`partition_counts`].
pub fn partition_mod<T: Copy>(
    indices: &[i64],
    values: &[T],
    num_partitions: i64,
    outputs: &mut [PartitionOutput<'_, T>],
) -> Result<()> {
    let parts = usize::try_from(num_partitions).unwrap_or(0);
    if num_partitions <= 0 || outputs.len() != parts || indices.len() != 2 * values.len() {
        return Err(Error::new(format!(
            "{OP}: {} outputs for {num_partitions} partitions, {} indices for {} values (a bug in the caller)",
            outputs.len(),
            indices.len(),
            values.len()
        )));
    }
    let mut filled = vec![0usize; parts];
    for (row, &value) in indices.chunks_exact(2).zip(values) {
        let (id, key) = (row[0], row[1]);
        let p = key.rem_euclid(num_partitions) as usize;
        let j = filled[p];
        let out = &mut outputs[p];
        if j >= out.values.len() || out.indices.len() != 2 * out.values.len() {
            return Err(Error::new(format!(
                "{OP}: partition {p}'s outputs are smaller than its entries (a bug in the caller)"
            )));
        }
        out.indices[2 * j] = id;
        out.indices[2 * j + 1] = key.div_euclid(num_partitions);
        out.values[j] = value;
        filled[p] = j + 1;
    }
    if let Some(p) = (0..parts).find(|&p| filled[p] != outputs[p].values.len()) {
        return Err(Error::new(format!(
            "{OP}: partition {p} got {} entries for an output of {} (a bug in the caller)",
            filled[p],
            outputs[p].values.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(indices: &[i64], values: &[f32], n: i64) -> Vec<(Vec<i64>, Vec<f32>)> {
        let counts = partition_counts(
            indices,
            &[values.len() as i64, 2],
            &[values.len() as i64],
            n,
        )
        .unwrap();
        let mut bufs: Vec<(Vec<i64>, Vec<f32>)> = counts
            .iter()
            .map(|&c| (vec![0; 2 * c], vec![0.0; c]))
            .collect();
        let mut outs: Vec<PartitionOutput<f32>> = bufs
            .iter_mut()
            .map(|(i, v)| PartitionOutput {
                indices: i,
                values: v,
            })
            .collect();
        partition_mod(indices, values, n, &mut outs).unwrap();
        bufs
    }

    #[test]
    fn keys_split_by_modulo_in_order() {
        let got = run(&[0, 5, 0, 2, 1, 7, 2, 4], &[1.0, 2.0, 3.0, 4.0], 3);
        assert_eq!(got[0], (vec![], vec![]));
        // 7 = 2 * 3 + 1, 4 = 1 * 3 + 1; 5 = 1 * 3 + 2, 2 = 0 * 3 + 2.
        assert_eq!(got[1], (vec![1, 2, 2, 1], vec![3.0, 4.0]));
        assert_eq!(got[2], (vec![0, 1, 0, 0], vec![1.0, 2.0]));
    }

    #[test]
    fn negative_keys_reconstruct() {
        let got = run(&[0, -1, 0, -7], &[1.0, 2.0], 3);
        // -1 = -1 * 3 + 2; -7 = -3 * 3 + 2.
        assert_eq!(got[2], (vec![0, -1, 0, -3], vec![1.0, 2.0]));
    }

    #[test]
    fn bad_shapes_are_errors() {
        let e = partition_counts(&[], &[0, 2], &[0], 0).unwrap_err();
        assert!(
            e.message()
                .contains("num_partitions must be positive, got 0"),
            "{e}"
        );
        let e = partition_counts(&[0, 1, 2], &[1, 3], &[1], 2).unwrap_err();
        assert!(e.message().contains("[n, 2]"), "{e}");
        let e = partition_counts(&[0, 1], &[1, 2], &[1, 2], 2).unwrap_err();
        assert!(e.message().contains("values must be a vector"), "{e}");
    }
}
