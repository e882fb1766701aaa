/*
 * px_access_log.c - access log lines (px_access_log.h): the logfmt formatter and the writer
 * thread behind the per-worker buffers.
 */
#include "px_access_log.h"

#include "px_metrics.h"
#include "wf_alloc.h"
#include "wf_err.h"
#include "wf_log.h"
#include "wf_str.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

typedef struct {
    uv_mutex_t mu;
    wf_buf_t buf;     /* under mu: lines waiting for the writer */
    wf_buf_t scratch; /* the worker's own: the line being formatted */
} al_slot_t;

struct px_access_log {
    int fd;
    bool own_fd;
    int n;
    al_slot_t *slots;
    uv_thread_t thread;
    uv_mutex_t mu; /* stop and wake, with cv */
    uv_cond_t cv;
    bool stop;
    bool wake;
    _Atomic uint64_t dropped;
};

static bool bare_ok(wf_str_t v)
{
    if (v.len == 0) {
        return false;
    }
    for (size_t i = 0; i < v.len; i++) {
        unsigned char c = (unsigned char)v.p[i];
        if (c <= 0x20 || c >= 0x7f || c == '"' || c == '=' || c == '\\') {
            return false;
        }
    }
    return true;
}

static void put_val(wf_buf_t *b, wf_str_t v)
{
    if (bare_ok(v)) {
        wf_buf_append(b, v.p, v.len);
        return;
    }
    static const char hex[] = "0123456789abcdef";
    bool utf8 = wf_utf8_valid(v.p, v.len);
    wf_buf_putc(b, '"');
    for (size_t i = 0; i < v.len; i++) {
        unsigned char c = (unsigned char)v.p[i];
        if (c == '"' || c == '\\') {
            wf_buf_putc(b, '\\');
            wf_buf_putc(b, c);
        } else if (c == '\n') {
            wf_buf_append(b, "\\n", 2);
        } else if (c == '\r') {
            wf_buf_append(b, "\\r", 2);
        } else if (c == '\t') {
            wf_buf_append(b, "\\t", 2);
        } else if (c < 0x20 || c == 0x7f) {
            char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            wf_buf_append(b, e, 6);
        } else if (c >= 0x80 && !utf8) {
            char e[4] = {'\\', 'x', hex[c >> 4], hex[c & 15]};
            wf_buf_append(b, e, 4);
        } else {
            wf_buf_putc(b, c);
        }
    }
    wf_buf_putc(b, '"');
}

static void put_kv(wf_buf_t *b, const char *key, wf_str_t v)
{
    if (b->len > 0 && b->data[b->len - 1] != '\n') {
        wf_buf_putc(b, ' ');
    }
    wf_buf_append(b, key, strlen(key));
    wf_buf_putc(b, '=');
    put_val(b, v);
}

void px_access_log_format(const px_request_info_t *info, wf_buf_t *out)
{
    char ts[40], num[32], dur[32], hexid[33], fl[PX_RFLAGS_MAX];
    time_t sec = (time_t)(info->start_wall_ns / 1000000000);
    struct tm tm;
    gmtime_r(&sec, &tm);
    size_t tl = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + tl, sizeof(ts) - tl, ".%03dZ", (int)(info->start_wall_ns / 1000000 % 1000));
    put_kv(out, "start_time", wf_str(ts));
    put_kv(out, "method", info->method);
    put_kv(out, "authority", info->authority);
    put_kv(out, "path", info->path);
    put_kv(out, "protocol",
           info->minor_version == 0 ? WF_STR_LIT("HTTP/1.0") : WF_STR_LIT("HTTP/1.1"));
    snprintf(num, sizeof(num), "%d", info->status > 0 ? info->status : 0);
    put_kv(out, "status", wf_str(num));
    px_rflags_format(info->flags, fl);
    put_kv(out, "response_flags", wf_str(fl));
    snprintf(num, sizeof(num), "%llu", (unsigned long long)info->bytes_in);
    put_kv(out, "bytes_in", wf_str(num));
    snprintf(num, sizeof(num), "%llu", (unsigned long long)info->bytes_out);
    put_kv(out, "bytes_out", wf_str(num));
    snprintf(dur, sizeof(dur), "%.3f", (double)info->duration_ns / 1e6);
    put_kv(out, "duration_ms", wf_str(dur));
    put_kv(out, "upstream_host", info->upstream_host);
    put_kv(out, "upstream_cluster", info->upstream_cluster);
    put_kv(out, "request_id", info->request_id);
    hexid[0] = '\0';
    if (info->trace != NULL) {
        static const char hex[] = "0123456789abcdef";
        for (int i = 0; i < 16; i++) {
            hexid[2 * i] = hex[info->trace->trace_id[i] >> 4];
            hexid[2 * i + 1] = hex[info->trace->trace_id[i] & 15];
        }
        hexid[32] = '\0';
    }
    put_kv(out, "trace_id", wf_str(hexid));
    put_kv(out, "downstream_address", info->downstream_ip);
    put_kv(out, "reporter", info->inbound ? WF_STR_LIT("destination") : WF_STR_LIT("source"));
    wf_buf_putc(out, '\n');
}

static void write_all(px_access_log_t *l, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(l->fd, p, n);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            atomic_fetch_add_explicit(&l->dropped, 1, memory_order_relaxed);
            WF_LOG_RL(WF_WARN, 1, "proxy", "access log write failed", "err=%s",
                      strerror(w < 0 ? errno : EIO));
            return;
        }
        p += w;
        n -= (size_t)w;
    }
}

/* Swap every slot's lines out and write them. */
static void flush_all(px_access_log_t *l, wf_buf_t *spare)
{
    for (int i = 0; i < l->n; i++) {
        al_slot_t *s = &l->slots[i];
        uv_mutex_lock(&s->mu);
        wf_buf_t t = s->buf;
        s->buf = *spare;
        *spare = t;
        uv_mutex_unlock(&s->mu);
        if (spare->len > 0) {
            write_all(l, spare->data, spare->len);
        }
        wf_buf_reset(spare);
    }
}

static void writer_thread(void *arg)
{
    px_access_log_t *l = arg;
    wf_buf_t spare = WF_BUF_INIT;
    for (;;) {
        uv_mutex_lock(&l->mu);
        if (!l->stop && !l->wake) {
            (void)uv_cond_timedwait(&l->cv, &l->mu, (uint64_t)PX_ACCESS_LOG_FLUSH_MS * 1000000);
        }
        bool stop = l->stop;
        l->wake = false;
        uv_mutex_unlock(&l->mu);
        flush_all(l, &spare);
        if (stop) {
            break;
        }
    }
    wf_buf_free(&spare);
}

int px_access_log_open(px_access_log_t **out, const char *path, int n_workers)
{
    *out = NULL;
    int fd = 1;
    bool own = strcmp(path, "-") != 0;
    if (own) {
        fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd < 0) {
            return -errno;
        }
    }
    px_access_log_t *l = wf_calloc(1, sizeof(*l));
    l->fd = fd;
    l->own_fd = own;
    l->n = n_workers;
    l->slots = wf_calloc((size_t)n_workers, sizeof(*l->slots));
    int inited = 0;
    int rc = 0;
    for (; inited < n_workers; inited++) {
        if ((rc = uv_mutex_init(&l->slots[inited].mu)) != 0) {
            goto fail;
        }
    }
    if ((rc = uv_mutex_init(&l->mu)) != 0) {
        goto fail;
    }
    if ((rc = uv_cond_init(&l->cv)) != 0) {
        uv_mutex_destroy(&l->mu);
        goto fail;
    }
    if ((rc = uv_thread_create(&l->thread, writer_thread, l)) != 0) {
        uv_cond_destroy(&l->cv);
        uv_mutex_destroy(&l->mu);
        goto fail;
    }
    *out = l;
    return 0;

fail:
    for (int i = 0; i < inited; i++) {
        uv_mutex_destroy(&l->slots[i].mu);
    }
    wf_free(l->slots);
    if (own) {
        close(fd);
    }
    wf_free(l);
    return rc;
}

void px_access_log_record(px_access_log_t *l, int worker, const px_request_info_t *info)
{
    WF_ASSERT(worker >= 0 && worker < l->n);
    al_slot_t *s = &l->slots[worker];
    wf_buf_reset(&s->scratch);
    px_access_log_format(info, &s->scratch);
    bool kick = false, dropped = false;
    uv_mutex_lock(&s->mu);
    if (s->buf.len + s->scratch.len > PX_ACCESS_LOG_CAP) {
        dropped = true;
    } else {
        size_t before = s->buf.len;
        wf_buf_append(&s->buf, s->scratch.data, s->scratch.len);
        kick = before < PX_ACCESS_LOG_HIWAT && s->buf.len >= PX_ACCESS_LOG_HIWAT;
    }
    uv_mutex_unlock(&s->mu);
    if (dropped) {
        atomic_fetch_add_explicit(&l->dropped, 1, memory_order_relaxed);
    }
    if (kick) {
        uv_mutex_lock(&l->mu);
        l->wake = true;
        uv_cond_signal(&l->cv);
        uv_mutex_unlock(&l->mu);
    }
}

uint64_t px_access_log_dropped(const px_access_log_t *l)
{
    return l != NULL ? atomic_load_explicit(&l->dropped, memory_order_relaxed) : 0;
}

void px_access_log_stats(const px_access_log_t *l, wf_buf_t *out)
{
    wf_buf_printf(out,
                  "# HELP weft_proxy_access_log_dropped_total Access log lines dropped (a "
                  "worker's buffer was full) and failed writes.\n"
                  "# TYPE weft_proxy_access_log_dropped_total counter\n"
                  "weft_proxy_access_log_dropped_total %llu\n",
                  (unsigned long long)px_access_log_dropped(l));
}

void px_access_log_close(px_access_log_t *l)
{
    if (l == NULL) {
        return;
    }
    uv_mutex_lock(&l->mu);
    l->stop = true;
    uv_cond_signal(&l->cv);
    uv_mutex_unlock(&l->mu);
    uv_thread_join(&l->thread);
    uv_cond_destroy(&l->cv);
    uv_mutex_destroy(&l->mu);
    for (int i = 0; i < l->n; i++) {
        uv_mutex_destroy(&l->slots[i].mu);
        wf_buf_free(&l->slots[i].buf);
        wf_buf_free(&l->slots[i].scratch);
    }
    wf_free(l->slots);
    if (l->own_fd) {
        close(l->fd);
    }
    wf_free(l);
}
