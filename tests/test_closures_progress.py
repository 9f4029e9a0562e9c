"""Progress of long builds: steps are echoed, log lines are throttled, a silent build still
shows a heartbeat (a single rustc can run for minutes without printing a line).

Layer 2: a list stands in for the terminal; the heartbeat thread is real.
"""

from __future__ import annotations

import time

from choirci.nix.closures import PROGRESS_INTERVAL, Progress


def test_steps_are_echoed_and_log_lines_throttled() -> None:
    said: list[str] = []
    progress = Progress(said.append, verbose=0)
    progress("building '/nix/store/abc-sandbox-0.1.0.drv'...")
    progress("sandbox>    Compiling shared-types v0.1.0")
    progress("sandbox>    Compiling sandbox v0.1.0")
    progress("copying path '/nix/store/abc-dep' from 'file:///tmp/cache'...")
    assert said == [
        "nix: building '/nix/store/abc-sandbox-0.1.0.drv'...",
        "nix: copying path '/nix/store/abc-dep' from 'file:///tmp/cache'...",
    ]
    progress.last -= PROGRESS_INTERVAL  # as if the interval had passed
    progress("sandbox>    Finished release [optimized] target(s)")
    assert said[-1] == "nix: sandbox>    Finished release [optimized] target(s)"


def test_verbose_echoes_everything_but_blank_lines() -> None:
    said: list[str] = []
    progress = Progress(said.append, verbose=2)
    for line in ("a> one", "", "a> two"):
        progress(line)
    assert said == ["nix: a> one", "nix: a> two"]


def test_ignored_registry_errors_stay_quiet() -> None:
    said: list[str] = []
    Progress(said.append, verbose=0)("error (ignored): error: cannot find flake 'flake:nixpkgs'")
    assert said == []


def test_silent_build_gets_a_heartbeat_naming_the_last_output() -> None:
    said: list[str] = []
    with Progress(said.append, verbose=0, what="nix build", heartbeat=0.2) as progress:
        progress("building '/nix/store/abc-sandbox-0.1.0.drv'...")
        progress("sandbox>    Compiling sandbox v0.1.0")  # throttled, but remembered
        time.sleep(0.7)
    beats = [line for line in said if "still running" in line]
    assert beats, said
    assert beats[0].startswith("choirci: nix build still running after ")
    assert beats[0].endswith("(last output: sandbox>    Compiling sandbox v0.1.0)")


def test_heartbeat_stops_with_the_command_and_stays_quiet_while_output_flows() -> None:
    said: list[str] = []
    with Progress(said.append, verbose=2, heartbeat=0.3) as progress:
        for index in range(8):
            progress(f"a> line {index}")
            time.sleep(0.1)
    assert not [line for line in said if "still running" in line]
    count = len(said)
    time.sleep(0.5)
    assert len(said) == count  # no beat after the block ended


def test_heartbeat_before_any_output() -> None:
    said: list[str] = []
    with Progress(said.append, verbose=0, what="loop step fmt", heartbeat=0.2):
        time.sleep(0.5)
    assert said and said[0].startswith("choirci: loop step fmt still running after ")
    assert said[0].endswith("(no output yet)")
