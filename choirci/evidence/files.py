"""The evidence directory: write every rendering of one record, read it back, merge shards.

Layout of an evidence dir (names are part of the interface; the README documents them)::

    choirci.json          the run record (choirci.evidence.record), the source of everything else
    junit.xml             JUnit for CI consumers (choirci.evidence.junit)
    report.md             run report: verdict, results by area, release record, gates, failures
    gates/<gate>.json     verdict written by `choirci gate <gate>` (phase order reads these)
    gates/<gate>.md       the gate report to paste on the phase issue
    manual/...            evidence files a person adds for checklist items no check can prove

and ``$GITHUB_STEP_SUMMARY`` is appended to when set. Every file is redacted first (the
record structurally, then each rendered text once more) and written atomically.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from choirci.errors import ChoirciError
from choirci.evidence import atomic, junit, markdown
from choirci.evidence.record import RunRecord, from_json, merge, to_json
from choirci.evidence.redact import Redactor
from choirci.gates import definitions as gates
from choirci.gates import verdicts
from choirci.release.record import release_record

RECORD = "choirci.json"
JUNIT = "junit.xml"
REPORT = "report.md"
OUR_FILES = (RECORD, JUNIT, REPORT)


def record_json(record: RunRecord) -> str:
    data = to_json(record)
    data["release"] = release_record(record).to_json()
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


# Fields whose values come from a closed vocabulary or identify the run; redacting them
# would change what the record says (DEPLOY_TOKEN=passed must not rewrite an outcome).
STRUCTURAL_RUN = frozenset({"shard", "status", "started", "finished", "exit_status",
                            "expected_shards"})
STRUCTURAL_ITEM = frozenset({"area", "outcome", "duration", "markers"})
STRUCTURAL_PROVENANCE = frozenset({"commit"})


def redacted(record: RunRecord, redactor: Redactor) -> RunRecord:
    """The record with its free text (messages, logs, property names and values, argv, node
    ids and names) redacted; structural fields (outcome, status, area, markers, shard names,
    timestamps, commit) are never touched."""
    if not redactor.secrets:
        return record
    data = to_json(record)
    for run in data["runs"]:
        for key, value in list(run.items()):
            if key == "items":
                run[key] = [{k: v if k in STRUCTURAL_ITEM else redactor.tree(v)
                             for k, v in item.items()} for item in value]
            elif key == "provenance":
                run[key] = {k: v if k in STRUCTURAL_PROVENANCE else redactor.tree(v)
                            for k, v in value.items()}
            elif key not in STRUCTURAL_RUN:
                run[key] = redactor.tree(value)
    return from_json(data, "record")


def evidence_files(directory: Path) -> frozenset[str]:
    """Regular files under ``directory`` with more than whitespace in them, as POSIX paths
    relative to it."""
    return frozenset(name for name, blank in _scan(directory) if not blank)


def blank_files(directory: Path) -> frozenset[str]:
    """Regular files under ``directory`` that are empty or hold only whitespace."""
    return frozenset(name for name, blank in _scan(directory) if blank)


def _scan(directory: Path) -> list[tuple[str, bool]]:
    if not directory.is_dir():
        return []
    return [(path.relative_to(directory).as_posix(), _is_blank(path))
            for path in directory.rglob("*") if path.is_file()]


def _is_blank(path: Path, chunk: int = 65_536) -> bool:
    # Reads only up to the first non-whitespace byte: cheap for choirci.json and junit.xml.
    try:
        with path.open("rb") as handle:
            while block := handle.read(chunk):
                if block.strip():
                    return False
    except OSError:
        return True
    return True


def gate_verdicts(record: RunRecord, directory: Path,
                  gates_dir: Path | None) -> tuple[list[verdicts.GateVerdict], str]:
    """Every gate evaluated against ``record`` (for the run report), or a note why not."""
    try:
        loaded = gates.load_all(gates_dir)
    except ChoirciError as exc:
        return [], f"gates not evaluated: {exc}"
    files, blank = evidence_files(directory), blank_files(directory)
    return [verdicts.evaluate(gate, record, files, blank) for gate in loaded], ""


def render_all(record: RunRecord, found: Sequence[verdicts.GateVerdict] = (),
               note: str = "") -> dict[str, str]:
    """Pure: file name -> content, all from the one record."""
    return {
        RECORD: record_json(record),
        JUNIT: junit.render(record),
        REPORT: markdown.run_report(record, found, note),
    }


def write_all(
    record: RunRecord,
    directory: Path,
    redactor: Redactor,
    gates_dir: Path | None = None,
    step_summary: str | None = None,
) -> list[Path]:
    clean = redacted(record, redactor)
    found, note = gate_verdicts(clean, directory, gates_dir)
    # choirci.json is redacted structurally above (a text pass would rewrite outcomes);
    # the renderings get one more text pass.
    written = [
        atomic.write_text(directory / name, content if name == RECORD else redactor(content))
        for name, content in render_all(clean, found, note).items()
    ]
    if step_summary:
        atomic.append_text(Path(step_summary), redactor(markdown.step_summary(clean, found, note)))
    return written


def load(directory: Path) -> RunRecord:
    path = directory / RECORD if directory.is_dir() else directory
    if not path.is_file():
        raise ChoirciError(f"{path}: no run record here; point at an evidence dir written by "
                           "`pytest --grind` (it holds choirci.json)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ChoirciError(f"{path}: unreadable run record ({exc}); re-run to re-create it") from None
    return from_json(data, str(path))


def merge_dirs(directories: Sequence[Path]) -> RunRecord:
    return merge([load(directory) for directory in directories])


def write_gate(verdict: verdicts.GateVerdict, record: RunRecord, directory: Path,
               redactor: Redactor) -> list[Path]:
    """``gates/<id>.json`` (read by the phase-order check) and ``gates/<id>.md``."""
    gate = verdict.gate
    release = release_record(record)
    data = {
        "schema": "choirci.gate", "version": 1, "gate": gate.id, "verdict": verdict.verdict,
        "reasons": list(verdict.reasons), "commit": release.grind_sha,
        "status": record.status, "source": gate.source,
        "items": [{"text": v.item.text, "section": v.item.section, "required": v.item.required,
                   "met": v.met, "reasons": list(v.reasons), "satisfied_by": list(v.satisfied_by)}
                  for v in verdict.items],
    }
    report = markdown.gate_report(verdict, record)
    return [
        atomic.write_text(directory / "gates" / f"{gate.id}.json",
                          redactor(json.dumps(redactor.tree(data), indent=2) + "\n")),
        atomic.write_text(directory / "gates" / f"{gate.id}.md", redactor(report)),
    ]


def previous_verdict(history: Path, gate_id: str) -> str | None:
    """The verdict recorded in ``history/gates/<gate_id>.json``, or None."""
    path = history / "gates" / f"{gate_id}.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("gate") != gate_id:
        return None
    verdict = data.get("verdict")
    return verdict if isinstance(verdict, str) else None
