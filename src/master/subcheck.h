/*
 * subcheck: checks a submitted topology package before the leader accepts
 * it: the body's SHA-256 must be the one the client announced; the package
 * is unpacked into a private temporary directory (removed before return)
 * and its topology.yaml loaded and validated the way a worker will load
 * it, without running user code. Blocking (file I/O, hashing): lifecycle.c
 * runs it on the libuv thread pool. Touches no shared state.
 */
#ifndef SD_SUBCHECK_H
#define SD_SUBCHECK_H

#include <jansson.h>
#include <stddef.h>

#include "master/records.h"
#include "package/package.h"

typedef struct subcheck {
    /* 0 = accepted, else the HTTP status to answer (400, 500) with err */
    int status;
    char err[1024];
    char hash[PACKAGE_HASH_HEX];
    char name[REC_MAX_ID + 1];
    int workers;
    int ntasks;
    json_t *conf;       /* merged configuration as strings (owned) */
    json_t *components; /* [{"id", "kind", "parallelism", "first_task"}] (owned) */
} subcheck;

/* Fills out (release with subcheck_clear). want_hash: the announced hex
 * SHA-256 (any case), or NULL when absent (refused). tmp_parent: where the
 * private directory goes (NULL = $TMPDIR or /tmp). */
void subcheck_run(const void *body, size_t len, const char *want_hash, const char *tmp_parent, subcheck *out);
void subcheck_clear(subcheck *c);

#endif
