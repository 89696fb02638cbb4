/*
 * Stream permissions: the `hubstream` claim of a token, {"publish": [patterns], "subscribe":
 * [patterns], "admin": bool}, and matching a stream name against it.
 *
 * A pattern is a stream name, or a prefix ending in `*` (only a last `*` is a wildcard; one
 * elsewhere is a literal character). `{sub}` in a pattern stands for the token's subject,
 * matched literally: `user-{sub}-*` gives each user the streams that start with their own
 * `user-<sub>-`, and a subject that holds `*` or `{` widens nothing. A pattern with `{sub}`
 * matches nothing when the subject is empty. `$all` is matched only by the pattern `*` alone.
 * Unknown members of the claim are ignored; a member of the wrong type is an error.
 * No I/O, no threads; JSON through proto/json.h.
 */
#ifndef HS_PROTO_PERMS_H
#define HS_PROTO_PERMS_H

#include <stdbool.h>
#include <stddef.h>

#define HS_PERMS_MAX_PATTERNS 64  /* per list */
#define HS_PERMS_MAX_PATTERN  512 /* bytes per pattern */

typedef enum hs_perm { HS_PERM_PUBLISH = 0, HS_PERM_SUBSCRIBE = 1 } hs_perm_t;

typedef struct hs_perms {
    char **list[2]; /* by hs_perm_t: NUL-terminated patterns */
    size_t n[2];
    bool admin;
} hs_perms_t;

/* Parses the claim's JSON text. 0, HS_EINVAL with why, or HS_ENOMEM. An empty *out (no
 * pattern, not admin) on success when the text is "{}". */
int hs_perms_parse(const char *json, size_t len, hs_perms_t *out, char *why, size_t whylen);
/* Adds one pattern (for embedders building permissions by hand). 0, HS_EINVAL, HS_ENOMEM. */
int hs_perms_add(hs_perms_t *p, hs_perm_t kind, const char *pattern);
/* Whether stream[0..len) is allowed for kind to a principal with subject sub. */
bool hs_perms_allows(const hs_perms_t *p, hs_perm_t kind, const char *sub, const char *stream,
                     size_t len);
void hs_perms_free(hs_perms_t *p);

#endif
