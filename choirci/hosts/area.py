"""The ``hosts`` area: testinfra checks from ``checks/`` run against the selected hosts.

Active under ``--grind`` when there is something to check: ``--hosts`` was given, or the config
has ``hosts.grind`` or a ``host_checks:`` section (``host_checks: {}`` checks this machine).

Collection (under ``--grind``): the targets are resolved once (:mod:`choirci.hosts.connect`), each is
probed with one ``true``; an unreachable host becomes ONE error item ``hosts::<name>::reachable``
and gets no checks, the reachable ones parametrise every ``checks/test_*.py`` module through
testinfra's own ``pytest_generate_tests`` (``testinfra_hosts`` on the module, or the
``--hosts`` option rewritten with the connection-reuse specs).

This module is also registered as a plugin while the area is active: it provides the
``host_checks`` fixture (the typed config section) and ``release_manifest`` (the release named by
``host_checks.manifest``, read once; an unreadable one is one ``choirci:`` error line), records a ``host`` property on every item
(one JUnit suite per host), turns a mid-run ssh exit 255 into one line, and closes the SSH
control masters at the end of the session.
"""

from __future__ import annotations

import importlib.resources
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from choirci.config.hosts import HostChecks
from choirci.errors import ChoirciError
from choirci.evidence.redact import scrub
from choirci.hosts import connect as hosts_mod
from choirci.hosts import lib
from choirci.hosts.lib import HostToolError, manifest_path
from choirci.items import AreaCollector, ChoirciItem
from choirci.release import manifest as manifest_mod
from choirci.settings import Settings
from choirci.settings import get as get_settings

AREA = "hosts"
# The checks ship as the package choirci.checks (the repo's checks/ in an editable install).
CHECKS_DIR = Path(str(importlib.resources.files("choirci.checks")))
STATE = pytest.StashKey["HostRun"]()


class HostRun:
    """Targets of this run and which of them answered the probe."""

    def __init__(self, config: pytest.Config, settings: Settings) -> None:
        opt = config.option
        hc = settings.config.host_checks
        self.bounds = hosts_mod.Bounds(hc.connect_timeout, hc.server_alive_interval,
                                       hc.server_alive_count_max, hc.command_timeout)
        lib.start_session(self.bounds)
        self.reuse = hosts_mod.SshReuse(bounds=self.bounds)
        self.targets = hosts_mod.resolve_targets(
            opt.hosts, settings.config.hosts, self.reuse, opt.ssh_config
        )
        self.kwargs: dict[str, Any] = {
            "connection": opt.connection, "ssh_config": opt.ssh_config,
            "ssh_identity_file": opt.ssh_identity_file, "sudo": opt.sudo, "sudo_user": opt.sudo_user,
        }
        self.unreachable: dict[str, str] = {}
        for target in self.targets:
            try:
                hosts_mod.probe(target, self.bounds, **self.kwargs)
            except hosts_mod.HostUnreachable as exc:
                self.unreachable[target.name] = str(exc)
        self.reachable = [t for t in self.targets if t.name not in self.unreachable]
        self._by_key = {_backend_key(hosts_mod.get_host(t, **self.kwargs)): t for t in self.reachable}

    def target_of(self, host: Any) -> hosts_mod.HostTarget | None:
        return self._by_key.get(_backend_key(host))

    def close(self) -> None:
        self.reuse.close(self.targets)


def _backend_key(host: Any) -> tuple[str, ...]:
    backend = host.backend
    spec = getattr(backend, "host", None)
    return (
        backend.get_connection_type(),
        str(getattr(spec, "name", backend.get_hostname())),
        str(getattr(spec, "port", "") or ""),
        str(getattr(spec, "user", "") or ""),
    )


def collect_area(session: pytest.Session, settings: Settings) -> pytest.Collector | None:
    config = session.config
    if not (config.option.hosts or "grind" in settings.config.hosts or settings.config.host_checks.configured):
        return None  # a workspace without host configuration has nothing to check
    if not check_files():
        return None
    try:
        run = HostRun(config, settings)
    except ChoirciError as exc:  # which hosts to check is a usage question: one line, exit 4
        raise pytest.UsageError(f"choirci: {exc}") from None
    config.stash[STATE] = run
    if not config.pluginmanager.is_registered(sys.modules[__name__]):
        config.pluginmanager.register(sys.modules[__name__], "choirci-hostchecks")
    if config.option.hosts and run.reachable:
        # testinfra reads --hosts directly: hand it the specs that carry connection reuse.
        config.option.hosts = ",".join(t.spec for t in run.reachable)
    area = HostsArea.from_parent(session, name=AREA, nodeid=AREA)
    area.add_marker("host")
    return area


def check_files() -> list[Path]:
    return sorted(CHECKS_DIR.glob("test_*.py"))


class HostsArea(AreaCollector):
    def collect(self) -> Iterator[pytest.Item | pytest.Collector]:
        run = self.config.stash[STATE]
        for name, message in run.unreachable.items():
            yield UnreachableHost.from_parent(self, name=f"{name}::reachable", message=message)
        if not run.reachable:
            return
        for path in check_files():
            yield CheckModule.from_parent(self, path=path, nodeid=f"{AREA}::{path.name}")


class CheckModule(pytest.Module):
    """A checks/ module whose testinfra hosts are this run's reachable targets."""

    def _getobj(self) -> ModuleType:
        module: ModuleType = super()._getobj()  # type: ignore[no-untyped-call]
        module.testinfra_hosts = [t.spec for t in self.config.stash[STATE].reachable]  # type: ignore[attr-defined]
        return module

    def collect(self) -> list[pytest.Item | pytest.Collector]:
        collected = list(super().collect())
        run = self.config.stash[STATE]
        for item in collected:
            host = getattr(getattr(item, "callspec", None), "params", {}).get("_testinfra_host")
            target = run.target_of(host) if host is not None else None
            if target is not None and isinstance(item, pytest.Item):
                item.user_properties += [("host", target.name), ("host_spec", target.display)]
        return collected


class UnreachableHost(ChoirciItem):
    def __init__(self, *, message: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.message = message
        self.record("host", self.name.split("::")[0])

    def setup(self) -> None:
        # An error (setup), never a failure: the host was not checked at all.
        raise hosts_mod.HostUnreachable(self.message)

    def runtest(self) -> None:  # pragma: no cover - setup always raises
        raise AssertionError("unreachable")


# --------------------------------------------------------------------------- plugin side


def in_area(item: pytest.Item) -> bool:
    return item.nodeid.startswith(f"{AREA}::")


@pytest.fixture(scope="session")
def host_checks(request: pytest.FixtureRequest) -> HostChecks:
    """The validated ``host_checks:`` section of choirci.yaml."""
    settings = get_settings(request.config)
    if settings is None:
        raise ChoirciError("the host checks run under 'pytest --grind' only")
    return settings.config.host_checks


@pytest.fixture(scope="session")
def release_manifest(request: pytest.FixtureRequest) -> manifest_mod.Manifest:
    """The release whose store paths the host must run (``host_checks.manifest``)."""
    path = manifest_path(request.config)
    if path is None:
        raise ChoirciError("host_checks.manifest is not set; no release to compare the host with")
    return manifest_mod.load(path)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if not in_area(item):
        return report
    _scrub_report(report)
    if call.excinfo is None:
        return report
    exc = call.excinfo.value
    stderr = hosts_mod.transport_failure(exc)
    name = dict(item.user_properties).get("host", "?")
    if stderr is not None:
        report.longrepr = scrub(
            f"choirci: host {name}: SSH transport failed during the check (exit 255): {stderr}; "
            "this is a harness error, not a failed check"
        )
        _tag_error(item, report, "ssh exit 255")
    elif isinstance(exc, HostToolError):
        # Could not ask the host: an ERROR naming the host, never a failed check.
        report.longrepr = scrub(f"choirci: host {name}: {exc}")
        _tag_error(item, report, "could not ask the host")
    elif isinstance(exc, ChoirciError):
        report.longrepr = scrub(f"choirci: {exc}")
    return report


def _tag_error(item: pytest.Item, report: pytest.TestReport, why: str) -> None:
    # The report copied user_properties when it was made: tag both (the evidence reads
    # the report's, and counts a tagged failure as an error, never a failed check).
    item.user_properties.append(("harness_error", why))
    report.user_properties.append(("harness_error", why))


def _scrub_report(report: pytest.TestReport) -> None:
    """Host output in a report (failure text, captured logs, properties) loses secret-shaped
    values before anything records or prints it."""
    if report.longrepr is not None and not isinstance(report.longrepr, tuple):
        text = str(report.longrepr)
        if scrub(text) != text:
            report.longrepr = scrub(text)
    report.sections = [(title, scrub(body)) for title, body in report.sections]
    report.user_properties = [(k, scrub(v) if isinstance(v, str) else v) for k, v in report.user_properties]


def pytest_report_teststatus(report: pytest.TestReport, config: pytest.Config) -> tuple[str, str, str] | None:
    """A check that could not ask its host shows as ERROR on the terminal, as in the evidence."""
    if report.when == "call" and report.failed and in_area_id(report.nodeid) and any(
        k == "harness_error" for k, _ in report.user_properties
    ):
        return "error", "E", "ERROR"
    return None


def in_area_id(nodeid: str) -> bool:
    return nodeid.startswith(f"{AREA}::")


def pytest_sessionfinish(session: pytest.Session) -> None:
    run = session.config.stash.get(STATE, None)
    if run is not None:
        run.close()
        del session.config.stash[STATE]
