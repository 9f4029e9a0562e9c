"""Phase order: ``after: phase-N`` is satisfied only by phase-N *passing again*, recomputed from
a run record of the same commit (the evidence dir itself, or a ``--history`` dir), with
phase-N's own ``after`` satisfied the same way. Verdict files (``gates/phase-N.json``) are
never trusted for this: a stale one from another commit, a hand-written one or one from a
custom gate definition changes nothing.

A bundled gate's predecessors are the bundled gates; a custom gate's come from its own dir
(else the bundled ones), so custom definitions can never satisfy a bundled gate's order.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from choirci.errors import ChoirciError
from choirci.evidence.record import RunRecord
from choirci.gates import definitions as gates
from choirci.gates.verdicts import Attestation, GateVerdict, evaluate


@dataclass(frozen=True)
class Source:
    """One run record that can vouch for an earlier phase."""

    directory: Path
    record: RunRecord
    digest: str  # sha256 of its choirci.json
    commit: str | None
    attest: Callable[[Sequence[str]], Mapping[str, Attestation]] = field(compare=False)
    problems: tuple[str, ...] = ()


def loader(gate: gates.Gate, custom_dir: Path | None) -> Callable[[str], gates.Gate]:
    def load(gate_id: str) -> gates.Gate:
        if gate.custom and custom_dir is not None and (custom_dir / f"{gate_id}.yaml").is_file():
            return gates.load(gate_id, custom_dir)
        return gates.load(gate_id)
    return load


def verify(gate: gates.Gate, commit: str | None, sources: Sequence[Source],
           load: Callable[[str], gates.Gate], seen: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """The chain of earlier gates that pass for ``commit`` (nearest first), each with the
    record that shows it; a ChoirciError (refused) naming what is missing otherwise."""
    if gate.after is None:
        return []
    if gate.after in (*seen, gate.id):
        raise ChoirciError(f"gate order loops: {' -> '.join((*seen, gate.id, gate.after))}; "
                           "fix 'after:' in the gate files")
    if commit is None:
        raise ChoirciError(f"{gate.id} comes after {gate.after}, but the run recorded no single "
                           "commit (not a git checkout, or shards of different commits), so no "
                           "earlier verdict can be tied to it; judge one commit's run")
    previous = load(gate.after)
    tried = []
    for source in sources:
        if source.commit != commit:
            tried.append(f"{source.directory}: commit {source.commit or 'unknown'}")
            continue
        names = [name for item in previous.items for name in item.manual]
        others = [s.record for s in sources if s is not source]
        verdict = evaluate(previous, source.record, source.attest(names), source.problems,
                           others)
        if verdict.verdict != "pass":
            tried.append(f"{source.directory}: {verdict.verdict}{_first(verdict)}")
            continue
        chain = verify(previous, commit, sources, load, (*seen, gate.id))
        return [{"gate": previous.id, "verdict": "pass", "commit": commit,
                 "evidence": str(source.directory), "record_sha256": source.digest,
                 "gate_sha256": previous.digest}, *chain]
    raise ChoirciError(
        f"{gate.id} comes after {previous.id}, which does not pass for commit {commit} "
        f"(recomputed from {'; '.join(tried) or 'no record'}); pass {previous.id} first "
        f"(choirci gate {previous.id} --evidence DIR) or give --history DIR holding a run of "
        "this commit that passes it"
    )


def _first(verdict: GateVerdict) -> str:
    return f": {verdict.reasons[0]}" if verdict.reasons else ""
