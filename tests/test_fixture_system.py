"""The fixture's root flake mirrors today's layout (issue 15 item 6): its
``nixosConfigurations.<node>.config.system.build.toplevel`` builds offline, with real Nix,
into a store path of a NixOS system's shape, which choirci records as ``nixos_system``; the
two nodes' toplevels differ (their hosts) while their services run the same package paths; each
reports the commit it was built from through ``nixos-version --json``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from nix_support import commit, use_nix

from choirci.evidence import files as evidence

pytestmark = pytest.mark.slow
FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "choiros-mini"
TOPLEVEL = ".#nixosConfigurations.{}.config.system.build.toplevel"


def test_the_fixture_nodes_are_nixos_systems(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    use_nix(monkeypatch, pytester.path)
    root = pytester.path
    shutil.copytree(FIXTURE, root, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("target", "evidence", "result*", "choirci.yaml"))
    (root / "choirci.yaml").write_text(
        "closures:\n" + "".join(f"  system-{n}: '{TOPLEVEL.format(n)}'\n" for n in ("choiros-a", "choiros-b"))
        + f"nix:\n  lock_path: {root / 'build.lock'}\n")
    (root / ".gitignore").write_text("evidence/\n.cache/\n*.xml\nbuild.lock*\n")
    commit(root)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                          check=True).stdout.strip()
    result = pytester.runpytest_subprocess("--grind", "-m", "nix", "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["choirci: verdict PASS*"])
    items = {i.nodeid: i for i in evidence.load(root / "evidence").items}
    paths = {}
    for name in ("choiros-a", "choiros-b"):
        item = items[f"closures::system-{name}"]
        assert item.prop("nixos_system") == "true"
        out = Path(item.prop("out_path") or "")
        paths[name] = out
        assert (out / "etc" / "hostname").read_text().strip() == name
        assert os.readlink(out / "kernel").endswith("-stand-in/bzImage")
        for unit in ("hypervisor.service", "caddy.service", "choiros-secrets-materialize.service",
                     "choir-generate-admin-token.service", "cloud-hypervisor@.service",
                     "firecracker@.service", "tap-setup@.service", "socat-sandbox@.service"):
            assert (out / "etc" / "systemd" / "system" / unit).is_file(), unit
        hypervisor = (out / "etc/systemd/system/hypervisor.service").read_text()
        assert f"ExecStart={os.readlink(out / 'sw/bin/hypervisor').removesuffix('/bin/hypervisor')}" in hypervisor
        assert "EnvironmentFile=/run/choiros/credentials/platform/hypervisor.env" in hypervisor
        assert sorted(p.name for p in (out / "sw/bin").iterdir()) == [
            "dioxus-desktop", "hypervisor", "nixos-version", "sandbox"]
        # system.configurationRevision: the flake's commit, as a host reports it
        version = subprocess.run([str(out / "sw/bin/nixos-version"), "--json"], capture_output=True,
                                 text=True, check=True).stdout
        assert json.loads(version)["configurationRevision"] == head
    a, b = paths["choiros-a"], paths["choiros-b"]
    assert a != b and os.readlink(a / "kernel") == os.readlink(b / "kernel")
    assert (a / "etc/systemd/system/hypervisor.service").read_text() == \
        (b / "etc/systemd/system/hypervisor.service").read_text()
