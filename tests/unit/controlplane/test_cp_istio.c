/*
 * test_cp_istio.c - Istio resources into typed structures: every bookinfo reference file,
 * field-by-field checks on a few, a table of bad resources each with its exact error path,
 * durations and regexes, the canonical JSON round trip, and hostile input.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cp_istio.h"
#include "wf_alloc.h"
#include "wt_util.h"

/* Parse a one-document text; returns the code, *out set on success. */
static int parse1(const char *text, cp_resource_t **out, cp_err_t *err)
{
    cp_yaml_stream_t *s;
    *out = NULL;
    int rc = cp_yaml_parse(text, strlen(text), NULL, &s, err);
    if (rc < 0) {
        return rc;
    }
    assert_int_equal(s->n_docs, 1);
    rc = cp_istio_parse(s->docs[0], out, err);
    cp_yaml_free(s);
    return rc;
}

static cp_resource_t *must_parse(const char *text)
{
    cp_resource_t *r;
    cp_err_t err;
    int rc = parse1(text, &r, &err);
    if (rc != 0) {
        fail_msg("parse failed: %s", err.msg);
    }
    return r;
}

/* Round trip: to_json(parse(to_json(r))) == to_json(r). Returns the JSON (wf_free it). */
static char *round_trip(const cp_resource_t *r)
{
    char *json = cp_istio_to_json(r);
    cp_resource_t *again;
    cp_err_t err;
    int rc = parse1(json, &again, &err);
    if (rc != 0) {
        fail_msg("re-parse of %s failed: %s", json, err.msg);
    }
    char *json2 = cp_istio_to_json(again);
    assert_string_equal(json, json2);
    wf_free(json2);
    cp_resource_free(again);
    return json;
}

static const char *const k_ref_files[] = {
    "bookinfo-gateway.yaml",
    "bookinfo.yaml",
    "certmanager-gateway.yaml",
    "destination-rule-all-mtls.yaml",
    "destination-rule-all.yaml",
    "destination-rule-reviews.yaml",
    "egress-rule-google-apis.yaml",
    "fault-injection-details-v1.yaml",
    "virtual-service-all-v1.yaml",
    "virtual-service-details-v2.yaml",
    "virtual-service-ratings-db.yaml",
    "virtual-service-ratings-mysql-vm.yaml",
    "virtual-service-ratings-mysql.yaml",
    "virtual-service-ratings-test-abort.yaml",
    "virtual-service-ratings-test-delay.yaml",
    "virtual-service-reviews-50-v3.yaml",
    "virtual-service-reviews-80-20.yaml",
    "virtual-service-reviews-90-10.yaml",
    "virtual-service-reviews-jason-v2-v3.yaml",
    "virtual-service-reviews-test-v2.yaml",
    "virtual-service-reviews-v2-v3.yaml",
    "virtual-service-reviews-v3.yaml",
};

/* Parse every document of a reference file; *docs gets the resources (NULL for Kubernetes
 * kinds, which must be refused with CP_E_KIND). Returns the stream's document count, or -1
 * when the reference data is absent. */
static int load_ref(const char *name, cp_resource_t **docs, int cap, int *k8s)
{
    char rel[128];
    snprintf(rel, sizeof(rel), "istio/%s", name);
    char *path = wt_ref_path(rel);
    if (path == NULL) {
        return -1;
    }
    size_t len;
    char *text = wt_read_file(path, &len);
    assert_non_null(text);
    cp_yaml_stream_t *s;
    cp_err_t err;
    int rc = cp_yaml_parse(text, len, NULL, &s, &err);
    if (rc != 0) {
        fail_msg("%s: %s", name, err.msg);
    }
    int n = 0;
    for (uint32_t i = 0; i < s->n_docs; i++) {
        if (cp_yaml_is_null(s->docs[i])) {
            continue;
        }
        assert_true(n < cap);
        rc = cp_istio_parse(s->docs[i], &docs[n], &err);
        if (rc == CP_E_KIND) {
            (*k8s)++;
            assert_non_null(strstr(err.msg, "not an Istio resource weft serves"));
        } else if (rc != 0) {
            fail_msg("%s document %u: %s", name, i, err.msg);
        }
        n++;
    }
    cp_yaml_free(s);
    wf_free(text);
    wf_free(path);
    return n;
}

static void test_reference_files(void **state)
{
    (void)state;
    int per_kind[CP_KIND_COUNT] = {0};
    int k8s = 0, istio_system = 0;
    for (size_t f = 0; f < sizeof(k_ref_files) / sizeof(k_ref_files[0]); f++) {
        cp_resource_t *docs[32];
        int n = load_ref(k_ref_files[f], docs, 32, &k8s);
        if (n < 0) {
            wt_skip();
        }
        for (int i = 0; i < n; i++) {
            if (docs[i] == NULL) {
                continue;
            }
            per_kind[docs[i]->kind]++;
            if (wf_str_eq_c(docs[i]->meta.namespace_, "istio-system")) {
                istio_system++; /* certmanager-gateway.yaml says so */
            } else {
                assert_string_equal(docs[i]->meta.namespace_.p, "default");
            }
            wf_free(round_trip(docs[i]));
            cp_resource_free(docs[i]);
        }
    }
    assert_int_equal(per_kind[CP_KIND_VIRTUAL_SERVICE], 24);
    assert_int_equal(per_kind[CP_KIND_DESTINATION_RULE], 11);
    assert_int_equal(per_kind[CP_KIND_GATEWAY], 2);
    assert_int_equal(per_kind[CP_KIND_SERVICE_ENTRY], 1);
    assert_int_equal(per_kind[CP_KIND_SIDECAR], 0);
    assert_int_equal(istio_system, 2);
    assert_int_equal(k8s, 14); /* bookinfo.yaml: 4 Services, 4 ServiceAccounts, 6 Deployments */
}

static void test_reviews_80_20(void **state)
{
    (void)state;
    cp_resource_t *docs[4];
    int k8s = 0;
    if (load_ref("virtual-service-reviews-80-20.yaml", docs, 4, &k8s) < 0) {
        wt_skip();
    }
    const cp_resource_t *r = docs[0];
    assert_int_equal(r->kind, CP_KIND_VIRTUAL_SERVICE);
    assert_string_equal(r->api_version.p, "networking.istio.io/v1");
    assert_string_equal(r->meta.name.p, "reviews");
    const cp_virtual_service_t *vs = r->spec.vs;
    assert_int_equal(vs->hosts.n, 1);
    assert_string_equal(vs->hosts.items[0].p, "reviews");
    assert_int_equal(vs->n_http, 1);
    const cp_http_route_t *h = &vs->http[0];
    assert_int_equal(h->n_match, 0);
    assert_int_equal(h->n_route, 2);
    assert_string_equal(h->route[0].destination->host.p, "reviews");
    assert_string_equal(h->route[0].destination->subset.p, "v1");
    assert_int_equal(h->route[0].weight, 80);
    assert_string_equal(h->route[1].destination->subset.p, "v2");
    assert_int_equal(h->route[1].weight, 20);
    assert_int_equal(h->route[1].destination->port, CP_UNSET);
    assert_int_equal(h->timeout_ms, CP_UNSET);
    assert_null(h->fault);
    assert_true(h->mirror_percentage < 0);
    char *json = round_trip(r);
    assert_string_equal(
        json, "{\"apiVersion\":\"networking.istio.io/v1\",\"kind\":\"VirtualService\","
              "\"metadata\":{\"name\":\"reviews\",\"namespace\":\"default\"},\"spec\":{\"hosts\":"
              "[\"reviews\"],\"http\":[{\"route\":[{\"destination\":{\"host\":\"reviews\","
              "\"subset\":\"v1\"},\"weight\":80},{\"destination\":{\"host\":\"reviews\","
              "\"subset\":\"v2\"},\"weight\":20}]}]}}");
    wf_free(json);
    cp_resource_free(docs[0]);
}

static void test_ratings_delay(void **state)
{
    (void)state;
    cp_resource_t *docs[4];
    int k8s = 0;
    if (load_ref("virtual-service-ratings-test-delay.yaml", docs, 4, &k8s) < 0) {
        wt_skip();
    }
    const cp_virtual_service_t *vs = docs[0]->spec.vs;
    assert_int_equal(vs->n_http, 2);
    const cp_http_route_t *h = &vs->http[0];
    assert_int_equal(h->n_match, 1);
    assert_int_equal(h->match[0].headers.n, 1);
    assert_string_equal(h->match[0].headers.items[0].key.p, "end-user");
    assert_string_equal(h->match[0].headers.items[0].match.exact.p, "jason");
    assert_null(h->match[0].headers.items[0].match.prefix.p);
    assert_non_null(h->fault);
    assert_non_null(h->fault->delay);
    assert_null(h->fault->abort);
    assert_int_equal(h->fault->delay->fixed_delay_ms, 7000);
    assert_true(h->fault->delay->percentage == 100.0);
    assert_int_equal(h->n_route, 1);
    assert_int_equal(h->route[0].weight, CP_UNSET);
    assert_null(vs->http[1].fault);
    cp_resource_free(docs[0]);
}

static void test_destination_rule_all(void **state)
{
    (void)state;
    cp_resource_t *docs[8];
    int k8s = 0;
    int n = load_ref("destination-rule-all.yaml", docs, 8, &k8s);
    if (n < 0) {
        wt_skip();
    }
    assert_int_equal(n, 4);
    static const struct {
        const char *host;
        int subsets;
    } want[] = {{"productpage", 1}, {"reviews", 3}, {"ratings", 4}, {"details", 2}};
    for (int i = 0; i < 4; i++) {
        const cp_destination_rule_t *dr = docs[i]->spec.dr;
        assert_string_equal(dr->host.p, want[i].host);
        assert_int_equal(dr->n_subsets, want[i].subsets);
        for (uint32_t j = 0; j < dr->n_subsets; j++) {
            const cp_subset_t *s = &dr->subsets[j];
            assert_int_equal(s->labels.n, 1);
            assert_string_equal(s->labels.items[0].key.p, "version");
            assert_string_equal(s->labels.items[0].value.p, s->name.p);
        }
        assert_null(dr->traffic_policy);
    }
    assert_string_equal(docs[1]->spec.dr->subsets[2].name.p, "v3");
    assert_string_equal(docs[2]->spec.dr->subsets[3].name.p, "v2-mysql-vm");
    for (int i = 0; i < n; i++) {
        cp_resource_free(docs[i]);
    }
    /* The mTLS variant carries a traffic policy. */
    if (load_ref("destination-rule-all-mtls.yaml", docs, 8, &k8s) == 4) {
        assert_int_equal(docs[0]->spec.dr->traffic_policy->tls->mode, CP_TLS_ISTIO_MUTUAL);
        for (int i = 0; i < 4; i++) {
            cp_resource_free(docs[i]);
        }
    }
}

static void test_bookinfo_gateway(void **state)
{
    (void)state;
    cp_resource_t *docs[4];
    int k8s = 0;
    if (load_ref("bookinfo-gateway.yaml", docs, 4, &k8s) < 0) {
        wt_skip();
    }
    const cp_gateway_t *gw = docs[0]->spec.gw;
    assert_int_equal(gw->selector.n, 1);
    assert_string_equal(gw->selector.items[0].key.p, "istio");
    assert_string_equal(gw->selector.items[0].value.p, "ingressgateway");
    assert_int_equal(gw->n_servers, 1);
    assert_int_equal(gw->servers[0].port->number, 8080);
    assert_string_equal(gw->servers[0].port->name.p, "http");
    assert_string_equal(gw->servers[0].port->protocol.p, "HTTP");
    assert_int_equal(gw->servers[0].hosts.n, 1);
    assert_string_equal(gw->servers[0].hosts.items[0].p, "*");
    const cp_virtual_service_t *vs = docs[1]->spec.vs;
    assert_string_equal(vs->gateways.items[0].p, "bookinfo-gateway");
    assert_int_equal(vs->http[0].n_match, 5);
    assert_string_equal(vs->http[0].match[1].uri->prefix.p, "/static");
    assert_string_equal(vs->http[0].match[2].uri->exact.p, "/login");
    assert_int_equal(vs->http[0].route[0].destination->port, 9080);
    cp_resource_free(docs[0]);
    cp_resource_free(docs[1]);
}

static void test_all_kinds_round_trip(void **state)
{
    (void)state;
    static const char *const texts[] = {
        "apiVersion: networking.istio.io/v1beta1\n"
        "kind: VirtualService\n"
        "metadata: {name: full, namespace: shop, labels: {app: x}, annotations: {a: b},\n"
        "  resourceVersion: '42', generation: 3, uid: ignored}\n"
        "spec:\n"
        "  hosts: [full]\n"
        "  http:\n"
        "  - name: r1\n"
        "    match:\n"
        "    - uri: {regex: '/api/v[0-9]+/.*'}\n"
        "      headers:\n"
        "        x-a: {prefix: p}\n"
        "        x-b: {}\n"
        "      queryParams: {q: {exact: '1'}}\n"
        "      withoutHeaders: {x-c: {exact: no}}\n"
        "      method: {exact: GET}\n"
        "      sourceLabels: {app: web}\n"
        "      ignoreUriCase: true\n"
        "      port: 8080\n"
        "    route:\n"
        "    - destination: {host: a, subset: v1, port: {number: 80}}\n"
        "      weight: 90\n"
        "      headers: {request: {set: {x: '1'}, remove: [y]}, response: {add: {z: '2'}}}\n"
        "    - destination: {host: b}\n"
        "      weight: 10\n"
        "    rewrite: {uri: /new, authority: b.example}\n"
        "    timeout: 1.5s\n"
        "    retries: {attempts: 3, perTryTimeout: 250ms, retryOn: '5xx,connect-failure'}\n"
        "    fault: {abort: {httpStatus: 503, percentage: {value: 12.5}}}\n"
        "    mirror: {host: shadow}\n"
        "    mirrorPercentage: {value: 50}\n"
        "    corsPolicy: {allowOrigins: [{exact: 'https://a'}], allowMethods: [GET],\n"
        "      maxAge: 1m, allowCredentials: false}\n"
        "  - redirect: {uri: /x, redirectCode: 302, derivePort: FROM_REQUEST_PORT}\n"
        "  - directResponse: {status: 418, body: {string: teapot}}\n"
        "  tcp:\n"
        "  - match: [{port: 3306}]\n"
        "    route: [{destination: {host: db}}]\n"
        "  tls:\n"
        "  - match: [{sniHosts: [a.example], port: 443}]\n"
        "    route: [{destination: {host: a.example}}]\n",

        "apiVersion: networking.istio.io/v1alpha3\n"
        "kind: DestinationRule\n"
        "metadata: {name: dr}\n"
        "spec:\n"
        "  host: reviews.prod.svc.cluster.local\n"
        "  trafficPolicy:\n"
        "    loadBalancer: {consistentHash: {httpCookie: {name: u, ttl: 0s}}}\n"
        "    connectionPool:\n"
        "      tcp: {maxConnections: 100, connectTimeout: 30ms}\n"
        "      http: {http1MaxPendingRequests: 10, maxRequestsPerConnection: 1,\n"
        "             h2UpgradePolicy: UPGRADE, idleTimeout: 1h}\n"
        "    outlierDetection: {consecutive5xxErrors: 7, interval: 5m, baseEjectionTime: 15m,\n"
        "                       maxEjectionPercent: 100}\n"
        "    tls: {mode: MUTUAL, clientCertificate: /c, privateKey: /k, sni: s,\n"
        "          subjectAltNames: [spiffe://x]}\n"
        "    portLevelSettings:\n"
        "    - port: {number: 9080}\n"
        "      loadBalancer: {simple: LEAST_REQUEST}\n"
        "  subsets:\n"
        "  - name: v1\n"
        "    labels: {version: v1}\n"
        "    trafficPolicy: {loadBalancer: {simple: RANDOM}}\n"
        "  exportTo: ['.']\n"
        "  workloadSelector: {matchLabels: {app: reviews}}\n",

        "apiVersion: networking.istio.io/v1\n"
        "kind: Gateway\n"
        "metadata: {name: gw}\n"
        "spec:\n"
        "  selector: {istio: ingressgateway}\n"
        "  servers:\n"
        "  - port: {number: 443, name: https, protocol: HTTPS}\n"
        "    hosts: ['*.example.com']\n"
        "    tls: {mode: SIMPLE, credentialName: cert, minProtocolVersion: TLSV1_2}\n"
        "  - port: {number: 80, name: http, protocol: HTTP}\n"
        "    hosts: ['*']\n"
        "    tls: {httpsRedirect: true}\n",

        "apiVersion: networking.istio.io/v1\n"
        "kind: ServiceEntry\n"
        "metadata: {name: se}\n"
        "spec:\n"
        "  hosts: [db.internal]\n"
        "  addresses: [10.0.0.0/24]\n"
        "  ports: [{number: 5432, name: pg, protocol: TCP, targetPort: 15432}]\n"
        "  location: MESH_INTERNAL\n"
        "  resolution: STATIC\n"
        "  endpoints:\n"
        "  - address: 10.0.0.5\n"
        "    ports: {pg: 6432}\n"
        "    labels: {version: v1}\n"
        "    weight: 3\n",

        "apiVersion: networking.istio.io/v1\n"
        "kind: Sidecar\n"
        "metadata: {name: default, namespace: shop}\n"
        "spec:\n"
        "  workloadSelector: {labels: {app: web}}\n"
        "  egress:\n"
        "  - hosts: ['./*', 'istio-system/*']\n"
        "  outboundTrafficPolicy: {mode: REGISTRY_ONLY}\n",

        "apiVersion: security.istio.io/v1beta1\n"
        "kind: PeerAuthentication\n"
        "metadata: {name: pa}\n"
        "spec:\n"
        "  selector: {matchLabels: {app: reviews}}\n"
        "  mtls: {mode: STRICT}\n"
        "  portLevelMtls: {'9080': {mode: DISABLE}}\n",

        "apiVersion: security.istio.io/v1\n"
        "kind: AuthorizationPolicy\n"
        "metadata: {name: ap}\n"
        "spec:\n"
        "  selector: {matchLabels: {app: ratings}}\n"
        "  action: DENY\n"
        "  rules:\n"
        "  - from: [{source: {principals: ['cluster.local/ns/default/sa/x'],\n"
        "                     notNamespaces: [prod]}}]\n"
        "    to: [{operation: {methods: [POST], paths: ['/admin*'], ports: ['9080']}}]\n"
        "    when: [{key: 'request.headers[x-id]', values: ['1'], notValues: ['2']}]\n",
    };
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        cp_resource_t *r = must_parse(texts[i]);
        wf_free(round_trip(r));
        cp_resource_free(r);
    }

    cp_resource_t *r = must_parse(texts[0]);
    assert_string_equal(r->meta.namespace_.p, "shop");
    assert_string_equal(r->meta.resource_version.p, "42");
    assert_int_equal(r->meta.generation, 3);
    const cp_http_route_t *h = &r->spec.vs->http[0];
    assert_int_equal(h->timeout_ms, 1500);
    assert_int_equal(h->retries->attempts, 3);
    assert_int_equal(h->retries->per_try_timeout_ms, 250);
    assert_int_equal(h->fault->abort->http_status, 503);
    assert_true(h->fault->abort->percentage == 12.5);
    assert_true(h->mirror_percentage == 50.0);
    assert_int_equal(h->cors_policy->max_age_ms, 60000);
    assert_int_equal(h->cors_policy->allow_credentials, 0);
    assert_int_equal(h->match[0].ignore_uri_case, 1);
    assert_int_equal(h->match[0].headers.n, 2);
    assert_null(h->match[0].headers.items[1].match.exact.p);
    assert_int_equal(r->spec.vs->http[1].redirect->derive_port, CP_DERIVE_FROM_REQUEST_PORT);
    assert_int_equal(r->spec.vs->http[2].direct_response->status, 418);
    assert_int_equal(r->spec.vs->tcp[0].match[0].port, 3306);
    char *json = cp_istio_to_json(r);
    assert_non_null(strstr(json, "\"timeout\":\"1500ms\""));
    assert_non_null(strstr(json, "\"maxAge\":\"1m\""));
    assert_non_null(strstr(json, "\"mirrorPercentage\":{\"value\":50.0}"));
    assert_null(strstr(json, "uid"));
    wf_free(json);
    cp_resource_free(r);

    r = must_parse(texts[3]);
    assert_int_equal(r->spec.se->resolution, CP_RES_STATIC);
    assert_int_equal(r->spec.se->endpoints[0].n_ports, 1);
    assert_int_equal(r->spec.se->endpoints[0].ports[0].port, 6432);
    assert_int_equal(r->spec.se->ports[0].target_port, 15432);
    cp_resource_free(r);
    r = must_parse(texts[5]);
    assert_int_equal(r->spec.pa->mtls_mode, CP_MTLS_STRICT);
    assert_int_equal(r->spec.pa->port_level_mtls[0].mode, CP_MTLS_DISABLE);
    cp_resource_free(r);
    r = must_parse(texts[6]);
    assert_int_equal(r->spec.ap->action, CP_AP_DENY);
    assert_string_equal(r->spec.ap->rules[0].when[0].key.p, "request.headers[x-id]");
    cp_resource_free(r);
}

#define VS_HEAD                                                                                    \
    "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r}\nspec:\n"

static void test_bad_resources(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int code;
        const char *msg;
    } cases[] = {
        {VS_HEAD "  hosts: [r]\n  http:\n  - route:\n    - destination: {host: a}\n"
                 "    - destination: {host: b}\n      weight: -1\n",
         CP_E_INVALID, "spec.http[0].route[1].weight: must be >= 0"},
        {VS_HEAD "  hosts: [r]\n  http:\n  - route:\n    - destination: {host: a}\n"
                 "      wieght: 3\n",
         CP_E_INVALID, "spec.http[0].route[0].wieght: unknown field (did you mean weight?)"},
        {VS_HEAD "  http: []\n", CP_E_INVALID, "spec.hosts: required"},
        {VS_HEAD "  hosts: [r]\n  http: [{route: [{weight: 1}]}]\n", CP_E_INVALID,
         "spec.http[0].route[0].destination: required"},
        {VS_HEAD "  hosts: [r]\n  http: [{timeout: 3 s}]\n", CP_E_INVALID,
         "spec.http[0].timeout: invalid duration \"3 s\": missing or unknown unit (ns, us, ms, "
         "s, m, h)"},
        {VS_HEAD "  hosts: [r]\n  http: [{timeout: -1s}]\n", CP_E_INVALID,
         "spec.http[0].timeout: invalid duration \"-1s\": must not be negative"},
        {VS_HEAD "  hosts: [r]\n  http: [{retries: {perTryTimeout: 10}}]\n", CP_E_INVALID,
         "spec.http[0].retries.perTryTimeout: invalid duration \"10\": missing or unknown unit "
         "(ns, us, ms, s, m, h)"},
        {VS_HEAD "  hosts: [r]\n  http: [{match: [{uri: {regex: '(?<=a)b'}}]}]\n", CP_E_INVALID,
         "spec.http[0].match[0].uri.regex: invalid regex: lookbehind is not RE2 syntax"},
        {VS_HEAD "  hosts: [r]\n  http: [{match: [{headers: {x: {regex: '(a)\\1'}}}]}]\n",
         CP_E_INVALID,
         "spec.http[0].match[0].headers.x.regex: invalid regex: backreferences are not RE2 "
         "syntax"},
        {VS_HEAD "  hosts: [r]\n  http: [{match: [{uri: {regex: 'a('}}]}]\n", CP_E_INVALID,
         "spec.http[0].match[0].uri.regex: invalid regex: missing closing parenthesis at offset "
         "2"},
        {VS_HEAD "  hosts: [r]\n  http: [{match: [{uri: {exact: a, prefix: b}}]}]\n", CP_E_INVALID,
         "spec.http[0].match[0].uri: only one of exact, prefix, regex"},
        {VS_HEAD "  hosts: [r]\n  http: [{route: [{destination: {host: a, port: {number: 0}}}]}]\n",
         CP_E_INVALID,
         "spec.http[0].route[0].destination.port.number: must be a port number "
         "(1..65535)"},
        {VS_HEAD "  hosts: [r]\n  http: [{mirror: {host: m}, mirrorPercentage: {value: 101}}]\n",
         CP_E_INVALID, "spec.http[0].mirrorPercentage.value: must be between 0 and 100"},
        {VS_HEAD "  hosts: [r]\n  http: [{fault: {delay: {percentage: {value: 5}}}}]\n",
         CP_E_INVALID, "spec.http[0].fault.delay.fixedDelay: required"},
        {VS_HEAD "  hosts: [r]\n  http: [{fault: {abort: {httpStatus: 99}}}]\n", CP_E_INVALID,
         "spec.http[0].fault.abort.httpStatus: must be >= 200"},
        {VS_HEAD "  hosts: [r]\n  http: [{fault: {}}]\n", CP_E_INVALID,
         "spec.http[0].fault: needs delay or abort"},
        {VS_HEAD
         "  hosts: [r]\n  http: [{route: [{destination: {host: a}}], redirect: {uri: /}}]\n",
         CP_E_INVALID, "spec.http[0]: only one of route, redirect, directResponse, delegate"},
        {VS_HEAD "  hosts: r\n", CP_E_INVALID, "spec.hosts: must be a list of strings"},
        {VS_HEAD "  hosts: [r]\n  http: [{route: [{destination: {host: a}, weight: ten}]}]\n",
         CP_E_INVALID, "spec.http[0].route[0].weight: must be an integer"},
        {VS_HEAD "  hosts: [r]\n  http: [{match: [{ignoreUriCase: 'yes'}]}]\n", CP_E_INVALID,
         "spec.http[0].match[0].ignoreUriCase: must be true or false"},
        {VS_HEAD "  hosts: [r]\n  http: [{directResponse: {status: 200, body: {string: [x]}}}]\n",
         CP_E_INVALID, "spec.http[0].directResponse.body.string: must be a string"},
        {"apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: d}\n"
         "spec:\n  host: h\n  trafficPolicy: {loadBalancer: {simple: FASTEST}}\n",
         CP_E_INVALID,
         "spec.trafficPolicy.loadBalancer.simple: must be one of UNSPECIFIED, LEAST_CONN, "
         "RANDOM, PASSTHROUGH, ROUND_ROBIN, LEAST_REQUEST"},
        {"apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: d}\n"
         "spec:\n  host: h\n  subsets: [{name: v1}, {name: v1}]\n",
         CP_E_INVALID, "spec.subsets[1]: duplicate subset name \"v1\""},
        {"apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: d}\n"
         "spec:\n  host: h\n  trafficPolicy: {outlierDetection: {maxEjectionPercent: 150}}\n",
         CP_E_INVALID, "spec.trafficPolicy.outlierDetection.maxEjectionPercent: must be <= 100"},
        {"apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: g}\n"
         "spec:\n  servers: [{port: {number: 70000, protocol: HTTP}, hosts: ['*']}]\n",
         CP_E_INVALID, "spec.servers[0].port.number: must be a port number (1..65535)"},
        {"apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: g}\n"
         "spec:\n  servers: [{port: {number: 80, protocol: HTTP}}]\n",
         CP_E_INVALID, "spec.servers[0].hosts: required"},
        {"apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: s}\n"
         "spec:\n  hosts: [a]\n  resolution: MAGIC\n",
         CP_E_INVALID, "spec.resolution: must be one of NONE, STATIC, DNS, DNS_ROUND_ROBIN"},
        {"apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: s}\n"
         "spec:\n  hosts: [a]\n  endpoints: [{address: 1.2.3.4, ports: {http: 0}}]\n",
         CP_E_INVALID, "spec.endpoints[0].ports.http: must be a port number (1..65535)"},
        {"apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: s}\n"
         "spec:\n  egress: [{port: {number: 80}}]\n",
         CP_E_INVALID, "spec.egress[0].hosts: required"},
        {"apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: s}\n"
         "spec:\n  ingress: []\n",
         CP_E_INVALID, "spec.ingress: unknown field (did you mean egress?)"},
        {"apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: p}\n"
         "spec:\n  mtls: {mode: STRICTEST}\n",
         CP_E_INVALID, "spec.mtls.mode: must be one of DISABLE, PERMISSIVE, STRICT"},
        {"apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: p}\n"
         "spec:\n  portLevelMtls: {http: {mode: STRICT}}\n",
         CP_E_INVALID, "spec.portLevelMtls.http: key must be a port number (1..65535)"},
        {"apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: a}\n"
         "spec:\n  action: CUSTOM\n  provider: {name: ext}\n  rules: [{}]\n",
         CP_E_UNSUPPORTED,
         "spec.action: CUSTOM is not supported: weft has no external authorizer (issue #7)"},
        {"apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: a}\n"
         "spec:\n  provider: {name: ext}\n",
         CP_E_INVALID, "spec.provider: provider is only valid with action CUSTOM"},
        {"apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: a}\n"
         "spec:\n  action: CUSTOM\n  provider: {nam: ext}\n",
         CP_E_INVALID, "spec.provider.nam: unknown field (did you mean name?)"},
        {"apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: a}\n"
         "spec:\n  action: CUSTOM\n",
         CP_E_UNSUPPORTED,
         "spec.action: CUSTOM is not supported: weft has no external authorizer (issue #7)"},
        {"apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: a}\n"
         "spec:\n  rules: [{when: [{values: [x]}]}]\n",
         CP_E_INVALID, "spec.rules[0].when[0].key: required"},
#define AP_RULE(r)                                                                                 \
    "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: a}\nspec:\n  "  \
    "rules: [" r "]\n"
        {AP_RULE("{from: [{source: {ipBlocks: [10.0.0.0/8, 10.0.0.0/33]}}]}"), CP_E_INVALID,
         "spec.rules[0].from[0].source.ipBlocks[1]: CIDR prefix length out of range: "
         "\"10.0.0.0/33\""},
        {AP_RULE("{}, {from: [{source: {notRemoteIpBlocks: [example.com]}}]}"), CP_E_INVALID,
         "spec.rules[1].from[0].source.notRemoteIpBlocks[0]: not an IP address or CIDR: "
         "\"example.com\""},
        {AP_RULE("{to: [{operation: {ports: ['80', http]}}]}"), CP_E_INVALID,
         "spec.rules[0].to[0].operation.ports[1]: must be a port number 0..65535: \"http\""},
        {AP_RULE("{to: [{operation: {notPorts: ['65536']}}]}"), CP_E_INVALID,
         "spec.rules[0].to[0].operation.notPorts[0]: must be a port number 0..65535: \"65536\""},
        {AP_RULE("{to: [{operation: {paths: ['/a/{**}/b/{*}']}}]}"), CP_E_INVALID,
         "spec.rules[0].to[0].operation.paths[0]: {**} must be the last operator of a path "
         "template: \"/a/{**}/b/{*}\""},
        {AP_RULE("{to: [{operation: {notPaths: ['/a/{id}']}}]}"), CP_E_INVALID,
         "spec.rules[0].to[0].operation.notPaths[0]: only {*} and {**} are path template "
         "operators: \"/a/{id}\""},
        {AP_RULE("{to: [{operation: {paths: ['/a{*}']}}]}"), CP_E_INVALID,
         "spec.rules[0].to[0].operation.paths[0]: a path template operator must be a whole "
         "path segment: \"/a{*}\""},
        {AP_RULE("{when: [{key: source.ipp, values: [x]}]}"), CP_E_INVALID,
         "spec.rules[0].when[0].key: unknown condition key \"source.ipp\""},
        {AP_RULE("{when: [{key: 'request.headers[]', values: [x]}]}"), CP_E_INVALID,
         "spec.rules[0].when[0].key: unknown condition key \"request.headers[]\""},
        {AP_RULE("{when: [{key: 'request.headers[x-a]'}]}"), CP_E_INVALID,
         "spec.rules[0].when[0]: a condition needs values or notValues"},
        {AP_RULE("{when: [{key: destination.port, notValues: ['8o']}]}"), CP_E_INVALID,
         "spec.rules[0].when[0].notValues[0]: must be a port number 0..65535: \"8o\""},
        {AP_RULE("{when: [{key: source.ip, values: ['::1/200']}]}"), CP_E_INVALID,
         "spec.rules[0].when[0].values[0]: CIDR prefix length out of range: \"::1/200\""},
        {"apiVersion: networking.istio.io/v2\nkind: VirtualService\nmetadata: {name: r}\n"
         "spec: {hosts: [r]}\n",
         CP_E_KIND,
         "apiVersion: VirtualService is not served as \"networking.istio.io/v2\" (use "
         "networking.istio.io/ with v1, v1beta1, v1alpha3)"},
        {"apiVersion: networking.istio.io/v1alpha3\nkind: PeerAuthentication\n"
         "metadata: {name: r}\nspec: {}\n",
         CP_E_KIND,
         "apiVersion: PeerAuthentication is not served as \"networking.istio.io/v1alpha3\" (use "
         "security.istio.io/ with v1, v1beta1)"},
        {"apiVersion: networking.istio.io/v1\nkind: Telemetry\nmetadata: {name: r}\nspec: {}\n",
         CP_E_KIND,
         "kind: unknown kind \"Telemetry\" (apiVersion networking.istio.io/v1): not an Istio "
         "resource weft serves"},
        {"kind: VirtualService\nmetadata: {name: r}\nspec: {}\n", CP_E_INVALID,
         "apiVersion: required"},
        {VS_HEAD "  hosts: [r]\nextra: 1\n", CP_E_INVALID, "extra: unknown field"},
        {"apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {namespace: x}\n"
         "spec: {hosts: [r]}\n",
         CP_E_INVALID, "metadata.name: required"},
        {"apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r}\n",
         CP_E_INVALID, "(document): spec: required"},
        {"apiVersion: networking.istio.io/v1\nkind: VirtualService\n"
         "metadata: {name: r, generation: 9999999999999999999}\nspec: {hosts: [r]}\n",
         CP_E_INVALID, "metadata.generation: integer out of range"},
        {"- a\n- b\n", CP_E_INVALID, "(document): a resource must be a mapping"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        cp_resource_t *r;
        cp_err_t err;
        int rc = parse1(cases[i].text, &r, &err);
        if (rc != cases[i].code || strcmp(err.msg, cases[i].msg) != 0) {
            fail_msg("case %zu: got %d \"%s\", want %d \"%s\"", i, rc, err.msg, cases[i].code,
                     cases[i].msg);
        }
        assert_null(r);
        assert_true(err.line > 0 || cases[i].code == CP_E_INVALID);
    }
}

static void test_error_position(void **state)
{
    (void)state;
    cp_resource_t *r;
    cp_err_t err;
    assert_int_equal(parse1(VS_HEAD "  hosts: [r]\n  http:\n  - route:\n"
                                    "    - destination: {host: a}\n      weight: -5\n",
                            &r, &err),
                     CP_E_INVALID);
    assert_int_equal(err.line, 9);
    assert_int_equal(err.column, 15);
}

static void test_durations(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        int64_t ms;
    } ok[] = {{"3s", 3000},    {"250ms", 250}, {"1m", 60000},    {"1.5s", 1500},
              {"1h", 3600000}, {"0", 0},       {"0s", 0},        {"1m30s", 90000},
              {"0.25s", 250},  {"1000us", 1},  {"2000000ns", 2}, {"1.0001s", -1}};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        int64_t ms = 0;
        const char *why = NULL;
        int rc = cp_duration_parse(wf_str(ok[i].in), &ms, &why);
        if (ok[i].ms < 0) {
            assert_int_equal(rc, CP_E_INVALID);
            assert_string_equal(why, "finer than a millisecond");
            continue;
        }
        assert_int_equal(rc, 0);
        assert_int_equal(ms, ok[i].ms);
    }
    static const char *const bad[] = {
        "", "s", "5", "1d", "1.s5", "-3s", ".s", "9999999999999999999h", "1e3s"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int64_t ms = 0;
        const char *why = NULL;
        assert_int_equal(cp_duration_parse(wf_str(bad[i]), &ms, &why), CP_E_INVALID);
        assert_non_null(why);
    }
}

static void test_regexes(void **state)
{
    (void)state;
    char why[200];
    static const char *const good[] = {"/api/v[0-9]+/.*", "(?i)abc",     "(?P<n>x)|y",
                                       "a{2,5}?",         "[\\]a-z(]+",  "\\Q(?=\\E",
                                       "^\\d+$",          "[[:alpha:]]+"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        if (cp_regex_check(wf_str(good[i]), why, sizeof(why)) != 0) {
            fail_msg("%s: %s", good[i], why);
        }
    }
    static const struct {
        const char *re, *why;
    } bad[] = {{"a(?=b)", "lookahead is not RE2 syntax"},
               {"(?>a)",
                "this group syntax is not RE2 syntax (only (?:, (?P<name>, (?<name> and flags "
                "imsU)"},
               {"a++", "possessive quantifiers are not RE2 syntax"},
               {"(*ACCEPT)", "backtracking verbs are not RE2 syntax"},
               {"a{1001}", "repetition count above 1000 is not RE2 syntax"},
               {"\\Ka", "this escape is not RE2 syntax"},
               {"(?P=n)", "this group syntax is not RE2 syntax (only (?:, (?P<name>, (?<name> and "
                          "flags imsU)"},
               {"[a-", "missing terminating ] for character class at offset 3"}};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(cp_regex_check(wf_str(bad[i].re), why, sizeof(why)), CP_E_INVALID);
        assert_string_equal(why, bad[i].why);
    }
}

static void test_json_input(void **state)
{
    (void)state;
    cp_resource_t *r = must_parse(
        "{\"apiVersion\": \"networking.istio.io/v1\", \"kind\": \"VirtualService\","
        " \"metadata\": {\"name\": \"reviews\", \"namespace\": null},"
        " \"spec\": {\"hosts\": [\"reviews\"], \"http\": [{\"route\": [{\"destination\":"
        " {\"host\": \"reviews\", \"subset\": \"v2\"}, \"weight\": 100}], \"timeout\": null}]}}");
    assert_string_equal(r->meta.namespace_.p, "default");
    assert_int_equal(r->spec.vs->http[0].route[0].weight, 100);
    assert_int_equal(r->spec.vs->http[0].timeout_ms, CP_UNSET);
    cp_resource_free(r);
    r = must_parse(VS_HEAD "  hosts: [r]\n  http: [{match: [{ignoreUriCase: yes}]}]\n");
    assert_int_equal(r->spec.vs->http[0].match[0].ignore_uri_case, 1);
    cp_resource_free(r);
}

static void test_hostile(void **state)
{
    (void)state;
    /* A bomb inside a resource fails in the YAML layer, before any typed work. */
    char text[2048];
    size_t w = (size_t)snprintf(text, sizeof(text), VS_HEAD "  hosts: &h0 [a, a, a, a, a, a, a]\n");
    for (int i = 1; i < 9; i++) {
        w += (size_t)snprintf(text + w, sizeof(text) - w,
                              "  x%d: &h%d [*h%d, *h%d, *h%d, *h%d, *h%d, *h%d, *h%d, *h%d]\n", i,
                              i, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1);
    }
    cp_resource_t *r;
    cp_err_t err;
    assert_int_equal(parse1(text, &r, &err), CP_E_LIMIT);
    /* Aliases that stay under the node limit are expanded into typed data like any value. */
    r = must_parse(VS_HEAD "  hosts: [r]\n  http:\n  - route: &rt [{destination: {host: a}}]\n"
                           "  - route: *rt\n");
    assert_int_equal(r->spec.vs->n_http, 2);
    assert_string_equal(r->spec.vs->http[1].route[0].destination->host.p, "a");
    cp_resource_free(r);
    /* Merge keys, as Kubernetes' YAML reader applies them. */
    r = must_parse(
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: d}\n"
        "spec:\n  host: h\n  trafficPolicy: &tp {loadBalancer: {simple: RANDOM}}\n"
        "  subsets:\n  - name: v1\n"
        "    trafficPolicy: {<<: *tp, tls: {mode: ISTIO_MUTUAL}}\n");
    const cp_traffic_policy_t *tp = r->spec.dr->subsets[0].traffic_policy;
    assert_int_equal(tp->load_balancer->simple, CP_LB_RANDOM);
    assert_int_equal(tp->tls->mode, CP_TLS_ISTIO_MUTUAL);
    assert_null(r->spec.dr->traffic_policy->tls);
    cp_resource_free(r);
    /* Non-UTF-8 in a value. */
    assert_int_equal(parse1(VS_HEAD "  hosts: [\"r\xc0\xaf\"]\n", &r, &err), CP_E_SYNTAX);
    assert_string_equal(err.msg, "line 5 column 13: input is not valid UTF-8");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference_files),  cmocka_unit_test(test_reviews_80_20),
        cmocka_unit_test(test_ratings_delay),    cmocka_unit_test(test_destination_rule_all),
        cmocka_unit_test(test_bookinfo_gateway), cmocka_unit_test(test_all_kinds_round_trip),
        cmocka_unit_test(test_bad_resources),    cmocka_unit_test(test_error_position),
        cmocka_unit_test(test_durations),        cmocka_unit_test(test_regexes),
        cmocka_unit_test(test_json_input),       cmocka_unit_test(test_hostile),
    };
    return wt_exit_code(cmocka_run_group_tests(tests, NULL, NULL));
}
