"""Closure items with real Nix, as a user runs them (``pytest --grind`` in a subprocess).

Layer 4: real ``nix build`` of tiny flakes in a git checkout; a local ``file://`` binary cache
stands in for FlakeHub (no network here). Every workspace has its own nonce, so builds are
cold and the only store paths a test deletes are its own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from nix_support import commit, make_workspace, one, properties, run_nix, use_nix

pytestmark = pytest.mark.slow

CONFIG = """\
closures:
  alpha: ./pkg#alpha
  beta: ./pkg#beta
nix:
  lock_path: {lock}
  lock_timeout: {timeout}
"""


def config(pytester: pytest.Pytester, timeout: float = 60, extra: str = "") -> str:
    return CONFIG.format(lock=pytester.path / "build.lock", timeout=timeout) + extra


def grind(pytester: pytest.Pytester, *args: str) -> tuple[pytest.RunResult, dict[str, dict[str, list[str]]]]:
    junit = pytester.path / f"junit-{time.monotonic_ns()}.xml"
    # -m nix by default: other areas (hosts, rust) are not what these tests are about.
    marker = () if "-m" in args else ("-m", "nix")
    result = pytester.runpytest_subprocess("--grind", "-p", "no:cacheprovider", "-rA",
                                           f"--junitxml={junit}", *marker, *args)
    return result, properties(junit) if junit.exists() else {}


@pytest.fixture
def nix_on(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Path:
    use_nix(monkeypatch, pytester.path)
    return pytester.path


def test_cold_built_then_present_then_substituted(pytester: pytest.Pytester, nix_on: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    make_workspace(pytester.path, {"alpha": "echo alpha > $out", "beta": "cat $dep_alpha > $out"},
                   config(pytester))
    result, props = grind(pytester)
    result.assert_outcomes(passed=2)
    alpha, beta = props["closures::alpha"], props["closures::beta"]
    assert one(alpha, "cache") == one(beta, "cache") == "built"
    assert one(alpha, "cache_planned") == "to-build"
    out = one(alpha, "out_path")
    assert out.startswith("/nix/store/") and out.endswith("-alpha") and Path(out).exists()
    assert one(alpha, "drv_path").endswith("-alpha.drv")
    assert one(alpha, "nar_hash").startswith("sha256-")
    assert int(one(beta, "closure_size")) >= int(one(alpha, "nar_size")) > 0
    # The version of the nix that built, on each item and in the run record's provenance.
    version = run_nix("--version").stdout.split()[-1]
    assert one(alpha, "nix_version") == version
    record = json.loads((pytester.path / "evidence" / "choirci.json").read_text())
    assert record["runs"][0]["provenance"]["nix_version"] == version
    assert one(alpha, "installable") == "./pkg#alpha"
    # One batched build for both, recorded verbatim on each item.
    command = one(alpha, "command")
    assert command == one(beta, "command")
    assert "build --log-format bar-with-logs --json --no-link --keep-going" in command
    assert command.endswith("'./pkg#alpha' './pkg#beta'")
    result.stdout.fnmatch_lines(["*building 2 closure(s) in one nix build: alpha, beta*"])

    result, props = grind(pytester)
    result.assert_outcomes(passed=2)
    assert one(props["closures::alpha"], "cache") == one(props["closures::beta"], "cache") == "present"
    assert one(props["closures::alpha"], "out_path") == out

    # Push both to a file:// cache, delete them, build again with the cache as substituter.
    cache = pytester.path / "cache"
    beta_out = one(beta, "out_path")
    copied = run_nix("copy", "--to", f"file://{cache}", out, beta_out)
    assert copied.returncode == 0, copied.stderr
    deleted = run_nix("store", "delete", beta_out, out)
    assert deleted.returncode == 0, deleted.stderr
    assert not Path(out).exists()
    use_nix(monkeypatch, pytester.path, substituter=f"file://{cache}")
    result, props = grind(pytester)
    result.assert_outcomes(passed=2)
    for name in ("alpha", "beta"):
        assert one(props[f"closures::{name}"], "cache_planned") == "substitutable"
        assert one(props[f"closures::{name}"], "cache") == "substituted"
        assert one(props[f"closures::{name}"], "cache_source") == f"file://{cache}"
    assert Path(out).exists()


def test_failing_derivation_shows_its_log_tail(pytester: pytest.Pytester, nix_on: Path) -> None:
    noisy = "i=0; while [ $i -lt 3000 ]; do echo \"noise line $i $(printf '%080d' 0)\"; i=$((i+1)); done; "
    make_workspace(pytester.path, {
        "alpha": "echo alpha > $out",
        "beta": noisy + "echo 'the real reason: linker exploded' >&2; exit 3",
    }, config(pytester))
    result, props = grind(pytester)
    result.assert_outcomes(passed=1, failed=1)  # --keep-going: alpha still builds
    text = result.stdout.str()
    assert "closure beta (./pkg#beta) did not build: its builder failed with exit code 3" in text
    assert "the real reason: linker exploded" in text
    assert "noise line 2999" in text and "noise line 100 " not in text
    drv = one(props["closures::beta"], "drv_path")
    assert f"full log: nix log {drv}" in text
    failure = text[text.index("did not build"):text.index("full log: nix log")]
    assert len(failure.encode()) < 9 * 1024
    assert "cache" not in props["closures::beta"]
    assert one(props["closures::alpha"], "cache") == "built"


def test_failing_dependency_is_blamed(pytester: pytest.Pytester, nix_on: Path) -> None:
    make_workspace(pytester.path, {
        "alpha": "echo 'dependency broke here' >&2; exit 5",
        "beta": "cat $dep_alpha > $out",
    }, config(pytester))
    result, _props = grind(pytester)
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines([
        ("*closure beta (./pkg#beta) did not build: its dependency /nix/store/*-alpha.drv failed "
        "with exit code 5*"),
    ])
    assert result.stdout.str().count("dependency broke here") >= 2


FOD_FLAKE = Path(__file__).parent / "data" / "nix" / "fod-flake" / "flake.nix"


def test_stale_fixed_output_hash_is_blamed_on_the_vendoring_derivation(
        pytester: pytest.Pytester, nix_on: Path) -> None:
    """A vendoring FOD whose pinned hash is stale (crane's cargo vendoring after a Cargo.lock
    bump): the FOD's own closure FAILS naming the hash to pin (not an ERROR that blamed no
    derivation); a closure built on it blames the FOD, not its own builder."""
    (pytester.path / "pkg").mkdir()
    (pytester.path / "pkg" / "flake.nix").write_text(FOD_FLAKE.read_text())
    (pytester.path / "choirci.yaml").write_text(
        "closures:\n  vendor: ./pkg#vendor\n  app: ./pkg#app\n  ok: ./pkg#ok\n"
        f"nix:\n  lock_path: {pytester.path / 'build.lock'}\n")
    (pytester.path / ".gitignore").write_text(".cache/\nevidence/\n*.xml\nbuild.lock*\n")
    commit(pytester.path)
    result, props = grind(pytester)
    result.assert_outcomes(passed=1, failed=2)
    text = result.stdout.str()
    assert "blamed no derivation" not in text
    vendor_drv = one(props["closures::vendor"], "drv_path")
    assert vendor_drv.endswith("-vendor.drv")
    got = "sha256-v1vvgjjTCCURCSYvUnLWTJwds2iPAiLWBuI1Vscfp7E="  # of "vendored crates\n"
    result.stdout.fnmatch_lines([
        ("*closure vendor (./pkg#vendor) did not build: its builder failed: hash mismatch in "
         f"fixed-output derivation (specified sha256-AAAA*, got {got}; if the new content is "
         f"expected, pin {got})*"),
        (f"*closure app (./pkg#app) did not build: its dependency {vendor_drv} failed: hash "
         "mismatch in fixed-output derivation*"),
    ])
    assert one(props["closures::ok"], "out_path").endswith("-ok")


@pytest.mark.parametrize("flags", [["-v", "--log-format", "internal-json"],
                                   ["--log-format", "raw"]], ids=" ".join)
def test_log_flags_in_extra_args_change_no_verdict(pytester: pytest.Pytester, nix_on: Path,
                                                   flags: list[str]) -> None:
    """choirci reads Nix's stderr (who built, who failed): the user's log flags must not
    change what it reads (internal-json would turn every line into JSON; raw drops the
    ``name>`` prefix of log lines on 2.2x). 2.8's ``nix`` ignores --log-format altogether."""
    extra = "  extra_args: [" + ", ".join(f'"{f}"' for f in flags) + "]\n"
    make_workspace(pytester.path, {"alpha": "echo alpha > $out",
                                   "beta": "echo 'the real reason' >&2; exit 3"},
                   config(pytester, extra=extra))
    result, props = grind(pytester)
    result.assert_outcomes(passed=1, failed=1)
    assert one(props["closures::alpha"], "cache") == "built"
    command = one(props["closures::alpha"], "command")
    assert command.index(flags[-1]) < command.rindex("--log-format bar-with-logs")
    result.stdout.fnmatch_lines([
        "*closure beta (./pkg#beta) did not build: its builder failed with exit code 3*"])
    assert "the real reason" in result.stdout.str()


def test_unknown_attribute_is_an_error_and_others_still_build(pytester: pytest.Pytester,
                                                              nix_on: Path) -> None:
    typo = config(pytester).replace("./pkg#beta", "./pkg#betta")
    make_workspace(pytester.path, {"alpha": "echo alpha > $out", "beta": "echo b > $out"}, typo)
    result, props = grind(pytester)
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines([
        ("*choirci: closures.beta: ./pkg#betta: the flake has no attribute "
        "'packages.x86_64-linux.betta'; fix the installable in choirci.yaml*"),
    ])
    assert "Traceback" not in result.stdout.str()
    assert one(props["closures::alpha"], "cache") == "built"


def test_select_with_closure_and_marker(pytester: pytest.Pytester, nix_on: Path) -> None:
    make_workspace(pytester.path, {"alpha": "echo a > $out", "beta": "exit 1"}, config(pytester))
    result, props = grind(pytester, "--closure", "alpha", "-m", "nix")
    result.assert_outcomes(passed=1)
    assert set(props) == {"closures::alpha"}
    assert one(props["closures::alpha"], "command").endswith(
        "build --log-format bar-with-logs --json --no-link --keep-going --print-build-logs "
        "'./pkg#alpha'")
    result, props = grind(pytester, "-k", "alpha")
    result.assert_outcomes(passed=1)


@pytest.mark.parametrize("policy", ["error", "skip"])
def test_nix_missing_from_path(pytester: pytest.Pytester, nix_on: Path,
                               monkeypatch: pytest.MonkeyPatch, policy: str) -> None:
    make_workspace(pytester.path, {"alpha": "echo a > $out", "beta": "echo b > $out"},
                   config(pytester, extra=f"  missing: {policy}\n"))
    bare = pytester.path / "bin"
    bare.mkdir()
    os.symlink("/usr/bin/git", bare / "git")
    monkeypatch.setenv("PATH", str(bare))
    result, _ = grind(pytester)
    if policy == "error":
        result.assert_outcomes(errors=2)
        result.stdout.fnmatch_lines(["*choirci: 'nix' not found on PATH; install Nix, set nix.binary*"])
        assert "Traceback" not in result.stdout.str()
    else:
        result.assert_outcomes(skipped=2)
        result.stdout.fnmatch_lines(["*'nix' not found on PATH (nix.missing: skip in choirci.yaml)*"])


def test_two_concurrent_runs_take_turns(pytester: pytest.Pytester, nix_on: Path) -> None:
    make_workspace(pytester.path, {"alpha": "sleep 4; date +%s.%N > $out", "beta": "echo b > $out"},
                   config(pytester, timeout=120))
    argv = [sys.executable, "-m", "pytest", "--grind", "-p", "no:cacheprovider", "-rA", "-m", "nix"]
    # Each run its own evidence dir: one evidence dir takes one run at a time.
    first = subprocess.Popen([*argv, "--junitxml=first.xml", "--evidence-dir=evidence-1"],
                             cwd=pytester.path,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    sidecar = pytester.path / "build.lock.json"
    deadline = time.monotonic() + 60
    while not sidecar.exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sidecar.exists(), "the first run never took the build lock"
    second = subprocess.run([*argv, "--junitxml=second.xml", "--evidence-dir=evidence-2"],
                            cwd=pytester.path,
                            check=False, capture_output=True, text=True, timeout=300)
    first_out, _ = first.communicate(timeout=300)
    assert first.returncode == 0, first_out
    assert second.returncode == 0, second.stdout
    assert f"waiting for the build lock {pytester.path / 'build.lock'}, held by PID {first.pid}" \
        in second.stdout
    one_props = properties(pytester.path / "first.xml")
    two_props = properties(pytester.path / "second.xml")
    assert one(one_props["closures::alpha"], "cache") == "built"
    # The second run never built alongside the first: it found the result present.
    assert one(two_props["closures::alpha"], "cache") == "present"


def test_lock_timeout_is_a_clear_error(pytester: pytest.Pytester, nix_on: Path) -> None:
    make_workspace(pytester.path, {"alpha": "echo a > $out", "beta": "echo b > $out"},
                   config(pytester, timeout=1))
    holder = subprocess.Popen(
        [sys.executable, "-c", ("import sys, time; from pathlib import Path; "
         "from choirci.nix.lock import BuildLock; BuildLock(Path(sys.argv[1])).acquire(); "
         "print('locked', flush=True); time.sleep(60)"), str(pytester.path / "build.lock")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        result, _ = grind(pytester)
    finally:
        holder.kill()
        holder.wait()
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines([
        (f"*choirci: build lock {pytester.path / 'build.lock'} is still held by PID {holder.pid} (*"
        "after waiting 1s; let that run finish*nix.lock_timeout*"),
    ])


def test_xdist_workers_share_one_batch(pytester: pytest.Pytester, nix_on: Path) -> None:
    """With -n 2 the closure items may land on both workers (loadgroup grouping is broken on
    pytest 9.2, pytest-xdist#1386): still one build, and nobody calls a fresh build 'present'."""
    packages = {name: f"sleep 1; echo {name} > $out" for name in ("alpha", "beta", "gamma", "delta")}
    make_workspace(pytester.path, packages, config(pytester).replace(
        "  beta: ./pkg#beta\n", "  beta: ./pkg#beta\n  gamma: ./pkg#gamma\n  delta: ./pkg#delta\n"))
    result, props = grind(pytester, "-n", "2")
    result.assert_outcomes(passed=4)
    assert {one(p, "cache") for p in props.values()} == {"built"}
    assert len({one(p, "wall_time") for p in props.values()}) == 1
