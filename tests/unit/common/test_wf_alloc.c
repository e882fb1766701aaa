/*
 * test_wf_alloc.c - the allocation wrappers (wf_alloc.h), above all the checked variants that
 * stand between input-controlled sizes and malloc: overflow of count*size, the caller's limit,
 * and the promise that a failed realloc leaves the old block in place and owned.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "wf_alloc.h"

/* Under ASan a huge malloc must return NULL (as libc's does) instead of stopping the process,
 * so that the -ENOMEM path can be tested in the sanitizer build too. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "allocator_may_return_null=1";
}

static void test_plain_wrappers(void **state)
{
    (void)state;
    char *p = wf_malloc(0);
    assert_non_null(p);
    wf_free(p);
    p = wf_malloc(100);
    memset(p, 1, 100);
    p = wf_realloc(p, 100000);
    assert_int_equal(p[99], 1);
    memset(p, 2, 100000);
    p = wf_realloc(p, 0);
    assert_non_null(p);
    wf_free(p);

    unsigned char *z = wf_calloc(1000, 8);
    for (size_t i = 0; i < 8000; i++) {
        assert_int_equal(z[i], 0);
    }
    wf_free(z);
    wf_free(wf_calloc(0, 8));
    wf_free(wf_calloc(8, 0));
    wf_free(NULL);

    char *s = wf_strdup("hello");
    assert_string_equal(s, "hello");
    wf_free(s);
    s = wf_strndup("hello world", 5);
    assert_string_equal(s, "hello");
    wf_free(s);
    s = wf_strndup("", 0);
    assert_string_equal(s, "");
    wf_free(s);
}

static void test_alloc_checked(void **state)
{
    (void)state;
    void *out = NULL;
    assert_int_equal(wf_alloc_checked(10, 100, 0, &out), 0);
    assert_non_null(out);
    memset(out, 0, 1000);
    wf_free(out);

    /* Exactly at the limit is allowed, one byte over is not. */
    out = NULL;
    assert_int_equal(wf_alloc_checked(10, 100, 1000, &out), 0);
    assert_non_null(out);
    memset(out, 0, 1000);
    wf_free(out);
    void *sentinel = &out;
    out = sentinel;
    assert_int_equal(wf_alloc_checked(1001, 1, 1000, &out), -EOVERFLOW);
    assert_int_equal(wf_alloc_checked(11, 100, 1000, &out), -EOVERFLOW);
    assert_ptr_equal(out, sentinel); /* untouched on error */

    /* count*size wrapping around SIZE_MAX is refused even without a limit. */
    assert_int_equal(wf_alloc_checked(SIZE_MAX, 2, 0, &out), -EOVERFLOW);
    assert_int_equal(wf_alloc_checked(2, SIZE_MAX, 0, &out), -EOVERFLOW);
    assert_int_equal(wf_alloc_checked((SIZE_MAX >> 1) + 2, 2, 0, &out), -EOVERFLOW);
    assert_int_equal(wf_alloc_checked((size_t)1 << 32, (size_t)1 << 32, 0, &out), -EOVERFLOW);
    /* A product that wraps to something small must not sneak under the limit. */
    assert_int_equal(wf_alloc_checked(((size_t)1 << 63) + 1, 2, 1000, &out), -EOVERFLOW);
    assert_ptr_equal(out, sentinel);

    /* Representable but impossible: -ENOMEM, not a crash. */
    assert_int_equal(wf_alloc_checked(SIZE_MAX / 2, 1, 0, &out), -ENOMEM);
    assert_ptr_equal(out, sentinel);

    /* Zero-sized requests succeed with a real pointer. */
    out = NULL;
    assert_int_equal(wf_alloc_checked(0, 16, 0, &out), 0);
    assert_non_null(out);
    wf_free(out);
    out = NULL;
    assert_int_equal(wf_alloc_checked(SIZE_MAX, 0, 0, &out), 0);
    assert_non_null(out);
    wf_free(out);
}

static void test_realloc_checked(void **state)
{
    (void)state;
    void *p = NULL;
    /* From NULL, like realloc. */
    assert_int_equal(wf_realloc_checked(&p, 4, 4, 0), 0);
    assert_non_null(p);
    memcpy(p, "0123456789abcdef", 16);

    assert_int_equal(wf_realloc_checked(&p, 64, 4, 256), 0);
    assert_memory_equal(p, "0123456789abcdef", 16);
    memset((char *)p + 16, 'x', 240);

    /* Failures leave the pointer and its contents alone; the caller still owns it. */
    void *before = p;
    assert_int_equal(wf_realloc_checked(&p, 65, 4, 256), -EOVERFLOW);
    assert_ptr_equal(p, before);
    assert_int_equal(wf_realloc_checked(&p, SIZE_MAX, 8, 0), -EOVERFLOW);
    assert_ptr_equal(p, before);
    assert_int_equal(wf_realloc_checked(&p, SIZE_MAX / 2, 1, 0), -ENOMEM);
    assert_ptr_equal(p, before);
    assert_memory_equal(p, "0123456789abcdef", 16);
    assert_int_equal(((char *)p)[255], 'x');

    /* Shrinking keeps the prefix. */
    assert_int_equal(wf_realloc_checked(&p, 8, 1, 0), 0);
    assert_memory_equal(p, "01234567", 8);
    wf_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_wrappers),
        cmocka_unit_test(test_alloc_checked),
        cmocka_unit_test(test_realloc_checked),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
