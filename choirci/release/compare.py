"""Comparisons of a release manifest with what a store or host has: present with the same
narHash (:func:`compare_store`), running from the release's store paths
(:func:`compare_running`), and what changed between two releases (:func:`diff`). Pure.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

from choirci.nix.formats import PathInfo
from choirci.release.manifest import ClosureRecord, Manifest


@dataclass(frozen=True)
class Mismatch:
    """One way the target differs from the manifest, phrased for an operator."""

    closure: str
    kind: str  # missing | nar-hash | contents | running | not-installed | unknown
    expected: str
    actual: str
    where: str

    def __str__(self) -> str:
        return (f"{self.closure}: {self.kind} on {self.where}: expected {self.expected}, "
                f"actual {self.actual}; {_HINTS[self.kind].format(m=self)}")


_HINTS = {
    "missing": "copy it there: nix copy --to {m.where} {m.expected}",
    "nar-hash": "the store holds another build of the same path; delete it there and copy "
                "the release's build",
    "contents": "its files changed after registration; run nix store repair there",
    "running": "apply the release (apply-release-manifest.sh) and restart the services",
    "not-installed": "apply the release (apply-release-manifest.sh)",
    "unknown": "the manifest has no closure of that name; check the release",
}


def compare_store(manifest: Manifest, infos: Mapping[str, PathInfo | None],
                  where: str) -> list[Mismatch]:
    """Every manifest path must be valid in ``infos`` with the manifest's narHash (if known)."""
    found = []
    for closure in manifest.closures:
        for output in closure.outputs:
            info = infos.get(output.path)
            if info is None:
                found.append(Mismatch(closure.name, "missing", output.path, "absent", where))
            elif output.nar_hash and info.nar_hash != output.nar_hash:
                found.append(Mismatch(closure.name, "nar-hash",
                                      f"{output.path} with narHash {output.nar_hash}",
                                      f"narHash {info.nar_hash}", where))
    return found


def compare_running(manifest: Manifest, observed: Mapping[str, str | None],
                    where: str = "host", identical: Collection[str] = ()) -> list[Mismatch]:
    """Check what a host runs against the manifest: ``observed`` maps a closure name to the
    resolved path of what runs (``readlink -f /opt/choiros/bin/<bin>`` or
    ``/proc/<pid>/exe``), or None when nothing is installed. A path inside the closure's
    store path matches, and so does the file of a closure named in ``identical`` (a
    byte-identical copy of its binary: install-style deploys copy, CONTRACT §8.6). Only the
    names in ``observed`` are checked."""
    found = []
    for name, actual in sorted(observed.items()):
        closure = manifest.closure(name)
        if closure is None:
            known = ", ".join(c.name for c in manifest.closures)
            found.append(Mismatch(name, "unknown", f"one of {known}", str(actual), where))
            continue
        expected = closure.bin_path or closure.store_path
        if actual is None:
            found.append(Mismatch(name, "not-installed", expected, "absent", where))
        elif not closure.holds(actual) and name not in identical:
            found.append(Mismatch(name, "running", expected, actual, where))
    return found


@dataclass(frozen=True)
class ClosureChange:
    name: str
    status: str  # added | removed | changed | unchanged
    before: ClosureRecord | None
    after: ClosureRecord | None


def diff(old: Manifest, new: Manifest) -> list[ClosureChange]:
    """Per closure name, in the new manifest's order then removed ones."""
    changes = []
    for closure in new.closures:
        before = old.closure(closure.name)
        if before is None:
            status = "added"
        elif _paths(before) == _paths(closure):
            status = "unchanged"
        else:
            status = "changed"
        changes.append(ClosureChange(closure.name, status, before, closure))
    for closure in old.closures:
        if new.closure(closure.name) is None:
            changes.append(ClosureChange(closure.name, "removed", closure, None))
    return changes


def _paths(closure: ClosureRecord) -> dict[str, str]:
    return {o.output: o.path for o in closure.outputs}
