"""A real Nix remote builder: Debian bookworm with ``nix-bin`` and ``openssh-server``, booted
with ``systemd-nspawn --boot`` in a network namespace of its own that has nothing but loopback.

The root file system is the test host's cached debootstrap (scripts/testhost/build-rootfs.sh,
via :func:`hostenv.nspawn.ensure_rootfs`) plus ``nix-bin`` and a C toolchain (rustc links
with ``cc``), installed once with apt inside a copy (``/var/cache/choirci/builder/rootfs``); each boot runs on an overlay of it, so every
builder starts with an EMPTY /nix/store of its own (nothing of this machine's store is
shared). sshd listens on 127.0.0.1:22 inside the namespace: only a process in that
namespace (``ip netns exec``, see :meth:`BuilderHost.client_argv`) can reach it, so the
client's Nix runs there too, with this machine's store.

The example workspace's derivations call the host's cargo (sandbox off, see
fixtures/choiros-mini/README.md), so ~/.cargo and ~/.rustup are bind-mounted read-only, and
the builder's nix.conf has the same offline settings as the client's.
"""

from __future__ import annotations

import base64
import os
import random
import shutil
import subprocess
import time
from pathlib import Path

from hostenv import nspawn
from hostenv.nspawn import ensure_rootfs
from hostenv.sshd import Keys, make_keys

CACHE = Path("/var/cache/choirci/builder")
ROOTFS = CACHE / "rootfs"
PACKAGES = ("nix-bin", "gcc", "libc6-dev")
READY = ("usr/bin/nix-daemon", "usr/bin/cc")  # what a finished builder rootfs has
NIX_CONF = """\
experimental-features = nix-command flakes
substituters =
sandbox = false
build-users-group =
"""
SSHD_CONF = """\
ListenAddress 127.0.0.1
PermitRootLogin prohibit-password
PasswordAuthentication no
UseDNS no
"""


def unavailable_reason() -> str | None:
    """Why this machine cannot boot a builder, or None if it should be able to."""
    from hostenv import nspawn

    reason = nspawn.unavailable_reason()
    if reason:
        return reason
    if not _ready(ROOTFS) and shutil.which("apt-get") is None:
        return f"no cached builder rootfs at {ROOTFS} and no apt-get to install nix-bin into one"
    return None


def _ready(rootfs: Path) -> bool:
    return all((rootfs / path).exists() for path in READY)


def ensure_builder_rootfs() -> Path:
    """The test host's rootfs plus PACKAGES (built once; apt runs inside nspawn)."""
    if _ready(ROOTFS):
        return ROOTFS
    base = ensure_rootfs()
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = CACHE / f"rootfs.{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    subprocess.run(["cp", "-a", str(base), str(tmp)], check=True, timeout=600)
    log = CACHE / "apt.log"
    with log.open("wb") as out:
        result = subprocess.run(
            ["systemd-nspawn", "--quiet", "--register=no", "--keep-unit", "-D", str(tmp),
             "--resolv-conf=copy-host", "sh", "-c",
             ("apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "
              f"--no-install-recommends {' '.join(PACKAGES)} && apt-get clean")],
            stdout=out, stderr=out, timeout=1200, check=False)
    shutil.rmtree(f"/run/systemd/nspawn/propagate/{tmp.name}", ignore_errors=True)
    if result.returncode != 0 or not _ready(tmp):
        shutil.rmtree(tmp, ignore_errors=True)
        raise RuntimeError(f"installing {' '.join(PACKAGES)} into the builder rootfs failed; "
                           f"see {log}")
    for key in (tmp / "etc/ssh").glob("ssh_host_*"):  # every boot gets its own
        key.unlink()
    shutil.rmtree(ROOTFS, ignore_errors=True)  # an older one, without all of PACKAGES
    tmp.rename(ROOTFS)
    return ROOTFS


class BuilderHost:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        tag = f"{os.getpid() % 10000:04d}{random.randrange(100):02d}"
        self.name = f"choirci-nb-{tag}"
        self.netns = self.name
        self.merged = workdir / "merged"
        self.keys: Keys = make_keys(workdir / "keys")
        self.proc: subprocess.Popen[bytes] | None = None
        self._steps: list[tuple[str, ...]] = []

    # ------------------------------------------------------------------ what a client uses

    def host_key_base64(self) -> str:
        public = Path(f"{self.keys.host_key}.pub").read_text().strip()
        return base64.b64encode(public.encode()).decode()

    def uri(self, scheme: str = "ssh-ng") -> str:
        return f"{scheme}://root@127.0.0.1"

    def machine(self, scheme: str = "ssh-ng", jobs: int = 2) -> str:
        """One line of Nix's ``builders`` setting: uri, system, key, jobs, speed, features,
        mandatory features, host key (so no known_hosts is needed)."""
        return (f"{self.uri(scheme)} x86_64-linux {self.keys.client_key} {jobs} 1 - - "
                f"{self.host_key_base64()}")

    def client_argv(self, argv: list[str]) -> list[str]:
        """``argv`` run inside the builder's network namespace (its loopback is the builder)."""
        return ["ip", "netns", "exec", self.netns, *argv]

    # ------------------------------------------------------------------ lifecycle

    def start(self, rootfs: Path, timeout: float = 90) -> None:
        self._sh("ip", "netns", "add", self.netns)
        self._steps.append(("ip", "netns", "del", self.netns))
        self._sh("ip", "netns", "exec", self.netns, "ip", "link", "set", "lo", "up")
        nspawn.mount_overlay(rootfs, self.workdir, self.merged, self._steps)
        self._provision()
        log = open(self.workdir / "nspawn.log", "wb")  # noqa: SIM115 - lives with nspawn
        home = Path.home()
        binds = [f"--bind-ro={home / d}:/root/{d}" for d in (".cargo", ".rustup")
                 if (home / d).is_dir()]
        self.proc = subprocess.Popen(
            ["systemd-nspawn", "--quiet", "-D", str(self.merged), "--boot", "--register=no",
             "--keep-unit", f"--machine={self.name}",
             f"--network-namespace-path=/run/netns/{self.netns}", *binds],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
        )
        deadline, last = time.monotonic() + timeout, ""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the builder's nspawn exited ({self.proc.returncode}); "
                                   f"see {self.workdir / 'nspawn.log'}")
            result = self.ssh("nix-store --version", timeout=10)
            if result.returncode == 0:
                return
            last = result.stderr.strip()
            time.sleep(0.5)
        raise RuntimeError(f"SSH to the builder did not come up: {last}")

    def _provision(self) -> None:
        self._write("etc/hostname", f"{self.name}\n")
        self._write("root/.ssh/authorized_keys", self.keys.client_pub, mode=0o600)
        self._write("etc/ssh/sshd_config.d/choirci.conf", SSHD_CONF)
        key = self.merged / "etc/ssh/ssh_host_ed25519_key"
        shutil.copy(self.keys.host_key, key)
        key.chmod(0o600)
        shutil.copy(f"{self.keys.host_key}.pub", f"{key}.pub")
        self._write("etc/nix/nix.conf", NIX_CONF)

    def _write(self, relative: str, text: str, mode: int = 0o644) -> None:
        path = self.merged / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(mode)

    def _sh(self, *argv: str) -> None:
        subprocess.run(list(argv), check=True, capture_output=True, timeout=60)

    def ssh(self, command: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.client_argv([
            "ssh", "-i", str(self.keys.client_key), "-o", "IdentitiesOnly=yes",
            "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
            "root@127.0.0.1", command]), capture_output=True, text=True, timeout=timeout,
            check=False)

    def store_paths(self) -> set[str]:
        """What the builder's own store holds (its /nix/store directory, from outside)."""
        store = self.merged / "nix" / "store"
        return {f"/nix/store/{p.name}" for p in store.iterdir()} if store.is_dir() else set()

    def freeze(self) -> None:
        """Stop sshd answering new connections (the builder "goes away")."""
        self.ssh("systemctl stop ssh.socket ssh.service", timeout=30)

    def stop(self) -> None:
        nspawn.stop_container(self.proc, self._steps, self.name)
