/* config.c: the option table, defaults, and the libconfig reader that checks a file against it. */
#include "config.h"

#include <ctype.h>
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
    unsigned flags; /* CFG_F_RELOAD, CFG_F_ENDPOINT (config.h); 0: a change needs a restart */
} cfg_option_t;

#define OFF(f) offsetof(hb_config_t, f)
#define KiB (1024LL)
#define MiB (1024LL * 1024)
#define GiB (1024LL * 1024 * 1024)

static const char *const level_choices[] = {"debug", "info", "warn", "error", "off", NULL};
static const char *const mode_choices[] = {"structured", "binary", NULL};

/* An option an `endpoints` entry may set; the endpoint set is rebuilt on reload, so it is
 * reloadable too. */
#define EP (CFG_F_ENDPOINT | CFG_F_RELOAD)

/* The one place an option is declared. Keep conf/hookbridge.conf and the README in step: tests
 * check both against this table. The last field says what a SIGHUP does with it (CFG_F_RELOAD)
 * and whether an endpoint may override it (EP); 0 means read at start only. */
static const cfg_option_t options[] = {
    {"http.listen", CFG_STRING, OFF(http_listen), "0.0.0.0:8080", 3, 300, NULL,
     "Webhook listener, HOST:PORT ([::]:PORT for IPv6; port 0 picks a free port).", 0},
    {"http.path", CFG_STRING, OFF(http_path), "/webhooks/cloud66", 1, 1024, NULL,
     "Path that accepts webhook POSTs (an endpoints entry writes it `path`).", EP},
    {"http.max_body_bytes", CFG_INT, OFF(http_max_body_bytes), "131072", 1, 64 * MiB, NULL,
     "Largest request body accepted; larger gets 413 (chunked bodies count too). The default "
     "keeps the largest record such a body can make under librdkafka's message.max.bytes "
     "(--check-config warns when it does not).", 0},
    {"http.max_header_bytes", CFG_INT, OFF(http_max_header_bytes), "16384", 1024, 1 * MiB,
     NULL, "Largest request line plus headers.", 0},
    {"http.idle_timeout_ms", CFG_INT, OFF(http_idle_timeout_ms), "30000", 100, 3600000, NULL,
     "Close a connection that sends nothing for this long.", 0},
    {"http.json_max_depth", CFG_INT, OFF(http_json_max_depth), "64", 2, 1000, NULL,
     "Deepest JSON nesting accepted in a body; deeper gets 400.", CFG_F_RELOAD},
    {"http.max_connections", CFG_INT, OFF(http_max_connections), "1024", 1, 1000000, NULL,
     "Most webhook connections open at once; at the cap the listener stops accepting until one "
     "closes (the excess waits in the kernel's backlog).", 0},
    {"http.request_timeout_ms", CFG_INT, OFF(http_request_timeout_ms), "10000", 100, 600000,
     NULL, "Time from a request's first byte until all of it (line, headers, body) has "
     "arrived; a slower one is cut without an answer. Idle time between requests is not "
     "counted.", 0},
    {"http.max_headers", CFG_INT, OFF(http_max_headers), "100", 1, 10000, NULL,
     "Most header fields in a request; more gets 431.", 0},
    {"http.workers", CFG_INT, OFF(http_workers), "0", 0, 64, NULL, /* WORKERS_MAX */
     "Event loops serving webhooks: the main loop and http.workers - 1 threads, sharing one "
     "producer and one spool; 0: one per CPU the daemon may run on (its affinity mask).", 0},
    {"http.tls_cert_file", CFG_STRING, OFF(http_tls_cert_file), "", 0, 4096, NULL,
     "PEM certificate (chain) of the webhook listener; with http.tls_key_file set too, it "
     "speaks only TLS (1.2 or later). Empty: plain HTTP.", CFG_F_RELOAD},
    {"http.tls_key_file", CFG_STRING, OFF(http_tls_key_file), "", 0, 4096, NULL,
     "PEM private key (unencrypted) of http.tls_cert_file.", CFG_F_RELOAD},
    {"http.shutdown_grace_ms", CFG_INT, OFF(http_shutdown_grace_ms), "5000", 0, 600000, NULL,
     "On SIGTERM, keep serving webhooks this long (answers carry Connection: close; /readyz "
     "says 503 at once) so a load balancer can take the instance out, then stop accepting.", 0},
    {"http.replay_cache_size", CFG_INT, OFF(http_replay_cache_size), "10000", 0, 10000000,
     NULL, "Standard Webhooks webhook-ids remembered with the envelope id answered, so a retry "
     "within auth.signature_tolerance_s gets the same 202 and is not published again (0: off).",
     0},
    {"admin.listen", CFG_STRING, OFF(admin_listen), "127.0.0.1:8081", 0, 300, NULL,
     "Admin listener (/healthz, /readyz, /metrics), HOST:PORT; empty turns it off.", 0},
    {"process.sched_batch", CFG_BOOL, OFF(process_sched_batch), "true", 0, 1, NULL,
     "Run every thread but the spool's sync thread under SCHED_BATCH: the kernel then hands "
     "the core from one of hookbridge's threads to another (the event loop, librdkafka's) when "
     "one waits, not at each wake-up, so work passes between them in batches (4 to 5 times "
     "fewer context switches on one core). false: the default policy, for a host where "
     "hookbridge shares its cores with latency-critical work.", 0},
    {"log.level", CFG_ENUM, OFF(log_level), "info", 0, 0, level_choices,
     "Least severe level logged: debug, info, warn, error or off.", CFG_F_RELOAD},
    {"envelope.source", CFG_STRING, OFF(envelope_source), "/cloud66", 1, 512, NULL,
     "CloudEvents source; \"/stacks/<uid>\" is appended when the event names a stack.", EP},
    {"envelope.mode", CFG_ENUM, OFF(envelope_mode), "structured", 0, 0, mode_choices,
     "Kafka binding: structured (value = whole envelope) or binary (ce_* headers, value = data).",
     EP},
    {"routing.topic_prefix", CFG_STRING, OFF(routing_topic_prefix), "cloud66.", 0, 200, NULL,
     "Topic of a family without an entry in routing.topics: prefix + family.", EP},
    {"routing.rules", CFG_FREEFORM, 0, "()", 0, 0, NULL,
     "List of { match = \"PATTERN\"; family = \"NAME\"; }, tried before the built-in rules.",
     EP},
    {"routing.topics", CFG_FREEFORM, 0, "{}", 0, 0, NULL,
     "Group of FAMILY = \"TOPIC\" overrides.", EP},
    {"producer.ack_timeout_ms", CFG_INT, OFF(producer_ack_timeout_ms), "5000", 10, 25000, NULL,
     "Spool an event Kafka has not acknowledged within this time (Cloud 66 waits 30 s).", 0},
    {"producer.shutdown_timeout_ms", CFG_INT, OFF(producer_shutdown_timeout_ms), "10000", 0,
     600000, NULL, "On SIGTERM, wait this long for in-flight deliveries before spooling them.",
     0},
    {"producer.max_inflight", CFG_INT, OFF(producer_max_inflight), "100000", 1, 10000000, NULL,
     "Most live events awaiting Kafka at once; beyond it events go to the spool.", 0},
    {"spool.dir", CFG_STRING, OFF(spool_dir), "/var/lib/hookbridge/spool", 1, 4096, NULL,
     "Spool directory (created if missing; one daemon per directory).", 0},
    {"spool.max_bytes", CFG_INT, OFF(spool_max_bytes), "1073741824", 1 * MiB, 1024 * GiB, NULL,
     "Spool size cap; when full, webhooks get 503 with Retry-After.", 0},
    {"spool.min_free_bytes", CFG_INT, OFF(spool_min_free_bytes), "104857600", 0, 1024 * GiB,
     NULL,
     "Refuse to spool an event that would leave the filesystem less free space than this (its "
     "record and the zeros of spool.prealloc_bytes it may write). Free space is read again at "
     "least every 1 MiB spooled and every 100 ms, and on every event near the limit.",
     0},
    {"spool.segment_bytes", CFG_INT, OFF(spool_segment_bytes), "67108864", 64 * KiB, 4 * GiB,
     NULL, "Start a new segment file past this size.", 0},
    {"spool.prealloc_bytes", CFG_INT, OFF(spool_prealloc_bytes), "1048576", 0, 256 * MiB, NULL,
     "Zeros written ahead of the newest segment's last event, so that a sync overwrites blocks "
     "the file has instead of growing it (on ext4 about half the time per fdatasync); the file "
     "may be this much larger than spool.max_bytes counts. 0: off.", 0},
    {"spool.commit_window_ms", CFG_INT, OFF(spool_commit_window_ms), "0", 0, 1000, NULL,
     "Group commit: wait this long before a sync (0: none); events spooled until it starts, "
     "and while it runs, share one fdatasync.", 0},
    {"spool.drain_max_inflight", CFG_INT, OFF(spool_drain_max_inflight), "1000", 1, 1000000,
     NULL, "Most spooled events being published at once while draining (each is held in memory "
     "until Kafka acknowledges it).", 0},
    {"dead_letter.topic", CFG_STRING, OFF(dead_letter_topic), "cloud66.deadletter", 0, 249,
     NULL, "Topic that takes records Kafka refuses for good (hb_dlq_* headers name the original "
     "topic and the error); if it refuses too, they wait in <spool.dir>/deadletter/. Empty: "
     "straight to that folder.", 0},
    {"dead_letter.after_s", CFG_INT, OFF(dead_letter_after_s), "0", 0, 31536000, NULL,
     "Dead-letter the records of a topic Kafka has refused (parked) for this long; 0: they "
     "wait in the spool until the topic takes them.", 0},
    {"auth.tokens", CFG_STRLIST, OFF(auth_tokens), "()", 16, 256, NULL,
     "Secret tokens; a webhook must carry one as <http.path>/<token> or ?token=<token>. "
     "Empty: no token check.", EP},
    {"auth.basic_users", CFG_STRLIST, OFF(auth_basic_users), "()", 3, 512, NULL,
     "\"user:password\" pairs accepted as HTTP Basic credentials. Empty: no Basic check.", EP},
    {"auth.allow_from", CFG_STRLIST, OFF(auth_allow_from), "()", 2, 64, NULL,
     "CIDRs (IPv4 or IPv6) a webhook may come from; others get 403. Empty: any address.", EP},
    {"auth.trusted_proxies", CFG_STRLIST, OFF(auth_trusted_proxies), "()", 2, 64, NULL,
     "CIDRs of proxies whose X-Forwarded-For is believed when checking auth.allow_from.", EP},
    {"auth.standard_webhooks_secrets", CFG_STRLIST, OFF(auth_standard_webhooks_secrets), "()",
     7, 1024, NULL,
     "whsec_<base64> secrets; webhooks must carry a valid Standard Webhooks signature. Any "
     "one matching passes (rotation).", EP},
    {"auth.github_secrets", CFG_STRLIST, OFF(auth_github_secrets), "()", 1, 1024, NULL,
     "Secrets for X-Hub-Signature-256 (HMAC-SHA256 of the body); any one matching passes.", EP},
    {"auth.signature_tolerance_s", CFG_INT, OFF(auth_signature_tolerance_s), "300", 1, 86400,
     NULL, "Largest gap, either way, between webhook-timestamp and the receive time.", EP},
    {"endpoints", CFG_FREEFORM, 0, "()", 0, 0, NULL,
     "List of webhook endpoints, { name = \"NAME\"; path = \"/PATH\"; ... }, each overriding "
     "the options marked per endpoint. Empty: one endpoint, \"webhook\", at http.path.",
     CFG_F_RELOAD},
    {"kafka", CFG_FREEFORM, 0, "{}", 0, 0, NULL,
     "librdkafka properties, '.' written as '_' (bootstrap_servers = \"host:9092\"); passed "
     "through unchanged. Defaults: enable.idempotence=true, acks=all, statistics.interval.ms=5000 "
     "(0 when admin.listen is empty: only /metrics reads them), linger.ms=0.2, "
     "reconnect.backoff.max.ms=1000.",
     0},
};
#define N_OPTIONS (sizeof options / sizeof options[0])

size_t config_option_count(void) { return N_OPTIONS; }
const char *config_option_name(size_t i) { return i < N_OPTIONS ? options[i].name : NULL; }
unsigned config_option_flags(size_t i) { return i < N_OPTIONS ? options[i].flags : 0; }

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

/* Read-only views of the same fields, for the comparisons. */
static int64_t int_of(const hb_config_t *c, const cfg_option_t *o) {
    return *(const int64_t *)((const char *)c + o->offset);
}
static const char *str_of(const hb_config_t *c, const cfg_option_t *o) {
    return *(char *const *)((const char *)c + o->offset);
}
static const cfg_strlist_t *list_of(const hb_config_t *c, const cfg_option_t *o) {
    return (const cfg_strlist_t *)((const char *)c + o->offset);
}

/* A free-form option stored as a name/value list: its array and count. The free-form groups
 * keep the field names their owners read (cfg->kafka, cfg->routing_rules), so they are found by
 * name rather than by offset. Returns -1 for `endpoints`, which is not such a list. */
typedef struct kv_ref {
    cfg_kv_t **arr;
    size_t *cnt;
} kv_ref_t;
static int kv_ref(hb_config_t *c, const cfg_option_t *o, kv_ref_t *out) {
    if (strcmp(o->name, "kafka") == 0)
        *out = (kv_ref_t){&c->kafka, &c->kafka_cnt};
    else if (strcmp(o->name, "routing.rules") == 0)
        *out = (kv_ref_t){&c->routing_rules, &c->routing_rules_cnt};
    else if (strcmp(o->name, "routing.topics") == 0)
        *out = (kv_ref_t){&c->routing_topics, &c->routing_topics_cnt};
    else
        return -1;
    return 0;
}

static void strlist_clear(cfg_strlist_t *l) {
    for (size_t i = 0; i < l->count; i++)
        free(l->items[i]);
    free(l->items);
    free(l->lines);
    memset(l, 0, sizeof *l);
}

static int strlist_copy(cfg_strlist_t *dst, const cfg_strlist_t *src) {
    memset(dst, 0, sizeof *dst);
    if (src->count == 0)
        return 0;
    if (!(dst->items = calloc(src->count, sizeof *dst->items)) ||
        !(dst->lines = calloc(src->count, sizeof *dst->lines)))
        goto fail;
    for (size_t i = 0; i < src->count; i++) {
        if (!(dst->items[i] = strdup(src->items[i])))
            goto fail;
        dst->lines[i] = src->lines[i];
        dst->count = i + 1;
    }
    return 0;
fail:
    strlist_clear(dst);
    return -1;
}

static int enum_index(const cfg_option_t *o, const char *s) {
    for (int i = 0; o->choices[i]; i++)
        if (strcmp(o->choices[i], s) == 0)
            return i;
    return -1;
}

static void kv_free(cfg_kv_t *kv, size_t n) {
    for (size_t i = 0; i < n; i++) {
        free(kv[i].name);
        free(kv[i].value);
    }
    free(kv);
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

static void endpoints_clear(hb_config_t *c) {
    for (size_t i = 0; i < c->endpoints_cnt; i++) {
        free(c->endpoints[i].name);
        config_free(c->endpoints[i].cfg);
    }
    free(c->endpoints);
    c->endpoints = NULL;
    c->endpoints_cnt = 0;
    c->endpoints_listed = 0;
}

/* A deep copy of src's options and file path; the endpoint list is left out. */
static hb_config_t *config_copy(const hb_config_t *src) {
    hb_config_t *c = calloc(1, sizeof *c);
    if (!c || (src->path && !(c->path = strdup(src->path))))
        goto fail;
    for (size_t i = 0; i < N_OPTIONS; i++) {
        const cfg_option_t *o = &options[i];
        kv_ref_t to, from;
        switch (o->type) {
        case CFG_INT:
        case CFG_BOOL:
        case CFG_ENUM:
            *int_field(c, o) = int_of(src, o);
            break;
        case CFG_STRING:
            if (!(*str_field(c, o) = strdup(str_of(src, o))))
                goto fail;
            break;
        case CFG_STRLIST:
            if (strlist_copy(list_field(c, o), list_of(src, o)) != 0)
                goto fail;
            break;
        case CFG_FREEFORM:
            /* kv_ref only reads through the pointers it returns for src */
            if (kv_ref(c, o, &to) != 0 || kv_ref((hb_config_t *)src, o, &from) != 0)
                break;
            for (size_t k = 0; k < *from.cnt; k++)
                if (kv_push(to.arr, to.cnt, (*from.arr)[k].name, (*from.arr)[k].value,
                            (*from.arr)[k].line) != 0)
                    goto fail;
            break;
        }
    }
    return c;
fail:
    config_free(c);
    return NULL;
}

/* Appends an endpoint: name, and a copy of c's top level to lay the entry over. NULL when out
 * of memory (c unchanged). */
static cfg_endpoint_t *endpoint_push(hb_config_t *c, const char *name, int line) {
    cfg_endpoint_t *a = realloc(c->endpoints, (c->endpoints_cnt + 1) * sizeof *a);
    if (!a)
        return NULL;
    c->endpoints = a;
    cfg_endpoint_t *e = &a[c->endpoints_cnt];
    e->name = strdup(name);
    e->line = line;
    e->cfg = config_copy(c);
    if (!e->name || !e->cfg) {
        free(e->name);
        config_free(e->cfg);
        return NULL;
    }
    c->endpoints_cnt++;
    return e;
}

hb_config_t *config_new(void) {
    hb_config_t *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    for (size_t i = 0; i < N_OPTIONS; i++) {
        const cfg_option_t *o = &options[i];
        switch (o->type) {
        case CFG_INT:
            *int_field(c, o) = strtoll(o->def, NULL, 10);
            break;
        case CFG_BOOL: /* written as in the config file: true or false */
            *int_field(c, o) = strcmp(o->def, "true") == 0;
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
    if (!endpoint_push(c, CFG_DEFAULT_ENDPOINT, 0))
        goto fail;
    return c;
fail:
    config_free(c);
    return NULL;
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
    endpoints_clear(c);
    free(c->path);
    free(c);
}

static const cfg_option_t *find_option(const char *name) {
    for (size_t i = 0; i < N_OPTIONS; i++)
        if (strcmp(options[i].name, name) == 0)
            return &options[i];
    return NULL;
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
    case CFG_FREEFORM: {
        kv_ref_t r;
        if (kv_ref(c, o, &r) != 0)
            return 0; /* endpoints: read by load_endpoints once the top level is complete */
        /* A setting replaces what was there (an endpoint's copy of the top level), never
         * merges with it. */
        kv_free(*r.arr, *r.cnt);
        *r.arr = NULL;
        *r.cnt = 0;
        if (strcmp(o->name, "kafka") == 0)
            return load_kafka(c, s, path, errstr, errlen);
        if (strcmp(o->name, "routing.rules") == 0)
            return load_rules(c, s, path, errstr, errlen);
        return load_topics(c, s, path, errstr, errlen);
    }
    }
    return 0;
}

/* Turns "PATH:LINE: reason" into "PATH:LINE: endpoint 'NAME': reason". */
static void add_endpoint_context(char *errstr, size_t errlen, const char *path, const char *ep) {
    size_t pl = strlen(path);
    if (strncmp(errstr, path, pl) != 0 || errstr[pl] != ':')
        return;
    char *p = errstr + pl + 1;
    while (*p >= '0' && *p <= '9')
        p++;
    if (p[0] != ':' || p[1] != ' ')
        return;
    p += 2;
    char reason[512];
    snprintf(reason, sizeof reason, "%s", p);
    snprintf(p, errlen - (size_t)(p - errstr), "endpoint '%s': %s", ep, reason);
}

/* One setting for option o; in an endpoint entry (ep = its name), only the options flagged
 * CFG_F_ENDPOINT. */
static int load_setting(hb_config_t *c, const cfg_option_t *o, const config_setting_t *s,
                        const char *ep, const char *path, char *errstr, size_t errlen) {
    if (ep && !(o->flags & CFG_F_ENDPOINT))
        ERR_AT(s, "endpoint '%s': %s cannot be set per endpoint (it applies to the whole daemon)",
               ep, o->name);
    if (load_option(c, o, s, path, errstr, errlen) == 0)
        return 0;
    if (ep)
        add_endpoint_context(errstr, errlen, path, ep);
    return -1;
}

/* Walks a tree of settings: each member of root is a table option, or a group whose members
 * are. ep NULL: the file's top level. ep set: an `endpoints` entry of that name, where `name`
 * is skipped (read by the caller) and `path` stands for http.path. */
static int load_tree(hb_config_t *c, const config_setting_t *root, const char *ep,
                     const char *path, char *errstr, size_t errlen) {
    const cfg_option_t *http_path = find_option("http.path");
    char ctx[CFG_ENDPOINT_NAME_MAX + 16] = "";
    if (ep)
        snprintf(ctx, sizeof ctx, "endpoint '%s': ", ep);
    for (int i = 0; i < config_setting_length(root); i++) {
        config_setting_t *g = config_setting_get_elem(root, (unsigned)i);
        const char *gname = config_setting_name(g);
        const cfg_option_t *o = find_option(gname);
        if (ep && strcmp(gname, "name") == 0)
            continue;
        if (ep && strcmp(gname, "path") == 0) {
            if (config_setting_type(g) != CONFIG_TYPE_STRING)
                ERR_AT(g, "%spath must be a string: path = \"/webhooks/...\";", ctx);
            o = http_path;
        }
        if (o) {
            if (load_setting(c, o, g, ep, path, errstr, errlen) != 0)
                return -1;
            continue;
        }
        int known_group = 0;
        size_t glen = strlen(gname);
        for (size_t k = 0; k < N_OPTIONS; k++)
            if (strncmp(options[k].name, gname, glen) == 0 && options[k].name[glen] == '.')
                known_group = 1;
        if (!known_group && ep)
            ERR_AT(g, "%sunknown option '%s' (an endpoint takes name, path, auth, envelope, "
                      "routing)", ctx, gname);
        if (!known_group)
            ERR_AT(g, "unknown group '%s'", gname);
        if (!config_setting_is_group(g))
            ERR_AT(g, "%s'%s' must be a group: %s = { ... };", ctx, gname, gname);
        for (int j = 0; j < config_setting_length(g); j++) {
            config_setting_t *s = config_setting_get_elem(g, (unsigned)j);
            char full[256];
            snprintf(full, sizeof full, "%s.%s", gname, config_setting_name(s));
            const cfg_option_t *so = find_option(full);
            if (!so)
                ERR_AT(s, "%sunknown option '%s'", ctx, full);
            if (ep && so == http_path)
                ERR_AT(s, "%swrite the endpoint's path as path = \"...\";", ctx);
            if (load_setting(c, so, s, ep, path, errstr, errlen) != 0)
                return -1;
        }
    }
    return 0;
}

static int endpoint_name_ok(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > CFG_ENDPOINT_NAME_MAX)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || *s == '-'))
            return 0;
    return 1;
}

/* The `endpoints` list, read after the rest of the file so that every entry starts from the
 * complete top level, wherever `endpoints` sits in the file. */
static int load_endpoints(hb_config_t *c, const config_setting_t *l, const char *path,
                          char *errstr, size_t errlen) {
    if (!config_setting_is_list(l))
        ERR_AT(l, "endpoints must be a list of groups: endpoints = ( { name = \"prod\"; "
                  "path = \"/webhooks/prod\"; } );");
    for (int i = 0; i < config_setting_length(l); i++) {
        config_setting_t *e = config_setting_get_elem(l, (unsigned)i);
        if (!config_setting_is_group(e))
            ERR_AT(e, "endpoints[%d] must be a group { name = \"...\"; path = \"/...\"; }", i);
        config_setting_t *ns = config_setting_get_member(e, "name");
        if (!ns)
            ERR_AT(e, "endpoints[%d] needs a name", i);
        if (config_setting_type(ns) != CONFIG_TYPE_STRING)
            ERR_AT(ns, "endpoints[%d].name must be a string", i);
        const char *name = config_setting_get_string(ns);
        if (!endpoint_name_ok(name))
            ERR_AT(ns, "endpoint name '%.80s' must be 1 to %d characters of A-Z a-z 0-9 _ -",
                   name, CFG_ENDPOINT_NAME_MAX);
        if (strcmp(name, "healthz") == 0 || strcmp(name, "other") == 0)
            ERR_AT(ns, "endpoint name '%s' is reserved: the metrics use it for the answers of "
                       "other paths", name);
        for (size_t k = 0; k < c->endpoints_cnt; k++)
            if (strcmp(c->endpoints[k].name, name) == 0)
                ERR_AT(ns, "endpoint name '%s' is used twice (first at line %d)", name,
                       c->endpoints[k].line);
        config_setting_t *ps = config_setting_get_member(e, "path");
        if (!ps)
            ERR_AT(e, "endpoint '%s' needs a path (path = \"/webhooks/...\";)", name);
        cfg_endpoint_t *ep = endpoint_push(c, name, config_setting_source_line(e));
        if (!ep)
            ERR_AT(e, "out of memory");
        if (load_tree(ep->cfg, e, name, path, errstr, errlen) != 0)
            return -1;
        const char *p = ep->cfg->http_path;
        if (p[0] != '/')
            ERR_AT(ps, "endpoint '%s': path must start with '/'", name);
        if (strcmp(p, "/healthz") == 0)
            ERR_AT(ps, "endpoint '%s': path /healthz is the health check", name);
        for (size_t k = 0; k + 1 < c->endpoints_cnt; k++)
            if (strcmp(c->endpoints[k].cfg->http_path, p) == 0)
                ERR_AT(ps, "endpoint '%s': path %.200s is endpoint '%s''s already (line %d)",
                       name, p, c->endpoints[k].name, c->endpoints[k].line);
    }
    c->endpoints_listed = c->endpoints_cnt > 0;
    return 0;
}

/* libconfig documents that a 64-bit integer needs the L suffix; 1.5 (Debian 12's) reads a
 * decimal integer beyond 32 bits without it as a 32-bit one, without a word: 8589934592 becomes
 * 0, 5368709120 becomes 1073741824 (so a 5 GiB spool.max_bytes would silently be 1 GiB). The
 * same file is refused whatever libconfig the build has, so that it means one thing on every
 * host and in the image. Finds the first such literal in the file's
 * text, outside strings and comments (hexadecimal up to 0xffffffff is a bit pattern there, and
 * is let through): its line, with the literal in lit, or 0 when there is none. */
static int find_wide_int(const char *t, char *lit, size_t litlen) {
    int line = 1;
    const char *p = t;
    while (*p) {
        if (*p == '\n') {
            line++, p++;
        } else if (*p == '#' || (p[0] == '/' && p[1] == '/')) {
            while (*p && *p != '\n')
                p++;
        } else if (p[0] == '/' && p[1] == '*') {
            for (p += 2; *p && !(p[0] == '*' && p[1] == '/'); p++)
                line += *p == '\n';
            p += *p ? 2 : 0;
        } else if (*p == '"') {
            for (p++; *p && *p != '"'; p++) {
                if (*p == '\\' && p[1])
                    p++;
                line += *p == '\n';
            }
            p += *p ? 1 : 0;
        } else if (isalpha((unsigned char)*p) || *p == '_' || *p == '*' || *p == '@') {
            /* a name (it may hold digits and dashes), true/false, @include */
            while (isalnum((unsigned char)*p) || *p == '_' || *p == '-' || *p == '*' || *p == '@')
                p++;
        } else if (isdigit((unsigned char)*p)) {
            const char *start = p;
            int hex = p[0] == '0' && (p[1] == 'x' || p[1] == 'X');
            p += hex ? 2 : 0;
            while (hex ? isxdigit((unsigned char)*p) : isdigit((unsigned char)*p))
                p++;
            if (!hex && (*p == '.' || *p == 'e' || *p == 'E')) { /* a float */
                while (isalnum((unsigned char)*p) || *p == '.' ||
                       ((*p == '+' || *p == '-') && (p[-1] == 'e' || p[-1] == 'E')))
                    p++;
                continue;
            }
            if (*p == 'L') { /* 64 bits, as asked */
                while (*p == 'L')
                    p++;
                continue;
            }
            int neg = start > t && start[-1] == '-';
            errno = 0;
            unsigned long long v = strtoull(start, NULL, hex ? 16 : 10);
            if (errno == ERANGE || v > (hex ? 0xffffffffULL : neg ? 2147483648ULL : 2147483647ULL)) {
                snprintf(lit, litlen, "%s%.*s", neg ? "-" : "", (int)(p - start), start);
                return line;
            }
        } else {
            p++;
        }
    }
    return 0;
}

/* The file's whole text, or NULL (out of memory or a read error). */
static char *read_all(FILE *f) {
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    while (buf) {
        len += fread(buf + len, 1, cap - 1 - len, f);
        if (ferror(f))
            break;
        if (len < cap - 1) {
            buf[len] = '\0';
            return buf;
        }
        char *nbuf = realloc(buf, cap * 2);
        if (!nbuf)
            break;
        buf = nbuf, cap *= 2;
    }
    free(buf);
    return NULL;
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
    /* Read once: libconfig parses the text, and find_wide_int looks at its literals. */
    char *text = read_all(f);
    fclose(f);
    if (!text) {
        set_errf(errstr, errlen, "%s: cannot read: %s", path,
                 errno ? strerror(errno) : "out of memory");
        goto fail;
    }
    int ok = config_read_string(&lc, text);
    char lit[64];
    int wide_line = ok ? find_wide_int(text, lit, sizeof lit) : 0;
    free(text);
    if (!ok) {
        set_errf(errstr, errlen, "%s:%d: %s", path, config_error_line(&lc),
                 config_error_text(&lc));
        goto fail;
    }
    if (wide_line) {
        set_errf(errstr, errlen,
                 "%s:%d: %s does not fit in 32 bits: write %sL (libconfig takes an integer "
                 "without the L as a 32-bit one, and Debian 12's changes it silently)",
                 path, wide_line, lit, lit);
        goto fail;
    }
    if (!(c = config_new()) || !(c->path = strdup(path))) {
        set_errf(errstr, errlen, "%s: out of memory", path);
        goto fail;
    }
    const config_setting_t *root = config_root_setting(&lc);
    if (load_tree(c, root, NULL, path, errstr, errlen) != 0)
        goto fail;
    /* The endpoints are copies of the top level as the file leaves it. */
    endpoints_clear(c);
    const config_setting_t *eps = config_setting_get_member(root, "endpoints");
    if (eps && load_endpoints(c, eps, path, errstr, errlen) != 0)
        goto fail;
    if (c->endpoints_cnt == 0 && !endpoint_push(c, CFG_DEFAULT_ENDPOINT, 0)) {
        set_errf(errstr, errlen, "%s: out of memory", path);
        goto fail;
    }
    config_destroy(&lc);
    return c;
fail:
    config_free(c);
    config_destroy(&lc);
    return NULL;
}

/* ---- comparing and reloading --------------------------------------------------------------- */

static int kv_equal(const cfg_kv_t *a, size_t an, const cfg_kv_t *b, size_t bn) {
    if (an != bn)
        return 0;
    for (size_t i = 0; i < an; i++)
        if (strcmp(a[i].name, b[i].name) != 0 || strcmp(a[i].value, b[i].value) != 0)
            return 0;
    return 1;
}

static int strlist_equal(const cfg_strlist_t *a, const cfg_strlist_t *b) {
    if (a->count != b->count)
        return 0;
    for (size_t i = 0; i < a->count; i++)
        if (strcmp(a->items[i], b->items[i]) != 0)
            return 0;
    return 1;
}

static int endpoints_equal(const hb_config_t *a, const hb_config_t *b);

/* Lines are not compared: moving a setting in the file changes nothing. */
static int option_equal(const hb_config_t *a, const hb_config_t *b, const cfg_option_t *o) {
    kv_ref_t ra, rb;
    switch (o->type) {
    case CFG_INT:
    case CFG_BOOL:
    case CFG_ENUM:
        return int_of(a, o) == int_of(b, o);
    case CFG_STRING:
        return strcmp(str_of(a, o), str_of(b, o)) == 0;
    case CFG_STRLIST:
        return strlist_equal(list_of(a, o), list_of(b, o));
    case CFG_FREEFORM:
        /* kv_ref only reads through the pointers it returns here */
        if (kv_ref((hb_config_t *)a, o, &ra) != 0 || kv_ref((hb_config_t *)b, o, &rb) != 0)
            return endpoints_equal(a, b);
        return kv_equal(*ra.arr, *ra.cnt, *rb.arr, *rb.cnt);
    }
    return 1;
}

/* The implicit endpoint mirrors the top level, whose options are compared one by one. */
static int endpoints_equal(const hb_config_t *a, const hb_config_t *b) {
    if (!a->endpoints_listed && !b->endpoints_listed)
        return 1;
    if (a->endpoints_cnt != b->endpoints_cnt || a->endpoints_listed != b->endpoints_listed)
        return 0;
    for (size_t i = 0; i < a->endpoints_cnt; i++) {
        if (strcmp(a->endpoints[i].name, b->endpoints[i].name) != 0)
            return 0;
        for (size_t k = 0; k < N_OPTIONS; k++)
            if ((options[k].flags & CFG_F_ENDPOINT) &&
                !option_equal(a->endpoints[i].cfg, b->endpoints[i].cfg, &options[k]))
                return 0;
    }
    return 1;
}

static const char *kv_last(const cfg_kv_t *kv, size_t n, const char *name) {
    for (size_t i = n; i-- > 0;)
        if (strcmp(kv[i].name, name) == 0)
            return kv[i].value;
    return NULL;
}

/* librdkafka takes the last setting of a property: compare what each side ends up with. */
static size_t kafka_diff(const hb_config_t *a, const hb_config_t *b, config_diff_cb cb,
                         void *arg) {
    size_t n = 0;
    const hb_config_t *side[2] = {a, b};
    for (int s = 0; s < 2; s++) {
        const cfg_kv_t *kv = side[s]->kafka;
        for (size_t i = 0; i < side[s]->kafka_cnt; i++) {
            const char *name = kv[i].name;
            if (kv_last(kv, i, name) || (s == 1 && kv_last(a->kafka, a->kafka_cnt, name)))
                continue; /* seen already */
            const char *va = kv_last(a->kafka, a->kafka_cnt, name);
            const char *vb = kv_last(b->kafka, b->kafka_cnt, name);
            if (va && vb && strcmp(va, vb) == 0)
                continue;
            if (cb) {
                char full[300];
                snprintf(full, sizeof full, "kafka.%s", name);
                cb(arg, full);
            }
            n++;
        }
    }
    return n;
}

size_t config_diff(const hb_config_t *a, const hb_config_t *b, int reloadable, config_diff_cb cb,
                   void *arg) {
    size_t n = 0;
    for (size_t i = 0; i < N_OPTIONS; i++) {
        const cfg_option_t *o = &options[i];
        if (!(o->flags & CFG_F_RELOAD) != !reloadable)
            continue;
        if (strcmp(o->name, "kafka") == 0) {
            n += kafka_diff(a, b, cb, arg);
            continue;
        }
        if (option_equal(a, b, o))
            continue;
        if (cb)
            cb(arg, o->name);
        n++;
    }
    return n;
}

#define SWAP(T, x, y)                                                                              \
    do {                                                                                           \
        T t_ = (x);                                                                                \
        (x) = (y);                                                                                 \
        (y) = t_;                                                                                  \
    } while (0)

void config_take_reloadable(hb_config_t *dst, hb_config_t *src) {
    for (size_t i = 0; i < N_OPTIONS; i++) {
        const cfg_option_t *o = &options[i];
        kv_ref_t rd, rs;
        if (!(o->flags & CFG_F_RELOAD))
            continue;
        switch (o->type) {
        case CFG_INT:
        case CFG_BOOL:
        case CFG_ENUM:
            SWAP(int64_t, *int_field(dst, o), *int_field(src, o));
            break;
        case CFG_STRING:
            SWAP(char *, *str_field(dst, o), *str_field(src, o));
            break;
        case CFG_STRLIST:
            SWAP(cfg_strlist_t, *list_field(dst, o), *list_field(src, o));
            break;
        case CFG_FREEFORM:
            if (kv_ref(dst, o, &rd) == 0 && kv_ref(src, o, &rs) == 0) {
                SWAP(cfg_kv_t *, *rd.arr, *rs.arr);
                SWAP(size_t, *rd.cnt, *rs.cnt);
            } else { /* endpoints */
                SWAP(cfg_endpoint_t *, dst->endpoints, src->endpoints);
                SWAP(size_t, dst->endpoints_cnt, src->endpoints_cnt);
                SWAP(int, dst->endpoints_listed, src->endpoints_listed);
            }
            break;
        }
    }
}

void config_print_reference(FILE *out) {
    static const char *const type_names[] = {"integer", "boolean", "string", "enum", "group",
                                               "string list"};
    fprintf(out, "| option | type | default | range | on SIGHUP | per endpoint | meaning |\n"
                 "|---|---|---|---|---|---|---|\n");
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
        fprintf(out, "| `%s` | %s | `%s` | %s | %s | %s | %s |\n", o->name, type_names[o->type],
                o->def, range, (o->flags & CFG_F_RELOAD) ? "applied" : "restart",
                (o->flags & CFG_F_ENDPOINT) ? "yes" : "", o->help);
    }
}
