"""The run record: plain data that every evidence file is rendered from.

A :class:`RunRecord` is a set of :class:`ShardRun` (one per matrix shard; a run without
``CHOIRCI_SHARD`` is the shard ``""``). One pytest session produces a record with one shard
run; ``choirci evidence merge`` unions several. Because a record is just "runs keyed by
shard name", merging is order-independent and idempotent by construction, and a merged set
of shards renders exactly like a single run.

JSON layout (``choirci.json``; :func:`to_json` writes it, ``choirci.evidence.files.from_json``
reads it back strictly)::

    {"schema": "choirci.run", "version": 1,
     "status": ..., "expected_shards": [...],      # derived, rewritten on every save
     "runs": [{"shard", "status", "reason", "started", "finished", "exit_status",
               "expected_shards", "provenance": {...}, "tree": {"before", "after"},
               "items": [{"nodeid", "area", "classname", "name", "outcome", "duration",
                          "markers", "host", "properties": [[name, value], ...],
                          "message", "type", "details", "stdout", "stderr"}]}],
     "release": {...}}                              # derived (see choirci.release.record)

Derived keys are written for people and other tools; loading ignores them and recomputes.

A shard narrowed by ``--area``/``--closure``/``--rust-test`` records the configured items it
left out as ``deselected`` placeholders (``rust::CRATE::BIN::*`` for a whole test target,
``hosts::*`` for every host check). In a merged record, the shard that did run such an item
owns it: :attr:`RunRecord.items` (what verdicts, gates and reports read) leaves out a
placeholder when another run has a result for the same node id, or, for ``PREFIX::*``, for
any node id under ``PREFIX`` (or in the area ``PREFIX``). The runs themselves keep every
placeholder, so merging stays order-independent and a lone narrowed run still shows them.
"""

from __future__ import annotations

import functools
import json
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from choirci.errors import ChoirciError

SCHEMA = "choirci.run"
VERSION = 1
OUTCOMES = (
    "passed", "failed", "error", "skipped", "xfailed", "xpassed", "deselected", "missing",
)
PASSED = "passed"
BAD = frozenset({"failed", "error", "missing"})
DESELECTED = "deselected"
PLURALS = {"error": "errors"}  # the other outcomes read as adjectives: "3 passed"


@dataclass(frozen=True)
class ItemResult:
    """The outcome of one pytest item (or one collection error), all phases combined."""

    nodeid: str
    area: str
    classname: str
    name: str
    outcome: str
    duration: float = 0.0
    markers: tuple[str, ...] = ()
    host: str | None = None
    properties: tuple[tuple[str, str], ...] = ()
    message: str = ""
    type: str = ""
    details: str = ""
    stdout: str = ""
    stderr: str = ""

    def prop(self, name: str) -> str | None:
        """The last value recorded for ``name`` (properties may repeat)."""
        values = [value for key, value in self.properties if key == name]
        return values[-1] if values else None


@dataclass(frozen=True)
class TreeState:
    """``git status --porcelain`` lines of the workspace; None when it could not be read."""

    before: tuple[str, ...] | None = None
    after: tuple[str, ...] | None = None

    @property
    def dirtied(self) -> tuple[str, ...]:
        """Entries the run added to the tree state (a run that dirtied the tree)."""
        if self.before is None or self.after is None:
            return ()
        seen = set(self.before)
        return tuple(line for line in self.after if line not in seen)


@dataclass(frozen=True)
class Provenance:
    commit: str | None = None
    branch: str | None = None
    domain: str | None = None
    promoted_sha: str | None = None
    nix_version: str | None = None
    choirci_version: str | None = None
    python_version: str | None = None
    pytest_version: str | None = None
    machine: str | None = None
    root: str | None = None
    argv: tuple[str, ...] = ()


@dataclass(frozen=True)
class ShardRun:
    shard: str
    status: str  # "complete" | "incomplete"
    reason: str = ""
    started: str = ""
    finished: str | None = None
    exit_status: int | None = None
    expected_shards: tuple[str, ...] = ()
    provenance: Provenance = field(default_factory=Provenance)
    tree: TreeState = field(default_factory=TreeState)
    items: tuple[ItemResult, ...] = ()

    @property
    def label(self) -> str:
        return f"shard {self.shard!r}" if self.shard else "the run"


@dataclass(frozen=True)
class RunRecord:
    runs: tuple[ShardRun, ...] = ()

    @property
    def expected_shards(self) -> tuple[str, ...]:
        return tuple(sorted({name for run in self.runs for name in run.expected_shards}))

    @property
    def missing_shards(self) -> tuple[str, ...]:
        present = {run.shard for run in self.runs}
        return tuple(name for name in self.expected_shards if name not in present)

    @property
    def incomplete_reasons(self) -> tuple[str, ...]:
        reasons = [] if self.runs else ["no run recorded"]
        reasons += [f"shard {name!r} is missing" for name in self.missing_shards]
        if not self.expected_shards:
            reasons += [f"shard {run.shard!r} names no expected shards (CHOIRCI_EXPECTED_SHARDS "
                        "was unset), so nothing shows the set of shards is whole"
                        for run in self.runs if run.shard]
        reasons += [
            f"{run.label} is incomplete: {run.reason or 'it did not finish'}"
            for run in self.runs
            if run.status != "complete"
        ]
        return tuple(reasons)

    @property
    def status(self) -> str:
        return "incomplete" if self.incomplete_reasons else "complete"

    def iter_items(self) -> Iterator[tuple[ShardRun, ItemResult]]:
        """Every result, without the placeholders another run superseded (module docstring)."""
        hidden = self._superseded
        for index, run in enumerate(self.runs):
            for item in run.items:
                if (index, item.nodeid) not in hidden:
                    yield run, item

    @property
    def items(self) -> tuple[ItemResult, ...]:
        return tuple(item for _run, item in self.iter_items())

    def counts(self) -> dict[str, int]:
        counter = Counter(item.outcome for item in self.items)
        return {outcome: counter[outcome] for outcome in OUTCOMES if counter[outcome]}

    @property
    def commits(self) -> dict[str, tuple[str, ...]]:
        """Commit (``unknown`` when not recorded) -> the labels of the runs that tested it."""
        found: dict[str, list[str]] = {}
        for run in self.runs:
            found.setdefault(run.provenance.commit or "unknown", []).append(run.label)
        return {commit: tuple(labels) for commit, labels in sorted(found.items())}

    @functools.cached_property
    def _superseded(self) -> frozenset[tuple[int, str]]:
        """(run index, node id) of deselected placeholders another run has a result for."""
        if len(self.runs) < 2:
            return frozenset()
        owners: dict[str, set[int]] = {}
        for index, run in enumerate(self.runs):
            for item in run.items:
                if item.outcome != DESELECTED:
                    for key in _claims(item):
                        owners.setdefault(key, set()).add(index)
        return frozenset(
            (index, item.nodeid)
            for index, run in enumerate(self.runs)
            for item in run.items
            if item.outcome == DESELECTED and owners.get(item.nodeid, set()) - {index}
        )


def _claims(item: ItemResult) -> Iterator[str]:
    """The node ids and ``PREFIX::*`` placeholders a result makes another run's redundant."""
    yield item.nodeid
    yield f"{item.area}::*"
    parts = item.nodeid.split("::")
    for end in range(1, len(parts)):
        yield "::".join(parts[:end]) + "::*"


def counts_text(counts: Mapping[str, int]) -> str:
    """``{"passed": 2, "error": 8}`` -> ``2 passed, 8 errors`` (for people)."""
    return ", ".join(f"{n} {PLURALS.get(o, o) if n != 1 else o}" for o, n in counts.items()
                     if n) or "no items"


@dataclass(frozen=True)
class RunVerdict:
    verdict: str  # "pass" | "fail" | "incomplete"
    reasons: tuple[str, ...]


def run_verdict(record: RunRecord) -> RunVerdict:
    """The run on its own (no gate): incomplete; fail when the runs tested different commits,
    on any failed/error/missing item, or when nothing passed (all skipped, say); else pass."""
    if record.status != "complete":
        return RunVerdict("incomplete", record.incomplete_reasons)
    mixed = commit_problem(record)
    bad = [f"{item.nodeid}: {item.outcome}" for item in record.items if item.outcome in BAD]
    if mixed or bad:
        return RunVerdict("fail", tuple(([mixed] if mixed else []) + bad))
    if not record.items:
        return RunVerdict("fail", ("no items ran",))
    if not any(item.outcome == PASSED for item in record.items):
        return RunVerdict("fail", (f"nothing passed: {counts_text(record.counts())}",))
    return RunVerdict("pass", ())


def commit_problem(record: RunRecord) -> str | None:
    """Why runs of several commits cannot make one verdict, or None when they agree."""
    commits = record.commits
    if len(commits) < 2:
        return None
    tested = "; ".join(f"{commit} ({', '.join(labels)})" for commit, labels in commits.items())
    return f"the runs tested different commits: {tested}"


# --------------------------------------------------------------------------- merge


def merge(records: list[RunRecord] | tuple[RunRecord, ...],
          keep_commit: str | None = None) -> RunRecord:
    """Union of shard runs. Two runs of the same shard: the later ``finished`` wins (a
    re-run job replaces its earlier attempt); ties are broken by content, so the result
    never depends on argument order. Runs of one shard that tested different commits are
    refused (one of them is the wrong run) unless ``keep_commit`` says which to keep."""
    by_shard: dict[str, list[ShardRun]] = {}
    for record in records:
        for run in record.runs:
            by_shard.setdefault(run.shard, []).append(run)
    chosen: dict[str, ShardRun] = {}
    for shard, runs in by_shard.items():
        commits = sorted({run.provenance.commit or "unknown" for run in runs})
        if len(commits) > 1:
            label = f"shard {shard!r}" if shard else "the unsharded run"
            if keep_commit is None:
                raise ChoirciError(
                    f"{label} has runs of different commits ({', '.join(commits)}); merge the "
                    "shards of one commit, or pass --keep-commit SHA to say which to keep")
            runs = [run for run in runs if run.provenance.commit == keep_commit]
            if not runs:
                raise ChoirciError(f"{label} has no run of --keep-commit {keep_commit} (it has "
                                   f"{', '.join(commits)}); give the full commit id of one")
        chosen[shard] = max(runs, key=_rank)
    return RunRecord(runs=tuple(chosen[name] for name in sorted(chosen)))


def _rank(run: ShardRun) -> tuple[str, str, str]:
    return (run.finished or "", run.started, json.dumps(run_to_json(run), sort_keys=True))


# --------------------------------------------------------------------------- JSON


def to_json(record: RunRecord) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "version": VERSION,
        "status": record.status,
        "incomplete_reasons": list(record.incomplete_reasons),
        "expected_shards": list(record.expected_shards),
        "counts": record.counts(),
        "runs": [run_to_json(run) for run in record.runs],
    }


def run_to_json(run: ShardRun) -> dict[str, Any]:
    # Field by field, not asdict(run): asdict deep-copies every item first, which dominated
    # the end of a 2,000-test run.
    data = {f.name: getattr(run, f.name) for f in fields(ShardRun) if f.name != "items"}
    data["expected_shards"] = list(run.expected_shards)
    data["provenance"] = asdict(run.provenance)
    data["tree"] = asdict(run.tree)
    data["items"] = [_item_to_json(item) for item in run.items]
    return data


ITEM_FIELDS = tuple(f.name for f in fields(ItemResult))


def _item_to_json(item: ItemResult) -> dict[str, Any]:
    data = {name: getattr(item, name) for name in ITEM_FIELDS}
    data["markers"] = list(item.markers)
    data["properties"] = [list(pair) for pair in item.properties]
    return data


def with_items(run: ShardRun, items: tuple[ItemResult, ...]) -> ShardRun:
    return replace(run, items=items)


def full_log_pointer(item: ItemResult) -> str:
    """Where the uncut log of ``item`` lives (shown in the cut marker)."""
    drv = item.prop("drv_path")
    if drv:
        return f"nix log {drv}"
    if item.prop("log"):
        return str(item.prop("log"))
    command = item.prop("command")
    if command:
        return f"re-run `{command}`"
    return f"re-run `pytest --grind '{item.nodeid}'`"
