/* Clocks and time formatting (see time.h). */
#include "util/time.h"

#include <string.h>
#include <time.h>

int64_t hs_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t hs_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t hs_wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void put2(char *o, int v)
{
    o[0] = (char)('0' + v / 10 % 10);
    o[1] = (char)('0' + v % 10);
}

void hs_format_time(int64_t time_us, char out[32])
{
    /* one gmtime_r per second and thread: a batch shares its commit time */
    static _Thread_local time_t cached_secs = -1;
    static _Thread_local char cached[20];
    time_t secs = (time_t)(time_us / 1000000);
    long us = (long)(time_us % 1000000);
    if (us < 0) {
        us += 1000000;
        secs--;
    }
    if (secs != cached_secs) {
        struct tm tm;
        gmtime_r(&secs, &tm);
        int y = tm.tm_year + 1900;
        put2(cached, y / 100);
        put2(cached + 2, y % 100);
        cached[4] = '-';
        put2(cached + 5, tm.tm_mon + 1);
        cached[7] = '-';
        put2(cached + 8, tm.tm_mday);
        cached[10] = 'T';
        put2(cached + 11, tm.tm_hour);
        cached[13] = ':';
        put2(cached + 14, tm.tm_min);
        cached[16] = ':';
        put2(cached + 17, tm.tm_sec);
        cached[19] = '.';
        cached_secs = secs;
    }
    memcpy(out, cached, 20);
    for (int k = 25; k >= 20; k--) {
        out[k] = (char)('0' + us % 10);
        us /= 10;
    }
    out[26] = 'Z';
    out[27] = '\0';
}
