/*
 * wf_arena.c - block-chained bump allocator. See wf_arena.h.
 */
#include "wf_arena.h"

#include "wf_alloc.h"
#include "wf_err.h"

#include <stdint.h>
#include <string.h>

struct wf_arena_block {
    wf_arena_block_t *next;
    size_t size;
    size_t pos;
    _Alignas(16) unsigned char data[];
};

#define ALIGN16(n) (((n) + 15) & ~(size_t)15)

void wf_arena_init(wf_arena_t *a, size_t block_size, size_t limit)
{
    a->head = NULL;
    a->block_size = block_size ? block_size : 16384;
    a->limit = limit;
    a->used = 0;
}

/* Largest request whose aligned size plus the block header still fits in a size_t. */
#define MAX_REQUEST (SIZE_MAX - sizeof(wf_arena_block_t) - 16)

static void *bump(wf_arena_t *a, size_t n)
{
    /* Beyond MAX_REQUEST the block size would wrap and a tiny block would come back. */
    WF_ASSERT(n <= MAX_REQUEST);
    size_t need = ALIGN16(n ? n : 1);
    wf_arena_block_t *b = a->head;
    if (b == NULL || b->size - b->pos < need) {
        size_t size = need > a->block_size ? need : a->block_size;
        b = wf_malloc(sizeof(*b) + size);
        b->size = size;
        b->pos = 0;
        b->next = a->head;
        a->head = b;
    }
    void *p = b->data + b->pos;
    b->pos += need;
    a->used += need;
    return p;
}

void *wf_arena_alloc(wf_arena_t *a, size_t n)
{
    return bump(a, n);
}

void *wf_arena_alloc_checked(wf_arena_t *a, size_t n)
{
    if (n > MAX_REQUEST) {
        return NULL;
    }
    /* Count what bump() takes: a zero-byte request still uses one aligned slot. */
    size_t need = ALIGN16(n ? n : 1);
    if (a->limit != 0 && (a->used > a->limit || need > a->limit - a->used)) {
        return NULL;
    }
    return bump(a, n);
}

char *wf_arena_strndup(wf_arena_t *a, const char *s, size_t n)
{
    char *p = bump(a, n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

void wf_arena_reset(wf_arena_t *a)
{
    if (a->head == NULL) {
        return;
    }
    /* Keep the oldest block (the one sized block_size) and free the rest. */
    wf_arena_block_t *b = a->head;
    while (b->next != NULL) {
        wf_arena_block_t *next = b->next;
        wf_free(b);
        b = next;
    }
    b->pos = 0;
    a->head = b;
    a->used = 0;
}

wf_arena_mark_t wf_arena_mark(const wf_arena_t *a)
{
    return (wf_arena_mark_t){a->head, a->head ? a->head->pos : 0, a->used};
}

void wf_arena_rewind(wf_arena_t *a, wf_arena_mark_t m)
{
    /* Blocks are only ever put in front of the chain: the ones begun since m come first. */
    while (a->head != m.block) {
        WF_ASSERT(a->head != NULL);
        wf_arena_block_t *next = a->head->next;
        wf_free(a->head);
        a->head = next;
    }
    if (a->head != NULL) {
        WF_ASSERT(m.pos <= a->head->pos);
        a->head->pos = m.pos;
    }
    a->used = m.used;
}

void wf_arena_free(wf_arena_t *a)
{
    wf_arena_block_t *b = a->head;
    while (b != NULL) {
        wf_arena_block_t *next = b->next;
        wf_free(b);
        b = next;
    }
    a->head = NULL;
    a->used = 0;
}
