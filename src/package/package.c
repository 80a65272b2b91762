/*
 * package: hashing, unpacking and reading a package (see package.h).
 * Called by the master (to validate a submission's topology) and by nodes
 * (to unpack a fetched package into their cache). An archive comes from
 * the network, so everything in it is checked before it touches the disk:
 * names stay inside the target directory, links cannot point out of it,
 * only files, directories and links are written, and sizes are bounded.
 * No threads.
 */
#include "package/package.h"
#include "base/err.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <ftw.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TOPOLOGY_TEXT_MAX (1024 * 1024)
#define NAME_MAX_LEN 1024

void package_hash(const void *data, size_t len, char hash[PACKAGE_HASH_HEX]) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (EVP_Digest(data, len, md, &n, EVP_sha256(), NULL) != 1 || n != 32) {
        /* only on a broken libcrypto: a value no real hash equals */
        memset(hash, '-', PACKAGE_HASH_HEX - 1);
        hash[PACKAGE_HASH_HEX - 1] = '\0';
        return;
    }
    static const char hex[] = "0123456789abcdef";
    for (unsigned i = 0; i < 32; i++) {
        hash[2 * i] = hex[md[i] >> 4];
        hash[2 * i + 1] = hex[md[i] & 15];
    }
    hash[64] = '\0';
}

bool package_hash_valid(const char *hash) {
    if (!hash) return false;
    size_t i = 0;
    for (; hash[i]; i++)
        if (i >= 64 || !((hash[i] >= '0' && hash[i] <= '9') || (hash[i] >= 'a' && hash[i] <= 'f'))) return false;
    return i == 64;
}

static struct archive *open_reader(const void *data, size_t len) {
    struct archive *r = archive_read_new();
    if (!r) return NULL;
    if (archive_read_support_filter_gzip(r) != ARCHIVE_OK || archive_read_support_format_tar(r) != ARCHIVE_OK ||
        archive_read_open_memory(r, data, len) != ARCHIVE_OK) {
        archive_read_free(r);
        return NULL;
    }
    return r;
}

/* A name inside the archive: relative, no "..", bounded. */
static bool name_ok(const char *name) {
    if (!name || !name[0] || name[0] == '/' || strlen(name) > NAME_MAX_LEN) return false;
    for (const char *p = name; *p;) {
        const char *q = strchr(p, '/');
        size_t len = q ? (size_t)(q - p) : strlen(p);
        if (len == 2 && p[0] == '.' && p[1] == '.') return false;
        p += len;
        while (*p == '/') p++;
    }
    return true;
}

/* A symbolic link's target: relative and without "..", so it resolves at or
 * below the link's own directory, and so inside dir whatever other links
 * the path goes through (they obey the same rule). */
static bool link_target_ok(const char *target) { return name_ok(target); }

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path) == 0 || errno == ENOENT ? 0 : -1;
}

/* An empty directory at dir (made here if absent); its real path in *real. */
static int prepare_dir(const char *dir, char **real, char *err, size_t errlen) {
    if (mkdir(dir, 0755) != 0) {
        if (errno != EEXIST) return sd_err_msg(err, errlen, -errno, "%s: %s", dir, strerror(errno));
        struct stat st;
        if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
            return sd_err_msg(err, errlen, -ENOTDIR, "%s: %s", dir, strerror(ENOTDIR));
        if (rmdir(dir) != 0) /* succeeds only when empty; made again below */
            return sd_err_msg(err, errlen, -ENOTEMPTY, "%s: %s", dir, strerror(errno));
        if (mkdir(dir, 0755) != 0) return sd_err_msg(err, errlen, -errno, "%s: %s", dir, strerror(errno));
    }
    /* without links in the prefix, libarchive's refusal to write through a
     * link applies to what the archive made only */
    if (!(*real = realpath(dir, NULL))) return sd_err_msg(err, errlen, -errno, "%s: %s", dir, strerror(errno));
    return 0;
}

typedef struct unpacker {
    struct archive *r, *w;
    struct archive_entry *e;
    const char *real;
    uint64_t total;
    size_t entries;
    char *err;
    size_t errlen;
} unpacker;

static int copy_data(unpacker *u, const char *name) {
    const void *buf;
    size_t size;
    la_int64_t off;
    int64_t written = 0;
    for (;;) {
        int rc = archive_read_data_block(u->r, &buf, &size, &off);
        if (rc == ARCHIVE_EOF) return 0;
        if (rc != ARCHIVE_OK)
            return sd_err_msg(u->err, u->errlen, -EINVAL, "package: '%s': %s", name, archive_error_string(u->r));
        written += (int64_t)size;
        u->total += size;
        if (off < 0 || written > PACKAGE_MAX_BYTES || u->total > PACKAGE_MAX_BYTES)
            return sd_err_msg(u->err, u->errlen, -EFBIG, "package: '%s': more than %d MiB", name,
                              PACKAGE_MAX_BYTES >> 20);
        if (archive_write_data_block(u->w, buf, size, off) != ARCHIVE_OK)
            return sd_err_msg(u->err, u->errlen, -EIO, "package: '%s': %s", name, archive_error_string(u->w));
    }
}

static int unpack_entry(unpacker *u, struct archive_entry *e) {
    char name[NAME_MAX_LEN + 1];
    const char *pn = archive_entry_pathname(e);
    if (!name_ok(pn))
        return sd_err_msg(u->err, u->errlen, -EINVAL, "package: entry '%s': names must be relative, without '..'",
                       pn ? pn : "");
    snprintf(name, sizeof name, "%s", pn);
    if (++u->entries > PACKAGE_MAX_ENTRIES)
        return sd_err_msg(u->err, u->errlen, -EFBIG, "package: more than %d entries", PACKAGE_MAX_ENTRIES);
    mode_t type = archive_entry_filetype(e);
    const char *hard = archive_entry_hardlink(e);
    char *path = NULL, *hard_path = NULL;
    if (hard && !name_ok(hard))
        return sd_err_msg(u->err, u->errlen, -EINVAL, "package: entry '%s': hard link to '%s' leaves the package", name,
                       hard);
    if (type == AE_IFLNK) {
        const char *target = archive_entry_symlink(e);
        if (!target || !link_target_ok(target))
            return sd_err_msg(u->err, u->errlen, -EINVAL, "package: entry '%s': link to '%s' leaves the package", name,
                           target ? target : "");
    } else if (type != AE_IFREG && type != AE_IFDIR && !hard) {
        return sd_err_msg(u->err, u->errlen, -EINVAL, "package: entry '%s': not a file, directory or link", name);
    }
    int64_t size = archive_entry_size_is_set(e) ? archive_entry_size(e) : 0;
    if (size < 0 || size > PACKAGE_MAX_BYTES)
        return sd_err_msg(u->err, u->errlen, -EFBIG, "package: '%s': more than %d MiB", name, PACKAGE_MAX_BYTES >> 20);
    if (asprintf(&path, "%s/%s", u->real, name) < 0 || (hard && asprintf(&hard_path, "%s/%s", u->real, hard) < 0)) {
        free(path);
        return sd_err_msg(u->err, u->errlen, -ENOMEM, "out of memory");
    }
    archive_entry_set_pathname(e, path);
    if (hard) archive_entry_set_hardlink(e, hard_path);
    if (type == AE_IFDIR)
        archive_entry_set_perm(e, 0755);
    else if (type == AE_IFREG)
        archive_entry_set_perm(e, archive_entry_perm(e) & 0111 ? 0755 : 0644);
    archive_entry_set_uid(e, getuid()); /* owners are never restored, but keep them plausible */
    archive_entry_set_gid(e, getgid());
    int rc = 0;
    if (archive_write_header(u->w, e) != ARCHIVE_OK)
        rc = sd_err_msg(u->err, u->errlen, -EIO, "package: '%s': %s", name, archive_error_string(u->w));
    else if (type == AE_IFREG && !hard)
        rc = copy_data(u, name);
    if (rc == 0 && archive_write_finish_entry(u->w) != ARCHIVE_OK)
        rc = sd_err_msg(u->err, u->errlen, -EIO, "package: '%s': %s", name, archive_error_string(u->w));
    free(path);
    free(hard_path);
    return rc;
}

int package_unpack(const void *data, size_t len, const char *dir, char *err, size_t errlen) {
    unpacker u = {.err = err, .errlen = errlen};
    char *real = NULL;
    int rc = prepare_dir(dir, &real, err, errlen);
    if (rc != 0) return rc;
    u.real = real;
    u.r = open_reader(data, len);
    u.w = archive_write_disk_new();
    if (!u.r || !u.w) {
        rc = sd_err_msg(err, errlen, u.r ? -ENOMEM : -EINVAL, u.r ? "out of memory" : "package: not a package archive");
    } else {
        archive_write_disk_set_options(u.w, ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_SECURE_SYMLINKS |
                                                ARCHIVE_EXTRACT_SECURE_NODOTDOT | ARCHIVE_EXTRACT_NO_OVERWRITE);
        struct archive_entry *e;
        for (;;) {
            int r = archive_read_next_header(u.r, &e);
            if (r == ARCHIVE_EOF) break;
            if (r != ARCHIVE_OK && r != ARCHIVE_WARN) {
                rc = sd_err_msg(err, errlen, -EINVAL, "package: %s", archive_error_string(u.r));
                break;
            }
            if ((rc = unpack_entry(&u, e)) != 0) break;
        }
        if (rc == 0 && u.entries == 0) rc = sd_err_msg(err, errlen, -EINVAL, "package: empty archive");
        if (rc == 0 && archive_write_close(u.w) != ARCHIVE_OK)
            rc = sd_err_msg(err, errlen, -EIO, "package: %s", archive_error_string(u.w));
    }
    if (u.w) archive_write_free(u.w);
    if (u.r) archive_read_free(u.r);
    if (rc != 0) nftw(real, rm_one, 16, FTW_DEPTH | FTW_PHYS); /* leave nothing half-unpacked */
    free(real);
    return rc;
}

char *package_topology_text(const void *data, size_t len, char *err, size_t errlen) {
    struct archive *r = open_reader(data, len);
    if (!r) {
        sd_err_msg(err, errlen, -EINVAL, "package: not a package archive");
        return NULL;
    }
    struct archive_entry *e;
    char *text = NULL;
    int rc;
    sd_err_msg(err, errlen, -ENOENT, "package: no %s in it", PACKAGE_TOPOLOGY_NAME);
    while ((rc = archive_read_next_header(r, &e)) == ARCHIVE_OK || rc == ARCHIVE_WARN) {
        if (strcmp(archive_entry_pathname(e) ? archive_entry_pathname(e) : "", PACKAGE_TOPOLOGY_NAME) != 0) continue;
        int64_t size = archive_entry_size(e);
        if (archive_entry_filetype(e) != AE_IFREG || size < 0 || size > TOPOLOGY_TEXT_MAX) {
            sd_err_msg(err, errlen, -EINVAL, "package: %s is not a file of at most %d bytes", PACKAGE_TOPOLOGY_NAME,
                    TOPOLOGY_TEXT_MAX);
            break;
        }
        if (!(text = malloc((size_t)size + 1))) {
            sd_err_msg(err, errlen, -ENOMEM, "out of memory");
            break;
        }
        la_ssize_t got = archive_read_data(r, text, (size_t)size);
        if (got != (la_ssize_t)size) {
            sd_err_msg(err, errlen, -EINVAL, "package: %s: %s", PACKAGE_TOPOLOGY_NAME,
                    got < 0 ? archive_error_string(r) : "truncated");
            free(text);
            text = NULL;
            break;
        }
        text[size] = '\0';
        if (memchr(text, '\0', (size_t)size)) {
            sd_err_msg(err, errlen, -EINVAL, "package: %s holds a NUL byte", PACKAGE_TOPOLOGY_NAME);
            free(text);
            text = NULL;
        }
        break;
    }
    if (!text && rc != ARCHIVE_OK && rc != ARCHIVE_WARN && rc != ARCHIVE_EOF)
        sd_err_msg(err, errlen, -EINVAL, "package: %s", archive_error_string(r));
    archive_read_free(r);
    return text;
}
