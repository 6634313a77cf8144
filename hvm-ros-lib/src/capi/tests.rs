//! The C API on the host: the header agrees with the Rust definitions, and everything that
//! needs no hypervisor works.

use super::*;
use crate::abi::invoke::{function, INVOCATION_MAGIC, MAX_HRT_CORES, SYNC_MAGIC};
use crate::abi::{ExceptionEvent, PageFaultAction, PageFaultEvent, RosEventPayload, HRT_FAIL_VEC, HVM_HCALL_ID};
use std::collections::BTreeSet;
use std::string::String;

const HEADER: &str = include_str!("../../include/hvm_ros.h");

/// The log and errno-setting paths are process-wide: one test at a time uses them.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    lock(&SERIAL)
}
const SOURCE: &str = include_str!("../capi.rs");

/// Functions `capi.rs` exports (`#[no_mangle]`).
fn exported() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut after_no_mangle = false;
    for line in SOURCE.lines() {
        let line = line.trim();
        if line == "#[no_mangle]" {
            after_no_mangle = true;
        } else if after_no_mangle && !line.starts_with("///") && !line.starts_with("#[") {
            let name = line.split("fn ").nth(1).and_then(|rest| rest.split('(').next()).expect(line);
            names.insert(name.to_string());
            after_no_mangle = false;
        }
    }
    names
}

/// Every `v3_hvm_*` / `hvm_ros_*` identifier followed by `(` in the header.
fn declared() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = HEADER.as_bytes();
    for prefix in ["v3_hvm_", "hvm_ros_"] {
        for (at, _) in HEADER.match_indices(prefix) {
            if at > 0 && (bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_') {
                continue;
            }
            let end = at + HEADER[at..].find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap();
            if HEADER[end..].starts_with('(') {
                names.insert(HEADER[at..end].to_string());
            }
        }
    }
    names
}

#[test]
fn the_header_declares_exactly_the_exported_functions() {
    let (exported, declared) = (exported(), declared());
    assert_eq!(exported, declared, "capi.rs exports vs hvm_ros.h declares");
    let palacios = [
        "v3_hvm_ros_user_init",
        "v3_hvm_ros_user_deinit",
        "v3_hvm_ros_user_set_log",
        "v3_hvm_ros_register_signal",
        "v3_hvm_ros_unregister_signal",
        "v3_hvm_ros_install_hrt_image",
        "v3_hvm_ros_reset",
        "v3_hvm_ros_merge_address_spaces",
        "v3_hvm_ros_unmerge_address_spaces",
        "v3_hvm_ros_mirror_gdt",
        "v3_hvm_ros_unmirror_gdt",
        "v3_hvm_ros_unmiror_gdt",
        "v3_hvm_ros_invoke_hrt_async",
        "v3_hvm_ros_invoke_hrt_async_nowait",
        "v3_hvm_ros_synchronize",
        "v3_hvm_ros_invoke_hrt_sync",
        "v3_hvm_ros_desynchronize",
        "v3_hvm_handle_ros_event",
        "v3_hvm_handle_ros_event_nohcall",
        "v3_hvm_hrt_signal_ros",
    ];
    for name in palacios {
        assert!(exported.contains(name), "Palacios' {name} is missing");
    }
}

/// `NAME VALUE` of `#define`s and `NAME = VALUE` of enum entries, values as written.
fn header_constants() -> Vec<(String, String)> {
    let mut constants = Vec::new();
    for line in HEADER.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("#define ") {
            let mut words = rest.split_whitespace();
            if let (Some(name), Some(value)) = (words.next(), words.next()) {
                constants.push((name.to_string(), value.to_string()));
            }
        }
        // Enum entries, possibly several on a line.
        for entry in line.split([',', '{', '}']) {
            if let Some((name, value)) = entry.split_once(" = ") {
                let name = name.trim().rsplit(' ').next().unwrap();
                if name.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_') {
                    constants.push((name.to_string(), value.trim().to_string()));
                }
            }
        }
    }
    constants
}

fn parse_c_integer(value: &str) -> i128 {
    let v = value.trim_start_matches('(').trim_end_matches(')').trim_end_matches("ULL").trim_end_matches("LL");
    let (negative, v) = match v.strip_prefix('-') {
        Some(v) => (true, v),
        None => (false, v),
    };
    let magnitude = match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        Some(hex) => i128::from_str_radix(hex, 16),
        None => v.parse(),
    }
    .unwrap_or_else(|_| std::panic!("not an integer: {value}"));
    if negative {
        -magnitude
    } else {
        magnitude
    }
}

#[test]
fn the_header_constants_match_the_abi() {
    let mut expected: Vec<(&str, i128)> = vec![
        ("HVM_HCALL_ID", HVM_HCALL_ID.into()),
        ("HVM_MAX_HRT_CORES", MAX_HRT_CORES as i128),
        ("HVM_INVOCATION_MAGIC", INVOCATION_MAGIC.into()),
        ("HVM_SYNC_MAGIC", SYNC_MAGIC.into()),
        ("HVM_FN_PRINT", function::PRINT.into()),
        ("HVM_FN_ADD", function::ADD.into()),
        ("HVM_FN_CHECKSUM", function::CHECKSUM.into()),
        ("HVM_FN_SPIN_US", function::SPIN_US.into()),
        ("HVM_FN_CALL_ROS", function::CALL_ROS.into()),
        ("HVM_ROS_RETURN_ADDRESS", crate::abi::invoke::ROS_RETURN_ADDRESS.into()),
        ("HRT_FAIL_VEC", HRT_FAIL_VEC.into()),
        ("HVM_OK", 0),
        ("HVM_ERR_FAILED", HvmError::Failed as i128),
        ("HVM_ERR_UNKNOWN_SUB_OP", HvmError::UnknownSubOp as i128),
        ("HVM_ERR_WRONG_PARTITION", HvmError::WrongPartition as i128),
        ("HVM_ERR_WRONG_STATE", HvmError::WrongState as i128),
        ("HVM_ERR_BAD_ADDRESS", HvmError::BadAddress as i128),
        ("HVM_ERR_INVALID_ARGUMENT", HvmError::InvalidArgument as i128),
        ("HVM_ERR_NOT_HVM", HvmError::NotHvm as i128),
        ("HVM_ERR_BUSY", HvmError::Busy as i128),
        ("HVM_ERR_NOT_IMPLEMENTED", HvmError::NotImplemented as i128),
        ("HVM_ERR_WRONG_LEVEL", HvmError::WrongLevel as i128),
        ("HVM_ROS_ERR_TIMEOUT", lib_error::TIMEOUT.into()),
        ("HVM_ROS_ERR_NO_HVM", lib_error::NO_HVM.into()),
        ("HVM_ROS_ERR_PIN", lib_error::PIN.into()),
        ("HVM_ROS_ERR_NOT_DONE", lib_error::NOT_DONE.into()),
        ("HVM_ROS_ERR_ARGUMENT", lib_error::ARGUMENT.into()),
        ("HVM_ROS_ERR_LOST", lib_error::LOST.into()),
        ("HVM_ROS_ERR_SYNC_SESSION", lib_error::SYNC_SESSION.into()),
        ("HVM_ROS_ERR_EXCEPTION", lib_error::EXCEPTION.into()),
        ("ROS_NONE", RosEventType::None as i128),
        ("ROS_PAGE_FAULT", RosEventType::PageFault as i128),
        ("ROS_SYSCALL", RosEventType::Syscall as i128),
        ("HRT_EXCEPTION", RosEventType::HrtException as i128),
        ("HRT_THREAD_EXIT", RosEventType::HrtThreadExit as i128),
        ("ROS_DONE", RosEventType::Done as i128),
        ("ROS_READ", PageFaultAction::Read as i128),
        ("ROS_WRITE", PageFaultAction::Write as i128),
        ("ROS_EXEC", PageFaultAction::Exec as i128),
    ];
    let states = ["IDLE", "CALL", "PARCALL", "SYNC_SETUP", "SYNC", "SYNC_TEARDOWN", "MERGE", "TLS_SYNC"];
    assert_eq!(states.len(), TransState::ALL.len());
    let state_names: Vec<String> = states.iter().map(|s| std::format!("HVM_STATE_{s}")).collect();
    for (name, state) in state_names.iter().zip(TransState::ALL) {
        expected.push((name, *state as i128));
    }
    // Every error code has its C name.
    assert_eq!(HvmError::ALL.len(), 10, "name a new HvmError in hvm_ros.h and here");

    let constants = header_constants();
    for (name, value) in &expected {
        let found: Vec<_> = constants.iter().filter(|(n, _)| n == name).collect();
        assert_eq!(found.len(), 1, "{name} defined once in hvm_ros.h: {found:?}");
        assert_eq!(parse_c_integer(&found[0].1), *value, "{name}");
    }
    // reset_type keeps Palacios' order.
    assert!(HEADER.contains("typedef enum { RESET_HRT, RESET_ROS, RESET_BOTH } reset_type;"));
    assert_eq!((RESET_HRT, RESET_ROS, RESET_BOTH), (0, 1, 2));
}

#[test]
fn errors_map_to_errno_and_strings() {
    assert_eq!(errno_for(HvmError::WrongState), libc::EBUSY);
    assert_eq!(errno_for(HvmError::NotImplemented), libc::ENOSYS);
    assert_eq!(errno_for(HvmError::BadAddress), libc::EFAULT);
    assert_eq!(codes_for(&InvokeError::Hvm(HvmError::NotImplemented)), (-9, libc::ENOSYS));
    let timeout = InvokeError::Timeout { what: "x", waited: Duration::ZERO, last: None };
    assert_eq!(codes_for(&timeout), (lib_error::TIMEOUT, libc::ETIMEDOUT));
    assert_eq!(codes_for(&InvokeError::Call(CallError::Failed { core: 0, status: -5 })), (-5, libc::EFAULT));
    assert_eq!(
        codes_for(&InvokeError::Call(CallError::UnexpectedDone { done: 0, expected: Some(1) })).0,
        lib_error::NOT_DONE
    );
    for &e in HvmError::ALL {
        assert_ne!(error_string(e.code() as i64), c"hypervisor error", "{e:?}");
        assert_ne!(error_string(e.code() as i64), c"unknown error", "{e:?}");
    }
    for code in -107..=-100 {
        assert_ne!(error_string(code), c"unknown error", "{code}");
    }
    assert_eq!(error_string(0), c"success");
    assert_eq!(error_string(-99), c"unknown error");
    // SAFETY: the returned pointer is a static C string.
    assert_eq!(unsafe { CStr::from_ptr(hvm_ros_strerror(-9)) }, c"not implemented by this hypervisor");
    let exception = RosException { esr: 0x0200_0000, pc: None, far: None };
    assert_eq!(codes_for(&InvokeError::Exception { core: 0, exception }), (lib_error::EXCEPTION, libc::EIO));
}

#[test]
fn async_buffers_are_invocations_or_strings() {
    let _serial = serial();
    let inv = Invocation::new(function::ADD, [1, 2, 0, 0, 0, 0]);
    // SAFETY: a struct hvm_invocation.
    match unsafe { read_async_buffer((&inv as *const Invocation).cast()) } {
        Ok(AsyncBuffer::Invocation(read)) => assert_eq!(read, inv),
        _ => std::panic!("not read as an invocation"),
    }
    let text = c"hello world\n";
    // SAFETY: a NUL-terminated string.
    match unsafe { read_async_buffer(text.as_ptr().cast()) } {
        Ok(AsyncBuffer::String(bytes)) => assert_eq!(bytes, text.to_bytes_with_nul()),
        _ => std::panic!("not read as a string"),
    }
    let long = std::ffi::CString::new(vec![b'y'; page_size()]).unwrap();
    unsafe { v3_hvm_ros_user_set_log(std::ptr::null_mut()) };
    // SAFETY: a NUL-terminated string.
    assert!(unsafe { read_async_buffer(long.as_ptr().cast()) }.is_err(), "longer than a page");
    assert_eq!(hvm_ros_last_error(), lib_error::ARGUMENT);

    let mut page = PinnedPage::new().unwrap();
    write_buffer(&mut page, &AsyncBuffer::Invocation(inv));
    // SAFETY: the page now holds the invocation.
    assert_eq!(unsafe { (page.as_ptr() as *const Invocation).read() }, inv);
    write_buffer(&mut page, &AsyncBuffer::String(b"hi\0".to_vec()));
    // SAFETY: the page now holds a string.
    assert_eq!(unsafe { CStr::from_ptr(page.as_ptr().cast()) }, c"hi");
    // SAFETY: the byte after the string's NUL is in the page.
    assert_eq!(unsafe { page.as_ptr().add(8).read() }, 0, "the old invocation is wiped");
}

#[test]
fn completion_checks_follow_the_sub_operation() {
    let mut inv = Invocation::new(function::ADD, [0; 6]);
    inv.done = 1;
    assert!(check_done(&inv, false).is_ok());
    assert!(check_done(&inv, true).is_ok(), "one HRT core");
    inv.done = 0b111;
    assert!(check_done(&inv, false).is_err());
    assert!(check_done(&inv, true).is_ok());
    inv.done = 0;
    assert!(check_done(&inv, false).is_err());
    assert!(check_done(&inv, true).is_err());
    inv.done = 0b101;
    assert!(check_done(&inv, true).is_err());
}

#[test]
fn calls_that_need_no_hypervisor_fail_cleanly() {
    let _serial = serial();
    // SAFETY: NULL turns the log off.
    unsafe { v3_hvm_ros_user_set_log(std::ptr::null_mut()) };
    assert_eq!(v3_hvm_ros_reset(7), -1);
    assert_eq!(std::io::Error::last_os_error().raw_os_error(), Some(libc::EINVAL));
    assert_eq!(hvm_ros_last_error(), lib_error::ARGUMENT);
    assert_eq!(v3_hvm_ros_desynchronize(), -1);
    assert_eq!(hvm_ros_last_error(), lib_error::SYNC_SESSION);
    // SAFETY: NULL is allowed.
    assert_eq!(unsafe { v3_hvm_ros_invoke_hrt_sync(std::ptr::null_mut(), 0) }, -1);
    assert_eq!(std::io::Error::last_os_error().raw_os_error(), Some(libc::EINVAL));
    // SAFETY: NULL is refused.
    assert_eq!(unsafe { v3_hvm_handle_ros_event_nohcall(std::ptr::null_mut()) }, -1);
    assert_eq!(open_errno(&HvmOpenError::NotAnHvm), libc::ENODEV);
    assert_eq!(open_errno(&HvmOpenError::NotPermitted), libc::EACCES);
}

/// The process's HVM for these tests: a simulated hypervisor and HRT with 2 HRT cores.
#[cfg(not(target_arch = "aarch64"))]
fn simulated() -> &'static std::sync::Arc<crate::ros::sim::Sim> {
    static SIM: OnceLock<std::sync::Arc<crate::ros::sim::Sim>> = OnceLock::new();
    SIM.get_or_init(|| {
        let sim = crate::ros::sim::Sim::new(2);
        assert!(HVM.set(sim.hvm()).is_ok(), "nothing opened the real HVM");
        sim
    })
}

#[cfg(not(target_arch = "aarch64"))]
#[test]
fn the_palacios_api_drives_a_simulated_hvm() {
    let _serial = serial();
    let sim = simulated();
    assert_eq!(v3_hvm_ros_user_init(), 0);
    // SAFETY: NULL turns the log off.
    unsafe { v3_hvm_ros_user_set_log(std::ptr::null_mut()) };
    let (mut trans, mut ready) = (-1, -1);
    // SAFETY: valid pointers.
    assert_eq!(unsafe { hvm_ros_state(&mut trans, &mut ready) }, 0);
    assert_eq!((trans, ready), (0, 1));

    // Palacios' test: a string buffer, printed by the HRT.
    let mut buf = [0u8; 4096];
    buf[..12].copy_from_slice(b"hello world\n");
    // SAFETY: a NUL-terminated string.
    assert_eq!(unsafe { v3_hvm_ros_invoke_hrt_async(buf.as_mut_ptr().cast(), 0) }, 0);
    assert_eq!(sim.printed.lock().unwrap().last().map(String::as_str), Some("hello world\n"));

    // An invocation: its results come back.
    let mut inv = Invocation::new(function::ADD, [2, 3, 0, 0, 0, 0]);
    // SAFETY: a struct hvm_invocation.
    assert_eq!(unsafe { v3_hvm_ros_invoke_hrt_async((&mut inv as *mut Invocation).cast(), 0) }, 0);
    assert_eq!((inv.done, inv.status[0], inv.result[0]), (1, 0, 5));
    let mut inv = Invocation::new(function::ADD, [2, 3, 0, 0, 0, 0]);
    // SAFETY: a struct hvm_invocation.
    assert_eq!(unsafe { v3_hvm_ros_invoke_hrt_async((&mut inv as *mut Invocation).cast(), 1) }, 0);
    assert_eq!((inv.done, &inv.result[..2]), (0b11, &[5u64, 5][..]));

    // The Rust-like calls.
    let (mut result, mut results, mut cores) = (0u64, [0u64; MAX_HRT_CORES], 0u32);
    let args = [40u64, 2, 0, 0, 0, 0];
    // SAFETY: valid pointers and sizes.
    unsafe {
        assert_eq!(hvm_ros_invoke(function::ADD, args.as_ptr(), &mut result), 0);
        assert_eq!(result, 42);
        assert_eq!(hvm_ros_invoke_parallel(function::ADD, args.as_ptr(), results.as_mut_ptr(), 8, &mut cores), 0);
        assert_eq!((cores, &results[..2]), (2, &[42u64, 42][..]));
        assert_eq!(hvm_ros_invoke(77, std::ptr::null(), &mut result), -1, "no function 77");
        assert_eq!(hvm_ros_last_error(), HvmError::InvalidArgument as i64);
    }

    // Synchronous mode.
    assert_eq!(v3_hvm_ros_synchronize(), 0);
    assert_eq!(v3_hvm_ros_synchronize(), -1, "already synchronized");
    assert_eq!(std::io::Error::last_os_error().raw_os_error(), Some(libc::EBUSY));
    // SAFETY: a string, then an invocation.
    unsafe {
        assert_eq!(v3_hvm_ros_invoke_hrt_sync(buf.as_mut_ptr().cast(), 0), 0);
        assert_eq!(v3_hvm_ros_invoke_hrt_sync(buf.as_mut_ptr().cast(), 1), 0);
        let mut inv = Invocation::new(function::ADD, [7, 8, 0, 0, 0, 0]);
        assert_eq!(v3_hvm_ros_invoke_hrt_sync((&mut inv as *mut Invocation).cast(), 0), 0);
        assert_eq!(inv.result[0], 15);
        assert_eq!(hvm_ros_sync_invoke(function::ADD, args.as_ptr(), &mut result), 0);
        assert_eq!(result, 42);
    }
    assert_eq!(v3_hvm_ros_desynchronize(), 0);
    assert_eq!(sim.trans(), TransState::Idle);

    // Merged: a function of this process in the HRT, its events serviced, its exception
    // reported; the TLS mirror.
    assert_eq!(v3_hvm_ros_merge_address_spaces(), 0);
    assert!(sim.merged());
    assert_eq!(v3_hvm_ros_mirror_gdt(0, 3), 0);
    assert_eq!(sim.tls().map(|(tpidr, _)| tpidr), Some(crate::ros::merged::current_tls().0));
    extern "C" fn triple(a: u64, _: u64, _: u64, _: u64) -> u64 {
        3 * a
    }
    let mut counts = EventCountsC::default();
    // SAFETY: a buffer of ours.
    assert_eq!(unsafe { hvm_ros_event_counts(&mut counts) }, 0);
    let before = counts;
    sim.script(vec![crate::ros::sim::Scripted::Syscall([libc::SYS_getpid as u64, 0, 0, 0, 0, 0, 0])]);
    let f = triple as extern "C" fn(u64, u64, u64, u64) -> u64;
    let mut stack = vec![0u128; 1024];
    // SAFETY: triple is a plain function; the stack is ours; valid pointers.
    unsafe {
        assert_eq!(hvm_ros_call_ros(f as *const c_void, std::ptr::null_mut(), 14, 0, 0, 0, &mut result), 0);
        assert_eq!(result, 42);
        let top = stack.as_mut_ptr_range().end.cast::<c_void>();
        assert_eq!(hvm_ros_call_ros(f as *const c_void, top, 5, 0, 0, 0, &mut result), 0);
        assert_eq!(result, 15);
        assert_eq!(hvm_ros_event_counts(&mut counts), 0);
        assert_eq!(counts.syscalls, before.syscalls + 1);
        assert_eq!(hvm_ros_last_exception(std::ptr::null_mut(), std::ptr::null_mut(), std::ptr::null_mut()), -1);
        sim.script(vec![crate::ros::sim::Scripted::Exception { pc: 0x1234, esr: 0x0200_0000, far: 0 }]);
        assert_eq!(hvm_ros_call_ros(f as *const c_void, std::ptr::null_mut(), 1, 0, 0, 0, &mut result), -1);
        assert_eq!(hvm_ros_last_error(), lib_error::EXCEPTION);
        assert_eq!(result, 0x0200_0000, "the syndrome");
        let (mut esr, mut pc, mut far) = (0, 0, 1);
        assert_eq!(hvm_ros_last_exception(&mut esr, &mut pc, &mut far), 0);
        assert_eq!((esr, pc, far), (0x0200_0000, 0x1234, 0));
        assert_eq!(hvm_ros_call_ros(f as *const c_void, top.cast::<u8>().sub(8).cast(), 1, 0, 0, 0, &mut result), -1);
        assert_eq!(hvm_ros_last_error(), lib_error::ARGUMENT, "a misaligned stack");
        assert_eq!(hvm_ros_call_ros(f as *const c_void, std::ptr::null_mut(), 1, 0, 0, 0, &mut result), 0);
        assert_eq!(result, 3, "the next call works");
    }
    assert_eq!(v3_hvm_ros_unmiror_gdt(), 0);
    assert_eq!(sim.tls(), None);
    assert_eq!(v3_hvm_ros_unmerge_address_spaces(), 0);
    assert!(!sim.merged());
    // SAFETY: not an image: refused.
    assert_eq!(unsafe { v3_hvm_ros_install_hrt_image(b"junk".as_ptr() as *mut c_void, 4) }, -1);
    assert_eq!(std::io::Error::last_os_error().raw_os_error(), Some(libc::EINVAL));
    let mut image = vec![0u8; 4096];
    image[..4].copy_from_slice(b"\x7fELF");
    // SAFETY: our bytes.
    assert_eq!(unsafe { hvm_ros_install_and_boot(image.as_ptr().cast(), 4096, 5000) }, 0);
    assert_eq!(sim.image.lock().unwrap().as_deref(), Some(&image[..]));

    // Not implemented by this (simulated) hypervisor: -1 with ENOSYS.
    let mut stack = vec![0u8; 8192];
    // SAFETY: a stack of ours.
    assert_eq!(unsafe { v3_hvm_ros_register_signal(None, stack.as_mut_ptr().cast(), 8192) }, -1);
    assert_eq!(v3_hvm_ros_unregister_signal(), -1);
    assert_eq!(v3_hvm_hrt_signal_ros(1), -1);
    assert_eq!(v3_hvm_ros_reset(RESET_HRT), 0);

    // No wait: the results come back when a later call sees the call over.
    let mut inv = Invocation::new(function::ADD, [1, 1, 0, 0, 0, 0]);
    // SAFETY: a struct hvm_invocation that outlives the call.
    assert_eq!(unsafe { v3_hvm_ros_invoke_hrt_async_nowait((&mut inv as *mut Invocation).cast(), 0) }, 0);
    assert_eq!(hvm_ros_wait_idle(), 0);
    // SAFETY: the library wrote it; read it afresh.
    let inv = unsafe { std::ptr::read_volatile(&inv) };
    assert_eq!((inv.done, inv.result[0]), (1, 2));

    // Waits end.
    hvm_ros_set_timeout_ms(30);
    sim.set_behaviour(crate::ros::sim::Behaviour::Hang);
    // SAFETY: a NUL-terminated string.
    assert_eq!(unsafe { v3_hvm_ros_invoke_hrt_async(buf.as_mut_ptr().cast(), 0) }, -1);
    assert_eq!(std::io::Error::last_os_error().raw_os_error(), Some(libc::ETIMEDOUT));
    assert!(lock(&ASYNC_PAGE).is_none(), "the page the HRT may still use was given up");
    sim.reset();
    hvm_ros_set_timeout_ms(10_000);
    // SAFETY: a NUL-terminated string.
    assert_eq!(unsafe { v3_hvm_ros_invoke_hrt_async(buf.as_mut_ptr().cast(), 0) }, 0);
    assert_eq!(v3_hvm_ros_user_deinit(), 0);
}

#[test]
fn events_are_handled_without_a_hypercall() {
    let _serial = serial();
    // SAFETY: NULL turns the log off.
    unsafe { v3_hvm_ros_user_set_log(std::ptr::null_mut()) };
    let mut byte = 0x33u8;
    let pf = PageFaultEvent { pc: 0, far: &mut byte as *mut u8 as u64, action: PageFaultAction::Write as u32 };
    let mut event = RosEvent::none();
    event.event_type = RosEventType::PageFault as u32;
    event.payload = RosEventPayload { page_fault: pf };
    event.last_ros_event_result = 99;
    // SAFETY: the event names a local byte.
    assert_eq!(unsafe { v3_hvm_handle_ros_event_nohcall(&mut event) }, 0);
    assert_eq!(event.event_type, RosEventType::None as u32);
    assert_eq!(event.last_ros_event_result, 0);
    assert_eq!(byte, 0x33);

    event.event_type = RosEventType::Syscall as u32;
    event.payload = RosEventPayload { syscall: [libc::SYS_getppid as u64, 0, 0, 0, 0, 0, 0, 0] };
    // SAFETY: getppid has no effect.
    assert_eq!(unsafe { v3_hvm_handle_ros_event_nohcall(&mut event) }, 0);
    // SAFETY: getppid has no effect.
    assert_eq!(event.last_ros_event_result, unsafe { libc::getppid() } as u64);

    // An exception: recorded, answered 0, and the call says -1.
    event.event_type = RosEventType::HrtException as u32;
    event.payload = RosEventPayload { exception: ExceptionEvent { pc: 0x10, vector: 0x9200_0046, far: 0x20 } };
    // SAFETY: no memory, no system call.
    assert_eq!(unsafe { v3_hvm_handle_ros_event_nohcall(&mut event) }, -1);
    assert_eq!((event.event_type, event.last_ros_event_result), (RosEventType::None as u32, 0));
    assert_eq!(hvm_ros_last_error(), lib_error::EXCEPTION);
    let mut far = 0;
    // SAFETY: valid pointers.
    assert_eq!(unsafe { hvm_ros_last_exception(std::ptr::null_mut(), std::ptr::null_mut(), &mut far) }, 0);
    assert_eq!(far, 0x20);
}

#[test]
fn the_log_goes_to_the_file_given() {
    let _serial = serial();
    // SAFETY: tmpfile gives a new FILE, closed below after the log is turned off.
    unsafe {
        let file = libc::tmpfile();
        assert!(!file.is_null());
        v3_hvm_ros_user_set_log(file);
        log(format_args!("a line for the log"));
        v3_hvm_ros_user_set_log(std::ptr::null_mut());
        libc::rewind(file);
        let mut buf = [0 as c_char; 128];
        assert!(!libc::fgets(buf.as_mut_ptr(), buf.len() as c_int, file).is_null());
        assert_eq!(CStr::from_ptr(buf.as_ptr()), c"hvm_ros: a line for the log\n");
        libc::fclose(file);
    }
}

#[test]
fn fletcher64_is_exported_for_c() {
    let data = b"abcdefgh";
    // SAFETY: `data` is 8 readable bytes.
    assert_eq!(unsafe { hvm_ros_fletcher64(data.as_ptr().cast(), 8) }, 0x312e_2b28_ccca_c8c6);
    // SAFETY: NULL with length 0.
    assert_eq!(unsafe { hvm_ros_fletcher64(std::ptr::null(), 0) }, 0);
}
