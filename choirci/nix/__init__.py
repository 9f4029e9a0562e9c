"""Nix: the adapter and the two areas that run through it.

* ``adapter`` (:class:`~choirci.nix.adapter.Nix`: every ``nix`` call, feature probing),
  ``formats`` (parsers of Nix's JSON and log output), ``lock`` (the per-machine build lock),
  ``build`` (ONE batched ``nix build`` for every closure, classified present / substituted /
  built): adapters, no pytest. They may import ``choirci.config`` and the base modules
  (``errors``, ``proc``, ``text``).
* ``closures`` (one item per closure) and ``loops`` (CI-parity steps, optionally inside
  ``nix develop``): the areas; they may also import ``choirci.items`` and ``choirci.settings``.
"""
