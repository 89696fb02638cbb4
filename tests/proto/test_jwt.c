/*
 * Token verification (proto/jwt.c): what a client would notice is a token refused that a JWT
 * library made correctly (HS256, RS256, ES256, a kid, a fractional exp), or one accepted that
 * should not be: forged, tampered, expired, for another audience or issuer, `alg` none, or
 * signed with the RSA public key as an HMAC secret. Tokens are made here with OpenSSL: RSA 2048
 * and EC P-256 keys generated at test time, public halves handed over as PEM.
 */
#include <criterion/criterion.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hubstream/hubstream.h"
#include "proto/jwt.h"
#include "util/base64.h"

#define NOW 1700000000LL

static const char secret[] = "a shared secret of 32 bytes!!!!!";

/* ---- keys and tokens made here ---- */

typedef struct tkey {
    EVP_PKEY *priv;
    char *pem; /* the public key, NUL-terminated */
    size_t pem_len;
} tkey_t;

static void keygen(tkey_t *t, const char *type, const char *param, size_t bits)
{
    t->priv = bits ? EVP_PKEY_Q_keygen(NULL, NULL, type, bits)
                   : EVP_PKEY_Q_keygen(NULL, NULL, type, param);
    cr_assert_not_null(t->priv, "keygen %s", type);
    BIO *b = BIO_new(BIO_s_mem());
    cr_assert(PEM_write_bio_PUBKEY(b, t->priv));
    char *p;
    long n = BIO_get_mem_data(b, &p);
    t->pem = malloc((size_t)n + 1);
    memcpy(t->pem, p, (size_t)n);
    t->pem[n] = '\0';
    t->pem_len = (size_t)n;
    BIO_free(b);
}

/* Generated when a test first asks (each test runs in a process of its own). */
static tkey_t *rsa_key(int i)
{
    static tkey_t k[3];
    if (!k[i].priv)
        keygen(&k[i], "RSA", NULL, 2048);
    return &k[i];
}

static tkey_t *ec_key(int i)
{
    static tkey_t k[2];
    if (!k[i].priv)
        keygen(&k[i], "EC", "P-256", 0);
    return &k[i];
}

static char *b64url(const void *p, size_t n)
{
    char *s = malloc(HS_BASE64URL_LEN(n) + 1);
    hs_base64url_encode(p, n, s);
    return s;
}

/* The signature of data[0..n) under alg ("HS256" with hmac_key, "RS256"/"ES256" with priv),
 * as JWS wants it (ES256: R || S); its length. */
static size_t sign(const char *alg, const void *hmac_key, size_t hmac_len, EVP_PKEY *priv,
                   const char *data, size_t n, uint8_t *sig)
{
    if (alg[0] == 'H') {
        unsigned int l = 0;
        cr_assert_not_null(
            HMAC(EVP_sha256(), hmac_key, (int)hmac_len, (const uint8_t *)data, n, sig, &l));
        return l;
    }
    EVP_MD_CTX *m = EVP_MD_CTX_new();
    cr_assert_eq(EVP_DigestSignInit(m, NULL, EVP_sha256(), NULL, priv), 1);
    uint8_t der[1024];
    size_t l = sizeof der;
    cr_assert_eq(EVP_DigestSign(m, der, &l, (const uint8_t *)data, n), 1);
    EVP_MD_CTX_free(m);
    if (alg[0] == 'R') {
        memcpy(sig, der, l);
        return l;
    }
    const uint8_t *p = der;
    ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)l);
    cr_assert_not_null(es);
    const BIGNUM *r, *s;
    ECDSA_SIG_get0(es, &r, &s);
    cr_assert_eq(BN_bn2binpad(r, sig, 32), 32);
    cr_assert_eq(BN_bn2binpad(s, sig + 32, 32), 32);
    ECDSA_SIG_free(es);
    return 64;
}

/* header.payload.signature, signed as the header's alg says (the alg argument; "none": no
 * signature). Free with free(). */
static char *token_with(const char *header, const char *payload, const char *alg,
                        const void *hmac_key, size_t hmac_len, EVP_PKEY *priv)
{
    char *h = b64url(header, strlen(header)), *p = b64url(payload, strlen(payload));
    size_t n = strlen(h) + strlen(p) + 1;
    char *t = malloc(n + 1 + 2048);
    snprintf(t, n + 1, "%s.%s", h, p);
    free(h);
    free(p);
    uint8_t sig[1024];
    size_t sl = strcmp(alg, "none") ? sign(alg, hmac_key, hmac_len, priv, t, n, sig) : 0;
    t[n] = '.';
    hs_base64url_encode(sig, sl, t + n + 1);
    return t;
}

static char *hs_token(const char *payload)
{
    return token_with("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", payload, "HS256", secret,
                      strlen(secret), NULL);
}

static char *rs_token(const char *kid, tkey_t *key, const char *payload)
{
    char h[128];
    if (kid)
        snprintf(h, sizeof h, "{\"alg\":\"RS256\",\"kid\":\"%s\"}", kid);
    else
        snprintf(h, sizeof h, "{\"alg\":\"RS256\"}");
    return token_with(h, payload, "RS256", NULL, 0, key->priv);
}

static char *es_token(const char *kid, tkey_t *key, const char *payload)
{
    char h[128];
    if (kid)
        snprintf(h, sizeof h, "{\"alg\":\"ES256\",\"kid\":\"%s\"}", kid);
    else
        snprintf(h, sizeof h, "{\"alg\":\"ES256\"}");
    return token_with(h, payload, "ES256", NULL, 0, key->priv);
}

/* ---- verifying ---- */

static hs_jwt_check_t check(void)
{
    return (hs_jwt_check_t){.now_s = NOW, .leeway_s = 0};
}

static hs_jwt_keys_t *secret_keys(void)
{
    hs_jwt_keys_t *k = hs_jwt_keys_new();
    cr_assert_not_null(k);
    cr_assert_eq(hs_jwt_keys_add_secret(k, secret, strlen(secret)), 0);
    return k;
}

static void add_pem(hs_jwt_keys_t *k, tkey_t *t, const char *kid)
{
    char why[128] = "";
    cr_assert_eq(hs_jwt_keys_add_pem(k, t->pem, t->pem_len, kid, why, sizeof why), 1, "%s", why);
}

/* Verifies a token from an allocation of exactly its length; why gets the reason. */
static int verify_c(const hs_jwt_keys_t *k, const char *token, const hs_jwt_check_t *c,
                    hs_jwt_claims_t *out, char *why)
{
    size_t n = strlen(token);
    char *copy = malloc(n ? n : 1);
    memcpy(copy, token, n);
    why[0] = '\0';
    int rc = hs_jwt_verify(k, copy, n, c, out, why, 128);
    free(copy);
    if (rc) {
        cr_assert_neq(why[0], '\0', "refused without a reason");
        cr_assert_lt(strlen(why), 64);
        for (const char *w = why; *w; w++)
            cr_assert(!(*w >= 'A' && *w <= 'Z'), "why is not lower-case: %s", why);
        cr_assert_null(out->hubstream, "claims left after a refusal");
        cr_assert_str_empty(out->sub);
    }
    return rc;
}

static void accepted(const hs_jwt_keys_t *k, const char *token, const hs_jwt_check_t *c,
                     hs_jwt_claims_t *out)
{
    char why[128];
    int rc = verify_c(k, token, c, out, why);
    cr_assert_eq(rc, 0, "refused: %s", why);
}

static void refused(const hs_jwt_keys_t *k, const char *token, const hs_jwt_check_t *c,
                    const char *reason)
{
    hs_jwt_claims_t cl;
    char why[128];
    int rc = verify_c(k, token, c, &cl, why);
    cr_assert_eq(rc, HS_EINVAL, "accepted (rc %d), wanted '%s'", rc, reason);
    cr_assert_str_eq(why, reason);
}

/* ---- good tokens ---- */

Test(jwt, good_hs256_hands_out_the_claims)
{
    hs_jwt_keys_t *k = secret_keys();
    char *t = hs_token("{\"sub\":\"alice\",\"exp\":1700000600,\"nbf\":1699999000,\"iat\":1,"
                       "\"hubstream\":{ \"subscribe\" : [\"a-*\"] ,\"admin\":false},"
                       "\"other\":[1,{\"x\":null}]}");
    hs_jwt_check_t c = check();
    hs_jwt_claims_t cl;
    accepted(k, t, &c, &cl);
    cr_assert_str_eq(cl.sub, "alice");
    cr_assert_eq(cl.exp, 1700000600);
    cr_assert_eq(cl.nbf, 1699999000);
    cr_assert_str_eq(cl.hubstream, "{\"subscribe\":[\"a-*\"],\"admin\":false}");
    cr_assert_eq(cl.hubstream_len, strlen(cl.hubstream));
    hs_jwt_claims_free(&cl);
    cr_assert_null(cl.hubstream);
    free(t);
    /* nothing but the alg: no sub, no times, no hubstream */
    t = hs_token("{}");
    accepted(k, t, &c, &cl);
    cr_assert_str_empty(cl.sub);
    cr_assert_eq(cl.exp, 0);
    cr_assert_eq(cl.nbf, 0);
    cr_assert_null(cl.hubstream);
    hs_jwt_claims_free(&cl);
    free(t);
    hs_jwt_keys_free(k);
}

Test(jwt, good_rs256)
{
    hs_jwt_keys_t *k = hs_jwt_keys_new();
    add_pem(k, rsa_key(0), NULL);
    char *t = rs_token(NULL, rsa_key(0), "{\"sub\":\"bob\",\"exp\":1700000001}");
    hs_jwt_check_t c = check();
    hs_jwt_claims_t cl;
    accepted(k, t, &c, &cl);
    cr_assert_str_eq(cl.sub, "bob");
    hs_jwt_claims_free(&cl);
    free(t);
    hs_jwt_keys_free(k);
}

Test(jwt, good_es256)
{
    hs_jwt_keys_t *k = hs_jwt_keys_new();
    add_pem(k, ec_key(0), NULL);
    hs_jwt_check_t c = check();
    hs_jwt_claims_t cl;
    /* several tokens: R and S with leading zero bytes come up now and then */
    for (int i = 0; i < 20; i++) {
        char payload[64];
        snprintf(payload, sizeof payload, "{\"sub\":\"carol%d\"}", i);
        char *t = es_token(NULL, ec_key(0), payload);
        accepted(k, t, &c, &cl);
        char want[16];
        snprintf(want, sizeof want, "carol%d", i);
        cr_assert_str_eq(cl.sub, want);
        hs_jwt_claims_free(&cl);
        free(t);
    }
    hs_jwt_keys_free(k);
}

Test(jwt, es256_signature_in_der_or_of_another_length_is_refused)
{
    hs_jwt_keys_t *k = hs_jwt_keys_new();
    add_pem(k, ec_key(0), NULL);
    hs_jwt_check_t c = check();
    /* the DER signature OpenSSL makes, not R || S */
    char *h = b64url("{\"alg\":\"ES256\"}", 15), *p = b64url("{}", 2);
    char data[256];
    snprintf(data, sizeof data, "%s.%s", h, p);
    EVP_MD_CTX *m = EVP_MD_CTX_new();
    cr_assert_eq(EVP_DigestSignInit(m, NULL, EVP_sha256(), NULL, ec_key(0)->priv), 1);
    uint8_t der[128];
    size_t dl = sizeof der;
    cr_assert_eq(EVP_DigestSign(m, der, &dl, (const uint8_t *)data, strlen(data)), 1);
    EVP_MD_CTX_free(m);
    char *s = b64url(der, dl);
    char t[512];
    snprintf(t, sizeof t, "%s.%s", data, s);
    refused(k, t, &c, "bad signature");
    /* a good R || S with a byte more or less */
    char *good = es_token(NULL, ec_key(0), "{}");
    char *dot = strrchr(good, '.');
    uint8_t sig[70];
    long sl = hs_base64url_decode(dot + 1, strlen(dot + 1), sig, sizeof sig);
    cr_assert_eq(sl, 64);
    char *s63 = b64url(sig, 63);
    sig[64] = 0;
    char *s65 = b64url(sig, 65);
    snprintf(t, sizeof t, "%s.%s", data, s63);
    refused(k, t, &c, "bad signature");
    snprintf(t, sizeof t, "%s.%s", data, s65);
    refused(k, t, &c, "bad signature");
    free(h), free(p), free(s), free(good), free(s63), free(s65);
    hs_jwt_keys_free(k);
}

/* ---- forged and tampered ---- */

Test(jwt, wrong_secret)
{
    hs_jwt_keys_t *k = secret_keys();
    char *t =
        token_with("{\"alg\":\"HS256\"}", "{\"sub\":\"mallory\"}", "HS256", "guessed", 7, NULL);
    hs_jwt_check_t c = check();
    refused(k, t, &c, "bad signature");
    free(t);
    hs_jwt_keys_free(k);
}

/* Replaces the payload part of t (as made by token_with) by payload, keeping the signature. */
static char *swap_payload(const char *t, const char *payload)
{
    const char *d1 = strchr(t, '.'), *d2 = strrchr(t, '.');
    char *p = b64url(payload, strlen(payload));
    char *out = malloc(strlen(t) + strlen(p) + 1);
    sprintf(out, "%.*s.%s%s", (int)(d1 - t), t, p, d2);
    free(p);
    return out;
}

/* Flips one bit of t's signature (decoded and encoded again). */
static char *flip_signature(const char *t, size_t byte)
{
    const char *d2 = strrchr(t, '.');
    uint8_t sig[600];
    long sl = hs_base64url_decode(d2 + 1, strlen(d2 + 1), sig, sizeof sig);
    cr_assert_gt(sl, (long)byte);
    sig[byte] ^= 0x01;
    char *s = b64url(sig, (size_t)sl);
    char *out = malloc(strlen(t) + 1);
    sprintf(out, "%.*s.%s", (int)(d2 - t), t, s);
    free(s);
    return out;
}

Test(jwt, tampered_payload_or_signature)
{
    hs_jwt_keys_t *k = secret_keys();
    add_pem(k, rsa_key(0), NULL);
    add_pem(k, ec_key(0), NULL);
    hs_jwt_check_t c = check();
    char *made[3] = {hs_token("{\"sub\":\"alice\"}"),
                     rs_token(NULL, rsa_key(0), "{\"sub\":\"alice\"}"),
                     es_token(NULL, ec_key(0), "{\"sub\":\"alice\"}")};
    for (int i = 0; i < 3; i++) {
        hs_jwt_claims_t cl;
        accepted(k, made[i], &c, &cl);
        hs_jwt_claims_free(&cl);
        char *t = swap_payload(made[i], "{\"sub\":\"admin\"}");
        refused(k, t, &c, "bad signature");
        free(t);
        t = flip_signature(made[i], 0);
        refused(k, t, &c, "bad signature");
        free(t);
        t = flip_signature(made[i], 31);
        refused(k, t, &c, "bad signature");
        free(t);
        /* signature a byte short, or empty */
        char *cut = strdup(made[i]);
        char *d2 = strrchr(cut, '.');
        uint8_t sig[600];
        long sl = hs_base64url_decode(d2 + 1, strlen(d2 + 1), sig, sizeof sig);
        cr_assert_gt(sl, 1);
        hs_base64url_encode(sig, (size_t)sl - 1, d2 + 1);
        refused(k, cut, &c, "bad signature");
        d2[1] = '\0';
        refused(k, cut, &c, "bad signature");
        free(cut);
        free(made[i]);
    }
    hs_jwt_keys_free(k);
}

/* ---- algorithms ---- */

Test(jwt, alg_none_with_and_without_a_signature)
{
    hs_jwt_keys_t *k = secret_keys();
    hs_jwt_check_t c = check();
    char *t = token_with("{\"alg\":\"none\"}", "{\"sub\":\"alice\"}", "none", NULL, 0, NULL);
    cr_assert_eq(t[strlen(t) - 1], '.');
    refused(k, t, &c, "alg none is not accepted");
    free(t);
    t = token_with("{\"alg\":\"none\"}", "{\"sub\":\"alice\"}", "HS256", secret, strlen(secret),
                   NULL);
    refused(k, t, &c, "alg none is not accepted");
    free(t);
    t = token_with("{\"alg\":\"None\"}", "{}", "none", NULL, 0, NULL);
    refused(k, t, &c, "alg none is not accepted");
    free(t);
    hs_jwt_keys_free(k);
}

Test(jwt, unknown_algs)
{
    hs_jwt_keys_t *k = secret_keys();
    add_pem(k, rsa_key(0), NULL);
    add_pem(k, ec_key(0), NULL);
    hs_jwt_check_t c = check();
    static const char *algs[] = {"HS512", "RS384", "ES384", "hs256", "PS256", "EdDSA", ""};
    for (size_t i = 0; i < sizeof algs / sizeof *algs; i++) {
        char h[64];
        snprintf(h, sizeof h, "{\"alg\":\"%s\"}", algs[i]);
        char *t = token_with(h, "{}", "HS256", secret, strlen(secret), NULL);
        refused(k, t, &c, "unsupported alg (hs256, rs256 or es256)");
        free(t);
    }
    /* alg missing or not a string */
    char *t = token_with("{\"typ\":\"JWT\"}", "{}", "HS256", secret, strlen(secret), NULL);
    refused(k, t, &c, "header has no alg");
    free(t);
    t = token_with("{\"alg\":256}", "{}", "HS256", secret, strlen(secret), NULL);
    refused(k, t, &c, "header has no alg");
    free(t);
    hs_jwt_keys_free(k);
}

Test(jwt, hs_token_with_only_public_keys_the_key_confusion)
{
    hs_jwt_keys_t *k = hs_jwt_keys_new();
    add_pem(k, rsa_key(0), NULL);
    add_pem(k, ec_key(0), NULL);
    hs_jwt_check_t c = check();
    /* the classic: HS256 with the RSA public key's PEM text as the HMAC secret */
    char *t = token_with("{\"alg\":\"HS256\"}", "{\"sub\":\"admin\"}", "HS256", rsa_key(0)->pem,
                         rsa_key(0)->pem_len, NULL);
    refused(k, t, &c, "no hs256 secret configured");
    free(t);
    t = token_with("{\"alg\":\"HS256\"}", "{\"sub\":\"admin\"}", "HS256", ec_key(0)->pem,
                   ec_key(0)->pem_len, NULL);
    refused(k, t, &c, "no hs256 secret configured");
    free(t);
    hs_jwt_keys_free(k);
}

Test(jwt, rs_or_es_token_with_only_a_secret)
{
    hs_jwt_keys_t *k = secret_keys();
    hs_jwt_check_t c = check();
    char *t = rs_token(NULL, rsa_key(0), "{}");
    refused(k, t, &c, "no rs256 key configured");
    free(t);
    t = es_token(NULL, ec_key(0), "{}");
    refused(k, t, &c, "no es256 key configured");
    free(t);
    /* an RSA key does not serve ES256, nor an EC key RS256 */
    add_pem(k, rsa_key(0), NULL);
    t = es_token(NULL, ec_key(0), "{}");
    refused(k, t, &c, "no es256 key configured");
    free(t);
    hs_jwt_keys_free(k);
    k = hs_jwt_keys_new();
    add_pem(k, ec_key(0), NULL);
    t = rs_token(NULL, rsa_key(0), "{}");
    refused(k, t, &c, "no rs256 key configured");
    free(t);
    hs_jwt_keys_free(k);
}

/* ---- kid ---- */

Test(jwt, kid_picks_its_key)
{
    hs_jwt_keys_t *k = hs_jwt_keys_new();
    add_pem(k, rsa_key(0), "key-a");
    add_pem(k, rsa_key(1), "key-b");
    hs_jwt_check_t c = check();
    hs_jwt_claims_t cl;
    char *t = rs_token("key-a", rsa_key(0), "{}");
    accepted(k, t, &c, &cl);
    free(t);
    t = rs_token("key-b", rsa_key(1), "{}");
    accepted(k, t, &c, &cl);
    free(t);
    /* naming the other key: that key is the only one tried */
    t = rs_token("key-b", rsa_key(0), "{}");
    refused(k, t, &c, "bad signature");
    free(t);
    /* no kid: every RS256 key is tried */
    t = rs_token(NULL, rsa_key(1), "{}");
    accepted(k, t, &c, &cl);
    free(t);
    /* an unknown kid, and no key without a kid to fall back on */
    t = rs_token("key-c", rsa_key(0), "{}");
    refused(k, t, &c, "unknown kid");
    free(t);
    /* kids compare exactly */
    t = rs_token("KEY-A", rsa_key(0), "{}");
    refused(k, t, &c, "unknown kid");
    free(t);
    t = rs_token("key-a\\u0000", rsa_key(0), "{}");
    refused(k, t, &c, "unknown kid");
    free(t);
    hs_jwt_keys_free(k);
}

Test(jwt, unknown_kid_falls_back_on_the_keys_without_a_kid)
{
    hs_jwt_keys_t *k = hs_jwt_keys_new();
    add_pem(k, rsa_key(0), "key-a");
    add_pem(k, rsa_key(2), NULL);
    add_pem(k, ec_key(0), "key-e");
    hs_jwt_check_t c = check();
    hs_jwt_claims_t cl;
    char *t = rs_token("key-c", rsa_key(2), "{}");
    accepted(k, t, &c, &cl);
    free(t);
    /* ... but not on the keys with another kid */
    t = rs_token("key-c", rsa_key(0), "{}");
    refused(k, t, &c, "bad signature");
    free(t);
    /* a kid known for another algorithm does not count */
    t = rs_token("key-e", rsa_key(2), "{}");
    accepted(k, t, &c, &cl);
    free(t);
    /* HS256 secrets have no kid: any kid falls back on them */
    cr_assert_eq(hs_jwt_keys_add_secret(k, secret, strlen(secret)), 0);
    t = token_with("{\"alg\":\"HS256\",\"kid\":\"whatever\"}", "{}", "HS256", secret,
                   strlen(secret), NULL);
    accepted(k, t, &c, &cl);
    free(t);
    hs_jwt_keys_free(k);
}

Test(jwt, kid_of_the_wrong_type_or_too_long)
{
    hs_jwt_keys_t *k = secret_keys();
    hs_jwt_check_t c = check();
    char *t =
        token_with("{\"alg\":\"HS256\",\"kid\":7}", "{}", "HS256", secret, strlen(secret), NULL);
    refused(k, t, &c, "kid is not a string");
    free(t);
    char h[400], kid[258];
    memset(kid, 'k', 257);
    kid[257] = '\0';
    snprintf(h, sizeof h, "{\"alg\":\"HS256\",\"kid\":\"%s\"}", kid);
    t = token_with(h, "{}", "HS256", secret, strlen(secret), NULL);
    refused(k, t, &c, "kid too long");
    free(t);
    kid[256] = '\0';
    snprintf(h, sizeof h, "{\"alg\":\"HS256\",\"kid\":\"%s\"}", kid);
    t = token_with(h, "{}", "HS256", secret, strlen(secret), NULL);
    hs_jwt_claims_t cl;
    accepted(k, t, &c, &cl);
    free(t);
    hs_jwt_keys_free(k);
}

Test(jwt, crit_header_is_refused)
{
    hs_jwt_keys_t *k = secret_keys();
    hs_jwt_check_t c = check();
    char *t = token_with("{\"alg\":\"HS256\",\"crit\":[\"exp\"]}", "{}", "HS256", secret,
                         strlen(secret), NULL);
    refused(k, t, &c, "crit header is not supported");
    free(t);
    hs_jwt_keys_free(k);
}

/* ---- times ---- */

static void hs_case(const char *payload, hs_jwt_check_t c, const char *reason)
{
    hs_jwt_keys_t *k = secret_keys();
    char *t = hs_token(payload);
    if (reason) {
        refused(k, t, &c, reason);
    } else {
        hs_jwt_claims_t cl;
        accepted(k, t, &c, &cl);
        hs_jwt_claims_free(&cl);
    }
    free(t);
    hs_jwt_keys_free(k);
}

Test(jwt, exp_in_the_past_at_the_edge_and_within_leeway)
{
    hs_jwt_check_t c = check();
    hs_case("{\"exp\":1699999000}", c, "token expired");
    hs_case("{\"exp\":1700000000}", c, "token expired"); /* now == exp: expired */
    hs_case("{\"exp\":1700000001}", c, NULL);
    c.leeway_s = 60;
    hs_case("{\"exp\":1699999941}", c, NULL);            /* 59 s ago */
    hs_case("{\"exp\":1699999940}", c, "token expired"); /* 60 s ago: the edge again */
    c.leeway_s = -5;                                     /* counts as 0 */
    hs_case("{\"exp\":1700000000}", c, "token expired");
}

Test(jwt, exp_with_a_fraction_or_an_exponent_rounds_down)
{
    hs_jwt_check_t c = check();
    hs_case("{\"exp\":1700000000.999}", c, "token expired");
    hs_case("{\"exp\":1700000001.0}", c, NULL);
    hs_case("{\"exp\":1.7000000005e9}", c, "token expired"); /* 1700000000.5: now */
    hs_case("{\"exp\":1.700000001E+9}", c, NULL);
    hs_case("{\"exp\":1.7e9}", c, "token expired");
    hs_case("{\"exp\":17000000010e-1}", c, NULL);
    hs_case("{\"exp\":0.5}", c, "token expired");
    hs_case("{\"exp\":0}", c, "token expired");
    hs_case("{\"exp\":1e-400}", c, "token expired");
    hs_jwt_keys_t *k = secret_keys();
    char *t = hs_token("{\"exp\":1700000042.75,\"nbf\":16999999e2}");
    hs_jwt_claims_t cl;
    accepted(k, t, &c, &cl);
    cr_assert_eq(cl.exp, 1700000042);
    cr_assert_eq(cl.nbf, 1699999900);
    hs_jwt_claims_free(&cl);
    free(t);
    hs_jwt_keys_free(k);
}

Test(jwt, exp_and_nbf_negative_absurd_or_not_numbers)
{
    hs_jwt_check_t c = check();
    hs_case("{\"exp\":-1}", c, "bad exp claim");
    hs_case("{\"exp\":-0.5}", c, "bad exp claim");
    hs_case("{\"exp\":1e20}", c, "bad exp claim");
    hs_case("{\"exp\":1e99999999999}", c, "bad exp claim");
    hs_case("{\"exp\":253402300800}", c, "bad exp claim");
    hs_case("{\"exp\":99999999999999999999999}", c, "bad exp claim");
    hs_case("{\"exp\":\"1800000000\"}", c, "bad exp claim");
    hs_case("{\"exp\":null}", c, "bad exp claim");
    hs_case("{\"exp\":253402300799}", c, NULL);
    hs_case("{\"nbf\":-5}", c, "bad nbf claim");
    hs_case("{\"nbf\":true}", c, "bad nbf claim");
    hs_case("{\"exp\":1800000000,\"exp\":1}", c, "duplicate claim");
}

Test(jwt, nbf_in_the_future)
{
    hs_jwt_check_t c = check();
    hs_case("{\"nbf\":1700000010}", c, "token not yet valid");
    hs_case("{\"nbf\":1700000000}", c, NULL);
    c.leeway_s = 10;
    hs_case("{\"nbf\":1700000010}", c, NULL);
    hs_case("{\"nbf\":1700000011}", c, "token not yet valid");
}

Test(jwt, require_exp)
{
    hs_jwt_check_t c = check();
    hs_case("{\"sub\":\"a\"}", c, NULL);
    c.require_exp = true;
    hs_case("{\"sub\":\"a\"}", c, "token has no exp");
    hs_case("{\"sub\":\"a\",\"exp\":1700000100}", c, NULL);
}

/* ---- audience and issuer ---- */

Test(jwt, aud_string_array_missing_wrong)
{
    hs_jwt_check_t c = check();
    hs_case("{\"aud\":\"elsewhere\"}", c, NULL); /* not checked when no audience is set */
    c.audience = "hubstream";
    hs_case("{\"aud\":\"hubstream\"}", c, NULL);
    hs_case("{\"aud\":\"hub\\u0073tream\"}", c, NULL);
    hs_case("{\"aud\":[\"other\",\"hubstream\"]}", c, NULL);
    hs_case("{}", c, "token has no aud");
    hs_case("{\"aud\":\"other\"}", c, "wrong audience");
    hs_case("{\"aud\":\"hubstream2\"}", c, "wrong audience");
    hs_case("{\"aud\":\"Hubstream\"}", c, "wrong audience");
    hs_case("{\"aud\":[]}", c, "wrong audience");
    hs_case("{\"aud\":[\"other\"]}", c, "wrong audience");
    hs_case("{\"aud\":[\"hubstream\",1]}", c, "aud claim is not a string or strings");
    hs_case("{\"aud\":{\"hubstream\":1}}", c, "aud claim is not a string or strings");
    hs_case("{\"aud\":null}", c, "aud claim is not a string or strings");
}

Test(jwt, iss_right_wrong_missing)
{
    hs_jwt_check_t c = check();
    c.issuer = "https://auth.example";
    hs_case("{\"iss\":\"https://auth.example\"}", c, NULL);
    hs_case("{\"iss\":\"https:\\/\\/auth.example\"}", c, NULL);
    hs_case("{\"iss\":\"https://evil.example\"}", c, "wrong issuer");
    hs_case("{\"iss\":\"https://auth.example/\"}", c, "wrong issuer");
    hs_case("{}", c, "token has no iss");
    hs_case("{\"iss\":[\"https://auth.example\"]}", c, "iss claim is not a string");
}

/* ---- sizes and garbage ---- */

Test(jwt, oversized_token)
{
    hs_jwt_keys_t *k = secret_keys();
    hs_jwt_check_t c = check();
    char *payload = malloc(HS_JWT_MAX + 64);
    char *t = NULL;
    size_t fill;
    /* the biggest token under the limit is accepted */
    for (fill = 6000;; fill++) {
        snprintf(payload, HS_JWT_MAX + 64, "{\"x\":\"%0*d\"}", (int)fill, 0);
        free(t);
        t = hs_token(payload);
        if (strlen(t) > HS_JWT_MAX - 3)
            break;
    }
    cr_assert_leq(strlen(t), HS_JWT_MAX);
    hs_jwt_claims_t cl;
    accepted(k, t, &c, &cl);
    /* and a few bytes more are refused, without looking further */
    snprintf(payload, HS_JWT_MAX + 64, "{\"x\":\"%0*d\"}", (int)fill + 3, 0);
    free(t);
    t = hs_token(payload);
    cr_assert_gt(strlen(t), HS_JWT_MAX);
    refused(k, t, &c, "token too long");
    free(t);
    free(payload);
    hs_jwt_keys_free(k);
}

Test(jwt, garbage)
{
    hs_jwt_keys_t *k = secret_keys();
    hs_jwt_check_t c = check();
    char *good = hs_token("{\"sub\":\"alice\"}");
    char buf[1024];
    const char *d2 = strrchr(good, '.');
    snprintf(buf, sizeof buf, "%.*s", (int)(d2 - good), good);
    refused(k, buf, &c, "malformed token (not three parts)"); /* two parts */
    snprintf(buf, sizeof buf, "%s.x", good);
    refused(k, buf, &c, "malformed token (not three parts)"); /* four parts */
    snprintf(buf, sizeof buf, "%s.", good);
    refused(k, buf, &c, "malformed token (not three parts)");
    refused(k, "", &c, "malformed token (not three parts)");
    refused(k, "abc", &c, "malformed token (not three parts)");
    refused(k, "..", &c, "header is not valid json");
    snprintf(buf, sizeof buf, "Bearer %s", good);
    refused(k, buf, &c, "header is not base64url");
    snprintf(buf, sizeof buf, "%s=", good);
    refused(k, buf, &c, "signature is not base64url");
    snprintf(buf, sizeof buf, "%s\n", good);
    refused(k, buf, &c, "signature is not base64url");
    /* the header padded: '=' is refused, not skipped */
    char *h = b64url("{\"alg\":\"HS256\"}", 15);
    snprintf(buf, sizeof buf, "%s=%s", h, strchr(good, '.'));
    refused(k, buf, &c, "header is not base64url");
    free(h);
    free(good);

    /* well signed, badly formed */
    static const struct {
        const char *header, *payload, *why;
    } cases[] = {
        {"[\"HS256\"]", "{}", "header is not a json object"},
        {"\"HS256\"", "{}", "header is not a json object"},
        {"{\"alg\":\"HS256\"", "{}", "header is not valid json"},
        {"{\"alg\":\"HS256\",\"alg\":\"none\"}", "{}", "duplicate header member"},
        {"{\"alg\":\"HS256\"}", "[{\"sub\":\"a\"}]", "payload is not a json object"},
        {"{\"alg\":\"HS256\"}", "", "payload is not valid json"},
        {"{\"alg\":\"HS256\"}", "{\"sub\":\"a\"} {}", "payload is not valid json"},
        {"{\"alg\":\"HS256\"}", "{\"sub\":\"\xff\"}", "payload is not valid json"},
        {"{\"alg\":\"HS256\"}", "{\"hubstream\":[1]}", "hubstream claim is not an object"},
        {"{\"alg\":\"HS256\"}", "{\"hubstream\":\"{}\"}", "hubstream claim is not an object"},
        {"{\"alg\":\"HS256\"}", "{\"hubstream\":null}", "hubstream claim is not an object"},
        {"{\"alg\":\"HS256\"}", "{\"sub\":1}", "sub claim is not a string"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *t =
            token_with(cases[i].header, cases[i].payload, "HS256", secret, strlen(secret), NULL);
        refused(k, t, &c, cases[i].why);
        free(t);
    }
    hs_jwt_keys_free(k);
}

Test(jwt, the_reason_never_echoes_the_token)
{
    hs_jwt_keys_t *k = secret_keys();
    hs_jwt_check_t c = check();
    c.audience = "hubstream";
    c.issuer = "me";
    static const char *payloads[] = {"{\"aud\":\"zzsecretzz\"}",
                                     "{\"aud\":\"hubstream\","
                                     "\"iss\":\"zzsecretzz\"}",
                                     "{\"exp\":\"zzsecretzz\"}"};
    for (size_t i = 0; i < 3; i++) {
        char *t = hs_token(payloads[i]);
        hs_jwt_claims_t cl;
        char why[128];
        cr_assert_eq(verify_c(k, t, &c, &cl, why), HS_EINVAL);
        cr_assert_null(strstr(why, "zzsecretzz"), "%s", why);
        cr_assert_null(strstr(why, "ZnpzZWNyZXR6e"), "%s", why);
        free(t);
    }
    char *t = token_with("{\"alg\":\"zzsecretzz\"}", "{}", "HS256", secret, strlen(secret), NULL);
    hs_jwt_claims_t cl;
    char why[128];
    cr_assert_eq(verify_c(k, t, &c, &cl, why), HS_EINVAL);
    cr_assert_null(strstr(why, "zzsecretzz"), "%s", why);
    free(t);
    hs_jwt_keys_free(k);
}

/* ---- sub ---- */

Test(jwt, sub_too_long_bad_utf8_or_control_characters)
{
    hs_jwt_check_t c = check();
    char payload[600], sub[300];
    memset(sub, 's', sizeof sub);
    sub[HS_JWT_SUB_MAX] = '\0';
    snprintf(payload, sizeof payload, "{\"sub\":\"%s\"}", sub);
    hs_case(payload, c, NULL);
    sub[HS_JWT_SUB_MAX] = 's';
    sub[HS_JWT_SUB_MAX + 1] = '\0';
    snprintf(payload, sizeof payload, "{\"sub\":\"%s\"}", sub);
    hs_case(payload, c, "sub claim too long");
    hs_case("{\"sub\":\"caf\\u00e9 \xf0\x9f\x98\x80\"}", c, NULL);
    hs_case("{\"sub\":\"a\\u0000b\"}", c, "bad sub claim");
    hs_case("{\"sub\":\"a\\nb\"}", c, "bad sub claim");
    hs_case("{\"sub\":\"a\\u007fb\"}", c, "bad sub claim");
    hs_case("{\"sub\":\"a\\u0085b\"}", c, "bad sub claim");
    hs_case("{\"sub\":\"a\xc3\"}", c, "payload is not valid json"); /* raw bad UTF-8 */
    hs_jwt_keys_t *k = secret_keys();
    char *t = hs_token("{\"sub\":\"caf\\u00e9\"}");
    hs_jwt_claims_t cl;
    accepted(k, t, &c, &cl);
    cr_assert_str_eq(cl.sub, "caf\xc3\xa9");
    hs_jwt_claims_free(&cl);
    free(t);
    /* a lone surrogate escape unescapes to U+FFFD (proto/json.h), which is valid */
    t = hs_token("{\"sub\":\"\\ud800\"}");
    accepted(k, t, &c, &cl);
    cr_assert_str_eq(cl.sub, "\xef\xbf\xbd");
    hs_jwt_claims_free(&cl);
    free(t);
    hs_jwt_keys_free(k);
}

/* ---- loading keys ---- */

Test(jwt, pem_loading)
{
    hs_jwt_keys_t *k = hs_jwt_keys_new();
    char why[128];
    /* two keys in one text */
    size_t n = rsa_key(0)->pem_len + ec_key(0)->pem_len;
    char *both = malloc(n + 1);
    sprintf(both, "%s%s", rsa_key(0)->pem, ec_key(0)->pem);
    cr_assert_eq(hs_jwt_keys_add_pem(k, both, n, "two", why, sizeof why), 2, "%s", why);
    hs_jwt_check_t c = check();
    hs_jwt_claims_t cl;
    char *t = es_token("two", ec_key(0), "{}");
    accepted(k, t, &c, &cl);
    free(t);
    t = rs_token("two", rsa_key(0), "{}");
    accepted(k, t, &c, &cl);
    free(t);
    /* a bad block anywhere refuses the whole text, adding nothing */
    char *bad = malloc(n + 64);
    size_t bl = (size_t)sprintf(bad, "%s%s", rsa_key(1)->pem, ec_key(1)->pem);
    bad[bl - 40] ^= 0x01; /* inside the EC key's base64 */
    cr_assert_eq(hs_jwt_keys_add_pem(k, bad, bl, NULL, why, sizeof why), HS_EINVAL);
    t = rs_token(NULL, rsa_key(1), "{}");
    refused(k, t, &c, "bad signature");
    free(t);
    free(bad);
    free(both);

    static const char *garbage[] = {
        "",
        "hello",
        "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    };
    for (size_t i = 0; i < sizeof garbage / sizeof *garbage; i++) {
        why[0] = '\0';
        cr_assert_eq(hs_jwt_keys_add_pem(k, garbage[i], strlen(garbage[i]), NULL, why, sizeof why),
                     HS_EINVAL, "%s", garbage[i]);
        cr_assert_neq(why[0], '\0');
    }
    /* a public key followed by another kind of block */
    char mixed[4096];
    snprintf(mixed, sizeof mixed, "%s%s", rsa_key(0)->pem,
             "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
    cr_assert_eq(hs_jwt_keys_add_pem(k, mixed, strlen(mixed), NULL, why, sizeof why), HS_EINVAL);
    /* kid bounds */
    char kid[300];
    memset(kid, 'k', 257);
    kid[257] = '\0';
    cr_assert_eq(hs_jwt_keys_add_pem(k, rsa_key(0)->pem, rsa_key(0)->pem_len, kid, why, sizeof why),
                 HS_EINVAL);
    cr_assert_eq(hs_jwt_keys_add_pem(k, rsa_key(0)->pem, rsa_key(0)->pem_len, "", why, sizeof why),
                 HS_EINVAL);
    kid[256] = '\0';
    cr_assert_eq(hs_jwt_keys_add_pem(k, rsa_key(0)->pem, rsa_key(0)->pem_len, kid, why, sizeof why),
                 1);
    /* secrets */
    cr_assert_eq(hs_jwt_keys_add_secret(k, "", 0), HS_EINVAL);
    cr_assert_eq(hs_jwt_keys_add_secret(k, NULL, 4), HS_EINVAL);
    hs_jwt_keys_free(k);
    hs_jwt_keys_free(NULL);
}

Test(jwt, weak_or_unsupported_keys_are_refused_at_load)
{
    static const struct {
        const char *type, *param;
        size_t bits;
        const char *why;
    } cases[] = {
        {"RSA", NULL, 1024, "rsa key shorter than 2048 bits"},
        {"EC", "P-384", 0, "ec key is not on p-256"},
        {"EC", "secp256k1", 0, "ec key is not on p-256"},
        {"ED25519", NULL, 0, "unsupported key type (rsa or ec p-256 only)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        tkey_t t;
        if (cases[i].bits)
            keygen(&t, cases[i].type, NULL, cases[i].bits);
        else if (cases[i].param)
            keygen(&t, cases[i].type, cases[i].param, 0);
        else {
            t.priv = EVP_PKEY_Q_keygen(NULL, NULL, cases[i].type);
            cr_assert_not_null(t.priv);
            BIO *b = BIO_new(BIO_s_mem());
            PEM_write_bio_PUBKEY(b, t.priv);
            char *p;
            long n = BIO_get_mem_data(b, &p);
            t.pem = strndup(p, (size_t)n);
            t.pem_len = (size_t)n;
            BIO_free(b);
        }
        hs_jwt_keys_t *k = hs_jwt_keys_new();
        char why[128] = "";
        cr_assert_eq(hs_jwt_keys_add_pem(k, t.pem, t.pem_len, NULL, why, sizeof why), HS_EINVAL,
                     "%s accepted", cases[i].type);
        cr_assert_str_eq(why, cases[i].why);
        hs_jwt_keys_free(k);
        EVP_PKEY_free(t.priv);
        free(t.pem);
    }
}
