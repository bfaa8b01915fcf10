//! The response writers' C entry points: `bpr_continuous_*`, `bpr_tensor_*`
//! and the tensor plan cache. Inputs are viewed with the helpers of
//! [`super`], validated, sized and written by `bpr_protocol`.

use bpr_protocol::{Error, Result, Runner, Tensor};
use std::ffi::{c_char, c_void};
use std::panic::{self, AssertUnwindSafe};

#[cfg(target_arch = "x86_64")]
use super::raw_records::raw_records;
use super::runner::with_runner;
use super::sys::{self, bpr_alloc_fn, bpr_runner, bpr_status, bpr_tensor};
use super::{guarded, host_strings, output, tensor, HostStrings, Input};

/// The continuous writer's two inputs, viewed.
///
/// # Safety
/// `keys` and `values` point to valid views (header contract).
pub(super) unsafe fn continuous_inputs<'a>(
    keys: *const bpr_tensor,
    values: *const bpr_tensor,
) -> Result<(Tensor<'a>, Tensor<'a>)> {
    // SAFETY: per the contract.
    unsafe {
        Ok((
            tensor(keys, None, Input::Keys)?,
            tensor(values, None, Input::Values)?,
        ))
    }
}

/// # Safety
/// `keys` and `values` point to valid views (header contract); `out_size` is
/// writable; `msg` is NULL or `msg_cap` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn bpr_continuous_size(
    keys: *const bpr_tensor,
    values: *const bpr_tensor,
    out_size: *mut u64,
    msg: *mut c_char,
    msg_cap: usize,
) -> bpr_status {
    guarded(msg, msg_cap, || {
        // SAFETY: the caller's contract covers both views.
        let (k, v) = unsafe { continuous_inputs(keys, values)? };
        let size = bpr_protocol::continuous_size(&k, &v)?;
        // SAFETY: `out_size` is NULL or writable (contract).
        unsafe { store_size(out_size, size) }
    })
}

/// # Safety
/// As [`bpr_continuous_size`]; `out` points to `out_size` writable bytes;
/// `runner` is NULL or a valid `bpr_runner`.
#[no_mangle]
pub unsafe extern "C" fn bpr_continuous_write(
    keys: *const bpr_tensor,
    values: *const bpr_tensor,
    out: *mut u8,
    out_size: u64,
    runner: *const bpr_runner,
    msg: *mut c_char,
    msg_cap: usize,
) -> bpr_status {
    guarded(msg, msg_cap, || {
        // SAFETY: the caller's contract covers the views, the output and the runner.
        let (k, v) = unsafe { continuous_inputs(keys, values)? };
        let out = unsafe { output(out, out_size)? };
        let plan = bpr_protocol::plan_continuous(&k, &v)?;
        // SAFETY: `runner` is NULL or a valid bpr_runner (contract).
        unsafe { with_runner(runner, |r| write_continuous(&plan, out, r)) }
    })
}

/// Reports a response's exact size to the host (the `*_size` calls).
///
/// # Safety
/// `out_size` is NULL or writable.
unsafe fn store_size(out_size: *mut u64, size: usize) -> Result<()> {
    if out_size.is_null() {
        return Err(Error::internal("NULL out_size"));
    }
    // SAFETY: non-null and writable per the contract.
    unsafe { *out_size = size as u64 };
    Ok(())
}

/// Views of the tensor op's inputs, borrowing `strings`.
///
/// # Safety
/// `values` points to `num_values` valid views; `strings` was built from them.
pub(super) unsafe fn tensor_inputs<'a>(
    keys: *const bpr_tensor,
    values: *const bpr_tensor,
    strings: &'a [Option<HostStrings>],
) -> Result<(Tensor<'a>, Vec<Tensor<'a>>)> {
    // SAFETY: per the contract.
    let k = unsafe { tensor(keys, None, Input::Keys)? };
    let mut views = Vec::with_capacity(strings.len());
    for (j, s) in strings.iter().enumerate() {
        // SAFETY: j < num_values.
        views.push(unsafe { tensor(values.add(j), s.as_ref(), Input::ValuesAt(j))? });
    }
    Ok((k, views))
}

/// # Safety
/// `values` points to `num_values` valid views.
pub(super) unsafe fn string_sources(
    values: *const bpr_tensor,
    num_values: usize,
) -> Result<Vec<Option<HostStrings>>> {
    if num_values > 0 && values.is_null() {
        return Err(Error::internal("NULL values array"));
    }
    // SAFETY: j < num_values views, per the contract.
    (0..num_values)
        .map(|j| unsafe { host_strings(values.add(j)) })
        .collect()
}

/// # Safety
/// `keys` is a valid view, `values` points to `num_values` valid views,
/// `out_size` is writable, `msg` is NULL or `msg_cap` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn bpr_tensor_size(
    keys: *const bpr_tensor,
    values: *const bpr_tensor,
    num_values: usize,
    out_size: *mut u64,
    msg: *mut c_char,
    msg_cap: usize,
) -> bpr_status {
    guarded(msg, msg_cap, || {
        // SAFETY: the caller's contract covers every view.
        let strings = unsafe { string_sources(values, num_values)? };
        let (k, v) = unsafe { tensor_inputs(keys, values, &strings)? };
        let size = bpr_protocol::tensor_response_size(&k, &v)?;
        // SAFETY: `out_size` is NULL or writable (contract).
        unsafe { store_size(out_size, size) }
    })
}

/// # Safety
/// As [`bpr_tensor_size`]; `out` points to `out_size` writable bytes;
/// `runner` is NULL or a valid `bpr_runner`.
#[no_mangle]
pub unsafe extern "C" fn bpr_tensor_write(
    keys: *const bpr_tensor,
    values: *const bpr_tensor,
    num_values: usize,
    out: *mut u8,
    out_size: u64,
    runner: *const bpr_runner,
    msg: *mut c_char,
    msg_cap: usize,
) -> bpr_status {
    guarded(msg, msg_cap, || {
        // SAFETY: the caller's contract covers every view, the output and the runner.
        let strings = unsafe { string_sources(values, num_values)? };
        let (k, v) = unsafe { tensor_inputs(keys, values, &strings)? };
        let out = unsafe { output(out, out_size)? };
        let plan = bpr_protocol::plan_tensor_response(&k, &v)?;
        // SAFETY: `runner` is NULL or a valid bpr_runner (contract).
        unsafe { with_runner(runner, |r| write_tensor(&plan, out, r)) }
    })
}

/// Asks the host for the `size`-byte output. `Ok(None)`: the host could not
/// allocate it and keeps its own error.
///
/// # Safety
/// `alloc` is NULL or a function that returns NULL or `size` writable bytes,
/// not aliased until the encode call returns.
pub(super) unsafe fn host_output<'a>(
    alloc: bpr_alloc_fn,
    context: *mut c_void,
    size: usize,
) -> Result<Option<&'a mut [u8]>> {
    let alloc = alloc.ok_or_else(|| Error::internal("NULL alloc function"))?;
    // SAFETY: per the contract; size > 0 (every response has its framing).
    let out = unsafe { alloc(context, size as u64) };
    if out.is_null() {
        return Ok(None);
    }
    // SAFETY: non-null and `size` writable bytes per the contract.
    Ok(Some(unsafe { std::slice::from_raw_parts_mut(out, size) }))
}

/// Runs an encode call: `f` returns false when the host's allocation failed,
/// which becomes BPR_HOST_ALLOC_FAILED (the host reports its own error).
pub(super) fn guarded_encode(
    msg: *mut c_char,
    msg_cap: usize,
    f: impl FnOnce() -> Result<bool>,
) -> bpr_status {
    let mut allocated = true;
    let status = guarded(msg, msg_cap, || {
        allocated = f()?;
        Ok(())
    });
    if allocated {
        status
    } else {
        sys::BPR_HOST_ALLOC_FAILED as bpr_status
    }
}

/// # Safety
/// `keys` and `values` point to valid views (header contract); `alloc` follows
/// the `bpr_alloc_fn` contract with `alloc_context`; `runner` is NULL or a
/// valid `bpr_runner`; `msg` is NULL or `msg_cap` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn bpr_continuous_encode(
    keys: *const bpr_tensor,
    values: *const bpr_tensor,
    alloc: bpr_alloc_fn,
    alloc_context: *mut c_void,
    runner: *const bpr_runner,
    msg: *mut c_char,
    msg_cap: usize,
) -> bpr_status {
    guarded_encode(msg, msg_cap, || {
        // SAFETY: the caller's contract covers the views, `alloc` and the runner.
        let (k, v) = unsafe { continuous_inputs(keys, values)? };
        let plan = bpr_protocol::plan_continuous(&k, &v)?;
        // SAFETY: `alloc` and its context follow bpr_alloc_fn (contract).
        let Some(out) = (unsafe { host_output(alloc, alloc_context, plan.size())? }) else {
            return Ok(false);
        };
        // SAFETY: `runner` is NULL or a valid bpr_runner (contract).
        unsafe { with_runner(runner, |r| write_continuous(&plan, out, r)) }?;
        Ok(true)
    })
}

/// Whether the continuous writer runs its AVX2 code: the CPU has AVX2 and
/// `BPR_OPS_PORTABLE` is not set (it forces the portable code, the same bytes;
/// for tests, and a way out should the AVX2 code ever be suspected). Decided
/// once per process.
#[cfg(target_arch = "x86_64")]
fn use_avx2() -> bool {
    static AVX2: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVX2.get_or_init(|| {
        std::env::var_os("BPR_OPS_PORTABLE").is_none() && is_x86_feature_detected!("avx2")
    })
}

/// Writes a validated continuous call with the fastest code this CPU runs.
pub(super) fn write_continuous(
    plan: &bpr_protocol::ContinuousPlan<'_>,
    out: &mut [u8],
    runner: &dyn Runner,
) -> Result<()> {
    #[cfg(target_arch = "x86_64")]
    if use_avx2() {
        // SAFETY: use_avx2() checked that this CPU has AVX2, the one
        // requirement of a #[target_feature(enable = "avx2")] function.
        return unsafe { plan.write_avx2(out, runner) };
    }
    plan.write(out, runner)
}

/// Writes a validated tensor call with the fastest code this CPU runs.
pub(super) fn write_tensor(
    plan: &bpr_protocol::TensorPlan<'_>,
    out: &mut [u8],
    runner: &dyn Runner,
) -> Result<()> {
    #[cfg(target_arch = "x86_64")]
    if use_avx2() {
        return plan.write_fixed_with(out, runner, &|r, first, shard, count| {
            // SAFETY: use_avx2() checked that this CPU has AVX2; the other
            // conditions of raw_records are write_fixed_with's contract.
            unsafe { raw_records(r, first, shard, count) }
        });
    }
    plan.write(out, runner)
}

/// # Safety
/// As [`bpr_continuous_encode`]; `values` points to `num_values` valid views.
#[no_mangle]
pub unsafe extern "C" fn bpr_tensor_encode(
    keys: *const bpr_tensor,
    values: *const bpr_tensor,
    num_values: usize,
    alloc: bpr_alloc_fn,
    alloc_context: *mut c_void,
    runner: *const bpr_runner,
    msg: *mut c_char,
    msg_cap: usize,
) -> bpr_status {
    // SAFETY: the caller's contract; a NULL cache is allowed there.
    unsafe {
        bpr_tensor_encode_cached(
            std::ptr::null_mut(),
            keys,
            values,
            num_values,
            alloc,
            alloc_context,
            runner,
            msg,
            msg_cap,
        )
    }
}

/// The header's opaque `bpr_tensor_cache`: a boxed [`bpr_protocol::TensorPlanCache`].
pub struct TensorCache(pub(super) bpr_protocol::TensorPlanCache);

/// Returns a new cache, owned by the caller until [`bpr_tensor_cache_free`];
/// NULL if it could not be made (a panic, caught here).
#[no_mangle]
pub extern "C" fn bpr_tensor_cache_new() -> *mut sys::bpr_tensor_cache {
    panic::catch_unwind(|| Box::new(TensorCache(bpr_protocol::TensorPlanCache::new())))
        .map_or(std::ptr::null_mut(), |b| Box::into_raw(b).cast())
}

/// # Safety
/// `cache` is NULL or was returned by [`bpr_tensor_cache_new`] and not freed,
/// and no other call uses it during or after this one.
#[no_mangle]
pub unsafe extern "C" fn bpr_tensor_cache_free(cache: *mut sys::bpr_tensor_cache) {
    if cache.is_null() {
        return;
    }
    // SAFETY: per the contract the pointer came from Box::into_raw in
    // bpr_tensor_cache_new and is dropped once. Dropping the cache frees
    // plain memory and cannot panic, but the boundary holds regardless.
    let _ = panic::catch_unwind(AssertUnwindSafe(|| {
        drop(unsafe { Box::from_raw(cache.cast::<TensorCache>()) })
    }));
}

/// # Safety
/// As [`bpr_tensor_encode`]; `cache` is NULL or a live cache from
/// [`bpr_tensor_cache_new`] (shared access only: the cache is Sync).
#[no_mangle]
pub unsafe extern "C" fn bpr_tensor_encode_cached(
    cache: *mut sys::bpr_tensor_cache,
    keys: *const bpr_tensor,
    values: *const bpr_tensor,
    num_values: usize,
    alloc: bpr_alloc_fn,
    alloc_context: *mut c_void,
    runner: *const bpr_runner,
    msg: *mut c_char,
    msg_cap: usize,
) -> bpr_status {
    guarded_encode(msg, msg_cap, || {
        // SAFETY: the caller's contract covers every view, `alloc`, the
        // runner and the cache, which is only read through a shared reference.
        let strings = unsafe { string_sources(values, num_values)? };
        let (k, v) = unsafe { tensor_inputs(keys, values, &strings)? };
        let cache = unsafe { cache.cast::<TensorCache>().as_ref() };
        let plan = match cache {
            Some(c) => c.0.plan(&k, &v)?,
            None => bpr_protocol::plan_tensor_response(&k, &v)?,
        };
        // SAFETY: `alloc` and its context follow bpr_alloc_fn (contract).
        let Some(out) = (unsafe { host_output(alloc, alloc_context, plan.size())? }) else {
            return Ok(false);
        };
        // SAFETY: `runner` is NULL or a valid bpr_runner (contract).
        unsafe { with_runner(runner, |r| write_tensor(&plan, out, r)) }?;
        Ok(true)
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::message;
    use super::*;
    use bpr_protocol::Data;

    /// A host allocator over a Vec: records the size asked for.
    extern "C" fn vec_alloc(context: *mut c_void, size: u64) -> *mut u8 {
        // SAFETY: the tests pass a &mut Vec<u8> as the context.
        let out = unsafe { &mut *(context as *mut Vec<u8>) };
        out.resize(size as usize, 0xAA);
        out.as_mut_ptr()
    }

    extern "C" fn failing_alloc(_: *mut c_void, _: u64) -> *mut u8 {
        std::ptr::null_mut()
    }

    fn view(dtype: u32, dims: &[i64], data: *const c_void, n: usize) -> bpr_tensor {
        bpr_tensor {
            dtype: dtype as i32,
            rank: dims.len(),
            dims: dims.as_ptr(),
            num_elements: n,
            data,
            string_at: None,
        }
    }

    #[test]
    fn one_call_encode_writes_what_the_encoder_writes_and_reports_a_failed_allocation() {
        let ids = [7i64, 9];
        let v = [1.5f32, -0.0, f32::from_bits(1), f32::from_bits(0x7f80_0001)];
        let (kd, vd) = ([2i64], [2i64, 2]);
        let keys = view(sys::BPR_DTYPE_INT64, &kd, ids.as_ptr().cast(), 2);
        let values = view(sys::BPR_DTYPE_FLOAT, &vd, v.as_ptr().cast(), 4);
        let want = bpr_protocol::encode_continuous(
            &Tensor::new(&kd, Data::I64(&ids)).unwrap(),
            &Tensor::new(&vd, Data::F32(&v)).unwrap(),
        )
        .unwrap();
        let mut msg = [0u8; 256];
        let mut out: Vec<u8> = Vec::new();
        // SAFETY: valid views, a conforming allocator and message buffer.
        let status = unsafe {
            bpr_continuous_encode(
                &keys,
                &values,
                Some(vec_alloc),
                (&mut out as *mut Vec<u8>).cast(),
                std::ptr::null(),
                msg.as_mut_ptr().cast(),
                msg.len(),
            )
        };
        assert_eq!(status, sys::BPR_OK as bpr_status);
        assert_eq!(out, want);

        let mut out: Vec<u8> = Vec::new();
        let columns = [
            view(sys::BPR_DTYPE_FLOAT, &vd, v.as_ptr().cast(), 4),
            values,
        ];
        // SAFETY: as above, two value views.
        let status = unsafe {
            bpr_tensor_encode(
                &keys,
                columns.as_ptr(),
                2,
                Some(vec_alloc),
                (&mut out as *mut Vec<u8>).cast(),
                std::ptr::null(),
                msg.as_mut_ptr().cast(),
                msg.len(),
            )
        };
        assert_eq!(status, sys::BPR_OK as bpr_status);
        let t = Tensor::new(&vd, Data::F32(&v)).unwrap();
        let want = bpr_protocol::encode_tensor_response(
            &Tensor::new(&kd, Data::I64(&ids)).unwrap(),
            &[t, t],
        )
        .unwrap();
        assert_eq!(out, want);

        // SAFETY: as above; the allocator fails.
        let status = unsafe {
            bpr_continuous_encode(
                &keys,
                &values,
                Some(failing_alloc),
                std::ptr::null_mut(),
                std::ptr::null(),
                msg.as_mut_ptr().cast(),
                msg.len(),
            )
        };
        assert_eq!(status, sys::BPR_HOST_ALLOC_FAILED as bpr_status);
        // Bad input is reported before any allocation is asked for.
        let bad = view(sys::BPR_DTYPE_FLOAT, &kd, v.as_ptr().cast(), 2);
        // SAFETY: as above.
        let status = unsafe {
            bpr_continuous_encode(
                &keys,
                &bad,
                Some(failing_alloc),
                std::ptr::null_mut(),
                std::ptr::null(),
                msg.as_mut_ptr().cast(),
                msg.len(),
            )
        };
        assert_eq!(status, sys::BPR_INVALID_ARGUMENT as bpr_status);
    }

    #[test]
    fn the_cached_encode_writes_what_the_uncached_one_writes() {
        let cache = bpr_tensor_cache_new();
        assert!(!cache.is_null());
        let encode = |cache: *mut sys::bpr_tensor_cache, ids: &[i64], dims: &[i64], v: &[f32]| {
            let kd = [ids.len() as i64];
            let keys = view(sys::BPR_DTYPE_INT64, &kd, ids.as_ptr().cast(), ids.len());
            let columns: Vec<bpr_tensor> = ids
                .iter()
                .map(|_| view(sys::BPR_DTYPE_FLOAT, dims, v.as_ptr().cast(), v.len()))
                .collect();
            let mut out: Vec<u8> = Vec::new();
            let mut msg = [0u8; 256];
            // SAFETY: valid views, a conforming allocator and message buffer;
            // `cache` is NULL or live.
            let status = unsafe {
                bpr_tensor_encode_cached(
                    cache,
                    &keys,
                    columns.as_ptr(),
                    columns.len(),
                    Some(vec_alloc),
                    (&mut out as *mut Vec<u8>).cast(),
                    std::ptr::null(),
                    msg.as_mut_ptr().cast(),
                    msg.len(),
                )
            };
            (status, out, message(&msg).to_string())
        };
        let v: Vec<f32> = (0..48).map(|i| i as f32 * 0.25).collect();
        for (ids, dims) in [
            (&[1i64, 2][..], &[3i64, 16][..]),
            (&[1, 2], &[3, 16]),
            (&[1, 2], &[6, 8]),
            (&[5], &[6, 8]),
            (&[5], &[2, 3, 8]),
            (&[5, 5], &[2, 3, 8]),
            (&[5], &[2, 3, 8]),
        ] {
            let fresh = encode(std::ptr::null_mut(), ids, dims, &v);
            assert_eq!(encode(cache, ids, dims, &v), fresh, "{ids:?} {dims:?}");
        }
        // SAFETY: made above, freed once, not used after.
        unsafe { bpr_tensor_cache_free(cache) };
        // SAFETY: NULL is allowed.
        unsafe { bpr_tensor_cache_free(std::ptr::null_mut()) };
    }
}
