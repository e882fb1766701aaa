/*
 * cp_istio.c - the generic YAML tree (cp_yaml.h) into the typed Istio structures of
 * cp_istio.h, and back out as canonical JSON.
 *
 * One declarative schema per Istio message drives parsing, validation and printing: a field
 * table names each YAML key, its value type (string, integer with bounds, duration, port,
 * percentage, regex, enum, labels, list of messages, ...) and where it lives in the C struct.
 * So a field is described once and the three directions cannot disagree. What a table cannot
 * say (only one of route/redirect, AuthorizationPolicy CUSTOM, unique subset names) is a
 * per-message check function.
 */
#include "cp_istio.h"

#include "cp_kinds.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wf_alloc.h"
#include "wf_err.h"

/* Parsed structures may not exceed this, whatever aliases multiply. */
#define RESOURCE_ARENA_LIMIT (64u << 20)

typedef enum {
    T_STR,
    T_REGEX,
    T_INT,
    T_PORT,
    T_BOOL,
    T_DUR,
    T_PCT,
    T_ENUM,
    T_LABELS,
    T_STRS,
    T_OBJ,      /* pointer to a message */
    T_LIST,     /* pointer + uint32_t count of messages */
    T_INLINE,   /* a wrapper object whose fields live in the parent struct */
    T_OBJ_MAP,  /* map of key -> message; element starts with its wf_str_t key */
    T_PORT_MAP, /* map of name -> port number (cp_named_port_t) */
    T_IGNORE,   /* accepted and dropped (server-set metadata) */
} ftype_t;

#define REQ 1

typedef struct ps ps_t;
typedef struct schema schema_t;

typedef struct {
    const char *name;
    ftype_t type;
    int flags;
    size_t off, noff;
    const schema_t *sub;
    int64_t min, max;
    const char *const *names; /* enums: names[0] is the unset value */
} field_t;

struct schema {
    size_t size;
    const field_t *fields;
    int (*check)(ps_t *ps, const cp_yaml_node_t *node, void *obj);
};

struct ps {
    wf_arena_t *a;
    cp_err_t *err;
    char path[512];
    size_t plen;
};

/* ---- errors and paths ---- */

static int failv(ps_t *ps, int code, const cp_yaml_node_t *at, const char *fmt, va_list ap)
{
    if (ps->err != NULL) {
        char what[200];
        vsnprintf(what, sizeof(what), fmt, ap);
        /* The path is cut first when the message would not fit. */
        int room = (int)(sizeof(ps->err->msg) - strlen(what) - 3);
        snprintf(ps->err->msg, sizeof(ps->err->msg), "%.*s: %s", room > 0 ? room : 0,
                 ps->plen ? ps->path : "(document)", what);
        ps->err->line = at ? at->line : 0;
        ps->err->column = at ? at->column : 0;
    }
    return code;
}

static int fail(ps_t *ps, const cp_yaml_node_t *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(ps_t *ps, const cp_yaml_node_t *at, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = failv(ps, CP_E_INVALID, at, fmt, ap);
    va_end(ap);
    return rc;
}

static int fail_code(ps_t *ps, int code, const cp_yaml_node_t *at, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail_code(ps_t *ps, int code, const cp_yaml_node_t *at, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = failv(ps, code, at, fmt, ap);
    va_end(ap);
    return rc;
}

static size_t path_key(ps_t *ps, const char *key, size_t klen)
{
    size_t saved = ps->plen;
    int w = snprintf(ps->path + ps->plen, sizeof(ps->path) - ps->plen, "%s%.*s",
                     ps->plen ? "." : "", (int)klen, key);
    if (w > 0) {
        ps->plen += (size_t)w;
        if (ps->plen >= sizeof(ps->path)) {
            ps->plen = sizeof(ps->path) - 1;
        }
    }
    return saved;
}

static size_t path_idx(ps_t *ps, uint32_t i)
{
    size_t saved = ps->plen;
    int w = snprintf(ps->path + ps->plen, sizeof(ps->path) - ps->plen, "[%u]", i);
    if (w > 0) {
        ps->plen += (size_t)w;
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

static int alloc(ps_t *ps, const cp_yaml_node_t *at, size_t n, void **out)
{
    void *p = wf_arena_alloc_checked(ps->a, n ? n : 1);
    if (p == NULL) {
        return fail_code(ps, CP_E_LIMIT, at, "resource larger than %u MiB once parsed",
                         RESOURCE_ARENA_LIMIT >> 20);
    }
    memset(p, 0, n ? n : 1);
    *out = p;
    return 0;
}

static int dup_str(ps_t *ps, const cp_yaml_node_t *at, wf_str_t s, wf_str_t *out)
{
    char *p = NULL;
    int rc = alloc(ps, at, s.len + 1, (void **)&p);
    if (rc < 0) {
        return rc;
    }
    memcpy(p, s.p, s.len);
    *out = (wf_str_t){p, s.len};
    return 0;
}

/* Levenshtein distance, for "did you mean"; names are short. */
static size_t edit_distance(const char *a, size_t la, const char *b)
{
    size_t lb = strlen(b);
    size_t row[64];
    if (la >= 63 || lb >= 63) {
        return 99;
    }
    for (size_t j = 0; j <= lb; j++) {
        row[j] = j;
    }
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
            size_t best = diag + cost;
            if (up + 1 < best) {
                best = up + 1;
            }
            if (row[j - 1] + 1 < best) {
                best = row[j - 1] + 1;
            }
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

/* ---- scalars ---- */

static bool scalar(const cp_yaml_node_t *n)
{
    return n->kind == CP_YAML_SCALAR;
}

static int want_str(ps_t *ps, const cp_yaml_node_t *n, wf_str_t *out)
{
    if (!scalar(n)) {
        return fail(ps, n, "must be a string");
    }
    return dup_str(ps, n, n->value, out);
}

static int want_int(ps_t *ps, const cp_yaml_node_t *n, int64_t lo, int64_t hi, int64_t *out)
{
    if (!scalar(n) || n->value.len == 0 || n->value.len > 19) {
        return fail(ps, n, "must be an integer");
    }
    const char *s = n->value.p;
    size_t i = s[0] == '-' ? 1 : 0;
    if (i == n->value.len) {
        return fail(ps, n, "must be an integer");
    }
    for (size_t k = i; k < n->value.len; k++) {
        if (s[k] < '0' || s[k] > '9') {
            return fail(ps, n, "must be an integer");
        }
    }
    errno = 0;
    long long v = strtoll(s, NULL, 10);
    if (errno == ERANGE) {
        return fail(ps, n, "integer out of range");
    }
    if (v < lo) {
        return fail(ps, n, "must be >= %lld", (long long)lo);
    }
    if (v > hi) {
        return fail(ps, n, "must be <= %lld", (long long)hi);
    }
    *out = v;
    return 0;
}

/* YAML 1.1's spellings too, for plain scalars: Kubernetes' YAML reader takes `yes` and `on`. */
static int want_bool(ps_t *ps, const cp_yaml_node_t *n, int *out)
{
    static const char *const yes[] = {"true", "True", "TRUE", "y",  "Y",  "yes",
                                      "Yes",  "YES",  "on",   "On", "ON", NULL};
    static const char *const no[] = {"false", "False", "FALSE", "n",   "N",   "no",
                                     "No",    "NO",    "off",   "Off", "OFF", NULL};
    if (scalar(n)) {
        bool plain = n->style == CP_YAML_PLAIN;
        for (int i = 0; yes[i] != NULL; i++) {
            if (wf_str_eq_c(n->value, yes[i]) && (plain || i < 3)) {
                *out = 1;
                return 0;
            }
            if (wf_str_eq_c(n->value, no[i]) && (plain || i < 3)) {
                *out = 0;
                return 0;
            }
        }
    }
    return fail(ps, n, "must be true or false");
}

static int want_pct(ps_t *ps, const cp_yaml_node_t *n, double *out)
{
    if (!scalar(n) || n->value.len == 0) {
        return fail(ps, n, "must be a number");
    }
    char *end;
    double v = strtod(n->value.p, &end);
    if (end != n->value.p + n->value.len || !isfinite(v)) {
        return fail(ps, n, "must be a number");
    }
    if (v < 0 || v > 100) {
        return fail(ps, n, "must be between 0 and 100");
    }
    *out = v;
    return 0;
}

/* ---- the schema walker ---- */

static int parse_obj(ps_t *ps, const cp_yaml_node_t *n, const schema_t *sc, void *base);

#define AT(base, off, type) ((type *)((char *)(base) + (off)))
#define CAT(base, off, type) ((const type *)((const char *)(base) + (off)))

static void init_fields(const field_t *f, void *base)
{
    for (; f->name != NULL; f++) {
        switch (f->type) {
        case T_INT:
        case T_PORT:
        case T_DUR:
            *AT(base, f->off, int64_t) = CP_UNSET;
            break;
        case T_BOOL:
            *AT(base, f->off, int) = CP_UNSET;
            break;
        case T_PCT:
            *AT(base, f->off, double) = -1.0;
            break;
        case T_INLINE:
            init_fields(f->sub->fields, base);
            break;
        default:
            break;
        }
    }
}

static bool present(const field_t *f, const void *base)
{
    switch (f->type) {
    case T_STR:
    case T_REGEX:
        return CAT(base, f->off, wf_str_t)->p != NULL;
    case T_INT:
    case T_PORT:
    case T_DUR:
        return *CAT(base, f->off, int64_t) != CP_UNSET;
    case T_BOOL:
        return *CAT(base, f->off, int) != CP_UNSET;
    case T_PCT:
        return *CAT(base, f->off, double) >= 0;
    case T_ENUM:
        return *CAT(base, f->off, int) != 0;
    case T_LABELS:
        return CAT(base, f->off, cp_labels_t)->n > 0;
    case T_STRS:
        return CAT(base, f->off, cp_strs_t)->n > 0;
    case T_OBJ:
        return *CAT(base, f->off, void *) != NULL;
    case T_LIST:
    case T_OBJ_MAP:
    case T_PORT_MAP:
        return *CAT(base, f->noff, uint32_t) > 0;
    case T_INLINE:
        for (const field_t *g = f->sub->fields; g->name != NULL; g++) {
            if (present(g, base)) {
                return true;
            }
        }
        return false;
    case T_IGNORE:
        return false;
    }
    return false;
}

static int parse_labels(ps_t *ps, const cp_yaml_node_t *n, cp_labels_t *out)
{
    if (n->kind != CP_YAML_MAP) {
        return fail(ps, n, "must be a map of strings");
    }
    int rc = alloc(ps, n, n->n * sizeof(cp_kv_t), (void **)&out->items);
    for (uint32_t i = 0; rc == 0 && i < n->n; i++) {
        const cp_yaml_pair_t *p = &n->pairs[i];
        size_t saved = path_key(ps, p->key->value.p, p->key->value.len);
        rc = dup_str(ps, p->key, p->key->value, &out->items[i].key);
        if (rc == 0) {
            rc = want_str(ps, p->value, &out->items[i].value);
        }
        path_restore(ps, saved);
    }
    out->n = rc == 0 ? n->n : 0;
    return rc;
}

static int parse_strs(ps_t *ps, const cp_yaml_node_t *n, cp_strs_t *out)
{
    if (n->kind != CP_YAML_SEQ) {
        return fail(ps, n, "must be a list of strings");
    }
    int rc = alloc(ps, n, n->n * sizeof(wf_str_t), (void **)&out->items);
    for (uint32_t i = 0; rc == 0 && i < n->n; i++) {
        size_t saved = path_idx(ps, i);
        rc = want_str(ps, n->items[i], &out->items[i]);
        path_restore(ps, saved);
    }
    out->n = rc == 0 ? n->n : 0;
    return rc;
}

static int parse_field(ps_t *ps, const field_t *f, const cp_yaml_node_t *v, void *base)
{
    int rc = 0;
    char why[200];
    switch (f->type) {
    case T_STR:
        return want_str(ps, v, AT(base, f->off, wf_str_t));
    case T_REGEX:
        rc = want_str(ps, v, AT(base, f->off, wf_str_t));
        if (rc == 0 && cp_regex_check(*AT(base, f->off, wf_str_t), why, sizeof(why)) < 0) {
            return fail(ps, v, "invalid regex: %s", why);
        }
        return rc;
    case T_INT:
        return want_int(ps, v, f->min, f->max, AT(base, f->off, int64_t));
    case T_PORT:
        if (!scalar(v)) {
            return fail(ps, v, "must be a port number (1..65535)");
        }
        rc = want_int(ps, v, INT64_MIN, INT64_MAX, AT(base, f->off, int64_t));
        if (rc == 0 && (*AT(base, f->off, int64_t) < 1 || *AT(base, f->off, int64_t) > 65535)) {
            return fail(ps, v, "must be a port number (1..65535)");
        }
        return rc;
    case T_BOOL:
        return want_bool(ps, v, AT(base, f->off, int));
    case T_DUR: {
        const char *w = NULL;
        if (!scalar(v)) {
            return fail(ps, v, "must be a duration such as \"1.5s\"");
        }
        if (cp_duration_parse(v->value, AT(base, f->off, int64_t), &w) < 0) {
            return fail(ps, v, "invalid duration \"%.40s\": %s", v->value.p, w);
        }
        return 0;
    }
    case T_PCT:
        return want_pct(ps, v, AT(base, f->off, double));
    case T_ENUM:
        if (scalar(v)) {
            for (int i = 1; f->names[i] != NULL; i++) {
                if (wf_str_eq_c(v->value, f->names[i])) {
                    *AT(base, f->off, int) = i;
                    return 0;
                }
            }
        }
        {
            char list[200];
            size_t w = 0;
            list[0] = '\0';
            for (int i = 1; f->names[i] != NULL && w < sizeof(list); i++) {
                w += (size_t)snprintf(list + w, sizeof(list) - w, "%s%s", i > 1 ? ", " : "",
                                      f->names[i]);
            }
            return fail(ps, v, "must be one of %s", list);
        }
    case T_LABELS:
        return parse_labels(ps, v, AT(base, f->off, cp_labels_t));
    case T_STRS:
        return parse_strs(ps, v, AT(base, f->off, cp_strs_t));
    case T_OBJ: {
        void *obj = NULL;
        rc = alloc(ps, v, f->sub->size, &obj);
        if (rc == 0) {
            rc = parse_obj(ps, v, f->sub, obj);
        }
        if (rc == 0) {
            *AT(base, f->off, void *) = obj;
        }
        return rc;
    }
    case T_LIST: {
        char *items = NULL;
        if (v->kind != CP_YAML_SEQ) {
            return fail(ps, v, "must be a list");
        }
        rc = alloc(ps, v, (size_t)v->n * f->sub->size, (void **)&items);
        for (uint32_t i = 0; rc == 0 && i < v->n; i++) {
            size_t saved = path_idx(ps, i);
            rc = parse_obj(ps, v->items[i], f->sub, items + (size_t)i * f->sub->size);
            path_restore(ps, saved);
        }
        if (rc == 0) {
            *AT(base, f->off, void *) = items;
            *AT(base, f->noff, uint32_t) = v->n;
        }
        return rc;
    }
    case T_INLINE:
        return parse_obj(ps, v, f->sub, base);
    case T_OBJ_MAP:
    case T_PORT_MAP: {
        char *items = NULL;
        size_t size = f->type == T_OBJ_MAP ? f->sub->size : sizeof(cp_named_port_t);
        if (v->kind != CP_YAML_MAP) {
            return fail(ps, v, "must be a map");
        }
        rc = alloc(ps, v, (size_t)v->n * size, (void **)&items);
        for (uint32_t i = 0; rc == 0 && i < v->n; i++) {
            const cp_yaml_pair_t *p = &v->pairs[i];
            char *elem = items + (size_t)i * size;
            size_t saved = path_key(ps, p->key->value.p, p->key->value.len);
            rc = dup_str(ps, p->key, p->key->value, (wf_str_t *)elem);
            if (rc == 0 && f->type == T_OBJ_MAP) {
                rc = parse_obj(ps, p->value, f->sub, elem);
            } else if (rc == 0) {
                static const field_t port = {.name = "port", .type = T_PORT};
                rc = parse_field(ps, &port, p->value, &((cp_named_port_t *)elem)->port);
            }
            path_restore(ps, saved);
        }
        if (rc == 0) {
            *AT(base, f->off, void *) = items;
            *AT(base, f->noff, uint32_t) = v->n;
        }
        return rc;
    }
    case T_IGNORE:
        return 0;
    }
    return 0;
}

/* The field named key, or NULL with *nearest set to a close name (the distance is only
 * computed on a miss, which ends the parse anyway). */
static const field_t *find_field(const field_t *fields, wf_str_t key, const field_t **nearest)
{
    size_t best = 3;
    *nearest = NULL;
    for (const field_t *f = fields; f->name != NULL; f++) {
        if (wf_str_eq_c(key, f->name)) {
            return f;
        }
    }
    for (const field_t *f = fields; f->name != NULL; f++) {
        size_t d = edit_distance(key.p, key.len, f->name);
        if (d < best) {
            best = d;
            *nearest = f;
        }
    }
    return NULL;
}

static int check_required(ps_t *ps, const cp_yaml_node_t *n, const field_t *fields, void *base)
{
    for (const field_t *f = fields; f->name != NULL; f++) {
        if (f->type == T_INLINE) {
            size_t saved = path_key(ps, f->name, strlen(f->name));
            int rc = cp_yaml_get(n, f->name) ? 0 : check_required(ps, n, f->sub->fields, base);
            path_restore(ps, saved);
            if (rc < 0) {
                return rc;
            }
            continue;
        }
        if ((f->flags & REQ) && !present(f, base)) {
            size_t saved = path_key(ps, f->name, strlen(f->name));
            int rc = fail(ps, n, "required");
            path_restore(ps, saved);
            return rc;
        }
    }
    return 0;
}

static int parse_obj(ps_t *ps, const cp_yaml_node_t *n, const schema_t *sc, void *base)
{
    if (n->kind != CP_YAML_MAP) {
        return fail(ps, n, "must be an object");
    }
    /* Inline wrappers share the parent's struct, which its own parse already initialised. */
    if (sc->size > 0) {
        init_fields(sc->fields, base);
    }
    for (uint32_t i = 0; i < n->n; i++) {
        const cp_yaml_pair_t *p = &n->pairs[i];
        const field_t *near;
        size_t saved = path_key(ps, p->key->value.p, p->key->value.len);
        const field_t *f = find_field(sc->fields, p->key->value, &near);
        int rc;
        if (f == NULL) {
            rc = near ? fail(ps, p->key, "unknown field (did you mean %s?)", near->name)
                      : fail(ps, p->key, "unknown field");
        } else if (cp_yaml_is_null(p->value)) {
            rc = 0; /* null is absent, as in Kubernetes */
        } else {
            rc = parse_field(ps, f, p->value, base);
        }
        path_restore(ps, saved);
        if (rc < 0) {
            return rc;
        }
    }
    int rc = check_required(ps, n, sc->fields, base);
    if (rc == 0 && sc->check != NULL) {
        rc = sc->check(ps, n, base);
    }
    return rc;
}

/* ---- per-message checks ---- */

/* Fail at the child key when present, else at the object itself. */
static int fail_at(ps_t *ps, const cp_yaml_node_t *n, const char *key, const char *msg)
{
    size_t saved = key ? path_key(ps, key, strlen(key)) : ps->plen;
    const cp_yaml_node_t *at = key ? cp_yaml_get(n, key) : NULL;
    int rc = fail(ps, at ? at : n, "%s", msg);
    path_restore(ps, saved);
    return rc;
}

static int check_strmatch(ps_t *ps, const cp_yaml_node_t *n, void *obj)
{
    const cp_strmatch_t *m = obj;
    int k = (m->exact.p != NULL) + (m->prefix.p != NULL) + (m->regex.p != NULL);
    return k > 1 ? fail(ps, n, "only one of exact, prefix, regex") : 0;
}

static int check_http_route(ps_t *ps, const cp_yaml_node_t *n, void *obj)
{
    const cp_http_route_t *r = obj;
    int k = (r->n_route > 0) + (r->redirect != NULL) + (r->direct_response != NULL) +
            (r->delegate != NULL);
    if (k > 1) {
        return fail(ps, n, "only one of route, redirect, directResponse, delegate");
    }
    if (r->mirror != NULL && r->n_mirrors > 0) {
        return fail(ps, n, "only one of mirror, mirrors");
    }
    if (r->mirror_percentage >= 0 && r->mirror == NULL) {
        return fail_at(ps, n, "mirrorPercentage", "needs mirror");
    }
    return 0;
}

static int check_fault(ps_t *ps, const cp_yaml_node_t *n, void *obj)
{
    const cp_fault_t *f = obj;
    return f->delay == NULL && f->abort == NULL ? fail(ps, n, "needs delay or abort") : 0;
}

static int check_delay(ps_t *ps, const cp_yaml_node_t *n, void *obj)
{
    const cp_delay_t *d = obj;
    return d->fixed_delay_ms == CP_UNSET ? fail_at(ps, n, "fixedDelay", "required") : 0;
}

static int check_abort(ps_t *ps, const cp_yaml_node_t *n, void *obj)
{
    const cp_abort_t *a = obj;
    if (a->http_status == CP_UNSET && a->grpc_status.p == NULL) {
        return fail(ps, n, "needs httpStatus or grpcStatus");
    }
    return 0;
}

static int check_dr(ps_t *ps, const cp_yaml_node_t *n, void *obj)
{
    const cp_destination_rule_t *dr = obj;
    for (uint32_t i = 0; i < dr->n_subsets; i++) {
        for (uint32_t j = 0; j < i; j++) {
            if (wf_str_eq(dr->subsets[i].name, dr->subsets[j].name)) {
                size_t s1 = path_key(ps, "subsets", 7);
                size_t s2 = path_idx(ps, i);
                int rc = fail(ps, cp_yaml_get(n, "subsets"), "duplicate subset name \"%s\"",
                              dr->subsets[i].name.p);
                path_restore(ps, s2);
                path_restore(ps, s1);
                return rc;
            }
        }
    }
    return 0;
}

static int check_port_mtls(ps_t *ps, const cp_yaml_node_t *n, void *obj)
{
    const cp_port_mtls_t *m = obj;
    int64_t port = 0;
    for (size_t i = 0; i < m->key.len; i++) {
        if (m->key.p[i] < '0' || m->key.p[i] > '9' || i >= 5) {
            return fail(ps, n, "key must be a port number (1..65535)");
        }
        port = port * 10 + (m->key.p[i] - '0');
    }
    if (port < 1 || port > 65535) {
        return fail(ps, n, "key must be a port number (1..65535)");
    }
    return 0;
}

/* ---- AuthorizationPolicy values: refused at apply what the proxy would refuse (px_authz.h
 * holds the same rules; the proxy cannot be linked from here, hence these small copies). A
 * policy the proxy refused would block every later snapshot of the workloads it selects. ---- */

/* An IP address or CIDR, IPv4 or IPv6; NULL or why not. */
static const char *ap_cidr_why(wf_str_t s)
{
    char buf[INET6_ADDRSTRLEN + 8];
    const char *slash = memchr(s.p, '/', s.len);
    size_t alen = slash != NULL ? (size_t)(slash - s.p) : s.len;
    uint8_t addr[16];
    if (alen == 0 || alen >= INET6_ADDRSTRLEN) {
        return "not an IP address or CIDR";
    }
    memcpy(buf, s.p, alen);
    buf[alen] = '\0';
    unsigned max = 32;
    if (inet_pton(AF_INET, buf, addr) != 1) {
        if (inet_pton(AF_INET6, buf, addr) != 1) {
            return "not an IP address or CIDR";
        }
        max = 128;
    }
    if (slash == NULL) {
        return NULL;
    }
    size_t dn = s.len - alen - 1;
    unsigned bits = 0;
    for (size_t i = 0; i < dn; i++) {
        if (!isdigit((unsigned char)slash[1 + i])) {
            return "bad CIDR prefix length";
        }
        bits = bits * 10 + (unsigned)(slash[1 + i] - '0');
    }
    if (dn == 0 || dn > 3) {
        return "bad CIDR prefix length";
    }
    return bits > max ? "CIDR prefix length out of range" : NULL;
}

static const char *ap_port_why(wf_str_t s)
{
    uint32_t v = 0;
    for (size_t i = 0; i < s.len; i++) {
        if (!isdigit((unsigned char)s.p[i])) {
            return "must be a port number 0..65535";
        }
        v = v * 10 + (uint32_t)(s.p[i] - '0');
        if (v > 65535) {
            break;
        }
    }
    return s.len == 0 || v > 65535 ? "must be a port number 0..65535" : NULL;
}

/* Istio's path templates: `{*}` and `{**}` whole segments, `{**}` last, no other `*`. */
static const char *ap_path_why(wf_str_t s)
{
    if (memchr(s.p, '{', s.len) == NULL && memchr(s.p, '}', s.len) == NULL) {
        return NULL;
    }
    if (s.len == 0 || s.p[0] != '/') {
        return "a path template must start with /";
    }
    bool many = false;
    for (size_t i = 0; i < s.len;) {
        if (s.p[i] == '{') {
            size_t ol = s.len - i >= 4 && memcmp(s.p + i, "{**}", 4) == 0  ? 4
                        : s.len - i >= 3 && memcmp(s.p + i, "{*}", 3) == 0 ? 3
                                                                           : 0;
            if (ol == 0) {
                return "only {*} and {**} are path template operators";
            }
            if (many) {
                return "{**} must be the last operator of a path template";
            }
            if (s.p[i - 1] != '/' || (i + ol < s.len && s.p[i + ol] != '/')) {
                return "a path template operator must be a whole path segment";
            }
            many = ol == 4;
            i += ol;
        } else if (s.p[i] == '*' || s.p[i] == '}') {
            return "a path template may hold * only inside {*} or {**}";
        } else {
            i++;
        }
    }
    return NULL;
}

typedef const char *(*ap_why_fn)(wf_str_t);

/* Check every value of l (the YAML list at key of n) with why. */
static int ap_list(ps_t *ps, const cp_yaml_node_t *n, const char *key, const cp_strs_t *l,
                   ap_why_fn why)
{
    const cp_yaml_node_t *seq = cp_yaml_get(n, key);
    for (uint32_t i = 0; i < l->n; i++) {
        const char *w = why(l->items[i]);
        if (w != NULL) {
            size_t s1 = path_key(ps, key, strlen(key));
            path_idx(ps, i);
            const cp_yaml_node_t *at = seq != NULL && i < seq->n ? seq->items[i] : n;
            int rc = fail(ps, at, "%s: \"%s\"", w, l->items[i].p);
            path_restore(ps, s1);
            return rc;
        }
    }
    return 0;
}

#define AP_LIST(key, list, why)                                                                    \
    do {                                                                                           \
        int rc_ = ap_list(ps, n, key, list, why);                                                  \
        if (rc_ != 0) {                                                                            \
            return rc_;                                                                            \
        }                                                                                          \
    } while (0)

static int check_source(ps_t *ps, const cp_yaml_node_t *n, void *obj)
{
    const cp_source_t *s = obj;
    AP_LIST("ipBlocks", &s->ip_blocks, ap_cidr_why);
    AP_LIST("notIpBlocks", &s->not_ip_blocks, ap_cidr_why);
    AP_LIST("remoteIpBlocks", &s->remote_ip_blocks, ap_cidr_why);
    AP_LIST("notRemoteIpBlocks", &s->not_remote_ip_blocks, ap_cidr_why);
    return 0;
}

static int check_operation(ps_t *ps, const cp_yaml_node_t *n, void *obj)
{
    const cp_operation_t *o = obj;
    AP_LIST("ports", &o->ports, ap_port_why);
    AP_LIST("notPorts", &o->not_ports, ap_port_why);
    AP_LIST("paths", &o->paths, ap_path_why);
    AP_LIST("notPaths", &o->not_paths, ap_path_why);
    return 0;
}

/* Istio's condition keys (https://istio.io/latest/docs/reference/config/security/conditions/)
 * and the kind of value each takes. */
static int check_cond(ps_t *ps, const cp_yaml_node_t *n, void *obj)
{
    const cp_condition_t *c = obj;
    static const struct {
        const char *key;
        ap_why_fn why;
    } keys[] = {
        {"source.ip", ap_cidr_why},       {"remote.ip", ap_cidr_why},
        {"destination.ip", ap_cidr_why},  {"destination.port", ap_port_why},
        {"source.namespace", NULL},       {"source.principal", NULL},
        {"connection.sni", NULL},         {"request.auth.principal", NULL},
        {"request.auth.audiences", NULL}, {"request.auth.presenter", NULL},
    };
    bool known = false;
    ap_why_fn why = NULL;
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]) && !known; i++) {
        if (wf_str_eq_c(c->key, keys[i].key)) {
            known = true;
            why = keys[i].why;
        }
    }
    static const char hdr[] = "request.headers[", claims[] = "request.auth.claims[";
    wf_str_t k = c->key;
    if (!known && k.len > sizeof(hdr) && memcmp(k.p, hdr, sizeof(hdr) - 1) == 0 &&
        k.p[k.len - 1] == ']') {
        known = true;
        for (size_t i = sizeof(hdr) - 1; i + 1 < k.len; i++) {
            unsigned char ch = (unsigned char)k.p[i];
            if (ch <= ' ' || ch >= 0x7f || strchr("()<>@,;:\\\"/[]?={}", ch) != NULL) {
                known = false;
            }
        }
    }
    if (!known && k.len > sizeof(claims) && memcmp(k.p, claims, sizeof(claims) - 1) == 0 &&
        k.p[k.len - 1] == ']') {
        known = true;
    }
    if (!known) {
        size_t s1 = path_key(ps, "key", 3);
        int rc = fail(ps, cp_yaml_get(n, "key"), "unknown condition key \"%s\"", c->key.p);
        path_restore(ps, s1);
        return rc;
    }
    if (c->values.n == 0 && c->not_values.n == 0) {
        return fail(ps, n, "a condition needs values or notValues");
    }
    if (why != NULL) {
        AP_LIST("values", &c->values, why);
        AP_LIST("notValues", &c->not_values, why);
    }
    return 0;
}

static int check_ap(ps_t *ps, const cp_yaml_node_t *n, void *obj)
{
    const cp_authorization_policy_t *ap = obj;
    if (ap->action == CP_AP_CUSTOM) {
        size_t saved = path_key(ps, "action", 6);
        int rc = fail_code(ps, CP_E_UNSUPPORTED, cp_yaml_get(n, "action"),
                           "CUSTOM is not supported: weft has no external authorizer (issue #7)");
        path_restore(ps, saved);
        return rc;
    }
    if (ap->provider.len > 0) {
        size_t saved = path_key(ps, "provider", 8);
        int rc = fail(ps, cp_yaml_get(n, "provider"), "provider is only valid with action CUSTOM");
        path_restore(ps, saved);
        return rc;
    }
    return 0;
}

/* ---- the schemas ---- */

#define END                                                                                        \
    {                                                                                              \
        0                                                                                          \
    }
#define FS(n, st, m, fl)                                                                           \
    {                                                                                              \
        .name = n, .type = T_STR, .flags = fl, .off = offsetof(st, m)                              \
    }
#define FRE(n, st, m)                                                                              \
    {                                                                                              \
        .name = n, .type = T_REGEX, .off = offsetof(st, m)                                         \
    }
#define FI(n, st, m, lo, hi)                                                                       \
    {                                                                                              \
        .name = n, .type = T_INT, .off = offsetof(st, m), .min = lo, .max = hi                     \
    }
#define FP(n, st, m, fl)                                                                           \
    {                                                                                              \
        .name = n, .type = T_PORT, .flags = fl, .off = offsetof(st, m)                             \
    }
#define FB(n, st, m)                                                                               \
    {                                                                                              \
        .name = n, .type = T_BOOL, .off = offsetof(st, m)                                          \
    }
#define FD(n, st, m)                                                                               \
    {                                                                                              \
        .name = n, .type = T_DUR, .off = offsetof(st, m)                                           \
    }
#define FPCT(n, st, m)                                                                             \
    {                                                                                              \
        .name = n, .type = T_PCT, .off = offsetof(st, m)                                           \
    }
#define FE(n, st, m, nm)                                                                           \
    {                                                                                              \
        .name = n, .type = T_ENUM, .off = offsetof(st, m), .names = nm                             \
    }
#define FL(n, st, m)                                                                               \
    {                                                                                              \
        .name = n, .type = T_LABELS, .off = offsetof(st, m)                                        \
    }
#define FSS(n, st, m, fl)                                                                          \
    {                                                                                              \
        .name = n, .type = T_STRS, .flags = fl, .off = offsetof(st, m)                             \
    }
#define FO(n, st, m, sc, fl)                                                                       \
    {                                                                                              \
        .name = n, .type = T_OBJ, .flags = fl, .off = offsetof(st, m), .sub = &sc                  \
    }
#define FLIST(n, st, m, nm, sc, fl)                                                                \
    {                                                                                              \
        .name = n, .type = T_LIST, .flags = fl, .off = offsetof(st, m), .noff = offsetof(st, nm),  \
        .sub = &sc                                                                                 \
    }
#define FIN(n, sc)                                                                                 \
    {                                                                                              \
        .name = n, .type = T_INLINE, .sub = &sc                                                    \
    }
#define FMAP(key, st, m, sc)                                                                       \
    {                                                                                              \
        .name = key, .type = T_OBJ_MAP, .off = offsetof(st, m) + offsetof(cp_match_map_t, items),  \
        .noff = offsetof(st, m) + offsetof(cp_match_map_t, n), .sub = &sc                          \
    }
#define FIGN(n)                                                                                    \
    {                                                                                              \
        .name = n, .type = T_IGNORE                                                                \
    }
#define SCHEMA(name, st, chk) static const schema_t name = {sizeof(st), name##_f, chk}
#define WRAP(name) static const schema_t name = {0, name##_f, NULL}

static const char *const k_derive[] = {"", "FROM_PROTOCOL_DEFAULT", "FROM_REQUEST_PORT", NULL};
static const char *const k_preflight[] = {"", "FORWARD", "IGNORE", NULL};
static const char *const k_lb[] = {
    "", "UNSPECIFIED", "LEAST_CONN", "RANDOM", "PASSTHROUGH", "ROUND_ROBIN", "LEAST_REQUEST", NULL};
static const char *const k_h2[] = {"", "DEFAULT", "DO_NOT_UPGRADE", "UPGRADE", NULL};
static const char *const k_ctls[] = {"", "DISABLE", "SIMPLE", "MUTUAL", "ISTIO_MUTUAL", NULL};
static const char *const k_stls[] = {
    "",  "PASSTHROUGH", "SIMPLE", "MUTUAL", "AUTO_PASSTHROUGH", "ISTIO_MUTUAL", "OPTIONAL_MUTUAL",
    NULL};
static const char *const k_loc[] = {"", "MESH_EXTERNAL", "MESH_INTERNAL", NULL};
static const char *const k_res[] = {"", "NONE", "STATIC", "DNS", "DNS_ROUND_ROBIN", NULL};
static const char *const k_outbound[] = {"", "REGISTRY_ONLY", "ALLOW_ANY", NULL};
static const char *const k_mtls_full[] = {"UNSET", "DISABLE", "PERMISSIVE", "STRICT", NULL};
static const char *const k_action[] = {"", "ALLOW", "DENY", "AUDIT", "CUSTOM", NULL};

/* StringMatch and friends */
static const field_t s_strmatch_f[] = {FS("exact", cp_strmatch_t, exact, 0),
                                       FS("prefix", cp_strmatch_t, prefix, 0),
                                       FRE("regex", cp_strmatch_t, regex), END};
SCHEMA(s_strmatch, cp_strmatch_t, check_strmatch);
static const field_t s_named_match_f[] = {FS("exact", cp_named_match_t, match.exact, 0),
                                          FS("prefix", cp_named_match_t, match.prefix, 0),
                                          FRE("regex", cp_named_match_t, match.regex), END};
static int check_named_match(ps_t *ps, const cp_yaml_node_t *n, void *obj)
{
    return check_strmatch(ps, n, &((cp_named_match_t *)obj)->match);
}
SCHEMA(s_named_match, cp_named_match_t, check_named_match);

static const field_t s_hdr_ops_f[] = {FL("set", cp_hdr_ops_t, set), FL("add", cp_hdr_ops_t, add),
                                      FSS("remove", cp_hdr_ops_t, remove, 0), END};
SCHEMA(s_hdr_ops, cp_hdr_ops_t, NULL);
static const field_t s_headers_f[] = {FO("request", cp_headers_t, request, s_hdr_ops, 0),
                                      FO("response", cp_headers_t, response, s_hdr_ops, 0), END};
SCHEMA(s_headers, cp_headers_t, NULL);

static const field_t w_dest_port_f[] = {FP("number", cp_destination_t, port, 0), END};
WRAP(w_dest_port);
static const field_t s_destination_f[] = {FS("host", cp_destination_t, host, REQ),
                                          FS("subset", cp_destination_t, subset, 0),
                                          FIN("port", w_dest_port), END};
SCHEMA(s_destination, cp_destination_t, NULL);

static const field_t s_http_match_f[] = {
    FS("name", cp_http_match_t, name, 0),
    FO("uri", cp_http_match_t, uri, s_strmatch, 0),
    FO("scheme", cp_http_match_t, scheme, s_strmatch, 0),
    FO("method", cp_http_match_t, method, s_strmatch, 0),
    FO("authority", cp_http_match_t, authority, s_strmatch, 0),
    FMAP("headers", cp_http_match_t, headers, s_named_match),
    FMAP("withoutHeaders", cp_http_match_t, without_headers, s_named_match),
    FMAP("queryParams", cp_http_match_t, query_params, s_named_match),
    FP("port", cp_http_match_t, port, 0),
    FL("sourceLabels", cp_http_match_t, source_labels),
    FSS("gateways", cp_http_match_t, gateways, 0),
    FB("ignoreUriCase", cp_http_match_t, ignore_uri_case),
    FS("sourceNamespace", cp_http_match_t, source_namespace, 0),
    FS("statPrefix", cp_http_match_t, stat_prefix, 0),
    END};
SCHEMA(s_http_match, cp_http_match_t, NULL);

static const field_t s_route_dest_f[] = {
    FO("destination", cp_route_dest_t, destination, s_destination, REQ),
    FI("weight", cp_route_dest_t, weight, 0, 1000000),
    FO("headers", cp_route_dest_t, headers, s_headers, 0), END};
SCHEMA(s_route_dest, cp_route_dest_t, NULL);

static const field_t s_redirect_f[] = {FS("uri", cp_redirect_t, uri, 0),
                                       FS("authority", cp_redirect_t, authority, 0),
                                       FS("scheme", cp_redirect_t, scheme, 0),
                                       FP("port", cp_redirect_t, port, 0),
                                       FE("derivePort", cp_redirect_t, derive_port, k_derive),
                                       FI("redirectCode", cp_redirect_t, redirect_code, 300, 399),
                                       END};
SCHEMA(s_redirect, cp_redirect_t, NULL);

static const field_t s_body_f[] = {FS("string", cp_body_t, string, 0),
                                   FS("bytes", cp_body_t, bytes, 0), END};
SCHEMA(s_body, cp_body_t, NULL);
static const field_t s_direct_f[] = {{.name = "status",
                                      .type = T_INT,
                                      .flags = REQ,
                                      .off = offsetof(cp_direct_response_t, status),
                                      .min = 200,
                                      .max = 599},
                                     FO("body", cp_direct_response_t, body, s_body, 0),
                                     END};
SCHEMA(s_direct, cp_direct_response_t, NULL);

static const field_t s_delegate_f[] = {FS("name", cp_delegate_t, name, REQ),
                                       FS("namespace", cp_delegate_t, namespace_, 0), END};
SCHEMA(s_delegate, cp_delegate_t, NULL);

static const field_t s_regex_rewrite_f[] = {FRE("match", cp_regex_rewrite_t, match),
                                            FS("rewrite", cp_regex_rewrite_t, rewrite, 0), END};
SCHEMA(s_regex_rewrite, cp_regex_rewrite_t, NULL);
static const field_t s_rewrite_f[] = {
    FS("uri", cp_rewrite_t, uri, 0), FS("authority", cp_rewrite_t, authority, 0),
    FO("uriRegexRewrite", cp_rewrite_t, uri_regex_rewrite, s_regex_rewrite, 0), END};
SCHEMA(s_rewrite, cp_rewrite_t, NULL);

static const field_t s_retries_f[] = {
    FI("attempts", cp_retries_t, attempts, 0, 1000),
    FD("perTryTimeout", cp_retries_t, per_try_timeout_ms), FS("retryOn", cp_retries_t, retry_on, 0),
    FB("retryRemoteLocalities", cp_retries_t, retry_remote_localities), END};
SCHEMA(s_retries, cp_retries_t, NULL);

static const field_t w_delay_pct_f[] = {FPCT("value", cp_delay_t, percentage), END};
WRAP(w_delay_pct);
static const field_t s_delay_f[] = {FD("fixedDelay", cp_delay_t, fixed_delay_ms),
                                    FIN("percentage", w_delay_pct),
                                    FI("percent", cp_delay_t, percent, 0, 100), END};
SCHEMA(s_delay, cp_delay_t, check_delay);
static const field_t w_abort_pct_f[] = {FPCT("value", cp_abort_t, percentage), END};
WRAP(w_abort_pct);
static const field_t s_abort_f[] = {FI("httpStatus", cp_abort_t, http_status, 200, 599),
                                    FS("grpcStatus", cp_abort_t, grpc_status, 0),
                                    FIN("percentage", w_abort_pct), END};
SCHEMA(s_abort, cp_abort_t, check_abort);
static const field_t s_fault_f[] = {FO("delay", cp_fault_t, delay, s_delay, 0),
                                    FO("abort", cp_fault_t, abort, s_abort, 0), END};
SCHEMA(s_fault, cp_fault_t, check_fault);

static const field_t w_mirror_pct_f[] = {FPCT("value", cp_mirror_t, percentage), END};
WRAP(w_mirror_pct);
static const field_t s_mirror_f[] = {
    FO("destination", cp_mirror_t, destination, s_destination, REQ),
    FIN("percentage", w_mirror_pct), END};
SCHEMA(s_mirror, cp_mirror_t, NULL);

static const field_t s_cors_f[] = {
    FLIST("allowOrigins", cp_cors_t, allow_origins, n_allow_origins, s_strmatch, 0),
    FSS("allowMethods", cp_cors_t, allow_methods, 0),
    FSS("allowHeaders", cp_cors_t, allow_headers, 0),
    FSS("exposeHeaders", cp_cors_t, expose_headers, 0),
    FD("maxAge", cp_cors_t, max_age_ms),
    FB("allowCredentials", cp_cors_t, allow_credentials),
    FE("unmatchedPreflights", cp_cors_t, unmatched_preflights, k_preflight),
    END};
SCHEMA(s_cors, cp_cors_t, NULL);

static const field_t w_mirror_percentage_f[] = {FPCT("value", cp_http_route_t, mirror_percentage),
                                                END};
WRAP(w_mirror_percentage);
static const field_t s_http_route_f[] = {
    FS("name", cp_http_route_t, name, 0),
    FLIST("match", cp_http_route_t, match, n_match, s_http_match, 0),
    FLIST("route", cp_http_route_t, route, n_route, s_route_dest, 0),
    FO("redirect", cp_http_route_t, redirect, s_redirect, 0),
    FO("directResponse", cp_http_route_t, direct_response, s_direct, 0),
    FO("delegate", cp_http_route_t, delegate, s_delegate, 0),
    FO("rewrite", cp_http_route_t, rewrite, s_rewrite, 0),
    FD("timeout", cp_http_route_t, timeout_ms),
    FO("retries", cp_http_route_t, retries, s_retries, 0),
    FO("fault", cp_http_route_t, fault, s_fault, 0),
    FO("mirror", cp_http_route_t, mirror, s_destination, 0),
    FIN("mirrorPercentage", w_mirror_percentage),
    FLIST("mirrors", cp_http_route_t, mirrors, n_mirrors, s_mirror, 0),
    FO("corsPolicy", cp_http_route_t, cors_policy, s_cors, 0),
    FO("headers", cp_http_route_t, headers, s_headers, 0),
    END};
SCHEMA(s_http_route, cp_http_route_t, check_http_route);

static const field_t s_l4_match_f[] = {
    FSS("destinationSubnets", cp_l4_match_t, destination_subnets, 0),
    FSS("sniHosts", cp_l4_match_t, sni_hosts, 0),
    FSS("gateways", cp_l4_match_t, gateways, 0),
    FP("port", cp_l4_match_t, port, 0),
    FL("sourceLabels", cp_l4_match_t, source_labels),
    FS("sourceNamespace", cp_l4_match_t, source_namespace, 0),
    END};
SCHEMA(s_l4_match, cp_l4_match_t, NULL);
static const field_t s_tls_match_f[] = {
    FSS("destinationSubnets", cp_l4_match_t, destination_subnets, 0),
    FSS("sniHosts", cp_l4_match_t, sni_hosts, REQ),
    FSS("gateways", cp_l4_match_t, gateways, 0),
    FP("port", cp_l4_match_t, port, 0),
    FL("sourceLabels", cp_l4_match_t, source_labels),
    FS("sourceNamespace", cp_l4_match_t, source_namespace, 0),
    END};
SCHEMA(s_tls_match, cp_l4_match_t, NULL);
static const field_t s_l4_dest_f[] = {
    FO("destination", cp_l4_dest_t, destination, s_destination, REQ),
    FI("weight", cp_l4_dest_t, weight, 0, 1000000), END};
SCHEMA(s_l4_dest, cp_l4_dest_t, NULL);
static const field_t s_tcp_route_f[] = {
    FLIST("match", cp_l4_route_t, match, n_match, s_l4_match, 0),
    FLIST("route", cp_l4_route_t, route, n_route, s_l4_dest, 0), END};
SCHEMA(s_tcp_route, cp_l4_route_t, NULL);
static const field_t s_tls_route_f[] = {
    FLIST("match", cp_l4_route_t, match, n_match, s_tls_match, REQ),
    FLIST("route", cp_l4_route_t, route, n_route, s_l4_dest, 0), END};
SCHEMA(s_tls_route, cp_l4_route_t, NULL);

static const field_t s_vs_f[] = {FSS("hosts", cp_virtual_service_t, hosts, REQ),
                                 FSS("gateways", cp_virtual_service_t, gateways, 0),
                                 FLIST("http", cp_virtual_service_t, http, n_http, s_http_route, 0),
                                 FLIST("tcp", cp_virtual_service_t, tcp, n_tcp, s_tcp_route, 0),
                                 FLIST("tls", cp_virtual_service_t, tls, n_tls, s_tls_route, 0),
                                 FSS("exportTo", cp_virtual_service_t, export_to, 0),
                                 END};
SCHEMA(s_vs, cp_virtual_service_t, NULL);

/* DestinationRule */
static const field_t s_cookie_f[] = {FS("name", cp_http_cookie_t, name, REQ),
                                     FS("path", cp_http_cookie_t, path, 0),
                                     FD("ttl", cp_http_cookie_t, ttl_ms), END};
SCHEMA(s_cookie, cp_http_cookie_t, NULL);
static const field_t s_chash_f[] = {
    FS("httpHeaderName", cp_consistent_hash_t, http_header_name, 0),
    FO("httpCookie", cp_consistent_hash_t, http_cookie, s_cookie, 0),
    FB("useSourceIp", cp_consistent_hash_t, use_source_ip),
    FS("httpQueryParameterName", cp_consistent_hash_t, http_query_parameter_name, 0),
    FI("minimumRingSize", cp_consistent_hash_t, minimum_ring_size, 0, 8388608),
    END};
SCHEMA(s_chash, cp_consistent_hash_t, NULL);
static const field_t s_lb_f[] = {
    FE("simple", cp_load_balancer_t, simple, k_lb),
    FO("consistentHash", cp_load_balancer_t, consistent_hash, s_chash, 0),
    FD("warmupDurationSecs", cp_load_balancer_t, warmup_duration_ms), END};
SCHEMA(s_lb, cp_load_balancer_t, NULL);
static const field_t s_tcp_pool_f[] = {
    FI("maxConnections", cp_tcp_pool_t, max_connections, 0, INT32_MAX),
    FD("connectTimeout", cp_tcp_pool_t, connect_timeout_ms),
    FD("maxConnectionDuration", cp_tcp_pool_t, max_connection_duration_ms),
    FD("idleTimeout", cp_tcp_pool_t, idle_timeout_ms), END};
SCHEMA(s_tcp_pool, cp_tcp_pool_t, NULL);
static const field_t s_http_pool_f[] = {
    FI("http1MaxPendingRequests", cp_http_pool_t, http1_max_pending_requests, 0, INT32_MAX),
    FI("http2MaxRequests", cp_http_pool_t, http2_max_requests, 0, INT32_MAX),
    FI("maxRequestsPerConnection", cp_http_pool_t, max_requests_per_connection, 0, INT32_MAX),
    FI("maxRetries", cp_http_pool_t, max_retries, 0, INT32_MAX),
    FD("idleTimeout", cp_http_pool_t, idle_timeout_ms),
    FE("h2UpgradePolicy", cp_http_pool_t, h2_upgrade_policy, k_h2),
    FB("useClientProtocol", cp_http_pool_t, use_client_protocol),
    FI("maxConcurrentStreams", cp_http_pool_t, max_concurrent_streams, 0, INT32_MAX),
    END};
SCHEMA(s_http_pool, cp_http_pool_t, NULL);
static const field_t s_pool_f[] = {FO("tcp", cp_conn_pool_t, tcp, s_tcp_pool, 0),
                                   FO("http", cp_conn_pool_t, http, s_http_pool, 0), END};
SCHEMA(s_pool, cp_conn_pool_t, NULL);
static const field_t s_outlier_f[] = {
    FI("consecutiveErrors", cp_outlier_t, consecutive_errors, 0, INT32_MAX),
    FI("consecutive5xxErrors", cp_outlier_t, consecutive_5xx_errors, 0, INT32_MAX),
    FI("consecutiveGatewayErrors", cp_outlier_t, consecutive_gateway_errors, 0, INT32_MAX),
    FI("consecutiveLocalOriginFailures", cp_outlier_t, consecutive_local_origin_failures, 0,
       INT32_MAX),
    FB("splitExternalLocalOriginErrors", cp_outlier_t, split_external_local_origin_errors),
    FD("interval", cp_outlier_t, interval_ms),
    FD("baseEjectionTime", cp_outlier_t, base_ejection_time_ms),
    FI("maxEjectionPercent", cp_outlier_t, max_ejection_percent, 0, 100),
    FI("minHealthPercent", cp_outlier_t, min_health_percent, 0, 100),
    END};
SCHEMA(s_outlier, cp_outlier_t, NULL);
static const field_t s_ctls_f[] = {FE("mode", cp_client_tls_t, mode, k_ctls),
                                   FS("clientCertificate", cp_client_tls_t, client_certificate, 0),
                                   FS("privateKey", cp_client_tls_t, private_key, 0),
                                   FS("caCertificates", cp_client_tls_t, ca_certificates, 0),
                                   FS("credentialName", cp_client_tls_t, credential_name, 0),
                                   FSS("subjectAltNames", cp_client_tls_t, subject_alt_names, 0),
                                   FS("sni", cp_client_tls_t, sni, 0),
                                   FB("insecureSkipVerify", cp_client_tls_t, insecure_skip_verify),
                                   FS("caCrl", cp_client_tls_t, ca_crl, 0),
                                   END};
SCHEMA(s_ctls, cp_client_tls_t, NULL);
static const field_t w_pp_port_f[] = {FP("number", cp_port_policy_t, port, 0), END};
WRAP(w_pp_port);
static const field_t s_port_policy_f[] = {
    FIN("port", w_pp_port),
    FO("loadBalancer", cp_port_policy_t, load_balancer, s_lb, 0),
    FO("connectionPool", cp_port_policy_t, connection_pool, s_pool, 0),
    FO("outlierDetection", cp_port_policy_t, outlier_detection, s_outlier, 0),
    FO("tls", cp_port_policy_t, tls, s_ctls, 0),
    END};
SCHEMA(s_port_policy, cp_port_policy_t, NULL);
static const field_t s_tp_f[] = {
    FO("loadBalancer", cp_traffic_policy_t, load_balancer, s_lb, 0),
    FO("connectionPool", cp_traffic_policy_t, connection_pool, s_pool, 0),
    FO("outlierDetection", cp_traffic_policy_t, outlier_detection, s_outlier, 0),
    FO("tls", cp_traffic_policy_t, tls, s_ctls, 0),
    FLIST("portLevelSettings", cp_traffic_policy_t, port_level_settings, n_port_level_settings,
          s_port_policy, 0),
    END};
SCHEMA(s_tp, cp_traffic_policy_t, NULL);
static const field_t s_subset_f[] = {
    FS("name", cp_subset_t, name, REQ), FL("labels", cp_subset_t, labels),
    FO("trafficPolicy", cp_subset_t, traffic_policy, s_tp, 0), END};
SCHEMA(s_subset, cp_subset_t, NULL);
static const field_t w_dr_sel_f[] = {FL("matchLabels", cp_destination_rule_t, workload_selector),
                                     END};
WRAP(w_dr_sel);
static const field_t s_dr_f[] = {
    FS("host", cp_destination_rule_t, host, REQ),
    FO("trafficPolicy", cp_destination_rule_t, traffic_policy, s_tp, 0),
    FLIST("subsets", cp_destination_rule_t, subsets, n_subsets, s_subset, 0),
    FSS("exportTo", cp_destination_rule_t, export_to, 0),
    FIN("workloadSelector", w_dr_sel),
    END};
SCHEMA(s_dr, cp_destination_rule_t, check_dr);

/* Gateway, ServiceEntry, Sidecar */
static const field_t s_port_f[] = {
    FP("number", cp_port_t, number, REQ), FS("protocol", cp_port_t, protocol, 0),
    FS("name", cp_port_t, name, 0), FP("targetPort", cp_port_t, target_port, 0), END};
SCHEMA(s_port, cp_port_t, NULL);
static const field_t s_stls_f[] = {
    FB("httpsRedirect", cp_server_tls_t, https_redirect),
    FE("mode", cp_server_tls_t, mode, k_stls),
    FS("serverCertificate", cp_server_tls_t, server_certificate, 0),
    FS("privateKey", cp_server_tls_t, private_key, 0),
    FS("caCertificates", cp_server_tls_t, ca_certificates, 0),
    FS("credentialName", cp_server_tls_t, credential_name, 0),
    FSS("subjectAltNames", cp_server_tls_t, subject_alt_names, 0),
    FS("minProtocolVersion", cp_server_tls_t, min_protocol_version, 0),
    FS("maxProtocolVersion", cp_server_tls_t, max_protocol_version, 0),
    FSS("cipherSuites", cp_server_tls_t, cipher_suites, 0),
    END};
SCHEMA(s_stls, cp_server_tls_t, NULL);
static const field_t s_server_f[] = {FO("port", cp_server_t, port, s_port, REQ),
                                     FS("bind", cp_server_t, bind, 0),
                                     FSS("hosts", cp_server_t, hosts, REQ),
                                     FO("tls", cp_server_t, tls, s_stls, 0),
                                     FS("defaultEndpoint", cp_server_t, default_endpoint, 0),
                                     FS("name", cp_server_t, name, 0),
                                     END};
SCHEMA(s_server, cp_server_t, NULL);
static const field_t s_gw_f[] = {FL("selector", cp_gateway_t, selector),
                                 FLIST("servers", cp_gateway_t, servers, n_servers, s_server, REQ),
                                 END};
SCHEMA(s_gw, cp_gateway_t, NULL);

static const field_t s_we_f[] = {FS("address", cp_workload_entry_t, address, 0),
                                 {.name = "ports",
                                  .type = T_PORT_MAP,
                                  .off = offsetof(cp_workload_entry_t, ports),
                                  .noff = offsetof(cp_workload_entry_t, n_ports)},
                                 FL("labels", cp_workload_entry_t, labels),
                                 FS("network", cp_workload_entry_t, network, 0),
                                 FS("locality", cp_workload_entry_t, locality, 0),
                                 FI("weight", cp_workload_entry_t, weight, 0, UINT32_MAX),
                                 FS("serviceAccount", cp_workload_entry_t, service_account, 0),
                                 END};
SCHEMA(s_we, cp_workload_entry_t, NULL);
static const field_t w_se_sel_f[] = {FL("labels", cp_service_entry_t, workload_selector), END};
WRAP(w_se_sel);
static const field_t s_se_f[] = {
    FSS("hosts", cp_service_entry_t, hosts, REQ),
    FSS("addresses", cp_service_entry_t, addresses, 0),
    FLIST("ports", cp_service_entry_t, ports, n_ports, s_port, 0),
    FE("location", cp_service_entry_t, location, k_loc),
    FE("resolution", cp_service_entry_t, resolution, k_res),
    FLIST("endpoints", cp_service_entry_t, endpoints, n_endpoints, s_we, 0),
    FIN("workloadSelector", w_se_sel),
    FSS("exportTo", cp_service_entry_t, export_to, 0),
    FSS("subjectAltNames", cp_service_entry_t, subject_alt_names, 0),
    END};
SCHEMA(s_se, cp_service_entry_t, NULL);

static const field_t s_egress_f[] = {
    FO("port", cp_egress_t, port, s_port, 0), FS("bind", cp_egress_t, bind, 0),
    FS("captureMode", cp_egress_t, capture_mode, 0), FSS("hosts", cp_egress_t, hosts, REQ), END};
SCHEMA(s_egress, cp_egress_t, NULL);
static const field_t w_sc_sel_f[] = {FL("labels", cp_sidecar_t, workload_selector), END};
WRAP(w_sc_sel);
static const field_t w_sc_out_f[] = {FE("mode", cp_sidecar_t, outbound_mode, k_outbound), END};
WRAP(w_sc_out);
static const field_t s_sidecar_f[] = {FIN("workloadSelector", w_sc_sel),
                                      FLIST("egress", cp_sidecar_t, egress, n_egress, s_egress, 0),
                                      FIN("outboundTrafficPolicy", w_sc_out), END};
SCHEMA(s_sidecar, cp_sidecar_t, NULL);

/* security */
static const field_t s_port_mtls_f[] = {FE("mode", cp_port_mtls_t, mode, k_mtls_full), END};
SCHEMA(s_port_mtls, cp_port_mtls_t, check_port_mtls);
static const field_t w_pa_sel_f[] = {FL("matchLabels", cp_peer_authentication_t, selector), END};
WRAP(w_pa_sel);
static const field_t w_pa_mtls_f[] = {FE("mode", cp_peer_authentication_t, mtls_mode, k_mtls_full),
                                      END};
WRAP(w_pa_mtls);
static const field_t s_pa_f[] = {FIN("selector", w_pa_sel),
                                 FIN("mtls", w_pa_mtls),
                                 {.name = "portLevelMtls",
                                  .type = T_OBJ_MAP,
                                  .off = offsetof(cp_peer_authentication_t, port_level_mtls),
                                  .noff = offsetof(cp_peer_authentication_t, n_port_level_mtls),
                                  .sub = &s_port_mtls},
                                 END};
SCHEMA(s_pa, cp_peer_authentication_t, NULL);

static const field_t s_source_f[] = {
    FSS("principals", cp_source_t, principals, 0),
    FSS("notPrincipals", cp_source_t, not_principals, 0),
    FSS("requestPrincipals", cp_source_t, request_principals, 0),
    FSS("notRequestPrincipals", cp_source_t, not_request_principals, 0),
    FSS("namespaces", cp_source_t, namespaces, 0),
    FSS("notNamespaces", cp_source_t, not_namespaces, 0),
    FSS("ipBlocks", cp_source_t, ip_blocks, 0),
    FSS("notIpBlocks", cp_source_t, not_ip_blocks, 0),
    FSS("remoteIpBlocks", cp_source_t, remote_ip_blocks, 0),
    FSS("notRemoteIpBlocks", cp_source_t, not_remote_ip_blocks, 0),
    END};
SCHEMA(s_source, cp_source_t, check_source);
static const field_t s_operation_f[] = {FSS("hosts", cp_operation_t, hosts, 0),
                                        FSS("notHosts", cp_operation_t, not_hosts, 0),
                                        FSS("ports", cp_operation_t, ports, 0),
                                        FSS("notPorts", cp_operation_t, not_ports, 0),
                                        FSS("methods", cp_operation_t, methods, 0),
                                        FSS("notMethods", cp_operation_t, not_methods, 0),
                                        FSS("paths", cp_operation_t, paths, 0),
                                        FSS("notPaths", cp_operation_t, not_paths, 0),
                                        END};
SCHEMA(s_operation, cp_operation_t, check_operation);
static const field_t s_from_f[] = {FO("source", cp_rule_from_t, source, s_source, 0), END};
SCHEMA(s_from, cp_rule_from_t, NULL);
static const field_t s_to_f[] = {FO("operation", cp_rule_to_t, operation, s_operation, 0), END};
SCHEMA(s_to, cp_rule_to_t, NULL);
static const field_t s_cond_f[] = {FS("key", cp_condition_t, key, REQ),
                                   FSS("values", cp_condition_t, values, 0),
                                   FSS("notValues", cp_condition_t, not_values, 0), END};
SCHEMA(s_cond, cp_condition_t, check_cond);
static const field_t s_rule_f[] = {FLIST("from", cp_ap_rule_t, from, n_from, s_from, 0),
                                   FLIST("to", cp_ap_rule_t, to, n_to, s_to, 0),
                                   FLIST("when", cp_ap_rule_t, when, n_when, s_cond, 0), END};
SCHEMA(s_rule, cp_ap_rule_t, NULL);
static const field_t w_ap_sel_f[] = {FL("matchLabels", cp_authorization_policy_t, selector), END};
WRAP(w_ap_sel);
static const field_t w_ap_prov_f[] = {FS("name", cp_authorization_policy_t, provider, 0), END};
WRAP(w_ap_prov);
static const field_t s_ap_f[] = {
    FIN("selector", w_ap_sel), FE("action", cp_authorization_policy_t, action, k_action),
    FIN("provider", w_ap_prov),
    FLIST("rules", cp_authorization_policy_t, rules, n_rules, s_rule, 0), END};
SCHEMA(s_ap, cp_authorization_policy_t, check_ap);

/* metadata: what Kubernetes sets on the server side is accepted and dropped, so the output of
 * `kubectl get -o yaml` applies. */
static const field_t s_meta_f[] = {FS("name", cp_meta_t, name, REQ),
                                   FS("namespace", cp_meta_t, namespace_, 0),
                                   FL("labels", cp_meta_t, labels),
                                   FL("annotations", cp_meta_t, annotations),
                                   FS("resourceVersion", cp_meta_t, resource_version, 0),
                                   FI("generation", cp_meta_t, generation, 0, INT64_MAX),
                                   FIGN("uid"),
                                   FIGN("creationTimestamp"),
                                   FIGN("managedFields"),
                                   FIGN("finalizers"),
                                   FIGN("ownerReferences"),
                                   END};
SCHEMA(s_meta, cp_meta_t, NULL);

/* ---- kinds ---- */

/* Names, groups and served versions are cp_kinds.c's (one table); here, each kind's schema. */
static const schema_t *const k_spec[CP_KIND_COUNT] = {
    [CP_KIND_VIRTUAL_SERVICE] = &s_vs,
    [CP_KIND_DESTINATION_RULE] = &s_dr,
    [CP_KIND_GATEWAY] = &s_gw,
    [CP_KIND_SERVICE_ENTRY] = &s_se,
    [CP_KIND_SIDECAR] = &s_sidecar,
    [CP_KIND_PEER_AUTHENTICATION] = &s_pa,
    [CP_KIND_AUTHORIZATION_POLICY] = &s_ap,
};

const char *cp_kind_name(cp_kind_t k)
{
    const cp_kind_info_t *ki = cp_kinds_by_id(k);
    return ki != NULL ? ki->kind : "";
}

static cp_kind_t kind_by_name(wf_str_t kind)
{
    for (const cp_kind_info_t *k = cp_kinds; k->kind != NULL; k++) {
        if (wf_str_eq_c(kind, k->kind)) {
            return k->id;
        }
    }
    return CP_KIND_NONE;
}

static bool version_ok(cp_kind_t k, wf_str_t api)
{
    const cp_kind_info_t *ki = cp_kinds_by_id(k);
    size_t gl = strlen(ki->group);
    if (api.len <= gl + 1 || memcmp(api.p, ki->group, gl) != 0 || api.p[gl] != '/') {
        return false;
    }
    wf_str_t v = {api.p + gl + 1, api.len - gl - 1};
    for (const char *const *p = ki->versions; *p != NULL; p++) {
        if (wf_str_eq_c(v, *p)) {
            return true;
        }
    }
    return false;
}

cp_kind_t cp_kind_lookup(const char *api_version, const char *kind)
{
    cp_kind_t k = kind_by_name(wf_str(kind));
    return k != CP_KIND_NONE && version_ok(k, wf_str(api_version)) ? k : CP_KIND_NONE;
}

/* ---- the document ---- */

static int top_str(ps_t *ps, const cp_yaml_node_t *doc, const char *key, wf_str_t *out)
{
    const cp_yaml_node_t *v = cp_yaml_get(doc, key);
    size_t saved = path_key(ps, key, strlen(key));
    int rc = 0;
    if (v == NULL || cp_yaml_is_null(v)) {
        rc = fail(ps, doc, "required");
    } else if (!scalar(v)) {
        rc = fail(ps, v, "must be a string");
    } else {
        rc = dup_str(ps, v, v->value, out);
    }
    path_restore(ps, saved);
    return rc;
}

int cp_istio_parse(const cp_yaml_node_t *doc, cp_resource_t **out, cp_err_t *err)
{
    cp_resource_t *r = wf_calloc(1, sizeof(*r));
    ps_t ps = {.a = &r->arena, .err = err};
    wf_str_t kind = {0};
    int rc;
    *out = NULL;
    if (err != NULL) {
        memset(err, 0, sizeof(*err));
    }
    wf_arena_init(&r->arena, 4096, RESOURCE_ARENA_LIMIT);
    if (doc->kind != CP_YAML_MAP) {
        rc = fail(&ps, doc, "a resource must be a mapping");
        goto fail;
    }
    if ((rc = top_str(&ps, doc, "apiVersion", &r->api_version)) < 0 ||
        (rc = top_str(&ps, doc, "kind", &kind)) < 0) {
        goto fail;
    }
    r->kind = kind_by_name(kind);
    if (r->kind == CP_KIND_NONE) {
        size_t saved = path_key(&ps, "kind", 4);
        rc = fail_code(&ps, CP_E_KIND, cp_yaml_get(doc, "kind"),
                       "unknown kind \"%s\" (apiVersion %s): not an Istio resource weft serves",
                       kind.p, r->api_version.p);
        path_restore(&ps, saved);
        goto fail;
    }
    if (!version_ok(r->kind, r->api_version)) {
        char vers[80];
        size_t w = 0;
        const cp_kind_info_t *ki = cp_kinds_by_id(r->kind);
        for (const char *const *p = ki->versions; *p != NULL; p++) {
            w += (size_t)snprintf(vers + w, sizeof(vers) - w, "%s%s", w ? ", " : "", *p);
        }
        size_t saved = path_key(&ps, "apiVersion", 10);
        rc = fail_code(&ps, CP_E_KIND, cp_yaml_get(doc, "apiVersion"),
                       "%s is not served as \"%s\" (use %s/ with %s)", ki->kind, r->api_version.p,
                       ki->group, vers);
        path_restore(&ps, saved);
        goto fail;
    }
    for (uint32_t i = 0; i < doc->n; i++) {
        wf_str_t key = doc->pairs[i].key->value;
        if (!wf_str_eq_c(key, "apiVersion") && !wf_str_eq_c(key, "kind") &&
            !wf_str_eq_c(key, "metadata") && !wf_str_eq_c(key, "spec") &&
            !wf_str_eq_c(key, "status")) {
            size_t saved = path_key(&ps, key.p, key.len);
            rc = fail(&ps, doc->pairs[i].key, "unknown field");
            path_restore(&ps, saved);
            goto fail;
        }
    }
    const cp_yaml_node_t *meta = cp_yaml_get(doc, "metadata");
    if (meta == NULL || cp_yaml_is_null(meta)) {
        rc = fail(&ps, doc, "metadata: required");
        goto fail;
    }
    size_t saved = path_key(&ps, "metadata", 8);
    rc = parse_obj(&ps, meta, &s_meta, &r->meta);
    path_restore(&ps, saved);
    if (rc < 0) {
        goto fail;
    }
    if (r->meta.namespace_.p == NULL) {
        r->meta.namespace_ = WF_STR_LIT("default");
    }
    const schema_t *sc = k_spec[r->kind];
    if ((rc = alloc(&ps, doc, sc->size, &r->spec.any)) < 0) {
        goto fail;
    }
    const cp_yaml_node_t *spec = cp_yaml_get(doc, "spec");
    if (spec == NULL || cp_yaml_is_null(spec)) {
        rc = fail(&ps, doc, "spec: required");
        goto fail;
    }
    saved = path_key(&ps, "spec", 4);
    rc = parse_obj(&ps, spec, sc, r->spec.any);
    path_restore(&ps, saved);
    if (rc < 0) {
        goto fail;
    }
    *out = r;
    return 0;
fail:
    cp_resource_free(r);
    return rc;
}

void cp_resource_free(cp_resource_t *r)
{
    if (r == NULL) {
        return;
    }
    wf_arena_free(&r->arena);
    wf_free(r);
}

/* ---- printing ---- */

static json_t *dur_json(int64_t ms)
{
    char b[32];
    if (ms == 0) {
        return json_string("0s");
    }
    if (ms % 3600000 == 0) {
        snprintf(b, sizeof(b), "%lldh", (long long)(ms / 3600000));
    } else if (ms % 60000 == 0) {
        snprintf(b, sizeof(b), "%lldm", (long long)(ms / 60000));
    } else if (ms % 1000 == 0) {
        snprintf(b, sizeof(b), "%llds", (long long)(ms / 1000));
    } else {
        snprintf(b, sizeof(b), "%lldms", (long long)ms);
    }
    return json_string(b);
}

static json_t *str_json(wf_str_t s)
{
    return json_stringn(s.p, s.len);
}

static json_t *obj_json(const schema_t *sc, const void *base);

static void fields_json(json_t *o, const field_t *fields, const void *base)
{
    for (const field_t *f = fields; f->name != NULL; f++) {
        if (!present(f, base)) {
            continue;
        }
        json_t *v = NULL;
        switch (f->type) {
        case T_STR:
        case T_REGEX:
            v = str_json(*CAT(base, f->off, wf_str_t));
            break;
        case T_INT:
        case T_PORT:
            v = json_integer(*CAT(base, f->off, int64_t));
            break;
        case T_BOOL:
            v = json_boolean(*CAT(base, f->off, int));
            break;
        case T_DUR:
            v = dur_json(*CAT(base, f->off, int64_t));
            break;
        case T_PCT:
            v = json_real(*CAT(base, f->off, double));
            break;
        case T_ENUM:
            v = json_string(f->names[*CAT(base, f->off, int)]);
            break;
        case T_LABELS: {
            const cp_labels_t *l = CAT(base, f->off, cp_labels_t);
            v = json_object();
            for (uint32_t i = 0; i < l->n; i++) {
                json_object_setn_new(v, l->items[i].key.p, l->items[i].key.len,
                                     str_json(l->items[i].value));
            }
            break;
        }
        case T_STRS: {
            const cp_strs_t *l = CAT(base, f->off, cp_strs_t);
            v = json_array();
            for (uint32_t i = 0; i < l->n; i++) {
                json_array_append_new(v, str_json(l->items[i]));
            }
            break;
        }
        case T_OBJ:
            v = obj_json(f->sub, *CAT(base, f->off, void *));
            break;
        case T_LIST: {
            const char *items = *CAT(base, f->off, char *);
            v = json_array();
            for (uint32_t i = 0; i < *CAT(base, f->noff, uint32_t); i++) {
                json_array_append_new(v, obj_json(f->sub, items + (size_t)i * f->sub->size));
            }
            break;
        }
        case T_INLINE:
            v = json_object();
            fields_json(v, f->sub->fields, base);
            break;
        case T_OBJ_MAP:
        case T_PORT_MAP: {
            const char *items = *CAT(base, f->off, char *);
            size_t size = f->type == T_OBJ_MAP ? f->sub->size : sizeof(cp_named_port_t);
            v = json_object();
            for (uint32_t i = 0; i < *CAT(base, f->noff, uint32_t); i++) {
                const char *elem = items + (size_t)i * size;
                const wf_str_t *key = (const wf_str_t *)elem;
                json_t *ev = f->type == T_OBJ_MAP
                                 ? obj_json(f->sub, elem)
                                 : json_integer(((const cp_named_port_t *)elem)->port);
                json_object_setn_new(v, key->p, key->len, ev);
            }
            break;
        }
        case T_IGNORE:
            break;
        }
        if (v != NULL) {
            json_object_set_new(o, f->name, v);
        }
    }
}

static json_t *obj_json(const schema_t *sc, const void *base)
{
    json_t *o = json_object();
    fields_json(o, sc->fields, base);
    return o;
}

char *cp_istio_to_json(const cp_resource_t *r)
{
    json_t *o = json_object();
    json_object_set_new(o, "apiVersion", str_json(r->api_version));
    json_object_set_new(o, "kind", json_string(cp_kind_name(r->kind)));
    json_object_set_new(o, "metadata", obj_json(&s_meta, &r->meta));
    json_object_set_new(o, "spec", obj_json(k_spec[r->kind], r->spec.any));
    char *s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(17));
    json_decref(o);
    WF_ASSERT(s != NULL);
    /* jansson allocates with malloc; hand back memory the caller frees with wf_free. */
    char *copy = wf_strdup(s);
    free(s);
    return copy;
}
