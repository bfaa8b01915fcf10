//! Fuzzes the discretizers and calibration (bpr_model::discretize): the
//! `HashingDiscretizer` kernel, the `MDL` family's table and search, and
//! `IsotonicCalibration`'s interpolation, on arbitrary shapes, ids, keys,
//! NaN/inf values and unsorted or NaN boundaries. twml hangs on NaN
//! boundaries and reads out of bounds on bad offsets: here every input either
//! gives an `Err` (exactly when the expected check fails, computed here
//! independently) or outputs with the invariants twml's loops give. A hang
//! shows as libFuzzer's timeout.
#![no_main]

use arbitrary::Arbitrary;
use bpr_model::discretize::hashing::{self, Calibration, Options, Search};
use bpr_model::discretize::interpolate;
use bpr_model::discretize::mdl::{Output, Table};
use bpr_model::discretize::Real;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    double: bool,
    // Small ids and keys so they hit the calibrated ones.
    ids: Vec<i8>,
    vals: Vec<f32>,
    feature_ids: Vec<i8>,
    n_bin: i8,
    bins: Vec<f32>,
    output_bits: i8,
    options: i8,
    bin_ids: Vec<i64>,
    offsets: Vec<i8>,
    keys: Vec<i8>,
    shape: [u8; 5],
    xs: Vec<f32>,
    ys: Vec<f32>,
    lowest: bool,
}

/// Equal, or both NaN (a value passed through keeps its NaN).
fn same<T: Real>(a: T, b: T) -> bool {
    a == b || (a.is_nan() && b.is_nan())
}

fn as_t<T: Real>(v: &[f32], conv: fn(f32) -> T) -> Vec<T> {
    v.iter().map(|&x| conv(x)).collect()
}

fn hashing_case<T: Real>(inp: &Input, conv: fn(f32) -> T) {
    let feature_ids: Vec<i64> = inp.feature_ids.iter().map(|&i| i64::from(i)).collect();
    let n_bin = i64::from(inp.n_bin);
    let cal = match Calibration::new(&feature_ids, n_bin) {
        Ok(c) => c,
        Err(e) => {
            assert!(n_bin <= 0, "{e}");
            return;
        }
    };
    assert!(n_bin > 0);
    let bins = as_t(&inp.bins, conv);
    let needed = feature_ids.len() * n_bin as usize;
    if let Err(e) = cal.check_bins(bins.len()) {
        assert!(bins.len() < needed, "{e}");
        return;
    }
    assert!(bins.len() >= needed);
    let n = inp.ids.len().min(inp.vals.len());
    let ids: Vec<i64> = inp.ids[..n].iter().map(|&i| i64::from(i)).collect();
    let vals = as_t(&inp.vals[..n], conv);
    let (mut keys, mut out) = (vec![i64::MIN; n], vec![T::ZERO; n]);
    let bits = i64::from(inp.output_bits);
    let opts = Options::from_bits(i64::from(inp.options));
    cal.discretize(&bins, bits, opts, &ids, &vals, &mut keys, &mut out);
    let mask = hashing::mask(bits);
    assert!(mask >= 0);
    for i in 0..n {
        // twml's map assignment: a repeated id takes its last position.
        match feature_ids.iter().rposition(|&f| f == ids[i]) {
            Some(f) => {
                let run = &bins[f * n_bin as usize..(f + 1) * n_bin as usize];
                let b = hashing::bucket(run, vals[i], opts.search);
                assert!(b <= run.len());
                if !run.iter().any(|x| x.is_nan()) && run.windows(2).all(|w| w[0] <= w[1]) {
                    // Sorted, numeric boundaries: the searches' definitions.
                    let below = run.iter().filter(|&&x| x < vals[i]).count();
                    let at_or_below = run.iter().filter(|&&x| x <= vals[i]).count();
                    let want = match opts.search {
                        Search::LowerBound | Search::Linear => below,
                        Search::UpperBound if vals[i].is_nan() => run.len(),
                        Search::UpperBound => at_or_below,
                    };
                    assert_eq!(b, want, "bucket of {:?} in {run:?}", vals[i]);
                }
                assert_eq!(keys[i], hashing::hash_id(ids[i], b as i64, bits, opts.hash));
                assert!((0..=mask).contains(&keys[i]));
                assert!(out[i] == T::ONE);
            }
            None => {
                assert_eq!(keys[i], ids[i] & mask);
                assert!(same(out[i], vals[i]));
            }
        }
    }
}

/// What `Table::new` must accept, written from twml's reads: one length,
/// non-empty runs inside the bins, no NaN boundary.
fn table_ok<T: Real>(bin_ids: &[i64], bin_vals: &[T], offsets: &[i64]) -> bool {
    let total = bin_vals.len() as i64;
    bin_ids.len() == bin_vals.len()
        && offsets.iter().enumerate().all(|(k, &s)| {
            let e = offsets.get(k + 1).copied().unwrap_or(total);
            0 <= s && s < e && e <= total
        })
        && !bin_vals.iter().any(|v| v.is_nan())
}

fn mdl_case<T: Real>(inp: &Input, conv: fn(f32) -> T) {
    let bin_vals = as_t(&inp.bins, conv);
    // Mostly matching lengths, so the search is reached.
    let bin_ids: Vec<i64> = if inp.bin_ids.len() == 1 {
        vec![inp.bin_ids[0]; bin_vals.len()]
    } else if inp.bin_ids.is_empty() {
        (0..bin_vals.len() as i64).map(|i| 1000 + i).collect()
    } else {
        inp.bin_ids.clone()
    };
    let offsets: Vec<i64> = inp.offsets.iter().map(|&o| i64::from(o)).collect();
    let ok = table_ok(&bin_ids, &bin_vals, &offsets);
    let table = match Table::new("MDL", &bin_ids, &bin_vals, &offsets) {
        Ok(t) => t,
        Err(e) => {
            assert!(!ok, "rejected a good table: {e}");
            assert!(e.message().starts_with("MDL: "), "{e}");
            return;
        }
    };
    assert!(ok, "accepted a bad table");
    let n = inp.keys.len().min(inp.vals.len());
    let keys: Vec<i64> = inp.keys[..n].iter().map(|&k| i64::from(k)).collect();
    let vals = as_t(&inp.vals[..n], conv);
    let bad_key = keys
        .iter()
        .position(|&k| k != -1 && (k < 0 || k as usize >= offsets.len()));
    for output in [Output::BinIds, Output::BinIndices] {
        let (mut ok_keys, mut ok_vals) = (vec![i64::MIN; n], vec![T::ZERO; n]);
        let got = table.discretize("MDL", output, &keys, &vals, &mut ok_keys, &mut ok_vals);
        if let Some(i) = bad_key {
            let e = got.expect_err("an out-of-range key is an error");
            assert!(e.message().contains(&format!("keys[{i}] = ")), "{e}");
            continue;
        }
        got.unwrap();
        for i in 0..n {
            if keys[i] == -1 {
                assert_eq!(ok_keys[i], -1);
                assert!(same(ok_vals[i], vals[i]));
                continue;
            }
            let k = keys[i] as usize;
            let start = offsets[k] as usize;
            let end = offsets.get(k + 1).map_or(bin_vals.len(), |&e| e as usize);
            let (left, _) = interpolate::search(&bin_vals[start..end], vals[i], false);
            let want = match output {
                Output::BinIds => bin_ids[start + left],
                Output::BinIndices => left as i64,
            };
            assert_eq!(ok_keys[i], want);
            assert!(ok_vals[i] == T::ONE);
        }
    }
}

/// twml's search on numeric boundaries: the pair it stops at brackets the
/// value, whatever the order of `xs`.
fn search_case<T: Real>(inp: &Input, conv: fn(f32) -> T) {
    let xs = as_t(&inp.xs, conv);
    if xs.is_empty() || xs.iter().any(|x| x.is_nan()) {
        return;
    }
    for &v in &inp.vals {
        let v = conv(v);
        let (l, r) = interpolate::search(&xs, v, inp.lowest);
        assert!(
            r < xs.len() && (r == l || r == l + 1),
            "({l}, {r}) of {}",
            xs.len()
        );
        if r == l + 1 {
            assert!(
                xs[l] <= v && v <= xs[r],
                "{v:?} not in [{:?}, {:?}]",
                xs[l],
                xs[r]
            );
        } else if !v.is_nan() {
            assert!(l == 0 || l == xs.len() - 1);
        }
    }
}

fn isotonic_case<T: Real>(inp: &Input, conv: fn(f32) -> T) {
    let [batch, labels, xr, bins, yb] = inp.shape.map(|d| i64::from(d % 6));
    // Mostly consistent shapes; a low bit of `options` varies ys or xs' rows.
    let xs_dims = [xr, bins];
    let ys_dims = if inp.options & 1 == 1 {
        [xr, yb]
    } else {
        xs_dims
    };
    let in_dims = [batch, if inp.options & 2 == 2 { labels } else { xr }];
    let shapes = interpolate::isotonic_shapes(&in_dims, &xs_dims, &ys_dims);
    let consistent = xs_dims == ys_dims
        && in_dims[1] == xs_dims[0]
        && (bins >= 1 || in_dims[0] == 0 || in_dims[1] == 0);
    let (b, l, nb) = match shapes {
        Ok(s) => s,
        Err(e) => {
            assert!(!consistent, "rejected good shapes: {e}");
            return;
        }
    };
    assert!(consistent, "accepted bad shapes");
    let cycle = |src: &[f32], len: usize| -> Vec<T> {
        (0..len)
            .map(|i| conv(src.get(i % src.len().max(1)).copied().unwrap_or(i as f32)))
            .collect()
    };
    let input = cycle(&inp.vals, b * l);
    let xs = cycle(&inp.xs, l * nb);
    let ys = cycle(&inp.ys, l * nb);
    let mut out = vec![T::ZERO; b * l];
    match interpolate::isotonic(&input, &xs, &ys, l, nb, &mut out) {
        Err(e) => {
            assert!(!input.is_empty() && xs.iter().any(|x| x.is_nan()), "{e}");
            assert!(e.message().contains("is NaN"), "{e}");
        }
        Ok(()) => {
            assert!(input.is_empty() || !xs.iter().any(|x| x.is_nan()));
            for (i, (&v, &o)) in input.iter().zip(&out).enumerate() {
                let j = i % l;
                let (rx, ry) = (&xs[j * nb..(j + 1) * nb], &ys[j * nb..(j + 1) * nb]);
                if v.is_nan() {
                    assert!(same(o, ry[0]), "NaN gives ys[0]");
                } else if v <= rx[0] {
                    assert!(same(o, ry[0]));
                } else if v >= rx[nb - 1] {
                    assert!(same(o, ry[nb - 1]));
                }
            }
        }
    }
}

fuzz_target!(|inp: Input| {
    if inp.double {
        let conv: fn(f32) -> f64 = f64::from;
        hashing_case(&inp, conv);
        mdl_case(&inp, conv);
        search_case(&inp, conv);
        isotonic_case(&inp, conv);
    } else {
        let conv: fn(f32) -> f32 = |x| x;
        hashing_case(&inp, conv);
        mdl_case(&inp, conv);
        search_case(&inp, conv);
        isotonic_case(&inp, conv);
    }
});
