//! twml's interpolation search (`lib/internal/interpolate.h`) and the
//! `IsotonicCalibration` op built on it (`linearInterpolation` in
//! `lib/optim.cpp`): piecewise-linear interpolation between bin boundaries.
//!
//! twml's search loops forever when a NaN boundary sits next to the value;
//! here a NaN boundary is an error, checked before any search. Without NaN
//! the search ends (the loop keeps `xs[left] < value <= xs[right]` whatever
//! the order of `xs`) and the result is twml's, step for step.

use super::{Error, Real, Result};

/// Where twml's search stops for `value` among `xs` (non-empty, no NaN):
/// `(left, right)`, equal at the ends, else `right == left + 1`.
/// `lowest` moves left over boundaries equal to `value` (twml's `lowest`).
pub fn search<T: Real>(xs: &[T], value: T, lowest: bool) -> (usize, usize) {
    let n = xs.len();
    let (mut left, mut right) = (0usize, n - 1);
    if value <= xs[0] {
        right = 0;
    } else if value >= xs[right] {
        left = right;
    } else {
        while left < right {
            let middle = (left + right) / 2;
            if middle < n - 1 && value >= xs[middle] && value <= xs[middle + 1] {
                left = middle;
                right = middle + 1;
                break;
            } else if value > xs[middle] {
                left = middle;
            } else {
                right = middle;
            }
        }
        if lowest {
            while left > 0 && value >= xs[left - 1] && value == xs[left] {
                left -= 1;
                right -= 1;
            }
        }
    }
    (left, right)
}

/// twml's `LINEAR` interpolation of `value` on (`xs`, `ys`).
pub fn linear<T: Real>(xs: &[T], ys: &[T], value: T) -> T {
    let (left, right) = search(xs, value, false);
    if right != left + 1 || xs[left] == xs[right] {
        ys[left]
    } else {
        let (x_left, x_right, y_left) = (xs[left], xs[right], ys[left]);
        let ratio = (value - x_left) / (x_right - x_left);
        ratio * (ys[right] - y_left) + y_left
    }
}

/// The first NaN of `xs`, as an error naming `what` and its position.
pub fn check_no_nan<T: Real>(xs: &[T], what: impl Fn(usize) -> String) -> Result<()> {
    match xs.iter().position(|x| x.is_nan()) {
        Some(i) => Err(Error::new(format!(
            "{} is NaN; bin boundaries must be numbers (twml's search never ends on a NaN boundary)",
            what(i)
        ))),
        None => Ok(()),
    }
}

/// `IsotonicCalibration`'s shapes: `input` [batch, labels], `xs` and `ys`
/// [labels, bins] with bins >= 1. Returns (batch, labels, bins).
pub fn isotonic_shapes(input: &[i64], xs: &[i64], ys: &[i64]) -> Result<(usize, usize, usize)> {
    let bad = |why: &str| {
        Err(Error::new(format!(
            "IsotonicCalibration: {why}; got input {input:?}, xs {xs:?}, ys {ys:?} \
             (expected input [batch_size, num_labels], xs and ys [num_labels, num_bins])"
        )))
    };
    if input.len() != 2 || xs.len() != 2 || ys.len() != 2 {
        return bad("input, xs and ys must be matrices");
    }
    if xs != ys {
        return bad("xs and ys must have one shape");
    }
    if input[1] != xs[0] {
        return bad("input's second dimension must equal the number of rows of xs and ys");
    }
    if xs[1] < 1 && input[0] > 0 && input[1] > 0 {
        return bad("xs and ys need at least one bin");
    }
    Ok((input[0] as usize, input[1] as usize, xs[1] as usize))
}

/// `IsotonicCalibration`: `output[i, j]` is `input[i, j]` interpolated on row
/// `j` of `xs`/`ys`. Shapes as [`isotonic_shapes`] returns them; NaN in `xs`
/// is an error.
pub fn isotonic<T: Real>(
    input: &[T],
    xs: &[T],
    ys: &[T],
    labels: usize,
    bins: usize,
    output: &mut [T],
) -> Result<()> {
    if input.is_empty() {
        return Ok(());
    }
    check_no_nan(xs, |i| {
        format!("IsotonicCalibration: xs[{}, {}]", i / bins, i % bins)
    })?;
    for (row_in, row_out) in input.chunks(labels).zip(output.chunks_mut(labels)) {
        for (j, (&v, out)) in row_in.iter().zip(row_out.iter_mut()).enumerate() {
            let range = j * bins..(j + 1) * bins;
            *out = linear(&xs[range.clone()], &ys[range], v);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_interpolates_and_clamps() {
        let xs = [0.0f64, 1.0, 2.0, 4.0];
        let ys = [0.0f64, 10.0, 20.0, 40.0];
        assert_eq!(linear(&xs, &ys, 0.5), 5.0);
        assert_eq!(linear(&xs, &ys, 3.0), 30.0);
        assert_eq!(linear(&xs, &ys, -1.0), 0.0);
        assert_eq!(linear(&xs, &ys, 9.0), 40.0);
        assert_eq!(linear(&xs, &ys, f64::INFINITY), 40.0);
        assert_eq!(linear(&xs, &ys, f64::NEG_INFINITY), 0.0);
        // A value on a boundary gives that boundary's y.
        assert_eq!(linear(&xs, &ys, 2.0), 20.0);
    }

    #[test]
    fn nan_value_gives_the_first_y() {
        let xs = [0.0f32, 1.0, 2.0];
        let ys = [3.0f32, 4.0, 5.0];
        assert_eq!(linear(&xs, &ys, f32::NAN), 3.0);
        assert_eq!(linear(&[1.0f32], &[7.0f32], f32::NAN), 7.0);
    }

    #[test]
    fn duplicate_xs_give_the_y_the_search_stops_at() {
        // Traced by hand through twml's loop: the middle pair (1, 2) matches
        // first and equal xs take the left y.
        let xs = [0.0f32, 1.0, 1.0, 2.0];
        let ys = [0.0f32, 0.2, 0.6, 1.0];
        assert_eq!(linear(&xs, &ys, 1.0), 0.2);
        // At the top end, `value >= xs[last]` wins: the later y.
        assert_eq!(linear(&[0.0f32, 1.0, 1.0], &[0.0f32, 0.2, 0.6], 1.0), 0.6);
    }

    #[test]
    fn unsorted_xs_end() {
        // No NaN: the search ends whatever the order.
        let xs = [0.0f32, 5.0, 1.0, 3.0, 2.0, 9.0];
        let ys = [0.0f32, 1.0, 2.0, 3.0, 4.0, 5.0];
        for v in [0.5f32, 1.5, 2.5, 4.0, 6.0, 8.9] {
            let (l, r) = search(&xs, v, false);
            assert_eq!(r, l + 1);
            assert!(xs[l] <= v && v <= xs[r], "{v}: {l} {r}");
            let _ = linear(&xs, &ys, v);
        }
    }

    #[test]
    fn nan_boundaries_and_bad_shapes_are_errors() {
        let mut out = [0.0f32; 2];
        let e = isotonic(
            &[0.5f32, 0.5],
            &[0.0, f32::NAN, 0.0, 1.0],
            &[0.0; 4],
            2,
            2,
            &mut out,
        )
        .unwrap_err();
        assert!(e.message().contains("xs[0, 1] is NaN"), "{e}");
        assert!(isotonic_shapes(&[3, 2], &[2, 4], &[2, 4]).is_ok());
        assert!(isotonic_shapes(&[3], &[2, 4], &[2, 4]).is_err());
        assert!(isotonic_shapes(&[3, 2], &[2, 4], &[2, 3]).is_err());
        assert!(isotonic_shapes(&[3, 3], &[2, 4], &[2, 4]).is_err());
        assert!(isotonic_shapes(&[3, 2], &[2, 0], &[2, 0]).is_err());
        assert!(isotonic_shapes(&[0, 2], &[2, 0], &[2, 0]).is_ok());
    }
}
