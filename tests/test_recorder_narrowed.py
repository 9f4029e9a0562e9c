"""What the recorder says about a narrowed run: configured items left out by --closure,
--rust-test or --area are recorded (so a gate over them cannot pass), a finished shard says
so instead of INCOMPLETE, and a run where nothing passed is no pass."""

from __future__ import annotations

import json
from typing import Any

import pytest

from choirci.cli import main

TESTS = """
import pytest

def test_ok():
    pass

@pytest.mark.host
@pytest.mark.parametrize("target", ["grind"])
def test_health(target):
    pass
"""

# What the plugin does after collection for `pytest --grind --closure sandbox`.
NARROWING = """
import pytest

@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session):
    recorder = session.config.pluginmanager.get_plugin("choirci-recorder")
    recorder.note_narrowed(["closures::hypervisor", "rust::sandbox::supervision_test::*",
                            "hosts::*"], {"hosts::*": ("host",)}, "not selected: --closure")
    recorder.note_narrowed(["loops::fmt"], None, "not selected: --area")
"""

GATE = """\
id: narrow
title: Narrowed
sections:
  - title: Gate
    items:
      - text: "All closures build."
        require:
          - area: closures
      - text: "Rust tests of sandbox pass."
        require:
          - rust: "sandbox::*"
"""


def items(pytester: pytest.Pytester) -> dict[str, dict[str, Any]]:
    data = json.loads((pytester.path / "evidence" / "choirci.json").read_text())
    return {i["nodeid"]: i for run in data["runs"] for i in run["items"]}


@pytest.fixture
def narrowed(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    (pytester.path / "gates").mkdir()
    (pytester.path / "gates" / "narrow.yaml").write_text(GATE)
    pytester.makefile(".yaml", choirci="gates: gates\n")
    pytester.makepyfile(test_ws=TESTS, conftest=NARROWING)
    monkeypatch.delenv("CHOIRCI_CONFIG", raising=False)
    return pytester


def test_narrowed_items_are_recorded_as_deselected(narrowed: pytest.Pytester) -> None:
    narrowed.runpytest("--grind", "--python-tests", "-p", "no:cacheprovider")
    found = items(narrowed)
    assert {k: v["outcome"] for k, v in found.items()} == {
        "test_ws.py::test_ok": "passed", "test_ws.py::test_health[grind]": "passed",
        "closures::hypervisor": "deselected", "rust::sandbox::supervision_test::*": "deselected",
        "hosts::*": "deselected", "loops::fmt": "deselected",
    }
    assert found["closures::hypervisor"]["message"] == "not selected: --closure"
    assert found["hosts::*"]["area"] == "hosts" and found["hosts::*"]["markers"] == ["host"]
    assert found["loops::fmt"]["message"] == "not selected: --area"


def test_a_gate_over_narrowed_items_fails(narrowed: pytest.Pytester,
                                          monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    narrowed.runpytest("--grind", "--python-tests", "-p", "no:cacheprovider")
    monkeypatch.chdir(narrowed.path)
    capsys.readouterr()
    assert main(["gate", "narrow", "--evidence", "evidence"]) == 1
    out = capsys.readouterr().out
    assert "closures::hypervisor deselected: not selected: --closure" in out
    assert "rust::sandbox::supervision_test::* deselected" in out


def test_a_finished_shard_is_not_called_incomplete(pytester: pytest.Pytester,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makefile(".yaml", choirci="evidence: evidence\n")
    pytester.makepyfile(test_ws=TESTS)
    monkeypatch.setenv("CHOIRCI_SHARD", "closures-sandbox")
    monkeypatch.setenv("CHOIRCI_EXPECTED_SHARDS", "closures-sandbox,loops")
    result = pytester.runpytest("--grind", "--python-tests", "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["choirci: shard closures-sandbox complete (2 passed); the "
                                 "verdict needs all shards: choirci evidence merge"])
    assert "INCOMPLETE" not in result.stdout.str()
    assert json.loads((pytester.path / "evidence" / "choirci.json").read_text())["status"] == \
        "incomplete"  # the record itself still waits for the loops shard


def test_a_failing_shard_says_so(pytester: pytest.Pytester,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makefile(".yaml", choirci="evidence: evidence\n")
    pytester.makepyfile(test_ws="def test_bad():\n    assert 0\n")
    monkeypatch.setenv("CHOIRCI_SHARD", "loops")
    monkeypatch.setenv("CHOIRCI_EXPECTED_SHARDS", "closures-sandbox,loops")
    result = pytester.runpytest("--grind", "--python-tests", "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["choirci: shard loops complete (1 failed), FAIL on its own; "
                                 "the verdict needs all shards: choirci evidence merge"])


def test_an_all_skipped_run_is_a_fail(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", choirci="evidence: evidence\n")
    pytester.makepyfile(test_ws="import pytest\n\ndef test_a():\n    pytest.skip('no nix')\n\n"
                        "def test_b():\n    pytest.skip('no nix')\n")
    result = pytester.runpytest("--grind", "--python-tests", "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["choirci: verdict FAIL (2 skipped)",
                                 "choirci: fail: nothing passed: 2 skipped"])
    report = (pytester.path / "evidence" / "report.md").read_text()
    assert "**Verdict: FAIL** (2 skipped)" in report


def test_a_missing_gates_dir_is_named_before_anything_runs(pytester: pytest.Pytester) -> None:
    """Known at start: a typo must not mean "no gates evaluated" after a whole run."""
    pytester.makefile(".yaml", choirci="gates: checks/gatez\n")
    pytester.makepyfile(test_ws="def test_a():\n    pass\n")
    result = pytester.runpytest("--grind", "--python-tests", "-p", "no:cacheprovider")
    missing = pytester.path / "checks" / "gatez"
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: choirci.yaml:1: gates: no such directory {missing}; "
                                 "create it or remove the key*"])
    assert not (pytester.path / "evidence").exists()
