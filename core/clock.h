/*
 * clock.h - the two clocks hl7q reads: wall time for what is stored and
 * shown (received times, attempts, due times), and the monotonic clock for
 * timeouts and durations (it never jumps).
 */
#ifndef HQ_CLOCK_H
#define HQ_CLOCK_H

#include <stdint.h>

/* Wall clock: microseconds since the Unix epoch. */
uint64_t hq_wall_us(void);

/* Monotonic clock: microseconds, and milliseconds, since an arbitrary start. */
uint64_t hq_mono_us(void);
uint64_t hq_now_ms(void);

#endif
