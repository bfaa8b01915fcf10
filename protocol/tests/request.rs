// The request readers, judged against requests written by Apache Thrift's
// Rust crate (bpr_thrift_gen, generated at build, used unmodified): every getter's
// outputs against values computed here from the same structs, and every
// malformed input an error (never a panic).
#![allow(clippy::field_reassign_with_default)] // the generated structs have nine optional fields

use bpr_thrift_gen::{data, prediction_service};

use std::collections::{BTreeMap, BTreeSet};

use bpr_protocol::request::{Attr, Outputs, RequestOp};
use bpr_protocol::{feature_id, Error, Result};
use thrift::protocol::{TBinaryOutputProtocol, TSerializable};
use thrift::OrderedFloat;

use data::DataRecord;
use prediction_service::BatchPredictionRequest;

/// Outputs kept in plain vectors.
#[derive(Debug, Default)]
struct Kept {
    shapes: Vec<Vec<usize>>,
    i64s: BTreeMap<usize, Vec<i64>>,
    f32s: BTreeMap<usize, Vec<f32>>,
    i8s: BTreeMap<usize, Vec<i8>>,
    strings: BTreeMap<usize, Vec<Vec<u8>>>,
}

impl Kept {
    fn shape(&mut self, index: usize, dims: &[usize]) -> usize {
        assert_eq!(index, self.shapes.len(), "outputs are asked for in order");
        self.shapes.push(dims.to_vec());
        dims.iter().product()
    }
}

impl Outputs for Kept {
    fn int64(&mut self, index: usize, dims: &[usize]) -> Result<&mut [i64]> {
        let n = self.shape(index, dims);
        Ok(self.i64s.entry(index).or_insert(vec![-7; n]))
    }
    fn float(&mut self, index: usize, dims: &[usize]) -> Result<&mut [f32]> {
        let n = self.shape(index, dims);
        Ok(self.f32s.entry(index).or_insert(vec![-7.0; n]))
    }
    fn int8(&mut self, index: usize, dims: &[usize]) -> Result<&mut [i8]> {
        let n = self.shape(index, dims);
        Ok(self.i8s.entry(index).or_insert(vec![-7; n]))
    }
    fn strings(
        &mut self,
        index: usize,
        dims: &[usize],
        values: &mut dyn Iterator<Item = &[u8]>,
    ) -> Result<()> {
        let n = self.shape(index, dims);
        let v: Vec<Vec<u8>> = values.map(<[u8]>::to_vec).collect();
        assert_eq!(v.len(), n);
        self.strings.insert(index, v);
        Ok(())
    }
}

fn op(name: &str, attrs: &[(&str, Attr<'_>)]) -> RequestOp {
    RequestOp::new(name, attrs).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn get(getter: &RequestOp, batch: &bpr_protocol::request::Batch, messages: &[&[u8]]) -> Kept {
    let mut k = Kept::default();
    getter.get(batch, messages, &mut k).unwrap();
    k
}

fn apache<T: TSerializable>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    let mut p = TBinaryOutputProtocol::new(&mut out, true);
    value.write_to_out_protocol(&mut p).unwrap();
    out
}

fn of(f: f64) -> OrderedFloat<f64> {
    OrderedFloat(f)
}

/// A record with every readable kind (BTreeMaps: Apache writes them sorted).
fn record(seed: i64) -> DataRecord {
    let mut r = DataRecord::default();
    r.binary_features = Some(BTreeSet::from([1, 2 + seed]));
    r.continuous_features = Some(BTreeMap::from([
        (10, of(0.5 + seed as f64)),
        (11, of(f64::NAN)),
        (12, of(-3.25)),
    ]));
    r.discrete_features = Some(BTreeMap::from([(20, 5 + seed), (21, -1)]));
    r.string_features = Some(BTreeMap::from([(30, format!("v{seed}é"))]));
    r.sparse_binary_features = Some(BTreeMap::from([(
        40,
        BTreeSet::from(["a".to_string(), "bc".to_string()]),
    )]));
    r.sparse_continuous_features = Some(BTreeMap::from([(
        50,
        BTreeMap::from([("x".to_string(), of(1.5)), ("y".to_string(), of(f64::NAN))]),
    )]));
    r.blob_features = Some(BTreeMap::from([(60, vec![0xff, 0xfe])]));
    r
}

fn mix_string(id: i64, s: &str) -> i64 {
    let mut h: i32 = 0;
    for &b in s.as_bytes() {
        h = h.wrapping_mul(31).wrapping_add(b as i32);
    }
    id ^ h as i64
}

const ALL: [i64; 12] = [1, 2, 3, 10, 11, 12, 20, 21, 30, 40, 50, 60];

#[test]
fn hashed_rows_of_a_request_with_common_features() {
    let mut common = DataRecord::default();
    common.continuous_features = Some(BTreeMap::from([(12, of(7.0)), (99, of(0.75))]));
    let req = BatchPredictionRequest::new(vec![record(0), record(1)], common);
    let bytes = apache(&req);
    let codes: Vec<i64> = ALL.iter().map(|&id| id * 100).collect();
    let decode = op(
        "DecodeAndHashBatchPredictionRequestV2",
        &[
            ("keep_features", Attr::Ints(&ALL)),
            ("keep_codes", Attr::Ints(&codes)),
            ("label_features", Attr::Ints(&[2, 99, 10])),
            ("weight_features", Attr::Ints(&[12])),
            ("decode_mode", Attr::Int(0)),
        ],
    );
    let batch = decode.decode(&[&bytes], false).unwrap();
    let m: &[&[u8]] = &[&bytes];
    // Per record: the common record's kept rows (12 only: 99 is not kept),
    // then its own in wire order; NaN values give no row.
    let mut want = Vec::new(); // (record, ukey, key, value, type)
    for (i, s) in [(0i64, 0i64), (1, 1)] {
        want.push((i, 12, 12, 7.0f32, 2i8));
        want.push((i, 1, 1, 1.0, 1));
        want.push((i, 2 + s, 2 + s, 1.0, 1));
        want.push((i, 10, 10, 0.5 + s as f32, 2));
        want.push((i, 12, 12, -3.25, 2));
        want.push((i, 20, 20 ^ (17 + 5 + s).wrapping_mul(2_654_435_761), 1.0, 3));
        want.push((i, 21, 21 ^ 16i64.wrapping_mul(2_654_435_761), 1.0, 3));
        want.push((i, 30, mix_string(30, &format!("v{s}é")), 1.0, 4));
        want.push((i, 40, mix_string(40, "a"), 1.0, 5));
        want.push((i, 40, mix_string(40, "bc"), 1.0, 5));
        want.push((i, 50, feature_id("x"), 1.5, 6));
    }
    let col = |g: &str| get(&op(g, &[]), &batch, m);
    assert_eq!(
        col("GetIdsFromHashedDataRecord").i64s[&0],
        want.iter().map(|w| w.0).collect::<Vec<_>>()
    );
    assert_eq!(
        col("GetUKeysFromHashedDataRecord").i64s[&0],
        want.iter().map(|w| w.1).collect::<Vec<_>>()
    );
    assert_eq!(
        col("GetKeysFromHashedDataRecord").i64s[&0],
        want.iter().map(|w| w.2).collect::<Vec<_>>()
    );
    assert_eq!(
        col("GetValuesFromHashedDataRecord").f32s[&0],
        want.iter().map(|w| w.3).collect::<Vec<_>>()
    );
    assert_eq!(
        col("GetTypesFromHashedDataRecord").i8s[&0],
        want.iter().map(|w| w.4).collect::<Vec<_>>()
    );
    assert_eq!(
        col("GetCodesFromHashedDataRecord").i64s[&0],
        want.iter().map(|w| w.1 * 100).collect::<Vec<_>>()
    );
    assert_eq!(
        col("GetTotalSizeFromHashedDataRecord").i64s[&0],
        vec![want.len() as i64]
    );
    assert_eq!(col("GetBatchSizeFromHashedDataRecord").i64s[&0], vec![2]);
    // Labels: 2 is binary in record 0 only; 99 from the common record; 10 is continuous.
    let labels = get(
        &op(
            "GetLabelsFromHashedDataRecord",
            &[("default_label", Attr::Float(-1.0))],
        ),
        &batch,
        m,
    );
    assert_eq!(labels.shapes[0], vec![2, 3]);
    assert_eq!(labels.f32s[&0], vec![1.0, 0.75, 0.5, -1.0, 0.75, 1.5]);
    // Weights: the record's own 12 wins over the common one.
    let weights = get(&op("GetWeightsFromHashedDataRecord", &[]), &batch, m);
    assert_eq!(weights.f32s[&0], vec![-3.25, -3.25]);
}

#[test]
fn data_record_getters_of_several_requests() {
    let mut common = DataRecord::default();
    common.discrete_features = Some(BTreeMap::from([(20, 77), (22, 8)]));
    let a = apache(&BatchPredictionRequest::new(vec![record(0)], common));
    let b = apache(&BatchPredictionRequest::new(
        vec![record(1), DataRecord::default()],
        None,
    ));
    let m: &[&[u8]] = &[&a, &b];
    let decode = op(
        "DecodeBatchPredictionRequestV2",
        &[
            ("keep_features", Attr::Ints(&[20, 22, 30, 40, 50])),
            ("keep_codes", Attr::Ints(&[0; 5])),
            ("label_features", Attr::Ints(&[])),
            ("weight_features", Attr::Ints(&[])),
            ("decode_mode", Attr::Int(0)),
        ],
    );
    let batch = decode.decode(m, true).unwrap();
    assert_eq!(batch.num_records(), 3);
    let d = get(&op("GetDiscreteFeatures", &[]), &batch, m);
    // Record 0: common rows (20, 22), then its own 20 (21 is not kept).
    assert_eq!(d.i64s[&0], vec![0, 0, 0, 1]);
    assert_eq!(d.i64s[&1], vec![20, 22, 20, 20]);
    assert_eq!(d.i64s[&2], vec![77, 8, 5, 6]);
    // Dense: own value first, then the request's common one, then the default.
    let g = get(
        &op(
            "GetDiscreteGroupAsTensor",
            &[
                ("feature_ids", Attr::Ints(&[20, 22, 21])),
                ("default_value", Attr::Int(-9)),
            ],
        ),
        &batch,
        m,
    );
    assert_eq!(g.shapes[0], vec![3, 3]);
    assert_eq!(g.i64s[&0], vec![5, 8, -1, 6, -9, -1, -9, -9, -9]);
    let s = get(
        &op(
            "GetStringAsTensor",
            &[
                ("feature_id", Attr::Int(30)),
                ("default_value", Attr::Str(b"-")),
            ],
        ),
        &batch,
        m,
    );
    assert_eq!(
        s.strings[&0],
        vec![
            "v0é".as_bytes().to_vec(),
            "v1é".as_bytes().to_vec(),
            b"-".to_vec()
        ]
    );
    let sb = get(
        &op("GetSparseBinaryAsTensor", &[("feature_id", Attr::Int(40))]),
        &batch,
        m,
    );
    assert_eq!(sb.i64s[&0], vec![0, 0, 1, 1]);
    assert_eq!(
        sb.strings[&2],
        vec![b"a".to_vec(), b"bc".to_vec(), b"a".to_vec(), b"bc".to_vec()]
    );
    let sc = get(&op("GetSparseContinuousFeatures", &[]), &batch, m);
    assert_eq!(sc.f32s[&2], vec![1.5, 1.5]);
    assert_eq!(sc.strings[&3], vec![b"x".to_vec(), b"x".to_vec()]);
    let c = get(
        &op(
            "GetContinuousAsTensor",
            &[
                ("feature_id", Attr::Int(11)),
                ("default_value", Attr::Float(4.0)),
            ],
        ),
        &batch,
        m,
    );
    assert_eq!(c.f32s[&0], vec![4.0, 4.0, 4.0], "a NaN value is absent");
    let h = get(
        &op(
            "GetHashedFeaturesAsSparseTensorV2",
            &[
                ("binary_keep_features", Attr::Ints(&[])),
                ("continuous_keep_features", Attr::Ints(&[])),
                ("discrete_keep_features", Attr::Ints(&[20])),
                ("string_keep_features", Attr::Ints(&[])),
                ("sparse_binary_keep_features", Attr::Ints(&[])),
                ("sparse_continuous_keep_features", Attr::Ints(&[50])),
                ("keep_features", Attr::Ints(&[20, 50])),
                ("keep_codes", Attr::Ints(&[0, 0])),
                ("decode_mode", Attr::Int(1)),
            ],
        ),
        &batch,
        m,
    );
    let md = |v: i64| 20 ^ (17 + v).wrapping_mul(2_654_435_761);
    assert_eq!(h.i64s[&0], vec![0, 0, 0, 1, 1]);
    assert_eq!(
        h.i64s[&1],
        vec![
            md(77),
            md(5),
            mix_string(50, "x"),
            md(6),
            mix_string(50, "x")
        ]
    );
}

#[test]
fn every_truncation_and_every_corrupted_byte_is_an_error_or_a_batch_never_a_panic() {
    let req = BatchPredictionRequest::new(vec![record(0), record(3)], record(5));
    let bytes = apache(&req);
    let ops = [
        op(
            "DecodeBatchPredictionRequest",
            &[
                ("keep_features", Attr::Ints(&ALL)),
                ("keep_codes", Attr::Ints(&[0; 12])),
            ],
        ),
        op(
            "DecodeAndHashBatchPredictionRequest",
            &[
                ("keep_features", Attr::Ints(&ALL)),
                ("keep_codes", Attr::Ints(&[0; 12])),
                ("decode_mode", Attr::Int(1)),
            ],
        ),
    ];
    for decode in &ops {
        assert!(decode.decode(&[&bytes], false).is_ok());
        for n in 0..bytes.len() {
            let e = decode.decode(&[&bytes[..n]], false).unwrap_err();
            assert!(
                e.message()
                    .starts_with(&format!("{}: input_bytes at byte ", decode.name())),
                "{e}"
            );
        }
        for i in 0..bytes.len() {
            for x in [0u8, 0x7f, 0x80, 0xff] {
                let mut b = bytes.clone();
                b[i] = x;
                let _ = decode.decode(&[&b], false);
            }
        }
    }
}

#[test]
fn malformed_requests_say_where_and_what() {
    let decode = op(
        "DecodeDataRecord",
        &[
            ("keep_features", Attr::Ints(&[])),
            ("keep_codes", Attr::Ints(&[])),
            ("label_features", Attr::Ints(&[])),
            ("weight_features", Attr::Ints(&[])),
        ],
    );
    let err = |m: &[u8]| {
        decode
            .decode(&[b"\0", m], true)
            .unwrap_err()
            .message()
            .to_string()
    };
    // continuousFeatures as map<i64, string>.
    let e = err(&[13, 0, 2, 10, 11, 0, 0, 0, 0, 0]);
    assert_eq!(
        e,
        "DecodeDataRecord: input_bytes[1] at byte 3: DataRecord.continuousFeatures (field 2) must be a \
         map<i64, double>, found a map<i64, string>"
    );
    // A huge count in a short message: refused before allocating.
    let e = err(&[14, 0, 1, 10, 0x7f, 0xff, 0xff, 0xff, 0]);
    assert!(
        e.contains("claims 2147483647 items of at least 8 bytes"),
        "{e}"
    );
    let e = err(&[14, 0, 1, 10, 0xff, 0xff, 0xff, 0xff, 0]);
    assert!(e.contains("negative size, -1"), "{e}");
    // Deep nesting inside an unknown field.
    let mut deep = vec![];
    for _ in 0..100 {
        deep.extend_from_slice(&[12, 0, 99]);
    }
    let e = err(&deep);
    assert!(e.contains("nests deeper than 64"), "{e}");
    // Invalid UTF-8 in a string feature value, at its byte.
    let e = err(&[
        13, 0, 4, 10, 11, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2, b'a', 0xc3, 0,
    ]);
    assert!(
        e.contains("at byte 22: DataRecord.stringFeatures (field 4) must be UTF-8"),
        "{e}"
    );
    // Trailing bytes, a repeated field.
    assert!(err(&[0, 0]).contains("1 bytes after the end of the DataRecord"));
    assert!(
        err(&[14, 0, 1, 10, 0, 0, 0, 0, 14, 0, 1, 10, 0, 0, 0, 0, 0]).contains("appears twice")
    );
    // Unknown fields of any type are skipped.
    let ok = [
        8, 0, 77, 0, 0, 0, 1, 15, 0, 78, 11, 0, 0, 0, 1, 0, 0, 0, 0, 0,
    ];
    assert!(decode.decode(&[&ok], true).is_ok());
}

#[test]
fn bad_attrs_are_refused_when_the_op_is_made() {
    let e = |name: &str, attrs: &[(&str, Attr<'_>)]| -> Error {
        RequestOp::new(name, attrs).unwrap_err()
    };
    let v2 = |keep: &'static [i64], codes: &'static [i64], labels: &'static [i64], mode: i64| {
        e(
            "DecodeAndHashDataRecord",
            &[
                ("keep_features", Attr::Ints(keep)),
                ("keep_codes", Attr::Ints(codes)),
                ("label_features", Attr::Ints(labels)),
                ("weight_features", Attr::Ints(&[])),
                ("decode_mode", Attr::Int(mode)),
            ],
        )
        .to_string()
    };
    assert!(
        v2(&[1, 2], &[0], &[], 0).contains("attr keep_codes has 1 codes, keep_features has 2 ids")
    );
    assert!(v2(&[1, 1], &[0, 1], &[], 0)
        .contains("feature id 1 at index 0 with code 0 and at index 1 with code 1"));
    assert!(v2(&[], &[], &[4, 4], 0)
        .contains("attr label_features has feature id 4 at index 0 and at index 1"));
    assert!(v2(&[], &[], &[], 2).contains("attr decode_mode is 2"));
    assert!(e("GetBinaryFeatures", &[("x", Attr::Int(1))])
        .to_string()
        .contains("has attr x, which bpr_ops does not read"));
    assert!(e("GetLabelsFromDataRecord", &[])
        .to_string()
        .contains("attr default_label (float) is read by bpr_ops but was not given"));
    assert!(e("NoSuchOp", &[])
        .to_string()
        .contains("not a request-side op"));
}

#[test]
fn repeated_keys_in_a_large_map_keep_the_last_value_at_the_first_place() {
    use bpr_protocol::request::{encode_data_record, Record};
    // 40 entries (over the scan-for-repeats size): ids 0..20, then 0..20 again
    // with other values; stock decoders' maps keep the last value per key.
    let mut r = Record::default();
    r.continuous = (0..40).map(|i| (i % 20, i as f64)).collect();
    r.binary = (0..40).map(|i| 100 + i % 25).collect();
    let bytes = encode_data_record(&r).unwrap();
    let ids: Vec<i64> = (0..20).collect();
    let decode = op(
        "DecodeDataRecord",
        &[
            ("keep_features", Attr::Ints(&ids)),
            ("keep_codes", Attr::Ints(&[0; 20])),
            ("label_features", Attr::Ints(&[])),
            ("weight_features", Attr::Ints(&[])),
        ],
    );
    let m: &[&[u8]] = &[&bytes];
    let batch = decode.decode(m, true).unwrap();
    let c = get(&op("GetContinuousFeatures", &[]), &batch, m);
    assert_eq!(c.i64s[&1], ids);
    assert_eq!(c.f32s[&2], (20..40).map(|v| v as f32).collect::<Vec<_>>());
    let b = get(
        &op(
            "GetBinaryGroupAsTensor",
            &[
                ("feature_ids", Attr::Ints(&[100, 124, 125])),
                ("default_value", Attr::Float(0.0)),
            ],
        ),
        &batch,
        m,
    );
    assert_eq!(b.f32s[&0], vec![1.0, 1.0, 0.0]);
}

/// GetFeatureSourcesFromDataRecord on a request Apache Thrift wrote: per
/// record and (id, kind), 1 own, 2 commonFeatures, 3 another kind, 0 absent,
/// over all six kinds; a NaN continuous value is absent, as for the getters.
#[test]
fn feature_sources_of_a_request_with_common_features() {
    let mut common = DataRecord::default();
    common.continuous_features = Some(BTreeMap::from([(12, of(7.0)), (99, of(0.75))]));
    common.discrete_features = Some(BTreeMap::from([(98, 4)]));
    let mut bare = DataRecord::default();
    bare.string_features = Some(BTreeMap::from([(99, "x".to_string())]));
    let req = BatchPredictionRequest::new(vec![record(0), bare], common);
    let bytes = apache(&req);
    let decode = op(
        "DecodeBatchPredictionRequestV2",
        &[
            ("keep_features", Attr::Ints(&[])),
            ("keep_codes", Attr::Ints(&[])),
            ("label_features", Attr::Ints(&[])),
            ("weight_features", Attr::Ints(&[])),
            ("decode_mode", Attr::Int(0)),
        ],
    );
    let batch = decode.decode(&[&bytes], false).unwrap();
    // (id, kind) columns: kinds are DataRecord field ids.
    let columns: [(i64, i64); 11] = [
        (1, 1),  // binary, own in record 0
        (10, 2), // continuous, own
        (11, 2), // continuous NaN: absent
        (12, 2), // own in record 0, common for record 1
        (20, 3), // discrete, own
        (20, 2), // discrete read as continuous
        (30, 4), // string
        (40, 5), // sparse binary
        (50, 6), // sparse continuous
        (99, 2), // common continuous; record 1 also has it as a string
        (98, 2), // common, as discrete only
    ];
    let (ids, kinds): (Vec<i64>, Vec<i64>) = columns.iter().copied().unzip();
    let sources = op(
        "GetFeatureSourcesFromDataRecord",
        &[
            ("feature_ids", Attr::Ints(&ids)),
            ("feature_kinds", Attr::Ints(&kinds)),
        ],
    );
    let got = get(&sources, &batch, &[&bytes]);
    assert_eq!(got.shapes, vec![vec![2, 11]]);
    #[rustfmt::skip]
    let want: Vec<i8> = vec![
        1, 1, 0, 1, 1, 3, 1, 1, 1, 2, 3,
        0, 0, 0, 2, 0, 0, 0, 0, 0, 2, 3,
    ];
    assert_eq!(got.i8s[&0], want);
    // Kinds outside 1..=6 are refused when the op is made, naming the index.
    let e = RequestOp::new(
        "GetFeatureSourcesFromDataRecord",
        &[
            ("feature_ids", Attr::Ints(&[1, 2])),
            ("feature_kinds", Attr::Ints(&[2, 0])),
        ],
    )
    .unwrap_err();
    assert!(e.message().contains("has 0 at index 1"), "{e}");
}

/// Records of more than the scan-for-repeats size, one request: alike
/// (same keys, same order: the decode's no-repeats shortcut and the dense
/// getter's kept columns), then reordered, with a repeat at the same length
/// as the last repeat-free record, with a NaN, empty; a common record.
/// Every cell checked against the rule written here: per record a map's
/// last value per key (NaN absent), else the common record's, else the default.
#[test]
fn dense_groups_of_records_alike_and_unlike() {
    use bpr_protocol::request::{encode_batch_prediction_request, Record};
    let base: Vec<i64> = (0..24).collect();
    let mut keys: Vec<Vec<i64>> = vec![base.clone(), base.clone()];
    keys.push(base.iter().copied().chain([3]).collect()); // a repeat, longer
    keys.push(base.iter().rev().copied().collect()); // reordered
    let mut same_length = base.clone();
    same_length[23] = 1; // a repeat at the length of the last repeat-free map
    keys.push(same_length);
    keys.push(base.clone());
    keys.push(Vec::new());
    keys.push(base.clone());
    let records: Vec<Record> = keys
        .iter()
        .enumerate()
        .map(|(r, ks)| {
            let value = |p: usize, k: i64| {
                if r == 5 && k == 5 {
                    f64::NAN
                } else {
                    (r * 100 + p) as f64 * 0.5 + k as f64
                }
            };
            Record {
                continuous: ks
                    .iter()
                    .enumerate()
                    .map(|(p, &k)| (k, value(p, k)))
                    .collect(),
                discrete: ks
                    .iter()
                    .enumerate()
                    .map(|(p, &k)| (k, (r * 1000 + p) as i64))
                    .collect(),
                binary: ks.iter().map(|&k| k + 1000).collect(),
                ..Record::default()
            }
        })
        .collect();
    let common = Record {
        continuous: vec![(0, -1.0), (30, -2.0)],
        discrete: vec![(30, -3)],
        binary: vec![1030],
        ..Record::default()
    };
    let bytes = encode_batch_prediction_request(&records, Some(&common)).unwrap();
    // Asked: some present, 30 only in the common record, 40 nowhere.
    let asked: Vec<i64> = vec![0, 1, 3, 5, 23, 30, 40, 12];
    let keep: Vec<i64> = (0..=40).collect();
    let decode = op(
        "DecodeBatchPredictionRequestV2",
        &[
            ("keep_features", Attr::Ints(&keep)),
            ("keep_codes", Attr::Ints(&keep)),
            ("label_features", Attr::Ints(&[])),
            ("weight_features", Attr::Ints(&[])),
            ("decode_mode", Attr::Int(0)),
        ],
    );
    let m: &[&[u8]] = &[&bytes];
    let last = |pairs: &[(i64, f64)], id: i64| {
        pairs
            .iter()
            .rev()
            .find(|&&(k, v)| k == id && !v.is_nan())
            .map(|&(_, v)| v)
    };
    let want_f: Vec<f32> = records
        .iter()
        .flat_map(|r| {
            asked.iter().map(|&id| {
                last(&r.continuous, id)
                    .or_else(|| last(&common.continuous, id))
                    .map_or(-9.0, |v| v as f32)
            })
        })
        .collect();
    let want_i: Vec<i64> = records
        .iter()
        .flat_map(|r| {
            asked.iter().map(|&id| {
                let own = r.discrete.iter().rev().find(|e| e.0 == id);
                own.or_else(|| common.discrete.iter().find(|e| e.0 == id))
                    .map_or(-9, |e| e.1)
            })
        })
        .collect();
    // The rows of GetContinuousFeatures: per record its common record's
    // entries, then its own; a map's keys once each, at their first place
    // with their last value (a repeat left unmerged shows as an extra row).
    let merged = |pairs: &[(i64, f64)]| {
        let mut out: Vec<(i64, f64)> = Vec::new();
        for &(k, v) in pairs.iter().filter(|e| !e.1.is_nan()) {
            match out.iter_mut().find(|e| e.0 == k) {
                Some(e) => e.1 = v,
                None => out.push((k, v)),
            }
        }
        out
    };
    let mut want_rows = (Vec::new(), Vec::new(), Vec::new());
    for (r, rec) in records.iter().enumerate() {
        for (k, v) in merged(&common.continuous)
            .into_iter()
            .chain(merged(&rec.continuous))
        {
            want_rows.0.push(r as i64);
            want_rows.1.push(k);
            want_rows.2.push(v as f32);
        }
    }
    let asked_b: Vec<i64> = asked.iter().map(|k| k + 1000).collect();
    let want_b: Vec<f32> = records
        .iter()
        .flat_map(|r| {
            asked_b.iter().map(|id| {
                let any = r.binary.contains(id) || common.binary.contains(id);
                if any {
                    1.0
                } else {
                    -9.0
                }
            })
        })
        .collect();
    let group = |name, ids: &[i64], default| {
        op(
            name,
            &[("feature_ids", Attr::Ints(ids)), ("default_value", default)],
        )
    };
    let cont = group("GetContinuousGroupAsTensor", &asked, Attr::Float(-9.0));
    let disc = group("GetDiscreteGroupAsTensor", &asked, Attr::Int(-9));
    let bin = group("GetBinaryGroupAsTensor", &asked_b, Attr::Float(-9.0));
    // Twice: the second decode reuses the first's released batch.
    for _ in 0..2 {
        let batch = decode.decode(m, true).unwrap();
        let n = records.len();
        let c = get(&cont, &batch, m);
        assert_eq!(c.shapes, vec![vec![n, asked.len()]]);
        assert_eq!(c.f32s[&0], want_f);
        assert_eq!(get(&disc, &batch, m).i64s[&0], want_i);
        let rows = get(&op("GetContinuousFeatures", &[]), &batch, m);
        assert_eq!(rows.i64s[&0], want_rows.0);
        assert_eq!(rows.i64s[&1], want_rows.1);
        assert_eq!(rows.f32s[&2], want_rows.2);
        assert_eq!(get(&bin, &batch, m).f32s[&0], want_b);
        // The single-id getter reads the same cells.
        for (j, &id) in asked.iter().enumerate() {
            let one = op(
                "GetContinuousAsTensor",
                &[
                    ("feature_id", Attr::Int(id)),
                    ("default_value", Attr::Float(-9.0)),
                ],
            );
            let col: Vec<f32> = (0..n).map(|r| want_f[r * asked.len() + j]).collect();
            assert_eq!(get(&one, &batch, m).f32s[&0], col, "id {id}");
        }
        batch.release();
    }
}
