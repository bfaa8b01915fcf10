//! Exact widening of narrow floats.
//!
//! Every finite value, infinity and -0.0 of a narrower format is exactly
//! representable in the wider one, so the ordinary conversion is exact. NaNs
//! are the exception: the hardware conversion (`cvtss2sd`) sets the quiet bit,
//! so a signalling NaN would come out as a different NaN. Here a NaN keeps its
//! sign and its payload, moved to the top of the wider mantissa: the bits the
//! user wrote are all still there.

use half::{bf16, f16};

/// f32 -> f64, NaN payloads kept.
#[inline]
pub fn f32_to_f64(x: f32) -> f64 {
    if x.is_nan() {
        let b = x.to_bits();
        let sign = u64::from(b >> 31) << 63;
        let payload = u64::from(b & 0x007f_ffff) << (52 - 23);
        f64::from_bits(sign | (0x7ff << 52) | payload)
    } else {
        f64::from(x)
    }
}

/// f16 -> f32, NaN payloads kept.
#[inline]
pub fn f16_to_f32(x: f16) -> f32 {
    if x.is_nan() {
        let b = u32::from(x.to_bits());
        let sign = (b >> 15) << 31;
        let payload = (b & 0x03ff) << (23 - 10);
        f32::from_bits(sign | (0xff << 23) | payload)
    } else {
        x.to_f32()
    }
}

/// bf16 -> f32: bf16 is the top half of an f32, so this is exact for every value.
#[inline]
pub fn bf16_to_f32(x: bf16) -> f32 {
    f32::from_bits(u32::from(x.to_bits()) << 16)
}

#[inline]
pub fn f16_to_f64(x: f16) -> f64 {
    f32_to_f64(f16_to_f32(x))
}

#[inline]
pub fn bf16_to_f64(x: bf16) -> f64 {
    f32_to_f64(bf16_to_f32(x))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signalling_nan_stays_signalling_and_keeps_its_payload() {
        let snan = f32::from_bits(0x7f80_0001);
        let wide = f32_to_f64(snan).to_bits();
        assert_eq!(wide, 0x7ff0_0000_2000_0000);
        let neg_qnan = f32::from_bits(0xffc0_0123);
        assert_eq!(f32_to_f64(neg_qnan).to_bits(), 0xfff8_0024_6000_0000);
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
