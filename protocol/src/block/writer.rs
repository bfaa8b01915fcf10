//! The block writer: `records_per_block` records to a block, as twml's
//! `BlockFormatWriter` lays them out (version, class name, one blob per record).

use std::io::Write;

use super::{field, wire, MARKER, MAX_BLOCK_SIZE, VERSION};
use crate::{Error, Result};

/// The class name twml writes in every block.
pub const DATA_RECORD_CLASS: &str = "com.twitter.ml.api.DataRecord";

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn varint_len(v: u64) -> u64 {
    u64::from(64 - (v | 1).leading_zeros()).div_ceil(7)
}

/// One whole block (marker, size, message) holding `records` under `class_name`.
/// A block over 2^31 - 1 bytes is an error.
pub fn encode_block<'r>(
    class_name: &str,
    records: impl IntoIterator<Item = &'r [u8]> + Clone,
) -> Result<Vec<u8>> {
    let mut size =
        1 + varint_len(VERSION) + 1 + varint_len(class_name.len() as u64) + class_name.len() as u64;
    for r in records.clone() {
        size += 1 + varint_len(r.len() as u64) + r.len() as u64;
    }
    if size > MAX_BLOCK_SIZE {
        return Err(Error::invalid(format!(
            "block of {size} bytes: a block holds at most {MAX_BLOCK_SIZE} bytes (its size is an int32); \
             put fewer records in each block"
        )));
    }
    let mut out = Vec::with_capacity(20 + size as usize);
    out.extend_from_slice(&MARKER);
    out.extend_from_slice(&(size as i32).to_le_bytes());
    out.push(((field::VERSION << 3) as u8) | wire::VARINT);
    varint(&mut out, VERSION);
    out.push(((field::CLASS_NAME << 3) as u8) | wire::LEN);
    varint(&mut out, class_name.len() as u64);
    out.extend_from_slice(class_name.as_bytes());
    for r in records {
        out.push(((field::BLOBS << 3) as u8) | wire::LEN);
        varint(&mut out, r.len() as u64);
        out.extend_from_slice(r);
    }
    debug_assert_eq!(out.len() as u64, 20 + size);
    Ok(out)
}

/// Writes records to `out` as blocks of `records_per_block` (the last block
/// may hold fewer). Call [`BlockWriter::finish`] to write the last block.
pub struct BlockWriter<W: Write> {
    out: W,
    records_per_block: usize,
    class_name: String,
    pending: Vec<Vec<u8>>,
    written: u64,
}

impl<W: Write> BlockWriter<W> {
    /// A writer of DataRecord blocks; `records_per_block` must be at least 1.
    pub fn new(out: W, records_per_block: usize) -> Result<Self> {
        Self::with_class(out, records_per_block, DATA_RECORD_CLASS)
    }

    /// A writer whose blocks name `class_name`.
    pub fn with_class(out: W, records_per_block: usize, class_name: &str) -> Result<Self> {
        if records_per_block == 0 {
            return Err(Error::invalid(
                "records_per_block is 0: a block holds at least 1 record",
            ));
        }
        Ok(BlockWriter {
            out,
            records_per_block,
            class_name: class_name.to_string(),
            pending: Vec::new(),
            written: 0,
        })
    }

    /// Adds one record (its serialized bytes).
    pub fn write_record(&mut self, record: &[u8]) -> Result<()> {
        self.pending.push(record.to_vec());
        if self.pending.len() == self.records_per_block {
            self.flush_block()?;
        }
        Ok(())
    }

    fn flush_block(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let block = encode_block(&self.class_name, self.pending.iter().map(Vec::as_slice))?;
        self.out
            .write_all(&block)
            .map_err(|e| Error::invalid(format!("writing a block failed: {e}")))?;
        self.written += self.pending.len() as u64;
        self.pending.clear();
        Ok(())
    }

    /// Writes the last block and returns the output and the record count.
    pub fn finish(mut self) -> Result<(W, u64)> {
        self.flush_block()?;
        self.out
            .flush()
            .map_err(|e| Error::invalid(format!("flushing the block file failed: {e}")))?;
        Ok((self.out, self.written))
    }
}
