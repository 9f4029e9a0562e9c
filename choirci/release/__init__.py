"""Release: what is promoted and whether the promoted host runs it.

* ``manifest`` (the release manifest: JSON and the 11-key ``.env``), ``compare`` (manifest vs
  store / host / another manifest, pure), ``verify`` (store and bin-dir checks for
  ``choirci manifest verify``), ``git`` (clean-tree state for ``manifest build``): adapters,
  no pytest.
* ``record``: the release checklist line (grind SHA, promoted SHA, domain, prompt result),
  derived from a run record.
* ``smoke``: the ``release`` area, ``release::prompt_smoke``.
"""
