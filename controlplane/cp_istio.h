/*
 * cp_istio.h - Istio resources as typed C structures, validated.
 *
 * cp_istio_parse turns one document of cp_yaml.h into a cp_resource_t: VirtualService,
 * DestinationRule, Gateway, ServiceEntry (networking.istio.io v1, v1beta1, v1alpha3),
 * PeerAuthentication, AuthorizationPolicy (security.istio.io v1, v1beta1) and Sidecar
 * (networking). The fields are the Istio API's (camelCase in YAML, snake_case here), with
 * Istio's types checked: durations ("3s", "250ms", "1m", "1.5s", "1m30s") become milliseconds,
 * ports are 1..65535, percentages 0..100, regexes RE2 syntax (checked, compiled once), enums
 * by name. An unknown field is an error naming the closest known one, as with kubectl's strict
 * decoding. Errors name the field path: "spec.http[0].route[1].weight: must be >= 0";
 * cp_err_t also carries the line and column of the offending node.
 *
 * What the typed layer does not model is refused, never dropped silently: e.g. Sidecar
 * `ingress`, DestinationRule `localityLbSetting`. AuthorizationPolicy action CUSTOM is refused
 * with CP_E_UNSUPPORTED (issue #7: no external authorizer yet).
 *
 * Absent values: strings have p == NULL, lists n == 0, objects are NULL pointers, integers,
 * durations and booleans (int, -1/0/1) hold CP_UNSET, percentages are < 0, enums are 0 (the
 * first name of each enum is its "unset"). No defaults are filled in: the snapshot compiler
 * applies Istio's defaults, so a resource read back prints what the user wrote.
 *
 * cp_istio_to_json prints a resource back as canonical JSON (keys sorted, compact, durations
 * in their largest exact unit): parse(to_json(r)) prints the same text again.
 *
 * Ownership: a cp_resource_t owns all its memory (one arena), independent of the YAML stream
 * it came from; cp_resource_free releases it. Any thread; no shared state.
 */
#ifndef CP_ISTIO_H
#define CP_ISTIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cp_yaml.h"
#include "wf_arena.h"
#include "wf_str.h"

#define CP_UNSET (-1)

typedef enum {
    CP_KIND_NONE = 0,
    CP_KIND_VIRTUAL_SERVICE,
    CP_KIND_DESTINATION_RULE,
    CP_KIND_GATEWAY,
    CP_KIND_SERVICE_ENTRY,
    CP_KIND_SIDECAR,
    CP_KIND_PEER_AUTHENTICATION,
    CP_KIND_AUTHORIZATION_POLICY,
    CP_KIND_COUNT,
} cp_kind_t;

typedef struct {
    wf_str_t key, value;
} cp_kv_t;

typedef struct {
    cp_kv_t *items;
    uint32_t n;
} cp_labels_t;

typedef struct {
    wf_str_t *items;
    uint32_t n;
} cp_strs_t;

/* StringMatch: at most one of the three; none = "present". */
typedef struct {
    wf_str_t exact, prefix, regex;
} cp_strmatch_t;

typedef struct {
    wf_str_t key; /* header or query parameter name */
    cp_strmatch_t match;
} cp_named_match_t;

typedef struct {
    cp_named_match_t *items;
    uint32_t n;
} cp_match_map_t;

typedef struct {
    cp_labels_t set, add;
    cp_strs_t remove;
} cp_hdr_ops_t;

typedef struct {
    cp_hdr_ops_t *request, *response;
} cp_headers_t;

typedef struct {
    wf_str_t host, subset;
    int64_t port; /* port.number */
} cp_destination_t;

typedef struct {
    wf_str_t name;
    cp_strmatch_t *uri, *scheme, *method, *authority;
    cp_match_map_t headers, without_headers, query_params;
    int64_t port;
    cp_labels_t source_labels;
    cp_strs_t gateways;
    int ignore_uri_case;
    wf_str_t source_namespace, stat_prefix;
} cp_http_match_t;

typedef struct {
    cp_destination_t *destination;
    int64_t weight;
    cp_headers_t *headers;
} cp_route_dest_t;

typedef enum {
    CP_DERIVE_UNSET,
    CP_DERIVE_FROM_PROTOCOL_DEFAULT,
    CP_DERIVE_FROM_REQUEST_PORT
} cp_derive_port_t;

typedef struct {
    wf_str_t uri, authority, scheme;
    int64_t port;
    int derive_port; /* cp_derive_port_t */
    int64_t redirect_code;
} cp_redirect_t;

typedef struct {
    wf_str_t string, bytes;
} cp_body_t;

typedef struct {
    int64_t status;
    cp_body_t *body;
} cp_direct_response_t;

typedef struct {
    wf_str_t match, rewrite;
} cp_regex_rewrite_t;

typedef struct {
    wf_str_t uri, authority;
    cp_regex_rewrite_t *uri_regex_rewrite;
} cp_rewrite_t;

typedef struct {
    int64_t attempts;
    int64_t per_try_timeout_ms;
    wf_str_t retry_on;
    int retry_remote_localities;
} cp_retries_t;

typedef struct {
    int64_t fixed_delay_ms;
    double percentage; /* percentage.value */
    int64_t percent;   /* deprecated integer form */
} cp_delay_t;

typedef struct {
    int64_t http_status;
    wf_str_t grpc_status;
    double percentage;
} cp_abort_t;

typedef struct {
    cp_delay_t *delay;
    cp_abort_t *abort;
} cp_fault_t;

typedef struct {
    cp_destination_t *destination;
    double percentage;
} cp_mirror_t;

typedef enum { CP_PREFLIGHT_UNSET, CP_PREFLIGHT_FORWARD, CP_PREFLIGHT_IGNORE } cp_preflight_t;

typedef struct {
    cp_strmatch_t *allow_origins;
    uint32_t n_allow_origins;
    cp_strs_t allow_methods, allow_headers, expose_headers;
    int64_t max_age_ms;
    int allow_credentials;
    int unmatched_preflights; /* cp_preflight_t */
} cp_cors_t;

typedef struct {
    wf_str_t name, namespace_;
} cp_delegate_t;

typedef struct {
    wf_str_t name;
    cp_http_match_t *match;
    uint32_t n_match;
    cp_route_dest_t *route;
    uint32_t n_route;
    cp_redirect_t *redirect;
    cp_direct_response_t *direct_response;
    cp_delegate_t *delegate;
    cp_rewrite_t *rewrite;
    int64_t timeout_ms;
    cp_retries_t *retries;
    cp_fault_t *fault;
    cp_destination_t *mirror;
    double mirror_percentage;
    cp_mirror_t *mirrors;
    uint32_t n_mirrors;
    cp_cors_t *cors_policy;
    cp_headers_t *headers;
} cp_http_route_t;

typedef struct {
    cp_strs_t destination_subnets, sni_hosts, gateways;
    int64_t port;
    cp_labels_t source_labels;
    wf_str_t source_namespace;
} cp_l4_match_t;

typedef struct {
    cp_destination_t *destination;
    int64_t weight;
} cp_l4_dest_t;

/* TCPRoute and TLSRoute (TLS matches need sniHosts). */
typedef struct {
    cp_l4_match_t *match;
    uint32_t n_match;
    cp_l4_dest_t *route;
    uint32_t n_route;
} cp_l4_route_t;

typedef struct {
    cp_strs_t hosts, gateways, export_to;
    cp_http_route_t *http;
    uint32_t n_http;
    cp_l4_route_t *tcp;
    uint32_t n_tcp;
    cp_l4_route_t *tls;
    uint32_t n_tls;
} cp_virtual_service_t;

/* ---- DestinationRule ---- */

typedef enum {
    CP_LB_UNSET,
    CP_LB_UNSPECIFIED,
    CP_LB_LEAST_CONN,
    CP_LB_RANDOM,
    CP_LB_PASSTHROUGH,
    CP_LB_ROUND_ROBIN,
    CP_LB_LEAST_REQUEST,
} cp_lb_simple_t;

typedef struct {
    wf_str_t name, path;
    int64_t ttl_ms;
} cp_http_cookie_t;

typedef struct {
    wf_str_t http_header_name, http_query_parameter_name;
    cp_http_cookie_t *http_cookie;
    int use_source_ip;
    int64_t minimum_ring_size;
} cp_consistent_hash_t;

typedef struct {
    int simple; /* cp_lb_simple_t */
    cp_consistent_hash_t *consistent_hash;
    int64_t warmup_duration_ms;
} cp_load_balancer_t;

typedef struct {
    int64_t max_connections, connect_timeout_ms, max_connection_duration_ms, idle_timeout_ms;
} cp_tcp_pool_t;

typedef enum { CP_H2_UNSET, CP_H2_DEFAULT, CP_H2_DO_NOT_UPGRADE, CP_H2_UPGRADE } cp_h2_upgrade_t;

typedef struct {
    int64_t http1_max_pending_requests, http2_max_requests, max_requests_per_connection;
    int64_t max_retries, idle_timeout_ms, max_concurrent_streams;
    int h2_upgrade_policy; /* cp_h2_upgrade_t */
    int use_client_protocol;
} cp_http_pool_t;

typedef struct {
    cp_tcp_pool_t *tcp;
    cp_http_pool_t *http;
} cp_conn_pool_t;

typedef struct {
    int64_t consecutive_errors, consecutive_5xx_errors, consecutive_gateway_errors;
    int64_t consecutive_local_origin_failures;
    int split_external_local_origin_errors;
    int64_t interval_ms, base_ejection_time_ms;
    int64_t max_ejection_percent, min_health_percent;
} cp_outlier_t;

typedef enum {
    CP_TLS_UNSET,
    CP_TLS_DISABLE,
    CP_TLS_SIMPLE,
    CP_TLS_MUTUAL,
    CP_TLS_ISTIO_MUTUAL,
} cp_client_tls_mode_t;

typedef struct {
    int mode; /* cp_client_tls_mode_t */
    wf_str_t client_certificate, private_key, ca_certificates, credential_name, sni, ca_crl;
    cp_strs_t subject_alt_names;
    int insecure_skip_verify;
} cp_client_tls_t;

typedef struct {
    int64_t port; /* port.number */
    cp_load_balancer_t *load_balancer;
    cp_conn_pool_t *connection_pool;
    cp_outlier_t *outlier_detection;
    cp_client_tls_t *tls;
} cp_port_policy_t;

typedef struct {
    cp_load_balancer_t *load_balancer;
    cp_conn_pool_t *connection_pool;
    cp_outlier_t *outlier_detection;
    cp_client_tls_t *tls;
    cp_port_policy_t *port_level_settings;
    uint32_t n_port_level_settings;
} cp_traffic_policy_t;

typedef struct {
    wf_str_t name;
    cp_labels_t labels;
    cp_traffic_policy_t *traffic_policy;
} cp_subset_t;

typedef struct {
    wf_str_t host;
    cp_traffic_policy_t *traffic_policy;
    cp_subset_t *subsets;
    uint32_t n_subsets;
    cp_strs_t export_to;
    cp_labels_t workload_selector; /* workloadSelector.matchLabels */
} cp_destination_rule_t;

/* ---- Gateway, ServiceEntry, Sidecar ---- */

typedef struct {
    int64_t number, target_port;
    wf_str_t protocol, name;
} cp_port_t;

typedef enum {
    CP_STLS_UNSET,
    CP_STLS_PASSTHROUGH,
    CP_STLS_SIMPLE,
    CP_STLS_MUTUAL,
    CP_STLS_AUTO_PASSTHROUGH,
    CP_STLS_ISTIO_MUTUAL,
    CP_STLS_OPTIONAL_MUTUAL,
} cp_server_tls_mode_t;

typedef struct {
    int https_redirect;
    int mode; /* cp_server_tls_mode_t */
    wf_str_t server_certificate, private_key, ca_certificates, credential_name;
    wf_str_t min_protocol_version, max_protocol_version;
    cp_strs_t subject_alt_names, cipher_suites;
} cp_server_tls_t;

typedef struct {
    cp_port_t *port;
    wf_str_t bind, default_endpoint, name;
    cp_strs_t hosts;
    cp_server_tls_t *tls;
} cp_server_t;

typedef struct {
    cp_labels_t selector;
    cp_server_t *servers;
    uint32_t n_servers;
} cp_gateway_t;

typedef struct {
    wf_str_t key; /* port name */
    int64_t port;
} cp_named_port_t;

typedef struct {
    wf_str_t address, network, locality, service_account;
    cp_named_port_t *ports;
    uint32_t n_ports;
    cp_labels_t labels;
    int64_t weight;
} cp_workload_entry_t;

typedef enum { CP_LOC_UNSET, CP_LOC_MESH_EXTERNAL, CP_LOC_MESH_INTERNAL } cp_location_t;
typedef enum {
    CP_RES_UNSET,
    CP_RES_NONE,
    CP_RES_STATIC,
    CP_RES_DNS,
    CP_RES_DNS_ROUND_ROBIN,
} cp_resolution_t;

typedef struct {
    cp_strs_t hosts, addresses, export_to, subject_alt_names;
    cp_port_t *ports;
    uint32_t n_ports;
    int location;   /* cp_location_t */
    int resolution; /* cp_resolution_t */
    cp_workload_entry_t *endpoints;
    uint32_t n_endpoints;
    cp_labels_t workload_selector; /* workloadSelector.labels */
} cp_service_entry_t;

typedef enum {
    CP_OUTBOUND_UNSET,
    CP_OUTBOUND_REGISTRY_ONLY,
    CP_OUTBOUND_ALLOW_ANY
} cp_outbound_mode_t;

typedef struct {
    cp_port_t *port;
    wf_str_t bind, capture_mode;
    cp_strs_t hosts;
} cp_egress_t;

typedef struct {
    cp_labels_t workload_selector; /* workloadSelector.labels */
    cp_egress_t *egress;
    uint32_t n_egress;
    int outbound_mode; /* outboundTrafficPolicy.mode, cp_outbound_mode_t */
} cp_sidecar_t;

/* ---- security ---- */

typedef enum { CP_MTLS_UNSET, CP_MTLS_DISABLE, CP_MTLS_PERMISSIVE, CP_MTLS_STRICT } cp_mtls_mode_t;

typedef struct {
    wf_str_t key; /* port number, as written */
    int mode;     /* cp_mtls_mode_t */
} cp_port_mtls_t;

typedef struct {
    cp_labels_t selector; /* selector.matchLabels */
    int mtls_mode;        /* mtls.mode */
    cp_port_mtls_t *port_level_mtls;
    uint32_t n_port_level_mtls;
} cp_peer_authentication_t;

typedef enum { CP_AP_UNSET, CP_AP_ALLOW, CP_AP_DENY, CP_AP_AUDIT, CP_AP_CUSTOM } cp_ap_action_t;

typedef struct {
    cp_strs_t principals, not_principals, request_principals, not_request_principals;
    cp_strs_t namespaces, not_namespaces, ip_blocks, not_ip_blocks;
    cp_strs_t remote_ip_blocks, not_remote_ip_blocks;
} cp_source_t;

typedef struct {
    cp_strs_t hosts, not_hosts, ports, not_ports, methods, not_methods, paths, not_paths;
} cp_operation_t;

typedef struct {
    cp_source_t *source;
} cp_rule_from_t;

typedef struct {
    cp_operation_t *operation;
} cp_rule_to_t;

typedef struct {
    wf_str_t key;
    cp_strs_t values, not_values;
} cp_condition_t;

typedef struct {
    cp_rule_from_t *from;
    uint32_t n_from;
    cp_rule_to_t *to;
    uint32_t n_to;
    cp_condition_t *when;
    uint32_t n_when;
} cp_ap_rule_t;

typedef struct {
    cp_labels_t selector; /* selector.matchLabels */
    int action;           /* cp_ap_action_t */
    wf_str_t provider;    /* provider.name (CUSTOM only; read so that apply can say why not) */
    cp_ap_rule_t *rules;
    uint32_t n_rules;
} cp_authorization_policy_t;

/* ---- the resource ---- */

typedef struct {
    wf_str_t name, namespace_; /* namespace_ is "default" when absent */
    cp_labels_t labels, annotations;
    wf_str_t resource_version;
    int64_t generation;
} cp_meta_t;

typedef struct {
    wf_arena_t arena;
    cp_kind_t kind;
    wf_str_t api_version; /* as written, e.g. "networking.istio.io/v1beta1" */
    cp_meta_t meta;
    union {
        void *any;
        cp_virtual_service_t *vs;
        cp_destination_rule_t *dr;
        cp_gateway_t *gw;
        cp_service_entry_t *se;
        cp_sidecar_t *sidecar;
        cp_peer_authentication_t *pa;
        cp_authorization_policy_t *ap;
    } spec;
} cp_resource_t;

/*
 * Parse one document (a mapping with apiVersion, kind, metadata, spec). On success *out is a
 * new resource owned by the caller. Errors: CP_E_KIND (unknown kind or apiVersion; a
 * Kubernetes kind such as Service too), CP_E_INVALID (message names the path),
 * CP_E_UNSUPPORTED, CP_E_LIMIT; err (may be NULL) holds the text.
 */
int cp_istio_parse(const cp_yaml_node_t *doc, cp_resource_t **out, cp_err_t *err);
void cp_resource_free(cp_resource_t *r);

/* Kind by its name ("VirtualService") and API group/version; CP_KIND_NONE when unknown. */
cp_kind_t cp_kind_lookup(const char *api_version, const char *kind);
/* "VirtualService", ... ; "" for CP_KIND_NONE. */
const char *cp_kind_name(cp_kind_t k);

/* Canonical JSON of r (NUL-terminated, wf_free it); never NULL. */
char *cp_istio_to_json(const cp_resource_t *r);

/* Parse a Go-style duration ("1h2m3.5s", "250ms") into milliseconds. Returns 0, or
 * CP_E_INVALID with a reason in *why (static text) for malformed, negative, sub-millisecond
 * or absurd (> 100 years) values. */
int cp_duration_parse(wf_str_t s, int64_t *ms, const char **why);

/* Check a regex against the RE2 syntax Istio promises: 0 when valid, else CP_E_INVALID with
 * the reason in why[0..why_len) (PCRE2-only features named, syntax errors from PCRE2). */
int cp_regex_check(wf_str_t re, char *why, size_t why_len);

#endif
