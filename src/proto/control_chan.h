/*
 * control_chan: one end of the node <-> worker control channel (framing in
 * control.h) driven by a libuv loop, never blocking it. Reads are
 * non-blocking and handed to a callback message by message; writes go to a
 * bounded outgoing queue that is written as the socket accepts it.
 *
 * A full queue never blocks the caller:
 *  - a "replaceable" message (heartbeats: only the latest counts) replaces
 *    the replaceable messages still queued, so a peer that stops reading
 *    costs at most one heartbeat of memory;
 *  - any other message that does not fit returns -ENOBUFS: the peer has
 *    stopped reading (stalled) and the caller decides (the worker drops
 *    and counts it, the node kills and restarts the worker).
 * A message larger than the whole queue is accepted when the queue is
 * empty, so an assignment of any allowed size can be sent.
 *
 * Used by the worker (worker.c: its end, fd 3) and the node (node_worker.c:
 * one per worker process). Threads: the loop's thread only.
 */
#ifndef SD_CONTROL_CHAN_H
#define SD_CONTROL_CHAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include <uv.h>

#include "proto/control.h"

typedef struct control_chan control_chan;

/* The channel ended: err 0 on the peer's close (EOF), else a negative code
 * (-EPROTO for a malformed message, or the socket's error). No message
 * arrives after it; the owner still calls control_chan_close. */
typedef void (*control_chan_end_cb)(void *arg, int err);

/* Takes ownership of fd (made non-blocking; closed by control_chan_close).
 * max_queued bounds the bytes waiting to be written. NULL on failure (fd is
 * then left open). */
control_chan *control_chan_new(uv_loop_t *loop, int fd, size_t max_queued, control_msg_cb on_msg,
                               control_chan_end_cb on_end, void *arg);

/* Queues one message (the caller keeps its reference) and writes what the
 * socket takes now. 0, or -ENOBUFS (queue full: the peer is not reading),
 * -EPIPE (the channel ended or is closing), -EMSGSIZE, -ENOMEM. */
int control_chan_send(control_chan *c, const json_t *msg, bool replaceable);

/* Reads and dispatches what is in the socket now, without waiting (the end
 * is left for the loop to report). For a caller about to judge the peer. */
void control_chan_read_now(control_chan *c);

/* Writes the queue out, waiting at most timeout_ms (for a process about to
 * exit, outside its loop's callbacks). 0 or -ETIMEDOUT, -EPIPE. */
int control_chan_flush_sync(control_chan *c, int timeout_ms);

size_t control_chan_queued(const control_chan *c);   /* bytes not yet written */
uint64_t control_chan_dropped(const control_chan *c); /* messages dropped or replaced */

/* Stops all callbacks now and frees the channel (and closes its fd) once
 * the loop has closed its handle. Safe from inside the channel's callbacks. */
void control_chan_close(control_chan *c);

#endif
