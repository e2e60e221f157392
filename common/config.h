/* config.h: hookbridge's configuration, declared once as a table (see config.c) and read from
 * one libconfig file.
 *
 * Every option has a type, a default, a range and one line of help in the table; the sample file
 * conf/hookbridge.conf, `--check-config` and `--print-config-reference` all come from it.
 * List options (CFG_STRLIST) hold strings whose meaning their owner checks (auth.c: CIDRs,
 * secrets); the reader only checks that each entry is a non-empty string.
 * Three groups are free-form and checked by their owners: `kafka` (librdkafka properties, names
 * with '.' written as '_', passed through unchanged), `routing.rules` and `routing.topics`.
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

typedef struct hb_config {
    char *path; /* the file it was read from; NULL for defaults */

    /* http: the webhook listener */
    char *http_listen;
    char *http_path;
    int64_t http_max_body_bytes;
    int64_t http_max_header_bytes;
    int64_t http_idle_timeout_ms;
    int64_t http_json_max_depth;

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
    int64_t spool_commit_window_ms;
    int64_t spool_drain_max_inflight;

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
} hb_config_t;

/* A config holding every default. NULL when out of memory. */
hb_config_t *config_new(void);

/* Reads and validates path. On error returns NULL and writes "PATH:LINE: reason" to errstr.
 * Unknown groups or options, wrong types and out-of-range values are errors. */
hb_config_t *config_load(const char *path, char *errstr, size_t errlen);

void config_free(hb_config_t *cfg); /* NULL is fine */

/* Prints the option table as a Markdown table (name, type, default, range, help). */
void config_print_reference(FILE *out);

/* Number of table options, and the dotted name of option i (for tests that check the sample
 * file and the README against the table). */
size_t config_option_count(void);
const char *config_option_name(size_t i);

#endif
