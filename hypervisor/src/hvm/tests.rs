use alloc::vec::Vec;

use hvm_ros_lib::abi::hrt_boot::{IMAGE_BASE, LINEAR_MAP_BASE, STACK_SIZE};
use hvm_ros_lib::abi::{HrtBootInfo, HvmError, SubOp, HVM_OK};

use super::boot::{self, BootLayout, GicFrames, HrtImageError, PAGE_SIZE};
use super::*;
use crate::mm::MemRange;

const FREQ: u64 = 62_500_000;
const ROS_PROCESS: Caller = Caller::ros(Level::El0);
const ROS_KERNEL: Caller = Caller::ros(Level::El1);
const HRT0: Caller = Caller::hrt(Level::El1, 0);
const HRT1: Caller = Caller::hrt(Level::El1, 1);
const HRT_USER: Caller = Caller::hrt(Level::El0, 0);

fn code(error: HvmError) -> u64 {
    error.code()
}

fn all_sub_ops() -> Vec<SubOp> {
    (0..0x100).filter_map(SubOp::from_code).collect()
}

#[test]
fn null_answers_everyone_but_hrt_user_code_with_the_time_since_hrt_boot() {
    let mut hvm = HvmState::new(1, FREQ, 1000);
    for caller in [ROS_PROCESS, ROS_KERNEL, HRT0] {
        let reply = hvm.handle(caller, SubOp::Null as u64, None, 1000 + FREQ / 1000);
        assert_eq!(reply.regs, [HVM_OK, 1_000_000, FREQ / 1000, 0], "{caller:?}");
        assert_eq!(reply.effect, Effect::None);
    }
    assert_eq!(hvm.handle(HRT_USER, 0, None, 0).regs[0], code(HvmError::WrongLevel));
}

#[test]
fn unknown_sub_ops_are_refused_without_effect() {
    let mut hvm = HvmState::new(1, FREQ, 0);
    for unknown in [0x4, 0x42, 0x50, 0xff, u64::MAX] {
        let reply = hvm.handle(ROS_PROCESS, unknown, None, 0);
        assert_eq!(reply, Reply::error(HvmError::UnknownSubOp));
    }
}

#[test]
fn resets_come_from_the_ros_only() {
    for (op, effect) in [
        (SubOp::ResetRos, Effect::ResetRos),
        (SubOp::ResetHrt, Effect::ResetHrt),
        (SubOp::ResetBoth, Effect::ResetBoth),
    ] {
        let mut hvm = HvmState::new(2, FREQ, 0);
        for caller in [ROS_PROCESS, ROS_KERNEL] {
            assert_eq!(hvm.handle(caller, op as u64, None, 0), Reply::ok(effect));
        }
        assert_eq!(hvm.handle(HRT0, op as u64, None, 0), Reply::error(HvmError::WrongPartition));
        assert_eq!(hvm.handle(HRT_USER, op as u64, None, 0), Reply::error(HvmError::WrongLevel));
    }
}

#[test]
fn the_hrt_is_ready_when_every_core_reported_once() {
    let mut hvm = HvmState::new(2, FREQ, 100);
    let ready = SubOp::HrtReady as u64;
    assert_eq!(hvm.handle(ROS_PROCESS, ready, None, 0), Reply::error(HvmError::WrongPartition));
    assert_eq!(hvm.handle(HRT0, ready, None, 150), Reply::ok(Effect::None));
    assert_eq!(hvm.handle(HRT0, ready, None, 160), Reply::error(HvmError::WrongState), "twice");
    assert!(matches!(hvm.hrt_status(), HrtStatus::Booting { .. }));
    assert_eq!(hvm.handle(HRT1, ready, None, 300), Reply::ok(Effect::HrtReady { cores: 2, boot_ticks: 200 }));
    assert_eq!(hvm.hrt_status(), HrtStatus::Ready { started: 100, boot_ticks: 200 });
    assert_eq!(hvm.handle(HRT1, ready, None, 400), Reply::error(HvmError::WrongState), "already ready");
    let ghost = Caller::hrt(Level::El1, 5);
    let mut fresh = HvmState::new(2, FREQ, 0);
    assert_eq!(fresh.handle(ghost, ready, None, 0), Reply::error(HvmError::WrongState), "no such core");
}

#[test]
fn an_hrt_reboot_clears_every_piece_of_state() {
    let mut hvm = HvmState::new(1, FREQ, 0);
    hvm.handle(HRT0, SubOp::HrtReady as u64, None, 10);
    hvm.hrt_boot_started(500);
    assert_eq!(hvm.hrt_status(), HrtStatus::Booting { started: 500, ready_cores: 0 });
    assert_eq!(hvm.trans_state(), hvm_ros_lib::abi::TransState::Idle);
    assert_eq!(hvm.handle(ROS_PROCESS, 0, None, 500 + FREQ).regs[1], 1_000_000_000);
}

#[test]
fn every_sub_op_in_every_state_answers_a_code_and_only_allowed_ones_change_anything() {
    for caller in [ROS_PROCESS, ROS_KERNEL, HRT0, HRT_USER] {
        for ready in [false, true] {
            for op in all_sub_ops() {
                let mut hvm = HvmState::new(1, FREQ, 0);
                if ready {
                    hvm.handle(HRT0, SubOp::HrtReady as u64, None, 5);
                }
                let before = (hvm.trans_state(), hvm.hrt_status());
                let reply = hvm.handle(caller, op as u64, Some(0x4000_1000), 10);
                let allowed = check_caller(op, caller).is_ok();
                if !allowed {
                    assert!(reply.regs[0] as i64 <= -1, "{op:?} from {caller:?} must fail");
                    assert_eq!(reply.effect, Effect::None);
                    assert_eq!((hvm.trans_state(), hvm.hrt_status()), before, "{op:?} from {caller:?} changed state");
                }
                if reply.regs[0] != HVM_OK {
                    assert_eq!(reply.effect, Effect::None, "{op:?}: an error has no effect");
                }
            }
        }
    }
}

#[test]
fn process_only_sub_ops_refuse_the_ros_kernel_and_hrt_answers_refuse_the_ros() {
    assert_eq!(check_caller(SubOp::Merge, ROS_KERNEL), Err(HvmError::WrongLevel));
    assert_eq!(check_caller(SubOp::Invoke, HRT0), Err(HvmError::WrongPartition));
    assert_eq!(check_caller(SubOp::CallDone, ROS_PROCESS), Err(HvmError::WrongPartition));
    assert_eq!(check_caller(SubOp::CallDone, HRT0), Ok(()));
    assert_eq!(check_caller(SubOp::InstallHrtImage, ROS_PROCESS), Ok(()));
    assert_eq!(check_caller(SubOp::RaiseSignal, HRT0), Ok(()));
}

// ---- invocations ----

const BUFFER: u64 = 0x4123_4000;

/// A hybrid VM with `cores` HRT cores, all ready.
fn ready(cores: usize) -> HvmState {
    let mut hvm = HvmState::new(cores, FREQ, 0);
    for core in 0..cores {
        hvm.handle(Caller::hrt(Level::El1, core), SubOp::HrtReady as u64, None, 1);
    }
    assert!(matches!(hvm.hrt_status(), HrtStatus::Ready { .. }));
    hvm
}

fn call(hvm: &mut HvmState, caller: Caller, op: SubOp, buffer: Option<u64>) -> Reply {
    hvm.handle(caller, op as u64, buffer, 100)
}

fn state(hvm: &mut HvmState) -> (u64, u64) {
    let regs = call(hvm, ROS_PROCESS, SubOp::GetStateAndEvent, None).regs;
    (regs[0], regs[1])
}

#[test]
fn an_async_invocation_upcalls_the_first_core_and_ends_with_its_answer() {
    let mut hvm = ready(2);
    let reply = call(&mut hvm, ROS_PROCESS, SubOp::Invoke, Some(BUFFER));
    assert_eq!(reply, Reply::ok(Effect::Upcall { op: SubOp::Invoke, buffer: BUFFER, cores: 1 }));
    assert_eq!(state(&mut hvm), (TransState::Call as u64, 1));
    assert_eq!(call(&mut hvm, ROS_PROCESS, SubOp::Invoke, Some(BUFFER)), Reply::error(HvmError::WrongState), "busy");
    assert_eq!(call(&mut hvm, HRT1, SubOp::CallDone, None), Reply::error(HvmError::WrongState), "core 1 was not asked");
    assert_eq!(call(&mut hvm, HRT0, SubOp::CallDone, None), Reply::ok(Effect::None));
    assert_eq!(state(&mut hvm), (TransState::Idle as u64, 1));
    assert_eq!(call(&mut hvm, HRT0, SubOp::CallDone, None), Reply::error(HvmError::WrongState), "a late answer");
}

#[test]
fn a_parallel_invocation_waits_for_every_core_once() {
    let mut hvm = ready(3);
    let reply = call(&mut hvm, ROS_PROCESS, SubOp::ParallelInvoke, Some(BUFFER));
    assert_eq!(reply, Reply::ok(Effect::Upcall { op: SubOp::ParallelInvoke, buffer: BUFFER, cores: 0b111 }));
    for core in [2, 0] {
        assert_eq!(call(&mut hvm, Caller::hrt(Level::El1, core), SubOp::CallDone, None), Reply::ok(Effect::None));
        assert_eq!(state(&mut hvm).0, TransState::ParCall as u64);
    }
    assert_eq!(call(&mut hvm, HRT0, SubOp::CallDone, None), Reply::error(HvmError::WrongState), "core 0 twice");
    assert_eq!(call(&mut hvm, HRT1, SubOp::CallDone, None), Reply::ok(Effect::None));
    assert_eq!(state(&mut hvm).0, TransState::Idle as u64);
}

#[test]
fn invocations_need_a_ready_hrt_a_translated_buffer_and_a_process() {
    let mut booting = HvmState::new(1, FREQ, 0);
    assert_eq!(call(&mut booting, ROS_PROCESS, SubOp::Invoke, Some(BUFFER)), Reply::error(HvmError::WrongState));
    assert_eq!(state(&mut booting), (TransState::Idle as u64, 0), "not ready");
    let mut hvm = ready(1);
    assert_eq!(call(&mut hvm, ROS_PROCESS, SubOp::Invoke, None), Reply::error(HvmError::BadAddress));
    assert_eq!(call(&mut hvm, ROS_KERNEL, SubOp::Invoke, Some(BUFFER)), Reply::error(HvmError::WrongLevel));
    assert_eq!(call(&mut hvm, HRT0, SubOp::Invoke, Some(BUFFER)), Reply::error(HvmError::WrongPartition));
    assert_eq!(state(&mut hvm).0, TransState::Idle as u64, "nothing started");
}

#[test]
fn the_sync_channel_is_set_up_used_and_torn_down() {
    let mut hvm = ready(2);
    let setup = call(&mut hvm, ROS_PROCESS, SubOp::SyncSetup, Some(BUFFER));
    assert_eq!(setup, Reply::ok(Effect::Upcall { op: SubOp::SyncSetup, buffer: BUFFER, cores: 1 }));
    assert_eq!(call(&mut hvm, ROS_PROCESS, SubOp::SyncTeardown, Some(BUFFER)), Reply::error(HvmError::WrongState));
    call(&mut hvm, HRT0, SubOp::CallDone, None);
    assert_eq!(state(&mut hvm).0, TransState::Sync as u64);
    assert_eq!(call(&mut hvm, ROS_PROCESS, SubOp::Invoke, Some(BUFFER)), Reply::error(HvmError::WrongState));
    assert_eq!(
        call(&mut hvm, ROS_PROCESS, SubOp::SyncTeardown, Some(BUFFER + 0x1000)),
        Reply::error(HvmError::InvalidArgument)
    );
    let teardown = call(&mut hvm, ROS_PROCESS, SubOp::SyncTeardown, Some(BUFFER));
    assert_eq!(teardown, Reply::ok(Effect::Upcall { op: SubOp::SyncTeardown, buffer: BUFFER, cores: 1 }));
    assert_eq!(state(&mut hvm).0, TransState::SyncTeardown as u64);
    call(&mut hvm, HRT0, SubOp::CallDone, None);
    assert_eq!(state(&mut hvm).0, TransState::Idle as u64);
    // And async again.
    assert!(matches!(call(&mut hvm, ROS_PROCESS, SubOp::Invoke, Some(BUFFER)).effect, Effect::Upcall { .. }));
}

#[test]
fn an_hrt_reset_recovers_from_a_request_in_flight_and_refuses_its_late_answer() {
    let mut hvm = ready(2);
    call(&mut hvm, ROS_PROCESS, SubOp::ParallelInvoke, Some(BUFFER));
    hvm.hrt_boot_started(200);
    assert_eq!(state(&mut hvm), (TransState::Idle as u64, 0), "idle, the HRT booting");
    assert_eq!(call(&mut hvm, HRT0, SubOp::CallDone, None), Reply::error(HvmError::WrongState));
    assert_eq!(
        call(&mut hvm, ROS_PROCESS, SubOp::Invoke, Some(BUFFER)),
        Reply::error(HvmError::WrongState),
        "not ready yet"
    );
    for core in 0..2 {
        call(&mut hvm, Caller::hrt(Level::El1, core), SubOp::HrtReady, None);
    }
    assert!(matches!(call(&mut hvm, ROS_PROCESS, SubOp::Invoke, Some(BUFFER)).effect, Effect::Upcall { .. }));
}

#[test]
fn the_state_query_writes_the_event_when_given_a_buffer() {
    let mut hvm = ready(1);
    let reply = call(&mut hvm, ROS_PROCESS, SubOp::GetStateAndEvent, Some(BUFFER));
    assert_eq!(reply.effect, Effect::WriteEvent { buffer: BUFFER, event: [0; events::EVENT_SIZE] });
    assert_eq!(reply.regs[..2], [TransState::Idle as u64, 1]);
    assert_eq!(call(&mut hvm, HRT0, SubOp::GetStateAndEvent, None).regs[0], TransState::Idle as u64);
}

// ---- merge, TLS, events, image install ----

const TTBR0: u64 = 0x4567_8000;

fn request(hvm: &mut HvmState, caller: Caller, op: SubOp, request: Request) -> Reply {
    hvm.handle_request(caller, op as u64, request, 100)
}

#[test]
fn a_merge_and_an_unmerge_go_through_the_first_hrt_core() {
    let mut hvm = ready(2);
    let merge = request(&mut hvm, ROS_PROCESS, SubOp::Merge, Request { ttbr0: TTBR0, ..Request::default() });
    assert_eq!(merge, Reply::ok(Effect::Upcall { op: SubOp::Merge, buffer: 0, cores: 1 }));
    assert_eq!(state(&mut hvm).0, TransState::Merge as u64);
    assert_eq!(hvm.merged(), None, "not before the HRT answered");
    assert_eq!(call(&mut hvm, HRT1, SubOp::MergeDone, None), Reply::error(HvmError::WrongState));
    assert_eq!(call(&mut hvm, HRT0, SubOp::MergeDone, None), Reply::ok(Effect::MergeChanged { merged: Some(TTBR0) }));
    assert_eq!((state(&mut hvm).0, hvm.merged()), (TransState::Idle as u64, Some(TTBR0)));
    assert_eq!(call(&mut hvm, HRT0, SubOp::MergeDone, None), Reply::error(HvmError::WrongState), "twice");
    assert_eq!(call(&mut hvm, ROS_KERNEL, SubOp::Merge, None), Reply::error(HvmError::WrongLevel));
    call(&mut hvm, ROS_PROCESS, SubOp::Unmerge, None);
    assert_eq!(call(&mut hvm, HRT0, SubOp::MergeDone, None), Reply::ok(Effect::MergeChanged { merged: None }));
    assert_eq!(hvm.merged(), None);
    // An HRT reset forgets a merge.
    request(&mut hvm, ROS_PROCESS, SubOp::Merge, Request { ttbr0: TTBR0, ..Request::default() });
    call(&mut hvm, HRT0, SubOp::MergeDone, None);
    hvm.hrt_boot_started(500);
    assert_eq!(hvm.merged(), None);
}

#[test]
fn the_tls_mirror_is_a_single_core_request() {
    let mut hvm = ready(1);
    for op in [SubOp::MirrorTls, SubOp::UnmirrorTls] {
        assert!(matches!(call(&mut hvm, ROS_PROCESS, op, None).effect, Effect::Upcall { cores: 1, .. }));
        assert_eq!(state(&mut hvm).0, TransState::TlsSync as u64);
        assert_eq!(call(&mut hvm, ROS_PROCESS, SubOp::Invoke, Some(BUFFER)), Reply::error(HvmError::WrongState));
        assert_eq!(call(&mut hvm, HRT0, SubOp::TlsSyncDone, None), Reply::ok(Effect::None));
        assert_eq!(state(&mut hvm).0, TransState::Idle as u64);
    }
    assert_eq!(call(&mut hvm, HRT0, SubOp::TlsSyncDone, None), Reply::error(HvmError::WrongState));
}

#[test]
fn events_flow_from_the_hrt_to_the_process_and_back() {
    let mut hvm = ready(1);
    let mut syscall = [0u8; events::EVENT_SIZE];
    syscall[..4].copy_from_slice(&(hvm_ros_lib::abi::RosEventType::Syscall as u32).to_le_bytes());
    let post = Request { buffer: Some(BUFFER), event: Some(syscall), ..Request::default() };
    assert_eq!(request(&mut hvm, ROS_PROCESS, SubOp::PostRosEvent, post), Reply::error(HvmError::WrongPartition));
    assert_eq!(
        request(&mut hvm, HRT0, SubOp::PostRosEvent, Request { event: None, ..post }),
        Reply::error(HvmError::BadAddress)
    );
    assert_eq!(request(&mut hvm, HRT0, SubOp::PostRosEvent, post), Reply::ok(Effect::None));
    assert_eq!(request(&mut hvm, HRT0, SubOp::PostRosEvent, post), Reply::error(HvmError::Busy));
    let seen = call(&mut hvm, ROS_PROCESS, SubOp::GetStateAndEvent, Some(BUFFER));
    assert_eq!(seen.effect, Effect::WriteEvent { buffer: BUFFER, event: syscall });
    let done = Request { args: [172, 0, 0, 0, 0, 0], ..Request::default() };
    assert_eq!(request(&mut hvm, HRT0, SubOp::EventComplete, done), Reply::error(HvmError::WrongPartition));
    assert_eq!(request(&mut hvm, ROS_PROCESS, SubOp::EventComplete, done), Reply::ok(Effect::None));
    let Effect::WriteEvent { event, .. } = call(&mut hvm, HRT0, SubOp::GetStateAndEvent, Some(BUFFER)).effect else {
        panic!("the HRT reads the event too");
    };
    assert_eq!(event[..4], (hvm_ros_lib::abi::RosEventType::Done as u32).to_le_bytes());
    assert_eq!(event[8..16], 172u64.to_le_bytes());
    assert_eq!(call(&mut hvm, ROS_PROCESS, SubOp::AckEventResult, None), Reply::error(HvmError::WrongPartition));
    assert_eq!(call(&mut hvm, HRT0, SubOp::AckEventResult, None), Reply::ok(Effect::None));
    assert_eq!(call(&mut hvm, HRT0, SubOp::AckEventResult, None), Reply::error(HvmError::WrongState));
}

#[test]
fn an_image_install_is_a_process_request_with_an_address_and_a_size() {
    let mut hvm = ready(1);
    let install = Request { args: [0x7000_0000, 0x2_0000, 0, 0, 0, 0], ..Request::default() };
    let reply = request(&mut hvm, ROS_PROCESS, SubOp::InstallHrtImage, install);
    assert_eq!(reply, Reply::ok(Effect::InstallImage { va: 0x7000_0000, size: 0x2_0000 }));
    assert_eq!(request(&mut hvm, ROS_KERNEL, SubOp::InstallHrtImage, install), Reply::error(HvmError::WrongLevel));
    assert_eq!(request(&mut hvm, HRT0, SubOp::InstallHrtImage, install), Reply::error(HvmError::WrongPartition));
    let empty = Request { args: [0x7000_0000, 0, 0, 0, 0, 0], ..Request::default() };
    assert_eq!(request(&mut hvm, ROS_PROCESS, SubOp::InstallHrtImage, empty), Reply::error(HvmError::InvalidArgument));
}

// ---- HRT image and boot state ----

const ROS_RAM: MemRange = MemRange::new(0x4000_0000, 256 << 20);
const HRT_RAM: MemRange = MemRange::new(0x5000_0000, 64 << 20);

/// A minimal AArch64 ELF executable: one PT_LOAD of `code` at `vaddr` (flags R+X), plus
/// `bss` zero bytes, entry `entry`.
fn elf(vaddr: u64, code: &[u8], bss: u64, entry: u64) -> Vec<u8> {
    const EHDR: usize = 64;
    const PHDR: usize = 56;
    let mut file = alloc::vec![0u8; EHDR + PHDR];
    file[..4].copy_from_slice(b"\x7fELF");
    file[4] = 2; // 64-bit
    file[5] = 1; // little-endian
    file[6] = 1; // version
    file[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    file[18..20].copy_from_slice(&183u16.to_le_bytes()); // EM_AARCH64
    file[20..24].copy_from_slice(&1u32.to_le_bytes());
    file[24..32].copy_from_slice(&entry.to_le_bytes());
    file[32..40].copy_from_slice(&(EHDR as u64).to_le_bytes()); // e_phoff
    file[52..54].copy_from_slice(&(EHDR as u16).to_le_bytes());
    file[54..56].copy_from_slice(&(PHDR as u16).to_le_bytes());
    file[56..58].copy_from_slice(&1u16.to_le_bytes()); // e_phnum
    let ph = EHDR;
    let offset = (EHDR + PHDR) as u64;
    file[ph..ph + 4].copy_from_slice(&1u32.to_le_bytes()); // PT_LOAD
    file[ph + 4..ph + 8].copy_from_slice(&5u32.to_le_bytes()); // R + X
    file[ph + 8..ph + 16].copy_from_slice(&offset.to_le_bytes());
    file[ph + 16..ph + 24].copy_from_slice(&vaddr.to_le_bytes());
    file[ph + 24..ph + 32].copy_from_slice(&vaddr.to_le_bytes());
    file[ph + 32..ph + 40].copy_from_slice(&(code.len() as u64).to_le_bytes());
    file[ph + 40..ph + 48].copy_from_slice(&(code.len() as u64 + bss).to_le_bytes());
    file.extend_from_slice(code);
    file
}

#[test]
fn a_good_image_is_placed_from_the_start_of_hrt_ram() {
    let file = elf(IMAGE_BASE + 0x1000, &[0xd5, 0x03, 0x20, 0x1f], 0x2000, IMAGE_BASE + 0x1000);
    let image = boot::parse_image(&file).unwrap();
    assert_eq!(image.entry, IMAGE_BASE + 0x1000);
    assert_eq!(image.segments.len(), 1);
    assert_eq!(image.segments[0].offset, 0x1000);
    assert_eq!(image.segments[0].bytes, &[0xd5, 0x03, 0x20, 0x1f]);
    assert_eq!(image.span, 0x1000 + 4 + 0x2000);
}

#[test]
fn bad_images_are_refused_never_trusted() {
    let code = [0u8; 16];
    assert!(matches!(boot::parse_image(b"not an elf"), Err(HrtImageError::NotAarch64Elf(_))));
    assert!(matches!(boot::parse_image(&elf(0x40_0000, &code, 0, 0x40_0000)), Err(HrtImageError::BadSegment { .. })));
    assert_eq!(
        boot::parse_image(&elf(IMAGE_BASE, &code, 0, IMAGE_BASE + 16)),
        Err(HrtImageError::BadEntry(IMAGE_BASE + 16))
    );
    assert!(matches!(
        boot::parse_image(&elf(u64::MAX - 8, &code, 0, u64::MAX - 8)),
        Err(HrtImageError::BadSegment { .. })
    ));
    let mut truncated = elf(IMAGE_BASE, &code, 0, IMAGE_BASE);
    truncated.truncate(truncated.len() - 8);
    assert!(matches!(boot::parse_image(&truncated), Err(HrtImageError::BadSegment { .. })));
    let mut x86 = elf(IMAGE_BASE, &code, 0, IMAGE_BASE);
    x86[18] = 62;
    assert!(matches!(boot::parse_image(&x86), Err(HrtImageError::NotAarch64Elf(_))));
    // Every truncation of a good image is refused cleanly or parsed, never a panic.
    let good = elf(IMAGE_BASE, &code, 0, IMAGE_BASE);
    for len in 0..good.len() {
        let _ = boot::parse_image(&good[..len]);
    }
}

#[test]
fn the_boot_state_sits_at_the_top_of_hrt_ram_above_the_free_memory() {
    let layout = BootLayout::new(ROS_RAM, HRT_RAM, 2, 0x5_0000).unwrap();
    assert_eq!(layout.comm_page, HRT_RAM.end() - PAGE_SIZE);
    assert_eq!(layout.boot_info, layout.comm_page - PAGE_SIZE);
    assert_eq!(layout.tables.end(), layout.boot_info);
    assert_eq!(layout.stacks.end(), layout.tables.start);
    assert_eq!(layout.stacks.size, 2 * STACK_SIZE);
    assert_eq!(layout.free, MemRange::new(HRT_RAM.start + 0x5_0000, layout.stacks.start - HRT_RAM.start - 0x5_0000));
    assert_eq!(layout.stack_top_va(1), LINEAR_MAP_BASE + layout.tables.start);
    assert!(matches!(BootLayout::new(ROS_RAM, HRT_RAM, 2, HRT_RAM.size), Err(HrtImageError::TooBig { .. })));
}

/// Walks the tables like the MMU (TTBR1, 4 KiB granule, 48-bit VA): the output address and
/// the leaf descriptor of `va`.
fn walk(pages: &[boot::TablePage], va: u64) -> Option<(u64, u64)> {
    let mut table = &pages[0];
    for (level, shift) in [(0, 39u32), (1, 30), (2, 21)] {
        let entry = table.entries[((va >> shift) & 511) as usize];
        match entry & 0b11 {
            0b11 if level < 2 => {
                let next = entry & 0x0000_ffff_ffff_f000;
                table = pages.iter().find(|p| p.ipa == next)?;
            }
            0b01 if level > 0 => {
                let block = 1u64 << shift;
                return Some(((entry & 0x0000_ffff_ffff_f000 & !(block - 1)) + (va & (block - 1)), entry));
            }
            _ => return None,
        }
    }
    None
}

#[test]
fn the_tables_map_the_linear_window_and_the_image_window() {
    let layout = BootLayout::new(ROS_RAM, HRT_RAM, 1, 0x10_0000).unwrap();
    let pages = boot::build_tables(&layout);
    assert!(pages.len() as u64 * PAGE_SIZE <= layout.tables.size);
    assert_eq!(pages[0].ipa, layout.root_table());
    // ROS and HRT RAM in the linear map, not executable.
    for ipa in [ROS_RAM.start, ROS_RAM.end() - 8, HRT_RAM.start + 0x12345, HRT_RAM.end() - 8] {
        let (out, leaf) = walk(&pages, LINEAR_MAP_BASE + ipa).unwrap();
        assert_eq!(out, ipa);
        assert_ne!(leaf & (1 << 53), 0, "linear RAM is PXN");
    }
    assert!(walk(&pages, LINEAR_MAP_BASE + HRT_RAM.end()).is_none(), "nothing above HRT RAM");
    assert!(walk(&pages, LINEAR_MAP_BASE + ROS_RAM.start - 0x20_0000).is_some(), "device space (1 GiB block)");
    // The image window: HRT RAM from its start, executable at EL1.
    let (out, leaf) = walk(&pages, IMAGE_BASE + 0x4321).unwrap();
    assert_eq!(out, HRT_RAM.start + 0x4321);
    assert_eq!(leaf & (1 << 53), 0);
    assert!(walk(&pages, IMAGE_BASE + HRT_RAM.size).is_none());
    assert!(walk(&pages, 0x1000).is_none(), "nothing in the TTBR0 half's indexes");
}

#[test]
fn el1_boot_state_and_boot_info() {
    let layout = BootLayout::new(ROS_RAM, HRT_RAM, 2, 0x10_0000).unwrap();
    let el1 = boot::el1_boot(&layout, 1);
    assert_eq!(el1.ttbr1, layout.tables.start);
    assert_eq!(el1.sp_el1, layout.stack_top_va(1));
    assert_ne!(el1.tcr & (1 << 7), 0, "TTBR0 walks disabled until a merge");
    assert_eq!(el1.sctlr & 1, 1, "MMU on");
    let gic = GicFrames { gicd_base: 0x800_0000, gicr_base: 0x80a_0000, gicr_stride: 0x2_0000, upcall_intid: 15 };
    let info = layout.boot_info(3, FREQ, 77, "hrt quiet", gic);
    assert_eq!((info.hrt_cores, info.first_hrt_vcpu, info.boot_start_counter), (2, 3, 77));
    assert_eq!(&info.cmdline[..10], b"hrt quiet\0");
    let bytes = boot::boot_info_bytes(&info);
    assert_eq!(bytes.len(), core::mem::size_of::<HrtBootInfo>());
    let word = |offset: usize| u64::from_le_bytes(bytes[offset..offset + 8].try_into().unwrap());
    assert_eq!(word(core::mem::offset_of!(HrtBootInfo, free_start)), layout.free.start);
    assert_eq!(word(core::mem::offset_of!(HrtBootInfo, upcall_intid)), 15);
    assert_eq!(bytes[core::mem::offset_of!(HrtBootInfo, cmdline)], b'h');
    let long = "x".repeat(1000);
    assert_eq!(layout.boot_info(0, FREQ, 0, &long, gic).cmdline.last(), Some(&0), "always NUL-terminated");
}
