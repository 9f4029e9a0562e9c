"""CI: the GitHub Actions matrix (``matrix``: shards whose union is one ``pytest --grind``)
and CI parity (``parity``: the grind host's evidence vs the merged Actions evidence). Pure
functions of the config and the run record; they import no area.
"""
