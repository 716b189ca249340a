//! Cost of reading one .bss snapshot and of applying a 10,000-entry strategy
//! diff, on real kernel maps (maps-only load; needs root).
//! Run: `sudo cargo bench --bench sched_maps`.

use std::mem::MaybeUninit;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use scx_pilot::sched::{bss, maps_only, StrategyMapWriter};
use scx_pilot::strategy::{DesiredStrategies, PidStrategy};

fn set(range: std::ops::Range<u32>, slice_ns: u64) -> DesiredStrategies {
    range
        .map(|pid| {
            (
                pid,
                PidStrategy {
                    slice_ns,
                    priority: pid % 2 == 0,
                },
            )
        })
        .collect()
}

fn benches(c: &mut Criterion) {
    let mut open_object = MaybeUninit::uninit();
    let skel = maps_only::load(&mut open_object).expect("maps-only load (run as root)");
    let bss_data = skel.maps.bss_data.as_deref().unwrap();

    c.bench_function("bss_snapshot", |b| {
        b.iter(|| bss::sample(std::hint::black_box(bss_data)))
    });

    let map = &skel.maps.strategies;
    let empty = DesiredStrategies::new();
    let full = set(1000..11_000, 1_000_000);
    // From empty to 10,000 entries.
    c.bench_function("strategy_diff_insert_10000", |b| {
        b.iter_batched(
            || {
                let mut w = StrategyMapWriter::new();
                w.apply(map, &empty).unwrap();
                w
            },
            |mut w| {
                w.apply(map, &full).unwrap();
                w.apply(map, &empty).unwrap();
            },
            BatchSize::PerIteration,
        )
    });
    // A mixed diff touching 10,000 entries: 5,000 deletes, 5,000 inserts.
    let shifted = set(6000..16_000, 1_000_000);
    c.bench_function("strategy_diff_mixed_10000", |b| {
        let mut w = StrategyMapWriter::new();
        w.apply(map, &full).unwrap();
        let mut flip = false;
        b.iter(|| {
            flip = !flip;
            w.apply(map, if flip { &shifted } else { &full }).unwrap();
        })
    });
}

criterion_group! {
    name = sched;
    config = Criterion::default().sample_size(20);
    targets = benches
}
criterion_main!(sched);
