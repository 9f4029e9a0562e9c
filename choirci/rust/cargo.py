"""The cargo adapter: workspace metadata, compiling test binaries, listing their tests.

Every command is built here and run through :func:`choirci.proc.run`; with ``rust.develop``
cargo runs as ``nix develop <shell> --command cargo ...`` (the compiled binaries then run
directly). Test binaries are compiled with ``cargo test --no-run --message-format=json``,
once per (crate, feature set) for all of its wanted binaries, and the executables are read
from the ``compiler-artifact`` messages. A crate outside the root workspace is reached with
``--manifest-path`` (cargo then uses that workspace's lockfile and target directory). A
binary is a *selector* ``(kind, name)``: ``("lib", "lib")`` (``--lib``), an integration
test (``--test NAME``), the unit tests of a ``[[bin]]`` (``--bin NAME``), an example or bench
built as a test (``--example``/``--bench NAME``); the crate's doc tests run through
``cargo test --doc`` itself. The run environment of a test binary is asked from cargo: one
``cargo test`` call with a runner that records the environment and working directory cargo
gives each binary (:func:`Cargo.capture_env`), so choirci runs the binary exactly as cargo
would. Never imports pytest.

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
import sys
import tempfile
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
from choirci.rust.metadata import DOC, LIB, Package, Selector, Workspace, is_lib, parse_metadata

# The metadata model is re-exported: callers know it as cargo's.
__all__ = ["DOC", "LIB", "Build", "Cargo", "CargoError", "Package", "RunEnv", "Selector",
           "Workspace", "clean_env", "last_lines", "parse_metadata"]

# Variables that would change libtest's output format behind our back, and pytest's own
# per-test marker: the intended differences from `cargo test`'s environment (README).
FORMAT_ENV = ("RUST_TEST_NOCAPTURE", "RUST_TEST_SHOW_OUTPUT", "RUST_TEST_TIME_UNIT",
              "RUST_TEST_FORMAT", "PYTEST_CURRENT_TEST")
FLAGS = {"lib": "--lib", "bin": "--bin", "test": "--test", "example": "--example",
         "bench": "--bench"}
# Records what cargo gives a test binary: cargo runs `RUNNER... <binary> <args>` as the test.
# One record per binary: path NUL cwd NUL the runner's initial environment (/proc keeps it as
# exec received it, whatever the shell sets later) NUL. A shell and cat start in ~2 ms.
_DUMP_SH = ('{ printf "%s\\0%s\\0" "$1" "$(pwd -P)"; cat /proc/$$/environ; printf "\\0"; } >> "$0"')
_DUMP_PY = """import os, sys
with open(sys.argv[1], "ab") as out:
    env = b"".join(k + b"=" + v + b"\\0" for k, v in os.environb.items())
    out.write(sys.argv[2].encode() + b"\\0" + os.getcwd().encode() + b"\\0" + env + b"\\0")
"""


class CargoError(ChoirciError):
    """cargo could not tell us about the workspace (the repo's problem, reported per item)."""


@dataclass(frozen=True)
class RunEnv:
    """How cargo runs one test binary: variables it sets or changes, ones it removes, cwd."""

    set: dict[str, str]
    unset: tuple[str, ...]
    cwd: str

    def apply(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        env = clean_env(base)
        env.update(self.set)
        for key in self.unset:
            env.pop(key, None)
        return env


def clean_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment minus what would change libtest's output format or is pytest's."""
    return {k: v for k, v in (os.environ if base is None else base).items() if k not in FORMAT_ENV}


@dataclass
class Build:
    """One ``cargo test --no-run`` call: the executables it made and what failed."""

    command: str
    executables: dict[Selector, str] = field(default_factory=dict)  # selector -> path
    errors: dict[Selector, str] = field(default_factory=dict)  # selector -> compiler errors
    shared_errors: str = ""  # errors in the library or a dependency: every binary is affected
    result: CommandResult | None = None

    def failure(self, binary: Selector) -> str:
        """The compiler's message for a binary that got no executable."""
        if binary in self.errors:
            return self.errors[binary]
        if self.shared_errors:
            return self.shared_errors
        if self.result is None:
            return "cargo did not run"
        if self.result.timed_out:
            return (f"`{self.command}` did not finish within rust.build_timeout "
                    f"({self.result.duration:.0f}s) and was killed; its last lines:\n"
                    + (libtest.excerpt(self.result.stderr, max_lines=20) or "(none)"))
        return libtest.excerpt(self.result.stderr, max_lines=60) or self.result.describe_exit()


@dataclass
class Cargo:
    cargo: str = "cargo"
    develop: str | None = None
    nix: Nix = field(default_factory=Nix)
    cwd: Path = Path(".")
    timeout: float = 3600.0
    progress: LineCallback | None = None  # compile progress for the terminal (cargo's stderr)
    # `cargo metadata` per manifest, asked once per session: the check of the names before
    # anything builds, the rust.workspace expansion and discovery all read the same answer.
    _workspaces: dict[str | None, Workspace] = field(default_factory=dict, repr=False,
                                                     compare=False)
    _noted: set[str] = field(default_factory=set, repr=False, compare=False)

    def note(self, line: str) -> None:
        """Tell the terminal ``line`` once per session (the check and discovery both expand)."""
        if self.progress is not None and line not in self._noted:
            self._noted.add(line)
            self.progress(line)

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
        if manifest not in self._workspaces:
            self._workspaces[manifest] = self._ask_metadata(manifest)
        return self._workspaces[manifest]

    def _ask_metadata(self, manifest: str | None) -> Workspace:
        args = ["metadata", "--format-version", "1", "--no-deps", *self._manifest(manifest)]
        result = self.run(self.argv(*args))
        if not result.ok:
            raise CargoError(f"`{result.command}` failed ({result.describe_exit()}): "
                             f"{libtest.one_line(last_lines(result.stderr))}")
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

    def _selection(self, crate: str, selectors: Sequence[Selector], features: Sequence[str],
                   manifest: str | None) -> list[str]:
        args = [*self._manifest(manifest), "-p", crate]
        for kind, name in selectors:
            args += [FLAGS[kind]] if kind == LIB else [FLAGS[kind], name]
        if features:
            args += ["--features", ",".join(features)]
        return args

    def build_argv(self, crate: str, selectors: Sequence[Selector], features: Sequence[str], *,
                   manifest: str | None = None) -> list[str]:
        return self.argv("test", "--no-run", "--message-format=json",
                         *self._selection(crate, selectors, features, manifest))

    def build(self, crate: str, selectors: Sequence[Selector], features: Sequence[str], *,
              manifest: str | None = None) -> Build:
        """Compile ``selectors`` of ``crate`` with ``features``; a failed compile is a result."""
        build = self._build_once(crate, selectors, features, manifest=manifest)
        if (build.result is not None and build.result.ok) or len(selectors) == 1:
            return build
        # cargo stops scheduling after the first error, so a grouped call cannot say which of
        # the other binaries compile: ask for each one on its own (built ones are no-ops).
        merged = Build(command=build.command, result=build.result)
        for selector in selectors:
            alone = self._build_once(crate, [selector], features, manifest=manifest)
            if selector in alone.executables:
                merged.executables[selector] = alone.executables[selector]
            else:
                merged.errors[selector] = alone.failure(selector)
        return merged

    def _build_once(self, crate: str, selectors: Sequence[Selector], features: Sequence[str], *,
                    manifest: str | None) -> Build:
        argv = self.build_argv(crate, selectors, features, manifest=manifest)
        label = crate + (f" +{','.join(features)}" if features else "")
        result = self.run(argv, _compile_progress(self.progress, label=label))
        build = Build(command=shlex.join(argv), result=result)
        shared: list[str] = []
        for message in _json_lines(result.stdout):
            _absorb(message, crate, set(selectors), build, shared)
        build.shared_errors = "\n".join(dict.fromkeys(shared))
        return build

    # ----------------------------------------------------------------- environment

    def capture_env(self, crate: str, selectors: Sequence[Selector], features: Sequence[str], *,
                    manifest: str | None = None) -> dict[str, RunEnv]:
        """What ``cargo test`` gives each built test binary: its environment and working
        directory, recorded by a runner that cargo starts instead of the binary (keyed by
        the executable's path). A binary cargo did not hand to the runner (the user's own
        runner wins over ours) is missing from the result."""
        base = clean_env()
        with tempfile.TemporaryDirectory(prefix="choirci-env-") as tmp:
            out = Path(tmp) / "env.records"
            if Path("/proc/self/environ").exists() and Path("/bin/sh").exists():
                runner = ["/bin/sh", "-c", _DUMP_SH, str(out)]
            else:
                script = Path(tmp) / "dump.py"
                script.write_text(_DUMP_PY)
                runner = [sys.executable, "-I", "-S", str(script), str(out)]
            argv = self.argv("test", *self._selection(crate, selectors, features, manifest),
                             "--config", f"target.'cfg(all())'.runner={json.dumps(runner)}")
            result = proc.run(argv, cwd=self.cwd, env=base, timeout=self.timeout,
                              max_output=1 << 20)
            if not result.ok:
                raise CargoError(f"`{result.command}` failed ({result.describe_exit()}): "
                                 f"{libtest.one_line(last_lines(result.stderr))}")
            data = out.read_bytes() if out.exists() else b""
        found = {}
        for record in data.split(b"\0\0"):
            fields = [f.decode(errors="surrogateescape") for f in record.split(b"\0") if f]
            if len(fields) < 2:
                continue
            env = dict(entry.split("=", 1) for entry in fields[2:] if "=" in entry)
            found[fields[0]] = RunEnv(
                set={k: v for k, v in env.items() if base.get(k) != v},
                unset=tuple(k for k in base if k not in env),
                cwd=fields[1],
            )
        return found

    def doc_argv(self, crate: str, features: Sequence[str], manifest: str | None,
                 test_args: Sequence[str]) -> list[str]:
        """``cargo test --doc``: rustdoc compiles and runs the doc tests (cargo splits test
        arguments at spaces for rustdoc, so a doc test cannot be named exactly)."""
        return self.argv("test", "--doc", *self._selection(crate, (), features, manifest),
                         "--", *test_args)


def _json_lines(text: str) -> Iterator[dict[str, Any]]:
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                yield json.loads(line)
            except ValueError:
                continue


def _absorb(
    message: dict[str, Any], crate: str, wanted: set[Selector], build: Build, shared: list[str]
) -> None:
    target = message.get("target") or {}
    binary = _selector_of(target)
    ours = _package_name(message.get("package_id", "")) == crate
    if message.get("reason") == "compiler-artifact" and message.get("executable"):
        if ours and binary in wanted and (message.get("profile") or {}).get("test"):
            build.executables[binary] = message["executable"]
    elif message.get("reason") == "compiler-message":
        diagnostic = message.get("message") or {}
        if diagnostic.get("level") not in ("error", "error: internal compiler error"):
            return
        rendered = diagnostic.get("rendered") or diagnostic.get("message") or ""
        if ours and binary in wanted and binary[0] != LIB:
            build.errors[binary] = (build.errors.get(binary, "") + rendered).strip("\n")
        else:
            shared.append(rendered.strip("\n"))


def _selector_of(target: Mapping[str, Any]) -> Selector:
    kinds = target.get("kind", ())
    name = str(target.get("name", ""))
    for kind in ("test", "bin", "example", "bench"):
        if kind in kinds:
            return kind, name
    return (LIB, LIB) if is_lib(kinds) else ("", name)


def _package_name(package_id: str) -> str:
    """The name in a package id: ``path+file:///w/sandbox#0.1.0`` or ``sandbox 0.1.0 (...)``."""
    if " " in package_id:
        return package_id.split(" ", 1)[0]
    fragment = package_id.rsplit("#", 1)[-1]
    if "@" in fragment:
        return fragment.split("@", 1)[0]
    # `path+file:///w/sandbox#0.1.0`: the name is the directory (cargo omits it when equal).
    return package_id.rsplit("#", 1)[0].rstrip("/").rsplit("/", 1)[-1]


def last_lines(text: str, count: int = 3) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error")]
    return "; ".join((errors or lines)[-count:])


# --------------------------------------------------------------------------- test binaries


def _compile_progress(say: LineCallback | None, every: float = 2.0,
                      clock: Callable[[], float] = time.monotonic,
                      label: str = "") -> LineCallback | None:
    """Relay cargo's ``Compiling x`` lines, at most one per ``every`` seconds, naming what is
    being built (``cargo (sandbox +supervision_refactor): Finished ...``), and each
    ``Blocking waiting for file lock`` line.

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
        if not text.startswith(("Compiling", "Finished", "Blocking")):
            return
        now = clock()
        previous = last[0]
        # "Blocking waiting for file lock on build directory": another cargo (an editor's
        # rust-analyzer, a second run) holds the lock; said at once, or the wait looks hung.
        if text.startswith(("Finished", "Blocking")) or previous is None or \
                now - previous >= every:
            last[0] = now
            say(f"cargo ({label}): {text}" if label else f"cargo: {text}")

    return relay
