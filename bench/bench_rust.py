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
  per run mode, every execution counted (each test appends to a file of its own); and, as
  the reference, the same number of Python tests of the same length in plain pytest, serial
  vs ``-n 2`` (what xdist's own start-up leaves of the speed-up on this machine).

``--work-ms`` makes every test sleep that long, for a feel of realistic tests; with 0 the
figures show choirci's fixed per-item cost against tests that take no time at all.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import best

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


def quiet(argv: list[str], cwd: Path, env: dict[str, str], ok: tuple[int, ...] = (0,)) -> None:
    result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if result.returncode not in ok:
        sys.exit(f"{' '.join(argv[:4])} ... failed ({result.returncode}):\n"
                 f"{result.stdout[-2000:]}{result.stderr[-2000:]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--binaries", type=int, default=10)
    parser.add_argument("--tests", type=int, default=200, help="tests per binary")
    parser.add_argument("--work-ms", type=int, default=0, help="sleep in every test")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--xdist-tests", type=int, default=200, help="tests in the -n 2 run")
    parser.add_argument("--xdist-ms", type=int, default=10, help="sleep in each of them")
    parser.add_argument("--tiny", action="store_true",
                        help="a seconds-long configuration (proves the bench runs)")
    parser.add_argument("--json", type=Path, help="also write the rows here as JSON (bench/run)")
    args = parser.parse_args()
    if args.tiny:
        args.binaries, args.tests, args.repeat, args.xdist_tests, args.xdist_ms = 2, 20, 1, 20, 1
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
    n = args.binaries * args.tests
    floor_name = f"pytest, {n} trivial Python items"
    rows = [
        _row(f"{n} trivial tests, rust.run: per-binary (default)", figures["choirci run"],
             floor, floor_name, "ratio <= 1.2", figures["choirci run"] <= 1.2 * floor),
        _row(f"{n} trivial tests, rust.run: per-test", figures["choirci run per-test"],
             floor, floor_name, note="one process per test"),
        _row(f"{n} trivial tests vs raw cargo test", figures["choirci run"], raw,
             "cargo test, built"),
        _row("collection (metadata, no-op compile, environment, listing)",
             figures["choirci collection"], None, "-", "< 1 s",
             figures["choirci collection"] < 1.0),
    ]
    rows += xdist(args, env)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


def _row(figure: str, choirci: float, anchor: float | None, anchor_name: str, target: str = "",
         met: bool | None = None, note: str = "") -> dict[str, object]:
    """One row as bench/run reads it (bench/common.py's Row)."""
    return {"bench": "rust", "figure": figure, "choirci": round(choirci, 3),
            "anchor": None if anchor is None else round(anchor, 3), "anchor_name": anchor_name,
            "target": target, "met": met, "note": note,
            "ratio": round(choirci / anchor, 3) if anchor else None}


def xdist(args: argparse.Namespace, env: dict[str, str]) -> list[dict[str, object]]:
    """-n 2 against serial on one binary of slow tests, executions counted."""
    rows = []
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
                def once(extra: list[str] = extra, grind: list[str] = grind, mode: str = mode,
                         label: str = label) -> None:
                    for old in counts.iterdir():
                        old.unlink()
                    quiet([*grind, *extra], root, env)
                    runs = {p.name: len(p.read_bytes()) for p in counts.iterdir()}
                    if len(runs) != args.xdist_tests or set(runs.values()) != {1}:
                        sys.exit(f"{mode} {label}: not every test ran exactly once: "
                                 f"{len(runs)} tests ran, counts {sorted(set(runs.values()))}")
                timed[label] = best(args.repeat, once)
                print(f"  {mode:<10} {label:<6} {timed[label]:7.3f}s  "
                      f"executions {args.xdist_tests} (each exactly once)")
            speedup = timed["serial"] / timed["-n 2"]
            print(f"  {mode:<10} speed-up -n 2 over serial: {speedup:.2f}x (target >= 1.6x)")
            rows.append(_row(f"-n 2, {args.xdist_tests} tests of {args.xdist_ms} ms, "
                             f"rust.run: {mode}", timed["-n 2"], timed["serial"], "serial",
                             "speed-up >= 1.6x (ratio <= 0.625)", speedup >= 1.6,
                             f"speed-up {speedup:.2f}x, each test executed once"))
        rows.append(ceiling(args, root, env))
    return rows


def ceiling(args: argparse.Namespace, root: Path, env: dict[str, str]) -> dict[str, object]:
    """What -n 2 gives plain pytest on the same number of Python tests of the same length,
    in the same run: the speed-up xdist's own start-up leaves on this machine."""
    py = root / "py"
    py.mkdir()
    (py / "test_sleep.py").write_text("import time\n\n" + "".join(
        f"def test_{i:04}():\n    time.sleep({args.xdist_ms / 1000})\n"
        for i in range(args.xdist_tests)))
    plain = [*PYTEST, "-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-q",
             str(py / "test_sleep.py")]
    serial = best(args.repeat, lambda: quiet(plain, root, env))
    parallel = best(args.repeat, lambda: quiet([*plain, "-n", "2"], root, env))
    speedup = serial / parallel
    print(f"  plain pytest serial {serial:7.3f}s  -n 2 {parallel:7.3f}s  speed-up {speedup:.2f}x")
    return _row(f"-n 2, {args.xdist_tests} Python tests of {args.xdist_ms} ms, plain pytest "
                "(reference: xdist's own start-up on this machine)", parallel, serial, "serial",
                note=f"speed-up {speedup:.2f}x")


if __name__ == "__main__":
    raise SystemExit(main())
