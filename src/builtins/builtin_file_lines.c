/*
 * builtin_file_lines: the `file_lines` spout. Emits one tuple [line] per line
 * of a text file (without its newline), with the line's byte offset as the
 * message id, so a failed line can be read again with pread wherever it is
 * in the file. With parallelism P, task index i emits the lines whose line
 * number (from 0) % P == i.
 *
 * args: path (relative to the topology file), max.retries (-1: replay
 * forever; n >= 0: give up on a line after n replays, i.e. at its n+1-th
 * failure), position.file (optional: a durable read position, see below),
 * position.interval.ms (how often it is written, default 1000).
 *
 * Position: the byte offset (and line number) below which every line of
 * this task was acked or given up, i.e. the oldest line still in flight or
 * waiting for replay, else the read position. It is written atomically
 * (tmp file, fdatasync, rename) at most every position.interval.ms and at
 * close; open resumes there, so lines in flight when the worker stopped or
 * was killed are read again and nothing acked is read twice beyond that.
 * With parallelism P > 1 each task keeps <position.file>.<task index>.
 *
 * Thread: every callback runs on the task's executor thread; the state
 * (read buffer, replay queue, in-flight table) is owned by that thread.
 * Uses only the public component API.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "streamd/component.h"

extern const sd_component_def builtin_file_lines_def;

#define FL_READ_CHUNK (64 * 1024)

/* ---- offset -> failures table (open addressing, linear probing) -------- */

typedef struct fl_entry {
    uint64_t key;      /* offset + 1; 0 = empty slot */
    int32_t failures;  /* times this line failed so far */
    int32_t in_flight; /* emitted and waiting for ack/fail */
    uint64_t line_no;  /* its line number (from 0), for the durable position */
} fl_entry;

typedef struct fl_table {
    fl_entry *slots;
    size_t cap, len; /* cap is a power of two */
} fl_table;

static uint64_t fl_hash(uint64_t x) {
    /* splitmix64 finaliser: offsets are multiples of similar line lengths,
     * their low bits alone would cluster */
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

static fl_entry *fl_find(fl_table *t, uint64_t off) {
    if (t->cap == 0) return NULL;
    uint64_t key = off + 1;
    for (size_t i = fl_hash(key) & (t->cap - 1);; i = (i + 1) & (t->cap - 1)) {
        if (t->slots[i].key == key) return &t->slots[i];
        if (t->slots[i].key == 0) return NULL;
    }
}

static int fl_grow(fl_table *t) {
    size_t ncap = t->cap ? t->cap * 2 : 256;
    fl_entry *ns = calloc(ncap, sizeof *ns);
    if (!ns) return -1;
    for (size_t j = 0; j < t->cap; j++) {
        if (!t->slots[j].key) continue;
        size_t i = fl_hash(t->slots[j].key) & (ncap - 1);
        while (ns[i].key) i = (i + 1) & (ncap - 1);
        ns[i] = t->slots[j];
    }
    free(t->slots);
    t->slots = ns;
    t->cap = ncap;
    return 0;
}

/* returns the entry for off, inserting a zeroed one; NULL when out of memory */
static fl_entry *fl_insert(fl_table *t, uint64_t off) {
    fl_entry *e = fl_find(t, off);
    if (e) return e;
    if ((t->len + 1) * 4 > t->cap * 3 && fl_grow(t) != 0) return NULL; /* keep load <= 3/4 */
    uint64_t key = off + 1;
    size_t i = fl_hash(key) & (t->cap - 1);
    while (t->slots[i].key) i = (i + 1) & (t->cap - 1);
    t->slots[i] = (fl_entry){.key = key};
    t->len++;
    return &t->slots[i];
}

/* backward-shift deletion: keeps probe chains intact without tombstones */
static void fl_remove(fl_table *t, fl_entry *e) {
    size_t mask = t->cap - 1, hole = (size_t)(e - t->slots);
    for (size_t i = (hole + 1) & mask; t->slots[i].key; i = (i + 1) & mask) {
        size_t home = fl_hash(t->slots[i].key) & mask;
        /* move slot i into the hole unless its home lies in (hole, i] */
        if (((i - home) & mask) >= ((i - hole) & mask)) {
            t->slots[hole] = t->slots[i];
            hole = i;
        }
    }
    t->slots[hole].key = 0;
    t->len--;
}

/* ---- state --------------------------------------------------------------- */

typedef struct file_lines {
    sd_context *ctx;
    const char *path;
    int fd;
    int64_t max_retries;
    int task_index, parallelism;
    /* sequential reader */
    char *buf;
    size_t buf_pos, buf_len;
    uint64_t buf_off;        /* file offset of buf[0] */
    char *line;              /* a line that spans reads is gathered here */
    size_t line_len, line_cap;
    uint64_t line_no;        /* lines read so far, all tasks' */
    int eof;
    /* lines to emit again, oldest first (ring) */
    uint64_t *replay;
    size_t replay_head, replay_len, replay_cap;
    fl_table table;
    size_t in_flight;
    /* durable position (pos_path[0] == '\0': none) */
    char pos_path[PATH_MAX];
    int64_t pos_interval_ms;
    uint64_t pos_written_ms;          /* monotonic time of the last write */
    uint64_t pos_off, pos_line;       /* what the file holds now */
    bool pos_warned;                  /* a failed write was logged */
} file_lines;

static int fl_reserve_line(file_lines *st, size_t need) {
    if (need <= st->line_cap) return 0;
    size_t ncap = st->line_cap ? st->line_cap : 256;
    while (ncap < need) ncap *= 2;
    char *n = realloc(st->line, ncap);
    if (!n) return -1;
    st->line = n;
    st->line_cap = ncap;
    return 0;
}

/* Next line of the file. Returns 1 with *p, *n, *off set (valid until the next
 * call), 0 at end of file, -1 on error (reported). */
static int fl_next_line(file_lines *st, sd_collector *col, const char **p, size_t *n, uint64_t *off) {
    st->line_len = 0;
    uint64_t start = st->buf_off + st->buf_pos;
    for (;;) {
        if (st->buf_pos < st->buf_len) {
            char *b = st->buf + st->buf_pos;
            size_t avail = st->buf_len - st->buf_pos;
            char *nl = memchr(b, '\n', avail);
            size_t take = nl ? (size_t)(nl - b) : avail;
            if (nl && st->line_len == 0) { /* whole line in the buffer: no copy */
                *p = b;
                *n = take;
                *off = start;
                st->buf_pos += take + 1;
                return 1;
            }
            if (fl_reserve_line(st, st->line_len + take) != 0) {
                sd_report_error(col, "file_lines %s: out of memory for a line", st->path);
                return -1;
            }
            memcpy(st->line + st->line_len, b, take);
            st->line_len += take;
            st->buf_pos += nl ? take + 1 : take;
            if (nl) break;
        }
        if (st->eof) {
            if (st->line_len == 0) return 0;
            break; /* last line without a newline */
        }
        st->buf_off += st->buf_len;
        st->buf_pos = st->buf_len = 0;
        ssize_t r;
        do r = read(st->fd, st->buf, FL_READ_CHUNK);
        while (r < 0 && errno == EINTR);
        if (r < 0) {
            sd_report_error(col, "file_lines %s: read: %s", st->path, strerror(errno));
            return -1;
        }
        if (r == 0) st->eof = 1;
        st->buf_len = (size_t)r;
    }
    *p = st->line;
    *n = st->line_len;
    *off = start;
    return 1;
}

/* Reads the line at off again into st->line. 1 on success, -1 on error. */
static int fl_reread(file_lines *st, sd_collector *col, uint64_t off) {
    st->line_len = 0;
    for (;;) {
        if (fl_reserve_line(st, st->line_len + 4096) != 0) {
            sd_report_error(col, "file_lines %s: out of memory for a line", st->path);
            return -1;
        }
        ssize_t r;
        do r = pread(st->fd, st->line + st->line_len, 4096, (off_t)(off + st->line_len));
        while (r < 0 && errno == EINTR);
        if (r < 0) {
            sd_report_error(col, "file_lines %s: pread at %llu: %s", st->path, (unsigned long long)off,
                            strerror(errno));
            return -1;
        }
        char *nl = memchr(st->line + st->line_len, '\n', (size_t)r);
        if (nl) {
            st->line_len = (size_t)(nl - st->line);
            return 1;
        }
        st->line_len += (size_t)r;
        if (r == 0) return 1; /* last line without a newline */
    }
}

static int fl_emit(file_lines *st, sd_collector *col, const char *p, size_t n, uint64_t off, uint64_t line_no) {
    if (n > UINT32_MAX) {
        sd_report_error(col, "file_lines %s: line at %llu is longer than 4 GiB", st->path,
                        (unsigned long long)off);
        return -1;
    }
    fl_entry *e = fl_insert(&st->table, off);
    if (!e) {
        sd_report_error(col, "file_lines %s: out of memory tracking lines", st->path);
        return -1;
    }
    e->in_flight = 1;
    e->line_no = line_no;
    st->in_flight++;
    sd_value v = sd_str(p, (uint32_t)n);
    /* the runtime may call ack() from inside emit (acking off): e is not
     * used after this point */
    if (sd_spout_emit(col, NULL, &v, 1, true, off) != 0) {
        e = fl_find(&st->table, off);
        if (e) {
            st->in_flight--;
            fl_remove(&st->table, e);
        }
        return -1;
    }
    return 0;
}

static int fl_push_replay(file_lines *st, uint64_t off) {
    if (st->replay_len == st->replay_cap) {
        size_t ncap = st->replay_cap ? st->replay_cap * 2 : 64;
        uint64_t *n = malloc(ncap * sizeof *n);
        if (!n) return -1;
        for (size_t i = 0; i < st->replay_len; i++) n[i] = st->replay[(st->replay_head + i) % st->replay_cap];
        free(st->replay);
        st->replay = n;
        st->replay_cap = ncap;
        st->replay_head = 0;
    }
    st->replay[(st->replay_head + st->replay_len) % st->replay_cap] = off;
    st->replay_len++;
    return 0;
}

/* ---- durable position ------------------------------------------------------ */

static uint64_t fl_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The offset and line number below which every line of this task is done:
 * the oldest line in flight or waiting for replay, else the read position
 * (the reader stops between lines, so that is a line start). */
static void fl_low_water(const file_lines *st, uint64_t *off, uint64_t *line) {
    *off = st->buf_off + st->buf_pos;
    *line = st->line_no;
    for (size_t i = 0; i < st->table.cap; i++) {
        const fl_entry *e = &st->table.slots[i];
        if (e->key && e->key - 1 < *off) {
            *off = e->key - 1;
            *line = e->line_no;
        }
    }
}

/* Replaces the position file atomically: a kill at any point leaves the old
 * or the new position, never a torn one. 0 or -errno. */
static int fl_pos_write(const file_lines *st, uint64_t off, uint64_t line) {
    char tmp[PATH_MAX + 8], text[64];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", st->pos_path) >= (int)sizeof tmp) return -ENAMETOOLONG;
    int len = snprintf(text, sizeof text, "%" PRIu64 " %" PRIu64 "\n", off, line);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return -errno;
    ssize_t w = write(fd, text, (size_t)len);
    int rc = w < 0 ? -errno : w != len ? -EIO : 0;
    if (rc == 0 && fdatasync(fd) != 0) rc = -errno;
    if (close(fd) != 0 && rc == 0) rc = -errno;
    if (rc == 0 && rename(tmp, st->pos_path) != 0) rc = -errno;
    if (rc != 0) unlink(tmp);
    return rc;
}

/* Writes the position when it moved and the interval passed (or now). */
static void fl_pos_save(file_lines *st, bool now) {
    if (!st->pos_path[0]) return;
    uint64_t t = fl_now_ms();
    if (!now && t - st->pos_written_ms < (uint64_t)st->pos_interval_ms) return;
    st->pos_written_ms = t;
    uint64_t off, line;
    fl_low_water(st, &off, &line);
    if (off == st->pos_off && line == st->pos_line) return;
    int rc = fl_pos_write(st, off, line);
    if (rc == 0) {
        st->pos_off = off;
        st->pos_line = line;
    } else if (!st->pos_warned) {
        st->pos_warned = true; /* once: it is retried every interval */
        sd_log(st->ctx, SD_LOG_WARN, "file_lines %s: cannot write the position file %s: %s", st->path,
               st->pos_path, strerror(-rc));
    }
}

/* Resumes at the saved position when it fits the file (a line start within
 * it); otherwise reads from the start, which replays but loses nothing.
 * 0, or -1 when the position file exists but cannot be read (logged). */
static int fl_pos_load(file_lines *st) {
    FILE *f = fopen(st->pos_path, "re");
    if (!f) {
        if (errno == ENOENT) return 0;
        sd_log(st->ctx, SD_LOG_ERROR, "file_lines: cannot read the position file %s: %s", st->pos_path,
               strerror(errno));
        return -1;
    }
    uint64_t off = 0, line = 0;
    int got = fscanf(f, "%" SCNu64 " %" SCNu64, &off, &line);
    fclose(f);
    struct stat sb;
    bool fits = got == 2 && fstat(st->fd, &sb) == 0 && off <= (uint64_t)sb.st_size && line <= off;
    if (fits && off > 0 && off < (uint64_t)sb.st_size) {
        char c = 0;
        fits = pread(st->fd, &c, 1, (off_t)off - 1) == 1 && c == '\n';
    }
    if (!fits) {
        sd_log(st->ctx, SD_LOG_WARN, "file_lines %s: the position in %s does not fit the file (changed?); "
               "reading from the start", st->path, st->pos_path);
        return 0;
    }
    if (lseek(st->fd, (off_t)off, SEEK_SET) < 0) {
        sd_log(st->ctx, SD_LOG_ERROR, "file_lines %s: seek to %" PRIu64 ": %s", st->path, off, strerror(errno));
        return -1;
    }
    st->buf_off = st->pos_off = off;
    st->line_no = st->pos_line = line;
    if (off > 0)
        sd_log(st->ctx, SD_LOG_INFO, "file_lines %s: resuming at byte %" PRIu64 " (line %" PRIu64 ") from %s",
               st->path, off, line, st->pos_path);
    return 0;
}

/* ---- callbacks ------------------------------------------------------------ */

static void fl_close(void *state, sd_collector *col);

static void *fl_open(sd_context *ctx, sd_collector *col) {
    file_lines *st = calloc(1, sizeof *st);
    if (!st) {
        sd_log(ctx, SD_LOG_ERROR, "file_lines: out of memory");
        return NULL;
    }
    st->fd = -1;
    st->ctx = ctx;
    st->path = sd_context_arg_path(ctx, "path", NULL);
    st->max_retries = sd_context_arg_int(ctx, "max.retries", -1);
    st->task_index = sd_context_task_index(ctx);
    st->parallelism = sd_context_parallelism(ctx);
    if (!st->path) {
        sd_log(ctx, SD_LOG_ERROR, "file_lines: arg 'path' is required");
        goto fail;
    }
    st->buf = malloc(FL_READ_CHUNK);
    if (!st->buf) {
        sd_log(ctx, SD_LOG_ERROR, "file_lines: out of memory");
        goto fail;
    }
    st->fd = open(st->path, O_RDONLY | O_CLOEXEC);
    if (st->fd < 0) {
        sd_log(ctx, SD_LOG_ERROR, "file_lines: cannot open %s: %s", st->path, strerror(errno));
        goto fail;
    }
    const char *pos = sd_context_arg_path(ctx, "position.file", NULL);
    if (pos && *pos) {
        int n = st->parallelism > 1 ? snprintf(st->pos_path, sizeof st->pos_path, "%s.%d", pos, st->task_index)
                                    : snprintf(st->pos_path, sizeof st->pos_path, "%s", pos);
        if (n >= (int)sizeof st->pos_path) {
            sd_log(ctx, SD_LOG_ERROR, "file_lines: position.file is too long");
            st->pos_path[0] = '\0';
            goto fail;
        }
        st->pos_interval_ms = sd_context_arg_int(ctx, "position.interval.ms", 1000);
        if (st->pos_interval_ms < 0) st->pos_interval_ms = 0;
        if (fl_pos_load(st) != 0) {
            st->pos_path[0] = '\0'; /* nothing to save over */
            goto fail;
        }
        st->pos_written_ms = fl_now_ms();
    }
    return st;
fail:
    fl_close(st, col);
    return NULL;
}

static int fl_next_tuple(void *state, sd_collector *col) {
    file_lines *st = state;
    if (st->replay_len) {
        uint64_t off = st->replay[st->replay_head];
        st->replay_head = (st->replay_head + 1) % st->replay_cap;
        st->replay_len--;
        fl_entry *old = fl_find(&st->table, off);
        uint64_t line_no = old ? old->line_no : 0;
        if (fl_reread(st, col, off) < 0 || fl_emit(st, col, st->line, st->line_len, off, line_no) < 0) {
            /* cannot emit this line ever again: count it as lost */
            fl_entry *e = fl_find(&st->table, off);
            if (e) fl_remove(&st->table, e);
            sd_spout_gave_up(col, off);
        }
        return SD_NEXT_EMITTED;
    }
    while (!st->eof || st->buf_pos < st->buf_len) {
        const char *p;
        size_t n;
        uint64_t off;
        int r = fl_next_line(st, col, &p, &n, &off);
        if (r < 0) {
            st->eof = 1; /* reported; stop reading rather than spin on the error */
            st->buf_pos = st->buf_len = 0;
            break;
        }
        if (r == 0) break;
        uint64_t no = st->line_no++;
        if (no % (uint64_t)st->parallelism != (uint64_t)st->task_index) continue;
        if (fl_emit(st, col, p, n, off, no) < 0) sd_spout_gave_up(col, off);
        fl_pos_save(st, false);
        return SD_NEXT_EMITTED;
    }
    fl_pos_save(st, false);
    return st->in_flight ? SD_NEXT_IDLE : SD_NEXT_EXHAUSTED;
}

static void fl_ack(void *state, sd_collector *col, uint64_t msg_id) {
    (void)col;
    file_lines *st = state;
    fl_entry *e = fl_find(&st->table, msg_id);
    if (!e || !e->in_flight) return; /* not ours, or a late duplicate */
    st->in_flight--;
    fl_remove(&st->table, e);
    fl_pos_save(st, false);
}

static void fl_fail(void *state, sd_collector *col, uint64_t msg_id) {
    file_lines *st = state;
    fl_entry *e = fl_find(&st->table, msg_id);
    if (!e || !e->in_flight) return;
    st->in_flight--;
    e->in_flight = 0;
    e->failures++;
    if (st->max_retries >= 0 && e->failures > st->max_retries) {
        sd_log(st->ctx, SD_LOG_WARN, "file_lines %s: line at %llu failed %d times, giving up", st->path,
               (unsigned long long)msg_id, (int)e->failures);
        fl_remove(&st->table, e);
        sd_spout_gave_up(col, msg_id);
        return;
    }
    if (fl_push_replay(st, msg_id) != 0) {
        sd_report_error(col, "file_lines %s: out of memory queueing a replay", st->path);
        fl_remove(&st->table, e);
        sd_spout_gave_up(col, msg_id);
    }
}

static void fl_close(void *state, sd_collector *col) {
    (void)col;
    file_lines *st = state;
    if (!st) return;
    fl_pos_save(st, true); /* a failed open left pos_path empty */
    if (st->fd >= 0) close(st->fd);
    free(st->buf);
    free(st->line);
    free(st->replay);
    free(st->table.slots);
    free(st);
}

static const sd_stream_decl fl_streams[] = {
    {.name = SD_DEFAULT_STREAM, .fields = {"line", NULL}},
    {.name = NULL},
};

const sd_component_def builtin_file_lines_def = {
    .api_version = SD_API_VERSION,
    .name = "file_lines",
    .kind = SD_SPOUT,
    .streams = fl_streams,
    .open = fl_open,
    .next_tuple = fl_next_tuple,
    .ack = fl_ack,
    .fail = fl_fail,
    .close = fl_close,
};
