"""Layer 4: closures built on a real Nix remote builder (tests/hostenv/builder.py).

The builder is a Debian bookworm with nix-bin and openssh-server, booted with
systemd-nspawn in a network namespace of its own: sshd on that namespace's 127.0.0.1:22,
reachable only from inside it. `pytest --grind` (the client: this machine's Nix and store)
runs inside the namespace too, with ``nix.extra_args: [--max-jobs, 0, --builders, ...]``:
nothing can build locally, so a closure that builds was built there.

The closures are tiny flakes made per test (a salt makes each derivation new, so it must
really be built); the builder's store starts empty on every boot, and what it holds is read
from its overlay, not asked of it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from conftest import FIXTURES
from hostenv import builder as builders

pytestmark = pytest.mark.slow

NIX_CONFIG = ("experimental-features = nix-command flakes\nsubstituters =\nsandbox = false\n"
              "build-users-group =\nflake-registry = /var/empty/no-flake-registry.json\n"
              "warn-dirty = false")
GIT_ID = ["-c", "user.name=choirci test", "-c", "user.email=test@choirci.invalid"]


def flake(name: str, script: str) -> str:
    """A flake whose default package runs ``script`` with /bin/sh (no PATH: builtins only)."""
    return f"""{{
  outputs = {{ self }}: {{
    packages.x86_64-linux.default = builtins.derivation {{
      name = "{name}"; system = "x86_64-linux"; builder = "/bin/sh";
      args = [ "-c" {json.dumps(script)} ];
    }};
  }};
}}
"""


def ok_script() -> str:
    return f"echo choirci-salt-{uuid.uuid4().hex} > $out"


@pytest.fixture(scope="module")
def rootfs() -> Path:
    reason = builders.unavailable_reason()
    if reason:
        pytest.skip(f"no remote builder host here: {reason}")
    return builders.ensure_builder_rootfs()


@pytest.fixture
def builder(rootfs: Path, tmp_path: Path) -> Iterator[builders.BuilderHost]:
    host = builders.BuilderHost(tmp_path / "builder")
    try:
        host.start(rootfs)
        yield host
    finally:
        host.stop()


def workspace(root: Path, flakes: Mapping[str, str], extra_args: list[str],
              lock: Path | None = None) -> Path:
    root.mkdir(parents=True)
    closures = "".join(f"  {name}: ./{name}#default\n" for name in flakes)
    nix = f"nix:\n  extra_args: {json.dumps(extra_args)}\n"
    if lock is not None:
        nix += f"  lock_path: {lock}\n  lock_timeout: 120\n"
    (root / "choirci.yaml").write_text(f"closures:\n{closures}{nix}")
    (root / "pytest.ini").write_text("[pytest]\n")
    for name, text in flakes.items():
        (root / name).mkdir()
        (root / name / "flake.nix").write_text(text)
    for argv in (["git", "init", "-q"], ["git", "add", "-A"],
                 ["git", *GIT_ID, "commit", "-q", "-m", "w"]):
        subprocess.run(argv, cwd=root, check=True, capture_output=True)
    return root


def via(host: builders.BuilderHost, scheme: str = "ssh-ng") -> list[str]:
    return ["--max-jobs", "0", "--builders", host.machine(scheme)]


def grind(host: builders.BuilderHost | None, root: Path, evidence: Path, netns: str = "",
          timeout: float = 300) -> tuple[subprocess.CompletedProcess[str], dict[str, dict[str, str]]]:
    """`pytest --grind --area closures` inside the builder's namespace (or ``netns``)."""
    argv = [sys.executable, "-m", "pytest", "--grind", "--area", "closures", "-p",
            "no:cacheprovider", "--evidence-dir", str(evidence), "-q"]
    if host is not None:
        argv = host.client_argv(argv)
    elif netns:
        argv = ["ip", "netns", "exec", netns, *argv]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHOIRCI_")}
    result = subprocess.run(argv, cwd=root, env={**env, "NIX_CONFIG": NIX_CONFIG},
                            capture_output=True, text=True, timeout=timeout, check=False)
    items: dict[str, dict[str, str]] = {}
    record = evidence / "choirci.json"
    if record.exists():
        data = json.loads(record.read_text())
        for item in (i for run in data["runs"] for i in run["items"]):
            props = {name: str(value) for name, value in item.get("properties", [])}
            items[item["nodeid"]] = {"outcome": item["outcome"],
                                     "message": item.get("message") or "", **props}
    return result, items


@pytest.mark.parametrize("scheme", ["ssh-ng", "ssh"])
def test_closures_are_built_on_the_remote_builder(
        builder: builders.BuilderHost, tmp_path: Path, scheme: str) -> None:
    root = workspace(tmp_path / "ws", {"one": flake("choirci-one", ok_script()),
                                       "two": flake("choirci-two", ok_script())},
                     via(builder, scheme))
    result, items = grind(builder, root, tmp_path / "ev1")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    for nodeid in ("closures::one", "closures::two"):
        item = items[nodeid]
        assert item["outcome"] == "passed", item
        assert item["cache"] == "built" and item["cache_planned"] == "to-build", item
        assert item["built_on"] == f"{scheme}://root@127.0.0.1", item
        # Built there (in the builder's own store), copied back here.
        assert item["out_path"] in builder.store_paths()
        assert Path(item["out_path"]).exists()
    # Again: present here, nothing built anywhere, no "built on".
    again, items = grind(builder, root, tmp_path / "ev2")
    assert again.returncode == 0, again.stdout[-3000:]
    assert items["closures::one"]["cache"] == "present"
    assert "built_on" not in items["closures::one"]


def test_a_workspace_closure_is_built_on_the_builder(
        builder: builders.BuilderHost, tmp_path: Path) -> None:
    """fixtures/choiros-mini's sandbox closure (a cargo release build; the builder has the
    bind-mounted toolchain and its own cc), from a source no store holds yet."""
    root = tmp_path / "choiros-mini"
    shutil.copytree(FIXTURES / "choiros-mini", root, symlinks=True,
                    ignore=shutil.ignore_patterns("target", "result*", "evidence"))
    main = root / "sandbox" / "src" / "main.rs"
    main.write_text(main.read_text() + f"\n// choirci remote builder test {uuid.uuid4().hex}\n")
    (root / "choirci.yaml").write_text(
        f"closures:\n  sandbox: ./sandbox#sandbox\nnix:\n  extra_args: {json.dumps(via(builder))}\n")
    for argv in (["git", "init", "-q"], ["git", "add", "-A"]):
        subprocess.run(argv, cwd=root, check=True, capture_output=True)
    result, items = grind(builder, root, tmp_path / "ev", timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    item = items["closures::sandbox"]
    assert (item["cache"], item["built_on"]) == ("built", "ssh-ng://root@127.0.0.1"), item
    assert item["out_path"] in builder.store_paths()
    assert (Path(item["out_path"]) / "bin" / "sandbox").exists()


def test_a_build_without_builders_says_local(tmp_path: Path, rootfs: Path) -> None:
    """The control: the same kind of closure built by this machine's Nix records "local"."""
    root = workspace(tmp_path / "ws", {"one": flake("choirci-local", ok_script())}, [])
    result, items = grind(None, root, tmp_path / "ev")
    assert result.returncode == 0, result.stdout[-3000:]
    assert items["closures::one"]["cache"] == "built"
    assert items["closures::one"]["built_on"] == "local"


def test_a_failing_build_on_the_builder_names_it(
        builder: builders.BuilderHost, tmp_path: Path) -> None:
    root = workspace(tmp_path / "ws", {
        "bad": flake("choirci-bad", f"echo {uuid.uuid4().hex}; echo failing on purpose; exit 3"),
        "good": flake("choirci-good", ok_script())}, via(builder))
    result, items = grind(builder, root, tmp_path / "ev")
    assert result.returncode == 1, result.stdout[-3000:]
    bad = items["closures::bad"]
    assert bad["outcome"] == "failed", bad
    assert "exit code 3" in bad["message"], bad
    assert "on 'ssh-ng://root@127.0.0.1'" in bad["message"], bad
    assert items["closures::good"]["built_on"] == "ssh-ng://root@127.0.0.1"


def test_an_unreachable_builder_is_an_error_naming_it_never_a_pass(
        builder: builders.BuilderHost, tmp_path: Path) -> None:
    """The builder's sshd is stopped: Nix cannot reach it and may not build locally."""
    builder.freeze()
    root = workspace(tmp_path / "ws", {"one": flake("choirci-unreachable", ok_script())},
                     via(builder))
    result, items = grind(builder, root, tmp_path / "ev")
    assert result.returncode != 0, result.stdout[-3000:]
    item = items["closures::one"]
    assert item["outcome"] in ("failed", "error"), item
    print(f"\nunreachable: {item['message']}")
    assert "cannot build on 'ssh-ng://root@127.0.0.1'" in item["message"], item
    assert "PASS" not in result.stdout


def test_a_builder_that_dies_mid_build_is_a_failure_naming_it(
        builder: builders.BuilderHost, tmp_path: Path) -> None:
    root = workspace(tmp_path / "ws", {"slow": flake(
        "choirci-slow", f"echo {uuid.uuid4().hex}; echo started; /bin/sleep 120; echo > $out")},
        via(builder))
    done: dict[str, object] = {}

    def run() -> None:
        done["result"], done["items"] = grind(builder, root, tmp_path / "ev")

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(
            p.endswith("-choirci-slow.drv") for p in builder.store_paths()):
        time.sleep(0.2)
    time.sleep(2)  # the build is running on the builder now
    builder.stop()
    thread.join(timeout=200)
    result = done["result"]
    items = done["items"]
    assert isinstance(result, subprocess.CompletedProcess) and isinstance(items, dict)
    assert result.returncode != 0, result.stdout[-3000:]
    item = items["closures::slow"]
    assert item["outcome"] in ("failed", "error"), item
    print(f"\ndied mid-build: {item['message']}")
    assert "ssh-ng://root@127.0.0.1" in item["message"], item


def test_the_build_lock_still_serialises_two_runs_sending_to_the_builder(
        builder: builders.BuilderHost, tmp_path: Path) -> None:
    """Two grind runs of one workspace, one lock: one builds on the builder, the other waits
    for the lock and finds the closure present (it is never built twice)."""
    lock = tmp_path / "build.lock"
    root = workspace(tmp_path / "ws", {"one": flake(
        "choirci-locked", f"/bin/sleep 3; echo {uuid.uuid4().hex} > $out")}, via(builder), lock)
    found: dict[str, dict[str, dict[str, str]]] = {}

    def run(name: str) -> None:
        result, items = grind(builder, root, tmp_path / name)
        assert result.returncode == 0, result.stdout[-2000:]
        found[name] = items

    threads = [threading.Thread(target=run, args=(n,)) for n in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    caches = sorted(found[n]["closures::one"]["cache"] for n in ("a", "b"))
    assert caches == ["built", "present"], found
    built = next(found[n] for n in ("a", "b") if found[n]["closures::one"]["cache"] == "built")
    assert built["closures::one"]["built_on"] == "ssh-ng://root@127.0.0.1"


# --- the parsing, on Nix 2.8's own lines (no builder needed) -------------------------------------

REMOTE_LOG = """\
building '/nix/store/pg5frm10nadricacfc3pcihprg0d1kwr-choirci-tiny.drv' on 'ssh-ng://root@127.0.0.1'...
copying 0 paths...
building '/nix/store/pg5frm10nadricacfc3pcihprg0d1kwr-choirci-tiny.drv'...
building '/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-local.drv'...
copying path '/nix/store/iw2ib7wp0wj6y0wvk7wrpnw06frmfjdk-choirci-tiny' from 'ssh-ng://root@127.0.0.1'...
"""
UNREACHABLE_LOG = """\
ssh: connect to host 127.0.0.1 port 22: Network is unreachable
cannot build on 'ssh-ng://root@127.0.0.1': error: cannot open connection to remote store 'ssh-ng://root@127.0.0.1': error: unexpected end-of-file
Failed to find a machine for remote build!
error: unable to start any build; remote machines may not have all required system features.
"""


def test_remote_build_lines_are_parsed() -> None:
    from choirci.nix.build import _builders_note, remote_builds

    tiny = "/nix/store/pg5frm10nadricacfc3pcihprg0d1kwr-choirci-tiny.drv"
    assert remote_builds(REMOTE_LOG) == {tiny: "ssh-ng://root@127.0.0.1"}
    assert _builders_note(REMOTE_LOG, [tiny]) == (
        f" [remote builder: {tiny} was building on 'ssh-ng://root@127.0.0.1']")
    assert _builders_note(UNREACHABLE_LOG, [tiny]) == (
        " [remote builder: cannot build on 'ssh-ng://root@127.0.0.1': error: cannot open "
        "connection to remote store 'ssh-ng://root@127.0.0.1': error: unexpected end-of-file]")
    assert _builders_note("building '/nix/store/x.drv'...\n", [tiny]) == ""
