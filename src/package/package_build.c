/*
 * package_build: packs a topology and what it names into one archive (see
 * package.h). Called by `streamd submit` on the client's machine; pure
 * file work, no threads.
 *
 * What goes in, by name inside the archive:
 *   topology.yaml        the topology, its top-level `library:` line
 *                        rewritten to the library's name below
 *   lib/<basename>       the `library:` file
 *   <relative path>      each file or directory (recursively) listed under
 *                        a top-level `files:`, and each component's
 *                        `resources:` directory, at its place relative to
 *                        the topology's directory
 * The archive is a pax (ustar-compatible) tar compressed with gzip, made
 * reproducible: entries sorted by name, fixed times, owners and modes, no
 * gzip timestamp. The same inputs give the same bytes and so the same hash.
 */
#include "package/package.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/yaml_doc.h"

#define TOPOLOGY_MAX_BYTES (1024 * 1024) /* a topology file larger than this is surely not one */
#define WALK_MAX_DEPTH 32                 /* directory depth (and so symlink loops) */
#define LIB_DIR "lib/"

typedef struct pk_entry {
    char *name; /* inside the archive */
    char *src;  /* file on disk; NULL for the rewritten topology */
    bool dir;
    bool exec;
    int64_t size;
    int line; /* of the YAML item that brought it in */
} pk_entry;

typedef struct builder {
    const char *topo_path; /* as given, for messages */
    char *dir;             /* the topology's directory (absolute) */
    pk_entry *e;
    size_t n, cap;
    uint64_t total;
    char *err;
    size_t errlen;
} builder;

static int fail(builder *b, int line, int code, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int fail(builder *b, int line, int code, const char *fmt, ...) {
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (line > 0)
        snprintf(b->err, b->errlen, "%s:%d: %s", b->topo_path, line, msg);
    else
        snprintf(b->err, b->errlen, "%s: %s", b->topo_path, msg);
    return code;
}

static int oom(builder *b) { return fail(b, 0, -ENOMEM, "out of memory"); }

static int add_entry(builder *b, const char *name, const char *src, const struct stat *st, int line) {
    if (b->n == b->cap) {
        size_t nc = b->cap ? b->cap * 2 : 32;
        pk_entry *g = realloc(b->e, nc * sizeof *g);
        if (!g) return oom(b);
        b->e = g;
        b->cap = nc;
    }
    pk_entry *e = &b->e[b->n];
    memset(e, 0, sizeof *e);
    e->name = strdup(name);
    e->src = src ? strdup(src) : NULL;
    if (!e->name || (src && !e->src)) {
        free(e->name);
        free(e->src);
        return oom(b);
    }
    e->dir = st && S_ISDIR(st->st_mode);
    e->exec = st && !e->dir && (st->st_mode & 0111);
    e->size = st && !e->dir ? (int64_t)st->st_size : 0;
    e->line = line;
    b->n++;
    b->total += (uint64_t)e->size;
    if (b->total > PACKAGE_MAX_BYTES)
        return fail(b, line, -EFBIG, "the package would exceed %d MiB", PACKAGE_MAX_BYTES >> 20);
    return 0;
}

/* Normalizes a relative path from the YAML ("./a//b/" -> "a/b", "." -> "");
 * -EINVAL when it is absolute or climbs out with "..". */
static int normalize(const char *in, char *out, size_t cap) {
    if (in[0] == '/') return -EINVAL;
    size_t n = 0;
    out[0] = '\0';
    for (const char *p = in; *p;) {
        while (*p == '/') p++;
        const char *q = p;
        while (*q && *q != '/') q++;
        size_t len = (size_t)(q - p);
        if (len == 0) break;
        if (len == 2 && p[0] == '.' && p[1] == '.') return -EINVAL;
        if (!(len == 1 && p[0] == '.')) {
            if (n + (n ? 1 : 0) + len + 1 > cap) return -ENAMETOOLONG;
            if (n) out[n++] = '/';
            memcpy(out + n, p, len);
            n += len;
            out[n] = '\0';
        }
        p = q;
    }
    return 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Adds src (a file, or a directory and everything below it) as name. */
static int add_path(builder *b, const char *name, const char *src, const char *shown, int line, int depth) {
    struct stat st;
    if (stat(src, &st) != 0) return fail(b, line, -errno, "'%s': %s", shown, strerror(errno));
    if (S_ISREG(st.st_mode)) {
        if (!name[0]) return fail(b, line, -EINVAL, "'%s': not a directory", shown);
        return add_entry(b, name, src, &st, line);
    }
    if (!S_ISDIR(st.st_mode)) return fail(b, line, -EINVAL, "'%s': neither a file nor a directory", shown);
    if (depth > WALK_MAX_DEPTH)
        return fail(b, line, -ELOOP, "'%s': directories nested deeper than %d (a symbolic link loop?)", shown,
                    WALK_MAX_DEPTH);
    int rc = name[0] ? add_entry(b, name, src, &st, line) : 0;
    if (rc != 0) return rc;
    DIR *d = opendir(src);
    if (!d) return fail(b, line, -errno, "'%s': %s", shown, strerror(errno));
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    errno = 0;
    while ((de = readdir(d))) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 16;
            char **g = realloc(names, nc * sizeof *g);
            if (!g) break;
            names = g;
            cap = nc;
        }
        if (!(names[n] = strdup(de->d_name))) break;
        n++;
    }
    int read_err = de ? ENOMEM : errno;
    closedir(d);
    if (read_err) rc = read_err == ENOMEM ? oom(b) : fail(b, line, -read_err, "'%s': %s", shown, strerror(read_err));
    if (rc == 0) qsort(names, n, sizeof *names, cmp_str);
    for (size_t i = 0; i < n && rc == 0; i++) {
        char *sub_name = NULL, *sub_src = NULL, *sub_shown = NULL;
        if (asprintf(&sub_name, "%s%s%s", name, name[0] ? "/" : "", names[i]) < 0) sub_name = NULL;
        if (asprintf(&sub_src, "%s/%s", src, names[i]) < 0) sub_src = NULL;
        if (asprintf(&sub_shown, "%s/%s", shown, names[i]) < 0) sub_shown = NULL;
        rc = sub_name && sub_src && sub_shown ? add_path(b, sub_name, sub_src, sub_shown, line, depth + 1) : oom(b);
        free(sub_name);
        free(sub_src);
        free(sub_shown);
    }
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
    return rc;
}

/* A path from the YAML, relative to the topology's directory. */
static int add_relative(builder *b, const yd_node *item, const char *what) {
    if (item->kind != YD_SCALAR || yd_is_null(item))
        return fail(b, item->line, -EINVAL, "%s: expected a file or directory name, got %s", what,
                    yd_kind_name(item));
    char name[PATH_MAX];
    int rc = normalize(item->text, name, sizeof name);
    if (rc == -EINVAL)
        return fail(b, item->line, rc, "%s: '%s': use a path inside the topology's directory", what, item->text);
    if (rc != 0) return fail(b, item->line, rc, "%s: '%s': path too long", what, item->text);
    if (strcmp(name, PACKAGE_TOPOLOGY_NAME) == 0 || strcmp(name, "lib") == 0 ||
        strncmp(name, LIB_DIR, strlen(LIB_DIR)) == 0)
        return fail(b, item->line, -EEXIST, "%s: '%s': that name is reserved in a package", what, item->text);
    char *src = NULL;
    if (asprintf(&src, "%s/%s", b->dir, name) < 0) return oom(b);
    rc = add_path(b, name, src, item->text, item->line, 0);
    free(src);
    return rc;
}

static int collect_files(builder *b, const yd_node *root) {
    const yd_node *files = yd_get(root, "files");
    if (!files || yd_is_null(files)) return 0;
    if (files->kind != YD_SEQ) return fail(b, files->line, -EINVAL, "files: expected a list of paths");
    for (size_t i = 0; i < files->n; i++) {
        int rc = add_relative(b, files->items[i], "files");
        if (rc != 0) return rc;
    }
    return 0;
}

static int collect_resources(builder *b, const yd_node *root) {
    static const char *const sections[] = {"spouts", "bolts"};
    for (int s = 0; s < 2; s++) {
        const yd_node *sec = yd_get(root, sections[s]);
        if (!sec || sec->kind != YD_SEQ) continue;
        for (size_t i = 0; i < sec->n; i++) {
            const yd_node *res = yd_get(sec->items[i], "resources");
            if (!res || yd_is_null(res)) continue;
            int rc = add_relative(b, res, "resources");
            if (rc != 0) return rc;
        }
    }
    return 0;
}

/* ---- the topology text -------------------------------------------------- */

static int read_topology(builder *b, char **out, size_t *len) {
    int fd = open(b->topo_path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        int rc = fail(b, 0, -errno, "cannot open: %s", strerror(errno));
        if (fd >= 0) close(fd);
        return rc;
    }
    if (!S_ISREG(st.st_mode) || st.st_size > TOPOLOGY_MAX_BYTES) {
        close(fd);
        return S_ISREG(st.st_mode) ? fail(b, 0, -EFBIG, "larger than %d bytes", TOPOLOGY_MAX_BYTES)
                                   : fail(b, 0, -EINVAL, "not a regular file");
    }
    char *text = malloc((size_t)st.st_size + 1);
    if (!text) {
        close(fd);
        return oom(b);
    }
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t k = read(fd, text + got, (size_t)st.st_size - got);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) {
            int rc = fail(b, 0, k < 0 ? -errno : -EIO, "cannot read: %s", k < 0 ? strerror(errno) : "file shrank");
            free(text);
            close(fd);
            return rc;
        }
        got += (size_t)k;
    }
    close(fd);
    text[got] = '\0';
    *out = text;
    *len = got;
    return 0;
}

/* Start of 1-based line in text, or NULL. */
static char *line_start(char *text, int line) {
    char *p = text;
    for (int i = 1; i < line && p; i++) {
        p = strchr(p, '\n');
        if (p) p++;
    }
    return p;
}

/* The topology text with its top-level `library:` line replaced by one that
 * names lib_name. Only a plain `library: VALUE [# comment]` line at the
 * start of a line is rewritten; anything else is refused rather than
 * guessed at. The result is parsed again to be sure. */
static char *rewrite_library(builder *b, const char *text, size_t len, const yd_node *root, const char *lib_name,
                             size_t *out_len) {
    int ki = yd_index(root, "library");
    const yd_node *lib = root->items[ki];
    int line = root->key_lines[ki];
    char *copy = strndup(text, len);
    if (!copy) {
        oom(b);
        return NULL;
    }
    char *start = line_start(copy, line);
    size_t klen = strlen("library");
    char *p = start ? start + klen : NULL;
    if (p) p += strspn(p, " \t");
    if (!start || strncmp(start, "library", klen) != 0 || !p || *p != ':' || lib->line != line) {
        fail(b, line, -EINVAL, "library: write it as one plain line 'library: FILE' to submit it");
        free(copy);
        return NULL;
    }
    char *end = strchr(start, '\n');
    if (end && end > start && end[-1] == '\r') end--;
    /* single-quoted YAML: only ' needs escaping, by doubling it */
    size_t qlen = 0;
    for (const char *q = lib_name; *q; q++) qlen += *q == '\'' ? 2 : 1;
    char *quoted = malloc(qlen + 1);
    if (!quoted) {
        free(copy);
        oom(b);
        return NULL;
    }
    for (size_t j = 0, i = 0; (quoted[j] = lib_name[i]); i++, j++)
        if (lib_name[i] == '\'') quoted[++j] = '\'';
    char *out = NULL;
    int n = asprintf(&out, "%.*slibrary: '%s'%s", (int)(start - copy), copy, quoted, end ? end : "");
    free(quoted);
    free(copy);
    if (n < 0) {
        oom(b);
        return NULL;
    }
    char err[512];
    yd_node *again = yd_load_string(PACKAGE_TOPOLOGY_NAME, out, (size_t)n, err, sizeof err);
    const yd_node *nl = again ? yd_get(again, "library") : NULL;
    bool same_keys = again && again->kind == YD_MAP && again->n == root->n;
    if (!nl || nl->kind != YD_SCALAR || strcmp(nl->text, lib_name) != 0 || !same_keys) {
        fail(b, line, -EINVAL, "library: write it as one plain line 'library: FILE' to submit it");
        yd_free(again);
        free(out);
        return NULL;
    }
    yd_free(again);
    *out_len = (size_t)n;
    return out;
}

static int add_library(builder *b, const yd_node *root, char **lib_name) {
    const yd_node *lib = yd_get(root, "library");
    *lib_name = NULL;
    if (!lib || yd_is_null(lib)) return 0;
    if (lib->kind != YD_SCALAR) return fail(b, lib->line, -EINVAL, "library: expected a file name");
    char *src = NULL;
    if (lib->text[0] == '/' ? !(src = strdup(lib->text)) : asprintf(&src, "%s/%s", b->dir, lib->text) < 0)
        return oom(b);
    struct stat st;
    int rc = 0;
    if (stat(src, &st) != 0)
        rc = fail(b, lib->line, -errno, "library '%s': %s", lib->text, strerror(errno));
    else if (!S_ISREG(st.st_mode))
        rc = fail(b, lib->line, -EINVAL, "library '%s': not a regular file", lib->text);
    if (rc == 0) {
        char *tmp = strdup(src);
        if (!tmp || asprintf(lib_name, LIB_DIR "%s", basename(tmp)) < 0) {
            *lib_name = NULL;
            rc = oom(b);
        }
        free(tmp);
    }
    if (rc == 0) rc = add_entry(b, *lib_name, src, &st, lib->line);
    free(src);
    return rc;
}

/* ---- the archive ----------------------------------------------------------- */

typedef struct membuf {
    unsigned char *p;
    size_t len, cap;
} membuf;

static la_ssize_t mem_write(struct archive *a, void *arg, const void *data, size_t n) {
    membuf *m = arg;
    if (n > m->cap - m->len) {
        size_t nc = m->cap ? m->cap : 64 * 1024;
        while (nc - m->len < n) nc *= 2;
        unsigned char *g = realloc(m->p, nc);
        if (!g) {
            archive_set_error(a, ENOMEM, "out of memory");
            return -1;
        }
        m->p = g;
        m->cap = nc;
    }
    memcpy(m->p + m->len, data, n);
    m->len += n;
    return (la_ssize_t)n;
}

static int entry_cmp(const void *a, const void *b) {
    return strcmp(((const pk_entry *)a)->name, ((const pk_entry *)b)->name);
}

static int write_file(builder *b, struct archive *a, const pk_entry *e) {
    int fd = open(e->src, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return fail(b, e->line, -errno, "'%s': %s", e->src, strerror(errno));
    char buf[64 * 1024];
    int64_t left = e->size;
    int rc = 0;
    while (left > 0 && rc == 0) {
        ssize_t k = read(fd, buf, left < (int64_t)sizeof buf ? (size_t)left : sizeof buf);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0)
            rc = fail(b, e->line, k < 0 ? -errno : -EIO, "'%s': %s", e->src, k < 0 ? strerror(errno) : "file shrank");
        else if (archive_write_data(a, buf, (size_t)k) != k)
            rc = fail(b, e->line, -EIO, "archive: %s", archive_error_string(a));
        else
            left -= k;
    }
    close(fd);
    return rc;
}

static int write_archive(builder *b, const char *topo, size_t topo_len, membuf *out) {
    qsort(b->e, b->n, sizeof *b->e, entry_cmp);
    for (size_t i = 1; i < b->n; i++)
        if (strcmp(b->e[i - 1].name, b->e[i].name) == 0 &&
            (!b->e[i - 1].src || !b->e[i].src || strcmp(b->e[i - 1].src, b->e[i].src) != 0))
            return fail(b, b->e[i].line, -EEXIST, "two different files would be '%s' in the package", b->e[i].name);
    struct archive *a = archive_write_new();
    struct archive_entry *ae = archive_entry_new();
    if (!a || !ae) {
        archive_write_free(a);
        archive_entry_free(ae);
        return oom(b);
    }
    int rc = 0;
    if (archive_write_set_format_pax_restricted(a) != ARCHIVE_OK || archive_write_add_filter_gzip(a) != ARCHIVE_OK ||
        archive_write_set_options(a, "gzip:!timestamp") != ARCHIVE_OK ||
        archive_write_open2(a, out, NULL, mem_write, NULL, NULL) != ARCHIVE_OK)
        rc = fail(b, 0, -EIO, "archive: %s", archive_error_string(a));
    for (size_t i = 0; i < b->n && rc == 0; i++) {
        const pk_entry *e = &b->e[i];
        if (i > 0 && strcmp(b->e[i - 1].name, e->name) == 0) continue; /* the same file twice */
        archive_entry_clear(ae);
        archive_entry_set_pathname(ae, e->name);
        archive_entry_set_filetype(ae, e->dir ? AE_IFDIR : AE_IFREG);
        archive_entry_set_perm(ae, e->dir || e->exec ? 0755 : 0644);
        archive_entry_set_size(ae, e->dir ? 0 : e->src ? e->size : (int64_t)topo_len);
        archive_entry_set_mtime(ae, 0, 0);
        archive_entry_set_uid(ae, 0);
        archive_entry_set_gid(ae, 0);
        if (archive_write_header(a, ae) != ARCHIVE_OK) {
            rc = fail(b, e->line, -EIO, "archive: '%s': %s", e->name, archive_error_string(a));
        } else if (!e->src) {
            if (archive_write_data(a, topo, topo_len) != (la_ssize_t)topo_len)
                rc = fail(b, 0, -EIO, "archive: %s", archive_error_string(a));
        } else if (!e->dir) {
            rc = write_file(b, a, e);
        }
    }
    if (rc == 0 && archive_write_close(a) != ARCHIVE_OK) rc = fail(b, 0, -EIO, "archive: %s", archive_error_string(a));
    archive_entry_free(ae);
    archive_write_free(a);
    return rc;
}

int package_build(const char *topology_path, void **out, size_t *len, char hash[PACKAGE_HASH_HEX], char *err,
                  size_t errlen) {
    builder b = {.topo_path = topology_path, .err = err, .errlen = errlen};
    *out = NULL;
    *len = 0;
    size_t text_len = 0, topo_len = 0;
    char *text = NULL, *topo = NULL, *lib_name = NULL;
    int rc = read_topology(&b, &text, &text_len);
    if (rc != 0) return rc;
    yd_node *root = yd_load_string(topology_path, text, text_len, err, errlen);
    if (!root) rc = -EINVAL;
    if (rc == 0 && root->kind != YD_MAP) rc = fail(&b, root->line, -EINVAL, "a topology is a mapping (name:, spouts:, bolts:)");
    if (rc == 0) {
        char *real = realpath(topology_path, NULL);
        if (!real) rc = fail(&b, 0, -errno, "%s", strerror(errno));
        else if (!(b.dir = strdup(dirname(real)))) rc = oom(&b);
        free(real);
    }
    if (rc == 0) rc = add_library(&b, root, &lib_name);
    if (rc == 0) rc = collect_files(&b, root);
    if (rc == 0) rc = collect_resources(&b, root);
    if (rc == 0) {
        topo = lib_name ? rewrite_library(&b, text, text_len, root, lib_name, &topo_len) : strdup(text);
        if (!lib_name) topo_len = text_len;
        if (!topo) rc = lib_name ? -EINVAL : oom(&b);
    }
    if (rc == 0) rc = add_entry(&b, PACKAGE_TOPOLOGY_NAME, NULL, NULL, 0);
    membuf m = {0};
    if (rc == 0) rc = write_archive(&b, topo, topo_len, &m);
    if (rc == 0) {
        package_hash(m.p, m.len, hash);
        *out = m.p;
        *len = m.len;
    } else {
        free(m.p);
    }
    for (size_t i = 0; i < b.n; i++) {
        free(b.e[i].name);
        free(b.e[i].src);
    }
    free(b.e);
    free(b.dir);
    free(lib_name);
    free(topo);
    yd_free(root);
    free(text);
    return rc;
}
