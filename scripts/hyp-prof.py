#!/usr/bin/env python3
"""Summarise the hypervisor's exit profile from a serial log.

At guest power-off the hypervisor prints its per-vCPU exit profile on the console, one
"(HYP) profile ..." line per record, between "profile begin" and "profile end":

    (HYP) profile begin version=1 counter_hz=62500000 vcpus=2
    (HYP) profile vcpu=0 guest_ticks=123456 hyp_ticks=2345 exits=1000 injected=500 switches=3
    (HYP) profile vcpu=0 vgic_syncs=300 vgic_flushes=310 lr_reads=400 lr_writes=350 lock_waits=2 lock_wait_ticks=90
    (HYP) profile vcpu=0 guest_logs=3 guest_logs_suppressed=0
    (HYP) profile vcpu=0 exit=wfi count=400 total_ticks=1200 max_ticks=30
    ...
    (HYP) profile end

This script finds that block in a serial log (guest output may be interleaved, lines may end
in \\r\\n), checks it (every vCPU's `exits` must equal the sum of its exit counts) and prints
per-vCPU tables, a summary and all-vCPU totals; `--json` prints the parsed data instead and
`--png` also draws a bar chart with matplotlib.

Exit status: 0 on success, 1 when the log holds no valid profile (the reason is printed on
stderr), 2 on a usage error.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import sys
from typing import Iterable, TextIO

FORMAT_VERSION = 1

# "(HYP) profile" followed by a space or the end of the line; anything may precede it (a
# guest line the hypervisor's output was glued to, an escape sequence).
PROFILE_LINE_RE = re.compile(r"\(HYP\) profile(?:\s+(?P<body>.*?))?\s*$")
EXIT_KIND_RE = re.compile(r"^[a-z0-9_]+$")
TOKEN_RE = re.compile(r"^(?P<key>[a-z_][a-z0-9_]*)=(?P<value>\S+)$")

BEGIN_KEYS = ("version", "counter_hz", "vcpus")
VCPU_KEYS = ("guest_ticks", "hyp_ticks", "exits", "injected", "switches")
EXIT_KEYS = ("count", "total_ticks", "max_ticks")
# The optional vGIC line: list-register syncs and flushes, ICH_LR accesses, vGIC lock waits.
VGIC_KEYS = ("vgic_syncs", "vgic_flushes", "lr_reads", "lr_writes", "lock_waits", "lock_wait_ticks")
# The optional guest-log line: log lines the vCPU caused, printed and suppressed (rate limit).
LOG_KEYS = ("guest_logs", "guest_logs_suppressed")


class ProfileError(Exception):
    """A problem with the profile text, with the 1-based log line it was found on."""

    def __init__(self, line_no: int, message: str) -> None:
        super().__init__(f"line {line_no}: {message}")
        self.line_no = line_no


@dataclasses.dataclass
class ExitStat:
    """Counters of one exit kind on one vCPU."""

    kind: str
    count: int
    total_ticks: int
    max_ticks: int


@dataclasses.dataclass
class VcpuProfile:
    """Counters of one vCPU: its summary line and its exit kinds in log order."""

    vcpu: int
    line_no: int
    guest_ticks: int
    hyp_ticks: int
    exits: int
    injected: int
    switches: int
    exit_stats: dict[str, ExitStat] = dataclasses.field(default_factory=dict)
    vgic: dict[str, int] | None = None
    guest_logs: dict[str, int] | None = None


@dataclasses.dataclass
class Profile:
    """One "profile begin" .. "profile end" block of the log.

    `errors` lists what makes the block unusable (missing end, malformed line, inconsistent
    totals); `warnings` lists oddities that do not stop the report.
    """

    begin_line: int
    version: int
    counter_hz: int
    vcpus: int
    end_line: int | None = None
    vcpu_profiles: dict[int, VcpuProfile] = dataclasses.field(default_factory=dict)
    errors: list[str] = dataclasses.field(default_factory=list)
    warnings: list[str] = dataclasses.field(default_factory=list)


# --------------------------------------------------------------------------------------------
# Parsing


def read_lines(stream: TextIO) -> list[str]:
    """Returns the lines of a serial log without their line endings (\\n, \\r\\n)."""
    text = stream.read()
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.rstrip("\r") for line in lines]


def parse_fields(body: str, line_no: int) -> dict[str, str]:
    """Splits "key=value key=value" into a dict, rejecting bad tokens and repeated keys."""
    fields: dict[str, str] = {}
    for token in body.split():
        match = TOKEN_RE.match(token)
        if not match:
            raise ProfileError(line_no, f"malformed field {token!r} (expected key=value)")
        key = match.group("key")
        if key in fields:
            raise ProfileError(line_no, f"field {key!r} appears twice")
        fields[key] = match.group("value")
    return fields


def take_int(fields: dict[str, str], key: str, line_no: int) -> int:
    """Removes `key` from `fields` and returns it as a non-negative decimal integer."""
    if key not in fields:
        raise ProfileError(line_no, f"missing field {key}=")
    value = fields.pop(key)
    if not value.isdigit():
        raise ProfileError(line_no, f"{key}={value!r} is not a non-negative integer")
    return int(value)


def reject_extra(fields: dict[str, str], line_no: int, what: str) -> None:
    """Raises if `fields` still holds keys the record does not define."""
    if fields:
        names = ", ".join(sorted(fields))
        raise ProfileError(line_no, f"unknown field(s) in {what} line: {names}")


def parse_begin(body: str, line_no: int) -> Profile:
    """Parses the fields of "profile begin ..." into an empty Profile."""
    fields = parse_fields(body, line_no)
    version = take_int(fields, "version", line_no)
    if version != FORMAT_VERSION:
        raise ProfileError(
            line_no,
            f"profile format version {version} is not supported (this script reads "
            f"version {FORMAT_VERSION})",
        )
    counter_hz = take_int(fields, "counter_hz", line_no)
    if counter_hz == 0:
        raise ProfileError(line_no, "counter_hz=0: tick counts cannot be turned into time")
    vcpus = take_int(fields, "vcpus", line_no)
    if vcpus == 0:
        raise ProfileError(line_no, "vcpus=0: a profile needs at least one vCPU")
    reject_extra(fields, line_no, "profile begin")
    return Profile(begin_line=line_no, version=version, counter_hz=counter_hz, vcpus=vcpus)


def add_record(profile: Profile, body: str, line_no: int) -> None:
    """Parses one "profile vcpu=..." line (summary or exit kind) into `profile`."""
    fields = parse_fields(body, line_no)
    vcpu = take_int(fields, "vcpu", line_no)
    if vcpu >= profile.vcpus:
        raise ProfileError(line_no, f"vcpu={vcpu} but the profile has vcpus={profile.vcpus}")

    if VGIC_KEYS[0] in fields:
        values = {key: take_int(fields, key, line_no) for key in VGIC_KEYS}
        reject_extra(fields, line_no, "vGIC")
        if vcpu not in profile.vcpu_profiles:
            raise ProfileError(line_no, f"vGIC line for vcpu={vcpu} before its summary line")
        if profile.vcpu_profiles[vcpu].vgic is not None:
            raise ProfileError(line_no, f"second vGIC line for vcpu={vcpu}")
        profile.vcpu_profiles[vcpu].vgic = values
        return

    if LOG_KEYS[0] in fields:
        values = {key: take_int(fields, key, line_no) for key in LOG_KEYS}
        reject_extra(fields, line_no, "guest-log")
        if vcpu not in profile.vcpu_profiles:
            raise ProfileError(line_no, f"guest-log line for vcpu={vcpu} before its summary line")
        if profile.vcpu_profiles[vcpu].guest_logs is not None:
            raise ProfileError(line_no, f"second guest-log line for vcpu={vcpu}")
        profile.vcpu_profiles[vcpu].guest_logs = values
        return

    if "exit" not in fields:
        if vcpu in profile.vcpu_profiles:
            first = profile.vcpu_profiles[vcpu].line_no
            raise ProfileError(line_no, f"second summary line for vcpu={vcpu} (first on line {first})")
        values = {key: take_int(fields, key, line_no) for key in VCPU_KEYS}
        reject_extra(fields, line_no, "vCPU summary")
        profile.vcpu_profiles[vcpu] = VcpuProfile(vcpu=vcpu, line_no=line_no, **values)
        return

    kind = fields.pop("exit")
    if not EXIT_KIND_RE.match(kind):
        raise ProfileError(line_no, f"exit kind {kind!r} is not a word of [a-z0-9_]")
    values = {key: take_int(fields, key, line_no) for key in EXIT_KEYS}
    reject_extra(fields, line_no, "exit")
    if vcpu not in profile.vcpu_profiles:
        raise ProfileError(line_no, f"exit line for vcpu={vcpu} before its summary line")
    stats = profile.vcpu_profiles[vcpu].exit_stats
    if kind in stats:
        raise ProfileError(line_no, f"exit kind {kind!r} listed twice for vcpu={vcpu}")
    stats[kind] = ExitStat(kind=kind, **values)


def check_profile(profile: Profile) -> None:
    """Appends to `profile.errors`/`warnings` what is inconsistent in a complete block."""
    missing = [v for v in range(profile.vcpus) if v not in profile.vcpu_profiles]
    if missing:
        profile.errors.append(
            f"profile begun on line {profile.begin_line} announces vcpus={profile.vcpus} "
            f"but has no summary line for vcpu {', '.join(map(str, missing))}"
        )
    for vcpu in sorted(profile.vcpu_profiles):
        vp = profile.vcpu_profiles[vcpu]
        counted = sum(stat.count for stat in vp.exit_stats.values())
        if counted != vp.exits:
            parts = " + ".join(f"{s.kind}={s.count}" for s in vp.exit_stats.values()) or "none"
            profile.errors.append(
                f"line {vp.line_no}: vcpu={vcpu} reports exits={vp.exits} but its exit kinds "
                f"add up to {counted} ({parts})"
            )
        for stat in vp.exit_stats.values():
            if stat.count and not stat.max_ticks <= stat.total_ticks <= stat.count * stat.max_ticks:
                profile.warnings.append(
                    f"vcpu={vcpu} exit={stat.kind}: total_ticks={stat.total_ticks} is not "
                    f"between max_ticks={stat.max_ticks} and count*max_ticks="
                    f"{stat.count * stat.max_ticks}"
                )
            if stat.count == 0 and (stat.total_ticks or stat.max_ticks):
                profile.warnings.append(
                    f"vcpu={vcpu} exit={stat.kind}: count=0 but ticks are not zero"
                )


def parse_log(lines: Iterable[str]) -> tuple[list[Profile], list[str]]:
    """Finds every profile block in the log lines.

    Returns the blocks in log order (each with its own errors) and the errors that belong to
    no block (profile records outside begin/end).
    """
    profiles: list[Profile] = []
    stray: list[str] = []
    current: Profile | None = None
    for line_no, line in enumerate(lines, start=1):
        match = PROFILE_LINE_RE.search(line)
        if not match:
            continue
        body = match.group("body") or ""
        word = body.split(" ", 1)[0]
        rest = body[len(word):]
        try:
            if word == "begin":
                if current is not None:
                    current.errors.append(
                        f"profile begun on line {current.begin_line} has no 'profile end' "
                        f"before the next 'profile begin' on line {line_no}"
                    )
                    profiles.append(current)
                current = parse_begin(rest, line_no)
            elif word == "end":
                if rest.strip():
                    raise ProfileError(line_no, f"unexpected text after 'profile end': {rest.strip()!r}")
                if current is None:
                    raise ProfileError(line_no, "'profile end' without 'profile begin'")
                current.end_line = line_no
                if not current.errors:  # totals of a block with a rejected line mean nothing
                    check_profile(current)
                profiles.append(current)
                current = None
            elif current is None:
                raise ProfileError(line_no, f"profile record outside begin/end: {line.strip()!r}")
            else:
                add_record(current, body, line_no)
        except ProfileError as err:
            if current is not None:
                current.errors.append(str(err))
            else:
                stray.append(str(err))
    if current is not None:
        current.errors.append(
            f"profile begun on line {current.begin_line} has no 'profile end' (the log ends "
            "first: was the guest powered off, or was QEMU killed?)"
        )
        profiles.append(current)
    return profiles, stray


# --------------------------------------------------------------------------------------------
# Derived numbers


def merged_exit_stats(profile: Profile) -> dict[str, ExitStat]:
    """Sums every exit kind over all vCPUs (max_ticks is the largest of the vCPUs')."""
    merged: dict[str, ExitStat] = {}
    for vcpu in sorted(profile.vcpu_profiles):
        for stat in profile.vcpu_profiles[vcpu].exit_stats.values():
            total = merged.setdefault(stat.kind, ExitStat(stat.kind, 0, 0, 0))
            total.count += stat.count
            total.total_ticks += stat.total_ticks
            total.max_ticks = max(total.max_ticks, stat.max_ticks)
    return merged


def profile_totals(profile: Profile) -> dict[str, int]:
    """Sums the vCPU summary counters over all vCPUs."""
    return {
        key: sum(getattr(vp, key) for vp in profile.vcpu_profiles.values()) for key in VCPU_KEYS
    }


def profile_to_json(profile: Profile) -> dict:
    """The parsed profile as plain data: raw counters per vCPU plus all-vCPU totals."""
    totals = profile_totals(profile)
    totals["exit_kinds"] = {
        kind: {"count": s.count, "total_ticks": s.total_ticks, "max_ticks": s.max_ticks}
        for kind, s in merged_exit_stats(profile).items()
    }
    return {
        "version": profile.version,
        "counter_hz": profile.counter_hz,
        "vcpus": profile.vcpus,
        "begin_line": profile.begin_line,
        "end_line": profile.end_line,
        "vcpu": [
            {
                "vcpu": vp.vcpu,
                **{key: getattr(vp, key) for key in VCPU_KEYS},
                "vgic": vp.vgic,
                "guest_logs": vp.guest_logs,
                "exit_kinds": {
                    kind: {"count": s.count, "total_ticks": s.total_ticks, "max_ticks": s.max_ticks}
                    for kind, s in vp.exit_stats.items()
                },
            }
            for vp in (profile.vcpu_profiles[v] for v in sorted(profile.vcpu_profiles))
        ],
        "totals": totals,
        "warnings": list(profile.warnings),
    }


# --------------------------------------------------------------------------------------------
# Text report


def micro_sign(stream: TextIO) -> str:
    """"µ" if the output stream can encode it, else "u"."""
    try:
        "µ".encode(stream.encoding or "ascii")
        return "µ"
    except (UnicodeEncodeError, LookupError):
        return "u"


def format_duration(seconds: float, micro: str) -> str:
    """A duration with a unit that keeps 3-4 significant digits (ns .. s)."""
    if seconds >= 1.0:
        return f"{seconds:.3f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.3f} ms"
    if seconds >= 1e-6:
        return f"{seconds * 1e6:.3f} {micro}s"
    return f"{seconds * 1e9:.1f} ns"


def format_table(headers: list[str], rows: list[list[str]], indent: str = "  ") -> str:
    """Aligns a table: the first column to the left, the others to the right."""
    widths = [max(len(row[i]) for row in [headers, *rows]) for i in range(len(headers))]

    def fmt(row: list[str]) -> str:
        cells = [row[0].ljust(widths[0])]
        cells += [cell.rjust(width) for cell, width in zip(row[1:], widths[1:])]
        return indent + "  ".join(cells).rstrip()

    rule = indent + "  ".join("-" * w for w in widths)
    return "\n".join([fmt(headers), rule, *(fmt(row) for row in rows)])


SORT_KEYS = {
    "count": lambda s: (-s.count, s.kind),
    "time": lambda s: (-s.total_ticks, s.kind),
    "avg": lambda s: (-(s.total_ticks / s.count if s.count else 0.0), s.kind),
    "max": lambda s: (-s.max_ticks, s.kind),
    "name": lambda s: s.kind,
}


def exit_table(stats: Iterable[ExitStat], total_exits: int, hz: int, sort: str, micro: str) -> str:
    """The exit-kind table (count, share, average and maximum cost, total time)."""
    headers = ["exit kind", "count", "% of exits", "avg ticks", f"avg {micro}s", f"max {micro}s", "total ms"]
    rows = []
    ordered = sorted(stats, key=SORT_KEYS[sort])
    for s in ordered:
        avg_ticks = s.total_ticks / s.count if s.count else 0.0
        share = 100.0 * s.count / total_exits if total_exits else 0.0
        rows.append([
            s.kind,
            str(s.count),
            f"{share:.1f}%",
            f"{avg_ticks:.1f}",
            f"{avg_ticks / hz * 1e6:.3f}",
            f"{s.max_ticks / hz * 1e6:.3f}",
            f"{s.total_ticks / hz * 1e3:.3f}",
        ])
    count = sum(s.count for s in ordered)
    ticks = sum(s.total_ticks for s in ordered)
    avg = ticks / count if count else 0.0
    rows.append([
        "(all)",
        str(count),
        f"{100.0 * count / total_exits:.1f}%" if total_exits else "-",
        f"{avg:.1f}",
        f"{avg / hz * 1e6:.3f}",
        f"{max((s.max_ticks for s in ordered), default=0) / hz * 1e6:.3f}",
        f"{ticks / hz * 1e3:.3f}",
    ])
    return format_table(headers, rows)


def summary_lines(counters: dict[str, int], hz: int, micro: str, note: str = "") -> list[str]:
    """Guest/hypervisor time, hypervisor share, injected interrupts and switches."""
    guest = counters["guest_ticks"] / hz
    hyp = counters["hyp_ticks"] / hz
    both = guest + hyp
    share = f"{100.0 * hyp / both:.2f}%" if both else "n/a"
    rate = f"{counters['exits'] / both:,.0f} exits/s" if both else "n/a"
    return [
        f"  guest time            {format_duration(guest, micro)} ({counters['guest_ticks']} ticks{note})",
        f"  hypervisor time       {format_duration(hyp, micro)} ({counters['hyp_ticks']} ticks{note})",
        f"  % in hypervisor       {share} of guest + hypervisor time",
        f"  exit rate             {rate}",
        f"  injected interrupts   {counters['injected']}",
        f"  context switches      {counters['switches']}",
    ]


def render_report(profile: Profile, sort: str, micro: str) -> str:
    """The whole text report of one profile."""
    hz = profile.counter_hz
    out = [
        f"Hypervisor exit profile (log lines {profile.begin_line}-{profile.end_line}): "
        f"{profile.vcpus} vCPU(s), counter {hz / 1e6:g} MHz",
    ]
    for vcpu in sorted(profile.vcpu_profiles):
        vp = profile.vcpu_profiles[vcpu]
        out += ["", f"vCPU {vcpu}: {vp.exits} exits"]
        out.append(exit_table(vp.exit_stats.values(), vp.exits, hz, sort, micro))
        out += summary_lines({key: getattr(vp, key) for key in VCPU_KEYS}, hz, micro)
        if vp.vgic is not None:
            v = vp.vgic
            out.append(
                f"  vGIC: {v['vgic_syncs']} syncs, {v['vgic_flushes']} flushes, "
                f"{v['lr_reads']} LR reads, {v['lr_writes']} LR writes, "
                f"{v['lock_waits']} lock waits ({v['lock_wait_ticks'] / hz * 1e3:.3f} ms)"
            )
        if vp.guest_logs is not None:
            g = vp.guest_logs
            out.append(
                f"  guest-caused log lines: {g['guest_logs']} printed, "
                f"{g['guest_logs_suppressed']} suppressed by the rate limit"
            )
    totals = profile_totals(profile)
    out += ["", f"All vCPUs: {totals['exits']} exits"]
    out.append(exit_table(merged_exit_stats(profile).values(), totals["exits"], hz, sort, micro))
    out += summary_lines(totals, hz, micro, note=", summed over vCPUs")
    return "\n".join(out)


# --------------------------------------------------------------------------------------------
# Chart


def load_pyplot():
    """Imports matplotlib with the Agg backend; raises RuntimeError with advice if missing."""
    try:
        import matplotlib
    except ImportError as err:
        hint = "install it (Debian: apt-get install python3-matplotlib; scripts/bootstrap.sh does)"
        if os.path.exists("/usr/bin/python3") and os.path.realpath(sys.executable) != os.path.realpath("/usr/bin/python3"):
            hint += f", or run this script with /usr/bin/python3 instead of {sys.executable}"
        raise RuntimeError(f"--png needs matplotlib, which {sys.executable} cannot import ({err}): {hint}") from err
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def write_png(profile: Profile, path: str, plt) -> None:
    """Draws exit counts and total exit time per kind, one bar per vCPU, into a PNG file."""
    merged = merged_exit_stats(profile)
    kinds = sorted(merged, key=lambda k: (-merged[k].total_ticks, k))
    vcpus = sorted(profile.vcpu_profiles)
    hz = profile.counter_hz
    fig, (ax_count, ax_time) = plt.subplots(1, 2, figsize=(max(8.0, 1.2 * len(kinds) + 6), 4.8))
    width = 0.8 / max(len(vcpus), 1)
    positions = range(len(kinds))
    for index, vcpu in enumerate(vcpus):
        stats = profile.vcpu_profiles[vcpu].exit_stats
        offsets = [p - 0.4 + width * (index + 0.5) for p in positions]
        counts = [stats[k].count if k in stats else 0 for k in kinds]
        times = [stats[k].total_ticks / hz * 1e3 if k in stats else 0.0 for k in kinds]
        ax_count.bar(offsets, counts, width, label=f"vCPU {vcpu}")
        ax_time.bar(offsets, times, width, label=f"vCPU {vcpu}")
    totals = profile_totals(profile)
    both = totals["guest_ticks"] + totals["hyp_ticks"]
    share = f"{100.0 * totals['hyp_ticks'] / both:.2f}%" if both else "n/a"
    for ax, title, ylabel in (
        (ax_count, "Exits per kind", "count"),
        (ax_time, "Time handling exits", "total ms"),
    ):
        ax.set_title(title)
        ax.set_ylabel(ylabel)
        ax.set_xticks(list(positions))
        ax.set_xticklabels(kinds, rotation=30, ha="right")
        ax.grid(axis="y", alpha=0.3)
        if len(vcpus) > 1:
            ax.legend()
    fig.suptitle(
        f"Hypervisor exit profile: {totals['exits']} exits on {profile.vcpus} vCPU(s), "
        f"{share} of time in the hypervisor"
    )
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100)
    plt.close(fig)


# --------------------------------------------------------------------------------------------
# Command line


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(
        description="Parse the hypervisor's exit profile ('(HYP) profile ...' lines printed at "
        "guest power-off) from a serial log and print per-vCPU tables, a summary and totals.",
        epilog="Example: scripts/qemu.sh | tee run.log; scripts/hyp-prof.py run.log --png prof.png. "
        "Exit status 1 when no valid profile is found (missing 'profile end', malformed line, "
        "a vCPU whose exits= differs from the sum of its exit counts).",
    )
    parser.add_argument("log", nargs="?", default="-", help="serial log file ('-' or omitted: stdin)")
    parser.add_argument("--all", action="store_true", help="report every profile in the log, not only the last")
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the parsed counters as JSON instead of tables: one profile object "
        "(version, counter_hz, vcpus, vcpu[], totals), or {\"profiles\": [...]} with --all",
    )
    parser.add_argument("--png", metavar="OUT.png", help="also write a bar chart of the (last) profile")
    parser.add_argument(
        "--sort",
        choices=sorted(SORT_KEYS),
        default="time",
        help="order of the exit kinds in the tables (default: time = total ticks)",
    )
    return parser


def read_log(path: str) -> list[str]:
    """Reads the log lines from a file or stdin, replacing undecodable bytes."""
    if path == "-":
        if sys.stdin.isatty():
            print("hyp-prof: reading the serial log from stdin (Ctrl-D ends it)", file=sys.stderr)
        stream = open(sys.stdin.fileno(), encoding="utf-8", errors="replace", closefd=False)
        with stream:
            return read_lines(stream)
    with open(path, encoding="utf-8", errors="replace") as stream:
        return read_lines(stream)


def main(argv: list[str] | None = None) -> int:
    """Runs the command line; returns the exit status."""
    args = build_parser().parse_args(argv)
    source = "stdin" if args.log == "-" else args.log
    try:
        plt = load_pyplot() if args.png else None
        lines = read_log(args.log)
    except (OSError, RuntimeError) as err:
        print(f"hyp-prof: error: {err}", file=sys.stderr)
        return 1

    profiles, stray = parse_log(lines)
    for message in stray:
        print(f"hyp-prof: error: {source}: {message}", file=sys.stderr)
    if not profiles:
        if not stray:
            print(
                f"hyp-prof: error: no '(HYP) profile begin' line in {source}: the hypervisor "
                "prints its profile when the guest powers off",
                file=sys.stderr,
            )
        return 1

    selected = profiles if args.all else profiles[-1:]
    failed = bool(stray)
    for profile in profiles:
        chosen = any(profile is p for p in selected)
        for message in profile.errors:
            kind = "error" if chosen else "warning (ignored profile)"
            print(f"hyp-prof: {kind}: {source}: {message}", file=sys.stderr)
        failed = failed or (chosen and bool(profile.errors))
        if chosen:
            for message in profile.warnings:
                print(f"hyp-prof: warning: {source}: {message}", file=sys.stderr)
    if failed:
        return 1

    try:
        if args.json:
            data = [profile_to_json(p) for p in selected]
            print(json.dumps({"profiles": data} if args.all else data[0], indent=2))
        else:
            micro = micro_sign(sys.stdout)
            print("\n\n".join(render_report(p, args.sort, micro) for p in selected))
        sys.stdout.flush()
    except BrokenPipeError:  # e.g. piped into head: not an error worth a traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    if plt is not None:
        try:
            write_png(selected[-1], args.png, plt)
        except OSError as err:
            print(f"hyp-prof: error: cannot write {args.png}: {err}", file=sys.stderr)
            return 1
        print(f"hyp-prof: wrote {args.png}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
