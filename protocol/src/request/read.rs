//! The one pass over a request's bytes: a cursor that checks every count
//! against the bytes left before anything is allocated, and the walk over a
//! `DataRecord` that hands each feature to a [`Visit`] (the DataRecord batch
//! stores them, the hashed batch turns them into rows).

use std::fmt;

use crate::decode::min_size;
use crate::wire::ttype;

/// Skipped values nested deeper than this are refused (the schema's deepest
/// value is 5 levels; recursion must stay bounded for any input).
const MAX_DEPTH: usize = 64;

/// Where a message went wrong: the byte offset in the message and what was
/// expected there. The op layer adds the op name and the element.
#[derive(Debug)]
pub(crate) struct ReadError {
    pub at: usize,
    pub what: String,
}

pub(crate) type R<T> = Result<T, ReadError>;

/// A string on the wire: its byte range in message `msg`. Batches keep these,
/// never copies, and read the bytes again from the same messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Span {
    pub msg: u32,
    pub len: u32,
    pub start: usize,
}

impl Span {
    pub fn bytes<'a>(&self, messages: &[&'a [u8]]) -> &'a [u8] {
        &messages[self.msg as usize][self.start..self.start + self.len as usize]
    }
}

fn type_name(t: u8) -> &'static str {
    match t {
        ttype::BOOL => "bool",
        ttype::BYTE => "byte",
        ttype::DOUBLE => "double",
        ttype::I16 => "i16",
        ttype::I32 => "i32",
        ttype::I64 => "i64",
        ttype::STRING => "string",
        ttype::STRUCT => "struct",
        ttype::MAP => "map",
        ttype::SET => "set",
        ttype::LIST => "list",
        _ => "unknown type",
    }
}

pub(crate) struct Cursor<'a> {
    data: &'a [u8],
    msg: u32,
    pub at: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(data: &'a [u8], msg: u32) -> Self {
        Cursor { data, msg, at: 0 }
    }

    pub fn fail<T>(&self, at: usize, what: impl fmt::Display) -> R<T> {
        Err(ReadError {
            at,
            what: what.to_string(),
        })
    }

    #[cold]
    #[inline(never)]
    fn truncated<T>(&self, n: usize, what: &dyn fmt::Display) -> R<T> {
        self.fail(
            self.at,
            format_args!(
                "{what} needs {n} more bytes, the message has {} left",
                self.left()
            ),
        )
    }

    #[inline]
    pub fn left(&self) -> usize {
        self.data.len() - self.at
    }

    #[inline]
    fn take(&mut self, n: usize, what: &dyn fmt::Display) -> R<&'a [u8]> {
        if n > self.left() {
            return self.truncated(n, what);
        }
        let s = &self.data[self.at..self.at + n];
        self.at += n;
        Ok(s)
    }

    #[inline]
    fn array<const N: usize>(&mut self, what: &dyn fmt::Display) -> R<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N, what)?);
        Ok(a)
    }

    #[inline]
    pub fn u8(&mut self, what: &dyn fmt::Display) -> R<u8> {
        Ok(self.take(1, what)?[0])
    }

    #[inline]
    pub fn i32(&mut self, what: &dyn fmt::Display) -> R<i32> {
        Ok(i32::from_be_bytes(self.array(what)?))
    }

    #[inline]
    pub fn i64(&mut self, what: &dyn fmt::Display) -> R<i64> {
        Ok(i64::from_be_bytes(self.array(what)?))
    }

    #[inline]
    pub fn f64(&mut self, what: &dyn fmt::Display) -> R<f64> {
        Ok(f64::from_bits(self.i64(what)? as u64))
    }

    /// A count of items of at least `min` bytes each: negative, or more than
    /// the bytes left can hold, is an error before the caller allocates.
    fn count(&mut self, min: usize, what: &dyn fmt::Display) -> R<usize> {
        let at = self.at;
        let n = self.i32(what)?;
        let Ok(n) = usize::try_from(n) else {
            return self.fail(at, format_args!("{what} has a negative size, {n}"));
        };
        if n.saturating_mul(min.max(1)) > self.left() {
            return self.fail(
                at,
                format_args!(
                    "{what} claims {n} items of at least {} bytes, the message has {} left",
                    min.max(1),
                    self.left()
                ),
            );
        }
        Ok(n)
    }

    /// A Thrift `string` (UTF-8 checked) or `binary` (not), as a span.
    pub fn string(&mut self, utf8: bool, what: &dyn fmt::Display) -> R<Span> {
        let n = self.count(1, what)?;
        let start = self.at;
        let bytes = self.take(n, what)?;
        if utf8 {
            if let Err(e) = std::str::from_utf8(bytes) {
                return self.fail(
                    start + e.valid_up_to(),
                    format_args!("{what} must be UTF-8, found an invalid byte sequence"),
                );
            }
        }
        Ok(Span {
            msg: self.msg,
            len: n as u32,
            start,
        })
    }

    /// A field header: `None` at STOP.
    pub fn field(&mut self, what: &dyn fmt::Display) -> R<Option<(u8, i16, usize)>> {
        let at = self.at;
        match self.u8(what)? {
            ttype::STOP => Ok(None),
            t => Ok(Some((t, i16::from_be_bytes(self.array(what)?), at))),
        }
    }

    /// A list or set header whose elements must be `elem`.
    pub fn list(&mut self, elem: u8, what: &dyn fmt::Display, want: &str) -> R<usize> {
        let at = self.at;
        let e = self.u8(what)?;
        if e != elem {
            return self.fail(
                at,
                format_args!(
                    "{what} must be a {want}, found elements of type {}",
                    type_name(e)
                ),
            );
        }
        self.count(min_size(elem), what)
    }

    /// A map header whose keys and values must be `key` and `value`.
    pub fn map(&mut self, key: u8, value: u8, what: &dyn fmt::Display, want: &str) -> R<usize> {
        let at = self.at;
        let (k, v) = (self.u8(what)?, self.u8(what)?);
        if (k, v) != (key, value) {
            return self.fail(
                at,
                format_args!(
                    "{what} must be a {want}, found a map<{}, {}>",
                    type_name(k),
                    type_name(v)
                ),
            );
        }
        self.count(min_size(key) + min_size(value), what)
    }

    /// Skips one value of type `t` whose header was read at `at`, checking it
    /// as a stock decoder would (counts, nesting, type codes).
    pub fn skip(&mut self, t: u8, at: usize, what: &dyn fmt::Display) -> R<()> {
        self.skip_at(t, at, what, 0)
    }

    fn skip_at(&mut self, t: u8, at: usize, what: &dyn fmt::Display, depth: usize) -> R<()> {
        if depth > MAX_DEPTH {
            return self.fail(
                self.at,
                format_args!("{what} nests deeper than {MAX_DEPTH}"),
            );
        }
        match t {
            ttype::BOOL | ttype::BYTE => self.take(1, what).map(drop),
            ttype::I16 => self.take(2, what).map(drop),
            ttype::I32 => self.take(4, what).map(drop),
            ttype::DOUBLE | ttype::I64 => self.take(8, what).map(drop),
            ttype::STRING => self.string(false, what).map(drop),
            ttype::STRUCT => {
                while let Some((t, _, at)) = self.field(what)? {
                    self.skip_at(t, at, what, depth + 1)?;
                }
                Ok(())
            }
            ttype::MAP => {
                let (k, v) = (self.u8(what)?, self.u8(what)?);
                let n = self.count(min_size(k) + min_size(v), what)?;
                for _ in 0..n {
                    self.skip_at(k, self.at, what, depth + 1)?;
                    self.skip_at(v, self.at, what, depth + 1)?;
                }
                Ok(())
            }
            ttype::SET | ttype::LIST => {
                let e = self.u8(what)?;
                let n = self.count(min_size(e), what)?;
                for _ in 0..n {
                    self.skip_at(e, self.at, what, depth + 1)?;
                }
                Ok(())
            }
            t => self.fail(
                at,
                format_args!("{what} has Thrift type code {t}, which is no type"),
            ),
        }
    }

    /// The value of a known field has the wrong Thrift type.
    pub fn wrong_type<T>(&self, at: usize, what: &dyn fmt::Display, want: &str, t: u8) -> R<T> {
        self.fail(
            at,
            format_args!("{what} must be a {want}, found a {}", type_name(t)),
        )
    }
}

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
                for _ in 0..n {
                    v.binary(c.i64(&path)?);
                }
                v.end(Kind::Binary);
            }
            2 => {
                let n = c.map(I64, DOUBLE, &path, want)?;
                for _ in 0..n {
                    let id = c.i64(&path)?;
                    v.continuous(id, c.f64(&path)?);
                }
                v.end(Kind::Continuous);
            }
            3 => {
                let n = c.map(I64, I64, &path, want)?;
                for _ in 0..n {
                    let id = c.i64(&path)?;
                    v.discrete(id, c.i64(&path)?);
                }
                v.end(Kind::Discrete);
            }
            4 => {
                let n = c.map(I64, STRING, &path, want)?;
                for _ in 0..n {
                    let id = c.i64(&path)?;
                    let s = c.string(true, &path)?;
                    v.string(id, s, &c.data[s.start..s.start + s.len as usize]);
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
                            v.sparse_binary(id, s, &c.data[s.start..s.start + s.len as usize]);
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
                            let bytes = &c.data[s.start..s.start + s.len as usize];
                            v.sparse_continuous(id, s, bytes, x);
                        }
                    }
                }
                v.end(Kind::SparseContinuous);
            }
            // blobFeatures, tensors, sparseTensors: no getter reads them;
            // checked as values of their declared type and skipped.
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
