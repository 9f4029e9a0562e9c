"""The test hosts as today's ChoirOS nodes (issue 15): a NixOS-shaped system for the host.

:func:`system_expr` is the Nix expression of a node's toplevel built by the fixture's own
``fixtures/choiros-mini/nix/system.nix`` from the test host's binaries (``builtins.storePath``
of the paths :mod:`hostenv.build` added), so a flake with ``--impure`` and :func:`build_system`
(``nix-build``) reach the very same store path. The nspawn host bind-mounts this machine's
``/nix/store``, so the built system is in the host's store as soon as it is built; its
``/run/current-system``, ``/run/booted-system`` and ``/nix/var/nix/profiles/system`` (two
generations) are set by :func:`node_files`.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

from hostenv.build import FIXTURE, Binaries

SYSTEM_NIX = FIXTURE / "nix" / "system.nix"
KERNEL = "6.6.0-choiros-mini"


def system_expr(binaries: Binaries, host_name: str, kernel: str = KERNEL, version: str = "25.05.choiros-mini",
                revision: str | None = None) -> str:
    packages = " ".join(f"{name} = builtins.storePath {json.dumps(path)};"
                        for name, path in binaries.closures().items())
    return (f"import {SYSTEM_NIX} {{ packages = {{ {packages} }}; hostName = {json.dumps(host_name)}; "
            f"kernelVersion = {json.dumps(kernel)}; version = {json.dumps(version)}; "
            f"revision = {json.dumps(revision) if revision else 'null'}; }}")


def build_system(binaries: Binaries, host_name: str, kernel: str = KERNEL,
                 version: str = "25.05.choiros-mini", revision: str | None = None) -> str:
    expr = system_expr(binaries, host_name, kernel, version, revision)
    result = subprocess.run(["nix-build", "--no-out-link", "-E", expr],
                            check=False, capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        raise RuntimeError(f"nix-build of the {host_name} system failed: {result.stderr.strip()[-400:]}")
    return result.stdout.strip().splitlines()[-1]


@dataclass(frozen=True)
class NodeSystems:
    current: str  # /run/current-system and /run/booted-system, generation 2
    previous: str  # generation 1 (an older version of the same node)


def build_node(binaries: Binaries, host_name: str = "choiros-b") -> NodeSystems:
    return NodeSystems(build_system(binaries, host_name),
                       build_system(binaries, host_name, version="25.05.choiros-mini-previous"))


def tmpfiles(systems: NodeSystems) -> str:
    """systemd-tmpfiles lines that create the /run links at boot (/run is a tmpfs)."""
    return (f"L+ /run/current-system - - - - {systems.current}\n"
            f"L+ /run/booted-system - - - - {systems.current}\n")


def write_profile(root: Path, systems: NodeSystems) -> None:
    """``/nix/var/nix/profiles/system`` -> system-2-link (current), system-1-link (previous)."""
    profiles = root / "nix/var/nix/profiles"
    profiles.mkdir(parents=True, exist_ok=True)
    (profiles / "system-1-link").symlink_to(systems.previous)
    (profiles / "system-2-link").symlink_to(systems.current)
    (profiles / "system").symlink_to("system-2-link")


ENV_FILE = "/run/choiros/credentials/platform/hypervisor.env"
ADMIN_TOKEN = "/run/choiros/admin.token"
VM = "live"  # the one sandbox microVM instance of each template on the test node


def _unit(description: str, service: str, after: str = "network.target") -> str:
    return (f"[Unit]\nDescription={description}\nAfter={after}\n[Service]\n{service}\n"
            "[Install]\nWantedBy=multi-user.target\n")


ONESHOT = "Type=oneshot\nRemainAfterExit=yes\n"
# The node's units as small fakes: the oneshots really materialise the credential files (from
# the seed layout's env file, and a random token), the microVM units idle. The sandbox the
# socat forward reaches is container@sandbox-live's on 127.0.0.1:8080 (no socat in the rootfs).
NODE_UNITS = {
    "caddy.service": _unit("Caddy (stand-in)", "ExecStart=/bin/sleep infinity"),
    "choiros-secrets-materialize.service": _unit("Materialise platform credentials", ONESHOT + (
        "ExecStart=/bin/sh -c 'install -d -m 700 /run/choiros/credentials/platform && install -m 400 "
        f"/etc/choiros/hypervisor.env {ENV_FILE}'"), after="local-fs.target"),
    "choir-generate-admin-token.service": _unit("Generate the admin token", ONESHOT + (
        "ExecStart=/bin/sh -c 'umask 077; mkdir -p /run/choiros; head -c 24 /dev/urandom | od -An -tx1 "
        f"> {ADMIN_TOKEN}'"), after="local-fs.target"),
    "cloud-hypervisor@.service": _unit("Sandbox microVM %i (stand-in)", "ExecStart=/bin/sleep infinity"),
    "firecracker@.service": _unit("Sandbox microVM %i (firecracker stand-in)", "ExecStart=/bin/sleep infinity"),
    "tap-setup@.service": _unit("Tap device for %i (stand-in)", ONESHOT + "ExecStart=/bin/true"),
    "socat-sandbox@.service": _unit("Forward 127.0.0.1:8080 to sandbox %i (stand-in)",
                                    "ExecStart=/bin/sleep infinity"),
}
NODE_WANTS = ("caddy.service", "choiros-secrets-materialize.service", "choir-generate-admin-token.service",
              f"cloud-hypervisor@{VM}.service", f"tap-setup@{VM}.service", f"socat-sandbox@{VM}.service")


def provision(root: Path, systems: NodeSystems) -> None:
    """Make the (mounted, not yet booted) rootfs at ``root`` a node running ``systems``."""
    units = root / "etc/systemd/system"
    wants = units / "multi-user.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    for name, text in NODE_UNITS.items():
        (units / name).write_text(text)
    for name in NODE_WANTS:
        template = name.split("@")[0] + "@.service" if "@" in name else name
        (wants / name).symlink_to(f"../{template}")
    (root / "etc/NIXOS").write_text("")
    (root / "etc/tmpfiles.d").mkdir(parents=True, exist_ok=True)
    (root / "etc/tmpfiles.d/choirci-system.conf").write_text(tmpfiles(systems))
    write_profile(root, systems)
