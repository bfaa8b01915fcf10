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
        /// `indices`.
        indices: GeneralTensor,
        /// `values`.
        values: GeneralTensor,
    },
}

/// The records of a `BatchPredictionResponse`, in order.
///
/// Every byte must belong to the response: trailing bytes are an error.
pub fn decode_response(data: &[u8]) -> Result<Vec<Record>, DecodeError> {
    let mut r = Reader { data, at: 0 };
    let mut records = Vec::new();
    while let Some((t, id)) = r.field()? {
        if (id, t) == (field::RESPONSE_PREDICTIONS, ttype::LIST) {
            let n = r.list_header(ttype::STRUCT, "predictions")?;
            records.reserve(n);
            for _ in 0..n {
                records.push(record(&mut r)?);
            }
        } else {
            r.skip(t)?;
        }
    }
    if r.at != data.len() {
        return Err(DecodeError {
            message: format!(
                "{} bytes after the end of the response (which ends at byte {})",
                data.len() - r.at,
                r.at
            ),
        });
    }
    Ok(records)
}

type R<T> = Result<T, DecodeError>;

/// Nesting deeper than this is refused while skipping unknown fields (the
/// schema's deepest value is 5 levels; recursion must stay bounded).
const MAX_DEPTH: usize = 64;

struct Reader<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn error(&self, what: String) -> DecodeError {
        DecodeError {
            message: format!("{what} (at byte {})", self.at),
        }
    }

    fn take(&mut self, n: usize) -> R<&'a [u8]> {
        match self.at.checked_add(n).filter(|&e| e <= self.data.len()) {
            Some(end) => {
                let s = &self.data[self.at..end];
                self.at = end;
                Ok(s)
            }
            None => Err(self.error(format!(
                "truncated response: wanted {n} more bytes, {} left",
                self.data.len() - self.at
            ))),
        }
    }

    fn array<const N: usize>(&mut self) -> R<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn u8(&mut self) -> R<u8> {
        Ok(self.take(1)?[0])
    }
    fn i16(&mut self) -> R<i16> {
        Ok(i16::from_be_bytes(self.array()?))
    }
    fn i32(&mut self) -> R<i32> {
        Ok(i32::from_be_bytes(self.array()?))
    }
    fn i64(&mut self) -> R<i64> {
        Ok(i64::from_be_bytes(self.array()?))
    }
    fn f64(&mut self) -> R<f64> {
        Ok(f64::from_bits(self.i64()? as u64))
    }
    fn bool(&mut self) -> R<bool> {
        Ok(self.u8()? != 0)
    }

    /// A count of `min_size`-byte items; more than the bytes left could hold is
    /// an error, so a corrupt count never drives a huge allocation.
    fn count(&mut self, min_size: usize, what: &str) -> R<usize> {
        let n = self.i32()?;
        let n =
            usize::try_from(n).map_err(|_| self.error(format!("{what} has negative size {n}")))?;
        let left = self.data.len() - self.at;
        if n.saturating_mul(min_size.max(1)) > left {
            return Err(self.error(format!(
                "truncated response: {what} claims {n} items, only {left} bytes left"
            )));
        }
        Ok(n)
    }

    fn binary(&mut self) -> R<Vec<u8>> {
        let n = self.count(1, "a string")?;
        Ok(self.take(n)?.to_vec())
    }

    /// A field header, or `None` at STOP.
    fn field(&mut self) -> R<Option<(u8, i16)>> {
        match self.u8()? {
            ttype::STOP => Ok(None),
            t => Ok(Some((t, self.i16()?))),
        }
    }

    fn expect(&self, got: u8, want: u8, what: &str) -> R<()> {
        if got == want {
            Ok(())
        } else {
            Err(self.error(format!("{what} has type code {got}, expected {want}")))
        }
    }

    fn list_header(&mut self, elem: u8, what: &str) -> R<usize> {
        let t = self.u8()?;
        self.expect(t, elem, &format!("{what} elements"))?;
        self.count(min_size(elem), what)
    }

    fn map_header(&mut self, key: u8, value: u8, what: &str) -> R<usize> {
        let (k, v) = (self.u8()?, self.u8()?);
        self.expect(k, key, &format!("{what} keys"))?;
        self.expect(v, value, &format!("{what} values"))?;
        self.count(min_size(key) + min_size(value), what)
    }

    fn list<T>(&mut self, elem: u8, what: &str, mut f: impl FnMut(&mut Self) -> R<T>) -> R<Vec<T>> {
        let n = self.list_header(elem, what)?;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(f(self)?);
        }
        Ok(out)
    }

    fn map<K, V>(
        &mut self,
        (key, value): (u8, u8),
        what: &str,
        mut k: impl FnMut(&mut Self) -> R<K>,
        mut v: impl FnMut(&mut Self) -> R<V>,
    ) -> R<Vec<(K, V)>> {
        let n = self.map_header(key, value, what)?;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let key = k(self)?;
            out.push((key, v(self)?));
        }
        Ok(out)
    }

    fn skip(&mut self, t: u8) -> R<()> {
        self.skip_at(t, 0)
    }

    fn skip_at(&mut self, t: u8, depth: usize) -> R<()> {
        if depth > MAX_DEPTH {
            return Err(self.error(format!("values nested deeper than {MAX_DEPTH}")));
        }
        match t {
            ttype::BOOL | ttype::BYTE => self.take(1).map(drop),
            ttype::I16 => self.take(2).map(drop),
            ttype::I32 => self.take(4).map(drop),
            ttype::DOUBLE | ttype::I64 => self.take(8).map(drop),
            ttype::STRING => self.binary().map(drop),
            ttype::STRUCT => {
                while let Some((t, _)) = self.field()? {
                    self.skip_at(t, depth + 1)?;
                }
                Ok(())
            }
            ttype::MAP => {
                let (k, v) = (self.u8()?, self.u8()?);
                let n = self.count(2, "a map")?;
                for _ in 0..n {
                    self.skip_at(k, depth + 1)?;
                    self.skip_at(v, depth + 1)?;
                }
                Ok(())
            }
            ttype::SET | ttype::LIST => {
                let e = self.u8()?;
                let n = self.count(1, "a list")?;
                for _ in 0..n {
                    self.skip_at(e, depth + 1)?;
                }
                Ok(())
            }
            t => {
                // The type byte was already read.
                self.at -= 1;
                Err(self.error(format!("unknown Thrift type code {t}")))
            }
        }
    }
}

/// The fewest bytes a value of Thrift type `t` takes in the binary protocol.
pub(crate) fn min_size(t: u8) -> usize {
    match t {
        ttype::I16 => 2,
        ttype::I32 | ttype::STRING | ttype::LIST | ttype::SET => 4,
        ttype::I64 | ttype::DOUBLE => 8,
        ttype::MAP => 6,
        _ => 1,
    }
}

fn record(r: &mut Reader) -> R<Record> {
    use ttype::{DOUBLE, I64, MAP, SET, STRING, STRUCT};
    let mut rec = Record::default();
    while let Some((t, id)) = r.field()? {
        match (id, t) {
            (1, SET) => rec.binary = r.list(I64, "binaryFeatures", Reader::i64)?,
            (field::RECORD_CONTINUOUS_FEATURES, MAP) => {
                rec.continuous = r.map(
                    (I64, DOUBLE),
                    "continuousFeatures",
                    Reader::i64,
                    Reader::f64,
                )?
            }
            (3, MAP) => {
                rec.discrete = r.map((I64, I64), "discreteFeatures", Reader::i64, Reader::i64)?
            }
            (4, MAP) => {
                rec.strings = r.map((I64, STRING), "stringFeatures", Reader::i64, Reader::binary)?
            }
            (5, MAP) => {
                rec.sparse_binary = r.map((I64, SET), "sparseBinaryFeatures", Reader::i64, |r| {
                    r.list(STRING, "sparseBinaryFeatures set", Reader::binary)
                })?
            }
            (6, MAP) => {
                rec.sparse_continuous =
                    r.map((I64, MAP), "sparseContinuousFeatures", Reader::i64, |r| {
                        r.map(
                            (STRING, DOUBLE),
                            "sparseContinuousFeatures value",
                            Reader::binary,
                            Reader::f64,
                        )
                    })?
            }
            (7, MAP) => {
                rec.blobs = r.map((I64, STRING), "blobFeatures", Reader::i64, Reader::binary)?
            }
            (field::RECORD_TENSORS, MAP) => {
                rec.tensors = r.map((I64, STRUCT), "tensors", Reader::i64, general_tensor)?
            }
            (9, MAP) => {
                rec.sparse_tensors =
                    r.map((I64, STRUCT), "sparseTensors", Reader::i64, sparse_tensor)?
            }
            _ => r.skip(t)?,
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
    while let Some((t, id)) = r.field()? {
        match (id, t) {
            (1, ttype::LIST) => values = Some(r.list(elem, what, &mut read)?),
            (2, ttype::LIST) => shape = Some(r.list(ttype::I64, "shape", Reader::i64)?),
            _ => r.skip(t)?,
        }
    }
    let values = values.ok_or_else(|| r.error(format!("a tensor without its required {what}")))?;
    Ok((values, shape))
}

fn general_tensor(r: &mut Reader) -> R<GeneralTensor> {
    use ttype::{BOOL, DOUBLE, I32, I64, STRING, STRUCT};
    let mut out = None;
    while let Some((t, id)) = r.field()? {
        let tensor = match (id, t) {
            (1, STRUCT) => {
                let (mut data_type, mut content, mut shape) = (None, None, None);
                while let Some((t, id)) = r.field()? {
                    match (id, t) {
                        (1, I32) => data_type = Some(r.i32()?),
                        (2, STRING) => content = Some(r.binary()?),
                        (3, ttype::LIST) => shape = Some(r.list(I64, "shape", Reader::i64)?),
                        _ => r.skip(t)?,
                    }
                }
                match (data_type, content) {
                    (Some(data_type), Some(content)) => GeneralTensor::Raw {
                        data_type,
                        content,
                        shape,
                    },
                    _ => return Err(r.error("a rawTypedTensor without dataType or content".into())),
                }
            }
            (2, STRUCT) => {
                let (v, s) = values_and_shape(r, STRING, "strings", Reader::binary)?;
                GeneralTensor::Strings(v, s)
            }
            (3, STRUCT) => {
                let (v, s) = values_and_shape(r, I32, "ints", Reader::i32)?;
                GeneralTensor::Int32(v, s)
            }
            (4, STRUCT) => {
                let (v, s) = values_and_shape(r, I64, "longs", Reader::i64)?;
                GeneralTensor::Int64(v, s)
            }
            (5, STRUCT) => {
                let (v, s) = values_and_shape(r, DOUBLE, "floats", Reader::f64)?;
                GeneralTensor::Float(v, s)
            }
            (6, STRUCT) => {
                let (v, s) = values_and_shape(r, DOUBLE, "doubles", Reader::f64)?;
                GeneralTensor::Double(v, s)
            }
            (7, STRUCT) => {
                let (v, s) = values_and_shape(r, BOOL, "booleans", Reader::bool)?;
                GeneralTensor::Bool(v, s)
            }
            (8, STRUCT) => {
                let (v, s) = values_and_shape(r, STRING, "binaries", Reader::binary)?;
                GeneralTensor::Binary(v, s)
            }
            _ => {
                r.skip(t)?;
                continue;
            }
        };
        if out.replace(tensor).is_some() {
            return Err(r.error("a GeneralTensor union with more than one field set".into()));
        }
    }
    out.ok_or_else(|| r.error("a GeneralTensor with no field this reader knows".into()))
}

fn sparse_tensor(r: &mut Reader) -> R<SparseTensor> {
    let mut out = None;
    while let Some((t, id)) = r.field()? {
        if (id, t) != (1, ttype::STRUCT) {
            r.skip(t)?;
            continue;
        }
        let (mut dense_shape, mut indices, mut values) = (None, None, None);
        while let Some((t, id)) = r.field()? {
            match (id, t) {
                (1, ttype::LIST) => {
                    dense_shape = Some(r.list(ttype::I64, "denseShape", Reader::i64)?)
                }
                (2, ttype::STRUCT) => indices = Some(general_tensor(r)?),
                (3, ttype::STRUCT) => values = Some(general_tensor(r)?),
                _ => r.skip(t)?,
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
                return Err(
                    r.error("a cooSparseTensor without denseShape, indices or values".into())
                )
            }
        }
    }
    out.ok_or_else(|| r.error("a SparseTensor with no field this reader knows".into()))
}
