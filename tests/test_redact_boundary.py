"""Redaction before any cut (a secret straddling a truncation must not leave a prefix) and
before pytest prints a report (the terminal is the CI log)."""

from __future__ import annotations

import json

import pytest

from choirci.session import outcomes
from choirci.evidence.redact import Redactor, for_terminal

SECRET = "sk-qa-secret-value-123"
PREFIX = SECRET[:8]  # what a cut inside the secret would leave behind
ENV = {"ZAI_API_KEY": SECRET}
# "AssertionError: " + padding + SECRET is cut after 299 characters (text.one_line): these
# paddings put the cut 8..21 characters into the secret.
PADDINGS = (262, 266, 270, 275)


def report(when: str, longrepr: str, stdout: str = "") -> pytest.TestReport:
    return pytest.TestReport(
        nodeid="test_x.py::test_leak", location=("test_x.py", 0, "test_leak"), keywords={},
        outcome="failed", longrepr=longrepr, when=when,
        sections=[("Captured stdout call", stdout)] if stdout else [],
    )


@pytest.mark.parametrize("padding", PADDINGS)
def test_message_cut_inside_a_secret_leaks_no_prefix(padding: int) -> None:
    message = "AssertionError: " + "p" * padding + SECRET
    result = outcomes.build("test_x.py::test_leak", [report("call", message)], (),
                            Redactor.from_env(ENV))
    assert PREFIX not in result.message and PREFIX not in result.details
    assert result.message.startswith("AssertionError: ppp")


@pytest.mark.parametrize("before", [79_990, 79_995, 79_999])
def test_log_cut_inside_a_secret_leaks_no_prefix(before: int) -> None:
    # The record keeps 80,000 head characters of a 200,000+ character log.
    log = "p" * before + SECRET + "q" * 150_000
    result = outcomes.build("test_x.py::test_leak", [report("call", log, stdout=log)], (),
                            Redactor.from_env(ENV))
    for value in (result.details, result.stdout):
        assert PREFIX not in value and "characters cut" in value


def test_properties_are_redacted_where_they_enter_the_record() -> None:
    rep = report("call", "boom")
    rep.user_properties = [("header", f"Bearer {SECRET}")]
    result = outcomes.build(rep.nodeid, [rep], (), Redactor.from_env(ENV))
    assert result.properties == (("header", "Bearer [REDACTED:ZAI_API_KEY]"),)


def test_for_terminal_follows_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZAI_API_KEY", SECRET)
    monkeypatch.setenv("CORP_VALUE", "corp-internal-value-77")
    line = f"nix: fetching with {SECRET} and corp-internal-value-77"
    assert for_terminal(line) == ("nix: fetching with [REDACTED:ZAI_API_KEY] and "
                                  "corp-internal-value-77")
    assert for_terminal(line, ["CORP_VALUE"]).endswith("and [REDACTED:CORP_VALUE]")
    monkeypatch.setenv("ZAI_API_KEY", "another-secret-456")
    assert for_terminal("another-secret-456") == "[REDACTED:ZAI_API_KEY]"


def test_report_without_secrets_is_left_untouched() -> None:
    rep = report("call", "boom", stdout="out")
    sections = rep.sections
    outcomes.redact_report(rep, Redactor())
    assert rep.sections is sections and rep.longrepr == "boom"


# --------------------------------------------------------------------------- as a user runs it

LEAKS = f"""
import os, sys
import pytest

SECRET = os.environ["ZAI_API_KEY"]

@pytest.mark.parametrize("padding", {list(PADDINGS)})
def test_cut(padding):
    assert False, "p" * padding + SECRET

def test_output():
    token = SECRET
    print("stdout", SECRET)
    sys.stderr.write("stderr " + SECRET + "\\n")
    print("p" * 79_995 + SECRET + "q" * 150_000)
    assert token == "x"

def test_skip():
    pytest.skip("skipped with " + SECRET)

@pytest.fixture
def broken():
    raise RuntimeError("fixture saw " + SECRET)

def test_error(broken):
    pass
"""


@pytest.fixture
def leaky(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    pytester.makefile(".yaml", choirci="release:\n  domain: os.choir.chat\n")
    pytester.makepyfile(test_leaks=LEAKS)
    monkeypatch.setenv("ZAI_API_KEY", SECRET)
    return pytester


def test_no_prefix_reaches_the_evidence(leaky: pytest.Pytester) -> None:
    leaky.runpytest("--grind", "--python-tests", "-p", "no:cacheprovider")
    evidence = leaky.path / "evidence"
    for name in ("choirci.json", "junit.xml", "report.md"):
        body = (evidence / name).read_text()
        assert PREFIX not in body, f"a prefix of the secret leaked into {name}"
    data = json.loads((evidence / "choirci.json").read_text())
    messages = {i["nodeid"]: i["message"] for i in data["runs"][0]["items"]}
    assert messages["test_leaks.py::test_skip"] == "Skipped: skipped with [REDACTED:ZAI_API_KEY]"


@pytest.mark.parametrize("extra", [[], ["-n", "2"]], ids=["controller", "xdist"])
def test_terminal_shows_no_secret(leaky: pytest.Pytester, extra: list[str]) -> None:
    # -l shows locals, -rA every summary line, --tb=long every source line.
    result = leaky.runpytest_subprocess("--grind", "--python-tests", "-p", "no:cacheprovider", "-l", "-rA",
                                        "--tb=long", *extra)
    output = result.stdout.str() + result.stderr.str()
    assert PREFIX not in output
    assert "stdout [REDACTED:ZAI_API_KEY]" in output
    assert "token      = '[REDACTED:ZAI_API_KEY]'" in output or "-n" in extra
    # The structure survives: the short summary still carries the crash message.
    result.stdout.fnmatch_lines(["*skipped with [[]REDACTED:ZAI_API_KEY[]]*",
                                 "FAILED test_leaks.py::test_output - AssertionError: assert *"])


def test_collection_error_shows_no_secret(pytester: pytest.Pytester,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZAI_API_KEY", SECRET)
    pytester.makefile(".yaml", choirci="evidence: evidence\n")
    pytester.makepyfile(test_broken='import os\nraise ImportError("no " + os.environ["ZAI_API_KEY"])\n')
    result = pytester.runpytest("--grind", "--python-tests", "-p", "no:cacheprovider")
    assert PREFIX not in result.stdout.str()
    assert "no [REDACTED:ZAI_API_KEY]" in result.stdout.str()
    assert PREFIX not in (pytester.path / "evidence" / "choirci.json").read_text()



# --------------------------------------------------------------------------- cut before us

def _cuts() -> list[tuple[str, str]]:
    from choirci import text
    from choirci.nix import adapter as nix
    from choirci.rust import libtest

    return [
        ("libtest.one_line", libtest.one_line("p" * 290 + SECRET)),
        ("text.one_line", text.one_line("p" * 290 + SECRET)),
        ("nix.tail", nix.tail("x" * 10 + SECRET + "y" * 100, limit=110)),
        ("libtest.excerpt", libtest.excerpt("a" * 100 + SECRET + "b" * 50, max_chars=60)),
        ("text.cut head", text.cut("p" * 30 + SECRET + "q" * 200, 100, "ptr")),
        ("text.cut tail", text.cut("p" * 300 + SECRET + "q" * 50, 100, "ptr")),
    ]


@pytest.mark.parametrize(("where", "cut"), _cuts(), ids=[w for w, _ in _cuts()])
def test_a_piece_of_a_secret_at_a_cut_marker_is_redacted(where: str, cut: str) -> None:
    """Adapters cut some texts before choirci sees them (a Rust panic message, a Nix log
    tail): the piece of a secret left at the cut is still redacted."""
    pieces = {SECRET[:n] for n in range(4, len(SECRET))} | {SECRET[-n:] for n in range(4, len(SECRET))}
    assert any(piece in cut for piece in pieces), f"{where} did not cut inside the secret"
    redacted = Redactor.from_env(ENV)(cut)
    assert "[REDACTED:ZAI_API_KEY]" in redacted
    assert not any(piece in redacted for piece in pieces), redacted[-120:]


def test_pieces_away_from_a_cut_are_left_alone() -> None:
    redactor = Redactor.from_env(ENV)
    assert redactor("sk-qa and value-123 ...") == "sk-qa and value-123 ..."
