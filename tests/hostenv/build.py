"""The example workspace's ``sandbox`` and ``hypervisor``, built once and put in the Nix store.

``cargo build --release --offline`` in a copy of fixtures/choiros-mini (the fixture's own
``target/`` belongs to other tests), with a target dir cached under /var/cache/choirci so a
rerun only relinks; then ``nix-store --add`` of ``<name>/bin/<name>`` gives a real, content
addressed ``/nix/store/<hash>-choiros-mini-<name>`` path for the binary checks to expect.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "fixtures" / "choiros-mini"
CACHE = Path("/var/cache/choirci/testhost")
CARGO = shutil.which("cargo") or "/root/.cargo/bin/cargo"
NAMES = ("sandbox", "hypervisor")


@dataclass(frozen=True)
class Binaries:
    store_paths: dict[str, str]  # name -> /nix/store/...-choiros-mini-<name>

    def bin(self, name: str) -> str:
        return f"{self.store_paths[name]}/bin/{name}"


def build(workdir: Path) -> Binaries:
    src = workdir / "choiros-mini"
    shutil.copytree(FIXTURE, src, ignore=shutil.ignore_patterns("target", "result*", ".git"))
    target = CACHE / "cargo-target"
    target.mkdir(parents=True, exist_ok=True)
    argv = [CARGO, "build", "--release", "--offline", "--bins", "-p", "sandbox", "-p", "hypervisor"]
    subprocess.run(argv, cwd=src, check=True, capture_output=True, timeout=900,
                   env={**_env(), "CARGO_TARGET_DIR": str(target)})
    return Binaries({name: _add_to_store(workdir, target / "release" / name, name) for name in NAMES})


def _add_to_store(workdir: Path, binary: Path, name: str) -> str:
    tree = workdir / f"choiros-mini-{name}"
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
