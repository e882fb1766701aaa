/*
 * cp_api.c - the control plane's HTTP API: routing, access checks, Kubernetes-style resource
 * CRUD over cp_store, the registry endpoints, http_sd targets, the CA's endpoints (a small
 * block over cp_ca) and the control plane's own metrics (see cp_api.h).
 *
 * The HTTP layer is libmicrohttpd with a thread pool, as the collector's col_http; it is
 * thinner here because the control plane needs no compression, no form parsing and no shared
 * memory budget: bodies are small (max_body) and refused early when a Content-Length says
 * they are too large, or when the token is missing, before a byte of the body is read.
 */
#include "cp_api.h"

#include "cp_analyze.h"
#include "cp_ca.h"
#include "cp_config.h"
#include "cp_istio.h"
#include "cp_kinds.h"
#include "cp_yaml.h"
#include "cp_token.h"

#include "wf_alloc.h"
#include "wf_clock.h"
#include "wf_err.h"
#include "wf_log.h"

#include <arpa/inet.h>
#include <limits.h>
#include <errno.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

enum {
    H_REGISTER,
    H_HEARTBEAT,
    H_WORKLOADS,
    H_TARGETS,
    H_RESOURCES,
    H_METRICS,
    H_HEALTHZ,
    H_APPLY,
    H_SNAPSHOT,
    H_PROXY_STATUS,
    H_ANALYZE,
    H_CERTIFICATE,
    H_TRUST_BUNDLE,
    H_CA_ROTATE,
    H_CA,
    H_OTHER,
    H_COUNT
};
static const char *const handler_names[H_COUNT] = {
    [H_REGISTER] = "/v1/register",
    [H_HEARTBEAT] = "/v1/heartbeat",
    [H_WORKLOADS] = "/v1/workloads",
    [H_TARGETS] = "/v1/targets",
    [H_RESOURCES] = "/apis",
    [H_METRICS] = "/metrics",
    [H_HEALTHZ] = "/healthz",
    [H_APPLY] = "/v1/apply",
    [H_OTHER] = "other",
    [H_SNAPSHOT] = "/v1/snapshot",
    [H_PROXY_STATUS] = "/v1/proxy-status",
    [H_ANALYZE] = "/v1/analyze",
    [H_CERTIFICATE] = "/v1/certificate",
    [H_TRUST_BUNDLE] = "/v1/trust-bundle",
    [H_CA_ROTATE] = "/v1/ca/rotate",
    [H_CA] = "/v1/ca",
};
static const char *const class_names[6] = {"other", "1xx", "2xx", "3xx", "4xx", "5xx"};

struct cp_api {
    cp_api_options_t o;
    char *admin_token;
    char *bootstrap_token;
    char *read_token;
    struct MHD_Daemon *daemon;
    uint16_t port;
    atomic_ulong requests[H_COUNT][6];
    atomic_ulong refused_invalid; /* resource writes answered 422 Invalid */
};

/* The served kinds: cp_kinds.h's table, so the API and the CLI name a kind one way. */
typedef cp_kind_info_t kind_t;
static const kind_t *const kinds = cp_kinds;

static const kind_t *find_kind(const char *group, const char *version, const char *plural)
{
    return cp_kinds_find(group, version, plural);
}

/* ---- responses ---- */

static void resp_json(cp_api_resp_t *resp, unsigned status, json_t *o)
{
    resp->status = status;
    resp->content_type = "application/json";
    resp->body = json_dumps(o, JSON_COMPACT);
    WF_ASSERT(resp->body != NULL);
    json_decref(o);
}

static void resp_text(cp_api_resp_t *resp, unsigned status, const char *ctype, const char *text)
{
    resp->status = status;
    resp->content_type = ctype;
    resp->body = strdup(text);
    WF_ASSERT(resp->body != NULL);
}

static void resp_status(cp_api_resp_t *resp, unsigned code, const char *reason, const char *fmt,
                        ...) __attribute__((format(printf, 4, 5)));

/* A Kubernetes Status object for a failure. */
static void resp_status(cp_api_resp_t *resp, unsigned code, const char *reason, const char *fmt,
                        ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    json_t *o = json_pack("{s:s, s:s, s:{}, s:s, s:s, s:s, s:i}", "kind", "Status", "apiVersion",
                          "v1", "metadata", "status", "Failure", "message", msg, "reason", reason,
                          "code", (int)code);
    /* json_pack refuses invalid UTF-8; a message quoting hostile input falls back to a plain
     * one rather than to no answer. */
    if (o == NULL) {
        o = json_pack("{s:s, s:s, s:{}, s:s, s:s, s:s, s:i}", "kind", "Status", "apiVersion", "v1",
                      "metadata", "status", "Failure", "message", reason, "reason", reason, "code",
                      (int)code);
    }
    resp_json(resp, code, o);
}

/* ---- access ---- */

static bool is_admin(const cp_api_t *a, const cp_api_req_t *req)
{
    return cp_token_check_bearer(req->authorization, a->admin_token);
}

static bool is_reader(const cp_api_t *a, const cp_api_req_t *req)
{
    return a->read_token != NULL && cp_token_check_bearer(req->authorization, a->read_token);
}

static bool may_read(const cp_api_t *a, const cp_api_req_t *req)
{
    return a->o.read_open || is_admin(a, req) || is_reader(a, req);
}

static bool is_proxy(const cp_api_t *a, const cp_api_req_t *req)
{
    return (a->bootstrap_token != NULL &&
            cp_token_check_bearer(req->authorization, a->bootstrap_token)) ||
           is_admin(a, req);
}

/* A request refused for its token: 403 when it holds the read token (valid, but only for
 * reads), else 401. */
static void unauthorized(const cp_api_t *a, const cp_api_req_t *req, cp_api_resp_t *resp)
{
    if (is_reader(a, req)) {
        resp_status(resp, 403, "Forbidden", "Forbidden: the read token only reads");
    } else {
        resp_status(resp, 401, "Unauthorized", "Unauthorized: a valid bearer token is required");
    }
}

/* Tell the push engine that the configuration changed. */
static void changed(cp_api_t *a)
{
    if (a->o.push != NULL) {
        cp_push_notify(a->o.push, wf_mono_ns() / 1000000);
    }
}

/* ---- JSON bodies ---- */

/* Parse the body as a JSON object; on failure a 400 is in resp and NULL returned. */
static json_t *parse_object(const cp_api_req_t *req, cp_api_resp_t *resp)
{
    json_error_t jerr;
    if (req->body == NULL || req->body_len == 0) {
        resp_status(resp, 400, "BadRequest", "the request body is empty: a JSON object is needed");
        return NULL;
    }
    json_t *o = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (o == NULL) {
        resp_status(resp, 400, "BadRequest", "malformed JSON at line %d column %d: %s", jerr.line,
                    jerr.column, jerr.text);
        return NULL;
    }
    if (!json_is_object(o)) {
        json_decref(o);
        resp_status(resp, 400, "BadRequest", "the request body must be a JSON object");
        return NULL;
    }
    return o;
}

/* A DNS-1123 subdomain (resource names) or, with label, a DNS-1123 label (namespaces). */
static bool dns_name(const char *s, bool label)
{
    size_t n = strlen(s);
    if (n == 0 || n > (label ? 63u : 253u)) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!alnum && c != '-' && (label || c != '.')) {
            return false;
        }
        if (!alnum && (i == 0 || i == n - 1)) {
            return false;
        }
    }
    return true;
}

/* ---- resources ---- */

typedef struct {
    const kind_t *k;
    const char *version;
    const char *ns;   /* NULL: all namespaces */
    const char *name; /* NULL: the collection */
} res_path_t;

/* Kubernetes writes timestamps to the second: 2026-01-02T03:04:05Z. */
static void rfc3339_ms(int64_t ms, char *out, size_t len)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* The stored object as the API shows it: the document plus the server's metadata. */
static json_t *resource_json(const cp_stored_t *r)
{
    json_t *o = json_loads(r->doc, 0, NULL);
    if (o == NULL || !json_is_object(o)) {
        json_decref(o);
        o = json_object();
    }
    json_t *md = json_object_get(o, "metadata");
    if (!json_is_object(md)) {
        md = json_object();
        json_object_set_new(o, "metadata", md);
    }
    char rv[24], ts[40];
    snprintf(rv, sizeof(rv), "%lld", (long long)r->resource_version);
    rfc3339_ms(r->created_ms, ts, sizeof(ts));
    json_object_set_new(md, "name", json_string(r->name));
    json_object_set_new(md, "namespace", json_string(r->ns));
    json_object_set_new(md, "resourceVersion", json_string(rv));
    json_object_set_new(md, "generation", json_integer(r->generation));
    json_object_set_new(md, "creationTimestamp", json_string(ts));
    json_object_set_new(o, "apiVersion", json_string(r->api_version));
    json_object_set_new(o, "kind", json_string(r->kind));
    return o;
}

static const char *const server_metadata[] = {
    "resourceVersion", "generation", "creationTimestamp", "uid", "managedFields", "selfLink", NULL};

static void env_fail(cp_api_resp_t *resp, const char *where, unsigned code, const char *reason,
                     const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* A Status failure whose message starts with where ("items[3]: " in a batch, "" alone). */
static void env_fail(cp_api_resp_t *resp, const char *where, unsigned code, const char *reason,
                     const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    resp_status(resp, code, reason, "%s%s", where, msg);
}

/*
 * The typed Istio validation (cp_istio.h) of a resource document: 0, or an error with the
 * message naming the field path (`spec.http[0].route[1].weight: must be >= 0`) in why.
 */
static int istio_validate(json_t *o, char *why, size_t cap)
{
    char *text = json_dumps(o, JSON_COMPACT);
    if (text == NULL) {
        snprintf(why, cap, "cannot serialise the document");
        return WF_E_INVAL;
    }
    cp_err_t err;
    memset(&err, 0, sizeof(err));
    cp_yaml_stream_t *s = NULL;
    cp_resource_t *r = NULL;
    int rc = cp_yaml_parse(text, strlen(text), NULL, &s, &err);
    if (rc == 0 && s->n_docs != 1) {
        snprintf(err.msg, sizeof(err.msg), "one document expected");
        rc = WF_E_INVAL;
    }
    if (rc == 0) {
        rc = cp_istio_parse(s->docs[0], &r, &err);
    }
    if (rc != 0) {
        snprintf(why, cap, "%s", err.msg[0] != '\0' ? err.msg : cp_strerror(rc));
    }
    cp_resource_free(r);
    cp_yaml_free(s);
    free(text);
    return rc;
}

/*
 * Check a resource body's envelope against the path and turn it into a write. On success the
 * strings in w are owned by the caller through *doc and *spec (free()) and the object o; on
 * failure resp holds the answer.
 */
static int envelope(const res_path_t *p, const char *where, json_t *o, cp_write_t *w, char **doc,
                    char **spec, cp_api_resp_t *resp)
{
    const char *api_version = json_string_value(json_object_get(o, "apiVersion"));
    const char *kind = json_string_value(json_object_get(o, "kind"));
    json_t *md = json_object_get(o, "metadata");
    json_t *sp = json_object_get(o, "spec");
    char want[96];

    snprintf(want, sizeof(want), "%s/", p->k->group);
    if (api_version == NULL || strncmp(api_version, want, strlen(want)) != 0 ||
        find_kind(p->k->group, api_version + strlen(want), p->k->plural) == NULL) {
        env_fail(resp, where, 400, "BadRequest",
                 "apiVersion: must be %s/<version> with a version this server serves for %s",
                 p->k->group, p->k->kind);
        return WF_E_INVAL;
    }
    if (kind == NULL || strcmp(kind, p->k->kind) != 0) {
        env_fail(resp, where, 400, "BadRequest", "kind: must be %s for %s.%s", p->k->kind,
                 p->k->plural, p->k->group);
        return WF_E_INVAL;
    }
    if (!json_is_object(md)) {
        env_fail(resp, where, 422, "Invalid", "metadata: must be an object");
        return WF_E_INVAL;
    }
    const char *name = json_string_value(json_object_get(md, "name"));
    json_t *ns_j = json_object_get(md, "namespace");
    const char *ns = json_string_value(ns_j);
    if (name == NULL || !dns_name(name, false)) {
        env_fail(resp, where, 422, "Invalid",
                 "metadata.name: must be a DNS-1123 subdomain (lowercase alphanumerics, '-', "
                 "'.')");
        return WF_E_INVAL;
    }
    if (ns_j != NULL && (ns == NULL || strcmp(ns, p->ns) != 0)) {
        env_fail(resp, where, 400, "BadRequest",
                 "metadata.namespace: the namespace of the object does not match the "
                 "namespace of the request (%s)",
                 p->ns);
        return WF_E_INVAL;
    }
    if (p->name != NULL && strcmp(name, p->name) != 0) {
        env_fail(resp, where, 400, "BadRequest",
                 "metadata.name: the name of the object does not match the name in the path "
                 "(%s)",
                 p->name);
        return WF_E_INVAL;
    }
    if (sp != NULL && !json_is_object(sp)) {
        env_fail(resp, where, 422, "Invalid", "spec: must be an object");
        return WF_E_INVAL;
    }
    char why[400];
    if (istio_validate(o, why, sizeof(why)) != 0) {
        env_fail(resp, where, 422, "Invalid", "%s", why);
        return WF_E_INVAL;
    }
    w->expect_rv = 0;
    json_t *rv_j = json_object_get(md, "resourceVersion");
    if (rv_j != NULL) {
        const char *rv = json_string_value(rv_j);
        char *end = NULL;
        long long v = rv ? strtoll(rv, &end, 10) : 0;
        if (rv == NULL || end == rv || *end != '\0' || v <= 0) {
            env_fail(resp, where, 422, "Invalid",
                     "metadata.resourceVersion: must be a positive integer in a string");
            return WF_E_INVAL;
        }
        w->expect_rv = v;
    }
    /* Keep what the caller wrote; drop what the server owns. */
    if (ns_j == NULL) {
        /* Only when absent: a present one equals p->ns, which may point into it. */
        json_object_set_new(md, "namespace", json_string(p->ns));
    }
    for (const char *const *f = server_metadata; *f; f++) {
        json_object_del(md, *f);
    }
    *spec = sp ? json_dumps(sp, JSON_COMPACT | JSON_SORT_KEYS) : strdup("{}");
    *doc = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    WF_ASSERT(*spec != NULL && *doc != NULL);
    w->kind = p->k->kind;
    w->ns = p->ns;
    w->name = json_string_value(json_object_get(md, "name"));
    w->api_version = api_version;
    w->spec = *spec;
    w->doc = *doc;
    return 0;
}

static void write_error(const res_path_t *p, const char *name, int err, cp_api_resp_t *resp)
{
    switch (err) {
    case CP_E_EXISTS:
        resp_status(resp, 409, "AlreadyExists", "%s.%s \"%s\" already exists", p->k->plural,
                    p->k->group, name);
        break;
    case CP_E_CONFLICT:
        resp_status(resp, 409, "Conflict",
                    "Operation cannot be fulfilled on %s.%s \"%s\": the object has been "
                    "modified; please apply your changes to the latest version and try again",
                    p->k->plural, p->k->group, name);
        break;
    case WF_E_NOTFOUND:
        resp_status(resp, 404, "NotFound", "%s.%s \"%s\" not found", p->k->plural, p->k->group,
                    name);
        break;
    default:
        WF_LOG(WF_ERROR, "control", "resource write failed", "err=\"%s\"", cp_strerror(err));
        resp_status(resp, 500, "InternalError", "the store failed: %s", cp_strerror(err));
        break;
    }
}

static void res_write(cp_api_t *a, const res_path_t *p, const cp_api_req_t *req, int64_t now_ms,
                      cp_api_resp_t *resp)
{
    bool create = strcmp(req->method, "POST") == 0;
    json_t *o = parse_object(req, resp);
    char *doc = NULL, *spec = NULL;
    cp_write_t w = {.op = create ? CP_OP_CREATE : CP_OP_UPDATE};
    cp_stored_t out = {0};

    if (o == NULL || envelope(p, "", o, &w, &doc, &spec, resp) < 0) {
        goto done;
    }
    if (create) {
        w.expect_rv = 0;
    }
    int err = cp_store_write(a->o.store, &w, 1, now_ms, &out, NULL);
    if (err < 0) {
        write_error(p, w.name, err, resp);
        goto done;
    }
    if (out.change != CP_UNCHANGED) {
        changed(a);
    }
    resp_json(resp, create ? 201 : 200, resource_json(&out));
    cp_stored_free(&out);
done:
    free(doc);
    free(spec);
    json_decref(o);
}

static void res_delete(cp_api_t *a, const res_path_t *p, const cp_api_req_t *req, int64_t now_ms,
                       cp_api_resp_t *resp)
{
    cp_write_t w = {.op = CP_OP_DELETE, .kind = p->k->kind, .ns = p->ns, .name = p->name};
    if (req->resource_version != NULL) {
        char *end = NULL;
        long long v = strtoll(req->resource_version, &end, 10);
        if (end == req->resource_version || *end != '\0' || v <= 0) {
            resp_status(resp, 400, "BadRequest", "resourceVersion: must be a positive integer");
            return;
        }
        w.expect_rv = v;
    }
    cp_stored_t out = {0};
    int err = cp_store_write(a->o.store, &w, 1, now_ms, &out, NULL);
    if (err < 0) {
        write_error(p, p->name, err, resp);
        return;
    }
    json_t *st = json_pack("{s:s, s:s, s:{}, s:s, s:{s:s, s:s, s:s}, s:i}", "kind", "Status",
                           "apiVersion", "v1", "metadata", "status", "Success", "details", "name",
                           p->name, "group", p->k->group, "kind", p->k->plural, "code", 200);
    cp_stored_free(&out);
    changed(a);
    resp_json(resp, 200, st);
}

static void res_read(cp_api_t *a, const res_path_t *p, cp_api_resp_t *resp)
{
    if (p->name != NULL) {
        cp_stored_t r = {0};
        int err = cp_store_get(a->o.store, p->k->kind, p->ns, p->name, &r);
        if (err < 0) {
            write_error(p, p->name, err, resp);
            return;
        }
        resp_json(resp, 200, resource_json(&r));
        cp_stored_free(&r);
        return;
    }
    cp_stored_t *list = NULL;
    size_t n = 0;
    int64_t rv = 0;
    int err = cp_store_list(a->o.store, p->k->kind, p->ns, &list, &n, &rv);
    if (err < 0) {
        write_error(p, "", err, resp);
        return;
    }
    json_t *items = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(items, resource_json(&list[i]));
    }
    cp_stored_list_free(list, n);
    char av[96], lk[64], rvs[24];
    snprintf(av, sizeof(av), "%s/%s", p->k->group, p->version);
    snprintf(lk, sizeof(lk), "%sList", p->k->kind);
    snprintf(rvs, sizeof(rvs), "%lld", (long long)rv);
    resp_json(resp, 200,
              json_pack("{s:s, s:s, s:{s:s}, s:o}", "apiVersion", av, "kind", lk, "metadata",
                        "resourceVersion", rvs, "items", items));
}

static void serve_resources(cp_api_t *a, const cp_api_req_t *req, int64_t now_ms,
                            cp_api_resp_t *resp)
{
    /* /apis/{group}/{version}[/namespaces/{ns}]/{plural}[/{name}] */
    char buf[512];
    char *seg[8];
    size_t nseg = 0;
    if (strlen(req->path) >= sizeof(buf)) {
        resp_status(resp, 404, "NotFound", "the server could not find the requested resource");
        return;
    }
    strcpy(buf, req->path);
    for (char *save = NULL, *t = strtok_r(buf, "/", &save); t; t = strtok_r(NULL, "/", &save)) {
        if (nseg == 8) {
            nseg = 0;
            break;
        }
        seg[nseg++] = t;
    }
    res_path_t p = {0};
    const char *plural = NULL;
    if (nseg == 4) {
        plural = seg[3];
    } else if ((nseg == 6 || nseg == 7) && strcmp(seg[3], "namespaces") == 0) {
        p.ns = seg[4];
        plural = seg[5];
        p.name = nseg == 7 ? seg[6] : NULL;
    }
    if (plural == NULL || strcmp(seg[0], "apis") != 0 ||
        (p.k = find_kind(seg[1], seg[2], plural)) == NULL) {
        resp_status(resp, 404, "NotFound", "the server could not find the requested resource");
        return;
    }
    p.version = seg[2];
    if (p.ns != NULL && !dns_name(p.ns, true)) {
        resp_status(resp, 400, "BadRequest", "namespace: must be a DNS-1123 label");
        return;
    }
    bool get = strcmp(req->method, "GET") == 0 || strcmp(req->method, "HEAD") == 0;
    bool allowed =
        get || (p.ns != NULL && p.name == NULL && strcmp(req->method, "POST") == 0) ||
        (p.name != NULL && (strcmp(req->method, "PUT") == 0 || strcmp(req->method, "DELETE") == 0));
    if (!allowed) {
        resp_status(resp, 405, "MethodNotAllowed", "%s is not supported on this path", req->method);
        return;
    }
    if (get ? !may_read(a, req) : !is_admin(a, req)) {
        unauthorized(a, req, resp);
        return;
    }
    if (get) {
        res_read(a, &p, resp);
    } else if (strcmp(req->method, "DELETE") == 0) {
        res_delete(a, &p, req, now_ms, resp);
    } else {
        res_write(a, &p, req, now_ms, resp);
    }
}

static const char *const change_names[] = {"unchanged", "created", "configured", "deleted"};

/*
 * POST /v1/apply: {"items":[document, ...]} (a kind "List" too), each created or updated
 * (with a precondition when its metadata carries a resourceVersion), all in one transaction:
 * one bad document and nothing is applied.
 */
static void serve_apply(cp_api_t *a, const cp_api_req_t *req, int64_t now_ms, cp_api_resp_t *resp)
{
    json_t *o = parse_object(req, resp);
    json_t *items = o ? json_object_get(o, "items") : NULL;
    cp_write_t *w = NULL;
    char **docs = NULL, **specs = NULL;
    cp_stored_t *out = NULL;
    size_t n = 0, failed = 0;

    if (o == NULL) {
        return;
    }
    if (!json_is_array(items) || json_array_size(items) == 0 ||
        json_array_size(items) > CP_API_MAX_BATCH) {
        resp_status(resp, 400, "BadRequest", "items: must be an array of 1 to %d resources",
                    CP_API_MAX_BATCH);
        goto done;
    }
    n = json_array_size(items);
    w = wf_calloc(n, sizeof(*w));
    docs = wf_calloc(n, sizeof(*docs));
    specs = wf_calloc(n, sizeof(*specs));
    for (size_t i = 0; i < n; i++) {
        json_t *it = json_array_get(items, i);
        char where[32], group[128];
        snprintf(where, sizeof(where), "items[%zu]: ", i);
        const char *av =
            json_is_object(it) ? json_string_value(json_object_get(it, "apiVersion")) : NULL;
        const char *kind =
            json_is_object(it) ? json_string_value(json_object_get(it, "kind")) : NULL;
        const char *slash = av ? strchr(av, '/') : NULL;
        res_path_t p = {0};
        if (slash != NULL && kind != NULL && (size_t)(slash - av) < sizeof(group)) {
            memcpy(group, av, (size_t)(slash - av));
            group[slash - av] = '\0';
            for (const kind_t *k = kinds; k->group && p.k == NULL; k++) {
                if (strcmp(k->kind, kind) == 0) {
                    p.k = find_kind(group, slash + 1, k->plural);
                }
            }
        }
        if (p.k == NULL) {
            resp_status(resp, 400, "BadRequest",
                        "items[%zu]: apiVersion and kind must name a kind this server serves", i);
            goto done;
        }
        json_t *md = json_object_get(it, "metadata");
        json_t *ns = json_is_object(md) ? json_object_get(md, "namespace") : NULL;
        p.version = slash + 1;
        p.ns = json_is_string(ns) ? json_string_value(ns) : "default";
        if (!dns_name(p.ns, true)) {
            resp_status(resp, 400, "BadRequest",
                        "items[%zu]: metadata.namespace: must be a DNS-1123 label", i);
            goto done;
        }
        if (envelope(&p, where, it, &w[i], &docs[i], &specs[i], resp) < 0) {
            goto done;
        }
        w[i].op = w[i].expect_rv ? CP_OP_UPDATE : CP_OP_APPLY;
    }
    out = wf_calloc(n, sizeof(*out));
    int err = cp_store_write(a->o.store, w, n, now_ms, out, &failed);
    if (err < 0) {
        const kind_t *k = kinds;
        for (; k->group && strcmp(k->kind, w[failed < n ? failed : 0].kind) != 0; k++) {
        }
        res_path_t p = {.k = k};
        write_error(&p, failed < n ? w[failed].name : "", err, resp);
        wf_free(out);
        out = NULL;
        goto done;
    }
    json_t *res = json_array();
    bool any = false;
    for (size_t i = 0; i < n; i++) {
        any = any || out[i].change != CP_UNCHANGED;
    }
    if (any) {
        changed(a);
    }
    for (size_t i = 0; i < n; i++) {
        char rv[24];
        snprintf(rv, sizeof(rv), "%lld", (long long)out[i].resource_version);
        json_array_append_new(res, json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:s}", "apiVersion",
                                             out[i].api_version, "kind", out[i].kind, "namespace",
                                             out[i].ns, "name", out[i].name, "resourceVersion", rv,
                                             "generation", (json_int_t)out[i].generation, "result",
                                             change_names[out[i].change]));
        cp_stored_free(&out[i]);
    }
    wf_free(out);
    resp_json(resp, 200, json_pack("{s:o}", "items", res));
done:
    for (size_t i = 0; docs != NULL && i < n; i++) {
        free(docs[i]);
        free(specs[i]);
    }
    wf_free(docs);
    wf_free(specs);
    wf_free(w);
    json_decref(o);
}

/* ---- registry ---- */

static json_t *workload_json(const cp_workload_t *w, int64_t now_ms)
{
    char spiffe[600];
    cp_spiffe_id(w, spiffe, sizeof(spiffe));
    json_t *labels = json_object();
    for (size_t i = 0; i < w->nlabels; i++) {
        json_object_set_new(labels, w->labels[i].name, json_string(w->labels[i].value));
    }
    json_t *ports = json_array();
    for (size_t i = 0; i < w->nports; i++) {
        json_array_append_new(ports, json_integer(w->ports[i]));
    }
    int64_t left = w->expires_ms - now_ms;
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:o, s:o, s:i, s:s, s:s, s:s, s:I, s:s}", "id",
                     w->id, "service", w->service, "namespace", w->ns, "version", w->version,
                     "address", w->address, "serviceAccount", w->service_account, "labels", labels,
                     "ports", ports, "adminPort", (int)w->admin_port, "identity", spiffe,
                     "canonicalService", cp_canonical_service(w), "canonicalRevision",
                     cp_canonical_revision(w), "leaseRemainingMs",
                     (json_int_t)(left > 0 ? left : 0), "mode", w->gateway ? "gateway" : "sidecar");
}

static const char *opt_str(json_t *o, const char *key, bool *bad)
{
    json_t *v = json_object_get(o, key);
    if (v != NULL && !json_is_string(v)) {
        *bad = true;
    }
    return json_string_value(v);
}

static void serve_register(cp_api_t *a, const cp_api_req_t *req, int64_t now_ms,
                           cp_api_resp_t *resp)
{
    json_t *o = parse_object(req, resp);
    cp_label_t labels[CP_REGISTRY_MAX_LABELS];
    uint16_t ports[CP_REGISTRY_MAX_PORTS];
    cp_workload_t w = {0};
    bool bad = false;
    char err[256];

    if (o == NULL) {
        return;
    }
    w.service = (char *)opt_str(o, "service", &bad);
    w.ns = (char *)opt_str(o, "namespace", &bad);
    w.version = (char *)opt_str(o, "version", &bad);
    w.address = (char *)opt_str(o, "address", &bad);
    w.service_account = (char *)opt_str(o, "serviceAccount", &bad);
    const char *mode = opt_str(o, "mode", &bad);
    if (bad) {
        resp_status(resp, 400, "BadRequest",
                    "service, namespace, version, address, serviceAccount, mode: must be strings");
        goto done;
    }
    if (mode != NULL && strcmp(mode, "sidecar") != 0 && strcmp(mode, "gateway") != 0) {
        resp_status(resp, 422, "Invalid", "mode: must be \"sidecar\" or \"gateway\"");
        goto done;
    }
    w.gateway = mode != NULL && strcmp(mode, "gateway") == 0;
    if (w.ns == NULL) {
        w.ns = "default";
    }
    json_t *lj = json_object_get(o, "labels");
    if (lj != NULL) {
        if (!json_is_object(lj) || json_object_size(lj) > CP_REGISTRY_MAX_LABELS) {
            resp_status(resp, 400, "BadRequest",
                        "labels: must be an object of at most %d string values",
                        CP_REGISTRY_MAX_LABELS);
            goto done;
        }
        const char *k;
        json_t *v;
        json_object_foreach(lj, k, v)
        {
            if (!json_is_string(v)) {
                resp_status(resp, 400, "BadRequest", "labels.%s: must be a string", k);
                goto done;
            }
            labels[w.nlabels].name = (char *)k;
            labels[w.nlabels].value = (char *)json_string_value(v);
            w.nlabels++;
        }
        w.labels = labels;
    }
    json_t *pj = json_object_get(o, "ports");
    if (pj != NULL) {
        if (!json_is_array(pj) || json_array_size(pj) > CP_REGISTRY_MAX_PORTS) {
            resp_status(resp, 400, "BadRequest", "ports: must be an array of at most %d ports",
                        CP_REGISTRY_MAX_PORTS);
            goto done;
        }
        size_t i;
        json_t *v;
        json_array_foreach(pj, i, v)
        {
            json_int_t port = json_integer_value(v);
            if (!json_is_integer(v) || port < 1 || port > 65535) {
                resp_status(resp, 400, "BadRequest", "ports[%zu]: must be an integer 1..65535", i);
                goto done;
            }
            ports[w.nports++] = (uint16_t)port;
        }
        w.ports = ports;
    }
    json_t *aj = json_object_get(o, "adminPort");
    if (aj != NULL) {
        json_int_t port = json_integer_value(aj);
        if (!json_is_integer(aj) || port < 0 || port > 65535) {
            resp_status(resp, 400, "BadRequest", "adminPort: must be an integer 0..65535");
            goto done;
        }
        w.admin_port = (uint16_t)port;
    }
    cp_workload_t out = {0};
    int e = cp_registry_register(a->o.registry, &w, now_ms, &out, err, sizeof(err));
    if (e == WF_E_INVAL) {
        resp_status(resp, 422, "Invalid", "%s", err);
    } else if (e < 0) {
        resp_status(resp, 500, "InternalError", "%s", err);
    } else {
        changed(a);
        resp_json(resp, 200, workload_json(&out, now_ms));
        cp_workload_free(&out);
    }
done:
    json_decref(o);
}

static void serve_heartbeat(cp_api_t *a, const cp_api_req_t *req, int64_t now_ms,
                            cp_api_resp_t *resp)
{
    json_t *o = parse_object(req, resp);
    if (o == NULL) {
        return;
    }
    const char *id = json_string_value(json_object_get(o, "id"));
    int64_t expires = 0;
    if (id == NULL) {
        resp_status(resp, 400, "BadRequest", "id: required (the id /v1/register returned)");
    } else {
        int e = cp_registry_heartbeat(a->o.registry, id, now_ms, &expires);
        if (e == WF_E_NOTFOUND) {
            resp_status(resp, 404, "NotFound",
                        "workload \"%s\" is not registered (or its lease ran out): register "
                        "again",
                        id);
        } else if (e < 0) {
            resp_status(resp, 500, "InternalError", "the store failed: %s", cp_strerror(e));
        } else {
            resp_json(resp, 200,
                      json_pack("{s:s, s:I}", "id", id, "leaseRemainingMs",
                                (json_int_t)(expires - now_ms)));
        }
    }
    json_decref(o);
}

static void serve_workloads(cp_api_t *a, int64_t now_ms, bool targets, cp_api_resp_t *resp)
{
    cp_workload_t *list = NULL;
    size_t n = 0;
    cp_registry_list(a->o.registry, now_ms, &list, &n);
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        const cp_workload_t *w = &list[i];
        if (!targets) {
            json_array_append_new(arr, workload_json(w, now_ms));
            continue;
        }
        if (w->admin_port == 0) {
            continue;
        }
        char addr[300];
        /* An IPv6 literal needs brackets in a host:port target. */
        snprintf(addr, sizeof(addr), strchr(w->address, ':') ? "[%s]:%u" : "%s:%u", w->address,
                 (unsigned)w->admin_port);
        const char *workload = w->version[0] ? NULL : w->service;
        char wl[200];
        if (workload == NULL) {
            snprintf(wl, sizeof(wl), "%s-%s", w->service, w->version);
            workload = wl;
        }
        json_array_append_new(arr,
                              json_pack("{s:[s], s:{s:s, s:s, s:s, s:s, s:s}}", "targets", addr,
                                        "labels", "__metrics_path__", "/stats/prometheus",
                                        "namespace", w->ns, "app", cp_canonical_service(w),
                                        "version", cp_canonical_revision(w), "workload", workload));
    }
    cp_workload_list_free(list, n);
    if (targets) {
        resp_json(resp, 200, arr);
    } else {
        resp_json(resp, 200, json_pack("{s:o}", "items", arr));
    }
}

static void serve_metrics(cp_api_t *a, cp_api_resp_t *resp)
{
    cp_registry_stats_t st;
    cp_registry_stats(a->o.registry, &st);
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    WF_ASSERT(f != NULL);
    fprintf(f, "# HELP weft_control_http_requests_total HTTP requests answered, by handler and "
               "status class.\n# TYPE weft_control_http_requests_total counter\n");
    for (size_t h = 0; h < H_COUNT; h++) {
        for (size_t c = 0; c < 6; c++) {
            unsigned long v = atomic_load(&a->requests[h][c]);
            if (v != 0 || c == 2) {
                fprintf(f, "weft_control_http_requests_total{code=\"%s\",handler=\"%s\"} %lu\n",
                        class_names[c], handler_names[h], v);
            }
        }
    }
    fprintf(f,
            "# HELP weft_control_registered_workloads Workloads holding a lease.\n"
            "# TYPE weft_control_registered_workloads gauge\n"
            "weft_control_registered_workloads %llu\n"
            "# HELP weft_control_registrations_total Registrations accepted.\n"
            "# TYPE weft_control_registrations_total counter\n"
            "weft_control_registrations_total %llu\n"
            "# HELP weft_control_heartbeats_total Heartbeats accepted.\n"
            "# TYPE weft_control_heartbeats_total counter\n"
            "weft_control_heartbeats_total %llu\n"
            "# HELP weft_control_leases_expired_total Workloads removed because their lease ran "
            "out.\n"
            "# TYPE weft_control_leases_expired_total counter\n"
            "weft_control_leases_expired_total %llu\n"
            "# HELP weft_control_resource_version The store's resourceVersion.\n"
            "# TYPE weft_control_resource_version gauge\n"
            "weft_control_resource_version %lld\n"
            "# HELP weft_control_validation_refusals_total Resource writes refused as invalid "
            "(422: the field path is in the answer); nothing of them was stored.\n"
            "# TYPE weft_control_validation_refusals_total counter\n"
            "weft_control_validation_refusals_total %lu\n",
            (unsigned long long)st.registered, (unsigned long long)st.registrations,
            (unsigned long long)st.heartbeats, (unsigned long long)st.leases_expired,
            (long long)cp_store_rv(a->o.store), atomic_load(&a->refused_invalid));
    if (a->o.push != NULL) {
        cp_push_metrics(a->o.push, wf_mono_ns() / 1000000, f);
    }
    if (a->o.ca != NULL) {
        cp_ca_metrics(a->o.ca, f);
    }
    fclose(f);
    resp->status = 200;
    resp->content_type = "text/plain; version=0.0.4; charset=utf-8";
    resp->body = out;
}

/* ---- push ---- */

/* Most a poll may ask to be held (wait_ms); libmicrohttpd does not time out a held one. */
#define MAX_WAIT_MS 300000

/* A non-negative decimal integer, or absent (def). */
static bool query_int(const char *s, int64_t def, int64_t *out)
{
    if (s == NULL) {
        *out = def;
        return true;
    }
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (end == s || *end != '\0' || v < 0 || errno != 0) {
        return false;
    }
    *out = v;
    return true;
}

/* The poll's query from req; false with a 400 in resp when it is malformed. */
static bool snapshot_query(const cp_api_req_t *req, const char *wait, cp_push_query_t *q,
                           int64_t *wait_ms, cp_api_resp_t *resp)
{
    memset(q, 0, sizeof(*q));
    q->proxy_id = req->query_proxy;
    q->reason = req->query_reason;
    if (q->proxy_id == NULL || q->proxy_id[0] == '\0') {
        resp_status(resp, 400, "BadRequest", "proxy: required (the proxy's id)");
        return false;
    }
    if (!query_int(req->query_version, 0, &q->version) ||
        !query_int(req->query_nack, 0, &q->nack)) {
        resp_status(resp, 400, "BadRequest", "version, nack: must be non-negative integers");
        return false;
    }
    if (!query_int(wait, CP_PUSH_DEFAULT_WAIT_MS, wait_ms) || *wait_ms > MAX_WAIT_MS) {
        resp_status(resp, 400, "BadRequest", "wait_ms: must be an integer 0..%d", MAX_WAIT_MS);
        return false;
    }
    return true;
}

/* Whether an Accept-Encoding value lists gzip (or x-gzip) with a non-zero q (RFC 9110 12.5.3;
 * "*" is not taken as gzip: a proxy that wants it says so). */
static bool accepts_gzip(const char *ae)
{
    for (const char *p = ae; p != NULL && *p != '\0';) {
        p += strspn(p, " \t,");
        size_t n = strcspn(p, " \t;,");
        bool gzip = (n == 4 && strncasecmp(p, "gzip", 4) == 0) ||
                    (n == 6 && strncasecmp(p, "x-gzip", 6) == 0);
        p += n;
        bool zero = false;
        /* parameters up to the next coding: only q matters */
        while (*p != '\0' && *p != ',') {
            p += strspn(p, " \t;");
            if ((p[0] == 'q' || p[0] == 'Q') && p[1] == '=') {
                zero = strtod(p + 2, NULL) <= 0.0;
            }
            p += strcspn(p, ";,");
        }
        if (gzip && !zero) {
            return true;
        }
    }
    return false;
}

/* What a poll that got no document is answered: 304, or the engine's refusal. */
static void snapshot_outcome(int rc, char *doc, size_t len, cp_api_resp_t *resp)
{
    if (rc == CP_PUSH_DOC) {
        resp->status = 200;
        resp->content_type = "application/json";
        resp->body = doc;
        (void)len;
    } else if (rc == CP_PUSH_WAIT || rc == CP_PUSH_CLOSED) {
        resp_text(resp, 304, "application/json", "");
    } else if (rc == WF_E_INVAL) {
        resp_status(resp, 400, "BadRequest",
                    "proxy: must be 1 to 253 printable characters without spaces");
    } else if (rc == WF_E_LIMIT) {
        resp_status(resp, 503, "ServiceUnavailable", "too many proxies are tracked");
    } else {
        resp_status(resp, 500, "InternalError", "the snapshot could not be compiled: %s",
                    cp_strerror(rc));
    }
}

/* GET /v1/snapshot without waiting (cp_api_handle; the HTTP layer parks polls itself). */
static void serve_snapshot(cp_api_t *a, const cp_api_req_t *req, cp_api_resp_t *resp)
{
    cp_push_query_t q;
    int64_t wait_ms;
    char *doc = NULL;
    size_t len = 0;
    if (!snapshot_query(req, NULL, &q, &wait_ms, resp)) {
        return;
    }
    int rc = cp_push_poll(a->o.push, &q, wf_mono_ns() / 1000000, NULL, &doc, &len);
    if (rc == CP_PUSH_DOC) {
        /* The caller sends it from its own memory, outside the engine's budget. */
        cp_push_sent(a->o.push, len);
    }
    snapshot_outcome(rc, doc, len, resp);
}

static void serve_proxy_status(cp_api_t *a, cp_api_resp_t *resp)
{
    resp_json(resp, 200, cp_push_status(a->o.push, wf_mono_ns() / 1000000));
}

/* ---- dispatch ---- */

static int handler_of(const char *path)
{
    for (int h = 0; h < H_COUNT - 1; h++) {
        if (h == H_RESOURCES ? strncmp(path, "/apis/", 6) == 0
                             : strcmp(path, handler_names[h]) == 0) {
            return h;
        }
    }
    return H_OTHER;
}

static bool method_is(const cp_api_req_t *req, const char *m)
{
    return strcmp(req->method, m) == 0 ||
           (strcmp(m, "GET") == 0 && strcmp(req->method, "HEAD") == 0);
}

/* GET /v1/analyze[?namespace=NS]: the cross-resource findings over the stored configuration
 * and the live workloads, as {"messages":[...]}. */
static void serve_analyze(cp_api_t *a, const cp_api_req_t *req, int64_t now_ms, cp_api_resp_t *resp)
{
    if (!method_is(req, "GET")) {
        resp_status(resp, 405, "MethodNotAllowed", "use GET");
        return;
    }
    if (!may_read(a, req)) {
        unauthorized(a, req, resp);
        return;
    }
    cp_config_t *cfg = NULL;
    int rc = cp_config_load(a->o.store, a->o.registry, now_ms, &cfg);
    if (rc != 0) {
        resp_status(resp, 500, "InternalError", "the store failed: %s", cp_strerror(rc));
        return;
    }
    cp_finding_t *f = NULL;
    size_t n = 0;
    cp_analyze(cfg, &f, &n);
    const char *ns = req->ns_filter != NULL && req->ns_filter[0] != '\0' ? req->ns_filter : NULL;
    resp_json(resp, 200, cp_findings_json(f, n, ns));
    cp_findings_free(f, n);
    cp_config_free(cfg);
}

/* ---- CA (cp_ca.h; errors are {"error": "..."} as docs/controlplane.md says) ---- */

static void ca_error(cp_api_resp_t *resp, unsigned code, const char *msg)
{
    json_t *o = json_pack("{s:s}", "error", msg);
    resp_json(resp, code, o != NULL ? o : json_pack("{s:s}", "error", "refused"));
}

/* Hand the CA's bundle to the push engine (it ignores a version it already has). */
static void ca_sync(cp_api_t *a)
{
    char *pem = NULL;
    int64_t v = 0;
    if (a->o.push == NULL) {
        return;
    }
    cp_ca_bundle(a->o.ca, &pem, &v);
    cp_push_set_trust_bundle(a->o.push, pem, v, wf_mono_ns() / 1000000);
    wf_free(pem);
}

/* The SPIFFE id of live workload id into out; false when it is not registered. */
static bool registered_identity(cp_api_t *a, const char *id, int64_t now_ms, char *out, size_t len)
{
    cp_workload_t *list = NULL;
    size_t n = 0;
    bool found = false;
    if (cp_registry_list(a->o.registry, now_ms, &list, &n) != 0) {
        return false;
    }
    for (size_t i = 0; i < n && !found; i++) {
        if (strcmp(list[i].id, id) == 0) {
            int need = cp_spiffe_id(&list[i], out, len);
            found = need > 0 && (size_t)need < len;
        }
    }
    cp_workload_list_free(list, n);
    return found;
}

/* POST /v1/certificate?proxy=ID {"csr": PEM}: a workload certificate for ID's identity. */
static void serve_certificate(cp_api_t *a, const cp_api_req_t *req, int64_t now_ms,
                              cp_api_resp_t *resp)
{
    char id[600], err[256] = "", msg[512];
    json_error_t jerr;
    if (req->query_proxy == NULL || req->query_proxy[0] == '\0') {
        ca_error(resp, 400, "proxy: required (the id /v1/register returned)");
        return;
    }
    json_t *o = req->body != NULL ? json_loadb(req->body, req->body_len, 0, &jerr) : NULL;
    json_t *csr = json_object_get(o, "csr");
    if (!json_is_string(csr)) {
        cp_ca_count_refusal(a->o.ca, CP_CA_R_MALFORMED);
        ca_error(resp, 400, "the body must be a JSON object {\"csr\": \"<PEM>\"}");
        json_decref(o);
        return;
    }
    if (!registered_identity(a, req->query_proxy, now_ms, id, sizeof(id))) {
        cp_ca_count_refusal(a->o.ca, CP_CA_R_UNREGISTERED);
        ca_error(resp, 404,
                 "this proxy is not registered (or its lease ran out): register, then "
                 "retry");
        json_decref(o);
        return;
    }
    cp_ca_issued_t out;
    int rc = cp_ca_sign(a->o.ca, json_string_value(csr), json_string_length(csr), id, now_ms, &out,
                        err, sizeof(err));
    json_decref(o);
    if (rc != 0) {
        snprintf(msg, sizeof(msg), "%s", err);
        ca_error(resp, rc == CP_CA_E_IDENTITY ? 403 : rc == WF_E_INTERNAL ? 500 : 400, msg);
        return;
    }
    resp_json(resp, 200,
              json_pack("{s:s, s:s, s:I, s:I}", "certificate_chain", out.chain_pem, "trust_bundle",
                        out.bundle_pem, "trust_bundle_version", (json_int_t)out.bundle_version,
                        "not_after", (json_int_t)out.not_after));
    cp_ca_issued_free(&out);
}

/* unauthorized() for the CA endpoints, whose errors are {"error": "..."}. */
static void ca_refused(const cp_api_t *a, const cp_api_req_t *req, cp_api_resp_t *resp)
{
    if (is_reader(a, req)) {
        ca_error(resp, 403, "Forbidden: the read token only reads");
    } else {
        ca_error(resp, 401, "Unauthorized: a valid bearer token is required");
    }
}

static void serve_ca(cp_api_t *a, int h, const cp_api_req_t *req, int64_t now_ms,
                     cp_api_resp_t *resp)
{
    bool post = h == H_CERTIFICATE || h == H_CA_ROTATE;
    char err[256] = "";
    if (!method_is(req, post ? "POST" : "GET")) {
        ca_error(resp, 405, post ? "use POST" : "use GET");
    } else if ((h == H_CERTIFICATE && !is_proxy(a, req)) ||
               (h == H_CA_ROTATE && !is_admin(a, req)) || (h == H_CA && !may_read(a, req))) {
        ca_refused(a, req, resp);
    } else if (a->o.ca == NULL) {
        ca_error(resp, 404, "this control plane has no CA");
    } else if (h == H_CERTIFICATE) {
        serve_certificate(a, req, now_ms, resp);
    } else if (h == H_TRUST_BUNDLE) {
        char *pem = NULL;
        cp_ca_bundle(a->o.ca, &pem, &resp->bundle_version);
        resp->status = 200;
        resp->content_type = "application/x-pem-file";
        resp->body = strdup(pem);
        WF_ASSERT(resp->body != NULL);
        wf_free(pem);
    } else if (h == H_CA) {
        resp_json(resp, 200, cp_ca_status(a->o.ca));
    } else {
        int rc = cp_ca_rotate(a->o.ca, now_ms, err, sizeof(err));
        if (rc == 0) {
            ca_sync(a);
            resp_json(resp, 200, cp_ca_status(a->o.ca));
        } else {
            ca_error(resp, rc == CP_CA_E_EXTERNAL || rc == CP_CA_E_BUSY ? 409 : 500, err);
        }
    }
}

void cp_api_handle(cp_api_t *a, const cp_api_req_t *req, int64_t now_ms, cp_api_resp_t *resp)
{
    int h = handler_of(req->path);
    memset(resp, 0, sizeof(*resp));
    switch (h) {
    case H_REGISTER:
    case H_HEARTBEAT:
        if (!method_is(req, "POST")) {
            resp_status(resp, 405, "MethodNotAllowed", "use POST");
        } else if (!is_proxy(a, req)) {
            unauthorized(a, req, resp);
        } else if (h == H_REGISTER) {
            serve_register(a, req, now_ms, resp);
        } else {
            serve_heartbeat(a, req, now_ms, resp);
        }
        break;
    case H_WORKLOADS:
    case H_TARGETS:
        if (!method_is(req, "GET")) {
            resp_status(resp, 405, "MethodNotAllowed", "use GET");
        } else if (!may_read(a, req)) {
            unauthorized(a, req, resp);
        } else {
            serve_workloads(a, now_ms, h == H_TARGETS, resp);
        }
        break;
    case H_RESOURCES:
        serve_resources(a, req, now_ms, resp);
        break;
    case H_APPLY:
        if (!method_is(req, "POST")) {
            resp_status(resp, 405, "MethodNotAllowed", "use POST");
        } else if (!is_admin(a, req)) {
            unauthorized(a, req, resp);
        } else {
            serve_apply(a, req, now_ms, resp);
        }
        break;
    case H_SNAPSHOT:
    case H_PROXY_STATUS:
        if (!method_is(req, "GET")) {
            resp_status(resp, 405, "MethodNotAllowed", "use GET");
        } else if (h == H_SNAPSHOT ? !is_proxy(a, req) : !may_read(a, req)) {
            unauthorized(a, req, resp);
        } else if (a->o.push == NULL) {
            resp_status(resp, 404, "NotFound", "this server pushes no configuration");
        } else if (h == H_SNAPSHOT) {
            serve_snapshot(a, req, resp);
        } else {
            serve_proxy_status(a, resp);
        }
        break;
    case H_METRICS:
        serve_metrics(a, resp);
        break;
    case H_HEALTHZ:
        resp_text(resp, 200, "text/plain; charset=utf-8", "ok\n");
        break;
    case H_ANALYZE:
        serve_analyze(a, req, now_ms, resp);
        break;
    case H_CERTIFICATE:
    case H_TRUST_BUNDLE:
    case H_CA_ROTATE:
    case H_CA:
        serve_ca(a, h, req, now_ms, resp);
        break;
    default:
        resp_status(resp, 404, "NotFound", "the server could not find the requested resource");
        break;
    }
    unsigned cls = resp->status / 100;
    atomic_fetch_add(&a->requests[h][cls <= 5 ? cls : 0], 1);
    if (resp->status == 422 && (h == H_RESOURCES || h == H_APPLY)) {
        atomic_fetch_add(&a->refused_invalid, 1);
    }
}

/* ---- HTTP ---- */

/*
 * libmicrohttpd's memory per connection (request head, read buffer, answer head; bodies are
 * streamed through on_request). Its default, 32 KiB, is touched whole and made a third of the
 * control plane's memory with 2,000 proxies holding polls (bench_control); 8 KiB holds any head
 * a proxy or the CLI sends, with room to spare.
 */
#define CONN_MEMORY 8192

typedef struct {
    char *body;
    size_t len, cap;
    bool too_large;
    /* a held /v1/snapshot poll */
    bool polling;
    struct MHD_Connection *conn;
    cp_push_waiter_t waiter;
    cp_push_query_t query;
    char *proxy, *reason;
} conn_state_t;

static enum MHD_Result send_resp(struct MHD_Connection *conn, const cp_api_resp_t *r)
{
    /* libmicrohttpd leaves the body out of a HEAD answer itself. */
    struct MHD_Response *mr =
        MHD_create_response_from_buffer(strlen(r->body), r->body, MHD_RESPMEM_MUST_COPY);
    if (mr == NULL) {
        return MHD_NO;
    }
    MHD_add_response_header(mr, "Content-Type", r->content_type);
    if (r->bundle_version > 0) {
        char v[24];
        snprintf(v, sizeof(v), "%lld", (long long)r->bundle_version);
        MHD_add_response_header(mr, "X-Weft-Trust-Bundle-Version", v);
    }
    if (r->status == 401) {
        MHD_add_response_header(mr, "WWW-Authenticate", "Bearer");
    }
    enum MHD_Result ret = MHD_queue_response(conn, r->status, mr);
    MHD_destroy_response(mr);
    return ret;
}

/* Answer early (before the body is read) with a ready response. */
static enum MHD_Result early(cp_api_t *a, struct MHD_Connection *conn, int h, cp_api_resp_t *r)
{
    unsigned cls = r->status / 100;
    atomic_fetch_add(&a->requests[h][cls <= 5 ? cls : 0], 1);
    enum MHD_Result ret = send_resp(conn, r);
    free(r->body);
    return ret;
}

/* A document on its way out: freed, and its room in the push budget given back, once sent. */
typedef struct {
    cp_push_t *push;
    char *doc;
    size_t len;
} sending_t;

static void doc_sent(void *arg)
{
    sending_t *s = arg;
    cp_push_sent(s->push, s->len);
    free(s->doc);
    wf_free(s);
}

static void poll_suspend(void *arg)
{
    conn_state_t *st = arg;
    MHD_suspend_connection(st->conn);
}

static void poll_resume(void *arg)
{
    conn_state_t *st = arg;
    MHD_resume_connection(st->conn);
}

/*
 * GET /v1/snapshot over HTTP: the first call parses the query and polls; a poll that must wait
 * is suspended by the push engine and this runs again when it is resumed (a newer version, or
 * its wait ran out: 304).
 */
static enum MHD_Result serve_poll(cp_api_t *a, struct MHD_Connection *conn, conn_state_t *st,
                                  const cp_api_req_t *req)
{
    cp_api_resp_t r = {0};
    int64_t now = wf_mono_ns() / 1000000;
    if (!st->polling) {
        int64_t wait_ms;
        const char *wait = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "wait_ms");
        if (!snapshot_query(req, wait, &st->query, &wait_ms, &r)) {
            return early(a, conn, H_SNAPSHOT, &r);
        }
        st->polling = true;
        st->conn = conn;
        st->proxy = wf_strdup(st->query.proxy_id);
        st->reason = st->query.reason != NULL ? wf_strdup(st->query.reason) : NULL;
        st->query.proxy_id = st->proxy;
        st->query.reason = st->reason;
        st->query.gzip =
            accepts_gzip(MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Accept-Encoding"));
        st->waiter.suspend = poll_suspend;
        st->waiter.resume = poll_resume;
        st->waiter.arg = st;
        st->waiter.deadline_ms = now + wait_ms;
    }
    if (st->waiter.timed_out) {
        snapshot_outcome(CP_PUSH_WAIT, NULL, 0, &r);
        return early(a, conn, H_SNAPSHOT, &r);
    }
    char *doc = NULL;
    size_t len = 0;
    int rc = cp_push_poll(a->o.push, &st->query, now, &st->waiter, &doc, &len);
    if (rc == CP_PUSH_WAIT) {
        return MHD_YES; /* suspended: the engine owns the waiter until it resumes it */
    }
    if (rc != CP_PUSH_DOC) {
        snapshot_outcome(rc, NULL, 0, &r);
        return early(a, conn, H_SNAPSHOT, &r);
    }
    atomic_fetch_add(&a->requests[H_SNAPSHOT][2], 1);
    sending_t *s = wf_malloc(sizeof(*s));
    *s = (sending_t){.push = a->o.push, .doc = doc, .len = len};
    struct MHD_Response *mr =
        MHD_create_response_from_buffer_with_free_callback_cls(len, doc, doc_sent, s);
    if (mr == NULL) {
        doc_sent(s);
        return MHD_NO;
    }
    MHD_add_response_header(mr, "Content-Type", "application/json");
    if (st->query.gzip) {
        MHD_add_response_header(mr, "Content-Encoding", "gzip");
    }
    MHD_add_response_header(mr, "Vary", "Accept-Encoding");
    enum MHD_Result ret = MHD_queue_response(conn, 200, mr);
    MHD_destroy_response(mr);
    return ret;
}

/* The largest body handler h takes: a CSR is small, and signing is the costly endpoint. */
static size_t body_limit(const cp_api_t *a, int h)
{
    return h == H_CERTIFICATE && a->o.max_body > CP_CA_MAX_CSR_BODY ? CP_CA_MAX_CSR_BODY
                                                                    : a->o.max_body;
}

static enum MHD_Result too_large(cp_api_t *a, struct MHD_Connection *conn, int h)
{
    cp_api_resp_t r = {0};
    if (h == H_CERTIFICATE) {
        if (a->o.ca != NULL) {
            cp_ca_count_refusal(a->o.ca, CP_CA_R_TOO_LARGE);
        }
        ca_error(&r, 413, "the request body is larger than the limit of 65536 bytes");
    } else {
        resp_status(&r, 413, "RequestEntityTooLarge",
                    "the request body is larger than the limit of %zu bytes", a->o.max_body);
    }
    return early(a, conn, h, &r);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
    cp_api_t *a = cls;
    conn_state_t *st = *con_cls;
    if (st == NULL) {
        st = wf_calloc(1, sizeof(*st));
        *con_cls = st;
        /* Refuse before reading a body that cannot be taken. */
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
        int h = handler_of(url);
        cp_api_req_t head = {
            .method = method,
            .path = url,
            .authorization = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization"),
        };
        /* A write without its token is refused before its body is read (or even sent, for a
         * client waiting on 100-continue). */
        bool writing = strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0;
        if ((((h == H_RESOURCES && writing) || h == H_APPLY) && !is_admin(a, &head)) ||
            ((h == H_REGISTER || h == H_HEARTBEAT || h == H_SNAPSHOT) && !is_proxy(a, &head))) {
            cp_api_resp_t r = {0};
            unauthorized(a, &head, &r);
            return early(a, conn, h, &r);
        }
        if ((h == H_CERTIFICATE && !is_proxy(a, &head)) ||
            (h == H_CA_ROTATE && !is_admin(a, &head))) {
            cp_api_resp_t r = {0};
            ca_refused(a, &head, &r);
            return early(a, conn, h, &r);
        }
        if (cl != NULL && strtoull(cl, NULL, 10) > body_limit(a, h)) {
            return too_large(a, conn, h);
        }
        return MHD_YES;
    }
    if (*upload_size > 0) {
        if (!st->too_large && st->len + *upload_size > body_limit(a, handler_of(url))) {
            st->too_large = true;
        }
        if (!st->too_large) {
            if (st->len + *upload_size + 1 > st->cap) {
                st->cap = st->len + *upload_size + 1 > st->cap * 2 ? st->len + *upload_size + 1
                                                                   : st->cap * 2;
                st->body = wf_realloc(st->body, st->cap);
            }
            memcpy(st->body + st->len, upload, *upload_size);
            st->len += *upload_size;
            st->body[st->len] = '\0';
        }
        *upload_size = 0;
        return MHD_YES;
    }
    cp_api_resp_t r = {0};
    if (st->too_large) {
        return too_large(a, conn, handler_of(url));
    }
    cp_api_req_t req = {
        .method = method,
        .path = url,
        .authorization = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization"),
        .resource_version =
            MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "resourceVersion"),
        .query_proxy = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "proxy"),
        .query_version = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "version"),
        .query_nack = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "nack"),
        .query_reason = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "reason"),
        .body = st->body,
        .body_len = st->len,
        .ns_filter = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "namespace"),
    };
    if (handler_of(url) == H_SNAPSHOT && strcmp(method, "GET") == 0 && a->o.push != NULL) {
        return serve_poll(a, conn, st, &req);
    }
    cp_api_handle(a, &req, wf_wall_ms(), &r);
    enum MHD_Result ret = send_resp(conn, &r);
    free(r.body);
    return ret;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    conn_state_t *st = *con_cls;
    if (st != NULL) {
        WF_ASSERT(st->waiter.proxy == NULL);
        wf_free(st->proxy);
        wf_free(st->reason);
        wf_free(st->body);
        wf_free(st);
        *con_cls = NULL;
    }
}

int cp_api_new(const cp_api_options_t *o, cp_api_t **out)
{
    if (o->store == NULL || o->registry == NULL || o->admin_token == NULL ||
        o->admin_token[0] == '\0') {
        return WF_E_INVAL;
    }
    cp_api_t *a = wf_calloc(1, sizeof(*a));
    a->o = *o;
    a->admin_token = wf_strdup(o->admin_token);
    a->bootstrap_token =
        o->bootstrap_token && o->bootstrap_token[0] ? wf_strdup(o->bootstrap_token) : NULL;
    a->read_token = o->read_token && o->read_token[0] ? wf_strdup(o->read_token) : NULL;
    a->o.admin_token = a->admin_token;
    a->o.bootstrap_token = a->bootstrap_token;
    a->o.read_token = a->read_token;
    if (a->o.max_body == 0) {
        a->o.max_body = CP_API_DEFAULT_MAX_BODY;
    }
    if (a->o.threads == 0) {
        a->o.threads = 2;
    }
    if (a->o.max_connections == 0) {
        a->o.max_connections = 1024;
    }
    *out = a;
    return 0;
}

static int parse_addr(const char *s, struct sockaddr_in *addr)
{
    const char *colon = strrchr(s, ':');
    char host[64];
    if (colon == NULL || colon == s || (size_t)(colon - s) >= sizeof(host)) {
        return WF_E_INVAL;
    }
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end != '\0' || end == colon + 1 || port < 0 || port > 65535) {
        return WF_E_INVAL;
    }
    memset(addr, 0, sizeof(*addr));
    addr->sin_family = AF_INET;
    addr->sin_port = htons((uint16_t)port);
    if (strcmp(host, "localhost") == 0) {
        strcpy(host, "127.0.0.1");
    }
    return inet_pton(AF_INET, host, &addr->sin_addr) == 1 ? 0 : WF_E_INVAL;
}

int cp_api_listen(cp_api_t *a, const char *addr_s)
{
    struct sockaddr_in addr;
    if (a->daemon != NULL) {
        return WF_E_LIMIT;
    }
    if (parse_addr(addr_s, &addr) < 0) {
        return WF_E_INVAL;
    }
    errno = 0;
    a->daemon = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG |
            MHD_ALLOW_SUSPEND_RESUME,
        0, NULL, NULL, on_request, a, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
        MHD_OPTION_THREAD_POOL_SIZE, a->o.threads, MHD_OPTION_CONNECTION_TIMEOUT, 60u,
        MHD_OPTION_CONNECTION_LIMIT, a->o.max_connections, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        (size_t)CONN_MEMORY, MHD_OPTION_NOTIFY_COMPLETED, on_completed, a, MHD_OPTION_END);
    if (a->daemon == NULL) {
        return errno ? -errno : WF_E_INTERNAL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(a->daemon, MHD_DAEMON_INFO_BIND_PORT);
    a->port = info ? info->port : ntohs(addr.sin_port);
    return 0;
}

uint16_t cp_api_port(const cp_api_t *a)
{
    return a->port;
}

void cp_api_free(cp_api_t *a)
{
    if (a == NULL) {
        return;
    }
    if (a->daemon != NULL) {
        /* libmicrohttpd cannot stop with suspended connections: answer the held polls. */
        if (a->o.push != NULL) {
            cp_push_close(a->o.push);
        }
        MHD_stop_daemon(a->daemon);
    }
    wf_free(a->admin_token);
    wf_free(a->read_token);
    wf_free(a->bootstrap_token);
    wf_free(a);
}
