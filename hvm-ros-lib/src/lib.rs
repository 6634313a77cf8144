//! hvm-ros-lib: the user-space side of the hybrid-VM (HVM) protocol.
//!
//! - [`abi`] is the `no_std` definition of the 0xf00d hypercall interface that the hypervisor,
//!   the HRT kernel and ROS programs all share, so the three parties cannot disagree about a
//!   number or a structure layout. [`abi::HvmError`] codes decode with
//!   [`abi::HvmError::from_code`] and print with `Display`.
//! - `ros` (feature `std`, Linux only) is the API of a ROS (Linux guest) process: it finds the
//!   doorbell page in `/proc/device-tree`, maps it from `/dev/mem` and makes 0xf00d calls
//!   through it (`ros::Hvm`). The `hvmctl` tool (same feature) drives it from a shell.
//!
//! Without features the crate is `no_std` and has no dependencies (the hypervisor uses it so).
#![no_std]

#[cfg(any(test, feature = "std"))]
extern crate std;

pub mod abi;
mod error;

#[cfg(all(feature = "std", target_os = "linux"))]
pub mod ros;
