"""Manual evidence: files a person adds for checklist lines no check can prove.

A manual file is a person's word, so it must say which commit it is about. For the gate's
``manual/phase-2/workflow-runs.md`` either

* ``<evidence>/manual/<40-hex commit>/phase-2/workflow-runs.md`` exists (a per-commit path), or
* ``<evidence>/manual/phase-2/workflow-runs.md`` holds a line ``commit: <40-hex commit>``,

and the commit is the one the run tested; a file for another commit is invalid (it survives
re-runs in the same dir, but it never attests a new commit). Refused as well: a symlink that
leads out of the evidence dir, anything but a regular file, NUL bytes, text that is not UTF-8,
a blank file or one that holds only the commit line, and a placeholder (``TODO``, ``TBD``,
``FIXME``, ``XXX``, ``N/A``, ``...``) as its first line of content.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from choirci.gates.verdicts import Attestation

FULL_SHA = re.compile(r"[0-9a-f]{40}")
COMMIT_LINE = re.compile(r"^\s*commit:\s*(\S*)\s*$", re.IGNORECASE | re.MULTILINE)
PLACEHOLDER = re.compile(r"^(todo|tbd|fixme|xxx|n/?a|-+|\.+|…)(\W|$)", re.IGNORECASE)
LIMIT = 10_000_000


def per_commit_path(name: str, commit: str) -> str:
    """``manual/phase-2/x.md`` -> ``manual/<commit>/phase-2/x.md``."""
    head, _, rest = name.partition("/")
    return f"{head}/{commit}/{rest}" if head == "manual" and rest else f"{commit}/{name}"


def attest(directory: Path, names: Iterable[str], commit: str | None) -> dict[str, Attestation]:
    """Gate file name -> what was found for ``commit``; names with no file are left out."""
    found: dict[str, Attestation] = {}
    for name in names:
        candidates = ([per_commit_path(name, commit)] if commit else []) + [name]
        for index, relative in enumerate(candidates):
            path = directory / relative
            if path.exists() or path.is_symlink():
                per_commit = bool(commit) and index == 0
                found[name] = Attestation(relative, _problem(directory, path, commit, per_commit))
                break
    return found


def _problem(directory: Path, path: Path, commit: str | None, per_commit: bool) -> str:
    try:
        resolved = path.resolve()
        if not resolved.is_relative_to(directory.resolve()):
            return f"leads out of the evidence dir (to {resolved}); copy the evidence into it"
        if not resolved.is_file():
            return "is not a regular file"
        if resolved.stat().st_size > LIMIT:
            return f"is larger than {LIMIT} bytes; attach an excerpt and link the rest"
        data = resolved.read_bytes()
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    if b"\0" in data:
        return "holds NUL bytes; attach text (a transcript, links, numbers)"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return "is not UTF-8 text; attach text (a transcript, links, numbers)"
    if not text.strip():
        return "is empty; write the evidence into it"
    if commit is None:
        return "cannot attest anything: the run recorded no commit (not a git checkout?)"
    named = COMMIT_LINE.findall(text)
    for value in named:
        if not FULL_SHA.fullmatch(value.lower()):
            return f"names commit {value!r}, not a full 40-hex commit id"
        if value.lower() != commit:
            return f"attests commit {value.lower()}, but the run tested {commit}"
    if not named and not per_commit:
        return (f"names no commit; add a line 'commit: {commit}' (the commit it attests) "
                f"or move it under manual/{commit}/")
    body = [line.strip() for line in COMMIT_LINE.sub("", text).splitlines() if line.strip()]
    if not body:
        return "holds only the commit line; write the evidence into it"
    if PLACEHOLDER.match(body[0]):
        return f"is a placeholder ({body[0][:20]!r}); write the evidence into it"
    return ""
