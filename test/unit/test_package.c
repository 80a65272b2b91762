/* package: build from a topology directory (library, files:, resources:),
 * reproducible hashes, unpack round trip, hostile archives refused, and
 * packages in the store (chunks, manifest, guard, corruption). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/time.h>
#include <unistd.h>
#include <uv.h>

#include "package/package.h"
#include "store/faulty_store.h"
#include "store/memstore.h"

static char tmp[256]; /* this test's scratch directory */

/* ---- files ---- */

static void write_file(const char *rel, const void *data, size_t len, mode_t mode) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", tmp, rel);
    /* parents first */
    for (char *p = path + strlen(tmp) + 1; (p = strchr(p, '/')); p++) {
        *p = '\0';
        mkdir(path, 0755);
        *p = '/';
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    close(fd);
    assert_int_equal(chmod(path, mode), 0);
}

static void write_text(const char *rel, const char *text) { write_file(rel, text, strlen(text), 0644); }

static char *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n == cap) {
            cap = cap ? cap * 2 : 4096;
            buf = realloc(buf, cap + 1);
            assert_non_null(buf);
        }
        size_t k = fread(buf + n, 1, cap - n, f);
        if (k == 0) break;
        n += k;
    }
    fclose(f);
    buf[n] = '\0';
    *len = n;
    return buf;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void rm_rf(const char *path) { nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS); }

static const char topology_yaml[] =
    "# word count\n"
    "name: wc\n"
    "library: build/libwc.so   # built by make\n"
    "files:\n"
    "  - data/words.txt\n"
    "  - ./conf/\n"
    "spouts:\n"
    "  - id: lines\n"
    "    class: file_lines\n"
    "    args: {path: data/words.txt}\n"
    "bolts:\n"
    "  - id: count\n"
    "    class: wc_count\n"
    "    resources: scripts\n"
    "    inputs: [{from: lines, grouping: shuffle}]\n";

static unsigned char libbytes[3000];

static void make_topology_dir(void) {
    for (size_t i = 0; i < sizeof libbytes; i++) libbytes[i] = (unsigned char)(i * 31 + 7); /* NULs included */
    write_text("topo/wc.yaml", topology_yaml);
    write_file("topo/build/libwc.so", libbytes, sizeof libbytes, 0755);
    write_text("topo/data/words.txt", "the quick brown fox\n");
    write_text("topo/data/not-listed.txt", "left out\n");
    write_text("topo/conf/a.txt", "a\n");
    write_text("topo/conf/sub/b.txt", "b\n");
    write_text("topo/scripts/count.py", "print('count')\n");
}

static int setup(void **state) {
    (void)state;
    snprintf(tmp, sizeof tmp, "/tmp/sd-test-package-XXXXXX");
    assert_non_null(mkdtemp(tmp));
    make_topology_dir();
    return 0;
}

static int teardown(void **state) {
    (void)state;
    rm_rf(tmp);
    return 0;
}

static void build(const char *rel, void **pkg, size_t *len, char hash[PACKAGE_HASH_HEX]) {
    char path[512], err[1024] = "";
    snprintf(path, sizeof path, "%s/%s", tmp, rel);
    int rc = package_build(path, pkg, len, hash, err, sizeof err);
    if (rc != 0) fail_msg("package_build: %s", err);
    assert_true(*len > 0);
}

/* The entry names of an archive, "name:type" joined by spaces. */
static void list_entries(const void *pkg, size_t len, char *out, size_t cap) {
    struct archive *a = archive_read_new();
    archive_read_support_filter_gzip(a);
    archive_read_support_format_tar(a);
    assert_int_equal(archive_read_open_memory(a, pkg, len), ARCHIVE_OK);
    struct archive_entry *e;
    out[0] = '\0';
    while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
        size_t n = strlen(out);
        snprintf(out + n, cap - n, "%s%s:%s", n ? " " : "", archive_entry_pathname(e),
                 archive_entry_filetype(e) == AE_IFDIR ? "d" : "f");
        assert_int_equal(archive_entry_mtime(e), 0);
        assert_int_equal(archive_entry_uid(e), 0);
    }
    archive_read_free(a);
}

/* ---- build ---- */

static void test_build_contents(void **state) {
    (void)state;
    void *pkg;
    size_t len;
    char hash[PACKAGE_HASH_HEX];
    build("topo/wc.yaml", &pkg, &len, hash);
    assert_true(package_hash_valid(hash));
    char check[PACKAGE_HASH_HEX];
    package_hash(pkg, len, check);
    assert_string_equal(hash, check);
    char names[1024];
    list_entries(pkg, len, names, sizeof names);
    assert_string_equal(names, "conf/:d conf/a.txt:f conf/sub/:d conf/sub/b.txt:f data/words.txt:f lib/libwc.so:f "
                               "scripts/:d scripts/count.py:f topology.yaml:f");
    char err[256];
    char *text = package_topology_text(pkg, len, err, sizeof err);
    assert_non_null(text);
    /* only the library line changed */
    const char *lib_line = "library: build/libwc.so   # built by make\n";
    const char *at = strstr(topology_yaml, lib_line);
    assert_non_null(at);
    size_t before = (size_t)(at - topology_yaml);
    assert_memory_equal(text, topology_yaml, before);
    const char *new_line = "library: 'lib/libwc.so'\n";
    assert_memory_equal(text + before, new_line, strlen(new_line));
    assert_string_equal(text + before + strlen(new_line), at + strlen(lib_line));
    free(text);
    free(pkg);
}

static void test_build_reproducible(void **state) {
    (void)state;
    void *p1, *p2, *p3;
    size_t l1, l2, l3;
    char h1[PACKAGE_HASH_HEX], h2[PACKAGE_HASH_HEX], h3[PACKAGE_HASH_HEX];
    build("topo/wc.yaml", &p1, &l1, h1);
    /* other times on every input, and a later clock: the same package */
    const char *touch[] = {"topo/wc.yaml", "topo/build/libwc.so", "topo/data/words.txt", "topo/conf/a.txt",
                           "topo/conf/sub", NULL};
    for (int i = 0; touch[i]; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s", tmp, touch[i]);
        struct timeval tv[2] = {{.tv_sec = 1000000 + i}, {.tv_sec = 2000000 + i}};
        assert_int_equal(utimes(path, tv), 0);
    }
    sleep(1); /* gzip would record the build time: make sure the clock moved */
    build("topo/wc.yaml", &p2, &l2, h2);
    assert_string_equal(h1, h2);
    assert_int_equal(l1, l2);
    assert_memory_equal(p1, p2, l1);
    /* one byte of content changed: another package */
    write_text("topo/conf/sub/b.txt", "c\n");
    build("topo/wc.yaml", &p3, &l3, h3);
    assert_string_not_equal(h1, h3);
    free(p1);
    free(p2);
    free(p3);
}

static void expect_build_error(const char *yaml, const char *want) {
    write_text("topo/bad.yaml", yaml);
    char path[512], err[1024] = "";
    snprintf(path, sizeof path, "%s/topo/bad.yaml", tmp);
    void *pkg = (void *)1;
    size_t len = 1;
    char hash[PACKAGE_HASH_HEX];
    assert_true(package_build(path, &pkg, &len, hash, err, sizeof err) < 0);
    assert_null(pkg);
    char full[1200];
    snprintf(full, sizeof full, "%s:%s", path, want);
    if (strcmp(err, full) != 0) fail_msg("got '%s', want '%s'", err, full);
}

static void test_build_errors(void **state) {
    (void)state;
    expect_build_error("name: x\nlibrary: build/nope.so\n", "2: library 'build/nope.so': No such file or directory");
    expect_build_error("name: x\nfiles:\n  - data/words.txt\n  - data/missing\n",
                       "4: 'data/missing': No such file or directory");
    expect_build_error("name: x\nfiles:\n  - ../etc/passwd\n",
                       "3: files: '../etc/passwd': use a path inside the topology's directory");
    expect_build_error("name: x\nfiles:\n  - /etc/passwd\n",
                       "3: files: '/etc/passwd': use a path inside the topology's directory");
    expect_build_error("name: x\nfiles: data\n", "2: files: expected a list of paths");
    expect_build_error("name: x\nfiles: [lib/x]\n", "2: files: 'lib/x': that name is reserved in a package");
    expect_build_error("name: x\nlibrary: >-\n  build/libwc.so\n",
                       "2: library: write it as one plain line 'library: FILE' to submit it");
    expect_build_error("name: x\nbolts:\n  - id: b\n    resources: [a, b]\n",
                       "4: resources: expected a file or directory name, got a sequence");
    expect_build_error("name: [unclosed\n", "2: yaml: did not find expected ',' or ']' (while parsing a flow sequence at line 1)");
    /* a file that cannot be read */
    char err[512];
    void *pkg;
    size_t len;
    char hash[PACKAGE_HASH_HEX];
    assert_int_equal(package_build("/nonexistent/t.yaml", &pkg, &len, hash, err, sizeof err), -ENOENT);
    assert_string_equal(err, "/nonexistent/t.yaml: cannot open: No such file or directory");
}

/* ---- unpack ---- */

static void test_unpack_round_trip(void **state) {
    (void)state;
    void *pkg;
    size_t len;
    char hash[PACKAGE_HASH_HEX], out[512], path[600], err[512] = "";
    build("topo/wc.yaml", &pkg, &len, hash);
    snprintf(out, sizeof out, "%s/out", tmp);
    if (package_unpack(pkg, len, out, err, sizeof err) != 0) fail_msg("unpack: %s", err);
    size_t n;
    char *text;
    snprintf(path, sizeof path, "%s/lib/libwc.so", out);
    assert_non_null(text = read_all(path, &n));
    assert_int_equal(n, sizeof libbytes);
    assert_memory_equal(text, libbytes, n);
    free(text);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_true(st.st_mode & S_IXUSR);
    snprintf(path, sizeof path, "%s/conf/sub/b.txt", out);
    assert_non_null(text = read_all(path, &n));
    assert_string_equal(text, "b\n");
    free(text);
    snprintf(path, sizeof path, "%s/data/words.txt", out);
    assert_non_null(text = read_all(path, &n));
    assert_string_equal(text, "the quick brown fox\n");
    free(text);
    snprintf(path, sizeof path, "%s/data/not-listed.txt", out);
    assert_int_not_equal(access(path, F_OK), 0);
    snprintf(path, sizeof path, "%s/topology.yaml", out);
    assert_non_null(text = read_all(path, &n));
    char *inner = package_topology_text(pkg, len, err, sizeof err);
    assert_non_null(inner);
    assert_string_equal(text, inner);
    free(inner);
    free(text);
    /* a directory that is not empty is refused; so is garbage */
    assert_true(package_unpack(pkg, len, out, err, sizeof err) < 0);
    snprintf(out, sizeof out, "%s/out2", tmp);
    assert_true(package_unpack("not an archive", 14, out, err, sizeof err) < 0);
    assert_int_not_equal(access(out, F_OK), 0); /* nothing left behind */
    assert_null(package_topology_text("not an archive", 14, err, sizeof err));
    free(pkg);
}

typedef struct fake_entry {
    const char *name;
    mode_t type;
    const char *link;  /* symlink target */
    const char *hard;  /* hardlink target */
    const char *data;
} fake_entry;

/* A tar archive of the given entries, made with libarchive. */
static void *make_archive(const fake_entry *e, size_t n, size_t *len) {
    size_t cap = 1 << 20;
    void *buf = malloc(cap);
    assert_non_null(buf);
    struct archive *a = archive_write_new();
    archive_write_set_format_pax_restricted(a);
    assert_int_equal(archive_write_open_memory(a, buf, cap, len), ARCHIVE_OK);
    for (size_t i = 0; i < n; i++) {
        struct archive_entry *ae = archive_entry_new();
        archive_entry_set_pathname(ae, e[i].name);
        archive_entry_set_filetype(ae, e[i].type);
        archive_entry_set_perm(ae, 0644);
        if (e[i].link) archive_entry_set_symlink(ae, e[i].link);
        if (e[i].hard) archive_entry_set_hardlink(ae, e[i].hard);
        if (e[i].type == AE_IFCHR) archive_entry_set_rdev(ae, makedev(1, 3));
        size_t dl = e[i].data ? strlen(e[i].data) : 0;
        archive_entry_set_size(ae, (la_int64_t)dl);
        assert_int_equal(archive_write_header(a, ae), ARCHIVE_OK);
        if (dl) assert_int_equal(archive_write_data(a, e[i].data, dl), (la_ssize_t)dl);
        archive_entry_free(ae);
    }
    assert_int_equal(archive_write_close(a), ARCHIVE_OK);
    archive_write_free(a);
    return buf;
}

static void expect_refused(const fake_entry *e, size_t n, const char *want) {
    size_t len;
    void *pkg = make_archive(e, n, &len);
    char out[512], err[512] = "";
    snprintf(out, sizeof out, "%s/evil/inner", tmp);
    int rc = package_unpack(pkg, len, out, err, sizeof err);
    if (rc == 0) fail_msg("unpacked an archive with %s", e[n - 1].name);
    if (!strstr(err, want)) fail_msg("got '%s', want '%s'", err, want);
    assert_int_not_equal(access(out, F_OK), 0); /* removed */
    char outside[512];
    snprintf(outside, sizeof outside, "%s/evil/x", tmp);
    assert_int_not_equal(access(outside, F_OK), 0); /* nothing written next to it */
    snprintf(outside, sizeof outside, "%s/x", tmp);
    assert_int_not_equal(access(outside, F_OK), 0);
    free(pkg);
}

static void test_unpack_refuses_hostile(void **state) {
    (void)state;
    char evil[512];
    snprintf(evil, sizeof evil, "%s/evil", tmp);
    assert_int_equal(mkdir(evil, 0755), 0);
    fake_entry dotdot[] = {{"ok.txt", AE_IFREG, NULL, NULL, "fine"}, {"../x", AE_IFREG, NULL, NULL, "escaped"}};
    expect_refused(dotdot, 2, "names must be relative");
    fake_entry inner_dotdot[] = {{"a/../../x", AE_IFREG, NULL, NULL, "escaped"}};
    expect_refused(inner_dotdot, 1, "names must be relative");
    char abs[600];
    snprintf(abs, sizeof abs, "%s/x", evil);
    fake_entry absolute[] = {{abs, AE_IFREG, NULL, NULL, "escaped"}};
    expect_refused(absolute, 1, "names must be relative");
    fake_entry link_out[] = {{"l", AE_IFLNK, "../..", NULL, NULL}, {"l/x", AE_IFREG, NULL, NULL, "escaped"}};
    expect_refused(link_out, 2, "link to '../..' leaves the package");
    fake_entry link_abs[] = {{"l", AE_IFLNK, evil, NULL, NULL}};
    expect_refused(link_abs, 1, "leaves the package");
    fake_entry hard_out[] = {{"h", AE_IFREG, NULL, "../x", NULL}};
    expect_refused(hard_out, 1, "hard link to '../x' leaves the package");
    fake_entry device[] = {{"null", AE_IFCHR, NULL, NULL, NULL}};
    expect_refused(device, 1, "not a file, directory or link");
    fake_entry fifo[] = {{"p", AE_IFIFO, NULL, NULL, NULL}};
    expect_refused(fifo, 1, "not a file, directory or link");
    /* through a link that stays inside: libarchive still refuses to write through it */
    fake_entry through[] = {{"d", AE_IFDIR, NULL, NULL, NULL}, {"l", AE_IFLNK, "d", NULL, NULL},
                            {"l/x", AE_IFREG, NULL, NULL, "via link"}};
    expect_refused(through, 3, "l/x");
    /* a link inside, not written through, is fine */
    size_t len;
    fake_entry inside[] = {{"d", AE_IFDIR, NULL, NULL, NULL}, {"d/f", AE_IFREG, NULL, NULL, "data"},
                           {"l", AE_IFLNK, "d/f", NULL, NULL}};
    void *pkg = make_archive(inside, 3, &len);
    char out[600], err[512] = "";
    snprintf(out, sizeof out, "%s/ok", evil);
    if (package_unpack(pkg, len, out, err, sizeof err) != 0) fail_msg("unpack: %s", err);
    free(pkg);
}

/* A ustar header declaring a size far beyond the limit (no data follows). */
static void test_unpack_refuses_huge_entry(void **state) {
    (void)state;
    unsigned char tar[1536] = {0};
    unsigned char *h = tar;
    strcpy((char *)h, "big");
    memcpy(h + 100, "0000644", 8);
    memcpy(h + 108, "0000000", 8);
    memcpy(h + 116, "0000000", 8);
    memcpy(h + 124, "77777777777", 12); /* 8 GiB */
    memcpy(h + 136, "00000000000", 12);
    h[156] = '0';
    memcpy(h + 257, "ustar", 6);
    memcpy(h + 263, "00", 2);
    memset(h + 148, ' ', 8);
    unsigned sum = 0;
    for (int i = 0; i < 512; i++) sum += h[i];
    snprintf((char *)h + 148, 8, "%06o", sum);
    char out[512], err[512] = "";
    snprintf(out, sizeof out, "%s/huge", tmp);
    assert_true(package_unpack(tar, sizeof tar, out, err, sizeof err) < 0);
    if (!strstr(err, "more than 512 MiB")) fail_msg("got '%s'", err);
    assert_int_not_equal(access(out, F_OK), 0);
}

/* ---- the store ---- */

typedef struct waiter {
    bool done;
    int err;
    void *data;
    size_t len;
} waiter;

static void on_done(void *arg, int err) {
    waiter *w = arg;
    w->done = true;
    w->err = err;
}

static void on_fetched(void *arg, int err, const void *data, size_t len) {
    waiter *w = arg;
    w->done = true;
    w->err = err;
    if (err == 0) {
        w->data = malloc(len);
        assert_non_null(w->data);
        memcpy(w->data, data, len);
        w->len = len;
    }
}

static void on_result(void *arg, const store_result *r) {
    waiter *w = arg;
    w->done = true;
    w->err = r->err;
    w->len = r->nkvs;
}

static void run_until(uv_loop_t *loop, bool *flag) {
    uv_update_time(loop);
    uint64_t end = uv_now(loop) + 10000;
    while (!*flag && uv_now(loop) < end) {
        uv_run(loop, UV_RUN_ONCE);
        uv_update_time(loop);
    }
    assert_true(*flag);
}

typedef struct sfix {
    uv_loop_t loop;
    store *st;
} sfix;

static void sfix_open(sfix *f) {
    assert_int_equal(uv_loop_init(&f->loop), 0);
    assert_non_null(f->st = memstore_new(&f->loop));
}

static void sfix_close(sfix *f) {
    store_free(f->st);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
}

static void put(sfix *f, const char *hash, const void *data, size_t len, const store_cmp *guard, int want) {
    waiter w = {0};
    assert_int_equal(package_store_put(f->st, "c1", hash, data, len, guard, on_done, &w), 0);
    assert_false(w.done); /* never inside the call */
    run_until(&f->loop, &w.done);
    assert_int_equal(w.err, want);
}

static waiter fetch(sfix *f, const char *hash) {
    waiter w = {0};
    assert_int_equal(package_store_fetch(f->st, "c1", hash, on_fetched, &w), 0);
    run_until(&f->loop, &w.done);
    return w;
}

static void raw_put(sfix *f, const char *key, const void *value, size_t len) {
    waiter w = {0};
    assert_int_equal(store_put_bytes(f->st, key, value, len, 0, on_result, &w), 0);
    run_until(&f->loop, &w.done);
    assert_int_equal(w.err, 0);
}

static size_t count_keys(sfix *f, const char *prefix) {
    waiter w = {0};
    assert_int_equal(store_list(f->st, prefix, on_result, &w), 0);
    run_until(&f->loop, &w.done);
    assert_int_equal(w.err, 0);
    return w.len;
}

static void test_store_round_trip(void **state) {
    (void)state;
    sfix f;
    sfix_open(&f);
    /* 2.5 chunks of bytes, NULs included */
    size_t n = PACKAGE_CHUNK_BYTES * 2 + PACKAGE_CHUNK_BYTES / 2;
    unsigned char *data = malloc(n);
    assert_non_null(data);
    for (size_t i = 0; i < n; i++) data[i] = (unsigned char)((i * 2654435761u) >> 13);
    char hash[PACKAGE_HASH_HEX];
    package_hash(data, n, hash);
    put(&f, hash, data, n, NULL, 0);
    char prefix[256];
    snprintf(prefix, sizeof prefix, STORE_PREFIX "c1/packages/%s/", hash);
    assert_int_equal(count_keys(&f, prefix), 4); /* 3 chunks and the manifest */
    waiter w = fetch(&f, hash);
    assert_int_equal(w.err, 0);
    assert_int_equal(w.len, n);
    assert_memory_equal(w.data, data, n);
    free(w.data);
    /* absent */
    char other[PACKAGE_HASH_HEX];
    package_hash("x", 1, other);
    w = fetch(&f, other);
    assert_int_equal(w.err, -ENOENT);
    /* bad arguments are refused at once */
    assert_int_equal(package_store_fetch(f.st, "c1", "abc", on_fetched, &w), -EINVAL);
    assert_int_equal(package_store_put(f.st, "c1", hash, data, 0, NULL, on_done, &w), -EINVAL);
    assert_int_equal(package_store_put(f.st, "a/b", hash, data, n, NULL, on_done, &w), -EINVAL);
    /* delete */
    waiter d = {0};
    assert_int_equal(package_store_delete(f.st, "c1", hash, NULL, on_done, &d), 0);
    run_until(&f.loop, &d.done);
    assert_int_equal(d.err, 0);
    assert_int_equal(count_keys(&f, prefix), 0);
    w = fetch(&f, hash);
    assert_int_equal(w.err, -ENOENT);
    free(data);
    sfix_close(&f);
}

static void test_store_guard(void **state) {
    (void)state;
    sfix f;
    sfix_open(&f);
    raw_put(&f, STORE_PREFIX "c1/master/leader", "{\"id\":\"m1\"}", 11);
    const char *data = "package bytes";
    char hash[PACKAGE_HASH_HEX];
    package_hash(data, strlen(data), hash);
    /* the guard holds: written */
    store_cmp held = {.key = STORE_PREFIX "c1/master/leader", .target = STORE_CMP_CREATE_REV,
                      .op = STORE_CMP_NOT_EQUAL, .rev = 0};
    put(&f, hash, data, strlen(data), &held, 0);
    waiter w = fetch(&f, hash);
    assert_int_equal(w.err, 0);
    free(w.data);
    /* the guard fails (the key is gone: leadership lost): -EPERM, nothing written */
    store_cmp lost = {.key = STORE_PREFIX "c1/master/leader", .target = STORE_CMP_CREATE_REV,
                      .op = STORE_CMP_EQUAL, .rev = 0};
    char hash2[PACKAGE_HASH_HEX];
    package_hash("other", 5, hash2);
    put(&f, hash2, "other", 5, &lost, -EPERM);
    char prefix[256];
    snprintf(prefix, sizeof prefix, STORE_PREFIX "c1/packages/%s/", hash2);
    assert_int_equal(count_keys(&f, prefix), 0);
    waiter d = {0};
    assert_int_equal(package_store_delete(f.st, "c1", hash, &lost, on_done, &d), 0);
    run_until(&f.loop, &d.done);
    assert_int_equal(d.err, -EPERM);
    w = fetch(&f, hash); /* still there */
    assert_int_equal(w.err, 0);
    free(w.data);
    sfix_close(&f);
}

static void test_store_corruption(void **state) {
    (void)state;
    sfix f;
    sfix_open(&f);
    size_t n = PACKAGE_CHUNK_BYTES + 100;
    unsigned char *data = calloc(1, n);
    assert_non_null(data);
    data[7] = 1;
    char hash[PACKAGE_HASH_HEX], key[256];
    package_hash(data, n, hash);
    put(&f, hash, data, n, NULL, 0);
    /* one byte changed in a chunk, same size */
    unsigned char bad[100] = {0};
    bad[3] = 9;
    snprintf(key, sizeof key, STORE_PREFIX "c1/packages/%s/chunk-000001", hash);
    raw_put(&f, key, bad, sizeof bad);
    waiter w = fetch(&f, hash);
    assert_int_equal(w.err, SD_EHASH);
    /* a chunk of the wrong size */
    raw_put(&f, key, bad, 50);
    w = fetch(&f, hash);
    assert_int_equal(w.err, SD_EHASH);
    /* a missing chunk */
    waiter d = {0};
    assert_int_equal(store_del(f.st, key, false, on_result, &d), 0);
    run_until(&f.loop, &d.done);
    w = fetch(&f, hash);
    assert_int_equal(w.err, -ENODATA);
    /* manifests that lie */
    snprintf(key, sizeof key, STORE_PREFIX "c1/packages/%s/manifest", hash);
    const char *lies[] = {"{\"size\":600000000000,\"chunks\":1}", "{\"size\":100,\"chunks\":5}",
                          "{\"size\":-1,\"chunks\":0}", "not json", "{\"size\":\"1\",\"chunks\":1}", NULL};
    for (int i = 0; lies[i]; i++) {
        raw_put(&f, key, lies[i], strlen(lies[i]));
        w = fetch(&f, hash);
        assert_int_equal(w.err, SD_EPROTO_STORE);
    }
    free(data);
    sfix_close(&f);
}

static void test_store_cancel(void **state) {
    (void)state;
    sfix f;
    sfix_open(&f);
    char hash[PACKAGE_HASH_HEX];
    package_hash("abc", 3, hash);
    waiter w = {0};
    assert_int_equal(package_store_put(f.st, "c1", hash, "abc", 3, NULL, on_done, &w), 0);
    package_store_cancel(f.st, &w);
    waiter other = {0};
    assert_int_equal(package_store_fetch(f.st, "c1", hash, on_fetched, &other), 0);
    run_until(&f.loop, &other.done); /* the loop has run past where the put would have answered */
    assert_false(w.done);
    sfix_close(&f);
}

/* Store failures reach the caller; the traffic is one request per chunk. */
static void test_store_faults(void **state) {
    (void)state;
    sfix f;
    sfix_open(&f);
    store *inner = f.st;
    assert_non_null(f.st = faulty_store_new(&f.loop, inner));
    size_t n = PACKAGE_CHUNK_BYTES * 2 + 10;
    unsigned char *data = calloc(1, n);
    assert_non_null(data);
    char hash[PACKAGE_HASH_HEX];
    package_hash(data, n, hash);
    /* the first chunk write fails: so does the put, and nothing is readable */
    faulty_store_fail_ops(f.st, FAULTY_OP_PUT, FAULTY_BEFORE, -ECONNREFUSED, 1);
    put(&f, hash, data, n, NULL, -ECONNREFUSED);
    assert_int_equal(faulty_store_count(f.st, FAULTY_OP_PUT), 1);
    assert_int_equal(fetch(&f, hash).err, -ENOENT);
    /* a store that refuses at once: the call says so, no callback */
    faulty_store_fail_ops(f.st, FAULTY_OP_PUT, FAULTY_AT_CALL, SD_EUNAVAILABLE, 1);
    waiter w = {0};
    assert_int_equal(package_store_put(f.st, "c1", hash, data, n, NULL, on_done, &w), SD_EUNAVAILABLE);
    /* healthy: three chunks and a manifest written, read back with as many gets */
    faulty_store_heal(f.st);
    faulty_store_reset_counts(f.st);
    put(&f, hash, data, n, NULL, 0);
    assert_int_equal(faulty_store_count(f.st, FAULTY_OP_PUT), 4);
    waiter got = fetch(&f, hash);
    assert_int_equal(got.err, 0);
    free(got.data);
    assert_int_equal(faulty_store_count(f.st, FAULTY_OP_GET), 4);
    /* a lost reply in the middle of a fetch */
    faulty_store_fail_ops(f.st, FAULTY_OP_GET, FAULTY_AFTER, -ETIMEDOUT, 1);
    assert_int_equal(fetch(&f, hash).err, -ETIMEDOUT);
    store_free(f.st);
    f.st = inner;
    free(data);
    sfix_close(&f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_build_contents, setup, teardown),
        cmocka_unit_test_setup_teardown(test_build_reproducible, setup, teardown),
        cmocka_unit_test_setup_teardown(test_build_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unpack_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unpack_refuses_hostile, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unpack_refuses_huge_entry, setup, teardown),
        cmocka_unit_test(test_store_round_trip),
        cmocka_unit_test(test_store_guard),
        cmocka_unit_test(test_store_corruption),
        cmocka_unit_test(test_store_cancel),
        cmocka_unit_test(test_store_faults),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
