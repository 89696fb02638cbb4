/*
 * /metrics: the server's counters in the Prometheus text exposition format (version 0.0.4).
 * Every figure is read at scrape time from its owner's counters (util/metrics.h: the IO
 * threads', the writer's, the fan-out workers') and summed; nothing on a per-message path takes
 * a lock or makes a shared write for it. Private to the server.
 */
#ifndef HS_METRICS_H
#define HS_METRICS_H

#include "server/server.h"
#include "util/buf.h"

/* Appends the exposition to out: 0 or HS_ENOMEM. Any thread. */
int hs_metrics_render(hs_server_t *srv, hs_buf_t *out);

/* Registers GET /metrics (admin permission when auth is on). */
void hs_metrics_register(hs_server_t *srv);

#endif
