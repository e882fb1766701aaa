/*
 * col_scrape.c - the scrape manager (see col_scrape.h).
 *
 * Two threads. The scrape thread owns discovery and scheduling: it stats the file_sd file,
 * fetches http_sd URLs and runs every scrape as a transfer on one curl multi handle; a
 * finished transfer becomes a job on the submit queue. The submit thread owns each target's
 * series cache: it parses the body, builds the samples with the target's labels, works out
 * staleness, submits one col_write_t and waits for it. Jobs of one target are queued in order
 * and a target is not scraped again before its previous job is done, so one target's cache is
 * never used by two scrapes at once.
 *
 * A target leaves discovery: it stops being scraped at once; two intervals later (Prometheus's
 * end-of-run staleness) a final job writes staleness markers for its series and frees it,
 * unless discovery brought it back meanwhile. Targets are freed by the submit thread after
 * their last job (or by col_scrape_free once both threads have stopped); the targets list
 * that HTTP readers see is guarded by the mutex.
 */
#include "col_scrape.h"

#include "col_api.h"
#include "col_expfmt.h"
#include "pql_ast.h"
#include "wf_alloc.h"
#include "wf_clock.h"
#include "wf_err.h"
#include "wf_log.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SCRAPE_ACCEPT                                                                              \
    "Accept: application/openmetrics-text;version=1.0.0,application/openmetrics-text;"             \
    "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"

#define STALE_NAN_BITS 0x7ff0000000000002ULL

static double stale_nan(void)
{
    uint64_t bits = STALE_NAN_BITS;
    double v;
    memcpy(&v, &bits, sizeof(v));
    return v;
}

void col_scrape_options_default(col_scrape_options_t *o)
{
    memset(o, 0, sizeof(*o));
    o->interval_ms = 15000;
    o->timeout_ms = 10000;
    o->sd_refresh_ms = 30000;
    o->file_check_ms = 1000;
    o->job = "weft";
    o->body_limit = (size_t)64 << 20;
}

/* ---- Labels ------------------------------------------------------------------------------- */

/* An owned, name-sorted label set in one allocation. */
typedef struct {
    st_label_t *l;
    size_t n;
} lset_t;

static int label_cmp(const void *a, const void *b)
{
    return wf_str_cmp(((const st_label_t *)a)->name, ((const st_label_t *)b)->name);
}

/* Copy l[0..n) into one block, sorted, dropping empty values (they mean "unset"). */
static lset_t lset_dup(const st_label_t *l, size_t n)
{
    size_t bytes = n * sizeof(st_label_t);
    for (size_t i = 0; i < n; i++) {
        bytes += l[i].name.len + l[i].value.len;
    }
    lset_t r = {wf_malloc(bytes ? bytes : 1), 0};
    char *p = (char *)(r.l + n);
    for (size_t i = 0; i < n; i++) {
        if (l[i].value.len == 0) {
            continue;
        }
        memcpy(p, l[i].name.p, l[i].name.len);
        r.l[r.n].name = (wf_str_t){p, l[i].name.len};
        p += l[i].name.len;
        memcpy(p, l[i].value.p, l[i].value.len);
        r.l[r.n].value = (wf_str_t){p, l[i].value.len};
        p += l[i].value.len;
        r.n++;
    }
    qsort(r.l, r.n, sizeof(st_label_t), label_cmp);
    return r;
}

static const st_label_t *lset_get(const st_label_t *l, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++) {
        if (wf_str_eq_c(l[i].name, name)) {
            return &l[i];
        }
    }
    return NULL;
}

static bool lset_has(const st_label_t *l, size_t n, wf_str_t name)
{
    for (size_t i = 0; i < n; i++) {
        if (wf_str_eq(l[i].name, name)) {
            return true;
        }
    }
    return false;
}

static uint64_t lset_hash(const st_label_t *l, size_t n, uint64_t h)
{
    for (size_t i = 0; i < n; i++) {
        h = wf_hash64(l[i].name.p, l[i].name.len, h);
        h = wf_hash64(l[i].value.p, l[i].value.len, h ^ 0xff);
    }
    return h;
}

/* ---- Targets and their series caches ------------------------------------------------------ */

typedef struct cache_ent {
    struct cache_ent *next;
    uint64_t hash;
    char *key; /* the series as scraped: name \0 (label \0 value \0)* */
    size_t keylen;
    lset_t labels; /* the labels written (target labels applied), with __name__ */
    st_ref_t ref;  /* 0 until a committed write gave one */
    uint64_t seen; /* the last scrape (generation) it appeared in */
    bool track;    /* no explicit timestamp: staleness applies */
} cache_ent_t;

typedef struct {
    cache_ent_t **b;
    size_t nb, n;
} cache_t;

enum { HEALTH_UNKNOWN = 0, HEALTH_UP = 1, HEALTH_DOWN = 2 };

typedef struct target {
    struct target *next; /* in the active list (scrape thread; readers under mu) */
    uint64_t key;
    char *url;
    char *global_url; /* url with a loopback host replaced by this host's name (Prometheus) */
    char *pool;
    lset_t labels; /* job, instance and the other target labels */
    lset_t disc;   /* discovered labels */
    int64_t interval_ms, timeout_ms;

    /* scrape thread */
    int64_t next_mono_ms;
    int64_t stale_due_mono_ms; /* when removed: when its final job is due */
    CURL *easy;
    struct curl_slist *hdrs;
    wf_buf_t body;
    bool too_big;
    bool in_transfer;
    int64_t start_wall_ms;
    int64_t start_mono_ns;
    atomic_bool busy; /* a transfer or its job is under way */

    /* submit thread */
    cache_t cache;
    uint64_t gen;
    uint64_t meta_hash; /* of the metadata last written, so unchanged metadata is not rewritten */
    int64_t last_ts;    /* timestamp of the last scrape written, 0 before the first */

    /* status, under the manager's mu */
    int health;
    char last_error[320];
    int64_t last_scrape_wall_ns;
    double last_duration_s;
} target_t;

static void cache_free(cache_t *c)
{
    for (size_t i = 0; i < c->nb; i++) {
        cache_ent_t *e = c->b[i];
        while (e) {
            cache_ent_t *nx = e->next;
            wf_free(e->key);
            wf_free(e->labels.l);
            wf_free(e);
            e = nx;
        }
    }
    wf_free(c->b);
    memset(c, 0, sizeof(*c));
}

static cache_ent_t *cache_find(cache_t *c, uint64_t h, const char *key, size_t keylen)
{
    if (c->nb == 0) {
        return NULL;
    }
    for (cache_ent_t *e = c->b[h & (c->nb - 1)]; e; e = e->next) {
        if (e->hash == h && e->keylen == keylen && memcmp(e->key, key, keylen) == 0) {
            return e;
        }
    }
    return NULL;
}

static void cache_insert(cache_t *c, cache_ent_t *e)
{
    if (c->n + 1 > c->nb) {
        size_t nb = c->nb ? c->nb * 2 : 64;
        cache_ent_t **b = wf_calloc(nb, sizeof(*b));
        for (size_t i = 0; i < c->nb; i++) {
            cache_ent_t *x = c->b[i];
            while (x) {
                cache_ent_t *nx = x->next;
                x->next = b[x->hash & (nb - 1)];
                b[x->hash & (nb - 1)] = x;
                x = nx;
            }
        }
        wf_free(c->b);
        c->b = b;
        c->nb = nb;
    }
    e->next = c->b[e->hash & (c->nb - 1)];
    c->b[e->hash & (c->nb - 1)] = e;
    c->n++;
}

static void target_free(target_t *t)
{
    if (t == NULL) {
        return;
    }
    if (t->easy) {
        void *x = NULL;
        curl_easy_getinfo(t->easy, CURLINFO_PRIVATE, (char **)&x);
        wf_free(x);
        curl_easy_cleanup(t->easy);
    }
    curl_slist_free_all(t->hdrs);
    wf_buf_free(&t->body);
    cache_free(&t->cache);
    wf_free(t->url);
    wf_free(t->global_url);
    wf_free(t->pool);
    wf_free(t->labels.l);
    wf_free(t->disc.l);
    wf_free(t);
}

/* ---- The manager -------------------------------------------------------------------------- */

enum { JOB_RESULT, JOB_FINAL };

typedef struct job {
    struct job *next;
    int kind;
    target_t *t;
    bool ok;         /* the transfer succeeded with status 200 */
    char err[256];   /* when not ok */
    wf_buf_t body;   /* taken from the target */
    char ctype[128]; /* Content-Type of the answer */
    int64_t ts;      /* scrape start (ms), or the staleness time of a final job */
    double duration_s;
} job_t;

typedef struct {
    char *url;
    int64_t next_mono_ms;
    CURL *easy;
    wf_buf_t body;
    bool in_flight;
    json_t *groups; /* the last good answer (owned) */
} sd_http_t;

struct col_scrape {
    col_scrape_options_t o;
    col_writer_t *writer;
    char *sd_file;
    char *job;

    /* scrape thread */
    pthread_t scrape_th;
    CURLM *multi;
    atomic_bool stop;
    json_t *file_groups;
    struct stat file_st;
    int64_t file_next_check_ms;
    sd_http_t *sd;
    size_t nsd;
    struct curl_slist *sd_hdrs; /* the http_sd requests' Authorization, or NULL */
    target_t *dying;            /* removed targets waiting for their final job */
    bool sd_dirty;

    /* submit thread */
    pthread_t submit_th;
    pthread_mutex_t qmu;
    pthread_cond_t qcv;
    job_t *qhead, *qtail;
    bool qstop;

    /* shared, under mu */
    pthread_mutex_t mu;
    target_t *active;
    size_t nactive;
    col_scrape_stats_t stats;
};

static int64_t mono_ms(void)
{
    return wf_mono_ns() / 1000000;
}

static void enqueue(col_scrape_t *s, job_t *j)
{
    pthread_mutex_lock(&s->qmu);
    j->next = NULL;
    if (s->qtail) {
        s->qtail->next = j;
    } else {
        s->qhead = j;
    }
    s->qtail = j;
    pthread_cond_signal(&s->qcv);
    pthread_mutex_unlock(&s->qmu);
}

/* A duration as Prometheus prints it, into a fixed buffer. */
static void fmt_duration(char *out, size_t len, int64_t ms)
{
    wf_buf_t b = WF_BUF_INIT;
    pql_format_duration(&b, ms);
    snprintf(out, len, "%.*s", (int)b.len, (const char *)b.data);
    wf_buf_free(&b);
}

/* ---- Discovery: groups to targets --------------------------------------------------------- */

/*
 * Prometheus's globalUrl: a target on a loopback address is shown with this machine's host
 * name instead, since "localhost" means nothing to whoever reads the API elsewhere. hostport
 * starts at url + at.
 */
static char *global_url(const char *url, size_t at, const char *hostport)
{
    static const char *const loop[] = {"127.0.0.1:", "localhost:", "[::1]:"};
    char host[256];
    for (size_t i = 0; i < sizeof(loop) / sizeof(loop[0]); i++) {
        size_t n = strlen(loop[i]);
        if (strncmp(hostport, loop[i], n) == 0 && gethostname(host, sizeof(host)) == 0) {
            host[sizeof(host) - 1] = '\0';
            wf_buf_t b = WF_BUF_INIT;
            wf_buf_append(&b, url, at);
            wf_buf_puts(&b, host);
            wf_buf_puts(&b, url + at + n - 1);
            char *r = wf_strdup(wf_buf_cstr(&b));
            wf_buf_free(&b);
            return r;
        }
    }
    return wf_strdup(url);
}

/* Build a target from one address of one group; NULL (with a log line) when it is unusable. */
static target_t *target_build(col_scrape_t *s, const char *addr, json_t *labels, const char *sd_url)
{
    enum { MAXL = 128 };
    st_label_t l[MAXL];
    size_t n = 0;
    char ivs[32], tos[32];
    wf_buf_t url = WF_BUF_INIT;
    target_t *t = NULL;

    if (json_is_object(labels)) {
        const char *k;
        json_t *v;
        json_object_foreach(labels, k, v)
        {
            if (!json_is_string(v) || n == MAXL - 8) {
                continue;
            }
            l[n++] = (st_label_t){wf_str(k), wf_str(json_string_value(v))};
        }
    }
    l[n++] = (st_label_t){WF_STR_LIT("__address__"), wf_str(addr)};
    if (sd_url && !lset_get(l, n, "__meta_url")) {
        l[n++] = (st_label_t){WF_STR_LIT("__meta_url"), wf_str(sd_url)};
    }
    /* Defaults of the scrape config apply where the group has no such label. */
    fmt_duration(ivs, sizeof(ivs), s->o.interval_ms);
    fmt_duration(tos, sizeof(tos), s->o.timeout_ms);
    const st_label_t defs[] = {
        {WF_STR_LIT("job"), wf_str(s->job)},
        {WF_STR_LIT("__scheme__"), WF_STR_LIT("http")},
        {WF_STR_LIT("__metrics_path__"), WF_STR_LIT("/metrics")},
        {WF_STR_LIT("__scrape_interval__"), wf_str(ivs)},
        {WF_STR_LIT("__scrape_timeout__"), wf_str(tos)},
    };
    for (size_t i = 0; i < sizeof(defs) / sizeof(defs[0]); i++) {
        const st_label_t *have = NULL;
        for (size_t k = 0; k < n && have == NULL; k++) {
            have = wf_str_eq(l[k].name, defs[i].name) ? &l[k] : NULL;
        }
        if (have == NULL || have->value.len == 0) {
            l[n++] = defs[i];
        }
    }
    t = wf_calloc(1, sizeof(*t));
    t->disc = lset_dup(l, n);

    int64_t iv = s->o.interval_ms, to = s->o.timeout_ms;
    const st_label_t *x = lset_get(t->disc.l, t->disc.n, "__scrape_interval__");
    char tmp[64];
    if (x && x->value.len < sizeof(tmp)) {
        memcpy(tmp, x->value.p, x->value.len);
        tmp[x->value.len] = '\0';
        if (col_parse_duration(tmp, &iv) != 0 || iv <= 0) {
            WF_LOG(WF_WARN, "scrape", "invalid __scrape_interval__", "target=%s value=%s", addr,
                   tmp);
            goto fail;
        }
    }
    x = lset_get(t->disc.l, t->disc.n, "__scrape_timeout__");
    if (x && x->value.len < sizeof(tmp)) {
        memcpy(tmp, x->value.p, x->value.len);
        tmp[x->value.len] = '\0';
        if (col_parse_duration(tmp, &to) != 0 || to <= 0) {
            WF_LOG(WF_WARN, "scrape", "invalid __scrape_timeout__", "target=%s value=%s", addr,
                   tmp);
            goto fail;
        }
    }
    if (to > iv) {
        WF_LOG(WF_WARN, "scrape", "scrape timeout greater than scrape interval", "target=%s", addr);
        goto fail;
    }
    t->interval_ms = iv;
    t->timeout_ms = to;

    const st_label_t *scheme = lset_get(t->disc.l, t->disc.n, "__scheme__");
    const st_label_t *path = lset_get(t->disc.l, t->disc.n, "__metrics_path__");
    /* Prometheus 2.42 gives an address without a port the scheme's default one (in the scrape
     * URL and in instance; the discovered __address__ stays as it was). */
    char hostport[300];
    const char *rb = strrchr(addr, ']');
    bool has_port = strchr(rb ? rb : addr, ':') != NULL;
    if (!has_port) {
        snprintf(hostport, sizeof(hostport), "%s:%s", addr,
                 wf_str_eq_c(scheme->value, "https") ? "443" : "80");
    } else {
        snprintf(hostport, sizeof(hostport), "%s", addr);
    }
    wf_buf_append(&url, scheme->value.p, scheme->value.len);
    wf_buf_puts(&url, "://");
    wf_buf_puts(&url, hostport);
    if (path->value.len == 0 || path->value.p[0] != '/') {
        wf_buf_putc(&url, '/');
    }
    wf_buf_append(&url, path->value.p, path->value.len);
    char sep = memchr(path->value.p, '?', path->value.len) ? '&' : '?';
    for (size_t i = 0; i < t->disc.n; i++) {
        wf_str_t nm = t->disc.l[i].name;
        if (nm.len > 8 && memcmp(nm.p, "__param_", 8) == 0) {
            char *k = curl_easy_escape(NULL, nm.p + 8, (int)(nm.len - 8));
            char *v = curl_easy_escape(NULL, t->disc.l[i].value.p, (int)t->disc.l[i].value.len);
            wf_buf_printf(&url, "%c%s=%s", sep, k, v);
            curl_free(k);
            curl_free(v);
            sep = '&';
        }
    }
    t->url = wf_strdup(wf_buf_cstr(&url));
    t->global_url = global_url(t->url, scheme->value.len + 3, hostport);

    /* The target's labels: those without the __ prefix, instance defaulting to the address. */
    n = 0;
    for (size_t i = 0; i < t->disc.n && n < MAXL - 1; i++) {
        wf_str_t nm = t->disc.l[i].name;
        if (nm.len >= 2 && nm.p[0] == '_' && nm.p[1] == '_') {
            continue;
        }
        l[n++] = t->disc.l[i];
    }
    if (!lset_has(l, n, WF_STR_LIT("instance"))) {
        l[n++] = (st_label_t){WF_STR_LIT("instance"), wf_str(hostport)};
    }
    t->labels = lset_dup(l, n);
    t->pool = wf_strdup(s->job);
    t->key = wf_hash64(t->url, strlen(t->url), lset_hash(t->labels.l, t->labels.n, (uint64_t)iv));
    t->health = HEALTH_UNKNOWN;
    wf_buf_free(&url);
    return t;
fail:
    wf_buf_free(&url);
    target_free(t);
    return NULL;
}

/* Check a file_sd / http_sd document: an array of {"targets": [strings], "labels": {strings}}. */
static bool groups_valid(json_t *doc, char *err, size_t errlen)
{
    if (!json_is_array(doc)) {
        snprintf(err, errlen, "expected a JSON array of target groups");
        return false;
    }
    size_t i;
    json_t *g;
    json_array_foreach(doc, i, g)
    {
        json_t *ts = json_object_get(g, "targets");
        json_t *ls = json_object_get(g, "labels");
        if (!json_is_object(g) || !json_is_array(ts) || (ls && !json_is_object(ls))) {
            snprintf(err, errlen, "group %zu: expected {\"targets\": [...], \"labels\": {...}}", i);
            return false;
        }
        size_t j;
        json_t *a;
        json_array_foreach(ts, j, a)
        {
            if (!json_is_string(a) || json_string_length(a) == 0) {
                snprintf(err, errlen, "group %zu: target %zu is not a non-empty string", i, j);
                return false;
            }
        }
        const char *k;
        json_t *v;
        json_object_foreach(ls, k, v)
        {
            if (!json_is_string(v) || !col_expfmt_valid_label_name(wf_str(k))) {
                snprintf(err, errlen, "group %zu: invalid label %s", i, k);
                return false;
            }
        }
    }
    return true;
}

static void add_groups(col_scrape_t *s, json_t *doc, const char *sd_url, target_t **list)
{
    size_t i;
    json_t *g;
    json_array_foreach(doc, i, g)
    {
        size_t j;
        json_t *a;
        json_array_foreach(json_object_get(g, "targets"), j, a)
        {
            target_t *t =
                target_build(s, json_string_value(a), json_object_get(g, "labels"), sd_url);
            if (t == NULL) {
                continue;
            }
            bool dup = false;
            for (target_t *x = *list; x && !dup; x = x->next) {
                dup = x->key == t->key;
            }
            if (dup) {
                target_free(t);
                continue;
            }
            t->next = *list;
            *list = t;
        }
    }
}

/* Abandon a running transfer of t (scrape thread). */
static void transfer_abort(col_scrape_t *s, target_t *t)
{
    if (t->in_transfer) {
        curl_multi_remove_handle(s->multi, t->easy);
        t->in_transfer = false;
        wf_buf_reset(&t->body);
        atomic_store(&t->busy, false);
    }
}

/*
 * Replace the active targets with what discovery says now: targets that stay keep their state
 * (and cache); new ones start; removed ones go to the dying list (scrape thread).
 */
static void targets_sync(col_scrape_t *s)
{
    target_t *fresh = NULL;
    if (s->file_groups) {
        add_groups(s, s->file_groups, NULL, &fresh);
    }
    for (size_t i = 0; i < s->nsd; i++) {
        if (s->sd[i].groups) {
            add_groups(s, s->sd[i].groups, s->sd[i].url, &fresh);
        }
    }
    int64_t now = mono_ms();
    target_t *next_active = NULL;
    size_t n = 0;
    /* HTTP readers walk the active list under mu: relink it only while holding it. */
    pthread_mutex_lock(&s->mu);
    while (fresh) {
        target_t *t = fresh;
        fresh = t->next;
        target_t **pp = NULL, *old = NULL;
        for (pp = &s->active; *pp; pp = &(*pp)->next) {
            if ((*pp)->key == t->key) {
                break;
            }
        }
        if (*pp == NULL) {
            /* A target that left recently and came back keeps its series. */
            for (pp = &s->dying; *pp; pp = &(*pp)->next) {
                if ((*pp)->key == t->key) {
                    break;
                }
            }
        }
        if (*pp != NULL) {
            old = *pp;
            *pp = old->next;
            target_free(t);
            t = old;
        } else {
            /* Spread first scrapes over the interval, as Prometheus's offsets do. */
            t->next_mono_ms = now + (int64_t)(t->key % (uint64_t)t->interval_ms);
        }
        t->next = next_active;
        next_active = t;
        n++;
    }
    target_t *gone = s->active;
    s->active = next_active;
    s->nactive = n;
    s->stats.targets = n;
    pthread_mutex_unlock(&s->mu);
    while (gone) {
        target_t *t = gone;
        gone = t->next;
        transfer_abort(s, t);
        t->stale_due_mono_ms = now + 2 * t->interval_ms + t->interval_ms / 10;
        t->next = s->dying;
        s->dying = t;
    }
}

/* Re-read the file_sd file when its stat changed; on a good read the groups are replaced and
 * a sync is due (sd_dirty). 0, or -errno / WF_E_INVAL (the old groups stay). */
static int file_sd_load(col_scrape_t *s, bool first)
{
    struct stat st;
    if (stat(s->sd_file, &st) != 0) {
        int rc = -errno;
        if (first) {
            WF_LOG(WF_ERROR, "scrape", "cannot read the scrape config", "file=%s err=\"%s\"",
                   s->sd_file, strerror(errno));
        }
        return rc;
    }
    if (!first && st.st_mtim.tv_sec == s->file_st.st_mtim.tv_sec &&
        st.st_mtim.tv_nsec == s->file_st.st_mtim.tv_nsec && st.st_size == s->file_st.st_size &&
        st.st_ino == s->file_st.st_ino) {
        return 0;
    }
    s->file_st = st;
    json_error_t jerr;
    json_t *doc = json_load_file(s->sd_file, 0, &jerr);
    char err[256];
    if (doc == NULL) {
        snprintf(err, sizeof(err), "line %d: %s", jerr.line, jerr.text);
    }
    if (doc == NULL || !groups_valid(doc, err, sizeof(err))) {
        WF_LOG(first ? WF_ERROR : WF_WARN, "scrape", "invalid file_sd file, keeping the targets",
               "file=%s err=\"%s\"", s->sd_file, err);
        json_decref(doc);
        pthread_mutex_lock(&s->mu);
        s->stats.sd_failures++;
        pthread_mutex_unlock(&s->mu);
        return WF_E_INVAL;
    }
    json_decref(s->file_groups);
    s->file_groups = doc;
    s->sd_dirty = true;
    pthread_mutex_lock(&s->mu);
    s->stats.sd_refreshes++;
    pthread_mutex_unlock(&s->mu);
    return 0;
}

/* ---- Transfers ---------------------------------------------------------------------------- */

/* Both kinds of transfer carry their owner in CURLOPT_PRIVATE (and as the write callback's
 * argument): a target, or an http_sd source. */
typedef struct {
    col_scrape_t *s;
    target_t *t;
    sd_http_t *sd;
} xfer_t;

/* The body sink of both kinds of transfer, within body_limit. */
static size_t target_write_cb(char *p, size_t size, size_t nmemb, void *arg)
{
    xfer_t *x = arg;
    size_t n = size * nmemb;
    wf_buf_t *b = x->t ? &x->t->body : &x->sd->body;
    size_t limit = x->s->o.body_limit;
    if (limit && b->len + n > limit) {
        if (x->t) {
            x->t->too_big = true;
        }
        return 0; /* makes curl fail the transfer with CURLE_WRITE_ERROR */
    }
    wf_buf_append(b, p, n);
    return n;
}

static CURL *easy_new(const char *url, int64_t timeout_ms)
{
    CURL *e = curl_easy_init();
    WF_ASSERT(e != NULL);
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "gzip");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(e, CURLOPT_MAXREDIRS, 10L);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "weft/" WEFT_VERSION);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, target_write_cb);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    return e;
}

static void scrape_start(col_scrape_t *s, target_t *t)
{
    if (t->easy == NULL) {
        xfer_t *x = wf_calloc(1, sizeof(*x));
        x->s = s;
        x->t = t;
        t->easy = easy_new(t->url, t->timeout_ms);
        char h[96];
        char secs[32];
        wf_buf_t f = WF_BUF_INIT;
        col_fmt_float(&f, (double)t->timeout_ms / 1000.0);
        snprintf(secs, sizeof(secs), "%s", wf_buf_cstr(&f));
        wf_buf_free(&f);
        snprintf(h, sizeof(h), "X-Prometheus-Scrape-Timeout-Seconds: %s", secs);
        t->hdrs = curl_slist_append(NULL, SCRAPE_ACCEPT);
        t->hdrs = curl_slist_append(t->hdrs, h);
        curl_easy_setopt(t->easy, CURLOPT_HTTPHEADER, t->hdrs);
        curl_easy_setopt(t->easy, CURLOPT_WRITEDATA, x);
        curl_easy_setopt(t->easy, CURLOPT_PRIVATE, x);
    }
    wf_buf_reset(&t->body);
    t->too_big = false;
    t->start_wall_ms = wf_wall_ms();
    t->start_mono_ns = wf_mono_ns();
    atomic_store(&t->busy, true);
    t->in_transfer = true;
    curl_multi_add_handle(s->multi, t->easy);
}

static void scrape_done(col_scrape_t *s, target_t *t, CURLcode cc)
{
    job_t *j = wf_calloc(1, sizeof(*j));
    j->kind = JOB_RESULT;
    j->t = t;
    j->ts = t->start_wall_ms;
    j->duration_s = (double)(wf_mono_ns() - t->start_mono_ns) / 1e9;
    long status = 0;
    curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
    if (t->too_big) {
        snprintf(j->err, sizeof(j->err), "body size limit exceeded");
    } else if (cc == CURLE_OPERATION_TIMEDOUT) {
        snprintf(j->err, sizeof(j->err), "Get \"%s\": context deadline exceeded", t->url);
    } else if (cc != CURLE_OK) {
        snprintf(j->err, sizeof(j->err), "Get \"%s\": %s", t->url, curl_easy_strerror(cc));
    } else if (status != 200) {
        snprintf(j->err, sizeof(j->err), "server returned HTTP status %ld", status);
    } else {
        j->ok = true;
        char *ct = NULL;
        curl_easy_getinfo(t->easy, CURLINFO_CONTENT_TYPE, &ct);
        snprintf(j->ctype, sizeof(j->ctype), "%s", ct ? ct : "");
        j->body = t->body;
        wf_buf_init(&t->body);
    }
    wf_buf_reset(&t->body);
    t->in_transfer = false;
    enqueue(s, j);
}

static void sd_start(col_scrape_t *s, sd_http_t *sd)
{
    if (sd->easy == NULL) {
        xfer_t *x = wf_calloc(1, sizeof(*x));
        x->s = s;
        x->sd = sd;
        sd->easy = easy_new(sd->url, 30000);
        if (s->sd_hdrs != NULL) {
            curl_easy_setopt(sd->easy, CURLOPT_HTTPHEADER, s->sd_hdrs);
        }
        curl_easy_setopt(sd->easy, CURLOPT_WRITEDATA, x);
        curl_easy_setopt(sd->easy, CURLOPT_PRIVATE, x);
    }
    wf_buf_reset(&sd->body);
    sd->in_flight = true;
    curl_multi_add_handle(s->multi, sd->easy);
}

static void sd_done(col_scrape_t *s, sd_http_t *sd, CURLcode cc)
{
    long status = 0;
    char err[256] = "";
    curl_easy_getinfo(sd->easy, CURLINFO_RESPONSE_CODE, &status);
    json_t *doc = NULL;
    if (cc != CURLE_OK) {
        snprintf(err, sizeof(err), "%s", curl_easy_strerror(cc));
    } else if (status != 200) {
        snprintf(err, sizeof(err), "server returned HTTP status %ld", status);
    } else {
        json_error_t jerr;
        doc = json_loadb((const char *)sd->body.data, sd->body.len, 0, &jerr);
        if (doc == NULL) {
            snprintf(err, sizeof(err), "%s", jerr.text);
        } else if (!groups_valid(doc, err, sizeof(err))) {
            json_decref(doc);
            doc = NULL;
        }
    }
    sd->in_flight = false;
    wf_buf_reset(&sd->body);
    pthread_mutex_lock(&s->mu);
    if (doc) {
        s->stats.sd_refreshes++;
    } else {
        s->stats.sd_failures++;
    }
    pthread_mutex_unlock(&s->mu);
    if (doc == NULL) {
        WF_LOG(WF_WARN, "scrape", "http_sd refresh failed, keeping the targets",
               "url=%s err=\"%s\"", sd->url, err);
        return;
    }
    if (sd->groups == NULL || !json_equal(sd->groups, doc)) {
        json_decref(sd->groups);
        sd->groups = doc;
        s->sd_dirty = true;
    } else {
        json_decref(doc);
    }
}

static void *scrape_main(void *arg)
{
    col_scrape_t *s = arg;
    while (!atomic_load(&s->stop)) {
        int64_t now = mono_ms();
        if (s->sd_file && now >= s->file_next_check_ms) {
            file_sd_load(s, false);
            s->file_next_check_ms = now + s->o.file_check_ms;
        }
        for (size_t i = 0; i < s->nsd; i++) {
            if (!s->sd[i].in_flight && now >= s->sd[i].next_mono_ms) {
                sd_start(s, &s->sd[i]);
                s->sd[i].next_mono_ms = now + s->o.sd_refresh_ms;
            }
        }
        if (s->sd_dirty) {
            s->sd_dirty = false;
            targets_sync(s);
        }
        int64_t wake = now + 1000;
        if (s->sd_file && s->file_next_check_ms < wake) {
            wake = s->file_next_check_ms;
        }
        for (target_t *t = s->active; t; t = t->next) {
            if (now >= t->next_mono_ms) {
                /* A scrape still running or being written skips this slot, as Prometheus's
                 * ticker does. */
                if (!atomic_load(&t->busy)) {
                    scrape_start(s, t);
                }
                t->next_mono_ms += t->interval_ms;
                if (t->next_mono_ms <= now) {
                    t->next_mono_ms =
                        now + t->interval_ms - (now - t->next_mono_ms) % t->interval_ms;
                }
            }
            if (t->next_mono_ms < wake) {
                wake = t->next_mono_ms;
            }
        }
        for (target_t **pp = &s->dying; *pp;) {
            target_t *t = *pp;
            if (now >= t->stale_due_mono_ms && !atomic_load(&t->busy)) {
                *pp = t->next;
                job_t *j = wf_calloc(1, sizeof(*j));
                j->kind = JOB_FINAL;
                j->t = t;
                enqueue(s, j);
                continue;
            }
            if (t->stale_due_mono_ms < wake) {
                wake = t->stale_due_mono_ms;
            }
            pp = &t->next;
        }
        for (size_t i = 0; i < s->nsd; i++) {
            if (!s->sd[i].in_flight && s->sd[i].next_mono_ms < wake) {
                wake = s->sd[i].next_mono_ms;
            }
        }

        int running = 0;
        curl_multi_perform(s->multi, &running);
        CURLMsg *m;
        int left;
        while ((m = curl_multi_info_read(s->multi, &left)) != NULL) {
            if (m->msg != CURLMSG_DONE) {
                continue;
            }
            CURL *e = m->easy_handle;
            CURLcode cc = m->data.result;
            xfer_t *x = NULL;
            curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&x);
            curl_multi_remove_handle(s->multi, e);
            if (x->t) {
                scrape_done(s, x->t, cc);
            } else {
                sd_done(s, x->sd, cc);
            }
        }
        int64_t wait = wake - mono_ms();
        if (s->sd_dirty) {
            wait = 0;
        }
        if (wait > 0) {
            curl_multi_poll(s->multi, NULL, 0, (int)(wait > 1000 ? 1000 : wait), NULL);
        }
    }
    return NULL;
}

/* ---- Submitting a scrape ------------------------------------------------------------------ */

/* One metric family's metadata as scraped; strings borrowed from the scrape's body/arena. */
typedef struct {
    wf_str_t name;
    st_metric_type_t type;
    wf_str_t help;
    wf_str_t unit;
} meta_t;

typedef struct {
    cache_ent_t *e;
    int64_t ts;
    double v;
    st_ref_t ref_out;
    bool new_series;
} samp_t;

typedef struct {
    col_scrape_t *s;
    target_t *t;
    samp_t *v;
    size_t n;
    cache_ent_t **stale;
    size_t nstale;
    int64_t ts;       /* the scrape's time */
    double report[5]; /* up, duration, scraped, post-relabel, series added (filled in fill) */
    meta_t *meta;     /* metadata to record (HELP/TYPE/UNIT of the families), or NULL */
    size_t nmeta;
    bool report_stale; /* final job: the report series get staleness markers */
    size_t series_added;
} fill_arg_t;

static const char *const report_names[5] = {
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
};

static bool fatal(int rc)
{
    return rc == ST_E_CLOSED || rc == ST_E_BATCH_LIMIT || rc == -EIO;
}

static int add_labels(col_write_t *w, st_batch_t *b, const lset_t *l, int64_t ts, double v,
                      st_ref_t *ref)
{
    int rc =
        ref ? st_batch_add_get_ref(b, l->l, l->n, ts, v, ref) : st_batch_add(b, l->l, l->n, ts, v);
    if (rc == 0) {
        w->accepted++;
    } else if (!fatal(rc)) {
        col_write_reject(w, rc, l->l, l->n);
    }
    return fatal(rc) ? rc : 0;
}

static int scrape_fill(col_write_t *w, st_batch_t *b)
{
    fill_arg_t *a = w->arg;
    int rc;
    a->series_added = 0;
    for (size_t i = 0; i < a->n; i++) {
        samp_t *s = &a->v[i];
        s->ref_out = 0;
        s->new_series = false;
        if (s->e->ref != 0) {
            rc = st_batch_add_ref(b, s->e->ref, s->ts, s->v);
            if (rc == 0) {
                s->ref_out = s->e->ref;
                w->accepted++;
                continue;
            }
            if (fatal(rc)) {
                return rc;
            }
            if (rc != ST_E_UNKNOWN_REF) {
                col_write_reject(w, rc, s->e->labels.l, s->e->labels.n);
                continue;
            }
        }
        size_t before = w->accepted;
        rc = add_labels(w, b, &s->e->labels, s->ts, s->v, &s->ref_out);
        if (rc < 0) {
            return rc;
        }
        if (w->accepted > before && s->e->ref == 0) {
            s->new_series = true;
            a->series_added++;
        }
    }
    for (size_t i = 0; i < a->nstale; i++) {
        cache_ent_t *e = a->stale[i];
        rc = e->ref ? st_batch_add_ref(b, e->ref, a->ts, stale_nan()) : ST_E_UNKNOWN_REF;
        if (rc == ST_E_UNKNOWN_REF) {
            rc = st_batch_add(b, e->labels.l, e->labels.n, a->ts, stale_nan());
        }
        if (fatal(rc)) {
            return rc;
        }
        /* A marker the store refuses (the series moved on) is not a scrape problem. */
        if (rc == 0) {
            w->accepted++;
        }
    }
    for (size_t i = 0; i < a->nmeta; i++) {
        const meta_t *m = &a->meta[i];
        rc = st_batch_set_metadata(b, m->name, m->type, m->help, m->unit);
        if (fatal(rc)) {
            return rc;
        }
    }
    if (!a->report_stale) {
        a->report[4] = (double)a->series_added;
    }
    target_t *t = a->t;
    st_label_t l[130];
    size_t n = 0;
    l[n++] = (st_label_t){WF_STR_LIT("__name__"), WF_STR_LIT("")};
    for (size_t i = 0; i < t->labels.n && n < 130; i++) {
        l[n++] = t->labels.l[i];
    }
    for (int k = 0; k < 5; k++) {
        l[0].value = wf_str(report_names[k]);
        double v = a->report_stale ? stale_nan() : a->report[k];
        rc = st_batch_add(b, l, n, a->ts, v);
        if (fatal(rc)) {
            return rc;
        }
        if (rc == 0) {
            w->accepted++;
        } else if (!a->report_stale) {
            col_write_reject(w, rc, l, n);
        }
    }
    return 0;
}

/*
 * The labels a scraped series is written with: its own, plus the target's, with Prometheus's
 * conflict rule (mutateSampleLabels): with honor_labels the scraped value wins; without, the
 * target's value wins and the scraped one moves to exported_<name> (exported_exported_... until
 * the name is free), conflicts handled shortest name first.
 */
static lset_t mutate_labels(col_scrape_t *s, const target_t *t, const col_expfmt_entry_t *e)
{
    enum { MAXL = 300 };
    st_label_t l[MAXL];
    size_t n = 0;
    l[n++] = (st_label_t){WF_STR_LIT("__name__"), e->name};
    for (size_t i = 0; i < e->nlabels && n < MAXL / 2; i++) {
        l[n++] = e->labels[i];
    }
    size_t nexp = n;
    st_label_t conflict[MAXL / 2];
    size_t nc = 0;
    for (size_t i = 0; i < t->labels.n; i++) {
        const st_label_t *tl = &t->labels.l[i];
        size_t at = SIZE_MAX;
        for (size_t j = 0; j < nexp; j++) {
            if (wf_str_eq(l[j].name, tl->name)) {
                at = j;
            }
        }
        if (s->o.honor_labels) {
            if (at == SIZE_MAX) {
                l[n++] = *tl;
            }
            continue;
        }
        if (at != SIZE_MAX) {
            if (l[at].value.len > 0) {
                conflict[nc++] = l[at];
            }
            l[at].value = tl->value;
        } else {
            l[n++] = *tl;
        }
    }
    /* Names are built in a scratch buffer that lives until lset_dup copied them. */
    char names[MAXL / 2][300];
    if (nc > 0) {
        /* Stable by name length. */
        for (size_t i = 1; i < nc; i++) {
            st_label_t x = conflict[i];
            size_t j = i;
            while (j > 0 && conflict[j - 1].name.len > x.name.len) {
                conflict[j] = conflict[j - 1];
                j--;
            }
            conflict[j] = x;
        }
        for (size_t i = 0; i < nc; i++) {
            wf_str_t nm = conflict[i].name;
            size_t len = nm.len;
            memcpy(names[i], nm.p, len);
            for (;;) {
                if (len + 9 >= sizeof(names[i])) {
                    break;
                }
                memmove(names[i] + 9, names[i], len);
                memcpy(names[i], "exported_", 9);
                len += 9;
                wf_str_t cand = {names[i], len};
                bool taken = lset_has(l, nexp, cand) || lset_has(t->labels.l, t->labels.n, cand);
                for (size_t k = 0; k < i && !taken; k++) {
                    taken = wf_str_eq(conflict[k].name, cand);
                }
                if (!taken) {
                    break;
                }
            }
            conflict[i].name = (wf_str_t){names[i], len};
        }
        for (size_t i = 0; i < nc; i++) {
            bool set = false;
            for (size_t j = 0; j < n && !set; j++) {
                if (wf_str_eq(l[j].name, conflict[i].name)) {
                    l[j].value = conflict[i].value;
                    set = true;
                }
            }
            if (!set && n < MAXL) {
                l[n++] = conflict[i];
            }
        }
    }
    return lset_dup(l, n);
}

static void set_status(col_scrape_t *s, target_t *t, bool up, const char *err, int64_t ts,
                       double dur, size_t accepted)
{
    pthread_mutex_lock(&s->mu);
    t->health = up ? HEALTH_UP : HEALTH_DOWN;
    snprintf(t->last_error, sizeof(t->last_error), "%s", err ? err : "");
    t->last_scrape_wall_ns = ts * 1000000;
    t->last_duration_s = dur;
    s->stats.scrapes++;
    s->stats.scrape_failures += up ? 0 : 1;
    s->stats.samples += accepted;
    pthread_mutex_unlock(&s->mu);
}

static void submit(col_scrape_t *s, fill_arg_t *a, size_t est_bytes, col_write_t *w)
{
    memset(w, 0, sizeof(*w));
    w->fill = scrape_fill;
    w->arg = a;
    w->est_samples = a->n + a->nstale + 5;
    w->est_bytes = est_bytes + (a->n + a->nstale + 5) * 16;
    int rc = col_writer_submit(s->writer, w);
    if (rc != 0) {
        WF_LOG_RL(WF_WARN, 1, "scrape", "scrape write failed", "target=%s err=\"%s\"", a->t->url,
                  col_writer_strerror(rc));
    } else if (w->rejected > 0) {
        WF_LOG_RL(WF_WARN, 1, "scrape", "samples refused", "target=%s refused=%zu first=\"%s\"",
                  a->t->url, w->rejected, w->reject_msg);
    }
}

/* Merge a HELP/TYPE/UNIT entry into the scrape's metadata (families usually come in order,
 * so the last entry is the one to extend). */
static void meta_add(fill_arg_t *a, size_t *cap, const col_expfmt_entry_t *e)
{
    meta_t *m = NULL;
    for (size_t i = a->nmeta; i > 0 && m == NULL; i--) {
        if (wf_str_eq(a->meta[i - 1].name, e->name)) {
            m = &a->meta[i - 1];
        }
        if (a->nmeta - i >= 4) {
            break;
        }
    }
    if (m == NULL) {
        if (a->nmeta == *cap) {
            *cap = *cap ? *cap * 2 : 32;
            a->meta = wf_realloc(a->meta, *cap * sizeof(*a->meta));
        }
        m = &a->meta[a->nmeta++];
        memset(m, 0, sizeof(*m));
        m->name = e->name;
    }
    if (e->kind == COL_EXPFMT_HELP) {
        m->help = e->text;
    } else if (e->kind == COL_EXPFMT_TYPE) {
        m->type = e->type;
    } else {
        m->unit = e->text;
    }
}

static void job_result(col_scrape_t *s, job_t *j)
{
    target_t *t = j->t;
    fill_arg_t a;
    memset(&a, 0, sizeof(a));
    a.s = s;
    a.t = t;
    a.ts = j->ts;
    wf_arena_t arena;
    wf_arena_init(&arena, 64 * 1024, 0);
    wf_buf_t key = WF_BUF_INIT;
    size_t cap = 0, total = 0, est_bytes = 0, mcap = 0;
    char err[300];
    bool ok = j->ok;
    snprintf(err, sizeof(err), "%s", j->err);

    uint64_t gen = ++t->gen;
    if (ok) {
        col_expfmt_parser_t p;
        col_expfmt_parser_init(&p, j->body.data, j->body.len, col_expfmt_format_of(j->ctype), NULL,
                               &arena);
        col_expfmt_entry_t e;
        int rc;
        while ((rc = col_expfmt_next(&p, &e)) == 1) {
            if (e.kind == COL_EXPFMT_HELP || e.kind == COL_EXPFMT_TYPE ||
                e.kind == COL_EXPFMT_UNIT) {
                meta_add(&a, &mcap, &e);
                continue;
            }
            if (e.kind != COL_EXPFMT_SERIES) {
                continue;
            }
            total++;
            wf_buf_reset(&key);
            wf_buf_append(&key, e.name.p, e.name.len);
            wf_buf_putc(&key, 0);
            for (size_t i = 0; i < e.nlabels; i++) {
                wf_buf_append(&key, e.labels[i].name.p, e.labels[i].name.len);
                wf_buf_putc(&key, 0);
                wf_buf_append(&key, e.labels[i].value.p, e.labels[i].value.len);
                wf_buf_putc(&key, 0);
            }
            uint64_t h = wf_hash64(key.data, key.len, 0);
            cache_ent_t *ce = cache_find(&t->cache, h, (const char *)key.data, key.len);
            if (ce == NULL) {
                ce = wf_calloc(1, sizeof(*ce));
                ce->hash = h;
                ce->keylen = key.len;
                ce->key = wf_malloc(key.len);
                memcpy(ce->key, key.data, key.len);
                ce->labels = mutate_labels(s, t, &e);
                cache_insert(&t->cache, ce);
                for (size_t i = 0; i < ce->labels.n; i++) {
                    est_bytes += ce->labels.l[i].name.len + ce->labels.l[i].value.len + 2;
                }
            }
            if (a.n == cap) {
                cap = cap ? cap * 2 : 256;
                a.v = wf_realloc(a.v, cap * sizeof(*a.v));
            }
            a.v[a.n++] = (samp_t){ce, e.has_ts ? e.ts_ms : j->ts, e.value, 0, false};
            ce->track = !e.has_ts;
        }
        if (rc < 0) {
            ok = false;
            snprintf(err, sizeof(err), "%s", col_expfmt_error(&p));
            a.n = 0; /* nothing of a scrape that does not parse is written */
        }
    }
    for (size_t i = 0; i < a.n; i++) {
        a.v[i].e->seen = gen;
    }
    /* Series of the previous scrape missing from this one get a staleness marker (those with
     * their own timestamps excepted, as in Prometheus). After a successful scrape every entry
     * not seen in it leaves the cache (freed after the write); a failed scrape keeps the
     * entries it did not create, with their references, as Prometheus's cache does, so that
     * a target that recovers does not count its series as added again. */
    cache_ent_t **gone = NULL, **stale = NULL;
    size_t ngone = 0, gcap = 0, scap = 0;
    for (size_t bi = 0; bi < t->cache.nb; bi++) {
        for (cache_ent_t **pp = &t->cache.b[bi]; *pp;) {
            cache_ent_t *ce = *pp;
            if (ce->seen == gen) {
                pp = &ce->next;
                continue;
            }
            if (ce->seen != 0 && ce->seen + 1 == gen && ce->track && t->last_ts != 0) {
                if (a.nstale == scap) {
                    scap = scap ? scap * 2 : 64;
                    stale = wf_realloc(stale, scap * sizeof(*stale));
                }
                stale[a.nstale++] = ce;
            }
            if (!ok && ce->seen != 0) {
                pp = &ce->next;
                continue;
            }
            *pp = ce->next;
            t->cache.n--;
            if (ngone == gcap) {
                gcap = gcap ? gcap * 2 : 64;
                gone = wf_realloc(gone, gcap * sizeof(*gone));
            }
            gone[ngone++] = ce;
        }
    }
    a.stale = stale;

    /* Metadata is written when it changed since the last successful write. */
    uint64_t mh = 0;
    if (ok) {
        for (size_t i = 0; i < a.nmeta; i++) {
            const meta_t *m = &a.meta[i];
            mh = wf_hash64(m->name.p, m->name.len, mh ^ (uint64_t)m->type);
            mh = wf_hash64(m->help.p, m->help.len, mh);
            mh = wf_hash64(m->unit.p, m->unit.len, mh);
        }
    }
    meta_t *meta = a.meta;
    if (!ok || mh == t->meta_hash) {
        a.nmeta = 0;
    }
    a.report[0] = ok ? 1 : 0;
    a.report[1] = j->duration_s;
    a.report[2] = (double)total;
    a.report[3] = (double)total; /* no metric relabeling: every sample scraped is kept */
    col_write_t w;
    submit(s, &a, est_bytes, &w);
    if (w.status == 0) {
        for (size_t i = 0; i < a.n; i++) {
            if (a.v[i].ref_out != 0) {
                a.v[i].e->ref = a.v[i].ref_out;
            }
        }
        t->last_ts = j->ts;
        if (ok) {
            t->meta_hash = mh;
        }
    }
    wf_free(meta);
    for (size_t i = 0; i < ngone; i++) {
        wf_free(gone[i]->key);
        wf_free(gone[i]->labels.l);
        wf_free(gone[i]);
    }
    if (!ok) {
        WF_LOG_RL(WF_DEBUG, 5, "scrape", "scrape failed", "target=%s err=\"%s\"", t->url, err);
    }
    set_status(s, t, ok, ok ? NULL : err, j->ts, j->duration_s, w.accepted);
    wf_free(a.v);
    wf_free(gone);
    wf_free(stale);
    wf_buf_free(&key);
    wf_arena_free(&arena);
}

/* A target that left discovery: staleness markers for everything it wrote, then free it. */
static void job_final(col_scrape_t *s, job_t *j)
{
    target_t *t = j->t;
    if (t->last_ts != 0) {
        fill_arg_t a;
        memset(&a, 0, sizeof(a));
        a.s = s;
        a.t = t;
        /* Prometheus stamps them with the time the next scrape would have run. */
        a.ts = t->last_ts + t->interval_ms;
        if (a.ts > wf_wall_ms()) {
            a.ts = wf_wall_ms();
        }
        a.report_stale = true;
        size_t cap = 0;
        for (size_t bi = 0; bi < t->cache.nb; bi++) {
            for (cache_ent_t *ce = t->cache.b[bi]; ce; ce = ce->next) {
                if (!ce->track || ce->seen != t->gen) {
                    continue;
                }
                if (a.nstale == cap) {
                    cap = cap ? cap * 2 : 64;
                    a.stale = wf_realloc(a.stale, cap * sizeof(*a.stale));
                }
                a.stale[a.nstale++] = ce;
            }
        }
        col_write_t w;
        submit(s, &a, 0, &w);
        wf_free(a.stale);
    }
    target_free(t);
}

static void *submit_main(void *arg)
{
    col_scrape_t *s = arg;
    for (;;) {
        pthread_mutex_lock(&s->qmu);
        while (s->qhead == NULL && !s->qstop) {
            pthread_cond_wait(&s->qcv, &s->qmu);
        }
        job_t *j = s->qhead;
        if (j == NULL) {
            pthread_mutex_unlock(&s->qmu);
            return NULL;
        }
        s->qhead = j->next;
        if (s->qhead == NULL) {
            s->qtail = NULL;
        }
        pthread_mutex_unlock(&s->qmu);
        if (j->kind == JOB_RESULT) {
            job_result(s, j);
            atomic_store(&j->t->busy, false);
        } else {
            job_final(s, j);
        }
        wf_buf_free(&j->body);
        wf_free(j);
    }
}

/* ---- Lifecycle ---------------------------------------------------------------------------- */

int col_scrape_new(const col_scrape_options_t *o, col_writer_t *writer, col_scrape_t **out)
{
    *out = NULL;
    col_scrape_t *s = wf_calloc(1, sizeof(*s));
    int rc = 0;
    s->o = *o;
    if (s->o.interval_ms <= 0 || s->o.timeout_ms <= 0 || s->o.sd_refresh_ms <= 0) {
        wf_free(s);
        return WF_E_INVAL;
    }
    if (s->o.timeout_ms > s->o.interval_ms) {
        s->o.timeout_ms = s->o.interval_ms;
    }
    if (s->o.file_check_ms <= 0) {
        s->o.file_check_ms = 1000;
    }
    s->writer = writer;
    s->job = wf_strdup(o->job && *o->job ? o->job : "weft");
    s->sd_file = o->sd_file ? wf_strdup(o->sd_file) : NULL;
    s->o.sd_file = NULL;
    s->o.sd_urls = NULL;
    s->o.sd_url_list = NULL;
    s->o.sd_bearer_token = NULL;
    s->o.job = NULL;
    if (o->sd_bearer_token != NULL && o->sd_bearer_token[0] != '\0') {
        /* curl does not send a custom Authorization header on to another host when a
         * discovery answer redirects. */
        size_t len = strlen(o->sd_bearer_token) + sizeof("Authorization: Bearer ");
        char *h = wf_malloc(len);
        snprintf(h, len, "Authorization: Bearer %s", o->sd_bearer_token);
        s->sd_hdrs = curl_slist_append(NULL, h);
        WF_ASSERT(s->sd_hdrs != NULL);
        explicit_bzero(h, len);
        wf_free(h);
    }
    pthread_mutex_init(&s->mu, NULL);
    pthread_mutex_init(&s->qmu, NULL);
    pthread_cond_init(&s->qcv, NULL);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    s->multi = curl_multi_init();
    WF_ASSERT(s->multi != NULL);
    size_t nlist = 0;
    for (const char *p = o->sd_url_list; p && *p; p++) {
        nlist += *p == ',';
    }
    nlist += o->sd_url_list && *o->sd_url_list ? 1 : 0;
    if (o->nsd_urls + nlist > 0) {
        s->sd = wf_calloc(o->nsd_urls + nlist, sizeof(*s->sd));
        for (size_t i = 0; i < o->nsd_urls; i++) {
            s->sd[s->nsd++].url = wf_strdup(o->sd_urls[i]);
        }
        for (const char *p = o->sd_url_list; p && *p;) {
            const char *e = strchr(p, ',');
            size_t n = e ? (size_t)(e - p) : strlen(p);
            while (n > 0 && *p == ' ') {
                p++;
                n--;
            }
            while (n > 0 && p[n - 1] == ' ') {
                n--;
            }
            if (n > 0) {
                s->sd[s->nsd++].url = wf_strndup(p, n);
            }
            p = e ? e + 1 : p + n;
            if (e == NULL) {
                break;
            }
        }
    }
    if (s->sd_file) {
        rc = file_sd_load(s, true);
        if (rc < 0) {
            goto fail;
        }
        s->file_next_check_ms = mono_ms() + s->o.file_check_ms;
        targets_sync(s);
        s->sd_dirty = false;
    }
    if (pthread_create(&s->submit_th, NULL, submit_main, s) != 0) {
        rc = -EAGAIN;
        goto fail;
    }
    if (pthread_create(&s->scrape_th, NULL, scrape_main, s) != 0) {
        pthread_mutex_lock(&s->qmu);
        s->qstop = true;
        pthread_cond_signal(&s->qcv);
        pthread_mutex_unlock(&s->qmu);
        pthread_join(s->submit_th, NULL);
        rc = -EAGAIN;
        goto fail;
    }
    *out = s;
    return 0;
fail:
    s->scrape_th = 0;
    s->submit_th = 0;
    {
        /* Nothing runs yet: free what the constructor built. */
        target_t *t = s->active;
        while (t) {
            target_t *nx = t->next;
            target_free(t);
            t = nx;
        }
        json_decref(s->file_groups);
        for (size_t i = 0; i < s->nsd; i++) {
            wf_free(s->sd[i].url);
        }
        wf_free(s->sd);
        curl_slist_free_all(s->sd_hdrs);
        curl_multi_cleanup(s->multi);
        curl_global_cleanup();
        pthread_cond_destroy(&s->qcv);
        pthread_mutex_destroy(&s->qmu);
        pthread_mutex_destroy(&s->mu);
        wf_free(s->sd_file);
        wf_free(s->job);
        wf_free(s);
    }
    return rc;
}

static void xfer_free(CURL *e)
{
    if (e) {
        xfer_t *x = NULL;
        curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&x);
        wf_free(x);
    }
}

void col_scrape_free(col_scrape_t *s)
{
    if (s == NULL) {
        return;
    }
    atomic_store(&s->stop, true);
    curl_multi_wakeup(s->multi);
    pthread_join(s->scrape_th, NULL);
    pthread_mutex_lock(&s->qmu);
    s->qstop = true;
    pthread_cond_signal(&s->qcv);
    pthread_mutex_unlock(&s->qmu);
    pthread_join(s->submit_th, NULL);

    /* Both threads are gone: abandon transfers, free targets, drop pending final jobs. */
    for (target_t *lists[2] = {s->active, s->dying}, **l = lists; l < lists + 2; l++) {
        target_t *t = *l;
        while (t) {
            target_t *nx = t->next;
            if (t->in_transfer) {
                curl_multi_remove_handle(s->multi, t->easy);
            }
            target_free(t);
            t = nx;
        }
    }
    for (size_t i = 0; i < s->nsd; i++) {
        if (s->sd[i].in_flight) {
            curl_multi_remove_handle(s->multi, s->sd[i].easy);
        }
        xfer_free(s->sd[i].easy);
        if (s->sd[i].easy) {
            curl_easy_cleanup(s->sd[i].easy);
        }
        wf_buf_free(&s->sd[i].body);
        json_decref(s->sd[i].groups);
        wf_free(s->sd[i].url);
    }
    wf_free(s->sd);
    curl_slist_free_all(s->sd_hdrs);
    json_decref(s->file_groups);
    curl_multi_cleanup(s->multi);
    curl_global_cleanup();
    pthread_cond_destroy(&s->qcv);
    pthread_mutex_destroy(&s->qmu);
    pthread_mutex_destroy(&s->mu);
    wf_free(s->sd_file);
    wf_free(s->job);
    wf_free(s);
}

void col_scrape_stats(col_scrape_t *s, col_scrape_stats_t *out)
{
    pthread_mutex_lock(&s->mu);
    *out = s->stats;
    pthread_mutex_unlock(&s->mu);
}

/* ---- /api/v1/targets and /metrics --------------------------------------------------------- */

static void put_lset(wf_buf_t *b, const lset_t *l)
{
    wf_buf_putc(b, '{');
    for (size_t i = 0; i < l->n; i++) {
        if (i > 0) {
            wf_buf_putc(b, ',');
        }
        col_json_str(b, l->l[i].name.p, l->l[i].name.len);
        wf_buf_putc(b, ':');
        col_json_str(b, l->l[i].value.p, l->l[i].value.len);
    }
    wf_buf_putc(b, '}');
}

/* Go's time.Time JSON: RFC 3339 with nanoseconds, trailing zeros trimmed; the zero time for
 * a target never scraped. */
static void put_time(wf_buf_t *b, int64_t ns)
{
    if (ns == 0) {
        wf_buf_puts(b, "\"0001-01-01T00:00:00Z\"");
        return;
    }
    time_t sec = (time_t)(ns / 1000000000);
    long frac = (long)(ns % 1000000000);
    struct tm tm;
    gmtime_r(&sec, &tm);
    char d[64];
    strftime(d, sizeof(d), "%Y-%m-%dT%H:%M:%S", &tm);
    wf_buf_printf(b, "\"%s", d);
    if (frac) {
        char f[16];
        snprintf(f, sizeof(f), "%09ld", frac);
        size_t n = 9;
        while (n > 0 && f[n - 1] == '0') {
            n--;
        }
        f[n] = '\0';
        wf_buf_printf(b, ".%s", f);
    }
    wf_buf_puts(b, "Z\"");
}

void col_scrape_targets_handler(void *scrape, col_req_t *req, col_resp_t *resp)
{
    col_scrape_t *s = scrape;
    const char *state = col_req_param(req, "state");
    bool active = true, dropped = true;
    if (state && *state) {
        if (strcasecmp(state, "active") == 0) {
            dropped = false;
        } else if (strcasecmp(state, "dropped") == 0) {
            active = false;
        } else if (strcasecmp(state, "any") != 0) {
            active = dropped = false;
        }
    }
    wf_buf_t *b = &resp->body;
    wf_buf_puts(b, "{\"status\":\"success\",\"data\":{");
    if (active && s == NULL) {
        wf_buf_puts(b, "\"activeTargets\":[]");
    } else if (active) {
        wf_buf_puts(b, "\"activeTargets\":[");
        pthread_mutex_lock(&s->mu);
        /* Prometheus lists them in a stable order; ours is by scrape URL then labels. */
        size_t n = s->nactive, k = 0;
        target_t **v = wf_malloc((n ? n : 1) * sizeof(*v));
        for (target_t *t = s->active; t && k < n; t = t->next) {
            v[k++] = t;
        }
        for (size_t i = 1; i < k; i++) {
            target_t *x = v[i];
            size_t j = i;
            while (j > 0 && strcmp(v[j - 1]->url, x->url) > 0) {
                v[j] = v[j - 1];
                j--;
            }
            v[j] = x;
        }
        for (size_t i = 0; i < k; i++) {
            target_t *t = v[i];
            char iv[32], to[32];
            fmt_duration(iv, sizeof(iv), t->interval_ms);
            fmt_duration(to, sizeof(to), t->timeout_ms);
            if (i > 0) {
                wf_buf_putc(b, ',');
            }
            wf_buf_puts(b, "{\"discoveredLabels\":");
            put_lset(b, &t->disc);
            wf_buf_puts(b, ",\"labels\":");
            put_lset(b, &t->labels);
            wf_buf_puts(b, ",\"scrapePool\":");
            col_json_str(b, t->pool, strlen(t->pool));
            wf_buf_puts(b, ",\"scrapeUrl\":");
            col_json_str(b, t->url, strlen(t->url));
            wf_buf_puts(b, ",\"globalUrl\":");
            col_json_str(b, t->global_url, strlen(t->global_url));
            wf_buf_puts(b, ",\"lastError\":");
            col_json_str(b, t->last_error, strlen(t->last_error));
            wf_buf_puts(b, ",\"lastScrape\":");
            put_time(b, t->last_scrape_wall_ns);
            wf_buf_puts(b, ",\"lastScrapeDuration\":");
            col_fmt_float(b, t->last_duration_s);
            wf_buf_printf(b, ",\"health\":\"%s\"",
                          t->health == HEALTH_UP     ? "up"
                          : t->health == HEALTH_DOWN ? "down"
                                                     : "unknown");
            wf_buf_printf(b, ",\"scrapeInterval\":\"%s\",\"scrapeTimeout\":\"%s\"}", iv, to);
        }
        pthread_mutex_unlock(&s->mu);
        wf_free(v);
        wf_buf_puts(b, "]");
    }
    if (dropped) {
        wf_buf_puts(b, active ? ",\"droppedTargets\":[]" : "\"droppedTargets\":[]");
    }
    wf_buf_puts(b, "}}");
}

void col_scrape_write_metrics(void *scrape, wf_buf_t *out)
{
    col_scrape_t *s = scrape;
    size_t up = 0, down = 0, unknown = 0;
    if (s == NULL) {
        return;
    }
    pthread_mutex_lock(&s->mu);
    col_scrape_stats_t st = s->stats;
    for (target_t *t = s->active; t; t = t->next) {
        up += t->health == HEALTH_UP;
        down += t->health == HEALTH_DOWN;
        unknown += t->health == HEALTH_UNKNOWN;
    }
    pthread_mutex_unlock(&s->mu);
    wf_buf_puts(out, "# HELP weft_scrape_targets Active scrape targets by health.\n"
                     "# TYPE weft_scrape_targets gauge\n");
    wf_buf_printf(out, "weft_scrape_targets{health=\"up\"} %zu\n", up);
    wf_buf_printf(out, "weft_scrape_targets{health=\"down\"} %zu\n", down);
    wf_buf_printf(out, "weft_scrape_targets{health=\"unknown\"} %zu\n", unknown);
    wf_buf_printf(out,
                  "# HELP weft_scrapes_total Scrapes finished and written.\n"
                  "# TYPE weft_scrapes_total counter\n"
                  "weft_scrapes_total %llu\n"
                  "# HELP weft_scrape_failures_total Scrapes that failed (up 0).\n"
                  "# TYPE weft_scrape_failures_total counter\n"
                  "weft_scrape_failures_total %llu\n"
                  "# HELP weft_scrape_samples_total Samples written by scrapes.\n"
                  "# TYPE weft_scrape_samples_total counter\n"
                  "weft_scrape_samples_total %llu\n"
                  "# HELP weft_scrape_sd_refreshes_total Successful target discovery reads.\n"
                  "# TYPE weft_scrape_sd_refreshes_total counter\n"
                  "weft_scrape_sd_refreshes_total %llu\n"
                  "# HELP weft_scrape_sd_failures_total Failed target discovery reads.\n"
                  "# TYPE weft_scrape_sd_failures_total counter\n"
                  "weft_scrape_sd_failures_total %llu\n",
                  (unsigned long long)st.scrapes, (unsigned long long)st.scrape_failures,
                  (unsigned long long)st.samples, (unsigned long long)st.sd_refreshes,
                  (unsigned long long)st.sd_failures);
}
