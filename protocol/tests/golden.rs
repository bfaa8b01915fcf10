// Golden bytes written by hand from the IDL in thrift/ and the Thrift binary-protocol spec, plus every InvalidArgument error.

use bpr_protocol::{
    continuous_size, encode_continuous, encode_tensor_response, tensor_response_size, Data,
    ErrorKind, StringSource, Tensor,
};
use half::{bf16, f16};

// ---------------------------------------------------------------------------
// Helpers: build the inputs, encode, and check that the *_size function agrees
// with the length actually written.
// ---------------------------------------------------------------------------

fn continuous_with_keys(
    key_dims: &[i64],
    ids: &[i64],
    dims: &[i64],
    values: Data<'_>,
) -> bpr_protocol::Result<Vec<u8>> {
    let keys = Tensor::new(key_dims, Data::I64(ids)).expect("keys tensor");
    let values = Tensor::new(dims, values).expect("values tensor");
    let size = continuous_size(&keys, &values);
    let bytes = encode_continuous(&keys, &values);
    match (&size, &bytes) {
        (Ok(n), Ok(b)) => assert_eq!(*n, b.len(), "continuous_size != encoded length"),
        (Err(a), Err(b)) => assert_eq!(a, b, "continuous_size and encode disagree"),
        _ => panic!("continuous_size {size:?} and encode_continuous disagree on success"),
    }
    bytes
}

fn continuous(ids: &[i64], dims: &[i64], values: Data<'_>) -> bpr_protocol::Result<Vec<u8>> {
    continuous_with_keys(&[ids.len() as i64], ids, dims, values)
}

fn tensor_with_keys(
    key_dims: &[i64],
    ids: &[i64],
    columns: &[(&[i64], Data<'_>)],
) -> bpr_protocol::Result<Vec<u8>> {
    let keys = Tensor::new(key_dims, Data::I64(ids)).expect("keys tensor");
    let values: Vec<Tensor<'_>> = columns
        .iter()
        .map(|(dims, data)| Tensor::new(dims, *data).expect("values tensor"))
        .collect();
    let size = tensor_response_size(&keys, &values);
    let bytes = encode_tensor_response(&keys, &values);
    match (&size, &bytes) {
        (Ok(n), Ok(b)) => assert_eq!(*n, b.len(), "tensor_response_size != encoded length"),
        (Err(a), Err(b)) => assert_eq!(a, b, "tensor_response_size and encode disagree"),
        _ => panic!("tensor_response_size {size:?} and encode_tensor_response disagree on success"),
    }
    bytes
}

fn tensor(ids: &[i64], columns: &[(&[i64], Data<'_>)]) -> bpr_protocol::Result<Vec<u8>> {
    tensor_with_keys(&[ids.len() as i64], ids, columns)
}

/// A sized handle on a slice of strings.
///
/// `Data::Str` takes `&dyn StringSource`, and the crate implements the trait
/// for the unsized `[T]` only, so `Data::Str(&slice[..])` does not compile (an
/// unsized value cannot be coerced to a trait object). This wrapper forwards to
/// that `[T]` impl.
struct Strs<'a, T>(&'a [T]);

impl<T: AsRef<[u8]> + Sync> StringSource for Strs<'_, T> {
    fn len(&self) -> usize {
        <[T] as StringSource>::len(self.0)
    }
    fn get(&self, index: usize) -> &[u8] {
        <[T] as StringSource>::get(self.0, index)
    }
}

/// Hex dump for readable assertion failures.
fn hex(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn assert_bytes(got: &[u8], want: &[u8]) {
    assert_eq!(
        hex(got),
        hex(want),
        "got {} bytes, want {} bytes",
        got.len(),
        want.len()
    );
}

fn assert_invalid(result: bpr_protocol::Result<Vec<u8>>, substrings: &[&str]) {
    let err = match result {
        Ok(b) => panic!(
            "expected InvalidArgument, got {} bytes: {}",
            b.len(),
            hex(&b)
        ),
        Err(e) => e,
    };
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    for s in substrings {
        assert!(
            err.message().contains(s),
            "message {:?} lacks {:?}",
            err.message(),
            s
        );
    }
}

// ---------------------------------------------------------------------------
// BatchPredictionResponseWriter (continuous)
// ---------------------------------------------------------------------------

#[test]
fn must_write_continuous_spec_example() {
    // wire-format.md: keys [1], values [[0.5]] gives these 35 bytes.
    #[rustfmt::skip]
    let want: [u8; 35] = [
        0x0f, 0x00, 0x01, 0x0c, 0x00, 0x00, 0x00, 0x01, 0x0d, 0x00, 0x02, 0x0a, 0x04, 0x00, 0x00,
        0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x3f, 0xe0, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00,
    ];
    let got = continuous(&[1], &[1, 1], Data::F64(&[0.5])).unwrap();
    assert_bytes(&got, &want);
    // The same value given as float widens to the same double.
    let got = continuous(&[1], &[1, 1], Data::F32(&[0.5])).unwrap();
    assert_bytes(&got, &want);
}

#[test]
fn must_write_continuous_two_records_keys_in_input_order() {
    // keys [2, -1] (not sorted: the map must follow the order of keys),
    // values [[1.0, -2.0], [0.0, 3.0]].
    #[rustfmt::skip]
    let want: Vec<u8> = vec![
        0x0f, 0x00, 0x01,                               // field 1: list
        0x0c, 0x00, 0x00, 0x00, 0x02,                   // list<struct>, 2 records
        // record 0
        0x0d, 0x00, 0x02,                               // field 2: map
        0x0a, 0x04, 0x00, 0x00, 0x00, 0x02,             // map<i64,double>, 2 entries
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, // key 2
        0x3f, 0xf0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // 1.0
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // key -1
        0xc0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // -2.0
        0x00,                                           // STOP (record)
        // record 1
        0x0d, 0x00, 0x02,
        0x0a, 0x04, 0x00, 0x00, 0x00, 0x02,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, // key 2
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // 0.0
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // key -1
        0x40, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // 3.0
        0x00,                                           // STOP (record)
        0x00,                                           // STOP (response)
    ];
    assert_eq!(want.len(), 9 + 2 * (10 + 16 * 2));
    let got = continuous(&[2, -1], &[2, 2], Data::F64(&[1.0, -2.0, 0.0, 3.0])).unwrap();
    assert_bytes(&got, &want);
}

#[test]
fn must_write_continuous_empty_batch() {
    // B = 0: the predictions list is empty, whatever K is.
    let want = [0x0f, 0x00, 0x01, 0x0c, 0x00, 0x00, 0x00, 0x00, 0x00];
    assert_bytes(&continuous(&[], &[0, 0], Data::F64(&[])).unwrap(), &want);
    assert_bytes(
        &continuous(&[4, 5], &[0, 2], Data::F32(&[])).unwrap(),
        &want,
    );
}

#[test]
fn must_write_continuous_zero_keys() {
    // K = 0 with values [2, 0]: two records, each with an empty map.
    #[rustfmt::skip]
    let want = [
        0x0f, 0x00, 0x01, 0x0c, 0x00, 0x00, 0x00, 0x02,
        0x0d, 0x00, 0x02, 0x0a, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x0d, 0x00, 0x02, 0x0a, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00,
    ];
    assert_bytes(&continuous(&[], &[2, 0], Data::F64(&[])).unwrap(), &want);
}

#[test]
fn must_write_continuous_rank1_values_with_one_key() {
    // values [B] with keys [5]: one score per example.
    #[rustfmt::skip]
    let want = [
        0x0f, 0x00, 0x01, 0x0c, 0x00, 0x00, 0x00, 0x02,
        0x0d, 0x00, 0x02, 0x0a, 0x04, 0x00, 0x00, 0x00, 0x01,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, 0x3f, 0xe0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // 5 -> 0.5
        0x00,
        0x0d, 0x00, 0x02, 0x0a, 0x04, 0x00, 0x00, 0x00, 0x01,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, 0xbf, 0xf0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // 5 -> -1.0
        0x00,
        0x00,
    ];
    assert_bytes(
        &continuous(&[5], &[2], Data::F64(&[0.5, -1.0])).unwrap(),
        &want,
    );
    assert_bytes(
        &continuous(&[5], &[2], Data::F32(&[0.5, -1.0])).unwrap(),
        &want,
    );
}

/// One record with one key 1 -> the double with these bits.
#[rustfmt::skip]
fn one_double(bits: u64) -> Vec<u8> {
    let mut v = vec![
        0x0f, 0x00, 0x01, 0x0c, 0x00, 0x00, 0x00, 0x01,
        0x0d, 0x00, 0x02, 0x0a, 0x04, 0x00, 0x00, 0x00, 0x01,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
    ];
    v.extend_from_slice(&bits.to_be_bytes());
    v.extend_from_slice(&[0x00, 0x00]);
    v
}

#[test]
fn must_write_continuous_each_float_dtype_widened_exactly() {
    // f32 0.1 is 0x3dcccccd; exactly widened it is 0x3fb99999a0000000, not f64 0.1.
    let got = continuous(&[1], &[1, 1], Data::F32(&[0.1])).unwrap();
    assert_bytes(&got, &one_double(0x3fb9_9999_a000_0000));
    // f64 0.1 is 0x3fb999999999999a, written as is.
    let got = continuous(&[1], &[1, 1], Data::F64(&[0.1])).unwrap();
    assert_bytes(&got, &one_double(0x3fb9_9999_9999_999a));
    // f16 0x3555 (0.333251953125): exponent -2, mantissa 0x155 -> 0x3fd5540000000000.
    let got = continuous(&[1], &[1, 1], Data::F16(&[f16::from_bits(0x3555)])).unwrap();
    assert_bytes(&got, &one_double(0x3fd5_5400_0000_0000));
    // f16 0x0001, the smallest subnormal, is 2^-24: 0x3e70000000000000.
    let got = continuous(&[1], &[1, 1], Data::F16(&[f16::from_bits(0x0001)])).unwrap();
    assert_bytes(&got, &one_double(0x3e70_0000_0000_0000));
    // bf16 0x3fc0 is 1.5: 0x3ff8000000000000.
    let got = continuous(&[1], &[1, 1], Data::BF16(&[bf16::from_bits(0x3fc0)])).unwrap();
    assert_bytes(&got, &one_double(0x3ff8_0000_0000_0000));
}

#[test]
fn must_keep_special_double_bits_in_continuous() {
    let cases_f64: [(u64, u64); 6] = [
        (0x8000_0000_0000_0000, 0x8000_0000_0000_0000), // -0.0
        (0x7ff0_0000_0000_0000, 0x7ff0_0000_0000_0000), // +inf
        (0xfff0_0000_0000_0000, 0xfff0_0000_0000_0000), // -inf
        (0x7ff0_0000_0000_0001, 0x7ff0_0000_0000_0001), // signalling NaN
        (0xfff8_dead_beef_0001, 0xfff8_dead_beef_0001), // negative quiet NaN with payload
        (0x0000_0000_0000_0001, 0x0000_0000_0000_0001), // smallest subnormal
    ];
    for (input, want) in cases_f64 {
        let got = continuous(&[1], &[1, 1], Data::F64(&[f64::from_bits(input)])).unwrap();
        assert_bytes(&got, &one_double(want));
    }
    let cases_f32: [(u32, u64); 6] = [
        (0x8000_0000, 0x8000_0000_0000_0000), // -0.0
        (0x7f80_0000, 0x7ff0_0000_0000_0000), // +inf
        (0xff80_0000, 0xfff0_0000_0000_0000), // -inf
        // signalling NaN: payload moved to the top of the mantissa, quiet bit NOT set
        (0x7f80_0001, 0x7ff0_0000_2000_0000),
        (0x7fc0_0000, 0x7ff8_0000_0000_0000), // canonical quiet NaN
        (0xffc0_0123, 0xfff8_0024_6000_0000), // negative quiet NaN with payload
    ];
    for (input, want) in cases_f32 {
        let got = continuous(&[1], &[1, 1], Data::F32(&[f32::from_bits(input)])).unwrap();
        assert_bytes(&got, &one_double(want));
    }
    let cases_f16: [(u16, u64); 4] = [
        (0x8000, 0x8000_0000_0000_0000), // -0.0
        (0xfc00, 0xfff0_0000_0000_0000), // -inf
        (0x7c01, 0x7ff0_0400_0000_0000), // signalling NaN, payload 1 at the top
        (0x7e00, 0x7ff8_0000_0000_0000), // quiet NaN
    ];
    for (input, want) in cases_f16 {
        let got = continuous(&[1], &[1, 1], Data::F16(&[f16::from_bits(input)])).unwrap();
        assert_bytes(&got, &one_double(want));
    }
    let cases_bf16: [(u16, u64); 4] = [
        (0x8000, 0x8000_0000_0000_0000), // -0.0
        (0x7f80, 0x7ff0_0000_0000_0000), // +inf
        (0x7f81, 0x7ff0_2000_0000_0000), // signalling NaN
        (0xffc1, 0xfff8_2000_0000_0000), // negative quiet NaN with payload
    ];
    for (input, want) in cases_bf16 {
        let got = continuous(&[1], &[1, 1], Data::BF16(&[bf16::from_bits(input)])).unwrap();
        assert_bytes(&got, &one_double(want));
    }
}

#[test]
fn continuous_size_is_the_spec_formula() {
    // 9 + B(10 + 16K)
    for (b, k) in [(0usize, 0usize), (0, 3), (1, 0), (1, 1), (3, 2), (7, 5)] {
        let ids: Vec<i64> = (0..k as i64).collect();
        let vals = vec![0.25f64; b * k];
        let got = continuous(&ids, &[b as i64, k as i64], Data::F64(&vals)).unwrap();
        assert_eq!(got.len(), 9 + b * (10 + 16 * k), "B={b} K={k}");
    }
}

// ---------------------------------------------------------------------------
// BatchPredictionTensorResponseWriter
// ---------------------------------------------------------------------------

#[test]
fn must_write_tensor_spec_example() {
    // wire-format.md: key 7, an int32 tensor [[1, 2]] gives these 70 bytes.
    #[rustfmt::skip]
    let want: [u8; 70] = [
        0x0f, 0x00, 0x01, 0x0c, 0x00, 0x00, 0x00, 0x01, 0x0d, 0x00, 0x08, 0x0a, 0x0c, 0x00, 0x00,
        0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x07, 0x0c, 0x00, 0x01, 0x08, 0x00,
        0x01, 0x00, 0x00, 0x00, 0x02, 0x0b, 0x00, 0x02, 0x00, 0x00, 0x00, 0x08, 0x01, 0x00, 0x00,
        0x00, 0x02, 0x00, 0x00, 0x00, 0x0f, 0x00, 0x03, 0x0a, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00,
    ];
    let got = tensor(&[7], &[(&[1, 2], Data::I32(&[1, 2]))]).unwrap();
    assert_bytes(&got, &want);
}

/// A response of one record holding one key 7 -> `general_tensor` (the
/// union's bytes, its STOP included).
#[rustfmt::skip]
fn one_tensor(general_tensor: &[u8]) -> Vec<u8> {
    let mut v = vec![
        0x0f, 0x00, 0x01, 0x0c, 0x00, 0x00, 0x00, 0x01,       // predictions: list<struct>, 1
        0x0d, 0x00, 0x08, 0x0a, 0x0c, 0x00, 0x00, 0x00, 0x01, // tensors: map<i64,struct>, 1
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x07,       // key 7
    ];
    v.extend_from_slice(general_tensor);
    v.extend_from_slice(&[0x00, 0x00]); // STOP record, STOP response
    v
}

#[test]
fn must_write_tensor_float_row() {
    #[rustfmt::skip]
    let want = one_tensor(&[
        0x0c, 0x00, 0x01,                                     // rawTypedTensor
        0x08, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,             // dataType FLOAT = 0
        0x0b, 0x00, 0x02, 0x00, 0x00, 0x00, 0x08,             // content, 8 bytes
        0x00, 0x00, 0xc0, 0x3f, 0x00, 0x00, 0x00, 0xc0,       // 1.5f32, -2.0f32 LE
        0x0f, 0x00, 0x03, 0x0a, 0x00, 0x00, 0x00, 0x01,       // shape list<i64>, 1
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02,       // 2
        0x00, 0x00,                                           // STOP raw, STOP union
    ]);
    let got = tensor(&[7], &[(&[1, 2], Data::F32(&[1.5, -2.0]))]).unwrap();
    assert_bytes(&got, &want);
}

#[test]
fn must_write_tensor_double_row() {
    #[rustfmt::skip]
    let want = one_tensor(&[
        0x0c, 0x00, 0x01,
        0x08, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01,             // DOUBLE = 1
        0x0b, 0x00, 0x02, 0x00, 0x00, 0x00, 0x08,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xf8, 0x3f,       // 1.5f64 LE
        0x0f, 0x00, 0x03, 0x0a, 0x00, 0x00, 0x00, 0x01,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
        0x00, 0x00,
    ]);
    let got = tensor(&[7], &[(&[1, 1], Data::F64(&[1.5]))]).unwrap();
    assert_bytes(&got, &want);
}

#[test]
fn must_write_tensor_int32_row() {
    #[rustfmt::skip]
    let want = one_tensor(&[
        0x0c, 0x00, 0x01,
        0x08, 0x00, 0x01, 0x00, 0x00, 0x00, 0x02,             // INT32 = 2
        0x0b, 0x00, 0x02, 0x00, 0x00, 0x00, 0x08,
        0xff, 0xff, 0xff, 0xff, 0x02, 0x01, 0x00, 0x00,       // -1, 258 LE
        0x0f, 0x00, 0x03, 0x0a, 0x00, 0x00, 0x00, 0x01,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02,
        0x00, 0x00,
    ]);
    let got = tensor(&[7], &[(&[1, 2], Data::I32(&[-1, 258]))]).unwrap();
    assert_bytes(&got, &want);
}

#[test]
fn must_write_tensor_int64_row() {
    #[rustfmt::skip]
    let want = one_tensor(&[
        0x0c, 0x00, 0x01,
        0x08, 0x00, 0x01, 0x00, 0x00, 0x00, 0x03,             // INT64 = 3
        0x0b, 0x00, 0x02, 0x00, 0x00, 0x00, 0x08,
        0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01,       // 0x0102030405060708 LE
        0x0f, 0x00, 0x03, 0x0a, 0x00, 0x00, 0x00, 0x01,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
        0x00, 0x00,
    ]);
    let got = tensor(&[7], &[(&[1, 1], Data::I64(&[0x0102_0304_0506_0708]))]).unwrap();
    assert_bytes(&got, &want);
}

#[test]
fn must_write_tensor_uint8_row() {
    #[rustfmt::skip]
    let want = one_tensor(&[
        0x0c, 0x00, 0x01,
        0x08, 0x00, 0x01, 0x00, 0x00, 0x00, 0x04,             // UINT8 = 4
        0x0b, 0x00, 0x02, 0x00, 0x00, 0x00, 0x03,
        0x00, 0xff, 0x07,
        0x0f, 0x00, 0x03, 0x0a, 0x00, 0x00, 0x00, 0x01,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03,
        0x00, 0x00,
    ]);
    let got = tensor(&[7], &[(&[1, 3], Data::U8(&[0, 255, 7]))]).unwrap();
    assert_bytes(&got, &want);
}

#[test]
fn must_write_tensor_int8_row() {
    #[rustfmt::skip]
    let want = one_tensor(&[
        0x0c, 0x00, 0x01,
        0x08, 0x00, 0x01, 0x00, 0x00, 0x00, 0x06,             // BYTE = 6
        0x0b, 0x00, 0x02, 0x00, 0x00, 0x00, 0x04,             // one byte per element
        0x80, 0xff, 0x00, 0x7f,                               // -128, -1, 0, 127
        0x0f, 0x00, 0x03, 0x0a, 0x00, 0x00, 0x00, 0x01,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04,
        0x00, 0x00,
    ]);
    let got = tensor(&[7], &[(&[1, 4], Data::I8(&[-128, -1, 0, 127]))]).unwrap();
    assert_bytes(&got, &want);
}

#[test]
fn must_write_tensor_bool_row() {
    #[rustfmt::skip]
    let want = one_tensor(&[
        0x0c, 0x00, 0x01,
        0x08, 0x00, 0x01, 0x00, 0x00, 0x00, 0x07,             // BOOL = 7
        0x0b, 0x00, 0x02, 0x00, 0x00, 0x00, 0x02,
        0x01, 0x00,
        0x0f, 0x00, 0x03, 0x0a, 0x00, 0x00, 0x00, 0x01,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02,
        0x00, 0x00,
    ]);
    let got = tensor(&[7], &[(&[1, 2], Data::Bool(&[1, 0]))]).unwrap();
    assert_bytes(&got, &want);
}

#[test]
fn must_write_tensor_half_row_as_float() {
    // f16 1.0 (0x3c00) -> 0x3f800000, -0.5 (0xb800) -> 0xbf000000,
    // 2^-24 (0x0001) -> 0x33800000, -inf (0xfc00) -> 0xff800000,
    // sNaN 0x7c01 -> 0x7f802000 (payload kept at the top, quiet bit not set).
    #[rustfmt::skip]
    let want = one_tensor(&[
        0x0c, 0x00, 0x01,
        0x08, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,             // FLOAT = 0
        0x0b, 0x00, 0x02, 0x00, 0x00, 0x00, 0x14,             // 5 x 4 = 20 bytes
        0x00, 0x00, 0x80, 0x3f,
        0x00, 0x00, 0x00, 0xbf,
        0x00, 0x00, 0x80, 0x33,
        0x00, 0x00, 0x80, 0xff,
        0x00, 0x20, 0x80, 0x7f,
        0x0f, 0x00, 0x03, 0x0a, 0x00, 0x00, 0x00, 0x01,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05,
        0x00, 0x00,
    ]);
    let row: Vec<f16> = [0x3c00u16, 0xb800, 0x0001, 0xfc00, 0x7c01]
        .iter()
        .map(|&b| f16::from_bits(b))
        .collect();
    let got = tensor(&[7], &[(&[1, 5], Data::F16(&row))]).unwrap();
    assert_bytes(&got, &want);
}

#[test]
fn must_write_tensor_bfloat16_row_as_float() {
    // bf16 is the top half of an f32: 0x3fc0 -> 0x3fc00000, 0xff80 -> 0xff800000,
    // 0x7f81 -> 0x7f810000, 0x8000 -> 0x80000000.
    #[rustfmt::skip]
    let want = one_tensor(&[
        0x0c, 0x00, 0x01,
        0x08, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,             // FLOAT = 0
        0x0b, 0x00, 0x02, 0x00, 0x00, 0x00, 0x10,
        0x00, 0x00, 0xc0, 0x3f,
        0x00, 0x00, 0x80, 0xff,
        0x00, 0x00, 0x81, 0x7f,
        0x00, 0x00, 0x00, 0x80,
        0x0f, 0x00, 0x03, 0x0a, 0x00, 0x00, 0x00, 0x01,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04,
        0x00, 0x00,
    ]);
    let row: Vec<bf16> = [0x3fc0u16, 0xff80, 0x7f81, 0x8000]
        .iter()
        .map(|&b| bf16::from_bits(b))
        .collect();
    let got = tensor(&[7], &[(&[1, 4], Data::BF16(&row))]).unwrap();
    assert_bytes(&got, &want);
}

#[test]
fn must_keep_float_and_double_bits_in_tensor_content() {
    // sNaN, -0.0 and inf are copied bit for bit (little-endian).
    #[rustfmt::skip]
    let want = one_tensor(&[
        0x0c, 0x00, 0x01,
        0x08, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
        0x0b, 0x00, 0x02, 0x00, 0x00, 0x00, 0x0c,
        0x01, 0x00, 0x80, 0x7f,                               // sNaN 0x7f800001
        0x00, 0x00, 0x00, 0x80,                               // -0.0
        0x00, 0x00, 0x80, 0x7f,                               // +inf
        0x0f, 0x00, 0x03, 0x0a, 0x00, 0x00, 0x00, 0x01,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03,
        0x00, 0x00,
    ]);
    let row = [
        f32::from_bits(0x7f80_0001),
        f32::from_bits(0x8000_0000),
        f32::INFINITY,
    ];
    assert_bytes(&tensor(&[7], &[(&[1, 3], Data::F32(&row))]).unwrap(), &want);

    #[rustfmt::skip]
    let want = one_tensor(&[
        0x0c, 0x00, 0x01,
        0x08, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01,
        0x0b, 0x00, 0x02, 0x00, 0x00, 0x00, 0x10,
        0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0xf0, 0x7f,       // sNaN 0x7ff0000000000001
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x80,       // -0.0
        0x0f, 0x00, 0x03, 0x0a, 0x00, 0x00, 0x00, 0x01,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02,
        0x00, 0x00,
    ]);
    let row = [f64::from_bits(0x7ff0_0000_0000_0001), -0.0f64];
    assert_bytes(&tensor(&[7], &[(&[1, 2], Data::F64(&row))]).unwrap(), &want);
}

#[test]
fn must_write_tensor_string_row() {
    #[rustfmt::skip]
    let want = one_tensor(&[
        0x0c, 0x00, 0x02,                                     // stringTensor
        0x0f, 0x00, 0x01, 0x0b, 0x00, 0x00, 0x00, 0x03,       // strings: list<string>, 3
        0x00, 0x00, 0x00, 0x02, 0x61, 0x62,                   // "ab"
        0x00, 0x00, 0x00, 0x00,                               // ""
        0x00, 0x00, 0x00, 0x02, 0xff, 0x00,                   // non-UTF-8 bytes ff 00
        0x0f, 0x00, 0x02, 0x0a, 0x00, 0x00, 0x00, 0x01,       // shape: list<i64>, 1
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03,       // 3
        0x00, 0x00,                                           // STOP string tensor, STOP union
    ]);
    let strings: [&[u8]; 3] = [b"ab", b"", &[0xff, 0x00]];
    let got = tensor(&[7], &[(&[1, 3], Data::Str(&Strs(&strings)))]).unwrap();
    assert_bytes(&got, &want);
    // Vec<u8> elements work the same.
    let owned: Vec<Vec<u8>> = strings.iter().map(|s| s.to_vec()).collect();
    let got = tensor(&[7], &[(&[1, 3], Data::Str(&Strs(&owned)))]).unwrap();
    assert_bytes(&got, &want);
}

#[test]
fn must_write_tensor_scalar_rows() {
    // A tensor of shape [B]: each row is a scalar, shape [] (an empty list).
    #[rustfmt::skip]
    let want = vec![
        0x0f, 0x00, 0x01, 0x0c, 0x00, 0x00, 0x00, 0x02,
        // record 0
        0x0d, 0x00, 0x08, 0x0a, 0x0c, 0x00, 0x00, 0x00, 0x01,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x07,
        0x0c, 0x00, 0x01,
        0x08, 0x00, 0x01, 0x00, 0x00, 0x00, 0x02,
        0x0b, 0x00, 0x02, 0x00, 0x00, 0x00, 0x04, 0x03, 0x00, 0x00, 0x00,  // 3
        0x0f, 0x00, 0x03, 0x0a, 0x00, 0x00, 0x00, 0x00,                    // shape []
        0x00, 0x00,
        0x00,
        // record 1
        0x0d, 0x00, 0x08, 0x0a, 0x0c, 0x00, 0x00, 0x00, 0x01,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x07,
        0x0c, 0x00, 0x01,
        0x08, 0x00, 0x01, 0x00, 0x00, 0x00, 0x02,
        0x0b, 0x00, 0x02, 0x00, 0x00, 0x00, 0x04, 0xfc, 0xff, 0xff, 0xff,  // -4
        0x0f, 0x00, 0x03, 0x0a, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00,
        0x00,
        0x00,
    ];
    let got = tensor(&[7], &[(&[2], Data::I32(&[3, -4]))]).unwrap();
    assert_bytes(&got, &want);
}

#[test]
fn must_write_tensor_scalar_string_row() {
    #[rustfmt::skip]
    let want = one_tensor(&[
        0x0c, 0x00, 0x02,
        0x0f, 0x00, 0x01, 0x0b, 0x00, 0x00, 0x00, 0x01,
        0x00, 0x00, 0x00, 0x01, 0x78,                         // "x"
        0x0f, 0x00, 0x02, 0x0a, 0x00, 0x00, 0x00, 0x00,       // shape []
        0x00, 0x00,
    ]);
    let strings: [&[u8]; 1] = [b"x"];
    let got = tensor(&[7], &[(&[1], Data::Str(&Strs(&strings)))]).unwrap();
    assert_bytes(&got, &want);
}

#[test]
fn must_write_tensor_zero_width_rows() {
    // Shape [1, 0]: empty content, shape [0].
    #[rustfmt::skip]
    let want = one_tensor(&[
        0x0c, 0x00, 0x01,
        0x08, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
        0x0b, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00,             // content, 0 bytes
        0x0f, 0x00, 0x03, 0x0a, 0x00, 0x00, 0x00, 0x01,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,       // 0
        0x00, 0x00,
    ]);
    let got = tensor(&[7], &[(&[1, 0], Data::F32(&[]))]).unwrap();
    assert_bytes(&got, &want);

    // The string form: an empty list of strings, shape [0].
    #[rustfmt::skip]
    let want = one_tensor(&[
        0x0c, 0x00, 0x02,
        0x0f, 0x00, 0x01, 0x0b, 0x00, 0x00, 0x00, 0x00,
        0x0f, 0x00, 0x02, 0x0a, 0x00, 0x00, 0x00, 0x01,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00,
    ]);
    let strings: [&[u8]; 0] = [];
    let got = tensor(&[7], &[(&[1, 0], Data::Str(&Strs(&strings)))]).unwrap();
    assert_bytes(&got, &want);
}

#[test]
fn must_write_tensor_matrix_rows() {
    // Shape [1, 2, 3]: one row of shape [2, 3], content row-major.
    #[rustfmt::skip]
    let want = one_tensor(&[
        0x0c, 0x00, 0x01,
        0x08, 0x00, 0x01, 0x00, 0x00, 0x00, 0x04,
        0x0b, 0x00, 0x02, 0x00, 0x00, 0x00, 0x06,
        0x01, 0x02, 0x03, 0x04, 0x05, 0x06,
        0x0f, 0x00, 0x03, 0x0a, 0x00, 0x00, 0x00, 0x02,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03,
        0x00, 0x00,
    ]);
    let got = tensor(&[7], &[(&[1, 2, 3], Data::U8(&[1, 2, 3, 4, 5, 6]))]).unwrap();
    assert_bytes(&got, &want);
}

#[test]
fn must_write_tensor_rows_split_by_batch_and_keys_in_input_order() {
    // keys [9, 3] (not sorted), values[0] int32 [2, 1], values[1] string [2].
    #[rustfmt::skip]
    let want = vec![
        0x0f, 0x00, 0x01, 0x0c, 0x00, 0x00, 0x00, 0x02,
        // record 0
        0x0d, 0x00, 0x08, 0x0a, 0x0c, 0x00, 0x00, 0x00, 0x02,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x09,                    // key 9
        0x0c, 0x00, 0x01,
        0x08, 0x00, 0x01, 0x00, 0x00, 0x00, 0x02,
        0x0b, 0x00, 0x02, 0x00, 0x00, 0x00, 0x04, 0x0a, 0x00, 0x00, 0x00,  // 10
        0x0f, 0x00, 0x03, 0x0a, 0x00, 0x00, 0x00, 0x01,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
        0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03,                    // key 3
        0x0c, 0x00, 0x02,
        0x0f, 0x00, 0x01, 0x0b, 0x00, 0x00, 0x00, 0x01,
        0x00, 0x00, 0x00, 0x01, 0x61,                                      // "a"
        0x0f, 0x00, 0x02, 0x0a, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00,
        0x00,
        // record 1
        0x0d, 0x00, 0x08, 0x0a, 0x0c, 0x00, 0x00, 0x00, 0x02,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x09,
        0x0c, 0x00, 0x01,
        0x08, 0x00, 0x01, 0x00, 0x00, 0x00, 0x02,
        0x0b, 0x00, 0x02, 0x00, 0x00, 0x00, 0x04, 0x14, 0x00, 0x00, 0x00,  // 20
        0x0f, 0x00, 0x03, 0x0a, 0x00, 0x00, 0x00, 0x01,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
        0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03,
        0x0c, 0x00, 0x02,
        0x0f, 0x00, 0x01, 0x0b, 0x00, 0x00, 0x00, 0x01,
        0x00, 0x00, 0x00, 0x03, 0x62, 0x63, 0x64,                          // "bcd"
        0x0f, 0x00, 0x02, 0x0a, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00,
        0x00,
        0x00,
    ];
    let strings = ["a", "bcd"];
    let got = tensor(
        &[9, 3],
        &[
            (&[2, 1], Data::I32(&[10, 20])),
            (&[2], Data::Str(&Strs(&strings))),
        ],
    )
    .unwrap();
    assert_bytes(&got, &want);
}

#[test]
fn must_write_tensor_empty_batch() {
    let want = [0x0f, 0x00, 0x01, 0x0c, 0x00, 0x00, 0x00, 0x00, 0x00];
    assert_bytes(&tensor(&[1], &[(&[0, 3], Data::F32(&[]))]).unwrap(), &want);
    let none: [&str; 0] = [];
    let got = tensor(
        &[1, 2],
        &[(&[0], Data::I64(&[])), (&[0, 4], Data::Str(&Strs(&none)))],
    )
    .unwrap();
    assert_bytes(&got, &want);
}

// ---------------------------------------------------------------------------
// Errors: every one is InvalidArgument and says what was wrong.
// ---------------------------------------------------------------------------

#[test]
fn continuous_rejects_rank0_values() {
    assert_invalid(continuous(&[1], &[], Data::F64(&[0.5])), &["rank 0", "[]"]);
}

#[test]
fn continuous_rejects_rank3_values() {
    let v = [0.0f32; 4];
    assert_invalid(
        continuous(&[1, 2], &[1, 2, 2], Data::F32(&v)),
        &["[1,2,2]", "rank 3", "[batch, 2]"],
    );
}

#[test]
fn continuous_rejects_column_count_mismatch() {
    let v = [0.0f64; 6];
    assert_invalid(
        continuous(&[1, 2], &[2, 3], Data::F64(&v)),
        &["[2,3]", "3 columns", "2 entries"],
    );
    assert_invalid(
        continuous(&[], &[2, 3], Data::F64(&v)),
        &["[2,3]", "0 entries"],
    );
}

#[test]
fn continuous_rejects_rank1_values_unless_one_key() {
    let v = [0.0f64; 4];
    assert_invalid(
        continuous(&[1, 2], &[4], Data::F64(&v)),
        &["rank-1", "[4]", "2 entries"],
    );
    assert_invalid(continuous(&[], &[4], Data::F64(&v)), &["[4]", "0 entries"]);
}

#[test]
fn continuous_rejects_keys_not_rank1() {
    assert_invalid(
        continuous_with_keys(&[1, 2], &[1, 2], &[1, 2], Data::F64(&[0.0, 0.0])),
        &["keys", "rank-1", "[1,2]", "rank 2"],
    );
    assert_invalid(
        continuous_with_keys(&[], &[1], &[1, 1], Data::F64(&[0.0])),
        &["keys", "[]", "rank 0"],
    );
}

#[test]
fn continuous_rejects_duplicate_keys() {
    let v = [0.0f64; 3];
    assert_invalid(
        continuous(&[4, 42, 42], &[1, 3], Data::F64(&v)),
        &["duplicate", "key 42", "index 1", "index 2"],
    );
    // Past the quadratic search's cut-off, too.
    let mut ids: Vec<i64> = (0..100).collect();
    ids[80] = 17;
    let v = vec![0.0f64; 100];
    assert_invalid(
        continuous(&ids, &[1, 100], Data::F64(&v)),
        &["duplicate", "key 17", "index 17", "index 80"],
    );
}

#[test]
fn continuous_rejects_non_float_values() {
    assert_invalid(continuous(&[1], &[1, 1], Data::I32(&[1])), &["int32"]);
}

#[test]
fn tensor_rejects_zero_keys() {
    assert_invalid(tensor(&[], &[]), &["keys is empty", "[0]"]);
}

#[test]
fn tensor_rejects_key_tensor_count_mismatch() {
    assert_invalid(
        tensor(&[1, 2], &[(&[1], Data::F32(&[0.0]))]),
        &["2 entries", "1 values tensors"],
    );
    assert_invalid(
        tensor(
            &[1],
            &[(&[1], Data::F32(&[0.0])), (&[1], Data::F32(&[0.0]))],
        ),
        &["1 entries", "2 values tensors"],
    );
}

#[test]
fn tensor_rejects_different_batch_sizes() {
    assert_invalid(
        tensor(
            &[10, 11],
            &[
                (&[2], Data::F32(&[0.0, 1.0])),
                (&[3], Data::I32(&[1, 2, 3])),
            ],
        ),
        &["key 11", "batch size 3", "key 10", "batch size 2"],
    );
}

#[test]
fn tensor_rejects_rank0_tensor() {
    assert_invalid(
        tensor(
            &[1, 5],
            &[(&[1], Data::F32(&[0.0])), (&[], Data::I64(&[9]))],
        ),
        &["values[1]", "key 5", "scalar"],
    );
}

#[test]
fn tensor_rejects_duplicate_keys() {
    assert_invalid(
        tensor(
            &[3, 3],
            &[(&[1], Data::F32(&[0.0])), (&[1], Data::F32(&[0.0]))],
        ),
        &["duplicate", "key 3"],
    );
}

#[test]
fn tensor_rejects_keys_not_rank1() {
    assert_invalid(
        tensor_with_keys(&[], &[3], &[(&[1], Data::F32(&[0.0]))]),
        &["keys", "rank 0"],
    );
}

// ---------------------------------------------------------------------------
// The i32 count limit, checked on sizes only (no buffer is allocated).
// ---------------------------------------------------------------------------

#[test]
fn continuous_batch_at_the_list_limit() {
    // Zero columns make a huge batch cheap to describe: [2^31-1, 0] is the
    // largest list the protocol can count, [2^31, 0] is one too many.
    let keys = Tensor::new(&[0], Data::I64(&[])).unwrap();
    let max = i32::MAX as i64;
    let dims = [max, 0];
    let values = Tensor::new(&dims, Data::F64(&[])).unwrap();
    assert_eq!(
        continuous_size(&keys, &values).unwrap(),
        9 + 10 * i32::MAX as usize
    );
    let dims = [max + 1, 0];
    let values = Tensor::new(&dims, Data::F64(&[])).unwrap();
    let err = continuous_size(&keys, &values).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(err.message().contains("2147483648"), "{err}");
    assert!(err.message().contains("limit"), "{err}");
}

#[test]
fn tensor_batch_at_the_list_limit() {
    let keys = Tensor::new(&[1], Data::I64(&[7])).unwrap();
    let max = i32::MAX as i64;
    let dims = [max, 0];
    let values = [Tensor::new(&dims, Data::F32(&[])).unwrap()];
    // Per record: map field + header + STOP (10), key (8), rawTypedTensor
    // header (3), dataType (7), content header + length (7), shape field and
    // list header (8), one dim (8), two STOPs (2) = 53.
    assert_eq!(
        tensor_response_size(&keys, &values).unwrap(),
        9 + 53 * i32::MAX as usize
    );
    let dims = [max + 1, 0];
    let values = [Tensor::new(&dims, Data::F32(&[])).unwrap()];
    let err = tensor_response_size(&keys, &values).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(err.message().contains("2147483648"), "{err}");
    assert!(err.message().contains("limit"), "{err}");
}

#[test]
fn tensor_row_count_at_the_list_limit() {
    // A string row of 2^31 elements cannot be counted; with a batch of 0 no
    // string data is needed to describe it.
    let keys = Tensor::new(&[1], Data::I64(&[7])).unwrap();
    let none: [&[u8]; 0] = [];
    let dims = [0, 1 << 31];
    let strs = Strs(&none);
    let values = [Tensor::new(&dims, Data::Str(&strs)).unwrap()];
    let err = tensor_response_size(&keys, &values).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(err.message().contains("2147483648 strings"), "{err}");
    // The same for raw content: 2^29 floats are 2^31 bytes, one too many.
    let dims = [0, 1 << 29];
    let values = [Tensor::new(&dims, Data::F32(&[])).unwrap()];
    let err = tensor_response_size(&keys, &values).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(err.message().contains("binary limit"), "{err}");
    // 2^31-1 bytes of uint8 is allowed.
    let dims = [0, max_i32()];
    let values = [Tensor::new(&dims, Data::U8(&[])).unwrap()];
    assert_eq!(tensor_response_size(&keys, &values).unwrap(), 9);
}

fn max_i32() -> i64 {
    i32::MAX as i64
}

#[test]
fn tensor_empty_batch_with_overflowing_row_shape_does_not_panic() {
    // Pins a bug in src/tensor.rs: [0, 2^62, 4] holds no elements, so
    // Tensor::new accepts it, but tensor.rs multiplies the row shape with an
    // unchecked `product()`, which is 2^64: an overflow panic in a debug build
    // (`cargo test` fails here), a silent wrap to 0 in release. The encoder may
    // write the empty response or reject the shape; it must not panic.
    let keys = Tensor::new(&[1], Data::I64(&[7])).unwrap();
    let dims = [0, 1 << 62, 4];
    let values = [Tensor::new(&dims, Data::F32(&[])).unwrap()];
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        tensor_response_size(&keys, &values)
    }));
    match outcome {
        Ok(Ok(n)) => assert_eq!(n, 9),
        Ok(Err(e)) => assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}"),
        Err(_) => panic!("tensor_response_size panicked on shape [0,2^62,4]"),
    }
}
