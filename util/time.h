/*
 * Clocks and time formatting: the monotonic millisecond clock every timer of the server uses,
 * and the RFC 3339 UTC timestamps of EventRecords. Pure, any thread.
 */
#ifndef HS_UTIL_TIME_H
#define HS_UTIL_TIME_H

#include <stdint.h>

/* Milliseconds of CLOCK_MONOTONIC. */
int64_t hs_now_ms(void);

/* Writes time_us (microseconds since the epoch) as "2026-11-22T05:30:00.123456Z" (27 bytes +
 * NUL) into out. */
void hs_format_time(int64_t time_us, char out[32]);

#endif
