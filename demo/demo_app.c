/*
 * demo_app.c - `weft demo-app` (see demo_app.h): the four bookinfo roles on the collector's
 * HTTP server (col_http), calling each other with libcurl.
 *
 * Outbound calls go where the URLs say (`--details-url http://details:9080` by default), through
 * the `http_proxy` the environment gives — the sidecar's outbound port under `weft run` — as
 * libcurl does by itself. Every call carries the tracing headers the request came with, so the
 * sidecars' spans join into one trace, and `end-user` (from the request, or productpage's
 * `session` cookie), which Istio's routing examples match on.
 *
 * Realism knobs: `--latency` (the typical time a request spends in the service itself; each
 * request takes 0.5x..1.5x of it, `--slow-percent` of them 4x that) and `--error-percent` (that
 * share of requests answered 500). Handlers block while they call: col_http runs them on
 * `--threads` worker threads, enough for the demo's few requests per second even when a fault
 * injection delays every call by seconds.
 */
#include "demo_app.h"

#include "col_http.h"
#include "wf_alloc.h"
#include "wf_buf.h"
#include "wf_clock.h"
#include "wf_flags.h"
#include "wf_log.h"

#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

typedef struct {
    char *role;
    char *listen;
    char *version;
    char *name;
    char *details_url;
    char *reviews_url;
    char *ratings_url;
    char *log_level;
    int64_t error_percent;
    int64_t latency_ms;
    int64_t slow_percent;
    int64_t threads;
} demo_cfg_t;

static const wf_flag_t demo_flags[] = {
    {"role", WF_FLAG_STR, NULL, offsetof(demo_cfg_t, role),
     "productpage, details, reviews or ratings"},
    {"listen", WF_FLAG_STR, "127.0.0.1:9080", offsetof(demo_cfg_t, listen),
     "address:port the service answers on"},
    {"version", WF_FLAG_STR, "v1", offsetof(demo_cfg_t, version),
     "version of the service; reviews: v1 shows no ratings, v2 black stars, v3 red stars"},
    {"name", WF_FLAG_STR, NULL, offsetof(demo_cfg_t, name),
     "instance name shown in answers (default: <role>-<version>)"},
    {"details-url", WF_FLAG_STR, "http://details:9080", offsetof(demo_cfg_t, details_url),
     "productpage: where details is"},
    {"reviews-url", WF_FLAG_STR, "http://reviews:9080", offsetof(demo_cfg_t, reviews_url),
     "productpage: where reviews is"},
    {"ratings-url", WF_FLAG_STR, "http://ratings:9080", offsetof(demo_cfg_t, ratings_url),
     "productpage and reviews v2/v3: where ratings is"},
    {"error-percent", WF_FLAG_INT, "0", offsetof(demo_cfg_t, error_percent),
     "share of requests answered 500, 0..100"},
    {"latency", WF_FLAG_DURATION, NULL, offsetof(demo_cfg_t, latency_ms),
     "typical time spent in the service per request (default by role: productpage 8ms, "
     "details 2ms, reviews 5ms, ratings 1ms)"},
    {"slow-percent", WF_FLAG_INT, "2", offsetof(demo_cfg_t, slow_percent),
     "share of requests that take 4 times as long (the tail of the latency), 0..100"},
    {"threads", WF_FLAG_INT, "32", offsetof(demo_cfg_t, threads),
     "requests served at once (each waits for its calls)"},
    {"log-level", WF_FLAG_STR, "info", offsetof(demo_cfg_t, log_level),
     "error, warn, info or debug"},
    {NULL, 0, NULL, 0, NULL},
};

typedef enum { ROLE_PRODUCTPAGE, ROLE_DETAILS, ROLE_REVIEWS, ROLE_RATINGS } demo_role_t;

static const struct {
    const char *name;
    int64_t latency_ms;
} roles[] = {
    [ROLE_PRODUCTPAGE] = {"productpage", 8},
    [ROLE_DETAILS] = {"details", 2},
    [ROLE_REVIEWS] = {"reviews", 5},
    [ROLE_RATINGS] = {"ratings", 1},
};

/* The headers every call passes on: tracing contexts (W3C, B3 multi and single, OpenTracing),
 * the request id the sidecars log, and what Istio's routing examples match on. */
static const char *const forwarded_headers[] = {
    "x-request-id", "traceparent",       "tracestate",        "b3",
    "x-b3-traceid", "x-b3-spanid",       "x-b3-parentspanid", "x-b3-sampled",
    "x-b3-flags",   "x-ot-span-context", "user-agent",
};

/* Bodies of answers from other services are small JSON; more than this is refused. */
#define DEMO_MAX_CALL_BODY ((size_t)1 << 20)
#define DEMO_CURL_POOL 32
#define DEMO_CALL_TIMEOUT_MS 3000 /* productpage -> details / reviews */

typedef struct {
    demo_cfg_t cfg;
    demo_role_t role;
    const char *star_color; /* reviews v2 "black", v3 "red", else NULL (no ratings call) */
    int64_t ratings_timeout_ms;
    _Atomic uint64_t seq;
    _Atomic uint64_t by_class[6]; /* answers by status class: [2] = 2xx ... [5] = 5xx */
    _Atomic uint64_t injected_errors;
    _Atomic uint64_t calls;
    _Atomic uint64_t call_failures; /* no answer (connect error, timeout) or a 5xx */
    pthread_mutex_t curl_mu;
    CURL *curl_pool[DEMO_CURL_POOL];
    size_t ncurl;
} demo_app_t;

/* --- randomness and the time spent in the service --------------------------------------- */

/* splitmix64 over a shared counter: a different number per call on any thread, no lock. */
static uint64_t next_random(demo_app_t *app)
{
    uint64_t z = atomic_fetch_add(&app->seq, 0x9E3779B97F4A7C15ull) + 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void spend_time(demo_app_t *app)
{
    if (app->cfg.latency_ms <= 0) {
        return;
    }
    uint64_t r = next_random(app);
    double factor = 0.5 + (double)(r % 1000) / 1000.0;
    if ((r >> 20) % 100 < (uint64_t)app->cfg.slow_percent) {
        factor *= 4;
    }
    int64_t us = (int64_t)((double)app->cfg.latency_ms * 1000.0 * factor);
    struct timespec ts = {.tv_sec = us / 1000000, .tv_nsec = (us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

static bool inject_error(demo_app_t *app)
{
    if (app->cfg.error_percent <= 0 || next_random(app) % 100 >= (uint64_t)app->cfg.error_percent) {
        return false;
    }
    atomic_fetch_add(&app->injected_errors, 1);
    return true;
}

/* --- calls to the other services ---------------------------------------------------------- */

static CURL *curl_get(demo_app_t *app)
{
    CURL *c = NULL;
    pthread_mutex_lock(&app->curl_mu);
    if (app->ncurl > 0) {
        c = app->curl_pool[--app->ncurl];
    }
    pthread_mutex_unlock(&app->curl_mu);
    if (c == NULL) {
        c = curl_easy_init();
    } else {
        curl_easy_reset(c); /* options go; the handle's open connections stay for reuse */
    }
    return c;
}

static void curl_put(demo_app_t *app, CURL *c)
{
    pthread_mutex_lock(&app->curl_mu);
    if (app->ncurl < DEMO_CURL_POOL) {
        app->curl_pool[app->ncurl++] = c;
        c = NULL;
    }
    pthread_mutex_unlock(&app->curl_mu);
    if (c != NULL) {
        curl_easy_cleanup(c);
    }
}

static size_t on_call_body(char *p, size_t size, size_t n, void *arg)
{
    wf_buf_t *b = arg;
    if (b->len + n > DEMO_MAX_CALL_BODY) {
        return 0; /* aborts the transfer: CURLE_WRITE_ERROR */
    }
    wf_buf_append(b, p, n);
    return size * n;
}

/* The end user a request acts for: its `end-user` header, else productpage's `session`
 * cookie (set by /login), else NULL. Copied into buf. */
static const char *end_user(const col_req_t *req, char *buf, size_t cap)
{
    const char *h = col_req_header(req, "end-user");
    if (h != NULL && *h != '\0') {
        snprintf(buf, cap, "%s", h);
        return buf;
    }
    const char *cookie = col_req_header(req, "cookie");
    for (const char *p = cookie; p != NULL && *p != '\0';) {
        while (*p == ' ' || *p == ';') {
            p++;
        }
        const char *end = strchr(p, ';');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        if (len > 8 && strncmp(p, "session=", 8) == 0 && len - 8 < cap) {
            memcpy(buf, p + 8, len - 8);
            buf[len - 8] = '\0';
            return buf;
        }
        p = end;
    }
    return NULL;
}

/*
 * GET base + path with the request's forwarded headers, within timeout_ms. Returns 0 with
 * *status and the body in out (at most DEMO_MAX_CALL_BODY), or -1 when no answer came
 * (connect error, timeout, oversized body) with the reason in out.
 */
static int call(demo_app_t *app, const char *base, const char *path, const col_req_t *req,
                int64_t timeout_ms, long *status, wf_buf_t *out)
{
    char url[1024];
    snprintf(url, sizeof(url), "%s%s", base, path);
    struct curl_slist *hdrs = curl_slist_append(NULL, "Accept: application/json");
    for (size_t i = 0; i < sizeof(forwarded_headers) / sizeof(forwarded_headers[0]); i++) {
        const char *v = col_req_header(req, forwarded_headers[i]);
        if (v != NULL) {
            char line[1024];
            snprintf(line, sizeof(line), "%s: %s", forwarded_headers[i], v);
            hdrs = curl_slist_append(hdrs, line);
        }
    }
    char user[128];
    if (end_user(req, user, sizeof(user)) != NULL) {
        char line[160];
        snprintf(line, sizeof(line), "end-user: %s", user);
        hdrs = curl_slist_append(hdrs, line);
    }
    CURL *c = curl_get(app);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_call_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
    atomic_fetch_add(&app->calls, 1);
    wf_buf_reset(out);
    CURLcode rc = curl_easy_perform(c);
    int ret = 0;
    if (rc == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
        if (*status >= 500) {
            atomic_fetch_add(&app->call_failures, 1);
        }
    } else {
        atomic_fetch_add(&app->call_failures, 1);
        wf_buf_reset(out);
        wf_buf_printf(out, "%s", curl_easy_strerror(rc));
        ret = -1;
    }
    curl_put(app, c);
    curl_slist_free_all(hdrs);
    return ret;
}

/* productpage's calls: a 3 s timeout, tried twice when no answer came or it was a 5xx. */
static int call_with_retry(demo_app_t *app, const char *base, const char *path,
                           const col_req_t *req, long *status, wf_buf_t *out)
{
    int rc = -1;
    for (int attempt = 0; attempt < 2; attempt++) {
        rc = call(app, base, path, req, DEMO_CALL_TIMEOUT_MS, status, out);
        if (rc == 0 && *status < 500) {
            break;
        }
        WF_LOG(WF_DEBUG, "demo", "call failed", "url=%s%s attempt=%d status=%ld", base, path,
               attempt + 1, rc == 0 ? *status : 0L);
    }
    return rc;
}

/* --- answers ------------------------------------------------------------------------------ */

static void answer(demo_app_t *app, col_resp_t *resp, unsigned status)
{
    resp->status = status;
    unsigned cls = status / 100;
    atomic_fetch_add(&app->by_class[cls < 6 ? cls : 0], 1);
}

static void answer_json(demo_app_t *app, col_resp_t *resp, unsigned status, json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT);
    wf_buf_append(&resp->body, s, strlen(s));
    free(s);
    json_decref(j);
    resp->content_type = "application/json";
    answer(app, resp, status);
}

static void answer_error(demo_app_t *app, col_resp_t *resp, unsigned status, const char *msg)
{
    answer_json(app, resp, status, json_pack("{s:s}", "error", msg));
}

/* The product id at the end of path after prefix ("/details/" + "0"): 0..999999, else -1. */
static long product_id(const char *path, const char *prefix)
{
    size_t n = strlen(prefix);
    if (strncmp(path, prefix, n) != 0) {
        return -1;
    }
    const char *p = path + n;
    if (*p < '0' || *p > '9' || strlen(p) > 6) {
        return -1;
    }
    char *end;
    long id = strtol(p, &end, 10);
    return *end == '\0' ? id : -1;
}

/* Common start of every served request: time spent, then maybe an injected error. Returns
 * false when the request has been answered already. */
static bool begin(demo_app_t *app, col_resp_t *resp)
{
    spend_time(app);
    if (inject_error(app)) {
        answer_error(app, resp, 500, "error injected by --error-percent");
        return false;
    }
    return true;
}

static json_t *details_json(long id)
{
    return json_pack("{s:I,s:s,s:I,s:s,s:I,s:s,s:s,s:s,s:s}", "id", (json_int_t)id, "author",
                     "William Shakespeare", "year", (json_int_t)1595, "type", "paperback", "pages",
                     (json_int_t)200, "publisher", "PublisherA", "language", "English", "ISBN-10",
                     "1234567890", "ISBN-13", "123-1234567890");
}

static void h_details(void *arg, col_req_t *req, col_resp_t *resp)
{
    demo_app_t *app = arg;
    long id = product_id(req->path, "/details/");
    if (id < 0) {
        answer_error(app, resp, 400, "want /details/<product id>");
        return;
    }
    if (begin(app, resp)) {
        answer_json(app, resp, 200, details_json(id));
    }
}

static void h_ratings(void *arg, col_req_t *req, col_resp_t *resp)
{
    demo_app_t *app = arg;
    long id = product_id(req->path, "/ratings/");
    if (id < 0) {
        answer_error(app, resp, 400, "want /ratings/<product id>");
        return;
    }
    if (begin(app, resp)) {
        answer_json(app, resp, 200,
                    json_pack("{s:I,s:{s:i,s:i}}", "id", (json_int_t)id, "ratings", "Reviewer1", 5,
                              "Reviewer2", 4));
    }
}

/* reviews: two reviews; v2/v3 add each reviewer's stars from ratings (or the error bookinfo
 * shows when ratings does not answer in time). */
static void h_reviews(void *arg, col_req_t *req, col_resp_t *resp)
{
    demo_app_t *app = arg;
    long id = product_id(req->path, "/reviews/");
    if (id < 0) {
        answer_error(app, resp, 400, "want /reviews/<product id>");
        return;
    }
    if (!begin(app, resp)) {
        return;
    }
    static const char *const reviewers[2][2] = {
        {"Reviewer1", "A comedy that moves fast: two pairs of twins, one afternoon, no rest."},
        {"Reviewer2", "Light and funny, though thinner in its themes than the later plays."},
    };
    json_t *ratings = NULL;
    if (app->star_color != NULL) {
        wf_buf_t body = WF_BUF_INIT;
        long status = 0;
        char path[64];
        snprintf(path, sizeof(path), "/ratings/%ld", id);
        if (call(app, app->cfg.ratings_url, path, req, app->ratings_timeout_ms, &status, &body) ==
                0 &&
            status == 200) {
            json_t *j = json_loadb((const char *)body.data, body.len, 0, NULL);
            if (j != NULL) {
                ratings = json_incref(json_object_get(j, "ratings"));
                json_decref(j);
            }
        }
        wf_buf_free(&body);
    }
    json_t *list = json_array();
    for (int i = 0; i < 2; i++) {
        json_t *r = json_pack("{s:s,s:s}", "reviewer", reviewers[i][0], "text", reviewers[i][1]);
        if (app->star_color != NULL) {
            json_t *stars = ratings != NULL ? json_object_get(ratings, reviewers[i][0]) : NULL;
            json_object_set_new(
                r, "rating",
                json_is_integer(stars)
                    ? json_pack("{s:O,s:s}", "stars", stars, "color", app->star_color)
                    : json_pack("{s:s}", "error", "Ratings service is currently unavailable"));
        }
        json_array_append_new(list, r);
    }
    json_decref(ratings);
    char ids[32];
    snprintf(ids, sizeof(ids), "%ld", id);
    answer_json(app, resp, 200,
                json_pack("{s:s,s:s,s:s,s:o}", "id", ids, "podname", app->cfg.name, "clustername",
                          "null", "reviews", list));
}

/* HTML text of s, escaped. */
static void html_text(wf_buf_t *b, const char *s)
{
    for (; s != NULL && *s != '\0'; s++) {
        switch (*s) {
        case '<':
            wf_buf_printf(b, "&lt;");
            break;
        case '>':
            wf_buf_printf(b, "&gt;");
            break;
        case '&':
            wf_buf_printf(b, "&amp;");
            break;
        case '"':
            wf_buf_printf(b, "&quot;");
            break;
        default:
            wf_buf_append(b, s, 1);
        }
    }
}

static const char *json_str(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s != NULL ? s : "";
}

/* The product page: details and reviews fetched (each with productpage's timeout and retry)
 * and drawn; a service that does not answer becomes a message on the page, which is still a
 * 200 — bookinfo's page degrades rather than fails. */
static void h_productpage(void *arg, col_req_t *req, col_resp_t *resp)
{
    demo_app_t *app = arg;
    if (!begin(app, resp)) {
        return;
    }
    wf_buf_t body = WF_BUF_INIT;
    long status = 0;
    json_t *details = NULL, *reviews = NULL;
    if (call_with_retry(app, app->cfg.details_url, "/details/0", req, &status, &body) == 0 &&
        status == 200) {
        details = json_loadb((const char *)body.data, body.len, 0, NULL);
    }
    if (call_with_retry(app, app->cfg.reviews_url, "/reviews/0", req, &status, &body) == 0 &&
        status == 200) {
        reviews = json_loadb((const char *)body.data, body.len, 0, NULL);
    }
    wf_buf_free(&body);

    wf_buf_t *b = &resp->body;
    char user[128];
    const char *who = end_user(req, user, sizeof(user));
    wf_buf_printf(b, "<!doctype html>\n<html><head><meta charset=\"utf-8\">"
                     "<title>Simple Bookstore App</title></head><body>\n"
                     "<h1>The Comedy of Errors</h1>\n<p class=\"user\">");
    html_text(b, who != NULL ? who : "anonymous");
    wf_buf_printf(b, "</p>\n<h2>Book Details</h2>\n");
    if (details != NULL) {
        wf_buf_printf(b, "<dl class=\"details\">");
        static const char *const keys[] = {"type",     "pages",   "publisher",
                                           "language", "ISBN-10", "ISBN-13"};
        for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
            json_t *v = json_object_get(details, keys[i]);
            wf_buf_printf(b, "<dt>%s</dt><dd>", keys[i]);
            if (json_is_integer(v)) {
                wf_buf_printf(b, "%lld", (long long)json_integer_value(v));
            } else {
                html_text(b, json_string_value(v));
            }
            wf_buf_printf(b, "</dd>");
        }
        wf_buf_printf(b, "</dl>\n");
    } else {
        wf_buf_printf(b, "<p class=\"error\">Sorry, product details are currently unavailable "
                         "for this book.</p>\n");
    }
    wf_buf_printf(b, "<h2>Book Reviews</h2>\n");
    json_t *list = reviews != NULL ? json_object_get(reviews, "reviews") : NULL;
    if (json_is_array(list)) {
        size_t i;
        json_t *r;
        json_array_foreach(list, i, r)
        {
            wf_buf_printf(b, "<blockquote><p>");
            html_text(b, json_str(r, "text"));
            wf_buf_printf(b, "</p><small>");
            html_text(b, json_str(r, "reviewer"));
            wf_buf_printf(b, "</small>");
            json_t *rating = json_object_get(r, "rating");
            json_t *stars = json_object_get(rating, "stars");
            if (json_is_integer(stars)) {
                wf_buf_printf(b, "<span class=\"stars %s\">", json_str(rating, "color"));
                for (json_int_t k = 0; k < json_integer_value(stars) && k < 5; k++) {
                    wf_buf_printf(b, "&#9733;");
                }
                wf_buf_printf(b, "</span>");
            } else if (rating != NULL) {
                wf_buf_printf(b, "<span class=\"error\">");
                html_text(b, json_str(rating, "error"));
                wf_buf_printf(b, "</span>");
            }
            wf_buf_printf(b, "</blockquote>\n");
        }
        wf_buf_printf(b, "<p class=\"served-by\">Reviews served by: ");
        html_text(b, json_str(reviews, "podname"));
        wf_buf_printf(b, "</p>\n");
    } else {
        wf_buf_printf(b, "<p class=\"error\">Sorry, product reviews are currently unavailable "
                         "for this book.</p>\n");
    }
    wf_buf_printf(b, "</body></html>\n");
    json_decref(details);
    json_decref(reviews);
    resp->content_type = "text/html; charset=utf-8";
    answer(app, resp, 200);
}

/* productpage's JSON API: the product list, and one product's details, reviews or ratings
 * passed through from the service that has them (its status kept; 503 when none answered). */
static void h_products(void *arg, col_req_t *req, col_resp_t *resp)
{
    demo_app_t *app = arg;
    const char *p = req->path + strlen("/api/v1/products");
    if (*p == '\0' || strcmp(p, "/") == 0) {
        if (begin(app, resp)) {
            answer_json(app, resp, 200,
                        json_pack("[{s:i,s:s,s:s}]", "id", 0, "title", "The Comedy of Errors",
                                  "descriptionHtml", "A comedy by William Shakespeare."));
        }
        return;
    }
    char *end;
    long id = *p == '/' && p[1] >= '0' && p[1] <= '9' ? strtol(p + 1, &end, 10) : -1;
    const char *base = NULL, *what = NULL;
    if (id >= 0 && id <= 999999 && *end == '\0') {
        base = app->cfg.details_url;
        what = "details";
    } else if (id >= 0 && id <= 999999 && strcmp(end, "/reviews") == 0) {
        base = app->cfg.reviews_url;
        what = "reviews";
    } else if (id >= 0 && id <= 999999 && strcmp(end, "/ratings") == 0) {
        base = app->cfg.ratings_url;
        what = "ratings";
    }
    if (base == NULL) {
        answer_error(app, resp, 404, "want /api/v1/products[/<id>[/reviews|/ratings]]");
        return;
    }
    if (!begin(app, resp)) {
        return;
    }
    char path[64];
    snprintf(path, sizeof(path), "/%s/%ld", what, id);
    long status = 0;
    if (call_with_retry(app, base, path, req, &status, &resp->body) != 0) {
        wf_buf_reset(&resp->body);
        answer_error(app, resp, 503, "the service did not answer");
        return;
    }
    resp->content_type = "application/json";
    answer(app, resp, (unsigned)status);
}

/* productpage: /login?user=NAME sets the session cookie the page's calls carry as end-user;
 * /logout clears it. Both go back to the page. */
static void h_login(void *arg, col_req_t *req, col_resp_t *resp)
{
    demo_app_t *app = arg;
    bool out = strcmp(req->path, "/logout") == 0;
    const char *user = col_req_param(req, "user");
    if (!out &&
        (user == NULL || *user == '\0' || strlen(user) > 64 ||
         strspn(user, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.") !=
             strlen(user))) {
        answer_error(app, resp, 400, "want user=NAME (letters, digits, _ - .; at most 64)");
        return;
    }
    char cookie[160];
    snprintf(cookie, sizeof(cookie), "session=%s; Path=/; HttpOnly; SameSite=Lax%s",
             out ? "" : user, out ? "; Max-Age=0" : "");
    col_resp_header(resp, "Set-Cookie", cookie);
    col_resp_header(resp, "Location", "/productpage");
    col_resp_text(resp, 302, "see /productpage");
    answer(app, resp, 302);
}

static void h_health(void *arg, col_req_t *req, col_resp_t *resp)
{
    demo_app_t *app = arg;
    char msg[64];
    snprintf(msg, sizeof(msg), "%s is healthy", roles[app->role].name);
    answer_json(app, resp, 200, json_pack("{s:s}", "status", msg));
}

/* The service's own counters, in the Prometheus text format. */
static void h_metrics(void *arg, col_req_t *req, col_resp_t *resp)
{
    demo_app_t *app = arg;
    wf_buf_t *b = &resp->body;
    const char *r = roles[app->role].name;
    wf_buf_printf(b, "# HELP demo_requests_total Requests the demo service answered, by status "
                     "class.\n# TYPE demo_requests_total counter\n");
    for (int c = 1; c <= 5; c++) {
        wf_buf_printf(b, "demo_requests_total{role=\"%s\",code=\"%dxx\"} %llu\n", r, c,
                      (unsigned long long)atomic_load(&app->by_class[c]));
    }
    wf_buf_printf(b,
                  "# HELP demo_injected_errors_total Requests answered 500 by --error-percent.\n"
                  "# TYPE demo_injected_errors_total counter\n"
                  "demo_injected_errors_total{role=\"%s\"} %llu\n"
                  "# HELP demo_calls_total Calls made to other services (retries included).\n"
                  "# TYPE demo_calls_total counter\ndemo_calls_total{role=\"%s\"} %llu\n"
                  "# HELP demo_call_failures_total Calls without an answer or answered 5xx.\n"
                  "# TYPE demo_call_failures_total counter\n"
                  "demo_call_failures_total{role=\"%s\"} %llu\n",
                  r, (unsigned long long)atomic_load(&app->injected_errors), r,
                  (unsigned long long)atomic_load(&app->calls), r,
                  (unsigned long long)atomic_load(&app->call_failures));
    resp->content_type = "text/plain; version=0.0.4";
}

static void add_routes(demo_app_t *app, col_http_t *http)
{
    col_http_route(http, "GET", "/health", false, 0, h_health, app);
    col_http_route(http, "GET", "/metrics", false, 0, h_metrics, app);
    switch (app->role) {
    case ROLE_PRODUCTPAGE:
        col_http_route(http, "GET", "/productpage", false, 0, h_productpage, app);
        col_http_route(http, "GET", "/", false, 0, h_productpage, app);
        col_http_route(http, "GET", "/api/v1/products", true, 0, h_products, app);
        col_http_route(http, "GET POST", "/login", false, 4096, h_login, app);
        col_http_route(http, "GET POST", "/logout", false, 4096, h_login, app);
        break;
    case ROLE_DETAILS:
        col_http_route(http, "GET", "/details/", true, 0, h_details, app);
        break;
    case ROLE_REVIEWS:
        col_http_route(http, "GET", "/reviews/", true, 0, h_reviews, app);
        break;
    case ROLE_RATINGS:
        col_http_route(http, "GET", "/ratings/", true, 0, h_ratings, app);
        break;
    }
}

/* --- main --------------------------------------------------------------------------------- */

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

/* Flags -> app; 0, or 2 with a message on stderr. */
static int configure(demo_app_t *app)
{
    demo_cfg_t *c = &app->cfg;
    if (c->role == NULL) {
        fprintf(stderr, "weft demo-app: --role is required (productpage, details, reviews or "
                        "ratings)\n");
        return 2;
    }
    size_t i = 0;
    while (i < sizeof(roles) / sizeof(roles[0]) && strcmp(roles[i].name, c->role) != 0) {
        i++;
    }
    if (i == sizeof(roles) / sizeof(roles[0])) {
        fprintf(stderr,
                "weft demo-app: unknown --role '%s' (productpage, details, reviews or "
                "ratings)\n",
                c->role);
        return 2;
    }
    app->role = (demo_role_t)i;
    if (c->error_percent < 0 || c->error_percent > 100 || c->slow_percent < 0 ||
        c->slow_percent > 100 || c->threads < 1 || c->threads > 1024) {
        fprintf(stderr, "weft demo-app: --error-percent and --slow-percent must be 0..100, "
                        "--threads 1..1024\n");
        return 2;
    }
    if (c->latency_ms == 0) {
        c->latency_ms = roles[app->role].latency_ms;
    }
    if (app->role == ROLE_REVIEWS) {
        if (strcmp(c->version, "v2") == 0) {
            app->star_color = "black";
            app->ratings_timeout_ms = 10000;
        } else if (strcmp(c->version, "v3") == 0) {
            app->star_color = "red";
            app->ratings_timeout_ms = 2500;
        } else if (strcmp(c->version, "v1") != 0) {
            fprintf(stderr, "weft demo-app: reviews has versions v1, v2 and v3, not '%s'\n",
                    c->version);
            return 2;
        }
    }
    if (c->name == NULL) {
        wf_buf_t n = WF_BUF_INIT;
        wf_buf_printf(&n, "%s-%s", roles[app->role].name, c->version);
        c->name = wf_strdup((const char *)n.data);
        wf_buf_free(&n);
    }
    wf_log_level_t level;
    if (wf_log_parse_level(c->log_level, &level) != 0) {
        fprintf(stderr, "weft demo-app: invalid --log-level %s\n", c->log_level);
        return 2;
    }
    wf_log_set_level(level);
    return 0;
}

int demo_app_main(int argc, char **argv)
{
    demo_app_t *app = wf_calloc(1, sizeof(*app));
    char err[256];
    int status = 2;
    col_http_t *http = NULL;
    int rc = wf_flags_parse(demo_flags, &app->cfg, argc, argv, NULL, err, sizeof(err));
    if (rc == 1) {
        printf("Usage: weft demo-app --role ROLE [flags]\n\nOne service of the bookinfo-shaped "
               "demo application.\n\nFlags:\n");
        wf_flags_print_help(demo_flags, stdout);
        status = 0;
        goto out;
    }
    if (rc != 0) {
        fprintf(stderr, "weft demo-app: %s\n", err);
        goto out;
    }
    if (configure(app) != 0) {
        goto out;
    }
    pthread_mutex_init(&app->curl_mu, NULL);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    col_http_options_t ho = {.threads = (unsigned)app->cfg.threads, .conn_timeout_s = 60};
    status = 1;
    if (col_http_new(&ho, &http) != 0) {
        fprintf(stderr, "weft demo-app: cannot create the HTTP server\n");
        goto out_curl;
    }
    add_routes(app, http);
    if ((rc = col_http_listen(http, app->cfg.listen)) != 0) {
        fprintf(stderr, "weft demo-app: cannot listen on %s: %s\n", app->cfg.listen, strerror(-rc));
        goto out_curl;
    }
    WF_LOG(WF_INFO, "demo", "serving",
           "role=%s version=%s listen=%s latency_ms=%lld "
           "error_percent=%lld",
           app->cfg.role, app->cfg.version, app->cfg.listen, (long long)app->cfg.latency_ms,
           (long long)app->cfg.error_percent);
    while (!stop_requested) {
        struct timespec ts = {.tv_sec = 0, .tv_nsec = 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    status = 0;
out_curl:
    col_http_free(http);
    for (size_t i = 0; i < app->ncurl; i++) {
        curl_easy_cleanup(app->curl_pool[i]);
    }
    curl_global_cleanup();
    pthread_mutex_destroy(&app->curl_mu);
out:
    wf_flags_free(demo_flags, &app->cfg);
    wf_free(app);
    return status;
}
