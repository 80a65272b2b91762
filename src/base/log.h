/*
 * log: one line per event, tagged with cluster, host, topology, worker and
 * (when given) task, to stderr or a file. Thread-safe: each line is written
 * with one write(2). Level from `log.level` (debug, info, warn, error).
 */
#ifndef SD_LOG_H
#define SD_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include "streamd/component.h"

/* Sets the host tag (gethostname); called once by main before any thread
 * exists, so that logging threads only read it. Until then it is "?". */
void log_init(void);
/* 1 when level is one of SD_LOG_DEBUG..SD_LOG_ERROR; a line logged with any
 * other level is logged as an error */
int log_level_valid(int level);
void log_set_level(sd_log_level level);
int log_parse_level(const char *name, sd_log_level *out); /* 0 or -1 */
/* Tags stamped on every line; NULL leaves a tag unchanged. Copied. */
void log_set_tags(const char *cluster, const char *topology, const char *worker);
/* log.format: json lines ({"time", "level", "cluster", "host", "topology",
 * "worker", "task"?, "msg"}) instead of text. */
void log_set_json(bool on);
/* Rotates the file the log goes to (found from its fd) once it holds
 * max_bytes: FILE -> FILE.1 -> ... -> FILE.keep (the oldest is dropped).
 * std_too: stdout and stderr go to that file too and follow it. Checked as
 * lines are logged and by log_rotate_check. 0 or -EINVAL (not a file). */
int log_rotate_by_size(int64_t max_bytes, int keep, bool std_too);
/* Rotates now if the file is over the size (others write to it too). */
void log_rotate_check(void);
/* Send lines to fd (taken over) instead of stderr. */
void log_use_fd(int fd);
/* Send lines to path (appending) instead of stderr; 0 or -1. */
int log_open_file(const char *path);

/* Called with the text (without time and tags) of every ERROR line, on the
 * thread that logs it (so it must be thread-safe and must not log). NULL
 * removes it. The worker uses it to pass its errors on to its node. */
typedef void (*log_error_hook)(int task, const char *text);
void log_set_error_hook(log_error_hook fn);

void log_task(sd_log_level level, int task, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void log_taskv(sd_log_level level, int task, const char *fmt, va_list ap);

#define log_debug(...) log_task(SD_LOG_DEBUG, 0, __VA_ARGS__)
#define log_info(...) log_task(SD_LOG_INFO, 0, __VA_ARGS__)
#define log_warn(...) log_task(SD_LOG_WARN, 0, __VA_ARGS__)
#define log_error(...) log_task(SD_LOG_ERROR, 0, __VA_ARGS__)

#endif
