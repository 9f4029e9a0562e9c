"""What `cargo test` runs, choirci runs: doc tests, every target kind, names that collide
between kinds, ignored tests on request, child processes that print libtest's lines, the
environment cargo gives a test binary, and each test's own duration. Real cargo on
fixtures/rust-faults (crate `kinds`), as a user runs it (pytester)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
from conftest import FIXTURES
from rust_support import Outcome, cargo_env, copy_workspace, outcomes

from choirci.rust import cargo as cargo_mod
from choirci.rust import discover as discover_mod
from choirci.rust.plan import Wanted

pytestmark = pytest.mark.slow

DOC = "rust::kinds::doc::kinds/src/lib.rs - double "


@pytest.fixture(scope="session")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_workspace(FIXTURES / "rust-faults", tmp_path_factory.mktemp("rk") / "ws")


@pytest.fixture(scope="session")
def target_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("rk-target")


@pytest.fixture
def grind(pytester: pytest.Pytester, ws: Path, target_dir: Path,
          monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    cargo_env(monkeypatch, target_dir)

    def run(config: str, *args: str) -> tuple[pytest.HookRecorder, dict[str, Outcome]]:
        path = write_config(ws, config)
        reprec = pytester.inline_run(
            "--grind", f"--choirci-config={path}",
            f"--evidence-dir={pytester.path / 'evidence'}", "-p", "no:cacheprovider", *args,
        )
        return reprec, outcomes(reprec)

    return run


def write_config(ws: Path, config: str) -> Path:
    path = ws / f"choirci-{os.getpid()}-{time.monotonic_ns()}.yaml"
    path.write_text(config)
    return path


def targets(*lines: str, extra: str = "") -> str:
    return "rust:\n" + extra + "  targets:\n" + "".join(f"    - {line}\n" for line in lines)


def short(got: dict[str, Outcome], prefix: str) -> dict[str, str]:
    return {k.removeprefix(prefix): v.outcome for k, v in got.items() if k.startswith(prefix)}


# ----------------------------------------------------------------------------- doc tests


def test_doc_tests_run_one_item_each_and_a_stale_example_fails(grind) -> None:  # type: ignore[no-untyped-def]
    reprec, got = grind(targets("{crate: kinds, kind: doc}"))
    assert short(got, DOC) == {"(line 5)": "passed", "(line 11)": "failed",
                               "(line 15)": "passed", "(line 19)": "skipped"}
    stale = got[DOC + "(line 11)"]
    assert stale.text.startswith("kinds/src/lib.rs - double (line 11): panicked at "
                                 "kinds/src/lib.rs:5:1: assertion `left == right` failed")
    assert "right: 6" in stale.text
    command = got[DOC + "(line 5)"].properties["rust.command"]
    assert " test --doc -p kinds -- " in command
    assert reprec.ret == pytest.ExitCode.TESTS_FAILED


def test_a_proc_macro_crates_unit_and_doc_tests_run_as_cargo_runs_them(
        grind, ws: Path) -> None:  # type: ignore[no-untyped-def]
    """cargo metadata calls a proc-macro crate's library kind "proc-macro"; `cargo test --lib`
    and `--doc` run its tests like any library's, by hand and from rust.workspace."""
    reprec, got = grind(targets("{crate: macros, test: lib}", "{crate: macros, kind: doc}"))
    assert {k: v.outcome for k, v in got.items()} == {
        "rust::macros::lib::tests::counts_items": "passed",
        "rust::macros::lib::tests::counts_nothing": "passed",
        "rust::macros::doc::macros/src/lib.rs - (line 3)": "passed"}
    raw = subprocess.run(["cargo", "test", "--offline", "-p", "macros"], cwd=ws,
                         capture_output=True, text=True, check=False)
    assert raw.returncode == 0 and raw.stdout.count("... ok") == 3, raw.stdout
    _, got = grind("rust:\n  workspace:\n    kinds: [lib, doc]\n    exclude: [faults, kinds]\n")
    assert sorted(got) == sorted(["rust::macros::lib::tests::counts_items",
                                  "rust::macros::lib::tests::counts_nothing",
                                  "rust::macros::doc::macros/src/lib.rs - (line 3)"])


def test_doc_tests_are_selectable_from_the_command_line(grind) -> None:  # type: ignore[no-untyped-def]
    _, got = grind(targets("{crate: faults, test: mixed_test}"), "--rust-test", "kinds::doc",
                   "-k", "line and not 11 and not 15 and not 19")
    assert short(got, "rust::") == {"kinds::doc::kinds/src/lib.rs - double (line 5)": "passed"}


def test_doc_test_node_ids_read_right_in_pytest_summary(
    pytester: pytest.Pytester, ws: Path, target_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cargo_env(monkeypatch, target_dir)
    monkeypatch.setenv("COLUMNS", "400")
    config = write_config(ws, targets("{crate: kinds, kind: doc}",
                                      "{crate: faults, test: gated_test}",
                                      "{crate: faults, test: gated_test, features: [extra]}"))
    result = pytester.runpytest("--grind", f"--choirci-config={config}", "-p", "no:cacheprovider",
                                "-rA", "-v", "--deselect", "rust::faults::gated_test+default",
                                "-k", "gated_test+extra or line")
    result.stdout.fnmatch_lines([
        "PASSED rust::faults::gated_test+extra::gated_real",
        ("FAILED rust::kinds::doc::kinds/src/lib.rs - double (line 11) - kinds/src/lib.rs - "
         "double (line 11): panicked at *"),
    ])
    assert "gated_test+default" not in result.stdout.str().replace("--deselect", "")
    assert "src/lib::rs" not in result.stdout.str()  # pytest turns domain dots into `::`
    result.stdout.fnmatch_lines(["_* rust::kinds::doc::kinds/src/lib.rs - double (line 11) *"])


# ----------------------------------------------------------------------------- target kinds


@pytest.mark.parametrize(("target", "choices"), [
    ("{crate: kinds, test: lib}",
     ("kind: lib (the library's unit tests (--lib)) or kind: test (the integration test "
      "tests/lib.rs (--test))")),
    ("{crate: kinds, test: shared}",
     ("kind: test (the integration test tests/shared.rs (--test)) or kind: bin (the unit "
      "tests of [[bin]] shared (--bin))")),
])
def test_an_ambiguous_bare_name_is_a_one_line_usage_error(
    pytester: pytest.Pytester, ws: Path, target_dir: Path, monkeypatch: pytest.MonkeyPatch,
    target: str, choices: str,
) -> None:
    cargo_env(monkeypatch, target_dir)
    config = write_config(ws, targets(target))
    result = pytester.runpytest("--grind", f"--choirci-config={config}", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.stderr.lines if line.startswith("ERROR:")]
    assert len(errors) == 1 and "is ambiguous in crate kinds: " + choices in errors[0], errors
    assert "add the kind to the target" in errors[0]
    assert "Traceback" not in result.stderr.str()


def test_every_kind_is_selectable_and_named_apart(grind) -> None:  # type: ignore[no-untyped-def]
    _, got = grind(targets("{crate: kinds, kind: lib}", "{crate: kinds, kind: test, test: lib}",
                           "{crate: kinds, kind: bin, test: shared}",
                           "{crate: kinds, kind: test, test: shared}",
                           "{crate: kinds, kind: example, test: demo}"))
    assert short(got, "rust::kinds::") == {
        "lib:lib::tests::unit_double": "passed",
        "test:lib::integration_lib": "passed",
        "test:lib::ignored_in_lib": "skipped",
        "bin:shared::tests::bin_unit": "passed",
        "test:shared::integration_shared": "passed",
        "example:demo::example_test": "passed",
    }
    build = got["rust::kinds::test:lib::integration_lib"].properties["rust.build_command"]
    assert "--lib --test lib --bin shared --test shared --example demo" in build


def test_rust_test_takes_kind_colon_name(grind) -> None:  # type: ignore[no-untyped-def]
    _, got = grind(targets("{crate: faults, test: mixed_test}"),
                   "--rust-test", "kinds::test:lib::integration_lib",
                   "--rust-test", "kinds::bin:shared")
    assert short(got, "rust::") == {"kinds::test:lib::integration_lib": "passed",
                                    "kinds::bin:shared::tests::bin_unit": "passed"}


def test_a_misspelt_name_fails_even_when_another_target_takes_the_whole_binary(grind) -> None:  # type: ignore[no-untyped-def]
    _, got = grind(targets("{crate: faults, test: mixed_test}",
                           "{crate: faults, test: mixed_test, tests: [test_health_chekc]}"))
    typo = got["rust::faults::mixed_test::test_health_chekc"]
    assert typo.outcome == "failed"
    assert "no test named 'test_health_chekc'" in typo.text
    assert "nearest: test_health_check" in typo.text
    assert got["rust::faults::mixed_test::test_health_check"].outcome == "passed"


# ----------------------------------------------------------------------------- ignored tests


def test_ignored_tests_are_skipped_and_the_skip_says_how_to_run_them(grind) -> None:  # type: ignore[no-untyped-def]
    _, got = grind(targets("{crate: kinds, kind: test, test: lib, tests: [ignored_in_lib]}"))
    (only,) = got.values()
    assert only.outcome == "skipped"
    assert "needs the moon" in only.text and "rust.ignored: include" in only.text
    assert "--rust-ignored=include" in only.text


def test_include_and_only_run_ignored_tests(grind, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("CHOIRCI_IGNORED_RUNS", "1")
    config = targets("{crate: kinds, kind: test, test: lib}")
    _, got = grind(config, "--rust-ignored=include")
    assert short(got, "rust::kinds::test:lib::") == {"integration_lib": "passed",
                                                     "ignored_in_lib": "passed"}
    _, got = grind(config, "--rust-ignored=only")
    assert short(got, "rust::kinds::test:lib::") == {"ignored_in_lib": "passed"}
    assert "--ignored" in got["rust::kinds::test:lib::ignored_in_lib"].properties["rust.command"]
    # A test named exactly that is not ignored would run 0 tests under `only`: it fails.
    _, got = grind(targets("{crate: kinds, kind: test, test: lib, tests: [integration_lib]}"),
                   "--rust-ignored=only")
    (named,) = got.values()
    assert named.outcome == "failed" and "is not #[ignore]d" in named.text
    # The config key does the same as the flag.
    _, got = grind(targets("{crate: kinds, kind: test, test: lib}", extra="  ignored: only\n"))
    assert short(got, "rust::kinds::test:lib::") == {"ignored_in_lib": "passed"}


def test_listing_starts_one_process_per_binary_unless_only_ignored_are_wanted(
    monkeypatch: pytest.MonkeyPatch, ws: Path, target_dir: Path,
) -> None:
    cargo_env(monkeypatch, target_dir)
    calls: list[tuple[str, ...]] = []
    real = discover_mod.list_tests

    def counting(argv, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append((*argv, str(kwargs.get("ignored", False))))
        return real(argv, *args, **kwargs)

    monkeypatch.setattr(discover_mod, "list_tests", counting)
    cargo = cargo_mod.Cargo(cwd=ws)
    wanted = [Wanted("kinds", "lib", (), None, "o", kind="test"),
              Wanted("faults", "mixed_test", (), None, "o")]
    plans = discover_mod.discover(wanted, cargo)
    assert [p.problem for p in plans] == [None, None]
    assert len(calls) == 2 and all(call[-1] == "False" for call in calls)
    calls.clear()
    plans = discover_mod.discover(wanted, cargo, ignored="only")
    assert len(calls) == 4
    assert plans[0].ignored == ("ignored_in_lib",)


# ----------------------------------------------------------------------------- attribution


def test_child_processes_printing_libtest_lines_cannot_change_results(grind) -> None:  # type: ignore[no-untyped-def]
    for threads in ("", "  test_threads: 1\n"):
        _, got = grind(targets("{crate: kinds, kind: test, test: child_output}", extra=threads))
        assert short(got, "rust::kinds::child_output::") == {
            "a_prints_summary": "passed", "b_prints_failures_header": "passed",
            "c_prints_successes_header": "passed", "d_prints_fake_result": "passed",
            "e_fails": "failed", "f_fails": "failed", "g_fails": "failed",
        }, threads
        for name in ("e", "f", "g"):
            text = got[f"rust::kinds::child_output::{name}_fails"].text
            assert f"{name} really fails" in text.splitlines()[0], text


# ----------------------------------------------------------------------------- environment

# What differs from `cargo test`'s environment on purpose (README, rust: section).
INTENDED = {"PYTEST_CURRENT_TEST"}


def test_the_environment_equals_what_cargo_test_gives(
    grind, ws: Path, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    raw_dump, ours_dump = tmp_path / "raw.env", tmp_path / "choirci.env"
    env = {**os.environ, "CHOIRCI_ENV_DUMP": str(raw_dump)}
    subprocess.run(["cargo", "test", "-q", "-p", "kinds", "--test", "env_dump"], cwd=ws, env=env,
                   check=True, capture_output=True)
    os.environ["CHOIRCI_ENV_DUMP"] = str(ours_dump)
    try:
        _, got = grind(targets("{crate: kinds, kind: test, test: env_dump}"))
    finally:
        del os.environ["CHOIRCI_ENV_DUMP"]
    assert got["rust::kinds::env_dump::dump"].outcome == "passed"
    raw, ours = _env(raw_dump), _env(ours_dump)
    assert raw["CHOIRCI_ENV_DUMP"] != ours["CHOIRCI_ENV_DUMP"]  # the one we set ourselves
    raw.pop("CHOIRCI_ENV_DUMP"), ours.pop("CHOIRCI_ENV_DUMP")
    differs = {k for k in raw.keys() | ours.keys() if raw.get(k) != ours.get(k)}
    assert differs <= INTENDED, {k: (raw.get(k), ours.get(k)) for k in differs}
    # The variables the issue named, there and equal.
    for key in ("CARGO", "CARGO_MANIFEST_DIR", "CARGO_MANIFEST_PATH", "CARGO_PKG_NAME",
                "CARGO_PKG_VERSION_MINOR", "CARGO_PKG_DESCRIPTION", "LD_LIBRARY_PATH", "cwd"):
        assert key in ours, key
    assert ours["CARGO_PKG_DESCRIPTION"] == "choirci fixture: test kinds"
    assert "/debug/deps" in ours["LD_LIBRARY_PATH"]
    assert ours["cwd"] == str(ws / "kinds")
    assert "CARGO_CRATE_NAME" not in ours  # cargo sets it for rustc only
    if "RUSTUP_TOOLCHAIN" in raw:
        assert ours["RUSTUP_TOOLCHAIN"] == raw["RUSTUP_TOOLCHAIN"]


def _env(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines())


# ----------------------------------------------------------------------------- durations


@pytest.mark.parametrize("threads", ["", "  test_threads: 1\n"])
def test_each_item_carries_its_own_tests_duration(grind, monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
                                                  threads: str) -> None:
    monkeypatch.setenv("CHOIRCI_SLEEP_MS", "100")
    reprec, _ = grind(targets("{crate: kinds, kind: test, test: counted}", extra=threads),
                      "-k", "t00")
    calls = [r for r in reprec.getreports("pytest_runtest_logreport") if r.when == "call"]
    assert len(calls) == 10
    durations = [r.duration for r in calls]
    # One test sleeps 0.1 s; the binary runs 10 of them (>= 0.5 s on 2 threads).
    assert all(0.03 <= d <= 0.6 for d in durations), durations
    assert durations[0] < 0.5 * sum(durations), durations


def test_last_failed_reruns_exactly_the_failed_rust_items(
    pytester: pytest.Pytester, ws: Path, target_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cargo_env(monkeypatch, target_dir)
    monkeypatch.setenv("COLUMNS", "400")
    config = write_config(ws, targets("{crate: kinds, kind: doc}",
                                      "{crate: faults, test: compile_error_test, features: [extra]}",
                                      "{crate: faults, test: gated_test, features: [extra]}",
                                      "{crate: faults, test: gated_test}"))
    args = ["--grind", f"--choirci-config={config}", "-o", f"cache_dir={pytester.path / 'c'}",
            f"--evidence-dir={pytester.path / 'ev'}"]
    first = pytester.runpytest(*args)
    first.assert_outcomes(passed=4, failed=2, skipped=1)
    again = pytester.runpytest(*args, "--lf", "-rA")
    again.assert_outcomes(failed=2)
    again.stdout.fnmatch_lines([
        "FAILED rust::kinds::doc::kinds/src/lib.rs - double (line 11)*",
        "FAILED rust::faults::compile_error_test - *",
    ], consecutive=False)
