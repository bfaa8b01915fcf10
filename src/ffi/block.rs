//! The C ABI of the block-format reader (`bpr_block_reader_*` in the header):
//! the shim's `BlockFormatDatasetV2` iterator owns one reader per open file
//! and feeds it through a read callback over TensorFlow's file system layer.

use super::guarded;
use super::sys::{self, bpr_block_reader, bpr_bytes, bpr_read_fn, bpr_status};
use bpr_protocol::block::{check_data_record, BlockReader};
use bpr_protocol::{Error, Result};
use std::cell::Cell;
use std::ffi::{c_char, c_void};
use std::io;
use std::rc::Rc;

/// The host's stream as a [`io::Read`]. Remembers whether the host failed, so
/// the host's own error (which it keeps) is reported rather than ours.
struct HostStream {
    read: unsafe extern "C" fn(*mut c_void, *mut u8, usize) -> i64,
    context: *mut c_void,
    failed: Rc<Cell<bool>>,
}

impl io::Read for HostStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        // SAFETY: the host's contract (header): `context` is valid while the
        // reader lives, and the callback writes at most `buf.len()` bytes to `buf`.
        let n = unsafe { (self.read)(self.context, buf.as_mut_ptr(), buf.len()) };
        if n < 0 {
            self.failed.set(true);
            return Err(io::Error::other("the host's read failed"));
        }
        Ok((n as usize).min(buf.len()))
    }
}

/// What `bpr_block_reader` points to.
pub struct Reader {
    inner: BlockReader<HostStream>,
    check_records: bool,
    host_failed: Rc<Cell<bool>>,
    name: String,
}

// The header's opaque struct is this Rust type.
impl Reader {
    /// The stream offset of the next unread byte (the one-pass source's
    /// record positions).
    pub(super) fn offset(&self) -> u64 {
        self.inner.offset()
    }

    fn into_raw(self: Box<Self>) -> *mut bpr_block_reader {
        Box::into_raw(self).cast()
    }
}

/// # Safety
/// `name` views `name.len` readable bytes (or is empty); `read` reads into the
/// buffer it is given and `context` stays valid until the reader is freed;
/// `out` is writable; `msg` is NULL or `msg_cap` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn bpr_block_reader_new(
    name: bpr_bytes,
    read: bpr_read_fn,
    context: *mut c_void,
    block_offset: u64,
    index: u64,
    check_records: i32,
    out: *mut *mut bpr_block_reader,
    msg: *mut c_char,
    msg_cap: usize,
) -> bpr_status {
    guarded(msg, msg_cap, || {
        if out.is_null() {
            return Err(Error::internal("bpr_block_reader_new: NULL out"));
        }
        let read = read.ok_or_else(|| Error::internal("bpr_block_reader_new: NULL read"))?;
        let name = if name.len == 0 || name.data.is_null() {
            String::new()
        } else {
            // SAFETY: the caller passes `name.len` readable bytes (header).
            let b = unsafe { std::slice::from_raw_parts(name.data, name.len) };
            String::from_utf8_lossy(b).into_owned()
        };
        let host_failed = Rc::new(Cell::new(false));
        let stream = HostStream {
            read,
            context,
            failed: host_failed.clone(),
        };
        let reader = Box::new(Reader {
            inner: BlockReader::resume(stream, name.clone(), block_offset, index),
            check_records: check_records != 0,
            host_failed,
            name,
        });
        // SAFETY: `out` is non-null and writable (header).
        unsafe { *out = reader.into_raw() };
        Ok(())
    })
}

/// # Safety
/// `reader` is NULL or a reader from bpr_block_reader_new, not yet freed.
#[no_mangle]
pub unsafe extern "C" fn bpr_block_reader_free(reader: *mut bpr_block_reader) {
    if !reader.is_null() {
        // SAFETY: made by Box::into_raw in bpr_block_reader_new, freed once (header).
        drop(unsafe { Box::from_raw(reader.cast::<Reader>()) });
    }
}

/// # Safety
/// `reader` is a live reader used by one thread at a time; the out pointers
/// are writable; `msg` is NULL or `msg_cap` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn bpr_block_reader_next(
    reader: *mut bpr_block_reader,
    has_record: *mut i32,
    record: *mut bpr_bytes,
    block_offset: *mut u64,
    index: *mut u64,
    msg: *mut c_char,
    msg_cap: usize,
) -> bpr_status {
    let mut host_failed = false;
    let status = guarded(msg, msg_cap, || {
        if reader.is_null()
            || has_record.is_null()
            || record.is_null()
            || block_offset.is_null()
            || index.is_null()
        {
            return Err(Error::internal("bpr_block_reader_next: NULL argument"));
        }
        // SAFETY: non-null and writable (checked above, header). Any error
        // but a bad record's leaves 0: the stream is what failed.
        unsafe { *has_record = 0 };
        // SAFETY: a live reader made by bpr_block_reader_new, used by one
        // thread at a time (the iterator holds its lock).
        let r = unsafe { &mut *reader.cast::<Reader>() };
        let next = r.inner.next_record();
        host_failed = r.host_failed.get();
        match next? {
            None => {
                // SAFETY: out pointers are non-null and writable (checked, header).
                unsafe {
                    *has_record = 0;
                    *record = bpr_bytes {
                        data: std::ptr::null(),
                        len: 0,
                    };
                }
            }
            Some(rec) => {
                // Set before the check: a record that is not a DataRecord is
                // an error about that record alone (the block around it is
                // sound), and the host needs its position to go on past it.
                // SAFETY: as above; the record's bytes live in the reader
                // until its next call or free, as the header says.
                unsafe {
                    *has_record = 1;
                    *record = bpr_bytes {
                        data: rec.bytes.as_ptr(),
                        len: rec.bytes.len(),
                    };
                    *block_offset = rec.block_offset;
                    *index = rec.index;
                }
                if r.check_records {
                    check_record(&r.name, &rec)?;
                }
            }
        }
        Ok(())
    });
    if host_failed {
        sys::BPR_HOST_READ_FAILED as bpr_status
    } else {
        status
    }
}

/// The record must be a DataRecord.
pub(super) fn check_record(name: &str, rec: &bpr_protocol::block::Record<'_>) -> Result<()> {
    check_data_record(rec.bytes).map_err(|(at, what)| {
        let start = rec.offset;
        Error::invalid(format!(
            "block file {name}: at byte {}: record {} of the block at byte {} is not a Thrift-binary \
             DataRecord: at byte {at} of its {} bytes: {what}",
            start + at as u64,
            rec.index,
            rec.block_offset,
            rec.bytes.len()
        ))
    })
}
