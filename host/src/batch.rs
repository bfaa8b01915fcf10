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
    /// Serialized requests, one per element (binary-safe: `bytes::Bytes`).
    Str,
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
            DataType::String => Dtype::Str,
            _ => return None,
        })
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
            Dtype::Str => "string",
        })
    }
}

/// The elements of a `.npy` array, row-major.
pub enum Typed {
    F16(Vec<half::f16>),
    F32(Vec<f32>),
    F64(Vec<f64>),
    I32(Vec<i32>),
    I64(Vec<i64>),
    U8(Vec<u8>),
    Bool(Vec<bool>),
}

impl Typed {
    pub fn dtype(&self) -> Dtype {
        match self {
            Typed::F16(_) => Dtype::F16,
            Typed::F32(_) => Dtype::F32,
            Typed::F64(_) => Dtype::F64,
            Typed::I32(_) => Dtype::I32,
            Typed::I64(_) => Dtype::I64,
            Typed::U8(_) => Dtype::U8,
            Typed::Bool(_) => Dtype::Bool,
        }
    }
}

/// The values of one input, row-major.
pub enum Values {
    /// A `.npy` array, read by `npyz`.
    Npy(Typed),
    /// JSON scalars (numbers or booleans), converted once the dtype is known.
    Json(Vec<Value>),
    /// Whole files, each one message (a serialized request): a `.bin` file,
    /// or every `.bin` file of a directory. Fed as a string tensor [N], one
    /// element per file, or, for a uint8 input, one file as its bytes.
    Messages(Vec<Vec<u8>>),
}

pub struct Batch {
    pub source: String,
    pub shape: Vec<u64>,
    pub values: Values,
}

/// Reads `path`: `.npy` gives one unnamed input; `.json` gives one unnamed
/// input (a nested list) or named inputs (an object of nested lists); `.bin`
/// gives its raw bytes as a uint8 vector (a serialized request, for a model
/// whose serving input is request bytes).
pub fn read(path: &Path) -> Result<Vec<(Option<String>, Batch)>, String> {
    if path.is_dir() {
        return Ok(vec![(None, read_dir(path)?)]);
    }
    let bytes =
        std::fs::read(path).map_err(|e| format!("cannot read input {}: {e}", path.display()))?;
    let source = path.display().to_string();
    let is_json = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    let is_bin = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("bin"));
    if is_json {
        read_json(&bytes, &source)
    } else if is_bin {
        let shape = vec![1];
        let values = Values::Messages(vec![bytes]);
        Ok(vec![(
            None,
            Batch {
                source,
                shape,
                values,
            },
        )])
    } else if bytes.starts_with(b"\x93NUMPY") {
        Ok(vec![(None, read_npy(&bytes, &source)?)])
    } else {
        Err(format!(
            "input {source} is neither a .npy file (no \\x93NUMPY magic), a .json file nor a .bin file"
        ))
    }
}

/// Every `.bin` file of `dir`, in name order: one message each.
fn read_dir(dir: &Path) -> Result<Batch, String> {
    let source = dir.display().to_string();
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot read input directory {source}: {e}"))?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|e| format!("cannot read input directory {source}: {e}"))?
            .path();
        if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("bin"))
        {
            files.push(path);
        }
    }
    if files.is_empty() {
        return Err(format!(
            "input directory {source} has no .bin files (one serialized request each)"
        ));
    }
    files.sort();
    let messages = files
        .iter()
        .map(|f| std::fs::read(f).map_err(|e| format!("cannot read input {}: {e}", f.display())))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Batch {
        source,
        shape: vec![messages.len() as u64],
        values: Values::Messages(messages),
    })
}

impl Batch {
    /// Appends another batch of messages (the same input given again).
    pub fn extend(&mut self, other: Batch) -> Result<(), String> {
        match (&mut self.values, other.values) {
            (Values::Messages(a), Values::Messages(b)) => {
                a.extend(b);
                self.shape = vec![a.len() as u64];
                self.source = format!("{} + {}", self.source, other.source);
                Ok(())
            }
            _ => Err(format!(
                "{} and {}: only .bin files and directories of them may be given for one input",
                self.source, other.source
            )),
        }
    }
}

fn read_npy(bytes: &[u8], source: &str) -> Result<Batch, String> {
    let bad = |why: &dyn fmt::Display| {
        format!("input {source} is not a valid .npy file: {}", one_line(why))
    };
    let npy = npyz::NpyFile::new(bytes).map_err(|e| bad(&e))?;
    if npy.order() == npyz::Order::Fortran {
        return Err(format!(
            "input {source} is in Fortran order; save it C-contiguous (np.ascontiguousarray)"
        ));
    }
    let shape = npy.shape().to_vec();
    let descr = match npy.dtype() {
        npyz::DType::Plain(type_str) => type_str.to_string(),
        other => other.descr(),
    };
    // The element types a model's inputs take, little-endian ('|' for one byte).
    let values = match descr.as_str() {
        "<f2" => Typed::F16(npy.into_vec().map_err(|e| bad(&e))?),
        "<f4" => Typed::F32(npy.into_vec().map_err(|e| bad(&e))?),
        "<f8" => Typed::F64(npy.into_vec().map_err(|e| bad(&e))?),
        "<i4" => Typed::I32(npy.into_vec().map_err(|e| bad(&e))?),
        "<i8" => Typed::I64(npy.into_vec().map_err(|e| bad(&e))?),
        "|u1" => Typed::U8(npy.into_vec().map_err(|e| bad(&e))?),
        "|b1" => Typed::Bool(npy.into_vec().map_err(|e| bad(&e))?),
        // No .npy holds requests safely: an S array drops trailing NULs, and
        // every request ends with a STOP byte (0), often two; a U array holds
        // text, not bytes; an O array is a pickle (runs code when read).
        d if d.starts_with("|S")
            || d.starts_with("|O")
            || d.get(1..).is_some_and(|r| r.starts_with('U')) =>
        {
            return Err(format!(
                "input {source} has dtype '{descr}': NumPy bytes arrays pad with NULs (a request's \
                 trailing STOP byte is lost), str arrays hold text and object arrays are pickles; \
                 give the requests as .bin files instead, one serialized request each \
                 (Path(f\"requests/{{i:05d}}.bin\").write_bytes(request) in Python): a directory \
                 of them, or --input NAME=FILE.bin repeated"
            ))
        }
        _ => {
            return Err(format!(
                "input {source} has dtype '{descr}'; supported: float16, float32, float64, int32, \
                 int64, uint8, bool (little-endian)"
            ))
        }
    };
    Ok(Batch {
        source: source.to_string(),
        shape,
        values: Values::Npy(values),
    })
}

/// Library errors may span lines; every error of bpr-host is one line.
fn one_line(e: &dyn fmt::Display) -> String {
    e.to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
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
