/*
 * hvbench: the guest side of scripts/guest-bench.sh. One static program, one subcommand per
 * measurement, run by guest/initramfs/tests/bench.sh the same way on plain QEMU and under the
 * hypervisor. Every result is one stdout line
 *
 *     HVBENCH: <metric> <value> <unit>
 *
 * and nothing else goes to stdout; errors go to stderr with a non-zero exit status. Times come
 * from clock_gettime(CLOCK_MONOTONIC).
 *
 *   getppid N        getppid ns         one getppid() system call (through syscall(2), so
 *                                       nothing is cached): an EL0 -> EL1 exception and back
 *   clock N          clock_gettime ns   clock_gettime(CLOCK_MONOTONIC) through the vDSO: no
 *                                       system call, a read of the virtual counter
 *   pipe-same N      pipe_same us       round trip of one byte between a parent and a forked
 *                                       child over two pipes, both pinned to CPU 0: blocking,
 *                                       wake-up and two context switches on one CPU
 *   pipe-cross N     pipe_cross us      the same with the parent on CPU 0 and the child on
 *                                       CPU 1: every wake-up is a cross-CPU IPI. Without a
 *                                       CPU 1 it prints nothing (a note on stderr), status 0
 *   hackbench G L M  hackbench ms       G groups of L sender and L receiver processes; each
 *                                       sender writes M 100-byte messages to every receiver of
 *                                       its group over pipes: scheduler, IPIs, pipe wake-ups
 *   sleep N          sleep_overshoot_p50 us, sleep_overshoot_p99 us
 *                                       how late nanosleep(1 ms) returns, median and 99th
 *                                       percentile of N sleeps: timer interrupt delivery
 *   touch MIB        first_touch ns, retouch ns
 *                                       per 4 KiB page of a fresh MIB MiB anonymous mapping:
 *                                       first write (page fault, zeroing, page-table update),
 *                                       then a second write pass over the mapped pages
 *   cpu N            cpu_loop ms        N rounds of a xorshift generator: pure guest CPU work
 *                                       that should not involve the hypervisor at all
 *   shm-cross N      shm_cross ns       round trip of a counter between two threads pinned to
 *                                       CPUs 0 and 1, spinning on shared memory: no system
 *                                       call, no exit (next to the HVM's sync invocation)
 *   spawn N          process_start us   fork + exec of this static program (`hvbench noop`,
 *                                       which exits at once) + waitpid: a Linux process start,
 *                                       next to which scripts/hvm-bench.sh puts the HRT's boot
 *   noop             (nothing)          exits 0 at once (the program `spawn` starts)
 *
 * Build: aarch64-linux-gnu-gcc -static -O2 (scripts/build-guest-progs.sh).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NS_PER_US 1000.0
#define NS_PER_MS 1000000.0
#define PAGE_BYTES 4096           /* the page size of Debian's arm64 kernel */
#define MESSAGE_BYTES 100         /* hackbench's message size */
#define SLEEP_NS 1000000L         /* the sleep whose overshoot is measured: 1 ms */
#define WARMUP_DIVISOR 10         /* untimed warm-up rounds: a tenth of the timed ones */

static const char *prog = "hvbench";

static void die(const char *what)
{
    fprintf(stderr, "%s: %s: %s\n", prog, what, strerror(errno));
    exit(1);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
        die("clock_gettime");
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void result(const char *metric, double value, const char *unit)
{
    printf("HVBENCH: %s %.3f %s\n", metric, value, unit);
    fflush(stdout);
}

/* A positive decimal count, or exit with a usage error. */
static unsigned long count_arg(const char *s, const char *name)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || end == s || *end || v == 0 || s[0] == '-') {
        fprintf(stderr, "%s: %s must be a positive integer, got '%s'\n", prog, name, s);
        exit(2);
    }
    return v;
}

static void pin_to(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0)
        die("sched_setaffinity");
}

static void write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            die("write");
        p += n;
        len -= (size_t)n;
    }
}

/* Waits for a child; any exit but status 0 is an error. */
static void reap(pid_t pid)
{
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            die("waitpid");
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "%s: child %d failed (wait status 0x%x)\n", prog, (int)pid, status);
        exit(1);
    }
}

static pid_t fork_or_die(void)
{
    fflush(stdout); /* nothing buffered may be printed twice */
    pid_t pid = fork();
    if (pid < 0)
        die("fork");
    return pid;
}

static void bench_getppid(unsigned long n)
{
    for (unsigned long i = 0; i < n / WARMUP_DIVISOR; i++)
        syscall(SYS_getppid);
    uint64_t t0 = now_ns();
    for (unsigned long i = 0; i < n; i++)
        syscall(SYS_getppid);
    result("getppid", (double)(now_ns() - t0) / n, "ns");
}

static void bench_clock(unsigned long n)
{
    struct timespec ts;
    uint64_t t0 = now_ns();
    for (unsigned long i = 0; i < n; i++)
        clock_gettime(CLOCK_MONOTONIC, &ts);
    result("clock_gettime", (double)(now_ns() - t0) / n, "ns");
}

/* Ping-pong of one byte: the parent on CPU 0, the child on `child_cpu`. */
static void bench_pipe(unsigned long n, int child_cpu, const char *metric)
{
    cpu_set_t usable;
    if (sched_getaffinity(0, sizeof usable, &usable) != 0)
        die("sched_getaffinity");
    if (!CPU_ISSET(child_cpu, &usable)) {
        fprintf(stderr, "%s: %s skipped: CPU %d is not online\n", prog, metric, child_cpu);
        return;
    }
    int ping[2], pong[2];
    if (pipe(ping) != 0 || pipe(pong) != 0)
        die("pipe");
    unsigned long warmup = n / WARMUP_DIVISOR, total = warmup + n;
    char byte = 0;
    pid_t pid = fork_or_die();
    if (pid == 0) {
        pin_to(child_cpu);
        for (unsigned long i = 0; i < total; i++) {
            if (read(ping[0], &byte, 1) != 1)
                _exit(1);
            if (write(pong[1], &byte, 1) != 1)
                _exit(1);
        }
        _exit(0);
    }
    pin_to(0);
    uint64_t t0 = 0;
    for (unsigned long i = 0; i < total; i++) {
        if (i == warmup)
            t0 = now_ns();
        write_all(ping[1], &byte, 1);
        if (read(pong[0], &byte, 1) != 1)
            die("read");
    }
    uint64_t t1 = now_ns();
    reap(pid);
    result(metric, (double)(t1 - t0) / n / NS_PER_US, "us");
}

/* A hackbench child: says it is ready, then blocks until the parent closes `start`. */
static void hackbench_wait_for_start(int ready, int start)
{
    char b;
    write_all(ready, "r", 1);
    if (read(start, &b, 1) != 0) /* EOF when the parent closes the write end: go */
        _exit(1);
}

/* Receiver `me` of a group whose pipes are fds[r][0] (read end) / fds[r][1] (write end). It
 * keeps only its own read end, so a sender that dies shows as EOF instead of a hang. */
static _Noreturn void hackbench_receiver(int (*fds)[2], unsigned long per_side,
                                         unsigned long messages, unsigned long me, int ready,
                                         int start)
{
    for (unsigned long r = 0; r < per_side; r++) {
        if (r != me)
            close(fds[r][0]);
        close(fds[r][1]);
    }
    hackbench_wait_for_start(ready, start);
    char buf[PAGE_BYTES];
    uint64_t want = (uint64_t)per_side * messages * MESSAGE_BYTES, got = 0;
    while (got < want) {
        ssize_t k = read(fds[me][0], buf, sizeof buf);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            _exit(1);
        got += (uint64_t)k;
    }
    _exit(0);
}

/* A sender: `messages` rounds of one message to every receiver of its group. Writes of at most
 * PIPE_BUF bytes are atomic, so senders sharing a receiver's pipe never interleave. */
static _Noreturn void hackbench_sender(int (*fds)[2], unsigned long per_side,
                                       unsigned long messages, int ready, int start)
{
    char msg[MESSAGE_BYTES] = {0};
    for (unsigned long r = 0; r < per_side; r++)
        close(fds[r][0]);
    hackbench_wait_for_start(ready, start);
    for (unsigned long m = 0; m < messages; m++)
        for (unsigned long r = 0; r < per_side; r++)
            write_all(fds[r][1], msg, sizeof msg);
    _exit(0);
}

static void bench_hackbench(unsigned long groups, unsigned long per_side, unsigned long messages)
{
    int ready[2], start[2];
    if (pipe(ready) != 0 || pipe(start) != 0)
        die("pipe");
    pid_t *pids = calloc(groups * 2 * per_side, sizeof *pids);
    int (*fds)[2] = calloc(per_side, sizeof *fds);
    if (!pids || !fds)
        die("calloc");
    unsigned long nproc = 0;
    for (unsigned long g = 0; g < groups; g++) {
        /* The group's pipes exist only while its children are forked: no group sees another's. */
        for (unsigned long r = 0; r < per_side; r++)
            if (pipe(fds[r]) != 0)
                die("pipe");
        for (unsigned long i = 0; i < 2 * per_side; i++) {
            pid_t pid = fork_or_die();
            if (pid == 0) {
                close(ready[0]);
                close(start[1]);
                if (i < per_side) /* neither returns */
                    hackbench_receiver(fds, per_side, messages, i, ready[1], start[0]);
                hackbench_sender(fds, per_side, messages, ready[1], start[0]);
            }
            pids[nproc++] = pid;
        }
        for (unsigned long r = 0; r < per_side; r++) {
            close(fds[r][0]);
            close(fds[r][1]);
        }
    }
    close(ready[1]);
    close(start[0]);
    char b;
    for (unsigned long i = 0; i < nproc; i++)
        if (read(ready[0], &b, 1) != 1)
            die("read ready");
    uint64_t t0 = now_ns();
    close(start[1]); /* every child's read(start) returns 0: the load starts */
    for (unsigned long i = 0; i < nproc; i++)
        reap(pids[i]);
    result("hackbench", (double)(now_ns() - t0) / NS_PER_MS, "ms");
    free(pids);
    free(fds);
}

static int compare_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void bench_sleep(unsigned long n)
{
    uint64_t *late = malloc(n * sizeof *late);
    if (!late)
        die("malloc");
    const struct timespec req = {0, SLEEP_NS};
    for (unsigned long i = 0; i < n; i++) {
        uint64_t t0 = now_ns();
        if (nanosleep(&req, NULL) != 0)
            die("nanosleep");
        uint64_t slept = now_ns() - t0;
        late[i] = slept > SLEEP_NS ? slept - SLEEP_NS : 0;
    }
    qsort(late, n, sizeof *late, compare_u64);
    result("sleep_overshoot_p50", late[n * 50 / 100] / NS_PER_US, "us");
    result("sleep_overshoot_p99", late[n * 99 / 100] / NS_PER_US, "us");
    free(late);
}

static void bench_touch(unsigned long mib)
{
    size_t len = (size_t)mib << 20, pages = len / PAGE_BYTES;
    volatile char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        die("mmap");
    /* 4 KiB faults on both sides, whatever the transparent huge page policy says. */
    madvise((void *)p, len, MADV_NOHUGEPAGE);
    uint64_t t0 = now_ns();
    for (size_t i = 0; i < pages; i++)
        p[i * PAGE_BYTES] = 1;
    uint64_t t1 = now_ns();
    for (size_t i = 0; i < pages; i++)
        p[i * PAGE_BYTES] = 2;
    uint64_t t2 = now_ns();
    result("first_touch", (double)(t1 - t0) / pages, "ns");
    result("retouch", (double)(t2 - t1) / pages, "ns");
    munmap((void *)p, len);
}

static void bench_cpu(unsigned long n)
{
    uint64_t x = 0x9E3779B97F4A7C15u; /* any non-zero seed */
    uint64_t t0 = now_ns();
    for (unsigned long i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    uint64_t t1 = now_ns();
    fprintf(stderr, "%s: cpu checksum %016" PRIx64 "\n", prog, x); /* keeps the loop alive */
    result("cpu_loop", (double)(t1 - t0) / NS_PER_MS, "ms");
}

/* shm-cross: the ball the two threads pass; odd values are the partner's turn. */
static _Atomic unsigned long shm_ball;
static unsigned long shm_rounds;

static void *shm_partner(void *unused)
{
    (void)unused;
    pin_to(1);
    for (unsigned long i = 0; i < shm_rounds; i++) {
        unsigned long mine = 2 * i + 1;
        while (atomic_load_explicit(&shm_ball, memory_order_acquire) != mine)
            ;
        atomic_store_explicit(&shm_ball, mine + 1, memory_order_release);
    }
    return NULL;
}

static void bench_shm_cross(unsigned long n)
{
    cpu_set_t usable;
    if (sched_getaffinity(0, sizeof usable, &usable) != 0)
        die("sched_getaffinity");
    if (!CPU_ISSET(1, &usable)) {
        fprintf(stderr, "%s: shm_cross skipped: CPU 1 is not online\n", prog);
        return;
    }
    unsigned long warmup = n / WARMUP_DIVISOR;
    shm_rounds = warmup + n;
    atomic_store(&shm_ball, 0);
    pthread_t partner;
    if (pthread_create(&partner, NULL, shm_partner, NULL) != 0)
        die("pthread_create");
    pin_to(0);
    uint64_t t0 = 0;
    for (unsigned long i = 0; i < shm_rounds; i++) {
        if (i == warmup)
            t0 = now_ns();
        atomic_store_explicit(&shm_ball, 2 * i + 1, memory_order_release);
        while (atomic_load_explicit(&shm_ball, memory_order_acquire) != 2 * i + 2)
            ;
    }
    uint64_t t1 = now_ns();
    pthread_join(partner, NULL);
    result("shm_cross", (double)(t1 - t0) / n, "ns");
}

static void bench_spawn(unsigned long n)
{
    char *const child_argv[] = {"hvbench", "noop", NULL};
    char *const child_env[] = {NULL};
    uint64_t t0 = now_ns();
    for (unsigned long i = 0; i < n; i++) {
        pid_t pid = fork();
        if (pid < 0)
            die("fork");
        if (pid == 0) {
            execve("/proc/self/exe", child_argv, child_env);
            _exit(127);
        }
        int status;
        if (waitpid(pid, &status, 0) != pid)
            die("waitpid");
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "%s: spawned child failed (status %#x)\n", prog, status);
            exit(1);
        }
    }
    result("process_start", (double)(now_ns() - t0) / n / NS_PER_US, "us");
}

static void usage(void)
{
    fprintf(stderr,
            "usage: %s getppid N | clock N | pipe-same N | pipe-cross N | hackbench G L M\n"
            "       | sleep N | touch MIB | cpu N | spawn N | shm-cross N | noop\n",
            prog);
    exit(2);
}

int main(int argc, char **argv)
{
    if (argc < 2)
        usage();
    const char *cmd = argv[1];
    int nargs = argc - 2;
    if (!strcmp(cmd, "noop"))
        return 0;
    if (!strcmp(cmd, "hackbench")) {
        if (nargs != 3)
            usage();
        bench_hackbench(count_arg(argv[2], "G"), count_arg(argv[3], "L"), count_arg(argv[4], "M"));
        return 0;
    }
    if (nargs != 1)
        usage();
    unsigned long n = count_arg(argv[2], "N");
    if (!strcmp(cmd, "getppid"))
        bench_getppid(n);
    else if (!strcmp(cmd, "clock"))
        bench_clock(n);
    else if (!strcmp(cmd, "pipe-same"))
        bench_pipe(n, 0, "pipe_same");
    else if (!strcmp(cmd, "pipe-cross"))
        bench_pipe(n, 1, "pipe_cross");
    else if (!strcmp(cmd, "sleep"))
        bench_sleep(n);
    else if (!strcmp(cmd, "touch"))
        bench_touch(n);
    else if (!strcmp(cmd, "cpu"))
        bench_cpu(n);
    else if (!strcmp(cmd, "spawn"))
        bench_spawn(n);
    else if (!strcmp(cmd, "shm-cross"))
        bench_shm_cross(n);
    else
        usage();
    return 0;
}
