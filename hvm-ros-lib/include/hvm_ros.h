/*
 * hvm_ros.h: the hybrid-VM (HVM) API of a ROS (Linux) process, for C programs.
 *
 * Link with libhvm_ros.a (hvm-ros-lib's C API, built by scripts/build-hvm-ros-lib.sh for
 * aarch64-linux-gnu): aarch64-linux-gnu-gcc -static prog.c -L... -lhvm_ros
 *
 * Every function of Palacios' v3_hvm_ros_user.h keeps its name, signature and meaning; they
 * return 0 on success and -1 on failure, setting errno (EBUSY: another transaction in flight or
 * the HRT not ready; ENOSYS: not implemented by this hypervisor yet; EFAULT; EINVAL; ETIMEDOUT;
 * ENODEV: not an HVM; EACCES: not root; EIO: anything else), remembering the precise code for
 * hvm_ros_last_error() and logging a line (standard error unless v3_hvm_ros_user_set_log says
 * otherwise). The calls go through the doorbell page (mapped from /dev/mem: run as root).
 *
 * Differences from Palacios (see hvm-ros-lib/src/capi.rs):
 *  - waits end after a timeout (hvm_ros_set_timeout_ms, default 10 s) instead of never;
 *  - buffers are copied into pinned (page-aligned, locked) pages, because the hypervisor
 *    translates a buffer's address once and the HRT uses that page until the call is over;
 *  - v3_hvm_ros_invoke_hrt_async(buf, par): buf is a struct hvm_invocation (it starts with
 *    HVM_INVOCATION_MAGIC; its results are copied back) or a NUL-terminated string of at most
 *    one page, which the HRT prints (what Palacios' test program passes);
 *  - synchronous mode needs no merge; v3_hvm_ros_invoke_hrt_sync(buf, ...) runs buf if it is a
 *    struct hvm_invocation, and otherwise makes a call the HRT only completes;
 *  - mirror_gdt/unmirror_gdt mirror the TLS registers (TPIDR_EL0, TPIDRRO_EL0) on AArch64;
 *  - every wait services the ROS events the HRT forwards (system calls, page faults) while the
 *    library has a transaction of its own in flight; an HRT exception fails the call it happened
 *    in (hvm_ros_call_ros: HVM_ROS_ERR_EXCEPTION) instead of ending the process, and a page
 *    fault the process cannot resolve is answered -errno instead of a SIGSEGV.
 * After a merge, hvm_ros_call_ros() runs a function of this process in the HRT (at HRT EL0, in
 * the merged address space); hvm_ros_install_and_boot() installs and boots another HRT image.
 */
#ifndef HVM_ROS_H
#define HVM_ROS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#define HVM_ROS_STATIC_ASSERT static_assert
#else
#define HVM_ROS_STATIC_ASSERT _Static_assert
#endif

/* ---- The 0xf00d ABI (hvm-ros-lib/src/abi.rs) ------------------------------------------- */

/* x0 of every call: SMCCC fast call, SMC64, owner 6 (vendor hypervisor), function 0xF00D. */
#define HVM_HCALL_ID 0xC600F00DULL

/* Error codes the hypervisor (or an HRT function, in a status) answers. */
enum hvm_error {
    HVM_OK = 0,
    HVM_ERR_FAILED = -1,
    HVM_ERR_UNKNOWN_SUB_OP = -2,
    HVM_ERR_WRONG_PARTITION = -3,
    HVM_ERR_WRONG_STATE = -4,
    HVM_ERR_BAD_ADDRESS = -5,
    HVM_ERR_INVALID_ARGUMENT = -6,
    HVM_ERR_NOT_HVM = -7,
    HVM_ERR_BUSY = -8,
    HVM_ERR_NOT_IMPLEMENTED = -9,
    HVM_ERR_WRONG_LEVEL = -10,
};

/* The library's own codes of hvm_ros_last_error(). */
#define HVM_ROS_ERR_TIMEOUT (-100)
#define HVM_ROS_ERR_NO_HVM (-101)
#define HVM_ROS_ERR_PIN (-102)
#define HVM_ROS_ERR_NOT_DONE (-103)
#define HVM_ROS_ERR_ARGUMENT (-104)
#define HVM_ROS_ERR_LOST (-105)
#define HVM_ROS_ERR_SYNC_SESSION (-106)
#define HVM_ROS_ERR_EXCEPTION (-107)

/* The VM-wide transaction state (Palacios' trans_state). */
enum hvm_trans_state {
    HVM_STATE_IDLE = 0,
    HVM_STATE_CALL = 1,
    HVM_STATE_PARCALL = 2,
    HVM_STATE_SYNC_SETUP = 3,
    HVM_STATE_SYNC = 4,
    HVM_STATE_SYNC_TEARDOWN = 5,
    HVM_STATE_MERGE = 6,
    HVM_STATE_TLS_SYNC = 7,
};

/* Most HRT cores (one status and result slot each). */
#define HVM_MAX_HRT_CORES 8
/* struct hvm_invocation's magic: "HVMCALL1" little-endian. */
#define HVM_INVOCATION_MAGIC 0x314C4C41434D5648ULL
/* The synchronous channel's magic: "HVMSYNC1" little-endian. */
#define HVM_SYNC_MAGIC 0x31434E59534D5648ULL

/* The HRT's built-in functions (addresses are this process's virtual addresses). */
#define HVM_FN_PRINT 0    /* print the NUL-terminated string at args[0] */
#define HVM_FN_ADD 1      /* args[0] + args[1] (wrapping) */
#define HVM_FN_CHECKSUM 2 /* Fletcher-64 of args[1] bytes at args[0] (hvm_ros_fletcher64) */
#define HVM_FN_SPIN_US 3  /* spin args[0] microseconds (at most 1 s) */
/* Run a function of this process at HRT EL0 in the merged address space: args[0] = its address,
 * args[1] = a stack top (16-byte aligned), args[2..5] = its x0..x3; result = its x0. Status -1:
 * it took an exception, result = the ESR. (hvm_ros_call_ros does all this.) */
#define HVM_FN_CALL_ROS 4
/* The return address (x30) a CALL_ROS function starts with (page 0: the HRT reads its
 * instruction abort as the return). */
#define HVM_ROS_RETURN_ADDRESS 0x8

/* One call of an HRT function; the HRT fills in done, status and result. */
struct hvm_invocation {
    uint64_t magic;    /* HVM_INVOCATION_MAGIC */
    uint64_t function; /* HVM_FN_* */
    uint64_t args[6];
    uint64_t done;                        /* bit n: HRT core n finished */
    int64_t status[HVM_MAX_HRT_CORES];    /* per HRT core: 0 or an enum hvm_error */
    uint64_t result[HVM_MAX_HRT_CORES];   /* per HRT core: the function's result */
};
HVM_ROS_STATIC_ASSERT(sizeof(struct hvm_invocation) == 200, "struct hvm_invocation is 200 bytes");
HVM_ROS_STATIC_ASSERT(offsetof(struct hvm_invocation, done) == 64, "done at 64");
HVM_ROS_STATIC_ASSERT(offsetof(struct hvm_invocation, status) == 72, "status at 72");
HVM_ROS_STATIC_ASSERT(offsetof(struct hvm_invocation, result) == 136, "result at 136");

/* "Exception in the HRT itself" (HRT_EXCEPTION's vector). */
#define HRT_FAIL_VEC 0x1d

/* Palacios' struct v3_ros_event (80 bytes), AArch64 names: pc for rip, far for cr2. */
struct v3_ros_event {
    enum { ROS_NONE = 0, ROS_PAGE_FAULT = 1, ROS_SYSCALL = 2, HRT_EXCEPTION = 3, HRT_THREAD_EXIT = 4, ROS_DONE = 5 }
        event_type;
    uint64_t last_ros_event_result; /* valid when ROS_NONE */
    union {
        struct { /* ROS_PAGE_FAULT */
            uint64_t pc;
            uint64_t far;
            enum { ROS_READ = 0, ROS_WRITE = 1, ROS_EXEC = 2 } action;
        } page_fault;
        struct { /* ROS_SYSCALL: args[0] = aarch64 syscall number (x8), args[1..6] = x0..x5 */
            uint64_t args[8];
        } syscall;
        struct { /* HRT_EXCEPTION: vector = ESR_EL1 (HRT_FAIL_VEC: in the HRT itself) */
            uint64_t pc;
            uint64_t vector;
            uint64_t far;
        } excp;
        struct { /* HRT_THREAD_EXIT */
            uint64_t nktid;
        } thread_exit;
    };
};
HVM_ROS_STATIC_ASSERT(sizeof(struct v3_ros_event) == 80, "struct v3_ros_event is 80 bytes");
HVM_ROS_STATIC_ASSERT(offsetof(struct v3_ros_event, last_ros_event_result) == 8, "result at 8");
HVM_ROS_STATIC_ASSERT(offsetof(struct v3_ros_event, page_fault) == 16, "payload at 16");
HVM_ROS_STATIC_ASSERT(offsetof(struct v3_ros_event, excp.far) == 32, "exception FAR at 32");

/* ---- Palacios' API (v3_hvm_ros_user.h) --------------------------------------------------- */

/* Setup and teardown. Note that there is ONE HRT, hence no naming. init opens the HVM (-1
 * when this is no HVM or the caller is not root) and logs to standard error; deinit ends a
 * synchronous session left open and stops logging. */
int v3_hvm_ros_user_init(void);
int v3_hvm_ros_user_deinit(void);

/* By default, log lines go to standard error; NULL turns them off. */
int v3_hvm_ros_user_set_log(FILE *log);

/* A function the hypervisor invokes to signal this process (an interrupt handler, on the given
 * stack, which is zeroed and locked). The FP/SIMD registers are saved around it. */
int v3_hvm_ros_register_signal(void (*handler)(uint64_t), void *stack, uint64_t stack_size);
int v3_hvm_ros_unregister_signal(void);

/* Replace the HRT image used from the next HRT reset on (does not boot it: reset the HRT, or
 * use hvm_ros_install_and_boot). The hypervisor checks it: a bad image is refused (-1, EINVAL
 * or EFAULT). */
int v3_hvm_ros_install_hrt_image(void *image, uint64_t size);

/* Reset the HRT, the ROS or both; the component reboots at once (no waiting). */
typedef enum { RESET_HRT, RESET_ROS, RESET_BOTH } reset_type;
int v3_hvm_ros_reset(reset_type what);

/* Merge this process's address space into the HRT (the calling thread's translation root),
 * and undo it; both wait until the HRT is done. */
int v3_hvm_ros_merge_address_spaces(void);
int v3_hvm_ros_unmerge_address_spaces(void);

/* Palacios mirrored the GDT and FS base (the x86 TLS pointer) into the HRT; on AArch64 these
 * mirror the TLS registers: fsbase is TPIDR_EL0 (0: this thread's), with this thread's
 * TPIDRRO_EL0 (cpu is ignored). The process's code the HRT runs then sees those thread-locals.
 * unmiror is Palacios' header's spelling. */
int v3_hvm_ros_mirror_gdt(uint64_t fsbase, uint64_t cpu);
int v3_hvm_ros_unmirror_gdt(void);
int v3_hvm_ros_unmiror_gdt(void);
int v3_hvm_ros_mirror_tls(uint64_t tpidr_el0, uint64_t tpidrro_el0, uint64_t cpu);
int v3_hvm_ros_unmirror_tls(void);

/* Asynchronous invocation of the HRT with a buffer: a struct hvm_invocation (copied back with
 * its results; -1 also when it did not run on the cores it should have; a function's own
 * failure is in its status) or a string the HRT prints. With parallel, on every HRT core.
 * Waits until the call is over, handling ROS events meanwhile. The _nowait variant returns at
 * once (0 even if the hypervisor refused, as in Palacios; hvm_ros_last_error() tells); an
 * invocation's results reach buf at the next library call that sees the call over (e.g.
 * hvm_ros_wait_idle()), so buf must live until then. */
int v3_hvm_ros_invoke_hrt_async(void *p, int parallel);
int v3_hvm_ros_invoke_hrt_async_nowait(void *buf, int par);

/* Synchronize with the HRT through a shared channel for synchronous invocations: no hypercall
 * per call; the call always waits (spins). Any parallelism is done inside the HRT. */
int v3_hvm_ros_synchronize(void);
int v3_hvm_ros_invoke_hrt_sync(void *p, int handle_ros_events);
int v3_hvm_ros_desynchronize(void);

/* Handle events occurring within the HRT that need to be handled within the ROS (page faults,
 * system calls, exceptions: an HRT exception is recorded, see hvm_ros_last_exception, and
 * answered -1 with HVM_ROS_ERR_EXCEPTION). The library's waits do this themselves. */
int v3_hvm_handle_ros_event(struct v3_ros_event *event);
int v3_hvm_handle_ros_event_nohcall(struct v3_ros_event *event);

/* Signal the ROS process that registered a handler (the HRT usually does; a ROS process may). */
int v3_hvm_hrt_signal_ros(uint64_t code);

/* ---- hvm-ros-lib's own functions --------------------------------------------------------- */

/* The transaction state (enum hvm_trans_state) and whether the HRT is ready (1) or (re)booting
 * (0); either pointer may be NULL. */
int hvm_ros_state(int *trans_state, int *hrt_ready);
/* Wait until the state is Idle (completes a _nowait invocation). */
int hvm_ros_wait_idle(void);
/* Wait at most timeout_ms until the HRT is ready and idle. */
int hvm_ros_wait_ready(uint64_t timeout_ms);
/* Call an HRT function (HVM_FN_*) with 6 args (NULL: zeros) on the first HRT core; -1 also when
 * the function failed (hvm_ros_last_error() is then its status). */
int hvm_ros_invoke(uint64_t function, const uint64_t *args, uint64_t *result);
/* The same on every HRT core: results[n] = HRT core n's result, *cores = number of HRT cores. */
int hvm_ros_invoke_parallel(uint64_t function, const uint64_t *args, uint64_t *results, uint32_t max_results,
                            uint32_t *cores);
/* The same through the synchronous channel (after v3_hvm_ros_synchronize). */
int hvm_ros_sync_invoke(uint64_t function, const uint64_t *args, uint64_t *result);
/* After a merge: run fn(a0, a1, a2, a3), a function of this process, in the HRT (at HRT EL0)
 * on the stack whose top is stack_top (16-byte aligned, unused meanwhile; NULL: a 256 KiB stack
 * of the library); *result = its return value. Its system calls and page faults are serviced
 * meanwhile. -1 when refused or failed; if it took an exception (hvm_ros_last_error() ==
 * HVM_ROS_ERR_EXCEPTION), *result = its syndrome (ESR) and hvm_ros_last_exception() tells
 * more (the call is over; the next one works). */
int hvm_ros_call_ros(const void *fn, void *stack_top, uint64_t a0, uint64_t a1, uint64_t a2, uint64_t a3,
                     uint64_t *result);
/* The exception behind this thread's last HVM_ROS_ERR_EXCEPTION: ESR_EL1 (EC = bits 31:26),
 * pc and fault address (0 when unknown); -1 when there is none. Pointers may be NULL. */
int hvm_ros_last_exception(uint64_t *esr, uint64_t *pc, uint64_t *far);
/* The ROS events the library serviced so far. */
struct hvm_ros_event_counts {
    uint64_t page_faults;            /* made good */
    uint64_t unresolved_page_faults; /* answered -errno: not mapped with that access */
    uint64_t syscalls;
    uint64_t exceptions;
    uint64_t thread_exits;
};
HVM_ROS_STATIC_ASSERT(sizeof(struct hvm_ros_event_counts) == 40, "struct hvm_ros_event_counts is 40 bytes");
int hvm_ros_event_counts(struct hvm_ros_event_counts *counts);
/* Install an HRT image, reset the HRT and wait at most timeout_ms until the new HRT is ready. */
int hvm_ros_install_and_boot(const void *image, uint64_t size, uint64_t timeout_ms);
/* How long waits last (default 10000 ms). */
void hvm_ros_set_timeout_ms(uint64_t timeout_ms);
/* This thread's last failure: an enum hvm_error, an HVM_ROS_ERR_* code, or 0. */
int64_t hvm_ros_last_error(void);
/* What a code means (a static string). */
const char *hvm_ros_strerror(int64_t code);
/* Fletcher-64, as HVM_FN_CHECKSUM computes it. */
uint64_t hvm_ros_fletcher64(const void *buf, uint64_t len);

#ifdef __cplusplus
}
#endif

#endif /* HVM_ROS_H */
