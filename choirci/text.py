"""Text hygiene shared by the evidence renderers: strip terminal noise, cut long logs.

Control characters are illegal in XML 1.0 even inside CDATA, and ANSI colour codes from
cargo/nix output are noise in every format, so both go before anything is serialised.
Long logs are cut from the middle (the start says what ran, the end says how it died) with
a marker that names where the full log is.
"""

from __future__ import annotations

import math
import re

# Every ECMA-48 escape form, 7-bit and 8-bit: control strings (OSC, DCS, SOS, PM, APC) up to
# their terminator (BEL for OSC, ST = ESC \\ or 0x9c), CSI sequences (colours, cursor moves,
# erase-line), nF sequences (charset designation: rustfmt writes ESC ( B after each line),
# then any other two-character escape (ESC 7, ESC =, ESC M ...) and a dangling ESC.
ANSI = re.compile(
    r"(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c|$)"
    r"|(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]"
    r"|\x1b[ -/]+[0-~]"
    r"|\x1b[0-~]"
    r"|\x1b"
)
# XML 1.0 allows \t \n \r; everything else below 0x20, DEL..0x9F except NEL, surrogates and
# the non-characters U+FFFE/U+FFFF are refused by parsers (and by Jenkins).
ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x84\x86-\x9f\ud800-\udfff\ufffe\uffff]")


def clean(text: str) -> str:
    """No terminal escapes, no XML-illegal characters, ``\\r\\n`` as ``\\n``, and a line
    that a carriage return overwrote reads as the terminal showed it (its last version)."""
    text = ANSI.sub("", text).replace("\r\n", "\n")
    if "\r" in text:
        text = "\n".join(_overwritten(line) for line in text.split("\n"))
    return ILLEGAL.sub("", text)


def _overwritten(line: str) -> str:
    parts = [part for part in line.split("\r") if part]
    return parts[-1] if parts else ""


def one_line(text: str, limit: int = 300) -> str:
    first = next((line.strip() for line in clean(text).splitlines() if line.strip()), "")
    return first if len(first) <= limit else first[: limit - 1] + "…"


def cut(text: str, limit: int, pointer: str) -> str:
    """``text`` if it fits in ``limit`` characters, else head + marker + tail."""
    if len(text) <= limit:
        return text
    marker = f"\n[... {len(text) - limit} characters cut; full log: {pointer} ...]\n"
    head = (limit * 2) // 5
    tail = limit - head
    return text[:head] + marker + text[len(text) - tail :]


def seconds(value: float) -> str:
    """A duration for JUnit and reports: fixed-point, never exponent form, never negative."""
    if not math.isfinite(value) or value < 0:
        value = 0.0
    return f"{value:.3f}"
