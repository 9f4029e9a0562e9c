"""The ``rust`` area: one pytest item per libtest test, ``rust::<crate>::<binary>::<test>``.

Collection compiles and lists every wanted binary once (:mod:`choirci.rust.plan`); under
pytest-xdist the first worker does it and the others read the same plans from a file keyed
by the run's ``testrunuid``, so every worker collects the identical items. The first item of
a binary to run starts the binary once with all of its selected tests (those left after
``-k``/``-m``); every item then reports its own verdict from that shared run
(:mod:`choirci.rust.run`). Items carry ``xdist_group`` per binary: with ``--dist loadgroup``
(or ``loadscope``) a binary's tests stay on one worker and the binary runs once.

A target that cannot run (unknown crate or binary, compile error, zero tests, a requested
test name that does not exist) is a failing item, never a collection error and never absent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from choirci import settings as settings_mod
from choirci.errors import ChoirciError
from choirci.items import AreaCollector, ChoirciItem, ItemFailed, announcer
from choirci.nix.adapter import Nix
from choirci.rust.cargo import Cargo
from choirci.rust.plan import (
    BinaryPlan,
    Problem,
    cache_key,
    cached,
    discover,
    nearest,
    wanted_targets,
)
from choirci.rust.run import FAILED, SKIPPED, BinaryRun, Verdict, run_binary
from choirci.settings import Settings

AREA = "rust"
log = logging.getLogger("choirci")


def collect_area(session: pytest.Session, settings: Settings) -> pytest.Collector | None:
    rust = settings.config.rust
    if not rust.targets and not settings.rust_selection:
        return None
    source = settings.config.path.name if settings.config.path else "config"
    try:
        wanted = wanted_targets(rust, settings.rust_selection, source)
    except ChoirciError as exc:
        raise pytest.UsageError(str(exc)) from None
    cfg = settings.config
    cargo = Cargo(cargo=rust.cargo, develop=rust.develop, nix=Nix.from_settings(cfg.nix, cfg.root), cwd=cfg.root,
                  timeout=rust.build_timeout, progress=announcer(session.config))
    plans = _shared_discovery(session.config, lambda: discover(wanted, cargo),
                              key=(str(cfg.root), rust, wanted))
    return RustArea.from_parent(session, name=AREA, nodeid=AREA, plans=plans)


def _shared_discovery(
    config: pytest.Config, compute: Callable[[], list[BinaryPlan]], key: object
) -> list[BinaryPlan]:
    """Discover in this process, or, on an xdist worker, once per run for all workers."""
    workerinput = getattr(config, "workerinput", None)
    cache = getattr(config, "cache", None)
    if workerinput is None or cache is None or "testrunuid" not in workerinput:
        return compute()
    directory = Path(cache.mkdir("choirci-rust"))
    name = cache_key(workerinput["testrunuid"], key)
    return cached(directory / f"discovery-{name}.json", compute)


class RustArea(AreaCollector):
    def __init__(self, *, plans: list[BinaryPlan], **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.plans = plans

    def collect(self) -> Iterator[pytest.Item | pytest.Collector]:
        for plan in self.plans:
            if plan.problem is None:
                yield RustBinary.from_parent(self, name=plan.target, plan=plan)
                continue
            # No binary to ask: one failing item per explicitly requested test, else one
            # for the whole target, so a gate naming the test still sees it fail.
            for name in plan.requested or (None,):
                yield RustProblem.from_parent(
                    self, name=plan.target if name is None else f"{plan.target}::{name}",
                    plan=plan, problem=plan.problem, test=name,
                )


class RustBinary(pytest.Collector):
    def __init__(self, *, plan: BinaryPlan, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.plan = plan
        self._run: BinaryRun | None = None

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.config.rootpath, None, self.nodeid

    def collect(self) -> Iterator[pytest.Item]:
        for name in self.plan.selected():
            yield RustTest.from_parent(self, name=name, plan=self.plan)
        for name in self.plan.missing():
            message = (f"{self.plan.origin}: no test named {name!r} in {self.plan.target} "
                       f"(features: {self.plan.features_label}), so it would run 0 tests; "
                       f"{nearest(name, self.plan.listed)}")
            yield RustProblem.from_parent(self, name=name, plan=self.plan,
                                          problem=Problem(message), test=name)

    def outcome(self) -> BinaryRun:
        """Run the binary once with every selected test of it still in the session."""
        if self._run is None:
            names = [item.name for item in self.session.items
                     if isinstance(item, RustTest) and item.parent is self]
            rust = self.config.stash[settings_mod.SETTINGS].config.rust
            self._run = run_binary(self.plan, names, rust.timeout, rust.test_threads)
        return self._run


class _RustItem(ChoirciItem):
    def __init__(self, *, plan: BinaryPlan, test: str | None = None, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.plan = plan
        self.add_marker(pytest.mark.rust)
        self.add_marker(pytest.mark.xdist_group(f"choirci-rust-{plan.target}"))
        # The evidence writer prefers these over what it derives from the node id, which
        # would split a test name such as `inner::nested` at its `::`.
        self.record("classname", f"{plan.crate}.{plan.segment}")
        self.record("name", test or self.name)
        self.record("rust.features", plan.features_label)

    def _provenance(self) -> None:
        if self.plan.executable:
            self.record("rust.binary", self.plan.executable)
        if self.plan.build_command:
            self.record("rust.build_command", self.plan.build_command)


class RustTest(_RustItem):
    def runtest(self) -> None:
        run = self.parent.outcome() if isinstance(self.parent, RustBinary) else None
        assert run is not None
        verdict = run.verdicts.get(self.name) or Verdict(FAILED, f"{self.name}: not run")
        self._provenance()
        self.record("rust.command", run.command)
        self.record("rust.exit", run.exit)
        if verdict.output:
            self.add_report_section("call", "rust test output", verdict.output)
        if verdict.status == SKIPPED:
            pytest.skip(verdict.message)
        if verdict.status == FAILED:
            raise ItemFailed(verdict.message, verdict.details)


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
