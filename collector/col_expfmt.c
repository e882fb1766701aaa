/*
 * col_expfmt.c - the Prometheus text format 0.0.4 and OpenMetrics 1.0 text parser, and the
 * text format writer. See col_expfmt.h for the grammar and the choices made.
 *
 * The parser works line by line: it finds the next newline with memchr, refuses lines above
 * the limit before looking at them, and then reads the line with a cursor that never leaves
 * it. Nothing is copied unless a label value or HELP text holds an escape.
 */
#include "col_expfmt.h"

#include "wf_alloc.h"
#include "wf_err.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The labels of one line are gathered on the stack before being copied to the arena at their
 * exact count; limits above this are clamped to it. */
#define EXPFMT_MAX_LABELS_CAP 256

/* Prometheus's value.NormalNaN: the NaN a "NaN" in an exposition becomes, never the
 * staleness marker 0x7ff0000000000002. */
#define EXPFMT_NORMAL_NAN_BITS 0x7ff8000000000001ULL

void col_expfmt_limits_default(col_expfmt_limits_t *l)
{
    l->max_line_len = (size_t)1 << 20;
    l->max_labels = 64;
    l->max_label_name_len = 256;
    l->max_label_value_len = 16384;
}

void col_expfmt_parser_init(col_expfmt_parser_t *p, const void *buf, size_t len,
                            col_expfmt_format_t fmt, const col_expfmt_limits_t *lim,
                            wf_arena_t *arena)
{
    memset(p, 0, sizeof(*p));
    p->p = buf;
    p->end = len ? p->p + len : p->p;
    p->fmt = fmt;
    if (lim) {
        p->lim = *lim;
    } else {
        col_expfmt_limits_default(&p->lim);
    }
    if (p->lim.max_labels > EXPFMT_MAX_LABELS_CAP) {
        p->lim.max_labels = EXPFMT_MAX_LABELS_CAP;
    }
    p->arena = arena;
}

const char *col_expfmt_error(const col_expfmt_parser_t *p)
{
    return p->err;
}

__attribute__((format(printf, 3, 4))) static int fail(col_expfmt_parser_t *p, int code,
                                                      const char *fmt, ...)
{
    int n = snprintf(p->err, sizeof(p->err), "line %zu: ", p->line);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->err + n, sizeof(p->err) - (size_t)n, fmt, ap);
    va_end(ap);
    p->failed = true;
    return code;
}

col_expfmt_format_t col_expfmt_format_of(const char *content_type)
{
    static const char om[] = "application/openmetrics-text";
    if (content_type == NULL) {
        return COL_EXPFMT_TEXT;
    }
    while (*content_type == ' ') {
        content_type++;
    }
    if (strncasecmp(content_type, om, sizeof(om) - 1) == 0) {
        char c = content_type[sizeof(om) - 1];
        if (c == '\0' || c == ';' || c == ' ') {
            return COL_EXPFMT_OPENMETRICS;
        }
    }
    return COL_EXPFMT_TEXT;
}

static bool is_name_start(char c, bool colon)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon && c == ':');
}

static bool is_name_char(char c, bool colon)
{
    return is_name_start(c, colon) || (c >= '0' && c <= '9');
}

bool col_expfmt_valid_metric_name(wf_str_t s)
{
    if (s.len == 0 || !is_name_start(s.p[0], true)) {
        return false;
    }
    for (size_t i = 1; i < s.len; i++) {
        if (!is_name_char(s.p[i], true)) {
            return false;
        }
    }
    return true;
}

bool col_expfmt_valid_label_name(wf_str_t s)
{
    if (s.len == 0 || !is_name_start(s.p[0], false)) {
        return false;
    }
    for (size_t i = 1; i < s.len; i++) {
        if (!is_name_char(s.p[i], false)) {
            return false;
        }
    }
    return true;
}

/* A cursor over one line (without its newline). */
typedef struct {
    const char *p;
    const char *end;
} cur_t;

static void skip_ws(cur_t *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t')) {
        c->p++;
    }
}

static wf_str_t take_name(cur_t *c, bool colon)
{
    const char *s = c->p;
    if (c->p < c->end && is_name_start(*c->p, colon)) {
        c->p++;
        while (c->p < c->end && is_name_char(*c->p, colon)) {
            c->p++;
        }
    }
    return (wf_str_t){s, (size_t)(c->p - s)};
}

/* Describe what the cursor is looking at, for messages: `"x"` or "end of line". */
static const char *what(const cur_t *c, char *buf, size_t len)
{
    if (c->p >= c->end) {
        return "end of line";
    }
    unsigned char ch = (unsigned char)*c->p;
    if (ch >= 0x20 && ch < 0x7f) {
        snprintf(buf, len, "\"%c\"", ch);
    } else {
        snprintf(buf, len, "byte 0x%02x", ch);
    }
    return buf;
}

/*
 * Parse a float as Go's strconv.ParseFloat does for the forms Prometheus accepts (its
 * parseFloat refuses p, P and _): decimal with optional exponent, or inf/infinity/nan in any
 * case, inf with a sign. Overflow is an error, underflow gives 0 as in Go.
 */
static bool parse_float(const char *s, size_t n, double *out)
{
    char buf[128];
    if (n == 0 || n >= sizeof(buf)) {
        return false;
    }
    memcpy(buf, s, n);
    buf[n] = '\0';
    const char *q = buf;
    bool neg = false;
    if (*q == '+' || *q == '-') {
        neg = *q == '-';
        q++;
    }
    if (strcasecmp(q, "inf") == 0 || strcasecmp(q, "infinity") == 0) {
        *out = neg ? -INFINITY : INFINITY;
        return true;
    }
    if (strcasecmp(buf, "nan") == 0) {
        uint64_t bits = EXPFMT_NORMAL_NAN_BITS;
        memcpy(out, &bits, sizeof(*out));
        return true;
    }
    bool digits = false;
    for (const char *r = q; *r; r++) {
        if (*r >= '0' && *r <= '9') {
            digits = true;
        } else if (*r != '.' && *r != 'e' && *r != 'E' && *r != '+' && *r != '-') {
            return false;
        }
    }
    if (!digits) {
        return false;
    }
    char *endp = NULL;
    errno = 0;
    double v = strtod(buf, &endp);
    if (endp != buf + n || isinf(v)) {
        return false;
    }
    *out = v;
    return true;
}

/* Copy s into the arena with \\, \n (and for label values \") unescaped; other escapes kept
 * as written, as Prometheus's replacers do. */
static int unescape(col_expfmt_parser_t *p, wf_str_t s, bool quote, wf_str_t *out)
{
    if (memchr(s.p, '\\', s.len) == NULL) {
        *out = s;
        return 0;
    }
    char *d = wf_arena_alloc_checked(p->arena, s.len ? s.len : 1);
    if (d == NULL) {
        return fail(p, WF_E_LIMIT, "parser memory limit exceeded");
    }
    size_t n = 0;
    for (size_t i = 0; i < s.len; i++) {
        char c = s.p[i];
        if (c == '\\' && i + 1 < s.len) {
            char e = s.p[i + 1];
            if (e == '\\' || e == 'n' || (quote && e == '"')) {
                d[n++] = e == 'n' ? '\n' : e;
                i++;
                continue;
            }
        }
        d[n++] = c;
    }
    *out = (wf_str_t){d, n};
    return 0;
}

/*
 * Labels from just after `{` to just after `}`. The text format allows blanks around every
 * token and a trailing comma; OpenMetrics allows neither.
 */
static int parse_labels(col_expfmt_parser_t *p, cur_t *c, st_label_t *ls, size_t *nls, bool keep)
{
    bool om = p->fmt == COL_EXPFMT_OPENMETRICS;
    size_t n = 0;
    char wb[16];
    for (bool first = true;; first = false) {
        if (!om) {
            skip_ws(c);
        }
        if (c->p < c->end && *c->p == '}') {
            if (om && !first) {
                return fail(p, WF_E_INVAL, "expected label name, got \"}\"");
            }
            c->p++;
            break;
        }
        wf_str_t name = take_name(c, false);
        if (name.len == 0) {
            return fail(p, WF_E_INVAL, "expected label name, got %s", what(c, wb, sizeof(wb)));
        }
        if (name.len > p->lim.max_label_name_len) {
            return fail(p, WF_E_LIMIT, "label name longer than %zu bytes",
                        p->lim.max_label_name_len);
        }
        if (!om) {
            skip_ws(c);
        }
        if (c->p >= c->end || *c->p != '=') {
            return fail(p, WF_E_INVAL, "expected \"=\" after label name %.*s, got %s",
                        (int)name.len, name.p, what(c, wb, sizeof(wb)));
        }
        c->p++;
        if (!om) {
            skip_ws(c);
        }
        if (c->p >= c->end || *c->p != '"') {
            return fail(p, WF_E_INVAL, "expected quoted label value for %.*s, got %s",
                        (int)name.len, name.p, what(c, wb, sizeof(wb)));
        }
        const char *vs = ++c->p;
        while (c->p < c->end && *c->p != '"') {
            if (*c->p == '\\') {
                if (c->p + 1 >= c->end) {
                    c->p = c->end;
                    break;
                }
                c->p++;
            }
            c->p++;
        }
        if (c->p >= c->end) {
            return fail(p, WF_E_INVAL, "unterminated label value for %.*s", (int)name.len, name.p);
        }
        wf_str_t raw = {vs, (size_t)(c->p - vs)};
        c->p++;
        if (!wf_utf8_valid(raw.p, raw.len)) {
            return fail(p, WF_E_INVAL, "invalid UTF-8 in value of label %.*s", (int)name.len,
                        name.p);
        }
        if (keep) {
            if (n == p->lim.max_labels) {
                return fail(p, WF_E_LIMIT, "more than %zu labels", p->lim.max_labels);
            }
            if (wf_str_eq_c(name, "__name__")) {
                return fail(p, WF_E_INVAL, "label __name__ inside braces");
            }
            for (size_t i = 0; i < n; i++) {
                if (wf_str_eq(ls[i].name, name)) {
                    return fail(p, WF_E_INVAL, "duplicate label name %.*s", (int)name.len, name.p);
                }
            }
            wf_str_t v;
            int rc = unescape(p, raw, true, &v);
            if (rc < 0) {
                return rc;
            }
            if (v.len > p->lim.max_label_value_len) {
                return fail(p, WF_E_LIMIT, "value of label %.*s longer than %zu bytes",
                            (int)name.len, name.p, p->lim.max_label_value_len);
            }
            ls[n].name = name;
            ls[n].value = v;
            n++;
        }
        if (!om) {
            skip_ws(c);
        }
        if (c->p < c->end && *c->p == ',') {
            c->p++;
            if (om && (c->p >= c->end || *c->p == '}')) {
                return fail(p, WF_E_INVAL, "expected label name after \",\"");
            }
            continue;
        }
        if (c->p < c->end && *c->p == '}') {
            c->p++;
            break;
        }
        return fail(p, WF_E_INVAL, "expected \",\" or \"}\" after label value, got %s",
                    what(c, wb, sizeof(wb)));
    }
    *nls = n;
    return 0;
}

static bool parse_type(wf_str_t t, bool om, st_metric_type_t *out)
{
    static const struct {
        const char *name;
        st_metric_type_t type;
        bool om; /* which format knows it: OpenMetrics (true) or 0.0.4 (false) */
        bool both;
    } types[] = {
        {"counter", ST_METRIC_COUNTER, false, true},
        {"gauge", ST_METRIC_GAUGE, false, true},
        {"histogram", ST_METRIC_HISTOGRAM, false, true},
        {"summary", ST_METRIC_SUMMARY, false, true},
        {"untyped", ST_METRIC_UNKNOWN, false, false},
        {"unknown", ST_METRIC_UNKNOWN, true, false},
        {"gaugehistogram", ST_METRIC_GAUGEHISTOGRAM, true, false},
        {"info", ST_METRIC_INFO, true, false},
        {"stateset", ST_METRIC_STATESET, true, false},
    };
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        if ((types[i].both || types[i].om == om) && wf_str_eq_c(t, types[i].name)) {
            *out = types[i].type;
            return true;
        }
    }
    return false;
}

/* `# HELP|TYPE|UNIT name text`: the cursor is just after the keyword and its separator. */
static int parse_meta(col_expfmt_parser_t *p, cur_t *c, col_expfmt_kind_t kind,
                      col_expfmt_entry_t *e)
{
    static const char *const kw[] = {
        [COL_EXPFMT_HELP] = "HELP", [COL_EXPFMT_TYPE] = "TYPE", [COL_EXPFMT_UNIT] = "UNIT"};
    bool om = p->fmt == COL_EXPFMT_OPENMETRICS;
    char wb[16];
    if (!om) {
        skip_ws(c);
    }
    e->kind = kind;
    e->name = take_name(c, true);
    if (e->name.len == 0) {
        return fail(p, WF_E_INVAL, "expected metric name after %s, got %s", kw[kind],
                    what(c, wb, sizeof(wb)));
    }
    wf_str_t text = {c->p, 0};
    if (c->p < c->end) {
        if (*c->p != ' ' && !(!om && *c->p == '\t')) {
            return fail(p, WF_E_INVAL, "expected a blank after the metric name in %s, got %s",
                        kw[kind], what(c, wb, sizeof(wb)));
        }
        text = (wf_str_t){c->p + 1, (size_t)(c->end - c->p - 1)};
    } else if (om) {
        /* OpenMetrics requires the separating space even before an empty text. */
        return fail(p, WF_E_INVAL, "expected text in %s", kw[kind]);
    }
    switch (kind) {
    case COL_EXPFMT_HELP:
        if (!wf_utf8_valid(text.p, text.len)) {
            return fail(p, WF_E_INVAL, "help text is not valid UTF-8");
        }
        /* OpenMetrics unescapes HELP like a label value (\" too); 0.0.4 only \\ and \n. */
        return unescape(p, text, om, &e->text);
    case COL_EXPFMT_TYPE:
        if (!parse_type(text, om, &e->type)) {
            return fail(p, WF_E_INVAL, "invalid metric type \"%.*s\"",
                        (int)(text.len > 32 ? 32 : text.len), text.p);
        }
        e->text = text;
        return 0;
    default:
        if (!wf_utf8_valid(text.p, text.len)) {
            return fail(p, WF_E_INVAL, "unit is not valid UTF-8");
        }
        /* Prometheus: a unit must be the metric name's suffix, after an underscore. */
        if (text.len > 0 && (e->name.len < text.len + 1 ||
                             memcmp(e->name.p + e->name.len - text.len, text.p, text.len) != 0 ||
                             e->name.p[e->name.len - text.len - 1] != '_')) {
            return fail(p, WF_E_INVAL, "unit not a suffix of metric \"%.*s\"", (int)e->name.len,
                        e->name.p);
        }
        e->text = text;
        return 0;
    }
}

/* A token up to the next blank (OpenMetrics: space only) or the end of the line. */
static wf_str_t take_token(cur_t *c, bool om)
{
    const char *s = c->p;
    while (c->p < c->end && *c->p != ' ' && (om || (*c->p != '\t' && *c->p != '{'))) {
        c->p++;
    }
    return (wf_str_t){s, (size_t)(c->p - s)};
}

static bool has_suffix(wf_str_t s, const char *suf)
{
    size_t n = strlen(suf);
    return s.len >= n && memcmp(s.p + s.len - n, suf, n) == 0;
}

/* OpenMetrics float seconds to ms, truncated toward zero as Go's int64(ts*1000). */
static bool om_ts(wf_str_t t, int64_t *ms)
{
    double s;
    if (!parse_float(t.p, t.len, &s) || isnan(s) || isinf(s)) {
        return false;
    }
    double v = s * 1000;
    if (!(v > -9.2e18 && v < 9.2e18)) {
        return false;
    }
    *ms = (int64_t)v;
    return true;
}

/* The OpenMetrics exemplar after ` # ` (cursor at `{`): checked and dropped. */
static int parse_exemplar(col_expfmt_parser_t *p, cur_t *c, wf_str_t metric)
{
    if (!has_suffix(metric, "_total") && !has_suffix(metric, "_bucket")) {
        return fail(p, WF_E_INVAL, "metric name %.*s does not support exemplars", (int)metric.len,
                    metric.p);
    }
    c->p++; /* { */
    size_t n = 0;
    int rc = parse_labels(p, c, NULL, &n, false);
    if (rc < 0) {
        return rc;
    }
    double v;
    if (c->p >= c->end || *c->p != ' ') {
        return fail(p, WF_E_INVAL, "expected value after exemplar labels");
    }
    c->p++;
    wf_str_t tok = take_token(c, true);
    if (!parse_float(tok.p, tok.len, &v)) {
        return fail(p, WF_E_INVAL, "invalid exemplar value \"%.*s\"",
                    (int)(tok.len > 32 ? 32 : tok.len), tok.p);
    }
    if (c->p < c->end) {
        c->p++; /* the space take_token stopped at */
        int64_t ts;
        tok = take_token(c, true);
        if (!om_ts(tok, &ts)) {
            return fail(p, WF_E_INVAL, "invalid exemplar timestamp");
        }
        if (c->p < c->end) {
            return fail(p, WF_E_INVAL, "expected next entry after exemplar timestamp");
        }
    }
    return 0;
}

/* A sample line; the cursor is at the metric name. */
static int parse_series(col_expfmt_parser_t *p, cur_t *c, col_expfmt_entry_t *e)
{
    bool om = p->fmt == COL_EXPFMT_OPENMETRICS;
    st_label_t ls[EXPFMT_MAX_LABELS_CAP];
    size_t n = 0;
    char wb[16];
    int rc;

    e->kind = COL_EXPFMT_SERIES;
    e->name = take_name(c, true);
    if (e->name.len == 0) {
        return fail(p, WF_E_INVAL, "%s is not a valid start of a line", what(c, wb, sizeof(wb)));
    }
    if (!om) {
        skip_ws(c);
    }
    if (c->p < c->end && *c->p == '{') {
        c->p++;
        rc = parse_labels(p, c, ls, &n, true);
        if (rc < 0) {
            return rc;
        }
    }
    if (om) {
        if (c->p >= c->end || *c->p != ' ') {
            return fail(p, WF_E_INVAL, "expected value after metric, got %s",
                        what(c, wb, sizeof(wb)));
        }
        c->p++;
    } else {
        skip_ws(c);
    }
    wf_str_t tok = take_token(c, om);
    if (tok.len == 0) {
        return fail(p, WF_E_INVAL, "expected value after metric, got %s", what(c, wb, sizeof(wb)));
    }
    if (!parse_float(tok.p, tok.len, &e->value)) {
        return fail(p, WF_E_INVAL, "invalid value \"%.*s\"", (int)(tok.len > 32 ? 32 : tok.len),
                    tok.p);
    }
    e->has_ts = false;
    if (om) {
        for (int field = 0; c->p < c->end; field++) {
            /* The cursor is at the space after the value (or the timestamp). */
            if (c->end - c->p >= 4 && memcmp(c->p, " # {", 4) == 0) {
                c->p += 3;
                rc = parse_exemplar(p, c, e->name);
                if (rc < 0) {
                    return rc;
                }
                break;
            }
            if (field > 0) {
                return fail(p, WF_E_INVAL, "expected exemplar or end of line after timestamp");
            }
            c->p++;
            tok = take_token(c, true);
            if (!om_ts(tok, &e->ts_ms)) {
                return fail(p, WF_E_INVAL, "invalid timestamp \"%.*s\"",
                            (int)(tok.len > 32 ? 32 : tok.len), tok.p);
            }
            e->has_ts = true;
        }
    } else {
        skip_ws(c);
        if (c->p < c->end) {
            tok = take_token(c, false);
            bool neg = tok.len > 0 && tok.p[0] == '-';
            uint64_t ts = 0;
            bool ok = tok.len > (neg ? 1u : 0u);
            for (size_t i = neg ? 1 : 0; ok && i < tok.len; i++) {
                if (tok.p[i] < '0' || tok.p[i] > '9' || ts > (UINT64_C(1) << 63) / 10) {
                    ok = false;
                    break;
                }
                ts = ts * 10 + (uint64_t)(tok.p[i] - '0');
            }
            /* Prometheus's lexer takes digits only; a sign is refused there too. */
            if (!ok || neg || ts > (uint64_t)INT64_MAX) {
                return fail(p, WF_E_INVAL, "invalid timestamp \"%.*s\"",
                            (int)(tok.len > 32 ? 32 : tok.len), tok.p);
            }
            e->has_ts = true;
            e->ts_ms = (int64_t)ts;
            skip_ws(c);
            if (c->p < c->end) {
                return fail(p, WF_E_INVAL, "expected end of line after timestamp, got %s",
                            what(c, wb, sizeof(wb)));
            }
        }
    }
    e->nlabels = n;
    e->labels = NULL;
    if (n > 0) {
        e->labels = wf_arena_alloc_checked(p->arena, n * sizeof(st_label_t));
        if (e->labels == NULL) {
            return fail(p, WF_E_LIMIT, "parser memory limit exceeded");
        }
        memcpy(e->labels, ls, n * sizeof(st_label_t));
    }
    return 0;
}

/* Does the line start with `kw` followed by what the format requires as a separator? */
static bool keyword(cur_t *c, const char *kw, bool om)
{
    size_t n = strlen(kw);
    if ((size_t)(c->end - c->p) <= n || memcmp(c->p, kw, n) != 0) {
        return false;
    }
    char s = c->p[n];
    if (s != ' ' && (om || s != '\t')) {
        return false;
    }
    c->p += n + 1;
    return true;
}

int col_expfmt_next(col_expfmt_parser_t *p, col_expfmt_entry_t *e)
{
    if (p->failed) {
        return WF_E_INVAL;
    }
    bool om = p->fmt == COL_EXPFMT_OPENMETRICS;
    memset(e, 0, sizeof(*e));
    for (;;) {
        if (p->p >= p->end) {
            if (om && !p->eof_seen) {
                p->line++;
                return fail(p, WF_E_INVAL, "data does not end with # EOF");
            }
            return 0;
        }
        p->line++;
        if (om && p->eof_seen) {
            return fail(p, WF_E_INVAL, "unexpected data after # EOF");
        }
        size_t left = (size_t)(p->end - p->p);
        size_t scan = left < p->lim.max_line_len + 1 ? left : p->lim.max_line_len + 1;
        const char *nl = memchr(p->p, '\n', scan);
        if (nl == NULL && left > p->lim.max_line_len) {
            return fail(p, WF_E_LIMIT, "line longer than %zu bytes", p->lim.max_line_len);
        }
        cur_t c = {p->p, nl ? nl : p->end};
        p->p = nl ? nl + 1 : p->end;
        e->line = p->line;

        if (om) {
            if (nl == NULL) {
                if ((size_t)(c.end - c.p) == 5 && memcmp(c.p, "# EOF", 5) == 0) {
                    p->eof_seen = true;
                    continue;
                }
                return fail(p, WF_E_INVAL, "data does not end with # EOF");
            }
            if (c.p < c.end && *c.p == '#') {
                if ((size_t)(c.end - c.p) == 5 && memcmp(c.p, "# EOF", 5) == 0) {
                    p->eof_seen = true;
                    continue;
                }
                c.p++;
                col_expfmt_kind_t k = 0;
                if (keyword(&c, " HELP", true)) {
                    k = COL_EXPFMT_HELP;
                } else if (keyword(&c, " TYPE", true)) {
                    k = COL_EXPFMT_TYPE;
                } else if (keyword(&c, " UNIT", true)) {
                    k = COL_EXPFMT_UNIT;
                } else {
                    return fail(p, WF_E_INVAL, "invalid comment line");
                }
                int rc = parse_meta(p, &c, k, e);
                return rc < 0 ? rc : 1;
            }
            int rc = parse_series(p, &c, e);
            return rc < 0 ? rc : 1;
        }

        const char *line_start = c.p;
        skip_ws(&c);
        if (c.p == c.end) {
            continue; /* blank line */
        }
        if (*c.p == '#') {
            cur_t m = {c.p + 1, c.end};
            if (m.p < m.end && (*m.p == ' ' || *m.p == '\t')) {
                skip_ws(&m);
                col_expfmt_kind_t k = 0;
                if (keyword(&m, "HELP", false)) {
                    k = COL_EXPFMT_HELP;
                } else if (keyword(&m, "TYPE", false)) {
                    k = COL_EXPFMT_TYPE;
                }
                if (k != 0) {
                    int rc = parse_meta(p, &m, k, e);
                    return rc < 0 ? rc : 1;
                }
            }
            e->kind = COL_EXPFMT_COMMENT;
            e->text = (wf_str_t){c.p, (size_t)(c.end - c.p)};
            return 1;
        }
        if (c.p != line_start) {
            /* Prometheus's lexer makes the blanks part of the metric name, which then fails
             * validation: the scrape fails. Say so directly. */
            return fail(p, WF_E_INVAL, "invalid metric name: blanks before it");
        }
        int rc = parse_series(p, &c, e);
        return rc < 0 ? rc : 1;
    }
}

/* ---- Writer ------------------------------------------------------------------------------- */

void col_expfmt_write_value(wf_buf_t *out, double v)
{
    if (isnan(v)) {
        wf_buf_puts(out, "NaN");
        return;
    }
    if (isinf(v)) {
        wf_buf_puts(out, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    if (v == 0) {
        wf_buf_putc(out, '0'); /* -0 too: Go's writeFloat tests f == 0 first */
        return;
    }
    /* The shortest digits that read back as v, from %e with growing precision. */
    char e[40];
    for (int prec = 0; prec <= 16; prec++) {
        snprintf(e, sizeof(e), "%.*e", prec, v);
        if (strtod(e, NULL) == v) {
            break;
        }
    }
    char digits[24];
    size_t nd = 0;
    const char *q = e;
    bool neg = *q == '-';
    if (neg) {
        q++;
    }
    for (; *q && *q != 'e'; q++) {
        if (*q >= '0' && *q <= '9') {
            digits[nd++] = *q;
        }
    }
    while (nd > 1 && digits[nd - 1] == '0') {
        nd--;
    }
    int exp = atoi(q + 1); /* v = d.ddd x 10^exp */
    if (neg) {
        wf_buf_putc(out, '-');
    }
    /* Go's 'g' with the shortest precision switches to %e below 1e-4 and from 1e6. */
    if (exp < -4 || exp >= 6) {
        wf_buf_putc(out, (uint8_t)digits[0]);
        if (nd > 1) {
            wf_buf_putc(out, '.');
            wf_buf_append(out, digits + 1, nd - 1);
        }
        wf_buf_printf(out, "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
        return;
    }
    if (exp < 0) {
        wf_buf_puts(out, "0.");
        for (int i = -1; i > exp; i--) {
            wf_buf_putc(out, '0');
        }
        wf_buf_append(out, digits, nd);
        return;
    }
    for (int i = 0; i <= exp; i++) {
        wf_buf_putc(out, (size_t)i < nd ? (uint8_t)digits[i] : '0');
    }
    if ((size_t)exp + 1 < nd) {
        wf_buf_putc(out, '.');
        wf_buf_append(out, digits + exp + 1, nd - (size_t)exp - 1);
    }
}

static void write_escaped(wf_buf_t *out, wf_str_t s, bool quote)
{
    size_t start = 0;
    for (size_t i = 0; i < s.len; i++) {
        char c = s.p[i];
        const char *rep = c == '\\'             ? "\\\\"
                          : c == '\n'           ? "\\n"
                          : (quote && c == '"') ? "\\\""
                                                : NULL;
        if (rep) {
            wf_buf_append(out, s.p + start, i - start);
            wf_buf_puts(out, rep);
            start = i + 1;
        }
    }
    wf_buf_append(out, s.p + start, s.len - start);
}

void col_expfmt_write_help(wf_buf_t *out, wf_str_t name, wf_str_t help)
{
    wf_buf_puts(out, "# HELP ");
    wf_buf_append(out, name.p, name.len);
    wf_buf_putc(out, ' ');
    write_escaped(out, help, false);
    wf_buf_putc(out, '\n');
}

void col_expfmt_write_type(wf_buf_t *out, wf_str_t name, st_metric_type_t type)
{
    const char *t = "untyped";
    switch (type) {
    case ST_METRIC_COUNTER:
        t = "counter";
        break;
    case ST_METRIC_GAUGE:
        t = "gauge";
        break;
    case ST_METRIC_HISTOGRAM:
        t = "histogram";
        break;
    case ST_METRIC_SUMMARY:
        t = "summary";
        break;
    default:
        break;
    }
    wf_buf_puts(out, "# TYPE ");
    wf_buf_append(out, name.p, name.len);
    wf_buf_putc(out, ' ');
    wf_buf_puts(out, t);
    wf_buf_putc(out, '\n');
}

static int label_cmp(const void *a, const void *b)
{
    const st_label_t *const *x = a;
    const st_label_t *const *y = b;
    return wf_str_cmp((*x)->name, (*y)->name);
}

static void write_line(wf_buf_t *out, wf_str_t name, const st_label_t *const *order, size_t n,
                       double v, bool has_ts, int64_t ts_ms)
{
    wf_buf_append(out, name.p, name.len);
    if (n > 0) {
        wf_buf_putc(out, '{');
        for (size_t i = 0; i < n; i++) {
            if (i > 0) {
                wf_buf_putc(out, ',');
            }
            wf_buf_append(out, order[i]->name.p, order[i]->name.len);
            wf_buf_puts(out, "=\"");
            write_escaped(out, order[i]->value, true);
            wf_buf_putc(out, '"');
        }
        wf_buf_putc(out, '}');
    }
    wf_buf_putc(out, ' ');
    col_expfmt_write_value(out, v);
    if (has_ts) {
        wf_buf_printf(out, " %lld", (long long)ts_ms);
    }
    wf_buf_putc(out, '\n');
}

static void write_sample(wf_buf_t *out, wf_str_t name, const st_label_t *labels, size_t nlabels,
                         double v, bool has_ts, int64_t ts_ms, bool sort)
{
    const st_label_t *small[32];
    const st_label_t **order = nlabels <= 32 ? small : wf_malloc(nlabels * sizeof(*order));
    size_t n = 0;
    bool sorted = true;
    for (size_t i = 0; i < nlabels; i++) {
        if (wf_str_eq_c(labels[i].name, "__name__")) {
            continue;
        }
        if (n > 0 && wf_str_cmp(order[n - 1]->name, labels[i].name) > 0) {
            sorted = false;
        }
        order[n++] = &labels[i];
    }
    if (sort && !sorted) {
        qsort(order, n, sizeof(*order), label_cmp);
    }
    write_line(out, name, order, n, v, has_ts, ts_ms);
    if (order != small) {
        wf_free(order);
    }
}

void col_expfmt_write_sample(wf_buf_t *out, wf_str_t name, const st_label_t *labels, size_t nlabels,
                             double v, bool has_ts, int64_t ts_ms)
{
    write_sample(out, name, labels, nlabels, v, has_ts, ts_ms, true);
}

void col_expfmt_write_sample_ordered(wf_buf_t *out, wf_str_t name, const st_label_t *labels,
                                     size_t nlabels, double v, bool has_ts, int64_t ts_ms)
{
    write_sample(out, name, labels, nlabels, v, has_ts, ts_ms, false);
}
