/*
 * control: the node <-> worker control channel.
 * Workers never talk to the store; their node hands them an assignment and
 * commands over a socketpair (the worker's fd 3, `--control-fd=3`), and the
 * worker sends heartbeats and errors back. Messages are JSON objects framed
 * by a 4-byte big-endian length (max CONTROL_MAX_MSG).
 *
 * node -> worker
 *   {"type":"assignment", "cluster":s, "topology_id":s, "topology_name":s,
 *    "topology_path":s (absolute), "conf":{key:string,...} (fully merged),
 *    "overrides":{key:string,...} (optional: the -c keys alone, to pass as
 *    topology_load's overrides when reloading the file), "worker_index":i,
 *    "workers":[{"host":s,"port":i,"tasks":[i,...]},...]}   (first message)
 *   {"type":"activate"} | {"type":"deactivate"}
 *   {"type":"stop"}            graceful: deactivate, drain, cleanup, exit 0
 * worker -> node
 *   {"type":"started", "pid":i}
 *   {"type":"heartbeat", "time_ms":i, "worker_index":i,
 *    "task_columns":{"task":[i,...], "emitted":[i,...], ...},
 *                     every task's counters as columns (task_columns.h)
 *    "idle":b,        true when no tuple moved since the last heartbeat
 *    "rss_kb":i, "waiting":i, "throttled":b, "transport":{...}}
 *   {"type":"error", "task":i, "message":s}
 *
 * Functions here are plain and blocking-free except control_write, which
 * waits (up to 5 s) for room on a non-blocking fd and never raises SIGPIPE:
 * it is for a process outside its loop (a worker reporting why it cannot
 * start) and for tests. A loop uses control_chan.h, which never waits.
 */
#ifndef SD_CONTROL_H
#define SD_CONTROL_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#define CONTROL_MAX_MSG (16u << 20)

/* One framed message in a new buffer (the caller frees it), its size in
 * *len; NULL with errno ENOMEM or EMSGSIZE. */
uint8_t *control_frame(const json_t *msg, size_t *len);

/* Blocking write of one framed message; returns 0 or -1 (errno set).
 * Callers serialise concurrent writers themselves. */
int control_write(int fd, const json_t *msg);

/* Incremental reader: feed bytes as they arrive; each complete message is
 * passed to cb (borrowed reference). Returns 0, or -1 on a malformed or
 * oversized frame (the channel should then be closed). */
typedef struct control_reader {
    uint8_t *buf;
    size_t len, cap;
} control_reader;
typedef void (*control_msg_cb)(void *arg, json_t *msg);
int control_reader_feed(control_reader *r, const void *data, size_t n, control_msg_cb cb, void *arg);
void control_reader_free(control_reader *r);

#endif
