"""pytest wiring for choirci: options, markers, settings, collection of the areas.

Thin by design: options are declared and validated here, everything stateful lives in the
objects registered from ``pytest_configure`` (only when ``--grind`` is given, so installing
choirci never changes an ordinary pytest run).
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from choirci import areas
from choirci.errors import ChoirciError

if TYPE_CHECKING:
    from choirci.session.evidence_dir import DirLock
    from choirci.settings import Settings

# Everything else is imported where it is used: a plain `pytest` run (no --grind) in any
# project where choirci is installed loads this module and should pay nothing for it.

MARKERS = {
    "nix": "a Nix closure build (choirci closures area)",
    "rust": "a targeted Rust test run from its libtest binary (choirci rust area)",
    "host": "a testinfra check of a grind/prod host (choirci hosts area)",
    "loop": "a CI-parity fast-loop step such as cargo fmt --check (choirci loops area)",
}

# Build output and tool caches that never hold Python tests: skip them when walking a workspace.
IGNORED_DIRS = ("target", "result", ".direnv", "node_modules", ".venv")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup(
        "choirci", "choirci: build Nix closures, run targeted Rust tests, check hosts, gate"
    )
    group.addoption(
        "--grind",
        action="store_true",
        default=False,
        help="run the choirci job for the workspace: one item per configured closure "
        "(batched nix build), CI-parity loop step and targeted Rust test, plus host "
        "checks; writes JUnit, JSON and a Markdown gate report to the evidence dir.",
    )
    group.addoption(
        "--closure",
        action="append",
        default=[],
        metavar="NAME",
        help="with --grind: build only this closure (repeatable; default: all in the config).",
    )
    group.addoption(
        "--rust-test",
        action="append",
        default=[],
        metavar="CRATE::BIN[::TEST]",
        help="with --grind: run only this Rust test binary or exact test, e.g. "
        "sandbox::desktop_api_test::test_health_check (repeatable).",
    )
    group.addoption(
        "--rust-ignored",
        default=None,
        choices=["skip", "include", "only"],
        help="with --grind: #[ignore]d Rust tests: skip them (default), include them "
        "(libtest --include-ignored) or run only them (--ignored); overrides rust.ignored.",
    )
    group.addoption(
        "--area",
        action="append",
        default=[],
        metavar="AREA",
        choices=list(areas.NAMES),
        help="with --grind: collect only this area (repeatable; default: all, or the areas that "
        "--closure/--rust-test imply). Other areas are not even collected, so a shard of "
        "closures never compiles Rust tests; -m narrows the areas the same way.",
    )
    group.addoption(
        "--python-tests",
        action="store_true",
        default=False,
        help="with --grind: also collect the repository's own Python tests (by default only "
        "choirci's areas count in the verdict; included tests are named in the report).",
    )
    group.addoption(
        "--choirci-config",
        metavar="PATH",
        default=None,
        help="config file (default: $CHOIRCI_CONFIG, else the nearest choirci.yaml or "
        "pyproject.toml with [tool.choirci] at or above the current directory).",
    )
    group.addoption(
        "--evidence-dir",
        metavar="DIR",
        default=None,
        help="where evidence is written (default: the config's 'evidence', else ./evidence).",
    )


def pytest_configure(config: pytest.Config) -> None:
    for name, text in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {text}")
    opt = config.option
    if not opt.grind:
        flags = (("--closure", opt.closure), ("--rust-test", opt.rust_test),
                 ("--area", opt.area), ("--evidence-dir", opt.evidence_dir),
                 ("--python-tests", opt.python_tests), ("--rust-ignored", opt.rust_ignored))
        used = [flag for flag, value in flags if value]
        if used:
            raise pytest.UsageError(
                f"{used[0]} selects within a choirci run; add --grind (e.g. pytest --grind {used[0]} ...)"
            )
        return
    if opt.help or opt.version:
        # `pytest --grind --help` must teach even outside a workspace.
        return
    _check_rootdir(config)
    try:
        settings = _resolve_settings(config)
        if not settings.is_worker:
            # Known before anything is built: a crate or target that does not exist.
            from choirci.rust.sharing import preflight

            preflight(settings, config)
        lock = _claim_evidence_dir(config, settings)
    except ChoirciError as exc:
        raise pytest.UsageError(str(exc)) from None
    if not settings.is_worker:
        from choirci.rust.sharing import prepare_workers

        prepare_workers(settings, config)  # xdist: Rust discovery starts with the workers
    from choirci.settings import SETTINGS

    config.stash[SETTINGS] = settings
    config.pluginmanager.register(AreaCollection(settings), "choirci-areas")
    from choirci.session.recorder import Recorder

    config.pluginmanager.register(Recorder(config, settings, lock), "choirci-recorder")


def _claim_evidence_dir(config: pytest.Config, settings: Settings) -> DirLock | None:
    """Controller only: the evidence dir is writable and no other run writes it."""
    from choirci.session import evidence_dir

    if settings.is_worker or config.option.collectonly:
        return None
    source = evidence_dir.where(settings.config.evidence_where,
                                from_cli=bool(config.option.evidence_dir))
    evidence_dir.check_writable(settings.evidence_dir, source)
    lock = evidence_dir.DirLock(settings.evidence_dir)
    lock.acquire()
    return lock


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """Plain ``pytest`` in a choirci workspace collects nothing: say what to type instead."""
    if config.option.grind or exitstatus != pytest.ExitCode.NO_TESTS_COLLECTED:
        return
    from choirci import config as config_mod

    found = config_mod.find_config(Path(config.invocation_params.dir))
    if found is not None:
        terminalreporter.write_line(f"choirci: this is a choirci workspace ({found}): run "
                                    "`pytest --grind` (see `pytest --help`, group choirci)")


def _check_rootdir(config: pytest.Config) -> None:
    """pytest picks its rootdir before plugin options are known, so in ``--evidence-dir DIR``
    an existing DIR outside the workspace is taken for a test path and moves the rootdir (the
    workspace's pytest.ini is then ignored and node ids read ``../closures``). Say how to
    avoid it instead of running with the wrong rootdir."""
    args = list(config.invocation_params.args)
    invocation = Path(config.invocation_params.dir).resolve()
    for flag in ("--evidence-dir", "--choirci-config"):
        if flag not in args[:-1]:
            continue
        value = args[args.index(flag) + 1]
        path = (invocation / value).resolve()
        if path.exists() and invocation not in (path, *path.parents):
            raise pytest.UsageError(
                f"pytest takes {value!r} (the value of {flag}) for a test path when it picks "
                f"its rootdir ({config.rootpath}); write {flag}={value} (with '=')"
            )


def _resolve_settings(config: pytest.Config) -> Settings:
    from choirci import config as config_mod
    from choirci import selection
    from choirci.rust.plan import parse_selection
    from choirci.settings import Settings

    opt = config.option
    invocation = Path(config.invocation_params.dir)
    for value in opt.rust_test:
        # Syntax first: a typo must fail before anything compiles or evidence is touched.
        parse_selection(value)
    cfg = config_mod.resolve(opt.choirci_config, invocation)
    closures = tuple(cfg.closure(name) for name in dict.fromkeys(opt.closure)) or cfg.closures
    evidence = Path(opt.evidence_dir) if opt.evidence_dir else cfg.evidence_dir
    if not evidence.is_absolute():
        evidence = invocation / evidence
    choice = selection.choose(opt.area, opt.closure, opt.rust_test, opt.markexpr or "",
                              selection.registered_markers(config.getini("markers")))
    return Settings(
        config=cfg,
        closures=closures,
        rust_selection=tuple(dict.fromkeys(opt.rust_test)),
        areas=choice.areas,
        areas_why=choice.why,
        evidence_dir=evidence,
        invocation_dir=invocation,
        is_worker=hasattr(config, "workerinput"),
        python_tests=opt.python_tests,
        rust_ignored=opt.rust_ignored,
    )


class AreaCollection:
    """Adds the areas (closures, loops, rust, hosts, release) to the session's items."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.python_skipped: list[Path] = []
        self.initial: set[Path] | None = None

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(
        self, session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
    ) -> None:
        # tryfirst: our items must exist before -k/-m deselection and xdist scheduling.
        for area in areas.AREAS:
            if self.settings.areas is not None and area.name not in self.settings.areas:
                continue
            module: Any = importlib.import_module(area.module)
            root = module.collect_area(session, self.settings)
            if root is not None:
                items.extend(session.genitems(root))
        self._record_left_out(config)

    def _record_left_out(self, config: pytest.Config) -> None:
        """Configured items that --area/--closure/--rust-test kept out are recorded as
        deselected, so a gate never passes on a narrowed run (see choirci.narrowing)."""
        from choirci.narrowing import left_out

        recorder = config.pluginmanager.get_plugin("choirci-recorder")
        if recorder is None:  # unregistered by the user (-p no:...): nothing records evidence
            return
        for entry in left_out(self.settings):
            recorder.note_narrowed([entry.nodeid], {entry.nodeid: entry.markers}, entry.reason)

    def pytest_ignore_collect(self, collection_path: Path, config: pytest.Config) -> bool | None:
        if collection_path.name in IGNORED_DIRS or collection_path.name.startswith("result-"):
            return True
        if not self.settings.python_tests and collection_path not in self._initial_paths(config):
            # The verdict is choirci's items only, unless --python-tests opts in.
            if _looks_like_tests(collection_path):
                self.python_skipped.append(collection_path)
            return True
        return None

    def _initial_paths(self, config: pytest.Config) -> set[Path]:
        """The paths given on the command line (or testpaths): collected as asked. Resolved
        once, not for every path pytest walks."""
        if self.initial is None:
            invocation = Path(config.invocation_params.dir)
            self.initial = {(invocation / arg.split("::")[0]).resolve() for arg in config.args}
        return self.initial

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.python_skipped and not self.settings.is_worker:
            terminalreporter.write_line(
                "choirci: the repository's own Python tests are not collected under --grind "
                f"(e.g. {self.python_skipped[0].name}); add --python-tests to include them")


def _looks_like_tests(path: Path) -> bool:
    """A Python test file, or a tests/ dir holding one (a crate's tests/ of .rs files is not:
    the hint would send a Rust newcomer after Python tests that do not exist)."""
    if path.is_dir():
        return path.name in ("tests", "test") and any(
            _is_python_test(Path(name)) for _, _, names in os.walk(path) for name in names)
    return _is_python_test(path)


def _is_python_test(path: Path) -> bool:
    name = path.name
    return name.endswith(".py") and (name.startswith("test_") or name.endswith("_test.py")
                                     or name == "conftest.py")
