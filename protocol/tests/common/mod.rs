// Helpers shared by the integration tests (thrift_decode.rs, proptest_encoder.rs, avx2.rs): a
// seedable generator, a runner on scoped threads, owned input columns, the spec's expected bytes (widening oracles independent of
// `bpr_protocol::widen`), and a protocol-level walk of the encoded response.
//
// Each test file is its own crate and uses only part of this module.
#![allow(dead_code)]

use bpr_protocol::Data;
use half::{bf16, f16};
use thrift::protocol::{TBinaryInputProtocol, TInputProtocol, TType};

// ---------------------------------------------------------------------------
// Deterministic inputs
// ---------------------------------------------------------------------------

/// SplitMix64: a small, seedable generator, so every run (and every proptest seed) gives the
/// same values.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Element types, in the order of the test files' column constructors.
pub const DTYPES: usize = 10;
pub const STR: usize = 8;

/// An owned input column of any dtype. Each test file adds its own constructors.
#[derive(Debug)]
pub enum Column {
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

impl Column {
    pub fn data(&self) -> Data<'_> {
        match self {
            Column::F32(v) => Data::F32(v),
            Column::F64(v) => Data::F64(v),
            Column::F16(v) => Data::F16(v),
            Column::BF16(v) => Data::BF16(v),
            Column::I32(v) => Data::I32(v),
            Column::I64(v) => Data::I64(v),
            Column::U8(v) => Data::U8(v),
            Column::Bool(v) => Data::Bool(v),
            Column::Str(v) => Data::Str(v),
            Column::I8(v) => Data::I8(v),
        }
    }

    /// Elements `range` as the GeneralTensor the tensor op must write.
    pub fn row(&self, range: std::ops::Range<usize>, shape: &[i64]) -> Row {
        let raw = |data_type: i32, content: Vec<u8>| Row::Raw {
            data_type,
            content,
            shape: shape.to_vec(),
        };
        match self {
            Column::F32(v) => raw(0, le(&v[range], |x| x.to_bits().to_le_bytes())),
            Column::F64(v) => raw(1, le(&v[range], |x| x.to_bits().to_le_bytes())),
            Column::F16(v) => raw(0, le(&v[range], |x| widen_f16(x.to_bits()).to_le_bytes())),
            Column::BF16(v) => raw(0, le(&v[range], |x| widen_bf16(x.to_bits()).to_le_bytes())),
            Column::I32(v) => raw(2, le(&v[range], i32::to_le_bytes)),
            Column::I64(v) => raw(3, le(&v[range], i64::to_le_bytes)),
            Column::U8(v) => raw(4, v[range].to_vec()),
            Column::Bool(v) => raw(7, v[range].to_vec()),
            Column::I8(v) => raw(6, le(&v[range], i8::to_le_bytes)),
            Column::Str(s) => Row::Str {
                strings: s[range].to_vec(),
                shape: shape.to_vec(),
            },
        }
    }
}

// ---------------------------------------------------------------------------
// The oracle: what the spec says each element becomes.
// ---------------------------------------------------------------------------

/// f32 -> f64 bits: exact for numbers; a NaN keeps sign and payload, moved to the top of the
/// wider mantissa, with no quiet bit added.
pub fn widen_f32(b: u32) -> u64 {
    if (b & 0x7fff_ffff) > 0x7f80_0000 {
        (u64::from(b >> 31) << 63) | (0x7ff << 52) | (u64::from(b & 0x7f_ffff) << 29)
    } else {
        f64::from(f32::from_bits(b)).to_bits()
    }
}

/// f16 -> f32 bits, same rule.
pub fn widen_f16(b: u16) -> u32 {
    let b = u32::from(b);
    if (b & 0x7fff) > 0x7c00 {
        ((b >> 15) << 31) | (0xff << 23) | ((b & 0x3ff) << 13)
    } else {
        f16::from_bits(b as u16).to_f32().to_bits()
    }
}

/// bf16 -> f32 bits: bf16 is the top half of an f32.
pub fn widen_bf16(b: u16) -> u32 {
    u32::from(b) << 16
}

pub fn le<T: Copy, const N: usize>(v: &[T], f: impl Fn(T) -> [u8; N]) -> Vec<u8> {
    v.iter().flat_map(|&x| f(x)).collect()
}

// ---------------------------------------------------------------------------
// Decoding with the thrift crate's binary protocol
// ---------------------------------------------------------------------------

/// One decoded or expected `GeneralTensor`.
#[derive(Clone, Debug, PartialEq)]
pub enum Row {
    Raw {
        data_type: i32,
        content: Vec<u8>,
        shape: Vec<i64>,
    },
    Str {
        strings: Vec<Vec<u8>>,
        shape: Vec<i64>,
    },
}

/// The entries of one record's map, in wire order.
#[derive(Debug, PartialEq)]
pub enum Record {
    Continuous(Vec<(i64, u64)>),
    Tensors(Vec<(i64, Row)>),
}

pub type Walk<T> = Result<T, String>;

/// The records of a response, walked with the protocol-level API of the `thrift` crate.
/// Unlike Apache's generated structs this keeps the map order and reads strings as bytes (the
/// generated code turns `string` into a Rust `String` and rejects non-UTF-8). Any field or type
/// the schema does not allow here is an error, and every byte must be consumed.
pub fn decode(bytes: &[u8]) -> Walk<Vec<Record>> {
    let mut rest = bytes;
    let mut p = TBinaryInputProtocol::new(&mut rest, true);
    let p: &mut dyn TInputProtocol = &mut p;
    w(p.read_struct_begin())?;
    expect_field(p, TType::List, 1)?;
    let list = w(p.read_list_begin())?;
    if list.element_type != TType::Struct || list.size < 0 {
        return Err(format!("predictions: expected list<struct>, got {list:?}"));
    }
    let records = (0..list.size)
        .map(|_| walk_record(p))
        .collect::<Walk<Vec<_>>>()?;
    expect_stop(p)?;
    if !rest.is_empty() {
        return Err(format!("{} bytes left after the response", rest.len()));
    }
    Ok(records)
}

fn w<T>(r: thrift::Result<T>) -> Walk<T> {
    r.map_err(|e| e.to_string())
}

fn expect_field(p: &mut dyn TInputProtocol, ttype: TType, id: i16) -> Walk<()> {
    let f = w(p.read_field_begin())?;
    if f.field_type != ttype || f.id != Some(id) {
        return Err(format!("expected field {id} of {ttype:?}, got {f:?}"));
    }
    Ok(())
}

fn expect_stop(p: &mut dyn TInputProtocol) -> Walk<()> {
    let f = w(p.read_field_begin())?;
    if f.field_type != TType::Stop || f.id != Some(0) {
        return Err(format!("expected STOP, got {f:?}"));
    }
    Ok(())
}

fn walk_i64_list(p: &mut dyn TInputProtocol) -> Walk<Vec<i64>> {
    let l = w(p.read_list_begin())?;
    if l.element_type != TType::I64 || l.size < 0 {
        return Err(format!("expected list<i64>, got {l:?}"));
    }
    (0..l.size).map(|_| w(p.read_i64())).collect()
}

fn walk_record(p: &mut dyn TInputProtocol) -> Walk<Record> {
    let f = w(p.read_field_begin())?;
    let map = w(p.read_map_begin())?;
    if map.key_type != Some(TType::I64) || map.size < 0 {
        return Err(format!("expected map<i64, _>, got {map:?}"));
    }
    let record = match (f.field_type, f.id, map.value_type) {
        (TType::Map, Some(2), Some(TType::Double)) => Record::Continuous(
            (0..map.size)
                .map(|_| Ok((w(p.read_i64())?, w(p.read_double())?.to_bits())))
                .collect::<Walk<_>>()?,
        ),
        (TType::Map, Some(8), Some(TType::Struct)) => Record::Tensors(
            (0..map.size)
                .map(|_| Ok((w(p.read_i64())?, walk_general_tensor(p)?)))
                .collect::<Walk<_>>()?,
        ),
        other => return Err(format!("unexpected record field {other:?}")),
    };
    expect_stop(p)?;
    Ok(record)
}

fn walk_general_tensor(p: &mut dyn TInputProtocol) -> Walk<Row> {
    let f = w(p.read_field_begin())?;
    let row = match (f.field_type, f.id) {
        (TType::Struct, Some(1)) => {
            expect_field(p, TType::I32, 1)?;
            let data_type = w(p.read_i32())?;
            expect_field(p, TType::String, 2)?;
            let content = w(p.read_bytes())?;
            expect_field(p, TType::List, 3)?;
            let shape = walk_i64_list(p)?;
            expect_stop(p)?;
            Row::Raw {
                data_type,
                content,
                shape,
            }
        }
        (TType::Struct, Some(2)) => {
            expect_field(p, TType::List, 1)?;
            let l = w(p.read_list_begin())?;
            if l.element_type != TType::String || l.size < 0 {
                return Err(format!("expected list<string>, got {l:?}"));
            }
            let strings = (0..l.size)
                .map(|_| w(p.read_bytes()))
                .collect::<Walk<Vec<_>>>()?;
            expect_field(p, TType::List, 2)?;
            let shape = walk_i64_list(p)?;
            expect_stop(p)?;
            Row::Str { strings, shape }
        }
        other => return Err(format!("unexpected GeneralTensor field {other:?}")),
    };
    // A union holds exactly one field.
    expect_stop(p)?;
    Ok(row)
}

/// Runs the tasks on scoped threads, as a host pool with `n` workers would.
#[allow(unused_imports)] // not every test binary that shares this module runs threads
pub use bpr_protocol::ScopedThreads as Threads;
