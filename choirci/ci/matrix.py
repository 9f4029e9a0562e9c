"""The GitHub Actions matrix: the grind run cut into shards whose union is the whole run.

A shard is one ``pytest --grind`` selection: ``--area`` so that a shard never collects (or
compiles) another area's items, plus ``--closure NAME`` for the one-closure shards, because
closures are the expensive, independent builds worth spreading over runners. Every other
area is one shard. Each shard's job exports ``CHOIRCI_SHARD=<name>`` and
``CHOIRCI_EXPECTED_SHARDS=<all names>`` so that the merged evidence knows when a shard is
missing (a gate never passes by omission).

The matrix is a pure function of the config: same config, same JSON, byte for byte. Shards
follow the area order of :mod:`choirci.areas`, closures in config order.

JSON printed and written to ``$GITHUB_OUTPUT`` (``matrix=``, compact, one line)::

    {"include": [{"shard": "closure-sandbox", "area": "closures",
                  "args": "--grind --area closures --closure sandbox",
                  "expected_shards": "closure-sandbox,...,rust"}, ...]}
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from choirci import areas as areas_mod
from choirci.config import Config
from choirci.errors import ChoirciError

CLOSURE_PREFIX = "closure-"

@dataclass(frozen=True)
class Shard:
    name: str
    area: str
    args: tuple[str, ...]

    def to_json(self, expected: Iterable[str]) -> dict[str, str]:
        return {
            "shard": self.name,
            "area": self.area,
            "args": shlex.join(self.args),
            "expected_shards": ",".join(expected),
        }


def shards(cfg: Config, areas: Iterable[str] | None = None,
           config_arg: str | None = None) -> tuple[Shard, ...]:
    """The shards for ``cfg``; ``config_arg`` is passed on as ``--choirci-config``."""
    if config_arg is not None and shlex.quote(config_arg) != config_arg:
        # The workflow splits a shard's args on whitespace (no shell parsing of data).
        raise ChoirciError(
            f"--choirci-config {config_arg!r}: a path with spaces or quotes cannot be passed "
            "to the shards; use a plain path"
        )
    base = ("--grind",) + (("--choirci-config", config_arg) if config_arg else ())
    out: list[Shard] = []
    for area in areas_mod.NAMES if areas is None else areas:
        if not _has_items(area, cfg):
            continue
        if area == "closures":
            out += [
                Shard(f"{CLOSURE_PREFIX}{c.name}", area,
                      (*base, "--area", area, "--closure", c.name))
                for c in cfg.closures
            ]
        else:
            out.append(Shard(area, area, (*base, "--area", area)))
    _check_unique(out)
    return tuple(out)


def _has_items(area: str, cfg: Config) -> bool:
    check = areas_mod.get(area).has_items if area in areas_mod.NAMES else None
    return True if check is None else check(cfg)


def _check_unique(found: list[Shard]) -> None:
    seen: set[str] = set()
    for shard in found:
        if shard.name in seen:
            raise ChoirciError(f"two matrix shards are both named {shard.name!r}; rename one")
        seen.add(shard.name)


def matrix(found: Iterable[Shard]) -> dict[str, Any]:
    found = tuple(found)
    names = [shard.name for shard in found]
    return {"include": [shard.to_json(names) for shard in found]}


def render(data: Mapping[str, Any], compact: bool = False) -> str:
    if compact:
        return json.dumps(data, sort_keys=True, separators=(",", ":"))
    return json.dumps(data, sort_keys=True, indent=2)


def github_output_lines(found: Iterable[Shard]) -> list[str]:
    """``key=value`` lines for ``$GITHUB_OUTPUT``: the matrix, the shard list and its size."""
    found = tuple(found)
    return [
        f"matrix={render(matrix(found), compact=True)}",
        f"shards={','.join(shard.name for shard in found)}",
        f"count={len(found)}",
    ]


def write_github_output(path: Path, found: Iterable[Shard]) -> None:
    # Appended, never rewritten: other steps of the same job may have written outputs.
    try:
        with path.open("a", encoding="utf-8") as handle:
            handle.write("".join(line + "\n" for line in github_output_lines(found)))
    except OSError as exc:
        raise ChoirciError(f"cannot write $GITHUB_OUTPUT {path}: {exc.strerror}") from None
