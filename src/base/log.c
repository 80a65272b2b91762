/* log: tagged log lines; see log.h. Tags are set once at start-up, before
 * threads exist, so reads need no lock. */
#include "base/log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* changed at run time (loglevel) while other threads log */
static _Atomic int min_level = SD_LOG_INFO;
static int log_fd = 2;
static char tag_cluster[64] = "default";
static char tag_host[64] = "?"; /* log_init */
static char tag_topology[128] = "-";
static char tag_worker[64] = "-";

static const char *level_names[] = {"DEBUG", "INFO", "WARN", "ERROR"};

static log_error_hook error_hook;
static bool json_lines; /* log.format: json */

/* Size-based rotation of the file log_fd writes (the worker's log). */
static struct {
    int64_t max;        /* 0: off */
    int keep;
    bool std_too;       /* stdout and stderr write to the same file */
    char path[PATH_MAX];
    pthread_mutex_t lock;
    atomic_int_fast64_t since_check; /* bytes written by us since the last size check */
} rot = {.lock = PTHREAD_MUTEX_INITIALIZER};

void log_set_json(bool on) { json_lines = on; }

int log_rotate_by_size(int64_t max_bytes, int keep, bool std_too) {
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", log_fd);
    ssize_t n = readlink(link, rot.path, sizeof rot.path - 1);
    if (n <= 0 || rot.path[0] != '/') return -EINVAL;
    rot.path[n] = '\0';
    rot.keep = keep < 1 ? 1 : keep;
    rot.std_too = std_too;
    rot.max = max_bytes;
    return 0;
}

/* Renames path.(keep-1)..path.1 one up, path to path.1, and points log_fd
 * (and stdout/stderr when they share it) at a new file. */
static void rotate_now(void) {
    char from[PATH_MAX + 16], to[PATH_MAX + 16];
    for (int i = rot.keep - 1; i >= 1; i--) {
        snprintf(from, sizeof from, "%s.%d", rot.path, i);
        snprintf(to, sizeof to, "%s.%d", rot.path, i + 1);
        rename(from, to); /* a missing one is fine */
    }
    snprintf(to, sizeof to, "%s.1", rot.path);
    if (rename(rot.path, to) != 0) return;
    int fd = open(rot.path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) return; /* lines go on to the renamed file */
    dup2(fd, log_fd);
    fcntl(log_fd, F_SETFD, FD_CLOEXEC);
    if (rot.std_too) {
        dup2(fd, 1);
        dup2(fd, 2);
    }
    close(fd);
}

void log_rotate_check(void) {
    if (rot.max <= 0 || pthread_mutex_trylock(&rot.lock) != 0) return;
    struct stat st;
    if (fstat(log_fd, &st) == 0 && st.st_size >= rot.max) rotate_now();
    atomic_store(&rot.since_check, 0);
    pthread_mutex_unlock(&rot.lock);
}

/* Appends text to buf (at *n, capacity cap) as a JSON string body. */
static void json_escape(char *buf, size_t cap, int *n, const char *text) {
    static const char hex[] = "0123456789abcdef";
    for (const unsigned char *c = (const unsigned char *)text; *c && (size_t)*n + 7 < cap; c++) {
        if (*c == '"' || *c == '\\') {
            buf[(*n)++] = '\\';
            buf[(*n)++] = (char)*c;
        } else if (*c < 0x20) {
            buf[(*n)++] = '\\';
            buf[(*n)++] = 'u';
            buf[(*n)++] = '0';
            buf[(*n)++] = '0';
            buf[(*n)++] = hex[*c >> 4];
            buf[(*n)++] = hex[*c & 15];
        } else {
            buf[(*n)++] = (char)*c;
        }
    }
}

void log_init(void) {
    char host[sizeof tag_host];
    if (gethostname(host, sizeof host) == 0) {
        host[sizeof host - 1] = '\0';
        memcpy(tag_host, host, sizeof host);
    }
}

int log_level_valid(int level) { return level >= SD_LOG_DEBUG && level <= SD_LOG_ERROR; }

void log_set_level(sd_log_level level) { min_level = level; }
void log_set_error_hook(log_error_hook fn) { error_hook = fn; }

void log_use_fd(int fd) {
    if (log_fd != 2 && log_fd != fd) close(log_fd);
    fcntl(fd, F_SETFD, FD_CLOEXEC); /* not for what user code may exec */
    log_fd = fd;
}

int log_parse_level(const char *name, sd_log_level *out) {
    static const char *names[] = {"debug", "info", "warn", "error"};
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(name, names[i]) == 0) {
            *out = (sd_log_level)i;
            return 0;
        }
    }
    return -1;
}

static void copy_tag(char *dst, size_t cap, const char *src) {
    if (src) snprintf(dst, cap, "%s", src);
}

void log_set_tags(const char *cluster, const char *topology, const char *worker) {
    copy_tag(tag_cluster, sizeof tag_cluster, cluster);
    copy_tag(tag_topology, sizeof tag_topology, topology);
    copy_tag(tag_worker, sizeof tag_worker, worker);
}

int log_open_file(const char *path) {
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) {
        log_error("cannot open log file %s: %s", path, strerror(errno));
        return -1;
    }
    if (log_fd != 2) close(log_fd);
    log_fd = fd;
    return 0;
}

void log_taskv(sd_log_level level, int task, const char *fmt, va_list ap) {
    if ((unsigned)level > SD_LOG_ERROR) level = SD_LOG_ERROR; /* never an index out of level_names */
    if ((int)level < min_level) return;
    char text[2048], line[4096], when[96];
    vsnprintf(text, sizeof text, fmt, ap);
    if (level == SD_LOG_ERROR && error_hook) error_hook(task, text);
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    snprintf(when, sizeof when, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (long)(tv.tv_usec / 1000));
    int n;
    if (json_lines) {
        /* tags are plain names (cluster, host, topology id, host:port) */
        n = snprintf(line, sizeof line,
                     "{\"time\":\"%s\",\"level\":\"%s\",\"cluster\":\"%s\",\"host\":\"%s\",\"topology\":\"%s\","
                     "\"worker\":\"%s\"",
                     when, level_names[level], tag_cluster, tag_host, tag_topology, tag_worker);
        if (task > 0 && n < (int)sizeof line) n += snprintf(line + n, sizeof line - n, ",\"task\":%d", task);
        if (n < (int)sizeof line) n += snprintf(line + n, sizeof line - n, ",\"msg\":\"");
        if (n < (int)sizeof line) json_escape(line, sizeof line - 3, &n, text);
        if (n > (int)sizeof line - 3) n = (int)sizeof line - 3;
        line[n++] = '"';
        line[n++] = '}';
    } else {
        n = snprintf(line, sizeof line, "%s %s [cluster=%s host=%s topology=%s worker=%s", when, level_names[level],
                     tag_cluster, tag_host, tag_topology, tag_worker);
        if (task > 0 && n < (int)sizeof line) n += snprintf(line + n, sizeof line - n, " task=%d", task);
        if (n < (int)sizeof line) n += snprintf(line + n, sizeof line - n, "] %s", text);
        if (n >= (int)sizeof line - 1) n = sizeof line - 2;
    }
    line[n++] = '\n';
    ssize_t w = write(log_fd, line, (size_t)n);
    (void)w; /* nowhere better to report a failed log write */
    if (rot.max > 0 && atomic_fetch_add(&rot.since_check, n) + n >= rot.max / 16) log_rotate_check();
}

void log_task(sd_log_level level, int task, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    log_taskv(level, task, fmt, ap);
    va_end(ap);
}
