//! Before/after of the decode ops' batch reuse (issue 27), in one process:
//! the same request of N records of F continuous features decoded into a
//! DataRecord batch and read densely (`GetContinuousGroupAsTensor`), the
//! batch then either dropped (*fresh*: every decode allocates new vectors, as
//! before) or released (*reused*: the op's next decode reuses its vectors, as
//! the TensorFlow kernels now do). Rounds interleave the two; prints the
//! median (min..max) ns per feature and minor page faults per call.
//!
//!   cargo run --release -p bpr-protocol --example request_reuse_timing [N F ROUNDS]

use std::time::Instant;

use bpr_protocol::request::{encode_batch_prediction_request, Attr, Outputs, Record, RequestOp};
use bpr_protocol::Result;

struct Dense(Vec<f32>);

impl Outputs for Dense {
    fn int64(&mut self, _: usize, _: &[usize]) -> Result<&mut [i64]> {
        unreachable!()
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

/// This process's minor page faults so far (field 10 of /proc/self/stat).
fn minor_faults() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The command name (field 2) may hold spaces: count from its closing ')'.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    rest.split_whitespace()
        .nth(7)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> Result<()> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("N F ROUNDS"))
        .collect();
    let n = *args.first().unwrap_or(&4096);
    let f = *args.get(1).unwrap_or(&16);
    let rounds = *args.get(2).unwrap_or(&31);
    let calls = 20;
    let ids: Vec<i64> = (0..f as i64)
        .map(|j| j.wrapping_mul(0x9E37_79B9_7F4A_7C15u64 as i64))
        .collect();
    let records: Vec<Record> = (0..n)
        .map(|r| Record {
            continuous: ids.iter().map(|&id| (id, r as f64 * 0.5)).collect(),
            ..Record::default()
        })
        .collect();
    let bytes = encode_batch_prediction_request(&records, None)?;
    let decode = RequestOp::new(
        "DecodeBatchPredictionRequestV2",
        &[
            ("keep_features", Attr::Ints(&ids)),
            ("keep_codes", Attr::Ints(&ids)),
            ("label_features", Attr::Ints(&[])),
            ("weight_features", Attr::Ints(&[])),
            ("decode_mode", Attr::Int(0)),
        ],
    )?;
    let group = RequestOp::new(
        "GetContinuousGroupAsTensor",
        &[
            ("feature_ids", Attr::Ints(&ids)),
            ("default_value", Attr::Float(0.0)),
        ],
    )?;
    let m: &[&[u8]] = &[&bytes];
    let mut out = Dense(Vec::new());
    let mut times = [Vec::new(), Vec::new()];
    let mut faults = [0u64, 0u64];
    for round in 0..rounds + 1 {
        for (series, reuse) in [false, true].into_iter().enumerate() {
            let faults0 = minor_faults();
            let t = Instant::now();
            for _ in 0..calls {
                let b = decode.decode(m, true)?;
                group.get(&b, m, &mut out)?;
                if reuse {
                    b.release();
                } else {
                    drop(b);
                }
            }
            let dt = t.elapsed().as_secs_f64() / calls as f64;
            if round > 0 {
                // Round 0 warms both (and fills the op's spares).
                times[series].push(dt / (n * f) as f64 * 1e9);
                faults[series] += minor_faults() - faults0;
            }
        }
    }
    println!("N={n} F={f}: decode + GetContinuousGroupAsTensor, {rounds} interleaved rounds of {calls} calls");
    for (series, name) in ["fresh (dropped)", "reused (released)"].iter().enumerate() {
        let v = &mut times[series];
        let (lo, hi) = (
            v.iter().cloned().fold(f64::MAX, f64::min),
            v.iter().cloned().fold(0.0, f64::max),
        );
        println!(
            "  {name:<18} {:.3} ns/feature ({lo:.3}..{hi:.3}), {:.1} minor faults per call",
            median(v),
            faults[series] as f64 / (rounds * calls) as f64
        );
    }
    Ok(())
}
