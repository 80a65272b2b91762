/* records: checked store values (see records.h). */
#include "master/records.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define REC_MAX_HOST 255

bool rec_valid_name(const char *s) {
    if (!s || !*s || strcmp(s, ".") == 0 || strcmp(s, "..") == 0) return false;
    size_t n = 0;
    for (; s[n]; n++) {
        char c = s[n];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
                  c == '-';
        if (!ok || n >= REC_MAX_ID) return false;
    }
    return true;
}

const char *rec_str(const json_t *rec, const char *key) { return json_string_value(json_object_get(rec, key)); }

long long rec_int(const json_t *rec, const char *key) { return json_integer_value(json_object_get(rec, key)); }

__attribute__((format(printf, 4, 5))) static json_t *refuse(json_t *v, char *err, size_t errlen, const char *fmt,
                                                             ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    json_decref(v);
    return NULL;
}

static json_t *load_object(const char *value, size_t len, char *err, size_t errlen) {
    json_error_t je;
    json_t *v = value ? json_loadb(value, len, 0, &je) : NULL;
    if (!v) {
        snprintf(err, errlen, "not JSON: %s", value ? je.text : "no value");
        return NULL;
    }
    if (!json_is_object(v)) return refuse(v, err, errlen, "not a JSON object");
    return v;
}

static bool int_in(const json_t *v, long long lo, long long hi) {
    return json_is_integer(v) && json_integer_value(v) >= lo && json_integer_value(v) <= hi;
}

static bool str_len_in(const json_t *v, size_t lo, size_t hi) {
    return json_is_string(v) && json_string_length(v) >= lo && json_string_length(v) <= hi &&
           strlen(json_string_value(v)) == json_string_length(v); /* no NUL inside */
}

static bool is_hex64(const char *s) {
    if (!s || strlen(s) != 64) return false;
    for (int i = 0; i < 64; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return false;
    return true;
}

json_t *rec_node(const char *id, const char *value, size_t len, char *err, size_t errlen) {
    json_t *v = load_object(value, len, err, errlen);
    if (!v) return NULL;
    const char *vid = rec_str(v, "id");
    if (!vid || !rec_valid_name(vid) || strcmp(vid, id) != 0) return refuse(v, err, errlen, "\"id\" is not the key's");
    if (!str_len_in(json_object_get(v, "host"), 1, REC_MAX_HOST)) return refuse(v, err, errlen, "bad \"host\"");
    json_t *slots = json_object_get(v, "slots");
    if (!json_is_array(slots) || json_array_size(slots) > REC_MAX_SLOTS)
        return refuse(v, err, errlen, "\"slots\" is not an array of at most %d ports", REC_MAX_SLOTS);
    size_t i;
    json_t *p;
    json_array_foreach(slots, i, p) {
        if (!int_in(p, 1, 65535)) return refuse(v, err, errlen, "\"slots\"[%zu] is not a port", i);
    }
    return v;
}

static bool conf_ok(const json_t *c) {
    if (!json_is_object(c)) return false;
    const char *k;
    json_t *x;
    json_object_foreach((json_t *)c, k, x) {
        if (!json_is_string(x)) return false;
    }
    return true;
}

json_t *rec_topology(const char *name, const char *value, size_t len, char *err, size_t errlen) {
    json_t *v = load_object(value, len, err, errlen);
    if (!v) return NULL;
    const char *vname = rec_str(v, "name"), *status = rec_str(v, "status");
    if (!vname || strcmp(vname, name) != 0 || !rec_valid_name(vname))
        return refuse(v, err, errlen, "\"name\" is not the key's");
    if (!rec_valid_name(rec_str(v, "id"))) return refuse(v, err, errlen, "bad \"id\"");
    if (!status || (strcmp(status, "active") != 0 && strcmp(status, "inactive") != 0 && strcmp(status, "killing") != 0))
        return refuse(v, err, errlen, "bad \"status\"");
    if (!is_hex64(rec_str(v, "package"))) return refuse(v, err, errlen, "\"package\" is not a SHA-256");
    if (json_object_get(v, "secret") && !is_hex64(rec_str(v, "secret")))
        return refuse(v, err, errlen, "\"secret\" is not 64 hex digits");
    if (!int_in(json_object_get(v, "workers"), 1, REC_MAX_WORKERS)) return refuse(v, err, errlen, "bad \"workers\"");
    json_t *nt = json_object_get(v, "ntasks");
    if (!int_in(nt, 0, REC_MAX_TASKS)) return refuse(v, err, errlen, "bad \"ntasks\"");
    if (!conf_ok(json_object_get(v, "conf"))) return refuse(v, err, errlen, "\"conf\" is not an object of strings");
    if (!int_in(json_object_get(v, "submit_time"), 0, INT64_MAX)) return refuse(v, err, errlen, "bad \"submit_time\"");
    json_t *ll = json_object_get(v, "log_level");
    if (ll && !str_len_in(ll, 1, 8)) return refuse(v, err, errlen, "bad \"log_level\"");
    json_t *kd = json_object_get(v, "kill_deadline");
    if (kd && !int_in(kd, 0, INT64_MAX)) return refuse(v, err, errlen, "bad \"kill_deadline\"");
    json_t *comps = json_object_get(v, "components");
    if (comps) {
        if (!json_is_array(comps) || json_array_size(comps) > REC_MAX_COMPONENTS)
            return refuse(v, err, errlen, "bad \"components\"");
        size_t i;
        json_t *c;
        json_array_foreach(comps, i, c) {
            json_t *par = json_object_get(c, "parallelism"), *first = json_object_get(c, "first_task");
            if (!str_len_in(json_object_get(c, "id"), 1, REC_MAX_ID) || !str_len_in(json_object_get(c, "kind"), 1, 16) ||
                !int_in(par, 1, REC_MAX_TASKS) || !int_in(first, 1, REC_MAX_TASKS) ||
                json_integer_value(first) + json_integer_value(par) - 1 > json_integer_value(nt))
                return refuse(v, err, errlen, "bad \"components\"[%zu]", i);
        }
    }
    return v;
}

json_t *rec_assignment(const char *tid, const char *value, size_t len, char *err, size_t errlen) {
    json_t *v = load_object(value, len, err, errlen);
    if (!v) return NULL;
    const char *vtid = rec_str(v, "topology_id");
    if (!vtid || strcmp(vtid, tid) != 0) return refuse(v, err, errlen, "\"topology_id\" is not the key's");
    json_t *ws = json_object_get(v, "workers");
    if (!json_is_array(ws) || json_array_size(ws) > REC_MAX_WORKERS) return refuse(v, err, errlen, "bad \"workers\"");
    size_t i;
    json_t *w;
    json_array_foreach(ws, i, w) {
        json_t *tasks = json_object_get(w, "tasks");
        if (!rec_valid_name(rec_str(w, "node")) || !str_len_in(json_object_get(w, "host"), 1, REC_MAX_HOST) ||
            !int_in(json_object_get(w, "port"), 1, 65535) || !json_is_array(tasks) ||
            json_array_size(tasks) > REC_MAX_TASKS)
            return refuse(v, err, errlen, "bad \"workers\"[%zu]", i);
        size_t j;
        json_t *t;
        json_array_foreach(tasks, j, t) {
            if (!int_in(t, 1, REC_MAX_TASKS)) return refuse(v, err, errlen, "bad task in \"workers\"[%zu]", i);
        }
    }
    if (!json_is_boolean(json_object_get(v, "active"))) return refuse(v, err, errlen, "bad \"active\"");
    json_t *ver = json_object_get(v, "version");
    if (ver && !int_in(ver, 0, INT64_MAX)) return refuse(v, err, errlen, "bad \"version\"");
    return v;
}
