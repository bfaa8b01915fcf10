//! A fixed amount of sparse and hashed request-reading work for
//! instruction-count profiles (`valgrind --tool=callgrind`; wall-clock time is
//! noise on a shared machine): one `BatchPredictionRequest` of N records, each
//! with a sparse binary feature of K strings and a sparse continuous feature
//! of K (name, value) pairs (benchmarks/bench_sparse.py's data), decoded by
//! `DecodeBatchPredictionRequestV2` and read ROUNDS times by what
//! `BatchPredictionRequestReader` runs:
//!   sparse: the two sparse getters (`GetSparseBinaryAsTensor`, `GetSparseContinuousAsTensor`);
//!   hashed: `GetHashedFeaturesAsSparseTensorV2` once per kind (the reader's old graph);
//!   fused-sparse / fused-hashed: the reader's fused getters, if this build has them.
//! Prints a checksum of the outputs so the work cannot be optimised away.
//!
//!   cargo run --release -p bpr-protocol --example sparse_profile [MODE N K ROUNDS]

use bpr_protocol::request::{encode_batch_prediction_request, Attr, Outputs, Record, RequestOp};
use bpr_protocol::Result;

/// Keeps every output's buffer (reused across rounds) and sums what it saw.
#[derive(Default)]
struct Sink {
    ints: Vec<Vec<i64>>,
    floats: Vec<Vec<f32>>,
    bytes: Vec<Vec<i8>>,
    sum: f64,
}

fn slot<T: Default + Clone>(v: &mut Vec<Vec<T>>, i: usize, n: usize) -> &mut [T] {
    if v.len() <= i {
        v.resize(i + 1, Vec::new());
    }
    v[i].clear();
    v[i].resize(n, T::default());
    &mut v[i]
}

impl Outputs for Sink {
    fn int64(&mut self, i: usize, dims: &[usize]) -> Result<&mut [i64]> {
        Ok(slot(&mut self.ints, i, dims.iter().product()))
    }
    fn float(&mut self, i: usize, dims: &[usize]) -> Result<&mut [f32]> {
        Ok(slot(&mut self.floats, i, dims.iter().product()))
    }
    fn int8(&mut self, i: usize, dims: &[usize]) -> Result<&mut [i8]> {
        Ok(slot(&mut self.bytes, i, dims.iter().product()))
    }
    fn strings(
        &mut self,
        _: usize,
        _: &[usize],
        it: &mut dyn Iterator<Item = &[u8]>,
    ) -> Result<()> {
        // What TensorFlow's tstring assign costs at least: a look at the bytes.
        self.sum += it.map(|s| s.len() as f64).sum::<f64>();
        Ok(())
    }
}

impl Sink {
    fn fold(&mut self) {
        self.sum += self
            .ints
            .iter()
            .flatten()
            .map(|&x| (x & 0xffff) as f64)
            .sum::<f64>();
        self.sum += self
            .floats
            .iter()
            .flatten()
            .map(|&x| f64::from(x))
            .sum::<f64>();
        self.sum += self
            .bytes
            .iter()
            .flatten()
            .map(|&x| f64::from(x))
            .sum::<f64>();
    }
}

const TAGS: i64 = 0x1234_5678_9abc;
const TOPICS: i64 = 0x2345_6789_abcd;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = args.first().map_or("sparse", |s| s.as_str()).to_string();
    let num = |i: usize, d: usize| {
        args.get(i)
            .map_or(d, |a| a.parse().expect("MODE N K ROUNDS"))
    };
    let (n, k, rounds) = (num(1, 1024), num(2, 32), num(3, 10));
    // A fixed pseudo-random stream: the same request in every run.
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let records: Vec<Record> = (0..n)
        .map(|_| Record {
            sparse_binary: vec![(
                TAGS,
                (0..k)
                    .map(|j| format!("tag_{j}_{}", next() % 65536).into_bytes())
                    .collect(),
            )],
            sparse_continuous: vec![(
                TOPICS,
                (0..k)
                    .map(|j| {
                        let v = (next() % 2000) as f64 / 1000.0 - 1.0;
                        (format!("topic_{j}_{}", next() % 65536).into_bytes(), v)
                    })
                    .collect(),
            )],
            ..Record::default()
        })
        .collect();
    let bytes = encode_batch_prediction_request(&records, None)?;
    let keep = [TAGS, TOPICS];
    let decode = RequestOp::new(
        "DecodeBatchPredictionRequestV2",
        &[
            ("keep_features", Attr::Ints(&keep)),
            ("keep_codes", Attr::Ints(&[0, 0])),
            ("label_features", Attr::Ints(&[])),
            ("weight_features", Attr::Ints(&[])),
            ("decode_mode", Attr::Int(0)),
        ],
    )?;
    let hashed = |binary: &[i64], continuous: &[i64]| {
        let none: &[i64] = &[];
        RequestOp::new(
            "GetHashedFeaturesAsSparseTensorV2",
            &[
                ("binary_keep_features", Attr::Ints(none)),
                ("continuous_keep_features", Attr::Ints(none)),
                ("discrete_keep_features", Attr::Ints(none)),
                ("string_keep_features", Attr::Ints(none)),
                ("sparse_binary_keep_features", Attr::Ints(binary)),
                ("sparse_continuous_keep_features", Attr::Ints(continuous)),
                ("keep_features", Attr::Ints(&keep)),
                ("keep_codes", Attr::Ints(&[0, 0])),
                ("decode_mode", Attr::Int(0)),
            ],
        )
    };
    let getters: Vec<RequestOp> = match mode.as_str() {
        "sparse" => vec![
            RequestOp::new(
                "GetSparseBinaryAsTensor",
                &[("feature_id", Attr::Int(TAGS))],
            )?,
            RequestOp::new(
                "GetSparseContinuousAsTensor",
                &[("feature_id", Attr::Int(TOPICS))],
            )?,
        ],
        "hashed" => vec![hashed(&[TAGS], &[])?, hashed(&[], &[TOPICS])?],
        "fused-sparse" => vec![
            RequestOp::new(
                "GetSparseBinaryAsSparseTensor",
                &[("feature_id", Attr::Int(TAGS))],
            )?,
            RequestOp::new(
                "GetSparseContinuousAsSparseTensor",
                &[("feature_id", Attr::Int(TOPICS))],
            )?,
        ],
        "fused-hashed" => {
            let none: &[i64] = &[];
            vec![RequestOp::new(
                "GetHashedFeaturesAsSortedSparseTensor",
                &[
                    ("binary_keep_features", Attr::Ints(none)),
                    ("continuous_keep_features", Attr::Ints(none)),
                    ("discrete_keep_features", Attr::Ints(none)),
                    ("string_keep_features", Attr::Ints(none)),
                    ("sparse_binary_keep_features", Attr::Ints(&[TAGS])),
                    ("sparse_continuous_keep_features", Attr::Ints(&[TOPICS])),
                    ("decode_mode", Attr::Int(0)),
                    ("hashed_bits", Attr::Int(20)),
                ],
            )?]
        }
        "decode" => vec![],
        other => {
            panic!("MODE is sparse, hashed, fused-sparse, fused-hashed or decode, got {other}")
        }
    };
    let m: &[&[u8]] = &[&bytes];
    let mut out = Sink::default();
    for _ in 0..rounds {
        let b = decode.decode(m, true)?;
        for g in &getters {
            g.get(&b, m, &mut out)?;
            out.fold();
        }
        b.release();
    }
    println!(
        "{mode} N={n} K={k} rounds={rounds} request bytes={} checksum={}",
        bytes.len(),
        out.sum
    );
    Ok(())
}
