/*
 * wf_log.h - logfmt logging to stderr.
 *
 *   WF_LOG(WF_WARN, "proxy", "upstream reset", "upstream=%s attempt=%d", addr, n);
 *   -> ts=2026-11-25T19:51:59.123Z level=warn comp=proxy msg="upstream reset" upstream=...
 * attempt=2
 *
 * The level is checked before any formatting happens, so a disabled debug line costs one
 * compare. WF_LOG_RL is the rate-limited form for lines that input can trigger per request:
 * each call site prints at most `per_sec` lines per second and then one line saying how many it
 * dropped. Each line is written with a single write(2), so lines from threads do not interleave.
 *
 * The level is process-wide (it is set once from flags before threads start and read with a
 * relaxed atomic load); everything else is per call site.
 */
#ifndef WF_LOG_H
#define WF_LOG_H

#include <stdatomic.h>
#include <stdint.h>

typedef enum {
    WF_ERROR = 0,
    WF_WARN = 1,
    WF_INFO = 2,
    WF_DEBUG = 3,
} wf_log_level_t;

extern _Atomic int wf_log_level_;

void wf_log_set_level(wf_log_level_t level);
/* Parse "error", "warn", "info" or "debug"; returns 0 or WF_E_INVAL. */
int wf_log_parse_level(const char *s, wf_log_level_t *out);
/* Redirect output to fd (default 2). For tests. */
void wf_log_set_fd(int fd);

void wf_log_write(wf_log_level_t level, const char *comp, const char *msg, const char *kvfmt, ...)
    __attribute__((format(printf, 4, 5)));

static inline int wf_log_enabled(wf_log_level_t level)
{
    return (int)level <= atomic_load_explicit(&wf_log_level_, memory_order_relaxed);
}

#define WF_LOG(level, comp, msg, ...)                                                              \
    do {                                                                                           \
        if (wf_log_enabled(level)) {                                                               \
            wf_log_write((level), (comp), (msg), "" __VA_ARGS__);                                  \
        }                                                                                          \
    } while (0)

typedef struct {
    _Atomic int64_t window_start_ns;
    _Atomic uint32_t count;
    _Atomic uint32_t dropped;
} wf_log_ratelimit_t;

/* Returns 1 when the caller may print now; emits the "dropped N lines" line itself. */
int wf_log_ratelimit_pass(wf_log_ratelimit_t *rl, unsigned per_sec, wf_log_level_t level,
                          const char *comp);

#define WF_LOG_RL(level, per_sec, comp, msg, ...)                                                  \
    do {                                                                                           \
        static wf_log_ratelimit_t wf_rl_;                                                          \
        if (wf_log_enabled(level) && wf_log_ratelimit_pass(&wf_rl_, (per_sec), (level), (comp))) { \
            wf_log_write((level), (comp), (msg), "" __VA_ARGS__);                                  \
        }                                                                                          \
    } while (0)

#endif
