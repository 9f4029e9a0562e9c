"""Grind host over HTTP, from the host itself with curl (CONTRACT §5, §8 items 1, 9, 11).

Exact statuses only, redirects never followed: a 303 to ``/login`` is the auth gate working
on a protected path and a FAILED health check on a sandbox, never "curl -f passed". curl's
total time is enforced (a body that never ends is an ERROR, not a pass), and any body or JSON
value quoted in a message is scrubbed of secret-shaped values first (the host may echo keys
that exist only there).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlparse

import pytest

from choirci.config.hosts import HostChecks
from choirci.evidence.redact import scrub
from choirci.hosts.lib import config_of, fail, http_get, params, quote

pytestmark = pytest.mark.host
SANDBOX_SERVICE = "choiros-sandbox"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    hc = config_of(metafunc.config)
    table = {
        "sandbox": params(hc.sandboxes, "sandboxes", [s.role for s in hc.sandboxes]),
        "public_path": params(hc.public_paths, "public_paths"),
        "protected_path": params(hc.protected_paths, "protected_paths"),
        "domain": params(hc.domains, "domains"),
        "apex": params(list(hc.apex_redirects), "apex_redirects"),
    }
    for name, values in table.items():
        if name in metafunc.fixturenames:
            metafunc.parametrize(name, values)


def test_sandbox_health(host: Any, sandbox: Any, host_checks: HostChecks, record_property: Any) -> None:
    url = f"{sandbox.url}/health"
    response = http_get(host, url, host_checks.http_timeout, what=f"sandbox {sandbox.role}")
    if response.status != 200:
        fail(f"sandbox {sandbox.role}: GET {url} answered {response.describe()}, expected 200 with "
             "health JSON; a redirect or error is not healthy")
    try:
        health = response.json()
    except json.JSONDecodeError:
        fail(f"sandbox {sandbox.role}: GET {url} answered 200 but not JSON: {quote(response.body)}")
    if not isinstance(health, dict) or health.get("status") != "healthy":
        fail(f"sandbox {sandbox.role}: {url} reports status {_field(health, 'status')}, expected 'healthy'")
    if health.get("service") != SANDBOX_SERVICE:
        fail(f"sandbox {sandbox.role}: {url} reports service {_field(health, 'service')}, "
             f"expected {SANDBOX_SERVICE!r} (is another service on this port?)")
    role = health.get("instance_role", "unknown")
    record_property("instance_role", scrub(str(role)))
    record_property("sandbox_version", scrub(str(health.get("version", ""))))
    _check_role(sandbox, role, url, host_checks.require_instance_role)


def _check_role(sandbox: Any, role: str, url: str, required: bool) -> None:
    # No committed config sets CHOIROS_INSTANCE_ROLE (CONTRACT §8.11): "unknown" is normal
    # unless the operator asks for it; any OTHER value must be this sandbox's role.
    if role == "unknown" and not required:
        return
    if role != sandbox.instance_role:
        fail(f"sandbox {sandbox.role}: {url} reports instance_role {quote(str(role), 60)}, expected "
             f"{sandbox.instance_role!r}; check CHOIROS_INSTANCE_ROLE of the {sandbox.role} unit "
             "(are live and dev swapped?)")


def _field(data: Any, key: str) -> str:
    return quote(str(data.get(key)), 60) if isinstance(data, dict) and key in data else "(missing)"


def test_hypervisor_public_path(host: Any, public_path: str, host_checks: HostChecks) -> None:
    url = f"{host_checks.hypervisor_url}{public_path}"
    response = http_get(host, url, host_checks.http_timeout, what="hypervisor")
    if response.status != 200:
        fail(f"hypervisor: GET {url} answered {response.describe()}, expected 200 (public page)")


def test_hypervisor_auth_gate(host: Any, protected_path: str, host_checks: HostChecks) -> None:
    url = f"{host_checks.hypervisor_url}{protected_path}"
    response = http_get(host, url, host_checks.http_timeout, what="hypervisor")
    status, expected = response.status, "a non-allow-listed path must answer 303 -> /login"
    location = urlparse(response.location)
    # /login on this hypervisor or one of its domains; a redirect to another site's /login is not the gate
    own = {urlparse(host_checks.hypervisor_url).hostname, *host_checks.domains}
    if status == 303 and location.path == "/login" and (not location.netloc or location.hostname in own):
        return
    if 200 <= status < 300:
        fail(f"hypervisor auth gate OPEN: unauthenticated GET {url} answered {response.describe()}; "
             f"{expected}")
    if status in (401, 403):
        fail(f"hypervisor auth gate closed but not as the contract says: unauthenticated GET {url} "
             f"answered {response.describe()}; {expected} (is another service or proxy on "
             f"{host_checks.hypervisor_url}?)")
    if status >= 500:
        fail(f"hypervisor BROKEN: unauthenticated GET {url} answered {response.describe()}; "
             f"{expected}; read 'journalctl -u hypervisor -n 100'")
    fail(f"hypervisor auth gate: unauthenticated GET {url} answered {response.describe()}; {expected}")


def _domain_url(hc: HostChecks, domain: str, path: str) -> tuple[str, str | None]:
    port = hc.domain_port or (443 if hc.domain_scheme == "https" else 80)
    default = (hc.domain_scheme == "https" and port == 443) or (hc.domain_scheme == "http" and port == 80)
    url = f"{hc.domain_scheme}://{domain}{'' if default else f':{port}'}{path}"
    resolve = f"{domain}:{port}:{hc.domain_address}" if hc.domain_address else None
    return url, resolve


def test_domain_login(host: Any, domain: str, host_checks: HostChecks) -> None:
    url, resolve = _domain_url(host_checks, domain, "/login")
    response = http_get(host, url, host_checks.http_timeout, resolve, what=f"domain {domain}")
    if response.status != 200:
        fail(f"domain {domain}: GET {url} answered {response.describe()}, expected 200 (login page)")


def test_apex_redirect(host: Any, apex: str, host_checks: HostChecks) -> None:
    target = host_checks.apex_redirects[apex]
    url, resolve = _domain_url(host_checks, apex, "/login")
    response = http_get(host, url, host_checks.http_timeout, resolve, what=f"apex {apex}")
    location = urlparse(response.location)
    if response.status != 308 or location.hostname != target or location.path != "/login":
        fail(f"apex {apex}: GET {url} answered {response.describe()}, expected 308 -> "
             f"{host_checks.domain_scheme}://{target}/login")
