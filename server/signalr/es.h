/*
 * /eventstreamhub's admin routes (esadmin.c) and what they ask of the hub's connections (es.c).
 * Private to the server.
 */
#ifndef HS_ES_H
#define HS_ES_H

#include <stdbool.h>
#include <stddef.h>

#include "proto/json.h"
#include "server/signalr/hub.h"
#include "storage/writer.h"

/* ---- es.c (any thread) ---- */

/* Pauses (true) or resumes /eventstreamhub's delivery on every IO thread: a paused subscription
 * keeps its cursor and, once resumed, catches up on what was committed meanwhile. */
void hs_es_set_paused(hs_server_t *srv, bool paused);

/* Sends one array of events (raw PascalCase JSON, `[...]`) of `stream` to every connection of
 * this server where subscriber sub_id is subscribed, as a live array would go. 0, or HS_ENOMEM. */
int hs_es_replay_post(hs_server_t *srv, const char *sub_id, const char *stream, size_t stream_len,
                      const char *array, size_t len);

/* ---- esargs.c (IO thread): request bodies (a 400 answered when wrong) and answers ---- */

bool hs_esa_body_object(hs_conn_t *c, hs_json_span_t *obj);
/* An object's member by name, ASCII case ignored: false when absent or null. */
bool hs_esa_member(const hs_json_span_t *obj, const char *name, hs_json_span_t *v);
/* An optional ISO 8601 time member (left alone when absent). */
bool hs_esa_time_member(hs_conn_t *c, const hs_json_span_t *obj, const char *name, int64_t *us);
/* A stream named by {name} (trimmed; create: it may be created) or {streamId}. */
bool hs_esa_ref(hs_conn_t *c, const hs_json_span_t *obj, hs_es_ref_t *r, bool create);
hs_es_op_t *hs_esa_associate_op(hs_conn_t *c);
/* The answer to an association's entry; freeing an admin entry (and its operation). */
void hs_esa_associated(hs_conn_t *c, hs_ingest_t *e);
void hs_esa_entry_free(hs_ingest_t *e);

/* ---- esadmin.c ---- */

/* Registers the transport and the /api/EventStream/ route. */
void hs_esadmin_register(hs_server_t *srv);

#endif
