/*
 * What the stress programs share: a check that fails the whole process with a clear message, a
 * monotonic clock, a small per-thread random generator and the summary line. Header-only, so each
 * program stays one main() file plus this.
 */
#ifndef HS_STRESS_H
#define HS_STRESS_H

#include <sched.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

/* Called once by stress_fail() before the process ends (e.g. to remove temporary files). */
static void (*stress_on_fail)(void);

/* Any thread: prints "FAIL <program>: <file>:<line>: <message>" and ends the process with 1.
 * _exit, not exit: the other threads are still running, and atexit handlers must not race
 * them. */
static inline void stress_fail(const char *file, int line, const char *cond, const char *fmt, ...)
    __attribute__((format(printf, 4, 5), noreturn));
static inline void stress_fail(const char *file, int line, const char *cond, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (cond)
        fprintf(stderr, "FAIL %s:%d: check `%s` failed: %s\n", file, line, cond, msg);
    else
        fprintf(stderr, "FAIL %s:%d: %s\n", file, line, msg);
    fflush(stderr);
    fflush(stdout);
    if (stress_on_fail) {
        void (*f)(void) = stress_on_fail;
        stress_on_fail = NULL;
        f();
    }
    _exit(1);
}

#define FAILF(...) stress_fail(__FILE__, __LINE__, NULL, __VA_ARGS__)

/* CHECK(cond, "format", args...): the message says what was expected and what was seen. */
#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond))                                                                               \
            stress_fail(__FILE__, __LINE__, #cond, __VA_ARGS__);                                   \
    } while (0)

static inline int64_t stress_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static inline void stress_sleep_us(long us)
{
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

/* Waiting for another thread without a lock: yield a few times (cheap on an idle machine, where
 * the thread waited for runs on the other core), then sleep 50 us per call, since on a busy
 * machine each yield can cost a whole time slice behind CPU-bound threads. Reset *spins to 0
 * after progress. */
static inline void stress_backoff(unsigned *spins)
{
    if ((*spins)++ < 16)
        sched_yield();
    else
        stress_sleep_us(50);
}

/* xorshift64*: one state per thread, never shared. */
static inline uint64_t stress_rand(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1DULL;
}

/* A value in [0, n). */
static inline uint32_t stress_below(uint64_t *state, uint32_t n)
{
    return (uint32_t)((stress_rand(state) >> 32) % n);
}

/* The one summary line every program prints on success. */
static inline void stress_summary(const char *name, unsigned long long ops, int64_t start_us,
                                  const char *detail)
{
    double s = (double)(stress_now_us() - start_us) / 1e6;
    printf("%s: ok: %llu operations in %.2f s%s%s\n", name, ops, s, detail && *detail ? "; " : "",
           detail ? detail : "");
    fflush(stdout);
}

#endif
