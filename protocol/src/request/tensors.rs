//! Reading tensor features: the `tensors` (field 8, `map<i64, GeneralTensor>`)
//! and `sparseTensors` (field 9, `map<i64, SparseTensor>`) of each record, as a
//! decode keeps them and as a getter parses them. The getters themselves are
//! `tensor_getters.rs`: this file knows nothing of batches or outputs.
//!
//! Decoding keeps each entry as the span of its value in the message (checked
//! as Thrift there, never copied); a getter parses the entries of the one
//! feature it reads, so errors name the feature, the record and what was
//! expected. Where twml crashed or lost data these differ (README, "Tensor
//! features"): a record without the tensor takes its request's
//! `commonFeatures` one; string tensors are read only by
//! `GetStringTensors*`; `BYTE` raw tensors are `int8`; shapes are compared in
//! full and must hold exactly the elements sent; a missing tensor is a clear
//! error (`GetTensors*`) or no entries (`GetSparseTensors*`).

use std::fmt;

use super::read::{Cursor, Kind, Span, Visit, R};
use crate::wire::ttype;

/// A record's entries: `[tensors, sparseTensors]` ranges of `Tensors::entries`.
type EntryRanges = [(usize, usize); 2];

/// Where every record's tensor entries are (both handle kinds).
#[derive(Debug, Default)]
pub(crate) struct Tensors {
    /// `[tensors, sparseTensors]`: (feature id, span of the value), wire order.
    entries: [Vec<(i64, Span)>; 2],
    /// Per record: the ranges of its entries, and its request's common record.
    records: Vec<(EntryRanges, Option<u32>)>,
    /// Per request with `commonFeatures`: the ranges of its entries.
    commons: Vec<EntryRanges>,
    /// Where the record being read began.
    open: [usize; 2],
}

impl Tensors {
    /// Empty, keeping every vector's capacity.
    pub fn clear(&mut self) {
        self.entries[0].clear();
        self.entries[1].clear();
        self.records.clear();
        self.commons.clear();
        self.open = [0, 0];
    }

    /// A record (or common record) begins.
    pub fn begin(&mut self) {
        self.open = [self.entries[0].len(), self.entries[1].len()];
    }

    fn ranges(&self) -> EntryRanges {
        [
            (self.open[0], self.entries[0].len()),
            (self.open[1], self.entries[1].len()),
        ]
    }

    /// The record begun last was one of the batch's records.
    pub fn end_record(&mut self) {
        let r = self.ranges();
        self.records.push((r, None));
    }

    /// The record begun last was a request's `commonFeatures`: its index.
    pub fn end_common(&mut self) -> u32 {
        let r = self.ranges();
        self.commons.push(r);
        (self.commons.len() - 1) as u32
    }

    /// Records `first..` belong to the request whose common record is `common`.
    pub fn set_common(&mut self, first: usize, common: u32) {
        for r in &mut self.records[first..] {
            r.1 = Some(common);
        }
    }

    /// Record `record`'s entry `id`: its own (the last, if the map repeats
    /// the key, as stock decoders keep), else its common record's.
    pub(super) fn find(&self, record: usize, sparse: bool, id: i64) -> Option<(Span, bool)> {
        let k = usize::from(sparse);
        let (own, common) = self.records.get(record)?;
        let look = |(a, b): (usize, usize)| {
            self.entries[k][a..b]
                .iter()
                .rev()
                .find(|e| e.0 == id)
                .map(|e| e.1)
        };
        if let Some(s) = look(own[k]) {
            return Some((s, false));
        }
        let c = self.commons.get((*common)? as usize)?;
        look(c[k]).map(|s| (s, true))
    }
}

/// A visitor that also keeps tensor entries.
pub(crate) struct WithTensors<'a, V> {
    inner: &'a mut V,
    tensors: &'a mut Tensors,
}

impl<'a, V> WithTensors<'a, V> {
    pub fn new(inner: &'a mut V, tensors: &'a mut Tensors) -> Self {
        WithTensors { inner, tensors }
    }
}

impl<V: Visit> Visit for WithTensors<'_, V> {
    #[inline]
    fn binary(&mut self, id: i64) {
        self.inner.binary(id)
    }
    #[inline]
    fn continuous(&mut self, id: i64, value: f64) {
        self.inner.continuous(id, value)
    }
    #[inline]
    fn discrete(&mut self, id: i64, value: i64) {
        self.inner.discrete(id, value)
    }
    #[inline]
    fn string(&mut self, id: i64, value: Span, bytes: &[u8]) {
        self.inner.string(id, value, bytes)
    }
    #[inline]
    fn sparse_begin(&mut self, kind: Kind, id: i64) -> bool {
        self.inner.sparse_begin(kind, id)
    }
    #[inline]
    fn sparse_binary(&mut self, id: i64, value: Span, bytes: &[u8]) {
        self.inner.sparse_binary(id, value, bytes)
    }
    #[inline]
    fn sparse_continuous(&mut self, id: i64, name: Span, bytes: &[u8], value: f64) {
        self.inner.sparse_continuous(id, name, bytes, value)
    }
    #[inline]
    fn end(&mut self, kind: Kind) {
        self.inner.end(kind)
    }
    fn tensor(&mut self, sparse: bool, id: i64, value: Span) {
        self.tensors.entries[usize::from(sparse)].push((id, value));
    }
}

/// An element type, as twml names it in `out_type` (`twml::getTypeName`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dtype {
    Float32,
    Float64,
    Int32,
    Int64,
    Uint8,
    Int8,
    Bool,
    String,
}

impl Dtype {
    pub fn name(self) -> &'static str {
        match self {
            Dtype::Float32 => "float32",
            Dtype::Float64 => "float64",
            Dtype::Int32 => "int32",
            Dtype::Int64 => "int64",
            Dtype::Uint8 => "uint8",
            Dtype::Int8 => "int8",
            Dtype::Bool => "bool",
            Dtype::String => "string",
        }
    }

    /// Bytes per element (0: strings, which have no fixed size).
    pub fn size(self) -> usize {
        match self {
            Dtype::Float64 | Dtype::Int64 => 8,
            Dtype::Float32 | Dtype::Int32 => 4,
            Dtype::Uint8 | Dtype::Int8 | Dtype::Bool => 1,
            Dtype::String => 0,
        }
    }

    /// The Thrift `DataType` value (thrift/tensor.thrift).
    fn of_data_type(v: i32) -> Option<Dtype> {
        Some(match v {
            0 => Dtype::Float32,
            1 => Dtype::Float64,
            2 => Dtype::Int32,
            3 => Dtype::Int64,
            4 => Dtype::Uint8,
            5 => Dtype::String,
            6 => Dtype::Int8,
            7 => Dtype::Bool,
            _ => return None,
        })
    }
}

/// twml's `out_type` when no record had the tensor.
pub(super) const UNKNOWN_TYPE: &str = "Unknown type";

/// One parsed `GeneralTensor`.
#[derive(Debug)]
pub(crate) struct Tensor<'m> {
    /// The union's variant, e.g. `floatTensor`.
    pub variant: &'static str,
    pub dtype: Dtype,
    /// The typed variants' lists are big-endian on the wire; raw content is
    /// little-endian.
    pub big_endian: bool,
    /// As sent, or `[elements]` when absent or empty (twml's rule).
    pub shape: Vec<i64>,
    /// Fixed-size elements: their bytes as on the wire.
    pub bytes: &'m [u8],
    /// String elements.
    pub strings: Vec<&'m [u8]>,
}

impl Tensor<'_> {
    pub(super) fn describe(&self) -> String {
        let order = if self.dtype.size() <= 1 || self.dtype == Dtype::String {
            ""
        } else if self.big_endian {
            " big-endian"
        } else {
            " little-endian"
        };
        let article = if self.variant.starts_with(['a', 'e', 'i', 'o', 'u']) {
            "an"
        } else {
            "a"
        };
        format!(
            "{article} {} of {}{order}, shape {:?}",
            self.variant,
            self.dtype.name(),
            self.shape
        )
    }

    pub(super) fn elements(&self) -> usize {
        if self.dtype == Dtype::String {
            self.strings.len()
        } else {
            self.bytes.len() / self.dtype.size()
        }
    }
}

/// A list<i64> shape; every dimension must be >= 0.
pub(super) fn shape(c: &mut Cursor<'_>, what: &dyn fmt::Display) -> R<Vec<i64>> {
    let at = c.at;
    let n = c.list(ttype::I64, what, "list<i64>")?;
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        let d = c.i64(what)?;
        if d < 0 {
            return c.fail(at, format_args!("{what} has a negative dimension {d}"));
        }
        v.push(d);
    }
    Ok(v)
}

/// The shape of `n` elements: `given`, which must hold exactly `n`, or `[n]`.
fn resolve(
    c: &Cursor<'_>,
    at: usize,
    given: Option<Vec<i64>>,
    n: usize,
    what: &dyn fmt::Display,
) -> R<Vec<i64>> {
    match given {
        Some(s) if !s.is_empty() => {
            let holds = s.iter().try_fold(1u64, |p, &d| p.checked_mul(d as u64));
            if holds != Some(n as u64) {
                return c.fail(
                    at,
                    format_args!(
                        "{what} has shape {s:?}, which holds {} elements, but {n} elements were sent",
                        holds.map_or("more than 2^64".to_string(), |h| h.to_string())
                    ),
                );
            }
            Ok(s)
        }
        _ => Ok(vec![n as i64]),
    }
}

/// Thrift element type and size of each typed variant.
fn typed_variant(id: i16) -> Option<(&'static str, u8, Dtype)> {
    Some(match id {
        2 => ("stringTensor", ttype::STRING, Dtype::String),
        3 => ("int32Tensor", ttype::I32, Dtype::Int32),
        4 => ("int64Tensor", ttype::I64, Dtype::Int64),
        // twml: both are lists of doubles, read as float64.
        5 => ("floatTensor", ttype::DOUBLE, Dtype::Float64),
        6 => ("doubleTensor", ttype::DOUBLE, Dtype::Float64),
        7 => ("boolTensor", ttype::BOOL, Dtype::Bool),
        8 => ("binaryTensor", ttype::STRING, Dtype::String),
        _ => return None,
    })
}

/// One of the typed variants (`{1: list<T> values, 2: optional list<i64> shape}`).
fn typed<'m>(
    c: &mut Cursor<'m>,
    data: &'m [u8],
    id: i16,
    what: &dyn fmt::Display,
) -> R<Tensor<'m>> {
    let (variant, elem, dtype) = typed_variant(id).expect("a typed variant");
    let begin = c.at;
    let what = format_args!("{what} ({variant})");
    let (mut values, mut dims) = (None, None);
    while let Some((t, f, at)) = c.field(&what)? {
        match f {
            1 => {
                if t != ttype::LIST {
                    return c.wrong_type(at, &what, "list of values", t);
                }
                let want = match elem {
                    ttype::STRING => "list<string>",
                    ttype::I32 => "list<i32>",
                    ttype::I64 => "list<i64>",
                    ttype::DOUBLE => "list<double>",
                    _ => "list<bool>",
                };
                let n = c.list(elem, &what, want)?;
                if elem == ttype::STRING {
                    let mut v = Vec::with_capacity(n);
                    for _ in 0..n {
                        v.push(c.string(false, &what)?);
                    }
                    values = Some((&data[0..0], v));
                } else {
                    // `list` checked n elements of this fixed size are left.
                    let start = c.at;
                    c.at += n * dtype.size();
                    values = Some((&data[start..c.at], Vec::new()));
                }
            }
            2 => {
                if t != ttype::LIST {
                    return c.wrong_type(at, &what, "list<i64> shape", t);
                }
                dims = Some(shape(c, &format_args!("{what}.shape"))?);
            }
            _ => c.skip(t, at, &what)?,
        }
    }
    let Some((bytes, spans)) = values else {
        return c.fail(
            begin,
            format_args!("{what} has no values (field 1, required)"),
        );
    };
    let strings: Vec<&[u8]> = spans
        .iter()
        .map(|s| &data[s.start..s.start + s.len as usize])
        .collect();
    let n = if dtype == Dtype::String {
        strings.len()
    } else {
        bytes.len() / dtype.size()
    };
    let shape = resolve(c, begin, dims, n, &what)?;
    Ok(Tensor {
        variant,
        dtype,
        big_endian: true,
        shape,
        bytes,
        strings,
    })
}

/// `RawTypedTensor {1: DataType dataType, 2: binary content, 3: optional list<i64> shape}`.
fn raw<'m>(c: &mut Cursor<'m>, data: &'m [u8], what: &dyn fmt::Display) -> R<Tensor<'m>> {
    let begin = c.at;
    let what = format_args!("{what} (rawTypedTensor)");
    let (mut dtype, mut content, mut dims) = (None, None, None);
    while let Some((t, f, at)) = c.field(&what)? {
        match f {
            1 => {
                if t != ttype::I32 {
                    return c.wrong_type(at, &what, "DataType (i32)", t);
                }
                let v = c.i32(&what)?;
                let Some(d) = Dtype::of_data_type(v) else {
                    return c.fail(
                        at,
                        format_args!(
                            "{what} has dataType {v}, which is no DataType (0 FLOAT .. 7 BOOL)"
                        ),
                    );
                };
                dtype = Some(d);
            }
            2 => {
                if t != ttype::STRING {
                    return c.wrong_type(at, &what, "binary content", t);
                }
                content = Some((c.string(false, &what)?, at));
            }
            3 => {
                if t != ttype::LIST {
                    return c.wrong_type(at, &what, "list<i64> shape", t);
                }
                dims = Some(shape(c, &format_args!("{what}.shape"))?);
            }
            _ => c.skip(t, at, &what)?,
        }
    }
    let (Some(dtype), Some((content, content_at))) = (dtype, content) else {
        return c.fail(
            begin,
            format_args!("{what} needs dataType (field 1) and content (field 2), both required"),
        );
    };
    let bytes = &data[content.start..content.start + content.len as usize];
    let mut strings = Vec::new();
    let n = if dtype == Dtype::String {
        // twml's layout: the strings one after another, each an i32 length
        // (big-endian) and its bytes.
        let mut at = 0;
        while at < bytes.len() {
            let len = bytes
                .get(at..at + 4)
                .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]));
            let Some(len) = len
                .and_then(|l| usize::try_from(l).ok())
                .filter(|&l| l <= bytes.len() - at - 4)
            else {
                return c.fail(
                    content.start + at,
                    format_args!(
                        "{what}: STRING content must be strings, each an i32 length and its bytes; \
                         the string at content byte {at} overruns the content's {} bytes",
                        bytes.len()
                    ),
                );
            };
            strings.push(&bytes[at + 4..at + 4 + len]);
            at += 4 + len;
        }
        strings.len()
    } else {
        if !bytes.len().is_multiple_of(dtype.size()) {
            return c.fail(
                content_at,
                format_args!(
                    "{what}: {} bytes of content are no whole number of {}-byte {} elements",
                    bytes.len(),
                    dtype.size(),
                    dtype.name()
                ),
            );
        }
        bytes.len() / dtype.size()
    };
    let shape = resolve(c, begin, dims, n, &what)?;
    Ok(Tensor {
        variant: "rawTypedTensor",
        dtype,
        big_endian: false,
        shape,
        bytes: if dtype == Dtype::String {
            &data[0..0]
        } else {
            bytes
        },
        strings,
    })
}

/// A `GeneralTensor` union at the cursor: exactly one variant.
pub(super) fn general<'m>(
    c: &mut Cursor<'m>,
    data: &'m [u8],
    what: &dyn fmt::Display,
) -> R<Tensor<'m>> {
    let begin = c.at;
    let mut out = None;
    while let Some((t, id, at)) = c.field(what)? {
        if !(1..=8).contains(&id) {
            return c.fail(
                at,
                format_args!(
                    "{what} is a GeneralTensor with field {id}, which is no variant of the union \
                     (1 rawTypedTensor .. 8 binaryTensor)"
                ),
            );
        }
        if t != ttype::STRUCT {
            return c.wrong_type(at, what, "struct (a GeneralTensor variant)", t);
        }
        if out.is_some() {
            return c.fail(
                at,
                format_args!("{what} is a GeneralTensor union with more than one field set"),
            );
        }
        out = Some(if id == 1 {
            raw(c, data, what)?
        } else {
            typed(c, data, id, what)?
        });
    }
    match out {
        Some(t) => Ok(t),
        None => c.fail(
            begin,
            format_args!("{what} is a GeneralTensor with no variant set"),
        ),
    }
}

/// One parsed `SparseTensor` (its `cooSparseTensor`).
#[derive(Debug)]
pub(super) struct Sparse<'m> {
    pub(super) dense_shape: Vec<i64>,
    /// Row-major `[rank, n]`: the index along each dimension of each value.
    pub(super) indices: Vec<i64>,
    pub(super) values: Tensor<'m>,
}

pub(super) fn sparse<'m>(
    c: &mut Cursor<'m>,
    data: &'m [u8],
    what: &dyn fmt::Display,
) -> R<Sparse<'m>> {
    let begin = c.at;
    let mut coo = None;
    while let Some((t, id, at)) = c.field(what)? {
        if id != 1 {
            return c.fail(
                at,
                format_args!("{what} is a SparseTensor with field {id}; the union has only cooSparseTensor (1)"),
            );
        }
        if t != ttype::STRUCT {
            return c.wrong_type(at, what, "COOSparseTensor struct", t);
        }
        coo = Some(coo_tensor(
            c,
            data,
            &format_args!("{what}.cooSparseTensor"),
        )?);
    }
    match coo {
        Some(s) => Ok(s),
        None => c.fail(
            begin,
            format_args!("{what} is a SparseTensor with no variant set"),
        ),
    }
}

fn coo_tensor<'m>(c: &mut Cursor<'m>, data: &'m [u8], what: &dyn fmt::Display) -> R<Sparse<'m>> {
    let begin = c.at;
    let (mut dense, mut indices, mut values) = (None, None, None);
    while let Some((t, id, at)) = c.field(what)? {
        match id {
            1 => {
                if t != ttype::LIST {
                    return c.wrong_type(at, what, "list<i64> denseShape", t);
                }
                dense = Some(shape(c, &format_args!("{what}.denseShape"))?);
            }
            2 => {
                if t != ttype::STRUCT {
                    return c.wrong_type(at, what, "struct (indices)", t);
                }
                // twml (and Twitter's IDL) send an Int64Tensor here; this
                // repository's IDL says GeneralTensor. The first field tells
                // which: a list is Int64Tensor.longs, a struct a union variant.
                let w = format_args!("{what}.indices");
                let peek = c.at;
                let first = c.field(&w)?;
                c.at = peek;
                let t = match first {
                    Some((ttype::LIST, 1, _)) => typed(c, data, 4, &w)?,
                    _ => general(c, data, &w)?,
                };
                if t.dtype != Dtype::Int64 {
                    return c.fail(
                        at,
                        format_args!("{w} must be int64, found {}", t.describe()),
                    );
                }
                indices = Some((t, at));
            }
            3 => {
                if t != ttype::STRUCT {
                    return c.wrong_type(at, what, "GeneralTensor values", t);
                }
                values = Some((general(c, data, &format_args!("{what}.values"))?, at));
            }
            _ => c.skip(t, at, what)?,
        }
    }
    let (Some(dense_shape), Some((it, iat)), Some((values, vat))) = (dense, indices, values) else {
        return c.fail(
            begin,
            format_args!("{what} needs denseShape (1), indices (2) and values (3), all required"),
        );
    };
    if values.dtype == Dtype::String {
        return c.fail(
            vat,
            format_args!(
                "{what}.values is {}; sparse values must be numbers or bools",
                values.describe()
            ),
        );
    }
    let rank = dense_shape.len();
    if rank == 0 {
        return c.fail(
            begin,
            format_args!("{what}.denseShape is empty; a sparse tensor has rank 1 or more"),
        );
    }
    let n = values.elements();
    let layout_ok = (rank == 1 && it.shape == [n as i64]) || it.shape == [rank as i64, n as i64];
    if !layout_ok {
        return c.fail(
            iat,
            format_args!(
                "{what}.indices has shape {:?}; with {n} values and denseShape {dense_shape:?} \
                 it must be [{rank}, {n}] (row d: each value's index along dimension d{})",
                it.shape,
                if rank == 1 {
                    format!(", or [{n}]")
                } else {
                    String::new()
                }
            ),
        );
    }
    let indices: Vec<i64> = it
        .bytes
        .chunks_exact(8)
        .map(|b| {
            let a = [b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]];
            if it.big_endian {
                i64::from_be_bytes(a)
            } else {
                i64::from_le_bytes(a)
            }
        })
        .collect();
    for (k, &x) in indices.iter().enumerate() {
        let (d, v) = (k / n.max(1), k % n.max(1));
        if x < 0 || x >= dense_shape[d] {
            return c.fail(
                iat,
                format_args!(
                    "{what}.indices: value {v} has index {x} along dimension {d}, outside \
                     [0, {}) of denseShape {dense_shape:?}",
                    dense_shape[d]
                ),
            );
        }
    }
    Ok(Sparse {
        dense_shape,
        indices,
        values,
    })
}
