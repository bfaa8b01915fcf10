//! The record getters' work: a decoded [`Batch`] read out into a getter op's
//! outputs (dense groups, sparse features, twml's hashed rows, labels, weights,
//! request splits, sources). [`super::ops`] validates each op's attrs and calls
//! these; they only read the batch and write through [`Outputs`].

use super::batch::{mix_discrete, mix_string, Batch, IdMap, Ranges};
use super::outputs::Outputs;
use super::read::{Kind, Span, KINDS};
use crate::widen::f64_to_f32;
use crate::{feature_id_bytes, Error, Result};

/// A dense getter's default value, by the group's dtype.
#[derive(Clone, Debug)]
pub(super) enum Fill {
    Float(f32),
    Int(i64),
    Bytes(Vec<u8>),
}

/// `int64 [M + 1]`: message m's records are `splits[m]..splits[m + 1]`.
pub(super) fn request_splits(b: &Batch, out: &mut dyn Outputs) -> Result<()> {
    let splits = b.message_splits();
    let o = out.int64(0, &[splits.len()])?;
    for (o, &s) in o.iter_mut().zip(splits) {
        *o = s as i64;
    }
    Ok(())
}

/// What GetFeatureSourcesFromDataRecord says of a value.
const FROM_DEFAULT: i8 = 0;
const FROM_RECORD: i8 = 1;
const FROM_COMMON: i8 = 2;
const OTHER_KIND: i8 = 3;

/// `int8 [B, F]`: for record r and column j, where the group getter of
/// `kinds[j]` finds `ids[j]` (the order [`dense`] looks): the record's own
/// features (1), else its request's commonFeatures (2); else, if the record or
/// its commonFeatures has the id as another kind, 3 (the getter reads the
/// default: the client sent the feature as a kind the model does not read it
/// as); else 0 (absent: the default). A continuous NaN is absent, as for the
/// getters.
pub(super) fn sources(b: &Batch, ids: &[i64], kinds: &[Kind], out: &mut dyn Outputs) -> Result<()> {
    let (n, f) = (b.num_records, ids.len());
    let o = out.int8(0, &[n, f])?;
    o.fill(FROM_DEFAULT);
    if f == 0 {
        return Ok(());
    }
    let mut columns: IdMap<Vec<usize>> = IdMap::default();
    for (j, &id) in ids.iter().enumerate() {
        columns.entry(id).or_default().push(j);
    }
    for (record, (own, common)) in b.records.iter().enumerate() {
        let row = &mut o[record * f..(record + 1) * f];
        let common = common.map(|c| &b.commons[c as usize]);
        let places = std::iter::once((own, FROM_RECORD)).chain(common.map(|c| (c, FROM_COMMON)));
        for (r, code) in places {
            for kind in KINDS {
                for entry in r.of(kind) {
                    let Some(cols) = columns.get(&id_of(b, kind, entry)) else {
                        continue;
                    };
                    for &j in cols {
                        let cell = &mut row[j];
                        if kinds[j] == kind {
                            // Own before common: the first place found wins,
                            // over a mere other-kind sighting too.
                            if *cell == FROM_DEFAULT || *cell == OTHER_KIND {
                                *cell = code;
                            }
                        } else if *cell == FROM_DEFAULT {
                            *cell = OTHER_KIND;
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

/// [B, n] labels or weights; NaN (absent) becomes `default`.
pub(super) fn labels(
    out: &mut dyn Outputs,
    v: &[f32],
    b: usize,
    n: usize,
    default: f32,
) -> Result<()> {
    let o = out.float(0, &[b, n])?;
    for (o, &x) in o.iter_mut().zip(v) {
        *o = if x.is_nan() { default } else { x };
    }
    Ok(())
}

/// A row of a row getter: record, entry of the kind, and the entry's value
/// (sparse kinds: one row per value).
#[derive(Clone, Copy)]
struct At {
    record: usize,
    entry: usize,
    value: usize,
    kind: Kind,
}

/// The rows of `kind` (record by record: its common record's, then its own;
/// wire order) whose ids pass `keep`, appended to `rows`.
fn rows_of(b: &Batch, kind: Kind, keep: &dyn Fn(i64) -> bool, rows: &mut Vec<At>) {
    for (record, (own, common)) in b.records.iter().enumerate() {
        let common = common.map(|c| &b.commons[c as usize]);
        for r in common.into_iter().chain(std::iter::once(own)) {
            push_rows(b, kind, r, record, keep, rows);
        }
    }
}

fn push_rows(
    b: &Batch,
    kind: Kind,
    r: &Ranges,
    record: usize,
    keep: &dyn Fn(i64) -> bool,
    rows: &mut Vec<At>,
) {
    let f = &b.features;
    for entry in r.of(kind) {
        let at = |value| At {
            record,
            entry,
            value,
            kind,
        };
        match kind {
            Kind::SparseBinary | Kind::SparseContinuous => {
                let (id, s, e) = match kind {
                    Kind::SparseBinary => f.sparse_binary[entry],
                    _ => f.sparse_continuous[entry],
                };
                if keep(id) {
                    rows.extend((s..e).map(at));
                }
            }
            _ => {
                if keep(id_of(b, kind, entry)) {
                    rows.push(at(0));
                }
            }
        }
    }
}

fn id_of(b: &Batch, kind: Kind, entry: usize) -> i64 {
    let f = &b.features;
    match kind {
        Kind::Binary => f.binary[entry],
        Kind::Continuous => f.continuous[entry].0,
        Kind::Discrete => f.discrete[entry].0,
        Kind::String => f.strings[entry].0,
        Kind::SparseBinary => f.sparse_binary[entry].0,
        Kind::SparseContinuous => f.sparse_continuous[entry].0,
    }
}

/// The string of a row (string value, set element or map key), if it has one.
fn name_of<'m>(b: &Batch, messages: &[&'m [u8]], at: &At) -> &'m [u8] {
    let f = &b.features;
    let span: Option<Span> = match at.kind {
        Kind::String => Some(f.strings[at.entry].1),
        Kind::SparseBinary => Some(f.sparse_binary_values[at.value]),
        Kind::SparseContinuous => Some(f.sparse_continuous_values[at.value].0),
        _ => None,
    };
    span.map_or(&[], |s| s.bytes(messages))
}

/// The value of a row as a float (1 for binary, string and set rows).
fn float_of(b: &Batch, at: &At) -> f32 {
    let f = &b.features;
    match at.kind {
        Kind::Continuous => f64_to_f32(f.continuous[at.entry].1),
        Kind::SparseContinuous => f64_to_f32(f.sparse_continuous_values[at.value].1),
        _ => 1.0,
    }
}

fn ids_and_keys(out: &mut dyn Outputs, rows: &[At], keys: impl Fn(&At) -> i64) -> Result<()> {
    let t = rows.len();
    for (o, at) in out.int64(0, &[t])?.iter_mut().zip(rows) {
        *o = at.record as i64;
    }
    for (o, at) in out.int64(1, &[t])?.iter_mut().zip(rows) {
        *o = keys(at);
    }
    Ok(())
}

/// Get{Binary,...,SparseContinuous}Features: ids, keys, then the kind's
/// values and names in twml's output order.
pub(super) fn features(
    b: &Batch,
    messages: &[&[u8]],
    kind: Kind,
    out: &mut dyn Outputs,
) -> Result<()> {
    let mut rows = Vec::new();
    rows_of(b, kind, &|id| b.keep.contains_key(&id), &mut rows);
    let t = rows.len();
    ids_and_keys(out, &rows, |at| id_of(b, kind, at.entry))?;
    let names = |out: &mut dyn Outputs, index| {
        let mut it = rows.iter().map(|at| name_of(b, messages, at));
        out.strings(index, &[t], &mut it)
    };
    let floats = |out: &mut dyn Outputs, index| -> Result<()> {
        for (o, at) in out.float(index, &[t])?.iter_mut().zip(&rows) {
            *o = float_of(b, at);
        }
        Ok(())
    };
    match kind {
        Kind::Binary | Kind::Continuous => floats(out, 2),
        Kind::Discrete => {
            for (o, at) in out.int64(2, &[t])?.iter_mut().zip(&rows) {
                *o = b.features.discrete[at.entry].1;
            }
            Ok(())
        }
        Kind::String | Kind::SparseBinary => {
            names(out, 2)?;
            floats(out, 3)
        }
        Kind::SparseContinuous => {
            floats(out, 2)?;
            names(out, 3)
        }
    }
}

/// *AsTensor / *GroupAsTensor: per record and id, the record's own value,
/// else its common record's, else the default. Written straight into the
/// output, row by row: only one row's cells (F) are kept, not a B x F table
/// (issue 27: the table was the getter's largest allocation).
#[allow(clippy::too_many_arguments)]
pub(super) fn dense(
    b: &Batch,
    messages: &[&[u8]],
    kind: Kind,
    ids: &[i64],
    columns: &IdMap<usize>,
    group: bool,
    default: &Fill,
    out: &mut dyn Outputs,
) -> Result<()> {
    let (n, f) = (b.num_records, ids.len());
    let dims: &[usize] = if group { &[n, f] } else { &[n] };
    let fe = &b.features;
    let mut cols = Columns::new(b, kind, columns);
    match default {
        Fill::Float(d) => {
            let out = out.float(0, dims)?;
            if f == 0 {
                return Ok(());
            }
            // Each row: the default, then the common record's values, then
            // the record's own (which win). One write per stored value.
            for (record, row) in out.chunks_exact_mut(f).enumerate() {
                row.fill(*d);
                if kind == Kind::Continuous {
                    cols.each(record, |col, e| row[col] = f64_to_f32(fe.continuous[e].1));
                } else {
                    cols.each(record, |col, _| row[col] = 1.0);
                }
            }
        }
        Fill::Int(d) => {
            let cells = RowCells::new(cols, f);
            for (o, c) in out.int64(0, dims)?.iter_mut().zip(cells) {
                *o = c.map_or(*d, |e| fe.discrete[e].1);
            }
        }
        Fill::Bytes(d) => {
            let cells = RowCells::new(cols, f);
            let mut it = cells.map(|c| c.map_or(d.as_slice(), |e| fe.strings[e].1.bytes(messages)));
            out.strings(0, dims, &mut it)?;
        }
    }
    Ok(())
}

/// Where a record's entries of one kind go in a dense row: per entry, its
/// column (if its id is asked for). A record's entries are mostly at the
/// same places as the previous record's (clients build records alike), so
/// the column found for the entry at each place is kept with its id: an id
/// equal to the kept one costs a comparison, not a table lookup.
struct Columns<'a> {
    b: &'a Batch,
    kind: Kind,
    columns: &'a IdMap<usize>,
    /// Per place in a record's entries: the id seen there last and its column.
    own: Vec<(i64, Option<usize>)>,
}

impl<'a> Columns<'a> {
    fn new(b: &'a Batch, kind: Kind, columns: &'a IdMap<usize>) -> Self {
        Columns {
            b,
            kind,
            columns,
            own: Vec::new(),
        }
    }

    /// Calls `put(column, entry)` for each asked-for entry of `record`: its
    /// common record's first, then its own, so that its own win (ids are
    /// unique within one record's entries of a kind: the decode merged
    /// repeats). A record without ranges (a hashed handle) has none.
    fn each(&mut self, record: usize, put: impl FnMut(usize, usize)) {
        // The kind is matched once per record, not per entry.
        let f = &self.b.features;
        match self.kind {
            Kind::Binary => self.each_by(record, |e| f.binary[e], put),
            Kind::Continuous => self.each_by(record, |e| f.continuous[e].0, put),
            Kind::Discrete => self.each_by(record, |e| f.discrete[e].0, put),
            Kind::String => self.each_by(record, |e| f.strings[e].0, put),
            Kind::SparseBinary => self.each_by(record, |e| f.sparse_binary[e].0, put),
            Kind::SparseContinuous => self.each_by(record, |e| f.sparse_continuous[e].0, put),
        }
    }

    #[inline(always)]
    fn each_by(
        &mut self,
        record: usize,
        id_of: impl Fn(usize) -> i64,
        mut put: impl FnMut(usize, usize),
    ) {
        let Some((own, common)) = self.b.records.get(record) else {
            return;
        };
        let (b, kind, columns) = (self.b, self.kind, self.columns);
        if let Some(c) = common {
            for entry in b.commons[*c as usize].of(kind) {
                if let Some(&col) = columns.get(&id_of(entry)) {
                    put(col, entry);
                }
            }
        }
        let range = own.of(kind);
        if self.own.len() < range.len() {
            self.own.resize(range.len(), (0, None));
        }
        for (entry, kept) in range.zip(self.own.iter_mut()) {
            let id = id_of(entry);
            if kept.0 != id || (id == 0 && kept.1.is_none()) {
                *kept = (id, columns.get(&id).copied());
            }
            if let Some(col) = kept.1 {
                put(col, entry);
            }
        }
    }
}

/// The cells of a dense output in row-major order: per cell, the entry
/// holding its value (the record's own first, then its common record's).
/// Holds one row at a time.
struct RowCells<'a> {
    cols: Columns<'a>,
    /// The next record whose row is to be filled.
    record: usize,
    /// The current row and the next column of it to yield.
    row: Vec<Option<usize>>,
    col: usize,
}

impl<'a> RowCells<'a> {
    fn new(cols: Columns<'a>, f: usize) -> Self {
        RowCells {
            cols,
            record: 0,
            row: vec![None; f],
            col: f,
        }
    }
}

impl Iterator for RowCells<'_> {
    type Item = Option<usize>;

    fn next(&mut self) -> Option<Option<usize>> {
        if self.col == self.row.len() {
            if self.row.is_empty() || self.record == self.cols.b.num_records {
                return None;
            }
            self.row.fill(None);
            let row = &mut self.row;
            self.cols.each(self.record, |col, e| row[col] = Some(e));
            self.record += 1;
            self.col = 0;
        }
        let cell = self.row[self.col];
        self.col += 1;
        Some(cell)
    }
}

/// GetSparse{Binary,Continuous}AsTensor: the rows of one id.
pub(super) fn sparse(
    b: &Batch,
    messages: &[&[u8]],
    kind: Kind,
    id: i64,
    out: &mut dyn Outputs,
) -> Result<()> {
    let mut rows = Vec::new();
    rows_of(b, kind, &|x| x == id, &mut rows);
    let t = rows.len();
    ids_and_keys(out, &rows, |_| id)?;
    let mut names = rows.iter().map(|at| name_of(b, messages, at));
    out.strings(2, &[t], &mut names)?;
    if kind == Kind::SparseContinuous {
        for (o, at) in out.float(3, &[t])?.iter_mut().zip(&rows) {
            *o = float_of(b, at);
        }
    }
    Ok(())
}

/// GetHashedFeaturesAsSparseTensor(V2): hashed rows of a DataRecord handle.
pub(super) fn hashed_sparse(
    b: &Batch,
    messages: &[&[u8]],
    keep: &[IdMap<()>; 6],
    kept: &IdMap<i64>,
    mix_names: bool,
    out: &mut dyn Outputs,
) -> Result<()> {
    let mut rows = Vec::new();
    for (record, (own, common)) in b.records.iter().enumerate() {
        let common = common.map(|c| &b.commons[c as usize]);
        for r in common.into_iter().chain(std::iter::once(own)) {
            for kind in KINDS {
                let want = &keep[kind as usize - 1];
                let pass = |id: i64| want.contains_key(&id) && kept.contains_key(&id);
                push_rows(b, kind, r, record, &pass, &mut rows);
            }
        }
    }
    ids_and_keys(out, &rows, |at| hashed_key(b, messages, at, mix_names))?;
    for (o, at) in out.float(2, &[rows.len()])?.iter_mut().zip(&rows) {
        *o = float_of(b, at);
    }
    Ok(())
}

/// twml's hashed key of a row: the id (binary, continuous), the id mixed with
/// the value (discrete, string, sparse binary; sparse continuous with
/// `mix_names`), else the feature id of the sparse continuous entry's name.
fn hashed_key(b: &Batch, messages: &[&[u8]], at: &At, mix_names: bool) -> i64 {
    let id = id_of(b, at.kind, at.entry);
    match at.kind {
        Kind::Binary | Kind::Continuous => id,
        Kind::Discrete => mix_discrete(id, b.features.discrete[at.entry].1),
        // UTF-8 was checked by the decode.
        Kind::SparseContinuous if !mix_names => {
            feature_id_bytes(name_of(b, messages, at)).unwrap_or_default()
        }
        _ => mix_string(id, name_of(b, messages, at)),
    }
}

/// The largest `hashed_bits`: the dense shape `2**bits` must fit in an int64.
pub(super) const MAX_HASHED_BITS: i64 = 62;

/// GetSparse{Binary,Continuous}AsSparseTensor: the entries of `id` as a
/// SparseTensor [B, N] (N the most entries a record has), as
/// `tf.io.parse_example` gives a `VarLenFeature`: record r's entries (its
/// common record's, then its own, in wire order) at [r, 0], [r, 1], ...
/// Outputs: indices [T, 2], the strings (set elements or map keys) [T],
/// sparse continuous also the values [T], then dense_shape [2].
pub(super) fn sparse_tensor(
    b: &Batch,
    messages: &[&[u8]],
    kind: Kind,
    id: i64,
    out: &mut dyn Outputs,
) -> Result<()> {
    let f = &b.features;
    // Per entry of `id`: its record and its values' range. Entries, not
    // values: usually one per record.
    let mut runs: Vec<(usize, usize, usize)> = Vec::with_capacity(b.num_records);
    let (mut t, mut width) = (0usize, 0usize);
    for (record, (own, common)) in b.records.iter().enumerate() {
        let common = common.map(|c| &b.commons[c as usize]);
        let mut count = 0;
        for r in common.into_iter().chain(std::iter::once(own)) {
            for entry in r.of(kind) {
                let (eid, s, e) = match kind {
                    Kind::SparseBinary => f.sparse_binary[entry],
                    _ => f.sparse_continuous[entry],
                };
                if eid == id && e > s {
                    runs.push((record, s, e));
                    count += e - s;
                }
            }
        }
        t += count;
        width = width.max(count);
    }
    let indices = out.int64(0, &[t, 2])?;
    let (mut k, mut last, mut column) = (0, usize::MAX, 0i64);
    for &(record, s, e) in &runs {
        if record != last {
            (last, column) = (record, 0);
        }
        for _ in s..e {
            indices[k] = record as i64;
            indices[k + 1] = column;
            column += 1;
            k += 2;
        }
    }
    let shape = [b.num_records as i64, width as i64];
    match kind {
        Kind::SparseBinary => {
            let v = &f.sparse_binary_values;
            let mut names = runs
                .iter()
                .flat_map(|&(_, s, e)| v[s..e].iter().map(|s| s.bytes(messages)));
            out.strings(1, &[t], &mut names)?;
            out.int64(2, &[2])?.copy_from_slice(&shape);
        }
        _ => {
            let v = &f.sparse_continuous_values;
            let mut names = runs
                .iter()
                .flat_map(|&(_, s, e)| v[s..e].iter().map(|e| e.0.bytes(messages)));
            out.strings(1, &[t], &mut names)?;
            let values = out.float(2, &[t])?;
            for (o, e) in values
                .iter_mut()
                .zip(runs.iter().flat_map(|&(_, s, e)| &v[s..e]))
            {
                *o = f64_to_f32(e.1);
            }
            out.int64(3, &[2])?.copy_from_slice(&shape);
        }
    }
    Ok(())
}

/// GetHashedFeaturesAsSortedSparseTensor: twml's hashed input as one
/// SparseTensor [B, 2**bits] in row-major order. A record's rows are
/// gathered kind by kind (binary ... sparse continuous), in each its common
/// record's then its own in wire order; their keys keep the low `bits` bits
/// (`twml.limit_bits`), and the rows are sorted by key, rows of one key
/// keeping that order (what concatenating one V2 getter per kind and a
/// stable sort by [record, key] gave). Outputs: indices [T, 2], values
/// float [T], kinds int8 [T] (each row's DataRecord field id), dense_shape [2].
pub(super) fn hashed_sorted(
    b: &Batch,
    messages: &[&[u8]],
    keep: &[IdMap<()>; 6],
    mix_names: bool,
    bits: u32,
    out: &mut dyn Outputs,
) -> Result<()> {
    let mask = (1i64 << bits) - 1;
    let kinds: Vec<Kind> = KINDS
        .into_iter()
        .filter(|k| !keep[*k as usize - 1].is_empty())
        .collect();
    // Per row: (key, row index, record); values and kinds by row index. The
    // index makes the unstable sort of a record's rows a stable one.
    let mut rows: Vec<(i64, u32, u32)> = Vec::new();
    let mut values: Vec<f32> = Vec::new();
    let mut types: Vec<i8> = Vec::new();
    let record_limit = u32::MAX as usize;
    if b.num_records > record_limit {
        return Err(Error::invalid(format!(
            "GetHashedFeaturesAsSortedSparseTensor: {} records; at most {record_limit}",
            b.num_records
        )));
    }
    for (record, (own, common)) in b.records.iter().enumerate() {
        let first = rows.len();
        let common = common.map(|c| &b.commons[c as usize]);
        for &kind in &kinds {
            let want = &keep[kind as usize - 1];
            for r in common.into_iter().chain(std::iter::once(own)) {
                for entry in r.of(kind) {
                    let id = id_of(b, kind, entry);
                    if !want.contains_key(&id) {
                        continue;
                    }
                    let values_of = match kind {
                        Kind::SparseBinary => {
                            let (_, s, e) = b.features.sparse_binary[entry];
                            s..e
                        }
                        Kind::SparseContinuous => {
                            let (_, s, e) = b.features.sparse_continuous[entry];
                            s..e
                        }
                        _ => 0..1,
                    };
                    for value in values_of {
                        let at = At {
                            record,
                            entry,
                            value,
                            kind,
                        };
                        let key = hashed_key(b, messages, &at, mix_names) & mask;
                        let index = u32::try_from(values.len()).map_err(|_| {
                            Error::invalid(
                                "GetHashedFeaturesAsSortedSparseTensor: more than 2**32 rows"
                                    .to_string(),
                            )
                        })?;
                        rows.push((key, index, record as u32));
                        values.push(float_of(b, &at));
                        types.push(kind as i8);
                    }
                }
            }
        }
        let mine = &mut rows[first..];
        if !mine.windows(2).all(|w| w[0].0 <= w[1].0) {
            mine.sort_unstable();
        }
    }
    let t = rows.len();
    let indices = out.int64(0, &[t, 2])?;
    for (o, &(key, _, record)) in indices.chunks_exact_mut(2).zip(&rows) {
        o[0] = i64::from(record);
        o[1] = key;
    }
    for (o, &(_, i, _)) in out.float(1, &[t])?.iter_mut().zip(&rows) {
        *o = values[i as usize];
    }
    for (o, &(_, i, _)) in out.int8(2, &[t])?.iter_mut().zip(&rows) {
        *o = types[i as usize];
    }
    out.int64(3, &[2])?
        .copy_from_slice(&[b.num_records as i64, 1i64 << bits]);
    Ok(())
}
