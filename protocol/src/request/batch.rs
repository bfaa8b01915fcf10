//! Decoding messages into a [`Batch`]: the records stored by offset (the
//! DataRecord handle) or turned into twml's hashed rows (the hashed handle),
//! with their labels and weights. One pass over the bytes; the only
//! allocations are the batch's own growing vectors (and, for maps of more
//! than 16 entries in a DataRecord handle, one table to find repeats: [`super::merge`]).

use std::sync::{Arc, Mutex, Weak};

use super::merge::{merge_ids, merge_repeats, merge_strings};
pub(crate) use super::merge::{IdMap, Scratch};
use super::read::{self, Cursor, Kind, Span, Visit, R};
use super::tensors::{Tensors, WithTensors};
use crate::feature_id_bytes;
use crate::widen::f64_to_f32;

/// twml's `mixDiscreteIdAndValue`: the hashed key of discrete feature `id`
/// with value `v`.
pub(crate) fn mix_discrete(id: i64, v: i64) -> i64 {
    id ^ 17i64.wrapping_add(v).wrapping_mul(2_654_435_761)
}

/// twml's `mixStringIdAndValue`: `id` xor a 31-multiplier hash of the bytes
/// (each byte unsigned, i32 arithmetic wrapping, sign-extended).
pub(crate) fn mix_string(id: i64, bytes: &[u8]) -> i64 {
    let h = bytes
        .iter()
        .fold(0i32, |h, &b| h.wrapping_mul(31).wrapping_add(i32::from(b)));
    id ^ i64::from(h)
}

/// What a decode op was configured with (validated by the op layer).
#[derive(Clone, Debug, Default)]
pub(crate) struct Config {
    /// `keep_features[i]` -> `keep_codes[i]`.
    pub keep: IdMap<i64>,
    /// Label feature id -> column.
    pub labels: IdMap<usize>,
    pub num_labels: usize,
    /// Weight feature id -> column.
    pub weights: IdMap<usize>,
    pub num_weights: usize,
    /// 1: sparse continuous keys mix the id and the name; 0: feature_id(name).
    pub mix_names: bool,
    /// Rows (DecodeAndHash*) rather than whole records.
    pub hashed: bool,
    /// Each message is a BatchPredictionRequest (else one DataRecord).
    pub requests: bool,
}

/// Per kind, the range of a record's entries in the kind's vector.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Ranges(pub [(usize, usize); 6]);

impl Ranges {
    pub fn of(&self, kind: Kind) -> std::ops::Range<usize> {
        let (a, b) = self.0[kind as usize - 1];
        a..b
    }
}

/// Every feature of every record, by kind, in wire order (repeats in one map
/// merged: a map's last value at its key's first place; a set's first).
#[derive(Debug, Default)]
pub(crate) struct Features {
    pub binary: Vec<i64>,
    pub continuous: Vec<(i64, f64)>,
    pub discrete: Vec<(i64, i64)>,
    pub strings: Vec<(i64, Span)>,
    /// id and the range of its strings in `sparse_binary_values`.
    pub sparse_binary: Vec<(i64, usize, usize)>,
    pub sparse_binary_values: Vec<Span>,
    /// id and the range of its entries in `sparse_continuous_values`.
    pub sparse_continuous: Vec<(i64, usize, usize)>,
    pub sparse_continuous_values: Vec<(Span, f64)>,
}

impl Features {
    /// Empty, keeping every vector's capacity.
    fn clear(&mut self) {
        self.binary.clear();
        self.continuous.clear();
        self.discrete.clear();
        self.strings.clear();
        self.sparse_binary.clear();
        self.sparse_binary_values.clear();
        self.sparse_continuous.clear();
        self.sparse_continuous_values.clear();
    }

    fn len(&self, kind: Kind) -> usize {
        match kind {
            Kind::Binary => self.binary.len(),
            Kind::Continuous => self.continuous.len(),
            Kind::Discrete => self.discrete.len(),
            Kind::String => self.strings.len(),
            Kind::SparseBinary => self.sparse_binary.len(),
            Kind::SparseContinuous => self.sparse_continuous.len(),
        }
    }
}

/// twml's hashed rows, one vector per getter, all of length T.
#[derive(Debug, Default)]
pub(crate) struct Rows {
    pub ids: Vec<i64>,
    pub ukeys: Vec<i64>,
    pub keys: Vec<i64>,
    pub values: Vec<f32>,
    pub codes: Vec<i64>,
    pub types: Vec<i8>,
}

impl Rows {
    fn push(&mut self, record: usize, ukey: i64, key: i64, value: f32, code: i64, kind: Kind) {
        self.ids.push(record as i64);
        self.ukeys.push(ukey);
        self.keys.push(key);
        self.values.push(value);
        self.codes.push(code);
        self.types.push(kind as i8);
    }

    fn len(&self) -> usize {
        self.ids.len()
    }

    /// Removes rows `n..` and returns them.
    fn split_off(&mut self, n: usize) -> Rows {
        Rows {
            ids: self.ids.split_off(n),
            ukeys: self.ukeys.split_off(n),
            keys: self.keys.split_off(n),
            values: self.values.split_off(n),
            codes: self.codes.split_off(n),
            types: self.types.split_off(n),
        }
    }

    fn truncate(&mut self, n: usize) {
        self.ids.truncate(n);
        self.ukeys.truncate(n);
        self.keys.truncate(n);
        self.values.truncate(n);
        self.codes.truncate(n);
        self.types.truncate(n);
    }

    /// Appends rows `from` of `other`, as rows of `record`.
    fn extend_from(&mut self, other: &Rows, from: std::ops::Range<usize>, record: usize) {
        self.ids.extend(from.clone().map(|_| record as i64));
        self.ukeys.extend_from_slice(&other.ukeys[from.clone()]);
        self.keys.extend_from_slice(&other.keys[from.clone()]);
        self.values.extend_from_slice(&other.values[from.clone()]);
        self.codes.extend_from_slice(&other.codes[from.clone()]);
        self.types.extend_from_slice(&other.types[from]);
    }
}

/// A decoded batch: what a handle holds. Offsets into the messages it was
/// decoded from, never pointers: the getters are given the same messages.
#[derive(Debug)]
pub struct Batch {
    /// The registered name of the op that made it.
    pub(crate) made_by: &'static str,
    pub(crate) hashed: bool,
    pub(crate) num_records: usize,
    pub(crate) num_labels: usize,
    pub(crate) num_weights: usize,
    /// [B, L], NaN where a record has no label (the getter's default then).
    pub(crate) labels: Vec<f32>,
    /// [B, W], NaN where a record has no weight (0 then).
    pub(crate) weights: Vec<f32>,
    /// DataRecord handle: per record its ranges, and its request's common
    /// record, if that request had one.
    pub(crate) records: Vec<(Ranges, Option<u32>)>,
    pub(crate) commons: Vec<Ranges>,
    pub(crate) features: Features,
    /// The decode op's keep_features (GetHashedFeaturesAsSparseTensor reads
    /// only features the decode op kept).
    pub(crate) keep: IdMap<i64>,
    /// Hashed handle.
    pub(crate) rows: Rows,
    /// Both handles: every record's tensors and sparseTensors entries.
    pub(crate) tensors: Tensors,
    /// [M + 1] for M messages: message m's records are
    /// `message_splits[m]..message_splits[m + 1]` (the per-request writers
    /// answer each request with its own records).
    pub(crate) message_splits: Vec<usize>,
    /// The spares of the op that made it: [`Batch::release`] returns the
    /// batch there, so the op's next decode reuses its vectors (issue 27:
    /// fresh vectors per call showed as page faults in the request profile).
    pub(crate) home: Weak<Spares>,
}

/// Batches an op keeps for its next decodes, emptied, their vectors' capacity
/// kept. At most [`Spares::KEEP`]: as many as are usually in flight at once.
#[derive(Debug, Default)]
pub(crate) struct Spares(Mutex<Vec<Batch>>);

impl Spares {
    pub(crate) const KEEP: usize = 2;

    /// A spare batch, if one is kept.
    pub(crate) fn take(&self) -> Option<Batch> {
        self.0.lock().ok()?.pop()
    }

    /// How many are kept now.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.0.lock().map_or(0, |v| v.len())
    }
}

impl Batch {
    /// Done with the batch: it goes back to the op that made it (if that op
    /// is still alive and keeps fewer than [`Spares::KEEP`]), else it is freed.
    pub fn release(self) {
        if let Some(home) = self.home.upgrade() {
            if let Ok(mut spares) = home.0.lock() {
                if spares.len() < Spares::KEEP {
                    let mut b = self;
                    // A spare must not keep its op's spares alive (nor
                    // point at them): it gets a home again when reused.
                    b.home = Weak::new();
                    spares.push(b);
                }
            }
        }
    }

    /// Empties a spare for a decode by `made_by` under `config`: every
    /// field as a new batch has it, every vector's capacity kept.
    fn reset(&mut self, config: &Config, made_by: &'static str) {
        self.made_by = made_by;
        self.hashed = config.hashed;
        self.num_records = 0;
        self.num_labels = config.num_labels;
        self.num_weights = config.num_weights;
        self.labels.clear();
        self.weights.clear();
        self.records.clear();
        self.commons.clear();
        self.features.clear();
        self.keep.clone_from(&config.keep);
        self.rows.truncate(0);
        self.tensors.clear();
        self.message_splits.clear();
    }

    /// `[M + 1]` for M messages: message m's records are
    /// `message_splits()[m]..message_splits()[m + 1]` (first 0, last B).
    pub fn message_splits(&self) -> &[usize] {
        &self.message_splits
    }

    /// How many records (B): every record of every message.
    pub fn num_records(&self) -> usize {
        self.num_records
    }
}

/// The label and weight columns one record fills (NaN = not seen yet).
struct Targets<'c> {
    config: &'c Config,
    /// Any label or weight columns: most models read none at serving time,
    /// and then a feature costs no lookup here.
    any: bool,
    labels: Vec<f32>,
    weights: Vec<f32>,
}

impl<'c> Targets<'c> {
    fn new(config: &'c Config) -> Self {
        Targets {
            config,
            any: config.num_labels + config.num_weights > 0,
            labels: Vec::new(),
            weights: Vec::new(),
        }
    }

    fn row(&mut self) {
        let c = self.config;
        self.labels
            .extend(std::iter::repeat_n(f32::NAN, c.num_labels));
        self.weights
            .extend(std::iter::repeat_n(f32::NAN, c.num_weights));
    }

    #[inline(always)]
    fn binary(&mut self, id: i64) {
        if self.any {
            self.binary_column(id);
        }
    }

    #[inline(never)]
    fn binary_column(&mut self, id: i64) {
        if self.config.num_labels == 0 {
            return;
        }
        if let Some(&col) = self.config.labels.get(&id) {
            let at = self.labels.len() - self.config.num_labels + col;
            self.labels[at] = 1.0;
        }
    }

    #[inline(always)]
    fn continuous(&mut self, id: i64, v: f64) {
        // NaN means absent (twml's rule for continuous values).
        if self.any && !v.is_nan() {
            self.continuous_column(id, v);
        }
    }

    #[inline(never)]
    fn continuous_column(&mut self, id: i64, v: f64) {
        if let Some(&col) = self.config.labels.get(&id) {
            let at = self.labels.len() - self.config.num_labels + col;
            self.labels[at] = f64_to_f32(v);
        }
        if let Some(&col) = self.config.weights.get(&id) {
            let at = self.weights.len() - self.config.num_weights + col;
            self.weights[at] = f64_to_f32(v);
        }
    }

    /// Fills what records `first..` lack from their request's common
    /// record (whose one row is in `common`, if it had one).
    fn merge(&mut self, first: usize, common: &Targets<'_>) {
        for (v, c, n) in [
            (&mut self.labels, &common.labels, self.config.num_labels),
            (&mut self.weights, &common.weights, self.config.num_weights),
        ] {
            if c.is_empty() {
                continue;
            }
            for row in v[first * n..].chunks_exact_mut(n) {
                for (x, &y) in row.iter_mut().zip(c) {
                    if x.is_nan() {
                        *x = y;
                    }
                }
            }
        }
    }
}

/// Stores every feature of a record (the DataRecord handle).
struct Store<'a, 'c> {
    msg: &'a [u8],
    f: &'a mut Features,
    /// Scratch for merging repeated ids (kept across records).
    seen: &'a mut Scratch,
    targets: &'a mut Targets<'c>,
    start: Ranges,
}

impl<'a, 'c> Store<'a, 'c> {
    fn new(
        msg: &'a [u8],
        f: &'a mut Features,
        seen: &'a mut Scratch,
        targets: &'a mut Targets<'c>,
    ) -> Self {
        let mut start = Ranges::default();
        for kind in read::KINDS {
            let n = f.len(kind);
            start.0[kind as usize - 1] = (n, n);
        }
        Store {
            msg,
            f,
            seen,
            targets,
            start,
        }
    }

    fn ranges(&self) -> Ranges {
        let mut r = self.start;
        for kind in read::KINDS {
            r.0[kind as usize - 1].1 = self.f.len(kind);
        }
        r
    }

    /// Closes the values of the sparse id pushed last: repeats merged.
    fn close_sparse(&mut self, kind: Kind) {
        let msg = self.msg;
        let bytes = |s: &Span| &msg[s.start..s.start + s.len as usize];
        let table = &mut self.seen.strings;
        match kind {
            Kind::SparseBinary => {
                let Some(last) = self.f.sparse_binary.last_mut() else {
                    return;
                };
                merge_strings(
                    &mut self.f.sparse_binary_values,
                    last.1,
                    |s| bytes(s),
                    false,
                    table,
                );
                last.2 = self.f.sparse_binary_values.len();
            }
            _ => {
                let Some(last) = self.f.sparse_continuous.last_mut() else {
                    return;
                };
                merge_strings(
                    &mut self.f.sparse_continuous_values,
                    last.1,
                    |e| bytes(&e.0),
                    true,
                    table,
                );
                last.2 = self.f.sparse_continuous_values.len();
            }
        }
    }
}

impl Visit for Store<'_, '_> {
    fn binary(&mut self, id: i64) {
        self.f.binary.push(id);
        self.targets.binary(id);
    }
    fn continuous(&mut self, id: i64, value: f64) {
        self.targets.continuous(id, value);
        if !value.is_nan() {
            self.f.continuous.push((id, value));
        }
    }
    fn discrete(&mut self, id: i64, value: i64) {
        self.f.discrete.push((id, value));
    }
    fn string(&mut self, id: i64, value: Span, _: &[u8]) {
        self.f.strings.push((id, value));
    }
    fn sparse_begin(&mut self, kind: Kind, id: i64) -> bool {
        // The previous id's values are complete.
        if self.f.len(kind) > self.start.of(kind).start {
            self.close_sparse(kind);
        }
        match kind {
            Kind::SparseBinary => {
                let at = self.f.sparse_binary_values.len();
                self.f.sparse_binary.push((id, at, at));
            }
            _ => {
                let at = self.f.sparse_continuous_values.len();
                self.f.sparse_continuous.push((id, at, at));
            }
        }
        true
    }
    fn sparse_binary(&mut self, _: i64, value: Span, _: &[u8]) {
        self.f.sparse_binary_values.push(value);
    }
    fn sparse_continuous(&mut self, _: i64, name: Span, _: &[u8], value: f64) {
        if !value.is_nan() {
            self.f.sparse_continuous_values.push((name, value));
        }
    }
    fn end(&mut self, kind: Kind) {
        let from = self.start.of(kind).start;
        let (f, s) = (&mut *self.f, &mut *self.seen);
        let [bin, cont, disc, strs] = &mut s.unique;
        let seen = &mut s.seen;
        match kind {
            Kind::Binary => merge_ids(&mut f.binary, from, |&id| id, false, seen, bin),
            Kind::Continuous => merge_ids(&mut f.continuous, from, |e| e.0, true, seen, cont),
            Kind::Discrete => merge_ids(&mut f.discrete, from, |e| e.0, true, seen, disc),
            Kind::String => merge_ids(&mut f.strings, from, |e| e.0, true, seen, strs),
            Kind::SparseBinary | Kind::SparseContinuous => {
                if f.len(kind) > from {
                    self.close_sparse(kind);
                }
                // A repeated id: its last set or map, at its first place.
                let (f, seen) = (&mut *self.f, &mut self.seen.seen);
                match kind {
                    Kind::SparseBinary => {
                        merge_repeats(&mut f.sparse_binary, from, |e| e.0, true, seen)
                    }
                    _ => merge_repeats(&mut f.sparse_continuous, from, |e| e.0, true, seen),
                }
            }
        }
    }
}

/// Turns a record's kept features into hashed rows (the hashed handle).
struct Hashing<'a, 'c> {
    record: usize,
    rows: &'a mut Rows,
    targets: &'a mut Targets<'c>,
    /// The code of the sparse id being read, if kept.
    code: i64,
}

impl Hashing<'_, '_> {
    fn kept(&self, id: i64) -> Option<i64> {
        self.targets.config.keep.get(&id).copied()
    }
}

impl Visit for Hashing<'_, '_> {
    fn binary(&mut self, id: i64) {
        self.targets.binary(id);
        if let Some(code) = self.kept(id) {
            self.rows.push(self.record, id, id, 1.0, code, Kind::Binary);
        }
    }
    fn continuous(&mut self, id: i64, value: f64) {
        self.targets.continuous(id, value);
        if let Some(code) = self.kept(id).filter(|_| !value.is_nan()) {
            let v = f64_to_f32(value);
            self.rows
                .push(self.record, id, id, v, code, Kind::Continuous);
        }
    }
    fn discrete(&mut self, id: i64, value: i64) {
        if let Some(code) = self.kept(id) {
            let key = mix_discrete(id, value);
            self.rows
                .push(self.record, id, key, 1.0, code, Kind::Discrete);
        }
    }
    fn string(&mut self, id: i64, _: Span, bytes: &[u8]) {
        if let Some(code) = self.kept(id) {
            let key = mix_string(id, bytes);
            self.rows
                .push(self.record, id, key, 1.0, code, Kind::String);
        }
    }
    fn sparse_begin(&mut self, _: Kind, id: i64) -> bool {
        match self.kept(id) {
            Some(code) => {
                self.code = code;
                true
            }
            None => false,
        }
    }
    fn sparse_binary(&mut self, id: i64, _: Span, bytes: &[u8]) {
        let key = mix_string(id, bytes);
        self.rows
            .push(self.record, id, key, 1.0, self.code, Kind::SparseBinary);
    }
    fn sparse_continuous(&mut self, id: i64, _: Span, name: &[u8], value: f64) {
        if value.is_nan() {
            return;
        }
        let key = if self.targets.config.mix_names {
            mix_string(id, name)
        } else {
            // UTF-8 was checked by the reader.
            feature_id_bytes(name).unwrap_or_default()
        };
        let (record, code) = (self.record, self.code);
        self.rows.push(
            record,
            id,
            key,
            f64_to_f32(value),
            code,
            Kind::SparseContinuous,
        );
    }
    fn end(&mut self, _: Kind) {}
}

/// Where one message went wrong.
pub(crate) struct MessageError {
    pub message: usize,
    pub error: read::ReadError,
}

/// Decodes every message into one batch (records of all messages in order).
/// `spares`: the op's kept batches; one is reused if there is one, and the
/// batch made goes back there on [`Batch::release`].
pub(crate) fn decode(
    config: &Config,
    made_by: &'static str,
    messages: &[&[u8]],
    spares: &Arc<Spares>,
) -> Result<Batch, MessageError> {
    let mut b = match spares.take() {
        Some(mut b) => {
            b.reset(config, made_by);
            b
        }
        None => Batch {
            made_by,
            hashed: config.hashed,
            num_records: 0,
            num_labels: config.num_labels,
            num_weights: config.num_weights,
            labels: Vec::new(),
            weights: Vec::new(),
            records: Vec::new(),
            commons: Vec::new(),
            features: Features::default(),
            keep: config.keep.clone(),
            rows: Rows::default(),
            tensors: Tensors::default(),
            message_splits: Vec::new(),
            home: Weak::new(),
        },
    };
    b.home = Arc::downgrade(spares);
    b.message_splits.reserve(messages.len() + 1);
    b.message_splits.push(0);
    // The labels and weights are built in the spare's vectors.
    let mut targets = Targets::new(config);
    targets.labels = std::mem::take(&mut b.labels);
    targets.weights = std::mem::take(&mut b.weights);
    let mut seen = Scratch::default();
    // The current request's commonFeatures: its labels and weights, its rows.
    let mut common_targets = Targets::new(config);
    let mut common_rows = Rows::default();
    // Row starts of the current request's records (hashed handle).
    let mut starts = Vec::new();
    for (m, &bytes) in messages.iter().enumerate() {
        let at = |error| MessageError { message: m, error };
        let mut c = Cursor::new(bytes, m as u32);
        if !config.requests {
            one_record(
                &mut b,
                &mut targets,
                &mut seen,
                &mut c,
                bytes,
                &"DataRecord",
            )
            .map_err(at)?;
            read::finish(&c, "DataRecord").map_err(at)?;
            b.message_splits.push(b.num_records);
            continue;
        }
        let first = b.num_records;
        let first_row = b.rows.len();
        let mut common = None;
        let mut common_tensors = None;
        starts.clear();
        common_rows.truncate(0);
        common_targets.labels.clear();
        common_targets.weights.clear();
        read::request(&mut c, |c, i| {
            if let Some(i) = i {
                starts.push(b.rows.len() - first_row);
                let name = format_args!("individualFeaturesList[{i}]");
                return one_record(&mut b, &mut targets, &mut seen, c, bytes, &name);
            }
            common_targets.row();
            let name = "commonFeatures";
            b.tensors.begin();
            if config.hashed {
                let mut h = Hashing {
                    record: 0,
                    rows: &mut common_rows,
                    targets: &mut common_targets,
                    code: 0,
                };
                read::record(c, &name, &mut WithTensors::new(&mut h, &mut b.tensors))?;
            } else {
                let mut s = Store::new(bytes, &mut b.features, &mut seen, &mut common_targets);
                read::record(c, &name, &mut WithTensors::new(&mut s, &mut b.tensors))?;
                common = Some(s.ranges());
            }
            common_tensors = Some(b.tensors.end_common());
            Ok(())
        })
        .map_err(at)?;
        read::finish(&c, "BatchPredictionRequest").map_err(at)?;
        if let Some(ranges) = common {
            let index = b.commons.len() as u32;
            b.commons.push(ranges);
            for r in &mut b.records[first..] {
                r.1 = Some(index);
            }
        }
        if let Some(index) = common_tensors {
            b.tensors.set_common(first, index);
        }
        targets.merge(first, &common_targets);
        if common_rows.len() > 0 {
            // Each record's rows: its request's common rows, then its own.
            let own = b.rows.split_off(first_row);
            for (k, &s) in starts.iter().enumerate() {
                let e = starts.get(k + 1).copied().unwrap_or(own.len());
                b.rows
                    .extend_from(&common_rows, 0..common_rows.len(), first + k);
                b.rows.extend_from(&own, s..e, first + k);
            }
        }
        b.message_splits.push(b.num_records);
    }
    b.labels = targets.labels;
    b.weights = targets.weights;
    Ok(b)
}

/// One record (after its header): stored or hashed, with its label row.
fn one_record(
    b: &mut Batch,
    targets: &mut Targets<'_>,
    seen: &mut Scratch,
    c: &mut Cursor<'_>,
    bytes: &[u8],
    name: &dyn std::fmt::Display,
) -> R<()> {
    targets.row();
    let record = b.num_records;
    b.num_records += 1;
    b.tensors.begin();
    if b.hashed {
        let mut h = Hashing {
            record,
            rows: &mut b.rows,
            targets,
            code: 0,
        };
        read::record(c, name, &mut WithTensors::new(&mut h, &mut b.tensors))?;
    } else {
        let mut s = Store::new(bytes, &mut b.features, seen, targets);
        read::record(c, name, &mut WithTensors::new(&mut s, &mut b.tensors))?;
        let ranges = s.ranges();
        b.records.push((ranges, None));
    }
    b.tensors.end_record();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Spares;
    use crate::decode::{GeneralTensor, Record};
    use crate::request::{encode_batch_prediction_request, Attr, RequestOp};

    fn record(seed: i64) -> Record {
        Record {
            binary: vec![seed, 5],
            continuous: vec![(1, seed as f64 * 0.5), (2, 3.0), (100, 1.0)],
            discrete: vec![(3, seed * 7)],
            strings: vec![(4, format!("s{seed}").into_bytes())],
            sparse_binary: vec![(6, vec![b"a".to_vec(), b"bb".to_vec()])],
            sparse_continuous: vec![(7, vec![(b"k".to_vec(), seed as f64)])],
            tensors: vec![(
                8,
                GeneralTensor::Int32(vec![1, 2, seed as i32], Some(vec![3])),
            )],
            ..Record::default()
        }
    }

    /// A decode that reuses a released batch gives exactly what a fresh
    /// decode gives: nothing of the earlier messages is left (a field that
    /// `reset` forgot to empty fails this), for both handles and with
    /// common records, labels and weights.
    #[test]
    fn a_reused_batch_is_a_fresh_batch() {
        let rich: Vec<Record> = (0..40).map(record).collect();
        let common = record(99);
        let big = encode_batch_prediction_request(&rich, Some(&common)).unwrap();
        let small = encode_batch_prediction_request(&[record(3), Record::default()], None).unwrap();
        let keep: &[i64] = &[1, 2, 3, 4, 5, 6, 7, 8, 100];
        let codes = vec![0; keep.len()];
        for name in [
            "DecodeBatchPredictionRequestV2",
            "DecodeAndHashBatchPredictionRequestV2",
        ] {
            let attrs = vec![
                ("keep_features", Attr::Ints(keep)),
                ("keep_codes", Attr::Ints(&codes)),
                ("label_features", Attr::Ints(&[1, 5])),
                ("weight_features", Attr::Ints(&[2])),
                ("decode_mode", Attr::Int(0)),
            ];
            let fresh_op = RequestOp::new(name, &attrs).unwrap();
            let fresh = |m: &[u8]| format!("{:?}", fresh_op.decode(&[m], false).unwrap());
            let op = RequestOp::new(name, &attrs).unwrap();
            for (first, then) in [(&big, &small), (&small, &big), (&big, &big)] {
                op.decode(&[first], false).unwrap().release();
                assert_eq!(op.spares.len(), 1, "{name}: a released batch is kept");
                let reused = op.decode(&[then], false).unwrap();
                assert_eq!(op.spares.len(), 0, "{name}: the kept batch was reused");
                assert_eq!(format!("{reused:?}"), fresh(then), "{name}");
                reused.release();
            }
            // At most KEEP are kept; the rest are freed.
            let batches: Vec<_> = (0..Spares::KEEP + 2)
                .map(|_| op.decode(&[&small], false).unwrap())
                .collect();
            batches.into_iter().for_each(|b| b.release());
            assert_eq!(op.spares.len(), Spares::KEEP);
            // A batch that outlives its op is freed, not kept.
            let orphan = op.decode(&[&small], false).unwrap();
            drop(op);
            orphan.release();
        }
    }
}
