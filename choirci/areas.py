"""The areas of a choirci run, in collection order: the one list that the plugin (which
collects them), the matrix (which shards them) and narrowing (which records what a selection
left out) all read.

An area is a module exposing ``collect_area(session, settings) -> pytest.Collector | None``
(imported by name, so this list imports no area) and a rule saying whether a config gives it
any items: an area with nothing configured gets no matrix shard, because an empty shard would
make pytest exit 5 ("no tests collected") and fail its job.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from choirci.config import Config


@dataclass(frozen=True)
class Area:
    name: str
    module: str  # the module that collects it (root collector's nodeid is the area name)
    has_items: Callable[[Config], bool]
    markers: tuple[str, ...] = ()  # every marker its items carry (``-m`` decides on these)


AREAS: tuple[Area, ...] = (
    Area("closures", "choirci.nix.closures", lambda cfg: bool(cfg.closures), ("nix",)),
    Area("loops", "choirci.nix.loops", lambda cfg: bool(cfg.loops), ("loop",)),
    Area("rust", "choirci.rust.area",
         lambda cfg: bool(cfg.rust.targets or cfg.rust.workspace), ("rust",)),
    # testinfra checks from checks/, per host
    Area("hosts", "choirci.hosts.area",
         lambda cfg: "grind" in cfg.hosts or cfg.host_checks.configured, ("host",)),
    # release::prompt_smoke, only with release.prompt_url
    Area("release", "choirci.release.smoke", lambda cfg: bool(cfg.release.prompt_url)),
)
NAMES: tuple[str, ...] = tuple(area.name for area in AREAS)


def get(name: str) -> Area:
    for area in AREAS:
        if area.name == name:
            return area
    raise KeyError(name)
