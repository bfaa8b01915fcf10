//! The tensor writer's record loop through raw pointers, the one piece of
//! encoder logic outside `bpr_protocol`. It lives behind the C ABI because it
//! needs `unsafe` (the protocol crate forbids it): the same stores through
//! slices cost about twice as much (bounds checks and slice arithmetic around
//! every 32-byte move; BENCHMARKS.md, "What is left"). Every bound the
//! pointers rely on is checked once per shard, before the loop.

use bpr_protocol::Data;

/// The start of a copied column's values as bytes, and their byte count.
#[cfg(target_arch = "x86_64")]
fn value_bytes(data: &Data<'_>) -> (*const u8, usize) {
    fn raw<T>(v: &[T]) -> (*const u8, usize) {
        (v.as_ptr().cast(), std::mem::size_of_val(v))
    }
    match data {
        Data::F32(v) => raw(v),
        Data::F64(v) => raw(v),
        Data::I32(v) => raw(v),
        Data::I64(v) => raw(v),
        Data::U8(v) | Data::Bool(v) => raw(v),
        Data::I8(v) => raw(v),
        // FixedRecords never holds f16, bf16 (widened) or strings
        // (variable-size); no bytes fails raw_records' bound check.
        _ => (std::ptr::null(), 0),
    }
}

/// Columns whose value pointers `raw_records` keeps on the stack (a
/// response with more puts them on the heap).
#[cfg(target_arch = "x86_64")]
const RAW_COLUMNS: usize = 32;

/// The tensor writer's record loop (`TensorPlan::write_fixed_with`): records
/// `first..first + count` into the start of `shard`, each front to back,
/// gap, row, gap, row, ..., gap, in unaligned 32-byte moves through raw
/// pointers. It writes the bytes of bpr_protocol's safe AVX2 loop, which
/// the same stores through slices make about twice as slow (bounds checks
/// and slice arithmetic around every move: BENCHMARKS.md, "What is left").
/// Every bound that makes the pointers valid is checked once per call,
/// before the loop (a failed check is an internal error, never a stray store).
///
/// # Safety
/// The CPU has AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
pub(super) unsafe fn raw_records(
    r: &bpr_protocol::FixedRecords<'_, '_>,
    first: usize,
    shard: &mut [u8],
    count: usize,
) {
    use std::arch::x86_64::*;
    let columns = r.contents.len();
    // The bounds the stores below rely on: `count` records plus the next,
    // which the stores of the last gap may reach (up to 63 bytes: every
    // record is over 64 bytes), fit the shard; every row is a whole 32-byte
    // move or more and lies inside its column's values.
    assert!(
        r.gaps.len() == columns + 1 && r.data.len() == columns,
        "fixed records: {} gaps and {} values for {columns} columns",
        r.gaps.len(),
        r.data.len()
    );
    assert!(
        r.len > 64 && count.checked_add(1).and_then(|n| n.checked_mul(r.len)) <= Some(shard.len()),
        "fixed records: {count} + 1 records of {} bytes in a shard of {}",
        r.len,
        shard.len()
    );
    assert_eq!(
        r.gaps.iter().map(|g| g.len).sum::<usize>() + r.contents.iter().sum::<usize>(),
        r.len,
        "fixed records: gaps and contents do not add up to a record"
    );
    let mut stack = [std::ptr::null::<u8>(); RAW_COLUMNS];
    let mut heap = Vec::new();
    let sources = if columns <= RAW_COLUMNS {
        &mut stack[..columns]
    } else {
        heap.resize(columns, std::ptr::null());
        &mut heap[..]
    };
    for ((source, data), &content) in sources.iter_mut().zip(r.data).zip(r.contents) {
        let (start, bytes) = value_bytes(data);
        assert!(
            content >= 32
                && first
                    .checked_add(count)
                    .and_then(|n| n.checked_mul(content))
                    .is_some_and(|end| end <= bytes),
            "fixed records: rows {first}..{} of {content} bytes in {bytes} bytes of values",
            first + count
        );
        // In bounds: row `first` starts at or before the end, checked above.
        *source = start.wrapping_add(first * content);
    }
    let sources = &*sources;
    let (gaps, last_gap) = r.gaps.split_at(columns);
    let out = shard.as_mut_ptr();
    // SAFETY: AVX2 is the caller's. Every store lies inside the shard and
    // every load inside a gap or a row of the values, by the checks above:
    // record i spans i * len .. (i + 1) * len, and its stores run at most 63
    // bytes past it, into record i + 1 <= count, inside the shard; row i of
    // column j spans contents[j] bytes from sources[j] + i * contents[j],
    // inside the values.
    unsafe {
        // A gap in one 32-byte store, or two when it is longer; evaluates to
        // where the next piece starts. (A macro, not a closure: the stores
        // must be compiled in this AVX2 function.)
        macro_rules! gap {
            ($at:expr, $g:expr) => {{
                let (at, g): (*mut u8, &bpr_protocol::Gap) = ($at, $g);
                let b = g.bytes.as_ptr();
                _mm256_storeu_si256(at.cast(), _mm256_loadu_si256(b.cast()));
                if g.len > 32 {
                    _mm256_storeu_si256(at.add(32).cast(), _mm256_loadu_si256(b.add(32).cast()));
                }
                at.add(g.len)
            }};
        }
        for i in 0..count {
            let mut at = out.add(i * r.len);
            for ((g, &source), &content) in gaps.iter().zip(sources).zip(r.contents) {
                at = gap!(at, g);
                let row = source.add(i * content);
                // Whole 32-byte moves, the last one overlapping the one
                // before when the row is not a multiple of 32 bytes.
                let mut k = 0;
                while k + 32 <= content {
                    _mm256_storeu_si256(at.add(k).cast(), _mm256_loadu_si256(row.add(k).cast()));
                    k += 32;
                }
                if k < content {
                    let k = content - 32;
                    _mm256_storeu_si256(at.add(k).cast(), _mm256_loadu_si256(row.add(k).cast()));
                }
                at = at.add(content);
            }
            let _end = gap!(at, &last_gap[0]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::writers::write_tensor;
    use super::*;
    use bpr_protocol::{Serial, Tensor};

    use bpr_protocol::ScopedThreads as Threads;

    /// xorshift64*: reproducible bits (every float bit pattern, NaN
    /// payloads included: the rows are copied, never converted).
    fn bits(seed: &mut u64) -> u64 {
        *seed ^= *seed >> 12;
        *seed ^= *seed << 25;
        *seed ^= *seed >> 27;
        seed.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    enum Owned {
        F32(Vec<f32>),
        F64(Vec<f64>),
        I32(Vec<i32>),
        I64(Vec<i64>),
        U8(Vec<u8>),
        I8(Vec<i8>),
        Bool(Vec<u8>),
    }

    impl Owned {
        fn new(dtype: u64, n: usize, seed: &mut u64) -> Owned {
            let mut b = || bits(seed);
            match dtype % 7 {
                0 => Owned::F32((0..n).map(|_| f32::from_bits(b() as u32)).collect()),
                1 => Owned::F64((0..n).map(|_| f64::from_bits(b())).collect()),
                2 => Owned::I32((0..n).map(|_| b() as i32).collect()),
                3 => Owned::I64((0..n).map(|_| b() as i64).collect()),
                4 => Owned::U8((0..n).map(|_| b() as u8).collect()),
                5 => Owned::I8((0..n).map(|_| b() as i8).collect()),
                _ => Owned::Bool((0..n).map(|_| (b() & 1) as u8).collect()),
            }
        }
        fn data(&self) -> Data<'_> {
            match self {
                Owned::F32(v) => Data::F32(v),
                Owned::F64(v) => Data::F64(v),
                Owned::I32(v) => Data::I32(v),
                Owned::I64(v) => Data::I64(v),
                Owned::U8(v) => Data::U8(v),
                Owned::I8(v) => Data::I8(v),
                Owned::Bool(v) => Data::Bool(v),
            }
        }
    }

    /// The op's tensor writer and its raw-pointer record loop against the
    /// portable writer, which the golden, property and Thrift-decode tests
    /// check: every copied dtype, rows at, around and well past the 32-byte
    /// moves, 1 to 40 columns (past the 32 kept on the stack), batches of 0
    /// to 64 on one thread and a large one split into shards. Half the
    /// cases have only rows of 32 bytes or more, where the loop must run;
    /// the others mostly have shorter rows too, and take the template path.
    #[test]
    fn the_ops_tensor_writer_writes_the_portable_bytes() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let long: &[&[i64]] = &[&[32], &[33], &[2, 40], &[4, 4, 2], &[5, 7]];
        let any: &[&[i64]] = &[&[1], &[8], &[9], &[16], &[33], &[3, 5], &[2, 40]];
        let mut cases = 0;
        let mut looped = 0;
        for (batch, threads) in [
            (0usize, 1usize),
            (1, 1),
            (2, 1),
            (7, 1),
            (64, 1),
            (9_001, 4),
        ] {
            for columns in [1usize, 2, 3, 5, 33, 40] {
                for long_rows in [true, false] {
                    if batch > 64 && columns > 5 {
                        continue;
                    }
                    let shapes = if long_rows { long } else { any };
                    let mut owned = Vec::new();
                    let mut dims = Vec::new();
                    for _ in 0..columns {
                        let shape = shapes[(bits(&mut seed) % shapes.len() as u64) as usize];
                        let mut d = vec![batch as i64];
                        d.extend_from_slice(shape);
                        let n = d.iter().product::<i64>() as usize;
                        owned.push(Owned::new(bits(&mut seed), n, &mut seed));
                        dims.push(d);
                    }
                    let keys: Vec<i64> = (0..columns).map(|_| bits(&mut seed) as i64).collect();
                    let kd = [columns as i64];
                    let k = Tensor::new(&kd, Data::I64(&keys)).unwrap();
                    let v: Vec<Tensor<'_>> = owned
                        .iter()
                        .zip(&dims)
                        .map(|(o, d)| Tensor::new(d, o.data()).unwrap())
                        .collect();
                    let plan = bpr_protocol::plan_tensor_response(&k, &v).unwrap();
                    let runner = Threads(threads);
                    let mut portable = vec![0xa5; plan.size()];
                    plan.write(&mut portable, &Serial).unwrap();
                    let differs =
                        |ours: &[u8]| ours.iter().zip(&portable).position(|(a, b)| a != b);
                    let mut ours = vec![0x5a; plan.size()];
                    write_tensor(&plan, &mut ours, &runner).unwrap();
                    assert_eq!(differs(&ours), None, "op: B={batch} dims {dims:?}");
                    #[cfg(target_arch = "x86_64")]
                    if is_x86_feature_detected!("avx2") {
                        let calls = std::sync::atomic::AtomicUsize::new(0);
                        let mut ours = vec![0x5a; plan.size()];
                        plan.write_fixed_with(&mut ours, &runner, &|r, first, shard, count| {
                            calls.fetch_add(count, std::sync::atomic::Ordering::Relaxed);
                            // SAFETY: this CPU has AVX2 (checked above).
                            unsafe { raw_records(r, first, shard, count) }
                        })
                        .unwrap();
                        assert_eq!(differs(&ours), None, "loop: B={batch} dims {dims:?}");
                        let calls = calls.into_inner();
                        if long_rows && batch >= 2 {
                            // Every record but each shard's last.
                            assert!(
                                calls >= batch - threads,
                                "B={batch}: {calls} records looped"
                            );
                            looped += 1;
                        }
                    }
                    cases += 1;
                }
            }
        }
        assert_eq!(cases, 2 * (5 * 6 + 4));
        #[cfg(target_arch = "x86_64")]
        if is_x86_feature_detected!("avx2") {
            assert_eq!(looped, 3 * 6 + 4);
        }
    }
}
