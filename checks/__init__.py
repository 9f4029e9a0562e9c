"""choirci's bundled checks: testinfra host checks and the phase gate definitions (gates/).

Installed as the package ``choirci.checks`` (see pyproject.toml's package-dir mapping).
"""
