/* etcd_env: etcd processes, certificates and a fake etcd for test_etcd (see etcd_env.h). */
#include "etcd_env.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <cmocka.h>

uint64_t env_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int bind_loopback(int fd, int port) {
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return bind(fd, (struct sockaddr *)&a, sizeof a);
}

/* Reserves port among test processes: an abstract unix socket named after
 * it stays bound until this process exits. */
static bool reserve(int port) {
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    int n = snprintf(a.sun_path + 1, sizeof a.sun_path - 1, "streamd-test-port-%d", port);
    if (bind(fd, (struct sockaddr *)&a, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n)) != 0) {
        close(fd);
        return false;
    }
    return true; /* fd stays open on purpose */
}

int env_pick_port(void) {
    for (int port = 24100; port < 24200; port++) {
        if (!reserve(port)) continue; /* ours already, or another test's */
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        assert_true(fd >= 0);
        int rc = bind_loopback(fd, port);
        close(fd);
        if (rc == 0) return port;
    }
    fail_msg("no free port in 24100-24199");
    return -1;
}

int env_silent_listener(int *port) {
    *port = env_pick_port();
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    assert_int_equal(bind_loopback(fd, *port), 0);
    assert_int_equal(listen(fd, 16), 0);
    return fd;
}

int env_tmp_root(char *root, size_t cap) {
    snprintf(root, cap, "/tmp/test_etcd.XXXXXX");
    return mkdtemp(root) ? 0 : -1;
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

void env_rm_tree(const char *root) { nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS); }

int env_make_certs(const char *root, char *dir, size_t cap) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "cd %s && mkdir -p certs && cd certs && "
             "printf 'subjectAltName=IP:127.0.0.1\\nextendedKeyUsage=serverAuth,clientAuth\\n' >ext && "
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj /CN=test-ca "
             "-keyout ca.key -out ca.crt && "
             "for n in server client; do openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
             "-subj /CN=$n -keyout $n.key -out $n.csr && openssl x509 -req -in $n.csr -CA ca.crt -CAkey ca.key "
             "-CAcreateserial -days 1 -extfile ext -out $n.crt || exit 1; done >openssl.log 2>&1",
             root);
    dir[0] = '\0';
    if (system(cmd) != 0) return -1;
    snprintf(dir, cap, "%s/certs", root);
    return 0;
}

/* ---- etcd processes ----------------------------------------------------------- */

static etcd_proc *running[8];

void etcd_proc_init(etcd_proc *e, const char *root, const char *name, const char *tls_dir) {
    memset(e, 0, sizeof *e);
    e->port = env_pick_port();
    e->peer = env_pick_port();
    snprintf(e->tls_dir, sizeof e->tls_dir, "%s", tls_dir ? tls_dir : "");
    snprintf(e->dir, sizeof e->dir, "%s/%s", root, name);
    snprintf(e->url, sizeof e->url, "%s://127.0.0.1:%d", tls_dir ? "https" : "http", e->port);
}

static bool healthy(const etcd_proc *e) {
    char url[128], body[256] = "", ca[192], cert[192], key[192];
    snprintf(url, sizeof url, "%s/health", e->url);
    CURL *h = curl_easy_init();
    FILE *f = fmemopen(body, sizeof body - 1, "w");
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, f);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 1000L);
    curl_easy_setopt(h, CURLOPT_PROXY, "");
    if (e->tls_dir[0]) {
        snprintf(ca, sizeof ca, "%s/ca.crt", e->tls_dir);
        snprintf(cert, sizeof cert, "%s/client.crt", e->tls_dir);
        snprintf(key, sizeof key, "%s/client.key", e->tls_dir);
        curl_easy_setopt(h, CURLOPT_CAINFO, ca);
        curl_easy_setopt(h, CURLOPT_SSLCERT, cert);
        curl_easy_setopt(h, CURLOPT_SSLKEY, key);
    }
    CURLcode rc = curl_easy_perform(h);
    curl_easy_cleanup(h);
    fclose(f);
    return rc == CURLE_OK && strstr(body, "\"health\":\"true\"") != NULL;
}

void etcd_proc_start(etcd_proc *e) {
    char data[192], logf[192], peer[64], cluster[96], ca[192], cert[192], key[192];
    mkdir(e->dir, 0700);
    snprintf(data, sizeof data, "%s/data", e->dir);
    snprintf(logf, sizeof logf, "%s/etcd.log", e->dir);
    snprintf(peer, sizeof peer, "http://127.0.0.1:%d", e->peer);
    snprintf(cluster, sizeof cluster, "default=%s", peer);
    snprintf(ca, sizeof ca, "%s/ca.crt", e->tls_dir);
    snprintf(cert, sizeof cert, "%s/server.crt", e->tls_dir);
    snprintf(key, sizeof key, "%s/server.key", e->tls_dir);
    const char *argv[32] = {"etcd", "--name", "default", "--data-dir", data, "--listen-client-urls", e->url,
                            "--advertise-client-urls", e->url, "--listen-peer-urls", peer,
                            "--initial-advertise-peer-urls", peer, "--initial-cluster", cluster};
    int n = 15;
    if (e->tls_dir[0]) {
        const char *more[] = {"--cert-file", cert, "--key-file", key, "--trusted-ca-file", ca, "--client-cert-auth"};
        for (size_t i = 0; i < sizeof more / sizeof *more; i++) argv[n++] = more[i];
    }
    argv[n] = NULL;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* no etcd outlives a crashed test */
        int fd = open(logf, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execvp("etcd", (char **)argv);
        _exit(127);
    }
    e->pid = pid;
    for (int i = 0; i < 8; i++)
        if (!running[i] || running[i] == e) {
            running[i] = e;
            break;
        }
    uint64_t deadline = env_now_ms() + 30000;
    while (!healthy(e)) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            e->pid = 0;
            fail_msg("etcd exited; see %s", logf);
        }
        if (env_now_ms() > deadline) fail_msg("etcd not healthy within 30 s; see %s", logf);
        usleep(100 * 1000);
    }
}

void etcd_proc_stop(etcd_proc *e) {
    if (e->pid <= 0) return;
    kill(e->pid, SIGTERM);
    uint64_t deadline = env_now_ms() + 10000;
    int st;
    while (waitpid(e->pid, &st, WNOHANG) == 0) {
        if (env_now_ms() > deadline) {
            kill(e->pid, SIGKILL);
            waitpid(e->pid, &st, 0);
            break;
        }
        usleep(20 * 1000);
    }
    e->pid = 0;
}

void etcd_proc_stop_all(void) {
    for (int i = 0; i < 8; i++)
        if (running[i]) etcd_proc_stop(running[i]);
}

void etcd_proc_post(const etcd_proc *e, const char *path, const char *body) {
    char url[128];
    snprintf(url, sizeof url, "%s%s", e->url, path);
    CURL *h = curl_easy_init();
    FILE *devnull = fopen("/dev/null", "w");
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, devnull);
    curl_easy_setopt(h, CURLOPT_PROXY, "");
    long status = 0;
    assert_int_equal(curl_easy_perform(h), CURLE_OK);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    assert_int_equal(status, 200);
    curl_easy_cleanup(h);
    fclose(devnull);
}

void etcd_proc_ctl(const etcd_proc *e, const char *args) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "etcdctl --endpoints=%s %s >>%s/etcdctl.log 2>&1", e->url, args, e->dir);
    assert_int_equal(system(cmd), 0);
}

/* ---- the fake etcd ------------------------------------------------------------- */

/* Reads one request (headers and Content-Length body); its path into path. */
static bool read_request(int c, char *path, size_t cap) {
    char req[65536];
    size_t len = 0;
    char *end = NULL;
    while (!end && len < sizeof req - 1) {
        ssize_t n = read(c, req + len, sizeof req - 1 - len);
        if (n <= 0) return false;
        len += (size_t)n;
        req[len] = '\0';
        end = strstr(req, "\r\n\r\n");
    }
    if (!end) return false;
    const char *cl = strcasestr(req, "content-length:");
    size_t want = (size_t)(end + 4 - req) + (cl ? strtoul(cl + 15, NULL, 10) : 0);
    while (len < want && len < sizeof req - 1) {
        ssize_t n = read(c, req + len, sizeof req - 1 - len);
        if (n <= 0) return false;
        len += (size_t)n;
    }
    const char *p = strchr(req, ' ');
    snprintf(path, cap, "%.*s", p ? (int)strcspn(p + 1, " ") : 0, p ? p + 1 : "");
    return true;
}

static void fake_serve(fake_etcd *f, int c) {
    struct timeval tv = {.tv_sec = 2};
    setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char path[256], out[2048];
    if (!read_request(c, path, sizeof path)) return;
    pthread_mutex_lock(&f->mu);
    int hold = f->hold_ms;
    int n;
    if (hold > 0)
        n = snprintf(out, sizeof out, "HTTP/1.1 %s\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n%s",
                     f->status, f->body);
    else
        n = snprintf(out, sizeof out,
                     "HTTP/1.1 %s\r\nContent-Type: application/json\r\nConnection: close\r\n"
                     "Content-Length: %zu\r\n\r\n%s",
                     f->status, strlen(f->body), f->body);
    pthread_mutex_unlock(&f->mu);
    if (write(c, out, (size_t)n) < 0) return;
    uint64_t until = env_now_ms() + (uint64_t)(hold > 0 ? hold : 0);
    while (!atomic_load(&f->stop) && env_now_ms() < until) usleep(10 * 1000);
}

typedef struct fake_conn {
    fake_etcd *f;
    int fd;
} fake_conn;

static void *fake_conn_main(void *arg) {
    fake_conn *fc = arg;
    fake_serve(fc->f, fc->fd);
    close(fc->fd);
    atomic_fetch_sub(&fc->f->active, 1);
    free(fc);
    return NULL;
}

/* accepts at once, each connection served by its own thread, so a held
 * connection does not hide the next one in the backlog */
static void *fake_main(void *arg) {
    fake_etcd *f = arg;
    while (!atomic_load(&f->stop)) {
        struct pollfd p = {.fd = f->fd, .events = POLLIN};
        if (poll(&p, 1, 50) <= 0) continue;
        int c = accept(f->fd, NULL, NULL);
        if (c < 0) continue;
        atomic_fetch_add(&f->conns, 1);
        fake_conn *fc = malloc(sizeof *fc);
        pthread_t th;
        atomic_fetch_add(&f->active, 1);
        if (fc) {
            fc->f = f;
            fc->fd = c;
        }
        if (!fc || pthread_create(&th, NULL, fake_conn_main, fc) != 0) {
            free(fc);
            close(c);
            atomic_fetch_sub(&f->active, 1);
            continue;
        }
        pthread_detach(th);
    }
    return NULL;
}

void fake_start(fake_etcd *f) {
    memset(f, 0, sizeof *f);
    pthread_mutex_init(&f->mu, NULL);
    f->fd = env_silent_listener(&f->port);
    assert_int_equal(pthread_create(&f->th, NULL, fake_main, f), 0);
}

void fake_answer(fake_etcd *f, const char *status, const char *body, int hold_ms) {
    pthread_mutex_lock(&f->mu);
    snprintf(f->status, sizeof f->status, "%s", status);
    snprintf(f->body, sizeof f->body, "%s", body);
    f->hold_ms = hold_ms;
    pthread_mutex_unlock(&f->mu);
}

void fake_stop(fake_etcd *f) {
    atomic_store(&f->stop, true);
    pthread_join(f->th, NULL);
    while (atomic_load(&f->active) > 0) usleep(5 * 1000);
    close(f->fd);
    pthread_mutex_destroy(&f->mu);
}
