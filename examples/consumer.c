/* hb-consume: reads hookbridge's CloudEvents back from Kafka, every partition from the start. */

/*
 * An example for services downstream of hookbridge, and the tool the tests use to read
 * topics back. It needs no consumer group: it asks the cluster how many partitions each
 * topic has and assigns them all at offset BEGINNING, so it works the same against a
 * real cluster and librdkafka's mock cluster, and never moves anybody's committed
 * offsets. A topic that does not exist yet is looked up again until the deadline (and
 * never created by the lookup).
 *
 * hookbridge writes CloudEvents in structured mode (the value is the JSON event) or in
 * binary mode (the value is the data, the attributes are ce_* headers); the human
 * output shows the event's type and id from whichever of the two is there.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <librdkafka/rdkafka.h>

#define METADATA_RETRY_MS 200 /* between lookups of a topic that does not exist yet */
#define POLL_MS 100           /* longest wait for a message before checking the clock */
#define JSON_MAX_DEPTH 128

typedef struct options_s {
        const char *brokers;
        const char **topics;
        int topic_cnt;
        long count;      /* stop after this many messages; 0: no limit */
        long timeout_ms; /* stop this long after start; 0: never */
        long idle_ms;    /* stop this long after the last message, once at EOF; 0: never */
        int json;
} options_t;

/* A topic is pending until the cluster reports its partitions; then they are assigned. */
typedef struct topic_state_s {
        const char *name;
        int assigned;
        int partition_cnt;
        char *at_eof; /* per partition: read up to the end, nothing since */
} topic_state_t;

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig) {
        (void)sig;
        stop_requested = 1;
}

static void usage(const char *argv0) {
        fprintf(stderr,
                "Usage: %s -b BROKERS -t TOPIC [-t TOPIC...] [-n COUNT]\n"
                "          [--timeout-ms MS] [--idle-ms MS] [--json] [-X prop=value...]\n"
                "\n"
                "Prints every message of the topics, each partition read from its beginning.\n"
                "  -b BROKERS       bootstrap servers, host:port[,host:port...]\n"
                "  -t TOPIC         topic to read (repeatable); waited for if it does not exist\n"
                "  -n COUNT         stop after COUNT messages (exit 2 if a deadline comes first)\n"
                "  --timeout-ms MS  stop MS after start (default: never)\n"
                "  --idle-ms MS     stop when no message came for MS, once every partition\n"
                "                   was read to its end (default: never)\n"
                "  --json           one JSON object a line: topic, partition, offset, key,\n"
                "                   headers, value (inlined if it is JSON), timestamp\n"
                "  -X prop=value    librdkafka configuration property (repeatable)\n"
                "Default output: <topic> [<partition>@<offset>] key=<key> type=<type> id=<id>\n"
                "Exit: 0 done, 1 error, 2 COUNT not reached before the deadline.\n",
                argv0);
}

static int64_t now_ms(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int parse_long(const char *s, long *out) {
        char *end;

        errno = 0;
        *out = strtol(s, &end, 10);
        return (errno || !*s || *end || *out < 0) ? -1 : 0;
}

/* ---- JSON: validate, minify, escape -------------------------------------------------- */

/* Length of the valid UTF-8 sequence at p (RFC 3629: no overlongs, no surrogates), or 0. */
static size_t utf8_len(const unsigned char *p, size_t n) {
        size_t len, i;
        uint32_t cp;

        if (p[0] < 0x80)
                return 1;
        if (p[0] >= 0xc2 && p[0] <= 0xdf)
                len = 2, cp = p[0] & 0x1f;
        else if (p[0] >= 0xe0 && p[0] <= 0xef)
                len = 3, cp = p[0] & 0x0f;
        else if (p[0] >= 0xf0 && p[0] <= 0xf4)
                len = 4, cp = p[0] & 0x07;
        else
                return 0;
        if (n < len)
                return 0;
        for (i = 1; i < len; i++) {
                if ((p[i] & 0xc0) != 0x80)
                        return 0;
                cp = (cp << 6) | (p[i] & 0x3f);
        }
        if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
            (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
                return 0;
        return len;
}

/* A string member of the top-level object, as its raw (still escaped) bytes. */
typedef struct json_capture_s {
        const char *name;
        const char *val;
        size_t len;
} json_capture_t;

typedef struct json_scan_s {
        const unsigned char *p, *end;
        json_capture_t *caps;
        int cap_cnt;
} json_scan_t;

static void json_ws(json_scan_t *s) {
        while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
                s->p++;
}

static int json_value(json_scan_t *s, int depth);

static int json_string(json_scan_t *s) {
        static const char hex[] = "0123456789abcdefABCDEF";
        size_t len;

        s->p++; /* opening quote */
        while (s->p < s->end && *s->p != '"') {
                if (*s->p == '\\') {
                        if (++s->p >= s->end)
                                return -1;
                        if (*s->p == 'u') {
                                if (s->end - s->p < 5 || !memchr(hex, s->p[1], 22) ||
                                    !memchr(hex, s->p[2], 22) || !memchr(hex, s->p[3], 22) ||
                                    !memchr(hex, s->p[4], 22))
                                        return -1;
                                s->p += 5;
                        } else if (*s->p && strchr("\"\\/bfnrt", *s->p)) {
                                s->p++;
                        } else {
                                return -1;
                        }
                } else if (*s->p < 0x20) {
                        return -1;
                } else {
                        if (!(len = utf8_len(s->p, (size_t)(s->end - s->p))))
                                return -1;
                        s->p += len;
                }
        }
        if (s->p >= s->end)
                return -1;
        s->p++;
        return 0;
}

static int json_digits(json_scan_t *s) {
        const unsigned char *start = s->p;

        while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
                s->p++;
        return s->p > start ? 0 : -1;
}

static int json_number(json_scan_t *s) {
        if (*s->p == '-')
                s->p++;
        if (s->p < s->end && *s->p == '0')
                s->p++;
        else if (json_digits(s))
                return -1;
        if (s->p < s->end && *s->p == '.') {
                s->p++;
                if (json_digits(s))
                        return -1;
        }
        if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
                s->p++;
                if (s->p < s->end && (*s->p == '+' || *s->p == '-'))
                        s->p++;
                if (json_digits(s))
                        return -1;
        }
        return 0;
}

static int json_literal(json_scan_t *s, const char *word) {
        size_t len = strlen(word);

        if ((size_t)(s->end - s->p) < len || memcmp(s->p, word, len))
                return -1;
        s->p += len;
        return 0;
}

/* Members of an object; in the top-level one (depth 0), string members named in s->caps
 * are recorded. */
static int json_object(json_scan_t *s, int depth) {
        s->p++;
        json_ws(s);
        if (s->p < s->end && *s->p == '}') {
                s->p++;
                return 0;
        }
        for (;;) {
                const unsigned char *name = s->p + 1, *name_end, *val;
                int i;

                if (s->p >= s->end || *s->p != '"' || json_string(s))
                        return -1;
                name_end = s->p - 1;
                json_ws(s);
                if (s->p >= s->end || *s->p++ != ':')
                        return -1;
                json_ws(s);
                val = s->p;
                if (json_value(s, depth + 1))
                        return -1;
                for (i = 0; depth == 0 && *val == '"' && i < s->cap_cnt; i++) {
                        json_capture_t *c = &s->caps[i];

                        if (strlen(c->name) == (size_t)(name_end - name) &&
                            !memcmp(name, c->name, strlen(c->name))) {
                                c->val = (const char *)val + 1;
                                c->len = (size_t)(s->p - val) - 2;
                        }
                }
                json_ws(s);
                if (s->p < s->end && *s->p == ',') {
                        s->p++;
                        json_ws(s);
                        continue;
                }
                if (s->p < s->end && *s->p == '}') {
                        s->p++;
                        return 0;
                }
                return -1;
        }
}

static int json_array(json_scan_t *s, int depth) {
        s->p++;
        json_ws(s);
        if (s->p < s->end && *s->p == ']') {
                s->p++;
                return 0;
        }
        for (;;) {
                if (json_value(s, depth + 1))
                        return -1;
                json_ws(s);
                if (s->p < s->end && *s->p == ',') {
                        s->p++;
                        json_ws(s);
                        continue;
                }
                if (s->p < s->end && *s->p == ']') {
                        s->p++;
                        return 0;
                }
                return -1;
        }
}

static int json_value(json_scan_t *s, int depth) {
        if (s->p >= s->end || depth > JSON_MAX_DEPTH)
                return -1;
        switch (*s->p) {
        case '{':
                return json_object(s, depth);
        case '[':
                return json_array(s, depth);
        case '"':
                return json_string(s);
        case 't':
                return json_literal(s, "true");
        case 'f':
                return json_literal(s, "false");
        case 'n':
                return json_literal(s, "null");
        default:
                return (*s->p == '-' || (*s->p >= '0' && *s->p <= '9')) ? json_number(s) : -1;
        }
}

/* Returns 0 if buf holds exactly one JSON value (RFC 8259, UTF-8); fills caps if given. */
static int json_check(const void *buf, size_t len, json_capture_t *caps, int cap_cnt) {
        json_scan_t s = {.p = buf, .end = (const unsigned char *)buf + len, .caps = caps,
                         .cap_cnt = cap_cnt};

        json_ws(&s);
        if (json_value(&s, 0))
                return -1;
        json_ws(&s);
        return s.p == s.end ? 0 : -1;
}

/* Copies valid JSON without the whitespace between tokens, so it fits on one line. */
static void json_put_minified(FILE *out, const char *p, size_t len) {
        int in_string = 0;
        size_t i;

        for (i = 0; i < len; i++) {
                char c = p[i];

                if (in_string) {
                        if (c == '\\') {
                                fputc(c, out);
                                c = p[++i];
                        } else if (c == '"') {
                                in_string = 0;
                        }
                } else if (c == '"') {
                        in_string = 1;
                } else if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
                        continue;
                }
                fputc(c, out);
        }
}

/* Writes bytes as a JSON string; invalid UTF-8 becomes U+FFFD so the line stays valid. */
static void json_put_string(FILE *out, const void *buf, size_t len) {
        const unsigned char *p = buf, *end = p + len;

        fputc('"', out);
        while (p < end) {
                size_t n;

                switch (*p) {
                case '"': fputs("\\\"", out); break;
                case '\\': fputs("\\\\", out); break;
                case '\n': fputs("\\n", out); break;
                case '\r': fputs("\\r", out); break;
                case '\t': fputs("\\t", out); break;
                case '\b': fputs("\\b", out); break;
                case '\f': fputs("\\f", out); break;
                default:
                        if (*p < 0x20) {
                                fprintf(out, "\\u%04x", *p);
                        } else if ((n = utf8_len(p, (size_t)(end - p)))) {
                                fwrite(p, 1, n, out);
                                p += n;
                                continue;
                        } else {
                                fputs("\\ufffd", out);
                        }
                }
                p++;
        }
        fputc('"', out);
}

static void json_put_bytes_or_null(FILE *out, const void *buf, size_t len) {
        if (buf)
                json_put_string(out, buf, len);
        else
                fputs("null", out);
}

/* ---- output ------------------------------------------------------------------------- */

static void print_json(FILE *out, const rd_kafka_message_t *rkm) {
        rd_kafka_headers_t *hdrs = NULL;
        rd_kafka_timestamp_type_t tstype;
        int64_t ts = rd_kafka_message_timestamp(rkm, &tstype);
        const char *name;
        const void *val;
        size_t size, i;

        fputs("{\"topic\":", out);
        json_put_string(out, rd_kafka_topic_name(rkm->rkt), strlen(rd_kafka_topic_name(rkm->rkt)));
        fprintf(out, ",\"partition\":%" PRId32 ",\"offset\":%" PRId64 ",\"key\":", rkm->partition,
                rkm->offset);
        json_put_bytes_or_null(out, rkm->key, rkm->key_len);

        /* A name that repeats keeps its last value: CloudEvents headers never repeat. */
        fputs(",\"headers\":{", out);
        if (!rd_kafka_message_headers(rkm, &hdrs)) {
                for (i = 0; !rd_kafka_header_get_all(hdrs, i, &name, &val, &size); i++) {
                        if (i)
                                fputc(',', out);
                        json_put_string(out, name, strlen(name));
                        fputc(':', out);
                        json_put_bytes_or_null(out, val, size);
                }
        }
        fputs("},\"value\":", out);
        if (rkm->payload && json_check(rkm->payload, rkm->len, NULL, 0) == 0)
                json_put_minified(out, rkm->payload, rkm->len);
        else
                json_put_bytes_or_null(out, rkm->payload, rkm->len);
        if (tstype == RD_KAFKA_TIMESTAMP_NOT_AVAILABLE)
                ts = -1;
        fprintf(out, ",\"timestamp\":%" PRId64 "}\n", ts);
}

/* Finds a CloudEvents attribute: the ce_<name> header (binary mode) or the value's member. */
static void find_attr(const rd_kafka_message_t *rkm, json_capture_t *cap, const char *header) {
        rd_kafka_headers_t *hdrs = NULL;
        const void *val;
        size_t size;

        if (!cap->val && !rd_kafka_message_headers(rkm, &hdrs) &&
            !rd_kafka_header_get_last(hdrs, header, &val, &size) && val) {
                cap->val = val;
                cap->len = size;
        }
}

static void print_human(FILE *out, const rd_kafka_message_t *rkm) {
        json_capture_t caps[2] = {{.name = "type"}, {.name = "id"}};

        /* Headers first: in binary mode the value is the event's data, whose own "type"
         * member (if any) is not the event's. */
        find_attr(rkm, &caps[0], "ce_type");
        find_attr(rkm, &caps[1], "ce_id");
        if (rkm->payload && (!caps[0].val || !caps[1].val)) {
                json_capture_t found[2] = {{.name = "type"}, {.name = "id"}};

                if (json_check(rkm->payload, rkm->len, found, 2) == 0) {
                        for (int i = 0; i < 2; i++)
                                if (!caps[i].val)
                                        caps[i] = found[i];
                }
        }
        fprintf(out, "%s [%" PRId32 "@%" PRId64 "] key=%.*s type=%.*s id=%.*s\n",
                rd_kafka_topic_name(rkm->rkt), rkm->partition, rkm->offset,
                rkm->key ? (int)rkm->key_len : 1, rkm->key ? (const char *)rkm->key : "-",
                caps[0].val ? (int)caps[0].len : 1, caps[0].val ? caps[0].val : "-",
                caps[1].val ? (int)caps[1].len : 1, caps[1].val ? caps[1].val : "-");
}

/* ---- partitions --------------------------------------------------------------------- */

/*
 * Adds every partition of the pending topics the cluster now knows to the assignment,
 * at BEGINNING. Returns how many topics were assigned, or -1 on an error that retrying
 * will not fix.
 *
 * It lists all topics rather than asking for ours by name: a Metadata request that
 * names a topic may create it (brokers with auto.create.topics.enable, and librdkafka
 * 2.0.2's mock cluster always, with 4 partitions), and a reader must not do that.
 */
static int assign_pending(rd_kafka_t *rk, topic_state_t *topics, int topic_cnt, int timeout_ms) {
        const struct rd_kafka_metadata *md = NULL;
        int i, j, k, assigned = 0;

        if (rd_kafka_metadata(rk, 1, NULL, &md, timeout_ms))
                return 0; /* broker unreachable or slow: try again later */

        for (i = 0; i < topic_cnt; i++) {
                const struct rd_kafka_metadata_topic *mt = NULL;
                rd_kafka_topic_partition_list_t *parts;
                rd_kafka_error_t *error;

                for (j = 0; !topics[i].assigned && j < md->topic_cnt; j++)
                        if (!strcmp(md->topics[j].topic, topics[i].name))
                                mt = &md->topics[j];
                if (!mt || mt->partition_cnt == 0 ||
                    mt->err == RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE)
                        continue; /* not there yet */
                if (mt->err) {
                        fprintf(stderr, "hb-consume: topic %s: %s\n", mt->topic,
                                rd_kafka_err2str(mt->err));
                        assigned = -1;
                        break;
                }

                parts = rd_kafka_topic_partition_list_new(mt->partition_cnt);
                for (k = 0; k < mt->partition_cnt; k++)
                        rd_kafka_topic_partition_list_add(parts, mt->topic, mt->partitions[k].id)
                            ->offset = RD_KAFKA_OFFSET_BEGINNING;
                /* Incremental: partitions assigned earlier keep their positions. */
                error = rd_kafka_incremental_assign(rk, parts);
                rd_kafka_topic_partition_list_destroy(parts);
                if (error) {
                        fprintf(stderr, "hb-consume: assign %s: %s\n", mt->topic,
                                rd_kafka_error_string(error));
                        rd_kafka_error_destroy(error);
                        assigned = -1;
                        break;
                }
                topics[i].at_eof = calloc((size_t)mt->partition_cnt, 1);
                if (!topics[i].at_eof) {
                        assigned = -1;
                        break;
                }
                topics[i].partition_cnt = mt->partition_cnt;
                topics[i].assigned = 1;
                assigned++;
        }
        rd_kafka_metadata_destroy(md);
        return assigned;
}

/*
 * Records whether a partition is at its end; returns the change in the number of
 * partitions that are (+1, -1 or 0). Partition ids are 0..partition_cnt-1.
 */
static int track_eof(topic_state_t *topics, int topic_cnt, const rd_kafka_message_t *rkm,
                     int at_eof) {
        const char *name = rd_kafka_topic_name(rkm->rkt);
        int i;

        for (i = 0; i < topic_cnt; i++) {
                topic_state_t *t = &topics[i];

                if (t->assigned && !strcmp(t->name, name) && rkm->partition >= 0 &&
                    rkm->partition < t->partition_cnt && t->at_eof[rkm->partition] != at_eof) {
                        t->at_eof[rkm->partition] = (char)at_eof;
                        return at_eof ? 1 : -1;
                }
        }
        return 0;
}

/* ---- main --------------------------------------------------------------------------- */

static int parse_args(int argc, char **argv, options_t *o, rd_kafka_conf_t *conf) {
        char errstr[512];
        int i;

        for (i = 1; i < argc; i++) {
                const char *arg = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;

                if (!strcmp(arg, "--json")) {
                        o->json = 1;
                        continue;
                }
                if (!strcmp(arg, "-h") || !strcmp(arg, "--help") || !val)
                        return -1;
                i++;
                if (!strcmp(arg, "-b")) {
                        o->brokers = val;
                } else if (!strcmp(arg, "-t")) {
                        o->topics[o->topic_cnt++] = val;
                } else if (!strcmp(arg, "-n")) {
                        if (parse_long(val, &o->count) || o->count == 0)
                                return -1;
                } else if (!strcmp(arg, "--timeout-ms")) {
                        if (parse_long(val, &o->timeout_ms))
                                return -1;
                } else if (!strcmp(arg, "--idle-ms")) {
                        if (parse_long(val, &o->idle_ms))
                                return -1;
                } else if (!strcmp(arg, "-X")) {
                        char *prop = strdup(val), *eq = prop ? strchr(prop, '=') : NULL;
                        rd_kafka_conf_res_t res = RD_KAFKA_CONF_INVALID;

                        if (eq) {
                                *eq = '\0';
                                res = rd_kafka_conf_set(conf, prop, eq + 1, errstr, sizeof(errstr));
                        } else {
                                snprintf(errstr, sizeof(errstr), "expected prop=value: %s", val);
                        }
                        free(prop);
                        if (res != RD_KAFKA_CONF_OK) {
                                fprintf(stderr, "hb-consume: -X %s\n", errstr);
                                return -1;
                        }
                } else {
                        return -1;
                }
        }
        return o->brokers && o->topic_cnt > 0 ? 0 : -1;
}

int main(int argc, char **argv) {
        options_t o = {0};
        topic_state_t *topics = NULL;
        rd_kafka_conf_t *conf = NULL;
        rd_kafka_t *rk = NULL;
        char errstr[512];
        int64_t start, deadline, last_activity, next_lookup;
        long consumed = 0;
        int i, pending, partitions = 0, partitions_at_eof = 0, rc = 1;

        o.topics = calloc((size_t)argc, sizeof(*o.topics));
        conf = rd_kafka_conf_new();
        if (!o.topics)
                goto cleanup;

        /*
         * No offsets are committed and no group is joined (assign, not subscribe); the
         * group.id is only there because librdkafka requires one for assign(). -X may
         * override any of these.
         */
        if (rd_kafka_conf_set(conf, "group.id", "hb-consume", errstr, sizeof(errstr)) ||
            rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr, sizeof(errstr)) ||
            rd_kafka_conf_set(conf, "enable.partition.eof", "true", errstr, sizeof(errstr))) {
                fprintf(stderr, "hb-consume: %s\n", errstr);
                goto cleanup;
        }
        if (parse_args(argc, argv, &o, conf)) {
                usage(argv[0]);
                goto cleanup;
        }
        if (rd_kafka_conf_set(conf, "bootstrap.servers", o.brokers, errstr, sizeof(errstr))) {
                fprintf(stderr, "hb-consume: %s\n", errstr);
                goto cleanup;
        }

        rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
        if (!rk) {
                fprintf(stderr, "hb-consume: %s\n", errstr);
                goto cleanup;
        }
        conf = NULL; /* rd_kafka_new() took it */

        topics = calloc((size_t)o.topic_cnt, sizeof(*topics));
        if (!topics)
                goto cleanup;
        for (i = 0; i < o.topic_cnt; i++)
                topics[i].name = o.topics[i];
        pending = o.topic_cnt;

        signal(SIGINT, on_signal);
        signal(SIGTERM, on_signal);

        start = last_activity = next_lookup = now_ms();
        deadline = o.timeout_ms ? start + o.timeout_ms : INT64_MAX;
        rc = 0;

        while (!stop_requested) {
                rd_kafka_message_t *rkm;
                int64_t now = now_ms();

                if (o.count && consumed >= o.count)
                        break;
                if (now >= deadline)
                        break;
                /* Idle counts only once every assigned partition was read to its end: a
                 * partition can start fetching up to fetch.wait.max.ms after another one
                 * on the same broker reached its end. */
                if (o.idle_ms && partitions > 0 && partitions_at_eof == partitions &&
                    now - last_activity >= o.idle_ms)
                        break;

                if (pending && now >= next_lookup) {
                        int assigned = assign_pending(rk, topics, o.topic_cnt, POLL_MS * 10);

                        if (assigned < 0) {
                                rc = 1;
                                goto cleanup;
                        }
                        pending -= assigned;
                        for (partitions = 0, i = 0; i < o.topic_cnt; i++)
                                partitions += topics[i].partition_cnt;
                        next_lookup = now_ms() + METADATA_RETRY_MS;
                }

                rkm = rd_kafka_consumer_poll(rk, POLL_MS);
                if (!rkm)
                        continue;
                if (rkm->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                        partitions_at_eof += track_eof(topics, o.topic_cnt, rkm, 1);
                        last_activity = now_ms();
                } else if (rkm->err) {
                        /* Broker down, leader moving: librdkafka retries by itself. */
                        fprintf(stderr, "hb-consume: %s\n", rd_kafka_message_errstr(rkm));
                } else {
                        if (o.json)
                                print_json(stdout, rkm);
                        else
                                print_human(stdout, rkm);
                        consumed++;
                        partitions_at_eof += track_eof(topics, o.topic_cnt, rkm, 0);
                        last_activity = now_ms();
                }
                rd_kafka_message_destroy(rkm);
                if (fflush(stdout)) {
                        perror("hb-consume: stdout");
                        rc = 1;
                        goto cleanup;
                }
        }

        for (i = 0; i < o.topic_cnt; i++)
                if (!topics[i].assigned)
                        fprintf(stderr, "hb-consume: topic %s was not found\n", topics[i].name);
        if (o.count && consumed < o.count) {
                fprintf(stderr, "hb-consume: %ld of %ld messages\n", consumed, o.count);
                rc = 2;
        }

cleanup:
        if (rk) {
                rd_kafka_consumer_close(rk);
                rd_kafka_destroy(rk);
        }
        if (conf)
                rd_kafka_conf_destroy(conf);
        for (i = 0; topics && i < o.topic_cnt; i++)
                free(topics[i].at_eof);
        free(topics);
        free(o.topics);
        return rc;
}
