/*
 * col_remote_write.c - Prometheus remote_write 1.0 receiver and the push paths' sample set.
 * See col_remote_write.h.
 *
 * Schema (prompb/types.proto, remote.proto), by field number:
 *   WriteRequest   { repeated TimeSeries timeseries = 1; repeated MetricMetadata metadata = 3; }
 *   TimeSeries     { repeated Label labels = 1; repeated Sample samples = 2;
 *                    repeated Exemplar exemplars = 3; repeated Histogram histograms = 4; }
 *   Label          { string name = 1; string value = 2; }
 *   Sample         { double value = 1; int64 timestamp = 2; }
 *   MetricMetadata { MetricType type = 1; string metric_family_name = 2; string help = 4;
 *                    string unit = 5; }
 */
#include "col_remote_write.h"

#include "wf_alloc.h"
#include "wf_err.h"
#include "wf_log.h"
#include "wf_pb.h"

#include <errno.h>
#include <snappy-c.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define COL_RW_NAME_MEMORY 64

/* ---- sample set --------------------------------------------------------------------------- */

void col_sset_free(col_sset_t *s)
{
    wf_free(s->labels);
    wf_free(s->series);
    wf_free(s->ts);
    wf_free(s->v);
    wf_free(s->meta);
    memset(s, 0, sizeof(*s));
}

/* Make room for one more element in an array of cap elements of size sz (at most limit). */
static int grow(void **arr, size_t *cap, size_t n, size_t sz, size_t limit)
{
    if (n < *cap) {
        return 0;
    }
    if (n >= limit) {
        return WF_E_LIMIT;
    }
    size_t ncap = *cap ? *cap * 2 : 64;
    if (ncap > limit) {
        ncap = limit;
    }
    if (wf_realloc_checked(arr, ncap, sz, 0) != 0) {
        return WF_E_LIMIT;
    }
    *cap = ncap;
    return 0;
}

/* Grow arr to exactly n elements when it is smaller (n already capped by the caller). */
static void reserve(void **arr, size_t *cap, size_t n, size_t sz)
{
    if (n > *cap && wf_realloc_checked(arr, n, sz, 0) == 0) {
        *cap = n;
    }
}

void col_sset_reserve(col_sset_t *s, size_t labels, size_t samples, size_t series, size_t meta)
{
    labels = labels < COL_SSET_MAX_LABELS ? labels : COL_SSET_MAX_LABELS;
    samples = samples < COL_SSET_MAX_SAMPLES ? samples : COL_SSET_MAX_SAMPLES;
    series = series < COL_SSET_MAX_SAMPLES ? series : COL_SSET_MAX_SAMPLES;
    meta = meta < COL_SSET_MAX_SAMPLES ? meta : COL_SSET_MAX_SAMPLES;
    reserve((void **)&s->labels, &s->cap_labels, labels, sizeof(st_label_t));
    reserve((void **)&s->series, &s->cap_series, series, sizeof(col_sset_series_t));
    reserve((void **)&s->meta, &s->cap_meta, meta, sizeof(col_sset_meta_t));
    if (samples > s->cap_samples) {
        size_t cap = s->cap_samples;
        reserve((void **)&s->ts, &cap, samples, sizeof(int64_t));
        if (cap == samples && wf_realloc_checked((void **)&s->v, samples, sizeof(double), 0) == 0) {
            s->cap_samples = samples;
        }
    }
}

void col_sset_begin(col_sset_t *s)
{
    s->cur_label_off = s->nlabels;
    s->cur_sample_off = s->nsamples;
}

int col_sset_label(col_sset_t *s, wf_str_t name, wf_str_t value)
{
    if (s->nlabels - s->cur_label_off >= COL_SSET_MAX_SERIES_LABELS) {
        return WF_E_LIMIT;
    }
    int rc = grow((void **)&s->labels, &s->cap_labels, s->nlabels, sizeof(st_label_t),
                  COL_SSET_MAX_LABELS);
    if (rc != 0) {
        return rc;
    }
    s->labels[s->nlabels++] = (st_label_t){name, value};
    return 0;
}

int col_sset_sample(col_sset_t *s, int64_t ts_ms, double v)
{
    if (s->nsamples >= s->cap_samples) {
        size_t cap = s->cap_samples;
        int rc = grow((void **)&s->ts, &cap, s->nsamples, sizeof(int64_t), COL_SSET_MAX_SAMPLES);
        if (rc != 0) {
            return rc;
        }
        if (wf_realloc_checked((void **)&s->v, cap, sizeof(double), 0) != 0) {
            return WF_E_LIMIT;
        }
        s->cap_samples = cap;
    }
    s->ts[s->nsamples] = ts_ms;
    s->v[s->nsamples] = v;
    s->nsamples++;
    return 0;
}

int col_sset_end(col_sset_t *s)
{
    size_t nl = s->nlabels - s->cur_label_off, ns = s->nsamples - s->cur_sample_off;
    if (ns == 0) {
        s->nlabels = s->cur_label_off;
        return 0;
    }
    /* At most one series per sample, so the sample limit bounds this array too. */
    int rc = grow((void **)&s->series, &s->cap_series, s->nseries, sizeof(col_sset_series_t),
                  COL_SSET_MAX_SAMPLES);
    if (rc != 0) {
        return rc;
    }
    s->series[s->nseries++] = (col_sset_series_t){s->cur_label_off, nl, s->cur_sample_off, ns};
    for (size_t i = s->cur_label_off; i < s->nlabels; i++) {
        s->label_bytes += s->labels[i].name.len + s->labels[i].value.len;
    }
    col_sset_begin(s);
    return 0;
}

int col_sset_metadata(col_sset_t *s, wf_str_t family, st_metric_type_t type, wf_str_t help,
                      wf_str_t unit)
{
    int rc = grow((void **)&s->meta, &s->cap_meta, s->nmeta, sizeof(col_sset_meta_t),
                  COL_SSET_MAX_SAMPLES);
    if (rc != 0) {
        return rc;
    }
    s->meta[s->nmeta++] = (col_sset_meta_t){family, help, unit, type};
    return 0;
}

bool col_metric_name_valid(wf_str_t n)
{
    if (n.len == 0) {
        return false;
    }
    for (size_t i = 0; i < n.len; i++) {
        unsigned char c = (unsigned char)n.p[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
                  (i > 0 && c >= '0' && c <= '9');
        if (!ok) {
            return false;
        }
    }
    return true;
}

/* Character classes of label names: 1 may start a name, 2 may follow. */
static const uint8_t name_class[256] = {
    ['0' ... '9'] = 2,
    ['A' ... 'Z'] = 3,
    ['a' ... 'z'] = 3,
    ['_'] = 3,
};

static bool label_name_valid(wf_str_t n)
{
    if (n.len == 0 || !(name_class[(unsigned char)n.p[0]] & 1)) {
        return false;
    }
    for (size_t i = 1; i < n.len; i++) {
        if (!(name_class[(unsigned char)n.p[i]] & 2)) {
            return false;
        }
    }
    return true;
}

/* UTF-8 validity with a fast path for ASCII, eight bytes at a time: label values are nearly
 * always ASCII, and this check runs for every label of every request. */
static bool utf8_valid(wf_str_t s)
{
    size_t i = 0;
    for (; i + 8 <= s.len; i += 8) {
        uint64_t w;
        memcpy(&w, s.p + i, 8);
        if (w & 0x8080808080808080ULL) {
            return wf_utf8_valid(s.p + i, s.len - i);
        }
    }
    for (; i < s.len; i++) {
        if ((unsigned char)s.p[i] >= 0x80) {
            return wf_utf8_valid(s.p + i, s.len - i);
        }
    }
    return true;
}

/* Print at most 64 bytes of s, with bytes that are not printable ASCII as \xNN. */
static void put_clipped(char *out, size_t cap, wf_str_t s)
{
    size_t o = 0;
    for (size_t i = 0; i < s.len && i < 64 && o + 5 < cap; i++) {
        unsigned char c = (unsigned char)s.p[i];
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
            out[o++] = (char)c;
        } else {
            o += (size_t)snprintf(out + o, cap - o, "\\x%02x", c);
        }
    }
    if (s.len > 64 && o + 4 < cap) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o < cap ? o : cap - 1] = '\0';
}

/* a < b in byte order, names being non-empty. Inline because it runs for every label and the
 * names differ within their first bytes. */
static inline bool name_less(wf_str_t a, wf_str_t b)
{
    size_t n = a.len < b.len ? a.len : b.len;
    for (size_t i = 0; i < n; i++) {
        if (a.p[i] != b.p[i]) {
            return (unsigned char)a.p[i] < (unsigned char)b.p[i];
        }
    }
    return a.len < b.len;
}

/*
 * col_sset_check_labels with a memory of the previous series' names (prev, *nprev; may be
 * NULL): a name equal to the one at the same position there is known valid. Senders repeat
 * the same names in the same order series after series, and comparing bytes is cheaper than
 * classifying them.
 */
static int check_labels(const st_label_t *l, size_t n, wf_str_t *prev, size_t *nprev, char *err,
                        size_t errlen)
{
    char a[400];
    bool sorted = true, any = false;
    for (size_t i = 0; i < n; i++) {
        bool known = prev != NULL && i < *nprev && wf_str_eq(prev[i], l[i].name);
        if (!known && !label_name_valid(l[i].name)) {
            put_clipped(a, sizeof(a), l[i].name);
            snprintf(err, errlen, "invalid label name \"%s\"", a);
            return -EINVAL;
        }
        if (!utf8_valid(l[i].value)) {
            put_clipped(a, sizeof(a), l[i].value);
            snprintf(err, errlen, "invalid UTF-8 in the value of label %.*s: \"%s\"",
                     (int)(l[i].name.len > 64 ? 64 : l[i].name.len), l[i].name.p, a);
            return -EINVAL;
        }
        any |= l[i].value.len > 0;
        if (i > 0 && sorted && !name_less(l[i - 1].name, l[i].name)) {
            sorted = false;
        }
        if (l[i].name.len == 8 && memcmp(l[i].name.p, "__name__", 8) == 0 &&
            !col_metric_name_valid(l[i].value)) {
            put_clipped(a, sizeof(a), l[i].value);
            snprintf(err, errlen, "invalid metric name \"%s\"", a);
            return -EINVAL;
        }
    }
    if (!any) {
        snprintf(err, errlen, "series without labels");
        return -EINVAL;
    }
    /* Prometheus sends labels sorted: strictly increasing names hold no duplicate. Anything
     * else gets the quadratic check (label counts are bounded). */
    for (size_t i = 1; i < n && !sorted; i++) {
        for (size_t j = 0; j < i; j++) {
            if (wf_str_eq(l[j].name, l[i].name)) {
                snprintf(err, errlen, "duplicate label name %.*s",
                         (int)(l[i].name.len > 64 ? 64 : l[i].name.len), l[i].name.p);
                return -EINVAL;
            }
        }
    }
    if (prev != NULL) {
        *nprev = n < COL_RW_NAME_MEMORY ? n : COL_RW_NAME_MEMORY;
        for (size_t i = 0; i < *nprev; i++) {
            prev[i] = l[i].name;
        }
    }
    return 0;
}

int col_sset_check_labels(const st_label_t *l, size_t n, char *err, size_t errlen)
{
    return check_labels(l, n, NULL, NULL, err, errlen);
}

/* Refusals that concern one sample (or its series) and leave the batch usable. */
static bool per_sample_error(int rc)
{
    switch (rc) {
    case ST_E_LABEL_NAME:
    case ST_E_LABEL_VALUE:
    case ST_E_LABEL_DUP:
    case ST_E_LABEL_LIMIT:
    case ST_E_NO_LABELS:
    case ST_E_OUT_OF_ORDER:
    case ST_E_DUPLICATE:
    case ST_E_TOO_OLD:
    case ST_E_TOO_NEW:
    case ST_E_TIMESTAMP:
        return true;
    default:
        return false;
    }
}

/* The write queue's fill callback: runs on the writer thread, possibly more than once. */
static int sset_fill(col_write_t *w, st_batch_t *b)
{
    const col_sset_t *s = w->arg;
    for (size_t i = 0; i < s->nmeta; i++) {
        const col_sset_meta_t *m = &s->meta[i];
        int rc = st_batch_set_metadata(b, m->family, m->type, m->help, m->unit);
        /* Metadata was validated while decoding; what the store still refuses (lengths) is
         * dropped rather than failing the samples. */
        if (rc != 0 && rc != ST_E_METADATA) {
            return rc;
        }
    }
    for (size_t i = 0; i < s->nseries; i++) {
        const col_sset_series_t *se = &s->series[i];
        const st_label_t *labels = s->labels + se->label_off;
        for (size_t j = se->sample_off; j < se->sample_off + se->nsamples; j++) {
            int rc = st_batch_add(b, labels, se->nlabels, s->ts[j], s->v[j]);
            if (rc == 0) {
                w->accepted++;
            } else if (per_sample_error(rc)) {
                col_write_reject(w, rc, labels, se->nlabels);
            } else {
                return rc;
            }
        }
    }
    return 0;
}

int col_sset_submit(col_writer_t *wr, col_sset_t *s, col_write_t *w)
{
    memset(w, 0, sizeof(*w));
    w->fill = sset_fill;
    w->arg = s;
    w->est_samples = s->nsamples + s->nmeta;
    w->est_bytes = s->label_bytes + 16 * s->nsamples;
    for (size_t i = 0; i < s->nmeta; i++) {
        w->est_bytes += s->meta[i].family.len + s->meta[i].help.len + s->meta[i].unit.len + 16;
    }
    return col_writer_submit(wr, w);
}

/* ---- snappy ------------------------------------------------------------------------------- */

int col_rw_uncompress(const uint8_t *in, size_t len, size_t limit, uint8_t **out, size_t *out_len,
                      char *err, size_t errlen)
{
    size_t n = 0;
    if (snappy_uncompressed_length((const char *)in, len, &n) != SNAPPY_OK) {
        snprintf(err, errlen, "snappy: corrupt input");
        return WF_E_INVAL;
    }
    if (n > limit) {
        snprintf(err, errlen, "snappy: decoded body of %zu bytes exceeds the limit of %zu", n,
                 limit);
        return WF_E_LIMIT;
    }
    void *buf = NULL;
    /* One byte more so that an empty body still gets a block. */
    if (wf_alloc_checked(n + 1, 1, 0, &buf) != 0) {
        snprintf(err, errlen, "snappy: cannot allocate %zu bytes", n);
        return WF_E_LIMIT;
    }
    size_t got = n;
    if (snappy_uncompress((const char *)in, len, buf, &got) != SNAPPY_OK || got != n) {
        wf_free(buf);
        snprintf(err, errlen, "snappy: corrupt input");
        return WF_E_INVAL;
    }
    *out = buf;
    *out_len = n;
    return 0;
}

/* ---- protobuf decoding -------------------------------------------------------------------- */

typedef struct {
    char *err;
    size_t errlen;
    size_t series_no; /* 0-based index of the TimeSeries being decoded, for messages */
    wf_str_t names[COL_RW_NAME_MEMORY]; /* the previous series' label names (validated) */
    size_t nnames;
} dec_t;

static int pb_error(dec_t *d, const wf_pb_rd_t *r, const char *where)
{
    snprintf(d->err, d->errlen, "protobuf: %s%s%s at offset %zu", where ? where : "",
             where ? ": " : "", r->err ? r->err : "malformed message", r->err_off);
    return WF_E_INVAL;
}

static int limit_error(dec_t *d, const char *what)
{
    snprintf(d->err, d->errlen, "request too large: more than %s", what);
    return WF_E_LIMIT;
}

/* One label of the series being built (both versions). */
static int add_label(dec_t *d, col_sset_t *s, wf_str_t name, wf_str_t value)
{
    if (value.len == 0) {
        /* An empty value is an absent label (Prometheus drops them too); its name must still
         * be a valid one. */
        if (!label_name_valid(name)) {
            char a[400];
            put_clipped(a, sizeof(a), name);
            snprintf(d->err, d->errlen, "timeseries %zu: invalid label name \"%s\"", d->series_no,
                     a);
            return WF_E_INVAL;
        }
        return 0;
    }
    if (col_sset_label(s, name, value) != 0) {
        return limit_error(d, "1024 labels in a series, or 8M labels in total");
    }
    return 0;
}

static int decode_label(dec_t *d, wf_pb_rd_t *r, col_sset_t *s)
{
    wf_pb_field_t f;
    wf_str_t name = {"", 0}, value = {"", 0};
    int rc;
    while ((rc = wf_pb_next(r, &f)) > 0) {
        if (f.num == 1) {
            rc = wf_pb_bytes(r, &f, &name);
        } else if (f.num == 2) {
            rc = wf_pb_bytes(r, &f, &value);
        }
        if (rc < 0) {
            break;
        }
    }
    if (rc < 0) {
        return pb_error(d, r, "label");
    }
    return add_label(d, s, name, value);
}

static int decode_sample(dec_t *d, wf_pb_rd_t *r, col_sset_t *s)
{
    wf_pb_field_t f;
    double v = 0;
    int64_t ts = 0;
    int rc;
    while ((rc = wf_pb_next(r, &f)) > 0) {
        if (f.num == 1) {
            rc = wf_pb_double(r, &f, &v);
        } else if (f.num == 2) {
            rc = wf_pb_int64(r, &f, &ts);
        }
        if (rc < 0) {
            break;
        }
    }
    if (rc < 0) {
        return pb_error(d, r, "sample");
    }
    if (col_sset_sample(s, ts, v) != 0) {
        return limit_error(d, "2000000 samples");
    }
    return 0;
}

/* Validate the labels of the series being built and close it (both versions). */
static int end_series(dec_t *d, col_sset_t *s)
{
    size_t n;
    const st_label_t *labels = col_sset_cur_labels(s, &n);
    char why[480];
    if (check_labels(labels, n, d->names, &d->nnames, why, sizeof(why)) != 0) {
        snprintf(d->err, d->errlen, "timeseries %zu: %s", d->series_no, why);
        return WF_E_INVAL;
    }
    if (col_sset_end(s) != 0) {
        return limit_error(d, "2000000 series");
    }
    return 0;
}

static int decode_series(dec_t *d, wf_pb_rd_t *r, col_sset_t *s)
{
    wf_pb_field_t f;
    wf_pb_rd_t sub;
    int rc;
    col_sset_begin(s);
    while ((rc = wf_pb_next(r, &f)) > 0) {
        switch (f.num) {
        case 1:
            if (wf_pb_sub(r, &f, &sub) != 0) {
                return pb_error(d, r, "timeseries");
            }
            if ((rc = decode_label(d, &sub, s)) != 0) {
                return rc;
            }
            break;
        case 2:
            if (wf_pb_sub(r, &f, &sub) != 0) {
                return pb_error(d, r, "timeseries");
            }
            if ((rc = decode_sample(d, &sub, s)) != 0) {
                return rc;
            }
            break;
        case 3: /* exemplars, and native histograms: accepted, not stored */
        case 4:
            if (f.wire != WF_PB_LEN) {
                return pb_error(d,
                                &(wf_pb_rd_t){.err = "wrong wire type for field", .err_off = f.off},
                                "timeseries");
            }
            break;
        default:
            break;
        }
    }
    if (rc < 0) {
        return pb_error(d, r, "timeseries");
    }
    return end_series(d, s);
}

static int add_metadata(dec_t *d, col_sset_t *s, wf_str_t family, uint32_t type, wf_str_t help,
                        wf_str_t unit);

static int decode_metadata(dec_t *d, wf_pb_rd_t *r, col_sset_t *s)
{
    wf_pb_field_t f;
    uint32_t type = 0;
    wf_str_t family = {"", 0}, help = {"", 0}, unit = {"", 0};
    int rc;
    while ((rc = wf_pb_next(r, &f)) > 0) {
        switch (f.num) {
        case 1:
            rc = wf_pb_uint32(r, &f, &type);
            break;
        case 2:
            rc = wf_pb_bytes(r, &f, &family);
            break;
        case 4:
            rc = wf_pb_bytes(r, &f, &help);
            break;
        case 5:
            rc = wf_pb_bytes(r, &f, &unit);
            break;
        default:
            break;
        }
        if (rc < 0) {
            break;
        }
    }
    if (rc < 0) {
        return pb_error(d, r, "metadata");
    }
    return add_metadata(d, s, family, type, help, unit);
}

/* Validate and record one metric family's metadata (both versions; prompb's MetricType and
 * remote write 2.0's have the store's values, a newer type than we know is UNKNOWN). */
static int add_metadata(dec_t *d, col_sset_t *s, wf_str_t family, uint32_t type, wf_str_t help,
                        wf_str_t unit)
{
    char a[400];
    if (!col_metric_name_valid(family)) {
        put_clipped(a, sizeof(a), family);
        snprintf(d->err, d->errlen, "metadata: invalid metric family name \"%s\"", a);
        return WF_E_INVAL;
    }
    if (!wf_utf8_valid(help.p, help.len) || !wf_utf8_valid(unit.p, unit.len)) {
        snprintf(d->err, d->errlen, "metadata of %.*s: invalid UTF-8 in help or unit",
                 (int)(family.len > 64 ? 64 : family.len), family.p);
        return WF_E_INVAL;
    }
    st_metric_type_t t = type <= ST_METRIC_STATESET ? (st_metric_type_t)type : ST_METRIC_UNKNOWN;
    if (col_sset_metadata(s, family, t, help, unit) != 0) {
        return limit_error(d, "2000000 metadata entries");
    }
    return 0;
}

/*
 * Count the series, labels, samples and metadata entries of a WriteRequest by their tags
 * alone (nested messages are skipped, not decoded), to size the set's arrays once. A request
 * of 500 series with Istio's labels holds some 14,000 labels: growing to that by doubling
 * costs more in copies and page faults than this pass. Malformed input just stops the count:
 * the decoding pass reports it.
 */
static void presize(const uint8_t *pb, size_t len, col_sset_t *s)
{
    size_t series = 0, labels = 0, samples = 0, meta = 0;
    wf_pb_rd_t r, ts;
    wf_pb_field_t f, g;
    wf_pb_init(&r, pb, len);
    while (wf_pb_next(&r, &f) > 0) {
        if (f.num == 3) {
            meta++;
        }
        if (f.num != 1 || wf_pb_sub(&r, &f, &ts) != 0) {
            continue;
        }
        series++;
        while (wf_pb_next(&ts, &g) > 0) {
            labels += g.num == 1;
            samples += g.num == 2;
        }
    }
    col_sset_reserve(s, labels, samples, series, meta);
}

int col_rw_decode(const uint8_t *pb, size_t len, col_sset_t *s, char *err, size_t errlen)
{
    dec_t d;
    memset(&d, 0, sizeof(d));
    d.err = err;
    d.errlen = errlen;
    wf_pb_rd_t r, sub;
    wf_pb_field_t f;
    wf_pb_init(&r, pb, len);
    int rc;
    presize(pb, len, s);
    while ((rc = wf_pb_next(&r, &f)) > 0) {
        if (f.num == 1) {
            if (wf_pb_sub(&r, &f, &sub) != 0) {
                return pb_error(&d, &r, NULL);
            }
            if ((rc = decode_series(&d, &sub, s)) != 0) {
                return rc;
            }
            d.series_no++;
        } else if (f.num == 3) {
            if (wf_pb_sub(&r, &f, &sub) != 0) {
                return pb_error(&d, &r, NULL);
            }
            if ((rc = decode_metadata(&d, &sub, s)) != 0) {
                return rc;
            }
        }
    }
    if (rc < 0) {
        return pb_error(&d, &r, NULL);
    }
    return 0;
}

/* ---- remote write 2.0 --------------------------------------------------------------------- */

/* Symbols of one request at most: each takes at least 2 bytes of it, and the table holds a
 * slice (16 bytes) per symbol. */
#define RW2_MAX_SYMBOLS ((size_t)4 << 20)

typedef struct {
    const wf_str_t *sym;
    size_t nsym;
} symtab_t;

/* The symbol ref names, or an error for a ref outside the table. */
static int symbol(dec_t *d, const symtab_t *t, uint64_t ref, wf_str_t *out)
{
    if (ref >= t->nsym) {
        snprintf(d->err, d->errlen,
                 "timeseries %zu: symbol reference %llu out of range (%zu symbols)", d->series_no,
                 (unsigned long long)ref, t->nsym);
        return WF_E_INVAL;
    }
    *out = t->sym[ref];
    return 0;
}

/* io.prometheus.write.v2.Metadata {type = 1, help_ref = 3, unit_ref = 4} of a series whose
 * labels are in s: recorded for the family its __name__ belongs to. */
static int decode2_metadata(dec_t *d, wf_pb_rd_t *r, const symtab_t *t, col_sset_t *s)
{
    wf_pb_field_t f;
    uint32_t type = 0, help_ref = 0, unit_ref = 0;
    int rc;
    while ((rc = wf_pb_next(r, &f)) > 0) {
        if (f.num == 1) {
            rc = wf_pb_uint32(r, &f, &type);
        } else if (f.num == 3) {
            rc = wf_pb_uint32(r, &f, &help_ref);
        } else if (f.num == 4) {
            rc = wf_pb_uint32(r, &f, &unit_ref);
        }
        if (rc < 0) {
            return pb_error(d, r, "metadata");
        }
    }
    if (rc < 0) {
        return pb_error(d, r, "metadata");
    }
    wf_str_t help, unit, family = {"", 0};
    if ((rc = symbol(d, t, help_ref, &help)) != 0 || (rc = symbol(d, t, unit_ref, &unit)) != 0) {
        return rc;
    }
    if (type == 0 && help.len == 0 && unit.len == 0) {
        return 0; /* no metadata sent */
    }
    size_t n;
    const st_label_t *l = col_sset_cur_labels(s, &n);
    for (size_t i = 0; i < n; i++) {
        if (l[i].name.len == 8 && memcmp(l[i].name.p, "__name__", 8) == 0) {
            family = l[i].value;
        }
    }
    /* A histogram's or summary's series carry suffixes their family has not. */
    static const char *const suffixes[] = {"_bucket", "_sum", "_count"};
    if (type == ST_METRIC_HISTOGRAM || type == ST_METRIC_GAUGEHISTOGRAM ||
        type == ST_METRIC_SUMMARY) {
        for (size_t i = 0; i < 3; i++) {
            size_t sl = strlen(suffixes[i]);
            if (family.len > sl && memcmp(family.p + family.len - sl, suffixes[i], sl) == 0) {
                family.len -= sl;
                break;
            }
        }
    }
    if (family.len == 0) {
        return 0; /* a series without a name: end_series refuses it */
    }
    if (s->nmeta > 0 && wf_str_eq(s->meta[s->nmeta - 1].family, family)) {
        return 0; /* the family's series come together: one entry is enough */
    }
    return add_metadata(d, s, family, type, help, unit);
}

/* io.prometheus.write.v2.TimeSeries: labels_refs = 1 (pairs of symbol refs), samples = 2
 * (the v1 Sample's fields, and start_timestamp = 3, ignored), histograms = 3 and
 * exemplars = 4 (accepted, not stored), metadata = 5. */
static int decode2_series(dec_t *d, wf_pb_rd_t *r, const symtab_t *t, col_sset_t *s,
                          size_t *histograms)
{
    wf_pb_field_t f;
    wf_pb_rd_t sub;
    wf_pb_rd_t meta = {0};
    bool have_meta = false, have_name = false;
    uint64_t name_ref = 0;
    int rc;
    col_sset_begin(s);
    while ((rc = wf_pb_next(r, &f)) > 0) {
        if (f.num == 1) {
            /* Packed or not, and a packed run may be split over several fields: a name ref
             * waits for its value ref across them. */
            wf_pb_rep_t it;
            if (wf_pb_rep_init(r, &f, WF_PB_VARINT, &it) != 0) {
                return pb_error(d, r, "labels_refs");
            }
            uint64_t ref;
            while ((rc = wf_pb_rep_next(&it, &ref)) > 0) {
                if (!have_name) {
                    name_ref = ref;
                    have_name = true;
                    continue;
                }
                have_name = false;
                wf_str_t name, value;
                if ((rc = symbol(d, t, name_ref, &name)) != 0 ||
                    (rc = symbol(d, t, ref, &value)) != 0 ||
                    (rc = add_label(d, s, name, value)) != 0) {
                    return rc;
                }
            }
            if (rc < 0) {
                return pb_error(d, r, "labels_refs");
            }
        } else if (f.num == 2) {
            if (wf_pb_sub(r, &f, &sub) != 0) {
                return pb_error(d, r, "timeseries");
            }
            if ((rc = decode_sample(d, &sub, s)) != 0) {
                return rc;
            }
        } else if (f.num == 3 || f.num == 4 || f.num == 5) {
            if (f.wire != WF_PB_LEN) {
                return pb_error(d,
                                &(wf_pb_rd_t){.err = "wrong wire type for field", .err_off = f.off},
                                "timeseries");
            }
            *histograms += f.num == 3;
            if (f.num == 5) {
                wf_pb_sub(r, &f, &meta); /* read once the labels are all in */
                have_meta = true;
            }
        }
    }
    if (rc < 0) {
        return pb_error(d, r, "timeseries");
    }
    if (have_name) {
        snprintf(d->err, d->errlen, "timeseries %zu: an odd number of labels_refs", d->series_no);
        return WF_E_INVAL;
    }
    if (have_meta && (rc = decode2_metadata(d, &meta, t, s)) != 0) {
        return rc;
    }
    return end_series(d, s);
}

int col_rw2_decode(const uint8_t *pb, size_t len, col_sset_t *s, size_t *histograms, char *err,
                   size_t errlen)
{
    dec_t d;
    memset(&d, 0, sizeof(d));
    d.err = err;
    d.errlen = errlen;
    *histograms = 0;
    wf_pb_rd_t r, sub;
    wf_pb_field_t f;
    int rc;
    /* The symbol table first: series may come before it. */
    size_t nsym = 0;
    wf_pb_init(&r, pb, len);
    while ((rc = wf_pb_next(&r, &f)) > 0) {
        nsym += f.num == 4;
    }
    if (rc < 0) {
        return pb_error(&d, &r, NULL);
    }
    if (nsym > RW2_MAX_SYMBOLS) {
        return limit_error(&d, "4194304 symbols");
    }
    wf_str_t *sym = wf_malloc((nsym > 0 ? nsym : 1) * sizeof(*sym));
    symtab_t t = {sym, 0};
    wf_pb_init(&r, pb, len);
    while ((rc = wf_pb_next(&r, &f)) > 0) {
        if (f.num == 4 && wf_pb_bytes(&r, &f, &sym[t.nsym++]) != 0) {
            rc = pb_error(&d, &r, "symbols");
            goto out;
        }
    }
    if (t.nsym > 0 && sym[0].len != 0) {
        snprintf(err, errlen, "symbols: the first symbol must be the empty string");
        rc = WF_E_INVAL;
        goto out;
    }
    for (size_t i = 0; i < t.nsym; i++) {
        if (!wf_utf8_valid(sym[i].p, sym[i].len)) {
            snprintf(err, errlen, "symbols: symbol %zu is not valid UTF-8", i);
            rc = WF_E_INVAL;
            goto out;
        }
    }
    wf_pb_init(&r, pb, len);
    rc = 0;
    while (rc == 0 && wf_pb_next(&r, &f) > 0) {
        if (f.num != 5) {
            continue;
        }
        if (wf_pb_sub(&r, &f, &sub) != 0) {
            rc = pb_error(&d, &r, NULL);
        } else if ((rc = decode2_series(&d, &sub, &t, s, histograms)) == 0) {
            d.series_no++;
        }
    }
out:
    wf_free(sym);
    return rc;
}

/* Which remote write message the request's Content-Type names: 1 (prometheus.WriteRequest, also
 * when no proto is named, as 1.0 senders send), 2 (io.prometheus.write.v2.Request), or 0 for
 * another. */
static int message_version(const char *content_type)
{
    const char *p = content_type != NULL ? strcasestr(content_type, "proto=") : NULL;
    if (p == NULL) {
        return 1;
    }
    p += 6;
    size_t n = strcspn(p, "; \t");
    if (n == 23 && strncmp(p, "prometheus.WriteRequest", n) == 0) {
        return 1;
    }
    if (n == 30 && strncmp(p, "io.prometheus.write.v2.Request", n) == 0) {
        return 2;
    }
    return 0;
}

/* ---- the handler -------------------------------------------------------------------------- */

void col_remote_write_handler(void *writer, col_req_t *req, col_resp_t *resp)
{
    col_writer_t *wr = writer;
    char err[512];
    uint8_t *pb = NULL;
    size_t pb_len = 0;
    col_sset_t set;
    memset(&set, 0, sizeof(set));
    size_t histograms = 0;
    col_write_t w = {0};
    const char *ctype = req->conn_ != NULL ? col_req_header(req, "Content-Type") : NULL;
    int version = message_version(ctype);
    if (version == 0) {
        /* The remote write 2.0 specification: a receiver answers 415 to a message it does not
         * take, so that the sender can say so rather than lose the data. */
        col_resp_text(resp, 415,
                      "unsupported remote write message in Content-Type \"%.200s\": this "
                      "receiver takes prometheus.WriteRequest (1.0) and "
                      "io.prometheus.write.v2.Request (2.0)",
                      ctype);
        return;
    }
    int rc = col_rw_uncompress(req->body, req->body_len, COL_RW_MAX_UNCOMPRESSED, &pb, &pb_len, err,
                               sizeof(err));
    if (rc == 0) {
        rc = version == 2 ? col_rw2_decode(pb, pb_len, &set, &histograms, err, sizeof(err))
                          : col_rw_decode(pb, pb_len, &set, err, sizeof(err));
    }
    if (rc != 0) {
        WF_LOG_RL(WF_WARN, 1, "remote_write", "bad request", "err=\"%s\"", err);
        col_resp_text(resp, rc == WF_E_LIMIT ? 413 : 400, "%s", err);
        goto written; /* 2.0: the counts are sent on refusals too (0 written) */
    }
    if (histograms > 0) {
        WF_LOG_RL(WF_WARN, 1, "remote_write", "native histograms not stored",
                  "histogram_fields=%zu", histograms);
    }
    if (set.nsamples == 0 && set.nmeta == 0) {
        resp->status = 204;
        goto written;
    }
    rc = col_sset_submit(wr, &set, &w);
    if (rc == 0 && w.rejected == 0) {
        resp->status = 204;
    } else if (rc == 0) {
        WF_LOG_RL(WF_WARN, 1, "remote_write", "samples refused",
                  "accepted=%zu rejected=%zu err=\"%s\"", w.accepted, w.rejected, w.reject_msg);
        col_resp_text(resp, 400, "%s (%zu of %zu samples refused)", w.reject_msg, w.rejected,
                      w.rejected + w.accepted);
    } else {
        /* Shed (COL_E_BUSY) and shutdown (ST_E_CLOSED) are 503 with Retry-After: Prometheus
         * retries every 5xx, but 429 only when configured to (retry_on_http_429). */
        if (col_writer_http_status(rc) == 500) {
            WF_LOG_RL(WF_ERROR, 1, "remote_write", "store write failed", "err=\"%s\"",
                      col_writer_strerror(rc));
        }
        col_resp_write_failed(resp, rc);
    }
written:
    if (version == 2) {
        /* What 2.0 senders count as delivered; native histograms and exemplars are not
         * stored, so they are reported as not written. */
        char n[24];
        snprintf(n, sizeof(n), "%zu", w.accepted);
        col_resp_header(resp, "X-Prometheus-Remote-Write-Samples-Written", n);
        col_resp_header(resp, "X-Prometheus-Remote-Write-Histograms-Written", "0");
        col_resp_header(resp, "X-Prometheus-Remote-Write-Exemplars-Written", "0");
    }
    col_sset_free(&set);
    wf_free(pb);
}
