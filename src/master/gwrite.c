/* gwrite: leader-guarded writes (see gwrite.h). The requests in flight
 * form a list headed at master_ctx.writes. */
#include "master/gwrite.h"

#include <errno.h>
#include <stdlib.h>

#include "master/election.h"

struct gwrite {
    master_ctx *m;
    uint64_t term;
    gwrite_cb cb;
    void *arg;
    gwrite *prev, *next;
};

static void unlink_write(gwrite *w) {
    if (w->prev) w->prev->next = w->next;
    else w->m->writes = w->next;
    if (w->next) w->next->prev = w->prev;
}

static void on_done(void *arg, const store_result *r) {
    gwrite *w = arg;
    master_ctx *m = w->m;
    unlink_write(w);
    int err = r->err;
    if (err == 0 && (w->term != m->term || !m->leading)) err = -EPERM;
    else if (err == 0 && !r->succeeded) err = -ESTALE;
    w->cb(m, w->arg, err, err == 0 ? r : NULL);
    free(w);
}

int gwrite_txn(master_ctx *m, const store_cmp *cmps, size_t ncmps, const store_op *ops, size_t nops, gwrite_cb cb,
               void *arg) {
    if (ncmps > GWRITE_MAX_CMPS) return -EINVAL;
    store_cmp all[GWRITE_MAX_CMPS + 1];
    if (!m->leading || election_guard(m->el, &all[0]) != 0) return -EPERM;
    for (size_t i = 0; i < ncmps; i++) all[i + 1] = cmps[i];
    gwrite *w = calloc(1, sizeof *w);
    if (!w) return -ENOMEM;
    *w = (gwrite){.m = m, .term = m->term, .cb = cb, .arg = arg, .next = m->writes};
    store_txn t = {.cmps = all, .ncmps = ncmps + 1, .then = ops, .nthen = nops};
    int rc = store_commit(m->st, &t, on_done, w);
    if (rc != 0) {
        free(w);
        return rc;
    }
    if (m->writes) m->writes->prev = w;
    m->writes = w;
    return 0;
}

void gwrite_cancel_all(master_ctx *m) {
    while (m->writes) {
        gwrite *w = m->writes;
        store_cancel(m->st, w);
        unlink_write(w);
        w->cb(m, w->arg, -ECANCELED, NULL);
        free(w);
    }
}
