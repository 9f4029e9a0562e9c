"""``choirci parity``: compare the grind run's evidence with the merged Actions evidence."""

from __future__ import annotations

import argparse
from pathlib import Path

from choirci.ci import parity
from choirci.evidence import files as evidence

HELP = "check that grind and GitHub Actions ran the same items with the same commands"

DESCRIPTION = """\
Compare two evidence records: the grind run's (`pytest --grind`) and the Actions run's
(the shards merged by `choirci evidence merge`). They are at parity when both ran the same
node ids and every item recorded the same command (workspace roots aside). Exits 0 at
parity, 1 on any difference (each one listed), 2 when the evidence cannot be read.
Outcome differences are listed as notes: judging outcomes is the gate's job.

example:
  choirci parity evidence/ actions-evidence/
  choirci parity grind/choirci.json merged/choirci.json
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("grind", metavar="GRIND", help="grind evidence dir (or its choirci.json)")
    parser.add_argument(
        "actions", metavar="ACTIONS", help="merged Actions evidence dir (or its choirci.json)"
    )


def run(args: argparse.Namespace) -> int:
    grind = evidence.load(Path(args.grind))
    actions = evidence.load(Path(args.actions))
    result = parity.compare_records(grind, actions)
    print(parity.render(result))
    return 0 if result.ok else 1

