// Property tests of the C ABI (cpp_shim/include/bpr_ops.h) with views a buggy host could pass:
// NULL and misaligned pointers, element counts that disagree with the dims, unknown dtypes,
// string views without an accessor, wrong output sizes, tiny message buffers. Every call returns
// a status (never unwinds or aborts), writes its message inside the buffer NUL-terminated, and
// for well-formed views writes exactly the bytes of the Rust API. Also the test binary that
// `scripts/memcheck.sh` runs under valgrind.

use std::ffi::{c_char, c_void};

// Links the op library, whose exported C functions the extern block below declares
// (nothing else in this file names the crate, so without this it would not be linked).
extern crate bpr_ops;

use bpr_protocol::{encode_continuous, encode_tensor_response, Data, Tensor};
use proptest::prelude::*;

const OK: i32 = 0;
const INVALID_ARGUMENT: i32 = 1;
const INTERNAL: i32 = 2;

const FLOAT: i32 = 1;
const DOUBLE: i32 = 2;
const INT64: i32 = 6;
const UINT8: i32 = 7;
const STRING: i32 = 9;
const INT8: i32 = 10;

#[repr(C)]
#[derive(Clone, Copy)]
struct Bytes {
    data: *const u8,
    len: usize,
}

type StringAt = unsafe extern "C" fn(*const c_void, usize) -> Bytes;

/// `bpr_tensor` as the header lays it out.
#[repr(C)]
#[derive(Clone, Copy)]
struct View {
    dtype: i32,
    rank: usize,
    dims: *const i64,
    num_elements: usize,
    data: *const c_void,
    string_at: Option<StringAt>,
}

extern "C" {
    fn bpr_continuous_size(
        keys: *const View,
        values: *const View,
        out_size: *mut u64,
        msg: *mut c_char,
        msg_cap: usize,
    ) -> i32;
    fn bpr_continuous_write(
        keys: *const View,
        values: *const View,
        out: *mut u8,
        out_size: u64,
        runner: *const c_void,
        msg: *mut c_char,
        msg_cap: usize,
    ) -> i32;
    fn bpr_tensor_size(
        keys: *const View,
        values: *const View,
        num_values: usize,
        out_size: *mut u64,
        msg: *mut c_char,
        msg_cap: usize,
    ) -> i32;
    fn bpr_tensor_write(
        keys: *const View,
        values: *const View,
        num_values: usize,
        out: *mut u8,
        out_size: u64,
        runner: *const c_void,
        msg: *mut c_char,
        msg_cap: usize,
    ) -> i32;
}

/// The strings of a string view: `data` points to a `Vec<Vec<u8>>`.
unsafe extern "C" fn string_at(strings: *const c_void, index: usize) -> Bytes {
    // SAFETY: the views built below pass a `Vec<Vec<u8>>` that outlives the call.
    let strings = unsafe { &*strings.cast::<Vec<Vec<u8>>>() };
    let s = &strings[index];
    Bytes {
        data: s.as_ptr(),
        len: s.len(),
    }
}

/// A message buffer with guard bytes on both sides.
struct Msg {
    buf: Vec<u8>,
    cap: usize,
}

const GUARD: usize = 16;

impl Msg {
    fn new(cap: usize) -> Msg {
        Msg {
            buf: vec![0xAB; cap + 2 * GUARD],
            cap,
        }
    }

    fn ptr(&mut self) -> *mut c_char {
        if self.cap == 0 {
            return std::ptr::null_mut();
        }
        self.buf[GUARD..].as_mut_ptr().cast()
    }

    /// The message, after checking the guards and the terminating NUL.
    fn text(&self, status: i32) -> Result<String, TestCaseError> {
        let guards_intact = self.buf[..GUARD]
            .iter()
            .chain(&self.buf[GUARD + self.cap..])
            .all(|&b| b == 0xAB);
        prop_assert!(guards_intact, "message written outside its buffer");
        if status == OK || self.cap == 0 {
            return Ok(String::new());
        }
        let inside = &self.buf[GUARD..GUARD + self.cap];
        let end = inside.iter().position(|&b| b == 0);
        prop_assert!(end.is_some(), "message not NUL-terminated");
        let text = String::from_utf8(inside[..end.unwrap()].to_vec());
        prop_assert!(text.is_ok(), "message cut inside a UTF-8 character");
        Ok(text.unwrap())
    }
}

/// How a view is broken, if at all.
#[derive(Clone, Copy, Debug)]
enum Fault {
    None,
    NullView,
    NullDims,
    NullData,
    Misaligned,
    CountTooHigh,
    CountTooLow,
    UnknownDtype,
    NoStringAccessor,
}

fn fault() -> impl Strategy<Value = Fault> {
    prop_oneof![
        16 => Just(Fault::None),
        1 => Just(Fault::NullView),
        1 => Just(Fault::NullDims),
        1 => Just(Fault::NullData),
        1 => Just(Fault::Misaligned),
        1 => Just(Fault::CountTooHigh),
        1 => Just(Fault::CountTooLow),
        1 => Just(Fault::UnknownDtype),
        1 => Just(Fault::NoStringAccessor),
    ]
}

/// Owned storage of one view (8-byte aligned, with one spare element for misalignment).
struct Owned {
    dtype: i32,
    dims: Vec<i64>,
    words: Vec<u64>,
    strings: Vec<Vec<u8>>,
    n: usize,
}

impl Owned {
    fn numeric(dtype: i32, dims: Vec<i64>, seed: u64) -> Owned {
        let n = dims.iter().product::<i64>() as usize;
        let words = (0..=n as u64)
            .map(|i| (seed ^ i).wrapping_mul(0x9e37_79b9_7f4a_7c15))
            .collect();
        Owned {
            dtype,
            dims,
            words,
            strings: Vec::new(),
            n,
        }
    }

    fn strings(dims: Vec<i64>, seed: u64) -> Owned {
        let n = dims.iter().product::<i64>() as usize;
        let strings = (0..n)
            .map(|i| {
                let len = (seed as usize + i * 7) % 9;
                (0..len).map(|j| (seed as usize ^ (i + j)) as u8).collect()
            })
            .collect();
        Owned {
            dtype: STRING,
            dims,
            words: Vec::new(),
            strings,
            n,
        }
    }

    fn data(&self) -> Data<'_> {
        // SAFETY: `words` holds at least n u64s; every type read here is at most 8 bytes,
        // aligned to at most 8, and valid for any bit pattern.
        unsafe {
            let p = self.words.as_ptr();
            match self.dtype {
                FLOAT => Data::F32(std::slice::from_raw_parts(p.cast(), self.n)),
                DOUBLE => Data::F64(std::slice::from_raw_parts(p.cast(), self.n)),
                INT64 => Data::I64(std::slice::from_raw_parts(p.cast(), self.n)),
                UINT8 => Data::U8(std::slice::from_raw_parts(p.cast(), self.n)),
                INT8 => Data::I8(std::slice::from_raw_parts(p.cast(), self.n)),
                STRING => Data::Str(&self.strings),
                _ => unreachable!(),
            }
        }
    }

    fn tensor(&self) -> Tensor<'_> {
        Tensor::new(&self.dims, self.data()).unwrap()
    }

    /// The view, with `fault` applied. Returns None for a NULL view.
    fn view(&self, fault: Fault) -> Option<View> {
        let mut v = View {
            dtype: self.dtype,
            rank: self.dims.len(),
            dims: self.dims.as_ptr(),
            num_elements: self.n,
            data: if self.dtype == STRING {
                (&self.strings as *const Vec<Vec<u8>>).cast()
            } else {
                self.words.as_ptr().cast()
            },
            string_at: Some(string_at),
        };
        match fault {
            Fault::None => {}
            Fault::NullView => return None,
            Fault::NullDims => v.dims = std::ptr::null(),
            // A string view's data is the host's opaque handle, passed back to its own
            // accessor: only numeric data can be checked for NULL and alignment.
            Fault::NullData if self.dtype != STRING => v.data = std::ptr::null(),
            // One byte in: misaligned for every dtype wider than a byte.
            Fault::Misaligned if !matches!(self.dtype, STRING | UINT8 | INT8) => {
                v.data = self.words.as_ptr().cast::<u8>().wrapping_add(1).cast()
            }
            Fault::NullData | Fault::Misaligned => {}
            // One more than the dims say: the encoder must trust neither (and the
            // spare word keeps a wrong read inside the allocation).
            Fault::CountTooHigh if self.dtype != STRING => v.num_elements = self.n + 1,
            Fault::CountTooHigh => {}
            Fault::CountTooLow => v.num_elements = self.n.saturating_sub(1),
            Fault::UnknownDtype => v.dtype = 42,
            Fault::NoStringAccessor => v.string_at = None,
        }
        Some(v)
    }
}

fn view_ptr(v: &Option<View>) -> *const View {
    v.as_ref().map_or(std::ptr::null(), |v| v as *const View)
}

/// Whether the fault changes nothing a careful encoder can see.
fn harmless(f: Fault, o: &Owned) -> bool {
    match f {
        Fault::None => true,
        Fault::NullDims => o.dims.is_empty(),
        Fault::NullData => o.n == 0 || o.dtype == STRING,
        Fault::Misaligned => o.n == 0 || matches!(o.dtype, STRING | UINT8 | INT8),
        Fault::CountTooLow => o.n == 0,
        Fault::CountTooHigh => o.dtype == STRING,
        Fault::NoStringAccessor => o.dtype != STRING,
        Fault::NullView | Fault::UnknownDtype => false,
    }
}

fn keys_owned(ids: Vec<i64>) -> Owned {
    let mut o = Owned::numeric(INT64, vec![ids.len() as i64], 0);
    for (w, k) in o.words.iter_mut().zip(&ids) {
        *w = *k as u64;
    }
    o
}

/// Checks one size+write round through the ABI against the Rust API's result.
fn check_status(
    status: i32,
    msg: &Msg,
    expected: &Result<Vec<u8>, bpr_protocol::Error>,
    all_harmless: bool,
) -> Result<Option<()>, TestCaseError> {
    prop_assert!(
        [OK, INVALID_ARGUMENT, INTERNAL].contains(&status),
        "status {}",
        status
    );
    let text = msg.text(status)?;
    if status != OK && msg.cap > 64 {
        prop_assert!(!text.is_empty(), "an error without a message");
    }
    if all_harmless {
        match expected {
            Ok(_) => prop_assert_eq!(status, OK, "{}", text),
            Err(_) => prop_assert_eq!(status, INVALID_ARGUMENT, "{}", text),
        }
    } else {
        prop_assert!(status != OK, "a broken view was accepted");
    }
    Ok((status == OK).then_some(()))
}

proptest! {
    #![proptest_config(ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn continuous_abi_never_unwinds(
        ids in prop::collection::vec(-2i64..3, 0..4),
        batch in 0i64..4,
        double in any::<bool>(),
        seed in any::<u64>(),
        key_fault in fault(),
        value_fault in fault(),
        cap in prop_oneof![Just(0usize), Just(1), 2usize..12, Just(1024)],
        size_delta in prop_oneof![8 => Just(0i64), 1 => Just(-1), 1 => Just(1)],
    ) {
        let keys = keys_owned(ids.clone());
        let dtype = if double { DOUBLE } else { FLOAT };
        let values = Owned::numeric(dtype, vec![batch, ids.len() as i64], seed);
        let expected = encode_continuous(&keys.tensor(), &values.tensor());
        let (kv, vv) = (keys.view(key_fault), values.view(value_fault));
        let all_harmless = harmless(key_fault, &keys) && harmless(value_fault, &values);

        let mut msg = Msg::new(cap);
        let mut size = 0u64;
        // SAFETY: the views point into `keys` and `values` (or are NULL), `msg` has `cap` bytes.
        let status = unsafe {
            bpr_continuous_size(view_ptr(&kv), view_ptr(&vv), &mut size, msg.ptr(), cap)
        };
        if check_status(status, &msg, &expected, all_harmless)?.is_none() {
            return Ok(());
        }
        let want = expected.unwrap();
        prop_assert_eq!(size as usize, want.len());
        // A wrong output size is the host's bug: an internal error, no write out of bounds.
        let out_len = (size as i64 + size_delta) as usize;
        let mut out = vec![0u8; out_len + GUARD];
        let mut msg = Msg::new(cap);
        // SAFETY: `out` has at least `out_len` bytes.
        let status = unsafe {
            bpr_continuous_write(view_ptr(&kv), view_ptr(&vv), out.as_mut_ptr(), out_len as u64,
                                 std::ptr::null(), msg.ptr(), cap)
        };
        msg.text(status)?;
        if size_delta == 0 {
            prop_assert_eq!(status, OK);
            prop_assert_eq!(&out[..out_len], &want[..]);
        } else {
            prop_assert_eq!(status, INTERNAL);
        }
        prop_assert!(out[out_len..].iter().all(|&b| b == 0), "wrote past the output");
    }

    #[test]
    fn tensor_abi_never_unwinds(
        ids in prop::collection::vec(-2i64..3, 0..4),
        extra_values in prop_oneof![6 => Just(0i64), 1 => Just(-1), 1 => Just(1)],
        batch in 0i64..4,
        columns in prop::collection::vec(
            (prop::sample::select(vec![FLOAT, DOUBLE, INT64, UINT8, INT8, STRING]),
             prop::collection::vec(0i64..3, 0..3), any::<u64>(), fault()),
            5,
        ),
        key_fault in fault(),
        null_values_array in prop::bool::weighted(0.05),
        cap in prop_oneof![Just(0usize), Just(1), 2usize..12, Just(1024)],
        size_delta in prop_oneof![8 => Just(0i64), 1 => Just(-1), 1 => Just(1)],
    ) {
        let keys = keys_owned(ids.clone());
        let count = (ids.len() as i64 + extra_values).max(0) as usize;
        let owned: Vec<Owned> = columns[..count]
            .iter()
            .map(|(dtype, row, seed, _)| {
                let dims = [vec![batch], row.clone()].concat();
                if *dtype == STRING {
                    Owned::strings(dims, *seed)
                } else {
                    Owned::numeric(*dtype, dims, *seed)
                }
            })
            .collect();
        let tensors: Vec<Tensor<'_>> = owned.iter().map(Owned::tensor).collect();
        let expected = encode_tensor_response(&keys.tensor(), &tensors);
        // A NULL entry in a C array of views is not expressible: a NULL-view fault becomes
        // an unknown dtype for values.
        let views: Vec<View> = owned
            .iter()
            .zip(&columns)
            .map(|(o, c)| {
                let f = if matches!(c.3, Fault::NullView) { Fault::UnknownDtype } else { c.3 };
                o.view(f).unwrap()
            })
            .collect();
        let kv = keys.view(key_fault);
        let values_ptr = if null_values_array && count > 0 { std::ptr::null() } else { views.as_ptr() };
        let all_harmless = harmless(key_fault, &keys)
            && !(null_values_array && count > 0)
            && owned.iter().zip(&columns).all(|(o, c)| {
                !matches!(c.3, Fault::NullView) && harmless(c.3, o)
            });

        let mut msg = Msg::new(cap);
        let mut size = 0u64;
        // SAFETY: the views point into `keys` and `owned` (or are NULL), `msg` has `cap` bytes.
        let status = unsafe {
            bpr_tensor_size(view_ptr(&kv), values_ptr, count, &mut size, msg.ptr(), cap)
        };
        if check_status(status, &msg, &expected, all_harmless)?.is_none() {
            return Ok(());
        }
        let want = expected.unwrap();
        prop_assert_eq!(size as usize, want.len());
        let out_len = (size as i64 + size_delta) as usize;
        let mut out = vec![0u8; out_len + GUARD];
        let mut msg = Msg::new(cap);
        // SAFETY: `out` has at least `out_len` bytes.
        let status = unsafe {
            bpr_tensor_write(view_ptr(&kv), values_ptr, count, out.as_mut_ptr(), out_len as u64,
                             std::ptr::null(), msg.ptr(), cap)
        };
        msg.text(status)?;
        if size_delta == 0 {
            prop_assert_eq!(status, OK);
            prop_assert_eq!(&out[..out_len], &want[..]);
        } else {
            prop_assert_eq!(status, INTERNAL);
        }
        prop_assert!(out[out_len..].iter().all(|&b| b == 0), "wrote past the output");
    }
}

/// NULL out_size and NULL output pointers are host bugs: an internal error, no write.
#[test]
fn null_output_pointers_are_internal_errors() {
    let keys = keys_owned(vec![1]);
    let values = Owned::numeric(FLOAT, vec![2, 1], 3);
    let (kv, vv) = (
        keys.view(Fault::None).unwrap(),
        values.view(Fault::None).unwrap(),
    );
    let mut msg = Msg::new(256);
    // SAFETY: valid views; the NULLs are what is tested.
    let status = unsafe { bpr_continuous_size(&kv, &vv, std::ptr::null_mut(), msg.ptr(), msg.cap) };
    assert_eq!(status, INTERNAL);
    let mut msg = Msg::new(256);
    // SAFETY: as above.
    let status = unsafe {
        bpr_continuous_write(
            &kv,
            &vv,
            std::ptr::null_mut(),
            41,
            std::ptr::null(),
            msg.ptr(),
            msg.cap,
        )
    };
    assert_eq!(status, INTERNAL);
    assert!(msg.text(status).unwrap().contains("NULL output"));
}
