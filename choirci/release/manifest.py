"""The release manifest: which exact Nix store paths a commit promotes, in two formats.

JSON (schema ``choirci/release-manifest``, version 1) is the full record: release SHA, short
SHA, creation time, repo root, ``git_dirty``, Nix version and, per closure, its installable,
drv, binary and outputs (path, narHash, narSize, closure size); see
``tests/data/manifest/release.json``. Every output in a JSON manifest has its narHash. The
``.env`` form is what ChoirOS's ``build-release-manifest.sh`` writes and
``apply-release-manifest.sh`` sources: exactly the 11 :data:`ENV_KEYS`, unquoted, values
expanded. It has no hashes, so a manifest read from a
``.env`` can only be checked for presence. :func:`load` reads either. Everything here is
pure; the command module runs git and Nix.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from choirci.errors import ChoirciError
from choirci.evidence import atomic

SCHEMA = "choirci/release-manifest"
VERSION = 1
STORE_PREFIX = "/nix/store/"
SHA = re.compile(r"^[0-9a-f]{40}$")

# closure name -> (.env key prefix, binary inside the closure), as the real scripts use them.
CLASSIC: dict[str, tuple[str, str]] = {
    "sandbox": ("SANDBOX", "bin/sandbox"),
    "hypervisor": ("HYPERVISOR", "bin/hypervisor"),
    "desktop": ("DESKTOP", "bin/dioxus-desktop"),
}
ENV_KEYS = (
    "RELEASE_SHA", "RELEASE_SHORT_SHA", "RELEASE_CREATED_AT", "REPO_ROOT", "GIT_DIRTY",
    "SANDBOX_PATH", "HYPERVISOR_PATH", "DESKTOP_PATH",
    "SANDBOX_BIN", "HYPERVISOR_BIN", "DESKTOP_BIN",
)


class ManifestError(ChoirciError):
    """A manifest file is unreadable or cannot be written in the requested form."""


@dataclass(frozen=True)
class StorePath:
    output: str
    path: str
    nar_hash: str | None = None
    nar_size: int | None = None
    closure_size: int | None = None


@dataclass(frozen=True)
class ClosureRecord:
    name: str
    outputs: tuple[StorePath, ...]
    installable: str | None = None
    drv_path: str | None = None
    bin: str | None = None  # relative to the main output, e.g. "bin/sandbox"

    @property
    def main(self) -> StorePath:
        return next((o for o in self.outputs if o.output == "out"), self.outputs[0])

    @property
    def store_path(self) -> str:
        return self.main.path

    @property
    def bin_path(self) -> str | None:
        return f"{self.store_path}/{self.bin}" if self.bin else None

    def holds(self, path: str) -> bool:
        """Is ``path`` the main output or a file inside it?"""
        return path == self.store_path or path.startswith(self.store_path + "/")


@dataclass(frozen=True)
class Manifest:
    release_sha: str
    short_sha: str
    created_at: str
    repo_root: str
    git_dirty: bool
    closures: tuple[ClosureRecord, ...]
    nix_version: str | None = None
    source: str = field(default="json", compare=False)  # the format it was read from

    def closure(self, name: str) -> ClosureRecord | None:
        return next((c for c in self.closures if c.name == name), None)

    @property
    def has_hashes(self) -> bool:
        return all(o.nar_hash for c in self.closures for o in c.outputs)


# --------------------------------------------------------------------------- JSON


def to_json(manifest: Manifest) -> str:
    unhashed = [f"{c.name}.{o.output}" for c in manifest.closures for o in c.outputs
                if not o.nar_hash]
    if unhashed:
        raise ManifestError(f"no narHash for {', '.join(unhashed)}, and a .json manifest records "
                            "one per output (a .env has none: use the .json written beside it)")
    data = {
        "schema": SCHEMA,
        "version": VERSION,
        "release_sha": manifest.release_sha,
        "release_short_sha": manifest.short_sha,
        "created_at": manifest.created_at,
        "repo_root": manifest.repo_root,
        "git_dirty": manifest.git_dirty,
        "nix_version": manifest.nix_version,
        "closures": [_closure_json(c) for c in manifest.closures],
    }
    return json.dumps(data, indent=2) + "\n"


def _closure_json(closure: ClosureRecord) -> dict[str, Any]:
    return {
        "name": closure.name,
        "installable": closure.installable,
        "drv_path": closure.drv_path,
        "bin": closure.bin,
        "outputs": [vars(o).copy() for o in closure.outputs],
    }


def from_json(text: str, where: str) -> Manifest:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ManifestError(f"{where}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    top = _obj(data, where, "top level")
    if top.get("schema") != SCHEMA or top.get("version") != VERSION:
        raise _bad(where, "schema", f"expected {SCHEMA!r} version {VERSION}, got "
                   f"{top.get('schema')!r} version {top.get('version')!r}")
    _check(isinstance(top.get("git_dirty"), bool), where, "git_dirty", "expected true or false")
    _check(isinstance(top.get("release_sha"), str) and bool(SHA.match(top["release_sha"])),
           where, "release_sha", "expected a 40-hex commit SHA")
    closures = _items(top.get("closures"), where, "closures")
    nix_version = top.get("nix_version")
    return Manifest(
        release_sha=top["release_sha"],
        short_sha=_text(top, "release_short_sha", where, ""),
        created_at=_text(top, "created_at", where, ""),
        repo_root=_text(top, "repo_root", where, ""),
        git_dirty=top["git_dirty"],
        nix_version=nix_version if isinstance(nix_version, str) else None,
        closures=tuple(_closure(c, where, f"closures[{i}]") for i, c in enumerate(closures)),
        source="json",
    )


def _bad(where: str, path: str, message: str) -> ManifestError:
    return ManifestError(f"{where}: {path}: {message}; rewrite it with `choirci manifest build`")


def _check(ok: bool, where: str, path: str, message: str) -> None:
    if not ok:
        raise _bad(where, path, message)


def _obj(value: Any, where: str, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _bad(where, path, "expected an object")
    return value


def _items(value: Any, where: str, path: str) -> list[Any]:
    if not isinstance(value, list) or not value:
        raise _bad(where, path, "expected a non-empty list")
    return value


def _text(entry: Mapping[str, Any], key: str, where: str, path: str) -> str:
    value = entry.get(key)
    if not isinstance(value, str) or not value:
        name = f"{path}.{key}" if path else key
        raise _bad(where, name, f"expected a non-empty string, got {value!r}")
    return value


def _closure(value: Any, where: str, path: str) -> ClosureRecord:
    entry = _obj(value, where, path)
    name = _text(entry, "name", where, path)
    outputs = _items(entry.get("outputs"), where, f"{path}.outputs")
    return ClosureRecord(
        name=name,
        installable=entry.get("installable"),
        drv_path=entry.get("drv_path"),
        bin=entry.get("bin"),
        outputs=tuple(_output(o, where, f"{path}.outputs[{i}]", name)
                      for i, o in enumerate(outputs)),
    )


def _output(value: Any, where: str, path: str, closure: str) -> StorePath:
    entry = _obj(value, where, path)
    store_path = _text(entry, "path", where, path)
    _check(store_path.startswith(STORE_PREFIX), where, f"{path}.path",
           f"expected a /nix/store path, got {store_path!r}")
    output = _text(entry, "output", where, path)
    nar_hash = entry.get("nar_hash")
    # Without it, verify could only check presence: a .json that lost it is bad input.
    _check(isinstance(nar_hash, str) and bool(nar_hash), where, f"{path}.nar_hash",
           f"closure {closure!r} output {output!r} has no narHash (got {nar_hash!r})")
    return StorePath(
        output=output,
        path=store_path,
        nar_hash=nar_hash,
        nar_size=entry.get("nar_size"),
        closure_size=entry.get("closure_size"),
    )


# --------------------------------------------------------------------------- .env


def env_problem(names: list[str] | tuple[str, ...]) -> str | None:
    """Why closures named ``names`` cannot be written as the 11-key .env (None: they can)."""
    missing = [name for name in CLASSIC if name not in names]
    if not missing:
        return None
    return (f"the .env manifest needs closures named sandbox, hypervisor and desktop; "
            f"missing: {', '.join(repr(m) for m in missing)} (configure them under closures: "
            "in choirci.yaml and select them with --closure), or pass --json-only")


def to_env(manifest: Manifest) -> str:
    problem = env_problem([c.name for c in manifest.closures])
    if problem:
        raise ManifestError(problem)
    values = {
        "RELEASE_SHA": manifest.release_sha,
        "RELEASE_SHORT_SHA": manifest.short_sha,
        "RELEASE_CREATED_AT": manifest.created_at,
        "REPO_ROOT": manifest.repo_root,
        "GIT_DIRTY": "true" if manifest.git_dirty else "false",
    }
    for name, (prefix, binary) in CLASSIC.items():
        path = manifest.closure(name).store_path  # type: ignore[union-attr]
        values[f"{prefix}_PATH"] = path
        values[f"{prefix}_BIN"] = f"{path}/{binary}"
    # shlex.quote leaves plain values (all but an odd REPO_ROOT) unquoted, like the real file.
    return "".join(f"{key}={shlex.quote(values[key])}\n" for key in ENV_KEYS)


_ENV_LINE = re.compile(r"^(?:export\s+)?(?P<key>[A-Za-z_][A-Za-z0-9_]*)=(?P<value>.*)$")
_VAR = re.compile(r"\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)\}|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))")


def parse_env(text: str, where: str) -> dict[str, str]:
    """``KEY=VALUE`` lines as a shell would read them (quotes, ``${KEY}`` of earlier keys)."""
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = _ENV_LINE.match(stripped)
        if match is None:
            raise ManifestError(f"{where}:{number}: expected KEY=VALUE, got {stripped[:60]!r}")
        values[match["key"]] = _env_value(match["value"], values, f"{where}:{number}")
    return values


def _env_value(raw: str, known: Mapping[str, str], where: str) -> str:
    def expand(match: re.Match[str]) -> str:
        name = match["braced"] or match["bare"]
        if name not in known:
            raise ManifestError(f"{where}: ${name} is not defined above this line")
        return known[name]

    # Single-quoted text is literal in a shell; everything else expands earlier keys.
    if not (raw.startswith("'") and raw.endswith("'")):
        raw = _VAR.sub(expand, raw)
    try:
        parts = shlex.split(raw, comments=True)
    except ValueError as exc:
        raise ManifestError(f"{where}: cannot read the value ({exc}); fix the quoting") from None
    if len(parts) > 1:
        raise ManifestError(f"{where}: the value has unquoted spaces; quote it")
    return parts[0] if parts else ""


def from_env(text: str, where: str) -> Manifest:
    values = parse_env(text, where)
    missing = [key for key in ENV_KEYS if not values.get(key)]
    if missing:
        raise ManifestError(f"{where}: missing {', '.join(missing)}; a release .env has the "
                            "11 keys written by `choirci manifest build`")
    if not SHA.match(values["RELEASE_SHA"]):
        raise ManifestError(f"{where}: RELEASE_SHA={values['RELEASE_SHA']!r} is not a 40-hex "
                            "commit SHA")
    if values["GIT_DIRTY"] not in ("true", "false"):
        raise ManifestError(f"{where}: GIT_DIRTY must be true or false, got "
                            f"{values['GIT_DIRTY']!r}")
    return Manifest(
        release_sha=values["RELEASE_SHA"],
        short_sha=values["RELEASE_SHORT_SHA"],
        created_at=values["RELEASE_CREATED_AT"],
        repo_root=values["REPO_ROOT"],
        git_dirty=values["GIT_DIRTY"] == "true",
        closures=tuple(_env_closure(name, values, where) for name in CLASSIC),
        source="env",
    )


def _env_closure(name: str, values: Mapping[str, str], where: str) -> ClosureRecord:
    prefix, _ = CLASSIC[name]
    path, binary = values[f"{prefix}_PATH"].rstrip("/"), values[f"{prefix}_BIN"]
    if not path.startswith(STORE_PREFIX):
        raise ManifestError(f"{where}: {prefix}_PATH={path!r} is not a /nix/store path")
    if not binary.startswith(path + "/"):
        raise ManifestError(f"{where}: {prefix}_BIN={binary!r} is not inside "
                            f"{prefix}_PATH={path!r}")
    return ClosureRecord(name=name, outputs=(StorePath("out", path),),
                         bin=binary[len(path) + 1:])


# --------------------------------------------------------------------------- files


def load(path: Path) -> Manifest:
    """A manifest from a ``.json`` or ``.env`` file (decided by content, not by name)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ManifestError(f"{path}: no such manifest; pass the path that "
                            "`choirci manifest build` printed") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{path}: cannot read the manifest ({exc})") from None
    if text.lstrip().startswith("{"):
        return from_json(text, str(path))
    return from_env(text, str(path))


def write(manifest: Manifest, *, env_path: Path | None, json_path: Path | None) -> list[Path]:
    """Write the requested forms (the .env first fails early if it cannot be written)."""
    written = []
    if env_path is not None:
        written.append(atomic.write_text(env_path, to_env(manifest)))
    if json_path is not None:
        written.append(atomic.write_text(json_path, to_json(manifest)))
    return written
