/*
 * px_access_log.h - the proxy's access log (`--access-log PATH|-`, or the snapshot's
 * telemetry.access_log to stdout): one logfmt line per request, written off the request path.
 *
 * Line format (keys in this order; docs/proxy.md "Access log"):
 *   start_time=2026-11-26T04:05:26.123Z method=GET authority=details:9080 path=/headers
 *   protocol=HTTP/1.1 status=200 response_flags=- bytes_in=0 bytes_out=1234 duration_ms=0.412
 *   upstream_host=127.0.0.1:9080 upstream_cluster=outbound|9080||details.default.svc.cluster.local
 *   request_id=... trace_id=4bf9... downstream_address=127.0.0.1 reporter=source
 * A value is written bare when it is a non-empty run of printable ASCII other than space, `"`,
 * `=` and `\`; otherwise it is quoted, with `"` and `\` escaped by a backslash, \n \r \t as
 * such, other control bytes as \u00XX, and bytes of a value that is not valid UTF-8 from 0x80
 * up as \xNN. status is 0 when no response was sent.
 *
 * Writing: each worker appends its lines to its own buffer (a mutex only the worker and the
 * writer thread take, for a copy); the writer thread swaps the buffers out every flush interval
 * or as soon as one holds PX_ACCESS_LOG_HIWAT bytes and write(2)s them. A slow disk therefore
 * stalls only the writer; a worker whose buffer reaches PX_ACCESS_LOG_CAP drops lines, counted.
 */
#ifndef PX_ACCESS_LOG_H
#define PX_ACCESS_LOG_H

#include "px_worker.h"
#include "wf_buf.h"

#include <stdint.h>

#define PX_ACCESS_LOG_FLUSH_MS 1000
#define PX_ACCESS_LOG_HIWAT (64 * 1024)
#define PX_ACCESS_LOG_CAP (4 * 1024 * 1024)

typedef struct px_access_log px_access_log_t;

/* Append the line for info (with its newline) to out. Pure. */
void px_access_log_format(const px_request_info_t *info, wf_buf_t *out);

/* Open path ("-" = standard output; a file is created or appended to) for n_workers writers
 * and start the writer thread. Returns 0 or a negative errno / WF_E_* code. */
int px_access_log_open(px_access_log_t **out, const char *path, int n_workers);

/* Worker `worker`'s thread: log info. Never blocks on the disk. */
void px_access_log_record(px_access_log_t *l, int worker, const px_request_info_t *info);

/* Lines dropped because a worker's buffer was full, and failed writes (any thread); 0 for
 * NULL. */
uint64_t px_access_log_dropped(const px_access_log_t *l);

/* weft_proxy_access_log_dropped_total in Prometheus text format (any thread; l may be NULL). */
void px_access_log_stats(const px_access_log_t *l, wf_buf_t *out);

/* Write what is buffered, stop the thread, close the file. Call once the workers have ended.
 * NULL is a no-op. */
void px_access_log_close(px_access_log_t *l);

#endif
