/* UUIDs (see uuid.h). */
#include "util/uuid.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

static _Thread_local uint64_t rng_state[2];

static uint64_t rng_next(void)
{
    if (!rng_state[0] && !rng_state[1]) {
        if (getrandom(rng_state, sizeof(rng_state), 0) != sizeof(rng_state)) {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            rng_state[0] = (uint64_t)ts.tv_nsec * 0x9E3779B97F4A7C15ull | 1;
            rng_state[1] = (uint64_t)(uintptr_t)&ts ^ (uint64_t)ts.tv_sec;
        }
    }
    /* xorshift128+ */
    uint64_t s1 = rng_state[0];
    const uint64_t s0 = rng_state[1];
    rng_state[0] = s0;
    s1 ^= s1 << 23;
    rng_state[1] = s1 ^ s0 ^ (s1 >> 17) ^ (s0 >> 26);
    return rng_state[1] + s0;
}

static void uuid_format(const uint8_t b[16], char out[37])
{
    static const char hex[] = "0123456789abcdef";
    int o = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[b[i] >> 4];
        out[o++] = hex[b[i] & 15];
    }
    out[o] = '\0';
}

void hs_uuid4(char out[37])
{
    uint8_t b[16];
    uint64_t a = rng_next(), c = rng_next();
    memcpy(b, &a, 8);
    memcpy(b + 8, &c, 8);
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
    uuid_format(b, out);
}

void hs_uuid7(char out[37])
{
    /* 48-bit Unix milliseconds, then a per-thread counter in the 12 "rand_a" bits so ids of one
     * thread keep increasing within a millisecond, then 62 random bits */
    static _Thread_local uint64_t last_ms;
    static _Thread_local uint32_t seq;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
    if (ms <= last_ms) {
        ms = last_ms;
        if (++seq > 0xfff) { /* 4096 ids in one millisecond: borrow the next one */
            ms = ++last_ms;
            seq = 0;
        }
    } else {
        last_ms = ms;
        seq = (uint32_t)(rng_next() & 0x3ff); /* leave room to count up */
    }
    uint8_t b[16];
    for (int i = 0; i < 6; i++)
        b[i] = (uint8_t)(ms >> (40 - 8 * i));
    b[6] = (uint8_t)(0x70 | (seq >> 8));
    b[7] = (uint8_t)seq;
    uint64_t r = rng_next();
    memcpy(b + 8, &r, 8);
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
    uuid_format(b, out);
}

/* SplitMix64's finaliser: spreads every input bit over the output. */
static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void hs_uuid_of_name(const char *name, size_t len, char out[37])
{
    /* two FNV-1a 64 lanes with different offsets, each finished by mix64, the length folded
     * into both: not a cryptographic hash (nobody gains by colliding two of their own stream
     * names), stable across versions and machines */
    uint64_t a = 0xcbf29ce484222325ull, c = 0x84222325cbf29ce4ull ^ (uint64_t)len;
    for (size_t i = 0; i < len; i++) {
        a = (a ^ (uint8_t)name[i]) * 0x100000001b3ull;
        c = (c ^ (uint8_t)name[i]) * 0x100000001b3ull;
        c ^= c >> 29;
    }
    a = mix64(a ^ (uint64_t)len);
    c = mix64(c + 0x9e3779b97f4a7c15ull);
    uint8_t b[16];
    for (int i = 0; i < 8; i++) {
        b[i] = (uint8_t)(a >> (56 - 8 * i));
        b[8 + i] = (uint8_t)(c >> (56 - 8 * i));
    }
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x80); /* version 8: custom (RFC 9562) */
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
    uuid_format(b, out);
}

bool hs_uuid_parse(const char *s, size_t n, char out[37])
{
    if (n >= 2 && ((s[0] == '{' && s[n - 1] == '}') || (s[0] == '(' && s[n - 1] == ')'))) {
        s++;
        n -= 2;
    }
    char hex[32];
    size_t k = 0;
    bool dashed = n == 36;
    if (!dashed && n != 32)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (dashed && (i == 8 || i == 13 || i == 18 || i == 23)) {
            if (s[i] != '-')
                return false;
            continue;
        }
        char c = s[i];
        if (c >= 'A' && c <= 'F')
            c = (char)(c + 32);
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')) || k == 32)
            return false;
        hex[k++] = c;
    }
    if (k != 32)
        return false;
    int o = 0;
    for (int i = 0; i < 32; i++) {
        if (i == 8 || i == 12 || i == 16 || i == 20)
            out[o++] = '-';
        out[o++] = hex[i];
    }
    out[o] = '\0';
    return true;
}
