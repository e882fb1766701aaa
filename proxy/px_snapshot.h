/*
 * px_snapshot.h - the proxy's config snapshot: one JSON document per proxy (schema 1, written
 * down in docs/snapshot.md), parsed and validated into typed, immutable C structures.
 *
 * A snapshot carries what one proxy needs, already compiled from Istio's resources and the
 * registry by the control plane (or written by hand for `weft proxy --config FILE`): the
 * proxy's identity, telemetry settings, the inbound listener's policy, the outbound virtual
 * hosts with their ordered HTTP routes, the clusters with their endpoints, and in gateway
 * mode the gateway's servers. The semantics are Istio's; the proxy does no Istio-YAML work.
 *
 * Ownership: every structure and string of one snapshot lives in one arena owned by the
 * snapshot, plus the compiled regexes it frees with it. A snapshot is immutable once
 * px_snapshot_parse returns, so any number of threads may read it concurrently. Its reference
 * count is atomic: the thread that installs a new snapshot drops its reference to the old one,
 * requests in flight hold their own reference, and the last px_snapshot_unref frees it all.
 *
 * Strings are wf_str_t slices into the arena; each is also NUL-terminated, so `.p` may be
 * passed to C string functions. Absent optional strings are {"", 0}.
 *
 * Errors: px_snapshot_parse returns 0, WF_E_INVAL (malformed, wrong type, invalid value: the
 * message names the JSON path, e.g. `virtual_hosts[1].routes[0].route[1].weight: must be >=
 * 0`) or WF_E_LIMIT (the document exceeds a size limit of px_snapshot_limits_t).
 */
#ifndef PX_SNAPSHOT_H
#define PX_SNAPSHOT_H

#include "px_authz.h"
#include "wf_arena.h"
#include "wf_str.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The schema this proxy reads. A document with another "schema" is refused. */
#define PX_SNAPSHOT_SCHEMA 1

struct pcre2_real_code_8;
struct pcre2_real_match_context_8;

typedef struct {
    wf_str_t key;
    wf_str_t value;
} px_label_t;

/* Istio's StringMatch. PX_SM_PRESENT is the empty StringMatch `{}`: the value is present. */
typedef enum {
    PX_SM_NONE = 0, /* no condition */
    PX_SM_EXACT,
    PX_SM_PREFIX,
    PX_SM_REGEX, /* RE2 syntax, whole-value match */
    PX_SM_PRESENT,
} px_sm_kind_t;

typedef struct {
    px_sm_kind_t kind;
    wf_str_t value;               /* EXACT, PREFIX: the literal; REGEX: the pattern */
    struct pcre2_real_code_8 *re; /* REGEX: compiled, anchored at both ends */
} px_strmatch_t;

/* A header or query parameter condition. */
typedef struct {
    wf_str_t name; /* header names are lower-cased at parse time */
    px_strmatch_t match;
} px_kvmatch_t;

/* Istio's HTTPMatchRequest: every present condition must hold. */
typedef struct {
    wf_str_t name;
    px_strmatch_t uri, scheme, method, authority;
    px_kvmatch_t *headers;
    uint32_t n_headers;
    px_kvmatch_t *without_headers;
    uint32_t n_without_headers;
    px_kvmatch_t *query_params;
    uint32_t n_query_params;
    px_label_t *source_labels;
    uint32_t n_source_labels;
    bool ignore_uri_case; /* uri exact and prefix compare ASCII case-insensitively */
    uint32_t port;        /* listener port, 0 = any */
} px_match_t;

typedef struct {
    px_label_t *set;
    uint32_t n_set;
    px_label_t *add;
    uint32_t n_add;
    wf_str_t *remove;
    uint32_t n_remove;
} px_hdr_ops_t;

typedef struct {
    px_hdr_ops_t request;
    px_hdr_ops_t response;
} px_headers_t;

typedef struct px_cluster px_cluster_t;

/* Istio's Destination as the compiler resolved it. */
typedef struct {
    wf_str_t host;   /* service FQDN */
    wf_str_t subset; /* "" = none */
    uint32_t port;
    wf_str_t cluster_name;       /* `outbound|PORT|SUBSET|HOST` */
    const px_cluster_t *cluster; /* NULL: no such cluster; the proxy answers 503 NC */
} px_dest_t;

/* Istio's HTTPRouteDestination. */
typedef struct {
    px_dest_t dest;
    uint32_t weight;
    px_headers_t headers;
} px_route_dest_t;

typedef enum {
    PX_DERIVE_PORT_NONE = 0,
    PX_DERIVE_PORT_FROM_PROTOCOL_DEFAULT,
    PX_DERIVE_PORT_FROM_REQUEST_PORT,
} px_derive_port_t;

typedef struct {
    wf_str_t uri;       /* "" = keep the path */
    wf_str_t authority; /* "" = keep the authority */
    wf_str_t scheme;    /* "" = keep the scheme */
    uint32_t port;      /* 0 = see derive_port */
    px_derive_port_t derive_port;
    uint32_t code; /* 301 by default */
} px_redirect_t;

typedef struct {
    wf_str_t uri;       /* "" = keep; replaces a matched prefix, else the whole path */
    wf_str_t authority; /* "" = keep */
} px_rewrite_t;

typedef struct {
    uint32_t status;
    wf_str_t body;
} px_direct_response_t;

/* Envoy retry conditions (x-envoy-retry-on and x-envoy-retry-grpc-on names). */
enum {
    PX_RETRY_5XX = 1u << 0,
    PX_RETRY_GATEWAY_ERROR = 1u << 1,
    PX_RETRY_RESET = 1u << 2,
    PX_RETRY_CONNECT_FAILURE = 1u << 3,
    PX_RETRY_ENVOY_RATELIMITED = 1u << 4,
    PX_RETRY_RETRIABLE_4XX = 1u << 5,
    PX_RETRY_REFUSED_STREAM = 1u << 6,
    PX_RETRY_RETRIABLE_STATUS_CODES = 1u << 7,
    PX_RETRY_RESET_BEFORE_REQUEST = 1u << 8,
    PX_RETRY_CANCELLED = 1u << 9,
    PX_RETRY_DEADLINE_EXCEEDED = 1u << 10,
    PX_RETRY_INTERNAL = 1u << 11,
    PX_RETRY_RESOURCE_EXHAUSTED = 1u << 12,
    PX_RETRY_UNAVAILABLE = 1u << 13,
};

#define PX_RETRY_MAX_CODES 16

typedef struct {
    uint32_t attempts;                         /* retries after the first try; 0 = no retries */
    uint64_t per_try_timeout_ms;               /* 0 = none beyond the route timeout */
    uint32_t retry_on;                         /* PX_RETRY_* bits */
    uint16_t status_codes[PX_RETRY_MAX_CODES]; /* retriable status codes from retry_on */
    uint32_t n_status_codes;
} px_retries_t;

typedef struct {
    bool delay_set;
    uint64_t delay_ms;
    double delay_percentage; /* 0..100 */
    bool abort_set;
    uint32_t abort_status;
    double abort_percentage; /* 0..100 */
} px_fault_t;

typedef struct {
    px_strmatch_t *allow_origins;
    uint32_t n_allow_origins;
    wf_str_t allow_methods;  /* comma-joined, as Access-Control-Allow-Methods carries it */
    wf_str_t allow_headers;  /* comma-joined */
    wf_str_t expose_headers; /* comma-joined */
    uint64_t max_age_ms;     /* 0 = header not sent */
    int allow_credentials;   /* -1 unset, 0 false, 1 true */
} px_cors_t;

typedef enum {
    PX_ACTION_ROUTE = 0,
    PX_ACTION_REDIRECT,
    PX_ACTION_DIRECT_RESPONSE,
} px_action_t;

/* Istio's HTTPRoute. */
typedef struct {
    wf_str_t name;
    px_match_t *match; /* OR of the entries; none = match every request */
    uint32_t n_match;
    px_action_t action;
    px_route_dest_t *route; /* PX_ACTION_ROUTE */
    uint32_t n_route;
    uint64_t total_weight; /* > 0 for PX_ACTION_ROUTE */
    px_redirect_t redirect;
    px_direct_response_t direct_response;
    bool has_rewrite;
    px_rewrite_t rewrite;
    uint64_t timeout_ms; /* 0 = none (Istio's default) */
    px_retries_t retries;
    px_fault_t fault;
    bool has_mirror;
    px_dest_t mirror;
    double mirror_percentage; /* 0..100; 100 when a mirror is set without one */
    bool has_cors;
    px_cors_t cors;
    px_headers_t headers;
} px_route_t;

/* A domain of a virtual host, pre-classified for Envoy's matching order. */
typedef enum {
    PX_DOM_EXACT = 0,
    PX_DOM_SUFFIX, /* `*.example.com`: value holds `.example.com` */
    PX_DOM_PREFIX, /* `example.*`: value holds `example.` */
    PX_DOM_ANY,    /* `*` */
} px_dom_kind_t;

typedef struct {
    px_dom_kind_t kind;
    wf_str_t value; /* lower-cased, without the `*` */
} px_domain_t;

struct px_snapshot;

typedef struct {
    const struct px_snapshot *snap; /* the snapshot holding it (regex match limits) */
    wf_str_t name;
    wf_str_t host; /* the service FQDN this virtual host is for ("" for gateway catch-alls) */
    uint32_t port; /* listener port the virtual host is bound to; 0 = every port */
    px_domain_t *domains;
    uint32_t n_domains;
    px_route_t *routes;
    uint32_t n_routes;
} px_vhost_t;

typedef enum {
    PX_LB_LEAST_REQUEST = 0,
    PX_LB_ROUND_ROBIN,
    PX_LB_RANDOM,
    PX_LB_PASSTHROUGH,
    PX_LB_CONSISTENT_HASH,
} px_lb_kind_t;

typedef enum {
    PX_HASH_HEADER = 0,
    PX_HASH_COOKIE,
    PX_HASH_SOURCE_IP,
    PX_HASH_QUERY_PARAM,
} px_hash_kind_t;

typedef struct {
    px_lb_kind_t kind;
    px_hash_kind_t hash_kind;   /* PX_LB_CONSISTENT_HASH */
    wf_str_t hash_name;         /* header name (lower-case), cookie name, query parameter */
    wf_str_t cookie_path;       /* PX_HASH_COOKIE */
    uint64_t cookie_ttl_ms;     /* PX_HASH_COOKIE: 0 = session cookie */
    uint64_t minimum_ring_size; /* 1024 by default */
} px_lb_t;

typedef struct {
    uint32_t max_connections;             /* tcp.maxConnections, 2^32-1 by default */
    uint64_t connect_timeout_ms;          /* tcp.connectTimeout, 10 s by default */
    uint32_t http1_max_pending_requests;  /* 2^32-1 by default */
    uint32_t max_requests_per_connection; /* 0 = unlimited */
    uint64_t idle_timeout_ms;             /* 1 h by default */
    uint32_t max_retries;                 /* 2^32-1 by default */
} px_conn_pool_t;

typedef struct {
    bool enabled; /* Istio: only when the DestinationRule sets outlierDetection */
    uint32_t consecutive_5xx_errors;     /* 5 */
    uint32_t consecutive_gateway_errors; /* 0 = off */
    uint64_t interval_ms;                /* 10 s */
    uint64_t base_ejection_time_ms;      /* 30 s */
    uint32_t max_ejection_percent;       /* 10 */
} px_outlier_t;

typedef enum {
    PX_TLS_DISABLE = 0,
    PX_TLS_SIMPLE,
    PX_TLS_MUTUAL,
    PX_TLS_ISTIO_MUTUAL,
    PX_TLS_AUTO, /* no `tls` key: mTLS to in-mesh endpoints once the proxy has a certificate */
} px_tls_mode_t;

typedef struct {
    px_tls_mode_t mode;
    wf_str_t sni;
    wf_str_t *subject_alt_names;
    uint32_t n_subject_alt_names;
    wf_str_t client_certificate; /* MUTUAL: file paths */
    wf_str_t private_key;
    wf_str_t ca_certificates;
} px_tls_t;

typedef struct {
    wf_str_t address; /* IP literal or host name */
    uint32_t port;
    px_label_t *labels;
    uint32_t n_labels;
    wf_str_t workload;  /* "" = unknown */
    wf_str_t namespace; /* "" = unknown */
    uint32_t weight;    /* 1 by default */
    bool in_mesh;       /* a weft/Istio sidecar answers there (telemetry, mTLS) */
    wf_str_t identity;  /* SPIFFE URI of the endpoint's workload, "" = unknown */
} px_endpoint_t;

struct px_cluster {
    wf_str_t name; /* `outbound|9080|v1|reviews.default.svc.cluster.local` */
    wf_str_t host;
    uint32_t port;
    wf_str_t subset;
    px_lb_t lb;
    px_conn_pool_t pool;
    px_outlier_t outlier;
    px_tls_t tls;
    px_endpoint_t *endpoints;
    uint32_t n_endpoints;
};

typedef enum {
    PX_PEER_AUTH_UNSET = 0,
    PX_PEER_AUTH_PERMISSIVE,
    PX_PEER_AUTH_STRICT,
    PX_PEER_AUTH_DISABLE,
} px_peer_auth_t;

typedef struct {
    uint32_t port;        /* the port peers call (the service port) */
    uint32_t target_port; /* the app's port; = port by default */
    wf_str_t name;
    wf_str_t protocol;   /* "HTTP" by default; "TCP" proxies bytes */
    px_peer_auth_t mtls; /* port-level PeerAuthentication; UNSET = the inbound mode */
} px_inbound_port_t;

typedef struct {
    wf_str_t app_address; /* where the app listens; "127.0.0.1" by default */
    px_inbound_port_t *ports;
    uint32_t n_ports;
    px_peer_auth_t mtls_mode; /* PERMISSIVE by default */
    px_authz_set_t authz;     /* authorization.policies, compiled (px_authz.h) */
} px_inbound_t;

typedef enum {
    PX_MODE_SIDECAR = 0,
    PX_MODE_GATEWAY,
} px_mode_t;

typedef struct {
    wf_str_t id;
    wf_str_t service;
    wf_str_t namespace;
    wf_str_t version;
    wf_str_t workload; /* `<service>-<version>` by default */
    px_label_t *labels;
    uint32_t n_labels;
    wf_str_t service_account;
    wf_str_t identity; /* spiffe://cluster.local/ns/<ns>/sa/<sa> by default */
    wf_str_t cluster_id;
    px_mode_t mode;
} px_proxy_info_t;

typedef struct {
    double sampling; /* percent of new traces sampled, 0..100; 1 by default */
    wf_str_t collector_url;
    bool access_log;
    bool metrics; /* true by default */
} px_telemetry_t;

typedef struct {
    wf_str_t name;
    uint32_t port;
    wf_str_t protocol; /* HTTP, HTTPS, ... */
    wf_str_t *hosts;
    uint32_t n_hosts;
} px_gw_server_t;

typedef struct {
    px_gw_server_t *servers;
    uint32_t n_servers;
} px_gateway_t;

/* The mesh trust bundle from the control plane's CA (top-level "security"; px_cert.h applies
 * it). trust_bundle_version 0: the key is absent (no CA, or certificates from files). */
typedef struct {
    wf_str_t trust_bundle; /* PEM roots, checked to parse */
    uint64_t trust_bundle_version;
} px_snap_security_t;

/* Private to px_snapshot.c / px_route.c: the domain index px_route_select_vhost searches. */
typedef struct px_dom_index {
    uint32_t port;
    px_dom_kind_t kind;
    wf_str_t value;
    const px_vhost_t *vhost;
} px_dom_index_t;

typedef struct px_snapshot {
    _Atomic uint32_t refs;
    uint64_t version;
    uint32_t schema;
    px_proxy_info_t proxy;
    px_telemetry_t telemetry;
    px_inbound_t inbound;
    px_vhost_t *vhosts;
    uint32_t n_vhosts;
    px_cluster_t *clusters; /* sorted by name */
    uint32_t n_clusters;
    px_gateway_t gateway; /* PX_MODE_GATEWAY only */
    px_snap_security_t security;
    /* Private to px_snapshot.c / px_route.c. */
    wf_arena_t arena;
    struct pcre2_real_code_8 **regexes;
    uint32_t n_regexes;
    struct pcre2_real_match_context_8 *mctx;
    px_dom_index_t *dom_exact; /* exact domains sorted by (port, domain) */
    uint32_t n_dom_exact;
    px_dom_index_t *dom_wild; /* wildcards by (port, kind, longer value first, value) */
    uint32_t n_dom_wild;
} px_snapshot_t;

/* Bounds a hostile document cannot exceed. px_snapshot_limits_default fills sane ones. */
typedef struct {
    size_t max_bytes;     /* the JSON text */
    size_t max_arena;     /* parsed structures */
    uint32_t max_items;   /* entries of any one array or object */
    uint32_t max_string;  /* bytes of any one string */
    uint32_t max_regex;   /* bytes of one regex */
    uint32_t match_limit; /* PCRE2 match limit per regex evaluation (backtracking bound) */
} px_snapshot_limits_t;

typedef struct {
    px_snapshot_limits_t limits;
    /* Refuse keys this schema does not know (typos in hand-written files). Off by default:
     * a newer control plane may add optional fields an older proxy can ignore. */
    bool strict;
} px_snapshot_opts_t;

/* Default limits: 8 MiB of JSON, 64 MiB of structures, 10,000 items per array, 8 KiB per
 * string, 2 KiB per regex, PCRE2 match limit 100,000. */
void px_snapshot_opts_default(px_snapshot_opts_t *opts);

/*
 * Parse and validate a snapshot document of len bytes (need not be NUL-terminated). opts may
 * be NULL for the defaults. On success *out holds a snapshot with one reference (owned by the
 * caller) and 0 is returned; on failure *out is NULL, err (when errlen > 0) holds a message
 * naming the JSON path, and WF_E_INVAL or WF_E_LIMIT is returned. Nothing is left allocated.
 */
int px_snapshot_parse(const char *json, size_t len, const px_snapshot_opts_t *opts,
                      px_snapshot_t **out, char *err, size_t errlen);

/* Read the file at path and parse it as px_snapshot_parse does; -errno when it cannot be read.
 * text, when not NULL, receives the document (NUL-terminated, the caller frees it) on success.
 */
int px_snapshot_load(const char *path, const px_snapshot_opts_t *opts, px_snapshot_t **out,
                     char **text, char *err, size_t errlen);

/* Take one more reference; returns s. Any thread. */
px_snapshot_t *px_snapshot_ref(px_snapshot_t *s);
/* Drop one reference; the last one frees the snapshot. NULL is a no-op. Any thread. */
void px_snapshot_unref(px_snapshot_t *s);

/* The cluster with this exact name, or NULL. Binary search. */
const px_cluster_t *px_snapshot_cluster(const px_snapshot_t *s, wf_str_t name);

/* Names for enum values as the JSON spells them (for /config_dump and messages). */
const char *px_lb_name(px_lb_kind_t k);
const char *px_tls_mode_name(px_tls_mode_t m);
const char *px_peer_auth_name(px_peer_auth_t m);

#endif
