/* Thread names (see thread.h). */
#define _GNU_SOURCE /* pthread_setname_np */
#include <pthread.h>
#include <stdio.h>

#include "util/thread.h"

void hs_thread_name(pthread_t t, const char *prefix, int index)
{
    char name[16]; /* the kernel keeps 15 bytes and the NUL */
    if (index >= 0)
        snprintf(name, sizeof name, "%s%d", prefix, index);
    else
        snprintf(name, sizeof name, "%s", prefix);
    (void)pthread_setname_np(t, name);
}
