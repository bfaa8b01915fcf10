//! The one-pass training input's Rust side (`bpr_block_features_*` in the
//! header): `BlockFormatFeatureDataset` hands each batch of block records,
//! straight from the reader's buffer, to one `DecodeDataRecord` decode and the
//! getters `training_dataset` would have run on its handle, so a record is
//! walked once and the getters' code is the two-step path's own (issue 38).

use super::block::{check_record, Reader};
use super::guarded;
use super::request::{messages, HostOutputs};
use super::sys::{self, bpr_block_features, bpr_block_reader, bpr_bytes, bpr_outputs, bpr_status};
use bpr_protocol::block::Record;
use bpr_protocol::request::{check_data_record, Attr, Outputs, RequestOp};
use bpr_protocol::{Error, Result};
use std::ffi::c_char;

/// The decode op and the getters (each with the index of its first output
/// among the dataset's outputs).
pub struct Features {
    decode: RequestOp,
    getters: Vec<(RequestOp, usize)>,
}

/// One attr value of a plan line, owned while `RequestOp::new` reads it.
enum Owned {
    Int(i64),
    Float(f32),
    Str(Vec<u8>),
    Bool(bool),
    Ints(Vec<i64>),
}

fn parse_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// One plan line: the op, its number of outputs.
fn parse_line(line: &str) -> Result<(RequestOp, usize)> {
    let mut fields = line.split('\t');
    let name = fields.next().unwrap_or_default();
    let bad =
        |what: String| Error::invalid(format!("BlockFormatFeatureDataset plan: op {name}: {what}"));
    let outputs: usize = fields
        .next()
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| bad("the second field must be its number of outputs".into()))?;
    let mut owned = Vec::new();
    for field in fields {
        let (attr, value) = field
            .split_once('=')
            .ok_or_else(|| bad(format!("attr {field:?} is not name=kind:value")))?;
        let (kind, v) = value
            .split_once(':')
            .ok_or_else(|| bad(format!("attr {attr}: {value:?} is not kind:value")))?;
        let what = || bad(format!("attr {attr}: cannot read {value:?}"));
        let parsed = match kind {
            "i" => Owned::Int(v.parse().map_err(|_| what())?),
            "f" => Owned::Float(f32::from_bits(v.parse().map_err(|_| what())?)),
            "s" => Owned::Str(parse_hex(v).ok_or_else(what)?),
            "b" => Owned::Bool(v == "1"),
            "l" if v.is_empty() => Owned::Ints(Vec::new()),
            "l" => Owned::Ints(
                v.split(',')
                    .map(|x| x.parse())
                    .collect::<std::result::Result<_, _>>()
                    .map_err(|_| what())?,
            ),
            _ => return Err(what()),
        };
        owned.push((attr, parsed));
    }
    let attrs: Vec<(&str, Attr<'_>)> = owned
        .iter()
        .map(|(n, v)| {
            let a = match v {
                Owned::Int(i) => Attr::Int(*i),
                Owned::Float(f) => Attr::Float(*f),
                Owned::Str(s) => Attr::Str(s),
                Owned::Bool(b) => Attr::Bool(*b),
                Owned::Ints(l) => Attr::Ints(l),
            };
            (*n, a)
        })
        .collect();
    Ok((RequestOp::new(name, &attrs)?, outputs))
}

impl Features {
    fn parse(plan: &str) -> Result<Features> {
        let mut lines = plan.lines().filter(|l| !l.is_empty());
        let first = lines
            .next()
            .ok_or_else(|| Error::invalid("BlockFormatFeatureDataset plan: no ops"))?;
        let (decode, _) = parse_line(first)?;
        if decode.name() != "DecodeDataRecord" {
            return Err(Error::invalid(format!(
                "BlockFormatFeatureDataset plan: the first op must be DecodeDataRecord, got {}",
                decode.name()
            )));
        }
        let mut getters = Vec::new();
        let mut base = 0;
        for line in lines {
            let (op, n) = parse_line(line)?;
            if op.is_decode() {
                return Err(Error::invalid(format!(
                    "BlockFormatFeatureDataset plan: a second decode op ({})",
                    op.name()
                )));
            }
            getters.push((op, base));
            base += n;
        }
        Ok(Features { decode, getters })
    }
}

/// A getter's outputs, numbered from its first among the dataset's.
struct Shifted<'o, 'h> {
    inner: &'o mut HostOutputs<'h>,
    base: usize,
}

impl Outputs for Shifted<'_, '_> {
    fn int64(&mut self, index: usize, dims: &[usize]) -> Result<&mut [i64]> {
        self.inner.int64(self.base + index, dims)
    }
    fn float(&mut self, index: usize, dims: &[usize]) -> Result<&mut [f32]> {
        self.inner.float(self.base + index, dims)
    }
    fn int8(&mut self, index: usize, dims: &[usize]) -> Result<&mut [i8]> {
        self.inner.int8(self.base + index, dims)
    }
    fn uint8(&mut self, index: usize, dims: &[usize]) -> Result<&mut [u8]> {
        self.inner.uint8(self.base + index, dims)
    }
    fn bool(&mut self, index: usize, dims: &[usize]) -> Result<&mut [bool]> {
        self.inner.bool(self.base + index, dims)
    }
    fn strings(
        &mut self,
        index: usize,
        dims: &[usize],
        values: &mut dyn Iterator<Item = &[u8]>,
    ) -> Result<()> {
        self.inner.strings(self.base + index, dims, values)
    }
}

/// # Safety
/// `plan` views `plan.len` readable bytes; `out` is writable; `msg` is NULL
/// or `msg_cap` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn bpr_block_features_new(
    plan: bpr_bytes,
    out: *mut *mut bpr_block_features,
    msg: *mut c_char,
    msg_cap: usize,
) -> bpr_status {
    guarded(msg, msg_cap, || {
        if out.is_null() {
            return Err(Error::internal("bpr_block_features_new: NULL out"));
        }
        let bytes = if plan.len == 0 || plan.data.is_null() {
            &[][..]
        } else {
            // SAFETY: `plan.len` readable bytes (header).
            unsafe { std::slice::from_raw_parts(plan.data, plan.len) }
        };
        let text = std::str::from_utf8(bytes)
            .map_err(|_| Error::invalid("BlockFormatFeatureDataset plan: not UTF-8"))?;
        let features = Box::new(Features::parse(text)?);
        // SAFETY: `out` is non-null and writable (header).
        unsafe { *out = Box::into_raw(features).cast() };
        Ok(())
    })
}

/// # Safety
/// `features` is NULL or from bpr_block_features_new, not yet freed.
#[no_mangle]
pub unsafe extern "C" fn bpr_block_features_free(features: *mut bpr_block_features) {
    if !features.is_null() {
        // SAFETY: made by Box::into_raw in bpr_block_features_new, freed once.
        drop(unsafe { Box::from_raw(features.cast::<Features>()) });
    }
}

/// # Safety
/// `features` is live; `records` points to `num_records` views of readable
/// bytes; `outputs` holds valid callbacks; `bad_record` is writable; `msg` is
/// NULL or `msg_cap` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn bpr_block_features_run(
    features: *const bpr_block_features,
    records: *const bpr_bytes,
    num_records: usize,
    outputs: *const bpr_outputs,
    bad_record: *mut i64,
    msg: *mut c_char,
    msg_cap: usize,
) -> bpr_status {
    let mut alloc_failed = false;
    let status = guarded(msg, msg_cap, || {
        if features.is_null() || outputs.is_null() || bad_record.is_null() {
            return Err(Error::internal("bpr_block_features_run: NULL argument"));
        }
        // SAFETY: non-null, writable (header).
        unsafe { *bad_record = -1 };
        // SAFETY: a live Features; views and callbacks as the header says.
        let (f, messages, host) = unsafe {
            (
                &*features.cast::<Features>(),
                messages(records, num_records),
                &*outputs,
            )
        };
        let batch = match f.decode.decode(&messages, true) {
            Ok(b) => b,
            Err(e) => {
                // The decode walk is the check's walk: the record it stopped
                // at is the first the check refuses. Only that record is bad;
                // the host drops it and keeps the others.
                if let Some(i) = messages.iter().position(|m| check_data_record(m).is_err()) {
                    // SAFETY: as above.
                    unsafe { *bad_record = i as i64 };
                }
                return Err(e);
            }
        };
        let mut out = HostOutputs {
            host,
            alloc_failed: false,
        };
        let mut result = Ok(());
        for (op, base) in &f.getters {
            let mut shifted = Shifted {
                inner: &mut out,
                base: *base,
            };
            result = op.get(&batch, &messages, &mut shifted);
            if result.is_err() {
                break;
            }
        }
        alloc_failed = out.alloc_failed;
        batch.release();
        result
    });
    if alloc_failed {
        sys::BPR_HOST_ALLOC_FAILED as bpr_status
    } else {
        status
    }
}

/// # Safety
/// `reader` is a live reader from bpr_block_reader_new.
#[no_mangle]
pub unsafe extern "C" fn bpr_block_reader_offset(reader: *const bpr_block_reader) -> u64 {
    if reader.is_null() {
        return 0;
    }
    // SAFETY: a live reader (header), read only.
    unsafe { &*reader.cast::<Reader>() }.offset()
}

/// # Safety
/// `name` and `record` view readable bytes; `msg` is NULL or `msg_cap`
/// writable bytes.
#[no_mangle]
pub unsafe extern "C" fn bpr_block_check_record(
    name: bpr_bytes,
    record: bpr_bytes,
    block_offset: u64,
    index: u64,
    offset: u64,
    msg: *mut c_char,
    msg_cap: usize,
) -> bpr_status {
    guarded(msg, msg_cap, || {
        let view = |b: bpr_bytes| {
            if b.len == 0 || b.data.is_null() {
                &[][..]
            } else {
                // SAFETY: `len` readable bytes (header).
                unsafe { std::slice::from_raw_parts(b.data, b.len) }
            }
        };
        let name = String::from_utf8_lossy(view(name));
        let rec = Record {
            bytes: view(record),
            block_offset,
            index,
            offset,
        };
        check_record(&name, &rec)
    })
}
