/*
 * col_otlp_metrics.c - OTLP/HTTP metrics receiver: protobuf and JSON decoding, translation to
 * Prometheus series. See col_otlp_metrics.h for the mapping.
 *
 * Schema (opentelemetry-proto, collector/metrics/v1 and metrics/v1), by field number:
 *   ExportMetricsServiceRequest { repeated ResourceMetrics resource_metrics = 1; }
 *   ResourceMetrics { Resource resource = 1; repeated ScopeMetrics scope_metrics = 2; }
 *   Resource        { repeated KeyValue attributes = 1; }
 *   ScopeMetrics    { InstrumentationScope scope = 1; repeated Metric metrics = 2; }
 *   Metric          { string name = 1; string description = 2; string unit = 3;
 *                     oneof data { Gauge gauge = 5; Sum sum = 7; Histogram histogram = 9;
 *                     ExponentialHistogram exponential_histogram = 10; Summary summary = 11; } }
 *   Gauge { repeated NumberDataPoint data_points = 1; }
 *   Sum   { repeated NumberDataPoint data_points = 1; AggregationTemporality
 *           aggregation_temporality = 2; bool is_monotonic = 3; }
 *   Histogram / ExponentialHistogram { repeated ...DataPoint data_points = 1;
 *           AggregationTemporality aggregation_temporality = 2; }
 *   Summary { repeated SummaryDataPoint data_points = 1; }
 *   NumberDataPoint { repeated KeyValue attributes = 7; fixed64 time_unix_nano = 3;
 *           double as_double = 4; sfixed64 as_int = 6; uint32 flags = 8; }
 *   HistogramDataPoint { repeated KeyValue attributes = 9; fixed64 time_unix_nano = 3;
 *           fixed64 count = 4; optional double sum = 5; repeated fixed64 bucket_counts = 6;
 *           repeated double explicit_bounds = 7; uint32 flags = 10; }
 *   SummaryDataPoint { repeated KeyValue attributes = 7; fixed64 time_unix_nano = 3;
 *           fixed64 count = 4; double sum = 5; repeated ValueAtQuantile quantile_values = 6
 *           { double quantile = 1; double value = 2; }; uint32 flags = 8; }
 *   KeyValue { string key = 1; AnyValue value = 2; }
 *   AnyValue { oneof { string string_value = 1; bool bool_value = 2; int64 int_value = 3;
 *           double double_value = 4; ArrayValue array_value = 5 { repeated AnyValue values =
 *           1; }; KeyValueList kvlist_value = 6 { repeated KeyValue values = 1; };
 *           bytes bytes_value = 7; } }
 *   ExportMetricsServiceResponse { ExportMetricsPartialSuccess partial_success = 1
 *           { int64 rejected_data_points = 1; string error_message = 2; } }
 *
 * Both decoders fill the same point structure and call the same emitter, so the two
 * encodings cannot translate differently.
 */
#include "col_otlp_metrics.h"

#include "col_otlp_json.h"

#include "wf_alloc.h"
#include "wf_buf.h"
#include "wf_err.h"
#include "wf_log.h"
#include "wf_pb.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_ATTRS 1024     /* attributes of one point or resource */
#define MAX_BUCKETS 4096   /* explicit buckets / quantiles of one point */
#define MAX_VALUE_DEPTH 16 /* nesting of array / kvlist attribute values */
#define STALE_NAN_BITS 0x7ff0000000000002ULL

/* ---- names ------------------------------------------------------------------------------- */

static bool name_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == ':';
}

static bool alnum(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

typedef struct {
    const char *ucum;
    const char *prom;
} unit_map_t;

/* The units of OpenTelemetry's semantic conventions and their Prometheus words. */
static const unit_map_t main_units[] = {
    {"d", "days"},
    {"h", "hours"},
    {"min", "minutes"},
    {"s", "seconds"},
    {"ms", "milliseconds"},
    {"us", "microseconds"},
    {"ns", "nanoseconds"},
    {"By", "bytes"},
    {"KiBy", "kibibytes"},
    {"MiBy", "mebibytes"},
    {"GiBy", "gibibytes"},
    {"TiBy", "tibibytes"},
    {"KBy", "kilobytes"},
    {"MBy", "megabytes"},
    {"GBy", "gigabytes"},
    {"TBy", "terabytes"},
    {"m", "meters"},
    {"V", "volts"},
    {"A", "amperes"},
    {"J", "joules"},
    {"W", "watts"},
    {"g", "grams"},
    {"Cel", "celsius"},
    {"Hz", "hertz"},
    {"1", ""},
    {"%", "percent"},
};

static const unit_map_t per_units[] = {
    {"s", "second"}, {"m", "minute"}, {"min", "minute"}, {"h", "hour"},
    {"d", "day"},    {"w", "week"},   {"mo", "month"},   {"y", "year"},
};

/* Append bytes to out[0..cap) at *n, keeping room for the NUL. */
static void put(char *out, size_t cap, size_t *n, const char *p, size_t len)
{
    if (*n + len + 1 > cap) {
        len = *n + 1 < cap ? cap - *n - 1 : 0;
    }
    memcpy(out + *n, p, len);
    *n += len;
    out[*n] = '\0';
}

/* Is tok one of the `_`-separated tokens of s? */
static bool has_token(const char *s, size_t n, const char *tok, size_t tn)
{
    size_t i = 0;
    while (i < n) {
        size_t j = i;
        while (j < n && s[j] != '_') {
            j++;
        }
        if (j - i == tn && memcmp(s + i, tok, tn) == 0) {
            return true;
        }
        i = j + 1;
    }
    return false;
}

static bool ends_with_token(const char *s, size_t n, const char *tok)
{
    size_t tn = strlen(tok);
    return n >= tn && memcmp(s + n - tn, tok, tn) == 0 && (n == tn || s[n - tn - 1] == '_');
}

/* The Prometheus word of one unit part (after dropping {annotations}); "" when none. */
static void unit_word(wf_str_t u, const unit_map_t *map, size_t nmap, char *out, size_t cap)
{
    char clean[64];
    size_t n = 0;
    int brace = 0;
    for (size_t i = 0; i < u.len && n + 1 < sizeof(clean); i++) {
        char c = u.p[i];
        if (c == '{') {
            brace++;
        } else if (c == '}' && brace > 0) {
            brace--;
        } else if (brace == 0 && c != ' ') {
            clean[n++] = c;
        }
    }
    clean[n] = '\0';
    out[0] = '\0';
    for (size_t i = 0; i < nmap; i++) {
        if (strcmp(clean, map[i].ucum) == 0) {
            snprintf(out, cap, "%s", map[i].prom);
            return;
        }
    }
    /* Not a known unit: keep its letters and digits, as the specification says. */
    size_t o = 0;
    for (size_t i = 0; i < n && o + 1 < cap; i++) {
        if (alnum((unsigned char)clean[i])) {
            out[o++] = clean[i];
        }
    }
    out[o] = '\0';
}

size_t col_otlp_metric_name(wf_str_t name, wf_str_t unit, char kind, char *out, size_t cap)
{
    size_t n = 0;
    out[0] = '\0';
    /* Tokens are the runs of valid characters; they are joined with single underscores. */
    for (size_t i = 0; i < name.len;) {
        while (i < name.len && !name_char((unsigned char)name.p[i])) {
            i++;
        }
        size_t j = i;
        while (j < name.len && name_char((unsigned char)name.p[j])) {
            j++;
        }
        if (j > i) {
            if (n > 0) {
                put(out, cap, &n, "_", 1);
            }
            put(out, cap, &n, name.p + i, j - i);
        }
        i = j;
    }
    if (n == 0) {
        return 0;
    }
    wf_str_t main_u = unit, per_u = {"", 0};
    const char *slash = unit.len ? memchr(unit.p, '/', unit.len) : NULL;
    if (slash != NULL) {
        main_u.len = (size_t)(slash - unit.p);
        per_u.p = slash + 1;
        per_u.len = unit.len - main_u.len - 1;
    }
    char w[64];
    unit_word(main_u, main_units, sizeof(main_units) / sizeof(main_units[0]), w, sizeof(w));
    if (w[0] != '\0' && !has_token(out, n, w, strlen(w))) {
        put(out, cap, &n, "_", 1);
        put(out, cap, &n, w, strlen(w));
    }
    if (per_u.len > 0) {
        unit_word(per_u, per_units, sizeof(per_units) / sizeof(per_units[0]), w, sizeof(w));
        char per[80];
        snprintf(per, sizeof(per), "per_%s", w);
        if (w[0] != '\0' && strstr(out, per) == NULL) {
            put(out, cap, &n, "_", 1);
            put(out, cap, &n, per, strlen(per));
        }
    }
    if (kind == 'c' && !ends_with_token(out, n, "total")) {
        put(out, cap, &n, "_total", 6);
    }
    if (kind == 'g' && unit.len == 1 && unit.p[0] == '1' && !ends_with_token(out, n, "ratio")) {
        put(out, cap, &n, "_ratio", 6);
    }
    if (out[0] >= '0' && out[0] <= '9') {
        memmove(out + 1, out, n + 1 < cap ? n + 1 : cap - 1);
        out[0] = '_';
        n = n + 1 < cap ? n + 1 : n;
        out[n] = '\0';
    }
    return n;
}

size_t col_otlp_label_name(wf_str_t key, char *out, size_t cap)
{
    size_t n = 0;
    out[0] = '\0';
    if (key.len == 0) {
        return 0;
    }
    if (key.p[0] >= '0' && key.p[0] <= '9') {
        put(out, cap, &n, "key_", 4);
    } else if (key.p[0] == '_' && (key.len < 2 || key.p[1] != '_')) {
        put(out, cap, &n, "key", 3);
    }
    for (size_t i = 0; i < key.len; i++) {
        unsigned char c = (unsigned char)key.p[i];
        if (c >= 0x80 && c < 0xc0) {
            continue; /* one `_` per character, not per UTF-8 byte */
        }
        char o = (alnum(c) || c == '_') ? (char)c : '_';
        put(out, cap, &n, &o, 1);
    }
    return n;
}

/* ---- translation context ------------------------------------------------------------------ */

typedef struct {
    wf_str_t key;   /* original key */
    wf_str_t value; /* rendered value */
} attr_t;

typedef struct {
    attr_t *attrs;
    size_t nattrs;
    int64_t ts_ms;
    bool stale;
    double value;   /* number points */
    uint64_t count; /* histograms, summaries */
    double sum;
    bool has_sum;
    uint64_t *buckets; /* histogram bucket counts (not cumulative) */
    size_t nbuckets;
    double *bounds;
    size_t nbounds;
    double *quantiles, *qvalues; /* summaries */
    size_t nq;
} point_t;

typedef struct {
    char kind; /* 'g', 'c', 'h', 's'; 0: this metric's points are dropped */
    const char *name, *bucket, *sum, *count; /* Prometheus names (arena) */
    const char *drop_why;
} metric_t;

typedef struct {
    col_sset_t *set;
    wf_arena_t *arena;
    col_otlp_stats_t *st;
    char *err;
    size_t errlen;
    /* resource */
    wf_str_t job, instance;
    bool has_job, has_instance;
    attr_t *rattrs; /* every resource attribute */
    size_t nrattrs, cap_rattrs;
    int64_t res_max_ts;
    bool res_points;
    /* scratch, reused per point */
    attr_t *pattrs;
    size_t npattrs, cap_pattrs;
    st_label_t *merged;
    size_t nmerged, cap_merged;
    uint64_t *buckets;
    size_t cap_buckets;
    double *bounds, *qs, *qvs;
    size_t cap_bounds, cap_qs;
    wf_buf_t tmp;
} otlp_t;

static void ctx_free(otlp_t *o)
{
    wf_free(o->rattrs);
    wf_free(o->pattrs);
    wf_free(o->merged);
    wf_free(o->buckets);
    wf_free(o->bounds);
    wf_free(o->qs);
    wf_free(o->qvs);
    wf_buf_free(&o->tmp);
}

static int invalid(otlp_t *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int invalid(otlp_t *o, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(o->err, o->errlen, fmt, ap);
    va_end(ap);
    return WF_E_INVAL;
}

static int too_large(otlp_t *o, const char *what)
{
    snprintf(o->err, o->errlen, "request too large: %s", what);
    return WF_E_LIMIT;
}

static int pb_invalid(otlp_t *o, const wf_pb_rd_t *r, const char *where)
{
    return invalid(o, "protobuf: %s: %s at offset %zu", where, r->err ? r->err : "malformed",
                   r->err_off);
}

/* Copy bytes into the arena (NUL-terminated); NULL when the arena's limit is reached. */
static const char *arena_copy(otlp_t *o, const void *p, size_t n)
{
    char *c = wf_arena_alloc_checked(o->arena, n + 1);
    if (c == NULL) {
        return NULL;
    }
    if (n > 0) {
        memcpy(c, p, n);
    }
    c[n] = '\0';
    return c;
}

static int arena_str(otlp_t *o, const void *p, size_t n, wf_str_t *out)
{
    const char *c = arena_copy(o, p, n);
    if (c == NULL) {
        return too_large(o, "attribute data exceeds the request's memory limit");
    }
    *out = (wf_str_t){c, n};
    return 0;
}

static void drop_points(otlp_t *o, size_t n, const char *why, wf_str_t metric)
{
    if (n == 0) {
        return;
    }
    if (o->st->dropped == 0) {
        snprintf(o->st->drop_msg, sizeof(o->st->drop_msg), "%s (metric %.*s)", why,
                 (int)(metric.len > 100 ? 100 : metric.len), metric.p);
    }
    o->st->dropped += n;
}

static int grow_arr(void **arr, size_t *cap, size_t need, size_t sz, size_t limit)
{
    if (need <= *cap) {
        return 0;
    }
    if (need > limit) {
        return WF_E_LIMIT;
    }
    size_t ncap = *cap ? *cap : 16;
    while (ncap < need) {
        ncap *= 2;
    }
    if (ncap > limit) {
        ncap = limit;
    }
    if (wf_realloc_checked(arr, ncap, sz, 0) != 0) {
        return WF_E_LIMIT;
    }
    *cap = ncap;
    return 0;
}

static int add_attr(otlp_t *o, attr_t **arr, size_t *n, size_t *cap, wf_str_t key, wf_str_t value)
{
    if (grow_arr((void **)arr, cap, *n + 1, sizeof(attr_t), MAX_ATTRS) != 0) {
        return too_large(o, "more than 1024 attributes");
    }
    (*arr)[(*n)++] = (attr_t){key, value};
    return 0;
}

/* ---- value rendering helpers --------------------------------------------------------------- */

/* A double inside a JSON rendering: JSON has no NaN or infinities, so those are strings. */
static void json_double(wf_buf_t *out, double v)
{
    if (isnan(v) || isinf(v)) {
        wf_buf_putc(out, '"');
        col_fmt_float(out, v);
        wf_buf_putc(out, '"');
    } else {
        col_fmt_float(out, v);
    }
}

/* ---- the emitter (shared by both encodings) -------------------------------------------------- */

typedef struct {
    st_label_t l; /* sanitized name, value */
    wf_str_t key; /* original key, for the collision order */
} named_t;

static int cmp_named(const void *a, const void *b)
{
    const named_t *x = a, *y = b;
    int c = wf_str_cmp(x->l.name, y->l.name);
    return c != 0 ? c : wf_str_cmp(x->key, y->key);
}

/*
 * Sanitize attribute names into o->merged, joining the values of attributes whose names
 * collide with `;` in the order of their original keys. Empty keys are dropped.
 */
static int merge_attrs(otlp_t *o, const attr_t *attrs, size_t n)
{
    o->nmerged = 0;
    if (n == 0) {
        return 0;
    }
    named_t *tmp = wf_arena_alloc_checked(o->arena, n * sizeof(named_t));
    if (tmp == NULL) {
        return too_large(o, "attributes exceed the request's memory limit");
    }
    size_t k = 0;
    char buf[512];
    for (size_t i = 0; i < n; i++) {
        size_t len = col_otlp_label_name(attrs[i].key, buf, sizeof(buf));
        if (len == 0) {
            continue;
        }
        wf_str_t name;
        int rc = arena_str(o, buf, len, &name);
        if (rc != 0) {
            return rc;
        }
        tmp[k++] = (named_t){{name, attrs[i].value}, attrs[i].key};
    }
    qsort(tmp, k, sizeof(named_t), cmp_named);
    if (grow_arr((void **)&o->merged, &o->cap_merged, k, sizeof(st_label_t), MAX_ATTRS) != 0) {
        return too_large(o, "more than 1024 attributes");
    }
    for (size_t i = 0; i < k;) {
        size_t j = i + 1;
        while (j < k && wf_str_eq(tmp[j].l.name, tmp[i].l.name)) {
            j++;
        }
        st_label_t l = tmp[i].l;
        if (j - i > 1) {
            wf_buf_reset(&o->tmp);
            for (size_t m = i; m < j; m++) {
                if (m > i) {
                    wf_buf_putc(&o->tmp, ';');
                }
                wf_buf_append(&o->tmp, tmp[m].l.value.p, tmp[m].l.value.len);
            }
            int rc = arena_str(o, o->tmp.data, o->tmp.len, &l.value);
            if (rc != 0) {
                return rc;
            }
        }
        o->merged[o->nmerged++] = l;
        i = j;
    }
    return 0;
}

/* One series: __name__, job, instance, the extra label (le / quantile), the merged attributes
 * (minus any that those reserved labels override), one sample. */
static int emit_series(otlp_t *o, const char *name, const char *extra_name, const char *extra_val,
                       int64_t ts, double v)
{
    col_sset_t *s = o->set;
    col_sset_begin(s);
    int rc = col_sset_label(s, WF_STR_LIT("__name__"), wf_str(name));
    if (rc == 0 && o->has_job) {
        rc = col_sset_label(s, WF_STR_LIT("job"), o->job);
    }
    if (rc == 0 && o->has_instance) {
        rc = col_sset_label(s, WF_STR_LIT("instance"), o->instance);
    }
    if (rc == 0 && extra_name != NULL) {
        rc = col_sset_label(s, wf_str(extra_name), wf_str(extra_val));
    }
    for (size_t i = 0; rc == 0 && i < o->nmerged; i++) {
        wf_str_t n = o->merged[i].name;
        if (wf_str_eq_c(n, "__name__") || (o->has_job && wf_str_eq_c(n, "job")) ||
            (o->has_instance && wf_str_eq_c(n, "instance")) ||
            (extra_name != NULL && wf_str_eq_c(n, extra_name))) {
            continue;
        }
        rc = col_sset_label(s, n, o->merged[i].value);
    }
    if (rc != 0) {
        return too_large(o, "too many labels");
    }
    size_t nl;
    const st_label_t *labels = col_sset_cur_labels(s, &nl);
    char why[400];
    if (col_sset_check_labels(labels, nl, why, sizeof(why)) != 0) {
        return invalid(o, "metric %s: %s", name, why);
    }
    if (col_sset_sample(s, ts, v) != 0 || col_sset_end(s) != 0) {
        return too_large(o, "more than 2000000 samples");
    }
    return 0;
}

static const char *fmt_float_arena(otlp_t *o, double v)
{
    wf_buf_reset(&o->tmp);
    col_fmt_float(&o->tmp, v);
    return arena_copy(o, o->tmp.data, o->tmp.len);
}

static double stale_nan(void)
{
    uint64_t b = STALE_NAN_BITS;
    double d;
    memcpy(&d, &b, sizeof(d));
    return d;
}

static int emit_point(otlp_t *o, const metric_t *m, const point_t *p, wf_str_t metric_name)
{
    if (m->kind == 0) {
        drop_points(o, 1, m->drop_why, metric_name);
        return 0;
    }
    if (m->kind == 'h') {
        if (p->nbuckets != 0 && p->nbuckets != p->nbounds + 1) {
            drop_points(o, 1, "histogram with bucket_counts not one more than explicit_bounds",
                        metric_name);
            return 0;
        }
        for (size_t i = 1; i < p->nbounds; i++) {
            if (!(p->bounds[i] > p->bounds[i - 1])) {
                drop_points(o, 1, "histogram with explicit_bounds not increasing", metric_name);
                return 0;
            }
        }
    }
    int rc = merge_attrs(o, p->attrs, p->nattrs);
    if (rc != 0) {
        return rc;
    }
    double stale = stale_nan();
    switch (m->kind) {
    case 'g':
    case 'c':
        rc = emit_series(o, m->name, NULL, NULL, p->ts_ms, p->stale ? stale : p->value);
        break;
    case 'h': {
        uint64_t cum = 0;
        for (size_t i = 0; rc == 0 && i < p->nbounds && p->nbuckets > 0; i++) {
            cum += p->buckets[i];
            const char *le = fmt_float_arena(o, p->bounds[i]);
            if (le == NULL) {
                return too_large(o, "labels exceed the request's memory limit");
            }
            rc = emit_series(o, m->bucket, "le", le, p->ts_ms, p->stale ? stale : (double)cum);
        }
        if (rc == 0) {
            rc = emit_series(o, m->bucket, "le", "+Inf", p->ts_ms,
                             p->stale ? stale : (double)p->count);
        }
        if (rc == 0 && (p->has_sum || p->stale)) {
            rc = emit_series(o, m->sum, NULL, NULL, p->ts_ms, p->stale ? stale : p->sum);
        }
        if (rc == 0) {
            rc =
                emit_series(o, m->count, NULL, NULL, p->ts_ms, p->stale ? stale : (double)p->count);
        }
        break;
    }
    case 's':
        for (size_t i = 0; rc == 0 && i < p->nq; i++) {
            const char *q = fmt_float_arena(o, p->quantiles[i]);
            if (q == NULL) {
                return too_large(o, "labels exceed the request's memory limit");
            }
            rc = emit_series(o, m->name, "quantile", q, p->ts_ms, p->stale ? stale : p->qvalues[i]);
        }
        if (rc == 0) {
            rc = emit_series(o, m->sum, NULL, NULL, p->ts_ms, p->stale ? stale : p->sum);
        }
        if (rc == 0) {
            rc =
                emit_series(o, m->count, NULL, NULL, p->ts_ms, p->stale ? stale : (double)p->count);
        }
        break;
    default:
        WF_ASSERT(0);
    }
    if (rc == 0) {
        o->st->points++;
        if (!o->res_points || p->ts_ms > o->res_max_ts) {
            o->res_max_ts = p->ts_ms;
        }
        o->res_points = true;
    }
    return rc;
}

/* Decide a metric's translation and record its metadata. data_kind: 'g' gauge, 's' sum,
 * 'h' histogram, 'e' exponential histogram, 'S' summary. */
static int metric_begin(otlp_t *o, metric_t *m, wf_str_t name, wf_str_t desc, wf_str_t unit,
                        char data_kind, int64_t temporality, bool monotonic)
{
    memset(m, 0, sizeof(*m));
    if (!wf_utf8_valid(name.p, name.len) || !wf_utf8_valid(desc.p, desc.len) ||
        !wf_utf8_valid(unit.p, unit.len)) {
        return invalid(o, "metric name, description or unit is not valid UTF-8");
    }
    st_metric_type_t type = ST_METRIC_GAUGE;
    switch (data_kind) {
    case 'g':
        m->kind = 'g';
        break;
    case 's':
        if (temporality != 2) {
            m->drop_why = "sum with delta or unspecified temporality";
        } else {
            m->kind = monotonic ? 'c' : 'g';
            type = monotonic ? ST_METRIC_COUNTER : ST_METRIC_GAUGE;
        }
        break;
    case 'h':
        if (temporality != 2) {
            m->drop_why = "histogram with delta or unspecified temporality";
        } else {
            m->kind = 'h';
            type = ST_METRIC_HISTOGRAM;
        }
        break;
    case 'e':
        m->drop_why = "exponential histogram (not supported)";
        break;
    case 'S':
        m->kind = 's';
        type = ST_METRIC_SUMMARY;
        break;
    default:
        return 0;
    }
    if (m->kind == 0) {
        return 0;
    }
    char buf[512];
    size_t n = col_otlp_metric_name(name, unit, m->kind, buf, sizeof(buf) - 16);
    if (n == 0) {
        m->kind = 0;
        m->drop_why = "metric name without any valid character";
        return 0;
    }
    m->name = arena_copy(o, buf, n);
    memcpy(buf + n, "_bucket", 8);
    m->bucket = arena_copy(o, buf, n + 7);
    memcpy(buf + n, "_sum", 5);
    m->sum = arena_copy(o, buf, n + 4);
    memcpy(buf + n, "_count", 7);
    m->count = arena_copy(o, buf, n + 6);
    if (m->name == NULL || m->bucket == NULL || m->sum == NULL || m->count == NULL) {
        return too_large(o, "names exceed the request's memory limit");
    }
    /* Metadata: the family's Prometheus unit word, and the description as help. */
    char uw[64] = "";
    wf_str_t main_u = unit;
    const char *slash = unit.len ? memchr(unit.p, '/', unit.len) : NULL;
    if (slash != NULL) {
        main_u.len = (size_t)(slash - unit.p);
    }
    unit_word(main_u, main_units, sizeof(main_units) / sizeof(main_units[0]), uw, sizeof(uw));
    wf_str_t help, u;
    int rc = arena_str(o, desc.p, desc.len, &help);
    if (rc == 0) {
        rc = arena_str(o, uw, strlen(uw), &u);
    }
    if (rc != 0) {
        return rc;
    }
    if (col_sset_metadata(o->set, wf_str(m->name), type, help, u) != 0) {
        return too_large(o, "too many metadata entries");
    }
    return 0;
}

/* After a resource's metrics: job / instance were set from its attributes; the rest go to a
 * target_info series stamped with the resource's newest point. */
static int resource_end(otlp_t *o)
{
    size_t extra = 0;
    for (size_t i = 0; i < o->nrattrs; i++) {
        wf_str_t k = o->rattrs[i].key;
        if (!wf_str_eq_c(k, "service.name") && !wf_str_eq_c(k, "service.namespace") &&
            !wf_str_eq_c(k, "service.instance.id")) {
            o->rattrs[extra++] = o->rattrs[i];
        }
    }
    int rc = 0;
    if (extra > 0 && o->res_points) {
        rc = merge_attrs(o, o->rattrs, extra);
        if (rc == 0) {
            rc = emit_series(o, "target_info", NULL, NULL, o->res_max_ts, 1);
        }
    }
    o->nrattrs = 0;
    o->has_job = o->has_instance = false;
    o->res_points = false;
    return rc;
}

/* Set job / instance from the resource attributes collected in o->rattrs. */
static int resource_identity(otlp_t *o)
{
    wf_str_t name = {NULL, 0}, ns = {NULL, 0}, id = {NULL, 0};
    bool has_name = false, has_ns = false, has_id = false;
    for (size_t i = 0; i < o->nrattrs; i++) {
        const attr_t *a = &o->rattrs[i];
        if (wf_str_eq_c(a->key, "service.name")) {
            name = a->value;
            has_name = true;
        } else if (wf_str_eq_c(a->key, "service.namespace")) {
            ns = a->value;
            has_ns = ns.len > 0;
        } else if (wf_str_eq_c(a->key, "service.instance.id")) {
            id = a->value;
            has_id = id.len > 0;
        }
    }
    if (has_name) {
        if (has_ns) {
            wf_buf_reset(&o->tmp);
            wf_buf_append(&o->tmp, ns.p, ns.len);
            wf_buf_putc(&o->tmp, '/');
            wf_buf_append(&o->tmp, name.p, name.len);
            int rc = arena_str(o, o->tmp.data, o->tmp.len, &o->job);
            if (rc != 0) {
                return rc;
            }
        } else {
            o->job = name;
        }
        o->has_job = o->job.len > 0;
    }
    if (has_id) {
        o->instance = id;
        o->has_instance = true;
    }
    return 0;
}

/* ---- protobuf ------------------------------------------------------------------------------ */

static int pb_any_render(otlp_t *o, wf_pb_rd_t *r, wf_buf_t *out, bool nested, int depth);

/* Render the KeyValue list of an AnyValue kvlist or ArrayValue into out as JSON. */
static int pb_render_list(otlp_t *o, wf_pb_rd_t *r, wf_buf_t *out, bool kv, int depth)
{
    wf_pb_field_t f;
    int rc;
    bool first = true;
    wf_buf_putc(out, kv ? '{' : '[');
    while ((rc = wf_pb_next(r, &f)) > 0) {
        if (f.num != 1) {
            continue;
        }
        wf_pb_rd_t sub;
        if (wf_pb_sub(r, &f, &sub) != 0) {
            return pb_invalid(o, r, "attribute value");
        }
        if (!first) {
            wf_buf_putc(out, ',');
        }
        first = false;
        if (!kv) {
            rc = pb_any_render(o, &sub, out, true, depth + 1);
        } else {
            wf_pb_field_t g;
            wf_str_t key = {"", 0};
            wf_pb_rd_t val = {0};
            bool has_val = false;
            while ((rc = wf_pb_next(&sub, &g)) > 0) {
                if (g.num == 1 && wf_pb_bytes(&sub, &g, &key) != 0) {
                    return pb_invalid(o, &sub, "attribute key");
                }
                if (g.num == 2) {
                    if (wf_pb_sub(&sub, &g, &val) != 0) {
                        return pb_invalid(o, &sub, "attribute value");
                    }
                    has_val = true;
                }
            }
            if (rc < 0) {
                return pb_invalid(o, &sub, "attribute");
            }
            if (!wf_utf8_valid(key.p, key.len)) {
                return invalid(o, "attribute key is not valid UTF-8");
            }
            col_json_str(out, key.p, key.len);
            wf_buf_putc(out, ':');
            if (has_val) {
                rc = pb_any_render(o, &val, out, true, depth + 1);
            } else {
                wf_buf_puts(out, "null");
                rc = 0;
            }
        }
        if (rc != 0) {
            return rc;
        }
    }
    if (rc < 0) {
        return pb_invalid(o, r, "attribute value");
    }
    wf_buf_putc(out, kv ? '}' : ']');
    return 0;
}

/* Render an AnyValue: the last member of its oneof wins, as in every protobuf decoder. */
static int pb_any_render(otlp_t *o, wf_pb_rd_t *r, wf_buf_t *out, bool nested, int depth)
{
    if (depth > MAX_VALUE_DEPTH) {
        return invalid(o, "attribute value nested deeper than %d levels", MAX_VALUE_DEPTH);
    }
    wf_pb_field_t f, last;
    bool have = false;
    int rc;
    while ((rc = wf_pb_next(r, &f)) > 0) {
        if (f.num >= 1 && f.num <= 7) {
            last = f;
            have = true;
        }
    }
    if (rc < 0) {
        return pb_invalid(o, r, "attribute value");
    }
    if (!have) {
        if (nested) {
            wf_buf_puts(out, "null");
        }
        return 0;
    }
    wf_str_t s;
    bool b;
    int64_t i;
    double d;
    wf_pb_rd_t sub;
    switch (last.num) {
    case 1:
        if (wf_pb_bytes(r, &last, &s) != 0) {
            return pb_invalid(o, r, "attribute value");
        }
        if (!wf_utf8_valid(s.p, s.len)) {
            return invalid(o, "attribute value is not valid UTF-8");
        }
        if (nested) {
            col_json_str(out, s.p, s.len);
        } else {
            wf_buf_append(out, s.p, s.len);
        }
        return 0;
    case 2:
        if (wf_pb_bool(r, &last, &b) != 0) {
            return pb_invalid(o, r, "attribute value");
        }
        wf_buf_puts(out, b ? "true" : "false");
        return 0;
    case 3:
        if (wf_pb_int64(r, &last, &i) != 0) {
            return pb_invalid(o, r, "attribute value");
        }
        wf_buf_printf(out, "%" PRId64, i);
        return 0;
    case 4:
        if (wf_pb_double(r, &last, &d) != 0) {
            return pb_invalid(o, r, "attribute value");
        }
        if (nested) {
            json_double(out, d);
        } else {
            col_fmt_float(out, d);
        }
        return 0;
    case 5:
    case 6:
        if (wf_pb_sub(r, &last, &sub) != 0) {
            return pb_invalid(o, r, "attribute value");
        }
        return pb_render_list(o, &sub, out, last.num == 6, depth);
    case 7:
        if (wf_pb_bytes(r, &last, &s) != 0) {
            return pb_invalid(o, r, "attribute value");
        }
        if (nested) {
            wf_buf_putc(out, '"');
        }
        wf_buf_put_base64(out, (const uint8_t *)s.p, s.len);
        if (nested) {
            wf_buf_putc(out, '"');
        }
        return 0;
    default:
        return 0;
    }
}

/* A KeyValue into (key, rendered value). Plain strings are borrowed from the body. */
static int pb_keyvalue(otlp_t *o, wf_pb_rd_t *r, attr_t *a)
{
    wf_pb_field_t f;
    wf_str_t key = {"", 0};
    wf_pb_rd_t val = {0};
    bool has_val = false;
    int rc;
    while ((rc = wf_pb_next(r, &f)) > 0) {
        if (f.num == 1 && wf_pb_bytes(r, &f, &key) != 0) {
            return pb_invalid(o, r, "attribute key");
        }
        if (f.num == 2) {
            if (wf_pb_sub(r, &f, &val) != 0) {
                return pb_invalid(o, r, "attribute value");
            }
            has_val = true;
        }
    }
    if (rc < 0) {
        return pb_invalid(o, r, "attribute");
    }
    if (!wf_utf8_valid(key.p, key.len)) {
        return invalid(o, "attribute key is not valid UTF-8");
    }
    a->key = key;
    a->value = (wf_str_t){"", 0};
    if (!has_val) {
        return 0;
    }
    /* The common case, one string_value field, needs no copy. */
    wf_pb_rd_t peek = val;
    wf_pb_field_t g;
    if (wf_pb_next(&peek, &g) > 0 && g.num == 1 && g.wire == WF_PB_LEN && wf_pb_done(&peek)) {
        if (!wf_utf8_valid((const char *)g.p, g.len)) {
            return invalid(o, "attribute %.*s: value is not valid UTF-8",
                           (int)(key.len > 64 ? 64 : key.len), key.p);
        }
        a->value = (wf_str_t){(const char *)g.p, g.len};
        return 0;
    }
    wf_buf_t out = WF_BUF_INIT;
    rc = pb_any_render(o, &val, &out, false, 0);
    if (rc == 0) {
        rc = arena_str(o, out.data, out.len, &a->value);
    }
    wf_buf_free(&out);
    return rc;
}

static int pb_point(otlp_t *o, wf_pb_rd_t *r, char kind, point_t *p)
{
    /* Field numbers of attributes and flags differ between the point types. */
    uint32_t f_attrs = kind == 'h' ? 9 : 7, f_flags = kind == 'h' ? 10 : 8;
    memset(p, 0, sizeof(*p));
    o->npattrs = 0;
    wf_pb_field_t f;
    int rc;
    uint64_t u;
    uint32_t flags = 0;
    size_t nb = 0, nbo = 0, nq = 0;
    while ((rc = wf_pb_next(r, &f)) > 0) {
        if (f.num == f_attrs) {
            wf_pb_rd_t sub;
            attr_t a;
            if (wf_pb_sub(r, &f, &sub) != 0) {
                return pb_invalid(o, r, "data point");
            }
            if ((rc = pb_keyvalue(o, &sub, &a)) != 0) {
                return rc;
            }
            if ((rc = add_attr(o, &o->pattrs, &o->npattrs, &o->cap_pattrs, a.key, a.value)) != 0) {
                return rc;
            }
            continue;
        }
        if (f.num == f_flags) {
            if (wf_pb_uint32(r, &f, &flags) != 0) {
                return pb_invalid(o, r, "data point");
            }
            continue;
        }
        switch (f.num) {
        case 3:
            if (wf_pb_fixed64(r, &f, &u) != 0) {
                return pb_invalid(o, r, "data point");
            }
            p->ts_ms = (int64_t)(u / 1000000);
            break;
        case 4:
            if (kind == 'n') {
                rc = wf_pb_double(r, &f, &p->value);
            } else {
                rc = wf_pb_fixed64(r, &f, &p->count);
            }
            if (rc != 0) {
                return pb_invalid(o, r, "data point");
            }
            break;
        case 5:
            if (kind != 'n') {
                if (wf_pb_double(r, &f, &p->sum) != 0) {
                    return pb_invalid(o, r, "data point");
                }
                p->has_sum = true;
            }
            break;
        case 6:
            if (kind == 'n') {
                int64_t iv;
                if (wf_pb_sfixed64(r, &f, &iv) != 0) {
                    return pb_invalid(o, r, "data point");
                }
                p->value = (double)iv;
            } else if (kind == 'h') {
                wf_pb_rep_t it;
                if (wf_pb_rep_init(r, &f, WF_PB_I64, &it) != 0) {
                    return pb_invalid(o, r, "bucket_counts");
                }
                if (grow_arr((void **)&o->buckets, &o->cap_buckets, nb + wf_pb_rep_count(&it),
                             sizeof(uint64_t), MAX_BUCKETS) != 0) {
                    return too_large(o, "more than 4096 buckets");
                }
                while ((rc = wf_pb_rep_next(&it, &u)) > 0) {
                    o->buckets[nb++] = u;
                }
                if (rc < 0) {
                    return pb_invalid(o, r, "bucket_counts");
                }
            } else {
                wf_pb_rd_t sub;
                double q = 0, v = 0;
                if (wf_pb_sub(r, &f, &sub) != 0) {
                    return pb_invalid(o, r, "quantile_values");
                }
                wf_pb_field_t g;
                while ((rc = wf_pb_next(&sub, &g)) > 0) {
                    if ((g.num == 1 && wf_pb_double(&sub, &g, &q) != 0) ||
                        (g.num == 2 && wf_pb_double(&sub, &g, &v) != 0)) {
                        return pb_invalid(o, &sub, "quantile_values");
                    }
                }
                if (rc < 0) {
                    return pb_invalid(o, &sub, "quantile_values");
                }
                if (grow_arr((void **)&o->qs, &o->cap_qs, nq + 1, sizeof(double), MAX_BUCKETS) !=
                        0 ||
                    wf_realloc_checked((void **)&o->qvs, o->cap_qs, sizeof(double), 0) != 0) {
                    return too_large(o, "more than 4096 quantiles");
                }
                o->qs[nq] = q;
                o->qvs[nq] = v;
                nq++;
            }
            break;
        case 7:
            if (kind == 'h') {
                wf_pb_rep_t it;
                if (wf_pb_rep_init(r, &f, WF_PB_I64, &it) != 0) {
                    return pb_invalid(o, r, "explicit_bounds");
                }
                if (grow_arr((void **)&o->bounds, &o->cap_bounds, nbo + wf_pb_rep_count(&it),
                             sizeof(double), MAX_BUCKETS) != 0) {
                    return too_large(o, "more than 4096 buckets");
                }
                while ((rc = wf_pb_rep_next(&it, &u)) > 0) {
                    o->bounds[nbo++] = wf_pb_bits_double(u);
                }
                if (rc < 0) {
                    return pb_invalid(o, r, "explicit_bounds");
                }
            }
            break;
        default:
            break;
        }
    }
    if (rc < 0) {
        return pb_invalid(o, r, "data point");
    }
    p->attrs = o->pattrs;
    p->nattrs = o->npattrs;
    p->stale = (flags & 1) != 0;
    p->buckets = o->buckets;
    p->nbuckets = nb;
    p->bounds = o->bounds;
    p->nbounds = nbo;
    p->quantiles = o->qs;
    p->qvalues = o->qvs;
    p->nq = nq;
    return 0;
}

static int pb_metric(otlp_t *o, wf_pb_rd_t *r)
{
    wf_pb_field_t f, data = {0};
    wf_str_t name = {"", 0}, desc = {"", 0}, unit = {"", 0};
    char data_kind = 0;
    int rc;
    while ((rc = wf_pb_next(r, &f)) > 0) {
        switch (f.num) {
        case 1:
            rc = wf_pb_bytes(r, &f, &name);
            break;
        case 2:
            rc = wf_pb_bytes(r, &f, &desc);
            break;
        case 3:
            rc = wf_pb_bytes(r, &f, &unit);
            break;
        case 5:
        case 7:
        case 9:
        case 10:
        case 11:
            if (f.wire != WF_PB_LEN) {
                return invalid(o, "protobuf: metric: wrong wire type for field at offset %zu",
                               f.off);
            }
            data = f;
            data_kind = f.num == 5    ? 'g'
                        : f.num == 7  ? 's'
                        : f.num == 9  ? 'h'
                        : f.num == 10 ? 'e'
                                      : 'S';
            break;
        default:
            break;
        }
        if (rc < 0) {
            return pb_invalid(o, r, "metric");
        }
    }
    if (rc < 0) {
        return pb_invalid(o, r, "metric");
    }
    if (data_kind == 0) {
        return 0;
    }
    /* First the data message's own fields (temporality, monotonicity), then its points. */
    wf_pb_rd_t d, pts;
    if (wf_pb_sub(r, &data, &d) != 0) {
        return pb_invalid(o, r, "metric");
    }
    int64_t temporality = 0;
    bool monotonic = false;
    size_t npoints = 0;
    pts = d;
    while ((rc = wf_pb_next(&d, &f)) > 0) {
        if (f.num == 1) {
            if (f.wire != WF_PB_LEN) {
                return invalid(o, "protobuf: data_points: wrong wire type at offset %zu", f.off);
            }
            npoints++;
        } else if (f.num == 2 && data_kind != 'g' && data_kind != 'S') {
            if (wf_pb_int64(&d, &f, &temporality) != 0) {
                return pb_invalid(o, &d, "aggregation_temporality");
            }
        } else if (f.num == 3 && data_kind == 's') {
            if (wf_pb_bool(&d, &f, &monotonic) != 0) {
                return pb_invalid(o, &d, "is_monotonic");
            }
        }
    }
    if (rc < 0) {
        return pb_invalid(o, &d, "metric data");
    }
    metric_t m;
    if ((rc = metric_begin(o, &m, name, desc, unit, data_kind, temporality, monotonic)) != 0) {
        return rc;
    }
    if (m.kind == 0) {
        drop_points(o, npoints, m.drop_why ? m.drop_why : "unsupported", name);
        return 0;
    }
    char pkind = data_kind == 'h' ? 'h' : data_kind == 'S' ? 's' : 'n';
    while ((rc = wf_pb_next(&pts, &f)) > 0) {
        if (f.num != 1) {
            continue;
        }
        wf_pb_rd_t pr;
        point_t p;
        if (wf_pb_sub(&pts, &f, &pr) != 0) {
            return pb_invalid(o, &pts, "data point");
        }
        if ((rc = pb_point(o, &pr, pkind, &p)) != 0) {
            return rc;
        }
        if ((rc = emit_point(o, &m, &p, name)) != 0) {
            return rc;
        }
    }
    return rc < 0 ? pb_invalid(o, &pts, "metric data") : 0;
}

static int pb_decode(otlp_t *o, const uint8_t *body, size_t len)
{
    wf_pb_rd_t r, rm;
    wf_pb_field_t f, g;
    wf_pb_init(&r, body, len);
    int rc;
    while ((rc = wf_pb_next(&r, &f)) > 0) {
        if (f.num != 1) {
            continue;
        }
        if (wf_pb_sub(&r, &f, &rm) != 0) {
            return pb_invalid(o, &r, "resource_metrics");
        }
        /* The resource first, wherever it sits, so that job / instance are known. */
        wf_pb_rd_t scan = rm;
        while ((rc = wf_pb_next(&scan, &g)) > 0) {
            if (g.num != 1) {
                continue;
            }
            wf_pb_rd_t res, kv;
            wf_pb_field_t h;
            if (wf_pb_sub(&scan, &g, &res) != 0) {
                return pb_invalid(o, &scan, "resource");
            }
            while ((rc = wf_pb_next(&res, &h)) > 0) {
                if (h.num != 1) {
                    continue;
                }
                attr_t a;
                if (wf_pb_sub(&res, &h, &kv) != 0) {
                    return pb_invalid(o, &res, "resource attribute");
                }
                if ((rc = pb_keyvalue(o, &kv, &a)) != 0 ||
                    (rc = add_attr(o, &o->rattrs, &o->nrattrs, &o->cap_rattrs, a.key, a.value)) !=
                        0) {
                    return rc;
                }
            }
            if (rc < 0) {
                return pb_invalid(o, &res, "resource");
            }
        }
        if (rc < 0) {
            return pb_invalid(o, &scan, "resource_metrics");
        }
        if ((rc = resource_identity(o)) != 0) {
            return rc;
        }
        while ((rc = wf_pb_next(&rm, &g)) > 0) {
            if (g.num != 2) {
                continue;
            }
            wf_pb_rd_t sm, mr;
            wf_pb_field_t h;
            if (wf_pb_sub(&rm, &g, &sm) != 0) {
                return pb_invalid(o, &rm, "scope_metrics");
            }
            while ((rc = wf_pb_next(&sm, &h)) > 0) {
                if (h.num != 2) {
                    continue;
                }
                if (wf_pb_sub(&sm, &h, &mr) != 0) {
                    return pb_invalid(o, &sm, "metrics");
                }
                if ((rc = pb_metric(o, &mr)) != 0) {
                    return rc;
                }
            }
            if (rc < 0) {
                return pb_invalid(o, &sm, "scope_metrics");
            }
        }
        if (rc < 0) {
            return pb_invalid(o, &rm, "resource_metrics");
        }
        if ((rc = resource_end(o)) != 0) {
            return rc;
        }
    }
    return rc < 0 ? pb_invalid(o, &r, "request") : 0;
}

/* ---- JSON ---------------------------------------------------------------------------------- */

/* The shared readers (col_otlp_json.h) with this decoder's error buffer. */

static int jarray(otlp_t *o, json_t *obj, const char *camel, const char *snake, json_t **out)
{
    return col_oj_array(obj, camel, snake, out, o->err, o->errlen);
}

static int jstring(otlp_t *o, json_t *obj, const char *camel, const char *snake, wf_str_t *out)
{
    return col_oj_string(obj, camel, snake, out, o->err, o->errlen);
}

static int jint(otlp_t *o, json_t *v, const char *what, bool is_unsigned, int64_t *si, uint64_t *ui)
{
    return col_oj_int(v, what, is_unsigned, si, ui, o->err, o->errlen);
}

static int jint_field(otlp_t *o, json_t *obj, const char *camel, const char *snake,
                      bool is_unsigned, int64_t *si, uint64_t *ui, bool *present)
{
    return col_oj_int_field(obj, camel, snake, is_unsigned, si, ui, present, o->err, o->errlen);
}

static int jdouble(otlp_t *o, json_t *v, const char *what, double *out)
{
    return col_oj_double(v, what, out, o->err, o->errlen);
}

static int jdouble_field(otlp_t *o, json_t *obj, const char *camel, const char *snake, double *out,
                         bool *present)
{
    json_t *v = col_oj_get(obj, camel, snake);
    *out = 0;
    if (present != NULL) {
        *present = v != NULL;
    }
    return v == NULL ? 0 : jdouble(o, v, camel, out);
}

/* Enums: numbers or their names. */
static int jenum(otlp_t *o, json_t *obj, const char *camel, const char *snake,
                 const char *const *names, size_t nnames, int64_t *out)
{
    json_t *v = col_oj_get(obj, camel, snake);
    *out = 0;
    if (v == NULL) {
        return 0;
    }
    if (json_is_string(v)) {
        for (size_t i = 0; i < nnames; i++) {
            if (strcmp(json_string_value(v), names[i]) == 0) {
                *out = (int64_t)i;
                return 0;
            }
        }
        return invalid(o, "json: unknown %s %s", camel, json_string_value(v));
    }
    uint64_t u;
    return jint(o, v, camel, false, out, &u);
}

static int jbool_field(otlp_t *o, json_t *obj, const char *camel, const char *snake, bool *out)
{
    json_t *v = col_oj_get(obj, camel, snake);
    *out = false;
    if (v == NULL) {
        return 0;
    }
    if (!json_is_boolean(v)) {
        return invalid(o, "json: %s is not a boolean", camel);
    }
    *out = json_is_true(v);
    return 0;
}

static int j_any_render(otlp_t *o, json_t *any, wf_buf_t *out, bool nested, int depth);

static int j_render_list(otlp_t *o, json_t *list, wf_buf_t *out, bool kv, int depth)
{
    json_t *values;
    int rc = jarray(o, list, "values", NULL, &values);
    if (rc != 0) {
        return rc;
    }
    wf_buf_putc(out, kv ? '{' : '[');
    for (size_t i = 0; values != NULL && i < json_array_size(values); i++) {
        json_t *e = json_array_get(values, i);
        if (i > 0) {
            wf_buf_putc(out, ',');
        }
        if (!json_is_object(e)) {
            return invalid(o, "json: attribute value list element is not an object");
        }
        if (kv) {
            wf_str_t key;
            if ((rc = jstring(o, e, "key", NULL, &key)) != 0) {
                return rc;
            }
            col_json_str(out, key.p, key.len);
            wf_buf_putc(out, ':');
            json_t *val = col_oj_get(e, "value", NULL);
            if (val == NULL) {
                wf_buf_puts(out, "null");
                continue;
            }
            rc = j_any_render(o, val, out, true, depth + 1);
        } else {
            rc = j_any_render(o, e, out, true, depth + 1);
        }
        if (rc != 0) {
            return rc;
        }
    }
    wf_buf_putc(out, kv ? '}' : ']');
    return 0;
}

static int j_any_render(otlp_t *o, json_t *any, wf_buf_t *out, bool nested, int depth)
{
    if (depth > MAX_VALUE_DEPTH) {
        return invalid(o, "attribute value nested deeper than %d levels", MAX_VALUE_DEPTH);
    }
    if (!json_is_object(any)) {
        return invalid(o, "json: attribute value is not an object");
    }
    json_t *v;
    int64_t i;
    uint64_t u;
    double d;
    int rc;
    if ((v = col_oj_get(any, "stringValue", "string_value")) != NULL) {
        if (!json_is_string(v)) {
            return invalid(o, "json: stringValue is not a string");
        }
        if (nested) {
            col_json_str(out, json_string_value(v), json_string_length(v));
        } else {
            wf_buf_append(out, json_string_value(v), json_string_length(v));
        }
    } else if ((v = col_oj_get(any, "boolValue", "bool_value")) != NULL) {
        if (!json_is_boolean(v)) {
            return invalid(o, "json: boolValue is not a boolean");
        }
        wf_buf_puts(out, json_is_true(v) ? "true" : "false");
    } else if ((v = col_oj_get(any, "intValue", "int_value")) != NULL) {
        if ((rc = jint(o, v, "intValue", false, &i, &u)) != 0) {
            return rc;
        }
        wf_buf_printf(out, "%" PRId64, i);
    } else if ((v = col_oj_get(any, "doubleValue", "double_value")) != NULL) {
        if ((rc = jdouble(o, v, "doubleValue", &d)) != 0) {
            return rc;
        }
        if (nested) {
            json_double(out, d);
        } else {
            col_fmt_float(out, d);
        }
    } else if ((v = col_oj_get(any, "arrayValue", "array_value")) != NULL) {
        if (!json_is_object(v)) {
            return invalid(o, "json: arrayValue is not an object");
        }
        return j_render_list(o, v, out, false, depth);
    } else if ((v = col_oj_get(any, "kvlistValue", "kvlist_value")) != NULL) {
        if (!json_is_object(v)) {
            return invalid(o, "json: kvlistValue is not an object");
        }
        return j_render_list(o, v, out, true, depth);
    } else if ((v = col_oj_get(any, "bytesValue", "bytes_value")) != NULL) {
        /* Already base64 in JSON. */
        if (!json_is_string(v)) {
            return invalid(o, "json: bytesValue is not a string");
        }
        if (nested) {
            col_json_str(out, json_string_value(v), json_string_length(v));
        } else {
            wf_buf_append(out, json_string_value(v), json_string_length(v));
        }
    } else if (nested) {
        wf_buf_puts(out, "null");
    }
    return 0;
}

/* Attributes of a JSON list into arr (strings copied into the arena: the JSON tree goes
 * away before the samples are written). */
static int j_attrs(otlp_t *o, json_t *list, attr_t **arr, size_t *n, size_t *cap)
{
    for (size_t i = 0; list != NULL && i < json_array_size(list); i++) {
        json_t *kv = json_array_get(list, i);
        if (!json_is_object(kv)) {
            return invalid(o, "json: attribute is not an object");
        }
        wf_str_t key, k2, v2;
        int rc = jstring(o, kv, "key", NULL, &key);
        if (rc != 0) {
            return rc;
        }
        json_t *val = col_oj_get(kv, "value", NULL);
        wf_buf_reset(&o->tmp);
        if (val != NULL && (rc = j_any_render(o, val, &o->tmp, false, 0)) != 0) {
            return rc;
        }
        if ((rc = arena_str(o, o->tmp.data ? (const char *)o->tmp.data : "", o->tmp.len, &v2)) !=
                0 ||
            (rc = arena_str(o, key.p, key.len, &k2)) != 0 ||
            (rc = add_attr(o, arr, n, cap, k2, v2)) != 0) {
            return rc;
        }
    }
    return 0;
}

static int j_point(otlp_t *o, json_t *jp, char kind, point_t *p)
{
    memset(p, 0, sizeof(*p));
    o->npattrs = 0;
    if (!json_is_object(jp)) {
        return invalid(o, "json: data point is not an object");
    }
    json_t *attrs, *arr;
    int64_t si;
    uint64_t u;
    bool present;
    int rc = jarray(o, jp, "attributes", NULL, &attrs);
    if (rc == 0) {
        rc = j_attrs(o, attrs, &o->pattrs, &o->npattrs, &o->cap_pattrs);
    }
    if (rc == 0) {
        rc = jint_field(o, jp, "timeUnixNano", "time_unix_nano", true, &si, &u, NULL);
        p->ts_ms = (int64_t)(u / 1000000);
    }
    if (rc == 0) {
        rc = jint_field(o, jp, "flags", NULL, true, &si, &u, NULL);
        p->stale = (u & 1) != 0;
    }
    if (rc != 0) {
        return rc;
    }
    if (kind == 'n') {
        if ((rc = jdouble_field(o, jp, "asDouble", "as_double", &p->value, &present)) != 0) {
            return rc;
        }
        if (!present) {
            rc = jint_field(o, jp, "asInt", "as_int", false, &si, &u, &present);
            p->value = (double)si;
        }
    } else {
        rc = jint_field(o, jp, "count", NULL, true, &si, &p->count, NULL);
        if (rc == 0) {
            rc = jdouble_field(o, jp, "sum", NULL, &p->sum, &p->has_sum);
        }
    }
    if (rc != 0) {
        return rc;
    }
    if (kind == 'h') {
        if ((rc = jarray(o, jp, "bucketCounts", "bucket_counts", &arr)) != 0) {
            return rc;
        }
        size_t n = arr ? json_array_size(arr) : 0;
        if (grow_arr((void **)&o->buckets, &o->cap_buckets, n, sizeof(uint64_t), MAX_BUCKETS) !=
            0) {
            return too_large(o, "more than 4096 buckets");
        }
        for (size_t i = 0; i < n; i++) {
            if ((rc = jint(o, json_array_get(arr, i), "bucketCounts", true, &si, &o->buckets[i])) !=
                0) {
                return rc;
            }
        }
        p->buckets = o->buckets;
        p->nbuckets = n;
        if ((rc = jarray(o, jp, "explicitBounds", "explicit_bounds", &arr)) != 0) {
            return rc;
        }
        n = arr ? json_array_size(arr) : 0;
        if (grow_arr((void **)&o->bounds, &o->cap_bounds, n, sizeof(double), MAX_BUCKETS) != 0) {
            return too_large(o, "more than 4096 buckets");
        }
        for (size_t i = 0; i < n; i++) {
            if ((rc = jdouble(o, json_array_get(arr, i), "explicitBounds", &o->bounds[i])) != 0) {
                return rc;
            }
        }
        p->bounds = o->bounds;
        p->nbounds = n;
    } else if (kind == 's') {
        if ((rc = jarray(o, jp, "quantileValues", "quantile_values", &arr)) != 0) {
            return rc;
        }
        size_t n = arr ? json_array_size(arr) : 0;
        if (grow_arr((void **)&o->qs, &o->cap_qs, n, sizeof(double), MAX_BUCKETS) != 0 ||
            wf_realloc_checked((void **)&o->qvs, o->cap_qs ? o->cap_qs : 1, sizeof(double), 0) !=
                0) {
            return too_large(o, "more than 4096 quantiles");
        }
        for (size_t i = 0; i < n; i++) {
            json_t *q = json_array_get(arr, i);
            if (!json_is_object(q)) {
                return invalid(o, "json: quantile value is not an object");
            }
            if ((rc = jdouble_field(o, q, "quantile", NULL, &o->qs[i], NULL)) != 0 ||
                (rc = jdouble_field(o, q, "value", NULL, &o->qvs[i], NULL)) != 0) {
                return rc;
            }
        }
        p->quantiles = o->qs;
        p->qvalues = o->qvs;
        p->nq = n;
    }
    p->attrs = o->pattrs;
    p->nattrs = o->npattrs;
    return 0;
}

static const char *const temporality_names[] = {"AGGREGATION_TEMPORALITY_UNSPECIFIED",
                                                "AGGREGATION_TEMPORALITY_DELTA",
                                                "AGGREGATION_TEMPORALITY_CUMULATIVE"};

static int j_metric(otlp_t *o, json_t *jm)
{
    if (!json_is_object(jm)) {
        return invalid(o, "json: metric is not an object");
    }
    wf_str_t name, desc, unit;
    int rc = jstring(o, jm, "name", NULL, &name);
    if (rc == 0) {
        rc = jstring(o, jm, "description", NULL, &desc);
    }
    if (rc == 0) {
        rc = jstring(o, jm, "unit", NULL, &unit);
    }
    if (rc != 0) {
        return rc;
    }
    static const struct {
        const char *camel, *snake;
        char kind;
    } kinds[] = {
        {"gauge", NULL, 'g'},     {"sum", NULL, 's'},
        {"histogram", NULL, 'h'}, {"exponentialHistogram", "exponential_histogram", 'e'},
        {"summary", NULL, 'S'},
    };
    json_t *data = NULL;
    char data_kind = 0;
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        json_t *d = col_oj_get(jm, kinds[i].camel, kinds[i].snake);
        if (d != NULL) {
            if (!json_is_object(d)) {
                return invalid(o, "json: %s is not an object", kinds[i].camel);
            }
            data = d;
            data_kind = kinds[i].kind;
        }
    }
    if (data == NULL) {
        return 0;
    }
    int64_t temporality = 0;
    bool monotonic = false;
    json_t *points;
    if ((rc = jenum(o, data, "aggregationTemporality", "aggregation_temporality", temporality_names,
                    3, &temporality)) != 0 ||
        (rc = jbool_field(o, data, "isMonotonic", "is_monotonic", &monotonic)) != 0 ||
        (rc = jarray(o, data, "dataPoints", "data_points", &points)) != 0) {
        return rc;
    }
    /* The JSON tree is freed before the write: the metadata strings must outlive it. */
    wf_str_t n2, d2, u2;
    if ((rc = arena_str(o, name.p, name.len, &n2)) != 0 ||
        (rc = arena_str(o, desc.p, desc.len, &d2)) != 0 ||
        (rc = arena_str(o, unit.p, unit.len, &u2)) != 0) {
        return rc;
    }
    metric_t m;
    if ((rc = metric_begin(o, &m, n2, d2, u2, data_kind, temporality, monotonic)) != 0) {
        return rc;
    }
    size_t npoints = points ? json_array_size(points) : 0;
    if (m.kind == 0) {
        drop_points(o, npoints, m.drop_why ? m.drop_why : "unsupported", n2);
        return 0;
    }
    char pkind = data_kind == 'h' ? 'h' : data_kind == 'S' ? 's' : 'n';
    for (size_t i = 0; i < npoints; i++) {
        point_t p;
        if ((rc = j_point(o, json_array_get(points, i), pkind, &p)) != 0 ||
            (rc = emit_point(o, &m, &p, n2)) != 0) {
            return rc;
        }
    }
    return 0;
}

static int j_decode(otlp_t *o, const uint8_t *body, size_t len)
{
    json_error_t jerr;
    json_t *root = json_loadb((const char *)body, len, 0, &jerr);
    if (root == NULL) {
        return invalid(o, "json: %s at line %d column %d", jerr.text, jerr.line, jerr.column);
    }
    int rc = 0;
    json_t *rms;
    if (!json_is_object(root)) {
        rc = invalid(o, "json: the request is not an object");
        goto out;
    }
    if ((rc = jarray(o, root, "resourceMetrics", "resource_metrics", &rms)) != 0) {
        goto out;
    }
    for (size_t i = 0; rms != NULL && i < json_array_size(rms); i++) {
        json_t *rm = json_array_get(rms, i), *res, *attrs, *sms;
        if (!json_is_object(rm)) {
            rc = invalid(o, "json: resourceMetrics element is not an object");
            goto out;
        }
        res = col_oj_get(rm, "resource", NULL);
        if (res != NULL) {
            if (!json_is_object(res)) {
                rc = invalid(o, "json: resource is not an object");
                goto out;
            }
            if ((rc = jarray(o, res, "attributes", NULL, &attrs)) != 0 ||
                (rc = j_attrs(o, attrs, &o->rattrs, &o->nrattrs, &o->cap_rattrs)) != 0) {
                goto out;
            }
        }
        if ((rc = resource_identity(o)) != 0 ||
            (rc = jarray(o, rm, "scopeMetrics", "scope_metrics", &sms)) != 0) {
            goto out;
        }
        for (size_t j = 0; sms != NULL && j < json_array_size(sms); j++) {
            json_t *sm = json_array_get(sms, j), *metrics;
            if (!json_is_object(sm)) {
                rc = invalid(o, "json: scopeMetrics element is not an object");
                goto out;
            }
            if ((rc = jarray(o, sm, "metrics", NULL, &metrics)) != 0) {
                goto out;
            }
            for (size_t k = 0; metrics != NULL && k < json_array_size(metrics); k++) {
                if ((rc = j_metric(o, json_array_get(metrics, k))) != 0) {
                    goto out;
                }
            }
        }
        if ((rc = resource_end(o)) != 0) {
            goto out;
        }
    }
out:
    json_decref(root);
    return rc;
}

/* ---- entry points ---------------------------------------------------------------------------- */

int col_otlp_metrics_decode(const uint8_t *body, size_t len, bool json, wf_arena_t *arena,
                            col_sset_t *set, col_otlp_stats_t *st, char *err, size_t errlen)
{
    otlp_t o;
    memset(&o, 0, sizeof(o));
    memset(st, 0, sizeof(*st));
    o.set = set;
    o.arena = arena;
    o.st = st;
    o.err = err;
    o.errlen = errlen;
    err[0] = '\0';
    int rc = json ? j_decode(&o, body, len) : pb_decode(&o, body, len);
    ctx_free(&o);
    return rc;
}

/* google.rpc.Status{code = 1, message = 2} for errors, in the request's encoding. */
static void answer_error(col_resp_t *resp, unsigned status, bool json, const char *msg)
{
    resp->status = status;
    wf_buf_reset(&resp->body);
    if (json) {
        resp->content_type = "application/json";
        wf_buf_puts(&resp->body, "{\"code\":3,\"message\":");
        col_json_str(&resp->body, msg, strlen(msg));
        wf_buf_putc(&resp->body, '}');
    } else {
        resp->content_type = "application/x-protobuf";
        wf_buf_put_uvarint(&resp->body, (1 << 3) | 0);
        wf_buf_put_uvarint(&resp->body, 3); /* INVALID_ARGUMENT */
        wf_buf_put_uvarint(&resp->body, (2 << 3) | 2);
        wf_buf_put_uvarint(&resp->body, strlen(msg));
        wf_buf_puts(&resp->body, msg);
    }
}

static void answer_ok(col_resp_t *resp, bool json, size_t rejected, const char *msg)
{
    resp->status = 200;
    wf_buf_reset(&resp->body);
    if (json) {
        resp->content_type = "application/json";
        if (rejected == 0) {
            wf_buf_puts(&resp->body, "{}");
            return;
        }
        wf_buf_printf(&resp->body, "{\"partialSuccess\":{\"rejectedDataPoints\":\"%zu\",",
                      rejected);
        wf_buf_puts(&resp->body, "\"errorMessage\":");
        col_json_str(&resp->body, msg, strlen(msg));
        wf_buf_puts(&resp->body, "}}");
        return;
    }
    resp->content_type = "application/x-protobuf";
    if (rejected == 0) {
        return;
    }
    wf_buf_t ps = WF_BUF_INIT;
    wf_buf_put_uvarint(&ps, (1 << 3) | 0);
    wf_buf_put_uvarint(&ps, rejected);
    wf_buf_put_uvarint(&ps, (2 << 3) | 2);
    wf_buf_put_uvarint(&ps, strlen(msg));
    wf_buf_puts(&ps, msg);
    wf_buf_put_uvarint(&resp->body, (1 << 3) | 2);
    wf_buf_put_uvarint(&resp->body, ps.len);
    wf_buf_append(&resp->body, ps.data, ps.len);
    wf_buf_free(&ps);
}

void col_otlp_metrics_serve(col_writer_t *wr, const char *content_type, col_req_t *req,
                            col_resp_t *resp)
{
    bool json;
    if (col_otlp_content_type(content_type, &json, resp) != 0) {
        return;
    }
    wf_arena_t own;
    wf_arena_t *arena = req->arena;
    if (arena == NULL) {
        wf_arena_init(&own, 65536, 0);
        arena = &own;
    }
    col_sset_t set;
    memset(&set, 0, sizeof(set));
    col_otlp_stats_t st;
    char err[512];
    int rc =
        col_otlp_metrics_decode(req->body, req->body_len, json, arena, &set, &st, err, sizeof(err));
    if (rc != 0) {
        WF_LOG_RL(WF_WARN, 1, "otlp", "bad metrics request", "err=\"%s\"", err);
        answer_error(resp, rc == WF_E_LIMIT ? 413 : 400, json, err);
        goto out;
    }
    col_write_t w;
    memset(&w, 0, sizeof(w));
    if (set.nsamples > 0 || set.nmeta > 0) {
        rc = col_sset_submit(wr, &set, &w);
        if (rc == ST_E_BATCH_LIMIT) {
            answer_error(resp, 413, json, "request too large for one store batch");
            goto out;
        }
        if (rc != 0) {
            if (rc != COL_E_BUSY) {
                WF_LOG_RL(WF_ERROR, 1, "otlp", "store write failed", "err=\"%s\"",
                          col_writer_strerror(rc));
            }
            snprintf(err, sizeof(err), "store write failed: %s", col_writer_strerror(rc));
            unsigned status = col_writer_http_status(rc);
            answer_error(resp, status, json, err);
            if (status == 503) {
                col_resp_retry_after(resp);
            }
            goto out;
        }
    }
    size_t rejected = st.dropped + w.rejected;
    char msg[600];
    if (st.dropped > 0 && w.rejected > 0) {
        snprintf(msg, sizeof(msg), "%zu data points dropped: %s; %zu samples refused: %s",
                 st.dropped, st.drop_msg, w.rejected, w.reject_msg);
    } else if (st.dropped > 0) {
        snprintf(msg, sizeof(msg), "%zu data points dropped: %s", st.dropped, st.drop_msg);
    } else if (w.rejected > 0) {
        snprintf(msg, sizeof(msg), "%zu samples refused: %s", w.rejected, w.reject_msg);
    } else {
        msg[0] = '\0';
    }
    answer_ok(resp, json, rejected, msg);
out:
    col_sset_free(&set);
    if (arena == &own) {
        wf_arena_free(&own);
    }
}

void col_otlp_metrics_handler(void *writer, col_req_t *req, col_resp_t *resp)
{
    col_otlp_metrics_serve(writer, col_req_header(req, "Content-Type"), req, resp);
}
