"""xdist workers share one batch through a file in the temp dir; files of runs that ended
long ago are pruned when a new batch is written (only the controller knows when a run ends,
and it never loads the closures area). Layer 1: plain files in tmp_path.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from choirci.nix.closures import STALE_BATCH_SECONDS, prune_stale_batches


def test_prune_removes_only_old_shared_batches(tmp_path: Path) -> None:
    old = tmp_path / "choirci-closures-aaa.json"
    fresh = tmp_path / "choirci-closures-bbb.json"
    other = tmp_path / "something-else.json"
    for path in (old, fresh, other):
        path.write_text("{}")
    long_ago = time.time() - STALE_BATCH_SECONDS - 60
    os.utime(old, (long_ago, long_ago))
    os.utime(other, (long_ago, long_ago))
    prune_stale_batches(tmp_path)
    assert not old.exists()
    assert fresh.exists() and other.exists()


def test_prune_of_an_empty_or_missing_dir_is_quiet(tmp_path: Path) -> None:
    prune_stale_batches(tmp_path)
    prune_stale_batches(tmp_path / "missing")
