"""Benchmark: a real crate's full suite, choirci vs raw ``cargo test``, in one run.

Debian's packaged regex 1.7.1 (``librust-regex-dev``, with its dev-dependencies from
``/usr/share/cargo/registry``; ``--tiny``: aho-corasick 0.7) is copied to a temporary
directory and built offline through a source replacement in the copy's own
``.cargo/config.toml`` (never the user's). Timed, each best of ``--repeat``, on the built tree:

* raw: ``cargo test --lib --tests`` (what ``rust.workspace: {kinds: [lib, test]}`` runs; doc
  tests are left out on both sides: rustdoc compiles each example, minutes for regex);
* choirci: ``pytest --grind`` with that config, serial and ``-n 2`` (``rust.run: per-binary``).

The bench fails unless choirci's outcomes equal raw ``cargo test``'s, name for name.

    .venv/bin/python bench/bench_real.py [--repeat 2] [--tiny] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import common
from common import Row, best, checked, fail
from rust_support import REGISTRY, debian_crate

RESULT = re.compile(r"^test (?P<name>.+?)(?: - should panic)? \.\.\. (?P<status>ok|FAILED|ignored)")
STATUS = {"ok": "passed", "FAILED": "failed", "ignored": "skipped"}
RUNNING = re.compile(r"^\s*Running (?:unittests )?(?P<src>\S+) \(")


def crate_copy(pattern: str, dest: Path, tiny: bool) -> tuple[Path, str]:
    root = debian_crate(pattern, dest)
    if root is None and tiny:
        # --tiny only proves the bench runs: Debian 13's registry has no aho-corasick 0.7
        # (and its 1.x lacks a dev-dependency), so a generated crate stands in there.
        root, name = generated(dest), "a generated crate (no Debian crate to test here)"
    elif root is None:
        fail(f"no {pattern} in {REGISTRY} (scripts/setup.sh installs Debian's librust-*-dev)")
    else:
        name = max(REGISTRY.glob(pattern)).name
    (root / "choirci.yaml").write_text("rust:\n  workspace:\n    kinds: [lib, test]\n")
    return root, name


def generated(dest: Path) -> Path:
    (dest / "src").mkdir(parents=True)
    (dest / "tests").mkdir()
    (dest / "Cargo.toml").write_text(f'[package]\nname = "{dest.name}"\nversion = "0.1.0"\n'
                                     'edition = "2021"\n\n[workspace]\n')
    (dest / "src" / "lib.rs").write_text("#[cfg(test)]\nmod tests {\n" + "".join(
        f"    #[test]\n    fn unit_{i}() {{ assert_eq!({i} + 1, {i + 1}); }}\n"
        for i in range(5)) + "}\n")
    (dest / "tests" / "api.rs").write_text("".join(
        f"#[test]\nfn api_{i}() {{ assert!({i} < 5); }}\n" for i in range(5)))
    return dest


def target_names(root: Path, env: dict[str, str]) -> dict[str, str]:
    """Source path (as cargo's "Running" line shows it) -> choirci's node-id segment: ``lib``
    for the library, else the target's name (regex's tests/test_default.rs is ``default``)."""
    done = checked(["cargo", "metadata", "--no-deps", "--format-version", "1"],
                   "cargo metadata", cwd=root, env=env)
    names = {}
    for target in json.loads(done.stdout)["packages"][0]["targets"]:
        source = Path(target["src_path"]).relative_to(root).as_posix()
        names[source] = "lib" if "lib" in target["kind"] else target["name"]
    return names


def raw_outcomes(stdout: str, names: dict[str, str]) -> dict[str, str]:
    """binary::test -> outcome, from raw ``cargo test`` output."""
    found: dict[str, str] = {}
    binary = ""
    for line in stdout.splitlines():
        running = RUNNING.match(line)
        if running:
            binary = names.get(running["src"], running["src"])
        match = RESULT.match(line)
        if match:
            found[f"{binary}::{match['name']}"] = STATUS[match["status"]]
    return found


def choirci_outcomes(evidence: Path, crate: str) -> dict[str, str]:
    record = json.loads((evidence / "choirci.json").read_text())
    prefix = f"rust::{crate}::"
    return {item["nodeid"].removeprefix(prefix): item["outcome"]
            for run in record["runs"] for item in run["items"]}


def run(args: argparse.Namespace) -> list[Row]:
    pattern, crate = ("aho-corasick-0.7.*", "aho-corasick") if args.tiny else \
        ("regex-1.7.1", "regex")
    env = dict(os.environ, CARGO_NET_OFFLINE="true")
    cargo_bin = Path.home() / ".cargo" / "bin"
    env["PATH"] = f"{cargo_bin}{os.pathsep}{env.get('PATH', '')}"
    env.pop("CARGO_TARGET_DIR", None)  # the copy's own target/
    with tempfile.TemporaryDirectory(prefix="choirci-bench-real-") as tmp:
        root, name = crate_copy(pattern, Path(tmp) / crate, args.tiny)
        started = time.perf_counter()
        checked(["cargo", "test", "--lib", "--tests", "--no-run"], f"building {name}",
                cwd=root, env=env)
        print(f"{name}: built lib and tests in {time.perf_counter() - started:.0f}s")
        raw_out: list[str] = []

        def raw() -> None:
            # One stream: cargo's "Running <binary>" lines (stderr) in order with the results.
            done = subprocess.run(["cargo", "test", "--lib", "--tests", "--", "--color", "never"],
                                  cwd=root, env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True, check=False)
            if done.returncode != 0:
                fail(f"raw cargo test of {name} failed ({done.returncode}): {done.stdout[-1500:]}")
            raw_out[:] = [done.stdout]

        evidence = Path(tmp) / "evidence"
        grind = [sys.executable, "-m", "pytest", "--grind", "-q", "-p", "no:cacheprovider",
                 "-p", "no:hypothesispytest", f"--evidence-dir={evidence}"]
        timed = {"raw": best(args.repeat, raw)}
        expected = raw_outcomes(raw_out[0], target_names(root, env))
        if not expected:
            fail(f"raw cargo test of {name} reported no tests")
        for label, extra in (("serial", []), ("-n 2", ["-n", "2"])):
            timed[label] = best(args.repeat, lambda extra=extra: checked(
                [*grind, *extra], f"pytest --grind {' '.join(extra)} on {name}", cwd=root,
                env=env))
            got = choirci_outcomes(evidence, crate)
            if got != expected:
                differ = sorted(set(got.items()) ^ set(expected.items()))[:5]
                fail(f"choirci {label} and raw cargo test differ on {name}: {differ}")
    binaries = len({key.split("::", 1)[0] for key in expected})
    what = (f"{name}, {len(expected)} tests in {binaries} "
            f"{'binary' if binaries == 1 else 'binaries'} (lib + tests)")
    for label, seconds in timed.items():
        print(f"  {label:<7} {seconds:7.2f}s")
    return [Row("real", f"{what}, rust.run: per-binary", timed["serial"], timed["raw"],
                "raw cargo test --lib --tests, built", note="outcomes equal name for name"),
            Row("real", f"{what}, -n 2", timed["-n 2"], timed["raw"],
                "raw cargo test --lib --tests, built",
                note=f"speed-up over serial {timed['serial'] / timed['-n 2']:.2f}x")]


if __name__ == "__main__":
    parser = common.parser(__doc__)
    parser.add_argument("--repeat", type=int, default=2)
    arguments = parser.parse_args()
    if arguments.tiny:
        arguments.repeat = 1
    raise SystemExit(common.main(run, arguments))
