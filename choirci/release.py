"""The release checklist line: grind commit SHA, promoted SHA, domain tested, prompt result.

Two halves:

* :func:`release_record` derives the record from a run record (pure): the commit the run
  tested, ``$CHOIRCI_PROMOTED_SHA`` as recorded at run time, ``release.domain`` from the
  config, and the ``release::prompt_smoke`` item's ``run_id``/``status`` properties.
* the ``release`` area: one item, ``release::prompt_smoke``, collected only when
  ``release.prompt_url`` is configured. It sends ``POST <url>/conductor/execute`` (expects
  202 and a ``run_id``) and polls ``GET <url>/conductor/runs/<run_id>`` until the status is
  terminal (``completed|failed|blocked``, CONTRACT.md §5) or ``release.prompt_timeout``
  passes. Only ``completed`` passes. HTTP goes through urllib; no process is started.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from choirci.items import AreaCollector, ChoirciItem, ItemFailed
from choirci.results import RunRecord
from choirci.settings import SETTINGS, Settings

AREA = "release"
SMOKE_NODEID = "release::prompt_smoke"
TERMINAL = ("completed", "failed", "blocked")
POLL_INTERVAL = 0.5
DESKTOP_ID = "choirci-release-smoke"


# --------------------------------------------------------------------------- record


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


# --------------------------------------------------------------------------- HTTP client


class PromptError(Exception):
    """The sandbox did not execute the prompt (one line, shown as the item's failure)."""


@dataclass(frozen=True)
class Execution:
    run_id: str
    status: str
    polls: int
    seconds: float


def _request(url: str, body: dict[str, Any] | None, timeout: float) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="POST" if body is not None else "GET",
                                     headers={"Content-Type": "application/json",
                                              "Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, _json(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, _json(exc.read())
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise PromptError(f"cannot reach {url}: {reason}") from None


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw.decode("utf-8", errors="replace") or "null")
    except ValueError:
        return None


def _error_code(payload: Any) -> str:
    error = payload.get("error") if isinstance(payload, dict) else None
    return str(error.get("code", "")) if isinstance(error, dict) else ""


def execute(base_url: str, objective: str, timeout: float) -> Execution:
    """Start a conductor run and wait for a terminal status; raise PromptError otherwise."""
    base = base_url.rstrip("/").removesuffix("/conductor/execute")
    started = time.monotonic()
    body = {"objective": objective, "desktop_id": DESKTOP_ID, "output_mode": "auto"}
    status, payload = _request(f"{base}/conductor/execute", body, timeout)
    if status != 202 or not isinstance(payload, dict) or not payload.get("run_id"):
        code = _error_code(payload)
        why = " (no conductor workers)" if code == "ACTOR_NOT_AVAILABLE" else ""
        raise PromptError(f"POST {base}/conductor/execute returned {status} {code}{why}; "
                          "expected 202 with a run_id".replace("  ", " "))
    run_id = str(payload["run_id"])
    polls, state = 0, str(payload.get("status", ""))
    while state not in TERMINAL:
        if time.monotonic() - started > timeout:
            raise PromptError(f"run {run_id} still {state or 'unknown'} after {timeout:g}s "
                              "(release.prompt_timeout)")
        time.sleep(POLL_INTERVAL if polls else 0)
        polls += 1
        status, payload = _request(f"{base}/conductor/runs/{run_id}", None, timeout)
        if status != 200 or not isinstance(payload, dict):
            raise PromptError(f"GET {base}/conductor/runs/{run_id} returned {status}")
        state = str(payload.get("status", ""))
    return Execution(run_id, state, polls, time.monotonic() - started)


# --------------------------------------------------------------------------- pytest area


class ReleaseArea(AreaCollector):
    def collect(self) -> Iterator[pytest.Item]:
        yield PromptSmoke.from_parent(self, name="prompt_smoke")


class PromptSmoke(ChoirciItem):
    def runtest(self) -> None:
        release = self.config.stash[SETTINGS].config.release
        url = str(release.prompt_url)
        self.record("prompt_url", url)
        self.record("objective", release.prompt_objective)
        try:
            result = execute(url, release.prompt_objective, release.prompt_timeout)
        except PromptError as exc:
            self.record("status", "unreachable" if "cannot reach" in str(exc) else "error")
            raise ItemFailed(str(exc)) from None
        for name, value in (("run_id", result.run_id), ("status", result.status),
                            ("polls", result.polls), ("wall_time", f"{result.seconds:.3f}")):
            self.record(name, value)
        if result.status != "completed":
            raise ItemFailed(f"prompt run {result.run_id} ended {result.status}, not completed")


def collect_area(session: pytest.Session, settings: Settings) -> pytest.Collector | None:
    if not settings.config.release.prompt_url:
        return None
    return ReleaseArea.from_parent(session, name=AREA, nodeid=AREA)

