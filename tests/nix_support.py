"""Helpers for the real-Nix tests of the closures and loops areas (imported, not collected).

Workspaces are tiny no-input flakes whose derivations run ``/bin/sh`` (there is no nixpkgs
offline). Every workspace carries a fresh nonce in its derivations, so a "cold" build is
really cold and a test only ever deletes store paths it created itself.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path

import pytest

NIX = "/usr/bin/nix"
GIT = ["git", "-c", "user.email=t@t", "-c", "user.name=t"]


def nix_config(tmp: Path, *, substituter: str | None = None) -> str:
    """Offline NIX_CONFIG. ``flake-registry`` points at an empty local file: without it
    ``nix develop`` resolves ``nixpkgs#bashInteractive`` through the global registry,
    i.e. over the network."""
    registry = tmp / "flake-registry.json"
    if not registry.exists():
        registry.write_text(json.dumps({"flakes": [], "version": 2}))
    lines = [
        "experimental-features = nix-command flakes",
        f"substituters = {substituter or ''}",
        "sandbox = false",
        # Build as root: the choiros-mini builder runs the host cargo under /root (mode 700).
        "build-users-group =",
        f"flake-registry = {registry}",
    ]
    if substituter:
        lines.append("require-sigs = false")  # the test cache is unsigned
    return "\n".join(lines)


def use_nix(monkeypatch: pytest.MonkeyPatch, tmp: Path, substituter: str | None = None) -> None:
    if not Path(NIX).exists():
        pytest.skip(f"{NIX} is not installed on this machine")
    monkeypatch.setenv("NIX_CONFIG", nix_config(tmp, substituter=substituter))


def flake(packages: Mapping[str, str], nonce: str, shells: Mapping[str, str] | None = None) -> str:
    """A flake with ``packages.x86_64-linux.<name>`` built by ``/bin/sh -c <script>``.

    A script may use ``$dep_<other>`` to depend on another package of the same flake.
    """
    lines = ["{", "  outputs = { self }: let", '    sys = "x86_64-linux";',
             "    mk = name: script: extra: builtins.derivation ({ inherit name; system = sys;",
             '      builder = "/bin/sh"; args = [ "-c" script ];',
             f'      nonce = "{nonce}"; PATH = "/usr/bin:/bin"; }} // extra);',
             "    pkgs = rec {"]
    for name, script in packages.items():
        deps = " ".join(f"dep_{d} = {d};" for d in packages if f"$dep_{d}" in script)
        lines.append(f"      {name} = mk \"{name}\" {json.dumps(script)} {{ {deps} }};")
    lines.append("    };")
    lines.append("  in {")
    lines.append("    packages.${sys} = pkgs;")
    if shells:
        lines.append("    devShells.${sys} = {")
        for name, variable in shells.items():
            lines.append(f"      {name} = mk \"{name}-shell\" \"echo > $out\" "
                         f"{{ builder = \"/bin/bash\"; outputs = [ \"out\" ]; SHELL_MARK = \"{variable}\"; }};")
        lines.append("    };")
    lines += ["  };", "}", ""]
    return "\n".join(lines)


def make_workspace(root: Path, packages: Mapping[str, str], config: str,
                   shells: Mapping[str, str] | None = None, nonce: str | None = None) -> str:
    """Write ``pkg/flake.nix`` and ``choirci.yaml`` under ``root`` and commit them."""
    nonce = nonce or uuid.uuid4().hex
    (root / "pkg").mkdir(parents=True, exist_ok=True)
    (root / "pkg" / "flake.nix").write_text(flake(packages, nonce, shells))
    (root / "choirci.yaml").write_text(config)
    # What a run leaves behind (pytester's HOME is the workspace): keep the tree clean.
    (root / ".gitignore").write_text(".cache/\nevidence*/\n*.xml\nbuild.lock*\ncache/\nbin/\n")
    commit(root)
    return nonce


def commit(root: Path) -> None:
    if not (root / ".git").exists():
        subprocess.run(["git", "init", "-q", "."], cwd=root, check=True)
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    subprocess.run([*GIT, "commit", "-q", "--allow-empty", "-m", "fixture"], cwd=root, check=True)


def properties(junit: Path) -> dict[str, dict[str, list[str]]]:
    """testcase name -> property name -> values, from a pytest --junitxml file."""
    out: dict[str, dict[str, list[str]]] = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        props: dict[str, list[str]] = {}
        for prop in case.iter("property"):
            props.setdefault(prop.get("name", ""), []).append(prop.get("value", ""))
        out[f"{case.get('classname')}::{case.get('name')}"] = props
    return out


def one(props: dict[str, list[str]], name: str) -> str:
    values = props.get(name, [])
    assert len(values) == 1, f"{name}: {values}"
    return values[0]


def nix_env() -> dict[str, str]:
    return dict(os.environ)


def run_nix(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([NIX, "--extra-experimental-features", "nix-command flakes", *args],
                          check=False, capture_output=True, text=True, env=nix_env(), timeout=300)
