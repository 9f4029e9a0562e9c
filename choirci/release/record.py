"""The release checklist line: grind commit SHA, promoted SHA, domain tested, prompt result.

:func:`release_record` derives it from a run record (pure): the commit the run tested,
``$CHOIRCI_PROMOTED_SHA`` as recorded at run time, ``release.domain`` from the config, and the
``release::prompt_smoke`` item's ``run_id``/``status`` properties (see
:mod:`choirci.release.smoke`).

:func:`fact_problem` is strict: the grind SHA and the promoted SHA are full 40-hex commit ids
and equal; the promoted SHA also equals what a host reported where a bundled host check
recorded it (``workspace_head`` of ``test_state.py::test_workspace_clean``, ``release_sha`` of
the ``test_release.py`` manifest checks, ``system_revision`` of
``test_system.py::test_current_system``: the running NixOS system's configurationRevision);
the domain counts
as tested only when a bundled ``test_http.py::test_domain_login`` check for exactly that
domain executed and passed (real requests, not the config string).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from choirci.evidence.record import ItemResult, RunRecord

SMOKE_NODEID = "release::prompt_smoke"
FULL_SHA = re.compile(r"[0-9a-f]{40}")
DOMAIN_CHECK = "test_http.py::test_domain_login"
# What a promoted host says about its commit, where a bundled check recorded it:
# (description, property, check module or module::function).
HOST_REPORTS = (("workspace HEAD", "workspace_head", "test_state.py::test_workspace_clean"),
                ("release", "release_sha", "test_release.py::"),
                ("system revision", "system_revision", "test_system.py::test_current_system"))
# The NixOS system a host runs: its /run/current-system and the store paths its services execute.
SYSTEM_CHECK = "test_system.py::test_current_system"


@dataclass(frozen=True)
class HostSystem:
    """What one host runs, as ``test_system.py::test_current_system`` recorded it."""

    host: str
    current_system: str
    services: tuple[tuple[str, str], ...]  # (unit file, store path it executes), sorted
    nodeid: str
    outcome: str

    def to_json(self) -> dict[str, Any]:
        return {"current_system": self.current_system, "services": dict(self.services),
                "check": self.nodeid, "outcome": self.outcome}


def host_systems(record: RunRecord) -> tuple[HostSystem, ...]:
    """Per host, the system a bundled check saw it run (hosts that reported none are absent)."""
    out = []
    for item in record.items:
        check = check_of(item)
        current = item.prop("current_system")
        if check and check[0] == SYSTEM_CHECK and current:
            words = (item.prop("system_services") or "").split()
            pairs = (word.partition("=") for word in words if "=" in word)
            services = tuple(sorted((unit, path) for unit, _, path in pairs))
            out.append(HostSystem(item.host or "?", current, services, item.nodeid, item.outcome))
    return tuple(out)


@dataclass(frozen=True)
class PromptResult:
    outcome: str  # the smoke item's outcome
    run_id: str | None
    status: str | None
    url: str | None
    message: str = ""


@dataclass(frozen=True)
class ReleaseRecord:
    grind_sha: str | None
    promoted_sha: str | None
    domain: str | None
    prompt: PromptResult | None
    commits: tuple[str, ...] = ()  # every commit the shards tested (one, if consistent)
    hosts: tuple[HostSystem, ...] = ()  # per host, the NixOS system and service paths it runs

    def to_json(self) -> dict[str, Any]:
        prompt = self.prompt
        return {
            "grind_sha": self.grind_sha,
            "promoted_sha": self.promoted_sha,
            "domain": self.domain,
            "prompt": None if prompt is None else {
                "outcome": prompt.outcome, "run_id": prompt.run_id, "status": prompt.status,
                "url": prompt.url, "message": prompt.message,
            },
            "commits": list(self.commits),
            "hosts": {h.host: h.to_json() for h in self.hosts},
        }


OWN_AREAS = ("closures", "loops", "rust", "release", "hosts")
_HOST_ID = re.compile(r"(?:^|-)[a-z][a-z0-9+.]*://[^\]]*$")


def is_own(item: ItemResult) -> bool:
    """An item choirci itself made: a closure, loop, Rust test, release smoke or bundled host
    check (node ids ``AREA::...``; a workspace's own tests are ``path/test_x.py::...``)."""
    return item.area in OWN_AREAS and item.nodeid.startswith(f"{item.area}::")


def check_of(item: ItemResult) -> tuple[str, str] | None:
    """(``module.py::function``, the check's own parametrisation without the host part) of a
    bundled host check, else None: ``hosts::test_units.py::test_unit_active[hypervisor-ssh://g]``
    -> (``test_units.py::test_unit_active``, ``hypervisor``)."""
    if item.area != "hosts" or not item.nodeid.startswith("hosts::"):
        return None
    base, param = _split_param(item.nodeid)
    parts = base.split("::")
    if len(parts) != 3 or not parts[1].endswith(".py"):
        return None
    return f"{parts[1]}::{parts[2]}", _HOST_ID.sub("", param)


def _split_param(nodeid: str) -> tuple[str, str]:
    if nodeid.endswith("]") and "[" in nodeid:
        base, _, param = nodeid.partition("[")
        return base, param[:-1]
    return nodeid, ""


def _single(values: list[str | None]) -> str | None:
    distinct = sorted({v for v in values if v})
    return distinct[0] if len(distinct) == 1 else None


def release_record(record: RunRecord) -> ReleaseRecord:
    provs = [run.provenance for run in record.runs]
    prompt = None
    for _run, item in record.iter_items():
        if item.nodeid == SMOKE_NODEID:
            prompt = PromptResult(item.outcome, item.prop("run_id"), item.prop("status"),
                                  item.prop("prompt_url"), item.message)
    return ReleaseRecord(
        grind_sha=_single([p.commit for p in provs]),
        promoted_sha=_single([p.promoted_sha for p in provs]),
        domain=_single([p.domain for p in provs]),
        prompt=prompt,
        commits=tuple(sorted({p.commit for p in provs if p.commit})),
        hosts=host_systems(record),
    )


def fact_problem(release: ReleaseRecord, fact: str, record: RunRecord | None = None) -> str | None:
    """Why ``fact`` of the release line is not satisfied, or None when it is. The domain
    and the host's view of the promoted SHA need the ``record``'s host checks."""
    record = record or RunRecord()
    if fact == "grind_sha":
        if len(release.commits) > 1:
            return f"the shards tested different commits: {', '.join(release.commits)}"
        if not release.grind_sha:
            return "no commit recorded (not a git checkout?)"
        if not FULL_SHA.fullmatch(release.grind_sha):
            return f"{release.grind_sha!r} is not a full 40-hex commit id"
        return None
    if fact == "promoted_sha":
        return _promoted_problem(release, record)
    if fact == "domain":
        return _domain_problem(release, record)
    prompt = release.prompt
    if prompt is None:
        return f"{SMOKE_NODEID} did not run; set release.prompt_url in choirci.yaml"
    if prompt.outcome != "passed" or prompt.status != "completed" or not prompt.run_id:
        return (f"{SMOKE_NODEID} {prompt.outcome}: run {prompt.run_id or '-'} status "
                f"{prompt.status or '-'} {prompt.message}").rstrip()
    return None


def _promoted_problem(release: ReleaseRecord, record: RunRecord) -> str | None:
    promoted = release.promoted_sha
    if not promoted:
        return "no promoted SHA recorded; set CHOIRCI_PROMOTED_SHA to the full commit id for the run"
    if not FULL_SHA.fullmatch(promoted):
        return (f"promoted SHA {promoted!r} is not a full 40-hex commit id; set "
                "CHOIRCI_PROMOTED_SHA=$(git rev-parse HEAD)")
    if promoted != release.grind_sha:
        return (f"promoted SHA {promoted} is not the grind commit {release.grind_sha or 'unknown'}; "
                "promote the commit that was tested")
    for item in record.items:
        check = check_of(item)
        reported = [(what, item.prop(name)) for what, name, module in HOST_REPORTS
                    if check and check[0].startswith(module) and item.prop(name)]
        for what, value in reported:
            if value != promoted:
                return (f"host {item.host or '?'} reports {what} {value}, not the promoted "
                        f"SHA {promoted} ({item.nodeid})")
    return None


def _domain_problem(release: ReleaseRecord, record: RunRecord) -> str | None:
    domain = release.domain
    if not domain:
        return "no domain recorded; set release.domain in choirci.yaml"
    checks = [item for item in record.items
              if (check := check_of(item)) is not None and check == (DOMAIN_CHECK, domain)]
    if not checks:
        return (f"no request to {domain} was made: no {DOMAIN_CHECK} check for it ran; add it to "
                "host_checks.domains and run the host checks against the promoted host")
    bad = [f"{item.nodeid} {item.outcome}" for item in checks if item.outcome != "passed"]
    return f"{domain} was not tested successfully: {', '.join(bad)}" if bad else None
