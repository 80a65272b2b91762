/*
 * node_report: see node_report.h.
 * Threads: the loop thread owns the reporter; one libuv thread-pool job at a
 * time owns a `post` (URL and body, both copied) while it sends it, and
 * hands it back through the after-work callback on the loop.
 */
#include "node/node_report.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "proto/task_columns.h"

#define REPORT_TIMEOUT_MS 2000

typedef struct post {
    uv_work_t work;
    struct node_report *owner;
    char *url;
    char *body;
    long status; /* HTTP status, 0 if none */
    char error[CURL_ERROR_SIZE];
} post;

struct node_report {
    uv_loop_t *loop;
    store *st;
    node *nd;
    char *node_id;
    char leader_key[512];
    uv_timer_t timer;
    bool looking;  /* a leader lookup is in flight */
    bool posting;  /* a POST is on the thread pool */
    bool stopping;
    bool timer_closed;
    bool warned;   /* one warning per failure streak */
    bool warned_size; /* one warning per streak of oversized reports */
    size_t max_body;  /* master.api.max.body.bytes: larger reports go without counters */
};

static void maybe_free(node_report *r) {
    if (r->stopping && !r->looking && !r->posting && r->timer_closed) {
        free(r->node_id);
        free(r);
    }
}

static size_t discard(char *p, size_t size, size_t n, void *arg) {
    (void)p;
    (void)arg;
    return size * n;
}

/* On a pool thread: a blocking POST with a timeout. */
static void do_post(uv_work_t *w) {
    post *p = w->data;
    CURL *c = curl_easy_init();
    if (!c) {
        snprintf(p->error, sizeof p->error, "curl_easy_init failed");
        return;
    }
    struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(c, CURLOPT_URL, p->url);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, p->body);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)REPORT_TIMEOUT_MS);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, p->error);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    if (curl_easy_perform(c) == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &p->status);
    curl_slist_free_all(hdr);
    curl_easy_cleanup(c);
}

static void after_post(uv_work_t *w, int status) {
    post *p = w->data;
    node_report *r = p->owner;
    r->posting = false;
    if (status == 0 && p->status >= 200 && p->status < 300) {
        r->warned = false;
    } else if (!r->warned && !r->stopping) {
        r->warned = true;
        log_warn("cannot report to the leader at %s: %s", p->url,
                 p->status ? "the leader refused the report" : p->error[0] ? p->error : "cancelled");
    }
    free(p->url);
    free(p->body);
    free(p);
    maybe_free(r);
}

/* The workers' entries for the leader: each heartbeat cut down to the task
 * columns the leader keeps (TCOL_REPORT_MASK); NULL if out of memory. */
static json_t *report_workers(node_report *r) {
    json_t *ws = node_workers_json(r->nd);
    size_t i;
    json_t *e;
    json_array_foreach(ws, i, e) {
        json_t *hb = json_object_get(e, "heartbeat");
        if (!hb) continue;
        if (!json_object_get(hb, "task_columns")) { /* not a heartbeat this leader reads */
            json_object_del(e, "heartbeat");
            continue;
        }
        json_t *cols = tcol_subset(json_object_get(hb, "task_columns"), TCOL_REPORT_MASK);
        json_t *cut = cols ? json_pack("{s:o}", "task_columns", cols) : NULL;
        if (!cut || json_object_set_new(e, "heartbeat", cut) != 0) {
            json_decref(ws);
            return NULL;
        }
    }
    return ws;
}

/* The report's body, at most r->max_body bytes: a report that would be
 * larger (many large topologies on one node) goes without the workers'
 * counters, so the leader still learns their states. NULL if out of memory. */
static char *report_body(node_report *r) {
    json_t *body = json_pack("{s:s, s:o}", "node", r->node_id, "workers", report_workers(r));
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    if (text && strlen(text) > r->max_body) {
        if (!r->warned_size)
            log_warn("the report to the leader would be %zu bytes, over master.api.max.body.bytes (%zu): "
                     "sent without the workers' counters", strlen(text), r->max_body);
        r->warned_size = true;
        free(text);
        text = NULL;
        size_t i;
        json_t *e;
        json_array_foreach(json_object_get(body, "workers"), i, e) json_object_del(e, "heartbeat");
        text = json_dumps(body, JSON_COMPACT);
    } else if (text) {
        r->warned_size = false;
    }
    json_decref(body);
    return text;
}

static void on_leader(void *arg, const store_result *res) {
    node_report *r = arg;
    r->looking = false;
    if (r->stopping || res->err != 0 || res->nkvs != 1) return maybe_free(r);
    json_t *leader = json_loadb(res->kvs[0].value, res->kvs[0].value_len, 0, NULL);
    const char *api = json_string_value(json_object_get(leader, "api"));
    /* from the store: only an http(s) URL of sane length is used */
    if (!api || strlen(api) > 256 || (strncmp(api, "http://", 7) != 0 && strncmp(api, "https://", 8) != 0)) {
        json_decref(leader);
        return;
    }
    post *p = calloc(1, sizeof *p);
    char *url = malloc(strlen(api) + strlen(r->node_id) + 32);
    if (p && url) {
        sprintf(url, "%s/api/v1/nodes/%s/report", api, r->node_id);
        p->url = url;
        p->body = report_body(r);
        p->owner = r;
        p->work.data = p;
        url = NULL;
        if (p->body && uv_queue_work(r->loop, &p->work, do_post, after_post) == 0) {
            r->posting = true;
            p = NULL;
        }
    }
    if (p) {
        free(p->url);
        free(p->body);
        free(p);
    }
    free(url);
    json_decref(leader);
}

static void on_tick(uv_timer_t *t) {
    node_report *r = t->data;
    if (r->looking || r->posting || !node_registered(r->nd)) return;
    if (store_get(r->st, r->leader_key, on_leader, r) == 0) r->looking = true;
}

node_report *node_report_start(uv_loop_t *loop, store *st, node *nd, const conf *c, const char *node_id) {
    node_report *r = calloc(1, sizeof *r);
    if (!r || !(r->node_id = strdup(node_id))) {
        free(r);
        log_error("out of memory");
        return NULL;
    }
    r->loop = loop;
    r->st = st;
    r->nd = nd;
    if (store_key(r->leader_key, sizeof r->leader_key, conf_str_or(c, "cluster.name", "default"), "master/leader") !=
        0) {
        log_error("cluster.name too long");
        free(r->node_id);
        free(r);
        return NULL;
    }
    r->max_body = (size_t)conf_int(c, "master.api.max.body.bytes");
    int64_t secs = conf_int(c, "node.report.interval.secs");
    if (secs < 1) secs = 1;
    uv_timer_init(loop, &r->timer);
    r->timer.data = r;
    uv_timer_start(&r->timer, on_tick, (uint64_t)secs * 1000, (uint64_t)secs * 1000);
    return r;
}

static void on_timer_closed(uv_handle_t *h) {
    node_report *r = h->data;
    r->timer_closed = true;
    maybe_free(r);
}

void node_report_stop(node_report *r) {
    if (!r) return;
    r->stopping = true;
    store_cancel(r->st, r); /* a leader lookup in flight never answers now */
    r->looking = false;
    uv_close((uv_handle_t *)&r->timer, on_timer_closed);
}
