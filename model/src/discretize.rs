//! Discretizers and calibration (twml's `hashing_discretizer`,
//! `percentile_discretizer_v2`, `discretizer`, `isotonic_calibration`).
//!
//! twml's results are kept bit for bit where a model's numbers depend on them
//! (the hash, the masks, the search order); where twml hangs or reads out of
//! bounds the functions here return an [`Error`] naming the input instead.

pub mod hashing;
pub mod interpolate;
pub mod mdl;
pub mod percentile;

use std::fmt;

pub use crate::error::{Error, Result};

/// The value types twml's discretizers and calibration take (`T: {float, double}`).
pub trait Real:
    Copy
    + PartialOrd
    + fmt::Debug
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
    + std::ops::Div<Output = Self>
    + Send
    + Sync
    + 'static
{
    /// 0.
    const ZERO: Self;
    /// 1.
    const ONE: Self;
    /// Whether the value is NaN.
    fn is_nan(self) -> bool;
    /// An `i64` as this type (twml's `Ty out = left` for bin indices).
    fn from_i64(v: i64) -> Self;
}

impl Real for f32 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    fn is_nan(self) -> bool {
        f32::is_nan(self)
    }
    fn from_i64(v: i64) -> Self {
        v as f32
    }
}

impl Real for f64 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    fn is_nan(self) -> bool {
        f64::is_nan(self)
    }
    fn from_i64(v: i64) -> Self {
        v as f64
    }
}
