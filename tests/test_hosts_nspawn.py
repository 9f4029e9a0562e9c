"""The grind checks against a booted systemd host (systemd-nspawn), then each broken variant.

The host runs the example workspace's binaries from the bind-mounted /nix/store as real units
(``hypervisor``, ``container@sandbox-live``, ``container@sandbox-dev``), reached over SSH in a
network namespace this test creates. Each variant breaks one thing on the running host, checks
that ``pytest --grind -m host`` fails with the operator-readable line, and repairs it (in a
``finally``) so the next variant starts from a healthy host. Skips, with the detected reason,
when this machine cannot boot systemd-nspawn.
"""

from __future__ import annotations

from typing import Any

import pytest
from hostenv.fixtures import HostUnderTest, sh
from hostenv.nspawn import NspawnHost


def grind(pytester: pytest.Pytester, host: HostUnderTest, *args: str, **overrides: Any) -> pytest.RunResult:
    host.write_config(pytester.path, **overrides)
    return pytester.runpytest_subprocess("--grind", "-m", "host", "-p", "no:cacheprovider", "-rfEs", *args)


def test_healthy_host_passes(pytester: pytest.Pytester, booted: HostUnderTest, nspawn_host: NspawnHost) -> None:
    assert sh(nspawn_host, "cat /proc/1/comm").strip() == "systemd"
    result = grind(pytester, booted, "-v")
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) == 0 and outcomes.get("errors", 0) == 0, result.stdout.str()
    result.stdout.fnmatch_lines([
        "*test_deployed_binary[[]sandbox-ssh://choirci-nspawn[]] PASSED*",
        "*test_sandbox_env_keyless[[]ssh://choirci-nspawn[]] PASSED*",
        "*test_unit_active[[]container@sandbox-live-ssh://choirci-nspawn[]] PASSED*",
        "*test_unit_enabled[[]hypervisor-ssh://choirci-nspawn[]] PASSED*",
        "*test_port_listening[[]8081-ssh://choirci-nspawn[]] PASSED*",
    ])


def _restart_with(unit: str, env_file: str, *lines: str) -> tuple[str, str]:
    added = "".join(f"echo {line} >> {env_file} && " for line in lines)
    do = f"{added}systemctl restart {unit}"
    removed = "".join(f"sed -i '$d' {env_file} && " for _ in lines)
    undo = f"{removed}systemctl reset-failed {unit}; systemctl restart {unit}"
    return do, undo


def test_stopped_unit(pytester: pytest.Pytester, booted: HostUnderTest, broken: Any) -> None:
    broken("systemctl stop container@sandbox-dev", "systemctl start container@sandbox-dev")
    result = grind(pytester, booted, "-k", "unit_active or port_listening or sandbox_health")
    result.stdout.fnmatch_lines([
        "*sandbox dev: GET http://127.0.0.1:8081/health: no HTTP answer*",
        ("*container@sandbox-dev.service is not active: ActiveState=inactive SubState=dead "
        "UnitFileState=enabled Result=success; start it (systemctl start container@sandbox-dev)*"),
        "*nothing listens on TCP port 8081*",
    ])
    assert result.parseoutcomes()["failed"] == 3


def test_planted_provider_key(pytester: pytest.Pytester, booted: HostUnderTest, broken: Any) -> None:
    # enforcement off keeps the sandbox running with the key (and is itself reported)
    broken(*_restart_with("container@sandbox-live", "/etc/choiros/sandbox-live.env",
                          "ZAI_API_KEY=planted-zai-secret", "CHOIR_ENFORCE_KEYLESS_SANDBOX=0"))
    result = grind(pytester, booted, "-k", "keyless")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([("*sandbox pid * (role live) has forbidden provider key(s) in its "
                                 "environment: ZAI_API_KEY; sandbox pid * (role live) runs with "
                                 "keyless enforcement OFF*")])
    assert "planted-zai-secret" not in result.stdout.str()


def test_wrong_instance_role(pytester: pytest.Pytester, booted: HostUnderTest, broken: Any) -> None:
    broken(*_restart_with("container@sandbox-live", "/etc/choiros/sandbox-live.env",
                          "CHOIROS_INSTANCE_ROLE=dev"))
    result = grind(pytester, booted, "-k", "sandbox_health")
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines([("*sandbox live: http://127.0.0.1:8080/health reports instance_role "
                                 "'dev', expected 'live'*")])


def test_open_protected_path(pytester: pytest.Pytester, booted: HostUnderTest, broken: Any) -> None:
    broken(*_restart_with("hypervisor", "/etc/choiros/hypervisor.env",
                          "HYPERVISOR_EXTRA_PUBLIC_PATHS=/admin/sandboxes"))
    result = grind(pytester, booted, "-k", "auth_gate")
    result.stdout.fnmatch_lines([("*hypervisor auth gate OPEN: unauthenticated GET "
                                 "http://127.0.0.1:9090/admin/sandboxes answered 200 OK*")])
    assert result.parseoutcomes()["failed"] == 1


def test_nearly_full_disk(pytester: pytest.Pytester, booted: HostUnderTest, broken: Any) -> None:
    # /opt/choiros/data is a 16 MiB tmpfs on the test host; leave less than the 4 MiB minimum
    broken("head -c 14M /dev/zero > /opt/choiros/data/filler", "rm -f /opt/choiros/data/filler")
    result = grind(pytester, booted, "-k", "disk")
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines([("*disk nearly full at /opt/choiros/data: *MiB free of 16.0MiB * "
                                 "below the minimum 4MiB*")])
