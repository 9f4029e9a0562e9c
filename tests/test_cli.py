"""The choirci console script: help that teaches, one-line errors."""

from __future__ import annotations

import subprocess
import sys

from choirci import cli


def test_help_lists_subcommands_and_the_pytest_job(capsys) -> None:  # type: ignore[no-untyped-def]
    try:
        cli.main(["--help"])
    except SystemExit as exc:
        assert exc.code == 0
    out = capsys.readouterr().out
    assert "pytest --grind" in out
    assert "choirci run" in out


def test_no_command_prints_help_and_fails(capsys) -> None:  # type: ignore[no-untyped-def]
    assert cli.main([]) == 2
    assert "usage: choirci" in capsys.readouterr().out


def test_console_script_entry_point_runs() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "choirci.cli", "--version"], capture_output=True, text=True
    )
    assert result.returncode == 0 and result.stdout.startswith("choirci ")
