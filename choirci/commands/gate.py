"""``choirci gate PHASE --evidence DIR``: the verdict of one phase gate, and its report."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from choirci import config as config_mod
from choirci.cli import add_config_argument
from choirci.config import Config
from choirci.errors import ChoirciError
from choirci.evidence import files as evidence
from choirci.evidence.redact import Redactor
from choirci.gates import definitions as gates
from choirci.gates import verdicts

HELP = "judge a phase gate (pass/fail/incomplete) from an evidence dir and write its report"
DESCRIPTION = """\
Evaluate one gate (phase-1 .. phase-5, definition-of-done, release) against the run record
in an evidence dir, print the verdict and write gates/<gate>.md (paste it on the phase
issue) and gates/<gate>.json next to the evidence. Exit status: 0 pass, 1 fail,
2 incomplete (interrupted run, missing shard) or refused. Phases are ordered: a gate with
`after: phase-N` is refused until phase-N has a passing verdict in the evidence history.
No option turns a failing gate into a pass.

example:  choirci gate phase-2 --evidence evidence/
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("gate", metavar="GATE", help="gate id, e.g. phase-2 or release")
    parser.add_argument("--evidence", metavar="DIR", type=Path, default=None,
                        help="evidence dir holding choirci.json (default: the config's "
                        "'evidence', else ./evidence)")
    parser.add_argument("--history", metavar="DIR", type=Path, default=None,
                        help="where earlier gate verdicts live (gates/<id>.json); "
                        "default: the evidence dir")
    parser.add_argument("--gates", metavar="DIR", type=Path, default=None,
                        help="gate definitions (default: the config's 'gates', else the "
                        "bundled checks/gates)")
    add_config_argument(parser, "config file (default: $CHOIRCI_CONFIG, else the nearest "
                        "choirci.yaml, if any)")


def optional_config(explicit: str | None) -> Config | None:
    """The config when one is given or found; gate and merge also work without one."""
    if explicit or os.environ.get("CHOIRCI_CONFIG"):
        return config_mod.resolve(explicit, Path.cwd())
    found = config_mod.find_config(Path.cwd())
    return config_mod.load(found) if found else None


def check_order(gate: gates.Gate, history: Path) -> None:
    if gate.after is None:
        return
    previous = evidence.previous_verdict(history, gate.after)
    if previous != "pass":
        found = f"it is {previous!r}" if previous else "there is none"
        raise ChoirciError(
            f"{gate.id} comes after {gate.after}, and {history / 'gates' / (gate.after + '.json')} "
            f"holds no passing {gate.after} verdict ({found}); pass {gate.after} first "
            f"(choirci gate {gate.after} --evidence DIR) or give --history DIR that has it"
        )


def run(args: argparse.Namespace) -> int:
    cfg = optional_config(args.config)
    directory = args.evidence or (cfg.evidence_dir if cfg else Path("evidence"))
    gate = gates.load(args.gate, args.gates or (cfg.gates_dir if cfg else None))
    check_order(gate, args.history or directory)
    record = evidence.load(directory)
    verdict = verdicts.evaluate(gate, record, evidence.evidence_files(directory),
                                evidence.blank_files(directory))
    redactor = Redactor.from_env(extra=cfg.redact if cfg else ())
    written = evidence.write_gate(verdict, evidence.redacted(record, redactor), directory, redactor)
    met = sum(1 for v in verdict.items if v.item.required and v.met)
    required = sum(1 for v in verdict.items if v.item.required)
    print(f"choirci: gate {gate.id}: {verdict.verdict.upper()} ({met}/{required} required items met)")
    for reason in verdict.reasons:
        print(f"  - {redactor(reason)}")
    print(f"choirci: report written to {written[-1]}")
    return verdict.exit_code
