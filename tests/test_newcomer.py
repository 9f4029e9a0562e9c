"""A newcomer's first day (issue 20), as a user types it: selections that run only what they
say, typos refused before anything runs, evidence that neither lands silently in the tree nor
over another run, hints where a run selects nothing.

``nix`` and ``cargo`` are fake programs here that log their argv and fail: the point is which
tools a selection starts, not what they build (real builds are tested in test_closures_* and
test_rust_*).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from rust_support import cargo_env  # imported before pytester moves HOME (rustup reads it)

FAKE = """#!/bin/sh
echo "$(basename "$0") $*" >> "{log}"
echo "fake $(basename "$0") refuses" >&2
exit 1
"""


def _tool(pytester: pytest.Pytester, name: str) -> Path:
    path = pytester.path / "bin" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text(FAKE.format(log=pytester.path / "calls.log"))
    path.chmod(0o755)
    return path


@pytest.fixture
def workspace(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    nix, cargo = _tool(pytester, "nix"), _tool(pytester, "cargo")
    monkeypatch.setenv("PATH", f"{nix.parent}{os.pathsep}{os.environ['PATH']}")
    pytester.makefile(".yaml", choirci=f"""\
closures:
  sandbox: ./sandbox#sandbox
loops:
  fmt: [cargo, fmt, --check]
nix:
  binary: {nix}
rust:
  cargo: {cargo}
  targets:
    - crate: sandbox
      test: desktop_api_test
""")
    return pytester


def calls(pytester: pytest.Pytester) -> list[str]:
    log = pytester.path / "calls.log"
    return log.read_text().splitlines() if log.exists() else []


def record(pytester: pytest.Pytester) -> dict:  # type: ignore[type-arg]
    return json.loads((pytester.path / "evidence" / "choirci.json").read_text())


def items(pytester: pytest.Pytester) -> dict[str, tuple[str, str]]:
    return {i["nodeid"]: (i["outcome"], i.get("message", ""))
            for run in record(pytester)["runs"] for i in run["items"]}


def test_rust_test_selection_runs_only_the_rust_area(workspace: pytest.Pytester) -> None:
    workspace.runpytest("--grind", "--rust-test", "sandbox::desktop_api_test")
    assert not [c for c in calls(workspace) if c.startswith("nix")], calls(workspace)
    found = items(workspace)
    assert found["closures::sandbox"] == ("deselected", "not selected (--rust-test)")
    assert found["loops::fmt"] == ("deselected", "not selected (--rust-test)")


def test_closure_selection_compiles_no_rust(workspace: pytest.Pytester) -> None:
    workspace.runpytest("--grind", "--closure", "sandbox")
    assert not [c for c in calls(workspace) if c.startswith("cargo")], calls(workspace)
    assert items(workspace)["rust::sandbox::desktop_api_test::*"] == (
        "deselected", "not selected (--closure)")


def test_marker_selection_collects_only_matching_areas(workspace: pytest.Pytester) -> None:
    workspace.runpytest("--grind", "-m", "nix")
    assert not [c for c in calls(workspace) if c.startswith("cargo")], calls(workspace)
    found = items(workspace)
    assert found["rust::sandbox::desktop_api_test::*"] == ("deselected", "not selected (-m 'nix')")
    assert found["closures::sandbox"][0] != "deselected"


def test_explicit_area_wins_over_implied(workspace: pytest.Pytester) -> None:
    workspace.runpytest("--grind", "--area", "loops", "--rust-test", "sandbox::desktop_api_test")
    assert [c.split()[0] for c in calls(workspace)] == ["cargo"]  # the loop's cargo fmt only
    assert "fmt --check" in calls(workspace)[0]


def test_a_misspelled_marker_is_a_usage_error_before_anything_runs(
        workspace: pytest.Pytester) -> None:
    result = workspace.runpytest("--grind", "-m", "nixx")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: -m 'nixx': no marker named 'nixx' (did you mean 'nix'?); "
                                 "choirci's markers: host, loop, nix, rust"])
    assert calls(workspace) == []
    assert not (workspace.path / "evidence").exists()


def test_a_marker_expression_that_is_not_one_is_a_usage_error(workspace: pytest.Pytester) -> None:
    result = workspace.runpytest("--grind", "-m", "nix and (")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: -m 'nix and (': not a marker expression*"])


def test_plain_pytest_in_a_choirci_workspace_hints_at_grind(workspace: pytest.Pytester) -> None:
    result = workspace.runpytest()
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED
    result.stdout.fnmatch_lines(["*choirci: this is a choirci workspace (*choirci.yaml): "
                                 "run `pytest --grind`*"])
    assert calls(workspace) == []


def test_repository_python_tests_are_not_collected_under_grind(workspace: pytest.Pytester) -> None:
    workspace.makepyfile(test_helper="def test_broken():\n    assert False\n")
    workspace.runpytest("--grind", "--area", "loops")
    assert not any("test_helper" in nodeid for nodeid in items(workspace))
    result = workspace.runpytest("--grind", "--area", "loops", "--python-tests")
    assert items(workspace)["test_helper.py::test_broken"][0] == "failed"
    result.stdout.fnmatch_lines(["*choirci: 1 Python test(s) outside choirci's areas "
                                 "count in this verdict (--python-tests)*"])


def test_the_python_tests_hint_names_only_python_tests(workspace: pytest.Pytester) -> None:
    """A crate's tests/ of .rs files is not the repository's Python tests: no hint for it; a
    tests/ that holds a Python test is named."""
    rust_tests = workspace.path / "tests"
    rust_tests.mkdir()
    (rust_tests / "api_test.rs").write_text("#[test]\nfn t() {}\n")
    result = workspace.runpytest("--grind", "--area", "loops")
    assert "Python tests are not collected" not in result.stdout.str()
    (rust_tests / "helpers").mkdir()
    (rust_tests / "helpers" / "test_tool.py").write_text("def test_t():\n    pass\n")
    result = workspace.runpytest("--grind", "--area", "loops")
    result.stdout.fnmatch_lines(["choirci: the repository's own Python tests are not collected "
                                 "under --grind (e.g. tests); add --python-tests to include them"])


def test_a_gates_dir_that_does_not_exist_is_a_config_error(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", choirci="closures:\n  s: ./s#s\ngates: my-gates\n")
    result = pytester.runpytest("--grind")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: choirci.yaml:3: gates: no such directory *my-gates*; "
                                 "create it or remove the key*"])


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes to any directory")
def test_an_unwritable_evidence_dir_from_the_config_names_file_and_line(
        pytester: pytest.Pytester) -> None:
    locked = pytester.path / "locked"
    locked.mkdir(mode=0o500)
    pytester.makefile(".yaml", choirci="closures:\n  s: ./s#s\nevidence: locked/ev\n")
    result = pytester.runpytest("--grind")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    text = result.stdout.str() + result.stderr.str()
    assert text.count("cannot write evidence") == 1, text
    assert "choirci.yaml:3: evidence:" in text and "_pytest" not in text


def test_an_unwritable_evidence_dir_is_refused_once_without_internals(
        pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", choirci="closures:\n  s: ./s#s\n")
    blocker = pytester.path / "file"
    blocker.write_text("not a directory")
    result = pytester.runpytest("--grind", "--evidence-dir=file/ev")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    text = result.stdout.str() + result.stderr.str()
    assert text.count("cannot write evidence") == 1, text
    assert "--evidence-dir" in text and "_pytest" not in text and "Traceback" not in text


def test_two_runs_into_one_evidence_dir_refuse_the_second(workspace: pytest.Pytester) -> None:
    """The second run names the first and changes nothing of its evidence."""
    import fcntl

    evidence = workspace.path / "evidence"
    evidence.mkdir()
    (evidence / "choirci.json").write_text('{"first": true}')
    handle = os.open(evidence, os.O_RDONLY)
    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)  # what a running `pytest --grind` holds
    try:
        result = workspace.runpytest("--grind", "--area", "loops")
    finally:
        os.close(handle)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: evidence dir * is in use by another choirci run; wait "
                                 "for it, or pass --evidence-dir=<another dir>"])
    assert (evidence / "choirci.json").read_text() == '{"first": true}'
    assert calls(workspace) == []


def test_evidence_not_ignored_by_git_is_named_with_the_line_to_add(
        workspace: pytest.Pytester) -> None:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    subprocess.run(["git", "init", "-q"], cwd=workspace.path, check=True, env=env)
    result = workspace.runpytest("--grind", "--area", "loops")
    result.stdout.fnmatch_lines(["*choirci: note: evidence/ is not ignored by git; add the line "
                                 "'/evidence/' to .gitignore*"])
    (workspace.path / ".gitignore").write_text("/evidence/\n")
    result = workspace.runpytest("--grind", "--area", "loops")
    assert "not ignored by git" not in result.stdout.str()


def test_each_closure_result_is_one_line_in_the_terminal_summary(
        workspace: pytest.Pytester) -> None:
    result = workspace.runpytest("--grind", "--area", "closures")
    result.stdout.fnmatch_lines(["choirci: closures::sandbox: error*"])


PROGRESS_TESTS = """
from choirci.items import announcer

def test_first(request):
    announcer(request.config)("choirci: progress while an item runs")

def test_second():
    pass
"""


def test_progress_lines_keep_pytest_progress_row_readable(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", choirci="closures:\n  s: ./s#s\n")
    pytester.makepyfile(test_progress=PROGRESS_TESTS)
    result = pytester.runpytest("--grind", "--area", "loops", "--python-tests",
                                "-p", "no:cacheprovider")
    lines = result.stdout.lines
    at = lines.index("choirci: progress while an item runs")
    # The row resumes with its file prefix: never a bare "." under the progress line.
    assert lines[at + 1].startswith("test_progress.py .."), lines[at - 1: at + 2]


def test_progress_from_xdist_workers_reaches_the_terminal(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", choirci="closures:\n  s: ./s#s\n")
    pytester.makepyfile(test_progress=PROGRESS_TESTS)
    result = pytester.runpytest_subprocess("--grind", "--area", "loops", "--python-tests",
                                           "-p", "no:cacheprovider", "-n", "2")
    result.stdout.re_match_lines([r"^\[gw[01]\] choirci: progress while an item runs$"])


def test_a_new_run_moves_the_old_runs_gate_verdicts_aside(workspace: pytest.Pytester) -> None:
    """A verdict judged another run's record: it must not sit beside the new record."""
    gates = workspace.path / "evidence" / "gates"
    gates.mkdir(parents=True)
    (gates / "phase-1.json").write_text('{"gate": "phase-1", "verdict": "pass"}')
    (gates / "phase-1.md").write_text("PASS\n")
    workspace.runpytest("--grind", "--area", "loops")
    assert not (gates / "phase-1.json").exists()
    assert (gates / "stale" / "phase-1.json").read_text() == '{"gate": "phase-1", "verdict": "pass"}'


@pytest.fixture
def mini(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A copy of the example workspace with a real cargo (metadata only; nothing compiles in
    these tests) and a fake nix that logs any call."""
    root = Path(__file__).resolve().parent.parent / "fixtures" / "choiros-mini"
    shutil.copytree(root, pytester.path, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("target", "evidence"))
    cargo_env(monkeypatch, pytester.path / "target")
    nix = _tool(pytester, "nix")
    text = (pytester.path / "choirci.yaml").read_text()
    (pytester.path / "choirci.yaml").write_text(text + f"nix:\n  binary: {nix}\n")
    return pytester


def test_an_unknown_crate_in_a_selection_is_refused_before_anything_builds(
        mini: pytest.Pytester) -> None:
    result = mini.runpytest("--grind", "--rust-test", "sandbx::desktop_api_test")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --rust-test sandbx::desktop_api_test: no crate 'sandbx' "
                                 "in the Cargo workspace at *; nearest: sandbox*"])
    assert calls(mini) == [] and not (mini.path / "evidence").exists()
    assert not (mini.path / "target" / "debug").exists()  # nothing compiled


def test_an_unknown_config_target_is_refused_naming_file_and_target(
        mini: pytest.Pytester) -> None:
    text = (mini.path / "choirci.yaml").read_text()
    (mini.path / "choirci.yaml").write_text(
        text.replace("test: auth_gate_test", "test: auth_gate_tst").replace(
            "crate: hypervisor", "crate: hypervisor"))
    result = mini.runpytest("--grind")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: choirci.yaml: rust.targets[[]2[]] *: crate hypervisor has "
                                 "no * 'auth_gate_tst'; nearest: auth_gate_test*"])
    assert calls(mini) == []
