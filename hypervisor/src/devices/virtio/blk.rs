//! A virtio block device (virtio 1.1, section 5.2) over a pluggable storage backend.
//!
//! Each request is a descriptor chain: a 16-byte header `{type: u32, reserved: u32, sector: u64}`
//! in device-readable buffers, the data (readable for writes, writable for reads), and a status
//! byte as the very last writable byte. Buffers may split these fields at any byte, so the chain
//! is read and written as two byte streams rather than by descriptor.
//!
//! Data moves straight between the disk and the guest's buffers when the backend can take the
//! request's buffers in one go (`BlockBackend::max_segments`): the real device then DMAs into
//! guest RAM. Otherwise it moves through a fixed-size bounce buffer, a chunk at a time, so the
//! hypervisor never allocates in proportion to a guest-supplied length. Every buffer is checked
//! to lie in guest RAM before anything is done, so a bad buffer can neither reach the real
//! device nor leave a write half-applied to the disk.

use alloc::vec;
use alloc::vec::Vec;

use super::mmio::QUEUE_SIZE_MAX;
use super::queue::{BufferCursor, DescriptorChain, QueueError, Virtqueue};
use super::{QueueOutcome, VirtioDevice, VirtioError, WorkBudget};
use crate::mm::addr::Ipa;
use crate::mm::guest_memory::{GuestMemory, GuestSegment, OutsideGuestRam};

/// The virtio device ID of a block device.
pub const VIRTIO_ID_BLOCK: u32 = 2;
/// Bytes per sector: the unit of `sector` and `capacity`, whatever the backend's block size.
pub const SECTOR_SIZE: u64 = 512;
/// Bytes of the GET_ID answer.
pub const DEVICE_ID_LEN: usize = 20;

// Feature bits (section 5.2.3).
pub const VIRTIO_BLK_F_SEG_MAX: u64 = 1 << 2;
/// The disk is read-only (offered by a host device; this device does not offer it).
pub const VIRTIO_BLK_F_RO: u64 = 1 << 5;
pub const VIRTIO_BLK_F_BLK_SIZE: u64 = 1 << 6;
pub const VIRTIO_BLK_F_FLUSH: u64 = 1 << 9;
const FEATURES: u64 = VIRTIO_BLK_F_SEG_MAX | VIRTIO_BLK_F_BLK_SIZE | VIRTIO_BLK_F_FLUSH;

// Request types (section 5.2.6).
pub const VIRTIO_BLK_T_IN: u32 = 0;
pub const VIRTIO_BLK_T_OUT: u32 = 1;
pub const VIRTIO_BLK_T_FLUSH: u32 = 4;
pub const VIRTIO_BLK_T_GET_ID: u32 = 8;

// Request status values.
pub const VIRTIO_BLK_S_OK: u8 = 0;
pub const VIRTIO_BLK_S_IOERR: u8 = 1;
pub const VIRTIO_BLK_S_UNSUPP: u8 = 2;

/// Bytes of the request header, and where its fields are.
pub const HEADER_LEN: usize = 16;
pub const HEADER_TYPE: usize = 0;
pub const HEADER_SECTOR: usize = 8;
/// Bytes of the status trailer.
const STATUS_LEN: u64 = 1;

// Config space layout (struct virtio_blk_config), up to the last field we offer.
pub const CONFIG_CAPACITY: usize = 0;
pub const CONFIG_SEG_MAX: usize = 12;
pub const CONFIG_BLK_SIZE: usize = 20;
const CONFIG_LEN: usize = 24;

/// The one request queue.
const REQUEST_QUEUE: u16 = 0;
const NUM_QUEUES: u16 = 1;
/// Data buffers per request: a full queue's worth, less the header and status descriptors.
pub const SEG_MAX: u32 = QUEUE_SIZE_MAX as u32 - 2;
/// Size of the bounce buffer data moves through; a whole number of sectors, so that every
/// chunk of a whole-sector transfer is whole sectors too. Each chunk is one synchronous
/// request to the backend: 1 MiB (Linux's usual largest request) rather than 64 KiB took
/// sequential throughput under QEMU TCG from 0.45x/0.37x of plain QEMU to 0.71x/0.71x.
pub(super) const BOUNCE_SIZE: usize = 1024 * 1024;
const _: () = assert!((BOUNCE_SIZE as u64).is_multiple_of(SECTOR_SIZE));

/// Storage behind the device, in 512-byte sectors.
pub trait BlockBackend: Send {
    /// Size of the disk in sectors.
    fn capacity_sectors(&self) -> u64;
    /// Fills `buf` (a whole number of sectors) from the disk starting at `sector`.
    fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), BackendError>;
    /// Writes `buf` (a whole number of sectors) to the disk starting at `sector`.
    fn write(&mut self, sector: u64, buf: &[u8]) -> Result<(), BackendError>;
    /// How many segments one `read_segments` or `write_segments` call may be given; 0 if the
    /// backend has only `read` and `write` (all data then goes through the bounce buffer).
    fn max_segments(&self) -> usize;
    /// Fills `segments` (guest RAM, in order, together a whole number of sectors) from the disk
    /// starting at `sector`, without a copy in the hypervisor if the backend can.
    fn read_segments(&mut self, sector: u64, segments: &[GuestSegment]) -> Result<(), BackendError>;
    /// Writes `segments` (guest RAM, in order, together a whole number of sectors) to the disk
    /// starting at `sector`.
    fn write_segments(&mut self, sector: u64, segments: &[GuestSegment]) -> Result<(), BackendError>;
    /// Carries out `transfers`, each as `read_segments` or `write_segments` would, with
    /// `results[i]` set to transfer `i`'s outcome (`results` has one slot per transfer). A
    /// backend that queues requests hands the device all of them before it waits, so the device
    /// may overlap or merge them; no order holds between them (as between the guest's own
    /// requests in flight). By default, one after the other.
    fn transfer_batch(&mut self, transfers: &[SegmentTransfer<'_>], results: &mut [Result<(), BackendError>]) {
        transfer_each(self, transfers, results);
    }
    /// Starts `transfer` (as `transfer_batch` would carry it out) in the background; it comes
    /// back from `take_completed` with `tag`. The default, `Started::OnTheSpotOnly`, is for
    /// backends that only work synchronously.
    fn start_transfer(&mut self, _tag: u16, _transfer: &SegmentTransfer<'_>) -> Started {
        Started::OnTheSpotOnly
    }
    /// Tells the storage about the transfers started since the last call.
    fn submit_started(&mut self) {}
    /// Moves the background transfers that finished, with their outcomes, into `done`.
    fn take_completed(&mut self, _done: &mut Vec<(u16, Result<(), BackendError>)>) {}
    /// Background transfers started and not yet handed back by `take_completed`.
    fn transfers_in_flight(&self) -> usize {
        0
    }
    /// Makes completed writes durable.
    fn flush(&mut self) -> Result<(), BackendError>;
    /// The disk's ID string: ASCII, NUL-padded unless all 20 bytes are used.
    fn device_id(&self) -> [u8; DEVICE_ID_LEN];
}

/// Which way a transfer's data moves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransferDirection {
    /// A read: the disk fills guest RAM.
    DiskToGuest,
    /// A write: guest RAM goes to the disk.
    GuestToDisk,
}

/// One zero-copy transfer of a batch ([`BlockBackend::transfer_batch`]).
#[derive(Clone, Copy, Debug)]
pub struct SegmentTransfer<'a> {
    pub direction: TransferDirection,
    pub sector: u64,
    /// Guest RAM, in order, together a whole number of sectors; at most the backend's
    /// `max_segments`.
    pub segments: &'a [GuestSegment],
}

/// What [`BlockBackend::start_transfer`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Started {
    /// The transfer runs; it will come back from `take_completed`.
    InBackground,
    /// No room for it until transfers in flight complete.
    Full,
    /// The backend does transfers on the spot only.
    OnTheSpotOnly,
}

/// Carries out `transfers` one after the other (the default `transfer_batch`).
pub fn transfer_each<B: BlockBackend + ?Sized>(
    backend: &mut B,
    transfers: &[SegmentTransfer<'_>],
    results: &mut [Result<(), BackendError>],
) {
    for (transfer, result) in transfers.iter().zip(results.iter_mut()) {
        *result = match transfer.direction {
            TransferDirection::DiskToGuest => backend.read_segments(transfer.sector, transfer.segments),
            TransferDirection::GuestToDisk => backend.write_segments(transfer.sector, transfer.segments),
        };
    }
}

/// Why the backend could not do what was asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendError {
    /// The storage reported a failure.
    Io,
    /// The sectors are past the end of the storage.
    OutOfRange,
}

/// Why a request failed; the guest gets IOERR (UNSUPP for an unknown type) where a status byte
/// can be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestError {
    /// The chain does not end in a writable status byte inside guest RAM: it was completed with
    /// used length 0 and no status.
    NoStatus,
    /// A buffer lies outside guest RAM.
    BufferOutsideRam(OutsideGuestRam),
    /// A device-readable buffer follows a device-writable one.
    ReadableAfterWritable,
    /// Fewer readable bytes than a request header.
    HeaderTooShort { len: usize },
    /// The data is not a whole number of sectors.
    PartialSector { len: u64 },
    /// The transfer reaches past the end of the disk.
    BeyondCapacity { sector: u64, len: u64 },
    /// A request type this device does not implement.
    Unsupported { request_type: u32 },
    /// The backend failed.
    Backend(BackendError),
}

impl RequestError {
    /// The status byte the guest sees.
    fn status(&self) -> u8 {
        match self {
            RequestError::Unsupported { .. } => VIRTIO_BLK_S_UNSUPP,
            _ => VIRTIO_BLK_S_IOERR,
        }
    }
}

impl From<OutsideGuestRam> for RequestError {
    fn from(outside: OutsideGuestRam) -> Self {
        RequestError::BufferOutsideRam(outside)
    }
}

impl From<BackendError> for RequestError {
    fn from(error: BackendError) -> Self {
        RequestError::Backend(error)
    }
}

/// The decoded request header.
struct Header {
    request_type: u32,
    sector: u64,
}

/// A read or write popped from the queue whose data goes directly between the backend and
/// guest RAM, waiting to go to the backend together with the others of its batch.
struct StagedTransfer {
    head: u16,
    status_addr: u64,
    direction: TransferDirection,
    sector: u64,
    segments: Vec<GuestSegment>,
    data_len: u64,
}

/// What completing a request needs once its data moved.
#[derive(Clone, Copy, Debug)]
struct RequestCompletion {
    head: u16,
    status_addr: u64,
    direction: TransferDirection,
    data_len: u64,
}

impl StagedTransfer {
    fn transfer(&self) -> SegmentTransfer<'_> {
        SegmentTransfer { direction: self.direction, sector: self.sector, segments: &self.segments }
    }

    fn completion(&self) -> RequestCompletion {
        RequestCompletion {
            head: self.head,
            status_addr: self.status_addr,
            direction: self.direction,
            data_len: self.data_len,
        }
    }
}

/// A virtio block device serving requests from `B`.
///
/// The plain reads and writes a queue notification finds are handed to the backend as one
/// batch ([`BlockBackend::transfer_batch`]): QEMU's device then serves them together and merges
/// neighbours (Linux splits a 1 MiB read into a 254-buffer and a 2-buffer request, which QEMU
/// merges back into one I/O when it gets both at once). Every other request (flush, ID, data
/// through the bounce buffer, a malformed one) is served on its own, after the batch before it
/// completed, so a flush still follows the writes the guest sent before it.
///
/// A backend that works in the background (QEMU's device) gets the batch started and the
/// notifying vCPU goes back to its guest at once; the requests complete when the backend hands
/// them back (`VirtioDevice::poll_completions`, on the host device's interrupt). Requests served
/// on their own, and a reset, first wait for everything in flight.
pub struct VirtioBlk<B: BlockBackend> {
    backend: B,
    /// Data passes through here between guest buffers and the backend when it cannot go
    /// directly.
    bounce: Vec<u8>,
    /// The data buffers of the request being served, as segments for the backend (kept to
    /// reuse its allocation; never longer than the backend's `max_segments`).
    segments: Vec<GuestSegment>,
    /// The batch being gathered, and allocations to reuse for the next.
    staged: Vec<StagedTransfer>,
    spare_segments: Vec<Vec<GuestSegment>>,
    /// Requests in the backend's hands, by descriptor head (the backend's tag).
    in_flight: Vec<Option<RequestCompletion>>,
    /// Finished background transfers being completed (kept to reuse its allocation).
    finished: Vec<(u16, Result<(), BackendError>)>,
}

impl<B: BlockBackend> VirtioBlk<B> {
    pub fn new(backend: B) -> Self {
        Self {
            backend,
            bounce: vec![0; BOUNCE_SIZE],
            segments: Vec::new(),
            staged: Vec::new(),
            spare_segments: Vec::new(),
            in_flight: Vec::new(),
            finished: Vec::new(),
        }
    }

    pub fn backend(&self) -> &B {
        &self.backend
    }

    pub fn backend_mut(&mut self) -> &mut B {
        &mut self.backend
    }

    fn config(&self) -> [u8; CONFIG_LEN] {
        let mut config = [0u8; CONFIG_LEN];
        let capacity = self.backend.capacity_sectors().to_le_bytes();
        config[CONFIG_CAPACITY..CONFIG_CAPACITY + capacity.len()].copy_from_slice(&capacity);
        config[CONFIG_SEG_MAX..CONFIG_SEG_MAX + 4].copy_from_slice(&SEG_MAX.to_le_bytes());
        let block_size = (SECTOR_SIZE as u32).to_le_bytes();
        config[CONFIG_BLK_SIZE..CONFIG_BLK_SIZE + 4].copy_from_slice(&block_size);
        config
    }

    /// Stages `chain` for the next batch if it is a well-formed read or write whose data can go
    /// directly; false (nothing staged) for any other request, which `serve` then handles,
    /// errors included.
    fn stage(&mut self, mem: &GuestMemory, chain: &DescriptorChain) -> bool {
        let Some(status_addr) = status_address(mem, chain) else {
            return false;
        };
        let Ok((header, input, output)) = open_request(mem, chain) else {
            return false;
        };
        let (direction, data) = match header.request_type {
            VIRTIO_BLK_T_IN => (TransferDirection::DiskToGuest, &output),
            VIRTIO_BLK_T_OUT => (TransferDirection::GuestToDisk, &input),
            _ => return false,
        };
        let data_len = data.remaining();
        if self.check_range(header.sector, data_len).is_err() || !matches!(self.direct_segments(mem, data), Ok(true)) {
            return false;
        }
        let mut segments = self.spare_segments.pop().unwrap_or_default();
        segments.clone_from(&self.segments);
        self.staged.push(StagedTransfer {
            head: chain.head,
            status_addr,
            direction,
            sector: header.sector,
            segments,
            data_len,
        });
        true
    }

    /// Hands the staged batch to the backend: in the background where it can, otherwise on the
    /// spot (then completed here). False if a request could not be returned to the guest.
    fn dispatch_staged(&mut self, queue: &mut Virtqueue, mem: &GuestMemory, outcome: &mut QueueOutcome) -> bool {
        let mut staged = core::mem::take(&mut self.staged);
        let mut all_returned = true;
        let mut started = 0;
        for transfer in &staged {
            let head = usize::from(transfer.head);
            if self.in_flight.get(head).is_some_and(Option::is_some) {
                // A driver that offers a head still in flight: let the first finish (the tag
                // must be unique), then carry on.
                all_returned &= self.finish_in_flight(queue, mem, outcome);
            }
            let mut result = self.backend.start_transfer(transfer.head, &transfer.transfer());
            if result == Started::Full {
                all_returned &= self.finish_in_flight(queue, mem, outcome);
                result = self.backend.start_transfer(transfer.head, &transfer.transfer());
            }
            if result != Started::InBackground {
                break;
            }
            if self.in_flight.len() <= head {
                self.in_flight.resize(head + 1, None);
            }
            self.in_flight[head] = Some(transfer.completion());
            started += 1;
        }
        self.backend.submit_started();
        if started < staged.len() {
            // On the spot means nothing else in flight (a queueing backend's own rule).
            all_returned &= self.finish_in_flight(queue, mem, outcome);
            all_returned &= self.transfer_on_the_spot(&staged[started..], queue, mem, outcome);
        }
        for mut transfer in staged.drain(..) {
            transfer.segments.clear();
            self.spare_segments.push(transfer.segments);
        }
        self.staged = staged;
        all_returned
    }

    /// Carries out `staged` through `transfer_batch` and completes the requests.
    fn transfer_on_the_spot(
        &mut self,
        staged: &[StagedTransfer],
        queue: &mut Virtqueue,
        mem: &GuestMemory,
        outcome: &mut QueueOutcome,
    ) -> bool {
        let transfers: Vec<SegmentTransfer<'_>> = staged.iter().map(StagedTransfer::transfer).collect();
        let mut results = vec![Ok(()); transfers.len()];
        self.backend.transfer_batch(&transfers, &mut results);
        let mut all_returned = true;
        for (transfer, result) in staged.iter().zip(results) {
            all_returned &= complete_request(queue, mem, transfer.completion(), result, outcome);
        }
        all_returned
    }

    /// Completes the background transfers the backend finished.
    fn reap(&mut self, queue: &mut Virtqueue, mem: &GuestMemory, outcome: &mut QueueOutcome) -> bool {
        let mut finished = core::mem::take(&mut self.finished);
        self.backend.take_completed(&mut finished);
        let mut all_returned = true;
        for (tag, result) in finished.drain(..) {
            match self.in_flight.get_mut(usize::from(tag)).and_then(Option::take) {
                Some(request) => all_returned &= complete_request(queue, mem, request, result, outcome),
                None => log::warn!("disk: the backend finished request {tag}, which is not in flight"),
            }
        }
        self.finished = finished;
        all_returned
    }

    /// Waits for every background transfer and completes them.
    fn finish_in_flight(&mut self, queue: &mut Virtqueue, mem: &GuestMemory, outcome: &mut QueueOutcome) -> bool {
        // What was started but not yet submitted would never finish.
        self.backend.submit_started();
        let mut all_returned = true;
        loop {
            all_returned &= self.reap(queue, mem, outcome);
            if self.backend.transfers_in_flight() == 0 {
                return all_returned;
            }
            core::hint::spin_loop();
        }
    }

    /// Serves one request and writes its status; returns the used length (bytes written into
    /// the guest's buffers) and the problem, if any, for the log.
    fn serve(&mut self, mem: &GuestMemory, chain: &DescriptorChain) -> (u32, Option<RequestError>) {
        let Some(status_addr) = status_address(mem, chain) else {
            return (0, Some(RequestError::NoStatus));
        };
        let mut data_written = 0;
        let (status, error) = match self.execute(mem, chain, &mut data_written) {
            Ok(()) => (VIRTIO_BLK_S_OK, None),
            Err(error) => (error.status(), Some(error)),
        };
        // The address was checked by `status_address`, so this cannot fail; stay safe anyway.
        let status_written = mem.write(Ipa(status_addr), &[status]).is_ok();
        let used = data_written + if status_written { STATUS_LEN } else { 0 };
        // Writable buffers can add up to more than 4 GiB; saturate rather than wrap.
        (u32::try_from(used).unwrap_or(u32::MAX), error)
    }

    /// Carries out the request; `data_written` counts bytes stored into the guest's data
    /// buffers, even if it then fails.
    fn execute(
        &mut self,
        mem: &GuestMemory,
        chain: &DescriptorChain,
        data_written: &mut u64,
    ) -> Result<(), RequestError> {
        let (header, mut input, mut output) = open_request(mem, chain)?;
        match header.request_type {
            VIRTIO_BLK_T_IN => self.read_sectors(mem, header.sector, &mut output, data_written),
            VIRTIO_BLK_T_OUT => self.write_sectors(mem, header.sector, &mut input),
            VIRTIO_BLK_T_FLUSH => Ok(self.backend.flush()?),
            VIRTIO_BLK_T_GET_ID => {
                // A shorter buffer gets a truncated ID, as the spec's "up to 20 bytes" allows.
                *data_written += output.write(mem, &self.backend.device_id())? as u64;
                Ok(())
            }
            request_type => Err(RequestError::Unsupported { request_type }),
        }
    }

    /// Refuses transfers of partial sectors or past the end of the disk.
    fn check_range(&self, sector: u64, len: u64) -> Result<(), RequestError> {
        if !len.is_multiple_of(SECTOR_SIZE) {
            return Err(RequestError::PartialSector { len });
        }
        let end = sector.checked_add(len / SECTOR_SIZE);
        if end.is_none_or(|end| end > self.backend.capacity_sectors()) {
            return Err(RequestError::BeyondCapacity { sector, len });
        }
        Ok(())
    }

    /// Disk to guest: fills the whole of `output`.
    fn read_sectors(
        &mut self,
        mem: &GuestMemory,
        mut sector: u64,
        output: &mut BufferCursor,
        data_written: &mut u64,
    ) -> Result<(), RequestError> {
        self.check_range(sector, output.remaining())?;
        if self.direct_segments(mem, output)? {
            self.backend.read_segments(sector, &self.segments)?;
            *data_written += output.remaining();
            return Ok(());
        }
        while output.remaining() > 0 {
            let chunk = &mut self.bounce[..output.remaining().min(BOUNCE_SIZE as u64) as usize];
            self.backend.read(sector, chunk)?;
            *data_written += output.write(mem, chunk)? as u64;
            sector += chunk.len() as u64 / SECTOR_SIZE;
        }
        Ok(())
    }

    /// Guest to disk: stores the whole of `input`.
    fn write_sectors(
        &mut self,
        mem: &GuestMemory,
        mut sector: u64,
        input: &mut BufferCursor,
    ) -> Result<(), RequestError> {
        self.check_range(sector, input.remaining())?;
        if self.direct_segments(mem, input)? {
            return Ok(self.backend.write_segments(sector, &self.segments)?);
        }
        while input.remaining() > 0 {
            let chunk = &mut self.bounce[..input.remaining().min(BOUNCE_SIZE as u64) as usize];
            input.read(mem, chunk)?;
            self.backend.write(sector, chunk)?;
            sector += chunk.len() as u64 / SECTOR_SIZE;
        }
        Ok(())
    }

    /// Whether the data in `data` can go directly between the backend and guest RAM; if so,
    /// `self.segments` holds it. Not for empty transfers, nor for more buffers than the backend
    /// takes at once.
    fn direct_segments(&mut self, mem: &GuestMemory, data: &BufferCursor) -> Result<bool, RequestError> {
        let max = self.backend.max_segments();
        if max == 0 || data.remaining() == 0 {
            return Ok(false);
        }
        Ok(data.segments(mem, max, &mut self.segments)?)
    }
}

/// Writes a finished request's status and returns it to the guest (used ring); false if the
/// used ring refused it.
fn complete_request(
    queue: &mut Virtqueue,
    mem: &GuestMemory,
    request: RequestCompletion,
    result: Result<(), BackendError>,
    outcome: &mut QueueOutcome,
) -> bool {
    let status = match result {
        Ok(()) => VIRTIO_BLK_S_OK,
        Err(error) => {
            let error = RequestError::Backend(error);
            outcome.note(VirtioError::Block { head: request.head, error });
            error.status()
        }
    };
    let data_written =
        if result.is_ok() && request.direction == TransferDirection::DiskToGuest { request.data_len } else { 0 };
    let status_written = mem.write(Ipa(request.status_addr), &[status]).is_ok();
    let used = data_written + if status_written { STATUS_LEN } else { 0 };
    if let Err(error) = queue.push_used(mem, request.head, u32::try_from(used).unwrap_or(u32::MAX)) {
        outcome.note(VirtioError::Queue(error));
        return false;
    }
    outcome.completed = outcome.completed.saturating_add(1);
    true
}

/// Where the status byte goes: the last byte of the last buffer, which must be writable and in
/// guest RAM. `None` means no status can be reported.
fn status_address(mem: &GuestMemory, chain: &DescriptorChain) -> Option<u64> {
    let last = chain.buffers.last().filter(|b| b.writable && b.len > 0)?;
    let addr = last.addr.checked_add(u64::from(last.len) - 1)?;
    mem.host_address(Ipa(addr), STATUS_LEN).ok().map(|_| addr)
}

/// Checks `chain`'s buffers and reads its header; returns the header, the readable data after it
/// and the writable data before the status byte.
fn open_request<'a>(
    mem: &GuestMemory,
    chain: &'a DescriptorChain,
) -> Result<(Header, BufferCursor<'a>, BufferCursor<'a>), RequestError> {
    if let Some(outside) = chain.outside_ram {
        return Err(outside.into());
    }
    let (readable, writable) = chain.split().ok_or(RequestError::ReadableAfterWritable)?;
    let mut input = BufferCursor::new(readable);
    let mut output = BufferCursor::new(writable);
    output.truncate_end(STATUS_LEN);
    let header = read_header(mem, &mut input)?;
    Ok((header, input, output))
}

fn read_header(mem: &GuestMemory, input: &mut BufferCursor) -> Result<Header, RequestError> {
    let mut raw = [0u8; HEADER_LEN];
    let len = input.read(mem, &mut raw)?;
    if len < HEADER_LEN {
        return Err(RequestError::HeaderTooShort { len });
    }
    let mut request_type = [0u8; 4];
    request_type.copy_from_slice(&raw[HEADER_TYPE..HEADER_TYPE + 4]);
    let mut sector = [0u8; 8];
    sector.copy_from_slice(&raw[HEADER_SECTOR..HEADER_SECTOR + 8]);
    Ok(Header { request_type: u32::from_le_bytes(request_type), sector: u64::from_le_bytes(sector) })
}

impl<B: BlockBackend> VirtioDevice for VirtioBlk<B> {
    fn name(&self) -> &'static str {
        "virtio-blk"
    }

    fn device_type(&self) -> u32 {
        VIRTIO_ID_BLOCK
    }

    fn features(&self) -> u64 {
        FEATURES
    }

    fn num_queues(&self) -> u16 {
        NUM_QUEUES
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        let config = self.config();
        for (i, byte) in data.iter_mut().enumerate() {
            let at = usize::try_from(offset).ok().and_then(|offset| offset.checked_add(i));
            *byte = at.and_then(|at| config.get(at)).copied().unwrap_or(0);
        }
    }

    fn process_queue(
        &mut self,
        index: u16,
        queue: &mut Virtqueue,
        mem: &GuestMemory,
        budget: &mut WorkBudget,
    ) -> QueueOutcome {
        let mut outcome = QueueOutcome::default();
        if index != REQUEST_QUEUE {
            return outcome;
        }
        loop {
            if budget.is_spent() {
                outcome.budget_spent = true;
                break;
            }
            let (head, used_len) = match queue.pop(mem) {
                Ok(None) => break,
                Ok(Some(chain)) => {
                    budget.spend(chain.buffer_bytes());
                    if self.stage(mem, &chain) {
                        continue;
                    }
                    // Served on its own: after the batch gathered so far and everything in flight.
                    if !(self.dispatch_staged(queue, mem, &mut outcome)
                        && self.finish_in_flight(queue, mem, &mut outcome))
                    {
                        break;
                    }
                    let (used_len, error) = self.serve(mem, &chain);
                    if let Some(error) = error {
                        outcome.note(VirtioError::Block { head: chain.head, error });
                    }
                    (chain.head, used_len)
                }
                // One unusable chain: hand it back empty and carry on.
                Err(error @ QueueError::BadChain { head, .. }) => {
                    budget.spend(0);
                    outcome.note(VirtioError::Queue(error));
                    (head, 0)
                }
                Err(error) => {
                    outcome.note(VirtioError::Queue(error));
                    break;
                }
            };
            if let Err(error) = queue.push_used(mem, head, used_len) {
                outcome.note(VirtioError::Queue(error));
                break;
            }
            outcome.completed = outcome.completed.saturating_add(1);
        }
        self.dispatch_staged(queue, mem, &mut outcome);
        outcome
    }

    fn poll_completions(&mut self, index: u16, queue: &mut Virtqueue, mem: &GuestMemory) -> QueueOutcome {
        let mut outcome = QueueOutcome::default();
        if index == REQUEST_QUEUE {
            self.reap(queue, mem, &mut outcome);
        }
        outcome
    }

    fn reset(&mut self) {
        // The backend may still move data into guest RAM: wait for it, the requests are dropped
        // with the queue.
        self.backend.submit_started();
        while self.backend.transfers_in_flight() > 0 {
            self.backend.take_completed(&mut self.finished);
            self.finished.clear();
            core::hint::spin_loop();
        }
        self.in_flight.clear();
    }
}
