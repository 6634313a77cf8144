//! The virtio-mmio transport, modern flavour (virtio 1.1, section 4.2.2; Version register 2).
//!
//! One 0x200-byte register window per device: identification, feature negotiation in 32-bit
//! halves, device status, per-queue setup selected by `QueueSel`, notification, interrupt status
//! and, from 0x100, the device's config space. The driver is guest code, so every write is
//! validated: impossible values are ignored (or, for FEATURES_OK, refused by not latching the
//! bit), never trusted.
//!
//! Queue notifications are handled synchronously: a `QueueNotify` write walks the queue and
//! completes its requests before the trapped access returns. The interrupt line is level:
//! asserted while `InterruptStatus` is non-zero, until the driver acknowledges.

use alloc::vec::Vec;

use super::queue::{QueueError, Virtqueue};
use super::{QueueOutcome, VirtioDevice, VirtioError, WorkBudget, VIRTIO_F_INDIRECT_DESC, VIRTIO_F_VERSION_1};
use crate::devices::MmioDevice;
use crate::mm::guest_memory::GuestMemory;

// Register offsets (virtio 1.1, table 4.1).
pub const MAGIC_VALUE: u64 = 0x000;
pub const VERSION: u64 = 0x004;
pub const DEVICE_ID: u64 = 0x008;
pub const VENDOR_ID: u64 = 0x00c;
pub const DEVICE_FEATURES: u64 = 0x010;
pub const DEVICE_FEATURES_SEL: u64 = 0x014;
pub const DRIVER_FEATURES: u64 = 0x020;
pub const DRIVER_FEATURES_SEL: u64 = 0x024;
pub const QUEUE_SEL: u64 = 0x030;
pub const QUEUE_NUM_MAX: u64 = 0x034;
pub const QUEUE_NUM: u64 = 0x038;
pub const QUEUE_READY: u64 = 0x044;
pub const QUEUE_NOTIFY: u64 = 0x050;
pub const INTERRUPT_STATUS: u64 = 0x060;
pub const INTERRUPT_ACK: u64 = 0x064;
pub const STATUS: u64 = 0x070;
pub const QUEUE_DESC_LOW: u64 = 0x080;
pub const QUEUE_DESC_HIGH: u64 = 0x084;
pub const QUEUE_DRIVER_LOW: u64 = 0x090;
pub const QUEUE_DRIVER_HIGH: u64 = 0x094;
pub const QUEUE_DEVICE_LOW: u64 = 0x0a0;
pub const QUEUE_DEVICE_HIGH: u64 = 0x0a4;
pub const CONFIG_GENERATION: u64 = 0x0fc;
/// Device config space starts here and runs to the end of the window.
pub const CONFIG: u64 = 0x100;

/// "virt" in little-endian ASCII.
pub const MAGIC: u32 = 0x7472_6976;
/// The modern (virtio 1.x) register layout.
pub const MMIO_VERSION: u32 = 2;
/// Our vendor ID: "HYP" in little-endian ASCII.
pub const VENDOR: u32 = 0x0048_5950;
/// The queue size offered to drivers.
pub const QUEUE_SIZE_MAX: u16 = 256;
/// Queues a transport serves (one bit each in its unserved set).
const MAX_QUEUES: u16 = u32::BITS as u16;

// Device status bits (virtio 1.1, section 2.1).
pub const STATUS_ACKNOWLEDGE: u32 = 1;
pub const STATUS_DRIVER: u32 = 2;
pub const STATUS_DRIVER_OK: u32 = 4;
pub const STATUS_FEATURES_OK: u32 = 8;
pub const STATUS_DEVICE_NEEDS_RESET: u32 = 64;
pub const STATUS_FAILED: u32 = 128;

// InterruptStatus bits.
pub const INT_USED_BUFFER: u32 = 1;
pub const INT_CONFIG_CHANGE: u32 = 2;

/// Feature bits the transport itself provides, whatever the device.
const TRANSPORT_FEATURES: u64 = VIRTIO_F_VERSION_1 | VIRTIO_F_INDIRECT_DESC;

/// Registers are 32 bits wide and must be accessed as such (spec 4.2.2.2).
const REGISTER_SIZE: u8 = 4;
/// Config space accesses are at most this wide.
const MAX_CONFIG_ACCESS: usize = 8;

/// One queue's setup registers, and the live queue once the driver enables it.
#[derive(Clone, Debug, Default)]
struct QueueSlot {
    /// QueueNum as written; validated when the queue is enabled.
    num: u32,
    desc: u64,
    driver: u64,
    device: u64,
    /// `Some` while QueueReady reads 1.
    active: Option<Virtqueue>,
}

/// A virtio device as the guest sees it through one virtio-mmio window.
pub struct VirtioMmio<D: VirtioDevice> {
    device: D,
    mem: GuestMemory,
    status: u32,
    device_features_sel: u32,
    driver_features_sel: u32,
    driver_features: u64,
    queue_sel: u32,
    queues: Vec<QueueSlot>,
    interrupt_status: u32,
    config_generation: u32,
    /// The latest problem caused by the guest, until the integrator takes it.
    error: Option<VirtioError>,
    /// Queues notified whose requests are not all served yet (bit n: queue n); see
    /// [`WorkBudget`].
    unserved: u32,
}

impl<D: VirtioDevice> VirtioMmio<D> {
    /// Puts `device` behind a transport whose queues live in `mem`.
    pub fn new(device: D, mem: GuestMemory) -> Self {
        let queues = (0..device.num_queues().min(MAX_QUEUES)).map(|_| QueueSlot::default()).collect();
        Self {
            device,
            mem,
            status: 0,
            device_features_sel: 0,
            driver_features_sel: 0,
            driver_features: 0,
            queue_sel: 0,
            queues,
            interrupt_status: 0,
            config_generation: 0,
            error: None,
            unserved: 0,
        }
    }

    /// Whether the device's interrupt line is asserted.
    pub fn irq_asserted(&self) -> bool {
        self.interrupt_status != 0
    }

    /// The latest guest error since the last call, for logging.
    pub fn take_error(&mut self) -> Option<VirtioError> {
        self.error.take()
    }

    pub fn device(&self) -> &D {
        &self.device
    }

    pub fn device_mut(&mut self) -> &mut D {
        &mut self.device
    }

    /// Tells the driver the device config changed (e.g. a resized disk).
    pub fn config_changed(&mut self) {
        self.config_generation = self.config_generation.wrapping_add(1);
        if self.status & STATUS_DRIVER_OK != 0 {
            self.interrupt_status |= INT_CONFIG_CHANGE;
        }
    }

    /// Every feature bit offered: the device's and the transport's.
    fn offered_features(&self) -> u64 {
        self.device.features() | TRANSPORT_FEATURES
    }

    fn selected_queue(&mut self) -> Option<&mut QueueSlot> {
        self.queues.get_mut(self.queue_sel as usize)
    }

    /// Back to the power-on state: what a driver writing 0 to Status asks for.
    pub fn reset(&mut self) {
        self.status = 0;
        self.device_features_sel = 0;
        self.driver_features_sel = 0;
        self.driver_features = 0;
        self.queue_sel = 0;
        self.queues.iter_mut().for_each(|slot| *slot = QueueSlot::default());
        self.interrupt_status = 0;
        self.unserved = 0;
        self.device.reset();
    }

    fn write_status(&mut self, value: u32) {
        if value == 0 {
            self.reset();
            return;
        }
        let mut value = value;
        let newly_features_ok = value & STATUS_FEATURES_OK != 0 && self.status & STATUS_FEATURES_OK == 0;
        if newly_features_ok {
            if self.features_acceptable() {
                self.device.ack_features(self.driver_features);
            } else {
                // Refusal is signalled by FEATURES_OK not reading back (spec 3.1.1).
                value &= !STATUS_FEATURES_OK;
            }
        }
        // The driver cannot clear what the device set, nor bits already latched (short of a
        // reset), so the status only ever gains bits here.
        self.status |= value;
    }

    /// The driver's features are a subset of ours and include VERSION_1 (this is a modern-only
    /// device; legacy drivers cannot use this transport anyway).
    fn features_acceptable(&self) -> bool {
        self.driver_features & !self.offered_features() == 0 && self.driver_features & VIRTIO_F_VERSION_1 != 0
    }

    fn write_driver_features(&mut self, value: u32) {
        // Features are fixed once accepted.
        if self.status & STATUS_FEATURES_OK != 0 {
            return;
        }
        let shift = match self.driver_features_sel {
            0 => 0,
            1 => 32,
            _ => return,
        };
        self.driver_features = (self.driver_features & !(u64::from(u32::MAX) << shift)) | (u64::from(value) << shift);
    }

    fn write_queue_ready(&mut self, value: u32) {
        let mem = self.mem;
        let Some(slot) = self.queues.get_mut(self.queue_sel as usize) else {
            return;
        };
        if value == 0 {
            slot.active = None;
            return;
        }
        if slot.active.is_some() {
            return;
        }
        let queue = u16::try_from(slot.num)
            .map_err(|_| QueueError::BadSize { size: slot.num })
            .and_then(|num| Virtqueue::new(&mem, num, QUEUE_SIZE_MAX, slot.desc, slot.driver, slot.device));
        match queue {
            Ok(queue) => slot.active = Some(queue),
            // QueueReady keeps reading 0, which is how the driver learns of the refusal.
            Err(error) => self.error = Some(VirtioError::Queue(error)),
        }
    }

    /// Writes one 32-bit half of a queue address, unless the queue is live.
    fn write_queue_address(&mut self, offset: u64, value: u32) {
        let Some(slot) = self.selected_queue() else {
            return;
        };
        if slot.active.is_some() {
            return;
        }
        let (field, high) = match offset {
            QUEUE_DESC_LOW => (&mut slot.desc, false),
            QUEUE_DESC_HIGH => (&mut slot.desc, true),
            QUEUE_DRIVER_LOW => (&mut slot.driver, false),
            QUEUE_DRIVER_HIGH => (&mut slot.driver, true),
            QUEUE_DEVICE_LOW => (&mut slot.device, false),
            QUEUE_DEVICE_HIGH => (&mut slot.device, true),
            _ => return,
        };
        let shift = if high { 32 } else { 0 };
        *field = (*field & !(u64::from(u32::MAX) << shift)) | (u64::from(value) << shift);
    }

    fn write_queue_num(&mut self, value: u32) {
        let Some(slot) = self.selected_queue() else {
            return;
        };
        if slot.active.is_none() {
            slot.num = value;
        }
    }

    /// The driver has new buffers on queue `index`: serve one pass of them now; whatever is
    /// left waits for [`Self::serve_unserved`].
    fn notify(&mut self, index: u32) {
        let Some(bit) = u16::try_from(index).ok().filter(|&i| usize::from(i) < self.queues.len()).map(|i| 1 << i)
        else {
            return;
        };
        self.unserved |= bit;
        self.serve_unserved();
    }

    /// Whether notified requests wait for another [`Self::serve_unserved`] pass.
    pub fn has_unserved(&self) -> bool {
        self.unserved != 0
    }

    /// Serves the notified queues for one [`WorkBudget`]; a queue leaves the unserved set once
    /// a pass finds it empty (or unusable).
    pub fn serve_unserved(&mut self) {
        let usable = STATUS_DRIVER_OK | STATUS_DEVICE_NEEDS_RESET | STATUS_FAILED;
        // The device must not touch queues before DRIVER_OK (spec 3.1.1), nor after it gave up.
        if self.status & usable != STATUS_DRIVER_OK {
            self.unserved = 0;
            return;
        }
        let mut budget = WorkBudget::per_pass();
        for index in 0..self.queues.len() {
            let bit = 1u32 << index;
            if self.unserved & bit == 0 {
                continue;
            }
            if budget.is_spent() {
                break;
            }
            let Some(queue) = self.queues[index].active.as_mut() else {
                self.unserved &= !bit;
                continue;
            };
            let outcome = self.device.process_queue(index as u16, queue, &self.mem, &mut budget);
            if !outcome.budget_spent {
                self.unserved &= !bit;
            }
            let needs_interrupt = outcome.completed > 0 && queue.needs_interrupt(&self.mem);
            self.take_outcome(outcome, needs_interrupt);
        }
    }

    /// Completes what the device finished in the background (see
    /// [`VirtioDevice::poll_completions`]) and raises the used-buffer interrupt if the driver
    /// wants it.
    pub fn poll_completions(&mut self) {
        for index in 0..self.queues.len() {
            let Some(queue) = self.queues[index].active.as_mut() else {
                continue;
            };
            let outcome = self.device.poll_completions(index as u16, queue, &self.mem);
            let needs_interrupt = outcome.completed > 0 && queue.needs_interrupt(&self.mem);
            self.take_outcome(outcome, needs_interrupt);
        }
    }

    /// Raises the interrupt a pass over a queue asks for, and keeps its problem for the log.
    fn take_outcome(&mut self, outcome: QueueOutcome, needs_interrupt: bool) {
        if needs_interrupt {
            self.interrupt_status |= INT_USED_BUFFER;
        }
        if let Some(error) = outcome.error {
            if error.needs_reset() {
                // Spec 2.1.2: say so in the status and with a config-change interrupt.
                self.status |= STATUS_DEVICE_NEEDS_RESET;
                self.interrupt_status |= INT_CONFIG_CHANGE;
                self.unserved = 0;
            }
            self.error = Some(error);
        }
    }

    fn read_register(&mut self, offset: u64) -> u32 {
        match offset {
            MAGIC_VALUE => MAGIC,
            VERSION => MMIO_VERSION,
            DEVICE_ID => self.device.device_type(),
            VENDOR_ID => VENDOR,
            DEVICE_FEATURES => match self.device_features_sel {
                0 => self.offered_features() as u32,
                1 => (self.offered_features() >> 32) as u32,
                _ => 0,
            },
            // Zero tells the driver the selected queue does not exist.
            QUEUE_NUM_MAX => self.selected_queue().map_or(0, |_| u32::from(QUEUE_SIZE_MAX)),
            QUEUE_READY => self.selected_queue().map_or(0, |slot| u32::from(slot.active.is_some())),
            INTERRUPT_STATUS => self.interrupt_status,
            STATUS => self.status,
            CONFIG_GENERATION => self.config_generation,
            // Write-only and unknown registers.
            _ => 0,
        }
    }

    fn write_register(&mut self, offset: u64, value: u32) {
        match offset {
            DEVICE_FEATURES_SEL => self.device_features_sel = value,
            DRIVER_FEATURES => self.write_driver_features(value),
            DRIVER_FEATURES_SEL => self.driver_features_sel = value,
            QUEUE_SEL => self.queue_sel = value,
            QUEUE_NUM => self.write_queue_num(value),
            QUEUE_READY => self.write_queue_ready(value),
            QUEUE_NOTIFY => self.notify(value),
            INTERRUPT_ACK => self.interrupt_status &= !value,
            STATUS => self.write_status(value),
            QUEUE_DESC_LOW..=QUEUE_DEVICE_HIGH => self.write_queue_address(offset, value),
            // Read-only and unknown registers.
            _ => {}
        }
    }
}

/// Whether an access below the config space is one the spec allows: 32 bits wide and aligned.
/// Anything else reads as zero and writes are dropped.
fn is_register_access(offset: u64, size: u8) -> bool {
    size == REGISTER_SIZE && offset.is_multiple_of(u64::from(REGISTER_SIZE))
}

impl<D: VirtioDevice> MmioDevice for VirtioMmio<D> {
    fn irq_asserted(&self) -> bool {
        VirtioMmio::irq_asserted(self)
    }

    fn name(&self) -> &'static str {
        self.device.name()
    }

    fn read(&mut self, offset: u64, size: u8) -> u64 {
        if offset >= CONFIG {
            let mut bytes = [0u8; MAX_CONFIG_ACCESS];
            let len = usize::from(size).min(MAX_CONFIG_ACCESS);
            self.device.read_config(offset - CONFIG, &mut bytes[..len]);
            return u64::from_le_bytes(bytes);
        }
        if !is_register_access(offset, size) {
            return 0;
        }
        u64::from(self.read_register(offset))
    }

    fn write(&mut self, offset: u64, size: u8, value: u64) {
        if offset >= CONFIG {
            let len = usize::from(size).min(MAX_CONFIG_ACCESS);
            self.device.write_config(offset - CONFIG, &value.to_le_bytes()[..len]);
            return;
        }
        if !is_register_access(offset, size) {
            return;
        }
        self.write_register(offset, value as u32);
    }
}
