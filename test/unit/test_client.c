/* client: operand checks, and each command against an HTTP server on a
 * real socket that answers as the master's API does (api_server on its own
 * loop thread), a standby's redirect, an unreachable master; the leader
 * found in a real etcd (started here on a port in 24200-24299), and an
 * unreachable etcd reported within client.timeout.secs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "client/client.h"
#include "client/client_http.h"
#include "master/api/api_server.h"
#include "package/package.h"
#include "test_data.h"

static int etcd_client_port, etcd_peer_port;
static int nothing_port; /* reserved, and nothing listens there */

/* A port of 24200-24299 that binds now and that no other test process was
 * given: an abstract unix socket named after it stays bound until exit (the
 * naming test_etcd uses, so test processes of either kind never share one). */
static int pick_port(void) {
    for (int port = 24200; port < 24300; port++) {
        int u = socket(AF_UNIX, SOCK_STREAM, 0);
        assert_true(u >= 0);
        struct sockaddr_un a = {.sun_family = AF_UNIX};
        int n = snprintf(a.sun_path + 1, sizeof a.sun_path - 1, "streamd-test-port-%d", port);
        if (bind(u, (struct sockaddr *)&a, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n)) != 0) {
            close(u);
            continue; /* another test's */
        }
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        assert_true(fd >= 0);
        struct sockaddr_in in = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        int rc = bind(fd, (struct sockaddr *)&in, sizeof in);
        close(fd);
        if (rc == 0) return port; /* u stays open: the reservation */
    }
    fail_msg("no free port in 24200-24299");
    return -1;
}

/* ---- a server answering as the master ---- */

typedef struct fake {
    uv_loop_t loop;
    uv_async_t stop;
    api_server *leader, *standby;
    pthread_t th;
    char base[128], standby_base[128];
    pthread_mutex_t mu; /* the record below: written on the loop thread, read by the test */
    int calls, standby_calls;
    char method[16], path[256], wait[32], sha[80], body_hash[PACKAGE_HASH_HEX];
    char *topology_text;
    void *body; /* the last request's body */
    size_t body_len;
} fake;

static fake F;

static void answer(api_request *r, int status, const char *json) {
    api_respond(r, status, "application/json", json, strlen(json));
}

static void on_leader(void *arg, api_request *r) {
    fake *f = arg;
    const char *path = api_path(r), *method = api_method(r), *w = api_query(r, "wait"),
               *sha = api_header(r, "X-Streamd-Package-Sha256");
    size_t len;
    const void *body = api_body(r, &len);
    pthread_mutex_lock(&f->mu);
    f->calls++;
    snprintf(f->method, sizeof f->method, "%s", method);
    snprintf(f->path, sizeof f->path, "%s", path);
    snprintf(f->wait, sizeof f->wait, "%s", w ? w : "(none)");
    snprintf(f->sha, sizeof f->sha, "%s", sha ? sha : "(none)");
    package_hash(body, len, f->body_hash);
    free(f->topology_text);
    char err[256];
    f->topology_text = len ? package_topology_text(body, len, err, sizeof err) : NULL;
    free(f->body);
    f->body = malloc(len ? len : 1);
    if (f->body) memcpy(f->body, body, len);
    f->body_len = len;
    pthread_mutex_unlock(&f->mu);
    char json[1024];
    if (strcmp(method, "POST") == 0 && strcmp(path, "/api/v1/topologies") == 0) {
        char hash[PACKAGE_HASH_HEX];
        package_hash(body, len, hash);
        if (!sha || strcmp(sha, hash) != 0) {
            api_respond_error(r, 400, "package hash mismatch");
            return;
        }
        snprintf(json, sizeof json, "{\"name\":\"wc-test\",\"id\":\"wc-test-1-1700000000\",\"package\":\"%s\"}", hash);
        answer(r, 201, json);
    } else if (strcmp(path, "/api/v1/topologies") == 0) {
        snprintf(json, sizeof json,
                 "{\"topologies\":[{\"name\":\"wc-test\",\"id\":\"wc-test-1\",\"status\":\"active\",\"workers\":2,"
                 "\"submit_time\":%lld}]}",
                 (long long)time(NULL) - 3700);
        answer(r, 200, json);
    } else if (strcmp(path, "/api/v1/topologies/wc-test") == 0) {
        answer(r, 200,
               "{\"name\":\"wc-test\",\"id\":\"wc-test-1\",\"status\":\"active\",\"package\":"
               "\"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\","
               "\"workers\":[{\"node\":\"n1\",\"host\":\"10.0.0.1\",\"port\":6700,\"tasks\":[1,2],"
               "\"state\":\"running\"}],"
               "\"components\":[{\"id\":\"lines\",\"kind\":\"spout\",\"parallelism\":2,\"tasks\":[1,2],"
               "\"emitted\":120,\"acked\":118,\"failed\":2}]}");
    } else if (strcmp(path, "/api/v1/topologies/wc-test/kill") == 0) {
        answer(r, 200, "{\"name\":\"wc-test\",\"status\":\"killing\"}");
    } else if (strcmp(path, "/api/v1/topologies/wc-test/activate") == 0) {
        answer(r, 200, "{\"name\":\"wc-test\",\"status\":\"active\"}");
    } else if (strcmp(path, "/api/v1/topologies/busy/deactivate") == 0) {
        api_respond_error(r, 409, "topology busy is being killed");
    } else {
        api_respond_error(r, 404, "no such thing");
    }
}

static void on_standby(void *arg, api_request *r) {
    fake *f = arg;
    pthread_mutex_lock(&f->mu);
    f->standby_calls++;
    pthread_mutex_unlock(&f->mu);
    api_redirect(r, f->base);
}

static void on_stop(uv_async_t *a) {
    fake *f = a->data;
    api_server_stop(f->leader);
    api_server_stop(f->standby);
    uv_close((uv_handle_t *)&f->stop, NULL);
}

static void *loop_thread(void *arg) {
    fake *f = arg;
    uv_run(&f->loop, UV_RUN_DEFAULT);
    return NULL;
}

static void fake_start(fake *f) {
    memset(f, 0, sizeof *f);
    pthread_mutex_init(&f->mu, NULL);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    assert_int_equal(uv_async_init(&f->loop, &f->stop, on_stop), 0);
    f->stop.data = f;
    api_options o = {.listen = "127.0.0.1:0", .max_body_bytes = 8 << 20, .max_connections = 16, .timeout_secs = 10};
    int err;
    assert_non_null(f->leader = api_server_start(&f->loop, &o, on_leader, f, &err));
    assert_non_null(f->standby = api_server_start(&f->loop, &o, on_standby, f, &err));
    snprintf(f->base, sizeof f->base, "http://127.0.0.1:%d", api_server_port(f->leader));
    snprintf(f->standby_base, sizeof f->standby_base, "http://127.0.0.1:%d/", api_server_port(f->standby));
    assert_int_equal(pthread_create(&f->th, NULL, loop_thread, f), 0);
}

static void fake_stop(fake *f) {
    uv_async_send(&f->stop);
    pthread_join(f->th, NULL);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    free(f->topology_text);
    free(f->body);
    pthread_mutex_destroy(&f->mu);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw);

/* ---- running a command with its output captured ---- */

typedef struct run {
    int rc;
    char out[8192], err[4096];
} run;

static void slurp(int fd, char *buf, size_t cap) {
    lseek(fd, 0, SEEK_SET);
    ssize_t n = read(fd, buf, cap - 1);
    buf[n > 0 ? n : 0] = '\0';
}

/* client_run with stdout and stderr captured; conf_kv: "k=v" pairs, NULL-ended. */
static run *run_cmd(const char *command, const char *const *args, int nargs, const char *master, bool json, int wait,
                    const char *const *conf_kv) {
    static run r;
    conf *c = conf_new();
    assert_non_null(c);
    char err[256];
    for (int i = 0; conf_kv && conf_kv[i]; i++) assert_int_equal(conf_set_kv(c, conf_kv[i], err, sizeof err), 0);
    client_options o = {.command = command, .args = (char **)args, .nargs = nargs, .conf = c, .master_url = master,
                        .json = json, .wait_secs = wait};
    char out_tpl[] = "/tmp/sd-test-client-out-XXXXXX", err_tpl[] = "/tmp/sd-test-client-err-XXXXXX";
    int ofd = mkstemp(out_tpl), efd = mkstemp(err_tpl);
    assert_true(ofd >= 0 && efd >= 0);
    unlink(out_tpl);
    unlink(err_tpl);
    fflush(stdout);
    fflush(stderr);
    int saved_out = dup(1), saved_err = dup(2);
    dup2(ofd, 1);
    dup2(efd, 2);
    r.rc = client_run(&o);
    fflush(stdout);
    fflush(stderr);
    dup2(saved_out, 1);
    dup2(saved_err, 2);
    close(saved_out);
    close(saved_err);
    slurp(ofd, r.out, sizeof r.out);
    slurp(efd, r.err, sizeof r.err);
    close(ofd);
    close(efd);
    conf_free(c);
    return &r;
}

static void expect(const run *r, int rc, const char *out_has, const char *err_has) {
    if (r->rc != rc || (out_has && !strstr(r->out, out_has)) || (err_has && !strstr(r->err, err_has)))
        fail_msg("rc %d (want %d)\nstdout: %s\nstderr: %s\nwanted out '%s', err '%s'", r->rc, rc, r->out, r->err,
                 out_has ? out_has : "", err_has ? err_has : "");
}

/* ---- operands ---- */

static void test_usage_errors(void **state) {
    (void)state;
    const char *one[] = {"wc"}, *two[] = {"a", "b"}, *bad[] = {"a/b"};
    expect(run_cmd("list", one, 1, "http://127.0.0.1:1", false, -1, NULL), 2, NULL, "list takes no operands");
    expect(run_cmd("status", NULL, 0, "http://127.0.0.1:1", false, -1, NULL), 2, NULL, "status needs exactly one NAME");
    expect(run_cmd("kill", two, 2, "http://127.0.0.1:1", false, -1, NULL), 2, NULL, "kill needs exactly one NAME");
    expect(run_cmd("submit", NULL, 0, "http://127.0.0.1:1", false, -1, NULL), 2, NULL,
           "submit needs exactly one TOPOLOGY.yaml");
    expect(run_cmd("activate", bad, 1, "http://127.0.0.1:1", false, -1, NULL), 2, NULL,
           "'a/b' is not a topology name");
    expect(run_cmd("status", one, 1, "http://127.0.0.1:1", false, 5, NULL), 2, NULL, "--wait applies to kill only");
    expect(run_cmd("status", one, 1, "ftp://x", false, -1, NULL), 2, NULL, "--master: expected an http://");
    expect(run_cmd("frobnicate", NULL, 0, NULL, false, -1, NULL), 2, NULL, "unknown command 'frobnicate'");
}

static void test_submit_invalid_topology(void **state) {
    (void)state;
    char path[PATH_MAX + 64], want[PATH_MAX + 1200], exp[1024];
    /* the same message as local mode, before any network */
    data_path(path, sizeof path, "topo_bad/dup_id.yaml");
    assert_int_equal(read_expect(path, exp, sizeof exp), 0);
    snprintf(want, sizeof want, "%s:%s", path, exp);
    const char *args[] = {path};
    expect(run_cmd("submit", args, 1, "http://127.0.0.1:1", false, -1, NULL), 2, NULL, want);
    const char *missing[] = {"/nonexistent/t.yaml"};
    expect(run_cmd("submit", missing, 1, "http://127.0.0.1:1", false, -1, NULL), 2, NULL, "/nonexistent/t.yaml");
}

/* ---- against the server ---- */

static int fake_setup(void **state) {
    (void)state;
    fake_start(&F);
    return 0;
}

static int fake_teardown(void **state) {
    (void)state;
    fake_stop(&F);
    return 0;
}

static void test_submit(void **state) {
    (void)state;
    char path[PATH_MAX + 64];
    data_path(path, sizeof path, "wordcount.yaml");
    const char *args[] = {path};
    for (int via_standby = 0; via_standby < 2; via_standby++) {
        run *r = run_cmd("submit", args, 1, via_standby ? F.standby_base : F.base, false, -1, NULL);
        pthread_mutex_lock(&F.mu);
        char line[256];
        snprintf(line, sizeof line, "submitted wc-test (id wc-test-1-1700000000, package %.12s)\n", F.body_hash);
        expect(r, 0, line, NULL);
        assert_string_equal(F.method, "POST");
        assert_string_equal(F.sha, F.body_hash); /* the header names the bytes sent */
        assert_non_null(F.topology_text);
        assert_non_null(strstr(F.topology_text, "name: wc-test"));
        assert_int_equal(F.standby_calls, via_standby);
        pthread_mutex_unlock(&F.mu);
    }
}

/* A topology with files: ships them: the posted package unpacks to the
 * topology and its data file. */
static void test_submit_ships_files(void **state) {
    (void)state;
    char path[PATH_MAX + 64], dir[64], file[128], err[512];
    snprintf(path, sizeof path, "%s/../../etc/topologies/wordcount.yaml", data_dir);
    const char *args[] = {path};
    expect(run_cmd("submit", args, 1, F.base, false, -1, NULL), 0, "submitted", NULL);
    snprintf(dir, sizeof dir, "/tmp/sd-test-client-pkg-XXXXXX");
    assert_non_null(mkdtemp(dir));
    pthread_mutex_lock(&F.mu);
    int rc = package_unpack(F.body, F.body_len, dir, err, sizeof err);
    pthread_mutex_unlock(&F.mu);
    if (rc != 0) fail_msg("unpack: %s", err);
    snprintf(file, sizeof file, "%s/data/sentences.txt", dir);
    assert_int_equal(access(file, R_OK), 0);
    snprintf(file, sizeof file, "%s/topology.yaml", dir);
    assert_int_equal(access(file, R_OK), 0);
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void test_list_and_status(void **state) {
    (void)state;
    run *r = run_cmd("list", NULL, 0, F.base, false, -1, NULL);
    expect(r, 0, "NAME", NULL);
    assert_non_null(strstr(r->out, "wc-test "));
    assert_non_null(strstr(r->out, "active"));
    assert_non_null(strstr(r->out, " 1h1m")); /* submitted 3700 s ago */
    r = run_cmd("list", NULL, 0, F.base, true, -1, NULL);
    expect(r, 0, "{\"topologies\":[{\"name\":\"wc-test\"", NULL);
    const char *wc[] = {"wc-test"}, *other[] = {"other"};
    r = run_cmd("status", wc, 1, F.base, false, -1, NULL);
    expect(r, 0, "wc-test (id wc-test-1): active, package 0123456789ab\n", NULL);
    assert_non_null(strstr(r->out, "lines"));
    assert_non_null(strstr(r->out, "118"));
    assert_non_null(strstr(r->out, "10.0.0.1:6700"));
    assert_non_null(strstr(r->out, "1,2"));
    expect(run_cmd("status", other, 1, F.base, false, -1, NULL), 1, NULL, "streamd: no topology named other\n");
}

static void test_kill_activate(void **state) {
    (void)state;
    const char *wc[] = {"wc-test"}, *busy[] = {"busy"};
    expect(run_cmd("kill", wc, 1, F.base, false, 7, NULL), 0, "wc-test: killing (workers stop in 7 s)", NULL);
    pthread_mutex_lock(&F.mu);
    assert_string_equal(F.path, "/api/v1/topologies/wc-test/kill");
    assert_string_equal(F.method, "POST");
    assert_string_equal(F.wait, "7");
    pthread_mutex_unlock(&F.mu);
    /* no --wait: the master applies the topology's own message timeout */
    expect(run_cmd("kill", wc, 1, F.base, false, -1, NULL), 0, "wc-test: killing\n", NULL);
    pthread_mutex_lock(&F.mu);
    assert_string_equal(F.wait, "(none)");
    pthread_mutex_unlock(&F.mu);
    /* ... unless the configuration names one */
    const char *kv[] = {"topology.message.timeout.secs=12", NULL};
    expect(run_cmd("kill", wc, 1, F.base, false, -1, kv), 0, "workers stop in 12 s", NULL);
    pthread_mutex_lock(&F.mu);
    assert_string_equal(F.wait, "12");
    pthread_mutex_unlock(&F.mu);
    expect(run_cmd("activate", wc, 1, F.base, false, -1, NULL), 0, "wc-test: active\n", NULL);
    expect(run_cmd("deactivate", busy, 1, F.base, false, -1, NULL), 1, NULL,
           "streamd: topology busy is being killed\n");
    expect(run_cmd("activate", wc, 1, F.base, true, -1, NULL), 0, "{\"name\":\"wc-test\",\"status\":\"active\"}\n",
           NULL);
}

static void test_master_unreachable(void **state) {
    (void)state;
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", nothing_port);
    expect(run_cmd("list", NULL, 0, url, false, -1, NULL), 1, NULL, "streamd: cannot reach the master at");
}

/* ---- the leader in etcd ---- */

static pid_t etcd_pid;
static char etcd_dir[64];

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static bool etcd_up(const char *endpoint) {
    char url[128], err[256];
    snprintf(url, sizeof url, "%s/health", endpoint);
    client_http_answer a;
    if (client_http("GET", url, NULL, NULL, 0, 1000, &a, err, sizeof err) != 0) return false;
    bool ok = a.status == 200 && strstr(a.body, "true");
    client_http_answer_free(&a);
    return ok;
}

static int etcd_setup(void **state) {
    (void)state;
    fake_start(&F);
    snprintf(etcd_dir, sizeof etcd_dir, "/tmp/sd-test-client-etcd-XXXXXX");
    assert_non_null(mkdtemp(etcd_dir));
    char client_url[64], peer_url[64], data[128], log[128];
    etcd_client_port = pick_port();
    etcd_peer_port = pick_port();
    char cluster[96];
    snprintf(client_url, sizeof client_url, "http://127.0.0.1:%d", etcd_client_port);
    snprintf(peer_url, sizeof peer_url, "http://127.0.0.1:%d", etcd_peer_port);
    snprintf(cluster, sizeof cluster, "t=%s", peer_url);
    snprintf(data, sizeof data, "%s/data", etcd_dir);
    snprintf(log, sizeof log, "%s/etcd.log", etcd_dir);
    etcd_pid = fork();
    assert_true(etcd_pid >= 0);
    if (etcd_pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execlp("etcd", "etcd", "--name", "t", "--data-dir", data, "--listen-client-urls", client_url,
               "--advertise-client-urls", client_url, "--listen-peer-urls", peer_url, "--initial-advertise-peer-urls",
               peer_url, "--initial-cluster", cluster, (char *)NULL);
        _exit(127);
    }
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        if (etcd_up(client_url)) break;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec - t0.tv_sec > 20) fail_msg("etcd did not start (see %s)", log);
        struct timespec ms50 = {.tv_nsec = 50 * 1000 * 1000};
        nanosleep(&ms50, NULL);
    }
    return 0;
}

static int etcd_teardown(void **state) {
    (void)state;
    kill(etcd_pid, SIGTERM);
    waitpid(etcd_pid, NULL, 0);
    nftw(etcd_dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    fake_stop(&F);
    return 0;
}

/* Puts key=value through etcd's JSON gateway (base64 keys and values). */
static void etcd_put(const char *key, const char *value) {
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char k64[512], v64[1024], body[1700], url[128], err[256];
    const char *in[2] = {key, value};
    char *out[2] = {k64, v64};
    for (int j = 0; j < 2; j++) {
        const unsigned char *s = (const unsigned char *)in[j];
        size_t n = strlen(in[j]), o = 0;
        for (size_t i = 0; i < n; i += 3) {
            unsigned v = (unsigned)s[i] << 16 | (i + 1 < n ? (unsigned)s[i + 1] << 8 : 0) | (i + 2 < n ? s[i + 2] : 0);
            out[j][o++] = b64[v >> 18 & 63];
            out[j][o++] = b64[v >> 12 & 63];
            out[j][o++] = i + 1 < n ? b64[v >> 6 & 63] : '=';
            out[j][o++] = i + 2 < n ? b64[v & 63] : '=';
        }
        out[j][o] = '\0';
    }
    snprintf(body, sizeof body, "{\"key\":\"%s\",\"value\":\"%s\"}", k64, v64);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v3/kv/put", etcd_client_port);
    client_http_answer a;
    assert_int_equal(client_http("POST", url, NULL, body, strlen(body), 5000, &a, err, sizeof err), 0);
    assert_int_equal(a.status, 200);
    client_http_answer_free(&a);
}

static void test_leader_from_etcd(void **state) {
    (void)state;
    char endpoints[96];
    snprintf(endpoints, sizeof endpoints, "store.etcd.endpoints=http://127.0.0.1:%d", etcd_client_port);
    const char *kv[] = {endpoints, "cluster.name=c7", "client.timeout.secs=5", NULL};
    /* no leader yet */
    expect(run_cmd("list", NULL, 0, NULL, false, -1, kv), 1, NULL, "no master leads cluster 'c7'");
    char value[256];
    snprintf(value, sizeof value, "{\"id\":\"m1\",\"host\":\"h\",\"api\":\"%s\",\"since\":1}", F.base);
    etcd_put("/streamd/c7/master/leader", value);
    pthread_mutex_lock(&F.mu);
    int before = F.calls;
    pthread_mutex_unlock(&F.mu);
    expect(run_cmd("list", NULL, 0, NULL, false, -1, kv), 0, "wc-test", NULL);
    pthread_mutex_lock(&F.mu);
    assert_int_equal(F.calls, before + 1);
    pthread_mutex_unlock(&F.mu);
    /* a leader key that is not what a master writes */
    etcd_put("/streamd/c7/master/leader", "{\"api\":\"file:///etc/passwd\"}");
    expect(run_cmd("list", NULL, 0, NULL, false, -1, kv), 1, NULL, "is not an http:// or https:// URL");
}

static void test_etcd_unreachable(void **state) {
    (void)state;
    char endpoints[96];
    snprintf(endpoints, sizeof endpoints, "store.etcd.endpoints=http://127.0.0.1:%d", nothing_port);
    const char *kv[] = {endpoints, "client.timeout.secs=2", NULL};
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    char want[128];
    snprintf(want, sizeof want, "streamd: cannot reach etcd at http://127.0.0.1:%d: ", nothing_port);
    expect(run_cmd("list", NULL, 0, NULL, false, -1, kv), 1, NULL, want);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    assert_true(t1.tv_sec - t0.tv_sec <= 3); /* within client.timeout.secs (and a little) */
}

/* An endpoint that accepts connections and never answers. */
static void test_etcd_silent(void **state) {
    (void)state;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(fd, 16), 0);
    socklen_t alen = sizeof a;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
    char endpoints[96];
    snprintf(endpoints, sizeof endpoints, "store.etcd.endpoints=http://127.0.0.1:%d", ntohs(a.sin_port));
    const char *kv[] = {endpoints, "client.timeout.secs=1", NULL};
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    expect(run_cmd("list", NULL, 0, NULL, false, -1, kv), 1, NULL, "streamd: cannot reach etcd at http://127.0.0.1:");
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double took = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    assert_true(took >= 0.5 && took < 2.5); /* it waited, for about client.timeout.secs */
    close(fd);
}

int main(void) {
    if (test_data_dir(data_dir) != 0) return 1;
    signal(SIGPIPE, SIG_IGN);
    nothing_port = pick_port();
    const struct CMUnitTest plain[] = {
        cmocka_unit_test(test_usage_errors),
        cmocka_unit_test(test_submit_invalid_topology),
        cmocka_unit_test_setup_teardown(test_submit, fake_setup, fake_teardown),
        cmocka_unit_test_setup_teardown(test_submit_ships_files, fake_setup, fake_teardown),
        cmocka_unit_test_setup_teardown(test_list_and_status, fake_setup, fake_teardown),
        cmocka_unit_test_setup_teardown(test_kill_activate, fake_setup, fake_teardown),
        cmocka_unit_test(test_master_unreachable),
        cmocka_unit_test(test_etcd_unreachable),
        cmocka_unit_test(test_etcd_silent),
    };
    const struct CMUnitTest with_etcd[] = {
        cmocka_unit_test(test_leader_from_etcd),
    };
    int rc = cmocka_run_group_tests_name("client", plain, NULL, NULL);
    rc += cmocka_run_group_tests_name("client with etcd", with_etcd, etcd_setup, etcd_teardown);
    return rc;
}
