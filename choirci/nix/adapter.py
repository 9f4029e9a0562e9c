"""The Nix adapter: every ``nix`` command choirci runs is built here and run through proc.

Works from Nix 2.8 (Debian 12) to current releases: the version is read once and the few
differences (see :class:`~choirci.nix.formats.Features`) are decided from it. Commands are
argv lists; ``nix-command flakes`` are enabled per call (``--extra-experimental-features``),
so a host whose nix.conf lacks them still works. Never imports pytest.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from choirci import proc
from choirci.config import NixSettings
from choirci.errors import ChoirciError
from choirci.nix.formats import (
    BuiltPath,
    Features,
    FormatError,
    NixVersion,
    PathInfo,
    parse_build_json,
    parse_drv_closure,
    parse_path_info,
    parse_version,
)
from choirci.proc import CommandResult, LineCallback

EXPERIMENTAL = ("--extra-experimental-features", "nix-command flakes")
QUERY_TIMEOUT = 300.0  # evaluation of a cold flake may fetch inputs; queries are otherwise instant
LOG_TAIL_LINES = 60
LOG_TAIL_BYTES = 8 * 1024
T = TypeVar("T")


class NixError(ChoirciError):
    """A nix command the harness relies on (not a build) failed."""


@dataclass
class Nix:
    """One nix binary, with the settings every call shares.

    ``extra_args`` (``nix.extra_args`` in choirci.yaml, e.g. ``--builders ssh-ng://...``)
    go after the subcommand of the calls that build or query a store.
    """

    binary: str = "nix"
    extra_args: tuple[str, ...] = ()
    cwd: Path | None = None
    env: Mapping[str, str] | None = None
    build_timeout: float = 3600.0
    _version: NixVersion | None = field(default=None, init=False, repr=False)

    # ----------------------------------------------------------------- building blocks

    @classmethod
    def from_settings(cls, settings: NixSettings, cwd: Path | None,
                      store: str | None = None) -> Nix:
        """The Nix that the config's ``nix:`` section describes (``store``: ``--store URI``)."""
        store_args = ("--store", store) if store else ()
        return cls(binary=settings.binary, extra_args=(*settings.extra_args, *store_args),
                   cwd=cwd, build_timeout=settings.build_timeout)

    def argv(self, *args: str, extra: bool = True) -> list[str]:
        extras = self.extra_args if extra else ()
        return [self.binary, *EXPERIMENTAL, *args[:1], *extras, *args[1:]]

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float = QUERY_TIMEOUT,
        on_stderr: LineCallback | None = None,
        cwd: Path | None = None,
    ) -> CommandResult:
        return proc.run(
            argv,
            cwd=cwd or self.cwd,
            env=self.env,
            timeout=timeout,
            on_stderr=on_stderr,
            setting="nix.binary in choirci.yaml",
        )

    def available(self) -> bool:
        return proc.which(self.binary, self.env) is not None

    # ----------------------------------------------------------------- version

    def version(self) -> NixVersion:
        if self._version is None:
            result = self.run([self.binary, "--version"], timeout=60)
            if not result.ok:
                raise NixError(f"`{result.command}` failed ({result.describe_exit()}): "
                               f"{_last_line(result.stderr)}")
            try:
                self._version = parse_version(result.stdout)
            except FormatError as exc:
                raise NixError(str(exc)) from None
        return self._version

    def features(self) -> Features:
        return Features.of(self.version())

    # ----------------------------------------------------------------- build

    def build_argv(self, installables: Sequence[str], *, dry_run: bool = False) -> list[str]:
        """The batched build, as CI runs it (``--json``, one call, ``--keep-going``)."""
        flags = ["--dry-run"] if dry_run else ["--keep-going", "--print-build-logs"]
        return self.argv("build", "--json", "--no-link", *flags, *installables)

    def build(
        self, installables: Sequence[str], *, on_stderr: LineCallback | None = None
    ) -> tuple[CommandResult, list[BuiltPath]]:
        """Build everything in ONE call. A failed build is a result, not an exception."""
        result = self.run(self.build_argv(installables), timeout=self.build_timeout,
                          on_stderr=on_stderr)
        return result, _parsed(parse_build_json, result) if result.stdout.strip() else []

    def dry_run(self, installables: Sequence[str]) -> tuple[CommandResult, list[BuiltPath]]:
        """Evaluate and plan without building: drv/out paths on stdout, the plan on stderr."""
        result = self.run(self.build_argv(installables, dry_run=True))
        return result, _parsed(parse_build_json, result) if result.ok else []

    # ----------------------------------------------------------------- queries

    def path_info(
        self, paths: Sequence[str], *, closure_size: bool = False
    ) -> dict[str, PathInfo | None]:
        """Store truth for ``paths`` (each maps to None when not valid). Never builds."""
        if not paths:
            return {}
        flags = ["--json", *(["--closure-size"] if closure_size else [])]
        result = self.run(self.argv("path-info", *flags, *paths))
        if not result.ok:
            raise NixError(f"`{result.command}` failed ({result.describe_exit()}): "
                           f"{_last_line(result.stderr)}")
        info = _parsed(parse_path_info, result)
        return {path: info.get(path) for path in paths}

    def drv_closure(self, drv_path: str) -> frozenset[str]:
        """All derivations ``drv_path`` depends on (itself included); empty if unknown."""
        sub = ("derivation", "show") if self.features().derivation_show else ("show-derivation",)
        result = self.run([self.binary, *EXPERIMENTAL, *sub, "--recursive", drv_path])
        if not result.ok:
            return frozenset({drv_path})
        try:
            return parse_drv_closure(result.stdout) | {drv_path}
        except FormatError:
            return frozenset({drv_path})

    def log_tail(self, drv_path: str) -> str | None:
        """The last lines of a derivation's build log (bounded), or None if Nix kept none."""
        result = self.run(self.argv("log", drv_path))
        if not result.ok or not result.stdout.strip():
            return None
        return tail(result.stdout)

    # ----------------------------------------------------------------- store and shells

    def copy(self, paths: Sequence[str], *, to: str, no_check_sigs: bool = False) -> CommandResult:
        flags = ["--to", to, *(["--no-check-sigs"] if no_check_sigs else [])]
        return self.run(self.argv("copy", *flags, *paths), timeout=self.build_timeout)

    def delete(self, paths: Sequence[str]) -> CommandResult:
        """``nix store delete``: refuses (non-zero) when a path is still alive."""
        return self.run([self.binary, *EXPERIMENTAL, "store", "delete", *paths])

    def develop_argv(self, shell: str, command: Sequence[str]) -> list[str]:
        """``nix develop SHELL --command ARGV...`` (the grind-check loop)."""
        return [*self.argv("develop", shell), "--command", *command]


def tail(text: str, lines: int = LOG_TAIL_LINES, limit: int = LOG_TAIL_BYTES) -> str:
    """The last ``lines`` lines of ``text``, cut from the front to at most ``limit`` bytes."""
    kept = text.rstrip("\n").splitlines()[-lines:]
    out = "\n".join(kept)
    encoded = out.encode("utf-8", errors="replace")
    if len(encoded) > limit:
        out = "[...]" + encoded[-limit:].decode("utf-8", errors="replace")
    return out


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else "no output"


def _parsed(parser: Callable[[str], T], result: CommandResult) -> T:
    try:
        return parser(result.stdout)
    except FormatError as exc:
        raise NixError(f"{exc} (from `{shlex.join(result.argv)}`)") from None
