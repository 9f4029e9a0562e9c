"""Benchmark: the same host checks over SSH (ControlMaster reuse) vs ``local://``, one run.

Builds the example workspace's binaries and starts the plain test host in a temporary
directory (sshd on 127.0.0.1, the services as plain processes, a clean workspace checkout and
GC roots: tests/hostenv's ``plain_environment``), writes a config whose checks add up to
about 50 items, then runs ``pytest --grind -m host`` with ``--hosts=local://`` and over SSH,
alternating, and compares the median wall times. Nothing of the machine it runs on is
checked. Target: SSH within 1.5x of local.

    .venv/bin/python bench/bench_hosts.py [--rounds 3] [--tiny] [--json PATH]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "bench"))

import common
from common import Row, checked
from hostenv import build
from hostenv.fixtures import plain_environment

TARGET_CHECKS = 50


def run_once(workdir: Path, hosts: str) -> tuple[float, float, int]:
    started = time.monotonic()
    checked([sys.executable, "-m", "pytest", "--grind", "-m", "host", "-q",
             "-p", "no:cacheprovider", f"--hosts={hosts}"], f"the host checks against {hosts}",
            cwd=workdir)
    wall = time.monotonic() - started
    cases = ET.parse(workdir / "evidence" / "junit.xml").getroot().iter("testcase")
    times = [float(c.get("time", 0)) for c in cases]
    return wall, sum(times), len(times)


def pad(checks: dict[str, object], target: int) -> dict[str, object]:
    # About 21 items come from the other checks; protected paths make up the rest (one curl each).
    checks["protected_paths"] = [f"/bench/{i}" for i in range(max(0, target - 21))]
    return checks


def main() -> int:
    parser = common.parser(__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if args.tiny:
        args.rounds = 1
    return common.main(run, args)


def run(args: argparse.Namespace) -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="choirci-bench-") as tmp:
        work = Path(tmp)
        binaries = build.build(work / "build")
        (work / "host").mkdir()
        with plain_environment(work / "host", binaries) as host:
            host.checks = pad(dict(host.checks), 21 if args.tiny else TARGET_CHECKS)
            (work / "run").mkdir()
            host.write_config(work / "run")
            return measure(work / "run", host.spec, args.rounds)


def measure(workdir: Path, ssh_spec: str, rounds: int) -> list[Row]:
    results: dict[str, list[tuple[float, float, int]]] = {"local": [], "ssh": []}
    for _ in range(rounds):
        results["local"].append(run_once(workdir, "local://"))
        results["ssh"].append(run_once(workdir, ssh_spec))
    wall = {name: statistics.median(r[0] for r in runs) for name, runs in results.items()}
    own = {name: statistics.median(r[1] for r in runs) for name, runs in results.items()}
    count = results["ssh"][0][2]
    return [
        Row("hosts", f"{count} host checks, whole run (median of {rounds})", wall["ssh"],
            wall["local"], "the same checks on local://", "ratio <= 1.5",
            wall["ssh"] / wall["local"] <= 1.5, "over SSH with ControlMaster reuse"),
        Row("hosts", f"{count} host checks, summed check time", own["ssh"], own["local"],
            "the same checks on local://"),
    ]


if __name__ == "__main__":
    raise SystemExit(main())
