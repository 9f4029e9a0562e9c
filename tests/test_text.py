"""The terminal-control cleaner, on output captured from real tools (rustfmt, cargo, nix run
under `script` so they believed a terminal was attached: tests/data/terminal/) and on every
ECMA-48 escape form."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from choirci import text

DATA = Path(__file__).parent / "data" / "terminal"


def sample(name: str) -> str:
    return (DATA / name).read_bytes().decode("utf-8", errors="replace")  # keep every \r


def test_rustfmt_diff_keeps_no_charset_escape() -> None:
    raw = sample("rustfmt-check.out")
    assert "\x1b(B" in raw  # what rustfmt really writes after each coloured line
    cleaned = text.clean(raw)
    assert "\x1b" not in cleaned and "(B" not in cleaned
    assert "+        assert!(super::add(1, 1) == 3, \"boom <&>\");" in cleaned.splitlines()


def test_cargo_test_failure_reads_as_plain_text() -> None:
    cleaned = text.clean(sample("cargo-test-failure.out"))
    assert "\x1b" not in cleaned and "\r" not in cleaned
    assert "test tests::t ... FAILED" in cleaned.splitlines()


def test_nix_error_line_survives_erase_and_carriage_returns() -> None:
    raw = sample("nix-eval-error.out")
    assert "\x1b[K" in raw and "\r" in raw
    assert [line for line in text.clean(raw).splitlines() if line] == ["error: boom <&>"]


@pytest.mark.parametrize(("raw", "clean"), [
    ("\x1b[1;31mred\x1b[0m", "red"),                      # CSI SGR
    ("a\x1b[2Kb\x1b[1Gc", "abc"),                         # CSI erase / cursor
    ("\x9b31mred\x9b0m", "red"),                          # 8-bit CSI
    ("\x1b]0;title\x07text", "text"),                     # OSC ... BEL
    ("\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\", "link"),  # OSC hyperlink ... ST
    ("\x1bPq#0;2;0;0;0\x1b\\after", "after"),             # DCS (sixel) ... ST
    ("\x1b_apc\x1b\\x", "x"),                             # APC
    ("\x1b(B\x1b)0\x1b#8\x1b%Gz", "z"),                   # nF: charsets, DEC test, UTF-8
    ("\x1b7save\x1b8\x1b=\x1b>\x1bM\x1bc", "save"),       # single-character escapes
    ("tail\x1b", "tail"),                                 # dangling ESC
    ("50%\r100%\n", "100%\n"),                            # carriage-return overwrite
    ("a\r\nb", "a\nb"),
    ("[31m is not an escape", "[31m is not an escape"),
])
def test_every_escape_form(raw: str, clean: str) -> None:
    assert text.clean(raw) == clean


@given(st.text(alphabet=st.characters(blacklist_characters="\x1b\r",
                                      blacklist_categories=("Cc", "Cs"))))
def test_plain_text_is_left_alone(value: str) -> None:
    assert text.clean(value) == text.ILLEGAL.sub("", value)
