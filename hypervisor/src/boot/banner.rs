//! The boot banner: what the hypervisor found, one fact per line, in a stable format that the
//! integration tests (and people) read.

use core::fmt::{self, Write};

use super::host_dtb::HostPlatform;
use crate::mm::{HumanSize, MemRange};

/// Writes the banner. `online[i]` says whether pCPU `i` answered its start-up.
pub fn write_banner(out: &mut dyn Write, platform: &HostPlatform, online: &[bool]) -> fmt::Result {
    writeln!(out, "AArch64 EL2 hypervisor {}", env!("CARGO_PKG_VERSION"))?;
    let total: u64 = platform.memory.iter().map(|m| m.size).sum();
    writeln!(out, "memory: {} in {} range(s)", HumanSize(total), platform.memory.len())?;
    for range in &platform.memory {
        writeln!(out, "  ram {range}")?;
    }
    let up = online.iter().filter(|&&o| o).count();
    writeln!(out, "pCPUs: {} ({} online)", platform.cpus.len(), up)?;
    for (index, cpu) in platform.cpus.iter().enumerate() {
        let state = if online.get(index).copied().unwrap_or(false) { "online" } else { "OFFLINE" };
        writeln!(out, "  pcpu{index} mpidr={:#x} {state}", cpu.mpidr)?;
    }
    match &platform.gic {
        Some(gic) => writeln!(out, "gic: v3 distributor {} redistributors {}", gic.distributor, gic.redistributors)?,
        None => writeln!(out, "gic: none found")?,
    }
    match &platform.uart {
        Some(uart) => writeln!(out, "uart: pl011 at {:#x}", uart.start)?,
        None => writeln!(out, "uart: none found")?,
    }
    writeln!(
        out,
        "psci: {}",
        match platform.psci {
            Some(super::host_dtb::PsciConduit::Smc) => "smc",
            Some(super::host_dtb::PsciConduit::Hvc) => "hvc",
            None => "none",
        }
    )?;
    writeln!(out, "command line: \"{}\"", platform.bootargs)?;
    writeln!(out, "modules: {}", platform.modules.len())?;
    for module in &platform.modules {
        write!(out, "  {} at {}", module.kind, RangeBrief(module.range))?;
        match &module.bootargs {
            Some(args) => writeln!(out, " bootargs=\"{args}\"")?,
            None => writeln!(out)?,
        }
    }
    Ok(())
}

struct RangeBrief(MemRange);

impl fmt::Display for RangeBrief {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x} size {:#x} ({})", self.0.start, self.0.size, HumanSize(self.0.size))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot::host_dtb::{BootModule, CpuInfo, ModuleKind};
    use alloc::string::String;
    use alloc::vec;

    #[test]
    fn banner_lists_cpus_and_modules() {
        let platform = HostPlatform {
            memory: vec![MemRange::new(0x4000_0000, 2 << 30)],
            cpus: vec![CpuInfo { mpidr: 0 }, CpuInfo { mpidr: 1 }],
            modules: vec![BootModule {
                kind: ModuleKind::Kernel,
                range: MemRange::new(0x4400_0000, 0x1000),
                bootargs: Some("console=ttyAMA0".into()),
            }],
            ..Default::default()
        };
        let mut out = String::new();
        write_banner(&mut out, &platform, &[true, false]).unwrap();
        assert!(out.contains("pCPUs: 2 (1 online)"), "{out}");
        assert!(out.contains("pcpu1 mpidr=0x1 OFFLINE"), "{out}");
        assert!(out.contains("kernel at 0x44000000 size 0x1000 (4 KiB) bootargs=\"console=ttyAMA0\""), "{out}");
        assert!(out.contains("memory: 2 GiB in 1 range(s)"), "{out}");
    }
}
