"""Grind host: systemd units running and enabled, their ports listening (CONTRACT §5).

State comes from ``systemctl show -p ActiveState,SubState,UnitFileState,Result``, never from
``host.service(...).is_enabled`` (it misreads NixOS's ``linked``/``static`` units) nor from
``host.package`` (NotImplemented on NixOS).
"""

from __future__ import annotations

from typing import Any

import pytest

from choirci.config.hosts import HostChecks
from choirci.hosts.lib import HostToolError, config_of, fail, params, run
from choirci.hosts.probe import listening_ports, parse_unit, ports_command, unit_command, unit_name

pytestmark = pytest.mark.host


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    hc = config_of(metafunc.config)
    if "unit" in metafunc.fixturenames:
        metafunc.parametrize("unit", params(hc.units, "units"))
    if "optional_unit" in metafunc.fixturenames:
        metafunc.parametrize("optional_unit", params(hc.optional_units, "optional_units"))
    if "port" in metafunc.fixturenames:
        ids = [f"{p.port}" + (f"@{p.container}" if p.container else "") for p in hc.ports]
        metafunc.parametrize("port", params(hc.ports, "ports", ids))


@pytest.fixture(scope="module")
def systemd(host: Any) -> None:
    if host.run("test -d /run/systemd/system").rc != 0:
        raise HostToolError(
            "the host does not run systemd (/run/systemd/system is missing), so unit checks "
            "cannot run; check a systemd host or set host_checks.units: [] and optional_units: []"
        )


def _state(host: Any, unit: str) -> Any:
    return parse_unit(unit, run(host, unit_command(unit), "systemctl").stdout)


def _hint(unit: str) -> str:
    return f"start it (systemctl start {unit}) and read 'journalctl -u {unit} -n 100'"


def test_unit_active(host: Any, systemd: None, unit: str) -> None:
    state = _state(host, unit)
    if not state.exists:
        fail(f"{unit_name(unit)} is not installed on the host (LoadState=not-found)")
    if state.get("ActiveState") != "active":
        fail(f"{unit_name(unit)} is not active: {state.summary}; {_hint(unit)}")


def test_unit_enabled(host: Any, systemd: None, unit: str, host_checks: HostChecks) -> None:
    state = _state(host, unit)
    if not state.exists:
        fail(f"{unit_name(unit)} is not installed on the host (LoadState=not-found)")
    if state.get("UnitFileState") not in host_checks.enabled_states:
        fail(
            f"{unit_name(unit)} will not start at boot: UnitFileState="
            f"{state.get('UnitFileState') or '(none)'}; enable it (systemctl enable {unit}) "
            f"or add the state to host_checks.enabled_states"
        )


def test_optional_unit_active(host: Any, systemd: None, optional_unit: str) -> None:
    state = _state(host, optional_unit)
    if not state.exists:
        pytest.skip(f"optional unit {unit_name(optional_unit)} is not installed on this host")
    if state.get("ActiveState") != "active":
        fail(f"{unit_name(optional_unit)} is installed but not active: {state.summary}; "
             f"{_hint(optional_unit)}")


def test_port_listening(host: Any, port: Any) -> None:
    result = run(host, ports_command(port.container), "ss")
    if result.rc != 0:
        raise HostToolError(f"'{ports_command(port.container)}' failed: {result.stderr.strip()}")
    listening = listening_ports(result.stdout)
    where = f" inside container {port.container}" if port.container else ""
    if port.port not in listening:
        fail(f"nothing listens on TCP port {port.port}{where}; listening ports: "
             f"{', '.join(map(str, sorted(listening))) or 'none'}")
