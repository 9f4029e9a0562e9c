"""Host checks over real SSH against a plain sshd host (no systemd), run as a user runs them.

The host is this machine's sshd on 127.0.0.1:<free port>; the services are the example
workspace's real binaries as plain processes; the "Caddy" is a tiny host-routing HTTP server.
Nothing here is mocked.
"""

from __future__ import annotations

import re
import subprocess
from typing import Any

import pytest
from hostenv.fixtures import HostUnderTest
from hostenv.services import GATEWAY_TOKEN


def grind(pytester: pytest.Pytester, host: HostUnderTest, *args: str, **overrides: Any) -> pytest.RunResult:
    host.write_config(pytester.path, **overrides)
    return pytester.runpytest_subprocess("--grind", "-m", "host", "-p", "no:cacheprovider", "-rfEs", *args)


def test_all_checks_pass_over_ssh(pytester: pytest.Pytester, plain_host: HostUnderTest) -> None:
    result = grind(pytester, plain_host, "-v")
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) == 0 and outcomes.get("errors", 0) == 0, result.stdout.str()
    assert outcomes["passed"] >= 20
    # the only skips: checks this host cannot have (no systemd units, not NixOS, no sops-nix)
    # or that this config leaves off (no release manifest: tests/test_hosts_manifest.py)
    skips = re.findall(r"SKIPPED \[\d+\] [^:]+:\d*:? ?(.*)", result.stdout.str())
    expected = ("is empty", "not a NixOS host", "no systemd on this host", "sops-nix not set up",
                "host_checks.manifest is not set")
    assert all(any(e in s for e in expected) for s in skips), skips
    assert "test_sandbox_health[live-ssh://choirci-plain] PASSED" in result.stdout.str()


def test_evidence_names_the_host_and_never_the_token(pytester: pytest.Pytester, plain_host: HostUnderTest) -> None:
    grind(pytester, plain_host)
    junit = (pytester.path / "evidence" / "junit.xml").read_text()
    assert "grind" in junit
    assert GATEWAY_TOKEN not in junit
    assert GATEWAY_TOKEN not in (pytester.path / "evidence" / "choirci.json").read_text()


def test_planted_key_in_sandbox_env_is_caught(pytester: pytest.Pytester, plain_host: HostUnderTest,
                                              tmp_path: Any) -> None:
    """A key planted in a running sandbox's environment fails the keyless check, by name only."""
    secret = "zai-planted-secret-value"
    process = plain_host.checks["sandbox_process"]
    proc = _extra_sandbox(tmp_path, plain_host, {"ZAI_API_KEY": secret})
    try:
        result = grind(pytester, plain_host, "-k", "keyless")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert re.search(r"sandbox pid \d+ \(role live\) has forbidden provider key\(s\) in its "
                     r"environment: ZAI_API_KEY", out), out
    assert secret not in out and process


def test_bedrock_token_not_equal_to_gateway_token_is_caught(
    pytester: pytest.Pytester, plain_host: HostUnderTest, tmp_path: Any
) -> None:
    proc = _extra_sandbox(tmp_path, plain_host, {"AWS_BEARER_TOKEN_BEDROCK": "a-real-bedrock-key"})
    try:
        result = grind(pytester, plain_host, "-k", "keyless")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    result.assert_outcomes(failed=1)
    assert "AWS_BEARER_TOKEN_BEDROCK" in result.stdout.str()
    assert "a-real-bedrock-key" not in result.stdout.str()


def _extra_sandbox(tmp_path: Any, host: HostUnderTest, extra: dict[str, str]) -> subprocess.Popen[bytes]:
    from hostenv.services import sandbox_env, standin
    from hostenv.sshd import free_port

    env = {"PATH": "/usr/bin:/bin", **sandbox_env("live", free_port(), bind="127.0.0.1"), **extra}
    return standin(tmp_path / "standins", host.checks["sandbox_process"], env)


def test_wrong_instance_role_is_caught(pytester: pytest.Pytester, plain_host: HostUnderTest) -> None:
    # live and dev swapped in the config = each sandbox reports the other's role
    sandboxes = plain_host.checks["sandboxes"]
    swapped = {"live": sandboxes["dev"], "dev": sandboxes["live"]}
    result = grind(pytester, plain_host, "-k", "sandbox_health", sandboxes=swapped)
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["*sandbox live: * reports instance_role 'dev', expected 'live'*"])


def test_redirect_on_health_is_never_healthy(pytester: pytest.Pytester, plain_host: HostUnderTest) -> None:
    """Point a 'sandbox' at the hypervisor: its /health answers 303 -> /login (CONTRACT §8.1)."""
    sandboxes = {"live": {"url": plain_host.checks["hypervisor_url"]}}
    result = grind(pytester, plain_host, "-k", "sandbox_health", sandboxes=sandboxes)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*sandbox live: GET */health answered 303 See Other -> /login, expected 200*"])


def test_nearly_full_disk_is_caught(pytester: pytest.Pytester, plain_host: HostUnderTest) -> None:
    result = grind(pytester, plain_host, "-k", "disk", disk={"/": "99.9%"})
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*disk nearly full at /: * free of * below the minimum 99.9%*"])


def test_binary_mismatch_is_caught(pytester: pytest.Pytester, plain_host: HostUnderTest) -> None:
    binaries = plain_host.checks["binaries"]
    swapped = {"sandbox": binaries["hypervisor"] + "/bin/hypervisor"}
    result = grind(pytester, plain_host, "-k", "deployed_binary", binaries=swapped)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*/sandbox resolves to */bin/sandbox (sha256 *), expected */bin/hypervisor*"])


def test_open_protected_path_is_caught(pytester: pytest.Pytester, plain_host: HostUnderTest) -> None:
    # /login is public: listing it as protected must read as an open gate
    result = grind(pytester, plain_host, "-k", "auth_gate", protected_paths=["/login", "/health"])
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines(["*auth gate OPEN: unauthenticated GET */login answered 200 OK*"])


def _accepted(host: HostUnderTest) -> int:
    log = host.ssh_config.parent / "sshd.log"
    return log.read_text(errors="replace").count("Accepted publickey")


def test_one_ssh_connection_for_all_checks(pytester: pytest.Pytester, plain_host: HostUnderTest) -> None:
    """ControlMaster reuse: a whole run (25+ checks, each one or more commands) logs in once."""
    before = _accepted(plain_host)
    result = grind(pytester, plain_host)
    assert result.parseoutcomes()["passed"] >= 20
    assert _accepted(plain_host) - before == 1


def test_cli_hosts_option_is_used_as_in_testinfra(pytester: pytest.Pytester, plain_host: HostUnderTest) -> None:
    plain_host.write_config(pytester.path)
    config = pytester.path / "choirci.yaml"
    config.write_text(config.read_text().replace(plain_host.spec, "local://"))
    before = _accepted(plain_host)
    result = pytester.runpytest_subprocess("--grind", "-m", "host", "-v", "-k", "sandbox_health",
                                           f"--hosts={plain_host.spec}")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*test_sandbox_health[[]live-ssh://choirci-plain[]] PASSED*"])
    assert _accepted(plain_host) - before == 1


def test_unreachable_host_is_one_error_line(pytester: pytest.Pytester, plain_host: HostUnderTest) -> None:
    from hostenv.sshd import free_port

    dead = pytester.path / "dead_ssh_config"
    dead.write_text(plain_host.ssh_config.read_text().replace(
        f"Port {plain_host.ssh_config.read_text().split('Port ')[1].split()[0]}", f"Port {free_port()}"))
    plain_host.write_config(pytester.path)
    config = pytester.path / "choirci.yaml"
    config.write_text(config.read_text().replace(str(plain_host.ssh_config), str(dead)))
    result = pytester.runpytest_subprocess("--grind", "-m", "host", "-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    out = result.stdout.str()
    assert "Traceback" not in out
    result.stdout.fnmatch_lines([
        ("*choirci: host grind (ssh://choirci-plain): unreachable over SSH (exit 255): "
        "ssh: connect to host 127.0.0.1 port * Connection refused; check hosts.grind*"),
    ])
