/*
 * test_wf_arena.c - the bump allocator (wf_arena.h): alignment, allocations spanning blocks,
 * allocations bigger than a block, the checked limit, reuse after reset, strndup. Run under
 * ASan, the memsets below also prove that every returned block is as large as asked.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/wait.h>
#include <unistd.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "wf_arena.h"
#include "wt_util.h"

static void test_alignment(void **state)
{
    (void)state;
    wf_arena_t a;
    wf_arena_init(&a, 256, 0);
    for (size_t n = 0; n < 100; n++) {
        void *p = wf_arena_alloc(&a, n);
        assert_non_null(p);
        assert_int_equal((uintptr_t)p % 16, 0);
        memset(p, 0xab, n);
        void *q = wf_arena_alloc_checked(&a, n);
        assert_non_null(q);
        assert_int_equal((uintptr_t)q % 16, 0);
        memset(q, 0xcd, n);
    }
    wf_arena_free(&a);
}

static void test_default_block_size(void **state)
{
    (void)state;
    wf_arena_t a;
    wf_arena_init(&a, 0, 0);
    assert_true(a.block_size > 0);
    assert_null(a.head);
    assert_int_equal(a.used, 0);
    wf_arena_free(&a); /* freeing an unused arena is fine */
    wf_arena_reset(&a);
}

static void test_many_allocations_across_blocks(void **state)
{
    (void)state;
    wf_arena_t a;
    wf_arena_init(&a, 1024, 0);
    enum { N = 5000 };
    static unsigned char *ptrs[N];
    /* Each allocation is filled with its own index; if blocks overlapped or an allocation
     * were handed out twice, a later fill would overwrite an earlier one. */
    for (size_t i = 0; i < N; i++) {
        size_t n = 1 + i % 200;
        ptrs[i] = wf_arena_alloc(&a, n);
        memset(ptrs[i], (int)(i & 0xff), n);
    }
    for (size_t i = 0; i < N; i++) {
        size_t n = 1 + i % 200;
        for (size_t k = 0; k < n; k++) {
            if (ptrs[i][k] != (unsigned char)(i & 0xff)) {
                fail_msg("allocation %zu byte %zu overwritten", i, k);
            }
        }
    }
    /* used counts the bytes handed out, rounded to the alignment. */
    size_t want = 0;
    for (size_t i = 0; i < N; i++) {
        want += ((1 + i % 200) + 15) & ~(size_t)15;
    }
    assert_int_equal(a.used, want);
    wf_arena_free(&a);
    assert_null(a.head);
    assert_int_equal(a.used, 0);
}

static void test_big_allocation(void **state)
{
    (void)state;
    wf_arena_t a;
    wf_arena_init(&a, 512, 0);
    char *small1 = wf_arena_alloc(&a, 100);
    memset(small1, 'x', 100);
    /* Larger than a block: gets a block of its own, and the small ones keep working. */
    size_t big = 1 << 20;
    char *p = wf_arena_alloc(&a, big);
    assert_int_equal((uintptr_t)p % 16, 0);
    memset(p, 'B', big);
    char *small2 = wf_arena_alloc(&a, 100);
    memset(small2, 'y', 100);
    assert_true(small2 + 100 <= p || small2 >= p + big);
    assert_true(small1 + 100 <= p || small1 >= p + big);
    for (size_t i = 0; i < 100; i++) {
        assert_int_equal(small1[i], 'x');
    }
    assert_int_equal(p[0], 'B');
    assert_int_equal(p[big - 1], 'B');
    wf_arena_free(&a);
}

static void test_checked_limit(void **state)
{
    (void)state;
    wf_arena_t a;
    wf_arena_init(&a, 256, 1000);
    size_t total = 0;
    void *p;
    /* 62 allocations of 16 bytes fit in 1000 (992 bytes); the 63rd does not. */
    for (int i = 0; i < 62; i++) {
        p = wf_arena_alloc_checked(&a, 16);
        assert_non_null(p);
        total += 16;
    }
    assert_int_equal(a.used, total);
    assert_null(wf_arena_alloc_checked(&a, 9)); /* 16 after alignment: 1008 > 1000 */
    assert_null(wf_arena_alloc_checked(&a, 16));
    /* A refusal does not count against the arena. */
    assert_int_equal(a.used, total);
    /* Absurd sizes are refused, not wrapped around. */
    assert_null(wf_arena_alloc_checked(&a, SIZE_MAX));
    assert_null(wf_arena_alloc_checked(&a, SIZE_MAX - 15));
    /* After a reset the budget is back. */
    wf_arena_reset(&a);
    assert_int_equal(a.used, 0);
    p = wf_arena_alloc_checked(&a, 992);
    assert_non_null(p);
    memset(p, 0, 992);
    assert_null(wf_arena_alloc_checked(&a, 1));
    /* 993 bytes round up to 1008, over the limit even in an empty arena. */
    wf_arena_reset(&a);
    assert_null(wf_arena_alloc_checked(&a, 993));
    wf_arena_free(&a);

    /* A zero-byte request still takes an aligned slot, and is accounted like one. */
    wf_arena_init(&a, 256, 32);
    assert_non_null(wf_arena_alloc_checked(&a, 0));
    assert_non_null(wf_arena_alloc_checked(&a, 0));
    assert_int_equal(a.used, 32);
    assert_null(wf_arena_alloc_checked(&a, 0));
    assert_int_equal(a.used, 32);
    wf_arena_free(&a);

    /* Without a limit, checked allocation only refuses sizes that cannot be represented. */
    wf_arena_init(&a, 256, 0);
    p = wf_arena_alloc_checked(&a, 100000);
    assert_non_null(p);
    memset(p, 1, 100000);
    assert_null(wf_arena_alloc_checked(&a, SIZE_MAX));
    /* Sizes just below SIZE_MAX pass an alignment check but wrap once the block header is
     * added: a tiny block would come back for a huge request. */
    assert_null(wf_arena_alloc_checked(&a, SIZE_MAX - 16));
    assert_null(wf_arena_alloc_checked(&a, SIZE_MAX - 40));
    wf_arena_free(&a);
}

static void test_reset_reuses(void **state)
{
    (void)state;
    wf_arena_t a;
    wf_arena_init(&a, 4096, 0);
    char *first = wf_arena_alloc(&a, 64);
    for (int i = 0; i < 100; i++) {
        memset(wf_arena_alloc(&a, 1000), i, 1000); /* spills into more blocks */
    }
    wf_arena_reset(&a);
    assert_int_equal(a.used, 0);
    assert_non_null(a.head);
    /* The first block is kept: the next allocation starts where the first one did. */
    char *again = wf_arena_alloc(&a, 64);
    assert_ptr_equal(again, first);
    memset(again, 0, 64);
    /* Reset repeatedly: memory stays bounded (ASan/LSan sees any leaked block). */
    for (int round = 0; round < 50; round++) {
        for (int i = 0; i < 20; i++) {
            memset(wf_arena_alloc(&a, 3000), round, 3000);
        }
        wf_arena_reset(&a);
        assert_ptr_equal(wf_arena_alloc(&a, 16), first);
    }
    wf_arena_free(&a);
}

/* A rewind forgets what came after its mark, within the mark's block and in later blocks, and
 * keeps what came before it. */
static void test_mark_rewind(void **state)
{
    (void)state;
    wf_arena_t a;
    wf_arena_init(&a, 4096, 0);
    wf_arena_mark_t empty = wf_arena_mark(&a);
    char *kept = wf_arena_alloc(&a, 100);
    memset(kept, 'k', 100);
    wf_arena_mark_t m = wf_arena_mark(&a);
    size_t used = a.used;
    char *next = wf_arena_alloc(&a, 64);
    for (int i = 0; i < 50; i++) {
        memset(wf_arena_alloc(&a, 1000), i, 1000); /* several new blocks */
    }
    wf_arena_rewind(&a, m);
    assert_int_equal(a.used, used);
    /* the next allocation reuses the rewound space of the mark's block */
    assert_ptr_equal(wf_arena_alloc(&a, 64), next);
    for (int i = 0; i < 100; i++) {
        assert_int_equal(kept[i], 'k');
    }
    /* rewinding to before the first block frees every block (LSan sees a leak otherwise) */
    wf_arena_rewind(&a, empty);
    assert_null(a.head);
    assert_int_equal(a.used, 0);
    assert_non_null(wf_arena_alloc(&a, 10));
    wf_arena_free(&a);
}

static void test_strndup(void **state)
{
    (void)state;
    wf_arena_t a;
    wf_arena_init(&a, 64, 0);
    char *s = wf_arena_strndup(&a, "hello world", 5);
    assert_string_equal(s, "hello");
    char *e = wf_arena_strndup(&a, "ignored", 0);
    assert_string_equal(e, "");
    /* Bytes after n are not read; embedded NULs are copied as they are. */
    char *z = wf_arena_strndup(&a, "a\0b", 3);
    assert_memory_equal(z, "a\0b\0", 4);
    /* Longer than a block. */
    char big[300];
    memset(big, 'q', sizeof(big));
    char *l = wf_arena_strndup(&a, big, sizeof(big));
    assert_memory_equal(l, big, sizeof(big));
    assert_int_equal(l[sizeof(big)], '\0');
    assert_string_equal(s, "hello");
    wf_arena_free(&a);
}

static void alloc_wrapping(void)
{
    wf_arena_t a;
    wf_arena_init(&a, 256, 0);
    /* Unchecked form with a size whose block would wrap: a programming error, so it stops. */
    wf_arena_alloc(&a, SIZE_MAX - 40);
    wf_arena_free(&a);
}

static void test_unchecked_absurd(void **state)
{
    (void)state;
    assert_true(wt_aborts(alloc_wrapping));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alignment),
        cmocka_unit_test(test_mark_rewind),
        cmocka_unit_test(test_default_block_size),
        cmocka_unit_test(test_many_allocations_across_blocks),
        cmocka_unit_test(test_big_allocation),
        cmocka_unit_test(test_checked_limit),
        cmocka_unit_test(test_reset_reuses),
        cmocka_unit_test(test_strndup),
        cmocka_unit_test(test_unchecked_absurd),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
