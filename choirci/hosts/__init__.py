"""Hosts: the testinfra checks of the grind/prod contract.

* ``probe`` and ``promoted`` (shell commands run on the host and parsers of what they print)
  and ``connect`` (testinfra hosts: ``local://`` or SSH with one ControlMaster per host):
  adapters, no pytest. They may import ``choirci.config`` and the base modules.
* ``area`` collects the user-facing check modules in ``checks/`` (shipped as
  ``choirci.checks``) per host; ``lib`` is the small API those modules use (run a probe,
  fail with one line, read the host checks config).
"""
