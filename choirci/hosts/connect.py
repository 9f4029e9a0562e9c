"""Which hosts the checks run against, and how we talk to them (testinfra backends).

Selection, in order: testinfra's ``--hosts`` (unchanged semantics); else the config's
``hosts.grind`` unless it names this very machine (then ``local://``: the grind host checks
itself); else ``local://``.

SSH is reused, not reopened per command: testinfra's ssh backend passes
``ControlMaster=auto``/``ControlPersist`` but no ``ControlPath`` unless given one, and without a
path ssh never shares a connection. So each ssh spec gets ``?ssh_config=`` pointing at a
generated file (ControlMaster/ControlPersist/ControlPath first, then an ``Include`` of the
user's own config) plus ``controlpath=`` for testinfra versions that read it from the spec.

A host that cannot be reached (ssh exit 255, paramiko socket errors) is a harness error: one
:class:`HostUnreachable` line per host, raised before any check runs.

Every remote call is bounded (:class:`Bounds`): the generated config sets ``ConnectTimeout``
(also passed as testinfra's ``timeout=``, which it puts on the command line) and
``ServerAliveInterval``/``ServerAliveCountMax``, so a host or sshd that freezes drops the
connection (exit 255) instead of waiting for TCP keepalive; and :func:`execute` runs each
command through :func:`choirci.proc.run` with a timeout that kills the local ssh client.
"""

from __future__ import annotations

import os
import shlex
import socket
import tempfile
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import testinfra  # type: ignore[import-untyped]

from choirci import proc
from choirci.errors import ChoirciError

SSH_CONNECTIONS = ("ssh", "safe-ssh")
CONTROL_PERSIST = 120  # seconds a master outlives its last command; we close it at the end


@dataclass(frozen=True)
class Bounds:
    """How long any remote call may take (``host_checks`` keys of the same names)."""

    connect_timeout: int = 10  # seconds to connect and exchange SSH banners
    server_alive_interval: int = 5  # seconds between SSH-level keepalives
    server_alive_count_max: int = 3  # unanswered keepalives before ssh gives up
    command_timeout: float = 60.0  # seconds per command on the host


@dataclass(frozen=True)
class HostResult:
    """What one bounded command on a host gave back."""

    command: str
    rc: int
    stdout: str
    stderr: str
    duration: float
    timed_out: bool = False


class HostUnreachable(ChoirciError):
    """A transport failure (ssh exit 255 or a socket error): not a failed check."""


@dataclass(frozen=True)
class HostTarget:
    name: str  # config name ("grind") or the host part of the spec
    spec: str  # what testinfra gets (with our ssh_config / controlpath)
    origin: str  # where it came from: "--hosts", "hosts.grind", "this machine"

    @property
    def display(self) -> str:
        return redact_spec(self.spec)

    @property
    def connection(self) -> str:
        return urllib.parse.urlparse(self.spec).scheme or "paramiko"


def redact_spec(spec: str) -> str:
    """The spec without a password and without our generated query (evidence-safe)."""
    url = urllib.parse.urlparse(spec)
    netloc = url.netloc
    if "@" in netloc and ":" in netloc.split("@", 1)[0]:
        user = netloc.split("@", 1)[0].split(":", 1)[0]
        netloc = f"{user}:***@{netloc.split('@', 1)[1]}"
    query = urllib.parse.parse_qs(url.query)
    kept = {k: v for k, v in query.items()
            if k not in ("ssh_config", "controlpath", "controlpersist", "timeout")}
    suffix = "?" + urllib.parse.urlencode(kept, doseq=True) if kept else ""
    return f"{url.scheme}://{netloc}{suffix}"


def resolve_targets(
    cli_hosts: str | None,
    configured: Mapping[str, str],
    reuse: SshReuse,
    user_ssh_config: str | None = None,
) -> list[HostTarget]:
    if cli_hosts:
        # A configured name (--hosts staging) selects that host under its role name; a spec
        # equal to a configured one is named after it; anything else by its host part.
        specs = [s.strip() for s in cli_hosts.split(",") if s.strip()]
        names = {v: k for k, v in configured.items()}
        return [
            HostTarget(s, reuse.augment(configured[s], user_ssh_config), f"hosts.{s}")
            if s in configured else
            HostTarget(names.get(s, _host_part(s)), reuse.augment(s, user_ssh_config), "--hosts")
            for s in specs
        ]
    grind = configured.get("grind")
    if not grind and configured:
        # Hosts named by role (staging, production) and no grind: never this machine by default.
        listed = ", ".join(sorted(configured))
        raise ChoirciError(f"hosts: {listed} configured but no hosts.grind, so which host to check "
                           f"is ambiguous; pick with --hosts NAME (e.g. --hosts {min(configured)})")
    if grind and not is_this_machine(grind, reuse, user_ssh_config):
        return [HostTarget("grind", reuse.augment(grind, user_ssh_config), "hosts.grind")]
    return [HostTarget("grind" if grind else "local", "local://", "this machine")]


def _host_part(spec: str) -> str:
    if "://" not in spec:
        return spec
    url = urllib.parse.urlparse(spec)
    return (url.hostname or url.scheme) if url.netloc else url.scheme


def is_this_machine(spec: str, reuse: SshReuse, user_ssh_config: str | None = None) -> bool:
    """True for ``local://``, or an ssh spec whose resolved HostName is this machine's name.

    Compared by name only (``ssh -G`` applies the ssh config without connecting); we never
    resolve names through DNS here, so a laptop with a ``choiros-grind`` alias stays remote.
    """
    url = urllib.parse.urlparse(spec)
    if url.scheme == "local":
        return True
    if url.scheme not in (*SSH_CONNECTIONS, "paramiko") or not url.hostname:
        return False
    resolved = url.hostname
    if url.scheme in SSH_CONNECTIONS:
        resolved = reuse.resolved_hostname(spec, user_ssh_config) or resolved
    me = socket.gethostname().lower()
    return resolved.lower() in (me, me.split(".")[0])


class SshReuse:
    """Owns the generated ssh_config files and control sockets of one run."""

    def __init__(self, directory: Path | None = None, bounds: Bounds | None = None) -> None:
        # Control socket paths must stay under ~104 bytes: a short directory in /tmp.
        self.dir = directory or Path(tempfile.mkdtemp(prefix="choirci-ssh-", dir="/tmp"))
        self.bounds = bounds or Bounds()
        self._configs: dict[str | None, Path] = {}

    def config_for(self, user_config: str | None) -> Path:
        if user_config not in self._configs:
            path = self.dir / f"ssh_config.{len(self._configs)}"
            path.write_text(self._render(user_config))
            self._configs[user_config] = path
        return self._configs[user_config]

    def _render(self, user_config: str | None) -> str:
        # ssh takes the FIRST value it sees for an option: our reuse settings come first.
        lines = [
            "# generated by choirci: reuse one SSH connection per host for all checks",
            "Host *",
            "  ControlMaster auto",
            f"  ControlPersist {CONTROL_PERSIST}s",
            f"  ControlPath {self.dir}/%C",
            "  BatchMode yes",
            # A frozen host or sshd must drop the connection, not hold the run for hours.
            f"  ConnectTimeout {self.bounds.connect_timeout}",
            f"  ServerAliveInterval {self.bounds.server_alive_interval}",
            f"  ServerAliveCountMax {self.bounds.server_alive_count_max}",
            "",
        ]
        included = [user_config] if user_config else [
            p for p in (os.path.expanduser("~/.ssh/config"), "/etc/ssh/ssh_config") if os.path.exists(p)
        ]
        lines += [f"Include {os.path.abspath(os.path.expanduser(p))}" for p in included]
        return "\n".join(lines) + "\n"

    def augment(self, spec: str, user_ssh_config: str | None = None) -> str:
        url = urllib.parse.urlparse(spec)
        if url.scheme not in SSH_CONNECTIONS:
            return spec
        query = urllib.parse.parse_qs(url.query)
        user_config = query.pop("ssh_config", [user_ssh_config])[0]
        query["ssh_config"] = [str(self.config_for(user_config))]
        query.setdefault("controlpath", [f"{self.dir}/%C"])
        # testinfra puts -o ConnectTimeout=<timeout> on the command line, which beats the file.
        query.setdefault("timeout", [str(self.bounds.connect_timeout)])
        return url._replace(query=urllib.parse.urlencode(query, doseq=True, safe="/%")).geturl()

    def ssh_argv(self, spec: str, user_ssh_config: str | None, *extra: str) -> list[str]:
        """An ``ssh`` argv equivalent to what testinfra runs for ``spec`` (for -G / -O)."""
        url = urllib.parse.urlparse(self.augment(spec, user_ssh_config))
        config = urllib.parse.parse_qs(url.query)["ssh_config"][0]
        argv = ["ssh", "-F", config]
        if url.username:
            argv += ["-o", f"User={urllib.parse.unquote(url.username)}"]
        if url.port:
            argv += ["-o", f"Port={url.port}"]
        return [*argv, *extra, url.hostname or ""]

    def resolved_hostname(self, spec: str, user_ssh_config: str | None) -> str | None:
        result = proc.run(self.ssh_argv(spec, user_ssh_config, "-G"), timeout=10)
        for line in result.stdout.splitlines():
            key, _, value = line.partition(" ")
            if key == "hostname":
                return value.strip()
        return None

    def close(self, targets: Sequence[HostTarget]) -> None:
        """Stop the control masters (they would otherwise linger ControlPersist seconds)."""
        for target in targets:
            if target.connection in SSH_CONNECTIONS:
                proc.run(self.ssh_argv(target.spec, None, "-O", "exit"), timeout=10)
        for path in self.dir.iterdir():
            path.unlink(missing_ok=True)
        self.dir.rmdir()


def get_host(target: HostTarget, **kwargs: Any) -> Any:
    return testinfra.get_host(target.spec, **kwargs)


def execute(host: Any, command: str, timeout: float) -> HostResult:
    """Run ``command`` on ``host`` (a testinfra host) and return within ``timeout`` seconds.

    For the ``ssh`` and ``local`` backends the command line is the one testinfra itself would
    run (its own ssh argv, sudo wrapping and quoting), started through :func:`proc.run`, so a
    timeout kills the local ssh client's process group (the ControlMaster lives on in its own
    session). Other backends (paramiko, docker, ...) go through ``host.run`` unbounded.
    """
    backend = host.backend
    kind = backend.get_connection_type()
    build = getattr(backend, "_build_ssh_command", None)  # testinfra 10's; absent: unbounded
    if kind == "ssh" and build is not None:
        # testinfra's SshBackend.run_ssh, minus its unbounded Popen.communicate().
        argv, args = build(backend.get_command(command))
        line = backend.quote(" ".join(argv), *args)
    elif kind == "local":
        line = backend.get_command(command)
    else:
        result = host.run(command)  # ssh exit 255 raises RuntimeError, as testinfra does
        return HostResult(command, result.rc, result.stdout, result.stderr, 0.0)
    # testinfra quotes the remote command into one ssh argument: split its line here rather
    # than start a local shell for it (one exec fewer per check). A local command is shell,
    # and so is an ssh line whose user-given extra args want expansion (~, $VAR).
    plain = kind == "ssh" and not any(c in (backend.ssh_extra_args or "") for c in "~$`*?")
    argv = shlex.split(line) if plain else ["/bin/sh", "-c", line]
    done = proc.run(argv, timeout=timeout)
    rc = done.returncode if done.returncode is not None else -1
    return HostResult(command, rc, done.stdout, done.stderr, done.duration, done.timed_out)


def probe(target: HostTarget, bounds: Bounds | None = None, **kwargs: Any) -> None:
    """Run ``true`` on the host once; raise HostUnreachable with one line if transport fails."""
    bounds = bounds or Bounds()
    # connect + banner + auth, bounded: a host that accepts TCP and then freezes must not hang.
    limit = bounds.connect_timeout * 3 + 5
    try:
        result = execute(get_host(target, **kwargs), "true", limit)
    except RuntimeError as exc:
        raise HostUnreachable(unreachable_message(target, exc)) from None
    except Exception as exc:  # noqa: BLE001 - paramiko/docker raise their own socket errors
        raise HostUnreachable(f"{_prefix(target)}: cannot connect: {_one_line(str(exc))}") from None
    if result.timed_out:
        raise HostUnreachable(f"{_prefix(target)}: 'true' did not return within {limit:g} s; "
                              "the host or its sshd is not answering")
    if result.rc == 255 and target.connection in SSH_CONNECTIONS:
        raise HostUnreachable(
            f"{_prefix(target)}: unreachable over SSH (exit 255): {_one_line(result.stderr)}; "
            f"check {target.origin} and that 'ssh {_host_part(target.spec)} true' works"
        )
    if result.rc != 0:
        raise HostUnreachable(
            f"{_prefix(target)}: 'true' exited {result.rc} ({_one_line(result.stderr)}); "
            "the login shell or sudo setup is broken"
        )


def transport_failure(exc: BaseException) -> str | None:
    """The ssh stderr if ``exc`` is testinfra's exit-255 RuntimeError, else None."""
    if isinstance(exc, RuntimeError) and exc.args and getattr(exc.args[0], "rc", None) == 255:
        return _one_line(getattr(exc.args[0], "stderr", "") or "ssh exited 255")
    return None


def unreachable_message(target: HostTarget, exc: BaseException) -> str:
    reason = transport_failure(exc) or _one_line(str(exc))
    return (
        f"{_prefix(target)}: unreachable over SSH (exit 255): {reason}; "
        f"check {target.origin} and that 'ssh {_host_part(target.spec)} true' works"
    )


def _prefix(target: HostTarget) -> str:
    return f"host {target.name} ({target.display})"


def _one_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no error output"
