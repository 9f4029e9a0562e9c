"""Run one Rust test binary once and judge each selected test from that single run.

A test is judged by what libtest printed about it. When the binary died early (signal,
timeout, ``process::exit``) the tests it never reported fail, naming how it died: the one
unfinished test is the culprit (a hang keeps one thread busy while the others finish);
with one test thread the test whose ``test NAME ... `` was printed last is; otherwise every
unfinished test is "running or queued". A test libtest does not mention although the binary
ended normally fails too: nothing passes by omission. Never imports pytest.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from choirci import proc
from choirci.proc import CommandResult
from choirci.rust import cargo as cargo_mod
from choirci.rust import libtest
from choirci.rust.plan import BinaryPlan

PASSED, FAILED, SKIPPED = "passed", "failed", "skipped"
MAX_OUTPUT = 16 << 20  # per stream; head and tail kept, so results and summary survive
COMMAND_NAMES_SHOWN = 20  # recorded command lines list this many names, then a count


@dataclass(frozen=True)
class Verdict:
    status: str  # PASSED | FAILED | SKIPPED
    message: str = ""
    details: str = ""
    output: str = ""  # the test's captured output (bounded, cleaned)


@dataclass(frozen=True)
class BinaryRun:
    argv: tuple[str, ...]
    exit: str
    duration: float
    verdicts: dict[str, Verdict] = field(default_factory=dict)

    @property
    def command(self) -> str:
        """The exact command, with a long list of test names shortened for the evidence."""
        if len(self.argv) <= COMMAND_NAMES_SHOWN + 10:
            return shlex.join(self.argv)
        start = self.argv.index("--exact") + 1 if "--exact" in self.argv else len(self.argv)
        shown = self.argv[: start + COMMAND_NAMES_SHOWN]
        return f"{shlex.join(shown)} ... (+{len(self.argv) - len(shown)} more test names)"


def run_binary(plan: BinaryPlan, names: Sequence[str], timeout: float,
               threads: int | None = None) -> BinaryRun:
    assert plan.executable is not None
    everything = set(names) == set(plan.listed)
    argv = cargo_mod.run_argv(plan.executable, names, everything=everything, threads=threads)
    result = proc.run(argv, cwd=Path(plan.manifest_dir), env=cargo_mod.test_env(plan.package()),
                      timeout=timeout, max_output=MAX_OUTPUT)
    report = libtest.parse_run(result.stdout, set(plan.listed))
    verdicts = judge(report, result, names, timeout=timeout, serial=threads == 1)
    return BinaryRun(tuple(argv), result.describe_exit(), result.duration, verdicts)


def judge(report: libtest.RunReport, result: CommandResult, names: Sequence[str], *,
          timeout: float, serial: bool = False) -> dict[str, Verdict]:
    unfinished = [name for name in names if name not in report.results]
    culprit = _culprit(report, unfinished, serial)
    verdicts = {}
    for name in names:
        if name in report.results:
            verdicts[name] = _reported(report.results[name], report.outputs.get(name, ""))
        else:
            verdicts[name] = _unreported(name, culprit, result, report, timeout)
    return verdicts


def _culprit(report: libtest.RunReport, unfinished: list[str], serial: bool) -> str | None:
    if serial and report.started in unfinished:
        return report.started
    return unfinished[0] if len(unfinished) == 1 else None


def _reported(result: libtest.TestResult, output: str) -> Verdict:
    shown = libtest.excerpt(output) if output else ""
    if result.status == libtest.PASSED:
        return Verdict(PASSED, output=shown)
    if result.status == libtest.IGNORED:
        reason = f"#[ignore]: {result.reason}" if result.reason else "#[ignore]d (no reason given)"
        return Verdict(SKIPPED, message=f"{reason} (not run; run it explicitly with --ignored)")
    why = libtest.panic_message(output) or "failed (see its output below)"
    kind = " (#[should_panic])" if result.should_panic else ""
    return Verdict(FAILED, message=f"{result.name}{kind}: {libtest.one_line(why)}",
                   details=shown, output=shown)


def _unreported(name: str, culprit: str | None, result: CommandResult,
                report: libtest.RunReport, timeout: float) -> Verdict:
    died = _how_it_died(result, timeout)
    if died is None:
        ran = "no" if report.announced is None else str(report.announced)
        message = (f"{name}: libtest did not report this test although the binary ended "
                   f"normally ({ran} tests announced); counted as a failure, never a pass")
    elif name == culprit:
        message = f"{name}: {died} while this test was running"
    elif culprit is not None:
        message = f"{name}: not finished, {died} while {culprit} was running"
    else:
        message = (f"{name}: not finished, {died} while this test was running or queued "
                   "(libtest runs tests in parallel and does not say which one; "
                   "rust.test_threads: 1 pinpoints it)")
    return Verdict(FAILED, message=message, details=_process_output(result))


def _how_it_died(result: CommandResult, timeout: float) -> str | None:
    if result.timed_out:
        return f"timed out after {timeout:g}s (rust.timeout; the process group was killed)"
    if result.signal is not None:
        return f"the test binary was {result.describe_exit()}"
    if result.returncode not in (0, 101):
        return f"the test binary stopped with {result.describe_exit()}"
    return None


def _process_output(result: CommandResult) -> str:
    """What the dead binary printed outside libtest's capture (its captured output is lost)."""
    parts = []
    if result.stderr.strip():
        parts.append("stderr of the test binary:\n" + libtest.excerpt(result.stderr, 80))
    if result.stdout.strip():
        parts.append("stdout of the test binary (tail):\n" + libtest.excerpt(result.stdout, 40))
    return "\n\n".join(parts)
