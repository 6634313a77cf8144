//! Virtio devices for the guest: a virtio-mmio transport ([`mmio::VirtioMmio`]) in front of
//! device models such as the block device ([`blk::VirtioBlk`]).
//!
//! The split mirrors the virtio spec: the transport owns the register file, feature
//! negotiation, device status and queue setup; a [`VirtioDevice`] owns the device type, its
//! feature bits, its config space and what a request on one of its queues means. Queues live in
//! guest RAM and are walked by [`queue::Virtqueue`], which is where all guest-supplied addresses
//! are checked. Everything here is pure logic over [`GuestMemory`], so it is tested on the host.
//!
//! [`GuestMemory`]: crate::mm::guest_memory::GuestMemory

pub mod blk;
pub mod empty;
pub mod mmio;
pub mod queue;

#[cfg(test)]
mod tests;

use crate::mm::guest_memory::GuestMemory;
use queue::{QueueError, Virtqueue};

/// Feature bit: the device follows virtio 1.x (required for the modern MMIO transport).
pub const VIRTIO_F_VERSION_1: u64 = 1 << 32;
/// Feature bit: the driver may use indirect descriptor tables.
pub const VIRTIO_F_INDIRECT_DESC: u64 = 1 << 28;

/// One device model behind a virtio transport.
pub trait VirtioDevice: Send {
    /// Short name for logs.
    fn name(&self) -> &'static str;
    /// The virtio device ID (spec section 5), e.g. 2 for a block device.
    fn device_type(&self) -> u32;
    /// Device-specific feature bits offered; the transport adds the transport and ring ones.
    fn features(&self) -> u64;
    /// How many virtqueues the device has.
    fn num_queues(&self) -> u16;
    /// Fills `data` from the device config space at `offset`; bytes past its end read as zero.
    fn read_config(&self, offset: u64, data: &mut [u8]);
    /// A driver write to the config space; ignored unless the device has writable fields.
    fn write_config(&mut self, _offset: u64, _data: &[u8]) {}
    /// The driver accepted `features` (it set FEATURES_OK and the transport agreed).
    fn ack_features(&mut self, _features: u64) {}
    /// Handles the new buffers on queue `index`, as many as `budget` allows (at least one
    /// request). Synchronous devices complete each request they take before returning; a
    /// device that completes later would push to the used ring then.
    fn process_queue(
        &mut self,
        index: u16,
        queue: &mut Virtqueue,
        mem: &GuestMemory,
        budget: &mut WorkBudget,
    ) -> QueueOutcome;
    /// The driver reset the device: forget all negotiated and in-flight state.
    /// Completes requests the device finished in the background since the last call (a device
    /// that serves everything in `process_queue` has none).
    fn poll_completions(&mut self, _index: u16, _queue: &mut Virtqueue, _mem: &GuestMemory) -> QueueOutcome {
        QueueOutcome::default()
    }
    fn reset(&mut self) {}
}

/// How much work one pass over the queues may do. The hypervisor serves requests with
/// interrupts masked and the device locked, so a guest that keeps its avail index moving (or
/// offers a full queue of large requests) must not keep a pCPU busy without bound: a pass
/// stops once it has used its budget, and the transport finishes the rest in later passes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WorkBudget {
    requests: u32,
    bytes: u64,
}

impl WorkBudget {
    /// Requests per pass. A request served on the spot (flush, bounced data) waits for the
    /// host's disk: about 1 ms under QEMU's TCG even for one sector, so a pass stays within a
    /// few time slices. A guest that
    /// waits for its disk idles, and an idle pCPU serves pass after pass, so this costs a
    /// waiting guest no throughput.
    pub const REQUESTS_PER_PASS: u32 = 4;
    /// Data bytes per pass (a pass always serves its first request, whatever its size).
    pub const BYTES_PER_PASS: u64 = 1 << 20;

    /// The budget of one pass.
    pub const fn per_pass() -> Self {
        Self { requests: Self::REQUESTS_PER_PASS, bytes: Self::BYTES_PER_PASS }
    }

    /// Whether nothing is left: the device must stop before taking another request.
    pub fn is_spent(&self) -> bool {
        self.requests == 0 || self.bytes == 0
    }

    /// One request with `bytes` bytes of buffers was served.
    pub fn spend(&mut self, bytes: u64) {
        self.requests = self.requests.saturating_sub(1);
        self.bytes = self.bytes.saturating_sub(bytes);
    }
}

/// What one [`VirtioDevice::process_queue`] call did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueOutcome {
    /// Used ring entries added.
    pub completed: u32,
    /// It stopped because the budget was spent: the queue may hold more requests.
    pub budget_spent: bool,
    /// The first problem met, for the integrator to log.
    pub error: Option<VirtioError>,
}

impl QueueOutcome {
    /// Remembers `error` unless an earlier one is already recorded; an error that breaks the
    /// queue wins over one that did not, so the transport learns it must stop.
    pub fn note(&mut self, error: VirtioError) {
        let replace = match self.error {
            None => true,
            Some(earlier) => error.needs_reset() && !earlier.needs_reset(),
        };
        if replace {
            self.error = Some(error);
        }
    }
}

/// Something the guest got wrong. None of these stop the hypervisor; they are returned so the
/// integrator can log them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VirtioError {
    /// A queue-level problem (setup refused, ring unusable, or one malformed chain).
    Queue(QueueError),
    /// A block request that completed with an error status, or with none.
    Block { head: u16, error: blk::RequestError },
}

impl VirtioError {
    /// Whether the device can no longer trust the queue and needs a reset by the driver.
    pub fn needs_reset(&self) -> bool {
        matches!(self, VirtioError::Queue(error) if error.is_fatal())
    }
}
