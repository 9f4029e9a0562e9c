"""Base classes and helpers shared by the synthetic areas (closures, loops, rust).

Conventions every area follows:

* The area's root collector is created with ``Area.from_parent(session, name=AREA,
  nodeid=AREA)``; children get ids ``AREA::...`` (``rust::sandbox::desktop_api_test::t``).
* The JUnit classname is derived from the node id by the evidence writer: the parts between
  the area and the last part joined with dots (``sandbox.desktop_api_test``), or the area.
* Provenance (store path, narHash, command, ...) is appended to ``item.user_properties`` as
  ``(name, str)`` pairs: it travels through xdist and lands in the JUnit ``system-out`` as
  ``[[PROPERTY|name=value]]`` lines and in the JSON record.
* The system under test failing -> raise :class:`ItemFailed` from ``runtest`` (a failure).
  The harness breaking (tool missing, bad input) -> raise :class:`~choirci.errors.ChoirciError`
  from ``setup`` (reported as an error, never a failure and never a pass).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from choirci import settings as settings_mod
from choirci.errors import ChoirciError
from choirci.evidence import redact

log = logging.getLogger("choirci")


class ItemFailed(Exception):
    """A failure of the system under test: a one-line message plus optional details."""

    def __init__(self, message: str, details: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def render(self) -> str:
        return f"{self.message}\n\n{self.details}".rstrip() if self.details else self.message


class AreaCollector(pytest.Collector):
    """Root of an area; subclasses implement ``collect``."""

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.config.rootpath, None, self.nodeid


class ChoirciItem(pytest.Item):
    """An item whose failures read as one clear message, never a harness traceback."""

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.config.rootpath, None, self.nodeid

    def repr_failure(
        self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None
    ) -> str | Any:
        if isinstance(excinfo.value, ItemFailed):
            return excinfo.value.render()
        if isinstance(excinfo.value, ChoirciError):
            return f"choirci: {excinfo.value}"
        return super().repr_failure(excinfo, style=style)

    def record(self, name: str, value: object) -> None:
        """Attach one provenance property (shown in JUnit system-out and the JSON record)."""
        self.user_properties.append((name, "" if value is None else str(value)))


def harness_error(message: str) -> None:
    """Report a harness problem as a one-line ERROR (setup phase), never a traceback."""
    pytest.fail(f"choirci: {message}", pytrace=False)


def announcer(config: pytest.Config) -> Callable[[str], None]:
    """Print a line to the terminal (or the log on xdist workers, which have none)."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    guard = threading.Lock()  # nix output arrives on reader threads

    settings = settings_mod.get(config)
    extra = settings.config.redact if settings else ()

    def say(line: str) -> None:
        # The terminal is the CI log: it gets the same redaction as the evidence files.
        line = redact.for_terminal(line, extra)
        with guard:
            if reporter is None:
                log.warning("%s", line)
            elif capture is not None:
                # Progress must reach the terminal while the item runs, not its captured output.
                with capture.global_and_fixture_disabled():
                    reporter.write_line(line)
            else:
                reporter.write_line(line)

    return say
