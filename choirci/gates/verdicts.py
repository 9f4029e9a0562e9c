"""Gate verdicts: a pure function of a gate, a run record and the evidence files present.

* An item is **met** only if every ``require`` selector matched at least one result and all
  matched results passed (and carry the ``expect``-ed properties), and every ``manual``
  evidence file is present with more than whitespace in it. Skipped, xfailed, xpassed,
  errored, deselected and missing results never satisfy a selector.
* The gate is **incomplete** when the record is (an interrupted run, a missing matrix
  shard, no run at all); otherwise **fail** when any required item is unmet or the runs
  tested different commits; else **pass**.

There is deliberately no parameter that turns an unmet item into a met one.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass

from choirci.evidence import naming
from choirci.evidence.record import PASSED, ItemResult, RunRecord, commit_problem
from choirci.gates.definitions import Gate, GateItem, Selector
from choirci.release.record import ReleaseRecord, fact_problem, release_record

EXIT_CODES = {"pass": 0, "fail": 1, "incomplete": 2}


@dataclass(frozen=True)
class ItemVerdict:
    item: GateItem
    met: bool
    reasons: tuple[str, ...] = ()
    satisfied_by: tuple[str, ...] = ()  # node ids and evidence files that met it


@dataclass(frozen=True)
class GateVerdict:
    gate: Gate
    verdict: str  # pass | fail | incomplete
    reasons: tuple[str, ...]
    items: tuple[ItemVerdict, ...]

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.verdict]


def evaluate(gate: Gate, record: RunRecord, files: Iterable[str] = (),
             blank: Iterable[str] = ()) -> GateVerdict:
    """``files``: paths (relative to the evidence dir) of evidence files with content;
    ``blank``: those that exist but are empty or whitespace only (named as such)."""
    present = frozenset(files)
    release = release_record(record)
    items = tuple(_item(item, record, release, present, frozenset(blank)) for item in gate.items)
    unmet = [v for v in items if v.item.required and not v.met]
    if record.status != "complete":
        return GateVerdict(gate, "incomplete", record.incomplete_reasons, items)
    mixed = commit_problem(record)
    if unmet or mixed:
        reasons = ((mixed,) if mixed else ()) + tuple(
            f"not met: {v.item.text} ({'; '.join(v.reasons)})" for v in unmet)
        return GateVerdict(gate, "fail", reasons, items)
    return GateVerdict(gate, "pass", (), items)


def _item(item: GateItem, record: RunRecord, release: ReleaseRecord,
          present: frozenset[str], blank: frozenset[str]) -> ItemVerdict:
    if not item.checked:
        return ItemVerdict(item, False, ("no automated check; tick by hand",))
    reasons: list[str] = []
    used: list[str] = []
    for selector in item.require:
        problems, matched = check(selector, record, release)
        reasons += problems
        used += matched
    for name in item.manual:
        if name in present:
            used.append(name)
        elif name in blank:
            reasons.append(f"manual evidence {name} is empty; write the evidence into it")
        else:
            reasons.append(f"manual evidence {name} is not in the evidence dir")
    return ItemVerdict(item, not reasons, tuple(reasons), tuple(dict.fromkeys(used)))


def check(selector: Selector, record: RunRecord,
          release: ReleaseRecord) -> tuple[list[str], list[str]]:
    """(problems, node ids that matched) for one selector."""
    if selector.release:
        problem = fact_problem(release, selector.release)
        return ([f"release {selector.release}: {problem}"] if problem else []), []
    if selector.tree:
        return _tree_problems(record), []
    matched = [item for item in record.items if matches(selector, item)]
    if not matched:
        return [f"no result matched {selector.describe()}"], []
    problems = [p for item in matched for p in _result_problems(selector, item)]
    return problems, [item.nodeid for item in matched]


def matches(selector: Selector, item: ItemResult) -> bool:
    for key, pattern in selector.match:
        if not _match_one(key, pattern, item):
            return False
    return all(_prop_in(item, name, values) for name, values in selector.where)


def _match_one(key: str, pattern: str, item: ItemResult) -> bool:
    if key in ("closure", "loop"):
        area = "closures" if key == "closure" else "loops"
        return item.area == area and fnmatch.fnmatchcase(item.nodeid, f"{area}::{pattern}")
    if key == "rust":
        return item.area == "rust" and fnmatch.fnmatchcase(item.nodeid, f"rust::{pattern}")
    if key == "node":
        return fnmatch.fnmatchcase(item.nodeid, pattern)
    if key == "area":
        return item.area == pattern
    if key == "marker":
        return pattern in item.markers
    if key == "host":
        return item.area == naming.HOSTS and fnmatch.fnmatchcase(item.host or "", pattern)
    # check: the host check's function name, without the per-host parametrisation.
    base = naming.split_param(item.nodeid)[0].split("::")[-1]
    return item.area == naming.HOSTS and fnmatch.fnmatchcase(base, pattern)


def _prop_in(item: ItemResult, name: str, values: tuple[str, ...]) -> bool:
    value = item.prop(name)
    return value is not None and (not values or value in values)


def _result_problems(selector: Selector, item: ItemResult) -> list[str]:
    if item.outcome != PASSED:
        why = f": {item.message}" if item.message else ""
        return [f"{item.nodeid} {item.outcome}{why}"]
    problems = []
    for name, values in selector.expect:
        if not _prop_in(item, name, values):
            wanted = "|".join(values) if values else "recorded"
            problems.append(f"{item.nodeid}: {name}={item.prop(name) or '(none)'}, "
                            f"expected {wanted}")
    return problems


def _tree_problems(record: RunRecord) -> list[str]:
    problems = []
    for run in record.runs:
        if run.tree.before is None or run.tree.after is None:
            problems.append(f"{run.label}: git tree state unknown (not a git checkout?)")
        elif run.tree.dirtied:
            problems.append(f"{run.label} dirtied the git tree: {', '.join(run.tree.dirtied)}")
        elif run.tree.before:
            problems.append(f"{run.label} started from a dirty tree")
    return problems or ([] if record.runs else ["no run recorded"])
