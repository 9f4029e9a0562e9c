"""How pytest reports become outcomes: the harness breaking is an error, never a failure."""

from __future__ import annotations

import pytest

from choirci.session.outcomes import phase_outcome


def report(when: str, outcome: str, properties: list[tuple[str, object]] | None = None
           ) -> pytest.TestReport:
    return pytest.TestReport(
        nodeid="checks/test_http.py::test_login[grind]", location=("x", 0, "x"), keywords={},
        outcome=outcome, longrepr="boom" if outcome == "failed" else None, when=when,
        user_properties=properties or [],
    )


@pytest.mark.parametrize(
    ("when", "outcome", "properties", "expected"),
    [
        ("call", "passed", [], "passed"),
        ("call", "failed", [], "failed"),
        ("setup", "failed", [], "error"),
        ("teardown", "failed", [], "error"),
        ("call", "failed", [("harness_error", "ssh exit 255")], "error"),
        ("call", "failed", [("host", "grind")], "failed"),
    ],
)
def test_phase_outcome(when: str, outcome: str, properties: list[tuple[str, object]],
                       expected: str) -> None:
    assert phase_outcome(report(when, outcome, properties)) == expected
