// TensorPlanCache (what the TensorFlow kernel keeps between calls): whatever
// changes between calls on one cache (keys, dtypes, row shapes, batch, strings,
// bad inputs in between), each call writes exactly the bytes of a fresh
// plan, and fails with exactly a fresh plan's error; also when threads share it.

use bpr_protocol::{plan_tensor_response, Data, Serial, Tensor, TensorPlanCache};
use half::{bf16, f16};

/// The columns of one call, owned: (dims, data) per values tensor.
#[derive(Clone)]
enum Col {
    F32(Vec<i64>, Vec<f32>),
    F64(Vec<i64>, Vec<f64>),
    I64(Vec<i64>, Vec<i64>),
    U8(Vec<i64>, Vec<u8>),
    F16(Vec<i64>, Vec<f16>),
    BF16(Vec<i64>, Vec<bf16>),
    Str(Vec<i64>, Vec<Vec<u8>>),
}

fn elements(dims: &[i64]) -> usize {
    dims.iter().map(|&d| d as usize).product()
}

fn col(kind: u8, dims: &[i64], seed: usize) -> Col {
    let n = elements(dims);
    let d = dims.to_vec();
    let x = |i: usize| ((i + seed) * 2_654_435_761 % 10_007) as f64 / 7.0 - 700.0;
    match kind {
        0 => Col::F32(d, (0..n).map(|i| x(i) as f32).collect()),
        1 => Col::F64(d, (0..n).map(x).collect()),
        2 => Col::I64(d, (0..n).map(|i| x(i) as i64 * 1_000_003).collect()),
        3 => Col::U8(d, (0..n).map(|i| (i + seed) as u8).collect()),
        4 => Col::F16(d, (0..n).map(|i| f16::from_f64(x(i))).collect()),
        5 => Col::BF16(d, (0..n).map(|i| bf16::from_f64(x(i))).collect()),
        _ => Col::Str(
            d,
            (0..n)
                .map(|i| vec![b'a' + ((i + seed) % 26) as u8; (i + seed) % 5])
                .collect(),
        ),
    }
}

fn tensor(c: &Col) -> Tensor<'_> {
    match c {
        Col::F32(d, v) => Tensor::new(d, Data::F32(v)),
        Col::F64(d, v) => Tensor::new(d, Data::F64(v)),
        Col::I64(d, v) => Tensor::new(d, Data::I64(v)),
        Col::U8(d, v) => Tensor::new(d, Data::U8(v)),
        Col::F16(d, v) => Tensor::new(d, Data::F16(v)),
        Col::BF16(d, v) => Tensor::new(d, Data::BF16(v)),
        Col::Str(d, v) => Tensor::new(d, Data::Str(v)),
    }
    .unwrap()
}

#[derive(Clone)]
struct Call {
    keys: Vec<i64>,
    key_dims: Vec<i64>,
    cols: Vec<Col>,
}

fn call(keys: &[i64], cols: Vec<Col>) -> Call {
    Call {
        keys: keys.to_vec(),
        key_dims: vec![keys.len() as i64],
        cols,
    }
}

/// Both writers' bytes of `plan`, or its error (as a string, with its kind).
fn written(
    plan: bpr_protocol::Result<bpr_protocol::TensorPlan<'_>>,
) -> Result<Vec<Vec<u8>>, String> {
    let plan = plan.map_err(|e| format!("{:?}: {e}", e.kind()))?;
    let mut out = vec![0u8; plan.size()];
    plan.write(&mut out, &Serial).unwrap();
    let mut all = vec![out];
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") {
        let mut simd = vec![0u8; plan.size()];
        // SAFETY: this CPU has AVX2 (checked just above).
        unsafe { plan.write_avx2(&mut simd, &Serial) }.unwrap();
        all.push(simd);
    }
    Ok(all)
}

fn check(cache: &TensorPlanCache, c: &Call, what: &str) {
    let keys = Tensor::new(&c.key_dims, Data::I64(&c.keys)).unwrap();
    let values: Vec<Tensor> = c.cols.iter().map(tensor).collect();
    let fresh = written(plan_tensor_response(&keys, &values));
    let cached = written(cache.plan(&keys, &values));
    assert_eq!(cached, fresh, "{what}");
}

/// The calls, in an order where each changes one thing from the one before.
fn sequence() -> Vec<(String, Call)> {
    let mut calls = Vec::new();
    let mut push = |what: &str, c: Call| calls.push((what.to_string(), c));
    let base = || call(&[1, 2], vec![col(0, &[5, 16], 0), col(2, &[5, 3], 1)]);
    push("first call", base());
    push("same kind, new values", {
        let mut c = base();
        c.cols[0] = col(0, &[5, 16], 9);
        c
    });
    push(
        "another batch size",
        call(&[1, 2], vec![col(0, &[9, 16], 2), col(2, &[9, 3], 3)]),
    );
    push(
        "a batch of 0",
        call(&[1, 2], vec![col(0, &[0, 16], 0), col(2, &[0, 3], 0)]),
    );
    push(
        "other keys",
        call(&[7, 2], vec![col(0, &[5, 16], 0), col(2, &[5, 3], 1)]),
    );
    push(
        "keys swapped",
        call(&[2, 7], vec![col(0, &[5, 16], 0), col(2, &[5, 3], 1)]),
    );
    push(
        "another dtype",
        call(&[2, 7], vec![col(1, &[5, 16], 0), col(2, &[5, 3], 1)]),
    );
    push(
        "f16 (widened)",
        call(&[2, 7], vec![col(4, &[5, 16], 0), col(2, &[5, 3], 1)]),
    );
    push(
        "bf16 (widened)",
        call(&[2, 7], vec![col(5, &[5, 16], 0), col(2, &[5, 3], 1)]),
    );
    push(
        "another row shape",
        call(&[2, 7], vec![col(5, &[5, 4, 4], 0), col(2, &[5, 3], 1)]),
    );
    push(
        "same elements, other shape",
        call(&[2, 7], vec![col(5, &[5, 2, 8], 0), col(2, &[5, 3], 1)]),
    );
    push(
        "rank 1 rows",
        call(&[2, 7], vec![col(5, &[5], 0), col(2, &[5], 1)]),
    );
    push(
        "an empty row",
        call(&[2, 7], vec![col(3, &[5, 0], 0), col(2, &[5, 1], 1)]),
    );
    push(
        "a string column",
        call(&[2, 7], vec![col(6, &[5, 2], 0), col(2, &[5, 3], 1)]),
    );
    push(
        "other strings",
        call(&[2, 7], vec![col(6, &[5, 2], 4), col(2, &[5, 3], 1)]),
    );
    push(
        "more strings",
        call(&[2, 7], vec![col(6, &[11, 2], 4), col(2, &[11, 3], 1)]),
    );
    push(
        "one column more",
        call(
            &[2, 7, 9],
            vec![col(6, &[5, 2], 0), col(2, &[5, 3], 1), col(0, &[5, 8], 2)],
        ),
    );
    push("one column less", call(&[2], vec![col(6, &[5, 2], 0)]));
    push("u8 rows of 40 bytes", call(&[2], vec![col(3, &[6, 40], 0)]));
    push(
        "bad: batch sizes differ",
        call(&[2, 3], vec![col(3, &[6, 40], 0), col(3, &[5, 40], 0)]),
    );
    push(
        "u8 rows of 40 bytes again",
        call(&[2], vec![col(3, &[6, 40], 0)]),
    );
    push("bad: a scalar", call(&[2], vec![col(0, &[], 0)]));
    push(
        "bad: duplicate keys",
        call(&[2, 2], vec![col(3, &[6, 40], 0), col(3, &[6, 40], 0)]),
    );
    push(
        "bad: more keys than values",
        call(&[2, 5], vec![col(3, &[6, 40], 0)]),
    );
    push("bad: no keys", call(&[], vec![]));
    push(
        "u8 rows after errors",
        call(&[2], vec![col(3, &[6, 40], 1)]),
    );
    push("bad: the same kind with a batch mismatch", {
        call(&[2, 3], vec![col(3, &[6, 40], 0), col(3, &[6, 40], 0)])
    });
    push("bad: the same kind, now a batch mismatch", {
        call(&[2, 3], vec![col(3, &[6, 40], 0), col(3, &[7, 40], 0)])
    });
    push(
        "rows over 64 bytes of framing (rank 6)",
        call(&[4], vec![col(0, &[3, 1, 2, 1, 2, 1, 8], 0)]),
    );
    push("rank-2 keys (an error)", {
        let mut c = call(&[4], vec![col(0, &[3, 8], 0)]);
        c.key_dims = vec![1, 1];
        c
    });
    push("rank-1 keys again", call(&[4], vec![col(0, &[3, 8], 0)]));
    calls
}

#[test]
fn every_call_on_one_cache_writes_a_fresh_plans_bytes_or_error() {
    let cache = TensorPlanCache::new();
    for (what, c) in sequence() {
        check(&cache, &c, &what);
    }
    // And each call again straight after itself (the cache then holds its frame).
    for (what, c) in sequence() {
        check(&cache, &c, &what);
        check(&cache, &c, &format!("{what}, repeated"));
    }
}

#[test]
fn threads_sharing_one_cache_each_get_their_own_calls_bytes() {
    let cache = TensorPlanCache::new();
    let calls: Vec<(String, Call)> = sequence();
    std::thread::scope(|s| {
        for t in 0..4 {
            let (cache, calls) = (&cache, &calls);
            s.spawn(move || {
                for round in 0..30 {
                    // Threads walk the calls from different points, so the
                    // cache's frame keeps changing under each of them.
                    let (what, c) = &calls[(t * 7 + round * 3) % calls.len()];
                    check(cache, c, &format!("thread {t}: {what}"));
                }
            });
        }
    });
}
