//! The .bss reader and the strategy-map writer against real kernel BPF maps:
//! the scheduler object is loaded maps-only (no struct_ops, no programs), which
//! works on any kernel with BPF, as root.

use std::collections::HashMap;
use std::mem::MaybeUninit;

use libbpf_rs::{MapCore, MapFlags};
use scx_pilot::sched::bpf_skel::BpfSkel;
use scx_pilot::sched::strategy_map::{read_map, ApplyStats};
use scx_pilot::sched::{bss, maps_only, StrategyMapWriter};
use scx_pilot::strategy::{DesiredStrategies, PidStrategy};

fn require_root() {
    // SAFETY: no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "these tests load BPF maps into the kernel and need root: run `sudo make test`"
    );
}

fn with_skel(f: impl FnOnce(&mut BpfSkel)) {
    require_root();
    let mut open_object = MaybeUninit::uninit();
    let mut skel = maps_only::load(&mut open_object).expect("maps-only load");
    f(&mut skel);
}

fn strat(slice_ns: u64, priority: bool) -> PidStrategy {
    PidStrategy { slice_ns, priority }
}

fn kernel_entries(skel: &BpfSkel) -> HashMap<u32, PidStrategy> {
    read_map(&skel.maps.strategies)
        .unwrap()
        .into_iter()
        .map(|e| (e.pid, e.strategy))
        .collect()
}

#[test]
fn bss_reader_sees_kernel_writes() {
    with_skel(|skel| {
        // Write the .bss through the bpf() syscall, not through our mapping, so
        // the reader can only pass by reading the kernel's memory.
        let size = skel.maps.bss.value_size() as usize;
        let mut value = vec![0u8; size];
        let before = bss::read_bss(skel.maps.bss_data.as_deref().unwrap()).0;
        assert_eq!(before.nr_kernel_dispatches, 0);

        let offset_of = |name: &str| -> usize {
            // Field offsets from the generated skeleton type, via a pointer diff.
            let b = skel.maps.bss_data.as_deref().unwrap();
            let base = b as *const _ as usize;
            match name {
                "usersched_pid" => &b.usersched_pid as *const _ as usize - base,
                "nr_queued" => &b.nr_queued as *const _ as usize - base,
                // Counters are kept per CPU; the reader sums them.
                "nr_kernel_dispatches@0" => {
                    &b.pcpu_counters[0].nr_kernel_dispatches as *const _ as usize - base
                }
                "nr_kernel_dispatches@1" => {
                    &b.pcpu_counters[1].nr_kernel_dispatches as *const _ as usize - base
                }
                "nr_sched_congested@1" => {
                    &b.pcpu_counters[1].nr_sched_congested as *const _ as usize - base
                }
                "nr_preemptions@0" => {
                    &b.pcpu_counters[0].nr_preemptions as *const _ as usize - base
                }
                _ => unreachable!(),
            }
        };
        value[offset_of("usersched_pid")..][..4].copy_from_slice(&4242u32.to_ne_bytes());
        value[offset_of("nr_queued")..][..8].copy_from_slice(&7u64.to_ne_bytes());
        value[offset_of("nr_kernel_dispatches@0")..][..8]
            .copy_from_slice(&123_000u64.to_ne_bytes());
        value[offset_of("nr_kernel_dispatches@1")..][..8].copy_from_slice(&456u64.to_ne_bytes());
        value[offset_of("nr_sched_congested@1")..][..8].copy_from_slice(&3u64.to_ne_bytes());
        value[offset_of("nr_preemptions@0")..][..8].copy_from_slice(&99u64.to_ne_bytes());
        skel.maps
            .bss
            .update(&0u32.to_ne_bytes(), &value, MapFlags::ANY)
            .expect("bpf map update of .bss");

        let (data, policy) = bss::read_bss(skel.maps.bss_data.as_deref().unwrap());
        assert_eq!(data.usersched_pid, 4242);
        assert_eq!(data.nr_queued, 7);
        assert_eq!(data.nr_kernel_dispatches, 123_456);
        assert_eq!(data.nr_sched_congested, 3);
        assert_eq!(data.nr_running, 0);
        assert_eq!(policy.nr_preemptions, 99);

        let sample = bss::sample(skel.maps.bss_data.as_deref().unwrap());
        // Not in the BPF program: the time of the sample.
        assert_eq!(
            sample.bss.usersched_last_run_at,
            sample.timestamp.timestamp_nanos_opt().unwrap() as u64
        );
        let mut same = sample.bss;
        same.usersched_last_run_at = data.usersched_last_run_at;
        assert_eq!(same, data);
    });
}

#[test]
fn writer_inserts_updates_and_deletes() {
    with_skel(|skel| {
        let map = &skel.maps.strategies;
        let mut writer = StrategyMapWriter::new();

        let mut desired: DesiredStrategies = [
            (100, strat(20_000_000, true)),
            (200, strat(1_000_000, false)),
        ]
        .into();
        let stats = writer.apply(map, &desired).unwrap();
        assert_eq!(
            stats,
            ApplyStats {
                inserted: 2,
                ..Default::default()
            }
        );
        assert_eq!(kernel_entries(skel), desired);

        // Update one, delete one, add one: exactly those three changes.
        desired.insert(100, strat(5_000_000, false));
        desired.remove(&200);
        desired.insert(300, strat(50_000, true));
        let stats = writer.apply(map, &desired).unwrap();
        assert_eq!(
            stats,
            ApplyStats {
                inserted: 1,
                updated: 1,
                deleted: 1,
                failed: 0
            }
        );
        assert_eq!(kernel_entries(skel), desired);

        assert!(stats.keys_changed());

        // A new value under every key it had: no key added or removed, so
        // what BPF remembers per task (which key holds its strategy) holds.
        desired.insert(300, strat(60_000, true));
        let stats = writer.apply(map, &desired).unwrap();
        assert_eq!(
            stats,
            ApplyStats {
                updated: 1,
                ..Default::default()
            }
        );
        assert!(!stats.keys_changed());
        assert_eq!(kernel_entries(skel), desired);

        // Same set again: nothing to do.
        let stats = writer.apply(map, &desired).unwrap();
        assert_eq!(stats, ApplyStats::default());
        assert!(!stats.keys_changed());

        writer.apply(map, &DesiredStrategies::new()).unwrap();
        assert!(kernel_entries(skel).is_empty());
        assert!(writer.applied().is_empty());
    });
}

#[test]
fn unchanged_entries_keep_their_hit_counters() {
    with_skel(|skel| {
        let map = &skel.maps.strategies;
        let mut writer = StrategyMapWriter::new();
        let desired: DesiredStrategies =
            [(77, strat(3_000_000, true)), (78, strat(3_000_000, false))].into();
        writer.apply(map, &desired).unwrap();

        // Play the BPF side: bump pid 77's hit counter (bytes 8..16 of the value).
        let mut value = map
            .lookup(&77u32.to_ne_bytes(), MapFlags::ANY)
            .unwrap()
            .unwrap();
        value[8..16].copy_from_slice(&41u64.to_ne_bytes());
        map.update(&77u32.to_ne_bytes(), &value, MapFlags::ANY)
            .unwrap();

        let mut next = desired.clone();
        next.insert(78, strat(4_000_000, false));
        let stats = writer.apply(map, &next).unwrap();
        assert_eq!(stats.updated, 1);
        let hits: HashMap<u32, u64> = read_map(map)
            .unwrap()
            .into_iter()
            .map(|e| (e.pid, e.nr_hits))
            .collect();
        assert_eq!(hits[&77], 41, "an untouched entry lost its hits");
        assert_eq!(hits[&78], 0);
    });
}

#[test]
fn ten_thousand_entry_diff() {
    with_skel(|skel| {
        let map = &skel.maps.strategies;
        let mut writer = StrategyMapWriter::new();
        let first: DesiredStrategies = (1000..11_000)
            .map(|pid| (pid, strat(1_000_000 + pid as u64, pid % 2 == 0)))
            .collect();
        let stats = writer.apply(map, &first).unwrap();
        assert_eq!(stats.inserted, 10_000);
        assert_eq!(kernel_entries(skel), first);

        // Shift the window by half: 5,000 deletes, 5,000 inserts, and change every
        // third surviving entry.
        let mut second: DesiredStrategies = (6000..16_000)
            .map(|pid| (pid, strat(1_000_000 + pid as u64, pid % 2 == 0)))
            .collect();
        for pid in (6000..11_000).step_by(3) {
            second.insert(pid, strat(777_000, true));
        }
        let stats = writer.apply(map, &second).unwrap();
        assert_eq!(stats.deleted, 5000);
        assert_eq!(stats.inserted, 5000);
        assert_eq!(stats.updated, (6000..11_000).step_by(3).count());
        assert_eq!(stats.failed, 0);
        assert_eq!(kernel_entries(skel), second);
    });
}

#[test]
fn a_full_map_fails_softly_and_the_mirror_stays_exact() {
    with_skel(|skel| {
        let map = &skel.maps.strategies;
        let capacity = map.max_entries();
        let mut writer = StrategyMapWriter::new();
        let too_many: DesiredStrategies = (2..capacity + 102)
            .map(|pid| (pid, strat(100_000, false)))
            .collect();
        let stats = writer.apply(map, &too_many).unwrap();
        assert!(stats.failed >= 100, "expected refusals, got {stats:?}");
        let in_kernel = kernel_entries(skel);
        assert_eq!(in_kernel.len(), writer.applied().len());
        assert_eq!(&in_kernel, writer.applied());

        // A later, smaller set converges completely, as the scheduler loop
        // writes it: again at each round (here every 50 ms) while the kernel
        // refuses entries. Right after the deletes it may refuse some: a
        // deleted entry's room is free only after an RCU grace period.
        let small: DesiredStrategies = (2..12).map(|pid| (pid, strat(200_000, true))).collect();
        let mut stats = writer.apply(map, &small).unwrap();
        for _ in 0..100 {
            if stats.failed == 0 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
            stats = writer.apply(map, &small).unwrap();
        }
        assert_eq!(stats.failed, 0, "still refused after 5 s of rounds");
        assert_eq!(kernel_entries(skel), small);
        assert_eq!(writer.applied(), &small);
    });
}
