//! Binary-safe string tensors for the C API (issue 29): serialized requests
//! in, serialized responses out.
//!
//! The tensorflow crate's `String` element is Rust's UTF-8 `String`: a
//! serialized Thrift request or response is arbitrary bytes (NULs, bytes
//! over 0x7f), which it cannot hold, and unpacking such a tensor fails. So
//! [`Bytes`] is an element type of our own: TensorFlow's `TF_TString`s
//! copied in and out byte for byte through the C API's string functions.
//!
//! It implements the crate's `TensorType` with the crate's own (public but
//! doc-hidden) `TensorDataNoCRepr` storage, as the crate's `String` does, and
//! packs like it: a Rust-allocated buffer of initialised TF_TStrings that
//! TensorFlow owns and releases through `free_strings`. (TF_AllocateTensor
//! would leave the strings uninitialised, and free their buffer without
//! releasing each string's own allocation.)

use std::fmt;

use tensorflow::{Code, DataType, Status, TensorType};
use tensorflow_sys as tf;

/// One element of a string tensor: any bytes.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Bytes(pub Vec<u8>);

impl fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Bytes({} bytes)", self.0.len())
    }
}

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{} bytes>", self.0.len())
    }
}

impl TensorType for Bytes {
    type InnerType = tensorflow::TensorDataNoCRepr<Bytes>;

    fn data_type() -> DataType {
        DataType::String
    }

    fn zero() -> Self {
        Bytes(Vec::new())
    }

    fn one() -> Self {
        Bytes(vec![1])
    }

    fn is_repr_c() -> bool {
        false
    }

    fn unpack(data: &[u8], count: usize) -> tensorflow::Result<Vec<Self>> {
        let size = std::mem::size_of::<tf::TF_TString>();
        if data.len() < count.saturating_mul(size)
            || !(data.as_ptr() as usize).is_multiple_of(std::mem::align_of::<tf::TF_TString>())
        {
            return Err(Status::new_set_lossy(
                Code::Internal,
                "string tensor data is not an array of TF_TString",
            ));
        }
        let strings = data.as_ptr().cast::<tf::TF_TString>();
        (0..count)
            .map(|i| {
                // SAFETY: `data` is the tensor's buffer of `count` TF_TStrings
                // (checked above: size and alignment), alive for this call;
                // the C API returns the i-th string's pointer and size, which
                // stay valid while the tensor is not changed.
                unsafe {
                    let s = strings.add(i);
                    let n = tf::TF_StringGetSize(s);
                    let p = tf::TF_StringGetDataPointer(s).cast::<u8>();
                    Ok(Bytes(if n == 0 {
                        Vec::new()
                    } else {
                        std::slice::from_raw_parts(p, n).to_vec()
                    }))
                }
            })
            .collect()
    }

    fn pack(data: &[Self], dims: &[u64]) -> tensorflow::Result<*mut tf::TF_Tensor> {
        let dims: Vec<i64> = dims.iter().map(|&d| d as i64).collect();
        let len = data.len() * std::mem::size_of::<tf::TF_TString>();
        let layout = strings_layout(len).ok_or_else(|| {
            Status::new_set_lossy(Code::Internal, "string tensor too large to allocate")
        })?;
        // SAFETY: the layout's size is non-zero (strings_layout).
        let buffer = unsafe { std::alloc::alloc(layout) };
        if buffer.is_null() {
            return Err(Status::new_set_lossy(
                Code::ResourceExhausted,
                "cannot allocate a string tensor",
            ));
        }
        let strings = buffer.cast::<tf::TF_TString>();
        // SAFETY: `buffer` holds `data.len()` TF_TStrings (aligned by the
        // layout); each is initialised, then given a copy of its bytes. The
        // tensor owns the buffer from here: `free_strings` releases each
        // string's own allocation, then the buffer, when TensorFlow is done.
        unsafe {
            for (i, b) in data.iter().enumerate() {
                tf::TF_StringInit(strings.add(i));
                tf::TF_StringCopy(strings.add(i), b.0.as_ptr().cast(), b.0.len());
            }
            let tensor = tf::TF_NewTensor(
                tf::TF_STRING,
                dims.as_ptr(),
                dims.len() as i32,
                buffer.cast(),
                len,
                Some(free_strings),
                std::ptr::null_mut(),
            );
            if tensor.is_null() {
                free_strings(buffer.cast(), len, std::ptr::null_mut());
                return Err(Status::new_set_lossy(
                    Code::Internal,
                    "TF_NewTensor returned NULL for a string tensor",
                ));
            }
            Ok(tensor)
        }
    }
}

/// The buffer of `len` bytes of TF_TStrings; never zero-sized (an empty
/// tensor still gets one element's room, as `alloc` requires).
fn strings_layout(len: usize) -> Option<std::alloc::Layout> {
    let size = len.max(std::mem::size_of::<tf::TF_TString>());
    std::alloc::Layout::from_size_align(size, std::mem::align_of::<tf::TF_TString>()).ok()
}

/// TensorFlow's deallocator for a tensor made by `Bytes::pack`.
///
/// # Safety
/// `data` and `len` are what `pack` gave TF_NewTensor, called once.
unsafe extern "C" fn free_strings(
    data: *mut std::ffi::c_void,
    len: usize,
    _: *mut std::ffi::c_void,
) {
    let Some(layout) = strings_layout(len) else {
        // Cannot happen (pack made the same layout); never unwind into C.
        std::process::abort();
    };
    let strings = data.cast::<tf::TF_TString>();
    // SAFETY: per the contract, `len / size` strings initialised by pack,
    // each released once, then the buffer, with the layout it was made with.
    unsafe {
        for i in 0..len / std::mem::size_of::<tf::TF_TString>() {
            tf::TF_StringDealloc(strings.add(i));
        }
        std::alloc::dealloc(data.cast(), layout);
    }
}
