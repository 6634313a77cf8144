//! The host memory plan: which physical RAM the hypervisor keeps, where its heap goes and which
//! RAM backs the guest. Pure logic, decided once at boot from the host DTB.
//!
//! ```text
//! RAM base ┌──────────────────────┐
//!          │ QEMU boot stub       │ 2 MiB
//!          │ hypervisor image     │ (text, data, bss with the boot stack)
//!          │ host DTB (if here)   │
//!          │ heap                 │ up to HYP_RESERVED_SIZE from RAM base
//!          ├──────────────────────┤
//!          │ guest-loader modules │ anywhere outside the hypervisor's region
//!          │ ...                  │
//!          │ guest RAM            │ highest free 2 MiB-aligned range that fits
//! RAM end  └──────────────────────┘
//! ```

use alloc::vec::Vec;
use core::fmt;

use super::{align_down, align_up, HumanSize, MemRange};

/// RAM at the bottom of the first memory bank that belongs to the hypervisor.
pub const HYP_RESERVED_SIZE: u64 = 64 << 20;
/// Guest RAM given when `mem=` is not set, if it fits.
pub const DEFAULT_GUEST_MEM: u64 = 1 << 30;
/// Guest RAM is mapped with 2 MiB stage-2 blocks, so it is 2 MiB-aligned and -sized.
pub const GUEST_RAM_ALIGN: u64 = 2 << 20;

/// The decided plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryPlan {
    /// Everything the hypervisor owns (never in a stage-2 table).
    pub hypervisor: MemRange,
    /// The heap, inside `hypervisor`.
    pub heap: MemRange,
    /// Host-physical RAM that backs the guest's RAM.
    pub guest_ram: MemRange,
}

/// Inputs to [`plan`].
pub struct PlanInput<'a> {
    pub ram: &'a [MemRange],
    pub image: MemRange,
    pub dtb: MemRange,
    pub modules: &'a [MemRange],
    /// `mem=`; `None` means the default.
    pub guest_mem: Option<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlanError {
    NoRam,
    /// The image is not inside the first RAM bank's reserved area.
    ImageOutsideReservedArea {
        image: MemRange,
        reserved: MemRange,
    },
    /// A module overlaps hypervisor memory.
    ModuleOverlapsHypervisor {
        module: MemRange,
        hypervisor: MemRange,
    },
    /// A module lies outside RAM.
    ModuleOutsideRam(MemRange),
    /// A module overlaps the host DTB (QEMU wrote one over the other).
    ModuleOverlapsDtb {
        module: MemRange,
        dtb: MemRange,
    },
    /// Not enough free RAM for the requested guest memory.
    NotEnoughRam {
        wanted: u64,
        largest_free: u64,
    },
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoRam => write!(f, "the host device tree declares no RAM"),
            Self::ImageOutsideReservedArea { image, reserved } => {
                write!(f, "the hypervisor image {image} is not inside its reserved area {reserved}")
            }
            Self::ModuleOverlapsHypervisor { module, hypervisor } => write!(
                f,
                "guest-loader module at {module} overlaps hypervisor memory {hypervisor}; \
                 load modules at or above {:#x} (guest-loader addr=)",
                hypervisor.end()
            ),
            Self::ModuleOverlapsDtb { module, dtb } => write!(
                f,
                "guest-loader module at {module} overlaps the host device tree at {dtb} \
                 (QEMU puts it at RAM base + 128 MiB); move the module's addr="
            ),
            Self::ModuleOutsideRam(module) => {
                write!(f, "guest-loader module at {module} is outside RAM; raise QEMU's -m or move addr=")
            }
            Self::NotEnoughRam { wanted, largest_free } => write!(
                f,
                "not enough RAM for {} of guest memory (largest free 2 MiB-aligned range: {}); \
                 raise QEMU's -m or lower mem=",
                HumanSize(*wanted),
                HumanSize(*largest_free)
            ),
        }
    }
}

/// Decides the memory plan; every failure names its fix.
pub fn plan(input: &PlanInput<'_>) -> Result<MemoryPlan, PlanError> {
    let first_bank = *input.ram.iter().min_by_key(|r| r.start).ok_or(PlanError::NoRam)?;
    let hypervisor = MemRange::new(first_bank.start, HYP_RESERVED_SIZE.min(first_bank.size));
    if !hypervisor.contains_range(&input.image) {
        return Err(PlanError::ImageOutsideReservedArea { image: input.image, reserved: hypervisor });
    }
    let mut heap_start = input.image.end();
    if hypervisor.overlaps(&input.dtb) && input.dtb.start >= input.image.start {
        heap_start = heap_start.max(input.dtb.end());
    }
    let heap_start = align_up(heap_start, GUEST_RAM_ALIGN);
    let heap = MemRange::new(heap_start, hypervisor.end().saturating_sub(heap_start));

    for module in input.modules {
        if module.overlaps(&hypervisor) {
            return Err(PlanError::ModuleOverlapsHypervisor { module: *module, hypervisor });
        }
        if module.overlaps(&input.dtb) {
            return Err(PlanError::ModuleOverlapsDtb { module: *module, dtb: input.dtb });
        }
        if !input.ram.iter().any(|bank| bank.contains_range(module)) {
            return Err(PlanError::ModuleOutsideRam(*module));
        }
    }

    let mut busy: Vec<MemRange> = input.modules.to_vec();
    busy.push(hypervisor);
    busy.push(input.dtb);
    let gaps = free_gaps(input.ram, &busy);
    let largest_free = gaps.iter().map(|g| g.size).max().unwrap_or(0);
    let wanted = input.guest_mem.unwrap_or(DEFAULT_GUEST_MEM.min(largest_free));
    if wanted == 0 || wanted > largest_free {
        return Err(PlanError::NotEnoughRam { wanted: input.guest_mem.unwrap_or(DEFAULT_GUEST_MEM), largest_free });
    }
    // Highest gap that fits, taking its top end: keeps low RAM (and modules) out of the way.
    let gap = gaps.iter().filter(|g| g.size >= wanted).max_by_key(|g| g.start).expect("largest gap fits");
    let guest_ram = MemRange::new(gap.end() - wanted, wanted);
    Ok(MemoryPlan { hypervisor, heap, guest_ram })
}

/// RAM minus `busy`, cut to 2 MiB-aligned pieces.
fn free_gaps(ram: &[MemRange], busy: &[MemRange]) -> Vec<MemRange> {
    let mut gaps = Vec::new();
    for bank in ram {
        let mut cursor = align_up(bank.start, GUEST_RAM_ALIGN);
        let bank_end = align_down(bank.end(), GUEST_RAM_ALIGN);
        let mut blockers: Vec<&MemRange> = busy.iter().filter(|b| b.overlaps(bank)).collect();
        blockers.sort_by_key(|b| b.start);
        for blocker in blockers {
            let gap_end = align_down(blocker.start, GUEST_RAM_ALIGN);
            if gap_end > cursor {
                gaps.push(MemRange::new(cursor, gap_end - cursor));
            }
            cursor = cursor.max(align_up(blocker.end(), GUEST_RAM_ALIGN));
        }
        if bank_end > cursor {
            gaps.push(MemRange::new(cursor, bank_end - cursor));
        }
    }
    gaps
}

#[cfg(test)]
mod tests {
    use super::*;

    const RAM_2G: MemRange = MemRange::new(0x4000_0000, 0x8000_0000);
    const IMAGE: MemRange = MemRange::new(0x4020_0000, 0x10_0000);
    const DTB: MemRange = MemRange::new(0x4040_0000, 0x10_0000);

    fn input<'a>(modules: &'a [MemRange], guest_mem: Option<u64>) -> PlanInput<'a> {
        PlanInput { ram: core::slice::from_ref(&RAM_2G), image: IMAGE, dtb: DTB, modules, guest_mem }
    }

    #[test]
    fn default_plan_puts_guest_at_top_and_heap_after_dtb() {
        let modules = [MemRange::new(0x4400_0000, 33 << 20), MemRange::new(0x4800_0000, 20 << 20)];
        let plan = plan(&input(&modules, None)).unwrap();
        assert_eq!(plan.hypervisor, MemRange::new(0x4000_0000, HYP_RESERVED_SIZE));
        assert_eq!(plan.heap.start, 0x4060_0000);
        assert_eq!(plan.heap.end(), 0x4400_0000);
        assert_eq!(plan.guest_ram, MemRange::new(0x8000_0000, 1 << 30));
        for m in &modules {
            assert!(!plan.guest_ram.overlaps(m));
        }
    }

    #[test]
    fn module_over_hypervisor_is_refused_with_the_fix() {
        let modules = [MemRange::new(0x4100_0000, 0x1000)];
        let err = plan(&input(&modules, None)).unwrap_err();
        assert!(matches!(err, PlanError::ModuleOverlapsHypervisor { .. }));
        assert!(format!("{err}").contains("0x44000000"), "{err}");
    }

    #[test]
    fn module_over_the_dtb_is_refused() {
        // Where QEMU puts the DTB when RAM is large: RAM base + 128 MiB.
        let dtb = MemRange::new(0x4800_0000, 0x10_0000);
        let modules = [MemRange::new(0x4800_0000, 0x1000)];
        let ram = [RAM_2G];
        let input = PlanInput { ram: &ram, image: IMAGE, dtb, modules: &modules, guest_mem: None };
        assert!(matches!(plan(&input), Err(PlanError::ModuleOverlapsDtb { .. })));
    }

    #[test]
    fn module_outside_ram_is_refused() {
        let modules = [MemRange::new(0x1_0000_0000 - 0x800, 0x1000)];
        assert!(matches!(plan(&input(&modules, None)), Err(PlanError::ModuleOutsideRam(_))));
    }

    #[test]
    fn too_much_guest_memory_is_refused() {
        let err = plan(&input(&[], Some(2 << 30))).unwrap_err();
        assert!(matches!(err, PlanError::NotEnoughRam { wanted, .. } if wanted == 2 << 30));
    }

    #[test]
    fn small_machine_gets_what_fits_by_default() {
        let ram = [MemRange::new(0x4000_0000, 512 << 20)];
        let p = plan(&PlanInput { ram: &ram, image: IMAGE, dtb: DTB, modules: &[], guest_mem: None }).unwrap();
        assert_eq!(p.guest_ram, MemRange::new(0x4400_0000, (512 - 64) << 20));
    }

    #[test]
    fn guest_ram_avoids_modules_in_the_middle() {
        let modules = [MemRange::new(0x9000_0000, 0x100_0000)];
        let p = plan(&input(&modules, Some(1 << 30))).unwrap();
        assert!(!p.guest_ram.overlaps(&modules[0]));
        assert_eq!(p.guest_ram.start % GUEST_RAM_ALIGN, 0);
    }
}
