/*
 * The store's reads (see store.h): a stream's events or all of them by position, forwards or
 * backwards, in pages sized to the events' lengths, fetched in blocks of rows (column arrays)
 * where the driver can; and the listing of streams by prefix. Same connection rules as store.c.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hubstream/hubstream.h>

#include "storage/store_impl.h"
#include "util/utf8.h"

/* ---- reads ---- */

static size_t next_page(size_t page, size_t biggest)
{
    size_t n = page * 4 < PAGE_MAX ? page * 4 : PAGE_MAX;
    if (biggest > 0 && n > PAGE_BYTES / biggest)
        n = PAGE_BYTES / biggest;
    return n < PAGE_MIN ? PAGE_MIN : n;
}

/*
 * The paged read behind hs_store_read_stream() and hs_store_read_all(). With a name it reads
 * that stream (key: version), else every stream (key: position, and the stream name is the
 * 4th column). Each page continues after the last key seen.
 */
static int read_events(hs_store_t *st, int q, const char *name, size_t name_len, int64_t after,
                       size_t limit, hs_record_cb cb, void *ctx)
{
    bool all = name == NULL;
    size_t left = limit, page = PAGE_FIRST;

    while (left > 0) {
        size_t want = left < page ? left : page;
        hs_par_t p[3];
        int np = 0;
        if (!all)
            p[np++] = HS_PTXT(name, name_len);
        p[np++] = HS_PINT(after);
        p[np++] = HS_PINT(want);
        SQLHSTMT h;
        int rc = hs_st_run(st, q, p, np, &h, NULL);
        if (rc)
            return rc;

        size_t got = 0, biggest = 0;
        while ((rc = hs_st_fetch(st, h, q)) == 1) {
            hs_record_t rec;
            SQLUSMALLINT col = 4;
            rc = 0;
            rec.version = hs_st_ival(st, 0);
            rec.position = hs_st_ival(st, 1);
            rec.time_us = hs_st_ival(st, 2);
            if (all) {
                rc = hs_st_text_col(st, h, col++, &st->t[T_STREAM], &rec.stream, &rec.stream_len);
            } else {
                rec.stream = name;
                rec.stream_len = name_len;
            }
            if (rc == 0)
                rc = hs_st_text_col(st, h, col++, &st->t[T_EVENT_ID], &rec.event_id,
                                    &rec.event_id_len);
            if (rc == 0)
                rc = hs_st_text_col(st, h, col++, &st->t[T_TYPE], &rec.type, &rec.type_len);
            if (rc == 0)
                rc = hs_st_text_col(st, h, col++, &st->t[T_DATA], &rec.data, &rec.data_len);
            if (rc == 0)
                rc = hs_st_text_col(st, h, col++, &st->t[T_META], &rec.metadata, &rec.metadata_len);
            if (rc == 0 && (!rec.event_id || !rec.type || !rec.data || !rec.stream))
                rc = hs_st_fail(st, HS_EDB, "%s: NULL in a NOT NULL column at position %lld",
                                qinfo[q].what, (long long)rec.position);
            if (rc)
                break;
            size_t size =
                rec.stream_len + rec.event_id_len + rec.type_len + rec.data_len + rec.metadata_len;
            if (size > biggest)
                biggest = size;
            got++;
            left--;
            after = all ? rec.position : rec.version;
            rc = cb(ctx, &rec);
            if (rc)
                break;
        }
        SQLFreeStmt(h, SQL_CLOSE);
        if (rc)
            return rc;
        if (got < want)
            break;
        page = next_page(page, biggest);
    }
    return 0;
}

/* Sizes the block for `want` rows at the current widths; returns the rows it holds (>= 1). */
static size_t block_reserve(hs_store_t *st, size_t want)
{
    rblock_t *b = &st->rb;
    size_t per_row = 0;
    for (int c = 0; c < B_COUNT; c++)
        per_row += b->width[c];
    size_t rows = want < BLOCK_ROWS ? want : BLOCK_ROWS;
    if (rows > BLOCK_BYTES / per_row)
        rows = BLOCK_BYTES / per_row;
    if (rows < 1)
        rows = 1;
    if (rows > b->cap) {
        size_t have;
        for (int i = 0; i < 3; i++) {
            have = b->cap;
            SQLBIGINT *x = hs_odbc_grow(b->num[i], &have, rows, sizeof *x);
            if (!x)
                return 0;
            b->num[i] = x;
            have = b->cap;
            SQLLEN *y = hs_odbc_grow(b->num_ind[i], &have, rows, sizeof *y);
            if (!y)
                return 0;
            b->num_ind[i] = y;
        }
        for (int c = 0; c < B_COUNT; c++) {
            have = b->cap;
            SQLLEN *y = hs_odbc_grow(b->ind[c], &have, rows, sizeof *y);
            if (!y)
                return 0;
            b->ind[c] = y;
        }
        have = b->cap;
        SQLUSMALLINT *z = hs_odbc_grow(b->status, &have, rows, sizeof *z);
        if (!z)
            return 0;
        b->status = z;
        b->cap = rows;
    }
    for (int c = 0; c < B_COUNT; c++) {
        char *x = hs_odbc_grow(b->text[c], &b->text_cap[c], rows * b->width[c], 1);
        if (!x)
            return 0;
        b->text[c] = x;
    }
    return rows;
}

/* Binds the block's arrays to statement h (a forward read; `all`: with the stream column). */
static int block_bind(hs_store_t *st, SQLHSTMT h, bool all, size_t rows)
{
    rblock_t *b = &st->rb;
    SQLRETURN r = SQLSetStmtAttr(h, SQL_ATTR_ROW_BIND_TYPE, (SQLPOINTER)SQL_BIND_BY_COLUMN, 0);
    if (SQL_SUCCEEDED(r))
        r = SQLSetStmtAttr(h, SQL_ATTR_ROW_ARRAY_SIZE, (SQLPOINTER)(uintptr_t)rows, 0);
    if (SQL_SUCCEEDED(r))
        r = SQLSetStmtAttr(h, SQL_ATTR_ROWS_FETCHED_PTR, &b->fetched, 0);
    if (SQL_SUCCEEDED(r))
        r = SQLSetStmtAttr(h, SQL_ATTR_ROW_STATUS_PTR, b->status, 0);
    SQLUSMALLINT col = 1;
    for (int i = 0; i < 3 && SQL_SUCCEEDED(r); i++)
        r = SQLBindCol(h, col++, SQL_C_SBIGINT, b->num[i], 0, b->num_ind[i]);
    for (int c = all ? B_STREAM : B_EVENT_ID; c < B_COUNT && SQL_SUCCEEDED(r); c++)
        r = SQLBindCol(h, col++, SQL_C_CHAR, b->text[c], (SQLLEN)b->width[c], b->ind[c]);
    if (!SQL_SUCCEEDED(r))
        return hs_st_dbfail(st, SQL_HANDLE_STMT, h, "cannot bind a read block");
    return 0;
}

/*
 * The forward read of read_events() through a block cursor. Same contract; each query continues
 * after the last key delivered.
 */
static int read_block(hs_store_t *st, int q, const char *name, size_t name_len, int64_t after,
                      size_t limit, hs_record_cb cb, void *ctx)
{
    rblock_t *b = &st->rb;
    bool all = name == NULL;
    size_t left = limit, page = PAGE_FIRST;
    static const size_t first_width[B_COUNT] = {256, 128, 128, 512, 256};
    if (!b->width[0])
        memcpy(b->width, first_width, sizeof first_width);

    while (left > 0) {
        size_t want = left < page ? left : page;
        size_t rows = block_reserve(st, want);
        if (!rows)
            return hs_st_nomem(st);
        SQLHSTMT h;
        int rc = hs_st_prep(st, q, &h);
        if (rc)
            return rc;
        if ((rc = block_bind(st, h, all, rows)))
            return rc;
        hs_par_t p[3];
        int np = 0;
        if (!all)
            p[np++] = HS_PTXT(name, name_len);
        p[np++] = HS_PINT(after);
        p[np++] = HS_PINT(want);
        if ((rc = hs_st_run(st, q, p, np, &h, NULL)))
            return rc;

        size_t got = 0, biggest = 0, longest[B_COUNT] = {0};
        bool widened = false, end = false;
        while (rc == 0 && !widened && !end) {
            b->fetched = 0;
            int fr = hs_st_fetch(st, h, q); /* a block of rows */
            if (fr == 0)
                break;
            if (fr < 0) {
                rc = fr;
                break;
            }
            if (b->fetched < rows)
                end = true; /* the last block of this query */
            for (size_t i = 0; i < b->fetched && rc == 0; i++) {
                if (b->status[i] != SQL_ROW_SUCCESS && b->status[i] != SQL_ROW_SUCCESS_WITH_INFO) {
                    rc = hs_st_fail(st, HS_EDB, "%s: row %zu of a block failed", qinfo[q].what,
                                    i + 1);
                    break;
                }
                /* a value that did not fit: widen its column, read again from here */
                for (int c = all ? B_STREAM : B_EVENT_ID; c < B_COUNT; c++) {
                    SQLLEN ind = b->ind[c][i];
                    if (ind == SQL_NO_TOTAL || (ind >= 0 && (size_t)ind >= b->width[c])) {
                        size_t need = ind == SQL_NO_TOTAL ? b->width[c] * 4 : (size_t)ind + 1;
                        if (need > HS_ODBC_TEXT_MAX)
                            need = HS_ODBC_TEXT_MAX;
                        b->width[c] = hs_odbc_pow2_above(need - 1);
                        widened = true;
                    }
                }
                if (widened)
                    break;
                hs_record_t rec;
                const char *txt[B_COUNT];
                size_t len[B_COUNT];
                for (int c = 0; c < B_COUNT; c++) {
                    SQLLEN ind = b->ind[c][i];
                    bool null = (c == B_STREAM && !all) || ind == SQL_NULL_DATA;
                    txt[c] = null ? NULL : b->text[c] + i * b->width[c];
                    len[c] = null ? 0 : (size_t)ind;
                    if (len[c] > longest[c])
                        longest[c] = len[c];
                }
                rec.version = b->num_ind[0][i] == SQL_NULL_DATA ? 0 : (int64_t)b->num[0][i];
                rec.position = b->num_ind[1][i] == SQL_NULL_DATA ? 0 : (int64_t)b->num[1][i];
                rec.time_us = b->num_ind[2][i] == SQL_NULL_DATA ? 0 : (int64_t)b->num[2][i];
                rec.stream = all ? txt[B_STREAM] : name;
                rec.stream_len = all ? len[B_STREAM] : name_len;
                rec.event_id = txt[B_EVENT_ID];
                rec.event_id_len = len[B_EVENT_ID];
                rec.type = txt[B_TYPE];
                rec.type_len = len[B_TYPE];
                rec.data = txt[B_DATA];
                rec.data_len = len[B_DATA];
                rec.metadata = txt[B_META];
                rec.metadata_len = len[B_META];
                if (!rec.event_id || !rec.type || !rec.data || !rec.stream) {
                    rc = hs_st_fail(st, HS_EDB, "%s: NULL in a NOT NULL column at position %lld",
                                    qinfo[q].what, (long long)rec.position);
                    break;
                }
                size_t size = rec.stream_len + rec.event_id_len + rec.type_len + rec.data_len +
                              rec.metadata_len;
                if (size > biggest)
                    biggest = size;
                got++;
                left--;
                after = all ? rec.position : rec.version;
                rc = cb(ctx, &rec);
            }
        }
        SQLFreeStmt(h, SQL_CLOSE);
        if (rc)
            return rc;
        if (widened)
            continue; /* the same page again, from the row that did not fit */
        /* one big event must not leave a column wide (and blocks short) for good */
        for (int c = 0; c < B_COUNT && got > 0; c++) {
            size_t fit = hs_odbc_pow2_above(longest[c]) * 2;
            if (fit < first_width[c])
                fit = first_width[c];
            if (fit * 4 <= b->width[c])
                b->width[c] = fit;
        }
        if (got < want)
            break;
        page = next_page(page, biggest);
    }
    return 0;
}

int hs_store_read_stream(hs_store_t *st, const char *name, size_t len, int64_t after, bool backward,
                         size_t limit, hs_record_cb cb, void *ctx)
{
    if (hs_st_bad_text(name, len) || !cb)
        return hs_st_fail(st, HS_EINVAL, "read stream: bad argument");
    if (backward && after <= 0)
        after = INT64_MAX;
    if (!backward)
        return hs_st_finish(
            st, read_block(st, Q_READ_STREAM_BLOCK, name ? name : "", len, after, limit, cb, ctx));
    return hs_st_finish(
        st, read_events(st, Q_READ_STREAM_BWD, name ? name : "", len, after, limit, cb, ctx));
}

int hs_store_read_all(hs_store_t *st, int64_t after, bool backward, size_t limit, hs_record_cb cb,
                      void *ctx)
{
    if (!cb)
        return hs_st_fail(st, HS_EINVAL, "read all: no callback");
    if (backward && after <= 0)
        after = INT64_MAX;
    if (!backward)
        return hs_st_finish(st, read_block(st, Q_READ_ALL_BLOCK, NULL, 0, after, limit, cb, ctx));
    return hs_st_finish(st, read_events(st, Q_READ_ALL_BWD, NULL, 0, after, limit, cb, ctx));
}

/* memcmp order over byte strings of different lengths. */
static int bytecmp(const char *a, size_t alen, const char *b, size_t blen)
{
    size_t n = alen < blen ? alen : blen;
    int c = n ? memcmp(a, b, n) : 0;
    if (c)
        return c;
    return alen < blen ? -1 : alen > blen;
}

static int set_text(hs_odbc_text_t *t, const char *s, size_t len)
{
    if (hs_odbc_text_reserve(t, len + 1))
        return HS_ENOMEM;
    if (len)
        memcpy(t->p, s, len);
    t->p[len] = '\0';
    return 0;
}

/*
 * The least string above every string that starts with prefix, written into hi (which holds
 * plen + 1 bytes): the prefix with its last character raised. Returns its length, 0 when there
 * is none (an empty prefix, or one of only the highest characters: every string >= it starts
 * with it). For UTF-8 the character is a code point, so the bound is valid UTF-8 too (PostgreSQL
 * and SQL Server refuse or mangle anything else); UTF-8 byte order is code point order, so the
 * range is the same. A prefix that is not UTF-8 gets its last byte raised instead.
 */
static size_t prefix_bound(const char *prefix, size_t plen, char *hi)
{
    const unsigned char *p = (const unsigned char *)prefix;
    size_t at = 0;
    uint32_t c;
    while (at < plen) {
        size_t len = hs_utf8_char(p + at, plen - at, &c);
        if (!len)
            break;
        at += len;
    }
    memcpy(hi, prefix, plen);
    if (at == plen) {
        /* valid UTF-8: from the end, the first character that can be raised */
        size_t end = plen;
        while (end > 0) {
            size_t i = end - 1;
            while (i > 0 && (p[i] & 0xC0) == 0x80)
                i--;
            hs_utf8_char(p + i, end - i, &c);
            if (c != 0x10FFFF) {
                c = c + 1 == 0xD800 ? 0xE000 : c + 1;
                return i + hs_utf8_put(c, hi + i);
            }
            end = i;
        }
        return 0;
    }
    size_t n = plen;
    while (n > 0 && p[n - 1] == 0xFF)
        n--;
    if (n > 0)
        hi[n - 1] = (char)(p[n - 1] + 1);
    return n;
}

/*
 * Prefix matching without LIKE (case folding, wildcards): names sort byte-wise, so the names
 * starting with `prefix` are those >= prefix and < prefix_bound(prefix).
 */
static int list_streams(hs_store_t *st, const char *prefix, size_t plen, const char *after,
                        size_t alen, size_t limit, hs_stream_cb cb, void *ctx)
{
    hs_odbc_text_t *key = &st->t[T_KEY], *hi = &st->t[T_HI];
    size_t keylen, hilen = plen;
    int incl = 1;

    if (alen > 0 && bytecmp(after, alen, prefix, plen) >= 0) {
        if (set_text(key, after, alen))
            return hs_st_nomem(st);
        keylen = alen;
        incl = 0;
    } else {
        if (set_text(key, prefix, plen))
            return hs_st_nomem(st);
        keylen = plen;
    }
    /* a raised character may take one more byte (U+007F -> U+0080) */
    if (hs_odbc_text_reserve(hi, plen + 2))
        return hs_st_nomem(st);
    hilen = prefix_bound(prefix, plen, hi->p);
    int q = hilen > 0 ? Q_LIST : Q_LIST_OPEN;

    size_t left = limit;
    while (left > 0) {
        size_t want = left < LIST_PAGE ? left : LIST_PAGE;
        hs_par_t p[5];
        int np = 0;
        p[np++] = HS_PTXT(key->p, keylen);
        p[np++] = HS_PTXT(key->p, keylen);
        p[np++] = HS_PINT(incl);
        if (hilen > 0)
            p[np++] = HS_PTXT(hi->p, hilen);
        p[np++] = HS_PINT(want);
        SQLHSTMT h;
        int rc = hs_st_run(st, q, p, np, &h, NULL);
        if (rc)
            return rc;

        size_t got = 0;
        const char *name = NULL;
        size_t nlen = 0;
        while ((rc = hs_st_fetch(st, h, q)) == 1) {
            hs_stream_head_t head;
            hs_st_head_from_cols(st, &head);
            rc = hs_st_text_col(st, h, 7, &st->t[T_STREAM], &name, &nlen); /* after 6 ints */
            if (rc == 0 && !name)
                rc = hs_st_fail(st, HS_EDB, "list streams: a stream without a name");
            if (rc)
                break;
            got++;
            left--;
            rc = cb(ctx, name, nlen, &head);
            if (rc)
                break;
        }
        SQLFreeStmt(h, SQL_CLOSE);
        if (rc)
            return rc;
        if (got < want)
            break;
        /* The next page starts after the last name: copy it, the buffer is reused. */
        if (set_text(key, name, nlen))
            return hs_st_nomem(st);
        keylen = nlen;
        incl = 0;
    }
    return 0;
}

int hs_store_list_streams(hs_store_t *st, const char *prefix, size_t prefix_len, const char *after,
                          size_t after_len, size_t limit, hs_stream_cb cb, void *ctx)
{
    if (hs_st_bad_text(prefix, prefix_len) || hs_st_bad_text(after, after_len) || !cb)
        return hs_st_fail(st, HS_EINVAL, "list streams: bad argument");
    return hs_st_finish(st, list_streams(st, prefix ? prefix : "", prefix_len, after ? after : "",
                                         after_len, limit, cb, ctx));
}
