/*
 * task_columns: see task_columns.h. Plain functions, no state.
 */
#include "proto/task_columns.h"
#include "base/err.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>

const char *const tcol_names[TCOL_COUNT] = {
    "emitted", "transferred", "received", "executed", "acked", "failed", "failed_final", "pending",
    "queue",   "exhausted",   "errors",   "chained_to", "lat_p50", "lat_p99", "lat_p999", "lat_max",
};

json_t *tcol_encode(const int *ids, const int64_t *vals, size_t n) {
    json_t *out = json_object(), *task = json_array();
    if (!out || !task || json_object_set_new(out, "task", task) != 0) {
        json_decref(out);
        return NULL;
    }
    for (size_t i = 0; i < n; i++)
        if (json_array_append_new(task, json_integer(ids[i])) != 0) goto fail;
    for (int c = 0; c < TCOL_COUNT; c++) {
        bool any = false;
        for (size_t i = 0; i < n && !any; i++) any = vals[i * TCOL_COUNT + c] > 0;
        if (!any) continue; /* readers take a missing column as zeros */
        json_t *col = json_array();
        if (!col || json_object_set_new(out, tcol_names[c], col) != 0) goto fail;
        for (size_t i = 0; i < n; i++) {
            int64_t v = vals[i * TCOL_COUNT + c];
            if (json_array_append_new(col, json_integer(v > 0 ? v : 0)) != 0) goto fail;
        }
    }
    return out;
fail:
    json_decref(out);
    return NULL;
}

int tcol_each(const json_t *cols, int max_task, tcol_fn fn, void *arg, char *err, size_t errlen) {
    json_t *task = json_object_get(cols, "task");
    if (!json_is_object(cols) || !json_is_array(task))
        return sd_err_msg(err, errlen, -EINVAL, "task_columns: no \"task\" array");
    size_t n = json_array_size(task);
    const json_t *col[TCOL_COUNT];
    for (int c = 0; c < TCOL_COUNT; c++) {
        col[c] = json_object_get(cols, tcol_names[c]);
        if (col[c] && (!json_is_array(col[c]) || json_array_size(col[c]) != n))
            return sd_err_msg(err, errlen, -EINVAL, "task_columns: \"%s\" is not an array of %zu values", tcol_names[c],
                              n);
    }
    /* checked whole before fn sees anything */
    for (size_t i = 0; i < n; i++) {
        json_t *t = json_array_get(task, i);
        if (!json_is_integer(t) || json_integer_value(t) < 1 || json_integer_value(t) > max_task)
            return sd_err_msg(err, errlen, -EINVAL, "task_columns: task[%zu] is not a task id of 1 to %d", i, max_task);
        for (int c = 0; c < TCOL_COUNT; c++) {
            if (!col[c]) continue;
            json_t *v = json_array_get(col[c], i);
            json_int_t most = c == TCOL_CHAINED_TO ? max_task : INT64_MAX;
            if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > most)
                return sd_err_msg(err, errlen, -EINVAL, "task_columns: %s[%zu] of task %lld is out of range",
                                  tcol_names[c], i, (long long)json_integer_value(t));
        }
    }
    for (size_t i = 0; fn && i < n; i++) {
        int64_t v[TCOL_COUNT];
        for (int c = 0; c < TCOL_COUNT; c++) v[c] = col[c] ? json_integer_value(json_array_get(col[c], i)) : 0;
        int rc = fn(arg, (int)json_integer_value(json_array_get(task, i)), v);
        if (rc < 0) return rc;
    }
    return 0;
}

size_t tcol_size(const json_t *cols) { return json_array_size(json_object_get(cols, "task")); }

json_t *tcol_subset(const json_t *cols, unsigned mask) {
    json_t *out = json_object();
    if (!out || json_object_set(out, "task", json_object_get(cols, "task")) != 0) goto fail;
    for (int c = 0; c < TCOL_COUNT; c++) {
        json_t *col = json_object_get(cols, tcol_names[c]);
        if ((mask & (1u << c)) && col && json_object_set(out, tcol_names[c], col) != 0) goto fail;
    }
    return out;
fail:
    json_decref(out);
    return NULL;
}
