/*
 * wf_err.c - names for error codes, and the assertion failure path.
 */
#include "wf_err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *wf_strerror(int code)
{
    switch (code) {
    case 0:
        return "success";
    case WF_E_INVAL:
        return "invalid argument or input";
    case WF_E_LIMIT:
        return "input exceeds a limit";
    case WF_E_NOTFOUND:
        return "not found";
    case WF_E_UNKNOWN_FLAG:
        return "unknown flag";
    case WF_E_CORRUPT:
        return "stored data is corrupt";
    case WF_E_INTERNAL:
        return "internal error";
    default:
        break;
    }
    if (code < 0 && code > WF_ERR_BASE) {
        return strerror(-code);
    }
    return "unknown error code";
}

void wf_assert_fail(const char *expr, const char *file, int line)
{
    fprintf(stderr, "level=fatal comp=assert msg=\"assertion failed\" expr=\"%s\" at=%s:%d\n", expr,
            file, line);
    abort();
}
