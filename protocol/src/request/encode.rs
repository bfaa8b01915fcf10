//! Writes requests: for clients, tests and benchmarks (the readers are
//! judged against other encoders, never this one alone).

use crate::decode::{GeneralTensor, Record, SparseTensor};
use crate::wire::ttype::{BOOL, DOUBLE, I32, I64, LIST, MAP, SET, STOP, STRING, STRUCT};
use crate::{Error, Result};

struct Out(Vec<u8>);

impl Out {
    fn field(&mut self, t: u8, id: i16) {
        self.0.push(t);
        self.0.extend_from_slice(&id.to_be_bytes());
    }
    fn count(&mut self, n: usize, what: &str) -> Result<()> {
        let n = i32::try_from(n)
            .map_err(|_| Error::invalid(format!("{what}: {n} items, more than a Thrift count")))?;
        self.0.extend_from_slice(&n.to_be_bytes());
        Ok(())
    }
    fn head(&mut self, types: &[u8], n: usize, what: &str) -> Result<()> {
        self.0.extend_from_slice(types);
        self.count(n, what)
    }
    fn i64(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn f64(&mut self, v: f64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn bytes(&mut self, b: &[u8], what: &str) -> Result<()> {
        self.count(b.len(), what)?;
        self.0.extend_from_slice(b);
        Ok(())
    }

    /// An optional `list<i64>` shape field.
    fn shape(&mut self, id: i16, shape: &Option<Vec<i64>>, what: &str) -> Result<()> {
        if let Some(s) = shape {
            self.field(LIST, id);
            self.head(&[I64], s.len(), what)?;
            s.iter().for_each(|&d| self.i64(d));
        }
        Ok(())
    }

    /// A `GeneralTensor` union struct (one variant, then the union's STOP).
    fn general(&mut self, t: &GeneralTensor, what: &str) -> Result<()> {
        match t {
            GeneralTensor::Raw {
                data_type,
                content,
                shape,
            } => {
                self.field(STRUCT, 1);
                self.field(I32, 1);
                self.0.extend_from_slice(&data_type.to_be_bytes());
                self.field(STRING, 2);
                self.bytes(content, what)?;
                self.shape(3, shape, what)?;
            }
            GeneralTensor::Strings(v, shape) | GeneralTensor::Binary(v, shape) => {
                let id = if matches!(t, GeneralTensor::Strings(..)) {
                    2
                } else {
                    8
                };
                self.field(STRUCT, id);
                self.field(LIST, 1);
                self.head(&[STRING], v.len(), what)?;
                for b in v {
                    self.bytes(b, what)?;
                }
                self.shape(2, shape, what)?;
            }
            GeneralTensor::Int32(v, shape) => {
                self.field(STRUCT, 3);
                self.field(LIST, 1);
                self.head(&[I32], v.len(), what)?;
                v.iter()
                    .for_each(|x| self.0.extend_from_slice(&x.to_be_bytes()));
                self.shape(2, shape, what)?;
            }
            GeneralTensor::Int64(v, shape) => {
                self.field(STRUCT, 4);
                self.field(LIST, 1);
                self.head(&[I64], v.len(), what)?;
                v.iter().for_each(|&x| self.i64(x));
                self.shape(2, shape, what)?;
            }
            GeneralTensor::Float(v, shape) | GeneralTensor::Double(v, shape) => {
                let id = if matches!(t, GeneralTensor::Float(..)) {
                    5
                } else {
                    6
                };
                self.field(STRUCT, id);
                self.field(LIST, 1);
                self.head(&[DOUBLE], v.len(), what)?;
                v.iter().for_each(|&x| self.f64(x));
                self.shape(2, shape, what)?;
            }
            GeneralTensor::Bool(v, shape) => {
                self.field(STRUCT, 7);
                self.field(LIST, 1);
                self.head(&[BOOL], v.len(), what)?;
                v.iter().for_each(|&x| self.0.push(u8::from(x)));
                self.shape(2, shape, what)?;
            }
        }
        // The variant struct's STOP, then the union's.
        self.0.extend_from_slice(&[STOP, STOP]);
        Ok(())
    }

    /// An `Int64Tensor` struct (COOSparseTensor.indices, as Twitter's IDL and
    /// twml's reader have it) of an int64 tensor: an `int64Tensor`, or a
    /// `rawTypedTensor` of INT64 (its little-endian content as longs).
    fn int64_tensor(&mut self, t: &GeneralTensor, what: &str) -> Result<()> {
        let (longs, shape): (Vec<i64>, _) = match t {
            GeneralTensor::Int64(v, shape) => (v.clone(), shape),
            GeneralTensor::Raw {
                data_type,
                content,
                shape,
            } if *data_type == crate::wire::data_type::INT64 && content.len() % 8 == 0 => (
                content
                    .chunks_exact(8)
                    .map(|b| i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
                    .collect(),
                shape,
            ),
            other => {
                let got = match other {
                    GeneralTensor::Raw {
                        data_type, content, ..
                    } => {
                        format!(
                            "a raw tensor of DataType {data_type}, {} bytes",
                            content.len()
                        )
                    }
                    GeneralTensor::Strings(..) => "a string tensor".into(),
                    GeneralTensor::Binary(..) => "a binary tensor".into(),
                    GeneralTensor::Int32(..) => "an int32 tensor".into(),
                    GeneralTensor::Float(..) => "a float tensor".into(),
                    GeneralTensor::Double(..) => "a double tensor".into(),
                    GeneralTensor::Bool(..) => "a bool tensor".into(),
                    GeneralTensor::Int64(..) => "an int64 tensor".into(),
                };
                return Err(Error::invalid(format!(
                    "{what}: must be int64 (an Int64 tensor, or a raw INT64 tensor of whole \
                     elements), got {got}"
                )));
            }
        };
        self.field(LIST, 1);
        self.head(&[I64], longs.len(), what)?;
        longs.iter().for_each(|&x| self.i64(x));
        self.shape(2, shape, what)?;
        self.0.push(STOP);
        Ok(())
    }

    /// Fields 8 (`tensors`) and 9 (`sparseTensors`), as thrift/ has them.
    fn tensors(&mut self, r: &Record) -> Result<()> {
        if !r.tensors.is_empty() {
            self.field(MAP, 8);
            self.head(&[I64, STRUCT], r.tensors.len(), "tensors")?;
            for (id, t) in &r.tensors {
                self.i64(*id);
                self.general(t, "tensors")?;
            }
        }
        if !r.sparse_tensors.is_empty() {
            self.field(MAP, 9);
            self.head(&[I64, STRUCT], r.sparse_tensors.len(), "sparseTensors")?;
            for (id, t) in &r.sparse_tensors {
                self.i64(*id);
                let SparseTensor::Coo {
                    dense_shape,
                    indices,
                    values,
                } = t;
                self.field(STRUCT, 1);
                self.shape(1, &Some(dense_shape.clone()), "sparseTensors")?;
                self.field(STRUCT, 2);
                self.int64_tensor(indices, "sparseTensors indices")?;
                self.field(STRUCT, 3);
                self.general(values, "sparseTensors")?;
                // COOSparseTensor's STOP, then the union's.
                self.0.extend_from_slice(&[STOP, STOP]);
            }
        }
        Ok(())
    }

    /// A DataRecord's fields and its STOP; maps in the order given.
    fn record(&mut self, r: &Record) -> Result<()> {
        if !r.binary.is_empty() {
            self.field(SET, 1);
            self.head(&[I64], r.binary.len(), "binaryFeatures")?;
            r.binary.iter().for_each(|&id| self.i64(id));
        }
        if !r.continuous.is_empty() {
            self.field(MAP, 2);
            self.head(&[I64, DOUBLE], r.continuous.len(), "continuousFeatures")?;
            for &(id, v) in &r.continuous {
                self.i64(id);
                self.f64(v);
            }
        }
        if !r.discrete.is_empty() {
            self.field(MAP, 3);
            self.head(&[I64, I64], r.discrete.len(), "discreteFeatures")?;
            for &(id, v) in &r.discrete {
                self.i64(id);
                self.i64(v);
            }
        }
        for (id, what, entries) in [
            (4, "stringFeatures", &r.strings),
            (7, "blobFeatures", &r.blobs),
        ] {
            if !entries.is_empty() {
                self.field(MAP, id);
                self.head(&[I64, STRING], entries.len(), what)?;
                for (k, v) in entries {
                    self.i64(*k);
                    self.bytes(v, what)?;
                }
            }
        }
        if !r.sparse_binary.is_empty() {
            let what = "sparseBinaryFeatures";
            self.field(MAP, 5);
            self.head(&[I64, SET], r.sparse_binary.len(), what)?;
            for (id, set) in &r.sparse_binary {
                self.i64(*id);
                self.head(&[STRING], set.len(), what)?;
                for s in set {
                    self.bytes(s, what)?;
                }
            }
        }
        if !r.sparse_continuous.is_empty() {
            let what = "sparseContinuousFeatures";
            self.field(MAP, 6);
            self.head(&[I64, MAP], r.sparse_continuous.len(), what)?;
            for (id, map) in &r.sparse_continuous {
                self.i64(*id);
                self.head(&[STRING, DOUBLE], map.len(), what)?;
                for (name, v) in map {
                    self.bytes(name, what)?;
                    self.f64(*v);
                }
            }
        }
        self.tensors(r)?;
        self.0.push(STOP);
        Ok(())
    }
}

/// The bytes of `BatchPredictionRequest { individualFeaturesList = records,
/// commonFeatures = common }`. Strings are written as given (a reader checks
/// them for UTF-8).
pub fn encode_batch_prediction_request(
    records: &[Record],
    common: Option<&Record>,
) -> Result<Vec<u8>> {
    let mut out = Out(Vec::new());
    out.field(LIST, 1);
    out.head(&[STRUCT], records.len(), "individualFeaturesList")?;
    for r in records {
        out.record(r)?;
    }
    if let Some(c) = common {
        out.field(STRUCT, 2);
        out.record(c)?;
    }
    out.0.push(STOP);
    Ok(out.0)
}

/// The bytes of one `DataRecord`.
pub fn encode_data_record(record: &Record) -> Result<Vec<u8>> {
    let mut out = Out(Vec::new());
    out.record(record)?;
    Ok(out.0)
}
