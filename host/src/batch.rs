//! A batch read from a file: a NumPy `.npy` array (one input) or JSON (a
//! nested list for one input, or an object of nested lists by input name).

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde_json::Value;
use tensorflow::DataType;

/// The element types a batch can hold: those the writer ops take as
/// predictions, plus what a model may take before them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dtype {
    F16,
    F32,
    F64,
    I32,
    I64,
    U8,
    Bool,
}

impl Dtype {
    pub fn of(dtype: DataType) -> Option<Dtype> {
        Some(match dtype {
            DataType::Half => Dtype::F16,
            DataType::Float => Dtype::F32,
            DataType::Double => Dtype::F64,
            DataType::Int32 => Dtype::I32,
            DataType::Int64 => Dtype::I64,
            DataType::UInt8 => Dtype::U8,
            DataType::Bool => Dtype::Bool,
            _ => return None,
        })
    }

    fn from_npy(descr: &str) -> Option<Dtype> {
        // '<' little-endian, '|' not applicable, '=' native (little-endian on
        // the hosts we support).
        let (order, code) = descr.split_at(1);
        if !matches!(order, "<" | "|" | "=") {
            return None;
        }
        Some(match code {
            "f2" => Dtype::F16,
            "f4" => Dtype::F32,
            "f8" => Dtype::F64,
            "i4" => Dtype::I32,
            "i8" => Dtype::I64,
            "u1" => Dtype::U8,
            "b1" => Dtype::Bool,
            _ => return None,
        })
    }

    fn size(self) -> usize {
        match self {
            Dtype::U8 | Dtype::Bool => 1,
            Dtype::F16 => 2,
            Dtype::F32 | Dtype::I32 => 4,
            Dtype::F64 | Dtype::I64 => 8,
        }
    }
}

impl fmt::Display for Dtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Dtype::F16 => "float16",
            Dtype::F32 => "float32",
            Dtype::F64 => "float64",
            Dtype::I32 => "int32",
            Dtype::I64 => "int64",
            Dtype::U8 => "uint8",
            Dtype::Bool => "bool",
        })
    }
}

/// The values of one input, row-major.
pub enum Values {
    /// Little-endian bytes of `dtype` elements, as a .npy file holds them.
    Raw(Dtype, Vec<u8>),
    /// JSON scalars (numbers or booleans), converted once the dtype is known.
    Json(Vec<Value>),
}

pub struct Batch {
    pub source: String,
    pub shape: Vec<u64>,
    pub values: Values,
}

/// Reads `path`: `.npy` gives one unnamed input; `.json` gives one unnamed
/// input (a nested list) or named inputs (an object of nested lists).
pub fn read(path: &Path) -> Result<Vec<(Option<String>, Batch)>, String> {
    let bytes =
        std::fs::read(path).map_err(|e| format!("cannot read input {}: {e}", path.display()))?;
    let source = path.display().to_string();
    let is_json = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    if is_json {
        read_json(&bytes, &source)
    } else if bytes.starts_with(b"\x93NUMPY") {
        Ok(vec![(None, read_npy(&bytes, &source)?)])
    } else {
        Err(format!(
            "input {source} is neither a .npy file (no \\x93NUMPY magic) nor a .json file"
        ))
    }
}

fn read_npy(bytes: &[u8], source: &str) -> Result<Batch, String> {
    let bad = |why: &str| format!("input {source} is not a valid .npy file: {why}");
    let major = *bytes.get(6).ok_or_else(|| bad("truncated header"))?;
    let (len, start) = match major {
        1 => {
            let b = bytes.get(8..10).ok_or_else(|| bad("truncated header"))?;
            (u16::from_le_bytes([b[0], b[1]]) as usize, 10)
        }
        2 | 3 => {
            let b = bytes.get(8..12).ok_or_else(|| bad("truncated header"))?;
            (u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize, 12)
        }
        v => return Err(bad(&format!("unknown format version {v}"))),
    };
    let header = bytes
        .get(start..start + len)
        .ok_or_else(|| bad("truncated header"))?;
    let header = std::str::from_utf8(header).map_err(|_| bad("header is not text"))?;
    let descr = dict_value(header, "descr").ok_or_else(|| bad("no 'descr' in header"))?;
    let descr = descr.trim_matches(|c| c == '\'' || c == '"');
    let dtype = Dtype::from_npy(descr).ok_or_else(|| {
        format!(
            "input {source} has dtype '{descr}'; supported: float16, float32, float64, int32, \
             int64, uint8, bool (little-endian)"
        )
    })?;
    if dict_value(header, "fortran_order") == Some("True") {
        return Err(format!(
            "input {source} is in Fortran order; save it C-contiguous (np.ascontiguousarray)"
        ));
    }
    let shape_text = dict_value(header, "shape").ok_or_else(|| bad("no 'shape' in header"))?;
    let shape = shape_text
        .trim_matches(|c| c == '(' || c == ')')
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<u64>().map_err(|_| bad("bad shape")))
        .collect::<Result<Vec<u64>, String>>()?;
    let count = shape
        .iter()
        .try_fold(1u64, |n, &d| n.checked_mul(d))
        .ok_or_else(|| bad("shape overflows"))?;
    let data = &bytes[start + len..];
    let want = usize::try_from(count)
        .ok()
        .and_then(|n| n.checked_mul(dtype.size()))
        .ok_or_else(|| bad("shape overflows"))?;
    if data.len() != want {
        return Err(bad(&format!(
            "shape {shape:?} of {dtype} needs {want} data bytes, the file has {}",
            data.len()
        )));
    }
    Ok(Batch {
        source: source.to_string(),
        shape,
        values: Values::Raw(dtype, data.to_vec()),
    })
}

/// The text of `key`'s value in a .npy header (a Python dict literal).
fn dict_value<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let at = header
        .find(&format!("'{key}'"))
        .or_else(|| header.find(&format!("\"{key}\"")))?;
    let rest = header[at + key.len() + 2..]
        .trim_start()
        .strip_prefix(':')?;
    let rest = rest.trim_start();
    let end = if rest.starts_with('(') {
        rest.find(')')? + 1
    } else {
        rest.find([',', '}']).unwrap_or(rest.len())
    };
    Some(rest[..end].trim())
}

fn read_json(bytes: &[u8], source: &str) -> Result<Vec<(Option<String>, Batch)>, String> {
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| format!("input {source} is not valid JSON: {e}"))?;
    match value {
        Value::Object(map) => map
            .into_iter()
            .map(|(name, v)| {
                let batch = json_batch(v, &format!("{source} [{name}]"))?;
                Ok((Some(name), batch))
            })
            .collect(),
        v @ Value::Array(_) => Ok(vec![(None, json_batch(v, source)?)]),
        _ => Err(format!(
            "input {source} must hold a nested list, or an object of nested lists by input name"
        )),
    }
}

fn json_batch(value: Value, source: &str) -> Result<Batch, String> {
    let mut shape = Vec::new();
    let mut probe = &value;
    while let Value::Array(items) = probe {
        shape.push(items.len() as u64);
        match items.first() {
            Some(first) => probe = first,
            None => break,
        }
    }
    let mut flat = Vec::new();
    flatten(value, &shape, 0, &mut flat, source)?;
    Ok(Batch {
        source: source.to_string(),
        shape,
        values: Values::Json(flat),
    })
}

fn flatten(
    value: Value,
    shape: &[u64],
    depth: usize,
    out: &mut Vec<Value>,
    source: &str,
) -> Result<(), String> {
    match (value, shape.get(depth)) {
        (Value::Array(items), Some(&len)) if items.len() as u64 == len => {
            for item in items {
                flatten(item, shape, depth + 1, out, source)?;
            }
            Ok(())
        }
        (v @ (Value::Number(_) | Value::Bool(_)), None) => {
            out.push(v);
            Ok(())
        }
        _ => Err(format!(
            "input {source} is not a rectangular nested list of numbers (expected shape {shape:?})"
        )),
    }
}

/// Converts JSON scalars to `dtype`, refusing any that would change value.
pub fn json_to<T>(
    values: &[Value],
    source: &str,
    dtype: Dtype,
    f: impl Fn(&Value) -> Option<T>,
) -> Result<Vec<T>, String> {
    values
        .iter()
        .map(|v| f(v).ok_or_else(|| format!("input {source}: {v} is not a {dtype}")))
        .collect()
}

pub fn parse_json_i64(v: &Value) -> Option<i64> {
    v.as_i64()
}

pub fn parse_json_f64(v: &Value) -> Option<f64> {
    v.as_f64()
}

/// Keyed by signature input name, in name order.
pub type Named = BTreeMap<String, Batch>;
