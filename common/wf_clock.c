/*
 * wf_clock.c - clock_gettime wrappers.
 */
#include "wf_clock.h"

#include <stdio.h>
#include <time.h>

static int64_t ts_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t wf_mono_ns(void)
{
    return ts_ns(CLOCK_MONOTONIC);
}

int64_t wf_wall_ns(void)
{
    return ts_ns(CLOCK_REALTIME);
}

int64_t wf_wall_ms(void)
{
    return wf_wall_ns() / 1000000;
}

void wf_time_rfc3339(int64_t wall_ns, char *out, unsigned long outlen)
{
    /* Floor division: times before 1970 must not print a negative millisecond field. */
    int64_t rem = wall_ns % 1000000000;
    time_t secs = (time_t)(wall_ns / 1000000000 - (rem < 0));
    int ms = (int)((rem < 0 ? rem + 1000000000 : rem) / 1000000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    snprintf(out, outlen, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
}
