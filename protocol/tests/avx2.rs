// The AVX2 writers (`ContinuousPlan::write_avx2`, `TensorPlan::write_avx2`), which the TensorFlow
// op runs on CPUs that have AVX2, against the portable writers, which the golden, property and
// Thrift-decode tests check: the same bytes for every dtype, every key count around the 4- and
// 8-wide steps and the fixed-K loops, rows above and below the 32-byte moves, NaN payloads,
// infinities, zeros, subnormals, with the x86 flags DAZ and FTZ set as TensorFlow sets them, and
// large responses split into shards.
//
// Calling a `#[target_feature]` function needs `unsafe`; each call is behind the CPU check.
#![cfg(target_arch = "x86_64")]

mod common;

use bpr_protocol::{plan_continuous, plan_tensor_response, Data, Runner, Serial, Tensor};
use common::Threads;
use half::{bf16, f16};

fn has_avx2() -> bool {
    let yes = is_x86_feature_detected!("avx2");
    if !yes {
        eprintln!("this CPU has no AVX2: the AVX2 writers cannot run here");
    }
    yes
}

/// xorshift64*: deterministic values, reproducible from the seed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Float bits: one in `odd` a NaN (any payload, quiet or signalling),
    /// infinity, zero or subnormal, either sign; the rest normal numbers.
    fn float_bits(&mut self, exp_bits: u32, man_bits: u32, odd: u64) -> u64 {
        let r = self.next();
        let sign = (r & 1) << (exp_bits + man_bits);
        let exp_max = (1u64 << exp_bits) - 1;
        let man = (r >> 8) & ((1 << man_bits) - 1);
        let exp = if (r >> 1).is_multiple_of(odd) {
            match (r >> 4) % 4 {
                0 => exp_max, // NaN or infinity
                1 => 0,       // zero or subnormal
                2 => exp_max,
                _ => 0,
            }
        } else {
            1 + (r >> 40) % (exp_max - 1)
        };
        sign | exp << man_bits | man
    }
}

/// Owned values of one dtype.
enum Values {
    F32(Vec<f32>),
    F64(Vec<f64>),
    F16(Vec<f16>),
    BF16(Vec<bf16>),
    I32(Vec<i32>),
    I64(Vec<i64>),
    U8(Vec<u8>),
    I8(Vec<i8>),
    Bool(Vec<u8>),
}

const DTYPES: usize = 9;
const FLOATS: usize = 4;

impl Values {
    fn new(dtype: usize, n: usize, rng: &mut Rng, odd: u64) -> Values {
        match dtype {
            0 => Values::F32(
                (0..n)
                    .map(|_| f32::from_bits(rng.float_bits(8, 23, odd) as u32))
                    .collect(),
            ),
            1 => Values::F64(
                (0..n)
                    .map(|_| f64::from_bits(rng.float_bits(11, 52, odd)))
                    .collect(),
            ),
            2 => Values::F16(
                (0..n)
                    .map(|_| f16::from_bits(rng.float_bits(5, 10, odd) as u16))
                    .collect(),
            ),
            3 => Values::BF16(
                (0..n)
                    .map(|_| bf16::from_bits(rng.float_bits(8, 7, odd) as u16))
                    .collect(),
            ),
            4 => Values::I32((0..n).map(|_| rng.next() as i32).collect()),
            5 => Values::I64((0..n).map(|_| rng.next() as i64).collect()),
            6 => Values::U8((0..n).map(|_| rng.next() as u8).collect()),
            7 => Values::I8((0..n).map(|_| rng.next() as i8).collect()),
            _ => Values::Bool((0..n).map(|_| (rng.next() & 1) as u8).collect()),
        }
    }

    fn data(&self) -> Data<'_> {
        match self {
            Values::F32(v) => Data::F32(v),
            Values::F64(v) => Data::F64(v),
            Values::F16(v) => Data::F16(v),
            Values::BF16(v) => Data::BF16(v),
            Values::I32(v) => Data::I32(v),
            Values::I64(v) => Data::I64(v),
            Values::U8(v) => Data::U8(v),
            Values::I8(v) => Data::I8(v),
            Values::Bool(v) => Data::Bool(v),
        }
    }
}

/// Runs `f` with DAZ and FTZ set in this thread's MXCSR, as TensorFlow runs its kernels.
fn with_daz_ftz<T>(f: impl FnOnce() -> T) -> T {
    #[allow(deprecated)]
    use std::arch::x86_64::{_mm_getcsr, _mm_setcsr};
    const DAZ: u32 = 1 << 6;
    const FTZ: u32 = 1 << 15;
    // SAFETY: reading and writing this thread's MXCSR; only the denormal
    // flags change, and they are restored before returning.
    #[allow(deprecated)]
    let old = unsafe { _mm_getcsr() };
    #[allow(deprecated)]
    unsafe {
        _mm_setcsr(old | DAZ | FTZ)
    };
    let out = f();
    #[allow(deprecated)]
    unsafe {
        _mm_setcsr(old)
    };
    out
}

fn continuous_both(
    keys: &Tensor<'_>,
    values: &Tensor<'_>,
    runner: &dyn Runner,
) -> (Vec<u8>, Vec<u8>) {
    let plan = plan_continuous(keys, values).unwrap();
    let mut portable = vec![0xa5; plan.size()];
    let mut avx2 = vec![0x5a; plan.size()];
    plan.write(&mut portable, runner).unwrap();
    // SAFETY: only called after has_avx2().
    unsafe { plan.write_avx2(&mut avx2, runner) }.unwrap();
    (portable, avx2)
}

#[test]
fn continuous_avx2_writes_the_portable_bytes() {
    if !has_avx2() {
        return;
    }
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut cases = 0;
    for dtype in 0..FLOATS {
        // 64 and 70: the general loop with its key vectors built once per call, and past
        // that (built per record).
        for k in [
            0usize, 1, 2, 3, 4, 5, 7, 8, 9, 12, 15, 16, 17, 24, 33, 64, 70,
        ] {
            for batch in [0usize, 1, 2, 3, 7, 64] {
                // odd = 1: every value a NaN, infinity, zero or subnormal;
                // 5: mixed; 1 << 40: all normal (the hardware conversion path).
                for odd in [1u64, 5, 1 << 40] {
                    let keys: Vec<i64> = (0..k).map(|_| rng.next() as i64).collect();
                    let values = Values::new(dtype, batch * k, &mut rng, odd);
                    let (kd, vd) = ([k as i64], [batch as i64, k as i64]);
                    let kt = Tensor::new(&kd, Data::I64(&keys)).unwrap();
                    let vt = Tensor::new(&vd, values.data()).unwrap();
                    let (expected, _) = continuous_both(&kt, &vt, &Serial);
                    let (portable, avx2) = continuous_both(&kt, &vt, &Serial);
                    assert_eq!(avx2, expected, "dtype {dtype} K={k} B={batch} odd={odd}");
                    assert_eq!(portable, expected);
                    // Under DAZ/FTZ the hardware would flush subnormals: neither writer may.
                    let (portable, avx2) = with_daz_ftz(|| continuous_both(&kt, &vt, &Serial));
                    assert_eq!(
                        avx2, expected,
                        "DAZ/FTZ: dtype {dtype} K={k} B={batch} odd={odd}"
                    );
                    assert_eq!(portable, expected, "DAZ/FTZ portable: dtype {dtype} K={k}");
                    cases += 1;
                }
            }
        }
    }
    assert_eq!(cases, FLOATS * 17 * 6 * 3);
}

#[test]
fn continuous_avx2_in_shards_writes_the_portable_bytes() {
    if !has_avx2() {
        return;
    }
    let mut rng = Rng(7);
    // Over the 4 MiB sharding threshold, with K = 16 (a fixed-K loop) and
    // K = 13 (the general loop); shards meet at record boundaries.
    for (k, batch) in [(16usize, 20_011usize), (13, 25_013)] {
        let keys: Vec<i64> = (0..k as i64).map(|i| i * 1_000_003 - 7).collect();
        let values = Values::new(0, batch * k, &mut rng, 9);
        let (kd, vd) = ([k as i64], [batch as i64, k as i64]);
        let kt = Tensor::new(&kd, Data::I64(&keys)).unwrap();
        let vt = Tensor::new(&vd, values.data()).unwrap();
        let (expected, _) = continuous_both(&kt, &vt, &Serial);
        assert!(expected.len() > 4 << 20);
        for threads in [2, 3] {
            let (portable, avx2) = continuous_both(&kt, &vt, &Threads(threads));
            assert_eq!(portable, expected, "K={k} threads {threads}");
            assert_eq!(avx2, expected, "K={k} threads {threads}");
        }
    }
}

fn tensor_both(
    keys: &Tensor<'_>,
    values: &[Tensor<'_>],
    runner: &dyn Runner,
) -> (Vec<u8>, Vec<u8>) {
    let plan = plan_tensor_response(keys, values).unwrap();
    let mut portable = vec![0xa5; plan.size()];
    let mut avx2 = vec![0x5a; plan.size()];
    plan.write(&mut portable, runner).unwrap();
    // SAFETY: only called after has_avx2().
    unsafe { plan.write_avx2(&mut avx2, runner) }.unwrap();
    (portable, avx2)
}

#[test]
fn tensor_avx2_writes_the_portable_bytes() {
    if !has_avx2() {
        return;
    }
    let mut rng = Rng(0x1234_5678);
    // Row shapes: under 32 bytes for every dtype ([], [3]), exactly 32 bytes
    // for 4-byte types ([8]), not a multiple of 32 ([3, 5], [33]), long rows
    // ([2, 40]), and ranks whose framing passes 64 bytes between contents.
    let shapes: &[&[i64]] = &[
        &[],
        &[3],
        &[8],
        &[16],
        &[3, 5],
        &[33],
        &[2, 40],
        &[2, 2, 2, 4],
        &[1, 2, 1, 2, 8],
    ];
    let mut cases = 0;
    for batch in [0usize, 1, 2, 5, 64] {
        for first in 0..DTYPES {
            for shape in shapes {
                // One to four columns: the first of dtype `first`, the others random.
                let columns = 1 + (rng.next() % 4) as usize;
                let mut owned = Vec::new();
                let mut dims = Vec::new();
                for j in 0..columns {
                    let dtype = if j == 0 {
                        first
                    } else {
                        (rng.next() % DTYPES as u64) as usize
                    };
                    let shape: &[i64] = if j == 0 {
                        shape
                    } else {
                        shapes[(rng.next() % shapes.len() as u64) as usize]
                    };
                    let mut d = vec![batch as i64];
                    d.extend_from_slice(shape);
                    let n = d.iter().product::<i64>() as usize;
                    owned.push(Values::new(dtype, n, &mut rng, 4));
                    dims.push(d);
                }
                let keys: Vec<i64> = (0..columns).map(|_| rng.next() as i64).collect();
                let kd = [columns as i64];
                let kt = Tensor::new(&kd, Data::I64(&keys)).unwrap();
                let vts: Vec<Tensor<'_>> = owned
                    .iter()
                    .zip(&dims)
                    .map(|(v, d)| Tensor::new(d, v.data()).unwrap())
                    .collect();
                let (portable, avx2) = tensor_both(&kt, &vts, &Serial);
                assert_eq!(
                    avx2, portable,
                    "B={batch} dtype {first} shape {shape:?} columns {columns}"
                );
                let (_, avx2) = with_daz_ftz(|| tensor_both(&kt, &vts, &Serial));
                assert_eq!(
                    avx2, portable,
                    "DAZ/FTZ: B={batch} dtype {first} shape {shape:?}"
                );
                cases += 1;
            }
        }
    }
    assert_eq!(cases, 5 * DTYPES * shapes.len());
}

#[test]
fn tensor_avx2_in_shards_writes_the_portable_bytes() {
    if !has_avx2() {
        return;
    }
    let mut rng = Rng(99);
    let batch = 12_007usize;
    // 4 x f32 [B, 16] plus an i64 [B, 5] and a u8 [B, 40] column: over 4 MiB.
    let owned = [
        (
            Values::new(0, batch * 16, &mut rng, 9),
            vec![batch as i64, 16],
        ),
        (
            Values::new(0, batch * 16, &mut rng, 9),
            vec![batch as i64, 16],
        ),
        (
            Values::new(5, batch * 5, &mut rng, 9),
            vec![batch as i64, 5],
        ),
        (
            Values::new(6, batch * 40, &mut rng, 9),
            vec![batch as i64, 40],
        ),
        (
            Values::new(0, batch * 16, &mut rng, 9),
            vec![batch as i64, 16],
        ),
        (
            Values::new(0, batch * 16, &mut rng, 9),
            vec![batch as i64, 16],
        ),
    ];
    let keys: Vec<i64> = (1..=owned.len() as i64).collect();
    let kd = [keys.len() as i64];
    let kt = Tensor::new(&kd, Data::I64(&keys)).unwrap();
    let vts: Vec<Tensor<'_>> = owned
        .iter()
        .map(|(v, d)| Tensor::new(d, v.data()).unwrap())
        .collect();
    let (expected, _) = tensor_both(&kt, &vts, &Serial);
    assert!(expected.len() > 4 << 20, "{}", expected.len());
    for threads in [2, 3] {
        let (portable, avx2) = tensor_both(&kt, &vts, &Threads(threads));
        assert_eq!(portable, expected, "threads {threads}");
        assert_eq!(avx2, expected, "threads {threads}");
    }
}
