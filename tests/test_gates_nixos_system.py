"""Phase-3's "NixOS system closure builds" with real Nix: decided by the shape of what was
built (nixos-version, init, kernel), recorded as the closure item's nixos_system property,
never by the closure's name."""

from __future__ import annotations

from pathlib import Path

import pytest
from nix_support import make_workspace, use_nix

from choirci.evidence import files as evidence
from choirci.gates import definitions as gates
from choirci.gates import verdicts

pytestmark = pytest.mark.slow

TOPLEVEL = ("mkdir -p $out; echo 24.11 > $out/nixos-version; echo '#!/bin/sh' > $out/init; "
            "echo kernel > $out/kernel")
CONFIG = """\
closures:
  grind-system: ./pkg#system
  toplevel: ./pkg#sandbox
nix:
  lock_path: {lock}
"""


def test_only_a_toplevel_shaped_output_is_a_nixos_system(pytester: pytest.Pytester,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    use_nix(monkeypatch, pytester.path)
    make_workspace(pytester.path, {"system": TOPLEVEL, "sandbox": "echo sandbox > $out"},
                   CONFIG.format(lock=pytester.path / "build.lock"))
    result = pytester.runpytest_subprocess("--grind", "-p", "no:cacheprovider", "-m", "nix")
    result.stdout.fnmatch_lines(["choirci: verdict PASS*"])
    record = evidence.load(pytester.path / "evidence")
    shapes = {i.nodeid: i.prop("nixos_system") for i in record.items}
    assert shapes == {"closures::grind-system": "true", "closures::toplevel": "false"}
    verdict = verdicts.evaluate(gates.load("phase-3"), record)
    line = next(v for v in verdict.items if v.item.text.startswith("NixOS system closure"))
    assert line.met and line.checked_by == ("closures::grind-system",)
    assert Path(record.items[0].prop("out_path") or "").is_dir()
