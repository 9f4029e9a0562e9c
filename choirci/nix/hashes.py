"""Nix's hash notations, brought to the one manifests keep: SRI (``sha256-<base64>``).

Nix prints ``sha256:<base-32>`` (``nix store verify``, older ``path-info``), hex, SRI, or in
the newest JSON a structured ``{"algorithm", "format", "hash"}``. Never runs a process.
"""

from __future__ import annotations

import base64
from typing import Any


class FormatError(ValueError):
    """Nix printed something this parser does not understand (a harness problem)."""


def normalize_hash(value: Any) -> str:
    """A narHash as SRI text (``sha256-<base64>``), whichever shape Nix printed."""
    if isinstance(value, str):
        return sri(value)
    if isinstance(value, dict) and "hash" in value:
        algorithm = value.get("algorithm", "sha256")
        digest, fmt = str(value["hash"]), value.get("format", "base64")
        if fmt == "base64":
            return f"{algorithm}-{digest}"
        if fmt == "base16":
            return f"{algorithm}-{base64.b64encode(bytes.fromhex(digest)).decode()}"
        return sri(f"{algorithm}:{digest}")
    raise FormatError(f"nix path-info --json: unreadable narHash {value!r}")


_NIX32 = "0123456789abcdfghijklmnpqrsvwxyz"
_DIGEST_SIZES = {"md5": 16, "sha1": 20, "sha256": 32, "sha512": 64}


def sri(text: str) -> str:
    """``sha256:<nix32 or hex>`` (what ``nix store verify`` and older Nix print) as SRI
    ``sha256-<base64>`` (what manifests keep); SRI and anything unreadable are returned as is."""
    algorithm, sep, digest = text.partition(":")
    size = _DIGEST_SIZES.get(algorithm)
    if not sep or size is None:
        return text
    raw: bytes | None = None
    if len(digest) == size * 2 and all(c in "0123456789abcdef" for c in digest):
        raw = bytes.fromhex(digest)
    elif len(digest) == (size * 8 - 1) // 5 + 1:
        raw = _nix32_decode(digest, size)
    return f"{algorithm}-{base64.b64encode(raw).decode()}" if raw is not None else text


def _nix32_decode(digest: str, size: int) -> bytes | None:
    """Nix's base-32 (its own alphabet, least significant digit last), as libutil decodes it."""
    out = bytearray(size)
    for n, char in enumerate(reversed(digest)):
        value = _NIX32.find(char)
        if value < 0:
            return None
        bit = n * 5
        i, j = divmod(bit, 8)
        out[i] |= (value << j) & 0xFF
        carry = value >> (8 - j)
        if i < size - 1:
            out[i + 1] |= carry & 0xFF
        elif carry:
            return None
    return bytes(out)
