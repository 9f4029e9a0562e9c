"""Atomic file writes: a reader sees the old file or the new one, never half of either.

Evidence is written while a run may be interrupted (Ctrl-C, SIGTERM, a CI runner killing the
job), so every file goes to a temporary file in the same directory, is fsynced, and then
renamed over the target (``os.replace`` is atomic on POSIX within one filesystem).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from choirci.errors import ChoirciError


def write_text(path: Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically, creating parent directories."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise ChoirciError(
            f"{path.parent}: cannot write evidence here ({exc.strerror}); "
            "choose a writable directory with --evidence-dir"
        ) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        # Interrupted or failed mid-write: never leave the temporary file behind.
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)
    return path


def append_text(path: Path, text: str) -> Path:
    """Append by rewriting atomically (used for $GITHUB_STEP_SUMMARY, a small file)."""
    try:
        existing = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        existing = ""
    separator = "" if not existing or existing.endswith("\n") else "\n"
    return write_text(path, existing + separator + text)


def _fsync_dir(directory: Path) -> None:
    # Makes the rename itself durable; some filesystems refuse O_RDONLY on dirs, which is fine.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
