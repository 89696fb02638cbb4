/* Clocks and time formatting (see time.h). */
#include "util/time.h"

#include <ctype.h>
#include <stdio.h>
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

/* An ISO 8601 date and time (a DateTimeOffset as JSON carries it): "YYYY-MM-DD", optionally
 * "THH:MM[:SS[.fraction]]", optionally "Z" or "+HH:MM" / "-HH:MM" (none: UTC). */
bool hs_parse_iso_time(const char *s, size_t n, int64_t *us)
{
    struct tm tm = {0};
    int y, mo, d, h = 0, mi = 0, sec = 0, used = 0;
    char buf[64];
    if (n >= sizeof buf)
        return false;
    memcpy(buf, s, n);
    buf[n] = '\0';
    if (sscanf(buf, "%4d-%2d-%2d%n", &y, &mo, &d, &used) != 3 || used != 10)
        return false;
    const char *p = buf + 10;
    int64_t frac = 0;
    if (*p == 'T' || *p == ' ') {
        int u2 = 0;
        if (sscanf(p + 1, "%2d:%2d%n", &h, &mi, &u2) != 2 || u2 != 5)
            return false;
        p += 6;
        if (*p == ':') {
            if (!isdigit((unsigned char)p[1]) || !isdigit((unsigned char)p[2]))
                return false;
            sec = (p[1] - '0') * 10 + (p[2] - '0');
            p += 3;
            if (*p == '.') {
                int digits = 0;
                for (p++; isdigit((unsigned char)*p); p++, digits++)
                    if (digits < 6)
                        frac = frac * 10 + (*p - '0');
                if (!digits)
                    return false;
                for (; digits < 6; digits++)
                    frac *= 10;
            }
        }
    }
    int64_t off = 0;
    if (*p == 'Z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int oh, om, u3 = 0;
        if (sscanf(p + 1, "%2d:%2d%n", &oh, &om, &u3) != 2 || u3 != 5 || oh > 23 || om > 59)
            return false;
        off = (int64_t)(oh * 60 + om) * 60 * (*p == '-' ? -1 : 1);
        p += 6;
    }
    if (*p || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60 || y < 1)
        return false;
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    time_t t = timegm(&tm);
    *us = ((int64_t)t - off) * 1000000 + frac;
    return true;
}

/* DateTimeOffset's round-trip form of a time in microseconds, into out (40 bytes). */
void hs_format_offset_time(int64_t us, char out[40])
{
    char iso[32]; /* "2026-11-22T05:30:00.123456Z" */
    hs_format_time(us, iso);
    size_t n = strlen(iso);
    snprintf(out, 40, "%.*s0+00:00", (int)(n ? n - 1 : 0), iso);
}
