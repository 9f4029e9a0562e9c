"""What the processes of one Rust run share: the session's one :class:`Cargo` (the check
before collection and the collection ask ``cargo metadata`` once), the check itself, and,
under pytest-xdist, one discovery per run and a private directory where the workers meet.

The controller of an xdist run (:class:`Rendezvous`) creates that directory, hands it to
each worker in ``workerinput`` and removes it when the run ends; it starts the discovery on a
thread at once, while the workers are still starting, so that they read its plans instead of
each waiting for a compile and a listing. The workers' claims (:mod:`choirci.rust.claims`)
live in the same directory.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

import pytest

from choirci.errors import ConfigError
from choirci.items import announcer
from choirci.nix.adapter import Nix
from choirci.rust.cargo import Cargo
from choirci.rust.discover import discover, expand_workspace, location_problems
from choirci.rust.plan import BinaryPlan, cache_key, cached, wanted_targets
from choirci.settings import Settings

AREA = "rust"
log = logging.getLogger("choirci")


def wanted(settings: Settings) -> bool:
    """The run asks for Rust tests (configured, or selected on the command line)."""
    rust = settings.config.rust
    return bool(rust.targets or rust.workspace or settings.rust_selection)


def _collected(settings: Settings) -> bool:
    """...and the rust area is collected (not narrowed away by --area or -m)."""
    return wanted(settings) and (settings.areas is None or AREA in settings.areas)


def plans(settings: Settings, cargo: Cargo) -> list[BinaryPlan]:
    """Discovery: the configured (or selected) targets, compiled and listed."""
    source = settings.config.path.name if settings.config.path else "config"
    rust = expand_workspace(settings.config.rust, cargo)
    targets = wanted_targets(rust, settings.rust_selection, source)
    return discover(targets, cargo, settings.rust_ignored or rust.ignored)


def discovery_file(directory: Path, settings: Settings) -> Path:
    key = cache_key(str(settings.config.root), settings.config.rust, settings.rust_selection,
                    settings.rust_ignored)
    return directory / f"discovery-{key}.json"


CARGO = pytest.StashKey[Cargo]()


def session_cargo(settings: Settings, config: pytest.Config) -> Cargo:
    """The session's one Cargo (so the check before collection and the collection share its
    ``cargo metadata`` answers)."""
    if CARGO not in config.stash:
        rust, cfg = settings.config.rust, settings.config
        config.stash[CARGO] = Cargo(cargo=rust.cargo, develop=rust.develop,
                                    nix=Nix.from_settings(cfg.nix, cfg.root), cwd=cfg.root,
                                    timeout=rust.build_timeout,
                                    progress=announcer(config, cfg.redact))
    return config.stash[CARGO]


def preflight(settings: Settings, config: pytest.Config) -> None:
    """Refuse, before anything is built, a Rust selection or config target that names a crate
    or target the workspace does not have (``cargo metadata`` only, no compile). An exact
    *test* name that does not exist stays a failing item: only listing the binary knows."""
    if not _collected(settings):
        return
    source = settings.config.path.name if settings.config.path else "config"
    cargo = session_cargo(settings, config)
    targets = wanted_targets(expand_workspace(settings.config.rust, cargo),
                             settings.rust_selection, source)
    problems = location_problems(targets, cargo)
    if problems:
        raise ConfigError("\n".join(problems))


def shared_discovery(config: pytest.Config, settings: Settings, cargo: Cargo
                      ) -> list[BinaryPlan]:
    """Discover in this process, or, on an xdist worker, once per run for all workers: the
    controller started it while the workers were starting (:class:`Rendezvous`), and the
    first to finish it writes the plans every other one reads."""
    directory = rendezvous(config)
    if directory is None:
        return plans(settings, cargo)
    return cached(discovery_file(directory, settings), lambda: plans(settings, cargo))


RUN_DIR_KEY = "choirci_rust_dir"


def rendezvous(config: pytest.Config) -> Path | None:
    """Where the xdist workers of this run meet (discovery, claims); None: not a worker."""
    workerinput = getattr(config, "workerinput", None)
    if workerinput is None:
        return None
    if RUN_DIR_KEY in workerinput:
        return Path(workerinput[RUN_DIR_KEY])
    if "testrunuid" not in workerinput:
        return None
    # A controller without choirci's plugin gave no directory: one named by the run.
    return Path(tempfile.gettempdir()) / f"choirci-rust-{cache_key(workerinput['testrunuid'])}"


def distributing(config: pytest.Config) -> bool:
    """This process is the controller of an xdist run (``-n N``, ``--dist``)."""
    return (not hasattr(config, "workerinput") and config.getoption("dist", "no") != "no"
            and bool(config.getoption("tx", None)))


class Rendezvous:
    """Controller of an xdist run: a private directory the workers meet in (given to each in
    ``workerinput``, removed when the run ends), and discovery started at once, on a thread,
    while the workers are still starting: they read its plans instead of each waiting for
    a compile and a listing of their own."""

    NAME = "choirci-rust-rendezvous"

    def __init__(self) -> None:
        self.path = Path(tempfile.mkdtemp(prefix="choirci-rust-"))
        self.thread: threading.Thread | None = None

    def start(self, settings: Settings, cargo: Cargo) -> None:
        target = discovery_file(self.path, settings)

        def discover_now() -> None:
            try:
                cached(target, lambda: plans(settings, cargo))
            except Exception as exc:  # noqa: BLE001 - a worker discovers again and reports it
                log.debug("choirci: discovery on the controller failed: %s", exc)

        self.thread = threading.Thread(target=discover_now, name="choirci-discovery",
                                       daemon=True)
        self.thread.start()

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput[RUN_DIR_KEY] = str(self.path)

    def pytest_unconfigure(self) -> None:
        if self.thread is not None:
            # Done long before the workers collect, unless the run was cut short; a compile
            # still running then dies with this process (choirci.proc's guards).
            self.thread.join(timeout=JOIN_TIMEOUT)
        shutil.rmtree(self.path, ignore_errors=True)


JOIN_TIMEOUT = 5.0


def prepare_workers(settings: Settings, config: pytest.Config) -> None:
    """Controller of an xdist run: the workers' meeting place, and the Rust discovery under
    way before they start (when the run has Rust tests)."""
    if not distributing(config) or config.pluginmanager.has_plugin(Rendezvous.NAME):
        return
    meeting = Rendezvous()
    config.pluginmanager.register(meeting, Rendezvous.NAME)
    if _collected(settings):
        meeting.start(settings, session_cargo(settings, config))
