"""Promotion only of what passed the gate (issue 19), with real Nix and real ssh-keygen.

Store paths are tiny no-input derivations built here (``/bin/sh`` builders, a fresh nonce
each, so a test only ever signs paths it made). The "production" store is a chroot store
under ``tmp_path`` that the copying Nix treats with ``require-sigs = true`` and only the
test's public key in ``trusted-public-keys``: Nix itself accepts or refuses the paths.
The gate is a small custom gate judged by the real ``choirci gate``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import uuid
from pathlib import Path

import pytest
from evidence_sample import COMMIT, item, run
from nix_support import NIX, make_workspace, nix_config, run_nix, use_nix

from choirci.cli import main
from choirci.config import NixSettings
from choirci.evidence import files as evidence
from choirci.evidence.record import ItemResult, RunRecord
from choirci.evidence.redact import Redactor
from choirci.nix.adapter import Nix
from choirci.release import bundle, sign
from choirci.release.manifest import ClosureRecord, Manifest, StorePath

GATE = """\
id: promote
title: Promote
sections:
  - title: Promote
    items:
      - text: both closures built
        require:
          - closure: alpha
          - closure: beta
      - text: the run passed
        require:
          - run: pass
"""
SSH_ID = "grind-evidence"
# Nix's refusal: 2.8 "lacks a valid signature", 2.26 "lacks a signature by a trusted key".
REFUSED = re.compile(r"cannot add path '/nix/store/[^']+' because it lacks a (valid )?signature")


# --------------------------------------------------------------------------- fixtures


class Keys:
    def __init__(self, root: Path) -> None:
        nix = Nix(binary=NIX)
        self.nix_secret, self.nix_public = sign.generate_nix_key(nix, f"grind-{uuid.uuid4().hex[:6]}")
        self.nix_file = root / "keys" / "nix.sec"
        self.nix_file.parent.mkdir()
        self.nix_file.write_text(self.nix_secret)
        self.nix_file.chmod(0o600)
        self.ssh_file = self._ssh(root / "keys" / "evidence_ed25519", SSH_ID)
        self.other_ssh = self._ssh(root / "keys" / "other_ed25519", "intruder")
        self.ssh_secret = self.ssh_file.read_text()
        self.allowed = root / "keys" / "allowed_signers"
        public = " ".join(Path(f"{self.ssh_file}.pub").read_text().split()[:2])
        self.allowed.write_text(f'{SSH_ID} namespaces="choirci-evidence" {public}\n')

    @staticmethod
    def _ssh(path: Path, comment: str) -> Path:
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f",
                        str(path)], check=True)
        return path


@pytest.fixture
def keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Keys:
    use_nix(monkeypatch, tmp_path)
    monkeypatch.delenv("CHOIRCI_CONFIG", raising=False)
    monkeypatch.delenv("CHOIRCI_NIX_SIGNING_KEY", raising=False)
    monkeypatch.delenv("CHOIRCI_SSH_SIGNING_KEY", raising=False)
    monkeypatch.chdir(tmp_path)  # no choirci.yaml above: defaults
    return Keys(tmp_path)


def build(tmp_path: Path, *names: str) -> dict[str, tuple[str, str]]:
    """name -> (out path, narHash) of fresh derivations; ``beta`` depends on ``alpha``."""
    nonce = uuid.uuid4().hex
    lines = ["let mk = name: script: extra: builtins.derivation ({ inherit name;",
             '  system = "x86_64-linux"; builder = "/bin/sh"; args = [ "-c" script ];',
             f'  nonce = "{nonce}"; }} // extra); in rec {{',
             '  alpha = mk "alpha" "echo alpha > $out" {};',
             '  beta = mk "beta" "echo $dep > $out" { dep = alpha; };',
             '  gamma = mk "gamma" "echo gamma > $out" {};', "}"]
    source = tmp_path / f"pkgs-{nonce[:6]}.nix"
    source.write_text("\n".join(lines) + "\n")
    built = run_nix("build", "--json", "--no-link", "-f", str(source), *names)
    assert built.returncode == 0, built.stderr
    outs = {entry["drvPath"].split("-", 1)[1][:-4]: entry["outputs"]["out"]
            for entry in json.loads(built.stdout)}
    infos = json.loads(run_nix("path-info", "--json", *outs.values()).stdout)
    hashes = {e["path"]: e["narHash"] for e in infos} if isinstance(infos, list) else \
        {p: e["narHash"] for p, e in infos.items()}
    return {name: (path, hashes[path]) for name, path in outs.items()}


def closure_item(name: str, path: str, nar_hash: str, outcome: str = "passed") -> ItemResult:
    return item(f"closures::{name}", "closures", "closures", name, outcome, markers=("nix",),
                properties=(("installable", f"./pkg#{name}"), ("out_path", path),
                            ("nar_hash", nar_hash), ("cache", "built")))


def evidence_dir(tmp_path: Path, paths: dict[str, tuple[str, str]],
                 outcomes: dict[str, str] | None = None) -> Path:
    """A run record of COMMIT whose closures are ``paths``, judged by the custom gate."""
    outcomes = outcomes or {}
    items = tuple(closure_item(name, path, nar, outcomes.get(name, "passed"))
                  for name, (path, nar) in paths.items())
    directory = tmp_path / "evidence"
    evidence.write_all(RunRecord(runs=(run(items=items, commit=COMMIT),)), directory, Redactor())
    return directory


@pytest.fixture
def gates_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "gates"
    directory.mkdir()
    (directory / "promote.yaml").write_text(GATE)
    return directory


def gate(directory: Path, gates_dir: Path) -> int:
    return main(["gate", "promote", "--evidence", str(directory), "--gates", str(gates_dir)])


def sign_cmd(directory: Path, gates_dir: Path, keys: Keys, *extra: str,
             nix_key: str | None = None, ssh_key: str | None = None) -> int:
    return main(["release", "sign", "--evidence", str(directory), "--gate", "promote",
                 "--gates", str(gates_dir), "--nix-key", nix_key or str(keys.nix_file),
                 "--ssh-key", ssh_key or str(keys.ssh_file), *extra])


def verify_cmd(directory: Path, keys: Keys, *extra: str) -> int:
    return main(["release", "verify", str(directory), "--allowed-signers", str(keys.allowed),
                 *extra])


def prod_copy(tmp_path: Path, keys: Keys, *paths: str) -> subprocess.CompletedProcess[str]:
    """``nix copy`` into the "production" chroot store, as a host with ``require-sigs = true``
    and only the grind key trusted would take it."""
    config = nix_config(tmp_path) + f"\nrequire-sigs = true\ntrusted-public-keys = {keys.nix_public}\n"
    env = {**os.environ, "NIX_CONFIG": config}
    return subprocess.run([NIX, "--extra-experimental-features", "nix-command flakes", "copy",
                           "--to", str(tmp_path / "prod"), *paths],
                          capture_output=True, text=True, env=env, timeout=300, check=False)


def sigs(path: str) -> list[str]:
    info = json.loads(run_nix("path-info", "--json", "--sigs", path).stdout)
    entry = info[0] if isinstance(info, list) else next(iter(info.values()))
    return [s if isinstance(s, str) else f"{s['keyName']}:{s['sig']}"
            for s in entry.get("signatures") or []]


def manifest_of(paths: dict[str, tuple[str, str]]) -> Manifest:
    return Manifest(release_sha=COMMIT, short_sha=COMMIT[:7], created_at="2026-02-22T16:40:00Z",
                    repo_root="/x", git_dirty=False,
                    closures=tuple(ClosureRecord(name, (StorePath("out", path, nar),))
                                   for name, (path, nar) in paths.items()))


# --------------------------------------------------------------------------- the promotion


def test_passing_gate_signs_paths_that_a_require_sigs_store_accepts(
        tmp_path: Path, keys: Keys, gates_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    paths = build(tmp_path, "alpha", "beta", "gamma")
    gamma = paths.pop("gamma")[0]
    directory = evidence_dir(tmp_path, paths)
    assert gate(directory, gates_dir) == 0
    capsys.readouterr()
    assert sign_cmd(directory, gates_dir, keys) == 0
    out = capsys.readouterr().out
    # beta's closure is beta and alpha: 2 paths, alpha once more as its own closure.
    assert "signed 2 store path(s) (2 closure output(s)" in out
    name = keys.nix_public.split(":")[0]
    for path, _ in paths.values():
        assert [s for s in sigs(path) if s.startswith(f"{name}:")], path
    # Production (require-sigs, only the grind key trusted) takes the signed closures ...
    copied = prod_copy(tmp_path, keys, paths["beta"][0])
    assert copied.returncode == 0, copied.stderr
    assert (tmp_path / "prod" / paths["alpha"][0].lstrip("/")).exists()
    # ... and Nix itself refuses a path that passed no gate and carries no signature.
    refused = prod_copy(tmp_path, keys, gamma)
    assert refused.returncode != 0 and REFUSED.search(refused.stderr)
    # The signed bundle states the commit, gate, verdict, paths with narHash and every file.
    data = json.loads((directory / bundle.BUNDLE).read_text())
    assert (data["gate"], data["verdict"], data["commit"]) == ("promote", "pass", COMMIT)
    assert {(c["name"], c["path"], c["nar_hash"]) for c in data["closures"]} == {
        (n, p, h) for n, (p, h) in paths.items()}
    assert set(data["files"]) == {"choirci.json", "junit.xml", "junit-xunit.xml", "report.md",
                                  "gates/promote.json", "gates/promote.md"}
    assert data["nix_key"] == keys.nix_public and data["gates_sha256"]
    assert verify_cmd(directory, keys, "--identity", SSH_ID) == 0
    assert f"OK, signed by {SSH_ID}: gate promote pass for commit {COMMIT}" in capsys.readouterr().out
    # On production: the evidence and the signed paths on its store.
    assert verify_cmd(directory, keys, "--store", str(tmp_path / "prod")) == 0
    assert f"each on {tmp_path / 'prod'} with a valid signature" in capsys.readouterr().out
    (tmp_path / "empty").mkdir()
    assert verify_cmd(directory, keys, "--store", str(tmp_path / "empty")) == 1
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and all(x.strip().startswith("store: /nix/store/") and
                                   x.endswith(f"is not on {tmp_path / 'empty'}") for x in lines)


def test_manifest_paths_must_carry_the_grind_signature_on_the_target_store(
        tmp_path: Path, keys: Keys, gates_dir: Path) -> None:
    paths = build(tmp_path, "alpha", "beta", "gamma")
    gamma = paths.pop("gamma")
    assert gate(directory := evidence_dir(tmp_path, paths), gates_dir) == 0
    assert sign_cmd(directory, gates_dir, keys) == 0
    assert prod_copy(tmp_path, keys, paths["beta"][0]).returncode == 0
    prod = Nix.from_settings(NixSettings(), None, store=str(tmp_path / "prod"))
    assert sign.manifest_signature_problems(prod, manifest_of(paths), keys.nix_public,
                                            "prod") == []
    # gamma: unsigned locally, absent on prod; another key's name: not the grind key.
    local = Nix(binary=NIX)
    release = manifest_of({**paths, "gamma": gamma})
    found = {p.closure: str(p) for p in sign.manifest_signature_problems(
        local, release, keys.nix_public, "the local store")}
    assert list(found) == ["gamma"] and "carries no signature on the local store" in found["gamma"]
    on_prod = {p.closure: str(p) for p in sign.manifest_signature_problems(
        prod, release, keys.nix_public, "prod")}
    assert list(on_prod) == ["gamma"] and "is not on prod" in on_prod["gamma"]
    other = sign.generate_nix_key(local, keys.nix_public.split(":")[0])[1]  # same name, other key
    forged = sign.manifest_signature_problems(local, manifest_of(paths), other, "the local store")
    assert len(forged) == 2 and all("does not verify with the given public key" in str(p)
                                    for p in forged)
    with pytest.raises(Exception, match="not a Nix public key"):
        sign.manifest_signature_problems(local, release, "grind-1", "x")
    # The same through `choirci manifest verify --require-signature`, as an operator runs it.
    from choirci.release import manifest as mf

    signed_json, all_json = tmp_path / "signed.json", tmp_path / "all.json"
    signed_json.write_text(mf.to_json(manifest_of(paths)))
    all_json.write_text(mf.to_json(release))
    assert main(["manifest", "verify", str(signed_json), "--store", str(tmp_path / "prod"),
                 "--require-signature", keys.nix_public]) == 0
    assert main(["manifest", "verify", str(all_json),
                 "--require-signature", keys.nix_public]) == 1
    assert main(["manifest", "verify", str(signed_json), "--require-signature", "grind-1"]) == 2


# --------------------------------------------------------------------------- no pass, no signature


def test_a_failing_gate_signs_nothing_and_nix_refuses_the_path(
        tmp_path: Path, keys: Keys, gates_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    paths = build(tmp_path, "alpha", "beta")
    directory = evidence_dir(tmp_path, paths, {"beta": "failed"})
    assert gate(directory, gates_dir) == 1
    capsys.readouterr()
    assert sign_cmd(directory, gates_dir, keys) == 1
    err = capsys.readouterr().err
    assert "NOT SIGNED: gate promote is FAIL" in err and len(err.strip().splitlines()) == 1
    assert sigs(paths["alpha"][0]) == [] and not (directory / bundle.SIGNED_DIR).exists()
    refused = prod_copy(tmp_path, keys, paths["alpha"][0])
    assert refused.returncode != 0 and REFUSED.search(refused.stderr)


def test_a_forged_pass_verdict_signs_nothing(tmp_path: Path, keys: Keys, gates_dir: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    paths = build(tmp_path, "alpha", "beta")
    directory = evidence_dir(tmp_path, paths, {"beta": "failed"})
    assert gate(directory, gates_dir) == 1
    verdict = directory / "gates" / "promote.json"
    verdict.write_text(verdict.read_text().replace('"verdict": "fail"', '"verdict": "pass"'))
    capsys.readouterr()
    assert sign_cmd(directory, gates_dir, keys) == 1
    assert "says pass, but gate promote recomputed from" in capsys.readouterr().err
    assert sigs(paths["alpha"][0]) == [] and not (directory / bundle.SIGNED_DIR).exists()


@pytest.mark.parametrize("case", ["no verdict", "stale record", "other commit", "incomplete"])
def test_a_verdict_not_bound_to_this_record_signs_nothing(
        tmp_path: Path, keys: Keys, gates_dir: Path, capsys: pytest.CaptureFixture[str],
        case: str) -> None:
    paths = build(tmp_path, "alpha", "beta")
    directory = evidence_dir(tmp_path, paths)
    expected = {"no verdict": (2, "no verdict for gate promote; run `choirci gate promote"),
                "stale record": (2, "judged another choirci.json"),
                "other commit": (2, "is for commit 0000000"),
                "incomplete": (3, "gate promote is INCOMPLETE")}[case]
    if case != "no verdict":
        assert gate(directory, gates_dir) == 0
    verdict = directory / "gates" / "promote.json"
    if case == "stale record":  # a new run wrote the dir after the gate
        record = json.loads((directory / "choirci.json").read_text())
        record["runs"][0]["items"][0]["duration"] = 99.0
        (directory / "choirci.json").write_text(json.dumps(record))
    elif case == "other commit":
        verdict.write_text(verdict.read_text().replace(COMMIT, "0" * 40))
    elif case == "incomplete":
        verdict.write_text(verdict.read_text().replace('"verdict": "pass"', '"verdict": "incomplete"'))
    capsys.readouterr()
    assert sign_cmd(directory, gates_dir, keys) == expected[0]
    assert expected[1] in capsys.readouterr().err
    assert sigs(paths["alpha"][0]) == []


def test_a_store_path_that_changed_since_the_gate_is_not_signed(
        tmp_path: Path, keys: Keys, gates_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    paths = build(tmp_path, "alpha", "beta")
    paths["alpha"] = (paths["alpha"][0], "sha256-" + "A" * 43 + "=")
    directory = evidence_dir(tmp_path, paths)
    assert gate(directory, gates_dir) == 0
    capsys.readouterr()
    assert sign_cmd(directory, gates_dir, keys) == 1
    assert "but sha256-AAAA" in capsys.readouterr().err
    assert sigs(paths["beta"][0]) == []


# --------------------------------------------------------------------------- evidence verify


@pytest.fixture
def signed(tmp_path: Path, keys: Keys, gates_dir: Path) -> Path:
    directory = evidence_dir(tmp_path, build(tmp_path, "alpha", "beta"))
    assert gate(directory, gates_dir) == 0
    assert sign_cmd(directory, gates_dir, keys) == 0
    return directory


@pytest.mark.parametrize("tamper, line", [
    (lambda d: (d / "choirci.json").write_text((d / "choirci.json").read_text().replace(
        '"passed"', '"failed"', 1)), "edited: choirci.json (sha256"),
    (lambda d: (d / "report.md").unlink(), "missing: report.md (signed with sha256"),
    (lambda d: (d / "gates" / "extra.json").write_text("{}"),
     "added: gates/extra.json (not in the signed bundle)"),
    (lambda d: (d / "link").symlink_to("/etc/hostname"), "added: link (a symlink), not in"),
    (lambda d: (d / bundle.BUNDLE).write_text((d / bundle.BUNDLE).read_text().replace(
        '"verdict": "pass"', '"verdict": "PASS"')), "edited: signed/evidence.json does not match"),
])
def test_verify_names_each_change_to_the_evidence(
        signed: Path, keys: Keys, capsys: pytest.CaptureFixture[str], tamper, line: str) -> None:
    capsys.readouterr()
    tamper(signed)
    assert verify_cmd(signed, keys) == 1
    captured = capsys.readouterr()
    problems = [x.strip() for x in captured.out.splitlines()]
    assert len(problems) == 1 and problems[0].startswith(line), problems
    assert "FAILED (1 problem(s))" in captured.err


def test_a_signature_by_a_key_not_allowed_fails(signed: Path, keys: Keys,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    data = (signed / bundle.BUNDLE).read_text()
    (signed / bundle.SIGNATURE).write_text(sign.ssh_sign(
        sign.load_key(str(keys.other_ssh), "SSH key"), data))
    capsys.readouterr()
    assert verify_cmd(signed, keys) == 1
    assert f"untrusted: {bundle.SIGNATURE} is signed by a key not allowed in {keys.allowed}" \
        in capsys.readouterr().out
    # The right key, but not for the identity asked for.
    (signed / bundle.SIGNATURE).write_text(sign.ssh_sign(sign.load_key(str(keys.ssh_file), "k"), data))
    assert verify_cmd(signed, keys) == 0
    assert verify_cmd(signed, keys, "--identity", "release-manager") == 1
    assert "not allowed for identity release-manager" in capsys.readouterr().out


def test_unsigned_evidence_fails_verify(tmp_path: Path, keys: Keys, gates_dir: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    directory = evidence_dir(tmp_path, {})
    assert verify_cmd(directory, keys) == 1
    assert "not signed: " in capsys.readouterr().out
    assert main(["release", "verify", str(directory), "--allowed-signers",
                 str(tmp_path / "nope")]) == 2


# --------------------------------------------------------------------------- keys


def test_a_missing_key_is_an_error_never_an_unsigned_release(
        tmp_path: Path, keys: Keys, gates_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    paths = build(tmp_path, "alpha", "beta")
    directory = evidence_dir(tmp_path, paths)
    assert gate(directory, gates_dir) == 0
    capsys.readouterr()
    argv = ["release", "sign", "--evidence", str(directory), "--gate", "promote",
            "--gates", str(gates_dir)]
    assert main([*argv, "--ssh-key", str(keys.ssh_file)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("choirci: error: no Nix signing key: give --nix-key FILE (or env:NAME), set "
                   "release.nix_signing_key in choirci.yaml, or export CHOIRCI_NIX_SIGNING_KEY; "
                   "nothing is signed without it")
    assert main([*argv, "--nix-key", str(keys.nix_file)]) == 2
    assert "no SSH signing key" in capsys.readouterr().err
    assert main([*argv, "--nix-key", str(tmp_path / "absent.sec"), "--ssh-key",
                 str(keys.ssh_file)]) == 2
    assert "absent.sec: no such file" in capsys.readouterr().err
    assert main([*argv, "--nix-key", "env:GRIND_SIGNER", "--ssh-key", str(keys.ssh_file)]) == 2
    assert "environment variable GRIND_SIGNER is not set" in capsys.readouterr().err
    inside = directory / "nix.sec"
    inside.write_text(keys.nix_secret)
    assert main([*argv, "--nix-key", str(inside), "--ssh-key", str(keys.ssh_file)]) == 2
    assert "inside the evidence dir" in capsys.readouterr().err
    inside.unlink()
    assert sigs(paths["alpha"][0]) == [] and not (directory / bundle.SIGNED_DIR).exists()


def test_keys_from_the_environment_never_reach_evidence_logs_or_errors(
        tmp_path: Path, keys: Keys, gates_dir: Path, capsys: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    caplog.set_level(logging.DEBUG)
    paths = build(tmp_path, "alpha", "beta")
    directory = evidence_dir(tmp_path, paths)
    assert gate(directory, gates_dir) == 0
    # Names that are not secret-shaped: only choirci's own handling keeps them out.
    monkeypatch.setenv("GRIND_SIGNER", keys.nix_secret.strip())
    monkeypatch.setenv("CHOIRCI_SSH_SIGNING_KEY", keys.ssh_secret)
    argv = ["release", "sign", "--evidence", str(directory), "--gate", "promote",
            "--gates", str(gates_dir), "--nix-key", "env:GRIND_SIGNER"]
    assert main(argv) == 0  # the SSH key from $CHOIRCI_SSH_SIGNING_KEY, the default
    nix_b64 = keys.nix_secret.strip().split(":", 1)[1]
    ssh_lines = [x for x in keys.ssh_secret.splitlines() if len(x) > 20]
    # A corrupt key: the tool's complaint is shown, the value never.
    corrupt = keys.nix_secret.strip()[:-8] + "AAAAAAA="
    monkeypatch.setenv("GRIND_SIGNER", corrupt)
    assert main(argv) == 2
    monkeypatch.setenv("CHOIRCI_SSH_SIGNING_KEY", "\n".join(ssh_lines[:2]) + "\n")
    monkeypatch.setenv("GRIND_SIGNER", keys.nix_secret.strip())
    assert main(argv) == 2
    captured = capsys.readouterr()
    said = captured.out + captured.err + caplog.text
    assert "Nix signing key $GRIND_SIGNER is not a Nix secret key" in said
    assert "signing with SSH key $CHOIRCI_SSH_SIGNING_KEY" in said or \
        "reading SSH key $CHOIRCI_SSH_SIGNING_KEY" in said
    written = "".join(p.read_text(errors="replace") for p in directory.rglob("*") if p.is_file())
    for secret in (nix_b64, corrupt.split(":", 1)[1], *ssh_lines):
        assert secret not in said and secret not in written
    assert not list(Path(os.environ.get("TMPDIR", "/tmp")).glob("choirci-key-*"))


def test_key_specs_and_redaction() -> None:
    assert sign.parse_spec("env:GRIND_KEY", "k") == ("env", "GRIND_KEY")
    assert sign.parse_spec("/etc/k", "k") == ("file", "/etc/k")
    with pytest.raises(sign.KeyError_, match="is not an environment variable name"):
        sign.parse_spec("env:1-x", "k")
    secret = sign.Secret(source="$S", text="grind-1:c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0\n")
    assert "c2VjcmV0" not in repr(secret)
    assert secret.redact("bad key grind-1:c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0 or "
                         "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0") == \
        "bad key [REDACTED:$S] or [REDACTED:$S]"


# --------------------------------------------------------------------------- as an operator runs it


def test_grind_run_gate_sign_copy_verify(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    """``pytest --grind`` on a workspace -> ``choirci gate`` -> ``choirci release sign`` ->
    ``nix copy`` into a store that requires the grind signature -> ``choirci release verify``."""
    use_nix(monkeypatch, pytester.path)
    keys = Keys(pytester.path)
    gates_dir = pytester.path / "gates"
    gates_dir.mkdir()
    (gates_dir / "promote.yaml").write_text(GATE)
    make_workspace(pytester.path, {"alpha": "echo alpha > $out", "beta": "echo $dep_alpha > $out"},
                   "closures:\n  alpha: ./pkg#alpha\n  beta: ./pkg#beta\n"
                   f"nix:\n  lock_path: {pytester.path / 'build.lock'}\n"
                   f"gates: {gates_dir}\n")
    (pytester.path / ".gitignore").write_text((pytester.path / ".gitignore").read_text()
                                              + "keys/\ngates/\nprod/\nflake-registry.json\n"
                                              # what pytester itself leaves in the dir
                                              + "runpytest-*\nstdout\nstderr\n")
    subprocess.run(["git", "add", "-A"], cwd=pytester.path, check=True)
    subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "ignore"],
                   cwd=pytester.path, check=True)
    status = subprocess.run(["git", "status", "--porcelain"], cwd=pytester.path,
                            capture_output=True, text=True, check=True).stdout
    assert status == ""
    result = pytester.runpytest_subprocess("--grind", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    directory = pytester.path / "evidence"
    monkeypatch.chdir(pytester.path)
    assert main(["gate", "promote"]) == 0
    assert main(["release", "sign", "--gate", "promote", "--nix-key", str(keys.nix_file),
                 "--ssh-key", str(keys.ssh_file)]) == 0
    record = json.loads((directory / "choirci.json").read_text())
    outs = [v for i in record["runs"][0]["items"] for k, v in i["properties"] if k == "out_path"]
    assert len(outs) == 2
    copied = prod_copy(pytester.path, keys, *outs)
    assert copied.returncode == 0, copied.stderr
    assert verify_cmd(directory, keys, "--identity", SSH_ID) == 0
    assert f"OK, signed by {SSH_ID}: gate promote pass" in capsys.readouterr().out


def test_an_old_nix_without_store_sign_is_probed_and_uses_sign_paths(tmp_path: Path) -> None:
    """``nix store sign`` is tried first; a Nix that does not know it (before 2.4) is asked
    for ``nix sign-paths`` with the same flags, and extra_args go on both."""
    calls = tmp_path / "calls"
    fake = tmp_path / "nix"
    fake.write_text("#!/bin/sh\n"
                    f'echo "$*" >> {calls}\n'
                    'case "$*" in *" store sign "*) echo "error: \'store\' is not a recognised '
                    'command" >&2; exit 1;; esac\n')
    fake.chmod(0o755)
    nix = Nix(binary=str(fake), extra_args=("--option", "x", "y"))
    sign.sign_paths(nix, sign.Secret(source="$K", text="k:abcd\n"), ["/nix/store/a-x"])
    lines = calls.read_text().splitlines()
    assert len(lines) == 2
    assert " store sign --option x y --key-file " in lines[0] and lines[0].endswith(
        "--recursive /nix/store/a-x")
    assert " sign-paths --option x y --key-file " in lines[1]
    assert "abcd" not in calls.read_text()  # a temporary key file, never the key in argv


def test_key_locations_flag_then_config_then_default_variable(tmp_path: Path) -> None:
    """The flag wins; then ``release.<kind>_signing_key`` once the config has it (relative to
    the config file); then ``$CHOIRCI_<KIND>_SIGNING_KEY``; else one line saying all three."""


    from choirci import config
    from choirci.commands.release import key_spec
    (tmp_path / "choirci.yaml").write_text("release:\n  nix_signing_key: keys/grind.sec\n"
                                           "  ssh_signing_key: env:OPS_EVIDENCE\n")
    cfg = config.load(tmp_path / "choirci.yaml")  # the keys are config keys, not extras
    env = {"CHOIRCI_NIX_SIGNING_KEY": "x", "CHOIRCI_SSH_SIGNING_KEY": "y"}
    assert key_spec("nix", "/k", cfg, env) == "/k"
    assert key_spec("nix", None, cfg, env) == str(tmp_path / "keys/grind.sec")
    assert key_spec("ssh", None, cfg, env) == "env:OPS_EVIDENCE"

    assert key_spec("ssh", None, None, env) == "env:CHOIRCI_SSH_SIGNING_KEY"
    with pytest.raises(sign.KeyError_, match=r"^no SSH signing key: give --ssh-key FILE"):
        key_spec("ssh", None, None, {})


def test_evidence_verify_is_release_verify(signed: Path, keys: Keys,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    """The issue's name for it: `choirci evidence verify DIR --allowed-signers F`."""
    argv = [str(signed), "--allowed-signers", str(keys.allowed)]
    assert main(["evidence", "verify", *argv]) == 0
    (signed / "choirci.json").write_text((signed / "choirci.json").read_text() + " ")
    assert main(["evidence", "verify", *argv]) == 1
    assert main(["release", "verify", *argv]) == 1
    assert "choirci.json" in capsys.readouterr().out
