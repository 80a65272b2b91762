/*
 * runner: runs a worker's executors on a pool of worker.executor.threads
 * threads (sched.h), each task in slices (executor_spout.c,
 * executor_bolt.c): its first slice opens it, a slice after the stop flag
 * closes it. Called by the worker's loop thread (worker.c).
 *
 * Threads: the pool threads run the slices, each with an exec_thread of
 * its own (outgoing buffers, tuple pool); a task's input queue notifies
 * the pool when a batch arrives, and a full queue wakes the producers
 * waiting for room.
 */
#ifndef SD_RUNNER_H
#define SD_RUNNER_H

#include <stdbool.h>

#include "runtime/runtime.h"

/* The pool size for this worker: the conf's worker.executor.threads (0:
 * its share of the CPUs, sched_default_threads, with sharing = the
 * topology's workers on this host), overridden by the environment variable
 * STREAMD_EXECUTOR_THREADS when set (test runs). At least 1. */
int runner_threads(const conf *c, int sharing);

/* Hands every executor of rt to a pool of nthreads threads and starts it.
 * 0, or a negative errno (logged). */
int runner_start(worker_rt *rt, int nthreads);
/* ex has work in hand: input taken and not executed, or a slice queued or
 * running (the worker's drain check; any thread). */
bool runner_task_busy(const struct executor *ex);
/* The loop thread hands over a round of received batches between
 * runner_hold_wakeups(rt, true) and (rt, false): parked pool threads are
 * woken together at the end (sched_hold_wakeups). */
void runner_hold_wakeups(worker_rt *rt, bool hold);
/* After rt->stopping is set: every task runs once more, to clean up. */
void runner_wake_all(worker_rt *rt);
/* Stops and joins the pool threads (every task done, or the process is
 * about to exit), then frees the pool. */
void runner_stop(worker_rt *rt);

#endif
