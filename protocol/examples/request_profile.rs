//! A fixed amount of request-decoding work for instruction-count profiles
//! (`valgrind --tool=callgrind`; wall-clock time is noise on a shared machine):
//! one `BatchPredictionRequest` of N records of F continuous features,
//! decoded by `DecodeBatchPredictionRequestV2` and read by
//! `GetContinuousGroupAsTensor` into [N, F], ROUNDS times (the op reuses its
//! released batches, as a server's does). The features of a record are in
//! the order of the getter's ids, as clients that build every record alike
//! send them; `shuffled` as the fourth argument reverses every other record.
//! Prints a checksum of the outputs so the work cannot be optimised away.
//!
//!   cargo run --release -p bpr-protocol --example request_profile [N F ROUNDS [shuffled]]

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

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let num = |i: usize, d: usize| args.get(i).map_or(d, |a| a.parse().expect("N F ROUNDS"));
    let (n, f, rounds) = (num(0, 1024), num(1, 64), num(2, 20));
    let shuffled = args.get(3).is_some_and(|a| a == "shuffled");
    let ids: Vec<i64> = (0..f as i64)
        .map(|j| j.wrapping_mul(0x9E37_79B9_7F4A_7C15u64 as i64))
        .collect();
    let records: Vec<Record> = (0..n)
        .map(|r| {
            let mut continuous: Vec<(i64, f64)> = ids
                .iter()
                .map(|&id| (id, (r as f64) * 0.5 + id as f64 * 1e-20))
                .collect();
            if shuffled && r % 2 == 1 {
                continuous.reverse();
            }
            Record {
                continuous,
                ..Record::default()
            }
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
    let mut sum = 0f64;
    for _ in 0..rounds {
        let b = decode.decode(m, true)?;
        group.get(&b, m, &mut out)?;
        b.release();
        sum += out.0.iter().map(|&x| f64::from(x)).sum::<f64>();
    }
    println!(
        "N={n} F={f} rounds={rounds} request bytes={} checksum={sum}",
        bytes.len()
    );
    Ok(())
}
