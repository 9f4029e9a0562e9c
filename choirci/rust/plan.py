"""Which Rust tests run: targets resolved against the workspace into one plan per binary.

The targets come from ``rust.targets`` in choirci.yaml or, when given, from ``--rust-test
CRATE::BIN[::TEST]`` (BIN may be ``KIND:NAME``, e.g. ``test:lib`` for tests/lib.rs; features
then come from the configured target of that binary, the manifest from any configured target
of that crate). Each (crate, binary, feature set) becomes one :class:`BinaryPlan`, resolved by
:mod:`choirci.rust.discover` (compiled and listed once, with the environment cargo gives it,
and carrying its problem if it has one). Plans are plain data so that xdist workers can share
one discovery through a JSON file (:func:`cached`). Never imports pytest.
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from choirci.config.rust import RustSettings, picks_target, segment_of, split_segment
from choirci.errors import ConfigError
from choirci.rust import cargo as cargo_mod

T = TypeVar("T")
CACHE_MAX_AGE = 86400.0  # discovery files of finished xdist runs are removed after a day


@dataclass(frozen=True)
class Wanted:
    crate: str
    binary: str
    features: tuple[str, ...]
    tests: tuple[str, ...] | None  # None: every test the binary lists
    origin: str  # where the user asked for it, for messages
    manifest: str = ""  # a Cargo.toml outside the root workspace; "": the root workspace
    kind: str | None = None  # lib/bin/test/doc/example/bench; None: from the name
    named: tuple[str, ...] = ()  # every exact name asked for (each must exist)
    exclusive: bool = False  # never two processes of the binary at once (RustTarget)


@dataclass(frozen=True)
class Problem:
    message: str
    details: str = ""
    harness: bool = False  # True: choirci/tooling broke (an error), False: the repo (a failure)
    empty: bool = False  # the binary lists no test at all (fine for rust.workspace expansion)


@dataclass(frozen=True)
class BinaryPlan:
    crate: str
    binary: str
    features: tuple[str, ...]
    origin: str
    segment: str  # node-id part: the binary (KIND:NAME when ambiguous), +features when several
    requested: tuple[str, ...] | None = None
    executable: str | None = None
    listed: tuple[str, ...] = ()
    ignored: tuple[str, ...] = ()  # listed only with rust.ignored: only (then all that run)
    build_command: str = ""
    manifest_dir: str = ""
    version: str = ""
    problem: Problem | None = None
    manifest: str = ""  # as in Wanted
    kind: str = ""  # resolved: lib, bin, test, doc, example, bench
    named: tuple[str, ...] = ()  # as in Wanted
    asked_kind: str | None = None  # the kind the user wrote, if any
    env_set: dict[str, str] = field(default_factory=dict)  # what cargo sets for the binary
    env_unset: tuple[str, ...] = ()
    cwd: str = ""  # where cargo runs the binary (the package root)
    env_source: str = ""  # "cargo" (asked from cargo) or why not
    libtest: bool = True  # False: `harness = false`, one program with no test names
    exclusive: bool = False  # as in Wanted

    @property
    def target(self) -> str:
        return f"{self.crate}::{self.segment}"

    @property
    def features_label(self) -> str:
        return ",".join(self.features) if self.features else "(none)"

    @property
    def selector(self) -> cargo_mod.Selector:
        return self.kind, self.binary

    def selected(self, only_ignored: bool = False) -> tuple[str, ...]:
        """The tests to collect; with ``only_ignored`` (rust.ignored: only) the #[ignore]d
        ones among them."""
        chosen = self.listed
        if self.requested is not None:
            wanted = set(self.requested)
            chosen = tuple(name for name in chosen if name in wanted)
        if only_ignored:
            keep = set(self.ignored)
            chosen = tuple(name for name in chosen if name in keep)
        return chosen

    def not_ignored(self) -> tuple[str, ...]:
        """Names asked for exactly that exist but are not #[ignore]d (rust.ignored: only)."""
        ignored, listed = set(self.ignored), set(self.listed)
        return tuple(name for name in self.named if name in listed and name not in ignored)

    def missing(self) -> tuple[str, ...]:
        listed = set(self.listed)
        return tuple(name for name in self.named if name not in listed)

    def run_env(self) -> cargo_mod.RunEnv:
        return cargo_mod.RunEnv(dict(self.env_set), self.env_unset, self.cwd or self.manifest_dir)


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
            origin = (f"{source}: {target.origin} ({target.id})" if target.origin
                      else f"{source}: rust.targets[{index}] ({target.id})")
            wanted.append(Wanted(target.crate, target.test, target.features,
                                 target.tests or None, origin, _manifest(rust, target.crate),
                                 target.kind, target.tests, target.exclusive))
    for value in selection:
        crate, segment, test = parse_selection(value)
        kind, binary = split_segment(segment)
        configured = [t for t in rust.targets if t.crate == crate and picks_target(segment, t)]
        for features in dict.fromkeys(t.features for t in configured) or [()]:
            tests = None if test is None else (test,)
            exclusive = any(t.exclusive for t in configured if t.features == features)
            wanted.append(Wanted(crate, binary, features, tests, f"--rust-test {value}",
                                 _manifest(rust, crate), kind, tests or (), exclusive))
    return _merge(wanted)


def _manifest(rust: RustSettings, crate: str) -> str:
    """Where a crate lives: the config allows one manifest per crate name."""
    for target in rust.targets:
        if target.crate == crate and target.manifest is not None:
            return str(target.manifest)
    return ""


def _merge(wanted: list[Wanted]) -> list[Wanted]:
    """One Wanted per (crate, kind, binary, features). A target that selects the whole
    binary wins over exact names, but every exact name is kept in ``named``: a misspelt
    one still becomes a failing item."""
    merged: dict[tuple[str, str | None, str, tuple[str, ...]], Wanted] = {}
    for item in wanted:
        key = (item.crate, item.kind, item.binary, item.features)
        if key not in merged:
            merged[key] = item
            continue
        old = merged[key]
        tests = None if old.tests is None or item.tests is None else old.tests + item.tests
        merged[key] = dataclasses.replace(
            old, tests=None if tests is None else tuple(dict.fromkeys(tests)),
            named=tuple(dict.fromkeys(old.named + item.named)),
            exclusive=old.exclusive or item.exclusive,
        )
    return list(merged.values())


def segment(item: Wanted, all_wanted: Sequence[Wanted], kind: str | None = None) -> str:
    """``binary``, ``KIND:binary`` (see :func:`segment_of`), plus ``+feature+...`` (or
    ``+default``) when one binary runs with several feature sets. No ``[...]``: pytest reads
    brackets in a node id as parameters (its summary, ``-k`` and node-id arguments)."""
    base = f"{kind}:{item.binary}" if kind else segment_of(item.kind, item.binary)
    sets = {w.features for w in all_wanted
            if (w.crate, w.binary, w.kind) == (item.crate, item.binary, item.kind)}
    if len(sets) == 1:
        return base
    return f"{base}+{'+'.join(item.features) or 'default'}"


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
        for key in ("features", "listed", "ignored", "named", "env_unset"):
            raw[key] = tuple(raw[key])
        if raw["requested"] is not None:
            raw["requested"] = tuple(raw["requested"])
        plans.append(BinaryPlan(**raw))
    return plans


def cached(path: Path, compute: Callable[[], list[BinaryPlan]]) -> list[BinaryPlan]:
    """Compute once per ``path``: the first process (xdist worker) computes under an exclusive
    lock and writes the file; every other one waits for the lock and reads the same plans, so
    all workers collect identical items without compiling in parallel."""
    return shared(path, compute, to_json, from_json)


def shared(path: Path, compute: Callable[[], T], dump: Callable[[T], str],
           load: Callable[[str], T]) -> T:
    """The value of ``compute``, computed by the first process to ask for ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if path.exists():
            return load(path.read_text())
        value = compute()
        _write_atomic(path, dump(value))
        _forget_old(path.parent)
        return value


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
