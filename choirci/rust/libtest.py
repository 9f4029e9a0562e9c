"""Parse the output of a Rust libtest binary (stable formats only; never imports pytest).

Stable libtest has two human formats; ``--format json`` needs ``-Z unstable-options``.

Listing, ``<bin> --list --format terse`` (add ``--ignored`` for the ignored ones only)::

    inner::nested: test
    passes: test
    bench_x: benchmark

Running, ``<bin> --exact --show-output --color never --format pretty NAME...``::

    <blank>
    running 4 tests
    test ign_reason ... ignored, needs live LLM       <- #[ignore = "needs live LLM"]
    test passes ... ok
    test fails ... FAILED
    test sp_ok - should panic ... ok                   <- #[should_panic]
    test slow has been running for over 60 seconds
    <blank>
    successes:                                         <- only with --show-output
    <blank>
    ---- passes stdout ----
    <the test's captured stdout+stderr, lossily decoded by libtest>
    <blank>
    successes:
        passes
    <blank>
    failures:
    <blank>
    ---- fails stdout ----
    thread 'fails' (20965) panicked at tests/a.rs:2:78:
    assertion `left == right` failed: custom msg
    <blank>
    failures:
        fails
    <blank>
    test result: FAILED. 2 passed; 1 failed; 1 ignored; 0 measured; 6 filtered out; finished in 0.00s

With one test thread the ``test NAME ... `` prefix is printed (and flushed) before the test
runs, so a crash leaves ``test crash ... `` without a result. With several threads a result
line is printed only when the test finishes. Output that tests write straight to fd 1 (child
processes) is not captured and can land anywhere, even in the middle of a result line, so
result lines are searched for, and only names the binary listed are believed.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

from choirci.text import ANSI

PASSED = "passed"
FAILED = "failed"
IGNORED = "ignored"

# Names are matched loosely (doc test names hold spaces: `src/lib.rs - add (line 5)`) and
# believed only when the binary listed them.
_RESULT = re.compile(
    r"test (?P<name>.+?)(?P<sp> - should panic)? \.\.\. "
    r"(?P<status>ok|FAILED|ignored(?:, (?P<reason>.*))?)\s*$"
)
_STARTED = re.compile(r"^test (?P<name>.+?)(?: - should panic)? \.\.\. ")
_SLOW = re.compile(r"^test (?P<name>.+) has been running for over \d+ seconds")
_RUNNING = re.compile(r"^running (?P<n>\d+) tests?$")
_HEADER = re.compile(r"^---- (?P<name>.+) stdout ----$")
_SUMMARY = re.compile(
    r"^test result: (?P<ok>ok|FAILED)\. (?P<passed>\d+) passed; (?P<failed>\d+) failed; "
    r"(?P<ignored>\d+) ignored; (?P<measured>\d+) measured; (?P<filtered>\d+) filtered out"
    r"(?:; finished in (?P<secs>[\d.]+)s)?"
)
_PANIC = re.compile(r"^thread '(?P<thread>[^']*)'(?: \(\d+\))? panicked at (?P<where>[^\n]*?):?$")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


@dataclass(frozen=True)
class TestResult:
    name: str
    status: str  # PASSED | FAILED | IGNORED
    reason: str | None = None  # the #[ignore = "..."] reason, when libtest printed one
    should_panic: bool = False


@dataclass(frozen=True)
class Summary:
    ok: bool
    passed: int
    failed: int
    ignored: int
    measured: int
    filtered_out: int
    seconds: float | None


@dataclass(frozen=True)
class RunReport:
    """Everything one run of a test binary said, keyed by test name."""

    announced: int | None = None  # "running N tests"
    results: dict[str, TestResult] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)
    started: str | None = None  # single-threaded: the test that was running when output ended
    slow: tuple[str, ...] = ()
    summary: Summary | None = None


# --------------------------------------------------------------------------- listing


def parse_list(text: str, spaces: bool = False) -> tuple[str, ...]:
    """Test names (benchmarks dropped) from ``--list --format terse`` output, in order.
    ``spaces``: names may hold spaces (doc tests: ``src/lib.rs - add (line 5)``)."""
    names = []
    for line in text.splitlines():
        name, sep, kind = line.rpartition(": ")
        if sep and kind.strip() == "test" and name and (spaces or " " not in name):
            names.append(name)
    return tuple(names)


def parse_logfile(text: str, known: Collection[str]) -> dict[str, TestResult]:
    """Results from libtest's ``--logfile`` (stable): one ``ok NAME``, ``failed NAME``,
    ``ignored NAME`` or ``ignored: REASON NAME`` line per finished test. The file is written
    by libtest alone, so nothing a test's child process prints can forge or hide a result."""
    results: dict[str, TestResult] = {}
    for line in text.splitlines():
        status, _, rest = line.partition(" ")
        if status in ("ok", "failed", "ignored") and rest in known:
            kind = {"ok": PASSED, "failed": FAILED, "ignored": IGNORED}[status]
            results.setdefault(rest, TestResult(rest, kind))
        elif status == "ignored:":
            # The reason may hold spaces: the name is the longest known suffix.
            for index, char in enumerate(rest):
                if char == " " and rest[index + 1:] in known:
                    name = rest[index + 1:]
                    results.setdefault(name, TestResult(name, IGNORED, rest[:index].strip() or None))
                    break
    return results


# --------------------------------------------------------------------------- running


def parse_run(text: str, known: Collection[str]) -> RunReport:
    """Parse a pretty-format run; only names in ``known`` (the listing) are believed."""
    lines = text.splitlines()
    body_start = _results_end(lines)
    announced, results, started, slow = _parse_results(lines[:body_start], known)
    outputs = _parse_outputs(lines[body_start:], known)
    summary = next((s for s in map(_summary, reversed(lines)) if s is not None), None)
    return RunReport(
        announced=announced,
        results=results,
        outputs=outputs,
        started=started,
        slow=tuple(slow),
        summary=summary,
    )


def _results_end(lines: list[str]) -> int:
    """Index of the first line after the result lines (the successes/failures blocks)."""
    for index, line in enumerate(lines):
        if line in ("successes:", "failures:") or _SUMMARY.match(line):
            return index
    return len(lines)


def _parse_results(
    lines: list[str], known: Collection[str]
) -> tuple[int | None, dict[str, TestResult], str | None, list[str]]:
    announced: int | None = None
    results: dict[str, TestResult] = {}
    slow: list[str] = []
    for line in lines:
        running = _RUNNING.match(line)
        if running and announced is None:
            announced = int(running["n"])
            continue
        slow_match = _SLOW.match(line)
        if slow_match and slow_match["name"] in known:
            slow.append(slow_match["name"])
            continue
        result = _RESULT.search(line)
        if result and result["name"] in known and result["name"] not in results:
            results[result["name"]] = _result(result)
    return announced, results, _last_started(lines, known, results), slow


def result_line(line: str, known: Collection[str]) -> str | None:
    """The name of a listed test whose result ``line`` is, else None."""
    result = _RESULT.search(line)
    return result["name"] if result and result["name"] in known else None


def _result(match: re.Match[str]) -> TestResult:
    status = match["status"]
    if status == "ok":
        kind = PASSED
    elif status == "FAILED":
        kind = FAILED
    else:
        kind = IGNORED
    return TestResult(
        name=match["name"],
        status=kind,
        reason=(match["reason"] or "").strip() or None,
        should_panic=bool(match["sp"]),
    )


def _last_started(
    lines: list[str], known: Collection[str], results: dict[str, TestResult]
) -> str | None:
    """Single-threaded runs print ``test NAME ... `` before running: the unfinished one."""
    for line in reversed(lines):
        if not line.strip():
            continue
        started = _STARTED.match(line)
        if started and started["name"] in known and started["name"] not in results:
            return started["name"]
        return None
    return None


def _parse_outputs(lines: list[str], known: Collection[str]) -> dict[str, str]:
    """The ``---- NAME stdout ----`` sections of the successes and failures blocks."""
    outputs: dict[str, list[str]] = {}
    current: list[str] | None = None
    index = 0
    while index < len(lines):
        line = lines[index]
        header = _HEADER.match(line)
        if header and header["name"] in known and header["name"] not in outputs:
            current = outputs[header["name"]] = []
        elif line in ("successes:", "failures:") and _is_name_list(lines, index + 1, known) or _SUMMARY.match(line):
            current = None
        elif current is not None:
            current.append(line)
        index += 1
    return {name: "\n".join(body).strip("\n") for name, body in outputs.items()}


def _is_name_list(lines: list[str], start: int, known: Collection[str]) -> bool:
    """True when ``lines[start:]`` is the closing ``    name`` list of a block."""
    seen = False
    for line in lines[start:]:
        if not line.strip():
            return seen
        if not (line.startswith("    ") and line[4:] in known):
            return False
        seen = True
    return seen


def _summary(line: str) -> Summary | None:
    match = _SUMMARY.match(line)
    if match is None:
        return None
    return Summary(
        ok=match["ok"] == "ok",
        passed=int(match["passed"]),
        failed=int(match["failed"]),
        ignored=int(match["ignored"]),
        measured=int(match["measured"]),
        filtered_out=int(match["filtered"]),
        seconds=float(match["secs"]) if match["secs"] else None,
    )


# --------------------------------------------------------------------------- messages


def panic_message(output: str) -> str | None:
    """``panicked at FILE:LINE:COL: MESSAGE`` (first panic), or libtest's own failure note."""
    lines = output.splitlines()
    for index, line in enumerate(lines):
        match = _PANIC.match(line)
        if match:
            message = _message_lines(lines[index + 1 :])
            return f"panicked at {match['where']}: {message}".rstrip(": ")
    for line in lines:
        if line.startswith("note: test did not panic as expected"):
            return line.removeprefix("note: ")
        if line.startswith("Error: "):
            return f"returned {line}"
    return None


def _message_lines(lines: Iterable[str]) -> str:
    taken = []
    for line in lines:
        if line.startswith(("stack backtrace:", "note: ")) or not line.strip():
            break
        taken.append(line.strip())
        if len(taken) == 3:
            break
    return " ".join(taken)


def clean(text: str) -> str:
    """Drop ANSI colour sequences and show other control characters as ``\\xNN``."""
    text = ANSI.sub("", text.replace("\r\n", "\n"))
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def excerpt(text: str, max_lines: int = 200, max_chars: int = 20_000) -> str:
    """The cleaned tail of ``text``, bounded, saying how much was left out."""
    lines = clean(text).splitlines()
    dropped = max(0, len(lines) - max_lines)
    kept = "\n".join(lines[dropped:])
    if len(kept) > max_chars:
        dropped_chars = len(kept) - max_chars
        kept = kept[-max_chars:]
        return f"[... {dropped} lines and {dropped_chars} more characters omitted ...]\n{kept}"
    if dropped:
        return f"[... {dropped} earlier lines omitted ...]\n{kept}"
    return kept


def one_line(text: str, limit: int = 300) -> str:
    flat = " ".join(clean(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."
