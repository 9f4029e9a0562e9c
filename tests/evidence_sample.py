"""Fixed run records shared by the evidence, gate and merge tests (times fixed, so the
golden files never need normalising), plus the golden-file helper."""

from __future__ import annotations

import os
from pathlib import Path

from choirci.evidence.record import ItemResult, Provenance, RunRecord, ShardRun, TreeState

DATA = Path(__file__).parent / "data"
GOLDEN = DATA / "evidence"
XSD = DATA / "junit-10.xsd"
COMMIT = "1dcaf0ae2533ccdb07c504301e4e55bd5781ff2a"


def golden(name: str, actual: str) -> None:
    """Compare with tests/data/evidence/<name>; CHOIRCI_UPDATE_GOLDEN=1 rewrites it."""
    path = GOLDEN / name
    if os.environ.get("CHOIRCI_UPDATE_GOLDEN") == "1" or not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8")
    assert actual == path.read_text(encoding="utf-8"), f"differs from golden file {path}"


def item(nodeid: str, area: str, classname: str, name: str, outcome: str = "passed",
         **kw: object) -> ItemResult:
    return ItemResult(nodeid=nodeid, area=area, classname=classname, name=name,
                      outcome=outcome, **kw)  # type: ignore[arg-type]


def closure(name: str, outcome: str = "passed", cache: str = "present", **kw: object) -> ItemResult:
    props = (("installable", f"./{name}#{name}"), ("drv_path", f"/nix/store/aaaa-{name}.drv"),
             ("out_path", f"/nix/store/bbbb-{name}-0.1.0"), ("cache", cache),
             ("nix_version", "2.18.1"), ("wall_time", "12.5"))
    return item(f"closures::{name}", "closures", "closures", name, outcome,
                markers=("nix",), properties=props, duration=12.5, **kw)


def host_check(check: str, host: str, outcome: str = "passed", module: str = "test_http.py",
               param: str = "", **kw: object) -> ItemResult:
    """A bundled host check as the hosts area records it: ``hosts::<module>::<check>[<the
    check's own parameter>-<testinfra host id>]``."""
    ident = f"{param}-ssh://{host}" if param else f"ssh://{host}"
    props = (("host", host), *kw.pop("properties", ()))  # type: ignore[misc]
    return item(f"hosts::{module}::{check}[{ident}]", "hosts", f"hosts.{module[:-3]}",
                f"{check}[{ident}]", outcome, markers=("host",), host=host,
                properties=props, duration=0.25, **kw)


def sample_items() -> tuple[ItemResult, ...]:
    noisy = ("error: builder for '/nix/store/aaaa-desktop.drv' failed\n\x1b[31mred\x1b[0m "
             "bell\x07 nul\x00 cdata ]]> end\n" + "x" * 40_000 + "\nlast line of the log")
    return (
        closure("sandbox"),
        closure("hypervisor", cache="substituted"),
        closure("desktop", "failed", cache="built", message="nix build failed: exit status 1",
                type="NixBuildFailed", details=noisy),
        item("loops::fmt", "loops", "loops", "fmt", markers=("loop",),
             properties=(("command", "cargo fmt --check"),), duration=0.00001),
        item("rust::sandbox::desktop_api_test::test_health", "rust", "sandbox.desktop_api_test",
             "test_health", markers=("rust",), duration=1e-7,
             properties=(("classname", "sandbox.desktop_api_test"), ("features", ""))),
        host_check("test_sandbox_health", "grind"),
        host_check("test_sandbox_health", "prod", "error", message="ssh exit 255",
                   type="HostUnreachable", details="ssh: connect to host prod port 22"),
        item("release::prompt_smoke", "release", "release", "prompt_smoke",
             properties=(("prompt_url", "http://127.0.0.1:8080"), ("run_id", "run-000001"),
                         ("status", "completed"))),
        item("tests/test_py.py::test_skipped", "python", "tests.test_py", "test_skipped",
             "skipped", message="Skipped: no docker", type="skipped"),
        item("tests/test_py.py::test_xfail", "python", "tests.test_py", "test_xfail", "xfailed",
             message="assert 0"),
        item("tests/test_py.py::test_missing", "python", "tests.test_py", "test_missing",
             "missing", message="collected but never reported", type="missing"),
        item("tests/test_py.py::test_deselected", "python", "tests.test_py",
             "test_deselected", "deselected", message="deselected"),
    )


def run(shard: str = "", status: str = "complete", items: tuple[ItemResult, ...] | None = None,
        expected: tuple[str, ...] = (), started: str = "2026-02-22T16:25:00Z",
        finished: str | None = "2026-02-22T16:40:00Z", reason: str = "",
        commit: str = COMMIT, dirtied: tuple[str, ...] = (), promoted: str | None = None,
        domain: str | None = "os.choir.chat") -> ShardRun:
    return ShardRun(
        shard=shard, status=status, reason=reason, started=started, finished=finished,
        exit_status=1 if status == "complete" else 2, expected_shards=expected,
        provenance=Provenance(commit=commit, branch="main", domain=domain,
                              promoted_sha=promoted, nix_version="2.18.1",
                              choirci_version="0.1.0", python_version="3.11.7",
                              pytest_version="9.0.0", machine="grind", root="/opt/choiros",
                              argv=("--grind",)),
        tree=TreeState(before=(), after=dirtied),
        items=sample_items() if items is None else items,
    )


def sample_record() -> RunRecord:
    return RunRecord(runs=(run(),))
