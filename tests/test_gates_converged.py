"""Phase-4's "host converges from declarative config" met by a real run (issue 15 item 3):
``pytest --grind`` builds the node's toplevel as a closure
(``./node#nixosConfigurations.choiros-b.config.system.build.toplevel``, real Nix) and checks
the nspawn node, whose ``/run/current-system`` is that very store path; the bundled
``test_system.py::test_current_system`` records it and ``current_system: toplevel`` is met.
Switched to another generation, the same run leaves the item unmet, naming both paths.

The toplevel is the fixture's ``nix/system.nix`` over the test host's binaries
(``builtins.storePath``, hence ``nix.extra_args: [--impure]``), so the closure and the
system the node was provisioned with are one derivation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hostenv import node
from hostenv.build import Binaries
from hostenv.nspawn import NspawnHost
from nix_support import commit, use_nix

from choirci.evidence import files as evidence
from choirci.gates import definitions as gates
from choirci.gates import verdicts

pytestmark = pytest.mark.slow
ATTR = "nixosConfigurations.choiros-b.config.system.build.toplevel"
CONVERGES = "EC2 host converges from declarative config."


def workspace(root: Path, binaries: Binaries, spec: str) -> None:
    (root / "node").mkdir()
    (root / "node" / "flake.nix").write_text(
        "{\n  outputs = { self }: {\n    nixosConfigurations.choiros-b.config.system.build.toplevel =\n"
        f"      {node.system_expr(binaries, 'choiros-b')};\n  }};\n}}\n")
    (root / "choirci.yaml").write_text(yaml.safe_dump({
        "closures": {"system-choiros-b": f"./node#{ATTR}"},
        "nix": {"extra_args": ["--impure"], "lock_path": str(root / "build.lock")},
        "hosts": {"grind": spec},
        "host_checks": {"preset": "node", "disk": {"/": "100MiB"}, "memory_available": "64MiB"}}))
    (root / ".gitignore").write_text("evidence*/\n.cache/\n*.xml\nbuild.lock*\nrunpytest-*\nstdout\nstderr\n")
    commit(root)


def converges(root: Path) -> verdicts.ItemVerdict:
    record = evidence.load(root / "evidence")
    verdict = verdicts.evaluate(gates.load("phase-4"), record)
    return next(v for v in verdict.items if v.item.text == CONVERGES)


def test_the_node_runs_the_toplevel_this_run_built(pytester: pytest.Pytester, nspawn_host: NspawnHost,
                                                    choiros_binaries: Binaries, broken: Any,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    assert nspawn_host.systems is not None
    use_nix(monkeypatch, pytester.path)
    spec = f"ssh://{nspawn_host.alias}?ssh_config={nspawn_host.ssh_config}"
    workspace(pytester.path, choiros_binaries, spec)
    result = pytester.runpytest_subprocess("--grind", "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["choirci: verdict PASS*"])
    record = evidence.load(pytester.path / "evidence")
    built = next(i for i in record.items if i.nodeid == "closures::system-choiros-b")
    assert built.prop("nixos_system") == "true"
    assert built.prop("out_path") == nspawn_host.systems.current
    found = converges(pytester.path)
    assert found.met, found.reasons
    assert "closures::system-choiros-b" in found.checked_by
    assert any("test_system.py::test_current_system" in n for n in found.checked_by)

    previous = nspawn_host.systems.previous
    broken(f"ln -sfn {previous} /run/current-system",
           f"ln -sfn {nspawn_host.systems.current} /run/current-system")
    pytester.runpytest_subprocess("--grind", "-p", "no:cacheprovider")
    found = converges(pytester.path)
    assert not found.met
    assert (f"host grind runs {previous}, not a toplevel this run built ({nspawn_host.systems.current})"
            in found.reasons[0])
