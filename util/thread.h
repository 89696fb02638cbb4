/*
 * Thread names, so that `top -H`, `ps -L`, perf and the comm file of each task in /proc tell the
 * server's threads apart: hs-io-N, hs-fanout-N, hs-writer, hs-reader-N, hs-accept, hs-backplane.
 */
#ifndef HS_THREAD_H
#define HS_THREAD_H

#include <pthread.h>

/* Names thread t `prefix` followed by index when index >= 0 (at most 15 bytes are kept, the
 * kernel's limit). Best effort: a failure leaves the inherited name. Any thread. */
void hs_thread_name(pthread_t t, const char *prefix, int index);

#endif
