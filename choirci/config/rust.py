"""The ``rust:`` section of choirci.yaml: targeted test binaries (see README "Config").

Parsed with :class:`choirci.config.reader.Reader`; assembled into the Config by the package.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from choirci.config.yamlpos import describe as _describe

if TYPE_CHECKING:
    from choirci.config.reader import Reader as _Reader


# What a target's `kind:` may say, as cargo names the targets (`cargo test --lib`, `--bin`,
# `--test`, `--doc`, `--example`, `--bench`).
KINDS = ("lib", "bin", "test", "doc", "example", "bench")
RUN_MODES = ("per-binary", "per-test")
IGNORED_MODES = ("skip", "include", "only")  # libtest: (default), --include-ignored, --ignored


def natural_kind(name: str) -> str:
    """What a bare name reads as in a node id: ``lib`` and ``doc`` are those kinds."""
    return name if name in ("lib", "doc") else "test"


def segment_of(kind: str | None, name: str) -> str:
    """The node-id part of a binary: its name, ``KIND:NAME`` when the kind is not what the
    bare name reads as (``test:lib`` is tests/lib.rs, ``lib`` is ``--lib``)."""
    if kind is None or kind == natural_kind(name) or (kind in ("lib", "doc") and name == kind):
        return name
    return f"{kind}:{name}"


def split_segment(value: str) -> tuple[str | None, str]:
    """``KIND:NAME`` -> (kind, name); a bare name -> (None, name)."""
    kind, sep, name = value.partition(":")
    if sep and kind in KINDS and name:
        return kind, name
    return None, value


def picks_target(segment: str, target: RustTarget) -> bool:
    """Whether the BIN part of ``--rust-test CRATE::BIN`` (``NAME`` or ``KIND:NAME``) means
    ``target``."""
    kind, name = split_segment(segment)
    return name == target.test and (kind is None or target.kind in (None, kind))


@dataclass(frozen=True)
class RustTarget:
    crate: str
    test: str
    tests: tuple[str, ...] = ()
    features: tuple[str, ...] = ()
    # A crate outside the root workspace (like dioxus-desktop, with its own Cargo.lock):
    # its Cargo.toml, and cargo then runs with --manifest-path. None: the root workspace.
    manifest: Path | None = None
    kind: str | None = None  # None: resolved from the name (an ambiguous name is an error)
    origin: str = ""  # set on targets expanded from rust.workspace: where they came from
    # Its tests exclude each other through in-process state (serial_test's #[serial], a
    # static Mutex): never two processes of this binary at once (cargo runs it as one).
    exclusive: bool = False

    @property
    def id(self) -> str:
        return f"{self.crate}::{segment_of(self.kind, self.test)}"


@dataclass(frozen=True)
class RustSettings:
    cargo: str = "cargo"
    develop: str | None = None  # nix develop <shell> --command cargo ...
    timeout: float = 300.0  # per test binary run; the whole process group is killed after it
    targets: tuple[RustTarget, ...] = ()
    build_timeout: float = 3600.0  # per cargo invocation (compile + metadata)
    test_threads: int | None = None  # libtest --test-threads; 1 pinpoints a crashing test
    run: str = "per-binary"  # per-binary: one process per binary; per-test: one per test
    ignored: str = "skip"  # skip | include (--include-ignored) | only (--ignored)
    # rust.workspace: every member's targets of these kinds, as `cargo test --workspace
    # --lib --bins` runs them (expanded from cargo metadata); () = off.
    workspace: tuple[str, ...] = ()
    workspace_exclude: tuple[str, ...] = ()


def parse(r: _Reader, value: Any, root: Path) -> RustSettings:
    keys = ("cargo", "develop", "timeout", "build_timeout", "test_threads", "run", "ignored",
            "targets", "workspace")
    table = r.mapping(value, "rust", keys)
    raw_targets = table.get("targets") or []
    if not isinstance(raw_targets, list):
        raise r.fail("rust.targets", f"expected a list of targets, got {_describe(raw_targets)}")
    targets = [_rust_target(r, spec, f"rust.targets[{i}]", root)
               for i, spec in enumerate(raw_targets)]
    _one_manifest_per_crate(r, targets)
    return RustSettings(
        cargo=r.optional_string(table.get("cargo"), "rust.cargo") or "cargo",
        develop=r.optional_string(table.get("develop"), "rust.develop"),
        timeout=r.number(table.get("timeout"), "rust.timeout", 300.0),
        targets=tuple(targets),
        build_timeout=r.number(table.get("build_timeout"), "rust.build_timeout", 3600.0),
        test_threads=_threads(r, table.get("test_threads")),
        run=_choice(r, table.get("run"), "rust.run", RUN_MODES),
        ignored=_choice(r, table.get("ignored"), "rust.ignored", IGNORED_MODES),
        **_workspace(r, table.get("workspace")),
    )


WORKSPACE_KINDS = ("lib", "bin", "test", "doc")


def _workspace(r: _Reader, value: Any) -> dict[str, tuple[str, ...]]:
    """``workspace: {kinds: [lib, bin], exclude: [crate]}``; ``workspace: true`` = lib, bin."""
    if value is None or value is False:
        return {}
    if value is True:
        return {"workspace": ("lib", "bin")}
    table = r.mapping(value, "rust.workspace", ("kinds", "exclude"))
    kinds = r.strings(table.get("kinds"), "rust.workspace.kinds") or ("lib", "bin")
    for index, kind in enumerate(kinds):
        if kind not in WORKSPACE_KINDS:
            raise r.fail(f"rust.workspace.kinds[{index}]",
                         f"expected one of {', '.join(WORKSPACE_KINDS)}, got {kind!r}")
    return {"workspace": tuple(dict.fromkeys(kinds)),
            "workspace_exclude": r.strings(table.get("exclude"), "rust.workspace.exclude")}


def _choice(r: _Reader, value: Any, path: str, choices: tuple[str, ...]) -> str:
    if value is None:
        return choices[0]
    if not isinstance(value, str) or value not in choices:
        raise r.fail(path, f"expected one of {', '.join(choices)}, got {_describe(value)}")
    return value


def _rust_target(r: _Reader, spec: Any, path: str, root: Path) -> RustTarget:
    spec = r.mapping(spec, path, ("crate", "test", "kind", "tests", "features", "manifest",
                                  "exclusive"))
    exclusive = spec.get("exclusive", False)
    if not isinstance(exclusive, bool):
        raise r.fail(f"{path}.exclusive", f"expected true or false, got {exclusive!r}")
    kind = None
    if spec.get("kind") is not None:
        kind = _choice(r, spec["kind"], f"{path}.kind", KINDS)
    if "crate" not in spec:
        raise r.fail(path, "missing 'crate:'; a target needs crate and test binary")
    if "test" not in spec and kind in ("lib", "doc"):
        spec = {**spec, "test": kind}
    if "test" not in spec:
        raise r.fail(path, "missing 'test:'; a target needs crate and test binary "
                           "(or kind: lib / kind: doc)")
    test = r.name(r.string(spec["test"], f"{path}.test"), f"{path}.test")
    if kind in ("lib", "doc") and test != kind:
        raise r.fail(f"{path}.test", f"kind: {kind} selects the crate's {kind} tests; "
                                     f"write 'test: {kind}' or leave test: out, got {test!r}")
    return RustTarget(
        crate=r.name(r.string(spec["crate"], f"{path}.crate"), f"{path}.crate"),
        test=test,
        kind=kind,
        tests=r.strings(spec.get("tests"), f"{path}.tests"),
        features=r.strings(spec.get("features"), f"{path}.features"),
        manifest=_manifest(r, spec.get("manifest"), f"{path}.manifest", root),
        exclusive=exclusive,
    )


def _manifest(r: _Reader, value: Any, path: str, root: Path) -> Path | None:
    """An existing Cargo.toml, relative to the config file; cargo would only say so later,
    in the middle of collection, and without pointing at the config line."""
    if value is None:
        return None
    given = r.string(value, path)
    manifest = (root / given).resolve()
    example = "e.g. 'dioxus-desktop/Cargo.toml'"
    if manifest.is_dir():
        raise r.fail(path, f"{given!r} is a directory; give its Cargo.toml ({example})")
    if manifest.name != "Cargo.toml":
        raise r.fail(path, f"{given!r} is not a Cargo.toml; give the crate's manifest ({example})")
    if not manifest.is_file():
        raise r.fail(path, f"no such file {given!r} (looked for {manifest}); "
                           "the path is relative to the config file")
    return manifest


def _one_manifest_per_crate(r: _Reader, targets: list[RustTarget]) -> None:
    """Node ids are ``rust::<crate>::...``: a crate name must mean one crate."""
    first: dict[str, tuple[int, Path | None]] = {}
    for index, target in enumerate(targets):
        seen = first.setdefault(target.crate, (index, target.manifest))
        if seen[1] != target.manifest:
            where = str(seen[1]) if seen[1] else "the root workspace"
            raise r.fail(
                f"rust.targets[{index}].manifest" if target.manifest else f"rust.targets[{index}]",
                f"crate {target.crate} already comes from {where} (rust.targets[{seen[0]}]); "
                "give every target of one crate the same manifest",
            )


def _threads(r: _Reader, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise r.fail("rust.test_threads", f"expected a whole number >= 1, got {_describe(value)}")
    return value
