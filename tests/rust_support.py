"""Shared by tests/test_rust_*.py: real cargo, one copy of a fixture workspace per session,
one shared CARGO_TARGET_DIR, and reading per-item outcomes out of a pytester run."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

# Read at import, before pytester points HOME at a temporary directory: rustup's proxies
# find their toolchains through RUSTUP_HOME/CARGO_HOME, which default to ~/.rustup, ~/.cargo.
RUSTUP_HOME = os.environ.get("RUSTUP_HOME", os.path.expanduser("~/.rustup"))
CARGO_HOME = os.environ.get("CARGO_HOME", os.path.expanduser("~/.cargo"))
CARGO_HOME_BIN = Path(CARGO_HOME) / "bin"


def cargo_path() -> str:
    """PATH with cargo on it, or skip: these tests need a real Rust toolchain."""
    path = os.environ.get("PATH", "")
    if CARGO_HOME_BIN.is_dir():
        path = f"{CARGO_HOME_BIN}{os.pathsep}{path}"
    if shutil.which("cargo", path=path) is None:
        pytest.skip("cargo is not installed on this machine (needed to build the fixtures)")
    return path


def copy_workspace(source: Path, dest: Path) -> Path:
    shutil.copytree(source, dest, ignore=shutil.ignore_patterns("target", "evidence"))
    return dest


def cargo_env(monkeypatch: pytest.MonkeyPatch, target_dir: Path) -> None:
    monkeypatch.setenv("PATH", cargo_path())
    monkeypatch.setenv("RUSTUP_HOME", RUSTUP_HOME)
    monkeypatch.setenv("CARGO_HOME", CARGO_HOME)
    monkeypatch.setenv("CARGO_TARGET_DIR", str(target_dir))
    monkeypatch.setenv("CARGO_NET_OFFLINE", "true")  # zero-dependency crates; no registry here
    monkeypatch.setenv("RUST_BACKTRACE", "0")


@dataclass
class Outcome:
    outcome: str  # passed | failed | skipped | error
    text: str  # failure / skip text
    properties: dict[str, str]
    sections: dict[str, str]


def outcomes(reprec: pytest.HookRecorder) -> dict[str, Outcome]:
    """node id -> its outcome; a failed setup is an ``error``."""
    found: dict[str, Outcome] = {}
    for report in reprec.getreports("pytest_runtest_logreport"):
        entry = found.setdefault(report.nodeid, Outcome("passed", "", {}, {}))
        entry.properties.update(dict(report.user_properties))
        entry.sections.update(dict(report.sections))
        if report.when == "setup" and report.failed:
            entry.outcome, entry.text = "error", report.longreprtext
        elif report.skipped:
            entry.outcome = "skipped"
            entry.text = str(report.longrepr[2]) if isinstance(report.longrepr, tuple) else ""
        elif report.failed and entry.outcome != "error":
            entry.outcome, entry.text = "failed", report.longreprtext
    return found


REGISTRY = Path("/usr/share/cargo/registry")  # Debian's librust-*-dev crate sources
OFFLINE_CONFIG = """[source.crates-io]
replace-with = "debian"

[source.debian]
directory = "/usr/share/cargo/registry"

[net]
offline = true
"""


def debian_crate(pattern: str, dest: Path) -> Path | None:
    """A scratch copy of the newest Debian-packaged crate matching ``pattern`` (e.g.
    ``regex-1.7.1``), built offline from the registry through a source replacement in the
    copy's own .cargo/config.toml (never the user's global config); None: not installed."""
    sources = sorted(REGISTRY.glob(pattern))
    if not sources:
        return None
    shutil.copytree(sources[-1], dest)
    (dest / ".cargo-checksum.json").unlink(missing_ok=True)
    (dest / ".cargo").mkdir(exist_ok=True)
    (dest / ".cargo" / "config.toml").write_text(OFFLINE_CONFIG)
    return dest
