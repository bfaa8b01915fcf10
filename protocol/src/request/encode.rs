//! Writes requests: for clients, tests and benchmarks (the readers are
//! judged against other encoders, never this one alone).

use crate::decode::Record;
use crate::wire::ttype::{DOUBLE, I64, LIST, MAP, SET, STOP, STRING, STRUCT};
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

    /// A DataRecord's fields 1-7 and its STOP; maps in the order given.
    fn record(&mut self, r: &Record) -> Result<()> {
        if !r.tensors.is_empty() || !r.sparse_tensors.is_empty() {
            return Err(Error::invalid(
                "a request's DataRecord with tensors or sparseTensors: this encoder writes \
                 fields 1 to 7 (no request-side op reads tensors)",
            ));
        }
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
        self.0.push(STOP);
        Ok(())
    }
}

/// The bytes of `BatchPredictionRequest { individualFeaturesList = records,
/// commonFeatures = common }`. Strings are written as given (a reader checks
/// them for UTF-8). Records with tensors are an error.
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

/// The bytes of one `DataRecord` (fields 1 to 7).
pub fn encode_data_record(record: &Record) -> Result<Vec<u8>> {
    let mut out = Out(Vec::new());
    out.record(record)?;
    Ok(out.0)
}
