/*
 * col_jaeger_v3.c - Jaeger api_v3 over HTTP: services, operations, trace by id and trace search
 * from the span store, traces written as OTLP JSON (protojson: camelCase, hex ids, enums as
 * integers, 64-bit integers as strings) inside the grpc-gateway's {"result":...} wrapper.
 */
#include "col_jaeger_v3.h"

#include "col_api.h"
#include "col_jaeger.h"
#include "col_spanval.h"
#include "col_trace_adjust.h"
#include "wf_alloc.h"
#include "wf_err.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define V3_MAX_TAGS 32
#define V3_DEFAULT_TRACES 20
#define V3_MAX_TRACES 1000

/* The gateway's error body; status doubles as httpCode. */
static void v3_error(col_resp_t *resp, unsigned status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void v3_error(col_resp_t *resp, unsigned status, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    resp->status = status;
    wf_buf_reset(&resp->body);
    wf_buf_printf(&resp->body, "{\"error\":{\"httpCode\":%u,\"message\":", status);
    col_json_str(&resp->body, msg, strlen(msg));
    wf_buf_puts(&resp->body, "}}");
}

static void v3_hex(wf_buf_t *b, const uint8_t *p, size_t n)
{
    wf_buf_putc(b, '"');
    wf_buf_put_hex(b, p, n);
    wf_buf_putc(b, '"');
}

static bool v3_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] != 0) {
            return false;
        }
    }
    return true;
}

static void v3_kv(wf_buf_t *b, const char *key, size_t klen, const st_value_t *v)
{
    wf_buf_puts(b, "{\"key\":");
    col_json_str(b, key, klen);
    wf_buf_puts(b, ",\"value\":");
    col_spanval_otlp(b, v);
    wf_buf_putc(b, '}');
}

/* "attributes":[...] without the attribute named skip (NULL: none skipped). */
static void v3_attrs(wf_buf_t *b, const st_attr_t *a, size_t n, bool first, const char *skip)
{
    for (size_t i = 0; i < n; i++) {
        if (skip != NULL && wf_str_eq(a[i].key, wf_str(skip))) {
            continue;
        }
        if (!first) {
            wf_buf_putc(b, ',');
        }
        first = false;
        v3_kv(b, a[i].key.p, a[i].key.len, &a[i].value);
    }
}

/* The resource object; service.name comes from the span's service so that it is never lost. */
static void v3_resource(wf_buf_t *b, const st_span_t *sp)
{
    st_value_t svc = {.type = ST_VAL_STRING, .u.s = sp->service};
    wf_buf_puts(b, "{\"attributes\":[");
    v3_kv(b, "service.name", strlen("service.name"), &svc);
    v3_attrs(b, sp->resource_attrs, sp->n_resource_attrs, false, "service.name");
    wf_buf_puts(b, "]}");
}

static void v3_span(wf_buf_t *b, const st_span_t *sp)
{
    wf_buf_puts(b, "{\"traceId\":");
    v3_hex(b, sp->trace_id, 16);
    wf_buf_puts(b, ",\"spanId\":");
    v3_hex(b, sp->span_id, 8);
    if (sp->trace_state.len > 0) {
        wf_buf_puts(b, ",\"traceState\":");
        col_json_str(b, sp->trace_state.p, sp->trace_state.len);
    }
    if (!v3_zero(sp->parent_span_id, 8)) {
        wf_buf_puts(b, ",\"parentSpanId\":");
        v3_hex(b, sp->parent_span_id, 8);
    }
    if (sp->flags != 0) {
        wf_buf_printf(b, ",\"flags\":%" PRIu32, sp->flags);
    }
    wf_buf_puts(b, ",\"name\":");
    col_json_str(b, sp->name.p, sp->name.len);
    wf_buf_printf(b,
                  ",\"kind\":%d,\"startTimeUnixNano\":\"%" PRId64
                  "\",\"endTimeUnixNano\":\"%" PRId64 "\",\"attributes\":[",
                  (int)sp->kind, sp->start_ns, sp->end_ns);
    v3_attrs(b, sp->attrs, sp->n_attrs, true, NULL);
    wf_buf_puts(b, "],\"events\":[");
    for (size_t i = 0; i < sp->n_events; i++) {
        const st_span_event_t *e = &sp->events[i];
        wf_buf_printf(b, "%s{\"timeUnixNano\":\"%" PRId64 "\",\"name\":", i ? "," : "", e->time_ns);
        col_json_str(b, e->name.p, e->name.len);
        wf_buf_puts(b, ",\"attributes\":[");
        v3_attrs(b, e->attrs, e->n_attrs, true, NULL);
        wf_buf_puts(b, "]}");
    }
    wf_buf_puts(b, "],\"links\":[");
    for (size_t i = 0; i < sp->n_links; i++) {
        const st_span_link_t *l = &sp->links[i];
        wf_buf_puts(b, i ? ",{\"traceId\":" : "{\"traceId\":");
        v3_hex(b, l->trace_id, 16);
        wf_buf_puts(b, ",\"spanId\":");
        v3_hex(b, l->span_id, 8);
        if (l->trace_state.len > 0) {
            wf_buf_puts(b, ",\"traceState\":");
            col_json_str(b, l->trace_state.p, l->trace_state.len);
        }
        wf_buf_puts(b, ",\"attributes\":[");
        v3_attrs(b, l->attrs, l->n_attrs, true, NULL);
        wf_buf_puts(b, "]}");
    }
    wf_buf_puts(b, "],\"status\":{");
    if (sp->status_message.len > 0) {
        wf_buf_puts(b, "\"message\":");
        col_json_str(b, sp->status_message.p, sp->status_message.len);
        wf_buf_putc(b, ',');
    }
    wf_buf_printf(b, "\"code\":%d}}", (int)sp->status_code);
}

static bool v3_same_scope(const st_span_t *a, const st_span_t *b)
{
    return wf_str_eq(a->scope_name, b->scope_name) && wf_str_eq(a->scope_version, b->scope_version);
}

/*
 * Append l's spans to a resourceSpans array as one entry per distinct resource, one scopeSpans
 * per distinct scope inside it, spans keeping their start-time order. *first tracks commas
 * across traces.
 */
static void v3_trace(wf_buf_t *b, const st_span_list_t *l, bool *first)
{
    size_t n = l->n;
    wf_buf_t res;
    wf_buf_init(&res);
    size_t *off = wf_calloc(n + 1, sizeof(*off));
    bool *done = wf_calloc(n ? n : 1, sizeof(*done));
    for (size_t i = 0; i < n; i++) {
        off[i] = res.len;
        v3_resource(&res, &l->spans[i]);
    }
    off[n] = res.len;
#define V3_SAME_RES(x, y)                                                                          \
    (off[(x) + 1] - off[x] == off[(y) + 1] - off[y] &&                                             \
     memcmp(res.data + off[x], res.data + off[y], off[(x) + 1] - off[x]) == 0)
    for (size_t i = 0; i < n; i++) {
        if (done[i]) {
            continue;
        }
        wf_buf_puts(b, *first ? "{\"resource\":" : ",{\"resource\":");
        *first = false;
        wf_buf_append(b, res.data + off[i], off[i + 1] - off[i]);
        wf_buf_puts(b, ",\"scopeSpans\":[");
        bool first_scope = true;
        for (size_t j = i; j < n; j++) {
            if (done[j] || !V3_SAME_RES(i, j)) {
                continue;
            }
            const st_span_t *sj = &l->spans[j];
            wf_buf_puts(b, first_scope ? "{\"scope\":{\"name\":" : ",{\"scope\":{\"name\":");
            first_scope = false;
            col_json_str(b, sj->scope_name.p, sj->scope_name.len);
            wf_buf_puts(b, ",\"version\":");
            col_json_str(b, sj->scope_version.p, sj->scope_version.len);
            wf_buf_puts(b, "},\"spans\":[");
            bool first_span = true;
            for (size_t k = j; k < n; k++) {
                if (done[k] || !V3_SAME_RES(i, k) || !v3_same_scope(sj, &l->spans[k])) {
                    continue;
                }
                done[k] = true;
                if (!first_span) {
                    wf_buf_putc(b, ',');
                }
                first_span = false;
                v3_span(b, &l->spans[k]);
            }
            wf_buf_puts(b, "]}");
        }
        wf_buf_puts(b, "]}");
    }
#undef V3_SAME_RES
    wf_free(done);
    wf_free(off);
    wf_buf_free(&res);
}

/* Jaeger's span kind name; -1 for "" (any), -2 when unknown. */
static int v3_kind_parse(const char *s)
{
    if (s == NULL || *s == '\0') {
        return -1;
    }
    int k = col__jaeger_kind_from_name(s);
    return k < 0 ? -2 : k;
}

/* The canonical camelCase parameter, else its deprecated snake_case alias (as Jaeger). */
static const char *v3_param(const col_req_t *req, const char *canonical, const char *deprecated,
                            const char **used)
{
    const char *v = col_req_param(req, canonical);
    if (v != NULL && *v != '\0') {
        *used = canonical;
        return v;
    }
    *used = deprecated;
    v = col_req_param(req, deprecated);
    return v != NULL && *v != '\0' ? v : NULL;
}

static void v3_services(void *arg, col_req_t *req, col_resp_t *resp)
{
    (void)req;
    st_strlist_t *l = NULL;
    int rc = st_services(arg, &l);
    if (rc != 0) {
        v3_error(resp, 500, "reading services: error %d", rc);
        return;
    }
    wf_buf_puts(&resp->body, "{\"services\":[");
    for (size_t i = 0; i < st_strlist_len(l); i++) {
        wf_str_t s = st_strlist_get(l, i);
        if (i > 0) {
            wf_buf_putc(&resp->body, ',');
        }
        col_json_str(&resp->body, s.p, s.len);
    }
    wf_buf_puts(&resp->body, "]}");
    st_strlist_free(l);
}

static void v3_operations(void *arg, col_req_t *req, col_resp_t *resp)
{
    const char *used;
    const char *service = col_req_param(req, "service");
    const char *kind_s = v3_param(req, "spanKind", "span_kind", &used);
    int kind = v3_kind_parse(kind_s);
    if (kind == -2) {
        v3_error(resp, 400, "malformed parameter %s: unknown span kind %s", used, kind_s);
        return;
    }
    st_operation_list_t *l = NULL;
    int rc = st_operations(arg, wf_str(service ? service : ""), kind, &l);
    if (rc != 0) {
        v3_error(resp, 500, "reading operations: error %d", rc);
        return;
    }
    wf_buf_puts(&resp->body, "{\"operations\":[");
    for (size_t i = 0; i < l->n; i++) {
        int k = (int)l->ops[i].kind;
        /* Jaeger reports an unspecified kind as internal */
        const char *kn = k >= 1 && k <= 5 ? col__jaeger_kind_name((st_span_kind_t)k) : "internal";
        wf_buf_puts(&resp->body, i ? ",{\"name\":" : "{\"name\":");
        col_json_str(&resp->body, l->ops[i].name, strlen(l->ops[i].name));
        wf_buf_printf(&resp->body, ",\"spanKind\":\"%s\"}", kn);
    }
    wf_buf_puts(&resp->body, "]}");
    st_operation_list_free(l);
}

/* Append the trace's resourceSpans; WF_E_NOTFOUND when the store has none of it. */
static int v3_put_trace(st_store_t *store, const uint8_t id[16], wf_buf_t *b, bool *first)
{
    st_span_list_t *l = NULL;
    int rc = st_trace_get(store, id, &l);
    if (rc != 0) {
        return rc;
    }
    col_trace_adjust(l);
    v3_trace(b, l, first);
    st_span_list_free(l);
    return 0;
}

static void v3_trace_by_id(void *arg, col_req_t *req, col_resp_t *resp)
{
    const char *id_s = req->path + strlen("/api/v3/traces/");
    uint8_t id[16];
    if (col__jaeger_parse_trace_id(id_s, id) != 0 || v3_zero(id, 16)) {
        v3_error(resp, 400, "malformed parameter trace_id: %s is not a hex trace id", id_s);
        return;
    }
    bool first = true;
    wf_buf_puts(&resp->body, "{\"result\":{\"resourceSpans\":[");
    int rc = v3_put_trace(arg, id, &resp->body, &first);
    if (rc == WF_E_NOTFOUND) {
        v3_error(resp, 404, "No traces found");
        return;
    }
    if (rc != 0) {
        v3_error(resp, 500, "reading trace: error %d", rc);
        return;
    }
    wf_buf_puts(&resp->body, "]}}");
}

/* query.attributes: a JSON object of string values, into tags (strings live in *root). */
static int v3_parse_attrs(const char *s, json_t **root, st_tag_filter_t *tags, size_t *ntags,
                          char *err, size_t errlen)
{
    json_error_t je;
    *root = json_loads(s, 0, &je);
    if (*root == NULL || !json_is_object(*root)) {
        snprintf(err, errlen, "not a JSON object");
        return WF_E_INVAL;
    }
    const char *k;
    json_t *v;
    json_object_foreach(*root, k, v)
    {
        if (!json_is_string(v)) {
            snprintf(err, errlen, "value of %s is not a string", k);
            return WF_E_INVAL;
        }
        if (*ntags == V3_MAX_TAGS) {
            snprintf(err, errlen, "more than %d attributes", V3_MAX_TAGS);
            return WF_E_INVAL;
        }
        tags[*ntags].key = wf_str(k);
        tags[*ntags].value = (wf_str_t){json_string_value(v), json_string_length(v)};
        (*ntags)++;
    }
    return 0;
}

static void v3_search(void *arg, col_req_t *req, col_resp_t *resp)
{
    st_tag_filter_t tags[V3_MAX_TAGS];
    json_t *attrs = NULL;
    st_trace_ids_t *ids = NULL;
    char err[256];
    const char *used;
    const char *v;
    st_trace_query_t q = {.span_kind = -1, .limit = V3_DEFAULT_TRACES};

    v = v3_param(req, "query.serviceName", "query.service_name", &used);
    q.service = wf_str(v ? v : "");
    v = v3_param(req, "query.operationName", "query.operation_name", &used);
    q.operation = wf_str(v ? v : "");
    v = col_req_param(req, "query.attributes");
    if (v != NULL && *v != '\0' &&
        v3_parse_attrs(v, &attrs, tags, &q.n_tags, err, sizeof(err)) != 0) {
        v3_error(resp, 400, "malformed parameter query.attributes: %s", err);
        goto out;
    }
    q.tags = tags;

    const char *tmin_used;
    const char *tmin = v3_param(req, "query.startTimeMin", "query.start_time_min", &tmin_used);
    const char *tmax = v3_param(req, "query.startTimeMax", "query.start_time_max", &used);
    if (tmin == NULL || tmax == NULL) {
        v3_error(resp, 400, "query.startTimeMin and query.startTimeMax are required");
        goto out;
    }
    int64_t ms;
    if (col_parse_time(tmin, &ms) != 0) {
        v3_error(resp, 400, "malformed parameter %s: %s", tmin_used, tmin);
        goto out;
    }
    q.start_min_ns = ms * 1000000;
    if (col_parse_time(tmax, &ms) != 0) {
        v3_error(resp, 400, "malformed parameter %s: %s", used, tmax);
        goto out;
    }
    q.start_max_ns = ms * 1000000;
    if (q.start_min_ns >= q.start_max_ns) {
        v3_error(resp, 400, "query.startTimeMin must be before query.startTimeMax");
        goto out;
    }

    v = v3_param(req, "query.searchDepth", "query.search_depth", &used);
    if (v == NULL) {
        v = col_req_param(req, "query.num_traces");
        used = "query.num_traces";
    }
    if (v != NULL && *v != '\0') {
        char *end;
        errno = 0;
        long n = strtol(v, &end, 10);
        if (errno != 0 || *end != '\0' || end == v || n <= 0 || n > V3_MAX_TRACES) {
            v3_error(resp, 400, "malformed parameter %s: %s (want 1..%d)", used, v, V3_MAX_TRACES);
            goto out;
        }
        q.limit = (size_t)n;
    }

    /* Go durations, as Jaeger's gateway parses them with time.ParseDuration */
    v = v3_param(req, "query.durationMin", "query.duration_min", &used);
    if (v != NULL) {
        if (col__jaeger_parse_go_duration(v, &q.min_duration_ns, err, sizeof(err)) != 0) {
            v3_error(resp, 400, "malformed parameter %s: %s", used, err);
            goto out;
        }
        if (q.min_duration_ns < 0) {
            v3_error(resp, 400, "malformed parameter %s: negative duration %s", used, v);
            goto out;
        }
    }
    v = v3_param(req, "query.durationMax", "query.duration_max", &used);
    if (v != NULL) {
        if (col__jaeger_parse_go_duration(v, &q.max_duration_ns, err, sizeof(err)) != 0) {
            v3_error(resp, 400, "malformed parameter %s: %s", used, err);
            goto out;
        }
        if (q.max_duration_ns <= 0) {
            v3_error(resp, 400, "malformed parameter %s: duration %s is not positive", used, v);
            goto out;
        }
    }

    int rc = st_trace_search(arg, &q, &ids);
    if (rc != 0) {
        v3_error(resp, 500, "searching traces: error %d", rc);
        goto out;
    }
    bool first = true;
    wf_buf_puts(&resp->body, "{\"result\":{\"resourceSpans\":[");
    for (size_t i = 0; i < ids->n; i++) {
        rc = v3_put_trace(arg, ids->ids[i], &resp->body, &first);
        /* a trace dropped by retention between search and read is simply left out */
        if (rc != 0 && rc != WF_E_NOTFOUND) {
            v3_error(resp, 500, "reading trace: error %d", rc);
            goto out;
        }
    }
    if (first) {
        v3_error(resp, 404, "No traces found");
        goto out;
    }
    wf_buf_puts(&resp->body, "]}}");
out:
    st_trace_ids_free(ids);
    json_decref(attrs);
}

void col_jaeger_v3_register(col_http_t *h, st_store_t *store)
{
    static const struct {
        const char *path;
        bool prefix;
        col_handler_cb cb;
    } routes[] = {
        {"/api/v3/services", false, v3_services},
        {"/api/v3/operations", false, v3_operations},
        {"/api/v3/traces", false, v3_search},
        {"/api/v3/traces/", true, v3_trace_by_id},
    };
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        int rc = col_http_route(h, "GET", routes[i].path, routes[i].prefix, 0, routes[i].cb, store);
        WF_ASSERT(rc == 0);
    }
}
