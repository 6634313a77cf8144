#!/usr/bin/env python3
"""Summarise a QEMU `-d int,guest_errors -D FILE` log of an AArch64 machine (QEMU 7.2 format).

QEMU logs every exception it delivers as a small record:

    Taking exception 4 [Data Abort] on CPU 0
    ...from EL1 to EL2
    ...with ESR 0x24/0x93c08007        (exception class / whole syndrome)
    ...with FAR 0xffff80000a000050
    ...with ELR 0xffff800008617a9c
    ...to EL2 PC 0x40200c00 PSTATE 0x3c9

plus "Exception return from AArch64 EL2 to AArch64 EL1 PC ..." lines, "...handled as PSCI call"
for SMC/HVC calls QEMU's own firmware emulation answers, and free-form guest error lines such
as "gicv3_dist_read: invalid guest read at offset ...". With several vCPUs (MTTCG) the lines of
different CPUs can interleave; a continuation line that does not fit the open record is counted
as interleaved instead of being misattributed.

This script counts the exceptions by kind, by exception-level transition, by ESR exception
class and per CPU, lists the guest errors, counts lines it does not recognise ("other"), and
shows the last N exceptions of every CPU with their ESR/FAR/ELR, which tells where a hung CPU
was last seen. IRQ/FIQ entries are left out of the ESR statistics: QEMU prints a stale
syndrome for them (asynchronous exceptions do not write ESR_ELx).
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import os
import re
import sys
from typing import Iterable, Iterator, TextIO

# ----------------------------------------------------------------------------------------------
# Line formats (QEMU 7.2, target/arm/helper.c and helper-a64.c)

TAKING_RE = re.compile(r"^Taking exception (\d+) \[([^\]]*)\] on CPU (\d+)$")
FROM_RE = re.compile(r"^\.\.\.from EL(\d) to EL(\d)$")
ESR_RE = re.compile(r"^\.\.\.with ESR 0x([0-9a-fA-F]+)/0x([0-9a-fA-F]+)$")
FAR_RE = re.compile(r"^\.\.\.with FAR 0x([0-9a-fA-F]+)$")
ELR_RE = re.compile(r"^\.\.\.with ELR 0x([0-9a-fA-F]+)$")
TO_RE = re.compile(r"^\.\.\.to EL(\d) PC 0x([0-9a-fA-F]+) PSTATE 0x([0-9a-fA-F]+)$")
HANDLED_RE = re.compile(r"^\.\.\.handled as (.+)$")
ERET_RE = re.compile(r"^Exception return from AArch(32|64) EL(\d) to AArch(32|64) EL(\d) PC 0x([0-9a-fA-F]+)$")
# Guest errors are free-form; most start with the reporting function or device ("pl011_read: ",
# "gicv3_dist_read: "), memory.c's say "Invalid access at addr ...", helper-a64.c's "Illegal
# exception return at EL1: ...".
GUEST_ERROR_RE = re.compile(
    r"^(?:[A-Za-z_][\w.\-]*(?:\[[^\]]*\])?: |Invalid |Illegal |.*\b(?:invalid|unimplemented|bad|unknown|unassigned)\b)",
    re.IGNORECASE,
)

# Exceptions that do not write ESR_ELx: QEMU's "...with ESR" line shows a stale syndrome.
ASYNC_KINDS = frozenset({"IRQ", "FIQ", "Virtual IRQ", "Virtual FIQ"})

# ESR_ELx.EC: (mnemonic, description), Arm ARM D17.2.37; mnemonics follow Linux's ESR_ELx_EC_*.
EXCEPTION_CLASSES = {
    0x00: ("UNKNOWN", "unknown reason (undefined instruction)"),
    0x01: ("WFx", "trapped WFI/WFE"),
    0x03: ("CP15_32", "trapped AArch32 MCR/MRC cp15"),
    0x04: ("CP15_64", "trapped AArch32 MCRR/MRRC cp15"),
    0x05: ("CP14_MR", "trapped AArch32 MCR/MRC cp14"),
    0x06: ("CP14_LS", "trapped AArch32 LDC/STC cp14"),
    0x07: ("FP_ASIMD", "trapped FP/SIMD access"),
    0x08: ("CP10_ID", "trapped AArch32 VMRS"),
    0x09: ("PAC", "trapped pointer authentication"),
    0x0A: ("LS64", "trapped LD64B/ST64B"),
    0x0C: ("CP14_64", "trapped AArch32 MRRC cp14"),
    0x0D: ("BTI", "branch target exception"),
    0x0E: ("ILL", "illegal execution state"),
    0x11: ("SVC32", "AArch32 SVC"),
    0x12: ("HVC32", "AArch32 HVC"),
    0x13: ("SMC32", "AArch32 SMC"),
    0x15: ("SVC64", "SVC (system call)"),
    0x16: ("HVC64", "HVC (hypervisor call)"),
    0x17: ("SMC64", "SMC (secure monitor call)"),
    0x18: ("SYS64", "trapped MSR/MRS/system instruction"),
    0x19: ("SVE", "trapped SVE access"),
    0x1A: ("ERET", "trapped ERET (nested virtualisation)"),
    0x1C: ("FPAC", "pointer authentication failure"),
    0x1D: ("SME", "trapped SME access"),
    0x1F: ("IMP_DEF", "implementation defined (EL3)"),
    0x20: ("IABT_LOW", "instruction abort from a lower EL"),
    0x21: ("IABT_CUR", "instruction abort, same EL"),
    0x22: ("PC_ALIGN", "PC alignment fault"),
    0x24: ("DABT_LOW", "data abort from a lower EL"),
    0x25: ("DABT_CUR", "data abort, same EL"),
    0x26: ("SP_ALIGN", "SP alignment fault"),
    0x27: ("MOPS", "memory copy/set exception"),
    0x28: ("FP_EXC32", "AArch32 FP exception"),
    0x2C: ("FP_EXC64", "FP exception"),
    0x2F: ("SERROR", "SError"),
    0x30: ("BREAKPT_LOW", "breakpoint from a lower EL"),
    0x31: ("BREAKPT_CUR", "breakpoint, same EL"),
    0x32: ("SOFTSTP_LOW", "software step from a lower EL"),
    0x33: ("SOFTSTP_CUR", "software step, same EL"),
    0x34: ("WATCHPT_LOW", "watchpoint from a lower EL"),
    0x35: ("WATCHPT_CUR", "watchpoint, same EL"),
    0x38: ("BKPT32", "AArch32 BKPT"),
    0x3A: ("VECTOR32", "AArch32 vector catch"),
    0x3C: ("BRK64", "BRK instruction"),
}

# System registers and instructions a hypervisor commonly sees trapped, keyed by
# (op0, op1, CRn, CRm, op2).
SYSREG_NAMES = {
    (3, 0, 0, 0, 0): "MIDR_EL1",
    (3, 0, 1, 0, 0): "SCTLR_EL1",
    (3, 0, 1, 0, 1): "ACTLR_EL1",
    (3, 0, 1, 0, 2): "CPACR_EL1",
    (3, 0, 2, 0, 0): "TTBR0_EL1",
    (3, 0, 2, 0, 1): "TTBR1_EL1",
    (3, 0, 2, 0, 2): "TCR_EL1",
    (3, 0, 5, 2, 0): "ESR_EL1",
    (3, 0, 6, 0, 0): "FAR_EL1",
    (3, 0, 10, 2, 0): "MAIR_EL1",
    (3, 0, 10, 3, 0): "AMAIR_EL1",
    (3, 0, 13, 0, 1): "CONTEXTIDR_EL1",
    (3, 0, 4, 6, 0): "ICC_PMR_EL1",
    (3, 0, 12, 11, 1): "ICC_DIR_EL1",
    (3, 0, 12, 11, 5): "ICC_SGI1R_EL1",
    (3, 0, 12, 11, 6): "ICC_ASGI1R_EL1",
    (3, 0, 12, 11, 7): "ICC_SGI0R_EL1",
    (3, 0, 12, 12, 0): "ICC_IAR1_EL1",
    (3, 0, 12, 12, 1): "ICC_EOIR1_EL1",
    (3, 0, 12, 12, 4): "ICC_CTLR_EL1",
    (3, 0, 12, 12, 5): "ICC_SRE_EL1",
    (3, 0, 12, 12, 7): "ICC_IGRPEN1_EL1",
    (3, 3, 14, 0, 0): "CNTFRQ_EL0",
    (3, 3, 14, 0, 1): "CNTPCT_EL0",
    (3, 3, 14, 2, 0): "CNTP_TVAL_EL0",
    (3, 3, 14, 2, 1): "CNTP_CTL_EL0",
    (3, 3, 14, 2, 2): "CNTP_CVAL_EL0",
    (3, 3, 9, 12, 0): "PMCR_EL0",
    (3, 3, 9, 14, 0): "PMUSERENR_EL0",
    (2, 0, 0, 2, 2): "MDSCR_EL1",
    (2, 0, 1, 0, 4): "OSLAR_EL1",
    (2, 0, 1, 1, 4): "OSLSR_EL1",
    (2, 0, 1, 3, 4): "OSDLR_EL1",
    (1, 0, 7, 6, 2): "DC ISW",
    (1, 0, 7, 10, 2): "DC CSW",
    (1, 0, 7, 14, 2): "DC CISW",
}


def exception_class_name(ec: int) -> str:
    """"0x24 DABT_LOW" style name of an exception class."""
    mnemonic = EXCEPTION_CLASSES.get(ec, ("?", ""))[0]
    return f"0x{ec:02x} {mnemonic}"


def fault_status(fsc: int) -> str:
    """Names a data/instruction fault status code (DFSC/IFSC)."""
    level = fsc & 3
    kinds = {0x00: "address size fault", 0x04: "translation fault", 0x08: "access flag fault", 0x0C: "permission fault"}
    if fsc < 0x10:
        return f"{kinds[fsc & 0x3C]} L{level}"
    named = {0x10: "external abort", 0x21: "alignment fault", 0x30: "TLB conflict"}
    return named.get(fsc, f"FSC 0x{fsc:02x}")


def sysreg_name(op0: int, op1: int, crn: int, crm: int, op2: int) -> str:
    """The architectural name of a system register encoding, or its S<op0>_... form."""
    return SYSREG_NAMES.get((op0, op1, crn, crm, op2), f"S{op0}_{op1}_C{crn}_C{crm}_{op2}")


def sysreg_access(iss: int) -> tuple[str, str, str]:
    """Decodes an EC 0x18 ISS into (register name, "read"/"write"/"sys", "MRS xN, REG" text)."""
    op0, op2, op1 = (iss >> 20) & 3, (iss >> 17) & 7, (iss >> 14) & 7
    crn, rt, crm, is_read = (iss >> 10) & 15, (iss >> 5) & 31, (iss >> 1) & 15, iss & 1
    name = sysreg_name(op0, op1, crn, crm, op2)
    reg = "xzr" if rt == 31 else f"x{rt}"
    if op0 == 1:
        return name, "sys", f"SYS {name}, {reg}"
    if is_read:
        return name, "read", f"MRS {reg}, {name}"
    return name, "write", f"MSR {name}, {reg}"


def describe_syndrome(syndrome: int) -> str:
    """A short decoding of the ISS of the common exception classes ("" when not decoded)."""
    ec, iss = (syndrome >> 26) & 0x3F, syndrome & 0x1FFFFFF
    if ec == 0x01:
        return ("WFI", "WFE", "WFIT", "WFET")[iss & 3]
    if ec in (0x15, 0x16, 0x17, 0x11, 0x12, 0x13):
        return f"imm #0x{iss & 0xFFFF:x}"
    if ec == 0x18:
        return sysreg_access(iss)[2]
    if ec in (0x24, 0x25):
        parts = ["write" if iss & (1 << 6) else "read"]
        if iss & (1 << 24):  # ISV: the access is described
            size = 1 << ((iss >> 22) & 3)
            rt = (iss >> 16) & 31
            parts.append(f"{size}B {'xzr' if rt == 31 else f'x{rt}'}")
        else:
            parts.append("(no ISV)")
        if iss & (1 << 7):
            parts.append("on stage-1 walk")
        return " ".join(parts) + ", " + fault_status(iss & 0x3F)
    if ec in (0x20, 0x21):
        return ("on stage-1 walk, " if iss & (1 << 7) else "") + fault_status(iss & 0x3F)
    return ""


# ----------------------------------------------------------------------------------------------
# Records


@dataclasses.dataclass
class TakenException:
    """One "Taking exception" record and the continuation lines that belong to it."""

    line: int
    cpu: int
    number: int
    kind: str
    from_el: int | None = None
    to_el: int | None = None
    ec: int | None = None
    syndrome: int | None = None
    far: int | None = None
    elr: int | None = None
    pc: int | None = None
    pstate: int | None = None
    handled_as: str | None = None

    @property
    def synchronous(self) -> bool:
        """Whether the printed ESR belongs to this exception (not IRQ/FIQ)."""
        return self.kind not in ASYNC_KINDS

    @property
    def complete(self) -> bool:
        """Whether the record's last line ("...to EL" or "...handled as") was seen."""
        return self.pc is not None or self.handled_as is not None

    def transition(self) -> str:
        """"EL1->EL2", with "?" for a level the log does not show."""
        src = "?" if self.from_el is None else self.from_el
        dst = "?" if self.to_el is None else self.to_el
        return f"EL{src}->EL{dst}"

    def to_json(self) -> dict:
        """The record as plain data (hex strings for addresses and syndromes)."""
        def hx(value: int | None) -> str | None:
            return None if value is None else f"0x{value:x}"

        ec_valid = self.synchronous and self.ec is not None
        return {
            "line": self.line,
            "cpu": self.cpu,
            "number": self.number,
            "kind": self.kind,
            "from_el": self.from_el,
            "to_el": self.to_el,
            "esr": hx(self.syndrome) if ec_valid else None,
            "ec": f"0x{self.ec:02x}" if ec_valid else None,
            "ec_name": exception_class_name(self.ec) if ec_valid else None,
            "detail": describe_syndrome(self.syndrome) if ec_valid and self.syndrome is not None else None,
            "far": hx(self.far),
            "elr": hx(self.elr),
            "pc": hx(self.pc),
            "pstate": hx(self.pstate),
            "handled_as": self.handled_as,
            "complete": self.complete,
        }


@dataclasses.dataclass
class Summary:
    """Everything counted in one log."""

    last_n: int
    lines: int = 0
    exceptions: int = 0
    incomplete: int = 0
    by_kind: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    by_transition: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    by_transition_kind: dict = dataclasses.field(default_factory=lambda: collections.defaultdict(collections.Counter))
    by_ec: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    by_cpu_kind: dict = dataclasses.field(default_factory=lambda: collections.defaultdict(collections.Counter))
    by_cpu_ec: dict = dataclasses.field(default_factory=lambda: collections.defaultdict(collections.Counter))
    handled_as: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    sysregs: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    returns: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    guest_errors: int = 0
    guest_error_samples: list = dataclasses.field(default_factory=list)
    other: int = 0
    other_samples: list = dataclasses.field(default_factory=list)
    interleaved: int = 0
    truncated_line: str | None = None
    last: dict = dataclasses.field(default_factory=dict)

    def add_exception(self, record: TakenException) -> None:
        """Counts a finished (or abandoned) exception record."""
        self.exceptions += 1
        self.incomplete += not record.complete
        self.by_kind[record.kind] += 1
        self.by_transition[record.transition()] += 1
        self.by_transition_kind[record.transition()][record.kind] += 1
        self.by_cpu_kind[record.cpu][record.kind] += 1
        if record.synchronous and record.ec is not None:
            self.by_ec[record.ec] += 1
            self.by_cpu_ec[record.cpu][record.ec] += 1
            if record.ec == 0x18 and record.syndrome is not None:
                name, access, _ = sysreg_access(record.syndrome & 0x1FFFFFF)
                self.sysregs[f"{access} {name}"] += 1
        if record.handled_as:
            self.handled_as[record.handled_as] += 1
        if self.last_n > 0:
            self.last.setdefault(record.cpu, collections.deque(maxlen=self.last_n)).append(record)


SAMPLES = 5  # guest error and unknown lines quoted in the report


def iter_log_lines(stream: TextIO) -> Iterator[tuple[str, bool]]:
    """Yields (line without its newline, whether it ended with a newline)."""
    for raw in stream:
        ended = raw.endswith("\n")
        yield raw.rstrip("\r\n"), ended


def summarise(lines: Iterable[tuple[str, bool]], last_n: int) -> Summary:
    """Reads the log lines (as from iter_log_lines) and counts everything."""
    summary = Summary(last_n=last_n)
    open_record: TakenException | None = None

    def note(samples: list, line_no: int, text: str) -> None:
        if len(samples) < SAMPLES:
            samples.append({"line": line_no, "text": text})

    for line_no, (line, ended) in enumerate(lines, start=1):
        summary.lines += 1
        if not ended:
            # The writer was killed mid-line: the text is cut anywhere, do not parse it.
            summary.truncated_line = line
            continue
        if not line.strip():
            continue
        if line.startswith("Taking exception"):
            match = TAKING_RE.match(line)
            if match:
                if open_record is not None:
                    summary.add_exception(open_record)
                open_record = TakenException(
                    line=line_no, number=int(match.group(1)), kind=match.group(2), cpu=int(match.group(3))
                )
                continue
        elif line.startswith("..."):
            if open_record is not None and attach(open_record, line):
                if open_record.complete:
                    summary.add_exception(open_record)
                    open_record = None
                continue
            if any(regex.match(line) for regex in (FROM_RE, ESR_RE, FAR_RE, ELR_RE, TO_RE, HANDLED_RE)):
                # A known continuation that does not fit the open record: another CPU's line.
                summary.interleaved += 1
                continue
        elif line.startswith("Exception return"):
            match = ERET_RE.match(line)
            if match:
                summary.returns[f"EL{match.group(2)}->EL{match.group(4)}"] += 1
                continue
        if GUEST_ERROR_RE.match(line):
            summary.guest_errors += 1
            note(summary.guest_error_samples, line_no, line)
        else:
            summary.other += 1
            note(summary.other_samples, line_no, line)
    if open_record is not None:
        summary.add_exception(open_record)
    return summary


def attach(record: TakenException, line: str) -> bool:
    """Stores a "..." continuation line in the record; False if it does not fit."""
    if (m := FROM_RE.match(line)) and record.from_el is None:
        record.from_el, record.to_el = int(m.group(1)), int(m.group(2))
    elif (m := ESR_RE.match(line)) and record.syndrome is None:
        record.ec, record.syndrome = int(m.group(1), 16), int(m.group(2), 16)
    elif (m := FAR_RE.match(line)) and record.far is None:
        record.far = int(m.group(1), 16)
    elif (m := ELR_RE.match(line)) and record.elr is None:
        record.elr = int(m.group(1), 16)
    elif (m := TO_RE.match(line)) and record.pc is None:
        record.to_el, record.pc, record.pstate = int(m.group(1)), int(m.group(2), 16), int(m.group(3), 16)
    elif (m := HANDLED_RE.match(line)) and record.handled_as is None:
        record.handled_as = m.group(1)
    else:
        return False
    return True


# ----------------------------------------------------------------------------------------------
# Output


def summary_to_json(summary: Summary, source: str) -> dict:
    """Everything counted, as plain data."""
    cpus = sorted(set(summary.by_cpu_kind) | set(summary.last))
    return {
        "source": source,
        "lines": summary.lines,
        "exceptions": summary.exceptions,
        "incomplete_exceptions": summary.incomplete,
        "by_kind": dict(summary.by_kind.most_common()),
        "by_transition": dict(summary.by_transition.most_common()),
        "by_transition_kind": {
            t: dict(summary.by_transition_kind[t].most_common()) for t, _ in summary.by_transition.most_common()
        },
        "by_ec": {
            f"0x{ec:02x}": {
                "name": EXCEPTION_CLASSES.get(ec, ("?", ""))[0],
                "description": EXCEPTION_CLASSES.get(ec, ("?", "unknown class"))[1],
                "count": count,
            }
            for ec, count in summary.by_ec.most_common()
        },
        "handled_as": dict(summary.handled_as),
        "sysreg_traps": dict(summary.sysregs.most_common()),
        "exception_returns": dict(summary.returns.most_common()),
        "per_cpu": {
            str(cpu): {
                "exceptions": sum(summary.by_cpu_kind[cpu].values()),
                "by_kind": dict(summary.by_cpu_kind[cpu].most_common()),
                "by_ec": {f"0x{ec:02x}": n for ec, n in summary.by_cpu_ec[cpu].most_common()},
                "last": [r.to_json() for r in summary.last.get(cpu, [])],
            }
            for cpu in cpus
        },
        "guest_errors": {"count": summary.guest_errors, "first": summary.guest_error_samples},
        "other": {"count": summary.other, "first": summary.other_samples},
        "interleaved_lines": summary.interleaved,
        "truncated_last_line": summary.truncated_line,
    }


def format_table(headers: list[str], rows: list[list[str]], align: str = "", indent: str = "  ") -> str:
    """Aligns a table; `align` has one letter per column ("l" or "r"), default: the first
    column left, the others right."""
    align = align or "l" + "r" * (len(headers) - 1)
    widths = [max(len(row[i]) for row in [headers, *rows]) for i in range(len(headers))]

    def fmt(row: list[str]) -> str:
        cells = [c.ljust(w) if a == "l" else c.rjust(w) for c, w, a in zip(row, widths, align)]
        return indent + "  ".join(cells).rstrip()

    return "\n".join([fmt(headers), indent + "  ".join("-" * w for w in widths), *map(fmt, rows)])


def per_cpu_table(title: str, keys: list, label, total: collections.Counter, per_cpu: dict, cpus: list[int]) -> str:
    """A keys x CPUs count table with a total column."""
    headers = [title, *(f"CPU{c}" for c in cpus), "total"]
    rows = [[label(k), *(str(per_cpu[c][k]) for c in cpus), str(total[k])] for k in keys]
    rows.append(["(all)", *(str(sum(per_cpu[c].values())) for c in cpus), str(sum(total.values()))])
    return format_table(headers, rows)


def last_table(records: Iterable[TakenException]) -> str:
    """The last-N-exceptions table of one CPU (oldest first)."""
    rows = []
    for r in records:
        def hx(value: int | None, record: TakenException = r) -> str:
            """Hex, "-" for a field QEMU does not print, "?" for one cut off the log."""
            if value is None:
                return "-" if record.complete else "?"
            return f"0x{value:x}"

        if not r.synchronous:
            esr, cls, detail = "-", "-", ""
        elif r.syndrome is None:
            esr, cls, detail = "?", "?", ""
        else:
            esr, cls, detail = hx(r.syndrome), exception_class_name(r.ec), describe_syndrome(r.syndrome)
        if r.handled_as:
            detail = (detail + "; " if detail else "") + f"handled as {r.handled_as}"
        if not r.complete:
            detail = (detail + "; " if detail else "") + "record incomplete"
        rows.append([str(r.line), r.kind, r.transition(), esr, cls, hx(r.far), hx(r.elr), hx(r.pc), detail])
    headers = ["line", "kind", "EL", "ESR", "class", "FAR", "ELR", "handler PC", "detail"]
    return format_table(headers, rows, align="rllrlrrrl")


def render_text(summary: Summary, source: str) -> str:
    """The human-readable report."""
    cpus = sorted(set(summary.by_cpu_kind))
    out = [
        f"QEMU trace summary of {source}: {summary.lines} lines, {summary.exceptions} exceptions "
        f"on {len(cpus)} CPU(s), {sum(summary.returns.values())} exception returns, "
        f"{summary.guest_errors} guest errors, {summary.other} other lines",
    ]
    if summary.exceptions == 0 and summary.lines:
        out.append("  (no 'Taking exception' lines: was QEMU run with -d int?)")
    if summary.exceptions:
        kinds = [k for k, _ in summary.by_kind.most_common()]
        out += ["", "Exceptions by kind"]
        out.append(per_cpu_table(
            "kind", kinds, lambda k: f"{k} ({'async' if k in ASYNC_KINDS else 'sync'})",
            summary.by_kind, summary.by_cpu_kind, cpus,
        ))
        if any(summary.by_transition_kind[t]["Undefined Instruction"] for t in summary.by_transition if t.endswith("EL2")):
            out.append("  (QEMU names every instruction trapped to EL2 - WFI, MSR/MRS - 'Undefined Instruction'; "
                       "the ESR classes below tell them apart)")
        out += ["", "Exceptions by level"]
        rows = [
            [t, str(n), ", ".join(f"{k} {c}" for k, c in summary.by_transition_kind[t].most_common())]
            for t, n in summary.by_transition.most_common()
        ]
        out.append(format_table(["from -> to", "count", "kinds"], rows, align="lrl"))
    if summary.by_ec:
        out += ["", "Synchronous exceptions by ESR class (IRQ/FIQ left out: QEMU prints a stale ESR for them)"]
        out.append(per_cpu_table(
            "class", [ec for ec, _ in summary.by_ec.most_common()],
            lambda ec: f"{exception_class_name(ec):<16} {EXCEPTION_CLASSES.get(ec, ('', 'unknown class'))[1]}",
            summary.by_ec, summary.by_cpu_ec, cpus,
        ))
    if summary.sysregs:
        out += ["", "Trapped system register accesses (EC 0x18), most frequent first"]
        out.append(format_table(["access", "count"], [[k, str(n)] for k, n in summary.sysregs.most_common(10)]))
    if summary.handled_as:
        out += ["", "Calls QEMU handled itself: " + ", ".join(f"{n} {k}" for k, n in summary.handled_as.most_common())]
    if summary.returns:
        out += ["", "Exception returns (ERET): " + ", ".join(f"{t} {n}" for t, n in summary.returns.most_common())]
    out += ["", f"Guest errors: {summary.guest_errors}"]
    out += [f"  line {s['line']}: {s['text']}" for s in summary.guest_error_samples]
    if summary.guest_errors > len(summary.guest_error_samples):
        out.append(f"  ... and {summary.guest_errors - len(summary.guest_error_samples)} more")
    if summary.other:
        out += ["", f"Other (unrecognised) lines: {summary.other}"]
        out += [f"  line {s['line']}: {s['text']}" for s in summary.other_samples]
    if summary.interleaved:
        out += ["", f"Continuation lines interleaved from another CPU (not attributed): {summary.interleaved}"]
    if summary.incomplete:
        out += ["", f"Incomplete exception records: {summary.incomplete}"]
    if summary.truncated_line is not None:
        out += ["", f"Truncated last line (not parsed): {summary.truncated_line!r}"]
    for cpu in sorted(summary.last):
        records = list(summary.last[cpu])
        out += ["", f"Last {len(records)} exception(s) on CPU {cpu}, oldest first"]
        out.append(last_table(records))
    return "\n".join(out)


def default_log() -> str:
    """build/qemu-trace.log of this repository (where `make trace` writes)."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "build", "qemu-trace.log")


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(
        description="Summarise a QEMU '-d int,guest_errors -D FILE' log (AArch64, QEMU 7.2): "
        "exceptions by kind, level, ESR class and CPU, guest errors, and the last exceptions "
        "of every CPU (where a hung CPU was last seen).",
        epilog="Example: make trace; scripts/trace-summary.py build/qemu-trace.log --last 20",
    )
    parser.add_argument(
        "log",
        nargs="?",
        help="QEMU log file; '-' reads stdin; default: stdin when it is a pipe, else "
        "build/qemu-trace.log (written by 'make trace')",
    )
    parser.add_argument("--last", type=int, default=10, metavar="N", help="exceptions shown per CPU (default 10, 0 = none)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Runs the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.last < 0:
        parser.error("--last must be 0 or more")
    path = args.log
    if path is None:
        path = "-" if not sys.stdin.isatty() else os.path.normpath(default_log())
    source = "stdin" if path == "-" else path
    try:
        if path == "-":
            with open(sys.stdin.fileno(), encoding="utf-8", errors="replace", closefd=False, newline="\n") as stream:
                summary = summarise(iter_log_lines(stream), args.last)
        else:
            with open(path, encoding="utf-8", errors="replace", newline="\n") as stream:
                summary = summarise(iter_log_lines(stream), args.last)
    except OSError as err:
        print(f"trace-summary: error: cannot read {source}: {err.strerror or err}", file=sys.stderr)
        if args.log is None:
            print("trace-summary: run 'make trace' first or name a log file", file=sys.stderr)
        return 1
    try:
        if args.json:
            print(json.dumps(summary_to_json(summary, source), indent=2))
        else:
            print(render_text(summary, source))
        sys.stdout.flush()
    except BrokenPipeError:  # e.g. piped into head: not an error worth a traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


if __name__ == "__main__":
    sys.exit(main())
