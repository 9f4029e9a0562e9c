"""Rust: targeted test binaries as pytest items.

* ``cargo`` (compile, list executables), ``libtest`` (parse libtest's output), ``plan``
  (which binaries and exact tests a selection means), ``run`` (run one binary once and
  attribute its output): adapters, no pytest. They may import ``choirci.config``, the Nix
  adapter (to compile inside ``nix develop``) and the base modules.
* ``area``: one item per libtest test, sharing each binary's single run.
"""
