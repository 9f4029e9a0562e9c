"""A throwaway SSH endpoint: keys, a client ssh_config, and a plain sshd on 127.0.0.1.

The plain host is this machine's own ``/usr/sbin/sshd -D`` with a temporary config, host key
and authorized client key, listening on a free loopback port (pattern of nix-fast-build's
``tests/sshd.py``). It has no systemd: unit checks are turned off in its config.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Keys:
    client_key: Path
    client_pub: str
    host_key: Path


def make_keys(directory: Path) -> Keys:
    directory.mkdir(parents=True, exist_ok=True)
    for name in ("client", "host"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"choirci-{name}",
                        "-f", str(directory / name)], check=True)
    return Keys(directory / "client", (directory / "client.pub").read_text(), directory / "host")


def client_config(path: Path, alias: str, address: str, port: int, keys: Keys) -> Path:
    path.write_text(
        f"Host {alias}\n  HostName {address}\n  Port {port}\n  User root\n"
        f"  IdentityFile {keys.client_key}\n  IdentitiesOnly yes\n"
        "  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n"
    )
    return path


def ssh(config: Path, alias: str, command: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ssh", "-F", str(config), "-o", "BatchMode=yes", alias, command],
                          capture_output=True, text=True, timeout=timeout)


def wait_for_ssh(config: Path, alias: str, deadline: float, alive: subprocess.Popen[bytes]) -> None:
    last = ""
    while time.monotonic() < deadline:
        if alive.poll() is not None:
            raise RuntimeError(f"the host process exited ({alive.returncode}) before SSH answered")
        result = ssh(config, alias, "true", timeout=10)
        if result.returncode == 0:
            return
        last = result.stderr.strip()
        time.sleep(0.5)
    raise RuntimeError(f"SSH to {alias} did not come up: {last}")


class PlainSshd:
    """``sshd -D`` as root on 127.0.0.1:<free port>; stop() kills it (and its sessions)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.keys = make_keys(workdir / "keys")
        self.port = free_port()
        self.alias = "choirci-plain"
        self.ssh_config = client_config(workdir / "ssh_config", self.alias, "127.0.0.1", self.port, self.keys)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        auth = self.workdir / "authorized_keys"
        auth.write_text(self.keys.client_pub)
        config = self.workdir / "sshd_config"
        config.write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {self.keys.host_key}\n"
            f"AuthorizedKeysFile {auth}\nPermitRootLogin prohibit-password\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
            f"StrictModes no\nPidFile {self.workdir}/sshd.pid\nMaxStartups 100\nMaxSessions 100\n"
        )
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation dir
        log = open(self.workdir / "sshd.log", "wb")  # noqa: SIM115 - lives as long as sshd
        self.proc = subprocess.Popen(self._argv(config), stdout=log, stderr=log, start_new_session=True)
        wait_for_ssh(self.ssh_config, self.alias, time.monotonic() + 30, self.proc)

    def _argv(self, config: Path) -> list[str]:
        """sshd in a private mount namespace where root's ~/.bashrc is empty.

        Debian's bash sources ~/.bashrc for every command run over ssh, and this machine's root
        bashrc runs ``pyenv init`` (~100 ms). A stock host's bashrc is trivial: hide ours so
        the test host (and the benchmark) measure SSH, not this machine's shell set-up.
        """
        sshd = ["/usr/sbin/sshd", "-D", "-e", "-f", str(config)]
        bashrc = Path.home() / ".bashrc"
        if not bashrc.exists() or shutil.which("unshare") is None:
            return sshd
        empty = self.workdir / "empty-bashrc"
        empty.write_text("")
        script = 'mount --bind "$1" "$2" && shift 2 && exec "$@"'
        return ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh",
                str(empty), str(bashrc), *sshd]

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait()
