"""The two error families (see STYLE.md).

A *failure* is the system under test misbehaving; it is reported by an item. An *error* is
the harness or its input being broken (bad config, ``nix`` missing, SSH transport failure):
it is raised as a :class:`ChoirciError` whose ``str()`` is one line an operator can act on.
"""

from __future__ import annotations


class ChoirciError(Exception):
    """A user-facing problem: one line saying what, where and how to fix it."""


class ConfigError(ChoirciError):
    """The configuration file (or a command-line option) is invalid."""


class ToolMissing(ChoirciError):
    """An external program (nix, cargo, ssh) is not installed or not on PATH."""
