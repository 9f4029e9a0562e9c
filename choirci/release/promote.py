"""Promotion of what passed: sign a run's closures and its evidence only when its gate passes,
and verify a signed evidence dir.

Signing is refused unless ``gates/<gate>.json`` in the evidence dir says ``pass`` for the
commit and the exact ``choirci.json`` (its ``record_sha256``) and gate definition
(``gate_sha256``) now on disk, AND the gate recomputed from that record passes again, phase
order included (from the dirs the verdict names and ``--history``): a verdict file alone,
hand-written or stale, signs nothing. Each closure's store path must still have the narHash
the run recorded. Then the closures (with their dependencies) are signed with the Nix key,
read back and verified, and the bundle (:mod:`choirci.release.bundle`) is signed with SSH.

Judging layer: reads the record and the gates; no pytest, no area.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from choirci.errors import ChoirciError
from choirci.evidence import atomic
from choirci.evidence import files as evidence
from choirci.evidence.record import ItemResult, RunRecord
from choirci.gates import definitions as gates
from choirci.gates import manual, order, verdicts
from choirci.nix.adapter import Nix
from choirci.release import bundle as bundle_mod
from choirci.release import sign
from choirci.release.bundle import Bundle, SignedClosure

CLOSURE_PREFIX = "closures::"
REFUSED = 2


class NotSigned(ChoirciError):
    """Signing refused because the gate did not pass (or cannot be shown to): exit_code
    1 fail, 3 incomplete, 2 refused (no verdict, stale verdict, order not met)."""

    def __init__(self, message: str, exit_code: int = REFUSED) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class PassedGate:
    gate: gates.Gate
    commit: str
    record_sha256: str
    record: RunRecord


@dataclass(frozen=True)
class Signed:
    bundle: Bundle
    written: tuple[Path, ...]
    not_signed: tuple[str, ...] = ()  # closures of the run that were not built (deselected, ...)


@dataclass(frozen=True)
class Verified:
    problems: tuple[str, ...]
    bundle: Bundle | None = None
    identity: str | None = None
    notes: tuple[str, ...] = field(default=())


# --------------------------------------------------------------------------- the gate


def passed_gate(directory: Path, gate_id: str, gates_dir: Path | None,
                history: Sequence[Path] = ()) -> PassedGate:
    """The gate's verdict for the record in ``directory``, checked and recomputed; NotSigned
    unless both say pass for this record."""
    gates.check_name(gate_id)
    record = evidence.load(directory)
    digest = evidence.record_digest(directory)
    commit = evidence.record_commit(record)
    data = _verdict_file(directory, gate_id)
    said = data.get("verdict")
    if said != "pass":
        reasons = [r for r in data.get("reasons") or [] if isinstance(r, str)]
        code = verdicts.EXIT_CODES.get(str(said), REFUSED) or REFUSED
        raise NotSigned(f"gate {gate_id} is {str(said).upper()} for {directory}"
                        f"{': ' + reasons[0] if reasons else ''}; only a passing gate is signed",
                        code)
    if not commit:
        raise NotSigned(f"{directory / evidence.RECORD}: no single commit recorded; a signature "
                        "states the commit, so only a run of one commit can be signed")
    if data.get("commit") != commit:
        raise NotSigned(f"gates/{gate_id}.json is for commit {data.get('commit') or 'unknown'}, "
                        f"the record is commit {commit}; run `choirci gate {gate_id} --evidence "
                        f"{directory}` again")
    if data.get("record_sha256") != digest:
        raise NotSigned(f"gates/{gate_id}.json judged another choirci.json (sha256 "
                        f"{str(data.get('record_sha256'))[:16]}), not the one in {directory} now "
                        f"({digest[:16]}); run `choirci gate {gate_id} --evidence {directory}` again")
    gate = gates.load(gate_id, gates_dir)
    if data.get("gate_sha256") not in (None, gate.digest):
        raise NotSigned(f"gates/{gate_id}.json judged another definition of gate {gate_id} than "
                        f"{gate.source} now; run `choirci gate {gate_id}` again")
    _recompute(directory, gate, gates_dir, record, digest, commit,
               [*_order_dirs(data), *history])
    return PassedGate(gate=gate, commit=commit, record_sha256=digest, record=record)


def _verdict_file(directory: Path, gate_id: str) -> dict[str, Any]:
    path = directory / "gates" / f"{gate_id}.json"
    if not path.is_file():
        raise NotSigned(f"{path}: no verdict for gate {gate_id}; run `choirci gate {gate_id} "
                        f"--evidence {directory}` first (only a passing gate is signed)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise NotSigned(f"{path}: unreadable verdict ({exc}); run `choirci gate {gate_id}` "
                        "again") from None
    if not isinstance(data, dict) or data.get("gate") != gate_id:
        raise NotSigned(f"{path}: not a verdict of gate {gate_id}; run `choirci gate {gate_id}` again")
    return data


def _order_dirs(data: dict[str, Any]) -> list[Path]:
    chain = data.get("order")
    return [Path(entry["evidence"]) for entry in chain if isinstance(entry, dict)
            and isinstance(entry.get("evidence"), str)] if isinstance(chain, list) else []


def _source(directory: Path) -> order.Source:
    record = evidence.load(directory)
    problem = evidence.junit_problem(directory, record)
    commit = evidence.record_commit(record)
    return order.Source(directory=directory, record=record,
                        digest=evidence.record_digest(directory), commit=commit,
                        attest=lambda names: manual.attest(directory, names, commit),
                        problems=(problem,) if problem else ())


def _recompute(directory: Path, gate: gates.Gate, gates_dir: Path | None, record: RunRecord,
               digest: str, commit: str, others: Sequence[Path]) -> None:
    current = _source(directory)
    seen = {directory.resolve()}
    sources = [current]
    for other in others:
        if other.resolve() not in seen and (other / evidence.RECORD).is_file():
            seen.add(other.resolve())
            sources.append(_source(other))
    try:
        order.verify(gate, commit, sources, order.loader(gate, gates_dir))
    except ChoirciError as exc:
        raise NotSigned(f"gate {gate.id} recomputed: {exc}") from None
    names = [name for item in gate.items for name in item.manual]
    verdict = verdicts.evaluate(gate, record, current.attest(names), current.problems)
    if verdict.verdict != "pass":
        reason = f": {verdict.reasons[0]}" if verdict.reasons else ""
        raise NotSigned(f"gates/{gate.id}.json says pass, but gate {gate.id} recomputed from "
                        f"{directory / evidence.RECORD} is {verdict.verdict.upper()}{reason}",
                        verdict.exit_code or REFUSED)


# --------------------------------------------------------------------------- the closures


def closures_of(record: RunRecord) -> tuple[list[SignedClosure], list[str]]:
    """(every output of every passed closure item with its recorded narHash, the closures
    that were not built by this run). A failed closure, or one without a narHash, refuses."""
    found: list[SignedClosure] = []
    skipped: list[str] = []
    for item in record.items:
        if item.area != "closures" or not item.nodeid.startswith(CLOSURE_PREFIX):
            continue
        name = item.nodeid[len(CLOSURE_PREFIX):]
        if item.outcome in ("deselected", "skipped"):
            skipped.append(f"{name} ({item.outcome})")
            continue
        if item.outcome != "passed":
            raise NotSigned(f"closure {name} {item.outcome} in this run; only what passed is signed", 1)
        found += _outputs(name, item)
    if not found:
        raise NotSigned("the run built no closure, so there is nothing to promote; sign a run "
                        "whose closures area ran")
    return found, skipped


def _outputs(name: str, item: ItemResult) -> list[SignedClosure]:
    outputs = []
    for key, path in item.properties:
        if key != "out_path" and not key.startswith("out_path."):
            continue
        output = key.partition(".")[2] or "out"
        nar_hash = item.prop("nar_hash" + (f".{output}" if output != "out" else ""))
        if not nar_hash:
            raise NotSigned(f"closure {name}: no narHash recorded for {path}; a signature states "
                            "the narHash, re-run pytest --grind to record it")
        outputs.append(SignedClosure(name, output, path, nar_hash))
    if not outputs:
        raise NotSigned(f"closure {name} passed but recorded no store path; re-run pytest --grind")
    return outputs


def check_store(nix: Nix, closures: Sequence[SignedClosure]) -> None:
    """Each path is in the store with the narHash that passed (never sign something else)."""
    infos = nix.path_info([c.path for c in closures])
    for closure in closures:
        info = infos.get(closure.path)
        if info is None:
            raise NotSigned(f"closure {closure.name}: {closure.path} is not in the store; sign on "
                            "the machine that built it (or nix copy it here first)")
        if info.nar_hash != closure.nar_hash:
            raise NotSigned(f"closure {closure.name}: {closure.path} has narHash {info.nar_hash} "
                            f"in the store, but {closure.nar_hash} passed the gate; not signed", 1)


# --------------------------------------------------------------------------- sign and verify


def sign_evidence(directory: Path, passed: PassedGate, nix: Nix, nix_key: sign.Secret,
                  ssh_key: sign.Secret, ssh_program: str = "ssh-keygen") -> Signed:
    closures, skipped = closures_of(passed.record)
    digests, odd = bundle_mod.file_digests(directory)
    if odd:
        raise NotSigned(f"{directory}: {odd[0]}: evidence must be regular files (a symlink's "
                        "target is not signed); copy the file in or remove it")
    public = sign.nix_public_key(nix, nix_key)
    sign.ssh_public_key(ssh_key, ssh_program)  # an unusable SSH key fails before any signing
    check_store(nix, closures)
    tops = sorted({c.path for c in closures})
    sign.sign_paths(nix, nix_key, tops, recursive=True)
    every = sign.closure_paths(nix, tops)
    problems = sign.signature_problems(nix, every, public)
    if problems:
        raise ChoirciError(f"after nix store sign, {len(problems)} path(s) lack a valid "
                           f"signature: {next(iter(problems.values()))}")
    made = Bundle(
        gate=passed.gate.id, verdict="pass", commit=passed.commit,
        record_sha256=passed.record_sha256, gate_sha256=passed.gate.digest or None,
        gates_sha256=passed.gate.dir_digest or None,
        signed_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), nix_key=public,
        closures=tuple(closures), signed_paths=len(every), files=tuple(sorted(digests.items())),
    )
    text = made.to_json()
    signature = sign.ssh_sign(ssh_key, text, program=ssh_program)
    written = (atomic.write_text(directory / bundle_mod.BUNDLE, text),
               atomic.write_text(directory / bundle_mod.SIGNATURE, signature))
    return Signed(bundle=made, written=written, not_signed=tuple(skipped))


def verify_evidence(directory: Path, allowed_signers: Path, identity: str | None = None,
                    ssh_program: str = "ssh-keygen", store: tuple[Nix, str] | None = None) -> Verified:
    """Every way ``directory`` differs from what was signed, one line each (none: verified).
    ``store`` (a Nix on it, its name): also each signed closure must be there, carrying a
    valid signature by the bundle's Nix key."""
    if not allowed_signers.is_file():
        raise ChoirciError(f"--allowed-signers {allowed_signers}: no such file; it holds lines "
                           "'IDENTITY namespaces=\"choirci-evidence\" ssh-ed25519 AAAA...'")
    path, sig = directory / bundle_mod.BUNDLE, directory / bundle_mod.SIGNATURE
    missing = [p for p in (path, sig) if not p.is_file()]
    if missing:
        line = f"not signed: {missing[0]} is missing (sign with `choirci release sign`)"
        return Verified((line,))
    text = path.read_text(encoding="utf-8")
    principals, said = sign.ssh_principals(sig, allowed_signers, ssh_program)
    if not principals or (identity is not None and identity not in principals):
        whom = f" for identity {identity}" if identity else ""
        line = (f"untrusted: {bundle_mod.SIGNATURE} is signed by a key not allowed{whom} in "
                f"{allowed_signers}{f' (ssh-keygen: {said})' if said else ''}")
        return Verified((line,))
    chosen = identity or principals[0]
    reason = sign.ssh_verify(text, sig, allowed_signers, chosen, program=ssh_program)
    if reason is not None:
        line = f"edited: {bundle_mod.BUNDLE} does not match its signature by {chosen} ({reason})"
        return Verified((line,), identity=chosen)
    made = bundle_mod.from_json(text, str(path))
    digests, odd = bundle_mod.file_digests(directory)
    problems = bundle_mod.file_problems(dict(made.files), digests, odd)
    if made.verdict != "pass":
        problems.insert(0, f"verdict: the signed bundle says {made.verdict}, not pass")
    if dict(made.files).get(evidence.RECORD) != made.record_sha256:
        problems.insert(0, f"record: the bundle's record_sha256 is not the sha256 it lists for "
                        f"{evidence.RECORD}")
    if store is not None and not problems:
        nix, where = store
        found = sign.signature_problems(nix, sorted({c.path for c in made.closures}),
                                        made.nix_key, where)
        problems += [f"store: {reason}" for _path, reason in sorted(found.items())]
    notes = (f"custom gates (sha256 {made.gates_sha256[:12]})",) if made.gates_sha256 else ()
    return Verified(tuple(problems), made, chosen, notes)
