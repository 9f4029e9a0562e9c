"""pytest wiring for choirci: options, markers, settings, collection of the areas.

Thin by design: options are declared and validated here, everything stateful lives in the
objects registered from ``pytest_configure`` (only when ``--grind`` is given, so installing
choirci never changes an ordinary pytest run).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import pytest

from choirci import areas
from choirci import config as config_mod
from choirci.errors import ChoirciError
from choirci.rust.plan import parse_selection
from choirci.settings import SETTINGS, Settings

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
        "--area",
        action="append",
        default=[],
        metavar="AREA",
        choices=list(areas.NAMES),
        help="with --grind: collect only this area (repeatable; default: all). Unlike -m, other "
        "areas are not even collected, so a shard of closures never compiles Rust tests.",
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
                 ("--area", opt.area), ("--evidence-dir", opt.evidence_dir))
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
    except ChoirciError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[SETTINGS] = settings
    config.pluginmanager.register(AreaCollection(settings), "choirci-areas")
    from choirci.session.recorder import Recorder

    config.pluginmanager.register(Recorder(config, settings), "choirci-recorder")


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
    return Settings(
        config=cfg,
        closures=closures,
        rust_selection=tuple(dict.fromkeys(opt.rust_test)),
        areas=tuple(dict.fromkeys(opt.area)),
        evidence_dir=evidence,
        invocation_dir=invocation,
        is_worker=hasattr(config, "workerinput"),
    )


class AreaCollection:
    """Adds the areas (closures, loops, rust, hosts, release) to the session's items."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(
        self, session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
    ) -> None:
        # tryfirst: our items must exist before -k/-m deselection and xdist scheduling.
        for area in areas.AREAS:
            if self.settings.areas and area.name not in self.settings.areas:
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
        return None
