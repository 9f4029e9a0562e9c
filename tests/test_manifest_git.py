"""The clean-tree gate and the output-path guard, with real git in tmp_path.

Every `choirci manifest build` here is refused before Nix is called, so nothing builds.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from choirci import cli
from choirci.release import git as gitstate

GIT = ["git", "-c", "user.email=t@t", "-c", "user.name=t"]
CONFIG = """\
closures:
  sandbox: ./sandbox#sandbox
  hypervisor: ./hypervisor#hypervisor
  desktop: ./dioxus-desktop#desktop
"""


def git(root: Path, *args: str) -> str:
    return subprocess.run([*GIT, *args], cwd=root, check=True, capture_output=True,
                          text=True).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "sandbox" / "src").mkdir(parents=True)
    (root / "sandbox" / "src" / "main.rs").write_text("fn main() {}\n")
    (root / "choirci.yaml").write_text(CONFIG)
    (root / ".gitignore").write_text("evidence/\n")
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "init")
    return root


def build(root: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = cli.main(["manifest", "build", "--config", str(root / "choirci.yaml"), *args])
    err = capsys.readouterr().err
    return code, err


def test_clean_repo_has_no_dirty_files(repo: Path) -> None:
    assert gitstate.dirty_files(repo) == []
    head = gitstate.head(repo)
    assert len(head.sha) == 40 and head.sha.startswith(head.short)
    assert gitstate.toplevel(repo / "sandbox") == repo


def test_untracked_modified_staged_and_renamed_all_count(repo: Path) -> None:
    (repo / "notes.txt").write_text("x")
    (repo / "sandbox" / "src" / "main.rs").write_text("fn main() { }\n")
    git(repo, "mv", "choirci.yaml", "ci.yaml")
    (repo / "evidence").mkdir()
    (repo / "evidence" / "ignored.json").write_text("{}")
    entries = gitstate.dirty_files(repo)
    assert sorted(entries) == sorted(["?? notes.txt", " M sandbox/src/main.rs",
                                      "R  ci.yaml"])


def test_require_clean_names_files_and_counts_the_rest(repo: Path) -> None:
    for index in range(7):
        (repo / f"untracked-{index}.txt").write_text("x")
    with pytest.raises(gitstate.DirtyTree) as caught:
        gitstate.require_clean(repo)
    message = str(caught.value)
    assert "7 changed or untracked: ?? untracked-0.txt" in message
    assert "and 2 more" in message and "\n" not in message


def test_not_a_checkout_and_no_commit_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(gitstate.GitError, match="not inside a git checkout"):
        gitstate.toplevel(tmp_path)
    git(tmp_path, "init", "-q")
    with pytest.raises(gitstate.GitError, match="has no commit yet"):
        gitstate.head(tmp_path)


@pytest.mark.parametrize(("relative", "dirty"), [
    ("evidence/releases/abc.env", False),      # ignored directory, not created yet
    ("artifacts/releases/abc.env", True),      # the real script's default: not ignored
    ("choirci.yaml", True),                    # tracked
    ("../outside/abc.env", False),             # outside the checkout
])
def test_would_dirty(repo: Path, relative: str, dirty: bool) -> None:
    assert gitstate.would_dirty(repo, repo / relative) is dirty


def test_build_refuses_a_dirty_tree_naming_the_files(repo: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    (repo / "sandbox" / "tests").mkdir()
    (repo / "sandbox" / "tests" / "generated.ts").write_text("// ts-rs export")
    code, err = build(repo, capsys)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("choirci: error: ")
    assert "refusing to build a release manifest from a dirty tree" in err
    assert "?? sandbox/tests/" in err


def test_build_refuses_an_output_that_would_dirty_the_next_release(
        repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = build(repo, capsys, "--output", str(repo / "artifacts" / "releases" / "x.env"))
    assert code == 2 and err.count("\n") == 1
    assert "inside the checkout" in err and "--output outside the checkout" in err
    assert ("add the lines '/artifacts/releases/x.env' and '/artifacts/releases/x.json' to "
            f"{repo / '.gitignore'} and commit that") in err
    assert not (repo / "artifacts").exists()


ADVICE = re.compile(r"add the lines (?P<lines>.+) to (?P<file>\S+) and commit that$")


def follow_advice(err: str) -> None:
    """Do what the refusal says, literally: append its lines to the file it names, commit."""
    advice = ADVICE.search(err.strip())
    assert advice is not None, err
    lines = re.findall(r"'([^']+)'", advice["lines"])
    ignore = Path(advice["file"])
    with ignore.open("a") as handle:
        handle.write("".join(line + "\n" for line in lines))
    git(ignore.parent, "commit", "-qam", "ignore the release manifest")


@pytest.mark.parametrize("flag", ["--choirci-config", "--config"])
def test_following_the_advice_for_a_relative_output_lets_both_files_through(
        repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        flag: str) -> None:
    """QA: `--output ./rel.env` used to advise "add 'rel.env/' to .gitignore", which matches
    only a directory, and forgot rel.json. (Both config spellings are accepted.)"""
    monkeypatch.chdir(repo)
    code = cli.main(["manifest", "build", flag, "choirci.yaml", "--output", "./rel.env"])
    err = capsys.readouterr().err
    assert code == 2 and "'/rel.env' and '/rel.json'" in err and "rel.env/" not in err
    follow_advice(err)
    assert not gitstate.would_dirty(repo, repo / "rel.env")
    assert not gitstate.would_dirty(repo, repo / "rel.json")
    assert gitstate.dirty_files(repo) == []
    (repo / "rel.env").write_text("written by the release build\n")
    (repo / "rel.json").write_text("{}\n")
    assert gitstate.dirty_files(repo) == []  # so the next release is not refused


def test_only_the_files_that_would_dirty_are_named(
        repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (repo / ".gitignore").write_text("evidence/\n*.env\n")
    git(repo, "commit", "-qam", "ignore .env files")
    code, err = build(repo, capsys, "--output", str(repo / "rel.env"))
    assert code == 2 and "add the lines '/rel.json' to" in err and "'/rel.env'" not in err


@pytest.mark.parametrize("name", ["rel.env", "[x]*.env", "#1.env", "!a?.env", "trail .env ",
                                  "back\\slash.env", "sub dir/r.env"])
def test_ignore_line_ignores_exactly_that_file(repo: Path, name: str) -> None:
    target = repo / "out" / name
    line = gitstate.ignore_line(repo, target)
    assert line.startswith("/out/")
    (repo / ".gitignore").write_text(f"evidence/\n{line}\n")
    assert not gitstate.would_dirty(repo, target)
    assert gitstate.would_dirty(repo, target.with_name("other.env"))


def test_build_refuses_an_output_without_a_known_suffix(
        repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = build(repo, capsys, "--output", str(tmp_path / "release.txt"))
    assert code == 2 and "must end in .env or .json" in err


def test_env_form_without_the_classic_closures_is_refused(
        repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = build(repo, capsys, "--closure", "sandbox")
    assert code == 2
    assert "missing: 'hypervisor', 'desktop'" in err and "--json-only" in err


def test_unknown_closure_is_named(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = build(repo, capsys, "--closure", "sandbx")
    assert code == 2 and "unknown closure 'sandbx'" in err


def test_manifests_in_an_unignored_evidence_dir_name_the_dir_once(
        repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The default output is <evidence>/releases/<sha>.env/.json: a line per file would change
    every commit, so the advice is the evidence dir, once, and following it works."""
    (repo / ".gitignore").write_text("")
    git(repo, "commit", "-qam", "ignore nothing")
    code, err = build(repo, capsys)
    assert code == 2, err
    assert "add the lines '/evidence/' to" in err and "releases/" not in err.split("add the")[1]
    follow_advice(err)
    assert not gitstate.would_dirty(repo, repo / "evidence" / "releases" / "abc.env")
