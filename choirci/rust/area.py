"""The ``rust`` area: one pytest item per libtest test, ``rust::<crate>::<binary>::<test>``.

Collection compiles and lists every wanted binary once (:mod:`choirci.rust.discover`);
under pytest-xdist the controller does it while the workers start, and every worker reads
the same plans (:mod:`choirci.rust.sharing`), so all collect the identical items.

Every test executes exactly once per session (:mod:`choirci.rust.run`):

* ``rust.run: per-binary`` (default): the first item of a binary to run starts the binary
  once with the tests of that binary this process still has to run: all the remaining ones
  of the session, or, on an xdist worker, its own queue plus its fair share of the tests no
  worker claimed yet (all of them for an ``exclusive`` target). Workers claim what they run
  (:mod:`choirci.rust.claims`), so an item another worker claimed, or that ``--dist
  worksteal`` moves after its batch ran, is read, not run again.
* ``rust.run: per-test``: one process per test (exact time; a crash or hang is the test's);
  an ``exclusive`` target's test processes run one at a time across workers.
* doc tests: one ``cargo test --doc`` per crate (rustdoc cannot be given a doc test's
  name exactly); under xdist the first worker runs it and the others read its result.
* ``harness = false`` targets: one item each, the program run as ``cargo test`` runs it.

Each item's duration is its own test's (a hookwrapper replaces the call duration).

A target that cannot run (unknown crate or binary, compile error, zero tests, a requested
test name that does not exist) is a failing item, never a collection error and never absent.
"""

from __future__ import annotations

import logging
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from choirci.errors import ChoirciError
from choirci.items import AreaCollector, ChoirciItem, ItemFailed
from choirci.rust import cargo as cargo_mod
from choirci.rust.cargo import Cargo
from choirci.rust.claims import exclusively, run_claimed
from choirci.rust.plan import BinaryPlan, Problem, cache_key, nearest
from choirci.rust.run import (
    FAILED,
    SKIPPED,
    BinaryRun,
    Verdict,
    run_binary,
    run_from_json,
    run_program,
    run_to_json,
)
from choirci.rust.sharing import AREA, rendezvous, session_cargo, shared_discovery, wanted
from choirci.settings import Settings
from choirci.settings import get as get_settings

log = logging.getLogger("choirci")


def collect_area(session: pytest.Session, settings: Settings) -> pytest.Collector | None:
    if not wanted(settings):
        return None
    rust = settings.config.rust
    cargo = session_cargo(settings, session.config)
    ignored = settings.rust_ignored or rust.ignored
    try:
        plans = shared_discovery(session.config, settings, cargo)
    except ChoirciError as exc:
        raise pytest.UsageError(str(exc)) from None
    if not session.config.pluginmanager.has_plugin(DURATIONS):
        session.config.pluginmanager.register(_Durations(), DURATIONS)
    return RustArea.from_parent(session, name=AREA, nodeid=AREA, plans=plans,
                                runner=_Runner(cargo, rust.timeout, rust.test_threads, ignored,
                                               rust.run))


DURATIONS = "choirci-rust-durations"


class _Durations:
    """Each Rust item's call duration is its own test's, not the batch's it started."""

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]
                                  ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        measured = getattr(item, "measured", None)
        if report.when == "call" and measured is not None:
            report.duration = measured
        return report


@dataclass(frozen=True)
class _Runner:
    cargo: Cargo
    timeout: float
    threads: int | None
    ignored: str
    mode: str  # per-binary | per-test


class RustArea(AreaCollector):
    def __init__(self, *, plans: list[BinaryPlan], runner: _Runner, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.plans = plans
        self.runner = runner

    def collect(self) -> Iterator[pytest.Item | pytest.Collector]:
        for plan in self.plans:
            if plan.problem is None and not plan.libtest:
                yield RustProgram.from_parent(self, name=plan.target, plan=plan,
                                              runner=self.runner, nodeid=_id(self, plan.target))
                continue
            if plan.problem is None:
                yield RustBinary.from_parent(self, name=plan.target, plan=plan,
                                             runner=self.runner, nodeid=_id(self, plan.target))
                continue
            # No binary to ask: one failing item per explicitly requested test, else one
            # for the whole target, so a gate naming the test still sees it fail.
            for name in plan.requested or (None,):
                label = plan.target if name is None else f"{plan.target}::{name}"
                yield RustProblem.from_parent(self, name=label, plan=plan, problem=plan.problem,
                                              test=name, nodeid=_id(self, label))


def _id(parent: pytest.Collector, name: str) -> str:
    """The node id, given as a string so that pytest's structured id is the one it parses
    back from the string (``--lf`` matches cached ids that way): names hold ``::``."""
    return f"{parent.nodeid}::{name}"


class RustBinary(pytest.Collector):
    def __init__(self, *, plan: BinaryPlan, runner: _Runner, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.plan = plan
        self.runner = runner
        self._runs: dict[str, BinaryRun] = {}  # test -> the run that executed it

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.config.rootpath, None, self.nodeid

    def collect(self) -> Iterator[pytest.Item]:
        for name in self.plan.selected(only_ignored=self.runner.ignored == "only"):
            yield RustTest.from_parent(self, name=name, plan=self.plan, nodeid=_id(self, name))
        if self.runner.ignored == "only":
            for name in self.plan.not_ignored():
                message = (f"{self.plan.origin}: {name} in {self.plan.target} is not #[ignore]d "
                           "and rust.ignored: only (--rust-ignored=only) runs only #[ignore]d "
                           "tests, so it would run 0 tests")
                yield RustProblem.from_parent(self, name=name, plan=self.plan,
                                              problem=Problem(message), test=name,
                                              nodeid=_id(self, name))
        for name in self.plan.missing():
            message = (f"{self.plan.origin}: no test named {name!r} in {self.plan.target} "
                       f"(features: {self.plan.features_label}), so it would run 0 tests; "
                       f"{nearest(name, self.plan.listed)}")
            yield RustProblem.from_parent(self, name=name, plan=self.plan,
                                          problem=Problem(message), test=name,
                                          nodeid=_id(self, name))

    def outcome(self, item: RustTest) -> BinaryRun:
        """The run that executed ``item``'s test, starting it (with its batch) if needed."""
        if item.name not in self._runs:
            self._execute(self._batch(item))
        return self._runs[item.name]

    def _execute(self, batch: list[str]) -> None:
        r = self.runner

        def compute(names: list[str]) -> BinaryRun:
            return run_binary(self.plan, names, r.timeout, r.threads, r.ignored, r.cargo)

        directory = rendezvous(self.config)
        key = cache_key(self.plan.target)
        alone = r.mode == "per-test" and self.plan.kind != cargo_mod.DOC  # no worker batches
        if directory is None or alone:
            if directory is not None and self.plan.exclusive:
                # per-test, exclusive: one test process of the binary at a time, across workers.
                with exclusively(directory / f"{key}.exclusive"):
                    run = compute(batch)
            else:
                run = compute(batch)
            self._runs.update(dict.fromkeys(batch, run))
            return
        # xdist: tests another worker already ran (a doc test batch, a stolen item) are
        # read from its run, never run twice.
        workerinput = getattr(self.config, "workerinput", {})
        # per-binary: each worker runs its share of the binary at once (see run_claimed), or,
        # exclusive, the first one all of it; doc tests: the whole crate, once.
        pool = [] if self.plan.kind == cargo_mod.DOC else [i.name for i in self._mine()]
        workers = 1 if self.plan.exclusive else int(workerinput.get("workercount", 1))
        own, others = run_claimed(directory, key, batch, compute, run_to_json, run_from_json,
                                  pool=pool, workers=workers,
                                  worker=str(workerinput.get("workerid", "")))
        if own is not None:
            self._runs.update(dict.fromkeys(own.verdicts, own))
        for name, theirs in others.items():
            self._runs[name] = theirs if theirs is not None else _lost(name)

    def _mine(self) -> list[RustTest]:
        return [i for i in self.session.items if isinstance(i, RustTest) and i.parent is self]

    def _batch(self, item: RustTest) -> list[str]:
        """The tests to run with ``item``'s, each of them exactly once per session."""
        if self.plan.kind == cargo_mod.DOC:
            return [i.name for i in self._mine()]  # identical on every worker
        if self.runner.mode == "per-test":
            return [item.name]
        queued = _queued(self.session)
        if queued is None:
            candidates = self._mine()
        elif isinstance(queued, bool):
            return [item.name]
        else:
            candidates = [i for i in queued if isinstance(i, RustTest) and i.parent is self]
        names = [item.name] + [i.name for i in candidates
                               if i.name != item.name and i.name not in self._runs]
        return list(dict.fromkeys(names))


def _lost(name: str) -> BinaryRun:
    message = (f"{name}: the xdist worker that ran this test died before reporting it "
               "(see that worker's crash above); counted as a failure, never a pass")
    return BinaryRun((), "unknown", 0.0, {name: Verdict(FAILED, message)})


def _queued(session: pytest.Session) -> list[pytest.Item] | None | bool:
    """Items this xdist worker still has to run (None: not a worker, so the session's items;
    False: a worker whose queue cannot be read, so every item runs on its own)."""
    if not hasattr(session.config, "workerinput"):
        return None
    for plugin in session.config.pluginmanager.get_plugins():
        torun = getattr(plugin, "torun", None)
        if torun is None or not hasattr(torun, "lock") or not hasattr(plugin, "nextitem_index"):
            continue
        try:
            with torun.lock() as queue:
                indexes = [i for i in queue if isinstance(i, int)]
        except Exception:  # noqa: BLE001 - xdist internals changed: run items one by one
            return False
        following = plugin.nextitem_index
        if isinstance(following, int):
            indexes.insert(0, following)
        return [session.items[i] for i in indexes if 0 <= i < len(session.items)]
    return False


class _RustItem(ChoirciItem):
    measured: float | None = None  # this item's own duration (see _Durations)

    def __init__(self, *, plan: BinaryPlan, test: str | None = None, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.plan = plan
        self.add_marker(pytest.mark.rust)
        # The evidence writer prefers these over what it derives from the node id, which
        # would split a test name such as `inner::nested` at its `::`.
        self.record("classname", f"{plan.crate}.{plan.segment}")
        self.record("name", test or self.name)
        self.record("rust.features", plan.features_label)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        # Not the bare node id: where the node id ends with the domain, pytest's verbose
        # lines turn the domain's dots into `::` (`src/lib::rs - add (line 5)`).
        return self.config.rootpath, None, f"{self.nodeid} "

    def _judged(self, run: BinaryRun, verdict: Verdict, duration: float) -> None:
        """Record the run that judged this item, then pass, skip or fail as it says."""
        self.measured = duration
        self._provenance()
        self.record("rust.command", run.command)
        self.record("rust.exit", run.exit)
        self.record("rust.env", self.plan.env_source)
        if verdict.output:
            self.add_report_section("call", "rust test output", verdict.output)
        if verdict.status == SKIPPED:
            pytest.skip(verdict.message)
        if verdict.status == FAILED:
            raise ItemFailed(verdict.message, verdict.details)

    def _provenance(self) -> None:
        # Which configured line asked for it: `rust.workspace (lib, bin)` for expanded ones.
        self.record("rust.origin", self.plan.origin)
        if self.plan.executable:
            self.record("rust.binary", self.plan.executable)
        if self.plan.manifest:
            # rustc names sources relative to the workspace it compiled in: for a crate outside
            # the root workspace that is its manifest's dir. JUnit file/line and the report's
            # "at ..." prefix it, so a location is always relative to the repository.
            source_root = Path(self.plan.manifest).parent
            settings = get_settings(self.config)
            if settings is not None and source_root.is_absolute():
                try:
                    source_root = source_root.resolve().relative_to(
                        settings.config.root.resolve())
                except ValueError:
                    pass
            self.record("rust.source_root", source_root.as_posix())
        if self.plan.build_command:
            self.record("rust.build_command", self.plan.build_command)


class RustTest(_RustItem):
    def runtest(self) -> None:
        assert isinstance(self.parent, RustBinary)
        run = self.parent.outcome(self)
        verdict = run.verdicts.get(self.name) or Verdict(FAILED, f"{self.name}: not run")
        self._judged(run, verdict, run.durations.get(self.name, 0.0))


class RustProgram(_RustItem):
    """A ``harness = false`` target (a criterion bench, a custom main): one item, judged by
    its exit status as ``cargo test`` judges it; never listed (that would run it)."""

    def __init__(self, *, runner: _Runner, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.runner = runner

    def runtest(self) -> None:
        run = run_program(self.plan, self.runner.timeout, self.runner.ignored)
        self._judged(run, run.verdicts[self.plan.target], run.duration)


class RustProblem(_RustItem):
    """A target or requested test that cannot run: fails (repo) or errors (harness)."""

    def __init__(self, *, problem: Problem, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.problem = problem

    def setup(self) -> None:
        if self.problem.harness:
            # Failing in setup reports an ERROR (the harness broke), not a failure; no
            # traceback, because the message is all there is to say.
            pytest.fail(f"choirci: {self.problem.message}", pytrace=False)

    def runtest(self) -> None:
        self._provenance()
        raise ItemFailed(self.problem.message, self.problem.details)
