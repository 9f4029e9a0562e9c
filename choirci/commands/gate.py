"""``choirci gate PHASE --evidence DIR``: the verdict of one phase gate, and its report."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from choirci import config as config_mod
from choirci.cli import add_config_argument
from choirci.config import Config
from choirci.evidence import files as evidence
from choirci.evidence.redact import Redactor
from choirci.gates import definitions as gates
from choirci.gates import manual, order, verdicts

HELP = "judge a phase gate (pass/fail/incomplete) from an evidence dir and write its report"
DESCRIPTION = """\
Evaluate one gate (phase-1 .. phase-5, definition-of-done, release) against the run record
in an evidence dir, print the verdict and write gates/<gate>.md (paste it on the phase
issue) and gates/<gate>.json next to the evidence, bound to the commit, tree state, record
digest and gate definition digest it judged (verdicts of an earlier record in the dir move
to gates/stale/). junit.xml is cross-checked against choirci.json.

Exit status: 0 pass, 1 fail, 3 incomplete (interrupted run, missing shard), 2 refused or
bad input (unknown or malformed gate, malformed record, phase order not met).

Phases are ordered: a gate with `after: phase-N` is refused until phase-N passes again,
recomputed from a run record of the SAME commit (this evidence dir or a --history DIR);
verdict files are never trusted for it. A dirty git tree fails every gate unless the gate
says `dirty_tree: allowed`. Custom gate definitions (--gates, or 'gates:' in choirci.yaml)
are named in the verdict with their digest and never satisfy a bundled gate's order.
No option turns a failing gate into a pass.

example:  choirci gate phase-2 --evidence evidence/
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("gate", metavar="GATE", help="gate id, e.g. phase-2 or release")
    parser.add_argument("--evidence", metavar="DIR", type=Path, default=None,
                        help="evidence dir holding choirci.json (default: the config's "
                        "'evidence', else ./evidence)")
    parser.add_argument("--history", metavar="DIR", type=Path, action="append", default=[],
                        help="another evidence dir (repeatable): a run of the same commit where "
                        "earlier phases pass (recomputed from its choirci.json), or the cold "
                        "baseline build that phase-2's cached repeat is compared with")
    parser.add_argument("--gates", metavar="DIR", type=Path, default=None,
                        help="custom gate definitions (default: the config's 'gates', else the "
                        "bundled checks/gates); recorded as custom in the verdict")
    add_config_argument(parser, "config file (default: $CHOIRCI_CONFIG, else the nearest "
                        "choirci.yaml, if any)")


def optional_config(explicit: str | None) -> Config | None:
    """The config when one is given or found; gate and merge also work without one."""
    if explicit or os.environ.get("CHOIRCI_CONFIG"):
        return config_mod.resolve(explicit, Path.cwd())
    found = config_mod.find_config(Path.cwd())
    return config_mod.load(found) if found else None


def source(directory: Path) -> order.Source:
    """A run record with what is needed to judge gates on it."""
    record = evidence.load(directory)
    problem = evidence.junit_problem(directory, record)
    commit = evidence.record_commit(record)
    return order.Source(
        directory=directory, record=record, digest=evidence.record_digest(directory),
        commit=commit, attest=lambda names: manual.attest(directory, names, commit),
        problems=(problem,) if problem else (),
    )


def run(args: argparse.Namespace) -> int:
    gates.check_name(args.gate)
    cfg = optional_config(args.config)
    directory = args.evidence or (cfg.evidence_dir if cfg else Path("evidence"))
    gates_dir = args.gates or (cfg.gates_dir if cfg else None)
    gate = gates.load(args.gate, gates_dir)
    current = source(directory)
    stale = evidence.archive_stale_gates(directory, current.digest)
    for path in stale:
        print(f"choirci: {path.name} judged an earlier record; moved to {path.parent}")
    sources = [current, *(source(d) for d in args.history
                          if d.resolve() != directory.resolve())]
    names = [name for item in gate.items for name in item.manual]
    verdict = verdicts.evaluate(gate, current.record, current.attest(names), current.problems,
                                [s.record for s in sources[1:]])
    # An interrupted run is judged incomplete (exit 3) before any order question.
    chain = (order.verify(gate, current.commit, sources, order.loader(gate, gates_dir))
             if verdict.verdict != "incomplete" else [])
    redactor = Redactor.from_env(extra=cfg.redact if cfg else ())
    binding = {"record_sha256": current.digest, "order": chain}
    written = evidence.write_gate(verdict, evidence.redacted(current.record, redactor),
                                  directory, redactor, binding)
    met = sum(1 for v in verdict.items if v.item.required and v.met)
    required = sum(1 for v in verdict.items if v.item.required)
    attested = sum(1 for v in verdict.items if v.item.required and v.met and v.attested_by)
    custom = f"; custom gates {gate.dir_digest[:12]}" if gate.custom else ""
    print(f"choirci: gate {gate.id}: {verdict.verdict.upper()} ({met}/{required} required items "
          f"met, {attested} of them attested by a person{custom})")
    for reason in verdict.reasons:
        print(f"  - {redactor(reason)}")
    print(f"choirci: report written to {written[-1]}")
    return verdict.exit_code
