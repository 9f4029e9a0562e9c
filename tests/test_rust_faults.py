"""The rust area end to end, as a user runs it (pytester), on fixtures/rust-faults: real
cargo, real libtest binaries that crash, abort, hang, print garbage, do not compile."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from conftest import FIXTURES
from rust_support import Outcome, cargo_env, copy_workspace, outcomes

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def faults_ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_workspace(FIXTURES / "rust-faults", tmp_path_factory.mktemp("rf") / "ws")


@pytest.fixture(scope="session")
def target_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("rf-target")


@pytest.fixture
def grind(pytester: pytest.Pytester, faults_ws: Path, target_dir: Path,
          monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Run ``pytest --grind`` with a config (YAML text) written into the shared workspace."""
    cargo_env(monkeypatch, target_dir)

    def run(config: str, *args: str) -> tuple[pytest.HookRecorder, dict[str, Outcome]]:
        path = faults_ws / f"choirci-{os.getpid()}-{time.monotonic_ns()}.yaml"
        path.write_text(config)
        reprec = pytester.inline_run(
            "--grind", f"--choirci-config={path}",
            f"--evidence-dir={pytester.path / 'evidence'}", "-p", "no:cacheprovider", *args,
        )
        return reprec, outcomes(reprec)

    return run


def targets(*lines: str, extra: str = "") -> str:
    return "rust:\n" + extra + "  targets:\n" + "".join(f"    - {line}\n" for line in lines)


def test_every_libtest_outcome_is_its_own_item(grind) -> None:  # type: ignore[no-untyped-def]
    reprec, got = grind(targets("{crate: faults, test: mixed_test}"))
    prefix = "rust::faults::mixed_test::"
    assert {k.removeprefix(prefix): v.outcome for k, v in got.items()} == {
        "fails_with_output": "failed", "ignored_plain": "skipped",
        "ignored_with_reason": "skipped", "inner::nested_fail": "failed",
        "inner::nested_ok": "passed", "returns_err": "failed",
        "should_panic_but_does_not": "failed", "should_panic_ok": "passed",
        "test_health_check": "passed",
    }
    reprec.assertoutcome(passed=3, failed=4, skipped=2)
    failed = got[prefix + "fails_with_output"]
    assert failed.text.startswith("fails_with_output: panicked at faults/tests/mixed_test.rs:12")
    assert "arithmetic is broken" in failed.text.splitlines()[0]
    assert "line one of the captured output" in failed.text  # the test's own output
    assert "Traceback" not in failed.text and "choirci/" not in failed.text
    assert "needs live LLM credentials" in got[prefix + "ignored_with_reason"].text
    props = got[prefix + "inner::nested_ok"].properties
    assert props["classname"] == "faults.mixed_test"
    assert props["name"] == "inner::nested_ok"
    assert props["rust.features"] == "(none)"
    assert props["rust.exit"] == "exit status 101"
    assert props["rust.command"].startswith(props["rust.binary"] + " --show-output")
    assert "cargo test --no-run --message-format=json -p faults --test mixed_test" in (
        props["rust.build_command"]
    )
    assert got[prefix + "test_health_check"].sections["Captured rust test output call"] == "healthy"


def test_k_and_m_select_and_the_binary_runs_once_with_exactly_them(grind) -> None:  # type: ignore[no-untyped-def]
    _reprec, got = grind(targets("{crate: faults, test: mixed_test}"), "-m", "rust", "-k", "nested")
    assert {k: v.outcome for k, v in got.items()} == {
        "rust::faults::mixed_test::inner::nested_fail": "failed",
        "rust::faults::mixed_test::inner::nested_ok": "passed",
    }
    command = got["rust::faults::mixed_test::inner::nested_ok"].properties["rust.command"]
    assert command.endswith("--exact inner::nested_fail inner::nested_ok")
    _, none = grind(targets("{crate: faults, test: mixed_test}"), "-m", "not rust")
    assert none == {}


def test_rust_test_option_selects_exact_tests_with_module_paths(grind) -> None:  # type: ignore[no-untyped-def]
    config = targets("{crate: faults, test: mixed_test}", "{crate: faults, test: crash_test}")
    _, got = grind(config, "--rust-test", "faults::mixed_test::inner::nested_ok",
                   "--rust-test", "faults::lib")
    assert {k: v.outcome for k, v in got.items()} == {
        "rust::faults::mixed_test::inner::nested_ok": "passed",
        "rust::faults::lib::tests::unit_ok": "passed",
    }


def test_malformed_rust_test_option_is_a_one_line_usage_error(
    pytester: pytest.Pytester, grind  # type: ignore[no-untyped-def]
) -> None:
    (pytester.path / "choirci.yaml").write_text(targets("{crate: faults, test: mixed_test}"))
    result = pytester.runpytest("--grind", "--rust-test", "faults")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--rust-test 'faults': expected CRATE::BIN or CRATE::BIN::TEST*"])
    assert "Traceback" not in result.stderr.str()


def test_names_that_select_nothing_fail_with_the_nearest_names(grind) -> None:  # type: ignore[no-untyped-def]
    config = targets(
        "{crate: faults, test: mixed_test, tests: [test_health_chek, test_health_check]}",
        "{crate: faults, test: empty_test}",
    )
    reprec, got = grind(config)
    assert got["rust::faults::mixed_test::test_health_check"].outcome == "passed"
    typo = got["rust::faults::mixed_test::test_health_chek"]
    assert typo.outcome == "failed"
    assert "no test named 'test_health_chek' in faults::mixed_test" in typo.text
    assert "nearest: test_health_check" in typo.text
    empty = got["rust::faults::empty_test"]
    assert empty.outcome == "failed" and "selects zero tests" in empty.text
    reprec.assertoutcome(passed=1, failed=2)


def test_a_crate_or_binary_typo_is_refused_before_anything_builds(
        pytester: pytest.Pytester, faults_ws: Path, target_dir: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Every such problem at once, one line each, with the nearest real names (issue 20)."""
    cargo_env(monkeypatch, target_dir)
    config = faults_ws / f"typos-{os.getpid()}.yaml"
    config.write_text(targets("{crate: faults, test: mixed_tset}",
                              "{crate: fautls, test: mixed_test}"))
    result = pytester.runpytest("--grind", f"--choirci-config={config}",
                                f"--evidence-dir={pytester.path / 'evidence'}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([
        "ERROR: *rust.targets[[]0[]] (faults::mixed_tset): crate faults has no * 'mixed_tset'; "
        "nearest: mixed_test*",
        "*rust.targets[[]1[]] (fautls::mixed_test): no crate 'fautls' in the Cargo workspace at "
        "*; nearest: faults*"])
    assert not (pytester.path / "evidence").exists()


def test_compile_error_fails_its_items_with_the_compiler_message(grind) -> None:  # type: ignore[no-untyped-def]
    config = targets(
        "{crate: faults, test: compile_error_test}",
        "{crate: faults, test: compile_error_test, tests: [never_built], features: [extra]}",
        "{crate: faults, test: gated_test}",
    )
    reprec, got = grind(config)
    whole = got["rust::faults::compile_error_test+default"]
    assert whole.outcome == "failed"
    assert whole.text.startswith("faults::compile_error_test+default does not compile")
    assert "expected `u32`, found `&str`" in whole.text
    assert "compile_error_test.rs:4" in whole.text and "Traceback" not in whole.text
    named = got["rust::faults::compile_error_test+extra::never_built"]
    assert named.outcome == "failed" and "expected `u32`" in named.text
    # The same cargo call grouped gated_test with compile_error_test: it still runs.
    assert got["rust::faults::gated_test::placeholder"].outcome == "passed"
    assert not reprec.getreports("pytest_collectreport") or all(
        r.passed for r in reprec.getreports("pytest_collectreport")
    )


def test_features_are_recorded_and_change_what_runs(grind) -> None:  # type: ignore[no-untyped-def]
    config = targets("{crate: faults, test: gated_test}",
                     "{crate: faults, test: gated_test, features: [extra]}")
    _, got = grind(config)
    placeholder = got["rust::faults::gated_test+default::placeholder"]
    real = got["rust::faults::gated_test+extra::gated_real"]
    assert placeholder.outcome == real.outcome == "passed"
    assert placeholder.properties["rust.features"] == "(none)"
    assert real.properties["rust.features"] == "extra"
    assert "--features extra" in real.properties["rust.build_command"]
    assert placeholder.properties["classname"] == "faults.gated_test+default"
    assert "skipped: enable feature" in placeholder.sections["Captured rust test output call"]


def test_segfault_fails_every_unfinished_test_naming_the_signal(grind) -> None:  # type: ignore[no-untyped-def]
    _, got = grind(targets("{crate: faults, test: crash_test}"))
    assert got["rust::faults::crash_test::a_quick_pass"].outcome == "passed"
    for name in ("b_segfaults", "c_slow"):
        item = got[f"rust::faults::crash_test::{name}"]
        assert item.outcome == "failed" and "killed by SIGSEGV" in item.text
    assert got["rust::faults::crash_test::c_slow"].properties["rust.exit"] == "killed by SIGSEGV"


def test_one_test_thread_pinpoints_the_crashing_test(grind) -> None:  # type: ignore[no-untyped-def]
    _, got = grind(targets("{crate: faults, test: crash_test}", extra="  test_threads: 1\n"))
    assert got["rust::faults::crash_test::b_segfaults"].text.startswith(
        "b_segfaults: the test binary was killed by SIGSEGV while this test was running")
    assert got["rust::faults::crash_test::c_slow"].text.startswith(
        "c_slow: not finished, the test binary was killed by SIGSEGV while b_segfaults was running")


def test_abort_fails_the_aborting_test_only(grind) -> None:  # type: ignore[no-untyped-def]
    _, got = grind(targets("{crate: faults, test: abort_test}"))
    assert got["rust::faults::abort_test::finishes_first"].outcome == "passed"
    aborts = got["rust::faults::abort_test::aborts"]
    assert aborts.outcome == "failed"
    assert aborts.text.startswith("aborts: the test binary was killed by SIGABRT while this test")


def test_hang_is_killed_with_its_process_group_and_the_rest_still_report(
    grind, monkeypatch: pytest.MonkeyPatch  # type: ignore[no-untyped-def]
) -> None:
    marker = f"{4000 + os.getpid() % 1000}.{time.monotonic_ns() % 1000}"  # `sleep 4123.456`
    monkeypatch.setenv("CHOIRCI_HANG_MARKER", marker)
    started = time.monotonic()
    _, got = grind(targets("{crate: faults, test: hang_test}", extra="  timeout: 2\n"))
    elapsed = time.monotonic() - started
    assert got["rust::faults::hang_test::a_fast"].outcome == "passed"
    assert got["rust::faults::hang_test::b_fast"].outcome == "passed"
    hang = got["rust::faults::hang_test::z_hangs"]
    assert hang.outcome == "failed"
    assert hang.text.startswith("z_hangs: timed out after 2s (rust.timeout; the process group "
                                "was killed) while this test was running")
    assert elapsed < 30, elapsed
    assert not _processes_with_argument(marker), "the hanging test's child survived"


def _processes_with_argument(argument: str) -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if argument.encode() in args:
            found.append(cmdline.parent.name)
    return found


def test_huge_and_binary_output_is_bounded_and_clean(grind) -> None:  # type: ignore[no-untyped-def]
    _, got = grind(targets("{crate: faults, test: noisy_test}"))
    assert got["rust::faults::noisy_test::loud_pass"].outcome == "passed"
    loud = got["rust::faults::noisy_test::loud_fail"]
    assert loud.outcome == "failed" and "failed after 5000 lines" in loud.text.splitlines()[0]
    assert "earlier lines omitted" in loud.text and len(loud.text) < 25_000
    assert "loud fail line 4999" in loud.text
    control = got["rust::faults::noisy_test::control_characters"]
    assert control.outcome == "failed"
    for bad in ("\x1b", "\x00", "\x07"):
        assert bad not in control.text
    assert "bad red \\x07 message" in control.text


def test_missing_cargo_is_a_harness_error_not_a_failure(grind) -> None:  # type: ignore[no-untyped-def]
    _, got = grind(targets("{crate: faults, test: mixed_test}",
                           extra="  cargo: /nonexistent/bin/cargo\n"))
    item = got["rust::faults::mixed_test"]
    assert item.outcome == "error"
    assert "'/nonexistent/bin/cargo' not found on PATH" in item.text
    assert "rust.cargo" in item.text and "Traceback" not in item.text


def test_a_failure_points_at_its_source_line_relative_to_the_repository(
        grind, pytester: pytest.Pytester, faults_ws: Path) -> None:  # type: ignore[no-untyped-def]
    """JUnit consumers (mikepenz, EnricoMi, GitLab) want the failing line relative to the
    repository: faults/tests/mixed_test.rs, the line of the assertion."""
    import xml.etree.ElementTree as ET

    grind(targets("{crate: faults, test: mixed_test}"))
    junit = ET.parse(pytester.path / "evidence" / "junit.xml").getroot()
    case = next(c for c in junit.iter("testcase") if c.get("name") == "fails_with_output")
    source = (faults_ws / "faults" / "tests" / "mixed_test.rs").read_text().splitlines()
    assert case.get("file") == "faults/tests/mixed_test.rs"
    line = int(case.get("line") or 0)
    assert "assert" in source[line - 1] or "panic" in source[line - 1], source[line - 1]


def test_a_build_stuck_on_cargos_lock_says_so_and_is_bounded(
        pytester: pytest.Pytester, faults_ws: Path, tmp_path_factory: pytest.TempPathFactory,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Another cargo (an editor's rust-analyzer, a second run) holds the build directory's
    lock: cargo waits for it, silently unless its "Blocking" line is relayed. The wait is
    bounded by rust.build_timeout and ends in an error that says what happened, not in a
    "does not compile" failure of the repository."""
    import fcntl

    target = tmp_path_factory.mktemp("rf-locked-target")
    cargo_env(monkeypatch, target)
    (target / "debug").mkdir(parents=True)
    config = faults_ws / f"locked-{os.getpid()}.yaml"
    config.write_text("rust:\n  build_timeout: 4\n  targets:\n"
                      "    - {crate: faults, test: mixed_test}\n")
    with open(target / "debug" / ".cargo-lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # what a running cargo holds
        started = time.monotonic()
        result = pytester.runpytest_subprocess(
            "--grind", f"--choirci-config={config}",
            f"--evidence-dir={pytester.path / 'evidence'}", "-p", "no:cacheprovider")
        elapsed = time.monotonic() - started
    assert elapsed < 30, elapsed
    result.stdout.fnmatch_lines(["cargo (faults): Blocking waiting for file lock*"])
    text = result.stdout.str()
    assert "was not built: cargo did not finish within rust.build_timeout" in text
    assert "does not compile" not in text
    assert result.ret == pytest.ExitCode.TESTS_FAILED  # an error item: the verdict is not PASS
    result.assert_outcomes(errors=1)
