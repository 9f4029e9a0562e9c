"""Merging matrix shards: order-independent, idempotent, a missing shard is never a pass
(hypothesis), and `choirci evidence merge` as a user runs it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from evidence_sample import COMMIT, closure, host_check, item, run
from hypothesis import given, settings
from hypothesis import strategies as st

from choirci.cli import main
from choirci.evidence import files as evidence
from choirci.evidence.files import from_json
from choirci.evidence.record import RunRecord, merge, run_verdict
from choirci.evidence.redact import Redactor

OUTCOMES = st.sampled_from(["passed", "failed", "error", "skipped", "xfailed", "missing"])
SHARDS = st.sampled_from(["", "sandbox", "hypervisor", "desktop"])
STAMPS = st.sampled_from(["2026-02-22T10:00:00Z", "2026-02-22T11:00:00Z", None])


@st.composite
def shard_runs(draw: st.DrawFn) -> RunRecord:
    shard = draw(SHARDS)
    outcomes = draw(st.lists(OUTCOMES, min_size=0, max_size=3))
    items = tuple(item(f"closures::c{i}", "closures", "closures", f"c{i}", o)
                  for i, o in enumerate(outcomes))
    finished = draw(STAMPS)
    status = draw(st.sampled_from(["complete", "incomplete"])) if finished else "incomplete"
    expected = tuple(draw(st.sets(st.sampled_from(["sandbox", "hypervisor", "desktop"]))))
    return RunRecord(runs=(run(shard=shard, status=status, items=items, finished=finished,
                               expected=expected),))


records = st.lists(shard_runs(), min_size=0, max_size=5)


@settings(max_examples=200, deadline=None)
@given(records, st.randoms())
def test_merge_is_order_independent(parts: list[RunRecord], rnd: object) -> None:
    shuffled = list(parts)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    assert merge(parts) == merge(shuffled)


@settings(max_examples=200, deadline=None)
@given(records)
def test_merge_is_idempotent_and_associative(parts: list[RunRecord]) -> None:
    once = merge(parts)
    assert merge([once, once]) == once
    assert merge([once]) == once
    half = len(parts) // 2
    assert merge([merge(parts[:half]), merge(parts[half:])]) == once


@settings(max_examples=200, deadline=None)
@given(records)
def test_a_missing_shard_is_never_a_pass(parts: list[RunRecord]) -> None:
    merged = merge(parts)
    if merged.missing_shards:
        assert merged.status == "incomplete"
        assert run_verdict(merged).verdict == "incomplete"


@settings(max_examples=100, deadline=None)
@given(records)
def test_merge_survives_the_json_round_trip(parts: list[RunRecord]) -> None:
    merged = merge(parts)
    text = evidence.record_json(merged)
    assert from_json(json.loads(text)) == merged


def test_rerun_of_a_shard_replaces_the_earlier_attempt() -> None:
    early = RunRecord(runs=(run(shard="desktop", finished="2026-02-22T10:00:00Z",
                                items=(closure("desktop", "failed"),)),))
    late = RunRecord(runs=(run(shard="desktop", finished="2026-02-22T11:00:00Z",
                               items=(closure("desktop"),)),))
    assert merge([early, late]) == merge([late, early]) == late


@pytest.fixture(autouse=True)
def _no_workspace_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI discovers choirci.yaml from the cwd: run where there is none."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CHOIRCI_CONFIG", raising=False)


def _write_shard(directory: Path, shard: str, items: tuple, expected: tuple[str, ...]) -> Path:
    record = RunRecord(runs=(run(shard=shard, items=items, expected=expected),))
    evidence.write_all(record, directory, Redactor())
    return directory


def test_cli_merge_renders_like_one_run(tmp_path: Path, capsys: object) -> None:
    expected = ("hosts", "sandbox")
    a = _write_shard(tmp_path / "a", "sandbox", (closure("sandbox"),), expected)
    b = _write_shard(tmp_path / "b", "hosts", (host_check("test_sandbox_health", "grind"),),
                     expected)
    assert main(["evidence", "merge", str(a), str(b), "--out", str(tmp_path / "out")]) == 0
    merged = evidence.load(tmp_path / "out")
    assert [r.shard for r in merged.runs] == ["hosts", "sandbox"]
    junit = (tmp_path / "out" / "junit.xml").read_text()
    assert 'name="closures"' in junit and 'hostname="grind"' in junit
    assert main(["evidence", "merge", str(b), str(a), "--out", str(tmp_path / "again")]) == 0
    for name in ("choirci.json", "junit.xml", "report.md"):
        assert (tmp_path / "out" / name).read_text() == (tmp_path / "again" / name).read_text()


def test_cli_merge_with_a_missing_shard_is_incomplete(tmp_path: Path, capsys: object) -> None:
    a = _write_shard(tmp_path / "a", "sandbox", (closure("sandbox"),), ("sandbox", "desktop"))
    assert main(["evidence", "merge", str(a), "--out", str(tmp_path / "out")]) == 3
    out = capsys.readouterr().out  # type: ignore[attr-defined]
    assert "verdict INCOMPLETE" in out and "shard 'desktop' is missing" in out


def test_cli_merge_of_a_dir_without_record_is_a_one_line_error(tmp_path: Path,
                                                              capsys: object) -> None:
    (tmp_path / "empty").mkdir()
    assert main(["evidence", "merge", str(tmp_path / "empty"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err  # type: ignore[attr-defined]
    assert err.startswith("choirci: error: ") and "no run record here" in err
    assert err.count("\n") == 1


OTHER = "0" * 40


def test_runs_of_one_shard_from_different_commits_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two runs of shard sandbox: commit A passed, commit B (later) too; which is the
    run under judgement? Neither is taken silently."""
    expected = ("sandbox",)
    a = RunRecord(runs=(run(shard="sandbox", items=(closure("sandbox"),), expected=expected),))
    b = RunRecord(runs=(run(shard="sandbox", items=(closure("sandbox"),), expected=expected,
                            commit=OTHER, finished="2026-02-23T00:00:00Z"),))
    evidence.write_all(a, tmp_path / "a", Redactor())
    evidence.write_all(b, tmp_path / "b", Redactor())
    argv = ["evidence", "merge", str(tmp_path / "a"), str(tmp_path / "b"), "--out",
            str(tmp_path / "out")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "shard 'sandbox' has runs of different commits" in err
    assert "--keep-commit" in err and not (tmp_path / "out").exists()
    assert main([*argv, "--keep-commit", COMMIT]) == 0
    out = capsys.readouterr().out
    assert "merged 1 shard run(s)" in out
    assert evidence.load(tmp_path / "out").runs[0].provenance.commit == COMMIT
    assert main([*argv, "--keep-commit", "f" * 40]) == 2
    assert "has no run of --keep-commit" in capsys.readouterr().err


def test_a_lone_shard_without_expected_shards_is_not_complete() -> None:
    lone = RunRecord(runs=(run(shard="sandbox", items=(closure("sandbox"),)),))
    assert lone.status == "incomplete"
    assert "names no expected shards" in lone.incomplete_reasons[0]
    assert run_verdict(lone).verdict == "incomplete"
    unsharded = RunRecord(runs=(run(items=(closure("sandbox"),)),))
    assert unsharded.status == "complete"
