//! Borrowed views of the op inputs, independent of any tensor library.

use crate::error::{Error, Result, Shape};
use half::{bf16, f16};
use std::fmt;

/// Strings of a string tensor, in row-major order.
///
/// A trait rather than a slice so a host can hand out its own string objects
/// (TensorFlow's `tstring`) without copying them into a Rust-owned buffer.
pub trait StringSource: Sync {
    /// Number of strings.
    fn len(&self) -> usize;
    /// String `index` (`index < len()`), as raw bytes: not necessarily UTF-8.
    fn get(&self, index: usize) -> &[u8];
    /// True when there are no strings.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T: AsRef<[u8]> + Sync> StringSource for [T] {
    fn len(&self) -> usize {
        <[T]>::len(self)
    }
    fn get(&self, index: usize) -> &[u8] {
        self[index].as_ref()
    }
}

// `[T]` is unsized and cannot become a `&dyn StringSource`; these can:
// `Data::Str(&vec)`, `Data::Str(&array)`, `Data::Str(&slice)`.
impl<T: AsRef<[u8]> + Sync> StringSource for Vec<T> {
    fn len(&self) -> usize {
        self.as_slice().len()
    }
    fn get(&self, index: usize) -> &[u8] {
        self[index].as_ref()
    }
}

impl<T: AsRef<[u8]> + Sync, const N: usize> StringSource for [T; N] {
    fn len(&self) -> usize {
        N
    }
    fn get(&self, index: usize) -> &[u8] {
        self[index].as_ref()
    }
}

impl<S: StringSource + ?Sized> StringSource for &S {
    fn len(&self) -> usize {
        (**self).len()
    }
    fn get(&self, index: usize) -> &[u8] {
        (**self).get(index)
    }
}

/// The elements of a tensor, row-major.
#[non_exhaustive]
#[derive(Clone, Copy)]
pub enum Data<'a> {
    /// `float`.
    F32(&'a [f32]),
    /// `double`.
    F64(&'a [f64]),
    /// `half`.
    F16(&'a [f16]),
    /// `bfloat16`.
    BF16(&'a [bf16]),
    /// `int32`.
    I32(&'a [i32]),
    /// `int64`.
    I64(&'a [i64]),
    /// `uint8`.
    U8(&'a [u8]),
    /// Quantized outputs; written as Thrift `BYTE`, one byte per element.
    I8(&'a [i8]),
    /// One byte per element, as TensorFlow stores `bool`.
    Bool(&'a [u8]),
    /// `string`: byte strings, not necessarily UTF-8, read in place.
    Str(&'a dyn StringSource),
}

/// Element types, named as TensorFlow names them in messages.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DType {
    /// `float`.
    F32,
    /// `double`.
    F64,
    /// `half`.
    F16,
    /// `bfloat16`.
    BF16,
    /// `int32`.
    I32,
    /// `int64`.
    I64,
    /// `uint8`.
    U8,
    /// `int8`.
    I8,
    /// `bool`.
    Bool,
    /// `string`.
    Str,
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DType::F32 => "float",
            DType::F64 => "double",
            DType::F16 => "half",
            DType::BF16 => "bfloat16",
            DType::I32 => "int32",
            DType::I64 => "int64",
            DType::U8 => "uint8",
            DType::I8 => "int8",
            DType::Bool => "bool",
            DType::Str => "string",
        })
    }
}

impl<'a> Data<'a> {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            Data::F32(v) => v.len(),
            Data::F64(v) => v.len(),
            Data::F16(v) => v.len(),
            Data::BF16(v) => v.len(),
            Data::I32(v) => v.len(),
            Data::I64(v) => v.len(),
            Data::U8(v) | Data::Bool(v) => v.len(),
            Data::I8(v) => v.len(),
            Data::Str(v) => v.len(),
        }
    }

    /// True when there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The elements from `start` on (numeric and bool data only).
    pub(crate) fn skip(self, start: usize) -> Data<'a> {
        match self {
            Data::F32(v) => Data::F32(&v[start..]),
            Data::F64(v) => Data::F64(&v[start..]),
            Data::F16(v) => Data::F16(&v[start..]),
            Data::BF16(v) => Data::BF16(&v[start..]),
            Data::I32(v) => Data::I32(&v[start..]),
            Data::I64(v) => Data::I64(&v[start..]),
            Data::U8(v) => Data::U8(&v[start..]),
            Data::I8(v) => Data::I8(&v[start..]),
            Data::Bool(v) => Data::Bool(&v[start..]),
            Data::Str(_) => unreachable!("string data is read by index, not sliced"),
        }
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        match self {
            Data::F32(_) => DType::F32,
            Data::F64(_) => DType::F64,
            Data::F16(_) => DType::F16,
            Data::BF16(_) => DType::BF16,
            Data::I32(_) => DType::I32,
            Data::I64(_) => DType::I64,
            Data::U8(_) => DType::U8,
            Data::I8(_) => DType::I8,
            Data::Bool(_) => DType::Bool,
            Data::Str(_) => DType::Str,
        }
    }
}

/// A dense tensor: its shape and its elements. The element count always
/// equals the product of the dims (checked by [`Tensor::new`]).
#[derive(Clone, Copy)]
pub struct Tensor<'a> {
    dims: &'a [i64],
    data: Data<'a>,
}

impl<'a> Tensor<'a> {
    /// Checks that `dims` are non-negative and that their product is the
    /// number of elements in `data`.
    pub fn new(dims: &'a [i64], data: Data<'a>) -> Result<Self> {
        let mut count: usize = 1;
        for &d in dims {
            let d = usize::try_from(d).map_err(|_| {
                Error::invalid(format!(
                    "tensor shape {} has a negative dimension",
                    Shape(dims)
                ))
            })?;
            count = count.checked_mul(d).ok_or_else(|| {
                Error::invalid(format!(
                    "tensor shape {} has more elements than fit in memory",
                    Shape(dims)
                ))
            })?;
        }
        if count != data.len() {
            return Err(Error::invalid(format!(
                "tensor shape {} holds {count} elements but {} were given",
                Shape(dims),
                data.len()
            )));
        }
        Ok(Tensor { dims, data })
    }

    /// The shape.
    pub fn dims(&self) -> &'a [i64] {
        self.dims
    }

    /// The elements, row-major.
    pub fn data(&self) -> Data<'a> {
        self.data
    }

    /// The number of dimensions.
    pub fn rank(&self) -> usize {
        self.dims.len()
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.data.dtype()
    }
}

/// Checks the keys input: a rank-1 int64 tensor with no repeated key.
pub(crate) fn check_keys<'a>(keys: &Tensor<'a>) -> Result<&'a [i64]> {
    let ids = match keys.data() {
        Data::I64(ids) => ids,
        other => {
            return Err(Error::invalid(format!(
                "keys must be int64, got {}",
                other.dtype()
            )))
        }
    };
    if keys.rank() != 1 {
        return Err(Error::invalid(format!(
            "keys must be a rank-1 tensor (one feature id per output), got shape {} (rank {})",
            Shape(keys.dims()),
            keys.rank()
        )));
    }
    if ids.len() > crate::wire::MAX_COUNT {
        return Err(Error::invalid(format!(
            "keys has {} entries, over the Thrift map limit of {}",
            ids.len(),
            crate::wire::MAX_COUNT
        )));
    }
    if let Some((first, second, key)) = find_duplicate(ids) {
        return Err(Error::invalid(format!(
            "keys has a duplicate: key {key} appears at index {first} and index {second}; \
             each key may appear once (a Thrift map keeps one value per key)"
        )));
    }
    Ok(ids)
}

/// The first repeated key (by its second occurrence's index), with both indices.
fn find_duplicate(ids: &[i64]) -> Option<(usize, usize, i64)> {
    // Keys are few in practice: quadratic is faster than sorting up to here and
    // allocates nothing.
    const QUADRATIC_UP_TO: usize = 32;
    if ids.len() <= QUADRATIC_UP_TO {
        for j in 1..ids.len() {
            if let Some(i) = ids[..j].iter().position(|&k| k == ids[j]) {
                return Some((i, j, ids[j]));
            }
        }
        return None;
    }
    let mut order: Vec<(i64, usize)> = ids.iter().copied().zip(0..).collect();
    order.sort_unstable();
    order
        .windows(2)
        .filter(|w| w[0].0 == w[1].0)
        .map(|w| (w[0].1, w[1].1, w[0].0))
        .min_by_key(|&(_, second, _)| second)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_are_found_in_both_strategies() {
        assert_eq!(find_duplicate(&[1, 2, 3]), None);
        assert_eq!(find_duplicate(&[1, 2, 1]), Some((0, 2, 1)));
        let mut many: Vec<i64> = (0..100).collect();
        assert_eq!(find_duplicate(&many), None);
        many[70] = 5;
        many[90] = 7;
        assert_eq!(find_duplicate(&many), Some((5, 70, 5)));
    }

    /// Regression: only `[T]` implemented StringSource, and an unsized slice
    /// cannot become `&dyn StringSource`, so Rust callers could not pass strings.
    #[test]
    fn strings_can_be_passed_as_vec_array_or_slice() {
        let v: Vec<&[u8]> = vec![b"a", b"\xff"];
        let a = [b"x".to_vec()];
        let s: &[&str] = &["p", "q", "r"];
        for (data, n) in [(Data::Str(&v), 2), (Data::Str(&a), 1), (Data::Str(&s), 3)] {
            assert_eq!(data.len(), n);
        }
        let Data::Str(strings) = Data::Str(&v) else {
            unreachable!()
        };
        assert_eq!(strings.get(1), b"\xff");
    }

    #[test]
    fn tensor_new_checks_the_element_count() {
        let v = [1.0f32, 2.0];
        assert!(Tensor::new(&[2], Data::F32(&v)).is_ok());
        let e = Tensor::new(&[3], Data::F32(&v)).err().unwrap();
        assert!(e.message().contains("[3] holds 3 elements but 2"), "{e}");
        assert!(Tensor::new(&[-1], Data::F32(&v)).is_err());
    }
}
