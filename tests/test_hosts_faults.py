"""Host checks under faults, over real SSH to the plain host (this machine's sshd).

Each fault gets the verdict of the one rule: *the host said no* is a FAIL, *we could not ask*
(a timeout, a curl error, a broken probe) is an ERROR naming the host and the command; and
nothing a host echoes (a key in a /health body) reaches the terminal or the evidence.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from hostenv.fixtures import HostUnderTest
from hostenv.services import FakeHttp, Route, sandbox_env, standin

HOST_SECRET = "sk-hostonly-" + "Q7x9" * 6  # exists only on the host: no environment knows it
HEALTHY = {"status": "healthy", "service": "choiros-sandbox", "version": "0.1.0", "instance_role": "live"}


def grind(pytester: pytest.Pytester, host: HostUnderTest, *args: str, **overrides: Any) -> pytest.RunResult:
    host.write_config(pytester.path, **overrides)
    return pytester.runpytest_subprocess("--grind", "-m", "host", "-p", "no:cacheprovider", "-rfEs", *args)


def evidence_texts(root: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in (root / "evidence").rglob("*") if p.is_file()}


@pytest.mark.parametrize(
    ("body", "shown"),
    [
        (json.dumps({**HEALTHY, "status": f"OPENAI_API_KEY={HOST_SECRET}"}),
         "reports status 'OPENAI_API_KEY=[[]REDACTED:OPENAI_API_KEY[]]'"),
        (f"upstream said: Authorization: Bearer {HOST_SECRET}", "answered 200 but not JSON: 'upstream said: *"),
        (json.dumps({**HEALTHY, "instance_role": f"x {HOST_SECRET}"}), "reports instance_role 'x [[]REDACTED:key[]]'"),
    ],
    ids=["json-status", "plain-body", "instance-role"],
)
def test_a_secret_echoed_by_the_host_reaches_no_evidence(pytester: pytest.Pytester, plain_host: HostUnderTest,
                                                          body: str, shown: str) -> None:
    with FakeHttp({"/health": Route(200, body)}) as fake:
        result = grind(pytester, plain_host, "-k", "sandbox_health", sandboxes={"live": fake.url})
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([f"*{shown}*"])
    assert HOST_SECRET not in result.stdout.str() and HOST_SECRET[:16] not in result.stdout.str()
    texts = evidence_texts(pytester.path)
    assert {"choirci.json", "junit.xml", "report.md"} <= set(texts)
    for name, text in texts.items():
        assert HOST_SECRET[:16] not in text, f"a host secret leaked into {name}"


def test_a_body_that_never_ends_is_an_error_not_a_pass(pytester: pytest.Pytester, plain_host: HostUnderTest) -> None:
    """200 + healthy JSON, then the connection stays open: curl exits 28 after the headers."""
    with FakeHttp({"/health": Route(200, json.dumps(HEALTHY), hang=30)}) as fake:
        started = time.monotonic()
        result = grind(pytester, plain_host, "-k", "sandbox_health", sandboxes={"live": fake.url},
                       http_timeout=1)
        elapsed = time.monotonic() - started
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([
        "*choirci: host grind: sandbox live: GET */health: curl exit 28 (timed out) after the status "
        "line 200 OK: *the answer is incomplete (host_checks.http_timeout is 1 s)*",
    ])
    assert elapsed < 20, elapsed
    record = json.loads(evidence_texts(pytester.path)["choirci.json"])
    [item] = [i for i in record["runs"][0]["items"] if "sandbox_health" in i["nodeid"]]
    assert item["outcome"] == "error"


@pytest.mark.parametrize(
    ("route", "verdict", "line"),
    [
        (Route(200, "admin page"), "failed", "*hypervisor auth gate OPEN: unauthenticated GET */admin answered 200 OK*"),
        (Route(401), "failed", "*auth gate closed but not as the contract says: * answered 401 Unauthorized*"),
        (Route(403), "failed", "*auth gate closed but not as the contract says: * answered 403 Forbidden*"),
        (Route(502), "failed", "*hypervisor BROKEN: unauthenticated GET */admin answered 502 Bad Gateway*"),
        (Route(303, headers={"Location": "/elsewhere"}), "failed", "*answered 303 See Other -> /elsewhere*"),
        (Route(303, headers={"Location": "http://elsewhere.example/login"}), "failed",
         "*answered 303 See Other -> http://elsewhere.example/login*"),
        (Route(303, headers={"Location": "/login"}), "passed", "*1 passed*"),
        (Route(303, headers={"Location": "/login"}, hang=30), "errors", "*curl exit 28 (timed out)*"),
    ],
    ids=["open", "401", "403", "502", "redirect-elsewhere", "other-site-login", "closed", "timeout"],
)
def test_auth_gate_open_closed_broken(pytester: pytest.Pytester, plain_host: HostUnderTest,
                                      route: Route, verdict: str, line: str) -> None:
    with FakeHttp({"/admin": route}) as fake:
        result = grind(pytester, plain_host, "-k", "auth_gate", hypervisor_url=fake.url,
                       protected_paths=["/admin"], http_timeout=1)
    result.assert_outcomes(**{verdict: 1})
    result.stdout.fnmatch_lines([line])


def test_nothing_listening_is_a_failure(pytester: pytest.Pytester, plain_host: HostUnderTest) -> None:
    """A refused connection is the host's answer (nothing serves there), not 'could not ask'."""
    from hostenv.sshd import free_port

    result = grind(pytester, plain_host, "-k", "sandbox_health",
                   sandboxes={"live": f"http://127.0.0.1:{free_port()}"})
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*sandbox live: GET */health: no HTTP answer (connection refused*"])


# --------------------------------------------------------------------------- keyless


def _standins(tmp_path: Path, host: HostUnderTest, sandbox: dict[str, str],
              hypervisor: dict[str, str] | None = None) -> list[Any]:
    from hostenv.sshd import free_port

    base = {"PATH": "/usr/bin:/bin", **sandbox_env("live", free_port(), bind="127.0.0.1")}
    procs = [standin(tmp_path / "standins", host.checks["sandbox_process"], {**base, **sandbox})]
    if hypervisor is not None:
        procs.append(standin(tmp_path / "standins", host.checks["hypervisor_process"], hypervisor))
    return procs


def _keyless(pytester: pytest.Pytester, host: HostUnderTest, procs: list[Any]) -> pytest.RunResult:
    try:
        return grind(pytester, host, "-k", "keyless")
    finally:
        for p in procs:
            p.kill()
            p.wait()


@pytest.mark.parametrize("name", ["GEMINI_API_KEY", "OPENROUTER_API_KEY", "ANTHROPIC_AUTH_TOKEN", "GROQ_API_KEY"])
def test_keys_outside_the_exact_list_are_forbidden(pytester: pytest.Pytester, plain_host: HostUnderTest,
                                                   tmp_path: Path, name: str) -> None:
    result = _keyless(pytester, plain_host, _standins(tmp_path, plain_host, {name: HOST_SECRET}))
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([f"*(role live) has forbidden provider key(s) in its environment: {name}*"])
    assert HOST_SECRET[:16] not in result.stdout.str()


def test_allow_list_wins_over_the_patterns(pytester: pytest.Pytester, plain_host: HostUnderTest,
                                           tmp_path: Path) -> None:
    procs = _standins(tmp_path, plain_host, {"GROQ_API_KEY": HOST_SECRET})
    plain_host.write_config(pytester.path, allowed_env=["CHOIR_PROVIDER_GATEWAY_*", "GROQ_API_KEY"])
    try:
        result = pytester.runpytest_subprocess("--grind", "-m", "host", "-p", "no:cacheprovider", "-k", "keyless")
    finally:
        for p in procs:
            p.kill()
            p.wait()
    result.assert_outcomes(passed=1)


def test_gateway_token_that_is_the_hypervisors_key_is_caught(pytester: pytest.Pytester, plain_host: HostUnderTest,
                                                             tmp_path: Path) -> None:
    """The sandbox's Bedrock token equals its gateway token (allowed by name and value), but both
    are the hypervisor's real provider key: compared on the host, only names come back."""
    sandbox = {"CHOIR_PROVIDER_GATEWAY_TOKEN": HOST_SECRET, "AWS_BEARER_TOKEN_BEDROCK": HOST_SECRET}
    hypervisor = {"AWS_BEARER_TOKEN_BEDROCK": HOST_SECRET, "CHOIR_PROVIDER_GATEWAY_TOKEN": "gw-elsewhere"}
    result = _keyless(pytester, plain_host, _standins(tmp_path, plain_host, sandbox, hypervisor))
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*(role live) holds a provider key of the hypervisor: AWS_BEARER_TOKEN_BEDROCK (= the hypervisor's "
        "AWS_BEARER_TOKEN_BEDROCK), CHOIR_PROVIDER_GATEWAY_TOKEN (= the hypervisor's AWS_BEARER_TOKEN_BEDROCK)*",
    ])
    assert HOST_SECRET[:16] not in result.stdout.str()


def test_bedrock_token_equal_to_a_gateway_token_passes(pytester: pytest.Pytester, plain_host: HostUnderTest,
                                                       tmp_path: Path) -> None:
    sandbox = {"CHOIR_PROVIDER_GATEWAY_TOKEN": "gw-token-1234", "AWS_BEARER_TOKEN_BEDROCK": "gw-token-1234"}
    result = _keyless(pytester, plain_host, _standins(tmp_path, plain_host, sandbox))
    result.assert_outcomes(passed=1)


@pytest.mark.parametrize("value", ["0", "false", " Off "])
def test_keyless_enforcement_turned_off_fails(pytester: pytest.Pytester, plain_host: HostUnderTest,
                                              tmp_path: Path, value: str) -> None:
    result = _keyless(pytester, plain_host,
                      _standins(tmp_path, plain_host, {"CHOIR_ENFORCE_KEYLESS_SANDBOX": value}))
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*(role live) runs with keyless enforcement OFF*"])


def test_no_hypervisor_to_compare_with_is_an_error(pytester: pytest.Pytester, plain_host: HostUnderTest) -> None:
    result = grind(pytester, plain_host, "-k", "keyless or processes_running", hypervisor_process="no-such-hv")
    result.assert_outcomes(errors=1, passed=1)  # counting sandboxes needs no hypervisor
    result.stdout.fnmatch_lines(["*choirci: host grind: no process named 'no-such-hv' runs on the host*"])


# --------------------------------------------------------------------------- set-up failures


def test_a_service_that_fails_to_start_errors_at_once(tmp_path: Path, choiros_binaries: Any) -> None:
    """The plain host's set-up with a sandbox that refuses to start (a key while keyless is
    enforced): an error naming the service within seconds, everything started so far stopped."""
    import threading

    from hostenv.fixtures import plain_environment

    outcome: list[BaseException] = []

    def setup() -> None:
        try:
            with plain_environment(tmp_path, choiros_binaries, sandbox_env={"ZAI_API_KEY": "x" * 8}):
                pass
        except BaseException as exc:  # noqa: BLE001 - the test inspects it
            outcome.append(exc)

    thread = threading.Thread(target=setup, daemon=True)
    started = time.monotonic()
    thread.start()
    thread.join(60)
    assert not thread.is_alive(), "the set-up hung instead of failing"
    assert time.monotonic() - started < 30
    [error] = outcome
    assert isinstance(error, RuntimeError)
    assert "exited with status 1 while starting: Keyless sandbox policy violation: ZAI_API_KEY" in str(error)
    pid = int((tmp_path / "sshd.pid").read_text()) if (tmp_path / "sshd.pid").exists() else None
    assert pid is None or not Path(f"/proc/{pid}").exists(), "sshd was left running"


def test_a_fake_caddy_that_never_started_stops_at_once() -> None:
    import threading

    from hostenv.services import FakeCaddy
    from hostenv.sshd import free_port

    caddy = FakeCaddy("choir.test", free_port())
    thread = threading.Thread(target=caddy.stop, daemon=True)
    thread.start()
    thread.join(5)
    assert not thread.is_alive(), "stop() of a server that never started blocks forever"


def test_an_sshd_that_fails_to_start_errors(tmp_path: Path) -> None:
    from hostenv.sshd import PlainSshd

    sshd = PlainSshd(tmp_path)
    sshd.keys.host_key.unlink()  # sshd refuses to start without its host key
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="exited"):
        sshd.start()
    sshd.stop()
    assert time.monotonic() - started < 20


def test_checks_under_xdist_are_bounded_per_worker(pytester: pytest.Pytester, plain_host: HostUnderTest) -> None:
    """Each xdist worker collects the hosts area itself (its own bounds, its own record of
    hosts that stopped answering): a healthy host passes the same way."""
    result = grind(pytester, plain_host, "-n", "2", "-k", "not manifest")
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) >= 20 and not outcomes.get("failed") and not outcomes.get("errors"), \
        result.stdout.str()
