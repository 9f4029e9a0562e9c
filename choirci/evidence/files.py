"""The evidence directory: write every rendering of one record, read it back, merge shards.

Layout of an evidence dir (names are part of the interface; the README documents them)::

    choirci.json          the run record (choirci.evidence.record), the source of everything else
    junit.xml             JUnit for CI consumers (choirci.evidence.junit)
    report.md             run report: verdict, results by area, release record, gates, failures
    gates/<gate>.json     verdict written by `choirci gate <gate>`, bound to the record it judged
    gates/stale/          verdicts of an earlier record in this dir, moved aside
    gates/<gate>.md       the gate report to paste on the phase issue
    manual/...            evidence files a person adds for checklist items no check can prove

and ``$GITHUB_STEP_SUMMARY`` is appended to when set. Every file is redacted first (the
record structurally, then each rendered text once more) and written atomically.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

from choirci.errors import ChoirciError
from choirci.evidence import atomic, junit, markdown
from choirci.evidence.record import (
    ITEM_FIELDS,
    OUTCOMES,
    SCHEMA,
    VERSION,
    ItemResult,
    Provenance,
    RunRecord,
    ShardRun,
    TreeState,
    merge,
    to_json,
)
from choirci.evidence.redact import Redactor
from choirci.gates import definitions as gates
from choirci.gates import manual, verdicts
from choirci.release.record import release_record

RECORD = "choirci.json"
JUNIT = "junit.xml"
JUNIT_XUNIT = "junit-xunit.xml"  # valid against junit-10.xsd, for Jenkins' xunit plugin
REPORT = "report.md"
OUR_FILES = (RECORD, JUNIT, JUNIT_XUNIT, REPORT)


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


def record_commit(record: RunRecord) -> str | None:
    return release_record(record).grind_sha


def attestations(directory: Path, gate: gates.Gate,
                 record: RunRecord) -> dict[str, verdicts.Attestation]:
    names = [name for item in gate.items for name in item.manual]
    return manual.attest(directory, names, record_commit(record))


def gate_verdicts(record: RunRecord, directory: Path,
                  gates_dir: Path | None) -> tuple[list[verdicts.GateVerdict], str]:
    """Every gate evaluated against ``record`` (for the run report), or a note why not. A
    gate whose ``after`` gate does not pass on this same record does not pass here either
    (``choirci gate`` also looks in ``--history`` dirs)."""
    try:
        loaded = gates.load_all(gates_dir)
    except ChoirciError as exc:
        return [], f"gates not evaluated: {exc}"
    return verdicts.in_order([verdicts.evaluate(gate, record,
                                                attestations(directory, gate, record))
                              for gate in loaded]), ""


def render_all(record: RunRecord, found: Sequence[verdicts.GateVerdict] = (),
               note: str = "") -> dict[str, str]:
    """Pure: file name -> content, all from the one record."""
    return {
        RECORD: record_json(record),
        JUNIT: junit.render(record),
        JUNIT_XUNIT: junit.render(record, strict=True),
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


def merge_dirs(directories: Sequence[Path], keep_commit: str | None = None) -> RunRecord:
    return merge([load(directory) for directory in directories], keep_commit)


def record_digest(directory: Path) -> str:
    """sha256 of the record file as it is on disk (a verdict is bound to it)."""
    path = directory / RECORD if directory.is_dir() else directory
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:
        raise ChoirciError(f"{path}: unreadable run record ({exc.strerror or exc})") from None


def _cases(xml_text: str) -> Counter[tuple[str, str, str, str]]:
    root = ElementTree.fromstring(xml_text)
    found: Counter[tuple[str, str, str, str]] = Counter()
    for suite in root.iter("testsuite"):
        for case in suite.iter("testcase"):
            status = next((child.tag for child in case
                           if child.tag in ("failure", "error", "skipped")), "passed")
            found[(suite.get("name", ""), case.get("classname", ""), case.get("name", ""),
                   status)] += 1
    return found


def junit_problem(directory: Path, record: RunRecord) -> str | None:
    """Why ``junit.xml`` (or ``junit-xunit.xml``, when present) does not say what
    ``choirci.json`` says (a stale or edited file), or None when every suite, testcase and
    outcome agrees."""
    for name, strict, required in ((JUNIT, False, True), (JUNIT_XUNIT, True, False)):
        path = directory / name
        if not path.is_file():
            if required:
                return (f"{path} is missing; choirci writes it with choirci.json "
                        "(re-run or re-merge)")
            continue
        try:
            actual = _cases(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ElementTree.ParseError) as exc:
            return f"{path} is unreadable ({exc}); re-run or re-merge to re-create it"
        expected = _cases(junit.render(record, strict=strict))
        if actual != expected:
            extra, missing = actual - expected, expected - actual
            example = next(iter(missing or extra))
            return (f"{path} differs from choirci.json ({sum(missing.values())} testcase(s) "
                    f"only in the record, {sum(extra.values())} only in {name}, e.g. "
                    f"{'::'.join(example[1:3])} {example[3]}); one of them is stale or edited: "
                    "re-run or re-merge")
    return None


def archive_stale_gates(directory: Path, digest: str = "") -> list[Path]:
    """Move ``gates/*.json``/``.md`` that judged another record than the one with sha256
    ``digest`` (or do not say which) to ``gates/stale/``: a new run in a dir invalidates the
    verdicts of the old one. ``digest=""`` moves them all (a run starting in the dir)."""
    moved = []
    folder = directory / "gates"
    current = set()
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            data = None
        if digest and isinstance(data, dict) and data.get("record_sha256") == digest:
            current.add(path.stem)
    for path in sorted(folder.glob("*.json")) + sorted(folder.glob("*.md")) \
            if folder.is_dir() else []:
        if path.stem not in current and path.is_file():
            target = folder / "stale" / path.name
            target.parent.mkdir(parents=True, exist_ok=True)
            path.replace(target)
            moved.append(target)
    return moved


def write_gate(verdict: verdicts.GateVerdict, record: RunRecord, directory: Path,
               redactor: Redactor, binding: Mapping[str, Any] | None = None) -> list[Path]:
    """``gates/<id>.json`` (bound to the commit, tree state, record and gate definition it
    judged; never read back as proof of anything) and ``gates/<id>.md``."""
    gate = verdict.gate
    release = release_record(record)
    data: dict[str, Any] = {
        "schema": "choirci.gate", "version": 2, "gate": gate.id, "verdict": verdict.verdict,
        "reasons": [redactor(r) for r in verdict.reasons], "commit": release.grind_sha,
        "tree": verdicts.tree_state(record), "dirty_tree": "allowed" if gate.allow_dirty
        else "refused", "status": record.status, "source": gate.source,
        "gate_sha256": gate.digest,
        "gates": "custom" if gate.custom else "bundled",
        "gates_sha256": gate.dir_digest or None,
        **(binding or {}),
        "items": [{"text": v.item.text, "section": v.item.section, "required": v.item.required,
                   "met": v.met, "reasons": [redactor(r) for r in v.reasons],
                   "checked_by": [redactor(n) for n in v.checked_by],
                   "attested_by": list(v.attested_by)}
                  for v in verdict.items],
    }
    report = markdown.gate_report(verdict, record, binding)
    return [
        atomic.write_text(directory / "gates" / f"{gate.id}.json",
                          json.dumps(data, indent=2, ensure_ascii=False) + "\n"),
        atomic.write_text(directory / "gates" / f"{gate.id}.md", redactor(report)),
    ]


# --------------------------------------------------------------------------- reading


def from_json(data: Any, source: str = "choirci.json") -> RunRecord:
    """Parse a record strictly: every field is type-checked, and anything wrong is one
    ChoirciError line naming ``source``, the field's path and what was expected."""
    if not isinstance(data, Mapping) or data.get("schema") != SCHEMA:
        raise ChoirciError(f"{source}: not a choirci run record (no \"schema\": \"{SCHEMA}\")")
    version = data.get("version")
    if version != VERSION:
        raise ChoirciError(
            f"{source}: record version {version!r} is not supported (this choirci reads "
            f"version {VERSION}); use the choirci version that wrote it"
        )
    read = _Reader(source)
    runs = read.listing(data.get("runs", []), "runs")
    return RunRecord(runs=tuple(_run_from_json(read, run, f"runs[{i}]")
                                for i, run in enumerate(runs)))


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


class _Reader:
    """Typed access to JSON values; every error is one line with the field's path."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, path: str, expected: str, value: Any) -> ChoirciError:
        return ChoirciError(f"{self.source}: malformed run record: {path}: expected {expected}, "
                            f"got {_short(value)}; re-create the evidence with pytest --grind")

    def mapping(self, value: Any, path: str) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.fail(path, "an object", value)
        return value

    def listing(self, value: Any, path: str) -> list[Any]:
        if not isinstance(value, list):
            raise self.fail(path, "a list", value)
        return value

    def text(self, value: Any, path: str, optional: bool = False) -> Any:
        if value is None and optional:
            return None
        if not isinstance(value, str):
            raise self.fail(path, "a string" + (" or null" if optional else ""), value)
        return value

    def texts(self, value: Any, path: str, optional: bool = False) -> tuple[str, ...] | None:
        if value is None and optional:
            return None
        if value is None:
            return ()
        return tuple(self.text(v, f"{path}[{i}]") for i, v in enumerate(self.listing(value, path)))

    def choice(self, value: Any, path: str, allowed: tuple[str, ...]) -> str:
        if value not in allowed:
            raise self.fail(path, f"one of {', '.join(allowed)}", value)
        return str(value)

    def number(self, value: Any, path: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(path, "a number", value)
        if not math.isfinite(value) or value < 0:
            raise self.fail(path, "a finite number >= 0", value)
        return float(value)

    def integer(self, value: Any, path: str) -> int | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(path, "an integer or null", value)
        return value


STATUSES = ("complete", "incomplete")
_PROVENANCE_FIELDS = tuple(f.name for f in fields(Provenance) if f.name != "argv")


def _run_from_json(read: _Reader, value: Any, path: str) -> ShardRun:
    data = read.mapping(value, path)
    tree = read.mapping(data.get("tree") or {}, f"{path}.tree")
    prov = read.mapping(data.get("provenance") or {}, f"{path}.provenance")
    provenance = Provenance(
        **{name: read.text(prov.get(name), f"{path}.provenance.{name}", optional=True)
           for name in _PROVENANCE_FIELDS},
        argv=read.texts(prov.get("argv"), f"{path}.provenance.argv") or (),
    )
    items = read.listing(data.get("items") or [], f"{path}.items")
    return ShardRun(
        shard=read.text(data.get("shard"), f"{path}.shard"),
        status=read.choice(data.get("status"), f"{path}.status", STATUSES),
        reason=read.text(data.get("reason") or "", f"{path}.reason"),
        started=read.text(data.get("started") or "", f"{path}.started"),
        finished=read.text(data.get("finished"), f"{path}.finished", optional=True),
        exit_status=read.integer(data.get("exit_status"), f"{path}.exit_status"),
        expected_shards=read.texts(data.get("expected_shards"), f"{path}.expected_shards") or (),
        provenance=provenance,
        tree=TreeState(before=read.texts(tree.get("before"), f"{path}.tree.before", True),
                       after=read.texts(tree.get("after"), f"{path}.tree.after", True)),
        items=tuple(_item_from_json(read, item, f"{path}.items[{i}]")
                    for i, item in enumerate(items)),
    )


_ITEM_TEXTS = ("classname", "name", "message", "type", "details", "stdout", "stderr")


def _item_from_json(read: _Reader, value: Any, path: str) -> ItemResult:
    data = read.mapping(value, path)
    unknown = sorted(set(data) - set(ITEM_FIELDS))
    if unknown:
        raise read.fail(f"{path}.{unknown[0]}", "no such field", data[unknown[0]])
    nodeid = read.text(data.get("nodeid"), f"{path}.nodeid")
    if not nodeid:
        raise read.fail(f"{path}.nodeid", "a non-empty string", nodeid)
    properties = []
    for i, pair in enumerate(read.listing(data.get("properties") or [], f"{path}.properties")):
        where = f"{path}.properties[{i}]"
        if not isinstance(pair, list) or len(pair) != 2 or not isinstance(pair[0], str):
            raise read.fail(where, "a [name, value] pair", pair)
        value_ = pair[1]
        if isinstance(value_, bool) or not isinstance(value_, (str, int, float)):
            raise read.fail(f"{where}[1]", "a string or number", value_)
        properties.append((pair[0], str(value_)))
    return ItemResult(
        nodeid=nodeid,
        area=read.text(data.get("area"), f"{path}.area"),
        outcome=read.choice(data.get("outcome"), f"{path}.outcome", OUTCOMES),
        duration=read.number(data.get("duration", 0.0), f"{path}.duration"),
        markers=read.texts(data.get("markers"), f"{path}.markers") or (),
        host=read.text(data.get("host"), f"{path}.host", optional=True),
        properties=tuple(properties),
        **{name: read.text(data.get(name, ""), f"{path}.{name}") for name in _ITEM_TEXTS},
    )
