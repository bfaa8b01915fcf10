//! Decodes the BatchPredictionResponse the writer ops emit (Thrift binary
//! protocol, see /work/shared/docs/wire-format.md and thrift/) into records
//! and prints them as a table. Fields the ops never write are skipped.

use std::fmt::Write as _;

const STOP: u8 = 0;
const BOOL: u8 = 2;
const BYTE: u8 = 3;
const DOUBLE: u8 = 4;
const I16: u8 = 6;
const I32: u8 = 8;
const I64: u8 = 10;
const STRING: u8 = 11;
const STRUCT: u8 = 12;
const MAP: u8 = 13;
const SET: u8 = 14;
const LIST: u8 = 15;

pub enum Feature {
    Continuous(f64),
    Raw {
        dtype: i32,
        content: Vec<u8>,
        shape: Vec<i64>,
    },
    Strings {
        strings: Vec<Vec<u8>>,
        shape: Vec<i64>,
    },
    /// A GeneralTensor variant the ops never write: its field id.
    OtherTensor(i16),
}

pub type Record = Vec<(i64, Feature)>;

struct Reader<'a> {
    data: &'a [u8],
    at: usize,
}

type R<T> = Result<T, String>;

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> R<&'a [u8]> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.data.len());
        let end = end.ok_or_else(|| format!("truncated at byte {} (wanted {n} more)", self.at))?;
        let s = &self.data[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u8(&mut self) -> R<u8> {
        Ok(self.take(1)?[0])
    }
    fn i16(&mut self) -> R<i16> {
        let b = self.take(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }
    fn i32(&mut self) -> R<i32> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn i64(&mut self) -> R<i64> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(i64::from_be_bytes(b))
    }
    fn f64(&mut self) -> R<f64> {
        Ok(f64::from_bits(self.i64()? as u64))
    }
    fn len(&mut self) -> R<usize> {
        let at = self.at;
        let n = self.i32()?;
        usize::try_from(n).map_err(|_| format!("negative length {n} at byte {at}"))
    }
    fn binary(&mut self) -> R<Vec<u8>> {
        let n = self.len()?;
        Ok(self.take(n)?.to_vec())
    }
    /// A field header: None at STOP.
    fn field(&mut self) -> R<Option<(u8, i16)>> {
        match self.u8()? {
            STOP => Ok(None),
            t => Ok(Some((t, self.i16()?))),
        }
    }
    fn expect(&mut self, got: u8, want: u8, what: &str) -> R<()> {
        if got == want {
            Ok(())
        } else {
            Err(format!(
                "{what} has type code {got}, expected {want} (before byte {})",
                self.at
            ))
        }
    }
    fn list_header(&mut self, elem: u8, what: &str) -> R<usize> {
        let t = self.u8()?;
        self.expect(t, elem, what)?;
        self.len()
    }
    fn i64_list(&mut self, what: &str) -> R<Vec<i64>> {
        let n = self.list_header(I64, what)?;
        (0..n).map(|_| self.i64()).collect()
    }
    fn skip(&mut self, t: u8, depth: usize) -> R<()> {
        if depth > 64 {
            return Err("nesting deeper than 64".into());
        }
        match t {
            BOOL | BYTE => self.take(1).map(drop),
            I16 => self.take(2).map(drop),
            I32 => self.take(4).map(drop),
            DOUBLE | I64 => self.take(8).map(drop),
            STRING => self.binary().map(drop),
            STRUCT => {
                while let Some((t, _)) = self.field()? {
                    self.skip(t, depth + 1)?;
                }
                Ok(())
            }
            MAP => {
                let (k, v) = (self.u8()?, self.u8()?);
                for _ in 0..self.len()? {
                    self.skip(k, depth + 1)?;
                    self.skip(v, depth + 1)?;
                }
                Ok(())
            }
            SET | LIST => {
                let e = self.u8()?;
                for _ in 0..self.len()? {
                    self.skip(e, depth + 1)?;
                }
                Ok(())
            }
            t => Err(format!("unknown type code {t} at byte {}", self.at)),
        }
    }
}

/// The records of a BatchPredictionResponse.
pub fn decode(data: &[u8]) -> Result<Vec<Record>, String> {
    let mut r = Reader { data, at: 0 };
    let mut records = Vec::new();
    while let Some((t, id)) = r.field()? {
        if id != 1 {
            r.skip(t, 0)?;
            continue;
        }
        r.expect(t, LIST, "predictions")?;
        let n = r.list_header(STRUCT, "predictions elements")?;
        for _ in 0..n {
            records.push(record(&mut r)?);
        }
    }
    if r.at != data.len() {
        return Err(format!(
            "{} bytes after the end of the response",
            data.len() - r.at
        ));
    }
    Ok(records)
}

fn record(r: &mut Reader) -> R<Record> {
    let mut features = Vec::new();
    while let Some((t, id)) = r.field()? {
        match id {
            2 => {
                r.expect(t, MAP, "continuousFeatures")?;
                let (k, v) = (r.u8()?, r.u8()?);
                r.expect(k, I64, "continuousFeatures key")?;
                r.expect(v, DOUBLE, "continuousFeatures value")?;
                for _ in 0..r.len()? {
                    features.push((r.i64()?, Feature::Continuous(r.f64()?)));
                }
            }
            8 => {
                r.expect(t, MAP, "tensors")?;
                let (k, v) = (r.u8()?, r.u8()?);
                r.expect(k, I64, "tensors key")?;
                r.expect(v, STRUCT, "tensors value")?;
                for _ in 0..r.len()? {
                    let key = r.i64()?;
                    features.push((key, general_tensor(r)?));
                }
            }
            _ => r.skip(t, 0)?,
        }
    }
    Ok(features)
}

fn general_tensor(r: &mut Reader) -> R<Feature> {
    let mut out = None;
    while let Some((t, id)) = r.field()? {
        let feature = match (id, t) {
            (1, STRUCT) => {
                let (mut dtype, mut content, mut shape) = (0, Vec::new(), Vec::new());
                while let Some((t, id)) = r.field()? {
                    match (id, t) {
                        (1, I32) => dtype = r.i32()?,
                        (2, STRING) => content = r.binary()?,
                        (3, LIST) => shape = r.i64_list("shape")?,
                        _ => r.skip(t, 0)?,
                    }
                }
                Feature::Raw {
                    dtype,
                    content,
                    shape,
                }
            }
            (2, STRUCT) => {
                let (mut strings, mut shape) = (Vec::new(), Vec::new());
                while let Some((t, id)) = r.field()? {
                    match (id, t) {
                        (1, LIST) => {
                            let n = r.list_header(STRING, "strings")?;
                            strings = (0..n).map(|_| r.binary()).collect::<R<_>>()?;
                        }
                        (2, LIST) => shape = r.i64_list("shape")?,
                        _ => r.skip(t, 0)?,
                    }
                }
                Feature::Strings { strings, shape }
            }
            _ => {
                r.skip(t, 0)?;
                Feature::OtherTensor(id)
            }
        };
        out = Some(feature);
    }
    out.ok_or_else(|| "a GeneralTensor with no field set".to_string())
}

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
        0 => each(content, |b| f32::from_le_bytes(b).to_string()),
        1 => each(content, |b| f64::from_le_bytes(b).to_string()),
        2 => each(content, |b| i32::from_le_bytes(b).to_string()),
        3 => each(content, |b| i64::from_le_bytes(b).to_string()),
        4 => each(content, |b: [u8; 1]| b[0].to_string()),
        6 => each(content, |b: [u8; 1]| (b[0] as i8).to_string()),
        7 => each(content, |b: [u8; 1]| (b[0] != 0).to_string()),
        _ => vec![format!("<{} bytes>", content.len())],
    }
}

fn list(items: &[String]) -> String {
    const MAX: usize = 12;
    let mut s = items
        .iter()
        .take(MAX)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if items.len() > MAX {
        let _ = write!(s, ", ... ({} in all)", items.len());
    }
    format!("[{s}]")
}

/// One row per feature: record, key, kind, dtype, shape, value(s).
pub fn table(records: &[Record]) -> String {
    let mut rows = vec![[
        "record".to_string(),
        "key".into(),
        "kind".into(),
        "dtype".into(),
        "shape".into(),
        "value".into(),
    ]];
    for (i, record) in records.iter().enumerate() {
        for (key, feature) in record {
            let (kind, dtype, shape, value) = match feature {
                Feature::Continuous(v) => {
                    ("continuous", "DOUBLE".into(), "-".into(), v.to_string())
                }
                Feature::Raw {
                    dtype,
                    content,
                    shape,
                } => (
                    "tensor",
                    dtype_name(*dtype),
                    format!("{shape:?}"),
                    list(&raw_values(*dtype, content)),
                ),
                Feature::Strings { strings, shape } => (
                    "tensor",
                    "STRING".into(),
                    format!("{shape:?}"),
                    list(
                        &strings
                            .iter()
                            .map(|s| format!("{:?}", String::from_utf8_lossy(s)))
                            .collect::<Vec<_>>(),
                    ),
                ),
                Feature::OtherTensor(id) => (
                    "tensor",
                    format!("GeneralTensor field {id}"),
                    "?".into(),
                    "?".into(),
                ),
            };
            rows.push([
                i.to_string(),
                key.to_string(),
                kind.into(),
                dtype,
                shape,
                value,
            ]);
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
