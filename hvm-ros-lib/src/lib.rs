//! hvm-ros-lib: the user-space side of the hybrid-VM (HVM) protocol.
//!
//! - [`abi`] is the `no_std` definition of the 0xf00d hypercall interface that the hypervisor,
//!   the HRT kernel and ROS programs all share, so the three parties cannot disagree about a
//!   number or a structure layout. [`abi::HvmError`] codes decode with
//!   [`abi::HvmError::from_code`] and print with `Display`.
//! - `ros` (feature `std`, Linux only) is the API of a ROS (Linux guest) process: it finds the
//!   doorbell page in `/proc/device-tree`, maps it from `/dev/mem` and makes 0xf00d calls
//!   through it (`ros::Hvm`): state queries, invocations of the HRT's functions (asynchronous,
//!   parallel, synchronous through a shared channel), resets, merging the process's address
//!   space and running its own functions in the HRT (`CALL_ROS`, with their system calls and
//!   page faults serviced by the process), the TLS mirror, signals, and installing HRT images.
//!   The `hvmctl` tool and the `hvm-test-rs` program (same feature) drive it from a shell.
//! - `capi` (feature `std`, Linux only) is the same API for C programs, with every function of
//!   Palacios' `v3_hvm_ros_user.h` (header `include/hvm_ros.h`; `scripts/build-hvm-ros-lib.sh`
//!   builds `libhvm_ros.a`).
//! - [`status`] decodes answers (transaction state, completed invocations) and [`checksum`]
//!   defines Fletcher-64, the HRT's checksum function: both `no_std`, shared by every party.
//!
//! Without features the crate is `no_std` and has no dependencies (the hypervisor uses it so).
#![no_std]

#[cfg(any(test, feature = "std"))]
extern crate std;

pub mod abi;
pub mod checksum;
mod error;
pub mod status;

#[cfg(all(feature = "std", target_os = "linux"))]
pub mod ros;

#[cfg(all(feature = "std", target_os = "linux"))]
pub mod capi;
