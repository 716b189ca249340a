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
typedef int s32;
typedef unsigned long long u64;
#endif

enum pilot_consts {
	/* Upper bound on PIDs that can carry a strategy at once. */
	MAX_STRATEGY_PIDS	= 65536,
	/* Upper bound on cgroups whose cpu.weight is honoured (others run as 100). */
	MAX_CGROUPS		= 16384,
	/*
	 * Shortest slice handed out when many tasks wait (BPF and the user-space
	 * policy): shorter slices cost more context switches than they save.
	 */
	MIN_SLICE_NS		= 250000,
	/*
	 * Nor below the default slice divided by this (both sides as well): with
	 * a long --slice-us, a 250 us floor would switch far more often than the
	 * configuration asked for.
	 */
	SLICE_MIN_DIVISOR	= 8,
	/*
	 * Defaults of the agent's --slice-us, --starvation-ms and --user-stall-ms
	 * (what each trades off: their doc comments in src/cli/opts.rs); the
	 * agent always sets the BPF side's values before load.
	 */
	DEFAULT_SLICE_NS	= 2000000,
	DEFAULT_STARVATION_NS	= 100000000,
	DEFAULT_USER_STALL_NS	= 500000000,
	/* Upper bound on CPUs the per-CPU state is sized for. */
	MAX_CPUS		= 1024,

	/* Dispatch queue of tasks with a priority strategy: always consumed first. */
	PRIO_DSQ		= 0,
	/* Dispatch queue of every other task, ordered by weighted virtual time. */
	SHARED_DSQ		= 1,
	/*
	 * RESUME_DSQ + cpu (--dispatch user): the tasks the dispatcher decided
	 * for that CPU, which go on there before other normal tasks but after
	 * priority ones.
	 */
	RESUME_DSQ		= 2,

	STRATEGY_F_PRIORITY	= 1 << 0,

	/*
	 * User dispatch mode. Both rings are sized for USER_RING_TASKS records;
	 * a record takes its size plus an 8-byte header, rounded up to 8.
	 */
	USER_RING_TASKS		= 4096,
	USER_RING_BYTES		= USER_RING_TASKS * 64,
	/* Tasks that can be in user space's hands at once. */
	MAX_USER_TASKS		= 2 * USER_RING_TASKS,

	/* queued_task.flags */
	QUEUED_F_WAKEUP		= 1 << 0,	/* queued because it woke up */
	QUEUED_F_STRATEGY	= 1 << 1,	/* slice_ns comes from a strategy */
};

/*
 * Kernel -> user space (BPF ring buffer): a runnable task that waits for the
 * dispatcher's decision. seq identifies this enqueue; a decision that carries
 * another seq is stale and dropped.
 */
struct queued_task {
	u64 seq;
	u64 vtime;		/* the task's weighted virtual time */
	u64 exec_runtime_ns;	/* CPU time used since it last woke up */
	u64 slice_ns;		/* default slice or the strategy's */
	u32 pid;
	s32 cpu;		/* CPU it last ran on */
	u32 weight;		/* 100 = nice 0 */
	u32 nr_cpus_allowed;
	u32 flags;		/* QUEUED_F_* */
	u32 __pad;
};

/*
 * User space -> kernel (BPF user ring buffer): where and how to run a task.
 * pid 0 is a heartbeat that only says the dispatcher is alive. cpu < 0 means
 * any CPU (the shared queue, ordered by vtime).
 */
struct dispatched_task {
	u64 seq;
	u64 vtime;		/* deadline in the kernel's vtime domain */
	u64 slice_ns;
	u64 nr_pending;		/* tasks the dispatcher still holds */
	u32 pid;
	s32 cpu;
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
