/*
 * auth: topology keys and handshake proofs (see auth.h). HMAC and SHA-256
 * come from OpenSSL's libcrypto; nothing cryptographic is written here.
 */
#include "transport/auth.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

int auth_random(uint8_t *out, size_t n) {
    size_t got = 0;
    while (got < n) {
        ssize_t r = getrandom(out + got, n - got, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -EIO;
        got += (size_t)r;
    }
    return 0;
}

int auth_key_new(char hex[AUTH_KEY_HEX]) {
    uint8_t k[AUTH_KEY_BYTES];
    if (auth_random(k, sizeof k) != 0) return -EIO;
    for (size_t i = 0; i < sizeof k; i++) snprintf(hex + 2 * i, 3, "%02x", k[i]);
    OPENSSL_cleanse(k, sizeof k);
    return 0;
}

static int nibble(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int auth_hex_decode(const char *hex, uint8_t out[32]) {
    if (!hex || strlen(hex) != 64) return -EINVAL;
    for (int i = 0; i < 32; i++) {
        int hi = nibble(hex[2 * i]), lo = nibble(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) return -EINVAL;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

int auth_file_hash(const char *path, uint8_t out[AUTH_HASH_BYTES]) {
    FILE *f = fopen(path, "rb");
    if (!f) return -errno;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int rc = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 ? 0 : -ENOMEM;
    uint8_t buf[16384];
    size_t n;
    while (rc == 0 && (n = fread(buf, 1, sizeof buf, f)) > 0)
        if (EVP_DigestUpdate(ctx, buf, n) != 1) rc = -EIO;
    if (rc == 0 && ferror(f)) rc = -EIO;
    unsigned int len = 0;
    if (rc == 0 && (EVP_DigestFinal_ex(ctx, out, &len) != 1 || len != AUTH_HASH_BYTES)) rc = -EIO;
    EVP_MD_CTX_free(ctx);
    fclose(f);
    return rc;
}

static void put_u32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24);
}

int auth_proof(const uint8_t key[AUTH_KEY_BYTES], int role, const auth_transcript *t, uint8_t out[AUTH_PROOF_BYTES]) {
    /* fixed-width fields and a length-prefixed id: no two transcripts share an encoding */
    uint8_t msg[1 + 4 + 4 + 4 + 2 * AUTH_NONCE_BYTES + AUTH_HASH_BYTES + 256];
    size_t idlen = strlen(t->topology_id);
    if (idlen > 255) return -EIO;
    size_t n = 0;
    msg[n++] = (uint8_t)role;
    put_u32(msg + n, (uint32_t)t->dialer), n += 4;
    put_u32(msg + n, (uint32_t)t->acceptor), n += 4;
    memcpy(msg + n, t->dialer_nonce, AUTH_NONCE_BYTES), n += AUTH_NONCE_BYTES;
    memcpy(msg + n, t->acceptor_nonce, AUTH_NONCE_BYTES), n += AUTH_NONCE_BYTES;
    memcpy(msg + n, t->hash, AUTH_HASH_BYTES), n += AUTH_HASH_BYTES;
    put_u32(msg + n, (uint32_t)idlen), n += 4;
    memcpy(msg + n, t->topology_id, idlen), n += idlen;
    unsigned int outlen = 0;
    if (!HMAC(EVP_sha256(), key, AUTH_KEY_BYTES, msg, n, out, &outlen) || outlen != AUTH_PROOF_BYTES) return -EIO;
    return 0;
}

bool auth_proof_ok(const uint8_t key[AUTH_KEY_BYTES], int role, const auth_transcript *t,
                   const uint8_t proof[AUTH_PROOF_BYTES]) {
    uint8_t want[AUTH_PROOF_BYTES];
    if (auth_proof(key, role, t, want) != 0) return false;
    return CRYPTO_memcmp(want, proof, AUTH_PROOF_BYTES) == 0;
}
