"""The release record's prompt execution result: the real choiros-mini sandbox over HTTP
(built with cargo, offline), plus a hand-written HTTP server for the statuses the fixture
sandbox never returns (failed, blocked, 503 ACTOR_NOT_AVAILABLE, never finishing)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from choirci import proc
from choirci.cli import main
from choirci.release import smoke as release

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "choiros-mini"
SHA = "1dcaf0ae2533ccdb07c504301e4e55bd5781ff2a"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def sandbox_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if shutil.which("cargo") is None or not (FIXTURE / "sandbox").is_dir():
        pytest.skip("cargo or fixtures/choiros-mini is not available on this machine")
    work = tmp_path_factory.mktemp("mini") / "choiros-mini"
    shutil.copytree(FIXTURE, work, ignore=shutil.ignore_patterns("target"))
    built = proc.run(["cargo", "build", "-p", "sandbox", "--offline"], cwd=work, timeout=900)
    assert built.ok, built.stderr[-2000:]
    port = free_port()
    # A clean environment: the sandbox refuses to start when provider keys are present.
    env = {"PATH": "/usr/bin:/bin", "PORT": str(port), "BIND_ADDR": "127.0.0.1"}
    child = subprocess.Popen([str(work / "target" / "debug" / "sandbox")], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert child.poll() is None and time.monotonic() < deadline, "sandbox never listened"
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        child.terminate()
        child.wait(timeout=10)


def test_prompt_against_the_real_sandbox(sandbox_url: str) -> None:
    result = release.execute(sandbox_url, "choirci release smoke", timeout=20)
    assert result.status == "completed" and result.run_id.startswith("run-")


class Conductor(BaseHTTPRequestHandler):
    """Scripted conductor: ``script`` is the sequence of run statuses GET returns."""

    script: list[str] = []
    execute_status = 202
    execute_body: dict[str, Any] = {"run_id": "run-42", "status": "running"}

    def _send(self, status: int, body: dict[str, Any]) -> None:
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self._send(self.execute_status, self.execute_body)

    def do_GET(self) -> None:
        status = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        self._send(200, {"run_id": "run-42", "status": status})

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def conductor() -> Iterator[tuple[str, type[Conductor]]]:
    handler = type("Handler", (Conductor,), {"script": ["completed"]})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()


@pytest.mark.parametrize("final", ["completed", "failed", "blocked"])
def test_polls_until_a_terminal_status(conductor: tuple[str, Any], final: str) -> None:
    url, handler = conductor
    handler.script = ["running", "waiting_for_calls", "completing", final]
    result = release.execute(url + "/conductor/execute", "x", timeout=20)
    assert (result.run_id, result.status, result.polls) == ("run-42", final, 4)


def test_no_workers_is_a_clear_failure(conductor: tuple[str, Any]) -> None:
    url, handler = conductor
    handler.execute_status = 503
    handler.execute_body = {"error": {"code": "ACTOR_NOT_AVAILABLE"}}
    with pytest.raises(release.PromptError, match=r"returned 503 ACTOR_NOT_AVAILABLE \(no conductor"):
        release.execute(url, "x", timeout=5)


def test_a_run_that_never_finishes_times_out(conductor: tuple[str, Any]) -> None:
    url, handler = conductor
    handler.script = ["running"]
    with pytest.raises(release.PromptError, match=r"run run-42 still running after 1s"):
        release.execute(url, "x", timeout=1)


def test_unreachable_sandbox() -> None:
    with pytest.raises(release.PromptError, match=r"cannot reach http://127.0.0.1:\d+/conductor"):
        release.execute(f"http://127.0.0.1:{free_port()}", "x", timeout=5)


@pytest.mark.parametrize(("final", "verdict"), [("completed", 0), ("blocked", 1)])
def test_grind_run_records_the_prompt_and_the_release_gate_judges_it(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, conductor: tuple[str, Any],
    final: str, verdict: int,
) -> None:
    url, handler = conductor
    handler.script = ["running", final]
    pytester.makefile(".yaml", choirci=f"release:\n  domain: os.choir.chat\n  prompt_url: {url}\n")
    pytester.makefile("", **{".gitignore": "evidence/\n"})  # gates fail on a dirty tree
    for argv in (["git", "init", "-q"], ["git", "add", "-A"],
                 ["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "x"]):
        assert proc.run(argv, cwd=pytester.path).ok
    head = proc.run(["git", "rev-parse", "HEAD"], cwd=pytester.path).stdout.strip()
    monkeypatch.setenv("CHOIRCI_PROMOTED_SHA", head[:12])
    result = pytester.runpytest("--grind", "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["*release::prompt_smoke*" if final != "completed" else "*1 passed*"])
    data = json.loads((pytester.path / "evidence" / "choirci.json").read_text())
    assert data["release"]["prompt"]["run_id"] == "run-42"
    assert data["release"]["prompt"]["status"] == final
    assert data["release"]["grind_sha"] == head and data["release"]["promoted_sha"] == head[:12]
    monkeypatch.chdir(pytester.path)
    # The release gate needs every phase gate for this commit first (issue 21): refused.
    assert main(["gate", "release", "--evidence", "evidence"]) == 2
    # The prompt line itself, judged by a gate of just that line and the run verdict.
    gates = pytester.path / "prompt-gate"
    gates.mkdir()
    (gates / "prompt.yaml").write_text(
        "id: prompt\ntitle: Prompt\nsections:\n  - title: Release\n    items:\n"
        "      - text: prompt execution result\n        require:\n"
        "          - release: prompt\n          - run: pass\n")
    assert main(["gate", "prompt", "--gates", str(gates), "--evidence", "evidence"]) == verdict
    report = (pytester.path / "evidence" / "gates" / "prompt.md").read_text()
    assert f"run `run-42` {final}" in report


def test_prompt_url_must_be_http(pytester: pytest.Pytester) -> None:
    pytester.makefile(".yaml", choirci="release:\n  prompt_url: os.choir.chat\n")
    result = pytester.runpytest("--grind")
    result.stderr.fnmatch_lines(["*choirci.yaml:2: release.prompt_url: expected the sandbox "
                                 "base URL like 'http://127.0.0.1:8080', got 'os.choir.chat'"])
