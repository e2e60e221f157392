/* config.h: hookbridge's configuration, declared once as a table (see config.c) and read from
 * one libconfig file.
 *
 * Every option has a type, a default, a range and one line of help in the table; the sample file
 * conf/hookbridge.conf, `--check-config` and `--print-config-reference` all come from it.
 * List options (CFG_STRLIST) hold strings whose meaning their owner checks (auth.c: CIDRs,
 * secrets); the reader only checks that each entry is a non-empty string.
 * Three groups are free-form and checked by their owners: `kafka` (librdkafka properties, names
 * with '.' written as '_', passed through unchanged), `routing.rules` and `routing.topics`.
 *
 * Endpoints (the `endpoints` list): each webhook endpoint is its own hb_config_t, a copy of the
 * top level with the entry's settings laid over it, so auth_from_config() and the router builder
 * read it like the top level. The rule:
 *   - an entry may set only the options flagged CFG_F_ENDPOINT (auth.*, envelope.*, routing.*,
 *     and http.path, written `path`), plus its `name`; anything else is an error;
 *   - an option the entry sets replaces the top-level value whole (lists and groups are not
 *     merged: `tokens = [];` turns the token check off for that endpoint, `topics = {};` drops
 *     the top-level topic overrides); an option it does not set is the top-level value, wherever
 *     the top-level setting sits in the file;
 *   - every entry needs a name ([A-Za-z0-9_-], 1 to 64 characters, not "healthz" or "other",
 *     which the metrics use) and a path ("/...", not "/healthz"); names and paths are unique.
 * Without `endpoints` (or with an empty list) there is exactly one endpoint, named "webhook",
 * copied from the top level (its path is http.path). With it, only the listed paths serve
 * webhooks and the top-level http.path is unused.
 *
 * Reload (SIGHUP): options flagged CFG_F_RELOAD take a new value from the file; the others keep
 * the running value until a restart (config_diff names them, config_take_reloadable moves the
 * rest). Every CFG_F_ENDPOINT option is reloadable too: the endpoint set is rebuilt.
 */
#ifndef HB_CONFIG_H
#define HB_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* A name/value pair from a free-form group, with the line it came from (for error messages). */
typedef struct cfg_kv {
    char *name;
    char *value;
    int line;
} cfg_kv_t;

/* A list of strings (CFG_STRLIST options), with the line of each entry (for error messages).
 * Owned by the config. */
typedef struct cfg_strlist {
    char **items;
    int *lines;
    size_t count;
} cfg_strlist_t;

typedef enum cfg_envelope_mode { CFG_MODE_STRUCTURED = 0, CFG_MODE_BINARY = 1 } cfg_envelope_mode_t;

/* Option flags (config_option_flags); 0: read at start only, a change needs a restart. */
#define CFG_F_RELOAD 0x1u   /* SIGHUP applies a new value */
#define CFG_F_ENDPOINT 0x2u /* an `endpoints` entry may set it (always with CFG_F_RELOAD) */

#define CFG_ENDPOINT_NAME_MAX 64
#define CFG_DEFAULT_ENDPOINT "webhook" /* the name of the endpoint without an `endpoints` list */

struct hb_config;

/* One webhook endpoint. Owned by the config that lists it. */
typedef struct cfg_endpoint {
    char *name;
    int line;              /* of its entry in the file; 0 for the implicit "webhook" */
    struct hb_config *cfg; /* the top level with the entry laid over it; has no endpoints */
} cfg_endpoint_t;

typedef struct hb_config {
    char *path; /* the file it was read from; NULL for defaults */

    /* http: the webhook listener */
    char *http_listen;
    char *http_path;
    int64_t http_max_body_bytes;
    int64_t http_max_header_bytes;
    int64_t http_idle_timeout_ms;
    int64_t http_json_max_depth;
    int64_t http_max_connections;    /* connection limits and TLS: bridge/conn.c */
    int64_t http_request_timeout_ms;
    int64_t http_max_headers;
    int64_t process_sched_batch; /* bool: SCHED_BATCH for every thread (main.c) */
    int64_t http_workers; /* 0: one per CPU (bridge/workers.h: workers_count_from_config) */
    char *http_tls_cert_file; /* "" for plain HTTP */
    char *http_tls_key_file;
    int64_t http_shutdown_grace_ms; /* graceful stop: serve this long after SIGTERM */
    int64_t http_replay_cache_size; /* Standard Webhooks ids remembered (replay.h) */

    /* admin: health, readiness, metrics */
    char *admin_listen;

    int64_t log_level; /* log_level_t */

    char *envelope_source;
    int64_t envelope_mode; /* cfg_envelope_mode_t */

    char *routing_topic_prefix;
    cfg_kv_t *routing_rules; /* name = pattern, value = family; in file order */
    size_t routing_rules_cnt;
    cfg_kv_t *routing_topics; /* name = family, value = topic */
    size_t routing_topics_cnt;

    int64_t producer_ack_timeout_ms;
    int64_t producer_shutdown_timeout_ms;
    int64_t producer_max_inflight;

    char *spool_dir;
    int64_t spool_max_bytes;
    int64_t spool_min_free_bytes;
    int64_t spool_segment_bytes;
    int64_t spool_prealloc_bytes;
    int64_t spool_commit_window_ms;
    int64_t spool_drain_max_inflight;

    /* dead letters: records Kafka refuses for good (bridge/deadletter.c) */
    char *dead_letter_topic; /* "" : the folder only */
    int64_t dead_letter_after_s;

    /* auth: access control on the webhook endpoint (checked by bridge/auth.c) */
    cfg_strlist_t auth_tokens;
    cfg_strlist_t auth_basic_users;
    cfg_strlist_t auth_allow_from;
    cfg_strlist_t auth_trusted_proxies;
    cfg_strlist_t auth_standard_webhooks_secrets;
    cfg_strlist_t auth_github_secrets;
    int64_t auth_signature_tolerance_s;

    cfg_kv_t *kafka; /* librdkafka property (dots restored) = value, in file order */
    size_t kafka_cnt;

    /* The webhook endpoints, in file order: at least one (see the rule above). In an
     * endpoint's own cfg: none. */
    cfg_endpoint_t *endpoints;
    size_t endpoints_cnt;
    int endpoints_listed; /* 1 when they come from an `endpoints` list, 0: the implicit one */
} hb_config_t;

/* A config holding every default (and the implicit "webhook" endpoint). NULL when out of
 * memory. */
hb_config_t *config_new(void);

/* Reads and validates path. On error returns NULL and writes "PATH:LINE: reason" to errstr.
 * Unknown groups or options, wrong types and out-of-range values are errors. */
hb_config_t *config_load(const char *path, char *errstr, size_t errlen);

void config_free(hb_config_t *cfg); /* NULL is fine */

/* Prints the option table as a Markdown table (name, type, default, range, help). */
void config_print_reference(FILE *out);

/* Number of table options, the dotted name of option i and its CFG_F_* flags (for tests that
 * check the sample file and the README against the table). */
size_t config_option_count(void);
const char *config_option_name(size_t i);
unsigned config_option_flags(size_t i);

/* Receives the name of one option that differs; values are never passed (some are secrets). */
typedef void (*config_diff_cb)(void *arg, const char *option);

/* Compares a and b option by option, through the table, and calls cb (may be NULL) for each
 * option that differs: among the options that need a restart (reloadable 0) or among the
 * reloadable ones (reloadable 1). The kafka group is compared as name=value pairs, the last
 * setting of a property winning, and reported per property ("kafka.linger.ms"); the endpoint
 * list is reported as "endpoints" (names, paths and every endpoint option), and only when at
 * least one side lists endpoints (the implicit one mirrors the top level). Returns the number
 * of differences. */
size_t config_diff(const hb_config_t *a, const hb_config_t *b, int reloadable, config_diff_cb cb,
                   void *arg);

/* Moves every reloadable option (and the endpoint list) from src into dst, and dst's old
 * values into src, which the caller then frees: dst becomes the running config after a
 * reload, with its restart-only options untouched. */
void config_take_reloadable(hb_config_t *dst, hb_config_t *src);

#endif
