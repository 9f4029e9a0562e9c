"""pytest fixtures for the host-check tests: built binaries, a plain sshd host, an nspawn host.

Import them where needed (``from hostenv.fixtures import *``) or list this module in
``tests/conftest.py``'s ``pytest_plugins``. Every fixture cleans up processes, mounts, netns and
veth it created, also when a test fails.
"""

from __future__ import annotations

import contextlib
import os
import random
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from hostenv import build, node, nspawn, services
from hostenv.sshd import PlainSshd, free_port


@pytest.fixture(scope="session")
def choiros_binaries(tmp_path_factory: pytest.TempPathFactory) -> build.Binaries:
    return build.build(tmp_path_factory.mktemp("choiros-build"))


@dataclass
class HostUnderTest:
    """What a test needs to point choirci at a host: its spec and a matching host_checks."""

    spec: str
    ssh_config: Path
    alias: str
    checks: dict[str, Any] = field(default_factory=dict)

    def write_config(self, directory: Path, **overrides: Any) -> Path:
        checks = {**self.checks, **overrides}
        path = directory / "choirci.yaml"
        path.write_text(yaml.safe_dump({"hosts": {"grind": self.spec}, "host_checks": checks}))
        return path


@pytest.fixture(scope="session")
def plain_host(tmp_path_factory: pytest.TempPathFactory, choiros_binaries: build.Binaries) -> Iterator[HostUnderTest]:
    """sshd on 127.0.0.1 plus the services as plain processes (no systemd on this host).

    Its workspace is a clean git checkout on ``main`` (with an ``origin/main`` ref), and the
    binaries' store paths get GC roots for the session, like a well-run prod host.
    """
    with plain_environment(tmp_path_factory.mktemp("plain-host"), choiros_binaries) as host:
        yield host


@contextlib.contextmanager
def plain_environment(work: Path, binaries: build.Binaries,
                      sandbox_env: dict[str, str] | None = None) -> Iterator[HostUnderTest]:
    """The plain host's set-up and clean-up. A process that fails to start (sshd or a
    service) raises at once with its log, and everything started so far is stopped."""
    sshd = PlainSshd(work)
    procs = services.Processes(work)
    caddy = services.FakeCaddy("choir.test", free_port())
    roots = work / "gcroots"
    try:
        sshd.start()
        checks = _start_plain_services(work, procs, binaries, caddy, sandbox_env or {})
        checks["workspace"] = [str(make_workspace(work / "workspace"))]
        add_gc_roots(roots, binaries.store_paths)
        yield HostUnderTest(f"ssh://{sshd.alias}?ssh_config={sshd.ssh_config}", sshd.ssh_config, sshd.alias,
                            checks)
    finally:
        caddy.stop()
        procs.stop_all()
        sshd.stop()
        for link in roots.glob("*"):
            link.unlink()  # the gcroots/auto entry now dangles; the next GC drops it


def git(repo: Path, *args: str) -> str:
    argv = ["git", "-c", "user.name=choirci", "-c", "user.email=choirci@test.invalid", "-C", str(repo), *args]
    return subprocess.run(argv, check=True, capture_output=True, text=True, timeout=30).stdout


def make_workspace(repo: Path) -> Path:
    """A clean checkout on main whose origin/main equals HEAD (as after a fresh pull)."""
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "flake.nix").write_text("{ outputs = _: { }; }\n")
    git(repo, "add", "flake.nix")
    git(repo, "commit", "-q", "-m", "init")
    git(repo, "update-ref", "refs/remotes/origin/main", "HEAD")
    return repo


def add_gc_roots(directory: Path, store_paths: dict[str, str]) -> None:
    directory.mkdir(exist_ok=True)
    for name, path in store_paths.items():
        subprocess.run(["nix-store", "--realise", "--add-root", str(directory / name), path],
                       check=True, capture_output=True, timeout=60)


def _start_plain_services(work: Path, procs: services.Processes, binaries: build.Binaries,
                          caddy: services.FakeCaddy, sandbox_env: dict[str, str] | None = None) -> dict[str, Any]:
    # A process name of our own: other tests on this machine may run a "sandbox" too.
    process = f"sbx-{os.getpid() % 1000}{random.randrange(100)}"
    run_dir, bin_dir = work / "run", work / "opt-bin"
    run_dir.mkdir()
    bin_dir.mkdir()
    for name in binaries.store_paths:
        (bin_dir / name).symlink_to(binaries.bin(name))
    (run_dir / process).symlink_to(binaries.bin("sandbox"))
    # The hypervisor too: the release checks find it by process name on this systemd-less host.
    hypervisor = f"hvr-{os.getpid() % 1000}{random.randrange(100)}"
    (run_dir / hypervisor).symlink_to(binaries.bin("hypervisor"))
    ports = {"hypervisor": free_port(), "live": free_port(), "dev": free_port()}
    procs.start("hypervisor", [str(run_dir / hypervisor)],
                services.hypervisor_env(ports["hypervisor"], bind="127.0.0.1"))
    for role in ("live", "dev"):
        procs.start(role, [str(run_dir / process)],
                    {**services.sandbox_env(role, ports[role], bind="127.0.0.1"), **(sandbox_env or {})})
    caddy.start()
    _wait_listening(list(ports.values()), procs)
    return {
        "units": [], "optional_units": [],
        "ports": list(ports.values()),
        "hypervisor_url": f"http://127.0.0.1:{ports['hypervisor']}",
        "sandboxes": {role: {"url": f"http://127.0.0.1:{ports[role]}"} for role in ("live", "dev")},
        "domains": ["os.choir.test"], "apex_redirects": {"choir.test": "os.choir.test"},
        "domain_scheme": "http", "domain_address": "127.0.0.1",
        "domain_port": caddy.server.server_address[1],
        "sandbox_process": process, "hypervisor_process": hypervisor, "bin_dir": str(bin_dir),
        "manifest_processes": {"sandbox": process, "hypervisor": hypervisor},
        "binaries": dict(binaries.store_paths),
        "disk": {"/": "100MiB"}, "memory_available": "64MiB",
    }


def _wait_listening(ports: list[int], procs: services.Processes, timeout: float = 20) -> None:
    import socket
    import time

    deadline = time.monotonic() + timeout
    for port in ports:
        while True:
            procs.raise_if_exited()
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"nothing listens on 127.0.0.1:{port} (see the service logs)")
            time.sleep(0.1)


@pytest.fixture(scope="session")
def nspawn_host(tmp_path_factory: pytest.TempPathFactory, choiros_binaries: build.Binaries) -> Iterator[nspawn.NspawnHost]:
    """The booted systemd test host, or a skip saying precisely why this machine cannot.
    It is also a node (hostenv.node): /run/current-system, two system generations."""
    reason = nspawn.unavailable_reason()
    if reason:
        pytest.skip(f"systemd-nspawn test host unavailable: {reason}")
    rootfs = nspawn.ensure_rootfs()
    host = nspawn.NspawnHost(tmp_path_factory.mktemp("nspawn-host"), choiros_binaries,
                             node.build_node(choiros_binaries))
    try:
        try:
            host.start(rootfs)
        except (RuntimeError, OSError) as exc:
            pytest.skip(f"systemd-nspawn cannot boot the test host here: {exc}")
        yield host
    finally:
        host.stop()


def nspawn_test_host(host: nspawn.NspawnHost, binaries: build.Binaries) -> HostUnderTest:
    """Config for the nspawn host: contract defaults, except what the stand-in differs in."""
    checks = {
        "binaries": dict(binaries.store_paths),
        "disk": {"/": "100MiB", "/opt/choiros/data": "4MiB"},
        "memory_available": "64MiB",
        "optional_units": [],  # no caddy on the test host; domains are covered by the plain host
        "workspace": [],  # no git in the test rootfs; the plain host has the workspace checks
    }
    return HostUnderTest(f"ssh://{host.alias}?ssh_config={host.ssh_config}", host.ssh_config, host.alias, checks)


# --------------------------------------------------------------------------- nspawn test helpers


@pytest.fixture(scope="module")
def booted(nspawn_host: nspawn.NspawnHost, choiros_binaries: build.Binaries) -> HostUnderTest:
    return nspawn_test_host(nspawn_host, choiros_binaries)


def sh(host: nspawn.NspawnHost, command: str) -> str:
    result = host.run(command, timeout=60)
    assert result.returncode == 0, f"{command}: {result.stderr}"
    return result.stdout


@pytest.fixture
def broken(nspawn_host: nspawn.NspawnHost) -> Iterator[Any]:
    """Apply a breakage with ``broken(do, undo)``; the undo always runs."""
    undo: list[str] = []

    def apply(do: str, repair: str) -> None:
        undo.append(repair)
        sh(nspawn_host, do)

    yield apply
    for command in reversed(undo):
        sh(nspawn_host, command)

