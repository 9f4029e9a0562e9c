"""Grind/prod host state the promote flow relies on (CONTRACT §5 items 1, 7, 9; §3 ``92c78c1``).

* The workspace checkout (``host_checks.workspace``) is clean, untracked files included, and on
  ``workspace_branch`` at the commit of ``origin/<branch>`` as last fetched: promote refuses
  otherwise. Nothing is fetched; a check never changes the host.
* Each installed ``oneshot_units`` unit (``choiros-flakehub-login``) has ``Result=success``; a
  host without the unit (or without systemd) skips with the reason.
* ``secret_modes``: the sops-nix age key and the rendered templates have exactly their mode;
  a path or glob that matches nothing on the host skips with the reason.
"""

from __future__ import annotations

import shlex
from typing import Any

import pytest

from choirci.config.hosts import HostChecks
from choirci.hosts.lib import HostToolError, check, config_of, fail, has_systemd, params, unit_state
from choirci.hosts.probe import unit_name
from choirci.hosts.promoted import Checkout, git_command, modes_command, parse_git, parse_modes

pytestmark = pytest.mark.host
SHOWN = 5  # dirty entries named in the failure line


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    hc = config_of(metafunc.config)
    table = {
        "workspace": params(hc.workspace, "workspace"),
        "oneshot_unit": params(hc.oneshot_units, "oneshot_units"),
        "secret": params(list(hc.secret_modes), "secret_modes"),
        "credential": params(list(hc.credentials), "credentials"),
    }
    for name, values in table.items():
        if name in metafunc.fixturenames:
            metafunc.parametrize(name, values)


def _checkout(host: Any, path: str, hc: HostChecks) -> Checkout:
    checkout = parse_git(path, check(host, git_command(path, hc.workspace_branch), "git").stdout)
    if checkout.state == "absent":
        fail(f"workspace {path} does not exist on the host: the promote flow runs there "
             "(clone the repo there, or set host_checks.workspace)")
    if checkout.state == "not-git":
        fail(f"workspace {path} is not a git checkout ({checkout.error})")
    return checkout


def test_workspace_clean(host: Any, workspace: str, host_checks: HostChecks,
                         record_property: Any) -> None:
    checkout = _checkout(host, workspace, host_checks)
    record_property("workspace_head", checkout.head)
    if checkout.dirty:
        shown = ", ".join(repr(line) for line in checkout.dirty[:SHOWN])
        more = f" and {len(checkout.dirty) - SHOWN} more" if len(checkout.dirty) > SHOWN else ""
        fail(f"workspace {workspace} is dirty ({len(checkout.dirty)} change(s): {shown}{more}); "
             "promote refuses a dirty tree: commit, remove or gitignore them "
             f"(git -C {workspace} status)")


def test_workspace_on_branch(host: Any, workspace: str, host_checks: HostChecks) -> None:
    checkout = _checkout(host, workspace, host_checks)
    branch = host_checks.workspace_branch
    if checkout.branch != branch:
        on = f"on branch {checkout.branch!r}" if checkout.branch else f"detached at {checkout.head[:12]}"
        fail(f"workspace {workspace} is {on}, expected {branch!r}; "
             f"git -C {workspace} checkout {branch} && git -C {workspace} pull --ff-only")
    if checkout.upstream and checkout.head != checkout.upstream:
        fail(f"workspace {workspace} is at {checkout.head[:12]} but origin/{branch} (as last "
             f"fetched) is at {checkout.upstream[:12]}; git -C {workspace} pull --ff-only origin {branch}")


def test_oneshot_unit_succeeded(host: Any, oneshot_unit: str) -> None:
    if not has_systemd(host):
        pytest.skip(f"no systemd on this host, so no {unit_name(oneshot_unit)}")
    state = unit_state(host, oneshot_unit)
    if not state.exists:
        pytest.skip(f"optional unit {unit_name(oneshot_unit)} is not installed on this host")
    if state.get("Result") != "success" or state.get("ActiveState") == "failed":
        fail(f"{unit_name(oneshot_unit)} did not succeed: {state.summary}; read "
             f"'journalctl -u {oneshot_unit} -n 50', fix it and run 'systemctl restart {oneshot_unit}'")


def test_secret_mode(host: Any, secret: str, host_checks: HostChecks, record_property: Any) -> None:
    found = parse_modes(check(host, modes_command(secret), "stat").stdout)
    if not found:
        pytest.skip(f"no {secret} on this host (sops-nix not set up here)")
    expected = host_checks.secret_modes[secret]
    record_property(f"mode:{secret}", " ".join(f"{f.path}={f.mode}" for f in found))
    wrong = [f"{f.path} has mode {f.mode} ({f.owner})" for f in found if f.mode != expected]
    if wrong:
        fail(f"{'; '.join(wrong)}, expected {expected} (host_checks.secret_modes); chmod "
             f"{expected} it and fix the sops-nix declaration that set the mode")


def test_credential_file(host: Any, credential: str, host_checks: HostChecks, record_property: Any) -> None:
    """A credential file (the hypervisor's EnvironmentFile, the admin token): present,
    non-empty, exactly its mode and owner. Its content is never read."""
    want = host_checks.credentials[credential]
    path = shlex.quote(credential)
    out = check(host, f"if [ -e {path} ]; then stat -L -c '%a %U:%G %s' -- {path} || exit 4; "
                "else echo ABSENT; fi", "stat").stdout.split()
    if out[:1] == ["ABSENT"]:
        fail(f"{credential} does not exist on the host: the unit that materialises it "
             "(choiros-secrets-materialize, choir-generate-admin-token) did not run or failed")
    if len(out) != 3:
        raise HostToolError(f"stat of {credential} printed {' '.join(out)[:80]!r}")
    mode, owner, size = out
    record_property(f"credential:{credential}", f"{mode} {owner} {size}B")
    problems = []
    if mode != want.mode:
        problems.append(f"has mode {mode}, expected {want.mode} (chmod {want.mode} {credential})")
    user = owner.partition(":")[0]
    if want.owner and want.owner not in (user, owner):
        problems.append(f"is owned by {owner}, expected {want.owner} (chown {want.owner} {credential})")
    if size == "0":
        problems.append("is empty")
    if problems:
        # "<path> has ...": a "<...token>: <value>" shape would be scrubbed as a secret.
        fail(f"credential file {credential} {' and '.join(problems)} (host_checks.credentials)")
