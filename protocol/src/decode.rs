//! Reads a `BatchPredictionResponse` (Thrift binary protocol, the bare struct)
//! into plain Rust values: every field of `DataRecord` and every variant of
//! `GeneralTensor` and `SparseTensor` in `thrift/`, so a response written by
//! another producer can be inspected too.
//!
//! As Thrift's rules say, a field this reader does not know (an unknown id, or
//! a known id with another type) is skipped, not fatal. Maps and sets keep the
//! order they had on the wire. Malformed or truncated bytes are one
//! [`DecodeError`] naming the byte offset; no input panics or allocates more
//! than its own size.

use std::fmt;

use crate::cursor::{Cursor, ReadError};
use crate::wire::{field, ttype};

/// Bytes that are not a well-formed `BatchPredictionResponse`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError {
    message: String,
}

impl DecodeError {
    /// What is wrong, with the byte offset where it was seen.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DecodeError {}

/// A `map<string, double>`, in wire order.
pub type NamedValues = Vec<(Vec<u8>, f64)>;

/// One `DataRecord`. Each map is a list of `(key, value)` in wire order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Record {
    /// Field 1, `binaryFeatures: set<i64>`.
    pub binary: Vec<i64>,
    /// Field 2, `continuousFeatures: map<i64, double>` (what the continuous writer writes).
    pub continuous: Vec<(i64, f64)>,
    /// Field 3, `discreteFeatures: map<i64, i64>`.
    pub discrete: Vec<(i64, i64)>,
    /// Field 4, `stringFeatures: map<i64, string>`.
    pub strings: Vec<(i64, Vec<u8>)>,
    /// Field 5, `sparseBinaryFeatures: map<i64, set<string>>`.
    pub sparse_binary: Vec<(i64, Vec<Vec<u8>>)>,
    /// Field 6, `sparseContinuousFeatures: map<i64, map<string, double>>`.
    pub sparse_continuous: Vec<(i64, NamedValues)>,
    /// Field 7, `blobFeatures: map<i64, binary>`.
    pub blobs: Vec<(i64, Vec<u8>)>,
    /// Field 8, `tensors: map<i64, GeneralTensor>` (what the tensor writer writes).
    pub tensors: Vec<(i64, GeneralTensor)>,
    /// Field 9, `sparseTensors: map<i64, SparseTensor>`.
    pub sparse_tensors: Vec<(i64, SparseTensor)>,
}

/// A `GeneralTensor` (a Thrift union: exactly one variant). `shape` is `None`
/// when the optional field is absent.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq)]
pub enum GeneralTensor {
    /// `rawTypedTensor`: `data_type` is the Thrift `DataType` (see [`crate::wire::data_type`]),
    /// `content` the elements in little-endian order.
    Raw {
        /// The Thrift `DataType` code.
        data_type: i32,
        /// The elements' bytes, little-endian.
        content: Vec<u8>,
        /// The tensor's shape.
        shape: Option<Vec<i64>>,
    },
    /// `stringTensor`.
    Strings(Vec<Vec<u8>>, Option<Vec<i64>>),
    /// `int32Tensor`.
    Int32(Vec<i32>, Option<Vec<i64>>),
    /// `int64Tensor`.
    Int64(Vec<i64>, Option<Vec<i64>>),
    /// `floatTensor` (doubles on the wire).
    Float(Vec<f64>, Option<Vec<i64>>),
    /// `doubleTensor`.
    Double(Vec<f64>, Option<Vec<i64>>),
    /// `boolTensor`.
    Bool(Vec<bool>, Option<Vec<i64>>),
    /// `binaryTensor`.
    Binary(Vec<Vec<u8>>, Option<Vec<i64>>),
}

/// A `SparseTensor` (a union whose one variant is `cooSparseTensor`).
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq)]
pub enum SparseTensor {
    /// `cooSparseTensor`.
    Coo {
        /// `denseShape`.
        dense_shape: Vec<i64>,
        /// `indices`, `[rank, n]`: an `Int64Tensor` on the wire (thrift/,
        /// Twitter's IDL) decodes as `GeneralTensor::Int64`; the older
        /// `GeneralTensor` form decodes as it is. Encoded as an `Int64Tensor`.
        indices: GeneralTensor,
        /// `values`.
        values: GeneralTensor,
    },
}

/// The records of a `BatchPredictionResponse`, in order.
///
/// Every byte must belong to the response: trailing bytes are an error.
pub fn decode_response(data: &[u8]) -> Result<Vec<Record>, DecodeError> {
    let mut c = Cursor::new(data, 0);
    response(&mut c).map_err(|e| DecodeError {
        message: if e.truncated {
            format!("truncated response: {} (at byte {})", e.what, e.at)
        } else {
            format!("{} (at byte {})", e.what, e.at)
        },
    })
}

type R<T> = Result<T, ReadError>;
type Reader<'a> = Cursor<'a>;

fn response(c: &mut Cursor<'_>) -> R<Vec<Record>> {
    let mut records = Vec::new();
    while let Some((t, id, at)) = c.field(&"the response")? {
        if (id, t) == (field::RESPONSE_PREDICTIONS, ttype::LIST) {
            let n = c.list(ttype::STRUCT, &"predictions", "list<DataRecord>")?;
            records.reserve(n);
            for _ in 0..n {
                records.push(record(c)?);
            }
        } else {
            c.skip(t, at, &"a field of the response")?;
        }
    }
    if c.left() > 0 {
        return c.fail(
            c.at,
            format_args!(
                "{} bytes after the end of the response (which ends at byte {})",
                c.left(),
                c.at
            ),
        );
    }
    Ok(records)
}

/// A list whose elements must be `elem`, each read by `f`.
fn list<'a, T>(
    r: &mut Reader<'a>,
    elem: u8,
    what: &str,
    mut f: impl FnMut(&mut Reader<'a>) -> R<T>,
) -> R<Vec<T>> {
    let n = r.list(elem, &what, "list of the schema's element type")?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(f(r)?);
    }
    Ok(out)
}

/// A map whose keys and values must be `key` and `value`, in wire order.
fn map<'a, K, V>(
    r: &mut Reader<'a>,
    (key, value): (u8, u8),
    what: &str,
    mut k: impl FnMut(&mut Reader<'a>) -> R<K>,
    mut v: impl FnMut(&mut Reader<'a>) -> R<V>,
) -> R<Vec<(K, V)>> {
    let n = r.map(key, value, &what, "map of the schema's key and value types")?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let key = k(r)?;
        out.push((key, v(r)?));
    }
    Ok(out)
}

fn i64(r: &mut Reader) -> R<i64> {
    r.i64(&"an i64")
}
fn i32(r: &mut Reader) -> R<i32> {
    r.i32(&"an i32")
}
fn f64(r: &mut Reader) -> R<f64> {
    r.f64(&"a double")
}
fn bool(r: &mut Reader) -> R<bool> {
    r.bool(&"a bool")
}
fn binary(r: &mut Reader) -> R<Vec<u8>> {
    Ok(r.bytes(&"a string")?.to_vec())
}

fn skip(r: &mut Reader, t: u8, at: usize) -> R<()> {
    r.skip(t, at, &"a skipped field")
}

fn record(r: &mut Reader) -> R<Record> {
    use ttype::{DOUBLE, I64, MAP, SET, STRING, STRUCT};
    let mut rec = Record::default();
    while let Some((t, id, at)) = r.field(&"a DataRecord")? {
        match (id, t) {
            (1, SET) => rec.binary = list(r, I64, "binaryFeatures", i64)?,
            (field::RECORD_CONTINUOUS_FEATURES, MAP) => {
                rec.continuous = map(r, (I64, DOUBLE), "continuousFeatures", i64, f64)?
            }
            (3, MAP) => rec.discrete = map(r, (I64, I64), "discreteFeatures", i64, i64)?,
            (4, MAP) => rec.strings = map(r, (I64, STRING), "stringFeatures", i64, binary)?,
            (5, MAP) => {
                rec.sparse_binary = map(r, (I64, SET), "sparseBinaryFeatures", i64, |r| {
                    list(r, STRING, "sparseBinaryFeatures set", binary)
                })?
            }
            (6, MAP) => {
                rec.sparse_continuous = map(r, (I64, MAP), "sparseContinuousFeatures", i64, |r| {
                    map(
                        r,
                        (STRING, DOUBLE),
                        "sparseContinuousFeatures value",
                        binary,
                        f64,
                    )
                })?
            }
            (7, MAP) => rec.blobs = map(r, (I64, STRING), "blobFeatures", i64, binary)?,
            (field::RECORD_TENSORS, MAP) => {
                rec.tensors = map(r, (I64, STRUCT), "tensors", i64, general_tensor)?
            }
            (9, MAP) => {
                rec.sparse_tensors = map(r, (I64, STRUCT), "sparseTensors", i64, sparse_tensor)?
            }
            _ => skip(r, t, at)?,
        }
    }
    Ok(rec)
}

/// The fields of a `*Tensor` struct: its values list (field 1) and optional shape (field 2).
fn values_and_shape<'a, T>(
    r: &mut Reader<'a>,
    elem: u8,
    what: &str,
    mut read: impl FnMut(&mut Reader<'a>) -> R<T>,
) -> R<(Vec<T>, Option<Vec<i64>>)> {
    let (mut values, mut shape) = (None, None);
    let start = r.at;
    while let Some((t, id, at)) = r.field(&what)? {
        match (id, t) {
            (1, ttype::LIST) => values = Some(list(r, elem, what, &mut read)?),
            (2, ttype::LIST) => shape = Some(list(r, ttype::I64, "shape", i64)?),
            _ => skip(r, t, at)?,
        }
    }
    let Some(values) = values else {
        return r.fail(start, format_args!("a tensor without its required {what}"));
    };
    Ok((values, shape))
}

fn general_tensor(r: &mut Reader) -> R<GeneralTensor> {
    use ttype::{BOOL, DOUBLE, I32, I64, STRING, STRUCT};
    let mut out = None;
    let start = r.at;
    while let Some((t, id, at)) = r.field(&"a GeneralTensor")? {
        let tensor = match (id, t) {
            (1, STRUCT) => {
                let (mut data_type, mut content, mut shape) = (None, None, None);
                while let Some((t, id, at)) = r.field(&"a rawTypedTensor")? {
                    match (id, t) {
                        (1, I32) => data_type = Some(i32(r)?),
                        (2, STRING) => content = Some(binary(r)?),
                        (3, ttype::LIST) => shape = Some(list(r, I64, "shape", i64)?),
                        _ => skip(r, t, at)?,
                    }
                }
                match (data_type, content) {
                    (Some(data_type), Some(content)) => GeneralTensor::Raw {
                        data_type,
                        content,
                        shape,
                    },
                    _ => return r.fail(at, "a rawTypedTensor without dataType or content"),
                }
            }
            (2, STRUCT) => {
                let (v, s) = values_and_shape(r, STRING, "strings", binary)?;
                GeneralTensor::Strings(v, s)
            }
            (3, STRUCT) => {
                let (v, s) = values_and_shape(r, I32, "ints", i32)?;
                GeneralTensor::Int32(v, s)
            }
            (4, STRUCT) => {
                let (v, s) = values_and_shape(r, I64, "longs", i64)?;
                GeneralTensor::Int64(v, s)
            }
            (5, STRUCT) => {
                let (v, s) = values_and_shape(r, DOUBLE, "floats", f64)?;
                GeneralTensor::Float(v, s)
            }
            (6, STRUCT) => {
                let (v, s) = values_and_shape(r, DOUBLE, "doubles", f64)?;
                GeneralTensor::Double(v, s)
            }
            (7, STRUCT) => {
                let (v, s) = values_and_shape(r, BOOL, "booleans", bool)?;
                GeneralTensor::Bool(v, s)
            }
            (8, STRUCT) => {
                let (v, s) = values_and_shape(r, STRING, "binaries", binary)?;
                GeneralTensor::Binary(v, s)
            }
            _ => {
                skip(r, t, at)?;
                continue;
            }
        };
        if out.replace(tensor).is_some() {
            return r.fail(at, "a GeneralTensor union with more than one field set");
        }
    }
    match out {
        Some(t) => Ok(t),
        None => r.fail(start, "a GeneralTensor with no field this reader knows"),
    }
}

fn sparse_tensor(r: &mut Reader) -> R<SparseTensor> {
    let mut out = None;
    let start = r.at;
    while let Some((t, id, at)) = r.field(&"a SparseTensor")? {
        if (id, t) != (1, ttype::STRUCT) {
            skip(r, t, at)?;
            continue;
        }
        let (mut dense_shape, mut indices, mut values) = (None, None, None);
        while let Some((t, id, at)) = r.field(&"a cooSparseTensor")? {
            match (id, t) {
                (1, ttype::LIST) => dense_shape = Some(list(r, ttype::I64, "denseShape", i64)?),
                (2, ttype::STRUCT) => {
                    // An Int64Tensor struct (Twitter's IDL, thrift/ now,
                    // what twml reads) starts with its longs list (field 1);
                    // a GeneralTensor union (this repository's IDL before)
                    // with a variant struct. Both decode to a GeneralTensor.
                    let peek = r.at;
                    let first = r.field(&"a cooSparseTensor's indices")?;
                    r.at = peek;
                    indices = Some(match first {
                        Some((ttype::LIST, 1, _)) => {
                            let (v, s) = values_and_shape(r, ttype::I64, "longs", i64)?;
                            GeneralTensor::Int64(v, s)
                        }
                        _ => general_tensor(r)?,
                    })
                }
                (3, ttype::STRUCT) => values = Some(general_tensor(r)?),
                _ => skip(r, t, at)?,
            }
        }
        match (dense_shape, indices, values) {
            (Some(dense_shape), Some(indices), Some(values)) => {
                out = Some(SparseTensor::Coo {
                    dense_shape,
                    indices,
                    values,
                })
            }
            _ => {
                return r.fail(
                    at,
                    "a cooSparseTensor without denseShape, indices or values",
                )
            }
        }
    }
    match out {
        Some(t) => Ok(t),
        None => r.fail(start, "a SparseTensor with no field this reader knows"),
    }
}
