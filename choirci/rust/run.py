"""Run one Rust test binary once for a batch of tests and judge each test from that run.

A batch is every selected test of the binary (``rust.run: per-binary``) or one test
(``per-test``); doc tests run as one ``cargo test --doc`` per crate. Each finished test's
result is read from libtest's ``--logfile`` (written by libtest alone, so a test's child
process printing ``test result:`` or ``failures:`` cannot forge or hide results; stdout is
the fallback when the file is missing) and its output from stdout. Per-test durations
come from when each result line arrived: exact for a batch of one and with one test
thread, the share of the wall time otherwise.

A test is judged by what libtest printed about it. When the binary died early (signal,
timeout, ``process::exit``) the tests it never reported fail, naming how it died: the one
unfinished test is the culprit (a hang keeps one thread busy while the others finish);
with one test thread the test whose ``test NAME ... `` was printed last is; otherwise every
unfinished test is "running or queued". A test libtest does not mention although the binary
ended normally fails too: nothing passes by omission. Never imports pytest.
"""

from __future__ import annotations

import atexit
import dataclasses
import functools
import json
import os
import shlex
import shutil
import tempfile
import time
import uuid
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
    durations: dict[str, float] = field(default_factory=dict)  # per test, seconds

    @functools.cached_property
    def command(self) -> str:
        """The exact command, with a long list of test names shortened for the evidence."""
        if len(self.argv) <= COMMAND_NAMES_SHOWN + 10:
            return shlex.join(self.argv)
        start = self.argv.index("--exact") + 1 if "--exact" in self.argv else len(self.argv)
        shown = self.argv[: start + COMMAND_NAMES_SHOWN]
        return f"{shlex.join(shown)} ... (+{len(self.argv) - len(shown)} more test names)"


def run_binary(plan: BinaryPlan, names: Sequence[str], timeout: float,
               threads: int | None = None, ignored: str = "skip",
               cargo: cargo_mod.Cargo | None = None) -> BinaryRun:
    """Run ``names`` of ``plan`` in one process (doc tests: all of the crate's, see
    :meth:`~choirci.rust.cargo.Cargo.doc_argv`) and judge each of them."""
    doc = plan.kind == cargo_mod.DOC
    everything = doc or set(names) == set(plan.listed)
    stamps: list[tuple[float, str]] = []
    logfile = str(_scratch() / f"{uuid.uuid4().hex}.log")
    try:
        args = run_args(names, everything=everything, threads=threads,
                                  ignored=ignored, logfile=logfile)
        if doc:
            assert cargo is not None
            argv = cargo.doc_argv(plan.crate, plan.features, plan.manifest or None, args)
            env, cwd = cargo_mod.clean_env(), plan.cwd
        else:
            assert plan.executable is not None
            argv = [plan.executable, *args]
            run_env = plan.run_env()
            env, cwd = run_env.apply(), run_env.cwd
        started = time.monotonic()
        result = proc.run(argv, cwd=Path(cwd), env=env, timeout=timeout, max_output=MAX_OUTPUT,
                          on_stdout=lambda line: stamps.append((time.monotonic(), line)))
        logged = Path(logfile).read_text(errors="replace") if Path(logfile).exists() else None
    finally:
        Path(logfile).unlink(missing_ok=True)
    known = set(plan.listed)
    report = libtest.parse_run(result.stdout, known)
    if logged is not None:
        report = _with_logged(report, libtest.parse_logfile(logged, known))
    verdicts = judge(report, result, names, timeout=timeout, serial=threads == 1)
    if len(names) == 1 and not doc:
        durations = {names[0]: result.duration}
    else:
        wanted = set(names)
        order = [name for name in plan.listed if doc or name in wanted]
        durations = _durations(stamps, started, order, report, _threads(threads, env))
    # The recorded command names no temporary path: runs compare by their commands.
    shown = tuple("RESULTS.log" if arg == logfile else arg for arg in argv)
    return BinaryRun(shown, result.describe_exit(), result.duration, verdicts, durations)


def run_program(plan: BinaryPlan, timeout: float, ignored: str = "skip") -> BinaryRun:
    """A ``harness = false`` target run as ``cargo test`` runs it: the program alone, with
    cargo's environment and no arguments (``--include-ignored`` / ``--ignored`` passed on, as
    cargo passes test arguments to every binary); it passes when it exits 0. Its one verdict
    is keyed by the target (``plan.target``)."""
    assert plan.executable is not None
    argv = [plan.executable, *{"include": ["--include-ignored"], "only": ["--ignored"]}.get(
        ignored, [])]
    run_env = plan.run_env()
    result = proc.run(argv, cwd=Path(run_env.cwd), env=run_env.apply(), timeout=timeout,
                      max_output=MAX_OUTPUT)
    output = libtest.excerpt("\n".join(part for part in (result.stdout, result.stderr)
                                        if part.strip()))
    if result.ok:
        verdict = Verdict(PASSED, output=output)
    else:
        died = _how_it_died(result, timeout) or f"it exited with {result.describe_exit()}"
        why = libtest.panic_message(result.stderr)  # a failed assert! in its main
        died += f"; {libtest.one_line(why)}" if why else ""
        verdict = Verdict(FAILED, message=f"{plan.target} (harness = false, run as one "
                                          f"program, as cargo test runs it): {died}",
                          details=_process_output(result), output=output)
    return BinaryRun(tuple(argv), result.describe_exit(), result.duration,
                     {plan.target: verdict}, {plan.target: result.duration})


_SCRATCH: list[Path] = []


def _scratch() -> Path:
    """One private directory per process for libtest's logfiles (removed at exit)."""
    if not _SCRATCH:
        directory = Path(tempfile.mkdtemp(prefix="choirci-libtest-"))
        atexit.register(shutil.rmtree, directory, True)
        _SCRATCH.append(directory)
    return _SCRATCH[0]


def run_to_json(run: BinaryRun) -> str:
    return json.dumps(dataclasses.asdict(run))


def run_from_json(text: str) -> BinaryRun:
    raw = json.loads(text)
    raw["argv"] = tuple(raw["argv"])
    raw["verdicts"] = {name: Verdict(**v) for name, v in raw["verdicts"].items()}
    return BinaryRun(**raw)


def run_args(names: Sequence[str], *, everything: bool, threads: int | None, ignored: str,
             logfile: str | None) -> list[str]:
    """libtest arguments of one run: all tests, or exactly ``names``. ``ignored``: skip
    (ignored ones are reported as ``ignored, <reason>``, how the reason is learnt), include
    (``--include-ignored``) or only (``--ignored``). The logfile records each result apart
    from stdout, where a test's child processes also write."""
    args = ["--show-output", "--color", "never", "--format", "pretty"]
    if logfile is not None:
        args += ["--logfile", logfile]
    if threads is not None:
        args += ["--test-threads", str(threads)]
    if ignored == "include":
        args += ["--include-ignored"]
    elif ignored == "only":
        args += ["--ignored"]
    return args if everything else [*args, "--exact", *names]


def _with_logged(report: libtest.RunReport, logged: dict[str, libtest.TestResult]
                 ) -> libtest.RunReport:
    """The logfile's results; stdout only adds the #[should_panic] mark and ignore reasons."""
    results = {}
    for name, result in logged.items():
        seen = report.results.get(name)
        if seen is not None and seen.status == result.status:
            result = dataclasses.replace(result, should_panic=seen.should_panic,
                                         reason=result.reason or seen.reason)
        results[name] = result
    return dataclasses.replace(report, results=results)


def _durations(stamps: list[tuple[float, str]], started: float, order: Sequence[str],
               report: libtest.RunReport, threads: int) -> dict[str, float]:
    """Each test's time from when its result line arrived, and when it must have started:
    libtest starts tests in list order, ``threads`` at once, the next one as soon as one
    finishes (ignored ones take no thread). Exact for one thread and for a batch of one."""
    known = set(order)
    finished: list[tuple[float, str]] = []
    for when, line in stamps:
        name = libtest.result_line(line, known)
        if name is not None and name not in {n for _, n in finished}:
            finished.append((when, name))
    skipped = {n for n, r in report.results.items() if r.status == libtest.IGNORED}
    ran = [n for n in order if n not in skipped]
    ends = [when for when, name in finished if name not in skipped]
    begins = {name: started if k < threads else ends[k - threads]
              for k, name in enumerate(ran) if k < threads or k - threads < len(ends)}
    durations = {}
    for when, name in finished:
        begin = begins.get(name)
        durations[name] = max(0.0, when - begin) if begin is not None and name not in skipped else 0.0
    return durations


def _threads(threads: int | None, env: dict[str, str]) -> int:
    """How many tests libtest runs at once (--test-threads, RUST_TEST_THREADS, the CPUs)."""
    if threads is not None:
        return threads
    try:
        return max(1, int(env.get("RUST_TEST_THREADS", "")))
    except ValueError:
        return max(1, len(os.sched_getaffinity(0)))


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
        return Verdict(SKIPPED, message=f"{reason} (not run; to run ignored tests set "
                                        "rust.ignored: include or pass --rust-ignored=include)")
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
