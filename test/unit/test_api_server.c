/* api_server: requests reach the handler on the loop thread, bodies arrive
 * intact, limits hold, answers may come later, redirects, stop. The loop
 * runs on the test's thread; libcurl calls run on a second thread. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include "master/api/api_server.h"

typedef enum { MODE_ECHO, MODE_DEFER, MODE_REDIRECT, MODE_HOLD } mode;

typedef struct fixture {
    uv_loop_t loop;
    api_server *srv;
    mode mode;
    int calls;
    char method[16], path[256], q_wait[32], q_flag[32], header[64];
    bool has_flag;
    unsigned char *body; /* copy of the last body */
    size_t body_len;
    api_request *held[8];
    int nheld;
    uv_timer_t defer_timer;
    api_request *deferred;
} fixture;

/* ---- the handler (loop thread) ---- */

static void on_defer(uv_timer_t *t) {
    fixture *f = t->data;
    api_respond_json(f->deferred, 202, json_pack("{s:s}", "later", "yes"));
    f->deferred = NULL;
}

static void handler(void *arg, api_request *r) {
    fixture *f = arg;
    f->calls++;
    snprintf(f->method, sizeof f->method, "%s", api_method(r));
    snprintf(f->path, sizeof f->path, "%s", api_path(r));
    const char *w = api_query(r, "wait"), *fl = api_query(r, "flag"), *h = api_header(r, "x-test-header");
    snprintf(f->q_wait, sizeof f->q_wait, "%s", w ? w : "(none)");
    f->has_flag = fl != NULL;
    snprintf(f->q_flag, sizeof f->q_flag, "%s", fl ? fl : "");
    snprintf(f->header, sizeof f->header, "%s", h ? h : "(none)");
    size_t len;
    const void *body = api_body(r, &len);
    free(f->body);
    f->body = malloc(len ? len : 1);
    assert_non_null(f->body);
    memcpy(f->body, body, len);
    f->body_len = len;
    assert_non_null(api_peer(r));
    switch (f->mode) {
    case MODE_ECHO: api_respond(r, 200, "application/octet-stream", body, len); break;
    case MODE_DEFER:
        f->deferred = r;
        uv_timer_start(&f->defer_timer, on_defer, 50, 0);
        break;
    case MODE_REDIRECT: api_redirect(r, "http://leader.example:1234/"); break;
    case MODE_HOLD:
        assert_true(f->nheld < 8);
        f->held[f->nheld++] = r;
        break;
    }
}

/* ---- HTTP calls (client thread) ---- */

typedef struct call {
    const char *method, *url;
    const unsigned char *body;
    size_t len;
    bool chunked;
    long timeout_ms;
    /* results */
    CURLcode cc;
    long status;
    char *resp;
    size_t resp_len;
    char location[512];
    atomic_bool done;
    size_t sent;
    pthread_t th;
} call;

static size_t on_write(char *data, size_t size, size_t n, void *arg) {
    call *c = arg;
    char *g = realloc(c->resp, c->resp_len + size * n + 1);
    if (!g) return 0;
    c->resp = g;
    memcpy(c->resp + c->resp_len, data, size * n);
    c->resp_len += size * n;
    c->resp[c->resp_len] = '\0';
    return size * n;
}

static size_t on_read(char *buf, size_t size, size_t n, void *arg) {
    call *c = arg;
    size_t k = size * n < c->len - c->sent ? size * n : c->len - c->sent;
    memcpy(buf, c->body + c->sent, k);
    c->sent += k;
    return k;
}

static void *call_thread(void *arg) {
    call *c = arg;
    CURL *e = curl_easy_init();
    struct curl_slist *hdrs = curl_slist_append(NULL, "X-Test-Header: hello");
    if (c->chunked) hdrs = curl_slist_append(hdrs, "Transfer-Encoding: chunked");
    curl_easy_setopt(e, CURLOPT_URL, c->url);
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, c->method);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, c->timeout_ms ? c->timeout_ms : 10000L);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    if (c->body) {
        curl_easy_setopt(e, CURLOPT_POST, 1L);
        if (c->chunked) {
            curl_easy_setopt(e, CURLOPT_READFUNCTION, on_read);
            curl_easy_setopt(e, CURLOPT_READDATA, c);
        } else {
            curl_easy_setopt(e, CURLOPT_POSTFIELDS, c->body);
            curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)c->len);
        }
    }
    c->cc = curl_easy_perform(e);
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &c->status);
    char *loc = NULL;
    if (curl_easy_getinfo(e, CURLINFO_REDIRECT_URL, &loc) == CURLE_OK && loc)
        snprintf(c->location, sizeof c->location, "%s", loc);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(e);
    atomic_store(&c->done, true);
    return NULL;
}

static void call_start(call *c) {
    atomic_init(&c->done, false);
    assert_int_equal(pthread_create(&c->th, NULL, call_thread, c), 0);
}

static void on_tick(uv_timer_t *t) { (void)t; }

/* Runs the loop until cond(arg) holds or ms pass; returns whether it held. */
static bool run_until(fixture *f, bool (*cond)(void *), void *arg, uint64_t ms) {
    uv_timer_t tick; /* wakes the loop to look at conditions set by other threads */
    uv_timer_init(&f->loop, &tick);
    uv_timer_start(&tick, on_tick, 5, 5);
    uv_update_time(&f->loop);
    uint64_t end = uv_now(&f->loop) + ms;
    bool ok;
    while (!(ok = cond(arg)) && uv_now(&f->loop) < end) {
        uv_run(&f->loop, UV_RUN_ONCE);
        uv_update_time(&f->loop);
    }
    uv_close((uv_handle_t *)&tick, NULL);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    return ok;
}

static bool call_done(void *arg) { return atomic_load(&((call *)arg)->done); }

/* Runs c to completion while the loop serves it. */
static void call_run(fixture *f, call *c) {
    call_start(c);
    assert_true(run_until(f, call_done, c, 15000));
    pthread_join(c->th, NULL);
}

static void call_free(call *c) { free(c->resp); }

/* ---- fixture ---- */

static void start(fixture *f, size_t max_body, unsigned max_conn, unsigned timeout) {
    api_options o = {.listen = "127.0.0.1:0", .max_body_bytes = max_body, .max_connections = max_conn,
                     .timeout_secs = timeout};
    int err = 1;
    f->srv = api_server_start(&f->loop, &o, handler, f, &err);
    assert_non_null(f->srv);
    assert_int_equal(err, 0);
    assert_true(api_server_port(f->srv) > 0);
}

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    uv_timer_init(&f->loop, &f->defer_timer);
    f->defer_timer.data = f;
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    if (f->srv) api_server_stop(f->srv);
    uv_close((uv_handle_t *)&f->defer_timer, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT); /* the server's handles close */
    assert_int_equal(uv_loop_close(&f->loop), 0);
    free(f->body);
    free(f);
    return 0;
}

static void url(fixture *f, char *buf, size_t cap, const char *path) {
    snprintf(buf, cap, "http://127.0.0.1:%d%s", api_server_port(f->srv), path);
}

/* ---- tests ---- */

static void test_get_reaches_handler(void **state) {
    fixture *f = *state;
    start(f, 1024, 8, 10);
    char u[256];
    url(f, u, sizeof u, "/api/v1/topologies/wc?wait=5&flag");
    call c = {.method = "GET", .url = u};
    call_run(f, &c);
    assert_int_equal(c.cc, CURLE_OK);
    assert_int_equal(c.status, 200);
    assert_int_equal(f->calls, 1);
    assert_string_equal(f->method, "GET");
    assert_string_equal(f->path, "/api/v1/topologies/wc");
    assert_string_equal(f->q_wait, "5");
    assert_true(f->has_flag);
    assert_string_equal(f->q_flag, "");
    assert_string_equal(f->header, "hello");
    assert_int_equal(f->body_len, 0);
    call_free(&c);
    /* a second request on a new connection, another method */
    url(f, u, sizeof u, "/api/v1/topologies/wc/kill");
    call d = {.method = "DELETE", .url = u};
    call_run(f, &d);
    assert_int_equal(d.status, 200);
    assert_int_equal(f->calls, 2);
    assert_string_equal(f->method, "DELETE");
    assert_string_equal(f->q_wait, "(none)");
    assert_false(f->has_flag);
    call_free(&d);
}

static unsigned char *pattern(size_t n) {
    unsigned char *b = malloc(n);
    assert_non_null(b);
    uint32_t x = 12345;
    for (size_t i = 0; i < n; i++) {
        x = x * 1103515245u + 12345u;
        b[i] = (unsigned char)(x >> 16); /* every byte value, NULs included */
    }
    return b;
}

static void test_post_binary_body(void **state) {
    fixture *f = *state;
    start(f, 2 * 1024 * 1024, 8, 10);
    size_t n = 1024 * 1024;
    unsigned char *b = pattern(n);
    char u[256];
    url(f, u, sizeof u, "/api/v1/topologies");
    for (int chunked = 0; chunked < 2; chunked++) {
        call c = {.method = "POST", .url = u, .body = b, .len = n, .chunked = chunked};
        call_run(f, &c);
        assert_int_equal(c.cc, CURLE_OK);
        assert_int_equal(c.status, 200);
        assert_int_equal(f->calls, chunked + 1);
        assert_string_equal(f->method, "POST");
        assert_int_equal(f->body_len, n);
        assert_memory_equal(f->body, b, n);
        assert_int_equal(c.resp_len, n); /* echoed back */
        assert_memory_equal(c.resp, b, n);
        call_free(&c);
    }
    free(b);
}

static void test_body_too_large(void **state) {
    fixture *f = *state;
    start(f, 1024, 8, 10);
    size_t n = 64 * 1024;
    unsigned char *b = pattern(n);
    char u[256];
    url(f, u, sizeof u, "/api/v1/topologies");
    for (int chunked = 0; chunked < 2; chunked++) { /* by Content-Length, then while streaming */
        call c = {.method = "POST", .url = u, .body = b, .len = n, .chunked = chunked};
        call_run(f, &c);
        assert_int_equal(c.status, 413);
        assert_non_null(c.resp);
        assert_non_null(strstr(c.resp, "\"error\""));
        call_free(&c);
    }
    assert_int_equal(f->calls, 0);
    /* exactly at the limit is fine */
    call ok = {.method = "POST", .url = u, .body = b, .len = 1024};
    call_run(f, &ok);
    assert_int_equal(ok.status, 200);
    assert_int_equal(f->calls, 1);
    assert_int_equal(f->body_len, 1024);
    call_free(&ok);
    free(b);
}

typedef struct raw {
    int port;
    const char *send;
    char reply[512];
    atomic_bool done;
} raw;

static int raw_connect(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

static void *raw_thread(void *arg) {
    raw *r = arg;
    int fd = raw_connect(r->port);
    size_t len = strlen(r->send);
    if (write(fd, r->send, len) == (ssize_t)len) {
        size_t got = 0;
        ssize_t k;
        while (got < sizeof r->reply - 1 && (k = read(fd, r->reply + got, sizeof r->reply - 1 - got)) > 0)
            got += (size_t)k;
        r->reply[got] = '\0';
    }
    close(fd);
    atomic_store(&r->done, true);
    return NULL;
}

static bool raw_done(void *arg) { return atomic_load(&((raw *)arg)->done); }

static void test_malformed_http(void **state) {
    fixture *f = *state;
    start(f, 1024, 8, 10);
    const char *bad[] = {
        "GET /api/v1/x HTTP/1.1\r\nHost: a\r\nthis line has no colon\r\n\r\n",
        "GET /api/v1/x HTTP/1.1\r\n\r\n", /* HTTP/1.1 without Host */
        "POST /api/v1/x HTTP/1.1\r\nHost: a\r\nContent-Length: banana\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        raw r = {.port = api_server_port(f->srv), .send = bad[i]};
        atomic_init(&r.done, false);
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, raw_thread, &r), 0);
        assert_true(run_until(f, raw_done, &r, 10000));
        pthread_join(th, NULL);
        assert_true(strncmp(r.reply, "HTTP/1.1 400", 12) == 0);
    }
    /* not HTTP at all: closed without an answer, or a 4xx */
    raw g = {.port = api_server_port(f->srv), .send = "\x01\x02 not http\r\n\r\n"};
    atomic_init(&g.done, false);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, raw_thread, &g), 0);
    assert_true(run_until(f, raw_done, &g, 10000));
    pthread_join(th, NULL);
    assert_true(g.reply[0] == '\0' || strncmp(g.reply, "HTTP/1.1 4", 10) == 0);
    assert_int_equal(f->calls, 0);
    char u[256];
    url(f, u, sizeof u, "/api/v1/cluster");
    call c = {.method = "GET", .url = u};
    call_run(f, &c);
    assert_int_equal(c.status, 200);
    assert_int_equal(f->calls, 1);
    call_free(&c);
}

static void test_deferred_answer(void **state) {
    fixture *f = *state;
    start(f, 1024, 8, 10);
    f->mode = MODE_DEFER;
    char u[256];
    url(f, u, sizeof u, "/api/v1/topologies");
    uv_update_time(&f->loop);
    uint64_t t0 = uv_now(&f->loop);
    call c = {.method = "GET", .url = u};
    call_run(f, &c);
    assert_true(uv_now(&f->loop) - t0 >= 50);
    assert_int_equal(c.status, 202);
    assert_string_equal(c.resp, "{\"later\":\"yes\"}");
    assert_null(f->deferred);
    call_free(&c);
}

static void test_redirect(void **state) {
    fixture *f = *state;
    start(f, 1024, 8, 10);
    f->mode = MODE_REDIRECT;
    char u[256];
    url(f, u, sizeof u, "/api/v1/topologies/wc/kill?wait=5&x=a%20b");
    call c = {.method = "POST", .url = u, .body = (const unsigned char *)"", .len = 0};
    call_run(f, &c);
    assert_int_equal(c.status, 307);
    assert_string_equal(c.location, "http://leader.example:1234/api/v1/topologies/wc/kill?wait=5&x=a%20b");
    assert_non_null(strstr(c.resp, "\"leader\":\"http://leader.example:1234\""));
    call_free(&c);
}

typedef struct held_conns {
    fixture *f;
    int want;
} held_conns;

static bool handler_calls(void *arg) {
    held_conns *h = arg;
    return h->f->calls >= h->want;
}

static void test_connection_limit(void **state) {
    fixture *f = *state;
    start(f, 1024, 2, 10);
    int port = api_server_port(f->srv);
    /* two connections in use: requests begun but not finished */
    int a = raw_connect(port), b = raw_connect(port);
    const char *part = "GET /api/v1/x HTTP/1.1\r\nHost: a\r\n";
    assert_int_equal(write(a, part, strlen(part)), (ssize_t)strlen(part));
    assert_int_equal(write(b, part, strlen(part)), (ssize_t)strlen(part));
    /* let the server take both before the third arrives */
    uv_update_time(&f->loop);
    held_conns never = {f, 1000};
    run_until(f, handler_calls, &never, 200);
    char u[256];
    url(f, u, sizeof u, "/api/v1/cluster");
    call c = {.method = "GET", .url = u, .timeout_ms = 1000};
    call_run(f, &c);
    assert_int_not_equal(c.cc, CURLE_OK); /* refused, closed or left waiting */
    assert_int_equal(f->calls, 0);
    call_free(&c);
    close(a);
    /* one slot free again: served (the refused request may be served too,
     * when the kernel had queued it rather than the server closing it) */
    call d = {.method = "GET", .url = u};
    call_run(f, &d);
    assert_int_equal(d.cc, CURLE_OK);
    assert_int_equal(d.status, 200);
    assert_true(f->calls >= 1);
    call_free(&d);
    close(b);
}

static void test_deadline_then_late_answer(void **state) {
    fixture *f = *state;
    start(f, 1024, 8, 1); /* the handler has 1 s */
    f->mode = MODE_HOLD;
    char u[256];
    url(f, u, sizeof u, "/api/v1/topologies");
    call c = {.method = "GET", .url = u};
    call_run(f, &c);
    assert_int_equal(c.status, 503);
    assert_int_equal(f->nheld, 1);
    /* the late answer is dropped, and releases the request */
    api_respond_error(f->held[0], 500, "too late");
    f->nheld = 0;
    call_free(&c);
    f->mode = MODE_ECHO;
    call d = {.method = "GET", .url = u};
    call_run(f, &d);
    assert_int_equal(d.status, 200);
    call_free(&d);
}

static void test_stop_with_pending(void **state) {
    fixture *f = *state;
    start(f, 1024, 8, 10);
    f->mode = MODE_HOLD;
    char u[256];
    url(f, u, sizeof u, "/api/v1/topologies");
    call c = {.method = "GET", .url = u};
    call_start(&c);
    held_conns one = {f, 1};
    assert_true(run_until(f, handler_calls, &one, 10000));
    api_server_stop(f->srv); /* answers the held request */
    f->srv = NULL;
    f->nheld = 0;
    pthread_join(c.th, NULL);
    assert_int_equal(c.cc, CURLE_OK);
    assert_int_equal(c.status, 503);
    assert_non_null(strstr(c.resp, "\"error\""));
    call_free(&c);
}

static void test_start_errors(void **state) {
    fixture *f = *state;
    start(f, 1024, 8, 10);
    char listen[64];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", api_server_port(f->srv));
    api_options o = {.listen = listen, .max_body_bytes = 1024, .max_connections = 4, .timeout_secs = 5};
    int err = 0;
    assert_null(api_server_start(&f->loop, &o, handler, f, &err));
    assert_int_equal(err, -EADDRINUSE);
    const char *bad[] = {"127.0.0.1", "127.0.0.1:", "127.0.0.1:99999", "127.0.0.1:80x", "[::1:80", NULL};
    for (int i = 0; bad[i]; i++) {
        o.listen = bad[i];
        err = 0;
        assert_null(api_server_start(&f->loop, &o, handler, f, &err));
        assert_int_equal(err, -EINVAL);
    }
    o.listen = "[::1]:0"; /* IPv6 loopback, when the machine has it */
    api_server *s6 = api_server_start(&f->loop, &o, handler, f, &err);
    if (s6) {
        assert_true(api_server_port(s6) > 0);
        api_server_stop(s6);
    }
}

static void test_split_path(void **state) {
    (void)state;
    char buf[64];
    char *segs[4];
    assert_int_equal(api_split_path("/api/v1/topologies/wc/kill", buf, sizeof buf, segs, 4), 3);
    assert_string_equal(segs[0], "topologies");
    assert_string_equal(segs[1], "wc");
    assert_string_equal(segs[2], "kill");
    assert_int_equal(api_split_path("/api/v1/topologies/", buf, sizeof buf, segs, 4), 1);
    assert_int_equal(api_split_path("/api/v1", buf, sizeof buf, segs, 4), 0);
    assert_int_equal(api_split_path("/api/v1/", buf, sizeof buf, segs, 4), 0);
    assert_int_equal(api_split_path("/api/v2/x", buf, sizeof buf, segs, 4), -1);
    assert_int_equal(api_split_path("/api/v1x", buf, sizeof buf, segs, 4), -1);
    assert_int_equal(api_split_path("/other", buf, sizeof buf, segs, 4), -1);
    assert_int_equal(api_split_path("/api/v1/a/b/c/d/e", buf, sizeof buf, segs, 4), -1); /* too many */
    assert_int_equal(api_split_path("/api/v1/a", buf, 2, segs, 4), -1);                  /* too long */
}

int main(void) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_get_reaches_handler, setup, teardown),
        cmocka_unit_test_setup_teardown(test_post_binary_body, setup, teardown),
        cmocka_unit_test_setup_teardown(test_body_too_large, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_http, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deferred_answer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_redirect, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connection_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deadline_then_late_answer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_with_pending, setup, teardown),
        cmocka_unit_test_setup_teardown(test_start_errors, setup, teardown),
        cmocka_unit_test(test_split_path),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
