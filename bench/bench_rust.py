"""Benchmark the rust area: ~2,000 libtest tests in 10 binaries, choirci vs raw, in one run.

    .venv/bin/python bench/bench_rust.py [--binaries 10] [--tests 200] [--work-ms 0]

Generates a zero-dependency crate in a temporary directory, builds its test binaries once,
then times (each best of ``--repeat``):

* raw binaries: each already-built test binary executed once, as cargo would;
* raw cargo test: ``cargo test --offline`` on the already-built tree (no-op build + run);
* choirci collection: ``pytest --grind --collect-only`` (cargo metadata, no-op compile,
  listing every binary);
* choirci run: ``pytest --grind -q`` (collection + one run per binary + one item per test).

``--work-ms`` makes every test sleep that long, for a feel of realistic tests; with 0 the
figures show choirci's fixed per-item cost against tests that take no time at all.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

PYTEST = [sys.executable, "-m", "pytest"]


def generate(root: Path, binaries: int, tests: int, work_ms: int) -> None:
    (root / "src").mkdir(parents=True)
    (root / "tests").mkdir()
    (root / "Cargo.toml").write_text(
        '[package]\nname = "benchcrate"\nversion = "0.1.0"\nedition = "2021"\n\n[workspace]\n'
    )
    (root / "src" / "lib.rs").write_text("pub fn add(a: u64, b: u64) -> u64 { a + b }\n")
    body = (f"std::thread::sleep(std::time::Duration::from_millis({work_ms}));"
            if work_ms else "")
    for b in range(binaries):
        fns = "".join(
            f"#[test]\nfn test_{t:04}() {{ {body} assert_eq!(benchcrate::add({t}, 1), {t + 1}); }}\n"
            for t in range(tests)
        )
        (root / "tests" / f"bin_{b:02}.rs").write_text(fns)
    targets = "".join(f"    - {{crate: benchcrate, test: bin_{b:02}}}\n" for b in range(binaries))
    (root / "choirci.yaml").write_text(f"rust:\n  targets:\n{targets}")


def executables(root: Path, env: dict[str, str]) -> list[str]:
    import json

    out = subprocess.run(
        ["cargo", "test", "--offline", "--no-run", "--message-format=json"],
        cwd=root, env=env, check=True, capture_output=True, text=True,
    ).stdout
    found = []
    for line in out.splitlines():
        message = json.loads(line)
        if message.get("executable") and "test" in message["target"]["kind"]:
            found.append(message["executable"])
    return sorted(found)


def best(repeat: int, action: Callable[[], None]) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return min(times)


def quiet(argv: list[str], cwd: Path, env: dict[str, str], ok: tuple[int, ...] = (0,)) -> None:
    result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if result.returncode not in ok:
        sys.exit(f"{' '.join(argv[:4])} ... failed ({result.returncode}):\n"
                 f"{result.stdout[-2000:]}{result.stderr[-2000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--binaries", type=int, default=10)
    parser.add_argument("--tests", type=int, default=200, help="tests per binary")
    parser.add_argument("--work-ms", type=int, default=0, help="sleep in every test")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    env = dict(os.environ, CARGO_NET_OFFLINE="true")
    cargo_bin = Path.home() / ".cargo" / "bin"
    env["PATH"] = f"{cargo_bin}{os.pathsep}{env.get('PATH', '')}"
    with tempfile.TemporaryDirectory(prefix="choirci-bench-") as tmp:
        root = Path(tmp) / "ws"
        generate(root, args.binaries, args.tests, args.work_ms)
        started = time.perf_counter()
        bins = executables(root, env)
        print(f"generated {args.binaries} binaries x {args.tests} tests, "
              f"built in {time.perf_counter() - started:.1f}s")
        # Plugins that are not choirci and only add start-up time (hypothesis: ~1.8 s).
        grind = [*PYTEST, "--grind", "-p", "no:cacheprovider", "-p", "no:hypothesispytest",
                 f"--evidence-dir={Path(tmp) / 'evidence'}"]
        figures = {
            "raw binaries": best(args.repeat, lambda: [quiet([b], root, env) for b in bins]),
            "raw cargo test": best(args.repeat, lambda: quiet(
                ["cargo", "test", "--offline", "-q"], root, env)),
            "choirci collection": best(args.repeat, lambda: quiet(
                [*grind, "--collect-only", "-q"], root, env)),
            "choirci run": best(args.repeat, lambda: quiet([*grind, "-q"], root, env)),
            "pytest startup only": best(args.repeat, lambda: quiet(
                [*PYTEST, "--version"], root, env)),
        }
    for name, seconds in figures.items():
        print(f"  {name:<22} {seconds:7.3f}s")
    raw = figures["raw cargo test"]
    print(f"  ratio choirci run / raw cargo test: {figures['choirci run'] / raw:.2f}x")
    print(f"  ratio choirci run / raw binaries:   {figures['choirci run'] / figures['raw binaries']:.2f}x")


if __name__ == "__main__":
    main()
