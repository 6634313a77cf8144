//! Boot-time inputs: the host device tree and guest-loader modules, and the banner.

pub mod banner;
pub mod host_dtb;
