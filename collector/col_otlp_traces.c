/*
 * col_otlp_traces.c - the OTLP/HTTP trace receiver: decodes ExportTraceServiceRequest from
 * protobuf (wf_pb, zero-copy) or OTLP JSON (jansson) into st_span_t and appends the spans
 * through the write queue. Field numbers follow opentelemetry-proto (trace/v1/trace.proto,
 * common/v1/common.proto, resource/v1/resource.proto).
 */
#include "col_otlp_traces.h"

#include "col_otlp_json.h"
#include "col_spanval.h"

#include "wf_alloc.h"
#include "wf_buf.h"
#include "wf_err.h"
#include "wf_log.h"
#include "wf_pb.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Arrays inside arrays (and kvlists) nest at most this deep: a bound on recursion that input
 * controls. */
#define MAX_DEPTH 16

typedef struct {
    wf_arena_t *arena;
    size_t max_spans;
    bool copy; /* strings must be copied into the arena (JSON: jansson owns them) */
    char *err;
    size_t errlen;
    st_span_t *spans;
    size_t n, cap;
} tr_t;

static int invalid(tr_t *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int invalid(tr_t *o, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(o->err, o->errlen, fmt, ap);
    va_end(ap);
    return WF_E_INVAL;
}

static int too_large(tr_t *o, const char *what)
{
    snprintf(o->err, o->errlen, "request too large: %s", what);
    return WF_E_LIMIT;
}

static int pb_invalid(tr_t *o, const wf_pb_rd_t *r, const char *where)
{
    return invalid(o, "protobuf: %s at byte %zu in %s", r->err ? r->err : "malformed", r->err_off,
                   where);
}

/* Make room for one more element of size sz in *arr (arena-allocated, doubling) and return
 * it zeroed, or NULL when the arena's limit is reached. */
static void *push(tr_t *o, void *arr, size_t *n, size_t *cap, size_t sz)
{
    void **a = arr;
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 4;
        void *na = wf_arena_alloc_checked(o->arena, nc * sz);
        if (na == NULL) {
            return NULL;
        }
        if (*n > 0) {
            memcpy(na, *a, *n * sz);
        }
        *a = na;
        *cap = nc;
    }
    char *e = (char *)*a + *n * sz;
    memset(e, 0, sz);
    (*n)++;
    return e;
}

static int text(tr_t *o, const char *p, size_t len, const char *what, wf_str_t *out)
{
    if (!wf_utf8_valid(p, len)) {
        return invalid(o, "%s is not valid UTF-8", what);
    }
    if (o->copy && len > 0) {
        char *c = wf_arena_alloc_checked(o->arena, len + 1);
        if (c == NULL) {
            return too_large(o, "out of request memory");
        }
        memcpy(c, p, len);
        c[len] = '\0';
        p = c;
    }
    *out = len > 0 ? (wf_str_t){p, len} : (wf_str_t){"", 0};
    return 0;
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

/* A kvlist has no value type in the span model: it is kept as its JSON text. */
static int kvlist_value(tr_t *o, const st_attr_t *kv, size_t n, st_value_t *v)
{
    wf_buf_t b = WF_BUF_INIT;
    col_spanval_kvlist_json(&b, kv, n);
    int rc = 0;
    char *c = wf_arena_alloc_checked(o->arena, b.len + 1);
    if (c == NULL) {
        rc = too_large(o, "out of request memory");
    } else {
        memcpy(c, b.data, b.len);
        c[b.len] = '\0';
        v->type = ST_VAL_STRING;
        v->u.s = (wf_str_t){c, b.len};
    }
    wf_buf_free(&b);
    return rc;
}

static st_span_t *new_span(tr_t *o)
{
    if (o->n >= o->max_spans) {
        return NULL;
    }
    return push(o, &o->spans, &o->n, &o->cap, sizeof(st_span_t));
}

/* What a resource and a scope give each of their spans. */
typedef struct {
    st_attr_t *attrs;
    size_t n, cap;
    wf_str_t service;
    wf_str_t scope_name, scope_version;
} res_t;

static void res_service(res_t *res)
{
    for (size_t i = 0; i < res->n; i++) {
        if (wf_str_eq_c(res->attrs[i].key, "service.name") &&
            res->attrs[i].value.type == ST_VAL_STRING) {
            res->service = res->attrs[i].value.u.s;
        }
    }
}

static void span_inherit(st_span_t *sp, const res_t *res)
{
    sp->service = res->service;
    sp->scope_name = res->scope_name;
    sp->scope_version = res->scope_version;
    sp->resource_attrs = res->attrs;
    sp->n_resource_attrs = res->n;
}

/* ---- protobuf ---- */

static int pb_text(tr_t *o, wf_pb_rd_t *r, const wf_pb_field_t *f, const char *what, wf_str_t *out)
{
    wf_str_t s;
    if (wf_pb_bytes(r, f, &s) != 0) {
        return pb_invalid(o, r, what);
    }
    return text(o, s.p, s.len, what, out);
}

static int pb_attrs(tr_t *o, wf_pb_rd_t *r, const wf_pb_field_t *f, st_attr_t **arr, size_t *n,
                    size_t *cap, int depth);

static int pb_any(tr_t *o, wf_pb_rd_t *r, st_value_t *v, int depth)
{
    wf_pb_field_t f;
    int rc;
    v->type = ST_VAL_STRING;
    v->u.s = (wf_str_t){"", 0};
    if (depth > MAX_DEPTH) {
        return invalid(o, "attribute values nest deeper than %d", MAX_DEPTH);
    }
    while ((rc = wf_pb_next(r, &f)) == 1) {
        switch (f.num) {
        case 1:
            v->type = ST_VAL_STRING;
            if ((rc = pb_text(o, r, &f, "string_value", &v->u.s)) != 0) {
                return rc;
            }
            break;
        case 2:
            v->type = ST_VAL_BOOL;
            if (wf_pb_bool(r, &f, &v->u.b) != 0) {
                return pb_invalid(o, r, "bool_value");
            }
            break;
        case 3:
            v->type = ST_VAL_INT;
            if (wf_pb_int64(r, &f, &v->u.i) != 0) {
                return pb_invalid(o, r, "int_value");
            }
            break;
        case 4:
            v->type = ST_VAL_DOUBLE;
            if (wf_pb_double(r, &f, &v->u.d) != 0) {
                return pb_invalid(o, r, "double_value");
            }
            break;
        case 5: {
            wf_pb_rd_t sub, items;
            wf_pb_field_t g;
            st_value_t *arr = NULL;
            size_t n = 0, cap = 0;
            if (wf_pb_sub(r, &f, &sub) != 0) {
                return pb_invalid(o, r, "array_value");
            }
            items = sub;
            while ((rc = wf_pb_next(&items, &g)) == 1) {
                if (g.num != 1) {
                    continue;
                }
                st_value_t *e = push(o, &arr, &n, &cap, sizeof(*e));
                if (e == NULL) {
                    return too_large(o, "out of request memory");
                }
                wf_pb_rd_t ev;
                if (wf_pb_sub(&items, &g, &ev) != 0) {
                    return pb_invalid(o, &items, "array_value");
                }
                if ((rc = pb_any(o, &ev, e, depth + 1)) != 0) {
                    return rc;
                }
            }
            if (rc < 0) {
                return pb_invalid(o, &items, "array_value");
            }
            v->type = ST_VAL_ARRAY;
            v->u.arr.items = arr;
            v->u.arr.n = n;
            break;
        }
        case 6: {
            wf_pb_rd_t sub;
            wf_pb_field_t g;
            st_attr_t *kv = NULL;
            size_t n = 0, cap = 0;
            if (wf_pb_sub(r, &f, &sub) != 0) {
                return pb_invalid(o, r, "kvlist_value");
            }
            while ((rc = wf_pb_next(&sub, &g)) == 1) {
                if (g.num == 1 && (rc = pb_attrs(o, &sub, &g, &kv, &n, &cap, depth + 1)) != 0) {
                    return rc;
                }
            }
            if (rc < 0) {
                return pb_invalid(o, &sub, "kvlist_value");
            }
            if ((rc = kvlist_value(o, kv, n, v)) != 0) {
                return rc;
            }
            break;
        }
        case 7:
            v->type = ST_VAL_BYTES;
            if (wf_pb_bytes(r, &f, &v->u.s) != 0) {
                return pb_invalid(o, r, "bytes_value");
            }
            break;
        default:
            break;
        }
    }
    return rc < 0 ? pb_invalid(o, r, "AnyValue") : 0;
}

/* Field f of r is a KeyValue: append it to *arr. */
static int pb_attrs(tr_t *o, wf_pb_rd_t *r, const wf_pb_field_t *f, st_attr_t **arr, size_t *n,
                    size_t *cap, int depth)
{
    wf_pb_rd_t kv;
    wf_pb_field_t g;
    int rc;
    if (wf_pb_sub(r, f, &kv) != 0) {
        return pb_invalid(o, r, "KeyValue");
    }
    st_attr_t *a = push(o, arr, n, cap, sizeof(**arr));
    if (a == NULL) {
        return too_large(o, "out of request memory");
    }
    a->key = (wf_str_t){"", 0};
    a->value.type = ST_VAL_STRING;
    a->value.u.s = (wf_str_t){"", 0};
    while ((rc = wf_pb_next(&kv, &g)) == 1) {
        if (g.num == 1) {
            if ((rc = pb_text(o, &kv, &g, "attribute key", &a->key)) != 0) {
                return rc;
            }
        } else if (g.num == 2) {
            wf_pb_rd_t av;
            if (wf_pb_sub(&kv, &g, &av) != 0) {
                return pb_invalid(o, &kv, "KeyValue.value");
            }
            if ((rc = pb_any(o, &av, &a->value, depth)) != 0) {
                return rc;
            }
        }
    }
    return rc < 0 ? pb_invalid(o, &kv, "KeyValue") : 0;
}

static int pb_id(tr_t *o, wf_pb_rd_t *r, const wf_pb_field_t *f, const char *what, uint8_t *id,
                 size_t size, bool may_be_empty)
{
    wf_str_t s;
    if (wf_pb_bytes(r, f, &s) != 0) {
        return pb_invalid(o, r, what);
    }
    if (s.len == 0 && may_be_empty) {
        memset(id, 0, size);
        return 0;
    }
    if (s.len != size) {
        return invalid(o, "%s has %zu bytes, want %zu", what, s.len, size);
    }
    memcpy(id, s.p, size);
    return 0;
}

static int pb_time(tr_t *o, wf_pb_rd_t *r, const wf_pb_field_t *f, const char *what, int64_t *out)
{
    uint64_t u;
    if (wf_pb_fixed64(r, f, &u) != 0) {
        return pb_invalid(o, r, what);
    }
    if (u > (uint64_t)INT64_MAX) {
        return invalid(o, "%s %" PRIu64 " out of range", what, u);
    }
    *out = (int64_t)u;
    return 0;
}

static int pb_event(tr_t *o, wf_pb_rd_t *r, st_span_event_t *ev)
{
    wf_pb_field_t f;
    int rc;
    st_attr_t *attrs = NULL;
    size_t cap = 0;
    ev->name = (wf_str_t){"", 0};
    while ((rc = wf_pb_next(r, &f)) == 1) {
        if (f.num == 1) {
            rc = pb_time(o, r, &f, "event time_unix_nano", &ev->time_ns);
        } else if (f.num == 2) {
            rc = pb_text(o, r, &f, "event name", &ev->name);
        } else if (f.num == 3) {
            rc = pb_attrs(o, r, &f, &attrs, &ev->n_attrs, &cap, 0);
        } else {
            continue;
        }
        if (rc != 0) {
            return rc;
        }
    }
    ev->attrs = attrs;
    return rc < 0 ? pb_invalid(o, r, "Span.Event") : 0;
}

static int pb_link(tr_t *o, wf_pb_rd_t *r, st_span_link_t *l)
{
    wf_pb_field_t f;
    int rc;
    st_attr_t *attrs = NULL;
    size_t cap = 0;
    bool have_trace = false, have_span = false;
    l->trace_state = (wf_str_t){"", 0};
    while ((rc = wf_pb_next(r, &f)) == 1) {
        if (f.num == 1) {
            rc = pb_id(o, r, &f, "link trace_id", l->trace_id, 16, false);
            have_trace = true;
        } else if (f.num == 2) {
            rc = pb_id(o, r, &f, "link span_id", l->span_id, 8, false);
            have_span = true;
        } else if (f.num == 3) {
            rc = pb_text(o, r, &f, "link trace_state", &l->trace_state);
        } else if (f.num == 4) {
            rc = pb_attrs(o, r, &f, &attrs, &l->n_attrs, &cap, 0);
        } else {
            continue;
        }
        if (rc != 0) {
            return rc;
        }
    }
    if (rc < 0) {
        return pb_invalid(o, r, "Span.Link");
    }
    if (!have_trace || !have_span) {
        return invalid(o, "link without trace_id or span_id");
    }
    l->attrs = attrs;
    return 0;
}

static int pb_status(tr_t *o, wf_pb_rd_t *r, st_span_t *sp)
{
    wf_pb_field_t f;
    int rc;
    while ((rc = wf_pb_next(r, &f)) == 1) {
        if (f.num == 2) {
            if ((rc = pb_text(o, r, &f, "status message", &sp->status_message)) != 0) {
                return rc;
            }
        } else if (f.num == 3) {
            uint32_t c;
            if (wf_pb_uint32(r, &f, &c) != 0) {
                return pb_invalid(o, r, "status code");
            }
            if (c > ST_STATUS_ERROR) {
                return invalid(o, "status code %" PRIu32 " unknown", c);
            }
            sp->status_code = (st_status_code_t)c;
        }
    }
    return rc < 0 ? pb_invalid(o, r, "Status") : 0;
}

/* Required fields must be present: a missing id decodes as absent, never as zeros. */
static int check_ids(tr_t *o, const st_span_t *sp, bool have_trace, bool have_span)
{
    if (!have_trace || all_zero(sp->trace_id, 16)) {
        return invalid(o, "span %zu: trace id missing or all zero", o->n - 1);
    }
    if (!have_span || all_zero(sp->span_id, 8)) {
        return invalid(o, "span %zu: span id missing or all zero", o->n - 1);
    }
    return 0;
}

static int pb_span(tr_t *o, wf_pb_rd_t *r, const res_t *res)
{
    st_span_t *sp = new_span(o);
    if (sp == NULL) {
        return o->n >= o->max_spans ? too_large(o, "too many spans")
                                    : too_large(o, "out of request memory");
    }
    span_inherit(sp, res);
    sp->trace_state = sp->name = sp->status_message = (wf_str_t){"", 0};
    st_attr_t *attrs = NULL;
    st_span_event_t *events = NULL;
    st_span_link_t *links = NULL;
    size_t acap = 0, ecap = 0, lcap = 0;
    bool have_trace = false, have_span = false;
    wf_pb_field_t f;
    wf_pb_rd_t sub;
    int rc;
    while ((rc = wf_pb_next(r, &f)) == 1) {
        rc = 0;
        switch (f.num) {
        case 1:
            rc = pb_id(o, r, &f, "trace_id", sp->trace_id, 16, false);
            have_trace = true;
            break;
        case 2:
            rc = pb_id(o, r, &f, "span_id", sp->span_id, 8, false);
            have_span = true;
            break;
        case 3:
            rc = pb_text(o, r, &f, "trace_state", &sp->trace_state);
            break;
        case 4:
            rc = pb_id(o, r, &f, "parent_span_id", sp->parent_span_id, 8, true);
            break;
        case 5:
            rc = pb_text(o, r, &f, "span name", &sp->name);
            break;
        case 6: {
            uint32_t k;
            if (wf_pb_uint32(r, &f, &k) != 0) {
                return pb_invalid(o, r, "span kind");
            }
            if (k > ST_SPAN_KIND_CONSUMER) {
                return invalid(o, "span kind %" PRIu32 " unknown", k);
            }
            sp->kind = (st_span_kind_t)k;
            break;
        }
        case 7:
            rc = pb_time(o, r, &f, "start_time_unix_nano", &sp->start_ns);
            break;
        case 8:
            rc = pb_time(o, r, &f, "end_time_unix_nano", &sp->end_ns);
            break;
        case 9:
            rc = pb_attrs(o, r, &f, &attrs, &sp->n_attrs, &acap, 0);
            break;
        case 11: {
            st_span_event_t *ev = push(o, &events, &sp->n_events, &ecap, sizeof(*ev));
            if (ev == NULL) {
                return too_large(o, "out of request memory");
            }
            if (wf_pb_sub(r, &f, &sub) != 0) {
                return pb_invalid(o, r, "Span.events");
            }
            rc = pb_event(o, &sub, ev);
            break;
        }
        case 13: {
            st_span_link_t *l = push(o, &links, &sp->n_links, &lcap, sizeof(*l));
            if (l == NULL) {
                return too_large(o, "out of request memory");
            }
            if (wf_pb_sub(r, &f, &sub) != 0) {
                return pb_invalid(o, r, "Span.links");
            }
            rc = pb_link(o, &sub, l);
            break;
        }
        case 15:
            if (wf_pb_sub(r, &f, &sub) != 0) {
                return pb_invalid(o, r, "Span.status");
            }
            rc = pb_status(o, &sub, sp);
            break;
        case 16:
            if (wf_pb_fixed32(r, &f, &sp->flags) != 0) {
                return pb_invalid(o, r, "span flags");
            }
            break;
        default:
            break;
        }
        if (rc != 0) {
            return rc;
        }
    }
    if (rc < 0) {
        return pb_invalid(o, r, "Span");
    }
    sp->attrs = attrs;
    sp->events = events;
    sp->links = links;
    return check_ids(o, sp, have_trace, have_span);
}

static int pb_scope(tr_t *o, wf_pb_rd_t *r, res_t *res)
{
    wf_pb_field_t f;
    int rc;
    while ((rc = wf_pb_next(r, &f)) == 1) {
        if (f.num == 1) {
            rc = pb_text(o, r, &f, "scope name", &res->scope_name);
        } else if (f.num == 2) {
            rc = pb_text(o, r, &f, "scope version", &res->scope_version);
        } else {
            continue;
        }
        if (rc != 0) {
            return rc;
        }
    }
    return rc < 0 ? pb_invalid(o, r, "InstrumentationScope") : 0;
}

/* ScopeSpans: the scope may follow the spans on the wire, so it is read in a first pass. */
static int pb_scope_spans(tr_t *o, wf_pb_rd_t *r, res_t *res)
{
    wf_pb_rd_t again = *r, sub;
    wf_pb_field_t f;
    int rc;
    res->scope_name = res->scope_version = (wf_str_t){"", 0};
    while ((rc = wf_pb_next(r, &f)) == 1) {
        if (f.num == 1) {
            if (wf_pb_sub(r, &f, &sub) != 0) {
                return pb_invalid(o, r, "ScopeSpans.scope");
            }
            if ((rc = pb_scope(o, &sub, res)) != 0) {
                return rc;
            }
        } else if (f.num == 2 && f.wire != WF_PB_LEN) {
            return pb_invalid(o, r, "ScopeSpans.spans");
        }
    }
    if (rc < 0) {
        return pb_invalid(o, r, "ScopeSpans");
    }
    while ((rc = wf_pb_next(&again, &f)) == 1) {
        if (f.num == 2) {
            if (wf_pb_sub(&again, &f, &sub) != 0) {
                return pb_invalid(o, &again, "ScopeSpans.spans");
            }
            if ((rc = pb_span(o, &sub, res)) != 0) {
                return rc;
            }
        }
    }
    return 0;
}

static int pb_resource_spans(tr_t *o, wf_pb_rd_t *r)
{
    wf_pb_rd_t again = *r, sub, inner;
    wf_pb_field_t f, g;
    res_t res;
    int rc;
    memset(&res, 0, sizeof(res));
    res.service = (wf_str_t){"", 0};
    while ((rc = wf_pb_next(r, &f)) == 1) {
        if (f.num == 1) {
            if (wf_pb_sub(r, &f, &sub) != 0) {
                return pb_invalid(o, r, "ResourceSpans.resource");
            }
            while ((rc = wf_pb_next(&sub, &g)) == 1) {
                if (g.num == 1 &&
                    (rc = pb_attrs(o, &sub, &g, &res.attrs, &res.n, &res.cap, 0)) != 0) {
                    return rc;
                }
            }
            if (rc < 0) {
                return pb_invalid(o, &sub, "Resource");
            }
        } else if (f.num == 2 && f.wire != WF_PB_LEN) {
            return pb_invalid(o, r, "ResourceSpans.scope_spans");
        }
    }
    if (rc < 0) {
        return pb_invalid(o, r, "ResourceSpans");
    }
    res_service(&res);
    while ((rc = wf_pb_next(&again, &f)) == 1) {
        if (f.num == 2) {
            if (wf_pb_sub(&again, &f, &inner) != 0) {
                return pb_invalid(o, &again, "ResourceSpans.scope_spans");
            }
            if ((rc = pb_scope_spans(o, &inner, &res)) != 0) {
                return rc;
            }
        }
    }
    return 0;
}

static int pb_decode(tr_t *o, const uint8_t *body, size_t len)
{
    wf_pb_rd_t r, sub;
    wf_pb_field_t f;
    int rc;
    wf_pb_init(&r, body, len);
    while ((rc = wf_pb_next(&r, &f)) == 1) {
        if (f.num == 1) {
            if (wf_pb_sub(&r, &f, &sub) != 0) {
                return pb_invalid(o, &r, "resource_spans");
            }
            if ((rc = pb_resource_spans(o, &sub)) != 0) {
                return rc;
            }
        }
    }
    return rc < 0 ? pb_invalid(o, &r, "ExportTraceServiceRequest") : 0;
}

/* ---- JSON ---- */

/* The shared readers (col_otlp_json.h) with this decoder's error buffer. */

static int jarray(tr_t *o, json_t *obj, const char *camel, const char *snake, json_t **out)
{
    return col_oj_array(obj, camel, snake, out, o->err, o->errlen);
}

static int jobject(tr_t *o, json_t *v, const char *what)
{
    return col_oj_object(v, what, o->err, o->errlen);
}

/* A string member, checked for UTF-8 and copied into the arena (jansson owns the tree). */
static int jtext(tr_t *o, json_t *obj, const char *camel, const char *snake, wf_str_t *out)
{
    wf_str_t s;
    int rc = col_oj_string(obj, camel, snake, &s, o->err, o->errlen);
    return rc != 0 ? rc : text(o, s.p, s.len, camel, out);
}

/* A time in nanoseconds: unsigned 64-bit on the wire, but the model's times are int64. */
static int jtime(tr_t *o, json_t *obj, const char *camel, const char *snake, int64_t *out)
{
    uint64_t u;
    int rc = col_oj_int_field(obj, camel, snake, true, out, &u, NULL, o->err, o->errlen);
    if (rc == 0 && u > (uint64_t)INT64_MAX) {
        return invalid(o, "json: %s %" PRIu64 " out of range", camel, u);
    }
    return rc;
}

static int jsmall(tr_t *o, json_t *obj, const char *camel, int64_t max, int64_t *out)
{
    json_t *v = col_oj_get(obj, camel, NULL);
    *out = 0;
    if (v == NULL) {
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > max) {
        return invalid(o, "json: %s must be an integer in 0..%" PRId64, camel, max);
    }
    *out = json_integer_value(v);
    return 0;
}

static int jid(tr_t *o, json_t *obj, const char *camel, const char *snake, uint8_t *id, size_t size,
               bool may_be_empty, bool *present)
{
    return col_oj_hex_id(obj, camel, snake, id, size, may_be_empty, present, o->err, o->errlen);
}

static int j_attrs(tr_t *o, json_t *list, const char *what, st_attr_t **arr, size_t *n, size_t *cap,
                   int depth);

static int j_any(tr_t *o, json_t *any, st_value_t *v, int depth)
{
    json_t *x;
    int rc;
    v->type = ST_VAL_STRING;
    v->u.s = (wf_str_t){"", 0};
    if (depth > MAX_DEPTH) {
        return invalid(o, "attribute values nest deeper than %d", MAX_DEPTH);
    }
    if ((rc = jobject(o, any, "AnyValue")) != 0) {
        return rc;
    }
    if ((x = col_oj_get(any, "stringValue", "string_value")) != NULL) {
        return jtext(o, any, "stringValue", "string_value", &v->u.s);
    }
    if ((x = col_oj_get(any, "boolValue", "bool_value")) != NULL) {
        if (!json_is_boolean(x)) {
            return invalid(o, "json: boolValue is not a boolean");
        }
        v->type = ST_VAL_BOOL;
        v->u.b = json_is_true(x);
        return 0;
    }
    if ((x = col_oj_get(any, "intValue", "int_value")) != NULL) {
        uint64_t u;
        v->type = ST_VAL_INT;
        return col_oj_int(x, "intValue", false, &v->u.i, &u, o->err, o->errlen);
    }
    if ((x = col_oj_get(any, "doubleValue", "double_value")) != NULL) {
        v->type = ST_VAL_DOUBLE;
        return col_oj_double(x, "doubleValue", &v->u.d, o->err, o->errlen);
    }
    if ((x = col_oj_get(any, "bytesValue", "bytes_value")) != NULL) {
        v->type = ST_VAL_BYTES;
        return col_oj_base64(x, "bytesValue", o->arena, &v->u.s, o->err, o->errlen);
    }
    if ((x = col_oj_get(any, "arrayValue", "array_value")) != NULL) {
        json_t *vals;
        if ((rc = jobject(o, x, "arrayValue")) != 0 ||
            (rc = jarray(o, x, "values", NULL, &vals)) != 0) {
            return rc;
        }
        st_value_t *arr = NULL;
        size_t n = 0, cap = 0, i;
        json_t *e;
        json_array_foreach(vals, i, e)
        {
            st_value_t *ev = push(o, &arr, &n, &cap, sizeof(*ev));
            if (ev == NULL) {
                return too_large(o, "out of request memory");
            }
            if ((rc = j_any(o, e, ev, depth + 1)) != 0) {
                return rc;
            }
        }
        v->type = ST_VAL_ARRAY;
        v->u.arr.items = arr;
        v->u.arr.n = n;
        return 0;
    }
    if ((x = col_oj_get(any, "kvlistValue", "kvlist_value")) != NULL) {
        json_t *vals;
        st_attr_t *kv = NULL;
        size_t n = 0, cap = 0;
        if ((rc = jobject(o, x, "kvlistValue")) != 0 ||
            (rc = jarray(o, x, "values", NULL, &vals)) != 0 ||
            (rc = j_attrs(o, vals, "kvlistValue", &kv, &n, &cap, depth + 1)) != 0) {
            return rc;
        }
        return kvlist_value(o, kv, n, v);
    }
    return 0;
}

static int j_attrs(tr_t *o, json_t *list, const char *what, st_attr_t **arr, size_t *n, size_t *cap,
                   int depth)
{
    size_t i;
    json_t *kv;
    int rc;
    if (list == NULL) {
        return 0;
    }
    json_array_foreach(list, i, kv)
    {
        if ((rc = jobject(o, kv, what)) != 0) {
            return rc;
        }
        st_attr_t *a = push(o, arr, n, cap, sizeof(**arr));
        if (a == NULL) {
            return too_large(o, "out of request memory");
        }
        if ((rc = jtext(o, kv, "key", NULL, &a->key)) != 0) {
            return rc;
        }
        json_t *val = col_oj_get(kv, "value", NULL);
        a->value.type = ST_VAL_STRING;
        a->value.u.s = (wf_str_t){"", 0};
        if (val != NULL && (rc = j_any(o, val, &a->value, depth)) != 0) {
            return rc;
        }
    }
    return 0;
}

static int j_attr_field(tr_t *o, json_t *obj, const st_attr_t **out, size_t *n)
{
    json_t *list;
    st_attr_t *arr = NULL;
    size_t cap = 0;
    int rc;
    *n = 0;
    if ((rc = jarray(o, obj, "attributes", NULL, &list)) != 0 ||
        (rc = j_attrs(o, list, "attribute", &arr, n, &cap, 0)) != 0) {
        return rc;
    }
    *out = arr;
    return 0;
}

static int j_span(tr_t *o, json_t *js, const res_t *res)
{
    int rc;
    int64_t x;
    bool have_trace, have_span, present;
    json_t *list, *e, *st;
    size_t i;
    if ((rc = jobject(o, js, "span")) != 0) {
        return rc;
    }
    st_span_t *sp = new_span(o);
    if (sp == NULL) {
        return o->n >= o->max_spans ? too_large(o, "too many spans")
                                    : too_large(o, "out of request memory");
    }
    span_inherit(sp, res);
    if ((rc = jid(o, js, "traceId", "trace_id", sp->trace_id, 16, false, &have_trace)) != 0 ||
        (rc = jid(o, js, "spanId", "span_id", sp->span_id, 8, false, &have_span)) != 0 ||
        (rc = jid(o, js, "parentSpanId", "parent_span_id", sp->parent_span_id, 8, true,
                  &present)) != 0 ||
        (rc = jtext(o, js, "traceState", "trace_state", &sp->trace_state)) != 0 ||
        (rc = jtext(o, js, "name", NULL, &sp->name)) != 0 ||
        (rc = jsmall(o, js, "kind", ST_SPAN_KIND_CONSUMER, &x)) != 0) {
        return rc;
    }
    sp->kind = (st_span_kind_t)x;
    if ((rc = jtime(o, js, "startTimeUnixNano", "start_time_unix_nano", &sp->start_ns)) != 0 ||
        (rc = jtime(o, js, "endTimeUnixNano", "end_time_unix_nano", &sp->end_ns)) != 0 ||
        (rc = jsmall(o, js, "flags", UINT32_MAX, &x)) != 0) {
        return rc;
    }
    sp->flags = (uint32_t)x;
    if ((rc = j_attr_field(o, js, &sp->attrs, &sp->n_attrs)) != 0) {
        return rc;
    }
    sp->status_message = (wf_str_t){"", 0};
    if ((st = col_oj_get(js, "status", NULL)) != NULL) {
        if ((rc = jobject(o, st, "status")) != 0 ||
            (rc = jtext(o, st, "message", NULL, &sp->status_message)) != 0 ||
            (rc = jsmall(o, st, "code", ST_STATUS_ERROR, &x)) != 0) {
            return rc;
        }
        sp->status_code = (st_status_code_t)x;
    }
    if ((rc = jarray(o, js, "events", NULL, &list)) != 0) {
        return rc;
    }
    st_span_event_t *events = NULL;
    size_t ecap = 0;
    json_array_foreach(list, i, e)
    {
        st_span_event_t *ev = push(o, &events, &sp->n_events, &ecap, sizeof(*ev));
        if (ev == NULL) {
            return too_large(o, "out of request memory");
        }
        if ((rc = jobject(o, e, "event")) != 0 ||
            (rc = jtime(o, e, "timeUnixNano", "time_unix_nano", &ev->time_ns)) != 0 ||
            (rc = jtext(o, e, "name", NULL, &ev->name)) != 0 ||
            (rc = j_attr_field(o, e, &ev->attrs, &ev->n_attrs)) != 0) {
            return rc;
        }
    }
    sp->events = events;
    if ((rc = jarray(o, js, "links", NULL, &list)) != 0) {
        return rc;
    }
    st_span_link_t *links = NULL;
    size_t lcap = 0;
    json_array_foreach(list, i, e)
    {
        bool lt, ls;
        st_span_link_t *l = push(o, &links, &sp->n_links, &lcap, sizeof(*l));
        if (l == NULL) {
            return too_large(o, "out of request memory");
        }
        if ((rc = jobject(o, e, "link")) != 0 ||
            (rc = jid(o, e, "traceId", "trace_id", l->trace_id, 16, false, &lt)) != 0 ||
            (rc = jid(o, e, "spanId", "span_id", l->span_id, 8, false, &ls)) != 0 ||
            (rc = jtext(o, e, "traceState", "trace_state", &l->trace_state)) != 0 ||
            (rc = j_attr_field(o, e, &l->attrs, &l->n_attrs)) != 0) {
            return rc;
        }
        if (!lt || !ls) {
            return invalid(o, "link without traceId or spanId");
        }
    }
    sp->links = links;
    return check_ids(o, sp, have_trace, have_span);
}

static int j_resource_spans(tr_t *o, json_t *jrs)
{
    res_t res;
    json_t *jr, *list, *jss, *spans, *sp, *scope;
    size_t i, k;
    int rc;
    memset(&res, 0, sizeof(res));
    res.service = (wf_str_t){"", 0};
    if ((rc = jobject(o, jrs, "resourceSpans")) != 0) {
        return rc;
    }
    if ((jr = col_oj_get(jrs, "resource", NULL)) != NULL) {
        if ((rc = jobject(o, jr, "resource")) != 0 ||
            (rc = jarray(o, jr, "attributes", NULL, &list)) != 0 ||
            (rc = j_attrs(o, list, "resource attribute", &res.attrs, &res.n, &res.cap, 0)) != 0) {
            return rc;
        }
    }
    res_service(&res);
    if ((rc = jarray(o, jrs, "scopeSpans", "scope_spans", &list)) != 0) {
        return rc;
    }
    json_array_foreach(list, i, jss)
    {
        if ((rc = jobject(o, jss, "scopeSpans")) != 0) {
            return rc;
        }
        res.scope_name = res.scope_version = (wf_str_t){"", 0};
        if ((scope = col_oj_get(jss, "scope", NULL)) != NULL) {
            if ((rc = jobject(o, scope, "scope")) != 0 ||
                (rc = jtext(o, scope, "name", NULL, &res.scope_name)) != 0 ||
                (rc = jtext(o, scope, "version", NULL, &res.scope_version)) != 0) {
                return rc;
            }
        }
        if ((rc = jarray(o, jss, "spans", NULL, &spans)) != 0) {
            return rc;
        }
        json_array_foreach(spans, k, sp)
        {
            if ((rc = j_span(o, sp, &res)) != 0) {
                return rc;
            }
        }
    }
    return 0;
}

static int j_decode(tr_t *o, const uint8_t *body, size_t len)
{
    json_error_t je;
    json_t *root = json_loadb((const char *)body, len, 0, &je);
    json_t *list, *e;
    size_t i;
    int rc;
    if (root == NULL) {
        return invalid(o, "json: %s at line %d column %d", je.text, je.line, je.column);
    }
    if ((rc = jobject(o, root, "request")) != 0 ||
        (rc = jarray(o, root, "resourceSpans", "resource_spans", &list)) != 0) {
        goto out;
    }
    json_array_foreach(list, i, e)
    {
        if ((rc = j_resource_spans(o, e)) != 0) {
            goto out;
        }
    }
out:
    json_decref(root);
    return rc;
}

int col_otlp_traces_decode(const uint8_t *body, size_t len, bool json, size_t max_spans,
                           wf_arena_t *arena, st_span_t **spans, size_t *n, char *err,
                           size_t errlen)
{
    tr_t o;
    memset(&o, 0, sizeof(o));
    o.arena = arena;
    o.max_spans = max_spans;
    o.copy = json;
    o.err = err;
    o.errlen = errlen;
    if (errlen > 0) {
        err[0] = '\0';
    }
    int rc = json ? j_decode(&o, body, len) : pb_decode(&o, body, len);
    *spans = rc == 0 ? o.spans : NULL;
    *n = rc == 0 ? o.n : 0;
    return rc;
}

/* ---- the handler ---- */

typedef struct {
    const st_span_t *spans;
    size_t n;
    size_t bad_index;
} job_t;

static int spans_cb(col_write_t *w, st_store_t *s)
{
    job_t *j = w->arg;
    j->bad_index = 0;
    return st_spans_append(s, j->spans, j->n, &j->bad_index);
}

static void answer_ok(col_resp_t *resp, bool json)
{
    resp->status = 200;
    wf_buf_reset(&resp->body);
    if (json) {
        resp->content_type = "application/json";
        wf_buf_puts(&resp->body, "{}");
    } else {
        resp->content_type = "application/x-protobuf";
    }
}

void col_otlp_traces_serve(col_writer_t *wr, const char *content_type, col_req_t *req,
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
    st_span_t *spans = NULL;
    size_t n = 0;
    char err[512];
    int rc = col_otlp_traces_decode(req->body, req->body_len, json, COL_OTLP_TRACES_MAX_SPANS,
                                    arena, &spans, &n, err, sizeof(err));
    if (rc != 0) {
        WF_LOG_RL(WF_WARN, 1, "otlp", "bad traces request", "err=\"%s\"", err);
        col_resp_text(resp, rc == WF_E_LIMIT ? 413 : 400, "%s", err);
        goto out;
    }
    if (n > 0) {
        job_t job = {.spans = spans, .n = n, .bad_index = 0};
        col_write_t w;
        memset(&w, 0, sizeof(w));
        w.spans = spans_cb;
        w.arg = &job;
        w.est_bytes = req->body_len; /* for the write queue's byte budget */
        rc = col_writer_submit(wr, &w);
        switch (rc) {
        case 0:
            break;
        case ST_E_SPAN_INVALID:
        case ST_E_SPAN_LIMIT:
        case ST_E_TIMESTAMP:
        case ST_E_TOO_OLD:
        case ST_E_TOO_NEW:
            col_resp_text(resp, 400, "span %zu refused: %s", job.bad_index, st_strerror(rc));
            goto out;
        case ST_E_BATCH_LIMIT:
            col_resp_text(resp, 413, "request too large for one store batch");
            goto out;
        default:
            if (rc != COL_E_BUSY) {
                WF_LOG_RL(WF_ERROR, 1, "otlp", "span write failed", "err=\"%s\"",
                          col_writer_strerror(rc));
            }
            col_resp_write_failed(resp, rc);
            goto out;
        }
    }
    answer_ok(resp, json);
out:
    if (arena == &own) {
        wf_arena_free(&own);
    }
}

void col_otlp_traces_handler(void *writer, col_req_t *req, col_resp_t *resp)
{
    col_otlp_traces_serve(writer, col_req_header(req, "Content-Type"), req, resp);
}
