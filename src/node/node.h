/*
 * node: the supervisor. Registers this machine's slots in the store under
 * a lease it keeps alive, watches assignments/ and runs one worker process
 * per slot assigned to it: spawns it with a control socketpair on its fd 3,
 * hands it its assignment, keeps its latest heartbeat in memory (for local
 * mode's console and the cluster's reports to the leader), writes its status
 * to workers/<topology-id>/<node>:<port> when its state changes, restarts it
 * when it dies or stops heartbeating, and stops it gracefully when its
 * assignment goes away or the node's lease may be lost. Works against any
 * store (store.h).
 * Threads: none of its own; everything runs on the loop passed to node_new.
 */
#ifndef SD_NODE_H
#define SD_NODE_H

#include <jansson.h>
#include <stdbool.h>
#include <uv.h>

#include "base/conf.h"
#include "store/store.h"

typedef struct node node;
typedef void (*node_done_cb)(void *arg);

/*
 * Reads from conf (copied values): cluster.name, worker.host, node.labels,
 * node.lease.ttl.secs, supervisor.slots.ports, supervisor.worker.restart.delay.ms,
 * supervisor.worker.start.timeout.secs, supervisor.cgroup.mode,
 * supervisor.cgroup.required, worker.user, streamd.local.dir (worker logs go
 * to <dir>/logs/<topology-id>/worker-<port>.log). Per topology, from the
 * assignment's conf: worker.heartbeat.interval.ms, worker.heartbeat.timeout.secs,
 * task.cleanup.timeout.sec, worker.stdout.redirect, log.format and the
 * cgroup settings topology.worker.cpu.weight, topology.worker.cpu.cores,
 * topology.worker.memory.mb (raised by the components' limits:, read from
 * the assignment's topology file without loading user code).
 * exe_path is the streamd executable run as `--role=worker --control-fd=3
 * --log-fd=4`; each worker is placed in its own cgroup (cgroup.h) before it
 * gets its assignment. NULL on error (logged), also when
 * supervisor.cgroup.required is set and cgroups cannot be used, or
 * worker.user names no user.
 * Registers nodes/<node_id> under a lease (asynchronously: the store may be
 * away) and then starts the workers of the assignments in the store. When
 * the lease may be lost (no renewal for its TTL less a margin, or the store
 * says it is gone) the node stops every worker at once and registers again.
 * NULL on error (logged).
 */
node *node_new(uv_loop_t *loop, store *st, const conf *c, const char *node_id, const char *exe_path);

/* Called with every heartbeat of every worker (hb is the worker's message:
 * counters per task; valid during the call). */
typedef void (*node_heartbeat_cb)(void *arg, const char *topology_id, int port, int worker_index, json_t *hb);
void node_on_heartbeat(node *n, node_heartbeat_cb cb, void *arg);

/* Called before an assignment is acted on (cluster mode: make its package
 * ready and point topology_path at it). Returns 0 (go on; the function may
 * change assignment), -EAGAIN (not ready: call node_refresh when it is), or
 * another negative code (skip this assignment; it is logged). */
typedef int (*node_prepare_fn)(void *arg, json_t *assignment);
void node_set_prepare(node *n, node_prepare_fn fn, void *arg);

/* Reads every assignment again and acts on it. */
void node_refresh(node *n);

/* True once nodes/<id> is written under the current lease. */
bool node_registered(const node *n);

/* [{"topology_id", "port", "pid", "state", "restarts", "last_exit",
 *   "errors"?: [the latest error lines], "heartbeat": {...}}] for this
 * node's workers (caller owns it). */
json_t *node_workers_json(const node *n);

/* Stops every worker gracefully ({"type":"stop"}, then SIGKILL after
 * task.cleanup.timeout.sec + NODE_STOP_SLACK_SECS), deregisters, and calls cb (later, from
 * the loop) once every worker process has exited. Call once. */
void node_stop(node *n, node_done_cb cb, void *arg);

/* SIGKILLs every worker process now (a second Ctrl-C); pending stops then
 * complete as the processes exit. */
void node_kill_all(node *n);

/* Total unexpected worker exits (and stale-heartbeat kills) restarted. */
int node_restarts(const node *n);
/* The most exits in a row, without a heartbeat between them, of any one
 * worker: a worker that can never start (bad component, port taken...). */
int node_max_failures(const node *n);
/* After asking a worker to stop, the node kills it (SIGKILL, repeated every
 * second until it is gone) once the worker's own budget
 * (task.cleanup.timeout.sec, at least 1 s, for draining and its tasks'
 * cleanup) plus this
 * slack has passed. */
#define NODE_STOP_SLACK_SECS 1

/* After the node_stop callback: closes the node's handles; its memory is
 * released by their close callbacks, so run the loop once more. */
void node_free(node *n);

/* Parses a port list such as "6700,6701 6702" (also "[6700, 6701]").
 * Returns the count (0..max) written to ports, or -1 on a bad entry. */
int node_parse_ports(const char *text, int *ports, int max);

#endif
