// Extra memory of the encoder beyond the output buffer: counted by a global
// allocator, it must not grow with the batch (issue: performance, memory target).

use bpr_protocol::{write_continuous, write_tensor_response, Data, Serial, Tensor};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Counting;

thread_local! {
    // Per thread, so tests running in parallel do not count each other.
    static ALLOCATED: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: defers to the system allocator; only adds a thread-local counter.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATED.with(|a| a.set(a.get() + layout.size()));
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Bytes allocated while `f` runs on this thread.
fn allocated_by(f: impl FnOnce()) -> usize {
    let before = ALLOCATED.with(Cell::get);
    f();
    ALLOCATED.with(Cell::get) - before
}

fn continuous_extra(batch: usize, k: usize) -> usize {
    let keys: Vec<i64> = (0..k as i64).collect();
    let values = vec![0.5f32; batch * k];
    let (kd, vd) = ([k as i64], [batch as i64, k as i64]);
    let kt = Tensor::new(&kd, Data::I64(&keys)).unwrap();
    let vt = Tensor::new(&vd, Data::F32(&values)).unwrap();
    let mut out = vec![0u8; bpr_protocol::continuous_size(&kt, &vt).unwrap()];
    allocated_by(|| write_continuous(&kt, &vt, &mut out).unwrap())
}

fn tensor_extra(batch: usize, with_strings: bool) -> usize {
    let keys = [1i64, 2, 3];
    let floats = vec![1.5f32; batch * 16];
    let ints = vec![7i64; batch * 4];
    let strings: Vec<Vec<u8>> = (0..batch * 2)
        .map(|i| format!("s{i}").into_bytes())
        .collect();
    let (d16, d4, d2) = ([batch as i64, 16], [batch as i64, 4], [batch as i64, 2]);
    let kd = [3i64];
    let kt = Tensor::new(&kd, Data::I64(&keys)).unwrap();
    let third = if with_strings {
        Tensor::new(&d2, Data::Str(&strings)).unwrap()
    } else {
        Tensor::new(&d16, Data::F32(&floats)).unwrap()
    };
    let values = [
        Tensor::new(&d16, Data::F32(&floats)).unwrap(),
        Tensor::new(&d4, Data::I64(&ints)).unwrap(),
        third,
    ];
    let mut out = vec![0u8; bpr_protocol::tensor_response_size(&kt, &values).unwrap()];
    allocated_by(|| write_tensor_response(&kt, &values, &mut out).unwrap())
}

#[test]
fn continuous_extra_memory_does_not_grow_with_the_batch() {
    let small = continuous_extra(10, 16);
    let large = continuous_extra(100_000, 16);
    println!("continuous K=16: {small} bytes allocated at B=10, {large} at B=100000");
    assert_eq!(small, large);
    assert_eq!(large, 0, "the continuous writer needs no heap memory");
}

#[test]
fn tensor_extra_memory_does_not_grow_with_the_batch() {
    for with_strings in [false, true] {
        let small = tensor_extra(10, with_strings);
        let large = tensor_extra(100_000, with_strings);
        println!("tensor (strings: {with_strings}): {small} bytes at B=10, {large} at B=100000");
        assert_eq!(small, large);
        assert!(large <= 4096, "{large} bytes for 3 columns");
    }
}

/// The AVX2 writers (what the TensorFlow op runs on AVX2 CPUs): no heap memory for the continuous
/// writer, at any K (fixed-K and general loops), and none that grows with the batch for the tensor
/// writer.
#[cfg(target_arch = "x86_64")]
#[test]
fn avx2_writers_extra_memory_does_not_grow_with_the_batch() {
    if !is_x86_feature_detected!("avx2") {
        return;
    }
    for k in [4usize, 13] {
        for batch in [10usize, 100_000] {
            let keys: Vec<i64> = (0..k as i64).collect();
            let values = vec![0.5f32; batch * k];
            let (kd, vd) = ([k as i64], [batch as i64, k as i64]);
            let kt = Tensor::new(&kd, Data::I64(&keys)).unwrap();
            let vt = Tensor::new(&vd, Data::F32(&values)).unwrap();
            let plan = bpr_protocol::plan_continuous(&kt, &vt).unwrap();
            let mut out = vec![0u8; plan.size()];
            // SAFETY: this CPU has AVX2 (checked above).
            let extra = allocated_by(|| unsafe { plan.write_avx2(&mut out, &Serial) }.unwrap());
            assert_eq!(
                extra, 0,
                "K={k} B={batch}: the AVX2 continuous writer allocated"
            );
        }
    }
    let tensor = |batch: usize| {
        let keys = [1i64, 2];
        let floats = vec![1.5f32; batch * 16];
        let d16 = [batch as i64, 16];
        let kt = Tensor::new(&[2], Data::I64(&keys)).unwrap();
        let values = [
            Tensor::new(&d16, Data::F32(&floats)).unwrap(),
            Tensor::new(&d16, Data::F32(&floats)).unwrap(),
        ];
        let plan = bpr_protocol::plan_tensor_response(&kt, &values).unwrap();
        let mut out = vec![0u8; plan.size()];
        // SAFETY: this CPU has AVX2 (checked above).
        allocated_by(|| unsafe { plan.write_avx2(&mut out, &Serial) }.unwrap())
    };
    let (small, large) = (tensor(10), tensor(100_000));
    println!("AVX2 tensor, 2 raw columns: {small} bytes allocated at B=10, {large} at B=100000");
    assert_eq!(small, large);
    assert!(large <= 4096, "{large} bytes");
}

/// What the TensorFlow kernel does on every call after its first: plan through its
/// TensorPlanCache (the frame is reused) and write. One allocation is left, the list of the
/// call's value views (24 bytes a column), whatever the batch.
#[test]
fn a_cached_tensor_plan_allocates_only_its_value_views() {
    let cache = bpr_protocol::TensorPlanCache::new();
    let call = |batch: usize| {
        let keys = [1i64, 2, 3];
        let floats = vec![1.5f32; batch * 16];
        let ints = vec![7i64; batch * 4];
        let (d16, d4) = ([batch as i64, 16], [batch as i64, 4]);
        let kt = Tensor::new(&[3], Data::I64(&keys)).unwrap();
        let values = [
            Tensor::new(&d16, Data::F32(&floats)).unwrap(),
            Tensor::new(&d4, Data::I64(&ints)).unwrap(),
            Tensor::new(&d16, Data::F32(&floats)).unwrap(),
        ];
        let mut out = vec![0u8; bpr_protocol::tensor_response_size(&kt, &values).unwrap()];
        allocated_by(|| {
            let plan = cache.plan(&kt, &values).unwrap();
            plan.write(&mut out, &Serial).unwrap();
        })
    };
    let first = call(10);
    let (small, large) = (call(10), call(100_000));
    println!(
        "cached tensor plan, 3 raw columns: {first} bytes on the first call, then {small} at B=10, {large} at B=100000"
    );
    assert_eq!(small, large);
    assert!(small <= 3 * 24, "{small} bytes");
}

/// Rows of 2 GiB - 4 bytes in three columns make records of 6 GiB: with a
/// batch of 0 the call writes 10 bytes and must not allocate a record's worth
/// of anything (a template of that size would be an out-of-memory abort in
/// the server; cargo fuzz found it). With a cache too, as the kernel plans.
#[test]
fn records_of_gigabytes_allocate_no_template() {
    let keys = [1i64, 2, 3];
    let row = (i32::MAX / 4) as i64; // f32 elements: 2^31 - 4 bytes per row
    let dims = [0, row];
    let kt = Tensor::new(&[3], Data::I64(&keys)).unwrap();
    let values = [
        Tensor::new(&dims, Data::F32(&[])).unwrap(),
        Tensor::new(&dims, Data::F32(&[])).unwrap(),
        Tensor::new(&dims, Data::F32(&[])).unwrap(),
    ];
    let cache = bpr_protocol::TensorPlanCache::new();
    let mut out = vec![0u8; bpr_protocol::tensor_response_size(&kt, &values).unwrap()];
    assert_eq!(out.len(), 9);
    for _ in 0..2 {
        let bytes = allocated_by(|| {
            write_tensor_response(&kt, &values, &mut out).unwrap();
            cache
                .plan(&kt, &values)
                .unwrap()
                .write(&mut out, &Serial)
                .unwrap();
        });
        assert!(
            bytes < 4096,
            "{bytes} bytes allocated for a 9-byte response"
        );
    }
}
