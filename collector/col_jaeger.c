/*
 * col_jaeger.c - the Jaeger v1 HTTP query API over the span store: parameter parsing as
 * Jaeger's query service does it (Go durations, microsecond times, JSON tags), and the
 * conversion of stored OTLP-shaped spans into Jaeger's UI JSON model.
 */
#include "col_jaeger.h"

#include "col_api.h"
#include "col_otlp_json.h"
#include "col_spanval.h"
#include "col_trace_adjust.h"
#include "wf_alloc.h"
#include "wf_err.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define JG_DEFAULT_LIMIT 100 /* Jaeger's defaultQueryLimit */
#define JG_MAX_LIMIT 1500    /* bounds the work one search request can ask for */
#define JG_MAX_TAGS 64
#define JG_MAX_TRACE_IDS 64
#define JG_DEP_LOOKBACK_MS (24LL * 3600 * 1000) /* Jaeger's defaultDependencyLookbackDuration */

/* ---- envelope ---------------------------------------------------------------------------- */

static void jg_error(col_resp_t *resp, unsigned status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void jg_error(col_resp_t *resp, unsigned status, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    resp->status = status;
    resp->content_type = "application/json";
    wf_buf_reset(&resp->body);
    wf_buf_printf(&resp->body,
                  "{\"data\":null,\"total\":0,\"limit\":0,\"offset\":0,\"errors\":[{\"code\":%u,"
                  "\"msg\":",
                  status);
    col_json_str(&resp->body, msg, strlen(msg));
    wf_buf_puts(&resp->body, "}]}");
}

static void jg_store_error(col_resp_t *resp, int rc)
{
    jg_error(resp, 500, "span store: %s", st_strerror(rc));
}

/* Close an envelope whose "data" was written after jg_begin. */
static void jg_end(wf_buf_t *b, size_t total)
{
    wf_buf_printf(b, ",\"total\":%zu,\"limit\":0,\"offset\":0,\"errors\":null}", total);
}

static void jg_begin(col_resp_t *resp)
{
    resp->content_type = "application/json";
    wf_buf_puts(&resp->body, "{\"data\":");
}

/* ---- ids --------------------------------------------------------------------------------- */

/* Jaeger's TraceID.String(): 16 hex digits when the high half is zero, else 32. */
static void jg_put_trace_id(wf_buf_t *b, const uint8_t id[16])
{
    bool high_zero = true;
    for (int i = 0; i < 8; i++) {
        if (id[i] != 0) {
            high_zero = false;
        }
    }
    wf_buf_putc(b, '"');
    wf_buf_put_hex(b, id + (high_zero ? 8 : 0), high_zero ? 8 : 16);
    wf_buf_putc(b, '"');
}

static void jg_put_span_id(wf_buf_t *b, const uint8_t id[8])
{
    wf_buf_putc(b, '"');
    wf_buf_put_hex(b, id, 8);
    wf_buf_putc(b, '"');
}

int col__jaeger_parse_trace_id(const char *s, uint8_t id[16])
{
    size_t n = strlen(s);
    if (n == 0 || n > 32) {
        return WF_E_INVAL;
    }
    memset(id, 0, 16);
    for (size_t i = 0; i < n; i++) {
        int v = wf_hex_digit(s[n - 1 - i]);
        if (v < 0) {
            return WF_E_INVAL;
        }
        id[15 - i / 2] |= (uint8_t)(i % 2 == 0 ? v : v << 4);
    }
    return 0;
}

static bool jg_zero8(const uint8_t id[8])
{
    for (int i = 0; i < 8; i++) {
        if (id[i] != 0) {
            return false;
        }
    }
    return true;
}

/* ---- parameters -------------------------------------------------------------------------- */

int col__jaeger_parse_go_duration(const char *s, int64_t *out, char *errmsg, size_t errlen)
{
    static const struct {
        const char *name;
        double ns;
    } units[] = {
        {"ns", 1},   {"us", 1e3}, {"\xc2\xb5s", 1e3}, {"\xce\xbcs", 1e3},
        {"ms", 1e6}, {"s", 1e9},  {"m", 60e9},        {"h", 3600e9},
    };
    const char *p = s;
    bool neg = false;
    double total = 0;
    if (*p == '-' || *p == '+') {
        neg = *p == '-';
        p++;
    }
    if (strcmp(p, "0") == 0) {
        *out = 0;
        return 0;
    }
    if (*p == '\0') {
        goto invalid;
    }
    while (*p != '\0') {
        const char *num = p;
        while ((*p >= '0' && *p <= '9') || *p == '.') {
            p++;
        }
        if (p == num || (p - num == 1 && *num == '.')) {
            goto invalid;
        }
        char numbuf[64];
        size_t nl = (size_t)(p - num);
        if (nl >= sizeof(numbuf)) {
            goto invalid;
        }
        memcpy(numbuf, num, nl);
        numbuf[nl] = '\0';
        if (strchr(numbuf, '.') != strrchr(numbuf, '.')) {
            goto invalid;
        }
        const char *u = p;
        while (*p != '\0' && !(*p >= '0' && *p <= '9') && *p != '.') {
            p++;
        }
        size_t ul = (size_t)(p - u);
        if (ul == 0) {
            snprintf(errmsg, errlen, "time: missing unit in duration \"%s\"", s);
            return WF_E_INVAL;
        }
        double scale = 0;
        for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
            if (strlen(units[i].name) == ul && memcmp(units[i].name, u, ul) == 0) {
                scale = units[i].ns;
            }
        }
        if (scale == 0) {
            snprintf(errmsg, errlen, "time: unknown unit \"%.*s\" in duration \"%s\"", (int)ul, u,
                     s);
            return WF_E_INVAL;
        }
        total += strtod(numbuf, NULL) * scale;
    }
    if (total > 9.2e18) {
        goto invalid;
    }
    *out = neg ? -(int64_t)llround(total) : (int64_t)llround(total);
    return 0;
invalid:
    snprintf(errmsg, errlen, "time: invalid duration \"%s\"", s);
    return WF_E_INVAL;
}

/* strconv.ParseInt(s, 10, 64) with Go's message on failure. */
static int jg_parse_int(const char *s, int64_t *out, char *errmsg, size_t errlen)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (*s == '\0' || *end != '\0' || isspace((unsigned char)s[0])) {
        snprintf(errmsg, errlen, "strconv.ParseInt: parsing \"%s\": invalid syntax", s);
        return WF_E_INVAL;
    }
    if (errno == ERANGE) {
        snprintf(errmsg, errlen, "strconv.ParseInt: parsing \"%s\": value out of range", s);
        return WF_E_INVAL;
    }
    *out = v;
    return 0;
}

static int64_t jg_mul_sat(int64_t v, int64_t m)
{
    if (v > INT64_MAX / m) {
        return INT64_MAX;
    }
    if (v < INT64_MIN / m) {
        return INT64_MIN;
    }
    return v * m;
}

static int64_t jg_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static const char *const jg_kind_names[] = {"",       "internal", "server",
                                            "client", "producer", "consumer"};

const char *col__jaeger_kind_name(st_span_kind_t k)
{
    return (unsigned)k < sizeof(jg_kind_names) / sizeof(jg_kind_names[0]) ? jg_kind_names[k] : "";
}

int col__jaeger_kind_from_name(const char *s)
{
    for (int k = 1; k < (int)(sizeof(jg_kind_names) / sizeof(jg_kind_names[0])); k++) {
        if (strcmp(s, jg_kind_names[k]) == 0) {
            return k;
        }
    }
    return -1;
}

/* The kind named by a span.kind=value tag filter, or -1. */
static int jg_kind_parse(wf_str_t key, wf_str_t value)
{
    if (!wf_str_eq_c(key, "span.kind")) {
        return -1;
    }
    for (int k = 1; k < (int)(sizeof(jg_kind_names) / sizeof(jg_kind_names[0])); k++) {
        if (wf_str_eq_c(value, jg_kind_names[k])) {
            return k;
        }
    }
    return -1;
}

/* ---- span conversion --------------------------------------------------------------------- */

static void jg_tag_head(wf_buf_t *b, bool *first, const char *key, size_t klen, const char *type)
{
    if (!*first) {
        wf_buf_putc(b, ',');
    }
    *first = false;
    wf_buf_puts(b, "{\"key\":");
    col_json_str(b, key, klen);
    wf_buf_printf(b, ",\"type\":\"%s\",\"value\":", type);
}

static void jg_tag_str(wf_buf_t *b, bool *first, const char *key, const char *v, size_t vlen)
{
    jg_tag_head(b, first, key, strlen(key), "string");
    col_json_str(b, v, vlen);
    wf_buf_putc(b, '}');
}

static void jg_tag_attr(wf_buf_t *b, bool *first, const st_attr_t *a)
{
    if (!*first) {
        wf_buf_putc(b, ',');
    }
    *first = false;
    wf_buf_puts(b, "{\"key\":");
    col_json_str(b, a->key.p, a->key.len);
    /* the value comes before its type is known: render it aside */
    wf_buf_t val = WF_BUF_INIT;
    const char *type = col_spanval_jaeger(&val, &a->value);
    wf_buf_printf(b, ",\"type\":\"%s\",\"value\":", type);
    wf_buf_append(b, val.data, val.len);
    wf_buf_putc(b, '}');
    wf_buf_free(&val);
}

static void jg_attrs(wf_buf_t *b, bool *first, const st_attr_t *a, size_t n, const char *skip)
{
    for (size_t i = 0; i < n; i++) {
        if (skip != NULL && wf_str_eq_c(a[i].key, skip)) {
            continue;
        }
        jg_tag_attr(b, first, &a[i]);
    }
}

/* The process object of a span: its service and resource attributes but service.name. */
static void jg_process(wf_buf_t *b, const st_span_t *sp)
{
    wf_buf_puts(b, "{\"serviceName\":");
    col_json_str(b, sp->service.p, sp->service.len);
    wf_buf_puts(b, ",\"tags\":[");
    bool first = true;
    jg_attrs(b, &first, sp->resource_attrs, sp->n_resource_attrs, "service.name");
    wf_buf_puts(b, "]}");
}

/* Does jg_span write the derived tag named key for sp? */
static bool jg_derived_shown(const st_span_t *sp, wf_str_t key)
{
    if (wf_str_eq_c(key, "error")) {
        return sp->status_code == ST_STATUS_ERROR;
    }
    if (wf_str_eq_c(key, "otel.status_code")) {
        return sp->status_code != ST_STATUS_UNSET;
    }
    if (wf_str_eq_c(key, "otel.status_description")) {
        return sp->status_message.len > 0;
    }
    if (wf_str_eq_c(key, "span.kind")) {
        return col__jaeger_kind_name(sp->kind)[0] != '\0';
    }
    if (wf_str_eq_c(key, "otel.scope.name")) {
        return sp->scope_name.len > 0;
    }
    if (wf_str_eq_c(key, "otel.scope.version")) {
        return sp->scope_version.len > 0;
    }
    return wf_str_eq_c(key, "w3c.tracestate") && sp->trace_state.len > 0;
}

static void jg_ref(wf_buf_t *b, bool *first, const char *type, const uint8_t tid[16],
                   const uint8_t sid[8])
{
    if (!*first) {
        wf_buf_putc(b, ',');
    }
    *first = false;
    wf_buf_printf(b, "{\"refType\":\"%s\",\"traceID\":", type);
    jg_put_trace_id(b, tid);
    wf_buf_puts(b, ",\"spanID\":");
    jg_put_span_id(b, sid);
    wf_buf_putc(b, '}');
}

static const char *jg_link_type(const st_span_link_t *l)
{
    for (size_t i = 0; i < l->n_attrs; i++) {
        const st_attr_t *a = &l->attrs[i];
        if (wf_str_eq_c(a->key, "opentracing.ref_type") && a->value.type == ST_VAL_STRING &&
            wf_str_eq_c(a->value.u.s, "child_of")) {
            return "CHILD_OF";
        }
    }
    return "FOLLOWS_FROM";
}

static bool jg_link_is_parent(const st_span_t *sp, const st_span_link_t *l)
{
    return memcmp(l->trace_id, sp->trace_id, 16) == 0 &&
           memcmp(l->span_id, sp->parent_span_id, 8) == 0;
}

static void jg_span(wf_buf_t *b, const st_span_t *sp, size_t pid)
{
    wf_buf_puts(b, "{\"traceID\":");
    jg_put_trace_id(b, sp->trace_id);
    wf_buf_puts(b, ",\"spanID\":");
    jg_put_span_id(b, sp->span_id);
    wf_buf_printf(b, ",\"flags\":%u,\"operationName\":", (unsigned)(sp->flags & 0xff));
    col_json_str(b, sp->name.p, sp->name.len);

    /* As Jaeger's OTLP translator: the parent first as CHILD_OF, links as FOLLOWS_FROM unless
     * their opentracing.ref_type says child_of; a link to the parent only retypes it. */
    wf_buf_puts(b, ",\"references\":[");
    bool first = true;
    bool has_parent = !jg_zero8(sp->parent_span_id);
    const char *parent_type = "CHILD_OF";
    for (size_t i = 0; has_parent && i < sp->n_links; i++) {
        if (jg_link_is_parent(sp, &sp->links[i])) {
            parent_type = jg_link_type(&sp->links[i]);
        }
    }
    if (has_parent) {
        jg_ref(b, &first, parent_type, sp->trace_id, sp->parent_span_id);
    }
    for (size_t i = 0; i < sp->n_links; i++) {
        if (has_parent && jg_link_is_parent(sp, &sp->links[i])) {
            continue;
        }
        jg_ref(b, &first, jg_link_type(&sp->links[i]), sp->links[i].trace_id, sp->links[i].span_id);
    }
    /* Jaeger's span times are whole microseconds */
    int64_t start_us = sp->start_ns / 1000;
    wf_buf_printf(b, "],\"startTime\":%" PRId64 ",\"duration\":%" PRId64 ",\"tags\":[", start_us,
                  sp->end_ns / 1000 - start_us);

    /* the translator's order: scope, attributes, then the derived tags */
    first = true;
    if (sp->scope_name.len > 0) {
        jg_tag_str(b, &first, "otel.scope.name", sp->scope_name.p, sp->scope_name.len);
    }
    if (sp->scope_version.len > 0) {
        jg_tag_str(b, &first, "otel.scope.version", sp->scope_version.p, sp->scope_version.len);
    }
    for (size_t i = 0; i < sp->n_attrs; i++) {
        /* An attribute named like a derived tag the span shows (a Zipkin "error" tag, kept
         * while its status became ERROR) would repeat the key: the derived one stands, as
         * OpenTelemetry's Zipkin receiver turns such tags into the status. */
        if (!jg_derived_shown(sp, sp->attrs[i].key)) {
            jg_tag_attr(b, &first, &sp->attrs[i]);
        }
    }
    const char *kind = col__jaeger_kind_name(sp->kind);
    if (kind[0] != '\0') {
        jg_tag_str(b, &first, "span.kind", kind, strlen(kind));
    }
    if (sp->status_code == ST_STATUS_OK) {
        jg_tag_str(b, &first, "otel.status_code", "OK", 2);
    } else if (sp->status_code == ST_STATUS_ERROR) {
        jg_tag_str(b, &first, "otel.status_code", "ERROR", 5);
        jg_tag_head(b, &first, "error", 5, "bool");
        wf_buf_puts(b, "true}");
    }
    if (sp->status_message.len > 0) {
        jg_tag_str(b, &first, "otel.status_description", sp->status_message.p,
                   sp->status_message.len);
    }
    if (sp->trace_state.len > 0) {
        jg_tag_str(b, &first, "w3c.tracestate", sp->trace_state.p, sp->trace_state.len);
    }

    wf_buf_puts(b, "],\"logs\":[");
    for (size_t i = 0; i < sp->n_events; i++) {
        const st_span_event_t *ev = &sp->events[i];
        if (i > 0) {
            wf_buf_putc(b, ',');
        }
        wf_buf_printf(b, "{\"timestamp\":%" PRId64 ",\"fields\":[", ev->time_ns / 1000);
        bool ff = true;
        bool has_event_attr = false;
        for (size_t j = 0; j < ev->n_attrs; j++) {
            if (wf_str_eq_c(ev->attrs[j].key, "event")) {
                has_event_attr = true;
            }
        }
        if (ev->name.len > 0 && !has_event_attr) {
            jg_tag_str(b, &ff, "event", ev->name.p, ev->name.len);
        }
        jg_attrs(b, &ff, ev->attrs, ev->n_attrs, NULL);
        wf_buf_puts(b, "]}");
    }
    wf_buf_printf(b, "],\"processID\":\"p%zu\",\"warnings\":null}", pid);
}

/* One trace in Jaeger's UI model; processes are shared by spans with identical ones. */
static void jg_trace(wf_buf_t *b, const st_span_list_t *l)
{
    WF_ASSERT(l->n > 0);
    wf_buf_t *procs = NULL;
    size_t nprocs = 0;
    size_t *pids = wf_malloc(l->n * sizeof(*pids));
    wf_buf_t cur = WF_BUF_INIT;
    for (size_t i = 0; i < l->n; i++) {
        wf_buf_reset(&cur);
        jg_process(&cur, &l->spans[i]);
        size_t k = 0;
        while (k < nprocs &&
               !(procs[k].len == cur.len && memcmp(procs[k].data, cur.data, cur.len) == 0)) {
            k++;
        }
        if (k == nprocs) {
            procs = wf_realloc(procs, (nprocs + 1) * sizeof(*procs));
            wf_buf_init(&procs[nprocs]);
            wf_buf_append(&procs[nprocs], cur.data, cur.len);
            nprocs++;
        }
        pids[i] = k + 1;
    }
    wf_buf_free(&cur);

    wf_buf_puts(b, "{\"traceID\":");
    jg_put_trace_id(b, l->spans[0].trace_id);
    wf_buf_puts(b, ",\"spans\":[");
    for (size_t i = 0; i < l->n; i++) {
        if (i > 0) {
            wf_buf_putc(b, ',');
        }
        jg_span(b, &l->spans[i], pids[i]);
    }
    wf_buf_puts(b, "],\"processes\":{");
    for (size_t k = 0; k < nprocs; k++) {
        wf_buf_printf(b, "%s\"p%zu\":", k > 0 ? "," : "", k + 1);
        wf_buf_append(b, procs[k].data, procs[k].len);
        wf_buf_free(&procs[k]);
    }
    wf_buf_puts(b, "},\"warnings\":null}");
    wf_free(procs);
    wf_free(pids);
}

/* ---- handlers ---------------------------------------------------------------------------- */

static void jg_services(void *arg, col_req_t *req, col_resp_t *resp)
{
    (void)req;
    st_strlist_t *l = NULL;
    int rc = st_services(arg, &l);
    if (rc != 0) {
        jg_store_error(resp, rc);
        return;
    }
    size_t n = st_strlist_len(l);
    jg_begin(resp);
    wf_buf_putc(&resp->body, '[');
    for (size_t i = 0; i < n; i++) {
        wf_str_t s = st_strlist_get(l, i);
        if (i > 0) {
            wf_buf_putc(&resp->body, ',');
        }
        col_json_str(&resp->body, s.p, s.len);
    }
    wf_buf_putc(&resp->body, ']');
    jg_end(&resp->body, n);
    st_strlist_free(l);
}

/* Operations of service; names_only gives the legacy list of distinct names. */
static void jg_ops(st_store_t *store, const char *service, const char *kind_param, bool names_only,
                   col_resp_t *resp)
{
    int kind = -1;
    if (kind_param != NULL && kind_param[0] != '\0') {
        kind = -2;
        for (int k = 1; k < (int)(sizeof(jg_kind_names) / sizeof(jg_kind_names[0])); k++) {
            if (strcmp(kind_param, jg_kind_names[k]) == 0) {
                kind = k;
            }
        }
    }
    st_operation_list_t *l = NULL;
    size_t total = 0;
    if (kind != -2) {
        int rc = st_operations(store, wf_str(service), kind, &l);
        if (rc != 0) {
            jg_store_error(resp, rc);
            return;
        }
    }
    jg_begin(resp);
    wf_buf_putc(&resp->body, '[');
    for (size_t i = 0; l != NULL && i < l->n; i++) {
        const st_operation_t *op = &l->ops[i];
        if (names_only && i > 0 && strcmp(op->name, l->ops[i - 1].name) == 0) {
            continue; /* sorted by name, so duplicates are neighbours */
        }
        if (total > 0) {
            wf_buf_putc(&resp->body, ',');
        }
        if (names_only) {
            col_json_str(&resp->body, op->name, strlen(op->name));
        } else {
            wf_buf_puts(&resp->body, "{\"name\":");
            col_json_str(&resp->body, op->name, strlen(op->name));
            wf_buf_printf(&resp->body, ",\"spanKind\":\"%s\"}", col__jaeger_kind_name(op->kind));
        }
        total++;
    }
    wf_buf_putc(&resp->body, ']');
    jg_end(&resp->body, total);
    st_operation_list_free(l);
}

static void jg_operations(void *arg, col_req_t *req, col_resp_t *resp)
{
    const char *service = col_req_param(req, "service");
    if (service == NULL || service[0] == '\0') {
        jg_error(resp, 400, "parameter 'service' is required");
        return;
    }
    jg_ops(arg, service, col_req_param(req, "spanKind"), false, resp);
}

static void jg_services_sub(void *arg, col_req_t *req, col_resp_t *resp)
{
    static const char prefix[] = "/api/services/";
    static const char suffix[] = "/operations";
    const char *rest = req->path + sizeof(prefix) - 1;
    size_t n = strlen(rest);
    size_t sl = sizeof(suffix) - 1;
    if (n <= sl || strcmp(rest + n - sl, suffix) != 0) {
        jg_error(resp, 404, "404 page not found");
        return;
    }
    char *service = wf_arena_strndup(req->arena, rest, n - sl);
    jg_ops(arg, service, NULL, true, resp);
}

/* Write one stored trace as Jaeger's query service shows it (adjusted); 0, WF_E_NOTFOUND or a
 * store error. */
static int jg_write_trace(st_store_t *store, const uint8_t id[16], wf_buf_t *b, bool comma)
{
    st_span_list_t *l = NULL;
    int rc = st_trace_get(store, id, &l);
    if (rc != 0) {
        return rc;
    }
    if (comma) {
        wf_buf_putc(b, ',');
    }
    col_trace_adjust(l);
    jg_trace(b, l);
    st_span_list_free(l);
    return 0;
}

/* ---- tags derived from the span model -------------------------------------------------------
 * The span JSON shows tags that are no attributes (the OTLP translator's span.kind,
 * otel.status_code, error, ...; the logs' event field). The store's search knows attributes
 * only, so a search naming such a tag asks the store for the other conditions and checks every
 * condition on the spans of each trace found. */

static const char *const jg_derived_keys[] = {
    "error",
    "otel.status_code",
    "otel.status_description",
    "otel.scope.name",
    "otel.scope.version",
    "w3c.tracestate",
    "span.kind",
    "event",
};

/* Traces read at most to fill one page of a search with derived tags. */
#define JG_MAX_SCAN (4 * JG_MAX_LIMIT)

static bool jg_is_derived(wf_str_t key)
{
    for (size_t i = 0; i < sizeof(jg_derived_keys) / sizeof(jg_derived_keys[0]); i++) {
        if (wf_str_eq_c(key, jg_derived_keys[i])) {
            return true;
        }
    }
    return false;
}

static bool jg_shown_eq(wf_str_t shown, wf_str_t want)
{
    return shown.len > 0 && wf_str_eq(shown, want);
}

/* Does sp show the derived tag f (as jg_span writes them)? */
static bool jg_derived_match(const st_span_t *sp, const st_tag_filter_t *f)
{
    if (wf_str_eq_c(f->key, "error")) {
        return sp->status_code == ST_STATUS_ERROR && wf_str_eq_c(f->value, "true");
    }
    if (wf_str_eq_c(f->key, "otel.status_code")) {
        return (sp->status_code == ST_STATUS_OK && wf_str_eq_c(f->value, "OK")) ||
               (sp->status_code == ST_STATUS_ERROR && wf_str_eq_c(f->value, "ERROR"));
    }
    if (wf_str_eq_c(f->key, "otel.status_description")) {
        return jg_shown_eq(sp->status_message, f->value);
    }
    if (wf_str_eq_c(f->key, "otel.scope.name")) {
        return jg_shown_eq(sp->scope_name, f->value);
    }
    if (wf_str_eq_c(f->key, "otel.scope.version")) {
        return jg_shown_eq(sp->scope_version, f->value);
    }
    if (wf_str_eq_c(f->key, "w3c.tracestate")) {
        return jg_shown_eq(sp->trace_state, f->value);
    }
    if (wf_str_eq_c(f->key, "span.kind")) {
        return jg_shown_eq(wf_str(col__jaeger_kind_name(sp->kind)), f->value);
    }
    for (size_t i = 0; i < sp->n_events; i++) {
        if (jg_shown_eq(sp->events[i].name, f->value)) {
            return true;
        }
    }
    return false;
}

static bool jg_attr_match(const st_attr_t *a, size_t n, const st_tag_filter_t *f, wf_buf_t *tmp)
{
    for (size_t i = 0; i < n; i++) {
        if (wf_str_eq(a[i].key, f->key) && col_spanval_matches(&a[i].value, f->value, tmp)) {
            return true;
        }
    }
    return false;
}

/* Every condition of q on one span, as the store's search applies them, derived tags too. */
static bool jg_span_match(const st_span_t *sp, const st_trace_query_t *q, wf_buf_t *tmp)
{
    int64_t dur = sp->end_ns - sp->start_ns;
    if ((q->start_min_ns != 0 && sp->start_ns < q->start_min_ns) ||
        (q->start_max_ns != 0 && sp->start_ns > q->start_max_ns) ||
        (q->min_duration_ns != 0 && dur < q->min_duration_ns) ||
        (q->max_duration_ns != 0 && dur > q->max_duration_ns) ||
        (q->service.len > 0 && !wf_str_eq(q->service, sp->service)) ||
        (q->operation.len > 0 && !wf_str_eq(q->operation, sp->name)) ||
        (q->span_kind >= 0 && (int)sp->kind != q->span_kind)) {
        return false;
    }
    for (size_t t = 0; t < q->n_tags; t++) {
        const st_tag_filter_t *f = &q->tags[t];
        bool ok = jg_attr_match(sp->attrs, sp->n_attrs, f, tmp) ||
                  jg_attr_match(sp->resource_attrs, sp->n_resource_attrs, f, tmp) ||
                  (jg_is_derived(f->key) && jg_derived_match(sp, f));
        for (size_t e = 0; e < sp->n_events && !ok; e++) {
            ok = jg_attr_match(sp->events[e].attrs, sp->events[e].n_attrs, f, tmp);
        }
        if (!ok) {
            return false;
        }
    }
    return true;
}

/*
 * Search with derived tags: the store finds candidates by the other conditions (asking for more
 * and more of them while a page is not full), each candidate is read and kept when one of its
 * spans meets every condition. Appends to b; *ntr counts the traces written.
 */
static int jg_search_derived(st_store_t *store, const st_trace_query_t *q, wf_buf_t *b, size_t *ntr)
{
    st_tag_filter_t st_tags[JG_MAX_TAGS];
    st_trace_query_t sq = *q;
    sq.n_tags = 0;
    for (size_t i = 0; i < q->n_tags; i++) {
        if (!jg_is_derived(q->tags[i].key)) {
            st_tags[sq.n_tags++] = q->tags[i];
        }
    }
    sq.tags = st_tags;
    size_t mark = b->len;
    wf_buf_t tmp = WF_BUF_INIT;
    int rc = 0;
    for (size_t fetch = q->limit * 4;; fetch *= 4) {
        st_trace_ids_t *found = NULL;
        sq.limit = fetch < JG_MAX_SCAN ? fetch : JG_MAX_SCAN;
        if ((rc = st_trace_search(store, &sq, &found)) != 0) {
            break;
        }
        b->len = mark;
        *ntr = 0;
        for (size_t i = 0; i < found->n && *ntr < q->limit; i++) {
            st_span_list_t *l = NULL;
            rc = st_trace_get(store, found->ids[i], &l);
            if (rc == WF_E_NOTFOUND) {
                rc = 0;
                continue; /* removed by retention between the search and the read */
            }
            if (rc != 0) {
                break;
            }
            bool hit = false;
            for (size_t k = 0; k < l->n && !hit; k++) {
                hit = jg_span_match(&l->spans[k], q, &tmp);
            }
            if (hit) {
                if ((*ntr)++ > 0) {
                    wf_buf_putc(b, ',');
                }
                col_trace_adjust(l);
                jg_trace(b, l);
            }
            st_span_list_free(l);
        }
        bool exhausted = found->n < sq.limit || sq.limit == JG_MAX_SCAN;
        st_trace_ids_free(found);
        if (rc != 0 || *ntr >= q->limit || exhausted) {
            break;
        }
    }
    wf_buf_free(&tmp);
    return rc;
}

static void jg_trace_by_id(void *arg, col_req_t *req, col_resp_t *resp)
{
    const char *s = req->path + strlen("/api/traces/");
    uint8_t id[16];
    if (col__jaeger_parse_trace_id(s, id) != 0) {
        jg_error(resp, 400, "cannot parse traceID: \"%s\"", s);
        return;
    }
    wf_buf_t b = WF_BUF_INIT;
    wf_buf_puts(&b, "{\"data\":[");
    int rc = jg_write_trace(arg, id, &b, false);
    if (rc == WF_E_NOTFOUND) {
        jg_error(resp, 404, "trace not found");
    } else if (rc != 0) {
        jg_store_error(resp, rc);
    } else {
        wf_buf_putc(&b, ']');
        jg_end(&b, 0);
        resp->content_type = "application/json";
        wf_buf_free(&resp->body);
        resp->body = b;
        return;
    }
    wf_buf_free(&b);
}

/* Fill q->tags from tag=k:v and tags={json} parameters (strings in the request's arena). */
static int jg_parse_tags(col_req_t *req, st_tag_filter_t *tags, size_t *ntags, char *err,
                         size_t errlen)
{
    const char *vals[JG_MAX_TAGS];
    size_t n = 0;
    size_t nv = col_req_param_all(req, "tag", vals, JG_MAX_TAGS);
    if (nv > JG_MAX_TAGS) {
        snprintf(err, errlen, "too many tags, at most %d", JG_MAX_TAGS);
        return WF_E_LIMIT;
    }
    for (size_t i = 0; i < nv; i++) {
        const char *colon = strchr(vals[i], ':');
        if (colon == NULL) {
            snprintf(err, errlen, "malformed 'tag' parameter, expecting key:value, received: %s",
                     vals[i]);
            return WF_E_INVAL;
        }
        tags[n].key = (wf_str_t){vals[i], (size_t)(colon - vals[i])};
        tags[n].value = wf_str(colon + 1);
        n++;
    }
    nv = col_req_param_all(req, "tags", vals, JG_MAX_TAGS);
    for (size_t i = 0; i < nv && i < JG_MAX_TAGS; i++) {
        json_error_t je;
        json_t *obj = json_loads(vals[i], JSON_DECODE_ANY, &je);
        if (obj == NULL || !json_is_object(obj)) {
            snprintf(err, errlen, "malformed 'tags' parameter, cannot unmarshal JSON: %s",
                     obj == NULL ? je.text : "not a JSON object");
            json_decref(obj);
            return WF_E_INVAL;
        }
        const char *k;
        json_t *v;
        json_object_foreach(obj, k, v)
        {
            if (!json_is_string(v)) {
                snprintf(err, errlen,
                         "malformed 'tags' parameter, cannot unmarshal JSON: value of \"%s\" is "
                         "not a string",
                         k);
                json_decref(obj);
                return WF_E_INVAL;
            }
            if (n == JG_MAX_TAGS) {
                snprintf(err, errlen, "too many tags, at most %d", JG_MAX_TAGS);
                json_decref(obj);
                return WF_E_LIMIT;
            }
            tags[n].key = wf_str(wf_arena_strndup(req->arena, k, strlen(k)));
            tags[n].value = (wf_str_t){
                wf_arena_strndup(req->arena, json_string_value(v), json_string_length(v)),
                json_string_length(v)};
            n++;
        }
        json_decref(obj);
    }
    *ntags = n;
    return 0;
}

static void jg_search(void *arg, col_req_t *req, col_resp_t *resp)
{
    st_store_t *store = arg;
    char err[512];
    st_tag_filter_t tags[JG_MAX_TAGS];
    st_trace_query_t q = {.span_kind = -1};
    const char *v;

    /* explicit trace ids: Jaeger answers those without searching */
    const char *ids[JG_MAX_TRACE_IDS];
    size_t nids = col_req_param_all(req, "traceID", ids, JG_MAX_TRACE_IDS);
    if (nids > JG_MAX_TRACE_IDS) {
        jg_error(resp, 400, "too many traceID parameters, at most %d", JG_MAX_TRACE_IDS);
        return;
    }

    /* Without start (or lookback) the window reaches back to the store's retention, where
     * Jaeger would use its own configured lookback: the UI and Grafana always send start. */
    int64_t end_ns = jg_now_ns();
    int64_t start_ns = 0;
    if ((v = col_req_param(req, "end")) != NULL && v[0] != '\0') {
        int64_t us;
        if (jg_parse_int(v, &us, err, sizeof(err)) != 0) {
            jg_error(resp, 400, "unable to parse param 'end': %s", err);
            return;
        }
        end_ns = jg_mul_sat(us, 1000);
    }
    if ((v = col_req_param(req, "start")) != NULL && v[0] != '\0') {
        int64_t us;
        if (jg_parse_int(v, &us, err, sizeof(err)) != 0) {
            jg_error(resp, 400, "unable to parse param 'start': %s", err);
            return;
        }
        start_ns = jg_mul_sat(us, 1000);
    } else if ((v = col_req_param(req, "lookback")) != NULL && v[0] != '\0' &&
               strcmp(v, "custom") != 0) {
        /* The Jaeger UI's choices include days ("2d", "7d"), which Go durations lack. */
        int64_t lb, lb_ms;
        if (col__jaeger_parse_go_duration(v, &lb, err, sizeof(err)) != 0) {
            if (col_parse_duration(v, &lb_ms) != 0) {
                jg_error(resp, 400, "unable to parse param 'lookback': %s", err);
                return;
            }
            lb = jg_mul_sat(lb_ms, 1000000);
        }
        start_ns = end_ns - lb;
    }
    if (start_ns > end_ns) {
        jg_error(resp, 400, "'start' should not be after 'end'");
        return;
    }
    if (jg_parse_tags(req, tags, &q.n_tags, err, sizeof(err)) != 0) {
        jg_error(resp, 400, "%s", err);
        return;
    }
    /* span.kind is derived from the span's kind, not stored as an attribute: Jaeger users
     * search it as a tag, so it becomes the query's kind condition */
    size_t kept = 0;
    for (size_t i = 0; i < q.n_tags; i++) {
        int k = jg_kind_parse(tags[i].key, tags[i].value);
        if (k > 0 && (q.span_kind == -1 || q.span_kind == k)) {
            q.span_kind = k;
            continue;
        }
        tags[kept++] = tags[i];
    }
    q.n_tags = kept;
    q.tags = tags;
    int64_t limit = JG_DEFAULT_LIMIT;
    if ((v = col_req_param(req, "limit")) != NULL && v[0] != '\0') {
        if (jg_parse_int(v, &limit, err, sizeof(err)) != 0) {
            jg_error(resp, 400, "unable to parse param 'limit': %s", err);
            return;
        }
        if (limit <= 0) {
            limit = JG_DEFAULT_LIMIT;
        }
    }
    q.limit = (size_t)(limit > JG_MAX_LIMIT ? JG_MAX_LIMIT : limit);
    static const char *const dnames[2] = {"minDuration", "maxDuration"};
    int64_t *dvals[2] = {&q.min_duration_ns, &q.max_duration_ns};
    for (int i = 0; i < 2; i++) {
        if ((v = col_req_param(req, dnames[i])) != NULL && v[0] != '\0') {
            if (col__jaeger_parse_go_duration(v, dvals[i], err, sizeof(err)) != 0) {
                jg_error(resp, 400, "unable to parse param '%s': %s", dnames[i], err);
                return;
            }
        }
    }
    if (q.min_duration_ns != 0 && q.max_duration_ns != 0 && q.max_duration_ns < q.min_duration_ns) {
        jg_error(resp, 400, "'maxDuration' should be greater than 'minDuration'");
        return;
    }
    const char *service = col_req_param(req, "service");
    if (nids == 0 && (service == NULL || service[0] == '\0')) {
        jg_error(resp, 400, "parameter 'service' is required");
        return;
    }

    wf_buf_t b = WF_BUF_INIT;
    wf_buf_t errs = WF_BUF_INIT;
    st_trace_ids_t *found = NULL;
    size_t ntr = 0;
    size_t nerr = 0;
    wf_buf_puts(&b, "{\"data\":[");
    if (nids > 0) {
        for (size_t i = 0; i < nids; i++) {
            uint8_t id[16];
            if (col__jaeger_parse_trace_id(ids[i], id) != 0) {
                jg_error(resp, 400, "cannot parse traceID param: \"%s\"", ids[i]);
                goto out;
            }
            int rc = jg_write_trace(store, id, &b, ntr > 0);
            if (rc == WF_E_NOTFOUND) {
                wf_buf_puts(&errs, nerr > 0 ? "," : "");
                wf_buf_puts(&errs, "{\"msg\":\"trace not found\",\"traceID\":");
                jg_put_trace_id(&errs, id);
                wf_buf_putc(&errs, '}');
                nerr++;
                continue;
            }
            if (rc != 0) {
                jg_store_error(resp, rc);
                goto out;
            }
            ntr++;
        }
    } else {
        q.service = wf_str(service);
        const char *op = col_req_param(req, "operation");
        q.operation = wf_str(op != NULL ? op : "");
        q.start_min_ns = start_ns;
        q.start_max_ns = end_ns;
        bool derived = false;
        for (size_t i = 0; i < q.n_tags; i++) {
            derived = derived || jg_is_derived(q.tags[i].key);
        }
        if (derived) {
            int rc = jg_search_derived(store, &q, &b, &ntr);
            if (rc != 0) {
                jg_store_error(resp, rc);
                goto out;
            }
        } else {
            int rc = st_trace_search(store, &q, &found);
            if (rc != 0) {
                jg_store_error(resp, rc);
                goto out;
            }
            for (size_t i = 0; i < found->n; i++) {
                rc = jg_write_trace(store, found->ids[i], &b, ntr > 0);
                if (rc == WF_E_NOTFOUND) {
                    continue; /* removed by retention between the search and the read */
                }
                if (rc != 0) {
                    jg_store_error(resp, rc);
                    goto out;
                }
                ntr++;
            }
        }
    }
    wf_buf_puts(&b, "],\"total\":0,\"limit\":0,\"offset\":0,\"errors\":");
    if (nerr > 0) {
        wf_buf_putc(&b, '[');
        wf_buf_append(&b, errs.data, errs.len);
        wf_buf_puts(&b, "]}");
    } else {
        wf_buf_puts(&b, "null}");
    }
    resp->content_type = "application/json";
    wf_buf_free(&resp->body);
    resp->body = b;
    b = (wf_buf_t)WF_BUF_INIT;
out:
    st_trace_ids_free(found);
    wf_buf_free(&errs);
    wf_buf_free(&b);
}

static void jg_dependencies(void *arg, col_req_t *req, col_resp_t *resp)
{
    char err[256];
    const char *v;
    int64_t end_ms = jg_now_ns() / 1000000;
    int64_t lookback_ms = JG_DEP_LOOKBACK_MS;
    if ((v = col_req_param(req, "endTs")) != NULL && v[0] != '\0' &&
        jg_parse_int(v, &end_ms, err, sizeof(err)) != 0) {
        jg_error(resp, 400, "unable to parse param 'endTs': %s", err);
        return;
    }
    if ((v = col_req_param(req, "lookback")) != NULL && v[0] != '\0' &&
        jg_parse_int(v, &lookback_ms, err, sizeof(err)) != 0) {
        jg_error(resp, 400, "unable to parse param 'lookback': %s", err);
        return;
    }
    if (lookback_ms < 0) {
        jg_error(resp, 400, "unable to parse param 'lookback': negative duration");
        return;
    }
    int64_t to_ns = jg_mul_sat(end_ms, 1000000);
    int64_t from_ns = to_ns - jg_mul_sat(lookback_ms, 1000000);
    if (from_ns > to_ns) {
        from_ns = INT64_MIN; /* the subtraction wrapped */
    }
    st_dependency_list_t *l = NULL;
    int rc = st_dependencies(arg, from_ns, to_ns, &l);
    if (rc != 0) {
        jg_store_error(resp, rc);
        return;
    }
    const char *service = col_req_param(req, "service");
    jg_begin(resp);
    wf_buf_putc(&resp->body, '[');
    bool first = true;
    for (size_t i = 0; i < l->n; i++) {
        const st_dependency_t *d = &l->deps[i];
        if (service != NULL && service[0] != '\0' && strcmp(d->parent, service) != 0 &&
            strcmp(d->child, service) != 0) {
            continue;
        }
        wf_buf_puts(&resp->body, first ? "{\"parent\":" : ",{\"parent\":");
        first = false;
        col_json_str(&resp->body, d->parent, strlen(d->parent));
        wf_buf_puts(&resp->body, ",\"child\":");
        col_json_str(&resp->body, d->child, strlen(d->child));
        wf_buf_printf(&resp->body, ",\"callCount\":%" PRIu64 "}", d->call_count);
    }
    wf_buf_putc(&resp->body, ']');
    jg_end(&resp->body, 0);
    st_dependency_list_free(l);
}

void col_jaeger_register(col_http_t *h, st_store_t *store)
{
    static const struct {
        const char *path;
        bool prefix;
        col_handler_cb cb;
    } routes[] = {
        {"/api/services", false, jg_services},     {"/api/services/", true, jg_services_sub},
        {"/api/operations", false, jg_operations}, {"/api/traces", false, jg_search},
        {"/api/traces/", true, jg_trace_by_id},    {"/api/dependencies", false, jg_dependencies},
    };
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        int rc = col_http_route(h, "GET", routes[i].path, routes[i].prefix, 0, routes[i].cb, store);
        WF_ASSERT(rc == 0);
    }
}
