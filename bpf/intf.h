/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Types and constants shared by the BPF scheduler and the Rust agent.
 * The Rust side sees them through bindgen (src/sched/bpf_intf.rs), so a field
 * added here is visible on both sides without a hand-kept copy.
 */
#ifndef __SCX_PILOT_INTF_H
#define __SCX_PILOT_INTF_H

#ifndef __VMLINUX_H__
typedef unsigned char u8;
typedef unsigned int u32;
typedef unsigned long long u64;
#endif

enum pilot_consts {
	/* Upper bound on PIDs that can carry a strategy at once. */
	MAX_STRATEGY_PIDS	= 65536,
	/* Upper bound on CPUs the per-CPU state is sized for. */
	MAX_CPUS		= 1024,

	/* Dispatch queue of tasks with a priority strategy: always consumed first. */
	PRIO_DSQ		= 0,
	/* Dispatch queue of every other task, ordered by weighted virtual time. */
	SHARED_DSQ		= 1,

	STRATEGY_F_PRIORITY	= 1 << 0,
};

/*
 * Value of the strategy map (key: u32 pid or tgid).
 * slice_ns and flags are written by user space; nr_hits is incremented by BPF
 * each time the entry decides how a task is queued, so user space can prove that
 * a strategy is in effect. A user-space update of an entry resets nr_hits.
 */
struct strategy {
	u64 slice_ns;
	u64 nr_hits;
	u32 flags;
	u32 __pad;
};

#endif /* __SCX_PILOT_INTF_H */
