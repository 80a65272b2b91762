/*
 * client_http: one blocking HTTP request with libcurl's easy interface, for
 * the client commands (a one-shot process may block). Follows redirects
 * (a standby master answers 307 to the leader), bounded in time and in the
 * size of the answer. No threads of its own.
 */
#ifndef SD_CLIENT_HTTP_H
#define SD_CLIENT_HTTP_H

#include <stddef.h>

#define CLIENT_HTTP_MAX_ANSWER (64 * 1024 * 1024)

typedef struct client_http_answer {
    long status;  /* the last response's status */
    char *body;   /* malloc'ed, NUL-terminated (client_http_answer_free) */
    size_t len;
} client_http_answer;

/* method to url (http:// or https:// only), with optional extra header
 * lines ("Name: value", NULL-terminated) and body. 0 with *a filled (any
 * status), or a negative code with a message in err (no answer: refused,
 * timed out after timeout_ms, ...). */
int client_http(const char *method, const char *url, const char *const *headers, const void *body, size_t len,
                int timeout_ms, client_http_answer *a, char *err, size_t errlen);
void client_http_answer_free(client_http_answer *a);

#endif
