"""The ``release`` area: one item, ``release::prompt_smoke``, collected only when
``release.prompt_url`` is configured. It sends ``POST <url>/conductor/execute`` (expects 202 and
a ``run_id``) and polls ``GET <url>/conductor/runs/<run_id>`` until the status is terminal
(``completed|failed|blocked``, CONTRACT.md §5) or ``release.prompt_timeout`` passes. Only
``completed`` passes. HTTP goes through urllib; no process is started. The release line it
feeds is derived from the run record by :mod:`choirci.release.record`.
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
from choirci.settings import SETTINGS, Settings

AREA = "release"
TERMINAL = ("completed", "failed", "blocked")
POLL_INTERVAL = 0.5
DESKTOP_ID = "choirci-release-smoke"


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

