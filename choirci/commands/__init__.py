"""Subcommands of the ``choirci`` console script (see choirci/cli.py for the contract)."""
