"""Each closure's own time inside the one batched build (issue 13: the batch used to go to the
first closure and 0.000 to the others, including a failed one)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from nix_support import make_workspace, use_nix

from choirci.nix.timing import LineClock, pname

# dash has no sleep builtin and the build has no coreutils on PATH for sure: count instead.
BUSY = 'echo started; i=0; while [ $i -lt {n} ]; do i=$((i+1)); done; echo finished; '


@pytest.mark.parametrize(("drv", "name"), [
    ("/nix/store/0wri7bkvqlbncl1kbg5g03a2r8aq97xp-alpha-1.0.drv", "alpha"),
    ("/nix/store/wq791zfmy49c6fgisfzngdpjlyhrn5qd-beta.drv", "beta"),
    ("/nix/store/aaaa-dioxus-desktop-0.1.0.drv", "dioxus-desktop"),
    ("/nix/store/aaaa-sandbox-vendor-deps.drv", "sandbox-vendor-deps")])
def test_pname_is_the_log_line_prefix(drv: str, name: str) -> None:
    assert pname(drv) == name


def test_built_and_copied_seconds_from_the_streamed_lines() -> None:
    now = [0.0]
    clock = LineClock(clock=lambda: now[0])
    for at, line in [(1.0, "building '/nix/store/a-alpha-1.0.drv'..."), (1.5, "alpha> start"),
                     (4.0, "alpha> done"), (4.2, "building '/nix/store/b-beta.drv'..."),
                     (6.0, "copying path '/nix/store/c-gamma' from 'file:///cache'..."),
                     (6.5, "beta> done")]:
        now[0] = at
        clock(line)
    now[0] = 9.0
    clock.end()
    assert clock.built_seconds("/nix/store/a-alpha-1.0.drv") == pytest.approx(3.0)
    assert clock.built_seconds("/nix/store/b-beta.drv") == pytest.approx(2.3)
    assert clock.copied_seconds(["/nix/store/c-gamma"]) == pytest.approx(0.5)
    assert clock.built_seconds("/nix/store/z-never.drv") is None
    silent = LineClock(clock=lambda: now[0])
    now[0] = 1.0
    silent("building '/nix/store/q-quiet.drv'...")
    now[0] = 2.5
    silent.end()
    assert silent.built_seconds("/nix/store/q-quiet.drv") == pytest.approx(1.5)


@pytest.mark.slow
def test_each_closure_carries_its_own_time_and_present_ones_none(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    use_nix(monkeypatch, pytester.path)
    make_workspace(pytester.path, {
        "quick": BUSY.format(n=1) + "echo q > $out",
        "slow": BUSY.format(n=400000) + "echo s > $out",
        "broken": BUSY.format(n=100000) + "exit 3",
    }, "closures:\n  quick: ./pkg#quick\n  slow: ./pkg#slow\n  broken: ./pkg#broken\n"
       f"nix:\n  lock_path: {pytester.path / 'build.lock'}\n")
    result = pytester.runpytest_subprocess("--grind", "-p", "no:cacheprovider", "-m", "nix")
    # The terminal's one line per closure says how it was obtained and its own time.
    result.stdout.re_match_lines([r"^choirci: closures::slow: built in \d+\.\d+s -> /nix/store/"])
    items = {i["nodeid"]: i for i in json.loads(
        (pytester.path / "evidence" / "choirci.json").read_text())["runs"][0]["items"]}
    quick, slow, broken = (items[f"closures::{n}"] for n in ("quick", "slow", "broken"))
    assert broken["outcome"] == "failed" and slow["outcome"] == "passed"
    assert slow["duration"] > quick["duration"] >= 0
    assert broken["duration"] > 0  # the failed build's own time, not 0.000
    batch = float(dict(slow["properties"])["wall_time"])
    assert slow["duration"] < batch and quick["duration"] < batch
    # Warm: nothing to do, each closure took no time of its own.
    pytester.runpytest_subprocess("--grind", "-p", "no:cacheprovider", "-m", "nix",
                                  "--closure", "quick", "--closure", "slow")
    items = {i["nodeid"]: i for i in json.loads(
        (pytester.path / "evidence" / "choirci.json").read_text())["runs"][0]["items"]}
    assert items["closures::quick"]["duration"] == items["closures::slow"]["duration"] == 0.0
    assert Path(pytester.path / "evidence" / "junit.xml").read_text().count('time="0.000"') >= 2
