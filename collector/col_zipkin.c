/*
 * col_zipkin.c - Zipkin API v2: JSON span ingest into the span store and the query endpoints
 * (see col_zipkin.h for the field mapping). Decoding is strict about what the model needs
 * (hex ids, integer microsecond times) and lenient about what it does not (unknown fields are
 * ignored, as Zipkin's own server does).
 */
#include "col_zipkin.h"

#include "col_otlp_json.h"
#include "col_spanval.h"

#include "wf_alloc.h"
#include "wf_clock.h"
#include "wf_err.h"
#include "wf_log.h"

#include <jansson.h>

#include <errno.h>
#include <stdarg.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* What the query handlers read from: the store, and whether names are shown lowercased. */
typedef struct {
    st_store_t *store;
    bool lower;
} view_t;

struct col_zipkin {
    col_writer_t *writer;
    st_store_t *store;
    view_t view;    /* the query routes' argument */
    char **ac_keys; /* autocomplete keys, sorted and distinct */
    size_t n_ac_keys;
};

/* Attribute keys the endpoints and flags map to; they are not printed back as tags. */
#define K_PEER_SERVICE "peer.service"
#define K_PEER_IP "net.peer.ip"
#define K_PEER_IP6 "net.peer.ipv6"
#define K_PEER_PORT "net.peer.port"
#define K_HOST_IP "net.host.ip"
#define K_HOST_IP6 "net.host.ipv6"
#define K_HOST_PORT "net.host.port"
#define K_DEBUG "zipkin.debug"
#define K_SHARED "zipkin.shared"
#define K_SERVICE_NAME "service.name"

#define US_MAX (INT64_MAX / 1000)
#define DEFAULT_LOOKBACK_MS 86400000LL

/* ---------------------------------------------------------------------------------------- */
/* Ingest                                                                                   */

typedef struct {
    wf_arena_t *arena;
    char *err;
    size_t errlen;
} dec_t;

static bool all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] != 0) {
            return false;
        }
    }
    return true;
}

/* A trace id of 16 or 32 hex digits into the model's 16 bytes (64-bit ids left-padded). */
static bool trace_id_decode(const char *s, size_t len, uint8_t out[16])
{
    memset(out, 0, 16);
    if (len == 16) {
        return col_hex_decode(s, len, out + 8, 8);
    }
    return col_hex_decode(s, len, out, 16);
}

/* A copy of JSON string v in the arena (the decoded spans outlive the JSON document). */
static wf_str_t jstr(dec_t *d, const json_t *v)
{
    size_t n = json_string_length(v);
    return (wf_str_t){wf_arena_strndup(d->arena, json_string_value(v), n), n};
}

static int fail(dec_t *d, size_t i, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int fail(dec_t *d, size_t i, const char *fmt, ...)
{
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    snprintf(d->err, d->errlen, "span %zu: %s", i, msg);
    return WF_E_INVAL;
}

/* An optional string member: NULL when absent or null, error when another type. */
static int opt_str(dec_t *d, size_t i, const json_t *obj, const char *key, const json_t **out)
{
    const json_t *v = json_object_get(obj, key);
    *out = NULL;
    if (v == NULL || json_is_null(v)) {
        return 0;
    }
    if (!json_is_string(v)) {
        return fail(d, i, "%s must be a string", key);
    }
    *out = v;
    return 0;
}

/* An optional non-negative integer of microseconds; -1 when absent. */
static int opt_us(dec_t *d, size_t i, const json_t *obj, const char *key, int64_t *out)
{
    const json_t *v = json_object_get(obj, key);
    *out = -1;
    if (v == NULL || json_is_null(v)) {
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > US_MAX) {
        return fail(d, i, "%s must be a non-negative integer of microseconds", key);
    }
    *out = (int64_t)json_integer_value(v);
    return 0;
}

typedef struct {
    st_attr_t *a;
    size_t n;
    size_t cap;
} attrs_t;

static void attr_str(attrs_t *l, const char *key, wf_str_t v)
{
    WF_ASSERT(l->n < l->cap);
    l->a[l->n].key = wf_str(key);
    l->a[l->n].value.type = ST_VAL_STRING;
    l->a[l->n].value.u.s = v;
    l->n++;
}

static void attr_int(attrs_t *l, const char *key, int64_t v)
{
    WF_ASSERT(l->n < l->cap);
    l->a[l->n].key = wf_str(key);
    l->a[l->n].value.type = ST_VAL_INT;
    l->a[l->n].value.u.i = v;
    l->n++;
}

static void attr_bool(attrs_t *l, const char *key, bool v)
{
    WF_ASSERT(l->n < l->cap);
    l->a[l->n].key = wf_str(key);
    l->a[l->n].value.type = ST_VAL_BOOL;
    l->a[l->n].value.u.b = v;
    l->n++;
}

/* An endpoint object's members; every one optional. */
typedef struct {
    const json_t *service, *ipv4, *ipv6;
    int64_t port; /* -1 when absent */
} endpoint_t;

static int endpoint_decode(dec_t *d, size_t i, const json_t *span, const char *key, endpoint_t *ep)
{
    memset(ep, 0, sizeof(*ep));
    ep->port = -1;
    const json_t *o = json_object_get(span, key);
    if (o == NULL || json_is_null(o)) {
        return 0;
    }
    if (!json_is_object(o)) {
        return fail(d, i, "%s must be an object", key);
    }
    int rc = opt_str(d, i, o, "serviceName", &ep->service);
    if (rc == 0) {
        rc = opt_str(d, i, o, "ipv4", &ep->ipv4);
    }
    if (rc == 0) {
        rc = opt_str(d, i, o, "ipv6", &ep->ipv6);
    }
    if (rc != 0) {
        return rc;
    }
    const json_t *port = json_object_get(o, "port");
    if (port != NULL && !json_is_null(port)) {
        if (!json_is_integer(port) || json_integer_value(port) < 0 ||
            json_integer_value(port) > 65535) {
            return fail(d, i, "%s.port must be an integer 0..65535", key);
        }
        /* Zipkin writes port 0 for "unknown"; it carries nothing. */
        if (json_integer_value(port) > 0) {
            ep->port = (int64_t)json_integer_value(port);
        }
    }
    return 0;
}

static bool nonempty(const json_t *s)
{
    return s != NULL && json_string_length(s) > 0;
}

static int kind_decode(dec_t *d, size_t i, const json_t *span, st_span_kind_t *out)
{
    const json_t *k;
    int rc = opt_str(d, i, span, "kind", &k);
    if (rc != 0) {
        return rc;
    }
    static const struct {
        const char *name;
        st_span_kind_t kind;
    } kinds[] = {{"CLIENT", ST_SPAN_KIND_CLIENT},
                 {"SERVER", ST_SPAN_KIND_SERVER},
                 {"PRODUCER", ST_SPAN_KIND_PRODUCER},
                 {"CONSUMER", ST_SPAN_KIND_CONSUMER}};
    /* No kind is a local (in-process) span: OTel's INTERNAL. */
    *out = ST_SPAN_KIND_INTERNAL;
    if (k == NULL) {
        return 0;
    }
    for (size_t j = 0; j < sizeof(kinds) / sizeof(kinds[0]); j++) {
        if (strcmp(json_string_value(k), kinds[j].name) == 0) {
            *out = kinds[j].kind;
            return 0;
        }
    }
    return fail(d, i, "unknown kind %s", json_string_value(k));
}

static int opt_bool(dec_t *d, size_t i, const json_t *span, const char *key, bool *out)
{
    const json_t *v = json_object_get(span, key);
    *out = false;
    if (v == NULL || json_is_null(v)) {
        return 0;
    }
    if (!json_is_boolean(v)) {
        return fail(d, i, "%s must be a boolean", key);
    }
    *out = json_is_true(v);
    return 0;
}

/* Decode span i (a JSON object) into sp; strings point into the JSON document. */
static int span_decode(dec_t *d, size_t i, const json_t *js, st_span_t *sp)
{
    memset(sp, 0, sizeof(*sp));
    if (!json_is_object(js)) {
        return fail(d, i, "%s", "not a JSON object");
    }
    const json_t *tid, *id, *pid, *name;
    int rc = opt_str(d, i, js, "traceId", &tid);
    if (rc == 0) {
        rc = opt_str(d, i, js, "id", &id);
    }
    if (rc == 0) {
        rc = opt_str(d, i, js, "parentId", &pid);
    }
    if (rc == 0) {
        rc = opt_str(d, i, js, "name", &name);
    }
    if (rc != 0) {
        return rc;
    }
    if (tid == NULL) {
        return fail(d, i, "%s is required", "traceId");
    }
    if (!trace_id_decode(json_string_value(tid), json_string_length(tid), sp->trace_id)) {
        return fail(d, i, "traceId %s is not 16 or 32 hex digits", json_string_value(tid));
    }
    if (all_zero(sp->trace_id, 16)) {
        return fail(d, i, "%s is zero", "traceId");
    }
    if (id == NULL) {
        return fail(d, i, "%s is required", "id");
    }
    if (!col_hex_decode(json_string_value(id), json_string_length(id), sp->span_id, 8)) {
        return fail(d, i, "id %s is not 16 hex digits", json_string_value(id));
    }
    if (all_zero(sp->span_id, 8)) {
        return fail(d, i, "%s is zero", "id");
    }
    if (pid != NULL &&
        !col_hex_decode(json_string_value(pid), json_string_length(pid), sp->parent_span_id, 8)) {
        return fail(d, i, "parentId %s is not 16 hex digits", json_string_value(pid));
    }
    /* Never a NULL pointer: the store binds it as SQL text, where NULL is not "". */
    sp->name = name != NULL ? jstr(d, name) : WF_STR_LIT("");
    if ((rc = kind_decode(d, i, js, &sp->kind)) != 0) {
        return rc;
    }
    int64_t ts, dur;
    if ((rc = opt_us(d, i, js, "timestamp", &ts)) != 0 ||
        (rc = opt_us(d, i, js, "duration", &dur)) != 0) {
        return rc;
    }
    /* The store orders and retains by start time, so a span without one (a late "finish"
     * fragment of an incomplete span) cannot be kept. */
    if (ts < 0) {
        return fail(d, i, "%s is required", "timestamp");
    }
    if (dur < 0) {
        dur = 0;
    }
    if (ts > US_MAX - dur) {
        return fail(d, i, "%s too large", "timestamp + duration");
    }
    sp->start_ns = ts * 1000;
    sp->end_ns = (ts + dur) * 1000;

    endpoint_t local, remote;
    bool debug, shared;
    if ((rc = endpoint_decode(d, i, js, "localEndpoint", &local)) != 0 ||
        (rc = endpoint_decode(d, i, js, "remoteEndpoint", &remote)) != 0 ||
        (rc = opt_bool(d, i, js, "debug", &debug)) != 0 ||
        (rc = opt_bool(d, i, js, "shared", &shared)) != 0) {
        return rc;
    }

    const json_t *tags = json_object_get(js, "tags");
    if (tags != NULL && !json_is_null(tags) && !json_is_object(tags)) {
        return fail(d, i, "%s must be an object", "tags");
    }
    size_t ntags = json_is_object(tags) ? json_object_size(tags) : 0;
    attrs_t at = {NULL, 0, ntags + 6};
    at.a = wf_arena_alloc_checked(d->arena, at.cap * sizeof(st_attr_t));
    if (at.a == NULL) {
        return fail(d, i, "%s", "request too large");
    }
    if (ntags > 0) {
        const char *key;
        json_t *v;
        json_object_foreach((json_t *)tags, key, v)
        {
            if (!json_is_string(v)) {
                return fail(d, i, "tag %s must be a string", key);
            }
            attr_str(&at, wf_arena_strndup(d->arena, key, strlen(key)), jstr(d, v));
            if (strcmp(key, "otel.status_code") == 0) {
                if (strcmp(json_string_value(v), "ERROR") == 0) {
                    sp->status_code = ST_STATUS_ERROR;
                } else if (strcmp(json_string_value(v), "OK") == 0 &&
                           sp->status_code == ST_STATUS_UNSET) {
                    sp->status_code = ST_STATUS_OK;
                }
            } else if (strcmp(key, "error") == 0) {
                sp->status_code = ST_STATUS_ERROR;
                sp->status_message = jstr(d, v);
            }
        }
    }
    if (nonempty(remote.service)) {
        attr_str(&at, K_PEER_SERVICE, jstr(d, remote.service));
    }
    if (nonempty(remote.ipv4)) {
        attr_str(&at, K_PEER_IP, jstr(d, remote.ipv4));
    }
    if (nonempty(remote.ipv6)) {
        attr_str(&at, K_PEER_IP6, jstr(d, remote.ipv6));
    }
    if (remote.port > 0) {
        attr_int(&at, K_PEER_PORT, remote.port);
    }
    if (debug) {
        attr_bool(&at, K_DEBUG, true);
    }
    if (shared) {
        attr_bool(&at, K_SHARED, true);
    }
    sp->attrs = at.a;
    sp->n_attrs = at.n;

    attrs_t res = {wf_arena_alloc(d->arena, 4 * sizeof(st_attr_t)), 0, 4};
    if (nonempty(local.service)) {
        sp->service = jstr(d, local.service);
        attr_str(&res, K_SERVICE_NAME, sp->service);
    }
    if (nonempty(local.ipv4)) {
        attr_str(&res, K_HOST_IP, jstr(d, local.ipv4));
    }
    if (nonempty(local.ipv6)) {
        attr_str(&res, K_HOST_IP6, jstr(d, local.ipv6));
    }
    if (local.port > 0) {
        attr_int(&res, K_HOST_PORT, local.port);
    }
    sp->resource_attrs = res.a;
    sp->n_resource_attrs = res.n;

    const json_t *ann = json_object_get(js, "annotations");
    if (ann != NULL && !json_is_null(ann)) {
        if (!json_is_array(ann)) {
            return fail(d, i, "%s must be an array", "annotations");
        }
        size_t n = json_array_size(ann);
        st_span_event_t *ev = wf_arena_alloc_checked(d->arena, (n + 1) * sizeof(*ev));
        if (ev == NULL) {
            return fail(d, i, "%s", "request too large");
        }
        for (size_t j = 0; j < n; j++) {
            const json_t *a = json_array_get(ann, j);
            const json_t *val;
            int64_t ats;
            if (!json_is_object(a)) {
                return fail(d, i, "%s", "annotations must be objects");
            }
            if ((rc = opt_str(d, i, a, "value", &val)) != 0 ||
                (rc = opt_us(d, i, a, "timestamp", &ats)) != 0) {
                return rc;
            }
            if (val == NULL || ats < 0) {
                return fail(d, i, "%s", "an annotation needs timestamp and value");
            }
            memset(&ev[j], 0, sizeof(ev[j]));
            ev[j].time_ns = ats * 1000;
            ev[j].name = jstr(d, val);
        }
        sp->events = ev;
        sp->n_events = n;
    }
    return 0;
}

typedef struct {
    const st_span_t *spans;
    size_t n;
    size_t bad;
} spans_job_t;

static int spans_job_cb(col_write_t *w, st_store_t *s)
{
    spans_job_t *j = w->arg;
    j->bad = 0;
    return st_spans_append(s, j->spans, j->n, &j->bad);
}

int col_zipkin_decode(const uint8_t *body, size_t len, wf_arena_t *arena, st_span_t **out,
                      size_t *n_out, char *err, size_t errlen)
{
    json_error_t jerr;
    dec_t d = {arena, err, errlen};
    int rc = 0;
    *out = NULL;
    *n_out = 0;
    json_t *root = json_loadb((const char *)body, len, 0, &jerr);
    if (root == NULL) {
        snprintf(err, errlen, "malformed JSON: %s (line %d, column %d)", jerr.text, jerr.line,
                 jerr.column);
        return WF_E_INVAL;
    }
    if (!json_is_array(root)) {
        snprintf(err, errlen, "expected a JSON array of spans");
        rc = WF_E_INVAL;
        goto out;
    }
    size_t n = json_array_size(root);
    st_span_t *spans = wf_arena_alloc_checked(arena, (n + 1) * sizeof(*spans));
    if (spans == NULL) {
        snprintf(err, errlen, "too many spans");
        rc = WF_E_LIMIT;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        rc = span_decode(&d, i, json_array_get(root, i), &spans[i]);
        if (rc != 0) {
            goto out;
        }
    }
    *out = spans;
    *n_out = n;
out:
    json_decref(root);
    return rc;
}

void col_zipkin_spans_handler(void *writer, col_req_t *req, col_resp_t *resp)
{
    char err[300];
    st_span_t *spans;
    size_t n;
    int rc = col_zipkin_decode(req->body, req->body_len, req->arena, &spans, &n, err, sizeof(err));
    if (rc != 0) {
        col_resp_text(resp, rc == WF_E_LIMIT ? 413 : 400, "%s", err);
        return;
    }
    if (n > 0) {
        spans_job_t job = {spans, n, 0};
        col_write_t w;
        memset(&w, 0, sizeof(w));
        w.spans = spans_job_cb;
        w.arg = &job;
        w.est_bytes = req->body_len; /* for the write queue's byte budget */
        rc = col_writer_submit(writer, &w);
        switch (rc) {
        case 0:
            break;
        case ST_E_SPAN_LIMIT:
        case ST_E_BATCH_LIMIT:
            col_resp_text(resp, 413, "span %zu: %s", job.bad, st_strerror(rc));
            return;
        case ST_E_SPAN_INVALID:
        case ST_E_TIMESTAMP:
        case ST_E_TOO_OLD:
        case ST_E_TOO_NEW:
            col_resp_text(resp, 400, "span %zu: %s", job.bad, st_strerror(rc));
            return;
        default:
            if (rc != COL_E_BUSY) {
                WF_LOG_RL(WF_ERROR, 1, "zipkin", "store write failed", "err=\"%s\"",
                          col_writer_strerror(rc));
            }
            col_resp_write_failed(resp, rc);
            return;
        }
    }
    resp->status = 202;
    resp->content_type = "text/plain; charset=utf-8";
}

/* ---------------------------------------------------------------------------------------- */
/* Reading                                                                                  */

static void put_trace_id(wf_buf_t *b, const uint8_t id[16])
{
    wf_buf_putc(b, '"');
    if (all_zero(id, 8)) {
        wf_buf_put_hex(b, id + 8, 8);
    } else {
        wf_buf_put_hex(b, id, 16);
    }
    wf_buf_putc(b, '"');
}

static void put_span_id(wf_buf_t *b, const uint8_t id[8])
{
    wf_buf_putc(b, '"');
    wf_buf_put_hex(b, id, 8);
    wf_buf_putc(b, '"');
}

/* A name as JSON, lowercased (ASCII) when lower: Zipkin's own server lowercases span and
 * service names (its model's builders do). */
static void put_name(wf_buf_t *b, const char *p, size_t n, bool lower)
{
    if (!lower) {
        col_json_str(b, p, n);
        return;
    }
    wf_buf_t t = WF_BUF_INIT;
    wf_buf_append(&t, p, n);
    for (size_t i = 0; i < t.len; i++) {
        if (t.data[i] >= 'A' && t.data[i] <= 'Z') {
            t.data[i] = (uint8_t)(t.data[i] - 'A' + 'a');
        }
    }
    col_json_str(b, (const char *)t.data, t.len);
    wf_buf_free(&t);
}

static bool key_is(wf_str_t k, const char *s)
{
    size_t n = strlen(s);
    return k.len == n && memcmp(k.p, s, n) == 0;
}

static const st_attr_t *find_attr(const st_attr_t *a, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++) {
        if (key_is(a[i].key, key)) {
            return &a[i];
        }
    }
    return NULL;
}

/* The first attribute named key that has type t, or NULL. */
static const st_attr_t *find_typed(const st_attr_t *a, size_t n, const char *key, st_value_type_t t)
{
    for (size_t i = 0; i < n; i++) {
        if (a[i].value.type == t && key_is(a[i].key, key)) {
            return &a[i];
        }
    }
    return NULL;
}

static void put_tag(wf_buf_t *b, bool *first, wf_str_t key, const st_value_t *v)
{
    wf_buf_puts(b, *first ? "" : ",");
    *first = false;
    col_json_str(b, key.p, key.len);
    wf_buf_putc(b, ':');
    /* Zipkin tags are strings: every value as its text (col_spanval.h) */
    wf_buf_t t;
    wf_buf_init(&t);
    col_spanval_text(&t, v);
    col_json_str(b, (const char *)t.data, t.len);
    wf_buf_free(&t);
}

/* Is attribute a one that the remote endpoint or a flag shows (so not a tag)? The first one of
 * each key with the expected type is; anything else stays a tag, so that no data is hidden. */
static bool mapped_attr(const st_attr_t *attrs, size_t n, const st_attr_t *a)
{
    static const struct {
        const char *key;
        st_value_type_t type;
    } keys[] = {{K_PEER_SERVICE, ST_VAL_STRING}, {K_PEER_IP, ST_VAL_STRING},
                {K_PEER_IP6, ST_VAL_STRING},     {K_PEER_PORT, ST_VAL_INT},
                {K_DEBUG, ST_VAL_BOOL},          {K_SHARED, ST_VAL_BOOL}};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        if (key_is(a->key, keys[i].key)) {
            return find_typed(attrs, n, keys[i].key, keys[i].type) == a;
        }
    }
    return false;
}

/* An endpoint object from the attributes named by the keys, or nothing when none is set. */
static void put_endpoint(wf_buf_t *b, const char *member, wf_str_t service, const st_attr_t *a,
                         size_t n, const char *kip, const char *kip6, const char *kport, bool lower)
{
    const st_attr_t *ip = find_typed(a, n, kip, ST_VAL_STRING);
    const st_attr_t *ip6 = find_typed(a, n, kip6, ST_VAL_STRING);
    const st_attr_t *port = find_typed(a, n, kport, ST_VAL_INT);
    if (service.len == 0 && ip == NULL && ip6 == NULL && port == NULL) {
        return;
    }
    wf_buf_printf(b, ",\"%s\":{", member);
    const char *sep = "";
    if (service.len > 0) {
        wf_buf_puts(b, "\"serviceName\":");
        put_name(b, service.p, service.len, lower);
        sep = ",";
    }
    if (ip != NULL) {
        wf_buf_printf(b, "%s\"ipv4\":", sep);
        col_json_str(b, ip->value.u.s.p, ip->value.u.s.len);
        sep = ",";
    }
    if (ip6 != NULL) {
        wf_buf_printf(b, "%s\"ipv6\":", sep);
        col_json_str(b, ip6->value.u.s.p, ip6->value.u.s.len);
        sep = ",";
    }
    if (port != NULL) {
        wf_buf_printf(b, "%s\"port\":%" PRId64, sep, port->value.u.i);
    }
    wf_buf_putc(b, '}');
}

/* One span in Zipkin v2 JSON, members in the order Zipkin writes them. */
static void span_json(wf_buf_t *b, const st_span_t *sp, bool lower)
{
    static const char *const kinds[] = {NULL, NULL, "SERVER", "CLIENT", "PRODUCER", "CONSUMER"};
    wf_buf_puts(b, "{\"traceId\":");
    put_trace_id(b, sp->trace_id);
    if (!all_zero(sp->parent_span_id, 8)) {
        wf_buf_puts(b, ",\"parentId\":");
        put_span_id(b, sp->parent_span_id);
    }
    wf_buf_puts(b, ",\"id\":");
    put_span_id(b, sp->span_id);
    if ((unsigned)sp->kind < 6 && kinds[sp->kind] != NULL) {
        wf_buf_printf(b, ",\"kind\":\"%s\"", kinds[sp->kind]);
    }
    if (sp->name.len > 0) {
        wf_buf_puts(b, ",\"name\":");
        put_name(b, sp->name.p, sp->name.len, lower);
    }
    int64_t ts = sp->start_ns / 1000;
    int64_t dur = (sp->end_ns - sp->start_ns) / 1000;
    wf_buf_printf(b, ",\"timestamp\":%" PRId64, ts);
    if (dur > 0) {
        wf_buf_printf(b, ",\"duration\":%" PRId64, dur);
    }
    const st_attr_t *a = sp->attrs;
    size_t n = sp->n_attrs;
    wf_str_t service = sp->service;
    if (key_is(service, "unknown_service") &&
        find_attr(sp->resource_attrs, sp->n_resource_attrs, K_SERVICE_NAME) == NULL) {
        service = (wf_str_t){"", 0};
    }
    put_endpoint(b, "localEndpoint", service, sp->resource_attrs, sp->n_resource_attrs, K_HOST_IP,
                 K_HOST_IP6, K_HOST_PORT, lower);
    const st_attr_t *peer = find_typed(a, n, K_PEER_SERVICE, ST_VAL_STRING);
    wf_str_t rsvc = peer != NULL ? peer->value.u.s : (wf_str_t){"", 0};
    put_endpoint(b, "remoteEndpoint", rsvc, a, n, K_PEER_IP, K_PEER_IP6, K_PEER_PORT, lower);
    if (sp->n_events > 0) {
        wf_buf_puts(b, ",\"annotations\":[");
        for (size_t i = 0; i < sp->n_events; i++) {
            wf_buf_printf(b, "%s{\"timestamp\":%" PRId64 ",\"value\":", i > 0 ? "," : "",
                          sp->events[i].time_ns / 1000);
            col_json_str(b, sp->events[i].name.p, sp->events[i].name.len);
            wf_buf_putc(b, '}');
        }
        wf_buf_putc(b, ']');
    }
    bool first = true;
    size_t mark = b->len;
    wf_buf_puts(b, ",\"tags\":{");
    for (size_t i = 0; i < n; i++) {
        if (!mapped_attr(a, n, &a[i])) {
            put_tag(b, &first, a[i].key, &a[i].value);
        }
    }
    /* Spans from OTLP carry their status in the model, not as tags: show it as the OTel
     * Zipkin exporter would. */
    if (sp->status_code == ST_STATUS_ERROR && find_attr(a, n, "otel.status_code") == NULL &&
        find_attr(a, n, "error") == NULL) {
        st_value_t v = {.type = ST_VAL_STRING, .u.s = WF_STR_LIT("ERROR")};
        put_tag(b, &first, WF_STR_LIT("otel.status_code"), &v);
        v.u.s = sp->status_message;
        put_tag(b, &first, WF_STR_LIT("error"), &v);
    }
    if (first) {
        b->len = mark;
    } else {
        wf_buf_putc(b, '}');
    }
    const st_attr_t *dbg = find_typed(a, n, K_DEBUG, ST_VAL_BOOL);
    if (dbg != NULL && dbg->value.u.b) {
        wf_buf_puts(b, ",\"debug\":true");
    }
    const st_attr_t *sh = find_typed(a, n, K_SHARED, ST_VAL_BOOL);
    if (sh != NULL && sh->value.u.b) {
        wf_buf_puts(b, ",\"shared\":true");
    }
    wf_buf_putc(b, '}');
}

void col_zipkin_span_json(wf_buf_t *b, const st_span_t *sp)
{
    span_json(b, sp, false);
}

static void put_trace(wf_buf_t *b, const st_span_list_t *l, bool lower)
{
    wf_buf_putc(b, '[');
    for (size_t i = 0; i < l->n; i++) {
        if (i > 0) {
            wf_buf_putc(b, ',');
        }
        span_json(b, &l->spans[i], lower);
    }
    wf_buf_putc(b, ']');
}

static void store_error(col_resp_t *resp, int rc)
{
    WF_LOG_RL(WF_ERROR, 1, "zipkin", "store read failed", "err=\"%s\"", st_strerror(rc));
    col_resp_text(resp, 500, "store read failed: %s", st_strerror(rc));
}

/* A sorted array of unique strings. */
static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The names sorted and distinct; lower: lowercased first (in place), as Zipkin names. */
static void put_names(wf_buf_t *b, char **names, size_t n, bool lower)
{
    for (size_t i = 0; lower && i < n; i++) {
        for (char *c = names[i]; *c != '\0'; c++) {
            if (*c >= 'A' && *c <= 'Z') {
                *c = (char)(*c - 'A' + 'a');
            }
        }
    }
    qsort(names, n, sizeof(*names), cmp_str);
    wf_buf_putc(b, '[');
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && strcmp(names[i], names[i - 1]) == 0) {
            continue;
        }
        if (k++ > 0) {
            wf_buf_putc(b, ',');
        }
        col_json_str(b, names[i], strlen(names[i]));
    }
    wf_buf_putc(b, ']');
}

static void services_view(void *arg, col_req_t *req, col_resp_t *resp)
{
    const view_t *v = arg;
    st_store_t *store = v->store;
    st_strlist_t *l = NULL;
    int rc = st_services(store, &l);
    if (rc != 0) {
        store_error(resp, rc);
        return;
    }
    size_t n = st_strlist_len(l);
    char **names = wf_arena_alloc(req->arena, (n + 1) * sizeof(char *));
    for (size_t i = 0; i < n; i++) {
        wf_str_t name = st_strlist_get(l, i);
        names[i] = wf_arena_strndup(req->arena, name.p, name.len);
    }
    put_names(&resp->body, names, n, v->lower);
    st_strlist_free(l);
}

/*
 * The stored name that a Zipkin query's name means (Zipkin lowercases the names it stores and
 * the ones it is asked for; weft keeps them as sent): the one name of
 * names[0..n) equal to want ignoring ASCII case, copied into arena; want itself when there is
 * none or several (then only the exact spelling is found).
 */
static const char *resolve_name(const char *want, wf_str_t (*get)(void *, size_t), void *list,
                                size_t n, wf_arena_t *arena)
{
    const char *found = NULL;
    size_t wl = strlen(want);
    for (size_t i = 0; i < n; i++) {
        wf_str_t v = get(list, i);
        if (v.len != wl || strncasecmp(v.p, want, wl) != 0) {
            continue;
        }
        if (found != NULL && strncmp(found, v.p, wl) != 0) {
            return want;
        }
        found = wf_arena_strndup(arena, v.p, v.len);
    }
    return found != NULL ? found : want;
}

static wf_str_t strlist_at(void *l, size_t i)
{
    return st_strlist_get(l, i);
}

static wf_str_t ops_at(void *l, size_t i)
{
    return wf_str(((st_operation_list_t *)l)->ops[i].name);
}

/* The stored service name for a query's serviceName. */
static const char *resolve_service(st_store_t *store, const char *svc, wf_arena_t *arena)
{
    st_strlist_t *l = NULL;
    if (st_services(store, &l) != 0) {
        return svc;
    }
    const char *r = resolve_name(svc, strlist_at, l, st_strlist_len(l), arena);
    st_strlist_free(l);
    return r;
}

/* The stored span name for a query's spanName within service svc ("" any). */
static const char *resolve_span(st_store_t *store, const char *svc, const char *span,
                                wf_arena_t *arena)
{
    st_operation_list_t *l = NULL;
    if (st_operations(store, wf_str(svc), -1, &l) != 0) {
        return span;
    }
    const char *r = resolve_name(span, ops_at, l, l->n, arena);
    st_operation_list_free(l);
    return r;
}

static const char *required(col_req_t *req, col_resp_t *resp, const char *name)
{
    const char *v = col_req_param(req, name);
    if (v == NULL || v[0] == '\0') {
        col_resp_text(resp, 400, "%s is required", name);
        return NULL;
    }
    return v;
}

static void span_names_view(void *arg, col_req_t *req, col_resp_t *resp)
{
    const view_t *v = arg;
    st_store_t *store = v->store;
    const char *svc = required(req, resp, "serviceName");
    if (svc == NULL) {
        return;
    }
    svc = resolve_service(store, svc, req->arena);
    st_operation_list_t *l = NULL;
    int rc = st_operations(store, wf_str(svc), -1, &l);
    if (rc != 0) {
        store_error(resp, rc);
        return;
    }
    char **names = wf_arena_alloc(req->arena, (l->n + 1) * sizeof(char *));
    for (size_t i = 0; i < l->n; i++) {
        names[i] = l->ops[i].name;
    }
    put_names(&resp->body, names, l->n, v->lower);
    st_operation_list_free(l);
}

/* Parse an optional non-negative integer parameter; false (and a 400) when malformed. */
static bool int_param(col_req_t *req, col_resp_t *resp, const char *name, int64_t *out)
{
    const char *v = col_req_param(req, name);
    if (v == NULL || v[0] == '\0') {
        return true;
    }
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno != 0 || *end != '\0' || x < 0) {
        col_resp_text(resp, 400, "%s must be a non-negative integer", name);
        return false;
    }
    *out = x;
    return true;
}

/* ms -> ns, saturating. */
static int64_t ms_ns(int64_t ms)
{
    return ms > INT64_MAX / 1000000 ? INT64_MAX : ms * 1000000;
}

static void remote_services_view(void *arg, col_req_t *req, col_resp_t *resp)
{
    const view_t *v = arg;
    st_store_t *store = v->store;
    const char *svc = required(req, resp, "serviceName");
    if (svc == NULL) {
        return;
    }
    /* The store has no index of peers: look at the service's recent traces (the same window
     * and bound the Zipkin UI's search uses by default, widened). */
    svc = resolve_service(store, svc, req->arena);
    st_trace_query_t q;
    memset(&q, 0, sizeof(q));
    q.service = wf_str(svc);
    q.span_kind = -1;
    q.limit = 1000;
    st_trace_ids_t *ids = NULL;
    int rc = st_trace_search(store, &q, &ids);
    if (rc != 0) {
        store_error(resp, rc);
        return;
    }
    size_t n = 0, cap = 16;
    char **names = wf_malloc(cap * sizeof(char *));
    for (size_t t = 0; t < ids->n; t++) {
        st_span_list_t *l = NULL;
        if (st_trace_get(store, ids->ids[t], &l) != 0) {
            continue;
        }
        for (size_t i = 0; i < l->n; i++) {
            const st_span_t *sp = &l->spans[i];
            const st_attr_t *p = find_typed(sp->attrs, sp->n_attrs, K_PEER_SERVICE, ST_VAL_STRING);
            if (!key_is(sp->service, svc) || p == NULL || p->value.u.s.len == 0) {
                continue;
            }
            if (n == cap) {
                cap *= 2;
                names = wf_realloc(names, cap * sizeof(char *));
            }
            names[n++] = wf_arena_strndup(req->arena, p->value.u.s.p, p->value.u.s.len);
        }
        st_span_list_free(l);
    }
    put_names(&resp->body, names, n, v->lower);
    wf_free(names);
    st_trace_ids_free(ids);
}

/* Does the trace have a span with an annotation or a tag named term? */
static bool trace_has(const st_span_list_t *l, const char *term)
{
    for (size_t i = 0; i < l->n; i++) {
        const st_span_t *sp = &l->spans[i];
        if (find_attr(sp->attrs, sp->n_attrs, term) != NULL) {
            return true;
        }
        for (size_t e = 0; e < sp->n_events; e++) {
            if (key_is(sp->events[e].name, term)) {
                return true;
            }
        }
    }
    return false;
}

#define MAX_TERMS 16

static void traces_view(void *arg, col_req_t *req, col_resp_t *resp)
{
    const view_t *v = arg;
    st_store_t *store = v->store;
    st_trace_query_t q;
    memset(&q, 0, sizeof(q));
    q.span_kind = -1;
    const char *svc = col_req_param(req, "serviceName");
    const char *span = col_req_param(req, "spanName");
    if (svc != NULL && svc[0] != '\0') {
        svc = resolve_service(store, svc, req->arena);
        q.service = wf_str(svc);
    }
    if (span != NULL && span[0] != '\0' && strcmp(span, "all") != 0) {
        q.operation = wf_str(resolve_span(store, svc != NULL ? svc : "", span, req->arena));
    }
    int64_t min_d = 0, max_d = 0, end_ts = wf_wall_ms(), lookback = DEFAULT_LOOKBACK_MS, limit = 10;
    if (!int_param(req, resp, "minDuration", &min_d) ||
        !int_param(req, resp, "maxDuration", &max_d) || !int_param(req, resp, "endTs", &end_ts) ||
        !int_param(req, resp, "lookback", &lookback) || !int_param(req, resp, "limit", &limit)) {
        return;
    }
    q.min_duration_ns = min_d > US_MAX ? INT64_MAX : min_d * 1000;
    q.max_duration_ns = max_d > US_MAX ? INT64_MAX : max_d * 1000;
    q.start_max_ns = ms_ns(end_ts);
    q.start_min_ns = lookback >= end_ts ? 0 : ms_ns(end_ts - lookback);
    q.limit = limit <= 0 ? 10 : (size_t)(limit > 10000 ? 10000 : limit);

    /* annotationQuery: terms joined by " and "; key=value is a tag filter for the store, a
     * bare key matches a tag or annotation anywhere in the trace. */
    st_tag_filter_t tags[MAX_TERMS];
    const char *bare[MAX_TERMS];
    size_t nbare = 0;
    const char *aq = col_req_param(req, "annotationQuery");
    if (aq != NULL) {
        char *s = wf_arena_strndup(req->arena, aq, strlen(aq));
        while (*s != '\0') {
            char *and = strstr(s, " and ");
            if (and != NULL) {
                *and = '\0';
            }
            while (*s == ' ') {
                s++;
            }
            size_t len = strlen(s);
            while (len > 0 && s[len - 1] == ' ') {
                s[--len] = '\0';
            }
            if (len > 0) {
                if (q.n_tags + nbare == MAX_TERMS) {
                    col_resp_text(resp, 400, "annotationQuery has more than %d terms", MAX_TERMS);
                    return;
                }
                char *eq = strchr(s, '=');
                if (eq != NULL) {
                    tags[q.n_tags].key = (wf_str_t){s, (size_t)(eq - s)};
                    tags[q.n_tags].value = wf_str(eq + 1);
                    q.n_tags++;
                } else {
                    bare[nbare++] = s;
                }
            }
            if (and == NULL) {
                break;
            }
            s = and+5;
        }
    }
    q.tags = tags;
    size_t want = q.limit;
    if (nbare > 0) {
        /* bare terms are checked afterwards: ask for more so that a page is likely full */
        q.limit = want * 4;
    }
    st_trace_ids_t *ids = NULL;
    int rc = st_trace_search(store, &q, &ids);
    if (rc != 0) {
        store_error(resp, rc);
        return;
    }
    wf_buf_t *b = &resp->body;
    wf_buf_putc(b, '[');
    size_t k = 0;
    for (size_t t = 0; t < ids->n && k < want; t++) {
        st_span_list_t *l = NULL;
        if (st_trace_get(store, ids->ids[t], &l) != 0) {
            continue;
        }
        bool ok = true;
        for (size_t j = 0; j < nbare && ok; j++) {
            ok = trace_has(l, bare[j]);
        }
        if (ok) {
            if (k++ > 0) {
                wf_buf_putc(b, ',');
            }
            put_trace(b, l, v->lower);
        }
        st_span_list_free(l);
    }
    wf_buf_putc(b, ']');
    st_trace_ids_free(ids);
}

static void trace_view(void *arg, col_req_t *req, col_resp_t *resp)
{
    const view_t *v = arg;
    st_store_t *store = v->store;
    static const char prefix[] = "/api/v2/trace/";
    const char *id = req->path;
    if (strncmp(id, prefix, sizeof(prefix) - 1) == 0) {
        id += sizeof(prefix) - 1;
    }
    uint8_t tid[16];
    if (!trace_id_decode(id, strlen(id), tid) || all_zero(tid, 16)) {
        col_resp_text(resp, 400, "trace id must be 16 or 32 hex digits");
        return;
    }
    st_span_list_t *l = NULL;
    int rc = st_trace_get(store, tid, &l);
    if (rc == WF_E_NOTFOUND) {
        col_resp_text(resp, 404, "trace %s not found", id);
        return;
    }
    if (rc != 0) {
        store_error(resp, rc);
        return;
    }
    put_trace(&resp->body, l, v->lower);
    st_span_list_free(l);
}

#define TRACE_MANY_MAX 1000 /* trace IDs one traceMany request may ask for */

/* GET /api/v2/traceMany?traceIds=a,b,...: every trace of the list that exists, in the order
 * asked (duplicates once), as a list of traces; at least two IDs, as Zipkin requires (one is
 * /api/v2/trace/{id}). */
static void trace_many_view(void *arg, col_req_t *req, col_resp_t *resp)
{
    const view_t *v = arg;
    const char *list = col_req_param(req, "traceIds");
    if (list == NULL || *list == '\0') {
        col_resp_text(resp, 400, "traceIds is required");
        return;
    }
    uint8_t(*ids)[16] = wf_malloc(TRACE_MANY_MAX * sizeof(*ids));
    size_t n = 0;
    for (const char *p = list;;) {
        size_t len = strcspn(p, ",");
        uint8_t tid[16];
        if (!trace_id_decode(p, len, tid) || all_zero(tid, 16)) {
            col_resp_text(resp, 400, "traceIds: \"%.*s\" is not a trace ID (16 or 32 hex digits)",
                          (int)(len > 64 ? 64 : len), p);
            goto out;
        }
        bool seen = false;
        for (size_t i = 0; i < n && !seen; i++) {
            seen = memcmp(ids[i], tid, 16) == 0;
        }
        if (!seen) {
            if (n == TRACE_MANY_MAX) {
                col_resp_text(resp, 400, "traceIds: more than %d trace IDs", TRACE_MANY_MAX);
                goto out;
            }
            memcpy(ids[n++], tid, 16);
        }
        if (p[len] == '\0') {
            break;
        }
        p += len + 1;
    }
    if (n < 2) {
        col_resp_text(resp, 400,
                      "traceIds: at least two unique trace IDs (one: /api/v2/trace/{traceId})");
        goto out;
    }
    wf_buf_t *b = &resp->body;
    wf_buf_putc(b, '[');
    size_t written = 0;
    for (size_t i = 0; i < n; i++) {
        st_span_list_t *l = NULL;
        int rc = st_trace_get(v->store, ids[i], &l);
        if (rc == WF_E_NOTFOUND) {
            continue;
        }
        if (rc != 0) {
            wf_buf_reset(b);
            store_error(resp, rc);
            goto out;
        }
        if (written++ > 0) {
            wf_buf_putc(b, ',');
        }
        put_trace(b, l, v->lower);
        st_span_list_free(l);
    }
    wf_buf_putc(b, ']');
out:
    wf_free(ids);
}

static void dependencies_view(void *arg, col_req_t *req, col_resp_t *resp)
{
    const view_t *v = arg;
    st_store_t *store = v->store;
    int64_t end_ts = -1, lookback = -1;
    if (!int_param(req, resp, "endTs", &end_ts) || !int_param(req, resp, "lookback", &lookback)) {
        return;
    }
    if (end_ts < 0) {
        col_resp_text(resp, 400, "endTs is required");
        return;
    }
    /* Zipkin: lookback defaults to endTs, i.e. everything before endTs. */
    int64_t from = lookback < 0 || lookback >= end_ts ? 0 : ms_ns(end_ts - lookback);
    st_dependency_list_t *l = NULL;
    int rc = st_dependencies(store, from, ms_ns(end_ts), &l);
    if (rc != 0) {
        store_error(resp, rc);
        return;
    }
    wf_buf_t *b = &resp->body;
    wf_buf_putc(b, '[');
    for (size_t i = 0; i < l->n; i++) {
        wf_buf_puts(b, i > 0 ? ",{\"parent\":" : "{\"parent\":");
        put_name(b, l->deps[i].parent, strlen(l->deps[i].parent), v->lower);
        wf_buf_puts(b, ",\"child\":");
        put_name(b, l->deps[i].child, strlen(l->deps[i].child), v->lower);
        wf_buf_printf(b, ",\"callCount\":%" PRIu64, l->deps[i].call_count);
        /* Zipkin writes errorCount only when there were errors */
        if (l->deps[i].error_count > 0) {
            wf_buf_printf(b, ",\"errorCount\":%" PRIu64, l->deps[i].error_count);
        }
        wf_buf_putc(b, '}');
    }
    wf_buf_putc(b, ']');
    st_dependency_list_free(l);
}

void col_zipkin_autocomplete_keys_handler(void *arg, col_req_t *req, col_resp_t *resp)
{
    col_zipkin_t *z = arg;
    char **keys = wf_arena_alloc(req->arena, (z->n_ac_keys + 1) * sizeof(char *));
    for (size_t i = 0; i < z->n_ac_keys; i++) {
        keys[i] = z->ac_keys[i];
    }
    put_names(&resp->body, keys, z->n_ac_keys, false);
}

/* Append sp's values of key (as tag text) to the growing list *names (strings in arena). */
static void collect_values(const st_span_t *sp, const char *key, wf_arena_t *arena, char ***names,
                           size_t *n, size_t *cap, wf_buf_t *tmp)
{
    for (size_t i = 0; i < sp->n_attrs; i++) {
        if (!key_is(sp->attrs[i].key, key)) {
            continue;
        }
        wf_buf_reset(tmp);
        col_spanval_text(tmp, &sp->attrs[i].value);
        if (*n == *cap) {
            *cap *= 2;
            *names = wf_realloc(*names, *cap * sizeof(char *));
        }
        (*names)[(*n)++] = wf_arena_strndup(arena, (const char *)tmp->data, tmp->len);
    }
}

void col_zipkin_autocomplete_values_handler(void *arg, col_req_t *req, col_resp_t *resp)
{
    col_zipkin_t *z = arg;
    const char *key = required(req, resp, "key");
    if (key == NULL) {
        return;
    }
    bool configured = false;
    for (size_t i = 0; i < z->n_ac_keys && !configured; i++) {
        configured = strcmp(z->ac_keys[i], key) == 0;
    }
    if (!configured) {
        /* Zipkin only indexes the values of configured keys */
        wf_buf_puts(&resp->body, "[]");
        return;
    }
    st_trace_query_t q;
    memset(&q, 0, sizeof(q));
    q.span_kind = -1;
    q.limit = COL_ZIPKIN_AUTOCOMPLETE_SCAN;
    st_trace_ids_t *ids = NULL;
    int rc = st_trace_search(z->store, &q, &ids);
    if (rc != 0) {
        store_error(resp, rc);
        return;
    }
    size_t n = 0, cap = 16;
    char **names = wf_malloc(cap * sizeof(char *));
    wf_buf_t tmp = WF_BUF_INIT;
    for (size_t t = 0; t < ids->n; t++) {
        st_span_list_t *l = NULL;
        if (st_trace_get(z->store, ids->ids[t], &l) != 0) {
            continue;
        }
        for (size_t i = 0; i < l->n; i++) {
            collect_values(&l->spans[i], key, req->arena, &names, &n, &cap, &tmp);
        }
        st_span_list_free(l);
    }
    put_names(&resp->body, names, n, false);
    wf_buf_free(&tmp);
    wf_free(names);
    st_trace_ids_free(ids);
}

/* The public handlers: the views with names as stored. */
#define PUBLIC_HANDLER(name)                                                                       \
    void col_zipkin_##name##_handler(void *store, col_req_t *req, col_resp_t *resp)                \
    {                                                                                              \
        view_t v = {store, false};                                                                 \
        name##_view(&v, req, resp);                                                                \
    }

PUBLIC_HANDLER(services)
PUBLIC_HANDLER(span_names)
PUBLIC_HANDLER(remote_services)
PUBLIC_HANDLER(traces)
PUBLIC_HANDLER(trace)
PUBLIC_HANDLER(trace_many)
PUBLIC_HANDLER(dependencies)

#undef PUBLIC_HANDLER

/* ---------------------------------------------------------------------------------------- */

/* GET and POST share the path /api/v2/spans, hence one route and this dispatch. */
static void spans_route_cb(void *arg, col_req_t *req, col_resp_t *resp)
{
    col_zipkin_t *z = arg;
    if (strcmp(req->method, "POST") == 0) {
        col_zipkin_spans_handler(z->writer, req, resp);
    } else {
        span_names_view(&z->view, req, resp);
    }
}

/* Split the comma-separated keys (blanks around them ignored) into z->ac_keys. */
static void set_autocomplete_keys(col_zipkin_t *z, const char *list)
{
    for (const char *p = list; p != NULL && *p != '\0';) {
        const char *end = strchr(p, ',');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        const char *k = p;
        while (len > 0 && (*k == ' ' || *k == '\t')) {
            k++;
            len--;
        }
        while (len > 0 && (k[len - 1] == ' ' || k[len - 1] == '\t')) {
            len--;
        }
        if (len > 0) {
            z->ac_keys = wf_realloc(z->ac_keys, (z->n_ac_keys + 1) * sizeof(char *));
            char *c = wf_malloc(len + 1);
            memcpy(c, k, len);
            c[len] = '\0';
            z->ac_keys[z->n_ac_keys++] = c;
        }
        p = end != NULL ? end + 1 : NULL;
    }
    if (z->n_ac_keys > 0) {
        qsort(z->ac_keys, z->n_ac_keys, sizeof(char *), cmp_str);
    }
}

col_zipkin_t *col_zipkin_register(col_http_t *h, col_writer_t *writer, st_store_t *store)
{
    return col_zipkin_register_opts(h, writer, store, NULL);
}

col_zipkin_t *col_zipkin_register_opts(col_http_t *h, col_writer_t *writer, st_store_t *store,
                                       const col_zipkin_options_t *o)
{
    col_zipkin_t *z = wf_calloc(1, sizeof(*z));
    z->writer = writer;
    z->store = store;
    z->view.store = store;
    z->view.lower = o != NULL && o->lowercase_names;
    set_autocomplete_keys(z, o != NULL ? o->autocomplete_keys : NULL);
    int rc = col_http_route(h, "GET POST", "/api/v2/spans", false, COL_ZIPKIN_MAX_BODY,
                            spans_route_cb, z);
    rc |= col_http_route(h, "GET", "/api/v2/services", false, 0, services_view, &z->view);
    rc |= col_http_route(h, "GET", "/api/v2/remoteServices", false, 0, remote_services_view,
                         &z->view);
    rc |= col_http_route(h, "GET", "/api/v2/traces", false, 0, traces_view, &z->view);
    rc |= col_http_route(h, "GET", "/api/v2/trace/", true, 0, trace_view, &z->view);
    rc |= col_http_route(h, "GET", "/api/v2/traceMany", false, 0, trace_many_view, &z->view);
    rc |= col_http_route(h, "GET", "/api/v2/dependencies", false, 0, dependencies_view, &z->view);
    rc |= col_http_route(h, "GET", "/api/v2/autocompleteKeys", false, 0,
                         col_zipkin_autocomplete_keys_handler, z);
    rc |= col_http_route(h, "GET", "/api/v2/autocompleteValues", false, 0,
                         col_zipkin_autocomplete_values_handler, z);
    if (rc != 0) {
        WF_LOG(WF_ERROR, "zipkin", "cannot add routes", "err=%d", rc);
    }
    return z;
}

void col_zipkin_free(col_zipkin_t *z)
{
    if (z == NULL) {
        return;
    }
    for (size_t i = 0; i < z->n_ac_keys; i++) {
        wf_free(z->ac_keys[i]);
    }
    wf_free(z->ac_keys);
    wf_free(z);
}
