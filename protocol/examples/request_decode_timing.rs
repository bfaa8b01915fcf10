//! Times the request readers alone (no TensorFlow): one request of N records
//! of F continuous features, decoded into a DataRecord batch and read densely
//! (`GetContinuousGroupAsTensor`), and decoded into hashed rows. Prints ns per
//! feature, the median of 15 rounds. For profiling (`perf stat`, `perf record`).
//!
//!   cargo run --release -p bpr-protocol --example request_decode_timing [N F]

use std::time::Instant;

use bpr_protocol::request::{encode_batch_prediction_request, Attr, Outputs, Record, RequestOp};
use bpr_protocol::Result;

struct Dense(Vec<f32>, Vec<i64>);

impl Outputs for Dense {
    fn int64(&mut self, _: usize, dims: &[usize]) -> Result<&mut [i64]> {
        self.1.resize(dims.iter().product(), 0);
        Ok(&mut self.1)
    }
    fn float(&mut self, _: usize, dims: &[usize]) -> Result<&mut [f32]> {
        self.0.resize(dims.iter().product(), 0.0);
        Ok(&mut self.0)
    }
    fn int8(&mut self, _: usize, _: &[usize]) -> Result<&mut [i8]> {
        unreachable!()
    }
    fn strings(&mut self, _: usize, _: &[usize], _: &mut dyn Iterator<Item = &[u8]>) -> Result<()> {
        unreachable!()
    }
}

fn main() -> Result<()> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("N F"))
        .collect();
    let (n, f) = (*args.first().unwrap_or(&1024), *args.get(1).unwrap_or(&256));
    let ids: Vec<i64> = (0..f as i64)
        .map(|j| j.wrapping_mul(0x9E37_79B9_7F4A_7C15u64 as i64))
        .collect();
    let records: Vec<Record> = (0..n)
        .map(|r| Record {
            continuous: ids
                .iter()
                .map(|&id| (id, (r as f64) * 0.5 + id as f64 * 1e-20))
                .collect(),
            ..Record::default()
        })
        .collect();
    let bytes = encode_batch_prediction_request(&records, None)?;
    let v2 = |name| {
        RequestOp::new(
            name,
            &[
                ("keep_features", Attr::Ints(&ids)),
                ("keep_codes", Attr::Ints(&ids)),
                ("label_features", Attr::Ints(&[])),
                ("weight_features", Attr::Ints(&[])),
                ("decode_mode", Attr::Int(0)),
            ],
        )
    };
    let dense = v2("DecodeBatchPredictionRequestV2")?;
    let hashed = v2("DecodeAndHashBatchPredictionRequestV2")?;
    let group = RequestOp::new(
        "GetContinuousGroupAsTensor",
        &[
            ("feature_ids", Attr::Ints(&ids)),
            ("default_value", Attr::Float(0.0)),
        ],
    )?;
    let values = RequestOp::new("GetValuesFromHashedDataRecord", &[])?;
    let m: &[&[u8]] = &[&bytes];
    let mut out = Dense(Vec::new(), Vec::new());
    let per_feature = |t: f64| t / (n * f) as f64 * 1e9;
    let mut times = [Vec::new(), Vec::new()];
    for _ in 0..15 {
        let t = Instant::now();
        let b = dense.decode(m, true)?;
        group.get(&b, m, &mut out)?;
        times[0].push(per_feature(t.elapsed().as_secs_f64()));
        let t = Instant::now();
        let b = hashed.decode(m, true)?;
        values.get(&b, m, &mut out)?;
        times[1].push(per_feature(t.elapsed().as_secs_f64()));
    }
    for (name, mut t) in [
        "dense (DataRecord handle + group getter)",
        "hashed (rows + values getter)",
    ]
    .into_iter()
    .zip(times)
    {
        t.sort_by(f64::total_cmp);
        println!(
            "N={n} F={f} {name}: {:.1} ns/feature (min {:.1})",
            t[t.len() / 2],
            t[0]
        );
    }
    Ok(())
}
