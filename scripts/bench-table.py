#!/usr/bin/env python3
"""Reads the serial logs of scripts/guest-bench.sh's boots and turns them into results.

Each boot's log is named <config>.<side>.<run>.log, side "plain" (the kernel booted directly
by QEMU) or "hyp" (under the hypervisor). From a log it takes
  HVBENCH: <metric> <value> <unit>        every measurement of guest/bench/hvbench.c and
                                          guest/initramfs/tests/bench.sh
  HVTEST: init started uptime=<s>         as the metric boot_to_init (s)
  HVTEST: done bench status=<rc>          the suite finished (rc 0: every step succeeded)
  GUEST-BENCH: qemu status=<rc>           QEMU's exit status, appended by guest-bench.sh
                                          (124: killed by its timeout)

  bench-table.py summary LOG       one line with the run's metrics; status 1 if the run failed
  bench-table.py table [--csv OUT] [--configs "1vcpu 4on4"] [--versus A:B:METRIC] LOGDIR
                                   per metric and config: plain median, hypervisor median,
                                   ratio hypervisor/plain and runs; the CSV has the header
                                   metric,config,unit,plain,hypervisor,runs

A metric that some run of a config reports and another run of the same config (either side)
does not, a run that did not finish and a malformed line are problems: they are listed after
the table and make the status 1; the table is still printed from what was measured.
--versus 4on2:2on2:hackbench adds the row "hackbench, 4on2-vs-2on2hyp": config B's hypervisor
median in the plain column, config A's in the hypervisor column.
"""

from __future__ import annotations

import argparse
import csv
import math
import pathlib
import re
import statistics
import sys
from dataclasses import dataclass, field

SIDES = ("plain", "hyp")
LOG_NAME = re.compile(r"^(?P<config>[A-Za-z0-9_-]+)\.(?P<side>plain|hyp)\.(?P<run>[0-9]+)\.log$")
RESULT = re.compile(r"HVBENCH: (\S+) (\S+) (\S+)")
INIT = re.compile(r"HVTEST: init started uptime=([0-9.]+)")
DONE = re.compile(r"HVTEST: done bench status=([0-9]+)")
QEMU = re.compile(r"GUEST-BENCH: qemu status=([0-9]+)")
TIMEOUT_STATUS = 124  # timeout(1)'s status when it killed QEMU
BOOT_METRIC = ("boot_to_init", "s")


@dataclass
class Run:
    """What one boot's log says."""

    path: str
    metrics: dict = field(default_factory=dict)  # metric -> (value, unit), in log order
    problems: list = field(default_factory=list)
    finished: bool = False


def parse_log(text: str, path: str = "<log>") -> Run:
    """Metrics and problems of one serial log (\\r\\n line ends and glued prefixes are fine)."""
    run = Run(path)
    qemu_status = None
    done_status = None
    for number, line in enumerate(text.splitlines(), 1):
        line = line.rstrip("\r")
        if m := INIT.search(line):
            if BOOT_METRIC[0] not in run.metrics:
                run.metrics[BOOT_METRIC[0]] = (float(m.group(1)), BOOT_METRIC[1])
        elif m := RESULT.search(line):
            metric, value, unit = m.groups()
            try:
                number_value = float(value)
            except ValueError:
                run.problems.append(f"line {number}: {metric} value {value!r} is not a number")
                continue
            if not math.isfinite(number_value):
                run.problems.append(f"line {number}: {metric} value {value!r} is not finite")
            elif metric in run.metrics:
                run.problems.append(f"line {number}: {metric} reported twice")
            else:
                run.metrics[metric] = (number_value, unit)
        elif m := DONE.search(line):
            done_status = int(m.group(1))
        elif m := QEMU.search(line):
            qemu_status = int(m.group(1))
    if qemu_status == TIMEOUT_STATUS:
        run.problems.append("QEMU was killed by the timeout")
    elif qemu_status not in (None, 0):
        run.problems.append(f"QEMU exited with status {qemu_status}")
    if done_status is None:
        run.problems.append("the suite did not finish (no 'HVTEST: done bench' line)")
    elif done_status != 0:
        run.problems.append(f"the guest suite failed (status {done_status}; see 'bench step ... failed')")
    run.finished = done_status == 0
    return run


def read_run(path: pathlib.Path) -> Run:
    """parse_log of a file (unreadable bytes replaced: a serial log may hold anything)."""
    return parse_log(path.read_text(encoding="utf-8", errors="replace"), str(path))


def format_value(value: float) -> str:
    """A value with 3-4 significant digits, without exponent notation."""
    if not math.isfinite(value):
        return "-"
    magnitude = abs(value)
    decimals = 0 if magnitude >= 100 else 1 if magnitude >= 10 else 2 if magnitude >= 1 else 3
    return f"{value:.{decimals}f}"


def summary_line(run: Run) -> str:
    """One line: metric=value unit, ..., then the problems."""
    parts = [f"{metric}={format_value(value)}{unit}" for metric, (value, unit) in run.metrics.items()]
    text = " ".join(parts) if parts else "no metrics"
    if run.problems:
        text += " | PROBLEM: " + "; ".join(run.problems)
    return text


@dataclass
class Row:
    """One line of the table."""

    metric: str
    config: str
    unit: str
    plain: float
    hypervisor: float
    runs: int

    @property
    def ratio(self) -> float:
        """hypervisor / plain (nan when plain is 0 or a side is missing)."""
        if not self.plain or math.isnan(self.plain) or math.isnan(self.hypervisor):
            return math.nan
        return self.hypervisor / self.plain


def median(values: list) -> float:
    """The median, nan for no values."""
    return statistics.median(values) if values else math.nan


def collect(logdir: pathlib.Path) -> tuple[dict, list]:
    """{config: {side: [Run, ...] in run order}} of the logs in logdir, and problems."""
    runs: dict = {}
    problems = []
    entries = []
    for path in logdir.glob("*.log"):
        m = LOG_NAME.match(path.name)
        if not m:
            problems.append(f"{path}: not a <config>.<plain|hyp>.<run>.log name; ignored")
            continue
        entries.append((m["config"], m["side"], int(m["run"]), path))
    for config, side, _, path in sorted(entries, key=lambda e: (e[0], e[1], e[2])):
        runs.setdefault(config, {s: [] for s in SIDES})[side].append(read_run(path))
    return runs, problems


def build_table(runs: dict, config_order: list | None = None) -> tuple[list, list]:
    """Rows (configs in config_order, then the rest by name; metrics in first-seen order)
    and the problems: failed runs, metrics missing from some runs, units that disagree."""
    order = [c for c in (config_order or []) if c in runs]
    order += sorted(c for c in runs if c not in order)
    rows, problems = [], []
    for config in order:
        by_side = runs[config]
        for side in SIDES:
            if not by_side[side]:
                problems.append(f"{config}: no {side} runs")
        all_runs = [(side, r) for side in SIDES for r in by_side[side]]
        for side, r in all_runs:
            problems.extend(f"{config} {side} {r.path}: {p}" for p in r.problems)
        metrics: dict = {}  # metric -> unit, first seen
        for _, r in all_runs:
            for metric, (_, unit) in r.metrics.items():
                metrics.setdefault(metric, unit)
        for metric, unit in metrics.items():
            values = {side: [] for side in SIDES}
            for side, r in all_runs:
                if metric not in r.metrics:
                    problems.append(f"{config} {side} {r.path}: no {metric}")
                    continue
                value, got_unit = r.metrics[metric]
                if got_unit != unit:
                    problems.append(f"{config} {side} {r.path}: {metric} in {got_unit}, other runs in {unit}")
                    continue
                values[side].append(value)
            rows.append(Row(metric, config, unit, median(values["plain"]), median(values["hyp"]),
                            min(len(values["plain"]), len(values["hyp"]))))
    return rows, problems


def versus_row(rows: list, spec: str) -> tuple[Row | None, str | None]:
    """The --versus A:B:METRIC row from existing rows, or a reason why there is none."""
    try:
        a, b, metric = spec.split(":")
    except ValueError:
        return None, f"--versus {spec!r}: want CONFIG_A:CONFIG_B:METRIC"
    found = {r.config: r for r in rows if r.metric == metric}
    if a not in found or b not in found:
        return None, f"--versus {spec}: no {metric} row for both {a} and {b}"
    ra, rb = found[a], found[b]
    return Row(metric, f"{a}-vs-{b}hyp", ra.unit, rb.hypervisor, ra.hypervisor, min(ra.runs, rb.runs)), None


def format_table(rows: list) -> str:
    """The table as aligned text."""
    header = ("metric", "config", "unit", "plain", "hypervisor", "ratio", "runs")
    lines = [header] + [
        (r.metric, r.config, r.unit, format_value(r.plain), format_value(r.hypervisor),
         "-" if math.isnan(r.ratio) else f"{r.ratio:.2f}", str(r.runs))
        for r in rows
    ]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    left = 3  # metric, config and unit are left-aligned, the numbers right-aligned
    return "\n".join(
        "  ".join(cell.ljust(w) if i < left else cell.rjust(w) for i, (cell, w) in enumerate(zip(line, widths)))
        for line in lines
    )


def csv_number(value: float) -> str:
    """A CSV cell: the value to 6 significant digits, empty when unknown."""
    return "" if math.isnan(value) else f"{value:.6g}"


def write_csv(rows: list, out: pathlib.Path) -> None:
    """The CSV file read by scripts/bench-plot.py."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["metric", "config", "unit", "plain", "hypervisor", "runs"])
        for r in rows:
            writer.writerow([r.metric, r.config, r.unit, csv_number(r.plain), csv_number(r.hypervisor), r.runs])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p_summary = sub.add_parser("summary", help="one run's metrics on one line")
    p_summary.add_argument("log")
    p_table = sub.add_parser("table", help="medians and ratios of all runs in a directory")
    p_table.add_argument("logdir")
    p_table.add_argument("--csv", help="also write the table as CSV to this file")
    p_table.add_argument("--configs", default="", help="config order (space-separated)")
    p_table.add_argument("--versus", action="append", default=[], metavar="A:B:METRIC",
                         help="add a row comparing config A's hypervisor median with config B's")
    args = parser.parse_args()

    if args.command == "summary":
        try:
            run = read_run(pathlib.Path(args.log))
        except OSError as err:
            print(f"bench-table: cannot read {args.log}: {err}", file=sys.stderr)
            return 1
        print(summary_line(run))
        return 0 if run.finished and not run.problems else 1

    logdir = pathlib.Path(args.logdir)
    if not logdir.is_dir():
        print(f"bench-table: {logdir} is not a directory", file=sys.stderr)
        return 1
    runs, problems = collect(logdir)
    if not runs:
        print(f"bench-table: no <config>.<side>.<run>.log files in {logdir}", file=sys.stderr)
        return 1
    rows, more = build_table(runs, args.configs.split())
    problems += more
    for spec in args.versus:
        row, why = versus_row(rows, spec)
        if row:
            rows.append(row)
        else:
            problems.append(why)
    print(format_table(rows))
    if args.csv:
        write_csv(rows, pathlib.Path(args.csv))
        print(f"written to {args.csv}")
    for p in problems:
        print(f"PROBLEM: {p}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
