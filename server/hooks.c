/*
 * The embedder's hooks (include/hubstream/hubstream.h: the log sink, the event check) and how
 * the front ends run them. Below every front end (http/, signalr/), calling none of them; the
 * hooks themselves are stored in the server's shared context (server.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/server.h"

void hs_server_set_log_hook(hs_server_t *srv, hs_log_fn fn, void *ctx)
{
    srv->log.fn = fn;
    srv->log.ctx = ctx;
}

void hs_server_set_event_hook(hs_server_t *srv, hs_event_fn fn, void *ctx)
{
    srv->event_hook = fn;
    srv->event_ctx = ctx;
}

int hs_server_events_hook(hs_server_t *srv, hs_ingest_t *e, char *why, size_t whylen)
{
    if (!srv->event_hook)
        return 0;
    for (uint32_t i = 0; i < e->nevents; i++) {
        hs_ingest_event_t *ie = &e->events[i];
        /* data/metadata are not NUL-terminated in the arena: give the hook copies */
        char *data = strndup(ie->data, ie->data_len);
        char *meta = ie->metadata ? strndup(ie->metadata, ie->metadata_len) : NULL;
        hs_event_t he = {ie->type, data, meta, ie->id};
        snprintf(why, whylen, "rejected");
        int hr = data ? srv->event_hook(srv->event_ctx, e->stream, &he, why, whylen) : -1;
        free(data);
        free(meta);
        if (hr)
            return -1;
    }
    return 0;
}
