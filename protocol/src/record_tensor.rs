//! `DataRecordTensorWriter`: keys and dense tensors -> one `DataRecord` whose
//! `tensors` map holds one `GeneralTensor` per key (twml's
//! `data_record_tensor_writer.cpp`, "initially added to support exporting user
//! embeddings as tensors").
//!
//! The record is exactly the one record of the tensor response writer given
//! each tensor as a batch of one ([`crate::encode_tensor_response`]): the same
//! framing (numbers and bools as little-endian `rawTypedTensor`, strings as
//! `stringTensor`, keys in the order given), so the two writers cannot drift.
//! Unlike twml, a repeated key is an error (twml kept the first tensor and
//! dropped the others silently).

use crate::error::{Error, Result};
use crate::input::{check_keys, Tensor};
use crate::wire::{FIELD_HEADER, LIST_HEADER, STOP};

/// The response framing around its one record: `0F 0001 0C <1:i32>` ... `00`.
const RESPONSE_HEAD: usize = FIELD_HEADER + LIST_HEADER;

/// The bytes of one `DataRecord` holding `values[j]` under `keys[j]`.
/// With no keys the record is empty (one STOP byte, as twml writes it).
pub fn encode_data_record_tensors(keys: &Tensor<'_>, values: &[Tensor<'_>]) -> Result<Vec<u8>> {
    let ids = check_keys(keys)?;
    if ids.len() != values.len() {
        return Err(Error::invalid(format!(
            "keys has {} entries but {} values tensors were given; one values tensor per key is expected",
            ids.len(),
            values.len()
        )));
    }
    if ids.is_empty() {
        return Ok(vec![0]);
    }
    // Each tensor as a batch of one: its dims with a leading 1.
    let dims: Vec<Vec<i64>> = values
        .iter()
        .map(|t| std::iter::once(1).chain(t.dims().iter().copied()).collect())
        .collect();
    let batched = values
        .iter()
        .zip(&dims)
        .map(|(t, d)| Tensor::new(d, t.data()))
        .collect::<Result<Vec<_>>>()?;
    let response = crate::encode_tensor_response(keys, &batched)?;
    Ok(response[RESPONSE_HEAD..response.len() - STOP].to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Data;

    #[test]
    fn no_keys_is_an_empty_record() {
        let keys = Tensor::new(&[0], Data::I64(&[])).unwrap();
        assert_eq!(encode_data_record_tensors(&keys, &[]).unwrap(), vec![0]);
    }

    #[test]
    fn must_write_one_int32_entry() {
        // The wire-format page's example record, without the response around it.
        let keys = Tensor::new(&[1], Data::I64(&[7])).unwrap();
        let v = Tensor::new(&[2], Data::I32(&[1, 2])).unwrap();
        let want: &[u8] = &[
            0x0d, 0, 8, 0x0a, 0x0c, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 7, 0x0c, 0, 1, 8, 0, 1, 0, 0,
            0, 2, 0x0b, 0, 2, 0, 0, 0, 8, 1, 0, 0, 0, 2, 0, 0, 0, 0x0f, 0, 3, 0x0a, 0, 0, 0, 1, 0,
            0, 0, 0, 0, 0, 0, 2, 0, 0, 0,
        ];
        assert_eq!(encode_data_record_tensors(&keys, &[v]).unwrap(), want);
    }

    #[test]
    fn repeated_key_is_an_error() {
        let keys = Tensor::new(&[2], Data::I64(&[4, 4])).unwrap();
        let v = Tensor::new(&[1], Data::F64(&[1.0])).unwrap();
        let e = encode_data_record_tensors(&keys, &[v, v]).unwrap_err();
        assert!(e.message().contains("duplicate: key 4"), "{e}");
    }
}
