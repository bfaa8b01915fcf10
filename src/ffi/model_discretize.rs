//! C ABI of twml's discretizers and calibration (bpr_model::discretize):
//! views of the shim's tensors become slices, the math is the model crate's.

use bpr_model::discretize::hashing::{self, Calibration, Options};
use bpr_model::discretize::mdl::{Output, Table};
use bpr_model::discretize::percentile::{Discretizer, IdIndex};
use bpr_model::discretize::{interpolate, Real};
use bpr_protocol::{Error, Result, Runner};
use std::ffi::{c_char, c_void};
use std::sync::Mutex;

use super::guarded;
use super::runner::with_runner;
use super::sys::{
    self, bpr_hashing_calibration, bpr_percentile_index, bpr_runner, bpr_status, bpr_tensor,
};
use super::views::{self, dtype_name, slice, slice_mut};

/// What the header's opaque `bpr_hashing_calibration` points to.
struct Calibrated(Calibration);

fn invalid(e: bpr_model::discretize::Error) -> Error {
    Error::invalid(e.message())
}

/// A view's dims, dtype code, element count and data pointer.
///
/// # Safety
/// `t` is NULL or points to a valid `bpr_tensor` whose pointers are valid for `'a`.
unsafe fn parts<'a>(
    t: *const bpr_tensor,
    what: &str,
) -> Result<(&'a [i64], u32, usize, *const c_void)> {
    if t.is_null() {
        return Err(Error::internal(format!("{what}: NULL tensor view")));
    }
    // SAFETY: non-null and valid per the contract.
    let t = unsafe { &*t };
    // SAFETY: `rank` dims, valid for 'a per the contract.
    let dims = unsafe { views::dims(t.dims, t.rank, what)? };
    Ok((dims, t.dtype as u32, t.num_elements, t.data))
}

/// # Safety
/// `feature_ids` points to `num_ids` int64s (or is NULL when 0); `out` is a
/// writable pointer; `msg` is NULL or `msg_cap` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn bpr_hashing_calibration_new(
    feature_ids: *const i64,
    num_ids: usize,
    n_bin: i64,
    out: *mut *mut bpr_hashing_calibration,
    msg: *mut c_char,
    msg_cap: usize,
) -> bpr_status {
    guarded(msg, msg_cap, || {
        if out.is_null() {
            return Err(Error::internal("hashing calibration: NULL output pointer"));
        }
        // SAFETY: per the contract.
        let ids = unsafe { slice::<i64>(feature_ids.cast(), num_ids, "feature_ids")? };
        let calibration = Calibration::new(ids, n_bin).map_err(invalid)?;
        // SAFETY: `out` is non-null and writable; ownership passes to the caller.
        unsafe { *out = Box::into_raw(Box::new(Calibrated(calibration))).cast() };
        Ok(())
    })
}

/// # Safety
/// `calibration` is NULL or came from `bpr_hashing_calibration_new` and is not
/// used after this call.
#[no_mangle]
pub unsafe extern "C" fn bpr_hashing_calibration_free(calibration: *mut bpr_hashing_calibration) {
    if !calibration.is_null() {
        // SAFETY: made by Box::into_raw in bpr_hashing_calibration_new, freed once.
        drop(unsafe { Box::from_raw(calibration.cast::<Calibrated>()) });
    }
}

/// Below this many values one thread is faster than waking the pool.
const PARALLEL_MIN: usize = 1 << 16;

#[allow(clippy::too_many_arguments)]
fn discretize_on<T: Real>(
    runner: &dyn Runner,
    calibration: &Calibration,
    bins: &[T],
    output_bits: i64,
    options: Options,
    ids: &[i64],
    vals: &[T],
    keys: &mut [i64],
    out: &mut [T],
) {
    let threads = runner.threads();
    if threads <= 1 || ids.len() < PARALLEL_MIN {
        return calibration.discretize(bins, output_bits, options, ids, vals, keys, out);
    }
    let chunk = ids.len().div_ceil(threads * 4);
    // Each task takes its own disjoint pair of output chunks.
    let parts: Vec<Mutex<(&mut [i64], &mut [T])>> = keys
        .chunks_mut(chunk)
        .zip(out.chunks_mut(chunk))
        .map(Mutex::new)
        .collect();
    runner.run(parts.len(), &|i| {
        let mut part = parts[i].lock().unwrap_or_else(|e| e.into_inner());
        let (k, o) = &mut *part;
        let range = i * chunk..i * chunk + k.len();
        calibration.discretize(
            bins,
            output_bits,
            options,
            &ids[range.clone()],
            &vals[range],
            k,
            o,
        );
    });
}

/// # Safety
/// `calibration` came from `bpr_hashing_calibration_new`; the views are valid;
/// `out_keys` and `out_vals` hold N writable elements (N = input_ids' length,
/// out_vals of input_vals' dtype); `runner` is NULL or valid; `msg` is NULL or
/// `msg_cap` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn bpr_hashing_discretize(
    calibration: *const bpr_hashing_calibration,
    input_ids: *const bpr_tensor,
    input_vals: *const bpr_tensor,
    bin_vals: *const bpr_tensor,
    output_bits: i64,
    options: i64,
    out_keys: *mut i64,
    out_vals: *mut c_void,
    runner: *const bpr_runner,
    msg: *mut c_char,
    msg_cap: usize,
) -> bpr_status {
    guarded(msg, msg_cap, || {
        if calibration.is_null() {
            return Err(Error::internal("HashingDiscretizer: NULL calibration"));
        }
        // SAFETY: made by bpr_hashing_calibration_new, alive for the call.
        let calibration = unsafe { &(*calibration.cast::<Calibrated>()).0 };
        // SAFETY (the three views): valid per the contract.
        let (id_dims, id_type, n, id_data) = unsafe { parts(input_ids, "input_ids")? };
        let (val_dims, val_type, _, val_data) = unsafe { parts(input_vals, "input_vals")? };
        let (bin_dims, bin_type, num_bins, bin_data) = unsafe { parts(bin_vals, "bin_vals")? };
        if id_type != sys::BPR_DTYPE_INT64 {
            return Err(Error::internal(
                "HashingDiscretizer: input_ids must be int64",
            ));
        }
        hashing::check_inputs(id_dims, val_dims).map_err(invalid)?;
        if val_type != bin_type {
            return Err(Error::invalid(format!(
                "HashingDiscretizer: bin_vals is {} but input_vals is {}; they must match",
                dtype_name(bin_type),
                dtype_name(val_type)
            )));
        }
        if bin_dims.len() != 1 {
            return Err(Error::invalid(format!(
                "HashingDiscretizer: bin_vals must be a vector, got shape {bin_dims:?}"
            )));
        }
        calibration.check_bins(num_bins).map_err(invalid)?;
        let opts = Options::from_bits(options);
        // SAFETY: `out_keys` holds n writable int64s per the contract.
        let keys = unsafe { slice_mut::<i64>(out_keys.cast(), n, "new_keys")? };
        // SAFETY: input_ids holds n int64s.
        let ids = unsafe { slice::<i64>(id_data, n, "input_ids")? };
        // SAFETY (below): views hold their counts of the dtype their codes
        // name; out_vals holds n of input_vals' dtype per the contract.
        unsafe {
            with_runner(runner, |r| {
                match val_type {
                sys::BPR_DTYPE_FLOAT => {
                    let vals = slice::<f32>(val_data, n, "input_vals")?;
                    let bins = slice::<f32>(bin_data, num_bins, "bin_vals")?;
                    let out = slice_mut::<f32>(out_vals, n, "new_vals")?;
                    discretize_on(r, calibration, bins, output_bits, opts, ids, vals, keys, out);
                    Ok(())
                }
                sys::BPR_DTYPE_DOUBLE => {
                    let vals = slice::<f64>(val_data, n, "input_vals")?;
                    let bins = slice::<f64>(bin_data, num_bins, "bin_vals")?;
                    let out = slice_mut::<f64>(out_vals, n, "new_vals")?;
                    discretize_on(r, calibration, bins, output_bits, opts, ids, vals, keys, out);
                    Ok(())
                }
                other => Err(Error::internal(format!(
                    "HashingDiscretizer: input_vals has dtype code {other}; expected float or double"
                ))),
            }
            })
        }
    })
}

/// # Safety
/// The views are valid; `output` holds B x L writable elements of input's
/// dtype; `msg` is NULL or `msg_cap` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn bpr_isotonic_calibration(
    input: *const bpr_tensor,
    xs: *const bpr_tensor,
    ys: *const bpr_tensor,
    output: *mut c_void,
    msg: *mut c_char,
    msg_cap: usize,
) -> bpr_status {
    guarded(msg, msg_cap, || {
        // SAFETY (the three views): valid per the contract.
        let (in_dims, in_type, n, in_data) = unsafe { parts(input, "input")? };
        let (xs_dims, xs_type, nx, xs_data) = unsafe { parts(xs, "xs")? };
        let (ys_dims, ys_type, _, ys_data) = unsafe { parts(ys, "ys")? };
        let (_, labels, bins) =
            interpolate::isotonic_shapes(in_dims, xs_dims, ys_dims).map_err(invalid)?;
        if xs_type != in_type || ys_type != in_type {
            return Err(Error::invalid(format!(
                "IsotonicCalibration: input is {}, xs {}, ys {}; they must match",
                dtype_name(in_type),
                dtype_name(xs_type),
                dtype_name(ys_type)
            )));
        }
        // SAFETY (below): views hold their counts of the dtype their codes
        // name; output holds n of input's dtype per the contract.
        unsafe {
            match in_type {
                sys::BPR_DTYPE_FLOAT => interpolate::isotonic(
                    slice::<f32>(in_data, n, "input")?,
                    slice::<f32>(xs_data, nx, "xs")?,
                    slice::<f32>(ys_data, nx, "ys")?,
                    labels,
                    bins,
                    slice_mut::<f32>(output, n, "output")?,
                ),
                sys::BPR_DTYPE_DOUBLE => interpolate::isotonic(
                    slice::<f64>(in_data, n, "input")?,
                    slice::<f64>(xs_data, nx, "xs")?,
                    slice::<f64>(ys_data, nx, "ys")?,
                    labels,
                    bins,
                    slice_mut::<f64>(output, n, "output")?,
                ),
                other => {
                    return Err(Error::internal(format!(
                    "IsotonicCalibration: input has dtype code {other}; expected float or double"
                )))
                }
            }
            .map_err(invalid)
        }
    })
}

/// The op's five inputs and two outputs, as twml's kernel takes them.
#[allow(clippy::too_many_arguments)]
fn mdl_typed<T: Real>(
    op: &str,
    output: Output,
    keys: &[i64],
    vals: &[T],
    bin_ids: &[i64],
    bin_vals: &[T],
    offsets: &[i64],
    out_keys: &mut [i64],
    out_vals: &mut [T],
) -> Result<()> {
    let table = Table::new(op, bin_ids, bin_vals, offsets).map_err(invalid)?;
    table
        .discretize(op, output, keys, vals, out_keys, out_vals)
        .map_err(invalid)
}

/// # Safety
/// `op` is a NUL-terminated string; the views are valid; `out_keys` and
/// `out_vals` hold N writable elements (N = keys' element count, out_vals of
/// vals' dtype); `msg` is NULL or `msg_cap` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn bpr_mdl(
    op: *const c_char,
    bin_indices: i32,
    keys: *const bpr_tensor,
    vals: *const bpr_tensor,
    bin_ids: *const bpr_tensor,
    bin_vals: *const bpr_tensor,
    feature_offsets: *const bpr_tensor,
    out_keys: *mut i64,
    out_vals: *mut c_void,
    msg: *mut c_char,
    msg_cap: usize,
) -> bpr_status {
    guarded(msg, msg_cap, || {
        let op = if op.is_null() {
            "MDL".to_string()
        } else {
            // SAFETY: NUL-terminated per the contract.
            unsafe { std::ffi::CStr::from_ptr(op) }
                .to_string_lossy()
                .into_owned()
        };
        let op = op.as_str();
        // SAFETY (the five views): valid per the contract.
        let (key_dims, key_type, n, key_data) = unsafe { parts(keys, "keys")? };
        let (val_dims, val_type, _, val_data) = unsafe { parts(vals, "vals")? };
        let (id_dims, id_type, m, id_data) = unsafe { parts(bin_ids, "bin_ids")? };
        let (bv_dims, bv_type, mv, bv_data) = unsafe { parts(bin_vals, "bin_vals")? };
        let (off_dims, off_type, f, off_data) =
            unsafe { parts(feature_offsets, "feature_offsets")? };
        if key_type != sys::BPR_DTYPE_INT64
            || id_type != sys::BPR_DTYPE_INT64
            || off_type != sys::BPR_DTYPE_INT64
        {
            return Err(Error::internal(format!(
                "{op}: keys, bin_ids and feature_offsets must be int64"
            )));
        }
        if key_dims != val_dims {
            return Err(Error::invalid(format!(
                "{op}: keys and vals must have one shape, got {key_dims:?} and {val_dims:?}"
            )));
        }
        if id_dims.len() != 1 || bv_dims.len() != 1 || off_dims.len() != 1 {
            return Err(Error::invalid(format!(
                "{op}: bin_ids, bin_vals and feature_offsets must be vectors, got shapes \
                 {id_dims:?}, {bv_dims:?} and {off_dims:?}"
            )));
        }
        if bv_type != val_type {
            return Err(Error::invalid(format!(
                "{op}: bin_vals is {} but vals is {}; they must match",
                dtype_name(bv_type),
                dtype_name(val_type)
            )));
        }
        let output = if bin_indices != 0 {
            Output::BinIndices
        } else {
            Output::BinIds
        };
        // SAFETY (below): each view holds its count of the dtype its code
        // names; the outputs hold n elements per the contract.
        unsafe {
            let keys = slice::<i64>(key_data, n, "keys")?;
            let ids = slice::<i64>(id_data, m, "bin_ids")?;
            let offsets = slice::<i64>(off_data, f, "feature_offsets")?;
            let out_keys = slice_mut::<i64>(out_keys.cast(), n, "new_keys")?;
            match val_type {
                sys::BPR_DTYPE_FLOAT => mdl_typed(
                    op,
                    output,
                    keys,
                    slice::<f32>(val_data, n, "vals")?,
                    ids,
                    slice::<f32>(bv_data, mv, "bin_vals")?,
                    offsets,
                    out_keys,
                    slice_mut::<f32>(out_vals, n, "new_vals")?,
                ),
                sys::BPR_DTYPE_DOUBLE => mdl_typed(
                    op,
                    output,
                    keys,
                    slice::<f64>(val_data, n, "vals")?,
                    ids,
                    slice::<f64>(bv_data, mv, "bin_vals")?,
                    offsets,
                    out_keys,
                    slice_mut::<f64>(out_vals, n, "new_vals")?,
                ),
                other => Err(Error::internal(format!(
                    "{op}: vals has dtype code {other}; expected float or double"
                ))),
            }
        }
    })
}

/// `op` as a string for messages (`default` when NULL).
///
/// # Safety
/// `op` is NULL or NUL-terminated.
unsafe fn op_name(op: *const c_char, default: &str) -> String {
    if op.is_null() {
        default.to_string()
    } else {
        // SAFETY: NUL-terminated per the contract.
        unsafe { std::ffi::CStr::from_ptr(op) }
            .to_string_lossy()
            .into_owned()
    }
}

/// # Safety
/// `op` is NULL or NUL-terminated; `feature_ids` and `feature_indices` point
/// to their counts of int64s (or are NULL when 0); `out` is writable; `msg`
/// is NULL or `msg_cap` writable bytes.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn bpr_percentile_index_new(
    op: *const c_char,
    feature_ids: *const i64,
    num_ids: usize,
    feature_indices: *const i64,
    num_indices: usize,
    out: *mut *mut bpr_percentile_index,
    msg: *mut c_char,
    msg_cap: usize,
) -> bpr_status {
    guarded(msg, msg_cap, || {
        // SAFETY: per the contract.
        let op = unsafe { op_name(op, "PercentileDiscretizerV2") };
        if out.is_null() {
            return Err(Error::internal(format!("{op}: NULL output pointer")));
        }
        // SAFETY: per the contract.
        let ids = unsafe { slice::<i64>(feature_ids.cast(), num_ids, "feature_ids")? };
        // SAFETY: per the contract.
        let indices =
            unsafe { slice::<i64>(feature_indices.cast(), num_indices, "feature_indices")? };
        let index = IdIndex::new(&op, ids, indices).map_err(invalid)?;
        // SAFETY: `out` is non-null and writable; ownership passes to the caller.
        unsafe { *out = Box::into_raw(Box::new(index)).cast() };
        Ok(())
    })
}

/// # Safety
/// `index` is NULL or came from `bpr_percentile_index_new` and is not used
/// after this call.
#[no_mangle]
pub unsafe extern "C" fn bpr_percentile_index_free(index: *mut bpr_percentile_index) {
    if !index.is_null() {
        // SAFETY: made by Box::into_raw in bpr_percentile_index_new, freed once.
        drop(unsafe { Box::from_raw(index.cast::<IdIndex>()) });
    }
}

/// The checked call split over the runner's threads when it is large.
fn percentile_on<T: Real>(
    runner: &dyn Runner,
    d: &Discretizer<'_, T>,
    ids: &[i64],
    vals: &[T],
    keys: &mut [i64],
    out: &mut [T],
) {
    let threads = runner.threads();
    if threads <= 1 || ids.len() < PARALLEL_MIN {
        return d.run(ids, vals, keys, out);
    }
    let chunk = ids.len().div_ceil(threads * 4);
    // Each task takes its own disjoint pair of output chunks.
    let parts: Vec<Mutex<(&mut [i64], &mut [T])>> = keys
        .chunks_mut(chunk)
        .zip(out.chunks_mut(chunk))
        .map(Mutex::new)
        .collect();
    runner.run(parts.len(), &|i| {
        let mut part = parts[i].lock().unwrap_or_else(|e| e.into_inner());
        let (k, o) = &mut *part;
        let range = i * chunk..i * chunk + k.len();
        d.run(&ids[range.clone()], &vals[range], k, o);
    });
}

#[allow(clippy::too_many_arguments)]
fn percentile_typed<T: Real>(
    op: &str,
    runner: &dyn Runner,
    index: &IdIndex,
    ids: &[i64],
    vals: &[T],
    bin_ids: &[i64],
    bin_vals: &[T],
    offsets: &[i64],
    output_bits: i64,
    keys: &mut [i64],
    out: &mut [T],
) -> Result<()> {
    let d = Discretizer::new(op, index, bin_ids, bin_vals, offsets, output_bits, ids)
        .map_err(invalid)?;
    percentile_on(runner, &d, ids, vals, keys, out);
    Ok(())
}

/// # Safety
/// `op` is NULL or NUL-terminated; `index` came from
/// `bpr_percentile_index_new`; the views are valid; `out_keys` and
/// `out_vals` hold N writable elements (N = input_ids' length, out_vals of
/// input_vals' dtype); `runner` is NULL or valid; `msg` is NULL or `msg_cap`
/// writable bytes.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn bpr_percentile_discretize(
    op: *const c_char,
    index: *const bpr_percentile_index,
    input_ids: *const bpr_tensor,
    input_vals: *const bpr_tensor,
    bin_ids: *const bpr_tensor,
    bin_vals: *const bpr_tensor,
    feature_offsets: *const bpr_tensor,
    output_bits: i64,
    out_keys: *mut i64,
    out_vals: *mut c_void,
    runner: *const bpr_runner,
    msg: *mut c_char,
    msg_cap: usize,
) -> bpr_status {
    guarded(msg, msg_cap, || {
        // SAFETY: per the contract.
        let op = unsafe { op_name(op, "PercentileDiscretizerV2") };
        let op = op.as_str();
        if index.is_null() {
            return Err(Error::internal(format!("{op}: NULL feature index")));
        }
        // SAFETY: made by bpr_percentile_index_new, alive for the call.
        let index = unsafe { &*index.cast::<IdIndex>() };
        // SAFETY (the five views): valid per the contract.
        let (id_dims, id_type, n, id_data) = unsafe { parts(input_ids, "input_ids")? };
        let (val_dims, val_type, _, val_data) = unsafe { parts(input_vals, "input_vals")? };
        let (bid_dims, bid_type, m, bid_data) = unsafe { parts(bin_ids, "bin_ids")? };
        let (bv_dims, bv_type, mv, bv_data) = unsafe { parts(bin_vals, "bin_vals")? };
        let (off_dims, off_type, f, off_data) =
            unsafe { parts(feature_offsets, "feature_offsets")? };
        if id_type != sys::BPR_DTYPE_INT64
            || bid_type != sys::BPR_DTYPE_INT64
            || off_type != sys::BPR_DTYPE_INT64
        {
            return Err(Error::internal(format!(
                "{op}: input_ids, bin_ids and feature_offsets must be int64"
            )));
        }
        if id_dims.len() != 1 || id_dims != val_dims {
            return Err(Error::invalid(format!(
                "{op}: input_ids and input_vals must be vectors of one length, got shapes \
                 {id_dims:?} and {val_dims:?}"
            )));
        }
        if bid_dims.len() != 1 || bv_dims.len() != 1 || off_dims.len() != 1 {
            return Err(Error::invalid(format!(
                "{op}: bin_ids, bin_vals and feature_offsets must be vectors, got shapes \
                 {bid_dims:?}, {bv_dims:?} and {off_dims:?}"
            )));
        }
        if bv_type != val_type {
            return Err(Error::invalid(format!(
                "{op}: bin_vals is {} but input_vals is {}; they must match",
                dtype_name(bv_type),
                dtype_name(val_type)
            )));
        }
        // SAFETY (below): each view holds its count of the dtype its code
        // names; the outputs hold n elements per the contract.
        unsafe {
            let ids = slice::<i64>(id_data, n, "input_ids")?;
            let bids = slice::<i64>(bid_data, m, "bin_ids")?;
            let offsets = slice::<i64>(off_data, f, "feature_offsets")?;
            let keys = slice_mut::<i64>(out_keys.cast(), n, "new_keys")?;
            with_runner(runner, |r| match val_type {
                sys::BPR_DTYPE_FLOAT => percentile_typed(
                    op,
                    r,
                    index,
                    ids,
                    slice::<f32>(val_data, n, "input_vals")?,
                    bids,
                    slice::<f32>(bv_data, mv, "bin_vals")?,
                    offsets,
                    output_bits,
                    keys,
                    slice_mut::<f32>(out_vals, n, "new_vals")?,
                ),
                sys::BPR_DTYPE_DOUBLE => percentile_typed(
                    op,
                    r,
                    index,
                    ids,
                    slice::<f64>(val_data, n, "input_vals")?,
                    bids,
                    slice::<f64>(bv_data, mv, "bin_vals")?,
                    offsets,
                    output_bits,
                    keys,
                    slice_mut::<f64>(out_vals, n, "new_vals")?,
                ),
                other => Err(Error::internal(format!(
                    "{op}: input_vals has dtype code {other}; expected float or double"
                ))),
            })
        }
    })
}
