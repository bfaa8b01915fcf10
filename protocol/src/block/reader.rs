//! The streaming block reader: a fixed input buffer over any [`Read`], one
//! reused record buffer, every length checked against its block before a byte
//! of it is kept.

use std::fmt;
use std::io::{self, Read};

use super::{field, wire, MARKER, VERSION};
use crate::{Error, Result};

/// How much the reader asks its source for at a time (its whole input buffer).
const CHUNK: usize = 64 << 10;

/// One record: its bytes (valid until the next call) and where it is.
#[derive(Debug, PartialEq, Eq)]
pub struct Record<'a> {
    /// The record's serialized bytes (a Thrift-binary `DataRecord` in twml's files).
    pub bytes: &'a [u8],
    /// The byte offset of its block's marker in the stream (the decompressed
    /// stream for a compressed file).
    pub block_offset: u64,
    /// Its index in the block, from 0.
    pub index: u64,
    /// The stream offset of its first byte.
    pub offset: u64,
}

#[derive(Clone, Copy, Debug)]
enum State {
    /// At a block boundary: a marker or the end of the stream comes next.
    Between,
    /// Inside the block whose marker is at `start`, with `left` bytes of its
    /// message unread and `index` records read from it.
    InBlock {
        start: u64,
        left: u64,
        index: u64,
        version: bool,
    },
    Done,
}

/// Reads the records of one block file from a byte source, in order, never
/// holding more than one chunk of input and one record.
///
/// Errors name the file (`name`), the byte offset and what was expected; after
/// an error the reader returns the same error again.
pub struct BlockReader<R> {
    src: R,
    name: String,
    buf: Box<[u8]>,
    pos: usize,
    len: usize,
    /// Stream offset of `buf[pos]`.
    offset: u64,
    record: Vec<u8>,
    state: State,
    /// Records still to pass over before the first one is returned (resume).
    skip: u64,
    /// Where a resumed reader must find a block.
    must_start: Option<u64>,
    failed: Option<Error>,
}

/// What a file that does not start with a marker looks like, from its first
/// bytes, when it is a format users mix up with block files: the hex alone
/// left them guessing (issue 36).
fn other_format(head: &[u8]) -> Option<&'static str> {
    if head.starts_with(&[0x1f, 0x8b]) {
        return Some(
            "this looks like a gzip file: pass compression_type='gz', or 'auto' with a name ending in .gz",
        );
    }
    // A TFRecord starts with its length (u64 LE) and the masked CRC-32C of
    // those 8 bytes: 32 bits that block files match by chance once in 2^32.
    if head.len() >= 12 {
        let (len, crc) = (
            &head[..8],
            u32::from_le_bytes([head[8], head[9], head[10], head[11]]),
        );
        if masked_crc32c(len) == crc {
            return Some(
                "this looks like a TFRecord file, not a block-format file: read it with tf.data.TFRecordDataset",
            );
        }
    }
    None
}

/// TFRecord's masked CRC-32C.
fn masked_crc32c(data: &[u8]) -> u32 {
    crc32c(data).rotate_right(15).wrapping_add(0xa282_ead8)
}

/// CRC-32C (Castagnoli). Bitwise, not table-driven: it runs once per failed
/// file, on 8 bytes.
fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82f6_3b78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// Bytes as hex, for messages.
struct Hex<'a>(&'a [u8]);

impl fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl<R: Read> BlockReader<R> {
    /// A reader of the stream `src` from its start; `name` names it in errors.
    pub fn new(src: R, name: impl Into<String>) -> Self {
        BlockReader {
            src,
            name: name.into(),
            buf: vec![0u8; CHUNK].into_boxed_slice(),
            pos: 0,
            len: 0,
            offset: 0,
            record: Vec::new(),
            state: State::Between,
            skip: 0,
            must_start: None,
            failed: None,
        }
    }

    /// A reader that resumes where [`BlockReader::position`] said: `src` is
    /// already positioned at `block_offset` (the marker of a block), and the
    /// first `index` records of that block are passed over. Offsets in records
    /// and errors stay those of the whole stream.
    pub fn resume(src: R, name: impl Into<String>, block_offset: u64, index: u64) -> Self {
        let mut r = Self::new(src, name);
        r.offset = block_offset;
        r.skip = index;
        if block_offset > 0 || index > 0 {
            r.must_start = Some(block_offset);
        }
        r
    }

    /// The name errors give the stream.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The stream offset of the next unread byte.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    fn fail<T>(&mut self, at: u64, what: impl fmt::Display) -> Result<T> {
        let e = Error::invalid(format!("block file {}: at byte {at}: {what}", self.name));
        self.failed = Some(e.clone());
        Err(e)
    }

    /// Makes bytes available in the buffer; false at the end of the stream.
    fn fill(&mut self) -> Result<bool> {
        if self.pos < self.len {
            return Ok(true);
        }
        self.pos = 0;
        self.len = 0;
        loop {
            match self.src.read(&mut self.buf) {
                Ok(n) => {
                    self.len = n.min(self.buf.len());
                    return Ok(self.len > 0);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let at = self.offset;
                    return self.fail(at, format_args!("reading the file failed: {e}"));
                }
            }
        }
    }

    /// Reads up to `out.len()` bytes; fewer only at the end of the stream.
    fn read_upto(&mut self, out: &mut [u8]) -> Result<usize> {
        let mut n = 0;
        while n < out.len() && self.fill()? {
            let k = (self.len - self.pos).min(out.len() - n);
            out[n..n + k].copy_from_slice(&self.buf[self.pos..self.pos + k]);
            self.pos += k;
            self.offset += k as u64;
            n += k;
        }
        Ok(n)
    }

    /// One byte of the current block's message (`left` counts them down).
    fn block_byte(&mut self, left: &mut u64, start: u64, what: &dyn fmt::Display) -> Result<u8> {
        if *left == 0 {
            let at = self.offset;
            return self.fail(
                at,
                format_args!("{what} runs past the end of the block that starts at byte {start}"),
            );
        }
        if !self.fill()? {
            let at = self.offset;
            return self.fail(
                at,
                format_args!(
                    "the file ends inside {what}: the block at byte {start} declares {left} more bytes"
                ),
            );
        }
        let b = self.buf[self.pos];
        self.pos += 1;
        self.offset += 1;
        *left -= 1;
        Ok(b)
    }

    /// A protobuf varint of at most 10 bytes, inside the block.
    fn varint(&mut self, left: &mut u64, start: u64, what: &dyn fmt::Display) -> Result<u64> {
        let at = self.offset;
        let mut value = 0u64;
        for i in 0..10 {
            let b = self.block_byte(left, start, what)?;
            if i == 9 && b > 1 {
                return self.fail(
                    at,
                    format_args!("{what}: a varint over 64 bits (its 10th byte is {b:#04x})"),
                );
            }
            value |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        self.fail(
            at,
            format_args!("{what}: a varint longer than 10 bytes (protobuf's limit)"),
        )
    }

    /// Passes over `n` bytes of the block (already checked to be in it).
    fn skip_bytes(
        &mut self,
        mut n: u64,
        left: &mut u64,
        start: u64,
        what: &dyn fmt::Display,
    ) -> Result<()> {
        *left -= n;
        while n > 0 {
            if !self.fill()? {
                let at = self.offset;
                return self.fail(
                    at,
                    format_args!(
                        "the file ends inside {what}: {n} more bytes expected (block at byte {start})"
                    ),
                );
            }
            let k = ((self.len - self.pos) as u64).min(n) as usize;
            self.pos += k;
            self.offset += k as u64;
            n -= k as u64;
        }
        Ok(())
    }

    /// A length-delimited field's length, checked against what the block has left.
    fn length(&mut self, left: &mut u64, start: u64, what: &dyn fmt::Display) -> Result<u64> {
        let at = self.offset;
        let n = self.varint(left, start, what)?;
        if n > *left {
            return self.fail(
                at,
                format_args!(
                    "{what} has length {n}, but its block (at byte {start}) has {left} bytes left"
                ),
            );
        }
        Ok(n)
    }

    /// Reads `n` bytes (in the block) into the record buffer, which grows only
    /// as bytes actually arrive: a length the file does not back is never allocated.
    fn take_record(&mut self, n: u64, left: &mut u64, start: u64, index: u64) -> Result<()> {
        *left -= n;
        self.record.clear();
        let mut want = n;
        while want > 0 {
            if !self.fill()? {
                let at = self.offset;
                return self.fail(
                    at,
                    format_args!(
                        "the file ends inside record {index} of the block at byte {start}: \
                         the record has {n} bytes, {want} of them missing"
                    ),
                );
            }
            let k = ((self.len - self.pos) as u64).min(want) as usize;
            self.record
                .extend_from_slice(&self.buf[self.pos..self.pos + k]);
            self.pos += k;
            self.offset += k as u64;
            want -= k as u64;
        }
        Ok(())
    }

    /// The next record, or `None` at the end of the stream.
    pub fn next_record(&mut self) -> Result<Option<Record<'_>>> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        loop {
            match self.state {
                State::Done => return Ok(None),
                State::Between => self.block_header()?,
                State::InBlock {
                    start,
                    mut left,
                    index,
                    mut version,
                } => {
                    if left == 0 {
                        if !version {
                            let at = self.offset;
                            return self.fail(
                                at,
                                format_args!(
                                    "the block at byte {start} has no version (field 1); expected version {VERSION}"
                                ),
                            );
                        }
                        if self.skip > 0 {
                            let skip = self.skip + index;
                            return self.fail(
                                start,
                                format_args!(
                                    "resuming {skip} records into this block, which has only {index}"
                                ),
                            );
                        }
                        self.state = State::Between;
                        continue;
                    }
                    let at = self.offset;
                    let tag = self.varint(&mut left, start, &"a field tag of SerializedBlock")?;
                    let (number, wt) = (tag >> 3, (tag & 7) as u8);
                    match (number, wt) {
                        (field::VERSION, wire::VARINT) => {
                            let v = self.varint(
                                &mut left,
                                start,
                                &"SerializedBlock.version (field 1)",
                            )?;
                            if v != VERSION {
                                return self.fail(
                                    at,
                                    format_args!(
                                        "block at byte {start} has version {v}; expected version {VERSION}"
                                    ),
                                );
                            }
                            version = true;
                        }
                        (field::CLASS_NAME, wire::LEN) => {
                            let what = "SerializedBlock.proto_class_name (field 2)";
                            let n = self.length(&mut left, start, &what)?;
                            self.skip_bytes(n, &mut left, start, &what)?;
                        }
                        (field::BLOBS, wire::LEN) => {
                            if !version {
                                return self.fail(
                                    at,
                                    format_args!(
                                        "a record before the version (field 1) in the block at byte {start}; \
                                         expected version {VERSION} first"
                                    ),
                                );
                            }
                            // Formatted only if the length is bad: a String per
                            // record showed in the scan's profile (issue 27).
                            let n = self.length(
                                &mut left,
                                start,
                                &format_args!(
                                    "record {index} (field 3) of the block at byte {start}"
                                ),
                            )?;
                            self.take_record(n, &mut left, start, index)?;
                            self.state = State::InBlock {
                                start,
                                left,
                                index: index + 1,
                                version,
                            };
                            if self.skip > 0 {
                                self.skip -= 1;
                                continue;
                            }
                            return Ok(Some(Record {
                                bytes: &self.record,
                                block_offset: start,
                                index,
                                offset: self.offset - n,
                            }));
                        }
                        (field::VERSION | field::CLASS_NAME | field::BLOBS, wt) => {
                            let want = if number == field::VERSION {
                                "0 (varint)"
                            } else {
                                "2 (length-delimited)"
                            };
                            return self.fail(
                                at,
                                format_args!(
                                    "SerializedBlock field {number} has wire type {wt}; expected wire type {want}"
                                ),
                            );
                        }
                        (0, _) => {
                            return self.fail(at, "a SerializedBlock field tag with field number 0 (not a protobuf field)");
                        }
                        (_, wire::VARINT) => {
                            self.varint(
                                &mut left,
                                start,
                                &format_args!("unknown SerializedBlock field {number}"),
                            )?;
                        }
                        (_, wire::FIXED64 | wire::FIXED32) => {
                            let n = if wt == wire::FIXED64 { 8 } else { 4 };
                            let what = format!("unknown SerializedBlock field {number}");
                            if n > left {
                                return self.fail(
                                    at,
                                    format_args!(
                                        "{what} runs past the end of the block at byte {start}"
                                    ),
                                );
                            }
                            self.skip_bytes(n, &mut left, start, &what)?;
                        }
                        (_, wire::LEN) => {
                            let what = format!("unknown SerializedBlock field {number}");
                            let n = self.length(&mut left, start, &what)?;
                            self.skip_bytes(n, &mut left, start, &what)?;
                        }
                        (_, wt) => {
                            return self.fail(
                                at,
                                format_args!(
                                    "SerializedBlock field {number} has wire type {wt}, which this format never uses \
                                     (expected 0, 1, 2 or 5)"
                                ),
                            );
                        }
                    }
                    self.state = State::InBlock {
                        start,
                        left,
                        index,
                        version,
                    };
                }
            }
        }
    }

    /// At a block boundary: the marker and the size, or the end of the stream.
    fn block_header(&mut self) -> Result<()> {
        let at = self.offset;
        let mut m = [0u8; 16];
        let got = self.read_upto(&mut m)?;
        if got == 0 {
            if let Some(start) = self.must_start {
                return self.fail(
                    at,
                    format_args!(
                        "the file ends where a checkpoint expects the block at byte {start}"
                    ),
                );
            }
            self.state = State::Done;
            return Ok(());
        }
        let resumed = self.must_start.take().is_some();
        if m[..got] != MARKER[..got] {
            let what = if at == 0 && !resumed {
                other_format(&m[..got])
            } else {
                None
            };
            let what = what.unwrap_or(
                "bpr_ops does not skip bytes between blocks: this is not a block file, or it is damaged here",
            );
            return self.fail(
                at,
                format_args!(
                    "expected the 16-byte block marker {}, found {} ({what})",
                    Hex(&MARKER),
                    Hex(&m[..got])
                ),
            );
        }
        if got < 16 {
            return self.fail(
                at,
                format_args!("the file ends {got} bytes into a block marker (16 bytes expected)"),
            );
        }
        let mut s = [0u8; 4];
        let got = self.read_upto(&mut s)?;
        if got < 4 {
            let end = self.offset;
            return self.fail(
                end,
                format_args!(
                    "the file ends inside the size of the block at byte {at}: 4 bytes expected, {got} found"
                ),
            );
        }
        let size = i32::from_le_bytes(s);
        if size <= 0 {
            return self.fail(
                at + 16,
                format_args!("block size {size}: expected a positive little-endian int32"),
            );
        }
        self.state = State::InBlock {
            start: at,
            left: size as u64,
            index: 0,
            version: false,
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_check_value() {
        // The catalogued check value of CRC-32C (the CRC of "123456789").
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
        assert_eq!(crc32c(b""), 0);
    }

    #[test]
    fn other_formats_are_named_only_when_they_match() {
        assert!(other_format(&[0x1f, 0x8b, 8, 0]).unwrap().contains("gzip"));
        assert!(other_format(&MARKER[..12]).is_none());
        assert!(other_format(b"PAR1 this is not a block").is_none());
        // 12 bytes whose last 4 are not the masked CRC of the first 8.
        let mut head = [0u8; 12];
        head[0] = 5;
        assert!(other_format(&head).is_none());
    }
}
