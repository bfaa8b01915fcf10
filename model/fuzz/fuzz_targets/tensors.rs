//! Fuzzes twml's small tensor ops (bpr_model::tensors): on any input each op
//! either returns an error or fills exactly its output, every element once,
//! from in-range sources, with the invariants twml's loops give (segment by
//! segment, in order; counts that sum back; n-grams sorted and distinct).
#![no_main]

use arbitrary::Arbitrary;
use bpr_model::tensors::*;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    segment_ids: Vec<i16>,
    values_extra: i8,
    max_length: i8,
    batch_size: Option<i16>,
    word: Vec<u8>,
    min_n: u8,
    max_n: u8,
    hash_keys: Vec<i8>,
    hash_values: Vec<i64>,
    keys: Vec<i8>,
    sample_ids: Vec<i16>,
    counts: Vec<i8>,
    width: Vec<i32>,
}

fn fixed_length(inp: &Input) {
    let ids: Vec<i64> = inp.segment_ids.iter().map(|&i| i64::from(i)).collect();
    let num_values = (ids.len() as i64 + i64::from(inp.values_extra % 2)).max(0) as usize;
    let (op, batch) = match inp.batch_size {
        None => (FixedLengthOp::V1, None),
        Some(b) => (FixedLengthOp::V2, Some(i64::from(b))),
    };
    let Ok(plan) = FixedLength::plan(op, &ids, num_values, i64::from(inp.max_length), batch) else {
        return;
    };
    assert_eq!(num_values, ids.len());
    let total = plan.batch_size * plan.max_length;
    let mut next = 0;
    let mut last_source: Option<usize> = None;
    plan.fill(&ids, |k, from| {
        assert_eq!(k, next, "every element once, in order");
        next += 1;
        if let Some(i) = from {
            assert!(i < ids.len());
            assert_eq!(
                ids[i] as usize,
                k / plan.max_length,
                "a value lands in its segment's row"
            );
            assert!(last_source.is_none_or(|l| i > l), "values in order");
            last_source = Some(i);
        }
    });
    assert_eq!(next, total);
}

fn substrings(inp: &Input) {
    let Ok(s) = Substrings::new(i64::from(inp.min_n % 8), i64::from(inp.max_n % 8)) else {
        unreachable!("non-negative lengths are valid");
    };
    let mut out = Vec::new();
    s.of(&inp.word, &mut out);
    if !inp.word.contains(&b';') {
        let parts: Vec<&[u8]> = out.split(|&b| b == b';').collect();
        assert!(parts.windows(2).all(|w| w[0] < w[1]), "sorted and distinct");
    }
}

fn hashmap(inp: &Input) {
    let keys: Vec<i64> = inp.hash_keys.iter().map(|&k| i64::from(k)).collect();
    let cache = HashTableCache::new();
    let Ok(table) = cache.table(&keys, &inp.hash_values) else {
        assert_ne!(keys.len(), inp.hash_values.len());
        return;
    };
    let lookups: Vec<i64> = inp.keys.iter().map(|&k| i64::from(k)).collect();
    let (mut values, mut mask) = (vec![0; lookups.len()], vec![0i8; lookups.len()]);
    table.lookup(&lookups, &mut values, &mut mask);
    for ((&k, &v), &m) in lookups.iter().zip(&values).zip(&mask) {
        match keys.iter().rposition(|&h| h == k) {
            Some(p) => assert_eq!((v, m), (inp.hash_values[p], 1)),
            None => assert_eq!((v, m), (k, 0)),
        }
    }
}

fn sample_ids(inp: &Input) {
    let ids: Vec<i32> = inp.sample_ids.iter().map(|&i| i32::from(i)).collect();
    if let Ok(n) = compressed_len(&ids) {
        let mut counts = vec![0; n];
        compress_sample_ids(&ids, &mut counts);
        let mut back = vec![0; decompressed_len(&counts).unwrap()];
        decompress_sample_ids(&counts, &mut back);
        assert_eq!(back, ids);
    }
    let counts: Vec<i32> = inp.counts.iter().map(|&c| i32::from(c)).collect();
    if let Ok(n) = decompressed_len(&counts) {
        let mut out = vec![-1; n];
        decompress_sample_ids(&counts, &mut out);
        assert!(out.windows(2).all(|w| w[0] <= w[1]));
    }
    let _ = var_length_width(&inp.width);
}

fuzz_target!(|inp: Input| {
    fixed_length(&inp);
    substrings(&inp);
    hashmap(&inp);
    sample_ids(&inp);
});
