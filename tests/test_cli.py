"""The choirci console script: help that teaches, one-line errors."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from choirci import cli


def test_help_lists_subcommands_and_the_pytest_job(capsys: pytest.CaptureFixture[str]) -> None:
    try:
        cli.main(["--help"])
    except SystemExit as exc:
        assert exc.code == 0
    out = capsys.readouterr().out
    assert "pytest --grind" in out
    assert "choirci run" in out


def test_no_command_prints_help_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([]) == 2
    assert "usage: choirci" in capsys.readouterr().out


def test_console_script_entry_point_runs() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "choirci.cli", "--version"], capture_output=True, text=True,
        check=False,
    )
    assert result.returncode == 0 and result.stdout.startswith("choirci ")


# The subcommands whose help this file checks teach with a description and an example.
OWN_HELP = [["matrix"], ["manifest"], ["manifest", "build"], ["manifest", "verify"],
            ["manifest", "diff"], ["manifest", "show"]]


def help_of(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exited:
        cli.main([*args, "--help"])
    assert exited.value.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("args", OWN_HELP, ids=" ".join)
def test_help_has_a_description_and_an_example(
        args: list[str], capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    out = help_of(args, capsys)
    usage, description = out.split("\n\n")[:2]
    assert usage.startswith(f"usage: choirci {' '.join(args)}")
    assert len(description.split()) >= 12 and description[0].isalpha(), description
    examples = [line for line in out.splitlines() if line.startswith("  choirci ")]
    assert any(line.split()[1:1 + len(args)] == args for line in examples), out
    assert max(len(line) for line in out.splitlines()) <= 100
    assert not re.search(r"\S {5,}\$\(", out), "a line continuation lost its backslash"


def test_top_level_help_fits_and_points_at_the_commands(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    out = help_of([], capsys)
    assert max(len(line) for line in out.splitlines()) <= 100
    assert "`choirci COMMAND --help`" in out


def test_manifest_example_keeps_its_line_continuation(capsys: pytest.CaptureFixture[str]) -> None:
    out = help_of(["manifest"], capsys)
    assert "--to ssh://choiros-prod \\\n      $(choirci manifest show" in out


@pytest.mark.parametrize(("args", "names"), [
    (["manifest", "diff"], ["OLD", "NEW"]), (["manifest", "show"], ["MANIFEST"]),
    (["manifest", "verify"], ["MANIFEST"])])
def test_positionals_are_named_and_explained(args: list[str], names: list[str],
                                             capsys: pytest.CaptureFixture[str]) -> None:
    out = help_of(args, capsys)
    listed = out.split("positional arguments:\n")[1].split("\n\n")[0]
    for name in names:
        (line,) = [line for line in listed.splitlines() if line.split()[:1] == [name]]
        assert len(line.split()) > 3, f"{name} has no help: {line!r}"


@pytest.mark.parametrize("args", [["matrix"], ["manifest", "build"], ["manifest", "verify"],
                                  ["manifest", "diff"]], ids=" ".join)
def test_config_option_is_named_as_pytest_names_it(args: list[str],
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """Errors say "pass --choirci-config PATH" (the pytest option, also gate's): it must work."""
    out = help_of(args, capsys)
    # Python 3.13's argparse names the metavar once: "--choirci-config, --config PATH".
    assert re.search(r"--choirci-config( PATH)?, --config PATH", out), out
    assert "[--choirci-config PATH]" in " ".join(out.split())


@pytest.mark.parametrize("argv", [["run", "--help"], ["run", "-h"], ["--grind", "--help"],
                                  ["run", "-m", "rust", "-h"]])
def test_run_help_is_pytests_help_outside_a_workspace(argv: list[str], tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "CHOIRCI_CONFIG"}
    result = subprocess.run([sys.executable, "-m", "choirci.cli", *argv], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: choirci run [pytest options]")
    group = result.stdout.split("\nchoirci: ", 1)[1]
    assert "--grind" in group and "--choirci-config" in group
