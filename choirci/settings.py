"""Run settings: the validated Config plus what the command line selected.

Resolved once in ``pytest_configure`` (CLI > environment > file) and stored in
``config.stash[SETTINGS]``; every area reads it from there, nothing re-parses options.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from choirci.config import Closure, Config


@dataclass(frozen=True)
class Settings:
    config: Config
    closures: tuple[Closure, ...]
    rust_selection: tuple[str, ...]
    evidence_dir: Path
    invocation_dir: Path
    areas: tuple[str, ...] | None = None  # None: every area (see choirci.selection)
    is_worker: bool = False
    rust_ignored: str | None = None  # --rust-ignored: overrides rust.ignored
    areas_why: str = "--area"  # how the areas were chosen, for "not selected (...)" reasons
    python_tests: bool = False  # --python-tests: the repository's own tests count too

    @property
    def root(self) -> Path:
        return self.config.root


SETTINGS = pytest.StashKey[Settings]()


def get(config: pytest.Config) -> Settings | None:
    """The run's settings, or None when choirci is not active (no --grind)."""
    return config.stash.get(SETTINGS, None)
