"""Benchmark: the same 50 host checks over SSH (ControlMaster reuse) vs ``local://``, one run.

Starts the plain test host (sshd on 127.0.0.1 + the example workspace's services as plain
processes, see tests/hostenv), writes a config whose checks add up to 50 items, then runs
``pytest --grind -m host`` once with ``--hosts=local://`` and once over SSH, alternating, and
reports the median wall time and the summed per-check time from the JUnit evidence.
Target: SSH within 1.5x of local.

    .venv/bin/python bench/bench_hosts.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from hostenv import build, services
from hostenv.fixtures import HostUnderTest, _start_plain_services
from hostenv.sshd import PlainSshd, free_port

TARGET_CHECKS = 50


def run_once(workdir: Path, hosts: str) -> tuple[float, float, int]:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--grind", "-m", "host", "-q", "-p", "no:cacheprovider",
         f"--hosts={hosts}"], cwd=workdir, capture_output=True, text=True,
    )
    wall = time.monotonic() - started
    if result.returncode != 0:
        raise SystemExit(f"checks failed against {hosts}:\n{result.stdout[-2000:]}")
    cases = ET.parse(workdir / "evidence" / "junit.xml").getroot().iter("testcase")
    times = [float(c.get("time", 0)) for c in cases]
    return wall, sum(times), len(times)


def pad_to_fifty(checks: dict[str, object]) -> dict[str, object]:
    # 21 items come from the other checks; protected paths make up the rest (one curl each).
    extra = TARGET_CHECKS - 21
    checks["protected_paths"] = [f"/bench/{i}" for i in range(extra)]
    return checks


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="choirci-bench-") as tmp:
        work = Path(tmp)
        binaries = build.build(work / "build")
        (work / "host").mkdir()
        sshd, procs = PlainSshd(work / "host"), services.Processes(work / "host")
        caddy = services.FakeCaddy("choir.test", free_port())
        try:
            sshd.start()
            checks = pad_to_fifty(_start_plain_services(work / "host", procs, binaries, caddy))
            host = HostUnderTest(f"ssh://{sshd.alias}?ssh_config={sshd.ssh_config}",
                                 sshd.ssh_config, sshd.alias, checks)
            (work / "run").mkdir()
            host.write_config(work / "run")
            report(work / "run", host.spec, args.rounds)
        finally:
            caddy.stop()
            procs.stop_all()
            sshd.stop()


def report(workdir: Path, ssh_spec: str, rounds: int) -> None:
    results: dict[str, list[tuple[float, float, int]]] = {"local": [], "ssh": []}
    for _ in range(rounds):
        results["local"].append(run_once(workdir, "local://"))
        results["ssh"].append(run_once(workdir, ssh_spec))
    medians = {}
    for name, runs in results.items():
        wall = statistics.median(r[0] for r in runs)
        checks = statistics.median(r[1] for r in runs)
        medians[name] = (wall, checks)
        print(f"{name:5s}: {runs[0][2]} checks, wall {wall:.2f}s (median of {rounds}), "
              f"check time {checks:.2f}s")
    ratio_wall = medians["ssh"][0] / medians["local"][0]
    ratio_checks = medians["ssh"][1] / medians["local"][1]
    print(f"ssh/local: wall {ratio_wall:.2f}x, check time {ratio_checks:.2f}x (target <= 1.5x)")


if __name__ == "__main__":
    main()
