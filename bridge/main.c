/* main.c: hookbridge's command line: run the daemon, check a config, inspect a spool, probe health. */
#include <event2/event.h>
#include <errno.h>
#include <getopt.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bridge.h"
#include "config.h"
#include "deadletter.h"
#include "dispatch.h"
#include "hbtime.h"
#include "log.h"
#include "probe.h"
#include "spool.h"

/* Exit codes (documented in the README). */
enum { EXIT_OK = 0, EXIT_RUNTIME = 1, EXIT_USAGE = 2 };

static void usage(FILE *out) {
    fprintf(out,
            "usage: hookbridge [--config PATH]           run the daemon\n"
            "       hookbridge --check-config --config PATH\n"
            "                                             validate a config file and exit\n"
            "       hookbridge --print-config-reference   print every option as Markdown\n"
            "       hookbridge spool inspect [-v] DIR     list spool segments (-v: records)\n"
            "       hookbridge spool verify DIR           check every record's CRC\n"
            "       hookbridge spool drain --config PATH [--timeout-s N] DIR\n"
            "                                             publish a spool no daemon holds, exit 0\n"
            "                                             once it is empty\n"
            "       hookbridge spool dead-letters list DIR    list DIR/deadletter/\n"
            "       hookbridge spool dead-letters replay DIR  put them back into the spool DIR\n"
            "       hookbridge healthcheck [--timeout-ms N] URL\n"
            "                                             GET URL: exit 0 on a 2xx answer, else 1\n"
            "       hookbridge --version\n"
            "Exit codes: 0 clean stop, 1 runtime failure, 2 bad usage or config.\n");
}

static hb_config_t *load_config(const char *path) {
    char err[1024];
    hb_config_t *cfg = bridge_config_load(path, err, sizeof err);
    if (!cfg)
        fprintf(stderr, "hookbridge: %s\n", err);
    return cfg;
}

/* `hookbridge spool drain`: the dispatcher without the HTTP side, on a spool no daemon holds. */
typedef struct drain_run {
    struct event_base *base;
    dispatch_t *d;
    int done;
} drain_run_t;

static void on_drain_idle(void *arg) {
    drain_run_t *r = arg;
    r->done = 1;
    event_base_loopexit(r->base, NULL);
}

static void on_drain_timeout(evutil_socket_t fd, short what, void *arg) {
    (void)fd, (void)what;
    drain_run_t *r = arg;
    event_base_loopexit(r->base, NULL);
}

static int cmd_spool_drain(int argc, char **argv) {
    const char *config_path = NULL, *dir = NULL;
    long timeout_s = 60;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            config_path = argv[++i];
        } else if (strcmp(argv[i], "--timeout-s") == 0 && i + 1 < argc) {
            char *end;
            timeout_s = strtol(argv[++i], &end, 10);
            if (*end || timeout_s < 1 || timeout_s > 86400) {
                fprintf(stderr, "hookbridge: --timeout-s takes 1 to 86400\n");
                return EXIT_USAGE;
            }
        } else if (argv[i][0] != '-' && !dir) {
            dir = argv[i];
        } else {
            fprintf(stderr, "hookbridge: spool drain: unexpected argument '%s'\n", argv[i]);
            return EXIT_USAGE;
        }
    }
    if (!config_path || !dir) {
        fprintf(stderr, "hookbridge: spool drain needs --config PATH and the spool directory\n");
        return EXIT_USAGE;
    }
    hb_config_t *cfg = load_config(config_path);
    if (!cfg)
        return EXIT_USAGE;
    log_set_level((log_level_t)cfg->log_level);
    char *d = strdup(dir);
    if (!d) {
        config_free(cfg);
        return EXIT_RUNTIME;
    }
    free(cfg->spool_dir);
    cfg->spool_dir = d;
    int rc = EXIT_RUNTIME;
    char err[1024];
    drain_run_t r = {0};
    struct event *deadline = NULL;
    if (!(r.base = event_base_new())) {
        fprintf(stderr, "hookbridge: cannot create the event loop\n");
        goto done;
    }
    spool_opts_t so = {.dir = cfg->spool_dir,
                       .max_bytes = (uint64_t)cfg->spool_max_bytes,
                       .min_free_bytes = (uint64_t)cfg->spool_min_free_bytes,
                       .segment_bytes = (uint64_t)cfg->spool_segment_bytes,
                       .prealloc_bytes = (uint64_t)cfg->spool_prealloc_bytes};
    spool_t *spool = spool_open(&so, err, sizeof err);
    if (!spool) {
        fprintf(stderr, "hookbridge: %s\n", err);
        goto done;
    }
    uint64_t before = spool_pending(spool);
    if (!(r.d = dispatch_new(r.base, cfg, spool, err, sizeof err))) {
        fprintf(stderr, "hookbridge: %s\n", err);
        goto done;
    }
    dispatch_set_idle_cb(r.d, on_drain_idle, &r);
    if (spool_pending(spool) > 0) {
        struct timeval tv = {(time_t)timeout_s, 0};
        deadline = evtimer_new(r.base, on_drain_timeout, &r);
        if (!deadline || evtimer_add(deadline, &tv) != 0)
            goto done;
        event_base_dispatch(r.base);
    } else {
        r.done = 1;
    }
    dispatch_stats_t st;
    dispatch_get_stats(r.d, &st);
    if (r.done) {
        printf("drained %s: %llu record%s published, %llu dead-lettered; the spool is empty\n",
               dir, (unsigned long long)st.drained, st.drained == 1 ? "" : "s",
               (unsigned long long)st.deadlettered);
        rc = EXIT_OK;
        goto done;
    }
    fprintf(stderr, "hookbridge: spool %s not drained within %ld s: %llu of %llu records left",
            dir, timeout_s, (unsigned long long)spool_pending(spool),
            (unsigned long long)before);
    if (!st.kafka_up)
        fprintf(stderr, "; kafka takes nothing (brokers unreachable?)");
    const char *topic, *reason, *error;
    int64_t since;
    for (size_t i = 0; dispatch_parked(r.d, i, &topic, &reason, &error, &since); i++)
        fprintf(stderr, "; topic %s parked: %s (%s)", topic, reason, error);
    fputc('\n', stderr);
done:
    if (deadline)
        event_free(deadline);
    dispatch_free(r.d);
    if (r.base)
        event_base_free(r.base);
    config_free(cfg);
    return rc;
}

static int cmd_spool(int argc, char **argv) {
    int verbose = 0;
    const char *dir = NULL;
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    if (strcmp(argv[1], "drain") == 0)
        return cmd_spool_drain(argc, argv);
    if (strcmp(argv[1], "dead-letters") == 0) {
        if (argc != 4 || (strcmp(argv[2], "list") != 0 && strcmp(argv[2], "replay") != 0)) {
            fprintf(stderr, "hookbridge: usage: hookbridge spool dead-letters list|replay DIR\n");
            return EXIT_USAGE;
        }
        /* The spool's own log lines (opened, ...) stay out of a tool's output. */
        log_set_level(LOG_LVL_WARN);
        if (argv[2][0] == 'l')
            return deadletter_list(argv[3], stdout, stderr); /* 0, or 2 unreadable */
        return deadletter_replay(argv[3], stdout, stderr);   /* 0, or 1 */
    }
    int verify = strcmp(argv[1], "verify") == 0;
    if (!verify && strcmp(argv[1], "inspect") != 0) {
        fprintf(stderr, "hookbridge: unknown spool command '%s' (inspect, verify, drain, "
                        "dead-letters)\n", argv[1]);
        return EXIT_USAGE;
    }
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "-v") == 0 || strcmp(argv[i], "--verbose") == 0)
            verbose = 1;
        else
            dir = argv[i];
    }
    if (!dir) {
        fprintf(stderr, "hookbridge: spool %s needs the spool directory\n", argv[1]);
        return EXIT_USAGE;
    }
    int rc = spool_inspect(dir, verify ? 0 : verbose, stdout);
    return rc; /* 0 good, 1 corruption found, 2 unreadable */
}

typedef struct run_state {
    struct event_base *base;
    bridge_t *bridge;
    int stopping;
    int64_t shutdown_timeout_ms;
} run_state_t;

static void on_stopped(void *arg) {
    run_state_t *rs = arg;
    event_base_loopexit(rs->base, NULL);
}

/* Bounds the wait for answers to reach clients that stopped reading. */
static void on_flush_deadline(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    run_state_t *rs = arg;
    log_warn("main", "some answers were not written out before the stop deadline", NULL);
    event_base_loopexit(rs->base, NULL);
}

/* SIGHUP reloads the config file (bridge.h says what changes and what waits for a restart).
 * Handled inside the loop, between requests, so no request sees half of a swap. */
static void on_sighup(evutil_socket_t sig, short what, void *arg) {
    (void)sig;
    (void)what;
    run_state_t *rs = arg;
    if (rs->stopping) {
        log_warn("main", "SIGHUP ignored: stopping", NULL);
        return;
    }
    bridge_reload(rs->bridge);
}

static void on_signal(evutil_socket_t sig, short what, void *arg) {
    (void)what;
    run_state_t *rs = arg;
    if (rs->stopping) {
        log_warn("main", "second signal: stopping now", "signal", strsignal((int)sig), NULL);
        event_base_loopexit(rs->base, NULL);
        return;
    }
    rs->stopping = 1;
    log_info("main", "stopping: no new connections, finishing in-flight events", "signal",
             strsignal((int)sig), NULL);
    bridge_shutdown(rs->bridge, on_stopped, rs);
    /* The stop's own steps end within the budget (bridge.h); past it and 5 s for answers to
     * reach slow clients, the loop ends anyway. */
    struct timeval tv = {(time_t)(rs->shutdown_timeout_ms / 1000 + 5), 0};
    event_base_once(rs->base, -1, EV_TIMEOUT, on_flush_deadline, rs, &tv);
}

int main(int argc, char **argv) {
    const char *config_path = NULL;
    int check = 0;
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"check-config", no_argument, NULL, 'k'},
        {"print-config-reference", no_argument, NULL, 'r'},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    if (argc > 1 && strcmp(argv[1], "spool") == 0)
        return cmd_spool(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "healthcheck") == 0)
        return probe_main(argc - 1, argv + 1);
    int c;
    while ((c = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'c': config_path = optarg; break;
        case 'k': check = 1; break;
        case 'r': config_print_reference(stdout); return EXIT_OK;
        case 'V': printf("hookbridge %s\n", HB_VERSION); return EXIT_OK;
        case 'h': usage(stdout); return EXIT_OK;
        default: usage(stderr); return EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "hookbridge: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return EXIT_USAGE;
    }
    if (check && !config_path) {
        fprintf(stderr, "hookbridge: --check-config needs --config PATH\n");
        return EXIT_USAGE;
    }
    /* SIGHUP's default action kills. Operators send it routinely (reloads, logrotate), also
     * while the daemon starts or stops: ignored until the loop serves it, and again after
     * (libevent restores this disposition when the signal event goes). */
    signal(SIGHUP, SIG_IGN);
    hb_config_t *cfg = load_config(config_path);
    if (!cfg)
        return EXIT_USAGE;
    if (check) {
        printf("%s: OK\n", config_path);
        config_free(cfg);
        return EXIT_OK;
    }
    log_set_level((log_level_t)cfg->log_level);
    int64_t shutdown_timeout_ms = bridge_stop_budget_ms(cfg);
    signal(SIGPIPE, SIG_IGN);

    int rc = EXIT_RUNTIME;
    char err[1024];
    run_state_t rs = {0};
    struct event *sigterm = NULL, *sigint = NULL, *sighup = NULL;
    rs.shutdown_timeout_ms = shutdown_timeout_ms;
    rs.base = event_base_new();
    if (!rs.base) {
        fprintf(stderr, "hookbridge: cannot create the event loop\n");
        config_free(cfg);
        return EXIT_RUNTIME;
    }
    log_info("main", "starting", "version", HB_VERSION, "config", config_path, NULL);
    /* SIGHUP is caught from before the listeners open (a reload sent as soon as the port
     * answers must not stop the daemon); it is served once the loop runs. SIGTERM and SIGINT
     * keep their default until then: a start can be cut short. */
    sighup = evsignal_new(rs.base, SIGHUP, on_sighup, &rs);
    if (!sighup || event_add(sighup, NULL)) {
        log_error("main", "cannot install signal handlers", NULL);
        goto done;
    }
    /* Before any thread starts (librdkafka's, the HTTP loops, the spool's sync): each inherits
     * the policy of the thread that creates it. */
    if (cfg->process_sched_batch) {
        struct sched_param sp = {.sched_priority = 0};
        if (sched_setscheduler(0, SCHED_BATCH, &sp) != 0)
            log_warn("main", "cannot run under SCHED_BATCH, keeping the default policy", "error",
                     strerror(errno), "option", "process.sched_batch", NULL);
    }
    rs.bridge = bridge_new(rs.base, cfg, err, sizeof err); /* takes cfg */
    cfg = NULL;
    if (!rs.bridge) {
        log_error("main", "cannot start", "reason", err, NULL);
        goto done;
    }
    sigterm = evsignal_new(rs.base, SIGTERM, on_signal, &rs);
    sigint = evsignal_new(rs.base, SIGINT, on_signal, &rs);
    if (!sigterm || !sigint || event_add(sigterm, NULL) || event_add(sigint, NULL)) {
        log_error("main", "cannot install signal handlers", NULL);
        goto done;
    }
    event_base_dispatch(rs.base);
    rc = EXIT_OK;
    log_info("main", "stopped", NULL);
done:
    if (sigterm)
        event_free(sigterm);
    if (sigint)
        event_free(sigint);
    if (sighup)
        event_free(sighup);
    /* Stopping already: a SIGTERM (or SIGINT) sent again while the bridge is freed (a supervisor
     * repeating itself) must not turn a clean stop into a death by signal. Freeing the signal
     * events gave the default dispositions back. */
    if (rc == EXIT_OK) {
        signal(SIGTERM, SIG_IGN);
        signal(SIGINT, SIG_IGN);
    }
    bridge_free(rs.bridge);
    config_free(cfg); /* NULL once bridge_new took it */
    event_base_free(rs.base);
    return rc;
}
