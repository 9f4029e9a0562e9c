"""Shared test set-up: offline Nix settings for every test, and the repo's paths."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "fixtures"
NIX_OFFLINE = "experimental-features = nix-command flakes\nsubstituters =\nsandbox = false"


@pytest.fixture(autouse=True)
def _offline_nix(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test talks to Nix offline, whatever the caller's environment says."""
    if "substituters =" not in os.environ.get("NIX_CONFIG", ""):
        monkeypatch.setenv("NIX_CONFIG", NIX_OFFLINE)
