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

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

#define PACKAGE_CHUNK_BYTES (512 * 1024)
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
 * that finds the manifest finds every chunk. cb gets 0 or the first error. */
typedef void (*package_done_cb)(void *arg, int err);
int package_store_put(store *st, const char *cluster, const char *hash, const void *data, size_t len,
                      package_done_cb cb, void *arg);

/* Fetches packages/<hash>/ and verifies the hash: cb gets the bytes
 * (valid during the call) or an error (SD_EHASH for a corrupted package,
 * -ENOENT when absent). */
typedef void (*package_fetch_cb)(void *arg, int err, const void *data, size_t len);
int package_store_fetch(store *st, const char *cluster, const char *hash, package_fetch_cb cb, void *arg);

/* Deletes packages/<hash>/. */
int package_store_delete(store *st, const char *cluster, const char *hash, package_done_cb cb, void *arg);

#endif
