"""The session-state object the plugin registers when ``--grind`` is active.

It listens to reports on the controller only (under xdist every worker's reports are
forwarded to the controller; workers never write) and owns the run's evidence:

* at session start: capture git state, install SIGTERM and SIGHUP handlers that raise
  KeyboardInterrupt (so pytest unwinds as for Ctrl-C), and write an ``incomplete`` record
  atomically, so a run killed at any moment still leaves valid evidence;
* during the run: redact every report before pytest prints it (the terminal is the CI log),
  keep the reports per node id, the collected ids, the deselected and narrowed-away items
  and collection errors;
* at session end: combine them into one :class:`~choirci.evidence.record.ShardRun` (an item
  collected but never reported is ``missing``), write every evidence file, and print where.
"""

from __future__ import annotations

import os
import platform
import signal
import sys
from collections.abc import Generator, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

from choirci import __version__, progress
from choirci.errors import ChoirciError
from choirci.evidence import files as evidence
from choirci.evidence import workspace
from choirci.evidence.record import (
    BAD,
    ItemResult,
    Provenance,
    RunRecord,
    ShardRun,
    TreeState,
    counts_text,
    run_verdict,
)
from choirci.evidence.redact import Redactor
from choirci.gates import definitions as gates
from choirci.progress import announcer
from choirci.session import evidence_dir, outcomes
from choirci.settings import Settings

SHARD_ENV = "CHOIRCI_SHARD"
EXPECTED_ENV = "CHOIRCI_EXPECTED_SHARDS"
PROMOTED_ENV = "CHOIRCI_PROMOTED_SHA"
COMPLETE_EXIT = (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED, pytest.ExitCode.NO_TESTS_COLLECTED)
# A CI runner cancelling the job sends SIGTERM; a dropped SSH session to the grind host, SIGHUP.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def marker_names(item: pytest.Item) -> tuple[str, ...]:
    return tuple(sorted({mark.name for mark in item.iter_markers()}))


class Recorder:
    def __init__(self, config: pytest.Config, settings: Settings,
                 lock: evidence_dir.DirLock | None = None) -> None:
        self.config = config
        self.settings = settings
        self.lock = lock  # held from pytest_configure to pytest_unconfigure
        self.relay: progress.Relay | None = None  # workers' progress lines (xdist)
        # Only the controller records: workers forward their reports to it. ``workerinput``
        # marks a real xdist worker; $PYTEST_XDIST_WORKER alone would also silence a pytest
        # run started from inside a worker (a nested run is a controller of its own).
        self.active = not hasattr(config, "workerinput") and not config.option.collectonly
        self.reports: dict[str, list[Any]] = {}
        self.markers: dict[str, tuple[str, ...]] = {}
        self.collected: dict[str, None] = {}
        self.deselected: list[ItemResult] = []
        self.collect_errors: list[ItemResult] = []
        self.interrupt: str = ""
        self.terminated = ""  # the name of the signal that stopped the run
        self.started = ""
        self.start_state = workspace.GitState(None, None, None)
        self.written: list[Path] = []
        self.final: RunRecord | None = None
        self.redactor = Redactor.from_env(extra=settings.config.redact)
        self._old_handlers: dict[signal.Signals, Any] = {}

    # ------------------------------------------------------------------ session start

    @pytest.hookimpl(trylast=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        if not self.active:
            return
        self.started = now()
        self.start_state = workspace.state(self.settings.root, self.settings.evidence_dir)
        # A new run in this dir invalidates the old run's gate verdicts (moved to gates/stale/).
        evidence.archive_stale_gates(self.settings.evidence_dir)
        self._install_handlers()
        try:
            self._write(self._record(status="incomplete", reason="the run did not finish "
                                     "(still running, or killed before it could record an end)"))
        except ChoirciError as exc:
            self._restore_handlers()
            pytest.exit(f"choirci: {exc}", returncode=pytest.ExitCode.USAGE_ERROR)

    def pytest_unconfigure(self) -> None:
        if self.lock is not None:
            self.lock.release()

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        """xdist, controller: give each worker the file its progress lines go to."""
        if self.relay is None:
            self.relay = progress.Relay(announcer(self.config))
            self.relay.start()
        node.workerinput[progress.WORKERINPUT_KEY] = str(self.relay.path)

    def _install_handlers(self) -> None:
        for signum in STOP_SIGNALS:
            try:
                self._old_handlers[signum] = signal.signal(signum, self._on_signal)
            except ValueError:  # not the main thread (pytest embedded in a thread): no handler
                return

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        # Unwind like Ctrl-C so the session ends normally and the evidence says
        # "incomplete" (naming the signal) instead of vanishing.
        self.terminated = signal.Signals(signum).name
        raise KeyboardInterrupt(self.terminated)

    def _restore_handlers(self) -> None:
        for signum, handler in self._old_handlers.items():
            if handler is not None:
                signal.signal(signum, handler)
        self._old_handlers = {}

    # ------------------------------------------------------------------ during the run

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item,
                                  call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
        # Here, before pytest (or xdist, on a worker) prints or ships the report: a failure
        # section or captured output holding a secret would otherwise land in the CI log.
        report = yield
        outcomes.redact_report(report, self.redactor)
        return report

    @pytest.hookimpl(wrapper=True)
    def pytest_make_collect_report(self, collector: pytest.Collector) -> Generator[None, Any, Any]:
        report = yield
        outcomes.redact_report(report, self.redactor)
        return report

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        for item in session.items:
            self.collected.setdefault(item.nodeid)
            self.markers[item.nodeid] = marker_names(item)

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: Sequence[str]) -> None:
        for nodeid in ids:
            self.collected.setdefault(nodeid)

    def pytest_deselected(self, items: Sequence[pytest.Item]) -> None:
        for item in items:
            self.deselected.append(outcomes.placeholder(
                item.nodeid, "deselected", marker_names(item), "deselected (-k/-m or a plugin)"))

    def note_narrowed(self, nodeids: Sequence[str],
                      markers: dict[str, tuple[str, ...]] | None, reason: str) -> None:
        """Configured items that a choirci option (``--closure``, ``--rust-test``,
        ``--area``) left out before collection: recorded as ``deselected`` with ``reason``,
        so a gate over them never passes on a narrowed run. ``rust::CRATE::BIN::*`` stands
        for a whole test target, ``hosts::*`` (marker ``host``) for every host check."""
        markers = markers or {}
        for nodeid in nodeids:
            self.deselected.append(outcomes.placeholder(
                nodeid, "deselected", markers.get(nodeid, ()), reason))

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed and self.active:
            self.collect_errors.append(outcomes.collection_error(report, self.redactor))

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if self.active:
            self.reports.setdefault(report.nodeid, []).append(report)
            if report.nodeid not in self.markers:
                self.markers[report.nodeid] = _markers_from_keywords(self.config, report)

    def pytest_keyboard_interrupt(self, excinfo: pytest.ExceptionInfo[BaseException]) -> None:
        # pytest routes its own stops (collection errors, -x, pytest.exit) through this hook
        # too; only a bare KeyboardInterrupt is the user or a signal.
        value = excinfo.value
        if isinstance(value, pytest.Session.Interrupted):
            self.interrupt = f"stopped: {value}"
        elif isinstance(value, pytest.exit.Exception):
            self.interrupt = f"stopped by pytest.exit: {value}"
        else:
            self.interrupt = (f"terminated by {self.terminated}" if self.terminated
                              else "interrupted (Ctrl-C)")

    # ------------------------------------------------------------------ session end

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self.relay is not None:
            self.relay.stop()
        if not self.active:
            return
        try:
            status, reason = self._status(session, int(exitstatus))
            self.final = self._record(status=status, reason=reason, exit_status=int(exitstatus),
                                      end=workspace.porcelain(self.settings.root,
                                                                  self.settings.evidence_dir))
            self._write(self.final, summary=True)
        except ChoirciError as exc:
            sys.stderr.write(f"choirci: error: {exc}\n")
        finally:
            self._restore_handlers()

    def _status(self, session: pytest.Session, exitstatus: int) -> tuple[str, str]:
        if self.interrupt:
            return "incomplete", self.interrupt
        if exitstatus in COMPLETE_EXIT:
            return "complete", ""
        if self.collect_errors:
            return "incomplete", f"stopped by {len(self.collect_errors)} collection error(s)"
        name = pytest.ExitCode(exitstatus).name if exitstatus in set(pytest.ExitCode) else exitstatus
        return "incomplete", f"pytest stopped with exit status {exitstatus} ({name})"

    def _record(self, status: str, reason: str, exit_status: int | None = None,
                end: tuple[str, ...] | None = None) -> RunRecord:
        finished = now() if exit_status is not None else None
        items = self._items(final=exit_status is not None)
        run = ShardRun(
            shard=os.environ.get(SHARD_ENV, "").strip(),
            status=status,
            reason=reason,
            started=self.started,
            finished=finished,
            exit_status=exit_status,
            expected_shards=_expected_shards(),
            provenance=self._provenance(items),
            tree=TreeState(before=self.start_state.porcelain, after=end),
        )
        return RunRecord(runs=(replace(run, items=items),))

    def _items(self, final: bool) -> tuple[ItemResult, ...]:
        done = [outcomes.build(nodeid, reports, self.markers.get(nodeid, ()), self.redactor)
                for nodeid, reports in self.reports.items()]
        missing = [
            outcomes.placeholder(nodeid, "missing", self.markers.get(nodeid, ()),
                                 "collected but never reported (the run stopped before it)")
            for nodeid in self.collected
            if nodeid not in self.reports
        ] if final else []
        known = set(self.reports) | set(self.collected)
        first: dict[str, ItemResult] = {}
        for result in self.deselected:
            if result.nodeid not in known:
                first.setdefault(result.nodeid, result)
        deselected = list(first.values())
        return tuple(self.collect_errors + done + missing + deselected)

    def _provenance(self, items: tuple[ItemResult, ...]) -> Provenance:
        release = self.settings.config.release
        nix_versions = [item.prop("nix_version") for item in items if item.prop("nix_version")]
        return Provenance(
            commit=self.start_state.commit,
            branch=self.start_state.branch,
            domain=release.domain,
            promoted_sha=os.environ.get(PROMOTED_ENV, "").strip() or None,
            nix_version=nix_versions[0] if nix_versions else None,
            choirci_version=__version__,
            python_version=platform.python_version(),
            pytest_version=pytest.__version__,
            machine=platform.node() or None,
            root=str(self.settings.root),
            argv=tuple(self.config.invocation_params.args),
        )

    def _write(self, record: RunRecord, summary: bool = False) -> None:
        redactor = Redactor.from_env(extra=self.settings.config.redact)
        self.written = evidence.write_all(
            record, self.settings.evidence_dir, redactor,
            gates_dir=self.settings.config.gates_dir,
            step_summary=os.environ.get("GITHUB_STEP_SUMMARY") if summary else None,
        )

    # ------------------------------------------------------------------ terminal

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.active or self.final is None:
            return
        terminalreporter.write_sep("-", "choirci")
        terminalreporter.write_line(f"choirci: evidence written to {self.settings.evidence_dir}")
        for path in self.written:
            terminalreporter.write_line(f"  {path}")
        for line in verdict_lines(self.final):
            terminalreporter.write_line(self.redactor(line))
        try:
            gates.gates_dir(self.settings.config.gates_dir)
        except ChoirciError as exc:
            terminalreporter.write_line(f"choirci: warning: gates not evaluated: {exc}")
        for line in self.final.runs[0].tree.dirtied:
            terminalreporter.write_line(f"choirci: warning: the run dirtied the git tree: {line}")
        for line in result_lines(self.final):
            terminalreporter.write_line(self.redactor(line))
        hint = evidence_dir.ignore_hint(self.settings.root, self.settings.evidence_dir)
        if hint:
            terminalreporter.write_line(hint)


def result_lines(record: RunRecord) -> list[str]:
    """One line per closure (how it was obtained, how long, the store path) and a count of
    the repository's own Python tests when --python-tests let them into the verdict."""
    lines = []
    for item in record.items:
        if item.nodeid.startswith("closures::") and item.outcome != "deselected":
            lines.append(closure_line(item))
    python = [i for i in record.items if i.area == "python" and i.outcome != "deselected"]
    if python:
        lines.append(f"choirci: {len(python)} Python test(s) outside choirci's areas count in "
                     "this verdict (--python-tests)")
    return lines


def closure_line(item: ItemResult) -> str:
    if item.outcome != "passed":
        why = item.message.strip().splitlines()[0] if item.message.strip() else ""
        return f"choirci: {item.nodeid}: {item.outcome}" + (f" ({why[:160]})" if why else "")
    how = item.prop("cache") or "built"
    # The item's duration is the closure's own time in the batch (choirci.nix.timing).
    seconds = f" in {item.duration:.1f}s" if how != "present" else ""
    where = item.prop("built_on")
    on = f" on {where}" if where and where != "local" else ""
    return f"choirci: {item.nodeid}: {how}{on}{seconds} -> {item.prop('out_path') or '?'}"


def verdict_lines(record: RunRecord) -> list[str]:
    """The end-of-run verdict. A shard that finished says so: the verdict of the whole
    matrix only exists after ``choirci evidence merge`` (the other shards are not here)."""
    run = record.runs[0]
    counts = counts_text(record.counts())
    if run.shard and run.status == "complete" and record.missing_shards:
        # A failure here fails the merged verdict too; skips may still be covered elsewhere.
        judged = ", FAIL on its own" if any(i.outcome in BAD for i in record.items) else ""
        return [(f"choirci: shard {run.shard} complete ({counts}){judged}; "
                "the verdict needs all shards: choirci evidence merge")]
    verdict = run_verdict(record)
    lines = [f"choirci: verdict {verdict.verdict.upper()} ({counts})"]
    lines += [f"choirci: incomplete: {reason}" for reason in record.incomplete_reasons]
    if verdict.verdict == "fail":
        # Failed items are listed by pytest already; say why else the run fails.
        per_item = {f"{i.nodeid}: {i.outcome}" for i in record.items if i.outcome in BAD}
        lines += [f"choirci: fail: {r}" for r in verdict.reasons if r not in per_item]
    return lines


def _expected_shards() -> tuple[str, ...]:
    raw = os.environ.get(EXPECTED_ENV, "")
    return tuple(sorted({part.strip() for part in raw.split(",") if part.strip()}))


def _markers_from_keywords(config: pytest.Config, report: Any) -> tuple[str, ...]:
    """Markers of an item we never saw collected (xdist): reports carry keyword names only,
    so keep those that are registered markers."""
    registered = {line.split(":", 1)[0].split("(", 1)[0].strip()
                  for line in config.getini("markers")}
    return tuple(sorted(k for k in getattr(report, "keywords", {}) if k in registered))
