/* auth.h: decides whether a webhook request may enter: secret token, HTTP Basic, source-address
 * allowlist and HMAC signatures (Standard Webhooks, GitHub's X-Hub-Signature-256).
 *
 * Cloud 66 signs nothing, so the receiver has to keep strangers out. Every configured mode must
 * pass; a mode with nothing configured is off; with nothing configured at all, every request is
 * allowed. Pure: strings and bytes in, a verdict out; no sockets, no clock reads, no logging.
 *
 * Modes:
 *   token           the path suffix ("<http.path>/<token>") or the query "?token=<token>"
 *                   equals one of auth.tokens.
 *   basic           "Authorization: Basic base64(user:password)" equals one of auth.basic_users.
 *   allow_from      the client address lies in one of the CIDRs. The client is the direct peer,
 *                   unless the peer is in auth.trusted_proxies: then X-Forwarded-For is read from
 *                   the right and the client is the right-most address that is not a trusted
 *                   proxy (entries left of it were written by the client and prove nothing).
 *   standard        Standard Webhooks: HMAC-SHA256 over "webhook-id.webhook-timestamp.body" with
 *                   the base64 key of a whsec_ secret; webhook-signature holds space-separated
 *                   "v1,<base64>" entries, any of which may match; the timestamp must be within
 *                   tolerance_s of now, either way.
 *   github          "X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>".
 * A token compares over its exact bytes: one with a NUL, or anything after a NUL, does not match.
 * Several secrets per mode (rotation): any one matching passes. Every comparison of a secret is
 * constant-time (CRYPTO_memcmp over fixed-length digests, so the length leaks nothing either).
 *
 * Verdicts: 403 forbidden_source for an address not allowed; 401 for missing or wrong
 * credentials (missing_token, invalid_token, missing_credentials, invalid_credentials,
 * missing_signature, invalid_signature, stale_signature). The detail never holds a secret, and
 * is printable ASCII (client text in it is cut short and reduced), fit for a JSON answer or log.
 *
 * @locality any thread; an auth_t is read-only after auth_new.
 */
#ifndef HB_AUTH_H
#define HB_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

typedef struct auth auth_t;

/* What auth_new needs; every list is count strings. Nothing is kept: auth_new copies or digests
 * what it needs. */
typedef struct auth_opts {
    const char *const *tokens;
    size_t tokens_cnt;
    const char *const *basic_users; /* "user:password" */
    size_t basic_users_cnt;
    const char *const *allow_from; /* CIDRs or bare addresses, IPv4 or IPv6 */
    size_t allow_from_cnt;
    const char *const *trusted_proxies;
    size_t trusted_proxies_cnt;
    const char *const *standard_secrets; /* "whsec_<base64>" */
    size_t standard_secrets_cnt;
    const char *const *github_secrets;
    size_t github_secrets_cnt;
    int64_t tolerance_s; /* Standard Webhooks timestamp tolerance; <= 0 means 300 */
} auth_opts_t;

/* One request, as strings taken from it. NULL means absent. Nothing is kept after auth_check. */
typedef struct auth_input {
    const char *path_token;    /* what followed "<http.path>/", percent-decoded, or NULL */
    size_t path_token_len;     /* its length (it may hold a NUL); 0: strlen(path_token) */
    const char *query_token;   /* the decoded "token" query parameter, or NULL */
    size_t query_token_len;    /* as path_token_len */
    const char *authorization; /* Authorization header */
    const char *peer;          /* the direct peer's numeric address ("203.0.113.7", "::1") */
    const char *forwarded_for; /* X-Forwarded-For (several headers joined with ", ") */
    const char *wh_id;         /* webhook-id */
    const char *wh_timestamp;  /* webhook-timestamp */
    const char *wh_signature;  /* webhook-signature */
    const char *hub_signature; /* X-Hub-Signature-256 */
    const void *body;
    size_t body_len;
    int64_t now_s; /* Unix seconds */
} auth_input_t;

typedef struct auth_result {
    int allowed;
    int status;             /* 401 or 403 when denied, 0 when allowed */
    const char *error;      /* static code when denied, NULL when allowed */
    int want_basic;         /* denied by the basic mode: answer with WWW-Authenticate: Basic */
    char detail[192];       /* why, for the client and the log; never a secret */
    char client[64];        /* the client address used for allow_from (for logs), or "" */
} auth_result_t;

/* Validates and builds. NULL with errstr ("auth.allow_from[1]: ...") on a bad entry or when out
 * of memory; errstr never repeats a secret value. */
auth_t *auth_new(const auth_opts_t *opts, char *errstr, size_t errlen);

/* auth_new from the config's auth group, with errors as "PATH:LINE: reason". Used at startup and
 * by --check-config. */
auth_t *auth_from_config(const hb_config_t *cfg, char *errstr, size_t errlen);

void auth_free(auth_t *a); /* NULL is fine */

/* 1 when any mode is configured. */
int auth_enabled(const auth_t *a);
/* 1 when tokens are configured, i.e. "<http.path>/<token>" is a webhook path. */
int auth_uses_tokens(const auth_t *a);

/* The Standard Webhooks timestamp tolerance when that mode is configured (a webhook-id it
 * verified may be remembered that long: replay.h), else 0. */
int64_t auth_replay_window_s(const auth_t *a);

/* Fills *out with the verdict on in. a may be NULL (allow). */
void auth_check(const auth_t *a, const auth_input_t *in, auth_result_t *out);

/* Overwrites with '*' every occurrence in text (NUL-terminated, changed in place) of any secret
 * of a: a token, a Basic password (and its "user:password" pair), a Standard Webhooks secret (as
 * configured, and its base64 key), a GitHub secret. For client text quoted in an answer or a log
 * line, which must never carry a secret whatever the client sent. a may be NULL. */
void auth_redact(const auth_t *a, char *text);

#endif
