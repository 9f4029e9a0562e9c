"""``choirci evidence merge DIR... --out DIR``: matrix shards -> one record and verdict;
``choirci evidence verify DIR --allowed-signers F``: the same as ``choirci release verify``."""

from __future__ import annotations

import argparse
from pathlib import Path

from choirci.cli import add_config_argument
from choirci.commands import release
from choirci.commands.gate import optional_config
from choirci.errors import ChoirciError
from choirci.evidence import files as evidence
from choirci.evidence.record import counts_text, run_verdict
from choirci.evidence.redact import Redactor
from choirci.gates.verdicts import EXIT_CODES

HELP = "merge the evidence dirs of matrix shards into one record; verify a signed evidence dir"
DESCRIPTION = """\
merge: read choirci.json from each DIR (one per matrix shard, as written by
`pytest --grind` with CHOIRCI_SHARD set), combine them into one record and write
choirci.json, junit.xml and report.md to --out, exactly as a single run would. The order
of the DIRs does not matter and merging twice changes nothing; a shard named in
CHOIRCI_EXPECTED_SHARDS but absent makes the result incomplete. When two DIRs hold the
same shard, the later run wins; runs of one shard from different commits are refused
unless --keep-commit says which commit to keep. A shard run that names no expected shards
is incomplete on its own. Exit status: 0 pass, 1 fail, 3 incomplete, 2 refused or bad
input (a malformed record, shard runs of different commits).

example:  choirci evidence merge shards/*/ --out evidence/
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    merge = sub.add_parser("merge", help="combine shard evidence dirs into one",
                           description=DESCRIPTION,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    merge.add_argument("dirs", nargs="+", metavar="DIR", type=Path, help="shard evidence dirs")
    merge.add_argument("--out", metavar="DIR", type=Path, required=True,
                       help="where the merged evidence goes")
    merge.add_argument("--keep-commit", metavar="SHA", default=None,
                       help="when runs of one shard tested different commits, keep the runs "
                       "of this (full) commit id")
    add_config_argument(merge, "config file for gates and redaction (default: "
                        "$CHOIRCI_CONFIG, else the nearest choirci.yaml, if any)")
    release.add_verify_arguments(sub.add_parser(
        "verify", help="check a signed evidence dir (same as `choirci release verify`)",
        description=release.VERIFY_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter))


def run(args: argparse.Namespace) -> int:
    if args.action == "verify":
        return release.run_verify(args)
    out = args.out.resolve()
    if any(d.resolve() == out for d in args.dirs):
        raise ChoirciError(f"--out {args.out} is also an input; write the merge to a new dir")
    cfg = optional_config(args.config)
    record = evidence.merge_dirs(args.dirs, args.keep_commit)
    redactor = Redactor.from_env(extra=cfg.redact if cfg else ())
    written = evidence.write_all(record, args.out, redactor,
                                 gates_dir=cfg.gates_dir if cfg else None)
    verdict = run_verdict(record)
    shards = ", ".join(run.shard or "(unsharded)" for run in record.runs)
    print(f"choirci: merged {len(record.runs)} shard run(s) ({shards}) into {args.out}")
    for path in written:
        print(f"  {path}")
    print(f"choirci: verdict {verdict.verdict.upper()} ({counts_text(record.counts())})")
    for reason in verdict.reasons[:20]:
        print(f"  - {redactor(reason)}")
    return EXIT_CODES[verdict.verdict]
