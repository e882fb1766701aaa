/*
 * pql_func.c - the PromQL functions (Prometheus 2.42's promql/functions.go and quantile.go):
 * range-vector functions over one window of one series (pql__range_fn), instant-vector and
 * scalar functions over one step's vectors (pql__call_fn), and the quantile helpers shared
 * with the quantile() aggregation.
 *
 * Numerics follow Prometheus operation by operation (Kahan-Neumaier sums where it uses them,
 * its incremental means, its extrapolation rules) so that results agree to the last bits in
 * practice; Go's math functions whose definitions differ from C's (Min, Max, Log2, Log10)
 * are reproduced.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "pql_eval.h"

#include "wf_alloc.h"

#include <math.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers ---------------------------------------------------------------------------- */

double pql__go_min(double a, double b)
{
    if (isinf(a) && a < 0) {
        return a;
    }
    if (isinf(b) && b < 0) {
        return b;
    }
    if (isnan(a) || isnan(b)) {
        return NAN;
    }
    if (a == 0 && a == b) {
        return signbit(a) ? a : b;
    }
    return a < b ? a : b;
}

double pql__go_max(double a, double b)
{
    if (isinf(a) && a > 0) {
        return a;
    }
    if (isinf(b) && b > 0) {
        return b;
    }
    if (isnan(a) || isnan(b)) {
        return NAN;
    }
    if (a == 0 && a == b) {
        return signbit(a) ? b : a;
    }
    return a > b ? a : b;
}

bool pql__label_name_valid(wf_str_t s)
{
    if (s.len == 0) {
        return false;
    }
    for (size_t i = 0; i < s.len; i++) {
        char c = s.p[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                  (i > 0 && c >= '0' && c <= '9');
        if (!ok) {
            return false;
        }
    }
    return true;
}

static void merge_sort(pql__smp_t *s, pql__smp_t *tmp, size_t n,
                       bool (*less)(const pql__smp_t *, const pql__smp_t *))
{
    if (n < 2) {
        return;
    }
    size_t h = n / 2;
    merge_sort(s, tmp, h, less);
    merge_sort(s + h, tmp, n - h, less);
    size_t i = 0, j = h, k = 0;
    while (i < h && j < n) {
        /* Take from the right only when strictly less: stable. */
        if (less(&s[j], &s[i])) {
            tmp[k++] = s[j++];
        } else {
            tmp[k++] = s[i++];
        }
    }
    while (i < h) {
        tmp[k++] = s[i++];
    }
    while (j < n) {
        tmp[k++] = s[j++];
    }
    memcpy(s, tmp, n * sizeof(*s));
}

void pql__sort_smp(pql__smp_t *s, size_t n, bool (*less)(const pql__smp_t *, const pql__smp_t *))
{
    if (n <= 12) {
        /* Go's pdqsort sorts inputs this short by insertion, which fixes the order of ties. */
        for (size_t i = 1; i < n; i++) {
            for (size_t j = i; j > 0 && less(&s[j], &s[j - 1]); j--) {
                pql__smp_t t = s[j];
                s[j] = s[j - 1];
                s[j - 1] = t;
            }
        }
        return;
    }
    pql__smp_t *tmp = wf_malloc(n * sizeof(*tmp));
    merge_sort(s, tmp, n, less);
    wf_free(tmp);
}

/* The shortest decimal digits that read back as v (v finite, non-zero or zero), and the
 * position of the decimal point: v = 0.d1d2d3... * 10^point. Returns the digit count. */
static int shortest_digits(double v, char *digits, int *point)
{
    char e[48];
    int p;
    for (p = 0; p < 17; p++) {
        snprintf(e, sizeof(e), "%.*e", p, v);
        if (strtod(e, NULL) == v) {
            break;
        }
    }
    int nd = 0;
    const char *q = e;
    if (*q == '-') {
        q++;
    }
    while (*q && *q != 'e') {
        if (*q != '.') {
            digits[nd++] = *q;
        }
        q++;
    }
    int exp10 = atoi(q + 1);
    while (nd > 1 && digits[nd - 1] == '0') {
        nd--;
    }
    *point = exp10 + 1;
    return nd;
}

void pql__fmt_float(double v, char verb, char *out, size_t cap)
{
    if (isnan(v)) {
        snprintf(out, cap, "NaN");
        return;
    }
    if (isinf(v)) {
        snprintf(out, cap, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    char d[32] = {0};
    int point;
    int nd = shortest_digits(v, d, &point);
    size_t o = 0;
#define PUTC(c)                                                                                    \
    do {                                                                                           \
        if (o + 1 < cap) {                                                                         \
            out[o++] = (c);                                                                        \
        }                                                                                          \
    } while (0)
    if (signbit(v)) {
        PUTC('-');
    }
    if (nd == 1 && d[0] == '0') {
        point = 1;
    }
    int exp10 = point - 1;
    if (verb == 'v' && (exp10 < -4 || exp10 >= 6)) {
        /* %e form: d.ddde+XX */
        PUTC(d[0]);
        if (nd > 1) {
            PUTC('.');
            for (int i = 1; i < nd; i++) {
                PUTC(d[i]);
            }
        }
        PUTC('e');
        PUTC(exp10 < 0 ? '-' : '+');
        int ax = exp10 < 0 ? -exp10 : exp10;
        char xb[16];
        snprintf(xb, sizeof(xb), "%02d", ax);
        for (char *x = xb; *x; x++) {
            PUTC(*x);
        }
    } else if (point <= 0) {
        PUTC('0');
        PUTC('.');
        for (int i = 0; i < -point; i++) {
            PUTC('0');
        }
        for (int i = 0; i < nd; i++) {
            PUTC(d[i]);
        }
    } else {
        for (int i = 0; i < point; i++) {
            PUTC(i < nd ? d[i] : '0');
        }
        if (point < nd) {
            PUTC('.');
            for (int i = point; i < nd; i++) {
                PUTC(d[i]);
            }
        }
    }
#undef PUTC
    out[o] = 0;
}

static int cmp_nan_first(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    if (isnan(x)) {
        return isnan(y) ? 0 : -1;
    }
    if (isnan(y)) {
        return 1;
    }
    return x < y ? -1 : x > y ? 1 : 0;
}

double pql__quantile(double q, double *values, size_t n)
{
    if (n == 0 || isnan(q)) {
        return NAN;
    }
    if (q < 0) {
        return -INFINITY;
    }
    if (q > 1) {
        return INFINITY;
    }
    qsort(values, n, sizeof(*values), cmp_nan_first);
    double fn = (double)n;
    double rank = q * (fn - 1);
    double lower = pql__go_max(0, floor(rank));
    double upper = pql__go_min(fn - 1, lower + 1);
    double weight = rank - floor(rank);
    return values[(size_t)lower] * (1 - weight) + values[(size_t)upper] * weight;
}

/* Go's %f: like C's, but NaN and infinities are spelled NaN, +Inf, -Inf. */
static void fmt_go_f6(double v, char *out, size_t cap)
{
    if (isnan(v) || isinf(v)) {
        pql__fmt_float(v, 'f', out, cap);
        return;
    }
    snprintf(out, cap, "%f", v);
}

/* kahanSumInc with Neumaier's improvement. */
static inline void kahan_inc(double inc, double *sum, double *c)
{
    double t = *sum + inc;
    if (fabs(*sum) >= fabs(inc)) {
        *c += (*sum - t) + inc;
    } else {
        *c += (inc - t) + *sum;
    }
    *sum = t;
}

/* ---- range-vector functions ------------------------------------------------------------- */

static double extrapolated_rate(const int64_t *t, const double *v, size_t n, int64_t ts,
                                int64_t range_ms, int64_t offset_ms, bool counter, bool rate)
{
    int64_t range_start = ts - (range_ms + offset_ms);
    int64_t range_end = ts - offset_ms;
    double result = v[n - 1] - v[0];
    if (counter) {
        double prev = v[0];
        for (size_t i = 1; i < n; i++) {
            if (v[i] < prev) {
                result += prev;
            }
            prev = v[i];
        }
    }
    double to_start = (double)(t[0] - range_start) / 1000;
    double to_end = (double)(range_end - t[n - 1]) / 1000;
    double sampled = (double)(t[n - 1] - t[0]) / 1000;
    double avg = sampled / (double)(n - 1);
    if (counter && result > 0 && v[0] >= 0) {
        double to_zero = sampled * (v[0] / result);
        if (to_zero < to_start) {
            to_start = to_zero;
        }
    }
    double threshold = avg * 1.1;
    double interval = sampled;
    interval += to_start < threshold ? to_start : avg / 2;
    interval += to_end < threshold ? to_end : avg / 2;
    double factor = interval / sampled;
    if (rate) {
        factor /= (double)range_ms / 1000;
    }
    return result * factor;
}

static void linear_regression(const int64_t *t, const double *v, size_t n, int64_t icept_t,
                              double *slope, double *icept)
{
    double cnt = 0, sx = 0, cx = 0, sy = 0, cy = 0, sxy = 0, cxy = 0, sx2 = 0, cx2 = 0;
    double init_y = v[0];
    bool const_y = true;
    for (size_t i = 0; i < n; i++) {
        if (const_y && i > 0 && v[i] != init_y) {
            const_y = false;
        }
        cnt += 1.0;
        double x = (double)(t[i] - icept_t) / 1e3;
        kahan_inc(x, &sx, &cx);
        kahan_inc(v[i], &sy, &cy);
        kahan_inc(x * v[i], &sxy, &cxy);
        kahan_inc(x * x, &sx2, &cx2);
    }
    if (const_y) {
        if (isinf(init_y)) {
            *slope = NAN;
            *icept = NAN;
        } else {
            *slope = 0;
            *icept = init_y;
        }
        return;
    }
    sx += cx;
    sy += cy;
    sxy += cxy;
    sx2 += cx2;
    double cov = sxy - sx * sy / cnt;
    double var = sx2 - sx * sx / cnt;
    *slope = cov / var;
    *icept = sy / cnt - *slope * sx / cnt;
}

bool pql__range_fn(pql__ev_t *ev, pql_fn_t fn, const int64_t *t, const double *v, size_t n,
                   int64_t ts, int64_t range_ms, int64_t offset_ms, const double *args, double *out,
                   int *err)
{
    switch (fn) {
    case PQL_FN_RATE:
    case PQL_FN_INCREASE:
    case PQL_FN_DELTA:
        if (n < 2) {
            return false;
        }
        *out = extrapolated_rate(t, v, n, ts, range_ms, offset_ms, fn != PQL_FN_DELTA,
                                 fn == PQL_FN_RATE);
        return true;
    case PQL_FN_IRATE:
    case PQL_FN_IDELTA: {
        if (n < 2) {
            return false;
        }
        double last = v[n - 1], prev = v[n - 2];
        double r = (fn == PQL_FN_IRATE && last < prev) ? last : last - prev;
        int64_t dt = t[n - 1] - t[n - 2];
        if (dt == 0) {
            return false;
        }
        if (fn == PQL_FN_IRATE) {
            r /= (double)dt / 1000;
        }
        *out = r;
        return true;
    }
    case PQL_FN_DERIV: {
        if (n < 2) {
            return false;
        }
        double slope, icept;
        linear_regression(t, v, n, t[0], &slope, &icept);
        *out = slope;
        return true;
    }
    case PQL_FN_PREDICT_LINEAR: {
        if (n < 2) {
            return false;
        }
        double slope, icept;
        linear_regression(t, v, n, ts, &slope, &icept);
        *out = slope * args[1] + icept;
        return true;
    }
    case PQL_FN_HOLT_WINTERS: {
        double sf = args[1], tf = args[2];
        if (sf <= 0 || sf >= 1) {
            *err = 1;
            char b[400];
            fmt_go_f6(sf, b, sizeof(b));
            pql__fail(ev, "invalid smoothing factor. Expected: 0 < sf < 1, got: %s", b);
            return false;
        }
        if (tf <= 0 || tf >= 1) {
            *err = 1;
            char b[400];
            fmt_go_f6(tf, b, sizeof(b));
            pql__fail(ev, "invalid trend factor. Expected: 0 < tf < 1, got: %s", b);
            return false;
        }
        if (n < 2) {
            return false;
        }
        double s0 = 0, s1 = v[0], b = v[1] - v[0];
        for (size_t i = 1; i < n; i++) {
            double x = sf * v[i];
            if (i - 1 != 0) {
                b = tf * (s1 - s0) + (1 - tf) * b;
            }
            double y = (1 - sf) * (s1 + b);
            s0 = s1;
            s1 = x + y;
        }
        *out = s1;
        return true;
    }
    case PQL_FN_AVG_OVER_TIME: {
        double mean = 0, cnt = 0, c = 0;
        for (size_t i = 0; i < n; i++) {
            cnt++;
            if (isinf(mean)) {
                if (isinf(v[i]) && (mean > 0) == (v[i] > 0)) {
                    continue;
                }
                if (!isinf(v[i]) && !isnan(v[i])) {
                    continue;
                }
            }
            kahan_inc(v[i] / cnt - mean / cnt, &mean, &c);
        }
        *out = isinf(mean) ? mean : mean + c;
        return true;
    }
    case PQL_FN_COUNT_OVER_TIME:
        *out = (double)n;
        return true;
    case PQL_FN_LAST_OVER_TIME:
        *out = v[n - 1];
        return true;
    case PQL_FN_MAX_OVER_TIME: {
        double m = v[0];
        for (size_t i = 0; i < n; i++) {
            if (v[i] > m || isnan(m)) {
                m = v[i];
            }
        }
        *out = m;
        return true;
    }
    case PQL_FN_MIN_OVER_TIME: {
        double m = v[0];
        for (size_t i = 0; i < n; i++) {
            if (v[i] < m || isnan(m)) {
                m = v[i];
            }
        }
        *out = m;
        return true;
    }
    case PQL_FN_SUM_OVER_TIME: {
        double sum = 0, c = 0;
        for (size_t i = 0; i < n; i++) {
            kahan_inc(v[i], &sum, &c);
        }
        *out = isinf(sum) ? sum : sum + c;
        return true;
    }
    case PQL_FN_QUANTILE_OVER_TIME: {
        double *tmp = wf_malloc(n * sizeof(*tmp));
        memcpy(tmp, v, n * sizeof(*tmp));
        *out = pql__quantile(args[0], tmp, n);
        wf_free(tmp);
        return true;
    }
    case PQL_FN_STDDEV_OVER_TIME:
    case PQL_FN_STDVAR_OVER_TIME: {
        double cnt = 0, mean = 0, cmean = 0, aux = 0, caux = 0;
        for (size_t i = 0; i < n; i++) {
            cnt++;
            double delta = v[i] - (mean + cmean);
            kahan_inc(delta / cnt, &mean, &cmean);
            kahan_inc(delta * (v[i] - (mean + cmean)), &aux, &caux);
        }
        double var = (aux + caux) / cnt;
        *out = fn == PQL_FN_STDDEV_OVER_TIME ? sqrt(var) : var;
        return true;
    }
    case PQL_FN_ABSENT_OVER_TIME:
    case PQL_FN_PRESENT_OVER_TIME:
        *out = 1;
        return true;
    case PQL_FN_CHANGES: {
        size_t c = 0;
        for (size_t i = 1; i < n; i++) {
            if (v[i] != v[i - 1] && !(isnan(v[i]) && isnan(v[i - 1]))) {
                c++;
            }
        }
        *out = (double)c;
        return true;
    }
    case PQL_FN_RESETS: {
        size_t c = 0;
        for (size_t i = 1; i < n; i++) {
            if (v[i] < v[i - 1]) {
                c++;
            }
        }
        *out = (double)c;
        return true;
    }
    default:
        break;
    }
    *err = 1;
    pql__fail(ev, "function does not take a range vector");
    return false;
}

/* ---- per-node caches ---------------------------------------------------------------------- */

typedef struct {
    double upper, count;
} bucket_t;

typedef struct {
    uint32_t ls; /* output labels (no __name__, no le) */
    bucket_t *b;
    size_t n, cap;
    uint32_t gen;
} hgroup_t;

typedef struct {
    pql_fn_t fn;
    /* label_replace / label_join */
    pcre2_code *re;
    pcre2_match_data *md;
    wf_str_t dst, repl, src, sep;
    const wf_str_t *srcs;
    size_t nsrcs;
    uint32_t *lsmap; /* input label set -> output (+1; 0 = not computed) */
    size_t nlsmap;
    /* histogram_quantile */
    uint32_t *sig; /* input ls -> group signature ls + 1 (UINT32_MAX: no valid le) */
    double *le;    /* input ls -> its parsed le (valid where sig is) */
    size_t nle;
    size_t nsig;
    uint32_t *gidx; /* signature ls -> group index + 1 */
    size_t ngidx;
    hgroup_t *g;
    size_t ng, capg;
    uint32_t *order; /* groups seen at the current step, in order of appearance */
    size_t caporder;
    uint32_t gen;
    bool invalid; /* the arguments fail the function at every step */
} fcache_t;

static uint32_t *grow_u32(uint32_t **a, size_t *n, size_t need)
{
    if (need > *n) {
        size_t m = *n ? *n : 64;
        while (m < need) {
            m *= 2;
        }
        *a = wf_realloc(*a, m * sizeof(**a));
        memset(*a + *n, 0, (m - *n) * sizeof(**a));
        *n = m;
    }
    return *a;
}

void *pql__fn_cache_new(pql__ev_t *ev, pql_fn_t fn, const wf_str_t *strs, size_t nin)
{
    if (fn != PQL_FN_LABEL_REPLACE && fn != PQL_FN_LABEL_JOIN && fn != PQL_FN_HISTOGRAM_QUANTILE) {
        return NULL;
    }
    fcache_t *c = wf_calloc(1, sizeof(*c));
    c->fn = fn;
    if (fn == PQL_FN_LABEL_REPLACE) {
        c->dst = strs[1];
        c->repl = strs[2];
        c->src = strs[3];
        wf_str_t re = strs[4];
        /* Go compiles "^(?:" + regex + ")$"; $ must not match before a final newline. */
        size_t plen = re.len + 6;
        char *pat = wf_malloc(plen + 1);
        memcpy(pat, "^(?:", 4);
        memcpy(pat + 4, re.p, re.len);
        memcpy(pat + 4 + re.len, ")$", 2);
        pat[plen] = 0;
        int ec;
        PCRE2_SIZE eo;
        c->re = pcre2_compile((PCRE2_SPTR)pat, plen,
                              PCRE2_DOLLAR_ENDONLY | PCRE2_UTF | PCRE2_MATCH_INVALID_UTF, &ec, &eo,
                              NULL);
        wf_free(pat);
        if (c->re == NULL) {
            pql__fail(ev, "invalid regular expression in label_replace(): %.*s", (int)re.len, re.p);
            c->invalid = true;
        } else if (!pql__label_name_valid(c->dst)) {
            pql__fail(ev, "invalid destination label name in label_replace(): %.*s",
                      (int)c->dst.len, c->dst.p);
            c->invalid = true;
        } else {
            c->md = pcre2_match_data_create_from_pattern(c->re, NULL);
        }
    } else if (fn == PQL_FN_LABEL_JOIN) {
        c->dst = strs[1];
        c->sep = strs[2];
        c->srcs = strs + 3;
        c->nsrcs = nin > 3 ? nin - 3 : 0;
        for (size_t i = 0; i < c->nsrcs && !c->invalid; i++) {
            if (!pql__label_name_valid(c->srcs[i])) {
                pql__fail(ev, "invalid source label name in label_join(): %.*s",
                          (int)c->srcs[i].len, c->srcs[i].p);
                c->invalid = true;
            }
        }
        if (!c->invalid && !pql__label_name_valid(c->dst)) {
            pql__fail(ev, "invalid destination label name in label_join(): %.*s", (int)c->dst.len,
                      c->dst.p);
            c->invalid = true;
        }
    }
    return c;
}

void pql__fn_cache_free(void *cache)
{
    fcache_t *c = cache;
    if (c == NULL) {
        return;
    }
    if (c->md) {
        pcre2_match_data_free(c->md);
    }
    if (c->re) {
        pcre2_code_free(c->re);
    }
    wf_free(c->lsmap);
    wf_free(c->sig);
    wf_free(c->le);
    wf_free(c->gidx);
    for (size_t i = 0; i < c->capg; i++) {
        wf_free(c->g[i].b);
    }
    wf_free(c->g);
    wf_free(c->order);
    wf_free(c);
}

/* ---- label_replace / label_join ---------------------------------------------------------- */

static bool is_name_char(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '_' || ch >= 0x80;
}

/* Go's Regexp.ExpandString: $1, ${1}, $name, ${name}, $$; unknown groups expand to nothing and
 * a malformed reference is kept as a literal '$'. */
static void expand(const fcache_t *c, wf_str_t src, const PCRE2_SIZE *ov, uint32_t ngroups,
                   char **buf, size_t *len, size_t *cap)
{
#define APPEND(p, n)                                                                               \
    do {                                                                                           \
        size_t n_ = (n);                                                                           \
        if (*len + n_ + 1 > *cap) {                                                                \
            *cap = (*len + n_ + 1) * 2;                                                            \
            *buf = wf_realloc(*buf, *cap);                                                         \
        }                                                                                          \
        memcpy(*buf + *len, (p), n_);                                                              \
        *len += n_;                                                                                \
    } while (0)
    const char *t = c->repl.p;
    size_t tl = c->repl.len, i = 0;
    while (i < tl) {
        if (t[i] != '$') {
            APPEND(&t[i], 1);
            i++;
            continue;
        }
        i++;
        if (i < tl && t[i] == '$') {
            APPEND("$", 1);
            i++;
            continue;
        }
        size_t j = i;
        bool brace = false;
        if (j < tl && t[j] == '{') {
            brace = true;
            j++;
        }
        size_t ns = j;
        while (j < tl && is_name_char((unsigned char)t[j])) {
            j++;
        }
        size_t ne = j;
        if (ne == ns || (brace && (j >= tl || t[j] != '}'))) {
            APPEND("$", 1);
            continue;
        }
        if (brace) {
            j++;
        }
        i = j;
        long num = 0;
        for (size_t k = ns; k < ne; k++) {
            if (t[k] < '0' || t[k] > '9' || num >= 100000000) {
                num = -1;
                break;
            }
            num = num * 10 + (t[k] - '0');
        }
        if (t[ns] == '0' && ne - ns > 1) {
            num = -1;
        }
        if (num < 0) {
            char name[128];
            size_t nl = ne - ns < sizeof(name) - 1 ? ne - ns : sizeof(name) - 1;
            memcpy(name, t + ns, nl);
            name[nl] = 0;
            int gn = pcre2_substring_number_from_name(c->re, (PCRE2_SPTR)name);
            if (gn <= 0) {
                continue;
            }
            num = gn;
        }
        if ((uint32_t)num < ngroups && ov[2 * num] != PCRE2_UNSET) {
            APPEND(src.p + ov[2 * num], ov[2 * num + 1] - ov[2 * num]);
        }
    }
#undef APPEND
}

static uint32_t label_replace_one(pql__ev_t *ev, fcache_t *c, uint32_t ls)
{
    wf_str_t sv = pql__ls_value(ev, ls, c->src);
    int rc = pcre2_match(c->re, (PCRE2_SPTR)(sv.p ? sv.p : ""), sv.len, 0, 0, c->md, NULL);
    if (rc < 0) {
        return ls;
    }
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(c->md);
    uint32_t ng = pcre2_get_ovector_count(c->md);
    if ((uint32_t)rc < ng) {
        /* Groups past the last one that matched are unset. */
        for (uint32_t g = (uint32_t)rc; g < ng; g++) {
            ov[2 * g] = PCRE2_UNSET;
        }
    }
    char *buf = NULL;
    size_t len = 0, cap = 0;
    expand(c, sv, ov, ng, &buf, &len, &cap);
    uint32_t r = pql__ls_set(ev, ls, c->dst, (wf_str_t){buf ? buf : "", len});
    wf_free(buf);
    return r;
}

static uint32_t label_join_one(pql__ev_t *ev, fcache_t *c, uint32_t ls)
{
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (size_t i = 0; i < c->nsrcs; i++) {
        wf_str_t v = pql__ls_value(ev, ls, c->srcs[i]);
        size_t need = len + v.len + (i ? c->sep.len : 0) + 1;
        if (need > cap) {
            cap = need * 2;
            buf = wf_realloc(buf, cap);
        }
        if (i && c->sep.len) {
            memcpy(buf + len, c->sep.p, c->sep.len);
            len += c->sep.len;
        }
        if (v.len) {
            memcpy(buf + len, v.p, v.len);
            len += v.len;
        }
    }
    uint32_t r = pql__ls_set(ev, ls, c->dst, (wf_str_t){buf ? buf : "", len});
    wf_free(buf);
    return r;
}

/* ---- histogram_quantile ------------------------------------------------------------------- */

static int cmp_bucket(const void *a, const void *b)
{
    const bucket_t *x = a, *y = b;
    return x->upper < y->upper ? -1 : x->upper > y->upper ? 1 : 0;
}

static double bucket_quantile(double q, bucket_t *b, size_t n)
{
    if (isnan(q)) {
        return NAN;
    }
    if (q < 0) {
        return -INFINITY;
    }
    if (q > 1) {
        return INFINITY;
    }
    qsort(b, n, sizeof(*b), cmp_bucket);
    if (!(isinf(b[n - 1].upper) && b[n - 1].upper > 0)) {
        return NAN;
    }
    /* coalesceBuckets */
    size_t m = 0;
    bucket_t last = b[0];
    for (size_t i = 1; i < n; i++) {
        if (b[i].upper == last.upper) {
            last.count += b[i].count;
        } else {
            b[m++] = last;
            last = b[i];
        }
    }
    b[m++] = last;
    n = m;
    /* ensureMonotonic */
    double max = b[0].count;
    for (size_t i = 1; i < n; i++) {
        if (b[i].count > max) {
            max = b[i].count;
        } else if (b[i].count < max) {
            b[i].count = max;
        }
    }
    if (n < 2) {
        return NAN;
    }
    double obs = b[n - 1].count;
    if (obs == 0) {
        return NAN;
    }
    double rank = q * obs;
    /* sort.Search over the first n-1 buckets: the first with count >= rank. */
    size_t lo = 0, hi = n - 1;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (!(b[mid].count >= rank)) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    size_t i = lo;
    if (i == n - 1) {
        return b[n - 2].upper;
    }
    if (i == 0 && b[0].upper <= 0) {
        return b[0].upper;
    }
    double start = 0, end = b[i].upper, count = b[i].count;
    if (i > 0) {
        start = b[i - 1].upper;
        count -= b[i - 1].count;
        rank -= b[i - 1].count;
    }
    return start + (end - start) * (rank / count);
}

/* strconv.ParseFloat for a bucket bound; false when s is not a number. */
static bool parse_le(wf_str_t s, double *out)
{
    char buf[64];
    if (s.len == 0 || s.len >= sizeof(buf)) {
        return false;
    }
    memcpy(buf, s.p, s.len);
    buf[s.len] = 0;
    if (buf[0] == ' ' || buf[0] == '\t' || buf[0] == '\n' || buf[0] == '\r' || buf[0] == '\f' ||
        buf[0] == '\v') {
        return false;
    }
    char *end;
    double v = strtod(buf, &end);
    if (end != buf + s.len) {
        return false;
    }
    *out = v;
    return true;
}

static const wf_str_t LE = {"le", 2};

static int histogram_quantile(pql__ev_t *ev, fcache_t *c, double q, const pql__vec_t *in,
                              int64_t ts, pql__vec_t *out)
{
    c->gen++;
    size_t used = 0;
    for (size_t i = 0; i < in->n; i++) {
        uint32_t ls = in->s[i].ls;
        grow_u32(&c->sig, &c->nsig, (size_t)ls + 1);
        uint32_t sig = c->sig[ls];
        if (sig == 0) {
            double le = 0;
            if (!parse_le(pql__ls_value(ev, ls, LE), &le)) {
                sig = UINT32_MAX;
            } else {
                sig = pql__ls_set(ev, ls, LE, (wf_str_t){"", 0}) + 1;
            }
            grow_u32(&c->sig, &c->nsig, (size_t)ls + 1);
            c->sig[ls] = sig;
            if ((size_t)ls >= c->nle) {
                size_t n = c->nsig;
                c->le = wf_realloc(c->le, n * sizeof(*c->le));
                c->nle = n;
            }
            c->le[ls] = le;
        }
        if (sig == UINT32_MAX) {
            continue;
        }
        double le = c->le[ls];
        uint32_t s = sig - 1;
        grow_u32(&c->gidx, &c->ngidx, (size_t)s + 1);
        hgroup_t *g;
        if (c->gidx[s] == 0) {
            if (c->ng == c->capg) {
                size_t old = c->capg;
                c->capg = c->capg ? c->capg * 2 : 16;
                c->g = wf_realloc(c->g, c->capg * sizeof(*c->g));
                memset(c->g + old, 0, (c->capg - old) * sizeof(*c->g));
            }
            c->gidx[s] = (uint32_t)++c->ng;
            g = &c->g[c->ng - 1];
            g->ls = pql__ls_drop_name(ev, s);
        }
        g = &c->g[c->gidx[s] - 1];
        if (g->gen != c->gen) {
            g->gen = c->gen;
            g->n = 0;
            if (used == c->caporder) {
                c->caporder = c->caporder ? c->caporder * 2 : 16;
                c->order = wf_realloc(c->order, c->caporder * sizeof(*c->order));
            }
            c->order[used++] = c->gidx[s] - 1;
        }
        if (g->n == g->cap) {
            g->cap = g->cap ? g->cap * 2 : 16;
            g->b = wf_realloc(g->b, g->cap * sizeof(*g->b));
        }
        g->b[g->n].upper = le;
        g->b[g->n++].count = in->s[i].v;
    }
    for (size_t i = 0; i < used; i++) {
        hgroup_t *g = &c->g[c->order[i]];
        pql__vec_push(out, g->ls, bucket_quantile(q, g->b, g->n), ts);
    }
    return 0;
}

/* ---- dates ---------------------------------------------------------------------------------- */

typedef struct {
    int64_t year;
    int month, day, hour, minute, wday, yday;
} civil_t;

static bool is_leap(int64_t y)
{
    return y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
}

/* Go's time.Unix(sec, 0).UTC() broken down, with its arithmetic (absolute time since year
 * -292277022399 as a uint64), so that even the extreme seconds Go's int64(NaN) produces give
 * Go's answers. */
static void civil_from_unix(int64_t sec, civil_t *c)
{
    static const int before[13] = {0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334, 365};
    const uint64_t day_s = 86400, d400 = 365 * 400 + 97, d100 = 365 * 100 + 24, d4 = 365 * 4 + 1;
    uint64_t abs = (uint64_t)sec + 9223372028715321600ULL;
    uint64_t d = abs / day_s;
    uint64_t n = d / d400;
    uint64_t y = 400 * n;
    d -= d400 * n;
    n = d / d100;
    n -= n >> 2;
    y += 100 * n;
    d -= d100 * n;
    n = d / d4;
    y += 4 * n;
    d -= d4 * n;
    n = d / 365;
    n -= n >> 2;
    y += n;
    d -= 365 * n;
    c->year = (int64_t)y - 292277022399LL;
    c->yday = (int)d + 1;
    int day = (int)d;
    c->hour = (int)(abs % day_s / 3600);
    c->minute = (int)(abs % 3600 / 60);
    c->wday = (int)((abs + day_s) % (7 * day_s) / day_s); /* Go adds Monday (1) days */
    if (is_leap(c->year)) {
        if (day > 31 + 29 - 1) {
            day--;
        } else if (day == 31 + 29 - 1) {
            c->month = 2;
            c->day = 29;
            return;
        }
    }
    int m = day / 31;
    int end = before[m + 1], begin;
    if (day >= end) {
        m++;
        begin = end;
    } else {
        begin = before[m];
    }
    c->month = m + 1;
    c->day = day - begin + 1;
}

static double date_part(pql_fn_t fn, int64_t sec)
{
    civil_t c;
    civil_from_unix(sec, &c);
    switch (fn) {
    case PQL_FN_DAYS_IN_MONTH: {
        static const int dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
        int d = dim[c.month - 1];
        if (c.month == 2 && is_leap(c.year)) {
            d = 29;
        }
        return d;
    }
    case PQL_FN_DAY_OF_MONTH:
        return c.day;
    case PQL_FN_DAY_OF_WEEK:
        return c.wday;
    case PQL_FN_DAY_OF_YEAR:
        return c.yday;
    case PQL_FN_HOUR:
        return c.hour;
    case PQL_FN_MINUTE:
        return c.minute;
    case PQL_FN_MONTH:
        return c.month;
    default:
        return (double)c.year;
    }
}

/* Go's int64(f) on amd64: out-of-range and NaN give the minimum int64. */
static int64_t go_int64(double f)
{
    if (!(f >= -9223372036854775808.0 && f < 9223372036854775808.0)) {
        return INT64_MIN;
    }
    return (int64_t)f;
}

/* ---- simple math -------------------------------------------------------------------------- */

static double go_log2(double x)
{
    int e;
    double frac = frexp(x, &e);
    if (frac == 0.5) {
        return (double)(e - 1);
    }
    return log(frac) * (1 / M_LN2) + (double)e;
}

static double simple(pql_fn_t fn, double v)
{
    switch (fn) {
    case PQL_FN_ABS:
        return fabs(v);
    case PQL_FN_CEIL:
        return ceil(v);
    case PQL_FN_FLOOR:
        return floor(v);
    case PQL_FN_EXP:
        return exp(v);
    case PQL_FN_SQRT:
        return sqrt(v);
    case PQL_FN_LN:
        return log(v);
    case PQL_FN_LOG2:
        if (isnan(v) || v <= 0 || isinf(v)) {
            return log2(v);
        }
        return go_log2(v);
    case PQL_FN_LOG10:
        return log(v) * (1 / M_LN10);
    case PQL_FN_SIN:
        return sin(v);
    case PQL_FN_COS:
        return cos(v);
    case PQL_FN_TAN:
        return tan(v);
    case PQL_FN_ASIN:
        return asin(v);
    case PQL_FN_ACOS:
        return acos(v);
    case PQL_FN_ATAN:
        return atan(v);
    case PQL_FN_SINH:
        return sinh(v);
    case PQL_FN_COSH:
        return cosh(v);
    case PQL_FN_TANH:
        return tanh(v);
    case PQL_FN_ASINH:
        return asinh(v);
    case PQL_FN_ACOSH:
        return acosh(v);
    case PQL_FN_ATANH:
        return atanh(v);
    case PQL_FN_RAD:
        return v * M_PI / 180;
    case PQL_FN_DEG:
        return v * 180 / M_PI;
    case PQL_FN_SGN:
        return v < 0 ? -1 : v > 0 ? 1 : v;
    default:
        return NAN;
    }
}

static bool sort_asc_less(const pql__smp_t *a, const pql__smp_t *b)
{
    /* sort.Reverse(vectorByReverseValueHeap): Less(i, j) = rev.Less(j, i). */
    return isnan(b->v) || b->v > a->v;
}

static bool sort_desc_less(const pql__smp_t *a, const pql__smp_t *b)
{
    return isnan(b->v) || b->v < a->v;
}

int pql__call_fn(pql__ev_t *ev, pql_fn_t fn, void *cache, pql__vec_t *in, size_t nin, int64_t ts,
                 pql__vec_t *out)
{
    fcache_t *c = cache;
    switch (fn) {
    case PQL_FN_ABS:
    case PQL_FN_CEIL:
    case PQL_FN_FLOOR:
    case PQL_FN_EXP:
    case PQL_FN_SQRT:
    case PQL_FN_LN:
    case PQL_FN_LOG2:
    case PQL_FN_LOG10:
    case PQL_FN_SIN:
    case PQL_FN_COS:
    case PQL_FN_TAN:
    case PQL_FN_ASIN:
    case PQL_FN_ACOS:
    case PQL_FN_ATAN:
    case PQL_FN_SINH:
    case PQL_FN_COSH:
    case PQL_FN_TANH:
    case PQL_FN_ASINH:
    case PQL_FN_ACOSH:
    case PQL_FN_ATANH:
    case PQL_FN_RAD:
    case PQL_FN_DEG:
    case PQL_FN_SGN:
        for (size_t i = 0; i < in[0].n; i++) {
            pql__vec_push(out, pql__ls_drop_name(ev, in[0].s[i].ls), simple(fn, in[0].s[i].v), ts);
        }
        return 0;
    case PQL_FN_CLAMP: {
        double mn = in[1].s[0].v, mx = in[2].s[0].v;
        if (mx < mn) {
            return 0;
        }
        for (size_t i = 0; i < in[0].n; i++) {
            pql__vec_push(out, pql__ls_drop_name(ev, in[0].s[i].ls),
                          pql__go_max(mn, pql__go_min(mx, in[0].s[i].v)), ts);
        }
        return 0;
    }
    case PQL_FN_CLAMP_MAX:
    case PQL_FN_CLAMP_MIN: {
        double b = in[1].s[0].v;
        for (size_t i = 0; i < in[0].n; i++) {
            double v = fn == PQL_FN_CLAMP_MAX ? pql__go_min(b, in[0].s[i].v)
                                              : pql__go_max(b, in[0].s[i].v);
            pql__vec_push(out, pql__ls_drop_name(ev, in[0].s[i].ls), v, ts);
        }
        return 0;
    }
    case PQL_FN_ROUND: {
        double to = nin >= 2 ? in[1].s[0].v : 1;
        double inv = 1.0 / to;
        for (size_t i = 0; i < in[0].n; i++) {
            double v = floor(in[0].s[i].v * inv + 0.5) / inv;
            pql__vec_push(out, pql__ls_drop_name(ev, in[0].s[i].ls), v, ts);
        }
        return 0;
    }
    case PQL_FN_SCALAR:
        pql__vec_push(out, PQL__LS_EMPTY, in[0].n == 1 ? in[0].s[0].v : NAN, ts);
        return 0;
    case PQL_FN_VECTOR:
        pql__vec_push(out, PQL__LS_EMPTY, in[0].s[0].v, ts);
        return 0;
    case PQL_FN_TIME:
        pql__vec_push(out, PQL__LS_EMPTY, (double)ts / 1000, ts);
        return 0;
    case PQL_FN_PI:
        pql__vec_push(out, PQL__LS_EMPTY, M_PI, ts);
        return 0;
    case PQL_FN_SORT:
    case PQL_FN_SORT_DESC: {
        size_t base = out->n;
        for (size_t i = 0; i < in[0].n; i++) {
            pql__vec_push(out, in[0].s[i].ls, in[0].s[i].v, ts);
        }
        if (out->n - base > 1) {
            pql__sort_smp(out->s + base, out->n - base,
                          fn == PQL_FN_SORT ? sort_asc_less : sort_desc_less);
        }
        return 0;
    }
    case PQL_FN_TIMESTAMP:
        for (size_t i = 0; i < in[0].n; i++) {
            pql__vec_push(out, pql__ls_drop_name(ev, in[0].s[i].ls), (double)in[0].s[i].t / 1000,
                          ts);
        }
        return 0;
    case PQL_FN_HISTOGRAM_COUNT:
    case PQL_FN_HISTOGRAM_SUM:
    case PQL_FN_HISTOGRAM_FRACTION:
        /* Only native histograms have these; float samples are skipped. */
        return 0;
    case PQL_FN_HISTOGRAM_QUANTILE:
        return histogram_quantile(ev, c, in[0].s[0].v, &in[1], ts, out);
    case PQL_FN_LABEL_REPLACE:
    case PQL_FN_LABEL_JOIN:
        if (c->invalid) {
            return -1;
        }
        for (size_t i = 0; i < in[0].n; i++) {
            uint32_t ls = in[0].s[i].ls;
            grow_u32(&c->lsmap, &c->nlsmap, (size_t)ls + 1);
            if (c->lsmap[ls] == 0) {
                uint32_t r = fn == PQL_FN_LABEL_REPLACE ? label_replace_one(ev, c, ls)
                                                        : label_join_one(ev, c, ls);
                grow_u32(&c->lsmap, &c->nlsmap, (size_t)ls + 1);
                c->lsmap[ls] = r + 1;
            }
            pql__vec_push(out, c->lsmap[ls] - 1, in[0].s[i].v, ts);
        }
        return 0;
    case PQL_FN_DAYS_IN_MONTH:
    case PQL_FN_DAY_OF_MONTH:
    case PQL_FN_DAY_OF_WEEK:
    case PQL_FN_DAY_OF_YEAR:
    case PQL_FN_HOUR:
    case PQL_FN_MINUTE:
    case PQL_FN_MONTH:
    case PQL_FN_YEAR:
        if (nin == 0) {
            /* time.Unix(ts/1000, 0): Go's division truncates. */
            pql__vec_push(out, PQL__LS_EMPTY, date_part(fn, ts / 1000), ts);
            return 0;
        }
        for (size_t i = 0; i < in[0].n; i++) {
            pql__vec_push(out, pql__ls_drop_name(ev, in[0].s[i].ls),
                          date_part(fn, go_int64(in[0].s[i].v)), ts);
        }
        return 0;
    default:
        break;
    }
    return pql__fail(ev, "unsupported function in instant evaluation");
}
