/*
 * package: a topology's package: the topology YAML and every file it needs
 * (its component `library:`, multi-lang `resources:` directories, files
 * listed under `files:`) in one tar archive made with libarchive, named by
 * the SHA-256 of its bytes. Built by `streamd submit`, stored by the master
 * in the store under packages/<sha256>/<chunk> in chunks of at most
 * PACKAGE_CHUNK_BYTES, fetched and verified by nodes, which unpack it into
 * their cache and run the workers from there.
 */
#ifndef SD_PACKAGE_H
#define SD_PACKAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

#define PACKAGE_CHUNK_BYTES (512 * 1024)
/* Bounds on what is built, stored, fetched and unpacked: a package, and
 * everything it unpacks to (and each file in it). */
#define PACKAGE_MAX_BYTES (512 * 1024 * 1024)
#define PACKAGE_MAX_ENTRIES 100000
#define PACKAGE_HASH_HEX 65 /* 64 hex digits and a NUL */
/* Inside the archive the topology file is always this name. */
#define PACKAGE_TOPOLOGY_NAME "topology.yaml"

/* Packs topology_path and what it names into *out (malloc'ed, *len bytes;
 * caller frees) and hex SHA-256 into hash. Library and file paths are stored
 * relative to the topology's directory and the topology file rewritten to
 * point at them. 0, or a negative code with a message in err. */
int package_build(const char *topology_path, void **out, size_t *len, char hash[PACKAGE_HASH_HEX], char *err,
                  size_t errlen);

/* hex SHA-256 of data. */
void package_hash(const void *data, size_t len, char hash[PACKAGE_HASH_HEX]);

/* Unpacks data into dir (created; must not exist or be empty), refusing
 * absolute paths, "..", links that leave dir, and devices. 0 or negative. */
int package_unpack(const void *data, size_t len, const char *dir, char *err, size_t errlen);

/* Extracts only the topology file's text (malloc'ed, NUL-terminated; caller
 * frees), for the master to validate a submission. NULL on error (err). */
char *package_topology_text(const void *data, size_t len, char *err, size_t errlen);

/* Stores data under packages/<hash>/ of cluster, in chunks, then a manifest
 * key packages/<hash>/manifest ({"size": n, "chunks": k}) last, so a reader
 * that finds the manifest finds every chunk. data is copied. guard (NULL =
 * none; copied) is the compare of every write: the leader passes
 * create_revision(master/leader) == its revision, and a write it no longer
 * may make fails with -EPERM. cb (on the store's loop) gets 0 or the first
 * error. The caller checks that hash is the hash of data. */
typedef void (*package_done_cb)(void *arg, int err);
int package_store_put(store *st, const char *cluster, const char *hash, const void *data, size_t len,
                      const store_cmp *guard, package_done_cb cb, void *arg);

/* Fetches packages/<hash>/ chunk by chunk and verifies the hash: cb gets
 * the bytes (valid during the call) or an error: -ENOENT when there is no
 * manifest, SD_EPROTO_STORE for a malformed or out-of-bounds manifest,
 * -ENODATA for a missing chunk, SD_EHASH for a chunk of the wrong size or
 * content that does not match the hash, or the store's error. */
typedef void (*package_fetch_cb)(void *arg, int err, const void *data, size_t len);
int package_store_fetch(store *st, const char *cluster, const char *hash, package_fetch_cb cb, void *arg);

/* Deletes packages/<hash>/ (its manifest and chunks, in one txn guarded by
 * guard as in package_store_put). Deleting an absent package is not an error. */
int package_store_delete(store *st, const char *cluster, const char *hash, const store_cmp *guard,
                         package_done_cb cb, void *arg);

/* No package_store_* callback whose arg is arg runs after this returns; the
 * requests it had made may still complete in the store. */
void package_store_cancel(store *st, void *arg);

/* True when hash is 64 lowercase hex digits (what package_hash writes). */
bool package_hash_valid(const char *hash);

#endif
