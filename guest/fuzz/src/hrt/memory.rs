//! Guest memory as the HRT build sees it, and the rules that keep its random operations from
//! breaking the ROS instead of testing the hypervisor.
//!
//! The HRT may reach all guest RAM and every device (it is a kernel of the same VM), so a random
//! store to ROS RAM or to the ROS's devices would only test Linux. Hence:
//!
//! * stores (and cache maintenance that may lose data) go to DATA, a zone of the HRT's free
//!   RAM, or to addresses where nothing is: above RAM, device space the ROS does not own, this
//!   core's own redistributor frames; never to ROS or other HRT RAM, the GIC distributor, other
//!   vCPUs' redistributors, the UART or the virtio transports (loads go anywhere but the UART's
//!   data register: a read there takes a byte of the ROS's console input);
//! * a pointer handed to the hypervisor (0xf00d arguments) never reaches writable RAM outside
//!   DATA: the hypervisor writes through some of them (GetStateAndEvent's buffer). ROS RAM is
//!   offered only through a read-only alias (hrt/mmu.rs), which the hypervisor must refuse.
//!
//! ```text
//! free RAM (boot info free_start..free_end):  DATA (2 MiB) | CANARY (64 KiB) | unused
//! ```
//!
//! The canary holds a pattern nobody may write; it is checked after the random phase.

use hvm_ros_lib::abi::hrt_boot::{IMAGE_BASE, LINEAR_MAP_BASE};

use crate::gic::{GICD_BASE, GICD_SIZE, GICR_BASE, GICR_STRIDE};
use crate::mmu::NORMAL_END_ADDRESS;
use crate::rng::Rng;
use crate::uart::{UARTDR, UART_BASE, UART_SIZE};

pub const PAGE_SIZE: u64 = 4096;
pub const DATA_SIZE: u64 = 2 << 20;
const CANARY_SIZE: u64 = 64 << 10;
/// The canary's pattern (per 8 bytes, xor the IPA).
const CANARY_PATTERN: u64 = 0xca5a_f00d_0048_5254;
/// The most bytes the hypervisor reads or writes through one 0xf00d pointer (a RosEvent is 80,
/// an Invocation 200, a SyncChannel 224): a pointer must be safe for this many.
pub const BUFFER_MAX: u64 = 256;
/// Bytes of a PL011 register.
const UART_REGISTER: u64 = 4;
/// The device GiB of the IPA space (GIC, UART, virtio, the doorbell, holes).
pub const DEVICE_GIB_END: u64 = 1 << 30;
/// virtio-mmio transports, as the hypervisor's guest map (and QEMU virt) places them.
pub const VIRTIO_BASE: u64 = 0x0A00_0000;
pub const VIRTIO_WINDOW: u64 = 0x200 * 32;
/// TTBR0 covers 39 bits of VA (mmu.rs); TTBR1 starts where bits [63:48] are all ones.
const TTBR0_VA_END: u64 = 1 << 39;
const TTBR1_VA_START: u64 = 0xffff_0000_0000_0000;
/// A VA whose top byte is neither all zeros nor all ones: no translation regime has it.
const NON_CANONICAL: u64 = 0x0100_0000_0000_0000;

/// A guest-physical range [start, start + size).
#[derive(Clone, Copy, Debug)]
pub struct Range {
    pub start: u64,
    pub size: u64,
}

impl Range {
    pub const fn new(start: u64, size: u64) -> Self {
        Self { start, size }
    }

    pub const fn end(self) -> u64 {
        self.start + self.size
    }

    /// Whether [address, address + len) lies inside (len 0 counts as 1 byte).
    pub fn holds(self, address: u64, len: u64) -> bool {
        let last = address.saturating_add(len.max(1) - 1);
        address >= self.start && last < self.end()
    }

    /// Whether [address, address + len) shares a byte with this range.
    pub fn overlaps(self, address: u64, len: u64) -> bool {
        let last = address.saturating_add(len.max(1) - 1);
        address < self.end() && last >= self.start
    }

    /// An address with `len` bytes after it inside, aligned to `align` (a power of two).
    pub fn pick(self, rng: &mut Rng, len: u64, align: u64) -> u64 {
        (self.start + rng.below(self.size.saturating_sub(len) + 1)) & !(align - 1)
    }
}

/// Where everything is, set once by the main HRT core from the boot info.
#[derive(Clone, Copy, Debug)]
pub struct Layout {
    pub ros: Range,
    pub hrt: Range,
    pub data: Range,
    pub canary: Range,
    pub first_hrt_vcpu: usize,
    pub hrt_cores: usize,
}

impl Layout {
    pub fn new(
        ros: Range,
        hrt: Range,
        free: Range,
        first_hrt_vcpu: usize,
        hrt_cores: usize,
    ) -> Result<Self, &'static str> {
        let data = Range::new(free.start.next_multiple_of(PAGE_SIZE), DATA_SIZE);
        let canary = Range::new(data.end(), CANARY_SIZE);
        if !hrt.holds(free.start, free.size) || !free.holds(data.start, DATA_SIZE + CANARY_SIZE) {
            return Err("the HRT's free RAM cannot hold 2 MiB of DATA and the canary: raise hrt_mem=");
        }
        if ros.start < DEVICE_GIB_END || hrt.end() > NORMAL_END_ADDRESS {
            return Err("guest RAM must lie between 1 GiB and 4 GiB (the fuzzer's identity map, mmu.rs)");
        }
        Ok(Self { ros, hrt, data, canary, first_hrt_vcpu, hrt_cores })
    }

    /// All guest RAM: the ROS's, then the HRT's directly above it.
    pub fn ram(&self) -> Range {
        Range::new(self.ros.start, self.hrt.end() - self.ros.start)
    }

    pub fn vcpus(&self) -> usize {
        self.first_hrt_vcpu + self.hrt_cores
    }

    /// The guest-physical address behind `va` in the windows whose translation this code
    /// knows: the hypervisor's linear map and image window, and the RAM part of the identity
    /// map (mmu.rs).
    pub fn va_to_ipa(&self, va: u64) -> Option<u64> {
        if (IMAGE_BASE..IMAGE_BASE + self.hrt.size).contains(&va) {
            return Some(self.hrt.start + (va - IMAGE_BASE));
        }
        if (LINEAR_MAP_BASE..LINEAR_MAP_BASE + self.ram().end()).contains(&va) {
            return Some(va - LINEAR_MAP_BASE);
        }
        self.ram().holds(va, 1).then_some(va)
    }

    /// Whether the hypervisor, writing `len` bytes through the caller's virtual address `va`,
    /// could reach RAM outside DATA: the identity map, the linear map and the image window
    /// all map RAM writable.
    pub fn reaches_ram_outside_data(&self, va: u64, len: u64) -> bool {
        let ram = self.ram();
        let windows = [(ram.start, ram), (LINEAR_MAP_BASE + ram.start, ram), (IMAGE_BASE, self.hrt)];
        windows.iter().any(|&(va_start, ipas)| {
            let window = Range::new(va_start, ipas.size);
            if !window.overlaps(va, len) {
                return false;
            }
            // The part of [va, va + len) inside the window, as IPAs.
            let first = va.max(va_start) - va_start + ipas.start;
            let last = va.saturating_add(len.max(1) - 1).min(window.end() - 1) - va_start + ipas.start;
            !self.data.holds(first, last - first + 1)
        })
    }

    /// Whether a store of `len` bytes to guest-physical `ipa` by vCPU `vcpu` is allowed: DATA,
    /// or nowhere the ROS (or another core) keeps anything (see the module doc).
    pub fn store_allowed(&self, vcpu: usize, ipa: u64, len: u64) -> bool {
        if self.data.holds(ipa, len) {
            return true;
        }
        if self.ram().overlaps(ipa, len) {
            return false;
        }
        let gicr_all = Range::new(GICR_BASE, GICR_STRIDE * self.vcpus() as u64);
        let own_frames = Range::new(GICR_BASE + GICR_STRIDE * vcpu as u64, GICR_STRIDE);
        let ros_devices = [
            Range::new(GICD_BASE, GICD_SIZE),
            Range::new(UART_BASE as u64, UART_SIZE),
            Range::new(VIRTIO_BASE, VIRTIO_WINDOW),
        ];
        let other_frames = gicr_all.overlaps(ipa, len) && !own_frames.holds(ipa, len);
        !other_frames && !ros_devices.iter().any(|device| device.overlaps(ipa, len))
    }

    /// Whether a load of `len` bytes at guest-physical `ipa` is allowed: anywhere but the UART's
    /// data register (see the module doc).
    pub fn load_allowed(&self, ipa: u64, len: u64) -> bool {
        !Range::new(UART_BASE as u64 + UARTDR as u64, UART_REGISTER).overlaps(ipa, len)
    }

    /// A DATA address (identity map) with `len` bytes after it, aligned to `align`.
    pub fn data_va(&self, rng: &mut Rng, len: u64, align: u64) -> u64 {
        self.data.pick(rng, len, align)
    }

    /// A pointer for a 0xf00d argument, of every kind the hypervisor must translate and check
    /// (never one that reaches writable RAM outside DATA).
    pub fn pointer(&self, rng: &mut Rng) -> u64 {
        let ram_end = self.ram().end();
        let pointer = match rng.below(12) {
            0..=2 => {
                let align = if rng.percent(80) { 8 } else { 1 };
                self.data_va(rng, BUFFER_MAX, align)
            }
            3 => LINEAR_MAP_BASE + self.data_va(rng, BUFFER_MAX, 8),
            // Straddling a page end: the hypervisor wants a buffer inside one page.
            4 => (self.data.pick(rng, PAGE_SIZE, PAGE_SIZE) + PAGE_SIZE).saturating_sub(1 + rng.below(BUFFER_MAX)),
            5 => super::mmu::ro_alias_va(self, rng.below(self.ros.size.min(super::mmu::RO_ALIAS_SIZE))),
            6 => rng.range(TTBR0_VA_END, TTBR1_VA_START),
            7 => LINEAR_MAP_BASE + rng.range(ram_end, ram_end + (1 << 32)),
            8 => NON_CANONICAL | rng.below(NON_CANONICAL),
            9 => rng.below(DEVICE_GIB_END),
            10 => rng.range(ram_end, NORMAL_END_ADDRESS),
            _ => rng.pick(&[0, 8, PAGE_SIZE - 1, u64::MAX, 1 << 63, IMAGE_BASE - PAGE_SIZE]),
        };
        self.confine(rng, pointer)
    }

    /// `value` as a pointer argument: kept unless the hypervisor could write RAM outside DATA
    /// through it, else replaced by a DATA address.
    pub fn confine(&self, rng: &mut Rng, value: u64) -> u64 {
        if self.reaches_ram_outside_data(value, BUFFER_MAX) {
            self.data_va(rng, BUFFER_MAX, 8)
        } else {
            value
        }
    }
}

/// Zeroes DATA and writes the canary (main core, before any other core runs an operation),
/// through the linear map, which the hypervisor's tables provide from the first instruction.
pub fn init_zones(layout: &Layout) {
    for ipa in (layout.data.start..layout.canary.end()).step_by(8) {
        let value = if layout.canary.holds(ipa, 8) { CANARY_PATTERN ^ ipa } else { 0 };
        // SAFETY: DATA and the canary lie in the HRT's free RAM (Layout::new checked), which the
        // linear map maps as normal memory and nothing else uses yet.
        unsafe { core::ptr::write_volatile((LINEAR_MAP_BASE + ipa) as *mut u64, value) };
    }
}

/// The first canary word that changed: (IPA, value).
pub fn check_canary(layout: &Layout) -> Option<(u64, u64)> {
    (layout.canary.start..layout.canary.end()).step_by(8).find_map(|ipa| {
        // SAFETY: the canary is HRT RAM owned by the fuzzer (init_zones), mapped by the linear map.
        let value = unsafe { core::ptr::read_volatile((LINEAR_MAP_BASE + ipa) as *const u64) };
        (value != CANARY_PATTERN ^ ipa).then_some((ipa, value))
    })
}
