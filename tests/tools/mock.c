/* hb-mock: hosts a librdkafka mock cluster in its own process and drives it from stdin. */

/*
 * Protocol (one command a line on stdin, one answer a line on stdout, flushed):
 *
 *   first stdout line     bootstrap <host:port,host:port,...>
 *   down <id>|all         broker refuses connections and drops the ones it has
 *   up <id>|all           broker accepts connections again
 *   errors <apikey> <count> <err>
 *                         the next <count> requests of <apikey> (0 = Produce, 3 = Metadata)
 *                         fail with <err>: a number (rd_kafka_resp_err_t) or a name such as
 *                         NOT_LEADER_FOR_PARTITION or _TRANSPORT (the broker hangs up)
 *   clear <apikey>        forget errors still queued for <apikey>
 *   rtt <id>|all <ms>     delay every response of the broker by <ms>
 *   create <topic> <partitions>
 *   leader <topic> <partition> <id>   move a partition's leadership (-1: no leader)
 *   topic-error <topic> <err>  Metadata answers <err> for <topic> (0 or NO_ERROR: clears it).
 *                         librdkafka then fails the topic's records (TOPIC_AUTHORIZATION_FAILED
 *                         at once; UNKNOWN_TOPIC_OR_PART after topic.metadata.propagation.max.ms).
 *                         Set it before the producer first asks for the topic: a producer that
 *                         knows the topic keeps producing until its next metadata refresh.
 *                         The mock answers with the topic's partitions next to the error:
 *                         librdkafka 2.1 to 2.8 crash on such an answer (#4907); the 2.8.0
 *                         scripts/install-deps builds is patched (scripts/patches/), the
 *                         image's trixie package is not. See test_isolation.py's TopicErrorTest.
 *   quit                  (or EOF on stdin, SIGTERM, SIGINT) destroy the cluster, exit 0
 *
 * Each answer is "ok" or "error <reason>". Every command has taken effect inside the
 * mock cluster when "ok" is written: the librdkafka calls used here wait for the mock
 * cluster's thread to apply them, so a test never needs to sleep after a command.
 *
 * Topic auto-creation (librdkafka 2.0.2 and 2.8.0): the mock brokers create an unknown topic
 * when a client's Metadata request asks for it with auto-creation allowed (a producer
 * does by default), with 4 partitions and a replication factor of min(3, brokers).
 * A consumer's metadata request does not create it. Use --topic or "create" when a
 * test depends on the partition count.
 */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#define MOCK_LINE_MAX 4096
#define MOCK_DEFAULT_BROKERS 3
#define MOCK_MAX_REPLICAS 3

typedef struct mock_s {
        rd_kafka_t *rk;
        rd_kafka_mock_cluster_t *cluster;
        int broker_cnt;
} mock_t;

static void usage(const char *argv0) {
        fprintf(stderr,
                "Usage: %s [--brokers N] [--topic NAME[:PARTITIONS]]...\n"
                "\n"
                "Starts a librdkafka mock Kafka cluster of N brokers (default %d), prints\n"
                "\"bootstrap <servers>\" and then obeys commands on stdin, one a line:\n"
                "  down <id>|all, up <id>|all, errors <apikey> <count> <err>, clear <apikey>,\n"
                "  rtt <id>|all <ms>, create <topic> <partitions>,\n"
                "  leader <topic> <partition> <id>, topic-error <topic> <err>, quit\n"
                "Each command is answered with \"ok\" or \"error <reason>\".\n",
                argv0, MOCK_DEFAULT_BROKERS);
}

/* Parses a whole decimal integer in [lo, hi]; returns 0 on success. */
static int parse_int(const char *s, long lo, long hi, long *out) {
        char *end;
        long v;

        if (!s || !*s)
                return -1;
        errno = 0;
        v = strtol(s, &end, 10);
        if (errno || *end || v < lo || v > hi)
                return -1;
        *out = v;
        return 0;
}

/* Broker id or "all" (-1, which the mock API reads as every broker). */
static int parse_broker(const mock_t *m, const char *s, int32_t *out) {
        long v;

        if (s && !strcmp(s, "all")) {
                *out = -1;
                return 0;
        }
        if (parse_int(s, 1, m->broker_cnt, &v))
                return -1;
        *out = (int32_t)v;
        return 0;
}

/* Error code by number or by name as librdkafka spells it (without "RD_KAFKA_RESP_ERR_"). */
static int parse_err(const char *s, rd_kafka_resp_err_t *out) {
        const struct rd_kafka_err_desc *descs;
        size_t cnt, i;
        long v;

        if (!parse_int(s, -200, 1000, &v)) {
                *out = (rd_kafka_resp_err_t)v;
                return 0;
        }
        if (!s)
                return -1;
        rd_kafka_get_err_descs(&descs, &cnt);
        for (i = 0; i < cnt; i++) {
                if (descs[i].name && !strcmp(descs[i].name, s)) {
                        *out = descs[i].code;
                        return 0;
                }
        }
        return -1;
}

static int reply(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int reply(const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
        putchar('\n');
        return fflush(stdout) == 0 ? 0 : -1;
}

static int reply_err(rd_kafka_resp_err_t err) {
        return err ? reply("error %s", rd_kafka_err2str(err)) : reply("ok");
}

/* Runs one command line; returns 1 to quit, -1 if stdout is gone, else 0. */
static int mock_command(mock_t *m, char *line) {
        char *argv[6] = {0};
        char *save = NULL, *tok;
        int argc = 0;
        int32_t broker;
        long n, count;
        rd_kafka_resp_err_t err;

        for (tok = strtok_r(line, " \t\r", &save); tok && argc < 5;
             tok = strtok_r(NULL, " \t\r", &save))
                argv[argc++] = tok;
        if (tok)
                return reply("error too many arguments");
        if (argc == 0)
                return reply("error empty command");

        if (!strcmp(argv[0], "quit")) {
                reply("ok");
                return 1;
        }
        if ((!strcmp(argv[0], "down") || !strcmp(argv[0], "up")) && argc == 2) {
                if (parse_broker(m, argv[1], &broker))
                        return reply("error bad broker id \"%s\" (1..%d or all)", argv[1],
                                     m->broker_cnt);
                err = argv[0][0] == 'd' ? rd_kafka_mock_broker_set_down(m->cluster, broker)
                                        : rd_kafka_mock_broker_set_up(m->cluster, broker);
                return reply_err(err);
        }
        if (!strcmp(argv[0], "errors") && argc == 4) {
                rd_kafka_resp_err_t *errs;
                long i;

                if (parse_int(argv[1], 0, INT16_MAX, &n))
                        return reply("error bad apikey \"%s\"", argv[1]);
                if (parse_int(argv[2], 1, 100000, &count))
                        return reply("error bad count \"%s\"", argv[2]);
                if (parse_err(argv[3], &err))
                        return reply("error unknown error code \"%s\"", argv[3]);
                errs = malloc(sizeof(*errs) * (size_t)count);
                if (!errs)
                        return reply("error out of memory");
                for (i = 0; i < count; i++)
                        errs[i] = err;
                rd_kafka_mock_push_request_errors_array(m->cluster, (int16_t)n, (size_t)count,
                                                        errs);
                free(errs);
                return reply("ok");
        }
        if (!strcmp(argv[0], "clear") && argc == 2) {
                if (parse_int(argv[1], 0, INT16_MAX, &n))
                        return reply("error bad apikey \"%s\"", argv[1]);
                rd_kafka_mock_clear_request_errors(m->cluster, (int16_t)n);
                return reply("ok");
        }
        if (!strcmp(argv[0], "rtt") && argc == 3) {
                if (parse_broker(m, argv[1], &broker))
                        return reply("error bad broker id \"%s\"", argv[1]);
                if (parse_int(argv[2], 0, 3600 * 1000, &n))
                        return reply("error bad rtt \"%s\"", argv[2]);
                return reply_err(rd_kafka_mock_broker_set_rtt(m->cluster, broker, (int)n));
        }
        if (!strcmp(argv[0], "create") && argc == 3) {
                if (parse_int(argv[2], 1, 10000, &n))
                        return reply("error bad partition count \"%s\"", argv[2]);
                return reply_err(rd_kafka_mock_topic_create(
                    m->cluster, argv[1], (int)n,
                    m->broker_cnt < MOCK_MAX_REPLICAS ? m->broker_cnt : MOCK_MAX_REPLICAS));
        }
        if (!strcmp(argv[0], "leader") && argc == 4) {
                long partition;

                if (parse_int(argv[2], 0, INT32_MAX, &partition))
                        return reply("error bad partition \"%s\"", argv[2]);
                if (parse_int(argv[3], -1, m->broker_cnt, &n) || n == 0)
                        return reply("error bad broker id \"%s\"", argv[3]);
                return reply_err(rd_kafka_mock_partition_set_leader(
                    m->cluster, argv[1], (int32_t)partition, (int32_t)n));
        }
        if (!strcmp(argv[0], "topic-error") && argc == 3) {
                if (parse_err(argv[2], &err))
                        return reply("error unknown error code \"%s\"", argv[2]);
                rd_kafka_mock_topic_set_error(m->cluster, argv[1], err);
                return reply("ok");
        }
        return reply("error unknown command or wrong arguments: %s", argv[0]);
}

/*
 * Reads stdin until quit, EOF or a signal. Signals arrive on a signalfd (they were
 * blocked before librdkafka started its threads, so none of those threads takes them),
 * which lets one poll() wait for both input and shutdown.
 */
static int mock_serve(mock_t *m, int sigfd) {
        char buf[MOCK_LINE_MAX];
        size_t used = 0;

        for (;;) {
                struct pollfd pfd[2] = {{.fd = STDIN_FILENO, .events = POLLIN},
                                        {.fd = sigfd, .events = POLLIN}};
                ssize_t r;
                char *nl;

                if (poll(pfd, 2, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        perror("hb-mock: poll");
                        return -1;
                }
                if (pfd[1].revents)
                        return 0;
                if (!pfd[0].revents)
                        continue;

                r = read(STDIN_FILENO, buf + used, sizeof(buf) - 1 - used);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r < 0) {
                        perror("hb-mock: read stdin");
                        return -1;
                }
                if (r == 0)
                        return 0; /* EOF: the test runner went away; shut down. */
                used += (size_t)r;
                buf[used] = '\0';

                while ((nl = memchr(buf, '\n', used))) {
                        size_t len = (size_t)(nl - buf) + 1;
                        int rc;

                        *nl = '\0';
                        rc = mock_command(m, buf);
                        if (rc)
                                return rc > 0 ? 0 : -1;
                        memmove(buf, buf + len, used - len);
                        used -= len;
                }
                if (used == sizeof(buf) - 1) {
                        used = 0;
                        if (reply("error line too long"))
                                return -1;
                }
        }
}

int main(int argc, char **argv) {
        char errstr[512];
        mock_t m = {.broker_cnt = MOCK_DEFAULT_BROKERS};
        rd_kafka_conf_t *conf = NULL;
        sigset_t sigs;
        int sigfd = -1, i, rc = 1;
        long n;

        /* Topics are created after the cluster exists, so collect them first. */
        const char **topics = calloc((size_t)argc, sizeof(*topics));
        int topic_cnt = 0;

        if (!topics)
                return 1;
        for (i = 1; i < argc; i++) {
                if (!strcmp(argv[i], "--brokers") && i + 1 < argc) {
                        if (parse_int(argv[++i], 1, 64, &n)) {
                                fprintf(stderr, "hb-mock: bad --brokers \"%s\"\n", argv[i]);
                                goto cleanup;
                        }
                        m.broker_cnt = (int)n;
                } else if (!strcmp(argv[i], "--topic") && i + 1 < argc) {
                        topics[topic_cnt++] = argv[++i];
                } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
                        usage(argv[0]);
                        rc = 0;
                        goto cleanup;
                } else {
                        usage(argv[0]);
                        goto cleanup;
                }
        }

        sigemptyset(&sigs);
        sigaddset(&sigs, SIGTERM);
        sigaddset(&sigs, SIGINT);
        if (sigprocmask(SIG_BLOCK, &sigs, NULL) || (sigfd = signalfd(-1, &sigs, SFD_CLOEXEC)) < 0) {
                perror("hb-mock: signalfd");
                goto cleanup;
        }
        /* A test runner that dies leaves a closed pipe: fail the write instead of dying. */
        signal(SIGPIPE, SIG_IGN);

        /* The handle only hosts the cluster; it never connects anywhere itself. */
        conf = rd_kafka_conf_new();
        if (rd_kafka_conf_set(conf, "log_level", "4", errstr, sizeof(errstr)) !=
            RD_KAFKA_CONF_OK) {
                fprintf(stderr, "hb-mock: %s\n", errstr);
                goto cleanup;
        }
        m.rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
        if (!m.rk) {
                fprintf(stderr, "hb-mock: rd_kafka_new: %s\n", errstr);
                goto cleanup;
        }
        conf = NULL; /* owned by m.rk now */

        m.cluster = rd_kafka_mock_cluster_new(m.rk, m.broker_cnt);
        if (!m.cluster) {
                fprintf(stderr, "hb-mock: rd_kafka_mock_cluster_new failed\n");
                goto cleanup;
        }

        for (i = 0; i < topic_cnt; i++) {
                char name[256];
                const char *colon = strrchr(topics[i], ':');
                long parts = 1;
                rd_kafka_resp_err_t err;

                if (colon && parse_int(colon + 1, 1, 10000, &parts)) {
                        fprintf(stderr, "hb-mock: bad partition count in \"%s\"\n", topics[i]);
                        goto cleanup;
                }
                snprintf(name, sizeof(name), "%.*s",
                         colon ? (int)(colon - topics[i]) : (int)strlen(topics[i]), topics[i]);
                err = rd_kafka_mock_topic_create(
                    m.cluster, name, (int)parts,
                    m.broker_cnt < MOCK_MAX_REPLICAS ? m.broker_cnt : MOCK_MAX_REPLICAS);
                if (err) {
                        fprintf(stderr, "hb-mock: create topic %s: %s\n", name,
                                rd_kafka_err2str(err));
                        goto cleanup;
                }
        }

        if (reply("bootstrap %s", rd_kafka_mock_cluster_bootstraps(m.cluster)))
                goto cleanup;

        rc = mock_serve(&m, sigfd) ? 1 : 0;

cleanup:
        if (conf)
                rd_kafka_conf_destroy(conf);
        if (m.cluster)
                rd_kafka_mock_cluster_destroy(m.cluster);
        if (m.rk)
                rd_kafka_destroy(m.rk);
        if (sigfd >= 0)
                close(sigfd);
        free(topics);
        return rc;
}
