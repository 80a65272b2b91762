/*
 * control_chan: a non-blocking control channel end on a libuv loop (see
 * control_chan.h). A uv_poll_t watches the socket: readable, it reads
 * what is there and feeds the frame reader; writable (watched only while
 * the queue is not empty), it writes the queue out. No threads of its own.
 */
#include "proto/control_chan.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef struct out_msg {
    struct out_msg *next;
    bool replaceable;
    size_t len;
    uint8_t data[];
} out_msg;

struct control_chan {
    uv_poll_t poll;
    int fd;
    int events;                /* what poll watches now */
    control_reader reader;
    control_msg_cb on_msg;
    control_chan_end_cb on_end;
    void *arg;
    out_msg *head, *tail;      /* oldest first */
    size_t head_sent;          /* bytes of head already written */
    size_t queued, max_queued; /* bytes not yet written */
    uint64_t dropped;
    bool ended, closing;
};

static void poll_cb(uv_poll_t *h, int status, int events);

static void set_events(control_chan *c, int events) {
    if (c->ended || c->closing || events == c->events) return;
    c->events = events;
    uv_poll_start(&c->poll, events, poll_cb); /* only changes the watched events */
}

static void end(control_chan *c, int err) {
    if (c->ended || c->closing) return;
    c->ended = true;
    uv_poll_stop(&c->poll);
    c->on_end(c->arg, err);
}

/* Writes queued bytes until the queue is empty (0), the socket is full (1)
 * or it fails (negative). */
static int write_queue(control_chan *c) {
    while (c->head) {
        out_msg *m = c->head;
        ssize_t w = send(c->fd, m->data + c->head_sent, m->len - c->head_sent, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 1;
        if (w <= 0) return w == 0 ? -EPIPE : -errno;
        c->head_sent += (size_t)w;
        c->queued -= (size_t)w;
        if (c->head_sent < m->len) continue;
        c->head = m->next;
        if (!c->head) c->tail = NULL;
        c->head_sent = 0;
        free(m);
    }
    return 0;
}

static void read_some(control_chan *c, bool until_empty) {
    char buf[65536];
    /* a few reads per wakeup: a chatty peer must not starve the loop */
    for (int i = 0; (until_empty || i < 4) && !c->ended && !c->closing; i++) {
        ssize_t n = recv(c->fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        if (n <= 0) {
            if (!until_empty) end(c, n == 0 ? 0 : -errno);
            return;
        }
        if (control_reader_feed(&c->reader, buf, (size_t)n, c->on_msg, c->arg) != 0) {
            end(c, -EPROTO);
            return;
        }
    }
}

static void poll_cb(uv_poll_t *h, int status, int events) {
    control_chan *c = h->data;
    if (status < 0) {
        end(c, status);
        return;
    }
    if (events & UV_READABLE) read_some(c, false);
    if ((events & UV_WRITABLE) && !c->ended && !c->closing) {
        int rc = write_queue(c);
        if (rc < 0) end(c, rc);
        else if (rc == 0) set_events(c, UV_READABLE);
    }
}

control_chan *control_chan_new(uv_loop_t *loop, int fd, size_t max_queued, control_msg_cb on_msg,
                               control_chan_end_cb on_end, void *arg) {
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0) return NULL;
    control_chan *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->fd = fd;
    c->max_queued = max_queued;
    c->on_msg = on_msg;
    c->on_end = on_end;
    c->arg = arg;
    if (uv_poll_init(loop, &c->poll, fd) != 0) {
        free(c);
        return NULL;
    }
    c->poll.data = c;
    c->events = UV_READABLE;
    if (uv_poll_start(&c->poll, UV_READABLE, poll_cb) != 0) {
        /* the handle exists: it must be closed before c is freed */
        c->closing = true;
        c->fd = -1;
        control_chan_close(c);
        return NULL;
    }
    return c;
}

/* Drops the queued replaceable messages that have not started going out. */
static void drop_replaceable(control_chan *c) {
    out_msg **pp = &c->head;
    c->tail = NULL;
    while (*pp) {
        out_msg *m = *pp;
        if (m->replaceable && !(m == c->head && c->head_sent > 0)) {
            *pp = m->next;
            c->queued -= m->len;
            c->dropped++;
            free(m);
            continue;
        }
        c->tail = m;
        pp = &m->next;
    }
}

int control_chan_send(control_chan *c, const json_t *msg, bool replaceable) {
    if (c->ended || c->closing) return -EPIPE;
    size_t len;
    uint8_t *frame = control_frame(msg, &len);
    if (!frame) return -errno;
    if (replaceable) drop_replaceable(c);
    if (c->head && c->queued + len > c->max_queued) {
        free(frame);
        c->dropped++;
        return -ENOBUFS;
    }
    out_msg *m = malloc(sizeof *m + len);
    if (!m) {
        free(frame);
        return -ENOMEM;
    }
    m->next = NULL;
    m->replaceable = replaceable;
    m->len = len;
    memcpy(m->data, frame, len);
    free(frame);
    if (c->tail) c->tail->next = m;
    else c->head = m;
    c->tail = m;
    c->queued += len;
    int rc = write_queue(c);
    if (rc < 0) return rc; /* the read side reports the end */
    set_events(c, rc == 1 ? UV_READABLE | UV_WRITABLE : UV_READABLE);
    return 0;
}

void control_chan_read_now(control_chan *c) { read_some(c, true); }

static int64_t monotonic_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int control_chan_flush_sync(control_chan *c, int timeout_ms) {
    int64_t deadline = monotonic_ms() + timeout_ms;
    for (;;) {
        int rc = write_queue(c);
        if (rc <= 0) return rc;
        int64_t left = deadline - monotonic_ms();
        if (left <= 0) return -ETIMEDOUT;
        struct pollfd pfd = {.fd = c->fd, .events = POLLOUT};
        if (poll(&pfd, 1, (int)left) < 0 && errno != EINTR) return -errno;
    }
}

size_t control_chan_queued(const control_chan *c) { return c->queued; }
uint64_t control_chan_dropped(const control_chan *c) { return c->dropped; }

static void on_closed(uv_handle_t *h) {
    control_chan *c = h->data;
    /* the fd is closed only now: libuv must stop watching it first */
    if (c->fd >= 0) close(c->fd);
    for (out_msg *m = c->head, *next; m; m = next) {
        next = m->next;
        free(m);
    }
    control_reader_free(&c->reader);
    free(c);
}

void control_chan_close(control_chan *c) {
    if (!c || uv_is_closing((uv_handle_t *)&c->poll)) return;
    c->closing = true;
    uv_close((uv_handle_t *)&c->poll, on_closed);
}
