/* hb-wakeup: what it costs this machine to wake a sleeping thread, on the same CPU and across
 * two CPUs. scripts/bench prints it under its table: on a VM the second can be many times the
 * first (an idle vCPU halts, and the wake-up then goes through the hypervisor), and every server
 * that hands work to a thread or process on the other CPU pays it per hand-off.
 *
 *   hb-wakeup [--cpus A,B] [--trips N]
 *
 * Two processes, pinned, pass one byte back and forth over two pipes N times (default 20,000),
 * once with both on CPU A and once with one on A and one on B (default 1,0). Prints
 *   hb-wakeup same_rt_us=.. same_cpu_us=.. cross_rt_us=.. cross_cpu_us=..
 * rt: the wall time of one round trip (two wake-ups); cpu: the CPU time (utime + stime) each
 * side spent per round trip, the mean of the two. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef struct trip_result {
    double rt_us;  /* wall time per round trip */
    double cpu_us; /* CPU time per round trip, mean of the two sides */
} trip_result_t;

static double mono_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static double rusage_us(int who) {
    struct rusage r;
    getrusage(who, &r);
    return (double)(r.ru_utime.tv_sec + r.ru_stime.tv_sec) * 1e6 +
           (double)(r.ru_utime.tv_usec + r.ru_stime.tv_usec);
}

static int pin(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return sched_setaffinity(0, sizeof set, &set);
}

static int xfer(int rfd, int wfd, int read_first) {
    char c = 0;
    if (read_first && read(rfd, &c, 1) != 1) return -1;
    if (write(wfd, &c, 1) != 1) return -1;
    if (!read_first && read(rfd, &c, 1) != 1) return -1;
    return 0;
}

/* trips between a process on cpu_a and one on cpu_b; 0 or -1 with a message on stderr */
static int run_trips(int cpu_a, int cpu_b, long trips, trip_result_t *out) {
    int ping[2] = {-1, -1}, pong[2] = {-1, -1}, rc = -1, status = 0;
    pid_t child = -1;
    double t0, cpu0, cpu_child0;

    if (pipe(ping) != 0 || pipe(pong) != 0) {
        fprintf(stderr, "hb-wakeup: pipe: %s\n", strerror(errno));
        goto done;
    }
    cpu_child0 = rusage_us(RUSAGE_CHILDREN);
    child = fork();
    if (child < 0) {
        fprintf(stderr, "hb-wakeup: fork: %s\n", strerror(errno));
        goto done;
    }
    if (child == 0) {
        close(ping[1]); /* so that each side sees EOF when the other is gone, never a hang */
        close(pong[0]);
        if (pin(cpu_b) != 0) _exit(2);
        for (long i = 0; i < trips; i++)
            if (xfer(ping[0], pong[1], 1) != 0) _exit(3);
        _exit(0);
    }
    close(ping[0]);
    close(pong[1]);
    ping[0] = pong[1] = -1;
    if (pin(cpu_a) != 0) {
        fprintf(stderr, "hb-wakeup: CPU %d: %s\n", cpu_a, strerror(errno));
        goto done;
    }
    t0 = mono_us();
    cpu0 = rusage_us(RUSAGE_SELF);
    for (long i = 0; i < trips; i++) {
        if (xfer(pong[0], ping[1], 0) != 0) {
            fprintf(stderr, "hb-wakeup: the process on CPU %d stopped answering\n", cpu_b);
            goto done;
        }
    }
    out->rt_us = (mono_us() - t0) / (double)trips;
    double self = rusage_us(RUSAGE_SELF) - cpu0;
    if (waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "hb-wakeup: the process on CPU %d failed (status %d)\n", cpu_b, status);
        child = -1;
        goto done;
    }
    child = -1;
    out->cpu_us = (self + rusage_us(RUSAGE_CHILDREN) - cpu_child0) / 2.0 / (double)trips;
    rc = 0;
done:
    if (child > 0) {
        kill(child, SIGKILL);
        waitpid(child, NULL, 0);
    }
    for (int i = 0; i < 2; i++) {
        if (ping[i] >= 0) close(ping[i]);
        if (pong[i] >= 0) close(pong[i]);
    }
    return rc;
}

int main(int argc, char **argv) {
    int cpu_a = 1, cpu_b = 0;
    long trips = 20000;
    trip_result_t same, cross;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--cpus") == 0 && i + 1 < argc) {
            if (sscanf(argv[++i], "%d,%d", &cpu_a, &cpu_b) != 2 || cpu_a < 0 || cpu_b < 0) {
                fprintf(stderr, "hb-wakeup: --cpus needs A,B (CPU numbers)\n");
                return 2;
            }
        } else if (strcmp(argv[i], "--trips") == 0 && i + 1 < argc) {
            trips = strtol(argv[++i], NULL, 10);
            if (trips <= 0) {
                fprintf(stderr, "hb-wakeup: --trips needs a whole number above 0\n");
                return 2;
            }
        } else {
            fprintf(stderr, "usage: hb-wakeup [--cpus A,B] [--trips N]\n");
            return 2;
        }
    }
    signal(SIGPIPE, SIG_IGN); /* a side that is gone shows as EPIPE, not as a silent death */
    if (run_trips(cpu_a, cpu_a, trips, &same) != 0 || run_trips(cpu_a, cpu_b, trips, &cross) != 0)
        return 1;
    printf("hb-wakeup same_rt_us=%.1f same_cpu_us=%.1f cross_rt_us=%.1f cross_cpu_us=%.1f\n",
           same.rt_us, same.cpu_us, cross.rt_us, cross.cpu_us);
    return 0;
}
