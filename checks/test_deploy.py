"""Grind host: deployed binaries, free disk and memory, rollback (CONTRACT §5, §8 item 6).

``/opt/choiros/bin/*`` may be symlinks (apply-release) or copies (host-switch ``install``):
a binary matches when it resolves to the expected store path OR its sha256 equals that
path's. Free space is read from ``df`` on the host, never assumed.
"""

from __future__ import annotations

from typing import Any

import pytest

from choirci.config.hosts import HostChecks
from choirci.hosts.lib import HostToolError, check, config_of, fail, params
from choirci.hosts.probe import (
    binary_command,
    df_command,
    expected_binary,
    human,
    parse_binary,
    parse_df,
    parse_meminfo,
)

pytestmark = pytest.mark.host


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    hc = config_of(metafunc.config)
    if "binary" in metafunc.fixturenames:
        metafunc.parametrize("binary", params(list(hc.binaries), "binaries"))
    if "disk_path" in metafunc.fixturenames:
        metafunc.parametrize("disk_path", params(list(hc.disk), "disk"))


def _file(host: Any, path: str) -> tuple[str, str] | None:
    return parse_binary(check(host, binary_command(path), "readlink/sha256sum").stdout)


def test_deployed_binary(host: Any, binary: str, host_checks: HostChecks, record_property: Any) -> None:
    deployed = f"{host_checks.bin_dir}/{binary}"
    found = _file(host, deployed)
    if found is None:
        fail(f"{deployed} does not exist on the host; deploy the release (apply-release-manifest)")
    resolved, sha = found
    record_property(f"{binary}_resolved", resolved)
    record_property(f"{binary}_sha256", sha)
    expected = host_checks.binaries[binary]
    if expected is None:
        if not resolved.startswith(host_checks.store_dir.rstrip("/") + "/"):
            fail(f"{deployed} resolves to {resolved}, which is not in {host_checks.store_dir}")
    elif expected.startswith("sha256:"):
        if sha != expected.removeprefix("sha256:"):
            fail(f"{deployed} has sha256 {sha}, expected {expected.removeprefix('sha256:')}")
    else:
        _compare(host, deployed, resolved, sha, expected_binary(expected, binary))


def _compare(host: Any, deployed: str, resolved: str, sha: str, expected: str) -> None:
    wanted = _file(host, expected)
    if wanted is not None and (resolved == wanted[0] or sha == wanted[1]):
        return
    if wanted is None:
        fail(f"{deployed} resolves to {resolved}, expected {expected}, which is not on the host "
             "(not copied, or garbage-collected)")
    fail(f"{deployed} resolves to {resolved} (sha256 {sha[:16]}...), expected {expected} "
         f"(sha256 {wanted[1][:16]}...): the deployed binary is not the expected build")


def test_disk_headroom(host: Any, disk_path: str, host_checks: HostChecks, record_property: Any) -> None:
    result = check(host, df_command(disk_path), "df")
    usage = parse_df(disk_path, result.stdout)
    if usage is None:
        raise HostToolError(f"cannot read free space of {disk_path} on the host: df printed "
                            f"{result.stdout.strip()[:120]!r}")
    record_property(f"disk_free:{disk_path}", usage.free)
    threshold = host_checks.disk[disk_path]
    if threshold.breached(usage.free, usage.total):
        fail(f"disk nearly full at {disk_path}: {usage.describe()}, below the minimum "
             f"{threshold.text} (host_checks.disk); free space (nix-collect-garbage, old backups)")


def test_memory_headroom(host: Any, host_checks: HostChecks, record_property: Any) -> None:
    available = parse_meminfo(check(host, "cat /proc/meminfo", "cat").stdout)
    if available is None:
        raise HostToolError("/proc/meminfo has no MemAvailable line; cannot measure memory")
    record_property("mem_available", available)
    if available < host_checks.memory_available.min_bytes:
        fail(f"memory low: {human(available)} available, below the minimum "
             f"{host_checks.memory_available.text} (host_checks.memory_available)")


def test_nixos_rollback_generation(host: Any, host_checks: HostChecks, record_property: Any) -> None:
    if check(host, "test -e /etc/NIXOS", "test", ok=(0, 1)).rc != 0:
        pytest.skip("not a NixOS host (no /etc/NIXOS): no system generations to roll back to")
    if host_checks.nixos_generations == 0:
        pytest.skip("host_checks.nixos_generations is 0")
    probe = 'for f in /nix/var/nix/profiles/system-*-link; do if [ -e "$f" ]; then echo "$f"; fi; done'
    links = check(host, probe, "sh").stdout.split()
    record_property("nixos_generations", len(links))
    if len(links) < host_checks.nixos_generations:
        fail(f"only {len(links)} NixOS system generation(s) in /nix/var/nix/profiles: "
             f"'nixos-rebuild switch --rollback' needs at least {host_checks.nixos_generations}")
