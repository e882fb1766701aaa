/*
 * px_http1.h - the proxy's strict HTTP/1.1 message parser, body framer and head serialiser.
 *
 * Pure functions over caller-owned buffers: no I/O, no allocation on the parse path, no
 * global state, so any thread may call them on its own objects. The connection code owns the
 * read buffer and calls in with what it has read so far.
 *
 * Head parser (px_http1_parse_request / px_http1_parse_response): picohttpparser style. It
 * scans buf[0..len) once and returns the number of bytes the head occupies (request or status
 * line, fields, the empty line), PX_HTTP1_INCOMPLETE when the head has not ended yet (call again
 * from the start with more bytes), or PX_HTTP1_EMSG when the head is malformed or over a limit:
 * then *err holds the status code to answer (400, 414, 431, 501, 505 for requests; 502 for
 * upstream responses, which the proxy answers to its client) and a static reason string. Every
 * wf_str_t it hands out points into buf, so they live as long as the caller keeps the bytes.
 *
 * Strictness follows RFC 9112 §2-§7 and rejects every shape a request-smuggling attack needs
 * two parsers to disagree on; docs/proxy.md lists each rule and the choices made where the RFC
 * leaves room. The framing result (body kind and length, RFC 9112 §6.3) and the flags the
 * proxy needs (keep-alive, 100-continue, Upgrade, CONNECT) come out of the same pass.
 *
 * Body framer (px_http1_body_*): a state machine fed arbitrary byte ranges. Each call consumes a
 * prefix of its input and returns at most one slice of body content (a slice of that input: the
 * chunked coding is removed without copying). When px_http1_body_done() turns true the bytes
 * not consumed belong to the next message on the connection (pipelining).
 *
 * Serialiser (px_http1_serialize_*): rebuilds a head for forwarding into a wf_buf_t, always as
 * HTTP/1.1 (an intermediary sends its own version, RFC 9110 §6.2), with hop-by-hop fields
 * removed and the framing field the caller chose.
 */
#ifndef PX_HTTP1_H
#define PX_HTTP1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wf_buf.h"
#include "wf_str.h"

/* Return codes, inside the proxy's range of wf_err.h (-1300..-1399); http1 holds -1350..-1359. */
enum {
    PX_HTTP1_INCOMPLETE = -1350, /* the head (or the body) needs more bytes */
    PX_HTTP1_EMSG = -1351,       /* malformed or over a limit: see px_http1_error_t */
};

/* Name a return code of this module; other codes fall back to wf_strerror(). Never NULL. */
const char *px_http1_strerror(int code);

/* What to answer after PX_HTTP1_EMSG: an HTTP status code and a static, short reason. */
typedef struct {
    int status;
    const char *reason;
} px_http1_error_t;

typedef struct {
    size_t max_head;       /* request/status line + fields + empty line; 431 (default 64 KiB) */
    size_t max_headers;    /* field lines in a head; 431 (default 100) */
    size_t max_uri;        /* request-target length; 414 (default 8 KiB) */
    size_t max_chunk_line; /* chunk-size line incl. extensions, without CRLF (default 1 KiB) */
    size_t max_trailer;    /* trailer section bytes (default 16 KiB) */
    size_t max_trailers;   /* trailer field lines (default 100) */
} px_http1_limits_t;

/* Fill *lim with the defaults above. Passing lim == NULL to the functions below means these. */
void px_http1_limits_init(px_http1_limits_t *lim);

typedef struct {
    wf_str_t name;  /* as received: a token, case preserved */
    wf_str_t value; /* leading and trailing OWS removed; may be empty */
} px_http1_header_t;

typedef enum {
    PX_HTTP1_M_OTHER = 0, /* any other valid token: forwarded as is */
    PX_HTTP1_M_GET,
    PX_HTTP1_M_HEAD,
    PX_HTTP1_M_POST,
    PX_HTTP1_M_PUT,
    PX_HTTP1_M_DELETE,
    PX_HTTP1_M_CONNECT,
    PX_HTTP1_M_OPTIONS,
    PX_HTTP1_M_TRACE,
    PX_HTTP1_M_PATCH,
} px_http1_method_t;

typedef enum {
    PX_HTTP1_FORM_ORIGIN = 0, /* /path?query */
    PX_HTTP1_FORM_ABSOLUTE,   /* http://authority/path?query (forward-proxy clients) */
    PX_HTTP1_FORM_AUTHORITY,  /* host:port, CONNECT only */
    PX_HTTP1_FORM_ASTERISK,   /* *, OPTIONS only */
} px_http1_form_t;

typedef enum {
    PX_HTTP1_BODY_NONE = 0, /* no content: the next message starts right after the head */
    PX_HTTP1_BODY_LENGTH,   /* content_length bytes */
    PX_HTTP1_BODY_CHUNKED,  /* chunked coding, ended by the last chunk and trailer section */
    PX_HTTP1_BODY_EOF,      /* responses only: everything until the server closes */
    PX_HTTP1_BODY_TUNNEL,   /* responses only (101, 2xx to CONNECT): the connection is a tunnel */
} px_http1_body_kind_t;

enum {
    PX_HTTP1_F_KEEP_ALIVE = 1u << 0,      /* the connection may carry another message after */
    PX_HTTP1_F_EXPECT_CONTINUE = 1u << 1, /* HTTP/1.1 request with Expect: 100-continue */
    PX_HTTP1_F_UPGRADE = 1u << 2,         /* HTTP/1.1 request: Upgrade + Connection: upgrade */
    PX_HTTP1_F_CONNECT = 1u << 3,         /* CONNECT request (a tunnel once answered 2xx) */
    PX_HTTP1_F_CONN_NAMES = 1u << 4,      /* Connection lists field names (stripped on forward) */
};

/* A parsed head. Every slice points into the buffer given to the parser. */
typedef struct {
    int minor_version; /* HTTP/1.<minor>: 0 or 1 */

    /* Requests (method_str is empty in a response). */
    px_http1_method_t method;
    wf_str_t method_str;
    px_http1_form_t form;
    wf_str_t target;    /* the request-target exactly as received */
    wf_str_t scheme;    /* absolute-form only: "http" or "https", case as received */
    wf_str_t authority; /* absolute-form and authority-form: host[:port] from the target */
    wf_str_t path;      /* origin-form: the target; absolute-form: path and query (may be
                         * empty, forwarded as "/"); empty for the other forms */
    wf_str_t host;      /* the effective authority: the target's for absolute- and
                         * authority-form, else the Host field (empty when absent) */

    /* Responses (status is 0 in a request). */
    int status;
    wf_str_t reason;

    /* Both. headers is the caller's array given to the parser. */
    px_http1_header_t *headers;
    size_t num_headers;
    wf_str_t upgrade; /* the Upgrade field value when PX_HTTP1_F_UPGRADE is set */
    px_http1_body_kind_t body;
    uint64_t content_length; /* PX_HTTP1_BODY_LENGTH only */
    unsigned flags;          /* PX_HTTP1_F_* */
    size_t head_len;         /* bytes of the head, the parsers' positive return value */
} px_http1_head_t;

/*
 * Parse a request head from buf[0..len). hdrs[0..hdr_cap) receives the fields; at most
 * min(hdr_cap, lim->max_headers) are accepted. Returns the head length (> 0; the body or the
 * next request starts at buf + that), PX_HTTP1_INCOMPLETE, or PX_HTTP1_EMSG with *err set. *head
 * is only meaningful after a positive return. lim may be NULL (defaults); lim->max_head must be
 * below INT_MAX.
 */
int px_http1_parse_request(const char *buf, size_t len, const px_http1_limits_t *lim,
                           px_http1_header_t *hdrs, size_t hdr_cap, px_http1_head_t *head,
                           px_http1_error_t *err);

/*
 * Parse a response head, as px_http1_parse_request does; req_method is the method of the
 * request it answers (HEAD and CONNECT change the framing, RFC 9112 §6.3). Errors carry 502,
 * the status the proxy answers its own client with.
 */
int px_http1_parse_response(const char *buf, size_t len, px_http1_method_t req_method,
                            const px_http1_limits_t *lim, px_http1_header_t *hdrs, size_t hdr_cap,
                            px_http1_head_t *head, px_http1_error_t *err);

/* Streaming body framer; fields are private, exposed so it can be embedded in a connection. */
typedef struct {
    uint8_t state;
    uint8_t kind;        /* px_http1_body_kind_t */
    uint16_t err_status; /* 400 for requests, 502 for responses */
    uint64_t remaining;  /* bytes left of the content or of the current chunk */
    size_t line_len;     /* bytes in the current chunk-size line */
    size_t trailer_len;  /* bytes of the trailer section so far */
    size_t trailer_count;
    size_t max_chunk_line;
    size_t max_trailer;
    size_t max_trailers;
    uint64_t total; /* content bytes delivered so far */
    px_http1_error_t err;
} px_http1_body_t;

/* Set up *b for the body that *head announces. lim may be NULL (defaults). Never fails. */
void px_http1_body_init(px_http1_body_t *b, const px_http1_head_t *head,
                        const px_http1_limits_t *lim);

/*
 * Feed p[0..len). Returns 0 with *consumed (<= len) bytes used and *data set to the next piece
 * of body content found inside p[0..*consumed) (possibly empty); call again with the rest. It
 * stops right after a non-empty data slice, when the body ends, or when the input is used up.
 * Returns PX_HTTP1_EMSG on a framing error (b->err says why; the connection cannot be reused);
 * after an error or once done, further calls consume nothing.
 */
int px_http1_body_feed(px_http1_body_t *b, const char *p, size_t len, size_t *consumed,
                       wf_str_t *data);

/* True once the whole body (and for chunked, its trailer section) has been consumed. */
bool px_http1_body_done(const px_http1_body_t *b);

/*
 * The peer closed the connection. Returns 0 when that is a clean end of the body (done
 * already, or an until-close body, which becomes done), PX_HTTP1_EMSG when the body was cut
 * short (b->err set).
 */
int px_http1_body_eof(px_http1_body_t *b);

typedef enum {
    PX_HTTP1_FRAME_NONE = 0, /* no framing field (no content; or a response read until close) */
    PX_HTTP1_FRAME_LENGTH,   /* Content-Length: content_length */
    PX_HTTP1_FRAME_CHUNKED,  /* Transfer-Encoding: chunked */
} px_http1_frame_t;

/*
 * Serialiser options. Zero-initialised means: origin-form target, Host from the head, no
 * framing field, Proxy-Authorization stripped, no Upgrade, no Connection field, nothing added.
 */
typedef struct {
    px_http1_frame_t framing;
    uint64_t content_length; /* PX_HTTP1_FRAME_LENGTH */
    bool keep_absolute_form; /* forward an absolute-form target as received (to a proxy) */
    bool keep_proxy_auth;    /* forward Proxy-Authorization */
    bool upgrade;            /* forward Upgrade (head->upgrade) with Connection: upgrade */
    bool connection_close;   /* add Connection: close */
    wf_str_t host;           /* when non-empty: the Host value to send instead of head->host */
    /* Called for each remaining end-to-end field; returning false drops it (for instance an
     * incoming X-Forwarded-For the proxy will replace). May be NULL. */
    bool (*keep_cb)(void *arg, const px_http1_header_t *h);
    void *keep_arg;
    const px_http1_header_t *extra; /* appended after the received fields, in order */
    size_t num_extra;
} px_http1_ser_opts_t;

/*
 * Append the request head to out: "METHOD target HTTP/1.1", Host first (requests only), the
 * end-to-end fields in order as "Name: value" (names as received, one SP, values trimmed), then
 * opts->extra, the Connection/Upgrade fields asked for, the framing field, and the empty line.
 * Removed: Host (re-added first), Connection and every field it names, Keep-Alive,
 * Proxy-Connection, TE, Trailer, Transfer-Encoding, Upgrade, Content-Length, and
 * Proxy-Authorization unless kept. head is one a parser filled in (its bytes still alive);
 * opts may be NULL. Never fails (wf_buf aborts on OOM).
 */
void px_http1_serialize_request(const px_http1_head_t *head, const px_http1_ser_opts_t *opts,
                                wf_buf_t *out);

/* The port of an authority (`host:port`, `[v6]:port`); def when it has none or a bad one
 * (a bare IPv6 address is no host with a port). */
uint32_t px_http1_authority_port(wf_str_t authority, uint32_t def);

/* Append the response head: "HTTP/1.1 status reason", then the fields as for requests. */
void px_http1_serialize_response(const px_http1_head_t *head, const px_http1_ser_opts_t *opts,
                                 wf_buf_t *out);

#endif
