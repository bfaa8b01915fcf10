//! A structural check of one serialized `DataRecord`, for readers that hand
//! records on without decoding them (the block-format dataset): the same walk
//! the decode ops make, with nothing kept.

use super::read::{self, Cursor, Kind, Span, Visit};

struct Nothing;

impl Visit for Nothing {
    fn binary(&mut self, _: i64) {}
    fn continuous(&mut self, _: i64, _: f64) {}
    fn discrete(&mut self, _: i64, _: i64) {}
    fn string(&mut self, _: i64, _: Span, _: &[u8]) {}
    fn sparse_begin(&mut self, _: Kind, _: i64) -> bool {
        false
    }
    fn sparse_binary(&mut self, _: i64, _: Span, _: &[u8]) {}
    fn sparse_continuous(&mut self, _: i64, _: Span, _: &[u8], _: f64) {}
    fn end(&mut self, _: Kind) {}
}

/// Checks that `bytes` is exactly one Thrift-binary `DataRecord` as the decode
/// ops read it (field types, counts, lengths, nothing after its STOP). On
/// failure: the byte offset in `bytes` and what was expected there.
pub fn check_data_record(bytes: &[u8]) -> Result<(), (usize, String)> {
    let mut c = Cursor::new(bytes, 0);
    read::record(&mut c, &"DataRecord", &mut Nothing)
        .and_then(|()| read::finish(&c, "DataRecord"))
        .map_err(|e| (e.at, e.what))
}
