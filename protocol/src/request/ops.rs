//! twml's request-side ops, by registered name: each op's attrs validated
//! once ([`RequestOp::new`]), decode ops making a [`Batch`], getters writing
//! their outputs through [`Outputs`]. This is all of their logic; a host (the
//! TensorFlow shim, or any other) only passes attrs, bytes and buffers.

use super::batch::{self, Batch, Config, IdMap, Spares};
use super::getters::{
    dense, features, hashed_sorted, hashed_sparse, labels, request_splits, sources, sparse,
    sparse_tensor, Fill, MAX_HASHED_BITS,
};
use super::outputs::Outputs;
use super::read::{Kind, KINDS};
use super::tensor_getters::Getter;
use crate::{Error, Result};
use std::sync::Arc;

/// One attr value of a request-side op, as its host read it.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub enum Attr<'a> {
    /// TF `int`.
    Int(i64),
    /// TF `float`.
    Float(f32),
    /// TF `string` (any bytes).
    Str(&'a [u8]),
    /// TF `list(int)`.
    Ints(&'a [i64]),
    /// TF `bool`.
    Bool(bool),
}

const SIX: [&str; 6] = [
    "binary_keep_features",
    "continuous_keep_features",
    "discrete_keep_features",
    "string_keep_features",
    "sparse_binary_keep_features",
    "sparse_continuous_keep_features",
];

// The request-side ops by registered name ([`op_names`]: DECODE_OPS, then
// GETTER_OPS). Which attrs each has is not listed here: the shim passes every
// attr the op's registration declares (`cpp_shim/request_ops.cc`, the one
// source), and [`RequestOp::new`] refuses a declared attr it does not read,
// or a missing one it does (`tests/request_attrs.rs` checks every registration).

/// The decode ops, which make a handle: the fuzz target and its seed test
/// pick one of these by the input's first byte, so they share this order.
pub const DECODE_OPS: [&str; 6] = [
    "DecodeBatchPredictionRequest",
    "DecodeAndHashBatchPredictionRequest",
    "DecodeBatchPredictionRequestV2",
    "DecodeAndHashBatchPredictionRequestV2",
    "DecodeDataRecord",
    "DecodeAndHashDataRecord",
];

/// The getters: every request-side op that reads a handle.
const GETTER_OPS: [&str; 45] = [
    "GetIdsFromHashedDataRecord",
    "GetUKeysFromHashedDataRecord",
    "GetKeysFromHashedDataRecord",
    "GetValuesFromHashedDataRecord",
    "GetCodesFromHashedDataRecord",
    "GetTypesFromHashedDataRecord",
    "GetBatchSizeFromHashedDataRecord",
    "GetTotalSizeFromHashedDataRecord",
    "GetLabelsFromHashedDataRecord",
    "GetWeightsFromHashedDataRecord",
    "GetRequestSplitsFromHashedDataRecord",
    "GetBinaryFeatures",
    "GetContinuousFeatures",
    "GetDiscreteFeatures",
    "GetStringFeatures",
    "GetSparseBinaryFeatures",
    "GetSparseContinuousFeatures",
    "GetBatchSizeFromDataRecord",
    "GetLabelsFromDataRecord",
    "GetWeightsFromDataRecord",
    "GetRequestSplitsFromDataRecord",
    // Not twml's: where each value of a group getter came from (issue 29).
    "GetFeatureSourcesFromDataRecord",
    "GetBinaryAsTensor",
    "GetContinuousAsTensor",
    "GetDiscreteAsTensor",
    "GetStringAsTensor",
    "GetBinaryGroupAsTensor",
    "GetContinuousGroupAsTensor",
    "GetDiscreteGroupAsTensor",
    "GetStringGroupAsTensor",
    "GetSparseBinaryAsTensor",
    "GetSparseContinuousAsTensor",
    "GetHashedFeaturesAsSparseTensor",
    "GetHashedFeaturesAsSparseTensorV2",
    // Not twml's: what BatchPredictionRequestReader reads a sparse feature, or
    // its hashed features, with in one op each (issue 35: the row getters
    // needed a dozen TensorFlow ops more per feature to become a SparseTensor).
    "GetSparseBinaryAsSparseTensor",
    "GetSparseContinuousAsSparseTensor",
    "GetHashedFeaturesAsSortedSparseTensor",
    // The tensor getters (request/tensors.rs), twml's tensor_record.cpp.
    "GetStringTensorsFromDataRecord",
    "GetStringTensorsFromHashedDataRecord",
    "GetTensorsFromDataRecord",
    "GetTensorsFromHashedDataRecord",
    "GetTensorsWithMissingMaskFromDataRecord",
    "GetTensorsWithMissingMaskFromHashedDataRecord",
    "GetSparseTensorsFromDataRecord",
    "GetSparseTensorsFromHashedDataRecord",
];

/// The registered names of every request-side op, decode ops first.
pub fn op_names() -> impl Iterator<Item = &'static str> {
    DECODE_OPS.iter().chain(GETTER_OPS.iter()).copied()
}

/// The decode ops whose handle a getter reads, for its error message.
const HASHED_MAKERS: &str = "DecodeAndHashDataRecord, DecodeAndHashBatchPredictionRequest or \
                             DecodeAndHashBatchPredictionRequestV2";
const RECORD_MAKERS: &str = "DecodeDataRecord, DecodeBatchPredictionRequest or \
                             DecodeBatchPredictionRequestV2";

#[derive(Clone, Copy, Debug)]
enum Hashed {
    Ids,
    UKeys,
    Keys,
    Values,
    Codes,
    Types,
    BatchSize,
    TotalSize,
    Labels(f32),
    Weights,
    RequestSplits,
}

#[derive(Debug)]
enum Role {
    Decode(Config),
    Hashed(Hashed),
    Features(Kind),
    BatchSize,
    Labels(f32),
    Weights,
    RequestSplits,
    /// GetFeatureSourcesFromDataRecord: per record and (id, kind), where the
    /// group getter of that kind found its value.
    Sources {
        ids: Vec<i64>,
        kinds: Vec<Kind>,
    },
    /// `*AsTensor` (one id, output [B]) and `*GroupAsTensor` ([B, F]).
    Dense {
        kind: Kind,
        ids: Vec<i64>,
        /// Column of each id (ids are distinct).
        columns: IdMap<usize>,
        group: bool,
        default: Fill,
    },
    Sparse {
        kind: Kind,
        id: i64,
    },
    /// GetSparse{Binary,Continuous}AsSparseTensor: one id's entries as a
    /// SparseTensor's indices, values and dense shape.
    SparseTensor {
        kind: Kind,
        id: i64,
    },
    /// GetHashedFeaturesAsSortedSparseTensor: twml's hashed input, keys
    /// limited to `bits`, in row-major order.
    HashedSorted {
        /// Per kind, the ids to read.
        keep: [IdMap<()>; 6],
        mix_names: bool,
        bits: u32,
    },
    /// The tensor getters.
    Tensor(Getter),
    HashedSparse {
        /// Per kind, the ids to read.
        keep: [IdMap<()>; 6],
        /// V2: its own keep_features (else the decode op's).
        own_keep: Option<IdMap<i64>>,
        /// V1 always; V2 with decode_mode 1.
        mix_names: bool,
    },
}

/// One request-side op with validated attrs: made once per kernel, then
/// used for every call (from any number of threads).
#[derive(Debug)]
pub struct RequestOp {
    name: &'static str,
    role: Role,
    /// A decode op's batches released for reuse (see [`Batch::release`]).
    pub(crate) spares: Arc<Spares>,
}

/// The attrs an op was given (what its registration declares, defaults
/// applied). Reading one marks it used; a read of an attr that was not given,
/// or of another type, is remembered and reported by [`Attrs::finish`], as is
/// a given attr that nothing read: the registration and this code must agree.
struct Attrs<'a> {
    op: &'static str,
    given: &'a [(&'a str, Attr<'a>)],
    used: std::cell::RefCell<Vec<bool>>,
    wrong: std::cell::RefCell<Option<String>>,
}

impl<'a> Attrs<'a> {
    fn get(&self, name: &str, want: &str) -> Option<Attr<'a>> {
        let Some(i) = self.given.iter().position(|(n, _)| *n == name) else {
            self.wrong.borrow_mut().get_or_insert_with(|| {
                format!("attr {name} ({want}) is read by bpr_ops but was not given")
            });
            return None;
        };
        self.used.borrow_mut()[i] = true;
        Some(self.given[i].1)
    }
    fn mismatch(&self, name: &str, want: &str, got: Attr<'_>) {
        self.wrong
            .borrow_mut()
            .get_or_insert_with(|| format!("attr {name} must be {want}, was given {got:?}"));
    }
    fn int(&self, name: &str) -> i64 {
        match self.get(name, "int") {
            Some(Attr::Int(v)) => v,
            Some(other) => {
                self.mismatch(name, "an int", other);
                0
            }
            None => 0,
        }
    }
    fn float(&self, name: &str) -> f32 {
        match self.get(name, "float") {
            Some(Attr::Float(v)) => v,
            Some(other) => {
                self.mismatch(name, "a float", other);
                0.0
            }
            None => 0.0,
        }
    }
    fn ints(&self, name: &str) -> &'a [i64] {
        match self.get(name, "list(int)") {
            Some(Attr::Ints(v)) => v,
            Some(other) => {
                self.mismatch(name, "a list(int)", other);
                &[]
            }
            None => &[],
        }
    }
    fn bool(&self, name: &str) -> bool {
        match self.get(name, "bool") {
            Some(Attr::Bool(v)) => v,
            Some(other) => {
                self.mismatch(name, "a bool", other);
                false
            }
            None => false,
        }
    }
    fn bytes(&self, name: &str) -> &'a [u8] {
        match self.get(name, "string") {
            Some(Attr::Str(v)) => v,
            Some(other) => {
                self.mismatch(name, "a string", other);
                &[]
            }
            None => &[],
        }
    }

    /// After the op's role was read: every given attr read, none missing.
    fn finish(&self) -> Result<()> {
        if let Some(wrong) = self.wrong.borrow().as_ref() {
            return Err(Error::invalid(format!("{}: {wrong}", self.op)));
        }
        let used = self.used.borrow();
        if let Some((name, _)) = self
            .given
            .iter()
            .zip(used.iter())
            .find(|(_, u)| !**u)
            .map(|(g, _)| g)
        {
            return Err(Error::invalid(format!(
                "{}: has attr {name}, which bpr_ops does not read (the registration and \
                 the reader disagree)",
                self.op
            )));
        }
        Ok(())
    }

    fn invalid(&self, attr: &str, what: impl std::fmt::Display) -> Error {
        Error::invalid(format!("{}: attr {attr} {what}", self.op))
    }

    /// keep_features -> keep_codes, checked.
    fn keep(&self) -> Result<IdMap<i64>> {
        let (ids, codes) = (self.ints("keep_features"), self.ints("keep_codes"));
        if ids.len() != codes.len() {
            return Err(self.invalid(
                "keep_codes",
                format_args!(
                    "has {} codes, keep_features has {} ids: they must have the same length",
                    codes.len(),
                    ids.len()
                ),
            ));
        }
        let mut keep = IdMap::default();
        for (i, (&id, &code)) in ids.iter().zip(codes).enumerate() {
            if let Some(&old) = keep.get(&id) {
                if old != code {
                    let j = ids.iter().position(|&x| x == id).unwrap_or(0);
                    return Err(self.invalid(
                        "keep_features",
                        format_args!(
                            "has feature id {id} at index {j} with code {old} and at index {i} \
                             with code {code}: one id has one code"
                        ),
                    ));
                }
            }
            keep.insert(id, code);
        }
        Ok(keep)
    }

    /// label_features or weight_features: id -> column, no repeats.
    fn columns(&self, attr: &str) -> Result<IdMap<usize>> {
        let mut columns = IdMap::default();
        for (i, &id) in self.ints(attr).iter().enumerate() {
            if let Some(j) = columns.insert(id, i) {
                return Err(self.invalid(
                    attr,
                    format_args!(
                        "has feature id {id} at index {j} and at index {i}: each column \
                         reads a different feature"
                    ),
                ));
            }
        }
        Ok(columns)
    }

    fn mix_names(&self) -> Result<bool> {
        match self.int("decode_mode") {
            0 => Ok(false),
            1 => Ok(true),
            m => Err(self.invalid(
                "decode_mode",
                format_args!(
                    "is {m}; it must be 0 (sparse continuous keys are feature ids of the \
                     names) or 1 (the feature id mixed with the name)"
                ),
            )),
        }
    }
}

impl RequestOp {
    /// Validates the attrs of op `name` (a registered name such as
    /// `"DecodeAndHashBatchPredictionRequestV2"`). Every attr its registration
    /// declares must be given once (defaults already applied, as TensorFlow
    /// gives them), and no other; `InputType` may be given and is ignored.
    pub fn new(name: &str, attrs: &[(&str, Attr<'_>)]) -> Result<RequestOp> {
        let Some(name) = op_names().find(|n| *n == name) else {
            return Err(Error::invalid(format!(
                "{name:?} is not a request-side op of bpr_ops"
            )));
        };
        for (i, (attr, _)) in attrs.iter().enumerate() {
            if attrs[..i].iter().any(|(n, _)| n == attr) {
                return Err(Error::invalid(format!("{name}: attr {attr} given twice")));
            }
        }
        // InputType only says what the input tensor holds (the host's business).
        let given: Vec<(&str, Attr<'_>)> = attrs
            .iter()
            .filter(|(n, _)| *n != "InputType")
            .copied()
            .collect();
        let a = Attrs {
            op: name,
            given: &given,
            used: std::cell::RefCell::new(vec![false; given.len()]),
            wrong: std::cell::RefCell::new(None),
        };
        match role(name, &a) {
            Ok(role) => {
                a.finish()?;
                Ok(RequestOp {
                    name,
                    role,
                    spares: Arc::default(),
                })
            }
            // A missing attr explains the failure better than what it caused
            // (a role that failed early left later attrs unread: no check).
            Err(e) => match a.wrong.borrow().as_ref() {
                Some(wrong) => Err(Error::invalid(format!("{name}: {wrong}"))),
                None => Err(e),
            },
        }
    }

    /// The op's registered name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Whether this is a decode op (else a getter).
    pub fn is_decode(&self) -> bool {
        matches!(self.role, Role::Decode(_))
    }

    /// A decode op: decodes `messages` (one per element of a string input;
    /// a uint8 input is one message) into a batch (the vectors of one this op
    /// made and that was [`Batch::release`]d are reused). `input_is_string`
    /// only changes how errors name the message.
    pub fn decode(&self, messages: &[&[u8]], input_is_string: bool) -> Result<Batch> {
        let Role::Decode(config) = &self.role else {
            return Err(Error::internal(format!(
                "{}: is not a decode op",
                self.name
            )));
        };
        batch::decode(config, self.name, messages, &self.spares).map_err(|e| {
            let element = if input_is_string {
                format!("input_bytes[{}]", e.message)
            } else {
                "input_bytes".to_string()
            };
            Error::invalid(format!(
                "{}: {element} at byte {}: {}",
                self.name, e.error.at, e.error.what
            ))
        })
    }

    /// A getter: reads `batch`, which a decode op made from `messages` (the
    /// same messages, given again), and writes every output.
    pub fn get(&self, batch: &Batch, messages: &[&[u8]], out: &mut dyn Outputs) -> Result<()> {
        let wants_hashed = match &self.role {
            Role::Hashed(_) => true,
            Role::Tensor(g) => g.hashed,
            _ => false,
        };
        if wants_hashed != batch.hashed {
            let (input, kind, makers) = if wants_hashed {
                (
                    "hashed_data_record_handle",
                    "a DataRecord handle",
                    HASHED_MAKERS,
                )
            } else {
                (
                    "data_record_handle",
                    "a hashed DataRecord handle",
                    RECORD_MAKERS,
                )
            };
            return Err(Error::invalid(format!(
                "{}: {input} comes from {}, which makes {kind}; this op reads the handle of {makers}",
                self.name, batch.made_by
            )));
        }
        let b = batch;
        let (n, nb) = (b.num_records, b.num_records);
        match &self.role {
            Role::Decode(_) => Err(Error::internal(format!("{}: is a decode op", self.name))),
            Role::Hashed(h) => {
                let rows = &b.rows;
                let t = rows.ids.len();
                match *h {
                    Hashed::Ids => out.int64(0, &[t])?.copy_from_slice(&rows.ids),
                    Hashed::UKeys => out.int64(0, &[t])?.copy_from_slice(&rows.ukeys),
                    Hashed::Keys => out.int64(0, &[t])?.copy_from_slice(&rows.keys),
                    Hashed::Values => out.float(0, &[t])?.copy_from_slice(&rows.values),
                    Hashed::Codes => out.int64(0, &[t])?.copy_from_slice(&rows.codes),
                    Hashed::Types => out.int8(0, &[t])?.copy_from_slice(&rows.types),
                    Hashed::BatchSize => out.int64(0, &[])?[0] = n as i64,
                    Hashed::TotalSize => out.int64(0, &[])?[0] = t as i64,
                    Hashed::Labels(d) => labels(out, &b.labels, nb, b.num_labels, d)?,
                    Hashed::Weights => labels(out, &b.weights, nb, b.num_weights, 0.0)?,
                    Hashed::RequestSplits => request_splits(b, out)?,
                }
                Ok(())
            }
            Role::BatchSize => {
                out.int64(0, &[])?[0] = n as i64;
                Ok(())
            }
            Role::Labels(d) => labels(out, &b.labels, nb, b.num_labels, *d),
            Role::Weights => labels(out, &b.weights, nb, b.num_weights, 0.0),
            Role::RequestSplits => request_splits(b, out),
            Role::Sources { ids, kinds } => sources(b, ids, kinds, out),
            Role::Features(kind) => features(b, messages, *kind, out),
            Role::Dense {
                kind,
                ids,
                columns,
                group,
                default,
            } => dense(b, messages, *kind, ids, columns, *group, default, out),
            Role::Sparse { kind, id } => sparse(b, messages, *kind, *id, out),
            Role::SparseTensor { kind, id } => sparse_tensor(b, messages, *kind, *id, out),
            Role::HashedSorted {
                keep,
                mix_names,
                bits,
            } => hashed_sorted(b, messages, keep, *mix_names, *bits, out),
            Role::Tensor(g) => g.get(self.name, b, messages, out),
            Role::HashedSparse {
                keep,
                own_keep,
                mix_names,
            } => {
                let kept = own_keep.as_ref().unwrap_or(&b.keep);
                hashed_sparse(b, messages, keep, kept, *mix_names, out)
            }
        }
    }
}

fn role(name: &'static str, a: &Attrs<'_>) -> Result<Role> {
    let kind_of = |s: &str| {
        if s.contains("SparseBinary") {
            Kind::SparseBinary
        } else if s.contains("SparseContinuous") {
            Kind::SparseContinuous
        } else if s.contains("Binary") {
            Kind::Binary
        } else if s.contains("Continuous") {
            Kind::Continuous
        } else if s.contains("Discrete") {
            Kind::Discrete
        } else {
            Kind::String
        }
    };
    if name.contains("Tensors") {
        // twml's tensor getters: every one has feature_id; GetTensors* add
        // assert_shape, the WithMissingMask ones default_shape and dtype_size.
        let plain = name.starts_with("GetTensors");
        let masked = name.starts_with("GetTensorsWithMissingMask");
        let tensor = Getter::new(
            name,
            a.int("feature_id"),
            plain && a.bool("assert_shape"),
            if masked { a.ints("default_shape") } else { &[] },
            if masked { a.int("dtype_size") } else { 0 },
        )?;
        if let Some(g) = tensor {
            return Ok(Role::Tensor(g));
        }
    }
    if name.starts_with("Decode") {
        let hashed = name.starts_with("DecodeAndHash");
        let requests = name.contains("BatchPredictionRequest");
        // twml's first request decoders have no labels or weights, and its
        // unhashed DataRecord decoder no decode_mode (it has no sparse keys to
        // mix); the attrs say so, the reader only follows.
        let v1 = requests && !name.ends_with("V2");
        let (labels, weights) = if v1 {
            (IdMap::default(), IdMap::default())
        } else {
            (a.columns("label_features")?, a.columns("weight_features")?)
        };
        let has_mode = hashed || name == "DecodeBatchPredictionRequestV2";
        return Ok(Role::Decode(Config {
            keep: a.keep()?,
            num_labels: labels.len(),
            labels,
            num_weights: weights.len(),
            weights,
            mix_names: has_mode && a.mix_names()?,
            hashed,
            requests,
        }));
    }
    if let Some(what) = name
        .strip_prefix("Get")
        .and_then(|s| s.strip_suffix("FromHashedDataRecord"))
    {
        return Ok(Role::Hashed(match what {
            "Ids" => Hashed::Ids,
            "UKeys" => Hashed::UKeys,
            "Keys" => Hashed::Keys,
            "Values" => Hashed::Values,
            "Codes" => Hashed::Codes,
            "Types" => Hashed::Types,
            "BatchSize" => Hashed::BatchSize,
            "TotalSize" => Hashed::TotalSize,
            "Labels" => Hashed::Labels(a.float("default_label")),
            "RequestSplits" => Hashed::RequestSplits,
            _ => Hashed::Weights,
        }));
    }
    Ok(match name {
        "GetBatchSizeFromDataRecord" => Role::BatchSize,
        "GetLabelsFromDataRecord" => Role::Labels(a.float("default_label")),
        "GetWeightsFromDataRecord" => Role::Weights,
        "GetRequestSplitsFromDataRecord" => Role::RequestSplits,
        "GetFeatureSourcesFromDataRecord" => {
            let (ids, codes) = (a.ints("feature_ids"), a.ints("feature_kinds"));
            if ids.len() != codes.len() {
                return Err(a.invalid(
                    "feature_kinds",
                    format_args!(
                        "has {} kinds, feature_ids has {} ids: give the kind each id is read as",
                        codes.len(),
                        ids.len()
                    ),
                ));
            }
            let mut kinds = Vec::with_capacity(codes.len());
            for (i, &code) in codes.iter().enumerate() {
                let Some(&kind) = KINDS.iter().find(|k| **k as i64 == code) else {
                    return Err(a.invalid(
                        "feature_kinds",
                        format_args!(
                            "has {code} at index {i}; a kind is a DataRecord field id: 1 binary, \
                             2 continuous, 3 discrete, 4 string, 5 sparse binary, \
                             6 sparse continuous"
                        ),
                    ));
                };
                kinds.push(kind);
            }
            Role::Sources {
                ids: ids.to_vec(),
                kinds,
            }
        }
        "GetSparseBinaryAsTensor" | "GetSparseContinuousAsTensor" => Role::Sparse {
            kind: kind_of(name),
            id: a.int("feature_id"),
        },
        "GetSparseBinaryAsSparseTensor" | "GetSparseContinuousAsSparseTensor" => {
            Role::SparseTensor {
                kind: kind_of(name),
                id: a.int("feature_id"),
            }
        }
        "GetHashedFeaturesAsSortedSparseTensor" => {
            let mut keep: [IdMap<()>; 6] = Default::default();
            for (k, attr) in keep.iter_mut().zip(SIX) {
                k.extend(a.ints(attr).iter().map(|&id| (id, ())));
            }
            let bits = a.int("hashed_bits");
            if !(1..=MAX_HASHED_BITS).contains(&bits) {
                return Err(a.invalid(
                    "hashed_bits",
                    format_args!(
                        "is {bits}; it must be 1 to {MAX_HASHED_BITS} (each key keeps that many \
                         low bits, and the dense shape 2**bits must fit in an int64)"
                    ),
                ));
            }
            Role::HashedSorted {
                keep,
                mix_names: a.mix_names()?,
                bits: bits as u32,
            }
        }
        "GetHashedFeaturesAsSparseTensor" | "GetHashedFeaturesAsSparseTensorV2" => {
            let v2 = name.ends_with("V2");
            let mut keep: [IdMap<()>; 6] = Default::default();
            for (k, attr) in keep.iter_mut().zip(SIX) {
                k.extend(a.ints(attr).iter().map(|&id| (id, ())));
            }
            Role::HashedSparse {
                keep,
                own_keep: if v2 { Some(a.keep()?) } else { None },
                mix_names: !v2 || a.mix_names()?,
            }
        }
        _ if name.ends_with("Features") => Role::Features(kind_of(name)),
        _ => {
            let group = name.contains("Group");
            let ids = if group {
                a.ints("feature_ids").to_vec()
            } else {
                vec![a.int("feature_id")]
            };
            let mut columns = IdMap::default();
            for (i, &id) in ids.iter().enumerate() {
                if let Some(j) = columns.insert(id, i) {
                    return Err(a.invalid(
                        "feature_ids",
                        format_args!(
                            "has feature id {id} at index {j} and at index {i}; give each \
                             id once (the same column twice is a slice of the output)"
                        ),
                    ));
                }
            }
            let default = match name {
                n if n.contains("Discrete") => Fill::Int(a.int("default_value")),
                n if n.contains("String") => Fill::Bytes(a.bytes("default_value").to_vec()),
                _ => Fill::Float(a.float("default_value")),
            };
            Role::Dense {
                kind: kind_of(name),
                ids,
                columns,
                group,
                default,
            }
        }
    })
}
