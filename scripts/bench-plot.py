#!/usr/bin/env python3
"""Draws `make bench`'s results: plain QEMU next to the hypervisor.

Reads build/bench/*.csv:
  * lines "metric,unit,plain,hypervisor,runs" without a header (scripts/boot-time.sh and
    scripts/disk-bench.sh): each metric's two medians as bars, into build/bench/bench.png;
  * files with the header "metric,config,unit,plain,hypervisor,runs": guest-bench.csv
    (scripts/guest-bench.sh) and microbench.csv (scripts/microbench.sh): the ratio
    hypervisor/plain of every metric, one bar per configuration, on a log scale with a line
    at 1.0, into build/bench/<name>.png.
Either kind may be missing. Needs Debian's python3-matplotlib: run it with /usr/bin/python3.
"""

import argparse
import csv
import math
import pathlib
import sys

GUEST_BENCH_CSV = "guest-bench.csv"
GUEST_BENCH_HEADER = ["metric", "config", "unit", "plain", "hypervisor", "runs"]
# Units where a bigger number is better (a ratio below 1 is the hypervisor being slower).
HIGHER_IS_BETTER = {"MB/s"}


def read_results(directory):
    """All (metric, unit, plain, hypervisor, runs) rows of the header-less CSV files in
    `directory` (guest-bench.csv is read by read_guest_bench)."""
    rows = []
    for path in sorted(pathlib.Path(directory).glob("*.csv")):
        if path.name == GUEST_BENCH_CSV or has_suite_header(path):
            continue
        with open(path, newline="") as handle:
            for metric, unit, plain, hyp, runs in csv.reader(handle):
                rows.append((metric, unit, float(plain), float(hyp), int(runs)))
    return rows


def has_suite_header(path):
    """Whether the CSV file starts with GUEST_BENCH_HEADER (a benchmark suite's table)."""
    with open(path, newline="") as handle:
        return next(csv.reader(handle), None) == GUEST_BENCH_HEADER


def read_guest_bench(path):
    """The (metric, config, unit, plain, hypervisor, runs) rows of guest-bench.csv; a missing
    median (an empty cell) is nan. No file: no rows."""
    path = pathlib.Path(path)
    if not path.exists():
        return []
    with open(path, newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header != GUEST_BENCH_HEADER:
            sys.exit(f"bench-plot: {path}: header {header}, expected {','.join(GUEST_BENCH_HEADER)}")
        number = lambda cell: float(cell) if cell else math.nan  # noqa: E731
        return [(m, c, u, number(p), number(h), int(r)) for m, c, u, p, h, r in reader]


def ratio(plain, hyp):
    """hypervisor / plain, nan when it cannot be computed or drawn on a log scale."""
    if not (plain > 0 and hyp > 0):  # also false for nan
        return math.nan
    return hyp / plain


def plot(rows, out):
    """One panel per metric: two bars and the ratio in the title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(rows), figsize=(3.2 * len(rows), 3.6), squeeze=False)
    for ax, (metric, unit, plain, hyp, runs) in zip(axes[0], rows):
        ax.bar(["plain QEMU", "hypervisor"], [plain, hyp], color=["#7a9cc6", "#c67a7a"])
        ax.set_title(f"{metric}\nratio {hyp / plain:.2f} (median of {runs})", fontsize=9)
        ax.set_ylabel(unit)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


# What the ratio means, for suites whose "plain" column is not plain QEMU.
RATIO_LABELS = {"hvm-bench": "HVM operation / the Linux operation it stands in for (log scale)"}


def plot_guest_bench(rows, out, title="Guest benchmarks"):
    """Grouped bars: per metric (x), one bar per configuration with its ratio; log y axis,
    a line at 1.0 (as fast as plain QEMU)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    metrics, configs, units = [], [], {}
    for metric, config, unit, *_ in rows:
        if metric not in metrics:
            metrics.append(metric)
            units[metric] = unit
        if config not in configs:
            configs.append(config)
    ratios = {(m, c): ratio(p, h) for m, c, _, p, h, _ in rows}
    width = 0.8 / len(configs)
    fig, ax = plt.subplots(figsize=(max(8.0, 0.6 * len(metrics) * len(configs) ** 0.5), 5.0))
    cmap = plt.get_cmap("tab10")
    for i, config in enumerate(configs):
        xs, ys = [], []
        for j, metric in enumerate(metrics):
            r = ratios.get((metric, config), math.nan)
            if not math.isnan(r):
                xs.append(j - 0.4 + width * (i + 0.5))
                ys.append(r)
        # Bars grow from 1.0: up when the hypervisor's figure is bigger, down when smaller.
        ax.bar(xs, [y - 1 for y in ys], width, bottom=1, label=config, color=cmap(i % 10))
        for x, y in zip(xs, ys):
            ax.annotate(f"{y:.2g}", (x, y), ha="center", va="bottom" if y >= 1 else "top", fontsize=6)
    ax.axhline(1.0, color="black", linewidth=1)
    ax.set_yscale("log")
    plain_numbers = matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}")
    ax.yaxis.set_major_formatter(plain_numbers)
    ax.yaxis.set_minor_formatter(plain_numbers)
    ax.tick_params(axis="y", which="minor", labelsize=7)
    ax.set_ylabel(RATIO_LABELS.get(title, "hypervisor / plain QEMU (log scale)"))
    labels = [f"{m} [{units[m]}{', higher is better' if units[m] in HIGHER_IS_BETTER else ''}]" for m in metrics]
    ax.set_xticks(range(len(metrics)))
    ax.set_xticklabels(labels, rotation=40, ha="right", fontsize=8)
    runs = sorted({r for *_, r in rows})
    ax.set_title(f"{title}: ratio of medians (runs: {', '.join(map(str, runs))})", fontsize=10)
    ax.legend(fontsize=8, title="config", title_fontsize=8)
    ax.grid(axis="y", which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", default="build/bench", help="where the CSV files are")
    parser.add_argument("--out", default=None, help="the PNG of the boot/disk results [DIR/bench.png]")
    parser.add_argument("--guest-out", default=None, help="the PNG of guest-bench.csv [DIR/guest-bench.png]")
    args = parser.parse_args()
    directory = pathlib.Path(args.dir)
    rows = read_results(directory)
    guest_rows = read_guest_bench(directory / GUEST_BENCH_CSV)
    if not rows and not guest_rows and not any(has_suite_header(p) for p in directory.glob("*.csv")):
        sys.exit(f"bench-plot: no results in {args.dir}: run scripts/boot-time.sh, scripts/disk-bench.sh"
                 " or scripts/guest-bench.sh first")
    if rows:
        out = args.out or str(directory / "bench.png")
        for metric, unit, plain, hyp, _ in rows:
            print(f"{metric}: plain QEMU {plain:g} {unit}, hypervisor {hyp:g} {unit}, ratio {hyp / plain:.2f}")
        plot(rows, out)
        print(f"plot written to {out}")
    if guest_rows:
        out = args.guest_out or str(directory / "guest-bench.png")
        plot_guest_bench(guest_rows, out)
        skipped = [f"{m}/{c}" for m, c, _, p, h, _ in guest_rows if math.isnan(ratio(p, h))]
        note = f" (no ratio for {', '.join(skipped)})" if skipped else ""
        print(f"guest benchmark plot ({len(guest_rows)} rows) written to {out}{note}")
    # Other suites in the same format (scripts/microbench.sh).
    for path in sorted(directory.glob("*.csv")):
        if path.name == GUEST_BENCH_CSV or not has_suite_header(path):
            continue
        suite_rows = read_guest_bench(path)
        # A table without plain QEMU figures (idle-cost.csv) has no ratios to draw.
        if any(not math.isnan(ratio(p, h)) for _, _, _, p, h, _ in suite_rows):
            out = str(directory / f"{path.stem}.png")
            plot_guest_bench(suite_rows, out, title=path.stem)
            print(f"{path.stem} plot ({len(suite_rows)} rows) written to {out}")


if __name__ == "__main__":
    main()
