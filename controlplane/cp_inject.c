/*
 * cp_inject.c - `weft inject`'s manifest rewriter (see cp_inject.h for what a pod becomes).
 *
 * The input is read twice: by cp_yaml, into trees with every limit checked, and by a bare
 * libyaml event pass that only finds where each document starts in the bytes, so that the
 * documents left alone are copied exactly. Rewriting never changes a parsed tree: it builds
 * new nodes (in this call's arena) along the path to what changes and shares the rest.
 */
#include "cp_inject.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "cp_err.h"
#include "wf_alloc.h"
#include "wf_err.h"

#define TOKEN_DIR "/var/run/weft/bootstrap"
#define VOLUME "weft-bootstrap-token"

/* A pod of the input that runs (or will run) a sidecar, for the Services that select it. */
typedef struct {
    const char *ns;               /* metadata.namespace of its workload, "" when none */
    const cp_yaml_node_t *labels; /* the template's labels (a mapping), or NULL */
    long app_port;
    const char *port_name; /* the app port's containerPort name, or NULL */
} pod_t;

/* A Namespace document of the input. */
typedef struct {
    const char *name;
    bool enabled; /* labelled weft-injection=enabled */
} ns_t;

typedef struct {
    const cp_inject_opts_t *o;
    wf_arena_t arena; /* the new nodes */
    cp_err_t *err;
    wf_buf_t *notes;
    pod_t *pods;
    uint32_t n_pods, cap_pods;
    ns_t *nss;
    uint32_t n_nss, cap_nss;
    char where[160]; /* "document 2 (Deployment reviews-v1)" */
} ctx_t;

static int fail(ctx_t *c, int code, const cp_yaml_node_t *at, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(ctx_t *c, int code, const cp_yaml_node_t *at, const char *fmt, ...)
{
    if (c->err != NULL) {
        c->err->line = at != NULL ? at->line : 0;
        c->err->column = at != NULL ? at->column : 0;
        char msg[256];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        if (at != NULL) {
            snprintf(c->err->msg, sizeof(c->err->msg), "%.100s: line %u column %u: %.170s",
                     c->where, at->line, at->column, msg);
        } else {
            snprintf(c->err->msg, sizeof(c->err->msg), "%.100s: %.170s", c->where, msg);
        }
    }
    return code;
}

static void note(ctx_t *c, const char *why)
{
    if (c->notes != NULL) {
        wf_buf_printf(c->notes, "%s: %s\n", c->where, why);
    }
}

/* ---- reading the tree ---- */

static const char *scalar(const cp_yaml_node_t *n)
{
    return n != NULL && n->kind == CP_YAML_SCALAR && !cp_yaml_is_null(n) ? n->value.p : NULL;
}

static const char *get_str(const cp_yaml_node_t *map, const char *key)
{
    return scalar(cp_yaml_get(map, key));
}

static const cp_yaml_node_t *get_kind(const cp_yaml_node_t *map, const char *key,
                                      cp_yaml_kind_t kind)
{
    const cp_yaml_node_t *n = cp_yaml_get(map, key);
    return n != NULL && n->kind == kind ? n : NULL;
}

/* A port number written as an integer (or a string of digits, as annotations are); else -1. */
static long port_value(const cp_yaml_node_t *n)
{
    const char *s = scalar(n);
    if (s == NULL || *s < '0' || *s > '9') {
        return -1;
    }
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    return errno == 0 && *end == '\0' && v >= 1 && v <= 65535 ? v : -1;
}

/* Go's strconv.ParseBool spellings of false, which Istio's injector reads the value with. */
static bool is_false(const char *s)
{
    static const char *const f[] = {"0", "f", "F", "false", "FALSE", "False", NULL};
    for (const char *const *p = f; s != NULL && *p; p++) {
        if (strcmp(s, *p) == 0) {
            return true;
        }
    }
    return false;
}

/* ---- building nodes ---- */

/*
 * True when s, written plain, could read as something other than a string under YAML 1.1 (as
 * Kubernetes' YAML reader resolves it): a number, bool, null, or anything outside a simple
 * alphabet. Conservative: a string it lets through plain is always a string. Flags ("--port")
 * and URLs ("http://a:1/b") stay plain: they start with "--" or a letter, and a ':' inside is
 * never followed by a space.
 */
static bool needs_quote(const char *s)
{
    static const char *const words[] = {"y",     "n",  "yes", "no",   "true",
                                        "false", "on", "off", "null", NULL};
    size_t skip = strncmp(s, "--", 2) == 0 ? 2 : 0;
    if (!isalpha((unsigned char)s[skip]) && s[skip] != '/') {
        return true;
    }
    for (const char *p = s + skip; *p; p++) {
        if (!isalnum((unsigned char)*p) && strchr("._/-:", *p) == NULL) {
            return true;
        }
    }
    if (s[strlen(s) - 1] == ':') {
        return true;
    }
    for (const char *const *w = words; *w; w++) {
        if (strcasecmp(s, *w) == 0) {
            return true;
        }
    }
    return false;
}

static cp_yaml_node_t *node_new(ctx_t *c, cp_yaml_kind_t kind, uint32_t cap)
{
    cp_yaml_node_t *n = wf_arena_alloc(&c->arena, sizeof(*n));
    memset(n, 0, sizeof(*n));
    n->kind = kind;
    if (kind == CP_YAML_MAP) {
        n->pairs = wf_arena_alloc(&c->arena, (cap ? cap : 1) * sizeof(*n->pairs));
    } else if (kind == CP_YAML_SEQ) {
        n->items = wf_arena_alloc(&c->arena, (cap ? cap : 1) * sizeof(*n->items));
    }
    return n;
}

static const cp_yaml_node_t *str_node(ctx_t *c, const char *s)
{
    cp_yaml_node_t *n = node_new(c, CP_YAML_SCALAR, 0);
    size_t len = strlen(s);
    n->value = (wf_str_t){wf_arena_strndup(&c->arena, s, len), len};
    n->style = needs_quote(s) ? CP_YAML_DOUBLE_QUOTED : CP_YAML_PLAIN;
    return n;
}

static const cp_yaml_node_t *int_node(ctx_t *c, long v)
{
    char s[24];
    snprintf(s, sizeof(s), "%ld", v);
    cp_yaml_node_t *n = (cp_yaml_node_t *)str_node(c, s);
    n->style = CP_YAML_PLAIN;
    return n;
}

static const cp_yaml_node_t *bool_node(ctx_t *c, bool v)
{
    cp_yaml_node_t *n = (cp_yaml_node_t *)str_node(c, v ? "true" : "false");
    n->style = CP_YAML_PLAIN;
    return n;
}

static void map_add(ctx_t *c, cp_yaml_node_t *m, const char *key, const cp_yaml_node_t *v)
{
    m->pairs[m->n++] = (cp_yaml_pair_t){str_node(c, key), v};
}

static void seq_add(cp_yaml_node_t *s, const cp_yaml_node_t *v)
{
    s->items[s->n++] = v;
}

/* A copy of the mapping map (NULL: an empty one) with key set to v, in place or at the end. */
static const cp_yaml_node_t *map_with(ctx_t *c, const cp_yaml_node_t *map, const char *key,
                                      const cp_yaml_node_t *v)
{
    uint32_t n = map != NULL ? map->n : 0;
    cp_yaml_node_t *m = node_new(c, CP_YAML_MAP, n + 1);
    if (map != NULL) {
        m->line = map->line;
        m->column = map->column;
        m->tag = map->tag;
    }
    bool set = false;
    for (uint32_t i = 0; i < n; i++) {
        m->pairs[m->n++] = map->pairs[i];
        if (wf_str_eq_c(map->pairs[i].key->value, key)) {
            m->pairs[m->n - 1].value = v;
            set = true;
        }
    }
    if (!set) {
        map_add(c, m, key, v);
    }
    return m;
}

/* {name: NAME, valueFrom: {fieldRef: {fieldPath: PATH}}} */
static const cp_yaml_node_t *env_field(ctx_t *c, const char *name, const char *path)
{
    cp_yaml_node_t *ref = node_new(c, CP_YAML_MAP, 1), *from = node_new(c, CP_YAML_MAP, 1);
    cp_yaml_node_t *e = node_new(c, CP_YAML_MAP, 2);
    map_add(c, ref, "fieldPath", str_node(c, path));
    map_add(c, from, "fieldRef", ref);
    map_add(c, e, "name", str_node(c, name));
    map_add(c, e, "valueFrom", from);
    return e;
}

static const cp_yaml_node_t *env_value(ctx_t *c, const char *name, const char *value)
{
    cp_yaml_node_t *e = node_new(c, CP_YAML_MAP, 2);
    map_add(c, e, "name", str_node(c, name));
    map_add(c, e, "value", str_node(c, value));
    return e;
}

static const cp_yaml_node_t *probe(ctx_t *c, int period, int failures)
{
    cp_yaml_node_t *get = node_new(c, CP_YAML_MAP, 2), *p = node_new(c, CP_YAML_MAP, 3);
    map_add(c, get, "path", str_node(c, "/ready"));
    map_add(c, get, "port", int_node(c, CP_INJECT_ADMIN_PORT));
    map_add(c, p, "httpGet", get);
    map_add(c, p, "periodSeconds", int_node(c, period));
    map_add(c, p, "failureThreshold", int_node(c, failures));
    return p;
}

static const cp_yaml_node_t *container_port(ctx_t *c, const char *name, int port)
{
    cp_yaml_node_t *p = node_new(c, CP_YAML_MAP, 3);
    map_add(c, p, "name", str_node(c, name));
    map_add(c, p, "containerPort", int_node(c, port));
    map_add(c, p, "protocol", str_node(c, "TCP"));
    return p;
}

/* requests/limits from the options; NULL when none is set. */
static const cp_yaml_node_t *resources(ctx_t *c)
{
    const cp_inject_opts_t *o = c->o;
    cp_yaml_node_t *req = node_new(c, CP_YAML_MAP, 2), *lim = node_new(c, CP_YAML_MAP, 2);
    if (o->cpu_request != NULL) {
        map_add(c, req, "cpu", str_node(c, o->cpu_request));
    }
    if (o->memory_request != NULL) {
        map_add(c, req, "memory", str_node(c, o->memory_request));
    }
    if (o->cpu_limit != NULL) {
        map_add(c, lim, "cpu", str_node(c, o->cpu_limit));
    }
    if (o->memory_limit != NULL) {
        map_add(c, lim, "memory", str_node(c, o->memory_limit));
    }
    if (req->n == 0 && lim->n == 0) {
        return NULL;
    }
    cp_yaml_node_t *r = node_new(c, CP_YAML_MAP, 2);
    if (req->n > 0) {
        map_add(c, r, "requests", req);
    }
    if (lim->n > 0) {
        map_add(c, r, "limits", lim);
    }
    return r;
}

/* The weft-proxy container of a pod serving service/version, its app on app_port. */
static const cp_yaml_node_t *sidecar(ctx_t *c, const char *service, const char *version,
                                     long app_port)
{
    const cp_inject_opts_t *o = c->o;
    char port[16], inbound[48], admin[48], outbound[48];
    snprintf(port, sizeof(port), "%ld", app_port);
    snprintf(inbound, sizeof(inbound), "$(POD_IP):%d", CP_INJECT_INBOUND_PORT);
    snprintf(admin, sizeof(admin), "$(POD_IP):%d", CP_INJECT_ADMIN_PORT);
    snprintf(outbound, sizeof(outbound), "127.0.0.1:%d", CP_INJECT_OUTBOUND_PORT);
    const char *argv[] = {"proxy",
                          "--service",
                          service,
                          "--namespace",
                          "$(POD_NAMESPACE)",
                          "--service-account",
                          "$(POD_SERVICE_ACCOUNT)",
                          "--app-port",
                          port,
                          "--inbound",
                          inbound,
                          "--outbound",
                          outbound,
                          "--admin",
                          admin,
                          "--control",
                          o->control,
                          "--bootstrap-token-file",
                          TOKEN_DIR "/token"};
    size_t n_argv = sizeof(argv) / sizeof(argv[0]);
    cp_yaml_node_t *args = node_new(c, CP_YAML_SEQ, (uint32_t)n_argv + 6);
    for (size_t i = 0; i < n_argv; i++) {
        seq_add(args, str_node(c, argv[i]));
    }
    const char *opt[][2] = {
        {"--version", version}, {"--collector", o->collector}, {"--log-level", o->log_level}};
    for (size_t i = 0; i < sizeof(opt) / sizeof(opt[0]); i++) {
        if (opt[i][1] != NULL) {
            seq_add(args, str_node(c, opt[i][0]));
            seq_add(args, str_node(c, opt[i][1]));
        }
    }

    cp_yaml_node_t *env = node_new(c, CP_YAML_SEQ, 3);
    seq_add(env, env_field(c, "POD_IP", "status.podIP"));
    seq_add(env, env_field(c, "POD_NAMESPACE", "metadata.namespace"));
    seq_add(env, env_field(c, "POD_SERVICE_ACCOUNT", "spec.serviceAccountName"));
    cp_yaml_node_t *ports = node_new(c, CP_YAML_SEQ, 2);
    seq_add(ports, container_port(c, "weft-inbound", CP_INJECT_INBOUND_PORT));
    seq_add(ports, container_port(c, "weft-admin", CP_INJECT_ADMIN_PORT));
    cp_yaml_node_t *mount = node_new(c, CP_YAML_MAP, 3), *mounts = node_new(c, CP_YAML_SEQ, 1);
    map_add(c, mount, "name", str_node(c, VOLUME));
    map_add(c, mount, "mountPath", str_node(c, TOKEN_DIR));
    map_add(c, mount, "readOnly", bool_node(c, true));
    seq_add(mounts, mount);
    cp_yaml_node_t *caps = node_new(c, CP_YAML_MAP, 1), *drop = node_new(c, CP_YAML_SEQ, 1);
    seq_add(drop, str_node(c, "ALL"));
    map_add(c, caps, "drop", drop);
    cp_yaml_node_t *sec = node_new(c, CP_YAML_MAP, 6);
    map_add(c, sec, "runAsNonRoot", bool_node(c, true));
    map_add(c, sec, "runAsUser", int_node(c, 1337));
    map_add(c, sec, "runAsGroup", int_node(c, 1337));
    map_add(c, sec, "allowPrivilegeEscalation", bool_node(c, false));
    map_add(c, sec, "readOnlyRootFilesystem", bool_node(c, true));
    map_add(c, sec, "capabilities", caps);

    cp_yaml_node_t *ct = node_new(c, CP_YAML_MAP, 12);
    map_add(c, ct, "name", str_node(c, CP_INJECT_CONTAINER));
    map_add(c, ct, "image", str_node(c, o->image));
    if (o->native_sidecar) {
        /* A native sidecar: started before the app containers, stopped after them. */
        map_add(c, ct, "restartPolicy", str_node(c, "Always"));
    }
    map_add(c, ct, "args", args);
    map_add(c, ct, "env", env);
    map_add(c, ct, "ports", ports);
    if (o->native_sidecar) {
        /* The app containers start once this passes: registered and configured. */
        map_add(c, ct, "startupProbe", probe(c, 1, 120));
    }
    map_add(c, ct, "readinessProbe", probe(c, 5, 3));
    const cp_yaml_node_t *res = resources(c);
    if (res != NULL) {
        map_add(c, ct, "resources", res);
    }
    map_add(c, ct, "securityContext", sec);
    map_add(c, ct, "volumeMounts", mounts);
    return ct;
}

/* ---- pods ---- */

static bool is_proxy_env(const cp_yaml_node_t *e)
{
    static const char *const names[] = {"http_proxy", "HTTP_PROXY", "no_proxy", "NO_PROXY", NULL};
    const char *name = get_str(e, "name");
    for (const char *const *p = names; name != NULL && *p; p++) {
        if (strcmp(name, *p) == 0) {
            return true;
        }
    }
    return false;
}

/* An app container with the sidecar's outbound listener as its HTTP proxy; the container's
 * own proxy variables are replaced, since a request that bypasses the sidecar leaves the
 * mesh. */
static int app_container(ctx_t *c, const cp_yaml_node_t *ct, const cp_yaml_node_t **out)
{
    const cp_yaml_node_t *env = cp_yaml_get(ct, "env");
    if (env != NULL && !cp_yaml_is_null(env) && env->kind != CP_YAML_SEQ) {
        return fail(c, CP_E_INVALID, env, "a container's env must be a list");
    }
    uint32_t n = env != NULL && env->kind == CP_YAML_SEQ ? env->n : 0;
    cp_yaml_node_t *e = node_new(c, CP_YAML_SEQ, n + 4);
    for (uint32_t i = 0; i < n; i++) {
        if (!is_proxy_env(env->items[i])) {
            seq_add(e, env->items[i]);
        }
    }
    char url[48];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", CP_INJECT_OUTBOUND_PORT);
    seq_add(e, env_value(c, "http_proxy", url));
    seq_add(e, env_value(c, "HTTP_PROXY", url));
    seq_add(e, env_value(c, "no_proxy", "localhost,127.0.0.1,::1"));
    seq_add(e, env_value(c, "NO_PROXY", "localhost,127.0.0.1,::1"));
    *out = map_with(c, ct, "env", e);
    return 0;
}

static bool has_container(const cp_yaml_node_t *list, const char *name)
{
    for (uint32_t i = 0; list != NULL && list->kind == CP_YAML_SEQ && i < list->n; i++) {
        const char *n = get_str(list->items[i], "name");
        if (n != NULL && strcmp(n, name) == 0) {
            return true;
        }
    }
    return false;
}

/* The --app-port of an injected pod's weft-proxy, or -1. */
static long injected_app_port(const cp_yaml_node_t *spec)
{
    const char *keys[] = {"initContainers", "containers"};
    for (int k = 0; k < 2; k++) {
        const cp_yaml_node_t *list = get_kind(spec, keys[k], CP_YAML_SEQ);
        for (uint32_t i = 0; list != NULL && i < list->n; i++) {
            const char *n = get_str(list->items[i], "name");
            const cp_yaml_node_t *args = get_kind(list->items[i], "args", CP_YAML_SEQ);
            if (n == NULL || strcmp(n, CP_INJECT_CONTAINER) != 0 || args == NULL) {
                continue;
            }
            for (uint32_t j = 0; j + 1 < args->n; j++) {
                const char *a = scalar(args->items[j]);
                if (a != NULL && strcmp(a, "--app-port") == 0) {
                    return port_value(args->items[j + 1]);
                }
            }
        }
    }
    return -1;
}

/* The port the app serves on: the annotation, else the first TCP containerPort. */
static long app_port(const cp_yaml_node_t *annotations, const cp_yaml_node_t *containers,
                     const char **port_name)
{
    *port_name = NULL;
    const cp_yaml_node_t *a = cp_yaml_get(annotations, CP_INJECT_APP_PORT_ANNOTATION);
    long want = a != NULL ? port_value(a) : -1;
    if (a != NULL && want < 0) {
        return -2;
    }
    for (uint32_t i = 0; i < containers->n; i++) {
        const cp_yaml_node_t *ports = get_kind(containers->items[i], "ports", CP_YAML_SEQ);
        for (uint32_t j = 0; ports != NULL && j < ports->n; j++) {
            const char *proto = get_str(ports->items[j], "protocol");
            long p = port_value(cp_yaml_get(ports->items[j], "containerPort"));
            if (p < 0 || (proto != NULL && strcmp(proto, "TCP") != 0) || (want > 0 && p != want)) {
                continue;
            }
            *port_name = get_str(ports->items[j], "name");
            return p;
        }
    }
    return want;
}

static const char *first_label(const cp_yaml_node_t *labels, const char *const *names)
{
    for (; *names; names++) {
        const char *v = get_str(labels, *names);
        if (v != NULL && v[0] != '\0') {
            return v;
        }
    }
    return NULL;
}

static void add_pod(ctx_t *c, const char *ns, const cp_yaml_node_t *labels, long port,
                    const char *port_name)
{
    if (c->n_pods == c->cap_pods) {
        c->cap_pods = c->cap_pods ? 2 * c->cap_pods : 8;
        c->pods = wf_realloc(c->pods, c->cap_pods * sizeof(*c->pods));
    }
    c->pods[c->n_pods++] = (pod_t){ns, labels, port, port_name};
}

static const ns_t *find_ns(const ctx_t *c, const char *name)
{
    for (uint32_t i = 0; i < c->n_nss; i++) {
        if (strcmp(c->nss[i].name, name) == 0) {
            return &c->nss[i];
        }
    }
    return NULL;
}

/*
 * The pod template tmpl (a Pod, or a workload's spec.template) of a workload named name in
 * namespace ns, injected into *out (tmpl itself when it is left alone, with a note saying
 * why).
 */
static int inject_template(ctx_t *c, const cp_yaml_node_t *tmpl, const char *name, const char *ns,
                           const cp_yaml_node_t **out)
{
    static const char *const svc_labels[] = {"service.istio.io/canonical-name",
                                             "app.kubernetes.io/name", "app", NULL};
    static const char *const ver_labels[] = {"service.istio.io/canonical-revision",
                                             "app.kubernetes.io/version", "version", NULL};
    *out = tmpl;
    if (tmpl->kind != CP_YAML_MAP) {
        return fail(c, CP_E_INVALID, tmpl, "the pod template is not a mapping");
    }
    const cp_yaml_node_t *meta = get_kind(tmpl, "metadata", CP_YAML_MAP);
    const cp_yaml_node_t *labels = get_kind(meta, "labels", CP_YAML_MAP);
    const cp_yaml_node_t *annotations = get_kind(meta, "annotations", CP_YAML_MAP);
    const cp_yaml_node_t *spec = get_kind(tmpl, "spec", CP_YAML_MAP);
    const cp_yaml_node_t *containers = get_kind(spec, "containers", CP_YAML_SEQ);
    if (spec == NULL || containers == NULL || containers->n == 0) {
        return fail(c, CP_E_INVALID, spec != NULL ? spec : tmpl,
                    "the pod spec has no list of containers");
    }
    for (uint32_t i = 0; i < containers->n; i++) {
        if (containers->items[i]->kind != CP_YAML_MAP) {
            return fail(c, CP_E_INVALID, containers->items[i], "a container is not a mapping");
        }
    }
    const cp_yaml_node_t *init = cp_yaml_get(spec, "initContainers");
    const cp_yaml_node_t *volumes = cp_yaml_get(spec, "volumes");
    if ((init != NULL && !cp_yaml_is_null(init) && init->kind != CP_YAML_SEQ) ||
        (volumes != NULL && !cp_yaml_is_null(volumes) && volumes->kind != CP_YAML_SEQ)) {
        return fail(c, CP_E_INVALID, spec, "initContainers and volumes must be lists");
    }
    const ns_t *nsd = ns[0] != '\0' ? find_ns(c, ns) : NULL;
    if (is_false(get_str(annotations, "sidecar.istio.io/inject")) ||
        is_false(get_str(labels, "sidecar.istio.io/inject"))) {
        note(c, "skipped: sidecar.istio.io/inject is false");
        return 0;
    }
    if (nsd != NULL && !nsd->enabled) {
        note(c, "skipped: its Namespace in this input is not labelled weft-injection=enabled");
        return 0;
    }
    if (has_container(containers, CP_INJECT_CONTAINER) ||
        has_container(init, CP_INJECT_CONTAINER)) {
        note(c, "already has a " CP_INJECT_CONTAINER " container: left as it is");
        long p = injected_app_port(spec);
        if (p > 0) {
            add_pod(c, ns, labels, p, NULL);
        }
        return 0;
    }
    const cp_yaml_node_t *hn = cp_yaml_get(spec, "hostNetwork");
    if (hn != NULL && scalar(hn) != NULL && strcmp(scalar(hn), "true") == 0) {
        note(c, "skipped: hostNetwork (the sidecar's ports would be the node's)");
        return 0;
    }
    const char *port_name;
    long port = app_port(annotations, containers, &port_name);
    if (port == -2) {
        return fail(c, CP_E_INVALID, cp_yaml_get(annotations, CP_INJECT_APP_PORT_ANNOTATION),
                    "%s must be a port number (1..65535)", CP_INJECT_APP_PORT_ANNOTATION);
    }
    if (port < 0) {
        note(c, "skipped: no containerPort and no " CP_INJECT_APP_PORT_ANNOTATION
                " annotation (the sidecar needs the port the app serves on)");
        return 0;
    }
    if (port == CP_INJECT_INBOUND_PORT || port == CP_INJECT_OUTBOUND_PORT ||
        port == CP_INJECT_ADMIN_PORT) {
        /* Peers and the kubelet could not tell the app from the sidecar. */
        return fail(c, CP_E_INVALID, spec,
                    "the app's port %ld is one of the sidecar's (%d, %d, %d)", port,
                    CP_INJECT_ADMIN_PORT, CP_INJECT_OUTBOUND_PORT, CP_INJECT_INBOUND_PORT);
    }
    const char *service = first_label(labels, svc_labels);
    service = service != NULL ? service : name;
    if (service == NULL) {
        note(c, "skipped: no app label and no name to call its service by");
        return 0;
    }
    const char *version = first_label(labels, ver_labels);

    cp_yaml_node_t *cts = node_new(c, CP_YAML_SEQ, containers->n + 1);
    for (uint32_t i = 0; i < containers->n; i++) {
        const cp_yaml_node_t *ct = NULL;
        int rc = app_container(c, containers->items[i], &ct);
        if (rc < 0) {
            return rc;
        }
        seq_add(cts, ct);
    }
    const cp_yaml_node_t *proxy = sidecar(c, service, version, port);
    const cp_yaml_node_t *new_spec;
    if (c->o->native_sidecar) {
        /* First, so that later init containers may already use the mesh. */
        uint32_t n = init != NULL && init->kind == CP_YAML_SEQ ? init->n : 0;
        cp_yaml_node_t *ic = node_new(c, CP_YAML_SEQ, n + 1);
        seq_add(ic, proxy);
        for (uint32_t i = 0; i < n; i++) {
            seq_add(ic, init->items[i]);
        }
        new_spec = map_with(c, map_with(c, spec, "initContainers", ic), "containers", cts);
    } else {
        seq_add(cts, proxy);
        new_spec = map_with(c, spec, "containers", cts);
    }
    uint32_t nv = volumes != NULL && volumes->kind == CP_YAML_SEQ ? volumes->n : 0;
    cp_yaml_node_t *vols = node_new(c, CP_YAML_SEQ, nv + 1);
    for (uint32_t i = 0; i < nv; i++) {
        seq_add(vols, volumes->items[i]);
    }
    cp_yaml_node_t *secret = node_new(c, CP_YAML_MAP, 1), *vol = node_new(c, CP_YAML_MAP, 2);
    map_add(c, secret, "secretName", str_node(c, CP_INJECT_TOKEN_SECRET));
    map_add(c, vol, "name", str_node(c, VOLUME));
    map_add(c, vol, "secret", secret);
    seq_add(vols, vol);
    new_spec = map_with(c, new_spec, "volumes", vols);
    *out = map_with(c, tmpl, "spec", new_spec);
    add_pod(c, ns, labels, port, port_name);
    return 0;
}

/* ---- documents ---- */

static void describe(ctx_t *c, uint32_t doc, int item, const cp_yaml_node_t *obj)
{
    const char *kind = get_str(obj, "kind");
    const char *name = get_str(get_kind(obj, "metadata", CP_YAML_MAP), "name");
    char it[32] = "";
    if (item >= 0) {
        snprintf(it, sizeof(it), ", item %d", item + 1);
    }
    snprintf(c->where, sizeof(c->where), "document %u%s (%.40s %.60s)", doc + 1, it,
             kind ? kind : "?", name ? name : "?");
}

/* Where a kind keeps its pod template, as keys from the object; NULL: not a workload. */
static const char *const *template_path(const char *kind)
{
    static const char *const pod[] = {NULL};
    static const char *const workload[] = {"spec", "template", NULL};
    static const char *const cronjob[] = {"spec", "jobTemplate", "spec", "template", NULL};
    static const char *const workloads[] = {"Deployment", "StatefulSet",           "DaemonSet",
                                            "ReplicaSet", "ReplicationController", "Job",
                                            NULL};
    if (kind == NULL) {
        return NULL;
    }
    if (strcmp(kind, "Pod") == 0) {
        return pod;
    }
    if (strcmp(kind, "CronJob") == 0) {
        return cronjob;
    }
    for (const char *const *k = workloads; *k; k++) {
        if (strcmp(kind, *k) == 0) {
            return workload;
        }
    }
    return NULL;
}

/* obj with the node at path replaced by the result of injecting it. */
static int inject_at(ctx_t *c, const cp_yaml_node_t *obj, const char *const *path, const char *name,
                     const char *ns, const cp_yaml_node_t **out)
{
    *out = obj;
    if (*path == NULL) {
        return inject_template(c, obj, name, ns, out);
    }
    const cp_yaml_node_t *next = get_kind(obj, *path, CP_YAML_MAP);
    if (next == NULL) {
        return fail(c, CP_E_INVALID, obj, "no mapping %s on the way to the pod template", *path);
    }
    const cp_yaml_node_t *rewritten;
    int rc = inject_at(c, next, path + 1, name, ns, &rewritten);
    if (rc == 0 && rewritten != next) {
        *out = map_with(c, obj, *path, rewritten);
    }
    return rc;
}

/* Does the selector (a non-empty mapping) select a pod with these labels? */
static bool selects(const cp_yaml_node_t *selector, const cp_yaml_node_t *labels)
{
    for (uint32_t i = 0; i < selector->n; i++) {
        const char *want = scalar(selector->pairs[i].value);
        const char *have = get_str(labels, selector->pairs[i].key->value.p);
        if (want == NULL || have == NULL || strcmp(want, have) != 0) {
            return false;
        }
    }
    return true;
}

/* A Service whose selector picks an injected pod of its namespace, with the ports that led to
 * the pod's app port sent to the sidecar's inbound port instead. */
static const cp_yaml_node_t *inject_service(ctx_t *c, const cp_yaml_node_t *svc)
{
    const cp_yaml_node_t *spec = get_kind(svc, "spec", CP_YAML_MAP);
    const cp_yaml_node_t *selector = get_kind(spec, "selector", CP_YAML_MAP);
    const cp_yaml_node_t *ports = get_kind(spec, "ports", CP_YAML_SEQ);
    const char *ns = get_str(get_kind(svc, "metadata", CP_YAML_MAP), "namespace");
    if (selector == NULL || selector->n == 0 || ports == NULL) {
        return svc;
    }
    cp_yaml_node_t *np = NULL;
    for (uint32_t i = 0; i < ports->n; i++) {
        const cp_yaml_node_t *p = ports->items[i];
        const cp_yaml_node_t *tp = cp_yaml_get(p, "targetPort");
        long port = port_value(cp_yaml_get(p, "port"));
        long target = tp != NULL ? port_value(tp) : port;
        const char *target_name = target < 0 ? scalar(tp) : NULL;
        const char *proto = get_str(p, "protocol");
        bool hit = false;
        for (uint32_t k = 0; k < c->n_pods && !hit && (proto == NULL || !strcmp(proto, "TCP"));
             k++) {
            const pod_t *pod = &c->pods[k];
            hit = strcmp(pod->ns, ns != NULL ? ns : "") == 0 && selects(selector, pod->labels) &&
                  (target == pod->app_port || (target_name != NULL && pod->port_name != NULL &&
                                               strcmp(target_name, pod->port_name) == 0));
        }
        if (!hit) {
            continue;
        }
        if (np == NULL) {
            np = node_new(c, CP_YAML_SEQ, ports->n);
            np->line = ports->line;
            np->column = ports->column;
            for (uint32_t j = 0; j < ports->n; j++) {
                seq_add(np, ports->items[j]);
            }
        }
        np->items[i] = map_with(c, p, "targetPort", int_node(c, CP_INJECT_INBOUND_PORT));
    }
    return np != NULL ? map_with(c, svc, "spec", map_with(c, spec, "ports", np)) : svc;
}

/*
 * One document's object (or one item of a List) through one pass: pass 0 reads Namespaces,
 * pass 1 injects workloads (recording their pods), pass 2 rewrites Services.
 */
static int rewrite(ctx_t *c, int pass, uint32_t doc, int item, const cp_yaml_node_t *obj,
                   const cp_yaml_node_t **out)
{
    *out = obj;
    if (obj->kind != CP_YAML_MAP) {
        return 0;
    }
    const char *kind = get_str(obj, "kind");
    const cp_yaml_node_t *meta = get_kind(obj, "metadata", CP_YAML_MAP);
    describe(c, doc, item, obj);
    if (kind != NULL && strcmp(kind, "List") == 0 && item < 0) {
        const cp_yaml_node_t *items = cp_yaml_get(obj, "items");
        if (items == NULL || cp_yaml_is_null(items)) {
            return 0;
        }
        if (items->kind != CP_YAML_SEQ) {
            return fail(c, CP_E_INVALID, items, "a List's items must be a list");
        }
        cp_yaml_node_t *ni = NULL;
        for (uint32_t i = 0; i < items->n; i++) {
            const cp_yaml_node_t *r;
            int rc = rewrite(c, pass, doc, (int)i, items->items[i], &r);
            if (rc < 0) {
                return rc;
            }
            if (r != items->items[i] && ni == NULL) {
                ni = node_new(c, CP_YAML_SEQ, items->n);
                memcpy(ni->items, items->items, items->n * sizeof(*ni->items));
                ni->n = items->n;
            }
            if (ni != NULL) {
                ni->items[i] = r;
            }
        }
        if (ni != NULL) {
            *out = map_with(c, obj, "items", ni);
        }
        return 0;
    }
    if (pass == 0 && kind != NULL && strcmp(kind, "Namespace") == 0) {
        const char *name = get_str(meta, "name");
        if (name != NULL && find_ns(c, name) == NULL) {
            if (c->n_nss == c->cap_nss) {
                c->cap_nss = c->cap_nss ? 2 * c->cap_nss : 4;
                c->nss = wf_realloc(c->nss, c->cap_nss * sizeof(*c->nss));
            }
            const char *l = get_str(get_kind(meta, "labels", CP_YAML_MAP), "weft-injection");
            c->nss[c->n_nss++] = (ns_t){name, l != NULL && strcmp(l, "enabled") == 0};
        }
        return 0;
    }
    const char *const *path = template_path(kind);
    if (pass == 1 && path != NULL) {
        const char *ns = get_str(meta, "namespace");
        return inject_at(c, obj, path, get_str(meta, "name"), ns != NULL ? ns : "", out);
    }
    if (pass == 2 && kind != NULL && strcmp(kind, "Service") == 0) {
        *out = inject_service(c, obj);
    }
    return 0;
}

/* ---- output ---- */

/* Where a document lies in the input, in bytes. */
typedef struct {
    size_t start;   /* its first byte: 0, or its directives or `---` */
    size_t sep_end; /* the end of its `---`, SIZE_MAX when it has none (implicit) */
    size_t content; /* its root node's first byte (an anchor or tag included) */
} span_t;

/* Advance (*ci, *bi), a character index and its byte offset in buf, to character index to. */
static size_t byte_at(const char *buf, size_t len, size_t *ci, size_t *bi, size_t to)
{
    while (*ci < to && *bi < len) {
        unsigned char b = (unsigned char)buf[*bi];
        *bi += b < 0x80 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4;
        (*ci)++;
    }
    return *bi < len ? *bi : len;
}

/*
 * The spans of the n documents of buf, from libyaml's marks (spans[n].start is len). libyaml
 * counts characters, not bytes, in its marks: the input is valid UTF-8 (cp_yaml checked it), so
 * the offsets are found by walking its characters; marks only grow, so one walk does.
 */
static int doc_spans(const char *buf, size_t len, uint32_t n, span_t *spans)
{
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p)) {
        return WF_E_INTERNAL;
    }
    yaml_parser_set_input_string(&p, (const unsigned char *)buf, len);
    yaml_parser_set_encoding(&p, YAML_UTF8_ENCODING);
    uint32_t i = 0;
    bool want_content = false;
    size_t ci = 0, bi = 0;
    int rc = 0;
    for (bool done = false; !done && rc == 0;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&p, &ev)) {
            rc = CP_E_SYNTAX;
            break;
        }
        if (ev.type == YAML_DOCUMENT_START_EVENT) {
            if (i >= n) {
                rc = WF_E_INTERNAL;
            } else {
                size_t start = byte_at(buf, len, &ci, &bi, ev.start_mark.index);
                spans[i].start = i == 0 ? 0 : start;
                spans[i].sep_end = ev.data.document_start.implicit
                                       ? SIZE_MAX
                                       : byte_at(buf, len, &ci, &bi, ev.end_mark.index);
                spans[i].content = spans[i].sep_end == SIZE_MAX ? start : spans[i].sep_end;
                want_content = true;
                i++;
            }
        } else if (want_content &&
                   (ev.type == YAML_SCALAR_EVENT || ev.type == YAML_SEQUENCE_START_EVENT ||
                    ev.type == YAML_MAPPING_START_EVENT)) {
            spans[i - 1].content = byte_at(buf, len, &ci, &bi, ev.start_mark.index);
            want_content = false;
        }
        done = ev.type == YAML_STREAM_END_EVENT;
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&p);
    if (rc == 0 && i != n) {
        rc = WF_E_INTERNAL;
    }
    spans[n].start = len;
    return rc;
}

static int write_cb(void *data, unsigned char *buffer, size_t size)
{
    wf_buf_append(data, buffer, size);
    return 1;
}

static int emit_node(yaml_emitter_t *e, const cp_yaml_node_t *n)
{
    yaml_event_t ev;
    yaml_char_t *tag = (yaml_char_t *)n->tag.p;
    if (n->kind == CP_YAML_SCALAR) {
        yaml_scalar_style_t style = YAML_PLAIN_SCALAR_STYLE;
        int plain_implicit = 1, quoted_implicit = 1;
        switch (n->style) {
        case CP_YAML_PLAIN:
            break;
        case CP_YAML_SINGLE_QUOTED:
        case CP_YAML_DOUBLE_QUOTED:
            /* A quoted string that would read as a string plain too is written plain. */
            if (needs_quote(n->value.p)) {
                plain_implicit = 0;
                style = n->style == CP_YAML_SINGLE_QUOTED ? YAML_SINGLE_QUOTED_SCALAR_STYLE
                                                          : YAML_DOUBLE_QUOTED_SCALAR_STYLE;
            }
            break;
        case CP_YAML_LITERAL:
            plain_implicit = 0;
            style = YAML_LITERAL_SCALAR_STYLE;
            break;
        case CP_YAML_FOLDED:
            plain_implicit = 0;
            style = YAML_FOLDED_SCALAR_STYLE;
            break;
        }
        if (tag != NULL) {
            plain_implicit = quoted_implicit = 0;
        }
        if (!yaml_scalar_event_initialize(&ev, NULL, tag, (yaml_char_t *)n->value.p,
                                          (int)n->value.len, plain_implicit, quoted_implicit,
                                          style) ||
            !yaml_emitter_emit(e, &ev)) {
            return WF_E_INTERNAL;
        }
        return 0;
    }
    bool map = n->kind == CP_YAML_MAP;
    int ok = map ? yaml_mapping_start_event_initialize(&ev, NULL, tag, tag == NULL,
                                                       YAML_BLOCK_MAPPING_STYLE)
                 : yaml_sequence_start_event_initialize(&ev, NULL, tag, tag == NULL,
                                                        YAML_BLOCK_SEQUENCE_STYLE);
    if (!ok || !yaml_emitter_emit(e, &ev)) {
        return WF_E_INTERNAL;
    }
    for (uint32_t i = 0; i < n->n; i++) {
        int rc = map ? emit_node(e, n->pairs[i].key) : emit_node(e, n->items[i]);
        if (rc == 0 && map) {
            rc = emit_node(e, n->pairs[i].value);
        }
        if (rc < 0) {
            return rc;
        }
    }
    ok = map ? yaml_mapping_end_event_initialize(&ev) : yaml_sequence_end_event_initialize(&ev);
    return ok && yaml_emitter_emit(e, &ev) ? 0 : WF_E_INTERNAL;
}

/* root as one YAML document without markers, appended to out. */
static int emit_doc(const cp_yaml_node_t *root, wf_buf_t *out)
{
    yaml_emitter_t e;
    yaml_event_t ev;
    if (!yaml_emitter_initialize(&e)) {
        return WF_E_INTERNAL;
    }
    yaml_emitter_set_output(&e, write_cb, out);
    yaml_emitter_set_unicode(&e, 1);
    yaml_emitter_set_width(&e, -1);
    yaml_emitter_set_indent(&e, 2);
    int rc = WF_E_INTERNAL;
    if (!yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING) ||
        !yaml_emitter_emit(&e, &ev) ||
        !yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1) ||
        !yaml_emitter_emit(&e, &ev)) {
        goto out;
    }
    if ((rc = emit_node(&e, root)) < 0) {
        goto out;
    }
    rc = WF_E_INTERNAL;
    if (!yaml_document_end_event_initialize(&ev, 1) || !yaml_emitter_emit(&e, &ev) ||
        !yaml_stream_end_event_initialize(&ev) || !yaml_emitter_emit(&e, &ev)) {
        goto out;
    }
    rc = 0;
out:
    yaml_emitter_delete(&e);
    return rc;
}

/* The length of the line break ending at buf[end - 1], or 0: YAML 1.1's breaks, as libyaml
 * reads them (LF, CR, NEL, LS, PS). */
static size_t break_before(const char *buf, size_t from, size_t end)
{
    const unsigned char *u = (const unsigned char *)buf;
    if (end > from && (u[end - 1] == '\n' || u[end - 1] == '\r')) {
        return 1;
    }
    if (end >= from + 2 && u[end - 2] == 0xC2 && u[end - 1] == 0x85) {
        return 2;
    }
    if (end >= from + 3 && u[end - 3] == 0xE2 && u[end - 2] == 0x80 &&
        (u[end - 1] == 0xA8 || u[end - 1] == 0xA9)) {
        return 3;
    }
    return 0;
}

/*
 * What comes before a rewritten document's content: the whole lines from its start to its
 * content (directives, its `---` line, comments), then a `---` of its own when the input's
 * shared a line with the content (`--- {kind: Pod, ...}`).
 */
static void copy_head(const char *buf, const span_t *sp, wf_buf_t *out)
{
    size_t end = sp->content;
    while (end > sp->start && break_before(buf, sp->start, end) == 0) {
        end--;
    }
    wf_buf_append(out, buf + sp->start, end - sp->start);
    if (sp->sep_end != SIZE_MAX && end < sp->sep_end) {
        wf_buf_puts(out, "---\n");
    }
}

void cp_inject_limits(cp_yaml_limits_t *lim)
{
    cp_yaml_limits_default(lim);
    lim->max_bytes = 16u << 20;
    lim->max_nodes = 1000000;
    lim->max_expanded_bytes = 32u << 20;
    lim->max_items = 100000;
}

int cp_inject(const char *buf, size_t len, const cp_inject_opts_t *opts, wf_buf_t *out,
              wf_buf_t *notes, cp_err_t *err)
{
    WF_ASSERT(opts != NULL && opts->image != NULL && opts->control != NULL);
    ctx_t c = {.o = opts, .err = err, .notes = notes};
    snprintf(c.where, sizeof(c.where), "input");
    wf_arena_init(&c.arena, 16384, 0);
    cp_yaml_stream_t *s = NULL;
    const cp_yaml_node_t **roots = NULL;
    span_t *spans = NULL;
    wf_buf_t res;
    wf_buf_init(&res);
    size_t notes_len = notes != NULL ? notes->len : 0;
    if (err != NULL) {
        memset(err, 0, sizeof(*err));
    }
    if (len == 0) {
        buf = ""; /* an empty buffer may come as NULL, which libyaml refuses */
    }
    int rc = cp_yaml_parse(buf, len, opts->limits, &s, err);
    if (rc < 0) {
        goto fail;
    }
    roots = wf_calloc(s->n_docs + 1, sizeof(*roots));
    spans = wf_calloc(s->n_docs + 1, sizeof(*spans));
    if ((rc = doc_spans(buf, len, s->n_docs, spans)) < 0) {
        rc = fail(&c, rc, NULL, "the documents' boundaries were not found again");
        goto fail;
    }
    for (uint32_t i = 0; i < s->n_docs; i++) {
        roots[i] = s->docs[i];
    }
    for (int pass = 0; pass < 3; pass++) {
        for (uint32_t i = 0; i < s->n_docs; i++) {
            if ((rc = rewrite(&c, pass, i, -1, roots[i], &roots[i])) < 0) {
                goto fail;
            }
        }
    }
    for (uint32_t i = 0; i < s->n_docs; i++) {
        if (roots[i] == s->docs[i]) {
            wf_buf_append(&res, buf + spans[i].start, spans[i + 1].start - spans[i].start);
            continue;
        }
        copy_head(buf, &spans[i], &res);
        if ((rc = emit_doc(roots[i], &res)) < 0) {
            describe(&c, i, -1, roots[i]);
            rc = fail(&c, rc, NULL, "libyaml could not write the document");
            goto fail;
        }
    }
    if (s->n_docs == 0) {
        wf_buf_append(&res, buf, len);
    }
    wf_buf_append(out, res.data, res.len);
    rc = 0;
    goto out;
fail:
    if (notes != NULL) {
        notes->len = notes_len;
    }
out:
    wf_buf_free(&res);
    wf_free(spans);
    wf_free(roots);
    wf_free(c.pods);
    wf_free(c.nss);
    cp_yaml_free(s);
    wf_arena_free(&c.arena);
    return rc;
}
