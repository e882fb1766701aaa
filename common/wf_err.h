/*
 * wf_err.h - error codes shared by every module.
 *
 * Functions return 0 on success or a negative code: -errno for operating-system errors, or a
 * domain code. Domain codes live in disjoint ranges below WF_ERR_BASE so that one int can carry
 * either kind: common uses -1000..-1099, store -1100..-1199 (st_strerror), collector -1200..,
 * proxy -1300.., control plane -1400... wf_strerror() names errno values and common's codes;
 * each module's *_strerror() names its own and falls back to wf_strerror().
 */
#ifndef WF_ERR_H
#define WF_ERR_H

#define WF_ERR_BASE (-1000)

enum {
    WF_E_INVAL = -1000,    /* malformed argument or input */
    WF_E_LIMIT = -1001,    /* input exceeds a configured limit */
    WF_E_NOTFOUND = -1002, /* no such item */
    WF_E_UNKNOWN_FLAG = -1003,
    WF_E_CORRUPT = -1004, /* stored data failed a check */
    WF_E_INTERNAL = -1005,
};

/* Return a static description of code (0, -errno, or a WF_E_* code). Never NULL. */
const char *wf_strerror(int code);

/*
 * WF_ASSERT: an always-on invariant check. A failure logs the expression and location and
 * aborts: it means the program's own state is wrong, never that input was bad.
 */
void wf_assert_fail(const char *expr, const char *file, int line) __attribute__((noreturn));
#define WF_ASSERT(e) ((e) ? (void)0 : wf_assert_fail(#e, __FILE__, __LINE__))

#endif
