"""`pytest --grind -m rust` on the example workspace (fixtures/choiros-mini), as a user runs it:
real cargo, real nix develop, real pytest-xdist workers. One JUnit testcase per Rust test."""

from __future__ import annotations

import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from conftest import FIXTURES
from rust_support import Outcome, cargo_env, copy_workspace, outcomes

pytestmark = pytest.mark.slow

DESKTOP = "rust::sandbox::desktop_api_test::"
SUPERVISION = "rust::sandbox::supervision_test::supervision::"
DIOXUS = "rust::dioxus-desktop::dioxus-desktop::tests::"  # the bin's unit tests
GIT = ["git", "-c", "user.name=choirci", "-c", "user.email=choirci@localhost"]


@pytest.fixture(scope="session")
def mini(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A committed copy: sub-flakes (nix develop ./sandbox) only see tracked files."""
    ws = copy_workspace(FIXTURES / "choiros-mini", tmp_path_factory.mktemp("mini") / "ws")
    (ws / ".gitignore").write_text("target/\nevidence/\n.pytest_cache/\n*.yaml.local\n")
    subprocess.run(["git", "init", "-q", "."], cwd=ws, check=True)
    subprocess.run(["git", "add", "-A"], cwd=ws, check=True)
    subprocess.run([*GIT, "commit", "-q", "-m", "fixture"], cwd=ws, check=True)
    return ws


@pytest.fixture
def grind(pytester: pytest.Pytester, mini: Path, tmp_path_factory: pytest.TempPathFactory,
          monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    cargo_env(monkeypatch, tmp_path_factory.getbasetemp() / "mini-target")

    def run(*args: str, config: str = "choirci.yaml") -> tuple[pytest.HookRecorder, dict[str, Outcome]]:
        reprec = pytester.inline_run(
            "--grind", f"--choirci-config={mini / config}", "--area", "rust",
            f"--evidence-dir={pytester.path / 'evidence'}", "-p", "no:cacheprovider", *args,
        )
        return reprec, outcomes(reprec)

    return run


def test_every_rust_test_is_one_junit_testcase(grind, pytester: pytest.Pytester) -> None:  # type: ignore[no-untyped-def]
    junit = pytester.path / "junit.xml"
    reprec, got = grind("-m", "rust", f"--junitxml={junit}")
    assert got[DESKTOP + "test_health_check"].outcome == "passed"
    supervision = {k: v for k, v in got.items() if k.startswith(SUPERVISION)}
    assert len(supervision) == 3 and all(v.outcome == "passed" for v in supervision.values())
    assert all(v.properties["rust.features"] == "supervision_refactor" for v in supervision.values())
    gate = {k: v for k, v in got.items() if k.startswith("rust::hypervisor::auth_gate_test::")}
    assert len(gate) == 11 and all(v.outcome == "passed" for v in gate.values())
    # dioxus-desktop is excluded from the workspace (own Cargo.lock); its unit tests run too.
    desktop = {k: v for k, v in got.items() if k.startswith(DIOXUS)}
    assert sorted(k.removeprefix(DIOXUS) for k in desktop) == [
        "dist_dir_is_next_to_bin", "window_title_shows_unknown_identity"]
    assert all(v.outcome == "passed" for v in desktop.values())
    build = desktop[DIOXUS + "dist_dir_is_next_to_bin"].properties["rust.build_command"]
    assert build.endswith("--manifest-path dioxus-desktop/Cargo.toml -p dioxus-desktop "
                          "--bin dioxus-desktop"), build
    reprec.assertoutcome(passed=17)
    cases = ET.parse(junit).getroot().iter("testcase")
    assert len(list(cases)) == 17


def test_documented_filters_that_match_nothing_fail(grind) -> None:  # type: ignore[no-untyped-def]
    """An exact test name that does not exist is a failing item (only listing the binary
    knows); a binary that does not exist is a usage error before anything builds
    (tests/test_newcomer.py)."""
    reprec, got = grind("--rust-test", "sandbox::desktop_api_test::test_create_desktop")
    create = got[DESKTOP + "test_create_desktop"]
    assert create.outcome == "failed"
    assert "--rust-test sandbox::desktop_api_test::test_create_desktop: no test named" in create.text
    assert "so it would run 0 tests" in create.text and "nearest:" in create.text
    reprec.assertoutcome(failed=1)


def test_a_binary_that_does_not_exist_is_refused_before_anything_builds(
        pytester: pytest.Pytester, mini: Path, tmp_path_factory: pytest.TempPathFactory,
        monkeypatch: pytest.MonkeyPatch) -> None:
    cargo_env(monkeypatch, tmp_path_factory.getbasetemp() / "mini-target")
    result = pytester.runpytest("--grind", f"--choirci-config={mini / 'choirci.yaml'}",
                                "--rust-test", "sandbox::actorharness_live_test",
                                f"--evidence-dir={pytester.path / 'evidence'}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --rust-test sandbox::actorharness_live_test: crate "
                                 "sandbox has no test binary 'actorharness_live_test'; *"])


def test_rust_test_finds_a_crate_outside_the_workspace_by_its_configured_manifest(
    grind,  # type: ignore[no-untyped-def]
) -> None:
    reprec, got = grind("--rust-test",
                        "dioxus-desktop::dioxus-desktop::tests::window_title_shows_unknown_identity")
    assert list(got) == [DIOXUS + "window_title_shows_unknown_identity"]
    reprec.assertoutcome(passed=1)


def test_a_crate_outside_the_workspace_without_manifest_is_refused_and_says_why(
    pytester: pytest.Pytester, mini: Path, tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cargo_env(monkeypatch, tmp_path_factory.getbasetemp() / "mini-target")
    (mini / "nomanifest.yaml.local").write_text(
        "rust:\n  targets:\n    - {crate: dioxus-desktop, test: dioxus-desktop}\n")
    result = pytester.runpytest("--grind", f"--choirci-config={mini / 'nomanifest.yaml.local'}",
                                f"--evidence-dir={pytester.path / 'evidence'}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    text = result.stderr.str()
    assert "no crate 'dioxus-desktop' in the Cargo workspace at" in text
    assert "needs 'manifest: <dir>/Cargo.toml' on its target" in text


def test_a_manifest_typo_is_a_one_line_usage_error(pytester: pytest.Pytester, mini: Path) -> None:
    config = mini / "typo.yaml.local"
    config.write_text("rust:\n  targets:\n    - crate: dioxus-desktop\n      test: dioxus-desktop\n"
                      "      manifest: dioxus-destkop/Cargo.toml\n")
    result = pytester.runpytest("--grind", f"--choirci-config={config}", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.stderr.lines if line.startswith("ERROR:")]
    looked = mini / "dioxus-destkop/Cargo.toml"
    expected = (f"ERROR: {config}:5: rust.targets[0].manifest: no such file "
                f"'dioxus-destkop/Cargo.toml' (looked for {looked}); "
                "the path is relative to the config file")
    assert errors == [expected]


def test_ignored_live_test_is_skipped_with_its_reason(grind) -> None:  # type: ignore[no-untyped-def]
    _, got = grind("--rust-test", "sandbox::alm_eval_test")
    (only,) = got.values()
    assert only.outcome == "skipped" and "live LLM: needs provider keys" in only.text


def test_supervision_without_the_feature_passes_and_says_so(grind, mini: Path) -> None:  # type: ignore[no-untyped-def]
    (mini / "plain.yaml.local").write_text(
        "rust:\n  targets:\n    - {crate: sandbox, test: supervision_test}\n")
    _, got = grind(config="plain.yaml.local")
    (name,) = got
    assert name == "rust::sandbox::supervision_test::supervision_tests_require_feature"
    assert got[name].outcome == "passed"
    assert got[name].properties["rust.features"] == "(none)"  # the evidence shows why it passed


def test_cargo_runs_inside_nix_develop(grind, mini: Path) -> None:  # type: ignore[no-untyped-def]
    if shutil.which("nix") is None:
        pytest.skip("nix is not installed on this machine")
    (mini / "develop.yaml.local").write_text(
        "rust:\n  develop: ./sandbox\n  targets:\n"
        "    - {crate: sandbox, test: desktop_api_test, tests: [test_health_check]}\n")
    _, got = grind(config="develop.yaml.local")
    item = got[DESKTOP + "test_health_check"]
    assert item.outcome == "passed", item.text
    assert item.properties["rust.build_command"].startswith(
        "nix --extra-experimental-features 'nix-command flakes' develop ./sandbox --command cargo test")


def test_xdist_workers_collect_identically_and_compile_once(
    pytester: pytest.Pytester, mini: Path, tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cargo_env(monkeypatch, tmp_path_factory.getbasetemp() / "mini-target")
    calls = pytester.path / "cargo-calls.log"
    shim = pytester.path / "cargo-logged"  # the real cargo, counting its invocations
    shim.write_text(f'#!/bin/sh\necho "$*" >> {calls}\nexec cargo "$@"\n')
    shim.chmod(0o755)
    rust = yaml.safe_load((mini / "choirci.yaml").read_text())["rust"]
    (mini / "xdist.yaml.local").write_text(yaml.safe_dump({"rust": {**rust, "cargo": str(shim)}}))
    result = pytester.runpytest_subprocess(
        "--grind", f"--choirci-config={mini / 'xdist.yaml.local'}", "--area", "rust",
        f"--evidence-dir={pytester.path / 'evidence'}", "-n", "2", "--dist", "loadgroup",
        "-o", f"cache_dir={pytester.path / 'cache'}",
    )
    result.assert_outcomes(passed=17)  # xdist itself errors when workers collect differently
    lines = calls.read_text().splitlines()
    # metadata once per manifest (root workspace, dioxus-desktop): the controller checks the
    # names before anything builds and runs the one shared discovery with the same answers;
    # then one build per (manifest, crate, features): desktop_api, supervision, hypervisor,
    # dioxus-desktop.
    assert sum(line.startswith("metadata") for line in lines) == 2, lines
    assert sum(line.startswith("test --no-run") for line in lines) == 4, lines


def test_workspace_selection_equals_cargo_test_workspace_lib_bins(
        pytester: pytest.Pytester, mini: Path, tmp_path_factory: pytest.TempPathFactory,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """`rust.workspace: {kinds: [lib, bin]}` is CI's `cargo test --workspace --lib --bins`
    (CONTRACT.md §7): the same tests, one item each, each saying where it came from."""
    import json
    import re

    target = tmp_path_factory.getbasetemp() / "mini-target"
    cargo_env(monkeypatch, target)
    raw = subprocess.run(["cargo", "test", "--workspace", "--lib", "--bins", "--offline"],
                         cwd=mini, capture_output=True, text=True, timeout=600, check=False)
    assert raw.returncode == 0, raw.stderr[-2000:]
    raw_tests = re.findall(r"^test (\S+) \.\.\. ok$", raw.stdout, re.MULTILINE)
    (mini / "workspace.yaml.local").write_text(
        "rust:\n  workspace:\n    kinds: [lib, bin]\n    exclude: [no-such-crate]\n")
    result = pytester.runpytest("--grind", f"--choirci-config={mini / 'workspace.yaml.local'}",
                                f"--evidence-dir={pytester.path / 'evidence'}",
                                "-p", "no:cacheprovider")
    items = json.loads((pytester.path / "evidence" / "choirci.json").read_text())["runs"][0]["items"]
    names = sorted(dict(i["properties"]).get("name", i["nodeid"].split("::")[-1]) for i in items)
    assert result.ret == 0 and names == sorted(raw_tests), (names, raw_tests)
    assert {dict(i["properties"])["rust.origin"].split(": ", 1)[1].split(" (")[0]
            for i in items} == {"rust.workspace"}
    crates = {i["nodeid"].split("::")[1] for i in items}
    assert "dioxus-desktop" not in crates  # outside the workspace, as for cargo --workspace
