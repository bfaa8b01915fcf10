// Property tests of the encoder on arbitrary inputs, valid or not: every input either encodes to
// bytes that Apache Thrift's Rust crate decodes to exactly the input, or is rejected with an
// InvalidArgument error and a message; nothing panics, and the size step agrees with the write.

mod common;

use bpr_protocol::{
    continuous_size, encode_continuous, encode_tensor_response, tensor_response_size, Data,
    ErrorKind, Tensor,
};
use half::{bf16, f16};
use proptest::prelude::*;

use common::{decode, widen_bf16, widen_f16, widen_f32, Column, Record, Rng, DTYPES, STR};

/// Outputs up to this size are encoded and decoded; larger legal sizes (zero-element tensors
/// with huge dims) are only checked against the size model.
const ENCODE_UP_TO: u128 = 1 << 22;

// ---------------------------------------------------------------------------
// Inputs
// ---------------------------------------------------------------------------

// Element values come from a small deterministic generator ([`Rng`]): proptest shrinks the
// shapes and keys, and the seed reproduces the values.

impl Rng {
    /// Float bit patterns biased to the interesting ones: NaNs with payloads (quiet and
    /// signalling, both signs), infinities, zeros, subnormals, extremes, and any bits.
    fn float_bits(&mut self, sign: u64, exp_mask: u64, mant_bits: u32) -> u64 {
        let r = self.next();
        let mant_mask = (1u64 << mant_bits) - 1;
        let s = if r & 1 == 0 { 0 } else { sign };
        match (r >> 1) % 8 {
            0 => s | exp_mask | (1 + (r >> 8) % mant_mask), // NaN, any payload
            1 => s | exp_mask,                              // infinity
            2 => s,                                         // zero
            3 => s | (1 + (r >> 8) % mant_mask),            // subnormal
            4 => s | (exp_mask - (1 << mant_bits)) | mant_mask, // largest finite
            _ => r >> 4,
        }
    }
}

impl Column {
    fn fill(dtype: usize, n: usize, seed: u64) -> Column {
        let mut g = Rng(seed);
        let g = &mut g;
        match dtype {
            0 => Column::F32(
                (0..n)
                    .map(|_| f32::from_bits(g.float_bits(1 << 31, 0xff << 23, 23) as u32))
                    .collect(),
            ),
            1 => Column::F64(
                (0..n)
                    .map(|_| f64::from_bits(g.float_bits(1 << 63, 0x7ff << 52, 52)))
                    .collect(),
            ),
            2 => Column::F16(
                (0..n)
                    .map(|_| f16::from_bits(g.float_bits(1 << 15, 0x1f << 10, 10) as u16))
                    .collect(),
            ),
            3 => Column::BF16(
                (0..n)
                    .map(|_| bf16::from_bits(g.float_bits(1 << 15, 0xff << 7, 7) as u16))
                    .collect(),
            ),
            4 => Column::I32((0..n).map(|_| extreme(g) as i32).collect()),
            5 => Column::I64((0..n).map(|_| extreme(g)).collect()),
            6 => Column::U8((0..n).map(|_| g.next() as u8).collect()),
            7 => Column::Bool((0..n).map(|_| (g.next() & 1) as u8).collect()),
            STR => Column::Str((0..n).map(|_| string(g)).collect()),
            9 => Column::I8((0..n).map(|_| g.next() as i8).collect()),
            _ => unreachable!(),
        }
    }

    fn is_float(&self) -> bool {
        matches!(
            self,
            Column::F32(_) | Column::F64(_) | Column::F16(_) | Column::BF16(_)
        )
    }

    /// Element `i` as the double the continuous op must write (bits).
    fn as_f64_bits(&self, i: usize) -> u64 {
        match self {
            Column::F32(v) => widen_f32(v[i].to_bits()),
            Column::F64(v) => v[i].to_bits(),
            Column::F16(v) => widen_f32(widen_f16(v[i].to_bits())),
            Column::BF16(v) => widen_f32(widen_bf16(v[i].to_bits())),
            _ => unreachable!(),
        }
    }

    /// Bytes per element of a raw row's content (strings: 0).
    fn width(&self) -> u128 {
        match self {
            Column::F64(_) | Column::I64(_) => 8,
            Column::F32(_) | Column::F16(_) | Column::BF16(_) | Column::I32(_) => 4,
            Column::U8(_) | Column::Bool(_) | Column::I8(_) => 1,
            Column::Str(_) => 0,
        }
    }
}

fn extreme(g: &mut Rng) -> i64 {
    let r = g.next();
    match r % 4 {
        0 => [i64::MIN, i64::MAX, 0, -1, i32::MIN as i64, i32::MAX as i64][(r >> 8) as usize % 6],
        _ => (r >> 2) as i64,
    }
}

/// Empty, ASCII, multi-byte UTF-8, NUL and invalid UTF-8 strings.
fn string(g: &mut Rng) -> Vec<u8> {
    let r = g.next();
    match r % 5 {
        0 => Vec::new(),
        1 => "naïve 😀\0".as_bytes().to_vec(),
        2 => vec![0xff, 0xfe, 0xc3, 0x28, 0x80],
        _ => (0..(r >> 8) % 40).map(|_| g.next() as u8).collect(),
    }
}

// ---------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------

/// Keys: extremes and a narrow range, so duplicates are common.
fn key() -> impl Strategy<Value = i64> {
    prop_oneof![
        3 => -2i64..3,
        1 => prop::sample::select(vec![i64::MIN, i64::MAX, i64::MIN + 1, 1 << 40]),
        2 => any::<i64>(),
    ]
}

/// How the keys input is laid out: mostly valid rank-1 int64, sometimes not.
#[derive(Clone, Copy, Debug)]
enum KeysForm {
    Rank1,
    Scalar,
    Rank2,
    Int32,
}

fn keys_form() -> impl Strategy<Value = KeysForm> {
    prop_oneof![
        12 => Just(KeysForm::Rank1),
        1 => Just(KeysForm::Scalar),
        1 => Just(KeysForm::Rank2),
        1 => Just(KeysForm::Int32),
    ]
}

/// Dims that are large but multiply to zero elements (when another dim is 0).
fn dim() -> impl Strategy<Value = i64> {
    prop_oneof![
        12 => 0i64..4,
        1 => prop::sample::select(vec![
            i32::MAX as i64,
            1 << 31,
            1 << 32,
            1 << 40,
            i64::MAX
        ]),
    ]
}

struct Keys {
    ids: Vec<i64>,
    dims: Vec<i64>,
    int32: Vec<i32>,
    form: KeysForm,
}

impl Keys {
    fn new(ids: Vec<i64>, form: KeysForm) -> Keys {
        let n = ids.len() as i64;
        let dims = match form {
            KeysForm::Rank1 | KeysForm::Int32 => vec![n],
            KeysForm::Scalar => vec![],
            KeysForm::Rank2 => vec![1, n],
        };
        let int32 = ids.iter().map(|&k| k as i32).collect();
        Keys {
            ids,
            dims,
            int32,
            form,
        }
    }

    /// The keys tensor, or None when the form does not fit the count (a scalar of 2 keys).
    fn tensor(&self) -> Option<Tensor<'_>> {
        let data = match self.form {
            KeysForm::Int32 => Data::I32(&self.int32),
            _ => Data::I64(&self.ids),
        };
        Tensor::new(&self.dims, data).ok()
    }

    /// Whether check_keys must accept them.
    fn valid(&self) -> bool {
        matches!(self.form, KeysForm::Rank1) && {
            let mut sorted = self.ids.clone();
            sorted.sort_unstable();
            sorted.windows(2).all(|p| p[0] != p[1])
        }
    }
}

/// Tensors with more elements than this are not built (huge dims are tested with zero elements).
const MAX_ELEMENTS: usize = 1 << 12;

fn elements(dims: &[i64]) -> Option<usize> {
    dims.iter()
        .try_fold(1usize, |n, &d| n.checked_mul(usize::try_from(d).ok()?))
}

fn assert_rejected(
    what: &str,
    r: bpr_protocol::Result<impl std::fmt::Debug>,
) -> Result<(), TestCaseError> {
    match r {
        Err(e) => {
            prop_assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{}: {}", what, e);
            prop_assert!(!e.message().is_empty());
            Ok(())
        }
        Ok(v) => Err(TestCaseError::fail(format!("{what}: accepted, gave {v:?}"))),
    }
}

// ---------------------------------------------------------------------------
// BatchPredictionResponseWriter
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct ContinuousCase {
    ids: Vec<i64>,
    form: KeysForm,
    dtype: usize,
    dims: Vec<i64>,
    seed: u64,
}

fn continuous_case() -> impl Strategy<Value = ContinuousCase> {
    (
        prop::collection::vec(key(), 0..6),
        keys_form(),
        // Mostly floating point (accepted), sometimes any other dtype (rejected).
        prop_oneof![6 => 0usize..4, 1 => 0..DTYPES],
        0i64..5,
        any::<u64>(),
        0usize..8,
        prop::collection::vec(dim(), 0..4),
    )
        .prop_map(|(ids, form, dtype, batch, seed, shape_kind, random_dims)| {
            let k = ids.len() as i64;
            let dims = match shape_kind {
                0..=3 => vec![batch, k],
                4 => vec![batch],
                5 => vec![batch, k + 1],
                6 => vec![batch, k, 1],
                _ => random_dims,
            };
            ContinuousCase {
                ids,
                form,
                dtype,
                dims,
                seed,
            }
        })
}

fn check_continuous(case: &ContinuousCase) -> Result<(), TestCaseError> {
    let keys = Keys::new(case.ids.clone(), case.form);
    let Some(keys_t) = keys.tensor() else {
        return Ok(());
    };
    // No host can build a tensor whose element count overflows; huge ones are not built here.
    let Some(n) = elements(&case.dims).filter(|&n| n <= MAX_ELEMENTS) else {
        return Ok(());
    };
    let column = Column::fill(case.dtype, n, case.seed);
    let values = Tensor::new(&case.dims, column.data()).expect("element count matches");
    let k = keys.ids.len();

    // What the spec says: [B, K], or [B] with one key; float dtypes; valid keys.
    let batch = match *case.dims {
        [b, c] if c as usize == k => Some(b as u128),
        [b] if k == 1 => Some(b as u128),
        _ => None,
    };
    let expected_size = batch
        .filter(|&b| keys.valid() && column.is_float() && b <= i32::MAX as u128)
        .map(|b| 9 + b * (10 + 16 * k as u128));

    let size = continuous_size(&keys_t, &values);
    let Some(expected_size) = expected_size else {
        return assert_rejected("continuous_size", size);
    };
    let size = size.map_err(|e| TestCaseError::fail(format!("rejected a valid input: {e}")))?;
    prop_assert_eq!(size as u128, expected_size);
    if expected_size > ENCODE_UP_TO {
        return Ok(());
    }
    let bytes = encode_continuous(&keys_t, &values).expect("size succeeded");
    prop_assert_eq!(bytes.len(), size);
    let records = decode(&bytes).map_err(TestCaseError::fail)?;
    let expected: Vec<Record> = (0..batch.unwrap() as usize)
        .map(|i| {
            Record::Continuous(
                keys.ids
                    .iter()
                    .enumerate()
                    .map(|(j, &key)| (key, column.as_f64_bits(i * k + j)))
                    .collect(),
            )
        })
        .collect();
    prop_assert_eq!(records, expected);
    prop_assert_eq!(
        encode_continuous(&keys_t, &values).unwrap(),
        bytes,
        "same input, same bytes"
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// BatchPredictionTensorResponseWriter
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct ValuesSpec {
    dtype: usize,
    dims: Vec<i64>,
    seed: u64,
}

#[derive(Debug, Clone)]
struct TensorCase {
    ids: Vec<i64>,
    form: KeysForm,
    values: Vec<ValuesSpec>,
}

fn values_spec(batch: i64) -> impl Strategy<Value = ValuesSpec> {
    (
        0..DTYPES,
        prop::collection::vec(dim(), 0..3),
        any::<u64>(),
        prop_oneof![10 => Just(0u8), 1 => Just(1), 1 => Just(2)],
        0i64..4,
    )
        .prop_map(move |(dtype, row, seed, kind, other_batch)| {
            let dims = match kind {
                0 => [vec![batch], row].concat(), // shared batch
                1 => vec![],                      // a scalar
                _ => [vec![other_batch], row].concat(),
            };
            ValuesSpec { dtype, dims, seed }
        })
}

fn tensor_case() -> impl Strategy<Value = TensorCase> {
    (
        prop::collection::vec(key(), 0..5),
        keys_form(),
        prop_oneof![6 => 0i64..4, 1 => dim()],
        prop_oneof![8 => Just(0i64), 1 => Just(1), 1 => Just(-1)],
    )
        .prop_flat_map(|(ids, form, batch, extra)| {
            let n = (ids.len() as i64 + extra).max(0) as usize;
            prop::collection::vec(values_spec(batch), n).prop_map(move |values| TensorCase {
                ids: ids.clone(),
                form,
                values,
            })
        })
}

fn check_tensor(case: &TensorCase) -> Result<(), TestCaseError> {
    let keys = Keys::new(case.ids.clone(), case.form);
    let Some(keys_t) = keys.tensor() else {
        return Ok(());
    };
    let mut columns = Vec::new();
    for v in &case.values {
        let Some(n) = elements(&v.dims).filter(|&n| n <= MAX_ELEMENTS) else {
            return Ok(());
        };
        columns.push(Column::fill(v.dtype, n, v.seed));
    }
    let values: Vec<Tensor<'_>> = case
        .values
        .iter()
        .zip(&columns)
        .map(|(v, c)| Tensor::new(&v.dims, c.data()).expect("element count matches"))
        .collect();

    // The spec: valid keys, K >= 1, one tensor per key, each rank >= 1, one shared dim 0.
    let k = keys.ids.len();
    let shape_ok = keys.valid()
        && k >= 1
        && values.len() == k
        && values.iter().all(|t| !t.dims().is_empty())
        && values.iter().all(|t| t.dims()[0] == values[0].dims()[0]);
    let size = tensor_response_size(&keys_t, &values);
    if !shape_ok {
        return assert_rejected("tensor_response_size", size);
    }
    let batch = values[0].dims()[0] as u128;
    // Row limits: strings per row, content bytes per row, each string's length.
    let mut over_limit = batch > i32::MAX as u128;
    let mut total: u128 = 9 + 10 * batch;
    for (t, c) in values.iter().zip(&columns) {
        let row_dims = &t.dims()[1..];
        let per_row = row_dims
            .iter()
            .map(|&d| d as u128)
            .try_fold(1u128, |n, d| n.checked_mul(d));
        let entry_fixed = 8 + 3 + 3 + 8 * row_dims.len() as u128 + 5 + 2;
        let per_row = match per_row {
            Some(n) => n,
            None => {
                over_limit = true; // more elements per row than u128 counts
                continue;
            }
        };
        let entry = match c {
            Column::Str(s) => {
                over_limit |= per_row > i32::MAX as u128;
                over_limit |= s.iter().any(|x| x.len() > i32::MAX as usize);
                batch * (entry_fixed + 3 + 5 + 4 * per_row)
                    + s.iter().map(|x| x.len() as u128).sum::<u128>()
            }
            _ => {
                over_limit |= per_row * c.width() > i32::MAX as u128;
                batch * (entry_fixed + 3 + 4 + 3 + 4 + per_row * c.width())
            }
        };
        total = total.saturating_add(entry);
    }
    if over_limit {
        // With B = 0 no row is written: an empty response is exact too.
        if batch == 0 {
            match size {
                Ok(s) => prop_assert_eq!(s, 9),
                Err(e) => prop_assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{}", e),
            }
            return Ok(());
        }
        return assert_rejected("tensor_response_size (over a Thrift limit)", size);
    }
    let size = size.map_err(|e| TestCaseError::fail(format!("rejected a valid input: {e}")))?;
    prop_assert_eq!(size as u128, total);
    if total > ENCODE_UP_TO {
        return Ok(());
    }
    let bytes = encode_tensor_response(&keys_t, &values).expect("size succeeded");
    prop_assert_eq!(bytes.len(), size);
    let records = decode(&bytes).map_err(TestCaseError::fail)?;
    let expected: Vec<Record> = (0..batch as usize)
        .map(|i| {
            Record::Tensors(
                keys.ids
                    .iter()
                    .zip(values.iter().zip(&columns))
                    .map(|(&key, (t, c))| {
                        let row_dims = &t.dims()[1..];
                        let n = elements(row_dims).unwrap();
                        (key, c.row(i * n..(i + 1) * n, row_dims))
                    })
                    .collect(),
            )
        })
        .collect();
    prop_assert_eq!(records, expected);
    prop_assert_eq!(
        encode_tensor_response(&keys_t, &values).unwrap(),
        bytes,
        "same input, same bytes"
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// The properties
// ---------------------------------------------------------------------------

proptest! {
    // 256 cases unless PROPTEST_CASES says otherwise. No failure file: a failure prints its
    // minimal input, which goes into a regression test.
    #![proptest_config(ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn continuous_encodes_exactly_or_rejects(case in continuous_case()) {
        check_continuous(&case)?;
    }

    #[test]
    fn tensor_encodes_exactly_or_rejects(case in tensor_case()) {
        check_tensor(&case)?;
    }

    /// Tensor::new on arbitrary dims and element counts: a view or an error, never a panic.
    #[test]
    fn tensor_views_check_dims_against_elements(
        dims in prop::collection::vec(prop_oneof![4 => -1i64..4, 1 => any::<i64>()], 0..5),
        n in 0usize..20,
    ) {
        let data = vec![0f32; n];
        let r = Tensor::new(&dims, Data::F32(&data));
        let fits = dims.iter().all(|&d| d >= 0) && elements(&dims) == Some(n);
        prop_assert_eq!(r.is_ok(), fits, "dims {:?}, {} elements", dims, n);
        if let Err(e) = r {
            prop_assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        }
    }
}

/// Regression (the tensor writer multiplied a row's dims unchecked). With a zero batch the
/// tensor has no elements, so `Tensor::new` (and TensorFlow) accept dims whose row product
/// overflows; the encoder must still give a clear error naming the real shape, not a wrapped
/// element count (release builds) or a panic (builds with overflow checks).
#[test]
fn zero_batch_with_overflowing_row_is_a_clear_error() {
    let keys = [1i64];
    let keys = Tensor::new(&[1], Data::I64(&keys)).unwrap();
    // 2^62 * 5 elements per row wraps to 2^62 in 64 bits.
    let dims = [0, 1 << 62, 5];
    let values = [Tensor::new(&dims, Data::U8(&[])).unwrap()];
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        tensor_response_size(&keys, &values)
    }));
    let e = r
        .expect("no panic")
        .expect_err("a row over the Thrift limit");
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert!(e.message().contains("[0,4611686018427387904,5]"), "{e}");
    assert!(
        !e.message().contains("holds 4611686018427387904 elements"),
        "{e}"
    );
}

/// Regression (bug: subnormal float32 and bfloat16 values are written as 0.0 by the continuous
/// writer inside TensorFlow). TensorFlow runs kernels with the x86 MXCSR flags DAZ and FTZ set
/// (denormals are zero, flush to zero), and the widening to double used the FPU, so a
/// subnormal input became +-0.0 silently. Widening must be exact whatever the FPU mode.
#[cfg(target_arch = "x86_64")]
#[test]
fn subnormals_widen_exactly_with_denormals_are_zero_set() {
    #[allow(deprecated)]
    use std::arch::x86_64::{_mm_getcsr, _mm_setcsr};
    const DAZ_FTZ: u32 = 0x0040 | 0x8000;

    let keys = [1i64, 2, 3];
    let keys = Tensor::new(&[3], Data::I64(&keys)).unwrap();
    let f32s = std::hint::black_box([f32::from_bits(1), f32::from_bits(0x807f_ffff), 1.5]);
    let bf16s = std::hint::black_box([bf16::from_bits(1), bf16::from_bits(0x8040), bf16::ONE]);
    // Outside TensorFlow's FPU mode the hardware conversion is exact: the expected bits.
    let expected_f32 = f32s.map(|x| f64::from(x).to_bits());
    let expected_bf16 = bf16s.map(|x| f64::from(x.to_f32()).to_bits());
    assert_eq!(expected_f32[0], 0x36a0_0000_0000_0000); // 2^-149
    let dims = [1, 3];
    let cases = [
        (Tensor::new(&dims, Data::F32(&f32s)).unwrap(), expected_f32),
        (
            Tensor::new(&dims, Data::BF16(&bf16s)).unwrap(),
            expected_bf16,
        ),
    ];
    // A thread of its own, so the FPU mode of the test harness is untouched.
    std::thread::scope(|s| {
        s.spawn(|| {
            // SAFETY: setting MXCSR's DAZ and FTZ bits changes only how this thread rounds
            // denormals, which is what TensorFlow's compute threads do.
            #[allow(deprecated)]
            unsafe {
                _mm_setcsr(_mm_getcsr() | DAZ_FTZ)
            };
            for (values, expected) in &cases {
                let bytes = encode_continuous(&keys, values).unwrap();
                let got: Vec<u64> = match &decode(&bytes).unwrap()[..] {
                    [Record::Continuous(entries)] => entries.iter().map(|e| e.1).collect(),
                    other => panic!("{other:?}"),
                };
                let want = expected.to_vec();
                assert_eq!(
                    got.iter().map(|b| format!("{b:#018x}")).collect::<Vec<_>>(),
                    want.iter()
                        .map(|b| format!("{b:#018x}"))
                        .collect::<Vec<_>>(),
                    "{} values widened with DAZ/FTZ set",
                    values.dtype()
                );
            }
        });
    });
}
