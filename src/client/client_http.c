/* client_http: see client_http.h. */
#include "client/client_http.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void init_curl(void) { curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT); }

typedef struct sink {
    client_http_answer *a;
    size_t cap;
    bool too_big;
} sink;

static size_t on_data(char *data, size_t size, size_t n, void *arg) {
    sink *s = arg;
    size_t k = size * n;
    client_http_answer *a = s->a;
    if (k > CLIENT_HTTP_MAX_ANSWER - a->len) {
        s->too_big = true;
        return 0; /* aborts the transfer */
    }
    if (a->len + k + 1 > s->cap) {
        size_t nc = s->cap ? s->cap : 4096;
        while (nc < a->len + k + 1) nc *= 2;
        char *g = realloc(a->body, nc);
        if (!g) return 0;
        a->body = g;
        s->cap = nc;
    }
    memcpy(a->body + a->len, data, k);
    a->len += k;
    a->body[a->len] = '\0';
    return k;
}

int client_http(const char *method, const char *url, const char *const *headers, const void *body, size_t len,
                int timeout_ms, client_http_answer *a, char *err, size_t errlen) {
    memset(a, 0, sizeof *a);
    if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) {
        snprintf(err, errlen, "'%s' is not an http:// or https:// URL", url);
        return -EINVAL;
    }
    pthread_once(&curl_once, init_curl);
    CURL *e = curl_init_rc == CURLE_OK ? curl_easy_init() : NULL;
    if (!e) {
        snprintf(err, errlen, "cannot start libcurl");
        return -ENOMEM;
    }
    char cerr[CURL_ERROR_SIZE] = "";
    struct curl_slist *hl = NULL;
    int rc = 0;
    for (size_t i = 0; headers && headers[i] && rc == 0; i++) {
        struct curl_slist *g = curl_slist_append(hl, headers[i]);
        if (!g) rc = -ENOMEM;
        hl = g ? g : hl;
    }
    /* no "Expect: 100-continue" round trip before a body */
    struct curl_slist *g = rc == 0 ? curl_slist_append(hl, "Expect:") : NULL;
    if (!g) rc = -ENOMEM;
    hl = g ? g : hl;
    if (rc != 0) {
        curl_slist_free_all(hl);
        curl_easy_cleanup(e);
        snprintf(err, errlen, "out of memory");
        return rc;
    }
    sink s = {.a = a};
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &s);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, cerr);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(e, CURLOPT_MAXREDIRS, 5L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    if (body) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
        curl_easy_setopt(e, CURLOPT_POSTREDIR, (long)CURL_REDIR_POST_ALL); /* keep POST and body across redirects */
    }
    CURLcode cc = curl_easy_perform(e);
    if (cc == CURLE_OK) {
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &a->status);
        if (!a->body && !(a->body = calloc(1, 1))) {
            snprintf(err, errlen, "out of memory");
            rc = -ENOMEM;
        }
    } else if (s.too_big) {
        snprintf(err, errlen, "the answer is larger than %d MiB", CLIENT_HTTP_MAX_ANSWER >> 20);
        rc = -EFBIG;
    } else {
        snprintf(err, errlen, "%s", cerr[0] ? cerr : curl_easy_strerror(cc));
        rc = cc == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT
             : cc == CURLE_COULDNT_CONNECT  ? -ECONNREFUSED
             : cc == CURLE_COULDNT_RESOLVE_HOST ? -EHOSTUNREACH
             : cc == CURLE_OUT_OF_MEMORY    ? -ENOMEM
                                            : -EIO;
    }
    if (rc != 0) client_http_answer_free(a);
    curl_slist_free_all(hl);
    curl_easy_cleanup(e);
    return rc;
}

void client_http_answer_free(client_http_answer *a) {
    free(a->body);
    a->body = NULL;
    a->len = 0;
}
