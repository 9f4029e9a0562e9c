"""Small helpers the testinfra checks in ``checks/`` share.

One rule: *the host said no* is a FAIL, *we could not ask* is an ERROR. Failures of the host
are ``pytest.fail(..., pytrace=False)`` with one sentence an operator can act on; a check that
cannot ask the host (a tool missing, permission denied, the probe itself failing, a timeout,
the SSH transport dropping) raises :class:`HostToolError` instead, which the hosts plugin
reports as one ``choirci: host <name>: ...`` ERROR line naming the command.

Every command runs through :func:`run`, bounded by ``host_checks.command_timeout``; once a
host has dropped its SSH transport (or a tool on it has timed out) later commands on it (or
that tool) error at once instead of each waiting the full bound again. Every message passes
through :func:`choirci.evidence.redact.scrub`, so a secret echoed by the host is never quoted.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import pytest

from choirci.config.hosts import HostChecks
from choirci.errors import ChoirciError
from choirci.evidence.redact import scrub
from choirci.hosts import connect
from choirci.hosts import probe as hostprobe
from choirci.settings import get as get_settings


class HostToolError(ChoirciError):
    """The check could not run on the host (a harness problem, not a host failure)."""


class Session:
    """The bounds of this run and what already stopped answering (per process, like
    testinfra's host cache): ``host key -> reason`` and ``(host key, tool) -> reason``."""

    def __init__(self, bounds: connect.Bounds | None = None) -> None:
        self.bounds = bounds or connect.Bounds()
        self.dead_hosts: dict[str, str] = {}
        self.stuck_tools: dict[tuple[str, str], str] = {}


SESSION = Session()


def start_session(bounds: connect.Bounds) -> None:
    global SESSION
    SESSION = Session(bounds)


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
    return check(host, "test -d /run/systemd/system", "test", ok=(0, 1)).rc == 0


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
    pytest.fail(scrub(message), pytrace=False)


def quote(text: str, limit: int = 80) -> str:
    """``text`` for a message: secrets scrubbed FIRST (a cut must not keep a key's head), then cut."""
    clean = scrub(text)
    return repr(clean[:limit]) + ("..." if len(clean) > limit else "")


def host_key(host: Any) -> str:
    backend = host.backend
    return f"{backend.get_connection_type()}:{backend.get_hostname()}:{getattr(backend, 'ssh_config', '')}"


def run(host: Any, command: str, what: str, timeout: float | None = None) -> connect.HostResult:
    """Run one probe on the host, bounded; every way of not getting an answer is an ERROR.

    ``what`` names the tool(s) for messages. Exit 126/127 (a tool missing or not executable,
    which the probes report by name), SSH exit 255 and a timeout raise :class:`HostToolError`.
    Other exit statuses are returned: each check knows what its probe's status means.
    """
    limit = timeout if timeout is not None else SESSION.bounds.command_timeout
    key = host_key(host)
    if key in SESSION.dead_hosts:
        raise HostToolError(f"not asked: {SESSION.dead_hosts[key]}")
    if (key, what) in SESSION.stuck_tools:
        raise HostToolError(f"not asked: {SESSION.stuck_tools[(key, what)]}")
    result = connect.execute(host, command, limit)
    shown = _short(command)
    if result.timed_out:
        reason = (f"{what} did not answer within {limit:g} s (host_checks.command_timeout) "
                  f"running {shown}")
        SESSION.stuck_tools[(key, what)] = f"{reason} earlier in this run"
        raise HostToolError(f"{reason}; the host, its sshd or {what} is stuck (see its journal)")
    if result.rc == 255 and host.backend.get_connection_type() in connect.SSH_CONNECTIONS:
        reason = f"SSH transport failed (exit 255) running {shown}: {_last(result.stderr) or 'no error output'}"
        SESSION.dead_hosts[key] = f"{reason} earlier in this run"
        raise HostToolError(f"{reason}; this is a harness error, not a failed check "
                            "(is the host or its sshd frozen or down?)")
    if result.rc in (126, 127):
        raise HostToolError(f"{what}: cannot run on the host ({_last(result.stderr) or f'exit {result.rc}'}); "
                            "install it there")
    return result


def check(host: Any, command: str, what: str, ok: Sequence[int] = (0,)) -> connect.HostResult:
    """:func:`run`, and any exit status outside ``ok`` is an ERROR naming the command."""
    result = run(host, command, what)
    if result.rc not in ok:
        raise HostToolError(f"{what} failed on the host (exit {result.rc}) running {_short(command)}: "
                            f"{_last(result.stderr) or 'no error output'}")
    return result


def unit_state(host: Any, unit: str) -> hostprobe.UnitState:
    """``systemctl show`` of ``unit``. systemctl failing (D-Bus or systemd not answering,
    "Transport endpoint is not connected") is an ERROR, never read as "not installed"."""
    result = check(host, hostprobe.unit_command(unit), "systemctl")
    state = hostprobe.parse_unit(unit, result.stdout)
    if not state.get("LoadState"):
        raise HostToolError(f"systemctl show {hostprobe.unit_name(unit)} printed no LoadState "
                            f"({_last(result.stderr) or 'no error output'}); is systemd answering?")
    return state


def _short(command: str, limit: int = 160) -> str:
    return "`" + (command if len(command) <= limit else command[:limit] + "...") + "`"


# curl exit codes that are the service's own answer (nothing listens, it hung up without
# HTTP): the host said no. Every other curl error (timeout, DNS, TLS set-up) is "could not ask".
CURL_REFUSALS = {7: "connection refused: nothing listens there", 52: "empty reply from the server",
                 56: "connection reset by the server"}
CURL_ERRORS = {6: "could not resolve the host name", 28: "timed out", 35: "TLS handshake failed",
               60: "TLS certificate not trusted"}


def http_get(
    host: Any, url: str, timeout: float, resolve: str | None = None, what: str = ""
) -> hostprobe.HttpResponse:
    """One GET from the host itself, with curl's total time enforced.

    A refused or reset connection fails the check (the host answered: nothing serves there).
    A curl error (timeout, DNS, TLS, ...) is an ERROR, also after a status line arrived: a
    200 whose body never finished (curl exit 28 after the headers) is not a healthy answer.
    """
    prefix = f"{what}: " if what else ""
    result = run(host, hostprobe.curl_command(url, timeout, resolve), "curl",
                 timeout=max(SESSION.bounds.command_timeout, timeout + 5))
    response = hostprobe.parse_curl(url, result.stdout)
    detail = _last(result.stderr) or f"curl exit {result.rc}"
    if result.rc in CURL_REFUSALS and response is None:
        fail(f"{prefix}GET {url}: no HTTP answer ({CURL_REFUSALS[result.rc]}; {detail})")
    if result.rc != 0:
        got = f" after the status line {response.describe()}" if response is not None else ""
        meaning = CURL_ERRORS.get(result.rc, "curl error")
        raise HostToolError(f"{prefix}GET {url}: curl exit {result.rc} ({meaning}){got}: {detail}; "
                            f"the answer is incomplete (host_checks.http_timeout is {timeout:g} s)")
    if response is None:
        raise HostToolError(f"{prefix}GET {url}: curl exited 0 but printed no HTTP status ({detail})")
    return response


def _last(text: str) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else ""
