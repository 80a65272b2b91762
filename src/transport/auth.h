/*
 * auth: the secret of a topology and the proofs of the data plane's
 * handshake. Each topology has a random 256-bit key, made by the master when
 * the topology is submitted (local mode: at start), carried to the workers
 * in their assignment as 64 hex digits and never sent on the data plane. Two
 * workers prove they hold it by HMAC-SHA256 (OpenSSL libcrypto) over the
 * handshake's transcript: both random nonces, both worker indexes, the
 * topology id and the content hash, with a role label so that one side's
 * proof can never be replayed as the other's.
 *
 * Called by the master and local mode (auth_key_new), the worker (parsing
 * the key, hashing the topology file) and the transport (proofs). Pure
 * functions; any thread.
 */
#ifndef SD_AUTH_H
#define SD_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AUTH_KEY_BYTES 32
#define AUTH_KEY_HEX (2 * AUTH_KEY_BYTES + 1)
#define AUTH_NONCE_BYTES 32
#define AUTH_HASH_BYTES 32
#define AUTH_PROOF_BYTES 32

enum { AUTH_ROLE_DIALER = 'D', AUTH_ROLE_ACCEPTOR = 'A' };

/* n random bytes from the kernel's CSPRNG; 0 or -EIO. */
int auth_random(uint8_t *out, size_t n);
/* A new key as 64 lowercase hex digits; 0 or -EIO. */
int auth_key_new(char hex[AUTH_KEY_HEX]);
/* 64 hex digits (either case) to 32 bytes; 0 or -EINVAL. */
int auth_hex_decode(const char *hex, uint8_t out[32]);

/* SHA-256 of a file's bytes; 0 or a negative errno. */
int auth_file_hash(const char *path, uint8_t out[AUTH_HASH_BYTES]);

typedef struct auth_transcript {
    const char *topology_id;
    int dialer, acceptor;                 /* worker indexes */
    const uint8_t *dialer_nonce, *acceptor_nonce; /* AUTH_NONCE_BYTES each */
    const uint8_t *hash;                  /* AUTH_HASH_BYTES: the topology content hash */
} auth_transcript;

/* HMAC-SHA256(key, role || transcript) into out; 0 or -EIO. */
int auth_proof(const uint8_t key[AUTH_KEY_BYTES], int role, const auth_transcript *t, uint8_t out[AUTH_PROOF_BYTES]);
/* Recomputes the proof and compares in constant time. */
bool auth_proof_ok(const uint8_t key[AUTH_KEY_BYTES], int role, const auth_transcript *t,
                   const uint8_t proof[AUTH_PROOF_BYTES]);

#endif
