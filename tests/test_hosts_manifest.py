"""The release side of the host contract, against the real test hosts (issue 6 part 2).

A release .env written from the binaries each host runs passes; then each way a host can
differ from its release is made real and must fail with the operator's line: a manifest naming
another build (and a path the host does not have, and a build without a GC root), a service
still running the old binary after the symlink was switched (systemd MainPID on the nspawn
host), a dirty workspace off ``main``, a failed login oneshot and loose secret modes. Every
breakage is undone in a ``finally`` because the hosts are shared with the other host tests.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hostenv.build import Binaries, next_build, write_manifest
from hostenv.fixtures import HostUnderTest, git, sh
from hostenv.nspawn import NspawnHost

GONE = "/nix/store/0000000000000000000000000000000a-choiros-mini-desktop-gone"


def grind(pytester: pytest.Pytester, host: HostUnderTest, *args: str, **overrides: Any) -> pytest.RunResult:
    host.write_config(pytester.path, **overrides)
    return pytester.runpytest_subprocess("--grind", "-m", "host", "-p", "no:cacheprovider", "-rfEs", *args)


def release(pytester: pytest.Pytester, closures: dict[str, str]) -> str:
    """A release .env under releases/, named relative to the config file as users write it."""
    (pytester.path / "releases").mkdir(exist_ok=True)
    write_manifest(pytester.path / "releases" / "release.env", closures)
    return "releases/release.env"


def counts(result: pytest.RunResult) -> dict[str, int]:
    return {k: v for k, v in result.parseoutcomes().items() if k in ("passed", "failed", "errors", "skipped")}


# --------------------------------------------------------------------------- plain sshd host


def test_plain_host_runs_its_release(pytester: pytest.Pytester, plain_host: HostUnderTest,
                                     choiros_binaries: Binaries) -> None:
    result = grind(pytester, plain_host, "-v", manifest=release(pytester, choiros_binaries.closures()))
    out = result.stdout.str()
    assert counts(result).get("failed", 0) == 0 and counts(result).get("errors", 0) == 0, out
    for line in ("test_manifest_link[[]desktop-*", "test_manifest_running[[]hypervisor-*",
                 "test_manifest_running[[]sandbox-*", "test_manifest_in_store[[]sandbox-*",
                 "test_manifest_gc_root[[]hypervisor-*", "test_workspace_clean[[]*",
                 "test_workspace_on_branch[[]*"):
        result.stdout.fnmatch_lines([f"*{line}ssh://choirci-plain[]] PASSED*"])


def test_manifest_naming_other_builds_fails(pytester: pytest.Pytester, plain_host: HostUnderTest,
                                            choiros_binaries: Binaries, tmp_path: Path) -> None:
    newer = next_build(tmp_path, choiros_binaries, "hypervisor")  # built, copied, never applied
    closures = {**choiros_binaries.closures(), "hypervisor": newer, "desktop": GONE}
    result = grind(pytester, plain_host, "-k", "manifest", manifest=release(pytester, closures))
    # skipped: the GC-root check of the path the host lacks, and test_manifest_signed x3 (no key)
    assert counts(result) == {"failed": 5, "passed": 5, "skipped": 4}, result.stdout.str()
    old = choiros_binaries.bin("hypervisor")
    bin_dir = plain_host.checks["bin_dir"]
    process = plain_host.checks["manifest_processes"]["hypervisor"]
    result.stdout.fnmatch_lines_random([
        (f"*hypervisor: not-installed on ssh://choirci-plain ({bin_dir}/hypervisor): expected "
         f"{newer}/bin/hypervisor, actual {old}; apply the release (apply-release-manifest.sh)"),
        (f"*desktop: not-installed on ssh://choirci-plain ({bin_dir}/dioxus-desktop): expected "
         f"{GONE}/bin/dioxus-desktop, actual {choiros_binaries.bin('dioxus-desktop')}; apply the release*"),
        (f"*hypervisor: running on ssh://choirci-plain (process '{process}' pid *): expected "
         f"{newer}/bin/hypervisor, actual {old}; apply the release*"),
        (f"*desktop: missing on ssh://choirci-plain: expected {GONE}, actual absent; copy it "
         f"there: nix copy --to ssh://choirci-plain {GONE}*"),
        (f"*hypervisor: {newer} has no GC root on ssh://choirci-plain (symlinks in {bin_dir} "
         "and running processes do not count): the next nix-collect-garbage deletes it; add one: "
         f"nix-store --realise --add-root /nix/var/nix/gcroots/choiros-hypervisor {newer}*"),
    ])


def test_gc_roots_warn_policy_passes_with_a_warning(pytester: pytest.Pytester, plain_host: HostUnderTest,
                                                    choiros_binaries: Binaries, tmp_path: Path) -> None:
    newer = next_build(tmp_path, choiros_binaries, "sandbox")
    closures = {**choiros_binaries.closures(), "sandbox": newer}
    result = grind(pytester, plain_host, "-k", "gc_root", manifest=release(pytester, closures),
                   manifest_gc_roots="warn")
    assert counts(result) == {"passed": 3}, result.stdout.str()
    result.stdout.fnmatch_lines(["*HostWarning: sandbox: /nix/store/*-next-* has no GC root*"])


def test_unreadable_manifest_is_an_error_not_a_failure(pytester: pytest.Pytester,
                                                       plain_host: HostUnderTest) -> None:
    result = grind(pytester, plain_host, "-k", "manifest_in_store", manifest="releases/missing.env")
    assert counts(result) == {"errors": 3}, result.stdout.str()
    result.stdout.fnmatch_lines(["*choirci: */releases/missing.env: no such manifest; pass the path "
                                 "that `choirci manifest build` printed*"])
    assert "Traceback" not in result.stdout.str()


@pytest.fixture
def workspace(plain_host: HostUnderTest) -> Iterator[Path]:
    repo = Path(plain_host.checks["workspace"][0])
    try:
        yield repo
    finally:
        (repo / "result").unlink(missing_ok=True)
        git(repo, "checkout", "-q", "main")
        git(repo, "branch", "-q", "-D", "hotfix")


def test_dirty_workspace_off_main_fails(pytester: pytest.Pytester, plain_host: HostUnderTest,
                                        workspace: Path) -> None:
    git(workspace, "checkout", "-q", "-b", "hotfix")
    (workspace / "result").symlink_to("/nix/store")  # an untracked `nix build` link: still dirty
    result = grind(pytester, plain_host, "-k", "workspace")
    assert counts(result) == {"failed": 2}, result.stdout.str()
    result.stdout.fnmatch_lines_random([
        (f"*workspace {workspace} is dirty (1 change(s): '?? result'); promote refuses a dirty "
         "tree: commit, remove or gitignore them*"),
        f"*workspace {workspace} is on branch 'hotfix', expected 'main'; git -C {workspace} checkout main*",
    ])


# --------------------------------------------------------------------------- systemd host


def test_systemd_host_runs_its_release(pytester: pytest.Pytester, booted: HostUnderTest,
                                       choiros_binaries: Binaries) -> None:
    manifest = release(pytester, choiros_binaries.closures())
    result = grind(pytester, booted, "-v", "-k", "manifest or oneshot or secret_mode", manifest=manifest)
    out = result.stdout.str()
    assert counts(result).get("failed", 0) == 0 and counts(result).get("errors", 0) == 0, out
    result.stdout.fnmatch_lines_random([
        "*test_manifest_running[[]hypervisor-ssh://choirci-nspawn[]] PASSED*",
        "*test_manifest_running[[]sandbox-ssh://choirci-nspawn[]] PASSED*",
        "*test_manifest_in_store[[]desktop-ssh://choirci-nspawn[]] PASSED*",
        "*the host has no nix-store, so its GC roots cannot be listed*",
        "*optional unit choiros-flakehub-login.service is not installed on this host*",
        "*no /var/lib/sops-nix/key.txt on this host (sops-nix not set up here)*",
    ])


def test_service_not_restarted_after_switch(pytester: pytest.Pytester, booted: HostUnderTest,
                                            nspawn_host: NspawnHost, choiros_binaries: Binaries,
                                            broken: Any, tmp_path: Path) -> None:
    """apply-release switched the symlink but nobody restarted hypervisor (CONTRACT §8.6)."""
    newer = next_build(tmp_path, choiros_binaries, "hypervisor")
    old = choiros_binaries.bin("hypervisor")
    broken(f"ln -sfn {newer}/bin/hypervisor /opt/choiros/bin/hypervisor",
           f"ln -sfn {old} /opt/choiros/bin/hypervisor && systemctl restart hypervisor")
    manifest = release(pytester, {**choiros_binaries.closures(), "hypervisor": newer})
    result = grind(pytester, booted, "-k", "manifest_link or manifest_running", manifest=manifest)
    assert counts(result) == {"failed": 1, "passed": 4}, result.stdout.str()
    pid = sh(nspawn_host, "systemctl show -p MainPID --value hypervisor").strip()
    result.stdout.fnmatch_lines([
        (f"*hypervisor: running on ssh://choirci-nspawn (hypervisor.service MainPID {pid}): "
         f"expected {newer}/bin/hypervisor, actual {old}; apply the release "
         "(apply-release-manifest.sh) and restart the services*"),
    ])
    sh(nspawn_host, "systemctl restart hypervisor")
    again = grind(pytester, booted, "-k", "manifest_running", manifest=manifest)
    assert counts(again) == {"passed": 2}, again.stdout.str()


LOGIN_UNIT = "[Unit]\nDescription=stand-in flakehub login\n[Service]\nType=oneshot\nExecStart=/bin/false\n"


def test_failed_login_and_loose_secret_modes(pytester: pytest.Pytester, booted: HostUnderTest,
                                             broken: Any) -> None:
    unit = "/etc/systemd/system/choiros-flakehub-login.service"
    broken(f"printf '{LOGIN_UNIT}' > {unit} && systemctl daemon-reload && "
           "(systemctl start choiros-flakehub-login || true)",
           f"rm -f {unit} && systemctl daemon-reload && systemctl reset-failed")
    broken("mkdir -p -m 700 /var/lib/sops-nix /run/secrets/rendered && "
           "echo key > /var/lib/sops-nix/key.txt && chmod 644 /var/lib/sops-nix/key.txt && "
           "echo t > /run/secrets/rendered/choiros-platform.env && "
           "chmod 400 /run/secrets/rendered/choiros-platform.env && "
           "echo t > /run/secrets/rendered/choiros-flakehub-token && "
           "chmod 444 /run/secrets/rendered/choiros-flakehub-token",
           "rm -rf /var/lib/sops-nix /run/secrets")
    result = grind(pytester, booted, "-k", "oneshot or secret_mode")
    assert counts(result) == {"failed": 3}, result.stdout.str()
    result.stdout.fnmatch_lines_random([
        ("*choiros-flakehub-login.service did not succeed: ActiveState=failed SubState=failed "
         "UnitFileState=* Result=exit-code; read 'journalctl -u choiros-flakehub-login -n 50'*"),
        "*/var/lib/sops-nix/key.txt has mode 644 (root:root), expected 600*",
        "*/run/secrets/rendered/choiros-flakehub-token has mode 444 (root:root), expected 400*",
    ])
    assert not re.search(r"choiros-platform\.env has mode", result.stdout.str())


def _built_paths(names: tuple[str, ...]) -> dict[str, str]:
    """Input-addressed store paths (real derivation outputs, as promoted closures are; a
    content-addressed path is trusted by its hash whatever signs it)."""
    import json
    import subprocess
    import uuid

    nonce = uuid.uuid4().hex
    expr = "{ " + " ".join(
        f'{n} = builtins.derivation {{ name = "signed-{n}"; system = "x86_64-linux"; '
        f'builder = "/bin/sh"; args = [ "-c" "echo {nonce} > $out" ]; }};' for n in names) + " }"
    out = subprocess.run(["nix", "--extra-experimental-features", "nix-command", "build",
                          "--impure", "--no-link", "--json", "--expr",
                          f"builtins.attrValues ({expr})"], capture_output=True, text=True,
                         check=True, timeout=120)
    paths = [entry["outputs"]["out"] for entry in json.loads(out.stdout)]
    return {n: next(p for p in paths if p.endswith(f"signed-{n}")) for n in names}


def test_promoted_paths_must_carry_the_grind_signature(
        pytester: pytest.Pytester, plain_host: HostUnderTest) -> None:
    """host_checks.manifest_signing_key: every release path on the host is signed by the grind
    key (choirci release sign), checked by the host's own nix; a signature by another key (even
    one of the same name), or none, fails naming the path."""
    from choirci.nix.adapter import Nix
    from choirci.release import sign

    nix = Nix(binary="/usr/bin/nix")
    secret, public = sign.generate_nix_key(nix, "grind-test-1")
    forged, _ = sign.generate_nix_key(nix, "grind-test-1")  # same name, another key
    closures = _built_paths(("sandbox", "hypervisor", "desktop"))
    sign.sign_paths(nix, sign.Secret(source="test key", text=secret),
                    [closures["sandbox"], closures["hypervisor"]], recursive=False)
    sign.sign_paths(nix, sign.Secret(source="forged key", text=forged), [closures["desktop"]],
                    recursive=False)
    manifest = release(pytester, closures)
    result = grind(pytester, plain_host, "-v", "-k", "manifest_signed", manifest=manifest,
                   manifest_signing_key=public)
    assert counts(result) == {"passed": 2, "failed": 1}, result.stdout.str()
    result.stdout.fnmatch_lines([f"*desktop: {closures['desktop']} on ssh://choirci-plain has a "
                                 "signature named grind-test-1 that does not verify with the "
                                 "given key, not by grind-test-1; only paths signed on grind*"])
    _, stranger = sign.generate_nix_key(nix, "other-1")
    result = grind(pytester, plain_host, "-k", "manifest_signed", manifest=manifest,
                   manifest_signing_key=stranger)
    assert counts(result) == {"failed": 3}, result.stdout.str()
    result.stdout.fnmatch_lines([f"*sandbox: {closures['sandbox']} on ssh://choirci-plain is "
                                 "signed only by grind-test-1, not by other-1*"])
    result = grind(pytester, plain_host, "-k", "manifest_signed", manifest=manifest)
    assert counts(result) == {"skipped": 3}, result.stdout.str()
