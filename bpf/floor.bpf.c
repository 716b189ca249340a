/* SPDX-License-Identifier: GPL-2.0 */
/*
 * scx_floor: the least work a sched_ext scheduler can do and still give a
 * waking task its CPU at once. It exists for `make bench-sched` only (loaded by
 * examples/scx_floor.rs), as a contender beside EEVDF and scx_pilot: whatever
 * it costs a wakeup is what sched_ext itself costs (the kernel's ops
 * trampolines, its queues, a context switch through it), below any policy. A
 * waking task goes to its CPU's local queue and preempts whatever runs there
 * (a task so preempted soon after its own wakeup goes on next, on its CPU);
 * every other task goes to the kernel's global FIFO queue, which the kernel
 * serves without a dispatch() call. No accounting, no fairness: a
 * floor for wakeup latency, not a scheduler to run anything on.
 */
#include <scx/common.bpf.h>

char _license[] SEC("license") = "GPL";

UEI_DEFINE(uei);

/*
 * A task another wakeup preempts this soon after its own wakeup goes on next
 * on its CPU; behind the hogs of the global queue, a 1 ms probe preempted by
 * a kworker waited up to 50 ms (6 hogs, default slices), which is not what a
 * floor of wakeup latency should measure.
 */
#define RESUME_NS 1000000ULL

void BPF_STRUCT_OPS(floor_enqueue, struct task_struct *p, u64 enq_flags)
{
	u64 now = bpf_ktime_get_ns();

	if (enq_flags & SCX_ENQ_WAKEUP) {
		/* FIFO queues leave dsq_vtime unused: it keeps when @p woke. */
		scx_bpf_task_set_dsq_vtime(p, now);
		scx_bpf_dsq_insert(p, SCX_DSQ_LOCAL, SCX_SLICE_DFL, enq_flags | SCX_ENQ_PREEMPT);
	} else if (now - p->scx.dsq_vtime < RESUME_NS) {
		scx_bpf_dsq_insert(p, SCX_DSQ_LOCAL, SCX_SLICE_DFL, enq_flags | SCX_ENQ_HEAD);
	} else {
		scx_bpf_dsq_insert(p, SCX_DSQ_GLOBAL, SCX_SLICE_DFL, enq_flags);
	}
}

void BPF_STRUCT_OPS(floor_exit, struct scx_exit_info *ei)
{
	UEI_RECORD(uei, ei);
}

SCX_OPS_DEFINE(floor_ops,
	       .enqueue		= (void *)floor_enqueue,
	       .exit		= (void *)floor_exit,
	       .name		= "floor");
