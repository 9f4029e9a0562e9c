"""Progress lines on the terminal, from the controller and from xdist workers.

:func:`announcer` prints a line above pytest's progress row (redacted: the terminal is the CI
log). Workers have no terminal: a closure batch or a cargo compile that runs on ``gw0`` would be
silent under ``-n 2``. The controller hands each worker one file (``workerinput``); a worker's
announcer appends its lines there (O_APPEND, one write per line, so lines never interleave)
and a daemon thread on the controller prints new lines as they arrive, prefixed with the
worker id. The last lines are drained when the session ends.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from _pytest.pathlib import bestrelpath

from choirci import settings as settings_mod
from choirci.evidence import redact

log = logging.getLogger("choirci")

WORKERINPUT_KEY = "choirci_progress"
POLL = 0.3


def worker_writer(path: str, worker: str) -> Callable[[str], None]:
    def write(line: str) -> None:
        data = f"[{worker}] {line.rstrip()}\n".encode("utf-8", "replace")
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)

    return write


class Relay:
    """Controller side: tail the workers' progress file on a daemon thread."""

    def __init__(self, say: Callable[[str], None]) -> None:
        handle, name = tempfile.mkstemp(prefix="choirci-progress-", suffix=".log")
        os.close(handle)
        self.path = Path(name)
        self.say = say
        self._offset = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="choirci-progress", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2 * POLL + 1)
        self._drain()
        self.path.unlink(missing_ok=True)

    def _run(self) -> None:
        while not self._stop.wait(POLL):
            self._drain()

    def _drain(self) -> None:
        try:
            with self.path.open("rb") as handle:
                handle.seek(self._offset)
                data = handle.read()
        except OSError:
            return
        complete = data[: data.rfind(b"\n") + 1]
        self._offset += len(complete)
        for line in complete.decode("utf-8", "replace").splitlines():
            self.say(line)


def announcer(config: pytest.Config, redact_also: tuple[str, ...] | None = None
              ) -> Callable[[str], None]:
    """Print a line to the terminal; on an xdist worker (which has none), hand it to the
    controller, which prints it (see :class:`Relay`). ``redact_also``: the config's
    ``redact:`` patterns, for an announcer made before the run's settings are stored."""
    guard = threading.Lock()  # nix output arrives on reader threads

    settings = settings_mod.get(config)
    extra = redact_also if redact_also is not None else (
        settings.config.redact if settings else ())
    workerinput = getattr(config, "workerinput", {})
    relay_path = workerinput.get(WORKERINPUT_KEY)
    to_controller = (worker_writer(relay_path, workerinput.get("workerid", "gw?"))
                     if relay_path else None)

    def say(line: str) -> None:
        # The terminal is the CI log: it gets the same redaction as the evidence files.
        line = redact.for_terminal(line, extra)
        # Looked up now, not when the announcer was made: one made in pytest_configure (the
        # session's Cargo, for the check before collection) predates the terminal reporter.
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        capture = config.pluginmanager.get_plugin("capturemanager")
        with guard:
            if to_controller is not None:
                to_controller(line)
            elif reporter is None:
                log.warning("%s", line)
            elif capture is not None:
                # Progress must reach the terminal while the item runs, not its captured output.
                with capture.global_and_fixture_disabled():
                    write_above_row(reporter, line)
            else:
                write_above_row(reporter, line)

    return say


def write_above_row(reporter: Any, line: str) -> None:
    """A line of its own, then the progress row resumes with its prefix (``closures ...``)
    instead of continuing as a bare ``.`` under our line."""
    row = reporter.currentfspath
    if not row and int(getattr(reporter._tw, "width_of_current_line", 0) or 0):
        reporter.write("\n")  # a row pytest does not track (xdist's): end it first
    reporter.write_line(line)
    if isinstance(row, Path):
        reporter.write(bestrelpath(reporter.startpath, row) + " ")
        reporter.currentfspath = row
