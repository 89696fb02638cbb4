/*
 * Byte budgets: how much memory the server lets reads hold on behalf of clients.
 *
 * A catch-up page (the blocks a subscriber's replay read from the database: copies, unlike live
 * events, which every subscriber shares) and a read answer (HTTP GET of events, the hub's Read)
 * are charged to a budget while they exist; freeing them gives the bytes back. Budgets nest: a
 * SignalR connection's budget bounds what that one connection may hold, and charges it passes on
 * to its parent, the server's global budget, which bounds all of them together. A charge that
 * would exceed any budget on the way up is refused as a whole, and the caller waits (catch-up)
 * or answers that the server is busy (reads).
 *
 * Refcounted: the owner holds one reference and every charged object holds one, so a budget
 * outlives its connection until the last page charged to it is freed. Any thread.
 */
#ifndef HS_BUDGET_H
#define HS_BUDGET_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct hs_budget hs_budget_t;

/* A budget of cap bytes charging its parent too (NULL for none; a reference to it is taken).
 * One reference (the caller's). NULL on ENOMEM. */
hs_budget_t *hs_budget_create(size_t cap, hs_budget_t *parent);
hs_budget_t *hs_budget_ref(hs_budget_t *b);
void hs_budget_unref(hs_budget_t *b);

/* Charges n bytes to b and every parent, or to none of them: false when one would go over its
 * cap. */
bool hs_budget_take(hs_budget_t *b, size_t n);
/* Charges n bytes to b and every parent even past their caps: for memory that exists already
 * and belongs to something admitted under the budget (a catch-up block's MessagePack form).
 * Takes fail until enough is given back. */
void hs_budget_force(hs_budget_t *b, size_t n);
/* Gives back n bytes charged by hs_budget_take or hs_budget_force. */
void hs_budget_give(hs_budget_t *b, size_t n);

/* Bytes currently charged (a snapshot). */
size_t hs_budget_used(const hs_budget_t *b);
size_t hs_budget_cap(const hs_budget_t *b);

#endif
