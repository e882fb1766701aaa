/*
 * px_trace.c - W3C Trace Context and B3 propagation, sampling, x-request-id, span records and
 * the per-worker span queue (px_trace.h). Pure functions over borrowed bytes, except the queue.
 */
#include "px_trace.h"

#include "wf_alloc.h"
#include "wf_clock.h"
#include "wf_err.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

/* ---- random numbers ---- */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void px_rng_seed(px_rng_t *r, uint64_t seed)
{
    /* splitmix64 spreads any seed, 0 included, over a state that is never all zero. */
    for (int i = 0; i < 4; i++) {
        r->s[i] = splitmix64(&seed);
    }
}

int px_rng_init(px_rng_t *r)
{
    uint64_t seed;
    ssize_t got = getrandom(&seed, sizeof(seed), GRND_NONBLOCK);
    if (got == (ssize_t)sizeof(seed)) {
        px_rng_seed(r, seed);
        return 0;
    }
    int err = got < 0 ? -errno : -EIO;
    px_rng_seed(r, (uint64_t)wf_mono_ns() ^ (uint64_t)(uintptr_t)r);
    return err;
}

static inline uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t px_rng_next(px_rng_t *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

static void rng_bytes(px_rng_t *r, uint8_t *p, size_t n)
{
    while (n > 0) {
        uint64_t v = px_rng_next(r);
        size_t k = n < 8 ? n : 8;
        memcpy(p, &v, k);
        p += k;
        n -= k;
    }
}

static bool all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] != 0) {
            return false;
        }
    }
    return true;
}

/* Random bytes that are not all zero: a zero id means "invalid" in both W3C and B3. */
static void rng_id(px_rng_t *r, uint8_t *p, size_t n)
{
    do {
        rng_bytes(r, p, n);
    } while (all_zero(p, n));
}

static const char hexdig[] = "0123456789abcdef";

static void put_hex(char *out, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hexdig[p[i] >> 4];
        out[2 * i + 1] = hexdig[p[i] & 15];
    }
}

void px_request_id(px_rng_t *r, char out[37])
{
    uint8_t b[16];
    rng_bytes(r, b, sizeof(b));
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40); /* version 4 */
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    char *o = out;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) {
            *o++ = '-';
        }
        put_hex(o, &b[i], 1);
        o += 2;
    }
    *o = '\0';
}

/* ---- hex ---- */

/* W3C ids are lowercase hex; B3 ids may be either case. */
static int hexval(char c, bool any_case)
{
    if (!any_case && c >= 'A' && c <= 'F') {
        return -1;
    }
    return wf_hex_digit((unsigned char)c);
}

/* Decode 2n hex digits at p into out[n]. */
static bool get_hex(const char *p, size_t n, uint8_t *out, bool any_case)
{
    for (size_t i = 0; i < n; i++) {
        int hi = hexval(p[2 * i], any_case);
        int lo = hexval(p[2 * i + 1], any_case);
        if (hi < 0 || lo < 0) {
            return false;
        }
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}

/* ---- W3C traceparent ---- */

int px_traceparent_parse(const char *p, size_t len, px_traceparent_t *out)
{
    uint8_t ver;
    if (len < PX_TRACEPARENT_LEN || !get_hex(p, 1, &ver, false) || ver == 0xff || p[2] != '-') {
        return WF_E_INVAL;
    }
    if (ver == 0 && len != PX_TRACEPARENT_LEN) {
        return WF_E_INVAL;
    }
    /* A later version may append fields, each introduced by '-'. */
    if (len > PX_TRACEPARENT_LEN && p[PX_TRACEPARENT_LEN] != '-') {
        return WF_E_INVAL;
    }
    if (p[35] != '-' || p[52] != '-') {
        return WF_E_INVAL;
    }
    px_traceparent_t tp;
    tp.version = ver;
    if (!get_hex(p + 3, 16, tp.trace_id, false) || !get_hex(p + 36, 8, tp.parent_id, false) ||
        !get_hex(p + 53, 1, &tp.flags, false)) {
        return WF_E_INVAL;
    }
    if (all_zero(tp.trace_id, 16) || all_zero(tp.parent_id, 8)) {
        return WF_E_INVAL;
    }
    *out = tp;
    return 0;
}

void px_traceparent_format(const uint8_t trace_id[16], const uint8_t span_id[8], bool sampled,
                           char out[PX_TRACEPARENT_LEN + 1])
{
    memcpy(out, "00-", 3);
    put_hex(out + 3, trace_id, 16);
    out[35] = '-';
    put_hex(out + 36, span_id, 8);
    out[52] = '-';
    out[53] = '0';
    out[54] = sampled ? '1' : '0';
    out[55] = '\0';
}

/* ---- W3C tracestate ---- */

#define TS_MAX_MEMBERS 32
#define TS_BIG_MEMBER 128

static bool ts_lcalpha(char c)
{
    return c >= 'a' && c <= 'z';
}

static bool ts_keychar(char c)
{
    return ts_lcalpha(c) || (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '*' || c == '/';
}

static bool ts_key_valid(const char *k, size_t n)
{
    const char *at = memchr(k, '@', n);
    if (at == NULL) {
        if (n < 1 || n > 256 || !ts_lcalpha(k[0])) {
            return false;
        }
        for (size_t i = 1; i < n; i++) {
            if (!ts_keychar(k[i])) {
                return false;
            }
        }
        return true;
    }
    size_t tn = (size_t)(at - k), sn = n - tn - 1;
    if (tn < 1 || tn > 241 || sn < 1 || sn > 14) {
        return false;
    }
    if (!ts_lcalpha(k[0]) && !(k[0] >= '0' && k[0] <= '9')) {
        return false;
    }
    for (size_t i = 1; i < tn; i++) {
        if (!ts_keychar(k[i])) {
            return false;
        }
    }
    const char *s = at + 1;
    if (!ts_lcalpha(s[0])) {
        return false;
    }
    for (size_t i = 1; i < sn; i++) {
        if (!ts_keychar(s[i])) {
            return false;
        }
    }
    return true;
}

static bool ts_nblk(char c)
{
    unsigned char u = (unsigned char)c;
    return u >= 0x21 && u <= 0x7e && u != ',' && u != '=';
}

static bool ts_value_valid(const char *v, size_t n)
{
    if (n < 1 || n > 256 || !ts_nblk(v[n - 1])) {
        return false;
    }
    for (size_t i = 0; i + 1 < n; i++) {
        if (v[i] != ' ' && !ts_nblk(v[i])) {
            return false;
        }
    }
    return true;
}

typedef struct {
    const char *p;
    size_t len, keylen;
    bool keep;
} ts_member_t;

int px_tracestate_normalize(const char *p, size_t len, char out[PX_TRACESTATE_MAX + 1],
                            size_t *out_len)
{
    ts_member_t m[TS_MAX_MEMBERS];
    size_t n = 0, i = 0;
    out[0] = '\0';
    *out_len = 0;
    while (i <= len) {
        size_t j = i;
        while (j < len && p[j] != ',') {
            j++;
        }
        size_t a = i, b = j;
        while (a < b && (p[a] == ' ' || p[a] == '\t')) {
            a++;
        }
        while (b > a && (p[b - 1] == ' ' || p[b - 1] == '\t')) {
            b--;
        }
        if (b > a) {
            const char *eq = memchr(p + a, '=', b - a);
            if (eq == NULL || n == TS_MAX_MEMBERS) {
                return WF_E_INVAL;
            }
            size_t kl = (size_t)(eq - (p + a));
            if (!ts_key_valid(p + a, kl) || !ts_value_valid(eq + 1, b - a - kl - 1)) {
                return WF_E_INVAL;
            }
            for (size_t k = 0; k < n; k++) {
                if (m[k].keylen == kl && memcmp(m[k].p, p + a, kl) == 0) {
                    return WF_E_INVAL;
                }
            }
            m[n++] = (ts_member_t){p + a, b - a, kl, true};
        }
        i = j + 1;
    }
    size_t total = 0;
    for (size_t k = 0; k < n; k++) {
        total += m[k].len + (k > 0);
    }
    /* Too long: drop the large members first, then from the end (spec §3.3.1.5). */
    for (size_t pass = 0; pass < 2 && total > PX_TRACESTATE_MAX; pass++) {
        for (size_t k = n; k-- > 0 && total > PX_TRACESTATE_MAX;) {
            if (m[k].keep && (pass == 1 || m[k].len > TS_BIG_MEMBER)) {
                m[k].keep = false;
                total -= m[k].len + 1;
            }
        }
    }
    size_t o = 0;
    for (size_t k = 0; k < n; k++) {
        if (!m[k].keep) {
            continue;
        }
        if (o > 0) {
            out[o++] = ',';
        }
        memcpy(out + o, m[k].p, m[k].len);
        o += m[k].len;
    }
    WF_ASSERT(o <= PX_TRACESTATE_MAX);
    out[o] = '\0';
    *out_len = o;
    return 0;
}

/* ---- B3 ---- */

static int b3_sampling_char(char c, px_sampling_t *s)
{
    switch (c) {
    case '0':
        *s = PX_SAMPLE_DROP;
        return 0;
    case '1':
        *s = PX_SAMPLE_ACCEPT;
        return 0;
    case 'd':
        *s = PX_SAMPLE_DEBUG;
        return 0;
    default:
        return WF_E_INVAL;
    }
}

/* A 16- or 32-digit B3 trace id into a 16-byte id; 64-bit ids are left-padded with zeros. */
static bool b3_trace_id(const char *p, size_t n, uint8_t id[16], bool *is64)
{
    memset(id, 0, 16);
    if (n == 32) {
        *is64 = false;
        return get_hex(p, 16, id, true) && !all_zero(id, 16);
    }
    if (n == 16) {
        *is64 = true;
        return get_hex(p, 8, id + 8, true) && !all_zero(id, 16);
    }
    return false;
}

static bool b3_span_id(const char *p, size_t n, uint8_t id[8])
{
    return n == 16 && get_hex(p, 8, id, true) && !all_zero(id, 8);
}

int px_b3_single_parse(const char *p, size_t len, px_trace_in_t *in)
{
    px_trace_in_t t;
    memset(&t, 0, sizeof(t));
    t.source = PX_TRACE_SRC_B3_SINGLE;
    if (len == 0) {
        return WF_E_INVAL;
    }
    if (len == 1) {
        if (b3_sampling_char(p[0], &t.sampling) != 0) {
            return WF_E_INVAL;
        }
        goto ok;
    }
    const char *d1 = memchr(p, '-', len);
    if (d1 == NULL) {
        return WF_E_INVAL;
    }
    size_t tl = (size_t)(d1 - p);
    if (!b3_trace_id(p, tl, t.trace_id, &t.trace_id_64)) {
        return WF_E_INVAL;
    }
    const char *s = d1 + 1, *end = p + len;
    if (end - s < 16 || !b3_span_id(s, 16, t.parent_id)) {
        return WF_E_INVAL;
    }
    s += 16;
    t.has_ids = true;
    if (s == end) {
        goto ok;
    }
    if (*s != '-' || end - s < 2 || b3_sampling_char(s[1], &t.sampling) != 0) {
        return WF_E_INVAL;
    }
    s += 2;
    if (s == end) {
        goto ok;
    }
    uint8_t parent[8];
    if (*s != '-' || !b3_span_id(s + 1, (size_t)(end - s - 1), parent)) {
        return WF_E_INVAL;
    }
ok:
    in->source = t.source;
    in->has_ids = t.has_ids;
    in->trace_id_64 = t.trace_id_64;
    memcpy(in->trace_id, t.trace_id, 16);
    memcpy(in->parent_id, t.parent_id, 8);
    in->sampling = t.sampling;
    return 0;
}

/* ---- extraction ---- */

static bool name_is(wf_str_t name, const char *lit, size_t litlen)
{
    return name.len == litlen && strncasecmp(name.p, lit, litlen) == 0;
}
#define NAME_IS(n, lit) name_is((n), (lit), sizeof(lit) - 1)

enum { H_TP, H_B3, H_TID, H_SID, H_PID, H_SAMPLED, H_FLAGS, H_COUNT };

bool px_trace_is_header(wf_str_t n)
{
    return NAME_IS(n, "traceparent") || NAME_IS(n, "tracestate") || NAME_IS(n, "b3") ||
           NAME_IS(n, "x-b3-traceid") || NAME_IS(n, "x-b3-spanid") ||
           NAME_IS(n, "x-b3-parentspanid") || NAME_IS(n, "x-b3-sampled") ||
           NAME_IS(n, "x-b3-flags");
}

static void b3_multi(const wf_str_t *v, const bool *have, px_trace_in_t *in)
{
    px_sampling_t s = PX_SAMPLE_DEFER;
    if (have[H_SAMPLED]) {
        wf_str_t x = v[H_SAMPLED];
        if (wf_str_eq_c(x, "1") || (x.len == 4 && strncasecmp(x.p, "true", 4) == 0)) {
            s = PX_SAMPLE_ACCEPT;
        } else if (wf_str_eq_c(x, "0") || (x.len == 5 && strncasecmp(x.p, "false", 5) == 0)) {
            s = PX_SAMPLE_DROP;
        }
    }
    if (have[H_FLAGS] && wf_str_eq_c(v[H_FLAGS], "1")) {
        s = PX_SAMPLE_DEBUG;
    }
    uint8_t tid[16], sid[8], pid[8];
    bool is64 = false;
    bool ids = have[H_TID] && have[H_SID] && b3_trace_id(v[H_TID].p, v[H_TID].len, tid, &is64) &&
               b3_span_id(v[H_SID].p, v[H_SID].len, sid) &&
               (!have[H_PID] || b3_span_id(v[H_PID].p, v[H_PID].len, pid));
    in->sampling = s;
    if (ids) {
        in->source = PX_TRACE_SRC_B3_MULTI;
        in->has_ids = true;
        in->trace_id_64 = is64;
        memcpy(in->trace_id, tid, 16);
        memcpy(in->parent_id, sid, 8);
    }
}

void px_trace_extract(const px_http1_header_t *h, size_t n, px_trace_in_t *in)
{
    wf_str_t v[H_COUNT];
    bool have[H_COUNT] = {false};
    /* tracestate may come on several lines; joined with ',' it is one list (RFC 9110 §5.3). */
    char ts[PX_TRACESTATE_MAX * 4];
    size_t tslen = 0;
    bool ts_over = false, have_ts = false;

    memset(in, 0, sizeof(*in));
    for (size_t i = 0; i < n; i++) {
        wf_str_t nm = h[i].name;
        int k = -1;
        char c0 = nm.len > 0 ? (char)(nm.p[0] | 0x20) : '\0';
        if (c0 != 't' && c0 != 'b' && c0 != 'x') {
            continue; /* most fields: one comparison */
        }
        if (NAME_IS(nm, "traceparent")) {
            k = H_TP;
        } else if (NAME_IS(nm, "tracestate")) {
            have_ts = true;
            if (tslen + 1 + h[i].value.len > sizeof(ts)) {
                ts_over = true;
            } else {
                if (tslen > 0) {
                    ts[tslen++] = ',';
                }
                if (h[i].value.len > 0) {
                    memcpy(ts + tslen, h[i].value.p, h[i].value.len);
                }
                tslen += h[i].value.len;
            }
            continue;
        } else if (NAME_IS(nm, "b3")) {
            k = H_B3;
        } else if (NAME_IS(nm, "x-b3-traceid")) {
            k = H_TID;
        } else if (NAME_IS(nm, "x-b3-spanid")) {
            k = H_SID;
        } else if (NAME_IS(nm, "x-b3-parentspanid")) {
            k = H_PID;
        } else if (NAME_IS(nm, "x-b3-sampled")) {
            k = H_SAMPLED;
        } else if (NAME_IS(nm, "x-b3-flags")) {
            k = H_FLAGS;
        }
        if (k >= 0 && !have[k]) {
            have[k] = true;
            v[k] = h[i].value;
        }
    }

    px_traceparent_t tp;
    if (have[H_TP] && px_traceparent_parse(v[H_TP].p, v[H_TP].len, &tp) == 0) {
        in->source = PX_TRACE_SRC_TRACEPARENT;
        in->b3_field = have[H_B3];
        in->has_ids = true;
        memcpy(in->trace_id, tp.trace_id, 16);
        memcpy(in->parent_id, tp.parent_id, 8);
        in->sampling = (tp.flags & 1) ? PX_SAMPLE_ACCEPT : PX_SAMPLE_DROP;
        /* A tracestate too large to hold is treated like an invalid one: dropped. */
        if (have_ts && !ts_over &&
            px_tracestate_normalize(ts, tslen, in->tracestate, &in->tracestate_len) != 0) {
            in->tracestate_len = 0;
            in->tracestate[0] = '\0';
        }
        return;
    }
    if (have[H_B3] && px_b3_single_parse(v[H_B3].p, v[H_B3].len, in) == 0) {
        in->b3_field = true;
        return;
    }
    b3_multi(v, have, in);
    in->b3_field = have[H_B3];
}

void px_trace_start(const px_trace_in_t *in, double sampling_pct, px_rng_t *rng,
                    px_trace_ctx_t *ctx)
{
    memset(ctx, 0, sizeof(*ctx));
    if (in->has_ids) {
        memcpy(ctx->trace_id, in->trace_id, 16);
        memcpy(ctx->parent_id, in->parent_id, 8);
        ctx->trace_id_64 = in->trace_id_64;
    } else {
        rng_id(rng, ctx->trace_id, 16);
    }
    rng_id(rng, ctx->span_id, 8);
    switch (in->sampling) {
    case PX_SAMPLE_DEBUG:
        ctx->debug = true;
        ctx->sampled = true;
        break;
    case PX_SAMPLE_ACCEPT:
        ctx->sampled = true;
        break;
    case PX_SAMPLE_DROP:
        ctx->sampled = false;
        break;
    case PX_SAMPLE_DEFER: {
        double pct = sampling_pct < 0 ? 0 : sampling_pct > 100 ? 100 : sampling_pct;
        double u = (double)(px_rng_next(rng) >> 11) * 0x1.0p-53; /* [0, 1) */
        ctx->sampled = u * 100.0 < pct;
        break;
    }
    }
    ctx->b3_single = in->source == PX_TRACE_SRC_B3_SINGLE || in->b3_field;
    if (in->source == PX_TRACE_SRC_TRACEPARENT && in->tracestate_len > 0) {
        memcpy(ctx->tracestate, in->tracestate, in->tracestate_len + 1);
        ctx->tracestate_len = in->tracestate_len;
    }
}

/* ---- injection ---- */

typedef struct {
    px_trace_out_t *out;
    size_t used;
} inj_t;

static char *inj_take(inj_t *j, size_t n)
{
    WF_ASSERT(j->used + n <= sizeof(j->out->storage));
    char *p = j->out->storage + j->used;
    j->used += n;
    return p;
}

static void inj_add(inj_t *j, const char *name, const char *val, size_t len)
{
    WF_ASSERT(j->out->n < PX_TRACE_MAX_OUT);
    j->out->h[j->out->n++] = (px_http1_header_t){wf_str(name), {val, len}};
}

void px_trace_inject(const px_trace_ctx_t *ctx, px_trace_out_t *out)
{
    inj_t j = {out, 0};
    out->n = 0;

    char *tp = inj_take(&j, PX_TRACEPARENT_LEN + 1);
    px_traceparent_format(ctx->trace_id, ctx->span_id, ctx->sampled, tp);
    inj_add(&j, "traceparent", tp, PX_TRACEPARENT_LEN);
    if (ctx->tracestate_len > 0) {
        char *ts = inj_take(&j, ctx->tracestate_len);
        memcpy(ts, ctx->tracestate, ctx->tracestate_len);
        inj_add(&j, "tracestate", ts, ctx->tracestate_len);
    }

    const uint8_t *tid = ctx->trace_id_64 ? ctx->trace_id + 8 : ctx->trace_id;
    size_t tid_n = ctx->trace_id_64 ? 8 : 16;
    char *t = inj_take(&j, 2 * tid_n);
    put_hex(t, tid, tid_n);
    inj_add(&j, "X-B3-TraceId", t, 2 * tid_n);
    char *s = inj_take(&j, 16);
    put_hex(s, ctx->span_id, 8);
    inj_add(&j, "X-B3-SpanId", s, 16);
    bool root = all_zero(ctx->parent_id, 8);
    char *pid = NULL;
    if (!root) {
        pid = inj_take(&j, 16);
        put_hex(pid, ctx->parent_id, 8);
        inj_add(&j, "X-B3-ParentSpanId", pid, 16);
    }
    /* B3: debug implies accept, so X-B3-Sampled is not sent with X-B3-Flags. */
    if (ctx->debug) {
        inj_add(&j, "X-B3-Flags", "1", 1);
    } else {
        inj_add(&j, "X-B3-Sampled", ctx->sampled ? "1" : "0", 1);
    }
    if (ctx->b3_single) {
        size_t n = 2 * tid_n + 1 + 16 + 2 + (root ? 0 : 17);
        char *b = inj_take(&j, n), *o = b;
        memcpy(o, t, 2 * tid_n);
        o += 2 * tid_n;
        *o++ = '-';
        memcpy(o, s, 16);
        o += 16;
        *o++ = '-';
        *o++ = ctx->debug ? 'd' : ctx->sampled ? '1' : '0';
        if (!root) {
            *o++ = '-';
            memcpy(o, pid, 16);
            o += 16;
        }
        WF_ASSERT((size_t)(o - b) == n);
        inj_add(&j, "b3", b, n);
    }
}

/* ---- span records ---- */

size_t px_span_name(char *out, size_t cap, wf_str_t host, uint32_t port, wf_str_t route_path)
{
    if (route_path.len == 0) {
        route_path = WF_STR_LIT("/*");
    }
    int n = snprintf(out, cap, "%.*s:%u%.*s", (int)host.len, host.p ? host.p : "", port,
                     (int)route_path.len, route_path.p);
    return n < 0 ? 0 : (size_t)n;
}

static size_t clip(wf_str_t s, size_t max)
{
    return s.len < max ? s.len : max;
}

px_span_t *px_span_new(const px_span_in_t *in)
{
    const px_trace_ctx_t *c = in->ctx;
    const wf_str_t *src[] = {&in->name,
                             &in->method,
                             &in->url,
                             &in->protocol,
                             &in->upstream_cluster,
                             &in->response_flags,
                             &in->request_id,
                             &in->peer_address,
                             &in->user_agent,
                             &in->downstream_cluster};
    enum { NSRC = sizeof(src) / sizeof(src[0]) };
    size_t lens[NSRC + 1], total = 0;
    for (size_t i = 0; i < NSRC; i++) {
        lens[i] = clip(*src[i], src[i] == &in->url ? PX_SPAN_URL_MAX : PX_SPAN_STR_MAX);
        total += lens[i] + 1;
    }
    lens[NSRC] = c->tracestate_len;
    total += lens[NSRC] + 1;

    px_span_t *s = wf_malloc(sizeof(*s) + total);
    memset(s, 0, sizeof(*s));
    memcpy(s->trace_id, c->trace_id, 16);
    memcpy(s->span_id, c->span_id, 8);
    memcpy(s->parent_id, c->parent_id, 8);
    s->flags = c->sampled ? 1 : 0;
    s->kind = in->kind;
    s->start_ns = in->start_ns;
    s->end_ns = in->end_ns < in->start_ns ? in->start_ns : in->end_ns;
    s->status = in->status;
    s->error = in->status == 0 || in->status >= 500;
    s->request_size = in->request_size;
    s->response_size = in->response_size;

    wf_str_t *dst[] = {&s->name,
                       &s->method,
                       &s->url,
                       &s->protocol,
                       &s->upstream_cluster,
                       &s->response_flags,
                       &s->request_id,
                       &s->peer_address,
                       &s->user_agent,
                       &s->downstream_cluster,
                       &s->tracestate};
    char *mem = (char *)(s + 1);
    for (size_t i = 0; i <= NSRC; i++) {
        const char *from = i < NSRC ? src[i]->p : c->tracestate;
        if (lens[i] > 0) {
            memcpy(mem, from, lens[i]);
        }
        mem[lens[i]] = '\0';
        *dst[i] = (wf_str_t){mem, lens[i]};
        mem += lens[i] + 1;
    }
    return s;
}

void px_span_free(px_span_t *s)
{
    wf_free(s);
}

/* ---- the queue ---- */

struct px_span_queue {
    size_t mask;
    px_span_t **slots;
    /* Producer and consumer indexes on their own cache lines: each is written by one side. */
    _Alignas(64) _Atomic size_t tail;
    _Alignas(64) _Atomic size_t head;
    _Alignas(64) _Atomic uint64_t dropped;
};

px_span_queue_t *px_span_queue_new(size_t capacity)
{
    size_t cap = 2;
    while (cap < capacity) {
        cap <<= 1;
    }
    px_span_queue_t *q = wf_calloc(1, sizeof(*q));
    q->mask = cap - 1;
    q->slots = wf_calloc(cap, sizeof(*q->slots));
    atomic_init(&q->tail, 0);
    atomic_init(&q->head, 0);
    atomic_init(&q->dropped, 0);
    return q;
}

void px_span_queue_free(px_span_queue_t *q)
{
    if (q == NULL) {
        return;
    }
    px_span_t *s;
    while (px_span_queue_pop(q, &s, 1) == 1) {
        px_span_free(s);
    }
    wf_free(q->slots);
    wf_free(q);
}

bool px_span_queue_push(px_span_queue_t *q, px_span_t *s)
{
    size_t t = atomic_load_explicit(&q->tail, memory_order_relaxed);
    size_t h = atomic_load_explicit(&q->head, memory_order_acquire);
    if (t - h > q->mask) {
        px_span_free(s);
        uint64_t d = atomic_load_explicit(&q->dropped, memory_order_relaxed);
        atomic_store_explicit(&q->dropped, d + 1, memory_order_relaxed);
        return false;
    }
    q->slots[t & q->mask] = s;
    atomic_store_explicit(&q->tail, t + 1, memory_order_release);
    return true;
}

size_t px_span_queue_pop(px_span_queue_t *q, px_span_t **out, size_t max)
{
    size_t h = atomic_load_explicit(&q->head, memory_order_relaxed);
    size_t t = atomic_load_explicit(&q->tail, memory_order_acquire);
    size_t n = t - h < max ? t - h : max;
    for (size_t i = 0; i < n; i++) {
        out[i] = q->slots[(h + i) & q->mask];
    }
    atomic_store_explicit(&q->head, h + n, memory_order_release);
    return n;
}

uint64_t px_span_queue_dropped(const px_span_queue_t *q)
{
    return atomic_load_explicit(&((px_span_queue_t *)q)->dropped, memory_order_relaxed);
}
