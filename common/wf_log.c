/*
 * wf_log.c - logfmt line assembly and per-call-site rate limiting. See wf_log.h.
 */
#include "wf_log.h"

#include "wf_clock.h"
#include "wf_err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

_Atomic int wf_log_level_ = WF_INFO;
static _Atomic int log_fd = 2;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void wf_log_set_level(wf_log_level_t level)
{
    atomic_store(&wf_log_level_, (int)level);
}

int wf_log_parse_level(const char *s, wf_log_level_t *out)
{
    for (int i = 0; i < 4; i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *out = (wf_log_level_t)i;
            return 0;
        }
    }
    return WF_E_INVAL;
}

void wf_log_set_fd(int fd)
{
    atomic_store(&log_fd, fd);
}

/* Append s as a logfmt value: quoted, with quotes, backslashes and control bytes escaped. */
static size_t put_quoted(char *out, size_t pos, size_t cap, const char *s)
{
    if (pos < cap) {
        out[pos++] = '"';
    }
    for (; *s && pos + 2 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            out[pos++] = '\\';
            out[pos++] = (char)c;
        } else if (c == '\n') {
            out[pos++] = '\\';
            out[pos++] = 'n';
        } else if (c < 0x20) {
            out[pos++] = ' ';
        } else {
            out[pos++] = (char)c;
        }
    }
    if (pos < cap) {
        out[pos++] = '"';
    }
    return pos;
}

void wf_log_write(wf_log_level_t level, const char *comp, const char *msg, const char *kvfmt, ...)
{
    char line[2048];
    const size_t cap = sizeof(line) - 1; /* room for the newline */
    char ts[32];
    wf_time_rfc3339(wf_wall_ns(), ts, sizeof(ts));
    int n = snprintf(line, cap, "ts=%s level=%s comp=%s msg=", ts, level_names[level], comp);
    /* On truncation snprintf stored a NUL at cap - 1: stop before it. */
    size_t pos = n < 0 ? 0 : (size_t)n < cap ? (size_t)n : cap - 1;
    pos = put_quoted(line, pos, cap, msg);
    if (kvfmt[0] != '\0' && pos + 1 < cap) {
        line[pos++] = ' ';
        va_list ap;
        va_start(ap, kvfmt);
        n = vsnprintf(line + pos, cap - pos, kvfmt, ap);
        va_end(ap);
        if (n > 0) {
            pos += (size_t)n < cap - pos ? (size_t)n : cap - pos - 1;
        }
    }
    line[pos++] = '\n';
    ssize_t w = write(atomic_load(&log_fd), line, pos);
    (void)w;
}

int wf_log_ratelimit_pass(wf_log_ratelimit_t *rl, unsigned per_sec, wf_log_level_t level,
                          const char *comp)
{
    int64_t now = wf_mono_ns();
    int64_t start = atomic_load(&rl->window_start_ns);
    if (now - start >= 1000000000) {
        if (atomic_compare_exchange_strong(&rl->window_start_ns, &start, now)) {
            uint32_t dropped = atomic_exchange(&rl->dropped, 0);
            atomic_store(&rl->count, 0);
            if (dropped > 0) {
                wf_log_write(level, comp, "rate-limited log lines dropped", "dropped=%u", dropped);
            }
        }
    }
    if (atomic_fetch_add(&rl->count, 1) < per_sec) {
        return 1;
    }
    atomic_fetch_add(&rl->dropped, 1);
    return 0;
}
