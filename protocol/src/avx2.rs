//! What the AVX2 writers (`continuous::avx2`, `tensor::avx2`) share.

use std::arch::x86_64::*;

/// The 32 bytes of a register, in memory order: the writers store through
/// this array (the compiler emits one `vmovdqu`), which needs no `unsafe`
/// where `_mm256_storeu_si256` and its raw pointer would.
#[target_feature(enable = "avx2")]
pub(crate) fn bytes(v: __m256i) -> [u8; 32] {
    let words = [
        _mm256_extract_epi64::<0>(v),
        _mm256_extract_epi64::<1>(v),
        _mm256_extract_epi64::<2>(v),
        _mm256_extract_epi64::<3>(v),
    ];
    let mut out = [0u8; 32];
    for (o, w) in out.chunks_exact_mut(8).zip(words) {
        o.copy_from_slice(&w.to_le_bytes());
    }
    out
}
