/*
 * cp_push.c - the config push engine (cp_push.h): debounced rebuilds into versioned
 * generations, per-proxy acknowledgement state, parked long-polls, proxy-status and metrics.
 *
 * A generation is one built configuration (cp_config_t + compiler) under one version. It is
 * reference counted: a poll compiles its document outside the engine's lock from the generation
 * it took, while a rebuild may install the next one meanwhile.
 *
 * Documents are never cached: at 1,000 services a sidecar's document is megabytes, and 2,000
 * of them held at once would be gigabytes. A parked poll is resumed when a newer version exists
 * and compiles its own document on the HTTP thread; only the content hash stays, so the next
 * poll at the same version knows without compiling that nothing changed for it. Documents on
 * their way out count against a send budget: past it, a poll waits (first come, first served)
 * until sent documents free room, so memory stays bounded however many proxies converge at once
 * and however slowly they read.
 */
#include "cp_push.h"

#include "cp_analyze.h"
#include "cp_err.h"

#include "wf_alloc.h"
#include "wf_clock.h"
#include "wf_err.h"
#include "wf_log.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A reported version further ahead of ours than this cannot be one we handed out. */
#define FUTURE_SLACK_MS (24LL * 3600 * 1000)
/* A refusal reason is kept to this many bytes. */
#define REASON_MAX 1024
/* After a failed build, the next try waits this long. */
#define RETRY_MS 1000

typedef struct gen {
    int refs; /* under the engine's lock */
    int64_t version;
    int64_t change_ms; /* monotonic time of the first change it includes; 0: none (first build) */
    cp_config_t *cfg;
    cp_compiled_t *compiled;
} gen_t;

typedef struct cp_push_proxy {
    char *id;
    int64_t acked; /* version of its last poll */
    uint64_t have_hash;
    bool have_known; /* have_hash is the content it runs (it acked what we sent) */
    bool nacking;    /* its last poll carried a refusal */
    int64_t nack;
    char *reason;
    uint64_t nack_hash;
    bool nack_known;         /* nack_hash is the content it refused */
    int64_t sent;            /* version last sent (0: none) */
    uint64_t sent_hash;      /* its content hash */
    int64_t sent_change_ms;  /* the change that produced it (monotonic; 0: none) */
    int64_t same_version;    /* a version whose content is what it runs: SYNCED without sending */
    int64_t refused_version; /* a version whose content is what it refused */
    int64_t absent_version;  /* a version that has no workload of this id */
    int64_t last_poll_ms;
    unsigned nwaiting; /* parked polls */
    unsigned busy;     /* polls compiling outside the lock */
} proxy_t;

/* Convergence (change -> ACK) and build duration share these bounds, in seconds. */
static const double buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
#define NBUCKETS (sizeof(buckets) / sizeof(buckets[0]))

typedef struct {
    uint64_t counts[NBUCKETS + 1]; /* the last one is +Inf */
    double sum;
    uint64_t n;
} histo_t;

struct cp_push {
    cp_push_opts_t o;
    char *collector_url;
    /* The CA's bundle (o.compile's copy is replaced under the lock), and the first version
     * built with it: a proxy that acknowledged that one has it. */
    char *trust_bundle;
    int64_t bundle_first_version;

    pthread_mutex_t mu;
    pthread_cond_t cond;
    pthread_t thread;
    bool thread_running;
    bool stopping;
    bool closed;
    int64_t thread_wake_ms; /* when the thread will next look (monotonic); 0: not sleeping */

    gen_t *cur;
    bool pending;
    int64_t first_change_ms, last_change_ms;
    int64_t retry_ms; /* after a failed build, no rebuild before this */
    int64_t max_seen; /* highest version a proxy reported, when plausibly ours */

    proxy_t **proxies; /* sorted by id */
    size_t nproxies, cap_proxies;
    cp_push_waiter_t *waiters, *waiters_tail; /* parked polls, oldest first */
    size_t nwaiters;
    size_t budget;         /* bytes of documents that may be on their way out at once */
    size_t inflight;       /* bytes given out and not yet cp_push_sent */
    size_t last_doc_len;   /* the size of the last document, to wake as many as fit */
    size_t budget_waiting; /* parked polls waiting for room in the budget */

    uint64_t pushes, nacks, builds, build_failures;
    uint64_t findings[3]; /* cross-resource findings of the current configuration, by level */
    histo_t convergence, build_time;
};

static int64_t mono_ms(void)
{
    return wf_mono_ns() / 1000000;
}

static void histo_observe(histo_t *h, double v)
{
    size_t i = 0;
    while (i < NBUCKETS && v > buckets[i]) {
        i++;
    }
    h->counts[i]++;
    h->sum += v;
    h->n++;
}

static void histo_print(const histo_t *h, FILE *f, const char *name, const char *help)
{
    uint64_t cum = 0;
    fprintf(f, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    for (size_t i = 0; i < NBUCKETS; i++) {
        cum += h->counts[i];
        fprintf(f, "%s_bucket{le=\"%g\"} %llu\n", name, buckets[i], (unsigned long long)cum);
    }
    cum += h->counts[NBUCKETS];
    fprintf(f, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6f\n%s_count %llu\n", name,
            (unsigned long long)cum, name, h->sum, name, (unsigned long long)h->n);
}

/* ---- generations ---- */

static void gen_free(cp_push_t *p, gen_t *g)
{
    if (g == NULL) {
        return;
    }
    p->o.compiler->compile_free(g->compiled);
    cp_config_free(g->cfg);
    wf_free(g);
}

/* Drop a reference under the lock; the generation to free (after unlocking) or NULL. */
static gen_t *gen_unref_locked(gen_t *g)
{
    WF_ASSERT(g->refs > 0);
    return --g->refs == 0 ? g : NULL;
}

static const cp_workload_t *find_workload(const cp_config_t *cfg, const char *id)
{
    size_t lo = 0, hi = cfg->nworkloads;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(cfg->workloads[mid].id, id);
        if (c == 0) {
            return &cfg->workloads[mid];
        }
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return NULL;
}

/* ---- proxies ---- */

/* The index of id in the sorted table, or where it would go (*found false). */
static size_t proxy_pos(const cp_push_t *p, const char *id, bool *found)
{
    size_t lo = 0, hi = p->nproxies;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(p->proxies[mid]->id, id);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    *found = false;
    return lo;
}

static proxy_t *proxy_get(cp_push_t *p, const char *id)
{
    bool found;
    size_t at = proxy_pos(p, id, &found);
    if (found) {
        return p->proxies[at];
    }
    if (p->nproxies == CP_PUSH_MAX_PROXIES) {
        return NULL;
    }
    if (p->nproxies == p->cap_proxies) {
        p->cap_proxies = p->cap_proxies ? p->cap_proxies * 2 : 64;
        p->proxies = wf_realloc(p->proxies, p->cap_proxies * sizeof(*p->proxies));
    }
    proxy_t *px = wf_calloc(1, sizeof(*px));
    px->id = wf_strdup(id);
    memmove(&p->proxies[at + 1], &p->proxies[at], (p->nproxies - at) * sizeof(*p->proxies));
    p->proxies[at] = px;
    p->nproxies++;
    return px;
}

static void proxy_free(proxy_t *px)
{
    wf_free(px->id);
    wf_free(px->reason);
    wf_free(px);
}

/* Forget proxies gone for CP_PUSH_FORGET_MS that are not registered (bounded memory when ids
 * come and go). */
static void proxies_gc(cp_push_t *p, int64_t now_ms)
{
    size_t keep = 0;
    for (size_t i = 0; i < p->nproxies; i++) {
        proxy_t *px = p->proxies[i];
        bool gone = px->nwaiting == 0 && px->busy == 0 &&
                    now_ms - px->last_poll_ms > CP_PUSH_FORGET_MS &&
                    (p->cur == NULL || find_workload(p->cur->cfg, px->id) == NULL);
        if (gone) {
            proxy_free(px);
        } else {
            p->proxies[keep++] = px;
        }
    }
    p->nproxies = keep;
}

/* The version a poll must see exceeded before it gets a document: max(acked, refused). A
 * refusal without a version (the document did not parse) refuses what was last sent. */
static int64_t proxy_threshold(const proxy_t *px)
{
    int64_t t = px->acked;
    if (px->nacking) {
        int64_t refused = px->nack != 0 ? px->nack : px->sent;
        if (refused > t) {
            t = refused;
        }
    }
    return t;
}

/* ---- waiters ---- */

static void waiter_unlink(cp_push_t *p, cp_push_waiter_t *w)
{
    if (w->prev != NULL) {
        w->prev->next = w->next;
    } else {
        p->waiters = w->next;
    }
    if (w->next != NULL) {
        w->next->prev = w->prev;
    } else {
        p->waiters_tail = w->prev;
    }
    w->prev = w->next = NULL;
    w->proxy->nwaiting--;
    w->proxy = NULL;
    p->nwaiters--;
    if (w->for_budget) {
        w->for_budget = false;
        p->budget_waiting--;
    }
}

/* Park w at the tail (FIFO, so the budget's room goes to the oldest first). */
static void waiter_park(cp_push_t *p, cp_push_waiter_t *w, proxy_t *px, bool for_budget)
{
    w->timed_out = false;
    w->proxy = px;
    w->for_budget = for_budget;
    w->next = NULL;
    w->prev = p->waiters_tail;
    if (p->waiters_tail != NULL) {
        p->waiters_tail->next = w;
    } else {
        p->waiters = w;
    }
    p->waiters_tail = w;
    px->nwaiting++;
    p->nwaiters++;
    p->budget_waiting += for_budget;
    w->suspend(w->arg);
    if (p->thread_wake_ms != 0 && w->deadline_ms < p->thread_wake_ms) {
        pthread_cond_signal(&p->cond);
    }
}

/* Resume the waiters that can now get something: those whose proxy is behind the version
 * (those waiting for the budget already know, and keep their place). */
static void wake_locked(cp_push_t *p)
{
    cp_push_waiter_t *w = p->waiters, *next;
    for (; w != NULL; w = next) {
        next = w->next;
        if (!w->for_budget && p->cur->version > proxy_threshold(w->proxy)) {
            waiter_unlink(p, w);
            w->resume(w->arg);
        }
    }
}

/* ---- lifecycle ---- */

int cp_push_new(const cp_push_opts_t *o, cp_push_t **out)
{
    if (o->store == NULL || o->registry == NULL || o->compiler == NULL) {
        return WF_E_INVAL;
    }
    cp_push_t *p = wf_calloc(1, sizeof(*p));
    p->o = *o;
    p->budget = o->send_budget != 0 ? o->send_budget : CP_PUSH_DEFAULT_SEND_BUDGET;
    if (o->compile.collector_url != NULL) {
        p->collector_url = wf_strdup(o->compile.collector_url);
        p->o.compile.collector_url = p->collector_url;
    }
    if (o->compile.trust_bundle != NULL) {
        p->trust_bundle = wf_strdup(o->compile.trust_bundle);
        p->o.compile.trust_bundle = p->trust_bundle;
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->cond, &ca);
    pthread_condattr_destroy(&ca);
    *out = p;
    return 0;
}

void cp_push_close(cp_push_t *p)
{
    pthread_mutex_lock(&p->mu);
    p->closed = true;
    while (p->waiters != NULL) {
        cp_push_waiter_t *w = p->waiters;
        waiter_unlink(p, w);
        w->timed_out = true;
        w->resume(w->arg);
    }
    pthread_mutex_unlock(&p->mu);
}

void cp_push_free(cp_push_t *p)
{
    if (p == NULL) {
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->stopping = true;
    pthread_cond_signal(&p->cond);
    pthread_mutex_unlock(&p->mu);
    if (p->thread_running) {
        pthread_join(p->thread, NULL);
    }
    cp_push_close(p);
    if (p->cur != NULL) {
        gen_free(p, gen_unref_locked(p->cur));
    }
    for (size_t i = 0; i < p->nproxies; i++) {
        proxy_free(p->proxies[i]);
    }
    wf_free(p->proxies);
    pthread_cond_destroy(&p->cond);
    pthread_mutex_destroy(&p->mu);
    wf_free(p->collector_url);
    wf_free(p->trust_bundle);
    wf_free(p);
}

/* ---- building ---- */

int cp_push_build(cp_push_t *p, int64_t now_ms, int64_t wall_ms)
{
    cp_config_t *cfg = NULL;
    cp_compiled_t *compiled = NULL;
    int64_t t0 = wf_mono_ns();

    pthread_mutex_lock(&p->mu);
    int64_t change_ms = p->pending ? p->first_change_ms : 0;
    p->pending = false;
    /* The bundle may be replaced while this builds: compile from a copy. */
    cp_compile_opts_t co = p->o.compile;
    char *bundle = co.trust_bundle != NULL ? wf_strdup(co.trust_bundle) : NULL;
    co.trust_bundle = bundle;
    pthread_mutex_unlock(&p->mu);

    int rc = cp_config_load(p->o.store, p->o.registry, wall_ms, &cfg);
    if (rc == 0) {
        rc = p->o.compiler->compile_new(cfg, &co, &compiled);
    }
    wf_free(bundle);
    if (rc != 0) {
        WF_LOG(WF_ERROR, "control", "configuration build failed, the previous one serves",
               "err=\"%s\"", cp_strerror(rc));
        cp_config_free(cfg);
        pthread_mutex_lock(&p->mu);
        p->build_failures++;
        /* Try again later, keeping the original change time for the convergence figure. */
        if (!p->pending) {
            p->pending = true;
            p->first_change_ms = change_ms != 0 ? change_ms : now_ms;
        }
        p->retry_ms = now_ms + RETRY_MS;
        pthread_mutex_unlock(&p->mu);
        return rc;
    }
    /* The cross-resource checks of the new configuration, counted for /metrics (about 12 ms
     * for 1,000 services: cheap beside the build). */
    uint64_t findings[3] = {0};
    cp_finding_t *fs = NULL;
    size_t nf = 0;
    if (cp_analyze(cfg, &fs, &nf) == 0) {
        for (size_t i = 0; i < nf; i++) {
            findings[fs[i].level]++;
        }
    }
    cp_findings_free(fs, nf);
    gen_t *g = wf_calloc(1, sizeof(*g));
    g->refs = 1;
    g->cfg = cfg;
    g->compiled = compiled;
    g->change_ms = change_ms;

    pthread_mutex_lock(&p->mu);
    int64_t prev = p->cur != NULL ? p->cur->version : 0;
    int64_t v = prev + 1;
    if (wall_ms > v) {
        v = wall_ms;
    }
    if (p->max_seen + 1 > v) {
        v = p->max_seen + 1;
    }
    g->version = v;
    if (p->bundle_first_version == 0 &&
        co.trust_bundle_version == p->o.compile.trust_bundle_version) {
        p->bundle_first_version = v;
    }
    memcpy(p->findings, findings, sizeof(findings));
    gen_t *old = p->cur != NULL ? gen_unref_locked(p->cur) : NULL;
    p->cur = g;
    p->builds++;
    histo_observe(&p->build_time, (double)(wf_mono_ns() - t0) / 1e9);
    wake_locked(p);
    proxies_gc(p, now_ms);
    pthread_mutex_unlock(&p->mu);

    gen_free(p, old);
    WF_LOG(WF_DEBUG, "control", "configuration built", "version=%lld workloads=%zu", (long long)v,
           cfg->nworkloads);
    return 0;
}

/* When the pending rebuild is due (monotonic), under the lock; INT64_MAX when none. */
static int64_t due_locked(const cp_push_t *p)
{
    if (!p->pending) {
        return INT64_MAX;
    }
    int64_t quiet = p->last_change_ms + CP_PUSH_QUIET_MS;
    int64_t cap = p->first_change_ms + CP_PUSH_MAX_DELAY_MS;
    int64_t due = quiet < cap ? quiet : cap;
    return due > p->retry_ms ? due : p->retry_ms;
}

void cp_push_notify(cp_push_t *p, int64_t now_ms)
{
    pthread_mutex_lock(&p->mu);
    if (!p->pending) {
        p->pending = true;
        p->first_change_ms = now_ms;
    }
    if (now_ms > p->last_change_ms) {
        p->last_change_ms = now_ms;
    }
    pthread_cond_signal(&p->cond);
    pthread_mutex_unlock(&p->mu);
}

void cp_push_set_trust_bundle(cp_push_t *p, const char *pem, int64_t version, int64_t now_ms)
{
    pthread_mutex_lock(&p->mu);
    bool newer = p->o.compile.trust_bundle == NULL || version > p->o.compile.trust_bundle_version;
    if (newer) {
        wf_free(p->trust_bundle);
        p->trust_bundle = wf_strdup(pem);
        p->o.compile.trust_bundle = p->trust_bundle;
        p->o.compile.trust_bundle_version = version;
        p->bundle_first_version = 0;
    }
    pthread_mutex_unlock(&p->mu);
    if (newer) {
        cp_push_notify(p, now_ms);
    }
}

bool cp_push_bundle_propagated(cp_push_t *p, int64_t version, char *missing, size_t len)
{
    size_t used = 0, waiting = 0;
    if (len > 0) {
        missing[0] = '\0';
    }
    pthread_mutex_lock(&p->mu);
    int64_t first = p->bundle_first_version;
    bool known = version == p->o.compile.trust_bundle_version && first != 0 && p->cur != NULL;
    for (size_t i = 0; known && i < p->cur->cfg->nworkloads; i++) {
        const char *id = p->cur->cfg->workloads[i].id;
        bool found;
        size_t at = proxy_pos(p, id, &found);
        const proxy_t *px = found ? p->proxies[at] : NULL;
        if (px != NULL && (px->acked >= first || px->same_version >= first)) {
            continue;
        }
        waiting++;
        if (used < len) {
            int n = snprintf(missing + used, len - used, "%s%s", used ? "," : "", id);
            used += n > 0 ? (size_t)n : 0;
        }
    }
    pthread_mutex_unlock(&p->mu);
    return known && waiting == 0;
}

int cp_push_tick(cp_push_t *p, int64_t now_ms, int64_t wall_ms)
{
    pthread_mutex_lock(&p->mu);
    bool due = now_ms >= due_locked(p);
    pthread_mutex_unlock(&p->mu);
    if (!due) {
        return 0;
    }
    int rc = cp_push_build(p, now_ms, wall_ms);
    return rc < 0 ? rc : 1;
}

size_t cp_push_expire(cp_push_t *p, int64_t now_ms)
{
    size_t n = 0;
    pthread_mutex_lock(&p->mu);
    cp_push_waiter_t *w = p->waiters, *next;
    for (; w != NULL; w = next) {
        next = w->next;
        if (w->deadline_ms <= now_ms) {
            waiter_unlink(p, w);
            w->timed_out = true;
            w->resume(w->arg);
            n++;
        }
    }
    pthread_mutex_unlock(&p->mu);
    return n;
}

/* The next moment the thread has work: a due rebuild or the earliest deadline. */
static int64_t next_wake_locked(const cp_push_t *p, int64_t now_ms)
{
    int64_t t = now_ms + 1000;
    int64_t due = due_locked(p);
    if (due < t) {
        t = due;
    }
    for (const cp_push_waiter_t *w = p->waiters; w != NULL; w = w->next) {
        if (w->deadline_ms < t) {
            t = w->deadline_ms;
        }
    }
    return t;
}

static void *push_thread(void *arg)
{
    cp_push_t *p = arg;
    pthread_mutex_lock(&p->mu);
    while (!p->stopping) {
        int64_t now = mono_ms();
        int64_t wake = next_wake_locked(p, now);
        if (wake > now) {
            struct timespec ts = {.tv_sec = wake / 1000, .tv_nsec = (wake % 1000) * 1000000};
            p->thread_wake_ms = wake;
            pthread_cond_timedwait(&p->cond, &p->mu, &ts);
            p->thread_wake_ms = 0;
            continue;
        }
        pthread_mutex_unlock(&p->mu);
        cp_push_expire(p, now);
        cp_push_tick(p, now, wf_wall_ms());
        pthread_mutex_lock(&p->mu);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

int cp_push_start(cp_push_t *p)
{
    int rc = cp_push_build(p, mono_ms(), wf_wall_ms());
    if (rc < 0) {
        return rc;
    }
    if (pthread_create(&p->thread, NULL, push_thread, p) != 0) {
        return WF_E_INTERNAL;
    }
    p->thread_running = true;
    return 0;
}

/* ---- polls ---- */

/* Record what a poll says about the proxy: its acknowledgement and its refusal. */
static void record_poll_locked(cp_push_t *p, proxy_t *px, const cp_push_query_t *q, int64_t now_ms)
{
    px->last_poll_ms = now_ms;
    if (q->version != px->acked) {
        if (px->sent != 0 && q->version == px->sent) {
            px->have_hash = px->sent_hash;
            px->have_known = true;
            if (px->sent_change_ms != 0) {
                histo_observe(&p->convergence, (double)(now_ms - px->sent_change_ms) / 1e3);
            }
        } else {
            px->have_known = false;
        }
        px->acked = q->version;
    }
    bool nacking = q->nack > 0 || (q->reason != NULL && q->reason[0] != '\0');
    if (!nacking) {
        px->nacking = false;
        return;
    }
    /* The proxy's text goes into a log line and a JSON string: no control characters or
     * quotes that would forge a field. */
    char reason[REASON_MAX + 1];
    size_t n = 0;
    for (const char *c = q->reason != NULL ? q->reason : ""; *c != '\0' && n < REASON_MAX; c++) {
        bool bad = (unsigned char)*c < 0x20 || *c == 0x7f || *c == '"';
        reason[n++] = !bad ? *c : *c == '"' ? '\'' : ' ';
    }
    reason[n] = '\0';
    if (!px->nacking || px->nack != q->nack || strcmp(px->reason, reason) != 0) {
        p->nacks++;
        px->nack = q->nack;
        wf_free(px->reason);
        px->reason = wf_strdup(reason);
        int64_t refused = q->nack != 0 ? q->nack : px->sent;
        px->nack_known = refused != 0 && refused == px->sent;
        px->nack_hash = px->sent_hash;
        WF_LOG_RL(WF_WARN, 10, "control", "a proxy refused its snapshot",
                  "proxy=%s version=%lld err=\"%s\"", px->id, (long long)q->nack, px->reason);
    }
    px->nacking = true;
}

/* A proxy that reports a version at or above ours (a clock stepped back across a restart) gets
 * a rebuild with a version above it. */
static void note_reported_locked(cp_push_t *p, const cp_push_query_t *q, int64_t now_ms)
{
    int64_t cur = p->cur != NULL ? p->cur->version : 0;
    int64_t hi = q->version > q->nack ? q->version : q->nack;
    if (p->cur == NULL || hi <= cur || hi > cur + FUTURE_SLACK_MS || hi <= p->max_seen) {
        return;
    }
    p->max_seen = hi;
    if (!p->pending) {
        p->pending = true;
        p->first_change_ms = now_ms;
    }
    p->last_change_ms = now_ms;
    pthread_cond_signal(&p->cond);
}

/* Registry ids are DNS names with a version label value; anything printable up to 253 bytes
 * keeps hostile ids out of logs and JSON without second-guessing the registry's rules. */
static bool valid_id(const char *id)
{
    size_t n = 0;
    if (id == NULL) {
        return false;
    }
    for (; id[n] != '\0'; n++) {
        if (n == 253 || id[n] <= ' ' || id[n] > '~') {
            return false;
        }
    }
    return n > 0;
}

int cp_push_poll(cp_push_t *p, const cp_push_query_t *q, int64_t now_ms, cp_push_waiter_t *w,
                 char **json, size_t *len)
{
    if (!valid_id(q->proxy_id)) {
        return WF_E_INVAL;
    }
    pthread_mutex_lock(&p->mu);
    proxy_t *px = proxy_get(p, q->proxy_id);
    if (px == NULL) {
        pthread_mutex_unlock(&p->mu);
        return WF_E_LIMIT;
    }
    record_poll_locked(p, px, q, now_ms);
    note_reported_locked(p, q, now_ms);
    for (;;) {
        gen_t *g = p->cur;
        if (p->closed) {
            pthread_mutex_unlock(&p->mu);
            return CP_PUSH_CLOSED;
        }
        if (g == NULL || g->version <= proxy_threshold(px) || px->same_version == g->version ||
            px->refused_version == g->version || px->absent_version == g->version) {
            if (w != NULL) {
                waiter_park(p, w, px, false);
            }
            break;
        }
        /* No room for one more document on its way out: wait for some to be sent. (A poll
         * that cannot wait is served anyway: it is the caller's own memory.) */
        if (w != NULL && p->inflight >= p->budget) {
            waiter_park(p, w, px, true);
            break;
        }
        /* Compile outside the lock: the generation and the proxy are pinned meanwhile (the
         * generation may be the last reference when this poll is done with it). */
        int64_t version = g->version, change_ms = g->change_ms;
        g->refs++;
        px->busy++;
        pthread_mutex_unlock(&p->mu);
        char *doc = NULL;
        size_t doc_len = 0;
        uint64_t hash = 0;
        WF_ASSERT(!q->gzip || p->o.compiler->compile_proxy_gz != NULL);
        int rc = (q->gzip ? p->o.compiler->compile_proxy_gz : p->o.compiler->compile_proxy)(
            g->compiled, px->id, version, &doc, &doc_len, &hash);
        pthread_mutex_lock(&p->mu);
        gen_t *drop = gen_unref_locked(g);
        if (drop != NULL) {
            pthread_mutex_unlock(&p->mu);
            gen_free(p, drop);
            pthread_mutex_lock(&p->mu);
        }
        px->busy--;
        if (rc == WF_E_NOTFOUND || rc == -EAGAIN) {
            /* Not registered (yet), or a gateway with no server to serve: nothing to send until
             * the configuration changes, which brings a new version. */
            px->absent_version = version;
            continue;
        }
        if (rc < 0) {
            pthread_mutex_unlock(&p->mu);
            WF_LOG(WF_ERROR, "control", "snapshot compilation failed", "proxy=%s err=\"%s\"",
                   q->proxy_id, cp_strerror(rc));
            return rc;
        }
        if (px->have_known && hash == px->have_hash) {
            px->same_version = version;
            wf_free(doc);
            continue;
        }
        if (px->nacking && px->nack_known && hash == px->nack_hash) {
            px->refused_version = version;
            wf_free(doc);
            continue;
        }
        px->sent = version;
        px->sent_hash = hash;
        px->sent_change_ms = change_ms;
        p->pushes++;
        p->inflight += doc_len;
        p->last_doc_len = doc_len;
        pthread_mutex_unlock(&p->mu);
        *json = doc;
        *len = doc_len;
        return CP_PUSH_DOC;
    }
    pthread_mutex_unlock(&p->mu);
    return CP_PUSH_WAIT;
}

void cp_push_sent(cp_push_t *p, size_t len)
{
    pthread_mutex_lock(&p->mu);
    WF_ASSERT(p->inflight >= len);
    p->inflight -= len;
    /* Wake as many of the oldest budget waiters as the room fits documents like the last. */
    size_t room = p->inflight < p->budget ? p->budget - p->inflight : 0;
    size_t n = p->last_doc_len > 0 ? room / p->last_doc_len + 1 : p->budget_waiting;
    cp_push_waiter_t *w = p->waiters, *next;
    for (; w != NULL && n > 0 && p->budget_waiting > 0 && room > 0; w = next) {
        next = w->next;
        if (w->for_budget) {
            waiter_unlink(p, w);
            w->resume(w->arg);
            n--;
        }
    }
    pthread_mutex_unlock(&p->mu);
}

/* ---- status ---- */

int64_t cp_push_version(cp_push_t *p)
{
    pthread_mutex_lock(&p->mu);
    int64_t v = p->cur != NULL ? p->cur->version : 0;
    pthread_mutex_unlock(&p->mu);
    return v;
}

enum { ST_SYNCED, ST_STALE, ST_NACK, ST_NOT_REGISTERED, ST_COUNT };
static const char *const state_names[ST_COUNT] = {"SYNCED", "STALE", "NACK", "NOT_REGISTERED"};
static const char *const state_labels[ST_COUNT] = {"synced", "stale", "nack", "not_registered"};

static int proxy_state_locked(const cp_push_t *p, const proxy_t *px, const cp_workload_t **wl)
{
    *wl = p->cur != NULL ? find_workload(p->cur->cfg, px->id) : NULL;
    if (*wl == NULL) {
        return ST_NOT_REGISTERED;
    }
    int64_t v = p->cur->version;
    if (px->acked >= v || px->same_version >= v) {
        return ST_SYNCED;
    }
    return px->nacking ? ST_NACK : ST_STALE;
}

json_t *cp_push_status(cp_push_t *p, int64_t now_ms)
{
    json_t *list = json_array();
    pthread_mutex_lock(&p->mu);
    for (size_t i = 0; i < p->nproxies; i++) {
        const proxy_t *px = p->proxies[i];
        const cp_workload_t *wl = NULL;
        int st = proxy_state_locked(p, px, &wl);
        json_t *o = json_pack("{s:s, s:s, s:s, s:I, s:I, s:s, s:I, s:b}", "id", px->id, "namespace",
                              wl != NULL ? wl->ns : "", "service", wl != NULL ? wl->service : "",
                              "version", (json_int_t)px->acked, "sent", (json_int_t)px->sent,
                              "state", state_names[st], "lastPollMs",
                              (json_int_t)(now_ms - px->last_poll_ms), "waiting", px->nwaiting > 0);
        /* The reason is the proxy's text: kept only when it is valid UTF-8. */
        json_t *reason = px->nacking && px->reason != NULL ? json_string(px->reason) : NULL;
        json_object_set_new(o, "reason", reason != NULL ? reason : json_string(""));
        json_array_append_new(list, o);
    }
    json_int_t v = p->cur != NULL ? p->cur->version : 0;
    pthread_mutex_unlock(&p->mu);
    return json_pack("{s:I, s:o}", "version", v, "proxies", list);
}

void cp_push_metrics(cp_push_t *p, int64_t now_ms, FILE *f)
{
    (void)now_ms;
    uint64_t states[ST_COUNT] = {0};
    pthread_mutex_lock(&p->mu);
    for (size_t i = 0; i < p->nproxies; i++) {
        const cp_workload_t *wl;
        states[proxy_state_locked(p, p->proxies[i], &wl)]++;
    }
    histo_t conv = p->convergence, bt = p->build_time;
    uint64_t findings[3];
    memcpy(findings, p->findings, sizeof(findings));
    uint64_t skipped = p->cur != NULL && p->o.compiler->compile_skipped != NULL
                           ? p->o.compiler->compile_skipped(p->cur->compiled)
                           : 0;
    fprintf(f,
            "# HELP weft_control_config_version The configuration version proxies are sent.\n"
            "# TYPE weft_control_config_version gauge\n"
            "weft_control_config_version %lld\n"
            "# HELP weft_control_config_builds_total Configurations built (each a version).\n"
            "# TYPE weft_control_config_builds_total counter\n"
            "weft_control_config_builds_total %llu\n"
            "# HELP weft_control_config_build_failures_total Builds that failed (the previous "
            "configuration kept serving).\n"
            "# TYPE weft_control_config_build_failures_total counter\n"
            "weft_control_config_build_failures_total %llu\n"
            "# HELP weft_control_pushes_total Snapshot documents sent to proxies.\n"
            "# TYPE weft_control_pushes_total counter\n"
            "weft_control_pushes_total %llu\n"
            "# HELP weft_control_push_nacks_total Snapshots proxies refused.\n"
            "# TYPE weft_control_push_nacks_total counter\n"
            "weft_control_push_nacks_total %llu\n"
            "# HELP weft_control_push_inflight_bytes Bytes of documents on their way out.\n"
            "# TYPE weft_control_push_inflight_bytes gauge\n"
            "weft_control_push_inflight_bytes %zu\n"
            "# HELP weft_control_proxies_connected Proxies with a poll waiting now.\n"
            "# TYPE weft_control_proxies_connected gauge\n"
            "weft_control_proxies_connected %zu\n"
            "# HELP weft_control_proxies Proxies known to the push engine, by state.\n"
            "# TYPE weft_control_proxies gauge\n",
            (long long)(p->cur != NULL ? p->cur->version : 0), (unsigned long long)p->builds,
            (unsigned long long)p->build_failures, (unsigned long long)p->pushes,
            (unsigned long long)p->nacks, p->inflight, p->nwaiters);
    pthread_mutex_unlock(&p->mu);
    for (int s = 0; s < ST_COUNT; s++) {
        fprintf(f, "weft_control_proxies{state=\"%s\"} %llu\n", state_labels[s],
                (unsigned long long)states[s]);
    }
    fprintf(f,
            "# HELP weft_control_config_skipped Parts of the configuration being pushed that the "
            "snapshot schema cannot express (left out, logged once each; docs/controlplane.md "
            "\"Snapshot compiler\").\n# TYPE weft_control_config_skipped gauge\n"
            "weft_control_config_skipped %llu\n",
            (unsigned long long)skipped);
    fprintf(f, "# HELP weft_control_validation_messages Cross-resource findings (GET "
               "/v1/analyze) of the configuration proxies are sent, by level.\n"
               "# TYPE weft_control_validation_messages gauge\n");
    for (int l = CP_LEVEL_ERROR; l <= CP_LEVEL_INFO; l++) {
        fprintf(f, "weft_control_validation_messages{level=\"%s\"} %llu\n",
                cp_level_name((cp_level_t)l), (unsigned long long)findings[l]);
    }
    histo_print(&conv, f, "weft_control_push_convergence_seconds",
                "From the change that produced a version to a proxy's acknowledgement of it.");
    histo_print(&bt, f, "weft_control_config_build_duration_seconds",
                "Time to load and compile one configuration.");
}
