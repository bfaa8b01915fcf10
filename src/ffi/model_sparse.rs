//! C ABI of twml's sparse matmul, norms and partitioning (bpr_model::sparse):
//! views the shim's tensors as slices, calls the kernels, reports their
//! errors. Every function runs inside `guarded`.

use bpr_model::sparse::{self, Complex, Element, Index, MatMulDims};
use bpr_protocol::{Error, Result};
use std::ffi::{c_char, c_void};

use super::guarded;
use super::sys::{
    self, bpr_binary_matmul_args, bpr_dtype, bpr_sparse_dims, bpr_status, bpr_tensor,
};
use super::views::{self, dtype_name, slice, slice_mut};

fn invalid(e: sparse::Error) -> Error {
    Error::invalid(e.message())
}

/// The dims of a C dims view.
///
/// # Safety
/// `d.dims` points to `d.rank` int64s valid for `'a` (or rank is 0).
unsafe fn dims<'a>(d: &bpr_sparse_dims, what: &str) -> Result<&'a [i64]> {
    // SAFETY: the caller's contract.
    unsafe { views::dims(d.dims, d.rank, what) }
}

/// A tensor view's dims and its data as `T`, after checking its dtype.
///
/// # Safety
/// `t` points to a valid `bpr_tensor` whose pointers are valid for `'a`.
unsafe fn view<'a, T>(
    t: *const bpr_tensor,
    dtype: u32,
    op: &str,
    what: &str,
) -> Result<(&'a [i64], &'a [T])> {
    if t.is_null() {
        return Err(Error::internal(format!("{op}: NULL view of {what}")));
    }
    // SAFETY: non-null and valid (contract).
    let t = unsafe { &*t };
    if t.dtype as u32 != dtype {
        // The registrations fix these dtypes: another one is a shim bug.
        return Err(Error::internal(format!(
            "{op}: {what} has dtype code {}, expected {dtype}",
            t.dtype
        )));
    }
    let d = bpr_sparse_dims {
        dims: t.dims,
        rank: t.rank,
    };
    // SAFETY: the view's dims and data are valid for 'a (contract).
    unsafe { Ok((dims(&d, what)?, slice(t.data, t.num_elements, what)?)) }
}

/// The checked shapes of a matmul call.
///
/// # Safety
/// `args` points to a valid `bpr_binary_matmul_args` whose pointers are valid.
unsafe fn matmul_dims<'a>(
    args: *const bpr_binary_matmul_args,
) -> Result<(&'a bpr_binary_matmul_args, MatMulDims)> {
    if args.is_null() {
        return Err(Error::internal("BinarySparseTensorDenseMatMul: NULL args"));
    }
    // SAFETY: non-null and valid for the call (contract).
    let a: &'a bpr_binary_matmul_args = unsafe { &*args };
    // SAFETY: every dims view and a_shape are valid (contract).
    let (ind, val, shp, b, a_shape) = unsafe {
        (
            dims(&a.a_indices_dims, "a_indices")?,
            dims(&a.a_values_dims, "a_values")?,
            dims(&a.a_shape_dims, "a_shape")?,
            dims(&a.b_dims, "b")?,
            slice::<i64>(a.a_shape.cast(), a.a_shape_len, "a_shape")?,
        )
    };
    let d = sparse::binary_matmul_shape(
        ind,
        val,
        shp,
        a_shape,
        b,
        a.adjoint_a != 0,
        a.adjoint_b != 0,
    )
    .map_err(invalid)?;
    Ok((a, d))
}

/// # Safety
/// `args` is valid per the header; `out_dims` points to 2 writable int64s;
/// `msg` is NULL or `msg_cap` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn bpr_binary_matmul_shape(
    args: *const bpr_binary_matmul_args,
    out_dims: *mut i64,
    msg: *mut c_char,
    msg_cap: usize,
) -> bpr_status {
    guarded(msg, msg_cap, || {
        // SAFETY: per this function's contract.
        let (_, d) = unsafe { matmul_dims(args)? };
        // SAFETY: 2 writable int64s (contract).
        let out = unsafe { slice_mut::<i64>(out_dims.cast(), 2, "out_dims")? };
        out[0] = d.out[0] as i64;
        out[1] = d.out[1] as i64;
        Ok(())
    })
}

fn run_matmul<T: Element, I: Index>(
    d: &MatMulDims,
    a: &bpr_binary_matmul_args,
    out: *mut c_void,
    out_len: usize,
) -> Result<()> {
    if out_len != d.out_len() {
        return Err(Error::internal(format!(
            "BinarySparseTensorDenseMatMul: output of {out_len} elements for a product {:?}",
            d.out
        )));
    }
    // SAFETY: the header's contract: a_indices holds nnz * 2 indices of I, b
    // holds b's elements of T, out holds out_len writable T, none aliased
    // with out.
    let (indices, b, out) = unsafe {
        (
            slice::<I>(a.a_indices, 2 * d.nnz, "a_indices")?,
            slice::<T>(a.b, d.b_dims[0] * d.b_dims[1], "b")?,
            slice_mut::<T>(out, out_len, "product")?,
        )
    };
    sparse::binary_matmul(d, indices, b, out).map_err(invalid)
}

/// # Safety
/// `args` is valid per the header; `out` points to `out_len` writable
/// elements of `args->elem`; `msg` is NULL or `msg_cap` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn bpr_binary_matmul(
    args: *const bpr_binary_matmul_args,
    out: *mut c_void,
    out_len: usize,
    msg: *mut c_char,
    msg_cap: usize,
) -> bpr_status {
    guarded(msg, msg_cap, || {
        // SAFETY: per this function's contract.
        let (a, d) = unsafe { matmul_dims(args)? };
        macro_rules! by_index {
            ($t:ty) => {
                if a.a_indices_int64 != 0 {
                    run_matmul::<$t, i64>(&d, a, out, out_len)
                } else {
                    run_matmul::<$t, i32>(&d, a, out, out_len)
                }
            };
        }
        match a.elem as u32 {
            sys::BPR_SPARSE_FLOAT => by_index!(f32),
            sys::BPR_SPARSE_DOUBLE => by_index!(f64),
            sys::BPR_SPARSE_INT32 => by_index!(i32),
            sys::BPR_SPARSE_COMPLEX64 => by_index!(Complex<f32>),
            sys::BPR_SPARSE_COMPLEX128 => by_index!(Complex<f64>),
            other => Err(Error::internal(format!(
                "BinarySparseTensorDenseMatMul: unknown element code {other}"
            ))),
        }
    })
}

const F32: u32 = sys::BPR_DTYPE_FLOAT;
const I64: u32 = sys::BPR_DTYPE_INT64;
const BOOL: u32 = sys::BPR_DTYPE_BOOL;

/// # Safety
/// Views valid per the header; `normalized` points to as many writable floats
/// as `values` has; `msg` is NULL or `msg_cap` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn bpr_sparse_max_norm_inference(
    max_values: *const bpr_tensor,
    indices: *const bpr_tensor,
    values: *const bpr_tensor,
    epsilon: f32,
    normalized: *mut f32,
    msg: *mut c_char,
    msg_cap: usize,
) -> bpr_status {
    guarded(msg, msg_cap, || {
        const OP: &str = "SparseMaxNormInference";
        // SAFETY: valid views (contract); the output holds values' count.
        unsafe {
            let (_, max) = view::<f32>(max_values, F32, OP, "max_values")?;
            let (_, idx) = view::<i64>(indices, I64, OP, "indices")?;
            let (_, val) = view::<f32>(values, F32, OP, "values")?;
            let out = slice_mut::<f32>(normalized.cast(), val.len(), "normalized_values")?;
            sparse::max_norm_inference(max, idx, val, epsilon, out).map_err(invalid)
        }
    })
}

/// # Safety
/// Views valid per the header; `updated_max_values` holds as many writable
/// floats as `max_values`, `normalized` as `values`; `msg` is NULL or
/// `msg_cap` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn bpr_sparse_max_norm_training(
    max_values: *const bpr_tensor,
    indices: *const bpr_tensor,
    values: *const bpr_tensor,
    epsilon: f32,
    updated_max_values: *mut f32,
    normalized: *mut f32,
    msg: *mut c_char,
    msg_cap: usize,
) -> bpr_status {
    guarded(msg, msg_cap, || {
        const OP: &str = "SparseMaxNormTraining";
        // SAFETY: valid views (contract); both outputs are fresh tensors of
        // the sizes given, aliasing nothing.
        unsafe {
            let (_, max) = view::<f32>(max_values, F32, OP, "max_values")?;
            let (_, idx) = view::<i64>(indices, I64, OP, "indices")?;
            let (_, val) = view::<f32>(values, F32, OP, "values")?;
            let upd = slice_mut::<f32>(updated_max_values.cast(), max.len(), "updated_max_values")?;
            let out = slice_mut::<f32>(normalized.cast(), val.len(), "normalized_values")?;
            sparse::max_norm_training(max, idx, val, epsilon, upd, out).map_err(invalid)
        }
    })
}

/// Whether `[a, a + a_len)` and `[b, b + b_len)` (in floats) share memory.
fn overlaps(a: *const f32, a_len: usize, b: *const c_void, b_bytes: usize) -> bool {
    let (a0, a1) = (a as usize, a as usize + a_len * 4);
    let (b0, b1) = (b as usize, b as usize + b_bytes);
    a_len > 0 && b_bytes > 0 && a0 < b1 && b0 < a1
}

/// `values` as an owned copy when it shares memory with a buffer about to be
/// written: a v1 graph can feed a reference variable's own buffer as a value.
fn detached<'a>(
    val: &'a [f32],
    written: &[(*const f32, usize)],
    keep: &'a mut Vec<f32>,
) -> &'a [f32] {
    if written
        .iter()
        .any(|&(p, n)| overlaps(p, n, val.as_ptr().cast(), std::mem::size_of_val(val)))
    {
        *keep = val.to_vec();
        keep
    } else {
        val
    }
}

/// # Safety
/// `max_values` points to `num_max_values` writable floats (the variable's
/// buffer, locked by the caller); views valid per the header; `normalized`
/// holds as many writable floats as `values`; `msg` is NULL or `msg_cap`
/// writable bytes.
#[no_mangle]
pub unsafe extern "C" fn bpr_sparse_max_norm(
    max_values: *mut f32,
    num_max_values: usize,
    indices: *const bpr_tensor,
    values: *const bpr_tensor,
    is_training: *const bpr_tensor,
    epsilon: f32,
    normalized: *mut f32,
    msg: *mut c_char,
    msg_cap: usize,
) -> bpr_status {
    guarded(msg, msg_cap, || {
        const OP: &str = "SparseMaxNorm";
        // SAFETY: valid views (contract). `values` may share the variable's
        // buffer: it is copied before the variable is borrowed mutably.
        unsafe {
            let (_, idx) = view::<i64>(indices, I64, OP, "indices")?;
            let (_, val) = view::<f32>(values, F32, OP, "values")?;
            let (flag_dims, flag) = view::<bool>(is_training, BOOL, OP, "is_training")?;
            let mut keep = Vec::new();
            let val = detached(val, &[(max_values, num_max_values)], &mut keep);
            let out = slice_mut::<f32>(normalized.cast(), val.len(), "normalized_values")?;
            let max = slice_mut::<f32>(max_values.cast(), num_max_values, "max_values")?;
            sparse::max_norm_in_place(max, idx, val, flag, flag_dims, epsilon, out).map_err(invalid)
        }
    })
}

/// # Safety
/// `out` points to a writable pointer; `msg` is NULL or `msg_cap` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn bpr_sparse_batch_norm_new(
    input_size: i64,
    out: *mut *mut sys::bpr_sparse_batch_norm_state,
    msg: *mut c_char,
    msg_cap: usize,
) -> bpr_status {
    guarded(msg, msg_cap, || {
        if out.is_null() {
            return Err(Error::internal("SparseBatchNorm: NULL out"));
        }
        let state = sparse::BatchNormState::new(input_size).map_err(invalid)?;
        // SAFETY: `out` is writable (contract); the box is freed by
        // bpr_sparse_batch_norm_free.
        unsafe { *out = Box::into_raw(Box::new(state)).cast() };
        Ok(())
    })
}

/// # Safety
/// `state` is NULL or came from bpr_sparse_batch_norm_new and is freed once.
#[no_mangle]
pub unsafe extern "C" fn bpr_sparse_batch_norm_free(state: *mut sys::bpr_sparse_batch_norm_state) {
    if !state.is_null() {
        // SAFETY: a boxed BatchNormState behind the opaque type, freed once (contract).
        drop(unsafe { Box::from_raw(state.cast::<sparse::BatchNormState>()) });
    }
}

/// # Safety
/// `state` is a live state used by no other call; `means` and `variances`
/// point to their counts of writable floats (locked by the caller; they may
/// be one buffer); views valid per the header; `normalized` holds as many
/// writable floats as `values`; `msg` is NULL or `msg_cap` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn bpr_sparse_batch_norm(
    state: *mut sys::bpr_sparse_batch_norm_state,
    means: *mut f32,
    num_means: usize,
    variances: *mut f32,
    num_variances: usize,
    indices: *const bpr_tensor,
    values: *const bpr_tensor,
    is_training: *const bpr_tensor,
    epsilon: f32,
    normalized: *mut f32,
    msg: *mut c_char,
    msg_cap: usize,
) -> bpr_status {
    guarded(msg, msg_cap, || {
        const OP: &str = "SparseBatchNorm";
        if state.is_null() {
            return Err(Error::internal("SparseBatchNorm: NULL state"));
        }
        if overlaps(means, num_means, variances.cast(), num_variances * 4) {
            // Two &mut views of one buffer would be undefined behaviour; twml
            // would have written the variance over the mean.
            return Err(Error::invalid(
                "SparseBatchNorm: means and variances are the same variable (or overlap); \
                 they must be two variables",
            ));
        }
        // SAFETY: per this function's contract; values are copied first when
        // they share a variable's buffer.
        unsafe {
            let state = &mut *state.cast::<sparse::BatchNormState>();
            let (_, idx) = view::<i64>(indices, I64, OP, "indices")?;
            let (_, val) = view::<f32>(values, F32, OP, "values")?;
            let (flag_dims, flag) = view::<bool>(is_training, BOOL, OP, "is_training")?;
            let mut keep = Vec::new();
            let val = detached(
                val,
                &[(means, num_means), (variances, num_variances)],
                &mut keep,
            );
            let out = slice_mut::<f32>(normalized.cast(), val.len(), "normalized_values")?;
            let m = slice_mut::<f32>(means.cast(), num_means, "means")?;
            let v = slice_mut::<f32>(variances.cast(), num_variances, "variances")?;
            state
                .apply(m, v, idx, val, flag, flag_dims, epsilon, out)
                .map_err(invalid)
        }
    })
}

/// # Safety
/// `output_types` points to `num_output_types` codes; `msg` is NULL or
/// `msg_cap` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn bpr_partition_mod_check(
    num_partitions: i64,
    output_types: *const bpr_dtype,
    num_output_types: usize,
    value_type: bpr_dtype,
    msg: *mut c_char,
    msg_cap: usize,
) -> bpr_status {
    guarded(msg, msg_cap, || {
        const OP: &str = "PartitionSparseTensorMod";
        if num_partitions <= 0 {
            return Err(Error::invalid(format!(
                "{OP}: num_partitions must be positive, got {num_partitions}"
            )));
        }
        // SAFETY: `num_output_types` codes (contract).
        let types =
            unsafe { slice::<bpr_dtype>(output_types.cast(), num_output_types, "output_types")? };
        let t = dtype_name(value_type as u32);
        let want = |j: usize| {
            if j.is_multiple_of(2) {
                sys::BPR_DTYPE_INT64 as bpr_dtype
            } else {
                value_type
            }
        };
        let ok = types.len() as u128 == 2 * num_partitions as u128
            && types.iter().enumerate().all(|(j, &c)| c == want(j));
        if !ok {
            let given: Vec<&str> = types.iter().map(|&c| dtype_name(c as u32)).collect();
            return Err(Error::invalid(format!(
                "{OP}: output_types must be [int64, {t}] repeated num_partitions ({num_partitions}) times \
                 (indices, then values, of each partition; T is {t}), got [{}]",
                given.join(", ")
            )));
        }
        Ok(())
    })
}

/// A partition call's inputs: indices' dims and data, values' dims and view.
type PartitionInputs<'a> = (&'a [i64], &'a [i64], &'a [i64], &'a bpr_tensor);

/// Indices and values of a partition call; values as raw bytes of their type.
///
/// # Safety
/// Valid views (header).
unsafe fn partition_inputs<'a>(
    indices: *const bpr_tensor,
    values: *const bpr_tensor,
) -> Result<PartitionInputs<'a>> {
    const OP: &str = "PartitionSparseTensorMod";
    // SAFETY: valid views (contract).
    unsafe {
        let (idx_dims, idx) = view::<i64>(indices, I64, OP, "indices")?;
        if values.is_null() {
            return Err(Error::internal(format!("{OP}: NULL view of values")));
        }
        let v = &*values;
        let d = bpr_sparse_dims {
            dims: v.dims,
            rank: v.rank,
        };
        Ok((idx_dims, idx, dims(&d, "values")?, v))
    }
}

/// # Safety
/// Valid views (header); `counts` holds `num_partitions` writable int64s;
/// `msg` is NULL or `msg_cap` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn bpr_partition_mod_counts(
    indices: *const bpr_tensor,
    values: *const bpr_tensor,
    num_partitions: i64,
    counts: *mut i64,
    msg: *mut c_char,
    msg_cap: usize,
) -> bpr_status {
    guarded(msg, msg_cap, || {
        // SAFETY: per the contract.
        unsafe {
            let (idx_dims, idx, val_dims, _) = partition_inputs(indices, values)?;
            let got = sparse::partition_counts(idx, idx_dims, val_dims, num_partitions)
                .map_err(invalid)?;
            let out = slice_mut::<i64>(counts.cast(), got.len(), "counts")?;
            for (o, c) in out.iter_mut().zip(got) {
                *o = c as i64;
            }
        }
        Ok(())
    })
}

fn fill<T: Copy>(
    idx: &[i64],
    values: *const c_void,
    num_partitions: i64,
    counts: &[i64],
    out_indices: &[*mut i64],
    out_values: &[*mut c_void],
) -> Result<()> {
    // SAFETY: (caller's contract) `values` holds idx.len() / 2 elements of T;
    // each partition's outputs hold counts[p] * 2 and counts[p] elements,
    // fresh tensors aliasing nothing.
    let vals = unsafe { slice::<T>(values, idx.len() / 2, "values")? };
    let mut outs = Vec::with_capacity(counts.len());
    for (p, &c) in counts.iter().enumerate() {
        let c = usize::try_from(c).map_err(|_| Error::internal("negative count"))?;
        // SAFETY: as above.
        let (i, v) = unsafe {
            (
                slice_mut::<i64>(out_indices[p].cast(), 2 * c, "partition indices")?,
                slice_mut::<T>(out_values[p], c, "partition values")?,
            )
        };
        outs.push(sparse::PartitionOutput {
            indices: i,
            values: v,
        });
    }
    sparse::partition_mod(idx, vals, num_partitions, &mut outs).map_err(invalid)
}

/// # Safety
/// Valid views (header); `counts`, `out_indices` and `out_values` hold
/// `num_partitions` entries, the outputs sized by `counts`; `msg` is NULL or
/// `msg_cap` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn bpr_partition_mod(
    indices: *const bpr_tensor,
    values: *const bpr_tensor,
    num_partitions: i64,
    counts: *const i64,
    out_indices: *const *mut i64,
    out_values: *const *mut c_void,
    msg: *mut c_char,
    msg_cap: usize,
) -> bpr_status {
    guarded(msg, msg_cap, || {
        let n = usize::try_from(num_partitions).map_err(|_| {
            Error::invalid(format!(
                "PartitionSparseTensorMod: num_partitions {num_partitions}"
            ))
        })?;
        // SAFETY: per the contract.
        unsafe {
            let (idx_dims, idx, val_dims, v) = partition_inputs(indices, values)?;
            // Shapes again: this call must not trust that _counts ran.
            sparse::partition_counts(idx, idx_dims, val_dims, num_partitions).map_err(invalid)?;
            let counts = slice::<i64>(counts.cast(), n, "counts")?;
            let oi = slice::<*mut i64>(out_indices.cast(), n, "out_indices")?;
            let ov = slice::<*mut c_void>(out_values.cast(), n, "out_values")?;
            match v.dtype as u32 {
                sys::BPR_DTYPE_FLOAT => fill::<f32>(idx, v.data, num_partitions, counts, oi, ov),
                sys::BPR_DTYPE_DOUBLE => fill::<f64>(idx, v.data, num_partitions, counts, oi, ov),
                other => Err(Error::internal(format!(
                    "PartitionSparseTensorMod: values of dtype code {other}"
                ))),
            }
        }
    })
}
