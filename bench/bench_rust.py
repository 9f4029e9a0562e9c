"""Benchmark the rust area: ~2,000 libtest tests in 10 binaries, choirci vs raw, in one run.

    .venv/bin/python bench/bench_rust.py [--binaries 10] [--tests 200] [--work-ms 0]

Generates a zero-dependency crate in a temporary directory, builds its test binaries once,
then times (each best of ``--repeat``):

* raw binaries: each already-built test binary executed once, as cargo would;
* raw cargo test: ``cargo test --offline`` on the already-built tree (no-op build + run);
* choirci collection: ``pytest --grind --collect-only`` (cargo metadata, no-op compile,
  listing every binary);
* choirci run: ``pytest --grind -q`` (collection + one run per binary + one item per test),
  with ``rust.run: per-binary`` (the default) and ``per-test`` (one process per test);
* pytest's own floor: the same number of trivial Python test items in plain pytest;
* xdist: ``--xdist-tests`` tests of ``--xdist-ms`` each in one binary, serial vs ``-n 2``,
  per run mode, every execution counted (each test appends to a file of its own).

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


COUNT = """fn record(name: &str) {
    use std::io::Write;
    if let Ok(dir) = std::env::var("BENCH_COUNT_DIR") {
        let path = format!("{dir}/{name}");
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
        f.write_all(b"x").unwrap();
    }
}
"""


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
    for mode in ("per-binary", "per-test"):
        (root / f"{mode}.yaml").write_text(f"rust:\n  run: {mode}\n  targets:\n{targets}")
    (root / "choirci.yaml").write_text(f"rust:\n  targets:\n{targets}")
    (root / "py").mkdir()
    (root / "py" / "test_floor.py").write_text("".join(
        f"def test_{i:05}():\n    assert {i} + 1 == {i + 1}\n" for i in range(binaries * tests)))


def generate_xdist(root: Path, tests: int, work_ms: int) -> None:
    """One binary of ``tests`` tests that sleep ``work_ms`` and count their executions."""
    (root / "src").mkdir(parents=True)
    (root / "tests").mkdir()
    (root / "Cargo.toml").write_text(
        '[package]\nname = "benchx"\nversion = "0.1.0"\nedition = "2021"\n\n[workspace]\n')
    (root / "src" / "lib.rs").write_text("")
    fns = "".join(
        f"#[test]\nfn t_{t:04}() {{ record(\"t_{t:04}\"); "
        f"std::thread::sleep(std::time::Duration::from_millis({work_ms})); }}\n"
        for t in range(tests))
    (root / "tests" / "slow.rs").write_text(COUNT + fns)
    for mode in ("per-binary", "per-test"):
        (root / f"{mode}.yaml").write_text(
            f"rust:\n  run: {mode}\n  targets:\n    - {{crate: benchx, test: slow}}\n")


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
    parser.add_argument("--xdist-tests", type=int, default=200, help="tests in the -n 2 run")
    parser.add_argument("--xdist-ms", type=int, default=10, help="sleep in each of them")
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
        plain = [*PYTEST, "-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-q"]
        figures = {
            "raw binaries": best(args.repeat, lambda: [quiet([b], root, env) for b in bins]),
            "raw cargo test": best(args.repeat, lambda: quiet(
                ["cargo", "test", "--offline", "-q"], root, env)),
            "choirci collection": best(args.repeat, lambda: quiet(
                [*grind, "--collect-only", "-q"], root, env)),
            "choirci run": best(args.repeat, lambda: quiet([*grind, "-q"], root, env)),
            "choirci run per-test": best(args.repeat, lambda: quiet(
                [*grind, "-q", f"--choirci-config={root / 'per-test.yaml'}"], root, env)),
            "pytest floor": best(args.repeat, lambda: quiet(
                [*plain, str(root / "py" / "test_floor.py")], root, env)),
            "pytest startup only": best(args.repeat, lambda: quiet(
                [*PYTEST, "--version"], root, env)),
        }
    for name, seconds in figures.items():
        print(f"  {name:<22} {seconds:7.3f}s")
    raw = figures["raw cargo test"]
    floor = figures["pytest floor"]
    print(f"  ratio choirci run / raw cargo test: {figures['choirci run'] / raw:.2f}x")
    print(f"  ratio choirci run / raw binaries:   {figures['choirci run'] / figures['raw binaries']:.2f}x")
    print(f"  ratio choirci run / pytest floor:   {figures['choirci run'] / floor:.2f}x "
          f"(per-test: {figures['choirci run per-test'] / floor:.2f}x; target <= 1.2x)")
    xdist(args, env)


def xdist(args: argparse.Namespace, env: dict[str, str]) -> None:
    """-n 2 against serial on one binary of slow tests, executions counted."""
    with tempfile.TemporaryDirectory(prefix="choirci-bench-x-") as tmp:
        root = Path(tmp) / "ws"
        generate_xdist(root, args.xdist_tests, args.xdist_ms)
        executables(root, env)
        counts = Path(tmp) / "counts"
        counts.mkdir()
        env = dict(env, BENCH_COUNT_DIR=str(counts))
        print(f"xdist: {args.xdist_tests} tests of {args.xdist_ms} ms in one binary")
        for mode in ("per-binary", "per-test"):
            grind = [*PYTEST, "--grind", "-p", "no:cacheprovider", "-p", "no:hypothesispytest",
                     "-q", f"--evidence-dir={Path(tmp) / 'evidence'}",
                     f"--choirci-config={root / f'{mode}.yaml'}"]
            timed = {}
            for label, extra in (("serial", []), ("-n 2", ["-n", "2"])):
                def once(extra: list[str] = extra) -> None:
                    for old in counts.iterdir():
                        old.unlink()
                    quiet([*grind, *extra], root, env)
                timed[label] = best(args.repeat, once)
                runs = sorted({len(p.read_bytes()) for p in counts.iterdir()})
                executed = sum(len(p.read_bytes()) for p in counts.iterdir())
                print(f"  {mode:<10} {label:<6} {timed[label]:7.3f}s  executions {executed} "
                      f"(per test: {runs})")
            print(f"  {mode:<10} speed-up -n 2 over serial: {timed['serial'] / timed['-n 2']:.2f}x "
                  "(target >= 1.6x)")


if __name__ == "__main__":
    main()
