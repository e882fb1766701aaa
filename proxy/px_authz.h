/*
 * px_authz.h - Istio's AuthorizationPolicy on the inbound path: the compiled policy set a
 * snapshot carries (inbound.authorization.policies, docs/snapshot.md) and the check a request
 * goes through before anything of it reaches the application.
 *
 * Semantics are Istio's (https://istio.io/latest/docs/reference/config/security/
 * authorization-policy/): DENY policies first (any matching rule denies), then, when the
 * workload has at least one ALLOW policy, the request must match a rule of one of them; with
 * no ALLOW policy it is allowed. AUDIT policies never change the decision. Within a rule the
 * `from` entries are ORed, the `to` entries are ORed, the `when` conditions are ANDed; the
 * fields of one source or operation are ANDed, the values of one field are ORed and a not_*
 * field matches when none of its values does. An absent list is no constraint; a rule with
 * no from, to or when matches every request; a policy without rules matches none.
 *
 * Peer identity: principals and namespaces come from the verified peer certificate (the
 * transport's peer_identity). A request without mTLS has no principal; as in Envoy's RBAC
 * filter (Istio compiles `principals` into `authenticated` matchers and `notPrincipals` into
 * their negation: https://www.envoyproxy.io/docs/envoy/latest/api-v3/config/rbac/v3/rbac.proto
 * Principal.authenticated), a principal or namespace value never matches such a request, so
 * `principals`/`namespaces`/`source.principal`/`source.namespace` values fail and their
 * not_* forms succeed. weft has no RequestAuthentication: request principals and
 * request.auth.* conditions are treated the same way (there is never a JWT principal).
 *
 * Ownership: the compiled structures live in the snapshot's arena (px_snapshot.c builds them
 * with the px_authz_compile_* helpers below) and are immutable; px_authz_check only reads
 * them and the request, allocates nothing, and may run on any thread.
 */
#ifndef PX_AUTHZ_H
#define PX_AUTHZ_H

#include "px_http1.h"
#include "wf_arena.h"
#include "wf_str.h"

#include <stdbool.h>
#include <stdint.h>

/* Istio's string form: exact, `prefix*`, `*suffix`, or `*` (any non-empty value). */
typedef enum {
    PX_AZ_EXACT = 0,
    PX_AZ_PREFIX,
    PX_AZ_SUFFIX,
    PX_AZ_ANY,
} px_authz_str_kind_t;

typedef struct {
    px_authz_str_kind_t kind;
    wf_str_t v; /* without the `*`; hosts: lower-cased */
} px_authz_str_t;

/* An IPv4 or IPv6 CIDR (a single IP is a /32 or /128). */
typedef struct {
    uint8_t family; /* 4 or 6 */
    uint8_t bits;
    uint8_t addr[16]; /* network order, host bits cleared */
} px_authz_cidr_t;

/* One piece of a path template. */
typedef enum {
    PX_AZ_SEG_LIT = 0, /* literal bytes */
    PX_AZ_SEG_ONE,     /* `{*}`: one non-empty path segment */
    PX_AZ_SEG_MANY,    /* `{**}`: zero or more characters, `/` included (last operator only) */
} px_authz_seg_kind_t;

typedef struct {
    px_authz_seg_kind_t kind;
    wf_str_t lit;
} px_authz_seg_t;

/* A path: Istio's string forms, or a template made of `{*}` / `{**}` segments. */
typedef struct {
    px_authz_str_t s;
    px_authz_seg_t *segs; /* a template when n_segs > 0 */
    uint32_t n_segs;
} px_authz_path_t;

typedef struct {
    px_authz_str_t *v;
    uint32_t n;
} px_authz_strs_t;

typedef struct {
    px_authz_cidr_t *v;
    uint32_t n;
} px_authz_cidrs_t;

typedef struct {
    uint16_t *v;
    uint32_t n;
} px_authz_ports_t;

typedef struct {
    px_authz_path_t *v;
    uint32_t n;
} px_authz_paths_t;

typedef struct {
    px_authz_strs_t principals, not_principals;
    px_authz_strs_t request_principals, not_request_principals;
    px_authz_strs_t namespaces, not_namespaces;
    px_authz_cidrs_t ip_blocks, not_ip_blocks;
    px_authz_cidrs_t remote_ip_blocks, not_remote_ip_blocks;
} px_authz_source_t;

typedef struct {
    px_authz_strs_t hosts, not_hosts;
    px_authz_ports_t ports, not_ports;
    px_authz_strs_t methods, not_methods;
    px_authz_paths_t paths, not_paths;
} px_authz_op_t;

/* The `when` keys Istio defines (https://istio.io/latest/docs/reference/config/security/
 * conditions/) that weft knows. */
typedef enum {
    PX_AZ_KEY_HEADER = 0,       /* request.headers[<name>] */
    PX_AZ_KEY_SOURCE_IP,        /* source.ip */
    PX_AZ_KEY_REMOTE_IP,        /* remote.ip */
    PX_AZ_KEY_SOURCE_NS,        /* source.namespace */
    PX_AZ_KEY_SOURCE_PRINCIPAL, /* source.principal */
    PX_AZ_KEY_DEST_IP,          /* destination.ip */
    PX_AZ_KEY_DEST_PORT,        /* destination.port */
    PX_AZ_KEY_SNI,              /* connection.sni */
    PX_AZ_KEY_REQUEST_AUTH,     /* request.auth.*: no JWT support, never present */
} px_authz_key_t;

/* One `when` condition; the value list used depends on the key: cidrs for the *.ip keys,
 * ports for destination.port, strs for the others. */
typedef struct {
    px_authz_key_t key;
    wf_str_t name;   /* the key as written */
    wf_str_t header; /* PX_AZ_KEY_HEADER: the header name, lower-cased */
    px_authz_strs_t strs, not_strs;
    px_authz_cidrs_t cidrs, not_cidrs;
    px_authz_ports_t ports, not_ports;
} px_authz_cond_t;

typedef struct {
    px_authz_source_t *from; /* ORed; none = any source */
    uint32_t n_from;
    px_authz_op_t *to; /* ORed; none = any operation */
    uint32_t n_to;
    px_authz_cond_t *when; /* ANDed */
    uint32_t n_when;
} px_authz_rule_t;

typedef enum {
    PX_AZ_ALLOW = 0,
    PX_AZ_DENY,
    PX_AZ_AUDIT,
} px_authz_action_t;

typedef struct {
    wf_str_t name; /* "<namespace>.<name>" */
    px_authz_action_t action;
    px_authz_rule_t *rules; /* ORed; none = matches no request */
    uint32_t n_rules;
} px_authz_policy_t;

/* The policies that apply to one workload (or gateway), in snapshot order. */
typedef struct {
    px_authz_policy_t *policies;
    uint32_t n_policies;
    uint32_t n_allow; /* how many are ALLOW: with none, what no DENY matches is allowed */
} px_authz_set_t;

/* What the check looks at. Slices are borrowed for the call. */
typedef struct {
    const char *principal; /* the verified peer SPIFFE URI; NULL without mTLS */
    wf_str_t source_ip;    /* the downstream peer address, IPv4 or IPv6 text */
    wf_str_t dest_ip;      /* the address the request came to ("" = unknown) */
    uint32_t dest_port;    /* the port it came to: the app port, or a gateway server port */
    wf_str_t method;
    wf_str_t path; /* the request path, normalized (px_authz_normalize_path); a query is ignored */
    wf_str_t host; /* Host / :authority as sent */
    wf_str_t sni;  /* "" without TLS */
    const px_http1_header_t *headers;
    size_t n_headers;
    bool tcp; /* a TCP connection, not an HTTP request: method, path, host, headers unused */
} px_authz_req_t;

typedef struct {
    bool allowed;
    const px_authz_policy_t *policy; /* the deciding policy: the DENY or ALLOW that matched;
                                      * NULL when none did (no ALLOW policy, or none matched) */
    const px_authz_policy_t *audit;  /* the first AUDIT policy that matched, or NULL */
} px_authz_result_t;

/*
 * Decide r against set (NULL or empty: allowed). Fills *out. Allocates nothing; reads only.
 */
void px_authz_check(const px_authz_set_t *set, const px_authz_req_t *r, px_authz_result_t *out);

/* ---- compile helpers for px_snapshot.c: each returns 0 or WF_E_INVAL with *why set to a
 * static message. ---- */

/* Classify s (`*`, `abc*`, `*abc`, exact) into *out, borrowing s's bytes. A `*` in the middle
 * is a literal character (Istio treats it so). Never fails. */
void px_authz_compile_str(wf_str_t s, px_authz_str_t *out);

/* Parse an IP address or CIDR (`10.0.0.0/8`, `::1`, `2001:db8::/32`). Bits below the prefix
 * are cleared, as Envoy's CidrRange does (`10.1.2.3/8` is `10.0.0.0/8`). */
int px_authz_compile_cidr(wf_str_t s, px_authz_cidr_t *out, const char **why);

/* A path: Istio's string forms, or, when s holds `{`, a template (`/a/{*}/b/{**}`), split
 * into segments allocated in arena. WF_E_LIMIT when the arena is full. */
int px_authz_compile_path(wf_arena_t *arena, wf_str_t s, px_authz_path_t *out, const char **why);

/* A port number as text, 0..65535 (Istio's ports are strings). */
int px_authz_compile_port(wf_str_t s, uint16_t *out, const char **why);

/* The kind of a `when` key; for request.headers[<name>] *header is the name (borrowed from s,
 * not yet lower-cased). Unknown keys are refused. */
int px_authz_compile_key(wf_str_t s, px_authz_key_t *out, wf_str_t *header, const char **why);

/*
 * Istio's default path normalization (BASE: Envoy's normalize_path), applied before policies
 * see a path: backslashes become `/` and dot segments (`.`, `..`, also spelled `%2e`) are
 * removed as RFC 3986 section 5.2.4 says; the query is kept as it is. Writes the result to out,
 * which must hold in.len bytes (the result is never longer), and returns its length.
 */
size_t px_authz_normalize_path(wf_str_t in, char *out);

#endif
