"""The plugin as a user runs it (pytester): options, markers, usage errors, inertness."""

from __future__ import annotations

import pytest

CONFIG = "closures:\n  sandbox: ./sandbox#sandbox\n  hypervisor: ./hypervisor#hypervisor\n"


def test_help_shows_choirci_group(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    assert result.ret == 0
    text = result.stdout.str()
    group = text[text.index("choirci: build Nix closures") :]
    for option in ("--grind", "--closure=NAME", "--rust-test=", "--choirci-config=PATH",
                   "--evidence-dir=DIR"):
        assert option in group, option


def test_markers_are_registered(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--markers")
    for marker in ("@pytest.mark.nix:", "@pytest.mark.rust:", "@pytest.mark.host:",
                   "@pytest.mark.loop:"):
        result.stdout.fnmatch_lines([f"{marker}*"])


def test_inert_without_grind(pytester: pytest.Pytester) -> None:
    """An ordinary project with choirci installed runs exactly as before, config or not."""
    pytester.makefile(".yaml", choirci="closures: [this is not valid\n")
    pytester.makepyfile("def test_one():\n    assert True\n")
    result = pytester.runpytest("--strict-markers")
    result.assert_outcomes(passed=1)


def test_malformed_config_is_one_line_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", choirci="closures:\n  sandbox: ./sandbox#sandbox\n  bad: sandbox\n")
    result = pytester.runpytest("--grind")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: choirci.yaml:3: closures.bad: expected 'path#attr' (e.g. './sandbox#sandbox'), "
         "got 'sandbox'"]
    )
    assert "Traceback" not in result.stderr.str() + result.stdout.str()


def test_unknown_closure_is_usage_error_listing_known(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", choirci=CONFIG)
    result = pytester.runpytest("--grind", "--closure", "desktop")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: unknown closure 'desktop'; known closures: sandbox, hypervisor"]
    )


def test_selection_flags_need_grind(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", choirci=CONFIG)
    result = pytester.runpytest("--closure", "sandbox")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --closure selects within a choirci run; add --grind*"])


def test_missing_config_is_usage_error(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--grind")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: no choirci.yaml found in *; create one*"])


def test_explicit_config_path(pytester: pytest.Pytester) -> None:
    sub = pytester.mkdir("conf")
    (sub / "ci.yaml").write_text("closures:\n  x: nope\n")
    result = pytester.runpytest("--grind", "--choirci-config", "conf/ci.yaml")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: conf/ci.yaml:2: closures.x: expected 'path#attr'*"])


def test_help_works_outside_a_workspace(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--grind", "--help")
    assert result.ret == 0
    assert "--rust-test=CRATE::BIN[::TEST]" in result.stdout.str()


def test_bad_rust_test_is_refused_before_collection_and_keeps_evidence(
    pytester: pytest.Pytester,
) -> None:
    pytester.makefile(".yaml", choirci=CONFIG)
    evidence = pytester.mkdir("evidence")
    (evidence / "choirci.json").write_text("previous run")
    result = pytester.runpytest("--grind", "--rust-test", "garbage")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --rust-test 'garbage': expected CRATE::BIN or*"])
    assert (evidence / "choirci.json").read_text() == "previous run"
    assert "collected" not in result.stdout.str()


def test_option_value_taken_for_rootdir_is_explained(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    workspace = pytester.mkdir("ws")
    (workspace / "choirci.yaml").write_text(CONFIG)
    outside = pytester.mkdir("out")
    monkeypatch.chdir(workspace)
    result = pytester.runpytest_subprocess("--grind", "--evidence-dir", str(outside))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: pytest takes '{outside}' (the value of --evidence-dir)*"
                                 f"write --evidence-dir={outside} (with '=')"])
