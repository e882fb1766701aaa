/*
 * test_px_http1.c - the strict HTTP/1.1 parser, body framer and serialiser (px_http1.h).
 *
 * The centre is a table of request-smuggling probes and valid messages: each row is the exact
 * bytes on the wire and the verdict (status to answer, or body kind, length and flags), and for
 * rows with content the de-chunked body and where the next message starts. Every row is also
 * fed one byte at a time, head and body, and must reach the same verdict; that is what the
 * connection code will do with bytes split at arbitrary points. Then limits at and one past
 * each boundary, and the serialiser's exact output.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "px_http1.h"
#include "wf_alloc.h"
#include "wf_buf.h"
#include "wf_err.h"

#define B(x) x, sizeof(x) - 1
#define HDRS 128

enum { REQ = 0, RESP, RESP_HEAD, RESP_CONNECT };

typedef struct {
    const char *name;
    int dir;
    const char *in;
    size_t len;
    int status;  /* 0: the head is accepted; else the status of the refusal */
    int body;    /* px_http1_body_kind_t when accepted */
    uint64_t cl; /* content_length for PX_HTTP1_BODY_LENGTH */
    unsigned flags;
    const char *content; /* expected body content; NULL: none expected */
    int body_status;     /* 0: body frames fine; else the framer's error status */
    const char *rest;    /* bytes after the message (pipelined); NULL: none */
} row_t;

#define H11 " HTTP/1.1\r\nHost: a\r\n"
#define KA PX_HTTP1_F_KEEP_ALIVE

/* Rows name only the columns they need; the rest are zero on purpose (refusals have no body). */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
static const row_t rows[] = {
    /* ---- Content-Length / Transfer-Encoding conflicts (CL.TE, TE.CL, TE.TE) ---- */
    {"CL.TE", REQ,
     B("POST /" H11 "Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG"), 400},
    {"TE.CL", REQ,
     B("POST /" H11 "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n"
       "\r\n"),
     400},
    {"TE.TE second unknown", REQ,
     B("POST /" H11 "Transfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n\r\n"), 501},
    {"TE.TE cow", REQ,
     B("POST /" H11 "Transfer-Encoding: chunked\r\nTransfer-Encoding: cow\r\nContent-Length: "
       "4\r\n\r\n"),
     400},
    {"TE chunked, identity", REQ, B("POST /" H11 "Transfer-Encoding: chunked, identity\r\n\r\n"),
     501},
    {"TE xchunked", REQ, B("POST /" H11 "Transfer-Encoding: xchunked\r\n\r\n"), 501},
    {"TE space before colon", REQ, B("POST /" H11 "Transfer-Encoding : chunked\r\n\r\n"), 400},
    {"TE folded onto Host", REQ,
     B("POST / HTTP/1.1\r\nHost: a\r\n Transfer-Encoding: chunked\r\n\r\n"), 400},
    {"TE folded value", REQ, B("POST /" H11 "Transfer-Encoding:\r\n chunked\r\n\r\n"), 400},
    {"TE tab-folded", REQ, B("POST /" H11 "X: y\r\n\tTransfer-Encoding: chunked\r\n\r\n"), 400},
    {"TE empty", REQ, B("POST /" H11 "Transfer-Encoding: \r\n\r\n"), 400},
    {"TE gzip only (request)", REQ, B("POST /" H11 "Transfer-Encoding: gzip\r\n\r\n"), 400},
    {"TE chunked, gzip", REQ, B("POST /" H11 "Transfer-Encoding: chunked, gzip\r\n\r\n"), 400},
    {"TE gzip, chunked", REQ, B("POST /" H11 "Transfer-Encoding: gzip, chunked\r\n\r\n"), 501},
    {"TE chunked twice", REQ, B("POST /" H11 "Transfer-Encoding: chunked, chunked\r\n\r\n"), 400},
    {"TE chunked in two fields", REQ,
     B("POST /" H11 "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"), 400},
    {"TE parameter", REQ, B("POST /" H11 "Transfer-Encoding: chunked;q=1\r\n\r\n"), 400},
    {"TE quoted", REQ, B("POST /" H11 "Transfer-Encoding: \"chunked\"\r\n\r\n"), 400},
    {"TE vertical tab", REQ, B("POST /" H11 "Transfer-Encoding: chunked\v\r\n\r\n"), 400},
    {"TE form feed", REQ, B("POST /" H11 "Transfer-Encoding:\fchunked\r\n\r\n"), 400},
    {"TE in HTTP/1.0", REQ, B("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
     400},
    {"TE underscore is another field", REQ,
     B("POST /" H11 "Transfer_Encoding: chunked\r\n\r\n0\r\n\r\n"), 0, PX_HTTP1_BODY_NONE, 0, KA,
     NULL, 0, "0\r\n\r\n"},
    {"TE: trailers is not Transfer-Encoding", REQ, B("GET /" H11 "TE: trailers\r\n\r\n"), 0,
     PX_HTTP1_BODY_NONE, 0, KA},
    /* ---- Content-Length syntax ---- */
    {"CL +5", REQ, B("POST /" H11 "Content-Length: +5\r\n\r\nhello"), 400},
    {"CL -1", REQ, B("POST /" H11 "Content-Length: -1\r\n\r\n"), 400},
    {"CL 5, 5", REQ, B("POST /" H11 "Content-Length: 5, 5\r\n\r\nhello"), 400},
    {"CL repeated identical", REQ,
     B("POST /" H11 "Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello"), 400},
    {"CL repeated different", REQ,
     B("POST /" H11 "Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello"), 400},
    {"CL hex", REQ, B("POST /" H11 "Content-Length: 0x5\r\n\r\nhello"), 400},
    {"CL empty", REQ, B("POST /" H11 "Content-Length: \r\n\r\n"), 400},
    {"CL inner space", REQ, B("POST /" H11 "Content-Length: 1 0\r\n\r\n"), 400},
    {"CL 2^63", REQ, B("POST /" H11 "Content-Length: 9223372036854775808\r\n\r\n"), 400},
    {"CL 2^64 wraps", REQ, B("POST /" H11 "Content-Length: 18446744073709551621\r\n\r\n"), 400},
    {"CL 2^63-1", REQ, B("POST /" H11 "Content-Length: 9223372036854775807\r\n\r\n"), 0,
     PX_HTTP1_BODY_LENGTH, 9223372036854775807ull, KA},
    {"CL leading zeros", REQ, B("POST /" H11 "Content-Length: 005\r\n\r\nhello"), 0,
     PX_HTTP1_BODY_LENGTH, 5, KA, "hello"},
    {"CL with OWS", REQ, B("POST /" H11 "Content-Length: \t5 \t\r\n\r\nhelloNEXT"), 0,
     PX_HTTP1_BODY_LENGTH, 5, KA, "hello", 0, "NEXT"},
    {"CONNECT with CL", REQ,
     B("CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\nContent-Length: 1\r\n\r\nx"), 400},
    /* ---- line endings, CR, NUL, control characters ---- */
    {"NUL in value", REQ, B("GET /" H11 "X: a\0b\r\n\r\n"), 400},
    {"NUL in name", REQ, B("GET /" H11 "X\0Y: a\r\n\r\n"), 400},
    {"NUL in target", REQ, B("GET /a\0b HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"NUL before request", REQ, B("\0GET / HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"bare CR in value", REQ, B("GET /" H11 "X: a\rb\r\n\r\n"), 400},
    {"bare CR line end", REQ, B("GET /" H11 "X: a\rY: b\r\n\r\n"), 400},
    {"bare CR request line", REQ, B("GET / HTTP/1.1\rHost: a\r\n\r\n"), 400},
    {"bare CR end of head", REQ, B("GET /" H11 "\r\r\n"), 400},
    {"LF-only everywhere", REQ, B("GET / HTTP/1.1\nHost: a\n\n"), 400},
    {"LF-only field line", REQ, B("GET /" H11 "X: a\n\r\n"), 400},
    {"LF-only end of head", REQ, B("GET /" H11 "\n"), 400},
    {"DEL in value", REQ, B("GET /" H11 "X: a\x7f\r\n\r\n"), 400},
    {"ESC in value", REQ, B("GET /" H11 "X: a\x1b[0m\r\n\r\n"), 400},
    {"obs-text in value", REQ, B("GET /" H11 "X: caf\xc3\xa9\r\n\r\n"), 0, PX_HTTP1_BODY_NONE, 0,
     KA},
    /* ---- field names ---- */
    {"space before colon", REQ, B("GET / HTTP/1.1\r\nHost : a\r\n\r\n"), 400},
    {"tab before colon", REQ, B("GET /" H11 "X\t: a\r\n\r\n"), 400},
    {"empty name", REQ, B("GET /" H11 ": a\r\n\r\n"), 400},
    {"non-token name", REQ, B("GET /" H11 "X(Y): a\r\n\r\n"), 400},
    {"no colon", REQ, B("GET /" H11 "XY\r\n\r\n"), 400},
    {"space in name", REQ, B("GET /" H11 "X Y: a\r\n\r\n"), 400},
    {"whitespace before first field", REQ, B("GET / HTTP/1.1\r\n Host: a\r\n\r\n"), 400},
    /* ---- Host ---- */
    {"missing Host", REQ, B("GET / HTTP/1.1\r\nX: a\r\n\r\n"), 400},
    {"two Hosts", REQ, B("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), 400},
    {"two Hosts same", REQ, B("GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n"), 400},
    {"Host with userinfo", REQ, B("GET / HTTP/1.1\r\nHost: u@a\r\n\r\n"), 400},
    {"Host with path", REQ, B("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n"), 400},
    {"Host with space", REQ, B("GET / HTTP/1.1\r\nHost: a b\r\n\r\n"), 400},
    {"Host bad port", REQ, B("GET / HTTP/1.1\r\nHost: a:99999\r\n\r\n"), 400},
    {"Host list", REQ, B("GET / HTTP/1.1\r\nHost: a, b\r\n\r\n"), 400},
    {"Host empty", REQ, B("GET / HTTP/1.1\r\nHost:\r\n\r\n"), 0, PX_HTTP1_BODY_NONE, 0, KA},
    {"Host IPv6", REQ, B("GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n"), 0, PX_HTTP1_BODY_NONE, 0,
     KA},
    {"HTTP/1.0 without Host", REQ, B("GET / HTTP/1.0\r\n\r\n"), 0, PX_HTTP1_BODY_NONE, 0, 0},
    {"absolute-form Host mismatch", REQ,
     B("GET http://a.example/x HTTP/1.1\r\nHost: b.example\r\n\r\n"), 400},
    {"absolute-form Host mismatch port", REQ,
     B("GET http://a.example:8080/x HTTP/1.1\r\nHost: a.example\r\n\r\n"), 400},
    {"absolute-form Host equal", REQ,
     B("GET http://A.example:80/x?y HTTP/1.1\r\nHost: a.EXAMPLE\r\n\r\n"), 0, PX_HTTP1_BODY_NONE, 0,
     KA},
    {"absolute-form empty port", REQ, B("GET http://a:/x HTTP/1.1\r\nHost: a:\r\n\r\n"), 0,
     PX_HTTP1_BODY_NONE, 0, KA},
    {"absolute-form empty port vs Host", REQ, B("GET http://a:/x HTTP/1.1\r\nHost: a\r\n\r\n"), 0,
     PX_HTTP1_BODY_NONE, 0, KA},
    {"absolute-form userinfo", REQ, B("GET http://u@a/ HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"absolute-form empty authority", REQ, B("GET http:///x HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"absolute-form other scheme", REQ, B("GET ftp://a/ HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    /* ---- request line ---- */
    {"invalid method", REQ, B("G@T /" H11 "\r\n"), 400},
    {"method with slash", REQ, B("GET/ /" H11 "\r\n"), 400},
    {"lower-case method is another method", REQ, B("get /" H11 "\r\n"), 0, PX_HTTP1_BODY_NONE, 0,
     KA},
    {"space in target", REQ, B("GET /a b HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"two spaces after method", REQ, B("GET  / HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"space before version end", REQ, B("GET / HTTP/1.1 \r\nHost: a\r\n\r\n"), 400},
    {"tab separator", REQ, B("GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"fragment in target", REQ, B("GET /a#b" H11 "\r\n"), 400},
    {"non-ASCII target", REQ, B("GET /caf\xc3\xa9" H11 "\r\n"), 400},
    {"DEL in target", REQ, B("GET /a\x7f" H11 "\r\n"), 400},
    {"no version (HTTP/0.9)", REQ, B("GET /\r\n\r\n"), 400},
    {"HTTP/2.0", REQ, B("GET / HTTP/2.0\r\nHost: a\r\n\r\n"), 505},
    {"HTTP/1.2", REQ, B("GET / HTTP/1.2\r\nHost: a\r\n\r\n"), 505},
    {"HTTP/0.9 line", REQ, B("GET / HTTP/0.9\r\n\r\n"), 505},
    {"lower-case version", REQ, B("GET / http/1.1\r\nHost: a\r\n\r\n"), 400},
    {"version 1.10", REQ, B("GET / HTTP/1.10\r\nHost: a\r\n\r\n"), 400},
    {"one leading CRLF", REQ, B("\r\nGET /" H11 "\r\n"), 0, PX_HTTP1_BODY_NONE, 0, KA},
    {"two leading CRLF", REQ, B("\r\n\r\nGET /" H11 "\r\n"), 400},
    {"leading LF", REQ, B("\nGET /" H11 "\r\n"), 400},
    {"leading space", REQ, B(" GET /" H11 "\r\n"), 400},
    {"CONNECT authority", REQ, B("CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n"),
     0, PX_HTTP1_BODY_NONE, 0, KA | PX_HTTP1_F_CONNECT},
    {"CONNECT origin-form", REQ, B("CONNECT / HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"CONNECT no port", REQ, B("CONNECT a.example HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"CONNECT absolute", REQ, B("CONNECT http://a:80/ HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"OPTIONS *", REQ, B("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"), 0, PX_HTTP1_BODY_NONE, 0, KA},
    {"GET *", REQ, B("GET * HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    {"relative target", REQ, B("GET a/b HTTP/1.1\r\nHost: a\r\n\r\n"), 400},
    /* ---- flags ---- */
    {"HTTP/1.1 Connection: close", REQ, B("GET /" H11 "Connection: close\r\n\r\n"), 0,
     PX_HTTP1_BODY_NONE, 0, 0},
    {"HTTP/1.0 keep-alive", REQ, B("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"), 0,
     PX_HTTP1_BODY_NONE, 0, KA},
    {"Expect 100-continue", REQ,
     B("PUT /" H11 "Expect: 100-Continue\r\nContent-Length: 2\r\n\r\nok"), 0, PX_HTTP1_BODY_LENGTH,
     2, KA | PX_HTTP1_F_EXPECT_CONTINUE, "ok"},
    {"Expect in HTTP/1.0 ignored", REQ,
     B("PUT / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n"), 0,
     PX_HTTP1_BODY_LENGTH, 0, 0, ""},
    {"WebSocket upgrade", REQ,
     B("GET /ws" H11 "Connection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n"), 0,
     PX_HTTP1_BODY_NONE, 0, KA | PX_HTTP1_F_UPGRADE},
    {"Upgrade without Connection", REQ, B("GET /ws" H11 "Upgrade: websocket\r\n\r\n"), 0,
     PX_HTTP1_BODY_NONE, 0, KA},
    {"Connection names a field", REQ, B("GET /" H11 "Connection: X-Secret\r\n\r\n"), 0,
     PX_HTTP1_BODY_NONE, 0, KA | PX_HTTP1_F_CONN_NAMES},
    {"Connection junk", REQ, B("GET /" H11 "Connection: a b\r\n\r\n"), 400},
    /* ---- chunked bodies ---- */
    {"chunked", REQ,
     B("POST /" H11 "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"), 0,
     PX_HTTP1_BODY_CHUNKED, 0, KA, "hello world"},
    {"chunked upper-case and pipelined", REQ,
     B("POST /" H11 "transfer-encoding: Chunked\r\n\r\nA\r\n0123456789\r\n0\r\n\r\nGET / "
       "HTTP/1.1\r\n"),
     0, PX_HTTP1_BODY_CHUNKED, 0, KA, "0123456789", 0, "GET / HTTP/1.1\r\n"},
    {"chunk extensions", REQ,
     B("POST /" H11 "Transfer-Encoding: chunked\r\n\r\n5;a=b;c=\"d e\"\r\nhello\r\n0;x\r\n\r\n"), 0,
     PX_HTTP1_BODY_CHUNKED, 0, KA, "hello"},
    {"trailers", REQ,
     B("POST /" H11 "Transfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\nX-Sum: 1\r\nY:\r\n\r\nX"), 0,
     PX_HTTP1_BODY_CHUNKED, 0, KA, "hi", 0, "X"},
    {"chunk size 17 f", REQ,
     B("POST /" H11 "Transfer-Encoding: chunked\r\n\r\nfffffffffffffffff\r\nx\r\n0\r\n\r\n"), 0,
     PX_HTTP1_BODY_CHUNKED, 0, KA, "", 400},
    {"chunk size 2^63", REQ,
     B("POST /" H11 "Transfer-Encoding: chunked\r\n\r\n8000000000000000\r\nx"), 0,
     PX_HTTP1_BODY_CHUNKED, 0, KA, "", 400},
    {"chunk size 0x5", REQ,
     B("POST /" H11 "Transfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n"), 0,
     PX_HTTP1_BODY_CHUNKED, 0, KA, "", 400},
    {"chunk size empty", REQ,
     B("POST /" H11 "Transfer-Encoding: chunked\r\n\r\n\r\nhello\r\n0\r\n\r\n"), 0,
     PX_HTTP1_BODY_CHUNKED, 0, KA, "", 400},
    {"chunk size negative", REQ,
     B("POST /" H11 "Transfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n"), 0,
     PX_HTTP1_BODY_CHUNKED, 0, KA, "", 400},
    {"chunk size trailing space", REQ,
     B("POST /" H11 "Transfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n"), 0,
     PX_HTTP1_BODY_CHUNKED, 0, KA, "", 400},
    {"chunk size leading space", REQ,
     B("POST /" H11 "Transfer-Encoding: chunked\r\n\r\n 5\r\nhello\r\n0\r\n\r\n"), 0,
     PX_HTTP1_BODY_CHUNKED, 0, KA, "", 400},
    {"chunk size LF only", REQ,
     B("POST /" H11 "Transfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n"), 0,
     PX_HTTP1_BODY_CHUNKED, 0, KA, "", 400},
    {"chunk without CRLF", REQ,
     B("POST /" H11 "Transfer-Encoding: chunked\r\n\r\n5\r\nhello0\r\n\r\n"), 0,
     PX_HTTP1_BODY_CHUNKED, 0, KA, "hello", 400},
    {"chunk data too long", REQ,
     B("POST /" H11 "Transfer-Encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n"), 0,
     PX_HTTP1_BODY_CHUNKED, 0, KA, "hel", 400},
    {"chunk data LF only", REQ,
     B("POST /" H11 "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\n0\r\n\r\n"), 0,
     PX_HTTP1_BODY_CHUNKED, 0, KA, "hello", 400},
    {"last chunk without final CRLF", REQ,
     B("POST /" H11 "Transfer-Encoding: chunked\r\n\r\n0\r\nGET / HTTP/1.1\r\n\r\n"), 0,
     PX_HTTP1_BODY_CHUNKED, 0, KA, "", 400},
    {"chunk extension with CTL", REQ,
     B("POST /" H11 "Transfer-Encoding: chunked\r\n\r\n5;a\x01\r\nhello\r\n0\r\n\r\n"), 0,
     PX_HTTP1_BODY_CHUNKED, 0, KA, "", 400},
    {"trailer folded", REQ,
     B("POST /" H11 "Transfer-Encoding: chunked\r\n\r\n0\r\nX: a\r\n b\r\n\r\n"), 0,
     PX_HTTP1_BODY_CHUNKED, 0, KA, "", 400},
    {"trailer space before colon", REQ,
     B("POST /" H11 "Transfer-Encoding: chunked\r\n\r\n0\r\nX : a\r\n\r\n"), 0,
     PX_HTTP1_BODY_CHUNKED, 0, KA, "", 400},
    {"trailer NUL", REQ, B("POST /" H11 "Transfer-Encoding: chunked\r\n\r\n0\r\nX: a\0\r\n\r\n"), 0,
     PX_HTTP1_BODY_CHUNKED, 0, KA, "", 400},
    {"trailer bare LF", REQ, B("POST /" H11 "Transfer-Encoding: chunked\r\n\r\n0\r\nX: a\n\r\n"), 0,
     PX_HTTP1_BODY_CHUNKED, 0, KA, "", 400},
    /* ---- responses ---- */
    {"200 CL", RESP, B("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcHTTP"), 0,
     PX_HTTP1_BODY_LENGTH, 3, KA, "abc", 0, "HTTP"},
    {"200 chunked", RESP,
     B("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"), 0,
     PX_HTTP1_BODY_CHUNKED, 0, KA, "abc"},
    {"200 until close", RESP, B("HTTP/1.1 200 OK\r\n\r\nall of it"), 0, PX_HTTP1_BODY_EOF, 0, 0,
     "all of it"},
    {"200 no reason, no SP", RESP, B("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n"), 0,
     PX_HTTP1_BODY_LENGTH, 0, KA, ""},
    {"204 with CL", RESP, B("HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n"), 0,
     PX_HTTP1_BODY_NONE, 0, KA},
    {"304", RESP, B("HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\n\r\n"), 0,
     PX_HTTP1_BODY_NONE, 0, KA},
    {"100 Continue", RESP, B("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n"), 0,
     PX_HTTP1_BODY_NONE, 0, KA, NULL, 0, "HTTP/1.1 200 OK\r\n"},
    {"101 Switching", RESP,
     B("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"), 0,
     PX_HTTP1_BODY_TUNNEL, 0, 0},
    {"HEAD response with CL", RESP_HEAD, B("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"), 0,
     PX_HTTP1_BODY_NONE, 0, KA},
    {"CONNECT 200", RESP_CONNECT, B("HTTP/1.1 200 Connection established\r\n\r\n"), 0,
     PX_HTTP1_BODY_TUNNEL, 0, 0},
    {"CONNECT 407 has a body", RESP_CONNECT, B("HTTP/1.1 407 Auth\r\nContent-Length: 1\r\n\r\nx"),
     0, PX_HTTP1_BODY_LENGTH, 1, KA, "x"},
    {"HTTP/1.0 response keep-alive", RESP,
     B("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nx"), 0,
     PX_HTTP1_BODY_LENGTH, 1, KA, "x"},
    {"HTTP/1.0 response default close", RESP, B("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx"), 0,
     PX_HTTP1_BODY_LENGTH, 1, 0, "x"},
    {"response CL+TE", RESP,
     B("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"), 502},
    {"response TE in 1.0", RESP, B("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"), 502},
    {"response TE gzip", RESP, B("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n"), 502},
    {"response CL repeated", RESP,
     B("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n"), 502},
    {"response status 99", RESP, B("HTTP/1.1 099 X\r\n\r\n"), 502},
    {"response status 4 digits", RESP, B("HTTP/1.1 2000 X\r\n\r\n"), 502},
    {"response HTTP/2", RESP, B("HTTP/2 200 OK\r\n\r\n"), 502},
    {"response bare LF", RESP, B("HTTP/1.1 200 OK\nContent-Length: 0\n\n"), 502},
    {"response obs-fold", RESP, B("HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n"), 502},
    {"response status letter", RESP, B("HTTP/1.1 2x0 OK\r\n\r\n"), 502},
    {"response Connection junk", RESP, B("HTTP/1.1 200 OK\r\nConnection: a b\r\n\r\n"), 502},
    {"response Connection names", RESP,
     B("HTTP/1.1 200 OK\r\nConnection: X-Up\r\nX-Up: 1\r\nContent-Length: 0\r\n\r\n"), 0,
     PX_HTTP1_BODY_LENGTH, 0, KA | PX_HTTP1_F_CONN_NAMES, ""},
    {"chunk size line bare CR", RESP,
     B("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\rhello\r\n0\r\n\r\n"), 0,
     PX_HTTP1_BODY_CHUNKED, 0, KA, "", 502},
    {"chunk data CR without LF", RESP,
     B("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r0\r\n\r\n"), 0,
     PX_HTTP1_BODY_CHUNKED, 0, KA, "hello", 502},
    {"trailer bare CR", RESP,
     B("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: a\rY: b\r\n\r\n"), 0,
     PX_HTTP1_BODY_CHUNKED, 0, KA, "", 502},
    {"final CR without LF", RESP,
     B("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\rHTTP"), 0,
     PX_HTTP1_BODY_CHUNKED, 0, KA, "", 502},
    {"response chunk junk", RESP, B("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"),
     0, PX_HTTP1_BODY_CHUNKED, 0, KA, "", 502},
};
#pragma GCC diagnostic pop

static int parse(const row_t *r, const char *in, size_t len, px_http1_header_t *hdrs,
                 px_http1_head_t *h, px_http1_error_t *err)
{
    if (r->dir == REQ) {
        return px_http1_parse_request(in, len, NULL, hdrs, HDRS, h, err);
    }
    px_http1_method_t m = r->dir == RESP_HEAD      ? PX_HTTP1_M_HEAD
                          : r->dir == RESP_CONNECT ? PX_HTTP1_M_CONNECT
                                                   : PX_HTTP1_M_GET;
    return px_http1_parse_response(in, len, m, NULL, hdrs, HDRS, h, err);
}

/* Frame the body at in[0..len), fed step bytes at a time (0: all at once). Content goes to
 * *content; returns the framer's verdict and sets *used to the bytes it consumed. */
static int frame(const px_http1_head_t *h, const char *in, size_t len, size_t step,
                 wf_buf_t *content, size_t *used, px_http1_body_t *b)
{
    px_http1_body_init(b, h, NULL);
    size_t off = 0;
    while (off < len && !px_http1_body_done(b)) {
        size_t n = step == 0 || len - off < step ? len - off : step;
        size_t got;
        wf_str_t d;
        int rc = px_http1_body_feed(b, in + off, n, &got, &d);
        if (rc != 0) {
            *used = off;
            return rc;
        }
        assert_true(got <= n);
        assert_true(d.len <= got);
        assert_true(d.len == 0 || (d.p >= in + off && d.p + d.len <= in + off + got));
        /* A call either makes progress or has used up its input. */
        assert_true(got > 0 || n == 0);
        wf_buf_append(content, d.p, d.len);
        off += got;
    }
    *used = off;
    return 0;
}

static void check_row(const row_t *r)
{
    px_http1_header_t hdrs[HDRS];
    px_http1_head_t h;
    px_http1_error_t err = {0, NULL};
    int rc = parse(r, r->in, r->len, hdrs, &h, &err);
    if (r->status != 0) {
        if (rc != PX_HTTP1_EMSG || err.status != r->status) {
            fail_msg("%s: want status %d, got rc %d status %d (%s)", r->name, r->status, rc,
                     err.status, err.reason ? err.reason : "-");
        }
        assert_non_null(err.reason);
    } else {
        if (rc <= 0) {
            fail_msg("%s: want accepted, got rc %d status %d (%s)", r->name, rc, err.status,
                     err.reason ? err.reason : "-");
        }
        assert_true((size_t)rc <= r->len);
        assert_int_equal(h.head_len, (size_t)rc);
        if ((int)h.body != r->body || h.flags != r->flags) {
            fail_msg("%s: want body %d flags %#x, got body %d flags %#x", r->name, r->body,
                     r->flags, h.body, h.flags);
        }
        if (r->body == PX_HTTP1_BODY_LENGTH) {
            assert_true(h.content_length == r->cl);
        }
    }

    /* Byte at a time: every proper prefix is incomplete, or already the same refusal. */
    char *copy = wf_malloc(r->len + 1);
    memcpy(copy, r->in, r->len);
    for (size_t k = 0; k < r->len; k++) {
        px_http1_head_t h2;
        px_http1_error_t e2 = {0, NULL};
        int rc2 = parse(r, copy, k, hdrs, &h2, &e2);
        if (rc2 == PX_HTTP1_INCOMPLETE) {
            continue;
        }
        if (rc2 != rc || (rc == PX_HTTP1_EMSG && e2.status != err.status) ||
            (rc > 0 && (size_t)rc > k)) {
            fail_msg("%s: prefix %zu gives rc %d (%d %s), whole gives %d (%d)", r->name, k, rc2,
                     e2.status, e2.reason ? e2.reason : "-", rc, err.status);
        }
        if (rc > 0) {
            break; /* the head was complete within this prefix */
        }
    }
    if (rc <= 0) {
        wf_free(copy);
        return;
    }

    /* Body, one shot and byte at a time; both must agree on content, verdict and the rest. */
    const char *body = copy + rc;
    size_t blen = r->len - (size_t)rc;
    wf_buf_t c1 = WF_BUF_INIT, c2 = WF_BUF_INIT;
    size_t used1 = 0, used2 = 0;
    px_http1_body_t b1, b2;
    int f1 = frame(&h, body, blen, 0, &c1, &used1, &b1);
    int f2 = frame(&h, body, blen, 1, &c2, &used2, &b2);
    assert_int_equal(f1, f2);
    assert_int_equal(c1.len, c2.len);
    if (c1.len > 0) {
        assert_memory_equal(c1.data, c2.data, c1.len);
    }
    if (r->body_status != 0) {
        if (f1 != PX_HTTP1_EMSG || b1.err.status != r->body_status) {
            fail_msg("%s: want body error %d, got %d", r->name, r->body_status, f1);
        }
        assert_int_equal(b2.err.status, r->body_status);
        /* A failed framer stays failed. */
        size_t got;
        wf_str_t d;
        assert_int_equal(px_http1_body_feed(&b1, "0\r\n\r\n", 5, &got, &d), PX_HTTP1_EMSG);
        assert_int_equal(got, 0);
    } else {
        assert_int_equal(f1, 0);
        assert_int_equal(used1, used2);
        if (h.body == PX_HTTP1_BODY_EOF || h.body == PX_HTTP1_BODY_TUNNEL) {
            assert_false(px_http1_body_done(&b1));
            assert_int_equal(px_http1_body_eof(&b1), 0);
        }
        if (h.body != PX_HTTP1_BODY_LENGTH || h.content_length <= blen) {
            if (!px_http1_body_done(&b1)) {
                fail_msg("%s: body not done", r->name);
            }
        }
        const char *rest = r->rest ? r->rest : "";
        if (h.body == PX_HTTP1_BODY_LENGTH && h.content_length > blen) {
            rest = "";
            assert_false(px_http1_body_done(&b1));
            assert_int_equal(px_http1_body_eof(&b1), PX_HTTP1_EMSG);
        }
        assert_int_equal(blen - used1, strlen(rest));
        assert_memory_equal(body + used1, rest, strlen(rest));
    }
    if (r->content != NULL) {
        assert_int_equal(c1.len, strlen(r->content));
        assert_memory_equal(c1.data, r->content, c1.len);
    } else if (r->body_status == 0 && h.body != PX_HTTP1_BODY_LENGTH) {
        assert_int_equal(c1.len, 0);
    }
    wf_buf_free(&c1);
    wf_buf_free(&c2);
    wf_free(copy);
}

static void test_table(void **state)
{
    (void)state;
    size_t refused = 0;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        check_row(&rows[i]);
        refused += rows[i].status != 0 || rows[i].body_status != 0;
    }
    /* The brief asks for at least 40 smuggling probes; keep the table honest about it. */
    assert_true(refused >= 40);
}

/* The parts of a valid request, including the slices' positions. */
static void test_request_parts(void **state)
{
    (void)state;
    static const char in[] = "POST http://Svc.ns:8080/a/b?c=d HTTP/1.1\r\n"
                             "Host: svc.ns:8080\r\n"
                             "Content-Type:   text/plain \t\r\n"
                             "Empty:\r\n"
                             "Content-Length: 4\r\n\r\nbody";
    px_http1_header_t hdrs[8];
    px_http1_head_t h;
    px_http1_error_t err;
    int rc = px_http1_parse_request(in, sizeof(in) - 1, NULL, hdrs, 8, &h, &err);
    assert_int_equal(rc, sizeof(in) - 1 - 4);
    assert_int_equal(h.method, PX_HTTP1_M_POST);
    assert_true(wf_str_eq_c(h.method_str, "POST"));
    assert_int_equal(h.form, PX_HTTP1_FORM_ABSOLUTE);
    assert_true(wf_str_eq_c(h.scheme, "http"));
    assert_true(wf_str_eq_c(h.authority, "Svc.ns:8080"));
    assert_true(wf_str_eq_c(h.host, "Svc.ns:8080"));
    assert_true(wf_str_eq_c(h.path, "/a/b?c=d"));
    assert_true(wf_str_eq_c(h.target, "http://Svc.ns:8080/a/b?c=d"));
    assert_int_equal(h.minor_version, 1);
    assert_int_equal(h.num_headers, 4);
    assert_ptr_equal(h.headers, hdrs);
    assert_true(wf_str_eq_c(hdrs[1].name, "Content-Type"));
    assert_true(wf_str_eq_c(hdrs[1].value, "text/plain"));
    assert_ptr_equal(hdrs[1].value.p, in + strlen("POST http://Svc.ns:8080/a/b?c=d HTTP/1.1\r\n"
                                                  "Host: svc.ns:8080\r\nContent-Type:   "));
    assert_true(wf_str_eq_c(hdrs[2].name, "Empty"));
    assert_int_equal(hdrs[2].value.len, 0);
    assert_int_equal(h.body, PX_HTTP1_BODY_LENGTH);
    assert_int_equal(h.content_length, 4);
    assert_int_equal(h.status, 0);

    static const char rs[] = "HTTP/1.1 404 Not Found Here\r\nServer: x\r\n\r\n";
    rc = px_http1_parse_response(rs, sizeof(rs) - 1, PX_HTTP1_M_GET, NULL, hdrs, 8, &h, &err);
    assert_int_equal(rc, sizeof(rs) - 1);
    assert_int_equal(h.status, 404);
    assert_true(wf_str_eq_c(h.reason, "Not Found Here"));
    assert_int_equal(h.method_str.len, 0);
    assert_int_equal(h.body, PX_HTTP1_BODY_EOF);
    assert_int_equal(h.flags, 0);

    /* Known methods and the authority-form split. */
    static const char cn[] = "CONNECT [::1]:443 HTTP/1.1\r\nHost: x\r\n\r\n";
    rc = px_http1_parse_request(cn, sizeof(cn) - 1, NULL, hdrs, 8, &h, &err);
    assert_int_equal(rc, sizeof(cn) - 1);
    assert_int_equal(h.method, PX_HTTP1_M_CONNECT);
    assert_int_equal(h.form, PX_HTTP1_FORM_AUTHORITY);
    assert_true(wf_str_eq_c(h.host, "[::1]:443"));
    static const struct {
        const char *m;
        px_http1_method_t id;
    } ms[] = {
        {"GET", PX_HTTP1_M_GET},       {"HEAD", PX_HTTP1_M_HEAD},       {"PUT", PX_HTTP1_M_PUT},
        {"DELETE", PX_HTTP1_M_DELETE}, {"OPTIONS", PX_HTTP1_M_OPTIONS}, {"TRACE", PX_HTTP1_M_TRACE},
        {"PATCH", PX_HTTP1_M_PATCH},   {"PURGE", PX_HTTP1_M_OTHER},     {"GETS", PX_HTTP1_M_OTHER}};
    for (size_t i = 0; i < sizeof(ms) / sizeof(ms[0]); i++) {
        char req[64];
        int n = snprintf(req, sizeof(req), "%s / HTTP/1.1\r\nHost: a\r\n\r\n", ms[i].m);
        rc = px_http1_parse_request(req, (size_t)n, NULL, hdrs, 8, &h, &err);
        assert_int_equal(rc, n);
        assert_int_equal(h.method, ms[i].id);
    }
    assert_string_equal(px_http1_strerror(PX_HTTP1_INCOMPLETE), "incomplete HTTP/1 message");
    assert_string_equal(px_http1_strerror(PX_HTTP1_EMSG), "malformed HTTP/1 message");
    assert_string_equal(px_http1_strerror(WF_E_LIMIT), wf_strerror(WF_E_LIMIT));
}

/* Build "GET <target> HTTP/1.1\r\nHost: a\r\n" + nfields "Xn: v" + pad to total bytes. */
static size_t build(char *out, size_t target_len, size_t nfields, size_t total)
{
    size_t n = 0;
    n += (size_t)sprintf(out + n, "GET /");
    memset(out + n, 'u', target_len - 1);
    n += target_len - 1;
    n += (size_t)sprintf(out + n, " HTTP/1.1\r\nHost: a\r\n");
    for (size_t i = 1; i < nfields; i++) {
        n += (size_t)sprintf(out + n, "X%zu: v\r\n", i);
    }
    if (total > 0) {
        /* One padding field "P: ppp...\r\n" fills up to total minus the final CRLF. */
        size_t pad = total - n - 2 - 5;
        n += (size_t)sprintf(out + n, "P: ");
        memset(out + n, 'p', pad);
        n += pad;
        n += (size_t)sprintf(out + n, "\r\n");
    }
    n += (size_t)sprintf(out + n, "\r\n");
    return n;
}

static int parse_lim(const char *in, size_t len, const px_http1_limits_t *lim,
                     px_http1_error_t *err)
{
    px_http1_header_t hdrs[HDRS];
    px_http1_head_t h;
    return px_http1_parse_request(in, len, lim, hdrs, HDRS, &h, err);
}

static void test_limits(void **state)
{
    (void)state;
    px_http1_limits_t lim;
    px_http1_limits_init(&lim);
    assert_int_equal(lim.max_head, 65536);
    assert_int_equal(lim.max_headers, 100);
    assert_int_equal(lim.max_uri, 8192);
    char *buf = wf_malloc(200000);
    px_http1_error_t err;

    /* URI: 8192 accepted, 8193 refused with 414, also before the line ends. */
    size_t n = build(buf, 8192, 1, 0);
    assert_int_equal(parse_lim(buf, n, NULL, &err), (int)n);
    n = build(buf, 8193, 1, 0);
    assert_int_equal(parse_lim(buf, n, NULL, &err), PX_HTTP1_EMSG);
    assert_int_equal(err.status, 414);
    assert_int_equal(parse_lim(buf, 4 + 8193, NULL, &err), PX_HTTP1_EMSG);
    assert_int_equal(err.status, 414);
    assert_int_equal(parse_lim(buf, 4 + 8192, NULL, &err), PX_HTTP1_INCOMPLETE);

    /* Field count: 100 accepted, 101 refused with 431. */
    n = build(buf, 1, 100, 0);
    assert_int_equal(parse_lim(buf, n, NULL, &err), (int)n);
    n = build(buf, 1, 101, 0);
    assert_int_equal(parse_lim(buf, n, NULL, &err), PX_HTTP1_EMSG);
    assert_int_equal(err.status, 431);
    /* The caller's array bounds the count too. */
    n = build(buf, 1, 5, 0);
    px_http1_header_t few[4];
    px_http1_head_t h;
    assert_int_equal(px_http1_parse_request(buf, n, NULL, few, 4, &h, &err), PX_HTTP1_EMSG);
    assert_int_equal(err.status, 431);
    n = build(buf, 1, 4, 0);
    assert_int_equal(px_http1_parse_request(buf, n, NULL, few, 4, &h, &err), (int)n);

    /* Head size: exactly 65536 accepted, 65537 refused with 431, as soon as 65537 bytes are
     * there without the end of the head; fewer bytes are just incomplete. */
    n = build(buf, 1, 1, 65536);
    assert_int_equal(n, 65536);
    assert_int_equal(parse_lim(buf, n, NULL, &err), 65536);
    assert_int_equal(parse_lim(buf, n - 1, NULL, &err), PX_HTTP1_INCOMPLETE);
    n = build(buf, 1, 1, 65537);
    assert_int_equal(n, 65537);
    assert_int_equal(parse_lim(buf, n, NULL, &err), PX_HTTP1_EMSG);
    assert_int_equal(err.status, 431);
    assert_int_equal(parse_lim(buf, 65536, NULL, &err), PX_HTTP1_EMSG);
    assert_int_equal(parse_lim(buf, 65535, NULL, &err), PX_HTTP1_INCOMPLETE);

    /* Connection may name 32 fields, not 33 (the serialiser checks each field against them). */
    n = (size_t)sprintf(buf, "GET / HTTP/1.1\r\nHost: a\r\nConnection: close");
    for (int i = 0; i < 32; i++) {
        n += (size_t)sprintf(buf + n, ", x%d", i);
    }
    memcpy(buf + n, "\r\n\r\n", 4);
    assert_int_equal(parse_lim(buf, n + 4, NULL, &err), (int)n + 4);
    n += (size_t)sprintf(buf + n, ", x32\r\n\r\n");
    assert_int_equal(parse_lim(buf, n, NULL, &err), PX_HTTP1_EMSG);
    assert_int_equal(err.status, 400);

    /* Small configured limits, and a response over them answers 502. */
    lim.max_head = 64;
    lim.max_headers = 2;
    lim.max_uri = 4;
    n = build(buf, 4, 2, 0);
    assert_int_equal(parse_lim(buf, n, &lim, &err), (int)n);
    n = build(buf, 5, 2, 0);
    assert_int_equal(parse_lim(buf, n, &lim, &err), PX_HTTP1_EMSG);
    assert_int_equal(err.status, 414);
    n = build(buf, 4, 3, 0);
    assert_int_equal(parse_lim(buf, n, &lim, &err), PX_HTTP1_EMSG);
    assert_int_equal(err.status, 431);
    px_http1_header_t hdrs[4];
    static const char rs[] = "HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
    assert_int_equal(
        px_http1_parse_response(rs, sizeof(rs) - 1, PX_HTTP1_M_GET, &lim, hdrs, 4, &h, &err),
        PX_HTTP1_EMSG);
    assert_int_equal(err.status, 502);
    lim.max_headers = 100;
    char big[200];
    n = (size_t)snprintf(big, sizeof(big), "HTTP/1.1 200 OK\r\nX: %070d\r\n\r\n", 0);
    assert_int_equal(px_http1_parse_response(big, n, PX_HTTP1_M_GET, &lim, hdrs, 4, &h, &err),
                     PX_HTTP1_EMSG);
    assert_int_equal(err.status, 502);
    wf_free(buf);
}

static int frame_all(const char *body, size_t len, const px_http1_limits_t *lim, size_t *used)
{
    px_http1_head_t h;
    memset(&h, 0, sizeof(h));
    h.body = PX_HTTP1_BODY_CHUNKED;
    px_http1_body_t b;
    px_http1_body_init(&b, &h, lim);
    size_t off = 0;
    while (off < len && !px_http1_body_done(&b)) {
        size_t got;
        wf_str_t d;
        int rc = px_http1_body_feed(&b, body + off, len - off, &got, &d);
        if (rc != 0) {
            return rc;
        }
        off += got;
    }
    *used = off;
    return px_http1_body_done(&b) ? 0 : PX_HTTP1_INCOMPLETE;
}

static void test_body_limits(void **state)
{
    (void)state;
    px_http1_limits_t lim;
    px_http1_limits_init(&lim);
    lim.max_chunk_line = 8;
    lim.max_trailer = 16;
    lim.max_trailers = 2;
    size_t used;
    /* Chunk line: 8 bytes accepted, 9 refused. */
    assert_int_equal(frame_all(B("1;abcdef\r\nx\r\n0\r\n\r\n"), &lim, &used), 0);
    assert_int_equal(used, 18);
    assert_int_equal(frame_all(B("1;abcdefg\r\nx\r\n0\r\n\r\n"), &lim, &used), PX_HTTP1_EMSG);
    assert_int_equal(frame_all(B("000000001\r\nx\r\n0\r\n\r\n"), &lim, &used), PX_HTTP1_EMSG);
    assert_int_equal(frame_all(B("00000001\r\nx\r\n0\r\n\r\n"), &lim, &used), 0);
    /* Trailer section: 16 bytes (incl. the final CRLF) accepted, 17 refused. */
    assert_int_equal(frame_all(B("0\r\nA: 123456789\r\n\r\n"), &lim, &used), 0);
    assert_int_equal(frame_all(B("0\r\nA: 1234567890\r\n\r\n"), &lim, &used), PX_HTTP1_EMSG);
    /* Trailer count: 2 accepted, 3 refused. */
    assert_int_equal(frame_all(B("0\r\nA:\r\nB:\r\n\r\n"), &lim, &used), 0);
    assert_int_equal(frame_all(B("0\r\nA:\r\nB:\r\nC:\r\n\r\n"), &lim, &used), PX_HTTP1_EMSG);
    /* Largest chunk size accepted is 2^63-1: the framer waits for its data. */
    assert_int_equal(frame_all(B("7fffffffffffffff\r\nabc"), NULL, &used), PX_HTTP1_INCOMPLETE);
    assert_int_equal(used, 21);
    assert_int_equal(frame_all(B("8000000000000000\r\n"), NULL, &used), PX_HTTP1_EMSG);

    /* Bodies without content are done before any byte; a cut one is an error at EOF. */
    px_http1_head_t h;
    memset(&h, 0, sizeof(h));
    px_http1_body_t b;
    px_http1_body_init(&b, &h, NULL);
    assert_true(px_http1_body_done(&b));
    h.body = PX_HTTP1_BODY_LENGTH;
    h.content_length = 0;
    px_http1_body_init(&b, &h, NULL);
    assert_true(px_http1_body_done(&b));
    size_t got;
    wf_str_t d;
    assert_int_equal(px_http1_body_feed(&b, "GET", 3, &got, &d), 0);
    assert_int_equal(got, 0);
    assert_int_equal(d.len, 0);
    h.body = PX_HTTP1_BODY_CHUNKED;
    h.status = 200;
    px_http1_body_init(&b, &h, NULL);
    assert_int_equal(px_http1_body_feed(&b, "5\r\nhel", 6, &got, &d), 0);
    assert_int_equal(got, 6);
    assert_true(wf_str_eq_c(d, "hel"));
    assert_int_equal(b.total, 3);
    assert_int_equal(px_http1_body_eof(&b), PX_HTTP1_EMSG);
    assert_int_equal(b.err.status, 502);
}

/* ---- serialiser ---- */

static void ser_req(const char *in, const px_http1_ser_opts_t *o, const char *want)
{
    px_http1_header_t hdrs[HDRS];
    px_http1_head_t h;
    px_http1_error_t err = {0, NULL};
    int rc = px_http1_parse_request(in, strlen(in), NULL, hdrs, HDRS, &h, &err);
    if (rc <= 0) {
        fail_msg("parse failed: %d %s", err.status, err.reason);
    }
    wf_buf_t out = WF_BUF_INIT;
    px_http1_serialize_request(&h, o, &out);
    assert_string_equal(wf_buf_cstr(&out), want);
    /* What the serialiser writes, the parser accepts. */
    px_http1_header_t h2[HDRS];
    px_http1_head_t hh;
    rc = px_http1_parse_request((const char *)out.data, out.len, NULL, h2, HDRS, &hh, &err);
    assert_int_equal(rc, (int)out.len);
    wf_buf_free(&out);
}

static bool drop_xff(void *arg, const px_http1_header_t *f)
{
    int *calls = arg;
    (*calls)++;
    return !(f->name.len == 15 && strncasecmp(f->name.p, "x-forwarded-for", 15) == 0);
}

static void test_serialize(void **state)
{
    (void)state;
    /* Hop-by-hop fields and those Connection names go; values lose their OWS. */
    px_http1_header_t extra[] = {{WF_STR_LIT("X-Forwarded-For"), WF_STR_LIT("10.0.0.1")},
                                 {WF_STR_LIT("X-Forwarded-Proto"), WF_STR_LIT("http")}};
    px_http1_ser_opts_t o = {.extra = extra, .num_extra = 2};
    ser_req("GET /p?q=1 HTTP/1.1\r\n"
            "User-Agent:   curl/8.0 \t\r\n"
            "Host: Example.com\r\n"
            "Connection: keep-alive, X-Secret\r\n"
            "x-secret: s\r\n"
            "Keep-Alive: timeout=5\r\n"
            "Proxy-Connection: keep-alive\r\n"
            "TE: trailers\r\n"
            "Trailer: X\r\n"
            "Proxy-Authorization: Basic eA==\r\n"
            "Accept: */*\r\n\r\n",
            &o,
            "GET /p?q=1 HTTP/1.1\r\n"
            "Host: Example.com\r\n"
            "User-Agent: curl/8.0\r\n"
            "Accept: */*\r\n"
            "X-Forwarded-For: 10.0.0.1\r\n"
            "X-Forwarded-Proto: http\r\n\r\n");
    /* Names listed across several Connection fields, in any case, all go. */
    o.num_extra = 0;
    ser_req("GET / HTTP/1.1\r\nConnection: A\r\nHost: a\r\na: 1\r\nB: 2\r\nC: 3\r\n"
            "Connection: close, b ,,\r\n\r\n",
            &o, "GET / HTTP/1.1\r\nHost: a\r\nC: 3\r\n\r\n");
    o.keep_proxy_auth = true;
    o.num_extra = 0;
    ser_req("GET / HTTP/1.1\r\nHost: a\r\nProxy-Authorization: Basic eA==\r\n\r\n", &o,
            "GET / HTTP/1.1\r\nHost: a\r\nProxy-Authorization: Basic eA==\r\n\r\n");

    /* Absolute-form to origin-form, Host from the authority; or kept for a next proxy. */
    ser_req("GET http://svc:8080?x HTTP/1.1\r\nHost: svc:8080\r\n\r\n", NULL,
            "GET /?x HTTP/1.1\r\nHost: svc:8080\r\n\r\n");
    px_http1_ser_opts_t abs = {.keep_absolute_form = true};
    ser_req("GET http://svc:8080/a HTTP/1.1\r\nHost: svc:8080\r\n\r\n", &abs,
            "GET http://svc:8080/a HTTP/1.1\r\nHost: svc:8080\r\n\r\n");

    /* Chunked in, Content-Length out (a buffered body), and the other way round. */
    px_http1_ser_opts_t cl = {.framing = PX_HTTP1_FRAME_LENGTH, .content_length = 11};
    ser_req("POST /u HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nX: 1\r\n\r\n", &cl,
            "POST /u HTTP/1.1\r\nHost: a\r\nX: 1\r\nContent-Length: 11\r\n\r\n");
    px_http1_ser_opts_t ch = {.framing = PX_HTTP1_FRAME_CHUNKED, .connection_close = true};
    ser_req("POST /u HTTP/1.1\r\nContent-Length: 5\r\nHost: a\r\n\r\n", &ch,
            "POST /u HTTP/1.1\r\nHost: a\r\nConnection: close\r\n"
            "Transfer-Encoding: chunked\r\n\r\n");

    /* HTTP/1.0 without Host goes out as HTTP/1.1 with the Host the caller gives. */
    px_http1_ser_opts_t host = {.host = WF_STR_LIT("backend:9080")};
    ser_req("GET /x HTTP/1.0\r\nAccept: a\r\n\r\n", &host,
            "GET /x HTTP/1.1\r\nHost: backend:9080\r\nAccept: a\r\n\r\n");

    /* A WebSocket upgrade keeps Upgrade and Connection: upgrade when asked. */
    px_http1_ser_opts_t up = {.upgrade = true};
    ser_req("GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: k\r\n\r\n",
            &up,
            "GET /ws HTTP/1.1\r\nHost: a\r\nSec-WebSocket-Key: k\r\nConnection: upgrade\r\n"
            "Upgrade: websocket\r\n\r\n");

    /* The keep hook sees each end-to-end field once and drops what it refuses. */
    int calls = 0;
    px_http1_header_t xff[] = {{WF_STR_LIT("X-Forwarded-For"), WF_STR_LIT("1.2.3.4")}};
    px_http1_ser_opts_t kc = {
        .keep_cb = drop_xff, .keep_arg = &calls, .extra = xff, .num_extra = 1};
    ser_req("GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 6.6.6.6\r\nA: b\r\n\r\n", &kc,
            "GET / HTTP/1.1\r\nHost: a\r\nA: b\r\nX-Forwarded-For: 1.2.3.4\r\n\r\n");
    assert_int_equal(calls, 2);

    /* Responses: status line rebuilt as HTTP/1.1, no Host added. */
    static const char rs[] = "HTTP/1.0 200 OK\r\nServer: up\r\nConnection: keep-alive\r\n"
                             "Content-Length: 2\r\n\r\nok";
    px_http1_header_t hdrs[8];
    px_http1_head_t h;
    px_http1_error_t err;
    assert_true(
        px_http1_parse_response(rs, sizeof(rs) - 1, PX_HTTP1_M_GET, NULL, hdrs, 8, &h, &err) > 0);
    wf_buf_t out = WF_BUF_INIT;
    px_http1_ser_opts_t rl = {.framing = PX_HTTP1_FRAME_LENGTH, .content_length = 2};
    px_http1_serialize_response(&h, &rl, &out);
    assert_string_equal(wf_buf_cstr(&out),
                        "HTTP/1.1 200 OK\r\nServer: up\r\nContent-Length: 2\r\n\r\n");
    wf_buf_reset(&out);
    static const char r2[] = "HTTP/1.1 204\r\nHost: kept-in-responses\r\n\r\n";
    assert_true(
        px_http1_parse_response(r2, sizeof(r2) - 1, PX_HTTP1_M_GET, NULL, hdrs, 8, &h, &err) > 0);
    px_http1_serialize_response(&h, NULL, &out);
    assert_string_equal(wf_buf_cstr(&out), "HTTP/1.1 204 \r\nHost: kept-in-responses\r\n\r\n");
    wf_buf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),     cmocka_unit_test(test_request_parts),
        cmocka_unit_test(test_limits),    cmocka_unit_test(test_body_limits),
        cmocka_unit_test(test_serialize),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
