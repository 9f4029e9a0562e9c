"""Per-closure time inside one batched ``nix build``, measured from Nix's own log lines.

One ``nix build`` builds every closure, so pytest's timing would give the whole batch to the
first closure and 0 to the others. Nix 2.19+ reports ``startTime``/``stopTime`` per built
path in ``--json``; where it does not (2.8), the time is measured here from the build's stderr
as it streamed (pinned ``bar-with-logs`` format):

* a built derivation: from its ``building '<drv>'`` line to the last ``<pname>> ...`` log line
  of that derivation (or to the end of the build when it printed nothing);
* a substituted path: from its ``copying path '<path>'`` line to the next line Nix printed
  (or the end of the build);
* a path that was already present: 0.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

_BUILDING = re.compile(r"^building '(?P<drv>/nix/store/[^']+\.drv)'")
_COPYING = re.compile(r"^copying path '(?P<path>/nix/store/[^']+)'")
# Nix's DrvName: the name up to the first dash that is followed by a digit is the pname.
_VERSION = re.compile(r"-[0-9].*$")


def pname(drv_path: str) -> str:
    """``/nix/store/<hash>-sandbox-0.1.0.drv`` -> ``sandbox`` (Nix's log-line prefix)."""
    name = drv_path.rsplit("/", 1)[-1].removesuffix(".drv").split("-", 1)[-1]
    return _VERSION.sub("", name)


@dataclass
class LineClock:
    """Timestamps every stderr line of the build as it arrives (a LineCallback wrapper)."""

    forward: Callable[[str], None] | None = None
    clock: Callable[[], float] = time.monotonic
    lines: list[tuple[float, str]] = field(default_factory=list)
    ended: float | None = None

    def __call__(self, line: str) -> None:
        self.lines.append((self.clock(), line.rstrip("\n")))
        if self.forward is not None:
            self.forward(line)

    def end(self) -> None:
        self.ended = self.clock()

    def built_seconds(self, drv_path: str) -> float | None:
        started = next((t for t, line in self.lines
                        if (m := _BUILDING.match(line)) and m["drv"] == drv_path), None)
        if started is None:
            return None
        prefix = f"{pname(drv_path)}> "
        logged = [t for t, line in self.lines if t >= started and line.startswith(prefix)]
        end = max(logged) if logged else (self.ended if self.ended is not None else started)
        return max(0.0, end - started)

    def copied_seconds(self, paths: Iterable[str]) -> float | None:
        wanted = set(paths)
        indexes = [i for i, (_t, line) in enumerate(self.lines)
                   if (m := _COPYING.match(line)) and m["path"] in wanted]
        if not indexes:
            return None
        started = self.lines[indexes[0]][0]
        after = indexes[-1] + 1
        end = self.lines[after][0] if after < len(self.lines) else self.ended
        return max(0.0, (end if end is not None else started) - started)
