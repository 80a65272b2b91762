/*
 * ml_child: see ml_child.h. Threads: the task's executor thread calls every
 * function; the stderr reader thread (stderr_main) owns the read end of the
 * child's stderr pipe and only logs.
 */
#include "multilang/ml_child.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"

#define ML_MAX_MESSAGE (64u << 20) /* a child that sends more is broken */

struct ml_child {
    pid_t pid;
    int fd;          /* our end of the socketpair: the child's stdin and stdout */
    int err_fd;      /* read end of the child's stderr, owned by the reader thread */
    int task;
    pthread_t err_thread;
    int err_started;
    char *buf;       /* bytes read and not yet consumed */
    size_t len, cap, scan; /* scan: where to look for the next newline */
    size_t line_start;     /* where the line being read starts (it may arrive in pieces) */
    size_t msg_start;
};

int64_t ml_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void *stderr_main(void *arg) {
    ml_child *c = arg;
    char buf[4096];
    size_t have = 0;
    for (;;) {
        ssize_t n = read(c->err_fd, buf + have, sizeof buf - 1 - have);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        have += (size_t)n;
        size_t start = 0;
        for (size_t i = 0; i < have; i++) {
            if (buf[i] != '\n') continue;
            buf[i] = '\0';
            log_task(SD_LOG_WARN, c->task, "child %d stderr: %s", (int)c->pid, buf + start);
            start = i + 1;
        }
        if (start == 0 && have == sizeof buf - 1) { /* a very long line: log it in pieces */
            buf[have] = '\0';
            log_task(SD_LOG_WARN, c->task, "child %d stderr: %s", (int)c->pid, buf);
            have = 0;
        } else {
            memmove(buf, buf + start, have - start);
            have -= start;
        }
    }
    if (have) {
        buf[have] = '\0';
        log_task(SD_LOG_WARN, c->task, "child %d stderr: %s", (int)c->pid, buf);
    }
    return NULL;
}

/* in the forked child: only async-signal-safe calls until exec */
static void exec_child(char *const *argv, const char *cwd, char **envp, int sock, int errw) {
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive the worker */
    if (dup2(sock, 0) < 0 || dup2(sock, 1) < 0 || dup2(errw, 2) < 0) _exit(126);
    if (cwd && chdir(cwd) != 0) {
        static const char msg[] = "cannot enter the resources directory\n";
        if (write(2, msg, sizeof msg - 1) < 0) _exit(126);
        _exit(126);
    }
    for (int fd = 3; fd < 1024; fd++) close(fd); /* the worker's sockets are not the child's */
    execvpe(argv[0], argv, envp);
    static const char msg[] = "cannot execute the command\n";
    if (write(2, msg, sizeof msg - 1) < 0) _exit(127);
    _exit(127);
}

extern char **environ;

/* the environment for the child, built before fork (the forked child may
 * only make async-signal-safe calls): environ with PYTHONPATH extended.
 * Frees nothing of environ's; *added is the one string allocated. */
static char **child_env(const char *pythonpath, char **added) {
    size_t n = 0;
    while (environ[n]) n++;
    char **env = calloc(n + 2, sizeof *env);
    if (!env) return NULL;
    *added = NULL;
    size_t k = 0;
    const char *old = getenv("PYTHONPATH");
    for (size_t i = 0; i < n; i++)
        if (!pythonpath || strncmp(environ[i], "PYTHONPATH=", 11) != 0) env[k++] = environ[i];
    if (pythonpath) {
        if (asprintf(added, "PYTHONPATH=%s%s%s", pythonpath, old && *old ? ":" : "", old && *old ? old : "") < 0) {
            free(env);
            return NULL;
        }
        env[k++] = *added;
    }
    env[k] = NULL;
    return env;
}

ml_child *ml_child_start(char *const *argv, const char *cwd, const char *pythonpath, int task, int *err) {
    ml_child *c = calloc(1, sizeof *c);
    int sv[2] = {-1, -1}, ep[2] = {-1, -1};
    char *added = NULL;
    char **env = c ? child_env(pythonpath, &added) : NULL;
    if (!env) {
        free(c);
        *err = -ENOMEM;
        return NULL;
    }
    c->task = task;
    c->fd = c->err_fd = -1;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0 || pipe2(ep, O_CLOEXEC) != 0) {
        *err = -errno;
        goto fail;
    }
    pid_t pid = fork();
    if (pid < 0) {
        *err = -errno;
        goto fail;
    }
    if (pid == 0) exec_child(argv, cwd, env, sv[1], ep[1]);
    free(env);
    free(added);
    env = NULL;
    close(sv[1]);
    close(ep[1]);
    c->pid = pid;
    c->fd = sv[0];
    c->err_fd = ep[0];
    if (fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK) != 0) {
        *err = -errno;
        ml_child_stop(c, NULL);
        return NULL;
    }
    int rc = pthread_create(&c->err_thread, NULL, stderr_main, c);
    if (rc != 0) {
        *err = -rc;
        ml_child_stop(c, NULL);
        return NULL;
    }
    c->err_started = 1;
    return c;
fail:
    free(env);
    free(added);
    for (int i = 0; i < 2; i++) {
        if (sv[i] >= 0) close(sv[i]);
        if (ep[i] >= 0) close(ep[i]);
    }
    free(c);
    return NULL;
}

pid_t ml_child_pid(const ml_child *c) { return c->pid; }

static int wait_fd(int fd, short events, int64_t deadline_ns) {
    for (;;) {
        int64_t left = deadline_ns - ml_now_ns();
        if (left <= 0) return -ETIMEDOUT;
        struct pollfd p = {.fd = fd, .events = events};
        int ms = (int)((left + 999999) / 1000000);
        int n = poll(&p, 1, ms);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return -errno;
        if (n > 0) return 0;
    }
}

/* reads what is there into the buffer: 1 read something, 0 nothing now,
 * or a negative code */
static int fill(ml_child *c) {
    if (c->len >= ML_MAX_MESSAGE) return -EMSGSIZE;
    if (c->cap - c->len < 65536) {
        size_t ncap = c->cap ? c->cap * 2 : 131072;
        char *nb = realloc(c->buf, ncap);
        if (!nb) return -ENOMEM;
        c->buf = nb;
        c->cap = ncap;
    }
    for (;;) {
        ssize_t n = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
        if (n > 0) {
            c->len += (size_t)n;
            return 1;
        }
        if (n == 0) return -EPIPE;
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
        return -EPIPE;
    }
}

/* While our message waits for room, the child may itself be blocked
 * writing to us (a large answer to an earlier message): what it writes is
 * read into the buffer meanwhile, so neither side waits on the other. */
static int send_all(ml_child *c, const char *p, size_t n, int64_t deadline_ns) {
    while (n > 0) {
        ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int rc = wait_fd(c->fd, POLLOUT | POLLIN, deadline_ns);
            if (rc != 0) return rc;
            rc = fill(c);
            if (rc < 0) return rc;
            continue;
        }
        return -EPIPE;
    }
    return 0;
}

int ml_child_send(ml_child *c, const json_t *msg, int64_t deadline_ns) {
    char *text = json_dumps(msg, JSON_COMPACT);
    if (!text) return -ENOMEM;
    size_t n = strlen(text);
    /* one buffer: the child sees the message and its "end" line together */
    char *full = realloc(text, n + 6);
    if (!full) {
        free(text);
        return -ENOMEM;
    }
    memcpy(full + n, "\nend\n", 5);
    int rc = send_all(c, full, n + 5, deadline_ns);
    free(full);
    return rc;
}

/* a complete message in the buffer: decoded into *out (1), none yet (0), or
 * a negative code */
static int take_message(ml_child *c, json_t **out, char *why, size_t whylen) {
    while (c->scan < c->len) {
        char *nl = memchr(c->buf + c->scan, '\n', c->len - c->scan);
        if (!nl) {
            c->scan = c->len;
            return 0;
        }
        /* the line began where the previous one ended, not where this
         * search began: "end" and its newline may come in separate reads */
        size_t line = c->line_start, end = (size_t)(nl - c->buf);
        c->scan = c->line_start = end + 1;
        size_t ll = end - line;
        if (ll > 0 && c->buf[end - 1] == '\r') ll--; /* tolerate CRLF */
        if (ll != 3 || memcmp(c->buf + line, "end", 3) != 0) continue;
        json_error_t je;
        size_t mlen = line - c->msg_start;
        json_t *j = json_loadb(c->buf + c->msg_start, mlen, JSON_DECODE_ANY, &je);
        /* consume the message and its end line */
        memmove(c->buf, c->buf + c->scan, c->len - c->scan);
        c->len -= c->scan;
        c->scan = c->line_start = 0;
        c->msg_start = 0;
        if (!j) {
            snprintf(why, whylen, "not JSON (%s)", je.text);
            return -EPROTO;
        }
        *out = j;
        return 1;
    }
    return 0;
}

int ml_child_recv(ml_child *c, int64_t deadline_ns, json_t **out, char *why, size_t whylen) {
    *out = NULL;
    if (why && whylen) why[0] = '\0';
    for (;;) {
        int rc = take_message(c, out, why, whylen);
        if (rc != 0) return rc < 0 ? rc : 0;
        rc = fill(c);
        if (rc < 0) return rc;
        if (rc > 0) continue;
        rc = wait_fd(c->fd, POLLIN, deadline_ns);
        if (rc != 0) return rc;
    }
}

void ml_child_stop(ml_child *c, int *status) {
    if (!c) return;
    int st = 0;
    if (c->pid > 0) {
        /* killed before its stdin closes: a library that reports EOF as an
         * error (Storm's storm.py) has no time to fill the log with it */
        kill(c->pid, SIGKILL);
        while (waitpid(c->pid, &st, 0) < 0 && errno == EINTR) {
        }
    }
    if (c->fd >= 0) close(c->fd);
    if (status) *status = st;
    /* the child is gone: its stderr ends (unless it left a grandchild
     * holding it, whose output is then still logged until it exits) */
    if (c->err_started) pthread_join(c->err_thread, NULL);
    if (c->err_fd >= 0) close(c->err_fd);
    free(c->buf);
    free(c);
}
