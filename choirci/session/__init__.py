"""The controller's session: pytest reports become record items (``outcomes``) and the
controller-only plugin (``recorder``) writes the evidence once per run, never from an xdist
worker. The pytest-facing top of the evidence flow; it imports the record, evidence writers
and gates, and no area.
"""
