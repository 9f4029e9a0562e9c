"""Gates: the phase checklists (``checks/gates/*.yaml``) judged against a run record.

``definitions`` loads and validates gate YAML; ``verdicts`` evaluates a gate against a record
and the evidence dir (pure). They read the run record (``choirci.evidence.record``) and the
release line (``choirci.release.record``) and import no area.
"""
