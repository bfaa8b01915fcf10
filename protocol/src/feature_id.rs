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
    let mut bytes = Vec::with_capacity(2 * name.len() + 8);
    match name.find('#') {
        Some(k) if k > 0 => {
            let prefix = h1(utf16le(&name[..k], &mut bytes));
            bytes.clear();
            bytes.extend_from_slice(&prefix.to_le_bytes());
            h1(utf16le(&name[k + 1..], &mut bytes)) as i64
        }
        _ => h1(utf16le(name, &mut bytes)) as i64,
    }
}

/// The feature id of a name given as bytes, which must be UTF-8.
pub fn feature_id_bytes(name: &[u8]) -> Result<i64> {
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

/// Appends the UTF-16LE bytes of `s` to `out` and returns `out`.
fn utf16le<'a>(s: &str, out: &'a mut Vec<u8>) -> &'a [u8] {
    for unit in s.encode_utf16() {
        out.extend_from_slice(&unit.to_le_bytes());
    }
    out
}

/// h1 of MurmurHash3 x64 128 with seed 0: the digest's first 8 bytes, little-endian.
fn h1(mut bytes: &[u8]) -> u64 {
    // The crate packs h1 into the low 64 bits. It reads through io::Read, and
    // `impl Read for &[u8]` has no error path, so the expect never fires.
    murmur3::murmur3_x64_128(&mut bytes, 0).expect("reading a byte slice cannot fail") as u64
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

    fn digest_h1(bytes: &[u8]) -> u64 {
        h1(bytes)
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
