//! Fuzzes the sparse kernels (bpr_model::sparse): the binary sparse x dense
//! matmul of `FullSparse`, the sparse max- and batch-norms, and
//! `PartitionSparseTensorMod`, on arbitrary shapes (negative `a_shape`
//! values too), indices in and out of range, NaN/inf values and negative
//! keys. twml crashed or wrote out of bounds on several of these: here each
//! call either gives an `Err` (exactly when an index or shape is bad, checked
//! here independently, and then nothing the caller owns is changed) or the
//! result a plain loop over the entries gives.
#![no_main]

use arbitrary::Arbitrary;
use bpr_model::sparse::{self, BatchNormState, PartitionOutput};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    a_shape: [i8; 2],
    b_dims: [u8; 2],
    entries: Vec<(i8, i8)>,
    int32_indices: bool,
    adjoint_a: bool,
    adjoint_b: bool,
    elem: u8,
    b_vals: Vec<f32>,
    maxima: Vec<f32>,
    feature: Vec<i8>,
    values: Vec<f32>,
    epsilon: f32,
    flags: Vec<bool>,
    flag_rank: u8,
    input_size: i8,
    keys: Vec<(i16, i64)>,
    num_partitions: i8,
}

/// Equal, or both NaN.
fn same(a: f64, b: f64) -> bool {
    a == b || (a.is_nan() && b.is_nan()) || a.to_bits() == b.to_bits()
}

/// The element types of the matmul, with what the check needs.
trait Elem: sparse::Element + std::fmt::Debug {
    fn of(v: f32) -> Self;
    fn plus(self, o: Self) -> Self;
    fn eq_or_nan(self, o: Self) -> bool;
}
impl Elem for f32 {
    fn of(v: f32) -> Self {
        v
    }
    fn plus(self, o: Self) -> Self {
        self + o
    }
    fn eq_or_nan(self, o: Self) -> bool {
        same(self.into(), o.into())
    }
}
impl Elem for i32 {
    fn of(v: f32) -> Self {
        v as i32
    }
    fn plus(self, o: Self) -> Self {
        self.wrapping_add(o)
    }
    fn eq_or_nan(self, o: Self) -> bool {
        self == o
    }
}
impl Elem for sparse::Complex<f64> {
    fn of(v: f32) -> Self {
        sparse::Complex {
            re: v.into(),
            im: f64::from(v) * -0.5,
        }
    }
    fn plus(self, o: Self) -> Self {
        sparse::Complex {
            re: self.re + o.re,
            im: self.im + o.im,
        }
    }
    fn eq_or_nan(self, o: Self) -> bool {
        same(self.re, o.re) && same(self.im, o.im)
    }
}

fn matmul<T: Elem, I: sparse::Index>(inp: &Input, idx: fn(i8) -> I) {
    let nnz = inp.entries.len() as i64;
    let a_shape = inp.a_shape.map(i64::from);
    let b_dims = inp.b_dims.map(|d| i64::from(d % 9));
    let dims = sparse::binary_matmul_shape(
        &[nnz, 2],
        &[nnz],
        &[2],
        &a_shape,
        &b_dims,
        inp.adjoint_a,
        inp.adjoint_b,
    );
    let (rows, inner_a) = if inp.adjoint_a {
        (a_shape[1], a_shape[0])
    } else {
        (a_shape[0], a_shape[1])
    };
    let (inner_b, cols) = if inp.adjoint_b {
        (b_dims[1], b_dims[0])
    } else {
        (b_dims[0], b_dims[1])
    };
    let shape_ok = a_shape[0] >= 0 && a_shape[1] >= 0 && inner_a == inner_b;
    let d = match dims {
        Ok(d) => d,
        Err(e) => {
            assert!(!shape_ok, "rejected good shapes: {e}");
            return;
        }
    };
    assert!(shape_ok, "accepted bad shapes");
    assert_eq!(d.out, [rows as usize, cols as usize]);
    let indices: Vec<I> = inp
        .entries
        .iter()
        .flat_map(|&(r, c)| [idx(r), idx(c)])
        .collect();
    let b: Vec<T> = (0..(b_dims[0] * b_dims[1]) as usize)
        .map(|i| {
            T::of(
                inp.b_vals
                    .get(i % inp.b_vals.len().max(1))
                    .copied()
                    .unwrap_or(1.0),
            )
        })
        .collect();
    let sentinel = T::of(-7.0);
    let mut out = vec![sentinel; d.out_len()];
    let got = sparse::binary_matmul(&d, &indices, &b, &mut out);
    // Which entries point outside the product's rows or B's rows (the inner
    // dimension): checked only when there is work (twml's early returns).
    let entry = |&(r, c): &(i8, i8)| -> (i64, i64) {
        if inp.adjoint_a {
            (i64::from(c), i64::from(r))
        } else {
            (i64::from(r), i64::from(c))
        }
    };
    let work = !out.is_empty() && nnz > 0 && !b.is_empty();
    let bad = inp.entries.iter().any(|e| {
        let (m, k) = entry(e);
        m < 0 || m >= rows || k < 0 || k >= inner_a
    });
    if work && bad {
        let e = got.expect_err("an index out of range is an error");
        assert!(e.message().contains("out of bounds"), "{e}");
        assert!(
            out.iter().all(|v| v.eq_or_nan(sentinel)),
            "nothing written on error"
        );
        return;
    }
    got.unwrap();
    let (rows, cols) = (rows as usize, cols as usize);
    let mut want = vec![T::ZERO; rows * cols];
    if work {
        let b_at = |k: usize, j: usize| {
            if inp.adjoint_b {
                b[j * b_dims[1] as usize + k].conj()
            } else {
                b[k * cols + j]
            }
        };
        for e in &inp.entries {
            let (m, k) = entry(e);
            let (m, k) = (m as usize, k as usize);
            for j in 0..cols {
                want[m * cols + j] = want[m * cols + j].plus(b_at(k, j));
            }
        }
    }
    for (i, (g, w)) in out.iter().zip(&want).enumerate() {
        assert!(g.eq_or_nan(*w), "out[{i}] = {g:?}, want {w:?}");
    }
}

fn norms(inp: &Input) {
    let n = inp.feature.len().min(inp.values.len());
    let indices: Vec<i64> = inp.feature.iter().map(|&i| i64::from(i)).collect();
    let values = &inp.values[..n];
    let size = inp.maxima.len() as i64;
    let paired = indices.len() == n;
    let in_range = indices.iter().all(|&i| 0 <= i && i < size);
    let eps = inp.epsilon;

    let mut out = vec![0.0f32; n];
    let got = sparse::max_norm_inference(&inp.maxima, &indices, values, eps, &mut out);
    assert_eq!(got.is_ok(), paired && in_range, "{got:?}");

    let mut updated = vec![0.0f32; inp.maxima.len()];
    let got = sparse::max_norm_training(&inp.maxima, &indices, values, eps, &mut updated, &mut out);
    assert_eq!(got.is_ok(), paired && in_range, "{got:?}");
    if got.is_ok() {
        // Each maximum is the C++ std::max fold of its values' magnitudes.
        let mut want = inp.maxima.clone();
        for (&i, &v) in indices.iter().zip(values) {
            let slot = &mut want[i as usize];
            if *slot < v.abs() {
                *slot = v.abs();
            }
        }
        for (g, w) in updated.iter().zip(&want) {
            assert!(same((*g).into(), (*w).into()));
        }
    }

    let rank = usize::from(inp.flag_rank % 3);
    let flag_dims = vec![inp.flags.len() as i64; rank];
    let flags: &[bool] = if rank == 0 {
        &inp.flags[..inp.flags.len().min(1)]
    } else {
        &inp.flags
    };
    let flag_ok = rank == 0 && flags.len() == 1;
    let mut maxima = inp.maxima.clone();
    let got = sparse::max_norm_in_place(
        &mut maxima,
        &indices,
        values,
        flags,
        &flag_dims,
        eps,
        &mut out,
    );
    assert_eq!(got.is_ok(), flag_ok && paired && in_range, "{got:?}");
    if got.is_err() {
        assert!(maxima
            .iter()
            .zip(&inp.maxima)
            .all(|(a, b)| a.to_bits() == b.to_bits()));
    }

    let state = BatchNormState::new(i64::from(inp.input_size));
    let Ok(mut state) = state else {
        assert!(inp.input_size < 0);
        return;
    };
    let mut means: Vec<f32> = inp.maxima.clone();
    let mut vars: Vec<f32> = inp.maxima.iter().map(|v| v.abs()).collect();
    let (m0, v0) = (means.clone(), vars.clone());
    let bound = i64::from(inp.input_size).min(size);
    let in_range = indices.iter().all(|&i| 0 <= i && i < bound);
    let got = state.apply(
        &mut means, &mut vars, &indices, values, flags, &flag_dims, eps, &mut out,
    );
    assert_eq!(got.is_ok(), flag_ok && paired && in_range, "{got:?}");
    if got.is_err() {
        assert!(means
            .iter()
            .zip(&m0)
            .all(|(a, b)| a.to_bits() == b.to_bits()));
        assert!(vars
            .iter()
            .zip(&v0)
            .all(|(a, b)| a.to_bits() == b.to_bits()));
    }
}

fn partition(inp: &Input) {
    let n = inp.keys.len();
    let indices: Vec<i64> = inp
        .keys
        .iter()
        .flat_map(|&(id, key)| [i64::from(id), key])
        .collect();
    let values: Vec<f32> = (0..n).map(|i| i as f32).collect();
    let parts = i64::from(inp.num_partitions);
    let dims = [n as i64, 2];
    let counts = match sparse::partition_counts(&indices, &dims, &[n as i64], parts) {
        Ok(c) => c,
        Err(e) => {
            assert!(parts <= 0, "{e}");
            return;
        }
    };
    assert_eq!(counts.len() as i64, parts);
    assert_eq!(counts.iter().sum::<usize>(), n);
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
    sparse::partition_mod(&indices, &values, parts, &mut outs).unwrap();
    let mut seen = vec![false; n];
    for (p, (idx, vals)) in bufs.iter().enumerate() {
        let mut last = None;
        for (row, &v) in idx.chunks_exact(2).zip(vals) {
            let i = v as usize;
            assert!(
                !seen[i] && last.is_none_or(|l| i > l),
                "each entry once, in order"
            );
            seen[i] = true;
            last = Some(i);
            let (id, key) = inp.keys[i];
            assert_eq!(row[0], i64::from(id));
            // key == q * parts + p with 0 <= p < parts: checked in i128, so
            // i64's extremes cannot wrap.
            assert_eq!(
                i128::from(row[1]) * i128::from(parts) + p as i128,
                i128::from(key)
            );
        }
    }
    assert!(seen.iter().all(|&s| s));
    // Mismatched outputs are a caller's bug, reported, not a panic.
    if n > 0 {
        let mut short: Vec<PartitionOutput<f32>> = Vec::new();
        assert!(sparse::partition_mod(&indices, &values, parts, &mut short).is_err());
    }
}

fuzz_target!(|inp: Input| {
    let i64_of: fn(i8) -> i64 = i64::from;
    let i32_of: fn(i8) -> i32 = i32::from;
    match (inp.elem % 3, inp.int32_indices) {
        (0, false) => matmul::<f32, i64>(&inp, i64_of),
        (0, true) => matmul::<f32, i32>(&inp, i32_of),
        (1, false) => matmul::<i32, i64>(&inp, i64_of),
        (1, true) => matmul::<i32, i32>(&inp, i32_of),
        (_, false) => matmul::<sparse::Complex<f64>, i64>(&inp, i64_of),
        (_, true) => matmul::<sparse::Complex<f64>, i32>(&inp, i32_of),
    }
    norms(&inp);
    partition(&inp);
});
