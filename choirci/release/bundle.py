"""The signed evidence bundle: what a signature on an evidence dir states, as plain data.

``choirci release sign`` writes ``<evidence>/signed/evidence.json`` and signs it with SSH
(``signed/evidence.json.sig``). The bundle (schema ``choirci.signed-evidence`` v1)::

    {"schema": "choirci.signed-evidence", "version": 1,
     "gate": "release", "verdict": "pass", "commit": "<40 hex>",
     "record_sha256": "<sha256 of choirci.json>", "gate_sha256": "<the gate definition's>",
     "gates_sha256": null,                          # or a custom gates dir's digest
     "signed_at": "2026-...Z",
     "nix_key": "grind-1:<public key>",             # the key the store paths were signed with
     "closures": [{"name", "output", "path", "nar_hash"}, ...],
     "signed_paths": <paths signed: the closures with their dependencies>,
     "files": {"choirci.json": "<sha256>", "gates/release.json": "<sha256>", ...}}

``files`` lists every regular file of the evidence dir (relative, ``/``-separated) except
``signed/`` itself; a symlink or other special file is refused when signing (its target is
not evidence anyone can hash). Pure: no process, no pytest.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from choirci.errors import ChoirciError

SCHEMA = "choirci.signed-evidence"
VERSION = 1
SIGNED_DIR = "signed"
BUNDLE = f"{SIGNED_DIR}/evidence.json"
SIGNATURE = f"{BUNDLE}.sig"
SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class SignedClosure:
    name: str
    output: str
    path: str
    nar_hash: str


@dataclass(frozen=True)
class Bundle:
    gate: str
    verdict: str
    commit: str
    record_sha256: str
    gate_sha256: str | None
    gates_sha256: str | None  # a custom gates dir's digest; None for the bundled gates
    signed_at: str
    nix_key: str
    closures: tuple[SignedClosure, ...]
    signed_paths: int
    files: tuple[tuple[str, str], ...]  # (relative path, sha256), sorted

    def to_json(self) -> str:
        data = {
            "schema": SCHEMA, "version": VERSION, "gate": self.gate, "verdict": self.verdict,
            "commit": self.commit, "record_sha256": self.record_sha256,
            "gate_sha256": self.gate_sha256, "gates_sha256": self.gates_sha256,
            "signed_at": self.signed_at,
            "nix_key": self.nix_key,
            "closures": [{"name": c.name, "output": c.output, "path": c.path,
                          "nar_hash": c.nar_hash} for c in self.closures],
            "signed_paths": self.signed_paths,
            "files": dict(self.files),
        }
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def from_json(text: str, source: str) -> Bundle:
    """Parse strictly: anything wrong is one line naming ``source`` and the field."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ChoirciError(f"{source}: not JSON ({exc}); re-sign with `choirci release sign`") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise ChoirciError(f"{source}: not a signed evidence bundle (no \"schema\": \"{SCHEMA}\")")
    if data.get("version") != VERSION:
        raise ChoirciError(f"{source}: bundle version {data.get('version')!r} is not supported "
                           f"(this choirci reads version {VERSION})")

    def text_(key: str, value: Any = None, optional: bool = False) -> Any:
        value = data.get(key) if value is None else value
        if value is None and optional:
            return None
        if not isinstance(value, str):
            raise ChoirciError(f"{source}: {key}: expected a string, got {json.dumps(value)[:40]}")
        return value

    closures = data.get("closures")
    files = data.get("files")
    if not isinstance(closures, list) or not all(isinstance(c, dict) for c in closures):
        raise ChoirciError(f"{source}: closures: expected a list of objects")
    if not isinstance(files, dict) or not all(
            isinstance(v, str) and SHA256.fullmatch(v) for v in files.values()):
        raise ChoirciError(f"{source}: files: expected an object of path -> sha256 hex")
    count = data.get("signed_paths")
    if isinstance(count, bool) or not isinstance(count, int):
        raise ChoirciError(f"{source}: signed_paths: expected an integer")
    return Bundle(
        gate=text_("gate"), verdict=text_("verdict"), commit=text_("commit"),
        record_sha256=text_("record_sha256"), gate_sha256=text_("gate_sha256", optional=True),
        gates_sha256=text_("gates_sha256", optional=True),
        signed_at=text_("signed_at"), nix_key=text_("nix_key"),
        closures=tuple(SignedClosure(*(text_(f"closures.{k}", c.get(k))
                                       for k in ("name", "output", "path", "nar_hash")))
                       for c in closures),
        signed_paths=count, files=tuple(sorted(files.items())),
    )


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_digests(directory: Path) -> tuple[dict[str, str], list[str]]:
    """(relative path -> sha256 of every regular file outside ``signed/``, the entries that
    are neither a regular file nor a directory: symlinks, sockets, ...)."""
    digests: dict[str, str] = {}
    odd: list[str] = []
    for path in sorted(directory.rglob("*")):
        relative = path.relative_to(directory).as_posix()
        if relative == SIGNED_DIR or relative.startswith(f"{SIGNED_DIR}/"):
            continue
        if path.is_symlink():
            odd.append(f"{relative} (a symlink)")
        elif path.is_file():
            try:
                digests[relative] = sha256_file(path)
            except OSError as exc:
                raise ChoirciError(f"{path}: unreadable evidence file ({exc.strerror or exc}); "
                                   "fix its permissions") from None
        elif not path.is_dir():
            odd.append(f"{relative} (not a regular file)")
    return digests, odd


def file_problems(signed: Mapping[str, str], actual: Mapping[str, str],
                  odd: list[str]) -> list[str]:
    """One line per evidence file that differs from the signed bundle."""
    lines = []
    for name, digest in sorted(signed.items()):
        now = actual.get(name)
        if now is None:
            lines.append(f"missing: {name} (signed with sha256 {digest[:16]}...)")
        elif now != digest:
            lines.append(f"edited: {name} (sha256 {now[:16]}..., signed {digest[:16]}...)")
    lines += [f"added: {name} (not in the signed bundle)"
              for name in sorted(set(actual) - set(signed))]
    lines += [f"added: {entry}, not in the signed bundle" for entry in odd]
    return lines
