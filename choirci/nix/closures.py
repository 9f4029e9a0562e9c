"""The ``closures`` area: one ``closures::<name>`` item per configured closure (marker ``nix``).

All selected closures (after ``--closure``, ``-k`` and ``-m``) build in ONE batched
``nix build`` (see :mod:`choirci.nix.build`), run from the area collector's ``setup``
under the host build lock; each item then passes or fails on its own result and records its
provenance (installable, drv/out paths, narHash, sizes, Nix version, wall time, and how the
output was obtained: ``present``, ``substituted`` or ``built``).

Under pytest-xdist the items carry ``xdist_group("choirci-closures")``: run with
``--dist loadgroup`` so they all land on one worker and the batch builds once. Where the
group is not honoured (pytest 9.2, pytest-dev/pytest-xdist#1386), the first worker builds
under the lock and the others reuse its verdicts (see :func:`shared_batch_path`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Self

import pytest

from choirci import settings as settings_mod
from choirci.config import Closure, Config
from choirci.errors import ChoirciError
from choirci.items import AreaCollector, ChoirciItem, ItemFailed, announcer, harness_error
from choirci.nix.adapter import Nix
from choirci.nix.build import (
    ERROR,
    FAILED,
    BatchRun,
    ClosureResult,
    batch_from_json,
    batch_to_json,
    run_batch,
)
from choirci.nix.lock import BuildLock
from choirci.settings import Settings

AREA = "closures"
XDIST_GROUP = "choirci-closures"
PROGRESS_INTERVAL = 5.0  # seconds between echoed build-log lines, so a long build shows life
HEARTBEAT_INTERVAL = 30.0  # a silent build still says it is alive this often
STALE_BATCH_SECONDS = 2 * 86400.0  # far longer than one grind run, workers included

log = logging.getLogger("choirci")


def collect_area(session: pytest.Session, settings: Settings) -> pytest.Collector | None:
    if not settings.closures:
        return None
    return ClosuresArea.from_parent(session, name=AREA, nodeid=AREA)


# --------------------------------------------------------------------------- shared helpers


def build_lock(config: pytest.Config, cfg: Config) -> BuildLock:
    return BuildLock.for_config(cfg, notify=announcer(config))


def require_nix(nix: Nix, cfg: Config) -> None:
    """nix missing: a setup error (default) or, with ``nix.missing: skip``, a skip."""
    if nix.available():
        return
    if cfg.nix.missing == "skip":
        pytest.skip(f"'{nix.binary}' not found on PATH (nix.missing: skip in choirci.yaml)")
    harness_error(f"'{nix.binary}' not found on PATH; install Nix, set nix.binary in "
                  "choirci.yaml, or set nix.missing: skip to skip Nix items")


class Progress:
    """Echo what a long nix build does: each step, a build-log line every few seconds, and a
    heartbeat when the build is silent (one rustc can compile for minutes without a line).

    Use as a context manager so the heartbeat thread stops with the command.
    """

    STEPS = ("building '", "copying path", "error:", "these ", "this ")

    def __init__(self, say: Callable[[str], None], verbose: int, what: str = "nix build",
                 heartbeat: float = HEARTBEAT_INTERVAL, label: str = "nix") -> None:
        self.say = say
        self.label = label
        self.verbose = verbose
        self.what = what
        self.heartbeat = heartbeat
        self.started = self.last_said = time.monotonic()
        self.last = 0.0
        self.last_line = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Self:
        self.started = self.last_said = time.monotonic()
        self._thread = threading.Thread(target=self._beat, name="choirci-heartbeat", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __call__(self, line: str) -> None:
        now = time.monotonic()
        if not line.strip():
            return
        self.last_line = line.strip()
        if "(ignored)" in line and self.verbose < 2:
            # e.g. `nix develop` failing to look up nixpkgs#bashInteractive offline, then
            # falling back to the bash on PATH: not something an operator must act on.
            return
        if self.verbose >= 2 or line.startswith(self.STEPS) or now - self.last >= PROGRESS_INTERVAL:
            self.last = self.last_said = now
            self.say(f"{self.label}: {line[:200]}")

    def _beat(self) -> None:
        while not self._stop.wait(min(1.0, self.heartbeat)):
            now = time.monotonic()
            if now - self.last_said < self.heartbeat:
                continue
            self.last_said = now
            last = f"last output: {self.last_line[:120]}" if self.last_line else "no output yet"
            self.say(f"choirci: {self.what} still running after {_elapsed(now - self.started)} "
                     f"({last})")


def _elapsed(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


# --------------------------------------------------------------------------- collector and item


class ClosuresArea(AreaCollector):
    run: BatchRun | None = None
    failure: BaseException | None = None

    def collect(self) -> list[pytest.Item]:
        settings = settings_mod.get(self.config)
        assert settings is not None
        return [ClosureItem.from_parent(self, name=c.name, closure=c) for c in settings.closures]

    def setup(self) -> None:
        # Re-setup (items reordered by another plugin) must not rebuild: keep the first outcome.
        if self.failure is not None:
            raise self.failure
        if self.run is None:
            try:
                self.run = self._build()
            except BaseException as exc:
                self.failure = exc
                raise

    def _build(self) -> BatchRun:
        settings = settings_mod.get(self.config)
        assert settings is not None
        cfg = settings.config
        nix = Nix.from_settings(cfg.nix, cfg.root)
        require_nix(nix, cfg)
        selected = [item.closure for item in self.session.items
                    if isinstance(item, ClosureItem) and item.parent is self]
        say = announcer(self.config)
        shared = shared_batch_path(self.config)
        try:
            with build_lock(self.config, cfg):
                if shared is not None and shared.exists():
                    say("choirci: closures already built by another xdist worker of this run")
                    return batch_from_json(shared.read_text())
                say(f"choirci: building {len(selected)} closure(s) in one nix build: "
                    + ", ".join(c.name for c in selected))
                with Progress(say, self.config.get_verbosity()) as progress:
                    run = run_batch(nix, selected, progress)
                if shared is not None:
                    prune_stale_batches(shared.parent)
                    write_atomic(shared, batch_to_json(run))
                return run
        except ChoirciError as exc:
            harness_error(str(exc))
            raise  # unreachable: pytest.fail raised


def shared_batch_path(config: pytest.Config) -> Path | None:
    """Where xdist workers of one run share the batch (None outside xdist).

    ``xdist_group`` should keep the closure items on one worker, but ``--dist loadgroup``
    stopped grouping on pytest 9.2 (pytest-dev/pytest-xdist#1386), and ``-n`` with
    ``--dist load`` never did: whichever worker comes first builds, under the lock, and the
    others read its verdicts instead of re-building and calling everything ``present``.
    """
    workerinput = getattr(config, "workerinput", None)
    if not workerinput or "testrunuid" not in workerinput:
        return None
    return Path(tempfile.gettempdir()) / f"choirci-closures-{workerinput['testrunuid']}.json"


def prune_stale_batches(directory: Path, max_age: float = STALE_BATCH_SECONDS) -> None:
    """Remove shared batches of long-finished runs: no worker of a live run reads them, and
    only the controller knows when a run ends (it never imports this area)."""
    cutoff = time.time() - max_age
    for old in directory.glob("choirci-closures-*.json"):
        with contextlib.suppress(OSError):
            if old.stat().st_mtime < cutoff:
                old.unlink()


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class ClosureItem(ChoirciItem):
    def __init__(self, *, closure: Closure, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.closure = closure
        self.add_marker(pytest.mark.nix)
        self.add_marker(pytest.mark.xdist_group(XDIST_GROUP))
        self.run: BatchRun | None = None
        self.result: ClosureResult | None = None

    def setup(self) -> None:
        area = self.parent
        assert isinstance(area, ClosuresArea) and area.run is not None
        run = area.run
        result = run.results.get(self.closure.name)
        if result is None:  # a shared batch from a worker that selected differently
            harness_error(f"closure {self.closure.name} is missing from this run's batch build; "
                          "xdist workers collected different closures (re-run without -n)")
            return
        self.run, self.result = run, result
        self._record(run, result)
        if result.status == ERROR:
            harness_error(result.message)

    def runtest(self) -> None:
        result = self.result
        assert result is not None  # set by setup(), which pytest runs first
        if result.status == FAILED:
            raise ItemFailed(result.message, result.details)

    def _record(self, run: BatchRun, result: ClosureResult) -> None:
        self.record("installable", self.closure.installable)
        if result.drv_path:
            self.record("drv_path", result.drv_path)
        for output, path in result.outputs.items():
            suffix = "" if output == "out" else f".{output}"
            self.record(f"out_path{suffix}", path)
            if output == "out":  # a NixOS system toplevel, by its shape (phase-3's gate reads it)
                self.record("nixos_system", "true" if all(
                    (Path(path) / name).exists() for name in ("nixos-version", "init", "kernel"))
                    else "false")
            info = result.infos.get(path)
            if info is not None:
                self.record(f"nar_hash{suffix}", info.nar_hash)
                self.record(f"nar_size{suffix}", info.nar_size)
                if info.closure_size is not None:
                    self.record(f"closure_size{suffix}", info.closure_size)
        self.record("nix_version", run.nix_version)
        self.record("wall_time", f"{run.wall_time:.3f}")
        if result.build_time is not None:
            self.record("build_time", f"{result.build_time:.0f}")
        if result.seconds is not None:
            # The item's own time: one closure of the batch, not the batch (choirci.nix.timing).
            self.record("duration", f"{result.seconds:.3f}")
        if result.planned:
            self.record("cache_planned", result.planned)
        if result.cache:
            self.record("cache", result.cache)
        if result.cache_source:
            self.record("cache_source", result.cache_source)
        if result.built_on:
            self.record("built_on", result.built_on)
        self.record("command", run.command or run.dry_run_command)

    def reportinfo(self) -> tuple[object, int | None, str]:  # type: ignore[override]
        return self.config.rootpath, None, f"nix build {self.closure.installable}"
