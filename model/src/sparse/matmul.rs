//! `BinarySparseTensorDenseMatMul`: `A * B` where A is a sparse matrix whose
//! values are taken to be 1 (twml's "binary" features), so each entry (m, k)
//! of A adds row k of B to row m of the product.
//!
//! twml's kernel trusted the row index on its float, no-adjoint path (a large
//! one segfaulted, a small one wrote out of bounds) and aborted on a negative
//! `a_shape`; here both are errors, checked before anything is written.

use super::{dims_text, Error, Result};

const OP: &str = "BinarySparseTensorDenseMatMul";

/// An element of B and of the product: twml registers float, double, int32,
/// complex64 and complex128.
pub trait Element: Copy + Send + Sync + 'static {
    /// The additive identity.
    const ZERO: Self;
    /// `self + other`; int32 wraps, as twml's (Eigen's) addition does on x86.
    fn add(self, other: Self) -> Self;
    /// The complex conjugate (`adjoint_b` conjugates B); the identity for reals.
    fn conj(self) -> Self;
}

impl Element for f32 {
    const ZERO: Self = 0.0;
    #[inline(always)]
    fn add(self, other: Self) -> Self {
        self + other
    }
    #[inline(always)]
    fn conj(self) -> Self {
        self
    }
}

impl Element for f64 {
    const ZERO: Self = 0.0;
    #[inline(always)]
    fn add(self, other: Self) -> Self {
        self + other
    }
    #[inline(always)]
    fn conj(self) -> Self {
        self
    }
}

impl Element for i32 {
    const ZERO: Self = 0;
    #[inline(always)]
    fn add(self, other: Self) -> Self {
        self.wrapping_add(other)
    }
    #[inline(always)]
    fn conj(self) -> Self {
        self
    }
}

/// A complex number laid out as TensorFlow's complex64/complex128: real, then
/// imaginary part.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[repr(C)]
pub struct Complex<F> {
    pub re: F,
    pub im: F,
}

macro_rules! complex_element {
    ($f:ty) => {
        impl Element for Complex<$f> {
            const ZERO: Self = Complex { re: 0.0, im: 0.0 };
            #[inline(always)]
            fn add(self, other: Self) -> Self {
                Complex {
                    re: self.re + other.re,
                    im: self.im + other.im,
                }
            }
            #[inline(always)]
            fn conj(self) -> Self {
                Complex {
                    re: self.re,
                    im: -self.im,
                }
            }
        }
    };
}
complex_element!(f32);
complex_element!(f64);

/// An index of A: twml's `Tindices` is int32 or int64.
pub trait Index: Copy + Send + Sync + 'static {
    fn get(self) -> i64;
}

impl Index for i32 {
    #[inline(always)]
    fn get(self) -> i64 {
        i64::from(self)
    }
}

impl Index for i64 {
    #[inline(always)]
    fn get(self) -> i64 {
        self
    }
}

/// The checked shapes of one call, from [`binary_matmul_shape`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatMulDims {
    /// Entries of A (rows of `a_indices`).
    pub nnz: usize,
    /// `a_shape`, both entries non-negative.
    pub a_shape: [usize; 2],
    /// B's dims as stored (before `adjoint_b`).
    pub b_dims: [usize; 2],
    pub adjoint_a: bool,
    pub adjoint_b: bool,
    /// The product's dims.
    pub out: [usize; 2],
}

impl MatMulDims {
    /// The product's number of elements.
    pub fn out_len(&self) -> usize {
        self.out[0] * self.out[1]
    }

    /// The inner dimension (A's columns after `adjoint_a`).
    fn inner(&self) -> usize {
        self.a_shape[usize::from(!self.adjoint_a)]
    }
}

fn usize_of(v: i64) -> usize {
    usize::try_from(v).expect("checked non-negative")
}

/// Checks the inputs' shapes as twml's kernel does (plus a negative `a_shape`,
/// on which twml's aborted) and returns the product's dims.
///
/// `a_shape` holds the values of the `a_shape` input, whose own dims are
/// `a_shape_dims`.
pub fn binary_matmul_shape(
    a_indices_dims: &[i64],
    a_values_dims: &[i64],
    a_shape_dims: &[i64],
    a_shape: &[i64],
    b_dims: &[i64],
    adjoint_a: bool,
    adjoint_b: bool,
) -> Result<MatMulDims> {
    if b_dims.len() != 2 {
        return Err(Error::new(format!(
            "{OP}: b must be a matrix, got shape {}",
            dims_text(b_dims)
        )));
    }
    if a_shape_dims.len() != 1 || a_shape.len() != 2 {
        return Err(Error::new(format!(
            "{OP}: a_shape must be a vector of 2 elements (A's rows and columns), got shape {}",
            dims_text(a_shape_dims)
        )));
    }
    if a_values_dims.len() != 1 {
        return Err(Error::new(format!(
            "{OP}: a_values must be a vector, got shape {}",
            dims_text(a_values_dims)
        )));
    }
    if a_indices_dims.len() != 2 {
        return Err(Error::new(format!(
            "{OP}: a_indices must be a matrix [nnz, 2], got shape {}",
            dims_text(a_indices_dims)
        )));
    }
    if a_indices_dims[0] != a_values_dims[0] {
        return Err(Error::new(format!(
            "{OP}: a_indices has {} rows but a_values has {} entries; they must match (one index per value)",
            a_indices_dims[0], a_values_dims[0]
        )));
    }
    if a_indices_dims[1] != 2 {
        return Err(Error::new(format!(
            "{OP}: a_indices must have 2 columns (row, column), like a_shape's 2 entries, got shape {}",
            dims_text(a_indices_dims)
        )));
    }
    if a_shape[0] < 0 || a_shape[1] < 0 {
        return Err(Error::new(format!(
            "{OP}: a_shape must be non-negative, got {}",
            dims_text(a_shape)
        )));
    }
    let (outer_left, inner_left) = if adjoint_a {
        (a_shape[1], a_shape[0])
    } else {
        (a_shape[0], a_shape[1])
    };
    let (outer_right, inner_right) = if adjoint_b {
        (b_dims[0], b_dims[1])
    } else {
        (b_dims[1], b_dims[0])
    };
    if inner_left != inner_right {
        return Err(Error::new(format!(
            "{OP}: cannot multiply A and B because the inner dimensions do not match: {inner_left} vs. \
             {inner_right} (A is {} with adjoint_a={adjoint_a}, B is {} with adjoint_b={adjoint_b})",
            dims_text(a_shape),
            dims_text(b_dims)
        )));
    }
    // A product too large for memory fails here, not in the allocator.
    if (outer_left as u128) * (outer_right as u128) > (isize::MAX as u128) {
        return Err(Error::new(format!(
            "{OP}: the product [{outer_left}, {outer_right}] is too large"
        )));
    }
    Ok(MatMulDims {
        nnz: usize_of(a_indices_dims[0]),
        a_shape: [usize_of(a_shape[0]), usize_of(a_shape[1])],
        b_dims: [usize_of(b_dims[0]), usize_of(b_dims[1])],
        adjoint_a,
        adjoint_b,
        out: [usize_of(outer_left), usize_of(outer_right)],
    })
}

/// Which column of `a_indices` holds the product's row (m) and which B'
/// row (k).
fn columns(dims: &MatMulDims) -> (usize, usize) {
    if dims.adjoint_a {
        (1, 0)
    } else {
        (0, 1)
    }
}

/// Checks every entry's (m, k) against the product's rows and the inner
/// dimension, before anything is written. A separate pass rather than a
/// checked list of pairs: it allocates nothing, and the adding pass then
/// reads indices it knows are in bounds.
fn check_indices<I: Index>(dims: &MatMulDims, a_indices: &[I]) -> Result<()> {
    let (row_col, k_col) = columns(dims);
    let inner = dims.inner() as u64;
    let rows = dims.out[0] as u64;
    for (i, entry) in a_indices.chunks_exact(2).enumerate() {
        let m = entry[row_col].get();
        let k = entry[k_col].get();
        // twml checks the column (k) before the row (m); so do we, so that an
        // entry wrong in both gets the same complaint.
        if k < 0 || k as u64 >= inner {
            return Err(Error::new(format!(
                "{OP}: a_indices[{i}, {k_col}] = {k} is out of bounds: A's {} must be in [0, {inner}) \
                 (a_shape {:?}, adjoint_a={})",
                if dims.adjoint_a { "row" } else { "column" },
                dims.a_shape,
                dims.adjoint_a
            )));
        }
        if m < 0 || m as u64 >= rows {
            return Err(Error::new(format!(
                "{OP}: a_indices[{i}, {row_col}] = {m} is out of bounds: A's {} must be in [0, {rows}) \
                 (a_shape {:?}, adjoint_a={})",
                if dims.adjoint_a { "column" } else { "row" },
                dims.a_shape,
                dims.adjoint_a
            )));
        }
    }
    Ok(())
}

/// `out = A * B'` with A's values taken as 1: for each entry (m, k) of A, in
/// order, row k of B' is added to row m of `out` (B' is B, or B's conjugate
/// transpose with `adjoint_b`; with `adjoint_a` an entry (r, c) of A is (c, r)).
///
/// `a_indices` is [nnz, 2] row-major, `b` holds `dims.b_dims`, `out` holds
/// `dims.out`. Every index is checked before `out` is written. As twml's, an
/// empty product is not looked at, and A or B empty gives zeros.
pub fn binary_matmul<T: Element, I: Index>(
    dims: &MatMulDims,
    a_indices: &[I],
    b: &[T],
    out: &mut [T],
) -> Result<()> {
    if a_indices.len() != 2 * dims.nnz
        || b.len() != dims.b_dims[0] * dims.b_dims[1]
        || out.len() != dims.out_len()
    {
        return Err(Error::new(format!(
            "{OP}: buffers do not match the checked shapes (a_indices {} for nnz {}, b {} for {:?}, \
             out {} for {:?})",
            a_indices.len(),
            dims.nnz,
            b.len(),
            dims.b_dims,
            out.len(),
            dims.out
        )));
    }
    if out.is_empty() {
        return Ok(());
    }
    if dims.nnz == 0 || b.is_empty() {
        out.fill(T::ZERO);
        return Ok(());
    }
    check_indices(dims, a_indices)?;
    out.fill(T::ZERO);
    let width = dims.out[1];
    let cols = columns(dims);
    if dims.adjoint_b {
        // Rows of B' are B's columns, conjugated: made once, as twml does, so
        // the loop below adds contiguous rows.
        let [b_rows, b_cols] = dims.b_dims;
        let mut bt = vec![T::ZERO; b.len()];
        for r in 0..b_rows {
            for c in 0..b_cols {
                bt[c * b_rows + r] = b[r * b_cols + c].conj();
            }
        }
        accumulate(a_indices, cols, &bt, width, out);
    } else {
        accumulate(a_indices, cols, b, width, out);
    }
    Ok(())
}

/// Adds row k of `b` to row m of `out` for each entry, in order; the indices
/// were checked by [`check_indices`].
fn accumulate<T: Element, I: Index>(
    a_indices: &[I],
    (row_col, k_col): (usize, usize),
    b: &[T],
    width: usize,
    out: &mut [T],
) {
    if width == 1 {
        // FullSparse(1), the common case: one add per entry.
        for entry in a_indices.chunks_exact(2) {
            let (m, k) = (entry[row_col].get() as usize, entry[k_col].get() as usize);
            out[m] = out[m].add(b[k]);
        }
        return;
    }
    for entry in a_indices.chunks_exact(2) {
        let (m, k) = (entry[row_col].get() as usize, entry[k_col].get() as usize);
        let dst = &mut out[m * width..(m + 1) * width];
        let src = &b[k * width..(k + 1) * width];
        for (d, s) in dst.iter_mut().zip(src) {
            *d = d.add(*s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dims(
        indices: &[[i64; 2]],
        a_shape: [i64; 2],
        b: [i64; 2],
        adj_a: bool,
        adj_b: bool,
    ) -> Result<MatMulDims> {
        binary_matmul_shape(
            &[indices.len() as i64, 2],
            &[indices.len() as i64],
            &[2],
            &a_shape,
            &b,
            adj_a,
            adj_b,
        )
    }

    /// A dense reference: the sum over A's entries of B' rows, written out
    /// with explicit loops over a dense A of ones.
    fn dense_reference(
        indices: &[[i64; 2]],
        a_shape: [usize; 2],
        b: &[f64],
        b_dims: [usize; 2],
        adj_a: bool,
        adj_b: bool,
    ) -> Vec<f64> {
        let mut a = vec![0.0; a_shape[0] * a_shape[1]];
        for &[r, c] in indices {
            a[r as usize * a_shape[1] + c as usize] += 1.0;
        }
        let at = |i: usize, j: usize| {
            if adj_a {
                a[j * a_shape[1] + i]
            } else {
                a[i * a_shape[1] + j]
            }
        };
        let bt = |i: usize, j: usize| {
            if adj_b {
                b[j * b_dims[1] + i]
            } else {
                b[i * b_dims[1] + j]
            }
        };
        let (rows, inner) = if adj_a {
            (a_shape[1], a_shape[0])
        } else {
            (a_shape[0], a_shape[1])
        };
        let cols = if adj_b { b_dims[0] } else { b_dims[1] };
        let mut out = vec![0.0; rows * cols];
        for i in 0..rows {
            for j in 0..cols {
                for k in 0..inner {
                    out[i * cols + j] += at(i, k) * bt(k, j);
                }
            }
        }
        out
    }

    #[test]
    fn every_adjoint_matches_a_dense_product() {
        let indices = [[0, 1], [2, 0], [2, 2], [0, 1], [1, 3]];
        for (adj_a, adj_b) in [(false, false), (false, true), (true, false), (true, true)] {
            let a_shape = [3usize, 4];
            // A is [3, 4] (stored [4, 3] with adjoint_a): the inner dimension is 4 either way.
            let inner = 4;
            let b_dims = if adj_b { [5, inner] } else { [inner, 5] };
            let b: Vec<f64> = (0..b_dims[0] * b_dims[1])
                .map(|i| i as f64 * 0.5 - 3.0)
                .collect();
            // With adjoint_a, A's stored shape is what is transposed: use a 4x3 A.
            let (idx, shape): (Vec<[i64; 2]>, [usize; 2]) = if adj_a {
                (indices.iter().map(|&[r, c]| [c, r]).collect(), [4, 3])
            } else {
                (indices.to_vec(), a_shape)
            };
            let flat_idx: Vec<i64> = idx.iter().flatten().copied().collect();
            let d = dims(
                &idx,
                [shape[0] as i64, shape[1] as i64],
                [b_dims[0] as i64, b_dims[1] as i64],
                adj_a,
                adj_b,
            )
            .unwrap();
            let mut out = vec![f64::NAN; d.out_len()];
            binary_matmul(&d, &flat_idx, &b, &mut out).unwrap();
            assert_eq!(
                out,
                dense_reference(&idx, shape, &b, b_dims, adj_a, adj_b),
                "adj_a={adj_a} adj_b={adj_b}"
            );
        }
    }

    #[test]
    fn complex_adjoint_b_conjugates() {
        let d = dims(&[[0, 0]], [1, 1], [2, 1], false, true).unwrap();
        let b = [
            Complex {
                re: 1.0f32,
                im: 2.0,
            },
            Complex { re: 3.0, im: -4.0 },
        ];
        let mut out = [Complex::default(); 2];
        binary_matmul(&d, &[0i32, 0], &b, &mut out).unwrap();
        assert_eq!(
            out,
            [Complex { re: 1.0, im: -2.0 }, Complex { re: 3.0, im: 4.0 }]
        );
    }

    #[test]
    fn int32_wraps() {
        let d = dims(&[[0, 0], [0, 0]], [1, 1], [1, 1], false, false).unwrap();
        let mut out = [0i32];
        binary_matmul(&d, &[0i64, 0, 0, 0], &[i32::MAX], &mut out).unwrap();
        assert_eq!(out, [-2]);
    }

    #[test]
    fn out_of_range_indices_are_errors_and_nothing_is_written() {
        for (idx, what) in [
            ([5i64, 0], "a_indices[0, 0] = 5"),
            ([0, 9], "a_indices[0, 1] = 9"),
            ([-1, 0], "a_indices[0, 0] = -1"),
            ([1_000_000_000, 0], "a_indices[0, 0] = 1000000000"),
        ] {
            let d = dims(&[idx], [2, 3], [3, 1], false, false).unwrap();
            let mut out = [7.0f32; 2];
            let e = binary_matmul(&d, &idx, &[1.0, 2.0, 3.0], &mut out).unwrap_err();
            assert!(e.message().contains(what), "{e}");
            assert_eq!(out, [7.0; 2], "nothing is written when an index is bad");
        }
    }

    #[test]
    fn shapes_are_checked_before_any_work() {
        let e = dims(&[], [-1, 3], [3, 1], false, false).unwrap_err();
        assert!(
            e.message()
                .contains("a_shape must be non-negative, got [-1,3]"),
            "{e}"
        );
        let e = dims(&[], [2, 4], [3, 1], false, false).unwrap_err();
        assert!(
            e.message()
                .contains("inner dimensions do not match: 4 vs. 3"),
            "{e}"
        );
        let e =
            binary_matmul_shape(&[2, 2], &[3], &[2], &[1, 1], &[1, 1], false, false).unwrap_err();
        assert!(
            e.message()
                .contains("a_indices has 2 rows but a_values has 3"),
            "{e}"
        );
        let e =
            binary_matmul_shape(&[2, 3], &[2], &[2], &[1, 1], &[1, 1], false, false).unwrap_err();
        assert!(e.message().contains("2 columns"), "{e}");
        let e = binary_matmul_shape(&[2, 2], &[2], &[3], &[1, 1, 1], &[1, 1], false, false)
            .unwrap_err();
        assert!(e.message().contains("a_shape must be a vector of 2"), "{e}");
        let e = binary_matmul_shape(&[2, 2], &[2], &[2], &[1, 1], &[1], false, false).unwrap_err();
        assert!(e.message().contains("b must be a matrix"), "{e}");
    }

    #[test]
    fn empty_inputs_follow_twml() {
        // Empty product: indices are not looked at (twml returns early).
        let d = dims(&[[7, 7]], [0, 3], [3, 2], false, false).unwrap();
        let mut out: [f32; 0] = [];
        binary_matmul(&d, &[7i64, 7], &[0.0; 6], &mut out).unwrap();
        // No entries: zeros.
        let d = dims(&[], [2, 3], [3, 2], false, false).unwrap();
        let mut out = [9.0f32; 4];
        binary_matmul::<f32, i64>(&d, &[], &[1.0; 6], &mut out).unwrap();
        assert_eq!(out, [0.0; 4]);
    }
}
