//! C ABI of twml's small tensor ops (bpr_model::tensors): an op made once per
//! kernel from its attrs, and a compute call that views the inputs, asks
//! bpr_model for the output sizes (every input checked first), allocates the
//! outputs through the host and fills them.

use bpr_model::tensors::{
    self, FeatureMask, FixedLength, FixedLengthOp, HashTableCache, Substrings,
};
use bpr_protocol::{Error, Result};
use std::ffi::{c_char, c_void, CStr};

use super::guarded;
use super::sys::{self, bpr_attr, bpr_outputs, bpr_status, bpr_tensor};
use super::views::{array as slice, host_alloc};

/// One kernel's op: its attrs, validated.
enum Op {
    FeatureMask(FeatureMask),
    Hashmap(HashTableCache),
    CompressSampleIds,
    DecompressSampleIds,
    FixedLength { op: FixedLengthOp, max_length: i64 },
    VarLengthReader,
    FeatureExtractor,
    GetSubstrings(Substrings),
}

fn model(e: tensors::Error) -> Error {
    Error::invalid(e.message())
}

/// An attr's value as the shim passed it.
enum AttrValue<'a> {
    Int(i64),
    Ints(&'a [i64]),
}

/// The attrs of `name`, each registered one exactly once.
struct Attrs<'a> {
    op: &'a str,
    given: Vec<(&'a str, AttrValue<'a>)>,
}

impl<'a> Attrs<'a> {
    fn take(&self, attr: &str) -> Result<&AttrValue<'a>> {
        let mut found = self.given.iter().filter(|(n, _)| *n == attr);
        match (found.next(), found.next()) {
            (Some((_, v)), None) => Ok(v),
            (None, _) => Err(Error::internal(format!(
                "{}: attr {attr} was not passed",
                self.op
            ))),
            (Some(_), Some(_)) => Err(Error::internal(format!(
                "{}: attr {attr} was passed twice",
                self.op
            ))),
        }
    }

    fn int(&self, attr: &str) -> Result<i64> {
        match self.take(attr)? {
            AttrValue::Int(v) => Ok(*v),
            AttrValue::Ints(_) => Err(Error::internal(format!(
                "{}: attr {attr} is a list, expected an int",
                self.op
            ))),
        }
    }

    fn ints(&self, attr: &str) -> Result<&'a [i64]> {
        match self.take(attr)? {
            AttrValue::Ints(v) => Ok(v),
            AttrValue::Int(_) => Err(Error::internal(format!(
                "{}: attr {attr} is an int, expected a list",
                self.op
            ))),
        }
    }

    /// Refuses attrs the op does not read, so a registration and this file
    /// cannot drift apart unnoticed.
    fn only(&self, names: &[&str]) -> Result<()> {
        match self.given.iter().find(|(n, _)| !names.contains(n)) {
            Some((n, _)) => Err(Error::internal(format!(
                "{}: attr {n} is not one the kernel reads",
                self.op
            ))),
            None => Ok(()),
        }
    }
}

impl Op {
    fn new(attrs: &Attrs<'_>) -> Result<Op> {
        let (op, names): (Op, &[&str]) = match attrs.op {
            "FeatureMask" => (
                Op::FeatureMask(FeatureMask::new(attrs.ints("list_keep")?)),
                &["list_keep"],
            ),
            "Hashmap" => (Op::Hashmap(HashTableCache::new()), &[]),
            "CompressSampleIds" => (Op::CompressSampleIds, &[]),
            "DecompressSampleIds" => (Op::DecompressSampleIds, &[]),
            "FixedLengthTensor" | "FixedLengthTensorV2" => (
                Op::FixedLength {
                    op: if attrs.op == "FixedLengthTensor" {
                        FixedLengthOp::V1
                    } else {
                        FixedLengthOp::V2
                    },
                    max_length: attrs.int("max_length")?,
                },
                &["max_length"],
            ),
            "VarLengthReader" => (Op::VarLengthReader, &[]),
            "FeatureExtractor" => (Op::FeatureExtractor, &[]),
            "GetSubstrings" => (
                Op::GetSubstrings(
                    Substrings::new(attrs.int("min_n")?, attrs.int("max_n")?).map_err(model)?,
                ),
                &["min_n", "max_n"],
            ),
            other => {
                return Err(Error::internal(format!(
                    "{other} is not one of twml's small tensor ops"
                )))
            }
        };
        attrs.only(names)?;
        Ok(op)
    }

    fn inputs(&self) -> usize {
        match self {
            Op::FeatureMask(_)
            | Op::CompressSampleIds
            | Op::DecompressSampleIds
            | Op::VarLengthReader
            | Op::GetSubstrings(_) => 1,
            Op::Hashmap(_) => 3,
            Op::FixedLength {
                op: FixedLengthOp::V1,
                ..
            } => 3,
            Op::FixedLength {
                op: FixedLengthOp::V2,
                ..
            } => 4,
            Op::FeatureExtractor => 6,
        }
    }
}

/// One input view, named for messages.
struct In<'a> {
    op: &'static str,
    name: &'static str,
    t: &'a bpr_tensor,
}

/// Element types the views are read as.
trait Element: Copy {
    const CODE: u32;
    const NAME: &'static str;
}
macro_rules! element {
    ($($t:ty: $code:ident, $name:literal;)*) => {$(
        impl Element for $t {
            const CODE: u32 = sys::$code;
            const NAME: &'static str = $name;
        }
    )*};
}
element! {
    i64: BPR_DTYPE_INT64, "int64";
    i32: BPR_DTYPE_INT32, "int32";
    i8: BPR_DTYPE_INT8, "int8";
    bool: BPR_DTYPE_BOOL, "bool";
    f32: BPR_DTYPE_FLOAT, "float";
    f64: BPR_DTYPE_DOUBLE, "double";
}

impl<'a> In<'a> {
    fn dtype(&self) -> u32 {
        self.t.dtype as u32
    }

    fn len(&self) -> usize {
        self.t.num_elements
    }

    fn dims(&self) -> &'a [i64] {
        // SAFETY: `rank` dims, valid for the call (the header's contract).
        unsafe { slice(self.t.dims, self.t.rank) }
    }

    /// The elements as `T`, which the op's registration guarantees (a
    /// mismatch is a bug of the shim, reported as internal).
    fn of<T: Element>(&self) -> Result<&'a [T]> {
        if self.dtype() != T::CODE {
            return Err(Error::internal(format!(
                "{}: {} was passed with dtype code {}, expected {}",
                self.op,
                self.name,
                self.dtype(),
                T::NAME
            )));
        }
        let n = self.len();
        if n > 0 {
            let p = self.t.data;
            if p.is_null() || !(p as usize).is_multiple_of(std::mem::align_of::<T>()) {
                return Err(Error::internal(format!(
                    "{}: {}: NULL or misaligned data for {n} elements",
                    self.op, self.name
                )));
            }
        }
        // SAFETY: the view holds `n` elements of its dtype, T, valid and
        // unchanged for the call (the header's contract); checked above for
        // NULL and alignment.
        Ok(unsafe { slice(self.t.data.cast::<T>(), n) })
    }

    fn strings(&self) -> Result<super::HostStrings> {
        // SAFETY: `t` is a valid view (the header's contract).
        unsafe { super::host_strings(self.t) }?.ok_or_else(|| {
            Error::internal(format!(
                "{}: {} is not a string tensor (dtype code {})",
                self.op,
                self.name,
                self.dtype()
            ))
        })
    }
}

/// The host's outputs, through its callbacks.
struct Out<'h> {
    host: &'h bpr_outputs,
    alloc_failed: bool,
}

impl<'h> Out<'h> {
    fn alloc(&mut self, index: usize, dims: &[usize], elem: usize) -> Result<(*mut c_void, usize)> {
        host_alloc(self.host, &mut self.alloc_failed, index, dims, elem)
    }

    /// Output `index` as `T`s: the host's buffer, which lives for the call
    /// (`'h`), not only while `self` is borrowed.
    fn typed<T: Element>(&mut self, index: usize, dims: &[usize]) -> Result<&'h mut [T]> {
        let (data, n) = self.alloc(index, dims, std::mem::size_of::<T>())?;
        if n == 0 {
            return Ok(&mut []);
        }
        // SAFETY: the host allocated `n` elements of the output's registered
        // dtype, T (bool is one byte holding 0 or 1 in C++ as in Rust),
        // aligned as TensorFlow aligns buffers, valid until the call returns
        // ('h); each output is allocated once, so no other reference to it
        // exists.
        Ok(unsafe { std::slice::from_raw_parts_mut(data.cast::<T>(), n) })
    }

    /// A string output: `element(k)` is written as element k.
    fn strings(
        &mut self,
        index: usize,
        dims: &[usize],
        mut fill: impl FnMut(&mut dyn FnMut(usize, &[u8])),
    ) -> Result<()> {
        let (data, n) = self.alloc(index, dims, 1)?;
        let set = self
            .host
            .set_string
            .ok_or_else(|| Error::internal("bpr_outputs.set_string is NULL"))?;
        fill(&mut |k, bytes| {
            assert!(k < n, "string element {k} of {n}");
            // SAFETY: element k < n of the string output the host allocated.
            unsafe { set(data, k as i64, bytes.as_ptr(), bytes.len()) };
        });
        Ok(())
    }
}

fn compute(op: &Op, ins: &[In<'_>], out: &mut Out<'_>) -> Result<()> {
    match op {
        Op::FeatureMask(mask) => {
            let keep = &ins[0];
            let n = keep.len();
            match keep.dtype() {
                sys::BPR_DTYPE_INT8 => {
                    let v = keep.of::<i8>()?;
                    mask.apply(v, out.typed::<bool>(0, &[n])?);
                }
                _ => {
                    let v = keep.of::<i64>()?;
                    mask.apply(v, out.typed::<bool>(0, &[n])?);
                }
            }
        }
        Op::Hashmap(cache) => {
            let keys = ins[0].of::<i64>()?;
            let table = cache
                .table(ins[1].of::<i64>()?, ins[2].of::<i64>()?)
                .map_err(model)?;
            let dims: Vec<usize> = ins[0].dims().iter().map(|&d| d as usize).collect();
            let values = out.typed::<i64>(0, &dims)?;
            let mask = out.typed::<i8>(1, &dims)?;
            table.lookup(keys, values, mask);
        }
        Op::CompressSampleIds => {
            let ids = ins[0].of::<i32>()?;
            let n = tensors::compressed_len(ids).map_err(model)?;
            tensors::compress_sample_ids(ids, out.typed::<i32>(0, &[n])?);
        }
        Op::DecompressSampleIds => {
            let counts = ins[0].of::<i32>()?;
            let n = tensors::decompressed_len(counts).map_err(model)?;
            tensors::decompress_sample_ids(counts, out.typed::<i32>(0, &[n])?);
        }
        Op::VarLengthReader => {
            let n = tensors::var_length_width(ins[0].of::<i32>()?).map_err(model)?;
            out.typed::<i32>(0, &[1, n])?.fill(1);
        }
        Op::FeatureExtractor => extract(ins, out)?,
        Op::GetSubstrings(s) => {
            let words = ins[0].strings()?;
            let dims: Vec<usize> = ins[0].dims().iter().map(|&d| d as usize).collect();
            let mut buf = Vec::new();
            out.strings(0, &dims, |set| {
                for k in 0..bpr_protocol::StringSource::len(&words) {
                    s.of(bpr_protocol::StringSource::get(&words, k), &mut buf);
                    set(k, &buf);
                }
            })?;
        }
        Op::FixedLength { op, max_length } => match ins[0].dtype() {
            sys::BPR_DTYPE_INT32 => fixed_length(*op, *max_length, ins[0].of::<i32>()?, ins, out)?,
            _ => fixed_length(*op, *max_length, ins[0].of::<i64>()?, ins, out)?,
        },
    }
    Ok(())
}

fn fixed_length<I: Element + Into<i64>>(
    op: FixedLengthOp,
    max_length: i64,
    ids: &[I],
    ins: &[In<'_>],
    out: &mut Out<'_>,
) -> Result<()> {
    let (values, pad) = (&ins[1], &ins[2]);
    let name = ins[0].op;
    // twml took pad_value.scalar() (a CHECK that aborts on any other shape).
    if pad.t.rank != 0 {
        return Err(Error::invalid(format!(
            "{name}: pad_value must be a scalar, got shape {:?}",
            pad.dims()
        )));
    }
    let batch_size = match op {
        FixedLengthOp::V1 => None,
        FixedLengthOp::V2 => {
            let b = ins[3].of::<i64>()?;
            // twml read element 0 of any shape (past the end of an empty one).
            if b.len() != 1 {
                return Err(Error::invalid(format!(
                    "{name}: batch_size must hold one value, got shape {:?}",
                    ins[3].dims()
                )));
            }
            Some(b[0])
        }
    };
    let plan = FixedLength::plan(op, ids, values.len(), max_length, batch_size).map_err(model)?;
    let dims = [plan.batch_size, plan.max_length];
    match values.dtype() {
        sys::BPR_DTYPE_STRING => {
            let (v, p) = (values.strings()?, pad.strings()?);
            use bpr_protocol::StringSource;
            let pad_bytes = p.get(0);
            out.strings(0, &dims, |set| {
                plan.fill(ids, |k, from| {
                    set(k, from.map_or(pad_bytes, |i| v.get(i)));
                })
            })
        }
        sys::BPR_DTYPE_INT32 => {
            let (v, p) = (values.of::<i32>()?, pad.of::<i32>()?[0]);
            plan.fill_values(ids, v, p, out.typed::<i32>(0, &dims)?);
            Ok(())
        }
        _ => {
            let (v, p) = (values.of::<i64>()?, pad.of::<i64>()?[0]);
            plan.fill_values(ids, v, p, out.typed::<i64>(0, &dims)?);
            Ok(())
        }
    }
}

fn extract(ins: &[In<'_>], out: &mut Out<'_>) -> Result<()> {
    let mask = ins[0].of::<bool>()?;
    let sizes: Vec<(&str, usize)> = ins[1..].iter().map(|i| (i.name, i.len())).collect();
    let n = tensors::extracted_len(mask, &sizes).map_err(model)?;
    tensors::extract(mask, ins[1].of::<i64>()?, out.typed::<i64>(0, &[n])?);
    tensors::extract(mask, ins[2].of::<i64>()?, out.typed::<i64>(1, &[n])?);
    match ins[3].dtype() {
        sys::BPR_DTYPE_DOUBLE => {
            tensors::extract(mask, ins[3].of::<f64>()?, out.typed::<f64>(2, &[n])?)
        }
        _ => tensors::extract(mask, ins[3].of::<f32>()?, out.typed::<f32>(2, &[n])?),
    }
    tensors::extract(mask, ins[4].of::<i64>()?, out.typed::<i64>(3, &[n])?);
    tensors::extract(mask, ins[5].of::<i8>()?, out.typed::<i8>(4, &[n])?);
    Ok(())
}

/// The registered input names of each op, for messages.
fn input_names(op: &str) -> &'static [&'static str] {
    match op {
        "FeatureMask" => &["keep"],
        "Hashmap" => &["keys", "hash_keys", "hash_values"],
        "CompressSampleIds" | "DecompressSampleIds" => &["input"],
        "FixedLengthTensor" => &["segment_ids", "values", "pad_value"],
        "FixedLengthTensorV2" => &["segment_ids", "values", "pad_value", "batch_size"],
        "VarLengthReader" => &["input1"],
        "FeatureExtractor" => &[
            "mask_in",
            "ids_in",
            "keys_in",
            "values_in",
            "codes_in",
            "types_in",
        ],
        "GetSubstrings" => &["values"],
        _ => &[],
    }
}

/// The op and its registered name (static, for messages).
struct Kernel {
    name: &'static str,
    op: Op,
}

const NAMES: [&str; 9] = [
    "FeatureMask",
    "Hashmap",
    "CompressSampleIds",
    "DecompressSampleIds",
    "FixedLengthTensor",
    "FixedLengthTensorV2",
    "VarLengthReader",
    "FeatureExtractor",
    "GetSubstrings",
];

#[no_mangle]
pub unsafe extern "C" fn bpr_model_tensors_op_new(
    op_name: *const c_char,
    attrs: *const bpr_attr,
    num_attrs: usize,
    out: *mut *mut sys::bpr_model_tensors_op,
    msg: *mut c_char,
    msg_cap: usize,
) -> bpr_status {
    guarded(msg, msg_cap, || {
        // SAFETY: a NUL-terminated name (the header's contract).
        let name = unsafe { CStr::from_ptr(op_name) }
            .to_str()
            .map_err(|_| Error::internal("op name is not UTF-8"))?;
        let name = NAMES.iter().copied().find(|n| *n == name).ok_or_else(|| {
            Error::internal(format!("{name} is not one of twml's small tensor ops"))
        })?;
        // SAFETY: `num_attrs` attrs at `attrs` (contract).
        let raw = unsafe { slice(attrs, num_attrs) };
        let mut given = Vec::with_capacity(raw.len());
        for a in raw {
            // SAFETY: each attr name is NUL-terminated (contract).
            let attr = unsafe { CStr::from_ptr(a.name) }
                .to_str()
                .map_err(|_| Error::internal(format!("{name}: an attr name is not UTF-8")))?;
            let value = match a.kind as u32 {
                sys::BPR_ATTR_INT => AttrValue::Int(a.int_value),
                // SAFETY: the list's ints and length (contract).
                sys::BPR_ATTR_INT_LIST => AttrValue::Ints(unsafe { slice(a.list, a.list_len) }),
                k => {
                    return Err(Error::internal(format!(
                        "{name}: attr {attr} has kind {k}; these ops take int and list(int) attrs"
                    )))
                }
            };
            given.push((attr, value));
        }
        let op = Op::new(&Attrs { op: name, given })?;
        // SAFETY: `out` is writable (contract).
        unsafe { *out = Box::into_raw(Box::new(Kernel { name, op })).cast() };
        Ok(())
    })
}

#[no_mangle]
pub unsafe extern "C" fn bpr_model_tensors_op_free(op: *mut sys::bpr_model_tensors_op) {
    if !op.is_null() {
        // SAFETY: made by bpr_model_tensors_op_new (a boxed Kernel behind the
        // opaque type), freed once (contract).
        drop(unsafe { Box::from_raw(op.cast::<Kernel>()) });
    }
}

#[no_mangle]
pub unsafe extern "C" fn bpr_model_tensors_compute(
    op: *const sys::bpr_model_tensors_op,
    inputs: *const bpr_tensor,
    num_inputs: usize,
    outputs: *const bpr_outputs,
    msg: *mut c_char,
    msg_cap: usize,
) -> bpr_status {
    let mut alloc_failed = false;
    let status = guarded(msg, msg_cap, || {
        if op.is_null() || outputs.is_null() {
            return Err(Error::internal("NULL op or outputs"));
        }
        // SAFETY: a live op from bpr_model_tensors_op_new, `num_inputs` valid
        // views and valid callbacks (the header's contract).
        let (kernel, views, host) =
            unsafe { (&*op.cast::<Kernel>(), slice(inputs, num_inputs), &*outputs) };
        if views.len() != kernel.op.inputs() {
            return Err(Error::internal(format!(
                "{}: {} inputs passed, the op has {}",
                kernel.name,
                views.len(),
                kernel.op.inputs()
            )));
        }
        let ins: Vec<In<'_>> = views
            .iter()
            .zip(input_names(kernel.name))
            .map(|(t, name)| In {
                op: kernel.name,
                name,
                t,
            })
            .collect();
        let mut out = Out {
            host,
            alloc_failed: false,
        };
        let r = compute(&kernel.op, &ins, &mut out);
        alloc_failed = out.alloc_failed;
        r
    });
    if alloc_failed {
        sys::BPR_HOST_ALLOC_FAILED as bpr_status
    } else {
        status
    }
}
