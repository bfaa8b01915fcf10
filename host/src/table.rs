//! Prints decoded records (bpr_protocol::decode) as a table: one row per feature.

use std::collections::HashMap;
use std::fmt::Write as _;

use bpr_protocol::decode::{GeneralTensor, Record, SparseTensor};
use bpr_protocol::wire::data_type;

/// Names of the Thrift `DataType` values (thrift/tensor.thrift), by code.
const DTYPES: [&str; 8] = [
    "FLOAT", "DOUBLE", "INT32", "INT64", "UINT8", "STRING", "BYTE", "BOOL",
];

fn dtype_name(code: i32) -> String {
    usize::try_from(code)
        .ok()
        .and_then(|i| DTYPES.get(i))
        .map_or_else(|| format!("dtype {code}"), |s| s.to_string())
}

/// The elements of a rawTypedTensor's little-endian content, as text.
fn raw_values(dtype: i32, content: &[u8]) -> Vec<String> {
    fn each<const N: usize>(c: &[u8], f: impl Fn([u8; N]) -> String) -> Vec<String> {
        c.chunks_exact(N)
            .map(|b| f(b.try_into().expect("chunks_exact gives N bytes")))
            .collect()
    }
    match dtype {
        data_type::FLOAT => each(content, |b| f32::from_le_bytes(b).to_string()),
        data_type::DOUBLE => each(content, |b| f64::from_le_bytes(b).to_string()),
        data_type::INT32 => each(content, |b| i32::from_le_bytes(b).to_string()),
        data_type::INT64 => each(content, |b| i64::from_le_bytes(b).to_string()),
        data_type::UINT8 => each(content, |b: [u8; 1]| b[0].to_string()),
        data_type::BYTE => each(content, |b: [u8; 1]| (b[0] as i8).to_string()),
        data_type::BOOL => each(content, |b: [u8; 1]| (b[0] != 0).to_string()),
        _ => vec![format!("<{} bytes>", content.len())],
    }
}

fn list<T: ToString>(items: &[T]) -> String {
    const MAX: usize = 12;
    let mut s = items
        .iter()
        .take(MAX)
        .map(T::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    if items.len() > MAX {
        let _ = write!(s, ", ... ({} in all)", items.len());
    }
    format!("[{s}]")
}

fn text(bytes: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(bytes))
}

fn shape(s: &Option<Vec<i64>>) -> String {
    s.as_ref().map_or_else(|| "-".into(), |s| format!("{s:?}"))
}

/// (dtype, shape, value) of a GeneralTensor.
fn tensor(t: &GeneralTensor) -> (String, String, String) {
    let texts = |v: &[Vec<u8>]| v.iter().map(|b| text(b)).collect::<Vec<_>>();
    match t {
        GeneralTensor::Raw {
            data_type,
            content,
            shape: s,
        } => (
            dtype_name(*data_type),
            shape(s),
            list(&raw_values(*data_type, content)),
        ),
        GeneralTensor::Strings(v, s) => ("STRING".into(), shape(s), list(&texts(v))),
        GeneralTensor::Binary(v, s) => ("binary".into(), shape(s), list(&texts(v))),
        GeneralTensor::Int32(v, s) => ("int32".into(), shape(s), list(v)),
        GeneralTensor::Int64(v, s) => ("int64".into(), shape(s), list(v)),
        GeneralTensor::Float(v, s) => ("float".into(), shape(s), list(v)),
        GeneralTensor::Double(v, s) => ("double".into(), shape(s), list(v)),
        GeneralTensor::Bool(v, s) => ("bool".into(), shape(s), list(v)),
        // The enum is non_exhaustive: a variant a newer bpr-protocol decodes.
        other => ("?".into(), "-".into(), format!("{other:?}")),
    }
}

/// A COO tensor's indices as one `[i, j, ...]` per value (TensorFlow's
/// `[n, rank]`, as bpr-decode shows them), from the wire's `[rank, n]`:
/// row d holds each value's index along dimension d. None when they are not
/// integers or not `rank` rows (shown as they came instead).
fn coo_indices(indices: &GeneralTensor, rank: usize) -> Option<String> {
    let flat: Vec<i64> = match indices {
        GeneralTensor::Int64(v, _) => v.clone(),
        GeneralTensor::Int32(v, _) => v.iter().map(|&x| i64::from(x)).collect(),
        GeneralTensor::Raw {
            data_type: data_type::INT64,
            content,
            ..
        } if content.len().is_multiple_of(8) => content
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes(b.try_into().expect("chunks_exact gives 8 bytes")))
            .collect(),
        _ => return None,
    };
    if rank == 0 || !flat.len().is_multiple_of(rank) {
        return None;
    }
    let n = flat.len() / rank;
    let points: Vec<String> = (0..n)
        .map(|j| {
            format!(
                "{:?}",
                (0..rank).map(|d| flat[d * n + j]).collect::<Vec<_>>()
            )
        })
        .collect();
    Some(list(&points))
}

/// One row per feature: record, key, kind, dtype, shape, value(s). A key in
/// `names` (feature id -> name, from --names) is shown as its name.
pub fn table(records: &[Record], names: &HashMap<i64, String>) -> String {
    let mut rows = vec![["record", "key", "kind", "dtype", "shape", "value"].map(String::from)];
    for (i, r) in records.iter().enumerate() {
        let mut row = |key: i64, kind: &str, dtype: String, shape: String, value: String| {
            rows.push([
                i.to_string(),
                names.get(&key).cloned().unwrap_or_else(|| key.to_string()),
                kind.into(),
                dtype,
                shape,
                value,
            ]);
        };
        let none = || "-".to_string();
        for &key in &r.binary {
            row(key, "binary", none(), none(), "true".into());
        }
        for &(key, v) in &r.continuous {
            row(key, "continuous", "DOUBLE".into(), none(), v.to_string());
        }
        for &(key, v) in &r.discrete {
            row(key, "discrete", "i64".into(), none(), v.to_string());
        }
        for (key, v) in &r.strings {
            row(*key, "string", "string".into(), none(), text(v));
        }
        for (key, v) in &r.sparse_binary {
            let v: Vec<String> = v.iter().map(|b| text(b)).collect();
            row(
                *key,
                "sparse binary",
                "set<string>".into(),
                none(),
                list(&v),
            );
        }
        for (key, v) in &r.sparse_continuous {
            let v: Vec<String> = v.iter().map(|(n, x)| format!("{}: {x}", text(n))).collect();
            row(
                *key,
                "sparse continuous",
                "map<string, double>".into(),
                none(),
                list(&v),
            );
        }
        for (key, v) in &r.blobs {
            row(
                *key,
                "blob",
                "binary".into(),
                none(),
                format!("<{} bytes>", v.len()),
            );
        }
        for (key, t) in &r.tensors {
            let (dtype, shape, value) = tensor(t);
            row(*key, "tensor", dtype, shape, value);
        }
        for (key, t) in &r.sparse_tensors {
            let SparseTensor::Coo {
                dense_shape,
                indices,
                values,
            } = t
            else {
                // The enum is non_exhaustive: a variant a newer bpr-protocol decodes.
                row(
                    *key,
                    "sparse tensor",
                    "?".into(),
                    "-".into(),
                    format!("{t:?}"),
                );
                continue;
            };
            let (dtype, _, value) = tensor(values);
            let at = coo_indices(indices, dense_shape.len()).unwrap_or_else(|| tensor(indices).2);
            row(
                *key,
                "sparse tensor",
                dtype,
                format!("{dense_shape:?}"),
                format!("{value} at {at}"),
            );
        }
    }
    let mut widths = [0usize; 6];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let mut line = String::new();
        for (j, (cell, w)) in row.iter().zip(widths).enumerate() {
            if j + 1 == row.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<w$}  ");
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coo_indices_are_shown_one_point_per_value() {
        // two values of a [2, 5] tensor at (0, 1) and (1, 4): the wire's rows
        // are dimension 0 [0, 1] then dimension 1 [1, 4]
        let wire = GeneralTensor::Int64(vec![0, 1, 1, 4], Some(vec![2, 2]));
        assert_eq!(coo_indices(&wire, 2).unwrap(), "[[0, 1], [1, 4]]");
        let raw = GeneralTensor::Raw {
            data_type: data_type::INT64,
            content: [3i64, 7].iter().flat_map(|x| x.to_le_bytes()).collect(),
            shape: None,
        };
        assert_eq!(coo_indices(&raw, 1).unwrap(), "[[3], [7]]");
        assert_eq!(coo_indices(&wire, 3), None); // 4 is not 3 rows
        assert_eq!(coo_indices(&GeneralTensor::Float(vec![1.0], None), 1), None);
    }
}
