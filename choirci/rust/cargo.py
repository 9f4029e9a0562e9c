"""The cargo adapter: workspace metadata, compiling test binaries, listing their tests.

Every command is built here and run through :func:`choirci.proc.run`; with ``rust.develop``
cargo runs as ``nix develop <shell> --command cargo ...`` (the compiled binaries then run
directly). Test binaries are compiled with ``cargo test --no-run --message-format=json``,
once per (crate, feature set) for all of its wanted binaries, and the executables are read
from the ``compiler-artifact`` messages. A crate outside the root workspace is reached with
``--manifest-path`` (cargo then uses that workspace's lockfile and target directory). A
binary is ``lib`` (``--lib``), an integration test (``--test NAME``) or the unit tests of a
``[[bin]]`` target (``--bin NAME``); integration tests win when names collide. Never
imports pytest.

``cargo test`` output on stdout is JSON lines (``--message-format=json``)::

    {"reason":"compiler-message","target":{"kind":["test"],"name":"a",...},
     "message":{"level":"error","rendered":"error[E0425]: ...",...},...}
    {"reason":"compiler-artifact","target":{"kind":["test"],"name":"a",...},
     "profile":{"test":true,...},"executable":"/.../target/debug/deps/a-24b9dda8e7e84dc5",...}
    {"reason":"build-finished","success":true}

A dev shell's hook may print plain text on stdout too: lines that are not JSON are skipped.
"""

from __future__ import annotations

import json
import os
import shlex
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from choirci import proc
from choirci.errors import ChoirciError
from choirci.nix.adapter import Nix
from choirci.proc import CommandResult, LineCallback
from choirci.rust import libtest

LIB = "lib"  # `test: lib` in choirci.yaml: the crate's unit tests (cargo test --lib)
LIST_TIMEOUT = 120.0
# Variables that would change libtest's output format behind our back.
FORMAT_ENV = ("RUST_TEST_NOCAPTURE", "RUST_TEST_SHOW_OUTPUT", "RUST_TEST_TIME_UNIT")


class CargoError(ChoirciError):
    """cargo could not tell us about the workspace (the repo's problem, reported per item)."""


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    manifest_dir: Path
    test_targets: tuple[str, ...]
    has_lib: bool
    bin_targets: tuple[str, ...] = ()  # their unit tests: `cargo test --bin NAME`

    def binaries(self) -> tuple[str, ...]:
        bins = tuple(name for name in self.bin_targets if name not in self.test_targets)
        return ((LIB,) if self.has_lib else ()) + self.test_targets + bins

    def bins(self, binaries: Sequence[str]) -> tuple[str, ...]:
        """Which of ``binaries`` are the unit tests of a bin target (built with ``--bin``)."""
        return tuple(b for b in binaries if b in self.bin_targets and b not in self.test_targets)


@dataclass(frozen=True)
class Workspace:
    root: Path
    target_dir: Path
    packages: Mapping[str, Package]


@dataclass
class Build:
    """One ``cargo test --no-run`` call: the executables it made and what failed."""

    command: str
    executables: dict[str, str] = field(default_factory=dict)  # binary -> path
    errors: dict[str, str] = field(default_factory=dict)  # binary -> rendered compiler errors
    shared_errors: str = ""  # errors in the library or a dependency: every binary is affected
    result: CommandResult | None = None

    def failure(self, binary: str) -> str:
        """The compiler's message for a binary that got no executable."""
        if binary in self.errors:
            return self.errors[binary]
        if self.shared_errors:
            return self.shared_errors
        if self.result is None:
            return "cargo did not run"
        return libtest.excerpt(self.result.stderr, max_lines=60) or self.result.describe_exit()


@dataclass
class Cargo:
    cargo: str = "cargo"
    develop: str | None = None
    nix: Nix = field(default_factory=Nix)
    cwd: Path = Path(".")
    timeout: float = 3600.0
    progress: LineCallback | None = None  # compile progress for the terminal (cargo's stderr)

    def argv(self, *args: str) -> list[str]:
        command = [self.cargo, *args]
        if self.develop is None:
            return command
        return self.nix.develop_argv(self.develop, command)

    def run(self, argv: Sequence[str], on_stderr: LineCallback | None = None) -> CommandResult:
        setting = "nix.binary in choirci.yaml" if self.develop else "rust.cargo in choirci.yaml"
        # Bounded: a broken build can print megabytes of warnings.
        return proc.run(argv, cwd=self.cwd, timeout=self.timeout, setting=setting,
                        max_output=32 << 20, on_stderr=on_stderr)

    # ----------------------------------------------------------------- metadata

    def metadata(self, manifest: str | None = None) -> Workspace:
        """The workspace at ``cwd``, or the one ``manifest`` (a Cargo.toml) belongs to."""
        args = ["metadata", "--format-version", "1", "--no-deps", *self._manifest(manifest)]
        result = self.run(self.argv(*args))
        if not result.ok:
            raise CargoError(f"`{result.command}` failed ({result.describe_exit()}): "
                             f"{libtest.one_line(_last_lines(result.stderr))}")
        for line in result.stdout.splitlines():
            if line.startswith("{"):
                return parse_metadata(json.loads(line))
        where = manifest or self.cwd
        raise CargoError(f"`{result.command}` printed no JSON; is {where} a Cargo workspace?")

    def _manifest(self, manifest: str | None) -> list[str]:
        if manifest is None:
            return []
        # Relative to cwd where it can be, so recorded commands read like a person typed them.
        shown = os.path.relpath(manifest, self.cwd) if os.path.isabs(manifest) else manifest
        return ["--manifest-path", manifest if shown.startswith("..") else shown]

    # ----------------------------------------------------------------- compiling

    def build_argv(self, crate: str, binaries: Sequence[str], features: Sequence[str], *,
                   manifest: str | None = None, bins: Sequence[str] = ()) -> list[str]:
        args = ["test", "--no-run", "--message-format=json", *self._manifest(manifest), "-p", crate]
        for binary in binaries:
            if binary == LIB:
                args += ["--lib"]
            else:
                args += ["--bin" if binary in bins else "--test", binary]
        if features:
            args += ["--features", ",".join(features)]
        return self.argv(*args)

    def build(self, crate: str, binaries: Sequence[str], features: Sequence[str], *,
              manifest: str | None = None, bins: Sequence[str] = ()) -> Build:
        """Compile ``binaries`` of ``crate`` with ``features``; a failed compile is a result.

        ``bins`` names those of ``binaries`` that are a bin target's unit tests."""
        build = self._build_once(crate, binaries, features, manifest=manifest, bins=bins)
        if (build.result is not None and build.result.ok) or len(binaries) == 1:
            return build
        # cargo stops scheduling after the first error, so a grouped call cannot say which of
        # the other binaries compile: ask for each one on its own (built ones are no-ops).
        merged = Build(command=build.command, result=build.result)
        for binary in binaries:
            alone = self._build_once(crate, [binary], features, manifest=manifest, bins=bins)
            if binary in alone.executables:
                merged.executables[binary] = alone.executables[binary]
            else:
                merged.errors[binary] = alone.failure(binary)
        return merged

    def _build_once(self, crate: str, binaries: Sequence[str], features: Sequence[str], *,
                    manifest: str | None, bins: Sequence[str]) -> Build:
        argv = self.build_argv(crate, binaries, features, manifest=manifest, bins=bins)
        result = self.run(argv, _compile_progress(self.progress))
        build = Build(command=shlex.join(argv), result=result)
        shared: list[str] = []
        for message in _json_lines(result.stdout):
            _absorb(message, crate, set(binaries), build, shared)
        build.shared_errors = "\n".join(dict.fromkeys(shared))
        return build


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
            has_lib=any(_is_lib(t.get("kind", ())) for t in targets),
            bin_targets=tuple(t["name"] for t in targets if "bin" in t.get("kind", ())),
        )
    return Workspace(
        root=Path(data["workspace_root"]),
        target_dir=Path(data["target_directory"]),
        packages=packages,
    )


def _is_lib(kinds: Sequence[str]) -> bool:
    return any(kind in ("lib", "rlib", "dylib", "cdylib", "staticlib") for kind in kinds)


def _json_lines(text: str) -> Iterator[dict[str, Any]]:
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                yield json.loads(line)
            except ValueError:
                continue


def _absorb(
    message: dict[str, Any], crate: str, wanted: set[str], build: Build, shared: list[str]
) -> None:
    target = message.get("target") or {}
    binary = _binary_of(target)
    ours = _package_name(message.get("package_id", "")) == crate
    if message.get("reason") == "compiler-artifact" and message.get("executable"):
        if ours and binary in wanted and (message.get("profile") or {}).get("test"):
            build.executables[binary] = message["executable"]
    elif message.get("reason") == "compiler-message":
        diagnostic = message.get("message") or {}
        if diagnostic.get("level") not in ("error", "error: internal compiler error"):
            return
        rendered = diagnostic.get("rendered") or diagnostic.get("message") or ""
        if ours and binary in wanted and binary != LIB:
            build.errors[binary] = (build.errors.get(binary, "") + rendered).strip("\n")
        else:
            shared.append(rendered.strip("\n"))


def _binary_of(target: Mapping[str, Any]) -> str:
    kinds = target.get("kind", ())
    if "test" in kinds:
        return str(target.get("name", ""))
    return LIB if _is_lib(kinds) else str(target.get("name", ""))


def _package_name(package_id: str) -> str:
    """The name in a package id: ``path+file:///w/sandbox#0.1.0`` or ``sandbox 0.1.0 (...)``."""
    if " " in package_id:
        return package_id.split(" ", 1)[0]
    fragment = package_id.rsplit("#", 1)[-1]
    if "@" in fragment:
        return fragment.split("@", 1)[0]
    # `path+file:///w/sandbox#0.1.0`: the name is the directory (cargo omits it when equal).
    return package_id.rsplit("#", 1)[0].rstrip("/").rsplit("/", 1)[-1]


def _last_lines(text: str, count: int = 3) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error")]
    return "; ".join((errors or lines)[-count:])


# --------------------------------------------------------------------------- test binaries


def test_env(package: Package, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """What ``cargo test`` gives a test binary at run time, minus format-changing variables."""
    env = {k: v for k, v in (os.environ if base is None else base).items() if k not in FORMAT_ENV}
    env.update(
        CARGO_MANIFEST_DIR=str(package.manifest_dir),
        CARGO_PKG_NAME=package.name,
        CARGO_PKG_VERSION=package.version,
        CARGO_CRATE_NAME=package.name.replace("-", "_"),
    )
    return env


def list_tests(executable: str, package: Package) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(all tests, ignored tests) of a test binary, each sorted as libtest lists them."""
    found = []
    for extra in ((), ("--ignored",)):
        argv = [executable, "--list", "--format", "terse", *extra]
        result = proc.run(argv, cwd=package.manifest_dir, env=test_env(package),
                          timeout=LIST_TIMEOUT, max_output=64 << 20)
        if not result.ok:
            raise CargoError(f"`{result.command}` failed ({result.describe_exit()}): "
                             f"{libtest.one_line(_last_lines(result.stderr))}")
        found.append(libtest.parse_list(result.stdout))
    return found[0], found[1]


def run_argv(
    executable: str, names: Sequence[str], *, everything: bool, threads: int | None
) -> list[str]:
    """One run of a binary: all its tests, or exactly ``names`` (ignored ones are reported
    as ``ignored, <reason>`` without running, which is how the reason is learnt)."""
    argv = [executable, "--show-output", "--color", "never", "--format", "pretty"]
    if threads is not None:
        argv += ["--test-threads", str(threads)]
    return argv if everything else [*argv, "--exact", *names]


def _compile_progress(say: LineCallback | None, every: float = 2.0,
                      clock: Callable[[], float] = time.monotonic) -> LineCallback | None:
    """Relay cargo's ``Compiling x`` lines, at most one per ``every`` seconds.

    A cold compile of a real workspace takes minutes at collection time; without this the
    terminal would sit silent on "collecting ...".
    """
    if say is None:
        return None
    # None, not 0.0: the monotonic clock counts from boot, so on a machine up for less than
    # ``every`` seconds a 0.0 start would drop the first line.
    last: list[float | None] = [None]

    def relay(line: str) -> None:
        text = line.strip()
        if not text.startswith(("Compiling", "Finished")):
            return
        now = clock()
        previous = last[0]
        if text.startswith("Finished") or previous is None or now - previous >= every:
            last[0] = now
            say(f"cargo: {text}")

    return relay
