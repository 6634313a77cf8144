#!/usr/bin/env python3
"""Draws `make bench`'s results: each metric's median on plain QEMU next to the hypervisor.

Reads build/bench/*.csv (lines "metric,unit,plain,hypervisor,runs", written by
scripts/boot-time.sh and scripts/disk-bench.sh) and writes build/bench/bench.png.
Needs Debian's python3-matplotlib: run it with /usr/bin/python3.
"""

import argparse
import csv
import pathlib
import sys


def read_results(directory):
    """All (metric, unit, plain, hypervisor, runs) rows of the CSV files in `directory`."""
    rows = []
    for path in sorted(pathlib.Path(directory).glob("*.csv")):
        with open(path, newline="") as handle:
            for metric, unit, plain, hyp, runs in csv.reader(handle):
                rows.append((metric, unit, float(plain), float(hyp), int(runs)))
    return rows


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


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", default="build/bench", help="where the CSV files are")
    parser.add_argument("--out", default="build/bench/bench.png", help="the PNG to write")
    args = parser.parse_args()
    rows = read_results(args.dir)
    if not rows:
        sys.exit(f"bench-plot: no results in {args.dir}: run scripts/boot-time.sh or scripts/disk-bench.sh first")
    for metric, unit, plain, hyp, _ in rows:
        print(f"{metric}: plain QEMU {plain:g} {unit}, hypervisor {hyp:g} {unit}, ratio {hyp / plain:.2f}")
    plot(rows, args.out)
    print(f"plot written to {args.out}")


if __name__ == "__main__":
    main()
