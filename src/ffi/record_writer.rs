//! `DataRecordTensorWriter` (bpr_record_tensor_encode): the third writer of
//! the family, after the two response writers; the record is built by
//! `bpr_protocol::encode_data_record_tensors` from the same framing.

use std::ffi::{c_char, c_void};

use super::sys::{bpr_alloc_fn, bpr_status, bpr_tensor};
use super::writers::{guarded_encode, host_output, string_sources, tensor_inputs};

/// # Safety
/// `keys` is a valid view and `values` points to `num_values` valid views
/// (header contract); `alloc` follows the `bpr_alloc_fn` contract with
/// `alloc_context`; `msg` is NULL or `msg_cap` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn bpr_record_tensor_encode(
    keys: *const bpr_tensor,
    values: *const bpr_tensor,
    num_values: usize,
    alloc: bpr_alloc_fn,
    alloc_context: *mut c_void,
    msg: *mut c_char,
    msg_cap: usize,
) -> bpr_status {
    guarded_encode(msg, msg_cap, || {
        // SAFETY: the caller's contract covers every view; the string
        // sources outlive the views that borrow them.
        let strings = unsafe { string_sources(values, num_values)? };
        let (k, v) = unsafe { tensor_inputs(keys, values, &strings)? };
        let record = bpr_protocol::encode_data_record_tensors(&k, &v)?;
        // SAFETY: `alloc` and its context per the contract; the record is
        // never empty (at least its STOP byte).
        let Some(out) = (unsafe { host_output(alloc, alloc_context, record.len())? }) else {
            return Ok(false);
        };
        out.copy_from_slice(&record);
        Ok(true)
    })
}
