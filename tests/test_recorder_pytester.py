"""The recorder as a user runs it: `pytest --grind` in a pytester workspace with ordinary
Python tests (marked like host checks), no nix or cargo needed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from typing import Any

import pytest

from choirci import proc

CONFIG = "release:\n  domain: os.choir.chat\n"

TESTS = """
import pytest

def test_ok(record_property):
    record_property("out_path", "/nix/store/abc-sandbox")
    print("built fine")

def test_fail():
    assert 1 == 2, "sandbox returned 500"

@pytest.mark.host
@pytest.mark.parametrize("target", ["grind"])
def test_health(target, record_property):
    record_property("host", target)

def test_skip():
    pytest.skip("no docker here")

@pytest.mark.xfail(reason="known")
def test_xfail():
    assert 0

@pytest.fixture
def broken():
    raise RuntimeError("fixture broke")

def test_error(broken):
    pass
"""


@pytest.fixture
def workspace(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makefile(".yaml", choirci=CONFIG)
    pytester.makepyfile(test_ws=TESTS)
    return pytester


def record(pytester: pytest.Pytester) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((pytester.path / "evidence" / "choirci.json").read_text())
    return data


def outcomes(data: dict[str, Any]) -> dict[str, str]:
    return {i["nodeid"]: i["outcome"] for run in data["runs"] for i in run["items"]}


def test_grind_run_writes_json_junit_and_report(workspace: pytest.Pytester) -> None:
    result = workspace.runpytest("--grind", "--python-tests", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1 + 1, failed=1, skipped=1, xfailed=1, errors=1)
    result.stdout.fnmatch_lines([
        f"choirci: evidence written to {workspace.path / 'evidence'}",
        "*choirci.json", "*junit.xml", "*report.md",
        "choirci: verdict FAIL (2 passed, 1 failed, 1 error, 1 skipped, 1 xfailed)",
    ])
    data = record(workspace)
    assert data["status"] == "complete"
    assert outcomes(data) == {
        "test_ws.py::test_ok": "passed", "test_ws.py::test_fail": "failed",
        "test_ws.py::test_health[grind]": "passed", "test_ws.py::test_skip": "skipped",
        "test_ws.py::test_xfail": "xfailed", "test_ws.py::test_error": "error",
    }
    items = {i["nodeid"]: i for i in data["runs"][0]["items"]}
    assert items["test_ws.py::test_health[grind]"]["area"] == "hosts"
    assert items["test_ws.py::test_health[grind]"]["host"] == "grind"
    assert items["test_ws.py::test_ok"]["properties"] == [["out_path", "/nix/store/abc-sandbox"]]
    assert items["test_ws.py::test_ok"]["stdout"] == "built fine\n"
    assert items["test_ws.py::test_fail"]["message"].endswith("sandbox returned 500")
    assert items["test_ws.py::test_error"]["message"] == "RuntimeError: fixture broke"
    assert data["release"]["domain"] == "os.choir.chat"
    junit = (workspace.path / "evidence" / "junit.xml").read_text()
    assert 'hostname="grind"' in junit and "  out_path: /nix/store/abc-sandbox" in junit
    assert '<property name="out_path" value="/nix/store/abc-sandbox" />' in junit


def test_without_grind_nothing_is_written(workspace: pytest.Pytester) -> None:
    workspace.runpytest("-p", "no:cacheprovider")
    assert not (workspace.path / "evidence").exists()


def test_deselected_and_missing_results_are_recorded(workspace: pytest.Pytester) -> None:
    workspace.runpytest("--grind", "--python-tests", "-p", "no:cacheprovider", "-x", "-k", "not test_ok")
    data = record(workspace)
    found = outcomes(data)
    assert found["test_ws.py::test_ok"] == "deselected"
    assert found["test_ws.py::test_fail"] == "failed"
    assert found["test_ws.py::test_health[grind]"] == "missing"  # -x stopped before it


def test_collection_error_makes_the_run_incomplete(workspace: pytest.Pytester) -> None:
    workspace.makepyfile(test_broken="import nonexistent_module_xyz\n")
    result = workspace.runpytest("--grind", "--python-tests", "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["choirci: verdict INCOMPLETE*",
                                 "choirci: incomplete: the run is incomplete: stopped: 1 error during collection"])
    data = record(workspace)
    assert data["status"] == "incomplete"
    assert outcomes(data)["test_broken.py"] == "error"


def test_xdist_controller_writes_one_record_with_every_item(workspace: pytest.Pytester) -> None:
    result = workspace.runpytest_subprocess("--grind", "--python-tests", "-p", "no:cacheprovider", "-n", "2")
    result.stdout.fnmatch_lines(["choirci: verdict FAIL*"])
    assert result.stdout.str().count("choirci: evidence written to") == 1
    data = record(workspace)
    assert data["status"] == "complete" and len(outcomes(data)) == 6
    assert outcomes(data)["test_ws.py::test_health[grind]"] == "passed"
    assert data["runs"][0]["items"][0]["markers"] is not None


def test_tree_dirtied_by_the_run_is_flagged(workspace: pytest.Pytester) -> None:
    # Python writes __pycache__/ next to the test module unless PYTHONDONTWRITEBYTECODE is
    # set by whoever runs this suite: a real workspace ignores it, and so does this one.
    (workspace.path / ".gitignore").write_text("__pycache__/\n")
    for argv in (["git", "init", "-q"], ["git", "add", "-A"],
                 ["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "x"]):
        assert proc.run(argv, cwd=workspace.path).ok
    workspace.makepyfile(test_dirty="""
        from pathlib import Path
        def test_rewrites_a_file():
            Path("report.txt").write_text("generated")
    """)
    proc.run(["git", "add", "test_dirty.py"], cwd=workspace.path)
    proc.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "y"],
             cwd=workspace.path)
    result = workspace.runpytest("--grind", "--python-tests", "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["choirci: warning: the run dirtied the git tree: ?? report.txt"])
    tree = record(workspace)["runs"][0]["tree"]
    assert tree == {"before": [], "after": ["?? report.txt"]}  # evidence/ itself is excluded
    report = (workspace.path / "evidence" / "report.md").read_text()
    assert "**The run dirtied the git tree**: `?? report.txt`" in report


# --------------------------------------------------------------------------- interruptions

BLOCKING = """
import time
from pathlib import Path

def test_first():
    pass

def test_blocks():
    Path("started").write_text("x")
    time.sleep(60)

def test_after():
    pass
"""


def spawn_blocked(pytester: pytest.Pytester) -> subprocess.Popen[bytes]:
    pytester.makefile(".yaml", choirci=CONFIG)
    pytester.makepyfile(test_block=BLOCKING)
    child = pytester.popen([sys.executable, "-m", "pytest", "--grind", "--python-tests",
                            "-p", "no:cacheprovider"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not (pytester.path / "started").exists():
        assert child.poll() is None, child.communicate()[0].decode()
        assert time.monotonic() < deadline, "the blocking test never started"
        time.sleep(0.05)
    return child


@pytest.mark.parametrize(("sig", "reason"), [(signal.SIGINT, "interrupted (Ctrl-C)"),
                                             (signal.SIGTERM, "terminated by SIGTERM"),
                                             (signal.SIGHUP, "terminated by SIGHUP")])
def test_signal_mid_run_leaves_valid_incomplete_evidence(
    pytester: pytest.Pytester, sig: signal.Signals, reason: str
) -> None:
    child = spawn_blocked(pytester)
    # Evidence exists (incomplete) while the run is still going.
    assert record(pytester)["status"] == "incomplete"
    child.send_signal(sig)
    output = child.communicate(timeout=30)[0].decode()
    assert child.returncode == 2, output
    data = record(pytester)
    assert data["status"] == "incomplete"
    assert data["runs"][0]["reason"] == reason
    assert outcomes(data)["test_block.py::test_first"] == "passed"
    assert outcomes(data)["test_block.py::test_after"] == "missing"
    assert "choirci: verdict INCOMPLETE" in output
    assert not [p for p in os.listdir(pytester.path / "evidence") if p.endswith(".tmp")]


def test_hard_kill_leaves_the_start_record(pytester: pytest.Pytester) -> None:
    child = spawn_blocked(pytester)
    child.kill()
    child.communicate(timeout=30)
    data = record(pytester)
    assert data["status"] == "incomplete"
    assert "did not finish" in data["runs"][0]["reason"]
    assert (pytester.path / "evidence" / "junit.xml").read_text().startswith("<?xml")


def test_unwritable_evidence_dir_is_a_one_line_usage_error(workspace: pytest.Pytester) -> None:
    (workspace.path / "blocker").write_text("a file, not a dir")
    result = workspace.runpytest("--grind", "--python-tests", "-p", "no:cacheprovider",
                                 "--evidence-dir", "blocker/evidence")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --evidence-dir: cannot write evidence to "
                                 "*blocker/evidence (Not a directory); pass --evidence-dir=*"])
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
