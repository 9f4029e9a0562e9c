"""A real systemd test host: the cached Debian rootfs booted with ``systemd-nspawn --boot``.

Layout: an overlay (the cached rootfs read-only below, a per-run upper dir) so the cache stays
clean; a network namespace and a veth pair created by us (host side ``10.254.N.1/30``,
container ``.2``), so nothing leaves this machine; ``/nix/store`` bind-mounted read-only; a
16 MiB tmpfs at ``/opt/choiros/data`` (the "nearly full disk" variant fills it). Inside, the
choiros-mini binaries run as real units (and, given ``systems``, the host is also a node of
today's layout: see :mod:`hostenv.node`): ``hypervisor.service`` and the template
``container@.service`` instantiated as ``container@sandbox-live`` / ``container@sandbox-dev``
(a stand-in for NixOS containers: the sandbox runs directly, on host ports 8080/8081).

``--register=no --keep-unit`` because this machine's PID 1 is not systemd: without them nspawn
asks systemd-machined over D-Bus for a scope and fails ("Failed to open system bus").
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import time
from pathlib import Path

from hostenv import node, services
from hostenv.build import REPO, Binaries
from hostenv.sshd import Keys, client_config, make_keys, ssh, wait_for_ssh

CACHE = Path("/var/cache/choirci/testhost")
ROOTFS = CACHE / "rootfs"
BUILD_SCRIPT = REPO / "scripts" / "testhost" / "build-rootfs.sh"

# The seed layout's unit; as a node it also reads the materialised credential file (optional:
# "-", so the seed layout works without it).
HYPERVISOR_UNIT = """[Unit]
Description=ChoirOS hypervisor (choiros-mini)
After=network.target choiros-secrets-materialize.service
[Service]
ExecStart=/opt/choiros/bin/hypervisor
EnvironmentFile=/etc/choiros/hypervisor.env
EnvironmentFile=-/run/choiros/credentials/platform/hypervisor.env
Restart=on-failure
[Install]
WantedBy=multi-user.target
"""
CONTAINER_UNIT = """[Unit]
Description=ChoirOS sandbox %i (stand-in for a NixOS container)
After=network.target
[Service]
ExecStart=/opt/choiros/bin/sandbox
EnvironmentFile=/etc/choiros/%i.env
Restart=on-failure
[Install]
WantedBy=multi-user.target
"""


def unavailable_reason() -> str | None:
    """Why this machine cannot boot the test host, or None if it should be able to."""
    if os.geteuid() != 0:
        return "needs root (network namespaces, overlay mounts, systemd-nspawn)"
    for tool in ("systemd-nspawn", "ip", "ssh", "ssh-keygen"):
        if shutil.which(tool) is None:
            return f"'{tool}' is not installed (apt-get install systemd-container iproute2 openssh-client)"
    if not ROOTFS.exists() and shutil.which("debootstrap") is None:
        return f"no cached rootfs at {ROOTFS} and no debootstrap to build it"
    return None


def ensure_rootfs() -> Path:
    result = subprocess.run([str(BUILD_SCRIPT), str(CACHE)], capture_output=True, text=True, timeout=1200)
    if result.returncode != 0:
        raise RuntimeError(f"building the test rootfs failed: {result.stderr.strip()[-300:]}; "
                           f"see {CACHE}/debootstrap.log")
    return ROOTFS


class NspawnHost:
    alias = "choirci-nspawn"

    def __init__(self, workdir: Path, binaries: Binaries, systems: node.NodeSystems | None = None) -> None:
        self.workdir = workdir
        self.binaries = binaries
        self.systems = systems  # set: the host is also a node running this NixOS-shaped system
        tag = f"{os.getpid() % 10000:04d}{random.randrange(100):02d}"
        self.name = f"choirci-th-{tag}"
        self.netns = self.name
        self.veth = f"cth{tag}"
        self.subnet = self._free_subnet()
        self.merged = workdir / "merged"
        self.keys: Keys = make_keys(workdir / "keys")
        self.ssh_config = client_config(workdir / "ssh_config", self.alias, f"10.254.{self.subnet}.2", 22, self.keys)
        self.proc: subprocess.Popen[bytes] | None = None
        self._steps: list[tuple[str, ...]] = []  # undo actions, run in reverse

    @staticmethod
    def _free_subnet() -> int:
        used = subprocess.run(["ip", "-o", "-4", "addr"], capture_output=True, text=True).stdout
        free = [n for n in range(10, 250) if f"10.254.{n}." not in used]
        return random.choice(free)

    # ------------------------------------------------------------------ lifecycle

    def start(self, rootfs: Path, timeout: float = 90) -> None:
        self._network()
        self._overlay(rootfs)
        self._provision()
        log = open(self.workdir / "nspawn.log", "wb")  # noqa: SIM115 - lives with nspawn
        self.proc = subprocess.Popen(
            ["systemd-nspawn", "--quiet", "-D", str(self.merged), "--boot", "--register=no",
             "--keep-unit", f"--machine={self.name}", f"--network-namespace-path=/run/netns/{self.netns}",
             "--bind-ro=/nix/store", "--tmpfs=/opt/choiros/data:size=16M,mode=0755"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
        )
        try:
            wait_for_ssh(self.ssh_config, self.alias, time.monotonic() + timeout, self.proc)
        except RuntimeError as exc:
            tail = (self.workdir / "nspawn.log").read_text(errors="replace").strip().splitlines()[-3:]
            raise RuntimeError(f"{exc}; nspawn log: {' | '.join(tail)}") from None
        # Units may still be starting: wait until systemd says the boot is over.
        self.run("systemctl is-system-running --wait || true", timeout=60)

    def _sh(self, *argv: str) -> None:
        subprocess.run(list(argv), check=True, capture_output=True, timeout=60)

    def _network(self) -> None:
        host_if, peer_if = f"{self.veth}h", f"{self.veth}c"
        self._sh("ip", "netns", "add", self.netns)
        self._steps.append(("ip", "netns", "del", self.netns))
        self._sh("ip", "link", "add", host_if, "type", "veth", "peer", "name", peer_if)
        self._steps.append(("ip", "link", "del", host_if))
        self._sh("ip", "link", "set", peer_if, "netns", self.netns)
        self._sh("ip", "addr", "add", f"10.254.{self.subnet}.1/30", "dev", host_if)
        self._sh("ip", "link", "set", host_if, "up")
        inside = ("ip", "netns", "exec", self.netns, "ip")
        self._sh(*inside, "addr", "add", f"10.254.{self.subnet}.2/30", "dev", peer_if)
        self._sh(*inside, "link", "set", peer_if, "up")
        self._sh(*inside, "link", "set", "lo", "up")

    def _overlay(self, rootfs: Path) -> None:
        mount_overlay(rootfs, self.workdir, self.merged, self._steps)

    def _provision(self) -> None:
        root = self.merged
        self._write("etc/hostname", f"{self.name}\n")
        self._write("root/.ssh/authorized_keys", self.keys.client_pub, mode=0o600)
        self._write("etc/ssh/sshd_config.d/choirci.conf",
                    "PermitRootLogin prohibit-password\nPasswordAuthentication no\nUseDNS no\n")
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                        str(root / "etc/ssh/ssh_host_ed25519_key")], check=True)
        units = root / "etc/systemd/system"
        self._write("etc/systemd/system/hypervisor.service", HYPERVISOR_UNIT)
        self._write("etc/systemd/system/container@.service", CONTAINER_UNIT)
        wants = units / "multi-user.target.wants"
        wants.mkdir(parents=True, exist_ok=True)
        (wants / "hypervisor.service").symlink_to("../hypervisor.service")
        self._write("etc/choiros/hypervisor.env", services.env_file(services.hypervisor_env(9090)))
        for role, port in services.ROLES.items():
            (wants / f"container@sandbox-{role}.service").symlink_to("../container@.service")
            self._write(f"etc/choiros/sandbox-{role}.env", services.env_file(services.sandbox_env(role, port)))
        (root / "opt/choiros/bin").mkdir(parents=True, exist_ok=True)
        (root / "opt/choiros/data").mkdir(parents=True, exist_ok=True)
        for name in self.binaries.store_paths:
            (root / "opt/choiros/bin" / name).symlink_to(self.binaries.bin(name))
        if self.systems is not None:
            node.provision(root, self.systems)

    def _write(self, relative: str, text: str, mode: int = 0o644) -> None:
        path = self.merged / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(mode)

    def run(self, command: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return ssh(self.ssh_config, self.alias, command, timeout=timeout)

    def stop(self) -> None:
        stop_container(self.proc, self._steps, self.name)


def mount_overlay(rootfs: Path, workdir: Path, merged: Path, steps: list[tuple[str, ...]]) -> None:
    """A writable copy-on-write view of ``rootfs`` at ``merged`` (the cached image stays as
    it is); its unmount is added to ``steps``."""
    upper, work = workdir / "upper", workdir / "work"
    for d in (upper, work, merged):
        d.mkdir()
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                    f"lowerdir={rootfs},upperdir={upper},workdir={work}", str(merged)],
                   check=True, capture_output=True, timeout=60)
    steps.append(("umount", "-l", str(merged)))


def stop_container(proc: subprocess.Popen[bytes] | None, steps: list[tuple[str, ...]],
                   name: str) -> None:
    """Power a booted container off and undo its set-up steps (last first)."""
    if proc is not None and proc.poll() is None:
        # SIGTERM = a clean poweroff of the container; SIGKILL only if it hangs.
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    for step in reversed(steps):
        subprocess.run(list(step), capture_output=True, timeout=60, check=False)
    # nspawn leaves its propagation dir when /run is not a tmpfs (as on this machine).
    shutil.rmtree(f"/run/systemd/nspawn/propagate/{name}", ignore_errors=True)
