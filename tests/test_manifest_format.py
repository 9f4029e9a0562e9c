"""The release manifest's two formats and its pure comparisons (no processes run here)."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest

from choirci import cli
from choirci.nix.formats import PathInfo
from choirci.release import compare
from choirci.release import manifest as mf
from choirci.release.manifest import ClosureRecord, Manifest, ManifestError, StorePath
from choirci.release.verify import identical_copies, parse_diff_closures

DATA = Path(__file__).parent / "data" / "manifest"
SANDBOX = "/nix/store/z1yb8f5brfjlfkpmb947ahppkzgn2n7q-sandbox-0.1.0"
HYPERVISOR = "/nix/store/p0a9y1b4g0x6gqdgxicd63zcb33v33n5-hypervisor-0.1.0"
DESKTOP = "/nix/store/77iry9wkywmlcgwgyblh74mcp07xhz5b-dioxus-desktop-0.1.0"
OTHER = "/nix/store/za638znivw6k72c2b64swjfvvzk2la5d-sandbox-0.1.0"


@pytest.fixture
def release() -> Manifest:
    return mf.load(DATA / "release.json")


# --------------------------------------------------------------------------- formats


def test_json_round_trips_byte_for_byte(release: Manifest) -> None:
    assert mf.to_json(release) == (DATA / "release.json").read_text()
    assert release.source == "json" and release.has_hashes
    assert [c.name for c in release.closures] == ["sandbox", "hypervisor", "desktop"]
    assert release.closure("desktop").bin_path == f"{DESKTOP}/bin/dioxus-desktop"  # type: ignore[union-attr]


def test_env_has_the_eleven_keys_of_the_real_script_in_order(release: Manifest) -> None:
    text = mf.to_env(release)
    assert text == (DATA / "release.env").read_text()
    assert [line.split("=", 1)[0] for line in text.splitlines()] == list(mf.ENV_KEYS)


def test_env_is_what_a_shell_reads(tmp_path: Path, release: Manifest) -> None:
    env = tmp_path / "release.env"
    env.write_text(mf.to_env(release))
    out = subprocess.run(["bash", "-c", 'set -u; source "$1"; echo "$DESKTOP_BIN $GIT_DIRTY"',
                          "-", str(env)], capture_output=True, text=True, check=True).stdout
    assert out.split() == [f"{DESKTOP}/bin/dioxus-desktop", "false"]


def test_env_and_json_forms_describe_the_same_release(release: Manifest) -> None:
    from_env = mf.load(DATA / "release.env")
    assert from_env.source == "env" and not from_env.has_hashes
    assert (from_env.release_sha, from_env.short_sha, from_env.created_at, from_env.git_dirty) \
        == (release.release_sha, release.short_sha, release.created_at, release.git_dirty)
    assert [(c.name, c.store_path, c.bin) for c in from_env.closures] \
        == [(c.name, c.store_path, c.bin) for c in release.closures]


def test_shell_style_env_reads_like_the_generated_one() -> None:
    hand = mf.load(DATA / "shell-style.env")
    generated = mf.load(DATA / "release.env")
    assert hand == generated


def test_a_repo_root_with_spaces_is_quoted_and_reads_back(release: Manifest,
                                                           tmp_path: Path) -> None:
    odd = Manifest(**{**vars(release), "repo_root": "/srv/choir os"})
    (tmp_path / "r.env").write_text(mf.to_env(odd))
    assert mf.load(tmp_path / "r.env").repo_root == "/srv/choir os"


def test_env_form_needs_the_three_classic_closures(release: Manifest) -> None:
    only_two = Manifest(**{**vars(release), "closures": release.closures[:2]})
    with pytest.raises(ManifestError, match=r"missing: 'desktop' .*--json-only"):
        mf.to_env(only_two)
    assert mf.env_problem(["sandbox", "hypervisor", "desktop", "extra"]) is None


ENV_ERRORS = [
    ("RELEASE_SHA=abc\n", r"missing RELEASE_SHORT_SHA"),
    ("just words\n", r"r\.env:1: expected KEY=VALUE"),
    ("A=${NOPE}/x\n", r"r\.env:1: \$NOPE is not defined above this line"),
    ("A='unterminated\n", r"r\.env:1: cannot read the value"),
    ("A=two words\n", r"r\.env:1: the value has unquoted spaces"),
]


@pytest.mark.parametrize(("text", "error"), ENV_ERRORS)
def test_env_errors_name_file_and_line(tmp_path: Path, text: str, error: str) -> None:
    (tmp_path / "r.env").write_text(text)
    with pytest.raises(ManifestError, match=error):
        mf.load(tmp_path / "r.env")


@pytest.mark.parametrize(("old", "new", "error"), [
    ("RELEASE_SHA=1dcaf0ae2533ccdb07c504301e4e55bd5781ff2a", "RELEASE_SHA=1dcaf0a",
     "RELEASE_SHA='1dcaf0a' is not a 40-hex commit SHA"),
    ("GIT_DIRTY=false", "GIT_DIRTY=maybe", "GIT_DIRTY must be true or false"),
    (f"SANDBOX_PATH={SANDBOX}", "SANDBOX_PATH=/opt/choiros/bin", "is not a /nix/store path"),
    (f"SANDBOX_BIN={SANDBOX}/bin/sandbox", f"SANDBOX_BIN={OTHER}/bin/sandbox",
     "SANDBOX_BIN=.* is not inside SANDBOX_PATH"),
])
def test_env_values_are_checked(tmp_path: Path, old: str, new: str, error: str) -> None:
    text = (DATA / "release.env").read_text()
    assert old in text
    (tmp_path / "r.env").write_text(text.replace(old, new))
    with pytest.raises(ManifestError, match=error):
        mf.load(tmp_path / "r.env")


@pytest.mark.parametrize(("old", "new", "error"), [
    ('"version": 1', '"version": 2', r"schema: expected 'choirci/release-manifest' version 1"),
    (f'"path": "{SANDBOX}"', '"path": "/opt/x"', r"closures\[0\]\.outputs\[0\]\.path: expected"),
    ('"git_dirty": false', '"git_dirty": "no"', r"git_dirty: expected true or false"),
    ('"name": "hypervisor"', '"name": ""', r"closures\[1\]\.name: expected a non-empty"),
    ('"schema"', '"schema" "', r"r\.json:2: not valid JSON"),
])
def test_json_errors_name_the_field(tmp_path: Path, old: str, new: str, error: str) -> None:
    text = (DATA / "release.json").read_text()
    assert old in text
    (tmp_path / "r.json").write_text(text.replace(old, new, 1))
    with pytest.raises(ManifestError, match=error):
        mf.load(tmp_path / "r.json")


@pytest.mark.parametrize("damage", ["delete", None, ""])
def test_json_output_without_nar_hash_is_bad_input_naming_the_closure(
        tmp_path: Path, damage: str | None, capsys: pytest.CaptureFixture[str]) -> None:
    """QA: it used to verify as good, with the .env excuse "narHash not recorded"."""
    data = json.loads((DATA / "release.json").read_text())
    output = data["closures"][1]["outputs"][0]
    if damage == "delete":
        del output["nar_hash"]
    else:
        output["nar_hash"] = damage
    (tmp_path / "r.json").write_text(json.dumps(data, indent=2))
    code = cli.main(["manifest", "verify", str(tmp_path / "r.json")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert err.startswith(f"choirci: error: {tmp_path / 'r.json'}: closures[1].outputs[0]."
                          "nar_hash: closure 'hypervisor' output 'out' has no narHash")
    assert "narHash not recorded in a .env" not in err


def test_a_json_manifest_is_never_written_without_nar_hash(
        capsys: pytest.CaptureFixture[str]) -> None:
    from_env = mf.load(DATA / "release.env")
    with pytest.raises(ManifestError, match=r"no narHash for sandbox\.out, hypervisor\.out, "
                       r"desktop\.out"):
        mf.to_json(from_env)
    assert cli.main(["manifest", "show", str(DATA / "release.env"), "--format", "json"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "release.env: a .env manifest records no narHash" in err


def test_missing_manifest_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match=r"no such manifest; pass the path"):
        mf.load(tmp_path / "nope.env")


def test_write_creates_both_files(tmp_path: Path, release: Manifest) -> None:
    written = mf.write(release, env_path=tmp_path / "r" / "a.env",
                       json_path=tmp_path / "r" / "a.json")
    assert [p.name for p in written] == ["a.env", "a.json"]
    assert mf.load(written[1]) == release


# --------------------------------------------------------------------------- comparisons


def info(path: str, nar_hash: str) -> PathInfo:
    return PathInfo(path=path, nar_hash=nar_hash, nar_size=1)


def test_compare_store_accepts_identical_paths(release: Manifest) -> None:
    infos = {o.path: info(o.path, o.nar_hash or "") for c in release.closures for o in c.outputs}
    assert compare.compare_store(release, infos, "ssh://prod") == []


def test_compare_store_names_missing_and_rehashed_paths(release: Manifest) -> None:
    infos = {SANDBOX: None, HYPERVISOR: info(HYPERVISOR, "sha256-other="),
             DESKTOP: info(DESKTOP, release.closures[2].main.nar_hash or "")}
    found = compare.compare_store(release, infos, "ssh://prod")
    assert [(m.closure, m.kind) for m in found] == [("sandbox", "missing"),
                                                    ("hypervisor", "nar-hash")]
    assert str(found[0]) == (f"sandbox: missing on ssh://prod: expected {SANDBOX}, actual absent;"
                             f" copy it there: nix copy --to ssh://prod {SANDBOX}")
    assert "actual narHash sha256-other=" in str(found[1])
    assert "sha256-asBwPGN8T1pP/WEtf4ozoLtkX7fJTG0UIqdN/T6Dqe4=" in str(found[1])


def test_compare_store_checks_presence_only_without_hashes() -> None:
    from_env = mf.load(DATA / "release.env")
    infos = {c.store_path: info(c.store_path, "sha256-whatever=") for c in from_env.closures}
    assert compare.compare_store(from_env, infos, "local") == []


def test_compare_running_accepts_paths_inside_the_closure(release: Manifest) -> None:
    observed = {"sandbox": f"{SANDBOX}/bin/sandbox", "hypervisor": HYPERVISOR}
    assert compare.compare_running(release, observed) == []


def test_compare_running_names_closure_expected_and_actual(release: Manifest) -> None:
    observed = {"sandbox": f"{OTHER}/bin/sandbox", "desktop": None,
                "hypervisor": f"{HYPERVISOR}-evil/bin/hypervisor", "caddy": "/usr/bin/caddy"}
    found = compare.compare_running(release, observed, where="prod")
    assert [(m.closure, m.kind) for m in found] == [
        ("caddy", "unknown"), ("desktop", "not-installed"), ("hypervisor", "running"),
        ("sandbox", "running")]
    sandbox = found[3]
    assert (sandbox.expected, sandbox.actual) == (f"{SANDBOX}/bin/sandbox", f"{OTHER}/bin/sandbox")
    assert str(sandbox).startswith(f"sandbox: running on prod: expected {SANDBOX}/bin/sandbox, "
                                   f"actual {OTHER}/bin/sandbox; apply the release")


def test_compare_running_accepts_identical_copies_by_name(release: Manifest) -> None:
    observed = {"hypervisor": "/opt/choiros/bin/hypervisor",
                "sandbox": "/opt/choiros/bin/sandbox"}
    found = compare.compare_running(release, observed, where="prod", identical={"hypervisor"})
    assert [(m.closure, m.kind, m.actual) for m in found] == [
        ("sandbox", "running", "/opt/choiros/bin/sandbox")]


def fake_release(tmp_path: Path) -> Manifest:
    """A release whose "store paths" are directories in tmp_path: the hashing needs no Nix."""
    closures = []
    for name, (_, binary) in mf.CLASSIC.items():
        out = tmp_path / "store" / f"{name}-0.1.0"
        (out / "bin").mkdir(parents=True)
        (out / binary).write_bytes(f"ELF {name}".encode())
        closures.append(ClosureRecord(name, (StorePath("out", str(out)),), bin=binary))
    release = mf.load(DATA / "release.json")
    return Manifest(**{**vars(release), "closures": tuple(closures)})


def test_identical_copies_are_found_by_sha256_and_others_are_not(tmp_path: Path) -> None:
    release = fake_release(tmp_path)
    sandbox, hypervisor, desktop = (c.bin_path or "" for c in release.closures)
    host = tmp_path / "host"
    host.mkdir()
    (host / "sandbox").write_bytes(Path(sandbox).read_bytes())      # install -m 0755
    (host / "hypervisor").write_bytes(b"ELF hypervisor, an older build")
    observed = {"sandbox": str(host / "sandbox"), "hypervisor": str(host / "hypervisor"),
                "desktop": desktop}
    copies = identical_copies(release, observed)
    assert list(copies) == ["sandbox"]
    assert copies["sandbox"] == hashlib.sha256(b"ELF sandbox").hexdigest()
    found = compare.compare_running(release, observed, str(host), identical=copies)
    assert [(m.closure, m.expected, m.actual) for m in found] == [
        ("hypervisor", hypervisor, str(host / "hypervisor"))]


def test_a_copy_of_a_binary_missing_from_the_local_store_is_not_a_match(tmp_path: Path) -> None:
    release = fake_release(tmp_path)
    sandbox = release.closures[0].bin_path or ""
    (tmp_path / "copy").write_bytes(Path(sandbox).read_bytes())
    Path(sandbox).unlink()
    assert identical_copies(release, {"sandbox": str(tmp_path / "copy")}) == {}


def test_diff_per_closure(release: Manifest) -> None:
    changed = ClosureRecord("sandbox", (StorePath("out", OTHER),))
    extra = ClosureRecord("tools", (StorePath("out", OTHER),))
    new = Manifest(**{**vars(release),
                      "closures": (changed, release.closures[1], extra)})
    assert [(c.name, c.status) for c in compare.diff(release, new)] == [
        ("sandbox", "changed"), ("hypervisor", "unchanged"), ("tools", "added"),
        ("desktop", "removed")]


def test_diff_closures_output_of_nix_2_8_loses_its_colours() -> None:
    lines = parse_diff_closures((DATA / "diff-closures-nix-2.8.txt").read_text())
    assert lines == ["hypervisor: ∅ → 0.1.0, +559.8 KiB", "sandbox: 0.1.0 → ∅, -575.2 KiB"]


# --------------------------------------------------------------------------- CLI without Nix


def test_show_converts_between_the_forms(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["manifest", "show", str(DATA / "release.json"), "--format", "env"]) == 0
    assert capsys.readouterr().out == (DATA / "release.env").read_text()
    assert cli.main(["manifest", "show", str(DATA / "shell-style.env")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("release 1dcaf0ae2533ccdb07c504301e4e55bd5781ff2a (1dcaf0a)")
    assert f"  desktop.out: {DESKTOP}\n" in out
    assert cli.main(["manifest", "show", str(DATA / "release.env"), "--format", "paths"]) == 0
    assert capsys.readouterr().out.split() == [SANDBOX, HYPERVISOR, DESKTOP]


def test_unreachable_store_is_a_one_line_harness_error(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Nix's SSH store against 127.0.0.1 port 1 (nothing listens): exit 2, not a mismatch."""
    monkeypatch.chdir(tmp_path)  # no choirci.yaml: verify runs with default Nix settings
    if not Path("/usr/bin/nix").exists():
        pytest.skip("needs nix")
    monkeypatch.setenv("NIX_SSHOPTS", "-p 1 -o BatchMode=yes -o ConnectTimeout=5")
    code = cli.main(["manifest", "verify", str(DATA / "release.env"),
                     "--store", "ssh://nobody@127.0.0.1"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("choirci: error: --store ssh://nobody@127.0.0.1: cannot query it")
