/*
 * /eventstreamhub's admin routes (esadmin.c) and what they ask of the hub's connections (es.c).
 * Private to the server.
 */
#ifndef HS_ES_H
#define HS_ES_H

#include <stdbool.h>
#include <stddef.h>

#include "server/signalr/hub.h"

/* ---- es.c (any thread) ---- */

/* Pauses (true) or resumes /eventstreamhub's delivery on every IO thread: a paused subscription
 * keeps its cursor and, once resumed, catches up on what was committed meanwhile. */
void hs_es_set_paused(hs_server_t *srv, bool paused);

/* Sends one array of events (raw PascalCase JSON, `[...]`) of `stream` to every connection of
 * this server where subscriber sub_id is subscribed, as a live array would go. 0, or HS_ENOMEM. */
int hs_es_replay_post(hs_server_t *srv, const char *sub_id, const char *stream, size_t stream_len,
                      const char *array, size_t len);

/* ---- esadmin.c ---- */

/* Registers the transport and the /api/EventStream/ route. */
void hs_esadmin_register(hs_server_t *srv);

#endif
