"""Verifying a release manifest against a store and a host's bin dir (used by ``choirci
manifest verify``): every promoted path present with its narHash, optionally re-hashed by
``nix store verify``, and each ``/opt/choiros/bin`` entry linking into the release (or an
identical copy of its binary). Pure comparisons live in :mod:`choirci.release.compare`.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from choirci.errors import ChoirciError
from choirci.nix.adapter import Nix
from choirci.nix.hashes import sri
from choirci.release.compare import Mismatch
from choirci.release.manifest import Manifest
from choirci.text import ANSI

STORE_PATH_IN_VERIFY = re.compile(r"path '(?P<path>/[^']+)' was modified! expected hash "
                                  r"'(?P<expected>[^']+)', got '(?P<actual>[^']+)'")


def all_paths(release: Manifest) -> list[str]:
    return [o.path for c in release.closures for o in c.outputs]


def check_store_exists(store: str | None) -> None:
    # A mistyped chroot store would be created empty and report every path missing.
    if store and store.startswith(("/", "./", "../")) and not Path(store).is_dir():
        raise ChoirciError(f"--store {store}: no such directory; pass an existing chroot store, "
                           "file:// cache or ssh://host")


def content_mismatches(nix: Nix, release: Manifest, paths: Sequence[str],
                       store: str | None) -> list[Mismatch]:
    """Re-hash ``paths`` on the store (``nix`` carries ``--store``): files edited after
    registration are caught here. Nix prints base-32 ``sha256:`` hashes; the messages say
    SRI ``sha256-``, as the manifest does."""
    if not paths:
        return []
    result = nix.verify(paths)
    owner = {o.path: c.name for c in release.closures for o in c.outputs}
    found = [Mismatch(owner.get(m["path"], "?"), "contents", f"{m['path']} hashing to "
                      f"{sri(m['expected'])}", f"files hash to {sri(m['actual'])}",
                      store or "local")
             for m in STORE_PATH_IN_VERIFY.finditer(result.stderr)]
    if not result.ok and not found:
        raise ChoirciError(f"`{result.command}` failed ({result.describe_exit()}): "
                           f"{result.stderr.strip()[-300:]}")
    return found


def observe_bin_dir(release: Manifest, bin_dir: Path) -> dict[str, str | None]:
    """``readlink -f DIR/<binary>`` per closure that has one (absent: None)."""
    if not bin_dir.is_dir():
        raise ChoirciError(f"--bin-dir {bin_dir}: no such directory; pass the host's "
                           "/opt/choiros/bin")
    observed: dict[str, str | None] = {}
    for closure in release.closures:
        if closure.bin:
            link = bin_dir / Path(closure.bin).name
            observed[closure.name] = os.path.realpath(link) if os.path.lexists(link) else None
    return observed


def identical_copies(release: Manifest, observed: Mapping[str, str | None]) -> dict[str, str]:
    """Closure name -> sha256 for each observed binary that is a regular file outside the
    store path with the release binary's bytes: install-style deploys (host-switch.sh) copy
    where apply-release-manifest.sh links (trap §8.6). A release binary that is not in the
    local store cannot be compared, so its copy stays a mismatch."""
    copies = {}
    for name, actual in observed.items():
        closure = release.closure(name)
        if closure is None or closure.bin_path is None or actual is None \
                or closure.holds(actual) or not os.path.isfile(actual):
            continue
        digest = sha256_of(actual)
        if digest is not None and digest == sha256_of(closure.bin_path):
            copies[name] = digest
    return copies


def sha256_of(path: str) -> str | None:
    try:
        with open(path, "rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()
    except OSError:
        return None


def verify_summary(release: Manifest, where: str, mismatches: Sequence[Mismatch],
                   bin_dir: Path | None, copies: int = 0) -> str:
    count = len(all_paths(release))
    head = f"release {release.short_sha} ({release.release_sha})"
    if mismatches:
        return f"manifest verify: {head}: {len(mismatches)} mismatch(es) on {where}"
    hashes = "with the manifest's narHash" if release.has_hashes else \
        "(narHash not recorded in a .env manifest: verify the .json to compare hashes)"
    running = ""
    if bin_dir is not None:
        running = f"; {bin_dir} runs exactly these paths" if not copies else \
            f"; {bin_dir} runs exactly these binaries ({copies} as identical copies)"
    return f"manifest verify: {head}: all {count} store paths present on {where} {hashes}{running}"


def package_diff(nix: Nix, before: str, after: str) -> list[str]:
    """``nix store diff-closures`` lines, or one line saying why there are none."""
    infos = nix.path_info([before, after])
    absent = [p for p, info in infos.items() if info is None]
    if absent:
        return [f"(no package diff: {', '.join(absent)} not in the local store)"]
    result = nix.diff_closures(before, after)
    if not result.ok:
        return [f"(no package diff: `{result.command}` {result.describe_exit()})"]
    return parse_diff_closures(result.stdout) or [
        "(nix store diff-closures: no package version or size change)"]


def parse_diff_closures(text: str) -> list[str]:
    """``name: 0.1.0 → 0.2.0, +1.2 KiB`` lines, without the colours Nix adds even to a pipe."""
    return [ANSI.sub("", line).strip() for line in text.splitlines() if line.strip()]
