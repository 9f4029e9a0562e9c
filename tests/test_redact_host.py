"""Shape-based redaction of host output (:func:`choirci.evidence.redact.scrub`): secrets that
exist only on a host, which no environment lookup can know, never reach a message."""

from __future__ import annotations

import pytest

from choirci.evidence.redact import Redactor, scrub


@pytest.mark.parametrize(
    ("text", "secret", "kept"),
    [
        ("OPENAI_API_KEY=sk-abcdefghijklmnop1234", "sk-abcdefghijklmnop1234", "OPENAI_API_KEY="),
        ('{"status": "OPENAI_API_KEY=plain-value-42"}', "plain-value-42", '"status": "OPENAI_API_KEY='),
        ("Authorization: Bearer abcdefgh12345678", "abcdefgh12345678", "Authorization: Bearer "),
        ("x-api-key: abcdefgh1234", "abcdefgh1234", "x-api-key: "),
        ("see sk-proj-abcdefghijklmnopqrstu here", "sk-proj-abcdefghijklmnopqrstu", "see "),
        ("db_password=hunter22 status=healthy", "hunter22", "status=healthy"),
        ('{"api_key": "zzzzzzzz", "version": "0.1.0"}', "zzzzzzzz", '"version": "0.1.0"'),
        ("GET http://x/?access_token=abcdef123&page=2", "abcdef123", "&page=2"),
        ("export GROQ_API_KEY='gsk_abc123456'", "gsk_abc123456", "export GROQ_API_KEY="),
        ("token ghp_abcdefghijklmnopqrstuvwxyz0123", "ghp_abcdefghijklmnopqrstuvwxyz0123", "token "),
        ("aws AKIAABCDEFGHIJKLMNOP!", "AKIAABCDEFGHIJKLMNOP", "aws "),
        ("ANTHROPIC_AUTH_TOKEN: 'short1'", "short1", "ANTHROPIC_AUTH_TOKEN"),
    ],
)
def test_secret_shaped_values_are_redacted(text: str, secret: str, kept: str) -> None:
    out = scrub(text)
    assert secret not in out and kept in out and "[REDACTED:" in out
    assert scrub(out) == out  # idempotent: the evidence side may scrub again


@pytest.mark.parametrize(
    "text",
    [
        "/nix/store/0abc-sk-1234567890abcdefgh-sandbox/bin/sandbox",  # a store path is structure
        "sha256 f5adb8bf0100ed0f8c7782ca5f92814e9229525a4b4e0d401cf3bea09ac960a6",
        "ActiveState=failed SubState=dead UnitFileState=static Result=exit-code NRestarts=3",
        "TOKEN=true PASSWORD=off A_KEY=1",  # harmless words and short values
        "hosts::test_http.py::test_sandbox_health[live-ssh://choirci-plain]",
        "curl: (28) Operation timed out after 2001 milliseconds with 17 bytes received",
        "sandbox pid 12 has forbidden provider key(s) in its environment: ZAI_API_KEY, GROQ_API_KEY",
        "expected 303 -> /login; read 'journalctl -u hypervisor -n 100'",
    ],
)
def test_structure_is_left_alone(text: str) -> None:
    assert scrub(text) == text


def test_scrub_comes_before_a_cut() -> None:
    body = "x" * 70 + "OPENAI_API_KEY=sk-abcdefghijklmnop1234"
    assert "sk-abcdef" not in scrub(body)[:80]


def test_the_environment_redactor_is_unchanged() -> None:
    redactor = Redactor.from_env({"OPENAI_API_KEY": "sk-live-9f8e7d6c5b4a"})
    assert redactor("k=sk-live-9f8e7d6c5b4a AWS_REGION=eu-west-1") == "k=[REDACTED:OPENAI_API_KEY] AWS_REGION=eu-west-1"
