/*
 * TLS: the certificate and key the IO threads serve (through libwebsockets and OpenSSL), checked
 * before they are used, at start and at every reload, so that a bad file is refused with a
 * clear error instead of breaking handshakes. A reload (hs_server_reload_tls; SIGHUP in the
 * daemon) checks the new files and then has every IO thread load them into its own context:
 * new handshakes get the new certificate, connections already open keep theirs.
 */
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server/net/net.h"
#include "server/server.h"

/* Loads the pair into a scratch context: 0, or HS_EINVAL with why. */
static int check_pair(const char *cert, const char *key, char *why, size_t whylen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        snprintf(why, whylen, "out of memory");
        return HS_ENOMEM;
    }
    int rc = 0;
    ERR_clear_error();
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        snprintf(why, whylen, "cannot load the TLS certificate '%s': %s", cert,
                 ERR_reason_error_string(ERR_peek_last_error()) ?: "not a PEM certificate");
        rc = HS_EINVAL;
    } else if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
        unsigned long e = ERR_peek_last_error();
        if (ERR_GET_LIB(e) == ERR_LIB_X509 && ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH)
            snprintf(why, whylen, "the TLS key '%s' does not belong to the certificate '%s'", key,
                     cert);
        else
            snprintf(why, whylen, "cannot load the TLS key '%s': %s", key,
                     ERR_reason_error_string(e) ?: "not a PEM private key");
        rc = HS_EINVAL;
    } else if (SSL_CTX_check_private_key(ctx) != 1) {
        snprintf(why, whylen, "the TLS key '%s' does not belong to the certificate '%s'", key,
                 cert);
        rc = HS_EINVAL;
    }
    ERR_clear_error();
    SSL_CTX_free(ctx);
    return rc;
}

int hs_tls_configure(hs_server_t *srv, char *err, size_t errlen)
{
    const char *cert = srv->cfg.tls_cert, *key = srv->cfg.tls_key;
    bool c = cert && *cert, k = key && *key;
    srv->cfg.tls_cert = srv->cfg.tls_key = NULL; /* the caller's strings are not kept */
    if (!c && !k)
        return 0;
    if (!c || !k) {
        snprintf(err, errlen, "TLS needs both a certificate (--tls-cert) and its key (--tls-key)");
        return HS_EINVAL;
    }
    int rc = check_pair(cert, key, err, errlen);
    if (rc)
        return rc;
    srv->tls_cert = strdup(cert);
    srv->tls_key = strdup(key);
    if (!srv->tls_cert || !srv->tls_key) {
        snprintf(err, errlen, "out of memory");
        return HS_ENOMEM;
    }
    srv->cfg.tls_cert = srv->tls_cert;
    srv->cfg.tls_key = srv->tls_key;
    return 0;
}

void hs_tls_free(hs_server_t *srv)
{
    free(srv->tls_cert);
    free(srv->tls_key);
    srv->tls_cert = srv->tls_key = NULL;
}

int hs_server_reload_tls(hs_server_t *srv)
{
    if (!srv->tls_cert) {
        hs_log(&srv->log, HS_LOG_INFO,
               "reload asked: no TLS certificate is configured, nothing to reload", NULL);
        return HS_EINVAL;
    }
    char why[600];
    int rc = check_pair(srv->tls_cert, srv->tls_key, why, sizeof(why));
    if (rc) {
        hs_log(&srv->log, HS_LOG_ERROR, "TLS reload refused: the old certificate stays", "reason",
               why, NULL);
        return rc;
    }
    for (int i = 0; i < srv->nio; i++)
        hs_io_reload_tls(srv->io[i]);
    hs_log(&srv->log, HS_LOG_INFO, "TLS certificate reloaded", "cert", srv->tls_cert, NULL);
    return 0;
}

void hs_server_request_reload(hs_server_t *srv)
{
    /* async-signal-safe: an atomic and a write(2); hs_server_wait does the reload */
    atomic_store(&srv->reload_requested, 1);
    char b = 2;
    ssize_t n = write(srv->stop_pipe[1], &b, 1);
    (void)n;
}
