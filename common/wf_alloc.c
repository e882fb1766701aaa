/*
 * wf_alloc.c - allocation wrappers that abort on OOM, and checked variants for sizes that
 * come from input. See wf_alloc.h.
 */
#include "wf_alloc.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void oom(size_t n)
{
    /* No allocation, no logging machinery: write the fact and stop. */
    fprintf(stderr, "level=fatal comp=alloc msg=\"out of memory\" bytes=%zu\n", n);
    abort();
}

void *wf_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL) {
        oom(n);
    }
    return p;
}

void *wf_calloc(size_t count, size_t size)
{
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (p == NULL) {
        oom(count * size);
    }
    return p;
}

void *wf_realloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (q == NULL) {
        oom(n);
    }
    return q;
}

char *wf_strdup(const char *s)
{
    return wf_strndup(s, strlen(s));
}

char *wf_strndup(const char *s, size_t n)
{
    char *p = wf_malloc(n + 1);
    if (n > 0) {
        memcpy(p, s, n); /* s may be NULL when n is 0 (an empty slice) */
    }
    p[n] = '\0';
    return p;
}

void wf_free(void *p)
{
    free(p);
}

static int checked_size(size_t count, size_t size, size_t limit, size_t *total)
{
    if (size != 0 && count > SIZE_MAX / size) {
        return -EOVERFLOW;
    }
    *total = count * size;
    if (limit != 0 && *total > limit) {
        return -EOVERFLOW;
    }
    return 0;
}

int wf_alloc_checked(size_t count, size_t size, size_t limit, void **out)
{
    size_t total;
    int rc = checked_size(count, size, limit, &total);
    if (rc < 0) {
        return rc;
    }
    void *p = malloc(total ? total : 1);
    if (p == NULL) {
        return -ENOMEM;
    }
    *out = p;
    return 0;
}

int wf_realloc_checked(void **p, size_t count, size_t size, size_t limit)
{
    size_t total;
    int rc = checked_size(count, size, limit, &total);
    if (rc < 0) {
        return rc;
    }
    void *q = realloc(*p, total ? total : 1);
    if (q == NULL) {
        return -ENOMEM;
    }
    *p = q;
    return 0;
}
