"""Layer 4: the matrix of fixtures/choiros-mini, run shard by shard, equals one grind run.

Everything is real: `choirci matrix`, pytest with the plugin, cargo, Nix (offline), the
evidence merge and `choirci parity`. Each shard runs through the reusable workflow's own
step scripts (shard step, then merge step), on a separate "runner" temp dir, exactly as in
Actions; only GitHub's artifact transfer is replaced by a copy into one directory.

The workspace is a copy of the fixture in a temporary git repository (its sub-flakes use
``src = ../.``, which a flake only sees inside a git checkout). Host checks point at
``local://``: on a machine without the ChoirOS services they fail, which does not matter
here: parity is about which items ran and how, not whether they passed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest
from conftest import FIXTURES
from test_workflows import REUSABLE, run_step, step

from choirci import config
from choirci.evidence import files as evidence

pytestmark = pytest.mark.slow

PYTEST_DONE = (0, 1)  # all passed / some failed: the run itself completed


def tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path=str(Path.home() / ".cargo" / "bin"))
    if found is None:
        pytest.skip(f"{name} is not installed (not on PATH, not in ~/.cargo/bin)")
    return found


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    cargo, _nix = tool("cargo"), tool("nix")
    registry = tmp_path_factory.mktemp("nix") / "flake-registry.json"
    registry.write_text('{"flakes": [], "version": 2}')
    # Offline Nix as in fixtures/choiros-mini/README.md: no substituters, no build sandbox,
    # builds as root (the fixture's builder calls the host's cargo), no global registry.
    nix_config = "\n".join([
        "experimental-features = nix-command flakes", "substituters =", "sandbox = false",
        "build-users-group =", f"flake-registry = {registry}", "warn-dirty = false",
    ])
    path = os.pathsep.join([str(Path(sys.executable).parent), str(Path(cargo).parent),
                            os.environ.get("PATH", "")])
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("CHOIRCI_", "GITHUB_"))}
    return {**clean, "NIX_CONFIG": nix_config, "PATH": path, "CARGO_NET_OFFLINE": "true"}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory, env: dict[str, str]) -> Path:
    git = tool("git")
    root = tmp_path_factory.mktemp("e2e") / "choiros-mini"
    shutil.copytree(FIXTURES / "choiros-mini", root, symlinks=True,
                    ignore=shutil.ignore_patterns("target", "result*", "evidence"))
    for argv in ([git, "init", "-q"], [git, "add", "-A"]):
        subprocess.run(argv, cwd=root, check=True, env=env)
    return root


def run(argv: list[str], cwd: Path, env: Mapping[str, str],
        ok: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, cwd=cwd, env=dict(env), capture_output=True, text=True,
                            timeout=1800, check=False)
    assert result.returncode in ok, (
        f"{argv} exited {result.returncode}\n--- stdout\n{result.stdout[-4000:]}\n"
        f"--- stderr\n{result.stderr[-4000:]}"
    )
    return result


@pytest.fixture(scope="module")
def shards(workspace: Path, env: dict[str, str]) -> list[dict[str, str]]:
    """The matrix, from the real command in the workspace (as the plan job runs it)."""
    result = run([sys.executable, "-m", "choirci.cli", "matrix"], workspace, env)
    include: list[dict[str, str]] = json.loads(result.stdout)["include"]
    return include


def collected(workspace: Path, env: Mapping[str, str], args: list[str]) -> list[str]:
    argv = [sys.executable, "-m", "pytest", *args, "--collect-only", "-q", "-p",
            "no:cacheprovider", "--evidence-dir", str(workspace.parent / "collect-evidence")]
    out = run(argv, workspace, env).stdout
    return [line for line in out.splitlines() if "::" in line and " " not in line]


def test_matrix_of_the_example_workspace(workspace: Path, shards: list[dict[str, str]]) -> None:
    cfg = config.load(workspace / "choirci.yaml")
    names = [s["shard"] for s in shards]
    assert names[:3] == ["closure-sandbox", "closure-hypervisor", "closure-desktop"]
    assert names[3:5] == ["loops", "rust"]
    assert ("hosts" in names) == ("grind" in cfg.hosts)


def test_shards_collect_exactly_the_grind_items(
    workspace: Path, env: dict[str, str], shards: list[dict[str, str]]
) -> None:
    whole = collected(workspace, env, ["--grind"])
    parts = {s["shard"]: collected(workspace, env, s["args"].split()) for s in shards}
    union = [nodeid for items in parts.values() for nodeid in items]
    assert all(parts.values()), {name: len(items) for name, items in parts.items()}
    assert len(union) == len(set(union)), "an item is collected by two shards"
    assert sorted(union) == sorted(whole)
    assert parts["closure-sandbox"] == ["closures::sandbox"]
    assert all(nodeid.startswith("rust::") for nodeid in parts["rust"])


def run_shard(workspace: Path, env: dict[str, str], shard: Mapping[str, str],
              runner_temp: Path) -> Path:
    """The shard job's pytest step, with the env the workflow gives it; its evidence dir."""
    runner_temp.mkdir(parents=True)
    step_env = {**env, "RUNNER_TEMP": str(runner_temp), "CHOIRCI_SHARD": shard["shard"],
                "CHOIRCI_EXPECTED_SHARDS": shard["expected_shards"],
                "SHARD_ARGS": shard["args"], "EXTRA_ARGS": ""}
    result = run_step(step(REUSABLE, "shard", "pytest")["run"], step_env, workspace)
    assert result.returncode in PYTEST_DONE, result.stdout[-4000:] + result.stderr[-4000:]
    return runner_temp / "choirci-evidence"


def test_sharded_run_merges_to_the_grind_run_at_parity(
    workspace: Path, env: dict[str, str], shards: list[dict[str, str]], tmp_path: Path
) -> None:
    grind = tmp_path / "grind-evidence"
    run([sys.executable, "-m", "pytest", "--grind", "-p", "no:cacheprovider",
         "--evidence-dir", str(grind)], workspace, env, ok=PYTEST_DONE)

    downloaded = tmp_path / "shards"  # what download-artifact leaves: one dir per artifact
    for shard in shards:
        produced = run_shard(workspace, env, shard, tmp_path / "runner" / shard["shard"])
        shutil.copytree(produced, downloaded / f"choirci-shard-{shard['shard']}")

    merged, out = tmp_path / "merged", tmp_path / "github_output"
    merge_env = {**env, "SHARDS": str(downloaded), "MERGED": str(merged),
                 "GITHUB_OUTPUT": str(out)}
    result = run_step(step(REUSABLE, "verdict", "merge")["run"], merge_env, workspace)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "verdict=incomplete" not in out.read_text(), result.stdout

    whole, sharded = evidence.load(grind), evidence.load(merged)
    assert sharded.status == "complete", sharded.incomplete_reasons
    assert sorted(run.shard for run in sharded.runs) == sorted(s["shard"] for s in shards)
    assert sorted(i.nodeid for i in sharded.items) == sorted(i.nodeid for i in whole.items)

    parity = run([sys.executable, "-m", "choirci.cli", "parity", str(grind), str(merged)],
                 workspace, env, ok=(0, 1))
    assert parity.returncode == 0, parity.stdout
    assert parity.stdout.startswith("parity: same items, same commands")


def test_parity_notices_a_shard_that_never_ran(
    workspace: Path, env: dict[str, str], shards: list[dict[str, str]], tmp_path: Path
) -> None:
    """Only the loops shard's evidence arrived; grind ran loops and Rust tests: parity lists
    the Rust items and the missing shard, and exits 1."""
    loops = next(s for s in shards if s["shard"] == "loops")
    produced = run_shard(workspace, env, loops, tmp_path / "runner")
    grind = tmp_path / "grind"
    run([sys.executable, "-m", "pytest", "--grind", "--area", "loops", "--area", "rust",
         "-p", "no:cacheprovider", "--evidence-dir", str(grind)], workspace, env, ok=PYTEST_DONE)
    result = run([sys.executable, "-m", "choirci.cli", "parity", str(grind), str(produced)],
                 workspace, env, ok=(1,))
    assert "only on grind: rust::" in result.stdout
    assert "actions evidence: shard 'rust' is missing" in result.stdout
