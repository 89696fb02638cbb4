/*
 * The WAL checkpointer (SQLite): a thread with a connection of its own that copies the
 * write-ahead log into the database file, so that the writer's commits never wait for it.
 *
 * Left to itself, SQLite checkpoints on the connection that commits, inside the commit that
 * takes the log past 1,000 pages: every few hundred one-event commits, one of them also copies
 * the log and syncs both files (5-10 ms here), and every event behind it waits. With the
 * checkpointer, the writer's connection no longer checkpoints (hs_store_defer_checkpoints) and
 * this thread does, after every HS_CKPT_EVERY commits and at least every HS_CKPT_IDLE_MS,
 * without blocking the writer or the readers (PRAGMA wal_checkpoint(PASSIVE)).
 *
 * A passive checkpoint cannot start the log over while commits keep arriving behind it (the
 * log starts over only at a commit that finds every frame copied), so under a steady stream of
 * commits the log would grow without end. When a checkpoint leaves more than
 * HS_CKPT_BEHIND_FRAMES frames in the log, or cannot run, or has not begun one for three of
 * its intervals (a thread starved of CPU), the checkpointer says it is behind, and the writer
 * checkpoints on its own connection between two batches (SQLite's own way, at most once per
 * HS_CKPT_OWN_EVERY batches) until one has copied the whole log: the log then starts over at
 * the next commit. Under a steady stream of one-event commits the writer so
 * waits for a checkpoint about once per 500 commits (SQLite alone: once per ~250), and at a
 * lower rate not at all.
 *
 * The thread's connection is opened by the thread, and its ODBC calls are not counted by the
 * test-only fault injection (hs_store_fault): a fault sweep's count must not depend on when it
 * runs.
 */
#ifndef HS_CHECKPOINT_H
#define HS_CHECKPOINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/log.h"

#define HS_CKPT_EVERY         256  /* commits; about SQLite's own 1,000-page interval */
#define HS_CKPT_IDLE_MS       1000 /* at the latest; with nothing to copy it costs nothing */
#define HS_CKPT_BEHIND_FRAMES 2048 /* 8 MiB of 4 KiB pages */
#define HS_CKPT_OWN_EVERY     64   /* batches, between the writer's own checkpoints */

typedef struct hs_ckpt hs_ckpt_t;
typedef void (*hs_ckpt_log_fn)(void *ctx, hs_log_level_t level, const char *msg,
                               uint64_t suppressed);

/* Starts the thread, which connects to db when it first has a checkpoint to make. NULL with
 * err set when there is no memory or thread for it. */
hs_ckpt_t *hs_ckpt_start(const char *db, hs_ckpt_log_fn log, void *log_ctx, char *err,
                         size_t errlen);
/* The writer committed a transaction. */
void hs_ckpt_committed(hs_ckpt_t *c);
/* Whether the writer should checkpoint itself (see above). */
bool hs_ckpt_behind(hs_ckpt_t *c);
/* The writer's own checkpoint left log_frames in the log, copied_frames of them copied. */
void hs_ckpt_writer_did(hs_ckpt_t *c, int64_t log_frames, int64_t copied_frames);
/* Tests: while held, the thread makes no pass (as if starved of CPU). */
void hs_ckpt_hold(hs_ckpt_t *c, bool hold);
/* Checkpoints done by the thread (for tests and metrics). */
uint64_t hs_ckpt_count(hs_ckpt_t *c);
/* Stops the thread after a last checkpoint of what was committed, and closes its connection. */
void hs_ckpt_stop(hs_ckpt_t *c);

#endif
