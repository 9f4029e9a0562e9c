"""What a narrowed selection (--area, --closure, --rust-test, -m) left out of a run.

``-k``/``-m`` deselect collected items and pytest reports them; the choirci flags instead
keep configured items from being collected at all, so nothing would record them and a gate
over "all closures" could pass on a run that built one. Each configured item left out
becomes a placeholder node id the recorder stores as ``deselected``; a merged set of matrix
shards still passes because an executed result in another shard supersedes it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from choirci import areas
from choirci.config.rust import RustTarget, picks_target
from choirci.rust.plan import parse_selection
from choirci.settings import Settings


@dataclass(frozen=True)
class LeftOut:
    nodeid: str
    markers: tuple[str, ...]
    reason: str


def left_out(settings: Settings) -> list[LeftOut]:
    return list(_closures(settings)) + list(_others(settings)) + list(_rust(settings))


def _area_off(settings: Settings, area: str) -> bool:
    return settings.areas is not None and area not in settings.areas


def _off_reason(settings: Settings) -> str:
    return f"not selected ({settings.areas_why})"


def _closures(settings: Settings) -> Iterator[LeftOut]:
    selected = {closure.name for closure in settings.closures}
    for closure in settings.config.closures:
        if _area_off(settings, "closures"):
            yield LeftOut(f"closures::{closure.name}", ("nix",), _off_reason(settings))
        elif closure.name not in selected:
            yield LeftOut(f"closures::{closure.name}", ("nix",), "not selected (--closure)")


def _others(settings: Settings) -> Iterator[LeftOut]:
    cfg = settings.config
    if _area_off(settings, "loops"):
        for step in cfg.loops:
            yield LeftOut(f"loops::{step.name}", ("loop",), _off_reason(settings))
    if _area_off(settings, "hosts") and areas.get("hosts").has_items(cfg):
        yield LeftOut("hosts::*", ("host",), f"host checks {_off_reason(settings)}")
    if _area_off(settings, "release") and areas.get("release").has_items(cfg):
        yield LeftOut("release::prompt_smoke", (), _off_reason(settings))


def _rust(settings: Settings) -> Iterator[LeftOut]:
    targets = settings.config.rust.targets
    if _area_off(settings, "rust"):
        for target in targets:
            yield LeftOut(_all_of(target), ("rust",), _off_reason(settings))
        if settings.config.rust.workspace:
            # rust.workspace expands only with cargo metadata: one placeholder stands for it.
            yield LeftOut("rust::*", ("rust",), f"rust.workspace {_off_reason(settings)}")
        return
    if not settings.rust_selection:
        return
    picks = [parse_selection(value) for value in settings.rust_selection]
    for target in targets:
        chosen = [test for crate, binary, test in picks
                  if crate == target.crate and picks_target(binary, target)]
        if not chosen:
            yield LeftOut(_all_of(target), ("rust",), "not selected (--rust-test)")
        elif None in chosen:
            continue  # the whole binary was asked for
        elif target.tests:
            for name in target.tests:
                if name not in chosen:
                    yield LeftOut(f"rust::{target.id}::{name}", ("rust",),
                                  "not selected (--rust-test)")
        else:
            # Every test of the binary is configured; only some were asked for, and the rest
            # are unknown without listing the binary: one placeholder stands for them.
            yield LeftOut(_all_of(target), ("rust",), "other tests not selected (--rust-test)")


def _all_of(target: RustTarget) -> str:
    return f"rust::{target.id}::*"
