"""Grind host: the sandbox processes are keyless (CONTRACT §5 "Secrets", §8 item 10).

Reads ``/proc/<pid>/environ`` of every process named ``host_checks.sandbox_process``. The
comparison runs on the host (awk): only variable NAMES come back, never values, so a planted
key cannot leak into the report. ``AWS_BEARER_TOKEN_BEDROCK`` is allowed only when its value
equals the process's ``CHOIR_PROVIDER_GATEWAY_TOKEN`` (the hypervisor sets it on purpose).
"""

from __future__ import annotations

from typing import Any

import pytest

from choirci.config.hosts import HostChecks
from choirci.hosts.lib import HostToolError, fail, run
from choirci.hosts.probe import environ_command, parse_environ

pytestmark = pytest.mark.host


def _scan(host: Any, hc: HostChecks) -> list[Any]:
    command = environ_command(hc.sandbox_process, hc.forbidden_env, hc.required_env)
    processes = parse_environ(run(host, command, "pgrep/awk").stdout)
    unreadable = [p.label for p in processes if p.unreadable]
    if unreadable:
        raise HostToolError(f"cannot read /proc/<pid>/environ of sandbox {', '.join(unreadable)}; "
                            "run the checks as root (or with --sudo)")
    return processes


def test_sandbox_processes_running(host: Any, host_checks: HostChecks, record_property: Any) -> None:
    processes = _scan(host, host_checks)
    record_property("sandbox_pids", " ".join(str(p.pid) for p in processes))
    if len(processes) < len(host_checks.sandboxes):
        fail(f"{len(processes)} process(es) named {host_checks.sandbox_process!r} run on the host, "
             f"expected at least {len(host_checks.sandboxes)} (one per sandbox: "
             f"{', '.join(s.role for s in host_checks.sandboxes)})")


def test_sandbox_env_keyless(host: Any, host_checks: HostChecks, record_property: Any) -> None:
    processes = _scan(host, host_checks)
    if not processes:
        fail(f"no process named {host_checks.sandbox_process!r} runs on the host: nothing to "
             "check for keyless environment (is the sandbox down?)")
    problems = [
        f"sandbox {p.label} has forbidden provider key(s) in its environment: {', '.join(p.forbidden)}"
        for p in processes if p.forbidden
    ]
    allowed = sorted({k for p in processes for k in p.allowed})
    record_property("allowed_env", " ".join(allowed))
    if problems:
        fail("; ".join(problems) + ". Provider keys belong to the hypervisor only; remove them "
             "from the sandbox unit/EnvironmentFile (AWS_BEARER_TOKEN_BEDROCK is allowed only "
             "when it equals CHOIR_PROVIDER_GATEWAY_TOKEN)")


def test_sandbox_env_gateway_metadata(host: Any, host_checks: HostChecks) -> None:
    if not host_checks.required_env:
        pytest.skip("host_checks.required_env is empty")
    processes = _scan(host, host_checks)
    if not processes:
        fail(f"no process named {host_checks.sandbox_process!r} runs on the host")
    missing = [f"sandbox {p.label} lacks {', '.join(p.missing)}" for p in processes if p.missing]
    if missing:
        fail("; ".join(missing) + ": the sandbox is not running under the gateway's metadata "
             "(CHOIR_SANDBOX_*), so keyless enforcement may be off")
