"""The single process runner: argv only, process-group kill, lenient decoding."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from choirci import proc
from choirci.errors import ToolMissing


def test_captures_output_and_exit_status() -> None:
    result = proc.run(["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert result.stdout == "out\n" and result.stderr == "err\n"
    assert result.returncode == 3 and not result.ok
    assert result.describe_exit() == "exit status 3"
    assert result.command == "sh -c 'echo out; echo err >&2; exit 3'"


def test_argv_is_never_a_shell_string(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    result = proc.run(["echo", f"hello; touch {marker}"])
    assert result.stdout == f"hello; touch {marker}\n"
    assert not marker.exists()


def test_missing_program_names_the_setting(tmp_path: Path) -> None:
    env = dict(os.environ, PATH=str(tmp_path))
    with pytest.raises(ToolMissing, match="'nix' not found on PATH; install it or set nix.binary"):
        proc.run(["nix", "--version"], env=env, setting="nix.binary")


def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    started = time.monotonic()
    result = proc.run(
        ["sh", "-c", f"sleep 300 & echo $! > {pidfile}; wait"], timeout=1.0
    )
    assert result.timed_out and not result.ok
    assert time.monotonic() - started < 15
    child = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _alive(child):
        time.sleep(0.05)
    assert not _alive(child), "the grandchild survived the timeout"


def test_signal_death_is_named() -> None:
    result = proc.run(["sh", "-c", "kill -SEGV $$"])
    assert result.signal == signal.SIGSEGV
    assert result.describe_exit() == "killed by SIGSEGV"


def test_binary_and_invalid_utf8_output_never_raises() -> None:
    result = proc.run(["printf", r"ok \377\376 \033[31mred\033[0m \000 end"])
    assert result.ok
    assert "\ufffd" in result.stdout and "end" in result.stdout


def test_line_callbacks_stream_output() -> None:
    seen: list[str] = []
    proc.run(["sh", "-c", "echo a; echo b >&2; echo c"], on_stdout=seen.append,
             on_stderr=seen.append)
    assert sorted(seen) == ["a", "b", "c"]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it is dead for our purposes.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


ORPHAN_PARENT = """
import sys
from choirci import proc
proc.run(["sh", "-c", sys.argv[2].replace("PIDFILE", sys.argv[1])])
"""


@pytest.mark.parametrize(
    "script",
    ["echo $$ > PIDFILE; exec sleep 300",  # the child itself
     "sleep 300 & echo $! > PIDFILE; wait"],  # a grandchild in the child's process group
    ids=["child", "grandchild"],
)
def test_child_dies_when_its_parent_is_sigkilled(tmp_path: Path, script: str) -> None:
    """No cleanup code runs on SIGKILL: the parent-death signal (child) and the watchdog
    (the child's whole process group) must end what the parent started."""
    import subprocess
    import sys

    pidfile = tmp_path / "child.pid"
    parent = subprocess.Popen([sys.executable, "-c", ORPHAN_PARENT, str(pidfile), script])
    deadline = time.monotonic() + 20
    while not (pidfile.exists() and pidfile.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.05)
    child = int(pidfile.read_text())
    assert _alive(child)
    parent.kill()
    parent.wait(timeout=10)
    deadline = time.monotonic() + 15  # a loaded machine; an orphan would live 300 s
    while time.monotonic() < deadline and _alive(child):
        time.sleep(0.05)
    try:
        assert not _alive(child), "the child outlived its SIGKILLed parent (an orphan)"
    finally:
        if _alive(child):
            os.kill(child, signal.SIGKILL)


def test_the_guard_is_invisible_to_callers() -> None:
    """setpriv wraps the child, but the recorded command and exit status are the caller's."""
    assert proc.pdeathsig_prefix()[:3] == (proc.pdeathsig_prefix()[0], "--pdeathsig", "KILL")
    result = proc.run(["sh", "-c", "exit 7"])
    assert result.argv == ("sh", "-c", "exit 7") and result.returncode == 7


def test_a_timeout_returns_while_another_session_holds_the_output(tmp_path: Path) -> None:
    """An ssh ControlMaster gets the client's stdout/stderr and outlives the killed client: the
    run must still return at its timeout (plus the grace), not when that holder lets go."""
    pidfile = tmp_path / "holder.pid"
    started = time.monotonic()
    result = proc.run(["sh", "-c", f"setsid sleep 30 & echo $! > {pidfile}; echo started; sleep 30"],
                      timeout=1.0)
    elapsed = time.monotonic() - started
    os.kill(int(pidfile.read_text()), signal.SIGKILL)
    assert result.timed_out and result.stdout == "started\n"
    assert elapsed < 1.0 + 4 * proc.KILL_GRACE, elapsed  # the holder lives 30 s
