/*
 * ml_child: one multi-lang child process and its message framing.
 *
 * The child's stdin and stdout are one end of a socketpair (writes use
 * MSG_NOSIGNAL, so a dead child is an error code, not SIGPIPE); every
 * message is a JSON document followed by a line "end". Reads and writes
 * wait with poll until a deadline and never block past it. The child's
 * stderr is read line by line by a thread of its own and logged under the
 * task's id; that thread owns only the pipe's read end.
 *
 * Everything else runs on the calling task's executor thread.
 */
#ifndef SD_ML_CHILD_H
#define SD_ML_CHILD_H

#include <jansson.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct ml_child ml_child;

/* Starts argv[0] (looked up in PATH) in cwd (NULL: the worker's own) with
 * stdin/stdout connected to us and the worker's environment, plus
 * pythonpath (may be NULL) in front of PYTHONPATH. NULL with *err set
 * (negative errno). */
ml_child *ml_child_start(char *const *argv, const char *cwd, const char *pythonpath, int task, int *err);
/* Writes msg and "\nend\n" before deadline_ns (CLOCK_MONOTONIC). 0,
 * -ETIMEDOUT, or -EPIPE when the child is gone. */
int ml_child_send(ml_child *c, const json_t *msg, int64_t deadline_ns);
/* The next message, decoded (the caller owns *out). 0, -ETIMEDOUT,
 * -EPIPE (the child closed stdout or died), -EPROTO (not JSON: *why
 * describes it), -EMSGSIZE (a message beyond the size limit). */
int ml_child_recv(ml_child *c, int64_t deadline_ns, json_t **out, char *why, size_t whylen);
/* Kills (SIGKILL) and reaps the child, joins its stderr reader, frees c.
 * Writes the exit status to *status when not NULL. */
void ml_child_stop(ml_child *c, int *status);
pid_t ml_child_pid(const ml_child *c);
/* Monotonic clock in ns. */
int64_t ml_now_ns(void);

#endif
