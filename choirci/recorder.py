"""Placeholder: records results and writes evidence (issue: phase gates and evidence)."""

from __future__ import annotations

import pytest

from choirci.settings import Settings


class Recorder:
    def __init__(self, config: pytest.Config, settings: Settings) -> None:
        self.config = config
        self.settings = settings
