//! Elephant-Bird binary block files, the format twml trains on
//! (`BlockFormatDatasetV2`): a reader that streams records out of a byte
//! source with bounded memory, and a writer.
//!
//! A file is a sequence of blocks; each block is
//! 1. the 16-byte [`MARKER`],
//! 2. the block size, a little-endian `int32`: the bytes of the message that follows,
//! 3. a protobuf `SerializedBlock { optional int32 version = 1; optional string
//!    proto_class_name = 2; repeated bytes proto_blobs = 3; }` of that many bytes:
//!    version 1, a class name (twml writes `com.twitter.ml.api.DataRecord`) and
//!    one blob per record.
//!
//! Unlike twml's reader, which slides over junk to the next marker and drops
//! what it cannot read, [`BlockReader`] is strict: the file must be blocks and
//! nothing else, and anything else is an [`Error`] naming the file, the byte
//! offset and what was expected there. No record is ever dropped silently.
//!
//! ```
//! use bpr_protocol::block::{BlockReader, BlockWriter};
//!
//! let mut file = Vec::new();
//! let mut w = BlockWriter::new(&mut file, 2)?;
//! for r in [&b"one"[..], b"two", b"three"] {
//!     w.write_record(r)?;
//! }
//! w.finish()?;
//!
//! let mut r = BlockReader::new(&file[..], "example.block");
//! let mut seen = Vec::new();
//! while let Some(rec) = r.next_record()? {
//!     seen.push((rec.bytes.to_vec(), rec.block_offset, rec.index));
//! }
//! assert_eq!(seen[2], (b"three".to_vec(), 63, 0)); // the second block
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod reader;
mod writer;

pub use reader::{BlockReader, Record};
pub use writer::{encode_block, BlockWriter, DATA_RECORD_CLASS};

/// The 16 bytes before every block.
pub const MARKER: [u8; 16] = [
    0x29, 0xd8, 0xd5, 0x06, 0x58, 0xcd, 0x4c, 0x29, 0xb2, 0xbc, 0x57, 0x99, 0x21, 0x71, 0xbd, 0xff,
];

/// The only `SerializedBlock.version` there is.
pub const VERSION: u64 = 1;

/// The largest block (its size field is an int32).
pub const MAX_BLOCK_SIZE: u64 = i32::MAX as u64;

/// Protobuf wire types.
pub(crate) mod wire {
    pub const VARINT: u8 = 0;
    pub const FIXED64: u8 = 1;
    pub const LEN: u8 = 2;
    pub const FIXED32: u8 = 5;
}

/// `SerializedBlock` field numbers.
pub(crate) mod field {
    pub const VERSION: u64 = 1;
    pub const CLASS_NAME: u64 = 2;
    pub const BLOBS: u64 = 3;
}

pub use crate::request::check_data_record;
