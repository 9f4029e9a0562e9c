"""``nix.extra_args`` reach EVERY nix call, with real Nix: a ``--store`` there is honoured by
the queries, deletes, verifies and diffs as well as by builds (else their answers silently
come from the local store). The other store is a chroot store in tmp_path, filled with
``nix copy``; the paths are this test's own (a fresh nonce), built in the local store.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from nix_support import NIX, run_nix, use_nix

from choirci.nix.adapter import Nix

pytestmark = pytest.mark.slow


def build_pair(tmp: Path) -> tuple[str, str, str]:
    """A ``top`` derivation over a ``dep`` one; returns (top drv, top out, dep drv)."""
    nonce = uuid.uuid4().hex
    expr = tmp / "pair.nix"
    expr.write_text(
        "let mk = name: script: extra: builtins.derivation ({ inherit name; "
        'system = "x86_64-linux"; builder = "/bin/sh"; args = [ "-c" script ]; '
        f'nonce = "{nonce}"; PATH = "/usr/bin:/bin"; }} // extra);\n'
        'dep = mk "dep" "echo dep > $out" {};\n'
        'in mk "top" "cat $dep > $out" { inherit dep; }\n')
    built = run_nix("build", "--json", "--no-link", "-f", str(expr))
    assert built.returncode == 0, built.stderr
    (entry,) = json.loads(built.stdout)
    shown = run_nix("show-derivation", entry["drvPath"]) if "2.8" in run_nix("--version").stdout \
        else run_nix("derivation", "show", entry["drvPath"])
    dep_drv = next(iter(json.loads(shown.stdout)[entry["drvPath"]]["inputDrvs"]))
    return entry["drvPath"], entry["outputs"]["out"], dep_drv


@pytest.fixture
def other_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    use_nix(monkeypatch, tmp_path)
    return tmp_path / "other"


def test_store_in_extra_args_is_honoured_by_every_query(tmp_path: Path, other_store: Path) -> None:
    top_drv, top_out, dep_drv = build_pair(tmp_path)
    local = Nix(binary=NIX)
    other = Nix(binary=NIX, extra_args=("--store", str(other_store)))
    empty = Nix(binary=NIX, extra_args=("--store", str(tmp_path / "empty")))

    # The drv graph of a store that does not hold it is unknown (only the drv itself), though
    # the local store knows it: `derivation show` asked the --store.
    assert local.drv_closure(top_drv) == {top_drv, dep_drv}
    assert empty.drv_closure(top_drv) == {top_drv}
    assert empty.path_info([top_out]) == {top_out: None}

    copied = local.copy([top_drv, top_out], to=str(other_store), no_check_sigs=True)
    assert copied.ok, copied.stderr
    # (No positive `derivation show` on the chroot store: 2.8 cannot resolve a .drv installable
    # there at all, it looks for a flake.nix; the empty store above proved the flag arrives.)
    info = other.path_info([top_out])[top_out]
    assert info is not None and info.nar_hash.startswith("sha256-")

    # diff-closures and verify look at the other store (the path is valid there).
    assert other.diff_closures(top_out, top_out).ok
    assert other.verify([top_out]).ok
    assert not empty.verify([top_out]).ok

    # Tamper with the copy in the other store only: verify there finds it, in SRI.
    stored = other_store / top_out.lstrip("/")
    stored.chmod(0o644)
    stored.write_text("tampered\n")
    result = other.verify([top_out])
    assert "was modified" in result.stderr
    assert local.verify([top_out]).ok

    # Deleting through the other store never touches the local one.
    stored.unlink()
    deleted = other.delete([top_out])
    assert deleted.ok, deleted.stderr
    assert other.path_info([top_out]) == {top_out: None}
    assert Path(top_out).exists() and local.path_info([top_out])[top_out] is not None
