"""The release checklist line: grind commit SHA, promoted SHA, domain tested, prompt result.

:func:`release_record` derives it from a run record (pure): the commit the run tested,
``$CHOIRCI_PROMOTED_SHA`` as recorded at run time, ``release.domain`` from the config, and the
``release::prompt_smoke`` item's ``run_id``/``status`` properties (see
:mod:`choirci.release.smoke`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from choirci.evidence.record import RunRecord

SMOKE_NODEID = "release::prompt_smoke"


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
        }


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
    )


def fact_problem(release: ReleaseRecord, fact: str) -> str | None:
    """Why ``fact`` of the release line is not satisfied, or None when it is."""
    if fact == "grind_sha":
        if len(release.commits) > 1:
            return f"the shards tested different commits: {', '.join(release.commits)}"
        return None if release.grind_sha else "no commit recorded (not a git checkout?)"
    if fact == "promoted_sha":
        if not release.promoted_sha:
            return "no promoted SHA recorded; set CHOIRCI_PROMOTED_SHA for the run"
        if release.grind_sha and not release.grind_sha.startswith(release.promoted_sha):
            return (f"promoted SHA {release.promoted_sha} is not the grind commit "
                    f"{release.grind_sha}; promote the commit that was tested")
        return None
    if fact == "domain":
        return None if release.domain else "no domain recorded; set release.domain in choirci.yaml"
    prompt = release.prompt
    if prompt is None:
        return f"{SMOKE_NODEID} did not run; set release.prompt_url in choirci.yaml"
    if prompt.outcome != "passed" or prompt.status != "completed" or not prompt.run_id:
        return (f"{SMOKE_NODEID} {prompt.outcome}: run {prompt.run_id or '-'} status "
                f"{prompt.status or '-'} {prompt.message}").rstrip()
    return None
