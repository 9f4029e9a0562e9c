"""`choirci init` on a copy of the example workspace, as a user types it: real `nix flake show`
and `cargo metadata` (offline), a workflow with the real repository's CI commands
(CONTRACT.md §7: fmt, clippy, `cargo test --workspace --lib --bins`)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from rust_support import cargo_env

from choirci import cli, config

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "choiros-mini"
WORKFLOW = """\
name: ci
on: [push]
jobs:
  check:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - run: cargo fmt --all -- --check
      - name: clippy (non-blocking)
        run: cargo clippy --workspace --all-targets -- -D warnings || true
      - run: |
          cargo test --workspace --lib --bins
"""


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", *args], cwd=root,
                   check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cargo_env(monkeypatch, tmp_path / "target")
    root = tmp_path / "choiros"
    shutil.copytree(FIXTURE, root, ignore=shutil.ignore_patterns("target", "evidence",
                                                                 "choirci.yaml", ".gitignore"))
    (root / ".github" / "workflows").mkdir(parents=True)
    (root / ".github" / "workflows" / "ci.yml").write_text(WORKFLOW)
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "init")
    monkeypatch.chdir(root)
    return root


def test_init_writes_a_valid_config_from_what_the_repository_has(
        repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["init"]) == 0
    assert f"wrote {repo / 'choirci.yaml'}" in capsys.readouterr().out
    cfg = config.load(repo / "choirci.yaml")
    # Sub-flakes first; the root flake's re-exports of the same packages are noted, not doubled.
    # The root flake's nixosConfigurations (the fixture's two nodes) become system closures.
    assert {c.name: c.installable for c in cfg.closures} == {
        "desktop": "./dioxus-desktop#desktop", "hypervisor": "./hypervisor#hypervisor",
        "sandbox": "./sandbox#sandbox",
        "system-choiros-a": ".#nixosConfigurations.choiros-a.config.system.build.toplevel",
        "system-choiros-b": ".#nixosConfigurations.choiros-b.config.system.build.toplevel"}
    assert [(s.name, s.argv) for s in cfg.loops] == [
        ("fmt", ("cargo", "fmt", "--all", "--", "--check"))]
    # CI's `cargo test --workspace --lib --bins` becomes rust.workspace: one item per test.
    assert cfg.rust.workspace == ("lib", "bin")
    text = (repo / "choirci.yaml").read_text()
    assert "`cargo clippy --workspace --all-targets -- -D warnings || true` uses shell syntax" \
        in text
    targets = {(t.crate, t.kind, t.test, t.manifest is not None) for t in cfg.rust.targets}
    assert {("sandbox", "test", "desktop_api_test", False),
            ("sandbox", "test", "supervision_test", False),
            ("hypervisor", "test", "auth_gate_test", False),
            ("dioxus-desktop", "bin", "dioxus-desktop", True)} <= targets
    assert not any(kind in ("lib", "bin") and not outside for _, kind, _, outside in targets)
    assert (repo / ".gitignore").read_text() == "/evidence/\n"


def test_init_never_overwrites_and_print_writes_nothing(
        repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (repo / "choirci.yaml").write_text("closures: {}\n")
    assert cli.main(["init"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("choirci: error: ") and "never overwrites it" in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert cli.main(["init", "--print"]) == 0
    assert "./sandbox#sandbox" in capsys.readouterr().out
    assert (repo / "choirci.yaml").read_text() == "closures: {}\n"


def test_an_untracked_flake_is_named_with_the_fix(repo: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    extra = repo / "extra"
    extra.mkdir()
    (extra / "flake.nix").write_text("{ outputs = { self }: { }; }\n")
    assert cli.main(["init", "--print"]) == 0
    assert ("./extra: `nix flake show` failed here (flake.nix is not tracked by git"
            in capsys.readouterr().out)


def test_a_nixos_system_is_a_toplevel_closure(repo: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """Today's root flake has nixosConfigurations.choiros-{a,b} (CONTRACT.md §7)."""
    (repo / "flake.nix").write_text(
        '{ outputs = { self }: { nixosConfigurations.choiros-b = { config = {}; }; }; }\n')
    git(repo, "commit", "-qam", "a node")
    assert cli.main(["init", "--print"]) == 0
    out = capsys.readouterr().out
    assert 'system-choiros-b: ".#nixosConfigurations.choiros-b.config.system.build.toplevel"' \
        in out


def test_init_lists_what_cargo_test_runs_with_the_features_it_needs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """fixtures/rust-harness: an integration test that needs a non-default feature is listed
    with it (it would not compile without); one with `test = false` is not listed (cargo
    test runs it only by name), and the config says so."""
    cargo_env(monkeypatch, tmp_path / "target")
    root = tmp_path / "harness"
    shutil.copytree(FIXTURE.parent / "rust-harness", root, ignore=shutil.ignore_patterns("target"))
    git(root, "init", "-q")
    monkeypatch.chdir(root)
    assert cli.main(["init"]) == 0
    capsys.readouterr()
    cfg = config.load(root / "choirci.yaml")
    targets = {(t.kind, t.test): t.features for t in cfg.rust.targets}
    assert targets[("test", "needs_extra")] == ("extra",)
    assert targets[("test", "custom_main")] == ()
    assert ("test", "manual_only") not in targets
    assert "harness::manual_only has test = false (cargo test runs it only when named): not " \
        "listed" in (root / "choirci.yaml").read_text()
