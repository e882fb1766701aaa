/*
 * col_rw_sender.c - the remote_write sender: a tap on the write queue, a bounded queue of
 * samples, and one thread that posts them with libcurl.
 *
 * A queued sample is 24 bytes: its value, its timestamp and a pointer to its series' labels,
 * encoded once as protobuf Label fields in a cache keyed by the store's series reference (an
 * Istio series carries about 1 KB of labels; copying them per sample cost the ingest path
 * more than the store's own work). Entries are reference counted and swept by the writer
 * thread once no queued sample refers to them.
 *
 * The queue is a list of chunks, one per committed store batch, each an array of samples with
 * a head index: dropping the oldest samples moves a head. The writer thread fills a staging
 * chunk (stage) and hands it to the queue only when the batch has committed (publish), so
 * that the remote store never receives a sample the collector itself does not hold. The
 * sender takes up to `batch` samples, and encodes them, the labels by memcpy, outside the
 * lock.
 *
 * Locking: mu guards the queue, the counters and the stop request; the staging chunk and the
 * series cache belong to the writer thread (the sender only reads an entry's bytes and drops
 * its references); the curl handle and the request buffers to the sender thread. The sender
 * holds mu only to take a run of samples and to count results, never across I/O or encoding.
 */
#include "col_rw_sender.h"

#include "wf_alloc.h"
#include "wf_clock.h"
#include "wf_err.h"
#include "wf_log.h"
#include "wf_str.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <snappy-c.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Bytes of a remote store's answer kept for the log line of a refused request. */
#define ANSWER_KEEP 256
/* Longest wait for the connection itself, within the request's timeout. */
#define CONNECT_TIMEOUT_MS 10000
/* Sent chunks kept for the writer to fill again, and the largest worth keeping: a chunk that
 * is reused needs no growing by doubling and no fresh pages. */
#define SPARE_CHUNKS 4
#define SPARE_MAX_SAMPLES ((size_t)1 << 18)
/* The series cache is swept when it holds this many entries, or twice the survivors of the
 * last sweep. */
#define CACHE_SWEEP_MIN 4096

/*
 * One series' labels, encoded once as its TimeSeries.labels fields and shared by its queued
 * samples. refs counts the cache's own reference and one per queued or staged sample: only
 * the writer thread adds references and frees (at a sweep, an entry whose only reference is
 * the cache's); the sender thread drops references once it has copied the labels into a
 * request, or dropped the sample.
 */
typedef struct {
    st_ref_t ref;
    atomic_uint refs;
    uint32_t len;
    uint8_t data[];
} rw_series_t;

typedef struct {
    rw_series_t *se;
    int64_t ts;
    double v;
} rw_sample_t;

typedef struct rw_chunk {
    struct rw_chunk *next;
    rw_sample_t *s;
    size_t n, cap;    /* samples, and the capacity of s */
    size_t head;      /* first sample not yet taken or dropped */
    int64_t born_ns;  /* when it was queued (monotonic): its samples wait since then */
    uint64_t dropped; /* while staging: samples dropped for room */
} rw_chunk_t;

/* Series by store reference: open addressing with linear probing (writer thread only). */
typedef struct {
    rw_series_t **slot;
    size_t cap, n; /* cap: a power of two, at least twice n */
    size_t sweep_at;
} rw_cache_t;

enum { DROP_QUEUE_FULL, DROP_REJECTED, DROP_SHUTDOWN, NDROP };
static const char *const drop_reason[NDROP] = {"queue_full", "rejected", "shutdown"};

struct col_rw_sender {
    /* options, fixed after new */
    char *url;
    char *url_log; /* url without user:password@, for logs */
    size_t batch, queue;
    int64_t flush_ns, timeout_ms, min_backoff_ms, max_backoff_ms;

    pthread_mutex_t mu;
    pthread_cond_t cv; /* the sender waits for samples, a deadline or the stop request */
    rw_chunk_t *qhead, *qtail;
    size_t queued;   /* samples in the queue (not counting the request in flight) */
    size_t inflight; /* samples of the request being sent */
    bool stopping;
    int64_t drain_until_ns;   /* with stopping: give up sending at this time */
    atomic_llong abort_at_ns; /* the drain time (monotonic): abort a request still in flight */
    uint64_t sent, dropped[NDROP], retries, requests, requests_failed, bytes_sent;
    uint64_t by_code[600]; /* attempts by HTTP status; [0]: no answer */
    bool failing;          /* the last attempt was a retryable failure (for the log) */
    rw_chunk_t *spare;     /* sent chunks, emptied, for the writer to reuse */
    size_t nspare;
    size_t cached_series; /* the cache's size at the last publish, for the metrics */

    /* writer thread only */
    rw_chunk_t *stage;
    size_t hint_n; /* the last published chunk's size: a new one starts there */
    rw_cache_t cache;

    /* sender thread only */
    CURL *curl;
    struct curl_slist *headers;
    pthread_t th;
    bool started, stopped;
};

/* ---- encoding ----------------------------------------------------------------------------- */

static size_t uvarint_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static uint8_t *put_tag_len(uint8_t *p, uint8_t tag, size_t len)
{
    *p++ = tag;
    return p + wf_uvarint_put(p, len);
}

static uint8_t *put_bytes(uint8_t *p, uint8_t tag, wf_str_t s)
{
    p = put_tag_len(p, tag, s.len);
    memcpy(p, s.p, s.len);
    return p + s.len;
}

static size_t label_len(const st_label_t *l)
{
    return 1 + uvarint_len(l->name.len) + l->name.len + 1 + uvarint_len(l->value.len) +
           l->value.len;
}

static int label_cmp(const void *a, const void *b)
{
    return wf_str_cmp(((const st_label_t *)a)->name, ((const st_label_t *)b)->name);
}

/* A new series entry (one reference) holding labels as TimeSeries.labels fields: sorted by
 * name (on a copy when they are not), empty values left out. */
static rw_series_t *series_new(st_ref_t ref, const st_label_t *labels, size_t n)
{
    st_label_t *sorted = NULL;
    for (size_t i = 1; i < n; i++) {
        if (wf_str_cmp(labels[i - 1].name, labels[i].name) > 0) {
            sorted = wf_malloc(n * sizeof(*sorted));
            memcpy(sorted, labels, n * sizeof(*sorted));
            qsort(sorted, n, sizeof(*sorted), label_cmp);
            labels = sorted;
            break;
        }
    }
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        if (labels[i].value.len > 0) {
            size_t l = label_len(&labels[i]);
            len += 1 + uvarint_len(l) + l;
        }
    }
    /* The store bounds label counts and lengths far below this. */
    WF_ASSERT(len < UINT32_MAX);
    rw_series_t *se = wf_malloc(sizeof(*se) + len);
    se->ref = ref;
    atomic_init(&se->refs, 1);
    se->len = (uint32_t)len;
    uint8_t *p = se->data;
    for (size_t i = 0; i < n; i++) {
        if (labels[i].value.len == 0) {
            continue;
        }
        p = put_tag_len(p, 0x0a, label_len(&labels[i])); /* TimeSeries.labels = 1 */
        p = put_bytes(p, 0x0a, labels[i].name);          /* Label.name = 1 */
        p = put_bytes(p, 0x12, labels[i].value);         /* Label.value = 2 */
    }
    WF_ASSERT((size_t)(p - se->data) == len);
    wf_free(sorted);
    return se;
}

/* Append one WriteRequest.timeseries entry: the series' labels and one sample. */
static void encode_entry(wf_buf_t *out, const rw_series_t *se, int64_t ts_ms, double v)
{
    /* Sample: field 1 double (fixed64), field 2 int64 (varint). */
    size_t sample_len = 1 + 8 + 1 + uvarint_len((uint64_t)ts_ms);
    size_t ts_len = se->len + 1 + uvarint_len(sample_len) + sample_len;
    size_t total = 1 + uvarint_len(ts_len) + ts_len;
    uint8_t *start = wf_buf_reserve(out, total), *p = start;
    p = put_tag_len(p, 0x0a, ts_len); /* WriteRequest.timeseries = 1 */
    memcpy(p, se->data, se->len);
    p += se->len;
    p = put_tag_len(p, 0x12, sample_len); /* TimeSeries.samples = 2 */
    uint64_t bits;
    memcpy(&bits, &v, sizeof(bits));
    *p++ = 0x09; /* Sample.value = 1, fixed64 little-endian */
    for (int i = 0; i < 8; i++) {
        *p++ = (uint8_t)(bits >> (8 * i));
    }
    *p++ = 0x10; /* Sample.timestamp = 2, varint */
    p += wf_uvarint_put(p, (uint64_t)ts_ms);
    WF_ASSERT((size_t)(p - start) == total);
    out->len += total;
}

void col_rw_encode_series(wf_buf_t *out, const st_label_t *labels, size_t n, int64_t ts_ms,
                          double v)
{
    rw_series_t *se = series_new(0, labels, n);
    encode_entry(out, se, ts_ms, v);
    wf_free(se);
}

/* ---- the series cache (writer thread) ------------------------------------------------------ */

static size_t cache_pos(const rw_cache_t *c, st_ref_t ref)
{
    uint64_t h = ref * 0x9e3779b97f4a7c15ULL;
    return (size_t)(h ^ (h >> 29)) & (c->cap - 1);
}

static void cache_insert(rw_cache_t *c, rw_series_t *se)
{
    size_t i = cache_pos(c, se->ref);
    while (c->slot[i] != NULL) {
        i = (i + 1) & (c->cap - 1);
    }
    c->slot[i] = se;
    c->n++;
}

/* Rebuild the table with cap slots, keeping the entries still referenced by samples when
 * sweep, every entry otherwise. */
static void cache_rebuild(rw_cache_t *c, size_t cap, bool sweep)
{
    rw_series_t **old = c->slot;
    size_t old_cap = c->cap;
    c->slot = wf_calloc(cap, sizeof(*c->slot));
    c->cap = cap;
    c->n = 0;
    for (size_t i = 0; i < old_cap; i++) {
        rw_series_t *se = old[i];
        if (se == NULL) {
            continue;
        }
        if (sweep && atomic_load(&se->refs) == 1) {
            wf_free(se);
        } else {
            cache_insert(c, se);
        }
    }
    wf_free(old);
}

/* The entry of ref, created from labels when missing. */
static rw_series_t *cache_get(rw_cache_t *c, st_ref_t ref, const st_label_t *labels, size_t n)
{
    if (c->cap > 0) {
        for (size_t i = cache_pos(c, ref); c->slot[i] != NULL; i = (i + 1) & (c->cap - 1)) {
            if (c->slot[i]->ref == ref) {
                return c->slot[i];
            }
        }
    }
    if (2 * (c->n + 1) > c->cap) {
        cache_rebuild(c, c->cap ? 2 * c->cap : 1024, false);
    }
    rw_series_t *se = series_new(ref, labels, n);
    cache_insert(c, se);
    return se;
}

/* Free the entries no sample refers to any more, when the cache has grown enough since the
 * last time for the walk to pay. */
static void cache_sweep(rw_cache_t *c)
{
    if (c->n < c->sweep_at) {
        return;
    }
    cache_rebuild(c, c->cap, true);
    while (c->cap > 1024 && 8 * c->n < c->cap) {
        cache_rebuild(c, c->cap / 2, false);
    }
    c->sweep_at = 2 * c->n > CACHE_SWEEP_MIN ? 2 * c->n : CACHE_SWEEP_MIN;
}

static void cache_free(rw_cache_t *c)
{
    for (size_t i = 0; i < c->cap; i++) {
        wf_free(c->slot[i]);
    }
    wf_free(c->slot);
    memset(c, 0, sizeof(*c));
}

/* ---- chunks ------------------------------------------------------------------------------- */

static void release(rw_sample_t *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        atomic_fetch_sub(&s[i].se->refs, 1);
    }
}

static void chunk_free(rw_chunk_t *c)
{
    if (c != NULL) {
        wf_free(c->s);
        wf_free(c);
    }
}

/* Done with chunk c (every sample taken or dropped): keep it as a spare when there is room,
 * else free it. Under mu. */
static void chunk_done(col_rw_sender_t *s, rw_chunk_t *c)
{
    if (s->nspare >= SPARE_CHUNKS || c->cap > SPARE_MAX_SAMPLES) {
        chunk_free(c);
        return;
    }
    c->n = c->head = 0;
    c->dropped = 0;
    c->next = s->spare;
    s->spare = c;
    s->nspare++;
}

/* st_batch_each callback: queue one sample in the staging chunk. Writer thread. */
static int stage_one(void *arg, st_ref_t ref, const st_label_t *labels, size_t nlabels,
                     int64_t ts_ms, double v)
{
    col_rw_sender_t *s = arg;
    rw_chunk_t *c = s->stage;
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 256;
        c->s = wf_realloc(c->s, c->cap * sizeof(*c->s));
    }
    rw_series_t *se = cache_get(&s->cache, ref, labels, nlabels);
    atomic_fetch_add(&se->refs, 1);
    c->s[c->n++] = (rw_sample_t){se, ts_ms, v};
    /* A batch larger than the whole queue (a big import) keeps only its newest samples, and
     * never holds more than twice the queue while staging. */
    if (c->n - c->head > s->queue) {
        release(&c->s[c->head], 1);
        c->head++;
        c->dropped++;
        if (c->head >= s->queue) {
            memmove(c->s, c->s + c->head, (c->n - c->head) * sizeof(*c->s));
            c->n -= c->head;
            c->head = 0;
        }
    }
    return 0;
}

static void tap_stage(void *arg, st_batch_t *b)
{
    col_rw_sender_t *s = arg;
    if (s->stage == NULL) {
        pthread_mutex_lock(&s->mu);
        rw_chunk_t *c = s->spare;
        if (c != NULL) {
            s->spare = c->next;
            s->nspare--;
            c->next = NULL;
        }
        pthread_mutex_unlock(&s->mu);
        if (c == NULL) {
            c = wf_calloc(1, sizeof(*c));
        }
        if (c->cap < s->hint_n) {
            c->cap = s->hint_n;
            c->s = wf_realloc(c->s, c->cap * sizeof(*c->s));
        }
        s->stage = c;
    }
    int rc = st_batch_each(b, stage_one, s);
    WF_ASSERT(rc == 0);
}

/* Drop the oldest queued samples until at most s->queue remain. Under mu. */
static void trim_queue(col_rw_sender_t *s)
{
    while (s->queued > s->queue) {
        rw_chunk_t *c = s->qhead;
        size_t k = c->n - c->head;
        if (k > s->queued - s->queue) {
            k = s->queued - s->queue;
        }
        release(&c->s[c->head], k);
        c->head += k;
        s->queued -= k;
        s->dropped[DROP_QUEUE_FULL] += k;
        if (c->head == c->n) {
            s->qhead = c->next;
            if (s->qhead == NULL) {
                s->qtail = NULL;
            }
            chunk_done(s, c);
        }
    }
}

static void tap_publish(void *arg, bool committed)
{
    col_rw_sender_t *s = arg;
    rw_chunk_t *c = s->stage;
    if (c == NULL || c->n == c->head || !committed) {
        if (c != NULL) {
            /* Keep the staging memory for the next batch. */
            release(&c->s[c->head], c->n - c->head);
            c->n = c->head = 0;
            c->dropped = 0;
        }
        cache_sweep(&s->cache);
        return;
    }
    s->stage = NULL;
    c->born_ns = wf_mono_ns();
    /* A quarter beyond the last batch's size, capped to what a spare may hold. */
    size_t hn = c->n + c->n / 4;
    s->hint_n = hn < SPARE_MAX_SAMPLES ? hn : SPARE_MAX_SAMPLES;
    pthread_mutex_lock(&s->mu);
    s->dropped[DROP_QUEUE_FULL] += c->dropped;
    if (s->stopped) {
        /* Only after col_rw_sender_stop, which the owner calls once ingest has stopped. */
        s->dropped[DROP_SHUTDOWN] += c->n - c->head;
        release(&c->s[c->head], c->n - c->head);
        pthread_mutex_unlock(&s->mu);
        chunk_free(c);
        return;
    }
    if (s->qtail != NULL) {
        s->qtail->next = c;
    } else {
        s->qhead = c;
    }
    s->qtail = c;
    s->queued += c->n - c->head;
    trim_queue(s);
    if (s->queued >= s->batch) {
        pthread_cond_signal(&s->cv);
    }
    pthread_mutex_unlock(&s->mu);
    /* After the hand-over: the samples just queued hold their series. */
    cache_sweep(&s->cache);
    pthread_mutex_lock(&s->mu);
    s->cached_series = s->cache.n;
    pthread_mutex_unlock(&s->mu);
}

void col_rw_sender_tap(col_rw_sender_t *s, col_writer_tap_t *out)
{
    out->stage = tap_stage;
    out->publish = tap_publish;
    out->arg = s;
}

/* ---- the sender thread -------------------------------------------------------------------- */

static struct timespec mono_ts(int64_t ns)
{
    return (struct timespec){.tv_sec = (time_t)(ns / 1000000000),
                             .tv_nsec = (long)(ns % 1000000000)};
}

/* Move up to s->batch queued samples into out[] (room for s->batch). Under mu. */
static size_t take_batch(col_rw_sender_t *s, rw_sample_t *out)
{
    size_t taken = 0;
    while (taken < s->batch && s->qhead != NULL) {
        rw_chunk_t *c = s->qhead;
        size_t k = c->n - c->head;
        if (k > s->batch - taken) {
            k = s->batch - taken;
        }
        memcpy(out + taken, c->s + c->head, k * sizeof(*out));
        c->head += k;
        taken += k;
        if (c->head == c->n) {
            s->qhead = c->next;
            if (s->qhead == NULL) {
                s->qtail = NULL;
            }
            chunk_done(s, c);
        }
    }
    s->queued -= taken;
    return taken;
}

static size_t answer_cb(char *p, size_t size, size_t nmemb, void *arg)
{
    wf_buf_t *b = arg;
    size_t n = size * nmemb;
    if (b->len < ANSWER_KEEP) {
        wf_buf_append(b, p, n < ANSWER_KEEP - b->len ? n : ANSWER_KEEP - b->len);
    }
    return n;
}

static int progress_cb(void *arg, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
    (void)dt, (void)dn, (void)ut, (void)un;
    col_rw_sender_t *s = arg;
    return wf_mono_ns() >= atomic_load(&s->abort_at_ns) ? 1 : 0;
}

/* POST body; the HTTP status, or 0 with a message in err when no answer came. */
static long post(col_rw_sender_t *s, const uint8_t *body, size_t len, wf_buf_t *answer, char *err,
                 size_t errlen)
{
    wf_buf_reset(answer);
    curl_easy_setopt(s->curl, CURLOPT_POSTFIELDS, (const char *)body);
    curl_easy_setopt(s->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(s->curl, CURLOPT_WRITEDATA, answer);
    CURLcode cc = curl_easy_perform(s->curl);
    if (cc != CURLE_OK) {
        snprintf(err, errlen, "%s", curl_easy_strerror(cc));
        return 0;
    }
    long code = 0;
    curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, &code);
    if (code < 100 || code > 599) {
        snprintf(err, errlen, "invalid HTTP status %ld", code);
        return 0;
    }
    return code;
}

/* The answer as one log-safe line. */
static const char *answer_text(wf_buf_t *answer)
{
    for (size_t i = 0; i < answer->len; i++) {
        if (answer->data[i] < 0x20 || answer->data[i] == '"' || answer->data[i] == '\\' ||
            answer->data[i] >= 0x7f) {
            answer->data[i] = ' ';
        }
    }
    return wf_buf_cstr(answer);
}

/* Send one request of k samples until it is accepted, refused, or the drain time is over. */
static void send_batch(col_rw_sender_t *s, const uint8_t *z, size_t zlen, size_t k,
                       wf_buf_t *answer)
{
    int64_t backoff = s->min_backoff_ms;
    char err[CURL_ERROR_SIZE + 64];
    for (;;) {
        err[0] = '\0';
        long code = post(s, z, zlen, answer, err, sizeof(err));
        pthread_mutex_lock(&s->mu);
        s->requests++;
        s->by_code[code]++;
        s->requests_failed += code == 0;
        if (code >= 200 && code < 300) {
            s->sent += k;
            s->bytes_sent += zlen;
            s->inflight = 0;
            bool was_failing = s->failing;
            s->failing = false;
            pthread_mutex_unlock(&s->mu);
            if (was_failing) {
                WF_LOG(WF_INFO, "remote_write", "remote store reachable again", "url=%s",
                       s->url_log);
            }
            return;
        }
        if (code != 0 && code != 429 && code < 500) {
            s->dropped[DROP_REJECTED] += k;
            s->inflight = 0;
            pthread_mutex_unlock(&s->mu);
            WF_LOG_RL(WF_WARN, 1, "remote_write", "remote store refused samples: dropped",
                      "url=%s code=%ld samples=%zu answer=\"%s\"", s->url_log, code, k,
                      answer_text(answer));
            return;
        }
        int64_t now = wf_mono_ns();
        if (s->stopping && now >= s->drain_until_ns) {
            s->dropped[DROP_SHUTDOWN] += k;
            s->inflight = 0;
            pthread_mutex_unlock(&s->mu);
            return;
        }
        s->retries++;
        s->failing = true;
        int64_t until = now + backoff * 1000000;
        if (s->stopping && until > s->drain_until_ns) {
            until = s->drain_until_ns;
        }
        pthread_mutex_unlock(&s->mu);
        if (code != 0) {
            WF_LOG_RL(WF_WARN, 1, "remote_write", "remote store failed: retrying",
                      "url=%s code=%ld backoff_ms=%lld answer=\"%s\"", s->url_log, code,
                      (long long)backoff, answer_text(answer));
        } else {
            WF_LOG_RL(WF_WARN, 1, "remote_write", "remote store unreachable: retrying",
                      "url=%s err=\"%s\" backoff_ms=%lld", s->url_log, err, (long long)backoff);
        }
        /* Wait out the backoff, or less when a stop request shortens it. */
        struct timespec ts = mono_ts(until);
        pthread_mutex_lock(&s->mu);
        bool stopping_before = s->stopping;
        while (wf_mono_ns() < until && s->stopping == stopping_before) {
            if (pthread_cond_timedwait(&s->cv, &s->mu, &ts) == ETIMEDOUT) {
                break;
            }
        }
        pthread_mutex_unlock(&s->mu);
        backoff = backoff * 2 < s->max_backoff_ms ? backoff * 2 : s->max_backoff_ms;
    }
}

static void *sender_main(void *arg)
{
    col_rw_sender_t *s = arg;
    wf_buf_t req, answer;
    wf_buf_init(&req);
    wf_buf_init(&answer);
    char *z = NULL;
    size_t zcap = 0;
    rw_sample_t *batch = wf_malloc(s->batch * sizeof(*batch));
    pthread_mutex_lock(&s->mu);
    for (;;) {
        int64_t now = wf_mono_ns();
        if (s->stopping && (s->queued == 0 || now >= s->drain_until_ns)) {
            break;
        }
        bool due = s->queued >= s->batch || (s->stopping && s->queued > 0) ||
                   (s->qhead != NULL && now - s->qhead->born_ns >= s->flush_ns);
        if (!due) {
            int64_t until = s->qhead != NULL ? s->qhead->born_ns + s->flush_ns : now + s->flush_ns;
            struct timespec ts = mono_ts(until);
            pthread_cond_timedwait(&s->cv, &s->mu, &ts);
            continue;
        }
        size_t k = take_batch(s, batch);
        s->inflight = k;
        pthread_mutex_unlock(&s->mu);

        wf_buf_reset(&req);
        for (size_t i = 0; i < k; i++) {
            encode_entry(&req, batch[i].se, batch[i].ts, batch[i].v);
        }
        release(batch, k);

        size_t need = snappy_max_compressed_length(req.len);
        if (need > zcap) {
            zcap = need;
            wf_free(z);
            z = wf_malloc(zcap);
        }
        size_t zlen = zcap;
        snappy_status st = snappy_compress((const char *)req.data, req.len, z, &zlen);
        WF_ASSERT(st == SNAPPY_OK);
        send_batch(s, (const uint8_t *)z, zlen, k, &answer);
        pthread_mutex_lock(&s->mu);
    }
    s->dropped[DROP_SHUTDOWN] += s->queued;
    s->queued = 0;
    while (s->qhead != NULL) {
        rw_chunk_t *c = s->qhead;
        s->qhead = c->next;
        release(&c->s[c->head], c->n - c->head);
        chunk_free(c);
    }
    s->qtail = NULL;
    pthread_mutex_unlock(&s->mu);
    wf_free(batch);
    wf_free(z);
    wf_buf_free(&req);
    wf_buf_free(&answer);
    return NULL;
}

/* ---- life cycle --------------------------------------------------------------------------- */

/* url with any user:password@ replaced by ***@. */
static char *redact_url(const char *url)
{
    const char *scheme = strstr(url, "://");
    const char *host = scheme != NULL ? scheme + 3 : url;
    const char *slash = strchr(host, '/');
    const char *at = strchr(host, '@');
    if (at == NULL || (slash != NULL && at > slash)) {
        return wf_strdup(url);
    }
    size_t pre = (size_t)(host - url);
    size_t len = pre + 4 + strlen(at + 1) + 1;
    char *out = wf_malloc(len);
    snprintf(out, len, "%.*s***@%s", (int)pre, url, at + 1);
    return out;
}

static int setup_curl(col_rw_sender_t *s, const char *token)
{
    s->curl = curl_easy_init();
    if (s->curl == NULL) {
        return -ENOMEM;
    }
    s->headers = curl_slist_append(s->headers, "Content-Encoding: snappy");
    s->headers = curl_slist_append(s->headers, "Content-Type: application/x-protobuf");
    s->headers = curl_slist_append(s->headers, "X-Prometheus-Remote-Write-Version: 0.1.0");
    /* No 100-continue round trip before large bodies. */
    s->headers = curl_slist_append(s->headers, "Expect:");
    if (token != NULL && token[0] != '\0') {
        size_t len = strlen(token) + sizeof("Authorization: Bearer ");
        char *h = wf_malloc(len);
        snprintf(h, len, "Authorization: Bearer %s", token);
        s->headers = curl_slist_append(s->headers, h);
        explicit_bzero(h, len);
        wf_free(h);
    }
    if (s->headers == NULL) {
        return -ENOMEM;
    }
    curl_easy_setopt(s->curl, CURLOPT_URL, s->url);
    curl_easy_setopt(s->curl, CURLOPT_POST, 1L);
    curl_easy_setopt(s->curl, CURLOPT_HTTPHEADER, s->headers);
    curl_easy_setopt(s->curl, CURLOPT_USERAGENT, "weft/" WEFT_VERSION);
    curl_easy_setopt(s->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(s->curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(s->curl, CURLOPT_TIMEOUT_MS, (long)s->timeout_ms);
    curl_easy_setopt(
        s->curl, CURLOPT_CONNECTTIMEOUT_MS,
        (long)(s->timeout_ms < CONNECT_TIMEOUT_MS ? s->timeout_ms : CONNECT_TIMEOUT_MS));
    curl_easy_setopt(s->curl, CURLOPT_WRITEFUNCTION, answer_cb);
    curl_easy_setopt(s->curl, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(s->curl, CURLOPT_XFERINFOFUNCTION, progress_cb);
    curl_easy_setopt(s->curl, CURLOPT_XFERINFODATA, s);
    return 0;
}

int col_rw_sender_new(const col_rw_sender_options_t *o, col_rw_sender_t **out, char *err,
                      size_t errlen)
{
    *out = NULL;
    if (o->url == NULL ||
        (strncmp(o->url, "http://", 7) != 0 && strncmp(o->url, "https://", 8) != 0)) {
        snprintf(err, errlen, "the remote_write URL must start with http:// or https://");
        return WF_E_INVAL;
    }
    if (o->batch > COL_RW_SENDER_MAX_BATCH || o->flush_ms < 0 || o->timeout_ms < 0 ||
        o->min_backoff_ms < 0 || o->max_backoff_ms < 0) {
        snprintf(err, errlen, "remote_write: batch at most %zu, durations >= 0",
                 (size_t)COL_RW_SENDER_MAX_BATCH);
        return WF_E_INVAL;
    }
    col_rw_sender_t *s = wf_calloc(1, sizeof(*s));
    s->url = wf_strdup(o->url);
    s->url_log = redact_url(o->url);
    s->batch = o->batch ? o->batch : COL_RW_SENDER_DEFAULT_BATCH;
    s->queue = o->queue ? o->queue : COL_RW_SENDER_DEFAULT_QUEUE;
    if (s->queue < s->batch) {
        s->queue = s->batch; /* a full batch must fit */
    }
    s->flush_ns = (o->flush_ms ? o->flush_ms : COL_RW_SENDER_DEFAULT_FLUSH_MS) * 1000000;
    s->timeout_ms = o->timeout_ms ? o->timeout_ms : COL_RW_SENDER_DEFAULT_TIMEOUT_MS;
    s->min_backoff_ms =
        o->min_backoff_ms ? o->min_backoff_ms : COL_RW_SENDER_DEFAULT_MIN_BACKOFF_MS;
    s->max_backoff_ms =
        o->max_backoff_ms ? o->max_backoff_ms : COL_RW_SENDER_DEFAULT_MAX_BACKOFF_MS;
    if (s->max_backoff_ms < s->min_backoff_ms) {
        s->max_backoff_ms = s->min_backoff_ms;
    }
    atomic_init(&s->abort_at_ns, INT64_MAX);
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cv, &ca);
    pthread_condattr_destroy(&ca);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int rc = setup_curl(s, o->bearer_token);
    if (rc != 0) {
        snprintf(err, errlen, "remote_write: cannot set up libcurl");
        goto fail;
    }
    rc = -pthread_create(&s->th, NULL, sender_main, s);
    if (rc != 0) {
        snprintf(err, errlen, "remote_write: cannot start the sender thread");
        goto fail;
    }
    s->started = true;
    WF_LOG(WF_INFO, "remote_write", "forwarding samples", "url=%s batch=%zu queue=%zu", s->url_log,
           s->batch, s->queue);
    *out = s;
    return 0;
fail:
    col_rw_sender_free(s);
    return rc;
}

void col_rw_sender_stop(col_rw_sender_t *s, int64_t drain_ms)
{
    if (s == NULL || s->stopped) {
        return;
    }
    pthread_mutex_lock(&s->mu);
    s->stopping = true;
    s->drain_until_ns = wf_mono_ns() + (drain_ms > 0 ? drain_ms : 0) * 1000000;
    size_t left = s->queued + s->inflight;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    /* libcurl calls the progress callback at least once a second during a request, which
     * then aborts it once the drain time is over. */
    atomic_store(&s->abort_at_ns, s->drain_until_ns);
    if (s->started) {
        pthread_join(s->th, NULL);
    }
    pthread_mutex_lock(&s->mu);
    s->stopped = true;
    pthread_mutex_unlock(&s->mu);
    if (left > 0) {
        WF_LOG(WF_INFO, "remote_write", "stopped", "pending_at_stop=%zu dropped_at_stop=%llu", left,
               (unsigned long long)s->dropped[DROP_SHUTDOWN]);
    }
}

void col_rw_sender_free(col_rw_sender_t *s)
{
    if (s == NULL) {
        return;
    }
    col_rw_sender_stop(s, 0);
    chunk_free(s->stage);
    cache_free(&s->cache);
    while (s->spare != NULL) {
        rw_chunk_t *c = s->spare;
        s->spare = c->next;
        chunk_free(c);
    }
    if (s->headers != NULL) {
        for (struct curl_slist *h = s->headers; h != NULL; h = h->next) {
            explicit_bzero(h->data, strlen(h->data));
        }
        curl_slist_free_all(s->headers);
    }
    if (s->curl != NULL) {
        curl_easy_cleanup(s->curl);
    }
    curl_global_cleanup();
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    wf_free(s->url);
    wf_free(s->url_log);
    wf_free(s);
}

/* ---- metrics ------------------------------------------------------------------------------ */

void col_rw_sender_stats(col_rw_sender_t *s, col_rw_sender_stats_t *out)
{
    pthread_mutex_lock(&s->mu);
    *out = (col_rw_sender_stats_t){
        .samples_sent = s->sent,
        .dropped_queue_full = s->dropped[DROP_QUEUE_FULL],
        .dropped_rejected = s->dropped[DROP_REJECTED],
        .dropped_shutdown = s->dropped[DROP_SHUTDOWN],
        .pending = s->queued + s->inflight,
        .retries = s->retries,
        .requests = s->requests,
        .requests_failed = s->requests_failed,
        .bytes_sent = s->bytes_sent,
        .series_cached = s->cached_series,
    };
    pthread_mutex_unlock(&s->mu);
}

static void family(wf_buf_t *out, const char *name, const char *type, const char *help)
{
    wf_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void col_rw_sender_write_metrics(col_rw_sender_t *s, wf_buf_t *out)
{
    if (s == NULL) {
        return;
    }
    pthread_mutex_lock(&s->mu);
    uint64_t dropped[NDROP], codes[600];
    memcpy(dropped, s->dropped, sizeof(dropped));
    memcpy(codes, s->by_code, sizeof(codes));
    uint64_t sent = s->sent, retries = s->retries, bytes = s->bytes_sent;
    uint64_t pending = s->queued + s->inflight, series = s->cached_series;
    pthread_mutex_unlock(&s->mu);

    family(out, "weft_remote_write_samples_sent_total", "counter",
           "Samples the remote store accepted (2xx answer).");
    wf_buf_printf(out, "weft_remote_write_samples_sent_total %llu\n", (unsigned long long)sent);
    family(out, "weft_remote_write_samples_dropped_total", "counter",
           "Samples given up: queue_full (oldest dropped for room), rejected (a 4xx answer "
           "other than 429), shutdown (left when the drain time ran out).");
    for (int i = 0; i < NDROP; i++) {
        wf_buf_printf(out, "weft_remote_write_samples_dropped_total{reason=\"%s\"} %llu\n",
                      drop_reason[i], (unsigned long long)dropped[i]);
    }
    family(out, "weft_remote_write_samples_pending", "gauge",
           "Samples queued or in flight to the remote store.");
    wf_buf_printf(out, "weft_remote_write_samples_pending %llu\n", (unsigned long long)pending);
    family(out, "weft_remote_write_queue_capacity_samples", "gauge",
           "Most samples the queue holds before it drops the oldest.");
    wf_buf_printf(out, "weft_remote_write_queue_capacity_samples %zu\n", s->queue);
    family(out, "weft_remote_write_series_cached", "gauge",
           "Series whose encoded labels the sender holds for its queued samples.");
    wf_buf_printf(out, "weft_remote_write_series_cached %llu\n", (unsigned long long)series);
    family(out, "weft_remote_write_requests_total", "counter",
           "Requests to the remote store by HTTP status; code=\"error\": no answer.");
    for (int c = 0; c < 600; c++) {
        if (codes[c] == 0) {
            continue;
        }
        if (c == 0) {
            wf_buf_printf(out, "weft_remote_write_requests_total{code=\"error\"} %llu\n",
                          (unsigned long long)codes[c]);
        } else {
            wf_buf_printf(out, "weft_remote_write_requests_total{code=\"%d\"} %llu\n", c,
                          (unsigned long long)codes[c]);
        }
    }
    family(out, "weft_remote_write_retries_total", "counter",
           "Requests sent again after a 5xx, a 429 or no answer.");
    wf_buf_printf(out, "weft_remote_write_retries_total %llu\n", (unsigned long long)retries);
    family(out, "weft_remote_write_sent_bytes_total", "counter",
           "Compressed bytes of the requests the remote store accepted.");
    wf_buf_printf(out, "weft_remote_write_sent_bytes_total %llu\n", (unsigned long long)bytes);
}
