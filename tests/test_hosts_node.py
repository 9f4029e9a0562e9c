"""``host_checks.preset: node`` and the NixOS system check against the nspawn host acting as
today's node (issue 15 items 3, 4, 6).

The booted test host (tests/hostenv/nspawn.py + node.py) runs a NixOS-shaped system built by the
fixture's ``nix/system.nix`` from the host's binaries: ``/run/current-system`` and
``/run/booted-system`` point at it, ``/nix/var/nix/profiles/system`` has two generations, and
the node's units run as small fakes (caddy, the two oneshots that really write the credential
files, ``cloud-hypervisor@live``, ``tap-setup@live``, ``socat-sandbox@live``; no
``firecracker@`` instance). The healthy node passes with the preset and nothing else but the
test machine's disk and memory sizes; each breakage fails with its line and is undone.
"""

from __future__ import annotations

from typing import Any

import pytest
from hostenv import node
from hostenv.build import Binaries
from hostenv.fixtures import HostUnderTest
from hostenv.nspawn import NspawnHost

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def as_node(nspawn_host: NspawnHost) -> HostUnderTest:
    assert nspawn_host.systems is not None
    return HostUnderTest(f"ssh://{nspawn_host.alias}?ssh_config={nspawn_host.ssh_config}",
                         nspawn_host.ssh_config, nspawn_host.alias,
                         {"preset": "node", "disk": {"/": "100MiB"}, "memory_available": "64MiB"})


def grind(pytester: pytest.Pytester, host: HostUnderTest, *args: str, **overrides: Any) -> pytest.RunResult:
    host.write_config(pytester.path, **overrides)
    return pytester.runpytest_subprocess("--grind", "-m", "host", "-p", "no:cacheprovider", "-rfEsw", *args)


def test_healthy_node_passes_the_node_preset(pytester: pytest.Pytester, as_node: HostUnderTest,
                                             nspawn_host: NspawnHost) -> None:
    result = grind(pytester, as_node, "-v")
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) == 0 and outcomes.get("errors", 0) == 0, result.stdout.str()
    result.stdout.fnmatch_lines_random([
        "*test_current_system[[]ssh://choirci-nspawn[]] PASSED*",
        "*test_booted_system[[]ssh://choirci-nspawn[]] PASSED*",
        "*test_nixos_rollback_generation[[]ssh://choirci-nspawn[]] PASSED*",
        "*test_unit_active[[]caddy-ssh://choirci-nspawn[]] PASSED*",
        "*test_unit_template_instances[[]cloud-hypervisor@-ssh://choirci-nspawn[]] PASSED*",
        "*test_unit_template_instances[[]socat-sandbox@-ssh://choirci-nspawn[]] PASSED*",
        "*test_unit_template_instances[[]tap-setup@-ssh://choirci-nspawn[]] PASSED*",
        "*test_unit_template_instances[[]firecracker@-ssh://choirci-nspawn[]] SKIPPED*",
        "*test_unit_environment_file[[]hypervisor-ssh://choirci-nspawn[]] PASSED*",
        "*test_oneshot_unit_succeeded[[]choir-generate-admin-token-ssh://choirci-nspawn[]] PASSED*",
        "*test_credential_file[[]/run/choiros/admin.token-ssh://choirci-nspawn[]] PASSED*",
        "*test_credential_file[[]/run/choiros/credentials/platform/hypervisor.env-ssh://choirci-nspawn[]] PASSED*",
        "*test_sandbox_health[[]live-ssh://choirci-nspawn[]] PASSED*",
        "*test_hypervisor_public_path[[]/login-ssh://choirci-nspawn[]] PASSED*",
        "*test_sandbox_env_keyless[[]ssh://choirci-nspawn[]] SKIPPED*",
    ])
    from choirci.evidence import files as evidence

    record = evidence.load(pytester.path / "evidence")
    item = next(i for i in record.items if i.nodeid.endswith("test_current_system[ssh://choirci-nspawn]"))
    assert nspawn_host.systems is not None
    assert item.prop("current_system") == nspawn_host.systems.current
    services = dict(word.split("=", 1) for word in (item.prop("system_services") or "").split())
    assert services["hypervisor.service"] == nspawn_host.binaries.store_paths["hypervisor"]
    assert services["socat-sandbox@.service"] == nspawn_host.binaries.store_paths["sandbox"]


def test_host_runs_another_system(pytester: pytest.Pytester, as_node: HostUnderTest,
                                  nspawn_host: NspawnHost) -> None:
    assert nspawn_host.systems is not None
    previous, current = nspawn_host.systems.previous, nspawn_host.systems.current
    result = grind(pytester, as_node, "-k", "current_system", system=previous)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([(f"*the host runs {current}, not the system that was built and tested "
                                 f"{previous} (host_checks.system)*")])
    grind(pytester, as_node, "-k", "current_system", system=current).assert_outcomes(passed=1)


def test_reboot_pending(pytester: pytest.Pytester, as_node: HostUnderTest, nspawn_host: NspawnHost,
                        choiros_binaries: Binaries, broken: Any) -> None:
    assert nspawn_host.systems is not None
    older_kernel = node.build_system(choiros_binaries, "choiros-b", kernel="6.1.0-choiros-mini")
    broken(f"ln -sfn {older_kernel} /run/booted-system",
           f"ln -sfn {nspawn_host.systems.current} /run/booted-system")
    result = grind(pytester, as_node, "-k", "booted_system")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([(f"*reboot pending: the host booted {older_kernel} but runs "
                                 f"{nspawn_host.systems.current}, whose kernel, initrd, kernel-modules differ*")])
    warned = grind(pytester, as_node, "-k", "booted_system", reboot_pending="warn")
    warned.assert_outcomes(passed=1, warnings=1)
    # a switch that keeps the kernel (the previous generation) needs no reboot
    broken(f"ln -sfn {nspawn_host.systems.previous} /run/booted-system",
           f"ln -sfn {nspawn_host.systems.current} /run/booted-system")
    grind(pytester, as_node, "-k", "booted_system").assert_outcomes(passed=1)


def test_node_breakages(pytester: pytest.Pytester, as_node: HostUnderTest, broken: Any) -> None:
    broken("systemctl stop cloud-hypervisor@live", "systemctl start cloud-hypervisor@live")
    broken(f"chmod 644 {node.ADMIN_TOKEN}", f"chmod 600 {node.ADMIN_TOKEN}")
    broken("mv /nix/var/nix/profiles/system-1-link /root/", "mv /root/system-1-link /nix/var/nix/profiles/")
    result = grind(pytester, as_node, "-k", "template_instances or credential_file or rollback")
    result.stdout.fnmatch_lines_random([
        "*cloud-hypervisor@live.service is not active: ActiveState=inactive*",
        f"*credential file {node.ADMIN_TOKEN} has mode 644, expected 600 (chmod 600 {node.ADMIN_TOKEN})*",
        "*only 1 NixOS system generation(s) in /nix/var/nix/profiles*",
    ])
    assert result.parseoutcomes()["failed"] == 3


def test_wrong_environment_file(pytester: pytest.Pytester, as_node: HostUnderTest) -> None:
    result = grind(pytester, as_node, "-k", "environment_file",
                   unit_environment_files={"hypervisor": "/run/choiros/credentials/platform/other.env"})
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([("*hypervisor.service does not read EnvironmentFile=/run/choiros/credentials/"
                                 "platform/other.env (it reads: /etc/choiros/hypervisor.env, "
                                 "/run/choiros/credentials/platform/hypervisor.env)*")])


def test_the_system_revision_is_compared_with_the_promoted_sha(
        pytester: pytest.Pytester, as_node: HostUnderTest, nspawn_host: NspawnHost,
        choiros_binaries: Binaries, broken: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A system built with configurationRevision reports it (nixos-version --json); the release
    gate's promoted SHA must be that commit."""
    from choirci.evidence import files as evidence
    from choirci.release.record import fact_problem, release_record

    assert nspawn_host.systems is not None
    built_from = "c" * 40
    revised = node.build_system(choiros_binaries, "choiros-b", revision=built_from)
    broken(f"ln -sfn {revised} /run/current-system", f"ln -sfn {nspawn_host.systems.current} /run/current-system")
    monkeypatch.setenv("CHOIRCI_PROMOTED_SHA", "d" * 40)
    grind(pytester, as_node, "-k", "current_system").assert_outcomes(passed=1)
    record = evidence.load(pytester.path / "evidence")
    assert record.items[0].prop("system_revision") == built_from
    release = release_record(record)
    problem = fact_problem(release, "promoted_sha", record)
    assert problem is not None  # the promoted SHA is not this run's (uncommitted) commit either
    # with the promoted SHA equal to the grind commit, the host's revision decides
    from dataclasses import replace

    same = replace(release, grind_sha="d" * 40, promoted_sha="d" * 40)
    assert fact_problem(same, "promoted_sha", record) == (
        f"host grind reports system revision {built_from}, not the promoted SHA {'d' * 40} "
        f"({record.items[0].nodeid})")
    agreed = replace(release, grind_sha=built_from, promoted_sha=built_from)
    assert fact_problem(agreed, "promoted_sha", record) is None
