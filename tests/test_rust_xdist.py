"""Each Rust test executes exactly once per session under any -n/--dist and run mode:
counted, not assumed (every test of fixtures/rust-faults' `counted` binary appends one byte
to a file of its own; doc test runs are counted through a logging cargo)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from conftest import FIXTURES
from rust_support import cargo_env, copy_workspace

pytestmark = pytest.mark.slow
DEFAULT_TARGETS = ("    - {crate: kinds, test: counted}\n"
                   "    - {crate: kinds, kind: doc}\n")


@pytest.fixture(scope="session")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_workspace(FIXTURES / "rust-faults", tmp_path_factory.mktemp("rx") / "ws")


@pytest.fixture
def run(pytester: pytest.Pytester, ws: Path, tmp_path_factory: pytest.TempPathFactory,
        monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    cargo_env(monkeypatch, tmp_path_factory.getbasetemp() / "rx-target")
    counts = pytester.path / "counts"
    counts.mkdir()
    monkeypatch.setenv("CHOIRCI_COUNT_DIR", str(counts))
    calls = pytester.path / "cargo-calls.log"
    shim = pytester.path / "cargo-logged"
    shim.write_text(f'#!/bin/sh\necho "$*" >> {calls}\nexec cargo "$@"\n')
    shim.chmod(0o755)

    temp = pytester.path / "tmp"  # the run's own temp dir: what it leaves there is seen
    temp.mkdir()
    monkeypatch.setenv("TMPDIR", str(temp))

    def go(mode: str, *args: str, extra: str = "", targets: str = DEFAULT_TARGETS
           ) -> tuple[pytest.RunResult, dict[str, int], list[str]]:
        config = ws / f"x-{os.getpid()}-{time.monotonic_ns()}.yaml"
        config.write_text(f"rust:\n  cargo: {shim}\n  run: {mode}\n{extra}  targets:\n"
                          + targets)
        for old in counts.iterdir():
            old.unlink()
        calls.write_text("")
        result = pytester.runpytest_subprocess(
            "--grind", f"--choirci-config={config}", f"--evidence-dir={pytester.path / 'ev'}",
            "-o", f"cache_dir={pytester.path / 'cache'}", *args)
        counted = {p.name: len(p.read_bytes()) for p in counts.iterdir()}
        left = [p.name for p in temp.iterdir() if p.name.startswith("choirci-")]
        assert not left, f"the run left {left} in its temp dir"
        return result, counted, calls.read_text().splitlines()

    return go


@pytest.mark.parametrize("mode", ["per-binary", "per-test"])
@pytest.mark.parametrize("dist", [[], ["-n", "2"], ["-n", "2", "--dist", "loadgroup"],
                                  ["-n", "2", "--dist", "worksteal"],
                                  ["-n", "2", "--dist", "loadscope"],
                                  ["-n", "2", "-p", "no:cacheprovider"]])
def test_every_test_runs_exactly_once(run, mode: str, dist: list[str]) -> None:  # type: ignore[no-untyped-def]
    result, counted, calls = run(mode, *dist)
    result.assert_outcomes(passed=202, failed=1, skipped=1)  # 200 counted + 4 doc tests
    assert len(counted) == 200 and set(counted.values()) == {1}, {
        k: v for k, v in counted.items() if v != 1}
    doc_runs = [c for c in calls if c.startswith("test --doc") and "--list" not in c]
    assert len(doc_runs) == 1, doc_runs
    # Discovery once per run, whatever the workers (the controller starts it under -n).
    assert sum(c.startswith("metadata ") for c in calls) == 1, calls
    assert sum("--no-run" in c for c in calls) == 1, calls
    assert sum(c.startswith("test --doc") and "--list" in c for c in calls) == 1, calls


@pytest.mark.parametrize(("mode", "most"), [("per-binary", 4), ("per-test", 200)])
def test_processes_per_mode(run, pytester: pytest.Pytester, mode: str, most: int) -> None:  # type: ignore[no-untyped-def]
    """per-binary: each worker runs its share of a binary in one process, both at once (not
    one batch per refill of its queue: that was slower than serial); per-test: one process
    per test, each naming exactly its test."""
    _, counted, _ = run(mode, "-n", "2")
    assert set(counted.values()) == {1}
    record = json.loads((pytester.path / "ev" / "choirci.json").read_text())
    commands = [dict(map(tuple, item["properties"]))["rust.command"]  # type: ignore[arg-type]
                for run in record["runs"] for item in run["items"]
                if "::counted::" in item["nodeid"]]
    assert len(commands) == 200
    if mode == "per-test":
        assert len(set(commands)) == 200
        assert all(c.split("--exact ")[1] in {f"t{i:03d}" for i in range(200)} for c in commands)
    else:
        assert len(set(commands)) <= most, len(set(commands))


@pytest.mark.parametrize("dist", [[], ["-n", "2"]])
def test_cargo_progress_reaches_the_terminal(run, dist: list[str]) -> None:  # type: ignore[no-untyped-def]
    """The session's Cargo is made in pytest_configure (the name check before anything
    builds), before pytest's terminal reporter exists: its progress lines must still reach
    the terminal, not a log record nobody sees. Under -n the controller compiles."""
    result, _, _ = run("per-binary", *dist)
    result.stdout.fnmatch_lines(["cargo (kinds*): Finished `test` profile*"])
    assert "[gw" not in "".join(line for line in result.stdout.lines if "cargo (" in line)


def test_cargo_progress_is_redacted_with_the_configs_names_too(
        run, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """The terminal is the CI log: the config's `redact:` names apply to progress lines
    from the session's Cargo, although it is made before the run's settings are stored."""
    monkeypatch.setenv("MY_EXTRA", "unoptimized")  # a word of cargo's Finished line
    result, _, _ = run("per-binary", targets=DEFAULT_TARGETS + "redact: [MY_EXTRA]\n")
    result.stdout.fnmatch_lines(["cargo (kinds*): Finished `test` profile "
                                 "[[][[]REDACTED:MY_EXTRA[]]*"])
    assert not [line for line in result.stdout.lines if "unoptimized" in line]


@pytest.mark.parametrize("mode", ["per-binary", "per-test"])
def test_an_exclusive_binary_never_runs_in_two_processes_at_once(
        run, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, mode: str) -> None:  # type: ignore[no-untyped-def]
    """`exclusive: true` (tests that exclude each other through in-process state, as cargo
    runs them in one process): per-binary, one process for the whole binary under -n 2;
    per-test, one test process at a time across the workers (each test notes when another
    was running at once). Without it, per-test -n 2 does overlap: the check can fail."""
    busy = pytester.path / "busy"
    busy.mkdir()
    monkeypatch.setenv("CHOIRCI_BUSY_DIR", str(busy))
    monkeypatch.setenv("CHOIRCI_SLEEP_MS", "5")
    exclusive = "    - {crate: kinds, test: counted, exclusive: true}\n"
    result, counted, _ = run(mode, "-n", "2", "-k", "counted", extra="",
                             targets=exclusive)
    result.assert_outcomes(passed=200)
    assert set(counted.values()) == {1}
    record = json.loads((pytester.path / "ev" / "choirci.json").read_text())
    commands = {dict(map(tuple, item["properties"]))["rust.command"]  # type: ignore[arg-type]
                for run in record["runs"] for item in run["items"]}
    if mode == "per-binary":
        assert len(commands) == 1
    else:
        assert not (busy / "overlap").exists(), (busy / "overlap").read_text()
        (busy / "busy").unlink(missing_ok=True)
        run(mode, "-n", "2", "-k", "counted", extra="",
            targets="    - {crate: kinds, test: counted}\n")
        assert (busy / "overlap").exists()  # the same run without exclusive: overlaps seen
