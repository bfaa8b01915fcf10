//! twml's eight getters of tensor features (`tensor_record.cpp`):
//! `GetTensors*`, `GetTensorsWithMissingMask*`, `GetStringTensors*` and
//! `GetSparseTensors*`, from either handle kind. They read a decoded [`Batch`]
//! into the op's [`Outputs`], parsing each entry with `tensors.rs`.
//!
//! Where twml crashed or lost data these differ (README, "Tensor features"):
//! a record without the tensor takes its request's `commonFeatures` one;
//! string tensors are read only by `GetStringTensors*`; `BYTE` raw tensors are
//! `int8`; shapes are compared in full and must hold exactly the elements
//! sent; a missing tensor is a clear error (`GetTensors*`) or no entries
//! (`GetSparseTensors*`).

use super::batch::Batch;
use super::outputs::Outputs;
use super::read::{Cursor, ReadError, Span};
use super::tensors::{general, sparse, Dtype, Sparse, Tensor, UNKNOWN_TYPE};
use crate::{Error, Result};

/// Which of twml's eight getters.
#[derive(Debug, Clone)]
enum Which {
    /// `GetTensorsFrom*`.
    Tensors { assert_shape: bool },
    /// `GetTensorsWithMissingMaskFrom*`.
    Masked {
        assert_shape: bool,
        default_shape: Vec<i64>,
        /// product(default_shape) * dtype_size.
        length: usize,
        dtype_size: usize,
    },
    /// `GetStringTensorsFrom*`.
    Strings,
    /// `GetSparseTensorsFrom*`.
    Sparse,
}

/// A tensor getter with validated attrs.
#[derive(Debug, Clone)]
pub(crate) struct Getter {
    /// Reads the hashed handle (`...FromHashedDataRecord`).
    pub hashed: bool,
    feature_id: i64,
    which: Which,
}

/// The eight getters' names.
pub(crate) const NAMES: [&str; 8] = [
    "GetTensorsFromDataRecord",
    "GetTensorsFromHashedDataRecord",
    "GetTensorsWithMissingMaskFromDataRecord",
    "GetTensorsWithMissingMaskFromHashedDataRecord",
    "GetStringTensorsFromDataRecord",
    "GetStringTensorsFromHashedDataRecord",
    "GetSparseTensorsFromDataRecord",
    "GetSparseTensorsFromHashedDataRecord",
];

impl Getter {
    /// The getter `name` (None: not a tensor getter). Attrs not of this
    /// getter are ignored.
    pub fn new(
        name: &str,
        feature_id: i64,
        assert_shape: bool,
        default_shape: &[i64],
        dtype_size: i64,
    ) -> Result<Option<Getter>> {
        if !NAMES.contains(&name) {
            return Ok(None);
        }
        let hashed = name.ends_with("FromHashedDataRecord");
        let which = if name.starts_with("GetTensorsWithMissingMask") {
            if let Some((i, d)) = default_shape.iter().enumerate().find(|(_, d)| **d < 0) {
                return Err(Error::invalid(format!(
                    "{name}: attr default_shape {default_shape:?} has a negative dimension {d} at index {i}"
                )));
            }
            if !(1..=8).contains(&dtype_size) {
                return Err(Error::invalid(format!(
                    "{name}: attr dtype_size is {dtype_size}; it must be the element size in bytes, 1 to 8"
                )));
            }
            let length = default_shape
                .iter()
                .try_fold(dtype_size as usize, |p, &d| p.checked_mul(d as usize))
                .filter(|&l| l <= isize::MAX as usize)
                .ok_or_else(|| {
                    Error::invalid(format!(
                        "{name}: attr default_shape {default_shape:?} with dtype_size {dtype_size} \
                         is too many bytes per record"
                    ))
                })?;
            Which::Masked {
                assert_shape,
                default_shape: default_shape.to_vec(),
                length,
                dtype_size: dtype_size as usize,
            }
        } else if name.starts_with("GetTensors") {
            Which::Tensors { assert_shape }
        } else if name.starts_with("GetString") {
            Which::Strings
        } else {
            Which::Sparse
        };
        Ok(Some(Getter {
            hashed,
            feature_id,
            which,
        }))
    }

    /// Reads the batch's tensors of `feature_id` into the op's outputs.
    pub fn get(
        &self,
        op: &str,
        b: &Batch,
        messages: &[&[u8]],
        out: &mut dyn Outputs,
    ) -> Result<()> {
        let id = self.feature_id;
        let n = b.num_records;
        let is_sparse = matches!(self.which, Which::Sparse);
        let field = if is_sparse {
            "sparseTensors"
        } else {
            "tensors"
        };
        // Where record r's entry is, for errors.
        let place = |r: usize, common: bool| {
            format!(
                "feature_id {id}, record {r}{}",
                if common {
                    " (from its request's commonFeatures)"
                } else {
                    ""
                }
            )
        };
        let fail = |r: usize, common: bool, span: Span, e: ReadError| {
            Error::invalid(format!(
                "{op}: {}: message {} at byte {}: {}",
                place(r, common),
                span.msg,
                e.at,
                e.what
            ))
        };
        let parse = |r: usize| -> Result<Option<(Tensor<'_>, bool)>> {
            let Some((span, common)) = b.tensors.find(r, false, id) else {
                return Ok(None);
            };
            let data = messages[span.msg as usize];
            let mut c = Cursor::new(data, span.msg);
            c.at = span.start;
            let what = format_args!("{field}[{id}]");
            general(&mut c, data, &what)
                .map(|t| Some((t, common)))
                .map_err(|e| fail(r, common, span, e))
        };
        let no_strings = |r: usize, common: bool, t: &Tensor<'_>| {
            Error::invalid(format!(
                "{op}: {}: {field}[{id}] is {}; string tensors are read by \
                 GetStringTensorsFromDataRecord or GetStringTensorsFromHashedDataRecord",
                place(r, common),
                t.describe()
            ))
        };
        let mismatch =
            |r: usize, common: bool, t: &Tensor<'_>, first: (usize, &Tensor<'_>), what: &str| {
                Error::invalid(format!(
                    "{op}: {}: {field}[{id}] is {}, record {} has {}: {what}",
                    place(r, common),
                    t.describe(),
                    first.0,
                    first.1.describe()
                ))
            };
        match &self.which {
            Which::Tensors { assert_shape } => {
                let mut all = Vec::with_capacity(n);
                for r in 0..n {
                    let Some((t, common)) = parse(r)? else {
                        return Err(Error::invalid(format!(
                            "{op}: {}: the record has no {field} entry {id} (nor has its \
                             request's commonFeatures); GetTensorsWithMissingMaskFromDataRecord \
                             reads tensors some records lack",
                            place(r, false)
                        )));
                    };
                    if t.dtype == Dtype::String {
                        return Err(no_strings(r, common, &t));
                    }
                    if let Some(first) = all.first() {
                        let first: &Tensor<'_> = first;
                        if (t.dtype, t.big_endian) != (first.dtype, first.big_endian) {
                            return Err(mismatch(
                                r,
                                common,
                                &t,
                                (0, first),
                                "one feature has one element type and byte order in a batch",
                            ));
                        }
                        if *assert_shape && t.shape != first.shape {
                            return Err(mismatch(
                                r,
                                common,
                                &t,
                                (0, first),
                                "with assert_shape every record's tensor has one shape",
                            ));
                        }
                    }
                    all.push(t);
                }
                out.strings(0, &[n], &mut all.iter().map(|t| t.bytes))?;
                let mut dims = vec![n as i64];
                if let Some(f) = all.first() {
                    dims.extend_from_slice(&f.shape);
                }
                out.int64(1, &[dims.len()])?.copy_from_slice(&dims);
                let (name, be) = all
                    .first()
                    .map_or((UNKNOWN_TYPE, false), |f| (f.dtype.name(), f.big_endian));
                out.strings(2, &[], &mut std::iter::once(name.as_bytes()))?;
                out.uint8(3, &[])?[0] = u8::from(be);
                Ok(())
            }
            Which::Masked {
                assert_shape,
                default_shape,
                length,
                dtype_size,
            } => {
                let mut all: Vec<Option<Tensor<'_>>> = Vec::with_capacity(n);
                let mut first: Option<usize> = None;
                let mut length = *length;
                for r in 0..n {
                    let Some((t, common)) = parse(r)? else {
                        all.push(None);
                        continue;
                    };
                    if t.dtype == Dtype::String {
                        return Err(no_strings(r, common, &t));
                    }
                    match first {
                        None => {
                            // twml: float and double tensors are lists of
                            // doubles; asked for 4-byte elements, each takes 8.
                            if t.dtype == Dtype::Float64 && t.big_endian && *dtype_size == 4 {
                                length *= 2;
                            }
                            first = Some(r);
                        }
                        Some(f) => {
                            let ft = all[f].as_ref().expect("the first found tensor");
                            if (t.dtype, t.big_endian) != (ft.dtype, ft.big_endian) {
                                return Err(mismatch(
                                    r,
                                    common,
                                    &t,
                                    (f, ft),
                                    "one feature has one element type and byte order in a batch",
                                ));
                            }
                        }
                    }
                    if *assert_shape && (t.shape != *default_shape || t.bytes.len() != length) {
                        return Err(Error::invalid(format!(
                            "{op}: {}: {field}[{id}] is {} ({} bytes); default_shape {default_shape:?} \
                             with dtype_size {dtype_size} expects that shape and {length} bytes",
                            place(r, common),
                            t.describe(),
                            t.bytes.len()
                        )));
                    }
                    all.push(Some(t));
                }
                let zeros = vec![0u8; length];
                out.strings(
                    0,
                    &[n],
                    &mut all
                        .iter()
                        .map(|t| t.as_ref().map_or(&zeros[..], |t| t.bytes)),
                )?;
                let f = first.and_then(|f| all[f].as_ref());
                let (name, be) =
                    f.map_or((UNKNOWN_TYPE, false), |f| (f.dtype.name(), f.big_endian));
                out.strings(1, &[], &mut std::iter::once(name.as_bytes()))?;
                out.uint8(2, &[])?[0] = u8::from(be);
                for (o, t) in out.bool(3, &[n])?.iter_mut().zip(&all) {
                    *o = t.is_some();
                }
                Ok(())
            }
            Which::Strings => {
                let mut all = Vec::new();
                for r in 0..n {
                    let Some((t, common)) = parse(r)? else {
                        continue;
                    };
                    if t.dtype != Dtype::String {
                        return Err(Error::invalid(format!(
                            "{op}: {}: {field}[{id}] is {}; this op reads stringTensor, \
                             binaryTensor or a rawTypedTensor of STRING (GetTensorsFromDataRecord \
                             reads numbers)",
                            place(r, common),
                            t.describe()
                        )));
                    }
                    all.push((r, t));
                }
                let total: usize = all.iter().map(|(_, t)| t.strings.len()).sum();
                let ids = out.int64(0, &[total])?;
                let mut k = 0;
                for (r, t) in &all {
                    for _ in &t.strings {
                        ids[k] = *r as i64;
                        k += 1;
                    }
                }
                out.strings(
                    1,
                    &[total],
                    &mut all.iter().flat_map(|(_, t)| t.strings.iter().copied()),
                )
            }
            Which::Sparse => {
                let mut all: Vec<(usize, Sparse<'_>)> = Vec::new();
                for r in 0..n {
                    let Some((span, common)) = b.tensors.find(r, true, id) else {
                        continue;
                    };
                    let data = messages[span.msg as usize];
                    let mut c = Cursor::new(data, span.msg);
                    c.at = span.start;
                    let s = sparse(&mut c, data, &format_args!("{field}[{id}]"))
                        .map_err(|e| fail(r, common, span, e))?;
                    if let Some((f, fs)) = all.first() {
                        let (v, fv) = (&s.values, &fs.values);
                        if (v.dtype, v.big_endian) != (fv.dtype, fv.big_endian) {
                            return Err(mismatch(r, common, v, (*f, fv), "one feature's values have one element type and byte order in a batch"));
                        }
                        if s.dense_shape != fs.dense_shape {
                            return Err(Error::invalid(format!(
                                "{op}: {}: {field}[{id}] has denseShape {:?}, record {f} has {:?}: \
                                 one feature has one dense shape in a batch",
                                place(r, common),
                                s.dense_shape,
                                fs.dense_shape
                            )));
                        }
                    }
                    all.push((r, s));
                }
                let total: usize = all.iter().map(|(_, s)| s.values.elements()).sum();
                let ids = out.int64(0, &[total])?;
                let mut k = 0;
                for (r, s) in &all {
                    for _ in 0..s.values.elements() {
                        ids[k] = *r as i64;
                        k += 1;
                    }
                }
                // twml's layout: each record's indices (big-endian int64, as
                // Int64Tensor sends them), one after another.
                let indices: Vec<u8> = all
                    .iter()
                    .flat_map(|(_, s)| s.indices.iter().flat_map(|x| x.to_be_bytes()))
                    .collect();
                out.strings(1, &[1], &mut std::iter::once(&indices[..]))?;
                let values: Vec<u8> = all
                    .iter()
                    .flat_map(|(_, s)| s.values.bytes.iter().copied())
                    .collect();
                out.strings(2, &[1], &mut std::iter::once(&values[..]))?;
                let mut dims = vec![n as i64];
                if let Some((_, f)) = all.first() {
                    dims.extend_from_slice(&f.dense_shape);
                }
                out.int64(3, &[dims.len()])?.copy_from_slice(&dims);
                let (name, be) = all.first().map_or((UNKNOWN_TYPE, false), |(_, f)| {
                    (f.values.dtype.name(), f.values.big_endian)
                });
                out.strings(4, &[], &mut std::iter::once(name.as_bytes()))?;
                out.uint8(5, &[])?[0] = u8::from(be);
                Ok(())
            }
        }
    }
}
