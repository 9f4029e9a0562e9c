"""The Nix adapter: every ``nix`` command choirci runs is built here and run through proc.

Works from Nix 2.8 (Debian 12) to current releases (tested on 2.8 and Debian 13's 2.26). The
version is read once and recorded, but never decides a behaviour on its own: the one
subcommand that was renamed (``show-derivation`` -> ``derivation show``) is probed, and every
parser accepts all the output shapes it knows. Commands are argv lists; ``nix-command
flakes`` are enabled per call (``--extra-experimental-features``), so a host whose nix.conf
lacks them still works. ``nix.extra_args`` go on EVERY call that touches a store or
evaluates (a ``--store`` there must be honoured by queries as well as builds); the log format
choirci parses is pinned after them, so a user's ``--log-format`` changes nothing it reads.
Never imports pytest.
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
    NixVersion,
    PathInfo,
    parse_build_json,
    parse_drv_closure,
    parse_path_info,
    parse_version,
    unknown_command,
)
from choirci.nix.hashes import FormatError
from choirci.proc import CommandResult, LineCallback

EXPERIMENTAL = ("--extra-experimental-features", "nix-command flakes")
# Subcommands that take a second word (`nix store delete`): extra_args go after both words.
_GROUPS = frozenset({"store", "derivation", "flake", "profile", "key", "nar", "hash",
                     "registry", "realisation"})
# What the build and dry-run stderr parsers read, whatever `--log-format` the user put in
# nix.extra_args (the last one wins): Nix's default, which on a pipe prints plain lines
# (`building '...'`, `name> log line`). `raw` would drop the `name>` prefixes on 2.2x and
# `internal-json` turn every line into JSON. (2.8's `nix` ignores --log-format: it always
# prints these lines.)
PINNED_LOG_FORMAT = ("--log-format", "bar-with-logs")
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
    go after the subcommand of every call but ``nix --version``.
    """

    binary: str = "nix"
    extra_args: tuple[str, ...] = ()
    cwd: Path | None = None
    env: Mapping[str, str] | None = None
    build_timeout: float = 3600.0
    _version: NixVersion | None = field(default=None, init=False, repr=False)
    _features: Features | None = field(default=None, init=False, repr=False)

    # ----------------------------------------------------------------- building blocks

    @classmethod
    def from_settings(cls, settings: NixSettings, cwd: Path | None,
                      store: str | None = None) -> Nix:
        """The Nix that the config's ``nix:`` section describes (``store``: ``--store URI``)."""
        store_args = ("--store", store) if store else ()
        return cls(binary=settings.binary, extra_args=(*settings.extra_args, *store_args),
                   cwd=cwd, build_timeout=settings.build_timeout)

    def argv(self, *args: str) -> list[str]:
        """``nix <subcommand> <extra_args> <args>`` (a two-word subcommand stays whole)."""
        words = 2 if args and args[0] in _GROUPS and len(args) > 1 else 1
        return [self.binary, *EXPERIMENTAL, *args[:words], *self.extra_args, *args[words:]]

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
        """What this Nix was seen to do so far (probed by the calls that depend on it)."""
        return self._features or Features()

    # ----------------------------------------------------------------- build

    def build_argv(self, installables: Sequence[str], *, dry_run: bool = False) -> list[str]:
        """The batched build, as CI runs it (``--json``, one call, ``--keep-going``)."""
        flags = ["--dry-run"] if dry_run else ["--keep-going", "--print-build-logs"]
        return self.argv("build", *PINNED_LOG_FORMAT, "--json", "--no-link", *flags,
                         *installables)

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
        result = self._derivation_show(drv_path)
        if not result.ok:
            return frozenset({drv_path})
        try:
            return parse_drv_closure(result.stdout) | {drv_path}
        except FormatError:
            return frozenset({drv_path})

    def _derivation_show(self, drv_path: str) -> CommandResult:
        """``nix derivation show -r`` (2.15+), else ``nix show-derivation -r``: tried, not
        guessed from the version; the answer is remembered."""
        if self._features is None or self._features.derivation_show:
            result = self.run(self.argv("derivation", "show", "--recursive", drv_path))
            if result.ok or not unknown_command(result.stderr):
                self._features = Features(derivation_show=True)
                return result
            self._features = Features(derivation_show=False)
        return self.run(self.argv("show-derivation", "--recursive", drv_path))

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
        return self.run(self.argv("store", "delete", *paths))

    def verify(self, paths: Sequence[str]) -> CommandResult:
        """``nix store verify --no-trust``: re-hash ``paths`` (modified ones on stderr)."""
        return self.run(self.argv("store", "verify", "--no-trust", *paths),
                        timeout=self.build_timeout)

    def diff_closures(self, before: str, after: str) -> CommandResult:
        return self.run(self.argv("store", "diff-closures", before, after))

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
