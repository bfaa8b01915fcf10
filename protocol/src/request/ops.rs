//! twml's request-side ops, by registered name: each op's attrs validated
//! once ([`RequestOp::new`]), decode ops making a [`Batch`], getters writing
//! their outputs through [`Outputs`]. This is all of their logic; a host (the
//! TensorFlow shim, or any other) only passes attrs, bytes and buffers.

use super::batch::{self, mix_discrete, mix_string, Batch, Config, IdMap, Ranges, Spares};
use super::outputs::Outputs;
use super::read::{Kind, Span, KINDS};
use super::tensor_getters::Getter;
use crate::widen::f64_to_f32;
use crate::{feature_id_bytes, Error, Result};
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

#[derive(Clone, Debug)]
enum Fill {
    Float(f32),
    Int(i64),
    Bytes(Vec<u8>),
}

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

/// `int64 [M + 1]`: message m's records are `splits[m]..splits[m + 1]`.
fn request_splits(b: &Batch, out: &mut dyn Outputs) -> Result<()> {
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
fn sources(b: &Batch, ids: &[i64], kinds: &[Kind], out: &mut dyn Outputs) -> Result<()> {
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
fn labels(out: &mut dyn Outputs, v: &[f32], b: usize, n: usize, default: f32) -> Result<()> {
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
fn features(b: &Batch, messages: &[&[u8]], kind: Kind, out: &mut dyn Outputs) -> Result<()> {
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
fn dense(
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
fn sparse(b: &Batch, messages: &[&[u8]], kind: Kind, id: i64, out: &mut dyn Outputs) -> Result<()> {
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
fn hashed_sparse(
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
const MAX_HASHED_BITS: i64 = 62;

/// GetSparse{Binary,Continuous}AsSparseTensor: the entries of `id` as a
/// SparseTensor [B, N] (N the most entries a record has), as
/// `tf.io.parse_example` gives a `VarLenFeature`: record r's entries (its
/// common record's, then its own, in wire order) at [r, 0], [r, 1], ...
/// Outputs: indices [T, 2], the strings (set elements or map keys) [T],
/// sparse continuous also the values [T], then dense_shape [2].
fn sparse_tensor(
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
fn hashed_sorted(
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
