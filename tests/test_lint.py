"""The package stays typed (mypy --strict) and lint-clean (ruff): STYLE.md's floor."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *argv], cwd=REPO, capture_output=True, text=True, timeout=600
    )


def test_mypy_strict_is_clean() -> None:
    result = run("mypy", "choirci")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_is_clean() -> None:
    result = run("ruff", "check", "choirci", "checks")
    assert result.returncode == 0, result.stdout + result.stderr
