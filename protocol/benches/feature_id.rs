//! Feature ids: the cost of hashing one name (UTF-16LE conversion and
//! MurmurHash3 on the `murmur3` crate). Ids are computed once per layer or
//! kernel construction, never per batch, so this only has to be far below
//! the microseconds an op call costs. Run: `cargo bench -p bpr-protocol --bench feature_id`.

use bpr_protocol::feature_id;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;

fn names(c: &mut Criterion) {
    let mut group = c.benchmark_group("feature_id");
    let long = "feature.".repeat(625); // 5,000 characters
    for (label, name) in [
        ("prediction", "prediction"),
        ("dotted_29", "recap.engagement.is_favorited"),
        ("hash_rule", "user.embedding#dim_17"),
        ("ascii_5000", long.as_str()),
    ] {
        group.throughput(Throughput::Bytes(name.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(label), name, |b, name| {
            b.iter(|| feature_id(black_box(name)))
        });
    }
    group.finish();
}

criterion_group!(benches, names);
criterion_main!(benches);
