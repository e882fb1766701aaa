/*
 * px_snapshot.c - parses and validates a config snapshot (schema 1, docs/snapshot.md) with
 * jansson into the typed structures of px_snapshot.h, all allocated in the snapshot's arena.
 *
 * The parser walks the document once, keeping the JSON path of the value it looks at in a
 * small buffer so that every error names it. Defaults that Istio applies are filled here too,
 * so a hand-written file and a compiled one produce the same structures. Regexes are checked
 * against the RE2 syntax the Istio API promises (features PCRE2 has and RE2 lacks are
 * refused) and compiled with PCRE2, anchored at both ends as Envoy's safe_regex matches.
 */
#include "px_snapshot.h"

#include "px_cert.h"

#include "wf_alloc.h"
#include "wf_err.h"
#include "wf_re2.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define PATH_MAX_LEN 256
#define PORT_MAX 65535u
#define MS_MAX ((uint64_t)INT64_MAX)

/* Istio's defaults (design.md §3, Istio API reference). */
#define DEF_RETRY_ATTEMPTS 2
#define DEF_RETRY_ON                                                                               \
    (PX_RETRY_CONNECT_FAILURE | PX_RETRY_REFUSED_STREAM | PX_RETRY_UNAVAILABLE | PX_RETRY_CANCELLED)
#define DEF_CONNECT_TIMEOUT_MS 10000
#define DEF_IDLE_TIMEOUT_MS 3600000
#define DEF_OUTLIER_5XX 5
#define DEF_OUTLIER_INTERVAL_MS 10000
#define DEF_OUTLIER_EJECTION_MS 30000
#define DEF_OUTLIER_MAX_PERCENT 10
#define DEF_RING_SIZE 1024
#define DEF_SAMPLING 1.0
#define DEF_REDIRECT_CODE 301

typedef struct {
    px_snapshot_t *s;
    const px_snapshot_opts_t *o;
    char *err;
    size_t errlen;
    char path[PATH_MAX_LEN];
    size_t plen;
    uint32_t regex_cap;
    pcre2_compile_context *cctx;
} ps_t;

#define TRY(x)                                                                                     \
    do {                                                                                           \
        int rc_ = (x);                                                                             \
        if (rc_ != 0) {                                                                            \
            return rc_;                                                                            \
        }                                                                                          \
    } while (0)

/* ---- paths and errors ---- */

/* Append ".key" (or "key" at the root) to the path; returns the length to restore. A path too
 * long for the buffer is cut short rather than failing: it only feeds messages. */
static size_t path_key(ps_t *ps, const char *key)
{
    size_t saved = ps->plen;
    if (ps->plen < sizeof(ps->path)) {
        int n = snprintf(ps->path + ps->plen, sizeof(ps->path) - ps->plen, "%s%s",
                         ps->plen ? "." : "", key);
        ps->plen = n < 0 ? ps->plen : ps->plen + (size_t)n;
        if (ps->plen >= sizeof(ps->path)) {
            ps->plen = sizeof(ps->path) - 1;
        }
    }
    return saved;
}

static size_t path_idx(ps_t *ps, size_t i)
{
    size_t saved = ps->plen;
    if (ps->plen < sizeof(ps->path)) {
        int n = snprintf(ps->path + ps->plen, sizeof(ps->path) - ps->plen, "[%zu]", i);
        ps->plen = n < 0 ? ps->plen : ps->plen + (size_t)n;
        if (ps->plen >= sizeof(ps->path)) {
            ps->plen = sizeof(ps->path) - 1;
        }
    }
    return saved;
}

static void path_restore(ps_t *ps, size_t saved)
{
    ps->plen = saved;
    ps->path[saved] = '\0';
}

static int failv(ps_t *ps, int code, const char *key, const char *fmt, va_list ap)
{
    if (ps->errlen == 0) {
        return code;
    }
    char msg[256];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    const char *sep = (ps->plen && key != NULL) ? "." : "";
    if (ps->plen == 0 && key == NULL) {
        snprintf(ps->err, ps->errlen, "%s", msg);
    } else {
        snprintf(ps->err, ps->errlen, "%s%s%s: %s", ps->path, sep, key ? key : "", msg);
    }
    return code;
}

/* Record "PATH.key: message" and return WF_E_INVAL. key may be NULL (the current path). */
static int fail(ps_t *ps, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(ps_t *ps, const char *key, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = failv(ps, WF_E_INVAL, key, fmt, ap);
    va_end(ap);
    return rc;
}

static int fail_limit(ps_t *ps, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail_limit(ps_t *ps, const char *key, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = failv(ps, WF_E_LIMIT, key, fmt, ap);
    va_end(ap);
    return rc;
}

/* ---- arena ---- */

static int alloc_n(ps_t *ps, size_t count, size_t size, void **out)
{
    *out = NULL;
    if (count == 0) {
        return 0;
    }
    if (size != 0 && count > SIZE_MAX / size) {
        return fail_limit(ps, NULL, "too large");
    }
    void *p = wf_arena_alloc_checked(&ps->s->arena, count * size);
    if (p == NULL) {
        return fail_limit(ps, NULL, "snapshot exceeds %zu bytes of parsed structures",
                          ps->o->limits.max_arena);
    }
    memset(p, 0, count * size);
    *out = p;
    return 0;
}

static int dup_str(ps_t *ps, const char *p, size_t n, wf_str_t *out)
{
    void *m = wf_arena_alloc_checked(&ps->s->arena, n + 1);
    if (m == NULL) {
        return fail_limit(ps, NULL, "snapshot exceeds %zu bytes of parsed structures",
                          ps->o->limits.max_arena);
    }
    memcpy(m, p, n);
    ((char *)m)[n] = '\0';
    *out = (wf_str_t){m, n};
    return 0;
}

static int fmt_str(ps_t *ps, wf_str_t *out, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fmt_str(ps_t *ps, wf_str_t *out, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(buf)) {
        return fail_limit(ps, NULL, "generated name longer than %zu bytes", sizeof(buf) - 1);
    }
    return dup_str(ps, buf, (size_t)n, out);
}

static void lower_in_place(wf_str_t s)
{
    char *p = (char *)s.p;
    for (size_t i = 0; i < s.len; i++) {
        p[i] = (char)tolower((unsigned char)p[i]);
    }
}

/* ---- typed getters: each takes the parent object and a key, checks the type and range,
 * and fills the default when the key is absent (or null). ---- */

static const char *type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    default:
        return "null";
    }
}

static json_t *field(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_null(v) ? NULL : v;
}

/* Refuse keys not in known (a NULL-terminated list). */
static int known_keys(ps_t *ps, json_t *obj, const char *const *known)
{
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        (void)v;
        bool ok = false;
        for (const char *const *k = known; *k != NULL; k++) {
            if (strcmp(*k, key) == 0) {
                ok = true;
                break;
            }
        }
        if (!ok) {
            return fail(ps, key, "unknown field");
        }
    }
    return 0;
}

/* Strict mode: refuse keys not in known. */
static int check_keys(ps_t *ps, json_t *obj, const char *const *known)
{
    return ps->o->strict ? known_keys(ps, obj, known) : 0;
}

static int get_obj(ps_t *ps, json_t *obj, const char *key, bool required, json_t **out)
{
    json_t *v = field(obj, key);
    *out = NULL;
    if (v == NULL) {
        return required ? fail(ps, key, "required") : 0;
    }
    if (!json_is_object(v)) {
        return fail(ps, key, "must be an object, not %s", type_name(v));
    }
    if (json_object_size(v) > ps->o->limits.max_items) {
        return fail_limit(ps, key, "more than %u entries", ps->o->limits.max_items);
    }
    *out = v;
    return 0;
}

static int get_arr(ps_t *ps, json_t *obj, const char *key, json_t **out, size_t *n)
{
    json_t *v = field(obj, key);
    *out = NULL;
    *n = 0;
    if (v == NULL) {
        return 0;
    }
    if (!json_is_array(v)) {
        return fail(ps, key, "must be an array, not %s", type_name(v));
    }
    if (json_array_size(v) > ps->o->limits.max_items) {
        return fail_limit(ps, key, "more than %u entries", ps->o->limits.max_items);
    }
    *out = v;
    *n = json_array_size(v);
    return 0;
}

/* A string value v (already fetched) at path+key. */
static int str_val(ps_t *ps, json_t *v, const char *key, wf_str_t *out)
{
    if (!json_is_string(v)) {
        return fail(ps, key, "must be a string, not %s", type_name(v));
    }
    size_t n = json_string_length(v);
    if (n > ps->o->limits.max_string) {
        return fail_limit(ps, key, "longer than %u bytes", ps->o->limits.max_string);
    }
    return dup_str(ps, json_string_value(v), n, out);
}

static int get_str(ps_t *ps, json_t *obj, const char *key, bool required, const char *def,
                   wf_str_t *out)
{
    json_t *v = field(obj, key);
    if (v == NULL) {
        if (required) {
            return fail(ps, key, "required");
        }
        return dup_str(ps, def ? def : "", def ? strlen(def) : 0, out);
    }
    return str_val(ps, v, key, out);
}

static int get_int(ps_t *ps, json_t *obj, const char *key, bool required, int64_t def, int64_t min,
                   int64_t max, int64_t *out)
{
    json_t *v = field(obj, key);
    if (v == NULL) {
        if (required) {
            return fail(ps, key, "required");
        }
        *out = def;
        return 0;
    }
    if (!json_is_integer(v)) {
        return fail(ps, key, "must be an integer, not %s", type_name(v));
    }
    json_int_t x = json_integer_value(v);
    if (x < min) {
        return fail(ps, key, "must be >= %" PRId64, min);
    }
    if (x > max) {
        return fail(ps, key, "must be <= %" PRId64, max);
    }
    *out = x;
    return 0;
}

static int get_u32(ps_t *ps, json_t *obj, const char *key, bool required, uint32_t def,
                   uint32_t min, uint32_t max, uint32_t *out)
{
    int64_t x;
    TRY(get_int(ps, obj, key, required, def, min, max, &x));
    *out = (uint32_t)x;
    return 0;
}

/* A duration in milliseconds (`*_ms` keys). */
static int get_ms(ps_t *ps, json_t *obj, const char *key, uint64_t def, uint64_t *out)
{
    int64_t x;
    TRY(get_int(ps, obj, key, false, (int64_t)def, 0, (int64_t)MS_MAX, &x));
    *out = (uint64_t)x;
    return 0;
}

static int get_port(ps_t *ps, json_t *obj, const char *key, bool required, uint32_t *out)
{
    return get_u32(ps, obj, key, required, 0, required ? 1 : 0, PORT_MAX, out);
}

static int get_pct(ps_t *ps, json_t *obj, const char *key, double def, double *out)
{
    json_t *v = field(obj, key);
    if (v == NULL) {
        *out = def;
        return 0;
    }
    if (!json_is_number(v)) {
        return fail(ps, key, "must be a number, not %s", type_name(v));
    }
    double x = json_number_value(v);
    if (!(x >= 0.0)) {
        return fail(ps, key, "must be >= 0");
    }
    if (x > 100.0) {
        return fail(ps, key, "must be <= 100");
    }
    *out = x;
    return 0;
}

static int get_bool(ps_t *ps, json_t *obj, const char *key, bool def, bool *out)
{
    json_t *v = field(obj, key);
    if (v == NULL) {
        *out = def;
        return 0;
    }
    if (!json_is_boolean(v)) {
        return fail(ps, key, "must be a boolean, not %s", type_name(v));
    }
    *out = json_is_true(v);
    return 0;
}

/* An enum spelled as one of names[] (NULL-terminated); *out is its index. */
static int get_enum(ps_t *ps, json_t *obj, const char *key, const char *const *names, int def,
                    int *out)
{
    json_t *v = field(obj, key);
    if (v == NULL) {
        *out = def;
        return 0;
    }
    if (!json_is_string(v)) {
        return fail(ps, key, "must be a string, not %s", type_name(v));
    }
    for (int i = 0; names[i] != NULL; i++) {
        if (names[i][0] != '\0' && strcmp(names[i], json_string_value(v)) == 0) {
            *out = i;
            return 0;
        }
    }
    char list[256];
    size_t off = 0;
    list[0] = '\0';
    for (int i = 0; names[i] != NULL && off < sizeof(list); i++) {
        if (names[i][0] != '\0') {
            int n = snprintf(list + off, sizeof(list) - off, "%s%s", off ? ", " : "", names[i]);
            off += n > 0 ? (size_t)n : 0;
        }
    }
    return fail(ps, key, "must be one of %s", list);
}

/* A JSON object of string values -> labels. */
static int get_labels(ps_t *ps, json_t *obj, const char *key, px_label_t **out, uint32_t *n)
{
    json_t *o;
    *out = NULL;
    *n = 0;
    TRY(get_obj(ps, obj, key, false, &o));
    if (o == NULL) {
        return 0;
    }
    size_t saved = path_key(ps, key);
    TRY(alloc_n(ps, json_object_size(o), sizeof(px_label_t), (void **)out));
    const char *k;
    json_t *v;
    uint32_t i = 0;
    json_object_foreach(o, k, v)
    {
        if (strlen(k) > ps->o->limits.max_string) {
            return fail_limit(ps, NULL, "key longer than %u bytes", ps->o->limits.max_string);
        }
        TRY(dup_str(ps, k, strlen(k), &(*out)[i].key));
        TRY(str_val(ps, v, k, &(*out)[i].value));
        i++;
    }
    *n = i;
    path_restore(ps, saved);
    return 0;
}

/* An array of strings. */
static int get_strs(ps_t *ps, json_t *obj, const char *key, wf_str_t **out, uint32_t *n)
{
    json_t *a;
    size_t cnt;
    *out = NULL;
    *n = 0;
    TRY(get_arr(ps, obj, key, &a, &cnt));
    if (cnt == 0) {
        return 0;
    }
    TRY(alloc_n(ps, cnt, sizeof(wf_str_t), (void **)out));
    size_t saved = path_key(ps, key);
    for (size_t i = 0; i < cnt; i++) {
        size_t s2 = path_idx(ps, i);
        TRY(str_val(ps, json_array_get(a, i), NULL, &(*out)[i]));
        path_restore(ps, s2);
    }
    path_restore(ps, saved);
    *n = (uint32_t)cnt;
    return 0;
}

/* ---- regexes ---- */

static int compile_regex(ps_t *ps, const char *key, wf_str_t pat, pcre2_code **out)
{
    *out = NULL;
    if (pat.len > ps->o->limits.max_regex) {
        return fail_limit(ps, key, "regex longer than %u bytes", ps->o->limits.max_regex);
    }
    const char *why = wf_re2_unsupported(pat.p, pat.len);
    if (why != NULL) {
        return fail(ps, key, "invalid regex: %s", why);
    }
    int ecode;
    PCRE2_SIZE eoff;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat.p, pat.len,
                                   PCRE2_ANCHORED | PCRE2_ENDANCHORED | PCRE2_UTF |
                                       PCRE2_MATCH_INVALID_UTF | PCRE2_NO_AUTO_CAPTURE,
                                   &ecode, &eoff, ps->cctx);
    if (re == NULL) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(ecode, msg, sizeof(msg));
        return fail(ps, key, "invalid regex: %s at offset %zu", (const char *)msg, (size_t)eoff);
    }
    /* A failed JIT compile is not an error: the interpreter matches the same. */
    (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
    px_snapshot_t *s = ps->s;
    if (s->n_regexes == ps->regex_cap) {
        ps->regex_cap = ps->regex_cap ? ps->regex_cap * 2 : 16;
        s->regexes = wf_realloc(s->regexes, ps->regex_cap * sizeof(*s->regexes));
    }
    s->regexes[s->n_regexes++] = re;
    *out = re;
    return 0;
}

/* ---- Istio objects ---- */

static const char *const k_strmatch[] = {"exact", "prefix", "regex", NULL};

/* The StringMatch object o (the path already names it). allow_prefix is false for query
 * parameters (Istio has no prefix match there). */
static int parse_sm_obj(ps_t *ps, json_t *o, bool allow_prefix, px_strmatch_t *m)
{
    memset(m, 0, sizeof(*m));
    if (!json_is_object(o)) {
        return fail(ps, NULL, "must be an object, not %s", type_name(o));
    }
    TRY(check_keys(ps, o, k_strmatch));
    int kinds = 0;
    static const struct {
        const char *name;
        px_sm_kind_t kind;
    } forms[] = {{"exact", PX_SM_EXACT}, {"prefix", PX_SM_PREFIX}, {"regex", PX_SM_REGEX}};
    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        json_t *v = field(o, forms[i].name);
        if (v == NULL) {
            continue;
        }
        if (forms[i].kind == PX_SM_PREFIX && !allow_prefix) {
            return fail(ps, forms[i].name, "prefix match is not supported here");
        }
        kinds++;
        m->kind = forms[i].kind;
        TRY(str_val(ps, v, forms[i].name, &m->value));
        if (m->kind == PX_SM_REGEX) {
            TRY(compile_regex(ps, forms[i].name, m->value, &m->re));
        }
    }
    if (kinds > 1) {
        return fail(ps, NULL, "exactly one of exact, prefix, regex");
    }
    if (kinds == 0) {
        m->kind = PX_SM_PRESENT;
    }
    return 0;
}

/* StringMatch at obj[key]; absent = no condition. */
static int parse_strmatch(ps_t *ps, json_t *obj, const char *key, bool allow_prefix,
                          px_strmatch_t *m)
{
    json_t *v = field(obj, key);
    memset(m, 0, sizeof(*m));
    if (v == NULL) {
        return 0;
    }
    size_t saved = path_key(ps, key);
    TRY(parse_sm_obj(ps, v, allow_prefix, m));
    path_restore(ps, saved);
    return 0;
}

/* {"name": StringMatch, ...} -> array of kvmatch. */
static int parse_kvmatches(ps_t *ps, json_t *obj, const char *key, bool lower_names,
                           bool allow_prefix, px_kvmatch_t **out, uint32_t *n)
{
    json_t *o;
    *out = NULL;
    *n = 0;
    TRY(get_obj(ps, obj, key, false, &o));
    if (o == NULL) {
        return 0;
    }
    size_t saved = path_key(ps, key);
    TRY(alloc_n(ps, json_object_size(o), sizeof(px_kvmatch_t), (void **)out));
    const char *k;
    json_t *v;
    uint32_t i = 0;
    json_object_foreach(o, k, v)
    {
        (void)v;
        size_t kl = strlen(k);
        if (kl == 0) {
            return fail(ps, NULL, "empty name");
        }
        if (kl > ps->o->limits.max_string) {
            return fail_limit(ps, NULL, "name longer than %u bytes", ps->o->limits.max_string);
        }
        TRY(dup_str(ps, k, kl, &(*out)[i].name));
        if (lower_names) {
            lower_in_place((*out)[i].name);
        }
        TRY(parse_strmatch(ps, o, k, allow_prefix, &(*out)[i].match));
        i++;
    }
    *n = i;
    path_restore(ps, saved);
    return 0;
}

static const char *const k_match[] = {"name",
                                      "uri",
                                      "scheme",
                                      "method",
                                      "authority",
                                      "headers",
                                      "without_headers",
                                      "query_params",
                                      "source_labels",
                                      "ignore_uri_case",
                                      "port",
                                      NULL};

static int parse_match(ps_t *ps, json_t *o, px_match_t *m)
{
    if (!json_is_object(o)) {
        return fail(ps, NULL, "must be an object, not %s", type_name(o));
    }
    TRY(check_keys(ps, o, k_match));
    TRY(get_str(ps, o, "name", false, NULL, &m->name));
    TRY(parse_strmatch(ps, o, "uri", true, &m->uri));
    TRY(parse_strmatch(ps, o, "scheme", true, &m->scheme));
    TRY(parse_strmatch(ps, o, "method", true, &m->method));
    TRY(parse_strmatch(ps, o, "authority", true, &m->authority));
    TRY(parse_kvmatches(ps, o, "headers", true, true, &m->headers, &m->n_headers));
    TRY(parse_kvmatches(ps, o, "without_headers", true, true, &m->without_headers,
                        &m->n_without_headers));
    TRY(parse_kvmatches(ps, o, "query_params", false, false, &m->query_params, &m->n_query_params));
    TRY(get_labels(ps, o, "source_labels", &m->source_labels, &m->n_source_labels));
    TRY(get_bool(ps, o, "ignore_uri_case", false, &m->ignore_uri_case));
    TRY(get_port(ps, o, "port", false, &m->port));
    return 0;
}

static const char *const k_hdr_ops[] = {"set", "add", "remove", NULL};
static const char *const k_headers[] = {"request", "response", NULL};

static int parse_hdr_ops(ps_t *ps, json_t *obj, const char *key, px_hdr_ops_t *h)
{
    json_t *o;
    TRY(get_obj(ps, obj, key, false, &o));
    if (o == NULL) {
        return 0;
    }
    size_t saved = path_key(ps, key);
    TRY(check_keys(ps, o, k_hdr_ops));
    TRY(get_labels(ps, o, "set", &h->set, &h->n_set));
    TRY(get_labels(ps, o, "add", &h->add, &h->n_add));
    TRY(get_strs(ps, o, "remove", &h->remove, &h->n_remove));
    /* Header names compare case-insensitively; store them the way HTTP/2 spells them. */
    for (uint32_t i = 0; i < h->n_set; i++) {
        lower_in_place(h->set[i].key);
    }
    for (uint32_t i = 0; i < h->n_add; i++) {
        lower_in_place(h->add[i].key);
    }
    for (uint32_t i = 0; i < h->n_remove; i++) {
        lower_in_place(h->remove[i]);
    }
    path_restore(ps, saved);
    return 0;
}

static int parse_headers(ps_t *ps, json_t *obj, const char *key, px_headers_t *h)
{
    json_t *o;
    TRY(get_obj(ps, obj, key, false, &o));
    if (o == NULL) {
        return 0;
    }
    size_t saved = path_key(ps, key);
    TRY(check_keys(ps, o, k_headers));
    TRY(parse_hdr_ops(ps, o, "request", &h->request));
    TRY(parse_hdr_ops(ps, o, "response", &h->response));
    path_restore(ps, saved);
    return 0;
}

static int cluster_cmp(const void *a, const void *b)
{
    return wf_str_cmp(((const px_cluster_t *)a)->name, ((const px_cluster_t *)b)->name);
}

const px_cluster_t *px_snapshot_cluster(const px_snapshot_t *s, wf_str_t name)
{
    size_t lo = 0, hi = s->n_clusters;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = wf_str_cmp(s->clusters[mid].name, name);
        if (c == 0) {
            return &s->clusters[mid];
        }
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return NULL;
}

/* A short service name `reviews` means `reviews.<proxy namespace>.svc.cluster.local`, as Istio
 * resolves names relative to the resource's namespace. */
static int expand_host(ps_t *ps, wf_str_t *host)
{
    if (host->len == 0 || memchr(host->p, '.', host->len) != NULL || host->p[0] == '*') {
        return 0;
    }
    return fmt_str(ps, host, "%s.%s.svc.cluster.local", host->p, ps->s->proxy.namespace.p);
}

static const char *const k_dest[] = {"host", "subset", "port", "cluster", NULL};

/*
 * Destination {host, subset, port, cluster}. An explicit cluster name wins; otherwise the
 * name is Istio's `outbound|PORT|SUBSET|HOST`, the port coming from the only cluster of that
 * host and subset when omitted, else from default_port. An unknown cluster is not an error:
 * Istio sends such a route, and Envoy answers 503 with flag NC.
 */
static int parse_dest(ps_t *ps, json_t *o, uint32_t default_port, px_dest_t *d)
{
    if (!json_is_object(o)) {
        return fail(ps, NULL, "must be an object, not %s", type_name(o));
    }
    TRY(check_keys(ps, o, k_dest));
    px_snapshot_t *s = ps->s;
    wf_str_t cname;
    TRY(get_str(ps, o, "cluster", false, NULL, &cname));
    TRY(get_str(ps, o, "host", cname.len == 0, NULL, &d->host));
    TRY(get_str(ps, o, "subset", false, NULL, &d->subset));
    TRY(get_port(ps, o, "port", false, &d->port));
    if (cname.len > 0) {
        d->cluster_name = cname;
        d->cluster = px_snapshot_cluster(s, cname);
        if (d->cluster != NULL) {
            if (d->host.len == 0) {
                d->host = d->cluster->host;
            }
            if (d->port == 0) {
                d->port = d->cluster->port;
            }
            if (d->subset.len == 0) {
                d->subset = d->cluster->subset;
            }
        }
        return 0;
    }
    if (d->host.len == 0) {
        return fail(ps, "host", "must not be empty");
    }
    TRY(expand_host(ps, &d->host));
    if (d->port == 0) {
        const px_cluster_t *only = NULL;
        int found = 0;
        for (uint32_t i = 0; i < s->n_clusters && found < 2; i++) {
            if (wf_str_eq(s->clusters[i].host, d->host) &&
                wf_str_eq(s->clusters[i].subset, d->subset)) {
                only = &s->clusters[i];
                found++;
            }
        }
        d->port = found == 1 ? only->port : default_port;
    }
    TRY(fmt_str(ps, &d->cluster_name, "outbound|%u|%s|%s", d->port, d->subset.p, d->host.p));
    d->cluster = px_snapshot_cluster(s, d->cluster_name);
    return 0;
}

static const char *const k_route_dest[] = {"destination", "weight", "headers", NULL};

static int parse_route_dests(ps_t *ps, json_t *obj, uint32_t default_port, px_route_t *r)
{
    json_t *a;
    size_t n;
    TRY(get_arr(ps, obj, "route", &a, &n));
    if (n == 0) {
        return fail(ps, "route", "must have at least one destination");
    }
    TRY(alloc_n(ps, n, sizeof(px_route_dest_t), (void **)&r->route));
    size_t saved = path_key(ps, "route");
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        size_t s2 = path_idx(ps, i);
        json_t *o = json_array_get(a, i);
        px_route_dest_t *rd = &r->route[i];
        if (!json_is_object(o)) {
            return fail(ps, NULL, "must be an object, not %s", type_name(o));
        }
        TRY(check_keys(ps, o, k_route_dest));
        json_t *d = field(o, "destination");
        if (d == NULL) {
            return fail(ps, "destination", "required");
        }
        size_t s3 = path_key(ps, "destination");
        TRY(parse_dest(ps, d, default_port, &rd->dest));
        path_restore(ps, s3);
        /* Istio: a lone destination without a weight takes all traffic. */
        TRY(get_u32(ps, o, "weight", false, n == 1 ? 100 : 0, 0, UINT32_MAX, &rd->weight));
        TRY(parse_headers(ps, o, "headers", &rd->headers));
        total += rd->weight;
        path_restore(ps, s2);
    }
    path_restore(ps, saved);
    if (total == 0) {
        return fail(ps, "route", "total weight must be > 0");
    }
    r->n_route = (uint32_t)n;
    r->total_weight = total;
    return 0;
}

static const struct {
    const char *name;
    uint32_t bit;
} retry_names[] = {
    {"5xx", PX_RETRY_5XX},
    {"gateway-error", PX_RETRY_GATEWAY_ERROR},
    {"reset", PX_RETRY_RESET},
    {"connect-failure", PX_RETRY_CONNECT_FAILURE},
    {"envoy-ratelimited", PX_RETRY_ENVOY_RATELIMITED},
    {"retriable-4xx", PX_RETRY_RETRIABLE_4XX},
    {"refused-stream", PX_RETRY_REFUSED_STREAM},
    {"retriable-status-codes", PX_RETRY_RETRIABLE_STATUS_CODES},
    {"reset-before-request", PX_RETRY_RESET_BEFORE_REQUEST},
    {"cancelled", PX_RETRY_CANCELLED},
    {"deadline-exceeded", PX_RETRY_DEADLINE_EXCEEDED},
    {"internal", PX_RETRY_INTERNAL},
    {"resource-exhausted", PX_RETRY_RESOURCE_EXHAUSTED},
    {"unavailable", PX_RETRY_UNAVAILABLE},
};

/* Istio's retryOn: Envoy policy names and bare HTTP status codes, comma-separated. */
static int parse_retry_on(ps_t *ps, wf_str_t v, px_retries_t *r)
{
    r->retry_on = 0;
    r->n_status_codes = 0;
    size_t i = 0;
    while (i <= v.len) {
        size_t j = i;
        while (j < v.len && v.p[j] != ',') {
            j++;
        }
        size_t a = i, b = j;
        while (a < b && v.p[a] == ' ') {
            a++;
        }
        while (b > a && v.p[b - 1] == ' ') {
            b--;
        }
        wf_str_t tok = {v.p + a, b - a};
        if (tok.len == 0) {
            return fail(ps, "retry_on", "empty condition");
        }
        bool known = false;
        for (size_t k = 0; k < sizeof(retry_names) / sizeof(retry_names[0]); k++) {
            if (wf_str_eq_c(tok, retry_names[k].name)) {
                r->retry_on |= retry_names[k].bit;
                known = true;
                break;
            }
        }
        if (!known) {
            unsigned code = 0;
            bool digits = tok.len == 3;
            for (size_t k = 0; k < tok.len && digits; k++) {
                digits = isdigit((unsigned char)tok.p[k]);
                code = code * 10 + (unsigned)(tok.p[k] - '0');
            }
            if (!digits || code < 100 || code > 599) {
                return fail(ps, "retry_on", "unknown condition \"%.*s\"", (int)tok.len, tok.p);
            }
            if (r->n_status_codes == PX_RETRY_MAX_CODES) {
                return fail_limit(ps, "retry_on", "more than %d status codes", PX_RETRY_MAX_CODES);
            }
            r->status_codes[r->n_status_codes++] = (uint16_t)code;
            r->retry_on |= PX_RETRY_RETRIABLE_STATUS_CODES;
        }
        i = j + 1;
    }
    return 0;
}

static const char *const k_retries[] = {"attempts", "per_try_timeout_ms", "retry_on", NULL};

static int parse_retries(ps_t *ps, json_t *obj, px_retries_t *r)
{
    json_t *o;
    r->attempts = DEF_RETRY_ATTEMPTS;
    r->retry_on = DEF_RETRY_ON;
    TRY(get_obj(ps, obj, "retries", false, &o));
    if (o == NULL) {
        return 0;
    }
    size_t saved = path_key(ps, "retries");
    TRY(check_keys(ps, o, k_retries));
    /* Istio: retries present but attempts omitted means no retries (attempts 0). */
    TRY(get_u32(ps, o, "attempts", false, 0, 0, 1000, &r->attempts));
    TRY(get_ms(ps, o, "per_try_timeout_ms", 0, &r->per_try_timeout_ms));
    wf_str_t on;
    TRY(get_str(ps, o, "retry_on", false, NULL, &on));
    if (on.len > 0) {
        TRY(parse_retry_on(ps, on, r));
    }
    path_restore(ps, saved);
    return 0;
}

static const char *const k_fault[] = {"delay", "abort", NULL};
static const char *const k_delay[] = {"fixed_delay_ms", "percentage", NULL};
static const char *const k_abort[] = {"http_status", "percentage", NULL};

static int parse_fault(ps_t *ps, json_t *obj, px_fault_t *f)
{
    json_t *o, *d, *a;
    TRY(get_obj(ps, obj, "fault", false, &o));
    if (o == NULL) {
        return 0;
    }
    size_t saved = path_key(ps, "fault");
    TRY(check_keys(ps, o, k_fault));
    TRY(get_obj(ps, o, "delay", false, &d));
    if (d != NULL) {
        size_t s2 = path_key(ps, "delay");
        TRY(check_keys(ps, d, k_delay));
        if (field(d, "fixed_delay_ms") == NULL) {
            return fail(ps, "fixed_delay_ms", "required");
        }
        TRY(get_ms(ps, d, "fixed_delay_ms", 0, &f->delay_ms));
        /* Istio: an omitted percentage injects nothing. */
        TRY(get_pct(ps, d, "percentage", 0.0, &f->delay_percentage));
        f->delay_set = true;
        path_restore(ps, s2);
    }
    TRY(get_obj(ps, o, "abort", false, &a));
    if (a != NULL) {
        size_t s2 = path_key(ps, "abort");
        TRY(check_keys(ps, a, k_abort));
        TRY(get_u32(ps, a, "http_status", true, 0, 200, 599, &f->abort_status));
        TRY(get_pct(ps, a, "percentage", 0.0, &f->abort_percentage));
        f->abort_set = true;
        path_restore(ps, s2);
    }
    if (!f->delay_set && !f->abort_set) {
        return fail(ps, NULL, "needs delay or abort");
    }
    path_restore(ps, saved);
    return 0;
}

static const char *const k_redirect[] = {"uri",         "authority",     "scheme", "port",
                                         "derive_port", "redirect_code", NULL};
static const char *const derive_names[] = {"", "FROM_PROTOCOL_DEFAULT", "FROM_REQUEST_PORT", NULL};

static int parse_redirect(ps_t *ps, json_t *o, px_redirect_t *r)
{
    size_t saved = path_key(ps, "redirect");
    TRY(check_keys(ps, o, k_redirect));
    TRY(get_str(ps, o, "uri", false, NULL, &r->uri));
    TRY(get_str(ps, o, "authority", false, NULL, &r->authority));
    TRY(get_str(ps, o, "scheme", false, NULL, &r->scheme));
    TRY(get_port(ps, o, "port", false, &r->port));
    int dp;
    TRY(get_enum(ps, o, "derive_port", derive_names, 0, &dp));
    r->derive_port = (px_derive_port_t)dp;
    if (r->port != 0 && r->derive_port != PX_DERIVE_PORT_NONE) {
        return fail(ps, NULL, "port and derive_port are exclusive");
    }
    if (r->uri.len > 0 && r->uri.p[0] != '/') {
        return fail(ps, "uri", "must start with /");
    }
    TRY(get_u32(ps, o, "redirect_code", false, DEF_REDIRECT_CODE, 300, 399, &r->code));
    path_restore(ps, saved);
    return 0;
}

static const char *const k_cors[] = {"allow_origins",
                                     "allow_methods",
                                     "allow_headers",
                                     "expose_headers",
                                     "max_age_ms",
                                     "allow_credentials",
                                     NULL};

static int join_strs(ps_t *ps, json_t *o, const char *key, wf_str_t *out)
{
    wf_str_t *v;
    uint32_t n;
    TRY(get_strs(ps, o, key, &v, &n));
    size_t len = 0;
    for (uint32_t i = 0; i < n; i++) {
        len += v[i].len + 1;
    }
    char *p;
    TRY(alloc_n(ps, len + 1, 1, (void **)&p));
    size_t off = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (i > 0) {
            p[off++] = ',';
        }
        memcpy(p + off, v[i].p, v[i].len);
        off += v[i].len;
    }
    p[off] = '\0';
    *out = (wf_str_t){p, off};
    return 0;
}

static int parse_cors(ps_t *ps, json_t *o, px_cors_t *c)
{
    size_t saved = path_key(ps, "cors_policy");
    TRY(check_keys(ps, o, k_cors));
    json_t *a;
    size_t n;
    TRY(get_arr(ps, o, "allow_origins", &a, &n));
    TRY(alloc_n(ps, n, sizeof(px_strmatch_t), (void **)&c->allow_origins));
    size_t s2 = path_key(ps, "allow_origins");
    for (size_t i = 0; i < n; i++) {
        size_t s3 = path_idx(ps, i);
        TRY(parse_sm_obj(ps, json_array_get(a, i), true, &c->allow_origins[i]));
        path_restore(ps, s3);
    }
    path_restore(ps, s2);
    c->n_allow_origins = (uint32_t)n;
    TRY(join_strs(ps, o, "allow_methods", &c->allow_methods));
    TRY(join_strs(ps, o, "allow_headers", &c->allow_headers));
    TRY(join_strs(ps, o, "expose_headers", &c->expose_headers));
    TRY(get_ms(ps, o, "max_age_ms", 0, &c->max_age_ms));
    c->allow_credentials = -1;
    if (field(o, "allow_credentials") != NULL) {
        bool b;
        TRY(get_bool(ps, o, "allow_credentials", false, &b));
        c->allow_credentials = b;
    }
    path_restore(ps, saved);
    return 0;
}

static const char *const k_route[] = {
    "name",       "match",   "route", "redirect", "rewrite",           "direct_response",
    "timeout_ms", "retries", "fault", "mirror",   "mirror_percentage", "cors_policy",
    "headers",    NULL};
static const char *const k_rewrite[] = {"uri", "authority", NULL};
static const char *const k_direct[] = {"status", "body", NULL};

static int parse_route(ps_t *ps, json_t *o, uint32_t vh_port, px_route_t *r)
{
    if (!json_is_object(o)) {
        return fail(ps, NULL, "must be an object, not %s", type_name(o));
    }
    TRY(check_keys(ps, o, k_route));
    TRY(get_str(ps, o, "name", false, NULL, &r->name));
    json_t *a;
    size_t n;
    TRY(get_arr(ps, o, "match", &a, &n));
    TRY(alloc_n(ps, n, sizeof(px_match_t), (void **)&r->match));
    size_t saved = path_key(ps, "match");
    for (size_t i = 0; i < n; i++) {
        size_t s2 = path_idx(ps, i);
        TRY(parse_match(ps, json_array_get(a, i), &r->match[i]));
        path_restore(ps, s2);
    }
    path_restore(ps, saved);
    r->n_match = (uint32_t)n;

    json_t *redirect, *direct, *rewrite, *mirror, *cors;
    TRY(get_obj(ps, o, "redirect", false, &redirect));
    TRY(get_obj(ps, o, "direct_response", false, &direct));
    int actions = (redirect != NULL) + (direct != NULL) + (field(o, "route") != NULL);
    if (actions != 1) {
        return fail(ps, NULL, "exactly one of route, redirect, direct_response");
    }
    if (redirect != NULL) {
        r->action = PX_ACTION_REDIRECT;
        TRY(parse_redirect(ps, redirect, &r->redirect));
    } else if (direct != NULL) {
        r->action = PX_ACTION_DIRECT_RESPONSE;
        size_t s2 = path_key(ps, "direct_response");
        TRY(check_keys(ps, direct, k_direct));
        TRY(get_u32(ps, direct, "status", true, 0, 200, 599, &r->direct_response.status));
        TRY(get_str(ps, direct, "body", false, NULL, &r->direct_response.body));
        path_restore(ps, s2);
    } else {
        r->action = PX_ACTION_ROUTE;
        TRY(parse_route_dests(ps, o, vh_port, r));
    }
    TRY(get_obj(ps, o, "rewrite", false, &rewrite));
    if (rewrite != NULL) {
        size_t s2 = path_key(ps, "rewrite");
        TRY(check_keys(ps, rewrite, k_rewrite));
        TRY(get_str(ps, rewrite, "uri", false, NULL, &r->rewrite.uri));
        TRY(get_str(ps, rewrite, "authority", false, NULL, &r->rewrite.authority));
        path_restore(ps, s2);
        if (r->action == PX_ACTION_REDIRECT) {
            return fail(ps, "rewrite", "cannot be combined with redirect");
        }
        r->has_rewrite = true;
    }
    TRY(get_ms(ps, o, "timeout_ms", 0, &r->timeout_ms));
    TRY(parse_retries(ps, o, &r->retries));
    TRY(parse_fault(ps, o, &r->fault));
    TRY(get_obj(ps, o, "mirror", false, &mirror));
    if (mirror != NULL) {
        size_t s2 = path_key(ps, "mirror");
        TRY(parse_dest(ps, mirror, vh_port, &r->mirror));
        path_restore(ps, s2);
        r->has_mirror = true;
        /* Istio: a mirror without mirrorPercentage mirrors every request. */
        TRY(get_pct(ps, o, "mirror_percentage", 100.0, &r->mirror_percentage));
    } else if (field(o, "mirror_percentage") != NULL) {
        return fail(ps, "mirror_percentage", "needs mirror");
    }
    TRY(get_obj(ps, o, "cors_policy", false, &cors));
    if (cors != NULL) {
        TRY(parse_cors(ps, cors, &r->cors));
        r->has_cors = true;
    }
    TRY(parse_headers(ps, o, "headers", &r->headers));
    return 0;
}

/* ---- virtual hosts and domains ---- */

static int parse_domain(ps_t *ps, wf_str_t d, px_domain_t *out)
{
    if (d.len == 0) {
        return fail(ps, NULL, "empty domain");
    }
    lower_in_place(d);
    const char *star = memchr(d.p, '*', d.len);
    if (star == NULL) {
        *out = (px_domain_t){PX_DOM_EXACT, d};
        return 0;
    }
    if (d.len == 1) {
        *out = (px_domain_t){PX_DOM_ANY, {d.p + 1, 0}};
        return 0;
    }
    /* Envoy: one wildcard, first or last, matching at least one character. */
    if (memchr(star + 1, '*', d.len - (size_t)(star - d.p) - 1) != NULL) {
        return fail(ps, NULL, "domain \"%s\": more than one wildcard", d.p);
    }
    if (star == d.p) {
        *out = (px_domain_t){PX_DOM_SUFFIX, {d.p + 1, d.len - 1}};
        return 0;
    }
    if (star == d.p + d.len - 1) {
        char *p = (char *)d.p;
        p[d.len - 1] = '\0';
        *out = (px_domain_t){PX_DOM_PREFIX, {d.p, d.len - 1}};
        return 0;
    }
    return fail(ps, NULL, "domain \"%s\": a wildcard must be first or last", d.p);
}

/* Istio's domains for a service host seen from a proxy of namespace ns: the FQDN, and for a
 * Kubernetes service the short forms Kubernetes DNS resolves (the bare name only from the same
 * namespace), each with and without `:port`. */
static int default_domains(ps_t *ps, px_vhost_t *vh)
{
    wf_str_t names[4];
    uint32_t nn = 0;
    names[nn++] = vh->host;
    const char *sfx = ".svc.cluster.local";
    size_t sl = strlen(sfx);
    if (vh->host.len > sl && strcmp(vh->host.p + vh->host.len - sl, sfx) == 0) {
        wf_str_t base = {vh->host.p, vh->host.len - sl}; /* name.ns */
        const char *dot = memchr(base.p, '.', base.len);
        if (dot != NULL) {
            wf_str_t name = {base.p, (size_t)(dot - base.p)};
            wf_str_t ns = {dot + 1, base.len - name.len - 1};
            if (wf_str_eq(ns, ps->s->proxy.namespace)) {
                TRY(dup_str(ps, name.p, name.len, &names[nn++]));
            }
            TRY(dup_str(ps, base.p, base.len, &names[nn++]));
            TRY(fmt_str(ps, &names[nn], "%.*s.svc", (int)base.len, base.p));
            nn++;
        }
    }
    uint32_t total = vh->port ? nn * 2 : nn;
    TRY(alloc_n(ps, total, sizeof(px_domain_t), (void **)&vh->domains));
    for (uint32_t i = 0; i < nn; i++) {
        TRY(parse_domain(ps, names[i], &vh->domains[vh->n_domains++]));
        if (vh->port) {
            wf_str_t wp;
            TRY(fmt_str(ps, &wp, "%s:%u", names[i].p, vh->port));
            TRY(parse_domain(ps, wp, &vh->domains[vh->n_domains++]));
        }
    }
    return 0;
}

static const char *const k_vhost[] = {"name", "host", "port", "domains", "routes", NULL};

static int parse_vhost(ps_t *ps, json_t *o, px_vhost_t *vh)
{
    if (!json_is_object(o)) {
        return fail(ps, NULL, "must be an object, not %s", type_name(o));
    }
    TRY(check_keys(ps, o, k_vhost));
    vh->snap = ps->s;
    TRY(get_str(ps, o, "host", false, NULL, &vh->host));
    TRY(expand_host(ps, &vh->host));
    TRY(get_port(ps, o, "port", false, &vh->port));
    if (field(o, "name") != NULL) {
        TRY(get_str(ps, o, "name", false, NULL, &vh->name));
    } else if (vh->host.len > 0) {
        TRY(fmt_str(ps, &vh->name, "%s:%u", vh->host.p, vh->port));
    } else {
        TRY(dup_str(ps, "", 0, &vh->name));
    }
    json_t *a;
    size_t n;
    if (field(o, "domains") != NULL) {
        TRY(get_arr(ps, o, "domains", &a, &n));
        if (n == 0) {
            return fail(ps, "domains", "must not be empty");
        }
        TRY(alloc_n(ps, n, sizeof(px_domain_t), (void **)&vh->domains));
        size_t saved = path_key(ps, "domains");
        for (size_t i = 0; i < n; i++) {
            size_t s2 = path_idx(ps, i);
            wf_str_t d;
            TRY(str_val(ps, json_array_get(a, i), NULL, &d));
            TRY(parse_domain(ps, d, &vh->domains[i]));
            path_restore(ps, s2);
        }
        path_restore(ps, saved);
        vh->n_domains = (uint32_t)n;
    } else if (vh->host.len > 0) {
        TRY(default_domains(ps, vh));
    } else {
        return fail(ps, NULL, "needs host or domains");
    }

    if (field(o, "routes") == NULL) {
        /* No VirtualService: Istio's default route to the service's own cluster. */
        if (vh->host.len == 0 || vh->port == 0) {
            return fail(ps, "routes", "required when host or port is not given");
        }
        TRY(alloc_n(ps, 1, sizeof(px_route_t), (void **)&vh->routes));
        px_route_t *r = &vh->routes[0];
        TRY(dup_str(ps, "default", 7, &r->name));
        TRY(alloc_n(ps, 1, sizeof(px_route_dest_t), (void **)&r->route));
        px_dest_t *d = &r->route[0].dest;
        d->host = vh->host;
        d->port = vh->port;
        TRY(dup_str(ps, "", 0, &d->subset));
        TRY(fmt_str(ps, &d->cluster_name, "outbound|%u||%s", vh->port, vh->host.p));
        d->cluster = px_snapshot_cluster(ps->s, d->cluster_name);
        r->route[0].weight = 100;
        r->n_route = 1;
        r->total_weight = 100;
        r->action = PX_ACTION_ROUTE;
        r->retries.attempts = DEF_RETRY_ATTEMPTS;
        r->retries.retry_on = DEF_RETRY_ON;
        vh->n_routes = 1;
        return 0;
    }
    TRY(get_arr(ps, o, "routes", &a, &n));
    TRY(alloc_n(ps, n, sizeof(px_route_t), (void **)&vh->routes));
    size_t saved = path_key(ps, "routes");
    for (size_t i = 0; i < n; i++) {
        size_t s2 = path_idx(ps, i);
        TRY(parse_route(ps, json_array_get(a, i), vh->port, &vh->routes[i]));
        path_restore(ps, s2);
    }
    path_restore(ps, saved);
    vh->n_routes = (uint32_t)n;
    return 0;
}

static int dom_cmp(const void *a, const void *b)
{
    const px_dom_index_t *x = a, *y = b;
    if (x->port != y->port) {
        return x->port < y->port ? -1 : 1;
    }
    if (x->kind != y->kind) {
        return x->kind < y->kind ? -1 : 1;
    }
    /* Longer wildcards first: Envoy prefers the longest suffix (or prefix) that matches. */
    if (x->value.len != y->value.len) {
        return x->value.len > y->value.len ? -1 : 1;
    }
    return wf_str_cmp(x->value, y->value);
}

static int exact_cmp(const void *a, const void *b)
{
    const px_dom_index_t *x = a, *y = b;
    if (x->port != y->port) {
        return x->port < y->port ? -1 : 1;
    }
    /* Byte order, shorter first: the order px_route's binary search walks. */
    return wf_str_cmp(x->value, y->value);
}

/* Build the domain indexes and refuse a domain that two virtual hosts of one port claim (Envoy
 * refuses such a route configuration too). */
static int build_domain_index(ps_t *ps)
{
    px_snapshot_t *s = ps->s;
    size_t ne = 0, nw = 0;
    for (uint32_t i = 0; i < s->n_vhosts; i++) {
        for (uint32_t j = 0; j < s->vhosts[i].n_domains; j++) {
            if (s->vhosts[i].domains[j].kind == PX_DOM_EXACT) {
                ne++;
            } else {
                nw++;
            }
        }
    }
    TRY(alloc_n(ps, ne, sizeof(px_dom_index_t), (void **)&s->dom_exact));
    TRY(alloc_n(ps, nw, sizeof(px_dom_index_t), (void **)&s->dom_wild));
    for (uint32_t i = 0; i < s->n_vhosts; i++) {
        const px_vhost_t *vh = &s->vhosts[i];
        for (uint32_t j = 0; j < vh->n_domains; j++) {
            px_dom_index_t e = {vh->port, vh->domains[j].kind, vh->domains[j].value, vh};
            if (e.kind == PX_DOM_EXACT) {
                s->dom_exact[s->n_dom_exact++] = e;
            } else {
                s->dom_wild[s->n_dom_wild++] = e;
            }
        }
    }
    if (s->n_dom_exact > 0) {
        qsort(s->dom_exact, s->n_dom_exact, sizeof(px_dom_index_t), exact_cmp);
    }
    if (s->n_dom_wild > 0) {
        qsort(s->dom_wild, s->n_dom_wild, sizeof(px_dom_index_t), dom_cmp);
    }
    px_dom_index_t *lists[2] = {s->dom_exact, s->dom_wild};
    uint32_t counts[2] = {s->n_dom_exact, s->n_dom_wild};
    for (int l = 0; l < 2; l++) {
        for (uint32_t i = 1; i < counts[l]; i++) {
            const px_dom_index_t *x = &lists[l][i - 1], *y = &lists[l][i];
            if ((l == 0 ? exact_cmp(x, y) : dom_cmp(x, y)) == 0) {
                return fail(ps, "virtual_hosts",
                            "domain \"%s%s%s\" on port %u is claimed by %s and %s",
                            x->kind == PX_DOM_SUFFIX || x->kind == PX_DOM_ANY ? "*" : "",
                            x->value.p, x->kind == PX_DOM_PREFIX ? "*" : "", x->port,
                            x->vhost->name.p, y->vhost->name.p);
            }
        }
    }
    return 0;
}

/* ---- clusters ---- */

static const char *const lb_names[] = {"LEAST_REQUEST", "ROUND_ROBIN", "RANDOM", "PASSTHROUGH",
                                       NULL};
static const char *const k_lb[] = {"simple", "consistent_hash", NULL};
static const char *const k_hash[] = {"http_header_name",  "http_cookie",
                                     "use_source_ip",     "http_query_parameter_name",
                                     "minimum_ring_size", NULL};
static const char *const k_cookie[] = {"name", "path", "ttl_ms", NULL};

static int parse_lb(ps_t *ps, json_t *obj, px_lb_t *lb)
{
    json_t *o, *ch;
    lb->kind = PX_LB_LEAST_REQUEST;
    TRY(get_obj(ps, obj, "load_balancer", false, &o));
    if (o == NULL) {
        return 0;
    }
    size_t saved = path_key(ps, "load_balancer");
    TRY(check_keys(ps, o, k_lb));
    TRY(get_obj(ps, o, "consistent_hash", false, &ch));
    if (field(o, "simple") != NULL && ch != NULL) {
        return fail(ps, NULL, "simple and consistent_hash are exclusive");
    }
    if (ch == NULL) {
        int k;
        TRY(get_enum(ps, o, "simple", lb_names, PX_LB_LEAST_REQUEST, &k));
        lb->kind = (px_lb_kind_t)k;
        path_restore(ps, saved);
        return 0;
    }
    lb->kind = PX_LB_CONSISTENT_HASH;
    size_t s2 = path_key(ps, "consistent_hash");
    TRY(check_keys(ps, ch, k_hash));
    json_t *cookie = NULL;
    TRY(get_obj(ps, ch, "http_cookie", false, &cookie));
    bool src_ip = false;
    TRY(get_bool(ps, ch, "use_source_ip", false, &src_ip));
    int kinds = (field(ch, "http_header_name") != NULL) + (cookie != NULL) + src_ip +
                (field(ch, "http_query_parameter_name") != NULL);
    if (kinds != 1) {
        return fail(ps, NULL,
                    "exactly one of http_header_name, http_cookie, use_source_ip, "
                    "http_query_parameter_name");
    }
    if (field(ch, "http_header_name") != NULL) {
        lb->hash_kind = PX_HASH_HEADER;
        TRY(get_str(ps, ch, "http_header_name", true, NULL, &lb->hash_name));
        lower_in_place(lb->hash_name);
    } else if (cookie != NULL) {
        lb->hash_kind = PX_HASH_COOKIE;
        size_t s3 = path_key(ps, "http_cookie");
        TRY(check_keys(ps, cookie, k_cookie));
        TRY(get_str(ps, cookie, "name", true, NULL, &lb->hash_name));
        TRY(get_str(ps, cookie, "path", false, NULL, &lb->cookie_path));
        TRY(get_ms(ps, cookie, "ttl_ms", 0, &lb->cookie_ttl_ms));
        path_restore(ps, s3);
    } else if (src_ip) {
        lb->hash_kind = PX_HASH_SOURCE_IP;
    } else {
        lb->hash_kind = PX_HASH_QUERY_PARAM;
        TRY(get_str(ps, ch, "http_query_parameter_name", true, NULL, &lb->hash_name));
    }
    if (lb->hash_kind != PX_HASH_SOURCE_IP && lb->hash_name.len == 0) {
        return fail(ps, NULL, "hash name must not be empty");
    }
    int64_t ring;
    TRY(get_int(ps, ch, "minimum_ring_size", false, DEF_RING_SIZE, 1, 8388608, &ring));
    lb->minimum_ring_size = (uint64_t)ring;
    path_restore(ps, s2);
    path_restore(ps, saved);
    return 0;
}

static const char *const k_pool[] = {"tcp", "http", NULL};
static const char *const k_pool_tcp[] = {"max_connections", "connect_timeout_ms", NULL};
static const char *const k_pool_http[] = {"http1_max_pending_requests",
                                          "max_requests_per_connection", "idle_timeout_ms",
                                          "max_retries", NULL};

static int parse_pool(ps_t *ps, json_t *obj, px_conn_pool_t *p)
{
    json_t *o = NULL, *tcp = NULL, *http = NULL;
    TRY(get_obj(ps, obj, "connection_pool", false, &o));
    size_t saved = path_key(ps, "connection_pool");
    if (o != NULL) {
        TRY(check_keys(ps, o, k_pool));
        TRY(get_obj(ps, o, "tcp", false, &tcp));
        TRY(get_obj(ps, o, "http", false, &http));
    }
    size_t s2 = path_key(ps, "tcp");
    if (tcp != NULL) {
        TRY(check_keys(ps, tcp, k_pool_tcp));
    }
    TRY(get_u32(ps, tcp, "max_connections", false, UINT32_MAX, 1, UINT32_MAX, &p->max_connections));
    TRY(get_ms(ps, tcp, "connect_timeout_ms", DEF_CONNECT_TIMEOUT_MS, &p->connect_timeout_ms));
    if (p->connect_timeout_ms == 0) {
        return fail(ps, "connect_timeout_ms", "must be > 0");
    }
    path_restore(ps, s2);
    s2 = path_key(ps, "http");
    if (http != NULL) {
        TRY(check_keys(ps, http, k_pool_http));
    }
    TRY(get_u32(ps, http, "http1_max_pending_requests", false, UINT32_MAX, 1, UINT32_MAX,
                &p->http1_max_pending_requests));
    TRY(get_u32(ps, http, "max_requests_per_connection", false, 0, 0, UINT32_MAX,
                &p->max_requests_per_connection));
    TRY(get_ms(ps, http, "idle_timeout_ms", DEF_IDLE_TIMEOUT_MS, &p->idle_timeout_ms));
    TRY(get_u32(ps, http, "max_retries", false, UINT32_MAX, 0, UINT32_MAX, &p->max_retries));
    path_restore(ps, saved);
    return 0;
}

static const char *const k_outlier[] = {
    "consecutive_5xx_errors", "consecutive_gateway_errors", "interval_ms",
    "base_ejection_time_ms",  "max_ejection_percent",       NULL};

static int parse_outlier(ps_t *ps, json_t *obj, px_outlier_t *od)
{
    json_t *o;
    TRY(get_obj(ps, obj, "outlier_detection", false, &o));
    if (o == NULL) {
        return 0;
    }
    size_t saved = path_key(ps, "outlier_detection");
    TRY(check_keys(ps, o, k_outlier));
    od->enabled = true;
    TRY(get_u32(ps, o, "consecutive_5xx_errors", false, DEF_OUTLIER_5XX, 0, UINT32_MAX,
                &od->consecutive_5xx_errors));
    TRY(get_u32(ps, o, "consecutive_gateway_errors", false, 0, 0, UINT32_MAX,
                &od->consecutive_gateway_errors));
    TRY(get_ms(ps, o, "interval_ms", DEF_OUTLIER_INTERVAL_MS, &od->interval_ms));
    TRY(get_ms(ps, o, "base_ejection_time_ms", DEF_OUTLIER_EJECTION_MS,
               &od->base_ejection_time_ms));
    TRY(get_u32(ps, o, "max_ejection_percent", false, DEF_OUTLIER_MAX_PERCENT, 0, 100,
                &od->max_ejection_percent));
    if (od->interval_ms == 0) {
        return fail(ps, "interval_ms", "must be > 0");
    }
    path_restore(ps, saved);
    return 0;
}

static const char *const tls_names[] = {"DISABLE", "SIMPLE", "MUTUAL", "ISTIO_MUTUAL", NULL};
static const char *const k_tls[] = {
    "mode", "sni", "subject_alt_names", "client_certificate", "private_key", "ca_certificates",
    NULL};

static int parse_tls(ps_t *ps, json_t *obj, px_tls_t *t)
{
    json_t *o;
    TRY(get_obj(ps, obj, "tls", false, &o));
    size_t saved = path_key(ps, "tls");
    if (o != NULL) {
        TRY(check_keys(ps, o, k_tls));
    }
    int m;
    TRY(get_enum(ps, o, "mode", tls_names, PX_TLS_DISABLE, &m));
    t->mode = o == NULL ? PX_TLS_AUTO : (px_tls_mode_t)m;
    TRY(get_str(ps, o, "sni", false, NULL, &t->sni));
    TRY(get_strs(ps, o, "subject_alt_names", &t->subject_alt_names, &t->n_subject_alt_names));
    TRY(get_str(ps, o, "client_certificate", false, NULL, &t->client_certificate));
    TRY(get_str(ps, o, "private_key", false, NULL, &t->private_key));
    TRY(get_str(ps, o, "ca_certificates", false, NULL, &t->ca_certificates));
    if (t->mode == PX_TLS_MUTUAL && (t->client_certificate.len == 0 || t->private_key.len == 0)) {
        return fail(ps, NULL, "MUTUAL needs client_certificate and private_key");
    }
    path_restore(ps, saved);
    return 0;
}

static const char *const k_endpoint[] = {"address", "port",    "labels",   "workload", "namespace",
                                         "weight",  "in_mesh", "identity", NULL};

static int parse_endpoint(ps_t *ps, json_t *o, uint32_t default_port, px_endpoint_t *e)
{
    if (!json_is_object(o)) {
        return fail(ps, NULL, "must be an object, not %s", type_name(o));
    }
    TRY(check_keys(ps, o, k_endpoint));
    TRY(get_str(ps, o, "address", true, NULL, &e->address));
    if (e->address.len == 0) {
        return fail(ps, "address", "must not be empty");
    }
    TRY(get_u32(ps, o, "port", false, default_port, 1, PORT_MAX, &e->port));
    TRY(get_labels(ps, o, "labels", &e->labels, &e->n_labels));
    TRY(get_str(ps, o, "workload", false, NULL, &e->workload));
    TRY(get_str(ps, o, "namespace", false, NULL, &e->namespace));
    TRY(get_u32(ps, o, "weight", false, 1, 1, 128 * 1024, &e->weight));
    TRY(get_bool(ps, o, "in_mesh", false, &e->in_mesh));
    TRY(get_str(ps, o, "identity", false, NULL, &e->identity));
    return 0;
}

static const char *const k_cluster[] = {
    "name", "host",      "port", "subset", "load_balancer", "connection_pool", "outlier_detection",
    "tls",  "endpoints", NULL};

static int parse_cluster(ps_t *ps, json_t *o, px_cluster_t *c)
{
    if (!json_is_object(o)) {
        return fail(ps, NULL, "must be an object, not %s", type_name(o));
    }
    TRY(check_keys(ps, o, k_cluster));
    TRY(get_str(ps, o, "host", true, NULL, &c->host));
    if (c->host.len == 0) {
        return fail(ps, "host", "must not be empty");
    }
    TRY(expand_host(ps, &c->host));
    TRY(get_port(ps, o, "port", true, &c->port));
    TRY(get_str(ps, o, "subset", false, NULL, &c->subset));
    if (field(o, "name") != NULL) {
        TRY(get_str(ps, o, "name", true, NULL, &c->name));
        if (c->name.len == 0) {
            return fail(ps, "name", "must not be empty");
        }
    } else {
        TRY(fmt_str(ps, &c->name, "outbound|%u|%s|%s", c->port, c->subset.p, c->host.p));
    }
    TRY(parse_lb(ps, o, &c->lb));
    TRY(parse_pool(ps, o, &c->pool));
    TRY(parse_outlier(ps, o, &c->outlier));
    TRY(parse_tls(ps, o, &c->tls));
    json_t *a;
    size_t n;
    TRY(get_arr(ps, o, "endpoints", &a, &n));
    TRY(alloc_n(ps, n, sizeof(px_endpoint_t), (void **)&c->endpoints));
    size_t saved = path_key(ps, "endpoints");
    for (size_t i = 0; i < n; i++) {
        size_t s2 = path_idx(ps, i);
        TRY(parse_endpoint(ps, json_array_get(a, i), c->port, &c->endpoints[i]));
        path_restore(ps, s2);
    }
    path_restore(ps, saved);
    c->n_endpoints = (uint32_t)n;
    return 0;
}

static int parse_clusters(ps_t *ps, json_t *root)
{
    px_snapshot_t *s = ps->s;
    json_t *a;
    size_t n;
    TRY(get_arr(ps, root, "clusters", &a, &n));
    TRY(alloc_n(ps, n, sizeof(px_cluster_t), (void **)&s->clusters));
    size_t saved = path_key(ps, "clusters");
    for (size_t i = 0; i < n; i++) {
        size_t s2 = path_idx(ps, i);
        TRY(parse_cluster(ps, json_array_get(a, i), &s->clusters[i]));
        path_restore(ps, s2);
    }
    path_restore(ps, saved);
    s->n_clusters = (uint32_t)n;
    if (n > 1) {
        qsort(s->clusters, n, sizeof(px_cluster_t), cluster_cmp);
    }
    for (size_t i = 1; i < n; i++) {
        if (wf_str_eq(s->clusters[i - 1].name, s->clusters[i].name)) {
            return fail(ps, "clusters", "duplicate cluster name \"%s\"", s->clusters[i].name.p);
        }
    }
    return 0;
}

/* ---- proxy, telemetry, inbound, gateway ---- */

static const char *const mode_names[] = {"sidecar", "gateway", NULL};
static const char *const k_proxy[] = {
    "id",       "service",    "namespace", "version", "workload", "labels", "service_account",
    "identity", "cluster_id", "mode",      NULL};

static int parse_proxy(ps_t *ps, json_t *root)
{
    px_proxy_info_t *p = &ps->s->proxy;
    json_t *o;
    TRY(get_obj(ps, root, "proxy", true, &o));
    size_t saved = path_key(ps, "proxy");
    TRY(check_keys(ps, o, k_proxy));
    TRY(get_str(ps, o, "service", true, NULL, &p->service));
    if (p->service.len == 0) {
        return fail(ps, "service", "must not be empty");
    }
    TRY(get_str(ps, o, "namespace", false, "default", &p->namespace));
    if (p->namespace.len == 0 || memchr(p->namespace.p, '.', p->namespace.len) != NULL) {
        return fail(ps, "namespace", "must be a non-empty name without dots");
    }
    TRY(get_str(ps, o, "version", false, NULL, &p->version));
    if (field(o, "workload") != NULL) {
        TRY(get_str(ps, o, "workload", true, NULL, &p->workload));
    } else if (p->version.len > 0) {
        TRY(fmt_str(ps, &p->workload, "%s-%s", p->service.p, p->version.p));
    } else {
        p->workload = p->service;
    }
    if (field(o, "id") != NULL) {
        TRY(get_str(ps, o, "id", true, NULL, &p->id));
    } else {
        TRY(fmt_str(ps, &p->id, "%s.%s", p->workload.p, p->namespace.p));
    }
    if (field(o, "labels") != NULL) {
        TRY(get_labels(ps, o, "labels", &p->labels, &p->n_labels));
    } else {
        /* Istio's canonical service and revision come from app and version. */
        TRY(alloc_n(ps, 2, sizeof(px_label_t), (void **)&p->labels));
        TRY(dup_str(ps, "app", 3, &p->labels[0].key));
        p->labels[0].value = p->service;
        p->n_labels = 1;
        if (p->version.len > 0) {
            TRY(dup_str(ps, "version", 7, &p->labels[1].key));
            p->labels[1].value = p->version;
            p->n_labels = 2;
        }
    }
    TRY(get_str(ps, o, "service_account", false, "default", &p->service_account));
    if (field(o, "identity") != NULL) {
        TRY(get_str(ps, o, "identity", true, NULL, &p->identity));
        if (strncmp(p->identity.p, "spiffe://", 9) != 0) {
            return fail(ps, "identity", "must be a spiffe:// URI");
        }
    } else {
        TRY(fmt_str(ps, &p->identity, "spiffe://cluster.local/ns/%s/sa/%s", p->namespace.p,
                    p->service_account.p));
    }
    TRY(get_str(ps, o, "cluster_id", false, "Kubernetes", &p->cluster_id));
    int m;
    TRY(get_enum(ps, o, "mode", mode_names, PX_MODE_SIDECAR, &m));
    p->mode = (px_mode_t)m;
    path_restore(ps, saved);
    return 0;
}

static const char *const k_telemetry[] = {"sampling", "collector_url", "access_log", "metrics",
                                          NULL};

static int parse_telemetry(ps_t *ps, json_t *root)
{
    px_telemetry_t *t = &ps->s->telemetry;
    json_t *o;
    TRY(get_obj(ps, root, "telemetry", false, &o));
    size_t saved = path_key(ps, "telemetry");
    if (o != NULL) {
        TRY(check_keys(ps, o, k_telemetry));
    }
    TRY(get_pct(ps, o, "sampling", DEF_SAMPLING, &t->sampling));
    TRY(get_str(ps, o, "collector_url", false, NULL, &t->collector_url));
    TRY(get_bool(ps, o, "access_log", false, &t->access_log));
    TRY(get_bool(ps, o, "metrics", true, &t->metrics));
    path_restore(ps, saved);
    return 0;
}

/* ---- authorization policies (px_authz.h) ---- */

/* Unknown keys inside a policy are refused even without the strict option: a constraint the
 * proxy skipped would widen an ALLOW rule or narrow a DENY one. */
static int az_keys(ps_t *ps, json_t *obj, const char *const *known)
{
    if (!json_is_object(obj)) {
        return fail(ps, NULL, "must be an object, not %s", type_name(obj));
    }
    return known_keys(ps, obj, known);
}

typedef enum { AZ_STR, AZ_HOST, AZ_CIDR, AZ_PORT, AZ_PATH } az_kind_t;

/* The string list at key, compiled as kind into *v / *n (the matching px_authz_*_t list). */
static int az_list(ps_t *ps, json_t *obj, const char *key, az_kind_t kind, void **v, uint32_t *n)
{
    static const size_t sizes[] = {sizeof(px_authz_str_t), sizeof(px_authz_str_t),
                                   sizeof(px_authz_cidr_t), sizeof(uint16_t),
                                   sizeof(px_authz_path_t)};
    wf_str_t *strs;
    uint32_t cnt;
    *v = NULL;
    *n = 0;
    TRY(get_strs(ps, obj, key, &strs, &cnt));
    TRY(alloc_n(ps, cnt, sizes[kind], v));
    size_t saved = path_key(ps, key);
    for (uint32_t i = 0; i < cnt; i++) {
        size_t s2 = path_idx(ps, i);
        const char *why = NULL;
        int rc = 0;
        switch (kind) {
        case AZ_HOST:
            lower_in_place(strs[i]);
            px_authz_compile_str(strs[i], &((px_authz_str_t *)*v)[i]);
            break;
        case AZ_STR:
            px_authz_compile_str(strs[i], &((px_authz_str_t *)*v)[i]);
            break;
        case AZ_CIDR:
            rc = px_authz_compile_cidr(strs[i], &((px_authz_cidr_t *)*v)[i], &why);
            break;
        case AZ_PORT:
            rc = px_authz_compile_port(strs[i], &((uint16_t *)*v)[i], &why);
            break;
        case AZ_PATH:
            rc = px_authz_compile_path(&ps->s->arena, strs[i], &((px_authz_path_t *)*v)[i], &why);
            break;
        }
        if (rc == WF_E_LIMIT) {
            return fail_limit(ps, NULL, "snapshot exceeds %zu bytes of parsed structures",
                              ps->o->limits.max_arena);
        }
        if (rc != 0) {
            return fail(ps, NULL, "%s: \"%s\"", why, strs[i].p);
        }
        path_restore(ps, s2);
    }
    path_restore(ps, saved);
    *n = cnt;
    return 0;
}

#define AZ_LIST(obj, key, kind, l) az_list(ps, obj, key, kind, (void **)&(l).v, &(l).n)

static const char *const k_az_source[] = {"principals",
                                          "not_principals",
                                          "request_principals",
                                          "not_request_principals",
                                          "namespaces",
                                          "not_namespaces",
                                          "ip_blocks",
                                          "not_ip_blocks",
                                          "remote_ip_blocks",
                                          "not_remote_ip_blocks",
                                          NULL};
static const char *const k_az_op[] = {"hosts",     "not_hosts", "ports",
                                      "not_ports", "methods",   "not_methods",
                                      "paths",     "not_paths", NULL};
static const char *const k_az_from[] = {"source", NULL};
static const char *const k_az_to[] = {"operation", NULL};
static const char *const k_az_when[] = {"key", "values", "not_values", NULL};
static const char *const k_az_rule[] = {"from", "to", "when", NULL};
static const char *const k_az_policy[] = {"name", "action", "rules", NULL};
static const char *const az_actions[] = {"ALLOW", "DENY", "AUDIT", "CUSTOM", NULL};

static int az_source(ps_t *ps, json_t *o, px_authz_source_t *s)
{
    TRY(az_keys(ps, o, k_az_from));
    json_t *src;
    TRY(get_obj(ps, o, "source", true, &src));
    size_t saved = path_key(ps, "source");
    TRY(az_keys(ps, src, k_az_source));
    TRY(AZ_LIST(src, "principals", AZ_STR, s->principals));
    TRY(AZ_LIST(src, "not_principals", AZ_STR, s->not_principals));
    TRY(AZ_LIST(src, "request_principals", AZ_STR, s->request_principals));
    TRY(AZ_LIST(src, "not_request_principals", AZ_STR, s->not_request_principals));
    TRY(AZ_LIST(src, "namespaces", AZ_STR, s->namespaces));
    TRY(AZ_LIST(src, "not_namespaces", AZ_STR, s->not_namespaces));
    TRY(AZ_LIST(src, "ip_blocks", AZ_CIDR, s->ip_blocks));
    TRY(AZ_LIST(src, "not_ip_blocks", AZ_CIDR, s->not_ip_blocks));
    TRY(AZ_LIST(src, "remote_ip_blocks", AZ_CIDR, s->remote_ip_blocks));
    TRY(AZ_LIST(src, "not_remote_ip_blocks", AZ_CIDR, s->not_remote_ip_blocks));
    path_restore(ps, saved);
    return 0;
}

static int az_operation(ps_t *ps, json_t *o, px_authz_op_t *op)
{
    TRY(az_keys(ps, o, k_az_to));
    json_t *oo;
    TRY(get_obj(ps, o, "operation", true, &oo));
    size_t saved = path_key(ps, "operation");
    TRY(az_keys(ps, oo, k_az_op));
    TRY(AZ_LIST(oo, "hosts", AZ_HOST, op->hosts));
    TRY(AZ_LIST(oo, "not_hosts", AZ_HOST, op->not_hosts));
    TRY(AZ_LIST(oo, "ports", AZ_PORT, op->ports));
    TRY(AZ_LIST(oo, "not_ports", AZ_PORT, op->not_ports));
    TRY(AZ_LIST(oo, "methods", AZ_STR, op->methods));
    TRY(AZ_LIST(oo, "not_methods", AZ_STR, op->not_methods));
    TRY(AZ_LIST(oo, "paths", AZ_PATH, op->paths));
    TRY(AZ_LIST(oo, "not_paths", AZ_PATH, op->not_paths));
    path_restore(ps, saved);
    return 0;
}

static int az_condition(ps_t *ps, json_t *o, px_authz_cond_t *c)
{
    TRY(az_keys(ps, o, k_az_when));
    TRY(get_str(ps, o, "key", true, NULL, &c->name));
    const char *why = NULL;
    if (px_authz_compile_key(c->name, &c->key, &c->header, &why) != 0) {
        return fail(ps, "key", "%s: \"%s\"", why, c->name.p);
    }
    TRY(dup_str(ps, c->header.p, c->header.len, &c->header)); /* c->name keeps its case */
    lower_in_place(c->header);
    switch (c->key) {
    case PX_AZ_KEY_SOURCE_IP:
    case PX_AZ_KEY_REMOTE_IP:
    case PX_AZ_KEY_DEST_IP:
        TRY(AZ_LIST(o, "values", AZ_CIDR, c->cidrs));
        TRY(AZ_LIST(o, "not_values", AZ_CIDR, c->not_cidrs));
        break;
    case PX_AZ_KEY_DEST_PORT:
        TRY(AZ_LIST(o, "values", AZ_PORT, c->ports));
        TRY(AZ_LIST(o, "not_values", AZ_PORT, c->not_ports));
        break;
    default:
        TRY(AZ_LIST(o, "values", AZ_STR, c->strs));
        TRY(AZ_LIST(o, "not_values", AZ_STR, c->not_strs));
        break;
    }
    if (c->strs.n + c->not_strs.n + c->cidrs.n + c->not_cidrs.n + c->ports.n + c->not_ports.n ==
        0) {
        return fail(ps, NULL, "a condition needs values or not_values");
    }
    return 0;
}

/* Parse the array at key of obj with one of the functions above into *out / *n. */
#define AZ_ARRAY(obj, key, fn, out, n)                                                             \
    do {                                                                                           \
        json_t *a_;                                                                                \
        size_t n_;                                                                                 \
        TRY(get_arr(ps, obj, key, &a_, &n_));                                                      \
        TRY(alloc_n(ps, n_, sizeof(*(out)), (void **)&(out)));                                     \
        size_t s_ = path_key(ps, key);                                                             \
        for (size_t i_ = 0; i_ < n_; i_++) {                                                       \
            size_t s2_ = path_idx(ps, i_);                                                         \
            TRY(fn(ps, json_array_get(a_, i_), &(out)[i_]));                                       \
            path_restore(ps, s2_);                                                                 \
        }                                                                                          \
        path_restore(ps, s_);                                                                      \
        (n) = (uint32_t)n_;                                                                        \
    } while (0)

static int az_rule(ps_t *ps, json_t *o, px_authz_rule_t *r)
{
    TRY(az_keys(ps, o, k_az_rule));
    AZ_ARRAY(o, "from", az_source, r->from, r->n_from);
    AZ_ARRAY(o, "to", az_operation, r->to, r->n_to);
    AZ_ARRAY(o, "when", az_condition, r->when, r->n_when);
    return 0;
}

static int az_policy(ps_t *ps, json_t *o, px_authz_policy_t *p)
{
    TRY(az_keys(ps, o, k_az_policy));
    TRY(get_str(ps, o, "name", true, NULL, &p->name));
    int a;
    TRY(get_enum(ps, o, "action", az_actions, PX_AZ_ALLOW, &a));
    if (a == 3) {
        return fail(ps, "action", "CUSTOM needs an external authorizer, which weft does not have");
    }
    p->action = (px_authz_action_t)a;
    AZ_ARRAY(o, "rules", az_rule, p->rules, p->n_rules);
    return 0;
}

/* inbound.authorization: the policies of this workload, compiled for px_authz_check. */
static int parse_authz(ps_t *ps, json_t *az, px_authz_set_t *set)
{
    AZ_ARRAY(az, "policies", az_policy, set->policies, set->n_policies);
    for (uint32_t i = 0; i < set->n_policies; i++) {
        set->n_allow += set->policies[i].action == PX_AZ_ALLOW;
    }
    return 0;
}

static const char *const peer_names[] = {"UNSET", "PERMISSIVE", "STRICT", "DISABLE", NULL};
static const char *const k_inbound[] = {"app_address", "ports", "peer_authentication",
                                        "authorization", NULL};
static const char *const k_inport[] = {"port", "target_port", "name", "protocol", "mtls", NULL};
static const char *const k_peer[] = {"mode", NULL};
static const char *const k_authz[] = {"policies", NULL};

static int parse_inbound(ps_t *ps, json_t *root)
{
    px_inbound_t *in = &ps->s->inbound;
    json_t *o, *pa = NULL, *az = NULL;
    TRY(get_obj(ps, root, "inbound", false, &o));
    size_t saved = path_key(ps, "inbound");
    if (o != NULL) {
        TRY(check_keys(ps, o, k_inbound));
    }
    TRY(get_str(ps, o, "app_address", false, "127.0.0.1", &in->app_address));
    json_t *a;
    size_t n;
    TRY(get_arr(ps, o, "ports", &a, &n));
    TRY(alloc_n(ps, n, sizeof(px_inbound_port_t), (void **)&in->ports));
    size_t s2 = path_key(ps, "ports");
    for (size_t i = 0; i < n; i++) {
        size_t s3 = path_idx(ps, i);
        json_t *po = json_array_get(a, i);
        px_inbound_port_t *ip = &in->ports[i];
        if (!json_is_object(po)) {
            return fail(ps, NULL, "must be an object, not %s", type_name(po));
        }
        TRY(check_keys(ps, po, k_inport));
        TRY(get_port(ps, po, "port", true, &ip->port));
        TRY(get_u32(ps, po, "target_port", false, ip->port, 1, PORT_MAX, &ip->target_port));
        TRY(get_str(ps, po, "name", false, NULL, &ip->name));
        TRY(get_str(ps, po, "protocol", false, "HTTP", &ip->protocol));
        int m;
        TRY(get_enum(ps, po, "mtls", peer_names, PX_PEER_AUTH_UNSET, &m));
        ip->mtls = (px_peer_auth_t)m;
        for (size_t j = 0; j < i; j++) {
            if (in->ports[j].port == ip->port) {
                return fail(ps, "port", "duplicate inbound port %u", ip->port);
            }
        }
        path_restore(ps, s3);
    }
    path_restore(ps, s2);
    in->n_ports = (uint32_t)n;
    TRY(get_obj(ps, o, "peer_authentication", false, &pa));
    s2 = path_key(ps, "peer_authentication");
    if (pa != NULL) {
        TRY(check_keys(ps, pa, k_peer));
    }
    int m;
    TRY(get_enum(ps, pa, "mode", peer_names, PX_PEER_AUTH_PERMISSIVE, &m));
    in->mtls_mode = m == PX_PEER_AUTH_UNSET ? PX_PEER_AUTH_PERMISSIVE : (px_peer_auth_t)m;
    path_restore(ps, s2);
    TRY(get_obj(ps, o, "authorization", false, &az));
    if (az != NULL) {
        s2 = path_key(ps, "authorization");
        TRY(az_keys(ps, az, k_authz));
        TRY(parse_authz(ps, az, &in->authz));
        path_restore(ps, s2);
    }
    path_restore(ps, saved);
    return 0;
}

static const char *const k_gateway[] = {"servers", NULL};
static const char *const k_server[] = {"name", "port", "protocol", "hosts", NULL};

static int parse_gateway(ps_t *ps, json_t *root)
{
    px_snapshot_t *s = ps->s;
    json_t *o;
    TRY(get_obj(ps, root, "gateway", s->proxy.mode == PX_MODE_GATEWAY, &o));
    if (o == NULL) {
        return 0;
    }
    if (s->proxy.mode != PX_MODE_GATEWAY) {
        return fail(ps, "gateway", "only valid with proxy.mode \"gateway\"");
    }
    size_t saved = path_key(ps, "gateway");
    TRY(check_keys(ps, o, k_gateway));
    json_t *a;
    size_t n;
    TRY(get_arr(ps, o, "servers", &a, &n));
    if (n == 0) {
        return fail(ps, "servers", "must not be empty");
    }
    TRY(alloc_n(ps, n, sizeof(px_gw_server_t), (void **)&s->gateway.servers));
    size_t s2 = path_key(ps, "servers");
    for (size_t i = 0; i < n; i++) {
        size_t s3 = path_idx(ps, i);
        json_t *so = json_array_get(a, i);
        px_gw_server_t *sv = &s->gateway.servers[i];
        if (!json_is_object(so)) {
            return fail(ps, NULL, "must be an object, not %s", type_name(so));
        }
        TRY(check_keys(ps, so, k_server));
        TRY(get_str(ps, so, "name", false, NULL, &sv->name));
        TRY(get_port(ps, so, "port", true, &sv->port));
        TRY(get_str(ps, so, "protocol", false, "HTTP", &sv->protocol));
        TRY(get_strs(ps, so, "hosts", &sv->hosts, &sv->n_hosts));
        if (sv->n_hosts == 0) {
            return fail(ps, "hosts", "must not be empty");
        }
        for (size_t j = 0; j < i; j++) {
            if (s->gateway.servers[j].port == sv->port) {
                return fail(ps, "port", "duplicate server port %u", sv->port);
            }
        }
        path_restore(ps, s3);
    }
    path_restore(ps, s2);
    s->gateway.n_servers = (uint32_t)n;
    path_restore(ps, saved);
    /* A gateway routes only on its servers' ports. */
    for (uint32_t i = 0; i < s->n_vhosts; i++) {
        bool bound = false;
        for (uint32_t j = 0; j < s->gateway.n_servers; j++) {
            bound = bound || s->gateway.servers[j].port == s->vhosts[i].port;
        }
        if (!bound) {
            path_key(ps, "virtual_hosts");
            path_idx(ps, i);
            return fail(ps, "port", "%u is not a gateway server port", s->vhosts[i].port);
        }
    }
    return 0;
}

static const char *const k_security[] = {"trust_bundle", "trust_bundle_version", NULL};

/* "security": the CA's trust bundle, bounded and checked to be PEM certificates here so that a
 * bad one is refused with the snapshot (the NACK says why) rather than failing later. */
static int parse_security(ps_t *ps, json_t *root)
{
    px_snap_security_t *sec = &ps->s->security;
    json_t *o;
    TRY(get_obj(ps, root, "security", false, &o));
    if (o == NULL) {
        return 0;
    }
    size_t saved = path_key(ps, "security");
    TRY(check_keys(ps, o, k_security));
    int64_t v;
    TRY(get_int(ps, o, "trust_bundle_version", true, 0, 1, INT64_MAX, &v));
    json_t *b = field(o, "trust_bundle");
    if (b == NULL) {
        return fail(ps, "trust_bundle", "required");
    }
    if (!json_is_string(b)) {
        return fail(ps, "trust_bundle", "must be a string, not %s", type_name(b));
    }
    char why[256];
    int rc = px_cert_bundle_check(json_string_value(b), json_string_length(b), why, sizeof(why));
    if (rc == WF_E_LIMIT) {
        return fail_limit(ps, "trust_bundle", "%s", why);
    }
    if (rc != 0) {
        return fail(ps, "trust_bundle", "%s", why);
    }
    TRY(dup_str(ps, json_string_value(b), json_string_length(b), &sec->trust_bundle));
    sec->trust_bundle_version = (uint64_t)v;
    path_restore(ps, saved);
    return 0;
}

static const char *const k_root[] = {"schema",        "version",  "proxy",   "telemetry", "inbound",
                                     "virtual_hosts", "clusters", "gateway", "security",  NULL};

static int parse_root(ps_t *ps, json_t *root)
{
    px_snapshot_t *s = ps->s;
    if (!json_is_object(root)) {
        return fail(ps, NULL, "a snapshot must be a JSON object");
    }
    TRY(check_keys(ps, root, k_root));
    int64_t x;
    TRY(get_int(ps, root, "schema", true, 0, 1, INT32_MAX, &x));
    if (x != PX_SNAPSHOT_SCHEMA) {
        return fail(ps, "schema", "%" PRId64 " is not supported (this proxy reads %d)", x,
                    PX_SNAPSHOT_SCHEMA);
    }
    s->schema = (uint32_t)x;
    TRY(get_int(ps, root, "version", true, 0, 0, INT64_MAX, &x));
    s->version = (uint64_t)x;
    TRY(parse_proxy(ps, root));
    TRY(parse_telemetry(ps, root));
    TRY(parse_clusters(ps, root));
    TRY(parse_inbound(ps, root));
    json_t *a;
    size_t n;
    TRY(get_arr(ps, root, "virtual_hosts", &a, &n));
    TRY(alloc_n(ps, n, sizeof(px_vhost_t), (void **)&s->vhosts));
    size_t saved = path_key(ps, "virtual_hosts");
    for (size_t i = 0; i < n; i++) {
        size_t s2 = path_idx(ps, i);
        TRY(parse_vhost(ps, json_array_get(a, i), &s->vhosts[i]));
        path_restore(ps, s2);
    }
    path_restore(ps, saved);
    s->n_vhosts = (uint32_t)n;
    TRY(build_domain_index(ps));
    TRY(parse_gateway(ps, root));
    TRY(parse_security(ps, root));
    return 0;
}

/* ---- public API ---- */

void px_snapshot_opts_default(px_snapshot_opts_t *opts)
{
    memset(opts, 0, sizeof(*opts));
    opts->limits.max_bytes = 8u << 20;
    opts->limits.max_arena = 64u << 20;
    opts->limits.max_items = 10000;
    opts->limits.max_string = 8192;
    opts->limits.max_regex = 2048;
    opts->limits.match_limit = 100000;
    opts->strict = false;
}

static void snapshot_free(px_snapshot_t *s)
{
    for (uint32_t i = 0; i < s->n_regexes; i++) {
        pcre2_code_free(s->regexes[i]);
    }
    wf_free(s->regexes);
    pcre2_match_context_free(s->mctx);
    wf_arena_free(&s->arena);
    wf_free(s);
}

int px_snapshot_parse(const char *json, size_t len, const px_snapshot_opts_t *opts,
                      px_snapshot_t **out, char *err, size_t errlen)
{
    px_snapshot_opts_t defaults;
    if (opts == NULL) {
        px_snapshot_opts_default(&defaults);
        opts = &defaults;
    }
    *out = NULL;
    if (errlen > 0) {
        err[0] = '\0';
    }
    ps_t ps = {.o = opts, .err = err, .errlen = errlen};
    json_t *root = NULL;
    int rc;
    if (len > opts->limits.max_bytes) {
        rc = fail_limit(&ps, NULL, "snapshot larger than %zu bytes", opts->limits.max_bytes);
        goto fail;
    }
    json_error_t jerr;
    root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        rc = fail(&ps, NULL, "invalid JSON at line %d column %d: %s", jerr.line, jerr.column,
                  jerr.text);
        goto fail;
    }
    ps.s = wf_calloc(1, sizeof(px_snapshot_t));
    wf_arena_init(&ps.s->arena, 16384, opts->limits.max_arena);
    atomic_init(&ps.s->refs, 1);
    ps.s->mctx = pcre2_match_context_create(NULL);
    WF_ASSERT(ps.s->mctx != NULL);
    pcre2_set_match_limit(ps.s->mctx, opts->limits.match_limit);
    pcre2_set_depth_limit(ps.s->mctx, opts->limits.match_limit);
    ps.cctx = pcre2_compile_context_create(NULL);
    WF_ASSERT(ps.cctx != NULL);
    /* Parenthesis nesting bounds the compiler's recursion on hostile patterns. */
    pcre2_set_parens_nest_limit(ps.cctx, 64);
    rc = parse_root(&ps, root);
    if (rc != 0) {
        goto fail;
    }
    pcre2_compile_context_free(ps.cctx);
    json_decref(root);
    *out = ps.s;
    return 0;
fail:
    pcre2_compile_context_free(ps.cctx);
    if (ps.s != NULL) {
        snapshot_free(ps.s);
    }
    json_decref(root);
    return rc;
}

int px_snapshot_load(const char *path, const px_snapshot_opts_t *opts, px_snapshot_t **out,
                     char **text, char *err, size_t errlen)
{
    px_snapshot_opts_t defaults;
    if (opts == NULL) {
        px_snapshot_opts_default(&defaults);
        opts = &defaults;
    }
    *out = NULL;
    char *buf = NULL;
    int rc;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rc = -errno;
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return rc;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        rc = -errno;
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        goto out;
    }
    if (st.st_size < 0 || (uint64_t)st.st_size > opts->limits.max_bytes) {
        rc = WF_E_LIMIT;
        snprintf(err, errlen, "%s: larger than %zu bytes", path, opts->limits.max_bytes);
        goto out;
    }
    size_t n = (size_t)st.st_size, got = 0;
    buf = wf_malloc(n + 1);
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            rc = r < 0 ? -errno : WF_E_INVAL;
            snprintf(err, errlen, "%s: %s", path, r < 0 ? strerror(errno) : "file shrank");
            goto out;
        }
        got += (size_t)r;
    }
    rc = px_snapshot_parse(buf, n, opts, out, err, errlen);
    if (rc == 0 && text != NULL) {
        buf[n] = '\0';
        *text = buf;
        buf = NULL;
    }
out:
    wf_free(buf);
    close(fd);
    return rc;
}

px_snapshot_t *px_snapshot_ref(px_snapshot_t *s)
{
    uint32_t old = atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
    WF_ASSERT(old > 0);
    return s;
}

void px_snapshot_unref(px_snapshot_t *s)
{
    if (s == NULL) {
        return;
    }
    /* Release on the way down, acquire by the last owner: every reader's accesses happen
     * before the free. */
    uint32_t old = atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel);
    WF_ASSERT(old > 0);
    if (old == 1) {
        snapshot_free(s);
    }
}

const char *px_lb_name(px_lb_kind_t k)
{
    return k == PX_LB_CONSISTENT_HASH ? "CONSISTENT_HASH" : (unsigned)k < 4 ? lb_names[k] : "?";
}

const char *px_tls_mode_name(px_tls_mode_t m)
{
    return m == PX_TLS_AUTO ? "AUTO" : (unsigned)m < 4 ? tls_names[m] : "?";
}

const char *px_peer_auth_name(px_peer_auth_t m)
{
    return (unsigned)m < 4 ? peer_names[m] : "?";
}
