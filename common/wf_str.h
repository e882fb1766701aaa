/*
 * wf_str.h - borrowed string slices (pointer + length, not NUL-terminated) and small helpers.
 *
 * A wf_str_t never owns its bytes: whoever produced it says how long they live. Parsers hand
 * out slices into their input buffers so that nothing is copied on the hot path.
 */
#ifndef WF_STR_H
#define WF_STR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct {
    const char *p;
    size_t len;
} wf_str_t;

#define WF_STR_LIT(s) ((wf_str_t){(s), sizeof(s) - 1})

static inline wf_str_t wf_str(const char *s)
{
    return (wf_str_t){s, s ? strlen(s) : 0};
}

static inline bool wf_str_eq(wf_str_t a, wf_str_t b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

static inline bool wf_str_eq_c(wf_str_t a, const char *b)
{
    return wf_str_eq(a, wf_str(b));
}

/* Byte-wise comparison, shorter prefix first: the order Prometheus uses for label sets. */
static inline int wf_str_cmp(wf_str_t a, wf_str_t b)
{
    size_t n = a.len < b.len ? a.len : b.len;
    int c = n ? memcmp(a.p, b.p, n) : 0;
    if (c != 0) {
        return c;
    }
    return a.len < b.len ? -1 : a.len > b.len ? 1 : 0;
}

/* True when the n bytes at p are well-formed UTF-8 (no overlongs, no surrogates, <= U+10FFFF). */
bool wf_utf8_valid(const char *p, size_t n);

/* The value of one hex digit (0-9, a-f, A-F), or -1. */
int wf_hex_digit(int c);

/*
 * 64-bit hash of bytes, 8 bytes per step with a final avalanche; stable across runs and builds
 * (the store persists it in bloom filters), so changing it changes the on-disk format.
 */
uint64_t wf_hash64(const void *p, size_t n, uint64_t seed);

#endif
