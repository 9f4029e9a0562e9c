"""``choirci matrix``: the GitHub Actions matrix of shards for the workspace's config."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from choirci import config as config_mod
from choirci.ci import matrix
from choirci.cli import add_config_argument
from choirci.errors import ChoirciError

HELP = "print the GitHub Actions matrix (one shard per closure, plus loops, rust, hosts)"

DESCRIPTION = """\
Print the GitHub Actions matrix for the workspace as JSON: one shard per closure, one for
the CI-parity loops, one for the Rust tests, one for the host checks when a grind host or
host_checks is configured, and one for the release smoke when release.prompt_url is set
(an area with nothing configured gets no shard). Each shard is a `pytest --grind`
selection (its "args"); the shards together run exactly the items of one `pytest --grind`.
When $GITHUB_OUTPUT is set, the matrix is also written there as the step outputs
`matrix`, `shards` and `count`.

examples:
  choirci matrix                   # in the directory holding choirci.yaml
  choirci matrix --choirci-config ci/choirci.yaml   # each shard's args carry it too
  # each shard job of choirci's reusable workflow (.github/workflows/choirci.yml) runs
  #   CHOIRCI_SHARD=<shard> CHOIRCI_EXPECTED_SHARDS=<expected_shards> pytest <args>
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_argument(
        parser,
        "choirci.yaml to read (default: $CHOIRCI_CONFIG, else the nearest at or above the "
        "current directory); passed on to every shard as --choirci-config",
    )
    parser.add_argument(
        "--github-output",
        metavar="FILE",
        default=os.environ.get("GITHUB_OUTPUT") or None,
        help="append matrix=, shards= and count= to FILE (default: $GITHUB_OUTPUT when set)",
    )


def run(args: argparse.Namespace) -> int:
    cfg = config_mod.resolve(args.config, Path.cwd())
    found = matrix.shards(cfg, config_arg=args.config)
    if not found:
        # An empty matrix is a workflow error in Actions, and a run of nothing proves nothing.
        where = cfg.path or cfg.root
        raise ChoirciError(
            f"{where}: nothing to run, so no shards; configure closures, loops, rust.targets "
            "or hosts"
        )
    print(matrix.render(matrix.matrix(found)))
    if args.github_output:
        matrix.write_github_output(Path(args.github_output), found)
    return 0
