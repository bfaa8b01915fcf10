//! What the tensor writer's record loop costs against the stores it makes
//! (BENCHMARKS.md, "What is left"): the graph-mode case tensor 4 x f32
//! [1024, 16] has records of 438 bytes, each written as 5 framing gaps (two
//! 32-byte stores each) and 4 rows of 64 bytes (two 32-byte stores each),
//! at offsets that move by 438 bytes from record to record, so about half of
//! the stores cross a cache line. Single thread, one 449 KB buffer (L2-resident).
//!
//! Also a prototype of the way past the split stores: every aligned 32-byte
//! output block built in a register from the record template and unaligned
//! loads of the rows (`aligned_program`, `aligned_blocks`), its bytes checked
//! equal to the run-time-layout writer's before it is timed.
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
    // SAFETY: the caller's.
    unsafe { runtime_layout_range(out, cols, gaps, contents, 0, B) }
}

/// `runtime_layout` for records `from..to` only.
#[target_feature(enable = "avx2")]
unsafe fn runtime_layout_range(
    out: *mut u8,
    cols: &[&[f32]],
    gaps: &[([u8; 64], usize)],
    contents: &[usize],
    from: usize,
    to: usize,
) {
    unsafe {
        for i in from..to {
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

/// 32 zero bytes, 32 0xff bytes, 32 zero bytes: blend masks by offset.
static WINDOW: [u8; 96] = {
    let mut w = [0u8; 96];
    let mut i = 32;
    while i < 64 {
        w[i] = 0xff;
        i += 1;
    }
    w
};

/// One aligned 32-byte block of the phase program (`aligned_program`): where
/// its bytes come from, for records whose layout repeats every `cycle`
/// records.
#[derive(Clone, Copy)]
struct Block {
    /// Offset of the block's first byte in the doubled template.
    q: usize,
    /// Row pieces: (column, record within the cycle, row byte at lane 0,
    /// which may be before the row: the lanes outside the mask are blended away).
    pieces: [(usize, usize, isize); 2],
    /// Each piece's mask as an offset into WINDOW: a piece always touches
    /// one edge of the block (rows are 32 bytes or more), so its lanes are
    /// `a..32` or `0..b`, one unaligned load of the window.
    masks: [usize; 2],
    n: usize,
    /// One piece covering all 32 lanes: no template, no blend.
    pure: bool,
}

/// The blocks of one cycle (32 / gcd(record, 32) records) for an output
/// whose first aligned byte is `o0` bytes into the records.
fn aligned_program(
    o0: usize,
    len: usize,
    offsets: &[usize],
    contents: &[usize],
) -> (Vec<Block>, usize) {
    fn gcd(a: usize, b: usize) -> usize {
        if b == 0 {
            a
        } else {
            gcd(b, a % b)
        }
    }
    let cycle = 32 / gcd(len, 32);
    let blocks = cycle * len / 32;
    let mut program = Vec::with_capacity(blocks);
    for m in 0..blocks {
        let s = o0 + 32 * m;
        let r = s / len;
        let mut b = Block {
            q: s % len,
            pieces: [(0, 0, 0); 2],
            masks: [0; 2],
            n: 0,
            pure: false,
        };
        for rec in [r, r + 1] {
            for (j, (&off, &c)) in offsets.iter().zip(contents).enumerate() {
                let start = rec * len + off;
                let (lo, hi) = (start.max(s), (start + c).min(s + 32));
                if lo < hi {
                    assert!(b.n < 2, "three pieces in one block");
                    // Column, record in the cycle, and the row byte at lane 0
                    // as an offset from the cycle's first row of the column.
                    b.pieces[b.n] = (j, rec, (rec * c) as isize + s as isize - start as isize);
                    let (a, e) = (lo - s, hi - s);
                    // WINDOW is 32 zeros, 32 ones, 32 zeros: from 32 - a the
                    // lanes a.. are set; from 64 - e the lanes ..e.
                    b.masks[b.n] = if e == 32 {
                        32 - a
                    } else {
                        assert_eq!(a, 0);
                        64 - e
                    };
                    b.pure = lo == s && hi == s + 32;
                    b.n += 1;
                }
            }
        }
        program.push(b);
    }
    (program, cycle)
}

/// The records of cycles `from..to` in aligned 32-byte stores: each block
/// built in a register from the template and unaligned loads of the rows.
// A measurement, not an API: the layout goes in as it is.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2")]
unsafe fn aligned_blocks(
    aligned: *mut u8,
    program: &[Block],
    cycle: usize,
    template2: &[u8],
    cols: &[&[f32]],
    contents: &[usize],
    from: usize,
    to: usize,
) {
    unsafe {
        let t = template2.as_ptr();
        let mut bases = [std::ptr::null::<u8>(); 8];
        for c in from..to {
            for (j, col) in cols.iter().enumerate() {
                bases[j] = col.as_ptr().cast::<u8>().add(c * cycle * contents[j]);
            }
            let mut dst = aligned.add(32 * program.len() * c);
            for b in program {
                // A block of row bytes only is one load; any other is the
                // template and one or two pieces blended in by window masks.
                let w = WINDOW.as_ptr();
                let (j0, _, off0) = b.pieces[0];
                let x0 = _mm256_loadu_si256(bases[j0].offset(off0).cast());
                let v = if b.pure {
                    x0
                } else {
                    let v = _mm256_loadu_si256(t.add(b.q).cast());
                    let mut v =
                        _mm256_blendv_epi8(v, x0, _mm256_loadu_si256(w.add(b.masks[0]).cast()));
                    if b.n == 2 {
                        let (j1, _, off1) = b.pieces[1];
                        let x1 = _mm256_loadu_si256(bases[j1].offset(off1).cast());
                        v = _mm256_blendv_epi8(v, x1, _mm256_loadu_si256(w.add(b.masks[1]).cast()));
                    }
                    v
                };
                _mm256_store_si256(dst.cast(), v);
                dst = dst.add(32);
            }
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
    // The aligned writer against the run-time-layout writer, on a real
    // template (distinct framing bytes): the same bytes, then the time.
    let offsets: Vec<usize> = {
        let mut at = 0;
        (0..COLS)
            .map(|j| {
                at += GAPS[j];
                let o = at;
                at += CONTENT;
                o
            })
            .collect()
    };
    let mut template = vec![0u8; RECORD];
    let mut at = 0;
    let mut real_gaps = Vec::new();
    for (j, &g) in GAPS.iter().enumerate() {
        let mut bytes = [0u8; 64];
        for k in 0..g {
            template[at + k] = (0xa0 + j * 7 + k) as u8;
            bytes[k] = template[at + k];
        }
        real_gaps.push((bytes, g));
        at += g + if j < COLS { CONTENT } else { 0 };
    }
    let mut template2 = template.clone();
    template2.extend_from_slice(&template);
    template2.extend_from_slice(&[0u8; 32]);
    // The records start 9 bytes into the buffer (as after the response header).
    let body = 9usize;
    let mut reference = vec![0u8; len];
    // SAFETY: as below.
    unsafe {
        runtime_layout(
            reference[body..].as_mut_ptr(),
            &slices,
            &real_gaps,
            &contents,
        )
    };
    let mut ours = vec![0u8; len];
    let start = ours.as_ptr();
    let first_aligned = (start as usize + body).next_multiple_of(32) - start as usize;
    let o0 = first_aligned - body;
    let (program, cycle) = aligned_program(o0, RECORD, &offsets, &contents);
    let cycles = (B - 2) / cycle;
    let aligned_write = |out: &mut [u8]| {
        let p = out[body..].as_mut_ptr();
        // SAFETY: AVX2 (asserted). The head and tail records go through the
        // run-time-layout writer (its stores run up to 63 bytes past a
        // record, into the next, written after it, or the slack); cycles
        // 1..cycles read rows 1..B-1 at most one row before or after a
        // piece, inside the columns.
        unsafe {
            runtime_layout_range(p, &slices, &real_gaps, &contents, 0, cycle + 1);
            aligned_blocks(
                out.as_mut_ptr().add(first_aligned),
                &program,
                cycle,
                &template2,
                &slices,
                &contents,
                1,
                cycles,
            );
            runtime_layout_range(p, &slices, &real_gaps, &contents, cycles * cycle, B);
        }
    };
    aligned_write(&mut ours);
    assert!(
        ours[..body + B * RECORD] == reference[..body + B * RECORD],
        "aligned writer: first difference at {:?}",
        ours.iter().zip(&reference).position(|(a, b)| a != b)
    );
    let pure = program.iter().filter(|b| b.pure).count();
    let rows = {
        let mut rows = rows.to_vec();
        rows.push((
            "aligned blocks built in registers",
            median_us(&mut || aligned_write(black_box(&mut ours))),
        ));
        rows.push((
            "writer's stores, run-time layout (again)",
            median_us(&mut || unsafe {
                runtime_layout(black_box(p), &slices, &runtime_gaps, &contents)
            }),
        ));
        rows
    };
    println!(
        "(aligned program: {} blocks per cycle of {cycle} records, {pure} of them pure row bytes)",
        program.len()
    );
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
