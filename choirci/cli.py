"""The ``choirci`` command: the parts of the job that are not a pytest run.

Each subcommand lives in ``choirci/commands/<name>.py`` exposing ``HELP`` (one line),
``DESCRIPTION`` (a paragraph with an example), ``add_arguments(parser)`` and
``run(args) -> int``. User mistakes print one ``choirci: error: ...`` line and exit 2.
A command that reads choirci.yaml takes it with :func:`add_config_argument`.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from types import ModuleType

from choirci import __version__
from choirci.errors import ChoirciError

COMMANDS = ("init", "gate", "evidence", "matrix", "parity", "manifest", "release")

EPILOG = """\
The main job is a pytest run:  pytest --grind [--closure NAME] [-m nix|rust|loop|host]
(or `choirci run [pytest options]`, the same thing where no pytest is on PATH).
It builds the configured closures, runs the CI-parity loop and the targeted Rust tests,
checks the hosts, and writes evidence (JUnit, JSON, Markdown) to the evidence dir.
The subcommands above work on that evidence and on releases; `choirci COMMAND --help`
describes each.
"""


RUN_HELP = """\
usage: choirci run [pytest options]   (or: choirci --grind [pytest options])

`choirci run ARGS` is `pytest --grind ARGS`, for hosts where no pytest is on PATH
(e.g. `nix run .#choirci -- --grind` on NixOS). choirci's own options are in the
"choirci:" group of pytest's help below; every other pytest option works too.
"""


def add_config_argument(parser: argparse.ArgumentParser, help: str) -> None:
    """``--choirci-config PATH``, the pytest option's name, with ``--config`` as an alias."""
    parser.add_argument("--choirci-config", "--config", dest="config", metavar="PATH",
                        default=None, help=help)


def _load(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(f"choirci.commands.{name}")
    except ModuleNotFoundError as exc:
        if exc.name == f"choirci.commands.{name}":
            return None
        raise


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="choirci",
        description="Is this commit good enough to promote? Phase gates, evidence and "
        "release manifests\nfor a Nix + Rust monorepo.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"choirci {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        module = _load(name)
        if module is None:
            continue
        command = sub.add_parser(
            name,
            help=module.HELP,
            description=module.DESCRIPTION,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(command)
        command.set_defaults(handler=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and (argv[0] == "run" or argv[0] == "--grind"):
        # `choirci run ...` / `choirci --grind ...` is the pytest job, for hosts (NixOS) where
        # `nix run .#choirci -- --grind` is the way in and no bare pytest is on PATH.
        return _run_pytest(argv[1:] if argv[0] == "run" else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "handler", None) is None:
        parser.print_help()
        return 2
    try:
        return int(args.handler(args))
    except ChoirciError as exc:
        print(f"choirci: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("choirci: interrupted", file=sys.stderr)
        return 130


def _run_pytest(args: Sequence[str]) -> int:
    import pytest

    options = list(args[: args.index("--")] if "--" in args else args)
    if "-h" in options or "--help" in options:
        # pytest's full help, which holds the choirci group; no workspace is needed for it.
        print(RUN_HELP)
        sys.stdout.flush()
        return int(pytest.main(["--help"]))
    return int(pytest.main(["--grind", *[a for a in args if a != "--grind"]]))


if __name__ == "__main__":
    sys.exit(main())
