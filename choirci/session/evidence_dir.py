"""The evidence directory of a run, claimed before anything runs.

* It must be writable: checked at start (created if missing) with a message naming where the
  path came from (``choirci.yaml:7: evidence``, ``--evidence-dir``, or the default).
* One run at a time: the controller holds an exclusive ``flock`` on the directory itself for
  the whole session (released by the kernel when the process ends, however it ends). A second
  ``pytest --grind`` into the same directory is refused at once and leaves the first run's
  files alone; xdist workers never write evidence and never lock.
* A directory inside the git checkout that git does not ignore dirties the tree (and ``choirci
  manifest build`` then refuses): :func:`ignore_hint` says which line to add.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from pathlib import Path

from choirci.errors import ConfigError
from choirci.evidence import workspace


def where(evidence_where: str, from_cli: bool) -> str:
    if from_cli:
        return "--evidence-dir"
    return evidence_where or "evidence dir (default ./evidence)"


def check_writable(directory: Path, source: str) -> None:
    fix = ("pass --evidence-dir=<a writable dir>" if source == "--evidence-dir"
           else "set 'evidence:' in choirci.yaml to a writable dir, or pass "
                "--evidence-dir=<a writable dir>")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".choirci-probe-"):
            pass
    except OSError as exc:
        raise ConfigError(f"{source}: cannot write evidence to {directory} "
                          f"({exc.strerror or exc}); {fix}") from None


class DirLock:
    """An exclusive, non-blocking flock on the evidence directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ConfigError(
                f"evidence dir {self.directory} is in use by another choirci run; wait for it, "
                "or pass --evidence-dir=<another dir>") from None
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def ignore_hint(root: Path, directory: Path) -> str | None:
    """A note when ``directory`` is inside ``root``'s git checkout and not ignored."""
    line = workspace.unignored_line(root, directory)
    if line is None:
        return None
    return (f"choirci: note: {line.strip('/')}/ is not ignored by git; add the line '{line}' "
            "to .gitignore (evidence in the tree makes `choirci manifest build` refuse)")
