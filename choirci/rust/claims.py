"""Exactly once across xdist workers: a worker claims the tests of a binary it is about to
run (its queue, topped up to its share of the binary); a test another worker already
claimed is not run again but read from that worker's result. This covers the tests a
worker claimed for another's queue, an item ``--dist worksteal`` moves after its batch
ran, and doc tests, which run as one batch per crate.

Files in the run's directory (the controller's, see :mod:`choirci.rust.sharing`):
``<key>.lock`` guards ``<key>.claims.json`` (test -> ``worker:claim``); the claimer holds
an exclusive lock on ``<claim>.running`` until ``<claim>.json`` (its run) is written, so a
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
                load: Callable[[str], T], *, pool: Sequence[str] = (), workers: int = 1,
                worker: str = "") -> tuple[T | None, dict[str, T | None]]:
    """Run ``compute`` on the names no other worker claimed; return (own run or None,
    {name: the other worker's run, or None when that worker died} for the rest).

    With ``pool`` (every test of the binary this run executes, the same on every worker),
    the claim is topped up to ``worker``'s fair share of what is still unclaimed: 1/k of it,
    k = the ``workers`` that have not claimed any yet (this one counted). Each worker then
    runs about its share of the binary in one process, all at once, instead of one batch
    per refill of its queue that xdist sends a few items at a time. Its own queue comes
    first; the top-up takes from the end of the pool, which xdist sends last."""
    directory.mkdir(parents=True, exist_ok=True)
    table = directory / f"{key}.claims.json"
    claim = f"{worker}:{uuid.uuid4().hex}"
    own = None
    with ExitStack() as running:
        with _locked(directory / f"{key}.lock", fcntl.LOCK_EX):
            claims: dict[str, str] = json.loads(table.read_text()) if table.exists() else {}
            mine = list(dict.fromkeys(name for name in names if name not in claims))
            mine += _top_up(pool, claims, mine, workers, worker)
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


@contextmanager
def exclusively(path: Path) -> Iterator[None]:
    """Held by one process at a time (an exclusive lock on ``path``), across workers."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with _locked(path, fcntl.LOCK_EX):
        yield


def _top_up(pool: Sequence[str], claims: dict[str, str], mine: list[str], workers: int,
            worker: str) -> list[str]:
    """The unclaimed names (from the end of ``pool``) that make ``mine`` this worker's share."""
    unclaimed = [name for name in dict.fromkeys(pool) if name not in claims]
    if not unclaimed:
        return []
    others = {owner.split(":", 1)[0] for owner in claims.values()} - {worker}
    left = max(1, workers - len(others))
    share = -(-len(unclaimed) // left)
    taken = set(mine)
    extra = [name for name in reversed(unclaimed) if name not in taken]
    return extra[: max(0, share - len(mine))]


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".tmp-{uuid.uuid4().hex}")
    tmp.write_text(text)
    os.replace(tmp, path)
