"""Build -> manifest -> copy -> verify with real Nix, as an operator runs `choirci manifest`.

Layer 4. The example workspace (fixtures/choiros-mini) is copied into a git checkout and its
three closures are built once per module. A local chroot store (``nix copy --to DIR``, which
Nix 2.8 supports, unsigned paths need ``--no-check-sigs``) stands in for prod. The only store
paths deleted are in those chroot stores, or the tiny ``stamp`` derivations these tests
create with their own nonce. Nothing here is mocked.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from choirci import cli
from choirci.release import manifest as mf

pytestmark = pytest.mark.slow

NIX = "/usr/bin/nix"
FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "choiros-mini"
GIT = ["git", "-c", "user.email=t@t", "-c", "user.name=t"]
# The fixture's builder runs the host's cargo under /root: build as root, without sandbox.
NIX_CONFIG = ("experimental-features = nix-command flakes\nsubstituters =\nsandbox = false\n"
              "build-users-group =\nwarn-dirty = false")
CONFIG = """\
closures:
  sandbox: ./sandbox#sandbox
  hypervisor: ./hypervisor#hypervisor
  desktop: ./dioxus-desktop#desktop
nix:
  lock_path: {lock}
"""


@dataclass(frozen=True)
class Release:
    root: Path
    config: Path
    env: Path
    json: Path
    manifest: mf.Manifest


def path_info_json(text: str) -> dict[str, dict[str, object]]:
    """``nix path-info --json`` by path: a list of entries with ``path`` up to 2.18, an
    object keyed by path from 2.19 (read here without choirci's own parser)."""
    data = json.loads(text)
    if isinstance(data, list):
        return {entry["path"]: entry for entry in data}
    return {key: entry for key, entry in data.items() if isinstance(entry, dict)}


def nix(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([NIX, *args], capture_output=True, text=True, timeout=900,
                          check=False)


def git(root: Path, *args: str) -> None:
    subprocess.run([*GIT, *args], cwd=root, check=True, capture_output=True)


def copy_to(store: Path, manifest: mf.Manifest) -> None:
    paths = [o.path for c in manifest.closures for o in c.outputs]
    result = nix("copy", "--no-check-sigs", "--to", str(store), *paths)
    assert result.returncode == 0, result.stderr


def choirci(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def nix_env() -> Iterator[None]:
    if not Path(NIX).exists() or shutil.which("git") is None:
        pytest.skip("needs nix at /usr/bin/nix and git")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NIX_CONFIG", NIX_CONFIG)
        yield


@pytest.fixture(scope="module")
def release(nix_env: None, tmp_path_factory: pytest.TempPathFactory) -> Release:
    """fixtures/choiros-mini in a fresh checkout, built and manifested once."""
    root = tmp_path_factory.mktemp("choiros") / "workspace"
    shutil.copytree(FIXTURE, root, ignore=shutil.ignore_patterns("target", "result*"))
    (root / "choirci.yaml").write_text(CONFIG.format(lock=root.parent / "build.lock"))
    with (root / ".gitignore").open("a") as ignore:
        ignore.write("evidence/\n")
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "release 1")
    config = root / "choirci.yaml"
    assert cli.main(["manifest", "build", "--config", str(config)]) == 0
    (env,) = (root / "evidence" / "releases").glob("*.env")
    return Release(root, config, env, env.with_suffix(".json"), mf.load(env.with_suffix(".json")))


def test_build_records_what_the_store_holds(release: Release) -> None:
    manifest = release.manifest
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=release.root, capture_output=True,
                          text=True, check=True).stdout.strip()
    assert manifest.release_sha == head and release.env.name == f"{head[:7]}.env"
    assert manifest.git_dirty is False and manifest.repo_root == str(release.root)
    assert manifest.nix_version and manifest.nix_version in nix("--version").stdout
    names = {c.name: Path(c.store_path).name[33:] for c in manifest.closures}
    assert names == {"sandbox": "sandbox-0.1.0", "hypervisor": "hypervisor-0.1.0",
                     "desktop": "dioxus-desktop-0.1.0"}
    paths = [c.store_path for c in manifest.closures]
    truth = path_info_json(nix("path-info", "--json", "--closure-size", *paths).stdout)
    for closure in manifest.closures:
        main = closure.main
        assert (main.nar_hash, main.nar_size, main.closure_size) == (
            truth[main.path]["narHash"], truth[main.path]["narSize"],
            truth[main.path]["closureSize"])
        assert closure.bin_path and os.access(closure.bin_path, os.X_OK)
    # The manifest went to the ignored evidence dir: the next release is not refused.
    assert subprocess.run(["git", "status", "--porcelain"], cwd=release.root,
                          capture_output=True, text=True, check=True).stdout == ""


def test_env_form_is_sourceable_and_reads_back_as_the_json(release: Release) -> None:
    # What apply-release-manifest.sh does with it: source, then test each *_BIN is executable.
    script = ('set -eu; source "$1"; for b in "$SANDBOX_BIN" "$HYPERVISOR_BIN" "$DESKTOP_BIN"; '
              'do test -x "$b"; done; echo "$RELEASE_SHA $DESKTOP_BIN"')
    shell = subprocess.run(["bash", "-c", script, "-", str(release.env)],
                           capture_output=True, text=True, check=True)
    desktop = release.manifest.closure("desktop")
    assert desktop is not None
    assert shell.stdout.split() == [release.manifest.release_sha, desktop.bin_path]
    from_env = mf.load(release.env)
    assert [c.store_path for c in from_env.closures] == \
        [c.store_path for c in release.manifest.closures]


def test_copy_then_verify_passes(release: Release, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    prod = tmp_path / "prodstore"
    copy_to(prod, release.manifest)
    code, out, _ = choirci(capsys, "manifest", "verify", str(release.json), "--store", str(prod),
                           "--check-contents", "--config", str(release.config))
    assert code == 0, out
    assert f"all 3 store paths present on {prod} with the manifest's narHash" in out
    code, out, _ = choirci(capsys, "manifest", "verify", str(release.env), "--store", str(prod),
                           "--config", str(release.config))
    assert code == 0 and "narHash not recorded in a .env manifest" in out


def test_a_missing_path_is_named(release: Release, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    prod = tmp_path / "prodstore"
    copy_to(prod, release.manifest)
    hypervisor = release.manifest.closure("hypervisor")
    assert hypervisor is not None
    gone = nix("store", "delete", "--store", str(prod), hypervisor.store_path)
    assert gone.returncode == 0, gone.stderr
    for manifest in (release.json, release.env):
        code, out, _ = choirci(capsys, "manifest", "verify", str(manifest), "--store", str(prod),
                               "--config", str(release.config))
        assert code == 1
        assert (f"MISMATCH hypervisor: missing on {prod}: expected {hypervisor.store_path}, "
                f"actual absent; copy it there: nix copy --to {prod} "
                f"{hypervisor.store_path}") in out.splitlines()
        assert "1 mismatch(es)" in out and "sandbox" not in out.replace("release", "")


def test_a_host_running_a_different_path_is_named(release: Release, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """/opt/choiros/bin as apply-release-manifest.sh leaves it: symlinks into the store."""
    bin_dir = tmp_path / "opt" / "choiros" / "bin"
    bin_dir.mkdir(parents=True)
    by_name = {c.name: c for c in release.manifest.closures}
    for closure in by_name.values():
        assert closure.bin_path is not None
        (bin_dir / Path(closure.bin_path).name).symlink_to(closure.bin_path)
    args = ["manifest", "verify", str(release.env), "--bin-dir", str(bin_dir),
            "--config", str(release.config)]
    code, out, _ = choirci(capsys, *args)
    assert code == 0 and f"{bin_dir} runs exactly these paths" in out
    # An older or foreign build behind one link, and a different file where a copy belongs.
    wrong = by_name["sandbox"].bin_path
    (bin_dir / "dioxus-desktop").unlink()
    (bin_dir / "dioxus-desktop").symlink_to(wrong)  # type: ignore[arg-type]
    (bin_dir / "hypervisor").unlink()
    shutil.copy(by_name["hypervisor"].bin_path, bin_dir / "hypervisor")  # type: ignore[arg-type]
    with (bin_dir / "hypervisor").open("ab") as patched:
        patched.write(b"\0a local patch")
    code, out, _ = choirci(capsys, *args)
    assert code == 1
    mismatches = [line for line in out.splitlines() if line.startswith("MISMATCH")]
    restart = "apply the release (apply-release-manifest.sh) and restart the services"
    desktop = (f"MISMATCH desktop: running on {bin_dir}: expected "
               f"{by_name['desktop'].bin_path}, actual {wrong}; {restart}")
    hypervisor = (f"MISMATCH hypervisor: running on {bin_dir}: expected "
                  f"{by_name['hypervisor'].bin_path}, actual {bin_dir / 'hypervisor'}; {restart}")
    assert mismatches == [desktop, hypervisor]


def test_byte_identical_copies_of_the_binaries_match(release: Release, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """/opt/choiros/bin as host-switch.sh leaves it: `install -m 0755` copies (trap §8.6)."""
    bin_dir = tmp_path / "opt" / "choiros" / "bin"
    bin_dir.mkdir(parents=True)
    for closure in release.manifest.closures:
        assert closure.bin_path is not None
        shutil.copy(closure.bin_path, bin_dir / Path(closure.bin_path).name)
    code, out, _ = choirci(capsys, "manifest", "verify", str(release.json), "--bin-dir",
                           str(bin_dir), "--config", str(release.config), "-v")
    assert code == 0, out
    sandbox = release.manifest.closure("sandbox")
    assert sandbox is not None and sandbox.bin_path is not None
    digest = hashlib.sha256(Path(sandbox.bin_path).read_bytes()).hexdigest()
    assert (f"ok sandbox: {bin_dir / 'sandbox'} is an identical copy of {sandbox.bin_path} "
            f"(sha256 {digest})") in out.splitlines()
    assert f"ok sandbox.out: {sandbox.store_path} on local with narHash " in out
    assert out.splitlines()[-1].endswith(
        f"; {bin_dir} runs exactly these binaries (3 as identical copies)")


def test_following_the_ignore_advice_makes_an_in_repo_build_succeed(
        release: Release, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """QA: `--output ./rel.env` was refused with advice ('rel.env/') that did not work."""
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(release.root), str(clone))
    monkeypatch.chdir(clone)
    build = ["manifest", "build", "--choirci-config", "choirci.yaml", "--output", "./rel.env"]
    code, _, err = choirci(capsys, *build)
    assert code == 2 and "not gitignored" in err
    advice = re.search(r"add the lines (?P<lines>.+) to (?P<file>\S+) and commit that$",
                       err.strip())
    assert advice is not None and advice["file"] == str(clone / ".gitignore"), err
    with (clone / ".gitignore").open("a") as ignore:
        ignore.write("".join(f"{line}\n" for line in re.findall(r"'([^']+)'", advice["lines"])))
    git(clone, "commit", "-qam", "ignore the release manifest")
    code, out, err = choirci(capsys, *build)
    assert code == 0, err
    assert f"Release manifest written to {clone / 'rel.env'}" in out
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=clone, capture_output=True,
                          text=True, check=True).stdout.strip()
    assert mf.load(clone / "rel.env").release_sha == mf.load(clone / "rel.json").release_sha == head
    # The next release from this checkout is not refused.
    assert choirci(capsys, *build)[0] == 0


def test_files_changed_on_the_target_are_caught_by_check_contents(
        release: Release, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    prod = tmp_path / "prodstore"
    copy_to(prod, release.manifest)
    sandbox = release.manifest.closure("sandbox")
    assert sandbox is not None and sandbox.bin_path is not None
    target = prod / sandbox.bin_path.lstrip("/")
    # Never touch the real store: the chroot store's file must be a separate inode.
    assert os.stat(target).st_ino != os.stat(sandbox.bin_path).st_ino
    target.parent.chmod(0o755)
    target.chmod(0o755)
    with target.open("ab") as handle:
        handle.write(b"tampered")
    args = ["manifest", "verify", str(release.json), "--store", str(prod),
            "--config", str(release.config)]
    assert choirci(capsys, *args)[0] == 0  # the store's database still has the old hash
    code, out, _ = choirci(capsys, *args, "--check-contents")
    assert code == 1
    assert f"MISMATCH sandbox: contents on {prod}: expected {sandbox.store_path} hashing to" in out
    # In the manifest's notation (SRI), not the base-32 `sha256:` that nix store verify prints.
    line = next(line for line in out.splitlines() if "contents on" in line)
    assert f"hashing to {sandbox.main.nar_hash}" in line and "sha256:" not in line
    assert re.search(r"files hash to sha256-[A-Za-z0-9+/]{43}=", line), line


def test_second_release_diff_and_old_prod(release: Release, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """Release 2 changes the sandbox source; the workspace source is shared with hypervisor."""
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(release.root), str(clone))
    with (clone / "sandbox" / "src" / "main.rs").open("a") as main:
        main.write(f"// release 2 ({uuid.uuid4().hex})\n")
    git(clone, "commit", "-qam", "release 2")
    (clone / "choirci.yaml").write_text(release.config.read_text())
    out_env = tmp_path / "out" / "release-2.env"
    code, out, _ = choirci(capsys, "manifest", "build", "--config", str(clone / "choirci.yaml"),
                           "--output", str(out_env))
    assert code != 2, "choirci.yaml must be tracked in the clone"
    second = mf.load(out_env.with_suffix(".json"))
    code, out, _ = choirci(capsys, "manifest", "diff", str(release.json),
                           str(out_env.with_suffix(".json")), "--config", str(release.config))
    assert code == 0
    assert "  sandbox: changed" in out and "  hypervisor: changed" in out
    assert "  desktop: unchanged" in out
    assert f"+ {second.closure('sandbox').store_path}" in out  # type: ignore[union-attr]
    prod = tmp_path / "prodstore"
    copy_to(prod, release.manifest)
    code, out, _ = choirci(capsys, "manifest", "verify", str(out_env), "--store", str(prod),
                           "--config", str(release.config))
    assert code == 1
    assert {line.split(":")[0] for line in out.splitlines() if line.startswith("MISMATCH")} \
        == {"MISMATCH sandbox", "MISMATCH hypervisor"}


# --------------------------------------------------------------------------- tiny flakes

STAMP_FLAKE = """\
{{
  outputs = {{ self }}: {{
    packages.x86_64-linux = {{
      stamp = builtins.derivation {{
        name = "stamp"; system = "x86_64-linux"; builder = "/bin/sh"; nonce = "{nonce}";
        # Not reproducible on purpose: each build of this same store path differs.
        args = [ "-c" "read u < /proc/sys/kernel/random/uuid; echo $u > $out" ];
      }};
      broken = builtins.derivation {{
        name = "broken"; system = "x86_64-linux"; builder = "/bin/sh"; nonce = "{nonce}";
        args = [ "-c" "echo nope >&2; exit 3" ];
      }};
    }};
  }};
}}
"""


@pytest.fixture
def stamp_repo(nix_env: None, tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "flake.nix").write_text(STAMP_FLAKE.format(nonce=uuid.uuid4().hex))
    (root / "choirci.yaml").write_text(
        f"closures:\n  stamp: ./pkg#stamp\nnix:\n  lock_path: {tmp_path / 'build.lock'}\n")
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "init")
    return root


def build_json(capsys: pytest.CaptureFixture[str], root: Path, out: Path,
               *extra: str) -> tuple[int, str]:
    code, _, err = choirci(capsys, "manifest", "build", "--json-only", "--output", str(out),
                           "--config", str(root / "choirci.yaml"), *extra)
    return code, err


def test_another_build_of_the_same_path_is_a_nar_hash_mismatch(
        stamp_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Prod holding its own build of the release's path (host-switch.sh's fallback)."""
    assert build_json(capsys, stamp_repo, tmp_path / "r1.json")[0] == 0
    first = mf.load(tmp_path / "r1.json")
    prod = tmp_path / "prodstore"
    copy_to(prod, first)
    # Our own path (fresh nonce): rebuild it locally so the two stores disagree.
    deleted = nix("store", "delete", first.closures[0].store_path)
    assert deleted.returncode == 0, deleted.stderr
    assert build_json(capsys, stamp_repo, tmp_path / "r2.json")[0] == 0
    second = mf.load(tmp_path / "r2.json")
    assert second.closures[0].store_path == first.closures[0].store_path
    assert second.closures[0].main.nar_hash != first.closures[0].main.nar_hash
    code, out, _ = choirci(capsys, "manifest", "verify", str(tmp_path / "r2.json"),
                           "--store", str(prod), "--config", str(stamp_repo / "choirci.yaml"))
    assert code == 1
    assert (f"MISMATCH stamp: nar-hash on {prod}: expected {first.closures[0].store_path} with "
            f"narHash {second.closures[0].main.nar_hash}, actual narHash "
            f"{first.closures[0].main.nar_hash}") in out
    assert choirci(capsys, "manifest", "verify", str(tmp_path / "r1.json"), "--store", str(prod),
                   "--config", str(stamp_repo / "choirci.yaml"))[0] == 0


def test_a_failed_build_writes_nothing_and_exits_1(
        stamp_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = stamp_repo / "choirci.yaml"
    config.write_text(config.read_text().replace("stamp: ./pkg#stamp", "broken: ./pkg#broken"))
    git(stamp_repo, "commit", "-qam", "broken")
    code, err = build_json(capsys, stamp_repo, tmp_path / "r.json")
    assert code == 1
    assert ("choirci: manifest build: closure broken (./pkg#broken) did not build: its builder "
            "failed with exit code 3 (nix build exit status 1); no manifest written") in err
    assert not (tmp_path / "r.json").exists()


def test_classic_closures_must_carry_their_binaries(
        stamp_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = stamp_repo / "choirci.yaml"
    config.write_text(config.read_text().replace("stamp: ./pkg#stamp", "sandbox: ./pkg#stamp"))
    git(stamp_repo, "commit", "-qam", "sandbox without bin/")
    code, err = build_json(capsys, stamp_repo, tmp_path / "r.json")
    assert code == 1 and "-stamp/bin/sandbox is missing or not executable" in err


def test_a_build_that_dirties_the_tree_is_refused(
        stamp_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Trap §8.5: a root flake without flake.lock gets one written by the build. The wrapper
    is real nix plus that side effect (nix.binary is a setting for this reason)."""
    wrapper = tmp_path / "nix-writing-lock"
    wrapper.write_text(
        "#!/bin/sh\n"
        'case " $* " in *" --dry-run "*) ;; *" build "*) : > "$LOCK_FILE" ;; esac\n'
        f'exec {NIX} "$@"\n')
    wrapper.chmod(0o755)
    config = stamp_repo / "choirci.yaml"
    config.write_text(config.read_text() + f"  binary: {wrapper}\n")
    git(stamp_repo, "commit", "-qam", "wrapper")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LOCK_FILE", str(stamp_repo / "flake.lock"))
        code, err = build_json(capsys, stamp_repo, tmp_path / "r.json")
    assert code == 2
    assert "the build changed the checkout" in err and "?? flake.lock" in err
    assert not (tmp_path / "r.json").exists()
