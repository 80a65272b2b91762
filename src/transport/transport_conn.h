/*
 * transport_conn: one worker-to-worker connection of the transport, private
 * to it (used by transport.c only; structures in transport_internal.h).
 *
 * A conn is born by dialing a peer (tconn_dial) or by accepting on the
 * listener (tconn_on_connection), exchanges the handshake, then reads
 * frames: batches are decoded and delivered (pausing reads and retrying on
 * a timer while the destination is full), throttle frames are passed to
 * on_throttle. A protocol violation closes that connection only. Outgoing
 * data goes through the peer (transport.c), which writes on p->conn.
 *
 * Threads: the loop thread only; it owns every socket and timer here.
 */
#ifndef SD_TRANSPORT_CONN_H
#define SD_TRANSPORT_CONN_H

#include <stdbool.h>
#include <uv.h>

#include "transport/transport_internal.h"

/* Connects to p at addr, with a handshake deadline. Returns -1 if no conn
 * could be made (the caller schedules a retry); a connection that fails
 * later closes and schedules the reconnect itself. */
int tconn_dial(peer *p, const struct sockaddr *addr);

/* The listener's connection callback (server->data is the transport):
 * accepts and waits for the dialer's handshake. */
void tconn_on_connection(uv_stream_t *server, int status);

/* Closes c (idempotent); why, if not NULL, is logged. Detaches it from its
 * peer, drops a held tuple, and schedules a reconnect for an outgoing conn
 * unless the transport is closing. The conn is freed once its handles are. */
void tconn_close(conn *c, const char *why);

/* Transport closing: a conn with writes in flight is shut down (closed once
 * they complete), any other is closed now. */
void tconn_shutdown(conn *c);

/* Every heartbeat interval: pings c's peer if the link is idle,
 * closes c if the peer has been silent longer than the peer timeout. */
void tconn_heartbeat(conn *c, uint64_t now_ms);

/* Sends one frame of ours (uncompressed) on c's TCP connection, after
 * everything written on it before. 0, or -1 when out of memory or the
 * write fails (the connection's reading then notices). */
int tconn_send_frame(conn *c, uint8_t type, const void *payload, size_t len);

/* Asks the peer on c to pause (on) or resume its spouts. */
void tconn_send_throttle(conn *c, bool on);

#endif
