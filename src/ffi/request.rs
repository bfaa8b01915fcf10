//! The request side's C entry points (`bpr_request_*`): twml's request
//! readers. Attrs, messages and output buffers come from the shim; every op's
//! logic is `bpr_protocol::request`.

use bpr_protocol::{Error, Result};
use std::ffi::{c_char, c_void};

use super::guarded;
use super::sys::{self, bpr_bytes, bpr_status};
use super::views::{array as slice, host_alloc};

use bpr_protocol::request::{Attr, Batch, Outputs, RequestOp};
use sys::{bpr_attr, bpr_outputs};

/// The messages of a decode or get call as byte slices.
///
/// # Safety
/// `inputs` points to `n` views, each of `len` readable bytes (or NULL/0).
pub(super) unsafe fn messages<'a>(inputs: *const bpr_bytes, n: usize) -> Vec<&'a [u8]> {
    // SAFETY: the caller's contract, per view.
    unsafe {
        slice(inputs, n)
            .iter()
            .map(|b| slice(b.data, b.len))
            .collect()
    }
}

#[no_mangle]
pub unsafe extern "C" fn bpr_request_op_new(
    op_name: *const c_char,
    attrs: *const bpr_attr,
    num_attrs: usize,
    out: *mut *mut sys::bpr_request_op,
    msg: *mut c_char,
    msg_cap: usize,
) -> bpr_status {
    guarded(msg, msg_cap, || {
        // SAFETY: the header's contract: a NUL-terminated name, `num_attrs`
        // attrs whose names are NUL-terminated and whose lists and strings
        // have the lengths given.
        let name = unsafe { std::ffi::CStr::from_ptr(op_name) };
        let name = name
            .to_str()
            .map_err(|_| Error::invalid("op name is not UTF-8"))?;
        // SAFETY: `num_attrs` attrs at `attrs` (contract).
        let raw = unsafe { slice(attrs, num_attrs) };
        let mut given = Vec::with_capacity(raw.len());
        for a in raw {
            // SAFETY: each attr name is NUL-terminated (contract).
            let attr_name = unsafe { std::ffi::CStr::from_ptr(a.name) }
                .to_str()
                .map_err(|_| Error::invalid(format!("{name}: an attr name is not UTF-8")))?;
            let value = match a.kind as u32 {
                sys::BPR_ATTR_INT => Attr::Int(a.int_value),
                sys::BPR_ATTR_FLOAT => Attr::Float(a.float_value),
                sys::BPR_ATTR_STRING => {
                    // SAFETY: the string's bytes and length (contract).
                    Attr::Str(unsafe { slice(a.string_value.data, a.string_value.len) })
                }
                sys::BPR_ATTR_INT_LIST => {
                    // SAFETY: the list's ints and length (contract).
                    Attr::Ints(unsafe { slice(a.list, a.list_len) })
                }
                sys::BPR_ATTR_BOOL => Attr::Bool(a.int_value != 0),
                k => {
                    return Err(Error::internal(format!(
                        "{name}: attr {attr_name} has kind {k}, which the C ABI does not define"
                    )))
                }
            };
            given.push((attr_name, value));
        }
        let op = RequestOp::new(name, &given)?;
        // SAFETY: `out` is writable (contract).
        unsafe { *out = Box::into_raw(Box::new(op)).cast() };
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn bpr_request_op_free(op: *mut sys::bpr_request_op) {
    if !op.is_null() {
        // SAFETY: made by bpr_request_op_new (a boxed RequestOp behind the
        // opaque type), freed once (contract).
        drop(unsafe { Box::from_raw(op.cast::<RequestOp>()) });
    }
}

#[no_mangle]
pub unsafe extern "C" fn bpr_request_decode(
    op: *const sys::bpr_request_op,
    inputs: *const bpr_bytes,
    num_inputs: usize,
    input_is_string: i32,
    out: *mut *mut sys::bpr_request_batch,
    msg: *mut c_char,
    msg_cap: usize,
) -> bpr_status {
    guarded(msg, msg_cap, || {
        // SAFETY: a live op from bpr_request_op_new; views as the header says.
        let (op, messages) = unsafe { (&*op.cast::<RequestOp>(), messages(inputs, num_inputs)) };
        let batch = op.decode(&messages, input_is_string != 0)?;
        // SAFETY: `out` is writable.
        unsafe { *out = Box::into_raw(Box::new(batch)).cast() };
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn bpr_request_batch_free(batch: *mut sys::bpr_request_batch) {
    if !batch.is_null() {
        // SAFETY: made by bpr_request_decode (a boxed Batch behind the opaque
        // type), freed once (contract). Released, not dropped: its op's next
        // decode reuses its vectors.
        unsafe { Box::from_raw(batch.cast::<Batch>()) }.release();
    }
}

/// The host's outputs, through its callbacks.
pub(super) struct HostOutputs<'h> {
    pub(super) host: &'h bpr_outputs,
    pub(super) alloc_failed: bool,
}

impl HostOutputs<'_> {
    fn alloc(&mut self, index: usize, dims: &[usize], elem: usize) -> Result<(*mut c_void, usize)> {
        host_alloc(self.host, &mut self.alloc_failed, index, dims, elem)
    }

    fn typed<T>(&mut self, index: usize, dims: &[usize]) -> Result<&mut [T]> {
        let (data, n) = self.alloc(index, dims, std::mem::size_of::<T>())?;
        if n == 0 {
            return Ok(&mut []);
        }
        // SAFETY: the host allocated `n` elements of the output's dtype, which
        // the op registers as T, aligned as TensorFlow aligns buffers; nothing
        // else writes them during the call.
        Ok(unsafe { std::slice::from_raw_parts_mut(data.cast::<T>(), n) })
    }
}

impl Outputs for HostOutputs<'_> {
    fn int64(&mut self, index: usize, dims: &[usize]) -> Result<&mut [i64]> {
        self.typed(index, dims)
    }
    fn float(&mut self, index: usize, dims: &[usize]) -> Result<&mut [f32]> {
        self.typed(index, dims)
    }
    fn int8(&mut self, index: usize, dims: &[usize]) -> Result<&mut [i8]> {
        self.typed(index, dims)
    }
    fn uint8(&mut self, index: usize, dims: &[usize]) -> Result<&mut [u8]> {
        self.typed(index, dims)
    }
    fn bool(&mut self, index: usize, dims: &[usize]) -> Result<&mut [bool]> {
        // TensorFlow's bool is C++ bool, one byte holding 0 or 1, as Rust's.
        self.typed(index, dims)
    }
    fn strings(
        &mut self,
        index: usize,
        dims: &[usize],
        values: &mut dyn Iterator<Item = &[u8]>,
    ) -> Result<()> {
        let (data, n) = self.alloc(index, dims, 1)?;
        let set = self
            .host
            .set_string
            .ok_or_else(|| Error::internal("bpr_outputs.set_string is NULL"))?;
        for (i, v) in values.take(n).enumerate() {
            // SAFETY: element i < n of the string output the host allocated.
            unsafe { set(data, i as i64, v.as_ptr(), v.len()) };
        }
        Ok(())
    }
}

#[no_mangle]
pub unsafe extern "C" fn bpr_request_get(
    op: *const sys::bpr_request_op,
    batch: *const sys::bpr_request_batch,
    inputs: *const bpr_bytes,
    num_inputs: usize,
    outputs: *const bpr_outputs,
    msg: *mut c_char,
    msg_cap: usize,
) -> bpr_status {
    let mut alloc_failed = false;
    let status = guarded(msg, msg_cap, || {
        // SAFETY: live op and batch; the batch's own messages; valid callbacks.
        let (op, batch, messages, host) = unsafe {
            (
                &*op.cast::<RequestOp>(),
                &*batch.cast::<Batch>(),
                messages(inputs, num_inputs),
                &*outputs,
            )
        };
        let mut out = HostOutputs {
            host,
            alloc_failed: false,
        };
        let r = op.get(batch, &messages, &mut out);
        alloc_failed = out.alloc_failed;
        r
    });
    if alloc_failed {
        sys::BPR_HOST_ALLOC_FAILED as bpr_status
    } else {
        status
    }
}
