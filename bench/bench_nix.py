#!/usr/bin/env python3
"""Benchmark: the closure loop through choirci vs the raw batched ``nix build --json``.

    .venv/bin/python bench/bench_nix.py [--fixture fixtures/choiros-mini] [--warm-runs 5]
                                        [--cold-runs 3] [--tiny] [--json PATH]

Copies of the workspace differ only in a nonce comment (so each gets its own, really cold
derivations): one of each pair is built by the raw CI command, the other through choirci's
``run_batch`` (dry run + path-info before/after + the same build); pairs alternate who goes
first and the medians are compared. Then one pair is run warm N times. A full ``pytest --grind -m nix`` run is timed as well, for the user's view
(it adds interpreter and pytest start-up). Targets: choirci adds < 0.5 s warm, < 5 % cold.
The store paths this creates are deleted at the end (``--keep`` keeps them).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import common
from common import Row, checked, fail

from choirci import proc
from choirci.config import load
from choirci.nix.adapter import EXPERIMENTAL, Nix
from choirci.nix.build import run_batch

OFFLINE = ("experimental-features = nix-command flakes\nsubstituters =\nsandbox = false\n"
           "build-users-group =\nflake-registry = {registry}")


def main() -> int:
    parser = common.parser(__doc__)
    parser.add_argument("--fixture", type=Path, default=REPO / "fixtures" / "choiros-mini")
    parser.add_argument("--warm-runs", type=int, default=5)
    parser.add_argument("--cold-runs", type=int, default=3,
                        help="cold pairs (fresh derivations each), order alternated; medians")
    parser.add_argument("--keep", action="store_true", help="keep the built store paths")
    args = parser.parse_args()
    if args.tiny:
        args.warm_runs, args.cold_runs = 1, 1
    return common.main(run, args)


def run(args: argparse.Namespace) -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="choirci-bench-") as tmp:
        base = Path(tmp)
        if "substituters =" not in os.environ.get("NIX_CONFIG", ""):
            (base / "registry.json").write_text('{"flakes": [], "version": 2}')
            os.environ["NIX_CONFIG"] = OFFLINE.format(registry=base / "registry.json")
        pairs = [(workspace(args.fixture, base / f"raw{i}"), workspace(args.fixture, base / f"ours{i}"))
                 for i in range(args.cold_runs)]
        try:
            figures = measure(pairs, args.warm_runs)
        finally:
            if not args.keep:
                cleanup(*(ws for pair in pairs for ws in pair))
        report(figures, args.cold_runs)
    return rows(figures, args.cold_runs, args.warm_runs)


def rows(f: dict[str, float], cold_runs: int, warm_runs: int) -> list[Row]:
    own_share = f["choirci_cold_own"] / f["raw_cold"]
    return [
        Row("nix", f"3 closures, cold build (median of {cold_runs})", f["choirci_cold"],
            f["raw_cold"], "raw batched nix build --json", "own calls < 5 % of the build",
            own_share < 0.05, f"choirci's own Nix calls: {f['choirci_cold_own']:.2f} s"),
        Row("nix", f"3 closures, warm (median of {warm_runs})", f["choirci_warm"], f["raw_warm"],
            "raw batched nix build --json", "added < 0.5 s",
            f["choirci_warm"] - f["raw_warm"] < 0.5),
        Row("nix", "pytest --grind -m nix, warm, whole process", f["pytest_warm"], f["raw_warm"],
            "raw batched nix build --json", note="adds interpreter and pytest start-up"),
    ]


def workspace(fixture: Path, root: Path) -> Path:
    shutil.copytree(fixture, root, ignore=shutil.ignore_patterns("target", "evidence", "result*"))
    marker = next(root.glob("shared-types/src/lib.rs"), None) or next(root.rglob("*.rs"))
    marker.write_text(marker.read_text() + f"\n// bench nonce {uuid.uuid4().hex}\n")
    git = ["git", "-c", "user.email=b@b", "-c", "user.name=b"]
    for argv in (["git", "init", "-q", "."], ["git", "add", "-A"], [*git, "commit", "-qm", "bench"]):
        subprocess.run(argv, cwd=root, check=True)
    return root


def measure(pairs: list[tuple[Path, Path]], warm_runs: int) -> dict[str, float]:
    config = load(pairs[0][1] / "choirci.yaml")
    installables = [c.installable for c in config.closures]
    raw_argv = ["nix", *EXPERIMENTAL, "build", "--json", "--no-link", "--keep-going",
                "--print-build-logs", *installables]

    def raw(ws: Path) -> Callable[[], None]:
        return lambda: checked(raw_argv, "raw nix build", cwd=ws) and None

    def ours(ws: Path) -> Callable[[], None]:
        def go() -> None:
            started = time.perf_counter()
            run = run_batch(Nix(cwd=ws), load(ws / "choirci.yaml").closures)
            extra.append(time.perf_counter() - started - build_seconds.pop())
            bad = [r.message for r in run.results.values() if r.status != "ok"]
            if bad:
                fail(f"choirci's batch build failed: {bad}")
        return go

    raw_cold: list[float] = []
    ours_cold: list[float] = []
    extra: list[float] = []  # choirci's time outside its (identical) build call
    build_seconds: list[float] = []
    real_run = proc.run

    def watched(argv: list[str], **kwargs: object) -> proc.CommandResult:
        result = real_run(argv, **kwargs)  # type: ignore[arg-type]
        if "build" in argv and "--dry-run" not in argv:
            build_seconds.append(result.duration)
        return result

    proc.run = watched  # type: ignore[assignment]
    for index, (raw_ws, ours_ws) in enumerate(pairs):
        # Alternate who goes first: the machine's load drifts, and so does the page cache.
        if index % 2 == 0:
            raw_cold.append(timed(raw(raw_ws)))
            ours_cold.append(timed(ours(ours_ws)))
        else:
            ours_cold.append(timed(ours(ours_ws)))
            raw_cold.append(timed(raw(raw_ws)))
    raw_ws, ours_ws = pairs[0]
    timed(raw(raw_ws)), timed(ours(ours_ws))  # settle eval caches before the warm series
    figures = {
        "choirci_cold_own": statistics.median(extra[:len(pairs)]),
        "raw_cold": statistics.median(raw_cold), "choirci_cold": statistics.median(ours_cold),
        "raw_warm": statistics.median(timed(raw(raw_ws)) for _ in range(warm_runs)),
        "choirci_warm": statistics.median(timed(ours(ours_ws)) for _ in range(warm_runs)),
    }

    def pytest_run() -> None:
        checked([sys.executable, "-m", "pytest", "--grind", "-m", "nix", "-q",
                 "-p", "no:cacheprovider"], "pytest --grind -m nix", cwd=ours_ws)

    figures["pytest_warm"] = statistics.median(timed(pytest_run) for _ in range(max(1, warm_runs // 2)))
    return figures


def timed(fn: Callable[[], None]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def report(f: dict[str, float], cold_runs: int) -> None:
    cold_ratio = f["choirci_cold"] / f["raw_cold"]
    warm_added = f["choirci_warm"] - f["raw_warm"]
    print(f"{'':24}{'raw nix build':>16}{'choirci':>12}{'ratio':>8}{'added':>10}")
    print(f"{f'cold (median of {cold_runs})':24}{f['raw_cold']:>15.2f}s{f['choirci_cold']:>11.2f}s"
          f"{cold_ratio:>8.3f}{f['choirci_cold'] - f['raw_cold']:>9.2f}s")
    print(f"{'warm (median)':24}{f['raw_warm']:>15.3f}s{f['choirci_warm']:>11.3f}s"
          f"{f['choirci_warm'] / f['raw_warm']:>8.2f}{warm_added:>9.3f}s")
    own = f["choirci_cold_own"]
    print(f"{'choirci own calls, cold':24}{'':>16}{own:>11.2f}s   (dry run, path-info x2, version: "
          f"{own / f['raw_cold']:.1%} of the raw cold build)")
    print(f"{'pytest --grind -m nix':24}{'':>16}{f['pytest_warm']:>11.3f}s   (warm, whole process)")
    print(f"target: warm added < 0.5 s: {'met' if warm_added < 0.5 else 'MISSED'}; "
          f"cold added < 5 %: {'met' if cold_ratio < 1.05 else 'MISSED'} by wall clock, "
          f"{'met' if own / f['raw_cold'] < 0.05 else 'MISSED'} by choirci's own calls "
          "(wall clock of a cold build varies by more than 5 % run to run on a busy machine)")
    print(json.dumps({k: round(v, 4) for k, v in f.items()}))


def cleanup(*workspaces: Path) -> None:
    for ws in workspaces:
        config = load(ws / "choirci.yaml")
        out = subprocess.run(["nix", *EXPERIMENTAL, "build", "--json", "--no-link",
                              *[c.installable for c in config.closures]],
                             cwd=ws, capture_output=True, text=True, check=False)
        paths = [p for e in json.loads(out.stdout or "[]") for p in e["outputs"].values()]
        if paths:
            subprocess.run(["nix", *EXPERIMENTAL, "store", "delete", *paths],
                           capture_output=True, check=False)


if __name__ == "__main__":
    raise SystemExit(main())
