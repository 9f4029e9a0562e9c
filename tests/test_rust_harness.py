"""`harness = false` targets (criterion benches, custom test mains): `cargo test` runs each as
one program that passes when it exits 0, and so does choirci, with the same verdict. They are
never listed (`--list` would run the program at collection time). Real cargo on
fixtures/rust-harness, as a user runs it (pytester)."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import FIXTURES
from rust_support import cargo_env, copy_workspace

pytestmark = pytest.mark.slow

TARGETS = """rust:
  targets:
    - {crate: harness, test: lib}
    - {crate: harness, test: custom_main}
    - {crate: harness, test: custom_fail}
    - {crate: harness, test: custom_panic}
    - {crate: harness, kind: bench, test: speed}
"""
PROGRAMS = {"rust::harness::custom_main": "custom_main", "rust::harness::custom_fail": "custom_fail",
            "rust::harness::custom_panic": "custom_panic", "rust::harness::bench:speed": "speed"}


@dataclass(frozen=True)
class Item:
    outcome: str
    text: str  # message, details and captured output
    properties: dict[str, str]


def outcomes(evidence: Path) -> dict[str, Item]:
    """node id -> what the evidence record says of it."""
    record = json.loads((evidence / "choirci.json").read_text())
    return {item["nodeid"]: Item(item["outcome"],
                                 "\n".join(item.get(k) or "" for k in ("message", "details",
                                                                        "stdout")),
                                 dict(map(tuple, item["properties"])))
            for run in record["runs"] for item in run["items"]}


@pytest.fixture(scope="session")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_workspace(FIXTURES / "rust-harness", tmp_path_factory.mktemp("rh") / "ws")


@pytest.fixture
def setup(pytester: pytest.Pytester, ws: Path, tmp_path_factory: pytest.TempPathFactory,
          monkeypatch: pytest.MonkeyPatch) -> Path:
    """The workspace's env for cargo; returns the file each program appends its name to."""
    cargo_env(monkeypatch, tmp_path_factory.getbasetemp() / "rh-target")
    ran = pytester.path / "ran.log"
    monkeypatch.setenv("CHOIRCI_RAN", str(ran))
    return ran


def grind(pytester: pytest.Pytester, ws: Path, config: str, *args: str) -> pytest.RunResult:
    path = ws / f"{pytester.path.name}.yaml"
    path.write_text(config)
    return pytester.runpytest_subprocess(
        "--grind", f"--choirci-config={path}", f"--evidence-dir={pytester.path / 'ev'}",
        "-p", "no:cacheprovider", "-rA", *args)


def test_each_program_is_one_item_with_cargo_tests_verdict(
        pytester: pytest.Pytester, ws: Path, setup: Path) -> None:
    result = grind(pytester, ws, TARGETS)
    got = outcomes(pytester.path / "ev")
    for nodeid, target in PROGRAMS.items():
        flag = ["--bench", target] if nodeid.endswith(":speed") else ["--test", target]
        raw = subprocess.run(["cargo", "test", "--offline", "-q", *flag], cwd=ws,
                             capture_output=True, text=True, check=False)
        assert got[nodeid].outcome == ("passed" if raw.returncode == 0 else "failed"), (
            nodeid, raw.stderr[-500:])
    assert got["rust::harness::custom_fail"].outcome == "failed"
    text = got["rust::harness::custom_fail"].text
    assert "harness = false" in text and "exit status 3" in text
    assert "custom_fail: 1 of 3 checks failed" in text  # its own words, from stderr
    panic = got["rust::harness::custom_panic"].text
    assert "exit status 101; panicked at tests/custom_panic.rs:4:5: assertion `left == right` " \
        "failed: double(2) is not five" in panic
    assert got["rust::harness::lib::tests::doubles"].outcome == "passed"  # libtest as before
    # The program saw cargo's environment (its asserts on CARGO_PKG_NAME held) and no args.
    assert got["rust::harness::custom_main"].properties["rust.env"] == "cargo"
    assert "custom_main args: []" in result.stdout.str()
    result.assert_outcomes(passed=3, failed=2)


def test_collection_never_runs_a_program_and_a_run_runs_each_once(
        pytester: pytest.Pytester, ws: Path, setup: Path) -> None:
    grind(pytester, ws, TARGETS, "--collect-only")
    assert not setup.exists(), setup.read_text()  # --list would have run them
    grind(pytester, ws, TARGETS, "-n", "2")
    assert sorted(setup.read_text().split()) == sorted(PROGRAMS.values())


def test_naming_tests_in_a_program_is_a_failing_item(
        pytester: pytest.Pytester, ws: Path, setup: Path) -> None:
    grind(pytester, ws, "rust:\n  targets:\n"
                        "    - {crate: harness, test: custom_main, tests: [checks]}\n")
    got = outcomes(pytester.path / "ev")
    assert got["rust::harness::custom_main::checks"].outcome == "failed"
    assert "has harness = false: cargo runs it as one program, with no test names" in \
        got["rust::harness::custom_main::checks"].text
    assert not setup.exists()


def test_workspace_skips_what_cargo_test_workspace_skips_and_says_so(
        pytester: pytest.Pytester, ws: Path, setup: Path) -> None:
    """`cargo test --workspace --lib --tests` skips, without a word, a target whose
    required-features are not on by default and one marked `test = false`; rust.workspace
    runs the same targets, and says which it left out and how to run each."""
    result = grind(pytester, ws, "rust:\n  workspace:\n    kinds: [lib, test]\n")
    got = outcomes(pytester.path / "ev")
    assert sorted(got) == ["rust::harness::custom_fail", "rust::harness::custom_main",
                           "rust::harness::custom_panic", "rust::harness::lib::tests::doubles"]
    raw = subprocess.run(["cargo", "test", "--offline", "--workspace", "--lib", "--tests",
                          "--no-fail-fast"], cwd=ws, capture_output=True, text=True, check=False)
    assert "custom_main" in raw.stderr  # cargo skips both too:
    assert "needs_extra" not in raw.stderr and "manual_only" not in raw.stderr
    # Said once each, before the session header (on stderr: pytest's terminal is not up yet).
    notes = [line for line in result.stdout.lines + result.stderr.lines
             if line.startswith("rust.workspace:")]
    assert sorted(notes) == [
        "rust.workspace: harness::manual_only (test) is not run: its manifest says test = "
        "false, so `cargo test --workspace --tests` skips it too; name it in rust.targets to "
        "run it",
        "rust.workspace: harness::needs_extra (test) is not run: it requires features extra, "
        "not on by default, and `cargo test --workspace` skips it too; to run it, name it in "
        "rust.targets with features: [extra]"]
    grind(pytester, ws, "rust:\n  targets:\n"
                        "    - {crate: harness, test: needs_extra, features: [extra]}\n")
    assert outcomes(pytester.path / "ev")["rust::harness::needs_extra::extra_is_on"].outcome \
        == "passed"
