//! Unit tests of the small tensor ops against references written from twml's
//! C++ loops (twml/libtwml/src/ops/*.cpp), not from the code above.

use super::*;
use proptest::prelude::*;

/// twml's FixedLengthTensor loop, row by row, for inputs it handles.
fn twml_fixed_length(
    ids: &[i64],
    values: &[i64],
    pad: i64,
    max_length: i64,
    batch: Option<i64>,
) -> (i64, i64, Vec<i64>) {
    let mut max_len = max_length;
    if max_len < 0 && !ids.is_empty() {
        let (mut cur, mut len) = (ids[0], 1);
        for &id in &ids[1..] {
            if id == cur {
                len += 1;
            } else {
                cur = id;
                max_len = max_len.max(len);
                len = 1;
            }
        }
        max_len = max_len.max(len);
    }
    let b = batch.unwrap_or_else(|| ids.last().map_or(0, |l| l + 1));
    let mut out = vec![0; (b * max_len.max(0)) as usize];
    let (mut n, mut offset) = (0usize, 0usize);
    for i in 0..b {
        for j in 0..max_len as usize {
            if n < ids.len() && ids[n] == i {
                out[offset + j] = values[n];
                n += 1;
            } else {
                out[offset + j] = pad;
            }
        }
        while n < ids.len() && ids[n] == i {
            n += 1;
        }
        offset += max_len as usize;
    }
    (b, max_len, out)
}

fn sorted_ids() -> impl Strategy<Value = Vec<i64>> {
    prop::collection::vec(0i64..4, 0..20).prop_map(|steps| {
        let mut id = 0;
        steps
            .into_iter()
            .map(|s| {
                id += s / 2; // about half the steps stay in the same segment
                id
            })
            .collect()
    })
}

proptest! {
    #[test]
    fn fixed_length_is_twmls(ids in sorted_ids(), max_length in -1i64..5, extra in 0i64..3) {
        let values: Vec<i64> = (0..ids.len() as i64).map(|v| v * 10 + 7).collect();
        for (op, batch) in [(FixedLengthOp::V1, None), (FixedLengthOp::V2, Some(ids.last().map_or(0, |l| l + 1) + extra))] {
            if ids.is_empty() && max_length < 0 {
                continue; // twml aborts; checked below
            }
            let (b, w, want) = twml_fixed_length(&ids, &values, -5, max_length, batch);
            let plan = FixedLength::plan(op, &ids, values.len(), max_length, batch).unwrap();
            prop_assert_eq!((plan.batch_size as i64, plan.max_length as i64), (b, w));
            let mut out = vec![99; plan.batch_size * plan.max_length];
            plan.fill_values(&ids, &values, -5, &mut out);
            prop_assert_eq!(out, want);
        }
    }

    #[test]
    fn compress_then_decompress_is_the_identity(ids in sorted_ids()) {
        let ids: Vec<i32> = ids.into_iter().map(|i| i as i32).collect();
        let n = compressed_len(&ids).unwrap();
        let mut counts = vec![-1; n];
        compress_sample_ids(&ids, &mut counts);
        for (s, &c) in counts.iter().enumerate() {
            prop_assert_eq!(c as usize, ids.iter().filter(|&&i| i as usize == s).count());
        }
        let m = decompressed_len(&counts).unwrap();
        let mut back = vec![-1; m];
        decompress_sample_ids(&counts, &mut back);
        prop_assert_eq!(back, ids);
    }

    #[test]
    fn extract_keeps_the_masked_elements_in_order(mask in prop::collection::vec(any::<bool>(), 0..40)) {
        let input: Vec<i64> = (0..mask.len() as i64).map(|v| v * 3 + 1).collect();
        let want: Vec<i64> = input.iter().zip(&mask).filter(|(_, &m)| m).map(|(&v, _)| v).collect();
        let mut out = vec![-9; want.len()];
        extract(&mask, &input, &mut out);
        prop_assert_eq!(out, want);
    }

    #[test]
    fn substrings_are_sorted_distinct_and_cover_every_ngram(word in prop::collection::vec(any::<u8>(), 0..12), min_n in 0i64..4, span in 0i64..4) {
        let s = Substrings::new(min_n, min_n + span).unwrap();
        let mut out = Vec::new();
        s.of(&word, &mut out);
        let parts: Vec<&[u8]> = if out.is_empty() { vec![] } else { out.split(|&b| b == b';').collect() };
        // Words with ';' are ambiguous once joined (as in twml); check those by count only.
        if !word.contains(&b';') {
            let mut sorted = parts.clone();
            sorted.sort();
            sorted.dedup();
            prop_assert_eq!(&sorted, &parts);
            let wrapped: Vec<u8> = [&b"<"[..], &word, &b">"[..]].concat();
            prop_assert!(parts.contains(&&word[..]));
            prop_assert!(parts.contains(&&wrapped[..]));
            for i in 0..wrapped.len() {
                for n in (min_n as usize)..=((min_n + span) as usize) {
                    if i + n <= wrapped.len() {
                        let g = &wrapped[i..i + n];
                                                if wrapped[i] & 0xC0 != 0x80 {
                            prop_assert!(parts.contains(&g));
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn fixed_length_truncates_pads_and_infers_the_width() {
    let ids = [0i32, 0, 0, 2, 2];
    let values = [1i64, 2, 3, 4, 5];
    let plan = FixedLength::plan(FixedLengthOp::V1, &ids, 5, -1, None).unwrap();
    assert_eq!(
        plan,
        FixedLength {
            batch_size: 3,
            max_length: 3
        }
    );
    let mut out = vec![0; 9];
    plan.fill_values(&ids, &values, -1, &mut out);
    assert_eq!(out, [1, 2, 3, -1, -1, -1, 4, 5, -1]);
    let plan = FixedLength::plan(FixedLengthOp::V2, &ids, 5, 2, Some(4)).unwrap();
    let mut out = vec![0; 8];
    plan.fill_values(&ids, &values, -1, &mut out);
    assert_eq!(out, [1, 2, -1, -1, 4, 5, -1, -1]);
}

#[test]
fn fixed_length_refuses_what_twml_aborts_on_or_drops() {
    let err = |ids: &[i64], n: usize, m: i64, b: Option<i64>| {
        FixedLength::plan(
            if b.is_some() {
                FixedLengthOp::V2
            } else {
                FixedLengthOp::V1
            },
            ids,
            n,
            m,
            b,
        )
        .unwrap_err()
        .to_string()
    };
    assert!(
        err(&[-1], 1, -1, None).contains("segment_ids must be non-negative; segment_ids[0] = -1")
    );
    assert!(err(&[1, 0], 2, -1, None)
        .contains("sorted (non-decreasing); segment_ids[1] = 0 follows segment_ids[0] = 1"));
    assert!(err(&[0, 1], 1, -1, None).contains("segment_ids has 2 elements, values 1"));
    assert!(err(&[0], 1, -1, Some(-2)).contains("batch_size must be non-negative, got -2"));
    assert!(err(&[0, 3], 2, -1, Some(3)).contains("below batch_size 3; the last is 3"));
    assert!(err(&[0], 1, i64::MAX, None).contains("too large"));
    // Empty batch and max_length -1: twml's shape [0, -1] aborted.
    let empty: [i64; 0] = [];
    assert_eq!(
        FixedLength::plan(FixedLengthOp::V1, &empty, 0, -1, None).unwrap(),
        FixedLength {
            batch_size: 0,
            max_length: 0
        }
    );
    assert_eq!(
        FixedLength::plan(FixedLengthOp::V2, &empty, 0, -1, Some(3)).unwrap(),
        FixedLength {
            batch_size: 3,
            max_length: 0
        }
    );
}

#[test]
fn fixed_length_with_many_empty_rows_of_width_zero_is_quick() {
    let ids = [1i64 << 40];
    let plan = FixedLength::plan(FixedLengthOp::V1, &ids, 1, 0, None).unwrap();
    assert_eq!(plan.batch_size, (1 << 40) + 1);
    let mut calls = 0;
    plan.fill(&ids, |_, _| calls += 1);
    assert_eq!(calls, 0);
}

#[test]
fn compress_and_decompress_refuse_bad_ids() {
    assert!(compressed_len(&[-1, 0])
        .unwrap_err()
        .to_string()
        .contains("input[0] = -1"));
    assert!(compressed_len(&[0, 2, 1])
        .unwrap_err()
        .to_string()
        .contains("input[2] = 1 follows input[1] = 2"));
    assert_eq!(compressed_len(&[]).unwrap(), 0);
    assert!(decompressed_len(&[1, -3])
        .unwrap_err()
        .to_string()
        .contains("input[1] = -3"));
    // Past 2^31 in total: twml's int sum went negative.
    assert_eq!(
        decompressed_len(&[i32::MAX, i32::MAX]).unwrap(),
        2 * i32::MAX as usize
    );
}

#[test]
fn var_length_width_is_the_first_element() {
    assert_eq!(var_length_width(&[3, 9]).unwrap(), 3);
    assert_eq!(var_length_width(&[0]).unwrap(), 0);
    assert!(var_length_width(&[])
        .unwrap_err()
        .to_string()
        .contains("at least one element"));
    assert!(var_length_width(&[-2])
        .unwrap_err()
        .to_string()
        .contains("got -2"));
}

#[test]
fn feature_mask_matches_int8_and_int64_by_value() {
    let m = FeatureMask::new(&[3, -1, 300]);
    let mut out = [false; 4];
    m.apply(&[3i64, 4, -1, 300], &mut out);
    assert_eq!(out, [true, false, true, true]);
    let mut out = [false; 3];
    m.apply(&[3i8, 44, -1], &mut out);
    assert_eq!(out, [true, false, true]);
}

#[test]
fn hashmap_looks_up_passes_misses_through_and_lets_the_last_duplicate_win() {
    let cache = HashTableCache::new();
    let t = cache.table(&[1, 2, 1], &[10, 20, 11]).unwrap();
    let (mut v, mut m) = ([0i64; 4], [9i8; 4]);
    t.lookup(&[1, 2, 3, -7], &mut v, &mut m);
    assert_eq!(v, [11, 20, 3, -7]);
    assert_eq!(m, [1, 1, 0, 0]);
    // The same table again is the cached one; another table is used as given.
    assert!(Arc::ptr_eq(
        &t,
        &cache.table(&[1, 2, 1], &[10, 20, 11]).unwrap()
    ));
    let t2 = cache.table(&[3], &[30]).unwrap();
    t2.lookup(&[1, 2, 3, -7], &mut v, &mut m);
    assert_eq!(v, [1, 2, 30, -7]);
    assert_eq!(m, [0, 0, 1, 0]);
    assert!(cache
        .table(&[1, 2], &[1])
        .unwrap_err()
        .to_string()
        .contains("got 2 and 1"));
}

#[test]
fn feature_extractor_keeps_masked_rows_and_checks_sizes() {
    let mask = [true, false, true];
    assert_eq!(
        extracted_len(&mask, &[("ids_in", 3), ("keys_in", 3)]).unwrap(),
        2
    );
    let e = extracted_len(&mask, &[("ids_in", 3), ("keys_in", 2)])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("keys_in differs (mask_in 3, ids_in 3, keys_in 2)"),
        "{e}"
    );
    let mut out = [0.0f32; 2];
    extract(&mask, &[1.5f32, 2.5, f32::NAN], &mut out);
    assert_eq!(out[0], 1.5);
    assert!(out[1].is_nan());
}

#[test]
fn substrings_are_twmls_on_known_words() {
    let s = Substrings::new(2, 3).unwrap();
    let mut out = Vec::new();
    s.of(b"abc", &mut out);
    // <abc>: 2-grams <a ab bc c>, 3-grams <ab abc bc>, plus abc and <abc>.
    assert_eq!(out, b"<a;<ab;<abc>;ab;abc;bc;bc>;c>");
    s.of(b"", &mut out);
    // The empty word itself sorts first: a leading ';' as in twml.
    assert_eq!(out, b";<>");
    // Bytes, not characters: "é" is 2 bytes; no n-gram starts on its second.
    Substrings::new(1, 1).unwrap().of("é".as_bytes(), &mut out);
    assert_eq!(out, b"<;<\xc3\xa9>;>;\xc3;\xc3\xa9");
    assert!(Substrings::new(-1, 3)
        .unwrap_err()
        .to_string()
        .contains("min_n"));
    assert!(Substrings::new(1, -3)
        .unwrap_err()
        .to_string()
        .contains("max_n"));
    // min_n > max_n: only the word and <word>, as twml.
    Substrings::new(4, 2).unwrap().of(b"ab", &mut out);
    assert_eq!(out, b"<ab>;ab");
}
