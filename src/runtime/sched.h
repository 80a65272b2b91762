/*
 * sched: runs many tasks on a small, fixed pool of threads.
 *
 * A task is run by one thread at a time, for one bounded slice (the task's
 * run callback decides how much a slice does). After a slice the task says
 * whether it has more to do (it goes to the back of the run queue: tasks
 * take turns), or waits (until sched_notify, or until the time it names),
 * or is done. Tasks added with priority (ackers) are taken before all
 * others, so acks are never starved by data.
 *
 * sched_notify is the hand-off: a producer calls it after queueing input
 * for a task. When the task is already queued or running it costs one
 * atomic load (a running task is marked and requeued after its slice), so
 * a busy pipeline makes no syscalls; a thread that finds nothing to run
 * spins briefly, then parks on a condition variable (an idle pool costs no
 * CPU) until a notify or the earliest timer.
 *
 * Threads: the pool's threads run slices; any thread may notify. The run
 * queues, timer heap and counters are guarded by the scheduler's lock; a
 * task's state word is atomic (the lock-free notify path). Each pool thread
 * owns the data its thread_start callback returned.
 */
#ifndef SD_SCHED_H
#define SD_SCHED_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define SCHED_NEVER INT64_MAX

/* what a slice returns */
enum { SCHED_MORE = 0, SCHED_WAIT = 1, SCHED_DONE = 2 };

typedef struct sched_task {
    atomic_int state;           /* SCHED_S_* (sched.c) */
    struct sched_task *next;    /* run queue link (lock) */
    int64_t wake_at;            /* timer (lock); SCHED_NEVER: none */
    int heap_idx;               /* place in the timer heap (lock); -1: none */
    int prio;                   /* taken before the others */
    uint64_t slices;            /* slices run (the running thread) */
} sched_task;

typedef struct sched_ops {
    /* one slice of t on the calling pool thread (thread_data: what
     * thread_start returned there); on SCHED_WAIT *wake_at is when to run
     * it again without a notify (preset to SCHED_NEVER) */
    int (*run)(void *arg, sched_task *t, void *thread_data, int64_t *wake_at);
    /* per pool thread, on that thread: its data (NULL is allowed) and its end */
    void *(*thread_start)(void *arg, int index);
    void (*thread_stop)(void *arg, void *thread_data);
    void *arg;
} sched_ops;

typedef struct sched sched;

typedef struct sched_stats {
    uint64_t slices;      /* slices run */
    uint64_t parks;       /* times a thread went to sleep */
    uint64_t wakeups;     /* condition-variable signals sent by notify */
    int parked;           /* threads asleep now */
} sched_stats;

/* nthreads >= 1; name: thread name prefix (up to 10 chars). NULL on error. */
sched *sched_new(int nthreads, const sched_ops *ops, const char *name);
/* Adds a task, ready to run (before sched_start). 0 or -ENOMEM. */
int sched_add(sched *s, sched_task *t, int prio);
/* Starts the threads. 0, or a negative errno (threads already started are
 * stopped). */
int sched_start(sched *s);
/* t has input (any thread). */
void sched_notify(sched *s, sched_task *t);
/* The calling thread is about to notify several tasks in a row (a worker's
 * loop handing over what it received): with hold, the signals those
 * notifies would send to parked threads wait until the call without hold,
 * which sends them together; otherwise the first thread woken could preempt
 * the caller before it has handed over the rest. */
void sched_hold_wakeups(sched *s, bool hold);
/* Notifies every task not done (e.g. to see a stop flag). */
void sched_notify_all(sched *s);
/* t is queued or running (any thread; a snapshot). */
int sched_task_busy(const sched_task *t);
/* Tasks not done yet. */
int sched_live(sched *s);
void sched_get_stats(sched *s, sched_stats *out);
/* Stops the threads after their current slice and joins them. */
void sched_stop(sched *s);
void sched_free(sched *s); /* after sched_stop */

/* now, CLOCK_MONOTONIC, in ns */
int64_t sched_now_ns(void);

/* The CPUs this process may use: its affinity mask, divided among the
 * sharing processes that run beside it on those CPUs (a topology's workers
 * on one host: more threads than cores only wait for one another), capped
 * by its cgroup's cpu.max quota (rounded up). At least 1. */
int sched_default_threads(int sharing);

#endif
