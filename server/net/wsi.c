/*
 * What a request says, read from libwebsockets' copy of its head: query arguments and headers
 * by name. For every front end and for auth (server/auth.c); keeps nothing, calls no other file
 * of server/. IO thread, during the request's callbacks.
 */
#include <ctype.h>
#include <string.h>

#include "server/net/net.h"

static hs_io_t *io_of(struct lws *wsi)
{
    return lws_context_user(lws_get_context(wsi));
}

int hs_wsi_arg(struct lws *wsi, const char *name_eq, char *buf, size_t cap, const char **val)
{
    /* lws_get_urlarg_by_name() stops at the first argument longer than its buffer: the ones
     * after it then look absent, and an over-long one is dropped without a word. Each argument
     * is looked at here instead, through the IO thread's scratch buffer (a request's arguments
     * fit: lws keeps at most max_http_header_data bytes of headers). */
    char *tmp = (char *)io_of(wsi)->wbuf;
    int tcap = LWS_PRE + HS_WRITE_BUDGET;
    size_t nl = strlen(name_eq);
    *val = NULL;
    for (int i = 0; i < 1024; i++) {
        int n = lws_hdr_copy_fragment(wsi, tmp, tcap, WSI_TOKEN_HTTP_URI_ARGS, i);
        if (n < 0)
            return 0; /* no more arguments */
        if ((size_t)n < nl || memcmp(tmp, name_eq, nl))
            continue;
        if ((size_t)n - nl >= cap)
            return -1;
        memcpy(buf, tmp + nl, (size_t)n - nl + 1);
        *val = buf;
        return 1;
    }
    return 0;
}

/* Headers lws knows by token (lws_hdr_custom_* serves only the others). */
static const struct {
    const char *name;
    enum lws_token_indexes token;
} known[] = {
    {"authorization", WSI_TOKEN_HTTP_AUTHORIZATION},
    {"content-type", WSI_TOKEN_HTTP_CONTENT_TYPE},
    {"cookie", WSI_TOKEN_HTTP_COOKIE},
    {"host", WSI_TOKEN_HOST},
    {"origin", WSI_TOKEN_ORIGIN},
    {"referer", WSI_TOKEN_HTTP_REFERER},
    {"user-agent", WSI_TOKEN_HTTP_USER_AGENT},
    {"x-forwarded-for", WSI_TOKEN_X_FORWARDED_FOR},
};

int hs_wsi_header(struct lws *wsi, const char *name, char *buf, size_t cap)
{
    char lname[128];
    size_t nl = strlen(name);
    if (!cap || nl == 0 || nl + 2 > sizeof(lname))
        return -1;
    for (size_t i = 0; i < nl; i++)
        lname[i] = (char)tolower((unsigned char)name[i]);
    lname[nl] = '\0';
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
        if (strcmp(lname, known[i].name))
            continue;
        int len = lws_hdr_total_length(wsi, known[i].token);
        if (len <= 0 || (size_t)len >= cap)
            return -1;
        return lws_hdr_copy(wsi, buf, (int)cap, known[i].token) == len ? len : -1;
    }
    lname[nl] = ':';
    lname[nl + 1] = '\0';
    int len = lws_hdr_custom_length(wsi, lname, (int)nl + 1);
    if (len <= 0 || (size_t)len >= cap)
        return -1;
    if (lws_hdr_custom_copy(wsi, buf, (int)cap, lname, (int)nl + 1) < 0)
        return -1;
    buf[len] = '\0';
    return len;
}

static const struct {
    enum lws_token_indexes token;
    const char *name;
} methods[] = {
    {WSI_TOKEN_GET_URI, "GET"},     {WSI_TOKEN_POST_URI, "POST"},
    {WSI_TOKEN_PUT_URI, "PUT"},     {WSI_TOKEN_DELETE_URI, "DELETE"},
    {WSI_TOKEN_PATCH_URI, "PATCH"}, {WSI_TOKEN_OPTIONS_URI, "OPTIONS"},
    {WSI_TOKEN_HEAD_URI, "HEAD"},
};

int hs_wsi_method(struct lws *wsi)
{
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
        if (lws_hdr_total_length(wsi, methods[i].token))
            return (int)methods[i].token;
    return -1;
}

const char *hs_wsi_method_name(int method)
{
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
        if ((int)methods[i].token == method)
            return methods[i].name;
    return "";
}
