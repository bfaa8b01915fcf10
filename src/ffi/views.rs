//! The shim's C arguments as Rust slices, shared by every op family's C ABI
//! (requests, the model ops): data and dims checked for NULL and alignment,
//! and an output allocated through the host's `bpr_outputs` callbacks. One
//! copy, so a check added here reaches every family.

use bpr_protocol::{Error, Result};
use std::ffi::c_void;
use std::fmt::Display;

use super::sys::{self, bpr_outputs};

/// A slice from a C pointer and a length (NULL allowed when empty), for
/// arrays the shim builds itself (attrs, message views).
///
/// # Safety
/// `ptr` points to `len` valid `T`s, or `len == 0`.
pub(super) unsafe fn array<'a, T>(ptr: *const T, len: usize) -> &'a [T] {
    if len == 0 {
        &[]
    } else {
        // SAFETY: the caller's contract.
        unsafe { std::slice::from_raw_parts(ptr, len) }
    }
}

/// `n` elements of `T` at `ptr`, checked for NULL and alignment.
///
/// # Safety
/// When non-null, `ptr` points to `n` initialised `T`s that stay valid and
/// unchanged for `'a`.
pub(super) unsafe fn slice<'a, T>(
    ptr: *const c_void,
    n: usize,
    what: impl Display,
) -> Result<&'a [T]> {
    if n == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(Error::internal(format!(
            "{what}: NULL data for {n} elements"
        )));
    }
    if !(ptr as usize).is_multiple_of(std::mem::align_of::<T>()) {
        return Err(Error::internal(format!(
            "{what}: misaligned data at {ptr:p}"
        )));
    }
    // SAFETY: non-null, aligned, and valid for n elements per the contract.
    Ok(unsafe { std::slice::from_raw_parts(ptr.cast::<T>(), n) })
}

/// `n` writable elements of `T` at `ptr`.
///
/// # Safety
/// When non-null, `ptr` points to `n` writable `T`s, not aliased during `'a`.
pub(super) unsafe fn slice_mut<'a, T>(
    ptr: *mut c_void,
    n: usize,
    what: impl Display,
) -> Result<&'a mut [T]> {
    if n == 0 {
        return Ok(&mut []);
    }
    if ptr.is_null() {
        return Err(Error::internal(format!(
            "{what}: NULL output for {n} elements"
        )));
    }
    if !(ptr as usize).is_multiple_of(std::mem::align_of::<T>()) {
        return Err(Error::internal(format!(
            "{what}: misaligned output at {ptr:p}"
        )));
    }
    // SAFETY: non-null, aligned, writable and unaliased for n elements (contract).
    Ok(unsafe { std::slice::from_raw_parts_mut(ptr.cast::<T>(), n) })
}

/// A view's dims: `rank` int64s at `dims` (none for a scalar).
///
/// # Safety
/// When `rank > 0` and `dims` is non-null, it points to `rank` int64s valid
/// for `'a`.
pub(super) unsafe fn dims<'a>(
    dims: *const i64,
    rank: usize,
    what: impl Display,
) -> Result<&'a [i64]> {
    if rank == 0 {
        return Ok(&[]);
    }
    if dims.is_null() {
        return Err(Error::internal(format!(
            "{what}: NULL dims for rank {rank}"
        )));
    }
    // SAFETY: non-null, `rank` dims valid for 'a per the contract.
    Ok(unsafe { std::slice::from_raw_parts(dims, rank) })
}

/// Output `index` of shape `dims` (elements of `elem` bytes) from the host's
/// allocator: its buffer and element count. A size over `isize::MAX` bytes is
/// an error before the host is asked; `alloc_failed` is set when the host's
/// allocation fails (its own status then says why).
pub(super) fn host_alloc(
    host: &bpr_outputs,
    alloc_failed: &mut bool,
    index: usize,
    dims: &[usize],
    elem: usize,
) -> Result<(*mut c_void, usize)> {
    let n = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .filter(|n| {
            n.checked_mul(elem)
                .is_some_and(|b| b <= isize::MAX as usize)
        })
        .ok_or_else(|| Error::invalid(format!("output {index} of shape {dims:?} is too large")))?;
    let dims64: Vec<i64> = dims.iter().map(|&d| d as i64).collect();
    let alloc = host
        .alloc
        .ok_or_else(|| Error::internal("bpr_outputs.alloc is NULL"))?;
    let mut data = std::ptr::null_mut();
    // SAFETY: the host's callback, given a valid dims array and out pointer.
    let rc = unsafe {
        alloc(
            host.context,
            index as i32,
            dims64.as_ptr(),
            dims64.len(),
            &mut data,
        )
    };
    if rc != 0 {
        *alloc_failed = true;
        return Err(Error::internal(format!(
            "the host could not allocate output {index}"
        )));
    }
    if data.is_null() && n > 0 {
        return Err(Error::internal(format!(
            "the host gave output {index} no buffer"
        )));
    }
    Ok((data, n))
}

/// A dtype code's TensorFlow name, for messages.
pub(super) fn dtype_name(code: u32) -> &'static str {
    match code {
        sys::BPR_DTYPE_FLOAT => "float",
        sys::BPR_DTYPE_DOUBLE => "double",
        sys::BPR_DTYPE_HALF => "half",
        sys::BPR_DTYPE_BFLOAT16 => "bfloat16",
        sys::BPR_DTYPE_INT32 => "int32",
        sys::BPR_DTYPE_INT64 => "int64",
        sys::BPR_DTYPE_UINT8 => "uint8",
        sys::BPR_DTYPE_BOOL => "bool",
        sys::BPR_DTYPE_STRING => "string",
        sys::BPR_DTYPE_INT8 => "int8",
        _ => "another dtype",
    }
}
