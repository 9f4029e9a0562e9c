"""choirci against a multi-user store, as on NixOS: every nix call goes through ``nix-daemon``
(``NIX_REMOTE=daemon``). A real daemon is started per test on its own socket
(``NIX_DAEMON_SOCKET_PATH``), serving this machine's store.

Builders record their parent process: through the daemon, that is ``nix-daemon`` (the worker
that forked the builder), not the client's ``nix``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from nix_support import make_workspace, nix_config, one, properties

pytestmark = pytest.mark.slow

DAEMON = shutil.which("nix-daemon") or "/usr/bin/nix-daemon"
CONFIG = """\
closures:
  alpha: ./pkg#alpha
  beta: ./pkg#beta
nix:
  lock_path: {lock}
  lock_timeout: 120
"""
PARENT = "tr '\\000' ' ' < /proc/$PPID/cmdline > $out; "


@pytest.fixture
def daemon(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A nix-daemon on tmp_path/daemon.sock; the test's nix calls go through it."""
    if not Path(DAEMON).exists():
        pytest.skip(f"{DAEMON} is not installed on this machine")
    socket = tmp_path / "daemon.sock"
    config = nix_config(tmp_path)
    log = (tmp_path / "daemon.log").open("wb")
    env = {**os.environ, "NIX_CONFIG": config, "NIX_DAEMON_SOCKET_PATH": str(socket)}
    env.pop("NIX_REMOTE", None)
    proc = subprocess.Popen([DAEMON], env=env, stdout=log, stderr=log, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while not socket.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"nix-daemon did not come up: {(tmp_path / 'daemon.log').read_text()}")
            time.sleep(0.05)
        monkeypatch.setenv("NIX_CONFIG", config)
        monkeypatch.setenv("NIX_REMOTE", "daemon")
        monkeypatch.setenv("NIX_DAEMON_SOCKET_PATH", str(socket))
        yield socket
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=30)
        log.close()


def grind_argv(junit: Path, evidence: Path) -> list[str]:
    return [sys.executable, "-m", "pytest", "--grind", "-p", "no:cacheprovider", "-rA", "-m",
            "nix", f"--junitxml={junit}", f"--evidence-dir={evidence}"]


def test_closures_build_through_the_daemon(tmp_path: Path, daemon: Path) -> None:
    root = tmp_path / "ws"
    make_workspace(root, {"alpha": PARENT, "beta": "cat $dep_alpha > $out"},
                   CONFIG.format(lock=root / "build.lock"))
    first = subprocess.run(grind_argv(root / "one.xml", root / "evidence"), cwd=root,
                           capture_output=True, text=True, timeout=300, check=False)
    assert first.returncode == 0, first.stdout + first.stderr
    props = properties(root / "one.xml")
    alpha, beta = props["closures::alpha"], props["closures::beta"]
    assert one(alpha, "cache") == one(beta, "cache") == "built"
    assert one(alpha, "cache_planned") == "to-build"
    assert "nix-daemon" in Path(one(alpha, "out_path")).read_text()

    second = subprocess.run(grind_argv(root / "two.xml", root / "evidence"), cwd=root,
                            capture_output=True, text=True, timeout=300, check=False)
    assert second.returncode == 0, second.stdout + second.stderr
    props = properties(root / "two.xml")
    assert one(props["closures::alpha"], "cache") == one(props["closures::beta"], "cache") \
        == "present"


@pytest.mark.parametrize("lock", ["own", "shared"])
def test_two_runs_on_one_daemon_build_each_closure_once(tmp_path: Path, daemon: Path,
                                                         lock: str) -> None:
    """Two workspaces with the same derivations on one daemon. ``own``: each with its own
    choirci build lock (two users of one NixOS machine), so nothing in choirci serialises
    them and the daemon must build each derivation once. ``shared``: one lock path, so the
    second run waits for the first and finds its results present. Either way neither run
    calls the other's build a substitution."""
    counter = tmp_path / "builds.log"
    nonce = uuid.uuid4().hex
    packages = {"alpha": f"echo alpha >> {counter}; sleep 5; " + PARENT,
                "beta": f"echo beta >> {counter}; cat $dep_alpha > $out"}
    roots = [tmp_path / "ws1", tmp_path / "ws2"]
    for root in roots:
        path = tmp_path / "build.lock" if lock == "shared" else root / "build.lock"
        make_workspace(root, packages, CONFIG.format(lock=path), nonce=nonce)
    runs = []
    for root in roots:
        runs.append(subprocess.Popen(grind_argv(root / "run.xml", root / "evidence"), cwd=root,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True))
        time.sleep(0.5)  # the first run takes the lock first (when there is one to share)
    outputs = [run.communicate(timeout=300)[0] for run in runs]
    for run, out in zip(runs, outputs, strict=True):
        assert run.returncode == 0, out
    assert sorted(counter.read_text().split()) == ["alpha", "beta"], outputs
    verdicts = [properties(root / "run.xml") for root in roots]
    paths = {one(v["closures::alpha"], "out_path") for v in verdicts}
    assert len(paths) == 1 and "nix-daemon" in Path(paths.pop()).read_text()
    caches = [one(v["closures::alpha"], "cache") for v in verdicts]
    if lock == "shared":
        assert "waiting for the build lock" in outputs[1]
        assert caches == ["built", "present"]
    else:
        # The two really overlapped: both planned a build (neither found the other's
        # result), and both report the path built on this machine.
        assert {one(v["closures::alpha"], "cache_planned") for v in verdicts} == {"to-build"}
        assert caches == ["built", "built"]
    for v in verdicts:
        assert one(v["closures::beta"], "cache") in ("built", "present"), v["closures::beta"]
