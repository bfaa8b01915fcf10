//! `--navi`: one batch served the way Twitter's navi serves a TensorFlow
//! model, so that an export can be held to navi's contract without navi.
//!
//! What navi does (navi/navi/src/tf_model.rs, `do_predict` and
//! `fetch_output`), reproduced here on the same `tensorflow` crate:
//! - each caller's PredictRequest is one row: with one model input, the
//!   callers' tensors are concatenated into one 1-D tensor (so a caller must
//!   send exactly one serialized request), and the model runs once; the
//!   bytes go in unchanged (navi makes `String`s of them unchecked; here
//!   `bytes::Bytes` puts the same bytes in the tensor without that);
//! - every output's row width is read from `dims()[1]` (the product of all
//!   dims when one caller is served and the model has several outputs), so an
//!   output of rank < 2 makes navi panic (`index out of bounds: the len is 1
//!   but the index is 1`); caller i gets the flat elements
//!   `i * width .. (i + 1) * width`;
//! - outputs are fetched as `f32`, `i64`, `i32` or the crate's `String`,
//!   which decodes each element as UTF-8 (raw response bytes fail:
//!   `String contained invalid UTF-8`); any other dtype panics.
//!
//! Where navi panics or would hand a caller another caller's elements, this
//! says so in one line instead. It writes what each caller gets as JSON.

use std::collections::HashMap;
use std::path::Path;

use tensorflow::{DataType, FetchToken, SessionRunArgs, Tensor, TensorType};

/// One output's elements for every caller.
pub enum Elements {
    F32(Vec<f32>),
    I64(Vec<i64>),
    I32(Vec<i32>),
    Str(Vec<String>),
}

impl Elements {
    fn json(&self, range: std::ops::Range<usize>) -> serde_json::Value {
        match self {
            Elements::F32(v) => {
                serde_json::json!(v[range].iter().map(|&x| f64::from(x)).collect::<Vec<_>>())
            }
            Elements::I64(v) => serde_json::json!(v[range]),
            Elements::I32(v) => serde_json::json!(v[range]),
            Elements::Str(v) => serde_json::json!(v[range]),
        }
    }

    fn dtype(&self) -> &'static str {
        match self {
            Elements::F32(_) => "float32",
            Elements::I64(_) => "int64",
            Elements::I32(_) => "int32",
            Elements::Str(_) => "string",
        }
    }
}

/// One output as navi splits it: its elements and every caller's width.
pub struct Split {
    pub name: String,
    pub shape: Vec<u64>,
    pub width: usize,
    pub elements: Elements,
}

fn fetch<T: TensorType>(
    step: &mut SessionRunArgs,
    token: FetchToken,
    name: &str,
) -> Result<Tensor<T>, String> {
    step.fetch::<T>(token).map_err(|e| {
        format!(
            "navi fails on output '{name}' (its fetch panics: \"fetch output failed: {}\")",
            super::one_line(&e.to_string())
        )
    })
}

/// The width navi reads for an output (`fetch_output`), checked against what
/// it then hands out.
fn width(
    name: &str,
    dims: &[u64],
    callers: usize,
    outputs: usize,
    len: usize,
) -> Result<usize, String> {
    if dims.len() < 2 {
        return Err(format!(
            "navi cannot serve output '{name}' of shape {dims:?}: it reads each output's width \
             from dims()[1] and panics on a tensor of rank {} (\"index out of bounds: the len is \
             {} but the index is 1\"); every output must be 2-D [rows, width], e.g. string [R, 1] \
             (the `navi` signature of bpr_ops.export_for_serving)",
            dims.len(),
            dims.len()
        ));
    }
    let width = if callers == 1 && outputs > 1 {
        dims.iter().product::<u64>()
    } else {
        dims[1]
    } as usize;
    if width.checked_mul(callers) != Some(len) {
        return Err(format!(
            "navi would hand out output '{name}' of shape {dims:?} wrongly: {callers} callers \
             (one row each) of width {width} need {} elements, and it has {len}; the output must \
             have one row per caller (per request)",
            width.saturating_mul(callers)
        ));
    }
    Ok(width)
}

/// Fetches every output as navi does and splits it by caller. In navi's
/// order: the width from the dims first, then the elements (a string
/// tensor's are decoded only when read, so rank 1 fails before UTF-8 does).
pub fn split(
    step: &mut SessionRunArgs,
    outputs: &[(String, FetchToken, DataType)],
    callers: usize,
) -> Result<Vec<Split>, String> {
    let mut out = Vec::new();
    for (name, token, dtype) in outputs {
        let count = |dims: &[u64]| dims.iter().product::<u64>() as usize;
        let widths = |dims: &[u64]| width(name, dims, callers, outputs.len(), count(dims));
        let (shape, width, elements) = match dtype {
            DataType::Float => {
                let t = fetch::<f32>(step, *token, name)?;
                (
                    t.dims().to_vec(),
                    widths(t.dims())?,
                    Elements::F32(t.to_vec()),
                )
            }
            DataType::Int64 => {
                let t = fetch::<i64>(step, *token, name)?;
                (
                    t.dims().to_vec(),
                    widths(t.dims())?,
                    Elements::I64(t.to_vec()),
                )
            }
            DataType::Int32 => {
                let t = fetch::<i32>(step, *token, name)?;
                (
                    t.dims().to_vec(),
                    widths(t.dims())?,
                    Elements::I32(t.to_vec()),
                )
            }
            DataType::String => {
                let t = fetch::<String>(step, *token, name)?;
                let width = widths(t.dims())?;
                (t.dims().to_vec(), width, Elements::Str(strings(&t, name)?))
            }
            other => {
                return Err(format!(
                    "navi cannot return output '{name}' of dtype {other} (it returns float, \
                     int64, int32 and string outputs and panics on others: \"Unsupported return \
                     type!\"); a uint8 response must be exported as base64 text (the `navi` \
                     signature of bpr_ops.export_for_serving)"
                ))
            }
        };
        out.push(Split {
            name: name.clone(),
            shape,
            width,
            elements,
        });
    }
    Ok(out)
}

/// The elements of a string output, read as navi reads them: the crate's
/// `String` decodes them as UTF-8 on first access and panics on bytes that
/// are not (`unwrap` inside the crate). That panic is navi's failure, caught
/// here to be reported as one line; its default message is silenced.
fn strings(t: &Tensor<String>, name: &str) -> Result<Vec<String>, String> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let read = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| t.to_vec()));
    std::panic::set_hook(hook);
    read.map_err(|panic| {
        let message = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        format!(
            "navi fails on output '{name}': reading it as the tensorflow crate's String panics \
             ({}); navi decodes string outputs as UTF-8, so raw response bytes cannot be one: \
             export the `navi` signature (bpr_ops.export_for_serving), whose responses are base64",
            super::one_line(&message)
        )
    })
}

/// What caller `i` gets: {output name: {"dtype", "values"}}.
pub fn caller_json(splits: &[Split], i: usize) -> serde_json::Value {
    let mut outputs = serde_json::Map::new();
    for s in splits {
        outputs.insert(
            s.name.clone(),
            serde_json::json!({
                "dtype": s.elements.dtype(),
                "values": s.elements.json(i * s.width..(i + 1) * s.width),
            }),
        );
    }
    serde_json::json!({ "caller": i, "outputs": outputs })
}

/// Writes `caller-NNNNN.json` per caller into `dir`.
pub fn write(dir: &Path, splits: &[Split], callers: usize) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    for i in 0..callers {
        let path = dir.join(format!("caller-{i:05}.json"));
        let text = serde_json::to_string_pretty(&caller_json(splits, i)).expect("JSON of values");
        std::fs::write(&path, text + "\n")
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}

/// Prints each caller's rows; a string element that is the base64 of a
/// BatchPredictionResponse is shown as its records.
pub fn print(splits: &[Split], callers: usize, names: &HashMap<i64, String>) -> Result<(), String> {
    let shapes: Vec<String> = splits
        .iter()
        .map(|s| format!("'{}' {:?} width {}", s.name, s.shape, s.width))
        .collect();
    println!(
        "{callers} callers, one row each, as navi splits them (outputs: {})",
        shapes.join(", ")
    );
    for i in 0..callers {
        for s in splits {
            let range = i * s.width..(i + 1) * s.width;
            match &s.elements {
                Elements::Str(v) => {
                    for (j, text) in v[range].iter().enumerate() {
                        let bytes = base64_decode(text).map_err(|e| {
                            format!("caller {i}: output '{}'[{j}] is not base64: {e}", s.name)
                        })?;
                        let records =
                            bpr_protocol::decode::decode_response(&bytes).map_err(|e| {
                                format!(
                                    "caller {i}: output '{}'[{j}] is not the base64 of a \
                                     BatchPredictionResponse: {e}",
                                    s.name
                                )
                            })?;
                        println!(
                            "caller {i}: '{}' {} records, {} base64 characters, {} bytes",
                            s.name,
                            records.len(),
                            text.len(),
                            bytes.len()
                        );
                        print!("{}", super::table::table(&records, names));
                    }
                }
                other => println!("caller {i}: '{}' {}", s.name, other.json(range)),
            }
        }
    }
    Ok(())
}

/// Base64 with either alphabet (web-safe `-_`, as `tf.io.encode_base64`
/// writes, or standard `+/`), padding optional.
pub fn base64_decode(text: &str) -> Result<Vec<u8>, String> {
    let text = text.trim_end_matches('=');
    if text.len() % 4 == 1 {
        return Err(format!(
            "{} characters cannot be base64 (truncated?)",
            text.len()
        ));
    }
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for (at, c) in text.bytes().enumerate() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' | b'+' => 62,
            b'_' | b'/' => 63,
            _ => {
                return Err(format!(
                    "{:?} at character {at} is not base64",
                    char::from(c)
                ))
            }
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_reads_rfc_4648_vectors_padded_or_not_in_both_alphabets() {
        // RFC 4648 section 10.
        for (plain, coded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64_decode(coded).unwrap(), plain.as_bytes());
            assert_eq!(
                base64_decode(coded.trim_end_matches('=')).unwrap(),
                plain.as_bytes()
            );
        }
        assert_eq!(base64_decode("-_8").unwrap(), [0xfb, 0xff]);
        assert_eq!(base64_decode("+/8=").unwrap(), [0xfb, 0xff]);
        assert!(base64_decode("Zm9v!A")
            .unwrap_err()
            .contains("'!' at character 4"));
        assert!(base64_decode("Zm9vY").unwrap_err().contains("truncated"));
    }

    #[test]
    fn widths_are_navis_and_refuse_what_navi_gets_wrong() {
        // [R, 1]: one element per caller.
        assert_eq!(width("r", &[3, 1], 3, 1, 3), Ok(1));
        // One caller and several outputs: the whole tensor.
        assert_eq!(width("r", &[2, 3], 1, 2, 6), Ok(6));
        let rank1 = width("r", &[3], 3, 1, 3).unwrap_err();
        assert!(rank1.contains("the len is 1 but the index is 1"), "{rank1}");
        // twml's one response for the batch: one row, three callers.
        let one_row = width("r", &[1, 40], 3, 1, 40).unwrap_err();
        assert!(one_row.contains("3 callers"), "{one_row}");
    }
}
