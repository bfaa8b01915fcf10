//! `bpr_feature_ids`: twml's feature-id hash of names, for the `FeatureId`
//! op and the Python wrappers.

use bpr_protocol::Error;
use std::ffi::c_char;

use super::guarded;
use super::sys::{bpr_bytes, bpr_status};

/// # Safety
/// `names` points to `num_names` valid `bpr_bytes` (each `data` valid for `len`
/// bytes, or NULL when `len` is 0); `out` points to `num_names` writable
/// int64s; `msg` is NULL or `msg_cap` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn bpr_feature_ids(
    names: *const bpr_bytes,
    num_names: usize,
    out: *mut i64,
    msg: *mut c_char,
    msg_cap: usize,
) -> bpr_status {
    guarded(msg, msg_cap, || {
        if num_names == 0 {
            return Ok(());
        }
        if names.is_null() || out.is_null() {
            return Err(Error::internal(format!(
                "feature ids: NULL names or output for {num_names} names"
            )));
        }
        // SAFETY: `names` holds `num_names` entries (contract above).
        let entries = unsafe { std::slice::from_raw_parts(names, num_names) };
        let mut views: Vec<&[u8]> = Vec::with_capacity(num_names);
        for (i, b) in entries.iter().enumerate() {
            views.push(if b.len == 0 {
                &[]
            } else if b.data.is_null() {
                return Err(Error::internal(format!(
                    "feature_names[{i}]: NULL data for {} bytes",
                    b.len
                )));
            } else {
                // SAFETY: non-null and valid for `len` bytes for the call.
                unsafe { std::slice::from_raw_parts(b.data, b.len) }
            });
        }
        // SAFETY: `out` is non-null and holds `num_names` writable int64s,
        // owned by the caller and not aliased during the call.
        let out = unsafe { std::slice::from_raw_parts_mut(out, num_names) };
        bpr_protocol::write_feature_ids(&views, out)
    })
}

#[cfg(test)]
mod tests {
    use super::super::sys;
    use super::super::tests::{bytes_of, message};
    use super::*;

    #[test]
    fn feature_ids_through_the_c_abi() {
        let names = bytes_of(&[b"prediction", b"", b"x#y"]);
        let mut out = [7i64; 3];
        let mut buf = [0u8; 256];
        // SAFETY: 3 names, 3 slots, a 256-byte message buffer.
        let status = unsafe {
            bpr_feature_ids(
                names.as_ptr(),
                3,
                out.as_mut_ptr(),
                buf.as_mut_ptr().cast(),
                256,
            )
        };
        assert_eq!(status, sys::BPR_OK as bpr_status);
        assert_eq!(out, [-5621645068071228725, 0, -7212464046583124290]);
        // No names: nothing is read or written, pointers may be NULL.
        // SAFETY: num_names is 0.
        let status = unsafe {
            bpr_feature_ids(
                std::ptr::null(),
                0,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                0,
            )
        };
        assert_eq!(status, sys::BPR_OK as bpr_status);
    }

    #[test]
    fn feature_ids_of_bad_utf8_are_an_invalid_argument() {
        let names = bytes_of(&[b"ok", b"ab\xe2\x82"]);
        let mut out = [7i64; 2];
        let mut buf = [0u8; 512];
        // SAFETY: 2 names, 2 slots, a 512-byte message buffer.
        let status = unsafe {
            bpr_feature_ids(
                names.as_ptr(),
                2,
                out.as_mut_ptr(),
                buf.as_mut_ptr().cast(),
                512,
            )
        };
        assert_eq!(status, sys::BPR_INVALID_ARGUMENT as bpr_status);
        assert_eq!(out, [7, 7], "nothing is written when a name is bad");
        let text = message(&buf);
        assert!(
            text.starts_with("feature_names[1] is not valid UTF-8"),
            "{text}"
        );
        assert!(text.contains("byte offset 2"), "{text}");
    }
}
