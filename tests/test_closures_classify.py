"""How a closure's output was obtained, decided from store truth (pure, no Nix run)."""

from __future__ import annotations

import pytest

from choirci.nix.build import Evidence, classify
from choirci.nix.formats import PathInfo, Plan
from choirci.proc import CommandResult

DRV = "/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-sandbox-0.1.0.drv"
OUT = "/nix/store/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-sandbox-0.1.0"
CACHE = "file:///tmp/cache"


def info(ultimate: bool) -> PathInfo:
    return PathInfo(path=OUT, nar_hash="sha256-x", nar_size=1, ultimate=ultimate)


def evidence(before: PathInfo | None, after: PathInfo | None, stderr: str = "",
             plan: Plan | None = None) -> Evidence:
    plan = plan or Plan()
    build = CommandResult(argv=("nix", "build"), returncode=0, stdout="", stderr=stderr, duration=1.0)
    return Evidence(plan=plan, before={OUT: before}, after={OUT: after}, build=build, built={})


@pytest.mark.parametrize(
    ("ev", "expected"),
    [
        # valid before the build: nothing was done for it
        (evidence(info(True), info(True)), ("present", None)),
        (evidence(info(False), info(False)), ("present", None)),
        # Nix announced building its derivation
        (evidence(None, info(True), f"building '{DRV}'...\n"), ("built", None)),
        # the store says it was built here, whatever the plan claimed
        (evidence(None, info(True), plan=Plan(will_fetch=frozenset({OUT}))), ("built", None)),
        # planned as a fetch, copied from the cache, not ultimate: proven substituted
        (evidence(None, info(False), f"copying path '{OUT}' from '{CACHE}'...\n",
                  plan=Plan(will_fetch=frozenset({OUT}))), ("substituted", CACHE)),
        # a substituter claimed it, the fetch failed and Nix fell back to building it
        (evidence(None, info(True), f"warning: {CACHE} failed\nbuilding '{DRV}'...\n",
                  plan=Plan(will_fetch=frozenset({OUT}))), ("built", None)),
    ],
    ids=["present-ultimate", "present-fetched-earlier", "built", "ultimate-wins",
         "substituted", "claimed-but-built"],
)
def test_classify(ev: Evidence, expected: tuple[str, str | None]) -> None:
    assert classify(DRV, [OUT], ev) == expected
