//! Thrift binary-protocol constants and the byte sink the encoders write through.
//!
//! Every type code and field id the encoders emit is named here, once, and
//! `tests/idl_constants.rs` checks them against `thrift/*.thrift`.

/// Binary-protocol type codes (Apache Thrift `doc/specs/thrift-binary-protocol.md`).
#[allow(missing_docs)]
pub mod ttype {
    pub const STOP: u8 = 0;
    pub const BOOL: u8 = 2;
    pub const BYTE: u8 = 3;
    pub const DOUBLE: u8 = 4;
    pub const I16: u8 = 6;
    pub const I32: u8 = 8;
    pub const I64: u8 = 10;
    pub const STRING: u8 = 11;
    pub const STRUCT: u8 = 12;
    pub const MAP: u8 = 13;
    pub const SET: u8 = 14;
    pub const LIST: u8 = 15;
}

/// Field ids of the schema in `thrift/`: what existing consumers decode.
pub mod field {
    /// `BatchPredictionResponse.predictions: list<DataRecord>`
    pub const RESPONSE_PREDICTIONS: i16 = 1;
    /// `DataRecord.continuousFeatures: map<i64, double>`
    pub const RECORD_CONTINUOUS_FEATURES: i16 = 2;
    /// `DataRecord.tensors: map<i64, GeneralTensor>`
    pub const RECORD_TENSORS: i16 = 8;
    /// `GeneralTensor.rawTypedTensor: RawTypedTensor`
    pub const GENERAL_RAW_TYPED_TENSOR: i16 = 1;
    /// `GeneralTensor.stringTensor: StringTensor`
    pub const GENERAL_STRING_TENSOR: i16 = 2;
    /// `RawTypedTensor.dataType: DataType`
    pub const RAW_DATA_TYPE: i16 = 1;
    /// `RawTypedTensor.content: binary`
    pub const RAW_CONTENT: i16 = 2;
    /// `RawTypedTensor.shape: list<i64>`
    pub const RAW_SHAPE: i16 = 3;
    /// `StringTensor.strings: list<string>`
    pub const STRING_STRINGS: i16 = 1;
    /// `StringTensor.shape: list<i64>`
    pub const STRING_SHAPE: i16 = 2;
}

/// Values of the Thrift `DataType` enum (`thrift/tensor.thrift`).
#[allow(missing_docs)]
pub mod data_type {
    pub const FLOAT: i32 = 0;
    pub const DOUBLE: i32 = 1;
    pub const INT32: i32 = 2;
    pub const INT64: i32 = 3;
    pub const UINT8: i32 = 4;
    pub const BYTE: i32 = 6;
    pub const BOOL: i32 = 7;
}

/// Every count and length on the wire is a signed i32.
pub const MAX_COUNT: usize = i32::MAX as usize;

/// Bytes of a field header: type (1) + id (2).
pub const FIELD_HEADER: usize = 3;
/// Bytes of a list header: element type (1) + count (4).
pub const LIST_HEADER: usize = 5;
/// Bytes of a map header: key type (1) + value type (1) + count (4).
pub const MAP_HEADER: usize = 6;
/// Bytes of the STOP that ends a struct.
pub const STOP: usize = 1;

/// Response framing: the `predictions` field and list header, and the final STOP.
pub const RESPONSE_OVERHEAD: usize = FIELD_HEADER + LIST_HEADER + STOP;
/// Record framing: one map field (header + map header) and the record's STOP.
pub const RECORD_OVERHEAD: usize = FIELD_HEADER + MAP_HEADER + STOP;

/// A zeroed buffer of `size` bytes for the `encode_*` conveniences, or an
/// error: `vec![0; size]` would abort the process when memory runs out.
pub(crate) fn output_buffer(size: usize) -> crate::Result<Vec<u8>> {
    let mut out = Vec::new();
    out.try_reserve_exact(size)
        .map_err(|_| crate::Error::invalid(format!("cannot allocate the {size}-byte response")))?;
    out.resize(size, 0);
    Ok(out)
}

/// A cursor over the output buffer.
///
/// Sizes are computed before writing, so a write past the end is a bug in
/// bpr_ops: slice indexing then panics, and the FFI boundary turns that panic
/// into an internal error instead of writing out of bounds.
pub(crate) struct Sink<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl<'a> Sink<'a> {
    pub(crate) fn new(buf: &'a mut [u8]) -> Self {
        Sink { buf, pos: 0 }
    }

    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    /// Hands out the next `n` bytes for a caller that fills them in bulk.
    #[inline]
    pub(crate) fn take(&mut self, n: usize) -> &mut [u8] {
        let start = self.pos;
        self.pos += n;
        &mut self.buf[start..start + n]
    }

    #[inline]
    pub(crate) fn bytes(&mut self, b: &[u8]) {
        self.take(b.len()).copy_from_slice(b);
    }

    #[inline]
    pub(crate) fn u8(&mut self, v: u8) {
        self.take(1)[0] = v;
    }

    #[inline]
    pub(crate) fn i32(&mut self, v: i32) {
        self.bytes(&v.to_be_bytes());
    }

    #[inline]
    pub(crate) fn i64(&mut self, v: i64) {
        self.bytes(&v.to_be_bytes());
    }

    #[inline]
    pub(crate) fn field(&mut self, ttype: u8, id: i16) {
        let id = id.to_be_bytes();
        self.bytes(&[ttype, id[0], id[1]]);
    }

    /// Writes a list or map count. Callers have checked it against [`MAX_COUNT`].
    #[inline]
    pub(crate) fn count(&mut self, n: usize) {
        debug_assert!(n <= MAX_COUNT);
        self.i32(n as i32);
    }

    #[inline]
    pub(crate) fn list_header(&mut self, elem: u8, n: usize) {
        self.u8(elem);
        self.count(n);
    }

    #[inline]
    pub(crate) fn map_header(&mut self, key: u8, value: u8, n: usize) {
        self.u8(key);
        self.u8(value);
        self.count(n);
    }

    #[inline]
    pub(crate) fn stop(&mut self) {
        self.u8(ttype::STOP);
    }

    /// A `list<i64>` body: header and elements.
    pub(crate) fn i64_list(&mut self, values: &[i64]) {
        self.list_header(ttype::I64, values.len());
        for &v in values {
            self.i64(v);
        }
    }

    /// The response framing up to the first record.
    pub(crate) fn response_begin(&mut self, records: usize) {
        self.field(ttype::LIST, field::RESPONSE_PREDICTIONS);
        self.list_header(ttype::STRUCT, records);
    }
}
