/*
 * clock.c - wall and monotonic clocks (see clock.h).
 */
#include <sys/time.h>
#include <time.h>

#include "clock.h"

uint64_t
hq_wall_us(void)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	return (uint64_t)tv.tv_sec * 1000000 + (uint64_t)tv.tv_usec;
}

uint64_t
hq_mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

uint64_t
hq_now_ms(void)
{
	return hq_mono_us() / 1000;
}
