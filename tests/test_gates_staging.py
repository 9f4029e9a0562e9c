"""Staging before production (issue 15 item 5): the release record carries per host the system
and service store paths it runs, and ``staging: verified`` (in the bundled release gate) needs
every production host to run exactly what a passing staging run of the same commit verified.

Unit level on records here; end to end against the nspawn node in
``test_staged_release_end_to_end`` (two runs against the one booted host under two role names,
``staging`` then ``production``, and ``choirci gate`` with ``--history`` the staging evidence).
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from evidence_sample import COMMIT, host_check, run
from hostenv import node
from hostenv.build import Binaries, next_build
from hostenv.nspawn import NspawnHost

from choirci.cli import main
from choirci.errors import ConfigError
from choirci.evidence.record import ItemResult, RunRecord
from choirci.gates import definitions as gates
from choirci.gates import verdicts
from choirci.hosts.connect import SshReuse, resolve_targets
from choirci.release.record import release_record

OTHER = "f" * 40
HV = "/nix/store/" + "h" * 32 + "-hypervisor-0.1.0"
HV2 = "/nix/store/" + "j" * 32 + "-hypervisor-0.1.0"
SBX = "/nix/store/" + "k" * 32 + "-sandbox-0.1.0"
STAGED = gates.Selector(staging="verified")


def system(host: str, services: dict[str, str], outcome: str = "passed") -> ItemResult:
    words = " ".join(f"{u}={p}" for u, p in services.items())
    return host_check("test_current_system", host, outcome, module="test_system.py", properties=(
        ("current_system", f"/nix/store/{'s' * 32}-nixos-system-{host}"), ("system_services", words)))


def record(*items: ItemResult, commit: str = COMMIT) -> RunRecord:
    return RunRecord(runs=(run(items=items, commit=commit),))


def problems(prod: RunRecord, *staging: RunRecord) -> list[str]:
    return verdicts.check(STAGED, prod, release_record(prod), baselines=staging)[0]


SERVICES = {"hypervisor.service": HV, "socat-sandbox@.service": SBX}


def test_production_runs_what_staging_verified() -> None:
    prod = record(system("production", SERVICES))
    found, matched = verdicts.check(STAGED, prod, release_record(prod),
                                    baselines=[record(system("staging", dict(reversed(SERVICES.items()))))])
    assert found == [] and matched == [prod.items[0].nodeid]
    assert release_record(prod).to_json()["hosts"]["production"]["services"] == SERVICES


@pytest.mark.parametrize(("prod", "staging", "why"), [
    (record(system("production", {**SERVICES, "hypervisor.service": HV2})), [record(system("staging", SERVICES))],
     f"host production does not run what staging (staging) verified: hypervisor.service: {HV2} (staging {HV})"),
    (record(system("production", SERVICES)), [], "no staging evidence: pass --history STAGING_DIR"),
    (record(system("production", SERVICES)), [record(system("staging", SERVICES), commit=OTHER)],
     f"no staging evidence: pass --history STAGING_DIR, the evidence of a run of commit {COMMIT}"),
    # the production evidence given as its own staging evidence does not count
    (record(system("production", SERVICES)), [record(system("production", SERVICES))], "no staging evidence"),
    (record(system("production", SERVICES)), [record(system("staging", SERVICES, "failed"))],
     ("the staging evidence verified nothing: no passing staging run recorded service store paths "
     "(staging: run verdict fail)")),
    (record(system("production", SERVICES, "failed")), [record(system("staging", SERVICES))],
     "hosts::test_system.py::test_current_system[ssh://production] failed"),
    (record(system("production", {})), [record(system("staging", SERVICES))],
     "host production reported no service store paths"),
    (record(), [record(system("staging", SERVICES))], "no host of this run reported the system it runs"),
    # a lookalike workspace test recording the same properties is not the bundled check
    (record(system("production", SERVICES)),
     [record(ItemResult(nodeid="tests/test_x.py::test_current_system", area="hosts", classname="t",
                        name="x", outcome="passed", host="staging",
                        properties=(("current_system", "/nix/store/x"),
                                    ("system_services", f"hypervisor.service={HV}"))))],
     "no staging evidence"),
])
def test_not_what_staging_verified(prod: RunRecord, staging: list[RunRecord], why: str) -> None:
    found = problems(prod, *staging)
    assert found and why in found[0], found


def test_the_bundled_release_gate_needs_staging() -> None:
    release = gates.load("release")
    item = next(i for i in release.items if i.text.startswith("Production runs exactly"))
    assert item.required and item.require == (STAGED,)
    with pytest.raises(ConfigError, match=r"x.yaml:9: .*staging: expected 'verified', got"):
        _load_custom("staging: yes")


def _load_custom(selector: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "x.yaml").write_text("id: x\ntitle: x\noutcome: x\nsections:\n  - title: G\n    items:\n"
                                          f"      - text: t\n        require:\n          - {selector}\n")
        gates.load("x", Path(tmp))


def test_hosts_selects_a_configured_role_by_name(tmp_path: Path) -> None:
    reuse = SshReuse(tmp_path)
    both = {"staging": "ssh://node.invalid", "production": "ssh://node.invalid"}
    targets = resolve_targets("production", both, reuse)
    assert [(t.name, t.origin) for t in targets] == [("production", "hosts.production")]
    assert targets[0].spec.startswith("ssh://node.invalid?")


def test_role_names_without_grind_never_mean_this_machine(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", choirci="hosts: {staging: 'ssh://b.invalid', production: 'ssh://a.invalid'}\n"
                      "host_checks: {preset: node}\n")
    result = pytester.runpytest_subprocess("--grind", "-p", "no:cacheprovider")
    assert result.ret == 4
    result.stderr.fnmatch_lines([("ERROR: choirci: hosts: production, staging configured but no hosts.grind, "
                                 "so which host to check is ambiguous; pick with --hosts NAME (e.g. --hosts "
                                 "production)")])
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


# --------------------------------------------------------------------------- end to end

PROMOTE = """\
id: promote
title: "Promote: production after staging"
outcome: "Production runs what staging verified."
sections:
  - title: Gate
    items:
      - text: "Production runs exactly what was verified on staging."
        require:
          - staging: verified
      - text: "The production run passed."
        require:
          - run: pass
"""


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", *args], cwd=root, check=True,
                   capture_output=True)


@pytest.mark.slow
def test_staged_release_end_to_end(pytester: pytest.Pytester, nspawn_host: NspawnHost,
                                   choiros_binaries: Binaries, broken: Any, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    """One booted node checked twice under two role names (staging, then production) from one
    committed config; the promote gate judges the production evidence with the staging run."""
    assert nspawn_host.systems is not None
    spec = f"ssh://{nspawn_host.alias}?ssh_config={nspawn_host.ssh_config}"
    root = pytester.path
    (root / "choirci.yaml").write_text(yaml.safe_dump({
        "hosts": {"staging": spec, "production": spec},
        "host_checks": {"preset": "node", "disk": {"/": "100MiB"}, "memory_available": "64MiB"}}))
    # what pytester's subprocess runs leave in the workspace
    (root / ".gitignore").write_text("evidence*/\n.cache/\n*.xml\nrunpytest-*\nstdout\nstderr\n")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "node release")
    gates_dir = tmp_path / "gates"
    gates_dir.mkdir()
    (gates_dir / "promote.yaml").write_text(PROMOTE)

    def check(role: str) -> Path:
        evidence = root / f"evidence-{role}"
        result = pytester.runpytest_subprocess("--grind", "-m", "host", "-p", "no:cacheprovider",
                                               "--hosts", role, f"--evidence-dir={evidence}")
        result.stdout.fnmatch_lines(["choirci: verdict PASS*"])
        return evidence

    def gate(prod: Path, *history: Path) -> tuple[int, str]:
        argv = ["gate", "promote", "--evidence", str(prod), "--gates", str(gates_dir)]
        code = main([*argv, *(a for h in history for a in ("--history", str(h)))])
        return code, capsys.readouterr().out

    staging = check("staging")
    production = check("production")
    code, out = gate(production, staging)
    assert code == 0, out
    verdict = json.loads((production / "gates" / "promote.json").read_text())
    assert "promote" in json.dumps(verdict)
    hosts = release_record(_load(production)).to_json()["hosts"]
    assert list(hosts) == ["production"]
    assert hosts["production"]["current_system"] == nspawn_host.systems.current
    assert hosts["production"]["services"]["hypervisor.service"] == choiros_binaries.store_paths["hypervisor"]

    code, out = gate(production)
    assert code == 1 and "no staging evidence: pass --history STAGING_DIR" in out

    # production switched to a hypervisor build staging never saw
    other = Binaries({**choiros_binaries.store_paths,
                      "hypervisor": next_build(tmp_path, choiros_binaries, "hypervisor")})
    unverified = node.build_system(other, "choiros-b")
    broken(f"ln -sfn {unverified} /run/current-system",
           f"ln -sfn {nspawn_host.systems.current} /run/current-system")
    moved = check("production")
    code, out = gate(moved, staging)
    assert code == 1
    assert (f"host production does not run what staging (staging) verified: hypervisor.service: "
            f"{other.store_paths['hypervisor']} (staging {choiros_binaries.store_paths['hypervisor']})") in out


def _load(directory: Path) -> RunRecord:
    from choirci.evidence import files

    return files.load(directory)
