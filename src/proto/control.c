/*
 * control: framing of the node <-> worker control channel (see control.h).
 * No threads of its own: control_write runs on the caller's thread, and a
 * control_reader belongs to whoever feeds it.
 */
#include "proto/control.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/log.h"

/* How long a write may wait for a full socket buffer before giving up: the
 * node opens its end non-blocking (libuv), and a stuck peer must not stall
 * the node's loop for ever. */
#define CONTROL_WRITE_TIMEOUT_MS 5000

static int64_t monotonic_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The deadline covers the whole message, not each wait: a reader that
 * takes a byte now and then must not hold the writer's loop forever. */
static int write_all(int fd, const uint8_t *p, size_t n) {
    int64_t deadline = monotonic_ms() + CONTROL_WRITE_TIMEOUT_MS;
    while (n > 0) {
        /* send(MSG_NOSIGNAL): a dead peer must give EPIPE, not kill us with SIGPIPE */
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == ENOTSOCK) w = write(fd, p, n);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int64_t left = deadline - monotonic_ms();
            struct pollfd pfd = {.fd = fd, .events = POLLOUT};
            int r = left > 0 ? poll(&pfd, 1, (int)left) : 0;
            if (r < 0 && errno == EINTR) continue;
            if (r == 0) errno = ETIMEDOUT;
            if (r <= 0) return -1;
            continue;
        }
        if (w == 0) errno = EPIPE;
        return -1;
    }
    return 0;
}

uint8_t *control_frame(const json_t *msg, size_t *len) {
    char *text = json_dumps(msg, JSON_COMPACT);
    if (!text) {
        errno = ENOMEM;
        return NULL;
    }
    size_t n = strlen(text);
    if (n > CONTROL_MAX_MSG) {
        free(text);
        errno = EMSGSIZE;
        return NULL;
    }
    /* one buffer, so the frame goes out in one write when it fits */
    uint8_t *frame = malloc(4 + n);
    if (!frame) {
        free(text);
        errno = ENOMEM;
        return NULL;
    }
    frame[0] = (uint8_t)(n >> 24);
    frame[1] = (uint8_t)(n >> 16);
    frame[2] = (uint8_t)(n >> 8);
    frame[3] = (uint8_t)n;
    memcpy(frame + 4, text, n);
    free(text);
    *len = 4 + n;
    return frame;
}

int control_write(int fd, const json_t *msg) {
    size_t len;
    uint8_t *frame = control_frame(msg, &len);
    if (!frame) return -1;
    int rc = write_all(fd, frame, len);
    int saved = errno;
    free(frame);
    errno = saved;
    return rc;
}

static uint32_t frame_len(const uint8_t *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static int reserve(control_reader *r, size_t need) {
    if (need <= r->cap) return 0;
    size_t cap = r->cap ? r->cap : 4096;
    while (cap < need) cap *= 2;
    uint8_t *b = realloc(r->buf, cap);
    if (!b) {
        log_error("control: out of memory buffering a %zu-byte message", need);
        return -1;
    }
    r->buf = b;
    r->cap = cap;
    return 0;
}

/* Parses the complete frames at the front of buf[0..len); returns the number
 * of bytes consumed, or -1 on a bad frame. */
static long parse_frames(const uint8_t *buf, size_t len, control_msg_cb cb, void *arg) {
    size_t off = 0;
    while (len - off >= 4) {
        uint32_t n = frame_len(buf + off);
        if (n > CONTROL_MAX_MSG) { /* rejected before its body is buffered */
            log_error("control: message of %u bytes exceeds the %u-byte limit", n, CONTROL_MAX_MSG);
            return -1;
        }
        if (len - off - 4 < n) break;
        json_error_t jerr;
        json_t *msg = json_loadb((const char *)buf + off + 4, n, 0, &jerr);
        if (!msg || !json_is_object(msg)) {
            log_error("control: malformed message: %s", msg ? "not a JSON object" : jerr.text);
            json_decref(msg);
            return -1;
        }
        cb(arg, msg);
        json_decref(msg);
        off += 4 + (size_t)n;
    }
    return (long)off;
}

int control_reader_feed(control_reader *r, const void *data, size_t n, control_msg_cb cb, void *arg) {
    if (r->len == 0) {
        /* common case: whole frames straight from the caller's buffer */
        long used = parse_frames(data, n, cb, arg);
        if (used < 0) return -1;
        data = (const uint8_t *)data + used;
        n -= (size_t)used;
        if (n == 0) return 0;
    }
    if (reserve(r, r->len + n) != 0) return -1;
    memcpy(r->buf + r->len, data, n);
    r->len += n;
    long used = parse_frames(r->buf, r->len, cb, arg);
    if (used < 0) return -1;
    memmove(r->buf, r->buf + used, r->len - (size_t)used);
    r->len -= (size_t)used;
    return 0;
}

void control_reader_free(control_reader *r) {
    free(r->buf);
    r->buf = NULL;
    r->len = r->cap = 0;
}
