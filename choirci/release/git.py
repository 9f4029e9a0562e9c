"""Git facts a release needs: HEAD, the clean-tree gate, and whether a file would dirty the tree.

Mirrors ``scripts/ops/build-release-manifest.sh``: the tree is dirty when ``git status
--porcelain`` prints anything, so untracked (not ignored) files count. Every git call goes
through :func:`choirci.proc.run`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from choirci import proc
from choirci.errors import ChoirciError

GIT_TIMEOUT = 120.0
SHOWN = 5  # dirty files named in an error; the rest are counted
IGNORE_SPECIAL = re.compile(r"([*?\[\\])")  # glob characters a .gitignore line must escape


class GitError(ChoirciError):
    """git is missing, the directory is not a checkout, or a git query failed."""


class DirtyTree(ChoirciError):
    """The checkout has uncommitted or untracked files, so a release would not be a commit."""


@dataclass(frozen=True)
class Head:
    root: Path
    sha: str
    short: str


def _git(root: Path, *args: str) -> proc.CommandResult:
    return proc.run(["git", "-C", str(root), *args], timeout=GIT_TIMEOUT, setting=None)


def _checked(root: Path, *args: str) -> str:
    result = _git(root, *args)
    if not result.ok:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise GitError(f"`{result.command}` failed ({result.describe_exit()}): {last}")
    return result.stdout.strip()


def toplevel(path: Path) -> Path:
    """The root of the git checkout holding ``path``; a one-line error when there is none."""
    result = _git(path, "rev-parse", "--show-toplevel")
    if not result.ok:
        raise GitError(
            f"{path}: not inside a git checkout; a release manifest records a commit, so "
            "run it in the repository (git init && git commit first)"
        )
    return Path(result.stdout.strip())


def head(root: Path) -> Head:
    result = _git(root, "rev-parse", "--verify", "-q", "HEAD")
    if not result.ok:
        raise GitError(f"{root}: the repository has no commit yet; commit before a release")
    return Head(root=root, sha=result.stdout.strip(),
                short=_checked(root, "rev-parse", "--short", "HEAD"))


def dirty_files(root: Path) -> list[str]:
    """``git status --porcelain`` entries as ``"XY path"`` (``"?? path"`` for untracked)."""
    out = _git(root, "status", "--porcelain=v1", "-z")
    if not out.ok:
        raise GitError(f"`{out.command}` failed ({out.describe_exit()}): {out.stderr.strip()}")
    entries: list[str] = []
    fields = iter(out.stdout.split("\0"))
    for field in fields:
        if not field:
            continue
        entries.append(field)
        if field[0] in "RC":
            next(fields, None)  # a rename/copy is followed by its source path
    return entries


def describe(entries: list[str]) -> str:
    shown = ", ".join(entries[:SHOWN])
    more = len(entries) - SHOWN
    return shown + (f" and {more} more" if more > 0 else "")


def require_clean(root: Path) -> None:
    entries = dirty_files(root)
    if entries:
        raise DirtyTree(
            f"{root}: refusing to build a release manifest from a dirty tree "
            f"({len(entries)} changed or untracked: {describe(entries)}); commit, remove or "
            "gitignore them (untracked files count, as in build-release-manifest.sh)"
        )


def would_dirty(root: Path, path: Path) -> bool:
    """Would writing ``path`` show up in ``git status`` of the checkout at ``root``?"""
    try:
        relative = path.resolve().relative_to(root.resolve())
    except ValueError:
        return False  # outside the checkout
    result = _git(root, "check-ignore", "-q", "--", str(relative))
    if result.returncode not in (0, 1):
        raise GitError(f"`{result.command}` failed ({result.describe_exit()}): "
                       f"{result.stderr.strip()}")
    return result.returncode == 1


def ignore_line(root: Path, path: Path) -> str:
    """The line of ``root``'s top-level .gitignore that ignores exactly the file ``path``.

    Anchored with a leading ``/`` (so a ``#`` or ``!`` cannot start it), glob characters and
    trailing spaces escaped. A pattern ending in ``/`` would match only a directory.
    """
    relative = path.resolve().relative_to(root.resolve()).as_posix()
    escaped = IGNORE_SPECIAL.sub(r"\\\1", relative)
    trailing = len(escaped) - len(escaped.rstrip(" "))
    return "/" + escaped[: len(escaped) - trailing] + "\\ " * trailing


def ignore_lines(root: Path, paths: list[Path], evidence_dir: Path | None = None) -> list[str]:
    """The .gitignore lines that keep ``paths`` out of ``git status``: the evidence dir once
    (``/evidence/``) for every path under it, since its file names change with every commit,
    and an exact line for any other path."""
    lines: list[str] = []
    for path in paths:
        line = ignore_line(root, path)
        if evidence_dir is not None:
            try:
                path.resolve().relative_to(evidence_dir.resolve())
                line = ignore_line(root, evidence_dir).rstrip("/") + "/"
            except ValueError:
                pass
        if line not in lines:
            lines.append(line)
    return lines
