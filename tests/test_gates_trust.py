"""No false PASS: lookalike tests, stale or forged verdicts, dirty trees, custom gate dirs,
gate ids as paths, and the faithful phase mappings (one test per case of issue 21)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from evidence_sample import COMMIT, closure, host_check, item, run
from hypothesis import event, given, settings
from hypothesis import strategies as st

from choirci.cli import main
from choirci.errors import ConfigError
from choirci.evidence import files as evidence
from choirci.evidence.record import ItemResult, RunRecord
from choirci.evidence.redact import Redactor
from choirci.gates import bundled, verdicts
from choirci.gates import definitions as gates
from choirci.release.record import release_record

OTHER = "0123456789abcdef0123456789abcdef01234567"
PHASE1_FILES = {"manual/phase-1/container-lifecycle.txt", "manual/phase-1/websocket-e2e.txt",
                "manual/phase-1/podman-ps.txt", "manual/phase-1/hypervisor-logs.txt",
                "manual/phase-1/rollback-direct-process.md"}
BUNDLED = gates.load_all()


@pytest.fixture(autouse=True)
def _no_workspace_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CHOIRCI_CONFIG", raising=False)


def phase1_items(auth: str = "passed") -> tuple[ItemResult, ...]:
    return (host_check("test_hypervisor_auth_gate", "grind", auth, param="/api/x"),
            host_check("test_hypervisor_public_path", "grind", param="/login"),
            item("release::prompt_smoke", "release", "release", "prompt_smoke"))


def write_run(directory: Path, record: RunRecord, commit: str = COMMIT,
              files: set[str] = PHASE1_FILES) -> Path:
    evidence.write_all(record, directory, Redactor())
    for name in files:
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_text(f"commit: {commit}\ntranscript of what was done\n")
    return directory


def phase1_run(commit: str = COMMIT, auth: str = "passed", **kw: object) -> RunRecord:
    return RunRecord(runs=(run(items=phase1_items(auth), commit=commit, **kw),))  # type: ignore[arg-type]


# ---------------------------------------------------------------- 1. lookalike tests


CHECK_NAMES = sorted({f for fs in bundled.checks().values() for f in fs})
HOSTISH = ["hypervisor", "sandbox-live", "grind", "prod", "hypervisor-1", "live", "dev"]


def lookalike(name: str, host: str, where: str, param: str) -> ItemResult:
    """A workspace test that copies a bundled check's name, marker and host property."""
    nodeid = {
        "tests": f"tests/test_http.py::{name}[{param}-ssh://{host}]",
        "checks": f"checks/test_units.py::{name}[{param}]",
        "root": f"test_{host}.py::{name}[{host}]",
    }[where]
    return item(nodeid, "hosts", "tests.test_http", name, markers=("host",), host=host,
                properties=(("host", host), ("nixos_system", "true"), ("cache", "substituted"),
                            ("workspace_head", COMMIT)))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(CHECK_NAMES), st.sampled_from(HOSTISH),
                          st.sampled_from(["tests", "checks", "root"]),
                          st.sampled_from(["hypervisor", "live", "dev", "os.choir.chat", "x"])),
                min_size=1, max_size=12))
def test_lookalike_user_tests_satisfy_no_result_selector(
    fakes: list[tuple[str, str, str, str]]
) -> None:
    record = RunRecord(runs=(run(items=tuple(lookalike(*f) for f in fakes),
                                 domain="os.choir.chat"),))
    release = release_record(record)
    for gate in BUNDLED:
        for gate_item in gate.items:
            for selector in gate_item.require:
                if selector.match:
                    problems, matched = verdicts.check(selector, record, release)
                    assert matched == [] and problems, (gate.id, selector)
        assert verdicts.evaluate(gate, record).verdict == "fail"


def test_a_host_named_like_a_unit_does_not_satisfy_the_unit_item() -> None:
    """phase-3's hypervisor unit: a sandbox unit on a host NAMED hypervisor is not it."""
    items = (host_check("test_unit_active", "hypervisor", module="test_units.py",
                        param="container@sandbox-live"),
             host_check("test_unit_enabled", "hypervisor", module="test_units.py",
                        param="container@sandbox-live"))
    gate = gates.load("phase-3")
    record = RunRecord(runs=(run(items=items),))
    verdict = verdicts.evaluate(gate, record)
    hyper = next(v for v in verdict.items if v.item.text.startswith("Hypervisor service"))
    assert not hyper.met
    real = (host_check("test_unit_active", "grind", module="test_units.py", param="hypervisor"),
            host_check("test_unit_enabled", "grind", module="test_units.py", param="hypervisor"))
    verdict = verdicts.evaluate(gate, RunRecord(runs=(run(items=real),)))
    assert next(v for v in verdict.items if v.item.text.startswith("Hypervisor service")).met


@pytest.mark.parametrize("value", ["test_sandbox_health", "test_*", "*hypervisor*",
                                   "test_http.py::test_*", "test_http.py::test_nope",
                                   "test_nope.py::test_sandbox_health"])
def test_check_selectors_name_a_bundled_module_and_function(tmp_path: Path, value: str) -> None:
    body = ("id: phase-9\ntitle: t\nsections:\n  - title: Gate\n    items:\n"
            f"      - text: x\n        require:\n          - check: '{value}'\n")
    (tmp_path / "phase-9.yaml").write_text(body)
    with pytest.raises(ConfigError, match=r"phase-9.yaml:8: .*check: "):
        gates.load("phase-9", tmp_path)


def test_user_tests_count_only_where_the_gate_says_so(tmp_path: Path) -> None:
    body = ("id: phase-9\ntitle: t\nuser_tests: true\nsections:\n  - title: Gate\n    items:\n"
            "      - text: x\n        require:\n          - node: 'tests/test_api.py::*'\n")
    (tmp_path / "phase-9.yaml").write_text(body)
    gate = gates.load("phase-9", tmp_path)
    record = RunRecord(runs=(run(items=(item("tests/test_api.py::test_a", "python", "t", "a"),)),))
    assert verdicts.evaluate(gate, record).verdict == "pass"
    strict = gates.load("phase-9", _write(tmp_path / "strict", body.replace(
        "user_tests: true\n", "")))
    assert verdicts.evaluate(strict, record).verdict == "fail"


def _write(directory: Path, body: str, name: str = "phase-9") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}.yaml").write_text(body)
    return directory


# ---------------------------------------------------------------- 2. stale verdicts


def test_a_stale_phase_1_pass_does_not_unlock_phase_2_for_a_new_commit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = write_run(tmp_path / "ev", phase1_run(OTHER), commit=OTHER)
    assert main(["gate", "phase-1", "--evidence", str(directory)]) == 0
    # A new run at COMMIT breaks the auth gate; it writes into the same dir.
    write_run(directory, phase1_run(COMMIT, auth="failed"))
    capsys.readouterr()
    assert main(["gate", "phase-2", "--evidence", str(directory)]) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1
    assert f"phase-2 comes after phase-1, which does not pass for commit {COMMIT}" in captured.err
    assert not (directory / "gates" / "phase-2.json").exists()
    # The old verdict judged another record: moved aside, not left to be read as current.
    assert "phase-1.json judged an earlier record; moved to" in captured.out
    assert not (directory / "gates" / "phase-1.json").exists()
    stale = json.loads((directory / "gates" / "stale" / "phase-1.json").read_text())
    assert (stale["verdict"], stale["commit"]) == ("pass", OTHER)


@pytest.mark.parametrize("forged", [
    {"gate": "phase-1", "verdict": "pass"},
    {"gate": "phase-1", "verdict": "pass", "commit": COMMIT, "record_sha256": "x"},
])
def test_a_hand_written_verdict_file_counts_for_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], forged: dict[str, str]
) -> None:
    directory = write_run(tmp_path / "ev", phase1_run(auth="failed"))
    (directory / "gates").mkdir(exist_ok=True)
    (directory / "gates" / "phase-1.json").write_text(json.dumps(forged))
    assert main(["gate", "phase-2", "--evidence", str(directory)]) == 2
    assert "does not pass for commit" in capsys.readouterr().err
    history = tmp_path / "history"
    (history / "gates").mkdir(parents=True)
    (history / "gates" / "phase-1.json").write_text(json.dumps(forged))
    assert main(["gate", "phase-2", "--evidence", str(directory), "--history", str(history)]) == 2
    assert "no run record here" in capsys.readouterr().err


def test_history_counts_only_for_the_same_commit(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    directory = write_run(tmp_path / "ev", RunRecord(runs=(run(items=(closure("sandbox"),)),)))
    other = write_run(tmp_path / "other", phase1_run(OTHER), commit=OTHER)
    argv = ["gate", "phase-2", "--evidence", str(directory)]
    assert main([*argv, "--history", str(other)]) == 2
    assert f"{other}: commit {OTHER}" in capsys.readouterr().err
    same = write_run(tmp_path / "same", phase1_run(COMMIT))
    assert main([*argv, "--history", str(same)]) == 1  # judged: phase-2 itself is unmet
    data = json.loads((directory / "gates" / "phase-2.json").read_text())
    assert data["order"][0]["gate"] == "phase-1" and data["order"][0]["evidence"] == str(same)
    assert data["order"][0]["record_sha256"] == evidence.record_digest(same)


# ---------------------------------------------------------------- 3. dirty trees


@pytest.mark.parametrize("gate_id", ["phase-1", "definition-of-done"])
@pytest.mark.parametrize(("before", "after", "why"), [
    ((" M src/main.rs",), (" M src/main.rs",), "started from a dirty tree"),
    ((), ("?? out.txt",), "dirtied the git tree: ?? out.txt"),
    (None, None, "git tree state unknown"),
])
def test_a_dirty_tree_fails_every_gate(gate_id: str, before: tuple[str, ...] | None,
                                       after: tuple[str, ...] | None, why: str) -> None:
    from dataclasses import replace

    from choirci.evidence.record import TreeState
    shard = replace(run(items=phase1_items()), tree=TreeState(before=before, after=after))
    verdict = verdicts.evaluate(gates.load(gate_id), RunRecord(runs=(shard,)), PHASE1_FILES)
    assert verdict.verdict == "fail"
    assert any(r.startswith("git tree: ") and why in r for r in verdict.reasons)


def test_a_gate_may_allow_a_dirty_tree_visibly(tmp_path: Path) -> None:
    body = ("id: phase-9\ntitle: t\ndirty_tree: allowed\nsections:\n  - title: Gate\n"
            "    items:\n      - text: x\n        require:\n          - closure: sandbox\n")
    directory = write_run(tmp_path / "ev", RunRecord(runs=(run(items=(closure("sandbox"),),
                                                               dirtied=("?? x",)),)), files=set())
    gates_dir = _write(tmp_path / "gates", body)
    assert main(["gate", "phase-9", "--evidence", str(directory), "--gates", str(gates_dir)]) == 0
    assert "**This gate allows a dirty git tree**" in (directory / "gates" / "phase-9.md").read_text()
    data = json.loads((directory / "gates" / "phase-9.json").read_text())
    assert (data["tree"], data["dirty_tree"], data["gates"]) == ("dirty", "allowed", "custom")


# ---------------------------------------------------------------- 6. custom gate dirs


def test_a_custom_gate_on_files_alone_is_refused(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    body = ("id: phase-1\ntitle: mine\nsections:\n  - title: Gate\n    items:\n"
            "      - text: x\n        manual: choirci.json\n")
    directory = write_run(tmp_path / "ev", phase1_run())
    custom = _write(tmp_path / "mine", body, "phase-1")
    assert main(["gate", "phase-1", "--evidence", str(directory), "--gates", str(custom)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no required item reads the run's own results" in err


def test_a_custom_pass_never_unlocks_a_bundled_gate(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    body = ("id: phase-1\ntitle: mine\nsections:\n  - title: Gate\n    items:\n"
            "      - text: x\n        require:\n          - closure: sandbox\n")
    directory = write_run(tmp_path / "ev", RunRecord(runs=(run(items=(closure("sandbox"),)),)))
    custom = _write(tmp_path / "mine", body, "phase-1")
    assert main(["gate", "phase-1", "--evidence", str(directory), "--gates", str(custom)]) == 0
    out = capsys.readouterr().out
    assert "custom gates " + gates.digest_dir(custom)[:12] in out
    data = json.loads((directory / "gates" / "phase-1.json").read_text())
    assert (data["gates"], data["gates_sha256"]) == ("custom", gates.digest_dir(custom))
    assert "**custom gates**" in (directory / "gates" / "phase-1.md").read_text()
    assert main(["gate", "phase-2", "--evidence", str(directory)]) == 2  # bundled phase-1 fails
    assert "phase-2 comes after phase-1, which does not pass" in capsys.readouterr().err


# ---------------------------------------------------------------- 7. ids are names


@pytest.mark.parametrize("gate_id", ["../../evil", "/some/where/evil", "phase-1/../x", "a b",
                                     "Phase-1", ""])
def test_gate_ids_are_names_never_paths(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                        gate_id: str) -> None:
    (tmp_path / "evil.yaml").write_text("id: evil\n")
    directory = write_run(tmp_path / "a" / "b" / "ev", phase1_run())
    assert main(["gate", gate_id, "--evidence", str(directory)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not a gate name" in err
    assert sorted(p.name for p in tmp_path.rglob("*.md") if "gates" in p.parts) == []


@pytest.mark.parametrize("after", ["../phase-1", "/etc/x", "phase-9"])
def test_after_is_a_name(tmp_path: Path, after: str) -> None:
    body = (f"id: phase-9\ntitle: t\nafter: '{after}'\nsections:\n  - title: Gate\n    items:\n"
            "      - text: x\n        require:\n          - closure: sandbox\n")
    with pytest.raises(ConfigError, match=r"phase-9.yaml:3: after: "):
        gates.load("phase-9", _write(tmp_path, body))


# ---------------------------------------------------------------- 4 and 7. release


SHA = COMMIT
SMOKE = item("release::prompt_smoke", "release", "release", "prompt_smoke",
             properties=(("run_id", "run-000001"), ("status", "completed")))
DOMAIN = host_check("test_domain_login", "prod", param="os.choir.chat")
RELEASE = gates.load("release")


SERVICES = "hypervisor.service=/nix/store/" + "h" * 32 + "-hypervisor-0.1.0"


def system_report(host: str, services: str = SERVICES) -> ItemResult:
    """test_system.py::test_current_system as a node records it (issue 15)."""
    return host_check("test_current_system", host, module="test_system.py", properties=(
        ("current_system", f"/nix/store/{'s' * 32}-nixos-system-{host}"), ("system_services", services)))


# The staging run of the same commit: what production must run (release's staging: verified).
STAGING = RunRecord(runs=(run(items=(system_report("staging"),)),))


def release_reasons(items: tuple[ItemResult, ...], promoted: str | None = SHA) -> str:
    record = RunRecord(runs=(run(items=(*items, system_report("prod")), promoted=promoted),))
    verdict = verdicts.evaluate(RELEASE, record, baselines=[STAGING])
    unmet = [r for v in verdict.items if not v.met for r in v.reasons]
    return " | ".join(unmet)


def test_release_facts_pass_only_with_a_passing_run_and_real_domain_requests() -> None:
    assert release_reasons((SMOKE, DOMAIN)) == ""
    failing = release_reasons((SMOKE, DOMAIN, closure("sandbox", "failed"),
                               item("loops::fmt", "loops", "loops", "fmt", "failed")))
    assert "run verdict is fail: closures::sandbox: failed; loops::fmt: failed" in failing


@pytest.mark.parametrize(("promoted", "why"), [
    ("3", "promoted SHA '3' is not a full 40-hex commit id"),
    (SHA[:12], "is not a full 40-hex commit id"),
    (SHA.upper(), "is not a full 40-hex commit id"),
    (OTHER, f"promoted SHA {OTHER} is not the grind commit {SHA}"),
    (None, "no promoted SHA recorded"),
])
def test_the_promoted_sha_is_the_full_grind_commit(promoted: str | None, why: str) -> None:
    assert why in release_reasons((SMOKE, DOMAIN), promoted)


def test_the_promoted_sha_equals_what_the_host_reports() -> None:
    head = host_check("test_workspace_clean", "prod", module="test_state.py",
                      param="/opt/choiros/workspace", properties=(("workspace_head", OTHER),))
    assert f"host prod reports workspace HEAD {OTHER}" in release_reasons((SMOKE, DOMAIN, head))


@pytest.mark.parametrize(("items", "why"), [
    ((SMOKE,), "no request to os.choir.chat was made"),
    ((SMOKE, host_check("test_domain_login", "prod", param="other.example")),
     "no request to os.choir.chat was made"),
    ((SMOKE, host_check("test_domain_login", "prod", "failed", param="os.choir.chat")),
     "os.choir.chat was not tested successfully"),
    ((SMOKE, lookalike("test_domain_login", "prod", "tests", "os.choir.chat")),
     "no request to os.choir.chat was made"),
])
def test_domain_tested_needs_a_passing_request_to_that_domain(
    items: tuple[ItemResult, ...], why: str
) -> None:
    assert why in release_reasons(items)


def test_the_release_gate_needs_every_phase_for_the_same_commit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = write_run(tmp_path / "ev", RunRecord(runs=(run(items=(SMOKE, DOMAIN),
                                                               promoted=SHA),)))
    assert RELEASE.after == "phase-5"
    assert main(["gate", "release", "--evidence", str(directory)]) == 2
    assert "release comes after phase-5" in capsys.readouterr().err


# ---------------------------------------------------------------- 5. faithful mappings


def met(gate_id: str, text: str, items: tuple[ItemResult, ...]) -> verdicts.ItemVerdict:
    verdict = verdicts.evaluate(gates.load(gate_id), RunRecord(runs=(run(items=items),)))
    return next(v for v in verdict.items if v.item.text.startswith(text))


def timed(name: str, cache: str, wall: str, drv: str = "") -> ItemResult:
    from dataclasses import replace
    base = closure(name, cache=cache)
    props = tuple((k, wall if k == "wall_time" else drv if k == "drv_path" and drv else v)
                  for k, v in base.properties)
    return replace(base, properties=props)


NAMES = ("sandbox", "desktop", "hypervisor")


def repeat_line(repeat: tuple[ItemResult, ...],
                *baselines: tuple[ItemResult, ...]) -> verdicts.ItemVerdict:
    verdict = verdicts.evaluate(gates.load("phase-2"), RunRecord(runs=(run(items=repeat),)),
                                baselines=[RunRecord(runs=(run(items=b),)) for b in baselines])
    return next(v for v in verdict.items if v.item.text.startswith("Repeat build"))


@pytest.mark.parametrize("cache", ["present", "built"])
def test_phase_2_present_or_built_is_no_cache_hit(cache: str) -> None:
    cold = tuple(timed(n, "built", "60.0") for n in NAMES)
    found = repeat_line(tuple(timed(n, cache, "0.5") for n in NAMES), cold)
    assert not found.met
    assert f"closures::sandbox: cache={cache}, a cache hit is 'substituted'" in found.reasons[0]


def test_phase_2_needs_a_baseline_that_built_the_same_derivations_slower() -> None:
    repeat = tuple(timed(n, "substituted", "4.0") for n in NAMES)
    assert "no baseline run built the same 3 derivation(s) cold" in repeat_line(repeat).reasons[0]
    other = tuple(timed(n, "built", "60.0", drv=f"/nix/store/cccc-{n}.drv") for n in NAMES)
    assert "no baseline run built the same" in repeat_line(repeat, other).reasons[0]
    warm = tuple(timed(n, "substituted", "60.0") for n in NAMES)
    assert "no baseline run built the same" in repeat_line(repeat, warm).reasons[0]
    faster = tuple(timed(n, "built", "3.0") for n in NAMES)
    assert "the repeat took 4.0s, not less than the baseline's 3.0s" in \
        repeat_line(repeat, faster).reasons[0]
    cold = tuple(timed(n, "built", "60.0") for n in NAMES)
    found = repeat_line(repeat, faster, cold)
    assert found.met
    assert found.checked_by[-1].endswith("built them in 60.0s, the repeat took 4.0s")


def nixos(name: str, shape: str) -> ItemResult:
    base = closure(name)
    from dataclasses import replace
    return replace(base, properties=(*base.properties, ("nixos_system", shape)))


def test_phase_3_needs_a_closure_that_is_a_nixos_system() -> None:
    named = met("phase-3", "NixOS system closure builds", (nixos("toplevel", "false"),))
    assert not named.met and "where nixos_system in true" in named.reasons[0]
    assert not met("phase-3", "NixOS system closure builds", (closure("toplevel"),)).met
    real = met("phase-3", "NixOS system closure builds", (nixos("grind-system", "true"),))
    assert real.met and real.checked_by == ("closures::grind-system",)


def test_phase_4_convergence_stays_unmet_until_a_check_reads_current_system() -> None:
    items = (nixos("grind-system", "true"),
             host_check("test_unit_active", "prod", module="test_units.py", param="hypervisor"))
    found = met("phase-4", "EC2 host converges", items)
    assert not found.met and "/run/current-system" in found.reasons[0]


def test_dod_sandboxes_must_be_reached_through_the_hypervisor() -> None:
    items = (host_check("test_sandbox_health", "grind", param="live"),
             host_check("test_sandbox_health", "grind", param="dev"),
             host_check("test_sandbox_processes_running", "grind", module="test_env.py"))
    found = met("definition-of-done", "One user can run", items)
    assert not found.met and "through the hypervisor" in found.reasons[0]
    assert found.checked_by  # the direct checks still show what was checked


# ---------------------------------------------------------------- a real run


LOOKALIKES = """
import pytest

pytestmark = pytest.mark.host

@pytest.mark.parametrize("target", ["hypervisor"])
def test_hypervisor_auth_gate(target, record_property):
    record_property("host", target)

@pytest.mark.parametrize("target", ["hypervisor"])
def test_hypervisor_public_path(target, record_property):
    record_property("host", target)

@pytest.mark.parametrize("unit", ["hypervisor"])
def test_unit_active(unit):
    pass
"""


def test_lookalike_tests_in_a_real_run_satisfy_nothing(
    pytester: pytest.Pytester, capsys: pytest.CaptureFixture[str]
) -> None:
    """`pytest --grind --python-tests` with workspace tests named like the bundled host checks
    (in a git checkout, clean), then `choirci gate phase-1` as a user runs it."""
    pytester.makefile(".yaml", choirci="release:\n  domain: os.choir.chat\n")
    pytester.makepyfile(test_http=LOOKALIKES)
    ignored = "evidence/\n__pycache__/\nrunpytest-current\nstdout\nstderr\n"  # pytester's own
    pytester.makefile("", **{".gitignore": ignored})
    git = ["git", "-c", "user.email=t@t", "-c", "user.name=t"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "w"]):
        subprocess.run([*git, *args], cwd=pytester.path, check=True)
    result = pytester.runpytest_subprocess("--grind", "--python-tests", "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["choirci: verdict PASS*"])  # the run itself passed
    directory = pytester.path / "evidence"
    manual_dir = directory / "manual" / "phase-1"
    commit = evidence.load(directory).runs[0].provenance.commit
    for name in PHASE1_FILES:
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_text(f"commit: {commit}\nwhat a person saw\n")
    assert manual_dir.is_dir()
    capsys.readouterr()
    assert main(["gate", "phase-1", "--evidence", str(directory)]) == 1
    out = capsys.readouterr().out
    assert ("no result matched check=test_http.py::test_hypervisor_auth_gate among choirci's "
            "own items") in out
    data = json.loads((directory / "gates" / "phase-1.json").read_text())
    assert (data["commit"], data["tree"]) == (commit, "clean")
    auth = next(i for i in data["items"] if i["text"].startswith("Auth + proxy"))
    assert auth["met"] is False and auth["checked_by"] == []


# ---------------------------------------------------------------- the invariant


OWN_POOL = (*phase1_items(), SMOKE, DOMAIN, closure("sandbox"), closure("grind-system"),
            host_check("test_sandbox_health", "grind", param="live"),
            host_check("test_sandbox_health", "grind", param="dev"),
            host_check("test_sandbox_processes_running", "grind", module="test_env.py"))
OUTCOME = st.sampled_from(["passed"] * 6 + ["failed", "error", "skipped", "deselected"])
MOSTLY = st.sampled_from([True, True, True, True, False])


@st.composite
def forged_runs(draw: st.DrawFn) -> tuple[RunRecord, dict[str, verdicts.Attestation]]:
    from dataclasses import replace

    from choirci.evidence.record import TreeState
    own = [replace(i, outcome=draw(OUTCOME)) for i in OWN_POOL if draw(MOSTLY)]
    fakes = [lookalike(name, host, "tests", param) for name, host, param in draw(st.lists(
        st.tuples(st.sampled_from(CHECK_NAMES), st.sampled_from(HOSTISH),
                  st.sampled_from(["hypervisor", "live", "dev", "os.choir.chat"])), max_size=4))]
    tree = draw(st.sampled_from([TreeState((), ())] * 3 + [TreeState((), ("?? x",)), TreeState()]))
    shard = replace(run(items=tuple(own + fakes), promoted=draw(st.sampled_from([SHA, None]))),
                    tree=tree)
    names = sorted({n for g in BUNDLED for i in g.items for n in i.manual})
    manual = {n: verdicts.Attestation(n, draw(st.sampled_from(["", "", "", "is a placeholder"])))
              for n in names if draw(MOSTLY)}
    return RunRecord(runs=(shard,)), manual


@settings(max_examples=300, deadline=None)
@given(forged_runs())
def test_a_pass_is_backed_only_by_own_passing_results_and_attested_files(
    forged: tuple[RunRecord, dict[str, verdicts.Attestation]]
) -> None:
    record, manual = forged
    by_id = {i.nodeid: i for i in record.items}
    for gate in BUNDLED:
        verdict = verdicts.evaluate(gate, record, manual)
        if verdict.verdict != "pass":
            assert verdict.reasons
            continue
        event(f"{gate.id} passed")
        assert verdicts.tree_state(record) == "clean"
        for found in verdict.items:
            assert found.met or not found.item.required
            assert all(by_id[n].outcome == "passed" and not n.startswith("tests/")
                       for n in found.checked_by)
            assert all(not manual[n].problem for n in found.item.manual if found.met)


def test_the_run_report_never_shows_a_pass_out_of_phase_order(tmp_path: Path) -> None:
    """release's own items all met on a run where phase-5 fails: the report says fail."""
    record = RunRecord(runs=(run(items=(SMOKE, DOMAIN, system_report("prod")), promoted=SHA),))
    assert verdicts.evaluate(RELEASE, record, baselines=[STAGING]).verdict == "pass"  # its own items only
    evidence.write_all(record, tmp_path / "ev", Redactor())
    report = (tmp_path / "ev" / "report.md").read_text()
    assert "| release | fail |" in report and "| release | pass |" not in report
    found, _ = evidence.gate_verdicts(record, tmp_path / "ev", None)
    release = next(v for v in found if v.gate.id == "release")
    assert "comes after phase-5, which is fail for this run" in release.reasons


def test_an_interrupted_run_is_incomplete_not_refused(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    directory = write_run(tmp_path / "ev", RunRecord(runs=(run(items=(closure("sandbox"),),
                                                               status="incomplete"),)))
    assert main(["gate", "phase-2", "--evidence", str(directory)]) == 3
    assert capsys.readouterr().out.startswith("choirci: gate phase-2: INCOMPLETE")


def test_a_run_starting_in_the_dir_can_archive_every_old_verdict(tmp_path: Path) -> None:
    """What the recorder calls at session start (and `choirci gate` for other records)."""
    folder = tmp_path / "gates"
    folder.mkdir()
    for name, body in (("phase-1.json", '{"record_sha256": "a"}'), ("phase-1.md", "# old"),
                       ("orphan.md", "# no json"), ("phase-2.json", "not json")):
        (folder / name).write_text(body)
    kept = evidence.archive_stale_gates(tmp_path, "a")
    assert sorted(p.name for p in kept) == ["orphan.md", "phase-2.json"]
    assert sorted(p.name for p in folder.iterdir()) == ["phase-1.json", "phase-1.md", "stale"]
    assert len(evidence.archive_stale_gates(tmp_path)) == 2
    assert sorted(p.name for p in (folder / "stale").iterdir()) == [
        "orphan.md", "phase-1.json", "phase-1.md", "phase-2.json"]


def current_system(path: str, host: str = "prod") -> ItemResult:
    """A bundled host check that reported /run/current-system (none records it yet)."""
    return host_check("test_nixos_rollback_generation", host, module="test_deploy.py",
                      properties=(("current_system", path),))


def test_phase_4_converged_when_the_host_runs_the_built_toplevel() -> None:
    built = nixos("grind-system", "true")
    toplevel = built.prop("out_path") or ""
    found = met("phase-4", "EC2 host converges", (built, current_system(toplevel)))
    assert found.met and "closures::grind-system" in found.checked_by
    other = met("phase-4", "EC2 host converges", (built, current_system("/nix/store/x-old")))
    assert not other.met and "host prod runs /nix/store/x-old, not a toplevel" in other.reasons[0]
    nothing_built = met("phase-4", "EC2 host converges", (current_system(toplevel),))
    assert "no NixOS system toplevel was built" in nothing_built.reasons[0]
    fake = item("tests/test_x.py::test_converged", "hosts", "t", "c", markers=("host",),
                properties=(("current_system", toplevel),))
    assert not met("phase-4", "EC2 host converges", (built, fake)).met


def test_the_promoted_sha_equals_the_release_a_manifest_check_reports() -> None:
    link = host_check("test_manifest_link", "prod", module="test_release.py", param="sandbox",
                      properties=(("release_sha", OTHER),))
    assert f"host prod reports release {OTHER}" in release_reasons((SMOKE, DOMAIN, link))
    same = host_check("test_manifest_link", "prod", module="test_release.py", param="sandbox",
                      properties=(("release_sha", SHA),))
    assert release_reasons((SMOKE, DOMAIN, same)) == ""
