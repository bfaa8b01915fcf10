//! Fuzzes the encoder's entry points (`*_size` then `write_*`, as the kernels call them) with
//! arbitrary keys, dtypes, shapes (huge dims included, as long as the tensor stays small) and
//! element bytes. A crash is any panic, an error that is not InvalidArgument, a size that the
//! write disagrees with, bytes that are not a framed response, two different encodings of
//! one input, or (on a CPU with AVX2) AVX2 writers whose bytes differ from the portable ones.

#![no_main]

use arbitrary::{Result, Unstructured};
use bpr_protocol::{
    continuous_size, encode_continuous, encode_tensor_response, tensor_response_size, Data,
    ErrorKind, Serial, Tensor,
};
use half::{bf16, f16};
use libfuzzer_sys::fuzz_target;

/// Tensors larger than this are not built (the fuzzer would spend its time in memcpy).
const MAX_ELEMENTS: usize = 1 << 12;
/// Responses larger than this are sized but not written.
const MAX_OUTPUT: usize = 1 << 22;

/// Owned elements of one tensor.
enum Owned {
    F32(Vec<f32>),
    F64(Vec<f64>),
    F16(Vec<f16>),
    BF16(Vec<bf16>),
    I32(Vec<i32>),
    I64(Vec<i64>),
    U8(Vec<u8>),
    Bool(Vec<u8>),
    Str(Vec<Vec<u8>>),
    I8(Vec<i8>),
}

impl Owned {
    fn data(&self) -> Data<'_> {
        match self {
            Owned::F32(v) => Data::F32(v),
            Owned::F64(v) => Data::F64(v),
            Owned::F16(v) => Data::F16(v),
            Owned::BF16(v) => Data::BF16(v),
            Owned::I32(v) => Data::I32(v),
            Owned::I64(v) => Data::I64(v),
            Owned::U8(v) => Data::U8(v),
            Owned::Bool(v) => Data::Bool(v),
            Owned::Str(v) => Data::Str(v),
            Owned::I8(v) => Data::I8(v),
        }
    }
}

fn dim(u: &mut Unstructured<'_>) -> Result<i64> {
    Ok(match u.int_in_range(0u8..=15)? {
        0 => *u.choose(&[i32::MAX as i64, 1 << 31, 1 << 32, 1 << 62, i64::MAX, -1])?,
        1 => u.arbitrary()?,
        n => i64::from(n % 5),
    })
}

fn dims(u: &mut Unstructured<'_>) -> Result<Vec<i64>> {
    let rank = u.int_in_range(0..=4)?;
    (0..rank).map(|_| dim(u)).collect()
}

fn elements(dims: &[i64]) -> Option<usize> {
    dims.iter()
        .try_fold(1usize, |n, &d| n.checked_mul(usize::try_from(d).ok()?))
}

fn owned(u: &mut Unstructured<'_>, dtype: u8, n: usize) -> Result<Owned> {
    fn many<T>(n: usize, mut f: impl FnMut() -> Result<T>) -> Result<Vec<T>> {
        (0..n).map(|_| f()).collect()
    }
    Ok(match dtype {
        0 => Owned::F32(many(n, || Ok(f32::from_bits(u.arbitrary()?)))?),
        1 => Owned::F64(many(n, || Ok(f64::from_bits(u.arbitrary()?)))?),
        2 => Owned::F16(many(n, || Ok(f16::from_bits(u.arbitrary()?)))?),
        3 => Owned::BF16(many(n, || Ok(bf16::from_bits(u.arbitrary()?)))?),
        4 => Owned::I32(many(n, || u.arbitrary())?),
        5 => Owned::I64(many(n, || u.arbitrary())?),
        6 => Owned::U8(many(n, || u.arbitrary())?),
        7 => Owned::Bool(many(n, || Ok(u8::from(u.arbitrary::<bool>()?)))?),
        9 => Owned::I8(many(n, || u.arbitrary())?),
        _ => Owned::Str(many(n, || {
            let len = u.int_in_range(0..=16)?;
            Ok(u.bytes(len)?.to_vec())
        })?),
    })
}

/// A tensor: dims and elements, or None when it would be too large to build. With `batch`,
/// dim 0 is that batch (so that valid tensor-op inputs are common).
fn tensor_parts(u: &mut Unstructured<'_>, batch: Option<i64>) -> Result<Option<(Vec<i64>, Owned)>> {
    let dtype = u.int_in_range(0..=9)?;
    let mut dims = dims(u)?;
    if let Some(b) = batch {
        dims.insert(0, b);
    }
    match elements(&dims) {
        Some(n) if n <= MAX_ELEMENTS => Ok(Some((dims, owned(u, dtype, n)?))),
        _ => Ok(None),
    }
}

/// The framing every response starts and ends with, and its record count.
fn check_frame(bytes: &[u8], size: usize) {
    assert_eq!(bytes.len(), size, "the write disagrees with the size");
    assert_eq!(&bytes[..4], &[0x0f, 0x00, 0x01, 0x0c], "response header");
    assert_eq!(bytes[size - 1], 0, "response STOP");
    let records = i32::from_be_bytes(bytes[4..8].try_into().unwrap());
    assert!(records >= 0);
    if records == 0 {
        assert_eq!(size, 9);
    }
}

/// Whether the AVX2 writers can run here: they are then checked against the portable ones.
#[cfg(target_arch = "x86_64")]
fn avx2() -> bool {
    is_x86_feature_detected!("avx2")
}

fn check_error(e: &bpr_protocol::Error) {
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    assert!(!e.message().is_empty());
}

fn run(u: &mut Unstructured<'_>) -> Result<()> {
    let tensor_op: bool = u.arbitrary()?;
    let key_count = u.int_in_range(0..=6)?;
    let ids: Vec<i64> = (0..key_count)
        .map(|_| {
            Ok(match u.int_in_range(0u8..=3)? {
                0 => u.arbitrary()?,
                _ => i64::from(u.int_in_range(-2i8..=2)?),
            })
        })
        .collect::<Result<_>>()?;
    let key_dims: Vec<i64> = match u.int_in_range(0u8..=7)? {
        0 => vec![],
        1 => vec![1, ids.len() as i64],
        _ => vec![ids.len() as i64],
    };
    let Ok(keys) = Tensor::new(&key_dims, Data::I64(&ids)) else {
        return Ok(());
    };

    if !tensor_op {
        let Some((dims, values)) = tensor_parts(u, None)? else {
            return Ok(());
        };
        let values = Tensor::new(&dims, values.data()).expect("element count matches");
        match continuous_size(&keys, &values) {
            Err(e) => check_error(&e),
            Ok(size) if size <= MAX_OUTPUT => {
                let bytes = encode_continuous(&keys, &values).expect("size succeeded");
                check_frame(&bytes, size);
                assert_eq!(bytes, encode_continuous(&keys, &values).unwrap());
                #[cfg(target_arch = "x86_64")]
                if avx2() {
                    let plan = bpr_protocol::plan_continuous(&keys, &values).unwrap();
                    let mut fast = vec![0xa5; size];
                    // SAFETY: avx2() checked that this CPU has AVX2.
                    unsafe { plan.write_avx2(&mut fast, &Serial) }.unwrap();
                    assert_eq!(fast, bytes, "the AVX2 continuous writer differs");
                }
            }
            Ok(_) => {}
        }
        return Ok(());
    }

    let count = u.int_in_range(0..=5)?;
    let batch = dim(u)?;
    let mut parts = Vec::with_capacity(count);
    for _ in 0..count {
        let shared = u.ratio(7u8, 8)?;
        match tensor_parts(u, shared.then_some(batch))? {
            Some(p) => parts.push(p),
            None => return Ok(()),
        }
    }
    let values: Vec<Tensor<'_>> = parts
        .iter()
        .map(|(d, o)| Tensor::new(d, o.data()).expect("element count matches"))
        .collect();
    match tensor_response_size(&keys, &values) {
        Err(e) => check_error(&e),
        Ok(size) if size <= MAX_OUTPUT => {
            let bytes = encode_tensor_response(&keys, &values).expect("size succeeded");
            check_frame(&bytes, size);
            assert_eq!(bytes, encode_tensor_response(&keys, &values).unwrap());
            #[cfg(target_arch = "x86_64")]
            if avx2() {
                let plan = bpr_protocol::plan_tensor_response(&keys, &values).unwrap();
                let mut fast = vec![0xa5; size];
                // SAFETY: avx2() checked that this CPU has AVX2.
                unsafe { plan.write_avx2(&mut fast, &Serial) }.unwrap();
                assert_eq!(fast, bytes, "the AVX2 tensor writer differs");
            }
        }
        Ok(_) => {}
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});
