/*
 * st_span_codec.c - span validation, the log record and the sealed block formats (see
 * st_span_codec.h for the layouts and why they look like this).
 *
 * One record encoder serves both formats: in the log every string is written inline; in a block
 * it is a reference into the block's dictionary. The decoders mirror that and are the only code
 * that reads stored span bytes, so they treat their input as hostile.
 */
#include "st_span_codec.h"

#include "st_internal.h"

#include "wf_alloc.h"
#include "wf_err.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#define FORMAT_VERSION 1

enum { V_STR = 0, V_FALSE = 1, V_TRUE = 2, V_INT = 3, V_DOUBLE = 4, V_BYTES = 5, V_ARRAY = 6 };

/* Presence bits of a record, after kind (3 bits) and status (2 bits). */
enum {
    R_TRACE_STATE = 1 << 5,
    R_FLAGS = 1 << 6,
    R_STATUS_MSG = 1 << 7,
    R_SCOPE = 1 << 8,
    R_EVENTS = 1 << 9,
    R_LINKS = 1 << 10,
    R_ATTRS = 1 << 11,
};

/* ---- validation ------------------------------------------------------------------------- */

static bool zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] != 0) {
            return false;
        }
    }
    return true;
}

/* Most span strings are ASCII: checking 8 bytes a step spares the UTF-8 decoder. */
static bool ascii(wf_str_t s)
{
    size_t i = 0;
    for (; i + 8 <= s.len; i += 8) {
        uint64_t v;
        memcpy(&v, s.p + i, 8);
        if (v & 0x8080808080808080ULL) {
            return false;
        }
    }
    for (; i < s.len; i++) {
        if ((unsigned char)s.p[i] & 0x80) {
            return false;
        }
    }
    return true;
}

static int check_str(wf_str_t s, size_t *budget)
{
    if (s.len > ST__SPAN_MAX_STR) {
        return ST_E_SPAN_LIMIT;
    }
    if (s.len > 0 && s.p == NULL) {
        return ST_E_SPAN_INVALID;
    }
    if (!ascii(s) && !wf_utf8_valid(s.p, s.len)) {
        return ST_E_SPAN_INVALID;
    }
    if (s.len + 4 > *budget) {
        return ST_E_SPAN_LIMIT;
    }
    *budget -= s.len + 4;
    return 0;
}

static int check_value(const st_value_t *v, int depth, size_t *budget)
{
    switch (v->type) {
    case ST_VAL_STRING:
        return check_str(v->u.s, budget);
    case ST_VAL_BYTES:
        if (v->u.s.len > ST__SPAN_MAX_STR || v->u.s.len + 4 > *budget) {
            return ST_E_SPAN_LIMIT;
        }
        if (v->u.s.len > 0 && v->u.s.p == NULL) {
            return ST_E_SPAN_INVALID;
        }
        *budget -= v->u.s.len + 4;
        return 0;
    case ST_VAL_BOOL:
    case ST_VAL_INT:
    case ST_VAL_DOUBLE:
        if (*budget < 10) {
            return ST_E_SPAN_LIMIT;
        }
        *budget -= 10;
        return 0;
    case ST_VAL_ARRAY:
        if (depth >= ST__SPAN_MAX_DEPTH || v->u.arr.n > ST__SPAN_MAX_ARRAY) {
            return ST_E_SPAN_LIMIT;
        }
        if (v->u.arr.n > 0 && v->u.arr.items == NULL) {
            return ST_E_SPAN_INVALID;
        }
        for (size_t i = 0; i < v->u.arr.n; i++) {
            int rc = check_value(&v->u.arr.items[i], depth + 1, budget);
            if (rc != 0) {
                return rc;
            }
        }
        return 0;
    }
    return ST_E_SPAN_INVALID;
}

static int check_attrs(const st_attr_t *a, size_t n, size_t *budget)
{
    if (n > ST__SPAN_MAX_ATTRS) {
        return ST_E_SPAN_LIMIT;
    }
    if (n > 0 && a == NULL) {
        return ST_E_SPAN_INVALID;
    }
    for (size_t i = 0; i < n; i++) {
        int rc = check_str(a[i].key, budget);
        if (rc == 0) {
            rc = check_value(&a[i].value, 0, budget);
        }
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

int st__span_check(const st_span_t *sp)
{
    if (zero(sp->trace_id, 16) || zero(sp->span_id, 8)) {
        return ST_E_SPAN_INVALID;
    }
    if (sp->start_ns < 0) {
        return ST_E_TIMESTAMP;
    }
    if (sp->end_ns < sp->start_ns) {
        return ST_E_SPAN_INVALID;
    }
    if ((unsigned)sp->kind > ST_SPAN_KIND_CONSUMER || (unsigned)sp->status_code > ST_STATUS_ERROR) {
        return ST_E_SPAN_INVALID;
    }
    if (sp->n_events > ST__SPAN_MAX_EVENTS || sp->n_links > ST__SPAN_MAX_LINKS) {
        return ST_E_SPAN_LIMIT;
    }
    if ((sp->n_events > 0 && sp->events == NULL) || (sp->n_links > 0 && sp->links == NULL)) {
        return ST_E_SPAN_INVALID;
    }
    size_t budget = ST__SPAN_MAX_BYTES;
    int rc = 0;
    wf_str_t strs[] = {sp->trace_state, sp->name,       sp->status_message,
                       sp->service,     sp->scope_name, sp->scope_version};
    for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]) && rc == 0; i++) {
        rc = check_str(strs[i], &budget);
    }
    if (rc == 0) {
        rc = check_attrs(sp->resource_attrs, sp->n_resource_attrs, &budget);
    }
    if (rc == 0) {
        rc = check_attrs(sp->attrs, sp->n_attrs, &budget);
    }
    for (size_t i = 0; i < sp->n_events && rc == 0; i++) {
        rc = check_str(sp->events[i].name, &budget);
        if (rc == 0) {
            rc = check_attrs(sp->events[i].attrs, sp->events[i].n_attrs, &budget);
        }
    }
    for (size_t i = 0; i < sp->n_links && rc == 0; i++) {
        if (zero(sp->links[i].trace_id, 16) || zero(sp->links[i].span_id, 8)) {
            rc = ST_E_SPAN_INVALID;
            break;
        }
        rc = check_str(sp->links[i].trace_state, &budget);
        if (rc == 0) {
            rc = check_attrs(sp->links[i].attrs, sp->links[i].n_attrs, &budget);
        }
    }
    return rc;
}

wf_str_t st__span_service(const st_span_t *sp)
{
    return sp->service.len > 0 ? sp->service : WF_STR_LIT("unknown_service");
}

/* ---- deep copy ---------------------------------------------------------------------------- */

static wf_str_t copy_str(wf_arena_t *a, wf_str_t s)
{
    if (s.len == 0) {
        return (wf_str_t){"", 0};
    }
    return (wf_str_t){wf_arena_strndup(a, s.p, s.len), s.len};
}

static void copy_value(wf_arena_t *a, st_value_t *dst, const st_value_t *src)
{
    *dst = *src;
    if (src->type == ST_VAL_STRING || src->type == ST_VAL_BYTES) {
        dst->u.s = copy_str(a, src->u.s);
    } else if (src->type == ST_VAL_ARRAY) {
        st_value_t *items = wf_arena_alloc(a, src->u.arr.n * sizeof(*items));
        for (size_t i = 0; i < src->u.arr.n; i++) {
            copy_value(a, &items[i], &src->u.arr.items[i]);
        }
        dst->u.arr.items = items;
    }
}

static const st_attr_t *copy_attrs(wf_arena_t *a, const st_attr_t *src, size_t n)
{
    if (n == 0) {
        return NULL;
    }
    st_attr_t *d = wf_arena_alloc(a, n * sizeof(*d));
    for (size_t i = 0; i < n; i++) {
        d[i].key = copy_str(a, src[i].key);
        copy_value(a, &d[i].value, &src[i].value);
    }
    return d;
}

void st__span_copy(wf_arena_t *a, st_span_t *dst, const st_span_t *src)
{
    *dst = *src;
    dst->trace_state = copy_str(a, src->trace_state);
    dst->name = copy_str(a, src->name);
    dst->status_message = copy_str(a, src->status_message);
    dst->service = copy_str(a, st__span_service(src));
    dst->scope_name = copy_str(a, src->scope_name);
    dst->scope_version = copy_str(a, src->scope_version);
    dst->resource_attrs = copy_attrs(a, src->resource_attrs, src->n_resource_attrs);
    dst->attrs = copy_attrs(a, src->attrs, src->n_attrs);
    dst->events = NULL;
    dst->links = NULL;
    if (src->n_events > 0) {
        st_span_event_t *ev = wf_arena_alloc(a, src->n_events * sizeof(*ev));
        for (size_t i = 0; i < src->n_events; i++) {
            ev[i].time_ns = src->events[i].time_ns;
            ev[i].name = copy_str(a, src->events[i].name);
            ev[i].attrs = copy_attrs(a, src->events[i].attrs, src->events[i].n_attrs);
            ev[i].n_attrs = src->events[i].n_attrs;
        }
        dst->events = ev;
    }
    if (src->n_links > 0) {
        st_span_link_t *ln = wf_arena_alloc(a, src->n_links * sizeof(*ln));
        for (size_t i = 0; i < src->n_links; i++) {
            ln[i] = src->links[i];
            ln[i].trace_state = copy_str(a, src->links[i].trace_state);
            ln[i].attrs = copy_attrs(a, src->links[i].attrs, src->links[i].n_attrs);
        }
        dst->links = ln;
    }
}

/* ---- value text --------------------------------------------------------------------------- */

static void put_json_str(wf_buf_t *out, wf_str_t s)
{
    wf_buf_putc(out, '"');
    for (size_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.p[i];
        if (c == '"' || c == '\\') {
            wf_buf_putc(out, '\\');
            wf_buf_putc(out, c);
        } else if (c < 0x20) {
            wf_buf_printf(out, "\\u%04x", c);
        } else {
            wf_buf_putc(out, c);
        }
    }
    wf_buf_putc(out, '"');
}

static void put_double(wf_buf_t *out, double d)
{
    if (isnan(d)) {
        wf_buf_puts(out, "NaN");
        return;
    }
    if (isinf(d)) {
        wf_buf_puts(out, d > 0 ? "+Inf" : "-Inf");
        return;
    }
    char tmp[40];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof(tmp), "%.*g", prec, d);
        if (strtod(tmp, NULL) == d) {
            break;
        }
    }
    wf_buf_puts(out, tmp);
}

static void value_text(wf_buf_t *out, const st_value_t *v, bool in_array)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    switch (v->type) {
    case ST_VAL_STRING:
        if (in_array) {
            put_json_str(out, v->u.s);
        } else {
            wf_buf_append(out, v->u.s.p, v->u.s.len);
        }
        break;
    case ST_VAL_BOOL:
        wf_buf_puts(out, v->u.b ? "true" : "false");
        break;
    case ST_VAL_INT:
        wf_buf_printf(out, "%" PRId64, v->u.i);
        break;
    case ST_VAL_DOUBLE:
        put_double(out, v->u.d);
        break;
    case ST_VAL_BYTES: {
        if (in_array) {
            wf_buf_putc(out, '"');
        }
        const uint8_t *p = (const uint8_t *)v->u.s.p;
        size_t n = v->u.s.len;
        for (size_t i = 0; i < n; i += 3) {
            uint32_t w = (uint32_t)p[i] << 16;
            w |= i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0;
            w |= i + 2 < n ? p[i + 2] : 0;
            wf_buf_putc(out, b64[(w >> 18) & 63]);
            wf_buf_putc(out, b64[(w >> 12) & 63]);
            wf_buf_putc(out, i + 1 < n ? b64[(w >> 6) & 63] : '=');
            wf_buf_putc(out, i + 2 < n ? b64[w & 63] : '=');
        }
        if (in_array) {
            wf_buf_putc(out, '"');
        }
        break;
    }
    case ST_VAL_ARRAY:
        wf_buf_putc(out, '[');
        for (size_t i = 0; i < v->u.arr.n; i++) {
            if (i > 0) {
                wf_buf_putc(out, ',');
            }
            value_text(out, &v->u.arr.items[i], true);
        }
        wf_buf_putc(out, ']');
        break;
    }
}

void st__span_value_text(wf_buf_t *out, const st_value_t *v)
{
    value_text(out, v, false);
}

/* ---- string dictionary (block encoder) ---------------------------------------------------- */

typedef struct {
    const char *p;
    size_t len;
    uint64_t h;
    uint32_t count;
    uint32_t idx; /* final reference, frequency order */
} dent_t;

typedef struct {
    dent_t *e;
    size_t n, ecap;
    uint32_t *slots; /* entry index + 1, 0 = empty */
    size_t cap;      /* power of two */
} dict_t;

static void dict_grow(dict_t *d)
{
    size_t cap = d->cap ? d->cap * 2 : 1024;
    uint32_t *slots = wf_calloc(cap, sizeof(*slots));
    for (size_t i = 0; i < d->n; i++) {
        size_t j = d->e[i].h & (cap - 1);
        while (slots[j] != 0) {
            j = (j + 1) & (cap - 1);
        }
        slots[j] = (uint32_t)i + 1;
    }
    wf_free(d->slots);
    d->slots = slots;
    d->cap = cap;
}

/* Find s (adding it when add is set); returns its entry. */
static dent_t *dict_get(dict_t *d, wf_str_t s, bool add)
{
    if (d->cap == 0 || (d->n + 1) * 2 > d->cap) {
        dict_grow(d);
    }
    uint64_t h = wf_hash64(s.p, s.len, 0);
    size_t j = h & (d->cap - 1);
    while (d->slots[j] != 0) {
        dent_t *e = &d->e[d->slots[j] - 1];
        if (e->h == h && e->len == s.len && (s.len == 0 || memcmp(e->p, s.p, s.len) == 0)) {
            return e;
        }
        j = (j + 1) & (d->cap - 1);
    }
    WF_ASSERT(add);
    if (d->n == d->ecap) {
        d->ecap = d->ecap ? d->ecap * 2 : 512;
        d->e = wf_realloc(d->e, d->ecap * sizeof(*d->e));
    }
    dent_t *e = &d->e[d->n];
    *e = (dent_t){s.p, s.len, h, 0, 0};
    d->slots[j] = (uint32_t)++d->n;
    return e;
}

static void dict_free(dict_t *d)
{
    wf_free(d->e);
    wf_free(d->slots);
}

/* ---- record encoder ------------------------------------------------------------------------ */

/* ---- bloom items ---------------------------------------------------------------------------- */

static uint64_t item_hash(const wf_buf_t *b)
{
    return wf_hash64(b->data, b->len, 0x5eed);
}

uint64_t st__span_item_service(wf_str_t service, wf_buf_t *tmp)
{
    wf_buf_reset(tmp);
    wf_buf_putc(tmp, 's');
    wf_buf_append(tmp, service.p, service.len);
    return item_hash(tmp);
}

uint64_t st__span_item_operation(wf_str_t service, wf_str_t op, wf_buf_t *tmp)
{
    wf_buf_reset(tmp);
    wf_buf_putc(tmp, 'o');
    wf_buf_append(tmp, service.p, service.len);
    wf_buf_putc(tmp, 0);
    wf_buf_append(tmp, op.p, op.len);
    return item_hash(tmp);
}

uint64_t st__span_item_tag(wf_str_t key, wf_str_t text, wf_buf_t *tmp)
{
    wf_buf_reset(tmp);
    wf_buf_putc(tmp, 't');
    wf_buf_append(tmp, key.p, key.len);
    wf_buf_putc(tmp, 0);
    wf_buf_append(tmp, text.p, text.len);
    return item_hash(tmp);
}

static uint64_t item_tag_value(wf_str_t key, const st_value_t *v, wf_buf_t *tmp)
{
    wf_buf_reset(tmp);
    wf_buf_putc(tmp, 't');
    wf_buf_append(tmp, key.p, key.len);
    wf_buf_putc(tmp, 0);
    st__span_value_text(tmp, v);
    return item_hash(tmp);
}

/* A set of 64-bit hashes (0 is kept by a flag: 0 marks empty slots). */
typedef struct {
    uint64_t *slot;
    size_t n, cap;
    bool has_zero;
} u64set_t;

static void u64set_add(u64set_t *hs, uint64_t h)
{
    if (h == 0) {
        hs->has_zero = true;
        return;
    }
    if ((hs->n + 1) * 2 > hs->cap) {
        size_t cap = hs->cap ? hs->cap * 2 : 4096;
        uint64_t *slot = wf_calloc(cap, sizeof(*slot));
        for (size_t i = 0; i < hs->cap; i++) {
            if (hs->slot[i] != 0) {
                size_t j = hs->slot[i] & (cap - 1);
                while (slot[j] != 0) {
                    j = (j + 1) & (cap - 1);
                }
                slot[j] = hs->slot[i];
            }
        }
        wf_free(hs->slot);
        hs->slot = slot;
        hs->cap = cap;
    }
    size_t j = h & (hs->cap - 1);
    while (hs->slot[j] != 0) {
        if (hs->slot[j] == h) {
            return;
        }
        j = (j + 1) & (hs->cap - 1);
    }
    hs->slot[j] = h;
    hs->n++;
}

/*
 * A set of exact 128-bit keys: (dictionary entry of the key, value type, dictionary entry or bits
 * of the value). Deduplicating on these first means an attribute that repeats over thousands of
 * spans is printed and hashed for the bloom filter once per block, not once per span.
 */
typedef struct {
    uint64_t (*slot)[2];
    bool *used;
    size_t n, cap;
} pairset_t;

static size_t pair_pos(uint64_t a, uint64_t b, size_t cap)
{
    uint64_t h = (a * 0x9e3779b97f4a7c15ULL) ^ (b * 0xc2b2ae3d27d4eb4fULL);
    return (size_t)((h ^ (h >> 29)) & (cap - 1));
}

/* True when (a, b) was not in the set (and is now). */
static bool pairset_add(pairset_t *ps, uint64_t a, uint64_t b)
{
    if ((ps->n + 1) * 2 > ps->cap) {
        size_t cap = ps->cap ? ps->cap * 2 : 4096;
        uint64_t(*slot)[2] = wf_malloc(cap * sizeof(*slot));
        bool *used = wf_calloc(cap, sizeof(*used));
        for (size_t i = 0; i < ps->cap; i++) {
            if (ps->used[i]) {
                size_t j = pair_pos(ps->slot[i][0], ps->slot[i][1], cap);
                while (used[j]) {
                    j = (j + 1) & (cap - 1);
                }
                used[j] = true;
                slot[j][0] = ps->slot[i][0];
                slot[j][1] = ps->slot[i][1];
            }
        }
        wf_free(ps->slot);
        wf_free(ps->used);
        ps->slot = slot;
        ps->used = used;
        ps->cap = cap;
    }
    size_t j = pair_pos(a, b, ps->cap);
    while (ps->used[j]) {
        if (ps->slot[j][0] == a && ps->slot[j][1] == b) {
            return false;
        }
        j = (j + 1) & (ps->cap - 1);
    }
    ps->used[j] = true;
    ps->slot[j][0] = a;
    ps->slot[j][1] = b;
    ps->n++;
    return true;
}

/* ---- record encoder ------------------------------------------------------------------------ */

typedef struct {
    uint32_t *v;
    size_t n, cap, pos;
} memo_t;

/*
 * The previous span's attribute at one position of its list (block counting pass). Spans of one
 * reporter list the same keys in the same order, and many values repeat (method, component,
 * mesh id, ...): comparing with the previous span's bytes at the same position finds their
 * dictionary entries without hashing them again, and a pair seen there is already in the pair
 * set. A mismatch costs one short memcmp and falls back to the dictionary.
 */
typedef struct {
    uint32_t key;         /* dictionary entry of the key */
    st_value_type_t type; /* ST_VAL_ARRAY: nothing cached */
    uint64_t val;         /* dictionary entry of a string or bytes value, else the value bits */
} last_attr_t;

#define LAST_ATTRS 64

typedef struct {
    wf_buf_t *out;
    dict_t *dict;  /* NULL: inline strings (log); else references (block) */
    bool counting; /* block pass 1: count strings and collect bloom items */
    memo_t *memo;  /* dictionary entry of each string of pass 1, replayed in pass 2 */
    pairset_t *pairs;
    u64set_t *items;
    wf_buf_t *tmp;
    last_attr_t *last; /* LAST_ATTRS entries for span attribute lists, or NULL */
} enc_t;

/* Count one more use of dictionary entry ei in the counting pass (what put_str does after its
 * lookup). */
static uint32_t count_ref(enc_t *e, uint32_t ei)
{
    e->dict->e[ei].count++;
    memo_t *m = e->memo;
    if (m != NULL) {
        if (m->n == m->cap) {
            m->cap = m->cap ? m->cap * 2 : 65536;
            m->v = wf_realloc(m->v, m->cap * sizeof(*m->v));
        }
        m->v[m->n++] = ei;
    }
    return ei;
}

/* True when dictionary entry ei holds the bytes of s. */
static bool dict_is(const enc_t *e, uint32_t ei, wf_str_t s)
{
    const dent_t *d = &e->dict->e[ei];
    return d->len == s.len && (s.len == 0 || memcmp(d->p, s.p, s.len) == 0);
}

/* Write (or count) s; in a block returns its dictionary entry. */
static uint32_t put_str(enc_t *e, wf_str_t s)
{
    if (e->dict == NULL) {
        wf_buf_put_uvarint(e->out, s.len);
        wf_buf_append(e->out, s.p, s.len);
        return 0;
    }
    memo_t *m = e->memo;
    uint32_t ei;
    if (e->counting) {
        return count_ref(e, (uint32_t)(dict_get(e->dict, s, true) - e->dict->e));
    }
    if (m != NULL) {
        WF_ASSERT(m->pos < m->n);
        ei = m->v[m->pos++];
    } else {
        ei = (uint32_t)(dict_get(e->dict, s, false) - e->dict->e);
    }
    wf_buf_put_uvarint(e->out, e->dict->e[ei].idx);
    return ei;
}

static void put_u(enc_t *e, uint64_t v)
{
    if (!e->counting) {
        wf_buf_put_uvarint(e->out, v);
    }
}

static void put_s(enc_t *e, int64_t v)
{
    if (!e->counting) {
        wf_buf_put_svarint(e->out, v);
    }
}

static void put_raw(enc_t *e, const void *p, size_t n)
{
    if (!e->counting) {
        wf_buf_append(e->out, p, n);
    }
}

static void put_value(enc_t *e, const st_value_t *v)
{
    switch (v->type) {
    case ST_VAL_STRING:
        put_u(e, V_STR);
        put_str(e, v->u.s);
        break;
    case ST_VAL_BOOL:
        put_u(e, v->u.b ? V_TRUE : V_FALSE);
        break;
    case ST_VAL_INT:
        put_u(e, V_INT);
        put_s(e, v->u.i);
        break;
    case ST_VAL_DOUBLE: {
        uint64_t bits;
        memcpy(&bits, &v->u.d, 8);
        put_u(e, V_DOUBLE);
        if (!e->counting) {
            wf_buf_put_u64le(e->out, bits);
        }
        break;
    }
    case ST_VAL_BYTES:
        put_u(e, V_BYTES);
        put_str(e, v->u.s);
        break;
    case ST_VAL_ARRAY:
        put_u(e, V_ARRAY);
        put_u(e, v->u.arr.n);
        for (size_t i = 0; i < v->u.arr.n; i++) {
            put_value(e, &v->u.arr.items[i]);
        }
        break;
    }
}

/*
 * Counting pass over an attribute list: strings into the dictionary, items into the bloom set.
 * last: the previous list's attributes by position (span attributes), or NULL.
 */
static void count_attrs(enc_t *e, const st_attr_t *a, size_t n, last_attr_t *last)
{
    for (size_t i = 0; i < n; i++) {
        const st_value_t *v = &a[i].value;
        last_attr_t *c = last != NULL && i < LAST_ATTRS ? &last[i] : NULL;
        bool key_same = c != NULL && c->type != ST_VAL_ARRAY && dict_is(e, c->key, a[i].key);
        uint64_t ki = key_same ? count_ref(e, c->key) : put_str(e, a[i].key);
        bool type_same = key_same && c->type == v->type;
        uint64_t tag = ki | (uint64_t)v->type << 32, val = 0;
        switch (v->type) {
        case ST_VAL_STRING:
        case ST_VAL_BYTES:
            val = type_same && dict_is(e, (uint32_t)c->val, v->u.s) ? count_ref(e, (uint32_t)c->val)
                                                                    : put_str(e, v->u.s);
            break;
        case ST_VAL_BOOL:
            val = v->u.b;
            break;
        case ST_VAL_INT:
            val = (uint64_t)v->u.i;
            break;
        case ST_VAL_DOUBLE:
            memcpy(&val, &v->u.d, 8);
            break;
        case ST_VAL_ARRAY:
            put_value(e, v);
            break;
        }
        /* The same pair as the previous list's here: it is in the pair set already. */
        bool pair_seen = type_same && v->type != ST_VAL_ARRAY && c->val == val;
        if (v->type == ST_VAL_ARRAY || (!pair_seen && pairset_add(e->pairs, tag, val))) {
            u64set_add(e->items, item_tag_value(a[i].key, v, e->tmp));
        }
        if (c != NULL) {
            *c = (last_attr_t){(uint32_t)ki, v->type, val};
        }
    }
}

static void put_attrs_at(enc_t *e, const st_attr_t *a, size_t n, last_attr_t *last)
{
    if (e->counting) {
        count_attrs(e, a, n, last);
        return;
    }
    put_u(e, n);
    for (size_t i = 0; i < n; i++) {
        put_str(e, a[i].key);
        put_value(e, &a[i].value);
    }
}

static void put_attrs(enc_t *e, const st_attr_t *a, size_t n)
{
    put_attrs_at(e, a, n, NULL);
}

static uint64_t record_bits(const st_span_t *sp)
{
    uint64_t bits = (uint64_t)sp->kind | (uint64_t)sp->status_code << 3;
    bits |= sp->trace_state.len ? R_TRACE_STATE : 0;
    bits |= sp->flags ? R_FLAGS : 0;
    bits |= sp->status_message.len ? R_STATUS_MSG : 0;
    bits |= (sp->scope_name.len || sp->scope_version.len) ? R_SCOPE : 0;
    bits |= sp->n_events ? R_EVENTS : 0;
    bits |= sp->n_links ? R_LINKS : 0;
    bits |= sp->n_attrs ? R_ATTRS : 0;
    return bits;
}

/* Everything of a record after ids, service, resource and times: shared by both formats. */
static void put_record_tail(enc_t *e, const st_span_t *sp, uint64_t bits)
{
    if (bits & R_TRACE_STATE) {
        put_str(e, sp->trace_state);
    }
    if (bits & R_FLAGS) {
        put_u(e, sp->flags);
    }
    if (bits & R_STATUS_MSG) {
        put_str(e, sp->status_message);
    }
    if (bits & R_SCOPE) {
        put_str(e, sp->scope_name);
        put_str(e, sp->scope_version);
    }
    if (bits & R_ATTRS) {
        put_attrs_at(e, sp->attrs, sp->n_attrs, e->last);
    }
    if (bits & R_EVENTS) {
        put_u(e, sp->n_events);
        for (size_t i = 0; i < sp->n_events; i++) {
            put_s(e, (int64_t)((uint64_t)sp->events[i].time_ns - (uint64_t)sp->start_ns));
            put_str(e, sp->events[i].name);
            put_attrs(e, sp->events[i].attrs, sp->events[i].n_attrs);
        }
    }
    if (bits & R_LINKS) {
        put_u(e, sp->n_links);
        for (size_t i = 0; i < sp->n_links; i++) {
            put_raw(e, sp->links[i].trace_id, 16);
            put_raw(e, sp->links[i].span_id, 8);
            put_str(e, sp->links[i].trace_state);
            put_attrs(e, sp->links[i].attrs, sp->links[i].n_attrs);
        }
    }
}

/* ---- record decoder ------------------------------------------------------------------------ */

typedef struct {
    wf_rd_t r;
    const wf_str_t *dict; /* NULL: inline strings */
    size_t n_dict;
    wf_arena_t *a;
} dec_t;

#define TRY(x)                                                                                     \
    do {                                                                                           \
        if ((x) != 0) {                                                                            \
            return WF_E_CORRUPT;                                                                   \
        }                                                                                          \
    } while (0)

static int get_u(dec_t *d, uint64_t *v)
{
    return wf_rd_uvarint(&d->r, v) == 0 ? 0 : WF_E_CORRUPT;
}

/* A count of items that each take at least min_bytes of the remaining input. */
static int get_count(dec_t *d, size_t min_bytes, size_t *n)
{
    uint64_t v;
    TRY(get_u(d, &v));
    if (v > wf_rd_left(&d->r) / min_bytes) {
        return WF_E_CORRUPT;
    }
    *n = (size_t)v;
    return 0;
}

static int get_str(dec_t *d, wf_str_t *s)
{
    uint64_t v;
    TRY(get_u(d, &v));
    if (d->dict != NULL) {
        if (v >= d->n_dict) {
            return WF_E_CORRUPT;
        }
        *s = d->dict[v];
        return 0;
    }
    const uint8_t *p;
    if (v > wf_rd_left(&d->r) || wf_rd_bytes(&d->r, (size_t)v, &p) != 0) {
        return WF_E_CORRUPT;
    }
    *s = (wf_str_t){v ? (const char *)p : "", (size_t)v};
    return 0;
}

static int get_value(dec_t *d, st_value_t *v, int depth)
{
    uint64_t tag;
    TRY(get_u(d, &tag));
    switch (tag) {
    case V_STR:
        v->type = ST_VAL_STRING;
        return get_str(d, &v->u.s);
    case V_BYTES:
        v->type = ST_VAL_BYTES;
        return get_str(d, &v->u.s);
    case V_FALSE:
    case V_TRUE:
        v->type = ST_VAL_BOOL;
        v->u.b = tag == V_TRUE;
        return 0;
    case V_INT:
        v->type = ST_VAL_INT;
        return wf_rd_svarint(&d->r, &v->u.i) == 0 ? 0 : WF_E_CORRUPT;
    case V_DOUBLE: {
        uint64_t bits;
        TRY(wf_rd_u64le(&d->r, &bits));
        v->type = ST_VAL_DOUBLE;
        memcpy(&v->u.d, &bits, 8);
        return 0;
    }
    case V_ARRAY: {
        size_t n;
        if (depth >= ST__SPAN_MAX_DEPTH) {
            return WF_E_CORRUPT;
        }
        TRY(get_count(d, 1, &n));
        st_value_t *items = n ? wf_arena_alloc(d->a, n * sizeof(*items)) : NULL;
        for (size_t i = 0; i < n; i++) {
            TRY(get_value(d, &items[i], depth + 1));
        }
        v->type = ST_VAL_ARRAY;
        v->u.arr.items = items;
        v->u.arr.n = n;
        return 0;
    }
    default:
        return WF_E_CORRUPT;
    }
}

static int get_attrs(dec_t *d, const st_attr_t **out, size_t *n_out)
{
    size_t n;
    TRY(get_count(d, 2, &n));
    st_attr_t *a = n ? wf_arena_alloc(d->a, n * sizeof(*a)) : NULL;
    for (size_t i = 0; i < n; i++) {
        TRY(get_str(d, &a[i].key));
        TRY(get_value(d, &a[i].value, 0));
    }
    *out = a;
    *n_out = n;
    return 0;
}

static int get_ids(dec_t *d, uint8_t *dst, size_t n)
{
    const uint8_t *p;
    TRY(wf_rd_bytes(&d->r, n, &p));
    memcpy(dst, p, n);
    return 0;
}

static int get_record_tail(dec_t *d, st_span_t *sp, uint64_t bits)
{
    sp->kind = (st_span_kind_t)(bits & 7);
    sp->status_code = (st_status_code_t)((bits >> 3) & 3);
    if (sp->kind > ST_SPAN_KIND_CONSUMER || sp->status_code > ST_STATUS_ERROR ||
        bits >= (R_ATTRS << 1)) {
        return WF_E_CORRUPT;
    }
    sp->trace_state = (wf_str_t){"", 0};
    sp->status_message = (wf_str_t){"", 0};
    sp->scope_name = (wf_str_t){"", 0};
    sp->scope_version = (wf_str_t){"", 0};
    if (bits & R_TRACE_STATE) {
        TRY(get_str(d, &sp->trace_state));
    }
    if (bits & R_FLAGS) {
        uint64_t f;
        TRY(get_u(d, &f));
        if (f > UINT32_MAX) {
            return WF_E_CORRUPT;
        }
        sp->flags = (uint32_t)f;
    }
    if (bits & R_STATUS_MSG) {
        TRY(get_str(d, &sp->status_message));
    }
    if (bits & R_SCOPE) {
        TRY(get_str(d, &sp->scope_name));
        TRY(get_str(d, &sp->scope_version));
    }
    if (bits & R_ATTRS) {
        TRY(get_attrs(d, &sp->attrs, &sp->n_attrs));
    }
    if (bits & R_EVENTS) {
        size_t n;
        TRY(get_count(d, 3, &n));
        st_span_event_t *ev = wf_arena_alloc(d->a, (n ? n : 1) * sizeof(*ev));
        for (size_t i = 0; i < n; i++) {
            int64_t off;
            TRY(wf_rd_svarint(&d->r, &off));
            ev[i].time_ns = (int64_t)((uint64_t)sp->start_ns + (uint64_t)off);
            TRY(get_str(d, &ev[i].name));
            TRY(get_attrs(d, &ev[i].attrs, &ev[i].n_attrs));
        }
        sp->events = ev;
        sp->n_events = n;
    }
    if (bits & R_LINKS) {
        size_t n;
        TRY(get_count(d, 26, &n));
        st_span_link_t *ln = wf_arena_alloc(d->a, (n ? n : 1) * sizeof(*ln));
        for (size_t i = 0; i < n; i++) {
            TRY(get_ids(d, ln[i].trace_id, 16));
            TRY(get_ids(d, ln[i].span_id, 8));
            TRY(get_str(d, &ln[i].trace_state));
            TRY(get_attrs(d, &ln[i].attrs, &ln[i].n_attrs));
        }
        sp->links = ln;
        sp->n_links = n;
    }
    return 0;
}

/* ---- log records --------------------------------------------------------------------------- */

/*
 * Log payload: u8 version, then zstd (fast level -3) of: n, then n x (trace id 16, span id 8,
 * parent 8, bits, name, service, svarint start, duration, resource attrs, tail). Compressed at
 * all because the record is written to the WAL, checkpointed and deleted again (mesh spans shrink
 * ~11x even at -3: 740 -> 64 bytes a span in the bench); a fast level because this is on the
 * acknowledged write path (level 1 cost ~10 % of the append) and the block re-compresses the spans
 * harder later.
 */
int st__span_log_encode(wf_buf_t *out, const st_span_t *spans, size_t n, size_t max_raw,
                        ZSTD_CCtx *cctx)
{
    wf_buf_t raw = WF_BUF_INIT;
    int rc = st__span_log_encode_tmp(out, &raw, spans, n, max_raw, cctx);
    wf_buf_free(&raw);
    return rc;
}

int st__span_log_encode_tmp(wf_buf_t *out, wf_buf_t *raw, const st_span_t *spans, size_t n,
                            size_t max_raw, ZSTD_CCtx *cctx)
{
    wf_buf_reset(raw);
    enc_t e = {raw, NULL, false, NULL, NULL, NULL, NULL, NULL};
    wf_buf_put_uvarint(raw, n);
    for (size_t i = 0; i < n; i++) {
        const st_span_t *sp = &spans[i];
        uint64_t bits = record_bits(sp);
        wf_buf_append(raw, sp->trace_id, 16);
        wf_buf_append(raw, sp->span_id, 8);
        wf_buf_append(raw, sp->parent_span_id, 8);
        wf_buf_put_uvarint(raw, bits);
        put_str(&e, sp->name);
        put_str(&e, st__span_service(sp));
        wf_buf_put_svarint(raw, sp->start_ns);
        wf_buf_put_uvarint(raw, (uint64_t)(sp->end_ns - sp->start_ns));
        put_attrs(&e, sp->resource_attrs, sp->n_resource_attrs);
        put_record_tail(&e, sp, bits);
        /* Replay refuses records over ST__SPAN_MAX_RAW (unpack): refuse the batch now. */
        if (raw->len > max_raw || raw->len > ST__SPAN_MAX_RAW) {
            return ST_E_BATCH_LIMIT;
        }
    }
    wf_buf_reset(out);
    wf_buf_putc(out, FORMAT_VERSION);
    size_t bound = ZSTD_compressBound(raw->len);
    uint8_t *dst = wf_buf_reserve(out, bound);
    size_t zn = ZSTD_compressCCtx(cctx, dst, bound, raw->data, raw->len, -3);
    WF_ASSERT(!ZSTD_isError(zn));
    out->len += zn;
    return 0;
}

/* Decompress a zstd frame into the arena; the frame must state its size. dctx may be NULL (a
 * one-shot context: ZSTD_decompress allocates and frees one, ~100 KB, on every call). */
static int unpack(const uint8_t *z, size_t zlen, wf_arena_t *a, ZSTD_DCtx *dctx,
                  const uint8_t **raw, size_t *raw_len)
{
    unsigned long long size = ZSTD_getFrameContentSize(z, zlen);
    if (size == ZSTD_CONTENTSIZE_ERROR || size == ZSTD_CONTENTSIZE_UNKNOWN ||
        size > ST__SPAN_MAX_RAW) {
        return WF_E_CORRUPT;
    }
    uint8_t *dst = wf_arena_alloc(a, (size_t)size);
    size_t n = dctx != NULL ? ZSTD_decompressDCtx(dctx, dst, (size_t)size, z, zlen)
                            : ZSTD_decompress(dst, (size_t)size, z, zlen);
    if (ZSTD_isError(n) || n != size) {
        return WF_E_CORRUPT;
    }
    *raw = dst;
    *raw_len = n;
    return 0;
}

int st__span_log_decode(const void *p, size_t len, wf_arena_t *a, st_span_t **spans, size_t *n)
{
    const uint8_t *b = p;
    if (len < 1 || b[0] != FORMAT_VERSION) {
        return WF_E_CORRUPT;
    }
    const uint8_t *raw;
    size_t raw_len;
    TRY(unpack(b + 1, len - 1, a, NULL, &raw, &raw_len));
    dec_t d = {.dict = NULL, .a = a};
    wf_rd_init(&d.r, raw, raw_len);
    size_t count;
    TRY(get_count(&d, 36, &count));
    st_span_t *out = wf_arena_alloc(a, (count ? count : 1) * sizeof(*out));
    memset(out, 0, (count ? count : 1) * sizeof(*out));
    for (size_t i = 0; i < count; i++) {
        st_span_t *sp = &out[i];
        uint64_t bits, dur;
        TRY(get_ids(&d, sp->trace_id, 16));
        TRY(get_ids(&d, sp->span_id, 8));
        TRY(get_ids(&d, sp->parent_span_id, 8));
        TRY(get_u(&d, &bits));
        TRY(get_str(&d, &sp->name));
        TRY(get_str(&d, &sp->service));
        TRY(wf_rd_svarint(&d.r, &sp->start_ns));
        TRY(get_u(&d, &dur));
        if (sp->start_ns < 0 || dur > (uint64_t)(INT64_MAX - sp->start_ns)) {
            return WF_E_CORRUPT;
        }
        sp->end_ns = sp->start_ns + (int64_t)dur;
        TRY(get_attrs(&d, &sp->resource_attrs, &sp->n_resource_attrs));
        TRY(get_record_tail(&d, sp, bits));
    }
    if (wf_rd_left(&d.r) != 0) {
        return WF_E_CORRUPT;
    }
    *spans = out;
    *n = count;
    return 0;
}

/* ---- blocks -------------------------------------------------------------------------------- */

static int cmp_span_trace_start(const void *x, const void *y)
{
    const st_span_t *a = *(const st_span_t *const *)x;
    const st_span_t *b = *(const st_span_t *const *)y;
    int c = memcmp(a->trace_id, b->trace_id, 16);
    if (c != 0) {
        return c;
    }
    if (a->start_ns != b->start_ns) {
        return a->start_ns < b->start_ns ? -1 : 1;
    }
    return memcmp(a->span_id, b->span_id, 8);
}

static int cmp_dent_count(const void *x, const void *y)
{
    const dent_t *a = *(const dent_t *const *)x;
    const dent_t *b = *(const dent_t *const *)y;
    if (a->count != b->count) {
        return a->count > b->count ? -1 : 1;
    }
    return a < b ? -1 : a > b;
}

static bool value_eq(const st_value_t *a, const st_value_t *b)
{
    if (a->type != b->type) {
        return false;
    }
    switch (a->type) {
    case ST_VAL_STRING:
    case ST_VAL_BYTES:
        return wf_str_eq(a->u.s, b->u.s);
    case ST_VAL_BOOL:
        return a->u.b == b->u.b;
    case ST_VAL_INT:
        return a->u.i == b->u.i;
    case ST_VAL_DOUBLE:
        return memcmp(&a->u.d, &b->u.d, 8) == 0;
    case ST_VAL_ARRAY:
        if (a->u.arr.n != b->u.arr.n) {
            return false;
        }
        for (size_t i = 0; i < a->u.arr.n; i++) {
            if (!value_eq(&a->u.arr.items[i], &b->u.arr.items[i])) {
                return false;
            }
        }
        return true;
    }
    return false;
}

static bool attrs_eq(const st_attr_t *a, size_t na, const st_attr_t *b, size_t nb)
{
    if (na != nb) {
        return false;
    }
    for (size_t i = 0; i < na; i++) {
        if (!wf_str_eq(a[i].key, b[i].key) || !value_eq(&a[i].value, &b[i].value)) {
            return false;
        }
    }
    return true;
}

typedef struct {
    const st_attr_t *a;
    size_t n;
    uint64_t h;
} resset_t;

/* Resource set index of sp (adding it); a linear list: a block holds a few dozen at most. */
static size_t resset_get(resset_t **sets, size_t *n, size_t *cap, const st_span_t *sp)
{
    uint64_t h = sp->n_resource_attrs;
    for (size_t i = 0; i < sp->n_resource_attrs; i++) {
        h = wf_hash64(sp->resource_attrs[i].key.p, sp->resource_attrs[i].key.len, h);
        if (sp->resource_attrs[i].value.type == ST_VAL_STRING) {
            h = wf_hash64(sp->resource_attrs[i].value.u.s.p, sp->resource_attrs[i].value.u.s.len,
                          h);
        }
    }
    for (size_t i = 0; i < *n; i++) {
        if ((*sets)[i].h == h &&
            attrs_eq((*sets)[i].a, (*sets)[i].n, sp->resource_attrs, sp->n_resource_attrs)) {
            return i;
        }
    }
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 16;
        *sets = wf_realloc(*sets, *cap * sizeof(**sets));
    }
    (*sets)[*n] = (resset_t){sp->resource_attrs, sp->n_resource_attrs, h};
    return (*n)++;
}

void st__span_block_encode(const st_span_t **spans, size_t n, ZSTD_CCtx *cctx, int zstd_level,
                           wf_buf_t *out, st__block_info_t *info)
{
    WF_ASSERT(n > 0);
    qsort(spans, n, sizeof(*spans), cmp_span_trace_start);
    memset(info, 0, sizeof(*info));
    info->n_spans = n;
    info->min_start = INT64_MAX;
    info->max_start = INT64_MIN;
    info->min_dur = INT64_MAX;
    info->max_dur = INT64_MIN;
    int64_t scale = 1000000;
    size_t n_traces = 0;
    size_t *res_of = wf_malloc(n * sizeof(*res_of));
    resset_t *sets = NULL;
    size_t n_sets = 0, cap_sets = 0;
    dict_t dict = {0};
    wf_buf_t scratch = WF_BUF_INIT, tmp = WF_BUF_INIT;
    memo_t memo = {0};
    memo.cap = n * 32;
    memo.v = wf_malloc(memo.cap * sizeof(*memo.v));
    pairset_t pairs = {0};
    u64set_t items = {0};
    last_attr_t last[LAST_ATTRS];
    for (size_t i = 0; i < LAST_ATTRS; i++) {
        last[i] = (last_attr_t){0, ST_VAL_ARRAY, 0};
    }
    enc_t count = {&scratch, &dict, true, &memo, &pairs, &items, &tmp, last};
    enc_t count_res = {&scratch, &dict, true, NULL, &pairs, &items, &tmp, NULL};
    for (size_t i = 0; i < n; i++) {
        const st_span_t *sp = spans[i];
        int64_t dur = sp->end_ns - sp->start_ns;
        info->min_start = sp->start_ns < info->min_start ? sp->start_ns : info->min_start;
        info->max_start = sp->start_ns > info->max_start ? sp->start_ns : info->max_start;
        info->min_dur = dur < info->min_dur ? dur : info->min_dur;
        info->max_dur = dur > info->max_dur ? dur : info->max_dur;
        while (scale > 1 && (sp->start_ns % scale != 0 || sp->end_ns % scale != 0)) {
            scale /= 10;
        }
        if (i == 0 || memcmp(sp->trace_id, spans[i - 1]->trace_id, 16) != 0) {
            n_traces++;
        }
        size_t before = n_sets;
        res_of[i] = resset_get(&sets, &n_sets, &cap_sets, sp);
        if (n_sets != before) {
            put_attrs(&count_res, sp->resource_attrs, sp->n_resource_attrs);
        }
        uint64_t ni = put_str(&count, sp->name);
        uint64_t si = put_str(&count, sp->service);
        if (pairset_add(&pairs, si | (uint64_t)15 << 32, ni)) {
            u64set_add(&items, st__span_item_service(sp->service, &tmp));
            u64set_add(&items, st__span_item_operation(sp->service, sp->name, &tmp));
        }
        put_record_tail(&count, sp, record_bits(sp));
    }
    /* Frequent strings get the short references. */
    dent_t **order = wf_malloc((dict.n ? dict.n : 1) * sizeof(*order));
    for (size_t i = 0; i < dict.n; i++) {
        order[i] = &dict.e[i];
    }
    qsort(order, dict.n, sizeof(*order), cmp_dent_count);
    for (size_t i = 0; i < dict.n; i++) {
        order[i]->idx = (uint32_t)i;
    }

    wf_buf_t raw = WF_BUF_INIT;
    enc_t e = {&raw, &dict, false, NULL, NULL, NULL, NULL, NULL};
    wf_buf_putc(&raw, FORMAT_VERSION);
    wf_buf_put_uvarint(&raw, n);
    wf_buf_put_uvarint(&raw, n_traces);
    wf_buf_put_svarint(&raw, info->min_start);
    int scale_exp = 0;
    for (int64_t s = scale; s > 1; s /= 10) {
        scale_exp++;
    }
    wf_buf_put_uvarint(&raw, (uint64_t)scale_exp);
    wf_buf_put_uvarint(&raw, dict.n);
    for (size_t i = 0; i < dict.n; i++) {
        wf_buf_put_uvarint(&raw, order[i]->len);
        wf_buf_append(&raw, order[i]->p, order[i]->len);
    }
    wf_buf_put_uvarint(&raw, n_sets);
    for (size_t i = 0; i < n_sets; i++) {
        put_attrs(&e, sets[i].a, sets[i].n);
    }

    /* Records per trace go to `recs`; the directory needs their lengths first. */
    info->trace_ids = wf_malloc(n_traces * sizeof(*info->trace_ids));
    wf_buf_t recs = WF_BUF_INIT;
    enc_t er = {&recs, &dict, false, &memo, NULL, NULL, NULL, NULL};
    size_t t = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && memcmp(spans[j]->trace_id, spans[i]->trace_id, 16) == 0) {
            j++;
        }
        size_t rec_start = recs.len;
        int64_t prev = info->min_start;
        for (size_t k = i; k < j; k++) {
            const st_span_t *sp = spans[k];
            uint64_t parent = 0;
            if (!zero(sp->parent_span_id, 8)) {
                parent = 1;
                for (size_t m = i; m < j; m++) {
                    if (memcmp(spans[m]->span_id, sp->parent_span_id, 8) == 0) {
                        parent = 2 + (m - i);
                        break;
                    }
                }
            }
            wf_buf_put_uvarint(&recs, parent);
            if (parent == 1) {
                wf_buf_append(&recs, sp->parent_span_id, 8);
            }
            uint64_t bits = record_bits(sp);
            wf_buf_put_uvarint(&recs, bits);
            put_str(&er, sp->name);
            put_str(&er, sp->service);
            wf_buf_put_uvarint(&recs, res_of[k]);
            wf_buf_put_uvarint(&recs, (uint64_t)((sp->start_ns - prev) / scale));
            wf_buf_put_uvarint(&recs, (uint64_t)((sp->end_ns - sp->start_ns) / scale));
            prev = sp->start_ns;
            put_record_tail(&er, sp, bits);
        }
        bool is64 = zero(spans[i]->trace_id, 8);
        wf_buf_put_uvarint(&raw, (uint64_t)(j - i) << 1 | (is64 ? 1 : 0));
        wf_buf_append(&raw, spans[i]->trace_id + (is64 ? 8 : 0), is64 ? 8 : 16);
        wf_buf_put_uvarint(&raw, recs.len - rec_start);
        memcpy(info->trace_ids[t++], spans[i]->trace_id, 16);
        i = j;
    }
    info->n_traces = n_traces;
    for (size_t i = 0; i < n; i++) {
        wf_buf_append(&raw, spans[i]->span_id, 8);
    }
    wf_buf_append(&raw, recs.data, recs.len);

    wf_buf_reset(out);
    size_t bound = ZSTD_compressBound(raw.len);
    uint8_t *dst = wf_buf_reserve(out, bound);
    size_t zn = ZSTD_compressCCtx(cctx, dst, bound, raw.data, raw.len, zstd_level);
    WF_ASSERT(!ZSTD_isError(zn));
    out->len = zn;

    WF_ASSERT(memo.pos == memo.n);
    info->n_items = items.n + (items.has_zero ? 1 : 0);
    info->items = wf_malloc((info->n_items ? info->n_items : 1) * sizeof(*info->items));
    size_t k = 0;
    for (size_t i = 0; i < items.cap; i++) {
        if (items.slot[i] != 0) {
            info->items[k++] = items.slot[i];
        }
    }
    if (items.has_zero) {
        info->items[k++] = 0;
    }
    wf_free(items.slot);
    wf_free(pairs.slot);
    wf_free(pairs.used);
    wf_free(memo.v);
    wf_buf_free(&tmp);
    wf_buf_free(&raw);
    wf_buf_free(&recs);
    wf_buf_free(&scratch);
    wf_free(order);
    dict_free(&dict);
    wf_free(sets);
    wf_free(res_of);
}

int st__span_block_open(st__span_block_t *b, const void *z, size_t zlen, wf_arena_t *a)
{
    return st__span_block_open_dctx(b, z, zlen, a, NULL);
}

int st__span_block_open_dctx(st__span_block_t *b, const void *z, size_t zlen, wf_arena_t *a,
                             ZSTD_DCtx *dctx)
{
    memset(b, 0, sizeof(*b));
    const uint8_t *raw;
    size_t raw_len;
    TRY(unpack(z, zlen, a, dctx, &raw, &raw_len));
    dec_t d = {.dict = NULL, .a = a};
    wf_rd_init(&d.r, raw, raw_len);
    uint8_t version;
    uint64_t scale_exp;
    TRY(wf_rd_u8(&d.r, &version));
    if (version != FORMAT_VERSION) {
        return WF_E_CORRUPT;
    }
    TRY(get_count(&d, 9, &b->n_spans));
    TRY(get_count(&d, 9, &b->n_traces));
    TRY(wf_rd_svarint(&d.r, &b->base_ns));
    TRY(get_u(&d, &scale_exp));
    if (scale_exp > 6 || b->base_ns < 0 || b->n_traces > b->n_spans) {
        return WF_E_CORRUPT;
    }
    b->scale = 1;
    for (uint64_t i = 0; i < scale_exp; i++) {
        b->scale *= 10;
    }
    TRY(get_count(&d, 1, &b->n_dict));
    b->dict = wf_arena_alloc(a, (b->n_dict ? b->n_dict : 1) * sizeof(*b->dict));
    for (size_t i = 0; i < b->n_dict; i++) {
        TRY(get_str(&d, &b->dict[i]));
    }
    d.dict = b->dict;
    d.n_dict = b->n_dict;
    TRY(get_count(&d, 1, &b->n_res));
    b->res = wf_arena_alloc(a, (b->n_res ? b->n_res : 1) * sizeof(*b->res));
    b->res_n = wf_arena_alloc(a, (b->n_res ? b->n_res : 1) * sizeof(*b->res_n));
    for (size_t i = 0; i < b->n_res; i++) {
        TRY(get_attrs(&d, &b->res[i], &b->res_n[i]));
    }
    b->traces = wf_arena_alloc(a, (b->n_traces ? b->n_traces : 1) * sizeof(*b->traces));
    size_t spans_seen = 0, rec_total = 0;
    for (size_t i = 0; i < b->n_traces; i++) {
        struct st__block_trace *t = &b->traces[i];
        uint64_t v, rec_len;
        TRY(get_u(&d, &v));
        bool is64 = v & 1;
        t->n_spans = (size_t)(v >> 1);
        if (t->n_spans == 0 || t->n_spans > b->n_spans - spans_seen) {
            return WF_E_CORRUPT;
        }
        memset(t->id, 0, 16);
        TRY(get_ids(&d, t->id + (is64 ? 8 : 0), is64 ? 8 : 16));
        TRY(get_u(&d, &rec_len));
        if (rec_len > raw_len) {
            return WF_E_CORRUPT;
        }
        t->first_span = spans_seen;
        t->rec_off = rec_total;
        t->rec_len = (size_t)rec_len;
        spans_seen += t->n_spans;
        rec_total += t->rec_len;
        if (rec_total > raw_len) {
            return WF_E_CORRUPT;
        }
    }
    if (spans_seen != b->n_spans) {
        return WF_E_CORRUPT;
    }
    const uint8_t *ids;
    if (b->n_spans > wf_rd_left(&d.r) / 8 || wf_rd_bytes(&d.r, b->n_spans * 8, &ids) != 0) {
        return WF_E_CORRUPT;
    }
    b->span_ids = ids;
    if (wf_rd_left(&d.r) != rec_total) {
        return WF_E_CORRUPT;
    }
    size_t base = (size_t)(d.r.p - raw);
    for (size_t i = 0; i < b->n_traces; i++) {
        b->traces[i].rec_off += base;
    }
    b->raw = raw;
    b->raw_len = raw_len;
    return 0;
}

long st__span_block_find(const st__span_block_t *b, const uint8_t id[16])
{
    /* The directory is sorted by id (the encoder sorts spans by trace first). */
    size_t lo = 0, hi = b->n_traces;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = memcmp(b->traces[mid].id, id, 16);
        if (c == 0) {
            return (long)mid;
        }
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return -1;
}

int st__span_block_decode_trace(const st__span_block_t *b, size_t ti, wf_arena_t *a, st_span_t *out)
{
    WF_ASSERT(ti < b->n_traces);
    const struct st__block_trace *t = &b->traces[ti];
    dec_t d = {.dict = b->dict, .n_dict = b->n_dict, .a = a};
    wf_rd_init(&d.r, b->raw + t->rec_off, t->rec_len);
    int64_t prev = b->base_ns;
    for (size_t k = 0; k < t->n_spans; k++) {
        st_span_t *sp = &out[k];
        memset(sp, 0, sizeof(*sp));
        memcpy(sp->trace_id, t->id, 16);
        memcpy(sp->span_id, b->span_ids + (t->first_span + k) * 8, 8);
        uint64_t parent, bits, res, off, dur;
        TRY(get_u(&d, &parent));
        if (parent == 1) {
            TRY(get_ids(&d, sp->parent_span_id, 8));
        } else if (parent >= 2) {
            if (parent - 2 >= t->n_spans) {
                return WF_E_CORRUPT;
            }
            memcpy(sp->parent_span_id, b->span_ids + (t->first_span + (parent - 2)) * 8, 8);
        }
        TRY(get_u(&d, &bits));
        TRY(get_str(&d, &sp->name));
        TRY(get_str(&d, &sp->service));
        TRY(get_u(&d, &res));
        if (res >= b->n_res) {
            return WF_E_CORRUPT;
        }
        sp->resource_attrs = b->res[res];
        sp->n_resource_attrs = b->res_n[res];
        TRY(get_u(&d, &off));
        TRY(get_u(&d, &dur));
        if (off > (uint64_t)INT64_MAX / (uint64_t)b->scale ||
            dur > (uint64_t)INT64_MAX / (uint64_t)b->scale) {
            return WF_E_CORRUPT;
        }
        off *= (uint64_t)b->scale;
        dur *= (uint64_t)b->scale;
        if (off > (uint64_t)(INT64_MAX - prev) ||
            dur > (uint64_t)(INT64_MAX - prev - (int64_t)off)) {
            return WF_E_CORRUPT;
        }
        sp->start_ns = prev + (int64_t)off;
        sp->end_ns = sp->start_ns + (int64_t)dur;
        prev = sp->start_ns;
        TRY(get_record_tail(&d, sp, bits));
    }
    return wf_rd_left(&d.r) == 0 ? 0 : WF_E_CORRUPT;
}
