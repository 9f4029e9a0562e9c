"""Gate verdicts (property-based) and `choirci gate` on passing, failing, partial and
interrupted evidence, with phase order enforced."""

from __future__ import annotations

from pathlib import Path

import pytest
from evidence_sample import closure, host_check, item, run
from hypothesis import given, settings
from hypothesis import strategies as st

from choirci.cli import main
from choirci.evidence import files as evidence
from choirci.evidence.record import RunRecord
from choirci.evidence.redact import Redactor
from choirci.gates import definitions as gates
from choirci.gates import verdicts

PHASE2 = gates.load("phase-2")
NAMES = ("sandbox", "desktop", "hypervisor")
PHASE2_FILES = {"manual/phase-2/workflow-runs.md", "manual/phase-2/build-durations.md",
                "manual/phase-2/rollback-cache.md"}
OUTCOMES = ["passed", "failed", "error", "skipped", "xfailed", "xpassed", "deselected",
            "missing"]


def passing_phase2(status: str = "complete") -> RunRecord:
    items = tuple(closure(n, cache="substituted") for n in NAMES)
    return RunRecord(runs=(run(items=items, status=status),))


def test_all_passed_with_all_evidence_is_pass() -> None:
    verdict = verdicts.evaluate(PHASE2, passing_phase2(), PHASE2_FILES)
    assert (verdict.verdict, verdict.exit_code) == ("pass", 0)


@settings(max_examples=300, deadline=None)
@given(
    outcomes=st.lists(st.sampled_from(OUTCOMES), min_size=3, max_size=3),
    caches=st.lists(st.sampled_from(["present", "substituted", "built"]), min_size=3, max_size=3),
    present=st.lists(st.booleans(), min_size=3, max_size=3),
    files=st.sets(st.sampled_from(sorted(PHASE2_FILES))),
    status=st.sampled_from(["complete", "incomplete"]),
)
def test_pass_only_when_everything_required_passed(
    outcomes: list[str], caches: list[str], present: list[bool], files: set[str], status: str
) -> None:
    items = tuple(closure(n, o, cache=c)
                  for n, o, c, p in zip(NAMES, outcomes, caches, present, strict=True) if p)
    record = RunRecord(runs=(run(items=items, status=status),))
    verdict = verdicts.evaluate(PHASE2, record, files)
    everything = (all(present) and all(o == "passed" for o in outcomes)
                  and all(c != "built" for c in caches) and files == PHASE2_FILES)
    if status == "incomplete":
        assert verdict.verdict == "incomplete"
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
    verdict = verdicts.evaluate(PHASE2, record, PHASE2_FILES)
    assert verdict.verdict == "fail"
    assert any("no result matched closure=desktop" in r for r in verdict.reasons)


def test_host_check_selector_and_release_facts() -> None:
    items = (host_check("test_sandbox_health", "grind"),
             host_check("test_sandbox_processes_running", "grind"))
    record = RunRecord(runs=(run(items=items),))
    dod = verdicts.evaluate(gates.load("definition-of-done"), record,
                            {"manual/definition-of-done/route-swap.txt",
                             "manual/definition-of-done/restore-timing.txt"})
    assert dod.verdict == "pass"
    release = verdicts.evaluate(gates.load("release"), record)
    assert release.verdict == "fail"
    joined = " ".join(release.reasons)
    assert "no promoted SHA recorded" in joined and "release::prompt_smoke did not run" in joined


def test_release_gate_passes_with_all_four_facts_and_a_clean_tree() -> None:
    smoke = item("release::prompt_smoke", "release", "release", "prompt_smoke",
                 properties=(("run_id", "run-000001"), ("status", "completed")))
    sha = "1dcaf0ae2533ccdb07c504301e4e55bd5781ff2a"
    record = RunRecord(runs=(run(items=(smoke,), promoted=sha[:12]),))
    assert verdicts.evaluate(gates.load("release"), record).verdict == "pass"
    dirty = RunRecord(runs=(run(items=(smoke,), promoted=sha, dirtied=("?? out.txt",)),))
    verdict = verdicts.evaluate(gates.load("release"), dirty)
    assert verdict.verdict == "fail" and "dirtied the git tree: ?? out.txt" in verdict.reasons[0]
    other = RunRecord(runs=(run(items=(smoke,), promoted="abcdef1"),))
    assert "is not the grind commit" in verdicts.evaluate(gates.load("release"), other).reasons[0]


@pytest.fixture(autouse=True)
def _no_workspace_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI discovers choirci.yaml from the cwd: run where there is none."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CHOIRCI_CONFIG", raising=False)


# ----------------------------------------------------------------------------- CLI


def write_evidence(directory: Path, record: RunRecord, files: set[str] = PHASE2_FILES) -> Path:
    evidence.write_all(record, directory, Redactor())
    for name in files:
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_text("attached\n")
    (directory / "gates").mkdir(exist_ok=True)
    (directory / "gates" / "phase-1.json").write_text('{"gate": "phase-1", "verdict": "pass"}')
    return directory


@pytest.mark.parametrize(
    ("record", "files", "code", "word"),
    [
        (passing_phase2(), PHASE2_FILES, 0, "PASS"),
        (RunRecord(runs=(run(items=(closure("sandbox"), closure("desktop", "failed"),
                                    closure("hypervisor"))),)), PHASE2_FILES, 1, "FAIL"),
        (RunRecord(runs=(run(items=(closure("sandbox"),)),)), PHASE2_FILES, 1, "FAIL"),  # partial
        (passing_phase2(), set(), 1, "FAIL"),  # manual evidence missing
        (passing_phase2("incomplete"), PHASE2_FILES, 2, "INCOMPLETE"),  # interrupted
    ],
    ids=["passing", "failing", "partial", "no-manual-evidence", "interrupted"],
)
def test_cli_gate_verdicts(tmp_path: Path, capsys: pytest.CaptureFixture[str], record: RunRecord,
                           files: set[str], code: int, word: str) -> None:
    directory = write_evidence(tmp_path / "ev", record, files)
    assert main(["gate", "phase-2", "--evidence", str(directory)]) == code
    out = capsys.readouterr().out
    assert out.startswith(f"choirci: gate phase-2: {word} ")
    report = (directory / "gates" / "phase-2.md").read_text()
    assert f"**Verdict: {word}**" in report
    assert f'"verdict": "{word.lower()}"' in (directory / "gates" / "phase-2.json").read_text()


def test_phase_order_is_enforced(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory = write_evidence(tmp_path / "ev", passing_phase2())
    (directory / "gates" / "phase-1.json").unlink()
    assert main(["gate", "phase-2", "--evidence", str(directory)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("choirci: error: phase-2 comes after phase-1")
    assert "there is none" in err and not (directory / "gates" / "phase-2.md").exists()
    (directory / "gates" / "phase-1.json").write_text('{"gate": "phase-1", "verdict": "fail"}')
    assert main(["gate", "phase-2", "--evidence", str(directory)]) == 2
    assert "it is 'fail'" in capsys.readouterr().err
    history = tmp_path / "history"
    (history / "gates").mkdir(parents=True)
    (history / "gates" / "phase-1.json").write_text('{"gate": "phase-1", "verdict": "pass"}')
    assert main(["gate", "phase-2", "--evidence", str(directory), "--history", str(history)]) == 0


def test_a_passing_gate_unlocks_the_next_phase(tmp_path: Path) -> None:
    """phase-1's verdict file written by `choirci gate phase-1` is what phase-2 reads."""
    directory = write_evidence(tmp_path / "ev", passing_phase2())
    (directory / "gates" / "phase-1.json").unlink()
    assert main(["gate", "phase-1", "--evidence", str(directory)]) == 1  # nothing of phase 1
    assert main(["gate", "phase-2", "--evidence", str(directory)]) == 2  # so refused


def test_unknown_gate_is_a_one_line_error(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    directory = write_evidence(tmp_path / "ev", passing_phase2())
    assert main(["gate", "phase-7", "--evidence", str(directory)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("choirci: error: no gate 'phase-7'") and err.count("\n") == 1


@pytest.mark.parametrize(("content", "reason"), [
    (None, "is not in the evidence dir"),
    ("", "is empty"),
    (" \n\t\n", "is empty"),
])
def test_blank_manual_evidence_is_named_and_never_satisfies(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None, reason: str
) -> None:
    name = "manual/phase-2/workflow-runs.md"
    directory = write_evidence(tmp_path / "ev", passing_phase2(), PHASE2_FILES - {name})
    if content is not None:
        (directory / name).write_text(content)
    assert main(["gate", "phase-2", "--evidence", str(directory)]) == 1
    assert f"manual evidence {name} {reason}" in capsys.readouterr().out
    (directory / name).write_text("https://github.com/o/r/actions/runs/1\n")
    assert main(["gate", "phase-2", "--evidence", str(directory)]) == 0


def test_whitespace_only_files_are_not_evidence(tmp_path: Path) -> None:
    (tmp_path / "manual").mkdir()
    (tmp_path / "manual" / "blank.md").write_text("  \n")
    (tmp_path / "manual" / "empty.md").write_text("")
    (tmp_path / "manual" / "ok.md").write_text("\n\n ok")
    assert evidence.evidence_files(tmp_path) == {"manual/ok.md"}
    assert evidence.blank_files(tmp_path) == {"manual/blank.md", "manual/empty.md"}


def test_a_missing_gates_dir_is_a_one_line_error(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    directory = write_evidence(tmp_path / "ev", passing_phase2())
    missing = tmp_path / "gatez"
    assert main(["gate", "phase-2", "--evidence", str(directory), "--gates", str(missing)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"choirci: error: gates dir {missing} does not exist")
    assert err.count("\n") == 1 and "known gates" not in err


def test_run_report_names_a_missing_gates_dir(tmp_path: Path) -> None:
    missing = tmp_path / "gatez"
    evidence.write_all(passing_phase2(), tmp_path / "ev", Redactor(), gates_dir=missing)
    report = (tmp_path / "ev" / "report.md").read_text()
    assert f"## Gates\n\ngates not evaluated: gates dir {missing} does not exist" in report
