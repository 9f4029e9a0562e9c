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
from pathlib import Path
from typing import Any

import pytest

from choirci.errors import ChoirciError
from choirci.progress import announcer  # re-exported: the areas import it from here

__all__ = ["AreaCollector", "ChoirciItem", "ItemFailed", "announcer", "harness_error"]

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
