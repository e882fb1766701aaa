/*
 * wf_str.c - UTF-8 validation and hashing for byte slices.
 */
#include "wf_str.h"

#include <string.h>

bool wf_utf8_valid(const char *s, size_t n)
{
    if (n == 0) {
        return true; /* before the arithmetic below: an empty slice may be {NULL, 0} */
    }
    const unsigned char *p = (const unsigned char *)s;
    const unsigned char *end = p + n;
    while (p < end) {
        unsigned c = *p;
        if (c < 0x80) {
            p++;
            continue;
        }
        size_t need;
        unsigned cp;
        if (c >= 0xc2 && c <= 0xdf) {
            need = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            need = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            need = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        if ((size_t)(end - p) <= need) {
            return false;
        }
        for (size_t i = 1; i <= need; i++) {
            if ((p[i] & 0xc0) != 0x80) {
                return false;
            }
            cp = (cp << 6) | (p[i] & 0x3f);
        }
        if ((need == 2 && cp < 0x800) || (need == 3 && cp < 0x10000) || cp > 0x10ffff ||
            (cp >= 0xd800 && cp <= 0xdfff)) {
            return false;
        }
        p += need + 1;
    }
    return true;
}

static inline uint64_t hash_mix(uint64_t h, uint64_t w)
{
    h ^= w * 0x9e3779b97f4a7c15ULL;
    h = (h << 29) | (h >> 35);
    return h * 0xbf58476d1ce4e5b9ULL;
}

uint64_t wf_hash64(const void *data, size_t n, uint64_t seed)
{
    /*
     * Eight bytes per step in four independent lanes, so that the multiplies of consecutive
     * words overlap: label sets of a kilobyte and span ids are hashed on every append. Words
     * are read in host order; the store persists these hashes (bloom filters), so hosts are
     * assumed little-endian like every platform weft builds on.
     */
    const uint8_t *p = data;
    uint64_t h[4] = {0x243f6a8885a308d3ULL ^ n ^ seed, 0x13198a2e03707344ULL ^ seed,
                     0xa4093822299f31d0ULL, 0x082efa98ec4e6c89ULL};
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        uint64_t w[4];
        memcpy(w, p + i, 32);
        h[0] = hash_mix(h[0], w[0]);
        h[1] = hash_mix(h[1], w[1]);
        h[2] = hash_mix(h[2], w[2]);
        h[3] = hash_mix(h[3], w[3]);
    }
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        h[0] = hash_mix(h[0], w);
    }
    if (i < n) {
        uint64_t w = 0;
        memcpy(&w, p + i, n - i);
        h[1] = hash_mix(h[1], w ^ 0xff);
    }
    uint64_t x = h[0] ^ (h[1] * 0x9e3779b97f4a7c15ULL) ^ ((h[2] << 17) | (h[2] >> 47)) ^
                 (h[3] * 0xc2b2ae3d27d4eb4fULL);
    /* splitmix64 finaliser */
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

int wf_hex_digit(int c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}
