"""End to end on the ChoirOS-shaped fixture: ``pytest --grind -m nix`` gives three closure
testcases whose JUnit provenance carries store paths and the cache classification.

Real cargo builds through real Nix (the fixture's flakes call the host toolchain). A nonce
comment in ``shared-types`` makes all three derivations new, so the first run is a true
cold build and the store paths deleted later are this test's own.
"""

from __future__ import annotations

import shutil
import time
import uuid
from pathlib import Path

import pytest
from nix_support import commit, one, properties, run_nix, use_nix

pytestmark = pytest.mark.slow

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "choiros-mini"
CLOSURES = ("sandbox", "hypervisor", "desktop")


@pytest.fixture
def workspace(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Path:
    if not (FIXTURE / "choirci.yaml").exists():
        pytest.skip("fixtures/choiros-mini is not there yet")
    use_nix(monkeypatch, pytester.path)
    root = pytester.path
    shutil.copytree(FIXTURE, root, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("target", "evidence", "result*"))
    lib = root / "shared-types" / "src" / "lib.rs"
    lib.write_text(lib.read_text() + f"\n// choirci test nonce {uuid.uuid4().hex}\n")
    config = (root / "choirci.yaml").read_text()
    (root / "choirci.yaml").write_text(config + f"nix:\n  lock_path: {root / 'build.lock'}\n")
    with (root / ".gitignore").open("a") as ignore:
        ignore.write("\n.cache/\nevidence/\n*.xml\nbuild.lock*\ncache/\n")
    commit(root)
    return root


def grind(pytester: pytest.Pytester, *args: str) -> tuple[pytest.RunResult, dict[str, dict[str, list[str]]]]:
    junit = pytester.path / f"junit-{time.monotonic_ns()}.xml"
    result = pytester.runpytest_subprocess("--grind", "-m", "nix", "-p", "no:cacheprovider", "-rA",
                                           f"--junitxml={junit}", *args)
    return result, properties(junit) if junit.exists() else {}


def test_choiros_mini_built_present_substituted(pytester: pytest.Pytester, workspace: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    result, props = grind(pytester)
    result.assert_outcomes(passed=3)
    assert set(props) == {f"closures::{name}" for name in CLOSURES}
    names = {"sandbox": "sandbox-0.1.0", "hypervisor": "hypervisor-0.1.0",
             "desktop": "dioxus-desktop-0.1.0"}
    for name, store_name in names.items():
        case = props[f"closures::{name}"]
        assert one(case, "cache") == "built"
        assert one(case, "out_path").endswith(f"-{store_name}")
        assert Path(one(case, "out_path"), "bin").is_dir()
        assert one(case, "drv_path").endswith(f"-{store_name}.drv")
        assert int(one(case, "closure_size")) > 0
    result.stdout.fnmatch_lines(["*building 3 closure(s) in one nix build: sandbox, hypervisor, desktop*",
                                 "*nix: building '/nix/store/*"])

    result, props = grind(pytester)
    result.assert_outcomes(passed=3)
    assert {one(props[f"closures::{n}"], "cache") for n in CLOSURES} == {"present"}

    sandbox = one(props["closures::sandbox"], "out_path")
    cache = workspace / "cache"
    assert run_nix("copy", "--to", f"file://{cache}", sandbox).returncode == 0
    deleted = run_nix("store", "delete", sandbox)
    assert deleted.returncode == 0, deleted.stderr
    use_nix(monkeypatch, workspace, substituter=f"file://{cache}")
    result, props = grind(pytester)
    result.assert_outcomes(passed=3)
    assert one(props["closures::sandbox"], "cache") == "substituted"
    assert one(props["closures::sandbox"], "out_path") == sandbox
    assert one(props["closures::hypervisor"], "cache") == "present"
