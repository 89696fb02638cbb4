/*
 * The growable buffer (util/buf.c) that every codec appends to and every connection keeps its
 * input and output in: it grows by doubling from 256 bytes, refuses a size that would overflow
 * (an ENOMEM answer, not a wrapped allocation) and frees back to the zero state.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "hubstream/hubstream.h"
#include "util/buf.h"

Test(buf, grows_by_doubling_and_frees_to_zero)
{
    hs_buf_t b;
    hs_buf_init(&b);
    cr_assert(b.p == NULL && b.len == 0 && b.cap == 0);
    cr_assert_eq(hs_buf_put(&b, "", 0), 0);
    cr_assert_eq(hs_buf_reserve(&b, 1), 0);
    cr_assert_eq(b.cap, 256);
    char x[300];
    memset(x, 'x', sizeof(x));
    cr_assert_eq(hs_buf_put(&b, x, 200), 0);
    cr_assert_eq(hs_buf_put(&b, x, 100), 0);
    cr_assert_eq(b.cap, 512);
    cr_assert_eq(b.len, 300);
    cr_assert_eq(hs_buf_reserve(&b, 1000), 0);
    cr_assert_eq(b.cap, 2048);
    cr_assert_eq(hs_buf_reserve(&b, SIZE_MAX - 10), HS_ENOMEM);
    cr_assert_eq(b.len, 300);
    hs_buf_free(&b);
    cr_assert(b.p == NULL && b.len == 0 && b.cap == 0);
}
