"""The run verdict and what it reads: nothing passed is no pass, runs of different commits
make no verdict, and narrowed shards (placeholders for the items they left out) merge back
into the record of one full run (hypothesis), while a lone narrowed run never passes a gate
over what it left out."""

from __future__ import annotations

from pathlib import Path

import pytest
from evidence_sample import closure, host_check, item, run
from hypothesis import given, settings
from hypothesis import strategies as st

from choirci.cli import main
from choirci.evidence import files as evidence
from choirci.evidence import markdown
from choirci.session import outcomes
from choirci.evidence.record import ItemResult, RunRecord, counts_text, merge, run_verdict
from choirci.evidence.redact import Redactor
from choirci.gates import verdicts
from choirci.gates.definitions import Gate, GateItem, Selector

OTHER = "2bc0ffee2533ccdb07c504301e4e55bd5781ff2a"


def skipped(name: str) -> ItemResult:
    return item(f"rust::sandbox::api_test::{name}", "rust", "sandbox.api_test", name, "skipped",
                message="#[ignore]d (no reason given)")


@pytest.mark.parametrize(
    ("items", "reason"),
    [
        ((skipped("a"), skipped("b")), "nothing passed: 2 skipped"),
        ((closure("sandbox", "xfailed"), closure("desktop", "deselected")),
         "nothing passed: 1 xfailed, 1 deselected"),
        ((), "no items ran"),
    ],
    ids=["all-skipped", "xfailed-and-deselected", "empty"],
)
def test_nothing_passed_is_a_fail(items: tuple[ItemResult, ...], reason: str) -> None:
    verdict = run_verdict(RunRecord(runs=(run(items=items),)))
    assert (verdict.verdict, verdict.reasons) == ("fail", (reason,))


def test_one_pass_among_skips_is_a_pass() -> None:
    record = RunRecord(runs=(run(items=(skipped("a"), closure("sandbox"))),))
    assert run_verdict(record).verdict == "pass"


def test_shards_of_different_commits_make_no_verdict() -> None:
    names = ("closure-sandbox", "closure-desktop")
    a = RunRecord(runs=(run(shard=names[0], items=(closure("sandbox"),), expected=names),))
    b = RunRecord(runs=(run(shard=names[1], items=(closure("desktop"),), expected=names,
                            commit=OTHER),))
    verdict = run_verdict(merge([a, b]))
    assert verdict.verdict == "fail"
    assert verdict.reasons[0] == (
        f"the runs tested different commits: 1dcaf0ae2533ccdb07c504301e4e55bd5781ff2a "
        f"(shard 'closure-sandbox'); {OTHER} (shard 'closure-desktop')")
    gate = Gate("g", "G", "", None, (GateItem("closures", "Gate", True,
                                             (Selector(match=(("area", "closures"),)),)),), "g")
    assert verdicts.evaluate(gate, merge([a, b])).verdict == "fail"
    same = merge([a, RunRecord(runs=(run(shard=names[1], items=(closure("desktop"),),
                                         expected=names),))])
    assert run_verdict(same).verdict == "pass"
    assert verdicts.evaluate(gate, same).verdict == "pass"


@pytest.mark.parametrize(
    ("counts", "line"),
    [
        ({"passed": 2, "error": 8}, "2 passed, 8 errors"),
        ({"error": 1, "skipped": 3}, "1 error, 3 skipped"),
        ({}, "no items"),
    ],
)
def test_counts_read_as_english(counts: dict[str, int], line: str) -> None:
    assert counts_text(counts) == line


def test_report_headline_pluralises_errors() -> None:
    errors = tuple(host_check("test_sandbox_health", f"h{i}", "error") for i in range(8))
    report = markdown.run_report(RunRecord(runs=(run(items=errors),)))
    assert "**Verdict: FAIL** (8 errors)" in report


@pytest.fixture(autouse=True)
def _no_workspace_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI discovers choirci.yaml from the cwd: run where there is none."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CHOIRCI_CONFIG", raising=False)


def test_cli_merge_of_skipped_shards_fails(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    shard = RunRecord(runs=(run(shard="rust", items=(skipped("a"),), expected=("rust",)),))
    evidence.write_all(shard, tmp_path / "a", Redactor())
    assert main(["evidence", "merge", str(tmp_path / "a"), "--out", str(tmp_path / "o")]) == 1
    out = capsys.readouterr().out
    assert "choirci: verdict FAIL (1 skipped)" in out and "nothing passed: 1 skipped" in out


def test_cli_merge_of_different_commits_fails(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    names = ("a", "b")
    for name, commit in zip(names, ("1dcaf0ae2533ccdb07c504301e4e55bd5781ff2a", OTHER),
                            strict=True):
        shard = RunRecord(runs=(run(shard=name, items=(closure(name),), expected=names,
                                    commit=commit),))
        evidence.write_all(shard, tmp_path / name, Redactor())
    argv = ["evidence", "merge", str(tmp_path / "a"), str(tmp_path / "b"), "--out",
            str(tmp_path / "o")]
    assert main(argv) == 1
    assert "the runs tested different commits" in capsys.readouterr().out


# --------------------------------------------------------------------------- narrowed shards

TARGETS = {"rust::sandbox::api_test": ("t1", "t2"), "rust::hypervisor::sup_test": ("t",)}
UNITS: dict[str, tuple[str, ...]] = {  # what a shard runs all of or none of, -> node ids
    "closures::sandbox": ("closures::sandbox",),
    "closures::hypervisor": ("closures::hypervisor",),
    "loops::fmt": ("loops::fmt",),
    **{target: tuple(f"{target}::{t}" for t in tests) for target, tests in TARGETS.items()},
    "hosts::*": ("hosts::test_http.py::test_sandbox_health[ssh://grind]",),
    "release::prompt_smoke": ("release::prompt_smoke",),
}
ALL_IDS = sorted(nodeid for ids in UNITS.values() for nodeid in ids)


def executed(nodeid: str, outcome: str = "passed") -> ItemResult:
    if nodeid.startswith("hosts::"):
        return host_check("test_sandbox_health", "grind", outcome)
    return outcomes.finish(nodeid, outcome, (), [])


def narrowed_run(shard: str, units: list[str], expected: tuple[str, ...]) -> RunRecord:
    """A shard that ran ``units`` and noted the others as the plugin does (Recorder
    .note_narrowed): target-level placeholders for Rust targets, hosts::* for host checks."""
    ran = [executed(nodeid) for unit in units for nodeid in UNITS[unit]]
    left_out = [f"{unit}::*" if unit in TARGETS else unit for unit in UNITS if unit not in units]
    notes = [outcomes.placeholder(nodeid, "deselected", ("host",) if nodeid == "hosts::*" else (),
                                  "not selected: --area") for nodeid in left_out]
    return RunRecord(runs=(run(shard=shard, items=tuple(ran + notes), expected=expected),))


def gate_over(*selectors: tuple[str, str]) -> Gate:
    items = tuple(GateItem(f"{k}={v}", "Gate", True, (Selector(match=((k, v),)),))
                  for k, v in selectors)
    return Gate("narrow", "narrowed", "", None, items, "test")


GATE = gate_over(("area", "closures"), ("area", "loops"), ("rust", "sandbox::*"),
                 ("rust", "hypervisor::*"), ("marker", "host"), ("area", "release"))

assignments = st.lists(st.integers(min_value=0, max_value=3), min_size=len(UNITS),
                       max_size=len(UNITS))


def shards_of(assignment: list[int]) -> list[RunRecord]:
    groups: dict[int, list[str]] = {}
    for unit, index in zip(UNITS, assignment, strict=True):
        groups.setdefault(index, []).append(unit)
    names = tuple(f"s{i}" for i in sorted(groups))
    return [narrowed_run(f"s{i}", units, names) for i, units in sorted(groups.items())]


@settings(max_examples=150, deadline=None)
@given(assignments, st.randoms())
def test_merged_narrowed_shards_read_like_one_full_run(assignment: list[int],
                                                       rnd: object) -> None:
    parts = shards_of(assignment)
    rnd.shuffle(parts)  # type: ignore[attr-defined]
    merged = merge(parts)
    assert sorted(i.nodeid for i in merged.items) == ALL_IDS
    assert merged.counts() == {"passed": len(ALL_IDS)}
    assert run_verdict(merged).verdict == "pass"
    assert verdicts.evaluate(GATE, merged).verdict == "pass"
    # The shards themselves keep their notes: merging again changes nothing.
    assert merge([merged, *parts]) == merged


@settings(max_examples=150, deadline=None)
@given(assignments)
def test_a_lone_narrowed_run_never_passes_a_gate_over_what_it_left_out(
    assignment: list[int]
) -> None:
    for shard in shards_of(assignment):
        lone = RunRecord(runs=(run(shard="", items=shard.runs[0].items),))
        ran = {i.nodeid for i in lone.items if i.outcome == "passed"}
        for key, value in ((k, v) for gate_item in GATE.items
                           for k, v in gate_item.require[0].match):
            verdict = verdicts.evaluate(gate_over((key, value)), lone)
            covered = all(nodeid in ran for nodeid in ALL_IDS
                          if verdicts.matches(Selector(match=((key, value),)),
                                              executed(nodeid)))
            assert (verdict.verdict == "pass") == covered, (key, value, verdict.reasons)


def test_a_failure_in_the_owning_shard_still_fails_the_merge() -> None:
    names = ("s0", "s1")
    a = narrowed_run("s0", ["closures::sandbox"], names)
    failing = outcomes.finish("closures::hypervisor", "failed", (), [])
    b = RunRecord(runs=(run(shard="s1", items=(failing,), expected=names),))
    merged = merge([a, b])
    assert [i.outcome for i in merged.items if i.nodeid == "closures::hypervisor"] == ["failed"]
    assert run_verdict(merged).verdict == "fail"


def test_a_node_left_out_by_every_shard_stays_deselected() -> None:
    names = ("s0", "s1")
    a = narrowed_run("s0", ["closures::sandbox"], names)
    b = narrowed_run("s1", ["loops::fmt"], names)
    merged = merge([a, b])
    left = [i for i in merged.items if i.nodeid == "closures::hypervisor"]
    assert [i.outcome for i in left] == ["deselected", "deselected"]
    assert verdicts.evaluate(gate_over(("closure", "hypervisor")), merged).verdict == "fail"
