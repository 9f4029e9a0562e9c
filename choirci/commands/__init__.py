"""Subcommands of the ``choirci`` console script, one module each, loaded by ``choirci.cli``
(see it for the contract). The top layer: a command may import anything below it.
"""
