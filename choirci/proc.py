"""The one place choirci starts processes.

Every external command (nix, cargo, a test binary, ssh) goes through :func:`run`: an argv
list (never a shell string), logged with ``shlex.join`` before it starts, started through
plumbum in its own session so that a timeout or Ctrl-C kills the whole process group, its
output decoded leniently (binary output never raises) and returned as a
:class:`CommandResult`.

Orphans: if choirci itself dies without a chance to clean up (SIGKILL, the OOM killer), the
child must not keep running (a test binary, a nix build). Two guards, neither needing a
``preexec_fn`` (unsafe with threads): each child is started through util-linux's
``setpriv --pdeathsig KILL`` (the kernel kills it the moment its parent dies), and a small
watchdog process (one per choirci process, in its own session) holds the list of running
process groups and SIGKILLs them when its pipe from choirci closes, which catches the
grandchildren (a server a test started, a compiler cargo started) that share the child's group.
"""

from __future__ import annotations

import collections
import functools
import logging
import os
import select
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from plumbum import local

from choirci.errors import ToolMissing

log = logging.getLogger("choirci")

LineCallback = Callable[[str], None]
KILL_GRACE = 3.0
MAX_LINE = 1 << 16


@dataclass(frozen=True)
class CommandResult:
    argv: tuple[str, ...]
    returncode: int | None
    stdout: str
    stderr: str
    duration: float
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    @property
    def command(self) -> str:
        return shlex.join(self.argv)

    @property
    def signal(self) -> int | None:
        """The signal that killed the process, if it died of one."""
        if self.returncode is not None and self.returncode < 0:
            return -self.returncode
        return None

    def describe_exit(self) -> str:
        if self.timed_out:
            return "timed out (process group killed)"
        if self.signal is not None:
            try:
                name = signal.Signals(self.signal).name
            except ValueError:
                name = f"signal {self.signal}"
            return f"killed by {name}"
        return f"exit status {self.returncode}"


def which(program: str, env: Mapping[str, str] | None = None) -> str | None:
    """Resolve ``program`` against ``env['PATH']`` (the live environment, not plumbum's copy)."""
    if os.sep in program:
        return program if os.access(program, os.X_OK) else None
    path = (env if env is not None else os.environ).get("PATH", os.defpath)
    return shutil.which(program, path=path)


def run(
    argv: Sequence[str],
    *,
    cwd: Path | str | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
    stdin: str | None = None,
    on_stdout: LineCallback | None = None,
    on_stderr: LineCallback | None = None,
    setting: str | None = None,
    max_output: int | None = None,
) -> CommandResult:
    """Run ``argv`` to completion (or timeout) and capture its output.

    ``setting`` names the config key that chooses this program, so a missing program
    becomes a one-line ToolMissing error that says how to fix it. ``max_output`` bounds
    the characters kept per stream: the head and the tail are kept, the middle is replaced
    by one ``[... N characters omitted by choirci ...]`` line (callbacks still see it all).
    """
    full_env = dict(os.environ if env is None else env)
    resolved = which(argv[0], full_env)
    if resolved is None:
        hint = f" or set {setting}" if setting else ""
        raise ToolMissing(f"'{argv[0]}' not found on PATH; install it{hint}")
    log.info("+ %s", shlex.join(argv))
    started = time.monotonic()
    guard = pdeathsig_prefix()
    program, args = (guard[0], [*guard[1:], resolved, *argv[1:]]) if guard else (resolved, list(argv[1:]))
    # plumbum types popen() as text mode; without text=/encoding= it is a bytes Popen.
    proc: subprocess.Popen[bytes] = local[program][args].popen(  # type: ignore[assignment]
        cwd=str(cwd) if cwd is not None else None,
        env=full_env,
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        new_session=True,
    )
    _WATCHDOG.watch(proc.pid)
    out = _Sink(max_output)
    err = _Sink(max_output)
    readers = [
        _reader(proc.stdout, out, on_stdout),
        _reader(proc.stderr, err, on_stderr),
    ]
    timed_out = False
    try:
        if stdin is not None and proc.stdin is not None:
            _feed(proc.stdin, stdin)
        try:
            _wait(proc, timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            kill_group(proc)
    except BaseException:
        # Ctrl-C or any other interruption: never leave the child's group running.
        kill_group(proc)
        raise
    finally:
        _WATCHDOG.unwatch(proc.pid)
        # One grace period for both streams: output still held open by a process outside the
        # group (an ssh ControlMaster) is not waited for.
        deadline = time.monotonic() + KILL_GRACE
        for thread in readers:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
    return CommandResult(
        argv=tuple(argv),
        returncode=proc.returncode,
        stdout=out.text(),
        stderr=err.text(),
        duration=time.monotonic() - started,
        timed_out=timed_out,
    )


WATCHDOG = """# choirci watchdog: SIGKILL the process groups still running when choirci is gone
import os, signal, sys
groups = set()
for line in sys.stdin:
    sign, pgid = line[:1], line[1:].strip()
    if pgid.isdigit():
        (groups.add if sign == "+" else groups.discard)(int(pgid))
for pgid in groups:  # choirci is gone (exited, or killed): so are the groups it still ran
    try:
        os.killpg(pgid, signal.SIGKILL)
    except OSError:
        pass
"""


class _Watchdog:
    """The process that kills still-running process groups once choirci is gone (one per
    choirci process: started lazily, restarted after a fork, e.g. in an xdist worker)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._owner = 0

    def watch(self, pgid: int) -> None:
        self._send(f"+{pgid}\n")

    def unwatch(self, pgid: int) -> None:
        self._send(f"-{pgid}\n")

    def _send(self, line: str) -> None:
        with self._lock:
            try:
                if self._proc is None or self._owner != os.getpid() or self._proc.poll() is not None:
                    self._owner = os.getpid()
                    self._proc = subprocess.Popen(
                        [sys.executable, "-c", WATCHDOG], stdin=subprocess.PIPE,
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                        start_new_session=True)  # Ctrl-C on the terminal must not reach it
                assert self._proc.stdin is not None
                self._proc.stdin.write(line.encode())
                self._proc.stdin.flush()
            except OSError:  # no watchdog: setpriv still guards the direct child
                self._proc = None


_WATCHDOG = _Watchdog()


@functools.lru_cache(maxsize=1)
def pdeathsig_prefix() -> tuple[str, ...]:
    """``setpriv --pdeathsig KILL --`` if this machine's setpriv supports it (util-linux 2.33+),
    else () (then an orphan is possible; logged once)."""
    setpriv = shutil.which("setpriv", path=os.environ.get("PATH", "") + os.pathsep + "/usr/bin:/bin")
    if setpriv is not None:
        probe = subprocess.run([setpriv, "--pdeathsig", "KILL", "--", "true"], capture_output=True,
                               timeout=10, check=False)
        if probe.returncode == 0:
            return (setpriv, "--pdeathsig", "KILL", "--")
    log.warning("choirci: no 'setpriv --pdeathsig' (util-linux) here: a child process may outlive "
                "a choirci that is killed with SIGKILL")
    return ()


def _wait(proc: subprocess.Popen[bytes], timeout: float | None) -> None:
    """Wait for exit, waking the moment it happens.

    ``Popen.wait(timeout)`` polls with sleeps of up to 50 ms, a delay paid by every one of the
    dozens of short commands in a run; a pidfd becomes readable exactly when the process exits.
    """
    try:
        fd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):
        proc.wait(timeout=timeout)
        return
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        if not poller.poll(None if timeout is None else max(0, int(timeout * 1000))):
            raise subprocess.TimeoutExpired(proc.args, timeout or 0)
    finally:
        os.close(fd)
    proc.wait()


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group, give it a grace period, then SIGKILL whatever is left."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            proc.wait(timeout=KILL_GRACE)
        except subprocess.TimeoutExpired:
            pass


def _feed(pipe: IO[bytes], text: str) -> None:
    try:
        pipe.write(text.encode())
        pipe.close()
    except BrokenPipeError:
        pass


class _Sink:
    """Collects a stream's lines; with a limit, keeps the head and a rolling tail."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.head: list[str] = []
        self.tail: collections.deque[str] = collections.deque()
        self.head_size = self.tail_size = self.dropped = 0

    def append(self, line: str) -> None:
        if self.limit is None or self.head_size + len(line) <= self.limit // 2:
            self.head.append(line)
            self.head_size += len(line)
            return
        self.tail.append(line)
        self.tail_size += len(line)
        while self.tail_size > self.limit // 2 and len(self.tail) > 1:
            gone = self.tail.popleft()
            self.tail_size -= len(gone)
            self.dropped += len(gone)

    def text(self) -> str:
        if not self.dropped:
            return "".join(self.head) + "".join(self.tail)
        marker = f"[... {self.dropped} characters omitted by choirci ...]\n"
        return "".join(self.head) + marker + "".join(self.tail)


def _reader(
    pipe: IO[bytes] | None, sink: _Sink, callback: LineCallback | None
) -> threading.Thread:
    def emit(raw: bytes) -> None:
        line = raw.decode("utf-8", errors="replace")
        sink.append(line)
        if callback is not None:
            callback(line.rstrip("\n"))

    # The thread reads its own duplicate of the descriptor, not the buffered file: a
    # grandchild (an ssh ControlMaster is handed the client's stdio) may hold the pipe open
    # after a timeout, and a thread blocked in readline holds the file's lock, so closing the
    # file (Popen's clean-up) would wait for that grandchild.
    fd = os.dup(pipe.fileno()) if pipe is not None else -1

    def pump() -> None:
        if fd < 0:
            return
        # Bounded lines: a gigabyte without a newline must not become one gigabyte string.
        pending = b""
        try:
            while chunk := _read(fd):
                pending += chunk
                while (cut := pending.find(b"\n")) >= 0 or len(pending) >= MAX_LINE:
                    size = cut + 1 if 0 <= cut < MAX_LINE else MAX_LINE
                    emit(pending[:size])
                    pending = pending[size:]
            if pending:
                emit(pending)
        finally:
            os.close(fd)

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    return thread


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, 1 << 16)
    except OSError:
        return b""
