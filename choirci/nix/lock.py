"""The host-wide build lock: two ``pytest --grind`` runs on one machine never build at once.

An exclusive ``fcntl.flock`` on a lock file (default ``/tmp/choirci-build.lock``: one per
machine, shared by every user, which a per-user ``$XDG_RUNTIME_DIR`` would not be;
``nix.lock_path`` in choirci.yaml) plus a JSON sidecar
``<lock>.json`` naming the holder (PID, command line, start time, host) so that a waiter can
say who it waits for. The kernel drops a flock when its holder dies, so a lock left by a
crashed or killed run is free again at once; the stale sidecar only tells us to *say* that
we took it over.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shlex
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Self

from choirci.config import Config
from choirci.errors import ChoirciError

LOCK_NAME = "choirci-build.lock"
POLL_SECONDS = 0.25
REMIND_SECONDS = 60.0
MAX_COMMAND_CHARS = 300

Notify = Callable[[str], None]


class LockTimeout(ChoirciError):
    """Another run kept the build lock longer than ``nix.lock_timeout``."""


def default_path() -> Path:
    return Path("/tmp") / LOCK_NAME


@dataclass(frozen=True)
class Holder:
    pid: int
    command: str
    started: float
    host: str = ""

    @classmethod
    def me(cls) -> Holder:
        # orig_argv: the interpreter's real command line (sys.argv is just ['-c'] in an
        # xdist worker, which would tell a waiting operator nothing).
        argv = sys.orig_argv or sys.argv
        command = " ".join(shlex.join(argv).split()) if argv else sys.executable  # one line
        if len(command) > MAX_COMMAND_CHARS:
            command = command[: MAX_COMMAND_CHARS - 3] + "..."
        return cls(pid=os.getpid(), command=command, started=time.time(), host=socket.gethostname())

    def alive(self) -> bool:
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True  # exists, owned by another user
        return True

    def describe(self) -> str:
        since = datetime.fromtimestamp(self.started, tz=UTC)
        age = _age(time.time() - self.started)
        host = f" on {self.host}" if self.host else ""
        return (f"PID {self.pid} ({self.command}){host} "
                f"since {since:%Y-%m-%d %H:%M:%S} UTC ({age} ago)")


def _age(seconds: float) -> str:
    seconds = max(0, int(seconds))
    minutes, secs = divmod(seconds, 60)
    if minutes == 0:
        return f"{secs}s"
    return f"{minutes}m{secs:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


@dataclass
class _Held:
    fd: int
    count: int


# flock belongs to an open file description: a second open() of the same file in this
# process would wait for ourselves. Nested holds in one process therefore share one fd.
_HELD: dict[str, _Held] = {}


class BuildLock:
    """``with BuildLock(path, timeout, notify):`` waits (announcing the holder), or raises."""

    @classmethod
    def for_config(cls, cfg: Config, notify: Notify | None = None) -> BuildLock:
        """The lock ``nix.lock_path``/``nix.lock_timeout`` name (a relative path is taken
        from the config file's directory)."""
        path = Path(cfg.nix.lock_path) if cfg.nix.lock_path else None
        if path is not None and not path.is_absolute():
            path = cfg.root / path
        return cls(path, timeout=cfg.nix.lock_timeout, notify=notify)

    def __init__(self, path: Path | None = None, timeout: float = 1800.0,
                 notify: Notify | None = None) -> None:
        self.path = Path(path) if path else default_path()
        self.timeout = timeout
        self.notify = notify or (lambda message: None)
        self.sidecar = self.path.with_name(self.path.name + ".json")
        self.waited = 0.0
        self.took_over: Holder | None = None

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()

    @property
    def key(self) -> str:
        return str(self.path.absolute())

    def acquire(self) -> None:
        held = _HELD.get(self.key)
        if held is not None:
            held.count += 1
            return
        fd = self._open()
        try:
            self._wait(fd)
        except BaseException:
            os.close(fd)
            raise
        self._announce_takeover()
        self._write_holder(Holder.me())
        _HELD[self.key] = _Held(fd=fd, count=1)

    def release(self) -> None:
        held = _HELD.get(self.key)
        if held is None:
            return
        held.count -= 1
        if held.count > 0:
            return
        del _HELD[self.key]
        try:
            holder = self.read_holder()
            if holder is not None and holder.pid == os.getpid():
                self.sidecar.unlink(missing_ok=True)
        finally:
            fcntl.flock(held.fd, fcntl.LOCK_UN)
            os.close(held.fd)

    def read_holder(self) -> Holder | None:
        try:
            data = json.loads(self.sidecar.read_text())
            return Holder(int(data["pid"]), str(data["command"]), float(data["started"]),
                          str(data.get("host", "")))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    # ----------------------------------------------------------------- internals

    def _open(self) -> int:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise ChoirciError(f"cannot open the build lock {self.path}: {exc.strerror}; "
                               "set nix.lock_path in choirci.yaml to a writable file") from None
        with contextlib.suppress(OSError):
            os.fchmod(fd, 0o666)  # another user's grind run must be able to wait on it too
        return fd

    def _wait(self, fd: int) -> None:
        started = time.monotonic()
        next_notice = started
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                self.waited = time.monotonic() - started
                return
            except BlockingIOError:
                pass
            now = time.monotonic()
            if now - started >= self.timeout:
                raise LockTimeout(
                    f"build lock {self.path} is still held by {self._holder_text()} after "
                    f"waiting {self.timeout:g}s; let that run finish (or stop it), or raise "
                    "nix.lock_timeout in choirci.yaml"
                )
            if now >= next_notice:
                self.notify(f"choirci: waiting for the build lock {self.path}, held by "
                            f"{self._holder_text()} (up to {self.timeout:g}s, nix.lock_timeout)")
                next_notice = now + REMIND_SECONDS
            time.sleep(min(POLL_SECONDS, max(0.0, self.timeout - (now - started))))

    def _announce_takeover(self) -> None:
        # We hold the flock, so whoever the sidecar still names does not: it died (the
        # kernel released its lock) or exited without cleaning up. Say so, then overwrite.
        previous = self.read_holder()
        if previous is None or previous.pid == os.getpid():
            return
        self.took_over = previous
        state = "dead" if not previous.alive() else "alive but no longer holding it"
        self.notify(f"choirci: took over the build lock {self.path} left by "
                    f"{previous.describe()} ({state}; its lock was released when it exited)")

    def _holder_text(self) -> str:
        holder = self.read_holder()
        return holder.describe() if holder else f"an unknown process (no readable {self.sidecar})"

    def _write_holder(self, holder: Holder) -> None:
        tmp = self.sidecar.with_name(f"{self.sidecar.name}.{os.getpid()}.tmp")
        try:
            tmp.write_text(json.dumps(asdict(holder)))
            os.chmod(tmp, 0o644)
            os.replace(tmp, self.sidecar)
        except OSError:
            # Another user's sidecar in a shared /tmp: the lock itself still works.
            tmp.unlink(missing_ok=True)
