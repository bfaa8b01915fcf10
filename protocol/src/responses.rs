//! One response per request: the writers' inputs cut into requests by row
//! splits, so a server that batches requests (TF Serving, navi: concatenate
//! along dim 0, split every output along dim 0) can give each request its
//! own `BatchPredictionResponse`.
//!
//! `row_splits` is `int64 [R + 1]`: request r owns records
//! `row_splits[r]..row_splits[r + 1]` (first 0, last B, never decreasing), as
//! the request-side `GetRequestSplitsFrom*DataRecord` ops give them. Response
//! r is the bytes the single-response writer gives for those rows alone:
//! [`split_rows`] cuts a values tensor, and the writers' own plans write each
//! piece, so the two forms cannot drift apart.

use crate::error::{Error, Result, Shape};
use crate::input::{Data, StringSource, Tensor};
use crate::parallel::Serial;
use crate::{plan_continuous, plan_tensor_response};

/// Checks `row_splits` against the records of `values` (its dim 0; `name`
/// is how messages call it) and returns the splits.
pub fn check_row_splits<'a>(
    row_splits: &Tensor<'a>,
    values: &Tensor<'_>,
    name: &str,
) -> Result<&'a [i64]> {
    let batch = batch_of(values);
    let splits = match row_splits.data() {
        Data::I64(s) => s,
        other => {
            return Err(Error::invalid(format!(
                "row_splits must be int64, got {}",
                other.dtype()
            )))
        }
    };
    if row_splits.rank() != 1 || splits.is_empty() {
        return Err(Error::invalid(format!(
            "row_splits must have shape [R + 1] (rank 1, at least one entry: R requests, \
             request r owning records row_splits[r]..row_splits[r + 1]), got shape {}",
            Shape(row_splits.dims())
        )));
    }
    if splits[0] != 0 {
        return Err(Error::invalid(format!(
            "row_splits[0] is {}; it must be 0 (the first request starts at record 0)",
            splits[0]
        )));
    }
    if let Some(r) = splits.windows(2).position(|w| w[1] < w[0]) {
        return Err(Error::invalid(format!(
            "row_splits[{}] = {} is less than row_splits[{r}] = {}; row splits never decrease \
             (request {r} would own a negative number of records)",
            r + 1,
            splits[r + 1],
            splits[r]
        )));
    }
    let last = splits[splits.len() - 1];
    if last != batch as i64 {
        return Err(Error::invalid(format!(
            "row_splits ends at {last} (row_splits[{}]) but {name} (shape {}) has {batch} \
             records; the last split must be the batch size",
            splits.len() - 1,
            Shape(values.dims())
        )));
    }
    Ok(splits)
}

/// Strings `start..start + len` of another source.
struct StringRows<'s> {
    inner: &'s dyn StringSource,
    start: usize,
    len: usize,
}

impl StringSource for StringRows<'_> {
    fn len(&self) -> usize {
        self.len
    }
    fn get(&self, index: usize) -> &[u8] {
        assert!(index < self.len, "string index {index} out of {}", self.len);
        self.inner.get(self.start + index)
    }
}

/// Rows of a tensor along dim 0, owning the shape and (for strings) the
/// view that [`SplitRows::tensor`] borrows.
pub struct SplitRows<'a> {
    dims: Vec<i64>,
    data: RowData<'a>,
}

enum RowData<'a> {
    Plain(Data<'a>),
    Str(StringRows<'a>),
}

/// Rows `begin..end` of `t` (rank >= 1, `begin <= end <= dims[0]`).
pub fn split_rows<'a>(t: &Tensor<'a>, begin: usize, end: usize) -> Result<SplitRows<'a>> {
    let dims = t.dims();
    let Some(&rows) = dims.first() else {
        return Err(Error::invalid(format!(
            "a scalar (shape {}) has no rows to split",
            Shape(dims)
        )));
    };
    if begin > end || end as i64 > rows {
        return Err(Error::internal(format!(
            "rows {begin}..{end} of a tensor of shape {}",
            Shape(dims)
        )));
    }
    let per_row: usize = dims[1..].iter().map(|&d| d as usize).product();
    let (start, len) = (begin * per_row, (end - begin) * per_row);
    let data = match t.data() {
        Data::Str(s) => RowData::Str(StringRows {
            inner: s,
            start,
            len,
        }),
        d => RowData::Plain(slice_data(d, start, len)),
    };
    let mut new_dims = dims.to_vec();
    new_dims[0] = (end - begin) as i64;
    Ok(SplitRows {
        dims: new_dims,
        data,
    })
}

/// Elements `start..start + len` of numeric or bool data.
fn slice_data(d: Data<'_>, start: usize, len: usize) -> Data<'_> {
    let r = start..start + len;
    match d {
        Data::F32(v) => Data::F32(&v[r]),
        Data::F64(v) => Data::F64(&v[r]),
        Data::F16(v) => Data::F16(&v[r]),
        Data::BF16(v) => Data::BF16(&v[r]),
        Data::I32(v) => Data::I32(&v[r]),
        Data::I64(v) => Data::I64(&v[r]),
        Data::U8(v) => Data::U8(&v[r]),
        Data::I8(v) => Data::I8(&v[r]),
        Data::Bool(v) => Data::Bool(&v[r]),
        Data::Str(_) => unreachable!("strings are cut by StringRows"),
    }
}

impl SplitRows<'_> {
    /// The rows as a tensor.
    pub fn tensor(&self) -> Tensor<'_> {
        let data = match &self.data {
            RowData::Plain(d) => *d,
            RowData::Str(s) => Data::Str(s),
        };
        Tensor::new(&self.dims, data).expect("rows of a valid tensor are a valid tensor")
    }
}

/// The continuous writer (`BatchPredictionResponseWriter`'s bytes), one
/// response per request: element r holds records
/// `row_splits[r]..row_splits[r + 1]`.
pub fn encode_continuous_responses(
    keys: &Tensor<'_>,
    values: &Tensor<'_>,
    row_splits: &Tensor<'_>,
) -> Result<Vec<Vec<u8>>> {
    // The whole call's checks and messages first.
    plan_continuous(keys, values)?;
    let splits = check_row_splits(row_splits, values, "values")?;
    splits
        .windows(2)
        .map(|w| {
            let rows = split_rows(values, w[0] as usize, w[1] as usize)?;
            let t = rows.tensor();
            let plan = plan_continuous(keys, &t)?;
            let mut out = vec![0; plan.size()];
            plan.write(&mut out, &Serial)?;
            Ok(out)
        })
        .collect()
}

/// The tensor writer (`BatchPredictionTensorResponseWriter`'s bytes), one
/// response per request.
pub fn encode_tensor_responses(
    keys: &Tensor<'_>,
    values: &[Tensor<'_>],
    row_splits: &Tensor<'_>,
) -> Result<Vec<Vec<u8>>> {
    plan_tensor_response(keys, values)?;
    let splits = check_row_splits(row_splits, &values[0], "values[0]")?;
    splits
        .windows(2)
        .map(|w| {
            let rows = values
                .iter()
                .map(|v| split_rows(v, w[0] as usize, w[1] as usize))
                .collect::<Result<Vec<_>>>()?;
            let pieces: Vec<Tensor<'_>> = rows.iter().map(SplitRows::tensor).collect();
            let plan = plan_tensor_response(keys, &pieces)?;
            let mut out = vec![0; plan.size()];
            plan.write(&mut out, &Serial)?;
            Ok(out)
        })
        .collect()
}

/// Dim 0 of a tensor the writer's plan accepted (so rank >= 1).
pub fn batch_of(t: &Tensor<'_>) -> usize {
    t.dims().first().map_or(0, |&b| b as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{encode_continuous, encode_tensor_response};

    fn splits(s: &[i64]) -> (Vec<i64>, Vec<i64>) {
        (vec![s.len() as i64], s.to_vec())
    }

    #[test]
    fn each_response_is_its_rows_served_alone() {
        let keys = [1i64, 2];
        let v: Vec<f32> = (0..10).map(|i| i as f32 * 0.5).collect();
        let kd = [2i64];
        let vd = [5i64, 2];
        let k = Tensor::new(&kd, Data::I64(&keys)).unwrap();
        let values = Tensor::new(&vd, Data::F32(&v)).unwrap();
        for cut in [&[0i64, 5][..], &[0, 2, 2, 5], &[0, 0, 1, 5, 5]] {
            let (sd, s) = splits(cut);
            let st = Tensor::new(&sd, Data::I64(&s)).unwrap();
            let got = encode_continuous_responses(&k, &values, &st).unwrap();
            assert_eq!(got.len(), cut.len() - 1);
            for (r, bytes) in got.iter().enumerate() {
                let (a, b) = (cut[r] as usize, cut[r + 1] as usize);
                let d = [(b - a) as i64, 2];
                let alone = Tensor::new(&d, Data::F32(&v[a * 2..b * 2])).unwrap();
                assert_eq!(
                    bytes,
                    &encode_continuous(&k, &alone).unwrap(),
                    "{cut:?} {r}"
                );
            }
        }
        let strings = ["a", "bb", "", "d\0e", "f"];
        let sdims = [5i64];
        let st = Tensor::new(&sdims, Data::Str(&strings)).unwrap();
        let (sd, s) = splits(&[0, 3, 3, 5]);
        let spl = Tensor::new(&sd, Data::I64(&s)).unwrap();
        let k1 = Tensor::new(&[1], Data::I64(&[9])).unwrap();
        let got = encode_tensor_responses(&k1, &[st], &spl).unwrap();
        for (r, (a, b)) in [(0, 3), (3, 3), (3, 5)].into_iter().enumerate() {
            let d = [(b - a) as i64];
            let piece = &strings[a..b];
            let alone = Tensor::new(&d, Data::Str(&piece)).unwrap();
            assert_eq!(got[r], encode_tensor_response(&k1, &[alone]).unwrap());
        }
    }

    #[test]
    fn bad_splits_are_named() {
        let v = [0.5f32; 4];
        let k = Tensor::new(&[1], Data::I64(&[1])).unwrap();
        let values = Tensor::new(&[4], Data::F32(&v)).unwrap();
        for (cut, want) in [
            (&[][..], "shape [R + 1]"),
            (&[1, 4], "row_splits[0] is 1"),
            (
                &[0, 3, 2, 4],
                "row_splits[2] = 2 is less than row_splits[1] = 3",
            ),
            (
                &[0, 3],
                "ends at 3 (row_splits[1]) but values (shape [4]) has 4 records",
            ),
            (&[0, 5], "ends at 5"),
        ] {
            let (sd, s) = splits(cut);
            let st = Tensor::new(&sd, Data::I64(&s)).unwrap();
            let e = encode_continuous_responses(&k, &values, &st).unwrap_err();
            assert!(e.message().contains(want), "{cut:?}: {e}");
        }
        let f = [0.0f32, 4.0];
        let st = Tensor::new(&[2], Data::F32(&f)).unwrap();
        let e = encode_continuous_responses(&k, &values, &st).unwrap_err();
        assert!(
            e.message().contains("row_splits must be int64, got float"),
            "{e}"
        );
    }
}
