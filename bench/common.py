"""Shared by the benches: one row format, machine facts, one table, a clear failure.

Every bench builds what it measures in a temporary directory (nothing of the machine it runs on
is checked), asserts that each run it times succeeded, and reports rows::

    figure, choirci (seconds), anchor (seconds) and what the anchor is, ratio, target, met

``bench/run`` runs them all and writes ``bench/results.json`` and ``.md``; the README's
benchmark table is generated from that file, so it cannot drift from what was measured.
Each bench takes ``--tiny`` (a seconds-long configuration, used by tests/test_bench.py so a
broken bench fails CI; its figures are not meaningful) and ``--json PATH``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NoReturn


@dataclass(frozen=True)
class Row:
    bench: str
    figure: str
    choirci: float
    anchor: float | None  # the raw command (or pytest's floor) measured in the same run
    anchor_name: str
    target: str = ""  # e.g. "ratio <= 1.2" or "added < 0.5 s"
    met: bool | None = None  # None: no target for this figure
    note: str = ""

    @property
    def ratio(self) -> float | None:
        return self.choirci / self.anchor if self.anchor else None

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": None if self.ratio is None else round(self.ratio, 3)}


class BenchFailed(Exception):
    """A run the bench measures did not succeed: its figures would be meaningless."""


def fail(message: str) -> NoReturn:
    raise BenchFailed(message)


def checked(argv: list[str], what: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run ``argv``; a non-zero exit is a BenchFailed naming ``what`` and the output tail."""
    result = subprocess.run(argv, capture_output=True, text=True, check=False, **kwargs)
    if result.returncode != 0:
        tail = (result.stdout + result.stderr).strip()[-1500:]
        fail(f"{what} failed (exit {result.returncode}): {' '.join(argv)}\n{tail}")
    return result


def best(repeat: int, action: Callable[[], object]) -> float:
    """The shortest of ``repeat`` timed calls of ``action``, in seconds."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return min(times)


def parser(doc: str | None) -> argparse.ArgumentParser:
    out = argparse.ArgumentParser(description=doc,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    out.add_argument("--tiny", action="store_true",
                     help="a seconds-long configuration (proves the bench runs; figures meaningless)")
    out.add_argument("--json", type=Path, help="also write the rows here as JSON")
    return out


def main(run: Any, args: argparse.Namespace) -> int:
    """Call ``run(args) -> list[Row]``, print the table, write JSON; exit 1 on a failed run."""
    try:
        rows = run(args)
    except BenchFailed as exc:
        print(f"bench: FAILED: {exc}", file=sys.stderr)
        return 1
    print(markdown(rows))
    if args.json:
        args.json.write_text(json.dumps([row.to_json() for row in rows], indent=2) + "\n")
    return 0


def _version(argv: list[str]) -> str | None:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except OSError:
        return None
    return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None


def machine() -> dict[str, Any]:
    return {
        "date": datetime.date.today().isoformat(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "nix": _version(["nix", "--version"]),
        "cargo": _version(["cargo", "--version"]),
        "platform": platform.platform(terse=True),
    }


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3f} s" if value < 10 else f"{value:.1f} s"


def markdown(rows: list[Row]) -> str:
    lines = ["| bench | figure | choirci | anchor | ratio | target | met |",
             "|---|---|---|---|---|---|---|"]
    for row in rows:
        anchor = f"{_seconds(row.anchor)} ({row.anchor_name})" if row.anchor is not None \
            else row.anchor_name or "-"
        ratio = f"{row.ratio:.2f}x" if row.ratio is not None else "-"
        met = {True: "yes", False: "**no**", None: "-"}[row.met]
        figure = row.figure + (f" ({row.note})" if row.note else "")
        lines.append(f"| {row.bench} | {figure} | {_seconds(row.choirci)} | {anchor} | {ratio} | "
                     f"{row.target or '-'} | {met} |")
    return "\n".join(lines)


def machine_line(facts: dict[str, Any]) -> str:
    return (f"Measured {facts['date']} on {facts['cores']} cores, {facts['platform']}, "
            f"Python {facts['python']}, {facts['nix'] or 'no nix'}, {facts['cargo'] or 'no cargo'}.")
