"""Host checks against a booted systemd host (systemd-nspawn) that misbehaves underneath them:
frozen mid-run, systemd not answering, tools missing, units crash-looping or started by hand.

Every run of pytest here goes through ONE bounded helper (:func:`bounded`): it fails the test
when the inner run exceeds its bound instead of hanging the suite, and the freezing tests assert
the elapsed time against the bound the config promises. Every fault is undone in a ``finally``.
"""

from __future__ import annotations

import contextlib
import re
import shlex
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
from hostenv.fixtures import HostUnderTest, sh
from hostenv.nspawn import NspawnHost

# Small bounds so the faults cost seconds: connect 2 s, keepalive 1 s x 2, commands 4 s.
BOUNDS = {"connect_timeout": 2, "server_alive_interval": 1, "server_alive_count_max": 2,
          "command_timeout": 4, "http_timeout": 2}
HARD_LIMIT = 120  # no inner run may take longer, whatever happens


def bounded(pytester: pytest.Pytester, host: HostUnderTest, *args: str, **overrides: Any) -> tuple[pytest.RunResult, float]:
    host.write_config(pytester.path, **{**BOUNDS, **overrides})
    started = time.monotonic()
    result = pytester.runpytest_subprocess("--grind", "-m", "host", "-p", "no:cacheprovider", "-rfEs",
                                           *args, timeout=HARD_LIMIT)
    return result, time.monotonic() - started


def _container_pids(host: NspawnHost) -> list[int]:
    out = subprocess.run(["ip", "netns", "pids", host.netns], capture_output=True, text=True, check=True)
    return [int(p) for p in out.stdout.split()]


def _container_init(host: NspawnHost) -> int:
    assert host.proc is not None
    out = subprocess.run(["pgrep", "-P", str(host.proc.pid)], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[0])


@contextlib.contextmanager
def frozen(pids: list[int]) -> Iterator[None]:
    """SIGSTOP ``pids`` (from outside the container), SIGCONT them afterwards, always."""
    try:
        yield
    finally:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                subprocess.run(["kill", "-CONT", str(pid)], check=False)


@contextlib.contextmanager
def frozen_later(pidfile: Any) -> Iterator[None]:
    """Thaw whatever the inner run froze (it writes the pids before stopping them)."""
    try:
        yield
    finally:
        if pidfile.exists():
            with frozen([int(p) for p in pidfile.read_text().split()]):
                pass


FREEZE_PLUGIN = """
import os, signal, subprocess
FROZEN = []
def pytest_runtest_setup(item):
    # the run has probed the host and holds its SSH connection: freeze the whole host NOW
    if FROZEN:
        return
    out = subprocess.run(["ip", "netns", "pids", {netns!r}], capture_output=True, text=True).stdout
    FROZEN.extend(int(p) for p in out.split())
    open("frozen.pids", "w").write(" ".join(map(str, FROZEN)))
    for pid in FROZEN:
        try:
            os.kill(pid, signal.SIGSTOP)
        except ProcessLookupError:
            pass
"""


def test_a_host_frozen_mid_run_errors_within_the_bound_and_others_still_run(
    pytester: pytest.Pytester, booted: HostUnderTest, plain_host: HostUnderTest, nspawn_host: NspawnHost,
) -> None:
    pytester.makepyfile(freezer=FREEZE_PLUGIN.format(netns=nspawn_host.netns))
    specs = f"{booted.spec},{plain_host.spec}"
    with frozen_later(pytester.path / "frozen.pids"):
        result, elapsed = bounded(pytester, booted, "-p", "freezer", f"--hosts={specs}", "-k",
                                  "disk_headroom or memory_headroom", "-v",
                                  disk={"/": "1MiB"}, memory_available="1MiB")
    out = result.stdout.str()
    # keepalives: 1 s x 2 drop the connection; then every other command on it is refused at once
    bound = BOUNDS["server_alive_interval"] * (BOUNDS["server_alive_count_max"] + 1) + BOUNDS["command_timeout"] + 15
    assert elapsed < bound, f"the frozen host held the run {elapsed:.1f} s (bound {bound} s)\n{out}"
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed") == 2, out  # the plain host's checks still ran
    assert outcomes.get("errors") == 2 and not outcomes.get("failed"), out
    # the first command on the frozen host hits a bound (command timeout or keepalive); later
    # ones fail at once (connect timeout, or not asked again): each names host and command
    assert re.search(r"choirci: host grind: (SSH transport failed \(exit 255\)|df did not answer within 4 s)"
                     r".* running `df -Pk -- /`", out), out
    assert re.search(r"choirci: host grind: (SSH transport failed \(exit 255\) running `cat /proc/meminfo`"
                     r"|not asked: )", out), out


def test_a_frozen_sshd_is_one_unreachable_error(pytester: pytest.Pytester, booted: HostUnderTest,
                                                nspawn_host: NspawnHost) -> None:
    """sshd (the listener) stopped before the run: TCP connects, no banner ever comes."""
    sshd = [int(p) for p in sh(nspawn_host, "pgrep -x -P 1 sshd || true").split()]  # the listener
    assert sshd
    # container pids as seen from here: map through /proc/<host pid>/status NSpid
    outside = [p for p in _container_pids(nspawn_host)
               if _nspid(p) in sshd]
    with frozen(outside):
        for pid in outside:
            subprocess.run(["kill", "-STOP", str(pid)], check=True)
        result, elapsed = bounded(pytester, booted, "-k", "reachable or disk_headroom")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*choirci: host grind (ssh://choirci-nspawn): *"])
    assert elapsed < BOUNDS["connect_timeout"] * 3 + 5 + 15, elapsed


def _nspid(pid: int) -> int | None:
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("NSpid:"):
                return int(line.split()[-1])
    except FileNotFoundError:
        return None
    return None


def test_systemd_not_answering_is_an_error_never_not_installed(
    pytester: pytest.Pytester, booted: HostUnderTest, nspawn_host: NspawnHost,
) -> None:
    """PID 1 frozen: systemctl waits for an answer that never comes. The first call times out
    (an ERROR naming systemctl), the rest are not asked again; nothing says 'not installed'."""
    init = _container_init(nspawn_host)
    with frozen([init]):
        subprocess.run(["kill", "-STOP", str(init)], check=True)
        result, elapsed = bounded(pytester, booted, "-k", "unit_active or unit_enabled or oneshot or port_listening",
                                  "--durations=5", "-v", oneshot_units=["hypervisor"])
    out = result.stdout.str()
    outcomes = result.parseoutcomes()
    assert outcomes.get("errors") == 7 and not outcomes.get("failed") and outcomes.get("passed") == 3, out
    assert "not installed" not in out and "not-found" not in out
    result.stdout.fnmatch_lines(["*choirci: host grind: systemctl did not answer within 4 s "
                                 "(host_checks.command_timeout) running `systemctl show *"])
    # Count in the ERRORS section only: with $CI set pytest does not shorten the summary lines,
    # so the short summary repeats every message in full.
    errors = out.split("short test summary info")[0]
    assert errors.count("not asked: systemctl did not answer") == 6, out
    assert elapsed < BOUNDS["command_timeout"] * 2 + 20, f"{elapsed}\n{out}"


def test_systemctl_failing_fast_is_an_error(pytester: pytest.Pytester, booted: HostUnderTest, broken: Any) -> None:
    """No private socket and no D-Bus: 'Failed to connect to bus' is could-not-ask."""
    broken("mv /run/systemd/private /run/systemd/private.off && systemctl stop dbus.socket dbus.service "
           "|| true; test ! -e /run/systemd/private",
           "mv /run/systemd/private.off /run/systemd/private; systemctl start dbus.socket")
    result, _ = bounded(pytester, booted, "-k", "unit_active")
    result.assert_outcomes(errors=3, skipped=1)  # the skip: optional_units is empty
    result.stdout.fnmatch_lines(["*choirci: host grind: systemctl failed on the host (exit 1) running "
                                 "`systemctl show * Failed to connect to bus*"])


def test_missing_tools_are_errors_naming_the_tool(pytester: pytest.Pytester, booted: HostUnderTest,
                                                  broken: Any) -> None:
    for tool in ("pgrep", "curl", "ss"):
        path = f"/usr/bin/{tool}"
        broken(f"mv {path} {path}.off", f"mv {path}.off {path}")
    result, _ = bounded(pytester, booted, "-k", "keyless or sandbox_health or port_listening or processes_running")
    outcomes = result.parseoutcomes()
    assert not outcomes.get("failed") and not outcomes.get("passed"), result.stdout.str()
    result.stdout.fnmatch_lines([
        "*choirci: host grind: pgrep/awk: cannot run on the host (choirci: 'pgrep' is not installed on the host*",
        "*choirci: host grind: curl: cannot run on the host (*curl: *not found)*",
        "*choirci: host grind: ss: cannot run on the host (*ss: *not found)*",
    ])


CRASHY = """[Unit]
Description=crashes every 2 s
[Service]
ExecStart=/bin/sh -c 'sleep 2; exit 3'
Restart=always
RestartSec=1
StartLimitIntervalSec=0
[Install]
WantedBy=multi-user.target
"""
FAILING = "[Service]\nExecStart=/bin/sh -c 'exit 3'\n[Install]\nWantedBy=multi-user.target\n"
MANUAL = "[Service]\nExecStart=/bin/sleep 600\n"  # no [Install]: static, nothing wants it


def _install(broken: Any, name: str, text: str, start: str) -> None:
    path = f"/etc/systemd/system/{name}.service"
    broken(f"printf '%s' {shlex.quote(text)} > {path} && systemctl daemon-reload && {start}",
           f"systemctl stop {name}; systemctl disable {name} 2>/dev/null; rm -f {path}; "
           "systemctl daemon-reload; systemctl reset-failed")


def test_crash_loop_and_failed_units_fail_with_the_next_command(
    pytester: pytest.Pytester, booted: HostUnderTest, nspawn_host: NspawnHost, broken: Any,
) -> None:
    _install(broken, "crashy", CRASHY, "systemctl enable --now crashy")
    _install(broken, "failing", FAILING, "systemctl enable failing && (systemctl start failing || true)")
    deadline = time.monotonic() + 30
    while "NRestarts=0" in sh(nspawn_host, "systemctl show -p NRestarts crashy") and time.monotonic() < deadline:
        time.sleep(0.5)
    result, _ = bounded(pytester, booted, "-k", "unit_active", units=["crashy", "failing"])
    result.assert_outcomes(failed=2, skipped=1)  # the skip: optional_units is empty
    out = result.stdout.str()
    assert re.search(r"crashy\.service (is crash-looping: waiting to restart after a crash \(NRestarts=\d+, "
                     r"last exit status 3\)|is active but restarted \d+ time\(s\) since it was started)"
                     r".*read 'journalctl -u crashy -n 100'", out), out
    result.stdout.fnmatch_lines(["*failing.service has failed (ActiveState=failed * last exit status 3); "
                                 "read 'journalctl -u failing -n 100', fix it and run 'systemctl restart failing'*"])


def test_a_unit_started_by_hand_will_not_start_at_boot(
    pytester: pytest.Pytester, booted: HostUnderTest, broken: Any,
) -> None:
    _install(broken, "manual", MANUAL, "systemctl start manual")
    result, _ = bounded(pytester, booted, "-k", "unit_active or unit_enabled", units=["manual"])
    result.assert_outcomes(passed=1, failed=1, skipped=1)
    result.stdout.fnmatch_lines(["*manual.service will not start at boot: UnitFileState=static but nothing "
                                 "wants it (WantedBy, RequiredBy, UpheldBy and TriggeredBy are empty)*"])
    allowed, _ = bounded(pytester, booted, "-k", "unit_enabled", units=["manual"], boot_allow=["manual"])
    allowed.assert_outcomes(passed=1)


def test_healthy_units_are_wanted_and_not_restarting(pytester: pytest.Pytester, booted: HostUnderTest) -> None:
    result, _ = bounded(pytester, booted, "-k", "unit_active or unit_enabled")
    result.assert_outcomes(passed=6, skipped=1)
