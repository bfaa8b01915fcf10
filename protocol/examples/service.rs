//! A prediction service with no TensorFlow in it: it gets predictions from
//! elsewhere (an ONNX or Torch runtime, its own code) as plain arrays and answers
//! with the `BatchPredictionResponse` bytes the JVM consumers decode.
//!
//! Run: `cargo run -p bpr-protocol --example service`. Its test decodes the
//! bytes with Apache Thrift's own Rust crate: `cargo test -p bpr-protocol --example service`.

use bpr_protocol::{encode_continuous, encode_tensor_response, Data, Result, Tensor};
use ndarray::{array, Array2};

/// Feature ids the consumers look predictions up by: twml's feature-id hash of
/// the names "prediction" and "p_like" (MurmurHash3 x64 128 of the UTF-16LE name).
const PREDICTION: i64 = -5621645068071228725;
const P_LIKE: i64 = -7597658456151744697;
const EMBEDDING: i64 = 42;
const LABEL: i64 = 43;

/// One batch of model outputs: `scores[i, j]` is example i's prediction for `keys[j]`.
struct Scores {
    keys: Vec<i64>,
    scores: Array2<f32>,
}

/// The continuous response: record i maps each key to `scores[i, j]` (as a double).
fn continuous_response(batch: &Scores) -> Result<Vec<u8>> {
    // Row-major, as the writer reads it; a transposed view is copied once here.
    let scores = batch.scores.as_standard_layout();
    let dims = [scores.nrows() as i64, scores.ncols() as i64];
    let key_dims = [batch.keys.len() as i64];
    let keys = Tensor::new(&key_dims, Data::I64(&batch.keys))?;
    let values = Tensor::new(
        &dims,
        Data::F32(scores.as_slice().expect("standard layout")),
    )?;
    encode_continuous(&keys, &values)
}

/// The tensor response: record i holds row i of an embedding and a string label.
fn tensor_response(embeddings: &Array2<f32>, labels: &[&str]) -> Result<Vec<u8>> {
    let embeddings = embeddings.as_standard_layout();
    let dims = [embeddings.nrows() as i64, embeddings.ncols() as i64];
    let keys = Tensor::new(&[2], Data::I64(&[EMBEDDING, LABEL]))?;
    let label_dims = [labels.len() as i64];
    let values = [
        Tensor::new(
            &dims,
            Data::F32(embeddings.as_slice().expect("standard layout")),
        )?,
        Tensor::new(&label_dims, Data::Str(&labels))?,
    ];
    encode_tensor_response(&keys, &values)
}

fn main() -> Result<()> {
    let batch = Scores {
        keys: vec![PREDICTION, P_LIKE],
        scores: array![[0.91, 0.12], [0.35, 0.80], [0.05, 0.44]],
    };
    let bytes = continuous_response(&batch)?;
    println!(
        "continuous response: {} bytes for {} examples",
        bytes.len(),
        batch.scores.nrows()
    );

    let embeddings = array![[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]];
    let bytes = tensor_response(&embeddings, &["spam", "ham"])?;
    println!(
        "tensor response: {} bytes for {} examples",
        bytes.len(),
        embeddings.nrows()
    );

    // A mistake is an error that says what was wrong, never a panic.
    let wrong = Scores {
        keys: vec![PREDICTION],
        scores: array![[0.5, 0.5]],
    };
    println!(
        "one key, two columns: {}",
        continuous_response(&wrong).unwrap_err()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    // Apache's compiler makes these from thrift/*.thrift when the example's tests build.
    use bpr_thrift_gen::prediction_service::BatchPredictionResponse;
    use bpr_thrift_gen::tensor::{DataType, GeneralTensor};
    use thrift::protocol::{TBinaryInputProtocol, TSerializable};

    /// Decoded by Apache Thrift's generated code, as a consumer would.
    fn apache_decode(bytes: &[u8]) -> BatchPredictionResponse {
        let mut reader = bytes;
        let mut p = TBinaryInputProtocol::new(&mut reader, true);
        let response = BatchPredictionResponse::read_from_in_protocol(&mut p).unwrap();
        assert!(reader.is_empty(), "bytes left after the response");
        response
    }

    #[test]
    fn continuous_response_decodes_with_apache_thrift() {
        // A transposed (column-major) view, as a runtime might hand it over.
        let batch = Scores {
            keys: vec![PREDICTION, P_LIKE],
            scores: array![[0.91f32, 0.35, 0.05], [0.12, 0.80, 0.44]].reversed_axes(),
        };
        let response = apache_decode(&continuous_response(&batch).unwrap());
        assert_eq!(response.predictions.len(), 3);
        for (record, row) in response.predictions.iter().zip(batch.scores.rows()) {
            let map = record.continuous_features.as_ref().unwrap();
            assert_eq!(map.len(), 2);
            assert_eq!(map[&PREDICTION].0, f64::from(row[0]));
            assert_eq!(map[&P_LIKE].0, f64::from(row[1]));
        }
    }

    #[test]
    fn tensor_response_decodes_with_apache_thrift() {
        let embeddings = array![[0.1f32, 0.2, 0.3], [0.4, 0.5, 0.6]];
        let response = apache_decode(&tensor_response(&embeddings, &["spam", "ham"]).unwrap());
        for (i, record) in response.predictions.iter().enumerate() {
            let tensors = record.tensors.as_ref().unwrap();
            let GeneralTensor::RawTypedTensor(raw) = &tensors[&EMBEDDING] else {
                panic!("embedding is not a rawTypedTensor")
            };
            assert_eq!(raw.data_type, DataType::FLOAT);
            assert_eq!(raw.shape, Some(vec![3]));
            let floats: Vec<f32> = raw
                .content
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                .collect();
            assert_eq!(floats, embeddings.row(i).to_vec());
            let GeneralTensor::StringTensor(label) = &tensors[&LABEL] else {
                panic!("label is not a stringTensor")
            };
            assert_eq!(label.strings, vec![["spam", "ham"][i].to_string()]);
        }
    }
}
