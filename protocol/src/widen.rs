//! Exact widening of narrow floats, by integer arithmetic on the bits.
//!
//! Every value of a narrower format, NaNs aside, is exactly representable in
//! the wider one, but the hardware conversion is not safe to use here:
//! TensorFlow runs kernels with the x86 MXCSR flags DAZ and FTZ set
//! ("denormals are zero"), under which `cvtss2sd` reads a subnormal input as
//! 0.0, silently changing the prediction. It also sets the quiet bit of a
//! signalling NaN. So the bits are moved by hand: a NaN keeps its sign and its
//! payload, moved to the top of the wider mantissa, and subnormals are
//! normalised exactly. No floating-point instruction runs, so the FPU mode
//! cannot matter.

use half::{bf16, f16};

/// An IEEE 754 binary format, by the widths of its fields.
#[derive(Clone, Copy)]
struct Format {
    exp_bits: u32,
    man_bits: u32,
}

const F16: Format = Format {
    exp_bits: 5,
    man_bits: 10,
};
const F32: Format = Format {
    exp_bits: 8,
    man_bits: 23,
};
const F64: Format = Format {
    exp_bits: 11,
    man_bits: 52,
};

impl Format {
    const fn bias(self) -> i64 {
        (1 << (self.exp_bits - 1)) - 1
    }
    const fn exp_max(self) -> u64 {
        (1 << self.exp_bits) - 1
    }
}

/// The bits of the `to` value equal to the `from` value with bits `bits`.
#[inline]
fn widen_bits(bits: u64, from: Format, to: Format) -> u64 {
    let sign = (bits >> (from.exp_bits + from.man_bits)) << (to.exp_bits + to.man_bits);
    let exp = (bits >> from.man_bits) & from.exp_max();
    let man = bits & ((1 << from.man_bits) - 1);
    let shift = to.man_bits - from.man_bits;
    let body = if exp == from.exp_max() {
        // Infinity or NaN: the same payload, not quieted.
        (to.exp_max() << to.man_bits) | (man << shift)
    } else if exp == 0 && man == 0 {
        0
    } else if exp == 0 {
        // Subnormal: man * 2^(1 - bias - man_bits), normalised so that its
        // highest set bit becomes the implicit leading one.
        let top = 63 - man.leading_zeros();
        let e = i64::from(top) + 1 - from.bias() - i64::from(from.man_bits) + to.bias();
        let fraction = (man << (to.man_bits - top)) & ((1 << to.man_bits) - 1);
        ((e as u64) << to.man_bits) | fraction
    } else {
        let e = exp as i64 - from.bias() + to.bias();
        ((e as u64) << to.man_bits) | (man << shift)
    };
    sign | body
}

/// f32 -> f64, exact for every value, NaN payloads kept.
#[inline]
pub fn f32_to_f64(x: f32) -> f64 {
    let exp = x.to_bits() & 0x7f80_0000;
    if exp != 0 && exp != 0x7f80_0000 {
        // A normal number: the hardware conversion is exact and DAZ/FTZ
        // cannot touch it (neither the input nor the result is subnormal),
        // and it is the fast path for almost every prediction.
        f64::from(x)
    } else {
        f64::from_bits(widen_bits(u64::from(x.to_bits()), F32, F64))
    }
}

/// f64 -> f32 rounded to nearest, ties to even (IEEE 754's conversion), for
/// every value whatever the CPU's flush-to-zero mode: TensorFlow runs kernels
/// with FTZ/DAZ set, under which the hardware conversion turns a value that
/// narrows to an f32 subnormal into 0 (a request's 1e-40 would be read as 0).
#[inline]
pub fn f64_to_f32(x: f64) -> f32 {
    /// 2^149: an f32 subnormal is an integer number of 2^-149.
    const SUBNORMAL_SCALE: f64 = f64::from_bits((1023 + 149) << 52);
    let a = x.abs();
    if a.is_nan() || a >= f64::from(f32::MIN_POSITIVE) || a == 0.0 {
        // Normal results, infinities, NaNs and zeros: FTZ cannot touch them.
        return x as f32;
    }
    // a * 2^149 is exact (a power-of-two scaling of a normal double) and
    // below 2^23; rounding it to an integer is the f32 rounding. 2^23 itself
    // is the bits of f32::MIN_POSITIVE, the right result of rounding up.
    let m = (a * SUBNORMAL_SCALE).round_ties_even() as u32;
    let sign = if x.is_sign_negative() { 0x8000_0000 } else { 0 };
    f32::from_bits(sign | m)
}

/// The bits of [`f32_to_f64`]`(f32::from_bits(bits))`, computed without a
/// branch, so that a loop over a row widens several values per instruction
/// (the continuous writer's hot loop).
///
/// Normal numbers, infinities and NaNs are rebiased with integer arithmetic.
/// A subnormal, `man * 2^-149`, is converted from the integer `man` (exact,
/// and an integer input is not a denormal for DAZ) and multiplied by 2^-149:
/// both operands and the product are normal doubles, so FTZ and DAZ cannot
/// change the result. Every lane computes all three and keeps one.
#[inline(always)]
pub fn f32_bits_to_f64_bits(bits: u32) -> u64 {
    /// 2^-149, the value of the lowest mantissa bit of an f32 subnormal.
    const SUBNORMAL_ULP: f64 = 1.401_298_464_324_817e-45;
    let sign = u64::from(bits & 0x8000_0000) << 32;
    let abs = bits & 0x7fff_ffff;
    let exp = bits & 0x7f80_0000;
    // (exp << 23 | man) << 29 puts the mantissa in place and the exponent at
    // bit 52; adding 1023 - 127 rebiases it.
    let shifted = u64::from(abs) << 29;
    let normal = shifted + ((1023 - 127) << 52);
    // Infinity and NaN: every exponent bit set, the payload not quieted.
    let special = shifted | (0x7ff << 52);
    let subnormal = (f64::from(abs as i32) * SUBNORMAL_ULP).to_bits();
    let body = if exp == 0x7f80_0000 {
        special
    } else if exp == 0 {
        subnormal
    } else {
        normal
    };
    sign | body
}

/// f16 -> f32, exact for every value, NaN payloads kept.
#[inline]
pub fn f16_to_f32(x: f16) -> f32 {
    // The result fits the 32 bits of an f32 by construction.
    f32::from_bits(widen_bits(u64::from(x.to_bits()), F16, F32) as u32)
}

/// bf16 -> f32: bf16 is the top half of an f32, so this is exact for every value.
#[inline]
pub fn bf16_to_f32(x: bf16) -> f32 {
    f32::from_bits(u32::from(x.to_bits()) << 16)
}

/// f16 -> f64, exact for every value (NaN payloads kept).
#[inline]
pub fn f16_to_f64(x: f16) -> f64 {
    f32_to_f64(f16_to_f32(x))
}

/// bf16 -> f64, exact for every value (NaN payloads kept).
#[inline]
pub fn bf16_to_f64(x: bf16) -> f64 {
    f32_to_f64(bf16_to_f32(x))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Narrowing against the hardware conversion (exact in the test's default
    /// FPU mode) around and inside the f32 subnormal range: halfway cases,
    /// the largest subnormal rounding up to f32::MIN_POSITIVE, both signs.
    #[test]
    fn narrowing_matches_the_hardware_conversion_on_subnormals_and_their_edges() {
        let mut xs = vec![
            0.0,
            1e-46,
            7e-46,
            1.0e-45,
            1.4e-45,
            2.1e-45,
            1e-40,
            1.1754942e-38,
            1.1754943e-38,
        ];
        xs.extend([
            f64::from(f32::MIN_POSITIVE),
            f64::MIN_POSITIVE,
            1e-300,
            1.0,
            f64::MAX,
            f64::INFINITY,
        ]);
        for m in [1u64, 2, 3, 0x7f_ffff, 0x40_0000] {
            // Exactly halfway between two subnormals, and just off it.
            let half = (m as f64 + 0.5) * 2f64.powi(-149);
            xs.extend([half, half * (1.0 + 1e-15), half * (1.0 - 1e-15)]);
        }
        for x in xs {
            for x in [x, -x] {
                assert_eq!(f64_to_f32(x).to_bits(), (x as f32).to_bits(), "{x:e}");
            }
        }
        assert!(f64_to_f32(f64::NAN).is_nan());
    }

    #[test]
    fn signalling_nan_stays_signalling_and_keeps_its_payload() {
        let snan = f32::from_bits(0x7f80_0001);
        let wide = f32_to_f64(snan).to_bits();
        assert_eq!(wide, 0x7ff0_0000_2000_0000);
        let neg_qnan = f32::from_bits(0xffc0_0123);
        assert_eq!(f32_to_f64(neg_qnan).to_bits(), 0xfff8_0024_6000_0000);
    }

    /// Every f16 and a sweep of f32 bit patterns against the hardware
    /// conversion, which is exact in the test's default FPU mode.
    #[test]
    fn matches_the_hardware_conversion_on_every_non_nan_value() {
        for bits in 0..=u16::MAX {
            let h = f16::from_bits(bits);
            if !h.is_nan() {
                assert_eq!(f16_to_f32(h).to_bits(), h.to_f32().to_bits(), "{bits:#06x}");
            }
        }
        let mut bits = 0u32;
        loop {
            let x = f32::from_bits(bits);
            if !x.is_nan() {
                assert_eq!(
                    f32_to_f64(x).to_bits(),
                    f64::from(x).to_bits(),
                    "{bits:#010x}"
                );
            }
            // Every subnormal and small pattern, then a stride over the rest.
            bits = match bits.checked_add(
                if bits < 0x0100_0000 || (0x8000_0000..0x8100_0000).contains(&bits) {
                    1
                } else {
                    4093
                },
            ) {
                Some(b) => b,
                None => break,
            };
        }
    }

    /// The branch-free widening against the bit-by-bit one, NaNs included:
    /// every pattern with a zero exponent (all subnormals and zeros), every
    /// exponent with the edge mantissas, and a stride over the rest.
    #[test]
    fn branch_free_widening_matches_bit_by_bit_widening() {
        let check = |bits: u32| {
            assert_eq!(
                f32_bits_to_f64_bits(bits),
                widen_bits(u64::from(bits), F32, F64),
                "{bits:#010x}"
            );
        };
        for sign in [0, 0x8000_0000u32] {
            for man in 0..0x80_0000u32 {
                check(sign | man);
                check(sign | 0x7f80_0000 | man);
            }
            for exp in 0..=0xffu32 {
                for man in [0, 1, 2, 0x40_0000, 0x7f_fffe, 0x7f_ffff] {
                    check(sign | exp << 23 | man);
                }
            }
        }
        let mut bits = 0u32;
        while let Some(b) = bits.checked_add(9973) {
            check(b);
            bits = b;
        }
        assert_eq!(f32_bits_to_f64_bits(0x0000_0001), 2f64.powi(-149).to_bits());
    }

    #[test]
    fn ordinary_values_widen_exactly() {
        for x in [
            0.0f32,
            -0.0,
            1.5,
            f32::MIN_POSITIVE,
            1e-45,
            f32::MAX,
            f32::INFINITY,
        ] {
            assert_eq!(f32_to_f64(x).to_bits(), f64::from(x).to_bits());
        }
        assert_eq!(
            f16_to_f64(f16::from_f32(-0.0)).to_bits(),
            (-0.0f64).to_bits()
        );
        assert_eq!(f16_to_f64(f16::from_bits(0x0001)), 2f64.powi(-24));
        assert_eq!(bf16_to_f64(bf16::from_bits(0x3fc0)), 1.5);
        assert_eq!(f16_to_f32(f16::from_bits(0x7c01)).to_bits(), 0x7f80_2000);
    }
}
