/*
 * px_export.c - the span exporter thread (px_export.h). It wakes every tick (a tenth of the
 * flush interval, at most 100 ms), moves spans from the workers' queues into one pending
 * batch (never more than batch_max: what does not fit stays in the bounded queues, which drop
 * when full), and POSTs the batch when it is full or its oldest span has waited flush_ms.
 * Sending blocks only this thread; the workers never wait for it.
 */
#include "px_export.h"

#include "wf_alloc.h"
#include "wf_clock.h"
#include "wf_err.h"
#include "wf_log.h"

#include <curl/curl.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <uv.h>

struct px_export {
    char *url;
    int64_t flush_ms;
    size_t batch_max;
    int64_t timeout_ms;
    px_trace_node_t node;
    px_span_queue_t *const *queues;
    size_t n_queues;

    uv_thread_t thread;
    uv_mutex_t mu;
    uv_cond_t cv;
    bool stop;           /* under mu */
    int64_t deadline_ns; /* under mu: monotonic end of the shutdown drain */

    CURL *curl;
    struct curl_slist *headers;
    px_span_t **pending;
    size_t n_pending;
    int64_t pending_since_ns; /* monotonic time the oldest pending span was taken */
    wf_buf_t body;

    _Atomic uint64_t spans_sent, spans_failed, batches_sent, batches_failed;
};

int px_export_url(const char *base, char *out, size_t cap)
{
    static const char suffix[] = "/v1/traces";
    size_t bl = strlen(base);
    if (strncmp(base, "http://", 7) != 0 && strncmp(base, "https://", 8) != 0) {
        return WF_E_INVAL;
    }
    const char *host = base + (base[4] == 's' ? 8 : 7);
    if (*host == '\0' || *host == '/') {
        return WF_E_INVAL;
    }
    const size_t sl = sizeof(suffix) - 1;
    if (bl >= sl && strcmp(base + bl - sl, suffix) == 0 && strchr(host, '/') != NULL) {
        if (bl + 1 > cap) {
            return WF_E_LIMIT;
        }
        memcpy(out, base, bl + 1);
        return 0;
    }
    if (bl > 0 && base[bl - 1] == '/') {
        bl--;
    }
    if (bl + sl + 1 > cap) {
        return WF_E_LIMIT;
    }
    memcpy(out, base, bl);
    memcpy(out + bl, suffix, sl + 1);
    return 0;
}

static size_t discard_body(char *p, size_t size, size_t n, void *arg)
{
    (void)p;
    (void)arg;
    return size * n;
}

static void drop_pending(px_export_t *e)
{
    for (size_t i = 0; i < e->n_pending; i++) {
        px_span_free(e->pending[i]);
    }
    e->n_pending = 0;
}

/* POST the pending batch (its timeout cut to what is left before deadline_ns, 0 = none), then
 * free it. */
static void send_pending(px_export_t *e, int64_t deadline_ns)
{
    if (e->n_pending == 0) {
        return;
    }
    size_t n = e->n_pending;
    int64_t timeout = e->timeout_ms;
    if (deadline_ns > 0) {
        int64_t left = (deadline_ns - wf_mono_ns()) / 1000000;
        timeout = left < timeout ? left : timeout;
    }
    bool ok = false;
    long code = 0;
    CURLcode cc = CURLE_OK;
    if (timeout > 0) {
        wf_buf_reset(&e->body);
        px_otlp_encode(&e->node, e->pending, n, &e->body);
        curl_easy_setopt(e->curl, CURLOPT_POSTFIELDS, (const char *)e->body.data);
        curl_easy_setopt(e->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)e->body.len);
        curl_easy_setopt(e->curl, CURLOPT_TIMEOUT_MS, (long)timeout);
        curl_easy_setopt(e->curl, CURLOPT_CONNECTTIMEOUT_MS, (long)timeout);
        cc = curl_easy_perform(e->curl);
        if (cc == CURLE_OK) {
            curl_easy_getinfo(e->curl, CURLINFO_RESPONSE_CODE, &code);
            ok = code >= 200 && code < 300;
        }
    }
    if (ok) {
        atomic_fetch_add_explicit(&e->spans_sent, n, memory_order_relaxed);
        atomic_fetch_add_explicit(&e->batches_sent, 1, memory_order_relaxed);
    } else {
        atomic_fetch_add_explicit(&e->spans_failed, n, memory_order_relaxed);
        atomic_fetch_add_explicit(&e->batches_failed, 1, memory_order_relaxed);
        WF_LOG_RL(WF_WARN, 10, "proxy", "span export failed", "url=%s spans=%zu err=%s status=%ld",
                  e->url, n,
                  timeout <= 0     ? "drain time over"
                  : cc != CURLE_OK ? curl_easy_strerror(cc)
                                   : "answer not 2xx",
                  code);
    }
    drop_pending(e);
}

/* Move spans from the queues into the pending batch, sending every batch that fills up, until
 * the queues give no more. */
static void collect(px_export_t *e, int64_t deadline_ns)
{
    for (;;) {
        bool more = false;
        for (size_t q = 0; q < e->n_queues; q++) {
            size_t room = e->batch_max - e->n_pending;
            size_t got = px_span_queue_pop(e->queues[q], e->pending + e->n_pending, room);
            if (got > 0 && e->n_pending == 0) {
                e->pending_since_ns = wf_mono_ns();
            }
            e->n_pending += got;
            if (e->n_pending == e->batch_max) {
                send_pending(e, deadline_ns);
                more = true;
            }
        }
        if (!more) {
            return;
        }
    }
}

static void export_thread(void *arg)
{
    px_export_t *e = arg;
    uint64_t tick_ns = (uint64_t)e->flush_ms * 100000; /* a tenth of the interval */
    if (tick_ns > 100000000) {
        tick_ns = 100000000;
    }
    for (;;) {
        uv_mutex_lock(&e->mu);
        if (!e->stop) {
            (void)uv_cond_timedwait(&e->cv, &e->mu, tick_ns);
        }
        bool stopping = e->stop;
        int64_t deadline = e->deadline_ns;
        uv_mutex_unlock(&e->mu);
        if (stopping) {
            collect(e, deadline);
            send_pending(e, deadline);
            return;
        }
        collect(e, 0);
        if (e->n_pending > 0 &&
            wf_mono_ns() - e->pending_since_ns >= e->flush_ms * (int64_t)1000000) {
            send_pending(e, 0);
        }
    }
}

int px_export_start(px_export_t **out, const px_export_cfg_t *cfg)
{
    WF_ASSERT(cfg->flush_ms > 0 && cfg->batch_max > 0 && cfg->timeout_ms > 0);
    *out = NULL;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        return WF_E_INTERNAL;
    }
    px_export_t *e = wf_calloc(1, sizeof(*e));
    e->url = wf_strdup(cfg->url);
    e->flush_ms = cfg->flush_ms;
    e->batch_max = cfg->batch_max;
    e->timeout_ms = cfg->timeout_ms;
    e->node = cfg->node;
    e->queues = cfg->queues;
    e->n_queues = cfg->n_queues;
    e->pending = wf_calloc(cfg->batch_max, sizeof(*e->pending));
    e->curl = curl_easy_init();
    if (e->curl == NULL) {
        goto fail;
    }
    e->headers = curl_slist_append(NULL, "Content-Type: application/x-protobuf");
    curl_easy_setopt(e->curl, CURLOPT_URL, e->url);
    curl_easy_setopt(e->curl, CURLOPT_HTTPHEADER, e->headers);
    curl_easy_setopt(e->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e->curl, CURLOPT_WRITEFUNCTION, discard_body);
    curl_easy_setopt(e->curl, CURLOPT_USERAGENT, "weft-proxy");
    if (uv_mutex_init(&e->mu) != 0) {
        goto fail;
    }
    if (uv_cond_init(&e->cv) != 0) {
        uv_mutex_destroy(&e->mu);
        goto fail;
    }
    if (uv_thread_create(&e->thread, export_thread, e) != 0) {
        uv_cond_destroy(&e->cv);
        uv_mutex_destroy(&e->mu);
        goto fail;
    }
    *out = e;
    return 0;

fail:
    curl_slist_free_all(e->headers);
    if (e->curl != NULL) {
        curl_easy_cleanup(e->curl);
    }
    wf_free(e->pending);
    wf_free(e->url);
    wf_free(e);
    curl_global_cleanup();
    return WF_E_INTERNAL;
}

void px_export_stop(px_export_t *e, int64_t drain_ms)
{
    if (e == NULL) {
        return;
    }
    uv_mutex_lock(&e->mu);
    e->stop = true;
    e->deadline_ns = wf_mono_ns() + (drain_ms > 0 ? drain_ms : 0) * (int64_t)1000000 + 1;
    uv_cond_signal(&e->cv);
    uv_mutex_unlock(&e->mu);
    uv_thread_join(&e->thread);
    /* Whatever the drain could not send (the deadline passed mid-way) is counted as failed. */
    uint64_t left = 0;
    px_span_t *s;
    for (size_t q = 0; q < e->n_queues; q++) {
        while (px_span_queue_pop(e->queues[q], &s, 1) == 1) {
            px_span_free(s);
            left++;
        }
    }
    if (left > 0) {
        atomic_fetch_add_explicit(&e->spans_failed, left, memory_order_relaxed);
        WF_LOG(WF_WARN, "proxy", "spans dropped at shutdown", "spans=%llu",
               (unsigned long long)left);
    }
    uv_cond_destroy(&e->cv);
    uv_mutex_destroy(&e->mu);
    curl_slist_free_all(e->headers);
    curl_easy_cleanup(e->curl);
    curl_global_cleanup();
    wf_buf_free(&e->body);
    wf_free(e->pending);
    wf_free(e->url);
    wf_free(e);
}

void px_export_counters(const px_export_t *e, px_export_counters_t *out)
{
    memset(out, 0, sizeof(*out));
    if (e == NULL) {
        return;
    }
    out->spans_sent = atomic_load_explicit(&e->spans_sent, memory_order_relaxed);
    out->spans_failed = atomic_load_explicit(&e->spans_failed, memory_order_relaxed);
    out->batches_sent = atomic_load_explicit(&e->batches_sent, memory_order_relaxed);
    out->batches_failed = atomic_load_explicit(&e->batches_failed, memory_order_relaxed);
}
