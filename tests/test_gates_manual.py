"""Manual evidence is a person's word about one commit: shown as "attested by a person",
refused when it is a placeholder, binary, a symlink out of the evidence dir or about another
commit; one file per checklist line."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from evidence_sample import COMMIT, host_check, item, run

from choirci.cli import main
from choirci.errors import ConfigError
from choirci.evidence import files as evidence
from choirci.evidence.record import RunRecord
from choirci.evidence.redact import Redactor
from choirci.gates import definitions as gates
from choirci.gates import manual, verdicts

OTHER = "0123456789abcdef0123456789abcdef01234567"
NAME = "manual/phase-1/podman-ps.txt"
PHASE1 = gates.load("phase-1")
FILES = [name for i in PHASE1.items for name in i.manual]


@pytest.fixture(autouse=True)
def _no_workspace_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CHOIRCI_CONFIG", raising=False)


def record(commit: str = COMMIT) -> RunRecord:
    items = (host_check("test_hypervisor_auth_gate", "grind", param="/api/x"),
             host_check("test_hypervisor_public_path", "grind", param="/login"),
             item("release::prompt_smoke", "release", "release", "prompt_smoke"))
    return RunRecord(runs=(run(items=items, commit=commit),))


def evidence_dir(tmp_path: Path, commit: str = COMMIT) -> Path:
    directory = tmp_path / "ev"
    evidence.write_all(record(commit), directory, Redactor())
    for name in FILES:
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_text(f"commit: {COMMIT}\n$ podman ps\nCONTAINER ID ...\n")
    return directory


def found(directory: Path, commit: str | None = COMMIT) -> verdicts.Attestation:
    return manual.attest(directory, [NAME], commit)[NAME]


def test_a_file_naming_the_commit_attests_it(tmp_path: Path) -> None:
    directory = evidence_dir(tmp_path)
    assert found(directory) == verdicts.Attestation(NAME, "")


@pytest.mark.parametrize(("content", "why"), [
    (b"", "is empty"),
    (b" \n\t\n", "is empty"),
    (b"TODO\n", "names no commit"),
    (f"commit: {COMMIT}\nTODO\n".encode(), "is a placeholder ('TODO')"),
    (f"commit: {COMMIT}\ntbd: fill in later\n".encode(), "is a placeholder"),
    (f"commit: {COMMIT}\n...\n".encode(), "is a placeholder"),
    (f"commit: {COMMIT}\n".encode(), "holds only the commit line"),
    (f"commit: {COMMIT}\nok\x00\n".encode(), "holds NUL bytes"),
    (f"commit: {COMMIT}\n\xff\xfe\n".encode("latin-1"), "is not UTF-8 text"),
    (b"$ podman ps\nCONTAINER ID\n", "names no commit; add a line 'commit: " + COMMIT),
    (f"commit: {OTHER}\n$ podman ps\n".encode(), f"attests commit {OTHER}, but the run tested"),
    (f"commit: {COMMIT[:12]}\n$ podman ps\n".encode(), "not a full 40-hex commit id"),
])
def test_placeholders_binary_and_other_commits_are_refused(tmp_path: Path, content: bytes,
                                                           why: str) -> None:
    directory = evidence_dir(tmp_path)
    (directory / NAME).write_bytes(content)
    assert why in found(directory).problem
    verdict = verdicts.evaluate(PHASE1, record(), manual.attest(directory, FILES, COMMIT))
    assert verdict.verdict == "fail"
    assert any(f"manual evidence {NAME} " in r and why in r for r in verdict.reasons)


def test_a_symlink_out_of_the_evidence_dir_is_refused(tmp_path: Path) -> None:
    directory = evidence_dir(tmp_path)
    (directory / NAME).unlink()
    os.symlink("/etc/hostname", directory / NAME)
    assert "leads out of the evidence dir (to /etc/hostname)" in found(directory).problem
    (directory / NAME).unlink()
    outside = tmp_path / "outside.txt"
    outside.write_text(f"commit: {COMMIT}\nreal text\n")
    os.symlink(outside, directory / NAME)
    assert "leads out of the evidence dir" in found(directory).problem
    inside = directory / "manual" / "shared.txt"
    inside.write_text(f"commit: {COMMIT}\nreal text\n")
    (directory / NAME).unlink()
    os.symlink(inside, directory / NAME)
    assert found(directory).problem == ""


def test_a_per_commit_path_attests_that_commit_only(tmp_path: Path) -> None:
    directory = evidence_dir(tmp_path)
    (directory / NAME).unlink()
    per_commit = directory / "manual" / COMMIT / "phase-1" / "podman-ps.txt"
    per_commit.parent.mkdir(parents=True)
    per_commit.write_text("$ podman ps\nCONTAINER ID\n")
    assert found(directory) == verdicts.Attestation(manual.per_commit_path(NAME, COMMIT), "")
    assert "names no commit" not in found(directory).problem
    assert NAME not in manual.attest(directory, [NAME], OTHER)  # nothing for another commit


def test_evidence_of_an_earlier_commit_does_not_survive_a_new_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = evidence_dir(tmp_path)
    assert main(["gate", "phase-1", "--evidence", str(directory)]) == 0
    evidence.write_all(record(OTHER), directory, Redactor())  # a new run, same dir
    assert main(["gate", "phase-1", "--evidence", str(directory)]) == 1
    out = capsys.readouterr().out
    assert f"attests commit {COMMIT}, but the run tested {OTHER}" in out


def test_the_report_shows_attested_apart_from_checked(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    directory = evidence_dir(tmp_path)
    assert main(["gate", "phase-1", "--evidence", str(directory)]) == 0
    assert "5 of them attested by a person" in capsys.readouterr().out
    report = (directory / "gates" / "phase-1.md").read_text()
    assert (f"- [x] `podman ps` lifecycle output attached. — **attested by a person**: `{NAME}`"
            in report)
    assert ("- [x] Auth + proxy path works through hypervisor. — checked: "
            "`hosts::test_http.py::test_hypervisor_auth_gate[/api/x-ssh://grind]`") in report
    data = (directory / "gates" / "phase-1.json").read_text()
    assert '"attested_by": [\n        "manual/phase-1/podman-ps.txt"' in data


def test_one_file_per_checklist_line(tmp_path: Path) -> None:
    body = ("id: phase-9\ntitle: t\nsections:\n  - title: Gate\n    items:\n"
            "      - text: a\n        require:\n          - closure: sandbox\n"
            "        manual: manual/x.txt\n"
            "      - text: b\n        manual: manual/x.txt\n")
    (tmp_path / "phase-9.yaml").write_text(body)
    with pytest.raises(ConfigError, match=r"manual file manual/x.txt serves two checklist lines"):
        gates.load("phase-9", tmp_path)


def test_bundled_gates_use_each_manual_file_once() -> None:
    names = [name for gate in gates.load_all() for i in gate.items for name in i.manual]
    assert len(names) == len(set(names))
