"""What the git checkout looked like: commit, branch, and ``git status --porcelain``.

Used twice per run (start and end) so the evidence can flag a run that dirtied the tree:
tests that rewrite tracked files (or leave untracked ones) make the next
``build-release-manifest.sh`` refuse to build (CONTRACT.md §8.3). Every git call goes
through :func:`choirci.proc.run`; a workspace that is not a git checkout, or a machine
without git, yields None rather than an error: the record then says "unknown".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from choirci import proc
from choirci.errors import ChoirciError

GIT_TIMEOUT = 60.0


@dataclass(frozen=True)
class GitState:
    commit: str | None
    branch: str | None
    porcelain: tuple[str, ...] | None


def _git(root: Path, *args: str) -> str | None:
    try:
        result = proc.run(["git", *args], cwd=root, timeout=GIT_TIMEOUT, setting="PATH")
    except ChoirciError:
        return None
    return result.stdout if result.ok else None


def porcelain(root: Path, exclude: Path | None = None) -> tuple[str, ...] | None:
    """Sorted status lines; entries under ``exclude`` (choirci's own evidence dir) are left
    out, so writing evidence never reads as the run dirtying the tree."""
    # --untracked-files=all: one line per new file, so a file created by the run is named.
    out = _git(root, "status", "--porcelain", "--untracked-files=all")
    if out is None:
        return None
    lines = [line for line in out.splitlines() if line.strip()]
    prefix = _relative_to_top(root, exclude) if exclude is not None else None
    if prefix:
        lines = [line for line in lines if not _path_of(line).startswith(prefix)]
    return tuple(sorted(lines))


def _relative_to_top(root: Path, path: Path) -> str | None:
    top = _git(root, "rev-parse", "--show-toplevel")
    if not top:
        return None
    try:
        relative = path.resolve().relative_to(Path(top.strip()).resolve())
    except ValueError:
        return None  # the evidence dir is outside the checkout: nothing to exclude
    return relative.as_posix().rstrip("/") + "/"


def _path_of(line: str) -> str:
    """The (new) path of a porcelain v1 line: ``XY path`` or ``XY old -> new``."""
    path = line[3:].split(" -> ")[-1]
    return path[1:-1] if path.startswith('"') and path.endswith('"') else path


def state(root: Path, exclude: Path | None = None) -> GitState:
    commit = _git(root, "rev-parse", "HEAD")
    branch = _git(root, "rev-parse", "--abbrev-ref", "HEAD")
    return GitState(
        commit=commit.strip() if commit else None,
        branch=branch.strip() if branch else None,
        porcelain=porcelain(root, exclude),
    )


def unignored_line(root: Path, directory: Path) -> str | None:
    """The ``.gitignore`` line (``/evidence/``) that would ignore ``directory``, when it lies
    inside ``root``'s checkout and git does not ignore it yet; None otherwise (outside the
    checkout, already ignored, or not a git checkout at all)."""
    prefix = _relative_to_top(root, directory)
    if not prefix:
        return None
    try:
        result = proc.run(["git", "check-ignore", "-q", "--no-index", prefix], cwd=root,
                          timeout=GIT_TIMEOUT, setting="PATH")
    except ChoirciError:
        return None
    # 0: ignored; 1: not ignored; anything else: git could not tell (say nothing).
    return "/" + prefix if result.returncode == 1 else None
