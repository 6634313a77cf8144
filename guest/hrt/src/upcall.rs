//! Upcalls (palacios-hvm.md §2.4, §4.3, §4.4, §7.6): the hypervisor writes a request into the
//! comm page (abi.rs `invoke::CommPage`: every other field, then `seq`, with a barrier) and
//! raises the upcall SGI on the HRT cores it is for; each of them answers with `CallDone`.
//!
//! The IRQ handler only notes that an upcall arrived ([`on_interrupt`]); the request is handled
//! by the core's idle loop ([`Server::run`]), outside the handler, with IRQs unmasked. A
//! request is new when `seq` differs from the last one this core handled, so a repeated SGI is
//! harmless and a core skips the requests sent to the others.
//!
//! | op | sent to | what this core does | answer |
//! |---|---|---|---|
//! | 0x20 invoke | first HRT core | runs the invocation at `arg` (or prints the string there) | `CallDone` |
//! | 0x21 parallel invoke | every HRT core | the same, each core in its own slot | `CallDone` from each |
//! | 0x28 sync setup | first HRT core | checks the channel at `arg`, answers, then polls it | `CallDone` ("sync mode is up") |
//! | 0x29 sync teardown | first HRT core | finishes the call in progress, leaves sync mode | `CallDone` ("left sync mode") |
//! | 0x30 merge | first HRT core | merges the process in the comm page (merge.rs) | `MergeDone` |
//! | 0x31 unmerge | first HRT core | unmerges | `MergeDone` |
//! | 0x51 mirror TLS | first HRT core | keeps the thread registers in the comm page (tls.rs) | `TlsSyncDone` |
//! | 0x53 unmirror TLS | first HRT core | drops them | `TlsSyncDone` |
//! | anything else | - | prints `core N: upcall: op 0x.. not supported` | none |
//!
//! Sync mode is a loop on core 0 rather than an interrupt handler that never returns (the x86
//! design): the SGI respects PSTATE.I and does not nest, so the teardown is an ordinary upcall
//! the loop polls for between calls (§7.6 option 2). Every built-in call is bounded
//! (functions.rs), so a teardown is seen within one call whatever the process does; a CALL_ROS
//! (el0.rs) holds it off until the process's function returns.
//!
//! The merge and the mirrored TLS registers are records every core reads (merge.rs, tls.rs):
//! the first core changes them, the others pick them up before they next run ROS code.

use core::mem::offset_of;
use core::sync::atomic::{fence, AtomicBool, Ordering};

use hvm_ros_lib::abi::invoke::{CommPage, INVOCATION_MAGIC};
use hvm_ros_lib::abi::SubOp;

use crate::boot::BootInfoView;
use crate::console::{println, PrintableIter};
use crate::cpu::{self, MAX_CORES};
use crate::functions::{self, Context};
use crate::guest_ram::GuestRam;
use crate::heartbeat::Heartbeat;
use crate::hvc;
use crate::invocation::{InvocationBlock, SyncChannelBlock};
use crate::merge;
use crate::rosmem::{AddressSpace, PAGE_SIZE};
use crate::tls::{self, ThreadRegisters};

/// The HRT core the single-core requests (invoke, sync setup and teardown, merge and unmerge,
/// TLS mirror and unmirror) go to.
pub const FIRST_CORE: usize = 0;

const INVOKE: u64 = SubOp::Invoke as u64;
const PARALLEL_INVOKE: u64 = SubOp::ParallelInvoke as u64;
const SYNC_SETUP: u64 = SubOp::SyncSetup as u64;
const SYNC_TEARDOWN: u64 = SubOp::SyncTeardown as u64;
const MERGE: u64 = SubOp::Merge as u64;
const UNMERGE: u64 = SubOp::Unmerge as u64;
const MIRROR_TLS: u64 = SubOp::MirrorTls as u64;
const UNMIRROR_TLS: u64 = SubOp::UnmirrorTls as u64;

/// The bytes of an invocation's magic (its first word).
const MAGIC_BYTES: usize = core::mem::size_of::<u64>();

/// Per core: an upcall SGI arrived since the core last looked at the comm page.
static PENDING: [AtomicBool; MAX_CORES] = [const { AtomicBool::new(false) }; MAX_CORES];

/// The IRQ handler's part: note the upcall (Release: nothing of ours to publish, but the flag
/// is read with Acquire).
pub fn on_interrupt(core: usize) {
    if let Some(pending) = PENDING.get(core) {
        pending.store(true, Ordering::Release);
    }
}

/// A request read from the comm page.
#[derive(Clone, Copy, Debug)]
struct Request {
    op: u64,
    arg: u64,
    ros_ttbr0: u64,
    ros_tcr: u64,
    ros_mair: u64,
    ros_asid: u64,
    tpidr_el0: u64,
    tpidrro_el0: u64,
}

/// A sync channel being served, and the address space of the process it belongs to.
struct SyncSession {
    channel: SyncChannelBlock,
    space: AddressSpace,
    /// The process's TTBR0 table base (merge.rs `process_of`).
    process: u64,
    /// The channel lost its magic (see [`SyncChannelBlock::still_valid`]): served no more.
    abandoned: bool,
}

/// One core's upcall server: its idle loop, and on core 0 the heartbeat and sync mode.
pub struct Server {
    boot: BootInfoView,
    core: usize,
    /// HRT RAM, where the comm page is (boot.rs checked it lies there, aligned).
    hrt_ram: GuestRam,
    comm_page: u64,
    /// `seq` of the last request this core looked at.
    last_seq: u64,
    heartbeat: Option<Heartbeat>,
}

impl Server {
    /// Takes the current `seq` as seen: call before `HrtReady`, after which requests come.
    pub fn new(boot: &BootInfoView) -> Self {
        let mut server = Self {
            boot: *boot,
            core: boot.core(),
            hrt_ram: boot.hrt_memory(),
            comm_page: boot.comm_page(),
            last_seq: 0,
            heartbeat: None,
        };
        server.last_seq = server.comm_word(offset_of!(CommPage, seq));
        server
    }

    /// The comm page's word at `offset` (volatile: the hypervisor writes it).
    fn comm_word(&self, offset: usize) -> u64 {
        // Inside HRT RAM and aligned (boot.rs): the read succeeds.
        self.hrt_ram.read_u64(self.comm_page + offset as u64).unwrap_or_default()
    }

    /// The idle loop: waits in WFI (IRQs masked around the check, so an interrupt between the
    /// check and the WFI still wakes it), then serves upcalls and, with `heartbeat`, beats.
    pub fn run(mut self, heartbeat: Option<Heartbeat>) -> ! {
        self.heartbeat = heartbeat;
        cpu::enable_interrupts();
        loop {
            cpu::disable_irqs();
            let beat_due = self.heartbeat.as_ref().is_some_and(Heartbeat::due);
            if !self.upcall_pending() && !beat_due {
                cpu::wait_for_interrupt();
                cpu::enable_irqs();
                continue;
            }
            cpu::enable_irqs();
            self.beat();
            if let Some(request) = self.take_request() {
                if let Some(sync) = self.handle(request) {
                    self.sync_mode(sync);
                }
            }
        }
    }

    fn beat(&mut self) {
        if let Some(heartbeat) = self.heartbeat.as_mut() {
            heartbeat.poll();
        }
    }

    fn upcall_pending(&self) -> bool {
        PENDING[self.core].load(Ordering::Relaxed)
    }

    /// The new request, if an upcall arrived and `seq` moved.
    fn take_request(&mut self) -> Option<Request> {
        // A plain load first: sync mode asks on every turn of its loop.
        if !self.upcall_pending() || !PENDING[self.core].swap(false, Ordering::Acquire) {
            return None;
        }
        let seq = self.comm_word(offset_of!(CommPage, seq));
        if seq == self.last_seq {
            return None;
        }
        self.last_seq = seq;
        // The hypervisor wrote the rest before `seq`; and the ROS wrote the block `arg` names
        // before its call: read them after `seq`.
        fence(Ordering::Acquire);
        Some(Request {
            op: self.comm_word(offset_of!(CommPage, op)),
            arg: self.comm_word(offset_of!(CommPage, arg)),
            ros_ttbr0: self.comm_word(offset_of!(CommPage, ros_ttbr0)),
            ros_tcr: self.comm_word(offset_of!(CommPage, ros_tcr)),
            ros_mair: self.comm_word(offset_of!(CommPage, ros_mair)),
            ros_asid: self.comm_word(offset_of!(CommPage, ros_asid)),
            tpidr_el0: self.comm_word(offset_of!(CommPage, tpidr_el0)),
            tpidrro_el0: self.comm_word(offset_of!(CommPage, tpidrro_el0)),
        })
    }

    /// Handles `request` and answers it (except an op this kernel does not know); a sync
    /// setup that succeeded is returned for the caller to serve.
    fn handle(&mut self, request: Request) -> Option<SyncSession> {
        let core = self.core;
        let for_first_core =
            matches!(request.op, INVOKE | SYNC_SETUP | SYNC_TEARDOWN | MERGE | UNMERGE | MIRROR_TLS | UNMIRROR_TLS);
        if for_first_core && core != FIRST_CORE {
            println!("core {core}: upcall: op {:#x} is for HRT core {FIRST_CORE} only; ignored", request.op);
            return None;
        }
        match request.op {
            INVOKE | PARALLEL_INVOKE => {
                self.invoke(&request);
                answer(core, SubOp::CallDone);
                None
            }
            SYNC_SETUP => {
                let sync = self.sync_setup(&request);
                answer(core, SubOp::CallDone);
                sync
            }
            // Not in sync mode (sync_mode handles its own teardown): after a refused setup the
            // ROS still tears down, and must get its answer.
            SYNC_TEARDOWN => {
                answer(core, SubOp::CallDone);
                None
            }
            MERGE => {
                self.merge(&request);
                answer(core, SubOp::MergeDone);
                None
            }
            UNMERGE => {
                match merge::unmerge() {
                    Some(was) => println!("core {core}: unmerged process {:#x} (ASID {})", was.base, was.asid),
                    None => println!("core {core}: unmerge: no process was merged"),
                }
                answer(core, SubOp::MergeDone);
                None
            }
            MIRROR_TLS => {
                tls::mirror(ThreadRegisters { tpidr_el0: request.tpidr_el0, tpidrro_el0: request.tpidrro_el0 });
                answer(core, SubOp::TlsSyncDone);
                None
            }
            UNMIRROR_TLS => {
                tls::unmirror();
                answer(core, SubOp::TlsSyncDone);
                None
            }
            op => {
                println!("core {core}: upcall: op {op:#x} not supported");
                None
            }
        }
    }

    /// 0x30: merges the process in the comm page, or says why not (answered either way: a
    /// refused merge leaves nothing merged, and CALL_ROS then fails with `WrongState`).
    fn merge(&self, request: &Request) {
        let core = self.core;
        let merge_request = merge::Request {
            ttbr0: request.ros_ttbr0,
            tcr: request.ros_tcr,
            mair: request.ros_mair,
            asid: request.ros_asid,
        };
        match merge::merge(&merge_request, self.boot.ros_ram()) {
            Ok(merged) => println!("core {core}: merged process {:#x} (ASID {})", merged.base, merged.asid),
            Err(refused) => println!(
                "core {core}: merge of process {:#x} refused: {refused}; nothing is merged",
                merge::process_of(request.ros_ttbr0)
            ),
        }
    }

    fn space(&self, request: &Request) -> AddressSpace {
        AddressSpace::new(self.boot.ros_memory(), request.ros_ttbr0, request.ros_tcr)
    }

    /// 0x20 / 0x21: the block at `arg` is an invocation if it starts with its magic, else a
    /// string to print (Palacios' test program; Nautilus prints it).
    fn invoke(&self, request: &Request) {
        let ram = self.boot.ros_memory();
        // Byte by byte: a string need not be aligned.
        let magic = ram
            .chunk(request.arg, MAGIC_BYTES as u64)
            .map(|chunk| u64::from_le_bytes(core::array::from_fn(|at| chunk.byte(at as u64))));
        if magic != Some(INVOCATION_MAGIC) {
            self.print_buffer(ram, request.arg);
            return;
        }
        match InvocationBlock::at(ram, request.arg) {
            Ok(block) => {
                self.run_call(&block, &self.space(request), merge::process_of(request.ros_ttbr0));
                block.mark_done(self.core);
            }
            Err(error) => println!("core {}: upcall: {error}", self.core),
        }
    }

    /// Prints `core N: <string>`: the NUL-terminated string at `ipa`, up to the end of its page
    /// (without a trailing newline of its own).
    fn print_buffer(&self, ram: GuestRam, ipa: u64) {
        let core = self.core;
        let Some(in_ram) = ram.range().bytes_from(ipa) else {
            println!("core {core}: upcall: buffer at IPA {ipa:#x} is not inside ROS RAM");
            return;
        };
        let in_page = PAGE_SIZE - ipa % PAGE_SIZE;
        let Some(chunk) = ram.chunk(ipa, in_ram.min(in_page)) else { return };
        let mut len = chunk.find_nul().unwrap_or(chunk.len());
        if len > 0 && chunk.byte(len - 1) == b'\n' {
            len -= 1;
        }
        println!("core {core}: {}", PrintableIter(chunk.prefix(len).bytes()));
    }

    /// Runs the call in `block` and writes this core's answer (errors are printed).
    fn run_call(&self, block: &InvocationBlock, space: &AddressSpace, process: u64) {
        let function = block.function();
        let context = Context { space, process, core: self.core, counter_frequency: self.boot.counter_frequency() };
        let (status, result) = match functions::call(function, &block.args(), &context) {
            Ok(result) => (0, result),
            Err(error) => {
                println!("core {}: function {function} failed: {error}", self.core);
                (error.status(), error.result())
            }
        };
        block.write_answer(self.core, status, result);
    }

    /// 0x28: the channel at `arg`, if it is one (else says why: the ROS gets its answer all
    /// the same, but no sync mode).
    fn sync_setup(&self, request: &Request) -> Option<SyncSession> {
        match SyncChannelBlock::at(self.boot.ros_memory(), request.arg) {
            Ok(channel) => Some(SyncSession {
                channel,
                space: self.space(request),
                process: merge::process_of(request.ros_ttbr0),
                abandoned: false,
            }),
            Err(error) => {
                println!("core {}: sync setup refused: {error}", self.core);
                None
            }
        }
    }

    /// Sync mode (core 0, after answering the setup): runs each call the process issues on
    /// the channel, until a teardown arrives; answers the teardown on the way out. IRQs stay
    /// unmasked, so the teardown's SGI is taken while polling.
    fn sync_mode(&mut self, mut sync: SyncSession) {
        loop {
            if let Some(request) = self.take_request() {
                if request.op == SYNC_TEARDOWN {
                    break;
                }
                // Anything else is served as in the idle loop; a new setup replaces the channel.
                if let Some(replacement) = self.handle(request) {
                    sync = replacement;
                }
            }
            self.beat();
            if !self.serve_sync_call(&mut sync) {
                core::hint::spin_loop();
            }
        }
        // A call issued before the teardown (by another thread of the process) still gets its
        // answer: the channel is the process's until the teardown is answered.
        self.serve_sync_call(&mut sync);
        answer(self.core, SubOp::CallDone);
    }

    /// Runs the call pending on the channel, if there is one; whether there was. An invocation
    /// without its magic is only completed (nothing runs, nothing is written): Nautilus' sync
    /// mode only counts calls, and Palacios' test program times that round trip.
    fn serve_sync_call(&self, sync: &mut SyncSession) -> bool {
        if sync.abandoned {
            return false;
        }
        if !sync.channel.still_valid() {
            println!("core {}: sync channel lost its magic (its process is gone?): no longer served; a teardown or an HRT reset ends sync mode", self.core);
            sync.abandoned = true;
            return false;
        }
        let Some(issued) = sync.channel.pending_call() else { return false };
        let block = sync.channel.invocation();
        if block.magic() == INVOCATION_MAGIC {
            self.run_call(block, &sync.space, sync.process);
        }
        sync.channel.complete(issued);
        true
    }
}

/// Answers the request this core was handling with `done` (`CallDone`, `MergeDone` or
/// `TlsSyncDone`).
fn answer(core: usize, done: SubOp) {
    if let Err(error) = hvc::answer_upcall(done) {
        println!("core {core}: {done:?} failed: {error}");
    }
}
