"""Small helpers the testinfra checks in ``checks/`` share.

Failures of the host are ``pytest.fail(..., pytrace=False)`` with one sentence an operator can
act on; a check that cannot even ask the host (tool missing, permission denied) raises
:class:`HostToolError` instead, which the hosts plugin prints as one ``choirci:`` line.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import pytest

from choirci.config.hosts import HostChecks
from choirci.errors import ChoirciError
from choirci.hosts import probe as hostprobe
from choirci.settings import get as get_settings


class HostToolError(ChoirciError):
    """The check could not run on the host (a harness problem, not a host failure)."""


class HostWarning(UserWarning):
    """A risk on the host that the config chose to report without failing the check."""


def config_of(config: pytest.Config) -> HostChecks:
    settings = get_settings(config)
    return settings.config.host_checks if settings is not None else HostChecks()


def manifest_path(config: pytest.Config) -> Path | None:
    """``host_checks.manifest`` resolved against the directory of the config file."""
    settings = get_settings(config)
    if settings is None or settings.config.host_checks.manifest is None:
        return None
    return settings.config.root / settings.config.host_checks.manifest


def params(
    values: Sequence[Any], key: str, ids: Sequence[str] | None = None, why: str = "is empty"
) -> list[Any]:
    """Parametrize values, or one skipped param naming the key that turned the check off."""
    if values:
        return [pytest.param(v, id=i) for v, i in zip(values, ids or [str(v) for v in values])]
    return [pytest.param(None, id="off", marks=pytest.mark.skip(reason=f"host_checks.{key} {why}"))]


def has_systemd(host: Any) -> bool:
    return bool(host.run("test -d /run/systemd/system").rc == 0)


def store_url(host: Any) -> str:
    """How ``nix copy --to`` names the host: ``ssh://[user@]name``, or ``local`` for this machine."""
    backend = host.backend
    if backend.get_connection_type() == "local":
        return "local"
    spec = getattr(backend, "host", None)
    name = getattr(spec, "name", None) or backend.get_hostname()
    user = getattr(spec, "user", None)
    return f"ssh://{user}@{name}" if user else f"ssh://{name}"


def fail(message: str) -> NoReturn:
    pytest.fail(message, pytrace=False)


def run(host: Any, command: str, what: str) -> Any:
    """``host.run`` that turns 'command not found' / 'permission denied' into a harness error."""
    result = host.run(command)
    if result.rc in (126, 127):
        raise HostToolError(f"{what}: cannot run on the host ({_last(result.stderr)}); install it there")
    return result


def http_get(
    host: Any, url: str, timeout: float, resolve: str | None = None, what: str = ""
) -> hostprobe.HttpResponse:
    """One GET from the host itself; no answer at all (refused, timeout) fails the check."""
    result = run(host, hostprobe.curl_command(url, timeout, resolve), "curl")
    response = hostprobe.parse_curl(url, result.stdout)
    if response is None:
        prefix = f"{what}: " if what else ""
        fail(f"{prefix}GET {url}: no HTTP answer ({_last(result.stderr) or f'curl exit {result.rc}'})")
    return response


def _last(text: str) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else ""
