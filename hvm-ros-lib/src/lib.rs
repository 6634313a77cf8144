//! hvm-ros-lib: the user-space side of the hybrid-VM (HVM) protocol.
//!
//! For now this crate holds only [`abi`], the `no_std` definition of the 0xf00d hypercall
//! interface that the hypervisor, the HRT kernel and ROS programs all share, so the three
//! parties cannot disagree about a number or a structure layout.
#![no_std]

pub mod abi;
