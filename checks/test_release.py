"""Prod/grind host: what RUNS is exactly the release manifest (CONTRACT §3, §5 item 5, §8.6).

Active when ``host_checks.manifest`` names a release (.env or .json). Per classic closure
(sandbox, hypervisor, desktop): ``/opt/choiros/bin/<bin>`` resolves to the manifest's ``*_BIN``;
the promoted store paths are valid on the host; a GC root keeps them. Per running closure
(``manifest_units``, or ``manifest_processes`` without systemd): ``/proc/<pid>/exe`` of the
service is inside the manifest's store path, which catches a service never restarted after the
symlink switch. apply-release makes symlinks, host-switch ``install`` copies: a copy (or a
process started from one) matches when its sha256 equals the manifest binary's.
"""

from __future__ import annotations

import warnings
from pathlib import PurePosixPath
from typing import Any

import pytest

from choirci.config.hosts import HostChecks
from choirci.hosts.lib import (
    HostToolError,
    HostWarning,
    check,
    config_of,
    fail,
    has_systemd,
    params,
    run,
    store_url,
    unit_state,
)
from choirci.hosts.probe import binary_command, parse_binary, unit_name
from choirci.hosts.promoted import (
    RunningExe,
    exe_command,
    parse_exes,
    parse_roots,
    parse_signatures,
    parse_store,
    roots_command,
    signature_command,
    store_command,
)
from choirci.release.compare import Mismatch, compare_running
from choirci.release.manifest import CLASSIC, ClosureRecord, Manifest

pytestmark = pytest.mark.host


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    hc = config_of(metafunc.config)
    if "closure" in metafunc.fixturenames:
        names = list(CLASSIC) if hc.manifest else []
        metafunc.parametrize("closure", params(names, "manifest", why="is not set"))
    if "service" in metafunc.fixturenames:
        services = sorted({*hc.manifest_units, *hc.manifest_processes}) if hc.manifest else []
        why = "is not set" if not hc.manifest else "has no running closure (manifest_units/processes)"
        metafunc.parametrize("service", params(services, "manifest", why=why))


def _record(manifest: Manifest, name: str) -> ClosureRecord:
    record = manifest.closure(name)
    if record is None:
        pytest.skip(f"the manifest has no closure {name!r}: nothing to compare")
    return record


def _binary(record: ClosureRecord) -> str:
    path = record.bin_path or f"{record.store_path}/{CLASSIC.get(record.name, ('', ''))[1]}"
    return path.rstrip("/")


def _file(host: Any, path: str) -> tuple[str, str] | None:
    return parse_binary(check(host, binary_command(path), "readlink/sha256sum").stdout)


def test_manifest_link(host: Any, closure: str, release_manifest: Manifest, host_checks: HostChecks,
                       record_property: Any) -> None:
    record = _record(release_manifest, closure)
    binary = _binary(record)
    link = f"{host_checks.bin_dir}/{PurePosixPath(binary).name}"
    where = f"{store_url(host)} ({link})"
    found, wanted = _file(host, link), _file(host, binary)
    if found is None:
        fail(str(Mismatch(closure, "not-installed", binary, "absent", where)))
    record_property(f"{closure}_link", found[0])
    resolved, sha = found
    matches = resolved == binary
    if wanted is not None:  # a copy (host-switch's install) matches by its bytes
        matches = matches or resolved == wanted[0] or sha == wanted[1]
    if not matches:
        fail(str(Mismatch(closure, "not-installed", binary, resolved, where)))


def _exes(host: Any, command: str) -> list[RunningExe]:
    out = check(host, command, "pgrep/readlink/sha256sum").stdout
    if "DONE" not in out.splitlines():
        raise HostToolError("the process probe stopped before its end marker (DONE)")
    return parse_exes(out)


def _running(host: Any, hc: HostChecks, name: str, binary: str) -> tuple[str, list[RunningExe]]:
    """(label, executables) of what runs closure ``name`` on the host."""
    unit = hc.manifest_units.get(name)
    if unit and has_systemd(host):
        state = unit_state(host, unit)
        if not state.exists:
            fail(f"{name}: {unit_name(unit)} is not installed on the host, so nothing runs {binary}")
        pid = state.get("MainPID")
        if not pid.isdigit() or pid == "0":
            fail(f"{name}: {unit_name(unit)} has no running process ({state.summary}), so "
                 f"nothing runs {binary}; start it (systemctl start {unit})")
        exes = _exes(host, exe_command(pid=int(pid)))
        return f"{unit_name(unit)} MainPID", exes
    process = hc.manifest_processes.get(name)
    if process is None:
        pytest.skip(f"no systemd on this host and no host_checks.manifest_processes entry for {name!r}")
    exes = _exes(host, exe_command(process=process))
    if not exes:
        fail(f"{name}: no process named {process!r} runs on the host, so nothing runs {binary}")
    return f"process {process!r} pid", exes


def test_manifest_running(host: Any, service: str, release_manifest: Manifest,
                          host_checks: HostChecks, record_property: Any) -> None:
    record = _record(release_manifest, service)
    binary = _binary(record)
    label, exes = _running(host, host_checks, service, binary)
    unreadable = [str(e.pid) for e in exes if not e.path]
    if unreadable:
        raise HostToolError(f"cannot read /proc/<pid>/exe of pid {', '.join(unreadable)}; run the "
                            "checks as root (or with --sudo)")
    record_property(f"{service}_exe", " ".join(sorted({e.path for e in exes})))
    problems = []
    wanted: tuple[str, str] | None = None
    for exe in exes:
        where = f"{store_url(host)} ({label} {exe.pid})"
        for mismatch in compare_running(release_manifest, {service: exe.path}, where):
            # A process started from a copy (host-switch's install) runs the release when
            # the bytes it runs are the release's binary.
            wanted = wanted or _file(host, binary)
            if wanted is None or exe.sha256 != wanted[1]:
                problems.append(str(mismatch))
    if problems:
        fail(" | ".join(problems))


def test_manifest_in_store(host: Any, closure: str, release_manifest: Manifest,
                           record_property: Any) -> None:
    record = _record(release_manifest, closure)
    paths = [o.path for o in record.outputs]
    states = parse_store(check(host, store_command(paths), "nix-store/test").stdout)
    problems = []
    for path in paths:
        state = states.get(path)
        if state is None:
            raise HostToolError(f"no answer about {path} from the host's store check")
        record_property(f"{closure}_store_check", "test -e" if state.valid is None else "nix-store")
        if not state.exists:
            problems.append(Mismatch(closure, "missing", path, "absent", store_url(host)))
        elif state.valid is False:
            problems.append(Mismatch(closure, "missing", path, "files present but not a valid "
                                     "store path (nix-store --check-validity)", store_url(host)))
    if problems:
        fail(" | ".join(map(str, problems)))


def test_manifest_gc_root(host: Any, closure: str, release_manifest: Manifest,
                          host_checks: HostChecks, record_property: Any) -> None:
    if host_checks.manifest_gc_roots == "off":
        pytest.skip("host_checks.manifest_gc_roots is off")
    record = _record(release_manifest, closure)
    paths = [o.path for o in record.outputs]
    states = parse_store(check(host, store_command(paths), "nix-store/test").stdout)
    absent = [p for p in paths if p not in states or not states[p].exists or states[p].valid is False]
    if absent:
        pytest.skip(f"{', '.join(absent)} not in the host's store (test_manifest_in_store reports it)")
    unrooted = []
    for path in paths:
        answer = parse_roots(run(host, roots_command(path), "nix-store").stdout)
        if answer is None:
            pytest.skip("the host has no nix-store, so its GC roots cannot be listed")
        roots, rc = answer
        if rc != 0:
            raise HostToolError(f"nix-store --query --roots {path} failed on the host (exit {rc})")
        record_property(f"{closure}_gc_roots", " ".join(roots))
        if not roots:
            unrooted.append(path)
    if not unrooted:
        return
    message = "; ".join(
        f"{closure}: {path} has no GC root on {store_url(host)} (symlinks in {host_checks.bin_dir} "
        f"and running processes do not count): the next nix-collect-garbage deletes it; add one: "
        f"nix-store --realise --add-root /nix/var/nix/gcroots/choiros-{closure} {path}"
        for path in unrooted
    )
    if host_checks.manifest_gc_roots == "warn":
        warnings.warn(HostWarning(message), stacklevel=1)
        record_property("gc_root_warning", message)
        return
    fail(message)


def test_manifest_signed(host: Any, closure: str, release_manifest: Manifest,
                         host_checks: HostChecks) -> None:
    """Every promoted path carries a valid signature by the grind key
    (``host_checks.manifest_signing_key``): what runs here is what passed the gate."""
    key = host_checks.manifest_signing_key
    if not key:
        pytest.skip("host_checks.manifest_signing_key is not set")
    paths = [o.path for o in _record(release_manifest, closure).outputs]
    name = key.split(":", 1)[0]
    answer = parse_signatures(check(host, signature_command(paths, key), "nix").stdout, name)
    if answer is None:
        raise HostToolError("nix store verify gave no answer on the host")
    problems, rc = answer
    if problems:
        fail("; ".join(f"{closure}: {path} on {store_url(host)} {why}, not by {name}"
                       for path, why in problems.items())
             + "; only paths signed on grind (choirci release sign) are promoted: sign them "
             "there and copy them again")
    if rc != 0:
        raise HostToolError(f"nix store verify failed on the host (exit {rc}) without naming "
                            f"an unsigned path: {paths}")
