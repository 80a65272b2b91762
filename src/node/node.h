/*
 * node: the supervisor. Registers this machine's slots
 * in the store, watches assignments/ and runs one worker process per slot
 * assigned to it: spawns it with a control socketpair on its fd 3, hands it
 * its assignment, writes its heartbeats to workers/<topology-id>/<node>:<port>,
 * restarts it when it dies or stops heartbeating, and stops it gracefully when
 * its assignment goes away. Works against any store (store.h).
 * Threads: none of its own; everything runs on the loop passed to node_new.
 */
#ifndef SD_NODE_H
#define SD_NODE_H

#include <uv.h>
#include "base/conf.h"
#include "store/store.h"

typedef struct node node;
typedef void (*node_done_cb)(void *arg);

/*
 * Reads from conf (copied values): cluster.name, worker.host,
 * supervisor.slots.ports, supervisor.worker.restart.delay.ms,
 * supervisor.worker.start.timeout.secs, streamd.local.dir (worker logs go to
 * <dir>/logs/<topology-id>/worker-<port>.log). Per topology, from the
 * assignment's conf: worker.heartbeat.interval.ms, task.cleanup.timeout.sec.
 * exe_path is the streamd executable run as `--role=worker --control-fd=3`.
 * Registers nodes/<node_id> under a lease and starts the workers of the
 * assignments already in the store. NULL on error (logged).
 */
node *node_new(uv_loop_t *loop, store *st, const conf *c, const char *node_id, const char *exe_path);

/* Stops every worker gracefully ({"type":"stop"}, then SIGKILL after
 * task.cleanup.timeout.sec + 2 s), deregisters, and calls cb (later, from
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
/* After asking a worker to stop, the node kills it once the worker's own
 * budget (task.cleanup.timeout.sec to drain, then up to 2 s for its tasks'
 * cleanup and its last heartbeat) plus this slack has passed. */
#define NODE_STOP_SLACK_SECS 5

/* After the node_stop callback: closes the node's handles; its memory is
 * released by their close callbacks, so run the loop once more. */
void node_free(node *n);

/* Parses a port list such as "6700,6701 6702" (also "[6700, 6701]").
 * Returns the count (0..max) written to ports, or -1 on a bad entry. */
int node_parse_ports(const char *text, int *ports, int max);

#endif
