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
    2.8-2.18: ``error: builder for '/nix/store/X.drv' failed with exit code 3;`` (``;``
    or end of line) and ``error: 1 dependencies of derivation '/nix/store/Y.drv' failed to
    build``. 2.19+: ``error: Cannot build '/nix/store/X.drv'.`` followed by
    ``Reason: builder failed with exit code 3.``. Copies from caches read
    ``copying path '/nix/store/P' from 'https://cache.example'...``.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

STORE_DIR = "/nix/store"
_STORE_PATH = r"/[^\s'\"]+/[0-9a-df-np-sv-z]{32}-[^\s'\"]+"
_VERSION = re.compile(r"(\d+)\.(\d+)(?:\.(\d+))?")


class FormatError(ValueError):
    """Nix printed something this parser does not understand (a harness problem)."""


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
    """What this Nix can do, decided from its version (flags we never rely on blindly)."""

    print_out_paths: bool  # `nix build --print-out-paths`: 2.9+
    path_info_object: bool  # `path-info --json` keyed by path: 2.19+ (Lix keeps the list)
    derivation_show: bool  # `nix derivation show` (2.15+), else `nix show-derivation`

    @classmethod
    def of(cls, version: NixVersion) -> Features:
        if version.lix:
            # Lix forked from 2.18 and numbers itself 2.9x: judge it by what it kept.
            return cls(print_out_paths=True, path_info_object=False, derivation_show=True)
        return cls(
            print_out_paths=version.at_least(2, 9),
            path_info_object=version.at_least(2, 19),
            derivation_show=version.at_least(2, 15),
        )


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


def normalize_hash(value: Any) -> str:
    """A narHash as SRI text (``sha256-<base64>``), whichever shape Nix printed."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "hash" in value:
        algorithm = value.get("algorithm", "sha256")
        digest, fmt = str(value["hash"]), value.get("format", "base64")
        if fmt == "base64":
            return f"{algorithm}-{digest}"
        if fmt == "base16":
            return f"{algorithm}-{base64.b64encode(bytes.fromhex(digest)).decode()}"
        return f"{algorithm}:{digest}"
    raise FormatError(f"nix path-info --json: unreadable narHash {value!r}")


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
    re.compile(rf"build of '(?P<drv>{_STORE_PATH})' failed"),
)
_EXIT_CODE = re.compile(r"exit code (\d+)")
DEPENDENCY_FAILED = "failed because a dependency failed"
_REASON = re.compile(r"^\s*Reason: (?P<reason>.+?)\.?$")


def parse_failures(stderr: str) -> dict[str, BuildFailure]:
    """Derivations that failed, with the reason Nix gave (first one wins per drv)."""
    failures: dict[str, BuildFailure] = {}
    lines = stderr.splitlines()
    for index, line in enumerate(lines):
        for number, pattern in enumerate(_FAILURE_PATTERNS):
            match = pattern.search(line)
            if match is None or match["drv"] in failures:
                continue
            reason = _reason(number, match, lines, index)
            failures[match["drv"]] = BuildFailure(match["drv"], reason)
    return failures


def _reason(number: int, match: re.Match[str], lines: list[str], index: int) -> str:
    """Normalised to "failed with exit code N" (or Nix's own words when it gave no code)."""
    if number == 0:
        text = match["reason"]
    elif number == 1:
        following = _REASON.match(lines[index + 1]) if index + 1 < len(lines) else None
        text = following["reason"] if following else ""
    else:
        return DEPENDENCY_FAILED if number == 2 else "failed"
    if "dependenc" in text:  # 2.19+: "Reason: 1 dependency failed."
        return DEPENDENCY_FAILED
    code = _EXIT_CODE.search(text)
    if code:
        return f"failed with exit code {code[1]}"
    text = text.strip().rstrip(";.")
    return f"failed: {text}" if text else "failed"


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
