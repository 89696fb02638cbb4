/*
 * The store's statements for several nodes on one database (store.h, "several nodes"): the two
 * heads, the log of closes and deletes, the retention leader's lock and notifications.
 */
#include <stdio.h>
#include <string.h>

#include "hubstream/hubstream.h"
#include "storage/store_impl.h"

static int heads(hs_store_t *st, int64_t *pos, int64_t *seq)
{
    SQLHSTMT h;
    int rc = hs_st_run(st, Q_HEADS, NULL, 0, &h, NULL);
    if (rc)
        return rc;
    *pos = 0;
    *seq = 0;
    rc = hs_st_fetch(st, h, Q_HEADS);
    if (rc == 1) {
        *pos = hs_st_ival(st, 0);
        *seq = hs_st_ival(st, 1);
    }
    SQLFreeStmt(h, SQL_CLOSE);
    return rc < 0 ? rc : 0;
}

int hs_store_heads(hs_store_t *st, int64_t *pos, int64_t *seq)
{
    if (!pos || !seq)
        return hs_st_fail(st, HS_EINVAL, "heads: bad argument");
    return hs_st_finish(st, heads(st, pos, seq));
}

int hs_store_log_op(hs_store_t *st, const hs_stream_op_t *op)
{
    if (!op || hs_st_bad_text(op->name, op->name_len))
        return hs_st_fail(st, HS_EINVAL, "log stream operation: bad argument");
    hs_par_t p[] = {HS_PINT(op->seq),     HS_PINT(op->position), HS_PINT(op->kind),
                    HS_PINT(op->version), HS_PINT(op->time_us),  HS_PTXT(op->name, op->name_len)};
    return hs_st_finish(st, hs_st_run(st, Q_OP_INSERT, p, 6, NULL, NULL));
}

static int read_ops(hs_store_t *st, int64_t after, int64_t upto, hs_op_cb cb, void *ctx)
{
    hs_par_t p[] = {HS_PINT(after), HS_PINT(upto)};
    SQLHSTMT h;
    int rc = hs_st_run(st, Q_OP_READ, p, 2, &h, NULL);
    if (rc)
        return rc;
    int stop = 0;
    while (!stop && (rc = hs_st_fetch(st, h, Q_OP_READ)) == 1) {
        hs_stream_op_t op = {
            .seq = hs_st_ival(st, 0),
            .position = hs_st_ival(st, 1),
            .kind = (int)hs_st_ival(st, 2),
            .version = hs_st_ival(st, 3),
            .time_us = hs_st_ival(st, 4),
        };
        rc = hs_st_text_col(st, h, 6, &st->t[T_STREAM], &op.name, &op.name_len);
        if (rc)
            break;
        if (!op.name)
            op.name = "";
        stop = cb(ctx, &op);
    }
    SQLFreeStmt(h, SQL_CLOSE);
    return rc < 0 ? rc : stop;
}

int hs_store_read_ops(hs_store_t *st, int64_t after, int64_t upto, hs_op_cb cb, void *ctx)
{
    if (!cb)
        return hs_st_fail(st, HS_EINVAL, "read stream operations: bad argument");
    return hs_st_finish(st, read_ops(st, after, upto, cb, ctx));
}

int hs_store_prune_ops(hs_store_t *st, int64_t before_us)
{
    hs_par_t p[] = {HS_PINT(before_us)};
    return hs_st_finish(st, hs_st_run(st, Q_OP_PRUNE, p, 1, NULL, NULL));
}

static int lead(hs_store_t *st)
{
    SQLHSTMT h;
    int rc = hs_st_run(st, Q_LEADER, NULL, 0, &h, NULL);
    if (rc)
        return rc;
    rc = hs_st_fetch(st, h, Q_LEADER);
    int lead = rc == 1 && hs_st_ival(st, 0) == 1;
    SQLFreeStmt(h, SQL_CLOSE);
    return rc < 0 ? rc : lead;
}

int hs_store_lead(hs_store_t *st)
{
    if (!st->d->leader_sql)
        return 1;
    if (st->in_txn)
        return hs_st_fail(st, HS_EINVAL, "hs_store_lead() inside a transaction");
    int rc = lead(st);
    int fin = hs_st_finish(st, rc < 0 ? rc : 0);
    return rc < 0 ? rc : fin ? fin : rc;
}

bool hs_store_can_notify(const hs_store_t *st)
{
    return st->d->notify_sql != NULL;
}

int hs_store_notify(hs_store_t *st, const char *payload, size_t len)
{
    hs_par_t p[] = {HS_PTXT(payload, len)};
    return hs_st_finish(st, hs_st_run(st, Q_NOTIFY, p, 1, NULL, NULL));
}
