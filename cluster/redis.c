/*
 * The Redis backplane (backplane.h): one thread, two connections. SUBSCRIBE on one; on the
 * other, PUBLISH of the heads the writer left after its last commit (hs_backplane_announce only
 * stores them and wakes this thread, so the writer never waits for Redis). Announcements made
 * while Redis is away are dropped: the other nodes read the heads every second anyway, and each
 * reads them at once when its own subscription comes back.
 *
 * Connecting blocks this thread for at most CONNECT_TIMEOUT (a stop waits that long at worst);
 * a PUBLISH waits at most IO_TIMEOUT.
 */
#include "cluster/backplane_impl.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>

#include "hubstream/hubstream.h"
#include "util/time.h"

static const struct timeval CONNECT_TIMEOUT = {2, 0};
static const struct timeval IO_TIMEOUT = {1, 0};
#define PUB_RETRY_US 1000000

static redisContext *connect_to(hs_backplane_t *b, char *why, size_t cap)
{
    redisContext *c = redisConnectWithTimeout(b->host, b->port, CONNECT_TIMEOUT);
    if (!c) {
        snprintf(why, cap, "out of memory");
        return NULL;
    }
    if (c->err || redisSetTimeout(c, IO_TIMEOUT) != REDIS_OK) {
        snprintf(why, cap, "%s:%d: %s", b->host, b->port, c->errstr[0] ? c->errstr : "timeout");
        redisFree(c);
        return NULL;
    }
    return c;
}

static redisContext *subscribe(hs_backplane_t *b, char *why, size_t cap)
{
    redisContext *c = connect_to(b, why, cap);
    if (!c)
        return NULL;
    redisReply *r = redisCommand(c, "SUBSCRIBE %s", b->channel);
    bool ok = r && r->type == REDIS_REPLY_ARRAY;
    if (!ok)
        snprintf(why, cap, "SUBSCRIBE: %s",
                 r && r->type == REDIS_REPLY_ERROR ? r->str
                 : c->errstr[0]                    ? c->errstr
                                                   : "no reply");
    if (r)
        freeReplyObject(r);
    if (!ok) {
        redisFree(c);
        return NULL;
    }
    return c;
}

static void on_reply(hs_backplane_t *b, redisReply *r)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
        r->element[0]->type != REDIS_REPLY_STRING || strcmp(r->element[0]->str, "message") ||
        r->element[2]->type != REDIS_REPLY_STRING)
        return;
    int64_t pos, seq;
    if (hs_backplane_payload(r->element[2]->str, r->element[2]->len, &pos, &seq) == 0)
        hs_writer_remote(b->w, pos, seq);
    else
        hs_writer_recheck(b->w);
}

/* Publishes the newest announced heads, connecting first when needed. */
static void publish(hs_backplane_t *b, redisContext **pub, int64_t *failed_us)
{
    if (!*pub) {
        if (hs_mono_us() - *failed_us < PUB_RETRY_US)
            return;
        char why[256];
        if (!(*pub = connect_to(b, why, sizeof why))) {
            *failed_us = hs_mono_us();
            return;
        }
    }
    char payload[48];
    snprintf(payload, sizeof payload, "%lld %lld", (long long)atomic_load(&b->ann_pos),
             (long long)atomic_load(&b->ann_seq));
    redisReply *r = redisCommand(*pub, "PUBLISH %s %s", b->channel, payload);
    bool ok = r && r->type == REDIS_REPLY_INTEGER;
    if (r)
        freeReplyObject(r);
    if (!ok) {
        redisFree(*pub);
        *pub = NULL;
        *failed_us = hs_mono_us();
    }
}

void *hs_bp_redis_run(void *arg)
{
    hs_backplane_t *b = arg;
    redisContext *pub = NULL;
    int64_t pub_failed_us = 0;
    char why[512];
    while (!atomic_load(&b->stopping)) {
        redisContext *sub = subscribe(b, why, sizeof why);
        if (!sub) {
            if (!hs_bp_retry(b, "redis", why))
                break;
            continue;
        }
        hs_bp_up(b, "redis");
        for (;;) {
            void *reply = NULL;
            bool lost = false;
            while (redisGetReplyFromReader(sub, &reply) == REDIS_OK && reply) {
                on_reply(b, reply);
                freeReplyObject(reply);
                reply = NULL;
            }
            if (sub->err) {
                snprintf(why, sizeof why, "%s", sub->errstr);
                break;
            }
            int r = hs_bp_wait(b, sub->fd, 1000);
            if (r < 0)
                break;
            if (atomic_exchange(&b->ann_due, 0))
                publish(b, &pub, &pub_failed_us);
            if (r > 0 && redisBufferRead(sub) != REDIS_OK)
                lost = true;
            if (lost) {
                snprintf(why, sizeof why, "%s", sub->errstr[0] ? sub->errstr : "connection lost");
                break;
            }
        }
        redisFree(sub);
        if (atomic_load(&b->stopping) || !hs_bp_retry(b, "redis", why))
            break;
    }
    if (pub)
        redisFree(pub);
    atomic_store(&b->connected, 0);
    return NULL;
}
