/*
 * px_tunnel.c - the bidirectional byte pump (see px_tunnel.h).
 *
 * Each side has one read buffer of PX_TUNNEL_READ bytes that is reused for every read: the
 * bytes are written to the other side within the read callback and px_transport_write copies
 * what the socket does not take at once, so nothing of a read outlives its callback. The idle
 * timer is not restarted per read (that would cost a timer-heap operation per packet): reads
 * stamp the loop time and the timer, when it fires, re-arms itself for what is left.
 */
#include "px_tunnel.h"

#include "wf_alloc.h"
#include "wf_err.h"

#include <string.h>

#define PX_TUNNEL_READ 65536

enum { SIDE_DOWN = 0, SIDE_UP = 1 };

typedef struct {
    px_transport_t *t;
    const px_transport_cbs_t *saved_cbs;
    void *saved_owner;
    char *buf;
    bool eof;  /* EOF read from this side */
    bool gone; /* its owner closed it under the tunnel */
} side_t;

struct px_tunnel {
    side_t s[2];
    uv_timer_t timer;
    uint64_t idle_ms;
    uint64_t last_ms; /* loop time of the last byte either way */
    px_tunnel_stats_t st;
    void (*done)(void *arg, const px_tunnel_stats_t *st);
    void *arg;
    bool (*admit)(void *arg); /* NULL once asked */
    bool ended;
    int start_err; /* a failure inside px_tunnel_start, reported from the loop */
    bool start_err_down;
};

static void tunnel_freed(uv_handle_t *h)
{
    px_tunnel_t *tn = h->data;
    wf_free(tn->s[0].buf);
    wf_free(tn->s[1].buf);
    wf_free(tn);
}

/* Hand both transports back to their owners, reading stopped. */
static void give_back(px_tunnel_t *tn)
{
    for (int i = 0; i < 2; i++) {
        side_t *s = &tn->s[i];
        if (s->gone) {
            continue;
        }
        px_transport_read_stop(s->t);
        s->t->cbs = s->saved_cbs;
        s->t->owner = s->saved_owner;
    }
    uv_timer_stop(&tn->timer);
    uv_close((uv_handle_t *)&tn->timer, tunnel_freed);
}

static void tunnel_end(px_tunnel_t *tn, px_tunnel_end_t end, int err, bool down_err)
{
    if (tn->ended) {
        return;
    }
    tn->ended = true;
    tn->st.end = end;
    tn->st.err = err;
    tn->st.down_err = down_err;
    give_back(tn);
    /* The memory stays until the timer's close callback, after this call. */
    tn->done(tn->arg, &tn->st);
}

static int side_of(const px_tunnel_t *tn, const px_transport_t *t)
{
    return t == tn->s[SIDE_DOWN].t ? SIDE_DOWN : SIDE_UP;
}

/* Both directions saw EOF and every byte is out: a clean end. */
static void check_closed(px_tunnel_t *tn)
{
    if (tn->s[0].eof && tn->s[1].eof && px_transport_queued(tn->s[0].t) == 0 &&
        px_transport_queued(tn->s[1].t) == 0) {
        tunnel_end(tn, PX_TUNNEL_CLOSED, 0, false);
    }
}

static void on_alloc(px_transport_t *t, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    px_tunnel_t *tn = t->owner;
    *buf = uv_buf_init(tn->s[side_of(tn, t)].buf, PX_TUNNEL_READ);
}

static void on_read(px_transport_t *t, ssize_t nread, const uv_buf_t *buf)
{
    px_tunnel_t *tn = t->owner;
    int i = side_of(tn, t);
    side_t *s = &tn->s[i], *o = &tn->s[1 - i];
    if (nread < 0) {
        if (nread != UV_EOF) {
            tunnel_end(tn, PX_TUNNEL_RESET, (int)nread, i == SIDE_DOWN);
            return;
        }
        s->eof = true;
        px_transport_read_stop(t);
        /* The peer on the other side sees the EOF once what is queued for it is out. */
        px_transport_shutdown(o->t);
        check_closed(tn);
        return;
    }
    tn->last_ms = uv_now(tn->timer.loop);
    if (i == SIDE_DOWN && tn->admit != NULL) {
        bool (*admit)(void *) = tn->admit;
        tn->admit = NULL;
        if (!admit(tn->arg)) {
            tunnel_end(tn, PX_TUNNEL_RESET, UV_EACCES, true);
            return;
        }
    }
    if (i == SIDE_DOWN) {
        tn->st.down_to_up += (uint64_t)nread;
    } else {
        tn->st.up_to_down += (uint64_t)nread;
    }
    uv_buf_t b = uv_buf_init(buf->base, (unsigned)nread);
    int rc = px_transport_write(o->t, &b, 1);
    if (rc != 0) {
        tunnel_end(tn, PX_TUNNEL_RESET, rc, i != SIDE_DOWN);
        return;
    }
    if (px_transport_queued(o->t) >= PX_TUNNEL_HWM) {
        px_transport_read_stop(t);
    }
}

static void on_written(px_transport_t *t, int status)
{
    px_tunnel_t *tn = t->owner;
    int i = side_of(tn, t);
    if (status != 0) {
        tunnel_end(tn, PX_TUNNEL_RESET, status, i == SIDE_DOWN);
        return;
    }
    /* t's queue is filled by reads on the other side: resume them below the mark. */
    side_t *src = &tn->s[1 - i];
    if (!src->eof && px_transport_queued(t) < PX_TUNNEL_HWM &&
        px_transport_read_start(src->t) != 0) {
        tunnel_end(tn, PX_TUNNEL_RESET, UV_ECONNRESET, 1 - i == SIDE_DOWN);
        return;
    }
    check_closed(tn);
}

static void on_closed(px_transport_t *t)
{
    /* Only an owner closing its connection without px_tunnel_free gets here: pass it on. */
    px_tunnel_t *tn = t->owner;
    side_t *s = &tn->s[side_of(tn, t)];
    s->gone = true;
    t->cbs = s->saved_cbs;
    t->owner = s->saved_owner;
    t->cbs->on_closed(t);
}

static const px_transport_cbs_t tunnel_cbs = {
    .on_alloc = on_alloc,
    .on_read = on_read,
    .on_written = on_written,
    .on_connect = NULL,
    .on_closed = on_closed,
};

static void timer_cb(uv_timer_t *timer)
{
    px_tunnel_t *tn = timer->data;
    if (tn->start_err != 0) {
        tunnel_end(tn, PX_TUNNEL_RESET, tn->start_err, tn->start_err_down);
        return;
    }
    uint64_t idle = uv_now(timer->loop) - tn->last_ms;
    if (idle >= tn->idle_ms) {
        tunnel_end(tn, PX_TUNNEL_IDLE, 0, false);
        return;
    }
    uv_timer_start(&tn->timer, timer_cb, tn->idle_ms - idle, 0);
}

px_tunnel_t *px_tunnel_start(uv_loop_t *loop, px_transport_t *down, px_transport_t *up,
                             const px_tunnel_opts_t *o)
{
    WF_ASSERT(o->done != NULL && down != up);
    px_tunnel_t *tn = wf_calloc(1, sizeof(*tn));
    tn->s[SIDE_DOWN].t = down;
    tn->s[SIDE_UP].t = up;
    tn->idle_ms = o->idle_ms;
    tn->done = o->done;
    tn->arg = o->arg;
    tn->admit = o->admit;
    uv_timer_init(loop, &tn->timer);
    tn->timer.data = tn;
    tn->last_ms = uv_now(loop);
    for (int i = 0; i < 2; i++) {
        side_t *s = &tn->s[i];
        s->saved_cbs = s->t->cbs;
        s->saved_owner = s->t->owner;
        s->t->cbs = &tunnel_cbs;
        s->t->owner = tn;
        s->buf = wf_malloc(PX_TUNNEL_READ);
    }
    const wf_str_t pre[2] = {o->to_up, o->to_down};
    for (int i = 0; i < 2 && tn->start_err == 0; i++) {
        px_transport_t *dst = i == 0 ? up : down;
        if (pre[i].len == 0) {
            continue;
        }
        uv_buf_t b = uv_buf_init((char *)pre[i].p, (unsigned)pre[i].len);
        int rc = px_transport_write(dst, &b, 1);
        if (rc != 0) {
            tn->start_err = rc;
            tn->start_err_down = dst == down;
        }
        if (i == 0) {
            tn->st.down_to_up += pre[i].len;
        } else {
            tn->st.up_to_down += pre[i].len;
        }
    }
    for (int i = 0; i < 2 && tn->start_err == 0; i++) {
        side_t *s = &tn->s[i];
        if (px_transport_queued(tn->s[1 - i].t) >= PX_TUNNEL_HWM) {
            px_transport_read_stop(s->t);
            continue;
        }
        int rc = px_transport_read_start(s->t);
        if (rc != 0) {
            tn->start_err = rc;
            tn->start_err_down = i == SIDE_DOWN;
        }
    }
    if (tn->start_err != 0) {
        uv_timer_start(&tn->timer, timer_cb, 0, 0);
    } else if (tn->idle_ms > 0) {
        uv_timer_start(&tn->timer, timer_cb, tn->idle_ms, 0);
    }
    return tn;
}

void px_tunnel_stats(const px_tunnel_t *tn, px_tunnel_stats_t *out)
{
    *out = tn->st;
}

void px_tunnel_free(px_tunnel_t *tn)
{
    if (tn->ended) {
        return;
    }
    tn->ended = true;
    give_back(tn);
}
