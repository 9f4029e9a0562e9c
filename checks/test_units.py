"""Grind host: systemd units running and enabled, their ports listening (CONTRACT §5).

State comes from ``systemctl show`` (``ActiveState``, ``SubState``, ``UnitFileState``,
``NRestarts``, ``ExecMainStatus``, ``WantedBy``/``RequiredBy``...), never from
``host.service(...).is_enabled`` (it misreads NixOS's ``linked``/``static`` units) nor from
``host.package`` (NotImplemented on NixOS). systemctl itself failing is an ERROR.

* active: ``ActiveState=active`` and no more automatic restarts than ``max_restarts`` (a unit
  caught between two crashes of a crash loop is "active" too);
* starts at boot: an enabled-like ``UnitFileState`` AND something pulls it in (``WantedBy``,
  ``RequiredBy``, ``UpheldBy``, ``TriggeredBy``), or the unit is in ``boot_allow``: a
  ``static`` unit started by hand is running now and gone after the next reboot.
"""

from __future__ import annotations

import shlex
from typing import Any

import pytest

from choirci.config.hosts import HostChecks
from choirci.hosts.lib import HostToolError, check, config_of, fail, has_systemd, params, unit_state
from choirci.hosts.probe import UnitState, listening_ports, ports_command, unit_name

pytestmark = pytest.mark.host


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    hc = config_of(metafunc.config)
    if "unit" in metafunc.fixturenames:
        metafunc.parametrize("unit", params(hc.units, "units"))
    if "optional_unit" in metafunc.fixturenames:
        metafunc.parametrize("optional_unit", params(hc.optional_units, "optional_units"))
    if "unit_template" in metafunc.fixturenames:
        metafunc.parametrize("unit_template", params(hc.unit_templates, "unit_templates"))
    if "env_unit" in metafunc.fixturenames:
        metafunc.parametrize("env_unit", params(list(hc.unit_environment_files), "unit_environment_files"))
    if "port" in metafunc.fixturenames:
        ids = [f"{p.port}" + (f"@{p.container}" if p.container else "") for p in hc.ports]
        metafunc.parametrize("port", params(hc.ports, "ports", ids))


@pytest.fixture(scope="module")
def systemd(host: Any) -> None:
    if not has_systemd(host):
        raise HostToolError(
            "the host does not run systemd (/run/systemd/system is missing), so unit checks "
            "cannot run; check a systemd host or set host_checks.units: [] and optional_units: []"
        )


def _journal(unit: str) -> str:
    return f"journalctl -u {unit} -n 100"


def _not_running(state: UnitState, unit: str, max_restarts: int) -> str | None:
    """Why ``unit`` is not running properly, with the next command to run; None when it is."""
    name, active, sub = unit_name(unit), state.get("ActiveState"), state.get("SubState")
    exit_ = f", last exit {state.last_exit}" if state.last_exit else ""
    if active == "activating" and sub == "auto-restart":
        return (f"{name} is crash-looping: waiting to restart after a crash (NRestarts="
                f"{state.restarts}{exit_}); read '{_journal(unit)}'")
    if active == "activating":
        return (f"{name} is still starting ({state.summary}); if it stays there, read "
                f"'{_journal(unit)}'")
    if active == "failed":
        return (f"{name} has failed ({state.summary}{exit_}); read '{_journal(unit)}', fix it "
                f"and run 'systemctl restart {unit}'")
    if active != "active":
        return f"{name} is not active: {state.summary}; start it (systemctl start {unit}) and read '{_journal(unit)}'"
    if state.restarts > max_restarts:
        return (f"{name} is active but restarted {state.restarts} time(s) since it was started "
                f"(NRestarts, at most {max_restarts} allowed by host_checks.max_restarts): a crash "
                f"loop; read '{_journal(unit)}'")
    return None


def test_unit_active(host: Any, systemd: None, unit: str, host_checks: HostChecks,
                     record_property: Any) -> None:
    state = unit_state(host, unit)
    if not state.exists:
        fail(f"{unit_name(unit)} is not installed on the host (LoadState=not-found)")
    record_property(f"nrestarts:{unit}", state.restarts)
    problem = _not_running(state, unit, host_checks.max_restarts)
    if problem:
        fail(problem)


def test_unit_enabled(host: Any, systemd: None, unit: str, host_checks: HostChecks) -> None:
    state = unit_state(host, unit)
    if not state.exists:
        fail(f"{unit_name(unit)} is not installed on the host (LoadState=not-found)")
    file_state = state.get("UnitFileState") or "(none)"
    if file_state not in host_checks.enabled_states:
        fail(
            f"{unit_name(unit)} will not start at boot: UnitFileState={file_state}; enable it "
            f"(systemctl enable {unit}) or add the state to host_checks.enabled_states"
        )
    if not state.wanted_by and unit not in host_checks.boot_allow:
        fail(f"{unit_name(unit)} will not start at boot: UnitFileState={file_state} but nothing "
             "wants it (WantedBy, RequiredBy, UpheldBy and TriggeredBy are empty), so it runs "
             f"only because someone started it; add it to a target (WantedBy=multi-user.target, "
             f"systemctl enable {unit}) or list it in host_checks.boot_allow")


def test_optional_unit_active(host: Any, systemd: None, optional_unit: str,
                              host_checks: HostChecks) -> None:
    state = unit_state(host, optional_unit)
    if not state.exists:
        pytest.skip(f"optional unit {unit_name(optional_unit)} is not installed on this host")
    problem = _not_running(state, optional_unit, host_checks.max_restarts)
    if problem:
        fail(f"installed but not running properly: {problem}")


def test_port_listening(host: Any, port: Any) -> None:
    result = check(host, ports_command(port.container), "ss")
    listening = listening_ports(result.stdout)
    where = f" inside container {port.container}" if port.container else ""
    if port.port not in listening:
        fail(f"nothing listens on TCP port {port.port}{where}; listening ports: "
             f"{', '.join(map(str, sorted(listening))) or 'none'}")


def test_unit_template_instances(host: Any, systemd: None, unit_template: str,
                                 host_checks: HostChecks, record_property: Any) -> None:
    """Every loaded instance of a template (``cloud-hypervisor@<vm>``) runs properly."""
    listing = check(host, "systemctl list-units --all --plain --no-legend --no-pager "
                    f"{shlex.quote(unit_template + '*')}", "systemctl").stdout
    instances = [word for line in listing.splitlines()
                 for word in line.split()[:2] if word.startswith(unit_template)][:1000]
    record_property(f"instances:{unit_template}", " ".join(instances))
    if not instances:
        pytest.skip(f"no instance of {unit_template}.service is loaded on this host "
                    f"(systemctl list-units '{unit_template}*')")
    problems = [problem for name in instances
                if (problem := _not_running(unit_state(host, name), name, host_checks.max_restarts))]
    if problems:
        fail("; ".join(problems))


def test_unit_environment_file(host: Any, systemd: None, env_unit: str, host_checks: HostChecks,
                               record_property: Any) -> None:
    """The unit reads its secrets from the credential file the node materialises."""
    expected = host_checks.unit_environment_files[env_unit]
    state = unit_state(host, env_unit)
    if not state.exists:
        fail(f"{unit_name(env_unit)} is not installed on the host (LoadState=not-found)")
    shown = check(host, f"systemctl show -p EnvironmentFiles --no-pager {shlex.quote(env_unit)}",
                  "systemctl").stdout
    files = [line.split("=", 1)[1].split(" (")[0] for line in shown.splitlines()
             if line.startswith("EnvironmentFiles=")]
    record_property(f"environment_files:{env_unit}", " ".join(files))
    if expected not in files:
        fail(f"{unit_name(env_unit)} does not read EnvironmentFile={expected} "
             f"(it reads: {', '.join(files) or 'none'}); host_checks.unit_environment_files")
