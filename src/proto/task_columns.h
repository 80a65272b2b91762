/*
 * task_columns: the per-task counters of a worker heartbeat, as columns.
 * A heartbeat carries "task_columns": {"task": [i, ...], "emitted": [i, ...],
 * ...}: one array of task ids and one array per counter, in the same order,
 * so a task costs a few digits per counter and no key names (a topology of
 * 10,000 tasks sends ~tens of kB a second, not megabytes). A column whose
 * values are all zero is left out; readers take a missing column as zeros.
 * Which component a task belongs to comes from the topology's task ranges,
 * not from the heartbeat.
 * Written by the worker (worker.c); read by the node (the report it sends to
 * the leader keeps only TCOL_REPORT_MASK's columns), the leader (reports.c)
 * and local mode (local.c). Input from another process is checked whole by
 * tcol_each before any value is used.
 */
#ifndef SD_TASK_COLUMNS_H
#define SD_TASK_COLUMNS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    TCOL_EMITTED,
    TCOL_TRANSFERRED,
    TCOL_RECEIVED,
    TCOL_EXECUTED,
    TCOL_ACKED,
    TCOL_FAILED,
    TCOL_FAILED_FINAL,
    TCOL_PENDING,    /* trees in flight (spouts) */
    TCOL_QUEUE,      /* tuples queued or taken but not executed yet */
    TCOL_EXHAUSTED,  /* 1: the spout has nothing more to emit */
    TCOL_ERRORS,
    TCOL_CHAINED_TO, /* the task that runs this one inline (topology.chaining), 0 if none */
    TCOL_LAT_P50,    /* complete latency of a spout's trees, microseconds */
    TCOL_LAT_P99,
    TCOL_LAT_P999,
    TCOL_LAT_MAX,
    TCOL_COUNT
} tcol_col;

/* The columns a node forwards to the leader (all the leader shows). */
#define TCOL_REPORT_MASK ((1u << TCOL_EMITTED) | (1u << TCOL_ACKED) | (1u << TCOL_FAILED) | (1u << TCOL_CHAINED_TO))

/* The key of each column in the JSON object ("emitted", ...). */
extern const char *const tcol_names[TCOL_COUNT];

/* Encodes n tasks: ids[i] and their values vals[i * TCOL_COUNT + col]
 * (negative values are sent as 0). Returns a new object, NULL on allocation
 * failure. */
json_t *tcol_encode(const int *ids, const int64_t *vals, size_t n);

/* Called per task with its values v[TCOL_COUNT]; a negative return stops
 * tcol_each, which returns it. */
typedef int (*tcol_fn)(void *arg, int task, const int64_t *v);

/* Checks cols whole (an object; "task" an array of task ids 1..max_task;
 * every known column present an array of the same length of non-negative
 * integers, chained_to at most max_task; unknown keys ignored), then calls
 * fn (unless NULL: only the check) for each task in order. Returns 0, -EINVAL with a message in err, or
 * what fn returned. */
int tcol_each(const json_t *cols, int max_task, tcol_fn fn, void *arg, char *err, size_t errlen);

/* The number of tasks in cols (the length of its "task" array). */
size_t tcol_size(const json_t *cols);

/* A new object with cols' "task" array and the columns in mask (the arrays
 * are shared, not copied); NULL on allocation failure. */
json_t *tcol_subset(const json_t *cols, unsigned mask);

#endif
