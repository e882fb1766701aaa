/*
 * px_control.c - config delivery from the control plane by long-poll (see px_control.h).
 *
 * The thread is the only user of its curl handle. It never touches the data path: what it
 * receives goes through px_proxy_install, which the workers pick up on their own loops. A
 * poll in progress is abandoned within about a second of px_control_stop through curl's
 * progress callback; a backoff sleep is a condition wait that the stop wakes at once.
 */
#include "px_control.h"

#include "px_cert.h"

#include "wf_alloc.h"
#include "wf_buf.h"
#include "wf_err.h"
#include "wf_log.h"

#include <curl/curl.h>
#include <jansson.h>
#include <string.h>

#define POLL_TIMEOUT_MS 120000 /* the server holds a poll for 30 s by default */
#define CONNECT_TIMEOUT_MS 5000
#define BACKOFF_MIN_MS 1000
#define BACKOFF_MAX_MS 30000

struct px_control {
    px_proxy_t *px;
    char *url; /* base, without a trailing slash */
    char *id;
    char *auth;          /* "Authorization: Bearer <token>", NULL without a token */
    char *register_body; /* the workload to register, JSON; NULL: do not register */
    uv_thread_t thread;
    uv_thread_t reg_thread;
    bool reg_started;
    uv_mutex_t mu;
    uv_cond_t cond;
    bool stop; /* under mu */
    /* The registration as the control plane answered it, under mu (px_control_registered). */
    bool reg_ok;
    bool reg_lost; /* px_control_reregister asked for a new registration */
    char reg_id[512];
    char reg_identity[512];
    _Atomic bool stopping;
    size_t max_bytes;
};

typedef struct {
    wf_buf_t *b;
    size_t max;
    bool over; /* the body passed max */
} sink_t;

/* libcurl hands over the body after content decoding, so max bounds the inflated size of a gzip
 * answer: a small compressed body that inflates past it is refused like a large plain one. */
static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    sink_t *s = arg;
    size_t len = size * n;
    if (s->b->len + len > s->max) {
        s->over = true;
        return 0; /* curl fails the transfer: a snapshot over the limit is refused */
    }
    wf_buf_append(s->b, p, len);
    return len;
}

static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    px_control_t *pc = arg;
    return atomic_load(&pc->stopping) ? 1 : 0;
}

/* Sleep ms unless stopped first; true when stopping. */
static bool sleep_or_stop(px_control_t *pc, uint64_t ms)
{
    uv_mutex_lock(&pc->mu);
    if (!pc->stop) {
        (void)uv_cond_timedwait(&pc->cond, &pc->mu, ms * 1000000);
    }
    bool stop = pc->stop;
    uv_mutex_unlock(&pc->mu);
    return stop;
}

/* The poll URL: what this proxy applied (the ACK) and what it last refused (the NACK). */
static void poll_url(px_control_t *pc, CURL *h, wf_buf_t *url)
{
    px_proxy_t *px = pc->px;
    uv_mutex_lock(&px->snap_mu);
    uint64_t applied = px->snapshot != NULL ? px->snapshot->version : 0;
    uint64_t nack_version = px->nack_version;
    char nack[sizeof(px->nack)];
    memcpy(nack, px->nack, sizeof(nack));
    uv_mutex_unlock(&px->snap_mu);
    char *id = curl_easy_escape(h, pc->id, 0);
    wf_buf_reset(url);
    wf_buf_printf(url, "%s/v1/snapshot?proxy=%s&version=%llu", pc->url, id != NULL ? id : "",
                  (unsigned long long)applied);
    curl_free(id);
    if (nack[0] != '\0') {
        char *reason = curl_easy_escape(h, nack, 0);
        wf_buf_printf(url, "&nack=%llu&reason=%s", (unsigned long long)nack_version,
                      reason != NULL ? reason : "");
        curl_free(reason);
    }
    wf_buf_cstr(url);
}

/* The version a document claims, for the NACK of one that does not parse (0 when none). */
static uint64_t claimed_version(const wf_buf_t *body)
{
    json_t *j = json_loadb((const char *)body->data, body->len, 0, NULL);
    json_t *v = json_is_object(j) ? json_object_get(j, "version") : NULL;
    uint64_t version =
        json_is_integer(v) && json_integer_value(v) > 0 ? (uint64_t)json_integer_value(v) : 0;
    json_decref(j);
    return version;
}

/* A 200: parse and install the snapshot in body, or record why not (the next poll NACKs). */
static void take_snapshot(px_control_t *pc, wf_buf_t *body)
{
    px_proxy_t *px = pc->px;
    char err[600];
    px_snapshot_t *s = NULL;
    if (px_snapshot_parse((const char *)body->data, body->len, NULL, &s, err, sizeof(err)) != 0) {
        px_proxy_nack(px, claimed_version(body), err);
        WF_LOG(WF_WARN, "proxy", "snapshot from the control plane refused", "err=\"%s\"", err);
        return;
    }
    uint64_t version = s->version;
    size_t len = body->len;
    char *json = (char *)wf_buf_detach(body, NULL);
    json = wf_realloc(json, len + 1);
    json[len] = '\0';
    px_snapshot_ref(s); /* for its trust bundle once installed */
    if (px_proxy_install(px, s, json, err, sizeof(err)) != 0) {
        WF_LOG(WF_WARN, "proxy", "snapshot from the control plane refused", "err=\"%s\"", err);
        px_snapshot_unref(s);
        return;
    }
    const px_snap_security_t *sec = &s->security;
    if (sec->trust_bundle_version > 0 &&
        px_cert_apply_bundle(px, sec->trust_bundle.p, sec->trust_bundle.len,
                             sec->trust_bundle_version, err, sizeof(err)) == 0) {
        WF_LOG(WF_INFO, "proxy", "trust bundle installed", "version=%llu",
               (unsigned long long)sec->trust_bundle_version);
    }
    px_snapshot_unref(s);
    WF_LOG(WF_INFO, "proxy", "snapshot applied", "version=%llu", (unsigned long long)version);
}

static void control_thread(void *arg)
{
    px_control_t *pc = arg;
    CURL *h = curl_easy_init();
    wf_buf_t url = WF_BUF_INIT, body = WF_BUF_INIT;
    uint64_t backoff = BACKOFF_MIN_MS;
    while (h != NULL && !atomic_load(&pc->stopping)) {
        poll_url(pc, h, &url);
        wf_buf_reset(&body);
        sink_t sink = {&body, pc->max_bytes, false};
        curl_easy_reset(h);
        curl_easy_setopt(h, CURLOPT_URL, (const char *)url.data);
        /* The documents compress ~10x; libcurl inflates them before on_body sees them. */
        curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "gzip");
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &sink);
        curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(h, CURLOPT_XFERINFODATA, pc);
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)POLL_TIMEOUT_MS);
        curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)CONNECT_TIMEOUT_MS);
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_USERAGENT, "weft-proxy/" WEFT_VERSION);
        struct curl_slist *hdrs = pc->auth != NULL ? curl_slist_append(NULL, pc->auth) : NULL;
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
        CURLcode rc = curl_easy_perform(h);
        curl_slist_free_all(hdrs);
        if (atomic_load(&pc->stopping)) {
            break;
        }
        long status = 0;
        if (rc == CURLE_OK) {
            curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        } else if (sink.over) {
            /* Refused, not retried: the NACK (version unknown: the document was not read) keeps
             * the control plane from sending the same content again. */
            char why[128];
            snprintf(why, sizeof(why), "snapshot larger than the %zu bytes limit", pc->max_bytes);
            px_proxy_nack(pc->px, 0, why);
            WF_LOG(WF_WARN, "proxy", "snapshot from the control plane refused", "err=\"%s\"", why);
            backoff = BACKOFF_MIN_MS;
            continue;
        }
        if (status == 200) {
            take_snapshot(pc, &body);
            backoff = BACKOFF_MIN_MS;
            continue;
        }
        if (status == 304) {
            backoff = BACKOFF_MIN_MS;
            continue;
        }
        WF_LOG_RL(WF_WARN, 10, "proxy", "control plane poll failed, the current snapshot serves",
                  "url=%s err=\"%s\" status=%ld retry_ms=%llu", pc->url,
                  rc != CURLE_OK ? curl_easy_strerror(rc) : "unexpected status", status,
                  (unsigned long long)backoff);
        if (sleep_or_stop(pc, backoff)) {
            break;
        }
        backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
    }
    wf_buf_free(&url);
    wf_buf_free(&body);
    if (h != NULL) {
        curl_easy_cleanup(h);
    }
}

/* POST body (JSON) to the control plane's path; the answer's body into out. Returns the
 * HTTP status, or 0 when no answer came (logged by the caller). */
static long post_json(px_control_t *pc, CURL *h, const char *path, const char *body, wf_buf_t *out,
                      CURLcode *rc)
{
    char url[1024];
    snprintf(url, sizeof(url), "%s%s", pc->url, path);
    wf_buf_reset(out);
    sink_t sink = {out, 1 << 20, false};
    curl_easy_reset(h);
    struct curl_slist *hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    if (pc->auth != NULL) {
        hdrs = curl_slist_append(hdrs, pc->auth);
    }
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &sink);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)CONNECT_TIMEOUT_MS);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "weft-proxy/" WEFT_VERSION);
    *rc = curl_easy_perform(h);
    curl_slist_free_all(hdrs);
    long status = 0;
    if (*rc == CURLE_OK) {
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    }
    return status;
}

/*
 * The registration thread: registers the workload (POST /v1/register), then renews its lease
 * (POST /v1/heartbeat) three times per lease; a heartbeat the control plane no longer knows
 * (404: the lease ran out, or its state was lost) registers again at once; failures are
 * retried with the backoff. The proxy serves meanwhile whatever happens here.
 */
static void register_thread(void *arg)
{
    px_control_t *pc = arg;
    CURL *h = curl_easy_init();
    wf_buf_t out = WF_BUF_INIT;
    char hb[700] = ""; /* {"id": <the id the registration answered>} */
    bool registered = false;
    uint64_t backoff = BACKOFF_MIN_MS, every = 10000;
    while (h != NULL && !atomic_load(&pc->stopping)) {
        uv_mutex_lock(&pc->mu);
        registered = registered && !pc->reg_lost;
        pc->reg_lost = false;
        uv_mutex_unlock(&pc->mu);
        CURLcode rc;
        const char *what = registered ? "heartbeat" : "registration";
        long st = registered ? post_json(pc, h, "/v1/heartbeat", hb, &out, &rc)
                             : post_json(pc, h, "/v1/register", pc->register_body, &out, &rc);
        if (atomic_load(&pc->stopping)) {
            break;
        }
        uint64_t wait;
        if (st == 200 || st == 201) {
            json_t *j = json_loadb((const char *)out.data, out.len, 0, NULL);
            json_t *lease = json_is_object(j) ? json_object_get(j, "leaseRemainingMs") : NULL;
            if (json_is_integer(lease) && json_integer_value(lease) > 0) {
                every = (uint64_t)json_integer_value(lease) / 3;
                every = every < 100 ? 100 : every;
            }
            json_t *id = json_is_object(j) ? json_object_get(j, "id") : NULL;
            if (!registered) {
                json_t *ident = json_is_object(j) ? json_object_get(j, "identity") : NULL;
                uv_mutex_lock(&pc->mu);
                snprintf(pc->reg_id, sizeof(pc->reg_id), "%s",
                         json_is_string(id) ? json_string_value(id) : pc->id);
                snprintf(pc->reg_identity, sizeof(pc->reg_identity), "%s",
                         json_is_string(ident) ? json_string_value(ident) : "");
                pc->reg_ok = true;
                uv_mutex_unlock(&pc->mu);
            }
            if (!registered && json_is_string(id)) {
                json_t *o = json_pack("{s:O}", "id", id);
                char *t = json_dumps(o, JSON_COMPACT);
                snprintf(hb, sizeof(hb), "%s", t != NULL ? t : "");
                free(t);
                json_decref(o);
                WF_LOG(WF_INFO, "proxy", "registered with the control plane", "id=%s",
                       json_string_value(id));
            }
            json_decref(j);
            registered = true;
            backoff = BACKOFF_MIN_MS;
            wait = every;
        } else if (registered && st == 404) {
            WF_LOG(WF_WARN, "proxy", "lease lost, registering again", "id=%s", pc->id);
            registered = false;
            uv_mutex_lock(&pc->mu);
            pc->reg_ok = false;
            uv_mutex_unlock(&pc->mu);
            wait = 0;
        } else {
            WF_LOG_RL(WF_WARN, 10, "proxy", "control plane refused or unreachable",
                      "what=%s "
                      "status=%ld err=\"%s\" retry_ms=%llu",
                      what, st, rc != CURLE_OK ? curl_easy_strerror(rc) : "unexpected status",
                      (unsigned long long)backoff);
            wait = backoff;
            backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
        }
        if (sleep_or_stop(pc, wait)) {
            break;
        }
    }
    wf_buf_free(&out);
    if (h != NULL) {
        curl_easy_cleanup(h);
    }
}

px_control_t *px_control_start(px_proxy_t *px, const char *url, const char *id, const char *token,
                               const char *register_body)
{
    px_control_t *pc = wf_calloc(1, sizeof(*pc));
    pc->px = px;
    size_t ul = strlen(url);
    while (ul > 0 && url[ul - 1] == '/') {
        ul--;
    }
    pc->url = wf_strndup(url, ul);
    pc->id = wf_strdup(id);
    if (token != NULL) {
        wf_buf_t a = WF_BUF_INIT;
        wf_buf_printf(&a, "Authorization: Bearer %s", token);
        wf_buf_cstr(&a);
        pc->auth = (char *)wf_buf_detach(&a, NULL);
    }
    pc->register_body = register_body != NULL ? wf_strdup(register_body) : NULL;
    px_snapshot_opts_t o;
    px_snapshot_opts_default(&o);
    pc->max_bytes = o.limits.max_bytes;
    uv_mutex_init(&pc->mu);
    uv_cond_init(&pc->cond);
    if (uv_thread_create(&pc->thread, control_thread, pc) != 0) {
        WF_LOG(WF_ERROR, "proxy", "cannot start the control plane thread");
        uv_cond_destroy(&pc->cond);
        uv_mutex_destroy(&pc->mu);
        wf_free(pc->url);
        wf_free(pc->id);
        wf_free(pc->auth);
        wf_free(pc->register_body);
        wf_free(pc);
        return NULL;
    }
    if (pc->register_body != NULL) {
        pc->reg_started = uv_thread_create(&pc->reg_thread, register_thread, pc) == 0;
        if (!pc->reg_started) {
            WF_LOG(WF_ERROR, "proxy", "cannot start the registration thread");
        }
    }
    return pc;
}

int px_control_registered(px_control_t *pc, char *id, size_t idcap, char *identity, size_t identcap)
{
    uv_mutex_lock(&pc->mu);
    bool ok = pc->reg_ok;
    if (ok) {
        snprintf(id, idcap, "%s", pc->reg_id);
        snprintf(identity, identcap, "%s", pc->reg_identity);
    }
    uv_mutex_unlock(&pc->mu);
    return ok ? 0 : WF_E_NOTFOUND;
}

void px_control_reregister(px_control_t *pc)
{
    uv_mutex_lock(&pc->mu);
    pc->reg_ok = false;
    pc->reg_lost = true;
    /* Wakes the registration thread from its heartbeat wait (and the poll thread from a
     * backoff, which then merely polls early). */
    uv_cond_broadcast(&pc->cond);
    uv_mutex_unlock(&pc->mu);
}

void px_control_stop(px_control_t *pc)
{
    if (pc == NULL) {
        return;
    }
    atomic_store(&pc->stopping, true);
    uv_mutex_lock(&pc->mu);
    pc->stop = true;
    uv_cond_broadcast(&pc->cond);
    uv_mutex_unlock(&pc->mu);
    uv_thread_join(&pc->thread);
    if (pc->reg_started) {
        uv_thread_join(&pc->reg_thread);
    }
    uv_cond_destroy(&pc->cond);
    uv_mutex_destroy(&pc->mu);
    wf_free(pc->url);
    wf_free(pc->id);
    wf_free(pc->auth);
    wf_free(pc->register_body);
    wf_free(pc);
}
