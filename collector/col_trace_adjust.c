/*
 * col_trace_adjust.c - Jaeger's trace adjusters over a stored trace (see col_trace_adjust.h).
 */
#include "col_trace_adjust.h"

#include "col_spanval.h"
#include "wf_alloc.h"
#include "wf_buf.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static bool zero8(const uint8_t id[8])
{
    static const uint8_t z[8];
    return memcmp(id, z, 8) == 0;
}

static bool id_used(const st_span_list_t *l, const uint8_t id[8])
{
    for (size_t i = 0; i < l->n; i++) {
        if (memcmp(l->spans[i].span_id, id, 8) == 0) {
            return true;
        }
    }
    return false;
}

static bool shared_with_client(const st_span_list_t *l, const uint8_t id[8])
{
    for (size_t i = 0; i < l->n; i++) {
        if (l->spans[i].kind == ST_SPAN_KIND_CLIENT && memcmp(l->spans[i].span_id, id, 8) == 0) {
            return true;
        }
    }
    return false;
}

/* The next id after *last (big-endian + 1) that no span uses; false when the space is spent. */
static bool next_free_id(const st_span_list_t *l, uint8_t last[8])
{
    for (;;) {
        int i = 7;
        while (i >= 0 && ++last[i] == 0) {
            i--;
        }
        if (zero8(last)) {
            return false;
        }
        if (!id_used(l, last)) {
            return true;
        }
    }
}

static void uniquify_server_ids(st_span_list_t *l)
{
    uint8_t last[8] = {0};
    uint8_t(*old_ids)[8] = NULL;
    uint8_t(*new_ids)[8] = NULL;
    size_t n = 0;
    for (size_t i = 0; i < l->n; i++) {
        st_span_t *sp = &l->spans[i];
        if (sp->kind != ST_SPAN_KIND_SERVER || !shared_with_client(l, sp->span_id) ||
            !next_free_id(l, last)) {
            continue;
        }
        old_ids = wf_realloc(old_ids, (n + 1) * sizeof(*old_ids));
        new_ids = wf_realloc(new_ids, (n + 1) * sizeof(*new_ids));
        memcpy(old_ids[n], sp->span_id, 8);
        memcpy(new_ids[n], last, 8);
        n++;
        memcpy(sp->parent_span_id, sp->span_id, 8);
        memcpy(sp->span_id, last, 8);
    }
    for (size_t i = 0; i < l->n && n > 0; i++) {
        st_span_t *sp = &l->spans[i];
        for (size_t k = 0; k < n; k++) {
            if (memcmp(sp->parent_span_id, old_ids[k], 8) == 0 &&
                memcmp(sp->span_id, new_ids[k], 8) != 0) {
                memcpy(sp->parent_span_id, new_ids[k], 8);
                break;
            }
        }
    }
    wf_free(old_ids);
    wf_free(new_ids);
}

/* A key-sorted copy of a[0..n) in the arena (insertion sort: stable, lists are short). */
static const st_attr_t *sorted_attrs(wf_arena_t *arena, const st_attr_t *a, size_t n)
{
    if (n < 2) {
        return a;
    }
    st_attr_t *c = wf_arena_alloc(arena, n * sizeof(*c));
    memcpy(c, a, n * sizeof(*c));
    for (size_t i = 1; i < n; i++) {
        st_attr_t x = c[i];
        size_t j = i;
        while (j > 0 && wf_str_cmp(c[j - 1].key, x.key) > 0) {
            c[j] = c[j - 1];
            j--;
        }
        c[j] = x;
    }
    return c;
}

static void sort_span(wf_arena_t *arena, st_span_t *sp)
{
    sp->attrs = sorted_attrs(arena, sp->attrs, sp->n_attrs);
    sp->resource_attrs = sorted_attrs(arena, sp->resource_attrs, sp->n_resource_attrs);
    if (sp->n_events > 0) {
        st_span_event_t *ev = wf_arena_alloc(arena, sp->n_events * sizeof(*ev));
        memcpy(ev, sp->events, sp->n_events * sizeof(*ev));
        for (size_t i = 1; i < sp->n_events; i++) {
            st_span_event_t x = ev[i];
            size_t j = i;
            while (j > 0 && wf_str_cmp(ev[j - 1].name, x.name) > 0) {
                ev[j] = ev[j - 1];
                j--;
            }
            ev[j] = x;
        }
        for (size_t i = 0; i < sp->n_events; i++) {
            ev[i].attrs = sorted_attrs(arena, ev[i].attrs, ev[i].n_attrs);
        }
        sp->events = ev;
    }
    if (sp->n_links > 0) {
        static const uint8_t zero16[16];
        st_span_link_t *lk = wf_arena_alloc(arena, sp->n_links * sizeof(*lk));
        size_t k = 0;
        for (size_t i = 0; i < sp->n_links; i++) {
            if (memcmp(sp->links[i].trace_id, zero16, 16) == 0) {
                continue;
            }
            lk[k++] = sp->links[i];
        }
        sp->links = lk;
        sp->n_links = k;
    }
}

/* Jaeger's IP adjuster: a numeric ip / peer.ipv4 is an IPv4 address as a 32-bit integer. */
static const st_attr_t *fix_ips(wf_arena_t *arena, const st_attr_t *a, size_t n)
{
    st_attr_t *c = NULL;
    for (size_t i = 0; i < n; i++) {
        const st_value_t *v = &a[i].value;
        if (!(wf_str_eq_c(a[i].key, "ip") || wf_str_eq_c(a[i].key, "peer.ipv4")) ||
            (v->type != ST_VAL_INT && v->type != ST_VAL_DOUBLE)) {
            continue;
        }
        if (c == NULL) {
            c = wf_arena_alloc(arena, n * sizeof(*c));
            memcpy(c, a, n * sizeof(*c));
        }
        /* Go's uint32() conversion: the low 32 bits of the integer */
        uint32_t ip = v->type == ST_VAL_INT ? (uint32_t)v->u.i : (uint32_t)(int64_t)v->u.d;
        char *s = wf_arena_alloc(arena, 16);
        int len =
            snprintf(s, 16, "%u.%u.%u.%u", ip >> 24, (ip >> 16) & 255, (ip >> 8) & 255, ip & 255);
        c[i].value.type = ST_VAL_STRING;
        c[i].value.u.s = (wf_str_t){s, (size_t)len};
    }
    return c != NULL ? c : a;
}

static bool is_library_key(wf_str_t k)
{
    static const char *const keys[] = {"telemetry.sdk.language", "telemetry.sdk.name",
                                       "telemetry.sdk.version", "telemetry.distro.name",
                                       "telemetry.distro.version"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        if (wf_str_eq_c(k, keys[i])) {
            return true;
        }
    }
    return false;
}

static bool same_value(const st_value_t *a, const st_value_t *b, wf_buf_t *ta, wf_buf_t *tb)
{
    wf_buf_reset(ta);
    wf_buf_reset(tb);
    col_spanval_json(ta, a);
    col_spanval_json(tb, b);
    return a->type == b->type && ta->len == tb->len && memcmp(ta->data, tb->data, ta->len) == 0;
}

/* Jaeger's library adjuster: SDK attributes set on a span belong to its resource. One that the
 * resource already has with another value stays on the span. */
static void move_library_attrs(wf_arena_t *arena, st_span_t *sp, wf_buf_t *ta, wf_buf_t *tb)
{
    size_t n_move = 0;
    for (size_t i = 0; i < sp->n_attrs; i++) {
        n_move += is_library_key(sp->attrs[i].key);
    }
    if (n_move == 0) {
        return;
    }
    st_attr_t *attrs = wf_arena_alloc(arena, sp->n_attrs * sizeof(*attrs));
    st_attr_t *res = wf_arena_alloc(arena, (sp->n_resource_attrs + n_move) * sizeof(*res));
    if (sp->n_resource_attrs > 0) {
        memcpy(res, sp->resource_attrs, sp->n_resource_attrs * sizeof(*res));
    }
    size_t na = 0, nr = sp->n_resource_attrs;
    for (size_t i = 0; i < sp->n_attrs; i++) {
        const st_attr_t *a = &sp->attrs[i];
        const st_attr_t *have = NULL;
        for (size_t j = 0; is_library_key(a->key) && j < nr && have == NULL; j++) {
            have = wf_str_eq(res[j].key, a->key) ? &res[j] : NULL;
        }
        if (!is_library_key(a->key) ||
            (have != NULL && !same_value(&have->value, &a->value, ta, tb))) {
            attrs[na++] = *a;
        } else if (have == NULL) {
            res[nr++] = *a;
        }
    }
    sp->attrs = attrs;
    sp->n_attrs = na;
    sp->resource_attrs = res;
    sp->n_resource_attrs = nr;
}

static void put_str(wf_buf_t *b, wf_str_t s)
{
    wf_buf_printf(b, "%zu:", s.len);
    wf_buf_append(b, s.p, s.len);
}

static void put_attrs(wf_buf_t *b, const st_attr_t *a, size_t n)
{
    wf_buf_printf(b, "[%zu", n);
    for (size_t i = 0; i < n; i++) {
        put_str(b, a[i].key);
        wf_buf_printf(b, "%d", (int)a[i].value.type);
        col_spanval_json(b, &a[i].value);
    }
    wf_buf_putc(b, ']');
}

/* Every field of a span in an unambiguous byte string: equal strings, identical spans. */
static void span_key(wf_buf_t *b, const st_span_t *sp)
{
    wf_buf_reset(b);
    wf_buf_append(b, sp->trace_id, 16);
    wf_buf_append(b, sp->span_id, 8);
    wf_buf_append(b, sp->parent_span_id, 8);
    wf_buf_printf(b, "%" PRIu32 ",%d,%" PRId64 ",%" PRId64 ",%d", sp->flags, (int)sp->kind,
                  sp->start_ns, sp->end_ns, (int)sp->status_code);
    put_str(b, sp->trace_state);
    put_str(b, sp->name);
    put_str(b, sp->status_message);
    put_str(b, sp->service);
    put_str(b, sp->scope_name);
    put_str(b, sp->scope_version);
    put_attrs(b, sp->resource_attrs, sp->n_resource_attrs);
    put_attrs(b, sp->attrs, sp->n_attrs);
    for (size_t i = 0; i < sp->n_events; i++) {
        wf_buf_printf(b, "e%" PRId64, sp->events[i].time_ns);
        put_str(b, sp->events[i].name);
        put_attrs(b, sp->events[i].attrs, sp->events[i].n_attrs);
    }
    for (size_t i = 0; i < sp->n_links; i++) {
        wf_buf_putc(b, 'l');
        wf_buf_append(b, sp->links[i].trace_id, 16);
        wf_buf_append(b, sp->links[i].span_id, 8);
        put_str(b, sp->links[i].trace_state);
        put_attrs(b, sp->links[i].attrs, sp->links[i].n_attrs);
    }
}

static void dedupe(st_span_list_t *l)
{
    wf_buf_t *keys = wf_calloc(l->n, sizeof(*keys));
    uint64_t *hashes = wf_calloc(l->n, sizeof(*hashes));
    size_t kept = 0;
    for (size_t i = 0; i < l->n; i++) {
        wf_buf_t *k = &keys[kept];
        span_key(k, &l->spans[i]);
        uint64_t h = wf_hash64(k->data, k->len, 0);
        bool dup = false;
        for (size_t j = 0; j < kept && !dup; j++) {
            dup = hashes[j] == h && keys[j].len == k->len &&
                  memcmp(keys[j].data, k->data, k->len) == 0;
        }
        if (dup) {
            continue;
        }
        hashes[kept] = h;
        l->spans[kept++] = l->spans[i];
    }
    for (size_t i = 0; i < l->n; i++) {
        wf_buf_free(&keys[i]);
    }
    l->n = kept;
    wf_free(keys);
    wf_free(hashes);
}

void col_trace_adjust(st_span_list_t *l)
{
    wf_buf_t ta = WF_BUF_INIT, tb = WF_BUF_INIT;
    uniquify_server_ids(l);
    for (size_t i = 0; i < l->n; i++) {
        st_span_t *sp = &l->spans[i];
        sort_span(&l->arena, sp);
    }
    dedupe(l);
    for (size_t i = 0; i < l->n; i++) {
        st_span_t *sp = &l->spans[i];
        sp->attrs = fix_ips(&l->arena, sp->attrs, sp->n_attrs);
        sp->resource_attrs = fix_ips(&l->arena, sp->resource_attrs, sp->n_resource_attrs);
        move_library_attrs(&l->arena, sp, &ta, &tb);
    }
    wf_buf_free(&ta);
    wf_buf_free(&tb);
}
