//! What the tensor writer's record loop costs against the stores it makes
//! (BENCHMARKS.md, "What is left"): the graph-mode case tensor 4 x f32
//! [1024, 16] has records of 438 bytes, each written as 5 framing gaps (two
//! 32-byte stores each) and 4 rows of 64 bytes (two 32-byte stores each),
//! at offsets that move by 438 bytes from record to record, so about half of
//! the stores cross a cache line. Single thread, one 449 KB buffer (L2-resident).
//!
//! Run: `cargo run --release --manifest-path benchmarks/store_floor/Cargo.toml`
//! (x86-64 with AVX2). Raw pointers here only: this is a measurement, not the
//! encoder, which has no unsafe code.

use std::arch::x86_64::*;
use std::hint::black_box;
use std::time::Instant;

const B: usize = 1024;
const COLS: usize = 4;
const CONTENT: usize = 64;
/// The framing between the rows of the benchmark's record: map field and
/// header + key 0's head; suffix + head (x3); the last suffix and the STOP.
const GAPS: [usize; 5] = [34, 43, 43, 43, 19];
const RECORD: usize = 34 + 43 * 3 + 19 + COLS * CONTENT;

/// The writer's stores with compile-time lengths (what the stores cost when
/// nothing else does).
#[target_feature(enable = "avx2")]
unsafe fn constant_layout(out: *mut u8, cols: &[Vec<f32>], gaps: &[[u8; 64]; 5]) {
    unsafe {
        for i in 0..B {
            let mut at = i * RECORD;
            for j in 0..COLS {
                let p = out.add(at);
                let g = gaps[j].as_ptr();
                _mm256_storeu_si256(p.cast(), _mm256_loadu_si256(g.cast()));
                _mm256_storeu_si256(p.add(32).cast(), _mm256_loadu_si256(g.add(32).cast()));
                at += GAPS[j];
                let src = cols[j].as_ptr().add(i * 16).cast::<__m256i>();
                let p = out.add(at);
                _mm256_storeu_si256(p.cast(), _mm256_loadu_si256(src));
                _mm256_storeu_si256(p.add(32).cast(), _mm256_loadu_si256(src.add(1)));
                at += CONTENT;
            }
            let p = out.add(at);
            let g = gaps[4].as_ptr();
            _mm256_storeu_si256(p.cast(), _mm256_loadu_si256(g.cast()));
            _mm256_storeu_si256(p.add(32).cast(), _mm256_loadu_si256(g.add(32).cast()));
        }
    }
}

/// The same stores, lengths read at run time (as the writer must).
#[target_feature(enable = "avx2")]
unsafe fn runtime_layout(
    out: *mut u8,
    cols: &[&[f32]],
    gaps: &[([u8; 64], usize)],
    contents: &[usize],
) {
    unsafe {
        for i in 0..B {
            let base = out.add(i * RECORD);
            let mut at = 0;
            for j in 0..cols.len() {
                let (g, len) = &gaps[j];
                _mm256_storeu_si256(base.add(at).cast(), _mm256_loadu_si256(g.as_ptr().cast()));
                _mm256_storeu_si256(
                    base.add(at + 32).cast(),
                    _mm256_loadu_si256(g.as_ptr().add(32).cast()),
                );
                at += len;
                let c = contents[j];
                let src = cols[j].as_ptr().add(i * c / 4).cast::<u8>();
                let mut k = 0;
                while k + 32 <= c {
                    _mm256_storeu_si256(
                        base.add(at + k).cast(),
                        _mm256_loadu_si256(src.add(k).cast()),
                    );
                    k += 32;
                }
                at += c;
            }
            let (g, _) = &gaps[cols.len()];
            _mm256_storeu_si256(base.add(at).cast(), _mm256_loadu_si256(g.as_ptr().cast()));
            _mm256_storeu_si256(
                base.add(at + 32).cast(),
                _mm256_loadu_si256(g.as_ptr().add(32).cast()),
            );
        }
    }
}

/// The same, through slices as safe code must (what bpr_protocol's AVX2
/// writer does, without its per-column dtype dispatch).
#[target_feature(enable = "avx2")]
fn safe_slices(out: &mut [u8], cols: &[&[f32]], gaps: &[([u8; 64], usize)], contents: &[usize]) {
    for i in 0..B - 1 {
        let rec = &mut out[i * RECORD..(i + 1) * RECORD + 64];
        let mut at = 0;
        for j in 0..cols.len() {
            let (g, len) = &gaps[j];
            rec[at..at + 64].copy_from_slice(g);
            at += len;
            let c = contents[j];
            let row = &cols[j][i * c / 4..(i + 1) * c / 4];
            for (o, r) in rec[at..at + c]
                .chunks_exact_mut(32)
                .zip(row.chunks_exact(8))
            {
                let r: &[f32; 8] = r.try_into().expect("8");
                let v = _mm256_set_ps(r[7], r[6], r[5], r[4], r[3], r[2], r[1], r[0]);
                let mut a = [0u8; 32];
                for (o, k) in a.chunks_exact_mut(8).zip(0..) {
                    let w = match k {
                        0 => _mm256_extract_epi64::<0>(_mm256_castps_si256(v)),
                        1 => _mm256_extract_epi64::<1>(_mm256_castps_si256(v)),
                        2 => _mm256_extract_epi64::<2>(_mm256_castps_si256(v)),
                        _ => _mm256_extract_epi64::<3>(_mm256_castps_si256(v)),
                    };
                    o.copy_from_slice(&w.to_le_bytes());
                }
                o.copy_from_slice(&a);
            }
            at += c;
        }
        let (g, _) = &gaps[cols.len()];
        rec[at..at + 64].copy_from_slice(g);
    }
}

/// 13 unaligned 32-byte stores per record at the records' offsets (the
/// writer's byte count, no loads, no framing logic).
#[target_feature(enable = "avx2")]
unsafe fn unaligned_stores(out: *mut u8) {
    unsafe {
        let z = _mm256_set1_epi8(7);
        for i in 0..B {
            let mut at = i * RECORD + 9;
            for _ in 0..RECORD / 32 {
                _mm256_storeu_si256(out.add(at).cast(), z);
                at += 32;
            }
        }
    }
}

/// The same bytes in aligned 32-byte stores.
#[target_feature(enable = "avx2")]
unsafe fn aligned_stores(out: *mut u8, len: usize) {
    unsafe {
        let z = _mm256_set1_epi8(7);
        let start = out.align_offset(32);
        for k in 0..(len - start) / 32 {
            _mm256_store_si256(out.add(start + 32 * k).cast(), z);
        }
    }
}

fn median_us(f: &mut dyn FnMut()) -> f64 {
    for _ in 0..200 {
        f();
    }
    let mut v: Vec<f64> = (0..15)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..2000 {
                f();
            }
            t.elapsed().as_secs_f64() / 2000.0 * 1e6
        })
        .collect();
    v.sort_by(f64::total_cmp);
    v[7]
}

fn main() {
    assert!(is_x86_feature_detected!("avx2"), "needs AVX2");
    let mut out = vec![0u8; 9 + B * RECORD + 128];
    let len = out.len();
    let cols: Vec<Vec<f32>> = (0..COLS)
        .map(|j| (0..B * 16).map(|i| (i + j) as f32).collect())
        .collect();
    let slices: Vec<&[f32]> = cols.iter().map(|c| c.as_slice()).collect();
    let gaps = [[1u8; 64]; 5];
    let runtime_gaps: Vec<([u8; 64], usize)> =
        GAPS.iter().map(|&l| ([1u8; 64], black_box(l))).collect();
    let contents = vec![black_box(CONTENT); COLS];
    let p = out[9..].as_mut_ptr();
    // SAFETY (every call below): AVX2 is present (asserted); every store
    // stays inside `out`, which has 128 bytes of slack past the last record.
    let rows = [
        (
            "writer's stores, compile-time layout",
            median_us(&mut || unsafe { constant_layout(black_box(p), &cols, &gaps) }),
        ),
        (
            "writer's stores, run-time layout",
            median_us(&mut || unsafe {
                runtime_layout(black_box(p), &slices, &runtime_gaps, &contents)
            }),
        ),
        (
            "the same through slices (safe code)",
            median_us(&mut || unsafe {
                safe_slices(black_box(&mut out[9..]), &slices, &runtime_gaps, &contents)
            }),
        ),
        (
            "13 unaligned 32-byte stores per record",
            median_us(&mut || unsafe { unaligned_stores(black_box(p)) }),
        ),
        (
            "aligned 32-byte stores, same bytes",
            median_us(&mut || unsafe { aligned_stores(black_box(p), len - 9) }),
        ),
    ];
    let mut fill = vec![0u8; len];
    let memset = median_us(&mut || black_box(&mut fill[..]).fill(7));
    for (name, us) in rows {
        println!("{name:42} {us:7.2} us  {:5.2}x memset", us / memset);
    }
    println!(
        "{:42} {memset:7.2} us  ({} bytes, records of {RECORD})",
        "memset (slice::fill)", len
    );
}
