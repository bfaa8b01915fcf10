//! The per-request writers (`bpr_*_encode_responses`): the single-response
//! writers cut by row splits, one string of the host's output per request.
//!
//! Everything is validated on the whole call first (the same checks and
//! messages as the single-response writer, then the splits), before the host
//! allocates anything; each response is then planned, sized, allocated once
//! by the host and written in place by the same code as the single-response
//! writers (`write_continuous`, `write_tensor`), so the bytes cannot differ.

use super::runner::with_runner;
use super::sys::{self, bpr_runner, bpr_status, bpr_string_output, bpr_tensor};
use super::writers::{
    continuous_inputs, guarded_encode, string_sources, tensor_inputs, write_continuous,
    write_tensor, TensorCache,
};
use super::{tensor, Input};
use bpr_protocol::responses::{check_row_splits, split_rows, SplitRows};
use bpr_protocol::{Error, Result, Runner, Tensor};
use std::ffi::c_char;

/// The host's string output, through its callbacks.
struct HostResponses<'h>(&'h bpr_string_output);

impl HostResponses<'_> {
    /// # Safety
    /// `out` is NULL or points to a valid `bpr_string_output` for `'h`.
    unsafe fn new<'h>(out: *const bpr_string_output) -> Result<HostResponses<'h>> {
        // SAFETY: per the contract.
        let host = unsafe { out.as_ref() }.ok_or_else(|| Error::internal("NULL string output"))?;
        Ok(HostResponses(host))
    }

    /// Allocates `count` strings; false when the host could not.
    fn alloc(&self, count: usize) -> Result<bool> {
        let alloc = self
            .0
            .alloc
            .ok_or_else(|| Error::internal("bpr_string_output.alloc is NULL"))?;
        // SAFETY: the host's callback with its own context (header contract).
        Ok(unsafe { alloc(self.0.context, count as u64) } == 0)
    }

    /// String `index` sized to `size` bytes; None when the host could not.
    fn element(&mut self, index: usize, size: usize) -> Result<Option<&mut [u8]>> {
        let element = self
            .0
            .element
            .ok_or_else(|| Error::internal("bpr_string_output.element is NULL"))?;
        // SAFETY: the host's callback; index < the count it allocated, and
        // size > 0 (every response has its framing).
        let out = unsafe { element(self.0.context, index as u64, size as u64) };
        if out.is_null() {
            return Ok(None);
        }
        // SAFETY: the host returned `size` writable bytes, valid until the
        // call returns and written by nothing else (header contract); each
        // string is asked for once, so no two slices alias.
        Ok(Some(unsafe { std::slice::from_raw_parts_mut(out, size) }))
    }
}

/// # Safety
/// `keys`, `values` and `row_splits` point to valid views; `out` to a valid
/// `bpr_string_output`; `runner` is NULL or a valid `bpr_runner`; `msg` is
/// NULL or `msg_cap` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn bpr_continuous_encode_responses(
    keys: *const bpr_tensor,
    values: *const bpr_tensor,
    row_splits: *const bpr_tensor,
    out: *const bpr_string_output,
    runner: *const bpr_runner,
    msg: *mut c_char,
    msg_cap: usize,
) -> bpr_status {
    guarded_encode(msg, msg_cap, || {
        // SAFETY: the caller's contract covers the views, the output and the runner.
        let (k, v) = unsafe { continuous_inputs(keys, values)? };
        let s = unsafe { tensor(row_splits, None, Input::RowSplits)? };
        // The whole call's checks and messages, before anything is allocated.
        bpr_protocol::plan_continuous(&k, &v)?;
        let splits = check_row_splits(&s, &v, "values")?;
        let mut host = unsafe { HostResponses::new(out)? };
        if !host.alloc(splits.len() - 1)? {
            return Ok(false);
        }
        unsafe {
            with_runner(runner, |r: &dyn Runner| {
                for (i, w) in splits.windows(2).enumerate() {
                    let rows = split_rows(&v, w[0] as usize, w[1] as usize)?;
                    let t = rows.tensor();
                    let plan = bpr_protocol::plan_continuous(&k, &t)?;
                    let Some(buf) = host.element(i, plan.size())? else {
                        return Ok(false);
                    };
                    write_continuous(&plan, buf, r)?;
                }
                Ok(true)
            })
        }
    })
}

/// # Safety
/// As [`bpr_continuous_encode_responses`]; `values` points to `num_values`
/// valid views; `cache` is NULL or a live cache from `bpr_tensor_cache_new`.
#[no_mangle]
pub unsafe extern "C" fn bpr_tensor_encode_responses(
    cache: *mut sys::bpr_tensor_cache,
    keys: *const bpr_tensor,
    values: *const bpr_tensor,
    num_values: usize,
    row_splits: *const bpr_tensor,
    out: *const bpr_string_output,
    runner: *const bpr_runner,
    msg: *mut c_char,
    msg_cap: usize,
) -> bpr_status {
    guarded_encode(msg, msg_cap, || {
        // SAFETY: the caller's contract covers every view, the output, the
        // runner and the cache, which is only read through a shared reference.
        let strings = unsafe { string_sources(values, num_values)? };
        let (k, v) = unsafe { tensor_inputs(keys, values, &strings)? };
        let s = unsafe { tensor(row_splits, None, Input::RowSplits)? };
        let cache = unsafe { cache.cast::<TensorCache>().as_ref() };
        // The whole call's checks and messages, before anything is allocated.
        plan(cache, &k, &v)?;
        let splits = check_row_splits(&s, &v[0], "values[0]")?;
        let mut host = unsafe { HostResponses::new(out)? };
        if !host.alloc(splits.len() - 1)? {
            return Ok(false);
        }
        unsafe {
            with_runner(runner, |r: &dyn Runner| {
                for (i, w) in splits.windows(2).enumerate() {
                    let rows = v
                        .iter()
                        .map(|t| split_rows(t, w[0] as usize, w[1] as usize))
                        .collect::<Result<Vec<SplitRows<'_>>>>()?;
                    let pieces: Vec<Tensor<'_>> = rows.iter().map(SplitRows::tensor).collect();
                    let p = plan(cache, &k, &pieces)?;
                    let Some(buf) = host.element(i, p.size())? else {
                        return Ok(false);
                    };
                    write_tensor(&p, buf, r)?;
                }
                Ok(true)
            })
        }
    })
}

/// The tensor writer's plan, through the kernel's cache when it has one.
fn plan<'p>(
    cache: Option<&TensorCache>,
    keys: &Tensor<'p>,
    values: &[Tensor<'p>],
) -> Result<bpr_protocol::TensorPlan<'p>> {
    match cache {
        Some(c) => c.0.plan(keys, values),
        None => bpr_protocol::plan_tensor_response(keys, values),
    }
}
