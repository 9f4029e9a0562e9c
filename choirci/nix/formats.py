"""Parsers for what the ``nix`` CLI prints, from Nix 2.8 (Debian 12) to current 2.2x/2.3x.

Every parser takes text and returns small frozen dataclasses; none runs a process. The
formats, with the versions that changed them (samples live in ``tests/data/nix/``):

``nix --version``
    ``nix (Nix) 2.8.0``; Determinate: ``nix (Determinate Nix 3.6.2) 2.29.0``;
    pre-releases: ``nix (Nix) 2.24.0pre20240801_dirty``; Lix: ``nix (Lix, like Nix) 2.91.1``.

``nix build --json [--dry-run]`` (stdout)
    A list ``[{"drvPath": P, "outputs": {"out": P, ...}}]``, one per installable; 2.13+ adds
    ``startTime``/``stopTime`` after a real build; outputs may be ``null`` for
    content-addressed derivations in a dry run. On 2.8 a failed build prints NOTHING on
    stdout, even with ``--keep-going``: per-installable paths must come from the dry run.

``nix path-info --json [--closure-size]`` (stdout)
    2.8-2.18: a list of objects each with ``path``; an invalid path is
    ``{"path": P, "valid": false}``. 2.19+: an object keyed by path (in the newest formats,
    with ``"version"`` and ``"storeDir"`` fields, possibly keyed by base name), an invalid
    path maps to ``null``. ``narHash`` is SRI (``sha256-...=``) or, in the newest format, a
    structured ``{"algorithm", "format", "hash"}``. ``ultimate`` is true only for paths
    built on this machine (absent or false when substituted).

The build plan (stderr of ``nix build [--dry-run]``)
    ``these 2 derivations will be built:`` / ``this derivation will be built:`` and
    ``these 3 paths will be fetched (1.2 MiB download, 5.0 MiB unpacked):`` /
    ``this path will be fetched (...)``, each followed by indented store paths.

Build failures (stderr of ``nix build``)
    2.8-2.2x: ``error: builder for '/nix/store/X.drv' failed with exit code 3;`` (``;``
    or end of line) and ``error: 1 dependencies of derivation '/nix/store/Y.drv' failed to
    build``; 2.2x closes with ``error: build of '/nix/store/X.drv^out', '...' failed``
    (every failed top-level derivation, output selector appended). 2.28+: ``error: Cannot
    build '/nix/store/X.drv'.`` followed by ``Reason: builder failed with exit code 3.``. All
    versions: ``error: hash mismatch in fixed-output derivation '/nix/store/F.drv':`` then
    ``specified: sha256-...`` and ``got: sha256-...`` (a vendoring FOD whose pinned hash is
    stale). Copies from caches read ``copying path '/nix/store/P' from 'https://...'...``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from choirci.nix.hashes import FormatError, normalize_hash, sri

STORE_DIR = "/nix/store"
_STORE_PATH = r"/[^\s'\"]+/[0-9a-df-np-sv-z]{32}-[^\s'\"]+"
_VERSION = re.compile(r"(\d+)\.(\d+)(?:\.(\d+))?")


# --------------------------------------------------------------------------- version


@dataclass(frozen=True, order=True)
class NixVersion:
    major: int
    minor: int
    patch: int = 0
    text: str = field(default="", compare=False)
    lix: bool = field(default=False, compare=False)

    def at_least(self, major: int, minor: int) -> bool:
        return (self.major, self.minor) >= (major, minor)

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"


def parse_version(text: str) -> NixVersion:
    """The version from ``nix --version``; the *last* number wins (Determinate prints two)."""
    first = text.strip().splitlines()[0] if text.strip() else ""
    found = list(_VERSION.finditer(first))
    if not found:
        raise FormatError(f"cannot read a version from `nix --version` output {first!r}")
    match = found[-1]
    major, minor, patch = (int(g) if g else 0 for g in match.groups())
    return NixVersion(major, minor, patch, text=first, lix="Lix" in first)


@dataclass(frozen=True)
class Features:
    """What this Nix was seen to support, learned by trying (never from the version alone).

    ``derivation_show``: ``nix derivation show`` exists (2.15+); else ``nix show-derivation``.
    Output shapes that changed across versions (``path-info --json`` as a list or an object,
    ``build --json`` with or without times) need no flag: each parser accepts all of them.
    """

    derivation_show: bool = True


_UNKNOWN_COMMAND = re.compile(r"'[\w-]+' is not a recognised command|unrecognised command")


def unknown_command(stderr: str) -> bool:
    """Nix said the subcommand does not exist (``error: 'derivation' is not a recognised
    command``): the probe's negative answer, as opposed to a failure of the command."""
    return _UNKNOWN_COMMAND.search(stderr) is not None


# --------------------------------------------------------------------------- build --json


@dataclass(frozen=True)
class BuiltPath:
    drv_path: str
    outputs: Mapping[str, str | None]
    start_time: int | None = None
    stop_time: int | None = None


def parse_build_json(text: str, store_dir: str = STORE_DIR) -> list[BuiltPath]:
    """``nix build --json`` stdout; empty output (2.8 after a failure) gives ``[]``."""
    if not text.strip():
        return []
    data = _load_json(text, "nix build --json")
    if not isinstance(data, list):
        raise FormatError(f"nix build --json: expected a list, got {type(data).__name__}")
    out = []
    for entry in data:
        if not isinstance(entry, dict) or "drvPath" not in entry:
            raise FormatError(f"nix build --json: entry without drvPath: {entry!r:.200}")
        outputs = entry.get("outputs") or {}
        out.append(
            BuiltPath(
                drv_path=_full(entry["drvPath"], store_dir),
                outputs={k: _full(v, store_dir) if v else None for k, v in outputs.items()},
                start_time=entry.get("startTime"),
                stop_time=entry.get("stopTime"),
            )
        )
    return out


# --------------------------------------------------------------------------- path-info --json


@dataclass(frozen=True)
class PathInfo:
    path: str
    nar_hash: str
    nar_size: int
    closure_size: int | None = None
    references: tuple[str, ...] = ()
    deriver: str | None = None
    ultimate: bool = False
    signatures: tuple[str, ...] = ()
    ca: str | None = None


def parse_path_info(text: str) -> dict[str, PathInfo | None]:
    """``nix path-info --json`` stdout in any known shape; invalid paths map to None."""
    data = _load_json(text, "nix path-info --json")
    if isinstance(data, list):
        entries: Iterable[tuple[str, Any]] = ((e.get("path", ""), e) for e in data)
        store_dir = STORE_DIR
    elif isinstance(data, dict):
        # The newest format wraps nothing but may carry storeDir per entry; keys can be
        # base names, so each key is completed with its entry's storeDir.
        entries = ((k, v) for k, v in data.items() if k not in ("version", "storeDir"))
        top_store = data.get("storeDir")
        store_dir = top_store if isinstance(top_store, str) else STORE_DIR
    else:
        raise FormatError(f"nix path-info --json: unexpected {type(data).__name__}")
    result: dict[str, PathInfo | None] = {}
    for key, entry in entries:
        entry_store = entry.get("storeDir", store_dir) if isinstance(entry, dict) else store_dir
        path = _full(key, entry_store)
        result[path] = _path_info(path, entry, entry_store)
    return result


def _path_info(path: str, entry: Any, store_dir: str) -> PathInfo | None:
    if entry is None or not isinstance(entry, dict) or entry.get("valid") is False:
        return None
    deriver = entry.get("deriver")
    return PathInfo(
        path=path,
        nar_hash=normalize_hash(entry.get("narHash")),
        nar_size=int(entry.get("narSize") or 0),
        closure_size=entry.get("closureSize"),
        references=tuple(_full(r, store_dir) for r in entry.get("references") or ()),
        deriver=_full(deriver, store_dir) if isinstance(deriver, str) else None,
        ultimate=bool(entry.get("ultimate", False)),
        signatures=tuple(_signature(s) for s in entry.get("signatures") or ()),
        ca=_ca(entry.get("ca")),
    )


def _signature(value: Any) -> str:
    if isinstance(value, dict):
        return f"{value.get('keyName', '')}:{value.get('sig', '')}"
    return str(value)


def _ca(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dict):
        return f"{value.get('method', '')}:{normalize_hash(value.get('hash'))}"
    return str(value)


# --------------------------------------------------------------------------- plan and failures


@dataclass(frozen=True)
class Plan:
    """What ``nix build`` said it will do: derivations to build, paths to fetch."""

    will_build: frozenset[str] = frozenset()
    will_fetch: frozenset[str] = frozenset()
    unknown: frozenset[str] = frozenset()


_PLAN_HEADERS = (
    ("will_build", re.compile(r"^(these \d+ derivations|this derivation) will be built:")),
    ("will_fetch", re.compile(r"^(these \d+ paths|this path) will be fetched")),
    ("unknown", re.compile(r"^don't know how to build these paths")),
)


def parse_plan(stderr: str) -> Plan:
    sets: dict[str, set[str]] = {"will_build": set(), "will_fetch": set(), "unknown": set()}
    current: set[str] | None = None
    for line in stderr.splitlines():
        header = next((name for name, rx in _PLAN_HEADERS if rx.match(line)), None)
        if header is not None:
            current = sets[header]
        elif current is not None and line.startswith("  ") and line.strip().startswith("/"):
            current.add(line.strip())
        else:
            current = None
    return Plan(**{k: frozenset(v) for k, v in sets.items()})


@dataclass(frozen=True)
class BuildFailure:
    drv_path: str
    reason: str  # "exit code 3", "dependency failed", ...


_FAILURE_PATTERNS = (
    re.compile(
        rf"builder for '(?P<drv>{_STORE_PATH})' failed (?P<reason>with exit code \d+|[^;]*)"
    ),
    re.compile(rf"Cannot build '(?P<drv>{_STORE_PATH})'"),
    re.compile(rf"\d+ dependencies of derivation '(?P<drv>{_STORE_PATH})' failed to build"),
    re.compile(rf"hash mismatch in fixed-output derivation '(?P<drv>{_STORE_PATH})'"),
)
# 2.2x's closing summary names every failed top-level derivation, with its output:
# `error: build of '/nix/store/a.drv^out', '/nix/store/b.drv^out' failed`.
_BUILD_OF = re.compile(r"build of (?P<paths>'[^']+'(?:, '[^']+')*) failed")
_EXIT_CODE = re.compile(r"exit code (\d+)")
DEPENDENCY_FAILED = "failed because a dependency failed"
UNEXPLAINED = "failed (Nix named no cause)"
_REASON = re.compile(r"^\s*Reason: (?P<reason>.+?)\.?$")
_SPECIFIED = re.compile(r"^\s*specified:\s*(?P<hash>\S+)")
_GOT = re.compile(r"^\s*got:\s*(?P<hash>\S+)")


def parse_failures(stderr: str) -> dict[str, BuildFailure]:
    """Derivations that failed, with the reason Nix gave (the first explained one wins per
    drv; a drv only named by the closing summary fails with :data:`UNEXPLAINED`)."""
    failures: dict[str, BuildFailure] = {}
    summary: list[str] = []
    lines = stderr.splitlines()
    for index, line in enumerate(lines):
        for number, pattern in enumerate(_FAILURE_PATTERNS):
            match = pattern.search(line)
            if match is None or _drv(match["drv"]) in failures:
                continue
            drv = _drv(match["drv"])
            failures[drv] = BuildFailure(drv, _reason(number, match, lines, index))
        listed = _BUILD_OF.search(line)
        if listed is not None:
            summary += [_drv(path) for path in re.findall(r"'([^']+)'", listed["paths"])]
    for drv in summary:
        failures.setdefault(drv, BuildFailure(drv, UNEXPLAINED))
    return failures


def _drv(path: str) -> str:
    """A derivation path without the output selector Nix 2.2x appends (``X.drv^out``)."""
    return path.split("^", 1)[0]


def _reason(number: int, match: re.Match[str], lines: list[str], index: int) -> str:
    """Normalised to "failed with exit code N" (or Nix's own words when it gave no code)."""
    if number == 0:
        text = match["reason"]
    elif number == 1:
        following = _REASON.match(lines[index + 1]) if index + 1 < len(lines) else None
        text = following["reason"] if following else ""
    elif number == 3:
        return _hash_mismatch(lines[index + 1:index + 4])
    else:
        return DEPENDENCY_FAILED
    if "dependenc" in text:  # 2.19+: "Reason: 1 dependency failed."
        return DEPENDENCY_FAILED
    code = _EXIT_CODE.search(text)
    if code:
        return f"failed with exit code {code[1]}"
    text = text.strip().rstrip(";.")
    return f"failed: {text}" if text else "failed"


def _hash_mismatch(following: list[str]) -> str:
    """``specified: H`` / ``got: H`` under the error: the fix is to pin the hash it got."""
    specified = next((m["hash"] for line in following if (m := _SPECIFIED.match(line))), None)
    got = next((m["hash"] for line in following if (m := _GOT.match(line))), None)
    if specified and got:
        return (f"failed: hash mismatch in fixed-output derivation (specified {sri(specified)}, "
                f"got {sri(got)}; if the new content is expected, pin {sri(got)})")
    return "failed: hash mismatch in fixed-output derivation"


_COPIED = re.compile(rf"copying path '(?P<path>{_STORE_PATH})' from '(?P<source>[^']+)'")


def parse_copies(stderr: str) -> dict[str, str]:
    """Store path -> the substituter it was copied from, as announced on stderr."""
    return {m["path"]: m["source"] for m in _COPIED.finditer(stderr)}


_BUILDING = re.compile(rf"^building '(?P<drv>{_STORE_PATH})'", re.MULTILINE)


def parse_building(stderr: str) -> frozenset[str]:
    """Derivations Nix announced it started building."""
    return frozenset(m["drv"] for m in _BUILDING.finditer(stderr))


_MISSING_ATTR = re.compile(
    r"does not provide attribute (?P<attrs>'[^']+'(?:, '[^']+')*(?: or '[^']+')?)"
)


def missing_attribute(stderr: str) -> str | None:
    """The first attribute path Nix could not find in a flake, if that is the error."""
    match = _MISSING_ATTR.search(stderr)
    return match["attrs"].split("'")[1] if match else None


def parse_drv_closure(text: str, store_dir: str = STORE_DIR) -> frozenset[str]:
    """``nix derivation show -r`` / ``nix show-derivation -r``: the drv paths it lists."""
    data = _load_json(text, "nix derivation show")
    if isinstance(data, dict) and isinstance(data.get("derivations"), dict):
        data = data["derivations"]  # the newest format wraps the map
    if not isinstance(data, dict):
        raise FormatError("nix derivation show: expected an object keyed by derivation")
    return frozenset(_full(k, store_dir) for k in data if k not in ("version", "storeDir"))


# --------------------------------------------------------------------------- helpers


def _load_json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        where = f"{exc.msg} at char {exc.pos}"
        raise FormatError(f"{what}: not JSON ({where}): {text[:120]!r}") from None


def _full(path: str, store_dir: str) -> str:
    """Newest formats print base names (``<hash>-name``); complete them with the store dir."""
    return path if path.startswith("/") else f"{store_dir.rstrip('/')}/{path}"
