"""gdb helpers for debugging the hypervisor under QEMU (loaded by `make gdb`).

Commands (each takes a snapshot of a stopped machine; see DEBUGGING.md):
  hyp-vcpus          every vCPU: run state, the pCPU it is loaded on, PC and exception level
  hyp-lrs [PCPU]     list registers of each pCPU (as last written at guest entry) decoded,
                     with the derived ELRSR, and those saved with switched-out vCPUs
  hyp-s2 IPA         walk the guest's stage-2 table (VTTBR_EL2) for a guest-physical address
  hyp-pending        pending / active SGIs, PPIs and SPIs in the virtual GIC
  hyp-exits          the exit counters of the exit profile, per vCPU
  hyp-hvm            a hybrid VM: partitions, their RAM and stage-2 tables, the HVM state
  hyp-break NAME     a breakpoint on a function by its short name (handle_mmio_abort), which
                     plain `break` does not resolve for Rust functions
  hyp-serror VCPU    give that vCPU a virtual SError at its next IRQ exit (QEMU has no physical
                     SErrors: this tests a guest's SError handling)

If build/hrt.elf sits next to the hypervisor's ELF, its symbols are loaded too (the HRT is
linked at the addresses it runs at), so `break hrt_main` stops an HRT core.

The state comes from the hypervisor's statics (hypervisor::vm::VM, vm::cpus::VCPUS/PCPUS,
vm::run::HYP_DEBUG_LRS, vm::stats::PROFILES) and the CPUs' registers through QEMU's gdb stub.
"""

import os
import re

import gdb

MAX_VCPUS = 8
# Must match hypervisor/src/profile/mod.rs (ExitKind::ALL order).
EXIT_KINDS = ["wfi", "wfe", "hvc", "smc", "sgi", "id_register", "mmio", "mmio_no_syndrome",
              "instruction_abort", "undef", "irq", "other", "physical_timer",
              "tlb_maintenance", "serror"]
LR_STATES = ["invalid", "pending", "active", "pending+active"]


def rust(expr):
    """Evaluates a Rust expression (the stop may be in assembly, so force the language)."""
    gdb.execute("set language rust", to_string=True)
    return gdb.parse_and_eval(expr)


class PhysicalMemory:
    """QEMU's gdb stub reads memory through the stopped CPU's current translation regime: in a
    guest (an HRT core at EL1, Linux) the hypervisor's addresses mean nothing. The hypervisor
    maps itself at VA = PA, so its statics are read in QEMU's physical memory mode instead."""

    def __enter__(self):
        self.switched = self.packet("Qqemu.PhyMemMode:1")
        return self

    def __exit__(self, *exc):
        if self.switched:
            self.packet("Qqemu.PhyMemMode:0")
        return False

    @staticmethod
    def packet(text):
        try:
            return "OK" in gdb.execute(f"maint packet {text}", to_string=True)
        except gdb.error:
            return False  # not connected, or not QEMU


def with_physical_memory(invoke):
    """Runs a helper command with QEMU's gdb stub in physical memory mode."""
    def wrapped(self, arg, from_tty):
        with PhysicalMemory():
            return invoke(self, arg, from_tty)
    return wrapped


def locked(value):
    """The data inside a spin::Mutex / spin::Once / UnsafeCell / MaybeUninit wrapper."""
    for _ in range(8):
        names = [f.name for f in value.type.fields()]
        if "inner" in names and value.type.name.startswith("spin::mutex::Mutex"):
            value = value["inner"]
        elif "data" in names:
            value = value["data"]
        elif "value" in names:
            value = value["value"]
        elif names == ["__0"]:
            value = value["__0"]
        else:
            return value
    return value


def vm():
    return locked(rust("hypervisor::vm::VM"))


def vec_items(vec):
    """The elements of a Rust Vec."""
    length = int(vec["len"])
    pointer = vec["buf"]["inner"]["ptr"]["pointer"]["pointer"]
    element = vec.type.template_argument(0)
    base = pointer.cast(element.pointer())
    return [base[i] for i in range(length)]


def thread_registers(pcpu):
    """PC, CPSR and ELR_EL2 of the QEMU CPU for pCPU `pcpu` (gdb thread pcpu + 1)."""
    selected = gdb.selected_thread()
    for thread in gdb.selected_inferior().threads():
        if thread.num == pcpu + 1:
            thread.switch()
            regs = {name: int(gdb.parse_and_eval("$" + name)) & 0xFFFF_FFFF_FFFF_FFFF for name in ("pc", "cpsr", "ELR_EL2")}
            selected.switch()
            return regs
    return None


class HypVcpus(gdb.Command):
    """List vCPUs: run state, pCPU, PC and EL."""

    def __init__(self):
        super().__init__("hyp-vcpus", gdb.COMMAND_USER)

    @with_physical_memory
    def invoke(self, arg, from_tty):
        count = int(vm()["vcpu_count"])
        loaded = {}
        for pcpu in range(MAX_VCPUS):
            queue = str(locked(rust(f"hypervisor::vm::cpus::PCPUS[{pcpu}].queue")))
            match = re.search(r"current: core::option::Option<usize>::Some\((\d+)\)", queue)
            if match:
                loaded[int(match.group(1))] = pcpu
        print(f"{count} vCPU(s)")
        for vcpu in range(count):
            slot = locked(rust(f"hypervisor::vm::cpus::VCPUS[{vcpu}].slot"))
            state = str(slot["state"]).split("::")[-1]
            if vcpu in loaded:
                pcpu = loaded[vcpu]
                regs = thread_registers(pcpu)
                el = (regs["cpsr"] >> 2) & 3
                if el == 2:
                    where = f"pCPU in the hypervisor (pc {regs['pc']:#x}), guest pc {regs['ELR_EL2']:#x}"
                else:
                    where = f"guest running at EL{el}, pc {regs['pc']:#x}"
                print(f"vcpu{vcpu}: {state}, loaded on pcpu{pcpu}: {where}")
            else:
                print(f"vcpu{vcpu}: {state}, saved, pc {int(slot['frame']['elr']):#x}")


def decode_lr(raw):
    state = LR_STATES[(raw >> 62) & 3]
    hw = (raw >> 61) & 1
    group = (raw >> 60) & 1
    priority = (raw >> 48) & 0xFF
    vintid = raw & 0xFFFFFFFF
    extra = f"pINTID {(raw >> 32) & 0x1FFF}" if hw else f"EOI-maintenance {(raw >> 41) & 1}"
    return state, f"vINTID {vintid:<4} {state:<14} group{group} priority {priority:#04x} HW {hw} {extra}"


class HypLrs(gdb.Command):
    """Decode list registers (ICH_LR<n>_EL2) and the derived ELRSR."""

    def __init__(self):
        super().__init__("hyp-lrs", gdb.COMMAND_USER)

    @with_physical_memory
    def invoke(self, arg, from_tty):
        count = int(vm()["vcpu_count"])
        pcpus = [int(arg)] if arg.strip() else range(count)
        for pcpu in pcpus:
            raws = [int(rust(f"hypervisor::vm::run::HYP_DEBUG_LRS[{pcpu}][{n}].v.value")) & 0xFFFF_FFFF_FFFF_FFFF
                    for n in range(4)]
            self.show(f"pcpu{pcpu} (at its last guest entry)", raws)
        for vcpu in range(count):
            slot = locked(rust(f"hypervisor::vm::cpus::VCPUS[{vcpu}].slot"))
            if "Waiting" in str(slot["state"]) or "Runnable" in str(slot["state"]):
                raws = [int(slot["context"]["gic"]["lrs"][n]) for n in range(4)]
                if any(raws):
                    self.show(f"vcpu{vcpu} (saved)", raws)

    @staticmethod
    def show(title, raws):
        elrsr = 0
        print(title)
        for n, raw in enumerate(raws):
            state, text = decode_lr(raw)
            eoi_pending = state == "invalid" and not (raw >> 61) & 1 and (raw >> 41) & 1
            if state == "invalid" and not eoi_pending:
                elrsr |= 1 << n
            print(f"  LR{n} = {raw:#018x}  {text}")
        print(f"  ELRSR (derived) = {elrsr:#06b}  (bit n set: LR n is free)")


class HypStage2(gdb.Command):
    """Walk the stage-2 table for an IPA: hyp-s2 IPA."""

    def __init__(self):
        super().__init__("hyp-s2", gdb.COMMAND_USER)

    @with_physical_memory
    def invoke(self, arg, from_tty):
        ipa = int(gdb.parse_and_eval(arg))
        table = int(gdb.parse_and_eval("$VTTBR_EL2")) & 0x0000_FFFF_FFFF_FFFE
        memory = gdb.selected_inferior()
        # 4 KiB granule, 39-bit IPA, starting at level 1.
        for level, shift in ((1, 30), (2, 21), (3, 12)):
            index = (ipa >> shift) & 0x1FF
            entry = int.from_bytes(memory.read_memory(table + index * 8, 8).tobytes(), "little")
            kind = entry & 3
            print(f"  L{level}[{index}] @ {table + index * 8:#x} = {entry:#018x}")
            if kind in (0, 2):
                print(f"IPA {ipa:#x}: not mapped (faults to the hypervisor: MMIO or unassigned)")
                return
            if kind == 1 or level == 3:
                out = entry & 0x0000_FFFF_FFFF_F000 & ~((1 << shift) - 1)
                pa = out | (ipa & ((1 << shift) - 1))
                size = {1: "1 GiB block", 2: "2 MiB block", 3: "4 KiB page"}[level]
                s2ap = ["none", "read-only", "write-only", "read-write"][(entry >> 6) & 3]
                memattr = (entry >> 2) & 0xF
                xn = (entry >> 54) & 1
                print(f"IPA {ipa:#x} -> PA {pa:#x} ({size}, {s2ap}, MemAttr {memattr:#x}, XN {xn})")
                return
            table = entry & 0x0000_FFFF_FFFF_F000


class HypPending(gdb.Command):
    """Show pending/active interrupts in the virtual GIC."""

    def __init__(self):
        super().__init__("hyp-pending", gdb.COMMAND_USER)

    @with_physical_memory
    def invoke(self, arg, from_tty):
        # Each vCPU's interrupts and the distributor's SPIs have their own lock; gdb reads
        # through them (the target is stopped).
        vgic = vm()["vgic"]
        def describe(irq):
            flags = [name for name in ("enabled", "latch", "line", "active") if bool(irq[name])]
            in_lr = "in LR" if "Some" in str(irq["lr"]) else ""
            return flags, in_lr
        shown = 0
        for vcpu, state in enumerate(vec_items(vgic["vcpus"])):
            state = locked(state)
            for intid in range(32):
                flags, in_lr = describe(state["private"][intid])
                if {"latch", "line", "active"} & set(flags) or in_lr:
                    kind = "SGI" if intid < 16 else "PPI"
                    print(f"vcpu{vcpu} {kind} {intid}: {' '.join(flags)} {in_lr}")
                    shown += 1
        for n, irq in enumerate(vec_items(locked(vgic["dist"])["spis"])):
            flags, in_lr = describe(irq)
            if {"latch", "line", "active"} & set(flags) or in_lr:
                print(f"SPI {32 + n}: {' '.join(flags)} {in_lr}")
                shown += 1
        print(f"{shown} interrupt(s) pending, active or in a list register")


class HypExits(gdb.Command):
    """Show the exit counters per vCPU."""

    def __init__(self):
        super().__init__("hyp-exits", gdb.COMMAND_USER)

    @with_physical_memory
    def invoke(self, arg, from_tty):
        count = int(vm()["vcpu_count"])
        for vcpu in range(count):
            profile = locked(rust(f"hypervisor::vm::stats::PROFILES[{vcpu}]"))
            counts = [(name, int(profile["exits"][i]["count"])) for i, name in enumerate(EXIT_KINDS)]
            total = sum(c for _, c in counts)
            detail = " ".join(f"{name}={c}" for name, c in counts if c)
            print(f"vcpu{vcpu}: exits={total} injected={int(profile['injected'])} switches={int(profile['switches'])} {detail}")


def option_inner(value):
    """The payload of a Rust Option, or None. (gdb shows an enum either as its active
    variant, with field __0, or as a struct of all variants, depending on its version.)"""
    if str(value).endswith("::None"):
        return None
    for path in (("__0",), ("Some", "__0")):
        try:
            inner = value
            for field in path:
                inner = inner[field]
            return inner
        except gdb.error:
            continue
    raise gdb.GdbError(f"cannot read the Option {value.type}")


def mem_range(value):
    start, size = int(value["start"]), int(value["size"])
    return f"{start:#x}..{start + size:#x} ({size >> 20} MiB)"


class HypHvm(gdb.Command):
    """A hybrid VM: partitions, RAM, stage-2 tables and the 0xf00d state machine."""

    def __init__(self):
        super().__init__("hyp-hvm", gdb.COMMAND_USER)

    @with_physical_memory
    def invoke(self, arg, from_tty):
        machine = vm()
        ros_vcpus = int(machine["ros_vcpus"])
        vmid = lambda stage2: int(stage2["vmid"])
        print(f"ROS: vCPUs 0-{ros_vcpus - 1}, RAM {mem_range(machine['memory']['ipa'])}, "
              f"stage 2 VMID {vmid(machine['stage2'])}")
        hrt = option_inner(machine["hrt"])
        if hrt is None:
            print("not a hybrid VM (hvm=on not given)")
            return
        first, cores = int(hrt["first_vcpu"]), int(hrt["cores"])
        print(f"HRT: vCPUs {first}-{first + cores - 1}, RAM {mem_range(hrt['ram'])}, "
              f"stage 2 VMID {vmid(hrt['stage2'])} (maps ROS and HRT RAM)")
        state = locked(hrt["state"])
        print(f"transaction state: {str(state['trans']).split('::')[-1]}")
        print(f"HRT status: {str(state['hrt']).split('::')[-1]}")
        entry = option_inner(locked(hrt["entry"]))
        if entry is not None:
            layout = entry["layout"]
            print(f"HRT entry {int(entry['entry']):#x}; boot info at IPA {int(layout['boot_info']):#x}, "
                  f"comm page {int(layout['comm_page']):#x}, tables {mem_range(layout['tables'])}")
        merged = int(rust("hypervisor::vm::hvm::MERGE_ACTIVE.v.value")) != 0
        print("merged process: " + ("yes (ROS TLB maintenance trapped and replayed)" if merged else "none"))


class HypSError(gdb.Command):
    """Give a vCPU a virtual SError at its next IRQ exit: hyp-serror VCPU."""

    def __init__(self):
        super().__init__("hyp-serror", gdb.COMMAND_USER)

    @with_physical_memory
    def invoke(self, arg, from_tty):
        try:
            vcpu = int(arg.strip(), 0)
        except ValueError:
            raise gdb.GdbError("hyp-serror takes a vCPU number, e.g. hyp-serror 0")
        count = int(vm()["vcpu_count"])
        if not 0 <= vcpu < count:
            raise gdb.GdbError(f"no vCPU {vcpu}: the VM has {count}")
        requests = "hypervisor::vm::run::HYP_DEBUG_SERROR_REQUESTS.v.value"
        gdb.execute(f"set var {requests} = {int(rust(requests)) | 1 << vcpu}", to_string=True)
        print(f"vcpu{vcpu}: virtual SError requested (injected at its next IRQ exit; taken once it "
              "unmasks SErrors)")


class HypBreak(gdb.Command):
    """Break at a function by its short name: hyp-break handle_mmio_abort."""

    def __init__(self):
        super().__init__("hyp-break", gdb.COMMAND_USER)

    def invoke(self, arg, from_tty):
        name = arg.strip()
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise gdb.GdbError("hyp-break takes one function name, e.g. hyp-break handle_mmio_abort")
        # gdb's regular expressions are POSIX basic ones: no alternation.
        listing = gdb.execute(f"info functions -q ::{name}$", to_string=True)
        paths = sorted(set(re.findall(r"fn ((?:[A-Za-z0-9_]+::)*" + name + r")\(", listing)))
        if not paths:
            # Not a Rust path: a #[no_mangle] or assembly symbol that plain `break` knows.
            paths = [name]
        for path in paths:
            gdb.execute(f"break {path}")


def load_hrt_symbols(main):
    """Adds the symbols of hrt.elf when it sits next to the hypervisor's ELF `main`."""
    hrt = os.path.join(os.path.dirname(os.path.abspath(main)), "hrt.elf")
    if not os.path.exists(hrt) or any(o.filename == hrt for o in gdb.objfiles()):
        return
    gdb.execute("set confirm off", to_string=True)
    gdb.execute(f"add-symbol-file {hrt}", to_string=True)
    gdb.execute("set confirm on", to_string=True)
    print(f"HRT symbols loaded from {hrt}")


def on_new_objfile(event):
    """gdb reads the hypervisor's ELF after running this script (-x comes first)."""
    if os.path.basename(event.new_objfile.filename) == "hypervisor.elf":
        load_hrt_symbols(event.new_objfile.filename)


HypVcpus()
HypLrs()
HypStage2()
HypPending()
HypExits()
HypHvm()
HypBreak()
HypSError()
if gdb.current_progspace().filename:
    load_hrt_symbols(gdb.current_progspace().filename)
else:
    gdb.events.new_objfile.connect(on_new_objfile)
print("hypervisor gdb helpers loaded: hyp-vcpus, hyp-lrs, hyp-s2 IPA, hyp-pending, hyp-exits, hyp-hvm, hyp-break NAME, "
      "hyp-serror VCPU")
