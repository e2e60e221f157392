/* hb-normbench: the normaliser alone, CPU time per body. Runs norm_build over the given bodies
 * round robin, on one thread, for each parser path, and prints the CPU µs per call:
 *
 *   hb-normbench [--iterations N] [--auto-only] BODY.json...
 *     N: rounds of every body (default 20000); --auto-only: the daemon's path only (to profile)
 *
 * scripts/bench measures the whole server; this isolates the normaliser's share, which stays
 * readable on a loaded machine (thread CPU time, not wall time). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "benchfile.h"
#include "normalize.h"
#include "route.h"

static double cpu_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    long rounds = 20000;
    int first = 1, auto_only = 0;
    for (; first < argc; first++) {
        if (strcmp(argv[first], "--iterations") == 0 && first + 1 < argc)
            rounds = atol(argv[++first]);
        else if (strcmp(argv[first], "--auto-only") == 0)
            auto_only = 1;
        else
            break;
    }
    if (first >= argc || rounds <= 0) {
        fprintf(stderr, "Usage: %s [--iterations N] [--auto-only] BODY.json...\n", argv[0]);
        return 2;
    }
    size_t nbodies = (size_t)(argc - first);
    char **bodies = calloc(nbodies, sizeof *bodies);
    size_t *lens = calloc(nbodies, sizeof *lens);
    route_t *r = route_new(NULL);
    if (!bodies || !lens || !r)
        return 1;
    for (size_t i = 0; i < nbodies; i++)
        if (!(bodies[i] = bench_read_file(argv[first + (int)i], &lens[i]))) {
            fprintf(stderr, "hb-normbench: cannot read %s\n", argv[first + (int)i]);
            return 1;
        }
    static const struct {
        norm_path_t path;
        const char *name;
    } paths[] = {{NORM_PATH_AUTO, "auto (the daemon's)"}, {NORM_PATH_JSONC, "json-c only"}};
    for (size_t p = 0; p < (auto_only ? 1 : sizeof paths / sizeof *paths); p++) {
        norm_opts_t o = {.source = "/cloud66", .path = paths[p].path};
        char err[512];
        double t0 = cpu_seconds();
        for (long k = 0; k < rounds; k++) {
            for (size_t i = 0; i < nbodies; i++) {
                msg_t m;
                if (norm_build(&o, r, bodies[i], lens[i], 1767225600123LL, &m, err, sizeof err) !=
                    HB_OK) {
                    fprintf(stderr, "hb-normbench: %s: %s\n", argv[first + (int)i], err);
                    return 1;
                }
                msg_free(&m);
            }
        }
        double us = (cpu_seconds() - t0) * 1e6 / ((double)rounds * (double)nbodies);
        printf("%-20s %.2f µs CPU per body (%zu bodies x %ld rounds)\n", paths[p].name, us,
               nbodies, rounds);
    }
    for (size_t i = 0; i < nbodies; i++)
        free(bodies[i]);
    free(bodies);
    free(lens);
    route_free(r);
    return 0;
}
