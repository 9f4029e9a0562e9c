"""The batched closure build and its cache evidence (no pytest here).

One session builds every selected closure in ONE ``nix build --json --keep-going`` call,
then judges each closure on its own. Around the build:

1. dry run (``nix build --dry-run --json``): drv and out paths per installable plus the
   plan (derivations to build, paths to fetch). An evaluation error isolates the culprit by
   re-running the dry run per installable, so one bad attribute does not sink the others;
2. ``path-info --closure-size`` on the out paths BEFORE the build: what is already valid
   (``present``), with narHash and sizes;
3. the build; 4. ``path-info`` AFTER, for the paths that were missing: did they arrive,
   and were they built here (``ultimate``)?

A path counts as ``substituted`` only with proof: it was not valid before, is valid now,
its derivation was never announced as ``building``, and Nix does not mark it ``ultimate``
(built here). Anything else that became valid was ``built``.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from choirci.config import Closure
from choirci.nix.adapter import Nix, tail
from choirci.nix.formats import (
    DEPENDENCY_FAILED,
    UNEXPLAINED,
    BuildFailure,
    BuiltPath,
    PathInfo,
    Plan,
    missing_attribute,
    parse_building,
    parse_copies,
    parse_failures,
    parse_plan,
)
from choirci.nix.timing import LineClock
from choirci.proc import CommandResult, LineCallback

OK, FAILED, ERROR = "ok", "failed", "error"


@dataclass(frozen=True)
class ClosureResult:
    closure: Closure
    status: str  # ok | failed (the build broke) | error (harness/config problem)
    message: str = ""
    details: str = ""
    drv_path: str | None = None
    outputs: dict[str, str] = field(default_factory=dict)
    infos: dict[str, PathInfo] = field(default_factory=dict)
    planned: str | None = None  # present | substitutable | to-build (before the build)
    cache: str | None = None  # present | substituted | built (after, proven)
    cache_source: str | None = None
    build_time: float | None = None
    # This closure's own time inside the batch (Nix's build times, else measured from its log
    # lines; 0 when it was present): see choirci.nix.timing. None: not known.
    seconds: float | None = None
    # Where a built closure was built: "local", or the remote builder Nix named
    # ("building '<drv>' on 'ssh-ng://...'"); None when nothing was built.
    built_on: str | None = None


@dataclass(frozen=True)
class BatchRun:
    results: dict[str, ClosureResult]
    nix_version: str
    command: str | None  # the exact build argv, shlex-joined (None: nothing to build)
    dry_run_command: str
    wall_time: float


@dataclass(frozen=True)
class _Planned:
    closure: Closure
    entry: BuiltPath | None
    error: ClosureResult | None = None


def run_batch(
    nix: Nix, closures: Sequence[Closure], progress: LineCallback | None = None
) -> BatchRun:
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=1) as pool:
        # `nix --version` is independent of the plan: ask while the flakes evaluate.
        version_call = pool.submit(nix.version)
        planned, plan, dry_command = _plan(nix, closures)
        version = str(version_call.result())
    paths = [p for item in planned if item.entry for p in item.entry.outputs.values() if p]
    before = nix.path_info(paths, closure_size=True)
    buildable = [item.closure.installable for item in planned if item.entry is not None]
    build: CommandResult | None = None
    built: list[BuiltPath] = []
    clock = LineClock(progress)
    if buildable:
        build, built = nix.build(buildable, on_stderr=clock)
        clock.end()
        plan = _merge(plan, parse_plan(build.stderr))
    # A path valid before the build is untouched by it: only ask again about the others
    # (a warm run, everything present, then costs no second query).
    after = {**before, **nix.path_info([p for p in paths if before.get(p) is None],
                                       closure_size=True)}
    evidence = Evidence(plan, before, after, build, {b.drv_path: b for b in built}, clock)
    results = {
        item.closure.name: item.error or _judge(nix, item.closure, item.entry, evidence)
        for item in planned
    }
    return BatchRun(results, version, build.command if build else None, dry_command,
                    time.monotonic() - started)


# --------------------------------------------------------------------------- planning


def _plan(nix: Nix, closures: Sequence[Closure]) -> tuple[list[_Planned], Plan, str]:
    installables = [c.installable for c in closures]
    result, entries = nix.dry_run(installables)
    if result.ok and len(entries) == len(closures):
        planned = [_Planned(c, e) for c, e in zip(closures, entries, strict=True)]
        return planned, parse_plan(result.stderr), result.command
    # One call failed (or answered oddly): plan each installable alone to find the culprit.
    planned, plan = [], Plan()
    for closure in closures:
        single, found = nix.dry_run([closure.installable])
        if single.ok and len(found) == 1:
            planned.append(_Planned(closure, found[0]))
            plan = _merge(plan, parse_plan(single.stderr))
        else:
            planned.append(_Planned(closure, None, _eval_error(closure, single)))
    return planned, plan, result.command


def _eval_error(closure: Closure, result: CommandResult) -> ClosureResult:
    attr = missing_attribute(result.stderr)
    if attr is not None:
        return ClosureResult(
            closure, ERROR,
            message=f"closures.{closure.name}: {closure.installable}: the flake has no attribute "
            f"{attr!r}; fix the installable in choirci.yaml (or add the package to the flake)",
        )
    return ClosureResult(
        closure, FAILED,
        message=f"closure {closure.name} ({closure.installable}) does not evaluate: "
        f"`{result.command}` {result.describe_exit()}",
        details=tail(result.stderr),
    )


def _merge(a: Plan, b: Plan) -> Plan:
    return Plan(a.will_build | b.will_build, a.will_fetch | b.will_fetch, a.unknown | b.unknown)


# --------------------------------------------------------------------------- judging


@dataclass(frozen=True)
class Evidence:
    """Everything the verdict on one closure is drawn from (store truth before/after)."""

    plan: Plan
    before: dict[str, PathInfo | None]
    after: dict[str, PathInfo | None]
    build: CommandResult | None
    built: dict[str, BuiltPath]
    clock: LineClock = field(default_factory=LineClock)

    @property
    def stderr(self) -> str:
        return self.build.stderr if self.build else ""


def _judge(nix: Nix, closure: Closure, entry: BuiltPath | None, ev: Evidence) -> ClosureResult:
    assert entry is not None
    outputs = {name: path for name, path in entry.outputs.items() if path}
    infos = {p: info for p in outputs.values() if (info := ev.after.get(p)) is not None}
    base = ClosureResult(
        closure, OK, drv_path=entry.drv_path, outputs=outputs, infos=infos,
        planned=_planned(entry, outputs, ev), build_time=_build_time(ev.built.get(entry.drv_path)),
    )
    if not outputs or len(infos) < len(outputs):
        return _failure(nix, base, ev)
    cache, source = classify(entry.drv_path, outputs.values(), ev)
    built_on = remote_builds(ev.stderr).get(entry.drv_path, "local") if cache == "built" else None
    return _replace(base, cache=cache, cache_source=source, built_on=built_on,
                    seconds=_seconds(base, cache, ev))


def _seconds(result: ClosureResult, cache: str | None, ev: Evidence) -> float | None:
    """The closure's own time inside the batch (see choirci.nix.timing)."""
    if result.build_time is not None:
        return result.build_time
    if cache == "present":
        return 0.0
    if cache == "substituted":
        return ev.clock.copied_seconds(result.outputs.values())
    return ev.clock.built_seconds(result.drv_path) if result.drv_path else None


_REMOTE_BUILD = re.compile(r"^(?:building|checking outputs of) '(?P<drv>/nix/store/[^']+\.drv)'"
                           r" on '(?P<machine>[^']+)'", re.MULTILINE)
_CANNOT_BUILD_ON = re.compile(r"^cannot build on '(?P<machine>[^']+)': (?P<why>.+)$", re.MULTILINE)


def remote_builds(stderr: str) -> dict[str, str]:
    """Derivation -> the remote builder Nix sent it to (Nix's own "building ... on ..." line)."""
    return {m["drv"]: m["machine"] for m in _REMOTE_BUILD.finditer(stderr)}


def _builders_note(stderr: str, drvs: Iterable[str]) -> str:
    """What the build log says about remote builders, for a failure message: the builders
    Nix could not use, and the builder a failed derivation ran on."""
    notes = [f"cannot build on {m['machine']!r}: {m['why'].strip()}"
             for m in _CANNOT_BUILD_ON.finditer(stderr)]
    remote = remote_builds(stderr)
    notes += [f"{drv} was building on {remote[drv]!r}" for drv in dict.fromkeys(drvs)
              if drv in remote]
    return f" [remote builder: {'; '.join(dict.fromkeys(notes))}]" if notes else ""


def _planned(entry: BuiltPath, outputs: dict[str, str], ev: Evidence) -> str:
    if entry.drv_path in ev.plan.will_build:
        return "to-build"
    if any(ev.before.get(p) is None for p in outputs.values()):
        return "substitutable"
    return "present"


def classify(drv_path: str, outputs: Iterable[str], ev: Evidence) -> tuple[str, str | None]:
    """present | substituted | built, and the cache a substituted path came from."""
    missing = [p for p in outputs if ev.before.get(p) is None]
    if not missing:
        return "present", None
    building = parse_building(ev.stderr)
    copies = parse_copies(ev.stderr)
    built_here = drv_path in building or any(
        (info := ev.after.get(p)) is not None and info.ultimate for p in missing
    )
    if built_here:
        return "built", None
    sources = sorted({copies[p] for p in missing if p in copies})
    return "substituted", ", ".join(sources) or None


def _failure(nix: Nix, base: ClosureResult, ev: Evidence) -> ClosureResult:
    name, installable, drv = base.closure.name, base.closure.installable, base.drv_path
    build = ev.build
    assert build is not None and drv is not None
    if build.timed_out:
        return _replace(base, status=FAILED, message=f"closure {name} ({installable}): nix build "
                        f"timed out after {nix.build_timeout:.0f}s (nix.build_timeout)",
                        details=tail(build.stderr))
    failures = parse_failures(build.stderr)
    culprit = _culprit(nix, drv, failures)
    if culprit is None:
        # Nix gave up before blaming any derivation: a host or harness problem.
        # An unusable remote builder comes first: it is why, and the message is bounded.
        return _replace(base, status=ERROR, message=f"nix build did not build closure {name} "
                        f"({installable}) and blamed no derivation ({build.describe_exit()})"
                        f"{_builders_note(build.stderr, [drv])}: {_last_error(build.stderr)}")
    log = nix.log_tail(culprit.drv_path) or _stderr_for(build.stderr, culprit.drv_path)
    what = "its builder" if culprit.drv_path == drv else f"its dependency {culprit.drv_path}"
    return _replace(
        base, status=FAILED, seconds=ev.clock.built_seconds(culprit.drv_path),
        message=f"closure {name} ({installable}) did not build: {what} {culprit.reason} "
        f"(nix build {build.describe_exit()})"
        f"{_builders_note(build.stderr, [culprit.drv_path, drv])}",
        details=f"last lines of the build log of {culprit.drv_path}:\n{log}\n\n"
        f"full log: nix log {culprit.drv_path}",
    )


def _culprit(nix: Nix, drv: str, failures: dict[str, BuildFailure]) -> BuildFailure | None:
    own = failures.get(drv)
    if own is not None and own.reason not in _VAGUE:
        return own
    if not failures:
        return None
    # The top derivation only failed because something under it did (or Nix's closing
    # summary named it without a cause): blame the builder under it that Nix explained.
    inside = nix.drv_closure(drv)
    for failure in failures.values():
        if failure.drv_path in inside and failure.reason not in _VAGUE:
            return failure
    return own


_VAGUE = frozenset({DEPENDENCY_FAILED, UNEXPLAINED})


def _stderr_for(stderr: str, drv: str) -> str:
    """Fallback when Nix kept no log: the build's stderr around this derivation."""
    lines = stderr.splitlines()
    hits = [i for i, line in enumerate(lines) if drv in line]
    start = max(0, hits[-1] - 5) if hits else 0
    return tail("\n".join(lines[start:]))


def _last_error(stderr: str) -> str:
    errors = [line.strip() for line in stderr.splitlines() if line.startswith("error:")]
    if errors:
        return errors[-1]
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def _build_time(entry: BuiltPath | None) -> float | None:
    if entry is None or entry.start_time is None or entry.stop_time is None:
        return None
    return float(entry.stop_time - entry.start_time)


def _replace(result: ClosureResult, **changes: Any) -> ClosureResult:
    return replace(result, **changes)


# --------------------------------------------------------------------------- sharing a batch


def batch_to_json(run: BatchRun) -> str:
    """The batch as JSON, so xdist workers of one run can share ONE build's verdicts."""
    return json.dumps(asdict(run))


def batch_from_json(text: str) -> BatchRun:
    data = json.loads(text)
    results = {name: _result_from(entry) for name, entry in data.pop("results").items()}
    return BatchRun(results=results, **data)


def _result_from(entry: dict[str, Any]) -> ClosureResult:
    infos = {
        path: PathInfo(**{**info, "references": tuple(info["references"]),
                          "signatures": tuple(info["signatures"])})
        for path, info in entry.pop("infos").items()
    }
    return ClosureResult(closure=Closure(**entry.pop("closure")), infos=infos, **entry)
