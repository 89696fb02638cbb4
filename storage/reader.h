/*
 * Reader threads: run database reads off the IO threads and off the fan-out workers.
 *
 * Each reader thread owns one store connection. A request says what to run (a function given
 * the thread's store) and how to report back (a function called on the reader thread when it is
 * done, typically pushing the request onto its owner's queue). Requests are spread round-robin.
 * The reader knows nothing of HTTP or subscriptions; it is a small pool of database connections.
 *
 * Fairness: each request names whom it is for (`owner`: a client's source address, or one of
 * the server's own parts), and a reader thread serves the owners with requests waiting in turn,
 * one request each, oldest first within an owner. A client that queues a hundred reads delays
 * another client's one read by at most one of its own, not by the hundred.
 */
#ifndef HS_READER_H
#define HS_READER_H

#include <stdbool.h>
#include <stdint.h>

#include "ringbuf/mpsc.h"
#include "storage/store.h"

typedef struct hs_read_req hs_read_req_t;

struct hs_read_req {
    hs_mpsc_node_t node; /* the reader's queue, then free for the done path */
    int (*run)(hs_store_t *st, hs_read_req_t *req); /* on the reader thread */
    void (*done)(hs_read_req_t *req);               /* on the reader thread, after run */
    int status;                                     /* run's return value */
    uint64_t owner;           /* whose turn it takes (above); set before hs_reader_submit */
    hs_read_req_t *fair_next; /* the reader thread's own: its owner's waiting requests */
};

typedef struct hs_reader hs_reader_t;

/* Opens n connections to `db` (the schema must already exist) and starts nothing yet. */
hs_reader_t *hs_reader_create(const char *db, int n, char *err, size_t errlen);
int hs_reader_start(hs_reader_t *r);
/* Runs every request already submitted, then stops the threads. */
void hs_reader_stop(hs_reader_t *r);
void hs_reader_destroy(hs_reader_t *r);

/* Any thread. Queues req; false when the reader is stopped (req untouched). */
bool hs_reader_submit(hs_reader_t *r, hs_read_req_t *req);

#endif
