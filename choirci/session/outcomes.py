"""pytest reports -> :class:`~choirci.evidence.record.ItemResult` (setup, call and teardown combined).

Rules, worst first: a failed setup or teardown is an ``error`` (the harness or a fixture
broke, STYLE.md's second error family); a failed call is ``failed``; ``xfailed``/``xpassed``
keep their own names (neither counts as passed for a gate); a skip is ``skipped``.
Texts are redacted, then cleaned and capped here (in that order: a cut through a secret
would leave a prefix no redaction matches) so a runaway log cannot bloat the JSON record.
:func:`redact_report` cleans a report in place before pytest prints it (the CI log).
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

import pytest

from choirci import text
from choirci.evidence import naming
from choirci.evidence.record import ItemResult, full_log_pointer
from choirci.evidence.redact import Redact, Redactor

TEXT_LIMIT = 200_000  # per field in the JSON record; renderers cut further
EXCEPTION_NAME = re.compile(r"^([A-Z_][\w.]*(?:Error|Exception|Failed|Exit|Interrupt|Warning)?): ")
RANK = {"passed": 0, "skipped": 1, "xfailed": 1, "xpassed": 1, "failed": 2, "error": 3}


def phase_outcome(report: pytest.TestReport) -> str:
    xfail = hasattr(report, "wasxfail")
    if report.when != "call":
        if report.failed:
            return "error"
        if report.skipped:
            return "xfailed" if xfail else "skipped"
        return "passed"
    if report.skipped:
        return "xfailed" if xfail else "skipped"
    if report.passed:
        return "xpassed" if xfail else "passed"
    if any(name == "harness_error" for name, _ in report.user_properties):
        # The harness broke during the call (e.g. SSH exit 255): an error, not a failed check.
        return "error"
    return "failed"


def _same(value: str) -> str:
    return value


def failure_text(report: Any, redact: Redact = _same) -> tuple[str, str, str]:
    """(one-line message, type, details) of a failed, errored or skipped report."""
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:  # a skip: (path, line, reason)
        return text.one_line(redact(str(longrepr[2]))), "skipped", ""
    details = text.clean(redact(getattr(report, "longreprtext", "") or str(longrepr or "")))
    crash = getattr(longrepr, "reprcrash", None)
    message = text.one_line(redact(crash.message) if crash is not None else details)
    if hasattr(report, "wasxfail") and report.wasxfail:
        message = message or text.one_line(redact(f"xfail: {report.wasxfail}"))
    match = EXCEPTION_NAME.match(message)
    default = "error" if getattr(report, "when", "call") != "call" else "failure"
    return message, (match.group(1) if match else default), details


def build(
    nodeid: str,
    reports: Sequence[Any],
    markers: Iterable[str],
    redact: Redact = _same,
) -> ItemResult:
    """Combine the phase reports of one item into its result; ``redact`` is applied to every
    text before anything is cut."""
    markers = tuple(sorted(set(markers)))
    outcome, message, kind = "passed", "", ""
    details: list[tuple[str, str]] = []
    props: list[tuple[str, str]] = []
    for report in reports:
        phase = phase_outcome(report)
        msg = typ = ""
        if report.failed or report.skipped:
            msg, typ, det = failure_text(report, redact)
            if det:
                details.append((report.when, det))
        if phase == "xpassed":
            why = redact(str(getattr(report, "wasxfail", "") or "no reason"))
            msg = f"unexpectedly passed (xfail: {why})"
        if RANK[phase] > RANK[outcome]:
            outcome, message, kind = phase, msg, typ
        props.extend((redact(str(k)), redact(str(v)))
                     for k, v in getattr(report, "user_properties", ()) or ())
    # Each phase report carries the captured sections of the phases before it, so the
    # report with the most sections (normally teardown) holds all the output exactly once.
    fullest = max(reports, key=lambda r: len(getattr(r, "sections", ()) or ()))
    return finish(nodeid, outcome, markers, props, message, kind, _join(details),
                  redact(_stdout(fullest)),
                  redact(getattr(fullest, "capstderr", "") or ""),
                  _duration(props, sum(r.duration or 0.0 for r in reports)))


def _stdout(report: Any) -> str:
    """Captured stdout plus every section an area added (e.g. the output libtest shows for a
    passing Rust test), each under its name; captured stderr and logs have their own field."""
    parts = [getattr(report, "capstdout", "") or ""]
    for title, content in getattr(report, "sections", ()) or ():
        if content and not title.startswith(("Captured stdout", "Captured stderr",
                                             "Captured log")):
            parts.append(f"--- {title.removeprefix('Captured ')} ---\n{content}")
    return "\n".join(part for part in parts if part)


def _duration(props: list[tuple[str, str]], measured: float) -> float:
    """An area that knows an item's own time better than pytest's phase timing (one closure
    of a batched build, one test of a binary run) records it as the ``duration`` property."""
    for key, value in reversed(props):
        if key == "duration":
            try:
                seconds = float(value)
            except ValueError:
                continue
            if math.isfinite(seconds) and seconds >= 0:
                return seconds
    return measured


def _join(details: list[tuple[str, str]]) -> str:
    # Name the phase only when more than one phase failed (a test and its teardown).
    if len(details) == 1:
        return details[0][1]
    return "\n".join(f"[{when}]\n{det}" for when, det in details)


def finish(
    nodeid: str,
    outcome: str,
    markers: tuple[str, ...],
    props: list[tuple[str, str]],
    message: str = "",
    kind: str = "",
    details: str = "",
    stdout: str = "",
    stderr: str = "",
    duration: float = 0.0,
) -> ItemResult:
    area = naming.area_of(nodeid, markers)
    classname, name = naming.classname_and_name(nodeid, area, props)
    item = ItemResult(
        nodeid=nodeid, area=area, classname=classname, name=name, outcome=outcome,
        duration=duration, markers=markers,
        host=naming.host_of(nodeid, props) if area == naming.HOSTS else None,
        properties=tuple(_dedupe(props)), message=message, type=kind,
    )
    pointer = full_log_pointer(item)
    return _with_texts(item, details, stdout, stderr, pointer)


def _with_texts(item: ItemResult, details: str, stdout: str, stderr: str, pointer: str) -> ItemResult:
    def capped(value: str) -> str:
        return text.cut(text.clean(value), TEXT_LIMIT, pointer)

    return replace(item, details=capped(details), stdout=capped(stdout), stderr=capped(stderr))


def _dedupe(props: list[tuple[str, str]]) -> list[tuple[str, str]]:
    # The same property recorded in setup and call shows up twice; keep the first of each pair.
    seen: set[tuple[str, str]] = set()
    out = []
    for pair in props:
        if pair not in seen:
            seen.add(pair)
            out.append(pair)
    return out


def placeholder(nodeid: str, outcome: str, markers: Iterable[str], message: str) -> ItemResult:
    """A result for an item that produced no report (deselected, or missing)."""
    return finish(nodeid, outcome, tuple(sorted(set(markers))), [], message=message,
                  kind=outcome if outcome == "missing" else "")


def collection_error(report: Any, redact: Redact = _same) -> ItemResult:
    message, _kind, details = failure_text(report, redact)
    return finish(report.nodeid or "(session)", "error", (), [], message=message,
                  kind="CollectionError", details=details)


# --------------------------------------------------------------------------- reports


def redact_report(report: Any, redactor: Redactor) -> None:
    """Redact a report's longrepr and captured sections in place, before pytest prints them
    or xdist ships them. A no-op when there is no secret to look for."""
    if not redactor.secrets:
        return
    report.sections = [(name, redactor(content)) for name, content in report.sections]
    longrepr = report.longrepr
    if isinstance(longrepr, tuple):  # a skip: keep the shape pytest's summary unpacks
        report.longrepr = tuple(redactor(v) if isinstance(v, str) else v for v in longrepr)
    elif isinstance(longrepr, str):
        report.longrepr = redactor(longrepr)
    elif longrepr is not None:
        _redact_repr(longrepr, redactor, set())
        rendered = report.longreprtext
        if redactor(rendered) != rendered:  # a shape we did not walk: plain text, then
            report.longrepr = redactor(rendered)


def _redact_repr(value: Any, redact: Redact, seen: set[int]) -> Any:
    """Walk pytest's failure representation (TerminalRepr dataclasses, lists and tuples of
    them and of lines), redacting every string; keeps the structure (colours, the crash
    line of the short summary)."""
    if isinstance(value, str):
        return redact(value)
    if id(value) in seen or isinstance(value, type):
        return value
    seen.add(id(value))
    if isinstance(value, list):
        value[:] = [_redact_repr(v, redact, seen) for v in value]
    elif isinstance(value, tuple):
        return tuple(_redact_repr(v, redact, seen) for v in value)
    elif dataclasses.is_dataclass(value):  # pytest's TerminalRepr classes are dataclasses
        for name, field in list(vars(value).items()):
            object.__setattr__(value, name, _redact_repr(field, redact, seen))
    return value
