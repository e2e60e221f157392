/* config.c: the option table, defaults, and the libconfig reader that checks a file against it. */
#include "config.h"

#include <errno.h>
#include <libconfig.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

typedef enum cfg_type {
    CFG_INT,
    CFG_BOOL,
    CFG_STRING,
    CFG_ENUM,
    CFG_FREEFORM,
    CFG_STRLIST /* list of strings, stored as cfg_strlist_t; default always empty */
} cfg_type_t;

typedef struct cfg_option {
    const char *name;           /* dotted path in the file */
    cfg_type_t type;
    size_t offset;              /* into hb_config_t */
    const char *def;            /* default, as text */
    int64_t min, max;           /* ints: the range; strings and list entries: min/max length */
    const char *const *choices; /* enums: NULL-terminated, stored as the index */
    const char *help;
} cfg_option_t;

#define OFF(f) offsetof(hb_config_t, f)
#define KiB (1024LL)
#define MiB (1024LL * 1024)
#define GiB (1024LL * 1024 * 1024)

static const char *const level_choices[] = {"debug", "info", "warn", "error", "off", NULL};
static const char *const mode_choices[] = {"structured", "binary", NULL};

/* The one place an option is declared. Keep conf/hookbridge.conf and the README in step: tests
 * check both against this table. */
static const cfg_option_t options[] = {
    {"http.listen", CFG_STRING, OFF(http_listen), "0.0.0.0:8080", 3, 300, NULL,
     "Webhook listener, HOST:PORT ([::]:PORT for IPv6; port 0 picks a free port)."},
    {"http.path", CFG_STRING, OFF(http_path), "/webhooks/cloud66", 1, 1024, NULL,
     "Path that accepts webhook POSTs."},
    {"http.max_body_bytes", CFG_INT, OFF(http_max_body_bytes), "1048576", 1, 64 * MiB, NULL,
     "Largest request body accepted; larger gets 413 (chunked bodies count too)."},
    {"http.max_header_bytes", CFG_INT, OFF(http_max_header_bytes), "16384", 1024, 1 * MiB,
     NULL, "Largest request line plus headers."},
    {"http.idle_timeout_ms", CFG_INT, OFF(http_idle_timeout_ms), "30000", 100, 3600000, NULL,
     "Close a connection that sends nothing for this long."},
    {"http.json_max_depth", CFG_INT, OFF(http_json_max_depth), "64", 2, 1000, NULL,
     "Deepest JSON nesting accepted in a body; deeper gets 400."},
    {"admin.listen", CFG_STRING, OFF(admin_listen), "127.0.0.1:8081", 0, 300, NULL,
     "Admin listener (/healthz, /readyz, /metrics), HOST:PORT; empty turns it off."},
    {"log.level", CFG_ENUM, OFF(log_level), "info", 0, 0, level_choices,
     "Least severe level logged: debug, info, warn, error or off."},
    {"envelope.source", CFG_STRING, OFF(envelope_source), "/cloud66", 1, 512, NULL,
     "CloudEvents source; \"/stacks/<uid>\" is appended when the event names a stack."},
    {"envelope.mode", CFG_ENUM, OFF(envelope_mode), "structured", 0, 0, mode_choices,
     "Kafka binding: structured (value = whole envelope) or binary (ce_* headers, value = data)."},
    {"routing.topic_prefix", CFG_STRING, OFF(routing_topic_prefix), "cloud66.", 0, 200, NULL,
     "Topic of a family without an entry in routing.topics: prefix + family."},
    {"routing.rules", CFG_FREEFORM, 0, "()", 0, 0, NULL,
     "List of { match = \"PATTERN\"; family = \"NAME\"; }, tried before the built-in rules."},
    {"routing.topics", CFG_FREEFORM, 0, "{}", 0, 0, NULL,
     "Group of FAMILY = \"TOPIC\" overrides."},
    {"producer.ack_timeout_ms", CFG_INT, OFF(producer_ack_timeout_ms), "5000", 10, 25000, NULL,
     "Spool an event Kafka has not acknowledged within this time (Cloud 66 waits 30 s)."},
    {"producer.shutdown_timeout_ms", CFG_INT, OFF(producer_shutdown_timeout_ms), "10000", 0,
     600000, NULL, "On SIGTERM, wait this long for in-flight deliveries before spooling them."},
    {"producer.max_inflight", CFG_INT, OFF(producer_max_inflight), "100000", 1, 10000000, NULL,
     "Most live events awaiting Kafka at once; beyond it events go to the spool."},
    {"spool.dir", CFG_STRING, OFF(spool_dir), "/var/lib/hookbridge/spool", 1, 4096, NULL,
     "Spool directory (created if missing; one daemon per directory)."},
    {"spool.max_bytes", CFG_INT, OFF(spool_max_bytes), "1073741824", 1 * MiB, 1024 * GiB, NULL,
     "Spool size cap; when full, webhooks get 503 with Retry-After."},
    {"spool.min_free_bytes", CFG_INT, OFF(spool_min_free_bytes), "104857600", 0, 1024 * GiB,
     NULL, "Refuse to spool when the filesystem has less free space than this."},
    {"spool.segment_bytes", CFG_INT, OFF(spool_segment_bytes), "67108864", 64 * KiB, 4 * GiB,
     NULL, "Start a new segment file past this size."},
    {"spool.commit_window_ms", CFG_INT, OFF(spool_commit_window_ms), "2", 0, 1000, NULL,
     "Group commit: events spooled within this window share one fdatasync."},
    {"spool.drain_max_inflight", CFG_INT, OFF(spool_drain_max_inflight), "10000", 1, 1000000,
     NULL, "Most spooled events being published at once while draining."},
    {"auth.tokens", CFG_STRLIST, OFF(auth_tokens), "()", 16, 256, NULL,
     "Secret tokens; a webhook must carry one as <http.path>/<token> or ?token=<token>. "
     "Empty: no token check."},
    {"auth.basic_users", CFG_STRLIST, OFF(auth_basic_users), "()", 3, 512, NULL,
     "\"user:password\" pairs accepted as HTTP Basic credentials. Empty: no Basic check."},
    {"auth.allow_from", CFG_STRLIST, OFF(auth_allow_from), "()", 2, 64, NULL,
     "CIDRs (IPv4 or IPv6) a webhook may come from; others get 403. Empty: any address."},
    {"auth.trusted_proxies", CFG_STRLIST, OFF(auth_trusted_proxies), "()", 2, 64, NULL,
     "CIDRs of proxies whose X-Forwarded-For is believed when checking auth.allow_from."},
    {"auth.standard_webhooks_secrets", CFG_STRLIST, OFF(auth_standard_webhooks_secrets), "()",
     7, 1024, NULL,
     "whsec_<base64> secrets; webhooks must carry a valid Standard Webhooks signature. Any "
     "one matching passes (rotation)."},
    {"auth.github_secrets", CFG_STRLIST, OFF(auth_github_secrets), "()", 1, 1024, NULL,
     "Secrets for X-Hub-Signature-256 (HMAC-SHA256 of the body); any one matching passes."},
    {"auth.signature_tolerance_s", CFG_INT, OFF(auth_signature_tolerance_s), "300", 1, 86400,
     NULL, "Largest gap, either way, between webhook-timestamp and the receive time."},
    {"kafka", CFG_FREEFORM, 0, "{}", 0, 0, NULL,
     "librdkafka properties, '.' written as '_' (bootstrap_servers = \"host:9092\"); passed "
     "through unchanged. Defaults: enable.idempotence=true, acks=all, statistics.interval.ms=5000."},
};
#define N_OPTIONS (sizeof options / sizeof options[0])

size_t config_option_count(void) { return N_OPTIONS; }
const char *config_option_name(size_t i) { return i < N_OPTIONS ? options[i].name : NULL; }

static int set_errf(char *errstr, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int set_errf(char *errstr, size_t errlen, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errstr, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

static int64_t *int_field(hb_config_t *c, const cfg_option_t *o) {
    return (int64_t *)((char *)c + o->offset);
}
static char **str_field(hb_config_t *c, const cfg_option_t *o) {
    return (char **)((char *)c + o->offset);
}

static cfg_strlist_t *list_field(hb_config_t *c, const cfg_option_t *o) {
    return (cfg_strlist_t *)((char *)c + o->offset);
}

static void strlist_clear(cfg_strlist_t *l) {
    for (size_t i = 0; i < l->count; i++)
        free(l->items[i]);
    free(l->items);
    free(l->lines);
    memset(l, 0, sizeof *l);
}

static int enum_index(const cfg_option_t *o, const char *s) {
    for (int i = 0; o->choices[i]; i++)
        if (strcmp(o->choices[i], s) == 0)
            return i;
    return -1;
}

hb_config_t *config_new(void) {
    hb_config_t *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    for (size_t i = 0; i < N_OPTIONS; i++) {
        const cfg_option_t *o = &options[i];
        switch (o->type) {
        case CFG_INT:
        case CFG_BOOL:
            *int_field(c, o) = strtoll(o->def, NULL, 10);
            break;
        case CFG_ENUM:
            *int_field(c, o) = enum_index(o, o->def);
            break;
        case CFG_STRING:
            if (!(*str_field(c, o) = strdup(o->def)))
                goto fail;
            break;
        case CFG_FREEFORM:
        case CFG_STRLIST: /* every list default is empty */
            break;
        }
    }
    return c;
fail:
    config_free(c);
    return NULL;
}

static void kv_free(cfg_kv_t *kv, size_t n) {
    for (size_t i = 0; i < n; i++) {
        free(kv[i].name);
        free(kv[i].value);
    }
    free(kv);
}

void config_free(hb_config_t *c) {
    if (!c)
        return;
    for (size_t i = 0; i < N_OPTIONS; i++) {
        if (options[i].type == CFG_STRING)
            free(*str_field(c, &options[i]));
        else if (options[i].type == CFG_STRLIST)
            strlist_clear(list_field(c, &options[i]));
    }
    kv_free(c->routing_rules, c->routing_rules_cnt);
    kv_free(c->routing_topics, c->routing_topics_cnt);
    kv_free(c->kafka, c->kafka_cnt);
    free(c->path);
    free(c);
}

static const cfg_option_t *find_option(const char *name) {
    for (size_t i = 0; i < N_OPTIONS; i++)
        if (strcmp(options[i].name, name) == 0)
            return &options[i];
    return NULL;
}

static int kv_push(cfg_kv_t **arr, size_t *n, const char *name, const char *value, int line) {
    cfg_kv_t *a = realloc(*arr, (*n + 1) * sizeof *a);
    if (!a)
        return -1;
    *arr = a;
    a[*n].name = strdup(name);
    a[*n].value = strdup(value);
    a[*n].line = line;
    if (!a[*n].name || !a[*n].value) {
        free(a[*n].name);
        free(a[*n].value);
        return -1;
    }
    (*n)++;
    return 0;
}

/* A scalar setting as text (for the free-form groups, whose owners parse the values). */
static int scalar_text(const config_setting_t *s, char *out, size_t outlen) {
    switch (config_setting_type(s)) {
    case CONFIG_TYPE_STRING:
        snprintf(out, outlen, "%s", config_setting_get_string(s));
        return 0;
    case CONFIG_TYPE_INT:
    case CONFIG_TYPE_INT64:
        snprintf(out, outlen, "%lld", (long long)config_setting_get_int64(s));
        return 0;
    case CONFIG_TYPE_BOOL:
        snprintf(out, outlen, "%s", config_setting_get_bool(s) ? "true" : "false");
        return 0;
    case CONFIG_TYPE_FLOAT:
        snprintf(out, outlen, "%g", config_setting_get_float(s));
        return 0;
    default:
        return -1;
    }
}

#define ERR_AT(s, ...)                                                                             \
    do {                                                                                           \
        char m_[512];                                                                              \
        snprintf(m_, sizeof m_, __VA_ARGS__);                                                      \
        return set_errf(errstr, errlen, "%s:%d: %s", path, config_setting_source_line(s), m_);    \
    } while (0)

static int load_kafka(hb_config_t *c, const config_setting_t *g, const char *path, char *errstr,
                      size_t errlen) {
    if (!config_setting_is_group(g))
        ERR_AT(g, "kafka must be a group: kafka = { bootstrap_servers = \"host:9092\"; };");
    for (int i = 0; i < config_setting_length(g); i++) {
        config_setting_t *s = config_setting_get_elem(g, (unsigned)i);
        char name[256], value[4096];
        snprintf(name, sizeof name, "%s", config_setting_name(s));
        for (char *p = name; *p; p++)
            if (*p == '_')
                *p = '.';
        if (scalar_text(s, value, sizeof value) != 0)
            ERR_AT(s, "kafka.%s: a librdkafka property takes a string, number or boolean",
                   config_setting_name(s));
        if (kv_push(&c->kafka, &c->kafka_cnt, name, value, config_setting_source_line(s)) != 0)
            ERR_AT(s, "out of memory");
    }
    return 0;
}

static int load_rules(hb_config_t *c, const config_setting_t *l, const char *path, char *errstr,
                      size_t errlen) {
    if (!config_setting_is_list(l) && !config_setting_is_array(l))
        ERR_AT(l, "routing.rules must be a list: ( { match = \"server.*\"; family = \"infra\"; } )");
    for (int i = 0; i < config_setting_length(l); i++) {
        config_setting_t *r = config_setting_get_elem(l, (unsigned)i);
        const char *match = NULL, *family = NULL;
        if (!config_setting_is_group(r))
            ERR_AT(r, "routing.rules[%d] must be a group { match = ...; family = ...; }", i);
        for (int j = 0; j < config_setting_length(r); j++) {
            config_setting_t *m = config_setting_get_elem(r, (unsigned)j);
            const char *n = config_setting_name(m);
            if (strcmp(n, "match") != 0 && strcmp(n, "family") != 0)
                ERR_AT(m, "routing.rules[%d]: unknown option '%s' (match, family)", i, n);
            if (config_setting_type(m) != CONFIG_TYPE_STRING)
                ERR_AT(m, "routing.rules[%d].%s must be a string", i, n);
            if (n[0] == 'm')
                match = config_setting_get_string(m);
            else
                family = config_setting_get_string(m);
        }
        if (!match || !family)
            ERR_AT(r, "routing.rules[%d] needs both match and family", i);
        if (kv_push(&c->routing_rules, &c->routing_rules_cnt, match, family,
                    config_setting_source_line(r)) != 0)
            ERR_AT(r, "out of memory");
    }
    return 0;
}

static int load_topics(hb_config_t *c, const config_setting_t *g, const char *path, char *errstr,
                       size_t errlen) {
    if (!config_setting_is_group(g))
        ERR_AT(g, "routing.topics must be a group: { stack = \"my.stack.topic\"; }");
    for (int i = 0; i < config_setting_length(g); i++) {
        config_setting_t *s = config_setting_get_elem(g, (unsigned)i);
        if (config_setting_type(s) != CONFIG_TYPE_STRING)
            ERR_AT(s, "routing.topics.%s must be a string (a topic name)", config_setting_name(s));
        if (kv_push(&c->routing_topics, &c->routing_topics_cnt, config_setting_name(s),
                    config_setting_get_string(s), config_setting_source_line(s)) != 0)
            ERR_AT(s, "out of memory");
    }
    return 0;
}

/* A list or array of strings; a later setting of the same option replaces an earlier one. The
 * entries are not echoed in errors: some are secrets. */
static int load_strlist(hb_config_t *c, const cfg_option_t *o, const config_setting_t *s,
                        const char *path, char *errstr, size_t errlen) {
    if (!config_setting_is_list(s) && !config_setting_is_array(s))
        ERR_AT(s, "%s must be a list of strings: %s = ( \"...\", \"...\" );", o->name,
               strrchr(o->name, '.') + 1);
    cfg_strlist_t *l = list_field(c, o);
    strlist_clear(l);
    size_t n = (size_t)config_setting_length(s);
    if (n == 0)
        return 0;
    if (!(l->items = calloc(n, sizeof *l->items)) || !(l->lines = calloc(n, sizeof *l->lines)))
        ERR_AT(s, "out of memory");
    for (size_t i = 0; i < n; i++) {
        config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
        int line = config_setting_source_line(e);
        if (line <= 0)
            line = config_setting_source_line(s);
        if (config_setting_type(e) != CONFIG_TYPE_STRING)
            ERR_AT(s, "%s[%zu] must be a string", o->name, i);
        const char *v = config_setting_get_string(e);
        size_t len = strlen(v);
        if ((int64_t)len < o->min || (int64_t)len > o->max)
            return set_errf(errstr, errlen, "%s:%d: %s[%zu] must be %lld to %lld characters long",
                            path, line, o->name, i, (long long)o->min, (long long)o->max);
        if (!(l->items[i] = strdup(v)))
            ERR_AT(s, "out of memory");
        l->lines[i] = line;
        l->count = i + 1;
    }
    return 0;
}

static int load_option(hb_config_t *c, const cfg_option_t *o, const config_setting_t *s,
                       const char *path, char *errstr, size_t errlen) {
    int t = config_setting_type(s);
    switch (o->type) {
    case CFG_INT: {
        if (t != CONFIG_TYPE_INT && t != CONFIG_TYPE_INT64)
            ERR_AT(s, "%s must be an integer", o->name);
        long long v = config_setting_get_int64(s);
        if (v < o->min || v > o->max)
            ERR_AT(s, "%s = %lld is out of range [%lld, %lld]", o->name, v, (long long)o->min,
                   (long long)o->max);
        *int_field(c, o) = v;
        return 0;
    }
    case CFG_BOOL:
        if (t != CONFIG_TYPE_BOOL)
            ERR_AT(s, "%s must be true or false", o->name);
        *int_field(c, o) = config_setting_get_bool(s);
        return 0;
    case CFG_ENUM: {
        if (t != CONFIG_TYPE_STRING)
            ERR_AT(s, "%s must be a string", o->name);
        int idx = enum_index(o, config_setting_get_string(s));
        if (idx < 0) {
            char list[256] = "";
            for (int i = 0; o->choices[i]; i++) {
                strncat(list, i ? ", " : "", sizeof list - strlen(list) - 1);
                strncat(list, o->choices[i], sizeof list - strlen(list) - 1);
            }
            ERR_AT(s, "%s = \"%s\" is not one of: %s", o->name, config_setting_get_string(s),
                   list);
        }
        *int_field(c, o) = idx;
        return 0;
    }
    case CFG_STRING: {
        if (t != CONFIG_TYPE_STRING)
            ERR_AT(s, "%s must be a string", o->name);
        const char *v = config_setting_get_string(s);
        size_t n = strlen(v);
        if ((int64_t)n < o->min || (int64_t)n > o->max)
            ERR_AT(s, "%s must be %lld to %lld characters long", o->name, (long long)o->min,
                   (long long)o->max);
        char *dup = strdup(v);
        if (!dup)
            ERR_AT(s, "out of memory");
        free(*str_field(c, o));
        *str_field(c, o) = dup;
        return 0;
    }
    case CFG_STRLIST:
        return load_strlist(c, o, s, path, errstr, errlen);
    case CFG_FREEFORM:
        if (strcmp(o->name, "kafka") == 0)
            return load_kafka(c, s, path, errstr, errlen);
        if (strcmp(o->name, "routing.rules") == 0)
            return load_rules(c, s, path, errstr, errlen);
        return load_topics(c, s, path, errstr, errlen);
    }
    return 0;
}

/* Walks the file's tree: each top-level group's members must be table options (or the group is
 * itself a free-form option). */
static int load_tree(hb_config_t *c, const config_setting_t *root, const char *path,
                     char *errstr, size_t errlen) {
    for (int i = 0; i < config_setting_length(root); i++) {
        config_setting_t *g = config_setting_get_elem(root, (unsigned)i);
        const char *gname = config_setting_name(g);
        const cfg_option_t *o = find_option(gname);
        if (o) {
            if (load_option(c, o, g, path, errstr, errlen) != 0)
                return -1;
            continue;
        }
        int known_group = 0;
        size_t glen = strlen(gname);
        for (size_t k = 0; k < N_OPTIONS; k++)
            if (strncmp(options[k].name, gname, glen) == 0 && options[k].name[glen] == '.')
                known_group = 1;
        if (!known_group)
            ERR_AT(g, "unknown group '%s'", gname);
        if (!config_setting_is_group(g))
            ERR_AT(g, "'%s' must be a group: %s = { ... };", gname, gname);
        for (int j = 0; j < config_setting_length(g); j++) {
            config_setting_t *s = config_setting_get_elem(g, (unsigned)j);
            char full[256];
            snprintf(full, sizeof full, "%s.%s", gname, config_setting_name(s));
            const cfg_option_t *so = find_option(full);
            if (!so)
                ERR_AT(s, "unknown option '%s'", full);
            if (load_option(c, so, s, path, errstr, errlen) != 0)
                return -1;
        }
    }
    return 0;
}

hb_config_t *config_load(const char *path, char *errstr, size_t errlen) {
    config_t lc;
    hb_config_t *c = NULL;
    config_init(&lc);
    FILE *f = fopen(path, "r");
    if (!f) {
        set_errf(errstr, errlen, "%s: cannot open: %s", path, strerror(errno));
        goto fail;
    }
    int ok = config_read(&lc, f);
    fclose(f);
    if (!ok) {
        set_errf(errstr, errlen, "%s:%d: %s", path, config_error_line(&lc),
                 config_error_text(&lc));
        goto fail;
    }
    if (!(c = config_new()) || !(c->path = strdup(path))) {
        set_errf(errstr, errlen, "%s: out of memory", path);
        goto fail;
    }
    if (load_tree(c, config_root_setting(&lc), path, errstr, errlen) != 0)
        goto fail;
    config_destroy(&lc);
    return c;
fail:
    config_free(c);
    config_destroy(&lc);
    return NULL;
}

void config_print_reference(FILE *out) {
    static const char *const type_names[] = {"integer", "boolean", "string", "enum", "group",
                                               "string list"};
    fprintf(out, "| option | type | default | range | meaning |\n|---|---|---|---|---|\n");
    for (size_t i = 0; i < N_OPTIONS; i++) {
        const cfg_option_t *o = &options[i];
        char range[128] = "";
        if (o->type == CFG_INT)
            snprintf(range, sizeof range, "%lld to %lld", (long long)o->min, (long long)o->max);
        else if (o->type == CFG_STRING)
            snprintf(range, sizeof range, "%lld to %lld chars", (long long)o->min,
                     (long long)o->max);
        else if (o->type == CFG_STRLIST)
            snprintf(range, sizeof range, "entries %lld to %lld chars", (long long)o->min,
                     (long long)o->max);
        else if (o->type == CFG_ENUM)
            for (int k = 0; o->choices[k]; k++) {
                strncat(range, k ? ", " : "", sizeof range - strlen(range) - 1);
                strncat(range, o->choices[k], sizeof range - strlen(range) - 1);
            }
        fprintf(out, "| `%s` | %s | `%s` | %s | %s |\n", o->name, type_names[o->type], o->def,
                range, o->help);
    }
}
