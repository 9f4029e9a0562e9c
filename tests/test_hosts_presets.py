"""Layer 1: host-check presets (``host_checks.preset``), the node-era keys, NixOS system
closures as installables, and the NixOS system probe's parser (issue 15 items 3, 4)."""

from __future__ import annotations

from pathlib import Path

import pytest

from choirci.config import load
from choirci.config.presets import ADMIN_TOKEN, NODE_ENV_FILE, Credential
from choirci.errors import ConfigError
from choirci.hosts import promoted

TOPLEVEL = ".#nixosConfigurations.choiros-b.config.system.build.toplevel"
STORE = "/nix/store/" + "a" * 32


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "choirci.yaml"
    path.write_text(text)
    return path


def test_seed_is_the_default_and_unchanged(tmp_path: Path) -> None:
    seed = load(write(tmp_path, "host_checks: {preset: seed}\n")).host_checks
    default = load(write(tmp_path, "host_checks: {}\n")).host_checks
    assert seed == default and seed.preset == "seed"
    assert seed.units == ("hypervisor", "container@sandbox-live", "container@sandbox-dev")
    assert seed.unit_templates == () and seed.credentials == {} and seed.system is None


def test_node_preset_is_todays_node(tmp_path: Path) -> None:
    hc = load(write(tmp_path, "host_checks: {preset: node}\n")).host_checks
    assert hc.preset == "node"
    assert hc.units == ("hypervisor", "caddy")
    assert hc.unit_templates == ("cloud-hypervisor@", "firecracker@", "tap-setup@", "socat-sandbox@")
    assert hc.oneshot_units == ("choiros-secrets-materialize", "choir-generate-admin-token")
    assert [p.port for p in hc.ports] == [9090, 8080]
    assert [(s.role, s.url) for s in hc.sandboxes] == [("live", "http://127.0.0.1:8080")]
    assert hc.unit_environment_files == {"hypervisor": NODE_ENV_FILE}
    assert hc.credentials == {NODE_ENV_FILE: Credential("400", "root"), ADMIN_TOKEN: Credential("600", "root")}
    assert hc.secret_modes == {} and hc.workspace == () and hc.binaries == {}
    assert hc.sandbox_process == "" and hc.manifest_processes == {"hypervisor": "hypervisor"}
    assert "/login" in hc.public_paths and hc.hypervisor_url == "http://127.0.0.1:9090"


def test_every_node_value_is_overridable(tmp_path: Path) -> None:
    text = ("host_checks:\n  preset: node\n  units: [hypervisor]\n  unit_templates: ['cloud-hypervisor@*']\n"
            "  credentials: {/run/choiros/admin.token: '0640 root:choiros'}\n  sandbox_process: sandbox\n"
            f"  system: {STORE}-nixos-system-choiros-b-25.05/\n  reboot_pending: warn\n"
            "  unit_environment_files: {}\n  ports: [9090]\n")
    hc = load(write(tmp_path, text)).host_checks
    assert hc.units == ("hypervisor",) and hc.unit_templates == ("cloud-hypervisor@",)
    assert hc.credentials == {ADMIN_TOKEN: Credential("640", "root:choiros")}
    assert hc.sandbox_process == "sandbox" and hc.manifest_processes["sandbox"] == "sandbox"
    assert hc.system == f"{STORE}-nixos-system-choiros-b-25.05" and hc.reboot_pending == "warn"
    assert hc.unit_environment_files == {} and [p.port for p in hc.ports] == [9090]
    assert hc.oneshot_units == ("choiros-secrets-materialize", "choir-generate-admin-token")


@pytest.mark.parametrize(("body", "message"), [
    ("  preset: nodes", "choirci.yaml:2: host_checks.preset: expected one of seed, node, got 'nodes'"),
    ("  credentials: {/run/x: 600}", "host_checks.credentials./run/x: expected a quoted 'MODE [OWNER]'"),
    ("  credentials: {run/x: '600'}", "host_checks.credentials.run/x: expected an absolute path"),
    ("  unit_templates: [cloud-hypervisor]", "host_checks.unit_templates[0]: expected a template unit name"),
    ("  system: .#nixosConfigurations.a", "host_checks.system: expected the toplevel's store path"),
    ("  reboot_pending: later", "host_checks.reboot_pending: expected one of fail, warn, off"),
    ("  unit_environment_files: {hypervisor: x.env}",
     "host_checks.unit_environment_files.hypervisor: expected an absolute path"),
])
def test_bad_node_keys_are_one_line(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        load(write(tmp_path, f"host_checks:\n{body}\n"))
    assert message in str(excinfo.value) and "\n" not in str(excinfo.value)


@pytest.mark.parametrize("installable", [
    TOPLEVEL,
    "path:.#nixosConfigurations.choiros-a.config.system.build.toplevel",
    '.#nixosConfigurations."choiros-b".config.system.build.toplevel',
    "./nix/hosts#nixosConfigurations.choiros-ch-sandbox-live-blk.config.system.build.toplevel",
])
def test_a_closure_may_be_a_nixos_toplevel(tmp_path: Path, installable: str) -> None:
    config = load(write(tmp_path, f"closures:\n  node-b: '{installable}'\n"))
    closure = config.closure("node-b")
    assert closure.installable == installable
    assert closure.installable.split("#", 1)[1].endswith("config.system.build.toplevel")


def test_system_probe_parser() -> None:
    cur, boot = f"{STORE}-nixos-system-b-2", "/nix/store/" + "b" * 32 + "-nixos-system-b-1"
    kernel = "/nix/store/" + "c" * 32 + "-linux-6.6/bzImage"
    output = "\n".join([
        f"LINK /run/current-system {cur}", f"PART /run/current-system kernel {kernel}",
        f"PART /run/current-system init {cur}/init", f"PART /run/current-system nixos-version {cur}/nixos-version",
        f"LINK /run/booted-system {boot}", f"PART /run/booted-system kernel {kernel}",
        f"EXEC hypervisor.service {STORE}-hypervisor-0.1.0/bin/hypervisor --port 9090",
        f"EXEC hypervisor.service {STORE}-other/bin/second-line-ignored",
        "EXEC caddy.service /bin/sleep infinity", "END"])
    state = promoted.parse_system(output)
    assert state is not None and state.shaped("/run/current-system") and not state.shaped("/run/booted-system")
    assert state.links == {"/run/current-system": cur, "/run/booted-system": boot}
    assert state.execs == {"hypervisor.service": f"{STORE}-hypervisor-0.1.0"}
    assert promoted.parse_system(output.removesuffix("END")) is None
    assert promoted.parse_system("LINK /run/current-system -\nLINK /run/booted-system -\nEND") == \
        promoted.SystemState({}, {}, {})
    assert promoted.service_files(("hypervisor", "container@sandbox-live", "cloud-hypervisor@", "x.service")) == (
        "hypervisor.service", "container@.service", "cloud-hypervisor@.service", "x.service")


def test_system_revision_parser() -> None:
    rev = "0123456789abcdef0123456789abcdef01234567"
    base = f"LINK /run/current-system {STORE}-nixos-system-b\n"
    good = promoted.parse_system(base + f'REV {{"nixosVersion": "25.05", "configurationRevision": "{rev}"}}\nEND')
    assert good is not None and good.revision == rev
    for bad in ('{"configurationRevision": null}', '{"configurationRevision": "dirty"}', "not json", "[1]"):
        state = promoted.parse_system(base + f"REV {bad}\nEND")
        assert state is not None and state.revision is None, bad
