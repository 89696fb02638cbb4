/*
 * libFuzzer target: token verification and stream permissions (proto/jwt.h, proto/perms.h).
 *
 * The first byte picks what the rest is and what is checked besides the signature:
 *  - bit 0 clear: a raw token, verified against fixed keys: an HS256 secret, an RSA 2048 public
 *    key with kid "rsa-1" and an EC P-256 public key without a kid (PEM below; their private
 *    halves were thrown away, the seed corpus holds tokens they signed);
 *  - bit 0 set: header JSON, a NUL byte, payload JSON (no NUL: all of it is payload, the
 *    header is {"alg":"HS256"}); the target base64url-encodes both and signs them with HS256
 *    under the fixed secret, so the claims parser is reached past the signature check;
 *  - bit 1: audience "hub" required; bit 2: issuer "fz" required; bit 3: require_exp;
 *    bit 4: 60 s of leeway; bits 5-7: now is 1.7e9 + 1e8 * (bits 5-7).
 * Checked (abort on failure):
 *  - the result is 0 or HS_EINVAL; a refusal says why in 1..63 lower-case printable ASCII
 *    characters and leaves the claims empty;
 *  - an accepted token's claims keep the promises of jwt.h: sub at most HS_JWT_SUB_MAX bytes of
 *    UTF-8 without control characters; exp and nbf within what was checked; hubstream NULL or
 *    a compact JSON object of hubstream_len bytes; aud and iss as asked;
 *  - an accepted token is refused once one byte of its payload or signature part is changed,
 *    and an accepted HS256 token is refused by the same keys without the secret;
 *  - the hubstream claim (and, in the second mode, the payload JSON itself) goes through
 *    hs_perms_parse; on success every list holds at most HS_PERMS_MAX_PATTERNS non-empty
 *    patterns of at most HS_PERMS_MAX_PATTERN bytes, and hs_perms_allows agrees with a
 *    reference (each {sub} replaced by the subject in a copy of the pattern, then an exact or
 *    prefix comparison; $all only for "*") for the subjects sub, "", "*", "{sub}" and streams
 *    made from the patterns themselves.
 */
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hubstream/hubstream.h"
#include "proto/json.h"
#include "proto/jwt.h"
#include "proto/perms.h"
#include "tests/fuzz/fuzz_common.h"
#include "util/base64.h"

static const char fz_secret[] = "hubstream fuzz secret";

static const char rsa_pem[] = "-----BEGIN PUBLIC KEY-----\n"
                              "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAi3fS/4TG9IntDaopQTBr\n"
                              "/3Ta9yO/baQ0cfz7Og+T/uR4GfVUZ6zUcpEr64NtrGwy/RM1ADt/YC6uYnNgYDB9\n"
                              "ogQ4b+X1woU4Tc8F1wQL3OdQc8hOfxeZ/ADYeF7Fs9Vx3Hx9PBNst1XEtwM0CRlP\n"
                              "GZ3gOvVwSh6j/Ge83bHQg8hkmhdFLoql0/PXBVfSKo4gs8fVXt9ADELkAjMtr6EC\n"
                              "marGq231w3WT57oqO02kX7IHCDAmRDJxjEMYUPhTUC6MN+2z89y/mfruf/AeRCE8\n"
                              "icr41z9DsG6simsaFA4GCGrPN7AQlri5GsGoxdW3LD6xH1pIib/pxMj45uDb7AAi\n"
                              "xQIDAQAB\n"
                              "-----END PUBLIC KEY-----\n";

static const char ec_pem[] = "-----BEGIN PUBLIC KEY-----\n"
                             "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEYcsOR6lPSze7ZGrvLYQLxENRf7cd\n"
                             "fPMt8YIcgXdz//dovq4oc4p6YM3nwr0hNLxysUVEJfodYrGO8gMIw0F35Q==\n"
                             "-----END PUBLIC KEY-----\n";

static hs_jwt_keys_t *all_keys, *public_only;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char why[128];
    all_keys = hs_jwt_keys_new();
    public_only = hs_jwt_keys_new();
    CHECK(all_keys && public_only);
    CHECK(hs_jwt_keys_add_secret(all_keys, fz_secret, strlen(fz_secret)) == 0);
    hs_jwt_keys_t *sets[2] = {all_keys, public_only};
    for (int i = 0; i < 2; i++) {
        CHECK(hs_jwt_keys_add_pem(sets[i], rsa_pem, strlen(rsa_pem), "rsa-1", why, sizeof why) ==
              1);
        CHECK(hs_jwt_keys_add_pem(sets[i], ec_pem, strlen(ec_pem), NULL, why, sizeof why) == 1);
    }
    return 0;
}

/* ---- permissions ---- */

/* The reference matcher: pattern pat with every {sub} replaced by sub, then compared. */
static bool ref_match(const char *pat, const char *sub, const char *stream, size_t len)
{
    if (len == 4 && memcmp(stream, "$all", 4) == 0)
        return strcmp(pat, "*") == 0;
    size_t pl = strlen(pat), sl = strlen(sub);
    bool prefix = pl && pat[pl - 1] == '*';
    if (prefix)
        pl--;
    char *e = fz_alloc(pl / 5 * sl + pl + 1);
    size_t o = 0;
    for (size_t i = 0; i < pl;) {
        if (pl - i >= 5 && memcmp(pat + i, "{sub}", 5) == 0) {
            if (sl == 0) {
                free(e);
                return false;
            }
            memcpy(e + o, sub, sl);
            o += sl;
            i += 5;
        } else {
            e[o++] = pat[i++];
        }
    }
    bool m = prefix ? len >= o && memcmp(stream, e, o) == 0 : len == o && memcmp(stream, e, o) == 0;
    free(e);
    return m;
}

static void check_allows(const hs_perms_t *p, hs_perm_t kind, const char *sub, const char *stream,
                         size_t len)
{
    bool want = false;
    for (size_t i = 0; i < p->n[kind] && !want; i++)
        want = ref_match(p->list[kind][i], sub, stream, len);
    CHECK(hs_perms_allows(p, kind, sub, stream, len) == want);
}

static void check_perms(const char *json, size_t len, const char *sub)
{
    hs_perms_t p;
    char why[128];
    int rc = hs_perms_parse(json, len, &p, why, sizeof why);
    CHECK(rc == 0 || rc == HS_EINVAL);
    if (rc) {
        CHECK(why[0] != '\0');
        CHECK(p.n[0] == 0 && p.n[1] == 0 && !p.list[0] && !p.list[1] && !p.admin);
        return;
    }
    const char *subs[4] = {sub, "", "*", "{sub}"};
    for (int kind = 0; kind < 2; kind++) {
        CHECK(p.n[kind] <= HS_PERMS_MAX_PATTERNS);
        for (size_t i = 0; i < p.n[kind]; i++) {
            size_t l = strlen(p.list[kind][i]);
            CHECK(l >= 1 && l <= HS_PERMS_MAX_PATTERN);
        }
        for (int s = 0; s < 4; s++) {
            check_allows(&p, (hs_perm_t)kind, subs[s], "$all", 4);
            check_allows(&p, (hs_perm_t)kind, subs[s], sub, strlen(sub));
            /* streams made from the first patterns: as written, plus a byte, minus one */
            for (size_t i = 0; i < p.n[kind] && i < 4; i++) {
                const char *pat = p.list[kind][i];
                size_t l = strlen(pat);
                char *st = fz_alloc(l + 2);
                memcpy(st, pat, l);
                st[l] = 'x';
                check_allows(&p, (hs_perm_t)kind, subs[s], st, l);
                check_allows(&p, (hs_perm_t)kind, subs[s], st, l + 1);
                check_allows(&p, (hs_perm_t)kind, subs[s], st, l - 1);
                free(st);
                /* and with {sub} expanded for this subject */
                char *ex = fz_alloc(l / 5 * strlen(subs[s]) + l + 2);
                size_t o = 0;
                for (size_t j = 0; j < l;) {
                    if (l - j >= 5 && memcmp(pat + j, "{sub}", 5) == 0) {
                        memcpy(ex + o, subs[s], strlen(subs[s]));
                        o += strlen(subs[s]);
                        j += 5;
                    } else {
                        ex[o++] = pat[j++];
                    }
                }
                check_allows(&p, (hs_perm_t)kind, subs[s], ex, o);
                if (o && ex[o - 1] == '*')
                    check_allows(&p, (hs_perm_t)kind, subs[s], ex, o - 1);
                free(ex);
            }
        }
    }
    hs_perms_free(&p);
    CHECK(p.n[0] == 0 && p.n[1] == 0);
}

/* ---- tokens ---- */

static bool why_ok(const char *why)
{
    size_t n = strlen(why);
    if (n < 1 || n > 63)
        return false;
    for (size_t i = 0; i < n; i++)
        if (why[i] < ' ' || why[i] > '~' || (why[i] >= 'A' && why[i] <= 'Z'))
            return false;
    return true;
}

static int verify(const hs_jwt_keys_t *k, const char *t, size_t n, const hs_jwt_check_t *c,
                  hs_jwt_claims_t *cl)
{
    char *copy = fz_alloc(n); /* exact size: ASan sees a read past the end */
    if (n)
        memcpy(copy, t, n);
    char why[128];
    int rc = hs_jwt_verify(k, copy, n, c, cl, why, sizeof why);
    free(copy);
    CHECK(rc == 0 || rc == HS_EINVAL);
    if (rc) {
        if (!why_ok(why))
            fprintf(stderr, "bad reason: '%s'\n", why);
        CHECK(why_ok(why));
        CHECK(cl->hubstream == NULL && cl->hubstream_len == 0 && cl->sub[0] == '\0');
        CHECK(cl->exp == 0 && cl->nbf == 0);
    }
    return rc;
}

static void check_claims(const hs_jwt_claims_t *cl, const hs_jwt_check_t *c)
{
    size_t sl = strnlen(cl->sub, sizeof cl->sub);
    CHECK(sl <= HS_JWT_SUB_MAX);
    CHECK(fz_utf8_valid((const uint8_t *)cl->sub, sl));
    for (size_t i = 0; i < sl; i++)
        CHECK((unsigned char)cl->sub[i] >= 0x20 && cl->sub[i] != 0x7f);
    CHECK(cl->exp >= 0 && cl->exp <= 253402300799LL && cl->nbf >= 0 && cl->nbf <= 253402300799LL);
    int64_t leeway = c->leeway_s;
    if (cl->exp)
        CHECK(c->now_s < cl->exp + leeway);
    CHECK(!c->require_exp || cl->exp);
    CHECK(c->now_s + leeway >= cl->nbf);
    if (cl->hubstream) {
        CHECK(strlen(cl->hubstream) == cl->hubstream_len);
        hs_json_span_t v;
        CHECK(hs_json_parse(cl->hubstream, cl->hubstream_len, &v, NULL, 0) == 0);
        CHECK(v.type == HS_JSON_OBJECT && v.p == cl->hubstream && v.n == cl->hubstream_len);
        char *again = fz_alloc(v.n);
        CHECK(hs_json_compact(&v, again) == v.n && memcmp(again, v.p, v.n) == 0);
        free(again);
    } else {
        CHECK(cl->hubstream_len == 0);
    }
}

/* An accepted token must not survive a change of one byte of its payload or signature. */
static void check_tamper(const char *t, size_t n, const hs_jwt_check_t *c, uint8_t salt)
{
    const char *d1 = memchr(t, '.', n),
               *d2 = d1 ? memchr(d1 + 1, '.', n - (size_t)(d1 - t) - 1) : NULL;
    CHECK(d1 && d2);
    char *m = fz_alloc(n);
    memcpy(m, t, n);
    size_t span[2][2] = {{(size_t)(d1 - t) + 1, (size_t)(d2 - d1) - 1},
                         {(size_t)(d2 - t) + 1, n - (size_t)(d2 - t) - 1}};
    for (int part = 0; part < 2; part++) {
        if (span[part][1] == 0)
            continue;
        size_t at = span[part][0] + salt % span[part][1];
        char was = m[at];
        m[at] = was == 'A' ? 'B' : 'A';
        hs_jwt_claims_t cl;
        CHECK(verify(all_keys, m, n, c, &cl) == HS_EINVAL);
        m[at] = was;
    }
    free(m);
}

static void run(const char *t, size_t n, const hs_jwt_check_t *c, uint8_t salt, bool hs_signed,
                const char *perms_json, size_t perms_len)
{
    hs_jwt_claims_t cl;
    int rc = verify(all_keys, t, n, c, &cl);
    const char *sub = "";
    if (rc == 0) {
        check_claims(&cl, c);
        check_tamper(t, n, c, salt);
        if (hs_signed) {
            hs_jwt_claims_t other;
            CHECK(verify(public_only, t, n, c, &other) == HS_EINVAL);
        }
        sub = cl.sub;
        if (cl.hubstream)
            check_perms(cl.hubstream, cl.hubstream_len, sub);
    }
    if (perms_json)
        check_perms(perms_json, perms_len, sub);
    hs_jwt_claims_free(&cl);
    CHECK(cl.hubstream == NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t mode = data[0];
    const char *in = (const char *)data + 1;
    size_t n = size - 1;
    hs_jwt_check_t c = {
        .now_s = 1700000000LL + 100000000LL * (mode >> 5),
        .leeway_s = mode & 0x10 ? 60 : 0,
        .audience = mode & 0x02 ? "hub" : NULL,
        .issuer = mode & 0x04 ? "fz" : NULL,
        .require_exp = mode & 0x08,
    };
    if (!(mode & 1)) {
        run(in, n, &c, (uint8_t)n, false, NULL, 0);
        return 0;
    }
    /* header NUL payload: encode and sign */
    const char *nul = memchr(in, '\0', n);
    const char *h = nul ? in : "{\"alg\":\"HS256\"}";
    size_t hn = nul ? (size_t)(nul - in) : strlen(h);
    const char *p = nul ? nul + 1 : in;
    size_t pn = nul ? n - hn - 1 : n;
    if (HS_BASE64URL_LEN(hn) + HS_BASE64URL_LEN(pn) + 2 + 43 > 2 * HS_JWT_MAX)
        return 0; /* refused for its size alone; the raw mode covers that */
    char *t = fz_alloc(HS_BASE64URL_LEN(hn) + HS_BASE64URL_LEN(pn) + 2 + 44);
    size_t o = hs_base64url_encode(h, hn, t);
    t[o++] = '.';
    o += hs_base64url_encode(p, pn, t + o);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int ml = 0;
    CHECK(HMAC(EVP_sha256(), fz_secret, (int)strlen(fz_secret), (const unsigned char *)t, o, mac,
               &ml) != NULL);
    CHECK(ml == 32);
    t[o++] = '.';
    o += hs_base64url_encode(mac, ml, t + o);
    run(t, o, &c, (uint8_t)(pn + hn), true, p, pn);
    free(t);
    return 0;
}
