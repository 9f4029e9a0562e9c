"""Gate verdicts: a pure function of a gate, a run record and the manual evidence found.

* An item is **met** only if every ``require`` selector matched at least one of choirci's own
  results (closures, loops, rust, release, the bundled host checks; a workspace's tests only
  when the gate says ``user_tests: true``) and all matched results passed (and carry the
  ``expect``-ed properties), and every ``manual`` file is attested for the run's commit (see
  :mod:`choirci.gates.manual`). Skipped, xfailed, xpassed, errored, deselected and missing
  results never satisfy a selector. An item with ``missing_check`` is never met.
* The gate is **incomplete** when the record is (an interrupted run, a missing matrix
  shard, no run at all); otherwise **fail** when any required item is unmet, the runs
  tested different commits, the git tree was dirty or unknown (unless the gate allows it) or
  the evidence contradicts itself (``problems``, e.g. junit.xml); else **pass**.

There is deliberately no parameter that turns an unmet item into a met one.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from choirci.evidence import naming
from choirci.evidence.record import PASSED, ItemResult, RunRecord, commit_problem, run_verdict
from choirci.gates.definitions import Gate, GateItem, Selector
from choirci.release.record import (
    SYSTEM_CHECK,
    HostSystem,
    ReleaseRecord,
    check_of,
    fact_problem,
    host_systems,
    is_own,
    release_record,
)

# 2 is "refused or bad input" (a usage error, a malformed record, phase order not met):
# the CLI's exit status for every ChoirciError.
EXIT_CODES = {"pass": 0, "fail": 1, "incomplete": 3}
REFUSED = 2


@dataclass(frozen=True)
class Attestation:
    """A manual evidence file as found for one run: ``path`` (relative to the evidence
    dir) attests the run's commit when ``problem`` is empty."""

    path: str
    problem: str = ""


@dataclass(frozen=True)
class ItemVerdict:
    item: GateItem
    met: bool
    reasons: tuple[str, ...] = ()
    satisfied_by: tuple[str, ...] = ()  # node ids and evidence files that met it
    checked_by: tuple[str, ...] = ()  # the node ids among them
    attested_by: tuple[str, ...] = ()  # the manual files among them (a person's word)


@dataclass(frozen=True)
class GateVerdict:
    gate: Gate
    verdict: str  # pass | fail | incomplete
    reasons: tuple[str, ...]
    items: tuple[ItemVerdict, ...]

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.verdict]


def _attestations(manual: Mapping[str, Attestation] | Iterable[str]) -> dict[str, Attestation]:
    if isinstance(manual, Mapping):
        return dict(manual)
    return {name: Attestation(name) for name in manual}


def evaluate(gate: Gate, record: RunRecord,
             manual: Mapping[str, Attestation] | Iterable[str] = (),
             problems: Sequence[str] = (), baselines: Sequence[RunRecord] = ()) -> GateVerdict:
    """``manual``: gate file name -> what was found for it (a bare iterable of names counts
    them as attested; absent names are missing). ``problems``: contradictions in the
    evidence found by the caller; each fails the gate. ``baselines``: other runs a
    ``repeat:`` selector may compare this one with."""
    found = _attestations(manual)
    release = release_record(record)
    context = (record, release, tuple(baselines))
    items = tuple(_item(gate, item, context, found) for item in gate.items)
    unmet = [v for v in items if v.item.required and not v.met]
    if record.status != "complete":
        return GateVerdict(gate, "incomplete", record.incomplete_reasons, items)
    mixed = commit_problem(record)
    tree = [] if gate.allow_dirty else [f"git tree: {p} (gate {gate.id} needs a clean "
                                        "checkout; commit or stash and re-run)"
                                        for p in tree_problems(record)]
    reasons = ((mixed,) if mixed else ()) + tuple(tree) + tuple(problems) + tuple(
        f"not met: {v.item.text} ({'; '.join(v.reasons)})" for v in unmet)
    if reasons:
        return GateVerdict(gate, "fail", reasons, items)
    return GateVerdict(gate, "pass", (), items)


def blocked(verdict: GateVerdict, reason: str) -> GateVerdict:
    """``verdict`` when the gate's ``after`` does not pass: never a pass."""
    word = "fail" if verdict.verdict == "pass" else verdict.verdict
    return GateVerdict(verdict.gate, word, (*verdict.reasons, reason), verdict.items)


def in_order(found: Sequence[GateVerdict]) -> list[GateVerdict]:
    """Verdicts of one record (the run report): a gate whose ``after`` gate does not pass
    on the same record is not a pass either."""
    by_id = {v.gate.id: v for v in found}
    done: dict[str, GateVerdict] = {}

    def resolve(gate_id: str, seen: tuple[str, ...]) -> GateVerdict:
        if gate_id not in done:
            verdict = by_id[gate_id]
            after = verdict.gate.after
            if after and (after not in by_id or after in seen):
                verdict = blocked(verdict, f"comes after {after}, which is not among these gates")
            elif after:
                previous = resolve(after, (*seen, gate_id))
                if previous.verdict != "pass":
                    verdict = blocked(verdict, f"comes after {after}, which is "
                                      f"{previous.verdict} for this run")
            done[gate_id] = verdict
        return done[gate_id]

    return [resolve(v.gate.id, ()) for v in found]


def _item(gate: Gate, item: GateItem,
          context: tuple[RunRecord, ReleaseRecord, tuple[RunRecord, ...]],
          found: Mapping[str, Attestation]) -> ItemVerdict:
    record, release, baselines = context
    if not item.checked:
        return ItemVerdict(item, False, ("no automated check; tick by hand",))
    reasons: list[str] = []
    checked: list[str] = []
    attested: list[str] = []
    if item.missing_check:
        reasons.append(f"no check yet: {item.missing_check}")
    for selector in item.require:
        problems, matched = check(selector, record, release, gate.user_tests, baselines)
        reasons += problems
        checked += matched
    for name in item.manual:
        attestation = found.get(name)
        if attestation is None:
            reasons.append(f"manual evidence {name} is not in the evidence dir")
        elif attestation.problem:
            reasons.append(f"manual evidence {attestation.path} {attestation.problem}")
        else:
            attested.append(attestation.path)
    checked_by = tuple(dict.fromkeys(checked))
    return ItemVerdict(item, not reasons, tuple(reasons), checked_by + tuple(attested),
                       checked_by, tuple(attested))


def check(selector: Selector, record: RunRecord, release: ReleaseRecord,
          user_tests: bool = False,
          baselines: Sequence[RunRecord] = ()) -> tuple[list[str], list[str]]:
    """(problems, node ids that matched) for one selector."""
    if selector.repeat:
        return repeat_problems(record, baselines)
    if selector.current_system:
        return converged_problems(record)
    if selector.staging:
        return staged_problems(record, baselines)
    if selector.release:
        problem = fact_problem(release, selector.release, record)
        return ([f"release {selector.release}: {problem}"] if problem else []), []
    if selector.tree:
        return tree_problems(record), []
    if selector.run:
        verdict = run_verdict(record)
        if verdict.verdict == "pass":
            return [], []
        why = "; ".join(verdict.reasons[:5]) + (" ..." if len(verdict.reasons) > 5 else "")
        return [f"run verdict is {verdict.verdict}: {why}"], []
    matched = [item for item in record.items
               if (user_tests or is_own(item)) and matches(selector, item)]
    if not matched:
        scope = "" if user_tests else " among choirci's own items"
        return [f"no result matched {selector.describe()}{scope}"], []
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
    check = check_of(item)
    if check is None:
        return False
    if key == "check":
        return check[0] == pattern
    return bool(fnmatch.fnmatchcase(check[1], pattern))  # param: the check's own, never the host


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


def _closures(record: RunRecord) -> list[ItemResult]:
    return [i for i in record.items if i.area == "closures" and is_own(i)]


def _wall(items: Iterable[ItemResult]) -> float | None:
    try:
        return max(float(i.prop("wall_time") or "") for i in items)
    except ValueError:
        return None


def repeat_problems(record: RunRecord,
                    baselines: Sequence[RunRecord]) -> tuple[list[str], list[str]]:
    """A cached repeat: every closure passed and was ``substituted`` (fetched from a binary
    cache, not merely ``present``), a baseline run built the same derivations (same
    ``drv_path``) cold, and the repeat's build wall time is below the baseline's."""
    closures = _closures(record)
    if not closures:
        return ["no closure was built in this run"], []
    problems = [f"{i.nodeid} {i.outcome}" for i in closures if i.outcome != PASSED]
    problems += [f"{i.nodeid}: cache={i.prop('cache') or '(none)'}, a cache hit is "
                 "'substituted' from a binary cache" for i in closures
                 if i.outcome == PASSED and i.prop("cache") != "substituted"]
    repeat = _wall(closures)
    if problems or repeat is None:
        return problems or ["this run recorded no wall_time"], []
    drvs = {i.prop("drv_path") for i in closures}
    failed = []
    for base in baselines:  # the user chose them with --history; any one that fits counts
        built = {i.prop("drv_path"): i for i in _closures(base)
                 if i.outcome == PASSED and i.prop("cache") == "built"}
        if None in drvs or not drvs <= set(built):
            continue
        cold = _wall(built[d] for d in drvs)
        if cold is None or repeat >= cold:
            failed.append("the baseline run recorded no wall_time" if cold is None else
                          f"the repeat took {repeat:.1f}s, not less than the baseline's "
                          f"{cold:.1f}s")
            continue
        run = base.runs[0] if base.runs else None
        label = f"{run.started} ({(run.provenance.commit or '?')[:12]})" if run else "?"
        return [], [i.nodeid for i in closures] + [
            f"baseline run {label} built them in {cold:.1f}s, the repeat took {repeat:.1f}s"]
    missing = (f"no baseline run built the same {len(drvs)} derivation(s) cold; pass "
               "--history DIR of a run in which every closure was built")
    return failed[:1] or [missing], []


def converged_problems(record: RunRecord) -> tuple[list[str], list[str]]:
    """Hosts converged: a bundled host check reported the host's ``/run/current-system``
    (property ``current_system``) and it is the NixOS system toplevel built in this run."""
    built = {i.prop("out_path"): i for i in _closures(record)
             if i.outcome == PASSED and i.prop("nixos_system") == "true"}
    reports = [i for i in record.items if check_of(i) and i.prop("current_system")]
    if not reports:
        return [(f"no host check recorded a host's /run/current-system ({SYSTEM_CHECK} records "
                 "it on a NixOS host), so nothing shows it runs the built NixOS toplevel")], []
    if not built:
        return [("no NixOS system toplevel was built in this run (no closure with "
                "nixos_system=true passed)")], []
    problems = [f"{i.nodeid} {i.outcome}" for i in reports if i.outcome != PASSED]
    problems += [f"host {i.host or '?'} runs {i.prop('current_system')}, not a toplevel this "
                 f"run built ({', '.join(sorted(str(p) for p in built))})"
                 for i in reports if i.outcome == PASSED and i.prop("current_system") not in built]
    matched = [i.nodeid for i in reports] + [built[i.prop("current_system")].nodeid
                                             for i in reports if i.prop("current_system") in built]
    return problems, ([] if problems else list(dict.fromkeys(matched)))


def staged_problems(record: RunRecord,
                    baselines: Sequence[RunRecord]) -> tuple[list[str], list[str]]:
    """Production runs what staging verified: every host of this run that reported its system
    (``test_system.py::test_current_system``) runs exactly the service store paths that a host
    of ANOTHER name reported in a passing run of the same commit given with ``--history``.
    The toplevels may differ (each node has its own host config); the packages may not."""
    production = host_systems(record)
    if not production:
        return [(f"no host of this run reported the system it runs ({SYSTEM_CHECK} on a NixOS "
                 "host), so nothing shows what production runs")], []
    commit = release_record(record).grind_sha
    names = {h.host for h in production}
    runs = [(b, [h for h in host_systems(b) if h.host not in names]) for b in baselines
            if release_record(b).grind_sha == commit]
    runs = [(b, hosts) for b, hosts in runs if hosts]
    if not runs:
        return [(f"no staging evidence: pass --history STAGING_DIR, the evidence of a run of commit "
                 f"{commit or 'unknown'} whose host checks ran against the staging host (a host "
                 f"named other than {', '.join(sorted(names))})")], []
    verified = [h for b, hosts in runs if run_verdict(b).verdict == "pass"
                for h in hosts if h.outcome == PASSED and h.services]
    if not verified:
        why = "; ".join(f"{', '.join(h.host for h in hosts)}: run verdict {run_verdict(b).verdict}"
                        for b, hosts in runs)
        return [("the staging evidence verified nothing: no passing staging run recorded service "
                 f"store paths ({why})")], []
    problems = [_staging_mismatch(h, verified) for h in production]
    found = [p for p in problems if p]
    return found, ([] if found else [h.nodeid for h in production])


def _staging_mismatch(host: HostSystem, verified: Sequence[HostSystem]) -> str | None:
    if host.outcome != PASSED:
        return f"{host.nodeid} {host.outcome}"
    if not host.services:
        return (f"host {host.host} reported no service store paths (host_checks.units, "
                "unit_templates, oneshot_units name the services compared with staging)")
    if any(host.services == staged.services for staged in verified):
        return None
    staged = verified[0]
    mine, theirs = dict(host.services), dict(staged.services)
    diffs = [f"{unit}: {mine.get(unit, 'absent')} (staging {theirs.get(unit, 'absent')})"
             for unit in sorted(set(mine) | set(theirs)) if mine.get(unit) != theirs.get(unit)]
    return (f"host {host.host} does not run what staging ({staged.host}) verified: "
            f"{'; '.join(diffs[:5])}{' ...' if len(diffs) > 5 else ''}; deploy the verified "
            "release to it (or verify this one on staging first)")


def tree_problems(record: RunRecord) -> list[str]:
    problems = []
    for run in record.runs:
        if run.tree.before is None or run.tree.after is None:
            problems.append(f"{run.label}: git tree state unknown (not a git checkout?)")
        elif run.tree.dirtied:
            problems.append(f"{run.label} dirtied the git tree: {', '.join(run.tree.dirtied)}")
        elif run.tree.before:
            problems.append(f"{run.label} started from a dirty tree")
    return problems or ([] if record.runs else ["no run recorded"])


def tree_state(record: RunRecord) -> str:
    """``clean``, ``dirty`` or ``unknown`` over every run (bound into the gate verdict)."""
    if not record.runs or any(r.tree.before is None or r.tree.after is None for r in record.runs):
        return "unknown"
    return "dirty" if tree_problems(record) else "clean"
