/*
 * client: the client commands (see client.h). Each command checks its
 * operands, finds the leading master (--master, else master/leader in
 * etcd), makes one request to the master's API (client_http, following a
 * standby's redirect) and prints the answer: a line or a table, or with
 * --json the master's JSON as it came. Called from main on its thread;
 * blocking is fine in a one-shot process.
 */
#include "client/client.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client/client_http.h"
#include "client/client_leader.h"
#include "package/package.h"
#include "topology/topology.h"

#define EXIT_OK 0
#define EXIT_FAILED 1
#define EXIT_USAGE 2
#define NAME_MAX_LEN 128 /* as the topology loader allows */

static const char *const commands[] = {"submit", "list", "status", "kill", "activate", "deactivate", "loglevel",
                                       NULL};

bool client_is_command(const char *name) {
    for (int i = 0; commands[i]; i++)
        if (strcmp(commands[i], name) == 0) return true;
    return false;
}

typedef struct ctx {
    const client_options *o;
    int timeout_ms;
    char base[CLIENT_URL_MAX]; /* the leader's API, without a trailing '/' */
} ctx;

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("streamd: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return EXIT_USAGE;
}

static bool name_ok(const char *name) {
    size_t len = strlen(name);
    return len > 0 && len <= NAME_MAX_LEN &&
           strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == len;
}

/* Sets c->base from --master or etcd; EXIT_OK or EXIT_FAILED (said why). */
static int find_master(ctx *c) {
    const char *url = c->o->master_url;
    char found[CLIENT_URL_MAX], err[768];
    if (!url) {
        if (client_find_leader(c->o->conf, c->timeout_ms, found, err, sizeof err) != 0) {
            fprintf(stderr, "streamd: %s\n", err);
            return EXIT_FAILED;
        }
        url = found;
    }
    size_t len = strlen(url);
    while (len > 0 && url[len - 1] == '/') len--;
    if (len >= sizeof c->base) {
        fprintf(stderr, "streamd: the master's URL is too long\n");
        return EXIT_FAILED;
    }
    memcpy(c->base, url, len);
    c->base[len] = '\0';
    return EXIT_OK;
}

/* One request to the master; EXIT_OK with *a, or EXIT_FAILED (said why). */
static int call(ctx *c, const char *method, const char *path, const char *const *headers, const void *body,
                size_t len, client_http_answer *a) {
    char url[CLIENT_URL_MAX + 512], err[512];
    snprintf(url, sizeof url, "%s%s", c->base, path);
    if (client_http(method, url, headers, body, len, c->timeout_ms, a, err, sizeof err) != 0) {
        fprintf(stderr, "streamd: cannot reach the master at %s: %s\n", c->base, err);
        return EXIT_FAILED;
    }
    return EXIT_OK;
}

/* The master's JSON answer, or NULL (said why). */
static json_t *parse_answer(const client_http_answer *a) {
    json_t *v = json_loadb(a->body, a->len, 0, NULL);
    if (!json_is_object(v)) {
        fprintf(stderr, "streamd: the master answered %ld with something that is not a JSON object\n", a->status);
        json_decref(v);
        return NULL;
    }
    return v;
}

/* A refusal: 404 for a topology, or the master's {"error"}. EXIT_FAILED. */
static int refused(const client_http_answer *a, const char *topology) {
    if (a->status == 404 && topology) {
        fprintf(stderr, "streamd: no topology named %s\n", topology);
        return EXIT_FAILED;
    }
    json_t *v = json_loadb(a->body, a->len, 0, NULL);
    const char *msg = json_string_value(json_object_get(v, "error"));
    if (msg)
        fprintf(stderr, "streamd: %s\n", msg);
    else
        fprintf(stderr, "streamd: the master answered %ld\n", a->status);
    json_decref(v);
    return EXIT_FAILED;
}

/* --json: the master's answer as it came, one line. */
static void print_raw(const client_http_answer *a) {
    fwrite(a->body, 1, a->len, stdout);
    if (a->len == 0 || a->body[a->len - 1] != '\n') fputc('\n', stdout);
}

static const char *str_or(const json_t *o, const char *key, const char *def) {
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : def;
}

static long long int_or(const json_t *o, const char *key, long long def) {
    json_t *v = json_object_get(o, key);
    return json_is_integer(v) ? (long long)json_integer_value(v) : def;
}

static void format_uptime(long long secs, char *buf, size_t cap) {
    if (secs < 0) snprintf(buf, cap, "-");
    else if (secs < 60) snprintf(buf, cap, "%llds", secs);
    else if (secs < 3600) snprintf(buf, cap, "%lldm%llds", secs / 60, secs % 60);
    else if (secs < 86400) snprintf(buf, cap, "%lldh%lldm", secs / 3600, secs % 3600 / 60);
    else snprintf(buf, cap, "%lldd%lldh", secs / 86400, secs % 86400 / 3600);
}

/* "1,2,3" from a JSON array of task ids. */
static void format_tasks(const json_t *arr, char *buf, size_t cap) {
    size_t n = 0;
    buf[0] = '\0';
    size_t i;
    json_t *t;
    json_array_foreach(arr, i, t) {
        if (!json_is_integer(t)) continue;
        int k = snprintf(buf + n, cap - n, "%s%lld", n ? "," : "", (long long)json_integer_value(t));
        if (k < 0 || (size_t)k >= cap - n) {
            snprintf(buf + (cap > 4 ? cap - 4 : 0), cap > 4 ? 4 : cap, "...");
            return;
        }
        n += (size_t)k;
    }
    if (n == 0) snprintf(buf, cap, "-");
}

/* The answer to a command: a refusal (printed; EXIT_FAILED), --json (printed
 * raw; *out NULL), or the parsed JSON for human output in *out (the
 * caller's). Releases nothing; the caller frees a. */
static int take_answer(ctx *c, const client_http_answer *a, bool ok, const char *name, json_t **out) {
    *out = NULL;
    if (!ok) return refused(a, name);
    if (c->o->json) {
        print_raw(a);
        return EXIT_OK;
    }
    *out = parse_answer(a);
    return *out ? EXIT_OK : EXIT_FAILED;
}

/* ---- commands ---------------------------------------------------------------- */

static int cmd_submit(ctx *c, const char *path) {
    char err[1024];
    /* the same checks as local mode, before anything leaves this machine */
    topology *t = topology_load(path, c->o->conf, NULL, err, sizeof err);
    if (!t) return usage_error("%s", err);
    topology_free(t);
    void *pkg = NULL;
    size_t len = 0;
    char hash[PACKAGE_HASH_HEX];
    if (package_build(path, &pkg, &len, hash, err, sizeof err) != 0) return usage_error("%s", err);
    int rc = find_master(c);
    client_http_answer a = {0};
    if (rc == EXIT_OK) {
        char sha_header[128];
        snprintf(sha_header, sizeof sha_header, "X-Streamd-Package-Sha256: %s", hash);
        const char *headers[] = {"Content-Type: application/octet-stream", sha_header, NULL};
        rc = call(c, "POST", "/api/v1/topologies", headers, pkg, len, &a);
    }
    free(pkg);
    if (rc != EXIT_OK) return rc;
    json_t *v;
    rc = take_answer(c, &a, a.status == 201 || a.status == 200, NULL, &v);
    if (v) printf("submitted %s (id %s, package %.12s)\n", str_or(v, "name", "?"), str_or(v, "id", "?"),
                  str_or(v, "package", hash));
    json_decref(v);
    client_http_answer_free(&a);
    return rc;
}

static int cmd_list(ctx *c) {
    client_http_answer a;
    int rc = find_master(c);
    if (rc == EXIT_OK) rc = call(c, "GET", "/api/v1/topologies", NULL, NULL, 0, &a);
    if (rc != EXIT_OK) return rc;
    json_t *v;
    rc = take_answer(c, &a, a.status == 200, NULL, &v);
    if (v) {
        json_t *list = json_object_get(v, "topologies");
        if (!json_is_array(list)) {
            fprintf(stderr, "streamd: the master's answer has no \"topologies\" list\n");
            rc = EXIT_FAILED;
        } else if (json_array_size(list) == 0) {
            printf("no topologies\n");
        } else {
            printf("%-32s %-9s %7s %s\n", "NAME", "STATUS", "WORKERS", "UPTIME");
            long long now = (long long)time(NULL);
            size_t i;
            json_t *t;
            json_array_foreach(list, i, t) {
                char up[32];
                long long since = int_or(t, "submit_time", -1);
                format_uptime(since < 0 ? -1 : now - since, up, sizeof up);
                printf("%-32s %-9s %7lld %s\n", str_or(t, "name", "?"), str_or(t, "status", "?"),
                       int_or(t, "workers", 0), up);
            }
        }
        json_decref(v);
    }
    client_http_answer_free(&a);
    return rc;
}

static void print_status(const json_t *v) {
    printf("%s (id %s): %s, package %.12s\n", str_or(v, "name", "?"), str_or(v, "id", "?"), str_or(v, "status", "?"),
           str_or(v, "package", "?"));
    char tasks[256];
    size_t i;
    json_t *x;
    const json_t *comps = json_object_get(v, "components");
    if (json_array_size(comps) > 0) {
        printf("\n%-24s %-6s %11s %12s %12s %12s  %s\n", "COMPONENT", "KIND", "PARALLELISM", "EMITTED", "ACKED",
               "FAILED", "TASKS");
        json_array_foreach(comps, i, x) {
            format_tasks(json_object_get(x, "tasks"), tasks, sizeof tasks);
            printf("%-24s %-6s %11lld %12lld %12lld %12lld  %s\n", str_or(x, "id", "?"), str_or(x, "kind", "?"),
                   int_or(x, "parallelism", 0), int_or(x, "emitted", 0), int_or(x, "acked", 0),
                   int_or(x, "failed", 0), tasks);
            if (int_or(x, "chained_tasks", 0) > 0)
                printf("  chained into %s: %lld of %lld task(s) run in its tasks' threads\n", str_or(x, "chained_into", "?"),
                       int_or(x, "chained_tasks", 0), int_or(x, "parallelism", 0));
        }
    }
    const json_t *workers = json_object_get(v, "workers");
    if (json_array_size(workers) > 0) {
        printf("\n%-24s %-28s %-10s  %s\n", "NODE", "WORKER", "STATE", "TASKS");
        json_array_foreach(workers, i, x) {
            char where[300];
            snprintf(where, sizeof where, "%s:%lld", str_or(x, "host", "?"), int_or(x, "port", 0));
            format_tasks(json_object_get(x, "tasks"), tasks, sizeof tasks);
            printf("%-24s %-28s %-10s  %s\n", str_or(x, "node", "?"), where, str_or(x, "state", "?"), tasks);
            if (int_or(x, "restarts", 0) > 0)
                printf("  restarts %lld, last exit: %s\n", int_or(x, "restarts", 0), str_or(x, "last_exit", "?"));
            size_t k;
            const json_t *e;
            json_array_foreach(json_object_get(x, "errors"), k, e) {
                if (json_is_string(e)) printf("  error: %s\n", json_string_value(e));
            }
        }
    }
}

static int cmd_status(ctx *c, const char *name) {
    char path[256];
    snprintf(path, sizeof path, "/api/v1/topologies/%s", name);
    client_http_answer a;
    int rc = find_master(c);
    if (rc == EXIT_OK) rc = call(c, "GET", path, NULL, NULL, 0, &a);
    if (rc != EXIT_OK) return rc;
    json_t *v;
    rc = take_answer(c, &a, a.status == 200, name, &v);
    if (v) print_status(v);
    json_decref(v);
    client_http_answer_free(&a);
    return rc;
}

/* kill, activate, deactivate: POST /api/v1/topologies/NAME/<verb>. */
static int cmd_change(ctx *c, const char *verb, const char *name) {
    char path[320];
    int n = snprintf(path, sizeof path, "/api/v1/topologies/%s/%s", name, verb);
    int wait = -1;
    if (strcmp(verb, "kill") == 0) {
        /* Storm's default: the topology's message timeout. Given here (--wait, or
         * the key set in --config / -c) it is sent; otherwise the master uses
         * the topology's own. */
        if (c->o->wait_secs >= 0) wait = c->o->wait_secs;
        else if (conf_is_set(c->o->conf, "topology.message.timeout.secs"))
            wait = (int)conf_int(c->o->conf, "topology.message.timeout.secs");
        if (wait >= 0) snprintf(path + n, sizeof path - (size_t)n, "?wait=%d", wait);
    } else if (strcmp(verb, "loglevel") == 0) {
        snprintf(path + n, sizeof path - (size_t)n, "?level=%s", c->o->args[1]); /* checked: a plain word */
    }
    client_http_answer a;
    int rc = find_master(c);
    if (rc == EXIT_OK) rc = call(c, "POST", path, NULL, "", 0, &a);
    if (rc != EXIT_OK) return rc;
    json_t *v;
    rc = take_answer(c, &a, a.status == 200, name, &v);
    if (v && strcmp(verb, "loglevel") == 0)
        printf("%s: log level %s\n", str_or(v, "name", name), str_or(v, "log_level", "default"));
    else if (v && strcmp(verb, "kill") == 0 && wait >= 0)
        printf("%s: %s (workers stop in %d s)\n", str_or(v, "name", name), str_or(v, "status", "?"), wait);
    else if (v)
        printf("%s: %s\n", str_or(v, "name", name), str_or(v, "status", "?"));
    json_decref(v);
    client_http_answer_free(&a);
    return rc;
}

int client_run(const client_options *o) {
    const char *cmd = o->command;
    if (!client_is_command(cmd)) return usage_error("unknown command '%s'", cmd);
    int want = strcmp(cmd, "list") == 0 ? 0 : strcmp(cmd, "loglevel") == 0 ? 2 : 1;
    const char *what = strcmp(cmd, "submit") == 0 ? "TOPOLOGY.yaml" : "NAME";
    if (want == 2 && o->nargs != 2) return usage_error("loglevel needs NAME and LEVEL");
    if (o->nargs != want)
        return want ? usage_error("%s needs exactly one %s", cmd, what) : usage_error("%s takes no operands", cmd);
    if (want == 2 && strcmp(o->args[1], "debug") != 0 && strcmp(o->args[1], "info") != 0 &&
        strcmp(o->args[1], "warn") != 0 && strcmp(o->args[1], "error") != 0 && strcmp(o->args[1], "default") != 0)
        return usage_error("loglevel: LEVEL is debug, info, warn, error or default, not '%s'", o->args[1]);
    if (o->wait_secs >= 0 && strcmp(cmd, "kill") != 0) return usage_error("--wait applies to kill only");
    if (want && strcmp(cmd, "submit") != 0 && !name_ok(o->args[0]))
        return usage_error("'%s' is not a topology name (letters, digits, '.', '_' and '-')", o->args[0]);
    if (o->master_url && strncmp(o->master_url, "http://", 7) != 0 && strncmp(o->master_url, "https://", 8) != 0)
        return usage_error("--master: expected an http:// or https:// URL, got '%s'", o->master_url);
    ctx c = {.o = o, .timeout_ms = (int)conf_int(o->conf, "client.timeout.secs") * 1000};
    if (c.timeout_ms <= 0) c.timeout_ms = 10000;
    if (strcmp(cmd, "submit") == 0) return cmd_submit(&c, o->args[0]);
    if (strcmp(cmd, "list") == 0) return cmd_list(&c);
    if (strcmp(cmd, "status") == 0) return cmd_status(&c, o->args[0]);
    return cmd_change(&c, cmd, o->args[0]);
}
