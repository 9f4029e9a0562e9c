"""Shared test set-up: offline Nix settings for every test, and the repo's paths."""

from __future__ import annotations

from pathlib import Path

import pytest

# The test hosts (plain sshd, booted systemd-nspawn) live in tests/hostenv.
pytest_plugins = ("hostenv.fixtures",)

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "fixtures"
# build-users-group empty: builds run as root, because the example workspace's derivations call
# the host's rustup cargo under /root (mode 700, unreadable to nixbld users). flake-registry:
# `nix develop` would otherwise try to fetch the global registry from the network.
NIX_OFFLINE = "\n".join(
    [
        "experimental-features = nix-command flakes",
        "substituters =",
        "sandbox = false",
        "build-users-group =",
        "flake-registry = /var/empty/no-flake-registry.json",
        "warn-dirty = false",
    ]
)


@pytest.fixture(autouse=True)
def _offline_nix(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test talks to Nix offline, whatever the caller's environment says."""
    monkeypatch.setenv("NIX_CONFIG", NIX_OFFLINE)
