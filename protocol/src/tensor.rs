//! `BatchPredictionTensorResponseWriter`: one `tensors` map per example.
//!
//! Record i maps `keys[j]` to a `GeneralTensor` holding row i of `values[j]`:
//! a `rawTypedTensor` (little-endian content) for numbers and bools, a
//! `stringTensor` for strings. Every row of a column shares its framing, so
//! the bytes before and after the row data are built once per column.

use crate::error::{Error, Result, Shape};
use crate::input::{check_keys, DType, Data, Tensor};
use crate::parallel::{sharded, Runner, Serial};
use crate::widen;
use crate::wire::{self, data_type, field, ttype, Sink, FIELD_HEADER, LIST_HEADER, STOP};
use std::ops::Range;
use std::sync::{Arc, Mutex};

/// Bytes of records written together before moving on (about an L1 cache).
const BLOCK_BYTES: usize = 32 << 10;

/// The longest record written from a template. A template is one record's
/// bytes, kept with the frame: for longer records (rows of megabytes) it
/// would cost as much memory as a record of the output, or with a batch of
/// 0 gigabytes for nothing, so they are written entry by entry instead, and
/// sharded the same way.
const TEMPLATE_MAX: usize = 1 << 20;

/// `0C 0001` + dataType field + content field header and length.
const RAW_PREFIX: usize = FIELD_HEADER + (FIELD_HEADER + 4) + (FIELD_HEADER + 4);
/// `0C 0002` + strings field header and list header.
const STRING_PREFIX: usize = FIELD_HEADER + FIELD_HEADER + LIST_HEADER;

#[derive(Clone, Copy)]
enum Rows {
    /// Fixed-size rows: `content` bytes each.
    Raw { content: usize },
    /// Variable-size rows of `per_row` strings each.
    Str { per_row: usize },
}

/// One key and what every row of its tensor shares: dtype, row shape and
/// framing. Nothing here depends on the values or the batch size.
struct Column {
    dtype: DType,
    /// The tensor's dims after the batch dim.
    row_dims: Vec<i64>,
    elements_per_row: usize,
    rows: Rows,
    /// The map key and the framing up to the row data (a range of
    /// `Frame::framing`): one copy per entry.
    head: Range<usize>,
    /// The shape list, the payload struct's STOP and the union's STOP (a
    /// range of `Frame::framing`).
    suffix: Range<usize>,
}

/// Fixed-size records (no string column): one record's bytes with every
/// column's content left zero, and where each content starts in it.
struct Record {
    len: usize,
    template: Vec<u8>,
    offsets: Vec<usize>,
    /// The template as gaps and contents, for the record loops that write
    /// each record front to back; None where they do not apply.
    pieces: Option<Pieces>,
}

/// Everything of a call that depends only on the keys and on each values
/// tensor's dtype and row shape: validated and built once, then shared by
/// every call with the same keys, dtypes and row shapes ([`TensorPlanCache`]).
struct Frame {
    keys: Vec<i64>,
    columns: Vec<Column>,
    /// Every column's head and suffix, back to back.
    framing: Vec<u8>,
    /// Bytes of every record whatever its values: the record's own framing,
    /// each entry's framing and, for raw rows, their content; strings add
    /// 4 bytes each for their length here, and their bytes per call.
    fixed_per_record: usize,
    /// Every column has fixed-size rows, so every record has
    /// `fixed_per_record` bytes and they can be written in shards.
    fixed_size: bool,
    /// Set when every column has fixed-size rows and a record is at most
    /// TEMPLATE_MAX bytes.
    record: Option<Record>,
}

impl Frame {
    /// Whether a call with these inputs has this frame (it needs no checks
    /// beyond those that depend on the batch and the values).
    fn fits(&self, keys: &Tensor<'_>, values: &[Tensor<'_>]) -> bool {
        let Data::I64(ids) = keys.data() else {
            return false;
        };
        keys.rank() == 1
            && ids == self.keys.as_slice()
            && values.len() == self.columns.len()
            && values.iter().zip(&self.columns).all(|(t, c)| {
                t.dtype() == c.dtype
                    && t.dims()
                        .split_first()
                        .is_some_and(|(_, row)| row == c.row_dims.as_slice())
            })
    }
}

/// A call: its frame, the values it writes, its batch and exact size.
struct Layout<'a> {
    batch: usize,
    frame: Arc<Frame>,
    data: Vec<Data<'a>>,
    total: usize,
}

/// Appends `n` zero bytes to `framing` and returns their range.
fn reserve(framing: &mut Vec<u8>, n: usize) -> Range<usize> {
    let start = framing.len();
    framing.resize(start + n, 0);
    start..start + n
}

fn described(j: usize, key: i64, t: &Tensor<'_>) -> String {
    format!(
        "values[{j}] (key {key}, {}, shape {})",
        t.dtype(),
        Shape(t.dims())
    )
}

/// Checks the keys and that every values tensor has rank >= 1 and the same
/// batch size; returns the keys and the batch size.
fn check_call<'a>(keys: &Tensor<'a>, values: &[Tensor<'a>]) -> Result<(&'a [i64], usize)> {
    let ids = check_keys(keys)?;
    if ids.is_empty() {
        return Err(Error::invalid(format!(
            "keys is empty (shape {}): at least one key, with one values tensor per key, is required",
            Shape(keys.dims())
        )));
    }
    if values.len() != ids.len() {
        return Err(Error::invalid(format!(
            "keys has {} entries but {} values tensors were given; one values tensor per key is expected",
            ids.len(),
            values.len()
        )));
    }
    let batch = check_batch(ids, values)?;
    Ok((ids, batch))
}

/// The batch size every values tensor shares, checked against the Thrift
/// list limit.
fn check_batch(ids: &[i64], values: &[Tensor<'_>]) -> Result<usize> {
    let mut batch = None;
    for (j, (t, &key)) in values.iter().zip(ids).enumerate() {
        let Some(&b) = t.dims().first() else {
            return Err(Error::invalid(format!(
                "{} is a scalar; every values tensor needs rank >= 1 with the batch in dim 0",
                described(j, key, t)
            )));
        };
        match batch {
            None => batch = Some((b, j)),
            Some((b0, j0)) if b0 != b => {
                return Err(Error::invalid(format!(
                    "{} has batch size {b} but {} has batch size {b0}; all values tensors must share dim 0",
                    described(j, key, t),
                    described(j0, ids[j0], &values[j0])
                )))
            }
            Some(_) => {}
        }
    }
    let (b, _) = batch.expect("at least one values tensor");
    let batch = b as usize;
    if batch > wire::MAX_COUNT {
        return Err(Error::invalid(format!(
            "{}: a batch of {batch} records is over the Thrift list limit of {}",
            described(0, ids[0], &values[0]),
            wire::MAX_COUNT
        )));
    }
    Ok(batch)
}

fn too_large() -> Error {
    Error::invalid("the response would not fit in memory")
}

/// Builds the frame of a call whose keys and batch `check_call` accepted:
/// every check that depends on the dtypes and row shapes only.
fn frame(ids: &[i64], values: &[Tensor<'_>]) -> Result<Frame> {
    let mut fixed_per_record = wire::RECORD_OVERHEAD;
    let mut columns = Vec::with_capacity(values.len());
    // Heads and suffixes of rank <= 4 rows fit without growing.
    let mut framing = Vec::with_capacity(values.len() * 96);
    for (j, (t, &key)) in values.iter().zip(ids).enumerate() {
        let row_dims = &t.dims()[1..];
        // Checked even though Tensor::new checked the product of all dims: with
        // a batch of 0 that product is 0 whatever the row dims are.
        let elements_per_row = row_dims
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d as usize))
            .ok_or_else(|| {
                Error::invalid(format!(
                    "{}: the row shape {} has more elements than fit in memory",
                    described(j, key, t),
                    Shape(row_dims)
                ))
            })?;
        let (prefix, rows) = match t.dtype() {
            DType::Str => {
                if elements_per_row > wire::MAX_COUNT {
                    return Err(Error::invalid(format!(
                        "{}: a row holds {elements_per_row} strings, over the Thrift list limit of {}",
                        described(j, key, t),
                        wire::MAX_COUNT
                    )));
                }
                let prefix = reserve(&mut framing, 8 + STRING_PREFIX);
                let mut w = Sink::new(&mut framing[prefix.clone()]);
                w.i64(key);
                w.field(ttype::STRUCT, field::GENERAL_STRING_TENSOR);
                w.field(ttype::LIST, field::STRING_STRINGS);
                w.list_header(ttype::STRING, elements_per_row);
                let rows = Rows::Str {
                    per_row: elements_per_row,
                };
                (prefix, rows)
            }
            dtype => {
                let (code, width) = raw_type(dtype);
                let content = elements_per_row
                    .checked_mul(width)
                    .filter(|&n| n <= wire::MAX_COUNT)
                    .ok_or_else(|| {
                        Error::invalid(format!(
                            "{}: a row holds {elements_per_row} elements of {width} bytes, over the \
                             Thrift binary limit of {} bytes",
                            described(j, key, t),
                            wire::MAX_COUNT
                        ))
                    })?;
                let prefix = reserve(&mut framing, 8 + RAW_PREFIX);
                let mut w = Sink::new(&mut framing[prefix.clone()]);
                w.i64(key);
                w.field(ttype::STRUCT, field::GENERAL_RAW_TYPED_TENSOR);
                w.field(ttype::I32, field::RAW_DATA_TYPE);
                w.i32(code);
                w.field(ttype::STRING, field::RAW_CONTENT);
                w.count(content);
                (prefix, Rows::Raw { content })
            }
        };
        let suffix = reserve(
            &mut framing,
            FIELD_HEADER + LIST_HEADER + 8 * row_dims.len() + 2 * STOP,
        );
        let mut w = Sink::new(&mut framing[suffix.clone()]);
        let shape_field = match rows {
            Rows::Raw { .. } => field::RAW_SHAPE,
            Rows::Str { .. } => field::STRING_SHAPE,
        };
        w.field(ttype::LIST, shape_field);
        w.i64_list(row_dims);
        w.stop(); // the payload struct
        w.stop(); // the GeneralTensor union

        // Fixed part of every entry: key, framing, and for raw rows the content.
        let fixed = prefix.len() + suffix.len();
        let entry = match rows {
            Rows::Raw { content } => fixed + content,
            Rows::Str { per_row } => per_row
                .checked_mul(4)
                .and_then(|n| n.checked_add(fixed))
                .ok_or_else(too_large)?,
        };
        fixed_per_record = fixed_per_record.checked_add(entry).ok_or_else(too_large)?;
        columns.push(Column {
            dtype: t.dtype(),
            row_dims: row_dims.to_vec(),
            elements_per_row,
            rows,
            head: prefix,
            suffix,
        });
    }
    let columns_are_raw = columns.iter().all(|c| matches!(c.rows, Rows::Raw { .. }));
    let mut frame = Frame {
        keys: ids.to_vec(),
        columns,
        framing,
        fixed_per_record,
        fixed_size: columns_are_raw,
        record: None,
    };
    if frame.fixed_size && fixed_per_record <= TEMPLATE_MAX {
        let (template, offsets) = template(&frame, fixed_per_record);
        frame.record = Some(Record {
            len: fixed_per_record,
            pieces: Pieces::new(&frame.columns, &template, &offsets),
            template,
            offsets,
        });
    }
    Ok(frame)
}

/// The call's exact size and its values, on `frame`: the checks that depend
/// on the batch and on the strings' lengths.
fn bind<'a>(frame: Arc<Frame>, batch: usize, values: &[Tensor<'a>]) -> Result<Layout<'a>> {
    let mut total = frame
        .fixed_per_record
        .checked_mul(batch)
        .and_then(|n| n.checked_add(wire::RESPONSE_OVERHEAD))
        .ok_or_else(too_large)?;
    let mut data = Vec::with_capacity(values.len());
    for (j, ((t, c), &key)) in values
        .iter()
        .zip(&frame.columns)
        .zip(&frame.keys)
        .enumerate()
    {
        if let (Data::Str(strings), Rows::Str { per_row }) = (t.data(), c.rows) {
            for index in 0..strings.len() {
                let len = strings.get(index).len();
                if len > wire::MAX_COUNT {
                    let row = index / per_row;
                    return Err(Error::invalid(format!(
                        "{}: string {} of row {row} is {len} bytes, over the Thrift string limit of {} bytes",
                        described(j, key, t),
                        index - row * per_row,
                        wire::MAX_COUNT
                    )));
                }
                total = total.checked_add(len).ok_or_else(too_large)?;
            }
        }
        data.push(t.data());
    }
    Ok(Layout {
        batch,
        frame,
        data,
        total,
    })
}

fn layout<'a>(keys: &Tensor<'a>, values: &[Tensor<'a>]) -> Result<Layout<'a>> {
    let (ids, batch) = check_call(keys, values)?;
    let frame = Arc::new(frame(ids, values)?);
    bind(frame, batch, values)
}

/// Keeps the frame of a tensor writer's last call (its framing, the record
/// template and the AVX2 writer's pieces: what depends on the keys, dtypes
/// and row shapes only) and reuses it while a call has the same keys,
/// dtypes and row shapes, so that such a call validates only its batch size
/// and strings and builds nothing. Any other call builds and keeps its own.
///
/// For a host that calls the writer repeatedly with the same kind of
/// inputs: the TensorFlow kernel owns one per kernel instance. Thread-safe:
/// one kernel's calls may run concurrently (they share the frame, which is
/// never changed once built).
#[derive(Default)]
pub struct TensorPlanCache {
    last: Mutex<Option<Arc<Frame>>>,
}

impl TensorPlanCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// [`plan_tensor_response`], reusing the last frame when it fits: the
    /// same plan, so the same bytes and the same errors.
    pub fn plan<'a>(&self, keys: &Tensor<'a>, values: &[Tensor<'a>]) -> Result<TensorPlan<'a>> {
        // A poisoned lock only means a panic elsewhere while the Option was
        // being swapped: the value is still a whole frame or none.
        let last = self.last.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(frame) = last.filter(|f| f.fits(keys, values)) {
            // The keys and row shapes are the frame's, checked when it was
            // built; the batch and the strings are this call's. Any error
            // is reported by the full checks below, as a fresh call would.
            if let Ok(batch) = check_batch(&frame.keys, values) {
                if let Ok(layout) = bind(frame, batch, values) {
                    return Ok(TensorPlan { layout });
                }
            }
        }
        let (ids, batch) = check_call(keys, values)?;
        let frame = Arc::new(frame(ids, values)?);
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::clone(&frame));
        Ok(TensorPlan {
            layout: bind(frame, batch, values)?,
        })
    }
}

/// Thrift `DataType` and bytes per element written for a numeric dtype.
fn raw_type(dtype: DType) -> (i32, usize) {
    match dtype {
        DType::F32 | DType::F16 | DType::BF16 => (data_type::FLOAT, 4),
        DType::F64 => (data_type::DOUBLE, 8),
        DType::I32 => (data_type::INT32, 4),
        DType::I64 => (data_type::INT64, 8),
        DType::U8 => (data_type::UINT8, 1),
        DType::I8 => (data_type::BYTE, 1),
        DType::Bool => (data_type::BOOL, 1),
        DType::Str => unreachable!("strings are written as stringTensor"),
    }
}

/// A validated call of the tensor writer: its inputs checked once, its exact
/// size known, ready to write into a buffer of that size.
///
/// A host that allocates the output itself (the TensorFlow kernel) plans,
/// allocates [`TensorPlan::size`] bytes and writes, validating once.
pub struct TensorPlan<'a> {
    layout: Layout<'a>,
}

/// Validates the inputs of the tensor writer and computes its output size.
pub fn plan_tensor_response<'a>(
    keys: &Tensor<'a>,
    values: &[Tensor<'a>],
) -> Result<TensorPlan<'a>> {
    Ok(TensorPlan {
        layout: layout(keys, values)?,
    })
}

impl TensorPlan<'_> {
    /// The exact number of bytes [`TensorPlan::write`] writes.
    pub fn size(&self) -> usize {
        self.layout.total
    }

    /// Writes the response into `out`, which must be exactly [`TensorPlan::size`]
    /// bytes, in shards on `runner` when it is large and no column holds strings
    /// (whose rows differ in size).
    pub fn write(&self, out: &mut [u8], runner: &dyn Runner) -> Result<()> {
        self.write_with(out, runner, &|body, record| {
            write_fixed_records(&self.layout, record, body, runner)
        })
    }

    /// [`TensorPlan::write`] with AVX2 instructions for responses whose
    /// columns all hold numbers or bools copied as they are (not f16/bf16,
    /// which are widened) with at least 32 bytes per row: the same bytes,
    /// each record written front to back in 32-byte moves instead of a
    /// template copy and a `memcpy` per column.
    ///
    /// # Safety
    ///
    /// Like every `#[target_feature]` function it may only run on a CPU that
    /// has the feature, so calling it from code not itself compiled for AVX2
    /// is `unsafe`: check `is_x86_feature_detected!("avx2")` first.
    /// Nothing else is required; the function itself contains no unsafe
    /// code. (The TensorFlow op runs the same stores through raw pointers,
    /// with [`TensorPlan::write_fixed_with`], which saves the bounds checks.)
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    pub fn write_avx2(&self, out: &mut [u8], runner: &dyn Runner) -> Result<()> {
        self.write_fixed_with(out, runner, &|records, first, shard, count| {
            avx2::records(records, first, shard, count)
        })
    }

    /// [`TensorPlan::write`], with the records of a response whose columns
    /// all hold numbers or bools copied as they are, with at least 32 bytes
    /// per row (what [`FixedRecords`] describes), written by `records`:
    /// `records(r, first, shard, count)` writes records `first..first + count`
    /// of the response at the start of `shard`, which holds at least one
    /// more record after them, each record front to back as `r` lays it out.
    /// That next record is written afterwards, so stores may run up to 63
    /// bytes past the last of the `count` (and it is written here exactly,
    /// so no store leaves the output). Any other response is written as
    /// [`TensorPlan::write`] writes it, without `records`.
    ///
    /// For a host with its own store loop (the TensorFlow op library's raw
    /// pointers): the framing, the checks and the sharding stay here.
    pub fn write_fixed_with(
        &self,
        out: &mut [u8],
        runner: &dyn Runner,
        records: &RecordLoop<'_>,
    ) -> Result<()> {
        let l = &self.layout;
        self.write_with(out, runner, &|body, record| {
            let Some(pieces) = &record.pieces else {
                return write_fixed_records(l, record, body, runner);
            };
            let fixed = FixedRecords {
                len: record.len,
                gaps: &pieces.gaps,
                contents: &pieces.contents,
                data: &l.data,
            };
            sharded(body, record.len, runner, &|first, shard| {
                let n = shard.len() / record.len;
                let Some(last) = n.checked_sub(1) else { return };
                records(&fixed, first, shard, last);
                let exact = &mut shard[last * record.len..];
                fill_records(l, record, first + last, exact);
            })
        })
    }

    /// The framing and checks of both writers; `fixed` writes the records
    /// when every column has fixed-size rows.
    fn write_with(
        &self,
        out: &mut [u8],
        runner: &dyn Runner,
        fixed: &dyn Fn(&mut [u8], &Record) -> Result<()>,
    ) -> Result<()> {
        let l = &self.layout;
        if out.len() != l.total {
            return Err(Error::internal(format!(
                "output buffer is {} bytes, the response needs {}",
                out.len(),
                l.total
            )));
        }
        let mut sink = Sink::new(out);
        sink.response_begin(l.batch);
        if let Some(record) = &l.frame.record {
            if l.batch > 0 {
                fixed(sink.take(l.batch * record.len), record)?;
            }
        } else if l.frame.fixed_size {
            let len = l.frame.fixed_per_record;
            sharded(sink.take(l.batch * len), len, runner, &|first, shard| {
                let count = shard.len() / len;
                let mut records = Sink::new(shard);
                for i in first..first + count {
                    write_record(l, i, &mut records);
                }
            })?;
        } else {
            for i in 0..l.batch {
                write_record(l, i, &mut sink);
            }
        }
        sink.stop();
        if sink.position() != l.total {
            return Err(Error::internal(format!(
                "wrote {} bytes, the layout said {} (a string tensor changed during the call?)",
                sink.position(),
                l.total
            )));
        }
        Ok(())
    }
}

/// The exact number of bytes [`write_tensor_response`] writes for these inputs.
pub fn tensor_response_size(keys: &Tensor<'_>, values: &[Tensor<'_>]) -> Result<usize> {
    layout(keys, values).map(|l| l.total)
}

/// Writes the response into `out`, which must be exactly [`tensor_response_size`] bytes.
pub fn write_tensor_response(
    keys: &Tensor<'_>,
    values: &[Tensor<'_>],
    out: &mut [u8],
) -> Result<()> {
    write_tensor_response_with(keys, values, out, &Serial)
}

/// [`write_tensor_response`], with large outputs written in shards on `runner`
/// (when no column holds strings, whose rows differ in size).
pub fn write_tensor_response_with(
    keys: &Tensor<'_>,
    values: &[Tensor<'_>],
    out: &mut [u8],
    runner: &dyn Runner,
) -> Result<()> {
    plan_tensor_response(keys, values)?.write(out, runner)
}

/// The bytes of one fixed-size record with every column's content left
/// zero, and where each column's content starts in it.
fn template(f: &Frame, record_len: usize) -> (Vec<u8>, Vec<usize>) {
    let columns = &f.columns;
    let mut template = vec![0; record_len];
    let mut offsets = Vec::with_capacity(columns.len());
    let mut t = Sink::new(&mut template);
    t.field(ttype::MAP, field::RECORD_TENSORS);
    t.map_header(ttype::I64, ttype::STRUCT, columns.len());
    for c in columns {
        let Rows::Raw { content } = c.rows else {
            unreachable!("fixed records have raw columns only")
        };
        t.bytes(&f.framing[c.head.clone()]);
        offsets.push(t.position());
        t.take(content); // filled per record
        t.bytes(&f.framing[c.suffix.clone()]);
    }
    t.stop();
    (template, offsets)
}

/// Records of equal size (no string column): the framing of one record is
/// built once (in the frame) and copied into every record, then each
/// column's content is filled in, column by column, with its dtype
/// dispatched once per column rather than once per entry.
fn write_fixed_records(
    l: &Layout<'_>,
    record: &Record,
    body: &mut [u8],
    runner: &dyn Runner,
) -> Result<()> {
    if body.is_empty() {
        return Ok(());
    }
    // Blocks of records small enough to stay in cache while every column is
    // filled in: filling a column across the whole output would stream it
    // from memory once per column.
    let per_block = (BLOCK_BYTES / record.len).max(1);
    sharded(body, record.len, runner, &|first, records| {
        for (b, block) in records.chunks_mut(per_block * record.len).enumerate() {
            fill_records(l, record, first + b * per_block, block);
        }
    })
}

/// Records `first..` into `records`: the template, then each column's rows.
fn fill_records(l: &Layout<'_>, record: &Record, first: usize, records: &mut [u8]) {
    for r in records.chunks_exact_mut(record.len) {
        r.copy_from_slice(&record.template);
    }
    for ((c, &data), &offset) in l.frame.columns.iter().zip(&l.data).zip(&record.offsets) {
        if c.elements_per_row > 0 {
            let rows = data.skip(first * c.elements_per_row);
            fill_column(rows, c.elements_per_row, records, record.len, offset);
        }
    }
}

/// Writes row i of `data` as little-endian content at `offset` of record i.
fn fill_column(data: Data<'_>, per_row: usize, body: &mut [u8], record_len: usize, offset: usize) {
    fn fill<T: Copy, const N: usize>(
        src: &[T],
        per_row: usize,
        body: &mut [u8],
        record_len: usize,
        offset: usize,
        le: impl Fn(T) -> [u8; N],
    ) {
        let records = body.chunks_exact_mut(record_len);
        for (record, row) in records.zip(src.chunks_exact(per_row)) {
            let content = &mut record[offset..offset + N * per_row];
            for (dst, &v) in content.chunks_exact_mut(N).zip(row) {
                dst.copy_from_slice(&le(v));
            }
        }
    }
    let (b, n, o) = (body, per_row, offset);
    match data {
        Data::F32(v) => fill(v, n, b, record_len, o, f32::to_le_bytes),
        Data::F64(v) => fill(v, n, b, record_len, o, f64::to_le_bytes),
        Data::I32(v) => fill(v, n, b, record_len, o, i32::to_le_bytes),
        Data::I64(v) => fill(v, n, b, record_len, o, i64::to_le_bytes),
        Data::F16(v) => fill(v, n, b, record_len, o, |x| {
            widen::f16_to_f32(x).to_le_bytes()
        }),
        Data::BF16(v) => fill(v, n, b, record_len, o, |x| {
            widen::bf16_to_f32(x).to_le_bytes()
        }),
        Data::U8(v) | Data::Bool(v) => fill(v, n, b, record_len, o, |x| [x]),
        Data::I8(v) => fill(v, n, b, record_len, o, i8::to_le_bytes),
        Data::Str(_) => unreachable!("string columns are not fixed-size"),
    }
}

/// Record `i`, entry by entry: where some column holds strings, or records
/// are too long for a template.
fn write_record(l: &Layout<'_>, i: usize, sink: &mut Sink<'_>) {
    let f = &*l.frame;
    sink.field(ttype::MAP, field::RECORD_TENSORS);
    sink.map_header(ttype::I64, ttype::STRUCT, f.columns.len());
    for (c, &data) in f.columns.iter().zip(&l.data) {
        sink.bytes(&f.framing[c.head.clone()]);
        let start = i * c.elements_per_row;
        let end = start + c.elements_per_row;
        match (c.rows, data) {
            (Rows::Str { .. }, Data::Str(strings)) => {
                for index in start..end {
                    let s = strings.get(index);
                    sink.count(s.len());
                    sink.bytes(s);
                }
            }
            (Rows::Raw { content }, data) => write_content(data, start, end, sink.take(content)),
            (Rows::Str { .. }, _) => unreachable!("a string column's data is strings"),
        }
        sink.bytes(&f.framing[c.suffix.clone()]);
    }
    sink.stop();
}

/// Encodes into a new buffer: for Rust callers and tests.
pub fn encode_tensor_response(keys: &Tensor<'_>, values: &[Tensor<'_>]) -> Result<Vec<u8>> {
    let mut out = wire::output_buffer(tensor_response_size(keys, values)?)?;
    write_tensor_response(keys, values, &mut out)?;
    Ok(out)
}

/// Elements `start..end` of `data` as little-endian bytes into `out`.
fn write_content(data: Data<'_>, start: usize, end: usize, out: &mut [u8]) {
    fn le<T: Copy, const N: usize>(src: &[T], out: &mut [u8], f: impl Fn(T) -> [u8; N]) {
        for (dst, &v) in out.chunks_exact_mut(N).zip(src) {
            dst.copy_from_slice(&f(v));
        }
    }
    match data {
        Data::F32(v) => le(&v[start..end], out, f32::to_le_bytes),
        Data::F64(v) => le(&v[start..end], out, f64::to_le_bytes),
        Data::I32(v) => le(&v[start..end], out, i32::to_le_bytes),
        Data::I64(v) => le(&v[start..end], out, i64::to_le_bytes),
        Data::F16(v) => le(&v[start..end], out, |x| widen::f16_to_f32(x).to_le_bytes()),
        Data::BF16(v) => le(&v[start..end], out, |x| widen::bf16_to_f32(x).to_le_bytes()),
        Data::U8(v) | Data::Bool(v) => out.copy_from_slice(&v[start..end]),
        Data::I8(v) => le(&v[start..end], out, i8::to_le_bytes),
        Data::Str(_) => unreachable!("strings are written by the caller"),
    }
}

/// The framing between two columns' contents (and before the first and
/// after the last), at most 64 bytes, zero-padded to 64 so that it can be
/// written with whole 32-byte stores.
pub struct Gap {
    /// The framing, then zeros.
    pub bytes: [u8; 64],
    /// Bytes of framing (at most 64).
    pub len: usize,
}

/// A record as the front-to-back loops write it: gap, content, gap, content,
/// ..., gap.
struct Pieces {
    gaps: Vec<Gap>,
    /// Content bytes per row, per column.
    contents: Vec<usize>,
}

impl Pieces {
    /// The pieces of the record `template`, or None when the front-to-back
    /// loops do not apply: a column that is widened (f16, bf16) or has rows
    /// under 32 bytes, or framing over 64 bytes between two contents (rows
    /// of rank 4 and more).
    fn new(columns: &[Column], template: &[u8], offsets: &[usize]) -> Option<Pieces> {
        let mut gaps = Vec::with_capacity(offsets.len() + 1);
        let mut contents = Vec::with_capacity(offsets.len());
        let mut at = 0;
        for (c, &offset) in columns.iter().zip(offsets) {
            let Rows::Raw { content } = c.rows else {
                return None;
            };
            if content < 32 || matches!(c.dtype, DType::F16 | DType::BF16 | DType::Str) {
                return None;
            }
            gaps.push(Gap::new(&template[at..offset])?);
            contents.push(content);
            at = offset + content;
        }
        gaps.push(Gap::new(&template[at..])?);
        Some(Pieces { gaps, contents })
    }
}

impl Gap {
    fn new(framing: &[u8]) -> Option<Gap> {
        let len = framing.len();
        if len > 64 {
            return None;
        }
        let mut bytes = [0u8; 64];
        bytes[..len].copy_from_slice(framing);
        Some(Gap { bytes, len })
    }
}

/// A host's loop over fixed-size records: `(records, first, shard, count)`
/// (see [`TensorPlan::write_fixed_with`]).
pub type RecordLoop<'f> = dyn Fn(&FixedRecords<'_, '_>, usize, &mut [u8], usize) + Sync + 'f;

/// The fixed-size records of a response, as [`TensorPlan::write_fixed_with`]
/// hands them to a host's record loop. Record i is `gaps[0]`, row i of
/// `data[0]` (`contents[0]` bytes: its values, little-endian, which on a
/// little-endian CPU are their bytes in memory), `gaps[1]`, row i of
/// `data[1]`, ..., `gaps[K]`.
pub struct FixedRecords<'p, 'a> {
    /// Bytes per record: more than 64 (every content is 32 or more and
    /// every gap holds at least a field header).
    pub len: usize,
    /// The framing around the contents: one more than there are columns.
    pub gaps: &'p [Gap],
    /// Each column's bytes per row: 32 or more, and a whole number of its
    /// elements.
    pub contents: &'p [usize],
    /// Each column's values: numbers or bools copied as they are, never
    /// f16, bf16 or strings.
    pub data: &'p [Data<'a>],
}

/// The AVX2 writer of fixed-size records: each record front to back, in
/// 32-byte moves. No `unsafe`: the intrinsics are safe inside a function
/// compiled for AVX2, and loads and stores go through arrays.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{FixedRecords, Gap};
    use crate::avx2::bytes;
    use crate::input::Data;
    use std::arch::x86_64::*;

    // The 32 bytes of a row from element `at` on, little-endian, built with
    // the `set` intrinsics from whole elements: the compiler makes each one
    // vector load (going through a byte array instead would store the
    // elements one by one and read them back in words, a store-forwarding stall).

    #[target_feature(enable = "avx2")]
    fn load_f32(row: &[f32], at: usize) -> __m256i {
        let x: &[f32; 8] = row[at..at + 8].try_into().expect("32 bytes");
        _mm256_castps_si256(_mm256_set_ps(
            x[7], x[6], x[5], x[4], x[3], x[2], x[1], x[0],
        ))
    }

    #[target_feature(enable = "avx2")]
    fn load_i32(row: &[i32], at: usize) -> __m256i {
        let x: &[i32; 8] = row[at..at + 8].try_into().expect("32 bytes");
        _mm256_set_epi32(x[7], x[6], x[5], x[4], x[3], x[2], x[1], x[0])
    }

    #[target_feature(enable = "avx2")]
    fn load_f64(row: &[f64], at: usize) -> __m256i {
        let x: &[f64; 4] = row[at..at + 4].try_into().expect("32 bytes");
        _mm256_castpd_si256(_mm256_set_pd(x[3], x[2], x[1], x[0]))
    }

    #[target_feature(enable = "avx2")]
    fn load_i64(row: &[i64], at: usize) -> __m256i {
        let x: &[i64; 4] = row[at..at + 4].try_into().expect("32 bytes");
        _mm256_set_epi64x(x[3], x[2], x[1], x[0])
    }

    #[target_feature(enable = "avx2")]
    fn load_u8(row: &[u8], at: usize) -> __m256i {
        let w = |i: usize| {
            let b: [u8; 8] = row[at + 8 * i..at + 8 * i + 8].try_into().expect("8");
            i64::from_le_bytes(b)
        };
        _mm256_set_epi64x(w(3), w(2), w(1), w(0))
    }

    #[target_feature(enable = "avx2")]
    fn load_i8(row: &[i8], at: usize) -> __m256i {
        let w = |i: usize| {
            let b: [i8; 8] = row[at + 8 * i..at + 8 * i + 8].try_into().expect("8");
            i64::from_le_bytes(b.map(|v| v as u8))
        };
        _mm256_set_epi64x(w(3), w(2), w(1), w(0))
    }

    /// Copies `content` bytes of row data into `out`: whole 32-byte moves, the
    /// last one overlapping the one before when `content` is not a multiple of 32.
    macro_rules! copy_row {
        ($out:expr, $row:expr, $content:expr, $load:ident, $size:literal) => {{
            let (out, row, content) = ($out, $row, $content);
            let mut at = 0;
            while at + 32 <= content {
                out[at..at + 32].copy_from_slice(&bytes($load(row, at / $size)));
                at += 32;
            }
            if at < content {
                let last = content - 32;
                out[last..content].copy_from_slice(&bytes($load(row, last / $size)));
            }
        }};
    }

    /// Records `first..first + count` of the response into the start of
    /// `shard`, each front to back ([`super::TensorPlan::write_fixed_with`]).
    /// A gap is written with one or two 32-byte stores that may run up to 63
    /// bytes past it, into what is written next.
    #[target_feature(enable = "avx2")]
    pub(super) fn records(r: &FixedRecords<'_, '_>, first: usize, shard: &mut [u8], count: usize) {
        let (gaps, last_gap) = r.gaps.split_at(r.contents.len());
        let last_gap = &last_gap[0];
        for i in 0..count {
            let row_index = first + i;
            let mut at = i * r.len;
            for ((gap, &data), &content) in gaps.iter().zip(r.data).zip(r.contents) {
                put_gap(shard, at, gap);
                at += gap.len;
                let out = &mut shard[at..at + content];
                let rows =
                    |size: usize| row_index * content / size..(row_index + 1) * content / size;
                match data {
                    Data::F32(v) => copy_row!(out, &v[rows(4)], content, load_f32, 4),
                    Data::F64(v) => copy_row!(out, &v[rows(8)], content, load_f64, 8),
                    Data::I32(v) => copy_row!(out, &v[rows(4)], content, load_i32, 4),
                    Data::I64(v) => copy_row!(out, &v[rows(8)], content, load_i64, 8),
                    Data::U8(v) | Data::Bool(v) => {
                        copy_row!(out, &v[rows(1)], content, load_u8, 1)
                    }
                    Data::I8(v) => copy_row!(out, &v[rows(1)], content, load_i8, 1),
                    Data::F16(_) | Data::BF16(_) | Data::Str(_) => {
                        unreachable!("Pieces::new accepts copied columns only")
                    }
                }
                at += content;
            }
            put_gap(shard, at, last_gap);
        }
    }

    /// Writes a gap at `at` with one 32-byte store, or two when it is longer.
    #[target_feature(enable = "avx2")]
    fn put_gap(shard: &mut [u8], at: usize, gap: &Gap) {
        shard[at..at + 32].copy_from_slice(&gap.bytes[..32]);
        if gap.len > 32 {
            shard[at + 32..at + 64].copy_from_slice(&gap.bytes[32..]);
        }
    }
}
