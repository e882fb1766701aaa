/*
 * wt_rw.h - the test side of Prometheus remote_write 1.0: build a WriteRequest (series with
 * labels and samples, optional metric metadata), encode it as protobuf, compress it with
 * snappy's block format, and POST it with the headers Prometheus sends. The same requests go
 * to weft, to a real Prometheus 2.42 (--web.enable-remote-write-receiver) and to
 * VictoriaMetrics, so that differential tests and benchmarks feed all of them identical bytes.
 *
 * Also here: the few protobuf writing helpers the builder uses (tests craft malformed
 * messages with them), and a small keep-alive HTTP/1.1 client for load programs.
 *
 * Everything aborts on misuse or OOM (it is test code); network failures return -1.
 * One builder or connection per thread.
 */
#ifndef WT_RW_H
#define WT_RW_H

#include "wf_buf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- protobuf writing (wire format only) ----------------------------------------------- */

enum { WT_PB_VARINT = 0, WT_PB_I64 = 1, WT_PB_LEN = 2, WT_PB_I32 = 5 };

void wt_pb_tag(wf_buf_t *b, uint32_t field, unsigned wire);
void wt_pb_varint(wf_buf_t *b, uint32_t field, uint64_t v);
void wt_pb_double(wf_buf_t *b, uint32_t field, double v);
void wt_pb_fixed64(wf_buf_t *b, uint32_t field, uint64_t v);
void wt_pb_fixed32(wf_buf_t *b, uint32_t field, uint32_t v);
/* A length-delimited field: bytes, a string, or an already encoded sub-message. */
void wt_pb_bytes(wf_buf_t *b, uint32_t field, const void *p, size_t n);
void wt_pb_str(wf_buf_t *b, uint32_t field, const char *s);

/* ---- WriteRequest builder ---------------------------------------------------------------- */

/* prompb.MetricMetadata.MetricType */
enum {
    WT_RW_UNKNOWN = 0,
    WT_RW_COUNTER = 1,
    WT_RW_GAUGE = 2,
    WT_RW_HISTOGRAM = 3,
    WT_RW_GAUGEHISTOGRAM = 4,
    WT_RW_SUMMARY = 5,
    WT_RW_INFO = 6,
    WT_RW_STATESET = 7,
};

typedef struct wt_rw wt_rw_t;

wt_rw_t *wt_rw_new(void);
/* NULL is a no-op. */
void wt_rw_free(wt_rw_t *rw);
/* Forget every series and metadata entry; the builder is reused. */
void wt_rw_reset(wt_rw_t *rw);

/*
 * Start a new series; following wt_rw_sample calls add to it. pairs holds npairs name/value
 * pairs (2 * npairs strings, copied). Labels are encoded sorted by name, as Prometheus sends
 * them, unless wt_rw_keep_order(rw, true) was called (for tests of unsorted input).
 */
void wt_rw_series(wt_rw_t *rw, const char *const *pairs, size_t npairs);
/* The same with the pairs as arguments: wt_rw_series_l(rw, "__name__", "up", "job", "x", NULL). */
void wt_rw_series_l(wt_rw_t *rw, ...) __attribute__((sentinel));
/*
 * The same from Prometheus's text form: `name{a="b",c="d"}`, `name`, or `{__name__="x"}`
 * (values may use \\, \" and \n escapes). Aborts on a malformed string.
 */
void wt_rw_series_s(wt_rw_t *rw, const char *text);
void wt_rw_keep_order(wt_rw_t *rw, bool keep);

/* Add a sample (timestamp in ms) to the current series. */
void wt_rw_sample(wt_rw_t *rw, int64_t ts_ms, double v);
/* Add a MetricMetadata entry (type is a WT_RW_* value; help and unit may be NULL). */
void wt_rw_metadata(wt_rw_t *rw, int type, const char *family, const char *help, const char *unit);

size_t wt_rw_nseries(const wt_rw_t *rw);
size_t wt_rw_nsamples(const wt_rw_t *rw);

/* Append the WriteRequest's protobuf encoding to out. */
void wt_rw_encode(const wt_rw_t *rw, wf_buf_t *out);
/* Append snappy's block-format compression of in[0..n) to out (snappy_compress). */
void wt_rw_snappy(const void *in, size_t n, wf_buf_t *out);
/* wt_rw_encode then wt_rw_snappy: the body of a remote_write request. */
void wt_rw_body(const wt_rw_t *rw, wf_buf_t *out);

/* The request headers Prometheus's remote_write client sends (CRLF-terminated lines). */
#define WT_RW_HEADERS                                                                              \
    "Content-Encoding: snappy\r\n"                                                                 \
    "Content-Type: application/x-protobuf\r\n"                                                     \
    "User-Agent: Prometheus/2.42.0\r\n"                                                            \
    "X-Prometheus-Remote-Write-Version: 0.1.0\r\n"

/*
 * POST an already compressed body to 127.0.0.1:port/path with WT_RW_HEADERS. Returns the HTTP
 * status and, when resp is not NULL, the response body (NUL-terminated, wf_free it); -1 on a
 * network error.
 */
int wt_rw_post(int port, const char *path, const void *body, size_t len, char **resp);
/* wt_rw_body + wt_rw_post. */
int wt_rw_send(const wt_rw_t *rw, int port, const char *path, char **resp);

/* ---- keep-alive HTTP/1.1 client ------------------------------------------------------------ */

typedef struct wt_conn wt_conn_t;

/* Connect to 127.0.0.1:port; NULL on failure. */
wt_conn_t *wt_conn_open(int port);
/* NULL is a no-op. */
void wt_conn_close(wt_conn_t *c);
/*
 * Send one request on the connection and read the whole response (Content-Length, chunked,
 * or no body). headers: extra header lines, each ending in CRLF (may be NULL). The response
 * body is appended to resp_body when not NULL. With a "Transfer-Encoding: chunked" header
 * line the body is sent in chunks and without Content-Length. Returns the status, or -1 on a
 * network or protocol error (the connection is then unusable). A response with
 * "Connection: close" leaves the connection closed: the next call returns -1.
 */
int wt_conn_request(wt_conn_t *c, const char *method, const char *path, const char *headers,
                    const void *body, size_t len, wf_buf_t *resp_body);

#endif
