/*
 * wf_alloc.h - allocation wrappers.
 *
 * Small internal allocations go through wf_malloc & co., which abort the process with a log
 * line on out-of-memory: there is no useful recovery from a failed 40-byte allocation, and
 * checking every one of them hides the real error paths. Sizes that input controls (bodies,
 * batches, label counts) use the checked forms, which multiply with overflow checks and
 * return -ENOMEM / -EOVERFLOW so that the caller can refuse the input cleanly.
 *
 * All functions are thread-safe. wf_free(NULL) is a no-op.
 */
#ifndef WF_ALLOC_H
#define WF_ALLOC_H

#include <stddef.h>

/* Return a block of n bytes (n may be 0); never NULL. */
void *wf_malloc(size_t n);
/* Return count*size zeroed bytes; aborts on overflow or OOM; never NULL. */
void *wf_calloc(size_t count, size_t size);
/* Resize p to n bytes; never NULL. */
void *wf_realloc(void *p, size_t n);
/* Copy a NUL-terminated string; never NULL. */
char *wf_strdup(const char *s);
/* Copy n bytes of s and terminate them with NUL; never NULL. */
char *wf_strndup(const char *s, size_t n);
void wf_free(void *p);

/*
 * Checked allocation for input-controlled sizes: *out receives count*size bytes (uninitialised)
 * or stays untouched on error. Returns 0, -EOVERFLOW if count*size overflows or exceeds limit
 * (limit 0 = no limit beyond SIZE_MAX), or -ENOMEM.
 */
int wf_alloc_checked(size_t count, size_t size, size_t limit, void **out);

/* Like wf_realloc for input-controlled sizes: on error *p is unchanged and still owned. */
int wf_realloc_checked(void **p, size_t count, size_t size, size_t limit);

#endif
