/*
 * hvm-test: Palacios' HVM test program (guest/linux/hvm-ros/test.c, Copyright (c) 2015 Peter
 * Dinda) ported to the AArch64 hybrid VM (palacios-hvm.md §5). Same structure and output; the
 * changes:
 *  - #include "hvm_ros.h" (hvm-ros-lib's C API) instead of "v3_hvm_ros_user.h";
 *  - timing with the generic timer's virtual counter (CNTVCT_EL0 at CNTFRQ_EL0 Hz) instead of
 *    rdtsc and a hard-coded 2.1 GHz: "cycles" are counter ticks, and every "Took" line also
 *    gives nanoseconds per iteration;
 *  - every step must work (merges and unmerges included); a failure prints the library's
 *    reason and fails the test; the signal handler registration may be refused ("going on");
 *  - the timed merge loop merges num_merges times (Palacios' repeated merges) and the test
 *    unmerges once at the end, as Palacios' does;
 *  - simple async also runs a function of this process in the HRT while merged
 *    (hvm_ros_call_ros, the CALL_ROS function), which must return its result;
 *  - no division by zero when a count is 0.
 *
 * usage: hvm-test simple|time sync|async [num_merges num_calls]
 * Exit status 0 when every step worked, non-zero otherwise.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hvm_ros.h"

/* The virtual counter (EL0 may read it: Linux sets CNTKCTL_EL1.EL0VCTEN). The isb keeps
 * earlier instructions from being timed after the read. */
static inline uint64_t read_counter(void)
{
    uint64_t ticks;
    __asm__ __volatile__("isb; mrs %0, cntvct_el0" : "=r"(ticks) : : "memory");
    return ticks;
}

static inline uint64_t counter_frequency(void)
{
    uint64_t hz;
    __asm__ __volatile__("mrs %0, cntfrq_el0" : "=r"(hz));
    return hz ? hz : 1;
}

#define rdtscll(val) ((val) = read_counter())

/* Palacios' "Took" line, with the counter's frequency instead of 2.1 GHz, plus ns/iter. */
static void report(unsigned long long start, unsigned long long end, uint64_t iters)
{
    double hz = (double)counter_frequency();
    unsigned long long ticks = end - start;
    unsigned long long per_iter = iters ? ticks / iters : 0;
    double seconds_per_iter = iters ? ((double)ticks / iters) / hz : 0.0;
    printf("Took %llu cycles, %llu cycles/iter, or %lf seconds/iter (%.1f ns/iter; cycles are %llu Hz counter ticks)\n",
           ticks, per_iter, seconds_per_iter, seconds_per_iter * 1e9, (unsigned long long)counter_frequency());
}

/* A merge or unmerge step failed: says why. Returns -1 (the test fails). */
static int merge_step_failed(const char *what)
{
    int saved = errno;
    printf("failed to %s: %s (errno %d: %s)\n", what, hvm_ros_strerror(hvm_ros_last_error()), saved,
           strerror(saved));
    return -1;
}

int simple_test_sync()
{
    char buf[4096];

    memset(buf, 1, 4096);
    memset(buf, 0, 4096);
    strcpy(buf, "hello world\n");

    printf("Merge\n");
    if (v3_hvm_ros_merge_address_spaces()) {
        return merge_step_failed("merge address spaces");
    }

    printf("Synchronize\n");
    if (v3_hvm_ros_synchronize()) {
        printf("failed to synchronize\n");
        return -1;
    }

    printf("Invoke\n");
    if (v3_hvm_ros_invoke_hrt_sync(buf, 0)) {
        printf("failed to invoke HRT\n");
        v3_hvm_ros_desynchronize();
        return -1;
    }

    printf("Desynchonize\n");
    if (v3_hvm_ros_desynchronize()) {
        printf("failed to desynchronize\n");
        return -1;
    }

    printf("Unmerge\n");
    if (v3_hvm_ros_unmerge_address_spaces()) {
        return merge_step_failed("unmerge address spaces");
    }

    printf("Done.\n");

    return 0;
}

/* Palacios' merge timing loop: 0, or -1 when a merge failed. */
static int time_merges(uint64_t num_merge)
{
    unsigned long long start, end, i;

    printf("Executing %lu address space merges\n", num_merge);
    rdtscll(start);
    for (i = 0; i < num_merge; i++) {
        if (v3_hvm_ros_merge_address_spaces()) {
            return merge_step_failed("merge address spaces");
        }
    }
    rdtscll(end);
    report(start, end, num_merge);
    return 0;
}

int timing_test_sync(uint64_t num_merge, uint64_t num_call)
{
    char buf[4096];
    unsigned long long start, end, i;

    memset(buf, 1, 4096);
    memset(buf, 0, 4096);
    strcpy(buf, "hello world\n");

    if (time_merges(num_merge)) {
        return -1;
    }

    printf("Setting up synchronous invocation\n");

    if (v3_hvm_ros_synchronize()) {
        printf("failed to synchronize\n");
        return -1;
    }

    printf("Executing %lu HRT calls synchronously\n", num_call);
    rdtscll(start);
    for (i = 0; i < num_call; i++) {
        if (v3_hvm_ros_invoke_hrt_sync(buf, 0)) {
            printf("failed to invoke HRT (call %llu)\n", i);
            v3_hvm_ros_desynchronize();
            return -1;
        }
    }
    rdtscll(end);
    report(start, end, num_call);

    if (v3_hvm_ros_desynchronize()) {
        printf("failed to desynchronize\n");
        return -1;
    }

    if (v3_hvm_ros_unmerge_address_spaces()) {
        return merge_step_failed("unmerge address spaces");
    }

    return 0;
}

/* Run in the HRT, at EL0, by hvm_ros_call_ros. */
static uint64_t add4(uint64_t a, uint64_t b, uint64_t c, uint64_t d)
{
    return a + b + c + d;
}

int simple_test_async()
{
    uint64_t result = 0;
    char buf[4096];

    memset(buf, 1, 4096);
    memset(buf, 0, 4096);
    strcpy(buf, "hello world\n");

    printf("Merge\n");

    if (v3_hvm_ros_merge_address_spaces()) {
        return merge_step_failed("merge address spaces");
    }

    printf("Invoke\n");

    if (v3_hvm_ros_invoke_hrt_async(buf, 0)) {
        printf("failed to invoke HRT\n");
        return -1;
    }

    printf("Call ROS function\n");

    if (hvm_ros_call_ros((const void *)add4, NULL, 1, 20, 300, 4000, &result) || result != 4321) {
        printf("failed to run a ROS function in the HRT: %s (result %lu)\n", hvm_ros_strerror(hvm_ros_last_error()),
               result);
        return -1;
    }
    printf("ROS function in the HRT returned %lu\n", result);

    printf("Unmerge\n");

    if (v3_hvm_ros_unmerge_address_spaces()) {
        return merge_step_failed("unmerge address spaces");
    }

    printf("Done.\n");

    return 0;
}

int timing_test_async(uint64_t num_merge, uint64_t num_call)
{
    char buf[4096];
    unsigned long long start, end, i;

    memset(buf, 1, 4096);
    memset(buf, 0, 4096);
    strcpy(buf, "hello world\n");

    if (time_merges(num_merge)) {
        return -1;
    }

    printf("Executing %lu HRT calls\n", num_call);
    rdtscll(start);
    for (i = 0; i < num_call; i++) {
        if (v3_hvm_ros_invoke_hrt_async(buf, 0)) {
            printf("failed to invoke HRT (call %llu)\n", i);
            return -1;
        }
    }
    rdtscll(end);
    report(start, end, num_call);

    if (v3_hvm_ros_unmerge_address_spaces()) {
        return merge_step_failed("unmerge address spaces");
    }

    return 0;
}

#define HVM_SIG_STACK_SIZE 8192
static char hvm_sig_stack[HVM_SIG_STACK_SIZE] __attribute__((aligned(4096)));

static void my_hvm_sig_handler(uint64_t code)
{
    printf("HVM Signal Handler Invoked: code=0x%lx\n", code);
}

int main(int argc, char *argv[])
{
    int rc;
    int signal_failed = 0;

    if (argc != 3 && argc != 5) {
        printf("usage: hvm-test simple|time sync|async [num_merges num_calls]\n");
        return -1;
    }

    if (v3_hvm_ros_user_init()) {
        printf("cannot open the HVM: %s\n", hvm_ros_strerror(hvm_ros_last_error()));
        return -1;
    }

    v3_hvm_ros_unregister_signal(); // remove any existing signal handler
    if (v3_hvm_ros_register_signal(my_hvm_sig_handler, hvm_sig_stack, HVM_SIG_STACK_SIZE)) {
        printf("signal handler registration failed (%s), going on\n", hvm_ros_strerror(hvm_ros_last_error()));
    } else if (v3_hvm_hrt_signal_ros(0xf00d)) {
        /* Not in Palacios' test: the process signals itself once ("the ROS can also signal
         * itself"), so the handler's line shows that delivery works. */
        printf("raising a signal failed (%s)\n", hvm_ros_strerror(hvm_ros_last_error()));
        signal_failed = 1;
    }

    if (argv[1][0] == 's') {
        if (argv[2][0] == 's') {
            rc = simple_test_sync();
        } else if (argv[2][0] == 'a') {
            rc = simple_test_async();
        } else {
            printf("Unknown type %s\n", argv[2]);
            rc = -1;
        }
    } else if (argv[1][0] == 't') {
        if (argc != 5) {
            printf("usage: hvm-test time sync|async num_merges num_calls\n");
            rc = -1;
        } else if (argv[2][0] == 's') {
            rc = timing_test_sync(atoi(argv[3]), atoi(argv[4]));
        } else if (argv[2][0] == 'a') {
            rc = timing_test_async(atoi(argv[3]), atoi(argv[4]));
        } else {
            printf("Unknown type %s\n", argv[2]);
            rc = -1;
        }
    } else {
        printf("Unknown mode %s\n", argv[1]);
        rc = -1;
    }

    v3_hvm_ros_unregister_signal();

    v3_hvm_ros_user_deinit();

    if (signal_failed) {
        rc = -1;
    }
    printf("hvm-test: %s\n", rc ? "failed" : "ok");
    return rc ? 1 : 0;
}
