"""Phase-2's "Repeat build shows improved duration with cache hits", with real Nix: a cold
baseline run builds the closures, a repeat substitutes them from a real (file://) binary cache,
and the gate compares the two runs; `present` in the local store is no cache hit."""

from __future__ import annotations

from pathlib import Path

import pytest
from nix_support import commit, make_workspace, run_nix, use_nix

from choirci.cli import main
from choirci.evidence import files as evidence
from choirci.gates import definitions as gates
from choirci.gates import verdicts

pytestmark = pytest.mark.slow

NAMES = ("sandbox", "desktop", "hypervisor")
CONFIG = "closures:\n" + "".join(f"  {n}: ./pkg#{n}\n" for n in NAMES) + "nix:\n  lock_path: {lock}\n"
REPEAT_GATE = """\
id: cache-repeat
title: Cache repeat
sections:
  - title: Gate
    items:
      - text: "Repeat build shows improved duration with cache hits."
        require:
          - repeat: closures
"""


def line(directory: Path, *baselines: Path) -> verdicts.ItemVerdict:
    verdict = verdicts.evaluate(gates.load("phase-2"), evidence.load(directory),
                                baselines=[evidence.load(b) for b in baselines])
    return next(v for v in verdict.items if v.item.text.startswith("Repeat build"))


def test_a_cached_repeat_is_judged_against_a_cold_baseline(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    use_nix(monkeypatch, pytester.path)
    make_workspace(pytester.path, {n: f"sleep 2; echo {n} > $out" for n in NAMES},
                   CONFIG.format(lock=pytester.path / "build.lock"))
    with (pytester.path / ".gitignore").open("a") as ignore:
        ignore.write("runpytest-current\nstdout\nstderr\n")  # pytester's own files
    commit(pytester.path)

    def grind(name: str) -> Path:
        result = pytester.runpytest_subprocess("--grind", "-p", "no:cacheprovider", "-m", "nix",
                                               f"--evidence-dir={pytester.path / name}")
        result.stdout.fnmatch_lines(["choirci: verdict PASS*"])
        return pytester.path / name

    base = grind("evidence-cold")
    assert {i.prop("cache") for i in evidence.load(base).items} == {"built"}
    present = grind("evidence-present")
    assert "cache=present, a cache hit is 'substituted'" in line(present, base).reasons[0]

    outs = [i.prop("out_path") or "" for i in evidence.load(base).items]
    cache = pytester.path / "cache"
    assert run_nix("copy", "--to", f"file://{cache}", *outs).returncode == 0
    assert run_nix("store", "delete", *outs).returncode == 0
    use_nix(monkeypatch, pytester.path, substituter=f"file://{cache}")
    repeat = grind("evidence-repeat")
    assert {i.prop("cache") for i in evidence.load(repeat).items} == {"substituted"}

    assert "no baseline run built the same 3 derivation(s)" in line(repeat).reasons[0]
    assert "no baseline run built the same" in line(repeat, present).reasons[0]
    found = line(repeat, base)
    assert found.met, found.reasons
    assert "built them in" in found.checked_by[-1]

    custom = pytester.path / "gates"
    custom.mkdir()
    (custom / "cache-repeat.yaml").write_text(REPEAT_GATE)
    monkeypatch.chdir(pytester.path)
    argv = ["gate", "cache-repeat", "--gates", str(custom), "--evidence", str(repeat)]
    assert main(argv) == 1
    assert main([*argv, "--history", str(base)]) == 0
    report = (repeat / "gates" / "cache-repeat.md").read_text()
    assert "built them in" in report and "the repeat took" in report
