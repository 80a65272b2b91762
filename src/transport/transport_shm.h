/*
 * transport_shm: a connection's shared-memory rings (private to the
 * transport; structures in transport_internal.h, the ring in shm_ring.h,
 * the frames in frame.h).
 *
 * Once a connection is up, each side offers the peer a ring for the
 * batches it sends (tshm_offer). A peer on the same host opens it and
 * answers yes; one on another host cannot open it and answers no, and that
 * direction stays on TCP. From the yes on, the writer copies its batches'
 * frames into the ring (tshm_send) instead of writing them to the socket,
 * and the reader copies them out into a frame reader of their own
 * (tshm_fill), which transport_conn.c decodes and delivers like frames
 * from TCP. The TCP connection stays: the handshake, pings, throttle frames
 * and the rings' bell and room frames travel on it, and its close is the
 * peer's death or departure, as before.
 *
 * Threads: the loop thread only.
 */
#ifndef SD_TRANSPORT_SHM_H
#define SD_TRANSPORT_SHM_H

#include "transport/transport_internal.h"

/* c is up: offer the peer a ring for what we send (when the transport has
 * rings on). Any failure leaves that direction on TCP. */
void tshm_offer(conn *c);

/* An offer, answer, bell or room frame from the peer: NULL, or why it
 * breaks the protocol (the caller rejects the connection). A bell sets
 * c->shm.rx_belled: the caller drains the ring. */
const char *tshm_on_frame(conn *c, const frame *f);

/* Sends w's frames through c's ring (c->shm.tx_active): copied at once as
 * far as the ring has room, the rest when the peer reports room. Completes
 * through transport_write_done. */
void tshm_send(conn *c, wreq *w);

/* Copies the bytes waiting in the peer's ring into c->shm.rx_rd (which no
 * frame being delivered may point into). Returns the bytes copied (0:
 * none waiting), or a negative errno (-EPROTO: the peer's position is
 * implausible; -ENOMEM). */
long tshm_fill(conn *c);

/* The ring is drained: true when the peer will bell us for more (the
 * drain is over), false when bytes arrived meanwhile. */
bool tshm_rx_idle(conn *c);

/* c is closing: writes not yet in the ring are given up, both rings
 * unmapped. */
void tshm_release(conn *c);

#endif
