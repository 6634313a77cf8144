//! The guest disk's storage: QEMU's own virtio-blk device (a real file on the host), found in
//! the host DTB's virtio-mmio slots and driven with the virtio-drivers crate. The guest never
//! sees this device; it sees the emulated one in `devices::virtio`, which calls this backend.
//!
//! Requests are synchronous: the vCPU that notified its queue waits while QEMU serves the I/O.
//! Data goes through the emulated device's bounce buffer (one copy) rather than handing guest
//! buffers to the host device, so a guest can never make the real device DMA outside its RAM.

use core::alloc::Layout;
use core::ptr::NonNull;

use virtio_drivers::device::blk::{VirtIOBlk, SECTOR_SIZE};
use virtio_drivers::transport::mmio::{MmioTransport, VirtIOHeader};
use virtio_drivers::transport::{DeviceType, Transport};
use virtio_drivers::{BufferDirection, Hal, PhysAddr, PAGE_SIZE};

use super::virtio::blk::{BackendError, BlockBackend, DEVICE_ID_LEN};
use crate::boot::host_dtb::VirtioMmioSlot;

/// virtio-drivers' view of hypervisor memory: identity-mapped, coherent (QEMU), heap-backed.
pub struct HypHal;

// SAFETY: allocations are page-aligned heap memory whose physical address is its virtual
// address (EL2 identity map); they stay valid until dma_dealloc; shared buffers are used in
// place because QEMU's DMA is coherent.
unsafe impl Hal for HypHal {
    fn dma_alloc(pages: usize, _direction: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        let layout = Layout::from_size_align(pages * PAGE_SIZE, PAGE_SIZE).expect("page layout");
        // SAFETY: the layout has a non-zero size (virtio-drivers never asks for 0 pages).
        let ptr = unsafe { alloc::alloc::alloc_zeroed(layout) };
        let ptr = NonNull::new(ptr).unwrap_or_else(|| alloc::alloc::handle_alloc_error(layout));
        (ptr.as_ptr() as PhysAddr, ptr)
    }

    unsafe fn dma_dealloc(_paddr: PhysAddr, vaddr: NonNull<u8>, pages: usize) -> i32 {
        let layout = Layout::from_size_align(pages * PAGE_SIZE, PAGE_SIZE).expect("page layout");
        // SAFETY: `vaddr` came from dma_alloc with the same page count (the trait's contract).
        unsafe { alloc::alloc::dealloc(vaddr.as_ptr(), layout) };
        0
    }

    unsafe fn mmio_phys_to_virt(paddr: PhysAddr, _size: usize) -> NonNull<u8> {
        NonNull::new(paddr as *mut u8).expect("MMIO is not at address 0")
    }

    unsafe fn share(buffer: NonNull<[u8]>, _direction: BufferDirection) -> PhysAddr {
        buffer.as_ptr() as *mut u8 as PhysAddr
    }

    unsafe fn unshare(_paddr: PhysAddr, _buffer: NonNull<[u8]>, _direction: BufferDirection) {}
}

/// QEMU's virtio-blk device as the guest disk's backend.
pub struct HostBlock {
    device: VirtIOBlk<HypHal, MmioTransport<'static>>,
    id: [u8; DEVICE_ID_LEN],
}

// SAFETY: the device is only used behind the VM's device lock.
unsafe impl Send for HostBlock {}

impl HostBlock {
    /// The first virtio-blk device among the host's virtio-mmio slots, if any.
    pub fn probe(slots: &[VirtioMmioSlot]) -> Option<Self> {
        for slot in slots {
            let header = NonNull::new(slot.range.start as *mut VirtIOHeader)?;
            // SAFETY: the slot is a virtio-mmio register window from the host DTB, mapped as
            // device memory in the EL2 map, and no other driver uses it.
            let Ok(transport) = (unsafe { MmioTransport::new(header, slot.range.size as usize) }) else {
                continue;
            };
            if transport.device_type() != DeviceType::Block {
                continue;
            }
            match VirtIOBlk::<HypHal, _>::new(transport) {
                Ok(mut device) => {
                    let mut id = [0u8; DEVICE_ID_LEN];
                    let _ = device.device_id(&mut id);
                    log::info!(
                        "disk: host virtio-blk at {:#x}, {} sectors ({} MiB){}",
                        slot.range.start,
                        device.capacity(),
                        (device.capacity() * SECTOR_SIZE as u64) >> 20,
                        if device.readonly() { ", read-only" } else { "" }
                    );
                    return Some(Self { device, id });
                }
                Err(error) => log::warn!("host virtio-blk at {:#x} unusable: {error:?}", slot.range.start),
            }
        }
        None
    }
}

impl BlockBackend for HostBlock {
    fn capacity_sectors(&self) -> u64 {
        self.device.capacity()
    }

    fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), BackendError> {
        self.device.read_blocks(sector as usize, buf).map_err(|e| {
            log::warn!("disk read at sector {sector} failed: {e:?}");
            BackendError::Io
        })
    }

    fn write(&mut self, sector: u64, buf: &[u8]) -> Result<(), BackendError> {
        self.device.write_blocks(sector as usize, buf).map_err(|e| {
            log::warn!("disk write at sector {sector} failed: {e:?}");
            BackendError::Io
        })
    }

    fn flush(&mut self) -> Result<(), BackendError> {
        self.device.flush().map_err(|e| {
            log::warn!("disk flush failed: {e:?}");
            BackendError::Io
        })
    }

    fn device_id(&self) -> [u8; DEVICE_ID_LEN] {
        self.id
    }
}
