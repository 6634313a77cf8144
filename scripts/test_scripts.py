#!/usr/bin/env python3
"""Self-tests of scripts/hyp-prof.py and scripts/trace-summary.py (no pytest needed).

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
"""

from __future__ import annotations

import importlib.util
import json
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
    """Both scripts are executable, start with the env shebang, and answer --help."""
    for script in (HYP_PROF, TRACE_SUMMARY):
        assert os.access(script, os.X_OK), script
        with open(script, encoding="utf-8") as f:
            assert f.readline() == "#!/usr/bin/env python3\n", script
        result = run(script, "--help")
        assert result.returncode == 0 and "usage:" in result.stdout, result.stderr


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
