//! `BatchPredictionResponseWriter`: one `continuousFeatures` map per example.
//!
//! Record bytes: `0D 0002 0A 04 <K:i32>`, K times `<key:i64><value:double>`, `00`.

use crate::error::{Error, Result, Shape};
use crate::input::{check_keys, Data, Tensor};
use crate::parallel::{sharded, Runner, Serial};
use crate::widen;
use crate::wire::{self, field, ttype, Sink};

/// Bytes of one map entry: i64 key + double value.
const ENTRY: usize = 16;

/// The validated layout of one call.
struct Layout<'a> {
    keys: &'a [i64],
    batch: usize,
    record_len: usize,
    total: usize,
}

fn layout<'a>(keys: &Tensor<'a>, values: &Tensor<'_>) -> Result<Layout<'a>> {
    let keys = check_keys(keys)?;
    let k = keys.len();
    match values.data() {
        Data::F32(_) | Data::F64(_) | Data::F16(_) | Data::BF16(_) => {}
        other => {
            return Err(Error::invalid(format!(
                "values must be float, double, half or bfloat16, got {}",
                other.dtype()
            )))
        }
    }
    let dims = values.dims();
    let batch = match *dims {
        [b, cols] => {
            if cols as usize != k {
                return Err(Error::invalid(format!(
                    "values has shape {} ({cols} columns) but keys has {k} entries; \
                     values must have shape [batch, {k}], one column per key",
                    Shape(dims)
                )));
            }
            b as usize
        }
        [b] if k == 1 => b as usize,
        [_] => {
            return Err(Error::invalid(format!(
                "values has rank-1 shape {} but keys has {k} entries; a rank-1 values \
                 (one score per example) needs exactly one key, otherwise values must have \
                 shape [batch, {k}]",
                Shape(dims)
            )))
        }
        _ => {
            return Err(Error::invalid(format!(
                "values must have shape [batch, {k}] (rank 2){}, got shape {} (rank {})",
                if k == 1 { " or [batch]" } else { "" },
                Shape(dims),
                dims.len()
            )))
        }
    };
    if batch > wire::MAX_COUNT {
        return Err(Error::invalid(format!(
            "values has shape {}: a batch of {batch} records is over the Thrift list limit of {}",
            Shape(dims),
            wire::MAX_COUNT
        )));
    }
    let too_large = || {
        Error::invalid(format!(
            "values has shape {}: the response would not fit in memory",
            Shape(dims)
        ))
    };
    let record_len = k
        .checked_mul(ENTRY)
        .and_then(|n| n.checked_add(wire::RECORD_OVERHEAD))
        .ok_or_else(too_large)?;
    let total = batch
        .checked_mul(record_len)
        .and_then(|n| n.checked_add(wire::RESPONSE_OVERHEAD))
        .ok_or_else(too_large)?;
    Ok(Layout {
        keys,
        batch,
        record_len,
        total,
    })
}

/// A validated call of the continuous writer: its inputs checked once, its
/// exact size known, ready to write into a buffer of that size.
///
/// A host that allocates the output itself (the TensorFlow kernel) plans,
/// allocates [`ContinuousPlan::size`] bytes and writes, validating once.
pub struct ContinuousPlan<'a> {
    layout: Layout<'a>,
    values: Data<'a>,
}

/// Validates the inputs of the continuous writer and computes its output size.
pub fn plan_continuous<'a>(keys: &Tensor<'a>, values: &Tensor<'a>) -> Result<ContinuousPlan<'a>> {
    Ok(ContinuousPlan {
        layout: layout(keys, values)?,
        values: values.data(),
    })
}

impl ContinuousPlan<'_> {
    /// The exact number of bytes [`ContinuousPlan::write`] writes.
    pub fn size(&self) -> usize {
        self.layout.total
    }

    /// Writes the response into `out`, which must be exactly [`ContinuousPlan::size`]
    /// bytes, in shards on `runner` when it is large.
    pub fn write(&self, out: &mut [u8], runner: &dyn Runner) -> Result<()> {
        let l = &self.layout;
        let body = frame(l, out)?;
        match self.values {
            Data::F32(v) => write_body(l, v, body, runner, |x| {
                widen::f32_bits_to_f64_bits(x.to_bits())
            }),
            Data::F64(v) => write_body(l, v, body, runner, f64::to_bits),
            Data::F16(v) => write_body(l, v, body, runner, |x| widen::f16_to_f64(x).to_bits()),
            Data::BF16(v) => write_body(l, v, body, runner, |x| widen::bf16_to_f64(x).to_bits()),
            _ => unreachable!("layout() accepts floating-point values only"),
        }
    }

    /// [`ContinuousPlan::write`] with AVX2 instructions: the same bytes, with
    /// four values widened, byte-swapped and interleaved with their keys per
    /// instruction (1.4-3x faster from 76 KB up: BENCHMARKS.md).
    ///
    /// # Safety
    ///
    /// Like every `#[target_feature]` function it may only run on a CPU that
    /// has the feature, so calling it from code not itself compiled for AVX2
    /// is `unsafe`: check `is_x86_feature_detected!("avx2")` first (the
    /// TensorFlow op does, once per process). Nothing else is required; the
    /// function itself contains no unsafe code.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    pub fn write_avx2(&self, out: &mut [u8], runner: &dyn Runner) -> Result<()> {
        let l = &self.layout;
        let body = frame(l, out)?;
        match self.values {
            Data::F32(v) => with_header(l, body, runner, &|header, keys, first, records| {
                avx2::records_f32(header, keys, v, first, records, l.record_len)
            }),
            Data::F64(v) => with_header(l, body, runner, &|header, keys, first, records| {
                avx2::records_f64(header, keys, v, first, records, l.record_len)
            }),
            // Half precision is rare in serving: the portable loop, compiled
            // here for AVX2.
            Data::F16(v) => write_body(l, v, body, runner, |x| widen::f16_to_f64(x).to_bits()),
            Data::BF16(v) => write_body(l, v, body, runner, |x| widen::bf16_to_f64(x).to_bits()),
            _ => unreachable!("layout() accepts floating-point values only"),
        }
    }
}

/// Checks the buffer's size, writes the response framing and returns the
/// part that holds the records.
fn frame<'o>(l: &Layout<'_>, out: &'o mut [u8]) -> Result<&'o mut [u8]> {
    if out.len() != l.total {
        return Err(Error::internal(format!(
            "output buffer is {} bytes, the response needs {}",
            out.len(),
            l.total
        )));
    }
    let (head, rest) = out.split_at_mut(wire::RESPONSE_OVERHEAD - wire::STOP);
    Sink::new(head).response_begin(l.batch);
    let (body, stop) = rest.split_at_mut(l.batch * l.record_len);
    stop[0] = ttype::STOP;
    Ok(body)
}

/// A writer of records `first..` into a run of whole records, given the
/// record header and the keys.
type RecordsFn<'f> = dyn Fn(&RecordHeader, &[i64], usize, &mut [u8]) + Sync + 'f;

/// The bytes before a record's map entries: the same for every record.
type RecordHeader = [u8; wire::FIELD_HEADER + wire::MAP_HEADER];

/// Builds what every record shares, then runs `records` on shards of `body`.
fn with_header(
    l: &Layout<'_>,
    body: &mut [u8],
    runner: &dyn Runner,
    records: &RecordsFn<'_>,
) -> Result<()> {
    let mut header = [0u8; wire::FIELD_HEADER + wire::MAP_HEADER];
    let mut h = Sink::new(&mut header);
    h.field(ttype::MAP, field::RECORD_CONTINUOUS_FEATURES);
    h.map_header(ttype::I64, ttype::DOUBLE, l.keys.len());
    sharded(body, l.record_len, runner, &|first, shard| {
        records(&header, l.keys, first, shard)
    })
}

/// The exact number of bytes [`write_continuous`] writes for these inputs.
pub fn continuous_size(keys: &Tensor<'_>, values: &Tensor<'_>) -> Result<usize> {
    layout(keys, values).map(|l| l.total)
}

/// Writes the response into `out`, which must be exactly [`continuous_size`] bytes.
pub fn write_continuous(keys: &Tensor<'_>, values: &Tensor<'_>, out: &mut [u8]) -> Result<()> {
    write_continuous_with(keys, values, out, &Serial)
}

/// [`write_continuous`], with large outputs written in shards on `runner`.
pub fn write_continuous_with(
    keys: &Tensor<'_>,
    values: &Tensor<'_>,
    out: &mut [u8],
    runner: &dyn Runner,
) -> Result<()> {
    plan_continuous(keys, values)?.write(out, runner)
}

/// Encodes into a new buffer: for Rust callers and tests.
pub fn encode_continuous(keys: &Tensor<'_>, values: &Tensor<'_>) -> Result<Vec<u8>> {
    let mut out = wire::output_buffer(continuous_size(keys, values)?)?;
    write_continuous(keys, values, &mut out)?;
    Ok(out)
}

#[inline(always)]
fn write_body<T: Copy + Sync>(
    l: &Layout<'_>,
    values: &[T],
    body: &mut [u8],
    runner: &dyn Runner,
    widen: impl Fn(T) -> u64 + Sync,
) -> Result<()> {
    with_header(l, body, runner, &|header, keys, first, records| {
        write_records(header, keys, values, first, records, l.record_len, &widen)
    })
}

/// Records `first..` of the response into `records`: the portable writer.
/// Always inlined, so that a caller compiled for AVX2 gets an AVX2 copy.
#[inline(always)]
fn write_records<T: Copy>(
    header: &[u8],
    keys: &[i64],
    values: &[T],
    first: usize,
    records: &mut [u8],
    record_len: usize,
    widen: &impl Fn(T) -> u64,
) {
    let k = keys.len();
    for (i, record) in records.chunks_exact_mut(record_len).enumerate() {
        let row = &values[(first + i) * k..(first + i + 1) * k];
        let (head, rest) = record.split_at_mut(header.len());
        head.copy_from_slice(header);
        let (entries, stop) = rest.split_at_mut(k * ENTRY);
        for ((entry, key), &v) in entries.chunks_exact_mut(ENTRY).zip(keys).zip(row) {
            // Key and value as one 16-byte store rather than two 8-byte
            // ones: entries sit at odd offsets, and half the stores split
            // fewer cache lines (about 10% faster on a 2.2 MB response).
            let key = u128::from(u64::from_le_bytes(key.to_be_bytes()));
            let value = u128::from(u64::from_le_bytes(widen(v).to_be_bytes()));
            entry.copy_from_slice(&(key | (value << 64)).to_le_bytes());
        }
        stop[0] = ttype::STOP;
    }
}

/// The AVX2 writer: eight map entries per step, in 256-bit registers.
///
/// No `unsafe` here: since Rust 1.87 the arithmetic intrinsics are safe to
/// call inside a function compiled for their feature, and loads and stores
/// go through arrays, which the compiler turns into plain vector moves
/// (checked in the generated code: `vmovups` loads, `vmovdqu` stores).
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{RecordHeader, ENTRY};
    use crate::avx2::bytes;
    use crate::wire::ttype;
    use std::arch::x86_64::*;

    /// [`crate::widen::f32_bits_to_f64_bits`] on four lanes: the same three
    /// candidates (rebiased, special, subnormal through an exact multiply),
    /// chosen by the exponent. Exact for every value, under any MXCSR mode.
    #[target_feature(enable = "avx2")]
    fn widen4_f32_exact(x: [f32; 4]) -> __m256i {
        let bits = x.map(|v| v.to_bits() as i32);
        let narrow = _mm_set_epi32(bits[3], bits[2], bits[1], bits[0]);
        let wide = _mm256_cvtepu32_epi64(narrow);
        let abs = _mm256_and_si256(wide, _mm256_set1_epi64x(0x7fff_ffff));
        let exp = _mm256_and_si256(wide, _mm256_set1_epi64x(0x7f80_0000));
        let shifted = _mm256_slli_epi64::<29>(abs);
        let normal = _mm256_add_epi64(shifted, _mm256_set1_epi64x((1023 - 127) << 52));
        let special = _mm256_or_si256(shifted, _mm256_set1_epi64x(0x7ff << 52));
        let man = _mm_and_si128(narrow, _mm_set1_epi32(0x7fff_ffff));
        // 2^-149: see f32_bits_to_f64_bits for why this is exact under DAZ/FTZ.
        let ulp = _mm256_set1_pd(1.401_298_464_324_817e-45);
        let subnormal = _mm256_castpd_si256(_mm256_mul_pd(_mm256_cvtepi32_pd(man), ulp));
        let is_special = _mm256_cmpeq_epi64(exp, _mm256_set1_epi64x(0x7f80_0000));
        let is_subnormal = _mm256_cmpeq_epi64(exp, _mm256_setzero_si256());
        let body = _mm256_blendv_epi8(normal, special, is_special);
        let body = _mm256_blendv_epi8(body, subnormal, is_subnormal);
        let sign = _mm256_slli_epi64::<32>(_mm256_and_si256(wide, _mm256_set1_epi64x(0x8000_0000)));
        _mm256_or_si256(body, sign)
    }

    /// Four f32 as f64 bit patterns: the hardware conversion when all four
    /// are normal numbers (see [`widen8_f32`]), else [`widen4_f32_exact`].
    #[target_feature(enable = "avx2")]
    fn widen4_f32(x: [f32; 4]) -> __m256i {
        let v = _mm_set_ps(x[3], x[2], x[1], x[0]);
        let exp = _mm_and_si128(_mm_castps_si128(v), _mm_set1_epi32(0x7f80_0000));
        let odd = _mm_or_si128(
            _mm_cmpeq_epi32(exp, _mm_setzero_si128()),
            _mm_cmpeq_epi32(exp, _mm_set1_epi32(0x7f80_0000)),
        );
        if _mm_testz_si128(odd, odd) == 1 {
            _mm256_castpd_si256(_mm256_cvtps_pd(v))
        } else {
            widen4_f32_exact(x)
        }
    }

    /// Eight f32 as two registers of four f64 bit patterns. When all eight are
    /// normal numbers (every prediction, nearly always) the hardware
    /// conversion is exact and neither DAZ nor FTZ can touch it; a zero,
    /// subnormal, infinity or NaN anywhere in the eight takes the exact
    /// integer path.
    #[target_feature(enable = "avx2")]
    fn widen8_f32(x: [f32; 8]) -> (__m256i, __m256i) {
        let v = _mm256_set_ps(x[7], x[6], x[5], x[4], x[3], x[2], x[1], x[0]);
        let exp = _mm256_and_si256(_mm256_castps_si256(v), _mm256_set1_epi32(0x7f80_0000));
        let odd = _mm256_or_si256(
            _mm256_cmpeq_epi32(exp, _mm256_setzero_si256()),
            _mm256_cmpeq_epi32(exp, _mm256_set1_epi32(0x7f80_0000)),
        );
        if _mm256_testz_si256(odd, odd) == 1 {
            let lo = _mm256_cvtps_pd(_mm256_castps256_ps128(v));
            let hi = _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(v));
            (_mm256_castpd_si256(lo), _mm256_castpd_si256(hi))
        } else {
            let (lo, hi) = x.split_at(4);
            (
                widen4_f32_exact(lo.try_into().expect("4 of 8")),
                widen4_f32_exact(hi.try_into().expect("4 of 8")),
            )
        }
    }

    /// Four f64 values' bits, in a register.
    #[target_feature(enable = "avx2")]
    fn widen4_f64(x: [f64; 4]) -> __m256i {
        let b = x.map(|v| v.to_bits() as i64);
        _mm256_set_epi64x(b[3], b[2], b[1], b[0])
    }

    #[target_feature(enable = "avx2")]
    fn widen8_f64(x: [f64; 8]) -> (__m256i, __m256i) {
        let (lo, hi) = x.split_at(4);
        (
            widen4_f64(lo.try_into().expect("4 of 8")),
            widen4_f64(hi.try_into().expect("4 of 8")),
        )
    }

    /// Four consecutive keys as the two halves of their four entries:
    /// Key vectors the general loop builds once per call: 64 keys, in 1 KiB
    /// of stack.
    const GENERAL_QUADS: usize = 16;

    /// `[k0, -, k1, -]` and `[k2, -, k3, -]`, the value lanes left for
    /// [`entries4`] to blend in.
    #[derive(Clone, Copy)]
    struct KeyQuad(__m256i, __m256i);

    #[target_feature(enable = "avx2")]
    fn key_quad(k: &[i64]) -> KeyQuad {
        // Each key as the i64 whose in-memory bytes are its big-endian bytes.
        let k = |i: usize| i64::from_ne_bytes(k[i].to_be_bytes());
        KeyQuad(
            _mm256_set_epi64x(0, k(1), 0, k(0)),
            _mm256_set_epi64x(0, k(3), 0, k(2)),
        )
    }

    /// Four map entries (64 bytes) from four keys and four f64 bit patterns.
    #[target_feature(enable = "avx2")]
    fn entries4(out: &mut [u8], keys: KeyQuad, bits: __m256i) {
        // Reverses the bytes of each 64-bit lane: the wire is big-endian.
        let swap = _mm256_setr_epi8(
            7, 6, 5, 4, 3, 2, 1, 0, 15, 14, 13, 12, 11, 10, 9, 8, //
            7, 6, 5, 4, 3, 2, 1, 0, 15, 14, 13, 12, 11, 10, 9, 8,
        );
        let be = _mm256_shuffle_epi8(bits, swap);
        // [v0 v0 v1 v1] and [v2 v2 v3 v3], each value blended into the lane
        // after its key.
        let first = _mm256_blend_epi32::<0b1100_1100>(keys.0, _mm256_permute4x64_epi64::<0x50>(be));
        let second =
            _mm256_blend_epi32::<0b1100_1100>(keys.1, _mm256_permute4x64_epi64::<0xfa>(be));
        let (a, b) = out.split_at_mut(2 * ENTRY);
        a.copy_from_slice(&bytes(first));
        b.copy_from_slice(&bytes(second));
    }

    /// One map entry (16 bytes) from its key and the first lane of `bits`.
    #[target_feature(enable = "avx2")]
    fn entry1(out: &mut [u8], key: i64, bits: __m256i) {
        out[..8].copy_from_slice(&key.to_be_bytes());
        out[8..].copy_from_slice(&(_mm256_extract_epi64::<0>(bits) as u64).to_be_bytes());
    }

    /// Records `first..` into `records`, as the portable `write_records` does:
    /// one function per value type, the widening inlined into the loop
    /// (`#[target_feature]` functions cannot be passed as closures).
    ///
    /// `$name` picks a loop compiled for the number of keys when it is one of
    /// the common small ones, so that the record's layout is constant and the
    /// per-record work is a few stores; other counts take the general loop.
    macro_rules! records {
        ($name:ident, $fixed:ident, $general:ident, $t:ty, $widen4:ident, $widen8:ident) => {
            #[target_feature(enable = "avx2")]
            pub(super) fn $name(
                header: &RecordHeader,
                keys: &[i64],
                values: &[$t],
                first: usize,
                records: &mut [u8],
                record_len: usize,
            ) {
                match keys.len() {
                    1 => $fixed::<1>((header, keys, values, first, records)),
                    2 => $fixed::<2>((header, keys, values, first, records)),
                    4 => $fixed::<4>((header, keys, values, first, records)),
                    8 => $fixed::<8>((header, keys, values, first, records)),
                    16 => $fixed::<16>((header, keys, values, first, records)),
                    _ => $general(header, keys, values, first, records, record_len),
                }
            }

            /// K keys, known at compile time.
            #[target_feature(enable = "avx2")]
            fn $fixed<const K: usize>(
                (header, keys, values, first, records): (
                    &RecordHeader,
                    &[i64],
                    &[$t],
                    usize,
                    &mut [u8],
                ),
            ) {
                let record_len = header.len() + K * ENTRY + 1;
                // K <= 16: at most four quads, on the stack (the writer
                // allocates nothing).
                let zero = _mm256_setzero_si256();
                let mut quads = [KeyQuad(zero, zero); 4];
                for (q, k) in quads.iter_mut().zip(keys.chunks_exact(4)) {
                    *q = key_quad(k);
                }
                let keys: &[i64; K] = keys.try_into().expect("K keys");
                let rows = values[first * K..].chunks_exact(K);
                for (record, row) in records.chunks_exact_mut(record_len).zip(rows) {
                    let row: &[$t; K] = row.try_into().expect("rows of K");
                    record[..header.len()].copy_from_slice(header);
                    let entries = &mut record[header.len()..header.len() + K * ENTRY];
                    for q in 0..K / 4 {
                        let x: [$t; 4] = row[4 * q..4 * q + 4].try_into().expect("4 values");
                        entries4(&mut entries[64 * q..64 * q + 64], quads[q], $widen4(x));
                    }
                    for j in K / 4 * 4..K {
                        entry1(
                            &mut entries[j * ENTRY..(j + 1) * ENTRY],
                            keys[j],
                            $widen4([row[j]; 4]),
                        );
                    }
                    record[record_len - 1] = ttype::STOP;
                }
            }

            /// Any number of keys.
            #[target_feature(enable = "avx2")]
            fn $general(
                header: &RecordHeader,
                keys: &[i64],
                values: &[$t],
                first: usize,
                records: &mut [u8],
                record_len: usize,
            ) {
                let k = keys.len();
                let tail_keys = keys.chunks_exact(4).remainder();
                // The key vectors of up to GENERAL_QUADS * 4 keys, built once
                // per call on the stack (the writer allocates nothing); more
                // keys than that are built per record, a few register moves.
                let zero = _mm256_setzero_si256();
                let mut quads = [KeyQuad(zero, zero); GENERAL_QUADS];
                let built = k / 4 <= GENERAL_QUADS;
                if built {
                    for (q, c) in quads.iter_mut().zip(keys.chunks_exact(4)) {
                        *q = key_quad(c);
                    }
                }
                let quad = |index: usize| {
                    if built {
                        quads[index]
                    } else {
                        key_quad(&keys[4 * index..4 * index + 4])
                    }
                };
                // Rows by index: with no keys every record is still written.
                for (i, record) in records.chunks_exact_mut(record_len).enumerate() {
                    let row = &values[(first + i) * k..(first + i + 1) * k];
                    let (head, rest) = record.split_at_mut(header.len());
                    head.copy_from_slice(header);
                    let (entries, stop) = rest.split_at_mut(k * ENTRY);
                    let mut out8 = entries.chunks_exact_mut(8 * ENTRY);
                    let mut row8 = row.chunks_exact(8);
                    let mut eights = 0;
                    for (out, x) in (&mut out8).zip(&mut row8) {
                        let (lo, hi) = $widen8(x.try_into().expect("chunks of 8"));
                        let (a, b) = out.split_at_mut(4 * ENTRY);
                        entries4(a, quad(2 * eights), lo);
                        entries4(b, quad(2 * eights + 1), hi);
                        eights += 1;
                    }
                    let out4 = out8.into_remainder();
                    let row4 = row8.remainder();
                    let (out4, tail) = out4.split_at_mut(out4.len() / (4 * ENTRY) * 4 * ENTRY);
                    if let Some(x) = row4.get(..4) {
                        entries4(
                            out4,
                            quad(2 * eights),
                            $widen4(x.try_into().expect("4 values")),
                        );
                    }
                    let row_tail = &row4[row4.len() / 4 * 4..];
                    for ((entry, &key), &x) in
                        tail.chunks_exact_mut(ENTRY).zip(tail_keys).zip(row_tail)
                    {
                        // The last K % 4 entries: one lane of the same widening.
                        entry1(entry, key, $widen4([x; 4]));
                    }
                    stop[0] = ttype::STOP;
                }
            }
        };
    }
    records!(
        records_f32,
        fixed_f32,
        general_f32,
        f32,
        widen4_f32,
        widen8_f32
    );
    records!(
        records_f64,
        fixed_f64,
        general_f64,
        f64,
        widen4_f64,
        widen8_f64
    );
}
