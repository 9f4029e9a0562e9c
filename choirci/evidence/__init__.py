"""Evidence: the one run record and everything rendered from it. No pytest here.

* ``record`` (the ``choirci.run`` JSON record: items, runs, shard merge), ``naming`` (node id
  -> area / JUnit names), ``redact``, ``atomic`` (temp file + rename), ``workspace`` (git
  state of the checkout).
* ``junit``, ``markdown``, ``files`` (write / load an evidence dir, merge shards): pure
  renderings of the record; they may read gate verdicts (``choirci.gates``).

Nothing here imports an area (``choirci.nix.closures``, ``choirci.rust.area``, ...): evidence
reads what the areas recorded as item properties, never the areas themselves. The pytest side
(reports -> record items, the controller-only recorder) is :mod:`choirci.session`.
"""
