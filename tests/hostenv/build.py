"""The example workspace's ``sandbox`` and ``hypervisor``, built once and put in the Nix store.

``cargo build --release --offline`` in a copy of fixtures/choiros-mini (the fixture's own
``target/`` belongs to other tests), with a target dir cached under /var/cache/choirci so a
rerun only relinks; then ``nix-store --add`` of ``<name>/bin/<name>`` gives a real, content
addressed ``/nix/store/<hash>-choiros-mini-<name>`` path for the binary checks to expect.
``dioxus-desktop`` is a stand-in script (the desktop is never run as a service), so the three
closures of a real release manifest exist; :func:`next_build` makes a different build of one
binary (its bytes plus a unique trailer) for "a newer release" scenarios.
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

from choirci.release import manifest

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "fixtures" / "choiros-mini"
CACHE = Path("/var/cache/choirci/testhost")
CARGO = shutil.which("cargo") or "/root/.cargo/bin/cargo"
NAMES = ("sandbox", "hypervisor")
DESKTOP = "dioxus-desktop"
DESKTOP_SCRIPT = "#!/bin/sh\necho 'dioxus-desktop stand-in (choirci test host)'\n"


@dataclass(frozen=True)
class Binaries:
    store_paths: dict[str, str]  # name -> /nix/store/...-choiros-mini-<name>

    def bin(self, name: str) -> str:
        return f"{self.store_paths[name]}/bin/{name}"

    def closures(self) -> dict[str, str]:
        """Release closure name -> store path (the manifest's sandbox/hypervisor/desktop)."""
        return {"sandbox": self.store_paths["sandbox"], "hypervisor": self.store_paths["hypervisor"],
                "desktop": self.store_paths[DESKTOP]}


def build(workdir: Path) -> Binaries:
    src = workdir / "choiros-mini"
    shutil.copytree(FIXTURE, src, ignore=shutil.ignore_patterns("target", "result*", ".git"))
    target = CACHE / "cargo-target"
    target.mkdir(parents=True, exist_ok=True)
    argv = [CARGO, "build", "--release", "--offline", "--bins", "-p", "sandbox", "-p", "hypervisor"]
    subprocess.run(argv, cwd=src, check=True, capture_output=True, timeout=900,
                   env={**_env(), "CARGO_TARGET_DIR": str(target)})
    paths = {name: _add_to_store(workdir, target / "release" / name, name) for name in NAMES}
    script = workdir / "desktop-src"
    script.write_text(DESKTOP_SCRIPT)
    script.chmod(0o755)
    paths[DESKTOP] = _add_to_store(workdir, script, DESKTOP)
    return Binaries(paths)


def next_build(workdir: Path, binaries: Binaries, name: str) -> str:
    """A new, never-seen store path holding ``name`` with a unique trailer (ELF ignores it)."""
    tag = uuid.uuid4().hex[:12]
    copy = workdir / f"{name}-{tag}"
    shutil.copy2(binaries.bin(name), copy)
    copy.chmod(0o755)  # the store copy is read-only
    with copy.open("ab") as handle:
        handle.write(f"\nchoirci-next-build-{tag}\n".encode())
    return _add_to_store(workdir, copy, name, suffix=f"-next-{tag}")


def write_manifest(path: Path, closures: dict[str, str]) -> Path:
    """The 11-key release .env apply-release-manifest.sh sources, for ``closures``."""
    records = tuple(
        manifest.ClosureRecord(name, (manifest.StorePath("out", closures[name]),), bin=binary)
        for name, (_, binary) in manifest.CLASSIC.items()
    )
    release = manifest.Manifest("ab" * 20, "ababab", "2026-02-20T12:00:00Z", "/opt/choiros/workspace",
                                False, records, source="env")
    path.write_text(manifest.to_env(release))
    return path


def _add_to_store(workdir: Path, binary: Path, name: str, suffix: str = "") -> str:
    tree = workdir / f"choiros-mini-{name}{suffix}"
    (tree / "bin").mkdir(parents=True)
    shutil.copy2(binary, tree / "bin" / name)
    out = subprocess.run(["nix-store", "--add", str(tree)], check=True, capture_output=True,
                         text=True, timeout=120)
    return out.stdout.strip()


def _env() -> dict[str, str]:
    import os

    env = dict(os.environ)
    env["PATH"] = f"{Path(CARGO).parent}:{env.get('PATH', '')}"
    return env
