"""Which Rust tests run: targets resolved against the workspace into one plan per binary.

The targets come from ``rust.targets`` in choirci.yaml or, when given, from ``--rust-test
CRATE::BIN[::TEST]`` (features then come from the configured target of that binary, the
manifest from any configured target of that crate). Each (crate, binary, feature set)
becomes one :class:`BinaryPlan`: compiled once (one cargo call per manifest, crate and
feature set; ``cargo metadata`` once per manifest), listed once, and carrying its problem if
it has one (unknown crate or binary, compile error, zero tests). Plans are plain data so
that xdist workers can share one discovery through a JSON file (:func:`cached`). Never
imports pytest.
"""

from __future__ import annotations

import dataclasses
import difflib
import fcntl
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from choirci.config.rust import RustSettings
from choirci.errors import ConfigError, ToolMissing
from choirci.rust import cargo as cargo_mod

CACHE_MAX_AGE = 86400.0  # discovery files of finished xdist runs are removed after a day


@dataclass(frozen=True)
class Wanted:
    crate: str
    binary: str
    features: tuple[str, ...]
    tests: tuple[str, ...] | None  # None: every test the binary lists
    origin: str  # where the user asked for it, for messages
    manifest: str = ""  # a Cargo.toml outside the root workspace; "": the root workspace


@dataclass(frozen=True)
class Problem:
    message: str
    details: str = ""
    harness: bool = False  # True: choirci/tooling broke (an error), False: the repo (a failure)


@dataclass(frozen=True)
class BinaryPlan:
    crate: str
    binary: str
    features: tuple[str, ...]
    origin: str
    segment: str  # node-id part: the binary, plus [features] when one binary has several sets
    requested: tuple[str, ...] | None = None
    executable: str | None = None
    listed: tuple[str, ...] = ()
    ignored: tuple[str, ...] = ()
    build_command: str = ""
    manifest_dir: str = ""
    version: str = ""
    problem: Problem | None = None
    manifest: str = ""  # as in Wanted
    kind: str = ""  # "bin" for a bin target's unit tests (cargo test --bin), else ""

    @property
    def target(self) -> str:
        return f"{self.crate}::{self.segment}"

    @property
    def features_label(self) -> str:
        return ",".join(self.features) if self.features else "(none)"

    def selected(self) -> tuple[str, ...]:
        if self.requested is None:
            return self.listed
        wanted = set(self.requested)
        return tuple(name for name in self.listed if name in wanted)

    def missing(self) -> tuple[str, ...]:
        listed = set(self.listed)
        return tuple(name for name in self.requested or () if name not in listed)

    def package(self) -> cargo_mod.Package:
        return cargo_mod.Package(self.crate, self.version, Path(self.manifest_dir), (), False)


# --------------------------------------------------------------------------- wanted targets


def parse_selection(value: str) -> tuple[str, str, str | None]:
    """``CRATE::BIN[::TEST]``; TEST may itself contain ``::`` (a module path)."""
    parts = value.split("::", 2)
    if len(parts) < 2 or not all(part.strip() for part in parts):
        raise ConfigError(
            f"--rust-test {value!r}: expected CRATE::BIN or CRATE::BIN::TEST, "
            "e.g. --rust-test sandbox::desktop_api_test::test_health_check"
        )
    return parts[0], parts[1], parts[2] if len(parts) == 3 else None


def wanted_targets(rust: RustSettings, selection: Sequence[str], source: str) -> list[Wanted]:
    """What to run: ``--rust-test`` values if any, else the configured targets, merged."""
    wanted: list[Wanted] = []
    if not selection:
        for index, target in enumerate(rust.targets):
            origin = f"{source}: rust.targets[{index}] ({target.id})"
            wanted.append(Wanted(target.crate, target.test, target.features,
                                 target.tests or None, origin, _manifest(rust, target.crate)))
    for value in selection:
        crate, binary, test = parse_selection(value)
        configured = [t for t in rust.targets if (t.crate, t.test) == (crate, binary)]
        for features in dict.fromkeys(t.features for t in configured) or [()]:
            tests = None if test is None else (test,)
            wanted.append(Wanted(crate, binary, features, tests, f"--rust-test {value}",
                                 _manifest(rust, crate)))
    return _merge(wanted)


def _manifest(rust: RustSettings, crate: str) -> str:
    """Where a crate lives: the config allows one manifest per crate name."""
    for target in rust.targets:
        if target.crate == crate and target.manifest is not None:
            return str(target.manifest)
    return ""


def _merge(wanted: list[Wanted]) -> list[Wanted]:
    merged: dict[tuple[str, str, tuple[str, ...]], Wanted] = {}
    for item in wanted:
        key = (item.crate, item.binary, item.features)
        if key not in merged:
            merged[key] = item
            continue
        old = merged[key]
        tests = None if old.tests is None or item.tests is None else old.tests + item.tests
        merged[key] = dataclasses.replace(
            old, tests=None if tests is None else tuple(dict.fromkeys(tests))
        )
    return list(merged.values())


def _segment(item: Wanted, all_wanted: Sequence[Wanted]) -> str:
    sets = {w.features for w in all_wanted if (w.crate, w.binary) == (item.crate, item.binary)}
    if len(sets) == 1:
        return item.binary
    return f"{item.binary}[{','.join(item.features) or 'default'}]"


# --------------------------------------------------------------------------- discovery


def discover(wanted: Sequence[Wanted], cargo: cargo_mod.Cargo) -> list[BinaryPlan]:
    """Compile and list every wanted binary once; problems become part of the plans."""
    plans = [
        BinaryPlan(w.crate, w.binary, w.features, w.origin, _segment(w, wanted), w.tests,
                   manifest=w.manifest)
        for w in wanted
    ]
    for manifest in dict.fromkeys(plan.manifest for plan in plans):
        plans = _located(plans, manifest, cargo)
    groups: dict[tuple[str, str, tuple[str, ...]], list[int]] = {}
    for index, plan in enumerate(plans):
        if plan.problem is None:
            groups.setdefault((plan.manifest, plan.crate, plan.features), []).append(index)
    for (manifest, crate, features), indexes in groups.items():
        binaries = list(dict.fromkeys(plans[i].binary for i in indexes))
        bins = [plans[i].binary for i in indexes if plans[i].kind == "bin"]
        try:
            build = cargo.build(crate, binaries, features, manifest=manifest or None, bins=bins)
        except ToolMissing as exc:
            for i in indexes:
                plans[i] = dataclasses.replace(plans[i], problem=Problem(str(exc), harness=True))
            continue
        for i in indexes:
            plans[i] = _listed(_built(plans[i], build))
    return plans


def _located(plans: list[BinaryPlan], manifest: str, cargo: cargo_mod.Cargo) -> list[BinaryPlan]:
    """Resolve the plans of one manifest against its workspace (one ``cargo metadata``)."""
    try:
        workspace = cargo.metadata(manifest or None)
    except ToolMissing as exc:
        return _failed(plans, manifest, Problem(str(exc), harness=True))
    except cargo_mod.CargoError as exc:
        return _failed(plans, manifest, Problem(str(exc)))
    return [_locate(plan, workspace) if plan.manifest == manifest else plan for plan in plans]


def _failed(plans: list[BinaryPlan], manifest: str, problem: Problem) -> list[BinaryPlan]:
    return [dataclasses.replace(plan, problem=problem) if plan.manifest == manifest else plan
            for plan in plans]


def _locate(plan: BinaryPlan, workspace: cargo_mod.Workspace) -> BinaryPlan:
    package = workspace.packages.get(plan.crate)
    if package is None:
        message = (f"{plan.origin}: no crate {plan.crate!r} in the Cargo workspace at "
                   f"{workspace.root}; {nearest(plan.crate, list(workspace.packages))}")
        if not plan.manifest:
            message += ("; a crate outside the workspace (like dioxus-desktop) needs "
                        "'manifest: <dir>/Cargo.toml' on its target")
        return dataclasses.replace(plan, problem=Problem(message))
    if plan.binary not in package.binaries():
        message = (f"{plan.origin}: crate {plan.crate} has no test binary {plan.binary!r}; "
                   f"{nearest(plan.binary, package.binaries())}")
        return dataclasses.replace(plan, problem=Problem(message))
    kind = "bin" if package.bins([plan.binary]) else ""
    return dataclasses.replace(plan, manifest_dir=str(package.manifest_dir),
                               version=package.version, kind=kind)


def _built(plan: BinaryPlan, build: cargo_mod.Build) -> BinaryPlan:
    plan = dataclasses.replace(plan, build_command=build.command)
    executable = build.executables.get(plan.binary)
    if executable is None:
        message = (f"{plan.target} does not compile (features: {plan.features_label}); "
                   f"see the compiler output below ({plan.origin})")
        return dataclasses.replace(plan, problem=Problem(message, build.failure(plan.binary)))
    return dataclasses.replace(plan, executable=executable)


def _listed(plan: BinaryPlan) -> BinaryPlan:
    if plan.executable is None:
        return plan
    try:
        listed, ignored = cargo_mod.list_tests(plan.executable, plan.package())
    except cargo_mod.CargoError as exc:
        return dataclasses.replace(plan, problem=Problem(str(exc)))
    plan = dataclasses.replace(plan, listed=listed, ignored=ignored)
    if not listed:
        message = (f"{plan.origin}: {plan.target} selects zero tests: the binary lists none "
                   f"(features: {plan.features_label}); a target that runs nothing cannot pass")
        return dataclasses.replace(plan, problem=Problem(message))
    return plan


def nearest(name: str, candidates: Sequence[str], count: int = 3) -> str:
    """``nearest: a, b`` (difflib) or, with nothing close, the first few that exist."""
    if not candidates:
        return "there are none"
    close = difflib.get_close_matches(name, candidates, n=count, cutoff=0.5)
    if close:
        return "nearest: " + ", ".join(close)
    shown = ", ".join(candidates[:count])
    more = f" (+{len(candidates) - count} more)" if len(candidates) > count else ""
    return f"nothing close; existing: {shown}{more}"


# --------------------------------------------------------------------------- sharing


def to_json(plans: Sequence[BinaryPlan]) -> str:
    return json.dumps([dataclasses.asdict(plan) for plan in plans])


def from_json(text: str) -> list[BinaryPlan]:
    plans = []
    for raw in json.loads(text):
        raw["problem"] = Problem(**raw["problem"]) if raw["problem"] else None
        for key in ("features", "listed", "ignored"):
            raw[key] = tuple(raw[key])
        if raw["requested"] is not None:
            raw["requested"] = tuple(raw["requested"])
        plans.append(BinaryPlan(**raw))
    return plans


def cached(path: Path, compute: Callable[[], list[BinaryPlan]]) -> list[BinaryPlan]:
    """Compute once per ``path``: the first process (xdist worker) computes under an exclusive
    lock and writes the file; every other one waits for the lock and reads the same plans, so
    all workers collect identical items without compiling in parallel."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if path.exists():
            return from_json(path.read_text())
        plans = compute()
        _write_atomic(path, to_json(plans))
        _forget_old(path.parent)
        return plans


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


def _forget_old(directory: Path) -> None:
    cutoff = time.time() - CACHE_MAX_AGE
    for entry in directory.iterdir():
        try:
            if entry.stat().st_mtime < cutoff:
                entry.unlink()
        except OSError:
            continue


def cache_key(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:24]
