/* SPDX-License-Identifier: GPL-2.0 */
/*
 * scx_pilot: a weighted deadline sched_ext scheduler with per-PID strategies.
 *
 * Policy in one paragraph: every task carries a virtual runtime that advances
 * by its CPU use divided by its weight (its nice weight, times its cgroup's
 * cpu.weight down the hierarchy, shared among the cgroup's runnable tasks),
 * never more than one slice behind its CPU's virtual clock (nor more than one
 * ahead when it wakes or moves to another CPU), and a deadline: that vruntime
 * plus the CPU time it used since it last woke (at most one slice), scaled the
 * same way. Waiting tasks are served from one shared queue in deadline order,
 * except that a CPU takes a task that last ran on it over the first one when
 * its deadline is at most one slice later (so hogs do not move between CPUs at
 * every slice end), and a task whose slice ends keeps its CPU while its
 * deadline is earlier than that of the first task waiting for the CPU, so tasks
 * that wake, run briefly and sleep go ahead of CPU hogs, and hogs share CPUs by
 * weight. A waking task takes an idle CPU when there is one; otherwise it
 * preempts the task running on its CPU when that task has no strategy and its
 * deadline is later by more than the minimum slice (EEVDF's wakeup preemption;
 * the margin stops two chatty tasks from ping-ponging), unless that task is its
 * waker and said it is about to sleep (a sync wakeup: pipes, sockets; in kernel
 * mode the task it wakes is placed on its waker's CPU), which keeps message
 * passing batched; the task it preempts goes on right after it, on its CPU, for
 * the rest of its slice, rather than through the shared queue (kernel mode: at
 * the head of the CPU's local queue, where whatever preempts, a per-CPU
 * kthread, and a priority task that would otherwise wait for it go ahead of
 * it, and a priority task whose slice ends meanwhile gets its next one at the
 * tick); a waking task that does not preempt goes on before it when its
 * deadline is earlier. A task that calls sched_yield() ends its slice and
 * forfeits the rest of its request (its vruntime moves to its
 * deadline, as under EEVDF), and never keeps its CPU ahead of a waiting task. A
 * task preempted inside an RCU read-side critical section is queued first among
 * normal tasks (at most once per starvation_ns / 4) and runs with at least
 * nice 0's weight until it leaves the section, as the kernel's RCU priority
 * boosting would raise it, so no weight stalls RCU. Slices shrink as more tasks
 * wait (slice_ns at most, slice_min_ns at least) and are refreshed in
 * dispatch() for a task that keeps its CPU. User space (the agent) fills a hash
 * map pid -> strategy; a task whose pid or tgid is in it runs with the
 * strategy's slice, and a priority strategy puts it in a queue that is always
 * consumed first and lets it preempt a CPU that runs a normal task (it goes to
 * the head of that CPU's local queue, ahead of whatever waits there). The
 * starvation guard is per CPU: a CPU on which priority tasks used starvation_ns
 * of CPU time since a normal task last started there, while one that may run
 * there waits, serves the shared queue first for the next starvation_ns / 4
 * (CPU time, so a virtual CPU that its host did not run for a while does not
 * hold priority tasks back), so normal tasks keep at least a fifth of every CPU
 * they may use under any priority load, long before the sched_ext watchdog
 * would eject the scheduler.
 *
 * User dispatch mode (user_dispatch): tasks that would go to the shared queue
 * are sent to the agent's dispatcher thread through a ring buffer instead; it
 * returns a deadline, a slice and optionally a CPU through a user ring buffer
 * that dispatch() drains; the dispatcher runs on the CPU that queued the task
 * when no CPU is idle, and the CPU that drains runs the first decided task that
 * may run there and that no shared-queue task is ahead of, and for the others
 * BPF preempts a CPU whose running task has a later deadline, unless that task
 * is a sync waker that still runs (nor does the dispatcher preempt such a
 * waker, or a task that woke and has used less than a minimum slice since:
 * it is about to sleep, and would come back behind a hog). A task decided
 * for one CPU (a pinned one) waits in that CPU's resume queue, which
 * dispatch() serves right after priority tasks, and the dispatcher goes to
 * the head of the local queue of the CPU it preempts: a CPU runs its local
 * queue before it calls dispatch(), and the dispatcher waited behind a task
 * there for a whole slice. The dispatcher caps bursts at slice_ns, as kernel
 * mode does. Priority tasks, per-CPU
 * kthreads, yielding tasks (spinning waits yield many times a millisecond)
 * and the dispatcher itself keep the in-kernel path, so none of them ever
 * waits on user space. A task the
 * dispatcher has held for user_stall_ns is taken back and dispatched by BPF,
 * and when the dispatcher holds tasks and makes no progress for that long BPF
 * bypasses it until it is heard from again (nr_user_fallbacks), long before
 * the watchdog would fire.
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
#pragma weak scx_bpf_error_bstr
#pragma weak bpf_cpumask_test_cpu
#pragma weak scx_bpf_dispatch_nr_slots
#pragma weak bpf_task_from_pid
#pragma weak bpf_task_release
#pragma weak bpf_cgroup_release
#pragma weak bpf_cgroup_ancestor

UEI_DEFINE(uei);

/* Set by the agent before load. */
const volatile u64 slice_ns = DEFAULT_SLICE_NS;
const volatile u64 starvation_ns = DEFAULT_STARVATION_NS;
/* Send normal tasks to the agent's dispatcher thread (--dispatch user). */
const volatile bool user_dispatch = false;
/* A task the dispatcher holds this long is taken back; a silent dispatcher is bypassed. */
const volatile u64 user_stall_ns = DEFAULT_USER_STALL_NS;
/* Most tasks the dispatcher may hold at once; beyond, BPF dispatches directly. */
const volatile u64 user_queue_depth = USER_RING_TASKS;
/* --dispatcher-test-hooks: honour test_force_error. */
const volatile bool test_hooks = false;

/*
 * The time in ns. Where the kernel has scx_bpf_now() (6.14 on), the run
 * queue's clock, a load while the kernel holds it fresh: under the bench's
 * emulation, bpf_ktime_get_ns() reads the TSC through the emulator on each of
 * the several calls of every context switch. The two clocks are not the same,
 * so every time the programs compare with another comes from here.
 */
static __always_inline u64 now_ns(void)
{
	return bpf_ksym_exists(scx_bpf_now) ? scx_bpf_now() : bpf_ktime_get_ns();
}

/*
 * Shared-queue tasks dispatch() looks at: to find the first one that may run on
 * its CPU, and one that last ran there.
 */
#define KEEP_PREV_SCAN 8

/*
 * The shortest slice when many tasks wait, and the deadline margin a waking
 * task must win by to preempt: below it a context switch costs more than the
 * latency it saves. Set by init(): a division on every wakeup costs a call
 * into the emulator.
 */
static u64 slice_min_ns;

static void init_slice_min(void)
{
	u64 min = slice_ns / SLICE_MIN_DIVISOR;

	if (min < MIN_SLICE_NS)
		min = MIN_SLICE_NS;
	slice_min_ns = min < slice_ns ? min : slice_ns;
}

static u64 slice_min(void)
{
	return slice_min_ns;
}

/*
 * Gauges read by the agent through the mmapped .bss (names from the user's
 * BssData). Each is a naturally aligned u64 written with atomic ops or plain
 * stores, so a reader never sees a torn value. Not nr_running: the agent
 * counts the CPUs whose cpu_ctx is busy, where one counter bumped at every
 * context switch would be a cache line all CPUs take from each other.
 */
u32 usersched_pid;
u64 nr_queued;
u64 nr_scheduled;
u64 nr_online_cpus;
u64 user_fallback_active;	/* 1 while BPF dispatches without the dispatcher */
u64 nr_user_outstanding;	/* tasks in the dispatcher's hands now */
/*
 * The strategy map's generation, set by the agent: 0 while the map is empty
 * (no task pays a hash lookup on every enqueue), raised before it writes the
 * first entry and after every pass that changed the map, never back to a value
 * it had. A task remembers which key held its strategy, or that none did, for
 * one generation (task_ctx.strategy_gen): at most one lookup a task and event
 * while the map is unchanged, none for the tasks without a strategy.
 */
u64 strategies_gen;

/*
 * Set (and never cleared) before the first task goes to PRIO_DSQ. Until then
 * dispatch() and tick() skip that queue: every kfunc on a queue of ours looks
 * it up by id in the kernel's hash table, several us a call under the bench's
 * emulation, on every slice end of a node with no priority strategy. A CPU
 * that read it unset a moment before the first insert serves the task at its
 * next dispatch().
 */
bool prio_dsq_used;

/*
 * Event counters, bumped on every scheduling event: one set per CPU, each in
 * its own cache lines, so CPUs do not take one shared line from each other on
 * every event. The agent sums the CPUs (src/sched/bss.rs).
 */
struct pcpu_counters {
	u64 nr_user_dispatches;
	u64 nr_kernel_dispatches;
	u64 nr_cancel_dispatches;
	u64 nr_bounce_dispatches;
	u64 nr_failed_dispatches;
	u64 nr_sched_congested;
	/* Beyond the user's list: what the policy did. */
	u64 nr_direct_dispatches;	/* waking task put straight on an idle CPU */
	u64 nr_prio_dispatches;		/* tasks queued through a priority strategy */
	u64 nr_preemptions;		/* priority task preempted a normal one */
	u64 nr_wakeup_preemptions;	/* waking normal task preempted a later deadline */
	u64 nr_starvation_guards;	/* a CPU served the shared queue ahead of the priority one */
	u64 nr_strategy_hits;		/* enqueues decided by any strategy */
	u64 nr_rcu_boosts;		/* tasks preempted in an RCU read section, queued first */
	u64 nr_preempted_resumes;	/* preempted normal task went on after the waker */
	u64 nr_wakeups_before_resumed;	/* waking task went on before a preempted one */
	u64 nr_yields;			/* sched_yield() calls: queued behind others, in BPF */
	/* User dispatch mode. */
	u64 nr_user_enqueues;		/* tasks sent to the dispatcher */
	u64 nr_user_fallbacks;		/* times a stalled dispatcher was bypassed */
	u64 nr_user_recovered;		/* tasks taken back from the dispatcher */
	u64 nr_user_aged;		/* of those, taken back for age while it was alive */
	u64 nr_user_withdrawn;		/* tasks dequeued while in the dispatcher's hands */
} __attribute__((aligned(64)));

struct pcpu_counters pcpu_counters[MAX_CPUS];

/*
 * In user mode an atomic add although per CPU: the stall timer runs in
 * softirq context and may interrupt a program that is counting on the same
 * CPU. In kernel mode every program that counts runs with interrupts off (the
 * run queue's or the waking task's lock held), so a plain add, which the
 * emulator runs inline where an atomic one is a call, does.
 */
#define COUNT(field, n)                                                        \
	do {                                                                   \
		u64 *c_ = &pcpu_counters[bpf_get_smp_processor_id() &          \
					 (MAX_CPUS - 1)].field;                \
		if (user_dispatch)                                             \
			__sync_fetch_and_add(c_, (n));                         \
		else                                                           \
			*c_ += (n);                                            \
	} while (0)

/*
 * Set by the agent's test hook (--dispatcher-test-hooks, SIGUSR2): the next
 * dispatch reports an error, so tests see a real ejection with its dump.
 */
u32 test_force_error;

/* Enqueue sequence of tasks sent to user space. */
static u64 user_seq;
/* Last sign of life from the dispatcher (or when it was last given work while idle). */
static u64 user_progress_at;
/* Set by the stall timer when a task has been in the dispatcher's hands too long. */
static u64 user_aged_pending;
/* Bumped at every cgroup weight change: cached hierarchical weights are stale. */
static u64 cg_gen = 1;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	/* Deleted entries are freed after an RCU grace period, not reused at once. */
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, MAX_STRATEGY_PIDS);
	__type(key, u32);
	__type(value, struct strategy);
} strategies SEC(".maps");

struct task_ctx {
	u64 vruntime;		/* weighted CPU time, near its CPU's vtime_now */
	u64 deadline;		/* vruntime plus the weighted burst, at the last enqueue */
	u64 slice_ns;		/* slice granted at the last enqueue */
	u64 started_at;		/* when the task last got a CPU */
	u64 exec_runtime_ns;	/* CPU time since the task last woke up */
	u64 queued_at;		/* when it last entered the shared queue */
	u64 rcu_boosted_at;	/* when it last went ahead for an RCU read section */
	s32 clock_cpu;		/* the CPU whose clock its vruntime follows */
	u64 cgid;		/* its cgroup, for the cgroup weight; 0 in the root (see cg_of()) */
	u64 strategy_gen;	/* strategies_gen when strategy_key was found */
	u32 strategy_key;	/* the strategy map's key for it (pid or tgid); 0: none */
	bool prio;		/* queued through a priority strategy */
	bool strategy;		/* runs with a strategy's slice */
	bool runnable;		/* counted in its cgroup's nr_runnable */
	bool sync_wake;		/* its waker said it is about to sleep (WF_SYNC) */
	bool yielded;		/* called sched_yield(); cleared when it is queued or kept */
	bool woken;		/* its last enqueue was a wakeup */
	bool resumed_local;	/* waits at the head of its CPU's local queue (pilot_stopping()) */
};

/* Per cgroup (key: cgroup id): its cpu.weight and the tasks that share it. */
struct cg_ctx {
	u64 parent;		/* parent cgroup id, 0 at the root */
	u64 hweight;		/* product of weight/100 from the root, CG_ONE = 1.0 */
	u64 gen;		/* cg_gen when hweight was computed */
	s64 nr_runnable;
	u32 weight;		/* cpu.weight, 100 by default */
	u32 level;
};

#define CG_ONE		65536ULL
#define CG_MAX_DEPTH	16

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_CGROUPS);
	__type(key, u64);
	__type(value, struct cg_ctx);
} cg_ctxs SEC(".maps");

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
 * Tasks in the dispatcher's hands: pid -> the enqueue that sent it. A decision
 * is applied only if its seq is still here, and tasks held too long (or by a
 * stalled dispatcher) are found here to be taken back.
 */
struct user_task {
	u64 seq;
	u64 sent_at;
	s32 sync_cpu;	/* a sync wakeup: the waker's CPU; -1 otherwise */
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_USER_TASKS);
	__type(key, u32);
	__type(value, struct user_task);
} user_tasks SEC(".maps");

/* Kicks idle CPUs when the dispatcher holds a task too long, so someone takes it back. */
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
	/*
	 * This CPU's virtual clock: the highest vruntime of a normal task that
	 * started here. Per CPU, because tasks pinned to a busier CPU advance
	 * faster: a global clock would push every waker elsewhere behind its
	 * CPU's hogs. Priority tasks do not move it: normal tasks that wait
	 * behind them would lag ever further behind it, and a waking normal task
	 * (the watchdog's own worker) would be placed behind all of them.
	 */
	u64 vtime_now;
	u64 deadline;		/* deadline of the task running here */
	u64 resume_deadline;	/* deadline of the task last preempted here (pilot_stopping()) */
	u64 slice_end;		/* when the running task's slice runs out */
	u64 started_at;		/* when the running task started */
	/*
	 * CPU time priority tasks used here since a normal task last started
	 * (or none waited). CPU time, not elapsed time: a stretch in which the
	 * CPU did not run our tasks at all (a host that preempts a virtual CPU,
	 * interrupts) is no reason to hold priority tasks back.
	 */
	u64 prio_ns;
	u64 guard_until;	/* the shared queue goes first here until then */
	/*
	 * started_at of a stint in which the running task, a sync waker, sent
	 * the task it woke to the dispatcher: the dispatcher waits for it to
	 * sleep rather than preempt it (user mode).
	 */
	u64 sync_sent_stint;
	/* CPU time the running task had used since it last woke, when it started. */
	u64 burst_ns;
	bool running_prio;	/* the CPU runs a task with a priority strategy */
	bool running_strategy;	/* ... or one with any strategy: its slice is kept */
	bool busy;		/* the CPU runs one of our tasks: the agent's nr_running counts these */
	/* A task a wakeup preempted waits at the head of the local queue. */
	bool resume_local;
} __attribute__((aligned(64)));

/*
 * In .bss, each CPU's in its own cache lines, rather than a per-CPU array
 * map: an element is then a load away, where the map took a helper call on
 * every access (five on a wakeup's path).
 */
struct cpu_ctx cpu_ctxs[MAX_CPUS];

static struct cpu_ctx *cpu_ctx_of(s32 cpu)
{
	if (cpu < 0 || cpu >= MAX_CPUS)
		return NULL;
	return &cpu_ctxs[cpu & (MAX_CPUS - 1)];
}

static u64 cpu_vtime(s32 cpu)
{
	struct cpu_ctx *cctx = cpu_ctx_of(cpu);

	return cctx ? cctx->vtime_now : 0;
}

/* @vruntime, but no more than one slice behind the clock @now: no banked credit. */
static u64 floor_vruntime(u64 vruntime, u64 now)
{
	if (now > slice_ns && time_before(vruntime, now - slice_ns))
		return now - slice_ns;
	return vruntime;
}

/*
 * @vruntime within one slice of the clock @now: a sleeper keeps at most one
 * slice of credit (it runs ahead of hogs when it wakes but cannot bank time),
 * and a task from a busier CPU brings at most one slice of debt.
 */
static u64 clamp_vruntime(u64 vruntime, u64 now)
{
	vruntime = floor_vruntime(vruntime, now);
	if (time_after(vruntime, now + slice_ns))
		return now + slice_ns;
	return vruntime;
}

/* scx_bpf_nr_cpu_ids(), set by init(): the hot paths read it without a kfunc call. */
static u32 nr_cpu_ids_seen;

/*
 * The CPU @p is on (task_cpu()): a load rather than a kfunc call, which the
 * bench's emulation runs as a call and a return through its translator; four
 * of them were on the path of every wakeup preemption.
 */
static __always_inline s32 task_cpu_of(const struct task_struct *p)
{
	return p->thread_info.cpu;
}

/*
 * Whether @p may run on @cpu. Most tasks (every CPU hog) may run anywhere,
 * which their count of allowed CPUs says without a kfunc call; not while
 * migration is disabled, when the kernel narrows cpus_ptr but not that count
 * (and the BPF prolog itself may have disabled it for the current task: then
 * the kfunc decides too).
 */
static __always_inline bool cpu_allowed(const struct task_struct *p, s32 cpu)
{
	if (cpu < 0)
		return false;
	if (bpf_core_field_exists(p->migration_disabled) && !p->migration_disabled &&
	    nr_cpu_ids_seen && p->nr_cpus_allowed >= nr_cpu_ids_seen)
		return (u32)cpu < nr_cpu_ids_seen;
	return bpf_cpumask_test_cpu(cpu, p->cpus_ptr);
}

/*
 * A per-CPU kthread (ksoftirqd, a kworker bound to a CPU) can run nowhere
 * else: it never waits behind other tasks, nor do others wait behind it.
 */
static __always_inline bool is_percpu_kthread(const struct task_struct *p)
{
	return (p->flags & PF_KTHREAD) && p->nr_cpus_allowed == 1;
}

static struct task_ctx *task_ctx_of(struct task_struct *p)
{
	return bpf_task_storage_get(&task_ctxs, p, 0, 0);
}

/*
 * The strategy of @p: its own pid first, then its process (tgid). The
 * generation is read before the lookups: an entry written after them comes
 * with a new one, so a miss is never remembered past it.
 */
static struct strategy *strategy_of(const struct task_struct *p, struct task_ctx *tctx)
{
	u64 gen = READ_ONCE(strategies_gen);
	u32 key = p->pid, tgid = p->tgid;
	struct strategy *s;

	if (!gen)
		return NULL;
	if (tctx && tctx->strategy_gen == gen) {
		key = tctx->strategy_key;
		return key ? bpf_map_lookup_elem(&strategies, &key) : NULL;
	}
	s = bpf_map_lookup_elem(&strategies, &key);
	if (!s && tgid != key) {
		key = tgid;
		s = bpf_map_lookup_elem(&strategies, &key);
	}
	if (tctx) {
		tctx->strategy_gen = gen;
		tctx->strategy_key = s ? key : 0;
	}
	return s;
}

static bool is_prio(const struct strategy *s)
{
	return s && (s->flags & STRATEGY_F_PRIORITY);
}

/* The agent's dispatcher thread: it must never wait for itself. */
static bool is_dispatcher(const struct task_struct *p)
{
	return user_dispatch && p->pid == READ_ONCE(usersched_pid);
}

/* Runs ahead of normal tasks: the dispatcher, or a priority strategy. */
static bool is_prio_task(const struct task_struct *p)
{
	return is_dispatcher(p) || is_prio(strategy_of(p, NULL));
}

/*
 * @p, whose slice ran out, was running as a priority task: what its last
 * enqueue found, without the strategy lookups (dispatch() asks on every slice
 * end). A strategy posted since applies from the slice refresh_prev() grants.
 */
static bool ran_prio(struct task_struct *p)
{
	struct task_ctx *tctx = task_ctx_of(p);

	return tctx ? tctx->prio : is_prio_task(p);
}

/*
 * The slice of a normal task: the default slice shared among the tasks that
 * wait (nr_queued: so each waits about one default slice), never below
 * slice_min(). A strategy's slice is kept as given.
 */
static u64 task_slice(const struct strategy *s)
{
	u64 nr_cpus = READ_ONCE(nr_online_cpus) ?: 1;
	u64 waiting, slice;

	if (s && s->slice_ns)
		return s->slice_ns;
	/* As dispatch() last counted them: a queue's count is a kfunc call and a hash lookup. */
	waiting = READ_ONCE(nr_queued);
	if (waiting < nr_cpus)
		waiting = nr_cpus;
	slice = slice_ns * nr_cpus / waiting;
	return slice < slice_min() ? slice_min() : slice;
}

/* Bytes a queued_task takes in the ring: the record and its 8-byte header. */
#define QUEUED_RECORD_BYTES ((sizeof(struct queued_task) + 8 + 7) & ~7UL)

/*
 * The nr_queued gauge (and the count task_slice() divides by), at the end of
 * every dispatch(): a CPU calls it whenever its slice ends or it has nothing
 * to run, so the count is as of the last such event on any CPU. Not in
 * enqueue(), where its two kfunc calls were on the path of every wakeup
 * preemption (the preempted task is queued before the waker runs) and of every
 * message under hackbench.
 */
static void refresh_nr_queued(void)
{
	u64 n = scx_bpf_dsq_nr_queued(SHARED_DSQ);

	if (READ_ONCE(prio_dsq_used))
		n += scx_bpf_dsq_nr_queued(PRIO_DSQ);

	/* In user mode, tasks not yet read by the dispatcher wait too. */
	if (user_dispatch)
		n += bpf_ringbuf_query(&queued, BPF_RB_AVAIL_DATA) / QUEUED_RECORD_BYTES;
	/* Read first: a store on every event would bounce the line between CPUs. */
	if (READ_ONCE(nr_queued) != n)
		WRITE_ONCE(nr_queued, n);
}

/* The hierarchical weight of cgroup @cg, id @cgid (CG_ONE = 1.0), cached per generation. */
static u64 cg_hweight(struct cg_ctx *cg, u64 cgid)
{
	u64 gen = READ_ONCE(cg_gen), hw = CG_ONE, id = cgid;
	struct cg_ctx *up;
	int depth;

	if (cg->gen == gen)
		return cg->hweight;
	for (depth = 0; depth < CG_MAX_DEPTH && id; depth++) {
		up = bpf_map_lookup_elem(&cg_ctxs, &id);
		if (!up)
			break;
		/* The root's weight is not a share of anything. */
		if (up->level)
			hw = hw * up->weight / 100;
		id = up->parent;
	}
	if (!hw)
		hw = 1;
	cg->hweight = hw;
	cg->gen = gen;
	return hw;
}

/*
 * @p was preempted inside an RCU read-side critical section and has not left
 * it. Only preemptible RCU (CONFIG_PREEMPT_RCU) tracks readers per task. Not
 * rcu_read_lock_nesting: when @p is the task being switched out, a program
 * runs under the BPF trampoline's own rcu_read_lock(), so it is at least 1.
 * The kernel sets "blocked" when it switches out a task inside a read-side
 * section, before ops.enqueue, and clears it when the task leaves the section.
 */
static bool rcu_blocked(const struct task_struct *p)
{
	return bpf_core_field_exists(p->rcu_read_unlock_special) &&
	       p->rcu_read_unlock_special.b.blocked;
}

/* The weight below which a blocked RCU reader is not held: nice 0's. */
#define RCU_READER_MIN_WEIGHT 100

/*
 * The weight @p runs with (100 = nice 0 alone in the root cgroup): its nice
 * weight times its cgroup's hierarchical weight, divided among the cgroup's
 * runnable tasks as CFS divides a group's share. Tasks of the root cgroup
 * compete one by one, as they do under CFS. A blocked RCU reader runs with at
 * least nice 0's weight until it leaves the section, as the kernel's RCU
 * priority boosting raises it: at nice 19 among twenty hogs khugepaged got, by
 * its weight, a 250 us slice about twice a second, too little to finish
 * copying a huge page under emulation before the 21 s RCU stall ejected the
 * scheduler.
 */
static u64 task_weight(const struct task_struct *p, const struct task_ctx *tctx)
{
	u64 w = p->scx.weight;
	struct cg_ctx *cg;
	u64 cgid;
	s64 n;

	if (tctx && tctx->cgid) {
		cgid = tctx->cgid;
		cg = bpf_map_lookup_elem(&cg_ctxs, &cgid);
		if (cg && cg->level) {
			w = w * cg_hweight(cg, cgid) / CG_ONE;
			n = READ_ONCE(cg->nr_runnable);
			if (n > 1)
				w /= n;
		}
	}
	if (w < RCU_READER_MIN_WEIGHT && rcu_blocked(p))
		return RCU_READER_MIN_WEIGHT;
	return w ?: 1;
}

/* @ns of CPU time in @p's weighted time. */
static u64 weighted(u64 ns, u64 weight)
{
	return ns * 100 / weight;
}

/*
 * Sets @p's deadline for this enqueue: its vruntime plus the CPU time it used
 * since it last woke, at most one slice. The vruntime is first brought to at
 * least one slice behind its CPU's clock (no task banks credit), and a task
 * that wakes or comes from another CPU (whose clock may be far ahead) to at
 * most one slice ahead. A task that stays runnable on its CPU keeps its debt:
 * forgiving a light task the debt of every slice it runs would undo weights.
 */
static u64 task_deadline(const struct task_struct *p, struct task_ctx *tctx, bool waking)
{
	s32 cpu = task_cpu_of(p);
	u64 burst, vnow = cpu_vtime(cpu);

	if (!tctx)
		return vnow;
	if (waking || cpu != tctx->clock_cpu) {
		tctx->vruntime = clamp_vruntime(tctx->vruntime, vnow);
		tctx->clock_cpu = cpu;
	} else {
		tctx->vruntime = floor_vruntime(tctx->vruntime, vnow);
	}
	burst = tctx->exec_runtime_ns < slice_ns ? tctx->exec_runtime_ns : slice_ns;
	tctx->deadline = tctx->vruntime + weighted(burst, task_weight(p, tctx));
	return tctx->deadline;
}

static void count_insert(bool ok)
{
	if (ok)
		COUNT(nr_kernel_dispatches, 1);
	else
		COUNT(nr_failed_dispatches, 1);
}

/*
 * Up to this many CPUs, kick_idle_cpu() first looks whether every CPU runs one
 * of our tasks; beyond, a scan of their flags costs more than the kfunc.
 */
#define BUSY_SCAN_CPUS 16

/*
 * False when every other CPU runs one of our tasks, so none is idle (this one
 * is not: it runs this program, often between stopping() and the next
 * running()): a scan of the flags that running() and stopping() keep. Skips,
 * on every task a wakeup preempts while all CPUs are busy, a kfunc that costs
 * several us a call under the bench's emulation. True when it cannot tell.
 */
static bool maybe_idle_cpu(void)
{
	u32 nr_cpus = nr_cpu_ids_seen, i, this_cpu = bpf_get_smp_processor_id();

	if (!nr_cpus || nr_cpus > BUSY_SCAN_CPUS)
		return true;
	bpf_for(i, 0, nr_cpus) {
		if (i >= BUSY_SCAN_CPUS)
			return true;
		if (i != this_cpu && !READ_ONCE(cpu_ctxs[i].busy))
			return true;
	}
	return false;
}

static void kick_idle_cpu(const struct task_struct *p)
{
	s32 cpu;

	if (!maybe_idle_cpu())
		return;
	cpu = scx_bpf_pick_idle_cpu(p->cpus_ptr, 0);

	if (cpu >= 0)
		scx_bpf_kick_cpu(cpu, SCX_KICK_IDLE);
}

/*
 * SCX_ENQ_HEAD for a task that preempts @cctx's CPU while a task preempted
 * there before waits at the head of its local queue: the kernel runs the
 * local queue's first task.
 */
static u64 ahead_of_resumed(const struct cpu_ctx *cctx)
{
	return cctx && cctx->resume_local ? SCX_ENQ_HEAD : 0;
}

/*
 * The resume queues hold the dispatcher's decisions for one CPU (pinned
 * tasks), so they exist in user mode only; CPUs beyond MAX_CPUS have none.
 */
static bool has_resume_dsq(s32 cpu)
{
	return user_dispatch && cpu >= 0 && cpu < MAX_CPUS;
}

/* Normal tasks wait that may run on @cpu (in its resume queue or the shared one). */
static bool normal_waiting(s32 cpu)
{
	struct cpu_ctx *cctx = cpu_ctx_of(cpu);

	/* The flag alone: this runs in place_prio()'s loop over the CPUs. */
	return (cctx && cctx->resume_local) ||
	       (has_resume_dsq(cpu) && scx_bpf_dsq_nr_queued(RESUME_DSQ + cpu) > 0) ||
	       scx_bpf_dsq_nr_queued(SHARED_DSQ) > 0;
}

/*
 * Priority tasks have used @cpu for starvation_ns since a normal task last
 * started there, or it is still in the window in which it serves normal
 * tasks first.
 */
static bool cpu_starving(const struct cpu_ctx *cctx, s32 cpu, u64 now)
{
	u64 prio_ns;

	if (!cctx)
		return false;
	/* The cheap test first: this runs on every priority wakeup. */
	if (!time_before(now, cctx->guard_until)) {
		prio_ns = cctx->prio_ns;
		/* The priority task on the CPU now, which may have kept it for long. */
		if (cctx->busy && cctx->running_prio && time_after(now, cctx->started_at))
			prio_ns += now - cctx->started_at;
		if (prio_ns <= starvation_ns)
			return false;
	}
	return normal_waiting(cpu);
}

/*
 * The window in which @cctx's CPU serves normal tasks first opens @now, unless
 * it is open already (counted once a window).
 */
static void start_guard(struct cpu_ctx *cctx, u64 now)
{
	if (time_before(now, cctx->guard_until))
		return;
	cctx->guard_until = now + starvation_ns / 4;
	COUNT(nr_starvation_guards, 1);
}

/*
 * Whether a waking normal task with @deadline should preempt @cpu now: the CPU
 * runs one of our normal tasks whose deadline is later by more than the
 * margin, and which has no strategy or has used up its strategy's slice (the
 * kernel notices an ended slice only at the next tick, up to 4 ms later).
 */
static bool should_preempt(s32 cpu, u64 deadline)
{
	struct cpu_ctx *cctx = cpu_ctx_of(cpu);

	if (!cctx || !cctx->busy || cctx->running_prio)
		return false;
	if (cctx->running_strategy && time_before(now_ns(), cctx->slice_end))
		return false;
	return time_before(deadline + slice_min(), cctx->deadline);
}

static bool dispatcher_stalled(u64 now)
{
	return READ_ONCE(nr_user_outstanding) &&
	       (s64)(now - READ_ONCE(user_progress_at)) > (s64)user_stall_ns;
}

/*
 * Hand @p to the dispatcher. False when it cannot take it now (ring full or
 * too many tasks in its hands): the caller dispatches directly. The task is
 * counted outstanding before it is published, so a concurrent take-back never
 * subtracts what was not yet added.
 */
static bool send_to_user(struct task_struct *p, struct task_ctx *tctx, u64 slice,
			 bool has_strategy, bool sync_wake, u64 enq_flags)
{
	struct user_task ut = {};
	struct cpu_ctx *waker_cctx;
	struct queued_task *q;
	u32 pid = p->pid;
	u64 was;

	if (READ_ONCE(nr_user_outstanding) >= user_queue_depth)
		return false;
	q = bpf_ringbuf_reserve(&queued, sizeof(*q), 0);
	if (!q)
		return false;
	was = __sync_fetch_and_add(&nr_user_outstanding, 1);
	ut.seq = __sync_add_and_fetch(&user_seq, 1);
	ut.sent_at = now_ns();
	ut.sync_cpu = -1;
	if (sync_wake) {
		ut.sync_cpu = bpf_get_smp_processor_id();
		waker_cctx = cpu_ctx_of(ut.sync_cpu);
		if (waker_cctx && waker_cctx->busy)
			waker_cctx->sync_sent_stint = waker_cctx->started_at;
		else
			ut.sync_cpu = -1;
	}
	if (bpf_map_update_elem(&user_tasks, &pid, &ut, BPF_NOEXIST)) {
		__sync_fetch_and_sub(&nr_user_outstanding, 1);
		bpf_ringbuf_discard(q, 0);
		return false;
	}
	q->seq = ut.seq;
	q->cpu = task_cpu_of(p);
	q->vtime = tctx ? tctx->vruntime : cpu_vtime(q->cpu);
	q->exec_runtime_ns = tctx ? tctx->exec_runtime_ns : 0;
	q->slice_ns = slice;
	q->pid = pid;
	q->weight = tctx ? task_weight(p, tctx) : p->scx.weight;
	q->nr_cpus_allowed = p->nr_cpus_allowed;
	q->flags = ((enq_flags & SCX_ENQ_WAKEUP) ? QUEUED_F_WAKEUP : 0) |
		   (has_strategy ? QUEUED_F_STRATEGY : 0);
	q->__pad = 0;
	/* The stall clock starts when an idle dispatcher is given work. */
	if (!was)
		WRITE_ONCE(user_progress_at, ut.sent_at);
	COUNT(nr_user_enqueues, 1);
	bpf_ringbuf_submit(q, 0);
	return true;
}

static void cg_count(u64 cgid, s64 delta)
{
	struct cg_ctx *cg;

	if (!cgid)
		return;
	cg = bpf_map_lookup_elem(&cg_ctxs, &cgid);
	if (cg)
		__sync_fetch_and_add(&cg->nr_runnable, delta);
}

/*
 * A task's runnable span, counted in its cgroup for task_weight(). It starts
 * where the task is handed to us (select_cpu()'s direct dispatch or
 * enqueue()) and ends when it stops to sleep or leaves sched_ext, rather than
 * in ops.runnable and ops.quiescent: two more BPF programs on every wakeup and
 * every sleep (2 and 0.5 us a call under the bench's emulation) for what
 * these ops see anyway. A span the kernel starts without us (a bypassed
 * enqueue) is not counted, and the flag keeps it from being uncounted.
 */
static void mark_runnable(struct task_ctx *tctx)
{
	if (!tctx->runnable) {
		tctx->runnable = true;
		cg_count(tctx->cgid, 1);
	}
}

static void mark_quiescent(struct task_ctx *tctx)
{
	if (tctx->runnable) {
		tctx->runnable = false;
		cg_count(tctx->cgid, -1);
	}
}

s32 BPF_STRUCT_OPS(pilot_select_cpu, struct task_struct *p, s32 prev_cpu, u64 wake_flags)
{
	struct task_ctx *tctx;
	bool is_idle = false;
	s32 cpu;

	tctx = task_ctx_of(p);
	if (tctx)
		tctx->sync_wake = wake_flags & SCX_WAKE_SYNC;
	cpu = scx_bpf_select_cpu_dfl(p, prev_cpu, wake_flags, &is_idle);
	/*
	 * With no idle CPU, the dispatcher runs where it was woken: the ring
	 * wakes it from the CPU that just queued a task, which drains the
	 * decision when the dispatcher sleeps again and runs that task itself.
	 * On its previous CPU it would preempt a task there, and the decision
	 * would need a second cross-CPU kick to reach the task's CPU (a pinned
	 * probe waited 0.8-1.5 ms, against 0.2-0.4 ms in kernel mode).
	 *
	 * So does a task woken by a sync waker (pipes, sockets), as EEVDF's
	 * wake_affine places it: the waker is about to sleep, and the CPU it
	 * leaves takes the task from the shared queue without moving it from
	 * another CPU's run queue, which takes that CPU's lock while it runs
	 * its own scheduling ops. On its previous CPU it also preempted the
	 * task there rather than wait for the waker to sleep. Hackbench (4
	 * groups on 2 vCPUs): 0.93-0.98x the time, about 0.8x the context
	 * switches of placing it on its previous CPU (three A/B boots). Not
	 * in user mode, where the dispatcher decides: there a 1 ms probe's
	 * p99 beside hogs reached 4.5-4.7 ms more often with it.
	 */
	if (!is_idle && (is_dispatcher(p) || (!user_dispatch && (wake_flags & SCX_WAKE_SYNC)))) {
		s32 this_cpu = bpf_get_smp_processor_id();

		if (cpu_allowed(p, this_cpu))
			cpu = this_cpu;
	}
	if (is_idle) {
		struct strategy *s = strategy_of(p, tctx);
		u64 slice = task_slice(s);

		if (s)
			__sync_fetch_and_add(&s->nr_hits, 1);
		if (tctx) {
			tctx->slice_ns = slice;
			tctx->prio = is_dispatcher(p) || is_prio(s);
			tctx->strategy = !!s;
			/* enqueue() does this for the wakeups it sees; it sees none of these. */
			if (wake_flags & SCX_WAKE_TTWU)
				tctx->exec_runtime_ns = 0;
			task_deadline(p, tctx, true);
			mark_runnable(tctx);
		}
		count_insert(scx_bpf_dsq_insert(p, SCX_DSQ_LOCAL, slice, 0));
		COUNT(nr_direct_dispatches, 1);
	}
	return cpu;
}

/*
 * The CPU runs a sync waker that sent the task it woke to the dispatcher: it
 * is about to sleep, and preempting it for the dispatcher would make message
 * passers trade one message per context switch, as in pilot_enqueue().
 */
static bool sync_sender_runs(const struct cpu_ctx *cctx)
{
	return cctx->busy && cctx->sync_sent_stint == cctx->started_at;
}

/*
 * The CPU runs a normal task that woke a moment ago and has used less than a
 * minimum slice since: about to sleep again, most likely. The dispatcher does
 * not preempt it: a 1 ms probe preempted for the dispatcher's sake went back
 * through it and often came out behind a CPU hog, for that hog's whole slice.
 */
static bool short_burst(const struct cpu_ctx *cctx, u64 now)
{
	return cctx->busy && !cctx->running_prio &&
	       cctx->burst_ns + (now - cctx->started_at) < slice_min();
}

/* A CPU the dispatcher leaves alone: see sync_sender_runs() and short_burst(). */
static bool spare_from_dispatcher(const struct cpu_ctx *cctx, u64 now)
{
	return sync_sender_runs(cctx) || short_burst(cctx, now);
}

/*
 * Give a CPU to priority task @p now: preempt the normal task on @p's own CPU,
 * or, when that CPU already runs a priority task, kick another allowed CPU
 * that runs a normal one so it picks @p from PRIO_DSQ (the dispatcher goes to
 * the head of that CPU's local queue instead). CPUs whose normal tasks are
 * starving are left alone. When every allowed CPU runs a priority task, @p
 * goes on next on one where a preempted normal task waits in the local queue
 * (pilot_stopping()), ahead of it: from PRIO_DSQ it would wait for that task's
 * rest of slice, which may be a strategy's long slice, since a CPU runs its
 * local queue before it calls dispatch(). Returns true when @p was inserted.
 */
static bool place_prio(struct task_struct *p, u64 slice, u64 enq_flags, u64 now)
{
	s32 cpu = task_cpu_of(p), i, behind_resumed = -1;
	u32 nr_cpus = nr_cpu_ids_seen;
	bool dispatcher = is_dispatcher(p);
	struct cpu_ctx *cctx;

	cctx = cpu_ctx_of(cpu);
	if (cctx && !cctx->running_prio && !(dispatcher && spare_from_dispatcher(cctx, now))) {
		if (cpu_starving(cctx, cpu, now))
			return false;
		/*
		 * At the head: ahead of a task a wakeup preempted here, and of the
		 * per-CPU kthreads enqueue() queues there without preemption,
		 * which wait for the running task's slice to end.
		 */
		count_insert(scx_bpf_dsq_insert(p, SCX_DSQ_LOCAL, slice,
						enq_flags | SCX_ENQ_PREEMPT | SCX_ENQ_HEAD));
		COUNT(nr_preemptions, 1);
		return true;
	}

	if (nr_cpus > MAX_CPUS)
		nr_cpus = MAX_CPUS;
	bpf_for(i, 0, nr_cpus) {
		if (!cpu_allowed(p, i))
			continue;
		cctx = cpu_ctx_of(i);
		if (!cctx)
			continue;
		/* The flags first: cpu_starving() may count two queues. */
		if (cctx->running_prio) {
			if (behind_resumed < 0 && cctx->resume_local && !cpu_starving(cctx, i, now))
				behind_resumed = i;
			continue;
		}
		if (cpu_starving(cctx, i, now))
			continue;
		if (i == cpu || (dispatcher && spare_from_dispatcher(cctx, now)))
			continue;
		COUNT(nr_preemptions, 1);
		/*
		 * A CPU runs what its local queue holds before it looks at
		 * PRIO_DSQ. The dispatcher, kicked for there or queued behind
		 * a task in it, waited a whole slice (3-8 ms) about once in
		 * a hundred of a 1 ms probe's wakeups, and every decision
		 * with it; so it goes to the head of that CPU's local queue.
		 * So does a priority task where a preempted task waits there.
		 */
		if (dispatcher || cctx->resume_local) {
			count_insert(scx_bpf_dsq_insert(p, SCX_DSQ_LOCAL_ON | i, slice,
							enq_flags | SCX_ENQ_PREEMPT | SCX_ENQ_HEAD));
			return true;
		}
		scx_bpf_kick_cpu(i, SCX_KICK_PREEMPT);
		return false;
	}
	if (behind_resumed < 0)
		return false;
	count_insert(scx_bpf_dsq_insert(p, SCX_DSQ_LOCAL_ON | behind_resumed, slice,
					enq_flags | SCX_ENQ_HEAD));
	return true;
}

/*
 * A task preempted inside an RCU read-side critical section holds up every
 * grace period until it runs again, and the kernel ejects a scheduler under
 * which an RCU stall lasts 21 s. A light task (nice 19, or in a cgroup of
 * tiny cpu.weight such as a BestEffort pod) among many hogs gets a short slice
 * about once a second by its weight: too little CPU to leave a long section
 * (khugepaged copying a huge page under emulation) in time. Like the kernel's
 * RCU priority boosting, such a task is queued first among normal tasks, for
 * a minimum slice, at most once per starvation_ns / 4, so that a task that is
 * often preempted in such sections cannot take a CPU from the others.
 */
static bool rcu_boost(const struct task_struct *p, struct task_ctx *tctx, u64 enq_flags, u64 now)
{
	if ((enq_flags & SCX_ENQ_WAKEUP) || !tctx || !rcu_blocked(p))
		return false;
	if (tctx->rcu_boosted_at && time_before(now, tctx->rcu_boosted_at + starvation_ns / 4))
		return false;
	tctx->rcu_boosted_at = now;
	COUNT(nr_rcu_boosts, 1);
	return true;
}

/*
 * Whether waking task @p (with @deadline), which does not preempt the task
 * running on its CPU @cpu, goes on next there, ahead of a task a wakeup
 * preempted on @cpu (it waits at the head of the local queue:
 * pilot_stopping()) whose deadline is later by the margin. Mostly the running
 * task is itself a waker with the same deadline (two threads of one process
 * that wake together, both placed one slice behind the clock): it runs
 * briefly, and in the shared queue @p waited for the preempted hog's whole
 * rest of slice after it (a 1 ms probe: 0.2% of its wakeups took 2-4 ms, the
 * tail that scx_floor, which resumes nothing, did not have).
 */
static bool wake_before_resumed(const struct task_struct *p, s32 cpu, u64 deadline)
{
	struct cpu_ctx *cctx = cpu_ctx_of(cpu);

	return cctx && cctx->resume_local && cpu_allowed(p, cpu) &&
	       time_before(deadline + slice_min(), cctx->resume_deadline) &&
	       scx_bpf_dsq_nr_queued(SCX_DSQ_LOCAL_ON | cpu) > 0;
}

void BPF_STRUCT_OPS(pilot_enqueue, struct task_struct *p, u64 enq_flags)
{
	struct task_ctx *tctx = task_ctx_of(p);
	struct strategy *s;
	u64 slice, deadline, now;
	bool dispatcher, prio, sync_wake = false, yielded = false;
	s32 cpu;

	if (tctx) {
		if (enq_flags & SCX_ENQ_WAKEUP)
			tctx->exec_runtime_ns = 0;
		mark_runnable(tctx);
		yielded = tctx->yielded;
		tctx->yielded = false;
	}
	s = strategy_of(p, tctx);
	slice = task_slice(s);
	dispatcher = is_dispatcher(p);
	/*
	 * The dispatcher runs ahead of everything it decides for, like a priority
	 * task, so a decision is never stuck behind the tasks waiting for it.
	 */
	prio = dispatcher || is_prio(s);
	if (tctx) {
		/* select_cpu() is skipped for some wakeups: a flag is used once. */
		sync_wake = tctx->sync_wake;
		tctx->sync_wake = false;
		tctx->slice_ns = slice;
		tctx->prio = prio;
		tctx->strategy = !!s;
		tctx->woken = enq_flags & SCX_ENQ_WAKEUP;
	}
	if (s) {
		__sync_fetch_and_add(&s->nr_hits, 1);
		COUNT(nr_strategy_hits, 1);
	}
	deadline = task_deadline(p, tctx, enq_flags & SCX_ENQ_WAKEUP);

	/* Making them wait behind hogs only delays the work hogs need. */
	if (is_percpu_kthread(p)) {
		count_insert(scx_bpf_dsq_insert(p, SCX_DSQ_LOCAL, slice,
						enq_flags | ahead_of_resumed(cpu_ctx_of(task_cpu_of(p)))));
		return;
	}

	now = now_ns();
	if (prio) {
		if (!dispatcher)
			COUNT(nr_prio_dispatches, 1);
		/*
		 * Only a wakeup preempts: a priority task whose slice ran out goes
		 * through PRIO_DSQ, so its CPU passes through dispatch() where the
		 * starvation guard can serve normal tasks first.
		 */
		if ((enq_flags & SCX_ENQ_WAKEUP) && !is_migration_disabled(p) &&
		    place_prio(p, slice, enq_flags, now))
			return;
		if (!READ_ONCE(prio_dsq_used))
			WRITE_ONCE(prio_dsq_used, true);
		count_insert(scx_bpf_dsq_insert_vtime(p, PRIO_DSQ, slice, deadline, enq_flags));
		return;
	}

	cpu = task_cpu_of(p);
	if (rcu_boost(p, tctx, enq_flags, now)) {
		/*
		 * Deadline 0: the kernel orders the queue with time_before(), so
		 * first. Never a wakeup, so no wakeup preemption below either.
		 */
		slice = slice_min();
		deadline = 0;
	} else if (user_dispatch && !yielded && !READ_ONCE(user_fallback_active)) {
		if (send_to_user(p, tctx, slice, s, sync_wake, enq_flags))
			return;
		COUNT(nr_sched_congested, 1);
	}

	/*
	 * EEVDF-style wakeup preemption of a later deadline on the task's CPU,
	 * but not of a waker that said it is about to sleep: preempting it at
	 * once makes message passers (pipes, sockets: hackbench) trade one
	 * message per context switch, about ten times slower than letting the
	 * waker fill the buffer first.
	 */
	if ((enq_flags & SCX_ENQ_WAKEUP) && !is_migration_disabled(p) &&
	    !(sync_wake && cpu == bpf_get_smp_processor_id()) &&
	    cpu_allowed(p, cpu) && should_preempt(cpu, deadline)) {
		count_insert(scx_bpf_dsq_insert(p, SCX_DSQ_LOCAL, slice,
						enq_flags | SCX_ENQ_PREEMPT |
						ahead_of_resumed(cpu_ctx_of(cpu))));
		COUNT(nr_wakeup_preemptions, 1);
		return;
	}

	if ((enq_flags & SCX_ENQ_WAKEUP) && wake_before_resumed(p, cpu, deadline)) {
		count_insert(scx_bpf_dsq_insert(p, SCX_DSQ_LOCAL, slice, enq_flags | SCX_ENQ_HEAD));
		COUNT(nr_wakeups_before_resumed, 1);
		return;
	}

	if (tctx)
		tctx->queued_at = now;
	count_insert(scx_bpf_dsq_insert_vtime(p, SHARED_DSQ, slice, deadline, enq_flags));

	/* Tasks queued without select_cpu (preempted, new) may find an idle CPU. */
	kick_idle_cpu(p);
}

void BPF_STRUCT_OPS(pilot_dequeue, struct task_struct *p, u64 deq_flags)
{
	u32 pid = p->pid;

	/*
	 * Taken back before it was dispatched (affinity, priority, exit...). Where
	 * the kernel also calls dequeue when a task merely leaves our queues for a
	 * CPU, only the property changes it flags are cancellations. In user mode
	 * a task in the dispatcher's hands is withdrawn, and the decision that may
	 * still come for it is counted as cancelled then.
	 */
	if (!user_dispatch) {
		if (!SCX_DEQ_SCHED_CHANGE || (deq_flags & SCX_DEQ_SCHED_CHANGE))
			COUNT(nr_cancel_dispatches, 1);
		return;
	}
	if (!bpf_map_delete_elem(&user_tasks, &pid)) {
		__sync_fetch_and_sub(&nr_user_outstanding, 1);
		COUNT(nr_user_withdrawn, 1);
	}
}

static bool serve_dsq(u64 dsq_id)
{
	if (!scx_bpf_dsq_move_to_local(dsq_id, 0))
		return false;
	COUNT(nr_kernel_dispatches, 1);
	return true;
}

/* Priority tasks wait in PRIO_DSQ. */
static bool prio_queued(void)
{
	return READ_ONCE(prio_dsq_used) && scx_bpf_dsq_nr_queued(PRIO_DSQ) > 0;
}

static bool serve_prio(void)
{
	return READ_ONCE(prio_dsq_used) && serve_dsq(PRIO_DSQ);
}

/* What one scan of the shared queue found for a CPU. */
enum shared_pick {
	SHARED_NONE,		/* no task there may run on the CPU */
	SHARED_HEAD,		/* (looking only) the first one that may: *head_vtime */
	SHARED_PREV,		/* the task whose slice ended goes on first */
	SHARED_MOVED,		/* a task is in the CPU's local queue */
};

/*
 * One scan of the first KEEP_PREV_SCAN shared-queue tasks that may run on
 * @cpu, for everything dispatch() asks of that queue. The first such task (the
 * head) gives *@head_vtime when asked; with !@move that is all (a decision
 * from the dispatcher asks whether any task is ahead of it).
 *
 * @prev_dl, when set, is the deadline the normal task whose slice just ended
 * on @cpu would get: it keeps the CPU when that is earlier than the head's and
 * the head has not waited a starvation interval (deadlines come from per-CPU
 * clocks, so a task from another CPU must not wait on them for long).
 * Otherwise a task moves to @cpu's local queue, preferring one that last ran
 * on @cpu: the first queued by @cpu whose deadline is within one slice of the
 * head's, else the head. Taking the head alone, every slice end moved a hog to
 * the other CPU half the time (6 hogs on 2 CPUs: 1,700-3,200 migrations in
 * 7 s against EEVDF's 3-11), which costs caches and the CPU time of the move.
 * The head waits at most about a slice of deadline more: its own CPU takes it
 * as its local task. A woken task is never passed over: it goes to the first
 * CPU that is free.
 */
static enum shared_pick scan_shared(s32 cpu, const u64 *prev_dl, bool move, u64 now,
				    u64 *head_vtime)
{
	struct task_struct *p;
	struct task_ctx *wctx;
	u64 head = 0, queued_at;
	bool seen = false;
	int scanned = 0;

	bpf_for_each(scx_dsq, p, SHARED_DSQ, 0) {
		if (++scanned > KEEP_PREV_SCAN)
			break;
		if (!cpu_allowed(p, cpu))
			continue;
		if (!seen) {
			seen = true;
			head = p->scx.dsq_vtime;
			if (head_vtime)
				*head_vtime = head;
			if (!move)
				return SHARED_HEAD;
			wctx = task_ctx_of(p);
			queued_at = wctx ? wctx->queued_at : 0;
			if (prev_dl && time_before(*prev_dl, head) &&
			    (s64)(now - queued_at) <= (s64)starvation_ns)
				return SHARED_PREV;
		} else if (time_after(p->scx.dsq_vtime, head + slice_ns)) {
			break;
		} else {
			wctx = task_ctx_of(p);
		}
		if (!wctx || wctx->woken)
			break;
		if (task_cpu_of(p) == cpu &&
		    scx_bpf_dsq_move(BPF_FOR_EACH_ITER, p, SCX_DSQ_LOCAL, 0)) {
			COUNT(nr_kernel_dispatches, 1);
			return SHARED_MOVED;
		}
	}
	if (!move)
		return SHARED_NONE;
	return serve_dsq(SHARED_DSQ) ? SHARED_MOVED : SHARED_NONE;
}

/*
 * Whether the decision for @ut's task with deadline @vtime preempts @cpu. Not
 * when the task was woken by a sync wakeup on @cpu and a sync waker still runs
 * there: the kernel-mode rule in pilot_enqueue(), checked when the decision
 * comes.
 */
static bool decision_preempts(const struct user_task *ut, s32 cpu, u64 vtime)
{
	struct cpu_ctx *cctx;

	if (ut->sync_cpu == cpu && (cctx = cpu_ctx_of(cpu)) && sync_sender_runs(cctx))
		return false;
	return should_preempt(cpu, vtime);
}

/* The CPU that drains decisions in dispatch(), and whether it took one itself. */
struct drain_ctx {
	s32 cpu;
	bool may_place;		/* nothing this CPU must run first (a priority task) */
	bool placed;		/* a decided task is in its local queue */
};

/*
 * Run @p as the dispatcher decided; preempt a later deadline where it pays.
 * The CPU that drains the decision is about to pick a task: the first decided
 * task that may run there, and that no shared-queue task is ahead of, runs
 * there next. Kicking the task's own CPU instead would preempt a task there
 * for it while this CPU took another, one more round trip to the dispatcher
 * and back for every wakeup.
 */
static void apply_decision(struct task_struct *p, const struct dispatched_task *d,
			   const struct user_task *ut, struct drain_ctx *dc)
{
	u64 ahead_vtime;
	u64 slice = d->slice_ns, vtime = d->vtime;
	struct task_ctx *tctx = task_ctx_of(p);
	s32 cpu = d->cpu, target = task_cpu_of(p);
	bool ok;

	/* Our own dispatcher, but a bad slice must not hold a CPU for long. */
	if (!slice || slice > starvation_ns)
		slice = slice_ns;
	/* Nor may a deadline jump the queue by more than one slice. */
	vtime = floor_vruntime(vtime, cpu_vtime(target));
	if (tctx)
		tctx->deadline = vtime;

	if (dc->may_place && !dc->placed && (cpu < 0 || cpu == dc->cpu) &&
	    cpu_allowed(p, dc->cpu) &&
	    !(scan_shared(dc->cpu, NULL, false, 0, &ahead_vtime) == SHARED_HEAD &&
	      time_before(ahead_vtime, vtime))) {
		ok = scx_bpf_dsq_insert(p, SCX_DSQ_LOCAL, slice, 0);
		dc->placed = ok;
		goto out;
	}
	if (cpu >= 0) {
		/*
		 * Not in that CPU's local queue: a task there runs before the
		 * CPU calls dispatch(), so a dispatcher a kick preempted there
		 * lost the CPU to it for its whole slice. dispatch() serves this
		 * queue right after PRIO_DSQ.
		 */
		if ((u32)cpu < nr_cpu_ids_seen && cpu_allowed(p, cpu)) {
			if (has_resume_dsq(cpu))
				ok = scx_bpf_dsq_insert_vtime(p, RESUME_DSQ + cpu, slice, vtime, 0);
			else
				ok = scx_bpf_dsq_insert(p, SCX_DSQ_LOCAL_ON | cpu, slice, 0);
			if (ok)
				scx_bpf_kick_cpu(cpu, decision_preempts(ut, cpu, vtime) ?
						 SCX_KICK_PREEMPT : SCX_KICK_IDLE);
			goto out;
		}
		/* Its affinity changed since it was queued. */
		COUNT(nr_bounce_dispatches, 1);
	}
	ok = scx_bpf_dsq_insert_vtime(p, SHARED_DSQ, slice, vtime, 0);
	if (ok) {
		if (cpu_allowed(p, target) &&
		    decision_preempts(ut, target, vtime)) {
			scx_bpf_kick_cpu(target, SCX_KICK_PREEMPT);
			COUNT(nr_wakeup_preemptions, 1);
		} else {
			kick_idle_cpu(p);
		}
	}
out:
	if (ok)
		COUNT(nr_user_dispatches, 1);
	else
		COUNT(nr_failed_dispatches, 1);
}

/* One record of the user ring buffer; returning 1 stops the drain. */
static long drain_decision(struct bpf_dynptr *dynptr, struct drain_ctx *dc)
{
	struct dispatched_task d;
	struct user_task *ut, held;
	struct task_struct *p;

	if (bpf_dynptr_read(&d, sizeof(d), dynptr, 0, 0))
		return 0;
	WRITE_ONCE(user_progress_at, now_ns());
	WRITE_ONCE(nr_scheduled, d.nr_pending);
	/* The dispatcher is back: send it tasks again. */
	if (READ_ONCE(user_fallback_active))
		WRITE_ONCE(user_fallback_active, 0);
	if (!d.pid)
		return 0;

	/* Stale: withdrawn, taken back, or enqueued again since. */
	ut = bpf_map_lookup_elem(&user_tasks, &d.pid);
	if (ut)
		held = *ut;
	if (!ut || held.seq != d.seq || bpf_map_delete_elem(&user_tasks, &d.pid)) {
		COUNT(nr_cancel_dispatches, 1);
		return 0;
	}
	__sync_fetch_and_sub(&nr_user_outstanding, 1);
	p = bpf_task_from_pid(d.pid);
	if (!p) {
		COUNT(nr_cancel_dispatches, 1);
		return 0;
	}
	apply_decision(p, &d, &held, dc);
	bpf_task_release(p);
	/* dispatch() can insert only so many tasks per call. */
	return scx_bpf_dispatch_nr_slots() ? 0 : 1;
}

struct take_back_ctx {
	u64 now;
	bool all;		/* the dispatcher is stalled: take back everything */
	bool cut;		/* ran out of dispatch slots */
};

/* Take one task back from the dispatcher; returning 1 stops the walk. */
static long take_back(struct bpf_map *map, u32 *pid, struct user_task *ut,
		      struct take_back_ctx *tb)
{
	struct task_struct *p;
	struct task_ctx *tctx;
	u32 key = *pid;

	if (!tb->all && (s64)(tb->now - ut->sent_at) <= (s64)user_stall_ns)
		return 0;
	if (!scx_bpf_dispatch_nr_slots()) {
		tb->cut = true;
		return 1;
	}
	if (bpf_map_delete_elem(&user_tasks, &key))
		return 0;
	__sync_fetch_and_sub(&nr_user_outstanding, 1);
	p = bpf_task_from_pid(key);
	if (!p)
		return 0;
	tctx = task_ctx_of(p);
	count_insert(scx_bpf_dsq_insert_vtime(p, SHARED_DSQ, slice_ns,
					      tctx ? tctx->deadline : cpu_vtime(task_cpu_of(p)), 0));
	COUNT(nr_user_recovered, 1);
	if (!tb->all)
		COUNT(nr_user_aged, 1);
	bpf_task_release(p);
	return 0;
}

/*
 * Apply the dispatcher's decisions on @cpu, which may take one of them itself
 * when @may_place, and take back what it held too long. Returns true when a
 * decided task is in @cpu's local queue.
 */
static bool user_dispatch_work(s32 cpu, bool may_place, u64 now)
{
	struct take_back_ctx tb = { .now = now };
	struct drain_ctx dc = { .cpu = cpu, .may_place = may_place };

	bpf_user_ringbuf_drain(&dispatched, drain_decision, &dc, 0);
	tb.all = dispatcher_stalled(now);
	if (tb.all) {
		if (__sync_val_compare_and_swap(&user_fallback_active, 0, 1) == 0)
			COUNT(nr_user_fallbacks, 1);
	} else if (!READ_ONCE(user_aged_pending)) {
		return dc.placed;
	}
	WRITE_ONCE(user_aged_pending, 0);
	bpf_for_each_map_elem(&user_tasks, take_back, &tb, 0);
	if (tb.cut)
		WRITE_ONCE(user_aged_pending, 1);
	return dc.placed;
}

static bool serve_resumed(s32 cpu)
{
	return has_resume_dsq(cpu) && serve_dsq(RESUME_DSQ + cpu);
}

/*
 * The deadline a task (@tctx, weight @w) whose slice just ran out would get if
 * it were enqueued @now: stopping() has not yet charged that slice's CPU time.
 */
static u64 prev_deadline(const struct task_ctx *tctx, u64 now, u64 w)
{
	u64 ran = tctx->started_at ? now - tctx->started_at : 0;
	u64 burst = tctx->exec_runtime_ns + ran;

	if (burst > slice_ns)
		burst = slice_ns;
	return tctx->vruntime + weighted(ran, w) + weighted(burst, w);
}

/*
 * Serve the shared queue to @cpu, where @prev's slice ran out (NULL: no task
 * may keep the CPU): scan_shared(), with the deadline @prev would get if it is
 * a normal task. Without that comparison, two hogs sharing a CPU take turns
 * slice by slice whatever their weights. Not in user mode, where the
 * dispatcher decides deadlines.
 */
static enum shared_pick serve_shared(struct task_struct *prev, s32 cpu, u64 now)
{
	struct task_ctx *tctx = prev ? task_ctx_of(prev) : NULL;
	u64 prev_dl;

	if (user_dispatch || !tctx || tctx->prio || tctx->yielded)
		return scan_shared(cpu, NULL, true, now, NULL);
	prev_dl = prev_deadline(tctx, now, task_weight(prev, tctx));
	return scan_shared(cpu, &prev_dl, true, now, NULL);
}

/*
 * @prev keeps its CPU. Give it its configured (or its strategy's) slice
 * again, so the kernel does not refill it with its own default, and a
 * strategy posted meanwhile applies from this slice on. Its deadline and the
 * CPU's clock move on as if it had been enqueued and started again.
 */
static void refresh_prev(struct task_struct *prev, s32 cpu, u64 now)
{
	struct task_ctx *tctx = task_ctx_of(prev);
	struct strategy *s = strategy_of(prev, tctx);
	struct cpu_ctx *cctx = cpu_ctx_of(cpu);
	u64 slice = task_slice(s);

	if (s) {
		__sync_fetch_and_add(&s->nr_hits, 1);
		COUNT(nr_strategy_hits, 1);
	}
	if (tctx) {
		tctx->slice_ns = slice;
		tctx->prio = is_dispatcher(prev) || is_prio(s);
		tctx->strategy = !!s;
		tctx->yielded = false;
	}
	if (cctx) {
		cctx->running_prio = tctx && tctx->prio;
		cctx->running_strategy = tctx && tctx->strategy;
		cctx->slice_end = now + slice;
		if (tctx) {
			u64 w = task_weight(prev, tctx);

			tctx->deadline = prev_deadline(tctx, now, w);
			cctx->deadline = tctx->deadline;
			if (tctx->started_at && !tctx->prio) {
				u64 vruntime = tctx->vruntime + weighted(now - tctx->started_at, w);

				if (time_before(cctx->vtime_now, vruntime))
					cctx->vtime_now = vruntime;
			}
		}
	}
	scx_bpf_task_set_slice(prev, slice);
}

/*
 * The per-CPU starvation guard: when normal tasks that may run here have
 * waited starvation_ns, serve them first for the next starvation_ns / 4.
 * Returns true when a normal task runs next.
 */
static bool guard_cpu(struct cpu_ctx *cctx, struct task_struct *prev, s32 cpu, u64 now)
{
	/*
	 * No priority CPU time since a normal task last started here and no
	 * window open: what the tests below would conclude, without counting a
	 * queue (a kfunc call) on every slice end.
	 */
	if (!cctx->prio_ns && !(cctx->busy && cctx->running_prio) &&
	    !time_before(now, cctx->guard_until))
		return false;
	if (!normal_waiting(cpu)) {
		cctx->prio_ns = 0;
		return false;
	}
	if (!cpu_starving(cctx, cpu, now))
		return false;
	/*
	 * A task preempted here first; a normal task whose slice ended serves
	 * the guard as well as a waiter.
	 */
	if (!serve_resumed(cpu)) {
		enum shared_pick pick;

		if (!(prev && (prev->scx.flags & SCX_TASK_QUEUED) && !ran_prio(prev)))
			prev = NULL;
		pick = serve_shared(prev, cpu, now);
		if (pick == SHARED_NONE) {
			/* Nothing waiting can run here. */
			cctx->prio_ns = 0;
			cctx->guard_until = 0;
			return false;
		}
		/* SHARED_PREV comes only with a prev: the verifier cannot tell. */
		if (pick == SHARED_PREV && prev)
			refresh_prev(prev, cpu, now);
	}
	start_guard(cctx, now);
	return true;
}

void BPF_STRUCT_OPS(pilot_dispatch, s32 cpu, struct task_struct *prev)
{
	struct cpu_ctx *cctx = cpu_ctx_of(cpu);
	u64 now = now_ns();

	/* Called with an empty local queue: no preempted task waits there. */
	if (cctx)
		cctx->resume_local = false;
	if (test_hooks && READ_ONCE(test_force_error)) {
		scx_bpf_error("forced exit by the agent's test hook");
		return;
	}

	/* A priority task whose slice ran out, or one waiting, goes first. */
	if (user_dispatch &&
	    user_dispatch_work(cpu,
			       !(prev && (prev->scx.flags & SCX_TASK_QUEUED) && ran_prio(prev)) &&
			       !prio_queued() &&
			       !(has_resume_dsq(cpu) && scx_bpf_dsq_nr_queued(RESUME_DSQ + cpu)), now))
		goto out;

	if (cctx && guard_cpu(cctx, prev, cpu, now))
		goto out;
	/* A priority task whose slice ran out is ahead of every normal task. */
	if (prev && (prev->scx.flags & SCX_TASK_QUEUED) && ran_prio(prev) && !prio_queued()) {
		refresh_prev(prev, cpu, now);
		goto out;
	}
	if (serve_prio() || serve_resumed(cpu))
		goto out;
	if (!(prev && (prev->scx.flags & SCX_TASK_QUEUED)))
		prev = NULL;
	/* Nothing waiting may run here, or prev goes first: it keeps the CPU. */
	if (serve_shared(prev, cpu, now) != SHARED_MOVED && prev)
		refresh_prev(prev, cpu, now);
out:
	refresh_nr_queued();
}

void BPF_STRUCT_OPS(pilot_running, struct task_struct *p)
{
	s32 cpu = task_cpu_of(p);
	struct task_ctx *tctx = task_ctx_of(p);
	struct cpu_ctx *cctx = cpu_ctx_of(cpu);
	u64 now = now_ns();

	if (tctx) {
		tctx->started_at = now;
		if (tctx->resumed_local && cctx)
			cctx->resume_local = false;
		tctx->resumed_local = false;
		/* Taken from the shared queue by another CPU than the one it queued on. */
		if (tctx->clock_cpu != cpu) {
			tctx->vruntime = clamp_vruntime(tctx->vruntime, cctx ? cctx->vtime_now : 0);
			tctx->clock_cpu = cpu;
		}
	}
	if (cctx) {
		if (tctx && !tctx->prio && time_before(cctx->vtime_now, tctx->vruntime))
			cctx->vtime_now = tctx->vruntime;
		cctx->busy = true;
		cctx->running_prio = tctx && tctx->prio;
		cctx->running_strategy = tctx && tctx->strategy;
		cctx->deadline = tctx ? tctx->deadline : cctx->vtime_now;
		cctx->slice_end = now + (tctx ? tctx->slice_ns : slice_ns);
		cctx->started_at = now;
		cctx->burst_ns = tctx ? tctx->exec_runtime_ns : slice_ns;
		if (!cctx->running_prio)
			cctx->prio_ns = 0;
	}
}

void BPF_STRUCT_OPS(pilot_stopping, struct task_struct *p, bool runnable)
{
	struct task_ctx *tctx = task_ctx_of(p);
	struct cpu_ctx *cctx = cpu_ctx_of(task_cpu_of(p));
	u64 now = now_ns();

	if (tctx && tctx->started_at) {
		u64 used = now - tctx->started_at, weight = task_weight(p, tctx);

		tctx->vruntime += weighted(used, weight);
		tctx->exec_runtime_ns += used;
		tctx->started_at = 0;
		/* EEVDF's yield: the rest of its request is forfeit. */
		if (tctx->yielded && time_before(tctx->vruntime, tctx->deadline))
			tctx->vruntime = tctx->deadline;
		/*
		 * A wakeup's SCX_ENQ_PREEMPT cleared its slice before its end (an
		 * expired slice ends at the tick, after slice_end). Not in user
		 * mode: there the task that preempts is mostly the dispatcher, and
		 * the tasks it decides for go to the shared queue when this CPU
		 * cannot take them, which a task resumed here would keep waiting
		 * (p99 1.4-5.1 ms against 1.9-3.2 ms without, one boot). Nor a
		 * task preempted after slice_end, before the tick that would end
		 * it (about 60% of a 1 ms probe's preemptions at HZ=250): resumed
		 * until that tick, hogs held a waker's CPU while the others fell
		 * more than a slice behind its clock, and wakers placed one slice
		 * behind it no longer preempted them (1.1-1.8% of the probe's
		 * wakeups waited over 3 ms, against 0.03-0.05%; two boots).
		 *
		 * It keeps the rest of its slice, so the kernel puts it at the
		 * head of the local queue itself, without ops.enqueue(), and the
		 * CPU takes it without ops.dispatch() when the preemptor sleeps
		 * (two programs less on every wakeup preemption, about 7 and 20 us
		 * a call under the bench's emulation). Only when the preemptor is
		 * in the local queue (not when a kick made the CPU pick it from
		 * PRIO_DSQ), and never a per-CPU kthread, which nothing preempts
		 * on purpose.
		 */
		if (runnable && !user_dispatch && !p->scx.slice && !tctx->prio && !tctx->yielded &&
		    cctx && time_before(now + slice_min() / 2, cctx->slice_end) &&
		    !is_percpu_kthread(p) && scx_bpf_dsq_nr_queued(SCX_DSQ_LOCAL) > 0) {
			u64 burst = tctx->exec_runtime_ns < slice_ns ? tctx->exec_runtime_ns : slice_ns;
			u64 left = cctx->slice_end - now;

			/* What task_deadline() would give it, for the stint it resumes. */
			tctx->deadline = tctx->vruntime + weighted(burst, weight);
			tctx->slice_ns = left;
			tctx->resumed_local = true;
			cctx->resume_deadline = tctx->deadline;
			cctx->resume_local = true;
			scx_bpf_task_set_slice(p, left);
			COUNT(nr_preempted_resumes, 1);
		}
	}
	if (tctx && !runnable)
		mark_quiescent(tctx);
	if (cctx) {
		if (cctx->running_prio && time_after(now, cctx->started_at))
			cctx->prio_ns += now - cctx->started_at;
		cctx->busy = false;
		cctx->running_prio = false;
		cctx->running_strategy = false;
	}
}

/*
 * The kernel ends a slice at the tick, and then runs the local queue's first
 * task before it calls dispatch(), which keeps a priority task whose slice ran
 * out on its CPU while no other priority task waits (refresh_prev()). Where a
 * task a wakeup preempted waits in that queue (pilot_stopping()), a priority
 * task that ran past its slice (a 250 us strategy slice, bursts of many)
 * waited out that task's rest of slice at every burst (0.8-0.9 ms of run-queue
 * wait a timeslice in the VM test, under 1 us with this). So it gets its next
 * slice here, unless another priority task waits or the CPU's normal tasks are
 * starving; then the waiting task goes on, and the guard's window opens here
 * as dispatch() would open it. Returns at the first test on every other tick.
 */
void BPF_STRUCT_OPS(pilot_tick, struct task_struct *p)
{
	struct cpu_ctx *cctx;
	s32 cpu;
	u64 now;

	if (p->scx.slice)
		return;
	cpu = task_cpu_of(p);
	cctx = cpu_ctx_of(cpu);
	if (!cctx || !cctx->resume_local || !cctx->running_prio)
		return;
	now = now_ns();
	if (cpu_starving(cctx, cpu, now)) {
		start_guard(cctx, now);
		return;
	}
	if (!prio_queued())
		refresh_prev(p, cpu, now);
}

/*
 * sched_yield(): @from asks that the tasks waiting for a CPU run first. Its
 * slice ends now (what the kernel does when this op is absent) and, as under
 * EEVDF, the rest of its request is forfeit (stopping() moves its vruntime to
 * its deadline); enqueue() queues it in BPF, never through the dispatcher.
 * Spinning waits yield many times a millisecond (crossbeam's and Go's
 * backoff, user-space spin locks): in user mode each yield was a round trip
 * to the dispatcher, which preempted the task running on its CPU, and a
 * 1 ms probe there waited behind a yield storm for 2-6 ms. yield_to() (@to
 * set) is not supported, as without this op.
 */
bool BPF_STRUCT_OPS(pilot_yield, struct task_struct *from, struct task_struct *to)
{
	struct task_ctx *tctx;

	if (to)
		return false;
	tctx = task_ctx_of(from);
	if (tctx)
		tctx->yielded = true;
	scx_bpf_task_set_slice(from, 0);
	COUNT(nr_yields, 1);
	return false;
}

void BPF_STRUCT_OPS(pilot_disable, struct task_struct *p)
{
	struct task_ctx *tctx = task_ctx_of(p);

	/* Leaving sched_ext while queued (a policy change): no stopping() follows. */
	if (tctx)
		mark_quiescent(tctx);
}

void BPF_STRUCT_OPS(pilot_enable, struct task_struct *p)
{
	struct task_ctx *tctx = task_ctx_of(p);
	s32 cpu = task_cpu_of(p);
	u64 now = cpu_vtime(cpu);

	if (tctx) {
		tctx->vruntime = now;
		tctx->clock_cpu = cpu;
	}
	scx_bpf_task_set_dsq_vtime(p, now);
}

/*
 * The cgroup id a task keeps in its task_ctx: 0 for the root cgroup, whose
 * tasks compete one by one (task_weight()), so that they skip the cgroup
 * lookups on every wakeup, enqueue and stop (kernel threads live there). In
 * the emulated VM those lookups cost a 1 ms probe among hogs about 5 us a
 * wakeup (one boot, six runs each: pooled p50 129 against 134 us, while single
 * runs swing by 10).
 */
static u64 cg_of(const struct cgroup *cgrp)
{
	return cgrp->level ? cgrp->kn->id : 0;
}

s32 BPF_STRUCT_OPS(pilot_init_task, struct task_struct *p, struct scx_init_task_args *args)
{
	struct task_ctx *tctx;

	tctx = bpf_task_storage_get(&task_ctxs, p, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!tctx)
		return -ENOMEM;
	if (args->cgroup)
		tctx->cgid = cg_of(args->cgroup);
	return 0;
}

s32 BPF_STRUCT_OPS(pilot_cgroup_init, struct cgroup *cgrp, struct scx_cgroup_init_args *args)
{
	struct cg_ctx cg = {
		.weight = args->weight ?: 100,
		.level = cgrp->level,
	};
	u64 cgid = cgrp->kn->id;

	if (cgrp->level > 0) {
		struct cgroup *parent = bpf_cgroup_ancestor(cgrp, cgrp->level - 1);

		if (parent) {
			cg.parent = parent->kn->id;
			bpf_cgroup_release(parent);
		}
	}
	/* A full table only costs this cgroup its weight (it runs as 100). */
	bpf_map_update_elem(&cg_ctxs, &cgid, &cg, BPF_ANY);
	__sync_fetch_and_add(&cg_gen, 1);
	return 0;
}

void BPF_STRUCT_OPS(pilot_cgroup_exit, struct cgroup *cgrp)
{
	u64 cgid = cgrp->kn->id;

	bpf_map_delete_elem(&cg_ctxs, &cgid);
}

void BPF_STRUCT_OPS(pilot_cgroup_set_weight, struct cgroup *cgrp, u32 weight)
{
	u64 cgid = cgrp->kn->id;
	struct cg_ctx *cg = bpf_map_lookup_elem(&cg_ctxs, &cgid);

	if (cg)
		cg->weight = weight ?: 100;
	/* Every descendant's hierarchical weight changes with it. */
	__sync_fetch_and_add(&cg_gen, 1);
}

void BPF_STRUCT_OPS(pilot_cgroup_move, struct task_struct *p, struct cgroup *from,
		    struct cgroup *to)
{
	struct task_ctx *tctx = task_ctx_of(p);

	if (!tctx)
		return;
	if (tctx->runnable) {
		cg_count(tctx->cgid, -1);
		cg_count(cg_of(to), 1);
	}
	tctx->cgid = cg_of(to);
}

#ifndef CLOCK_MONOTONIC
#define CLOCK_MONOTONIC 1
#endif
#define STALL_CHECK_NS (50 * 1000 * 1000ULL)

/* Finds a task held longer than user_stall_ns; returning 1 stops the walk. */
static long find_aged(struct bpf_map *map, u32 *pid, struct user_task *ut, u64 *now)
{
	if ((s64)(*now - ut->sent_at) <= (s64)user_stall_ns)
		return 0;
	WRITE_ONCE(user_aged_pending, 1);
	return 1;
}

/*
 * An idle CPU does not call dispatch() by itself; while the dispatcher is
 * stalled or holds a task too long, wake the idle CPUs so one of them takes
 * the task back.
 */
static int stall_check(void *map, int *key, struct bpf_timer *timer)
{
	u32 nr_cpus = scx_bpf_nr_cpu_ids();
	u64 now = now_ns();
	s32 i;

	if (READ_ONCE(nr_user_outstanding))
		bpf_for_each_map_elem(&user_tasks, find_aged, &now, 0);
	if (dispatcher_stalled(now) || READ_ONCE(user_aged_pending)) {
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
	u32 nr_cpus = scx_bpf_nr_cpu_ids(), zero = 0;
	struct stall_timer *t;
	s32 ret, i;

	nr_cpu_ids_seen = nr_cpus;
	if (nr_cpus > MAX_CPUS)
		nr_cpus = MAX_CPUS;
	init_slice_min();

	ret = scx_bpf_create_dsq(PRIO_DSQ, -1);
	if (ret)
		return ret;
	ret = scx_bpf_create_dsq(SHARED_DSQ, -1);
	if (ret)
		return ret;
	bpf_for(i, 0, nr_cpus) {
		ret = scx_bpf_create_dsq(RESUME_DSQ + i, -1);
		if (ret)
			return ret;
	}
	if (!user_dispatch)
		return 0;

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
	       .select_cpu		= (void *)pilot_select_cpu,
	       .enqueue			= (void *)pilot_enqueue,
	       .dequeue			= (void *)pilot_dequeue,
	       .dispatch		= (void *)pilot_dispatch,
	       .running			= (void *)pilot_running,
	       .stopping		= (void *)pilot_stopping,
	       .tick			= (void *)pilot_tick,
	       .yield			= (void *)pilot_yield,
	       .enable			= (void *)pilot_enable,
	       .disable			= (void *)pilot_disable,
	       .init_task		= (void *)pilot_init_task,
	       .cgroup_init		= (void *)pilot_cgroup_init,
	       .cgroup_exit		= (void *)pilot_cgroup_exit,
	       .cgroup_set_weight	= (void *)pilot_cgroup_set_weight,
	       .cgroup_move		= (void *)pilot_cgroup_move,
	       .init			= (void *)pilot_init,
	       .exit			= (void *)pilot_exit,
	       .name			= "scx_pilot");
