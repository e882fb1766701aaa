/*
 * wf_clock.h - monotonic and wall clocks.
 *
 * Monotonic time measures intervals (timeouts, durations); wall time stamps data (samples in
 * milliseconds since the Unix epoch, spans in nanoseconds). Thread-safe.
 */
#ifndef WF_CLOCK_H
#define WF_CLOCK_H

#include <stdint.h>

int64_t wf_mono_ns(void);
int64_t wf_wall_ns(void);
int64_t wf_wall_ms(void);

/* Format wall-clock nanoseconds as RFC 3339 UTC with milliseconds into out (>= 25 bytes). */
void wf_time_rfc3339(int64_t wall_ns, char *out, unsigned long outlen);

#endif
