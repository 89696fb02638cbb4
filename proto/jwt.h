/*
 * JSON Web Tokens (RFC 7519) as hubstream checks them: a compact JWS (RFC 7515) signed with
 * HS256 (a shared secret), RS256 or ES256 (PEM public keys, several at once for rotation,
 * matched by `kid` when the token names one). Checks the signature, `exp` and `nbf` (with a
 * leeway), `aud` and `iss` when asked, and hands out `sub` and the `hubstream` claim's JSON.
 *
 * Refused, whatever the keys: `alg` none or unknown, a `crit` header, an HS token when no
 * secret is configured and an RS/ES token when no public key of its type is, a token over
 * HS_JWT_MAX bytes, malformed base64url (padding included) or JSON, a header or claim set
 * naming a member it reads twice. No I/O (keys come in as bytes), no allocation while verifying
 * beyond the claims handed out (and OpenSSL's own, inside EVP); a key set is read-only
 * after setup, so any number of threads may verify against one at once. Signatures through
 * OpenSSL's EVP interface, JSON through proto/json.h.
 */
#ifndef HS_PROTO_JWT_H
#define HS_PROTO_JWT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HS_JWT_MAX     8192 /* longest token accepted, in bytes */
#define HS_JWT_SUB_MAX 255  /* longest `sub` accepted, in bytes */

typedef struct hs_jwt_keys hs_jwt_keys_t;

hs_jwt_keys_t *hs_jwt_keys_new(void);
void hs_jwt_keys_free(hs_jwt_keys_t *k);

/* Adds an HS256 secret (raw bytes; empty is refused). 0, HS_EINVAL or HS_ENOMEM. */
int hs_jwt_keys_add_secret(hs_jwt_keys_t *k, const void *secret, size_t len);

/*
 * Adds every public key of a PEM text (`-----BEGIN PUBLIC KEY-----` blocks; RSA of at least
 * 2048 bits for RS256, EC P-256 for ES256; anything else refused with why). kid: the id a
 * token's `kid` header must name to use these keys (1..256 bytes), or NULL: such keys are
 * tried for tokens without a kid, and for tokens whose kid no key of their algorithm has (see
 * hs_jwt_verify). All or nothing: a block that is not a readable public key (a certificate, a
 * private key, bad base64; OpenSSL also reads PKCS#1 `RSA PUBLIC KEY` blocks) refuses the whole
 * text. Returns the number of keys added (>= 1), or HS_EINVAL with why, or HS_ENOMEM.
 */
int hs_jwt_keys_add_pem(hs_jwt_keys_t *k, const char *pem, size_t len, const char *kid, char *why,
                        size_t whylen);

/* What to check besides the signature. */
typedef struct hs_jwt_check {
    int64_t now_s;        /* the current Unix time */
    int leeway_s;         /* clock skew allowed on exp and nbf (negative: 0) */
    const char *audience; /* when set, `aud` (a string or an array) must hold it */
    const char *issuer;   /* when set, `iss` must equal it */
    bool require_exp;     /* a token without `exp` is refused */
} hs_jwt_check_t;

/* What a good token says. Free with hs_jwt_claims_free. */
typedef struct hs_jwt_claims {
    char sub[HS_JWT_SUB_MAX + 1]; /* "" when absent */
    int64_t exp;                  /* 0 when absent */
    int64_t nbf;                  /* 0 when absent */
    char *hubstream;              /* the `hubstream` claim's JSON text (NUL-terminated), or NULL */
    size_t hubstream_len;
} hs_jwt_claims_t;

/*
 * Verifies token[0..len) (without "Bearer "). Which keys: those of the algorithm's type; of
 * them, for a token with a `kid`, the keys added with that kid, or when none has it the keys
 * added without a kid (none of those either: refused, "unknown kid"); for a token without a
 * kid, all of them. The signature must verify under one. Returns 0
 * with *out filled, HS_EINVAL with a short reason in why (e.g. "token expired", "bad
 * signature", "alg none is not accepted") that may be shown to the client, or HS_ENOMEM.
 */
int hs_jwt_verify(const hs_jwt_keys_t *k, const char *token, size_t len, const hs_jwt_check_t *c,
                  hs_jwt_claims_t *out, char *why, size_t whylen);
void hs_jwt_claims_free(hs_jwt_claims_t *c);

#endif
