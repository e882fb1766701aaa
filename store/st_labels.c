/*
 * st_labels.c - label set validation, canonical encoding and hashing (see st_labels.h).
 *
 * The validation runs on every sample the writer does not recognise, so it is written for the
 * common case: short ASCII names and values, usually already sorted (exporters and our own
 * proxies emit labels in a fixed order). Encodings are hashed with wf_hash64.
 */
#include "st_labels.h"

#include "wf_err.h"

#include <string.h>

static bool name_valid(wf_str_t n)
{
    if (n.len == 0) {
        return false;
    }
    for (size_t i = 0; i < n.len; i++) {
        unsigned char c = (unsigned char)n.p[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                  (i > 0 && c >= '0' && c <= '9');
        if (!ok) {
            return false;
        }
    }
    return true;
}

static bool utf8_valid_fast(const char *p, size_t n)
{
    size_t i = 0;
    /* Most values are ASCII: test eight bytes at a time before the full decoder. */
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        if (w & 0x8080808080808080ULL) {
            return wf_utf8_valid(p + i, n - i);
        }
    }
    for (; i < n; i++) {
        if ((unsigned char)p[i] & 0x80) {
            return wf_utf8_valid(p + i, n - i);
        }
    }
    return true;
}

bool st__labels_sort(const st_label_t *labels, size_t n, st_label_t *out, size_t *nout)
{
    size_t k = 0;
    bool sorted = true;
    for (size_t i = 0; i < n; i++) {
        if (labels[i].value.len == 0) {
            continue;
        }
        if (k > 0 && sorted && wf_str_cmp(out[k - 1].name, labels[i].name) > 0) {
            sorted = false;
        }
        out[k++] = labels[i];
    }
    if (!sorted) {
        /*
         * Binary insertion sort: sets are small (<= max_labels), and names such as Istio's
         * share long prefixes, so the number of comparisons is what counts.
         */
        for (size_t i = 1; i < k; i++) {
            st_label_t t = out[i];
            size_t lo = 0, hi = i;
            while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (wf_str_cmp(out[mid].name, t.name) <= 0) {
                    lo = mid + 1;
                } else {
                    hi = mid;
                }
            }
            if (lo < i) {
                memmove(out + lo + 1, out + lo, (i - lo) * sizeof(*out));
                out[lo] = t;
            }
        }
    }
    *nout = k;
    return k < n;
}

int st__labels_normalize(const st_options_t *o, const st_label_t *labels, size_t n, st_label_t *out,
                         size_t *nout)
{
    for (size_t i = 0; i < n; i++) {
        const st_label_t *l = &labels[i];
        if (!name_valid(l->name)) {
            return ST_E_LABEL_NAME;
        }
        if (l->name.len > o->max_label_name_len || l->value.len > o->max_label_value_len) {
            return ST_E_LABEL_LIMIT;
        }
        if (l->value.len > 0 && !utf8_valid_fast(l->value.p, l->value.len)) {
            return ST_E_LABEL_VALUE;
        }
    }
    size_t k = 0;
    bool dropped = st__labels_sort(labels, n, out, &k);
    for (size_t i = 1; i < k; i++) {
        if (wf_str_eq(out[i - 1].name, out[i].name)) {
            return ST_E_LABEL_DUP;
        }
    }
    /* Duplicates are checked over all names, including those whose value was empty. */
    if (dropped) {
        for (size_t i = 0; i < n; i++) {
            if (labels[i].value.len != 0) {
                continue;
            }
            for (size_t j = 0; j < n; j++) {
                if (j != i && wf_str_eq(labels[i].name, labels[j].name)) {
                    return ST_E_LABEL_DUP;
                }
            }
        }
    }
    if (k == 0) {
        return ST_E_NO_LABELS;
    }
    *nout = k;
    return 0;
}

/*
 * Copy a short string. Label names and values are mostly 5-60 bytes, and a libc memcpy call per
 * string costs more than the copy itself at 50 strings per sample; fixed-size memcpy calls
 * compile to plain loads and stores. Never reads or writes outside [src, src+n), [dst, dst+n).
 */
static inline void copy_small(uint8_t *dst, const char *src, size_t n)
{
    if (n >= 8) {
        size_t i = 0;
        for (; i + 8 <= n; i += 8) {
            memcpy(dst + i, src + i, 8);
        }
        memcpy(dst + n - 8, src + n - 8, 8);
    } else if (n >= 4) {
        memcpy(dst, src, 4);
        memcpy(dst + n - 4, src + n - 4, 4);
    } else {
        for (size_t i = 0; i < n; i++) {
            dst[i] = (uint8_t)src[i];
        }
    }
}

static inline uint8_t *put_str(uint8_t *p, wf_str_t s)
{
    if (s.len < 0x80) {
        *p++ = (uint8_t)s.len;
    } else {
        p += wf_uvarint_put(p, s.len);
    }
    copy_small(p, s.p, s.len);
    return p + s.len;
}

static size_t encoded_max(const st_label_t *labels, size_t n)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        total += labels[i].name.len + labels[i].value.len + 20;
    }
    return total;
}

bool st__labels_encode_if_sorted(const st_label_t *labels, size_t n, wf_buf_t *b)
{
    if (n == 0) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (labels[i].value.len == 0 || labels[i].name.len == 0) {
            return false;
        }
        if (i > 0 && wf_str_cmp(labels[i - 1].name, labels[i].name) >= 0) {
            return false;
        }
    }
    st__labels_encode(labels, n, b);
    return true;
}

void st__labels_encode(const st_label_t *labels, size_t n, wf_buf_t *b)
{
    uint8_t *start = wf_buf_reserve(b, encoded_max(labels, n));
    uint8_t *p = start;
    for (size_t i = 0; i < n; i++) {
        p = put_str(p, labels[i].name);
        p = put_str(p, labels[i].value);
    }
    b->len += (size_t)(p - start);
}

static int get_str(wf_rd_t *r, wf_str_t *s)
{
    uint64_t len;
    const uint8_t *p;
    if (wf_rd_uvarint(r, &len) != 0 || len > wf_rd_left(r) || wf_rd_bytes(r, len, &p) != 0) {
        return WF_E_CORRUPT;
    }
    s->p = (const char *)p;
    s->len = len;
    return 0;
}

int st__labels_next(wf_rd_t *r, wf_str_t *name, wf_str_t *value)
{
    if (wf_rd_left(r) == 0) {
        return 0;
    }
    if (get_str(r, name) != 0 || get_str(r, value) != 0) {
        return WF_E_CORRUPT;
    }
    return 1;
}

int st__labels_count(const uint8_t *enc, size_t len)
{
    wf_rd_t r;
    wf_rd_init(&r, enc, len);
    wf_str_t n, v;
    int count = 0, rc;
    while ((rc = st__labels_next(&r, &n, &v)) == 1) {
        count++;
    }
    return rc < 0 ? rc : count;
}

wf_str_t st__labels_get(const uint8_t *enc, size_t len, wf_str_t name)
{
    wf_rd_t r;
    wf_rd_init(&r, enc, len);
    wf_str_t n, v;
    while (st__labels_next(&r, &n, &v) == 1) {
        if (wf_str_eq(n, name)) {
            return v;
        }
    }
    return (wf_str_t){"", 0};
}

int st__labels_cmp(const st_label_t *a, size_t na, const st_label_t *b, size_t nb)
{
    size_t n = na < nb ? na : nb;
    for (size_t i = 0; i < n; i++) {
        int c = wf_str_cmp(a[i].name, b[i].name);
        if (c == 0) {
            c = wf_str_cmp(a[i].value, b[i].value);
        }
        if (c != 0) {
            return c;
        }
    }
    return na < nb ? -1 : na > nb ? 1 : 0;
}
