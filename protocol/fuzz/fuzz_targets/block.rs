//! Fuzzes the block-file reader: arbitrary bytes as a whole file (fed in chunks of a size taken
//! from the first byte, so chunk boundaries fall everywhere), read to the end or the first error,
//! then resumed at each position it reported. A crash is any panic, an error that is not
//! InvalidArgument or does not name the file, a record whose position goes backwards, or a
//! resumed reader that disagrees with the first.

#![no_main]

use bpr_protocol::block::BlockReader;
use bpr_protocol::ErrorKind;
use libfuzzer_sys::fuzz_target;
use std::io::Read;

struct Chunks<'a>(&'a [u8], usize);

impl Read for Chunks<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let k = self.0.len().min(self.1).min(buf.len());
        buf[..k].copy_from_slice(&self.0[..k]);
        self.0 = &self.0[k..];
        Ok(k)
    }
}

type Read_ = (Vec<(Vec<u8>, u64, u64)>, Option<String>);

fn read_all(r: &mut BlockReader<Chunks<'_>>) -> Read_ {
    let mut out = Vec::new();
    loop {
        match r.next_record() {
            Ok(Some(rec)) => {
                assert!(rec.offset >= rec.block_offset + 20, "a record inside its block header");
                out.push((rec.bytes.to_vec(), rec.block_offset, rec.index));
            }
            Ok(None) => return (out, None),
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
                assert!(e.message().starts_with("block file fuzz: at byte "), "{e}");
                return (out, Some(e.message().to_string()));
            }
        }
    }
}

fuzz_target!(|input: &[u8]| {
    let Some((&chunk, file)) = input.split_first() else {
        return;
    };
    let chunk = usize::from(chunk) + 1;
    let (records, _) = read_all(&mut BlockReader::new(Chunks(file, chunk), "fuzz"));
    for w in records.windows(2) {
        assert!((w[0].1, w[0].2) < (w[1].1, w[1].2), "positions not increasing");
    }
    for (i, (_, block, index)) in records.iter().enumerate() {
        let start = *block as usize;
        let mut r = BlockReader::resume(Chunks(&file[start..], chunk), "fuzz", *block, index + 1);
        let (rest, _) = read_all(&mut r);
        assert_eq!(rest, records[i + 1..], "resumed after record {i}");
    }
});
