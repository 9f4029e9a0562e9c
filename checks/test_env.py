"""Grind host: the sandbox processes are keyless (CONTRACT §5 "Secrets", §8 item 10).

Reads ``/proc/<pid>/environ`` of every process named ``host_checks.sandbox_process`` and of
``host_checks.hypervisor_process``. The comparison runs on the host (awk): only variable NAMES
come back, never values, so a planted key cannot leak into the report.

* forbidden: the names and globs of ``forbidden_env`` (provider keys, ``*_API_KEY``,
  ``*_AUTH_TOKEN``, provider prefixes) unless ``allowed_env`` matches;
  ``AWS_BEARER_TOKEN_BEDROCK`` is allowed only when it equals the process's
  ``CHOIR_PROVIDER_GATEWAY_TOKEN`` (the hypervisor sets it on purpose);
* no sandbox variable, whatever its name, may hold the value of a provider key the
  hypervisor holds (a "gateway token" that is really the hypervisor's key is a leak);
* keyless enforcement must be on: ``CHOIR_ENFORCE_KEYLESS_SANDBOX=0`` (or a sandbox without
  the gateway metadata) lets the sandbox load keys later, from a .env file no scan can see.
"""

from __future__ import annotations

from typing import Any

import pytest

from choirci.config.hosts import HostChecks
from choirci.hosts.lib import HostToolError, check, fail
from choirci.hosts.probe import EnvScan, ProcessEnv, environ_command, parse_environ

pytestmark = pytest.mark.host


def _scan(host: Any, hc: HostChecks, compare: bool = False) -> list[ProcessEnv]:
    """The sandbox processes; ``compare``: the check needs the hypervisor's keys as well."""
    if not hc.sandbox_process:
        pytest.skip("host_checks.sandbox_process is '' (preset node: the sandbox runs inside a "
                    "microVM, not as a host process)")
    command = environ_command(hc.sandbox_process, hc.forbidden_env, hc.required_env,
                              hc.allowed_env, hc.hypervisor_process)
    scan: EnvScan = parse_environ(check(host, command, "pgrep/awk").stdout)
    if not scan.complete:
        raise HostToolError("the environment scan stopped before its end marker (DONE); "
                            "the host's pgrep/tr/sed/awk misbehaved")
    unreadable = [p.label for p in scan.processes if p.unreadable] + [
        f"hypervisor pid {pid}" for pid in scan.hypervisor_unreadable]
    if unreadable:
        raise HostToolError(f"cannot read /proc/<pid>/environ of {', '.join(unreadable)}; "
                            "run the checks as root (or with --sudo)")
    if compare and hc.hypervisor_process and scan.processes and scan.hypervisors == 0:
        raise HostToolError(
            f"no process named {hc.hypervisor_process!r} runs on the host, so the sandbox's "
            "tokens cannot be compared with the hypervisor's provider keys; start it, or set "
            "host_checks.hypervisor_process ('' turns the comparison off)")
    return scan.processes


def test_sandbox_processes_running(host: Any, host_checks: HostChecks, record_property: Any) -> None:
    processes = _scan(host, host_checks)
    record_property("sandbox_pids", " ".join(str(p.pid) for p in processes))
    if len(processes) < len(host_checks.sandboxes):
        fail(f"{len(processes)} process(es) named {host_checks.sandbox_process!r} run on the host, "
             f"expected at least {len(host_checks.sandboxes)} (one per sandbox: "
             f"{', '.join(s.role for s in host_checks.sandboxes)})")


def _problems(p: ProcessEnv) -> list[str]:
    out = []
    if p.forbidden:
        out.append(f"sandbox {p.label} has forbidden provider key(s) in its environment: "
                   f"{', '.join(p.forbidden)}")
    if p.holds:
        out.append(f"sandbox {p.label} holds a provider key of the hypervisor: {', '.join(p.holds)}")
    if p.enforcement == "off":
        out.append(f"sandbox {p.label} runs with keyless enforcement OFF "
                   "(CHOIR_ENFORCE_KEYLESS_SANDBOX is 0/false/no/off), so it may load keys from "
                   "a .env file later")
    elif p.enforcement == "unmanaged":
        out.append(f"sandbox {p.label} runs without keyless enforcement (no "
                   "CHOIR_ENFORCE_KEYLESS_SANDBOX and no CHOIR_SANDBOX_* gateway metadata)")
    return out


def test_sandbox_env_keyless(host: Any, host_checks: HostChecks, record_property: Any) -> None:
    processes = _scan(host, host_checks, compare=True)
    if not processes:
        fail(f"no process named {host_checks.sandbox_process!r} runs on the host: nothing to "
             "check for keyless environment (is the sandbox down?)")
    problems = [line for p in processes for line in _problems(p)]
    allowed = sorted({k for p in processes for k in p.allowed})
    record_property("allowed_env", " ".join(allowed))
    if problems:
        fail("; ".join(problems) + ". Provider keys belong to the hypervisor only; remove them "
             "from the sandbox unit/EnvironmentFile and keep enforcement on "
             "(AWS_BEARER_TOKEN_BEDROCK is allowed only when it equals "
             "CHOIR_PROVIDER_GATEWAY_TOKEN, and that token must be no provider's key)")


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
