//! Reads twml's requests: Thrift `BatchPredictionRequest`s and `DataRecord`s
//! (binary protocol, bare structs), as twml's request-side TensorFlow ops do,
//! by their registered names ([`RequestOp`]), and writes them
//! ([`encode_batch_prediction_request`]) for clients and tests.
//!
//! A decode op turns messages into a [`Batch`] in one pass: either every
//! record's features by offset (the "DataRecord handle" of
//! `DecodeDataRecord` and `Decode[BatchPredictionRequest]{,V2}`), or twml's
//! hashed rows (`DecodeAndHash*`). Getter ops read a batch into outputs.
//! Where twml's readers lost data or crashed, these differ: see the README's
//! request-side section.
//!
//! ```
//! use bpr_protocol::request::{encode_batch_prediction_request, Attr, RequestOp, Record};
//!
//! let mut r = Record::default();
//! r.continuous.push((7, 0.5));
//! let bytes = encode_batch_prediction_request(&[r], None)?;
//! let op = RequestOp::new(
//!     "DecodeAndHashBatchPredictionRequest",
//!     &[("keep_features", Attr::Ints(&[7])), ("keep_codes", Attr::Ints(&[3])),
//!       ("decode_mode", Attr::Int(0))],
//! )?;
//! let batch = op.decode(&[&bytes], false)?;
//! assert_eq!(batch.num_records(), 1);
//! # Ok::<(), bpr_protocol::Error>(())
//! ```

mod batch;
mod check;
mod encode;
mod getters;
mod merge;
mod ops;
mod outputs;
mod read;
mod tensor_getters;
mod tensors;

/// A `DataRecord` to encode: the same plain struct the response decoder gives.
pub use crate::decode::Record;
pub use batch::Batch;
pub use check::check_data_record;
pub use encode::{encode_batch_prediction_request, encode_data_record};
pub use ops::{op_names, Attr, RequestOp, DECODE_OPS};
pub use outputs::Outputs;
