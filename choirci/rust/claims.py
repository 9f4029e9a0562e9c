"""Exactly once across xdist workers: a worker claims the tests of a binary it is about to
run; a test another worker already claimed is not run again but read from that worker's
result. xdist gives each item to one worker, but ``--dist worksteal`` can move an item
that a worker already ran as part of a batch (it was still in the worker's queue), and
doc tests run as one batch per crate; claims cover both.

Files in one directory per run (the pytest cache, keyed by xdist's ``testrunuid``):
``<key>.lock`` guards ``<key>.claims.json`` (test -> claim id); the claimer holds an
exclusive lock on ``<claim>.running`` until ``<claim>.json`` (its run) is written, so a
waiter blocks on that lock, and finds no result only when the claimer died. Never imports
pytest.
"""

from __future__ import annotations

import fcntl
import json
import os
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import IO, TypeVar

T = TypeVar("T")


@contextmanager
def _locked(path: Path, mode: int) -> Iterator[IO[str]]:
    with open(path, "a") as handle:
        fcntl.flock(handle, mode)
        yield handle


def run_claimed(directory: Path, key: str, names: Sequence[str],
                compute: Callable[[list[str]], T], dump: Callable[[T], str],
                load: Callable[[str], T]) -> tuple[T | None, dict[str, T | None]]:
    """Run ``compute`` on the names no other worker claimed; return (own run or None,
    {name: the other worker's run, or None when that worker died} for the rest)."""
    directory.mkdir(parents=True, exist_ok=True)
    table = directory / f"{key}.claims.json"
    claim = uuid.uuid4().hex
    own = None
    with ExitStack() as running:
        with _locked(directory / f"{key}.lock", fcntl.LOCK_EX):
            claims: dict[str, str] = json.loads(table.read_text()) if table.exists() else {}
            mine = [name for name in names if name not in claims]
            others = {name: claims[name] for name in names if name in claims}
            if mine:
                claims.update(dict.fromkeys(mine, claim))
                _write(table, json.dumps(claims))
                # Held until our result is written: waiters block on it.
                running.enter_context(_locked(directory / f"{claim}.running", fcntl.LOCK_EX))
        if mine:
            own = compute(mine)
            _write(directory / f"{claim}.json", dump(own))
    found: dict[str, T | None] = {}
    runs: dict[str, T | None] = {}
    for name, other in others.items():
        if other not in runs:
            with _locked(directory / f"{other}.running", fcntl.LOCK_SH):
                result = directory / f"{other}.json"
                runs[other] = load(result.read_text()) if result.exists() else None
        found[name] = runs[other]
    return own, found


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".tmp-{uuid.uuid4().hex}")
    tmp.write_text(text)
    os.replace(tmp, path)
