"""Gate verdicts (property-based) and `choirci gate` on passing, failing, partial and
interrupted evidence; exit codes; junit.xml cross-checked against the record."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from evidence_sample import COMMIT, closure, host_check, item, run
from hypothesis import given, settings
from hypothesis import strategies as st

from choirci.cli import main
from choirci.evidence import files as evidence
from choirci.evidence.record import RunRecord
from choirci.evidence.redact import Redactor
from choirci.gates import definitions as gates
from choirci.gates import verdicts

PHASE1 = gates.load("phase-1")
PHASE2 = gates.load("phase-2")
NAMES = ("sandbox", "desktop", "hypervisor")
PHASE1_FILES = {"manual/phase-1/container-lifecycle.txt", "manual/phase-1/websocket-e2e.txt",
                "manual/phase-1/podman-ps.txt", "manual/phase-1/hypervisor-logs.txt",
                "manual/phase-1/rollback-direct-process.md"}
OUTCOMES = ["passed", "failed", "error", "skipped", "xfailed", "xpassed", "deselected",
            "missing"]
SMOKE = item("release::prompt_smoke", "release", "release", "prompt_smoke",
             properties=(("run_id", "run-000001"), ("status", "completed")))


def phase1_items(auth: str = "passed", public: str = "passed", smoke: str = "passed"):
    return (host_check("test_hypervisor_auth_gate", "grind", auth, param="/api/x"),
            host_check("test_hypervisor_public_path", "grind", public, param="/login"),
            item("release::prompt_smoke", "release", "release", "prompt_smoke", smoke))


def passing_phase1(status: str = "complete", commit: str = COMMIT) -> RunRecord:
    return RunRecord(runs=(run(items=phase1_items(), status=status, commit=commit),))


def test_all_passed_with_all_evidence_is_pass() -> None:
    verdict = verdicts.evaluate(PHASE1, passing_phase1(), PHASE1_FILES)
    assert (verdict.verdict, verdict.exit_code) == ("pass", 0)


@settings(max_examples=300, deadline=None)
@given(
    outcomes=st.lists(st.sampled_from(OUTCOMES), min_size=3, max_size=3),
    present=st.lists(st.booleans(), min_size=3, max_size=3),
    files=st.sets(st.sampled_from(sorted(PHASE1_FILES))),
    status=st.sampled_from(["complete", "incomplete"]),
)
def test_pass_only_when_everything_required_passed(
    outcomes: list[str], present: list[bool], files: set[str], status: str
) -> None:
    items = tuple(i for i, p in zip(phase1_items(*outcomes), present, strict=True) if p)
    record = RunRecord(runs=(run(items=items, status=status),))
    verdict = verdicts.evaluate(PHASE1, record, files)
    everything = (all(present) and all(o == "passed" for o in outcomes)
                  and files == PHASE1_FILES)
    if status == "incomplete":
        assert (verdict.verdict, verdict.exit_code) == ("incomplete", 3)
    else:
        assert (verdict.verdict == "pass") == everything
        if not everything:
            assert verdict.verdict == "fail" and verdict.reasons


@settings(max_examples=100, deadline=None)
@given(st.sampled_from([o for o in OUTCOMES if o != "passed"]))
def test_no_outcome_but_passed_satisfies_a_selector(outcome: str) -> None:
    record = RunRecord(runs=(run(items=(closure("sandbox", outcome),)),))
    problems, _ = verdicts.check(PHASE2.items[0].require[0], record,
                                 verdicts.release_record(record))
    assert problems and outcome in problems[0]


def test_a_selector_matching_nothing_is_unmet() -> None:
    record = RunRecord(runs=(run(items=(closure("sandbox"),)),))
    verdict = verdicts.evaluate(PHASE2, record)
    assert verdict.verdict == "fail"
    assert any("no result matched closure=desktop" in r for r in verdict.reasons)


@pytest.fixture(autouse=True)
def _no_workspace_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI discovers choirci.yaml from the cwd: run where there is none."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CHOIRCI_CONFIG", raising=False)


# ----------------------------------------------------------------------------- CLI


def attest(directory: Path, names: set[str], commit: str = COMMIT) -> None:
    for name in names:
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_text(f"commit: {commit}\nattached transcript\n")


def write_evidence(directory: Path, record: RunRecord, files: set[str] = PHASE1_FILES) -> Path:
    evidence.write_all(record, directory, Redactor())
    attest(directory, files)
    return directory


@pytest.mark.parametrize(
    ("record", "files", "code", "word"),
    [
        (passing_phase1(), PHASE1_FILES, 0, "PASS"),
        (RunRecord(runs=(run(items=phase1_items(auth="failed")),)), PHASE1_FILES, 1, "FAIL"),
        (RunRecord(runs=(run(items=phase1_items()[:1]),)), PHASE1_FILES, 1, "FAIL"),  # partial
        (passing_phase1(), set(), 1, "FAIL"),  # manual evidence missing
        (passing_phase1("incomplete"), PHASE1_FILES, 3, "INCOMPLETE"),  # interrupted
    ],
    ids=["passing", "failing", "partial", "no-manual-evidence", "interrupted"],
)
def test_cli_gate_verdicts(tmp_path: Path, capsys: pytest.CaptureFixture[str], record: RunRecord,
                           files: set[str], code: int, word: str) -> None:
    directory = write_evidence(tmp_path / "ev", record, files)
    assert main(["gate", "phase-1", "--evidence", str(directory)]) == code
    out = capsys.readouterr().out
    assert out.startswith(f"choirci: gate phase-1: {word} ")
    report = (directory / "gates" / "phase-1.md").read_text()
    assert f"**Verdict: {word}**" in report
    data = json.loads((directory / "gates" / "phase-1.json").read_text())
    assert data["verdict"] == word.lower()
    assert (data["commit"], data["tree"], data["gates"]) == (COMMIT, "clean", "bundled")
    assert data["record_sha256"] == evidence.record_digest(directory)
    assert data["gate_sha256"] == PHASE1.digest


def test_exit_codes_are_distinct_and_documented(capsys: pytest.CaptureFixture[str]) -> None:
    assert verdicts.EXIT_CODES == {"pass": 0, "fail": 1, "incomplete": 3}
    assert verdicts.REFUSED == 2 and verdicts.REFUSED not in verdicts.EXIT_CODES.values()
    with pytest.raises(SystemExit):
        main(["gate", "--help"])
    assert "0 pass, 1 fail, 3 incomplete" in capsys.readouterr().out
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    assert "exit 0 pass, 1 fail, 3 incomplete, 2 refused or bad input" in readme
    workflow = (Path(__file__).parents[1] / ".github" / "workflows" / "choirci.yml").read_text()
    assert workflow.count("0) verdict=pass ;; 1) verdict=fail ;; 3) verdict=incomplete ;; "
                          "*) verdict=error ;;") == 2


def test_unknown_gate_is_a_one_line_error(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    directory = write_evidence(tmp_path / "ev", passing_phase1())
    assert main(["gate", "phase-7", "--evidence", str(directory)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("choirci: error: no gate 'phase-7'") and err.count("\n") == 1


def test_a_missing_gates_dir_is_a_one_line_error(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    directory = write_evidence(tmp_path / "ev", passing_phase1())
    missing = tmp_path / "gatez"
    assert main(["gate", "phase-1", "--evidence", str(directory), "--gates", str(missing)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"choirci: error: gates dir {missing} does not exist")
    assert err.count("\n") == 1 and "known gates" not in err


def test_run_report_names_a_missing_gates_dir(tmp_path: Path) -> None:
    missing = tmp_path / "gatez"
    evidence.write_all(passing_phase1(), tmp_path / "ev", Redactor(), gates_dir=missing)
    report = (tmp_path / "ev" / "report.md").read_text()
    assert f"## Gates\n\ngates not evaluated: gates dir {missing} does not exist" in report


# ------------------------------------------------------------------- junit.xml vs record


def test_an_edited_junit_xml_fails_the_gate(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    record = RunRecord(runs=(run(items=phase1_items(auth="failed")),))
    directory = write_evidence(tmp_path / "ev", record)
    junit = directory / "junit.xml"
    # Someone "fixes" the failure in junit.xml only; choirci.json still says failed.
    text, count = re.subn(r"<failure[^>]*?(/>|>.*?</failure>)", "", junit.read_text(),
                          flags=re.DOTALL)
    assert count == 1
    junit.write_text(text)
    assert main(["gate", "phase-1", "--evidence", str(directory)]) == 1
    out = capsys.readouterr().out
    assert "junit.xml differs from choirci.json (1 testcase(s) only in the record, 1 only in " \
           "junit.xml" in out


def test_a_stale_junit_xml_fails_even_a_passing_record(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    directory = write_evidence(tmp_path / "ev", passing_phase1())
    other = tmp_path / "other"
    evidence.write_all(RunRecord(runs=(run(items=(closure("sandbox"),)),)), other, Redactor())
    (directory / "junit.xml").write_text((other / "junit.xml").read_text())
    assert main(["gate", "phase-1", "--evidence", str(directory)]) == 1
    assert "differs from choirci.json" in capsys.readouterr().out
    (directory / "junit.xml").unlink()
    assert main(["gate", "phase-1", "--evidence", str(directory)]) == 1
    assert "junit.xml is missing" in capsys.readouterr().out
