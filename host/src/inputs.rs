//! The batch as tensors: each batch read from --input (`batch`: .npy, JSON,
//! .bin files and directories of them) paired with one signature input and
//! checked against its dtype and static shape, as early as load time.

use std::collections::BTreeMap;
use std::path::PathBuf;

use tensorflow::{Tensor, TensorInfo, TensorType};

use crate::batch::{self, Batch, Dtype, Typed, Values};
use crate::bytes::Bytes;
use crate::one_line;

/// A tensor of any element type the host feeds.
pub(crate) enum Feed {
    F16(Tensor<half::f16>),
    F32(Tensor<f32>),
    F64(Tensor<f64>),
    I32(Tensor<i32>),
    I64(Tensor<i64>),
    U8(Tensor<u8>),
    Bool(Tensor<bool>),
    Str(Tensor<Bytes>),
}

fn tensor<T: TensorType>(shape: &[u64], values: &[T]) -> Result<Tensor<T>, String> {
    Tensor::new(shape)
        .with_values(values)
        .map_err(|e| one_line(&e.to_string()))
}

/// The signature input's static dims (None: unknown rank; -1 or None: unknown dim).
fn signature_dims(info: &TensorInfo) -> Option<Vec<Option<i64>>> {
    let shape = info.shape();
    let rank = shape.dims()?;
    Some((0..rank).map(|i| shape[i]).collect())
}

fn dims_text(dims: &[Option<i64>]) -> String {
    let want: Vec<String> = dims
        .iter()
        .map(|d| {
            d.filter(|&d| d >= 0)
                .map_or("None".into(), |d| d.to_string())
        })
        .collect();
    format!("[{}]", want.join(", "))
}

/// Feeds whole files (serialized requests): a string input gets one element
/// per file, a uint8 input the bytes of its one file.
fn feed_messages(
    name: &str,
    info: &TensorInfo,
    batch: &Batch,
    messages: &[Vec<u8>],
    want: Dtype,
) -> Result<Feed, String> {
    let dims = signature_dims(info);
    let src = &batch.source;
    let fits = |shape: &[u64]| {
        dims.as_ref().is_none_or(|d| {
            d.len() == shape.len()
                && d.iter()
                    .zip(shape)
                    .all(|(d, &b)| d.is_none_or(|d| d < 0 || d as u64 == b))
        })
    };
    let wanted = || dims.as_deref().map_or("<unknown>".into(), dims_text);
    match want {
        Dtype::Str => {
            let n = messages.len() as u64;
            let shape: Vec<u64> = if dims.as_ref().is_some_and(|d| d.is_empty()) && n == 1 {
                vec![]
            } else {
                vec![n]
            };
            if !fits(&shape) {
                return Err(format!(
                    "input {src} has {n} serialized requests (shape {shape:?}), but signature                      input '{name}' wants shape {}",
                    wanted()
                ));
            }
            let elements: Vec<Bytes> = messages.iter().map(|m| Bytes(m.clone())).collect();
            Ok(Feed::Str(tensor(&shape, &elements)?))
        }
        Dtype::U8 => {
            let [one] = messages else {
                return Err(format!(
                    "input {src} has {} files, but signature input '{name}' is uint8: one                      request's bytes; several requests need a string input",
                    messages.len()
                ));
            };
            let shape = [one.len() as u64];
            if !fits(&shape) {
                return Err(format!(
                    "input {src} has shape {shape:?}, but signature input '{name}' wants shape {}",
                    wanted()
                ));
            }
            Ok(Feed::U8(tensor(&shape, one)?))
        }
        other => Err(format!(
            "input {src} holds serialized requests (.bin), but signature input '{name}' wants              {other}"
        )),
    }
}

/// Checks `batch` against the signature input `name` and makes its tensor.
pub(crate) fn feed(name: &str, info: &TensorInfo, batch: &Batch) -> Result<Feed, String> {
    let want = Dtype::of(info.dtype()).ok_or_else(|| {
        format!(
            "signature input '{name}' has dtype {}, which bpr-host cannot feed",
            info.dtype()
        )
    })?;
    if let Values::Messages(messages) = &batch.values {
        return feed_messages(name, info, batch, messages, want);
    }
    if want == Dtype::Str {
        return Err(format!(
            "signature input '{name}' is string (serialized requests): give a .bin file, a              directory of them, or NAME=FILE.bin more than once, not {}",
            batch.source
        ));
    }
    let shape = info.shape();
    if let Some(rank) = shape.dims() {
        let dims: Vec<Option<i64>> = (0..rank).map(|i| shape[i]).collect();
        let fits = dims.len() == batch.shape.len()
            && dims
                .iter()
                .zip(&batch.shape)
                .all(|(d, &b)| d.is_none_or(|d| d < 0 || d as u64 == b));
        if !fits {
            let want: Vec<String> = dims
                .iter()
                .map(|d| {
                    d.filter(|&d| d >= 0)
                        .map_or("None".into(), |d| d.to_string())
                })
                .collect();
            return Err(format!(
                "input {} has shape {:?}, but signature input '{name}' wants shape [{}]",
                batch.source,
                batch.shape,
                want.join(", ")
            ));
        }
    }
    let s = &batch.shape;
    match &batch.values {
        Values::Npy(data) => {
            let got = data.dtype();
            if got != want {
                return Err(format!(
                    "input {} has dtype {got}, but signature input '{name}' wants {want}",
                    batch.source
                ));
            }
            Ok(match data {
                Typed::F16(v) => Feed::F16(tensor(s, v)?),
                Typed::F32(v) => Feed::F32(tensor(s, v)?),
                Typed::F64(v) => Feed::F64(tensor(s, v)?),
                Typed::I32(v) => Feed::I32(tensor(s, v)?),
                Typed::I64(v) => Feed::I64(tensor(s, v)?),
                Typed::U8(v) => Feed::U8(tensor(s, v)?),
                Typed::Bool(v) => Feed::Bool(tensor(s, v)?),
            })
        }
        Values::Messages(_) => unreachable!("fed above"),
        Values::Json(values) => {
            let src = &batch.source;
            let int = |lo: i64, hi: i64| {
                move |v: &serde_json::Value| v.as_i64().filter(|x| (lo..=hi).contains(x))
            };
            Ok(match want {
                Dtype::F16 => Feed::F16(tensor(
                    s,
                    &batch::json_to(values, src, want, |v| v.as_f64().map(half::f16::from_f64))?,
                )?),
                Dtype::F32 => Feed::F32(tensor(
                    s,
                    &batch::json_to(values, src, want, |v| v.as_f64().map(|x| x as f32))?,
                )?),
                Dtype::F64 => Feed::F64(tensor(
                    s,
                    &batch::json_to(values, src, want, batch::parse_json_f64)?,
                )?),
                Dtype::I32 => Feed::I32(tensor(
                    s,
                    &batch::json_to(values, src, want, |v| {
                        int(i32::MIN.into(), i32::MAX.into())(v).map(|x| x as i32)
                    })?,
                )?),
                Dtype::I64 => Feed::I64(tensor(
                    s,
                    &batch::json_to(values, src, want, batch::parse_json_i64)?,
                )?),
                Dtype::U8 => Feed::U8(tensor(
                    s,
                    &batch::json_to(values, src, want, |v| int(0, 255)(v).map(|x| x as u8))?,
                )?),
                Dtype::Bool => Feed::Bool(tensor(
                    s,
                    &batch::json_to(values, src, want, serde_json::Value::as_bool)?,
                )?),
                Dtype::Str => unreachable!("refused above"),
            })
        }
    }
}

/// Pairs every signature input with exactly one batch.
pub(crate) fn match_inputs(
    wanted: &std::collections::HashMap<String, TensorInfo>,
    files: &[(Option<String>, PathBuf)],
) -> Result<batch::Named, String> {
    let mut names: Vec<&String> = wanted.keys().collect();
    names.sort();
    let listed = names
        .iter()
        .map(|n| format!("'{n}'"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut out: BTreeMap<String, Batch> = BTreeMap::new();
    for (given, path) in files {
        for (inner, batch) in batch::read(path)? {
            let name = match (given, inner) {
                (Some(_), Some(_)) => {
                    return Err(format!(
                        "input {}: NAME=FILE takes a .npy or a JSON nested list, not a JSON object",
                        path.display()
                    ))
                }
                (Some(n), None) => n.clone(),
                (None, Some(n)) => n,
                (None, None) if names.len() == 1 => names[0].clone(),
                (None, None) => {
                    return Err(format!(
                        "the signature has inputs {listed}: name each, --input NAME=FILE"
                    ))
                }
            };
            if !wanted.contains_key(&name) {
                return Err(format!(
                    "the signature has no input '{name}' (its inputs: {listed})"
                ));
            }
            match out.get_mut(&name) {
                // Files of serialized requests for one input: one string batch.
                Some(first) if matches!(first.values, Values::Messages(_)) => {
                    first.extend(batch)?
                }
                Some(_) => return Err(format!("input '{name}' is given twice")),
                None => {
                    out.insert(name.clone(), batch);
                }
            }
        }
    }
    if let Some(missing) = names.iter().find(|n| !out.contains_key(n.as_str())) {
        return Err(format!(
            "no batch for signature input '{missing}' (its inputs: {listed})"
        ));
    }
    Ok(out)
}
