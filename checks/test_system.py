"""The node runs exactly the NixOS system that was built and tested (issue 15 item 3).

* ``/run/current-system`` resolves to a NixOS toplevel (``nixos-version``, ``init``,
  ``kernel``), recorded as the item property ``current_system`` (phase-4's
  ``current_system: toplevel`` compares it with the toplevel the run built), and equals
  ``host_checks.system`` when that is set. The store paths the system's ChoirOS services
  execute (``ExecStart`` of ``units``, ``optional_units``, ``oneshot_units``,
  ``unit_templates`` in the toplevel's ``etc/systemd/system``) are recorded as
  ``system_services`` (``unit=path`` words): the release gate compares them between staging
  and production. Where the system's ``nixos-version --json`` names its
  ``configurationRevision`` (a commit id), it is recorded as ``system_revision``: the release
  gate's promoted SHA must equal it.
* ``/run/booted-system`` differing from the current system in ``kernel``, ``initrd`` or
  ``kernel-modules`` is a pending reboot (``host_checks.reboot_pending: fail|warn|off``).
* The rollback generation is ``test_deploy.py::test_nixos_rollback_generation``.

A host without ``/run/current-system`` is no NixOS host: skipped, unless ``host_checks.system``
says which system it must run (then it fails). A probe that stops half-way is an ERROR.
"""

from __future__ import annotations

import warnings
from typing import Any

import pytest

from choirci.config.hosts import HostChecks
from choirci.hosts.lib import HostToolError, HostWarning, check, fail
from choirci.hosts.promoted import (
    BOOT_PARTS,
    SHAPE,
    SystemState,
    parse_system,
    service_files,
    system_command,
)

pytestmark = pytest.mark.host
CURRENT, BOOTED = "/run/current-system", "/run/booted-system"


def _state(host: Any) -> SystemState:
    state = parse_system(check(host, system_command(), "readlink/sed").stdout)
    if state is None:
        raise HostToolError("the NixOS system probe stopped before its end marker (END)")
    return state


def test_current_system(host: Any, host_checks: HostChecks, record_property: Any) -> None:
    state = _state(host)
    expected = host_checks.system
    current = state.links.get(CURRENT)
    if current is None:
        if expected:
            fail(f"{CURRENT} does not exist on the host, expected {expected} (host_checks.system): "
                 "the host is not running a NixOS system")
        pytest.skip(f"no {CURRENT} on this host: not a NixOS host (set host_checks.system to require one)")
    record_property("current_system", current)
    wanted = service_files(host_checks.units + host_checks.optional_units + host_checks.oneshot_units
                           + host_checks.unit_templates)
    services = {unit: path for unit, path in sorted(state.execs.items()) if unit in wanted}
    record_property("system_services", " ".join(f"{u}={p}" for u, p in services.items()))
    if state.revision:  # the commit it was built from: the release gate's promoted SHA must equal it
        record_property("system_revision", state.revision)
    if not state.shaped(CURRENT):
        missing = [part for part in SHAPE if (CURRENT, part) not in state.parts]
        fail(f"{CURRENT} -> {current} is not a NixOS system toplevel (no {', '.join(missing)})")
    if expected and current != expected:
        fail(f"the host runs {current}, not the system that was built and tested {expected} "
             "(host_checks.system): deploy it (nixos-rebuild switch --flake .#<host>, or "
             f"nix-env -p /nix/var/nix/profiles/system --set {expected} && "
             f"{expected}/bin/switch-to-configuration switch)")


def test_booted_system(host: Any, host_checks: HostChecks, record_property: Any) -> None:
    if host_checks.reboot_pending == "off":
        pytest.skip("host_checks.reboot_pending is off")
    state = _state(host)
    current, booted = state.links.get(CURRENT), state.links.get(BOOTED)
    if current is None or booted is None:
        pytest.skip(f"no {CURRENT if current is None else BOOTED} on this host: not a NixOS host (or not booted as one)")
    record_property("booted_system", booted)
    changed = [part for part in BOOT_PARTS
               if state.parts.get((CURRENT, part)) != state.parts.get((BOOTED, part))]
    if not changed:
        return  # the same system, or a switch that needs no reboot
    record_property("reboot_pending", " ".join(changed))
    detail = "; ".join(f"{part}: booted {state.parts.get((BOOTED, part), 'none')}, current "
                       f"{state.parts.get((CURRENT, part), 'none')}" for part in changed)
    message = (f"reboot pending: the host booted {booted} but runs {current}, whose "
               f"{', '.join(changed)} differ ({detail}); the running kernel is not the one "
               "the current system ships: reboot it (or host_checks.reboot_pending: warn)")
    if host_checks.reboot_pending == "warn":
        warnings.warn(HostWarning(message), stacklevel=1)
        return
    fail(message)
