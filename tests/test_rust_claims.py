"""How xdist workers share a binary's tests (choirci.rust.claims): each runs its own queue
plus its fair share of what nobody claimed, so the binary runs in about one process per
worker, all at once, and every test exactly once. The end-to-end counts are in
test_rust_xdist.py; here the arithmetic, with the real lock files."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

from choirci.rust.claims import run_claimed

POOL = [f"t{i}" for i in range(10)]


def claim(directory: Path, names: list[str], worker: str, workers: int = 2,
          pool: list[str] = POOL) -> tuple[list[str] | None, dict[str, list[str] | None]]:
    """One worker's claim; its 'run' is the list of names it was asked to run."""
    return run_claimed(directory, "bin", names, lambda mine: list(mine), json.dumps, json.loads,
                       pool=pool, workers=workers, worker=worker)


def test_the_first_worker_takes_its_queue_and_tops_up_from_the_end(tmp_path: Path) -> None:
    own, others = claim(tmp_path, ["t0", "t2", "t4"], "gw0")
    assert own == ["t0", "t2", "t4", "t9", "t8"]  # half of 10: its queue, then the last ones
    assert others == {}


def test_the_last_worker_takes_everything_left(tmp_path: Path) -> None:
    claim(tmp_path, ["t0", "t2", "t4"], "gw0")
    own, others = claim(tmp_path, ["t1", "t3"], "gw1")
    assert own == ["t1", "t3", "t7", "t6", "t5"]
    # gw0 is later handed t5 (gw1 ran it) and t8 (its own run has it): read, never run again.
    own, others = claim(tmp_path, ["t5"], "gw0")
    assert own is None and others == {"t5": ["t1", "t3", "t7", "t6", "t5"]}


def test_a_queue_larger_than_the_share_is_claimed_whole(tmp_path: Path) -> None:
    """--dist loadscope sends a whole binary to one worker: it runs it in one process."""
    own, _ = claim(tmp_path, POOL, "gw0")
    assert own == POOL


def test_the_share_follows_the_workers_that_have_not_claimed(tmp_path: Path) -> None:
    own, _ = claim(tmp_path, ["t0"], "gw0", workers=4)
    assert own == ["t0", "t9", "t8"]  # ceil(10 / 4)
    own, _ = claim(tmp_path, ["t1"], "gw1", workers=4)
    assert own == ["t1", "t7", "t6"]  # ceil(7 / 3)
    # gw0 again: two others claimed, so 4 - 2 = 2 workers share the 4 left.
    own, _ = claim(tmp_path, ["t2"], "gw0", workers=4)
    assert own == ["t2", "t5"]


def test_without_a_pool_only_the_queue_is_claimed(tmp_path: Path) -> None:
    own, _ = claim(tmp_path, ["t0", "t1"], "gw0", pool=[])
    assert own == ["t0", "t1"]


def _worker(directory: str, names: list[str], worker: str, out: str) -> None:
    own, others = claim(Path(directory), names, worker)
    Path(out).write_text(json.dumps({"own": own, "others": sorted(others)}))


def test_concurrent_workers_run_each_test_once(tmp_path: Path) -> None:
    """Two processes claiming at once with overlapping queues: every test in exactly one run."""
    context = multiprocessing.get_context("spawn")
    outs = [tmp_path / "gw0.json", tmp_path / "gw1.json"]
    queues = [POOL[:6], POOL[4:]]
    procs = [context.Process(target=_worker, args=(str(tmp_path / "claims"), queue, f"gw{n}",
                                                   str(outs[n])))
             for n, queue in enumerate(queues)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=60)
        assert proc.exitcode == 0
    results = [json.loads(out.read_text()) for out in outs]
    ran = [name for result in results for name in (result["own"] or [])]
    assert sorted(ran) == sorted(POOL)  # each exactly once, between them
    for result, queue in zip(results, queues, strict=True):
        assert set(queue) <= set(result["own"] or []) | set(result["others"])
