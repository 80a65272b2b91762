/*
 * builtin_file_sink: the `file_sink` bolt. Appends each input tuple to a file
 * as one JSON object line {"field": value, ...} and acks it only after the
 * line was handed to the kernel with write(2), so killing the process (even
 * with SIGKILL) never loses a tuple that was acked. Strings are JSON-escaped
 * (invalid UTF-8 becomes U+FFFD), bytes become base64 strings, doubles that
 * JSON cannot hold (NaN, infinities) become null.
 *
 * args: path (relative to the topology file), task_field (bool, default
 * false: add "__task": the receiving task id to each line, for tests of
 * groupings). Several tasks and workers may share one path: the file is
 * opened with O_APPEND and every line goes out in a single write.
 *
 * Thread: each task's callbacks run on its executor thread, which owns the
 * task's state (fd and line buffer). Public API only.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "streamd/component.h"

extern const sd_component_def builtin_file_sink_def;

typedef struct file_sink {
    const char *path;
    int fd;
    bool task_field;
    bool ticks;    /* write a line per tick tuple (diagnostics, tests) */
    int task_id;
    char *buf; /* the line being built */
    size_t len, cap;
    bool oom;  /* an append failed: the line is incomplete */
} file_sink;

static void fs_reserve(file_sink *st, size_t more) {
    if (st->oom || st->len + more <= st->cap) return;
    size_t ncap = st->cap ? st->cap : 4096;
    while (ncap < st->len + more) ncap *= 2;
    char *n = realloc(st->buf, ncap);
    if (!n) {
        st->oom = true;
        return;
    }
    st->buf = n;
    st->cap = ncap;
}

static void fs_put(file_sink *st, const char *s, size_t n) {
    fs_reserve(st, n);
    if (st->oom) return;
    memcpy(st->buf + st->len, s, n);
    st->len += n;
}

static void fs_putc(file_sink *st, char c) { fs_put(st, &c, 1); }

/* length of the valid UTF-8 sequence at s (at most n bytes), 0 if invalid */
static size_t utf8_seq(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    size_t len;
    unsigned min;
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf) len = 2, min = 0x80;
    else if (c >= 0xe0 && c <= 0xef) len = 3, min = 0x800;
    else if (c >= 0xf0 && c <= 0xf4) len = 4, min = 0x10000;
    else return 0;
    if (n < len) return 0;
    unsigned cp = c & (0x3f >> (len - 1));
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    /* overlong forms, surrogates and code points past U+10FFFF are invalid */
    if (cp < min || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff) return 0;
    return len;
}

static void fs_put_json_string(file_sink *st, const char *p, size_t n) {
    const unsigned char *s = (const unsigned char *)p;
    fs_putc(st, '"');
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            size_t j = i; /* copy a run of plain ASCII at once */
            while (j < n && s[j] >= 0x20 && s[j] < 0x80 && s[j] != '"' && s[j] != '\\') j++;
            fs_put(st, p + i, j - i);
            i = j;
            continue;
        }
        char esc[8];
        switch (c) {
        case '"': fs_put(st, "\\\"", 2); break;
        case '\\': fs_put(st, "\\\\", 2); break;
        case '\n': fs_put(st, "\\n", 2); break;
        case '\r': fs_put(st, "\\r", 2); break;
        case '\t': fs_put(st, "\\t", 2); break;
        default:
            if (c < 0x20) {
                snprintf(esc, sizeof esc, "\\u%04x", c);
                fs_put(st, esc, 6);
            } else {
                size_t len = utf8_seq(s + i, n - i);
                if (len == 0) {
                    fs_put(st, "\\ufffd", 6);
                    len = 1;
                } else {
                    fs_put(st, p + i, len);
                }
                i += len;
                continue;
            }
        }
        i++;
    }
    fs_putc(st, '"');
}

static void fs_put_base64(file_sink *st, const unsigned char *s, size_t n) {
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    fs_putc(st, '"');
    fs_reserve(st, (n + 2) / 3 * 4);
    for (size_t i = 0; i < n && !st->oom; i += 3) {
        uint32_t b = (uint32_t)s[i] << 16;
        if (i + 1 < n) b |= (uint32_t)s[i + 1] << 8;
        if (i + 2 < n) b |= s[i + 2];
        char q[4] = {alphabet[(b >> 18) & 63], alphabet[(b >> 12) & 63],
                     i + 1 < n ? alphabet[(b >> 6) & 63] : '=', i + 2 < n ? alphabet[b & 63] : '='};
        fs_put(st, q, 4);
    }
    fs_putc(st, '"');
}

static void fs_put_value(file_sink *st, const sd_value *v) {
    char num[40];
    int k;
    switch (v->type) {
    case SD_NULL: fs_put(st, "null", 4); break;
    case SD_BOOL: v->v.b ? fs_put(st, "true", 4) : fs_put(st, "false", 5); break;
    case SD_INT:
        k = snprintf(num, sizeof num, "%" PRId64, v->v.i);
        fs_put(st, num, (size_t)k);
        break;
    case SD_DOUBLE:
        if (!isfinite(v->v.d)) {
            fs_put(st, "null", 4);
            break;
        }
        k = snprintf(num, sizeof num, "%.17g", v->v.d);
        fs_put(st, num, (size_t)k);
        if (!strpbrk(num, ".eE")) fs_put(st, ".0", 2); /* stays a double when read back */
        break;
    case SD_STRING: fs_put_json_string(st, v->v.s.ptr, v->v.s.len); break;
    case SD_BYTES: fs_put_base64(st, (const unsigned char *)v->v.s.ptr, v->v.s.len); break;
    default: fs_put(st, "null", 4); break;
    }
}

/* Builds the JSON line of t into st->buf. 0, or -1 when out of memory. */
static int fs_format(file_sink *st, sd_tuple *t) {
    st->len = 0;
    st->oom = false;
    fs_putc(st, '{');
    size_t n = sd_tuple_size(t);
    for (size_t i = 0; i < n; i++) {
        if (i) fs_put(st, ", ", 2);
        const char *name = sd_tuple_field_name(t, i);
        char fallback[24];
        if (!name) { /* no declared name: number it */
            snprintf(fallback, sizeof fallback, "_%zu", i);
            name = fallback;
        }
        fs_put_json_string(st, name, strlen(name));
        fs_put(st, ": ", 2);
        fs_put_value(st, sd_tuple_get(t, i));
    }
    if (st->task_field) {
        char tf[40];
        int k = snprintf(tf, sizeof tf, "%s\"__task\": %d", n ? ", " : "", st->task_id);
        fs_put(st, tf, (size_t)k);
    }
    fs_put(st, "}\n", 2);
    return st->oom ? -1 : 0;
}

/* one write(2) per line keeps lines of concurrent writers whole (O_APPEND) */
static int fs_write_all(file_sink *st, sd_collector *col) {
    size_t done = 0;
    while (done < st->len) {
        ssize_t w = write(st->fd, st->buf + done, st->len - done);
        if (w < 0) {
            if (errno == EINTR) continue;
            sd_report_error(col, "file_sink %s: write: %s", st->path, strerror(errno));
            return -1;
        }
        done += (size_t)w;
    }
    return 0;
}

static void fs_cleanup(void *state, sd_collector *col);

static void *fs_prepare(sd_context *ctx, sd_collector *col) {
    file_sink *st = calloc(1, sizeof *st);
    if (!st) {
        sd_log(ctx, SD_LOG_ERROR, "file_sink: out of memory");
        return NULL;
    }
    st->fd = -1;
    st->path = sd_context_arg_path(ctx, "path", NULL);
    st->task_field = sd_context_arg_bool(ctx, "task_field", false);
    st->ticks = sd_context_arg_bool(ctx, "ticks", false);
    st->task_id = sd_context_task_id(ctx);
    if (!st->path) {
        sd_log(ctx, SD_LOG_ERROR, "file_sink: arg 'path' is required");
        goto fail;
    }
    st->fd = open(st->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (st->fd < 0) {
        sd_log(ctx, SD_LOG_ERROR, "file_sink: cannot open %s: %s", st->path, strerror(errno));
        goto fail;
    }
    return st;
fail:
    fs_cleanup(st, col);
    return NULL;
}

static void fs_execute(void *state, sd_collector *col, sd_tuple *input) {
    file_sink *st = state;
    if (sd_tuple_is_tick(input)) {
        /* diagnostic: with ticks: true, each tick tuple is one line */
        if (st->ticks) {
            char line[64];
            int k = snprintf(line, sizeof line, "{\"__tick\": true, \"__task\": %d}\n", st->task_id);
            st->len = 0;
            st->oom = false;
            fs_put(st, line, (size_t)k);
            if (!st->oom) fs_write_all(st, col);
        }
        return;
    }
    if (fs_format(st, input) != 0) {
        sd_report_error(col, "file_sink %s: out of memory formatting a tuple", st->path);
        sd_fail(col, input);
        return;
    }
    if (fs_write_all(st, col) != 0) {
        sd_fail(col, input); /* replayed later, maybe once the disk has room */
        return;
    }
    sd_ack(col, input);
}

static void fs_cleanup(void *state, sd_collector *col) {
    (void)col;
    file_sink *st = state;
    if (!st) return;
    /* every line was written before its ack: nothing is buffered here */
    if (st->fd >= 0) close(st->fd);
    free(st->buf);
    free(st);
}

const sd_component_def builtin_file_sink_def = {
    .api_version = SD_API_VERSION,
    .name = "file_sink",
    .kind = SD_BOLT,
    .streams = NULL,
    .open = fs_prepare,
    .execute = fs_execute,
    .close = fs_cleanup,
};
