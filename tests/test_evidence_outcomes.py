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


def test_output_an_area_adds_to_a_passing_test_is_kept() -> None:
    """libtest's --show-output text for a passing Rust test arrives as a report section; it
    must reach the record (and JUnit system-out), not only pytest's captured stdout."""
    from choirci.session.outcomes import build

    call = pytest.TestReport(
        nodeid="rust::c::b::t", location=("x", 0, "x"), keywords={}, outcome="passed",
        longrepr=None, when="call", duration=0.5,
        sections=[("Captured stdout call", "printed by pytest"),
                  ("Captured rust test output call", "worker crashed (expected by this test)"),
                  ("Captured stderr call", "to stderr")])
    item = build("rust::c::b::t", [call], ("rust",))
    assert "printed by pytest" in item.stdout
    assert "--- rust test output call ---\nworker crashed (expected by this test)" in item.stdout
    assert item.stderr == "to stderr"


@pytest.mark.parametrize(("recorded", "expected"), [
    ("2.25", 2.25), ("0", 0.0), ("-1", 9.0), ("nan", 9.0), ("inf", 9.0), ("soon", 9.0)])
def test_an_area_recorded_duration_wins_when_it_is_a_real_number(recorded: str,
                                                                expected: float) -> None:
    """One closure of a batched build, one test of a binary run: the area knows the item's
    own time; pytest measured the batch (9 s here)."""
    from choirci.session.outcomes import build

    call = pytest.TestReport(nodeid="closures::x", location=("x", 0, "x"), keywords={},
                             outcome="passed", longrepr=None, when="call", duration=9.0,
                             user_properties=[("duration", recorded)])
    assert build("closures::x", [call], ("nix",)).duration == expected
