"""Host-check presets (``host_checks.preset``) and the node-era keys' parsers.

* ``seed`` (the default): the seed-era grind/prod contract (EC2, nixos-containers, sops-nix),
  exactly :class:`choirci.config.hosts.HostChecks`'s defaults.
* ``node``: today's nodes (CONTRACT.md §7, ``nix/hosts/ovh-node*.nix``): ``hypervisor`` on 9090
  with its ``EnvironmentFile`` under ``/run/choiros/credentials/platform/``, ``caddy``, the
  oneshots ``choiros-secrets-materialize`` and ``choir-generate-admin-token``, the templated
  microVM units (``cloud-hypervisor@``, ``firecracker@``, ``tap-setup@``, ``socat-sandbox@``:
  every instance ``systemctl list-units`` finds is checked), the socat forward
  ``127.0.0.1:8080`` to the sandbox VM's ``/health``, the credential files' modes and owners,
  the admin token file. No nixos-containers, no sops-nix, no ``/opt/choiros/workspace``.

A preset only changes defaults: every key written in ``host_checks:`` still wins.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from choirci.config.reader import Reader as _Reader

PRESET_NAMES = ("seed", "node")
NODE_ENV_FILE = "/run/choiros/credentials/platform/hypervisor.env"
ADMIN_TOKEN = "/run/choiros/admin.token"
UNIT_TEMPLATES = ("cloud-hypervisor@", "firecracker@", "tap-setup@", "socat-sandbox@")
REBOOT_POLICIES = ("fail", "warn", "off")
STORE_PATH = re.compile(r"^/nix/store/[0-9a-z]{32}-[^/\s]+$")
CREDENTIAL = re.compile(r"^(?P<mode>0?[0-7]{3})(?:\s+(?P<owner>[a-z_][a-z0-9_-]*(?::[a-z_][a-z0-9_-]*)?))?$")


@dataclass(frozen=True)
class Credential:
    """A credential file: exact mode (``stat %a``), owner (``user`` or ``user:group``), non-empty."""

    mode: str
    owner: str | None

    def describe(self) -> str:
        return self.mode + (f" {self.owner}" if self.owner else "")


def node_defaults() -> dict[str, Any]:
    """The ``node`` preset as HostChecks field values (the PortCheck/Sandbox types are the
    caller's: this module stays below :mod:`choirci.config.hosts`)."""
    return {
        "units": ("hypervisor", "caddy"),
        "optional_units": (),
        "unit_templates": UNIT_TEMPLATES,
        "ports": (9090, 8080),
        "sandboxes": {"live": "http://127.0.0.1:8080"},  # socat-sandbox@ -> the sandbox VM
        "unit_environment_files": {"hypervisor": NODE_ENV_FILE},
        "oneshot_units": ("choiros-secrets-materialize", "choir-generate-admin-token"),
        "credentials": {NODE_ENV_FILE: Credential("400", "root"), ADMIN_TOKEN: Credential("600", "root")},
        "secret_modes": {},  # no sops-nix on the nodes: secrets arrive by scp + LoadCredential
        "workspace": (),  # deploys pull in the operator's checkout; set it to check one
        "sandbox_process": "",  # the sandbox runs inside a microVM: not a host process
        "binaries": {},  # no /opt/choiros/bin: services execute from the system closure
        "manifest_processes": {"hypervisor": "hypervisor"},
    }


def credentials(r: _Reader, table: dict[str, Any], default: Mapping[str, Credential]) -> Mapping[str, Credential]:
    """``path -> "MODE [OWNER]"`` (``"400 root"``, ``"0600 root:root"``); ``{}`` turns it off."""
    if "credentials" not in table:
        return default
    spec = r.mapping(table["credentials"], "host_checks.credentials", None)
    out = {}
    for path, value in spec.items():
        where = f"host_checks.credentials.{path}"
        if not str(path).startswith("/"):
            raise r.fail(where, f"expected an absolute path as key, got {path!r}")
        match = CREDENTIAL.match(value.strip()) if isinstance(value, str) else None
        if match is None:
            raise r.fail(where, f"expected a quoted 'MODE [OWNER]' like '400 root' or '0600 root:root', got {value!r}")
        out[str(path)] = Credential(f"{int(match['mode'], 8):o}", match["owner"])
    return out


def templates(r: _Reader, table: dict[str, Any], default: tuple[str, ...]) -> tuple[str, ...]:
    """Unit templates as ``name@`` (``cloud-hypervisor@`` or ``cloud-hypervisor@*``)."""
    if "unit_templates" not in table:
        return default
    names = r.strings(table["unit_templates"], "host_checks.unit_templates")
    out = []
    for index, name in enumerate(names):
        base = name.removesuffix("*").removesuffix(".service")
        if not re.match(r"^[A-Za-z0-9_.:-]+@$", base):
            raise r.fail(f"host_checks.unit_templates[{index}]",
                         f"expected a template unit name like 'cloud-hypervisor@', got {name!r}")
        out.append(base)
    return tuple(out)


def system_path(r: _Reader, value: Any) -> str | None:
    """``host_checks.system``: the store path of the NixOS toplevel the host must run."""
    path = r.optional_string(value, "host_checks.system")
    if path is not None and not STORE_PATH.match(path.rstrip("/")):
        raise r.fail("host_checks.system", "expected the toplevel's store path "
                     f"('/nix/store/<hash>-nixos-system-...'), got {path!r}")
    return path.rstrip("/") if path else None


def env_files(r: _Reader, table: dict[str, Any], default: Mapping[str, str]) -> Mapping[str, str]:
    """``unit -> absolute path`` that the unit's ``EnvironmentFiles`` must include."""
    if "unit_environment_files" not in table:
        return default
    spec = r.mapping(table["unit_environment_files"], "host_checks.unit_environment_files", None)
    out = {}
    for unit, path in spec.items():
        where = f"host_checks.unit_environment_files.{unit}"
        text = r.string(path, where)
        if not text.startswith("/"):
            raise r.fail(where, f"expected an absolute path, got {text!r}")
        out[str(unit)] = text
    return out


def modes(r: _Reader, table: dict[str, Any], default: Mapping[str, str]) -> Mapping[str, str]:
    """path or glob -> octal mode (``"600"``, ``"0400"``), normalised to ``stat -c %a``."""
    if "secret_modes" not in table:
        return default
    spec = r.mapping(table["secret_modes"], "host_checks.secret_modes", None)
    out = {}
    for pattern, mode in spec.items():
        path = f"host_checks.secret_modes.{pattern}"
        if not str(pattern).startswith("/"):
            raise r.fail(path, f"expected an absolute path or glob as key, got {pattern!r}")
        # A bare YAML 0400 is the integer 256: only a quoted mode is unambiguous.
        if not isinstance(mode, str) or not re.match(r"^0?[0-7]{3}$", mode):
            raise r.fail(path, f"expected a quoted octal mode like '600' or '0400', got {mode!r}")
        out[str(pattern)] = f"{int(mode, 8):o}"
    return out
