/*
 * wf_arena.h - a bump allocator for one unit of work (an HTTP exchange, an ingest batch, an
 * API request).
 *
 * Allocations come from large blocks and are released all at once by wf_arena_reset() or
 * wf_arena_free(). Individual frees do not exist. wf_arena_alloc aborts on OOM like wf_malloc;
 * wf_arena_alloc_checked is for input-controlled sizes and fails cleanly once the arena's
 * limit (total bytes, 0 = none) would be exceeded. One thread at a time.
 */
#ifndef WF_ARENA_H
#define WF_ARENA_H

#include <stddef.h>

typedef struct wf_arena_block wf_arena_block_t;

typedef struct {
    wf_arena_block_t *head; /* current block; older blocks chain behind it */
    size_t block_size;      /* default size of a new block */
    size_t limit;           /* max bytes handed out in total, 0 = unlimited */
    size_t used;            /* bytes handed out since the last reset */
} wf_arena_t;

void wf_arena_init(wf_arena_t *a, size_t block_size, size_t limit);
/* Return n bytes aligned to 16; never NULL. */
void *wf_arena_alloc(wf_arena_t *a, size_t n);
/* Like wf_arena_alloc but returns NULL when the arena limit would be exceeded. */
void *wf_arena_alloc_checked(wf_arena_t *a, size_t n);
char *wf_arena_strndup(wf_arena_t *a, const char *s, size_t n);
/* Forget every allocation but keep the first block for reuse. */
void wf_arena_reset(wf_arena_t *a);

/* A point in an arena's history, to forget what was allocated after it (an undo). */
typedef struct {
    wf_arena_block_t *block;
    size_t pos;
    size_t used;
} wf_arena_mark_t;

wf_arena_mark_t wf_arena_mark(const wf_arena_t *a);
/* Forget every allocation made since m (blocks begun after it are freed). No reset or free of
 * the arena may come between the mark and the rewind. */
void wf_arena_rewind(wf_arena_t *a, wf_arena_mark_t m);
void wf_arena_free(wf_arena_t *a);

#endif
