//! Boot-time inputs: the host device tree and guest-loader modules, and the banner.

pub mod banner;
pub mod entropy;
pub mod guest_dtb;
pub mod host_dtb;
pub mod linux_image;
