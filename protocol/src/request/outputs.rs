//! Where the getters write: the one interface between the request readers and
//! a host's output tensors (the op library's kernels, bpr-host's tests, the
//! fuzz targets). The bottom of the request module's layers: reading ->
//! batch -> getters -> [`Outputs`], and this file depends on none of them.

use crate::{Error, Result};

/// Where a getter writes its outputs. Each output (0-based, in the op's
/// registered order) is asked for once, with its shape, and filled before
/// the next is asked for.
pub trait Outputs {
    /// An `int64` output of shape `dims`.
    fn int64(&mut self, index: usize, dims: &[usize]) -> Result<&mut [i64]>;
    /// A `float` output.
    fn float(&mut self, index: usize, dims: &[usize]) -> Result<&mut [f32]>;
    /// An `int8` output.
    fn int8(&mut self, index: usize, dims: &[usize]) -> Result<&mut [i8]>;
    /// A `string` output, its elements in row-major order.
    fn strings(
        &mut self,
        index: usize,
        dims: &[usize],
        values: &mut dyn Iterator<Item = &[u8]>,
    ) -> Result<()>;
    /// A `uint8` output (the tensor getters' `out_endian`).
    fn uint8(&mut self, index: usize, _dims: &[usize]) -> Result<&mut [u8]> {
        Err(Error::internal(format!(
            "output {index}: this host has no uint8 outputs"
        )))
    }
    /// A `bool` output (the tensor getters' `is_found`).
    fn bool(&mut self, index: usize, _dims: &[usize]) -> Result<&mut [bool]> {
        Err(Error::internal(format!(
            "output {index}: this host has no bool outputs"
        )))
    }
}
