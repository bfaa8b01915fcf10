//! twml's `HashingDiscretizer` (`lib/hashing_discretizer_impl.cpp`): a
//! calibrated feature's value becomes the bin it falls in, hashed with the
//! feature id into a new id with value 1; an uncalibrated feature keeps its
//! value and its id is masked to `output_bits`.

use super::{Error, Real, Result};
use crate::idhash::IdMap;

/// How to find a value's bin (bits 1:0 of twml's `options`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Search {
    /// `std::lower_bound`: the number of boundaries `< value` (twml's default).
    LowerBound,
    /// twml's linear scan: boundaries `< value` before the first that is not.
    Linear,
    /// `std::upper_bound`: the number of boundaries `<= value`.
    UpperBound,
}

/// How a (feature id, bin) pair becomes an output id (bits 4:2 of `options`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hash {
    /// `integer_multiplicative_hashing` (twml's default).
    Bits32,
    /// `integer64_multiplicative_hashing`.
    Bits64,
}

/// twml's `options` attr, decoded as twml does: the reserved values select
/// the defaults (twml does not reject them, and graphs may carry them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    pub search: Search,
    pub hash: Hash,
}

impl Options {
    pub fn from_bits(options: i64) -> Self {
        let search = match options & 3 {
            1 => Search::Linear,
            2 => Search::UpperBound,
            _ => Search::LowerBound,
        };
        let hash = match (options >> 2) & 7 {
            1 => Hash::Bits64,
            _ => Hash::Bits32,
        };
        Options { search, hash }
    }
}

/// twml's `(1 << output_bits) - 1`, computed in 32-bit `int` on x86: the shift
/// count is taken mod 32, so 31 bits give `0x7fffffff`, 32 give 0 and 40 give
/// 255. Models trained with those masks depend on them, so they are kept.
pub fn mask(output_bits: i64) -> i64 {
    let shifted = 1i32.wrapping_shl((output_bits & 31) as u32);
    i64::from(shifted.wrapping_sub(1))
}

/// twml's id of (feature `id`, `bucket`): multiply, add, multiply in
/// wrapping 64-bit arithmetic, keep the top bits below the word's width
/// (x86 takes a 64-bit shift count mod 64), mask as [`mask`].
pub fn hash_id(id: i64, bucket: i64, output_bits: i64, hash: Hash) -> i64 {
    let (constant, width): (u64, u64) = match hash {
        Hash::Bits32 => (2_654_435_761, 32),
        Hash::Bits64 => (14_695_981_039_346_656_039, 64),
    };
    let mut h = (id as u64).wrapping_mul(constant);
    h = h.wrapping_add(bucket as u64);
    h = h.wrapping_mul(constant);
    let shift = width.wrapping_sub(output_bits as u64) & 63;
    h >>= shift;
    (h & mask(output_bits) as u64) as i64
}

/// libstdc++'s `std::lower_bound`, step for step, so unsorted or NaN
/// boundaries give twml's bin too.
/// The steps are selects, not branches (a value's bin is a coin toss for
/// the branch predictor): the same comparisons in the same order.
fn lower_bound<T: Real>(bins: &[T], value: T) -> usize {
    let (mut first, mut len) = (0usize, bins.len());
    while len > 0 {
        let half = len >> 1;
        let middle = first + half;
        let below = bins[middle] < value;
        first = if below { middle + 1 } else { first };
        len = if below { len - half - 1 } else { half };
    }
    first
}

/// libstdc++'s `std::upper_bound`, step for step.
fn upper_bound<T: Real>(bins: &[T], value: T) -> usize {
    let (mut first, mut len) = (0usize, bins.len());
    while len > 0 {
        let half = len >> 1;
        let middle = first + half;
        let above = value < bins[middle];
        first = if above { first } else { middle + 1 };
        len = if above { half } else { len - half - 1 };
    }
    first
}

/// twml's `linear_search`.
fn linear<T: Real>(bins: &[T], value: T) -> usize {
    bins.iter().take_while(|&&b| value > b).count()
}

/// The bin `value` falls in among `bins` (`0..=bins.len()`).
pub fn bucket<T: Real>(bins: &[T], value: T, search: Search) -> usize {
    match search {
        Search::LowerBound => lower_bound(bins, value),
        Search::Linear => linear(bins, value),
        Search::UpperBound => upper_bound(bins, value),
    }
}

/// The calibrated feature ids and where each one's boundaries are:
/// `feature_ids[i]`'s are `bin_vals[i * n_bin..(i + 1) * n_bin]`. A repeated
/// id takes its last position, as twml's map assignment does.
#[derive(Clone, Debug)]
pub struct Calibration {
    index: IdMap<usize>,
    num_features: usize,
    n_bin: usize,
}

impl Calibration {
    /// Checks what twml's constructor checks (`n_bin > 0`).
    pub fn new(feature_ids: &[i64], n_bin: i64) -> Result<Self> {
        if n_bin <= 0 {
            return Err(Error::new(format!(
                "HashingDiscretizer: n_bin must be > 0, got {n_bin}"
            )));
        }
        let mut index = IdMap::with_capacity_and_hasher(feature_ids.len(), Default::default());
        for (i, &id) in feature_ids.iter().enumerate() {
            index.insert(id, i);
        }
        Ok(Calibration {
            index,
            num_features: feature_ids.len(),
            n_bin: n_bin as usize,
        })
    }

    /// How many `bin_vals` a call needs: `n_bin` per calibrated feature.
    pub fn bins_needed(&self) -> usize {
        self.num_features.saturating_mul(self.n_bin)
    }

    pub fn n_bin(&self) -> usize {
        self.n_bin
    }

    pub fn num_features(&self) -> usize {
        self.num_features
    }

    /// Checks a call's `bin_vals` against the calibration: twml reads past
    /// its end when it is shorter.
    pub fn check_bins(&self, bin_vals_len: usize) -> Result<()> {
        if bin_vals_len < self.bins_needed() {
            return Err(Error::new(format!(
                "HashingDiscretizer: bin_vals has {bin_vals_len} elements; \
                 expected n_bin ({}) x {} feature_ids = {}",
                self.n_bin,
                self.num_features,
                self.bins_needed()
            )));
        }
        Ok(())
    }

    /// Discretizes `ids`/`vals` into `out_keys`/`out_vals` (all one length).
    /// `bin_vals` must have passed [`Calibration::check_bins`]. twml's
    /// kernel takes these eight as they are; grouping them would only rename.
    #[allow(clippy::too_many_arguments)]
    pub fn discretize<T: Real>(
        &self,
        bin_vals: &[T],
        output_bits: i64,
        options: Options,
        ids: &[i64],
        vals: &[T],
        out_keys: &mut [i64],
        out_vals: &mut [T],
    ) {
        let keep = mask(output_bits);
        let n_bin = self.n_bin;
        for (((&id, &val), key), out) in ids
            .iter()
            .zip(vals)
            .zip(out_keys.iter_mut())
            .zip(out_vals.iter_mut())
        {
            match self.index.get(&id) {
                Some(&f) => {
                    let bins = &bin_vals[f * n_bin..(f + 1) * n_bin];
                    let b = bucket(bins, val, options.search) as i64;
                    *key = hash_id(id, b, output_bits, options.hash);
                    *out = T::ONE;
                }
                None => {
                    *key = id & keep;
                    *out = val;
                }
            }
        }
    }
}

/// Checks the shapes of a call: `ids` and `vals` rank 1 and one length.
pub fn check_inputs(ids_dims: &[i64], vals_dims: &[i64]) -> Result<()> {
    if ids_dims.len() != 1 || vals_dims.len() != 1 || ids_dims[0] != vals_dims[0] {
        return Err(Error::new(format!(
            "HashingDiscretizer: input_ids and input_vals must be vectors of one length \
             (a sparse tensor's ids and values), got shapes {ids_dims:?} and {vals_dims:?}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// libstdc++'s `__lower_bound` / `__upper_bound` loops as written there
    /// (with branches), to hold the select form to the same steps on any
    /// boundaries, sorted or not.
    fn libstdcxx(bins: &[f32], value: f32, upper: bool) -> usize {
        let (mut first, mut len) = (0usize, bins.len());
        while len > 0 {
            let half = len / 2;
            let middle = first + half;
            let go_right = if upper {
                value.partial_cmp(&bins[middle]) != Some(std::cmp::Ordering::Less)
            } else {
                bins[middle] < value
            };
            if go_right {
                first = middle + 1;
                len = len - half - 1;
            } else {
                len = half;
            }
        }
        first
    }

    proptest::proptest! {
        #[test]
        fn searches_take_libstdcxx_steps(
            bins in proptest::collection::vec(-3i8..3, 0..24),
            sorted in proptest::bool::ANY,
            value in -4i8..4,
        ) {
            let mut bins: Vec<f32> = bins.into_iter().map(f32::from).collect();
            if sorted {
                bins.sort_by(f32::total_cmp);
            }
            for v in [f32::from(value), f32::from(value) + 0.5, f32::NAN] {
                proptest::prop_assert_eq!(lower_bound(&bins, v), libstdcxx(&bins, v, false));
                proptest::prop_assert_eq!(upper_bound(&bins, v), libstdcxx(&bins, v, true));
                if sorted && !v.is_nan() {
                    proptest::prop_assert_eq!(lower_bound(&bins, v), bins.partition_point(|&b| b < v));
                    proptest::prop_assert_eq!(upper_bound(&bins, v), bins.partition_point(|&b| b <= v));
                }
            }
        }
    }

    #[test]
    fn masks_are_twmls_32_bit_int_arithmetic() {
        assert_eq!(mask(1), 1);
        assert_eq!(mask(22), (1 << 22) - 1);
        assert_eq!(mask(31), 0x7fff_ffff);
        assert_eq!(mask(32), 0);
        assert_eq!(mask(40), 255);
    }

    #[test]
    fn hash_matches_hand_computed_values() {
        // id 7, bucket 2, 22 bits, 32-bit hash, computed by hand in u64:
        let c: u64 = 2_654_435_761;
        let h = (7u64.wrapping_mul(c) + 2).wrapping_mul(c) >> 10;
        assert_eq!(
            hash_id(7, 2, 22, Hash::Bits32),
            (h & ((1 << 22) - 1)) as i64
        );
        let c: u64 = 14_695_981_039_346_656_039;
        let h = (7u64.wrapping_mul(c).wrapping_add(2)).wrapping_mul(c) >> 42;
        assert_eq!(
            hash_id(7, 2, 22, Hash::Bits64),
            (h & ((1 << 22) - 1)) as i64
        );
        // -1 as a bucket index is never produced, but a negative id is: it
        // wraps as unsigned.
        let h = ((-5i64 as u64).wrapping_mul(2_654_435_761)).wrapping_mul(2_654_435_761) >> 12;
        assert_eq!(hash_id(-5, 0, 20, Hash::Bits32), (h & 0xfffff) as i64);
    }

    #[test]
    fn searches_agree_with_their_definitions_on_sorted_bins() {
        let bins = [1.0f32, 2.0, 2.0, 3.0];
        for &(v, lo, li, up) in &[
            (0.5f32, 0, 0, 0),
            (1.0, 0, 0, 1),
            (2.0, 1, 1, 3),
            (2.5, 3, 3, 3),
            (3.0, 3, 3, 4),
            (9.0, 4, 4, 4),
            (f32::NEG_INFINITY, 0, 0, 0),
            (f32::INFINITY, 4, 4, 4),
        ] {
            assert_eq!(bucket(&bins, v, Search::LowerBound), lo, "{v}");
            assert_eq!(bucket(&bins, v, Search::Linear), li, "{v}");
            assert_eq!(bucket(&bins, v, Search::UpperBound), up, "{v}");
        }
        // NaN compares false: lower_bound and linear give 0, upper_bound n.
        assert_eq!(bucket(&bins, f32::NAN, Search::LowerBound), 0);
        assert_eq!(bucket(&bins, f32::NAN, Search::Linear), 0);
        assert_eq!(bucket(&bins, f32::NAN, Search::UpperBound), 4);
    }

    #[test]
    fn options_decode_as_twml_including_reserved_values() {
        assert_eq!(
            Options::from_bits(0),
            Options {
                search: Search::LowerBound,
                hash: Hash::Bits32
            }
        );
        assert_eq!(
            Options::from_bits(1 | 4),
            Options {
                search: Search::Linear,
                hash: Hash::Bits64
            }
        );
        assert_eq!(
            Options::from_bits(2),
            Options {
                search: Search::UpperBound,
                hash: Hash::Bits32
            }
        );
        assert_eq!(
            Options::from_bits(3 | 8),
            Options {
                search: Search::LowerBound,
                hash: Hash::Bits32
            }
        );
    }

    #[test]
    fn uncalibrated_ids_pass_through_masked_and_calibrated_ones_hash() {
        let cal = Calibration::new(&[10, 20], 2).unwrap();
        let bins = [0.0f64, 1.0, 5.0, 6.0];
        cal.check_bins(bins.len()).unwrap();
        let ids = [10, 20, 30, -1];
        let vals = [0.5, 7.0, 3.5, 2.0];
        let mut keys = [0; 4];
        let mut out = [0.0; 4];
        cal.discretize(
            &bins,
            8,
            Options::from_bits(0),
            &ids,
            &vals,
            &mut keys,
            &mut out,
        );
        assert_eq!(keys[0], hash_id(10, 1, 8, Hash::Bits32));
        assert_eq!(keys[1], hash_id(20, 2, 8, Hash::Bits32));
        assert_eq!(&keys[2..], &[30, 255]);
        assert_eq!(out, [1.0, 1.0, 3.5, 2.0]);
    }

    #[test]
    fn short_bins_and_bad_shapes_are_errors() {
        let cal = Calibration::new(&[1, 2, 3], 4).unwrap();
        let e = cal.check_bins(11).unwrap_err();
        assert!(e.message().contains("bin_vals has 11 elements"), "{e}");
        assert!(e.message().contains("= 12"), "{e}");
        assert!(Calibration::new(&[], 0).is_err());
        assert!(check_inputs(&[3], &[2]).is_err());
        assert!(check_inputs(&[3, 1], &[3, 1]).is_err());
        check_inputs(&[0], &[0]).unwrap();
    }

    #[test]
    fn a_repeated_feature_id_takes_its_last_position() {
        let cal = Calibration::new(&[5, 5], 1).unwrap();
        let mut keys = [0];
        let mut out = [0.0f32];
        // bins of position 1 (10.0): 3.0 is below it, bucket 0.
        cal.discretize(
            &[0.0f32, 10.0],
            16,
            Options::from_bits(0),
            &[5],
            &[3.0],
            &mut keys,
            &mut out,
        );
        assert_eq!(keys[0], hash_id(5, 0, 16, Hash::Bits32));
    }
}
