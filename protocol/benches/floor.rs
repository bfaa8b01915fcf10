//! The encoder alone against the floor of its job: `write_*` into a
//! preallocated buffer against filling that same buffer with one byte value
//! (`slice::fill`, a memset), on the cases of the graph-mode benchmark
//! (benchmarks/bench_graph.py). Single thread, no TensorFlow.
//!
//! Run: `cargo bench -p bpr-protocol --bench floor [-- --runs 5 --out FILE --cases TEXT]`.
//! Each run alternates write / fill for a number of rounds and keeps the
//! median of each; the JSON written to `--out` holds every run.

use bpr_protocol::{
    continuous_size, plan_continuous, plan_tensor_response, tensor_response_size, write_continuous,
    write_tensor_response, Data, Serial, Tensor,
};
use std::hint::black_box;
use std::time::Instant;

/// Deterministic values with varied bits (no NaN, no subnormal: the common case).
fn values(n: usize, seed: usize) -> Vec<f32> {
    (0..n)
        .map(|i| (((i + seed) * 2_654_435_761) % 100_003) as f32 / 7.0 - 7000.0)
        .collect()
}

/// Seconds per call of `f`, repeated so one sample lasts about 2 ms.
fn per_call(reps: usize, f: &mut dyn FnMut()) -> f64 {
    let t0 = Instant::now();
    for _ in 0..reps {
        f();
    }
    t0.elapsed().as_secs_f64() / reps as f64
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Median seconds per call of each series, interleaved round by round (the
/// first series, the slowest, sets the repetitions).
fn compare(series: &mut [&mut dyn FnMut()], rounds: usize) -> Vec<f64> {
    let once = per_call(3, series[0]).max(1e-9);
    let reps = ((2e-3 / once) as usize).clamp(1, 1_000_000);
    let mut times = vec![Vec::new(); series.len()];
    for _ in 0..rounds {
        for (f, t) in series.iter_mut().zip(&mut times) {
            t.push(per_call(reps, *f));
        }
    }
    times.iter_mut().map(|t| median(t)).collect()
}

/// Whether this CPU runs the AVX2 writers.
fn avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

struct Row {
    case: String,
    bytes: usize,
    /// The portable writer (`write_*`).
    write_s: f64,
    /// The AVX2 writer, on a CPU that has it (the TensorFlow op's choice).
    avx2_s: Option<f64>,
    fill_s: f64,
}

/// One row: the portable `write`, the AVX2 `simd` (when the CPU has AVX2) and
/// a memset of the same size, interleaved; both writers' bytes must agree.
fn measure(
    case: String,
    size: usize,
    write: &mut dyn FnMut(&mut [u8]),
    simd: &mut dyn FnMut(&mut [u8]),
    rounds: usize,
) -> Row {
    let (mut out, mut out2, mut buf) = (vec![0u8; size], vec![0u8; size], vec![0u8; size]);
    let mut w = || write(&mut out);
    let mut fill = || black_box(&mut buf[..]).fill(black_box(7));
    let (write_s, avx2_s, fill_s) = if avx2() {
        let mut s = || simd(&mut out2);
        let t = compare(&mut [&mut w, &mut s, &mut fill], rounds);
        (t[0], Some(t[1]), t[2])
    } else {
        let t = compare(&mut [&mut w, &mut fill], rounds);
        (t[0], None, t[1])
    };
    if avx2_s.is_some() {
        assert_eq!(out, out2, "{case}: the AVX2 writer's bytes differ");
    }
    Row {
        case,
        bytes: size,
        write_s,
        avx2_s,
        fill_s,
    }
}

fn run(rounds: usize, only: &str) -> Vec<Row> {
    let mut rows = Vec::new();
    for &(batch, k) in &[
        (1usize, 1usize),
        (64, 4),
        (1024, 4),
        (8192, 16),
        (65536, 16),
    ] {
        if !format!("continuous f32 B={batch} K={k}").contains(only) {
            continue;
        }
        let keys: Vec<i64> = (100..100 + k as i64).collect();
        let v = values(batch * k, 0);
        let (kd, vd) = ([k as i64], [batch as i64, k as i64]);
        let kt = Tensor::new(&kd, Data::I64(&keys)).unwrap();
        let vt = Tensor::new(&vd, Data::F32(&v)).unwrap();
        let plan = plan_continuous(&kt, &vt).unwrap();
        rows.push(measure(
            format!("continuous f32 B={batch} K={k}"),
            continuous_size(&kt, &vt).unwrap(),
            &mut |out| write_continuous(black_box(&kt), black_box(&vt), out).unwrap(),
            // SAFETY: measure() calls this only when avx2() found AVX2.
            #[cfg(target_arch = "x86_64")]
            &mut |out| unsafe { black_box(&plan).write_avx2(out, &Serial) }.unwrap(),
            #[cfg(not(target_arch = "x86_64"))]
            &mut |_| unreachable!(),
            rounds,
        ));
    }
    for &batch in &[64usize, 1024, 16384] {
        if !format!("tensor 4 x f32 [B,16] B={batch}").contains(only) {
            continue;
        }
        let keys: Vec<i64> = (1..=4).collect();
        let cols: Vec<Vec<f32>> = (0..4).map(|j| values(batch * 16, j)).collect();
        let (kd, vd) = ([4i64], [batch as i64, 16]);
        let kt = Tensor::new(&kd, Data::I64(&keys)).unwrap();
        let vts: Vec<Tensor> = cols
            .iter()
            .map(|c| Tensor::new(&vd, Data::F32(c)).unwrap())
            .collect();
        let plan = plan_tensor_response(&kt, &vts).unwrap();
        rows.push(measure(
            format!("tensor 4 x f32 [B,16] B={batch}"),
            tensor_response_size(&kt, &vts).unwrap(),
            &mut |out| write_tensor_response(black_box(&kt), black_box(&vts), out).unwrap(),
            // SAFETY: measure() calls this only when avx2() found AVX2.
            #[cfg(target_arch = "x86_64")]
            &mut |out| unsafe { black_box(&plan).write_avx2(out, &Serial) }.unwrap(),
            #[cfg(not(target_arch = "x86_64"))]
            &mut |_| unreachable!(),
            rounds,
        ));
    }
    rows
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let runs: usize = flag("--runs").map_or(5, |s| s.parse().expect("--runs N"));
    let rounds: usize = flag("--rounds").map_or(15, |s| s.parse().expect("--rounds N"));
    // Only the cases whose name contains this text (all by default).
    let only = flag("--cases").unwrap_or_default();
    let mut json = Vec::new();
    for r in 0..runs {
        let rows = run(rounds, &only);
        for row in &rows {
            let simd = row.avx2_s.map_or(String::new(), |s| {
                format!(
                    "  avx2 {:>10.2} us  avx2/memset {:5.2}",
                    s * 1e6,
                    s / row.fill_s
                )
            });
            println!(
                "run {} {:34} {:>11} B  write {:>10.2} us  memset {:>10.2} us  write/memset {:5.2}{simd}",
                r + 1,
                row.case,
                row.bytes,
                row.write_s * 1e6,
                row.fill_s * 1e6,
                row.write_s / row.fill_s
            );
        }
        json.push(
            rows.iter()
                .map(|row| {
                    format!(
                        "{{\"case\": \"{}\", \"bytes\": {}, \"write_s\": {:e}, \"avx2_s\": {}, \"fill_s\": {:e}}}",
                        row.case,
                        row.bytes,
                        row.write_s,
                        row.avx2_s.map_or("null".to_string(), |s| format!("{s:e}")),
                        row.fill_s
                    )
                })
                .collect::<Vec<_>>()
                .join(",\n    "),
        );
    }
    if let Some(path) = flag("--out") {
        let body = format!("[\n  [\n    {}\n  ]\n]\n", json.join("\n  ],\n  [\n    "));
        std::fs::write(&path, body).expect("write --out");
        println!("wrote {path}");
    }
}
