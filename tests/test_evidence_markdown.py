"""Markdown renderings (run report, gate report, step summary) against golden files, plus
the evidence dir written atomically from one record."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from evidence_sample import golden, item, run, sample_record

from choirci.evidence import atomic, markdown
from choirci.evidence import files as evidence
from choirci.evidence.record import RunRecord
from choirci.evidence.redact import Redactor
from choirci.gates import definitions as gates
from choirci.gates import verdicts


def test_run_report_matches_golden() -> None:
    record = sample_record()
    found = [verdicts.evaluate(gate, record) for gate in gates.load_all()]
    golden("sample.report.md", markdown.run_report(record, found))


def test_phase_2_gate_report_matches_golden() -> None:
    record = sample_record()
    verdict = verdicts.evaluate(gates.load("phase-2"), record, {"manual/phase-2/workflow-runs.md"})
    report = markdown.gate_report(verdict, record)
    golden("phase-2.gate.md", report)
    assert ("- [x] Workflow run links attached. — **attested by a person**: "
            "`manual/phase-2/workflow-runs.md`") in report
    assert "- [ ] CI builds `sandbox`, `desktop`, and `hypervisor` flakes successfully." in report
    assert "**Verdict: FAIL**" in report


def test_excerpt_cannot_escape_its_code_fence() -> None:
    nasty = item("tests/t.py::t", "python", "tests.t", "t", "failed", message="boom",
                 details="```\n# injected heading\n````")
    body = markdown.run_report(RunRecord(runs=(run(items=(nasty,)),)))
    assert "`````text\n```\n# injected heading\n````\n`````" in body


def test_step_summary_is_capped() -> None:
    many = tuple(item(f"tests/t.py::t{i}", "python", "tests.t", f"t{i}", "failed",
                      message="m", details="y" * 5000) for i in range(40))
    summary = markdown.step_summary(RunRecord(runs=(run(items=many),)))
    assert len(summary) <= markdown.STEP_SUMMARY_LIMIT + 200
    assert "... and 30 more" in summary


def test_write_all_writes_every_file_and_the_step_summary(tmp_path: Path) -> None:
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    written = evidence.write_all(sample_record(), tmp_path / "ev", Redactor(),
                                 step_summary=str(summary))
    assert [p.name for p in written] == ["choirci.json", "junit.xml", "junit-xunit.xml",
                                         "report.md"]
    assert summary.read_text().startswith("earlier step\n# choirci run")
    loaded = evidence.load(tmp_path / "ev")
    assert loaded == sample_record()
    data = json.loads((tmp_path / "ev" / "choirci.json").read_text())
    assert data["release"]["prompt"]["run_id"] == "run-000001"
    assert data["release"]["domain"] == "os.choir.chat"


def test_renderings_of_a_reloaded_record_are_identical(tmp_path: Path) -> None:
    """Evidence is data first: JSON -> record -> renderings round-trips exactly."""
    first = evidence.render_all(sample_record())
    (tmp_path / "choirci.json").write_text(first["choirci.json"])
    assert evidence.render_all(evidence.load(tmp_path)) == first


def test_atomic_write_leaves_old_file_when_interrupted(tmp_path: Path) -> None:
    target = tmp_path / "choirci.json"
    atomic.write_text(target, "old")

    with pytest.raises(TypeError):
        atomic.write_text(target, 123)  # type: ignore[arg-type]  # write() raises midway
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["choirci.json"]  # no temp file left behind


def test_unreadable_record_is_a_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "choirci.json").write_text("{not json")
    with pytest.raises(Exception, match=r"choirci.json: unreadable run record") as info:
        evidence.load(tmp_path)
    assert "\n" not in str(info.value)
    (tmp_path / "choirci.json").write_text('{"schema": "choirci.run", "version": 99}')
    with pytest.raises(Exception, match="version 99 is not supported"):
        evidence.load(tmp_path)


def test_a_failure_shows_where_and_folds_long_logs() -> None:
    from choirci.evidence.record import RunRecord

    log = "\n".join(f"line {n}" for n in range(40))
    failing = item("rust::sandbox::api::t", "rust", "sandbox.api", "t", "failed",
                   message="assertion failed",
                   details=f"thread 't' panicked at tests/api.rs:27:5:\n{log}",
                   stdout="\n".join(f"out {n}" for n in range(30)),
                   properties=(("rust.source_root", "sandbox"),))
    report = markdown.run_report(RunRecord(runs=(run(items=(failing,)),)))
    assert "at `sandbox/tests/api.rs:27`" in report
    assert "<details><summary>failure (41 lines)</summary>" in report
    assert "<details><summary>output (last 20 of 30 lines)</summary>" in report
    tail = report.split("output (last 20 of 30 lines)")[1]
    assert "out 29" in tail and "out 9\n" not in tail
