//! The virtual GIC of a hybrid VM (DESIGN.md §7, palacios-hvm.md §7.11): vCPUs
//! `[0, ros_vcpus)` are the ROS, the rest the HRT.
//!
//! - The distributor is the ROS's: SPIs route to ROS vCPUs only, and its enable bits do not
//!   gate the HRT's own SGIs and PPIs (a ROS reboot must not silence the HRT).
//! - An SGI from a ROS vCPU reaches ROS vCPUs only; the HRT may signal anyone.
//! - Redistributor frames: GICR_TYPER.Last is set on the ROS's last frame as well as on the
//!   last one, so Linux's walk stops at its own CPUs (the exit path also refuses ROS accesses
//!   to HRT frames).
//! - Resetting a partition resets its vCPUs' SGIs and PPIs (and, for the ROS, the
//!   distributor) and leaves the other partition's state alone.

use super::irq;
use super::vgic::Vgic;
use super::view::{Distributor, Groups, VcpuState};

impl Vgic {
    /// Makes this the GIC of a hybrid VM whose first `ros_vcpus` vCPUs are the ROS.
    pub fn set_partition(&mut self, ros_vcpus: usize) {
        self.cfg.ros_vcpus = ros_vcpus.clamp(1, self.cfg.num_vcpus);
    }

    pub fn ros_vcpus(&self) -> usize {
        self.cfg.ros_vcpus
    }

    /// Whether `vcpu` belongs to the HRT partition.
    pub fn is_hrt_vcpu(&self, vcpu: usize) -> bool {
        vcpu >= self.cfg.ros_vcpus
    }

    /// How many vCPUs (from 0) an SGI from `sender` can reach.
    pub(super) fn sgi_reach(&self, sender: usize) -> usize {
        if self.is_hrt_vcpu(sender) {
            self.cfg.num_vcpus
        } else {
            self.cfg.ros_vcpus
        }
    }

    /// Whether `vcpu` may access redistributor frame `frame`: the ROS its own partition's,
    /// the HRT every frame.
    pub fn may_access_frame(&self, vcpu: usize, frame: usize) -> bool {
        frame < self.sgi_reach(vcpu)
    }

    /// Puts `vcpu`'s SGIs, PPIs, redistributor and list-register record back to reset, keeping
    /// the hardware links of its timer PPIs; SPIs its list registers held go back to the
    /// distributor. The caller makes sure the vCPU is not loaded anywhere (or is dropped before
    /// it runs again).
    pub fn reset_vcpu(&self, vcpu: usize) {
        let Some(mutex) = self.vcpus.get(vcpu) else {
            return;
        };
        let mut state = self.lock(mutex);
        let links: [Option<u32>; 32] = core::array::from_fn(|intid| state.private[intid].hw_pintid);
        let held_spis = state.lrs;
        *state = VcpuState::new();
        for (irq, link) in state.private.iter_mut().zip(links) {
            irq.hw_pintid = link;
        }
        // The vCPU's lock before the distributor's: the lock order.
        let mut dist = self.lock_distributor();
        dist.awake &= !(1 << vcpu);
        for (index, intid) in held_spis.iter().enumerate() {
            if let Some(spi) = intid.and_then(irq::spi_index).and_then(|spi| dist.spis.get_mut(spi)) {
                spi.leave_lr(vcpu, index);
            }
        }
    }

    /// Resets the ROS partition's part of the GIC: the distributor (enables, SPIs, routes) and
    /// the ROS vCPUs' redistributors. HRT vCPUs keep their state.
    pub fn reset_ros(&self) {
        {
            let mut dist = self.lock_distributor();
            let links: alloc::vec::Vec<_> = dist.spis.iter().map(|spi| spi.hw_pintid).collect();
            let hrt_awake = dist.awake & !((1 << self.cfg.ros_vcpus) - 1);
            *dist = Distributor::new();
            for (spi, link) in dist.spis.iter_mut().zip(links) {
                spi.hw_pintid = link;
            }
            dist.awake = hrt_awake;
            self.store_groups(&mut dist, Groups::default());
        }
        for vcpu in 0..self.cfg.ros_vcpus {
            self.reset_vcpu(vcpu);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gic::Kick;

    const GICR_WAKER: u64 = 0x14;
    const GICR_TYPER: u64 = 0x8;
    const GICR_STRIDE: u64 = 0x2_0000;
    const TYPER_LAST: u64 = 1 << 4;
    const GICD_CTLR: u64 = 0;
    const GICD_ISENABLER1: u64 = 0x104;
    const GICD_IROUTER: u64 = 0x6000;
    const GICR_ISENABLER0: u64 = 0x1_0100;
    const CTLR_ARE_GRP1: u64 = 0x12;

    /// 3 ROS vCPUs and 1 HRT vCPU, every SGI enabled everywhere, redistributors awake.
    fn hybrid() -> Vgic {
        let mut vgic = Vgic::new(4);
        vgic.set_partition(3);
        for vcpu in 0..4 {
            let frame = vcpu as u64 * GICR_STRIDE;
            vgic.gicr_write(frame + GICR_WAKER, 4, 0);
            vgic.gicr_write(frame + GICR_ISENABLER0, 4, 0xffff_ffff);
        }
        vgic
    }

    #[test]
    fn ros_sgis_reach_ros_vcpus_only_the_hrt_reaches_everyone() {
        let vgic = hybrid();
        vgic.gicd_write(GICD_CTLR, 4, CTLR_ARE_GRP1);
        let broadcast = 1 << 40 | 5 << 24;
        assert_eq!(vgic.send_sgi(0, broadcast), Kick::vcpu(1) | Kick::vcpu(2), "IRM=1 from the ROS");
        let to_hrt = 5 << 24 | 1 << 3;
        assert_eq!(vgic.send_sgi(0, to_hrt), Kick::NONE, "a target list naming the HRT core");
        assert!(!vgic.has_deliverable(3));
        assert_eq!(vgic.send_sgi(3, broadcast), Kick::vcpu(0) | Kick::vcpu(1) | Kick::vcpu(2));
        assert_eq!(vgic.send_sgi(3, to_hrt), Kick::vcpu(3), "the HRT signals itself");
    }

    #[test]
    fn spis_never_route_to_the_hrt() {
        let vgic = hybrid();
        vgic.gicd_write(GICD_CTLR, 4, CTLR_ARE_GRP1);
        vgic.gicd_write(GICD_ISENABLER1, 4, 1);
        vgic.gicd_write(GICD_IROUTER + 8 * 32, 8, 3);
        assert_eq!(vgic.set_level(32, 0, true), Kick::NONE, "routed at the HRT core: nowhere");
        vgic.gicd_write(GICD_IROUTER + 8 * 32, 8, 2);
        assert_eq!(vgic.set_level(32, 0, false), Kick::NONE);
        assert_eq!(vgic.set_level(32, 0, true), Kick::vcpu(2));
    }

    #[test]
    fn the_hrt_does_not_need_the_ros_distributor() {
        let vgic = hybrid();
        vgic.gicd_write(GICD_CTLR, 4, 0);
        assert_eq!(vgic.send_sgi(3, 5 << 24 | 1 << 3), Kick::vcpu(3));
        assert!(vgic.has_deliverable(3), "HRT SGI with the distributor off");
        assert_eq!(vgic.send_sgi(3, 5 << 24 | 1), Kick::NONE);
        assert!(!vgic.has_deliverable(0), "ROS SGIs still wait for the distributor");
    }

    #[test]
    fn the_ros_walk_of_redistributors_stops_at_its_last_cpu() {
        let vgic = hybrid();
        let last = |frame: u64| vgic.gicr_read(frame * GICR_STRIDE + GICR_TYPER, 8).value & TYPER_LAST != 0;
        assert_eq!([last(0), last(1), last(2), last(3)], [false, false, true, true]);
        assert!(vgic.may_access_frame(0, 2) && !vgic.may_access_frame(0, 3));
        assert!(vgic.may_access_frame(3, 0) && vgic.may_access_frame(3, 3));
    }

    #[test]
    fn resetting_one_partition_leaves_the_other_alone() {
        let vgic = hybrid();
        vgic.gicd_write(GICD_CTLR, 4, CTLR_ARE_GRP1);
        vgic.set_hw_mapping(27, 27);
        vgic.send_sgi(3, 5 << 24 | 1 << 3);
        vgic.send_sgi(0, 5 << 24 | 1 << 1);
        vgic.reset_ros();
        assert!(vgic.has_deliverable(3), "the HRT's pending SGI survives a ROS reset");
        assert!(!vgic.has_deliverable(1), "the ROS's is gone");
        assert_eq!(vgic.gicd_read(GICD_CTLR, 4).value & 0x3, 0, "distributor back to disabled");
        vgic.reset_vcpu(3);
        assert!(!vgic.has_deliverable(3));
        assert_eq!(vgic.irq(3, 27).unwrap().hw_pintid, Some(27), "timer link kept");
        assert_eq!(vgic.irq(0, 27).unwrap().hw_pintid, Some(27));
    }

    #[test]
    fn a_reset_vcpu_gives_back_the_spis_its_list_registers_held() {
        let vgic = hybrid();
        vgic.gicd_write(GICD_CTLR, 4, CTLR_ARE_GRP1);
        vgic.gicd_write(GICD_ISENABLER1, 4, 1);
        vgic.gicd_write(GICD_IROUTER + 8 * 32, 8, 1);
        vgic.set_level(32, 0, true);
        let mut lrs = [0u64; 4];
        vgic.flush_lrs(1, &mut lrs);
        assert_eq!(vgic.irq(1, 32).unwrap().lr.map(|slot| slot.vcpu), Some(1));
        vgic.reset_vcpu(1);
        assert_eq!(vgic.irq(1, 32).unwrap().lr, None, "no slot left pointing at the reset vCPU");
        vgic.gicr_write(GICR_STRIDE + GICR_WAKER, 4, 0);
        assert!(vgic.has_deliverable(1), "the line is still high: pending again for its target");
    }
}
