// The block-file reader and writer (bpr_protocol::block): files laid out by
// this test's own protobuf encoder (not the crate's writer) read back record
// for record at every chunking of the input; resume at every position; each
// kind of damage an error naming the file, the offset and what was expected;
// no allocation a short file does not back.

use bpr_protocol::block::{encode_block, BlockReader, BlockWriter, MARKER};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::Read;

struct Counting;

thread_local! {
    static ALLOCATED: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: defers to the system allocator; only adds a thread-local counter.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATED.with(|a| a.set(a.get() + layout.size()));
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATED.with(|a| a.set(a.get() + new_size));
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

// ---- the test's own protobuf encoding (from the format, not the crate) ----

fn pb_varint(mut v: u64) -> Vec<u8> {
    let mut out = vec![];
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return out;
        }
        out.push(b | 0x80);
    }
}

enum F<'a> {
    Varint(u64, u64),
    Bytes(u64, &'a [u8]),
    Raw(&'a [u8]),
}

fn message(fields: &[F<'_>]) -> Vec<u8> {
    let mut m = vec![];
    for f in fields {
        match f {
            F::Varint(n, v) => {
                m.extend(pb_varint(n << 3));
                m.extend(pb_varint(*v));
            }
            F::Bytes(n, b) => {
                m.extend(pb_varint((n << 3) | 2));
                m.extend(pb_varint(b.len() as u64));
                m.extend_from_slice(b);
            }
            F::Raw(b) => m.extend_from_slice(b),
        }
    }
    m
}

fn framed(msg: &[u8]) -> Vec<u8> {
    let mut out = vec![
        0x29, 0xd8, 0xd5, 0x06, 0x58, 0xcd, 0x4c, 0x29, 0xb2, 0xbc, 0x57, 0x99, 0x21, 0x71, 0xbd,
        0xff,
    ];
    out.extend_from_slice(&(msg.len() as u32).to_le_bytes());
    out.extend_from_slice(msg);
    out
}

fn block(records: &[&[u8]]) -> Vec<u8> {
    let mut fields = vec![
        F::Varint(1, 1),
        F::Bytes(2, b"com.twitter.ml.api.DataRecord"),
    ];
    fields.extend(records.iter().map(|r| F::Bytes(3, r)));
    framed(&message(&fields))
}

/// A source that returns at most `n` bytes per read.
struct Trickle<'a>(&'a [u8], usize);

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let k = self.0.len().min(self.1).min(buf.len());
        buf[..k].copy_from_slice(&self.0[..k]);
        self.0 = &self.0[k..];
        Ok(k)
    }
}

type Rows = Vec<(Vec<u8>, u64, u64)>;

fn read_all<R: Read>(mut r: BlockReader<R>) -> Result<Rows, String> {
    let mut out = vec![];
    while let Some(rec) = r.next_record().map_err(|e| e.to_string())? {
        out.push((rec.bytes.to_vec(), rec.block_offset, rec.index));
    }
    Ok(out)
}

fn records(n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            // sizes 0, 1, a few hundred, and one over the reader's 64 KiB chunk
            let len = match i % 7 {
                0 => 0,
                1 => 1,
                5 => 70_000 + i,
                _ => 3 * i + 10,
            };
            (0..len).map(|j| (i * 31 + j) as u8).collect()
        })
        .collect()
}

fn file_of(recs: &[Vec<u8>], per_block: usize) -> (Vec<u8>, Vec<(u64, u64)>) {
    let mut file = vec![];
    let mut pos = vec![];
    for chunk in recs.chunks(per_block) {
        let start = file.len() as u64;
        let refs: Vec<&[u8]> = chunk.iter().map(Vec::as_slice).collect();
        file.extend(block(&refs));
        pos.extend((0..chunk.len() as u64).map(|i| (start, i)));
    }
    (file, pos)
}

#[test]
fn reads_an_independently_written_file_at_every_chunking() {
    let recs = records(23);
    for per_block in [1, 3, 100] {
        let (file, pos) = file_of(&recs, per_block);
        for chunk in [1, 7, 4096, usize::MAX] {
            let got = read_all(BlockReader::new(Trickle(&file, chunk), "t.block")).unwrap();
            assert_eq!(got.len(), recs.len(), "per_block {per_block} chunk {chunk}");
            for (i, (bytes, b, k)) in got.iter().enumerate() {
                assert_eq!(bytes, &recs[i]);
                assert_eq!((*b, *k), pos[i]);
            }
        }
    }
}

#[test]
fn writer_output_is_the_independent_layout() {
    let recs = records(10);
    for per_block in [1, 4, 100] {
        let (expected, _) = file_of(&recs, per_block);
        let mut w = BlockWriter::new(Vec::new(), per_block).unwrap();
        for r in &recs {
            w.write_record(r).unwrap();
        }
        let (bytes, n) = w.finish().unwrap();
        assert_eq!(n, 10);
        assert_eq!(bytes, expected, "records_per_block {per_block}");
    }
    assert!(BlockWriter::new(Vec::new(), 0)
        .err()
        .unwrap()
        .to_string()
        .contains("records_per_block is 0"));
    assert_eq!(
        encode_block("x", std::iter::empty::<&[u8]>()).unwrap(),
        framed(&message(&[F::Varint(1, 1), F::Bytes(2, b"x")]))
    );
}

#[test]
fn empty_file_and_empty_block() {
    assert_eq!(read_all(BlockReader::new(&b""[..], "e")).unwrap(), vec![]);
    let mut f = block(&[]);
    f.extend(block(&[b"a"]));
    let got = read_all(BlockReader::new(&f[..], "e")).unwrap();
    assert_eq!(
        got,
        vec![(b"a".to_vec(), (f.len() - block(&[b"a"]).len()) as u64, 0)]
    );
}

#[test]
fn fields_in_any_order_and_unknown_fields_are_read() {
    let msg = message(&[
        F::Bytes(2, b"cls"),
        F::Varint(9, 300),
        F::Varint(1, 1),
        F::Raw(&[(7 << 3) | 1, 1, 2, 3, 4, 5, 6, 7, 8]),
        F::Bytes(3, b"r0"),
        F::Raw(&[(8 << 3) | 5, 1, 2, 3, 4]),
        F::Bytes(11, b"unknown"),
        F::Bytes(3, b"r1"),
    ]);
    let got = read_all(BlockReader::new(&framed(&msg)[..], "o")).unwrap();
    assert_eq!(got, vec![(b"r0".to_vec(), 0, 0), (b"r1".to_vec(), 0, 1)]);
}

#[test]
fn resume_at_every_position_gives_the_rest() {
    let recs = records(12);
    let (file, pos) = file_of(&recs, 5);
    // After record i was returned, the checkpoint is (its block, its index + 1).
    for i in 0..recs.len() {
        let (b, k) = pos[i];
        let r = BlockReader::resume(Trickle(&file[b as usize..], 999), "r", b, k + 1);
        let got = read_all(r).unwrap();
        let want: Vec<&Vec<u8>> = recs[i + 1..].iter().collect();
        assert_eq!(
            got.iter().map(|g| &g.0).collect::<Vec<_>>(),
            want,
            "after record {i}"
        );
        let want_pos: Vec<(u64, u64)> = pos[i + 1..].to_vec();
        assert_eq!(got.iter().map(|g| (g.1, g.2)).collect::<Vec<_>>(), want_pos);
    }
    // Resuming past the records a block has is an error, not a skip.
    let err = read_all(BlockReader::resume(&file[..], "r", 0, 6)).unwrap_err();
    assert!(
        err.contains("resuming 6 records into this block, which has only 5"),
        "{err}"
    );
    // A checkpoint offset at the end of the file is an error.
    let err = read_all(BlockReader::resume(&b""[..], "r", 40, 1)).unwrap_err();
    assert!(
        err.contains("the file ends where a checkpoint expects the block at byte 40"),
        "{err}"
    );
}

fn error_of(file: &[u8]) -> String {
    let e = read_all(BlockReader::new(file, "bad.block")).unwrap_err();
    assert!(e.starts_with("block file bad.block: at byte "), "{e}");
    e
}

#[test]
fn damage_is_an_error_naming_file_offset_and_expectation() {
    let good = block(&[b"abc", b"defg"]);
    let n = good.len();

    // junk before the first block (twml skips it)
    let mut f = b"junk".to_vec();
    f.extend(&good);
    let e = error_of(&f);
    assert!(
        e.contains("at byte 0: expected the 16-byte block marker 29 d8"),
        "{e}"
    );

    // one marker byte flipped in the second block
    let mut f = good.clone();
    f.extend(&good);
    f[n + 5] ^= 1;
    let e = error_of(&f);
    assert!(
        e.contains(&format!("at byte {n}: expected the 16-byte block marker")),
        "{e}"
    );

    // the file ends inside a marker, inside the size
    let e = error_of(&MARKER[..9]);
    assert!(
        e.contains("at byte 0: the file ends 9 bytes into a block marker"),
        "{e}"
    );
    let e = error_of(&good[..18]);
    assert!(
        e.contains("the file ends inside the size of the block at byte 0"),
        "{e}"
    );

    // block size 0 and negative
    for size in [0i32, -5] {
        let mut f = good.clone();
        f[16..20].copy_from_slice(&size.to_le_bytes());
        let e = error_of(&f);
        assert!(
            e.contains(&format!(
                "at byte 16: block size {size}: expected a positive"
            )),
            "{e}"
        );
    }

    // block size larger than the file
    let mut f = good.clone();
    f[16..20].copy_from_slice(&1_000_000i32.to_le_bytes());
    let e = error_of(&f);
    assert!(e.contains("the file ends inside"), "{e}");

    // truncated last record
    let e = error_of(&good[..n - 2]);
    assert!(
        e.contains("the file ends inside record 1 of the block at byte 0"),
        "{e}"
    );

    // versions 0 and 2; no version at all
    for v in [0, 2] {
        let f = framed(&message(&[F::Varint(1, v), F::Bytes(3, b"x")]));
        let e = error_of(&f);
        assert!(
            e.contains(&format!(
                "at byte 20: block at byte 0 has version {v}; expected version 1"
            )),
            "{e}"
        );
    }
    let e = error_of(&framed(&message(&[F::Bytes(2, b"c")])));
    assert!(e.contains("has no version (field 1)"), "{e}");
    let e = error_of(&framed(&message(&[F::Bytes(3, b"x"), F::Varint(1, 1)])));
    assert!(e.contains("a record before the version"), "{e}");

    // an over-long varint (11 bytes) as a record length, and one over 64 bits
    let mut raw = vec![(3 << 3) | 2];
    raw.extend([0x80; 10]);
    raw.push(0);
    let e = error_of(&framed(&message(&[F::Varint(1, 1), F::Raw(&raw)])));
    assert!(
        e.contains("a varint over 64 bits") || e.contains("longer than 10 bytes"),
        "{e}"
    );
    let mut raw = vec![(3 << 3) | 2];
    raw.extend([0xff; 9]);
    raw.push(0x7f);
    let e = error_of(&framed(&message(&[F::Varint(1, 1), F::Raw(&raw)])));
    assert!(
        e.contains("at byte 23: record 0 (field 3) of the block at byte 0: a varint over 64 bits"),
        "{e}"
    );

    // a record length past its block
    let f = framed(&message(&[
        F::Varint(1, 1),
        F::Raw(&[(3 << 3) | 2, 50, 1, 2]),
    ]));
    let e = error_of(&f);
    assert!(e.contains("record 0 (field 3) of the block at byte 0 has length 50, but its block (at byte 0) has 2 bytes left"), "{e}");

    // wrong wire types; field number 0; a group
    let e = error_of(&framed(&message(&[F::Bytes(1, b"1")])));
    assert!(
        e.contains("SerializedBlock field 1 has wire type 2; expected wire type 0 (varint)"),
        "{e}"
    );
    let e = error_of(&framed(&message(&[F::Varint(1, 1), F::Varint(3, 5)])));
    assert!(
        e.contains("SerializedBlock field 3 has wire type 0; expected wire type 2"),
        "{e}"
    );
    let e = error_of(&framed(&[0x02, 0x00]));
    assert!(e.contains("field number 0"), "{e}");
    let e = error_of(&framed(&[(5 << 3) | 3]));
    assert!(
        e.contains("wire type 3, which this format never uses"),
        "{e}"
    );

    // the errors repeat: a reader never carries on past damage
    let mut r = BlockReader::new(&b"junkjunkjunkjunkjunk"[..], "x");
    let a = r.next_record().unwrap_err();
    assert_eq!(r.next_record().unwrap_err(), a);
}

#[test]
fn a_short_file_claiming_huge_sizes_allocates_little() {
    // A 2 GiB block and a 2 GiB record length in a 40-byte file.
    let mut raw = vec![(3 << 3) | 2];
    raw.extend(pb_varint((i32::MAX - 40) as u64));
    raw.extend(b"abc");
    let mut msg = message(&[F::Varint(1, 1)]);
    msg.extend(raw);
    let mut f = framed(&msg);
    f[16..20].copy_from_slice(&i32::MAX.to_le_bytes());
    let before = ALLOCATED.with(Cell::get);
    let e = read_all(BlockReader::new(&f[..], "huge")).unwrap_err();
    let used = ALLOCATED.with(Cell::get) - before;
    assert!(e.contains("the file ends inside record 0"), "{e}");
    assert!(
        used < 256 << 10,
        "allocated {used} bytes for a {}-byte file",
        f.len()
    );
}

#[test]
fn check_data_record_accepts_records_and_names_the_offset_otherwise() {
    use bpr_protocol::block::check_data_record;
    use bpr_protocol::request::encode_data_record;
    let _ = encode_data_record; // a real record: STOP alone is an empty DataRecord
    assert_eq!(check_data_record(&[0]), Ok(()));
    let (at, what) = check_data_record(b"not a record").unwrap_err();
    assert!(at < 12, "{at} {what}");
    let (at, what) = check_data_record(&[0, 0]).unwrap_err();
    assert_eq!(at, 1, "{what}");
}
