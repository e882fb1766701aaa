/*
 * cp_api.h - the control plane's HTTP API (libmicrohttpd):
 *
 *   POST /v1/register, POST /v1/heartbeat            bootstrap (or admin) token
 *   GET  /v1/snapshot?proxy=ID&version=N[&nack=M&reason=R][&wait_ms=T]   bootstrap (or admin)
 *        token; the long-poll of docs/snapshot.md "Delivery" (cp_push.h)
 *   GET  /v1/proxy-status                            admin or read token, or none with read_open
 *   POST /v1/apply {"items":[...]}                   admin token; one transaction
 *   GET  /v1/workloads, GET /v1/targets (http_sd)    admin or read token, or none with read_open
 *   GET  /v1/analyze[?namespace=NS]                  the same; cp_analyze.h's findings
 *   /apis/{group}/{version}/namespaces/{ns}/{plural}[/{name}]   Kubernetes-style resources:
 *        POST create, PUT update, DELETE, GET; writes need the admin token, reads the admin or
 *        the read token unless read_open; /apis/{group}/{version}/{plural} lists every
 *        namespace
 *   POST /v1/certificate?proxy=ID {"csr": PEM}       bootstrap (or admin) token; the CA
 *        signs ID's SPIFFE identity (cp_ca.h); errors {"error": "..."}; body limit 64 KiB
 *   GET  /v1/trust-bundle                            open (roots are public)
 *   POST /v1/ca/rotate                               admin token; GET /v1/ca: as reads
 *   GET  /metrics, GET /healthz                      open
 *
 * A request without a token that may do it is 401; one with the read token that asks for more
 * (a write, a proxy's call) is 403.
 *
 * Errors are Kubernetes Status objects ({"kind":"Status","status":"Failure","message",
 * "reason","code"}). Resource bodies are JSON documents; only their envelope is checked here
 * (apiVersion, kind, metadata.name, metadata.namespace): the spec is stored as given, in
 * canonical form (sorted keys, compact).
 *
 * cp_api_handle serves one request without a socket (the HTTP layer and the unit tests call
 * it); cp_api_start puts it behind a listener.
 */
#ifndef CP_API_H
#define CP_API_H

#include "cp_ca.h"
#include "cp_push.h"
#include "cp_registry.h"
#include "cp_store.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CP_API_DEFAULT_MAX_BODY ((size_t)1 << 20)
/* Most documents in one POST /v1/apply (one transaction). */
#define CP_API_MAX_BATCH 5000

typedef struct {
    cp_store_t *store;       /* required; outlives the API */
    cp_registry_t *registry; /* required; outlives the API */
    const char *admin_token; /* required (copied) */
    const char *bootstrap_token;
    const char *read_token; /* reads only (copied); NULL or "": no read token */
    bool read_open;         /* reads without a token */
    size_t max_body;        /* largest request body; 0: CP_API_DEFAULT_MAX_BODY */
    unsigned threads;       /* HTTP worker threads; 0: 2 */
    cp_push_t *push; /* the push engine (outlives the API); NULL: no /v1/snapshot, no notify */
    unsigned max_connections; /* open connections (held polls included); 0: 1024 */
    cp_ca_t *ca;              /* the mesh CA (outlives the API); NULL: no CA endpoints (404) */
} cp_api_options_t;

typedef struct cp_api cp_api_t;

typedef struct {
    const char *method;
    const char *path;             /* decoded, without the query string */
    const char *authorization;    /* header value or NULL */
    const char *resource_version; /* ?resourceVersion= (DELETE precondition) or NULL */
    const char *query_proxy;      /* /v1/snapshot's ?proxy=, ?version=, ?nack=, ?reason= */
    const char *query_version;
    const char *query_nack;
    const char *query_reason;
    const char *body; /* NUL-terminated, body_len bytes; NULL when none */
    size_t body_len;
    const char *ns_filter; /* ?namespace= (GET /v1/analyze) or NULL */
} cp_api_req_t;

typedef struct {
    unsigned status;
    const char *content_type; /* static string */
    char *body;               /* malloc'ed (free()), NUL-terminated */
    int64_t bundle_version;   /* > 0: sent as X-Weft-Trust-Bundle-Version */
} cp_api_resp_t;

int cp_api_new(const cp_api_options_t *o, cp_api_t **out);
/* Serve req at wall time now_ms into resp (free resp->body with free()). A /v1/snapshot poll
 * served here does not wait: 200 with a newer document, else 304 at once. */
void cp_api_handle(cp_api_t *a, const cp_api_req_t *req, int64_t now_ms, cp_api_resp_t *resp);
/* Listen on "ipv4:port" (port 0: any; cp_api_port tells which). errno-style code on failure. */
int cp_api_listen(cp_api_t *a, const char *addr);
uint16_t cp_api_port(const cp_api_t *a);
/* Stop listening, finish in-flight requests, free. NULL is a no-op. */
void cp_api_free(cp_api_t *a);

#endif
