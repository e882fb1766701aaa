/*
 * wt_util.h - helpers shared by weft's tests and benchmarks: temporary directories, reference
 * data paths, free ports, child processes with deadlines, and file sizes.
 */
#ifndef WT_UTIL_H
#define WT_UTIL_H

#include "wf_buf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Create a fresh directory under $TMPDIR (or /tmp); returns a wf_malloc'ed path. Aborts on error.
 */
char *wt_tmpdir(const char *prefix);
/* Remove a directory tree (like rm -rf); ignores errors. */
void wt_rm_rf(const char *path);
/* Path of a file under the reference data directory ($WEFT_REF_DIR or ../shared/ref), or NULL
 * (and a printed "skipped: reference data not present") when it does not exist. wf_free it. */
char *wt_ref_path(const char *rel);
/* Path of the weft binary ($WEFT_BIN); aborts when unset. */
const char *wt_weft_bin(void);
/* A TCP port on 127.0.0.1 that was free a moment ago. */
int wt_free_port(void);
/* Start argv[0] with argv (execvp); stdout/stderr go to log_path when not NULL. Returns pid.
 * The child is killed when the process that started it dies (a crashed or timed-out test
 * leaves no server behind). */
pid_t wt_spawn(char *const argv[], const char *log_path);
/* Wait for pid up to timeout_ms; returns the wait status, or -1 after killing it on timeout. */
int wt_wait(pid_t pid, int timeout_ms);
/* SIGTERM, wait up to timeout_ms, then SIGKILL. Returns the wait status. */
int wt_stop(pid_t pid, int timeout_ms);
/* Poll until something accepts TCP connections on 127.0.0.1:port or timeout_ms passes. */
bool wt_wait_port(int port, int timeout_ms);
/*
 * Send one HTTP/1.1 request (Connection: close) to 127.0.0.1:port and read the whole answer.
 * Returns the status code (and the body in *body, wf_free it, when body is not NULL), or -1.
 */
int wt_http(int port, const char *method, const char *path, const char *req_body, size_t req_len,
            char **body);
/*
 * The parts of wt_http for callers that need more: extra headers (each line ending "\r\n"; a
 * "Transfer-Encoding: chunked\r\n" among them sends the body as one chunk instead of with a
 * Content-Length), a read timeout, or several requests in flight at once.
 * wt_http_connect: a connected socket with timeout_ms as its read timeout, or -1.
 * wt_http_send: write one request (Connection: close) on fd; a NULL req_body sends no body and
 * no Content-Length. 0, or -1 when a write failed.
 * wt_http_read: read the answer to its end and close fd; the status or -1, and in *body (when
 * not NULL, always set, wf_free it) the body.
 * wt_http_ex: the three in a row; a failed send still reads whatever the server answered.
 */
int wt_http_connect(int port, int timeout_ms);
int wt_http_send(int fd, int port, const char *method, const char *path, const char *headers,
                 const char *req_body, size_t req_len);
int wt_http_read(int fd, char **body);
int wt_http_ex(int port, const char *method, const char *path, const char *headers,
               const char *req_body, size_t req_len, int timeout_ms, char **body);
/* Run a shell command line (printf-style) in dir with its stdout and stderr in dir/sh.log; its
 * exit status, or -1 when it did not exit. */
int wt_sh(const char *dir, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Run fn in a forked child (stderr silenced); true when it died of SIGABRT (a WF_ASSERT). */
bool wt_aborts(void (*fn)(void));
/* Sum of the sizes of the regular files under path. */
int64_t wt_du_bytes(const char *path);
/* Read a whole file (NUL-terminated); NULL on error. wf_free it. */
char *wt_read_file(const char *path, size_t *len);
/* Replace path with text atomically (a temporary file renamed over it: a reader polling the file
 * sees the old or the new content, never half). Aborts on error. */
void wt_write_file(const char *path, const char *text);
/* Deterministic pseudo-random numbers (xorshift64*). */
uint64_t wt_rand(uint64_t *state);
/*
 * cmocka counts a skip()ped test as passed and exits 0, so ctest would show a test whose
 * prerequisite is missing as Passed. Tests skip with wt_skip() instead, and their main returns
 * wt_exit_code(cmocka_run_group_tests(...)): the number of failures, else 77 (ctest's
 * SKIP_RETURN_CODE: Skipped) when any test skipped, else 0.
 */
#define wt_skip()                                                                                  \
    do {                                                                                           \
        wt_note_skip();                                                                            \
        skip();                                                                                    \
    } while (0)
void wt_note_skip(void);
/* n bytes of in as one gzip member (level 9) appended to out. Aborts on a zlib failure. */
void wt_gzip(const void *in, size_t n, wf_buf_t *out);
int wt_exit_code(int failed);

#endif
