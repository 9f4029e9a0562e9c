"""Redaction: which names count as secrets, what is left alone, and planted secrets never
reaching any evidence file (JSON, JUnit, Markdown, gate report, step summary)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from choirci.cli import main
from choirci.evidence.redact import Redactor, is_secret_name

SECRET = "sk-live-9f8e7d6c5b4a"
TOKEN = "ghp_plantedTOKENvalue42"
EXTRA = "corp-internal-value-77"


@pytest.mark.parametrize("name", ["OPENAI_API_KEY", "FLAKEHUB_AUTH_TOKEN", "CLIENT_SECRET",
                                  "DB_PASSWORD_FILE", "AWS_REGION", "aws_access_key_id"])
def test_secret_names(name: str) -> None:
    assert is_secret_name(name)


@pytest.mark.parametrize("name", ["PATH", "HOME", "KEYBOARD", "TOKENIZER", "CHOIRCI_SHARD"])
def test_ordinary_names(name: str) -> None:
    assert not is_secret_name(name)


def test_values_are_replaced_with_the_variable_name() -> None:
    redactor = Redactor.from_env({"OPENAI_API_KEY": SECRET, "HOME": "/root"})
    assert redactor(f"key={SECRET} home=/root") == "key=[REDACTED:OPENAI_API_KEY] home=/root"


def test_short_and_boolean_values_are_left_alone() -> None:
    redactor = Redactor.from_env({"FEATURE_KEY": "1", "USE_TOKEN": "true", "X_SECRET": "off"})
    assert redactor.secrets == ()
    assert redactor("true 1 off") == "true 1 off"


def test_extra_names_and_globs_from_the_config() -> None:
    redactor = Redactor.from_env({"CORP_VALUE": EXTRA, "MY_CONN": "postgres://u:pw@h/db"},
                                 extra=("CORP_VALUE", "*_CONN"))
    assert redactor(f"{EXTRA} postgres://u:pw@h/db") == \
        "[REDACTED:CORP_VALUE] [REDACTED:MY_CONN]"


def test_longest_value_wins_and_multiline_keys_are_redacted_per_line() -> None:
    pem = "-----BEGIN KEY-----\nAAAABBBBCCCCDDDDEEEE\n-----END KEY-----"
    redactor = Redactor.from_env({"A_TOKEN": "abcd", "B_TOKEN": "abcdefgh", "SSH_KEY": pem})
    assert redactor("abcdefgh") == "[REDACTED:B_TOKEN]"
    assert redactor("  AAAABBBBCCCCDDDDEEEE  ") == "  [REDACTED:SSH_KEY]  "


def test_tree_redacts_keys_and_nested_values() -> None:
    redactor = Redactor.from_env({"A_TOKEN": TOKEN})
    assert redactor.tree({TOKEN: [TOKEN, 1, None]}) == {
        "[REDACTED:A_TOKEN]": ["[REDACTED:A_TOKEN]", 1, None]}


PLANTED = f"""
import os, sys

def test_leaks(record_property):
    record_property("header", "Bearer " + os.environ["OPENAI_API_KEY"])
    record_property("{TOKEN}", "as a property name")
    print("stdout", os.environ["FLAKEHUB_AUTH_TOKEN"])
    sys.stderr.write("stderr " + os.environ["CORP_VALUE"] + "\\n")
    assert False, "failed with " + os.environ["OPENAI_API_KEY"] + " & <" + os.environ["CORP_VALUE"]

def test_{TOKEN}_in_the_node_id():
    pass
"""


def test_planted_secrets_never_reach_any_evidence_file(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    pytester.makefile(".yaml", choirci="redact: [CORP_VALUE]\n")
    pytester.makepyfile(test_leak=PLANTED)
    summary = tmp_path / "step-summary.md"
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("FLAKEHUB_AUTH_TOKEN", TOKEN)
    monkeypatch.setenv("CORP_VALUE", EXTRA)
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    result = pytester.runpytest_subprocess("--grind", "--python-tests", "-p", "no:cacheprovider", "--grind")
    result.stdout.fnmatch_lines(["choirci: verdict FAIL*"])
    monkeypatch.chdir(pytester.path)
    evidence = pytester.path / "evidence"
    main(["gate", "definition-of-done", "--evidence", str(evidence)])  # release needs phase-5
    files = [*evidence.rglob("*"), summary]
    texts = {p.name: p.read_text() for p in files if p.is_file()}
    assert {"choirci.json", "junit.xml", "report.md", "definition-of-done.md",
            "definition-of-done.json",
            "step-summary.md"} <= set(texts)
    for name, body in texts.items():
        for secret in (SECRET, TOKEN, EXTRA):
            assert secret not in body, f"{secret} leaked into {name}"
    assert "[REDACTED:OPENAI_API_KEY]" in texts["junit.xml"]
    assert "[REDACTED:CORP_VALUE]" in texts["report.md"]
    data = json.loads(texts["choirci.json"])
    assert data["runs"][0]["items"][0]["stdout"] == "stdout [REDACTED:FLAKEHUB_AUTH_TOKEN]\n"
