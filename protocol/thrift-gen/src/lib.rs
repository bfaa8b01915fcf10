//! Apache Thrift's generated Rust structs for thrift/*.thrift (`data`, `tensor`,
//! `prediction_service`), made by build.rs with Apache's compiler when bpr-protocol's tests,
//! benches or examples build, and used unmodified. They decode our bytes in those tests with
//! code we did not write. Nothing generated is committed.

include!(concat!(env!("OUT_DIR"), "/modules.rs"));

/// The generated files name each other as `crate::bpr_ops_idl::{data, tensor}` (from
/// `namespace rs bpr_ops_idl` in the IDL).
pub mod bpr_ops_idl {
    pub use crate::{data, prediction_service, tensor};
}
