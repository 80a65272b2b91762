/* log: tagged log lines; see log.h. Tags are set once at start-up, before
 * threads exist, so reads need no lock. */
#include "base/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* changed at run time (loglevel) while other threads log */
static _Atomic int min_level = SD_LOG_INFO;
static int log_fd = 2;
static char tag_cluster[64] = "default";
static char tag_host[64];
static char tag_topology[128] = "-";
static char tag_worker[64] = "-";

static const char *level_names[] = {"DEBUG", "INFO", "WARN", "ERROR"};

static log_error_hook error_hook;

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
    if ((int)level < min_level) return;
    if (!tag_host[0] && gethostname(tag_host, sizeof tag_host - 1) != 0) strcpy(tag_host, "?");
    char line[2048];
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    int n = snprintf(line, sizeof line,
                     "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s [cluster=%s host=%s topology=%s worker=%s",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     (long)(tv.tv_usec / 1000), level_names[level], tag_cluster, tag_host, tag_topology,
                     tag_worker);
    if (task > 0 && n < (int)sizeof line) n += snprintf(line + n, sizeof line - n, " task=%d", task);
    if (n < (int)sizeof line) n += snprintf(line + n, sizeof line - n, "] ");
    int text_at = n < (int)sizeof line ? n : (int)sizeof line - 1;
    if (n < (int)sizeof line) n += vsnprintf(line + n, sizeof line - n, fmt, ap);
    if (n >= (int)sizeof line - 1) n = sizeof line - 2;
    line[n] = '\0';
    if (level == SD_LOG_ERROR && error_hook) error_hook(task, line + text_at);
    line[n++] = '\n';
    ssize_t w = write(log_fd, line, (size_t)n);
    (void)w; /* nowhere better to report a failed log write */
}

void log_task(sd_log_level level, int task, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    log_taskv(level, task, fmt, ap);
    va_end(ap);
}
