//! The guest disk's storage: QEMU's own virtio-blk device (a real file on the host), found in
//! the host DTB's virtio-mmio slots. The guest never sees this device; it sees the emulated one
//! in `devices::virtio`, which calls this backend.
//!
//! A request's data goes to the device as the guest's own buffers, one descriptor per segment
//! of guest RAM, so the device DMAs straight into or out of them: no copy in the hypervisor.
//! That is why the request layer is ours: virtio-drivers' `VirtIOBlk` takes one buffer per
//! request. The transport and the virtqueue are virtio-drivers'. Only guest RAM that the
//! emulated device checked (`GuestSegment`) reaches the device.
//!
//! Reads and writes of guest RAM run in the background (`start_transfer`): a batch of them goes
//! to QEMU at once (one notification; indirect descriptor tables, so each takes one slot of the
//! ring), so QEMU serves them together and merges neighbours, as it does for a guest on plain
//! QEMU, and the notifying vCPU runs on meanwhile. They are handed back by `take_completed`,
//! when the device's interrupt says so or a poller sees them. Other requests (flush, ID,
//! bounced data) are synchronous and only made with nothing in flight.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::alloc::Layout;
use core::ptr::NonNull;

use bitflags::bitflags;
use virtio_drivers::queue::VirtQueue;
use virtio_drivers::transport::mmio::{MmioTransport, VirtIOHeader};
use virtio_drivers::transport::{DeviceType, Transport};
use virtio_drivers::{BufferDirection, Hal, PhysAddr, PAGE_SIZE};

use super::virtio::blk::{
    BackendError, BlockBackend, SegmentTransfer, Started, TransferDirection, CONFIG_CAPACITY, CONFIG_SEG_MAX,
    DEVICE_ID_LEN, HEADER_LEN, HEADER_SECTOR, HEADER_TYPE, SECTOR_SIZE, VIRTIO_BLK_F_FLUSH, VIRTIO_BLK_F_RO,
    VIRTIO_BLK_F_SEG_MAX, VIRTIO_BLK_S_OK, VIRTIO_BLK_T_FLUSH, VIRTIO_BLK_T_GET_ID, VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT,
};
use super::virtio::{VIRTIO_F_INDIRECT_DESC, VIRTIO_F_VERSION_1};
use crate::boot::host_dtb::VirtioMmioSlot;
use crate::guest_map::SPI_BASE;
use crate::mm::guest_memory::GuestSegment;

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

bitflags! {
    /// The device features this driver accepts (virtio 1.1, sections 5.2.3 and 6).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    struct Features: u64 {
        const SEG_MAX = VIRTIO_BLK_F_SEG_MAX;
        const RO = VIRTIO_BLK_F_RO;
        const FLUSH = VIRTIO_BLK_F_FLUSH;
        const INDIRECT_DESC = VIRTIO_F_INDIRECT_DESC;
        const VERSION_1 = VIRTIO_F_VERSION_1;
    }
}

/// The device's one request queue.
const REQUEST_QUEUE: u16 = 0;
/// Descriptors in our queue. A whole request of the guest's (header, up to `blk::SEG_MAX` data
/// buffers, status) fits in it even without indirect tables.
const QUEUE_SIZE: usize = 256;
/// Descriptors of a request besides its data: the header and the status byte.
const REQUEST_OVERHEAD: usize = 2;

/// A request's data.
enum Data<'a> {
    None,
    /// Hypervisor memory the device fills (a bounced read, the disk's ID).
    IntoHypervisor(&'a mut [u8]),
    /// Hypervisor memory the device reads (a bounced write).
    FromHypervisor(&'a [u8]),
    /// Guest RAM the device fills, in order (a zero-copy read).
    IntoGuest(&'a [GuestSegment]),
    /// Guest RAM the device reads, in order (a zero-copy write).
    FromGuest(&'a [GuestSegment]),
}

/// QEMU's virtio-blk device as the guest disk's backend.
pub struct HostBlock {
    transport: MmioTransport<'static>,
    queue: VirtQueue<HypHal, QUEUE_SIZE>,
    features: Features,
    capacity: u64,
    /// Data buffers one request may have (the device's `seg_max`, within our queue).
    max_segments: usize,
    id: [u8; DEVICE_ID_LEN],
    /// Requests in the device's hands, by token.
    in_flight: Vec<Option<Box<InFlight>>>,
    in_flight_count: usize,
    /// Requests were added since the last notification.
    unsubmitted: bool,
    /// The device's interrupt (GIC INTID), raised when it completes requests.
    interrupt_id: u32,
}

// SAFETY: the device is only used behind the VM's device lock.
unsafe impl Send for HostBlock {}

impl HostBlock {
    /// The first usable virtio-blk device among the host's virtio-mmio slots, if any.
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
            match Self::new(transport, SPI_BASE + slot.spi) {
                Ok(disk) => {
                    log::info!(
                        "disk: host virtio-blk at {:#x}, {} sectors ({} MiB), up to {} segments per request{}",
                        slot.range.start,
                        disk.capacity,
                        (disk.capacity * SECTOR_SIZE) >> 20,
                        disk.max_segments,
                        if disk.features.contains(Features::RO) { ", read-only" } else { "" }
                    );
                    return Some(disk);
                }
                Err(why) => log::warn!("host virtio-blk at {:#x} unusable: {why}", slot.range.start),
            }
        }
        None
    }

    /// Brings the device up (virtio 1.1 section 3.1.1) and asks for its ID.
    fn new(mut transport: MmioTransport<'static>, interrupt_id: u32) -> Result<Self, &'static str> {
        let features = transport.begin_init(Features::all());
        let config_u32 = |transport: &MmioTransport, offset| transport.read_config_space::<u32>(offset);
        let capacity = transport
            .read_consistent(|| {
                let low = config_u32(&transport, CONFIG_CAPACITY)?;
                let high = config_u32(&transport, CONFIG_CAPACITY + 4)?;
                Ok(u64::from(low) | u64::from(high) << 32)
            })
            .map_err(|_| "its capacity cannot be read")?;
        // Without SEG_MAX the device promises nothing beyond one data buffer (Linux assumes 1).
        let seg_max = if features.contains(Features::SEG_MAX) {
            config_u32(&transport, CONFIG_SEG_MAX).map_err(|_| "its seg_max cannot be read")? as usize
        } else {
            1
        };
        if transport.max_queue_size(REQUEST_QUEUE) < QUEUE_SIZE as u32 {
            return Err("its queue is smaller than 256 descriptors (QEMU's queue-size)");
        }
        let indirect = features.contains(Features::INDIRECT_DESC);
        let queue = VirtQueue::new(&mut transport, REQUEST_QUEUE, indirect, false).map_err(|_| "no request queue")?;
        transport.finish_init();
        let max_segments = seg_max.clamp(1, QUEUE_SIZE - REQUEST_OVERHEAD);
        let mut disk = Self {
            transport,
            queue,
            features,
            capacity,
            max_segments,
            id: [0; DEVICE_ID_LEN],
            in_flight: (0..QUEUE_SIZE).map(|_| None).collect(),
            in_flight_count: 0,
            unsubmitted: false,
            interrupt_id,
        };
        let mut id = [0u8; DEVICE_ID_LEN];
        // A device without GET_ID answers UNSUPP; its ID then stays empty.
        if disk.request(VIRTIO_BLK_T_GET_ID, 0, Data::IntoHypervisor(&mut id)).is_ok() {
            disk.id = id;
        }
        Ok(disk)
    }

    /// The device's interrupt (GIC INTID): it completed requests.
    pub fn interrupt_id(&self) -> u32 {
        self.interrupt_id
    }

    /// Whether the device finished requests not yet taken (a memory read, no device access).
    pub fn has_completed(&self) -> bool {
        self.queue.can_pop()
    }

    /// Asks the device to interrupt (or not) when it completes requests; without, completions
    /// are only seen by polling (`has_completed`). A memory write, no device access.
    pub fn set_interrupts(&mut self, on: bool) {
        self.queue.set_dev_notify(on);
    }

    /// Lowers the device's interrupt line (before its completions are taken, so that a later
    /// one raises it again).
    pub fn acknowledge_interrupt(&mut self) {
        self.transport.ack_interrupt();
    }

    /// Sends one request and waits for the device to complete it. Only with nothing in flight:
    /// the wait takes the first request the device hands back.
    fn request(&mut self, request_type: u32, sector: u64, data: Data<'_>) -> Result<(), BackendError> {
        if self.in_flight_count > 0 {
            log::error!("disk: host request type {request_type} refused: {} requests in flight", self.in_flight_count);
            return Err(BackendError::Io);
        }
        let header = request_header(request_type, sector);
        let mut status = [STATUS_NOT_WRITTEN];
        let mut readable: Vec<&[u8]> = alloc::vec![&header[..]];
        let mut writable: Vec<&mut [u8]> = Vec::new();
        match data {
            Data::None => {}
            Data::IntoHypervisor(buffer) => writable.push(buffer),
            Data::FromHypervisor(buffer) => readable.push(buffer),
            // SAFETY: a `GuestSegment` is guest RAM that `GuestMemory` checked, memory the
            // hypervisor may read and write. The slices only carry their addresses to the
            // device (`HypHal::share`): the hypervisor never reads or writes through them, and
            // they are dropped when this synchronous request returns. (The guest may name
            // overlapping buffers; the device then writes the overlap twice, as it would for
            // the guest itself.)
            Data::IntoGuest(segments) => writable.extend(segments.iter().map(|segment| unsafe {
                core::slice::from_raw_parts_mut(segment.host_address().0 as *mut u8, segment.len())
            })),
            // SAFETY: as for `IntoGuest`; the device only reads these.
            Data::FromGuest(segments) => readable.extend(segments.iter().map(|segment| unsafe {
                core::slice::from_raw_parts(segment.host_address().0 as *const u8, segment.len())
            })),
        }
        writable.push(&mut status[..]);
        let result = self.queue.add_notify_wait_pop(&readable, &mut writable, &mut self.transport);
        request_outcome(request_type, sector, result, status[0])
    }
}

/// A request the device works on in the background: what its descriptors point to, which must
/// stay put until it is popped (it is boxed).
struct InFlight {
    tag: u16,
    header: [u8; HEADER_LEN],
    status: u8,
    direction: TransferDirection,
    sector: u64,
    segments: Vec<GuestSegment>,
}

impl InFlight {
    fn buffers(&mut self) -> (Vec<&[u8]>, Vec<&mut [u8]>) {
        transfer_buffers(&self.header, &mut self.status, self.direction, &self.segments)
    }
}

/// The value a status byte keeps until the device writes it (no valid status).
const STATUS_NOT_WRITTEN: u8 = 0xff;

fn request_header(request_type: u32, sector: u64) -> [u8; HEADER_LEN] {
    let mut header = [0u8; HEADER_LEN];
    header[HEADER_TYPE..HEADER_TYPE + 4].copy_from_slice(&request_type.to_le_bytes());
    header[HEADER_SECTOR..HEADER_SECTOR + 8].copy_from_slice(&sector.to_le_bytes());
    header
}

fn transfer_type(direction: TransferDirection) -> u32 {
    match direction {
        TransferDirection::DiskToGuest => VIRTIO_BLK_T_IN,
        TransferDirection::GuestToDisk => VIRTIO_BLK_T_OUT,
    }
}

/// What a completed request means for its caller.
fn request_outcome(
    request_type: u32,
    sector: u64,
    result: virtio_drivers::Result<u32>,
    status: u8,
) -> Result<(), BackendError> {
    match (result, status) {
        (Ok(_), VIRTIO_BLK_S_OK) => Ok(()),
        (Ok(_), status) => {
            log::warn!("disk: host request type {request_type} at sector {sector}: status {status}");
            Err(BackendError::Io)
        }
        (Err(error), _) => {
            log::warn!("disk: host request type {request_type} at sector {sector} failed: {error:?}");
            Err(BackendError::Io)
        }
    }
}

/// The device-readable and device-writable buffers of `transfer`'s request.
fn transfer_buffers<'a>(
    header: &'a [u8; HEADER_LEN],
    status: &'a mut u8,
    direction: TransferDirection,
    segments: &[GuestSegment],
) -> (Vec<&'a [u8]>, Vec<&'a mut [u8]>) {
    let mut readable: Vec<&[u8]> = alloc::vec![&header[..]];
    let mut writable: Vec<&mut [u8]> = Vec::with_capacity(segments.len() + 1);
    for segment in segments {
        let address = segment.host_address().0 as *mut u8;
        match direction {
            // SAFETY: a `GuestSegment` is guest RAM that `GuestMemory` checked, memory the
            // hypervisor may read and write, and it stays mapped for the VM's life. The slices
            // only carry their addresses to the device (`HypHal::share`): the hypervisor never
            // reads or writes through them. (The guest may name overlapping buffers; the device
            // then writes the overlap twice, as it would for the guest itself.)
            TransferDirection::DiskToGuest => {
                writable.push(unsafe { core::slice::from_raw_parts_mut(address, segment.len()) })
            }
            // SAFETY: as above; the device only reads these.
            TransferDirection::GuestToDisk => {
                readable.push(unsafe { core::slice::from_raw_parts(address.cast_const(), segment.len()) })
            }
        }
    }
    writable.push(core::slice::from_mut(status));
    (readable, writable)
}

impl BlockBackend for HostBlock {
    fn capacity_sectors(&self) -> u64 {
        self.capacity
    }

    fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), BackendError> {
        self.request(VIRTIO_BLK_T_IN, sector, Data::IntoHypervisor(buf))
    }

    fn write(&mut self, sector: u64, buf: &[u8]) -> Result<(), BackendError> {
        self.request(VIRTIO_BLK_T_OUT, sector, Data::FromHypervisor(buf))
    }

    fn max_segments(&self) -> usize {
        self.max_segments
    }

    fn read_segments(&mut self, sector: u64, segments: &[GuestSegment]) -> Result<(), BackendError> {
        self.request(VIRTIO_BLK_T_IN, sector, Data::IntoGuest(segments))
    }

    fn write_segments(&mut self, sector: u64, segments: &[GuestSegment]) -> Result<(), BackendError> {
        self.request(VIRTIO_BLK_T_OUT, sector, Data::FromGuest(segments))
    }

    fn start_transfer(&mut self, tag: u16, transfer: &SegmentTransfer<'_>) -> Started {
        let mut request = Box::new(InFlight {
            tag,
            header: request_header(transfer_type(transfer.direction), transfer.sector),
            status: STATUS_NOT_WRITTEN,
            direction: transfer.direction,
            sector: transfer.sector,
            segments: transfer.segments.to_vec(),
        });
        let (readable, mut writable) = request.buffers();
        // SAFETY: the header and status byte live in the boxed request, which `in_flight` keeps
        // (not moved, not touched) until the device hands the request back in
        // `take_completed`; the segments are guest RAM (see `transfer_buffers`).
        let token = match unsafe { self.queue.add(&readable, &mut writable) } {
            Ok(token) => token,
            Err(virtio_drivers::Error::QueueFull) => return Started::Full,
            Err(error) => {
                log::warn!("disk: host queue refused a request of {} segments: {error:?}", transfer.segments.len());
                return Started::OnTheSpotOnly;
            }
        };
        self.in_flight[usize::from(token)] = Some(request);
        self.in_flight_count += 1;
        self.unsubmitted = true;
        Started::InBackground
    }

    fn submit_started(&mut self) {
        if core::mem::take(&mut self.unsubmitted) && self.queue.should_notify() {
            self.transport.notify(REQUEST_QUEUE);
        }
    }

    fn take_completed(&mut self, done: &mut Vec<(u16, Result<(), BackendError>)>) {
        while let Some(token) = self.queue.peek_used() {
            let Some(mut request) = self.in_flight.get_mut(usize::from(token)).and_then(Option::take) else {
                // Not one of ours: QEMU broke the protocol. Nothing can be popped safely.
                log::error!("disk: host device returned unknown request {token}");
                return;
            };
            let (readable, mut writable) = request.buffers();
            // SAFETY: these are the buffers `add` got for this token (rebuilt the same way).
            let popped = unsafe { self.queue.pop_used(token, &readable, &mut writable) };
            let request_type = transfer_type(request.direction);
            done.push((request.tag, request_outcome(request_type, request.sector, popped, request.status)));
            self.in_flight_count -= 1;
        }
    }

    fn transfers_in_flight(&self) -> usize {
        self.in_flight_count
    }

    fn flush(&mut self) -> Result<(), BackendError> {
        // A device without FLUSH has no volatile cache: completed writes are durable already.
        if !self.features.contains(Features::FLUSH) {
            return Ok(());
        }
        self.request(VIRTIO_BLK_T_FLUSH, 0, Data::None)
    }

    fn device_id(&self) -> [u8; DEVICE_ID_LEN] {
        self.id
    }
}
