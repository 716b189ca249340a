/* SPDX-License-Identifier: GPL-2.0 */
/*
 * scx_pilot: a weighted virtual-time sched_ext scheduler with per-PID strategies.
 *
 * Policy in one paragraph: every task carries a virtual time that advances by
 * its CPU use divided by its weight, and waiting tasks are served in vtime
 * order from one shared queue, so nothing starves and nice levels are honoured.
 * A waking task that finds an idle CPU goes straight to that CPU's local queue.
 * User space (the agent) fills a hash map pid -> strategy; a task whose pid or
 * tgid is in it runs with the strategy's slice, and a priority strategy puts it
 * in a queue that is always consumed first and lets it preempt a CPU that runs
 * a normal task. A starvation guard serves the shared queue at least every
 * starvation_ns, so priority tasks can never stall normal tasks long enough for
 * the sched_ext watchdog to eject the scheduler.
 *
 * User dispatch mode (user_dispatch): tasks that would go to the shared queue
 * are sent to the agent's dispatcher thread through a ring buffer instead; it
 * returns a deadline, a slice and optionally a CPU through a user ring buffer
 * that dispatch() drains. Priority tasks, per-CPU kthreads and the dispatcher
 * itself keep the in-kernel path, so none of them ever waits on user space.
 * When the dispatcher holds tasks and makes no progress for user_stall_ns,
 * BPF takes them back and dispatches directly until the dispatcher is heard
 * from again (nr_user_fallbacks), long before the watchdog would fire.
 */
#include <scx/common.bpf.h>
#include "intf.h"

char _license[] SEC("license") = "GPL";

/*
 * Kfuncs that common.bpf.h declares strong. Weak references let the object be
 * loaded "maps only" on a kernel without sched_ext (tests on the host), where
 * these symbols do not exist; on a sched_ext kernel they resolve as usual.
 */
#pragma weak scx_bpf_create_dsq
#pragma weak scx_bpf_select_cpu_dfl
#pragma weak scx_bpf_kick_cpu
#pragma weak scx_bpf_dsq_nr_queued
#pragma weak scx_bpf_pick_idle_cpu
#pragma weak scx_bpf_task_cpu
#pragma weak scx_bpf_error_bstr
#pragma weak bpf_cpumask_test_cpu
#pragma weak scx_bpf_dispatch_nr_slots
#pragma weak bpf_task_from_pid
#pragma weak bpf_task_release

UEI_DEFINE(uei);

/* Set by the agent before load. */
const volatile u64 slice_ns = 5000000ULL;
const volatile u64 starvation_ns = 100000000ULL;
/* Send normal tasks to the agent's dispatcher thread (--dispatch user). */
const volatile bool user_dispatch = false;
/* A dispatcher that holds tasks and answers nothing this long is bypassed. */
const volatile u64 user_stall_ns = 500000000ULL;
/* Most tasks the dispatcher may hold at once; beyond, BPF dispatches directly. */
const volatile u64 user_queue_depth = USER_RING_TASKS;

/*
 * Counters read by the agent through the mmapped .bss (names from the user's
 * BssData). Each is a naturally aligned u64 written with atomic ops or plain
 * stores, so a reader never sees a torn value.
 */
u32 usersched_pid;
u64 nr_queued;
u64 nr_scheduled;
u64 nr_running;
u64 nr_online_cpus;
u64 nr_user_dispatches;
u64 nr_kernel_dispatches;
u64 nr_cancel_dispatches;
u64 nr_bounce_dispatches;
u64 nr_failed_dispatches;
u64 nr_sched_congested;
/* Beyond the seed: what the policy did. */
u64 nr_direct_dispatches;	/* waking task put straight on an idle CPU */
u64 nr_prio_dispatches;		/* tasks queued through a priority strategy */
u64 nr_preemptions;		/* priority task preempted a normal one */
u64 nr_starvation_guards;	/* shared queue served ahead of the priority one */
u64 nr_strategy_hits;		/* enqueues decided by any strategy */
/* User dispatch mode. */
u64 nr_user_enqueues;		/* tasks sent to the dispatcher */
u64 nr_user_fallbacks;		/* times a stalled dispatcher was bypassed */
u64 nr_user_recovered;		/* tasks taken back from a stalled dispatcher */
u64 nr_user_withdrawn;		/* tasks dequeued while in the dispatcher's hands */
u64 user_fallback_active;	/* 1 while BPF dispatches without the dispatcher */
u64 nr_user_outstanding;
/*
 * Set by the agent's test hook (--dispatcher-test-hooks, SIGUSR2): the next
 * dispatch reports an error, so tests see a real ejection with its dump.
 */
u32 test_force_error;	/* tasks in the dispatcher's hands now */

/* Global virtual clock: vtime of the most recently started task. */
static u64 vtime_now;
/* Last time the shared queue was served or seen empty. */
static u64 shared_served_at;
/* Enqueue sequence of tasks sent to user space. */
static u64 user_seq;
/* Last sign of life from the dispatcher (or when it was last given work while idle). */
static u64 user_progress_at;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_STRATEGY_PIDS);
	__type(key, u32);
	__type(value, struct strategy);
} strategies SEC(".maps");

struct task_ctx {
	u64 slice_ns;		/* slice granted at the last enqueue */
	u64 started_at;		/* when the task last got a CPU */
	u64 exec_runtime_ns;	/* CPU time since the task last woke up */
	bool prio;		/* queued through a priority strategy */
};

/* Kernel -> dispatcher: runnable tasks waiting for a decision. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, USER_RING_BYTES);
} queued SEC(".maps");

/* Dispatcher -> kernel: decisions. */
struct {
	__uint(type, BPF_MAP_TYPE_USER_RINGBUF);
	__uint(max_entries, USER_RING_BYTES);
} dispatched SEC(".maps");

/*
 * Tasks in the dispatcher's hands: pid -> seq of the enqueue that sent it. A
 * decision is applied only if its seq is still here, and a stalled
 * dispatcher's tasks are found here to be taken back.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_USER_TASKS);
	__type(key, u32);
	__type(value, u64);
} user_tasks SEC(".maps");

/* Kicks idle CPUs while the dispatcher is stalled, so someone notices. */
struct stall_timer {
	struct bpf_timer timer;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct stall_timer);
} stall_timers SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct task_ctx);
} task_ctxs SEC(".maps");

struct cpu_ctx {
	bool running_prio;	/* the CPU runs a task with a priority strategy */
	bool busy;		/* the CPU runs one of our tasks */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct cpu_ctx);
} cpu_ctxs SEC(".maps");

static struct cpu_ctx *cpu_ctx_of(s32 cpu)
{
	u32 zero = 0;

	return bpf_map_lookup_percpu_elem(&cpu_ctxs, &zero, cpu);
}

static struct task_ctx *task_ctx_of(struct task_struct *p)
{
	return bpf_task_storage_get(&task_ctxs, p, 0, 0);
}

/* The strategy of @p: its own pid first, then its process (tgid). */
/* A strategy's slice; 0 asks for the scheduler's default slice. */
static u64 strategy_slice(const struct strategy *s)
{
	return s && s->slice_ns ? s->slice_ns : slice_ns;
}

static struct strategy *strategy_of(const struct task_struct *p)
{
	u32 pid = p->pid, tgid = p->tgid;
	struct strategy *s;

	s = bpf_map_lookup_elem(&strategies, &pid);
	if (!s && tgid != pid)
		s = bpf_map_lookup_elem(&strategies, &tgid);
	return s;
}

/* Bytes a queued_task takes in the ring: the record and its 8-byte header. */
#define QUEUED_RECORD_BYTES ((sizeof(struct queued_task) + 8 + 7) & ~7UL)

static void refresh_nr_queued(void)
{
	u64 n = scx_bpf_dsq_nr_queued(PRIO_DSQ) + scx_bpf_dsq_nr_queued(SHARED_DSQ);

	/* In user mode, tasks not yet read by the dispatcher wait too. */
	if (user_dispatch)
		n += bpf_ringbuf_query(&queued, BPF_RB_AVAIL_DATA) / QUEUED_RECORD_BYTES;
	WRITE_ONCE(nr_queued, n);
}

/*
 * A sleeper keeps at most one slice of credit: it runs ahead of CPU hogs when
 * it wakes, but cannot bank sleep time to monopolise a CPU later.
 */
static u64 queue_vtime(const struct task_struct *p)
{
	u64 vtime = p->scx.dsq_vtime, floor = vtime_now - slice_ns;

	if (vtime_now > slice_ns && time_before(vtime, floor))
		return floor;
	return vtime;
}

static void count_insert(bool ok)
{
	if (ok)
		__sync_fetch_and_add(&nr_kernel_dispatches, 1);
	else
		__sync_fetch_and_add(&nr_failed_dispatches, 1);
}

static void kick_idle_cpu(const struct task_struct *p)
{
	s32 cpu = scx_bpf_pick_idle_cpu(p->cpus_ptr, 0);

	if (cpu >= 0)
		scx_bpf_kick_cpu(cpu, SCX_KICK_IDLE);
}

/* The agent's dispatcher thread: it must never wait for itself. */
static bool is_dispatcher(const struct task_struct *p)
{
	return user_dispatch && p->pid == READ_ONCE(usersched_pid);
}

static bool dispatcher_stalled(u64 now)
{
	return READ_ONCE(nr_user_outstanding) &&
	       (s64)(now - READ_ONCE(user_progress_at)) > (s64)user_stall_ns;
}

/*
 * Hand @p to the dispatcher. False when it cannot take it now (ring full or
 * too many tasks in its hands): the caller dispatches directly.
 */
static bool send_to_user(struct task_struct *p, struct task_ctx *tctx, u64 slice,
			 bool has_strategy, u64 enq_flags)
{
	struct queued_task *q;
	u32 pid = p->pid;
	u64 seq;

	if (READ_ONCE(nr_user_outstanding) >= user_queue_depth)
		return false;
	seq = __sync_add_and_fetch(&user_seq, 1);
	if (bpf_map_update_elem(&user_tasks, &pid, &seq, BPF_NOEXIST))
		return false;
	q = bpf_ringbuf_reserve(&queued, sizeof(*q), 0);
	if (!q) {
		bpf_map_delete_elem(&user_tasks, &pid);
		return false;
	}
	q->seq = seq;
	q->vtime = queue_vtime(p);
	q->exec_runtime_ns = tctx ? tctx->exec_runtime_ns : 0;
	q->slice_ns = slice;
	q->pid = pid;
	q->cpu = scx_bpf_task_cpu(p);
	q->weight = p->scx.weight;
	q->nr_cpus_allowed = p->nr_cpus_allowed;
	q->flags = ((enq_flags & SCX_ENQ_WAKEUP) ? QUEUED_F_WAKEUP : 0) |
		   (has_strategy ? QUEUED_F_STRATEGY : 0);
	q->__pad = 0;
	/* The stall clock starts when an idle dispatcher is given work. */
	if (!__sync_fetch_and_add(&nr_user_outstanding, 1))
		WRITE_ONCE(user_progress_at, bpf_ktime_get_ns());
	__sync_fetch_and_add(&nr_user_enqueues, 1);
	bpf_ringbuf_submit(q, 0);
	return true;
}

s32 BPF_STRUCT_OPS(pilot_select_cpu, struct task_struct *p, s32 prev_cpu, u64 wake_flags)
{
	struct task_ctx *tctx;
	bool is_idle = false;
	s32 cpu;

	cpu = scx_bpf_select_cpu_dfl(p, prev_cpu, wake_flags, &is_idle);
	if (is_idle) {
		struct strategy *s = strategy_of(p);
		u64 slice = strategy_slice(s);

		if (s)
			__sync_fetch_and_add(&s->nr_hits, 1);
		tctx = task_ctx_of(p);
		if (tctx) {
			tctx->slice_ns = slice;
			tctx->prio = s && (s->flags & STRATEGY_F_PRIORITY);
		}
		count_insert(scx_bpf_dsq_insert(p, SCX_DSQ_LOCAL, slice, 0));
		__sync_fetch_and_add(&nr_direct_dispatches, 1);
	}
	return cpu;
}

/* Normal tasks are waiting and have not been served for too long. */
static bool shared_starving(u64 now)
{
	return scx_bpf_dsq_nr_queued(SHARED_DSQ) &&
	       now - READ_ONCE(shared_served_at) > starvation_ns;
}

/*
 * Give a CPU to priority task @p now: preempt the normal task on @p's own CPU,
 * or, when that CPU already runs a priority task, kick another allowed CPU
 * that runs a normal one so it picks @p from PRIO_DSQ. Returns true when @p
 * was inserted here.
 */
static bool place_prio(struct task_struct *p, u64 slice, u64 enq_flags)
{
	s32 cpu = scx_bpf_task_cpu(p), i;
	u32 nr_cpus = scx_bpf_nr_cpu_ids();
	struct cpu_ctx *cctx;

	cctx = cpu_ctx_of(cpu);
	if (cctx && !cctx->running_prio) {
		count_insert(scx_bpf_dsq_insert(p, SCX_DSQ_LOCAL, slice,
						enq_flags | SCX_ENQ_PREEMPT));
		__sync_fetch_and_add(&nr_preemptions, 1);
		return true;
	}

	if (nr_cpus > MAX_CPUS)
		nr_cpus = MAX_CPUS;
	bpf_for(i, 0, nr_cpus) {
		if (i == cpu || !bpf_cpumask_test_cpu(i, p->cpus_ptr))
			continue;
		cctx = cpu_ctx_of(i);
		if (cctx && !cctx->running_prio) {
			scx_bpf_kick_cpu(i, SCX_KICK_PREEMPT);
			__sync_fetch_and_add(&nr_preemptions, 1);
			break;
		}
	}
	return false;
}

void BPF_STRUCT_OPS(pilot_enqueue, struct task_struct *p, u64 enq_flags)
{
	struct strategy *s = strategy_of(p);
	u64 slice = strategy_slice(s);
	bool dispatcher = is_dispatcher(p);
	/*
	 * The dispatcher runs ahead of everything it decides for, like a priority
	 * task, so a decision is never stuck behind the tasks waiting for it.
	 */
	bool prio = dispatcher || (s && (s->flags & STRATEGY_F_PRIORITY));
	struct task_ctx *tctx = task_ctx_of(p);

	if (tctx) {
		tctx->slice_ns = slice;
		tctx->prio = prio;
	}
	if (s) {
		__sync_fetch_and_add(&s->nr_hits, 1);
		__sync_fetch_and_add(&nr_strategy_hits, 1);
	}

	/*
	 * Per-CPU kthreads (ksoftirqd, kworkers bound to a CPU) can run nowhere
	 * else; making them wait behind hogs only delays the work hogs need.
	 */
	if ((p->flags & PF_KTHREAD) && p->nr_cpus_allowed == 1) {
		count_insert(scx_bpf_dsq_insert(p, SCX_DSQ_LOCAL, slice, enq_flags));
		return;
	}

	if (prio) {
		if (!dispatcher)
			__sync_fetch_and_add(&nr_prio_dispatches, 1);
		/*
		 * Only a wakeup preempts, and never while normal tasks starve: a
		 * priority task whose slice ran out goes through PRIO_DSQ, so its
		 * CPU passes through dispatch() where the starvation guard can serve
		 * normal tasks before the sched_ext watchdog would eject us.
		 */
		if ((enq_flags & SCX_ENQ_WAKEUP) && !shared_starving(bpf_ktime_get_ns()) &&
		    !is_migration_disabled(p) && place_prio(p, slice, enq_flags))
			return;
		count_insert(scx_bpf_dsq_insert_vtime(p, PRIO_DSQ, slice,
						      queue_vtime(p), enq_flags));
		refresh_nr_queued();
		return;
	}

	if (user_dispatch && !READ_ONCE(user_fallback_active)) {
		if (send_to_user(p, tctx, slice, s, enq_flags)) {
			refresh_nr_queued();
			return;
		}
		__sync_fetch_and_add(&nr_sched_congested, 1);
	}

	count_insert(scx_bpf_dsq_insert_vtime(p, SHARED_DSQ, slice, queue_vtime(p),
					      enq_flags));
	refresh_nr_queued();

	/* Tasks queued without select_cpu (preempted, new) may find an idle CPU. */
	kick_idle_cpu(p);
}

void BPF_STRUCT_OPS(pilot_dequeue, struct task_struct *p, u64 deq_flags)
{
	u32 pid = p->pid;

	/*
	 * Taken back before it was dispatched (affinity, priority, exit...). In
	 * user mode a task in the dispatcher's hands is withdrawn, and the
	 * decision that may still come for it is counted as cancelled then.
	 */
	if (!user_dispatch) {
		__sync_fetch_and_add(&nr_cancel_dispatches, 1);
		return;
	}
	if (!bpf_map_delete_elem(&user_tasks, &pid)) {
		__sync_fetch_and_sub(&nr_user_outstanding, 1);
		__sync_fetch_and_add(&nr_user_withdrawn, 1);
	}
}

/* Run @p as the dispatcher decided. */
static void apply_decision(struct task_struct *p, const struct dispatched_task *d)
{
	u64 slice = d->slice_ns, floor = vtime_now - slice_ns, vtime = d->vtime;
	s32 cpu = d->cpu;
	bool ok;

	/* Our own dispatcher, but a bad slice must not hold a CPU for long. */
	if (!slice || slice > starvation_ns)
		slice = slice_ns;
	/* Nor may a deadline jump the queue by more than one slice. */
	if (vtime_now > slice_ns && time_before(vtime, floor))
		vtime = floor;

	if (cpu >= 0) {
		if (cpu < scx_bpf_nr_cpu_ids() && bpf_cpumask_test_cpu(cpu, p->cpus_ptr)) {
			ok = scx_bpf_dsq_insert(p, SCX_DSQ_LOCAL_ON | cpu, slice, 0);
			if (ok)
				scx_bpf_kick_cpu(cpu, SCX_KICK_IDLE);
			goto out;
		}
		/* Its affinity changed since it was queued. */
		__sync_fetch_and_add(&nr_bounce_dispatches, 1);
	}
	ok = scx_bpf_dsq_insert_vtime(p, SHARED_DSQ, slice, vtime, 0);
	if (ok)
		kick_idle_cpu(p);
out:
	if (ok)
		__sync_fetch_and_add(&nr_user_dispatches, 1);
	else
		__sync_fetch_and_add(&nr_failed_dispatches, 1);
}

/* One record of the user ring buffer; returning 1 stops the drain. */
static long drain_decision(struct bpf_dynptr *dynptr, void *ctx)
{
	struct dispatched_task d;
	struct task_struct *p;
	u64 *seq;

	if (bpf_dynptr_read(&d, sizeof(d), dynptr, 0, 0))
		return 0;
	WRITE_ONCE(user_progress_at, bpf_ktime_get_ns());
	WRITE_ONCE(nr_scheduled, d.nr_pending);
	/* The dispatcher is back: send it tasks again. */
	if (READ_ONCE(user_fallback_active))
		WRITE_ONCE(user_fallback_active, 0);
	if (!d.pid)
		return 0;

	/* Stale: withdrawn, taken back while stalled, or enqueued again since. */
	seq = bpf_map_lookup_elem(&user_tasks, &d.pid);
	if (!seq || *seq != d.seq || bpf_map_delete_elem(&user_tasks, &d.pid)) {
		__sync_fetch_and_add(&nr_cancel_dispatches, 1);
		return 0;
	}
	__sync_fetch_and_sub(&nr_user_outstanding, 1);
	p = bpf_task_from_pid(d.pid);
	if (!p) {
		__sync_fetch_and_add(&nr_cancel_dispatches, 1);
		return 0;
	}
	apply_decision(p, &d);
	bpf_task_release(p);
	/* dispatch() can insert only so many tasks per call. */
	return scx_bpf_dispatch_nr_slots() ? 0 : 1;
}

/* Take one task back from a stalled dispatcher; returning 1 stops the walk. */
static long take_back(struct bpf_map *map, u32 *pid, u64 *seq, void *ctx)
{
	struct task_struct *p;
	u32 key = *pid;

	if (!scx_bpf_dispatch_nr_slots())
		return 1;
	if (bpf_map_delete_elem(&user_tasks, &key))
		return 0;
	__sync_fetch_and_sub(&nr_user_outstanding, 1);
	p = bpf_task_from_pid(key);
	if (!p)
		return 0;
	count_insert(scx_bpf_dsq_insert_vtime(p, SHARED_DSQ, slice_ns, queue_vtime(p), 0));
	__sync_fetch_and_add(&nr_user_recovered, 1);
	bpf_task_release(p);
	return 0;
}

static void user_dispatch_work(u64 now)
{
	bpf_user_ringbuf_drain(&dispatched, drain_decision, NULL, 0);
	if (!dispatcher_stalled(now))
		return;
	if (__sync_val_compare_and_swap(&user_fallback_active, 0, 1) == 0)
		__sync_fetch_and_add(&nr_user_fallbacks, 1);
	bpf_for_each_map_elem(&user_tasks, take_back, NULL, 0);
}

static bool serve_shared(u64 now)
{
	if (!scx_bpf_dsq_move_to_local(SHARED_DSQ, 0))
		return false;
	WRITE_ONCE(shared_served_at, now);
	__sync_fetch_and_add(&nr_kernel_dispatches, 1);
	return true;
}

void BPF_STRUCT_OPS(pilot_dispatch, s32 cpu, struct task_struct *prev)
{
	u64 now = bpf_ktime_get_ns();

	if (READ_ONCE(test_force_error)) {
		scx_bpf_error("forced exit by the agent's test hook");
		return;
	}

	if (user_dispatch)
		user_dispatch_work(now);

	if (!scx_bpf_dsq_nr_queued(SHARED_DSQ)) {
		WRITE_ONCE(shared_served_at, now);
	} else if (shared_starving(now)) {
		if (serve_shared(now)) {
			__sync_fetch_and_add(&nr_starvation_guards, 1);
			goto out;
		}
	}

	if (scx_bpf_dsq_move_to_local(PRIO_DSQ, 0)) {
		__sync_fetch_and_add(&nr_kernel_dispatches, 1);
		goto out;
	}
	serve_shared(now);
out:
	refresh_nr_queued();
}

void BPF_STRUCT_OPS(pilot_running, struct task_struct *p)
{
	struct task_ctx *tctx = task_ctx_of(p);
	struct cpu_ctx *cctx = cpu_ctx_of(scx_bpf_task_cpu(p));

	if (time_before(vtime_now, p->scx.dsq_vtime))
		vtime_now = p->scx.dsq_vtime;
	if (tctx)
		tctx->started_at = bpf_ktime_get_ns();
	if (cctx) {
		cctx->busy = true;
		cctx->running_prio = tctx && tctx->prio;
	}
	__sync_fetch_and_add(&nr_running, 1);
}

void BPF_STRUCT_OPS(pilot_stopping, struct task_struct *p, bool runnable)
{
	struct task_ctx *tctx = task_ctx_of(p);
	struct cpu_ctx *cctx = cpu_ctx_of(scx_bpf_task_cpu(p));

	if (tctx && tctx->started_at) {
		u64 used = bpf_ktime_get_ns() - tctx->started_at;

		p->scx.dsq_vtime += scale_by_task_weight_inverse(p, used);
		tctx->exec_runtime_ns += used;
		tctx->started_at = 0;
	}
	if (cctx) {
		cctx->busy = false;
		cctx->running_prio = false;
	}
	/* running() and stopping() pair up; the guard only covers attach races. */
	if (READ_ONCE(nr_running))
		__sync_fetch_and_sub(&nr_running, 1);
}

void BPF_STRUCT_OPS(pilot_runnable, struct task_struct *p, u64 enq_flags)
{
	struct task_ctx *tctx = task_ctx_of(p);

	if (tctx)
		tctx->exec_runtime_ns = 0;
}

void BPF_STRUCT_OPS(pilot_enable, struct task_struct *p)
{
	p->scx.dsq_vtime = vtime_now;
}

s32 BPF_STRUCT_OPS(pilot_init_task, struct task_struct *p, struct scx_init_task_args *args)
{
	if (!bpf_task_storage_get(&task_ctxs, p, 0, BPF_LOCAL_STORAGE_GET_F_CREATE))
		return -ENOMEM;
	return 0;
}

#ifndef CLOCK_MONOTONIC
#define CLOCK_MONOTONIC 1
#endif
#define STALL_CHECK_NS (50 * 1000 * 1000ULL)

/*
 * An idle CPU does not call dispatch() by itself; while the dispatcher is
 * stalled, wake the idle CPUs so one of them takes its tasks back.
 */
static int stall_check(void *map, int *key, struct bpf_timer *timer)
{
	u32 nr_cpus = scx_bpf_nr_cpu_ids();
	s32 i;

	if (dispatcher_stalled(bpf_ktime_get_ns())) {
		if (nr_cpus > MAX_CPUS)
			nr_cpus = MAX_CPUS;
		bpf_for(i, 0, nr_cpus)
			scx_bpf_kick_cpu(i, SCX_KICK_IDLE);
	}
	bpf_timer_start(timer, STALL_CHECK_NS, 0);
	return 0;
}

s32 BPF_STRUCT_OPS_SLEEPABLE(pilot_init)
{
	struct stall_timer *t;
	u32 zero = 0;
	s32 ret;

	ret = scx_bpf_create_dsq(PRIO_DSQ, -1);
	if (ret)
		return ret;
	ret = scx_bpf_create_dsq(SHARED_DSQ, -1);
	if (ret || !user_dispatch)
		return ret;

	t = bpf_map_lookup_elem(&stall_timers, &zero);
	if (!t)
		return -ENOENT;
	bpf_timer_init(&t->timer, &stall_timers, CLOCK_MONOTONIC);
	bpf_timer_set_callback(&t->timer, stall_check);
	return bpf_timer_start(&t->timer, STALL_CHECK_NS, 0);
}

void BPF_STRUCT_OPS(pilot_exit, struct scx_exit_info *ei)
{
	UEI_RECORD(uei, ei);
}

SCX_OPS_DEFINE(pilot_ops,
	       .select_cpu	= (void *)pilot_select_cpu,
	       .enqueue		= (void *)pilot_enqueue,
	       .dequeue		= (void *)pilot_dequeue,
	       .dispatch	= (void *)pilot_dispatch,
	       .running		= (void *)pilot_running,
	       .stopping	= (void *)pilot_stopping,
	       .runnable	= (void *)pilot_runnable,
	       .enable		= (void *)pilot_enable,
	       .init_task	= (void *)pilot_init_task,
	       .init		= (void *)pilot_init,
	       .exit		= (void *)pilot_exit,
	       .name		= "scx_pilot");
