/* JSON Web Tokens (see jwt.h). */
#include "proto/jwt.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/obj_mac.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "hubstream/hubstream.h"
#include "proto/json.h"
#include "util/base64.h"
#include "util/utf8.h"

#define KID_MAX          256 /* longest kid, in bytes, of a key or a token */
#define PEM_KEYS_MAX     64  /* keys one PEM text may hold */
#define RSA_MIN_BITS     2048
#define NUMERIC_DATE_MAX 253402300799 /* 9999-12-31T23:59:59Z: later is absurd */
/* Everything a token of HS_JWT_MAX bytes decodes to (its three parts together). */
#define DECODED_MAX (HS_JWT_MAX / 4 * 3)

typedef enum alg { ALG_HS256 = 0, ALG_RS256 = 1, ALG_ES256 = 2 } alg_t;

static const char *const no_key[3] = {"no hs256 secret configured", "no rs256 key configured",
                                      "no es256 key configured"};

typedef struct jwt_key {
    alg_t alg;
    EVP_PKEY *pkey;  /* RS256 and ES256 */
    uint8_t *secret; /* HS256 */
    size_t len;
    char *kid; /* NULL: none */
} jwt_key_t;

struct hs_jwt_keys {
    jwt_key_t *v;
    size_t n, cap;
};

static int fail(char *why, size_t whylen, const char *msg)
{
    if (why && whylen)
        snprintf(why, whylen, "%s", msg);
    return HS_EINVAL;
}

/* ---- key set ---- */

hs_jwt_keys_t *hs_jwt_keys_new(void)
{
    return calloc(1, sizeof(hs_jwt_keys_t));
}

static void key_dispose(jwt_key_t *key)
{
    EVP_PKEY_free(key->pkey);
    if (key->secret) {
        OPENSSL_cleanse(key->secret, key->len);
        free(key->secret);
    }
    free(key->kid);
    memset(key, 0, sizeof *key);
}

void hs_jwt_keys_free(hs_jwt_keys_t *k)
{
    if (!k)
        return;
    for (size_t i = 0; i < k->n; i++)
        key_dispose(&k->v[i]);
    free(k->v);
    free(k);
}

/* Room for more keys; 0 or HS_ENOMEM. */
static int reserve(hs_jwt_keys_t *k, size_t more)
{
    if (k->cap - k->n >= more)
        return 0;
    size_t cap = k->cap ? k->cap : 4;
    while (cap - k->n < more)
        cap *= 2;
    jwt_key_t *v = realloc(k->v, cap * sizeof *v);
    if (!v)
        return HS_ENOMEM;
    k->v = v;
    k->cap = cap;
    return 0;
}

int hs_jwt_keys_add_secret(hs_jwt_keys_t *k, const void *secret, size_t len)
{
    if (!k || !secret || len == 0 || len > INT_MAX)
        return HS_EINVAL;
    if (reserve(k, 1))
        return HS_ENOMEM;
    uint8_t *copy = malloc(len);
    if (!copy)
        return HS_ENOMEM;
    memcpy(copy, secret, len);
    k->v[k->n++] = (jwt_key_t){.alg = ALG_HS256, .secret = copy, .len = len};
    return 0;
}

/* PEM_read_bio_PUBKEY's password callback: public keys are never encrypted, and OpenSSL's
 * default callback would prompt on the terminal. */
static int no_password(char *buf, int size, int rwflag, void *u)
{
    (void)buf, (void)size, (void)rwflag, (void)u;
    return -1;
}

/* Which algorithm a public key serves, or -1 with why. */
static int classify(EVP_PKEY *pk, char *why, size_t whylen)
{
    if (EVP_PKEY_is_a(pk, "RSA")) {
        if (EVP_PKEY_get_bits(pk) < RSA_MIN_BITS) {
            fail(why, whylen, "rsa key shorter than 2048 bits");
            return -1;
        }
        return ALG_RS256;
    }
    if (EVP_PKEY_is_a(pk, "EC")) {
        char group[64];
        size_t glen = 0;
        if (EVP_PKEY_get_group_name(pk, group, sizeof group, &glen) != 1 ||
            (OBJ_sn2nid(group) != NID_X9_62_prime256v1 &&
             EC_curve_nist2nid(group) != NID_X9_62_prime256v1)) {
            fail(why, whylen, "ec key is not on p-256");
            return -1;
        }
        return ALG_ES256;
    }
    fail(why, whylen, "unsupported key type (rsa or ec p-256 only)");
    return -1;
}

/* Occurrences of "-----BEGIN " in pem[0..len): every PEM block, of whatever kind. */
static size_t count_blocks(const char *pem, size_t len)
{
    static const char tag[] = "-----BEGIN ";
    size_t n = 0, tl = sizeof tag - 1;
    for (size_t i = 0; i + tl <= len; i++)
        if (pem[i] == '-' && memcmp(pem + i, tag, tl) == 0) {
            n++;
            i += tl - 1;
        }
    return n;
}

int hs_jwt_keys_add_pem(hs_jwt_keys_t *k, const char *pem, size_t len, const char *kid, char *why,
                        size_t whylen)
{
    if (why && whylen)
        why[0] = '\0';
    if (!k || (!pem && len))
        return fail(why, whylen, "bad arguments");
    if (kid && (kid[0] == '\0' || strnlen(kid, KID_MAX + 1) > KID_MAX))
        return fail(why, whylen, "kid must be 1 to 256 bytes");
    if (len == 0 || len > INT_MAX)
        return fail(why, whylen, "no public key in pem");
    size_t blocks = count_blocks(pem, len);
    if (blocks == 0)
        return fail(why, whylen, "no public key in pem");
    if (blocks > PEM_KEYS_MAX)
        return fail(why, whylen, "too many keys in one pem");

    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    if (!bio)
        return HS_ENOMEM;
    jwt_key_t got[PEM_KEYS_MAX];
    size_t n = 0;
    int rc = 0;
    ERR_set_mark();
    for (;;) {
        EVP_PKEY *pk = PEM_read_bio_PUBKEY(bio, NULL, no_password, NULL);
        if (!pk)
            break;
        int alg = classify(pk, why, whylen);
        if (alg < 0 || n == PEM_KEYS_MAX) {
            if (alg >= 0)
                fail(why, whylen, "too many keys in one pem");
            EVP_PKEY_free(pk);
            rc = HS_EINVAL;
            break;
        }
        got[n++] = (jwt_key_t){.alg = (alg_t)alg, .pkey = pk};
    }
    /* the loop ends at the end of the text or at the first block it cannot read, and
     * PEM_read_bio_PUBKEY skips blocks of other kinds: every block must have given a key */
    if (rc == 0 && n == 0)
        rc = fail(why, whylen, "no public key in pem");
    else if (rc == 0 && n != blocks)
        rc = fail(why, whylen, "pem holds a block that is not a readable public key");
    ERR_pop_to_mark();
    BIO_free(bio);
    if (rc == 0 && reserve(k, n))
        rc = HS_ENOMEM;
    for (size_t i = 0; rc == 0 && i < n; i++)
        if (kid && !(got[i].kid = strdup(kid)))
            rc = HS_ENOMEM;
    if (rc) {
        for (size_t i = 0; i < n; i++)
            key_dispose(&got[i]);
        if (rc == HS_ENOMEM)
            fail(why, whylen, "out of memory");
        return rc;
    }
    memcpy(k->v + k->n, got, n * sizeof *got);
    k->n += n;
    return (int)n;
}

/* ---- signatures ---- */

/* 1 when sig is data's HS256 MAC under key, 0 when not, HS_ENOMEM. */
static int verify_hs(const jwt_key_t *key, const uint8_t *sig, size_t sl, const char *data,
                     size_t dl)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int ml = 0;
    if (!HMAC(EVP_sha256(), key->secret, (int)key->len, (const unsigned char *)data, dl, mac,
              &ml)) {
        ERR_clear_error();
        return HS_ENOMEM;
    }
    int ok = ml == 32 && sl == 32 && CRYPTO_memcmp(mac, sig, 32) == 0;
    OPENSSL_cleanse(mac, sizeof mac);
    return ok;
}

/* 1 when sig (DER for ECDSA) verifies data under the key's public key with SHA-256, 0 when
 * not, HS_ENOMEM. */
static int verify_pkey(const jwt_key_t *key, const uint8_t *sig, size_t sl, const char *data,
                       size_t dl)
{
    EVP_MD_CTX *m = EVP_MD_CTX_new();
    if (!m)
        return HS_ENOMEM;
    EVP_PKEY_CTX *pc = NULL;
    int ok = EVP_DigestVerifyInit(m, &pc, EVP_sha256(), NULL, key->pkey) == 1;
    if (ok && key->alg == ALG_RS256)
        ok = EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PADDING) > 0;
    if (ok)
        ok = EVP_DigestVerify(m, sig, sl, (const unsigned char *)data, dl) == 1;
    EVP_MD_CTX_free(m);
    ERR_clear_error();
    return ok;
}

/* A JWS ES256 signature (R || S, 32 bytes each) as the DER ECDSA-Sig-Value OpenSSL verifies;
 * its length, 0 when it is not 64 bytes, HS_ENOMEM. */
static int es256_der(const uint8_t *sig, size_t sl, unsigned char der[80])
{
    if (sl != 64)
        return 0;
    ECDSA_SIG *s = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(sig, 32, NULL), *ss = BN_bin2bn(sig + 32, 32, NULL);
    if (!s || !r || !ss || ECDSA_SIG_set0(s, r, ss) != 1) {
        ECDSA_SIG_free(s);
        BN_free(r);
        BN_free(ss);
        ERR_clear_error();
        return HS_ENOMEM;
    }
    int n = i2d_ECDSA_SIG(s, NULL); /* at most 2 + 2 * (2 + 33) = 72 */
    if (n > 0 && n <= 80) {
        unsigned char *p = der;
        n = i2d_ECDSA_SIG(s, &p);
    } else {
        n = 0;
    }
    ECDSA_SIG_free(s);
    ERR_clear_error();
    return n > 0 ? n : 0;
}

/* ---- claims ---- */

/* Index of the name a (still escaped) key span unescapes to among names[0..n), or -1. */
static int name_of(const hs_json_span_t *key, const char *const *names, int n)
{
    char buf[16];
    long l = hs_json_unescape(key, buf, sizeof buf);
    if (l < 0)
        return -1;
    for (int i = 0; i < n; i++)
        if (strlen(names[i]) == (size_t)l && memcmp(buf, names[i], (size_t)l) == 0)
            return i;
    return -1;
}

/* Whether a string span, unescaped into scratch (DECODED_MAX bytes), equals lit. */
static bool string_is(const hs_json_span_t *s, const char *lit, char *scratch)
{
    size_t ll = strlen(lit);
    if (s->type != HS_JSON_STRING || s->n - 2 < ll) /* unescaping never lengthens */
        return false;
    long l = hs_json_unescape(s, scratch, DECODED_MAX);
    return l >= 0 && (size_t)l == ll && memcmp(scratch, lit, ll) == 0;
}

/*
 * A NumericDate (RFC 7519: seconds, a JSON number, maybe with a fraction or an exponent) as
 * whole seconds, rounded down. False when negative or past NUMERIC_DATE_MAX. The span is a
 * valid JSON number: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
 */
static bool numeric_date(const hs_json_span_t *v, int64_t *out)
{
    const char *p = v->p, *end = v->p + v->n;
    if (v->type != HS_JSON_NUMBER || *p == '-')
        return false;
    /* the significant digits (integer then fraction, leading zeros dropped), of which the
     * first `point` are the integer part */
    char sig[16];
    size_t nsig = 0, total = 0;
    long point = 0;
    bool in_frac = false;
    for (; p < end && *p != 'e' && *p != 'E'; p++) {
        if (*p == '.') {
            in_frac = true;
            continue;
        }
        if (total == 0 && *p == '0') {
            if (in_frac)
                point--; /* 0.00123: the point moves left of the first significant digit */
            continue;
        }
        if (nsig < sizeof sig)
            sig[nsig++] = *p;
        total++;
        if (!in_frac)
            point++;
    }
    if (p < end) { /* exponent */
        p++;
        bool neg = *p == '-';
        if (*p == '+' || *p == '-')
            p++;
        long e = 0;
        for (; p < end; p++)
            if (e < 100000)
                e = e * 10 + (*p - '0');
        point += neg ? -e : e;
    }
    if (total == 0 || point <= 0) {
        *out = 0;
        return true;
    }
    if (point > 12) /* 10^12 s is past year 9999 */
        return false;
    int64_t x = 0;
    for (long i = 0; i < point; i++)
        x = x * 10 + ((size_t)i < nsig ? sig[i] - '0' : 0);
    if (x > NUMERIC_DATE_MAX)
        return false;
    *out = x;
    return true;
}

/* Whether sub[0..n) is fit to hand out: UTF-8 without C0 or C1 controls or DEL. */
static bool sub_ok(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint32_t cp;
        size_t l = hs_utf8_char((const unsigned char *)s + i, n - i, &cp);
        if (l == 0 || cp < 0x20 || (cp >= 0x7f && cp <= 0x9f))
            return false;
        i += l;
    }
    return true;
}

enum { C_EXP, C_NBF, C_AUD, C_ISS, C_SUB, C_HUBSTREAM, C_COUNT };
static const char *const claim_names[C_COUNT] = {"exp", "nbf", "aud", "iss", "sub", "hubstream"};

static int check_claims(const char *json, size_t n, const hs_jwt_check_t *c, char *scratch,
                        hs_jwt_claims_t *out, char *why, size_t whylen)
{
    hs_json_span_t root;
    if (hs_json_parse(json, n, &root, NULL, 0) != 0)
        return fail(why, whylen, "payload is not valid json");
    if (root.type != HS_JSON_OBJECT)
        return fail(why, whylen, "payload is not a json object");
    hs_json_span_t claim[C_COUNT];
    bool has[C_COUNT] = {false};
    size_t pos = 0;
    hs_json_span_t key, val;
    while (hs_json_object_next(&root, &pos, &key, &val)) {
        int i = name_of(&key, claim_names, C_COUNT);
        if (i < 0)
            continue;
        if (has[i])
            return fail(why, whylen, "duplicate claim");
        has[i] = true;
        claim[i] = val;
    }

    if (has[C_EXP] && !numeric_date(&claim[C_EXP], &out->exp))
        return fail(why, whylen, "bad exp claim");
    if (has[C_NBF] && !numeric_date(&claim[C_NBF], &out->nbf))
        return fail(why, whylen, "bad nbf claim");
    if (has[C_SUB]) {
        if (claim[C_SUB].type != HS_JSON_STRING)
            return fail(why, whylen, "sub claim is not a string");
        long l = hs_json_unescape(&claim[C_SUB], out->sub, sizeof out->sub);
        if (l < 0 || l > HS_JWT_SUB_MAX)
            return fail(why, whylen, "sub claim too long");
        if (!sub_ok(out->sub, (size_t)l))
            return fail(why, whylen, "bad sub claim");
        out->sub[l] = '\0';
    }
    if (has[C_ISS] && claim[C_ISS].type != HS_JSON_STRING)
        return fail(why, whylen, "iss claim is not a string");
    bool aud_match = false;
    if (has[C_AUD]) {
        const hs_json_span_t *a = &claim[C_AUD];
        if (a->type == HS_JSON_STRING) {
            aud_match = c->audience && string_is(a, c->audience, scratch);
        } else if (a->type == HS_JSON_ARRAY) {
            size_t ap = 0;
            hs_json_span_t item;
            while (hs_json_array_next(a, &ap, &item)) {
                if (item.type != HS_JSON_STRING)
                    return fail(why, whylen, "aud claim is not a string or strings");
                if (c->audience && string_is(&item, c->audience, scratch))
                    aud_match = true;
            }
        } else {
            return fail(why, whylen, "aud claim is not a string or strings");
        }
    }
    if (has[C_HUBSTREAM] && claim[C_HUBSTREAM].type != HS_JSON_OBJECT)
        return fail(why, whylen, "hubstream claim is not an object");

    int64_t leeway = c->leeway_s > 0 ? c->leeway_s : 0;
    if (has[C_EXP] && c->now_s >= out->exp + leeway)
        return fail(why, whylen, "token expired");
    if (!has[C_EXP] && c->require_exp)
        return fail(why, whylen, "token has no exp");
    if (has[C_NBF] && c->now_s < out->nbf - leeway)
        return fail(why, whylen, "token not yet valid");
    if (c->audience && !has[C_AUD])
        return fail(why, whylen, "token has no aud");
    if (c->audience && !aud_match)
        return fail(why, whylen, "wrong audience");
    if (c->issuer && !has[C_ISS])
        return fail(why, whylen, "token has no iss");
    if (c->issuer && !string_is(&claim[C_ISS], c->issuer, scratch))
        return fail(why, whylen, "wrong issuer");

    if (has[C_HUBSTREAM]) {
        out->hubstream = malloc(claim[C_HUBSTREAM].n + 1);
        if (!out->hubstream)
            return HS_ENOMEM;
        out->hubstream_len = hs_json_compact(&claim[C_HUBSTREAM], out->hubstream);
        out->hubstream[out->hubstream_len] = '\0';
    }
    return 0;
}

/* ---- header ---- */

enum { H_ALG, H_KID, H_CRIT, H_COUNT };
static const char *const header_names[H_COUNT] = {"alg", "kid", "crit"};

/* Reads the header: the algorithm, and the kid (kid[0..*kidlen), *has_kid). */
static int check_header(const char *json, size_t n, alg_t *alg, char kid[KID_MAX + 1],
                        size_t *kidlen, bool *has_kid, char *why, size_t whylen)
{
    hs_json_span_t root;
    if (hs_json_parse(json, n, &root, NULL, 0) != 0)
        return fail(why, whylen, "header is not valid json");
    if (root.type != HS_JSON_OBJECT)
        return fail(why, whylen, "header is not a json object");
    hs_json_span_t member[H_COUNT];
    bool has[H_COUNT] = {false};
    size_t pos = 0;
    hs_json_span_t key, val;
    while (hs_json_object_next(&root, &pos, &key, &val)) {
        int i = name_of(&key, header_names, H_COUNT);
        if (i < 0)
            continue;
        if (has[i])
            return fail(why, whylen, "duplicate header member");
        has[i] = true;
        member[i] = val;
    }
    if (!has[H_ALG] || member[H_ALG].type != HS_JSON_STRING)
        return fail(why, whylen, "header has no alg");
    if (hs_json_string_eq(&member[H_ALG], "none", true))
        return fail(why, whylen, "alg none is not accepted");
    if (hs_json_string_eq(&member[H_ALG], "HS256", false))
        *alg = ALG_HS256;
    else if (hs_json_string_eq(&member[H_ALG], "RS256", false))
        *alg = ALG_RS256;
    else if (hs_json_string_eq(&member[H_ALG], "ES256", false))
        *alg = ALG_ES256;
    else
        return fail(why, whylen, "unsupported alg (hs256, rs256 or es256)");
    if (has[H_CRIT])
        return fail(why, whylen, "crit header is not supported");
    *has_kid = has[H_KID];
    if (has[H_KID]) {
        if (member[H_KID].type != HS_JSON_STRING)
            return fail(why, whylen, "kid is not a string");
        long l = hs_json_unescape(&member[H_KID], kid, KID_MAX + 1);
        if (l < 0 || l > KID_MAX)
            return fail(why, whylen, "kid too long");
        *kidlen = (size_t)l;
    }
    return 0;
}

/* ---- verification ---- */

static bool kid_is(const jwt_key_t *key, const char *kid, size_t kidlen)
{
    return key->kid && strlen(key->kid) == kidlen && memcmp(key->kid, kid, kidlen) == 0;
}

/* Tries the signature under the keys the header picks: 0 when one verifies it, HS_EINVAL with
 * why, HS_ENOMEM. */
static int check_signature(const hs_jwt_keys_t *k, alg_t alg, const char *kid, size_t kidlen,
                           bool has_kid, const uint8_t *sig, size_t sl, const char *data, size_t dl,
                           char *why, size_t whylen)
{
    size_t of_alg = 0, with_kid = 0;
    for (size_t i = 0; i < k->n; i++) {
        if (k->v[i].alg != alg)
            continue;
        of_alg++;
        if (has_kid && kid_is(&k->v[i], kid, kidlen))
            with_kid++;
    }
    if (of_alg == 0)
        return fail(why, whylen, no_key[alg]);
    unsigned char der[80];
    if (alg == ALG_ES256) {
        int n = es256_der(sig, sl, der);
        if (n < 0)
            return n;
        if (n == 0)
            return fail(why, whylen, "bad signature");
        sig = der;
        sl = (size_t)n;
    }
    size_t tried = 0;
    for (size_t i = 0; i < k->n; i++) {
        const jwt_key_t *key = &k->v[i];
        if (key->alg != alg)
            continue;
        /* a kid picks its keys, else the keys without a kid; no kid: every key */
        if (has_kid && (with_kid ? !kid_is(key, kid, kidlen) : key->kid != NULL))
            continue;
        tried++;
        int ok = alg == ALG_HS256 ? verify_hs(key, sig, sl, data, dl)
                                  : verify_pkey(key, sig, sl, data, dl);
        if (ok < 0)
            return ok;
        if (ok)
            return 0;
    }
    return fail(why, whylen, tried ? "bad signature" : "unknown kid");
}

static int verify(const hs_jwt_keys_t *k, const char *token, size_t len, const hs_jwt_check_t *c,
                  hs_jwt_claims_t *out, char *why, size_t whylen)
{
    if (len > HS_JWT_MAX)
        return fail(why, whylen, "token too long");
    const char *d1 = len ? memchr(token, '.', len) : NULL;
    const char *d2 = d1 ? memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - token)) : NULL;
    if (!d2 || memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - token)))
        return fail(why, whylen, "malformed token (not three parts)");
    const char *hp = token, *pp = d1 + 1, *sp = d2 + 1;
    size_t hn = (size_t)(d1 - token), pn = (size_t)(d2 - pp), sn = len - (size_t)(sp - token);

    /* the three parts decoded one after the other, and room to unescape strings */
    uint8_t dec[DECODED_MAX];
    char scratch[DECODED_MAX];
    long hl = hs_base64url_decode(hp, hn, dec, sizeof dec);
    if (hl < 0)
        return fail(why, whylen, "header is not base64url");
    alg_t alg;
    char kid[KID_MAX + 1];
    size_t kidlen = 0;
    bool has_kid = false;
    int rc = check_header((const char *)dec, (size_t)hl, &alg, kid, &kidlen, &has_kid, why, whylen);
    if (rc)
        return rc;
    uint8_t *sig = dec + hl;
    long sl = hs_base64url_decode(sp, sn, sig, sizeof dec - (size_t)hl);
    if (sl < 0)
        return fail(why, whylen, "signature is not base64url");
    rc = check_signature(k, alg, kid, kidlen, has_kid, sig, (size_t)sl, token, (size_t)(d2 - token),
                         why, whylen);
    if (rc)
        return rc;
    uint8_t *payload = sig + sl;
    long pl = hs_base64url_decode(pp, pn, payload, sizeof dec - (size_t)(hl + sl));
    if (pl < 0)
        return fail(why, whylen, "payload is not base64url");
    return check_claims((const char *)payload, (size_t)pl, c, scratch, out, why, whylen);
}

int hs_jwt_verify(const hs_jwt_keys_t *k, const char *token, size_t len, const hs_jwt_check_t *c,
                  hs_jwt_claims_t *out, char *why, size_t whylen)
{
    if (why && whylen)
        why[0] = '\0';
    if (!out)
        return fail(why, whylen, "bad arguments");
    memset(out, 0, sizeof *out);
    if (!k || !c || (!token && len))
        return fail(why, whylen, "bad arguments");
    int rc = verify(k, token, len, c, out, why, whylen);
    if (rc) {
        hs_jwt_claims_free(out);
        if (rc == HS_ENOMEM)
            fail(why, whylen, "out of memory");
    }
    return rc;
}

void hs_jwt_claims_free(hs_jwt_claims_t *c)
{
    if (!c)
        return;
    free(c->hubstream);
    memset(c, 0, sizeof *c);
}
