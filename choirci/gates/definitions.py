"""Phase gate definitions: ``checks/gates/<id>.yaml`` -> validated :class:`Gate` objects.

A gate file keeps the checklist wording of the bootstrap phases and says, per checklist
line, what satisfies it::

    id: phase-2                      # must equal the file name
    title: "Phase 2 Issue: CI + FlakeHub Cache"
    after: phase-1                   # needs a passing phase-1 verdict first (optional)
    outcome: "Flake builds are repeatable ..."
    sections:
      - title: Gate                  # required: true by default
        items:
          - text: "CI builds `sandbox`, `desktop`, and `hypervisor` flakes successfully."
            require:                 # every selector must match >= 1 result, all passed
              - closure: sandbox
          - text: "Workflow run links attached."
            manual: manual/phase-2/workflow-runs.md   # file in the evidence dir
      - title: Tasks
        required: false              # shown and ticked when satisfied; never gates

Selector keys (all given keys must match): ``closure``, ``loop`` (names), ``rust``
(``crate::bin::test`` glob), ``node`` (node-id glob), ``area``, ``marker``, ``check`` (a
bundled host check named by module and function, ``test_http.py::test_sandbox_health``,
checked against ``checks/`` when the gate loads), ``param`` (that check's own
parametrisation, e.g. the unit ``hypervisor``; the host part is never part of it), ``host``
(host-name glob), ``where`` (property filter) and ``expect`` (property every matched result
must have: a value, a list of values, or ``true`` for "recorded"). Record-level selectors
stand alone: ``release: grind_sha|promoted_sha|domain|prompt``, ``tree: clean``,
``run: pass`` (the run verdict) and ``repeat: closures`` (every closure of this run was
substituted from a binary cache, a baseline run given with ``--history`` built the same
derivations cold, and this run's build was faster) and ``current_system: toplevel`` (every
host that reported its ``/run/current-system`` runs the NixOS toplevel this run built; no
report is no pass) and ``staging: verified`` (every host of this run that reported its system
runs exactly the service store paths that a passing run of the same commit, given with
``--history``, verified on another host: production after staging). Selectors match only choirci's own items (closures, loops,
rust, release and the bundled host checks) unless the gate says ``user_tests: true``.

Gate-level keys beyond the checklist: ``dirty_tree: allowed`` (every gate fails on a dirty
or unknown git tree unless it says this, and the report shows it), ``user_tests: true``.
An item may say ``missing_check: "<what is missing>"``: the faithful check does not exist
yet, so the item stays unmet with that reason (never met by a lookalike).

Gate ids and ``after:`` are names (``phase-2``), never paths. Each manual evidence file
belongs to one checklist line. A gate none of whose required items reads the run's own
results is refused: it could pass on files alone. Evaluation lives in
:mod:`choirci.gates.verdicts`.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib.resources
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from choirci.config.yamlpos import Located, load_yaml
from choirci.config.yamlpos import describe as _describe
from choirci.errors import ConfigError
from choirci.gates import bundled

MATCH_KEYS = ("closure", "loop", "rust", "node", "area", "marker", "host", "check", "param")
SELECTOR_KEYS = (*MATCH_KEYS, "where", "expect")
RELEASE_FACTS = ("grind_sha", "promoted_sha", "domain", "prompt")
AREAS = ("closures", "loops", "rust", "release", "hosts", "python")
MARKERS = ("nix", "rust", "host", "loop")
NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
RECORD_SELECTORS = {"tree": ("clean",), "run": ("pass",), "repeat": ("closures",),
                    "current_system": ("toplevel",), "staging": ("verified",)}


@dataclass(frozen=True)
class Selector:
    match: tuple[tuple[str, str], ...] = ()  # (key, pattern) from MATCH_KEYS
    where: tuple[tuple[str, tuple[str, ...]], ...] = ()
    expect: tuple[tuple[str, tuple[str, ...]], ...] = ()  # () values = "must be recorded"
    release: str | None = None
    tree: str | None = None
    run: str | None = None
    repeat: str | None = None
    current_system: str | None = None
    staging: str | None = None

    @property
    def on_results(self) -> bool:
        """Whether the selector reads the run's own results (not a file or a fact)."""
        return bool(self.match or self.run or self.repeat or self.current_system or self.staging)

    def describe(self) -> str:
        if self.release:
            return f"release {self.release}"
        if self.tree:
            return f"tree {self.tree}"
        if self.run:
            return f"run verdict {self.run}"
        if self.repeat:
            return f"a cached repeat of a baseline build of the {self.repeat}"
        if self.current_system:
            return "the host's /run/current-system is the built NixOS toplevel"
        if self.staging:
            return "every host runs the service store paths a passing staging run verified"
        parts = [f"{k}={v}" for k, v in self.match]
        parts += [f"where {k} in {'|'.join(v)}" for k, v in self.where]
        parts += [f"expect {k}{' in ' + '|'.join(v) if v else ' recorded'}" for k, v in self.expect]
        return ", ".join(parts) or "any result"


@dataclass(frozen=True)
class GateItem:
    text: str
    section: str
    required: bool
    require: tuple[Selector, ...] = ()
    manual: tuple[str, ...] = ()
    note: str = ""
    missing_check: str = ""  # the faithful check does not exist yet: unmet with this reason

    @property
    def checked(self) -> bool:
        return bool(self.require or self.manual or self.missing_check)


@dataclass(frozen=True)
class Gate:
    id: str
    title: str
    outcome: str
    after: str | None
    items: tuple[GateItem, ...]
    source: str
    digest: str = ""  # sha256 of the gate file
    custom: bool = False  # loaded from a gates dir other than the bundled one
    dir_digest: str = ""  # sha256 over the gates dir's *.yaml (custom dirs)
    allow_dirty: bool = False  # dirty_tree: allowed
    user_tests: bool = False  # user_tests: true

    @property
    def sections(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(item.section for item in self.items))


def default_dir() -> Path:
    return Path(str(importlib.resources.files("choirci.checks") / "gates"))


def available(directory: Path) -> tuple[str, ...]:
    return tuple(sorted(p.stem for p in directory.glob("*.yaml")))


def gates_dir(directory: Path | None) -> Path:
    """``directory`` (the bundled gates when None); a configured dir that is not there is an
    error, never a silent "no gates"."""
    if directory is None:
        return default_dir()
    if not directory.is_dir():
        what = "is not a directory" if directory.exists() else "does not exist"
        raise ConfigError(f"gates dir {directory} {what}; fix 'gates:' in choirci.yaml or "
                          "--gates, or drop it to use the bundled gates")
    return directory


def check_name(value: str, what: str = "gate id") -> str:
    """A gate id is a name (``phase-2``), never a path."""
    if not isinstance(value, str) or not NAME.fullmatch(value):
        raise ConfigError(f"{what} {value!r} is not a gate name (lowercase letters, digits, "
                          "'-' and '_'; e.g. phase-2); gates are looked up by name, never by path")
    return value


def is_bundled(directory: Path) -> bool:
    return directory.resolve() == default_dir().resolve()


def digest_dir(directory: Path) -> str:
    sha = hashlib.sha256()
    for path in sorted(directory.glob("*.yaml")):
        sha.update(f"{path.name}\0{hashlib.sha256(path.read_bytes()).hexdigest()}\n".encode())
    return sha.hexdigest()


def load(gate_id: str, directory: Path | None = None) -> Gate:
    check_name(gate_id)
    directory = gates_dir(directory)
    path = directory / f"{gate_id}.yaml"
    if not path.is_file():
        known = available(directory)
        hint = difflib.get_close_matches(gate_id, known, n=1)
        did_you_mean = f"did you mean {hint[0]!r}? " if hint else ""
        raise ConfigError(
            f"no gate {gate_id!r} in {directory}; {did_you_mean}known gates: "
            f"{', '.join(known) or 'none'}"
        )
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    # Parsed once per content: a run evaluates every gate when it starts and when it ends,
    # and YAML with positions is the slow part (~50 ms for the bundled gates).
    gate = _PARSED.get((gate_id, digest))
    if gate is None:
        gate = _PARSED[(gate_id, digest)] = parse(load_yaml(path), gate_id)
    custom = not is_bundled(directory)
    return replace(gate, digest=digest, custom=custom,
                   dir_digest=digest_dir(directory) if custom else "")


_PARSED: dict[tuple[str, str], Gate] = {}


def load_all(directory: Path | None = None) -> tuple[Gate, ...]:
    directory = gates_dir(directory)
    return tuple(load(gate_id, directory) for gate_id in available(directory))


class _Check:
    def __init__(self, located: Located) -> None:
        self.located = located

    def fail(self, path: str, message: str) -> ConfigError:
        return ConfigError(f"{self.located.where(path)}: {path}: {message}")

    def mapping(self, value: Any, path: str, allowed: tuple[str, ...]) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(path, f"expected a mapping, got {_describe(value)}")
        for key in value:
            if key not in allowed:
                hint = difflib.get_close_matches(str(key), allowed, n=1)
                did_you_mean = f" (did you mean {hint[0]!r}?)" if hint else ""
                raise self.fail(f"{path}.{key}" if path else str(key),
                                f"unknown key{did_you_mean}; allowed: {', '.join(allowed)}")
        return value

    def text(self, value: Any, path: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(path, f"expected a non-empty string, got {_describe(value)}")
        return value.strip()

    def listing(self, value: Any, path: str) -> list[Any]:
        if not isinstance(value, list) or not value:
            raise self.fail(path, f"expected a non-empty list, got {_describe(value)}")
        return value

    def values(self, value: Any, path: str) -> tuple[str, ...]:
        if value is True:
            return ()
        items = value if isinstance(value, list) else [value]
        if not items or any(isinstance(v, (dict, list)) or v is None for v in items):
            raise self.fail(path, "expected a value, a list of values, or true for 'recorded'")
        return tuple(str(v).lower() if isinstance(v, bool) else str(v) for v in items)


GATE_KEYS = ("id", "title", "outcome", "after", "sections", "dirty_tree", "user_tests")


def parse(located: Located, gate_id: str) -> Gate:
    c = _Check(located)
    top = c.mapping(located.data, "", GATE_KEYS)
    if c.text(top.get("id"), "id") != gate_id:
        raise c.fail("id", f"is {top.get('id')!r} but the file is {gate_id}.yaml; make them equal")
    after = top.get("after")
    if after is not None:
        after = c.text(after, "after")
        if not NAME.fullmatch(after):
            raise c.fail("after", f"{after!r} is not a gate name (e.g. phase-1); never a path")
        if after == gate_id:
            raise c.fail("after", "a gate cannot come after itself")
    dirty = top.get("dirty_tree", "refused")
    if dirty not in ("refused", "allowed"):
        raise c.fail("dirty_tree", f"expected 'allowed' or 'refused', got {_describe(dirty)}")
    user_tests = top.get("user_tests", False)
    if not isinstance(user_tests, bool):
        raise c.fail("user_tests", f"expected true or false, got {_describe(user_tests)}")
    items: list[GateItem] = []
    for s_index, section in enumerate(c.listing(top.get("sections"), "sections")):
        items += _section(c, section, f"sections[{s_index}]")
    if not any(item.required for item in items):
        raise c.fail("sections", "no required item: a gate that checks nothing would always "
                     "pass; mark a section required: true")
    if not any(item.required and any(s.on_results for s in item.require) for item in items):
        raise c.fail("sections", "no required item reads the run's own results (only manual "
                     "files or record facts), so a run could pass it without testing anything; "
                     "add a 'require:' selector such as 'closure: sandbox' or 'run: pass'")
    _one_file_per_line(c, items)
    return Gate(
        id=gate_id,
        title=c.text(top.get("title"), "title"),
        outcome=c.text(top["outcome"], "outcome") if "outcome" in top else "",
        after=after,
        items=tuple(items),
        source=located.source,
        allow_dirty=dirty == "allowed",
        user_tests=user_tests,
    )


def _one_file_per_line(c: _Check, items: list[GateItem]) -> None:
    owner: dict[str, str] = {}
    for item in items:
        for name in item.manual:
            if name in owner:
                raise c.fail("sections", f"manual file {name} serves two checklist lines "
                             f"({owner[name]!r} and {item.text!r}); give each line its own file")
            owner[name] = item.text


def _section(c: _Check, value: Any, path: str) -> list[GateItem]:
    section = c.mapping(value, path, ("title", "required", "items", "note"))
    title = c.text(section.get("title"), f"{path}.title")
    required = section.get("required", True)
    if not isinstance(required, bool):
        raise c.fail(f"{path}.required", f"expected true or false, got {_describe(required)}")
    return [
        _item(c, raw, f"{path}.items[{i}]", title, required)
        for i, raw in enumerate(c.listing(section.get("items"), f"{path}.items"))
    ]


def _item(c: _Check, value: Any, path: str, section: str, required: bool) -> GateItem:
    if isinstance(value, str):
        value = {"text": value}
    raw = c.mapping(value, path, ("text", "require", "manual", "note", "required",
                                  "missing_check"))
    required = raw.get("required", required)
    if not isinstance(required, bool):
        raise c.fail(f"{path}.required", f"expected true or false, got {_describe(required)}")
    manual = raw.get("manual")
    item = GateItem(
        text=c.text(raw.get("text"), f"{path}.text"),
        section=section,
        required=required,
        require=tuple(_selector(c, s, f"{path}.require[{i}]")
                      for i, s in enumerate(c.listing(raw["require"], f"{path}.require")))
        if "require" in raw else (),
        manual=tuple(_manual_path(c, m, f"{path}.manual")
                     for m in (manual if isinstance(manual, list) else [manual]))
        if manual is not None else (),
        note=c.text(raw["note"], f"{path}.note") if "note" in raw else "",
        missing_check=c.text(raw["missing_check"], f"{path}.missing_check")
        if "missing_check" in raw else "",
    )
    if item.required and not item.checked:
        raise c.fail(path, "a required item needs 'require:' selectors or 'manual:' evidence "
                     "files; add one, or set required: false on the item or its section")
    return item


def _manual_path(c: _Check, value: Any, path: str) -> str:
    text = c.text(value, path)
    if text.startswith("/") or ".." in Path(text).parts:
        raise c.fail(path, f"{text!r} must be a path inside the evidence dir, e.g. "
                     "manual/phase-2/workflow-runs.md")
    return text


def _selector(c: _Check, value: Any, path: str) -> Selector:
    raw = c.mapping(value, path, (*SELECTOR_KEYS, "release", *RECORD_SELECTORS))
    if "release" in raw or any(key in raw for key in RECORD_SELECTORS):
        return _record_selector(c, raw, path)
    match = tuple((k, c.text(str(raw[k]) if raw[k] is not None else None, f"{path}.{k}"))
                  for k in MATCH_KEYS if k in raw)
    if not match:
        raise c.fail(path, f"a selector needs one of {', '.join(MATCH_KEYS)} "
                     "(e.g. 'closure: sandbox' or 'marker: host')")
    for key, allowed in (("area", AREAS), ("marker", MARKERS)):
        value_ = dict(match).get(key)
        if value_ is not None and value_ not in allowed:
            raise c.fail(f"{path}.{key}", f"unknown {key} {value_!r}; use one of {', '.join(allowed)}")
    keys = dict(match)
    if "check" in keys:
        problem = bundled.problem(keys["check"])
        if problem:
            raise c.fail(f"{path}.check", problem)
    elif "param" in keys:
        raise c.fail(f"{path}.param", "'param' narrows a 'check:'; name the check too")
    return Selector(match=match, where=_props(c, raw.get("where"), f"{path}.where"),
                    expect=_props(c, raw.get("expect"), f"{path}.expect"))


def _record_selector(c: _Check, raw: dict[str, Any], path: str) -> Selector:
    if len(raw) != 1:
        raise c.fail(path, "'release:', 'tree:', 'run:' and 'repeat:' stand alone; put other "
                     "keys in another selector")
    for key, allowed in RECORD_SELECTORS.items():
        if key in raw:
            if raw[key] not in allowed:
                raise c.fail(f"{path}.{key}", f"expected {allowed[0]!r}, got {_describe(raw[key])}")
            return Selector(**{key: raw[key]})
    fact = raw["release"]
    if fact not in RELEASE_FACTS:
        raise c.fail(f"{path}.release",
                     f"unknown release fact {fact!r}; use one of {', '.join(RELEASE_FACTS)}")
    return Selector(release=fact)


def _props(c: _Check, value: Any, path: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    if value is None:
        return ()
    table = value if isinstance(value, dict) else c.mapping(value, path, ())
    return tuple((str(k), c.values(v, f"{path}.{k}")) for k, v in table.items())
