"""What ``cargo metadata`` says of a workspace, as plain data: each member package's targets
by kind, which of them the default features cannot build (``required-features``), and,
read from its Cargo.toml once, which have ``harness = false``. Read
by :mod:`choirci.rust.cargo` (which asks cargo) and :mod:`choirci.rust.discover`. Never
imports pytest.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LIB = "lib"  # `test: lib` in choirci.yaml: the crate's unit tests (cargo test --lib)
DOC = "doc"  # `kind: doc`: the crate's doc tests (cargo test --doc)
Selector = tuple[str, str]  # (kind, name): ("lib", "lib"), ("test", "a"), ("bin", "b"), ...


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    manifest_dir: Path
    test_targets: tuple[str, ...]
    has_lib: bool
    bin_targets: tuple[str, ...] = ()  # their unit tests: `cargo test --bin NAME`
    example_targets: tuple[str, ...] = ()
    bench_targets: tuple[str, ...] = ()
    # Targets whose required-features the default features do not enable, with those
    # features: `cargo test --workspace` skips them without a word.
    needs_features: Mapping[Selector, tuple[str, ...]] = field(default_factory=dict)
    # Integration tests with `test = false`: `cargo test --tests` (and plain `cargo test`)
    # leave them out; only naming them (`--test NAME`) runs them.
    not_tested: frozenset[str] = frozenset()
    # Targets declared with `harness = false` (see without_harness), as (kind, name).
    no_harness: frozenset[Selector] = frozenset()

    def of_kind(self, kind: str) -> tuple[str, ...]:
        """The names of this package's targets of ``kind`` (lib/doc: ``lib``/``doc``)."""
        if kind in (LIB, DOC):
            return (kind,) if self.has_lib else ()
        return {"test": self.test_targets, "bin": self.bin_targets,
                "example": self.example_targets, "bench": self.bench_targets}.get(kind, ())

    def kinds_named(self, name: str) -> tuple[str, ...]:
        """What a bare name can mean: lib/doc by their names, tests and bins by theirs
        (examples and benches only with an explicit kind)."""
        return tuple(kind for kind in ("lib", "doc", "test", "bin") if name in self.of_kind(kind))

    def binaries(self) -> tuple[str, ...]:
        bins = tuple(name for name in self.bin_targets if name not in self.test_targets)
        return ((LIB, DOC) if self.has_lib else ()) + self.test_targets + bins


@dataclass(frozen=True)
class Workspace:
    root: Path
    target_dir: Path
    packages: Mapping[str, Package]


def parse_metadata(data: Mapping[str, Any]) -> Workspace:
    members = set(data.get("workspace_members") or ())
    packages = {}
    for package in data.get("packages", ()):
        if members and package.get("id") not in members:
            continue
        targets = package.get("targets", ())
        packages[package["name"]] = Package(
            name=package["name"],
            version=package.get("version", ""),
            manifest_dir=Path(package["manifest_path"]).parent,
            test_targets=tuple(t["name"] for t in targets if "test" in t.get("kind", ())),
            has_lib=any(is_lib(t.get("kind", ())) for t in targets),
            bin_targets=tuple(t["name"] for t in targets if "bin" in t.get("kind", ())),
            example_targets=tuple(t["name"] for t in targets if "example" in t.get("kind", ())),
            bench_targets=tuple(t["name"] for t in targets if "bench" in t.get("kind", ())),
            needs_features=needs_features(targets, package.get("features") or {}),
            not_tested=frozenset(t["name"] for t in targets
                                 if "test" in t.get("kind", ()) and t.get("test") is False),
            no_harness=without_harness(Path(package["manifest_path"])),
        )
    return Workspace(
        root=Path(data["workspace_root"]),
        target_dir=Path(data["target_directory"]),
        packages=packages,
    )


def needs_features(targets: Sequence[Mapping[str, Any]], features: Mapping[str, Sequence[str]]
                   ) -> dict[Selector, tuple[str, ...]]:
    """Per target (of a package's ``cargo metadata`` targets): the required-features that
    the package's default features do not turn on."""
    on, todo = set(), ["default"]  # what `default` turns on, transitively
    while todo:
        name = todo.pop()
        if name in features and name not in on:
            on.add(name)
            todo += features[name]
    missing = {}
    for target in targets:
        lacking = tuple(f for f in target.get("required-features") or () if f not in on)
        for kind in target.get("kind", ()):
            if lacking:
                missing[(LIB, LIB) if is_lib((kind,)) else (kind, target["name"])] = lacking
    return missing


def is_lib(kinds: Sequence[str]) -> bool:
    """The crate's library, whatever it builds (a proc-macro crate's unit and doc tests run
    under `cargo test --lib` / `--doc` like any library's)."""
    return any(kind in ("lib", "rlib", "dylib", "cdylib", "staticlib", "proc-macro")
               for kind in kinds)


def without_harness(manifest: Path) -> frozenset[Selector]:
    """The targets a Cargo.toml declares with ``harness = false`` (criterion benches, custom
    test mains: cargo runs each as one program that passes when it exits 0), as (kind, name);
    the library as (lib, lib). ``cargo metadata`` does not say; the manifest does. An
    unreadable manifest declares none (cargo reports it)."""
    try:
        data = tomllib.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return frozenset()
    found: set[Selector] = set()
    lib = data.get("lib")
    if isinstance(lib, dict) and lib.get("harness") is False:
        found.add((LIB, LIB))
    for kind in ("bin", "test", "bench", "example"):
        tables = data.get(kind)
        for table in tables if isinstance(tables, list) else ():
            if isinstance(table, dict) and table.get("harness") is False and "name" in table:
                found.add((kind, str(table["name"])))
    return frozenset(found)
