#!/usr/bin/env python3
"""Self-tests of scripts/hyp-prof.py, scripts/trace-summary.py, scripts/bench-table.py and
scripts/bench-plot.py (no pytest needed).

    python3 scripts/test_scripts.py [-v]

Runs every test_* function of this file, prints one line per failure (every test with -v)
and ends with "N passed, M failed"; the exit status is 1 if any test failed.

Fixtures live in tests/fixtures/scripts/:
  serial-profile.log            a serial log (\\r\\n line ends) with two profiles among guest lines
  serial-profile-mismatch.log   vcpu=1 reports exits=741, its exit counts add up to 740
  serial-profile-malformed.log  a non-numeric field value
  qemu-int-trace.log            an excerpt of a real `-d int,guest_errors` log (QEMU 7.2, the
                                hypervisor running Linux on 4 vCPUs, plus a guest error line of
                                a native Linux boot), cut in the middle of its last line
The bench-table/bench-plot tests write their serial logs and CSV files into temporary
directories (bench_log() below builds a log like guest-bench.sh keeps).
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
import tempfile
import traceback
from types import ModuleType

SCRIPTS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(SCRIPTS)
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "scripts")
HYP_PROF = os.path.join(SCRIPTS, "hyp-prof.py")
TRACE_SUMMARY = os.path.join(SCRIPTS, "trace-summary.py")
BENCH_TABLE = os.path.join(SCRIPTS, "bench-table.py")
BENCH_PLOT = os.path.join(SCRIPTS, "bench-plot.py")


def fixture(name: str) -> str:
    """Path of a fixture file."""
    return os.path.join(FIXTURES, name)


def load_module(path: str, name: str) -> ModuleType:
    """Imports a script whose file name is not a valid module name."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while it executes
    spec.loader.exec_module(module)
    return module


def run(script: str, *args: str, stdin: str | None = None, python: str | None = None,
        env: dict | None = None) -> subprocess.CompletedProcess:
    """Runs a script with a Python interpreter and captures its output."""
    return subprocess.run(
        [python or sys.executable, script, *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def python_with_matplotlib() -> str | None:
    """An interpreter that can import matplotlib: this one, else Debian's /usr/bin/python3."""
    for candidate in (sys.executable, "/usr/bin/python3"):
        if os.path.exists(candidate):
            probe = subprocess.run([candidate, "-c", "import matplotlib"], capture_output=True)
            if probe.returncode == 0:
                return candidate
    return None


def read_fixture(name: str) -> str:
    """A fixture's text with its line endings kept."""
    with open(fixture(name), encoding="utf-8", newline="") as f:
        return f.read()


# ----------------------------------------------------------------------------------------------
# hyp-prof.py

EXPECTED_TOTALS = {"guest_ticks": 93750000, "hyp_ticks": 1050000, "exits": 1740, "injected": 730, "switches": 8}
EXPECTED_KINDS = {
    "wfi": {"count": 750, "total_ticks": 218000, "max_ticks": 3000},
    "hvc": {"count": 15, "total_ticks": 7000, "max_ticks": 900},
    "mmio": {"count": 420, "total_ticks": 600000, "max_ticks": 6250},
    "irq": {"count": 515, "total_ticks": 148000, "max_ticks": 1200},
    "sysreg": {"count": 40, "total_ticks": 8000, "max_ticks": 400},
}


def test_fixture_has_crlf_line_ends():
    """The serial fixture really exercises \\r\\n handling."""
    text = read_fixture("serial-profile.log")
    assert "\r\n" in text and text.count("\r\n") == text.count("\n")


def test_prof_json_uses_last_profile_and_totals():
    """--json reports the last profile of the log, with the right all-vCPU totals."""
    result = run(HYP_PROF, "--json", fixture("serial-profile.log"))
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["vcpus"] == 2 and data["counter_hz"] == 62500000
    totals = data["totals"]
    for key, value in EXPECTED_TOTALS.items():
        assert totals[key] == value, (key, totals[key], value)
    assert totals["exit_kinds"] == EXPECTED_KINDS, totals["exit_kinds"]
    assert [v["exits"] for v in data["vcpu"]] == [1000, 740]
    assert data["vcpu"][1]["exit_kinds"]["sysreg"] == {"count": 40, "total_ticks": 8000, "max_ticks": 400}


def test_prof_all_reports_every_profile():
    """--all --json lists both profiles in log order."""
    result = run(HYP_PROF, "--all", "--json", fixture("serial-profile.log"))
    assert result.returncode == 0, result.stderr
    profiles = json.loads(result.stdout)["profiles"]
    assert [p["vcpus"] for p in profiles] == [1, 2]
    assert profiles[0]["totals"]["exits"] == 30


def test_prof_reads_stdin_and_prints_tables():
    """The table report from stdin: per-vCPU rows, summaries and totals."""
    result = run(HYP_PROF, stdin=read_fixture("serial-profile.log"))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for text in ("vCPU 0: 1000 exits", "vCPU 1: 740 exits", "All vCPUs: 1740 exits", "% of exits",
                 "injected interrupts   730", "context switches      8", "% in hypervisor"):
        assert text in out, text
    mmio = next(line for line in out.splitlines() if line.strip().startswith("mmio"))
    # vCPU 0 mmio: 300 exits, 30.0%, 1500 ticks avg = 24 us, max 6250 ticks = 100 us, 7.2 ms.
    assert mmio.split() == ["mmio", "300", "30.0%", "1500.0", "24.000", "100.000", "7.200"], mmio
    assert "1.11% of guest + hypervisor time" in out


def test_prof_mismatched_exits_is_an_error():
    """A vCPU whose exits= differs from the sum of its exit counts fails with exit status 1."""
    result = run(HYP_PROF, fixture("serial-profile-mismatch.log"))
    assert result.returncode == 1, result.returncode
    assert "vcpu=1 reports exits=741 but its exit kinds add up to 740" in result.stderr, result.stderr
    assert result.stdout == ""


def test_prof_malformed_line_is_an_error():
    """A non-numeric counter is reported with its line number."""
    result = run(HYP_PROF, fixture("serial-profile-malformed.log"))
    assert result.returncode == 1
    assert "line 5: total_ticks='12x000' is not a non-negative integer" in result.stderr, result.stderr


def test_prof_missing_end_is_an_error():
    """A log cut before 'profile end' fails, naming the missing end."""
    text = read_fixture("serial-profile.log")
    cut = text[: text.rindex("(HYP) profile end")]
    result = run(HYP_PROF, stdin=cut)
    assert result.returncode == 1
    assert "has no 'profile end'" in result.stderr, result.stderr


def test_prof_incomplete_earlier_profile_is_only_a_warning():
    """An unfinished earlier profile does not spoil the last one (unless --all)."""
    text = read_fixture("serial-profile.log")
    first_end = text.index("(HYP) profile end\r\n")
    text = text[:first_end] + text[first_end + len("(HYP) profile end\r\n"):]
    result = run(HYP_PROF, "--json", stdin=text)
    assert result.returncode == 0, result.stderr
    assert "warning (ignored profile)" in result.stderr
    assert json.loads(result.stdout)["totals"]["exits"] == 1740
    assert run(HYP_PROF, "--all", stdin=text).returncode == 1


def test_prof_missing_vcpu_and_no_profile():
    """vcpus=2 with one vCPU's lines fails; a log without any profile fails."""
    log = (
        "(HYP) profile begin version=1 counter_hz=1000 vcpus=2\n"
        "(HYP) profile vcpu=0 guest_ticks=10 hyp_ticks=1 exits=1 injected=0 switches=0\n"
        "(HYP) profile vcpu=0 exit=hvc count=1 total_ticks=1 max_ticks=1\n"
        "(HYP) profile end\n"
    )
    result = run(HYP_PROF, stdin=log)
    assert result.returncode == 1 and "no summary line for vcpu 1" in result.stderr, result.stderr
    result = run(HYP_PROF, stdin="(HYP) AArch64 EL2 hypervisor\nguest line\n")
    assert result.returncode == 1 and "no '(HYP) profile begin' line" in result.stderr, result.stderr


def test_prof_parser_units():
    """parse_log directly: glued prefix text, unsupported version, records outside a block."""
    prof = load_module(HYP_PROF, "hyp_prof")
    lines = [
        "junk\x1b[0m(HYP) profile begin version=1 counter_hz=100 vcpus=1",
        "(HYP) profile vcpu=0 guest_ticks=5 hyp_ticks=5 exits=0 injected=0 switches=0",
        "(HYP) profiler says hello",  # not a profile record
        "(HYP) profile end",
    ]
    profiles, stray = prof.parse_log(lines)
    assert len(profiles) == 1 and not profiles[0].errors and not stray, (profiles, stray)
    _, stray = prof.parse_log(["(HYP) profile begin version=2 counter_hz=100 vcpus=1"])
    assert stray and "version 2 is not supported" in stray[0], stray
    _, stray = prof.parse_log(["(HYP) profile vcpu=0 exit=wfi count=1 total_ticks=1 max_ticks=1"])
    assert stray and "outside begin/end" in stray[0], stray
    profiles, _ = prof.parse_log([
        "(HYP) profile begin version=1 counter_hz=100 vcpus=1",
        "(HYP) profile vcpu=0 guest_ticks=5 hyp_ticks=5 exits=1 injected=0 switches=0",
        "(HYP) profile vcpu=0 exit=Bad-Kind count=1 total_ticks=1 max_ticks=1",
        "(HYP) profile end",
    ])
    assert any("is not a word" in e for e in profiles[0].errors), profiles[0].errors


def test_prof_vgic_line():
    """The vGIC line is read into the vCPU, shown in the report, and checked like the others."""
    prof = load_module(HYP_PROF, "hyp_prof")
    block = [
        "(HYP) profile begin version=1 counter_hz=1000 vcpus=1",
        "(HYP) profile vcpu=0 guest_ticks=5 hyp_ticks=5 exits=0 injected=0 switches=0",
        "(HYP) profile vcpu=0 vgic_syncs=3 vgic_flushes=4 lr_reads=5 lr_writes=6 lock_waits=2 lock_wait_ticks=7",
        "(HYP) profile end",
    ]
    profiles, stray = prof.parse_log(block)
    assert not profiles[0].errors and not stray, (profiles[0].errors, stray)
    vgic = profiles[0].vcpu_profiles[0].vgic
    assert vgic == {"vgic_syncs": 3, "vgic_flushes": 4, "lr_reads": 5, "lr_writes": 6,
                    "lock_waits": 2, "lock_wait_ticks": 7}, vgic
    report = prof.render_report(profiles[0], "time", "us")
    assert "3 syncs, 4 flushes, 5 LR reads, 6 LR writes, 2 lock waits (7.000 ms)" in report, report
    assert prof.profile_to_json(profiles[0])["vcpu"][0]["vgic"] == vgic
    twice = block[:3] + block[2:]
    profiles, _ = prof.parse_log(twice)
    assert any("second vGIC line" in e for e in profiles[0].errors), profiles[0].errors
    early = [block[0], block[2], block[1], block[3]]
    profiles, _ = prof.parse_log(early)
    assert any("before its summary" in e for e in profiles[0].errors), profiles[0].errors
    logs = block[:3] + ["(HYP) profile vcpu=0 guest_logs=20 guest_logs_suppressed=280", block[3]]
    profiles, _ = prof.parse_log(logs)
    assert not profiles[0].errors, profiles[0].errors
    assert profiles[0].vcpu_profiles[0].guest_logs == {"guest_logs": 20, "guest_logs_suppressed": 280}
    assert "20 printed, 280 suppressed" in prof.render_report(profiles[0], "time", "us")


def test_prof_png_is_written():
    """--png writes a non-empty PNG file (with an interpreter that has matplotlib)."""
    python = python_with_matplotlib()
    assert python, "no Python with matplotlib (Debian: apt-get install python3-matplotlib)"
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "profile.png")
        result = run(HYP_PROF, "--png", out, fixture("serial-profile.log"), python=python)
        assert result.returncode == 0, result.stderr
        assert os.path.getsize(out) > 1000
        with open(out, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
        assert "vCPU 0: 1000 exits" in result.stdout


def test_prof_png_without_matplotlib_explains():
    """Without matplotlib, --png fails at once with advice instead of a traceback."""
    with tempfile.TemporaryDirectory() as tmp:
        os.mkdir(os.path.join(tmp, "matplotlib"))
        with open(os.path.join(tmp, "matplotlib", "__init__.py"), "w") as f:
            f.write("raise ImportError('hidden for the test')\n")
        env = dict(os.environ, PYTHONPATH=tmp)
        result = run(HYP_PROF, "--png", os.path.join(tmp, "x.png"), fixture("serial-profile.log"), env=env)
        assert result.returncode == 1
        assert "--png needs matplotlib" in result.stderr and "Traceback" not in result.stderr, result.stderr
        assert not os.path.exists(os.path.join(tmp, "x.png"))


# ----------------------------------------------------------------------------------------------
# trace-summary.py

TRACE_BY_KIND = {
    "Virtual IRQ": 6, "Undefined Instruction": 5, "Data Abort": 4, "Secure Monitor Call": 3,
    "Prefetch Abort": 3, "IRQ": 3, "SVC": 2, "Hypervisor Call": 1,
}
TRACE_BY_EC = {"0x17": 3, "0x24": 3, "0x20": 3, "0x15": 2, "0x01": 2, "0x18": 2, "0x16": 1, "0x25": 1}


def trace_json(*args: str) -> dict:
    """trace-summary.py --json on the trace fixture."""
    result = run(TRACE_SUMMARY, "--json", *args, fixture("qemu-int-trace.log"))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_trace_counts_by_kind_level_and_class():
    """Exception counts of the real trace excerpt (checked against grep)."""
    data = trace_json()
    assert data["exceptions"] == 27
    assert data["by_kind"] == TRACE_BY_KIND, data["by_kind"]
    assert data["by_transition"] == {
        "EL0->EL1": 9, "EL1->EL2": 8, "EL1->EL1": 6, "EL2->EL3": 3, "EL0->EL2": 1,
    }, data["by_transition"]
    assert data["by_transition_kind"]["EL0->EL2"] == {"IRQ": 1}
    assert data["by_transition_kind"]["EL1->EL2"] == {
        "Undefined Instruction": 5, "IRQ": 2, "Hypervisor Call": 1,
    }, data["by_transition_kind"]["EL1->EL2"]
    # IRQ/Virtual IRQ records carry a stale ESR: only the 17 synchronous ones are classified.
    assert {ec: v["count"] for ec, v in data["by_ec"].items()} == TRACE_BY_EC, data["by_ec"]
    assert data["by_ec"]["0x16"]["name"] == "HVC64" and data["by_ec"]["0x24"]["name"] == "DABT_LOW"
    assert data["exception_returns"] == {"EL2->EL1": 9, "EL1->EL0": 8, "EL1->EL1": 7, "EL2->EL0": 1}
    assert data["handled_as"] == {"PSCI call": 3}
    assert data["sysreg_traps"] == {"write ICC_SGI1R_EL1": 2}


def test_trace_per_cpu_counts():
    """Per-CPU totals and kinds."""
    per_cpu = trace_json()["per_cpu"]
    assert {cpu: v["exceptions"] for cpu, v in per_cpu.items()} == {"0": 16, "1": 2, "2": 5, "3": 4}
    assert per_cpu["0"]["by_kind"]["Data Abort"] == 4
    assert per_cpu["3"]["by_ec"] == {"0x01": 1}


def test_trace_guest_errors_truncation_and_incomplete_record():
    """The guest error line is counted and quoted; the cut last line is not parsed."""
    data = trace_json()
    assert data["guest_errors"]["count"] == 1
    assert data["guest_errors"]["first"][0]["text"].startswith("gicv3_dist_read: invalid guest read")
    assert data["truncated_last_line"] == "...with ESR 0x1/0"
    assert data["incomplete_exceptions"] == 1
    assert data["other"]["count"] == 0 and data["lines"] == 163
    last_cpu1 = data["per_cpu"]["1"]["last"][-1]
    assert last_cpu1["kind"] == "Undefined Instruction" and not last_cpu1["complete"]
    assert last_cpu1["esr"] is None


def test_trace_last_n_records():
    """--last N keeps the newest N records per CPU, oldest first, with ESR/FAR/ELR."""
    data = trace_json("--last", "2")
    last = data["per_cpu"]["0"]["last"]
    assert [r["line"] for r in last] == [117, 122]
    abort = last[1]
    assert abort["kind"] == "Data Abort" and abort["esr"] == "0x9600000b" and abort["ec"] == "0x25"
    assert abort["far"] == "0xfffff35cffe0" and abort["elr"] == "0xffff8000085f7d78"
    assert abort["detail"] == "read (no ISV), access flag fault L3"
    assert all(len(v["last"]) <= 2 for v in data["per_cpu"].values())
    assert trace_json("--last", "0")["per_cpu"]["0"]["last"] == []


def test_trace_text_report():
    """The text report shows the tables, the guest error and the last exceptions."""
    result = run(TRACE_SUMMARY, "--last", "3", fixture("qemu-int-trace.log"))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for text in ("27 exceptions on 4 CPU(s)", "Exceptions by kind", "Exceptions by level",
                 "0x24 DABT_LOW", "0x16 HVC64", "0x18 SYS64", "0x01 WFx", "Guest errors: 1",
                 "line 160: gicv3_dist_read", "Last 3 exception(s) on CPU 0",
                 "MSR ICC_SGI1R_EL1, x0", "Truncated last line"):
        assert text in out, text


def test_trace_unknown_lines_and_interleaving():
    """Unknown lines count as other; a continuation that does not fit is not misattributed."""
    log = (
        "Taking exception 11 [Hypervisor Call] on CPU 1\n"
        "...from EL1 to EL2\n"
        "...with ESR 0x16/0x5a000000\n"
        "...from EL1 to EL1\n"  # a second "from" line: another CPU's
        "something QEMU printed that nobody knows\n"
        "...with ELR 0x1000\n"
        "...to EL2 PC 0x40200c00 PSTATE 0x3c9\n"
        "...with FAR 0x10\n"  # no open record
        "Invalid access at addr 0x9000FF0, size 4, region 'pl011', reason: rejected\n"
        "\n"
    )
    result = run(TRACE_SUMMARY, "--json", "-", stdin=log)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["exceptions"] == 1 and data["incomplete_exceptions"] == 0
    assert data["interleaved_lines"] == 2
    assert data["other"]["count"] == 1 and data["other"]["first"][0]["line"] == 5
    assert data["guest_errors"]["count"] == 1
    record = data["per_cpu"]["1"]["last"][0]
    assert (record["from_el"], record["elr"], record["ec_name"]) == (1, "0x1000", "0x16 HVC64")
    assert data["truncated_last_line"] is None


def test_trace_empty_log_and_missing_file():
    """An empty log gives a zero summary; a missing file is a clear error."""
    result = run(TRACE_SUMMARY, "-", stdin="")
    assert result.returncode == 0 and "0 exceptions" in result.stdout, result.stdout
    result = run(TRACE_SUMMARY, os.path.join(FIXTURES, "does-not-exist.log"))
    assert result.returncode == 1 and "cannot read" in result.stderr, result.stderr


def test_trace_syndrome_decoding():
    """ISS decoding of the common classes."""
    trace = load_module(TRACE_SUMMARY, "trace_summary")
    assert trace.describe_syndrome(0x623A3016) == "MSR ICC_SGI1R_EL1, x0"
    assert trace.describe_syndrome(0x93550045) == "write 2B x21, translation fault L1"
    assert trace.describe_syndrome(0x07E00000) == "WFI"
    assert trace.describe_syndrome(0x07E00001) == "WFE"
    assert trace.describe_syndrome(0x5A00F00D) == "imm #0xf00d"
    assert trace.describe_syndrome(0x82000007) == "translation fault L3"
    # MRS x2, CNTPCT_EL0: op0=3 op1=3 CRn=14 CRm=0 op2=1, Rt=2, read.
    iss = (3 << 20) | (1 << 17) | (3 << 14) | (14 << 10) | (2 << 5) | (0 << 1) | 1
    assert trace.describe_syndrome((0x18 << 26) | (1 << 25) | iss) == "MRS x2, CNTPCT_EL0"
    assert trace.exception_class_name(0x24) == "0x24 DABT_LOW"
    assert trace.exception_class_name(0x3F) == "0x3f ?"


def test_scripts_have_help_and_are_executable():
    """The scripts are executable, start with the env shebang, and answer --help."""
    for script in (HYP_PROF, TRACE_SUMMARY, BENCH_TABLE, BENCH_PLOT):
        assert os.access(script, os.X_OK), script
        with open(script, encoding="utf-8") as f:
            assert f.readline() == "#!/usr/bin/env python3\n", script
        result = run(script, "--help")
        assert result.returncode == 0 and "usage:" in result.stdout, result.stderr


# ----------------------------------------------------------------------------------------------
# bench-table.py and bench-plot.py (scripts/guest-bench.sh's results)


def bench_log(metrics: dict, uptime: str | None = "1.50", done: int | None = 0, qemu: int | None = 0) -> str:
    """A serial log of one guest-bench boot: kernel noise, \\r\\n line ends, the HVBENCH lines
    of `metrics` ({metric: (value, unit)}) and the markers guest-bench.sh looks for."""
    lines = ["[    0.000000] Booting Linux on physical CPU 0x0000000000 [0x411fd070]"]
    if uptime is not None:
        lines.append(f"HVTEST: init started uptime={uptime}")
    lines += ["HVTEST: running bench", "HVTEST: bench step getppid ..."]
    lines += [f"HVBENCH: {metric} {value} {unit}" for metric, (value, unit) in metrics.items()]
    if done is not None:
        lines.append(f"HVTEST: done bench status={done}")
    text = "\r\n".join(lines) + "\r\n"
    if qemu is not None:
        text += f"GUEST-BENCH: qemu status={qemu}\n"
    return text


def write_bench_logs(directory: str, config: str, side: str, runs: list) -> None:
    """runs[i] (log text) as <config>.<side>.<i+1>.log."""
    for i, text in enumerate(runs, 1):
        with open(os.path.join(directory, f"{config}.{side}.{i}.log"), "w", newline="") as f:
            f.write(text)


def read_csv_rows(path: str) -> list:
    """A CSV file's rows, header included."""
    import csv

    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_bench_parse_log():
    """HVBENCH lines, glued prefixes, boot_to_init, finish markers and malformed values."""
    table = load_module(BENCH_TABLE, "bench_table")
    text = bench_log({"getppid": ("1411.5", "ns"), "disk_read": ("900.0", "MB/s")})
    text += "\x1b[0mnoise HVBENCH: retouch 250.000 ns\r\n"
    run = table.parse_log(text)
    assert run.finished and not run.problems, run.problems
    assert run.metrics == {"boot_to_init": (1.5, "s"), "getppid": (1411.5, "ns"),
                           "disk_read": (900.0, "MB/s"), "retouch": (250.0, "ns")}, run.metrics
    assert list(run.metrics)[0] == "boot_to_init"
    run = table.parse_log(bench_log({"getppid": ("12x", "ns"), "cpu_loop": ("nan", "ms")}))
    assert "getppid" not in run.metrics and "cpu_loop" not in run.metrics
    assert any("'12x' is not a number" in p for p in run.problems), run.problems
    assert any("'nan' is not finite" in p for p in run.problems), run.problems
    run = table.parse_log(bench_log({}) + "HVBENCH: getppid 1 ns\nHVBENCH: getppid 2 ns\n")
    assert run.metrics["getppid"] == (1.0, "ns") and any("reported twice" in p for p in run.problems)


def test_bench_parse_log_unfinished_runs():
    """A timeout, a failed suite and a log without the markers are all problems."""
    table = load_module(BENCH_TABLE, "bench_table")
    run = table.parse_log(bench_log({"getppid": ("1", "ns")}, done=None, qemu=124))
    assert not run.finished
    assert run.problems == ["QEMU was killed by the timeout",
                            "the suite did not finish (no 'HVTEST: done bench' line)"], run.problems
    run = table.parse_log(bench_log({}, done=1))
    assert not run.finished and any("failed (status 1" in p for p in run.problems), run.problems
    run = table.parse_log(bench_log({}, qemu=1))
    assert run.problems == ["QEMU exited with status 1"], run.problems
    run = table.parse_log("")
    assert not run.finished and not run.metrics and len(run.problems) == 1


def test_bench_table_medians_ratios_and_csv():
    """Medians per side, ratio hypervisor/plain, config order, the --versus row and the CSV."""
    with tempfile.TemporaryDirectory() as tmp:
        logs = os.path.join(tmp, "logs")
        os.mkdir(logs)
        for config, plain, hyp in (("4on4", (100, 300, 200), (400, 1000, 600)),
                                   ("1vcpu", (10, 30, 20), (15, 45, 30)),
                                   ("4on2", (100, 100, 100), (1800, 1200, 2400))):
            write_bench_logs(logs, config, "plain", [bench_log({"hackbench": (str(v), "ms")}, uptime=f"{v / 100:.2f}")
                                                     for v in plain])
            write_bench_logs(logs, config, "hyp", [bench_log({"hackbench": (str(v), "ms")}) for v in hyp])
        out = os.path.join(tmp, "guest-bench.csv")
        result = run(BENCH_TABLE, "table", "--csv", out, "--configs", "1vcpu 4on4 4on2",
                     "--versus", "4on2:4on4:hackbench", logs)
        assert result.returncode == 0, result.stdout + result.stderr
        rows = read_csv_rows(out)
        assert rows == [
            ["metric", "config", "unit", "plain", "hypervisor", "runs"],
            ["boot_to_init", "1vcpu", "s", "0.2", "1.5", "3"],
            ["hackbench", "1vcpu", "ms", "20", "30", "3"],
            ["boot_to_init", "4on4", "s", "2", "1.5", "3"],
            ["hackbench", "4on4", "ms", "200", "600", "3"],
            ["boot_to_init", "4on2", "s", "1", "1.5", "3"],
            ["hackbench", "4on2", "ms", "100", "1800", "3"],
            ["hackbench", "4on2-vs-4on4hyp", "ms", "600", "1800", "3"],
        ], rows
        table_lines = result.stdout.splitlines()
        assert table_lines[0].split() == ["metric", "config", "unit", "plain", "hypervisor", "ratio", "runs"]
        assert table_lines[4].split() == ["hackbench", "4on4", "ms", "200", "600", "3.00", "3"], table_lines[4]
        assert table_lines[7].split() == ["hackbench", "4on2-vs-4on4hyp", "ms", "600", "1800", "3.00", "3"]
        assert "PROBLEM" not in result.stdout


def test_bench_table_reports_missing_metrics_and_failed_runs():
    """A run without a metric the others have, or one that timed out, fails the table (status
    1) but the medians of what was measured are still printed and written."""
    with tempfile.TemporaryDirectory() as tmp:
        both = {"getppid": ("1000", "ns"), "pipe_same": ("100", "us")}
        write_bench_logs(tmp, "2on2", "plain", [bench_log(both), bench_log(both)])
        write_bench_logs(tmp, "2on2", "hyp", [bench_log({"getppid": ("4000", "ns")}, done=None, qemu=124),
                                              bench_log({"getppid": ("2000", "ns"), "pipe_same": ("300", "us")})])
        with open(os.path.join(tmp, "notes.log"), "w") as f:
            f.write("not a run\n")
        out = os.path.join(tmp, "out.csv")
        result = run(BENCH_TABLE, "table", "--csv", out, "--versus", "4on2:2on2:hackbench", tmp)
        assert result.returncode == 1, result.stdout
        problems = [line for line in result.stdout.splitlines() if line.startswith("PROBLEM: ")]
        assert any("2on2.hyp.1.log: QEMU was killed by the timeout" in p for p in problems), problems
        assert any("2on2.hyp.1.log: no pipe_same" in p for p in problems), problems
        assert any("notes.log: not a <config>" in p for p in result.stdout.splitlines()), result.stdout
        assert any("--versus 4on2:2on2:hackbench: no hackbench row" in p for p in problems), problems
        assert ["getppid", "2on2", "ns", "1000", "3000", "2"] in read_csv_rows(out)
        assert ["pipe_same", "2on2", "us", "100", "300", "1"] in read_csv_rows(out)


def test_bench_table_one_sided_metric_and_units():
    """A metric only one side reports gets an empty median in the CSV and '-' as ratio; a
    unit that changes between runs is a problem."""
    table = load_module(BENCH_TABLE, "bench_table")
    plain = [table.parse_log(bench_log({"pipe_cross": ("200", "us"), "cpu_loop": ("5", "ms")}))]
    hyp = [table.parse_log(bench_log({"cpu_loop": ("5000", "us")}))]
    rows, problems = table.build_table({"x": {"plain": plain, "hyp": hyp}})
    row = next(r for r in rows if r.metric == "pipe_cross")
    assert row.plain == 200 and math.isnan(row.hypervisor) and math.isnan(row.ratio) and row.runs == 0
    assert any("no pipe_cross" in p for p in problems), problems
    assert any("cpu_loop in us, other runs in ms" in p for p in problems), problems
    assert table.format_table([row]).splitlines()[1].split() == ["pipe_cross", "x", "us", "200", "-", "-", "0"]
    _, problems = table.build_table({"y": {"plain": plain, "hyp": []}})
    assert "y: no hyp runs" in problems


def test_bench_table_summary_and_errors():
    """summary prints one line (status 1 for a failed run); bad input is a clear error."""
    with tempfile.TemporaryDirectory() as tmp:
        good = os.path.join(tmp, "a.log")
        with open(good, "w") as f:
            f.write(bench_log({"getppid": ("1411.49", "ns"), "disk_write": ("114.2", "MB/s")}))
        result = run(BENCH_TABLE, "summary", good)
        assert result.returncode == 0, result.stderr
        assert result.stdout == "boot_to_init=1.50s getppid=1411ns disk_write=114MB/s\n", result.stdout
        bad = os.path.join(tmp, "b.log")
        with open(bad, "w") as f:
            f.write(bench_log({}, done=3))
        result = run(BENCH_TABLE, "summary", bad)
        assert result.returncode == 1 and "PROBLEM: the guest suite failed (status 3" in result.stdout
        assert run(BENCH_TABLE, "summary", os.path.join(tmp, "none.log")).returncode == 1
        result = run(BENCH_TABLE, "table", tmp)  # a.log and b.log are not <config>.<side>.<run>.log
        assert result.returncode == 1 and "no <config>.<side>.<run>.log files" in result.stderr, result.stderr


def test_bench_plot_draws_both_kinds():
    """bench-plot.py draws the boot/disk CSVs and guest-bench.csv from one directory, and
    guest-bench.csv alone (with an interpreter that has matplotlib)."""
    python = python_with_matplotlib()
    assert python, "no Python with matplotlib (Debian: apt-get install python3-matplotlib)"
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "guest-bench.csv"), "w") as f:
            f.write("metric,config,unit,plain,hypervisor,runs\n"
                    "getppid,1vcpu,ns,1400,1500,3\nhackbench,4on4,ms,1200,24000,3\n"
                    "disk_read,4on4,MB/s,900,450,3\npipe_cross,1vcpu,us,,,0\n")
        result = run(BENCH_PLOT, "--dir", tmp, python=python)
        assert result.returncode == 0, result.stderr
        assert "no ratio for pipe_cross/1vcpu" in result.stdout, result.stdout
        assert not os.path.exists(os.path.join(tmp, "bench.png"))
        with open(os.path.join(tmp, "boot-time.csv"), "w") as f:
            f.write("boot to /init,s,1.1,1.4,5\n")
        result = run(BENCH_PLOT, "--dir", tmp, python=python)
        assert result.returncode == 0, result.stderr
        assert "boot to /init: plain QEMU 1.1 s, hypervisor 1.4 s, ratio 1.27" in result.stdout
        for name in ("bench.png", "guest-bench.png"):
            with open(os.path.join(tmp, name), "rb") as f:
                assert f.read(8) == b"\x89PNG\r\n\x1a\n", name
        os.remove(os.path.join(tmp, "boot-time.csv"))
        with open(os.path.join(tmp, "guest-bench.csv"), "w") as f:
            f.write("metric,unit,plain,hypervisor,runs\n")
        result = run(BENCH_PLOT, "--dir", tmp, python=python)
        assert result.returncode != 0 and "expected metric,config,unit" in result.stderr, result.stderr



# ----------------------------------------------------------------------------------------------


def main() -> int:
    """Runs every test_* function; prints failures and the final count line."""
    verbose = "-v" in sys.argv[1:]
    tests = [(name, fn) for name, fn in globals().items() if name.startswith("test_") and callable(fn)]
    passed = failed = 0
    for name, fn in tests:
        try:
            fn()
        except Exception:  # a failed assertion or a crash: both fail the test
            failed += 1
            print(f"FAIL {name}")
            print("     " + traceback.format_exc().rstrip().replace("\n", "\n     "))
        else:
            passed += 1
            if verbose:
                print(f"ok   {name}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
