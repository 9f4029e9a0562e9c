"""The host build lock, with real processes holding it (no fakes: flock is the kernel's)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from choirci.errors import ChoirciError
from choirci.nix.lock import BuildLock, LockTimeout, default_path

HOLDER = """
import sys, time
from pathlib import Path
from choirci.nix.lock import BuildLock
lock = BuildLock(Path(sys.argv[1]), timeout=30)
lock.acquire()
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
lock.release()
"""


@pytest.fixture
def lock_path(tmp_path: Path) -> Path:
    return tmp_path / "build.lock"


def start_holder(path: Path, seconds: float = 60.0) -> subprocess.Popen[str]:
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(path), str(seconds)],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "locked"
    return holder


@pytest.fixture
def holder(lock_path: Path) -> Iterator[subprocess.Popen[str]]:
    process = start_holder(lock_path)
    yield process
    process.kill()
    process.wait()


def test_acquire_writes_and_release_removes_the_sidecar(lock_path: Path) -> None:
    with BuildLock(lock_path, timeout=1) as lock:
        data = json.loads(lock.sidecar.read_text())
        assert data["pid"] == os.getpid()
        assert "pytest" in data["command"] or "python" in data["command"]
        assert lock.read_holder() is not None
    assert not lock.sidecar.exists()


def test_reentrant_in_one_process(lock_path: Path) -> None:
    outer = BuildLock(lock_path, timeout=1)
    inner = BuildLock(lock_path, timeout=1)
    with outer, inner:
        assert inner.sidecar.exists()
    assert not outer.sidecar.exists()


def test_waiter_names_the_holder_then_times_out(lock_path: Path,
                                                holder: subprocess.Popen[str]) -> None:
    notices: list[str] = []
    lock = BuildLock(lock_path, timeout=0.6, notify=notices.append)
    started = time.monotonic()
    with pytest.raises(LockTimeout) as info:
        lock.acquire()
    assert time.monotonic() - started >= 0.6
    message = str(info.value)
    assert f"PID {holder.pid}" in message and "nix.lock_timeout" in message
    assert "\n" not in message
    assert notices and f"PID {holder.pid}" in notices[0] and "waiting" in notices[0]


def test_waiter_gets_the_lock_when_the_holder_finishes(lock_path: Path) -> None:
    process = start_holder(lock_path, seconds=0.5)
    notices: list[str] = []
    with BuildLock(lock_path, timeout=10, notify=notices.append) as lock:
        assert lock.waited > 0.1
        assert lock.took_over is None  # the holder cleaned up after itself
    assert process.wait(timeout=10) == 0
    assert any(f"PID {process.pid}" in n for n in notices)


def test_lock_of_a_killed_holder_is_taken_over(lock_path: Path) -> None:
    process = start_holder(lock_path)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    notices: list[str] = []
    with BuildLock(lock_path, timeout=2, notify=notices.append) as lock:
        assert lock.took_over is not None and lock.took_over.pid == process.pid
        assert lock.waited < 1.0
    assert len(notices) == 1
    assert f"took over the build lock {lock_path}" in notices[0]
    assert f"PID {process.pid}" in notices[0] and "dead" in notices[0]


def test_unreadable_sidecar_still_waits_and_says_so(lock_path: Path,
                                                   holder: subprocess.Popen[str]) -> None:
    lock_path.with_name(lock_path.name + ".json").write_text("{broken")
    with pytest.raises(LockTimeout, match="an unknown process"):
        BuildLock(lock_path, timeout=0.3).acquire()


def test_unwritable_lock_path_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ChoirciError, match="nix.lock_path"):
        BuildLock(blocker / "sub" / "build.lock", timeout=1).acquire()


def test_default_path_is_one_per_machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Not per user: two operators' runs on one grind host must block each other."""
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    assert default_path() == Path("/tmp/choirci-build.lock")
