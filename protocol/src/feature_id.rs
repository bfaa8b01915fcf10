//! Feature ids: the int64 a feature name stands for, computed exactly as twml's
//! `FeatureId` op computes it, so a consumer that looks a prediction up with
//! `Feature.Continuous("prediction")` finds the value written under
//! `feature_id("prediction")`.
//!
//! The hash, as facts:
//! - the name is read as UTF-8 and re-encoded as UTF-16 code units (surrogate
//!   pairs above U+FFFF), taken as little-endian bytes, no BOM, no terminator;
//! - those bytes are hashed with MurmurHash3 x64 128, seed 0; the id is the
//!   first 8 bytes of the 16-byte digest (h1) read as a signed little-endian
//!   int64, so ids may be negative, and the empty name is 0;
//! - a name with its first `#` at byte index k > 0 is hashed in two steps: `h`
//!   is the digest of `name[..k]`, and the id is the first 8 bytes of the
//!   digest of `h[0..8]` followed by the UTF-16LE bytes of `name[k + 1..]`. A
//!   `#` at index 0 is an ordinary character.
//!
//! twml aborted the process on invalid UTF-8; here it is an [`Error`] naming
//! the entry and the byte offset. Names of any length work.

use crate::error::{Error, Result};
use crate::input::StringSource;
use std::str::Utf8Error;

/// The feature id of `name`.
///
/// ```
/// assert_eq!(bpr_protocol::feature_id("prediction"), -5621645068071228725);
/// ```
pub fn feature_id(name: &str) -> i64 {
    if name.is_ascii() {
        return ascii_id(name.as_bytes());
    }
    with_buffer(name.len(), |buf| match name.find('#') {
        Some(k) if k > 0 => {
            let n = utf16le(&name[..k], buf);
            let prefix = h1(&buf[..n]);
            buf[..8].copy_from_slice(&prefix.to_le_bytes());
            let m = utf16le(&name[k + 1..], &mut buf[8..]);
            h1(&buf[..8 + m]) as i64
        }
        _ => {
            let n = utf16le(name, buf);
            h1(&buf[..n]) as i64
        }
    })
}

/// [`feature_id`] of an ASCII name: each byte is a UTF-16 unit, so the
/// encoding is a zero after each byte (the hashed readers compute an id per
/// sparse continuous entry, and the general path was most of their cost).
fn ascii_id(name: &[u8]) -> i64 {
    let widen = |s: &[u8], out: &mut [u8]| {
        for (o, &c) in out.chunks_exact_mut(2).zip(s) {
            o[0] = c;
            o[1] = 0;
        }
        2 * s.len()
    };
    match name.iter().position(|&c| c == b'#') {
        Some(k) if k > 0 => with_buffer(name.len(), |buf| {
            let n = widen(&name[..k], buf);
            let prefix = h1(&buf[..n]);
            buf[..8].copy_from_slice(&prefix.to_le_bytes());
            let m = widen(&name[k + 1..], &mut buf[8..]);
            h1(&buf[..8 + m]) as i64
        }),
        _ => ascii_h1(name) as i64,
    }
}

/// The four bytes of `x` as the UTF-16LE units of four ASCII characters:
/// each byte followed by a zero.
#[inline(always)]
fn spread4(x: u32) -> u64 {
    let x = u64::from(x);
    let x = (x | (x << 16)) & 0x0000_ffff_0000_ffff;
    (x | (x << 8)) & 0x00ff_00ff_00ff_00ff
}

/// [`h1`] of the UTF-16LE bytes of ASCII `name`, without writing them out:
/// eight characters are one 16-byte block.
fn ascii_h1(name: &[u8]) -> u64 {
    let halves = |c: &[u8]| {
        let mut a = [0u8; 8];
        a[..c.len()].copy_from_slice(c);
        let x = u64::from_le_bytes(a);
        (spread4(x as u32), spread4((x >> 32) as u32))
    };
    let mut blocks = name.chunks_exact(8);
    let mut state = Murmur::default();
    for b in &mut blocks {
        let (k1, k2) = halves(b);
        state.block(k1, k2);
    }
    let tail = blocks.remainder();
    if !tail.is_empty() {
        let (k1, k2) = halves(tail);
        state.tail(k1, k2, 2 * tail.len());
    }
    state.finish(2 * name.len() as u64)
}

/// Calls `f` with a buffer for the UTF-16 bytes of a name of `len` UTF-8
/// bytes (at most two per byte, and 8 more for the `#` rule): on the stack
/// for short names, as an allocation each showed in the hashed readers.
fn with_buffer(len: usize, f: impl FnOnce(&mut [u8]) -> i64) -> i64 {
    if len <= STACK_NAME {
        let mut stack = [0u8; 2 * STACK_NAME + 8];
        f(&mut stack[..2 * len + 8])
    } else {
        f(&mut vec![0u8; 2 * len + 8])
    }
}

/// Names up to this many bytes are encoded without an allocation.
const STACK_NAME: usize = 120;

/// The feature id of a name given as bytes, which must be UTF-8.
pub fn feature_id_bytes(name: &[u8]) -> Result<i64> {
    if name.is_ascii() {
        return Ok(ascii_id(name));
    }
    std::str::from_utf8(name)
        .map(feature_id)
        .map_err(|e| not_utf8("the feature name", name, e))
}

/// The feature ids of `names`, in order. An entry that is not UTF-8 is an
/// error naming it as `feature_names[i]` (the attr of the `FeatureId` op).
pub fn feature_ids<S: StringSource + ?Sized>(names: &S) -> Result<Vec<i64>> {
    let mut out = vec![0; names.len()];
    write_feature_ids(names, &mut out)?;
    Ok(out)
}

/// Writes the feature id of `names[i]` to `out[i]`; `out` holds exactly one
/// slot per name. Every name is checked before the first write.
pub fn write_feature_ids<S: StringSource + ?Sized>(names: &S, out: &mut [i64]) -> Result<()> {
    if out.len() != names.len() {
        return Err(Error::internal(format!(
            "feature ids: {} names but room for {} ids",
            names.len(),
            out.len()
        )));
    }
    let mut checked = Vec::with_capacity(names.len());
    for i in 0..names.len() {
        let name = names.get(i);
        let text = std::str::from_utf8(name)
            .map_err(|e| not_utf8(&format!("feature_names[{i}]"), name, e))?;
        checked.push(text);
    }
    for (slot, name) in out.iter_mut().zip(checked) {
        *slot = feature_id(name);
    }
    Ok(())
}

/// Writes the UTF-16LE bytes of `s` at the start of `out` (at least twice
/// `s.len()` long) and returns how many.
fn utf16le(s: &str, out: &mut [u8]) -> usize {
    let mut n = 0;
    for unit in s.encode_utf16() {
        out[n..n + 2].copy_from_slice(&unit.to_le_bytes());
        n += 2;
    }
    n
}

/// h1 of MurmurHash3 x64 128 with seed 0: the digest's first 8 bytes,
/// little-endian. Written over a slice (the `murmur3` crate reads through
/// `io::Read`, which cost more than the hash itself on short names); the
/// tests check it against that crate.
fn h1(bytes: &[u8]) -> u64 {
    let word = |b: &[u8]| {
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        u64::from_le_bytes(a)
    };
    let mut state = Murmur::default();
    let mut blocks = bytes.chunks_exact(16);
    for b in &mut blocks {
        state.block(word(&b[..8]), word(&b[8..]));
    }
    let tail = blocks.remainder();
    if !tail.is_empty() {
        // Zero-padded: the missing bytes of a tail word add nothing.
        let mut t = [0u8; 16];
        t[..tail.len()].copy_from_slice(tail);
        state.tail(word(&t[..8]), word(&t[8..]), tail.len());
    }
    state.finish(bytes.len() as u64)
}

/// MurmurHash3 x64 128's state (seed 0).
#[derive(Default)]
struct Murmur {
    h1: u64,
    h2: u64,
}

impl Murmur {
    const C1: u64 = 0x87c3_7b91_1142_53d5;
    const C2: u64 = 0x4cf5_ad43_2745_937f;

    /// One 16-byte block, as two little-endian words.
    #[inline(always)]
    fn block(&mut self, k1: u64, k2: u64) {
        let (c1, c2) = (Self::C1, Self::C2);
        self.h1 ^= k1.wrapping_mul(c1).rotate_left(31).wrapping_mul(c2);
        self.h1 = self
            .h1
            .rotate_left(27)
            .wrapping_add(self.h2)
            .wrapping_mul(5)
            .wrapping_add(0x52dc_e729);
        self.h2 ^= k2.wrapping_mul(c2).rotate_left(33).wrapping_mul(c1);
        self.h2 = self
            .h2
            .rotate_left(31)
            .wrapping_add(self.h1)
            .wrapping_mul(5)
            .wrapping_add(0x3849_5ab5);
    }

    /// The last 1..15 bytes (`len` of them), zero-padded to two words.
    #[inline(always)]
    fn tail(&mut self, k1: u64, k2: u64, len: usize) {
        let (c1, c2) = (Self::C1, Self::C2);
        if len > 8 {
            self.h2 ^= k2.wrapping_mul(c2).rotate_left(33).wrapping_mul(c1);
        }
        self.h1 ^= k1.wrapping_mul(c1).rotate_left(31).wrapping_mul(c2);
    }

    /// h1 of the digest of `len` bytes.
    #[inline(always)]
    fn finish(self, len: u64) -> u64 {
        let (mut h1, mut h2) = (self.h1 ^ len, self.h2 ^ len);
        h1 = h1.wrapping_add(h2);
        h2 = h2.wrapping_add(h1);
        fmix(h1).wrapping_add(fmix(h2))
    }
}

/// MurmurHash3's 64-bit finalizer.
fn fmix(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^ (k >> 33)
}

/// The longest prefix of a bad name shown in an error; names may be any length.
const SHOWN_BYTES: usize = 64;

fn not_utf8(what: &str, name: &[u8], e: Utf8Error) -> Error {
    let at = e.valid_up_to();
    let problem = match e.error_len() {
        Some(n) => format!(
            "invalid byte sequence {} at byte offset {at}",
            hex(&name[at..at + n])
        ),
        None => format!(
            "truncated sequence {} at byte offset {at} (the name ends inside a character)",
            hex(&name[at..])
        ),
    };
    let shown = &name[..name.len().min(SHOWN_BYTES)];
    let more = if name.len() > SHOWN_BYTES { "..." } else { "" };
    Error::invalid(format!(
        "{what} is not valid UTF-8: {problem}; name b\"{}\"{more} ({} bytes). \
         Feature names are hashed as UTF-8 text, as twml does",
        shown.escape_ascii(),
        name.len()
    ))
}

fn hex(bytes: &[u8]) -> String {
    let parts: Vec<String> = bytes.iter().map(|b| format!("0x{b:02x}")).collect();
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vectors of twml's `FeatureId` (issue 12).
    #[test]
    fn twml_vectors() {
        assert_eq!(feature_id("a"), -7591212652331886403);
        assert_eq!(feature_id("prediction"), -5621645068071228725);
        assert_eq!(
            feature_id("recap.engagement.is_favorited"),
            5572643959053003859
        );
        assert_eq!(feature_id("x#y"), -7212464046583124290);
        assert_eq!(feature_id(""), 0);
    }

    /// The `murmur3` crate's h1 (not ours): the reference of the rule tests.
    fn digest_h1(bytes: &[u8]) -> u64 {
        murmur3::murmur3_x64_128(&mut &bytes[..], 0).unwrap() as u64
    }

    fn units(s: &str) -> Vec<u8> {
        s.encode_utf16().flat_map(u16::to_le_bytes).collect()
    }

    #[test]
    fn hash_rule_splits_at_the_first_hash_only() {
        let chained = |prefix: &str, rest: &str| {
            let mut b = digest_h1(&units(prefix)).to_le_bytes().to_vec();
            b.extend(units(rest));
            digest_h1(&b) as i64
        };
        assert_eq!(feature_id("x#y"), chained("x", "y"));
        assert_eq!(feature_id("a#b#c"), chained("a", "b#c"));
        assert_eq!(feature_id("a#"), chained("a", ""));
        assert_eq!(feature_id("a##"), chained("a", "#"));
        // A multi-byte prefix: k is a byte index, the prefix is whole characters.
        assert_eq!(feature_id("é#z"), chained("é", "z"));
        assert_eq!(feature_id("𝄞#𝄞"), chained("𝄞", "𝄞"));
    }

    #[test]
    fn a_leading_hash_is_an_ordinary_character() {
        assert_eq!(feature_id("#"), digest_h1(&units("#")) as i64);
        // Only the first `#` counts: when it is at index 0 a later one is ordinary too.
        assert_eq!(feature_id("#a#b"), digest_h1(&units("#a#b")) as i64);
        assert_ne!(feature_id("#a"), feature_id("a"));
    }

    #[test]
    fn astral_characters_are_surrogate_pairs() {
        // U+1D11E is D834 DD1E in UTF-16.
        assert_eq!(units("𝄞"), [0x34, 0xd8, 0x1e, 0xdd]);
        assert_eq!(feature_id("𝄞"), digest_h1(&[0x34, 0xd8, 0x1e, 0xdd]) as i64);
    }

    #[test]
    fn long_names_work() {
        let name = "n".repeat(100_000) + "#" + &"é".repeat(50_000);
        let id = feature_id(&name);
        assert_eq!(id, feature_id(&name.clone()));
        assert_ne!(id, feature_id(&name[..name.len() - 2]));
    }

    /// The slice murmur against the `murmur3` crate (which we did not
    /// write), every length across the block and tail boundaries.
    #[test]
    fn h1_is_the_murmur3_crates() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for len in 0..200 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            let want = murmur3::murmur3_x64_128(&mut &bytes[..], 0).unwrap() as u64;
            assert_eq!(h1(&bytes), want, "length {len}");
        }
    }

    /// ASCII names (the fast path) and others, at the stack buffer's edge
    /// and with the `#` rule, against the UTF-16 rule written out here.
    #[test]
    fn ascii_and_general_paths_agree_with_the_rule() {
        let rule = |name: &str| match name.find('#') {
            Some(k) if k > 0 => {
                let mut b = digest_h1(&units(&name[..k])).to_le_bytes().to_vec();
                b.extend(units(&name[k + 1..]));
                digest_h1(&b) as i64
            }
            _ => digest_h1(&units(name)) as i64,
        };
        for len in [
            0, 1, 3, 4, 5, 7, 8, 9, 15, 16, 17, 59, 60, 61, 119, 120, 121, 300,
        ] {
            let varied: String = (0..len)
                .map(|i| (b'!' + (i * 7 % 90) as u8) as char)
                .collect();
            for name in [
                "a".repeat(len),
                varied.replace('#', "+"),
                format!("{}#{}", "p".repeat(len), "q".repeat(len / 2)),
                format!("{}é", "z".repeat(len)),
                format!("é{}#𝄞", "z".repeat(len)),
            ] {
                assert_eq!(feature_id(&name), rule(&name), "{name:?}");
                assert_eq!(
                    feature_id_bytes(name.as_bytes()),
                    Ok(rule(&name)),
                    "{name:?}"
                );
            }
        }
    }

    #[test]
    fn bytes_and_str_agree() {
        for name in ["", "a", "prediction", "x#y", "é#𝄞"] {
            assert_eq!(feature_id_bytes(name.as_bytes()), Ok(feature_id(name)));
        }
        assert_eq!(
            feature_ids(&["a", "prediction"]),
            Ok(vec![-7591212652331886403, -5621645068071228725])
        );
        assert_eq!(feature_ids(&Vec::<&[u8]>::new()), Ok(vec![]));
    }

    fn error_of(names: &[&[u8]]) -> Error {
        let e = feature_ids(names).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::InvalidArgument, "{e}");
        e
    }

    #[test]
    fn invalid_utf8_names_the_entry_and_the_offset() {
        let cases: &[(&[u8], &str)] = &[
            (b"ab\xffc", "invalid byte sequence 0xff at byte offset 2"),
            (b"\x80", "invalid byte sequence 0x80 at byte offset 0"), // stray continuation
            (
                b"ab\xe2\x82",
                "truncated sequence 0xe2 0x82 at byte offset 2",
            ),
            (
                b"\xed\xa0\x80",
                "invalid byte sequence 0xed at byte offset 0",
            ), // encoded surrogate
            (
                b"x\xf4\x90\x80\x80",
                "invalid byte sequence 0xf4 at byte offset 1",
            ), // over U+10FFFF
            (b"\xc0\xaf", "invalid byte sequence 0xc0 at byte offset 0"), // overlong
            (b"a#\xff", "invalid byte sequence 0xff at byte offset 2"),
        ];
        for (bad, expected) in cases {
            let e = error_of(&[b"ok", bad]);
            let m = e.message();
            assert!(
                m.starts_with("feature_names[1] is not valid UTF-8: "),
                "{m}"
            );
            assert!(m.contains(expected), "{m} lacks {expected}");
        }
        // The first bad entry is reported, and nothing is hashed before the check.
        assert!(error_of(&[b"\xff", b"\xfe"])
            .message()
            .starts_with("feature_names[0]"));
        let e = feature_id_bytes(b"a\xff").unwrap_err();
        assert!(
            e.message()
                .starts_with("the feature name is not valid UTF-8"),
            "{e}"
        );
    }

    #[test]
    fn a_long_bad_name_is_shown_in_part() {
        let mut name = vec![b'z'; 10_000];
        name.push(0xff);
        let e = error_of(&[&name]);
        assert!(e.message().contains("at byte offset 10000"), "{e}");
        assert!(e.message().contains("zz\"... (10001 bytes)"), "{e}");
        assert!(e.message().len() < 400, "{e}");
    }

    #[test]
    fn mismatched_output_is_an_internal_error() {
        let e = write_feature_ids(&["a"], &mut [0; 2]).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Internal);
    }
}
