/*
 * Clocks and time formatting: the monotonic millisecond clock every timer of the server uses,
 * and the RFC 3339 UTC timestamps of EventRecords. Pure, any thread.
 */
#ifndef HS_UTIL_TIME_H
#define HS_UTIL_TIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Milliseconds of CLOCK_MONOTONIC. */
int64_t hs_now_ms(void);
/* Microseconds of CLOCK_MONOTONIC (timers), and of CLOCK_REALTIME since the epoch (commit
 * times). */
int64_t hs_mono_us(void);
int64_t hs_wall_us(void);

/* Writes time_us (microseconds since the epoch) as "2026-11-22T05:30:00.123456Z" (27 bytes +
 * NUL) into out. */
void hs_format_time(int64_t time_us, char out[32]);

/* The same as .NET's DateTimeOffset round-trip form, "2026-11-22T05:30:00.1234560+00:00" (33
 * bytes + NUL), into out. */
void hs_format_offset_time(int64_t time_us, char out[40]);

/* An ISO 8601 date and time as a DateTimeOffset travels in JSON: "YYYY-MM-DD", optionally
 * "THH:MM[:SS[.fraction]]", optionally "Z" or "+HH:MM" / "-HH:MM" (none: UTC), into
 * microseconds since the epoch. False for anything else. */
bool hs_parse_iso_time(const char *s, size_t n, int64_t *us);

#endif
