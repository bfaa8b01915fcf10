//! The walk over a request's bytes: a `DataRecord` handing each feature to a
//! [`Visit`] (the DataRecord batch stores them, the hashed batch turns them
//! into rows), and a `BatchPredictionRequest` handing over each record. The
//! bytes are read through the crate's one Thrift cursor ([`crate::cursor`]).

use std::fmt;

pub(crate) use crate::cursor::{Cursor, ReadError, Span, R};
use crate::wire::ttype;

/// The six feature kinds a reader keeps, by their `DataRecord` field id
/// (which is also twml's `DR_*` type code in the hashed rows).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Binary = 1,
    Continuous = 2,
    Discrete = 3,
    String = 4,
    SparseBinary = 5,
    SparseContinuous = 6,
}

pub(crate) const KINDS: [Kind; 6] = [
    Kind::Binary,
    Kind::Continuous,
    Kind::Discrete,
    Kind::String,
    Kind::SparseBinary,
    Kind::SparseContinuous,
];

/// What a record's features are handed to, in wire order. `sparse_*_begin`
/// says whether the entries of that id are wanted (unwanted ones are still
/// read and checked, not stored). `end` closes one feature map of a record.
pub(crate) trait Visit {
    fn binary(&mut self, id: i64);
    fn continuous(&mut self, id: i64, value: f64);
    fn discrete(&mut self, id: i64, value: i64);
    fn string(&mut self, id: i64, value: Span, bytes: &[u8]);
    fn sparse_begin(&mut self, kind: Kind, id: i64) -> bool;
    fn sparse_binary(&mut self, id: i64, value: Span, bytes: &[u8]);
    fn sparse_continuous(&mut self, id: i64, name: Span, bytes: &[u8], value: f64);
    fn end(&mut self, kind: Kind);
    /// An entry of `tensors` (`sparse` false) or `sparseTensors` (true): the
    /// span of its `GeneralTensor`/`SparseTensor` struct, checked as Thrift
    /// here and read by the tensor getters (request/tensors.rs).
    fn tensor(&mut self, _sparse: bool, _id: i64, _value: Span) {}
}

/// The path of a record's field in messages, e.g.
/// `individualFeaturesList[3].continuousFeatures (field 2)`.
struct Path<'p> {
    record: &'p dyn fmt::Display,
    field: &'static str,
    id: i16,
    extra: &'static str,
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{} (field {}){}",
            self.record, self.field, self.id, self.extra
        )
    }
}

/// A big-endian i64 from the first 8 bytes of `b` (at least 8 long).
#[inline(always)]
fn be_i64(b: &[u8]) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    i64::from_be_bytes(a)
}

/// Reads one `DataRecord` struct (after its field header) into `v`.
/// `record` names it in errors. A known field repeated, or of the wrong type,
/// is an error; unknown fields are skipped.
pub(crate) fn record<V: Visit>(c: &mut Cursor<'_>, record: &dyn fmt::Display, v: &mut V) -> R<()> {
    use ttype::{DOUBLE, I64, MAP, SET, STRING, STRUCT};
    let mut seen = 0u32;
    while let Some((t, id, at)) = c.field(record)? {
        let (field, want, ok) = match id {
            1 => ("binaryFeatures", "set<i64>", t == SET),
            2 => ("continuousFeatures", "map<i64, double>", t == MAP),
            3 => ("discreteFeatures", "map<i64, i64>", t == MAP),
            4 => ("stringFeatures", "map<i64, string>", t == MAP),
            5 => ("sparseBinaryFeatures", "map<i64, set<string>>", t == MAP),
            6 => (
                "sparseContinuousFeatures",
                "map<i64, map<string, double>>",
                t == MAP,
            ),
            7 => ("blobFeatures", "map<i64, binary>", t == MAP),
            8 => ("tensors", "map<i64, GeneralTensor>", t == MAP),
            9 => ("sparseTensors", "map<i64, SparseTensor>", t == MAP),
            _ => {
                c.skip(t, at, &format_args!("{record}: field {id}"))?;
                continue;
            }
        };
        let path = Path {
            record,
            field,
            id,
            extra: "",
        };
        if !ok {
            return c.wrong_type(at, &path, want, t);
        }
        if seen & (1 << id) != 0 {
            return c.fail(at, format_args!("{path} appears twice in one DataRecord"));
        }
        seen |= 1 << id;
        match id {
            1 => {
                let n = c.list(I64, &path, want)?;
                for e in c.fixed(n * 8, &path)?.chunks_exact(8) {
                    v.binary(be_i64(e));
                }
                v.end(Kind::Binary);
            }
            2 => {
                let n = c.map(I64, DOUBLE, &path, want)?;
                for e in c.fixed(n * 16, &path)?.chunks_exact(16) {
                    let (id, x) = e.split_at(8);
                    v.continuous(be_i64(id), f64::from_bits(be_i64(x) as u64));
                }
                v.end(Kind::Continuous);
            }
            3 => {
                let n = c.map(I64, I64, &path, want)?;
                for e in c.fixed(n * 16, &path)?.chunks_exact(16) {
                    let (id, x) = e.split_at(8);
                    v.discrete(be_i64(id), be_i64(x));
                }
                v.end(Kind::Discrete);
            }
            4 => {
                let n = c.map(I64, STRING, &path, want)?;
                for _ in 0..n {
                    let id = c.i64(&path)?;
                    let s = c.string(true, &path)?;
                    v.string(id, s, c.slice(s));
                }
                v.end(Kind::String);
            }
            5 => {
                let n = c.map(I64, SET, &path, want)?;
                for _ in 0..n {
                    let id = c.i64(&path)?;
                    let keep = v.sparse_begin(Kind::SparseBinary, id);
                    let m = c.list(STRING, &path, want)?;
                    for _ in 0..m {
                        let s = c.string(true, &path)?;
                        if keep {
                            v.sparse_binary(id, s, c.slice(s));
                        }
                    }
                }
                v.end(Kind::SparseBinary);
            }
            6 => {
                let n = c.map(I64, MAP, &path, want)?;
                for _ in 0..n {
                    let id = c.i64(&path)?;
                    let keep = v.sparse_begin(Kind::SparseContinuous, id);
                    let m = c.map(STRING, DOUBLE, &path, want)?;
                    for _ in 0..m {
                        let s = c.string(true, &path)?;
                        let x = c.f64(&path)?;
                        if keep {
                            let bytes = c.slice(s);
                            v.sparse_continuous(id, s, bytes, x);
                        }
                    }
                }
                v.end(Kind::SparseContinuous);
            }
            8 | 9 => {
                let n = c.map(I64, STRUCT, &path, want)?;
                for _ in 0..n {
                    let key = c.i64(&path)?;
                    let start = c.at;
                    c.skip(STRUCT, start, &path)?;
                    let len = u32::try_from(c.at - start)
                        .or_else(|_| c.fail(start, format_args!("{path}: a value over 4 GiB")))?;
                    let span = Span {
                        msg: c.msg(),
                        len,
                        start,
                    };
                    v.tensor(id == 9, key, span);
                }
            }
            // blobFeatures: no getter reads them; checked as values of their
            // declared type and skipped.
            _ => {
                let key_value = match id {
                    7 => (I64, STRING),
                    _ => (I64, STRUCT),
                };
                let n = c.map(key_value.0, key_value.1, &path, want)?;
                for _ in 0..n {
                    c.skip(I64, c.at, &path)?;
                    c.skip(key_value.1, c.at, &path)?;
                }
            }
        }
    }
    Ok(())
}

/// Reads one `BatchPredictionRequest` struct (the whole message): each record
/// of `individualFeaturesList` through `each(cursor, Some(index))`, and
/// `commonFeatures`, if present, through `each(cursor, None)`, in wire order.
///
/// An error before a field of the request's own was recognised says that the
/// bytes are not a request at all (a DataRecord, text, another protocol), not
/// just which byte was wrong: random bytes otherwise read as "field 25964 has
/// Thrift type code 104", which does not tell a user what they sent.
pub(crate) fn request(
    c: &mut Cursor<'_>,
    each: impl FnMut(&mut Cursor<'_>, Option<usize>) -> R<()>,
) -> R<()> {
    let mut recognised = false;
    request_fields(c, &mut recognised, each).map_err(|mut e| {
        if !recognised {
            e.what.push_str(NOT_A_REQUEST);
        }
        e
    })
}

/// What [`request`] adds to an error in bytes that never looked like a request.
pub(crate) const NOT_A_REQUEST: &str = " (these bytes do not start like a Thrift binary-protocol \
     BatchPredictionRequest, whose fields are 1: individualFeaturesList, a list<DataRecord>, and 2: \
     commonFeatures, a DataRecord; a lone DataRecord, a message in another Thrift protocol or other \
     data reads like this)";

fn request_fields(
    c: &mut Cursor<'_>,
    recognised: &mut bool,
    mut each: impl FnMut(&mut Cursor<'_>, Option<usize>) -> R<()>,
) -> R<()> {
    let mut seen = [false; 2];
    while let Some((t, id, at)) = c.field(&"BatchPredictionRequest")? {
        match id {
            1 => {
                let path = "BatchPredictionRequest.individualFeaturesList (field 1)";
                if t != ttype::LIST {
                    return c.wrong_type(at, &path, "list<DataRecord>", t);
                }
                *recognised = true;
                if std::mem::replace(&mut seen[0], true) {
                    return c.fail(at, format_args!("{path} appears twice"));
                }
                let n = c.list(ttype::STRUCT, &path, "list<DataRecord>")?;
                for i in 0..n {
                    each(c, Some(i))?;
                }
            }
            2 => {
                let path = "BatchPredictionRequest.commonFeatures (field 2)";
                if t != ttype::STRUCT {
                    return c.wrong_type(at, &path, "DataRecord", t);
                }
                *recognised = true;
                if std::mem::replace(&mut seen[1], true) {
                    return c.fail(at, format_args!("{path} appears twice"));
                }
                each(c, None)?;
            }
            _ => c.skip(t, at, &format_args!("BatchPredictionRequest: field {id}"))?,
        }
    }
    if !seen[0] {
        // A required field (thrift/prediction_service.thrift), as stock
        // decoders check: without it a client's records would be lost silently.
        return c.fail(
            c.at.saturating_sub(1),
            "BatchPredictionRequest.individualFeaturesList (field 1) is required and missing",
        );
    }
    Ok(())
}

/// After the struct's STOP: the message must end there.
pub(crate) fn finish(c: &Cursor<'_>, what: &str) -> R<()> {
    if c.left() > 0 {
        return c.fail(
            c.at,
            format_args!(
                "{} bytes after the end of the {what} (a message holds exactly one)",
                c.left()
            ),
        );
    }
    Ok(())
}
