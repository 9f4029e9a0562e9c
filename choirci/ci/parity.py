"""CI parity: did the grind run and the (merged) Actions run run the same items the same way?

Two runs are at parity when they ran the same set of node ids and, item by item, recorded
the same commands: every property named ``command`` or ending in ``.command`` /
``_command`` (``command`` for closures and loops, ``rust.build_command`` and
``rust.command`` for Rust tests; host checks run no command). Outcomes may differ (that is what the gate judges, not
parity) and are listed as notes. Before comparing, commands are normalised for the two
things that legitimately differ between machines and shardings:

* the workspace root (``/opt/choiros/workspace`` on grind, ``/home/runner/work/...`` in
  Actions) becomes ``<root>``, taken from each shard run's recorded provenance; so does
  the metadata hash in a cargo test binary's name (``deps/<crate>-<16 hex>``), which
  covers the absolute path of path dependencies outside the workspace (dioxus-desktop's
  ``../shared-types``) and so changes with the root;
* a closure item records the ONE batched ``nix build`` of its run; in a one-closure shard
  that batch holds only this closure, so the other closures' installables are dropped.

Anything else that differs (another flag, another toolchain's store path) is a difference,
and so is the commit: two runs are only comparable when both tested the same one.
"""

from __future__ import annotations

import re
import shlex
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from choirci.evidence.record import RunRecord

ROOT_TOKEN = "<root>"
# Outcomes of items that were known but never ran: not part of "what ran".
NOT_RUN = frozenset({"deselected", "missing"})


@dataclass(frozen=True)
class Entry:
    """One item as parity sees it: node id, normalised commands (property name -> command,
    sorted by name) and outcome."""

    nodeid: str
    commands: tuple[tuple[str, str], ...] = ()
    outcome: str = "passed"
    installable: str | None = None


@dataclass(frozen=True)
class CommandDiff:
    nodeid: str
    name: str  # the property, e.g. command or rust.command
    grind: str | None
    actions: str | None


def is_command(name: str) -> bool:
    return name == "command" or name.endswith((".command", "_command"))


@dataclass(frozen=True)
class Parity:
    only_grind: tuple[str, ...] = ()
    only_actions: tuple[str, ...] = ()
    commands: tuple[CommandDiff, ...] = ()
    duplicates: tuple[str, ...] = ()  # a node id run twice on one side (overlapping shards)
    problems: tuple[str, ...] = ()  # incomplete evidence on either side
    commit: str = ""  # why the two sides did not test the same commit; "" when they did
    outcome_notes: tuple[str, ...] = ()
    grind_count: int = 0
    actions_count: int = 0

    @property
    def ok(self) -> bool:
        return not (self.only_grind or self.only_actions or self.commands
                    or self.duplicates or self.problems or self.commit)


# --------------------------------------------------------------------------- records -> entries


def entries(record: RunRecord) -> list[Entry]:
    """The items that ran, with the workspace root of their shard run replaced by ``<root>``."""
    found = []
    for run, item in record.iter_items():
        if item.outcome in NOT_RUN:
            continue
        root = (run.provenance.root or "").rstrip("/")
        # The last value of a repeated property wins, as in ItemResult.prop.
        commands = {name: _rooted(value, root) for name, value in item.properties
                    if is_command(name)}
        found.append(Entry(item.nodeid, tuple(sorted(commands.items())), item.outcome,
                           item.prop("installable")))
    return found


CARGO_HASH = re.compile(r"(/deps/[A-Za-z0-9_]+)-[0-9a-f]{16}\b")


def _rooted(command: str, root: str) -> str:
    command = CARGO_HASH.sub(r"\1-<hash>", command)
    return command.replace(root, ROOT_TOKEN) if root else command


def _unbatch(command: str, own: str | None, others: frozenset[str]) -> str:
    """``command`` without the other closures' installables of a batched build."""
    if own is None:
        return command
    try:
        argv = shlex.split(command)
    except ValueError:
        return command
    return shlex.join(a for a in argv if a == own or a not in others)


# --------------------------------------------------------------------------- comparison


def compare(grind: Sequence[Entry], actions: Sequence[Entry],
            problems: Iterable[str] = (), commit: str = "") -> Parity:
    installables = frozenset(e.installable for e in (*grind, *actions) if e.installable)
    left = {e.nodeid: e for e in grind}
    right = {e.nodeid: e for e in actions}
    shared = [nodeid for nodeid in left if nodeid in right]
    return Parity(
        only_grind=tuple(sorted(set(left) - set(right))),
        only_actions=tuple(sorted(set(right) - set(left))),
        commands=tuple(_command_diffs(left, right, sorted(shared), installables)),
        duplicates=_duplicates("grind", grind) + _duplicates("actions", actions),
        problems=tuple(problems),
        commit=commit,
        outcome_notes=tuple(
            f"{n}: {left[n].outcome} on grind, {right[n].outcome} in actions"
            for n in sorted(shared) if left[n].outcome != right[n].outcome
        ),
        grind_count=len(left),
        actions_count=len(right),
    )


def _command_diffs(left: dict[str, Entry], right: dict[str, Entry], shared: list[str],
                   installables: frozenset[str]) -> Iterable[CommandDiff]:
    for nodeid in shared:
        ours = _normalised(left[nodeid], installables)
        theirs = _normalised(right[nodeid], installables)
        for name in sorted(set(ours) | set(theirs)):
            if ours.get(name) != theirs.get(name):
                yield CommandDiff(nodeid, name, ours.get(name), theirs.get(name))


def _normalised(entry: Entry, installables: frozenset[str]) -> dict[str, str]:
    return {name: _unbatch(command, entry.installable, installables)
            for name, command in entry.commands}


def _duplicates(side: str, found: Sequence[Entry]) -> tuple[str, ...]:
    counts = Counter(e.nodeid for e in found)
    return tuple(f"{side}: {n} ran {c} times" for n, c in sorted(counts.items()) if c > 1)


def compare_records(grind: RunRecord, actions: RunRecord) -> Parity:
    """Parity of two run records; incomplete evidence on either side is a problem."""
    problems = [f"grind evidence: {reason}" for reason in grind.incomplete_reasons]
    problems += [f"actions evidence: {reason}" for reason in actions.incomplete_reasons]
    return compare(entries(grind), entries(actions), problems, commit_difference(grind, actions))


def commit_difference(grind: RunRecord, actions: RunRecord) -> str:
    """"" when both sides tested one and the same commit, else what each side tested."""
    ours, theirs = tuple(grind.commits), tuple(actions.commits)
    if ours == theirs and len(ours) == 1:
        return ""
    return f"grind tested {', '.join(ours) or 'nothing'}; actions tested {', '.join(theirs) or 'nothing'}"


# --------------------------------------------------------------------------- report


def render(parity: Parity) -> str:
    verdict = "same items, same commands" if parity.ok else "DIFFERENT"
    lines = [(f"parity: {verdict} (grind ran {parity.grind_count} items, "
             f"actions ran {parity.actions_count})")]
    lines += [f"  commit differs: {parity.commit}"] if parity.commit else []
    lines += [f"  problem: {text}" for text in parity.problems]
    lines += [f"  only on grind: {nodeid}" for nodeid in parity.only_grind]
    lines += [f"  only in actions: {nodeid}" for nodeid in parity.only_actions]
    lines += [f"  duplicate: {text}" for text in parity.duplicates]
    for diff in parity.commands:
        lines += [f"  command differs: {diff.nodeid} ({diff.name})",
                  f"    grind:   {_show(diff.grind)}",
                  f"    actions: {_show(diff.actions)}"]
    lines += [f"  note (outcome, not parity): {text}" for text in parity.outcome_notes]
    return "\n".join(lines)


def _show(command: str | None) -> str:
    return "(no command recorded)" if command is None else command
